/* kernels.h — the internal kernel table behind px_matmul (module-private).
 *
 * A kernel set (portable, AVX2, AVX-512 VNNI) is a table of function pointers
 * chosen once from cpuid. Quantized weights are dotted with activations
 * quantized to int8: PX_BLOCK_Q8A blocks of 32 for Q4_0/Q5_0/Q8_0 weights,
 * px_block_q8_K blocks of 256 for Q4_K/Q5_K/Q6_K; F32/F16/BF16 weights take
 * float activations. The AVX-512 set also has "gemm16" kernels for batches:
 * 16 tokens sit in the 16 lanes of a zmm (activations transposed from the
 * row formats by px__q8t_from_q8a / _q8k), so each weight byte is loaded
 * once per 16 tokens.
 *
 * Q4_0 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights may be repacked at load
 * (PX_LAYOUT_X16) when the set has an x16 kernel for the type. Per group of
 * 16 rows and per
 * block b of 32 columns, 16 times the block's bytes: the 16 rows' f16
 * scales (32 bytes), then the quants as unsigned u = q + offset (128 for
 * Q8_0, the type's own 8 / 16 for Q4_0 / Q5_0) in k-steps of 4 columns
 * (k = 0..7: columns 4k..4k+3), 4 bytes per row, rows 0..15 in turn:
 *   Q8_0: 8 x 64 bytes, step k at 64 k;
 *   Q4_0 / Q5_0: 4 x 64 bytes of nibbles, steps 2j (low) and 2j + 1 (high)
 *     at 64 j; Q5_0 then 64 bytes whose byte 4 r + i holds in bit k the
 *     fifth bit of row r's column 4k + i.
 * The K types go by superblock of 256 columns (16 x its bytes, steps k =
 * 0..63 of 4 columns; nibble vectors as for Q4_0, 64 bytes per 2 steps):
 *   Q4_K (2304 bytes): d[16], dmin[16] (f16); at 64, byte 16 c + r = sc |
 *     (m & 3) << 6 of row r's sub-block c (0..7); at 192, byte 16 p + r =
 *     (m of sub-block 2p) >> 2 | (m of 2p + 1) >> 2 << 4; at 256 the
 *     nibbles (q, 0..15).
 *   Q5_K (2816 bytes): as Q4_K, the nibbles being q's low bits, then 8 x 64
 *     bytes whose byte 4 r + i of vector c holds in bit s the fifth bit of
 *     q at step 8c + s.
 *   Q6_K (3360 bytes): d[16]; at 32, byte 16 s + r = row r's int8 scale of
 *     sub-block s (0..15, 16 columns each); at 288 the low nibbles of q
 *     (0..63, offset 32); at 2336, 16 x 64 bytes whose byte 4 r + i of
 *     vector j holds at bits 2s..2s+1 bits 4..5 of q at step 4j + s.
 * One zmm of a step feeds vpdpbusd for 16 rows of a token (the activation
 * bytes broadcast, the offset off as offset * sum(x)): no horizontal sums,
 * no activation transposes, and one sequential weight stream.
 *
 * Batch invariance: every kernel computes each output with the same float
 * operations in the same order, whatever the number of tokens, the path or
 * the thread split, so a row of y is bitwise what it is for that row alone.
 * The canonical computation of out = dot(weight row, activation row):
 *   _0 types: per block b of 32, isum_b = sum w_j x_j exactly (int),
 *     p_b = (float)isum_b * (dw_b * dx_b); per group g of 8 blocks (the
 *     last padded with p = +0.0f) G_g = ((p0+p1)+(p2+p3))+((p4+p5)+(p6+p7));
 *     out = ((0 + G_0) + G_1) + ...
 *   Q4_K / Q5_K: per superblock, isc = sum_s sc_s * dot_s and imn = sum_s
 *     m_s * xsum_s exactly; p = (float)isc * (d * dx) - (float)imn * (dmin *
 *     dx); out = ((0 + p_0) + p_1) + ...
 *   Q6_K: isum = sum_s sc_s * sum_j (q_j - 32) x_j exactly; p = (float)isum
 *     * (d * dx); out as for Q4_K.
 *   Every operation is a separately rounded float mul or add (no FMA), so the
 *   portable set gives the same bits as the SIMD ones; activations are
 *   quantized identically by every set (round half even of x * (127/amax)).
 *   Float weights: the SIMD sets use a fixed 32-lane FMA order per token,
 *   the portable set a sequential one; each is independent of n_tok but the
 *   two differ.
 * Owns: nothing. Any thread (pure functions over caller memory). */
#ifndef PX_KERNELS_H
#define PX_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "types.h"

/* Activation block for the _0 weight types: x = d * qs; sum = sum(qs). The
 * sum folds the weight offset (q - 8, q - 16) into one subtraction. */
typedef struct px_block_q8a {
    float d;
    int32_t sum;
    int8_t qs[32];
} px_block_q8a;
_Static_assert(sizeof(px_block_q8a) == 40, "q8a block");

