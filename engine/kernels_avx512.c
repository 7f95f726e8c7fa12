/* kernels_avx512.c — the AVX-512 VNNI kernel set (built with AVX-512
 * F/BW/VL/DQ/VNNI + AVX2/FMA/F16C flags, chosen at run time from cpuid).
 *
 * Row dots (decode) share kernels_x86.h with the AVX2 set, on 256-bit
 * vpdpbusd. Batches use gemm16: 16 tokens in the 16 lanes of a zmm, the
 * activations transposed and offset to unsigned (x + 128) by quantize_q8t, and
 * each 4-byte group of signed weights broadcast from memory into vpdpbusd, so
 * one weight load serves 16 tokens. The +128 is undone per half block with
 * -128 * sum(w). */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels.h"

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
    const __m256i vidx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112); /* qu[k][t] */
    const __m256i off = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < n / 32; b++) {
        for (int t = 0; t < n_tok; t++) {
            float d;
            int32_t sum;
            __m256i q = quant32(x + (size_t)t * x_stride + 32 * b, &d, &sum);
            _mm256_i32scatter_epi32((int *)y[b].qu[0][t], vidx, _mm256_xor_si256(q, off), 4);
            y[b].d[t] = d;
            y[b].ds[t] = d * (float)sum;
        }
        for (int t = n_tok; t < 16; t++) {
            for (int k = 0; k < 8; k++)
                memset(y[b].qu[k][t], 128, 4);
            y[b].d[t] = 0.0f;
            y[b].ds[t] = 0.0f;
        }
    }
}

/* ---- weight decoding for gemm16 ------------------------------------------ */

/* One superblock (or one 32-block for the _0 types) of one row, decoded to
 * signed bytes, with per-chunk-of-32 scales for its two halves, the min
 * weight (Q4_K/Q5_K) and the -128 * sum(w) corrections. */
typedef struct dsb {
    int8_t w[256] __attribute__((aligned(32)));
    float sa[8], sb[8], mn[8];
    int32_t ca[8], cb[8];
} dsb;

static inline __attribute__((always_inline)) void put_chunk(dsb *o, int c, __m256i q, float sa,
                                                            float sb, float mn) {
    _mm256_store_si256((__m256i *)(o->w + 32 * c), q);
    __m256i sad =
        _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)), _mm256_setzero_si256());
    __m128i lo = _mm256_castsi256_si128(sad), hi = _mm256_extracti128_si256(sad, 1);
    int64_t s_a = _mm_cvtsi128_si64(lo) + _mm_extract_epi64(lo, 1) - 16 * 128;
    int64_t s_b = _mm_cvtsi128_si64(hi) + _mm_extract_epi64(hi, 1) - 16 * 128;
    o->ca[c] = (int32_t)(-128 * s_a);
    o->cb[c] = (int32_t)(-128 * s_b);
    o->sa[c] = sa;
    o->sb[c] = sb;
    o->mn[c] = mn;
}

static inline __attribute__((always_inline)) void dsb_q4_0(const void *row, int64_t i, dsb *o) {
    const px_block_q4_0 *b = (const px_block_q4_0 *)row + i;
    float d = f16(b->d);
    put_chunk(o, 0, _mm256_sub_epi8(nib16(b->qs), _mm256_set1_epi8(8)), d, d, 0.0f);
}

static inline __attribute__((always_inline)) void dsb_q5_0(const void *row, int64_t i, dsb *o) {
    const px_block_q5_0 *b = (const px_block_q5_0 *)row + i;
    float d = f16(b->d);
    put_chunk(o, 0, _mm256_sub_epi8(dec_q5_0(b), _mm256_set1_epi8(16)), d, d, 0.0f);
}

static inline __attribute__((always_inline)) void dsb_q8_0(const void *row, int64_t i, dsb *o) {
    const px_block_q8_0 *b = (const px_block_q8_0 *)row + i;
    float d = f16(b->d);
    put_chunk(o, 0, _mm256_loadu_si256((const __m256i *)b->qs), d, d, 0.0f);
}

#define DSB_K45(NAME, BLOCK, DECODE)                                                               \
    static inline __attribute__((always_inline)) void NAME(const void *row, int64_t i, dsb *o) {   \
        const BLOCK *b = (const BLOCK *)row + i;                                                   \
        float d = f16(b->d), dmin = f16(b->dmin);                                                  \
        for (int c = 0; c < 4; c++) {                                                              \
            int sc0, m0, sc1, m1;                                                                  \
            px__k4_scale_min(2 * c, b->scales, &sc0, &m0);                                         \
            px__k4_scale_min(2 * c + 1, b->scales, &sc1, &m1);                                     \
            __m256i lo, hi;                                                                        \
            DECODE;                                                                                \
            put_chunk(o, 2 * c, lo, d * (float)sc0, d * (float)sc0, dmin * (float)m0);             \
            put_chunk(o, 2 * c + 1, hi, d * (float)sc1, d * (float)sc1, dmin * (float)m1);         \
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
            put_chunk(o, c, _mm256_sub_epi8(q[k], _mm256_set1_epi8(32)),
                      d * (float)b->scales[2 * c], d * (float)b->scales[2 * c + 1], 0.0f);
        }
    }
}

/* ---- gemm16 -------------------------------------------------------------- */

