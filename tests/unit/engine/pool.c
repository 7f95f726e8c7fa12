/* pool.c — tests of engine/pool.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_pool(void) {
    return suite_create("pool");
}
