/* matmul.c — tests of engine/matmul.c and the kernel sets behind it.
 *
 * Every kernel set this CPU runs is checked against an F32 matmul (in double)
 * on weights dequantized by engine/quant.c, for every computable dtype, odd
 * row counts and n_tok on both sides of every path switch; and the SIMD sets
 * against the portable one with the same quantized activations. Tolerance of
 * the int8 paths: activations are quantized with absmax scaling, so each x_j
 * is off by at most amax(block of j) / 254; the bound is sum_j |w_j| times
 * that, plus float rounding (FLOAT_REL * sum_j |w_j x_j|). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "matmul.h"
#include "ops.h"
#include "pool.h"
#include "px.h"
#include "quant.h"
#include "suites.h"
#include "util.h"

#define FLOAT_REL 2e-5 /* float accumulation vs double, relative to sum |w x| */

static const px_dtype dtypes[] = {PX_DTYPE_Q4_0, PX_DTYPE_Q5_0, PX_DTYPE_Q8_0,
                                  PX_DTYPE_Q4_K, PX_DTYPE_Q5_K, PX_DTYPE_Q6_K,
                                  PX_DTYPE_F32,  PX_DTYPE_F16,  PX_DTYPE_BF16};
static const char *const sets[] = {"portable", "avx2", "avx512-vnni"};

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* A weight matrix of n_out rows of n_in, plus its dequantized floats. With
 * raw_bytes the blocks are random bytes with sane scales (every bit pattern
 * of the quants and 6-bit scales); otherwise px_quantize_row of randoms. */
typedef struct wmat {
    px_tensor t;
    void *data;
    float *deq; /* (n_out, n_in) */
} wmat;

static void set_f16(void *p, float v) {
    px_f16 h = px_f32_to_f16(v);
    memcpy(p, &h, 2);
}

static void wmat_make(wmat *m, px_dtype type, int64_t n_in, int64_t n_out, bool raw_bytes,
                      uint64_t seed) {
    size_t rb = px_dtype_row_size(type, n_in);
    ck_assert_uint_gt(rb, 0);
    m->data = malloc(rb * (size_t)n_out);
    m->deq = malloc(sizeof(float) * (size_t)(n_in * n_out));
    ck_assert(m->data && m->deq);
    float *tmp = malloc(sizeof(float) * (size_t)n_in);
    rng_state = seed * 2654435761u + 77;
    const px_dtype_info *info = px_dtype_get(type);
    for (int64_t r = 0; r < n_out; r++) {
        char *row = (char *)m->data + (size_t)r * rb;
        px_test_fill_random(tmp, (size_t)n_in, seed * 1000 + (uint64_t)r);
        if (raw_bytes && info->block_elems > 1) {
            for (size_t i = 0; i < rb; i++)
                row[i] = (char)rnd();
            int bb = info->block_bytes;
            for (char *b = row; b < row + rb; b += bb) {
                float d = 0.002f + 0.002f * (float)(rnd() % 100) / 100.0f;
                if (type == PX_DTYPE_Q6_K) {
                    set_f16(b + 208, d);
                } else {
                    set_f16(b, d);
                    if (type == PX_DTYPE_Q4_K || type == PX_DTYPE_Q5_K) set_f16(b + 2, d * 0.5f);
                }
            }
        } else {
            ck_assert_int_eq(px_quantize_row(type, tmp, row, n_in), 0);
        }
        ck_assert_int_eq(px_dequantize_row(type, row, m->deq + r * n_in, n_in), 0);
    }
    free(tmp);
    m->t = (px_tensor){
        .type = type, .ne = {n_in, n_out, 1, 1}, .row_bytes = rb, .data = m->data, .name = "w"};
}

static void wmat_free(wmat *m) {
    free(m->data);
    free(m->deq);
}

/* Checks y against x · deqᵀ within the bound described at the top; blk is
 * the activation quantization block (0 for float activations). */
static void check_result(const wmat *m, const float *x, int n_tok, const float *y, int blk,
                         const char *what) {
    int64_t n_in = m->t.ne[0], n_out = m->t.ne[1];
    double worst = 0.0;
    for (int t = 0; t < n_tok; t++) {
        const float *xr = x + (size_t)t * (size_t)n_in;
        for (int64_t r = 0; r < n_out; r++) {
            const float *wr = m->deq + r * n_in;
            double ref = 0.0, mag = 0.0, qerr = 0.0;
            for (int64_t j0 = 0; j0 < n_in; j0 += blk ? blk : n_in) {
                int64_t j1 = blk ? j0 + blk : n_in;
                double amax = 0.0, sw = 0.0;
                for (int64_t j = j0; j < j1; j++) {
                    ref += (double)wr[j] * xr[j];
                    mag += fabs((double)wr[j] * xr[j]);
                    amax = fmax(amax, fabs(xr[j]));
                    sw += fabs(wr[j]);
                }
                if (blk) qerr += sw * amax / 254.0;
            }
            double tol = 1.01 * qerr + FLOAT_REL * mag + 1e-6;
            double err = fabs(y[(size_t)t * (size_t)n_out + (size_t)r] - ref);
            if (err > tol)
                ck_abort_msg("%s: t=%d r=%ld y=%g ref=%g err=%g tol=%g", what, t, (long)r,
                             (double)y[(size_t)t * (size_t)n_out + (size_t)r], ref, err, tol);
            worst = fmax(worst, err / tol);
        }
    }
    (void)worst;
}

static int act_block(px_dtype type, px_matmul_path path) {
    int act = px__act_type(type);
    if (act == PX_DTYPE_F32 || path == PX_MATMUL_BLAS) return 0;
    return act == PX_DTYPE_Q8_K ? 256 : 32; /* every int8 path sees the row formats */
}

enum { MAX_TOK = 513, N_IN = 512, N_OUT = 37 };

