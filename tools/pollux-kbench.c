/* pollux-kbench — micro-benchmark of px_matmul on the gemma3-1B shapes.
 *
 * For each weight dtype: decode throughput as GB/s of weight reads at n_tok 1
 * and the aggregate speed-up at n_tok 4 and 16 (tokens per second relative
 * to n_tok 1), then prefill GFLOPS at n_tok 64, 128, 512 on both prefill
 * paths (int8 gemm16 and sgemm on dequantized tiles). A STREAM-like read
 * bandwidth on the same pool is printed first for reference. Weights are
 * random bytes with valid block scales (the speed does not depend on the
 * values). Usage: pollux-kbench [-t threads] [-s seconds] [-q] [-d] [-k set]
 * [-x case] (-q: small shapes only, skips the 262144-row output projection;
 * -d: also a table of the three decode paths (rows / gemm4 / gemm16) at
 * n_tok 1..16, to place the switches; -k: force a kernel set, "portable",
 * "avx2" or "avx512-vnni"; -x DTYPE:N_IN:N_OUT:N_TOK[:rows|gemm4|gemm16|blas|x16]:
 * time one case only (x16: repacked as the model loader does), for perf record, printing the
 * process CPU time per call too, which other processes on a shared machine do not inflate; -c: the
 * compute ceiling of the gemm16 instruction mix on one core). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "matmul.h"
#include "pool.h"
#include "types.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void put_f16(char *p, float v) {
    px_f16 h = px_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Random weights of type t, (n_out, n_in), with sane scales. */
static void *make_weights(px_dtype t, int64_t n_in, int64_t n_out, size_t *row_bytes) {
    size_t rb = px_dtype_row_size(t, n_in), total = rb * (size_t)n_out;
    char *w = aligned_alloc(64, (total + 63) / 64 * 64);
    if (!w) return NULL;
    for (size_t i = 0; i + 8 <= total; i += 8) {
        uint64_t r = next_rand();
        memcpy(w + i, &r, 8);
    }
    const px_dtype_info *info = px_dtype_get(t);
    if (t == PX_DTYPE_F32) {
        for (size_t i = 0; i < total / 4; i++)
            ((float *)w)[i] = (float)(next_rand() % 2001) / 1000.0f - 1.0f;
    } else if (t == PX_DTYPE_F16) {
        for (size_t i = 0; i < total / 2; i++)
            put_f16(w + 2 * i, (float)(next_rand() % 2001) / 1000.0f - 1.0f);
    } else {
        for (size_t b = 0; b < total; b += (size_t)info->block_bytes) {
            if (t == PX_DTYPE_Q6_K) {
                put_f16(w + b + 208, 0.001f);
            } else {
                put_f16(w + b, 0.001f);
                if (t == PX_DTYPE_Q4_K || t == PX_DTYPE_Q5_K) put_f16(w + b + 2, 0.001f);
            }
        }
    }
    *row_bytes = rb;
    return w;
}

static int last_reps; /* calls the last time_matmul made (warm-up included) */

/* Seconds per call, median-free: total time over as many calls as fit. */
static double time_matmul(px_matmul_ctx *ctx, const px_tensor *w, const float *x, int n_tok,
                          float *y, double min_s) {
    px_matmul(ctx, w, x, n_tok, y); /* warm-up */
    int reps = 0;
    double t0 = now_s(), t;
    do {
        px_matmul(ctx, w, x, n_tok, y);
        reps++;
        t = now_s() - t0;
    } while (t < min_s);
    last_reps = reps + 1;
    return t / reps;
}

/* ---- STREAM-like read bandwidth ------------------------------------------ */

typedef struct stream_job {
    const float *buf;
    size_t n;
    float sums[64];
} stream_job;