/* Transposed activations for gemm16, one group of 16 tokens, per block of 32
 * elements: qs[k][t][4] = q[t][4k..4k+3] (signed; the weights take the
 * unsigned slot of vpdpbusd, so their offsets come off as off * sa / sb);
 * sa[t], sb[t] the sums of q[t][0..15] and q[t][16..31]; d[t] the scale (of
 * the q8a block, or of the whole q8_K superblock for the K types). The
 * values are exactly those of the row formats. Tokens past n_tok are zero. */
typedef struct px_block_q8t {
    int8_t qs[8][16][4];
    int32_t sa[16], sb[16];
    float d[16];
} px_block_q8t;
_Static_assert(sizeof(px_block_q8t) == 704, "q8t block");

/* Transposes n_tok (<= 16) activation rows of nb q8a blocks (rows x_stride
 * blocks apart) into nb q8t blocks. */
void px__q8t_from_q8a(const px_block_q8a *x, size_t x_stride, int n_tok, int64_t nb,
                      px_block_q8t *y);
/* The same from rows of nb256 q8_K superblocks (8 q8t blocks each). */
void px__q8t_from_q8k(const px_block_q8_K *x, size_t x_stride, int n_tok, int64_t nb256,
                      px_block_q8t *y);

/* Row dots compute up to this many activation rows per weight row. */
#define PX_NRC_MAX 4

/* out[t] = dot(weight row w of n elements, activation row t) for t < nrc;
 * activation row t starts at (const char *)x + t * x_stride. */
typedef void (*px_vec_dot_fn)(int64_t n, const void *w, const void *x, size_t x_stride, int nrc,
                              float *out);
/* y[t * y_stride + r] = dot(weight row r, token t) for r < n_rows and t <
 * n_tok (any count); weight rows are w_stride bytes apart; xt holds
 * (n_tok + 15) / 16 groups of n / 32 px_block_q8t, one group after another. */
typedef void (*px_gemm16_fn)(int64_t n, const void *w, size_t w_stride, int n_rows,
                             const px_block_q8t *xt, int n_tok, float *y, size_t y_stride);
/* Dequantizes a row of n elements to float. */
typedef void (*px_to_f32_fn)(const void *w, float *y, int64_t n);
/* y[t * y_stride + r] = dot(row r, token t) for r < 16 * n_groups and t <
 * n_tok (any count): w holds n_groups groups of the X16 layout of rows of n
 * elements; token t's activation blocks (q8a, or q8_K for the K types)
 * start x_stride blocks after token t - 1's. */
typedef void (*px_x16_fn)(int64_t n, const void *w, int n_groups, const void *x, size_t x_stride,
                          int n_tok, float *y, size_t y_stride);

/* Attention. A score is one fused multiply-add chain over d in order,
 * s = fma(q[hd-1], k[hd-1], ... fma(q[0], k[0], 0)); an output element
 * continues o[d] = fma(w_t, v_t[d], o[d]) over the keys in the order given.
 * So a score or an output never depends on which other queries, keys or
 * lanes share its call (batch invariance, above).
 *
 * K blocks are stored transposed (kernels read 8 tokens per load): element
 * d of token j of KV head h at blk[(h * hd + d) * bs + j]. A key vector is
 * 8 consecutive tokens of one block and head: lane l of element d at
 * kv[d * kstride + l] (lanes past the block's tokens read other elements of
 * the block; their scores are to be ignored).
 *
 * scores: s[i * s_stride + 8 * v + l] = score of query i (hd floats at q +
 * i * q_stride) and lane l of key vector v, for i < nq, v < nv, l < 8;
 * nq * nv <= PX_ATTN_TILE. */
#define PX_ATTN_TILE 8
typedef void (*px_attn_scores_fn)(int hd, const float *q, size_t q_stride, int nq,
                                  const px_f16 *const *kv, int nv, size_t kstride, float *s,
                                  size_t s_stride);
/* accum: for t = 0 .. nt-1, o_i[d] = fma(w[i * w_stride + t], v[t][d], o_i[d])
 * for i < nq (<= 4) and d < hd; o_i = o + i * o_stride. */
typedef void (*px_attn_accum_fn)(int hd, const float *w, size_t w_stride, int nq,
                                 const px_f16 *const *v, int nt, float *o, size_t o_stride);

