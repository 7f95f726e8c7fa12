/* kernels_avx512.c — the AVX-512 VNNI kernel set (built with AVX-512
 * F/BW/VL/DQ/VNNI + AVX2/FMA/F16C flags, chosen at run time from cpuid).
 *
 * Row dots (decode) share kernels_x86.h with the AVX2 set, on 256-bit
 * vpdpbusd. Batches use gemm16: 16 tokens in the 16 lanes of a zmm, the
 * activations transposed from the row formats (px__q8t_from_q8a / _q8k),
 * and each 4-byte group of weights, decoded to unsigned bytes (w + the
 * type's offset), broadcast into vpdpbusd, so one weight load serves 16
 * tokens. The offset comes off as off * sum(x), which the activations carry
 * per half block: no per-row sums of weights are needed. Each lane then
 * follows the canonical float order of kernels.h, so a token's results are
 * bitwise those of the row dots. Weights repacked into the X16 layout
 * (kernels.h) take the x16 kernels at the end instead: lanes are rows. */
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

/* ---- weight decoding for gemm16 ------------------------------------------ */

/* One superblock (or 8 blocks of a _0 type) of one row, decoded to
 * unsigned bytes w + off (the type's offset: 128 for Q8_0, 8 / 16 for
 * Q4_0 / Q5_0, 32 for Q6_K, 0 for Q4_K / Q5_K), with the scales each
 * type's canonical combination needs. */
typedef struct dsb {
    uint8_t w[256] __attribute__((aligned(32)));
    float dw[8];          /* _0 types: the 8 block scales */
    int32_t sa[8], sb[8]; /* K types: integer scales of each chunk's halves */
    int32_t mn[8];        /* Q4_K / Q5_K: integer mins per chunk */
    float d, dmin;        /* K types: the superblock scales */
} dsb;

#define AI static inline __attribute__((always_inline))

AI void dsb_q4_0(const void *row, int64_t i, dsb *o, int slot) {
    const px_block_q4_0 *b = (const px_block_q4_0 *)row + i;
    _mm256_store_si256((__m256i *)(o->w + 32 * slot), nib16(b->qs));
    o->dw[slot] = f16(b->d);
}

AI void dsb_q5_0(const void *row, int64_t i, dsb *o, int slot) {
    const px_block_q5_0 *b = (const px_block_q5_0 *)row + i;
    _mm256_store_si256((__m256i *)(o->w + 32 * slot), dec_q5_0(b));
    o->dw[slot] = f16(b->d);
}

