/* kernels_x86.h — the 256-bit row kernels shared by kernels_avx2.c and
 * kernels_avx512.c (included by both, compiled once per instruction set).
 *
 * The includer defines two integer primitives before including this file:
 *   mul_sum_us8(acc, a, b):   acc + per-dword sums of a (u8) * b (s8)
 *   madd16_acc(acc, p, sv):   acc + per-dword sums of the words p * sv
 * AVX2 builds them on vpmaddubsw / vpmaddwd (inputs here keep |a * b| pair
 * sums below 2^15), AVX-512 on vpdpbusd / vpdpwssd. Everything else is AVX2
 * + FMA + F16C.
 * Owns: nothing. Any thread. Included only from the kernel set files. */
#ifndef PX_KERNELS_X86_H
#define PX_KERNELS_X86_H

#include <immintrin.h>
#include <math.h>

#include "kernels.h"
#include "ops.h"
#include "px.h"

/* The canonical combination (kernels.h) is separately rounded mul and add:
 * no contraction (GCC does none under -std=c11; clang needs telling). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define UNROLL_T _Pragma("GCC unroll 4")
#define ACT(x, t, stride) ((const void *)((const char *)(x) + (size_t)(t) * (stride)))

ALWAYS_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

ALWAYS_INLINE float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* _mm256_hadd_epi32 as two shuffles and an add, all single-uop (vphaddd
 * is not; with group_tree below this took ~5% off a _0 decode row on
 * Zen 4). Integer adds are exact, so the order of the adds is free. */
ALWAYS_INLINE __m256i hadd8(__m256i a, __m256i b) {
    __m256 fa = _mm256_castsi256_ps(a), fb = _mm256_castsi256_ps(b);
    __m256i ev = _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(2, 0, 2, 0)));
    __m256i od = _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_add_epi32(ev, od);
}

/* v in dword 0, zeros elsewhere (a vmovd). */
ALWAYS_INLINE __m256i lane0_epi32(int v) {
    return _mm256_setr_epi32(v, 0, 0, 0, 0, 0, 0, 0);
}

ALWAYS_INLINE float f16(px_f16 h) {
    return _cvtsh_ss(h);
}

/* ---- block decoders: 32 quants as bytes ---------------------------------- */

/* Low nibbles of 16 bytes as elements 0..15, high nibbles as 16..31. */
ALWAYS_INLINE __m256i nib16(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0xf);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* Byte j is 0xff where bit j of x is set. */
ALWAYS_INLINE __m256i bits32(uint32_t x) {
    __m256i v = _mm256_set1_epi32((int)x);
    const __m256i shuf =
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_and_si256(_mm256_shuffle_epi8(v, shuf), bit);
    return _mm256_cmpeq_epi8(v, bit);
}

ALWAYS_INLINE __m256i dec_q5_0(const px_block_q5_0 *b) {
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    /* the 5th bits as a byte mask: one masked add instead of four ops */
    __m256i lo = nib16(b->qs);
    return _mm256_mask_add_epi8(lo, (__mmask32)qh, lo, _mm256_set1_epi8(0x10));
#else
    __m256i hi = _mm256_and_si256(bits32(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(nib16(b->qs), hi);
#endif
}

/* Q4_K / Q5_K chunk c (0..3) of 64 elements: lo = sub-block 2c, hi = 2c+1. */
ALWAYS_INLINE void dec_q4_K_chunk(const uint8_t *qs, int c, __m256i *lo, __m256i *hi) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    __m256i m = _mm256_set1_epi8(0xf);
    *lo = _mm256_and_si256(v, m);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
}

ALWAYS_INLINE void dec_q5_K_chunk(const px_block_q5_K *b, int c, __m256i *lo, __m256i *hi) {
    dec_q4_K_chunk(b->qs, c, lo, hi);
    __m256i qh = _mm256_loadu_si256((const __m256i *)b->qh);
    __m256i z = _mm256_setzero_si256(), s16 = _mm256_set1_epi8(0x10);
    __m256i h0 = _mm256_cmpeq_epi8(_mm256_and_si256(qh, _mm256_set1_epi8((char)(1 << (2 * c)))), z);
    __m256i h1 = _mm256_cmpeq_epi8(_mm256_and_si256(qh, _mm256_set1_epi8((char)(2 << (2 * c)))), z);
    *lo = _mm256_or_si256(*lo, _mm256_andnot_si256(h0, s16));
    *hi = _mm256_or_si256(*hi, _mm256_andnot_si256(h1, s16));
}

/* Q6_K half h (0..1): q[i] holds elements 128h + 32i .. +31, values 0..63. */
ALWAYS_INLINE void dec_q6_K_half(const px_block_q6_K *b, int h, __m256i q[4]) {
    const uint8_t *ql = b->ql + 64 * h, *qhp = b->qh + 32 * h;
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
    __m256i m4 = _mm256_set1_epi8(0xf), m30 = _mm256_set1_epi8(0x30);
    q[0] =
        _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    q[1] =
        _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    q[2] =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m30));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

