/* kernels_avx512.c — the AVX-512 VNNI kernel set (built with AVX-512
 * F/BW/VL/DQ/VNNI + AVX2/FMA/F16C flags, chosen at run time from cpuid).
 *
 * Row dots (decode) share kernels_x86.h with the AVX2 set, on 256-bit
 * vpdpbusd. Batches use gemm16: 16 tokens in the 16 lanes of a zmm, the
 * activations transposed by quantize_q8t (signed), and each 4-byte group of
 * weights, decoded to unsigned bytes (w + the type's offset), broadcast into
 * vpdpbusd, so one weight load serves 16 tokens. The offset comes off as
 * off * sum(x), which the activations carry per half block: no per-row sums
 * of weights are needed. Small batches use gemm4: a zmm holds 4 tokens x 4
 * weight groups, so no lane idles at 4 or 8 tokens. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"
#include "px.h"

static inline __attribute__((always_inline)) __m256i mul_sum_us8(__m256i acc, __m256i a,
                                                                 __m256i b) {
    return _mm256_dpbusd_epi32(acc, a, b);
}

static inline __attribute__((always_inline)) __m256i madd16_acc(__m256i acc, __m256i p,
                                                                __m256i sv) {
    return _mm256_dpwssd_epi32(acc, p, sv);
}

#include "kernels_x86.h"

/* ---- batch activations --------------------------------------------------- */

static void quantize_q8t(const float *x, size_t x_stride, int n_tok, int64_t n, px_block_q8t *y) {
    const __m256i vidx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112); /* qs[k][t] */
    for (int64_t b = 0; b < n / 32; b++) {
        memset(&y[b], 0, sizeof(y[b]));
        for (int t = 0; t < n_tok; t++) {
            const float *xb = x + (size_t)t * x_stride + 32 * b;
            float d;
            int32_t sum;
            __m256i q = quant32(xb, &d, &sum);
            _mm256_i32scatter_epi32((int *)y[b].qs[0][t], vidx, q, 4);
            /* the first half's sum from the packed bytes: sign-extend 16 */
            __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
            int32_t sa = hsum_epi32(_mm256_madd_epi16(lo, _mm256_set1_epi16(1)));
            y[b].sa[t] = sa;
            y[b].sb[t] = sum - sa;
            y[b].d[t] = d;
            y[b].ds[t] = d * (float)sum;
        }
    }
}

static void quantize_q8t4(const float *x, size_t x_stride, int n_tok, int64_t n, px_block_q8t4 *y) {
    /* dword k of a block goes to lane 4k + t of image k / 4: 4k dwords on */
    const __m256i vidx = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    for (int64_t b = 0; b < n / 32; b++) {
        memset(&y[b], 0, sizeof(y[b]));
        for (int t = 0; t < n_tok; t++) {
            float d;
            int32_t sum;
            __m256i q = quant32(x + (size_t)t * x_stride + 32 * b, &d, &sum);
            _mm256_i32scatter_epi32((int *)y[b].qs[0][t], vidx, q, 4);
            __m256i s4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
            _mm256_i32scatter_epi32(&y[b].ca[t], vidx, s4, 4); /* ca then cb */
            for (int k = 0; k < 4; k++)
                y[b].d[4 * k + t] = d;
            y[b].ds[t] = d * (float)sum;
        }
    }
}

/* ---- weight decoding for gemm16 ------------------------------------------ */

/* One superblock (or one 32-block for the _0 types) of one row, decoded to
 * unsigned bytes w + off (the type's offset: 128 for Q8_0, 8 / 16 for
 * Q4_0 / Q5_0, 32 for Q6_K, 0 for Q4_K / Q5_K), with per-chunk-of-32 scales
 * for its two 16-element halves and the min weight (Q4_K / Q5_K). */
typedef struct dsb {
    uint8_t w[256] __attribute__((aligned(32)));
    float sa[8], sb[8], mn[8];
} dsb;