/* Runs every dtype through one kernel set for the given n_tok list and
 * path (for AUTO the loosest bound of the int8 paths is used). */
static void run_set(const char *set, px_matmul_path path, const int *toks, int n_toks,
                    bool raw_bytes) {
    if (px_matmul_force_kernels(set) != 0) return; /* this CPU cannot run it */
    px_pool *pool = px_pool_create(2);
    ck_assert_ptr_nonnull(pool);
    px_matmul_ctx *ctx = px_matmul_ctx_create(pool, MAX_TOK, N_IN);
    ck_assert_ptr_nonnull(ctx);
    float *x = malloc(sizeof(float) * MAX_TOK * N_IN);
    float *y = malloc(sizeof(float) * MAX_TOK * N_OUT);
    px_test_fill_random(x, (size_t)MAX_TOK * N_IN, 5);
    px__matmul_force_path(path);
    for (size_t d = 0; d < PX_ARRAY_LEN(dtypes); d++) {
        wmat m;
        wmat_make(&m, dtypes[d], N_IN, N_OUT, raw_bytes, 11 + d);
        for (int k = 0; k < n_toks; k++) {
            int n_tok = toks[k];
            for (size_t i = 0; i < (size_t)n_tok * N_OUT; i++)
                y[i] = NAN;
            ck_assert_int_eq(px_matmul(ctx, &m.t, x, n_tok, y), 0);
            char what[96];
            snprintf(what, sizeof what, "%s %s path %d n_tok %d%s", set,
                     px_dtype_get(dtypes[d])->name, (int)path, n_tok, raw_bytes ? " raw" : "");
            int blk = act_block(dtypes[d], path == PX_MATMUL_AUTO ? PX_MATMUL_ROWS : path);
            check_result(&m, x, n_tok, y, blk, what);
        }
        wmat_free(&m);
    }
    px__matmul_force_path(PX_MATMUL_AUTO);
    free(x);
    free(y);
    px_matmul_ctx_destroy(ctx);
    px_pool_destroy(pool);
    px_matmul_force_kernels("portable");
}

static const int all_toks[] = {1, 3, 4, 5, 8, 17, 64, 100, 513};
static const int few_toks[] = {1, 3, 17};

START_TEST(test_auto_vs_f32) {
    /* _i indexes the kernel sets */
    run_set(sets[_i], PX_MATMUL_AUTO, all_toks, PX_ARRAY_LEN(all_toks), false);
    px_matmul_force_kernels("portable");
}
END_TEST

START_TEST(test_paths_vs_f32) {
    static const int toks[] = {3, 6, 13, 17, 100};
    for (int p = PX_MATMUL_ROWS; p <= PX_MATMUL_BLAS; p++)
        run_set(sets[_i], (px_matmul_path)p, toks, PX_ARRAY_LEN(toks), false);
}
END_TEST

START_TEST(test_raw_blocks_vs_f32) {
    /* random bytes exercise every quant and scale bit pattern */
    run_set(sets[_i], PX_MATMUL_ROWS, few_toks, PX_ARRAY_LEN(few_toks), true);
    run_set(sets[_i], PX_MATMUL_GEMM16, few_toks, PX_ARRAY_LEN(few_toks), true);
}
END_TEST

/* The SIMD sets quantize activations to the same bytes as the portable one
 * and, for quantized weights, their dots give the same bits (the canonical
 * order of kernels.h), for every nrc and for rows of an odd number of
 * 32-blocks (a partial group of 8); float weights agree to rounding. */
