/* suites.h — the Check suites of the server test binary. */
#ifndef PX_TEST_SERVER_SUITES_H
#define PX_TEST_SERVER_SUITES_H

#include <check.h>

Suite *px_suite_config(void);
Suite *px_suite_metrics(void);

#endif
