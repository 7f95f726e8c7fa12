/* vision.c — tests of engine/vision.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_vision(void) {
    return suite_create("vision");
}
