/* quant.c — reference (portable C) quantizers and dequantizers of GGUF rows.
 *
 * Bit layouts are those of GGUF files in the wild (ggml's dequantize_row_*
 * semantics); the block structs are in types.h. Quantizers follow ggml's
 * reference quantizers: absmax scaling for the _0 types, Q8_0/Q8_1 and Q8_K,
 * min/max for the _1 types, and a per-sub-block scale (and min) search for the
 * K-quants (same algorithm and parameters as ggml's, so errors should be
 * close to llama.cpp's quantizer without an importance matrix). SIMD versions
 * live in the kernels; this file is the specification they are tested
 * against, so it favours clarity.
 *
 * Multi-byte fields are read and written in host order: pollux targets
 * little-endian CPUs, as GGUF files are little-endian. Rows must be aligned
 * as their fields (2 bytes; 4 for F32 and Q8_K), which GGUF's tensor
 * alignment guarantees. */
#include "quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "px.h"

/* ---- scalar half and bfloat16 conversions ----
 * Local copies (not px_f16_to_f32 of types.c) keep this file self-contained;
 * both are exact IEEE conversions, so the results are the same. */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float half_to_float(px_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return (h & 0x8000) ? -v : v;
    }
    if (exp == 31) /* inf or nan: keep the payload */
        return bits_f32(sign | 0x7f800000 | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round to nearest, ties to even; overflow gives inf; NaN stays a quiet NaN. */
static inline px_f16 float_to_half(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) {
        if (ax == 0x7f800000) return sign | 0x7c00;
        return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);
    }
    if (ax >= 0x477ff000) /* >= 65520: rounds past the largest half, 65504 */
        return sign | 0x7c00;
    if (ax < 0x38800000) {
        /* below 2^-14: a subnormal half, counted in units of 2^-24 */
        if (ax < 0x33000000) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t e = ax >> 23; /* biased exponent 102..112 */
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++; /* may carry into the smallest normal, which is still right */
        return sign | (uint16_t)q;
    }
    uint32_t h = (ax >> 13) - (112u << 10); /* rebias exponent 127 -> 15 */
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* a carry out of the mantissa bumps the exponent, as it should */
    return sign | (uint16_t)h;
}

static inline float bf16_to_float(px_bf16 h) {
    return bits_f32((uint32_t)h << 16);
}

static inline px_bf16 float_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) /* NaN: truncating could make it inf */
        return (px_bf16)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
    return (px_bf16)(x >> 16);
}

/* ---- rounding helpers: all clamp first so NaN or inf input is never UB ---- */

/* Round half to even (ggml's nearest_int), clamped to [lo, hi]; NaN -> lo. */
static inline int round_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    return (int)rintf(v);
}

/* Round half away from zero (roundf), clamped; NaN -> lo. */
static inline int round_away_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    return (int)roundf(v);
}

/* floor(v), clamped; the _0 quantizers round as floor(x/d + offset + 0.5). */
static inline int floor_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (!(v < (float)hi)) return hi;
    return (int)floorf(v);
}

/* The value of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

static float absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    return amax;
}

/* ---- the 32-element block types ---- */

static void dequant_q4_0(const void *src, float *y, int64_t nb) {
    const px_block_q4_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK4_0) {
        float d = half_to_float(b->d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((b->qs[j] & 0x0f) - 8);
            y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
        }
    }
}

/* d = max / -8: the extreme value lands exactly on level -8 (q = 0), so the
 * asymmetric range -8..7 is used in full. */
