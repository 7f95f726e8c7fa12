/* types.h — tensor element types and the quantization block layouts of GGUF.
 *
 * The enum values are ggml's type ids as stored in GGUF tensor infos; the
 * block structs are byte-exact copies of the layouts in files in the wild
 * (little-endian, packed as written below: every field is naturally aligned,
 * so no padding is added). A row of n elements of a block type takes
 * n / block_elems blocks; n must be a multiple of block_elems.
 * Owns: nothing (constants and POD only). Any thread. */
#ifndef PX_TYPES_H
#define PX_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum px_dtype {
    PX_DTYPE_F32 = 0,
    PX_DTYPE_F16 = 1,
    PX_DTYPE_Q4_0 = 2,
    PX_DTYPE_Q4_1 = 3,
    PX_DTYPE_Q5_0 = 6,
    PX_DTYPE_Q5_1 = 7,
    PX_DTYPE_Q8_0 = 8,
    PX_DTYPE_Q8_1 = 9,
    PX_DTYPE_Q2_K = 10,
    PX_DTYPE_Q3_K = 11,
    PX_DTYPE_Q4_K = 12,
    PX_DTYPE_Q5_K = 13,
    PX_DTYPE_Q6_K = 14,
    PX_DTYPE_Q8_K = 15,
    PX_DTYPE_I8 = 24,
    PX_DTYPE_I16 = 25,
    PX_DTYPE_I32 = 26,
    PX_DTYPE_I64 = 27,
    PX_DTYPE_F64 = 28,
    PX_DTYPE_BF16 = 30,
    PX_DTYPE_COUNT = 40 /* upper bound of the id space we index by */
} px_dtype;

#define PX_QK4_0 32
#define PX_QK5_0 32
#define PX_QK8_0 32
#define PX_QK_K 256
#define PX_K_SCALE_SIZE 12

typedef uint16_t px_f16;  /* IEEE half, raw bits */
typedef uint16_t px_bf16; /* bfloat16, raw bits */

/* Q4_0: x = d * (q - 8), q in 0..15; low nibbles are elements 0..15,
 * high nibbles elements 16..31. */
typedef struct px_block_q4_0 {
    px_f16 d;
    uint8_t qs[PX_QK4_0 / 2];
} px_block_q4_0;

/* Q4_1: x = d * q + m. */
typedef struct px_block_q4_1 {
    px_f16 d, m;
    uint8_t qs[PX_QK4_0 / 2];
} px_block_q4_1;

/* Q5_0: x = d * (q - 16); the 5th bit of element j is bit j of qh. */
typedef struct px_block_q5_0 {
    px_f16 d;
    uint8_t qh[4];
    uint8_t qs[PX_QK5_0 / 2];
} px_block_q5_0;

typedef struct px_block_q5_1 {
    px_f16 d, m;
    uint8_t qh[4];
    uint8_t qs[PX_QK5_0 / 2];
} px_block_q5_1;

/* Q8_0: x = d * q. */
typedef struct px_block_q8_0 {
    px_f16 d;
    int8_t qs[PX_QK8_0];
} px_block_q8_0;

/* Q8_1: x = d * q; s = d * sum(q) (used to fold the offset of _1 types). */
typedef struct px_block_q8_1 {
    px_f16 d, s;
    int8_t qs[PX_QK8_0];
} px_block_q8_1;

/* Q2_K and Q3_K are parsed (sizes known) but not computed with. */
typedef struct px_block_q2_K {
    uint8_t scales[PX_QK_K / 16];
    uint8_t qs[PX_QK_K / 4];
    px_f16 d, dmin;
} px_block_q2_K;

typedef struct px_block_q3_K {
    uint8_t hmask[PX_QK_K / 8];
    uint8_t qs[PX_QK_K / 4];
    uint8_t scales[12];
    px_f16 d;
} px_block_q3_K;

/* Q4_K: 8 sub-blocks of 32; 6-bit scales and mins packed in `scales`;
 * x = d * sc * q - dmin * m. */
typedef struct px_block_q4_K {
    px_f16 d, dmin;
    uint8_t scales[PX_K_SCALE_SIZE];
    uint8_t qs[PX_QK_K / 2];
} px_block_q4_K;

/* Q5_K: as Q4_K plus a 5th bit per element in qh. */
typedef struct px_block_q5_K {
    px_f16 d, dmin;
    uint8_t scales[PX_K_SCALE_SIZE];
    uint8_t qh[PX_QK_K / 8];
    uint8_t qs[PX_QK_K / 2];
} px_block_q5_K;

/* Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * sc * (q - 32). */
typedef struct px_block_q6_K {
    uint8_t ql[PX_QK_K / 2];
    uint8_t qh[PX_QK_K / 4];
    int8_t scales[PX_QK_K / 16];
    px_f16 d;
} px_block_q6_K;

/* Q8_K: activations for K-quant dots; bsums[i] = sum of qs[16i..16i+15]. */
typedef struct px_block_q8_K {
    float d;
    int8_t qs[PX_QK_K];
    int16_t bsums[PX_QK_K / 16];
} px_block_q8_K;

_Static_assert(sizeof(px_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(px_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(px_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(px_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(px_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(px_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(px_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(px_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(px_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(px_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(px_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(px_block_q8_K) == 292, "q8_K block");

typedef struct px_dtype_info {
    const char *name; /* "Q4_K"; NULL for ids we do not know */
    int block_elems;  /* elements per block (1 for scalar types) */
    int block_bytes;  /* bytes per block */
    bool computable;  /* pollux has kernels for it (weights of this type load) */
} px_dtype_info;

/* Info for a type id; name == NULL if the id is unknown. */
const px_dtype_info *px_dtype_get(uint32_t type);
/* Bytes of a row of n elements, or 0 if n is not a multiple of the block size
 * or the type is unknown. */
size_t px_dtype_row_size(px_dtype type, int64_t n);

/* IEEE half and bfloat16 conversions (portable; SIMD paths convert in bulk). */
float px_f16_to_f32(px_f16 h);
px_f16 px_f32_to_f16(float f);
float px_bf16_to_f32(px_bf16 h);
px_bf16 px_f32_to_bf16(float f);

/* How a weight's rows lie in memory. ROWS: one row after another, as in
 * GGUF. X16: Q4_0 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K repacked at load for the kernel set's
 * lanes-are-rows kernels, groups of 16 rows interleaved (kernels.h); a group
 * takes the bytes of its 16 rows, so group g starts where row 16 g would. */
typedef enum px_layout { PX_LAYOUT_ROWS = 0, PX_LAYOUT_X16 = 1 } px_layout;

/* A weight matrix or vector in some dtype: ne[0] is the row length (the
 * input dimension), rows = ne[1] * ne[2] * ne[3]. Data is borrowed (usually
 * the GGUF mapping, or the model's repacked copy). */
typedef struct px_tensor {
    px_dtype type;
    px_layout layout;
    int64_t ne[4];
    size_t row_bytes; /* px_dtype_row_size(type, ne[0]) */
    const void *data;
    const char *name; /* for messages */
} px_tensor;

#endif
