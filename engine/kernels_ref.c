/* kernels_ref.c — the portable kernel set: dot products straight from the
 * GGUF block layouts (types.h), activation quantizers, row dequantizers and
 * the F16 attention helpers. The SIMD sets are checked against these; for
 * quantized weights they give the same bits (kernels.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"
#include "px.h"

/* The canonical combination is a sequence of separately rounded operations
 * (kernels.h): no contraction into FMA (clang's default within expressions). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- activation quantizers ---------------------------------------------- */

static void quantize_q8a(const float *x, px_block_q8a *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(x[j] * id);
            y[b].qs[j] = (int8_t)q;
            sum += q;
        }
        y[b].d = amax / 127.0f;
        y[b].sum = sum;
    }
}

static void quantize_q8k(const float *x, px_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        float amax = 0.0f;
        for (int j = 0; j < 256; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                int q = (int)nearbyintf(x[j] * id);
                y[b].qs[j] = (int8_t)q;
                sum += q;
            }
            y[b].bsums[g] = (int16_t)sum;
        }
        y[b].d = amax / 127.0f;
    }
}

/* ---- transposed activations for gemm16 ---------------------------------- */

void px__q8t_from_q8a(const px_block_q8a *x, size_t x_stride, int n_tok, int64_t nb,
                      px_block_q8t *y) {
    memset(y, 0, (size_t)nb * sizeof(*y));
    for (int t = 0; t < n_tok; t++) {
        const px_block_q8a *xr = x + (size_t)t * x_stride;
        for (int64_t b = 0; b < nb; b++) {
            int32_t sa = 0;
            for (int k = 0; k < 8; k++)
                memcpy(y[b].qs[k][t], xr[b].qs + 4 * k, 4);
            for (int j = 0; j < 16; j++)
                sa += xr[b].qs[j];
            y[b].sa[t] = sa;
            y[b].sb[t] = xr[b].sum - sa;
            y[b].d[t] = xr[b].d;
        }
    }
}

void px__q8t_from_q8k(const px_block_q8_K *x, size_t x_stride, int n_tok, int64_t nb256,
                      px_block_q8t *y) {
    memset(y, 0, (size_t)nb256 * 8 * sizeof(*y));
    for (int t = 0; t < n_tok; t++) {
        const px_block_q8_K *xr = x + (size_t)t * x_stride;
        for (int64_t b = 0; b < nb256; b++) {
            for (int c = 0; c < 8; c++) {
                px_block_q8t *o = &y[8 * b + c];
                for (int k = 0; k < 8; k++)
                    memcpy(o->qs[k][t], xr[b].qs + 32 * c + 4 * k, 4);
                o->sa[t] = xr[b].bsums[2 * c];
                o->sb[t] = xr[b].bsums[2 * c + 1];
                o->d[t] = xr[b].d;
            }
        }
    }
}

/* ---- weight block decoders: element values as integers ------------------ */

/* q[0..32) = unsigned quants of a Q4_0 / Q5_0 block (offset 8 / 16). */
static void dec_q4_0(const px_block_q4_0 *b, int *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = b->qs[j] & 0xf;
        q[j + 16] = b->qs[j] >> 4;
    }
}

static void dec_q5_0(const px_block_q5_0 *b, int *q) {
    uint32_t qh = (uint32_t)b->qh[0] | (uint32_t)b->qh[1] << 8 | (uint32_t)b->qh[2] << 16 |
                  (uint32_t)b->qh[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = (b->qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
        q[j + 16] = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
    }
}

/* K blocks: q[0..256) unsigned quants, sc[] and mn[] per sub-block. */
static void dec_q4_K(const px_block_q4_K *b, int *q, int *sc, int *mn) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 0xf;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
    }
    for (int s = 0; s < 8; s++)
        px__k4_scale_min(s, b->scales, &sc[s], &mn[s]);
}

static void dec_q5_K(const px_block_q5_K *b, int *q, int *sc, int *mn) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (b->qs[32 * c + l] & 0xf) | (((b->qh[l] >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4);
        }
    }
    for (int s = 0; s < 8; s++)
        px__k4_scale_min(s, b->scales, &sc[s], &mn[s]);
}

