/* matmul.c — y = x · Wᵀ on the pool: picks a path by n_tok and dtype and
 * splits output rows across workers.
 *
 * Paths (kernels.h): ROWS quantizes x once and dots each weight row with up
 * to PX_NRC_MAX activation rows while the row is in L1; GEMM16 (AVX-512 VNNI)
 * takes 16 tokens per zmm; BLAS dequantizes a tile of weight rows per worker
 * and calls single-threaded sgemm on it. Workers take chunks of rows from an
 * atomic counter, so a worker slowed by another process does not hold up the
 * job; inside a chunk every token group runs while the chunk's weights are
 * in cache.
 *
 * Switch points, measured with pollux-kbench -d (2-core EPYC Zen 4, 2
 * threads, machine shared, stream read 31 GB/s in the same run).
 * Prefill GFLOPS, gemm16 / blas, at n_tok 64, 128, 512:
 *   Q8_0 1152x6912  169/79   169/86   157/89    6912x1152 172/77  323/155 358/143
 *   Q4_0 1152x6912  316/141  306/152  298/166   6912x1152 310/150 311/155 326/139
 *   Q5_0 1152x6912  270/138  277/152  284/167   6912x1152 254/142 283/161 298/152
 *   Q4_K 6912x1152  257/163  286/173  303/157
 *   Q5_K 6912x1152  272/165  281/173  221/122
 *   Q6_K 6912x1152  304/148  255/161  306/162
 *   F16  1152x6912  rows 77 / blas 152 @64; F32 rows 67 / blas 152 @64
 * so with VNNI the int8 path wins at every n_tok for quantized weights, and
 * float weights go to sgemm from 16 tokens. Decode, us per call on 6912x1152
 * (rows / gemm16): Q8_0 @4 440/768, @8 897/835, @16 1861/1019; Q4_K @4
 * 437/1152, @8 1836/1748: gemm16 from 8 tokens. The switch for sets without
 * gemm16 (AVX2, portable) is not measured here: 32 is a guess.
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
    BLAS_TILE_ROWS = 64,     /* rows dequantized per sgemm call */
    ROW_CHUNK_BYTES = 32768, /* weight bytes per chunk on the ROWS path */
    G16_CHUNK_BYTES = 65536, /* ... on the GEMM16 path (re-read per group) */
};

/* n_tok from which each path takes over, per weight dtype. ROWS below
 * gemm16_from, GEMM16 (if the kernel set has it) below blas_from, BLAS from
 * there on. Without gemm16 the ROWS path runs up to blas_from_nog16. */
typedef struct switch_point {
    int gemm16_from;
    int blas_from;
    int blas_from_nog16; /* kernel sets without gemm16 (AVX2, portable) */
} switch_point;

static switch_point switch_points(px_dtype t) {
    switch (t) {
    case PX_DTYPE_Q4_0: return (switch_point){8, 1 << 30, 32};
    case PX_DTYPE_Q5_0: return (switch_point){8, 1 << 30, 32};
    case PX_DTYPE_Q8_0: return (switch_point){8, 1 << 30, 32};
    case PX_DTYPE_Q4_K: return (switch_point){8, 1 << 30, 32};
    case PX_DTYPE_Q5_K: return (switch_point){8, 1 << 30, 32};
    case PX_DTYPE_Q6_K: return (switch_point){8, 1 << 30, 32};
    default: /* float weights: no int8 path */ return (switch_point){1 << 30, 16, 16};
    }
}