static void quant_q4_0(const float *x, void *dst, int64_t nb) {
    px_block_q4_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK4_0) {
        float d = signed_absmax(x, PX_QK4_0) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = float_to_half(d);
        for (int j = 0; j < 16; j++) {
            int lo = floor_clamp(x[j] * id + 8.5f, 0, 15);
            int hi = floor_clamp(x[j + 16] * id + 8.5f, 0, 15);
            b->qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void dequant_q4_1(const void *src, float *y, int64_t nb) {
    const px_block_q4_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK4_0) {
        float d = half_to_float(b->d), m = half_to_float(b->m);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)(b->qs[j] & 0x0f) + m;
            y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
        }
    }
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    *lo = x[0];
    *hi = x[0];
    for (int i = 1; i < n; i++) {
        *lo = fminf(*lo, x[i]);
        *hi = fmaxf(*hi, x[i]);
    }
}

static void quant_q4_1(const float *x, void *dst, int64_t nb) {
    px_block_q4_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK4_0) {
        float lo, hi;
        min_max(x, PX_QK4_0, &lo, &hi);
        float d = (hi - lo) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = float_to_half(d);
        b->m = float_to_half(lo);
        for (int j = 0; j < 16; j++) {
            int q0 = floor_clamp((x[j] - lo) * id + 0.5f, 0, 15);
            int q1 = floor_clamp((x[j + 16] - lo) * id + 0.5f, 0, 15);
            b->qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* qh as the little-endian u32 whose bit j is the 5th bit of element j. */
static inline uint32_t load_qh32(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static inline void store_qh32(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(v >> (8 * k));
}

/* Element j of a Q5 block: low nibble of qs[j] (j < 16) or high nibble of
 * qs[j - 16], plus bit j of qh as the 5th bit. */
static inline int q5_level(const uint8_t *qs, uint32_t qh, int j) {
    int low = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return low | (int)((qh >> j) & 1) << 4;
}

static void pack_q5(const int q[32], uint8_t qs[16], uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
    for (int j = 0; j < 32; j++)
        h |= (uint32_t)(q[j] >> 4 & 1) << j;
    store_qh32(qh, h);
}

static void dequant_q5_0(const void *src, float *y, int64_t nb) {
    const px_block_q5_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK5_0) {
        float d = half_to_float(b->d);
        uint32_t qh = load_qh32(b->qh);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)(q5_level(b->qs, qh, j) - 16);
    }
}

static void quant_q5_0(const float *x, void *dst, int64_t nb) {
    px_block_q5_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK5_0) {
        float d = signed_absmax(x, PX_QK5_0) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = floor_clamp(x[j] * id + 16.5f, 0, 31);
        b->d = float_to_half(d);
        pack_q5(q, b->qs, b->qh);
    }
}

static void dequant_q5_1(const void *src, float *y, int64_t nb) {
    const px_block_q5_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK5_0) {
        float d = half_to_float(b->d), m = half_to_float(b->m);
        uint32_t qh = load_qh32(b->qh);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)q5_level(b->qs, qh, j) + m;
    }
}

static void quant_q5_1(const float *x, void *dst, int64_t nb) {
    px_block_q5_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK5_0) {
        float lo, hi;
        min_max(x, PX_QK5_0, &lo, &hi);
        float d = (hi - lo) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = floor_clamp((x[j] - lo) * id + 0.5f, 0, 31);
        b->d = float_to_half(d);
        b->m = float_to_half(lo);
        pack_q5(q, b->qs, b->qh);
    }
}

static void dequant_q8_0(const void *src, float *y, int64_t nb) {
    const px_block_q8_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK8_0) {
        float d = half_to_float(b->d);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)b->qs[j];
    }
}

static void quant_q8_0(const float *x, void *dst, int64_t nb) {
    px_block_q8_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK8_0) {
        float d = absmax(x, PX_QK8_0) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = float_to_half(d);
        for (int j = 0; j < 32; j++)
            b->qs[j] = (int8_t)round_away_clamp(x[j] * id, -127, 127);
    }
}

static void dequant_q8_1(const void *src, float *y, int64_t nb) {
    const px_block_q8_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK8_0) {
        float d = half_to_float(b->d);
        for (int j = 0; j < 32; j++)
            y[j] = d * (float)b->qs[j];
    }
}