/* ---- activation quantizers ----------------------------------------------- */

/* Packs 4 x 8 int32 (values in -127..127) into 32 int8 in order. */
ALWAYS_INLINE __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

ALWAYS_INLINE __m256 absf(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* One block of 32: returns the packed quants, sets *d and *sum. */
ALWAYS_INLINE __m256i quant32(const float *x, float *d, int32_t *sum) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(absf(v0), absf(v1)), _mm256_max_ps(absf(v2), absf(v3)));
    float amax = hmax_ps(m);
    __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
    __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
    __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
    __m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
    *d = amax / 127.0f;
    *sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    return pack32(q0, q1, q2, q3);
}

static void quantize_q8a(const float *x, px_block_q8a *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i q = quant32(x + 32 * b, &y[b].d, &y[b].sum);
        _mm256_storeu_si256((__m256i *)y[b].qs, q);
    }
}

static void quantize_q8k(const float *x, px_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 256; j += 8)
            m = _mm256_max_ps(m, absf(_mm256_loadu_ps(x + j)));
        float amax = hmax_ps(m);
        __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        for (int j = 0; j < 256; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), id));
            y[b].bsums[j / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            y[b].bsums[j / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(y[b].qs + j), pack32(q[0], q[1], q[2], q[3]));
        }
        y[b].d = amax / 127.0f;
    }
}

/* ---- row dots: one weight row against nrc activation rows ---------------- */

/* _0 types, in the canonical order of kernels.h. A block's dot stays as 8
 * dword partials until its group of 8 is done; pair hadds then put the
 * exact block sums in dwords 0..7, which are scaled and summed by the
 * group tree. The result for a token does not depend on nrc. The block
 * scales dw_b * dx_b are one vector mul per group: f16 weight scales are
 * gathered as bits and widened by one vcvtph2ps (8 scalar conversions and
 * muls cost ~10% of a decode row). */

/* Dwords c of the result = the sum of the 8 dwords of block c's partials,
 * from k0 = hadd(hadd(A0, A1), hadd(A2, A3)) and k1 likewise for A4..A7. */
ALWAYS_INLINE __m256i block_sums8(__m256i k0, __m256i k1) {
    return _mm256_add_epi32(_mm256_permute2x128_si256(k0, k1, 0x20),
                            _mm256_permute2x128_si256(k0, k1, 0x31));
}

/* ((p0+p1)+(p2+p3)) + ((p4+p5)+(p6+p7)): the canonical group tree, on
 * single-uop shuffles (no vhaddps). */
ALWAYS_INLINE float group_tree(__m256 p) {
    __m256 a = _mm256_add_ps(p, _mm256_movehdup_ps(p)); /* p0+p1 in 0, p2+p3 in 2 | 4, 6 */
    a = _mm256_add_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(3, 2, 3, 2))); /* in 0 | 4 */
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)));
}

/* DECODE sets the weight block's bytes q (and aq for Q8_0); PARTIAL is the
 * dword partials of the block dot against xq (activation bytes of xb). */