AI void dsb_q8_0(const void *row, int64_t i, dsb *o, int slot) {
    const px_block_q8_0 *b = (const px_block_q8_0 *)row + i;
    __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    _mm256_store_si256((__m256i *)(o->w + 32 * slot),
                       _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
    o->dw[slot] = f16(b->d);
}

#define DSB_K45(NAME, BLOCK, DECODE)                                                               \
    AI void NAME(const void *row, int64_t i, dsb *o) {                                             \
        const BLOCK *b = (const BLOCK *)row + i;                                                   \
        uint8_t sm[16];                                                                            \
        _mm_storeu_si128((__m128i *)sm, k4_scales_mins(b->scales));                                \
        for (int c = 0; c < 4; c++) {                                                              \
            __m256i lo, hi;                                                                        \
            DECODE;                                                                                \
            _mm256_store_si256((__m256i *)(o->w + 64 * c), lo);                                    \
            _mm256_store_si256((__m256i *)(o->w + 64 * c + 32), hi);                               \
        }                                                                                          \
        for (int c = 0; c < 8; c++) {                                                              \
            o->sa[c] = o->sb[c] = sm[c];                                                           \
            o->mn[c] = sm[8 + c];                                                                  \
        }                                                                                          \
        o->d = f16(b->d);                                                                          \
        o->dmin = f16(b->dmin);                                                                    \
    }
DSB_K45(dsb_q4_K, px_block_q4_K, dec_q4_K_chunk(b->qs, c, &lo, &hi))
DSB_K45(dsb_q5_K, px_block_q5_K, dec_q5_K_chunk(b, c, &lo, &hi))

AI void dsb_q6_K(const void *row, int64_t i, dsb *o) {
    const px_block_q6_K *b = (const px_block_q6_K *)row + i;
    for (int h = 0; h < 2; h++) {
        __m256i q[4];
        dec_q6_K_half(b, h, q);
        for (int k = 0; k < 4; k++)
            _mm256_store_si256((__m256i *)(o->w + 32 * (4 * h + k)), q[k]);
    }
    for (int c = 0; c < 8; c++) {
        o->sa[c] = b->scales[2 * c];
        o->sb[c] = b->scales[2 * c + 1];
    }
    o->d = f16(b->d);
}

/* ---- gemm16 -------------------------------------------------------------- */

static inline __attribute__((always_inline)) __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* The integer sums of chunk c of R (2 or 4) decoded rows o[i] against one
 * q8t block, into a[i] (+ b[i]): weights are the unsigned operand, so the
 * sums start at -off * (sum of x), a vector shared by the rows. Each
 * activation load feeds R vpdpbusd, and each row's 8 products go to 2
 * chains to hide the vpdpbusd latency. With split (Q6_K, whose two
 * 16-element halves have their own scales) the chains are the halves. */
AI void chunk_ints(const dsb *const *o, int R, int c, const px_block_q8t *xb, int off, int split,
                   __m512i *a, __m512i *b) {
    const int sh = off == 128 ? 7 : off == 32 ? 5 : off == 16 ? 4 : 3;
    __m512i z = _mm512_setzero_si512();
    __m512i sa = _mm512_load_si512(xb->sa), sb = _mm512_load_si512(xb->sb);
    __m512i ia =
        split ? _mm512_sub_epi32(z, _mm512_slli_epi32(sa, (unsigned)sh))
        : off ? _mm512_sub_epi32(z, _mm512_slli_epi32(_mm512_add_epi32(sa, sb), (unsigned)sh))
              : z;
    __m512i ib = split ? _mm512_sub_epi32(z, _mm512_slli_epi32(sb, (unsigned)sh)) : z;
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
}

/* Block product p[i] of chunk c (0..7, in order) into the canonical group
 * tree of kernels.h, for n lanes-vectors: ((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7))
 * added to f[i] at c = 7; e, q, h hold the pending pair, quad and half. */
AI void tree_step(int c, int n, const __m512 *p, __m512 *e, __m512 *q, __m512 *h, __m512 *f) {
    _Pragma("GCC unroll 4") for (int i = 0; i < n; i++) {
        if (!(c & 1)) {
            e[i] = p[i];
            continue;
        }
        __m512 pr = _mm512_add_ps(e[i], p[i]);
        if (!(c & 2)) {
            q[i] = pr;
            continue;
        }
        __m512 quad = _mm512_add_ps(q[i], pr);
        if (c < 4)
            h[i] = quad;
        else
            f[i] = _mm512_add_ps(f[i], _mm512_add_ps(h[i], quad));
    }
}

/* A group of cnt (<= 8) chunks of a _0 type for R rows: f[i] += G_i with
 * the block products and the tree of kernels.h (missing chunks are +0). */
AI void group0_r(const dsb *const *o, int R, int cnt, const px_block_q8t *xb, int off, __m512 *f) {
    __m512 e[4], q[4], h[4];
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
        __m512 p[4];
        if (c < cnt) {
            __m512i a[4], b[4];
            chunk_ints(o, R, c, xb + c, off, 0, a, b);
            __m512 dx = _mm512_load_ps(xb[c].d);
            _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
                __m512 s = _mm512_mul_ps(_mm512_set1_ps(o[i]->dw[c]), dx);
                p[i] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a[i], b[i])), s);
            }
        } else {
            _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) p[i] = _mm512_setzero_ps();
        }
        tree_step(c, R, p, e, q, h, f);
    }
}

/* A K-type superblock (8 chunks) for R rows: the exact integers isc (and
 * imn), then f[i] += p_i as in kernels.h. */