START_TEST(test_simd_vs_portable) {
    const px_kernels *ref = &px__kernels_ref;
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    const px_kernels *ks = px__kernels_get();
    enum { NMAX = 800, NT = PX_NRC_MAX };
    static const int widths[] = {768, 800}; /* 24 and 25 blocks of 32 */
    static float x[NT * NMAX];
    static px_block_q8a a_ref[NT * NMAX / 32], a_simd[NT * NMAX / 32];
    static px_block_q8_K k_ref[NT * NMAX / 256], k_simd[NT * NMAX / 256];
    static px_block_q8t t_a[NMAX / 32], t_k[NMAX / 32];
    for (size_t wi = 0; wi < PX_ARRAY_LEN(widths); wi++) {
        const int N = widths[wi];
        px_test_fill_random(x, (size_t)NT * N, 9 + wi);
        x[5] = 0.0f; /* a zero block must not divide by zero */
        for (int j = 32; j < 64; j++)
            x[j] = 0.0f;
        size_t na = (size_t)NT * N / 32;
        ref->quantize_q8a(x, a_ref, NT * N);
        ks->quantize_q8a(x, a_simd, NT * N);
        ck_assert_mem_eq(a_ref, a_simd, na * sizeof(px_block_q8a));
        ck_assert_float_eq(a_ref[1].d, 0.0f);
        /* the gemm16 layout holds exactly the row formats' values */
        px__q8t_from_q8a(a_ref, (size_t)N / 32, NT - 1, N / 32, t_a);
        for (int t = 0; t < 16; t++) {
            bool in = t < NT - 1; /* tokens past n_tok are zero */
            const px_block_q8a *ab = &a_ref[(size_t)(in ? t : 0) * (size_t)N / 32 + 3];
            int sa = 0;
            for (int j = 0; j < 16; j++)
                sa += ab->qs[j];
            ck_assert_int_eq(t_a[3].sa[t], in ? sa : 0);
            ck_assert_int_eq(t_a[3].sb[t], in ? ab->sum - sa : 0);
            ck_assert(t_a[3].d[t] == (in ? ab->d : 0.0f));
            for (int j = 0; j < 32; j++)
                ck_assert_int_eq(t_a[3].qs[j / 4][t][j % 4], in ? ab->qs[j] : 0);
        }
        if (N % 256 == 0) {
            ref->quantize_q8k(x, k_ref, NT * N);
            ks->quantize_q8k(x, k_simd, NT * N);
            ck_assert_mem_eq(k_ref, k_simd, (size_t)NT * N / 256 * sizeof(px_block_q8_K));
            px__q8t_from_q8k(k_ref, (size_t)N / 256, NT - 1, N / 256, t_k);
            const px_block_q8_K *kb = &k_ref[(size_t)N / 256 + 1]; /* token 1, superblock 1 */
            const px_block_q8t *tb = &t_k[8 + 5];                  /* its chunk 5 */
            ck_assert_int_eq(tb->sa[1], kb->bsums[10]);
            ck_assert_int_eq(tb->sb[1], kb->bsums[11]);
            ck_assert(tb->d[1] == kb->d);
            ck_assert_int_eq(tb->qs[6][1][2], kb->qs[32 * 5 + 26]);
        }
        for (size_t d = 0; d < PX_ARRAY_LEN(dtypes); d++) {
            px_dtype ty = dtypes[d];
            if (px_dtype_row_size(ty, N) == 0) continue;
            wmat m;
            wmat_make(&m, ty, N, 5, true, 3 + d);
            int act = px__act_type(ty);
            const void *xa = act == PX_DTYPE_F32    ? (const void *)x
                             : act == PX_DTYPE_Q8_K ? (const void *)k_ref
                                                    : (const void *)a_ref;
            size_t stride = act == PX_DTYPE_F32    ? (size_t)N * sizeof(float)
                            : act == PX_DTYPE_Q8_K ? (size_t)N / 256 * sizeof(px_block_q8_K)
                                                   : (size_t)N / 32 * sizeof(px_block_q8a);
            float deq_ref[NMAX], deq_simd[NMAX];
            for (int r = 0; r < 5; r++) {
                const char *row = (const char *)m.data + (size_t)r * m.t.row_bytes;
                for (int nrc = 1; nrc <= NT; nrc++) {
                    float o_ref[PX_NRC_MAX], o_simd[PX_NRC_MAX];
                    ref->vec_dot[ty](N, row, xa, stride, nrc, o_ref);
                    ks->vec_dot[ty](N, row, xa, stride, nrc, o_simd);
                    if (act != PX_DTYPE_F32)
                        ck_assert_msg(memcmp(o_ref, o_simd, sizeof(float) * (size_t)nrc) == 0,
                                      "%s %s n %d row %d nrc %d: not bitwise the portable dot",
                                      sets[_i], px_dtype_get(ty)->name, N, r, nrc);
                    for (int t = 0; t < nrc; t++) {
                        double mag = 0.0;
                        for (int j = 0; j < N; j++)
                            mag += fabs(m.deq[r * N + j] * x[t * N + j]);
                        ck_assert_msg(fabs(o_ref[t] - o_simd[t]) <= FLOAT_REL * mag + 1e-6,
                                      "%s %s n %d row %d nrc %d t %d: %g vs %g", sets[_i],
                                      px_dtype_get(ty)->name, N, r, nrc, t, (double)o_ref[t],
                                      (double)o_simd[t]);
                    }
                }
                ref->to_f32[ty](row, deq_ref, N);
                ks->to_f32[ty](row, deq_simd, N);
                for (int j = 0; j < N; j++) {
                    /* both equal quant.c's dequantization (up to fma rounding) */
                    ck_assert_float_eq_tol(deq_ref[j], m.deq[r * N + j],
                                           1e-6f * (1 + fabsf(m.deq[r * N + j])));
                    ck_assert_float_eq_tol(deq_simd[j], m.deq[r * N + j],
                                           1e-6f * (1 + fabsf(m.deq[r * N + j])));
                }
            }
            wmat_free(&m);
        }
    }
    px_matmul_force_kernels("portable");
}
END_TEST

/* The _0 row dots build the block scales dw_b * dx_b as one vector per
 * group of 8 (the f16 weight scales widened together): the lanes must be
 * the right blocks and the conversion the portable one's, for scales of
 * either sign, zeros of both signs, subnormals and large values, with a
 * full group and a partial one, for every nrc; and the result stays the
 * dot of the dequantized weights with the quantized activations. */
START_TEST(test_block_scales) {
    const px_kernels *ref = &px__kernels_ref;
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    const px_kernels *ks = px__kernels_get();
    enum { N = 13 * 32, NT = PX_NRC_MAX };
    static const px_f16 scales[] = {0x9a24 /* -0.003 */,
                                    0x0000,
                                    0x8000,
                                    0x0001 /* 2^-24 */,
                                    0x8005,
                                    0x7400 /* 16384 */,
                                    0x1818,
                                    0x3c00,
                                    0xc000,
                                    0x03ff /* largest subnormal */,
                                    0x2e66,
                                    0x0400,
                                    0xb800};
    static const px_dtype types[] = {PX_DTYPE_Q4_0, PX_DTYPE_Q5_0, PX_DTYPE_Q8_0};
    float x[NT * N];
    px_block_q8a a[NT * N / 32];
    px_test_fill_random(x, (size_t)NT * N, 61);
    for (int j = 64; j < 96; j++)
        x[N + j] = 0.0f; /* token 1, block 2: a zero activation block */
    ref->quantize_q8a(x, a, NT * N);
    rng_state = 99;
    for (size_t d = 0; d < PX_ARRAY_LEN(types); d++) {
        px_dtype ty = types[d];
        size_t rb = px_dtype_row_size(ty, N), bb = (size_t)px_dtype_get(ty)->block_bytes;
        for (int shift = 0; shift < 13; shift += 4) {
            char row[13 * 34];
            for (size_t i = 0; i < rb; i++)
                row[i] = (char)rnd();
            for (int b = 0; b < 13; b++)
                memcpy(row + (size_t)b * bb, &scales[(b + shift) % 13], 2);
            float deq[N];
            ck_assert_int_eq(px_dequantize_row(ty, row, deq, N), 0);
            for (int nrc = 1; nrc <= NT; nrc++) {
                float o_ref[PX_NRC_MAX], o_simd[PX_NRC_MAX];
                ref->vec_dot[ty](N, row, a, N / 32 * sizeof(px_block_q8a), nrc, o_ref);
                ks->vec_dot[ty](N, row, a, N / 32 * sizeof(px_block_q8a), nrc, o_simd);
                ck_assert_msg(memcmp(o_ref, o_simd, sizeof(float) * (size_t)nrc) == 0,
                              "%s %s shift %d nrc %d: not bitwise the portable dot", sets[_i],
                              px_dtype_get(ty)->name, shift, nrc);
                for (int t = 0; t < nrc; t++) {
                    double want = 0.0, mag = 0.0;
                    for (int j = 0; j < N; j++) {
                        const px_block_q8a *xb = &a[t * N / 32 + j / 32];
                        double v = (double)deq[j] * xb->d * xb->qs[j % 32];
                        want += v;
                        mag += fabs(v);
                    }
                    ck_assert_msg(isfinite(o_simd[t]) && fabs(o_simd[t] - want) <= 1e-5 * mag,
                                  "%s %s shift %d t %d: %g vs %g", sets[_i], px_dtype_get(ty)->name,
                                  shift, t, (double)o_simd[t], want);
                }
            }
        }
    }
    px_matmul_force_kernels("portable");
}
END_TEST