static void stream_fn(void *arg, int ith, int nth) {
    stream_job *j = arg;
    size_t per = j->n / (size_t)nth / 64 * 64;
    const uint64_t *p = (const uint64_t *)(j->buf + per * (size_t)ith);
    /* eight independent chains: the loop is load-bound, not add-bound */
    uint64_t a[8] = {0};
    for (size_t i = 0; i < per / 2; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] += p[i + (size_t)k];
    uint64_t s = 0;
    for (int k = 0; k < 8; k++)
        s += a[k];
    j->sums[ith] = (float)s;
}

static double stream_read(px_pool *pool, double min_s) {
    size_t n = (size_t)1 << 28; /* 1 GiB of floats */
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (!buf) return 0.0;
    for (size_t i = 0; i < n; i++)
        buf[i] = 1.0f;
    stream_job j = {.buf = buf, .n = n};
    px_pool_run(pool, stream_fn, &j);
    int reps = 0;
    double t0 = now_s(), t;
    do {
        px_pool_run(pool, stream_fn, &j);
        reps++;
        t = now_s() - t0;
    } while (t < min_s);
    free(buf);
    size_t per = n / (size_t)px_pool_size(pool) / 64 * 64;
    return (double)(per * (size_t)px_pool_size(pool) * sizeof(float)) * reps / t / 1e9;
}

/* -x: one dtype, shape, n_tok and path; prints us per call and GB/s. */
static int run_one(px_matmul_ctx *ctx, const char *spec, const float *x, float *y, double min_s) {
    char tname[16] = "", pname[16] = "auto";
    long n_in, n_out;
    int nt;
    if (sscanf(spec, "%15[^:]:%ld:%ld:%d:%15s", tname, &n_in, &n_out, &nt, pname) < 4 ||
        n_in <= 0 || n_in > 6912 || n_out <= 0 || nt <= 0 || nt > 512) {
        fprintf(stderr, "pollux-kbench: bad -x %s\n", spec);
        return 2;
    }
    px_dtype t = PX_DTYPE_COUNT;
    for (int i = 0; i < PX_DTYPE_COUNT; i++)
        if (px_dtype_get((px_dtype)i)->name && strcmp(px_dtype_get((px_dtype)i)->name, tname) == 0)
            t = (px_dtype)i;
    size_t rb;
    void *wd =
        t < PX_DTYPE_COUNT && px_dtype_row_size(t, n_in) ? make_weights(t, n_in, n_out, &rb) : NULL;
    if (!wd || (n_out * nt > 512 * 6912)) {
        fprintf(stderr, "pollux-kbench: cannot run %s\n", spec);
        return 2;
    }
    px_tensor w = {.type = t, .ne = {n_in, n_out, 1, 1}, .row_bytes = rb, .data = wd};
    if (strcmp(pname, "x16") == 0) { /* the repacked layout the model loader makes */
        if (!px__x16_type(t) || n_out % 16 != 0) {
            fprintf(stderr,
                    "pollux-kbench: x16 needs Q4_0, Q5_0, Q8_0, Q4_K, Q5_K or Q6_K and 16k rows\n");
            free(wd);
            return 2;
        }
        void *packed = aligned_alloc(64, (rb * (size_t)n_out + 63) / 64 * 64);
        if (!packed) {
            free(wd);
            return 2;
        }
        px__x16_pack(t, wd, rb, n_in, n_out, packed);
        free(wd);
        wd = packed;
        w.data = wd;
        w.layout = PX_LAYOUT_X16;
    }
    px_matmul_path path = strcmp(pname, "rows") == 0     ? PX_MATMUL_ROWS
                          : strcmp(pname, "gemm16") == 0 ? PX_MATMUL_GEMM16
                          : strcmp(pname, "gemm4") == 0  ? PX_MATMUL_GEMM4
                          : strcmp(pname, "blas") == 0   ? PX_MATMUL_BLAS
                                                         : PX_MATMUL_AUTO;
    px__matmul_force_path(path);
    /* CPU time too: on a shared machine it counts only our own cycles */
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double s = time_matmul(ctx, &w, x, nt, y, min_s);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    int reps = last_reps;
    double cpu =
        ((double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec)) / reps;
    printf("%s %ldx%ld n_tok %d %s: %.1f us, %.1f GB/s, %.1f GFLOPS, cpu %.1f us\n", tname, n_in,
           n_out, nt, pname, s * 1e6, (double)rb * (double)n_out / s / 1e9,
           2.0 * (double)n_in * (double)n_out * nt / s / 1e9, cpu * 1e6);
    px__matmul_force_path(PX_MATMUL_AUTO);
    free(wd);
    return 0;
}