/* Q6_K: q in 0..63 (offset 32), one int8 scale per 16 elements. */
static void dec_q6_K(const px_block_q6_K *b, int *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        int *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (ql[l] & 0xf) | ((qh[l] & 3) << 4);
            o[l + 32] = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4);
            o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
}

/* The inverses of dec_q4_K (sc, mn < 64) and dec_q6_K, for the X16 unpack. */
static void enc_q4_K(px_block_q4_K *b, const int *q, const int *sc, const int *mn) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    for (int j = 0; j < 4; j++) {
        b->scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        b->scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        b->scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
}

static void enc_q5_K(px_block_q5_K *b, const int *q, const int *sc, const int *mn) {
    px_block_q4_K k4; /* the same nibbles and scales as Q4_K's */
    int q4[256];
    for (int i = 0; i < 256; i++)
        q4[i] = q[i] & 15;
    enc_q4_K(&k4, q4, sc, mn);
    memcpy(b->scales, k4.scales, sizeof b->scales);
    memcpy(b->qs, k4.qs, sizeof b->qs);
    memset(b->qh, 0, sizeof b->qh);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qh[l] |= (uint8_t)(((q[64 * c + l] >> 4) & 1) << (2 * c) |
                                  ((q[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1));
}

static void enc_q6_K(px_block_q6_K *b, const int *q) {
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((o[l] & 15) | (o[l + 64] & 15) << 4);
            ql[l + 32] = (uint8_t)((o[l + 32] & 15) | (o[l + 96] & 15) << 4);
            qh[l] = (uint8_t)((o[l] >> 4) | (o[l + 32] >> 4) << 2 | (o[l + 64] >> 4) << 4 |
                              (o[l + 96] >> 4) << 6);
        }
    }
}

/* ---- row dots ------------------------------------------------------------ */

#define ACT(x, t, stride) ((const void *)((const char *)(x) + (size_t)(t) * (stride)))

/* The canonical combination of the _0 types (kernels.h): block products
 * p_b = (float)isum_b * (dw_b * dx_b) summed in groups of 8 by a fixed tree,
 * group sums added in order to acc (the caller's groups come in chunks of
 * a multiple of 8 blocks). */
static float sum_groups_0(float acc, const float *p, int64_t nb) {
    for (int64_t g = 0; g < nb; g += 8) {
        float q[8];
        for (int c = 0; c < 8; c++)
            q[c] = g + c < nb ? p[g + c] : 0.0f;
        acc = acc + (((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7])));
    }
    return acc;
}

enum { MAX_BLOCKS_ON_STACK = 256 };

/* One _0-type row against nrc activation rows; isum(b, xb) is the exact
 * block dot of weight block b with activation block xb. */
