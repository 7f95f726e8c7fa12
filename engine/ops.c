/* ops.c — RMSNorm, RoPE, activations and softmax for the forward pass.
 * Inner loops are branch-free and call no libm function (px_expf is a
 * polynomial), so the compiler can vectorise them. */
#include "ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

float px_expf(float x) {
    /* exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2]. */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    if (x != x) return x; /* NaN: (int32_t)n below would be undefined */
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

void px_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        /* eight partial sums: one chain of dependent adds was most of the
         * time of a decode step's norms */
        double part[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++)
                part[k] += (double)xr[i + k] * xr[i + k];
        for (; i < n; i++)
            part[0] += (double)xr[i] * xr[i];
        double ss = ((part[0] + part[1]) + (part[2] + part[3])) +
                    ((part[4] + part[5]) + (part[6] + part[7]));
        float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        for (i = 0; i < n; i++)
            yr[i] = xr[i] * scale * w[i];
    }
}

void px_rope_table(float *cs, int head_dim, const float *inv_freq, int32_t pos) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* The angle in double: pos * freq reaches 1e5 rad at long contexts. */
        double a = (double)pos * (double)inv_freq[i];
        cs[i] = (float)cos(a);
        cs[half + i] = (float)sin(a);
    }
}

void px_rope(float *x, int n_heads, int head_dim, const float *cs, int neox) {
    int half = head_dim / 2;
    const float *c = cs, *s = cs + half;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        if (neox) {
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = a * s[i] + b * c[i];
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c[i] - b * s[i];
                v[2 * i + 1] = a * s[i] + b * c[i];
            }
        }
    }
}

void px_geglu(float *gate, const float *up, int64_t n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        float y = k * (x + 0.044715f * x * x * x);
        /* tanh(y) = 1 - 2 / (exp(2y) + 1), saturates cleanly at both ends. */
        float t = 1.0f - 2.0f / (px_expf(2.0f * y) + 1.0f);
        gate[i] = 0.5f * x * (1.0f + t) * up[i];
    }
}

void px_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = gate[i];
        gate[i] = x / (1.0f + px_expf(-x)) * up[i];
    }
}

void px_softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = px_expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}