static inline __attribute__((always_inline)) void put_chunk(dsb *o, int c, __m256i q, float sa,
                                                            float sb, float mn) {
    _mm256_store_si256((__m256i *)(o->w + 32 * c), q);
    o->sa[c] = sa;
    o->sb[c] = sb;
    o->mn[c] = mn;
}

static inline __attribute__((always_inline)) void dsb_q4_0(const void *row, int64_t i, dsb *o,
                                                           int slot) {
    const px_block_q4_0 *b = (const px_block_q4_0 *)row + i;
    float d = f16(b->d);
    put_chunk(o, slot, nib16(b->qs), d, d, 0.0f);
}

static inline __attribute__((always_inline)) void dsb_q5_0(const void *row, int64_t i, dsb *o,
                                                           int slot) {
    const px_block_q5_0 *b = (const px_block_q5_0 *)row + i;
    float d = f16(b->d);
    put_chunk(o, slot, dec_q5_0(b), d, d, 0.0f);
}

static inline __attribute__((always_inline)) void dsb_q8_0(const void *row, int64_t i, dsb *o,
                                                           int slot) {
    const px_block_q8_0 *b = (const px_block_q8_0 *)row + i;
    float d = f16(b->d);
    __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    put_chunk(o, slot, _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), d, d, 0.0f);
}

#define DSB_K45(NAME, BLOCK, DECODE)                                                               \
    static inline __attribute__((always_inline)) void NAME(const void *row, int64_t i, dsb *o) {   \
        const BLOCK *b = (const BLOCK *)row + i;                                                   \
        float d = f16(b->d), dmin = f16(b->dmin);                                                  \
        uint8_t sm[16];                                                                            \
        _mm_storeu_si128((__m128i *)sm, k4_scales_mins(b->scales));                                \
        for (int c = 0; c < 4; c++) {                                                              \
            __m256i lo, hi;                                                                        \
            DECODE;                                                                                \
            float s0 = d * (float)sm[2 * c], s1 = d * (float)sm[2 * c + 1];                        \
            put_chunk(o, 2 * c, lo, s0, s0, dmin * (float)sm[8 + 2 * c]);                          \
            put_chunk(o, 2 * c + 1, hi, s1, s1, dmin * (float)sm[9 + 2 * c]);                      \
        }                                                                                          \
    }
DSB_K45(dsb_q4_K, px_block_q4_K, dec_q4_K_chunk(b->qs, c, &lo, &hi))
DSB_K45(dsb_q5_K, px_block_q5_K, dec_q5_K_chunk(b, c, &lo, &hi))

static inline __attribute__((always_inline)) void dsb_q6_K(const void *row, int64_t i, dsb *o) {
    const px_block_q6_K *b = (const px_block_q6_K *)row + i;
    float d = f16(b->d);
    for (int h = 0; h < 2; h++) {
        __m256i q[4];
        dec_q6_K_half(b, h, q);
        for (int k = 0; k < 4; k++) {
            int c = 4 * h + k;
            put_chunk(o, c, q[k], d * (float)b->scales[2 * c], d * (float)b->scales[2 * c + 1],
                      0.0f);
        }
    }
}

/* ---- gemm16 -------------------------------------------------------------- */

static inline __attribute__((always_inline)) __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Chunk c of R (2 or 4) decoded rows o[i] against one q8t block: adds the
 * 16 token sums of row i to f[i]. Weights are the unsigned operand, so the
 * integer sums start at -off * (sum of x), a vector shared by the rows.
 * Each activation load feeds R vpdpbusd (4 rows per pass ran 1.4x faster
 * than 2). Each row's 8 products go to 2 chains, so 2R chains hide the
 * vpdpbusd latency. Only Q6_K (split) scales the two 16-element halves
 * (k < 4, k >= 4) differently: its chains are the halves. */