AI void groupk_r(const dsb *const *o, int R, const px_block_q8t *xb, int has_min, int split,
                 __m512 *f) {
    __m512i isc[4], imn[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) isc[i] = imn[i] = _mm512_setzero_si512();
    _Pragma("GCC unroll 2") for (int c = 0; c < 8; c++) {
        __m512i a[4], b[4];
        chunk_ints(o, R, c, xb + c, split ? 32 : 0, split, a, b);
        __m512i xs =
            has_min ? _mm512_add_epi32(_mm512_load_si512(xb[c].sa), _mm512_load_si512(xb[c].sb))
                    : _mm512_setzero_si512();
        _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
            if (split) {
                isc[i] = _mm512_add_epi32(
                    isc[i],
                    _mm512_add_epi32(_mm512_mullo_epi32(a[i], _mm512_set1_epi32(o[i]->sa[c])),
                                     _mm512_mullo_epi32(b[i], _mm512_set1_epi32(o[i]->sb[c]))));
            } else {
                isc[i] =
                    _mm512_add_epi32(isc[i], _mm512_mullo_epi32(_mm512_add_epi32(a[i], b[i]),
                                                                _mm512_set1_epi32(o[i]->sa[c])));
            }
            if (has_min)
                imn[i] = _mm512_add_epi32(imn[i],
                                          _mm512_mullo_epi32(xs, _mm512_set1_epi32(o[i]->mn[c])));
        }
    }
    __m512 dx = _mm512_load_ps(xb[0].d);
    _Pragma("GCC unroll 4") for (int i = 0; i < R; i++) {
        __m512 p =
            _mm512_mul_ps(_mm512_cvtepi32_ps(isc[i]), _mm512_mul_ps(_mm512_set1_ps(o[i]->d), dx));
        if (has_min)
            p = _mm512_sub_ps(p, _mm512_mul_ps(_mm512_cvtepi32_ps(imn[i]),
                                               _mm512_mul_ps(_mm512_set1_ps(o[i]->dmin), dx)));
        f[i] = _mm512_add_ps(f[i], p);
    }
}

/* The group call of a gemm16 instance. */
#define GROUP_R(IS_K, OFF, HAS_MIN, SPLIT, R, cnt, xs, f)                                          \
    do {                                                                                           \
        if (IS_K)                                                                                  \
            groupk_r(op, R, xs, HAS_MIN, SPLIT, f);                                                \
        else                                                                                       \
            group0_r(op, R, cnt, xs, OFF, f);                                                      \
    } while (0)

static inline __attribute__((always_inline)) void store_col(__m512 v, float *y, size_t y_stride,
                                                            int n_tok) {
    __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)y_stride));
    _mm512_mask_i32scatter_ps(y, (__mmask16)((1u << n_tok) - 1), idx, v, 4);
}

/* Transposes 16 vectors in place: r[j] lane i <- r[i] lane j (unpack
 * pairs, then pairs of pairs, then 128-bit lanes twice). */
static inline __attribute__((always_inline)) void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

/* Writes 16 rows' results (v[r]: token lanes) for n_tok tokens: a 16x16
 * transpose and one row-contiguous store per token, instead of 16 scatters
 * (microcoded on Zen 4). */
