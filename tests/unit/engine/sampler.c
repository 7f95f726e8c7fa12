/* sampler.c — tests of engine/sampler.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_sampler(void) {
    return suite_create("sampler");
}