static inline __attribute__((always_inline)) void chunk_r(const dsb *const *o, int R, int c,
                                                          const px_block_q8t *xb, int off,
                                                          int has_min, int split, __m512 *f) {
    const int sh = off == 128 ? 7 : off == 32 ? 5 : off == 16 ? 4 : 3;
    __m512i z = _mm512_setzero_si512();
    __m512i sa = _mm512_load_si512(xb->sa), sb = _mm512_load_si512(xb->sb);
    /* -off * sums: off is a power of two */
    __m512i ia =
        split ? _mm512_sub_epi32(z, _mm512_slli_epi32(sa, (unsigned)sh))
        : off ? _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_add_epi32(sa, sb), (unsigned)sh))
              : z;
    __m512i ib = split ? _mm512_sub_epi32(z, _mm512_slli_epi32(sb, (unsigned)sh)) : z;
    __m512i a[4], b[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
        a[i] = ia;
        b[i] = ib;
    }
    _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
        __m512i xv = _mm512_load_si512(xb->qs[k]);
        int second = split ? k >= 4 : k & 1;
        _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
            __m512i wv = bcast4(o[i]->w + 32 * c + 4 * k);
            if (second)
                b[i] = _mm512_dpbusd_epi32(b[i], wv, xv);
            else
                a[i] = _mm512_dpbusd_epi32(a[i], wv, xv);
        }
    }
    __m512 dx = _mm512_load_ps(xb->d);
    __m512 ds = has_min ? _mm512_load_ps(xb->ds) : dx;
    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
        __m512 s;
        if (split) {
            s = _mm512_mul_ps(_mm512_cvtepi32_ps(a[i]), _mm512_set1_ps(o[i]->sa[c]));
            s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(b[i]), _mm512_set1_ps(o[i]->sb[c]), s);
        } else {
            s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a[i], b[i])),
                              _mm512_set1_ps(o[i]->sa[c]));
        }
        f[i] = _mm512_fmadd_ps(s, dx, f[i]);
        if (has_min) f[i] = _mm512_fnmadd_ps(_mm512_set1_ps(o[i]->mn[c]), ds, f[i]);
    }
}

static inline __attribute__((always_inline)) void store_col(__m512 v, float *y, size_t y_stride,
                                                            int n_tok) {
    __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)y_stride));
    _mm512_mask_i32scatter_ps(y, (__mmask16)((1u << n_tok) - 1), idx, v, 4);
}

/* Group g of a row (8 chunks of 32: one superblock, or 8 blocks of a _0
 * type, fewer at the row's end) decoded into o. */
#define DEC_GROUP_0(NAME, DSB1)                                                                    \
    static inline __attribute__((always_inline)) void NAME(const void *row, int64_t g, int cnt,    \
                                                           dsb *o) {                               \
        for (int c = 0; c < cnt; c++)                                                              \
            DSB1(row, 8 * g + c, o, c);                                                            \
    }
DEC_GROUP_0(dg_q4_0, dsb_q4_0)
DEC_GROUP_0(dg_q5_0, dsb_q5_0)
DEC_GROUP_0(dg_q8_0, dsb_q8_0)
#define DEC_GROUP_K(NAME, DSB)                                                                     \
    static inline __attribute__((always_inline)) void NAME(const void *row, int64_t g, int cnt,    \
                                                           dsb *o) {                               \
        (void)cnt;                                                                                 \
        DSB(row, g, o);                                                                            \
    }
DEC_GROUP_K(dg_q4_K, dsb_q4_K)
DEC_GROUP_K(dg_q5_K, dsb_q5_K)
DEC_GROUP_K(dg_q6_K, dsb_q6_K)