static inline __attribute__((always_inline)) void store_16cols(__m512 *v, float *y, size_t y_stride,
                                                               int n_tok) {
    tr16(v);
    for (int t = 0; t < n_tok; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, v[t]);
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
#define GEMM16(NAME, DEC, OFF, IS_K, HAS_MIN, SPLIT)                                               \
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
                                GROUP_R(IS_K, OFF, HAS_MIN, SPLIT, 4, cnt, xg + 8 * g, f);         \
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
                                GROUP_R(IS_K, OFF, HAS_MIN, SPLIT, 2, cnt, xg + 8 * g, f);         \
                            }                                                                      \
                            part[r][tg] = f[0];                                                    \
                            if (r1 != r) part[r1][tg] = f[1];                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int tg = 0; tg < ntg; tg++) {                                                 \
                    int t0 = 16 * (tg0 + tg);                                                      \
                    int r = 0;                                                                     \
                    for (; r + 16 <= nr; r += 16) {                                                \
                        __m512 v[16];                                                              \
                        for (int i = 0; i < 16; i++)                                               \
                            v[i] = part[r + i][tg];                                                \
                        store_16cols(v, y + (size_t)t0 * y_stride + (size_t)(rt + r), y_stride,    \
                                     PX_MIN(16, n_tok - t0));                                      \
                    }                                                                              \
                    for (; r < nr; r++)                                                            \
                        store_col(part[r][tg], y + (size_t)t0 * y_stride + (size_t)(rt + r),       \
                                  y_stride, PX_MIN(16, n_tok - t0));                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
GEMM16(gemm16_q4_0, dg_q4_0, 8, 0, 0, 0)
GEMM16(gemm16_q5_0, dg_q5_0, 16, 0, 0, 0)
GEMM16(gemm16_q8_0, dg_q8_0, 128, 0, 0, 0)
GEMM16(gemm16_q4_K, dg_q4_K, 0, 1, 1, 0)
GEMM16(gemm16_q5_K, dg_q5_K, 0, 1, 1, 0)
GEMM16(gemm16_q6_K, dg_q6_K, 32, 1, 0, 1)

/* ---- the X16 layout (kernels.h) ----------------------------------------- */

enum {
    X16_SLICE = 32,    /* blocks of a group per pass over the tokens (<= 17 KB: stays in L1) */
    X16_PF_L1 = 1024,  /* prefetch distance into L1 for 1-3 tokens (streaming) */
    X16_PF_L2 = 32768, /* ... into L2 for more */
};

/* Bytes of one unit of a group: a block of 32 columns, or a superblock of
 * 256 for the K types (16 times the type's block, kernels.h). */
AI int x16_unit_bytes(int ty) {
    return ty == PX_DTYPE_Q8_0   ? 544
           : ty == PX_DTYPE_Q5_0 ? 352
           : ty == PX_DTYPE_Q4_0 ? 288
           : ty == PX_DTYPE_Q4_K ? 2304
           : ty == PX_DTYPE_Q5_K ? 2816
                                 : 3360;
}

/* The prefetches of the unit of bb bytes at blk, pf bytes ahead: into L2
 * when farther than X16_PF_L1, this pass taking lines pph, pph + pn, ...;
 * else every line into L1. */
AI void x16_prefetch(const uint8_t *blk, int bb, size_t pf, int pph, int pn) {
    if (pf > X16_PF_L1)
        for (int l = 64 * pph; l < bb; l += 64 * pn)
            _mm_prefetch((const char *)blk + pf + l, _MM_HINT_T1);
    else if (pf)
        for (int l = 0; l < bb; l += 64)
            _mm_prefetch((const char *)blk + pf + l, _MM_HINT_T0);
}

/* Bit k (0..7) of each byte of hb moved to bit 4 (other bits: garbage to
 * mask with 0x10), for the Q5 types' fifth-bit planes. */
AI __m512i x16_bit_to_4(__m512i hb, int k) {
    return k <= 4 ? _mm512_slli_epi16(hb, (unsigned)(4 - k))
                  : _mm512_srli_epi16(hb, (unsigned)(k - 4));
}

/* The 8 k-step vectors (16 rows x 4 unsigned bytes) of one Q4_0 / Q5_0
 * block of a group (kernels.h). Q8_0's steps need no decoding: x16_tile
 * loads them where it uses them. */
AI void x16_decode(int ty, const uint8_t *blk, __m512i *u) {
    if (ty == PX_DTYPE_Q8_0) return;
    const __m512i m4 = _mm512_set1_epi8(0x0f), b4 = _mm512_set1_epi8(0x10);
    __m512i hb = _mm512_setzero_si512();
    if (ty == PX_DTYPE_Q5_0) hb = _mm512_loadu_si512(blk + 288);
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        const __m512i nib = _mm512_loadu_si512(blk + 32 + 64 * j);
        const __m512i lo = nib, hi = _mm512_srli_epi16(nib, 4);
        if (ty == PX_DTYPE_Q5_0) {
            /* bit k of hb is step k's fifth bit: to bit 4, then (nib & 15) | it */
            const int k0 = 2 * j, k1 = 2 * j + 1;
            const __m512i h0 = x16_bit_to_4(hb, k0), h1 = x16_bit_to_4(hb, k1);
            /* u = (nibble & 15) | (fifth bit at 0x10): and, then one ternary op */
            u[k0] = _mm512_ternarylogic_epi32(lo, _mm512_and_si512(h0, b4), m4, 0xEC);
            u[k1] = _mm512_ternarylogic_epi32(hi, _mm512_and_si512(h1, b4), m4, 0xEC);
        } else {
            u[2 * j] = _mm512_and_si512(lo, m4);
            u[2 * j + 1] = _mm512_and_si512(hi, m4);
        }
    }
}

/* Tokens x[0..T) (q8a rows x_stride blocks apart) against blocks [b0, b1)
 * (b0 a multiple of 8) of one group of 16 rows of type ty, lanes = rows,
 * into y[t * y_stride + 0..15] (which holds the sum of the earlier blocks'
 * groups, unless b0 == 0). Each weight zmm feeds T vpdpbusd; the block
 * products follow the canonical tree per lane. pf > 0 prefetches that many
 * bytes ahead of each block, into L2 when farther than X16_PF_L1; into L2,
 * this tile takes the block's cache lines pph, pph + pn, ... */