/* px_matmul_multi writes exactly what separate px_matmul calls write, for
 * weights of mixed dtypes and heights, on every path and kernel set. */
START_TEST(test_multi_vs_single) {
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    enum { NI = 512, MT = 40, NW = 5 };
    static const px_dtype mix[NW] = {PX_DTYPE_Q5_0, PX_DTYPE_Q4_K, PX_DTYPE_Q8_0, PX_DTYPE_Q6_K,
                                     PX_DTYPE_F16};
    static const int64_t outs[NW] = {37, 16, 5, 64, 9};
    static const int toks[] = {1, 2, 4, 5, 16, 17, 40};
    px_pool *pool = px_pool_create(2);
    px_matmul_ctx *ctx = px_matmul_ctx_create(pool, MT, NI);
    ck_assert_ptr_nonnull(ctx);
    wmat m[NW];
    const px_tensor *ws[NW];
    float *y1[NW], *y2[NW];
    for (int i = 0; i < NW; i++) {
        wmat_make(&m[i], mix[i], NI, outs[i], true, 70 + (uint64_t)i);
        ws[i] = &m[i].t;
        y1[i] = malloc(sizeof(float) * MT * (size_t)outs[i]);
        y2[i] = malloc(sizeof(float) * MT * (size_t)outs[i]);
    }
    float *x = malloc(sizeof(float) * MT * NI);
    px_test_fill_random(x, (size_t)MT * NI, 17);
    for (int p = PX_MATMUL_AUTO; p <= PX_MATMUL_BLAS; p++) {
        px__matmul_force_path((px_matmul_path)p);
        for (size_t k = 0; k < PX_ARRAY_LEN(toks); k++) {
            int nt = toks[k];
            for (int first = 0; first < 2; first++) { /* all five, then the last three */
                int n = first ? NW - 2 : NW;
                const px_tensor *const *wv = ws + (NW - n);
                for (int i = 0; i < NW; i++) {
                    for (size_t e = 0; e < (size_t)nt * (size_t)outs[i]; e++)
                        y1[i][e] = y2[i][e] = NAN;
                    if (i >= NW - n) ck_assert_int_eq(px_matmul(ctx, ws[i], x, nt, y1[i]), 0);
                }
                ck_assert_int_eq(px_matmul_multi(ctx, n, wv, x, nt, y2 + (NW - n)), 0);
                for (int i = NW - n; i < NW; i++) {
                    ck_assert_msg(memcmp(y1[i], y2[i], sizeof(float) * (size_t)nt * outs[i]) == 0,
                                  "%s path %d n_tok %d weight %d (%s): multi differs", sets[_i], p,
                                  nt, i, px_dtype_get(mix[i])->name);
                    /* and the results are right, not just equal */
                    check_result(
                        &m[i], x, nt, y2[i],
                        act_block(mix[i], p == PX_MATMUL_AUTO ? PX_MATMUL_ROWS : (px_matmul_path)p),
                        "multi");
                }
            }
        }
    }
    px__matmul_force_path(PX_MATMUL_AUTO);
    /* errors: count out of range, mismatched n_in, a dtype without kernels */
    ck_assert_int_eq(px_matmul_multi(ctx, 0, ws, x, 1, y2), PX_EINVAL);
    ck_assert_int_eq(px_matmul_multi(ctx, PX_MATMUL_MULTI_MAX + 1, ws, x, 1, y2), PX_EINVAL);
    wmat other;
    wmat_make(&other, PX_DTYPE_Q8_0, 256, 4, false, 5);
    const px_tensor *bad[2] = {ws[0], &other.t};
    ck_assert_int_eq(px_matmul_multi(ctx, 2, bad, x, 1, y2), PX_EINVAL);
    px_tensor q41 = m[2].t;
    q41.type = PX_DTYPE_Q4_1;
    const px_tensor *uns[2] = {ws[0], &q41};
    ck_assert_int_eq(px_matmul_multi(ctx, 2, uns, x, 1, y2), PX_ENOTSUP);
    wmat_free(&other);
    for (int i = 0; i < NW; i++) {
        wmat_free(&m[i]);
        free(y1[i]);
        free(y2[i]);
    }
    free(x);
    px_matmul_ctx_destroy(ctx);
    px_pool_destroy(pool);
    px_matmul_force_kernels("portable");
}
END_TEST

