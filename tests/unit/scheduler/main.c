/* main.c — runs every scheduler suite (CK_RUN_SUITE / CK_RUN_CASE select). */
#include <stdlib.h>

#include "suites.h"

int main(void) {
    SRunner *sr = srunner_create(px_suite_stop());
    srunner_add_suite(sr, px_suite_stats());
    srunner_add_suite(sr, px_suite_blocks());
    srunner_add_suite(sr, px_suite_sched());
    srunner_add_suite(sr, px_suite_sched_images());
    srunner_add_suite(sr, px_suite_sched_faults());
    srunner_add_suite(sr, px_suite_sched_window());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