AI void x16_tile(int ty, const uint8_t *grp, int64_t b0, int64_t b1, const px_block_q8a *x,
                 size_t x_stride, int T, float *y, size_t y_stride, size_t pf, int pph, int pn,
                 uint8_t *dbuf, int dmode) {
    const int bb = x16_unit_bytes(ty);
    const int off = ty == PX_DTYPE_Q8_0 ? 128 : ty == PX_DTYPE_Q5_0 ? 16 : 8;
    __m512 f[4], e[4], q[4], h[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) f[t] =
        b0 ? _mm512_loadu_ps(y + (size_t)t * y_stride) : _mm512_setzero_ps();
    for (int64_t g = b0; g < b1; g += 8) {
        const int cnt = b1 - g < 8 ? (int)(b1 - g) : 8;
        _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
            __m512 p[4];
            if (c < cnt) {
                const uint8_t *blk = grp + (size_t)(g + c) * (size_t)bb;
                x16_prefetch(blk, bb, pf, pph, pn);
                /* dmode 2: the block as decoded by an earlier tile (Q8_0's
                 * shape: scales, then 8 step vectors); 1: decode and keep */
                uint8_t *dblk = dbuf + (size_t)(g + c - b0) * 544;
                const uint8_t *src = dmode == 2 ? dblk : blk;
                const int dec = ty != PX_DTYPE_Q8_0 && dmode != 2;
                const __m512 sv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)src));
                __m512i u[8];
                if (dec) x16_decode(ty, blk, u);
                if (dmode == 1) {
                    memcpy(dblk, blk, 32);
                    _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++)
                        _mm512_storeu_si512(dblk + 32 + 64 * k, u[k]);
                }
                __m512i acc[4];
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[t] =
                    _mm512_set1_epi32(-off * x[(size_t)t * x_stride + g + c].sum);
                _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
                    const __m512i wv = dec ? u[k] : _mm512_loadu_si512(src + 32 + 64 * k);
                    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                        int32_t xv;
                        memcpy(&xv, x[(size_t)t * x_stride + g + c].qs + 4 * k, 4);
                        acc[t] = _mm512_dpbusd_epi32(acc[t], wv, _mm512_set1_epi32(xv));
                    }
                }
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) p[t] = _mm512_mul_ps(
                    _mm512_cvtepi32_ps(acc[t]),
                    _mm512_mul_ps(sv, _mm512_set1_ps(x[(size_t)t * x_stride + g + c].d)));
            } else {
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) p[t] = _mm512_setzero_ps();
            }
            tree_step(c, T, p, e, q, h, f);
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, f[t]);
}

/* The K types (kernels.h): superblocks [s0, s1) of one group against T
 * tokens' q8_K blocks, as x16_tile. Per sub-block the integer dot of each
 * row lane is scaled by its 6-bit (Q4_K) or int8 (Q6_K) scale into isc
 * with vpmulld; Q4_K's mins term is 4 vpdpwssd of (m, m') pairs against
 * (xsum, xsum') pairs per superblock; then the canonical K products. */