/* Matmul contexts on a 1-thread and a 2-thread pool. */
static void two_ctx(px_pool *pools[2], px_matmul_ctx *ctx[2], int max_tok, int64_t max_in) {
    for (int p = 0; p < 2; p++) {
        pools[p] = px_pool_create(p + 1);
        ck_assert_ptr_nonnull(pools[p]);
        ctx[p] = px_matmul_ctx_create(pools[p], max_tok, max_in);
        ck_assert_ptr_nonnull(ctx[p]);
    }
}

static void free_two_ctx(px_pool *pools[2], px_matmul_ctx *ctx[2]) {
    for (int p = 0; p < 2; p++) {
        px_matmul_ctx_destroy(ctx[p]);
        px_pool_destroy(pools[p]);
    }
}

/* Batch invariance (kernels.h): row t of y is bitwise what px_matmul gives
 * for row t alone, for every dtype, n_tok (across the ROWS / GEMM16 switch
 * points and partial token groups) and thread count; rows of 25 blocks of
 * 32 leave a partial group of 8. For quantized weights every kernel set
 * also gives the portable set's bits. */
START_TEST(test_batch_invariant) {
    static const int toks[] = {1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17, 31, 33, 64, 100, 513};
    enum { MT = 513, NI = 800, NO = 133, NPORT = 40 }; /* 133: chunks of 16+ rows */
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    px_pool *pools[2];
    px_matmul_ctx *ctx[2];
    two_ctx(pools, ctx, MT, NI);
    float *x = malloc(sizeof(float) * MT * NI);
    float *solo = malloc(sizeof(float) * MT * NO), *y = malloc(sizeof(float) * MT * NO);
    float *port = malloc(sizeof(float) * NPORT * NO);
    ck_assert(x && solo && y && port);
    px_test_fill_random(x, (size_t)MT * NI, 23);
    for (int j = 0; j < 64; j++)
        x[NI + j] = 0.0f; /* zero blocks: zero scales, +-0 products */
    for (size_t d = 0; d < PX_ARRAY_LEN(dtypes); d++) {
        px_dtype ty = dtypes[d];
        int n_in = px_dtype_get(ty)->block_elems == 256 ? 768 : NI;
        wmat m;
        wmat_make(&m, ty, n_in, NO, true, 50 + d);
        const char *name = px_dtype_get(ty)->name;
        for (int t = 0; t < MT; t++)
            ck_assert_int_eq(
                px_matmul(ctx[0], &m.t, x + (size_t)t * (size_t)n_in, 1, solo + (size_t)t * NO), 0);
        for (int p = 0; p < 2; p++) {
            for (size_t k = 0; k < PX_ARRAY_LEN(toks); k++) {
                int nt = toks[k];
                for (size_t e = 0; e < (size_t)nt * NO; e++)
                    y[e] = NAN;
                ck_assert_int_eq(px_matmul(ctx[p], &m.t, x, nt, y), 0);
                for (int t = 0; t < nt; t++)
                    ck_assert_msg(
                        memcmp(y + (size_t)t * NO, solo + (size_t)t * NO, sizeof(float) * NO) == 0,
                        "%s %s: row %d of n_tok %d on %d threads differs from solo", sets[_i], name,
                        t, nt, p + 1);
            }
        }
        check_result(&m, x, MT, solo, act_block(ty, PX_MATMUL_ROWS), "solo");
        if (px__act_type(ty) != PX_DTYPE_F32 && strcmp(sets[_i], "portable") != 0) {
            ck_assert_int_eq(px_matmul_force_kernels("portable"), 0);
            ck_assert_int_eq(px_matmul(ctx[1], &m.t, x, NPORT, port), 0);
            ck_assert_int_eq(px_matmul_force_kernels(sets[_i]), 0);
            ck_assert_msg(memcmp(port, solo, sizeof(float) * NPORT * NO) == 0,
                          "%s %s: differs from the portable set", sets[_i], name);
        }
        wmat_free(&m);
    }
    free(x);
    free(solo);
    free(y);
    free(port);
    free_two_ctx(pools, ctx);
    px_matmul_force_kernels("portable");
}
END_TEST

/* Q4_0 / Q5_0 / Q8_0 weights repacked into the X16 layout (kernels.h) give
 * bitwise the row layout's results, on every kernel set (those without an
 * x16 kernel run the portable one), for any n_tok and thread count; the
 * layout unpacks to the original rows; bad layouts are refused. */
