/* quant.c — tests of engine/quant.c: round-trip error bounds per type,
 * hand-built blocks decoded to values worked out by hand from the GGUF
 * layouts, f16/bf16 exactness, edge cases and argument errors.
 * PX_QUANT_REPORT=1 prints the measured errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"
#include "quant.h"
#include "suites.h"
#include "util.h"

/* Bytes of one block, elements per block: sizes from types.h, kept here so
 * the tests do not depend on px_dtype_row_size (types.c). */
typedef struct tinfo {
    px_dtype type;
    const char *name;
    int elems, bytes;
    /* Bounds on RMS(error) / RMS(data) for uniform [-1, 1) and for
     * near-Gaussian data (heavier tails: a block's max sits further from its
     * RMS, so coarser steps). Measured values are listed above tc_roundtrip;
     * each bound is ~1.2x the worst measured. A wrong nibble, bit or scale
     * mapping gives errors of the order of the data itself (> 50%). */
    double bound_uniform, bound_gauss;
} tinfo;

static const tinfo types[] = {
    {PX_DTYPE_F32, "F32", 1, 4, 1e-9, 1e-9},
    {PX_DTYPE_F16, "F16", 1, 2, 0x1p-11, 0x1p-11}, /* max relative rounding */
    {PX_DTYPE_BF16, "BF16", 1, 2, 0x1p-8, 0x1p-8},
    {PX_DTYPE_Q8_0, "Q8_0", 32, 34, 0.0047, 0.0062},
    {PX_DTYPE_Q8_1, "Q8_1", 32, 36, 0.0047, 0.0062},
    {PX_DTYPE_Q8_K, "Q8_K", 256, 292, 0.0048, 0.0090},
    {PX_DTYPE_Q6_K, "Q6_K", 256, 210, 0.0165, 0.0225},
    {PX_DTYPE_Q5_0, "Q5_0", 32, 22, 0.038, 0.050},
    {PX_DTYPE_Q5_1, "Q5_1", 32, 24, 0.036, 0.045},
    {PX_DTYPE_Q5_K, "Q5_K", 256, 176, 0.034, 0.045},
    {PX_DTYPE_Q4_0, "Q4_0", 32, 18, 0.080, 0.098},
    {PX_DTYPE_Q4_1, "Q4_1", 32, 20, 0.075, 0.092},
    {PX_DTYPE_Q4_K, "Q4_K", 256, 144, 0.068, 0.088},
};

static size_t row_bytes(const tinfo *t, int64_t n) {
    return (size_t)(n / t->elems) * (size_t)t->bytes;
}

static const tinfo *tinfo_of(px_dtype type) {
    for (size_t i = 0; i < PX_ARRAY_LEN(types); i++)
        if (types[i].type == type) return &types[i];
    ck_abort_msg("no tinfo for type %d", (int)type);
    return NULL;
}

static double rel_rms(const float *x, const float *y, int64_t n) {
    double se = 0.0, sx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        sx += (double)x[i] * x[i];
    }
    return sx > 0.0 ? sqrt(se / sx) : sqrt(se);
}

/* Near-Gaussian (sum of four uniforms), like trained weights. */
static void fill_gauss(float *x, int64_t n, uint64_t seed) {
    float *u = malloc((size_t)n * 4 * sizeof *u);
    ck_assert_ptr_nonnull(u);
    px_test_fill_random(u, (size_t)n * 4, seed);
    for (int64_t i = 0; i < n; i++)
        x[i] = (u[4 * i] + u[4 * i + 1] + u[4 * i + 2] + u[4 * i + 3]) * 0.5f;
    free(u);
}

#define GUARD 64

/* Quantizes x (n elements) into a fresh buffer with guard bytes after the
 * row, checks the guard, dequantizes into y; returns the relative error. */
static double roundtrip(const tinfo *t, const float *x, float *y, int64_t n) {
    size_t rb = row_bytes(t, n);
    uint8_t *q = malloc(rb + GUARD);
    ck_assert_ptr_nonnull(q);
    memset(q, 0xA5, rb + GUARD);
    ck_assert_int_eq(px_quantize_row(t->type, x, q, n), 0);
    for (size_t i = rb; i < rb + GUARD; i++)
        ck_assert_msg(q[i] == 0xA5, "%s: quantize wrote past the row (byte %zu)", t->name, i);
    ck_assert_int_eq(px_dequantize_row(t->type, q, y, n), 0);
    free(q);
    return rel_rms(x, y, n);
}