/* As Q8_0, plus s = d * sum(q) (in f16), which the _1 dot products use to
 * apply the weight's min once per block. */
static void quant_q8_1(const float *x, void *dst, int64_t nb) {
    px_block_q8_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK8_0) {
        float d = absmax(x, PX_QK8_0) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            b->qs[j] = (int8_t)round_away_clamp(x[j] * id, -127, 127);
            sum += b->qs[j];
        }
        b->d = float_to_half(d);
        b->s = float_to_half((float)sum * d);
    }
}

/* ---- K-quant scale searches ----
 * Ideas from ggml's make_qkx2_quants / make_qx_quants, written afresh. */

/* Fits x[i] ~= s * L[i] - mn, L in [0, nmax], mn >= 0, minimising the
 * weighted squared error. The levels come from a uniform grid over
 * [min(x, 0), max(x)]; the grid is tried with nstep + 1 slightly different
 * spacings (nmax + rmin + rdelta * k steps across the range), and for each
 * grid's levels the best (s, mn) is the solution of the 2x2 weighted normal
 * equations. Returns s and writes mn; the caller re-rounds the levels against
 * the scale and min it finally stores. n <= 32. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, float rmin,
                           float rdelta, int nstep, float *mn) {
    float lo = x[0], hi = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0.0f) lo = 0.0f; /* the offset only ever shifts down (mn >= 0) */
    if (!(hi > lo)) {
        *mn = -lo;
        return 0.0f;
    }
    /* start: the plain min/max grid */
    float iscale = (float)nmax / (hi - lo);
    float scale = 1.0f / iscale, off = lo, best_err = 0.0f;
    for (int i = 0; i < n; i++) {
        float e = scale * (float)round_clamp(iscale * (x[i] - lo), 0, nmax) + off - x[i];
        best_err += w[i] * e * e;
    }
    uint8_t cand[32];
    assert(n <= 32);
    for (int k = 0; k <= nstep; k++) {
        iscale = ((float)nmax + rmin + rdelta * (float)k) / (hi - lo);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = round_clamp(iscale * (x[i] - lo), 0, nmax);
            cand[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)(l * l);
            sum_xl += w[i] * (float)l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0.0f) { /* a positive offset is not storable: refit s alone */
            m = 0.0f;
            s = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float e = s * cand[i] + m - x[i];
            err += w[i] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            scale = s;
            off = m;
        }
    }
    *mn = -off;
    return scale;
}

/* Fits x[i] ~= s * l[i], l in [-nmax, nmax - 1], weights x^2 (large values
 * matter most). The largest-magnitude value maps to -nmax, using the
 * asymmetric range in full; grids with nmax +- 0.9 steps are also tried and
 * the one with the least weighted error (largest sum(wxl)^2 / sum(wl^2))
 * wins. Returns s (negative when that value is positive). */
static float fit_scale_sym(int n, int nmax, const float *x) {
    float max = signed_absmax(x, n);
    if (fabsf(max) < 1e-15f) return 0.0f;
    float best_score = -1.0f, scale = 0.0f;
    for (int k = -9; k <= 9; k++) {
        float iscale = -((float)nmax + 0.1f * (float)k) / max;
        float sum_xl = 0.0f, sum_l2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
            float w = x[i] * x[i];
            sum_xl += w * x[i] * (float)l;
            sum_l2 += w * (float)(l * l);
        }
        if (!(sum_l2 > 0.0f)) continue;
        float score = sum_xl * sum_xl / sum_l2;
        if (score > best_score) {
            best_score = score;
            scale = sum_xl / sum_l2;
        }
    }
    return scale;
}

/* ---- Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins ----
 * scales[12]: bytes 0-3 hold the low 6 bits of scales 0-3, bytes 4-7 the low
 * 6 bits of mins 0-3; bytes 8-11 hold scale (low nibble) and min (high
 * nibble) low 4 bits of sub-blocks 4-7, whose top 2 bits sit in the top 2
 * bits of bytes 0-3 (scales) and 4-7 (mins). */

