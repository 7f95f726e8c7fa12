/* pollux-sched-bench — the scheduler under concurrent load, no HTTP:
 * aggregate output tok/s and TTFT / inter-token latency percentiles at
 * several concurrency levels, and the prefix cache's effect on TTFT for
 * requests sharing a long system prompt.
 *
 *   pollux-sched-bench -m FILE [--threads N] [--conc 1,4,16,64]
 *                      [--prompt 128] [--gen 128] [--prefix 1000] [--prefix-reqs 4]
 *                      [--mmproj FILE [--images 2] [--image-streams 8]]
 *                      [--kv-cache-mb N] [--max-running 64]
 *
 * With --mmproj: the time to encode one image through the tower (alone),
 * then the inter-token latency of --image-streams text streams, first
 * alone, then while --images image requests arrive (distinct random
 * 640x480 images, submitted once the streams decode): the scheduler slices
 * the tower's work between decode steps, and this shows what the streams
 * feel. The tower must project to the model's d_model.
 *
 * --max-running sets the scheduler's limit of running sequences (at least
 * the wave's concurrency) and the logit rows the model is loaded with.
 * With --kv-cache-mb N: the KV cache is sized from N MiB as the daemon does
 * (for a model with sliding-window layers, a small local pool holding
 * windows and the rest for the global layers) instead of one full context
 * per request. The concurrency waves then run twice, first with both pools
 * as big as one cache of every layer would be (the capacity of the layout
 * before the local pool, in the same run), then with the daemon's split;
 * each prints the pools, the KV bytes a prompt + gen sequence needs and how
 * many fit, and per wave the peak of running sequences and the preemptions.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/model.h"
#include "engine/px.h"
#include "engine/vision.h"
#include "scheduler/request.h"
#include "scheduler/sched.h"

typedef struct breq {
    px_request *r;
    double t_submit, t_first, t_last;
    int n_tok, done;
    double *itl; /* (gen) inter-token gaps */
    int n_itl;
} breq;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t g_peak_running; /* most sequences running at once in run_wave */
static int g_max_running = 64; /* --max-running: the scheduler's limit (at least --conc) */
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static void on_event(px_request *r, void *arg) {
    (void)r;
    (void)arg;
    pthread_mutex_lock(&g_lock);
    pthread_cond_signal(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

static void drain(breq *b) {
    px_event *ev = px_request_take_events(b->r);
    double now = px_now();
    for (px_event *e = ev; e; e = e->next) {
        if (e->type == PX_EVENT_DELTA && e->n_tokens) {
            if (b->n_tok == 0)
                b->t_first = now;
            else
                b->itl[b->n_itl++] = now - b->t_last;
            b->t_last = now;
            b->n_tok++;
        } else if (e->type == PX_EVENT_DONE) {
            b->done = 1;
        }
    }
    px_event_free_list(ev);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

static void fill_prompt(int32_t *p, int n, uint32_t seed, int32_t n_vocab) {
    uint32_t s = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = 300 + (int32_t)((s >> 8) % (uint32_t)(n_vocab - 300));
    }
}

/* Runs n requests at once (prompt tokens given per request) and waits for
 * all; fills the per-request timings. Returns wall seconds. */
static double run_wave(px_sched *s, breq *b, int n, int32_t **prompts, int n_prompt, int gen) {
    char err[256];
    double t0 = px_now();
    for (int i = 0; i < n; i++) {
        b[i].r = px_request_create();
        px_request_set_prompt(b[i].r, prompts[i], n_prompt);
        b[i].r->max_tokens = gen;
        b[i].r->ignore_eos = 1;
        b[i].r->sampling.temperature = 0;
        b[i].r->notify = on_event;
        b[i].itl = calloc((size_t)gen, sizeof(double));
        b[i].t_submit = px_now();
        if (px_sched_submit(s, b[i].r, err, sizeof err) < 0) {
            fprintf(stderr, "submit: %s\n", err);
            exit(1);
        }
    }
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++) {
            if (!b[i].done) drain(&b[i]);
            done += b[i].done;
        }
        if (done == n) break;
        px_stats_counters c;
        px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
        g_peak_running = PX_MAX(g_peak_running, c.running);
        pthread_mutex_lock(&g_lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 2000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g_cond, &g_lock, &ts);
        pthread_mutex_unlock(&g_lock);
    }
    return px_now() - t0;
}