#define DOT_0(NAME, BLOCK, ISUM)                                                                   \
    static void NAME(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {    \
        const BLOCK *wb = w;                                                                       \
        int64_t nb = n / 32;                                                                       \
        for (int t = 0; t < nrc; t++) {                                                            \
            const px_block_q8a *xb = ACT(x, t, bx);                                                \
            float acc = 0.0f;                                                                      \
            for (int64_t g = 0; g < nb; g += MAX_BLOCKS_ON_STACK) {                                \
                float p[MAX_BLOCKS_ON_STACK];                                                      \
                int64_t cnt = nb - g < MAX_BLOCKS_ON_STACK ? nb - g : MAX_BLOCKS_ON_STACK;         \
                for (int64_t b = g; b < g + cnt; b++) {                                            \
                    int32_t s = ISUM;                                                              \
                    p[b - g] = (float)s * (px__f16_to_f32(wb[b].d) * xb[b].d);                     \
                }                                                                                  \
                acc = sum_groups_0(acc, p, cnt);                                                   \
            }                                                                                      \
            out[t] = acc;                                                                          \
        }                                                                                          \
    }

static int32_t isum_q4_0(const px_block_q4_0 *w, const px_block_q8a *x) {
    int q[32], s = 0;
    dec_q4_0(w, q);
    for (int j = 0; j < 32; j++)
        s += q[j] * x->qs[j];
    return s - 8 * x->sum;
}

static int32_t isum_q5_0(const px_block_q5_0 *w, const px_block_q8a *x) {
    int q[32], s = 0;
    dec_q5_0(w, q);
    for (int j = 0; j < 32; j++)
        s += q[j] * x->qs[j];
    return s - 16 * x->sum;
}

static int32_t isum_q8_0(const px_block_q8_0 *w, const px_block_q8a *x) {
    int s = 0;
    for (int j = 0; j < 32; j++)
        s += w->qs[j] * x->qs[j];
    return s;
}

DOT_0(dot_q4_0, px_block_q4_0, isum_q4_0(&wb[b], &xb[b]))
DOT_0(dot_q5_0, px_block_q5_0, isum_q5_0(&wb[b], &xb[b]))
DOT_0(dot_q8_0, px_block_q8_0, isum_q8_0(&wb[b], &xb[b]))

/* K dots: per superblock the exact integers isc = sum sc * dot and imn =
 * sum m * xsum, then the canonical float combination (kernels.h). */
#define DOT_K45(NAME, BLOCK, DEC)                                                                  \
    static void NAME(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {    \
        const BLOCK *wb = w;                                                                       \
        for (int t = 0; t < nrc; t++) {                                                            \
            const px_block_q8_K *xb = ACT(x, t, bx);                                               \
            float acc = 0.0f;                                                                      \
            for (int64_t b = 0; b < n / 256; b++) {                                                \
                int q[256], sc[8], mn[8];                                                          \
                DEC(&wb[b], q, sc, mn);                                                            \
                int32_t isc = 0, imn = 0;                                                          \
                for (int s = 0; s < 8; s++) {                                                      \
                    int32_t d = 0;                                                                 \
                    for (int j = 32 * s; j < 32 * s + 32; j++)                                     \
                        d += q[j] * xb[b].qs[j];                                                   \
                    isc += sc[s] * d;                                                              \
                    imn += mn[s] * (xb[b].bsums[2 * s] + xb[b].bsums[2 * s + 1]);                  \
                }                                                                                  \
                float dx = xb[b].d;                                                                \
                float p = (float)isc * (px__f16_to_f32(wb[b].d) * dx) -                            \
                          (float)imn * (px__f16_to_f32(wb[b].dmin) * dx);                          \
                acc = acc + p;                                                                     \
            }                                                                                      \
            out[t] = acc;                                                                          \
        }                                                                                          \
    }
DOT_K45(dot_q4_K, px_block_q4_K, dec_q4_K)
DOT_K45(dot_q5_K, px_block_q5_K, dec_q5_K)

static void dot_q6_K(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    const px_block_q6_K *wb = w;
    for (int t = 0; t < nrc; t++) {
        const px_block_q8_K *xb = ACT(x, t, bx);
        float acc = 0.0f;
        for (int64_t b = 0; b < n / 256; b++) {
            int q[256];
            dec_q6_K(&wb[b], q);
            int32_t isum = 0;
            for (int s = 0; s < 16; s++) {
                int32_t d = 0;
                for (int j = 16 * s; j < 16 * s + 16; j++)
                    d += q[j] * xb[b].qs[j];
                isum += wb[b].scales[s] * (d - 32 * xb[b].bsums[s]);
            }
            acc = acc + (float)isum * (px__f16_to_f32(wb[b].d) * xb[b].d);
        }
        out[t] = acc;
    }
}

static void dot_f32(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    const float *a = w;
    for (int t = 0; t < nrc; t++) {
        const float *b = ACT(x, t, bx);
        float acc = 0.0f;
        for (int64_t i = 0; i < n; i++)
            acc += a[i] * b[i];
        out[t] = acc;
    }
}

static void dot_f16(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    const px_f16 *a = w;
    for (int t = 0; t < nrc; t++) {
        const float *b = ACT(x, t, bx);
        float acc = 0.0f;
        for (int64_t i = 0; i < n; i++)
            acc += px__f16_to_f32(a[i]) * b[i];
        out[t] = acc;
    }
}

static void dot_bf16(int64_t n, const void *w, const void *x, size_t bx, int nrc, float *out) {
    const px_bf16 *a = w;
    for (int t = 0; t < nrc; t++) {
        const float *b = ACT(x, t, bx);
        float acc = 0.0f;
        for (int64_t i = 0; i < n; i++)
            acc += px__bf16_to_f32(a[i]) * b[i];
        out[t] = acc;
    }
}

/* ---- row dequantizers ---------------------------------------------------- */

static void to_f32_q4_0(const void *w, float *y, int64_t n) {
    const px_block_q4_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++) {
        int q[32];
        dec_q4_0(&wb[b], q);
        float d = px__f16_to_f32(wb[b].d);
        for (int j = 0; j < 32; j++)
            y[32 * b + j] = d * (float)(q[j] - 8);
    }
}

static void to_f32_q5_0(const void *w, float *y, int64_t n) {
    const px_block_q5_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++) {
        int q[32];
        dec_q5_0(&wb[b], q);
        float d = px__f16_to_f32(wb[b].d);
        for (int j = 0; j < 32; j++)
            y[32 * b + j] = d * (float)(q[j] - 16);
    }
}