static bool all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return false;
    return true;
}

/* Measured worst over the lengths (uniform / gauss):
 *   F16 2.0e-4/2.1e-4  BF16 1.5e-3/1.7e-3  Q8_0 0.0039/0.0051
 *   Q8_1 as Q8_0       Q8_K 0.0040/0.0075  Q6_K 0.0135/0.0187
 *   Q5_0 0.0321/0.0413 Q5_1 0.0298/0.0371  Q5_K 0.0281/0.0374
 *   Q4_0 0.0678/0.0823 Q4_1 0.0620/0.0763  Q4_K 0.0562/0.0729
 * Gaussian data is measured on rows of 256 or more only: the error of one
 * 32-element block varies too much from seed to seed for a tight bound. */
START_TEST(tc_roundtrip) {
    const tinfo *t = &types[_i];
    static const int64_t lens32[] = {32, 1152, 6912};
    static const int64_t lensK[] = {256, 512, 6912};
    static const int64_t lens1[] = {1, 7, 1152};
    const int64_t *lens = t->elems == 32 ? lens32 : t->elems == 256 ? lensK : lens1;
    for (int li = 0; li < 3; li++) {
        int64_t n = lens[li];
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        ck_assert(x && y);
        px_test_fill_random(x, (size_t)n, 1000 + (uint64_t)n);
        double eu = roundtrip(t, x, y, n), eg = 0.0;
        if (n >= 256) {
            fill_gauss(x, n, 2000 + (uint64_t)n);
            eg = roundtrip(t, x, y, n);
        }
        if (getenv("PX_QUANT_REPORT")) {
            printf("quant %-5s n=%-5lld uniform %.5f gauss %.5f\n", t->name, (long long)n, eu, eg);
            fflush(stdout); /* a failing test exits without flushing */
        }
        ck_assert_msg(eu < t->bound_uniform, "%s n=%lld: uniform error %g >= %g", t->name,
                      (long long)n, eu, t->bound_uniform);
        ck_assert_msg(eg < t->bound_gauss, "%s n=%lld: gauss error %g >= %g", t->name, (long long)n,
                      eg, t->bound_gauss);
        free(x);
        free(y);
    }
}
END_TEST

/* ggml's test-quantize-fns: data 0.1 + 2 cos(i), n = 4096, error
 * sqrt(sum d^2) / n must stay under 0.002 for every type of 4 bits or more. */