static void free_wave(breq *b, int n) {
    for (int i = 0; i < n; i++) {
        px_request_unref(b[i].r);
        free(b[i].itl);
    }
}

/* Percentiles of the text streams' gaps, optionally only those ending in
 * [t0, t1]. */
typedef struct gaps {
    double *v;
    int n;
} gaps;

static void collect_gaps(breq *b, int n, double t0, double t1, gaps *g) {
    for (int i = 0; i < n; i++) {
        double t = b[i].t_first;
        for (int k = 0; k < b[i].n_itl; k++) {
            t += b[i].itl[k];
            if (t >= t0 && t <= t1) g->v[g->n++] = b[i].itl[k];
        }
    }
}

static void image_bench(px_model *m, const char *mmproj, int n_images, int n_streams, int gen,
                        int n_prompt) {
    char err[512];
    px_vision *v = px_vision_load(mmproj, px_model_pool(m), err, sizeof err);
    if (!v) {
        fprintf(stderr, "%s: %s\n", mmproj, err);
        exit(1);
    }
    const px_vision_config *vc = px_vision_config_get(v);
    int32_t n_vocab = px_model_config_get(m)->n_vocab, rows = vc->n_tokens_out;
    const int W = 640, H = 480;
    uint8_t *rgb = malloc((size_t)W * H * 3);
    float *pix = malloc(sizeof(float) * 3 * (size_t)vc->image_size * (size_t)vc->image_size);
    float *out = malloc(sizeof(float) * (size_t)rows * (size_t)vc->n_embd_out);
    uint32_t s32 = 12345;
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        s32 = s32 * 1103515245u + 12345u;
        rgb[i] = (uint8_t)(s32 >> 16);
    }
    printf(
        "vision tower: %dx%d, patch %d, %d blocks, width %d, MLP %d, %d heads -> %d rows of %d\n",
        vc->image_size, vc->image_size, vc->patch_size, vc->n_layer, vc->n_embd, vc->n_ff,
        vc->n_head, rows, vc->n_embd_out);
    for (int rep = 0; rep < 2; rep++) {
        double t0 = px_now();
        if (px_vision_preprocess(v, rgb, W, H, pix) < 0 ||
            px_vision_encode(v, pix, out, err, sizeof err) < 0) {
            fprintf(stderr, "encode: %s\n", err);
            exit(1);
        }
        printf("encode one %dx%d image: %.2f s\n", W, H, px_now() - t0);
        fflush(stdout);
    }
    /* Text streams alone, then with images arriving. */
    for (int with_images = 0; with_images < 2; with_images++) {
        px_sched_opts so;
        px_sched_opts_init(&so);
        so.vision = v;
        so.prefix_cache = false;
        px_sched *s = px_sched_create(m, &so, err, sizeof err);
        if (!s || px_sched_start(s) < 0) {
            fprintf(stderr, "scheduler: %s\n", err);
            exit(1);
        }
        int n = n_streams + (with_images ? n_images : 0);
        breq *b = calloc((size_t)n, sizeof *b);
        int32_t *p = malloc(sizeof(int32_t) * (size_t)(n_prompt + rows + 2));
        double t_img0 = 0, t_img1 = 0;
        for (int i = 0; i < n; i++) {
            int img = i >= n_streams;
            if (img) {
                /* Wait until every text stream decodes before images come. */
                for (;;) {
                    int ready = 0;
                    for (int k = 0; k < n_streams; k++) {
                        drain(&b[k]);
                        ready += b[k].n_tok > 0;
                    }
                    if (ready == n_streams) break;
                    struct timespec ts = {0, 5000000};
                    nanosleep(&ts, NULL);
                }
                if (!t_img0) t_img0 = px_now();
            }
            int len = img ? 16 + rows + 2 : n_prompt;
            fill_prompt(p, len, (uint32_t)(with_images * 100 + i), n_vocab);
            b[i].r = px_request_create();
            px_request_set_prompt(b[i].r, p, len);
            b[i].r->max_tokens = img ? 4 : gen;
            b[i].r->ignore_eos = 1;
            b[i].r->sampling.temperature = 0;
            b[i].r->notify = on_event;
            b[i].itl = calloc((size_t)gen, sizeof(double));
            if (img) {
                uint8_t *copy = malloc((size_t)W * H * 3);
                memcpy(copy, rgb, (size_t)W * H * 3);
                copy[i] ^= 0xff; /* distinct images: no cache hits */
                px_request_add_image(b[i].r, 9, rows, 1000 + (uint64_t)i, W, H, copy);
            }
            b[i].t_submit = px_now();
            if (px_sched_submit(s, b[i].r, err, sizeof err) < 0) {
                fprintf(stderr, "submit: %s\n", err);
                exit(1);
            }
        }
        for (;;) {
            int done = 0;
            for (int i = 0; i < n; i++) {
                if (!b[i].done) drain(&b[i]);
                done += b[i].done;
            }
            if (with_images && !t_img1) {
                int all = 1;
                for (int i = n_streams; i < n; i++)
                    all &= b[i].done;
                if (all) t_img1 = px_now();
            }
            if (done == n) break;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        gaps g = {malloc(sizeof(double) * (size_t)n_streams * (size_t)gen), 0};
        collect_gaps(b, n_streams, with_images ? t_img0 : 0, with_images ? t_img1 : 1e30, &g);
        double mx = 0;
        for (int i = 0; i < g.n; i++)
            mx = PX_MAX(mx, g.v[i]);
        printf("%d text streams %s: %d gaps, ITL p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               n_streams, with_images ? "while images arrive" : "alone", g.n,
               pct(g.v, g.n, 0.5) * 1e3, pct(g.v, g.n, 0.99) * 1e3, mx * 1e3);
        if (with_images) {
            for (int i = n_streams; i < n; i++)
                printf("  image request %d: first token after %.2f s\n", i - n_streams,
                       b[i].t_first - b[i].t_submit);
            if (t_img1 > 0 && t_img0 > 0 && t_img1 - t_img0 < 1.0)
                printf("  (the images finished within a second)\n");
        }
        fflush(stdout);
        free(g.v);
        free(p);
        free_wave(b, n);
        free(b);
        px_sched_destroy(s);
    }
    free(rgb);
    free(pix);
    free(out);
    px_vision_free(v);
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 1024) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* The KV cache of model m: pools, bytes per sequence of n tokens, and how
 * many such sequences fit at once. */
