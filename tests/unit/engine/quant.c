/* quant.c — tests of engine/quant.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_quant(void) {
    return suite_create("quant");
}