START_TEST(tc_ggml_threshold) {
    const tinfo *t = &types[_i];
    enum { N = 4096 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = 0.1f + 2.0f * cosf((float)i);
    roundtrip(t, x, y, N);
    double se = 0.0;
    for (int i = 0; i < N; i++)
        se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    double err = sqrt(se) / N;
    if (getenv("PX_QUANT_REPORT")) printf("quant %-5s ggml-metric %.6f\n", t->name, err);
    ck_assert_msg(err < 0.002, "%s: ggml metric %g", t->name, err);
}
END_TEST

/* The K-quants' scale search must pay off: with the same bits per weight
 * (plus a little for scales) they beat the plain absmax types. */
START_TEST(tc_kquant_beats_legacy) {
    enum { N = 6912 };
    static float x[N], y[N];
    fill_gauss(x, N, 77);
    double q4_0 = roundtrip(tinfo_of(PX_DTYPE_Q4_0), x, y, N);
    double q4_k = roundtrip(tinfo_of(PX_DTYPE_Q4_K), x, y, N);
    double q5_0 = roundtrip(tinfo_of(PX_DTYPE_Q5_0), x, y, N);
    double q5_k = roundtrip(tinfo_of(PX_DTYPE_Q5_K), x, y, N);
    ck_assert_msg(q4_k < q4_0, "Q4_K %g vs Q4_0 %g", q4_k, q4_0);
    ck_assert_msg(q5_k < q5_0, "Q5_K %g vs Q5_0 %g", q5_k, q5_0);
}
END_TEST

/* The scale searches pay off. On these fixed rows (6912 elements, so the
 * error is a stable average) the K-quants measure, uniform / gauss:
 *   Q4_K 0.0555/0.0701 (0.0613/0.0767 with the min/max grid alone)
 *   Q5_K 0.0281/0.0354 (0.0299/0.0372)
 *   Q6_K 0.0133/0.0170 (0.0143/0.0178 with absmax scaling alone)
 * The bounds sit between the two, so dropping a search fails. */
START_TEST(tc_kquant_search) {
    static const struct {
        px_dtype type;
        double uniform, gauss;
    } cases[] = {
        {PX_DTYPE_Q4_K, 0.0580, 0.0730},
        {PX_DTYPE_Q5_K, 0.0292, 0.0364},
        {PX_DTYPE_Q6_K, 0.0138, 0.0175},
    };
    enum { N = 6912 };
    static float xu[N], xg[N], y[N];
    px_test_fill_random(xu, N, 1000 + N);
    fill_gauss(xg, N, 2000 + N);
    for (size_t i = 0; i < PX_ARRAY_LEN(cases); i++) {
        const tinfo *t = tinfo_of(cases[i].type);
        double eu = roundtrip(t, xu, y, N), eg = roundtrip(t, xg, y, N);
        ck_assert_msg(eu < cases[i].uniform, "%s uniform %g", t->name, eu);
        ck_assert_msg(eg < cases[i].gauss, "%s gauss %g", t->name, eg);
    }
}
END_TEST

/* ---- hand-built blocks ---- */

#define F16_ONE 0x3C00
#define F16_HALF 0x3800
#define F16_QUARTER 0x3400
#define F16_EIGHTH 0x3000
#define F16_MINUS_ONE 0xBC00

static void expect_row(px_dtype type, const void *blk, int64_t n, const float *want) {
    float y[256];
    ck_assert_int_eq(px_dequantize_row(type, blk, y, n), 0);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(y[i] == want[i], "type %d element %lld: got %g want %g", (int)type,
                      (long long)i, y[i], want[i]);
}

START_TEST(tc_hand_q4_0) {
    /* low nibble of qs[j] = element j, high nibble = element j + 16 */
    px_block_q4_0 b = {.d = F16_HALF};
    float want[32];
    for (int j = 0; j < 16; j++) {
        b.qs[j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 0.5f * (float)(j - 8);
        want[j + 16] = 0.5f * (float)(7 - j);
    }
    expect_row(PX_DTYPE_Q4_0, &b, 32, want);
    ck_assert(want[0] == -4.0f && want[16] == 3.5f && want[31] == -4.0f);
}
END_TEST

START_TEST(tc_hand_q4_1) {
    px_block_q4_1 b = {.d = F16_QUARTER, .m = F16_MINUS_ONE};
    float want[32];
    for (int j = 0; j < 16; j++) {
        b.qs[j] = (uint8_t)((15 - j) | j << 4);
        want[j] = 0.25f * (float)(15 - j) - 1.0f; /* y = d q + m */
        want[j + 16] = 0.25f * (float)j - 1.0f;
    }
    expect_row(PX_DTYPE_Q4_1, &b, 32, want);
}
END_TEST

/* qh bytes 01 80 00 C0 = u32 0xC0008001: bits 0, 15, 30, 31 set, so
 * elements 0, 15, 30, 31 get the 5th bit. qs[3] = 0xA5: element 3 low
 * nibble 5, element 19 high nibble 10. qs[15] = 0x0F: element 15 = 15. */
static void q5_hand_bytes(uint8_t qh[4], uint8_t qs[16]) {
    static const uint8_t h[4] = {0x01, 0x80, 0x00, 0xC0};
    memcpy(qh, h, 4);
    memset(qs, 0, 16);
    qs[3] = 0xA5;
    qs[15] = 0x0F;
}

START_TEST(tc_hand_q5_0) {
    px_block_q5_0 b = {.d = F16_ONE};
    q5_hand_bytes(b.qh, b.qs);
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = -16.0f; /* q = 0 */
    want[0] = 0.0f;       /* q = 16 */
    want[3] = -11.0f;     /* q = 5 */
    want[15] = 15.0f;     /* q = 15 | 16 */
    want[19] = -6.0f;     /* q = 10 */
    want[30] = 0.0f;      /* q = 16 */
    want[31] = 0.0f;      /* q = 0 | 16 */
    expect_row(PX_DTYPE_Q5_0, &b, 32, want);
}
END_TEST

START_TEST(tc_hand_q5_1) {
    px_block_q5_1 b = {.d = F16_HALF, .m = F16_ONE};
    q5_hand_bytes(b.qh, b.qs);
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = 1.0f; /* 0.5 * 0 + 1 */
    want[0] = want[30] = want[31] = 9.0f;
    want[3] = 3.5f;
    want[15] = 16.5f;
    want[19] = 6.0f;
    expect_row(PX_DTYPE_Q5_1, &b, 32, want);
}
END_TEST

START_TEST(tc_hand_q8) {
    px_block_q8_0 b0 = {.d = F16_EIGHTH};
    px_block_q8_1 b1 = {.d = F16_EIGHTH, .s = 0x7BFF /* unused by dequant */};
    float want[32];
    for (int j = 0; j < 32; j++) {
        b0.qs[j] = b1.qs[j] = (int8_t)(j == 0 ? -128 : j * 4 - 64);
        want[j] = j == 0 ? -16.0f : 0.125f * (float)(j * 4 - 64);
    }
    expect_row(PX_DTYPE_Q8_0, &b0, 32, want);
    expect_row(PX_DTYPE_Q8_1, &b1, 32, want);

    px_block_q8_K bk = {.d = 0.25f};
    float wantk[256];
    for (int j = 0; j < 256; j++) {
        bk.qs[j] = (int8_t)(j - 128);
        wantk[j] = 0.25f * (float)(j - 128);
    }
    expect_row(PX_DTYPE_Q8_K, &bk, 256, wantk);
}
END_TEST

/* Q4_K/Q5_K scales for sc = {1,2,3,4,17,33,40,63}, m = {5,6,7,8,20,35,48,63},
 * packed by hand:
 *   bytes 0-3  = sc[0..3] | (sc[4..7] >> 4) << 6 = 41 82 83 C4
 *   bytes 4-7  = m[0..3]  | (m[4..7] >> 4) << 6  = 45 86 C7 C8
 *   bytes 8-11 = (sc[4..7] & 15) | (m[4..7] & 15) << 4 = 41 31 08 FF */
static const uint8_t k_scales[12] = {0x41, 0x82, 0x83, 0xC4, 0x45, 0x86,
                                     0xC7, 0xC8, 0x41, 0x31, 0x08, 0xFF};
static const int k_sc[8] = {1, 2, 3, 4, 17, 33, 40, 63};
static const int k_m[8] = {5, 6, 7, 8, 20, 35, 48, 63};

/* qs[32g + l]: low nibble (l + g) & 15 is element 64g + l (sub-block 2g),
 * high nibble (3l + g) & 15 is element 64g + 32 + l (sub-block 2g + 1). */
static void k_fill_qs(uint8_t qs[128]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            qs[32 * g + l] = (uint8_t)(((l + g) & 15) | ((3 * l + g) & 15) << 4);
}

static int k_nibble(int e) {
    int s = e / 32, g = s / 2, l = e % 32;
    return s % 2 == 0 ? (l + g) & 15 : (3 * l + g) & 15;
}

START_TEST(tc_hand_q4_k) {
    px_block_q4_K b = {.d = F16_ONE, .dmin = F16_HALF};
    memcpy(b.scales, k_scales, 12);
    k_fill_qs(b.qs);
    float want[256];
    for (int e = 0; e < 256; e++) /* y = d sc q - dmin m */
        want[e] = (float)(k_sc[e / 32] * k_nibble(e)) - 0.5f * (float)k_m[e / 32];
    expect_row(PX_DTYPE_Q4_K, &b, 256, want);
    /* spot values worked out by hand */
    ck_assert(want[0] == -2.5f);    /* sc 1, q 0, m 5 */
    ck_assert(want[33] == 3.0f);    /* sc 2, q 3, m 6 */
    ck_assert(want[140] == 228);    /* sc 17, q 14, m 20 */
    ck_assert(want[170] == -17.5f); /* sc 33, q 0, m 35 */
    ck_assert(want[254] == 787.5f); /* sc 63, q 13, m 63 */
}
END_TEST

START_TEST(tc_hand_q5_k) {
    /* qh[l] = 1 << (l % 8): element 32s + l has its 5th bit iff l % 8 == s */
    px_block_q5_K b = {.d = F16_ONE, .dmin = F16_HALF};
    memcpy(b.scales, k_scales, 12);
    k_fill_qs(b.qs);
    for (int l = 0; l < 32; l++)
        b.qh[l] = (uint8_t)(1u << (l % 8));
    float want[256];
    for (int e = 0; e < 256; e++) {
        int s = e / 32, q = k_nibble(e) + ((e % 32) % 8 == s ? 16 : 0);
        want[e] = (float)(k_sc[s] * q) - 0.5f * (float)k_m[s];
    }
    expect_row(PX_DTYPE_Q5_K, &b, 256, want);
    ck_assert(want[0] == 13.5f);    /* q 0 + 16 */
    ck_assert(want[33] == 35.0f);   /* q 3 + 16 */
    ck_assert(want[140] == 500);    /* q 14 + 16 */
    ck_assert(want[254] == 787.5f); /* bit 7 of qh[30] clear */
    ck_assert(want[255] == 976.5f); /* q 0 + 16, sc 63 */
}
END_TEST

START_TEST(tc_hand_q6_k) {
    /* Uniform bytes: ql = 0x21 (low 1, high 2), qh = 0xE4 (2-bit fields
     * 0,1,2,3 from the bottom), so quarter k of each 128-half has
     * q = {1, 17, 34, 50} - 32 = {-31, -15, 2, 18}; scales[i] = i + 1. */
    px_block_q6_K b;
    memset(&b, 0, sizeof b);
    memset(b.ql, 0x21, sizeof b.ql);
    memset(b.qh, 0xE4, sizeof b.qh);
    for (int i = 0; i < 16; i++)
        b.scales[i] = (int8_t)(i + 1);
    b.d = F16_HALF;
    static const int qk[4] = {-31, -15, 2, 18};
    float want[256];
    for (int e = 0; e < 256; e++)
        want[e] = 0.5f * (float)((e / 16 + 1) * qk[(e % 128) / 32]);
    expect_row(PX_DTYPE_Q6_K, &b, 256, want);
    ck_assert(want[0] == -15.5f && want[32] == -22.5f && want[64] == 5.0f);
    ck_assert(want[96] == 63.0f && want[130] == -139.5f && want[225] == 135.0f);

    /* Probes: all zero bytes decode to q = -32; then one field at a time.
     * ql[40] high nibble = 5: byte 40 is l = 8 of the second 32 of half 0,
     * high nibble -> quarter 3: element 96 + 8 = 104, q = 5 - 32.
     * qh[37] bits 2-3 = 1: half 1, l = 5, quarter 1: element 165, q = -16.
     * scales[15] = -3 scales elements 240..255. */
    memset(&b, 0, sizeof b);
    for (int i = 0; i < 16; i++)
        b.scales[i] = 1;
    b.d = F16_ONE;
    b.ql[40] = 0x50;
    b.qh[37] = 0x04;
    b.scales[15] = -3;
    for (int e = 0; e < 256; e++)
        want[e] = e >= 240 ? 96.0f : -32.0f;
    want[104] = -27.0f;
    want[165] = -16.0f;
    expect_row(PX_DTYPE_Q6_K, &b, 256, want);
}
END_TEST

/* ---- f16 / bf16 ---- */

static uint16_t to_f16(float f) {
    uint16_t h;
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_F16, &f, &h, 1), 0);
    return h;
}

