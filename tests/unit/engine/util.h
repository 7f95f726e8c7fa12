/* util.h — helpers shared by the engine tests: temp files and tiny models. */
#ifndef PX_TEST_ENGINE_UTIL_H
#define PX_TEST_ENGINE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh path under $TMPDIR (or /tmp) ending in `suffix`; the caller
 * unlinks it. Returns a malloc'd string. */
char *px_test_tmpfile(const char *suffix);
/* Writes `size` bytes to a new temp file; returns its malloc'd path. */
char *px_test_write_tmp(const void *data, size_t size);
/* Deterministic floats in [-1, 1) from a seed (xorshift). */
void px_test_fill_random(float *x, size_t n, uint64_t seed);

#endif