static inline void kscale_get(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void kscales_pack(const int sc[8], const int m[8], uint8_t s[PX_K_SCALE_SIZE]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (m[j + 4] & 0x0f) << 4);
    }
}

/* Element e = 32*j + l of sub-block j: quant byte 32*(j/2) + l, low nibble
 * for even j, high for odd; the 5th bit (Q5_K) is bit j of qh[l]. */
static void dequant_kx(px_f16 dh, px_f16 dminh, const uint8_t *scales, const uint8_t *qs,
                       const uint8_t *qh, float *y) {
    float d = half_to_float(dh), dmin = half_to_float(dminh);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        kscale_get(scales, j, &sc, &m);
        float ds = d * (float)sc, dm = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        int shift = 4 * (j & 1);
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            y[32 * j + l] = ds * (float)v - dm;
        }
    }
}

static void dequant_q4_k(const void *src, float *y, int64_t nb) {
    const px_block_q4_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK_K)
        dequant_kx(b->d, b->dmin, b->scales, b->qs, NULL, y);
}

static void dequant_q5_k(const void *src, float *y, int64_t nb) {
    const px_block_q5_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK_K)
        dequant_kx(b->d, b->dmin, b->scales, b->qs, b->qh, y);
}

/* One super-block of 256 for Q4_K (nmax 15) or Q5_K (nmax 31): fits each
 * sub-block, quantizes the 8 scales and 8 mins to 6 bits against their
 * maxima, then re-rounds every element against the stored (f16 * 6-bit)
 * scale and min. Writes d, dmin, scales and the levels L. */
static void quant_kx_block(const float *x, int nmax, float rmin, int nstep, px_f16 *d, px_f16 *dmin,
                           uint8_t scales[PX_K_SCALE_SIZE], uint8_t L[PX_QK_K]) {
    float sub_scale[8], sub_min[8], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float rms = sqrtf(sum_x2 / 32.0f);
        /* weight large values more, but never ignore small ones */
        for (int l = 0; l < 32; l++)
            w[l] = rms + fabsf(xs[l]);
        sub_scale[j] = fit_scale_min(32, nmax, xs, w, rmin, 0.1f, nstep, &sub_min[j]);
        max_scale = fmaxf(max_scale, sub_scale[j]);
        max_min = fmaxf(max_min, sub_min[j]);
    }
    float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = round_clamp(inv_scale * sub_scale[j], 0, 63);
        m[j] = round_clamp(inv_min * sub_min[j], 0, 63);
    }
    kscales_pack(sc, m, scales);
    *d = float_to_half(max_scale / 63.0f);
    *dmin = float_to_half(max_min / 63.0f);

    float df = half_to_float(*d), dminf = half_to_float(*dmin);
    for (int j = 0; j < 8; j++) {
        float ds = df * (float)sc[j], dm = dminf * (float)m[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] =
                ds != 0.0f ? (uint8_t)round_clamp((x[32 * j + l] + dm) / ds, 0, nmax) : 0;
    }
}

/* Levels of sub-blocks 2g and 2g+1 share bytes 32g..32g+31 of qs. */
static void pack_k_nibbles(const uint8_t L[PX_QK_K], uint8_t qs[PX_QK_K / 2]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            qs[32 * g + l] = (uint8_t)((L[64 * g + l] & 0x0f) | (L[64 * g + 32 + l] & 0x0f) << 4);
}

static void quant_q4_k(const float *x, void *dst, int64_t nb) {
    px_block_q4_K *b = dst;
    uint8_t L[PX_QK_K];
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK_K) {
        quant_kx_block(x, 15, -1.0f, 20, &b->d, &b->dmin, b->scales, L);
        pack_k_nibbles(L, b->qs);
    }
}