/* Prefetches len bytes at p into L1 (pf_bytes) or L2 (pf_l2). */
static inline __attribute__((always_inline)) void pf_bytes(const char *p, size_t len) {
    for (size_t i = 0; i < len; i += 64)
        _mm_prefetch(p + i, _MM_HINT_T0);
}
static inline __attribute__((always_inline)) void pf_l2(const char *p, size_t len) {
    for (size_t i = 0; i < len; i += 64)
        _mm_prefetch(p + i, _MM_HINT_T1);
}

enum {
    G16_TILE_ROWS = 32, /* rows decoded together per K slice */
    G16_SLICE = 1,      /* groups of 8 q8t blocks per K slice (6 KB of a token group) */
    G16_GROUPS = 32,    /* token groups (of 16) whose partial sums are kept */
};

/* Prefetches K group g of row `row` (into L1, or L2 if l2), where groups
 * past the row's end stand for the same row of the next tile. */
static inline __attribute__((always_inline)) void pf_group(const void *w, size_t w_stride,
                                                           int n_rows, int row, int64_t g,
                                                           int64_t ng, size_t gb, int l2) {
    for (; g >= ng; g -= ng)
        row += G16_TILE_ROWS;
    if (row >= n_rows) return;
    const char *p = (const char *)w + (size_t)row * w_stride + (size_t)g * gb;
    if (l2)
        pf_l2(p, G16_SLICE * gb);
    else
        pf_bytes(p, G16_SLICE * gb);
}

/* y (n_tok, rows) for any n_tok, 16 tokens per zmm. The loop nest keeps
 * what the vpdpbusd read close: per tile of 32 rows and K slice of 8
 * blocks, the tile's weights are decoded once (11 KB) and reused by every
 * token group, whose activation slice (6 KB) is reused by every row of the
 * tile; partial sums wait in `part` between slices. A prefill therefore
 * decodes each weight once, not once per 16 tokens, and a whole 6912-wide
 * q8t row (166 KB) is never streamed from L2 per row pair. Rows go four at
 * a time (the last ones in pairs, an odd one paired with itself: a row's
 * sums do not depend on its partners). Rows read a slice at a time are not
 * followed by the hardware prefetcher, and in the model the weights come
 * from DRAM (a third of the time went to waiting on them): each row's next
 * slice is prefetched into L1 and the one after two more into L2, as the
 * row is decoded. */
