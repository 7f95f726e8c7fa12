/* matmul.c — y = x · Wᵀ on the pool: picks a path per weight by n_tok and
 * dtype and spreads the output rows of one or more weights (px_matmul_multi)
 * over the workers.
 *
 * Batch invariance: every path computes each output with the canonical
 * float operations of kernels.h, so row t of y is bitwise what a call with
 * that row alone gives, whatever n_tok, the path or the thread count (the
 * scheduler's batches must not change a user's tokens). That rules out
 * sgemm in AUTO (its blocking and rounding change with n_tok) and the old
 * gemm4 kernel (per-lane float partials); BLAS stays as a forced path for
 * pollux-kbench comparisons.
 *
 * Paths (kernels.h): ROWS quantizes x once and dots each weight row with up
 * to PX_NRC_MAX activation rows while the row is in L1; GEMM16 (AVX-512
 * VNNI) puts 16 tokens in a zmm and decodes each weight once per call; X16
 * takes the weights the model loader repacked into 16-row groups (Q4_0 /
 * Q5_0 / Q8_0 with AVX-512), at every n_tok: 16 rows in a zmm, each group
 * one sequential stream. The ROWS/GEMM16 switch points below are for
 * weights left in the row layout (K types, and every type when repacking
 * is off).
 * Workers take chunks of rows from one atomic counter over all the call's
 * weights, so a worker slowed by another process does not hold up the job.
 *
 * Switch points, measured with pollux-kbench -t 1 -x before the invariance
 * rework (CPU time of one thread; us per call, 6912x1152 unless noted):
 *   AVX-512 VNNI   rows / gemm16
 *     Q8_0  @6 1218/1185  @8 1918/1183
 *     Q4_K  @8 1066/1410  @12 1485/1439;  Q6_K @8 1004/1559 @12 1560/1410
 *   so _0 types: gemm16 from 8; K types (whose row dots are cheap per
 *   token): rows up to 11, gemm16 from 12. Float weights and the AVX2 and
 *   portable sets take ROWS at every n_tok (sgemm was up to 2x faster for
 *   prefill there, but not invariant).
 */
#include "matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels.h"
#include "px.h"

enum {
    BLAS_TILE_ROWS = 64,      /* rows dequantized per sgemm call */
    ROW_CHUNK_BYTES = 65536,  /* weight bytes per chunk on the ROWS path */
    G16_CHUNK_BYTES = 262144, /* ... on the GEMM16 path (decoded once per call) */
    /* ... on the X16 path: each chunk is one sequential stream, and at one
     * token 64 KB chunks (each worker's stream jumping every 64 KB) read
     * 29-33 GB/s where 1-4 MB chunks read 43-47 (pollux-kbench -t 2 -x
     * Q8_0:1152:262144:1:x16, interleaved runs); the 4-chunks-per-worker
     * floor of chunk_rows_for keeps small weights balanced */
    X16_CHUNK_BYTES = 1 << 20,
};

/* n_tok from which GEMM16 takes over from ROWS, per weight dtype, when the
 * kernel set has it. */
static int gemm16_from(px_dtype t) {
    switch (t) {
    case PX_DTYPE_Q4_0:
    case PX_DTYPE_Q5_0:
    case PX_DTYPE_Q8_0: return 8;
    case PX_DTYPE_Q4_K:
    case PX_DTYPE_Q5_K:
    case PX_DTYPE_Q6_K: return 12;
    default: return 1 << 30; /* float weights: no int8 path */
    }
}

/* One weight of a (multi) call: its rows are cut into n_chunks chunks of
 * chunk_rows, numbered from chunk0 in the call's shared chunk counter. */
typedef struct mm_job {
    const px_tensor *w;
    float *y; /* (n_tok, n_out) */
    int64_t n_out;
    px_matmul_path path;
    int64_t chunk_rows, chunk0, n_chunks;
} mm_job;

struct px_matmul_ctx {
    px_pool *pool;
    int nth;
    int max_tok;
    int64_t max_in;
    /* quantized activations, one buffer per format (a call may need all) */
    px_block_q8a *act_a;  /* (max_tok, max_in / 32) */
    px_block_q8_K *act_k; /* (max_tok, max_in / 256) */
    px_block_q8t *act_t;  /* (max_tok / 16 groups, max_in / 32), from act_a */
    px_block_q8t *act_tk; /* the same from act_k, for the K types */
    float *tiles;         /* nth tiles of (BLAS_TILE_ROWS, max_in) floats */
    /* The current call (written by the caller before px_pool_run). */
    const px_kernels *ks;
    const float *x; /* (n_tok, n_in) */
    int n_tok;
    int64_t n_in;
    bool need_a, need_k, need_t, need_tk; /* activation formats this call uses */
    mm_job jobs[PX_MATMUL_MULTI_MAX];
    int n_jobs;
    int64_t n_chunks; /* over all jobs */
    atomic_llong next_chunk;
    /* Few tokens in the row formats only: the workers quantize them at the
     * start of the matmul job, a row at a time, instead of the caller
     * alone while the others wait. */
    bool quant_in_job;
    atomic_int quant_next, quant_done;
};

