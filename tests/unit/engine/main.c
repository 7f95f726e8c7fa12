/* main.c — runs every engine suite. Check's own CK_RUN_SUITE=name and
 * CK_RUN_CASE=name select one suite or test case. */
#include <stdlib.h>

#include "suites.h"

int main(void) {
    SRunner *sr = srunner_create(px_suite_gguf());
    srunner_add_suite(sr, px_suite_quant());
    srunner_add_suite(sr, px_suite_matmul());
    srunner_add_suite(sr, px_suite_pool());
    srunner_add_suite(sr, px_suite_tokenizer());
    srunner_add_suite(sr, px_suite_sampler());
    srunner_add_suite(sr, px_suite_model());
    srunner_add_suite(sr, px_suite_vision());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