struct px_matmul_ctx {
    px_pool *pool;
    int nth;
    int max_tok;
    int64_t max_in;
    void *act; /* quantized activations (any format), act_bytes */
    size_t act_bytes;
    float *tiles; /* nth tiles of (BLAS_TILE_ROWS, max_in) floats */
    /* The current job (written by the caller before px_pool_run). */
    const px_kernels *ks;
    const px_tensor *w;
    const float *x; /* (n_tok, n_in) */
    float *y;       /* (n_tok, n_out) */
    int n_tok;
    int64_t n_in, n_out;
    size_t act_stride; /* bytes between quantized activation rows */
    int64_t chunk_rows;
    atomic_llong next_row;
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

static size_t act_bytes_for(int max_tok, int64_t max_in) {
    size_t nt = (size_t)max_tok, nb32 = (size_t)(max_in / 32);
    size_t q8a = nt * nb32 * sizeof(px_block_q8a);
    size_t q8k = nt * (size_t)(max_in / 256) * sizeof(px_block_q8_K);
    size_t q8t = (nt + 15) / 16 * nb32 * sizeof(px_block_q8t);
    return PX_MAX(PX_MAX(q8a, q8k), q8t);
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
    c->act_bytes = act_bytes_for(max_tok, max_in);
    /* 64-byte aligned: gemm16 loads whole q8t rows as zmm. */
    size_t tile_bytes = (size_t)c->nth * BLAS_TILE_ROWS * (size_t)max_in * sizeof(float);
    c->act = c->act_bytes ? aligned_alloc(64, (c->act_bytes + 63) / 64 * 64) : NULL;
    c->tiles = aligned_alloc(64, (tile_bytes + 63) / 64 * 64);
    if ((c->act_bytes && !c->act) || !c->tiles) {
        px_matmul_ctx_destroy(c);
        return NULL;
    }
    atomic_init(&c->next_row, 0);
    return c;
}

void px_matmul_ctx_destroy(px_matmul_ctx *ctx) {
    if (!ctx) return;
    free(ctx->act);
    free(ctx->tiles);
    free(ctx);
}

/* ---- jobs ---------------------------------------------------------------- */

static const char *wrow(const px_matmul_ctx *c, int64_t r) {
    return (const char *)c->w->data + (size_t)r * c->w->row_bytes;
}

/* Takes the next chunk of rows; false when none is left. */
static bool next_chunk(px_matmul_ctx *c, int64_t *r0, int64_t *r1) {
    int64_t r = atomic_fetch_add_explicit(&c->next_row, c->chunk_rows, memory_order_relaxed);
    if (r >= c->n_out) return false;
    *r0 = r;
    *r1 = PX_MIN(r + c->chunk_rows, c->n_out);
    return true;
}

static void job_rows(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    px_matmul_ctx *c = arg;
    px_vec_dot_fn dot = c->ks->vec_dot[c->w->type];
    const bool flt = px__act_type(c->w->type) == PX_DTYPE_F32;
    const void *act = flt ? (const void *)c->x : c->act;
    int64_t r0, r1;
    float out[PX_NRC_MAX];
    while (next_chunk(c, &r0, &r1)) {
        for (int t = 0; t < c->n_tok; t += PX_NRC_MAX) {
            int nrc = PX_MIN(PX_NRC_MAX, c->n_tok - t);
            const void *xa = (const char *)act + (size_t)t * c->act_stride;
            for (int64_t r = r0; r < r1; r++) {
                dot(c->n_in, wrow(c, r), xa, c->act_stride, nrc, out);
                for (int i = 0; i < nrc; i++)
                    c->y[(size_t)(t + i) * (size_t)c->n_out + (size_t)r] = out[i];
            }
        }
    }
}

static void job_gemm16(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    px_matmul_ctx *c = arg;
    px_gemm16_fn g = c->ks->gemm16[c->w->type];
    const px_block_q8t *xt = c->act;
    int64_t nb = c->n_in / 32, r0, r1;
    while (next_chunk(c, &r0, &r1)) {
        for (int t = 0; t < c->n_tok; t += 16) {
            g(c->n_in, wrow(c, r0), c->w->row_bytes, (int)(r1 - r0), xt + (t / 16) * nb,
              PX_MIN(16, c->n_tok - t), c->y + (size_t)t * (size_t)c->n_out + (size_t)r0,
              (size_t)c->n_out);
        }
    }
}

static void job_blas(void *arg, int ith, int nth) {
    (void)nth;
    px_matmul_ctx *c = arg;
    px_to_f32_fn to_f32 = c->ks->to_f32[c->w->type];
    float *tile = c->tiles + (size_t)ith * BLAS_TILE_ROWS * (size_t)c->max_in;
    int64_t r0, r1;
    while (next_chunk(c, &r0, &r1)) {
        const float *b = tile;
        if (c->w->type == PX_DTYPE_F32) {
            b = (const float *)wrow(c, r0);
        } else {
            for (int64_t r = r0; r < r1; r++)
                to_f32(wrow(c, r), tile + (size_t)(r - r0) * (size_t)c->n_in, c->n_in);
        }
        /* y[:, r0:r1] (n_tok, r1-r0) = x (n_tok, n_in) · tileᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->n_tok, (int)(r1 - r0), (int)c->n_in,
                    1.0f, c->x, (int)c->n_in, b, (int)c->n_in, 0.0f, c->y + r0, (int)c->n_out);
    }
}

/* Quantizes token rows [t0, t1) for the ROWS path, or groups for GEMM16. */
static void job_quant(void *arg, int ith, int nth) {
    px_matmul_ctx *c = arg;
    const px_kernels *ks = c->ks;
    if (c->act_stride == 0) { /* q8t: groups of 16 tokens */
        int ng = (c->n_tok + 15) / 16;
        int64_t nb = c->n_in / 32;
        for (int g = ith; g < ng; g += nth)
            ks->quantize_q8t(c->x + (size_t)g * 16 * (size_t)c->n_in, (size_t)c->n_in,
                             PX_MIN(16, c->n_tok - 16 * g), c->n_in,
                             (px_block_q8t *)c->act + (size_t)g * (size_t)nb);
        return;
    }
    for (int t = ith; t < c->n_tok; t += nth) {
        const float *x = c->x + (size_t)t * (size_t)c->n_in;
        void *dst = (char *)c->act + (size_t)t * c->act_stride;
        if (px__act_type(c->w->type) == PX_DTYPE_Q8_K)
            ks->quantize_q8k(x, dst, c->n_in);
        else
            ks->quantize_q8a(x, dst, c->n_in);
    }
}

static px_matmul_path choose_path(const px_kernels *ks, px_dtype t, int n_tok) {
    bool g16 = ks->gemm16[t] != NULL;
    if (forced_path != PX_MATMUL_AUTO) {
        if (forced_path == PX_MATMUL_GEMM16 && !g16) return PX_MATMUL_ROWS;
        return forced_path;
    }
    switch_point sp = switch_points(t);
    if (!g16) return n_tok >= sp.blas_from_nog16 ? PX_MATMUL_BLAS : PX_MATMUL_ROWS;
    if (n_tok >= sp.blas_from) return PX_MATMUL_BLAS;
    return n_tok >= sp.gemm16_from ? PX_MATMUL_GEMM16 : PX_MATMUL_ROWS;
}

static int64_t chunk_rows_for(const px_matmul_ctx *c, int64_t bytes, int64_t align) {
    int64_t rows = bytes / (int64_t)c->w->row_bytes;
    /* at least 4 chunks per worker so a slow worker can be helped */
    int64_t bal = (c->n_out + 4 * c->nth - 1) / (4 * c->nth);
    rows = PX_MIN(rows, bal);
    rows = (rows + align - 1) / align * align;
    return PX_MAX(rows, align);
}

int px_matmul(px_matmul_ctx *ctx, const px_tensor *w, const float *x, int n_tok, float *y) {
    const px_kernels *ks = px__kernels_get();
    int64_t n_in = w->ne[0], n_out = w->ne[1] * PX_MAX(w->ne[2], 1) * PX_MAX(w->ne[3], 1);
    int act = px__act_type(w->type);
    if (act < 0 || !ks->vec_dot[w->type]) return PX_ENOTSUP;
    if (n_tok <= 0 || n_tok > ctx->max_tok || n_in <= 0 || n_in > ctx->max_in || n_out <= 0)
        return PX_EINVAL;
    if (px_dtype_row_size(w->type, n_in) == 0 || w->row_bytes != px_dtype_row_size(w->type, n_in))
        return PX_EINVAL;

    ctx->ks = ks;
    ctx->w = w;
    ctx->x = x;
    ctx->y = y;
    ctx->n_tok = n_tok;
    ctx->n_in = n_in;
    ctx->n_out = n_out;
    px_matmul_path path = choose_path(ks, w->type, n_tok);
    px_pool_fn job;
    if (path == PX_MATMUL_BLAS) {
        ctx->chunk_rows = chunk_rows_for(ctx, (int64_t)w->row_bytes * BLAS_TILE_ROWS, 16);
        ctx->chunk_rows = PX_MIN(ctx->chunk_rows, BLAS_TILE_ROWS);
        job = job_blas;
    } else if (path == PX_MATMUL_GEMM16) {
        ctx->act_stride = 0;
        if (n_tok > 16)
            px_pool_run(ctx->pool, job_quant, ctx);
        else
            job_quant(ctx, 0, 1);
        ctx->chunk_rows = chunk_rows_for(ctx, G16_CHUNK_BYTES, 2);
        job = job_gemm16;
    } else {
        if (act == PX_DTYPE_F32) {
            ctx->act_stride = (size_t)n_in * sizeof(float);
        } else {
            ctx->act_stride = act == PX_DTYPE_Q8_K ? (size_t)(n_in / 256) * sizeof(px_block_q8_K)
                                                   : (size_t)(n_in / 32) * sizeof(px_block_q8a);
            if (n_tok >= 4 * ctx->nth)
                px_pool_run(ctx->pool, job_quant, ctx);
            else
                job_quant(ctx, 0, 1);
        }
        ctx->chunk_rows = chunk_rows_for(ctx, ROW_CHUNK_BYTES, 1);
        job = job_rows;
    }
    atomic_store_explicit(&ctx->next_row, 0, memory_order_relaxed);
    px_pool_run(ctx->pool, job, ctx);
    return 0;
}

/* ---- attention helpers --------------------------------------------------- */

float px_dot_f16_f32(int64_t n, const px_f16 *a, const float *b) {
    return px__kernels_get()->dot_f16_f32(n, a, b);
}

void px_axpy_f16_f32(int64_t n, float alpha, const px_f16 *x, float *y) {
    px__kernels_get()->axpy_f16_f32(n, alpha, x, y);
}

void px_f32_to_f16_row(int64_t n, const float *x, px_f16 *y) {
    px__kernels_get()->f32_to_f16_row(n, x, y);
}