static uint16_t to_bf16(float f) {
    uint16_t h;
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_BF16, &f, &h, 1), 0);
    return h;
}

/* Every non-NaN half and bfloat16 survives float and back bit for bit. */
START_TEST(tc_half_exact) {
    static uint16_t bits[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++)
        bits[i] = (uint16_t)i;
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, bits, f, 65536), 0);
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_F16, f, back, 65536), 0);
    for (int i = 0; i < 65536; i++) {
        bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        ck_assert_msg(nan ? isnan(f[i]) && (back[i] & 0x7c00) == 0x7c00 && (back[i] & 0x3ff)
                          : back[i] == i,
                      "f16 %04x -> %g -> %04x", i, f[i], back[i]);
    }
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_BF16, bits, f, 65536), 0);
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_BF16, f, back, 65536), 0);
    for (int i = 0; i < 65536; i++) {
        bool nan = (i & 0x7f80) == 0x7f80 && (i & 0x7f);
        ck_assert_msg(nan ? isnan(f[i]) && (back[i] & 0x7f80) == 0x7f80 && (back[i] & 0x7f)
                          : back[i] == i,
                      "bf16 %04x -> %g -> %04x", i, f[i], back[i]);
    }
}
END_TEST

START_TEST(tc_half_values) {
    float f;
    uint16_t h = 0x0001;
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, &h, &f, 1), 0);
    ck_assert(f == 0x1p-24f); /* smallest subnormal */
    h = 0x7BFF;
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, &h, &f, 1), 0);
    ck_assert(f == 65504.0f);
    h = 0xFC00;
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, &h, &f, 1), 0);
    ck_assert(isinf(f) && f < 0);

    ck_assert_uint_eq(to_f16(1.0f), 0x3C00);
    ck_assert_uint_eq(to_f16(-2.0f), 0xC000);
    ck_assert_uint_eq(to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(to_f16(0x1p-14f), 0x0400);        /* smallest normal */
    ck_assert_uint_eq(to_f16(0x1p-24f), 0x0001);        /* smallest subnormal */
    ck_assert_uint_eq(to_f16(0x1p-25f), 0x0000);        /* tie -> even (0) */
    ck_assert_uint_eq(to_f16(0x1.8p-25f), 0x0001);      /* above the tie */
    ck_assert_uint_eq(to_f16(0x1.8p-24f), 0x0002);      /* tie 1.5 -> even 2 */
    ck_assert_uint_eq(to_f16(0x1.ffcp-15f), 0x0400);    /* carries into normal */
    ck_assert_uint_eq(to_f16(1.0f + 0x1p-11f), 0x3C00); /* tie -> even */
    ck_assert_uint_eq(to_f16(1.0f + 0x3p-11f), 0x3C02); /* tie -> even (up) */
    ck_assert_uint_eq(to_f16(1.0f + 0x1.8p-11f), 0x3C01);
    ck_assert_uint_eq(to_f16(65519.0f), 0x7BFF);
    ck_assert_uint_eq(to_f16(65520.0f), 0x7C00); /* tie past the max -> inf */
    ck_assert_uint_eq(to_f16(1e10f), 0x7C00);
    ck_assert_uint_eq(to_f16(-INFINITY), 0xFC00);
    uint16_t nh = to_f16(NAN);
    ck_assert((nh & 0x7C00) == 0x7C00 && (nh & 0x3FF) != 0);

    ck_assert_uint_eq(to_bf16(1.0f), 0x3F80);
    ck_assert_uint_eq(to_bf16(-2.0f), 0xC000);
    ck_assert_uint_eq(to_bf16(1.0f + 0x1p-8f), 0x3F80); /* tie -> even */
    ck_assert_uint_eq(to_bf16(1.0f + 0x3p-8f), 0x3F82); /* tie -> even (up) */
    ck_assert_uint_eq(to_bf16(1.0f + 0x1.8p-8f), 0x3F81);
    ck_assert_uint_eq(to_bf16(0x1.fffffep127f), 0x7F80); /* rounds to inf */
    ck_assert_uint_eq(to_bf16(INFINITY), 0x7F80);
    uint16_t nb = to_bf16(NAN);
    ck_assert((nb & 0x7F80) == 0x7F80 && (nb & 0x7F) != 0);
}
END_TEST