#define DOT_0_DEF(NAME, BLOCK, DECODE, PARTIAL)                                                    \
    /* Group g (cnt blocks, 8 but at the row's end) into acc[t]. */                                \
    ALWAYS_INLINE void NAME##_grp(const BLOCK *wb, int64_t g, int cnt, const void *x, size_t bx,   \
                                  int nrc, float *acc) {                                           \
        __m256i prev[PX_NRC_MAX], h[PX_NRC_MAX], k0[PX_NRC_MAX], k1[PX_NRC_MAX];                   \
        float dxs[PX_NRC_MAX][8]; /* the activation scales (0: no block) */                        \
        px_f16 hws[8];            /* the weight scales' f16 bits (0: no block) */                  \
        _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {                                      \
            const int64_t b = g + c;                                                               \
            __m256i p[PX_NRC_MAX];                                                                 \
            if (c < cnt) {                                                                         \
                DECODE;                                                                            \
                hws[c] = wb[b].d;                                                                  \
                UNROLL_T for (int t = 0; t < nrc; t++) {                                           \
                    const px_block_q8a *xb = (const px_block_q8a *)ACT(x, t, bx) + b;              \
                    __m256i xq = _mm256_loadu_si256((const __m256i *)xb->qs);                      \
                    p[t] = PARTIAL;                                                                \
                    dxs[t][c] = xb->d;                                                             \
                }                                                                                  \
            } else {                                                                               \
                hws[c] = 0;                                                                        \
                UNROLL_T for (int t = 0; t < nrc; t++) {                                           \
                    p[t] = _mm256_setzero_si256();                                                 \
                    dxs[t][c] = 0.0f;                                                              \
                }                                                                                  \
            }                                                                                      \
            UNROLL_T for (int t = 0; t < nrc; t++) {                                               \
                if (!(c & 1)) {                                                                    \
                    prev[t] = p[t];                                                                \
                } else if (!(c & 2)) {                                                             \
                    h[t] = hadd8(prev[t], p[t]);                                                   \
                } else {                                                                           \
                    __m256i h2 = hadd8(prev[t], p[t]);                                             \
                    if (c < 4)                                                                     \
                        k0[t] = hadd8(h[t], h2);                                                   \
                    else                                                                           \
                        k1[t] = hadd8(h[t], h2);                                                   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        const __m128i hw =                                                                         \
            _mm_setr_epi16((short)hws[0], (short)hws[1], (short)hws[2], (short)hws[3],             \
                           (short)hws[4], (short)hws[5], (short)hws[6], (short)hws[7]);            \
        UNROLL_T for (int t = 0; t < nrc; t++) {                                                   \
            __m256 dx = _mm256_setr_ps(dxs[t][0], dxs[t][1], dxs[t][2], dxs[t][3], dxs[t][4],      \
                                       dxs[t][5], dxs[t][6], dxs[t][7]);                           \
            /* dw_b * dx_b in one vector mul (the same rounding as 8 scalar ones) */               \
            __m256 sv = _mm256_mul_ps(_mm256_cvtph_ps(hw), dx);                                    \
            __m256 is = _mm256_cvtepi32_ps(block_sums8(k0[t], k1[t]));                             \
            acc[t] = acc[t] + group_tree(_mm256_mul_ps(is, sv));                                   \
        }                                                                                          \
    }                                                                                              \
    ALWAYS_INLINE void NAME(int64_t n, const void *w, const void *x, size_t bx, int nrc,           \
                            float *out) {                                                          \
        const BLOCK *wb = w;                                                                       \
        float acc[PX_NRC_MAX];                                                                     \
        UNROLL_T for (int t = 0; t < nrc; t++) acc[t] = 0.0f;                                      \
        const int64_t nb = n / 32;                                                                 \
        int64_t g = 0;                                                                             \
        for (; g + 8 <= nb; g += 8)                                                                \
            NAME##_grp(wb, g, 8, x, bx, nrc, acc);                                                 \
        if (g < nb) NAME##_grp(wb, g, (int)(nb - g), x, bx, nrc, acc);                             \
        UNROLL_T for (int t = 0; t < nrc; t++) out[t] = acc[t];                                    \
    }

DOT_0_DEF(dot_q4_0_n, px_block_q4_0, __m256i q = nib16(wb[b].qs),
          mul_sum_us8(lane0_epi32(-8 * xb->sum), q, xq))
DOT_0_DEF(dot_q5_0_n, px_block_q5_0, __m256i q = dec_q5_0(&wb[b]),
          mul_sum_us8(lane0_epi32(-16 * xb->sum), q, xq))
/* Q8_0: signed weights; |w| goes in the unsigned slot, its sign onto x. */
DOT_0_DEF(dot_q8_0_n, px_block_q8_0, __m256i q = _mm256_loadu_si256((const __m256i *)wb[b].qs);
          __m256i aq = _mm256_abs_epi8(q),
          mul_sum_us8(_mm256_setzero_si256(), aq, _mm256_sign_epi8(xq, q)))

/* ---- K-quant row dots ---------------------------------------------------- */

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K block,
 * unpacked from the 12-byte 6-bit packing in four 32-bit steps. */
ALWAYS_INLINE __m128i k4_scales_mins(const uint8_t *q) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)m_lo, (int)m_hi);
}

/* Word s of both 128-bit lanes of v (8 words each) broadcast to all 16. */
ALWAYS_INLINE __m256i bcast_word(__m256i v, int s) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(((2 * s + 1) << 8) | (2 * s))));
}

/* Sub-block sums of the 16-bit products p (u8 weights times s8 x, no
 * saturation for quants < 64) times the 16-bit scales in sv, added to acc. */
#define MADD16(acc, a, b, sv) madd16_acc(acc, _mm256_maddubs_epi16(a, b), sv)

