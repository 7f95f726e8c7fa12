/* model.c — tests of engine/model.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_model(void) {
    return suite_create("model");
}