/* ---- edge cases ---- */

START_TEST(tc_zero_rows) {
    const tinfo *t = &types[_i];
    int64_t n = t->elems == 1 ? 64 : 2 * t->elems;
    float x[512] = {0}, y[512];
    uint8_t q[1024];
    memset(q, 0xFF, sizeof q);
    ck_assert_int_eq(px_quantize_row(t->type, x, q, n), 0);
    for (int64_t i = 0; i < n; i++)
        y[i] = NAN;
    ck_assert_int_eq(px_dequantize_row(t->type, q, y, n), 0);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(y[i] == 0.0f, "%s: zero row element %lld = %g", t->name, (long long)i, y[i]);
}
END_TEST

/* One huge value: no NaN or inf, the huge value itself comes back within 1%,
 * and blocks without it keep their normal accuracy (blocks are independent). */
START_TEST(tc_huge_value) {
    const tinfo *t = &types[_i];
    int64_t blk = t->elems == 1 ? 256 : t->elems;
    int64_t n = 4 * blk;
    float x[1024], y[1024];
    px_test_fill_random(x, (size_t)n, 5);
    const float huge = 1000.0f; /* within f16 range */
    x[blk / 2 + 3] = huge;
    roundtrip(t, x, y, n);
    ck_assert(all_finite(y, n));
    ck_assert_msg(fabsf(y[blk / 2 + 3] - huge) < 0.01f * huge, "%s: huge -> %g", t->name,
                  y[blk / 2 + 3]);
    double rest = rel_rms(x + blk, y + blk, n - blk);
    ck_assert_msg(rest < t->bound_uniform * 1.3, "%s: other blocks error %g", t->name, rest);
}
END_TEST