static void to_f32_q8_0(const void *w, float *y, int64_t n) {
    const px_block_q8_0 *wb = w;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = px__f16_to_f32(wb[b].d);
        for (int j = 0; j < 32; j++)
            y[32 * b + j] = d * (float)wb[b].qs[j];
    }
}

static void to_f32_q4_K(const void *w, float *y, int64_t n) {
    const px_block_q4_K *wb = w;
    for (int64_t b = 0; b < n / 256; b++) {
        int q[256], sc[8], mn[8];
        dec_q4_K(&wb[b], q, sc, mn);
        float d = px__f16_to_f32(wb[b].d), dm = px__f16_to_f32(wb[b].dmin);
        for (int j = 0; j < 256; j++)
            y[256 * b + j] = d * (float)sc[j / 32] * (float)q[j] - dm * (float)mn[j / 32];
    }
}

static void to_f32_q5_K(const void *w, float *y, int64_t n) {
    const px_block_q5_K *wb = w;
    for (int64_t b = 0; b < n / 256; b++) {
        int q[256], sc[8], mn[8];
        dec_q5_K(&wb[b], q, sc, mn);
        float d = px__f16_to_f32(wb[b].d), dm = px__f16_to_f32(wb[b].dmin);
        for (int j = 0; j < 256; j++)
            y[256 * b + j] = d * (float)sc[j / 32] * (float)q[j] - dm * (float)mn[j / 32];
    }
}

static void to_f32_q6_K(const void *w, float *y, int64_t n) {
    const px_block_q6_K *wb = w;
    for (int64_t b = 0; b < n / 256; b++) {
        int q[256];
        dec_q6_K(&wb[b], q);
        float d = px__f16_to_f32(wb[b].d);
        for (int j = 0; j < 256; j++)
            y[256 * b + j] = d * (float)wb[b].scales[j / 16] * (float)(q[j] - 32);
    }
}

static void to_f32_f32(const void *w, float *y, int64_t n) {
    memcpy(y, w, (size_t)n * sizeof(float));
}

static void to_f32_f16(const void *w, float *y, int64_t n) {
    const px_f16 *a = w;
    for (int64_t i = 0; i < n; i++)
        y[i] = px__f16_to_f32(a[i]);
}

static void to_f32_bf16(const void *w, float *y, int64_t n) {
    const px_bf16 *a = w;
    for (int64_t i = 0; i < n; i++)
        y[i] = px__bf16_to_f32(a[i]);
}

/* ---- the X16 layout (kernels.h) --------------------------------------------- */

/* Block j of a row: its f16 scale bits and unsigned quants u[32]. */
static px_f16 x16_get(px_dtype t, const void *row, int64_t j, int *u) {
    if (t == PX_DTYPE_Q8_0) {
        const px_block_q8_0 *b = (const px_block_q8_0 *)row + j;
        for (int i = 0; i < 32; i++)
            u[i] = b->qs[i] + 128;
        return b->d;
    }
    if (t == PX_DTYPE_Q5_0) {
        dec_q5_0((const px_block_q5_0 *)row + j, u);
        return ((const px_block_q5_0 *)row + j)->d;
    }
    dec_q4_0((const px_block_q4_0 *)row + j, u);
    return ((const px_block_q4_0 *)row + j)->d;
}