START_TEST(test_x16_vs_rows) {
    /* _0 types: 57 blocks: slices of 32 + 25 (kernels_avx512.c); 25: one
     * slice; both end in a partial group of 8. K types: 14 superblocks:
     * Q4_K / Q5_K slices of 8 + 6, Q6_K 5 + 5 + 4; 5: one slice. */
    static const struct {
        px_dtype t;
        int64_t n_in;
    } cases[] = {{PX_DTYPE_Q8_0, 1824}, {PX_DTYPE_Q8_0, 800},  {PX_DTYPE_Q8_0, 256},
                 {PX_DTYPE_Q8_0, 96},   {PX_DTYPE_Q5_0, 1824}, {PX_DTYPE_Q5_0, 800},
                 {PX_DTYPE_Q5_0, 256},  {PX_DTYPE_Q5_0, 96},   {PX_DTYPE_Q4_0, 1824},
                 {PX_DTYPE_Q4_0, 800},  {PX_DTYPE_Q4_0, 256},  {PX_DTYPE_Q4_0, 96},
                 {PX_DTYPE_Q4_K, 3584}, {PX_DTYPE_Q4_K, 1280}, {PX_DTYPE_Q4_K, 256},
                 {PX_DTYPE_Q5_K, 3584}, {PX_DTYPE_Q5_K, 1280}, {PX_DTYPE_Q5_K, 256},
                 {PX_DTYPE_Q6_K, 3584}, {PX_DTYPE_Q6_K, 1280}, {PX_DTYPE_Q6_K, 256}};
    static const int toks[] = {1, 2, 3, 4, 5, 7, 8, 16, 17, 33, 100, 129};
    enum { MT = 129, NI = 3584, NO = 144 }; /* 9 groups of 16 rows */
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    px_pool *pools[2];
    px_matmul_ctx *ctx[2];
    two_ctx(pools, ctx, MT, NI);
    float *x = malloc(sizeof(float) * MT * NI);
    float *y0 = malloc(sizeof(float) * MT * NO), *y1 = malloc(sizeof(float) * MT * NO);
    ck_assert(x && y0 && y1);
    px_test_fill_random(x, (size_t)MT * NI, 29);
    for (int j = 0; j < 64; j++)
        x[NI + j] = 0.0f; /* zero blocks */
    for (size_t k = 0; k < PX_ARRAY_LEN(cases); k++) {
        int64_t n_in = cases[k].n_in;
        px_dtype ty = cases[k].t;
        const char *tn = px_dtype_get(ty)->name;
        wmat m;
        wmat_make(&m, ty, n_in, NO, true, 90 + k);
        size_t bytes = m.t.row_bytes * NO;
        void *packed = malloc(bytes), *row = malloc(m.t.row_bytes);
        ck_assert(packed && row);
        px__x16_pack(ty, m.data, m.t.row_bytes, n_in, NO, packed);
        ck_assert_msg(memcmp(packed, m.data, bytes) != 0, "packing changed nothing");
        for (int64_t r = 0; r < NO; r++) {
            px__x16_unpack_row(ty, packed, m.t.row_bytes, n_in, r, row);
            ck_assert_msg(memcmp(row, (char *)m.data + (size_t)r * m.t.row_bytes, m.t.row_bytes) ==
                              0,
                          "%s row %ld does not unpack to itself", tn, (long)r);
        }
        px_tensor xt = m.t;
        xt.layout = PX_LAYOUT_X16;
        xt.data = packed;
        for (int p = 0; p < 2; p++)
            for (size_t i = 0; i < PX_ARRAY_LEN(toks); i++) {
                int nt = toks[i];
                for (size_t e = 0; e < (size_t)nt * NO; e++)
                    y0[e] = y1[e] = NAN;
                ck_assert_int_eq(px_matmul(ctx[p], &m.t, x, nt, y0), 0);
                ck_assert_int_eq(px_matmul(ctx[p], &xt, x, nt, y1), 0);
                ck_assert_msg(memcmp(y0, y1, sizeof(float) * (size_t)nt * NO) == 0,
                              "%s %s n_in %ld n_tok %d on %d threads: repacked differs", sets[_i],
                              tn, (long)n_in, nt, p + 1);
            }
        check_result(&m, x, MT, y1, 32, "x16");
        /* every forced path still reads the layout right */
        for (int path = PX_MATMUL_ROWS; path <= PX_MATMUL_BLAS; path++) {
            px__matmul_force_path((px_matmul_path)path);
            ck_assert_int_eq(px_matmul(ctx[1], &xt, x, 20, y1), 0);
            ck_assert_int_eq(px_matmul(ctx[1], &m.t, x, 20, y0), 0);
            if (path != PX_MATMUL_BLAS)
                ck_assert_msg(memcmp(y0, y1, sizeof(float) * 20 * NO) == 0, "path %d", path);
            else
                check_result(&m, x, 20, y1, 32, "x16 forced blas");
        }
        px__matmul_force_path(PX_MATMUL_AUTO);
        /* a group of 16 rows needs 16 rows; F16 has no such layout */
        xt.ne[1] = NO - 8;
        ck_assert_int_eq(px_matmul(ctx[1], &xt, x, 1, y1), PX_EINVAL);
        xt.ne[1] = NO;
        xt.type = PX_DTYPE_F16;
        xt.row_bytes = px_dtype_row_size(PX_DTYPE_F16, n_in);
        ck_assert_int_eq(px_matmul(ctx[1], &xt, x, 1, y1), PX_EINVAL);
        xt = m.t;
        xt.layout = (px_layout)7;
        ck_assert_int_eq(px_matmul(ctx[1], &xt, x, 1, y1), PX_EINVAL);
        free(packed);
        free(row);
        wmat_free(&m);
    }
    free(x);
    free(y0);
    free(y1);
    free_two_ctx(pools, ctx);
    px_matmul_force_kernels("portable");
}
END_TEST

/* The attention tiles of every set give the portable set's bits (one fma
 * chain per score and per output element), whatever nq / nv / nt, head
 * dims that are not a multiple of 8, and key vectors that start anywhere
 * in a transposed block; and they are near a double reference. */
