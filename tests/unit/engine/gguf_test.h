/* gguf_test.h — shared by the test files of the "gguf" suite (gguf.c,
 * gguf_write.c, types.c): their test cases and the reference model image. */
#ifndef PX_TEST_ENGINE_GGUF_TEST_H
#define PX_TEST_ENGINE_GGUF_TEST_H

#include <check.h>
#include <stddef.h>

/* Test cases defined in types.c and gguf_write.c. */
TCase *px_test_tcase_types(void);
TCase *px_test_tcase_gguf_write(void);
/* A valid GGUF v3 image from the writer (every value type, six tensors of
 * several dtypes); its last tensor ends the file, with no padding after it.
 * Returns a malloc'd buffer of *size bytes. */
void *px_test_gguf_image(size_t *size);

#endif