#if defined(__x86_64__)
#include <immintrin.h>

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define C_DECL(k)                                                                                  \
    __m512i a##k = _mm512_set1_epi32(k);                                                           \
    __m512 f##k = _mm512_set1_ps((float)k);
#define C_DP(k) a##k = _mm512_dpbusd_epi32(a##k, xv, yv);
#define C_FL(k)                                                                                    \
    f##k = _mm512_add_ps(f##k, _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a##k), fs), fs));
#define C_KEEP(k) __asm__ volatile("" : "+v"(a##k), "+v"(f##k));
#define C_SUM(k) s += _mm512_reduce_add_epi32(a##k) + (int)_mm512_reduce_add_ps(f##k);

/* 8 vpdpbusd and two of one float operation per chain: which operations
 * take vpdpbusd's pipes. */
#define C_MUL(k) f##k = _mm512_mul_ps(_mm512_mul_ps(f##k, fs), fs);
#define C_ADD(k) f##k = _mm512_add_ps(_mm512_add_ps(f##k, fs), fs);
#define C_CVT(k) f##k = _mm512_cvtepi32_ps(_mm512_cvtps_epi32(f##k));
#define C_OPS(NAME, OP)                                                                            \
    t0 = cpu_s();                                                                                  \
    for (long i = 0; i < n / 8; i++) {                                                             \
        R12(C_DP)                                                                                  \
        R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(OP) R12(C_KEEP)  \
    }                                                                                              \
    printf("  8 vpdpbusd + 2 %s: the time of %.2f vpdpbusd\n", NAME,                               \
           (cpu_s() - t0) / (12.0 * (double)(n / 8)) / cyc / dp);

/* The compute ceiling of gemm16 and x16 on one core: cycles (from a
 * dependent vpaddd chain, 1 cycle each) per vpdpbusd zmm alone, and per
 * block of 32 weights x 16 lanes x 1 token with the canonical combination
 * (8 vpdpbusd + cvt + 2 mul + add). Measured on Zen 4: of these float
 * operations only the multiplies share vpdpbusd's two 512-bit pipes (adds
 * and converts go to the others), so the ceiling is 8 / 10 of vpdpbusd's. */
__attribute__((target("avx512f,avx512vnni"))) static void ceiling(void) {
    const long n = 20000000;
    __m512i xv = _mm512_set1_epi32(3), yv = _mm512_set1_epi32(5), c = xv;
    __m512 fs = _mm512_set1_ps(1.0001f);
    double t0 = cpu_s();
    for (long i = 0; i < 5 * n; i++) {
        c = _mm512_add_epi32(c, yv);
        __asm__ volatile("" : "+v"(c));
    }
    double cyc = (cpu_s() - t0) / (5.0 * (double)n);
    R12(C_DECL)
    t0 = cpu_s();
    for (long i = 0; i < n; i++) {
        R12(C_DP) R12(C_KEEP)
    }
    double dp = (cpu_s() - t0) / (12.0 * (double)n) / cyc;
    t0 = cpu_s();
    for (long i = 0; i < n / 8; i++) {
        R12(C_DP)
        R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_DP) R12(C_FL) R12(C_KEEP)
    }
    double blk = (cpu_s() - t0) / (12.0 * (double)(n / 8)) / cyc;
    C_OPS("vmulps", C_MUL)
    C_OPS("vaddps", C_ADD)
    C_OPS("converts", C_CVT)
    int s = (int)_mm512_reduce_add_epi32(c);
    R12(C_SUM)
    double ghz = 1e-9 / cyc, gf = 2.0 * 16 * 32 / blk * ghz; /* flops of a block / its time */
    printf("one core: a block (8 vpdpbusd + cvt + 2 mul + add) takes the time of %.2f vpdpbusd "
           "(8 if float work were free)\n"
           "gemm16 / x16 compute ceiling: %.0f GFLOPS per core (%.0f with free float work)%s\n",
           blk / dp, gf, 2.0 * 16 * 32 / (8 * dp) * ghz, s == 42 ? " " : "");
}
#endif