#define GEMM16(NAME, DEC, OFF, HAS_MIN, SPLIT)                                                     \
    static void NAME(int64_t n, const void *w, size_t w_stride, int n_rows,                        \
                     const px_block_q8t *xt, int n_tok, float *y, size_t y_stride) {               \
        dsb o[G16_TILE_ROWS][G16_SLICE];                                                           \
        __m512 part[G16_TILE_ROWS][G16_GROUPS];                                                    \
        const int64_t nch = n / 32, ng = (nch + 7) / 8;                                            \
        const size_t gb = (w_stride * 8 + (size_t)nch - 1) / (size_t)nch; /* bytes of a group */   \
        const int n_tg = (n_tok + 15) / 16;                                                        \
        for (int tg0 = 0; tg0 < n_tg; tg0 += G16_GROUPS) {                                         \
            const int ntg = PX_MIN(G16_GROUPS, n_tg - tg0);                                        \
            for (int rt = 0; rt < n_rows; rt += G16_TILE_ROWS) {                                   \
                const int nr = PX_MIN(G16_TILE_ROWS, n_rows - rt);                                 \
                const char *wt = (const char *)w + (size_t)rt * w_stride;                          \
                for (int r = 0; r < nr; r++)                                                       \
                    for (int tg = 0; tg < ntg; tg++)                                               \
                        part[r][tg] = _mm512_setzero_ps();                                         \
                for (int64_t g0 = 0; g0 < ng; g0 += G16_SLICE) {                                   \
                    const int64_t g1 = PX_MIN(ng, g0 + G16_SLICE);                                 \
                    for (int r = 0; r < nr; r++) {                                                 \
                        pf_group(w, w_stride, n_rows, rt + r, g0 + G16_SLICE, ng, gb, 0);          \
                        pf_group(w, w_stride, n_rows, rt + r, g0 + 3 * G16_SLICE, ng, gb, 1);      \
                        for (int64_t g = g0; g < g1; g++)                                          \
                            DEC(wt + (size_t)r * w_stride, g, (int)PX_MIN(8, nch - 8 * g),         \
                                &o[r][g - g0]);                                                    \
                    }                                                                              \
                    for (int tg = 0; tg < ntg; tg++) {                                             \
                        const px_block_q8t *xg = xt + (size_t)(tg0 + tg) * (size_t)nch;            \
                        int r = 0;                                                                 \
                        for (; r + 4 <= nr; r += 4) {                                              \
                            __m512 f[4] = {part[r][tg], part[r + 1][tg], part[r + 2][tg],          \
                                           part[r + 3][tg]};                                       \
                            for (int64_t g = g0; g < g1; g++) {                                    \
                                const dsb *op[4] = {&o[r][g - g0], &o[r + 1][g - g0],              \
                                                    &o[r + 2][g - g0], &o[r + 3][g - g0]};         \
                                int cnt = (int)PX_MIN(8, nch - 8 * g);                             \
                                for (int c = 0; c < cnt; c++)                                      \
                                    chunk_r(op, 4, c, xg + 8 * g + c, OFF, HAS_MIN, SPLIT, f);     \
                            }                                                                      \
                            for (int i = 0; i < 4; i++)                                            \
                                part[r + i][tg] = f[i];                                            \
                        }                                                                          \
                        for (; r < nr; r += 2) {                                                   \
                            const int r1 = r + 1 < nr ? r + 1 : r;                                 \
                            __m512 f[2] = {part[r][tg], part[r1][tg]};                             \
                            for (int64_t g = g0; g < g1; g++) {                                    \
                                const dsb *op[2] = {&o[r][g - g0], &o[r1][g - g0]};                \
                                int cnt = (int)PX_MIN(8, nch - 8 * g);                             \
                                for (int c = 0; c < cnt; c++)                                      \
                                    chunk_r(op, 2, c, xg + 8 * g + c, OFF, HAS_MIN, SPLIT, f);     \
                            }                                                                      \
                            part[r][tg] = f[0];                                                    \
                            if (r1 != r) part[r1][tg] = f[1];                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int tg = 0; tg < ntg; tg++) {                                                 \
                    int t0 = 16 * (tg0 + tg);                                                      \
                    for (int r = 0; r < nr; r++)                                                   \
                        store_col(part[r][tg], y + (size_t)t0 * y_stride + (size_t)(rt + r),       \
                                  y_stride, PX_MIN(16, n_tok - t0));                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
GEMM16(gemm16_q4_0, dg_q4_0, 8, 0, 0)
GEMM16(gemm16_q5_0, dg_q5_0, 16, 0, 0)
GEMM16(gemm16_q8_0, dg_q8_0, 128, 0, 0)
GEMM16(gemm16_q4_K, dg_q4_K, 0, 1, 0)
GEMM16(gemm16_q5_K, dg_q5_K, 0, 1, 0)
GEMM16(gemm16_q6_K, dg_q6_K, 32, 0, 1)

/* ---- gemm4 --------------------------------------------------------------- */

/* Chunk c of R decoded rows against one q8t4 block (4 tokens): each row's
 * 32 weights become two zmm of [w_k x 4] (a permute each), meeting the two
 * activation images in two vpdpbusd. Lane 4k + t then holds token t's sum
 * over weight group k (and k + 4); the scales are the same across k, so the
 * lanes are summed over k only once, at the end of the row. */
static inline __attribute__((always_inline)) void chunk4(const dsb *const *o, int R, int c,
                                                         const px_block_q8t4 *xb, int off,
                                                         int has_min, int split, __m512 *f) {
    const int sh = off == 128 ? 7 : off == 32 ? 5 : off == 16 ? 4 : 3;
    __m512i z = _mm512_setzero_si512();
    __m512i ca = _mm512_load_si512(xb->ca), cb = _mm512_load_si512(xb->cb);
    __m512i ia =
        split ? _mm512_sub_epi32(z, _mm512_slli_epi32(ca, (unsigned)sh))
        : off ? _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_add_epi32(ca, cb), (unsigned)sh))
              : z;
    __m512i ib = split ? _mm512_sub_epi32(z, _mm512_slli_epi32(cb, (unsigned)sh)) : z;
    __m512i x0 = _mm512_load_si512(xb->qs[0]), x1 = _mm512_load_si512(xb->qs[1]);
    const __m512i i0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(4));
    __m512 dx = _mm512_load_ps(xb->d);
    __m512 ds = has_min ? _mm512_load_ps(xb->ds) : dx;
    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
        __m512i wz = _mm512_castsi256_si512(_mm256_load_si256((const __m256i *)(o[i]->w + 32 * c)));
        __m512i a = _mm512_dpbusd_epi32(ia, _mm512_permutexvar_epi32(i0, wz), x0);
        __m512i b = _mm512_dpbusd_epi32(ib, _mm512_permutexvar_epi32(i1, wz), x1);
        __m512 sv;
        if (split) {
            sv = _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(o[i]->sa[c]));
            sv = _mm512_fmadd_ps(_mm512_cvtepi32_ps(b), _mm512_set1_ps(o[i]->sb[c]), sv);
        } else {
            sv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, b)),
                               _mm512_set1_ps(o[i]->sa[c]));
        }
        f[i] = _mm512_fmadd_ps(sv, dx, f[i]);
        if (has_min) f[i] = _mm512_fnmadd_ps(_mm512_set1_ps(o[i]->mn[c]), ds, f[i]);
    }
}

