/* main.c — runs every api suite (CK_RUN_SUITE / CK_RUN_CASE select). */
#include <stdlib.h>

#include "suites.h"

int main(void) {
    SRunner *sr = srunner_create(px_suite_chat_template());
    srunner_add_suite(sr, px_suite_openai());
    srunner_add_suite(sr, px_suite_image());
    srunner_add_suite(sr, px_suite_gemini());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