/* NaN and inf in the input: quantize succeeds without undefined behaviour
 * (the sanitizer build checks the float-to-int conversions), and only the
 * blocks holding them are affected. */
START_TEST(tc_nonfinite_input) {
    const tinfo *t = &types[_i];
    int64_t blk = t->elems == 1 ? 256 : t->elems;
    int64_t n = 4 * blk;
    float x[1024], y[1024];
    px_test_fill_random(x, (size_t)n, 6);
    x[1] = NAN;
    x[blk + 2] = INFINITY;
    x[blk + 3] = -INFINITY;
    roundtrip(t, x, y, n);
    ck_assert(all_finite(y + 2 * blk, 2 * blk));
    double rest = rel_rms(x + 2 * blk, y + 2 * blk, 2 * blk);
    ck_assert_msg(rest < t->bound_uniform * 1.3, "%s: other blocks error %g", t->name, rest);
}
END_TEST

START_TEST(tc_bad_length) {
    const tinfo *t = &types[_i];
    float x[600] = {0}, y[600];
    uint8_t q[1024];
    if (t->elems > 1) {
        int64_t bad[] = {1, t->elems - 1, t->elems + 1, 2 * t->elems + 16};
        for (size_t i = 0; i < PX_ARRAY_LEN(bad); i++) {
            ck_assert_int_eq(px_quantize_row(t->type, x, q, bad[i]), PX_EINVAL);
            ck_assert_int_eq(px_dequantize_row(t->type, q, y, bad[i]), PX_EINVAL);
        }
    }
    ck_assert_int_eq(px_quantize_row(t->type, x, q, -t->elems), PX_EINVAL);
    ck_assert_int_eq(px_dequantize_row(t->type, q, y, -t->elems), PX_EINVAL);
    ck_assert_int_eq(px_quantize_row(t->type, NULL, q, t->elems), PX_EINVAL);
    ck_assert_int_eq(px_dequantize_row(t->type, q, NULL, t->elems), PX_EINVAL);
    ck_assert_int_eq(px_quantize_row(t->type, x, q, 0), 0);
    ck_assert_int_eq(px_dequantize_row(t->type, q, y, 0), 0);
}
END_TEST