/* The inverse of x16_get. */
static void x16_put(px_dtype t, void *row, int64_t j, px_f16 d, const int *u) {
    if (t == PX_DTYPE_Q8_0) {
        px_block_q8_0 *b = (px_block_q8_0 *)row + j;
        b->d = d;
        for (int i = 0; i < 32; i++)
            b->qs[i] = (int8_t)(u[i] - 128);
        return;
    }
    uint8_t *qs;
    if (t == PX_DTYPE_Q5_0) {
        px_block_q5_0 *b = (px_block_q5_0 *)row + j;
        uint32_t qh = 0;
        for (int i = 0; i < 32; i++)
            qh |= (uint32_t)((u[i] >> 4) & 1) << i;
        b->d = d;
        for (int i = 0; i < 4; i++)
            b->qh[i] = (uint8_t)(qh >> (8 * i));
        qs = b->qs;
    } else {
        px_block_q4_0 *b = (px_block_q4_0 *)row + j;
        b->d = d;
        qs = b->qs;
    }
    for (int i = 0; i < 16; i++)
        qs[i] = (uint8_t)((u[i] & 15) | (u[i + 16] & 15) << 4);
}

/* Byte offsets in a group's block of element c (0..31) of row r, and for
 * Q5_0 the bit of its fifth bit (kernels.h). */
static size_t x16_byte(px_dtype t, int r, int c, int *hi_nibble) {
    int k = c / 4, i = c % 4;
    *hi_nibble = t != PX_DTYPE_Q8_0 && (k & 1);
    return t == PX_DTYPE_Q8_0 ? (size_t)(32 + 64 * k + 4 * r + i)
                              : (size_t)(32 + 64 * (k / 2) + 4 * r + i);
}

/* Q4_K / Q6_K superblock sb of the 16 rows of a group (o: its 16 *
 * block_bytes bytes, kernels.h) from / to the rows' blocks. */
static void x16k_pack_sb(px_dtype t, const void *rows, size_t row_bytes, int64_t sb, uint8_t *o) {
    for (int r = 0; r < 16; r++) {
        const char *row = (const char *)rows + (size_t)r * row_bytes;
        int q[256], sc[16], mn[8];
        size_t nib;
        if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K) {
            /* both blocks start with d, dmin */
            const char *blk = row + (size_t)sb * px_dtype_get(t)->block_bytes;
            memcpy(o + 2 * r, blk, 2);
            memcpy(o + 32 + 2 * r, blk + 2, 2);
            if (t == PX_DTYPE_Q4_K) {
                dec_q4_K((const px_block_q4_K *)blk, q, sc, mn);
            } else {
                dec_q5_K((const px_block_q5_K *)blk, q, sc, mn);
                for (int k = 0; k < 64; k++)
                    for (int i = 0; i < 4; i++) {
                        uint8_t *hb = o + 2304 + 64 * (k / 8) + 4 * r + i;
                        *hb = (uint8_t)((*hb & ~(1 << (k % 8))) | ((q[4 * k + i] >> 4) & 1)
                                                                      << (k % 8));
                    }
            }
            for (int c = 0; c < 8; c++)
                o[64 + 16 * c + r] = (uint8_t)(sc[c] | (mn[c] & 3) << 6);
            for (int p = 0; p < 4; p++)
                o[192 + 16 * p + r] = (uint8_t)((mn[2 * p] >> 2) | (mn[2 * p + 1] >> 2) << 4);
            nib = 256;
        } else {
            const px_block_q6_K *b = (const px_block_q6_K *)row + sb;
            dec_q6_K(b, q);
            memcpy(o + 2 * r, &b->d, 2);
            for (int c = 0; c < 16; c++)
                o[32 + 16 * c + r] = (uint8_t)b->scales[c];
            for (int k = 0; k < 64; k++)
                for (int i = 0; i < 4; i++) {
                    uint8_t *hb = o + 2336 + 64 * (k / 4) + 4 * r + i;
                    *hb = (uint8_t)((*hb & ~(3 << (2 * (k % 4)))) | ((q[4 * k + i] >> 4) & 3)
                                                                        << (2 * (k % 4)));
                }
            nib = 288;
        }
        for (int k = 0; k < 64; k += 2) /* steps k and k + 1 share a byte */
            for (int i = 0; i < 4; i++)
                o[nib + 32 * k + 4 * r + i] =
                    (uint8_t)((q[4 * k + i] & 15) | (q[4 * k + 4 + i] & 15) << 4);
    }
}