static void quant_q5_k(const float *x, void *dst, int64_t nb) {
    px_block_q5_K *b = dst;
    uint8_t L[PX_QK_K];
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK_K) {
        quant_kx_block(x, 31, -0.5f, 15, &b->d, &b->dmin, b->scales, L);
        pack_k_nibbles(L, b->qs);
        memset(b->qh, 0, sizeof b->qh);
        for (int e = 0; e < PX_QK_K; e++)
            b->qh[e % 32] |= (uint8_t)((L[e] >> 4) << (e / 32));
    }
}

/* ---- Q6_K: 16 sub-blocks of 16, int8 scales, 6-bit quants ----
 * Element e: half h = e / 128, r = e % 128, quarter k = r / 32, l = r % 32.
 * Low 4 bits: ql[64h + l + 32(k & 1)], low nibble for k < 2, high for k >= 2;
 * high 2 bits: bits 2k..2k+1 of qh[32h + l]; scale: scales[e / 16]. */

static void dequant_q6_k(const void *src, float *y, int64_t nb) {
    const px_block_q6_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK_K) {
        float d = half_to_float(b->d);
        for (int e = 0; e < PX_QK_K; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            int low = (b->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0x0f;
            int high = (b->qh[32 * h + l] >> (2 * k)) & 3;
            y[e] = d * (float)b->scales[e / 16] * (float)((low | high << 4) - 32);
        }
    }
}

static void quant_q6_k(const float *x, void *dst, int64_t nb) {
    px_block_q6_K *b = dst;
    uint8_t L[PX_QK_K];
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK_K) {
        float sub_scale[16], max_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            sub_scale[j] = fit_scale_sym(16, 32, x + 16 * j);
            if (fabsf(sub_scale[j]) > fabsf(max_scale)) max_scale = sub_scale[j];
        }
        memset(b, 0, sizeof *b);
        if (fabsf(max_scale) < 1e-15f) {
            b->d = float_to_half(0.0f);
            continue;
        }
        /* as within a sub-block: the largest scale maps to -128 */
        float iscale = -128.0f / max_scale;
        b->d = float_to_half(1.0f / iscale);
        float df = half_to_float(b->d);
        for (int j = 0; j < 16; j++) {
            b->scales[j] = (int8_t)round_clamp(iscale * sub_scale[j], -128, 127);
            float ds = df * (float)b->scales[j];
            for (int l = 0; l < 16; l++)
                L[16 * j + l] =
                    ds != 0.0f ? (uint8_t)(round_clamp(x[16 * j + l] / ds, -32, 31) + 32) : 32;
        }
        for (int e = 0; e < PX_QK_K; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            b->ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((L[e] & 0x0f) << (4 * (k >> 1)));
            b->qh[32 * h + l] |= (uint8_t)((L[e] >> 4) << (2 * k));
        }
    }
}

/* ---- Q8_K: activations for the K-quant dot products ---- */

static void dequant_q8_k(const void *src, float *y, int64_t nb) {
    const px_block_q8_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, y += PX_QK_K)
        for (int j = 0; j < PX_QK_K; j++)
            y[j] = b->d * (float)b->qs[j];
}

/* The largest-magnitude value maps to -127 (so q stays in -127..127; ggml
 * chose this over -128 for its SIMD dot products). bsums let the dot
 * products fold the weights' mins in with one multiply per 16 elements. */
static void quant_q8_k(const float *x, void *dst, int64_t nb) {
    px_block_q8_K *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PX_QK_K) {
        float max = signed_absmax(x, PX_QK_K);
        memset(b, 0, sizeof *b);
        if (max == 0.0f) continue;
        float iscale = -127.0f / max;
        for (int j = 0; j < PX_QK_K; j++)
            b->qs[j] = (int8_t)round_clamp(iscale * x[j], -127, 127);
        for (int j = 0; j < PX_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += b->qs[16 * j + l];
            b->bsums[j] = (int16_t)sum;
        }
        b->d = 1.0f / iscale;
    }
}

