/* suites.h — the Check suites of the scheduler test binary, one per module. */
#ifndef PX_TEST_SCHED_SUITES_H
#define PX_TEST_SCHED_SUITES_H

#include <check.h>

Suite *px_suite_stop(void);
Suite *px_suite_stats(void);
Suite *px_suite_blocks(void);
Suite *px_suite_sched(void);
Suite *px_suite_sched_images(void);
Suite *px_suite_sched_faults(void);
Suite *px_suite_sched_window(void);

#endif
