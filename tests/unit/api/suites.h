/* suites.h — the Check suites of the api test binary. */
#ifndef PX_TEST_API_SUITES_H
#define PX_TEST_API_SUITES_H

#include <check.h>

Suite *px_suite_chat_template(void);
Suite *px_suite_openai(void);
Suite *px_suite_image(void);
Suite *px_suite_gemini(void);

#endif