static inline __attribute__((always_inline)) __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* Chunk c of decoded rows o0 and o1 against one q8t block: accumulates the
 * 16 token sums of each row into f0 / f1. */
static inline __attribute__((always_inline)) void chunk2(const dsb *o0, const dsb *o1, int c,
                                                         const px_block_q8t *xb, int has_min,
                                                         __m512 *f0, __m512 *f1) {
    __m512i a0 = _mm512_set1_epi32(o0->ca[c]), b0 = _mm512_set1_epi32(o0->cb[c]);
    __m512i a1 = _mm512_set1_epi32(o1->ca[c]), b1 = _mm512_set1_epi32(o1->cb[c]);
    const int8_t *w0 = o0->w + 32 * c, *w1 = o1->w + 32 * c;
    for (int k = 0; k < 4; k++) {
        __m512i xv = _mm512_loadu_si512(xb->qu[k]);
        a0 = _mm512_dpbusd_epi32(a0, xv, bcast4(w0 + 4 * k));
        a1 = _mm512_dpbusd_epi32(a1, xv, bcast4(w1 + 4 * k));
    }
    for (int k = 4; k < 8; k++) {
        __m512i xv = _mm512_loadu_si512(xb->qu[k]);
        b0 = _mm512_dpbusd_epi32(b0, xv, bcast4(w0 + 4 * k));
        b1 = _mm512_dpbusd_epi32(b1, xv, bcast4(w1 + 4 * k));
    }
    __m512 dx = _mm512_loadu_ps(xb->d);
    __m512 s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_set1_ps(o0->sa[c]),
                                _mm512_mul_ps(_mm512_cvtepi32_ps(b0), _mm512_set1_ps(o0->sb[c])));
    __m512 s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1), _mm512_set1_ps(o1->sa[c]),
                                _mm512_mul_ps(_mm512_cvtepi32_ps(b1), _mm512_set1_ps(o1->sb[c])));
    *f0 = _mm512_fmadd_ps(s0, dx, *f0);
    *f1 = _mm512_fmadd_ps(s1, dx, *f1);
    if (has_min) {
        __m512 ds = _mm512_loadu_ps(xb->ds);
        *f0 = _mm512_fnmadd_ps(_mm512_set1_ps(o0->mn[c]), ds, *f0);
        *f1 = _mm512_fnmadd_ps(_mm512_set1_ps(o1->mn[c]), ds, *f1);
    }
}

static inline __attribute__((always_inline)) void store_col(__m512 v, float *y, size_t y_stride,
                                                            int n_tok) {
    __m512i idx =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32((int)y_stride));
    _mm512_mask_i32scatter_ps(y, (__mmask16)((1u << n_tok) - 1), idx, v, 4);
}

/* Rows are taken two at a time so each activation load feeds two vpdpbusd;
 * an odd last row is paired with itself. */
#define GEMM16(NAME, DSB, SB_ELEMS, CHUNKS, HAS_MIN)                                               \
    static void NAME(int64_t n, const void *w, size_t w_stride, int n_rows,                        \
                     const px_block_q8t *xt, int n_tok, float *y, size_t y_stride) {               \
        dsb o0, o1;                                                                                \
        for (int r = 0; r < n_rows; r += 2) {                                                      \
            const char *row0 = (const char *)w + (size_t)r * w_stride;                             \
            const char *row1 = r + 1 < n_rows ? row0 + w_stride : row0;                            \
            __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps();                             \
            for (int64_t i = 0; i < n / (SB_ELEMS); i++) {                                         \
                DSB(row0, i, &o0);                                                                 \
                DSB(row1, i, &o1);                                                                 \
                for (int c = 0; c < (CHUNKS); c++)                                                 \
                    chunk2(&o0, &o1, c, xt + i * (CHUNKS) + c, HAS_MIN, &f0, &f1);                 \
            }                                                                                      \
            store_col(f0, y + r, y_stride, n_tok);                                                 \
            if (r + 1 < n_rows) store_col(f1, y + r + 1, y_stride, n_tok);                         \
        }                                                                                          \
    }
GEMM16(gemm16_q4_0, dsb_q4_0, 32, 1, 0)
GEMM16(gemm16_q5_0, dsb_q5_0, 32, 1, 0)
GEMM16(gemm16_q8_0, dsb_q8_0, 32, 1, 0)
GEMM16(gemm16_q4_K, dsb_q4_K, 256, 8, 1)
GEMM16(gemm16_q5_K, dsb_q5_K, 256, 8, 1)
GEMM16(gemm16_q6_K, dsb_q6_K, 256, 8, 0)

const px_kernels px__kernels_avx512 = {
    .name = "avx512-vnni",
    PX_X86_TABLE_COMMON,
    .gemm16 = {[PX_DTYPE_Q4_0] = gemm16_q4_0,
               [PX_DTYPE_Q5_0] = gemm16_q5_0,
               [PX_DTYPE_Q8_0] = gemm16_q8_0,
               [PX_DTYPE_Q4_K] = gemm16_q4_K,
               [PX_DTYPE_Q5_K] = gemm16_q5_K,
               [PX_DTYPE_Q6_K] = gemm16_q6_K},
    .quantize_q8t = quantize_q8t,
};

#else
typedef int px_kernels_avx512_unused;
#endif