static void attn_tiles_check(const px_kernels *ks, const px_kernels *ref, int hd, int bs) {
    enum { NB = 5, NQ = 6 };
    const int n_keys = NB * bs;
    px_f16 *kt = calloc((size_t)(NB * bs * hd + 8), sizeof(px_f16)); /* one head, NB blocks */
    px_f16 *vr = calloc((size_t)(n_keys * hd), sizeof(px_f16));
    float *q = malloc(sizeof(float) * NQ * (size_t)hd), *tmp = malloc(sizeof(float) * (size_t)hd);
    px_test_fill_random(q, (size_t)(NQ * hd), 7 + hd);
    for (int t = 0; t < n_keys; t++) {
        px_test_fill_random(tmp, (size_t)hd, 100 + t);
        for (int d = 0; d < hd; d++) {
            kt[(t / bs) * bs * hd + d * bs + t % bs] = px_f32_to_f16(tmp[d]);
            vr[t * hd + d] = px_f32_to_f16(tmp[d] * 0.5f - 0.1f);
        }
    }
    for (int nq = 1; nq <= NQ; nq++) {
        /* key vectors from every start lane of block 1 and of block 3 */
        const px_f16 *kv[PX_ATTN_TILE];
        int starts[PX_ATTN_TILE];
        int nv = PX_MAX(1, PX_ATTN_TILE / nq) - (nq == 2); /* 2: a partial tile */
        for (int v = 0; v < nv; v++) {
            int blk = v % 2 ? 3 : 1, j = (v * 3) % bs;
            starts[v] = blk * bs + j;
            kv[v] = kt + (size_t)blk * bs * hd + j;
        }
        float s0[NQ * 8 * PX_ATTN_TILE], s1[NQ * 8 * PX_ATTN_TILE];
        ref->attn_scores(hd, q, (size_t)hd, nq, kv, nv, (size_t)bs, s0, 8 * PX_ATTN_TILE);
        ks->attn_scores(hd, q, (size_t)hd, nq, kv, nv, (size_t)bs, s1, 8 * PX_ATTN_TILE);
        for (int i = 0; i < nq; i++)
            for (int v = 0; v < nv; v++)
                for (int l = 0; l < 8 && (starts[v] % bs) + l < bs; l++) {
                    float a = s0[i * 8 * PX_ATTN_TILE + 8 * v + l],
                          b = s1[i * 8 * PX_ATTN_TILE + 8 * v + l];
                    ck_assert_msg(memcmp(&a, &b, 4) == 0,
                                  "%s scores hd %d nq %d v %d l %d: %a vs %a", ks->name, hd, nq, v,
                                  l, (double)a, (double)b);
                    double r = 0, mag = 0;
                    int t = starts[v] + l;
                    for (int d = 0; d < hd; d++) {
                        double x = (double)q[i * hd + d] *
                                   px_f16_to_f32(kt[(t / bs) * bs * hd + d * bs + t % bs]);
                        r += x;
                        mag += fabs(x);
                    }
                    ck_assert_msg(fabs(a - r) <= 1e-5 * mag + 1e-7, "score %g vs %g", (double)a, r);
                }
        if (nq > 4) continue;
        /* outputs over every key, continuing from non-zero values */
        const px_f16 *rows[64];
        float w[4 * 64], o0[4 * 260], o1[4 * 260];
        int nt = PX_MIN(64, n_keys);
        for (int t = 0; t < nt; t++)
            rows[t] = vr + (size_t)(n_keys - 1 - t) * hd; /* any order */
        px_test_fill_random(w, 4 * 64, 55 + nq);
        px_test_fill_random(o0, 4 * 260, 66 + nq);
        memcpy(o1, o0, sizeof o0);
        float init[4 * 260];
        memcpy(init, o0, sizeof o0);
        ref->attn_accum(hd, w, 64, nq, rows, nt, o0, 260);
        ks->attn_accum(hd, w, 64, nq, rows, nt, o1, 260);
        for (int i = 0; i < nq; i++)
            for (int d = 0; d < hd; d++) {
                ck_assert_msg(memcmp(&o0[i * 260 + d], &o1[i * 260 + d], 4) == 0,
                              "%s accum hd %d nq %d d %d: %a vs %a", ks->name, hd, nq, d,
                              (double)o0[i * 260 + d], (double)o1[i * 260 + d]);
                double r = init[i * 260 + d], mag = fabs(r);
                for (int t = 0; t < nt; t++) {
                    double x = (double)w[i * 64 + t] * px_f16_to_f32(rows[t][d]);
                    r += x;
                    mag += fabs(x);
                }
                ck_assert_msg(fabs(o0[i * 260 + d] - r) <= 1e-5 * mag + 1e-7, "out %g vs %g",
                              (double)o0[i * 260 + d], r);
            }
    }
    free(kt);
    free(vr);
    free(q);
    free(tmp);
}

START_TEST(test_attention_helpers) {
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    const px_kernels *ks = px__kernels_get();
    static const int hds[] = {4, 8, 13, 64, 256}, bss[] = {1, 3, 8, 16, 20};
    for (size_t h = 0; h < PX_ARRAY_LEN(hds); h++)
        for (size_t k = 0; k < PX_ARRAY_LEN(bss); k++)
            attn_tiles_check(ks, &px__kernels_ref, hds[h], bss[k]);
    static const int lens[] = {1, 7, 33, 257};
    for (size_t k = 0; k < PX_ARRAY_LEN(lens); k++) {
        int n = lens[k];
        float a[257];
        px_f16 h[257];
        px_test_fill_random(a, (size_t)n, 21 + k);
        px_f32_to_f16_row(n, a, h);
        for (int i = 0; i < n; i++)
            ck_assert_uint_eq(h[i], px_f32_to_f16(a[i])); /* round to nearest even */
        /* exp_shift is px_expf bit for bit, over the clamps too */
        float e[257];
        for (int i = 0; i < n; i++)
            e[i] = a[i] * 60.0f;
        ks->exp_shift(e, n, 25.0f);
        for (int i = 0; i < n; i++) {
            float want = px_expf(a[i] * 60.0f - 25.0f);
            ck_assert_msg(memcmp(&e[i], &want, 4) == 0, "%s exp(%g)", ks->name,
                          (double)(a[i] * 60.0f - 25.0f));
        }
    }
    /* rounding corner cases: ties, subnormals, overflow, infinities */
    static const float special[] = {1.0009765625f + 0.00048828125f, /* tie, rounds to even */
                                    1.0f + 3 * 0.00048828125f,      /* tie, rounds up */
                                    65504.0f,
                                    65519.0f,
                                    65520.0f,
                                    1e9f,
                                    -1e9f,
                                    6.1e-5f,
                                    5.96e-8f,
                                    2.98e-8f,
                                    3.0e-8f,
                                    1e-10f,
                                    -0.0f,
                                    INFINITY,
                                    -INFINITY,
                                    0.1f,
                                    -3.14159f};
    enum { NS = PX_ARRAY_LEN(special) };
    px_f16 hs[NS];
    px_f32_to_f16_row(NS, special, hs);
    for (int i = 0; i < NS; i++) {
        ck_assert_msg(hs[i] == px_f32_to_f16(special[i]), "%s f16(%g) = %04x, want %04x", sets[_i],
                      (double)special[i], hs[i], px_f32_to_f16(special[i]));
        ck_assert_uint_eq(px__f32_to_f16(special[i]), px_f32_to_f16(special[i]));
        ck_assert(px__f16_to_f32(hs[i]) == px_f16_to_f32(hs[i]));
    }
    px_matmul_force_kernels("portable");
}
END_TEST