/* ---- kernel set selection ------------------------------------------------ */

static const px_kernels *kernels;
static px_matmul_path forced_path = PX_MATMUL_AUTO;
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void kernels_init(void) {
    const px_cpu_features *f = px_cpu_get();
    kernels = &px__kernels_ref;
#if defined(__x86_64__)
    if (f->avx512vnni)
        kernels = &px__kernels_avx512;
    else if (f->avx2)
        kernels = &px__kernels_avx2;
#else
    (void)f;
#endif
    /* Workers call sgemm on their own slices: OpenBLAS must not fork too. */
    openblas_set_num_threads(1);
}

const px_kernels *px__kernels_get(void) {
    pthread_once(&kernels_once, kernels_init);
    return kernels;
}

const char *px_matmul_kernel_name(void) {
    return px__kernels_get()->name;
}

int px_matmul_force_kernels(const char *name) {
    px__kernels_get();
    const px_cpu_features *f = px_cpu_get();
    if (strcmp(name, "portable") == 0) {
        kernels = &px__kernels_ref;
        return 0;
    }
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0 && f->avx2) {
        kernels = &px__kernels_avx2;
        return 0;
    }
    if (strcmp(name, "avx512-vnni") == 0 && f->avx512vnni) {
        kernels = &px__kernels_avx512;
        return 0;
    }
#else
    (void)f;
#endif
    return PX_ENOTSUP;
}

void px__matmul_force_path(px_matmul_path path) {
    forced_path = path;
}

/* ---- context ------------------------------------------------------------- */

static void *alloc64(size_t bytes) {
    return aligned_alloc(64, (PX_MAX(bytes, 1) + 63) / 64 * 64);
}

px_matmul_ctx *px_matmul_ctx_create(px_pool *pool, int max_tok, int64_t max_in) {
    if (!pool || max_tok <= 0 || max_in <= 0) return NULL;
    px__kernels_get();
    px_matmul_ctx *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->pool = pool;
    c->nth = px_pool_size(pool);
    c->max_tok = max_tok;
    c->max_in = max_in;
    size_t nt = (size_t)max_tok, nb32 = (size_t)(max_in / 32);
    /* 64-byte aligned: gemm16 loads whole q8t rows as zmm. */
    c->act_a = alloc64(nt * nb32 * sizeof(px_block_q8a));
    c->act_k = alloc64(nt * (size_t)(max_in / 256) * sizeof(px_block_q8_K));
    c->act_t = alloc64((nt + 15) / 16 * nb32 * sizeof(px_block_q8t));
    c->act_tk = alloc64((nt + 15) / 16 * nb32 * sizeof(px_block_q8t));
    c->tiles = alloc64((size_t)c->nth * BLAS_TILE_ROWS * (size_t)max_in * sizeof(float));
    if (!c->act_a || !c->act_k || !c->act_t || !c->act_tk || !c->tiles) {
        px_matmul_ctx_destroy(c);
        return NULL;
    }
    atomic_init(&c->next_chunk, 0);
    return c;
}

void px_matmul_ctx_destroy(px_matmul_ctx *ctx) {
    if (!ctx) return;
    free(ctx->act_a);
    free(ctx->act_k);
    free(ctx->act_t);
    free(ctx->act_tk);
    free(ctx->tiles);
    free(ctx);
}

/* ---- jobs ---------------------------------------------------------------- */

static const char *wrow(const px_tensor *w, int64_t r) {
    return (const char *)w->data + (size_t)r * w->row_bytes;
}