START_TEST(tc_unsupported) {
    static const int ids[] = {PX_DTYPE_Q2_K,
                              PX_DTYPE_Q3_K,
                              PX_DTYPE_I8,
                              PX_DTYPE_I16,
                              PX_DTYPE_I32,
                              PX_DTYPE_I64,
                              PX_DTYPE_F64,
                              4,
                              5,
                              16,
                              29,
                              39,
                              PX_DTYPE_COUNT,
                              1000,
                              -1};
    float x[256] = {0}, y[256];
    uint8_t q[1024] = {0};
    for (size_t i = 0; i < PX_ARRAY_LEN(ids); i++) {
        ck_assert_int_eq(px_quantize_row((px_dtype)ids[i], x, q, 256), PX_ENOTSUP);
        ck_assert_int_eq(px_dequantize_row((px_dtype)ids[i], q, y, 256), PX_ENOTSUP);
    }
}
END_TEST

/* Same input, two output buffers pre-filled differently: identical bytes,
 * so every byte of the row is written and nothing depends on state. */
START_TEST(tc_deterministic) {
    const tinfo *t = &types[_i];
    enum { N = 1536 };
    static float x[N];
    fill_gauss(x, N, 99);
    size_t rb = row_bytes(t, N);
    uint8_t *a = malloc(rb), *b = malloc(rb);
    ck_assert(a && b);
    memset(a, 0x00, rb);
    memset(b, 0xFF, rb);
    ck_assert_int_eq(px_quantize_row(t->type, x, a, N), 0);
    ck_assert_int_eq(px_quantize_row(t->type, x, b, N), 0);
    ck_assert_msg(memcmp(a, b, rb) == 0, "%s: quantize not deterministic", t->name);
    free(a);
    free(b);
}
END_TEST