static void print_kv(px_model *m, int n, const char *layout) {
    int bs = px_model_kv_block_size(m);
    int64_t g = px_model_kv_blocks(m), l = px_model_kv_blocks_local(m);
    int64_t bg = px_model_kv_block_bytes(m, 0), bl = px_model_kv_block_bytes(m, 1);
    int64_t ng = (n + bs - 1) / bs, nl = 0;
    if (l > 0) nl = PX_MIN(ng, (int64_t)(px_model_config_get(m)->sliding_window - 1) / bs + 2);
    int64_t fit = g / ng;
    if (nl > 0) fit = PX_MIN(fit, l / nl);
    printf("KV %s: global pool %lld blocks of %lld KiB, local pool %lld blocks of %lld KiB "
           "(%lld MiB); a %d-token sequence holds %lld KiB (every layer kept: %lld KiB), %lld "
           "fit at once\n",
           layout, (long long)g, (long long)(bg >> 10), (long long)l, (long long)(bl >> 10),
           (long long)((g * bg + l * bl) >> 20), n, (long long)((ng * bg + nl * bl) >> 10),
           (long long)((ng * (bg + bl)) >> 10), (long long)fit);
}

/* One wave per concurrency level; prints tok/s and latency percentiles
 * (and with show_kv the peak of running sequences and the preemptions). */