/* Q4_K / Q5_K: sum over sub-blocks of sc * dot(q, x), minus the mins'
 * share dmin * sum(m * bsum pairs), both vectorized per superblock and
 * reduced to exact integers, then combined as in kernels.h. */
#define DOT_K45_BODY(BLOCK, DECODE)                                                                \
    const BLOCK *wb = w;                                                                           \
    __m128 acc[PX_NRC_MAX]; /* in lane 0 */                                                        \
    UNROLL_T for (int t = 0; t < nrc; t++) acc[t] = _mm_setzero_ps();                              \
    const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15); \
    for (int64_t b = 0; b < n / 256; b++) {                                                        \
        __m128i sm = k4_scales_mins(wb[b].scales);                                                 \
        __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));                         \
        __m256i mn16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup)); /* m0 m0 m1 m1 .. */       \
        float d = f16(wb[b].d), dmin = f16(wb[b].dmin);                                            \
        const __m128 ddm = _mm_setr_ps(d, dmin, 0.0f, 0.0f);                                       \
        __m256i ia[PX_NRC_MAX], ib[PX_NRC_MAX];                                                    \
        UNROLL_T for (int t = 0; t < nrc; t++) ia[t] = ib[t] = _mm256_setzero_si256();             \
        UNROLL_T for (int c = 0; c < 4; c++) {                                                     \
            __m256i lo, hi;                                                                        \
            DECODE;                                                                                \
            __m256i s0 = bcast_word(sc16, 2 * c), s1 = bcast_word(sc16, 2 * c + 1);                \
            UNROLL_T for (int t = 0; t < nrc; t++) {                                               \
                const px_block_q8_K *xb = (const px_block_q8_K *)ACT(x, t, bx) + b;                \
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c));               \
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(xb->qs + 64 * c + 32));          \
                ia[t] = MADD16(ia[t], lo, x0, s0);                                                 \
                ib[t] = MADD16(ib[t], hi, x1, s1);                                                 \
            }                                                                                      \
        }                                                                                          \
        UNROLL_T for (int t = 0; t < nrc; t++) {                                                   \
            const px_block_q8_K *xb = (const px_block_q8_K *)ACT(x, t, bx) + b;                    \
            __m256i bs = _mm256_loadu_si256((const __m256i *)xb->bsums);                           \
            /* both exact sums in one reduction (isc in dword 0, imn in 1), */                     \
            /* then the canonical float ops, kept in xmm (no GPR round trip) */                    \
            __m256i v =                                                                            \
                _mm256_hadd_epi32(_mm256_add_epi32(ia[t], ib[t]), _mm256_madd_epi16(bs, mn16));    \
            __m128i u = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));  \
            __m128 pr = _mm_mul_ps(_mm_cvtepi32_ps(_mm_hadd_epi32(u, u)),                          \
                                   _mm_mul_ps(ddm, _mm_set1_ps(xb->d)));                           \
            acc[t] = _mm_add_ss(acc[t], _mm_sub_ss(pr, _mm_movehdup_ps(pr)));                      \
        }                                                                                          \
    }                                                                                              \
    UNROLL_T for (int t = 0; t < nrc; t++) out[t] = _mm_cvtss_f32(acc[t]);

ALWAYS_INLINE void dot_q4_K_n(int64_t n, const void *w, const void *x, size_t bx, int nrc,
                              float *out){
    DOT_K45_BODY(px_block_q4_K, dec_q4_K_chunk(wb[b].qs, c, &lo, &hi))}

ALWAYS_INLINE
    void dot_q5_K_n(int64_t n, const void *w, const void *x, size_t bx, int nrc,
                    float *out){DOT_K45_BODY(px_block_q5_K, dec_q5_K_chunk(&wb[b], c, &lo, &hi))}

/* Q6_K: quants 0..63 with int8 scales per 16; the -32 offset comes off as
 * 32 * sum(sc * bsums), in the same integer accumulator. */
