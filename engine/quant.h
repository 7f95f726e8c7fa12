/* quant.h — quantize and dequantize rows of every computable dtype.
 *
 * Reference (portable C) conversions between float rows and the GGUF block
 * layouts in types.h. Quantizers follow the standard GGUF rounding
 * (round-to-nearest absmax scaling for the _0 types and Q8_K; the K-quant
 * quantizers search scales and mins per sub-block) so that files written by
 * pollux-mkmodel load in other engines unchanged.
 * Owns: nothing. Any thread. */
#ifndef PX_QUANT_H
#define PX_QUANT_H

#include <stdint.h>

#include "types.h"

/* dst[0..n) = row of n elements of `type` at src. n multiple of block size;
 * src 2-byte aligned (4-byte for F32 and Q8_K), as GGUF alignment ensures.
 * Returns 0, PX_EINVAL for a bad n or NULL pointer, or PX_ENOTSUP for a type
 * without a dequantizer. */
int px_dequantize_row(px_dtype type, const void *src, float *dst, int64_t n);
/* Writes px_dtype_row_size(type, n) bytes at dst. Returns 0, PX_EINVAL (bad
 * n or pointer) or PX_ENOTSUP (unsupported type). */
int px_quantize_row(px_dtype type, const float *src, void *dst, int64_t n);

#endif