static int conc_waves(px_model *m, const int *conc, int n_conc, int n_prompt, int gen,
                      int show_kv) {
    char err[512];
    int32_t n_vocab = px_model_config_get(m)->n_vocab;
    printf("%5s %10s %10s %10s %10s %10s\n", "conc", "tok/s", "TTFT p50", "TTFT p99", "ITL p50",
           "ITL p99");
    for (int ci = 0; ci < n_conc; ci++) {
        int C = conc[ci];
        px_sched_opts so;
        px_sched_opts_init(&so);
        so.max_running = PX_MAX(g_max_running, C);
        so.prefix_cache = false; /* distinct prompts: measure batching alone */
        px_sched *s = px_sched_create(m, &so, err, sizeof err);
        if (!s || px_sched_start(s) < 0) {
            fprintf(stderr, "scheduler: %s\n", err);
            return 1;
        }
        int32_t **prompts = malloc(sizeof(int32_t *) * (size_t)C);
        for (int i = 0; i < C; i++) {
            prompts[i] = malloc(sizeof(int32_t) * (size_t)n_prompt);
            fill_prompt(prompts[i], n_prompt, (uint32_t)(ci * 1000 + i), n_vocab);
        }
        breq *b = calloc((size_t)C, sizeof *b);
        g_peak_running = 0;
        double wall = run_wave(s, b, C, prompts, n_prompt, gen);
        double *ttft = malloc(sizeof(double) * (size_t)C);
        double *itl = malloc(sizeof(double) * (size_t)C * (size_t)gen);
        int n_itl = 0;
        long total = 0;
        for (int i = 0; i < C; i++) {
            ttft[i] = b[i].t_first - b[i].t_submit;
            memcpy(itl + n_itl, b[i].itl, sizeof(double) * (size_t)b[i].n_itl);
            n_itl += b[i].n_itl;
            total += b[i].n_tok;
        }
        printf("%5d %10.1f %9.2fs %9.2fs %8.1fms %8.1fms\n", C, (double)total / wall,
               pct(ttft, C, 0.5), pct(ttft, C, 0.99), pct(itl, n_itl, 0.5) * 1e3,
               pct(itl, n_itl, 0.99) * 1e3);
        if (show_kv) {
            px_stats_counters c;
            px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
            printf("      peak running %lld, preemptions %llu\n", (long long)g_peak_running,
                   (unsigned long long)c.preemptions);
        }
        fflush(stdout);
        free_wave(b, C);
        free(b);
        free(ttft);
        free(itl);
        for (int i = 0; i < C; i++)
            free(prompts[i]);
        free(prompts);
        px_sched_destroy(s);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *mmproj = NULL;
    int threads = 2, n_prompt = 128, gen = 128, prefix = 1000, prefix_reqs = 4;
    int n_images = 2, image_streams = 8, kv_mb = 0;
    int conc[16] = {1, 4, 16, 64}, n_conc = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prompt"))
            n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen"))
            gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefix"))
            prefix = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefix-reqs"))
            prefix_reqs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mmproj"))
            mmproj = argv[i + 1];
        else if (!strcmp(argv[i], "--images"))
            n_images = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--image-streams"))
            image_streams = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--kv-cache-mb"))
            kv_mb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-running"))
            g_max_running = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conc")) {
            if ((n_conc = parse_list(argv[i + 1], conc, 16)) <= 0) {
                fprintf(stderr, "bad --conc\n");
                return 2;
            }
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!path || n_prompt <= 0 || gen <= 0 || prefix < 0 || prefix_reqs <= 0 || n_images < 1 ||
        image_streams < 1 || image_streams > 64 || kv_mb < 0 || g_max_running < 1 ||
        g_max_running > 512) {
        fprintf(stderr, "usage: pollux-sched-bench -m FILE [--threads N] [--conc 1,4,16,64] "
                        "[--prompt 128] [--gen 128] [--prefix 1000] [--prefix-reqs 4] "
                        "[--kv-cache-mb N] [--max-running 64]\n");
        return 2;
    }
    int max_conc = mmproj ? image_streams + n_images : 1;
    for (int i = 0; i < n_conc && !mmproj; i++)
        max_conc = PX_MAX(max_conc, conc[i]);
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = threads;
    mo.n_ctx = PX_MAX(n_prompt + gen, prefix + 64) + 16;
    mo.max_batch_tokens = 512;
    mo.max_logit_rows = PX_MAX(g_max_running, max_conc);
    int64_t per_seq = (n_prompt + gen + 15) / 16 + 1;
    mo.kv_blocks = PX_MAX(per_seq * max_conc, (int64_t)(mo.n_ctx / 16 + 1) * 2);
    char err[512];
    if (kv_mb > 0) {
        mo.kv_blocks = 0;
        mo.kv_cache_mb = kv_mb;
        mo.kv_local_seqs = g_max_running; /* as the daemon: max_running windows */
        if (!mmproj) {
            /* First the layout of one cache of every layer: equal pools. */
            mo.kv_blocks_local = (int64_t)1 << 40;
            px_model *m0 = px_model_load(path, &mo, err, sizeof err);
            if (!m0) {
                fprintf(stderr, "%s: %s\n", path, err);
                return 1;
            }
            printf("model %s, %d threads, prompts %d tokens, %d output tokens\n", px_model_name(m0),
                   threads, n_prompt, gen);
            print_kv(m0, n_prompt + gen, "as one cache of every layer");
            if (conc_waves(m0, conc, n_conc, n_prompt, gen, 1) != 0) return 1;
            px_model_free(m0);
            mo.kv_blocks_local = 0;
        }
    }
    px_model *m = px_model_load(path, &mo, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    int32_t n_vocab = px_model_config_get(m)->n_vocab;
    printf("model %s, %d threads, %lld KV blocks, prompts %d tokens, %d output tokens\n",
           px_model_name(m), threads, (long long)px_model_kv_blocks(m), n_prompt, gen);
    if (kv_mb > 0) print_kv(m, n_prompt + gen, "windowed local layers");
    if (mmproj) {
        image_bench(m, mmproj, n_images, image_streams, gen, n_prompt);
        px_model_free(m);
        return 0;
    }
    if (conc_waves(m, conc, n_conc, n_prompt, gen, kv_mb > 0) != 0) return 1;
    if (prefix > 0) {
        /* One request at a time: a shared system prompt plus 16 own tokens. */
        int n = prefix + 16;
        int32_t *p = malloc(sizeof(int32_t) * (size_t)n);
        for (int on = 1; on >= 0; on--) {
            px_sched_opts so;
            px_sched_opts_init(&so);
            so.prefix_cache = on;
            px_sched *s = px_sched_create(m, &so, err, sizeof err);
            if (!s || px_sched_start(s) < 0) {
                fprintf(stderr, "scheduler: %s\n", err);
                return 1;
            }
            double first = 0, sum = 0;
            for (int k = 0; k <= prefix_reqs; k++) {
                fill_prompt(p, prefix, 4242, n_vocab);
                fill_prompt(p + prefix, 16, 7000 + (uint32_t)k, n_vocab);
                breq b = {0};
                int32_t *pp = p;
                run_wave(s, &b, 1, &pp, n, 4);
                double t = b.t_first - b.t_submit;
                if (k == 0)
                    first = t;
                else
                    sum += t;
                free_wave(&b, 1);
            }
            printf("prefix cache %s: %d-token shared prompt, first request TTFT %.2fs, "
                   "next %d requests mean TTFT %.3fs\n",
                   on ? "on " : "off", prefix, first, prefix_reqs, sum / prefix_reqs);
            px_sched_destroy(s);
        }
        free(p);
    }
    px_model_free(m);
    return 0;
}