ALWAYS_INLINE
    void dot_q6_K_n(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    const px_block_q6_K *wb = w;
    __m128 acc[PX_NRC_MAX]; /* in lane 0 */
    UNROLL_T for (int t = 0; t < nrc; t++) acc[t] = _mm_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        __m128i s8 = _mm_loadu_si128((const __m128i *)wb[b].scales);
        __m256i sc16 = _mm256_cvtepi8_epi16(s8); /* all 16 scales, for the offset */
        /* scales 0..7 and 8..15 in both lanes: word 2i in lane 0, 2i+1 in lane 1 */
        __m256i sa = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16));
        __m256i sb = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(sc16, 1));
        float d = f16(wb[b].d);
        __m256i ia[PX_NRC_MAX], ib[PX_NRC_MAX];
        UNROLL_T for (int t = 0; t < nrc; t++) ia[t] = ib[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            __m256i q[4];
            dec_q6_K_half(&wb[b], h, q);
            __m256i sh = h ? sb : sa;
            UNROLL_T for (int i = 0; i < 4; i++) {
                int c = 4 * h + i; /* chunk of 32: scales 2c (bytes 0..15), 2c+1 */
                __m256i ctl = _mm256_setr_epi8(
                    (char)(4 * i), (char)(4 * i + 1), (char)(4 * i), (char)(4 * i + 1),
                    (char)(4 * i), (char)(4 * i + 1), (char)(4 * i), (char)(4 * i + 1),
                    (char)(4 * i), (char)(4 * i + 1), (char)(4 * i), (char)(4 * i + 1),
                    (char)(4 * i), (char)(4 * i + 1), (char)(4 * i), (char)(4 * i + 1),
                    (char)(4 * i + 2), (char)(4 * i + 3), (char)(4 * i + 2), (char)(4 * i + 3),
                    (char)(4 * i + 2), (char)(4 * i + 3), (char)(4 * i + 2), (char)(4 * i + 3),
                    (char)(4 * i + 2), (char)(4 * i + 3), (char)(4 * i + 2), (char)(4 * i + 3),
                    (char)(4 * i + 2), (char)(4 * i + 3), (char)(4 * i + 2), (char)(4 * i + 3));
                __m256i sv = _mm256_shuffle_epi8(sh, ctl);
                UNROLL_T for (int t = 0; t < nrc; t++) {
                    const px_block_q8_K *xb = (const px_block_q8_K *)ACT(x, t, bx) + b;
                    __m256i xq = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * c));
                    if (i & 1)
                        ib[t] = MADD16(ib[t], q[i], xq, sv);
                    else
                        ia[t] = MADD16(ia[t], q[i], xq, sv);
                }
            }
        }
        UNROLL_T for (int t = 0; t < nrc; t++) {
            const px_block_q8_K *xb = (const px_block_q8_K *)ACT(x, t, bx) + b;
            __m256i bs = _mm256_loadu_si256((const __m256i *)xb->bsums);
            __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
            __m256i ii = _mm256_sub_epi32(_mm256_add_epi32(ia[t], ib[t]), off);
            __m128i u = _mm_add_epi32(_mm256_castsi256_si128(ii), _mm256_extracti128_si256(ii, 1));
            u = _mm_hadd_epi32(u, u);
            u = _mm_hadd_epi32(u, u);
            __m128 p = _mm_mul_ss(_mm_cvtepi32_ps(u), _mm_set_ss(d * xb->d));
            acc[t] = _mm_add_ss(acc[t], p);
        }
    }
    UNROLL_T for (int t = 0; t < nrc; t++) out[t] = _mm_cvtss_f32(acc[t]);
}

/* Float-weight rows: each activation row in turn (the row stays in L1). */
ALWAYS_INLINE __m256 ld_f32(const float *p) {
    return _mm256_loadu_ps(p);
}
ALWAYS_INLINE __m256 ld_f16(const px_f16 *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
ALWAYS_INLINE __m256 ld_bf16(const px_bf16 *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define DOT_F_BODY(T, LOAD, CONV)                                                                  \
    const T *a = w;                                                                                \
    UNROLL_T for (int t = 0; t < nrc; t++) {                                                       \
        const float *xb = ACT(x, t, bx);                                                           \
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            s0 = _mm256_fmadd_ps(LOAD(a + i), _mm256_loadu_ps(xb + i), s0);                        \
            s1 = _mm256_fmadd_ps(LOAD(a + i + 8), _mm256_loadu_ps(xb + i + 8), s1);                \
            s2 = _mm256_fmadd_ps(LOAD(a + i + 16), _mm256_loadu_ps(xb + i + 16), s2);              \
            s3 = _mm256_fmadd_ps(LOAD(a + i + 24), _mm256_loadu_ps(xb + i + 24), s3);              \
        }                                                                                          \
        for (; i + 8 <= n; i += 8)                                                                 \
            s0 = _mm256_fmadd_ps(LOAD(a + i), _mm256_loadu_ps(xb + i), s0);                        \
        float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));            \
        for (; i < n; i++)                                                                         \
            s += CONV(a[i]) * xb[i];                                                               \
        out[t] = s;                                                                                \
    }

ALWAYS_INLINE float id_f32(float v) {
    return v;
}