/* px_glu on every set, alone and spread over a 2-thread pool, gives
 * px_geglu / px_swiglu bit for bit (batch invariance of the MLP), and both
 * are close to the exact functions. */
START_TEST(test_glu) {
    if (px_matmul_force_kernels(sets[_i]) != 0) return;
    px_pool *pool = px_pool_create(2);
    px_matmul_ctx *ctx = px_matmul_ctx_create(pool, 1, 32);
    ck_assert_ptr_nonnull(ctx);
    static const int64_t lens[] = {1, 7, 8, 37, 6912, 40000 + 3};
    static const float special[] = {0.0f,   -0.0f,  1e-30f,   -1e-30f,   30.0f,
                                    -30.0f, 88.0f,  -88.0f,   200.0f,    -200.0f,
                                    1e30f,  -1e30f, INFINITY, -INFINITY, NAN};
    for (size_t k = 0; k < PX_ARRAY_LEN(lens); k++) {
        const int64_t n = lens[k];
        float *g = malloc(sizeof(float) * (size_t)n), *u = malloc(sizeof(float) * (size_t)n);
        float *got = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
        ck_assert(g && u && got && want);
        px_test_fill_random(g, (size_t)n, 51 + k);
        px_test_fill_random(u, (size_t)n, 61 + k);
        for (int64_t i = 0; i < n; i++)
            g[i] *= 12.0f; /* both tails of the activations */
        for (size_t i = 0; i < PX_ARRAY_LEN(special) && (int64_t)i < n; i++)
            g[n - 1 - (int64_t)i] = special[i]; /* in the vector body and the tail */
        for (int gelu = 0; gelu < 2; gelu++) {
            memcpy(got, g, sizeof(float) * (size_t)n);
            memcpy(want, g, sizeof(float) * (size_t)n);
            px_glu(ctx, gelu, got, u, n);
            (gelu ? px_geglu : px_swiglu)(want, u, n);
            ck_assert_msg(memcmp(got, want, sizeof(float) * (size_t)n) == 0,
                          "%s %s n=%lld differs from ops.c", sets[_i], gelu ? "geglu" : "swiglu",
                          (long long)n);
            for (int64_t i = 0; i < n; i++) {
                double x = g[i], a;
                if (!isfinite(x) || fabs(x) > 80.0) continue;
                a = gelu ? 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
                         : x / (1.0 + exp(-x));
                double e = a * u[i];
                ck_assert_msg(fabs(got[i] - e) <= 1e-5 * fabs(e) + 1e-6, "%s x=%g: %g vs %g",
                              sets[_i], x, (double)got[i], e);
            }
        }
        free(g), free(u), free(got), free(want);
    }
    px_matmul_ctx_destroy(ctx);
    px_pool_destroy(pool);
    px_matmul_force_kernels("portable");
}
END_TEST

START_TEST(test_errors) {
    px_pool *pool = px_pool_create(1);
    px_matmul_ctx *ctx = px_matmul_ctx_create(pool, 4, 64);
    ck_assert_ptr_nonnull(ctx);
    float x[5 * 128] = {0}, y[5 * 8];
    wmat m;
    wmat_make(&m, PX_DTYPE_Q8_0, 64, 8, false, 1);
    ck_assert_int_eq(px_matmul(ctx, &m.t, x, 5, y), PX_EINVAL); /* n_tok > max_tok */
    ck_assert_int_eq(px_matmul(ctx, &m.t, x, 0, y), PX_EINVAL);
    ck_assert_int_eq(px_matmul(ctx, &m.t, x, 4, y), 0);
    px_tensor big = m.t;
    big.ne[0] = 128; /* n_in > max_in */
    big.row_bytes = px_dtype_row_size(PX_DTYPE_Q8_0, 128);
    ck_assert_int_eq(px_matmul(ctx, &big, x, 1, y), PX_EINVAL);
    px_tensor q41 = m.t;
    q41.type = PX_DTYPE_Q4_1;
    ck_assert_int_eq(px_matmul(ctx, &q41, x, 1, y), PX_ENOTSUP);
    ck_assert_int_eq(px_matmul_force_kernels("no-such-set"), PX_ENOTSUP);
    ck_assert_int_eq(px_matmul_force_kernels("portable"), 0);
    ck_assert_str_eq(px_matmul_kernel_name(), "portable");
    wmat_free(&m);
    px_matmul_ctx_destroy(ctx);
    px_pool_destroy(pool);
}
END_TEST

Suite *px_suite_matmul(void) {
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("matmul");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_auto_vs_f32, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_paths_vs_f32, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_raw_blocks_vs_f32, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_simd_vs_portable, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_block_scales, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_multi_vs_single, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_batch_invariant, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_x16_vs_rows, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_attention_helpers, 0, PX_ARRAY_LEN(sets));
    tcase_add_loop_test(tc, test_glu, 0, PX_ARRAY_LEN(sets));
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}