/* Sums lanes 4k + t over k; stores token t's result at y[t * y_stride]. */
static inline __attribute__((always_inline)) void store4(__m512 v, float *y, size_t y_stride,
                                                         int n_tok) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    float out[4];
    _mm_storeu_ps(out, q);
    for (int t = 0; t < n_tok; t++)
        y[(size_t)t * y_stride] = out[t];
}

/* Rows four at a time (the activation loads and offsets are shared), the
 * last ones in pairs (an odd row paired with itself). Each K group of 8
 * chunks is decoded once for up to two token groups (8 tokens). Rows read
 * four at a time in steps of a group defeat the hardware prefetcher (in the
 * model, weights come from DRAM and half the time went to waiting on them):
 * each group is prefetched into L1 two groups ahead, and the next four
 * rows into L2 while these run. */
#define GEMM4(NAME, DEC, OFF, HAS_MIN, SPLIT)                                                      \
    static void NAME(int64_t n, const void *w, size_t w_stride, int n_rows,                        \
                     const px_block_q8t4 *xt, int n_tok, float *y, size_t y_stride) {              \
        dsb o[4];                                                                                  \
        const int64_t nch = n / 32, ng = (nch + 7) / 8;                                            \
        const size_t gb = (w_stride * 8 + (size_t)nch - 1) / (size_t)nch; /* bytes of a group */   \
        const size_t qb = (4 * w_stride + (size_t)ng - 1) / (size_t)ng;   /* 1/ng of 4 rows */     \
        const int n_tg = (n_tok + 3) / 4;                                                          \
        for (int tg0 = 0; tg0 < n_tg; tg0 += 2) {                                                  \
            const int ntg = PX_MIN(2, n_tg - tg0);                                                 \
            for (int r = 0; r < n_rows;) {                                                         \
                const int R = n_rows - r >= 4 ? 4 : 2;                                             \
                const char *rows[4];                                                               \
                for (int i = 0; i < R; i++)                                                        \
                    rows[i] = (const char *)w + (size_t)PX_MIN(r + i, n_rows - 1) * w_stride;      \
                const dsb *op[4] = {&o[0], &o[1], &o[2], &o[3]};                                   \
                __m512 f[2][4];                                                                    \
                for (int tg = 0; tg < 2; tg++)                                                     \
                    for (int i = 0; i < 4; i++)                                                    \
                        f[tg][i] = _mm512_setzero_ps();                                            \
                for (int64_t g = 0; g < ng; g++) {                                                 \
                    const int cnt = (int)PX_MIN(8, nch - 8 * g);                                   \
                    if (r + R < n_rows) /* the next rows, into L2, a share per group */            \
                        pf_l2(rows[0] + (size_t)R * w_stride + (size_t)g * qb, qb);                \
                    for (int i = 0; i < R; i++) {                                                  \
                        pf_bytes(rows[i] + (size_t)(g + 2) * gb, gb);                              \
                        DEC(rows[i], g, cnt, &o[i]);                                               \
                    }                                                                              \
                    for (int tg = 0; tg < ntg; tg++) {                                             \
                        const px_block_q8t4 *xg = xt + (size_t)(tg0 + tg) * (size_t)nch + 8 * g;   \
                        if (R == 4)                                                                \
                            for (int c = 0; c < cnt; c++)                                          \
                                chunk4(op, 4, c, xg + c, OFF, HAS_MIN, SPLIT, f[tg]);              \
                        else                                                                       \
                            for (int c = 0; c < cnt; c++)                                          \
                                chunk4(op, 2, c, xg + c, OFF, HAS_MIN, SPLIT, f[tg]);              \
                    }                                                                              \
                }                                                                                  \
                for (int tg = 0; tg < ntg; tg++) {                                                 \
                    int t0 = 4 * (tg0 + tg);                                                       \
                    for (int i = 0; i < R && r + i < n_rows; i++)                                  \
                        store4(f[tg][i], y + (size_t)t0 * y_stride + (size_t)(r + i), y_stride,    \
                               PX_MIN(4, n_tok - t0));                                             \
                }                                                                                  \
                r += R;                                                                            \
            }                                                                                      \
        }                                                                                          \
    }