static void dot_f32(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    DOT_F_BODY(float, ld_f32, id_f32)
}
static void dot_f16(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    DOT_F_BODY(px_f16, ld_f16, f16)
}
static void dot_bf16(int64_t n, const void *w, const void *x, size_t bx, int nrc,
                     float *out){DOT_F_BODY(px_bf16, ld_bf16, px__bf16_to_f32)}

/* The exported row dots: one copy per constant nrc, so that the per-token
 * accumulators live in registers (the t loops unroll completely). */
#define ROW_DOT(NAME)                                                                              \
    static void NAME(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {    \
        switch (nrc) {                                                                             \
        case 1: NAME##_n(n, w, x, bx, 1, out); break;                                              \
        case 2: NAME##_n(n, w, x, bx, 2, out); break;                                              \
        case 3: NAME##_n(n, w, x, bx, 3, out); break;                                              \
        default: NAME##_n(n, w, x, bx, 4, out); break;                                             \
        }                                                                                          \
    }
ROW_DOT(dot_q4_0) ROW_DOT(dot_q5_0) ROW_DOT(dot_q8_0) ROW_DOT(dot_q4_K) ROW_DOT(dot_q5_K)
    ROW_DOT(dot_q6_K)

    /* ---- row dequantizers (prefill via sgemm) -------------------------------- */

    /* y[0..16) = scale * q + bias for 16 int8 quants. */
    ALWAYS_INLINE void emit16(__m128i q, float scale, float bias, float *y) {
    __m256 s = _mm256_set1_ps(scale), o = _mm256_set1_ps(bias);
    __m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
    __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8)));
    _mm256_storeu_ps(y, _mm256_fmadd_ps(a, s, o));
    _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(b, s, o));
}

ALWAYS_INLINE void emit32(__m256i q, float scale, float bias, float *y) {
    emit16(_mm256_castsi256_si128(q), scale, bias, y);
    emit16(_mm256_extracti128_si256(q, 1), scale, bias, y + 16);
}

static void to_f32_q4_0(const void *w, float *y, int64_t n) {
    const px_block_q4_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = f16(wb[b].d);
        emit32(nib16(wb[b].qs), d, -8.0f * d, y + 32 * b);
    }
}

static void to_f32_q5_0(const void *w, float *y, int64_t n) {
    const px_block_q5_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = f16(wb[b].d);
        emit32(dec_q5_0(&wb[b]), d, -16.0f * d, y + 32 * b);
    }
}

static void to_f32_q8_0(const void *w, float *y, int64_t n) {
    const px_block_q8_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++)
        emit32(_mm256_loadu_si256((const __m256i *)wb[b].qs), f16(wb[b].d), 0.0f, y + 32 * b);
}

#define TO_F32_K45(NAME, BLOCK, DECODE)                                                            \
    static void NAME(const void *w, float *y, int64_t n) {                                         \
        const BLOCK *wb = w;                                                                       \
        for (int64_t b = 0; b < n / 256; b++, y += 256) {                                          \
            float d = f16(wb[b].d), dmin = f16(wb[b].dmin);                                        \
            for (int c = 0; c < 4; c++) {                                                          \
                int sc0, m0, sc1, m1;                                                              \
                px__k4_scale_min(2 * c, wb[b].scales, &sc0, &m0);                                  \
                px__k4_scale_min(2 * c + 1, wb[b].scales, &sc1, &m1);                              \
                __m256i lo, hi;                                                                    \
                DECODE;                                                                            \
                emit32(lo, d *(float)sc0, -dmin *(float)m0, y + 64 * c);                           \
                emit32(hi, d *(float)sc1, -dmin *(float)m1, y + 64 * c + 32);                      \
            }                                                                                      \
        }                                                                                          \
    }
TO_F32_K45(to_f32_q4_K, px_block_q4_K, dec_q4_K_chunk(wb[b].qs, c, &lo, &hi))
TO_F32_K45(to_f32_q5_K, px_block_q5_K, dec_q5_K_chunk(&wb[b], c, &lo, &hi))

static void to_f32_q6_K(const void *w, float *y, int64_t n) {
    const px_block_q6_K *wb = w;
    for (int64_t b = 0; b < n / 256; b++, y += 256) {
        float d = f16(wb[b].d);
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            dec_q6_K_half(&wb[b], h, q);
            for (int i = 0; i < 4; i++) {
                int c = 4 * h + i;
                __m256i s = _mm256_sub_epi8(q[i], _mm256_set1_epi8(32));
                float d0 = d * (float)wb[b].scales[2 * c], d1 = d * (float)wb[b].scales[2 * c + 1];
                emit16(_mm256_castsi256_si128(s), d0, 0.0f, y + 32 * c);
                emit16(_mm256_extracti128_si256(s, 1), d1, 0.0f, y + 32 * c + 16);
            }
        }
    }
}

