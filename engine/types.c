/* types.c — the dtype table (block sizes of ggml's type ids) and portable
 * IEEE half / bfloat16 conversions. */
#include "types.h"

#include <string.h>

#define SCALAR(nm, bytes, comp)                                                                    \
    { .name = nm, .block_elems = 1, .block_bytes = bytes, .computable = comp }
#define BLOCK(nm, elems, blk, comp)                                                                \
    { .name = nm, .block_elems = elems, .block_bytes = (int)sizeof(blk), .computable = comp }

/* Indexed by type id; ids left out have name == NULL (unknown). */
static const px_dtype_info dtype_table[PX_DTYPE_COUNT] = {
    [PX_DTYPE_F32] = SCALAR("F32", 4, true),
    [PX_DTYPE_F16] = SCALAR("F16", 2, true),
    [PX_DTYPE_Q4_0] = BLOCK("Q4_0", PX_QK4_0, px_block_q4_0, true),
    [PX_DTYPE_Q4_1] = BLOCK("Q4_1", PX_QK4_0, px_block_q4_1, false),
    [PX_DTYPE_Q5_0] = BLOCK("Q5_0", PX_QK5_0, px_block_q5_0, true),
    [PX_DTYPE_Q5_1] = BLOCK("Q5_1", PX_QK5_0, px_block_q5_1, false),
    [PX_DTYPE_Q8_0] = BLOCK("Q8_0", PX_QK8_0, px_block_q8_0, true),
    [PX_DTYPE_Q8_1] = BLOCK("Q8_1", PX_QK8_0, px_block_q8_1, false),
    [PX_DTYPE_Q2_K] = BLOCK("Q2_K", PX_QK_K, px_block_q2_K, false),
    [PX_DTYPE_Q3_K] = BLOCK("Q3_K", PX_QK_K, px_block_q3_K, false),
    [PX_DTYPE_Q4_K] = BLOCK("Q4_K", PX_QK_K, px_block_q4_K, true),
    [PX_DTYPE_Q5_K] = BLOCK("Q5_K", PX_QK_K, px_block_q5_K, true),
    [PX_DTYPE_Q6_K] = BLOCK("Q6_K", PX_QK_K, px_block_q6_K, true),
    [PX_DTYPE_Q8_K] = BLOCK("Q8_K", PX_QK_K, px_block_q8_K, false),
    [PX_DTYPE_I8] = SCALAR("I8", 1, false),
    [PX_DTYPE_I16] = SCALAR("I16", 2, false),
    [PX_DTYPE_I32] = SCALAR("I32", 4, false),
    [PX_DTYPE_I64] = SCALAR("I64", 8, false),
    [PX_DTYPE_F64] = SCALAR("F64", 8, false),
    [PX_DTYPE_BF16] = SCALAR("BF16", 2, true),
};

static const px_dtype_info dtype_unknown = {NULL, 0, 0, false};

const px_dtype_info *px_dtype_get(uint32_t type) {
    if (type >= PX_DTYPE_COUNT || !dtype_table[type].name) return &dtype_unknown;
    return &dtype_table[type];
}

size_t px_dtype_row_size(px_dtype type, int64_t n) {
    const px_dtype_info *t = px_dtype_get((uint32_t)type);
    if (!t->name || n <= 0 || n % t->block_elems != 0) return 0;
    uint64_t blocks = (uint64_t)(n / t->block_elems), bytes;
    if (__builtin_mul_overflow(blocks, (uint64_t)t->block_bytes, &bytes) || bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float px_f16_to_f32(px_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf, or NaN with its payload kept (mant != 0) */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        /* Subnormal: mant * 2^-24; normalise so the leading 1 is implicit. */
        exp = 127 - 14;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        return bits_f32(sign | (exp << 23) | ((mant & 0x3ff) << 13));
    }
    return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

px_f16 px_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) /* NaN: keep the top payload bits, force quiet so it stays NaN */
        return (px_f16)(sign | 0x7e00 | (x >> 13));
    if (x >= 0x47800000u) /* >= 65536 (or inf): beyond any rounding to 65504 */
        return (px_f16)(sign | 0x7c00);
    uint32_t h, rem, half;
    if (x >= 0x38800000u) { /* normal half: rebias the exponent, drop 13 bits */
        h = (x >> 13) - ((127 - 15) << 10);
        rem = x & 0x1fff;
        half = 0x1000;
    } else if (x >= 0x33000000u) { /* subnormal half: units of 2^-24 */
        uint32_t e = x >> 23, m = (x & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    } else { /* below 2^-25: rounds to zero */
        return (px_f16)sign;
    }
    /* Round to nearest even; a carry out of the mantissa bumps the exponent,
     * which is exactly right (up to and including overflow to inf). */
    if (rem > half || (rem == half && (h & 1))) h++;
    return (px_f16)(sign | h);
}

float px_bf16_to_f32(px_bf16 h) {
    return bits_f32((uint32_t)h << 16);
}

px_bf16 px_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: truncation could make it inf */
        return (px_bf16)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
    return (px_bf16)(x >> 16);
}