AI void x16k_tile(int ty, const uint8_t *grp, int64_t s0, int64_t s1, const px_block_q8_K *x,
                  size_t x_stride, int T, float *y, size_t y_stride, size_t pf, int pph, int pn,
                  uint8_t *dbuf, int dmode) {
    const int bb = x16_unit_bytes(ty);
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30),
                  b4 = _mm512_set1_epi8(0x10);
    __m512 f[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) f[t] =
        s0 ? _mm512_loadu_ps(y + (size_t)t * y_stride) : _mm512_setzero_ps();
    for (int64_t sb = s0; sb < s1; sb++) {
        const uint8_t *blk = grp + (size_t)sb * (size_t)bb;
        x16_prefetch(blk, bb, pf, pph, pn);
        const px_block_q8_K *xb[4];
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) xb[t] =
            x + (size_t)t * x_stride + (size_t)sb;
        __m512i isc[4], imn[4];
        _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) isc[t] = imn[t] =
            _mm512_setzero_si512();
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        if (ty != PX_DTYPE_Q6_K) { /* Q4_K, Q5_K */
            for (int c = 0; c < 8; c++) {
                const __m512i scv = _mm512_and_si512(
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 + 16 * c))),
                    _mm512_set1_epi32(63));
                __m512i acc[4];
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_si512();
                _Pragma("GCC unroll 4") for (int jj = 0; jj < 4; jj++) {
                    /* Q5_K dmode 2 / 1: as Q6_K's below */
                    uint8_t *dst = dbuf + (size_t)(sb - s0) * 4096 + 128 * (size_t)(4 * c + jj);
                    __m512i lo, hi;
                    if (ty == PX_DTYPE_Q5_K && dmode == 2) {
                        lo = _mm512_load_si512(dst);
                        hi = _mm512_load_si512(dst + 64);
                    } else {
                        const __m512i v = _mm512_loadu_si512(blk + 256 + 64 * (4 * c + jj));
                        lo = _mm512_and_si512(v, m4);
                        hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                        if (ty == PX_DTYPE_Q5_K) {
                            /* bit s of the sub-block's vector: step 8c + s's fifth bit */
                            const __m512i hb = _mm512_loadu_si512(blk + 2304 + 64 * c);
                            lo = _mm512_ternarylogic_epi32(lo, x16_bit_to_4(hb, 2 * jj), b4, 0xF8);
                            hi = _mm512_ternarylogic_epi32(hi, x16_bit_to_4(hb, 2 * jj + 1), b4,
                                                           0xF8);
                            if (dmode == 1) {
                                _mm512_store_si512(dst, lo);
                                _mm512_store_si512(dst + 64, hi);
                            }
                        }
                    }
                    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                        acc[t] = _mm512_dpbusd_epi32(
                            acc[t], lo, bcast4((const uint8_t *)xb[t]->qs + 32 * c + 8 * jj));
                        acc[t] = _mm512_dpbusd_epi32(
                            acc[t], hi, bcast4((const uint8_t *)xb[t]->qs + 32 * c + 8 * jj + 4));
                    }
                }
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) isc[t] =
                    _mm512_add_epi32(isc[t], _mm512_mullo_epi32(acc[t], scv));
            }
            _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) {
                const __m512i a = _mm512_srli_epi32(
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 64 + 32 * p))), 6);
                const __m512i b = _mm512_srli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                                                        (const __m128i *)(blk + 64 + 32 * p + 16))),
                                                    6);
                const __m512i mh =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192 + 16 * p)));
                const __m512i mlo = _mm512_or_si512(
                    a, _mm512_slli_epi32(_mm512_and_si512(mh, _mm512_set1_epi32(15)), 2));
                const __m512i mhi =
                    _mm512_or_si512(b, _mm512_slli_epi32(_mm512_srli_epi32(mh, 4), 2));
                const __m512i mp = _mm512_or_si512(mlo, _mm512_slli_epi32(mhi, 16));
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                    const int16_t *bs = xb[t]->bsums + 4 * p;
                    uint32_t pair = (uint32_t)(uint16_t)(bs[0] + bs[1]) |
                                    (uint32_t)(uint16_t)(bs[2] + bs[3]) << 16;
                    imn[t] = _mm512_dpwssd_epi32(imn[t], mp, _mm512_set1_epi32((int32_t)pair));
                }
            }
            const __m512 dmv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                const __m512 dx = _mm512_set1_ps(xb[t]->d);
                __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(isc[t]), _mm512_mul_ps(dv, dx));
                p = _mm512_sub_ps(
                    p, _mm512_mul_ps(_mm512_cvtepi32_ps(imn[t]), _mm512_mul_ps(dmv, dx)));
                f[t] = _mm512_add_ps(f[t], p);
            }
        } else {
            for (int sc = 0; sc < 16; sc++) {
                const __m512i scv =
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * sc)));
                /* dmode 2: the steps as an earlier tile decoded them; 1:
                 * decode and keep them */
                uint8_t *dsb = dbuf + (size_t)(sb - s0) * 4096 + 256 * (size_t)sc;
                __m512i u[4];
                if (dmode == 2) {
                    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) u[k] =
                        _mm512_load_si512(dsb + 64 * k);
                } else {
                    const __m512i hb = _mm512_loadu_si512(blk + 2336 + 64 * sc);
                    const __m512i v0 = _mm512_loadu_si512(blk + 288 + 128 * sc),
                                  v1 = _mm512_loadu_si512(blk + 288 + 128 * sc + 64);
                    u[0] = _mm512_or_si512(_mm512_and_si512(v0, m4),
                                           _mm512_and_si512(_mm512_slli_epi16(hb, 4), m30));
                    u[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v0, 4), m4),
                                           _mm512_and_si512(_mm512_slli_epi16(hb, 2), m30));
                    u[2] = _mm512_or_si512(_mm512_and_si512(v1, m4), _mm512_and_si512(hb, m30));
                    u[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v1, 4), m4),
                                           _mm512_and_si512(_mm512_srli_epi16(hb, 2), m30));
                    if (dmode == 1)
                        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++)
                            _mm512_store_si512(dsb + 64 * k, u[k]);
                }
                _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) {
                    __m512i acc = _mm512_set1_epi32(-32 * (int32_t)xb[t]->bsums[sc]);
                    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) acc = _mm512_dpbusd_epi32(
                        acc, u[k], bcast4((const uint8_t *)xb[t]->qs + 16 * sc + 4 * k));
                    isc[t] = _mm512_add_epi32(isc[t], _mm512_mullo_epi32(acc, scv));
                }
            }
            _Pragma("GCC unroll 4") for (int t = 0; t < T; t++) f[t] =
                _mm512_add_ps(f[t], _mm512_mul_ps(_mm512_cvtepi32_ps(isc[t]),
                                                  _mm512_mul_ps(dv, _mm512_set1_ps(xb[t]->d))));
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < T; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, f[t]);
}