int main(int argc, char **argv) {
    int n_threads = 2, quick = 0, decode_table = 0;
    double min_s = 0.3;
    const char *one = NULL, *kset = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "t:s:qdx:k:c")) != -1) {
        switch (opt) {
        case 'x': one = optarg; break;
        case 'k': kset = optarg; break;
        case 't': n_threads = atoi(optarg); break;
        case 's': min_s = atof(optarg); break;
        case 'q': quick = 1; break;
        case 'd': decode_table = 1; break;
        case 'c':
#if defined(__x86_64__)
            if (__builtin_cpu_supports("avx512vnni")) {
                ceiling();
                return 0;
            }
#endif
            fprintf(stderr, "pollux-kbench: -c needs AVX-512 VNNI\n");
            return 1;
        default:
            fprintf(stderr,
                    "usage: %s [-c] [-t threads] [-s seconds] [-q] [-d] [-k set] "
                    "[-x dtype:n_in:n_out:n_tok[:path]]\n",
                    argv[0]);
            return 2;
        }
    }
    px_pool *pool = px_pool_create(n_threads);
    enum { MAX_TOK = 512, MAX_IN = 6912 };
    px_matmul_ctx *ctx = pool ? px_matmul_ctx_create(pool, MAX_TOK, MAX_IN) : NULL;
    float *x = malloc(sizeof(float) * MAX_TOK * MAX_IN);
    float *y = malloc(sizeof(float) * (size_t)16 * 262144);
    float *yb = malloc(sizeof(float) * (size_t)MAX_TOK * MAX_IN);
    if (!ctx || !x || !y || !yb) {
        fprintf(stderr, "pollux-kbench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)MAX_TOK * MAX_IN; i++)
        x[i] = (float)(next_rand() % 2001) / 1000.0f - 1.0f;

    if (kset && px_matmul_force_kernels(kset) != 0) {
        fprintf(stderr, "pollux-kbench: kernel set %s not available\n", kset);
        return 2;
    }
    printf("kernels: %s, threads: %d\n", px_matmul_kernel_name(), px_pool_size(pool));
    if (one) return run_one(ctx, one, x, yb, min_s);
    printf("stream read: %.1f GB/s\n\n", stream_read(pool, min_s));

    if (decode_table) {
        /* ms per call of ROWS vs GEMM16 at small n_tok: where gemm16 starts */
        static const px_dtype dt[] = {PX_DTYPE_Q8_0, PX_DTYPE_Q4_0, PX_DTYPE_Q4_K, PX_DTYPE_Q6_K};
        printf("decode paths on 6912x1152, us per call (rows / gemm4 / gemm16):\n");
        for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
            size_t rb;
            void *wd = make_weights(dt[i], 6912, 1152, &rb);
            px_tensor w = {.type = dt[i], .ne = {6912, 1152, 1, 1}, .row_bytes = rb, .data = wd};
            printf("%-5s", px_dtype_get(dt[i])->name);
            for (int nt = 1; nt <= 16; nt *= 2) {
                px__matmul_force_path(PX_MATMUL_ROWS);
                double tr = time_matmul(ctx, &w, x, nt, y, min_s);
                px__matmul_force_path(PX_MATMUL_GEMM4);
                double t4 = time_matmul(ctx, &w, x, nt, y, min_s);
                px__matmul_force_path(PX_MATMUL_GEMM16);
                double tg = time_matmul(ctx, &w, x, nt, y, min_s);
                printf("  @%d %.0f/%.0f/%.0f", nt, tr * 1e6, t4 * 1e6, tg * 1e6);
            }
            printf("\n");
            free(wd);
        }
        px__matmul_force_path(PX_MATMUL_AUTO);
        printf("\n");
    }

    static const px_dtype types[] = {PX_DTYPE_Q8_0, PX_DTYPE_Q4_0, PX_DTYPE_Q5_0, PX_DTYPE_Q4_K,
                                     PX_DTYPE_Q5_K, PX_DTYPE_Q6_K, PX_DTYPE_F16,  PX_DTYPE_F32};
    static const struct {
        int64_t n_in, n_out;
    } shapes[] = {{1152, 6912}, {6912, 1152}, {1152, 262144}};
    static const int pre_toks[] = {64, 128, 512};

    printf("%-5s %-13s %8s %6s %6s | %s\n", "dtype", "n_in x n_out", "GB/s@1", "x@4", "x@16",
           "GFLOPS gemm16/blas @64 @128 @512");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (size_t si = 0; si < (quick ? 2u : 3u); si++) {
            px_dtype t = types[ti];
            int64_t n_in = shapes[si].n_in, n_out = shapes[si].n_out;
            if (si == 2 && t == PX_DTYPE_F32) continue; /* 1.2 GB: not a shape anyone runs */
            if (px_dtype_row_size(t, n_in) == 0) {
                printf("%-5s %5ldx%-7ld   (n_in not a multiple of the block)\n",
                       px_dtype_get(t)->name, (long)n_in, (long)n_out);
                continue;
            }
            size_t rb;
            void *wd = make_weights(t, n_in, n_out, &rb);
            if (!wd) {
                fprintf(stderr, "pollux-kbench: out of memory\n");
                return 1;
            }
            px_tensor w = {.type = t, .ne = {n_in, n_out, 1, 1}, .row_bytes = rb, .data = wd};
            px__matmul_force_path(PX_MATMUL_AUTO);
            double t1 = time_matmul(ctx, &w, x, 1, y, min_s);
            double t4 = time_matmul(ctx, &w, x, 4, y, min_s);
            double t16 = time_matmul(ctx, &w, x, 16, y, min_s);
            double gb = (double)rb * (double)n_out / t1 / 1e9;
            printf("%-5s %5ldx%-7ld %8.1f %6.2f %6.2f |", px_dtype_get(t)->name, (long)n_in,
                   (long)n_out, gb, 4 * t1 / t4, 16 * t1 / t16);
            if (si < 2) {
                for (size_t k = 0; k < sizeof pre_toks / sizeof pre_toks[0]; k++) {
                    int nt = pre_toks[k];
                    double flop = 2.0 * (double)n_in * (double)n_out * nt;
                    px__matmul_force_path(PX_MATMUL_GEMM16);
                    double tg = time_matmul(ctx, &w, x, nt, yb, min_s / 2);
                    px__matmul_force_path(PX_MATMUL_BLAS);
                    double tb = time_matmul(ctx, &w, x, nt, yb, min_s / 2);
                    printf(" %5.0f/%-5.0f", flop / tg / 1e9, flop / tb / 1e9);
                }
                px__matmul_force_path(PX_MATMUL_AUTO);
            }
            printf("\n");
            fflush(stdout);
            free(wd);
        }
    }
    px_matmul_ctx_destroy(ctx);
    px_pool_destroy(pool);
    free(x);
    free(y);
    free(yb);
    return 0;
}
