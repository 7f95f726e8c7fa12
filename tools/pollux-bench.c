/* pollux-bench — engine speed on one model file: prefill tok/s, decode tok/s
 * at several batch sizes, the machine's memory bandwidth, and batch-1 decode
 * as a fraction of the bandwidth bound (weight bytes per token / bandwidth).
 * On a shared machine the bandwidth changes from one second to the next, so
 * the fraction also uses read passes right before and right after each
 * batch-1 run (the mean of the best of three each side), and reports the
 * best run.
 *
 *   pollux-bench -m FILE [--threads N] [--prompt 512] [--gen 32]
 *                [--batches 1,4,16] [--reps 2]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "model.h"
#include "pool.h"
#include "px.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- bandwidth: triad a = b + s*c, and a pure read (sum) --- */
typedef struct bw_job {
    float *a, *b, *c;
    size_t n;
    int read_only;
    double sums[64];
} bw_job;

static void bw_worker(void *ctx, int ith, int nth) {
    bw_job *j = ctx;
    size_t lo = j->n * (size_t)ith / (size_t)nth, hi = j->n * (size_t)(ith + 1) / (size_t)nth;
    if (j->read_only) {
        /* 32-byte integer vector loads with independent accumulators, so the
         * loop is bound by memory, not by add latency, and a prefetch 2 KB
         * ahead as the engine's kernels do (without it one pass can read
         * less than the decode loop does). */
        typedef uint64_t v4u __attribute__((vector_size(32)));
        const v4u *p = (const v4u *)(void *)(j->b + lo);
        size_t nv = (hi - lo) / 8;
        v4u s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        for (size_t i = 0; i + 3 < nv; i += 4) {
            __builtin_prefetch((const char *)(p + i) + 2048);
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        v4u t = s0 + s1 + s2 + s3;
        j->sums[ith] = (double)(t[0] ^ t[1] ^ t[2] ^ t[3]);
    } else {
        for (size_t i = lo; i < hi; i++)
            j->a[i] = j->b[i] + 3.0f * j->c[i];
    }
}

/* The best of three read passes over the n floats at b (GB/s), on the pool. */
static double read_pass(px_pool *pool, float *b, size_t n) {
    bw_job j = {.b = b, .n = n, .read_only = 1};
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_s();
        px_pool_run(pool, bw_worker, &j);
        best = PX_MIN(best, now_s() - t0);
    }
    return (double)n * 4 / best / 1e9;
}

/* 2 MiB aligned, transparent huge pages asked for: the model's repacked
 * weights get them too, and 4 KiB pages would cost the probe a TLB miss
 * per page that the decode does not pay. */
