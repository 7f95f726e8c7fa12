/* ops.h — the element-wise and row operations of the forward pass:
 * RMSNorm, RoPE, activations, softmax. Portable C written so the compiler
 * vectorises the inner loops (branch-free, no libm calls in them).
 * Owns: nothing. Any thread. */
#ifndef PX_OPS_H
#define PX_OPS_H

#include <stdint.h>

/* y = x / rms(x) * w for each of n_rows rows of n; y may alias x. */
void px_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps);
/* Rotary embedding of n_heads heads of head_dim in place, with cos/sin
 * tables cs (head_dim/2 cos then head_dim/2 sin). neox: rotate halves
 * (pairs i, i+d/2); otherwise adjacent pairs (2i, 2i+1). */
void px_rope(float *x, int n_heads, int head_dim, const float *cs, int neox);
/* Fills cs (head_dim/2 cos then head_dim/2 sin) for position pos. */
void px_rope_table(float *cs, int head_dim, const float *inv_freq, int32_t pos);
/* gate[i] = gelu_tanh(gate[i]) * up[i] */
void px_geglu(float *gate, const float *up, int64_t n);
/* gate[i] = silu(gate[i]) * up[i] */
void px_swiglu(float *gate, const float *up, int64_t n);
/* exp for x <= 0 region and beyond: |rel err| < 2e-7 over [-87, 88]. */
float px_expf(float x);
/* In-place softmax of x[0..n); returns nothing, x sums to 1. */
void px_softmax(float *x, int64_t n);

#endif