/* ---- scalar types ---- */

static void dequant_f32(const void *src, float *y, int64_t n) {
    memcpy(y, src, (size_t)n * sizeof(float));
}

static void quant_f32(const float *x, void *dst, int64_t n) {
    memcpy(dst, x, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *y, int64_t n) {
    const px_f16 *h = src;
    for (int64_t i = 0; i < n; i++)
        y[i] = half_to_float(h[i]);
}

static void quant_f16(const float *x, void *dst, int64_t n) {
    px_f16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = float_to_half(x[i]);
}

static void dequant_bf16(const void *src, float *y, int64_t n) {
    const px_bf16 *h = src;
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_to_float(h[i]);
}

static void quant_bf16(const float *x, void *dst, int64_t n) {
    px_bf16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = float_to_bf16(x[i]);
}

/* ---- dispatch ---- */

typedef struct codec {
    int block_elems;                                             /* 0: type unsupported */
    void (*dequant)(const void *src, float *y, int64_t nblocks); /* src: nblocks blocks */
    void (*quant)(const float *x, void *dst, int64_t nblocks);
} codec;

static const codec codecs[PX_DTYPE_COUNT] = {
    [PX_DTYPE_F32] = {1, dequant_f32, quant_f32},
    [PX_DTYPE_F16] = {1, dequant_f16, quant_f16},
    [PX_DTYPE_BF16] = {1, dequant_bf16, quant_bf16},
    [PX_DTYPE_Q4_0] = {PX_QK4_0, dequant_q4_0, quant_q4_0},
    [PX_DTYPE_Q4_1] = {PX_QK4_0, dequant_q4_1, quant_q4_1},
    [PX_DTYPE_Q5_0] = {PX_QK5_0, dequant_q5_0, quant_q5_0},
    [PX_DTYPE_Q5_1] = {PX_QK5_0, dequant_q5_1, quant_q5_1},
    [PX_DTYPE_Q8_0] = {PX_QK8_0, dequant_q8_0, quant_q8_0},
    [PX_DTYPE_Q8_1] = {PX_QK8_0, dequant_q8_1, quant_q8_1},
    [PX_DTYPE_Q4_K] = {PX_QK_K, dequant_q4_k, quant_q4_k},
    [PX_DTYPE_Q5_K] = {PX_QK_K, dequant_q5_k, quant_q5_k},
    [PX_DTYPE_Q6_K] = {PX_QK_K, dequant_q6_k, quant_q6_k},
    [PX_DTYPE_Q8_K] = {PX_QK_K, dequant_q8_k, quant_q8_k},
};

/* The codec of a type, or NULL; checks n and the pointers into *rc. */
static const codec *codec_for(px_dtype type, const void *a, const void *b, int64_t n, int *rc) {
    if ((unsigned)type >= PX_DTYPE_COUNT || codecs[type].block_elems == 0) {
        *rc = PX_ENOTSUP;
        return NULL;
    }
    const codec *c = &codecs[type];
    if (n < 0 || n % c->block_elems != 0 || (n > 0 && (!a || !b))) {
        *rc = PX_EINVAL;
        return NULL;
    }
    *rc = 0;
    return c;
}

int px_dequantize_row(px_dtype type, const void *src, float *dst, int64_t n) {
    int rc;
    const codec *c = codec_for(type, src, dst, n, &rc);
    if (c && n > 0) c->dequant(src, dst, n / c->block_elems);
    return rc;
}

int px_quantize_row(px_dtype type, const float *src, void *dst, int64_t n) {
    int rc;
    const codec *c = codec_for(type, src, dst, n, &rc);
    if (c && n > 0) c->quant(src, dst, n / c->block_elems);
    return rc;
}