static float *huge_alloc(size_t bytes) {
    void *p = NULL;
    size_t huge = (size_t)2 << 20;
    bytes = (bytes + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void bandwidth(px_pool *pool, double *triad_gbs, double *read_gbs) {
    size_t n = (size_t)64 << 20; /* 256 MiB per array: far beyond the caches */
    bw_job j = {.a = huge_alloc(n * 4), .b = huge_alloc(n * 4), .c = huge_alloc(n * 4), .n = n};
    if (!j.a || !j.b || !j.c) {
        *triad_gbs = *read_gbs = 0;
        free(j.a);
        free(j.b);
        free(j.c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        j.a[i] = 0;
        j.b[i] = (float)(i & 1023);
        j.c[i] = 1.0f;
    }
    double best_t = 1e9, best_r = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        j.read_only = 0;
        double t0 = now_s();
        px_pool_run(pool, bw_worker, &j);
        double t1 = now_s();
        j.read_only = 1;
        px_pool_run(pool, bw_worker, &j);
        double t2 = now_s();
        best_t = PX_MIN(best_t, t1 - t0);
        best_r = PX_MIN(best_r, t2 - t1);
    }
    *triad_gbs = 3.0 * (double)n * 4 / best_t / 1e9;
    *read_gbs = (double)n * 4 / best_r / 1e9;
    free(j.a);
    free(j.b);
    free(j.c);
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 256) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int threads = 2, n_prompt = 512, n_gen = 32, reps = 2;
    int batches[16] = {1, 4, 16}, n_batches = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-m") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--prompt") == 0)
            n_prompt = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--gen") == 0)
            n_gen = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batches") == 0) {
            n_batches = parse_list(argv[i + 1], batches, 16);
            if (n_batches <= 0) {
                fprintf(stderr, "pollux-bench: bad --batches\n");
                return 2;
            }
        } else {
            fprintf(stderr, "pollux-bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!path || n_prompt <= 0 || n_prompt > 4096 || n_gen <= 0 || reps <= 0) {
        fprintf(stderr, "usage: pollux-bench -m FILE [--threads N] [--prompt 512] [--gen 32] "
                        "[--batches 1,4,16] [--reps 2]\n");
        return 2;
    }
    int max_b = 1;
    for (int i = 0; i < n_batches; i++)
        max_b = PX_MAX(max_b, batches[i]);
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = threads;
    mo.n_ctx = PX_MAX(n_prompt, 64) + n_gen + 16;
    mo.max_batch_tokens = PX_MAX(n_prompt, max_b);
    mo.max_logit_rows = max_b;
    int bs = 16, per_seq = (mo.n_ctx + bs - 1) / bs;
    mo.kv_blocks = (int64_t)per_seq * max_b;
    char err[512];
    double t_load = now_s();
    px_model *m = px_model_load(path, &mo, err, sizeof err);
    if (!m) {
        fprintf(stderr, "pollux-bench: %s: %s\n", path, err);
        return 1;
    }
    t_load = now_s() - t_load;
    const px_model_config *c = px_model_config_get(m);
    px_pool *pool = px_pool_create(threads);
    double triad, rd;
    bandwidth(pool, &triad, &rd);
    px_pool_destroy(pool);

    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)mo.max_batch_tokens);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)mo.max_batch_tokens);
    int32_t *seq = calloc((size_t)mo.max_batch_tokens, sizeof(int32_t));
    uint8_t *want = calloc((size_t)mo.max_batch_tokens, 1);
    int32_t *blocks = malloc(sizeof(int32_t) * (size_t)mo.kv_blocks);
    px_batch_seq *seqs = malloc(sizeof(px_batch_seq) * (size_t)max_b);
    float *logits = malloc(sizeof(float) * (size_t)c->n_vocab * (size_t)max_b);
    if (!tokens || !pos || !seq || !want || !blocks || !seqs || !logits) {
        fprintf(stderr, "pollux-bench: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < mo.kv_blocks; i++)
        blocks[i] = (int32_t)i;
    for (int s = 0; s < max_b; s++)
        seqs[s] = (px_batch_seq){blocks + (size_t)s * per_seq, per_seq};
    uint32_t r = 12345;
    for (int i = 0; i < mo.max_batch_tokens; i++) {
        r = r * 1103515245u + 12345u;
        tokens[i] = 4 + (int32_t)((r >> 8) % (uint32_t)(c->n_vocab - 4));
    }

    /* Prefill: one sequence of n_prompt tokens, logits for the last row. */
    double best_pf = 1e9;
    for (int rep = 0; rep < reps; rep++) {
        for (int i = 0; i < n_prompt; i++) {
            pos[i] = i;
            seq[i] = 0;
            want[i] = i == n_prompt - 1;
        }
        px_batch b = {.n_tok = n_prompt,
                      .tokens = tokens,
                      .pos = pos,
                      .seq = seq,
                      .want_logits = want,
                      .n_seqs = 1,
                      .seqs = seqs};
        double t0 = now_s();
        if (px_forward(m, &b, logits, err, sizeof err) < 0) {
            fprintf(stderr, "pollux-bench: %s\n", err);
            return 1;
        }
        best_pf = PX_MIN(best_pf, now_s() - t0);
    }
    printf("model: %s (%s), %d threads, load %.2f s\n", px_model_name(m), path, threads, t_load);
    printf("memory bandwidth: triad %.1f GB/s, read %.1f GB/s\n", triad, rd);
    printf("prefill: %d tokens in %.3f s = %.1f tok/s\n", n_prompt, best_pf, n_prompt / best_pf);

    /* Decode: B sequences, each one token per step, after a short prefill. */
    int64_t wbytes = px_model_weight_bytes_per_token(m);
    double tok1 = 0, best_frac = 0, frac_bw = 0;
    const size_t rn = (size_t)64 << 20; /* 256 MiB: the read passes around batch-1 runs */
    float *rbuf = huge_alloc(rn * 4);
    if (!rbuf) {
        fprintf(stderr, "pollux-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < rn; i++)
        rbuf[i] = (float)(i & 1023);
    for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        const int p0 = 16;
        for (int s = 0; s < B; s++) {
            for (int i = 0; i < p0; i++) {
                pos[i] = i;
                seq[i] = s;
                want[i] = 0;
            }
            px_batch b = {.n_tok = p0,
                          .tokens = tokens + s,
                          .pos = pos,
                          .seq = seq,
                          .want_logits = want,
                          .n_seqs = max_b,
                          .seqs = seqs};
            if (px_forward(m, &b, logits, err, sizeof err) < 0) {
                fprintf(stderr, "pollux-bench: %s\n", err);
                return 1;
            }
        }
        double best = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double bw0 = B == 1 ? read_pass(px_model_pool(m), rbuf, rn) : 0;
            double t0 = now_s();
            for (int g = 0; g < n_gen; g++) {
                for (int s = 0; s < B; s++) {
                    pos[s] = p0 + g;
                    seq[s] = s;
                    want[s] = 1;
                }
                px_batch b = {.n_tok = B,
                              .tokens = tokens + g,
                              .pos = pos,
                              .seq = seq,
                              .want_logits = want,
                              .n_seqs = max_b,
                              .seqs = seqs};
                if (px_forward(m, &b, logits, err, sizeof err) < 0) {
                    fprintf(stderr, "pollux-bench: %s\n", err);
                    return 1;
                }
            }
            double dt = now_s() - t0;
            best = PX_MIN(best, dt);
            if (B == 1) {
                double bw = 0.5 * (bw0 + read_pass(px_model_pool(m), rbuf, rn));
                double frac = (double)n_gen / dt / (bw * 1e9 / (double)wbytes);
                if (frac > best_frac) {
                    best_frac = frac;
                    frac_bw = bw;
                }
            }
        }
        double tps = (double)B * n_gen / best;
        if (B == 1) tok1 = tps;
        printf("decode batch %2d: %.1f tok/s aggregate, %.1f ms/step", B, tps, best / n_gen * 1e3);
        if (tok1 > 0 && B > 1) printf(", %.2fx batch 1", tps / tok1);
        printf("\n");
    }
    if (tok1 > 0) {
        double bound = rd * 1e9 / (double)wbytes;
        printf("weights read per token: %.1f MB; bandwidth bound %.1f tok/s; batch-1 decode at "
               "%.0f%% of it\n",
               (double)wbytes / 1e6, bound, 100.0 * tok1 / bound);
        printf("batch-1 decode at %.0f%% of the bound of the read passes around its run "
               "(%.1f GB/s, %.1f tok/s)\n",
               100.0 * best_frac, frac_bw, frac_bw * 1e9 / (double)wbytes);
    }
    free(rbuf);
    free(tokens);
    free(pos);
    free(seq);
    free(want);
    free(blocks);
    free(seqs);
    free(logits);
    px_model_free(m);
    return 0;
}
