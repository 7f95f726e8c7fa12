/* matmul.h — y = x · Wᵀ for weights of any computable dtype, on the pool.
 *
 * W is (n_out, n_in) row-major in its dtype (px_tensor, ne[0] = n_in,
 * ne[1] = n_out); x is (n_tok, n_in) float; y is (n_tok, n_out) float.
 * Small n_tok (decode) runs the quantized kernels: x is quantized once to the
 * weight type's activation format and every weight row is dotted with every
 * x row while it is in cache. Batches and prefill take whichever path was
 * measured faster for that dtype and n_tok: the int8 batch kernels (4 or 16
 * tokens per vector) or OpenBLAS sgemm on dequantized weight tiles; the
 * switch points live in one table in matmul.c. Kernel variants (AVX-512 VNNI, AVX2, portable) are
 * chosen once at start-up from cpuid. Owns: a px_matmul_ctx holds the scratch buffers sized for the
 * largest call (no allocation per call). Threads: one caller at a time per ctx. */
#ifndef PX_MATMUL_H
#define PX_MATMUL_H

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"
#include "types.h"

typedef struct px_matmul_ctx px_matmul_ctx;

/* Scratch for calls with n_tok <= max_tok and n_in <= max_in. */
px_matmul_ctx *px_matmul_ctx_create(px_pool *pool, int max_tok, int64_t max_in);
void px_matmul_ctx_destroy(px_matmul_ctx *ctx);

/* y (n_tok, w->ne[1]) = x (n_tok, w->ne[0]) · Wᵀ. Returns 0, PX_EINVAL if the
 * call exceeds the ctx's sizes, PX_ENOTSUP for a dtype without kernels. */
int px_matmul(px_matmul_ctx *ctx, const px_tensor *w, const float *x, int n_tok, float *y);

/* Most weights one px_matmul_multi call takes. */
#define PX_MATMUL_MULTI_MAX 8

/* y_i = x · W_iᵀ for n weights sharing one input (Q/K/V, gate/up): x is
 * quantized once and all outputs' rows are spread over one pool run. The
 * weights may differ in dtype and n_out (w[i]->ne[1]); all have n_in =
 * w[0]->ne[0]. Each y[i] is (n_tok, w[i]->ne[1]) and gets exactly what
 * px_matmul(ctx, w[i], x, n_tok, y[i]) would write. Returns as px_matmul,
 * PX_EINVAL also for n outside 1..PX_MATMUL_MULTI_MAX or mismatched n_in. */
int px_matmul_multi(px_matmul_ctx *ctx, int n, const px_tensor *const *w, const float *x, int n_tok,
                    float *const *y);

/* For the F16 KV cache, on the same kernel set as px_matmul (the attention
 * tiles are px__kernels_get()'s, kernels.h): y[i] = (f16) x[i], round to
 * nearest even; n is any length. */
void px_f32_to_f16_row(int64_t n, const float *x, px_f16 *y);

/* gate[i] = act(gate[i]) * up[i] for i < n, act = gelu_tanh when gelu, else
 * silu; spread over the ctx's pool when n is large. Each element is
 * computed the same way wherever the split falls (bitwise px_geglu /
 * px_swiglu of ops.h). */
void px_glu(px_matmul_ctx *ctx, bool gelu, float *gate, const float *up, int64_t n);

/* Name of the kernel set in use ("avx512-vnni", "avx2", "portable"). */
const char *px_matmul_kernel_name(void);
/* Forces a kernel set for tests ("portable", "avx2", "avx512-vnni"); returns
 * PX_ENOTSUP if this CPU cannot run it. Not thread-safe: tests only. */
int px_matmul_force_kernels(const char *name);

#endif