static void to_f32_f32(const void *w, float *y, int64_t n) {
    memcpy(y, w, (size_t)n * sizeof(float));
}

static void to_f32_f16(const void *w, float *y, int64_t n) {
    const px_f16 *a = w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, ld_f16(a + i));
    for (; i < n; i++)
        y[i] = f16(a[i]);
}

static void to_f32_bf16(const void *w, float *y, int64_t n) {
    const px_bf16 *a = w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, ld_bf16(a + i));
    for (; i < n; i++)
        y[i] = px__bf16_to_f32(a[i]);
}

/* ---- attention helpers --------------------------------------------------- */

/* NQ queries x NV key vectors of 8 lanes, one fma chain per lane (kernels.h). */
ALWAYS_INLINE void scores_tile(int hd, const float *q, size_t q_stride, const px_f16 *const *kv,
                               size_t kstride, float *s, size_t s_stride, int NQ, int NV, int nv) {
    __m256 acc[PX_ATTN_TILE];
    _Pragma("GCC unroll 8") for (int a = 0; a < NQ * NV; a++) acc[a] = _mm256_setzero_ps();
    for (int d = 0; d < hd; d++) {
        __m256 k[PX_ATTN_TILE];
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) k[v] =
            ld_f16(kv[v < nv ? v : nv - 1] + (size_t)d * kstride);
        _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {
            __m256 qi = _mm256_broadcast_ss(q + (size_t)i * q_stride + (size_t)d);
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i * NV + v] =
                _mm256_fmadd_ps(qi, k[v], acc[i * NV + v]);
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++)
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) if (v < nv)
            _mm256_storeu_ps(s + (size_t)i * s_stride + (size_t)(8 * v), acc[i * NV + v]);
}

static void attn_scores(int hd, const float *q, size_t q_stride, int nq, const px_f16 *const *kv,
                        int nv, size_t kstride, float *s, size_t s_stride) {
    for (int i0 = 0; i0 < nq; i0 += 4) {
        const float *qi = q + (size_t)i0 * q_stride;
        float *si = s + (size_t)i0 * s_stride;
        switch (PX_MIN(4, nq - i0)) {
        case 1:
            for (int v0 = 0; v0 < nv; v0 += 8)
                scores_tile(hd, qi, q_stride, kv + v0, kstride, si + 8 * v0, s_stride, 1, 8,
                            PX_MIN(8, nv - v0));
            break;
        case 2:
            for (int v0 = 0; v0 < nv; v0 += 4)
                scores_tile(hd, qi, q_stride, kv + v0, kstride, si + 8 * v0, s_stride, 2, 4,
                            PX_MIN(4, nv - v0));
            break;
        case 3:
            for (int v0 = 0; v0 < nv; v0 += 2)
                scores_tile(hd, qi, q_stride, kv + v0, kstride, si + 8 * v0, s_stride, 3, 2,
                            PX_MIN(2, nv - v0));
            break;
        default:
            for (int v0 = 0; v0 < nv; v0 += 2)
                scores_tile(hd, qi, q_stride, kv + v0, kstride, si + 8 * v0, s_stride, 4, 2,
                            PX_MIN(2, nv - v0));
            break;
        }
    }
}

/* NQ queries x DV vectors of 8 dims from d0, over all nt keys in order. */
ALWAYS_INLINE void accum_tile(int d0, const float *w, size_t w_stride, const px_f16 *const *v,
                              int nt, float *o, size_t o_stride, int NQ, int DV) {
    __m256 acc[PX_ATTN_TILE];
    _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < DV; j++) acc[i * DV + j] =
            _mm256_loadu_ps(o + (size_t)i * o_stride + (size_t)(d0 + 8 * j));
    for (int t = 0; t < nt; t++) {
        __m256 x[PX_ATTN_TILE];
        _Pragma("GCC unroll 8") for (int j = 0; j < DV; j++) x[j] = ld_f16(v[t] + d0 + 8 * j);
        _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {
            __m256 wi = _mm256_broadcast_ss(w + (size_t)i * w_stride + (size_t)t);
            _Pragma("GCC unroll 8") for (int j = 0; j < DV; j++) acc[i * DV + j] =
                _mm256_fmadd_ps(wi, x[j], acc[i * DV + j]);
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < DV; j++)
            _mm256_storeu_ps(o + (size_t)i * o_stride + (size_t)(d0 + 8 * j), acc[i * DV + j]);
}