/* Rows [r0, r1) of job j, PX_NRC_MAX tokens per pass over each row. */
static void chunk_rows(const px_matmul_ctx *c, const mm_job *j, int64_t r0, int64_t r1) {
    px_vec_dot_fn dot = c->ks->vec_dot[j->w->type];
    int act = px__act_type(j->w->type);
    const void *xa;
    size_t stride;
    if (act == PX_DTYPE_F32) {
        xa = c->x;
        stride = (size_t)c->n_in * sizeof(float);
    } else if (act == PX_DTYPE_Q8_K) {
        xa = c->act_k;
        stride = (size_t)(c->n_in / 256) * sizeof(px_block_q8_K);
    } else {
        xa = c->act_a;
        stride = (size_t)(c->n_in / 32) * sizeof(px_block_q8a);
    }
    float out[PX_NRC_MAX];
    for (int t = 0; t < c->n_tok; t += PX_NRC_MAX) {
        int nrc = PX_MIN(PX_NRC_MAX, c->n_tok - t);
        const void *xt = (const char *)xa + (size_t)t * stride;
        for (int64_t r = r0; r < r1; r++) {
            dot(c->n_in, wrow(j->w, r), xt, stride, nrc, out);
            for (int i = 0; i < nrc; i++)
                j->y[(size_t)(t + i) * (size_t)j->n_out + (size_t)r] = out[i];
        }
    }
}

/* Row groups [r0 / 16, r1 / 16) of an X16-layout weight, every token. */
static void chunk_x16(const px_matmul_ctx *c, const mm_job *j, int64_t r0, int64_t r1) {
    const px_dtype t = j->w->type;
    const void *w = wrow(j->w, r0);
    const int ng = (int)((r1 - r0) / 16);
    const bool k = px__act_type(t) == PX_DTYPE_Q8_K;
    const void *x = k ? (const void *)c->act_k : (const void *)c->act_a;
    const size_t xs = (size_t)(c->n_in / (k ? 256 : 32));
    if (c->ks->x16[t])
        c->ks->x16[t](c->n_in, w, ng, x, xs, c->n_tok, j->y + (size_t)r0, (size_t)j->n_out);
    else
        px__x16_ref(t, c->n_in, w, ng, x, xs, c->n_tok, j->y + (size_t)r0, (size_t)j->n_out);
}

/* All tokens at once: the kernel decodes each weight once per chunk. */
static void chunk_gemm16(const px_matmul_ctx *c, const mm_job *j, int64_t r0, int64_t r1) {
    const px_block_q8t *xt = px__act_type(j->w->type) == PX_DTYPE_Q8_K ? c->act_tk : c->act_t;
    c->ks->gemm16[j->w->type](c->n_in, wrow(j->w, r0), j->w->row_bytes, (int)(r1 - r0), xt,
                              c->n_tok, j->y + (size_t)r0, (size_t)j->n_out);
}

static void chunk_blas(const px_matmul_ctx *c, const mm_job *j, int64_t r0, int64_t r1, int ith) {
    const float *b = c->tiles + (size_t)ith * BLAS_TILE_ROWS * (size_t)c->max_in;
    if (j->w->type == PX_DTYPE_F32) {
        b = (const float *)wrow(j->w, r0);
    } else {
        px_to_f32_fn to_f32 = c->ks->to_f32[j->w->type];
        float *tile = (float *)b;
        for (int64_t r = r0; r < r1; r++)
            to_f32(wrow(j->w, r), tile + (size_t)(r - r0) * (size_t)c->n_in, c->n_in);
    }
    /* y[:, r0:r1] (n_tok, r1-r0) = x (n_tok, n_in) · tileᵀ */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->n_tok, (int)(r1 - r0), (int)c->n_in,
                1.0f, c->x, (int)c->n_in, b, (int)c->n_in, 0.0f, j->y + r0, (int)j->n_out);
}

/* Token t of x in the row formats the call needs (those of its transposes
 * too): by the same function for every path, so every path sees the same
 * int8 values and scales. */
static void quantize_row(const px_matmul_ctx *c, int t) {
    const float *xr = c->x + (size_t)t * (size_t)c->n_in;
    if (c->need_a || c->need_t)
        c->ks->quantize_q8a(xr, c->act_a + (size_t)t * (size_t)(c->n_in / 32), c->n_in);
    if (c->need_k || c->need_tk)
        c->ks->quantize_q8k(xr, c->act_k + (size_t)t * (size_t)(c->n_in / 256), c->n_in);
}

/* Workers take chunks from one counter over all jobs, so a worker slowed by
 * another process does not hold up the call. */