/* Per group, the blocks in slices that stay in L1 while every token passes
 * over them, four tokens at a time (the partial sums wait in y between
 * slices). Prefetch distances and levels measured with pollux-kbench -t 2
 * on Q8_0 weights beyond L3 (1152x262144 at 1 token, 1152x65536 at 4 and
 * 16): a decode step streams, and a short distance into L1 did best;
 * batches spend longer per byte, and 16 KB ahead into L2 gave 10-15% over
 * L1. The L2 prefetches are shared by the first (up to) 4 token passes over
 * a slice: issued by the first pass alone they came in bursts DRAM fell
 * behind on. Spread so, 32 KB ahead streamed 16 tokens 20-25% faster than
 * 16 KB from one pass (1152x196608 and 6912x32768; 8 tokens 30%, 64 tokens
 * 4%, in-L3 shapes unchanged).
 * The K types go by superblock, in slices of about 18 KB. Single tokens of
 * a K type streaming from DRAM (-x TYPE:6912:65536:1:x16): Q4_K ran best
 * with no software prefetch, Q6_K, whose kernel spends longer per byte,
 * with 8 KB ahead into L1 (1 KB: 0.45x the speed). Q5_0 and Q6_K with two
 * or more passes: the first decodes the slice's step vectors into dbuf
 * and the others read them there (Q5_0 16 tokens 6-11% faster, 512 tokens
 * 13-22%; Q6_K 6-16%; Q4_0 and Q4_K decode in a few operations, and
 * keeping them was 5% slower). */
enum { X16K_PF_Q6 = 8192 };

/* One pass of T tokens over units [u0, u1) of a group: blocks of 32, or
 * superblocks for the K types. */
AI void x16_pass(int ty, const uint8_t *grp, int64_t u0, int64_t u1, const void *x, size_t x_stride,
                 int T, float *y, size_t y_stride, size_t pf, int pph, int pn, uint8_t *dbuf,
                 int dmode) {
    if (ty == PX_DTYPE_Q4_K || ty == PX_DTYPE_Q5_K || ty == PX_DTYPE_Q6_K)
        x16k_tile(ty, grp, u0, u1, x, x_stride, T, y, y_stride, pf, pph, pn, dbuf, dmode);
    else
        x16_tile(ty, grp, u0, u1, x, x_stride, T, y, y_stride, pf, pph, pn, dbuf, dmode);
}