GEMM4(gemm4_q4_0, dg_q4_0, 8, 0, 0)
GEMM4(gemm4_q5_0, dg_q5_0, 16, 0, 0)
GEMM4(gemm4_q8_0, dg_q8_0, 128, 0, 0)
GEMM4(gemm4_q4_K, dg_q4_K, 0, 1, 0)
GEMM4(gemm4_q5_K, dg_q5_K, 0, 1, 0)
GEMM4(gemm4_q6_K, dg_q6_K, 32, 0, 1)

const px_kernels px__kernels_avx512 = {
    .name = "avx512-vnni",
    PX_X86_TABLE_COMMON,
    .gemm16 = {[PX_DTYPE_Q4_0] = gemm16_q4_0,
               [PX_DTYPE_Q5_0] = gemm16_q5_0,
               [PX_DTYPE_Q8_0] = gemm16_q8_0,
               [PX_DTYPE_Q4_K] = gemm16_q4_K,
               [PX_DTYPE_Q5_K] = gemm16_q5_K,
               [PX_DTYPE_Q6_K] = gemm16_q6_K},
    .gemm4 = {[PX_DTYPE_Q4_0] = gemm4_q4_0,
              [PX_DTYPE_Q5_0] = gemm4_q5_0,
              [PX_DTYPE_Q8_0] = gemm4_q8_0,
              [PX_DTYPE_Q4_K] = gemm4_q4_K,
              [PX_DTYPE_Q5_K] = gemm4_q5_K,
              [PX_DTYPE_Q6_K] = gemm4_q6_K},
    .quantize_q8t = quantize_q8t,
    .quantize_q8t4 = quantize_q8t4,
};

#else
typedef int px_kernels_avx512_unused;
#endif