static void job_matmul(void *arg, int ith, int nth) {
    (void)nth;
    px_matmul_ctx *c = arg;
    int ji = 0;
    if (c->quant_in_job) {
        /* Rows are claimed one at a time, so a worker another process
         * holds up delays the others by one row at most. */
        for (int t;
             (t = atomic_fetch_add_explicit(&c->quant_next, 1, memory_order_relaxed)) < c->n_tok;) {
            quantize_row(c, t);
            atomic_fetch_add_explicit(&c->quant_done, 1, memory_order_release);
        }
        while (atomic_load_explicit(&c->quant_done, memory_order_acquire) < c->n_tok)
            px_cpu_relax();
    }
    for (;;) {
        int64_t k = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed);
        if (k >= c->n_chunks) return;
        while (k >= c->jobs[ji].chunk0 + c->jobs[ji].n_chunks)
            ji++; /* chunks are taken in increasing order */
        const mm_job *j = &c->jobs[ji];
        int64_t r0 = (k - j->chunk0) * j->chunk_rows, r1 = PX_MIN(r0 + j->chunk_rows, j->n_out);
        if (j->path == PX_MATMUL_BLAS)
            chunk_blas(c, j, r0, r1, ith);
        else if (j->path == PX_MATMUL_GEMM16)
            chunk_gemm16(c, j, r0, r1);
        else if (j->path == PX_MATMUL_X16)
            chunk_x16(c, j, r0, r1);
        else
            chunk_rows(c, j, r0, r1);
    }
}

/* Quantizes x to every activation format the call needs, one group of 16
 * tokens per item: the row formats first, then their transposes for
 * GEMM16. */
static void job_quant(void *arg, int ith, int nth) {
    px_matmul_ctx *c = arg;
    int64_t nb32 = c->n_in / 32, nb256 = c->n_in / 256;
    for (int g = ith; g < (c->n_tok + 15) / 16; g += nth) {
        int t0 = 16 * g, nt = PX_MIN(16, c->n_tok - t0);
        for (int t = t0; t < t0 + nt; t++)
            quantize_row(c, t);
        if (c->need_t)
            px__q8t_from_q8a(c->act_a + (size_t)t0 * (size_t)nb32, (size_t)nb32, nt, nb32,
                             c->act_t + (size_t)g * (size_t)nb32);
        if (c->need_tk)
            px__q8t_from_q8k(c->act_k + (size_t)t0 * (size_t)nb256, (size_t)nb256, nt, nb256,
                             c->act_tk + (size_t)g * (size_t)nb32);
    }
}

static px_matmul_path choose_path(const px_kernels *ks, px_dtype t, int n_tok) {
    bool g16 = ks->gemm16[t] != NULL;
    if (forced_path != PX_MATMUL_AUTO) {
        if ((forced_path == PX_MATMUL_GEMM16 && !g16) || forced_path == PX_MATMUL_GEMM4)
            return PX_MATMUL_ROWS;
        return forced_path;
    }
    return g16 && n_tok >= gemm16_from(t) ? PX_MATMUL_GEMM16 : PX_MATMUL_ROWS;
}

static int64_t chunk_rows_for(const px_matmul_ctx *c, const mm_job *j, int64_t bytes,
                              int64_t align) {
    int64_t rows = bytes / (int64_t)j->w->row_bytes;
    /* at least 4 chunks per worker so a slow worker can be helped */
    int64_t bal = (j->n_out + 4 * c->nth - 1) / (4 * c->nth);
    rows = PX_MIN(rows, bal);
    rows = (rows + align - 1) / align * align;
    return PX_MAX(rows, align);
}

