/* suites.h — the Check suites of the engine test binary, one per module. */
#ifndef PX_TEST_ENGINE_SUITES_H
#define PX_TEST_ENGINE_SUITES_H

#include <check.h>

Suite *px_suite_gguf(void);
Suite *px_suite_quant(void);
Suite *px_suite_matmul(void);
Suite *px_suite_pool(void);
Suite *px_suite_tokenizer(void);
Suite *px_suite_sampler(void);
Suite *px_suite_model(void);
Suite *px_suite_vision(void);

#endif