/* Superblock sb of row r (0..15) of a group back to its GGUF block. */
static void x16k_unpack_sb(px_dtype t, const uint8_t *o, int r, void *dst) {
    const size_t nib = t == PX_DTYPE_Q6_K ? 288 : 256;
    int q[256];
    for (int k = 0; k < 64; k++)
        for (int i = 0; i < 4; i++) {
            uint8_t v = o[nib + 32 * (k & ~1) + 4 * r + i];
            q[4 * k + i] = (k & 1 ? v >> 4 : v) & 15;
            if (t == PX_DTYPE_Q6_K)
                q[4 * k + i] |= ((o[2336 + 64 * (k / 4) + 4 * r + i] >> (2 * (k % 4))) & 3) << 4;
            if (t == PX_DTYPE_Q5_K)
                q[4 * k + i] |= ((o[2304 + 64 * (k / 8) + 4 * r + i] >> (k % 8)) & 1) << 4;
        }
    if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K) {
        int sc[8], mn[8];
        for (int c = 0; c < 8; c++) {
            uint8_t v = o[64 + 16 * c + r], hi = o[192 + 16 * (c / 2) + r];
            sc[c] = v & 63;
            mn[c] = (v >> 6) | ((c & 1 ? hi >> 4 : hi) & 15) << 2;
        }
        if (t == PX_DTYPE_Q4_K) {
            px_block_q4_K *b = dst;
            memcpy(&b->d, o + 2 * r, 2);
            memcpy(&b->dmin, o + 32 + 2 * r, 2);
            enc_q4_K(b, q, sc, mn);
        } else {
            px_block_q5_K *b = dst;
            memcpy(&b->d, o + 2 * r, 2);
            memcpy(&b->dmin, o + 32 + 2 * r, 2);
            enc_q5_K(b, q, sc, mn);
        }
    } else {
        px_block_q6_K *b = dst;
        memcpy(&b->d, o + 2 * r, 2);
        for (int c = 0; c < 16; c++)
            b->scales[c] = (int8_t)o[32 + 16 * c + r];
        enc_q6_K(b, q);
    }
}

void px__x16_pack(px_dtype t, const void *rows, size_t row_bytes, int64_t n, int64_t n_rows,
                  void *dst) {
    const int64_t nb = n / 32;
    const size_t bb = 16 * (size_t)px_dtype_get(t)->block_bytes;
    if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K || t == PX_DTYPE_Q6_K) {
        for (int64_t g = 0; g < n_rows / 16; g++)
            for (int64_t sb = 0; sb < n / 256; sb++)
                x16k_pack_sb(t, (const char *)rows + (size_t)(16 * g) * row_bytes, row_bytes, sb,
                             (uint8_t *)dst + ((size_t)g * (size_t)(n / 256) + (size_t)sb) * bb);
        return;
    }
    for (int64_t g = 0; g < n_rows / 16; g++)
        for (int64_t j = 0; j < nb; j++) {
            uint8_t *o = (uint8_t *)dst + ((size_t)g * (size_t)nb + (size_t)j) * bb;
            for (int r = 0; r < 16; r++) {
                const char *row = (const char *)rows + (size_t)(16 * g + r) * row_bytes;
                if (t == PX_DTYPE_Q8_0) { /* the bulk of a model: 4 bytes at a time */
                    const px_block_q8_0 *b = (const px_block_q8_0 *)row + j;
                    memcpy(o + 2 * r, &b->d, 2);
                    for (int k = 0; k < 8; k++) {
                        uint32_t v;
                        memcpy(&v, b->qs + 4 * k, 4);
                        v ^= 0x80808080u;
                        memcpy(o + 32 + 64 * k + 4 * r, &v, 4);
                    }
                    continue;
                }
                int u[32];
                px_f16 d = x16_get(t, row, j, u);
                memcpy(o + 2 * r, &d, 2);
                for (int k = 0; k < 8; k += 2) /* steps 2j and 2j + 1 share a byte */
                    for (int i = 0; i < 4; i++)
                        o[32 + 32 * k + 4 * r + i] =
                            (uint8_t)((u[4 * k + i] & 15) | (u[4 * k + 4 + i] & 15) << 4);
                if (t == PX_DTYPE_Q5_0)
                    for (int i = 0; i < 4; i++) {
                        int hb = 0;
                        for (int k = 0; k < 8; k++)
                            hb |= ((u[4 * k + i] >> 4) & 1) << k;
                        o[288 + 4 * r + i] = (uint8_t)hb;
                    }
            }
        }
}