int px_matmul_multi(px_matmul_ctx *ctx, int n, const px_tensor *const *w, const float *x, int n_tok,
                    float *const *y) {
    const px_kernels *ks = px__kernels_get();
    if (n <= 0 || n > PX_MATMUL_MULTI_MAX) return PX_EINVAL;
    int64_t n_in = w[0]->ne[0];
    if (n_tok <= 0 || n_tok > ctx->max_tok || n_in <= 0 || n_in > ctx->max_in) return PX_EINVAL;
    ctx->ks = ks;
    ctx->x = x;
    ctx->n_tok = n_tok;
    ctx->n_in = n_in;
    ctx->need_a = ctx->need_k = ctx->need_t = ctx->need_tk = false;
    ctx->quant_in_job = false;
    atomic_store_explicit(&ctx->quant_next, 0, memory_order_relaxed);
    atomic_store_explicit(&ctx->quant_done, 0, memory_order_relaxed);
    ctx->n_chunks = 0;
    for (int i = 0; i < n; i++) {
        const px_tensor *wi = w[i];
        int act = px__act_type(wi->type);
        if (act < 0 || !ks->vec_dot[wi->type]) return PX_ENOTSUP;
        int64_t n_out = wi->ne[1] * PX_MAX(wi->ne[2], 1) * PX_MAX(wi->ne[3], 1);
        if (wi->ne[0] != n_in || n_out <= 0 || px_dtype_row_size(wi->type, n_in) == 0 ||
            wi->row_bytes != px_dtype_row_size(wi->type, n_in))
            return PX_EINVAL;
        if (wi->layout != PX_LAYOUT_ROWS &&
            (wi->layout != PX_LAYOUT_X16 || !px__x16_type(wi->type) || n_out % 16 != 0))
            return PX_EINVAL;
        mm_job *j = &ctx->jobs[i];
        j->w = wi;
        j->y = y[i];
        j->n_out = n_out;
        j->path = wi->layout == PX_LAYOUT_X16 ? PX_MATMUL_X16 : choose_path(ks, wi->type, n_tok);
        if (j->path == PX_MATMUL_X16) {
            ctx->need_a |= act == PX_DTYPE_Q8_0;
            ctx->need_k |= act == PX_DTYPE_Q8_K;
            j->chunk_rows = chunk_rows_for(ctx, j, X16_CHUNK_BYTES, 16);
        } else if (j->path == PX_MATMUL_BLAS) {
            j->chunk_rows = chunk_rows_for(ctx, j, (int64_t)wi->row_bytes * BLAS_TILE_ROWS, 16);
            j->chunk_rows = PX_MIN(j->chunk_rows, BLAS_TILE_ROWS);
        } else if (j->path == PX_MATMUL_GEMM16) {
            ctx->need_t |= act == PX_DTYPE_Q8_0;
            ctx->need_tk |= act == PX_DTYPE_Q8_K;
            j->chunk_rows = chunk_rows_for(ctx, j, G16_CHUNK_BYTES, 2);
        } else {
            ctx->need_a |= act == PX_DTYPE_Q8_0;
            ctx->need_k |= act == PX_DTYPE_Q8_K;
            j->chunk_rows = chunk_rows_for(ctx, j, ROW_CHUNK_BYTES, 1);
        }
        j->chunk0 = ctx->n_chunks;
        j->n_chunks = (n_out + j->chunk_rows - 1) / j->chunk_rows;
        ctx->n_chunks += j->n_chunks;
    }
    ctx->n_jobs = n;
    if (ctx->need_a || ctx->need_k || ctx->need_t || ctx->need_tk) {
        /* a few rows are quicker on the caller than a pool round trip */
        if (n_tok > 16)
            px_pool_run(ctx->pool, job_quant, ctx);
        else if (!ctx->need_t && !ctx->need_tk && ctx->nth > 1)
            ctx->quant_in_job = true;
        else
            job_quant(ctx, 0, 1);
    }
    atomic_store_explicit(&ctx->next_chunk, 0, memory_order_relaxed);
    px_pool_run(ctx->pool, job_matmul, ctx);
    return 0;
}

int px_matmul(px_matmul_ctx *ctx, const px_tensor *w, const float *x, int n_tok, float *y) {
    return px_matmul_multi(ctx, 1, &w, x, n_tok, &y);
}

/* ---- gated activations --------------------------------------------------- */

typedef struct glu_job {
    const px_kernels *ks;
    bool gelu;
    float *gate;
    const float *up;
    int64_t n;
} glu_job;

static void job_glu(void *ctx, int ith, int nth) {
    glu_job *j = ctx;
    /* Contiguous ranges in whole cache lines. */
    int64_t per = (j->n + nth - 1) / nth;
    per = (per + 15) / 16 * 16;
    int64_t i0 = PX_MIN(j->n, (int64_t)ith * per), i1 = PX_MIN(j->n, i0 + per);
    (j->gelu ? j->ks->geglu : j->ks->swiglu)(j->gate + i0, j->up + i0, i1 - i0);
}

void px_glu(px_matmul_ctx *ctx, bool gelu, float *gate, const float *up, int64_t n) {
    glu_job j = {.ks = px__kernels_get(), .gelu = gelu, .gate = gate, .up = up, .n = n};
    /* a decode row (a few thousand elements) is quicker than a pool round trip */
    if (n >= 32768 && ctx->nth > 1)
        px_pool_run(ctx->pool, job_glu, &j);
    else
        job_glu(&j, 0, 1);
}

/* ---- F16 rows ------------------------------------------------------------ */

void px_f32_to_f16_row(int64_t n, const float *x, px_f16 *y) {
    px__kernels_get()->f32_to_f16_row(n, x, y);
}
