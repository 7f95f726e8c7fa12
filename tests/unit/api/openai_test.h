/* openai_test.h — fixtures shared by the two halves of the "openai" suite
 * (parsing in openai.c, rendering in openai_render.c). */
#ifndef PX_TEST_API_OPENAI_H
#define PX_TEST_API_OPENAI_H

#include <check.h>

#include "engine/tokenizer.h"

/* Tokenizers from mkmodel's synthetic gemma3 and llama vocabularies, made
 * through a GGUF file by the checked fixture below. */
extern px_tokenizer *tok_gemma, *tok_llama;
void px_test_api_setup(void);
void px_test_api_teardown(void);

/* Adds the rendering test case to the suite. */
void px_test_openai_render_tcase(Suite *s);

#endif