typedef struct px_kernels {
    const char *name;                      /* "portable", "avx2", "avx512-vnni" */
    px_vec_dot_fn vec_dot[PX_DTYPE_COUNT]; /* NULL for dtypes without kernels */
    px_gemm16_fn gemm16[PX_DTYPE_COUNT];   /* NULL when the set has none */
    /* X16-layout weights; NULL: the set does not want the type repacked (a
     * model loaded under another set still runs, on px__x16_ref). */
    px_x16_fn x16[PX_DTYPE_COUNT];
    px_to_f32_fn to_f32[PX_DTYPE_COUNT];
    /* x (n floats, n % 32 == 0) -> n / 32 blocks. */
    void (*quantize_q8a)(const float *x, px_block_q8a *y, int64_t n);
    /* x (n floats, n % 256 == 0) -> n / 256 blocks with bsums. */
    void (*quantize_q8k)(const float *x, px_block_q8_K *y, int64_t n);
    /* Attention tiles; every set gives the portable bits (fmaf chains). */
    px_attn_scores_fn attn_scores;
    px_attn_accum_fn attn_accum;
    /* x[i] = px_expf(x[i] - shift) (ops.c), bit for bit. */
    void (*exp_shift)(float *x, int64_t n, float shift);
    void (*f32_to_f16_row)(int64_t n, const float *x, px_f16 *y);
    /* gate[i] = act(gate[i]) * up[i], act = gelu_tanh (geglu) or silu
     * (swiglu): the operations of ops.c's px_geglu / px_swiglu in the same
     * order, so every set gives the portable result bit for bit. */
    void (*geglu)(float *gate, const float *up, int64_t n);
    void (*swiglu)(float *gate, const float *up, int64_t n);
} px_kernels;

/* The kernel sets; the SIMD ones exist only on x86-64 builds. */
extern const px_kernels px__kernels_ref;
extern const px_kernels px__kernels_avx2;
extern const px_kernels px__kernels_avx512;

/* px_matmul's paths. AUTO picks by n_tok from the table in matmul.c; the
 * others force one path (for tests and pollux-kbench; not thread-safe). A
 * forced path the dtype or kernel set lacks falls back to ROWS. */
typedef enum px_matmul_path {
    PX_MATMUL_AUTO = 0,
    PX_MATMUL_ROWS,   /* row dots, PX_NRC_MAX tokens per weight row pass */
    PX_MATMUL_GEMM16, /* int8 VNNI, 16 tokens per zmm */
    PX_MATMUL_GEMM4,  /* (retired: not batch invariant; falls back to ROWS) */
    PX_MATMUL_BLAS,   /* sgemm on dequantized weight tiles: forced only, since
                         sgemm's rounding depends on n_tok */
    PX_MATMUL_X16,    /* X16-layout weights: always (no other path reads them) */
} px_matmul_path;
void px__matmul_force_path(px_matmul_path path);
/* The kernel set px_matmul uses (after any px_matmul_force_kernels). */
const px_kernels *px__kernels_get(void);

/* Whether the X16 layout exists for a weight dtype. */
static inline int px__x16_type(px_dtype t) {
    return t == PX_DTYPE_Q4_0 || t == PX_DTYPE_Q5_0 || t == PX_DTYPE_Q8_0 || t == PX_DTYPE_Q4_K ||
           t == PX_DTYPE_Q5_K || t == PX_DTYPE_Q6_K;
}
/* Repacks n_rows (a multiple of 16) rows of type t and n elements,
 * row_bytes apart, into the X16 layout at dst (n_rows * row_bytes bytes). */
void px__x16_pack(px_dtype t, const void *rows, size_t row_bytes, int64_t n, int64_t n_rows,
                  void *dst);
/* Row r of an X16 tensor back to its GGUF blocks. */
void px__x16_unpack_row(px_dtype t, const void *w, size_t row_bytes, int64_t n, int64_t r,
                        void *dst);
/* The portable x16 kernel: each row unpacked and dotted by the portable
 * row dot, so the bits are the row layout's. */
void px__x16_ref(px_dtype t, int64_t n, const void *w, int n_groups, const void *x, size_t x_stride,
                 int n_tok, float *y, size_t y_stride);

/* Activation format of a weight dtype (PX_DTYPE_Q8_0 stands for q8a,
 * PX_DTYPE_Q8_K for q8_K, PX_DTYPE_F32 for plain floats); -1 if unsupported. */
static inline int px__act_type(px_dtype w) {
    switch (w) {
    case PX_DTYPE_Q4_0:
    case PX_DTYPE_Q5_0:
    case PX_DTYPE_Q8_0: return PX_DTYPE_Q8_0;
    case PX_DTYPE_Q4_K:
    case PX_DTYPE_Q5_K:
    case PX_DTYPE_Q6_K: return PX_DTYPE_Q8_K;
    case PX_DTYPE_F32:
    case PX_DTYPE_F16:
    case PX_DTYPE_BF16: return PX_DTYPE_F32;
    default: return -1;
    }
}

/* Portable half/bfloat16 conversions (kernels avoid a call per element). */
static inline float px__f16_to_f32(px_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: value = man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline px_f16 px__f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan (keep nan quiet) */
        return (px_f16)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (px_f16)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below the smallest normal: round in subnormal units */
        float a;
        memcpy(&a, &ax, 4);
        /* a * 2^24 is exact in float; lrint-free round half even */
        float s = a * 16777216.0f;
        uint32_t r = (uint32_t)s;
        float frac = s - (float)r;
        if (frac > 0.5f || (frac == 0.5f && (r & 1))) r++;
        return (px_f16)(sign | r);
    }
    uint32_t mant = ax & 0x7fffff, exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* carries into the exponent correctly */
    return (px_f16)(sign | h);
}

static inline float px__bf16_to_f32(px_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K block. */
static inline void px__k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

#endif