/* Block j of row r of an X16 tensor: its f16 scale bits and u[32]. */
static px_f16 x16_block(px_dtype t, const void *w, size_t row_bytes, int64_t n, int64_t r,
                        int64_t j, int *u) {
    const size_t bb = 16 * (size_t)px_dtype_get(t)->block_bytes;
    const uint8_t *o = (const uint8_t *)w + (size_t)(r / 16) * 16 * row_bytes + (size_t)j * bb;
    const int ri = (int)(r % 16);
    (void)n;
    for (int c = 0; c < 32; c++) {
        int hi;
        size_t at = x16_byte(t, ri, c, &hi);
        u[c] = t == PX_DTYPE_Q8_0 ? o[at] : (o[at] >> (hi ? 4 : 0)) & 15;
        if (t == PX_DTYPE_Q5_0) u[c] |= ((o[288 + 4 * ri + c % 4] >> (c / 4)) & 1) << 4;
    }
    px_f16 d;
    memcpy(&d, o + 2 * ri, 2);
    return d;
}

void px__x16_unpack_row(px_dtype t, const void *w, size_t row_bytes, int64_t n, int64_t r,
                        void *dst) {
    if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K || t == PX_DTYPE_Q6_K) {
        const size_t bb = 16 * (size_t)px_dtype_get(t)->block_bytes;
        for (int64_t sb = 0; sb < n / 256; sb++)
            x16k_unpack_sb(t,
                           (const uint8_t *)w + (size_t)(r / 16) * 16 * row_bytes + (size_t)sb * bb,
                           (int)(r % 16), (char *)dst + (size_t)sb * (bb / 16));
        return;
    }
    for (int64_t j = 0; j < n / 32; j++) {
        int u[32];
        px_f16 d = x16_block(t, w, row_bytes, n, r, j, u);
        x16_put(t, dst, j, d, u);
    }
}

/* The canonical _0 combination (kernels.h) of each row and token, with
 * isum = sum (u - offset) x. */
void px__x16_ref(px_dtype t, int64_t n, const void *w, int n_groups, const void *xv,
                 size_t x_stride, int n_tok, float *y, size_t y_stride) {
    const size_t rb = px_dtype_row_size(t, n);
    if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K || t == PX_DTYPE_Q6_K) {
        /* Each superblock back in its GGUF block and through the portable
         * row dot, whose result for one superblock is 0 + p: the sums
         * ((0 + p_0) + p_1) + ... are the row's (acc is never -0). */
        const size_t bb = 16 * (size_t)px_dtype_get(t)->block_bytes;
        for (int64_t r = 0; r < 16 * (int64_t)n_groups; r++)
            for (int tk = 0; tk < n_tok; tk++) {
                const px_block_q8_K *xb = (const px_block_q8_K *)xv + (size_t)tk * x_stride;
                float acc = 0.0f;
                for (int64_t sb = 0; sb < n / 256; sb++) {
                    _Alignas(64) uint8_t blk[256];
                    x16k_unpack_sb(
                        t, (const uint8_t *)w + (size_t)(r / 16) * 16 * rb + (size_t)sb * bb,
                        (int)(r % 16), blk);
                    float p;
                    px__kernels_ref.vec_dot[t](256, blk, xb + sb, 0, 1, &p);
                    acc = acc + p;
                }
                y[(size_t)tk * y_stride + (size_t)r] = acc;
            }
        return;
    }
    const px_block_q8a *x = xv;
    const int off = t == PX_DTYPE_Q8_0 ? 128 : t == PX_DTYPE_Q5_0 ? 16 : 8;
    const int64_t nb = n / 32;
    for (int64_t r = 0; r < 16 * (int64_t)n_groups; r++)
        for (int tk = 0; tk < n_tok; tk++) {
            const px_block_q8a *xb = x + (size_t)tk * x_stride;
            float acc = 0.0f;
            for (int64_t b0 = 0; b0 < nb; b0 += MAX_BLOCKS_ON_STACK) {
                float p[MAX_BLOCKS_ON_STACK];
                int64_t cnt = PX_MIN(nb - b0, (int64_t)MAX_BLOCKS_ON_STACK);
                for (int64_t b = b0; b < b0 + cnt; b++) {
                    int u[32];
                    px_f16 d = x16_block(t, w, rb, n, r, b, u);
                    int32_t s = 0;
                    for (int c = 0; c < 32; c++)
                        s += (u[c] - off) * xb[b].qs[c];
                    p[b - b0] = (float)s * (px__f16_to_f32(d) * xb[b].d);
                }
                acc = sum_groups_0(acc, p, cnt);
            }
            y[(size_t)tk * y_stride + (size_t)r] = acc;
        }
}