/* For the absmax types, quantizing a dequantized row gives the same bytes:
 * the largest level maps back onto itself and every other level is a
 * whole multiple of the same d. */
START_TEST(tc_requantize_fixed_point) {
    static const px_dtype fixed[] = {PX_DTYPE_Q4_0, PX_DTYPE_Q5_0, PX_DTYPE_Q8_0, PX_DTYPE_Q8_K};
    enum { N = 1024 };
    static float x[N], y[N];
    static uint8_t a[2048], b[2048];
    for (size_t k = 0; k < PX_ARRAY_LEN(fixed); k++) {
        const tinfo *t = tinfo_of(fixed[k]);
        fill_gauss(x, N, 3 + k);
        ck_assert_int_eq(px_quantize_row(t->type, x, a, N), 0);
        ck_assert_int_eq(px_dequantize_row(t->type, a, y, N), 0);
        ck_assert_int_eq(px_quantize_row(t->type, y, b, N), 0);
        ck_assert_msg(memcmp(a, b, row_bytes(t, N)) == 0, "%s: not a fixed point", t->name);
    }
}
END_TEST

/* Q8_K's bsums are the sums of each 16 quants; Q8_1's s is d * sum(q). */
START_TEST(tc_q8_sums) {
    float x[512];
    px_test_fill_random(x, 512, 11);
    px_block_q8_K k[2];
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_Q8_K, x, k, 512), 0);
    for (int i = 0; i < 2; i++) {
        int amax = 0;
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                sum += k[i].qs[16 * j + l];
                amax = abs(k[i].qs[16 * j + l]) > amax ? abs(k[i].qs[16 * j + l]) : amax;
            }
            ck_assert_int_eq(k[i].bsums[j], sum);
        }
        ck_assert_int_eq(amax, 127); /* the largest magnitude maps to 127 */
    }
    px_block_q8_1 b;
    ck_assert_int_eq(px_quantize_row(PX_DTYPE_Q8_1, x, &b, 32), 0);
    float d, s;
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, &b.d, &d, 1), 0);
    ck_assert_int_eq(px_dequantize_row(PX_DTYPE_F16, &b.s, &s, 1), 0);
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += b.qs[j];
    ck_assert_msg(fabsf(s - d * (float)sum) <= 1e-3f * fabsf(d * (float)sum) + 1e-6f,
                  "s %g vs d*sum %g", s, d * (float)sum);
}
END_TEST

Suite *px_suite_quant(void) {
    Suite *s = suite_create("quant");
    int nt = (int)PX_ARRAY_LEN(types);
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, tc_roundtrip, 0, nt);
    tcase_add_loop_test(tc, tc_ggml_threshold, 3, nt); /* the block types */
    tcase_add_test(tc, tc_kquant_beats_legacy);
    tcase_add_test(tc, tc_kquant_search);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_test(tc, tc_hand_q4_0);
    tcase_add_test(tc, tc_hand_q4_1);
    tcase_add_test(tc, tc_hand_q5_0);
    tcase_add_test(tc, tc_hand_q5_1);
    tcase_add_test(tc, tc_hand_q8);
    tcase_add_test(tc, tc_hand_q4_k);
    tcase_add_test(tc, tc_hand_q5_k);
    tcase_add_test(tc, tc_hand_q6_k);
    suite_add_tcase(s, tc);

    tc = tcase_create("half");
    tcase_add_test(tc, tc_half_exact);
    tcase_add_test(tc, tc_half_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("edge");
    tcase_add_loop_test(tc, tc_zero_rows, 0, nt);
    tcase_add_loop_test(tc, tc_huge_value, 0, nt);
    tcase_add_loop_test(tc, tc_nonfinite_input, 0, nt);
    tcase_add_loop_test(tc, tc_bad_length, 0, nt);
    tcase_add_test(tc, tc_unsupported);
    tcase_add_loop_test(tc, tc_deterministic, 0, nt);
    tcase_add_test(tc, tc_requantize_fixed_point);
    tcase_add_test(tc, tc_q8_sums);
    suite_add_tcase(s, tc);
    return s;
}
