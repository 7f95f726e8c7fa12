/* util.c — helpers shared by the engine tests. */
#include "util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *px_test_tmpfile(const char *suffix) {
    static unsigned counter;
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t cap = strlen(dir) + strlen(suffix) + 64;
    char *p = malloc(cap);
    ck_assert_ptr_nonnull(p);
    snprintf(p, cap, "%s/pxtest-%ld-%u%s", dir, (long)getpid(), counter++, suffix);
    return p;
}

char *px_test_write_tmp(const void *data, size_t size) {
    char *path = px_test_tmpfile(".bin");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

void px_test_fill_random(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
}
