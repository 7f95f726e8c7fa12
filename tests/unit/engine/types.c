/* types.c — tests of engine/types.c: the dtype table and the half and
 * bfloat16 conversions (exact values, rounding ties, subnormals, NaN, and
 * nearest-value sweeps). A test case of the "gguf" suite. */
#include <math.h>
#include <string.h>

#include "gguf_test.h"
#include "px.h"
#include "types.h"

START_TEST(test_dtype_table) {
    static const struct {
        uint32_t id;
        const char *name;
        int elems, bytes;
        bool comp;
    } want[] = {
        {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},        {2, "Q4_0", 32, 18, true},
        {3, "Q4_1", 32, 20, false},    {6, "Q5_0", 32, 22, true},     {7, "Q5_1", 32, 24, false},
        {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, false},    {10, "Q2_K", 256, 84, false},
        {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, true},  {13, "Q5_K", 256, 176, true},
        {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, false}, {24, "I8", 1, 1, false},
        {25, "I16", 1, 2, false},      {26, "I32", 1, 4, false},      {27, "I64", 1, 8, false},
        {28, "F64", 1, 8, false},      {30, "BF16", 1, 2, true},
    };
    int known = 0;
    for (size_t i = 0; i < PX_ARRAY_LEN(want); i++) {
        const px_dtype_info *t = px_dtype_get(want[i].id);
        ck_assert_ptr_nonnull(t->name);
        ck_assert_str_eq(t->name, want[i].name);
        ck_assert_int_eq(t->block_elems, want[i].elems);
        ck_assert_int_eq(t->block_bytes, want[i].bytes);
        ck_assert_msg(t->computable == want[i].comp, "computable of %s", want[i].name);
    }
    for (uint32_t id = 0; id < 64; id++)
        known += px_dtype_get(id)->name != NULL;
    ck_assert_int_eq(known, (int)PX_ARRAY_LEN(want));
    ck_assert_ptr_null(px_dtype_get(4)->name);
    ck_assert_ptr_null(px_dtype_get(29)->name);
    ck_assert_ptr_null(px_dtype_get(PX_DTYPE_COUNT)->name);
    ck_assert_ptr_null(px_dtype_get(UINT32_MAX)->name);

    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_Q4_K, 512), 288);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_Q8_0, 96), 102);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F32, 3), 12);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_BF16, 5), 10);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_Q4_K, 100), 0);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_Q4_0, 33), 0);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F32, 0), 0);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F32, -4), 0);
    ck_assert_uint_eq(px_dtype_row_size((px_dtype)4, 32), 0);
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F64, INT64_MAX), 0); /* overflows */
    ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F32, 1ll << 62), 0); /* 2^64 bytes */
    if (SIZE_MAX == UINT64_MAX)
        ck_assert_uint_eq(px_dtype_row_size(PX_DTYPE_F32, 1ll << 61), 1ull << 63);
}
END_TEST

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