AI void x16_gemm(int ty, int64_t n, const void *w, int n_groups, const void *x, size_t x_stride,
                 int n_tok, float *y, size_t y_stride) {
    const int k = ty == PX_DTYPE_Q4_K || ty == PX_DTYPE_Q5_K || ty == PX_DTYPE_Q6_K;
    const int64_t nu = k ? n / 256 : n / 32;
    /* Q5_K and Q6_K slices decoded hold 4 KB a superblock: at most 7 fit dbuf */
    const int64_t slice = ty == PX_DTYPE_Q4_K ? 8 : k ? 5 : X16_SLICE;
    const int64_t sl = nu <= slice * 3 / 2 ? nu : slice;
    const size_t ub = (size_t)x16_unit_bytes(ty);
    const size_t xb = k ? sizeof(px_block_q8_K) : sizeof(px_block_q8a); /* activation block */
    const size_t pf = n_tok >= 4            ? X16_PF_L2
                      : !k                  ? X16_PF_L1
                      : ty == PX_DTYPE_Q4_K ? 0
                                            : X16K_PF_Q6;
    const int keep =
        (ty == PX_DTYPE_Q5_0 || ty == PX_DTYPE_Q5_K || ty == PX_DTYPE_Q6_K) && n_tok >= 8;
    const int dm = keep ? 2 : 0, pn = pf > X16_PF_L1 ? PX_MIN(4, n_tok / 4) : 1;
    /* decoded slices: up to 48 blocks of 544 bytes, or 7 Q5_K / Q6_K superblocks of 4096 */
    _Alignas(64) uint8_t dbuf[7 * 4096];
    for (int g = 0; g < n_groups; g++) {
        const uint8_t *grp = (const uint8_t *)w + (size_t)g * (size_t)nu * ub;
        float *yg = y + (size_t)16 * (size_t)g;
        for (int64_t u0 = 0; u0 < nu; u0 += sl) {
            const int64_t u1 = PX_MIN(nu, u0 + sl);
            int t = 0;
            for (; t + 4 <= n_tok; t += 4)
                x16_pass(ty, grp, u0, u1, (const char *)x + (size_t)t * x_stride * xb, x_stride, 4,
                         yg + (size_t)t * y_stride, y_stride, t / 4 < pn ? pf : 0, t / 4, pn, dbuf,
                         keep && t == 0 ? 1 : dm);
            const void *xr = (const char *)x + (size_t)t * x_stride * xb;
            float *yr = yg + (size_t)t * y_stride;
            const size_t pr = t == 0 ? pf : 0;
            switch (n_tok - t) {
            case 3:
                x16_pass(ty, grp, u0, u1, xr, x_stride, 3, yr, y_stride, pr, 0, 1, dbuf, dm);
                break;
            case 2:
                x16_pass(ty, grp, u0, u1, xr, x_stride, 2, yr, y_stride, pr, 0, 1, dbuf, dm);
                break;
            case 1:
                x16_pass(ty, grp, u0, u1, xr, x_stride, 1, yr, y_stride, pr, 0, 1, dbuf, dm);
                break;
            default: break;
            }
        }
    }
}

#define X16_FN(NAME, TY)                                                                           \
    static void NAME(int64_t n, const void *w, int n_groups, const void *x, size_t x_stride,       \
                     int n_tok, float *y, size_t y_stride) {                                       \
        x16_gemm(TY, n, w, n_groups, x, x_stride, n_tok, y, y_stride);                             \
    }
X16_FN(x16_q4_0, PX_DTYPE_Q4_0)
X16_FN(x16_q5_0, PX_DTYPE_Q5_0)
X16_FN(x16_q8_0, PX_DTYPE_Q8_0)
X16_FN(x16_q4_K, PX_DTYPE_Q4_K)
X16_FN(x16_q5_K, PX_DTYPE_Q5_K)
X16_FN(x16_q6_K, PX_DTYPE_Q6_K)

const px_kernels px__kernels_avx512 = {
    .name = "avx512-vnni",
    PX_X86_TABLE_COMMON,
    .gemm16 = {[PX_DTYPE_Q4_0] = gemm16_q4_0,
               [PX_DTYPE_Q5_0] = gemm16_q5_0,
               [PX_DTYPE_Q8_0] = gemm16_q8_0,
               [PX_DTYPE_Q4_K] = gemm16_q4_K,
               [PX_DTYPE_Q5_K] = gemm16_q5_K,
               [PX_DTYPE_Q6_K] = gemm16_q6_K},
    .x16 = {[PX_DTYPE_Q4_0] = x16_q4_0,
            [PX_DTYPE_Q5_0] = x16_q5_0,
            [PX_DTYPE_Q8_0] = x16_q8_0,
            [PX_DTYPE_Q4_K] = x16_q4_K,
            [PX_DTYPE_Q5_K] = x16_q5_K,
            [PX_DTYPE_Q6_K] = x16_q6_K},
};

#else
typedef int px_kernels_avx512_unused;
#endif