ALWAYS_INLINE void accum_rows(int hd, const float *w, size_t w_stride, const px_f16 *const *v,
                              int nt, float *o, size_t o_stride, int NQ, int DV) {
    int d = 0;
    for (; d + 8 * DV <= hd; d += 8 * DV)
        accum_tile(d, w, w_stride, v, nt, o, o_stride, NQ, DV);
    for (; d + 8 <= hd; d += 8)
        accum_tile(d, w, w_stride, v, nt, o, o_stride, NQ, 1);
    for (; d < hd; d++) /* the same chain per element as the vectors */
        for (int t = 0; t < nt; t++)
            for (int i = 0; i < NQ; i++)
                o[(size_t)i * o_stride + (size_t)d] =
                    fmaf(w[(size_t)i * w_stride + (size_t)t], f16(v[t][d]),
                         o[(size_t)i * o_stride + (size_t)d]);
}

static void attn_accum(int hd, const float *w, size_t w_stride, int nq, const px_f16 *const *v,
                       int nt, float *o, size_t o_stride) {
    switch (nq) {
    case 1: accum_rows(hd, w, w_stride, v, nt, o, o_stride, 1, 8); break;
    case 2: accum_rows(hd, w, w_stride, v, nt, o, o_stride, 2, 4); break;
    case 3: accum_rows(hd, w, w_stride, v, nt, o, o_stride, 3, 2); break;
    default: accum_rows(hd, w, w_stride, v, nt, o, o_stride, 4, 2); break;
    }
}

static void f32_to_f16_row(int64_t n, const float *x, px_f16 *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* px_expf (ops.c) on 8 lanes: the same separately rounded operations in the
 * same order (floor by vroundps, the clamps keep NaN as the scalar ?: do). */
ALWAYS_INLINE __m256 expf8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.7f), x);
    __m256 n = _mm256_floor_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                             _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    static const float c[5] = {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                               1.6666665459e-1f, 5.0000001201e-1f};
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    for (int i = 0; i < 5; i++)
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(c[i]));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r),
                      _mm256_set1_ps(1.0f));
    __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

static void exp_shift(float *x, int64_t n, float shift) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i,
                         expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(shift))));
    for (; i < n; i++)
        x[i] = px_expf(x[i] - shift);
}

/* px_geglu's operations on 8 lanes; the tail goes through px_geglu itself. */
static void geglu(float *gate, const float *up, int64_t n) {
    const __m256 k = _mm256_set1_ps(0.7978845608028654f), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), x), x);
        __m256 y = _mm256_mul_ps(k, _mm256_add_ps(x, c));
        __m256 e = expf8(_mm256_mul_ps(_mm256_set1_ps(2.0f), y));
        __m256 t = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
        __m256 g = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, t));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(g, _mm256_loadu_ps(up + i)));
    }
    px_geglu(gate + i, up + i, n - i);
}

/* px_swiglu's operations on 8 lanes. */
static void swiglu(float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(gate + i);
        __m256 e = expf8(_mm256_xor_ps(x, sign));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    px_swiglu(gate + i, up + i, n - i);
}

#define PX_X86_TABLE_COMMON                                                                        \
    .vec_dot =                                                                                     \
        {[PX_DTYPE_Q4_0] = dot_q4_0, [PX_DTYPE_Q5_0] = dot_q5_0, [PX_DTYPE_Q8_0] = dot_q8_0,       \
         [PX_DTYPE_Q4_K] = dot_q4_K, [PX_DTYPE_Q5_K] = dot_q5_K, [PX_DTYPE_Q6_K] = dot_q6_K,       \
         [PX_DTYPE_F32] = dot_f32,   [PX_DTYPE_F16] = dot_f16,   [PX_DTYPE_BF16] = dot_bf16},      \
    .to_f32 = {[PX_DTYPE_Q4_0] = to_f32_q4_0, [PX_DTYPE_Q5_0] = to_f32_q5_0,                       \
               [PX_DTYPE_Q8_0] = to_f32_q8_0, [PX_DTYPE_Q4_K] = to_f32_q4_K,                       \
               [PX_DTYPE_Q5_K] = to_f32_q5_K, [PX_DTYPE_Q6_K] = to_f32_q6_K,                       \
               [PX_DTYPE_F32] = to_f32_f32,   [PX_DTYPE_F16] = to_f32_f16,                         \
               [PX_DTYPE_BF16] = to_f32_bf16},                                                     \
    .quantize_q8a = quantize_q8a, .quantize_q8k = quantize_q8k, .attn_scores = attn_scores,        \
    .attn_accum = attn_accum, .exp_shift = exp_shift, .f32_to_f16_row = f32_to_f16_row,            \
    .geglu = geglu, .swiglu = swiglu

#endif