/* ---- attention helpers --------------------------------------------------- */

static void attn_scores(int hd, const float *q, size_t q_stride, int nq, const px_f16 *const *kv,
                        int nv, size_t kstride, float *s, size_t s_stride) {
    for (int i = 0; i < nq; i++)
        for (int v = 0; v < nv; v++)
            for (int l = 0; l < 8; l++) {
                float acc = 0.0f;
                for (int d = 0; d < hd; d++)
                    acc = fmaf(q[(size_t)i * q_stride + (size_t)d],
                               px__f16_to_f32(kv[v][(size_t)d * kstride + (size_t)l]), acc);
                s[(size_t)i * s_stride + (size_t)(8 * v + l)] = acc;
            }
}

static void attn_accum(int hd, const float *w, size_t w_stride, int nq, const px_f16 *const *v,
                       int nt, float *o, size_t o_stride) {
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < nq; i++) {
            float wi = w[(size_t)i * w_stride + (size_t)t];
            float *oi = o + (size_t)i * o_stride;
            for (int d = 0; d < hd; d++)
                oi[d] = fmaf(wi, px__f16_to_f32(v[t][d]), oi[d]);
        }
}

static void exp_shift(float *x, int64_t n, float shift) {
    for (int64_t i = 0; i < n; i++)
        x[i] = px_expf(x[i] - shift);
}

static void f32_to_f16_row(int64_t n, const float *x, px_f16 *y) {
    for (int64_t i = 0; i < n; i++)
        y[i] = px__f32_to_f16(x[i]);
}

const px_kernels px__kernels_ref = {
    .name = "portable",
    .vec_dot =
        {
            [PX_DTYPE_Q4_0] = dot_q4_0,
            [PX_DTYPE_Q5_0] = dot_q5_0,
            [PX_DTYPE_Q8_0] = dot_q8_0,
            [PX_DTYPE_Q4_K] = dot_q4_K,
            [PX_DTYPE_Q5_K] = dot_q5_K,
            [PX_DTYPE_Q6_K] = dot_q6_K,
            [PX_DTYPE_F32] = dot_f32,
            [PX_DTYPE_F16] = dot_f16,
            [PX_DTYPE_BF16] = dot_bf16,
        },
    .to_f32 =
        {
            [PX_DTYPE_Q4_0] = to_f32_q4_0,
            [PX_DTYPE_Q5_0] = to_f32_q5_0,
            [PX_DTYPE_Q8_0] = to_f32_q8_0,
            [PX_DTYPE_Q4_K] = to_f32_q4_K,
            [PX_DTYPE_Q5_K] = to_f32_q5_K,
            [PX_DTYPE_Q6_K] = to_f32_q6_K,
            [PX_DTYPE_F32] = to_f32_f32,
            [PX_DTYPE_F16] = to_f32_f16,
            [PX_DTYPE_BF16] = to_f32_bf16,
        },
    .quantize_q8a = quantize_q8a,
    .quantize_q8k = quantize_q8k,
    .attn_scores = attn_scores,
    .attn_accum = attn_accum,
    .exp_shift = exp_shift,
    .f32_to_f16_row = f32_to_f16_row,
    .geglu = px_geglu,
    .swiglu = px_swiglu,
};
