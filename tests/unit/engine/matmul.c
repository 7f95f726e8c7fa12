/* matmul.c — tests of engine/matmul.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_matmul(void) {
    return suite_create("matmul");
}