START_TEST(test_f16_values) {
    static const struct {
        float f;
        px_f16 h;
    } exact[] = {
        {0.0f, 0x0000},      {-0.0f, 0x8000},           {1.0f, 0x3c00},
        {-2.0f, 0xc000},     {65504.0f, 0x7bff},        {0x1p-14f, 0x0400}, /* min normal */
        {0x1p-24f, 0x0001},  {0x3ffp-24f, 0x03ff},      {-0x1p-24f, 0x8001},
        {0.5f, 0x3800},      {0.333251953125f, 0x3555}, {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(exact); i++) {
        ck_assert_uint_eq(px_f32_to_f16(exact[i].f), exact[i].h);
        ck_assert_uint_eq(bits_of(px_f16_to_f32(exact[i].h)), bits_of(exact[i].f));
    }
    /* Round to nearest, ties to even. */
    ck_assert_uint_eq(px_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);     /* tie, even below */
    ck_assert_uint_eq(px_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie, even above */
    ck_assert_uint_eq(px_f32_to_f16(1.0f + 0x1.02p-11f), 0x3c01);  /* just over the tie */
    ck_assert_uint_eq(px_f32_to_f16(65519.0f), 0x7bff);
    ck_assert_uint_eq(px_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even = inf */
    ck_assert_uint_eq(px_f32_to_f16(1e10f), 0x7c00);
    ck_assert_uint_eq(px_f32_to_f16(0x1p-25f), 0x0000); /* tie between 0 and 2^-24 */
    ck_assert_uint_eq(px_f32_to_f16(0x1.0001p-25f), 0x0001);
    ck_assert_uint_eq(px_f32_to_f16(0x3p-25f), 0x0002);   /* 1.5 units: tie to 2 */
    ck_assert_uint_eq(px_f32_to_f16(0x5p-25f), 0x0002);   /* 2.5 units: tie to 2 */
    ck_assert_uint_eq(px_f32_to_f16(0x7ffp-25f), 0x0400); /* carries into the exponent */
    ck_assert_uint_eq(px_f32_to_f16(1e-30f), 0x0000);
    ck_assert_uint_eq(px_f32_to_f16(-1e-30f), 0x8000);
    /* NaN stays NaN (never inf), both ways. */
    px_f16 hn = px_f32_to_f16(f32_of(0x7f800001));
    ck_assert_msg((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "NaN -> %04x", hn);
    ck_assert(isnan(px_f16_to_f32(0x7c01)));
    ck_assert(isnan(px_f16_to_f32(0xfe00)));
    /* Every half survives f16 -> f32 -> f16. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = px_f16_to_f32((px_f16)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            ck_assert(isnan(f));
        else
            ck_assert_uint_eq(px_f32_to_f16(f), h);
    }
}
END_TEST

/* For a sweep of f32 bit patterns, px_f32_to_f16 must give the nearest half,
 * ties to even: checked against both neighbours in double precision. */
START_TEST(test_f16_nearest) {
    for (uint64_t u = 0; u < 0x80000000u; u += 9973) {
        float f = f32_of((uint32_t)u);
        if (isnan(f)) continue;
        px_f16 h = px_f32_to_f16(f);
        double x = f, v = px_f16_to_f32(h);
        if (x >= 65520.0) {
            ck_assert_uint_eq(h, 0x7c00);
            continue;
        }
        ck_assert_msg(h < 0x7c00, "%a -> %04x", x, h);
        double err = fabs(x - v);
        if (h > 0)
            ck_assert_msg(fabs(x - px_f16_to_f32(h - 1)) >= err, "%a -> %04x not nearest", x, h);
        double up = h + 1 < 0x7c00 ? px_f16_to_f32(h + 1) : 65536.0;
        ck_assert_msg(fabs(x - up) >= err, "%a -> %04x not nearest", x, h);
        if ((h > 0 && fabs(x - px_f16_to_f32(h - 1)) == err) || fabs(x - up) == err)
            ck_assert_msg((h & 1) == 0, "%a -> %04x: tie not to even", x, h);
#ifdef __FLT16_MAX__
        ck_assert_uint_eq(bits_of((float)(_Float16)f), bits_of(px_f16_to_f32(h)));
#endif
        /* The sign is independent. */
        ck_assert_uint_eq(px_f32_to_f16(-f), h | 0x8000);
    }
}
END_TEST

START_TEST(test_bf16) {
    ck_assert_uint_eq(px_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(px_f32_to_bf16(-2.0f), 0xc000);
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x3f808000)), 0x3f80); /* tie, even below */
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x3f818000)), 0x3f82); /* tie, even above */
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x3f808001)), 0x3f81);
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x3f807fff)), 0x3f80);
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
    ck_assert_uint_eq(px_f32_to_bf16(INFINITY), 0x7f80);
    ck_assert_uint_eq(px_f32_to_bf16(-INFINITY), 0xff80);
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x00018000)), 0x0002); /* subnormal tie */
    ck_assert_uint_eq(px_f32_to_bf16(f32_of(0x00008000)), 0x0000);
    /* A NaN whose payload sits only in the low 16 bits must stay NaN. */
    px_bf16 n = px_f32_to_bf16(f32_of(0x7f800001));
    ck_assert_msg((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0, "NaN -> %04x", n);
    ck_assert(isnan(px_bf16_to_f32(n)));
    ck_assert(isnan(px_bf16_to_f32(px_f32_to_bf16(f32_of(0xffc00000)))));
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = px_bf16_to_f32((px_bf16)h);
        ck_assert_uint_eq(bits_of(f), h << 16);
        if (!isnan(f)) ck_assert_uint_eq(px_f32_to_bf16(f), h);
    }
}
END_TEST

TCase *px_test_tcase_types(void) {
    TCase *tc = tcase_create("types");
    tcase_add_test(tc, test_dtype_table);
    tcase_add_test(tc, test_f16_values);
    tcase_add_test(tc, test_f16_nearest);
    tcase_add_test(tc, test_bf16);
    return tc;
}
