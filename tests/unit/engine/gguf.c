/* gguf.c — tests of engine/gguf.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_gguf(void) {
    return suite_create("gguf");
}
