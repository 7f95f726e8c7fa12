/* tokenizer.c — tests of engine/tokenizer.c (placeholder until the module lands). */
#include "suites.h"

Suite *px_suite_tokenizer(void) {
    return suite_create("tokenizer");
}
