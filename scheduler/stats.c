/* stats.c — scheduler counters and fixed-bucket latency histograms.
 *
 * Histograms keep per-bucket (not cumulative) counts; a value lands in the
 * first bucket whose upper bound is >= the value, as Prometheus' `le` means.
 * Quantiles follow Prometheus' histogram_quantile(): linear interpolation
 * inside the bucket holding the rank, 0 as the lower edge of the first bucket,
 * the highest finite bound when the rank falls in +Inf. */
#include "stats.h"

#include <math.h>
#include <string.h>

#include "px.h"

/* Default bounds, in seconds, are vLLM's (v1 metrics loggers), cut to
 * PX_HIST_MAX_BUCKETS where needed. A CPU server's first token and inter-token
 * latencies sit in the same range as vLLM's GPU ones give or take a decade,
 * which these ranges span. */

/* vllm:time_to_first_token_seconds, 1 ms .. 2560 s. */
static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                     20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
/* vllm:inter_token_latency_seconds (and time_per_output_token), 10 ms .. 80 s.
 * Ours adds 1 ms and 5 ms in front: a small model on a CPU decodes faster
 * than 100 tokens/s and would otherwise fill only the first bucket. */
static const double itl_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                    0.15,  0.2,   0.3,  0.4,   0.5,  0.75,  1.0,
                                    2.5,   5.0,   7.5,  10.0,  20.0, 40.0,  80.0};
/* vllm:e2e_request_latency_seconds and request_queue_time_seconds share
 * these, 0.3 s .. 7680 s. The queue histogram adds 1 ms .. 0.1 s in front:
 * an idle server admits in well under 0.3 s and that is worth resolving. */
static const double e2e_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                    5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static const double queue_bounds[] = {0.001, 0.01,  0.1,   0.3,   0.5,   1.0,    2.5,
                                      5.0,   10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                      60.0,  120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

_Static_assert(PX_ARRAY_LEN(ttft_bounds) <= PX_HIST_MAX_BUCKETS, "ttft bounds");
_Static_assert(PX_ARRAY_LEN(itl_bounds) <= PX_HIST_MAX_BUCKETS, "itl bounds");
_Static_assert(PX_ARRAY_LEN(e2e_bounds) <= PX_HIST_MAX_BUCKETS, "e2e bounds");
_Static_assert(PX_ARRAY_LEN(queue_bounds) <= PX_HIST_MAX_BUCKETS, "queue bounds");

int px_hist_check_bounds(const double *bounds, int n) {
    if (n < 1 || n > PX_HIST_MAX_BUCKETS || !bounds) return PX_EINVAL;
    for (int i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || !(bounds[i] > 0.0)) return PX_EINVAL;
        if (i > 0 && !(bounds[i] > bounds[i - 1])) return PX_EINVAL;
    }
    return 0;
}

void px_hist_init(px_hist *h, const double *bounds, int n) {
    memset(h, 0, sizeof(*h));
    if (px_hist_check_bounds(bounds, n) < 0)
        return; /* only the +Inf bucket: counts and sum still work */
    h->n_bounds = n;
    memcpy(h->bounds, bounds, (size_t)n * sizeof(*bounds));
}

void px_hist_observe(px_hist *h, double v) {
    if (isnan(v)) return; /* would poison sum forever */
    /* Binary search for the first bound >= v; the +Inf bucket is index
     * n_bounds. */
    int lo = 0, hi = h->n_bounds;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (h->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    h->counts[lo]++;
    h->count++;
    h->sum += v;
}

double px_hist_quantile(const px_hist *h, double q) {
    if (h->count == 0 || h->n_bounds == 0 || isnan(q)) return NAN;
    if (q < 0.0) q = 0.0;
    if (q > 1.0) q = 1.0;
    double rank = q * (double)h->count;
    uint64_t before = 0; /* observations in the buckets below i */
    for (int i = 0; i <= h->n_bounds; i++) {
        uint64_t in = h->counts[i];
        /* Skip empty buckets so q == 0 gives the lower edge of the first
         * occupied one instead of 0/0. */
        if (in > 0 && (double)(before + in) >= rank) {
            if (i == h->n_bounds) return h->bounds[h->n_bounds - 1];
            double lo = i == 0 ? 0.0 : h->bounds[i - 1];
            double hi = h->bounds[i];
            return lo + (hi - lo) * ((rank - (double)before) / (double)in);
        }
        before += in;
    }
    /* Unreachable: count is the sum of counts (only if a caller broke that). */
    return h->bounds[h->n_bounds - 1];
}

void px_stats_init(px_stats *s) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    px_hist_init(&s->ttft, ttft_bounds, (int)PX_ARRAY_LEN(ttft_bounds));
    px_hist_init(&s->itl, itl_bounds, (int)PX_ARRAY_LEN(itl_bounds));
    px_hist_init(&s->e2e, e2e_bounds, (int)PX_ARRAY_LEN(e2e_bounds));
    px_hist_init(&s->queue, queue_bounds, (int)PX_ARRAY_LEN(queue_bounds));
}

void px_stats_deinit(px_stats *s) {
    pthread_mutex_destroy(&s->lock);
}

void px_stats_lock(px_stats *s) {
    pthread_mutex_lock(&s->lock);
}

void px_stats_unlock(px_stats *s) {
    pthread_mutex_unlock(&s->lock);
}

void px_stats_snapshot(px_stats *s, px_stats_counters *c, px_hist *ttft, px_hist *itl, px_hist *e2e,
                       px_hist *queue) {
    pthread_mutex_lock(&s->lock);
    if (c) *c = s->c;
    if (ttft) *ttft = s->ttft;
    if (itl) *itl = s->itl;
    if (e2e) *e2e = s->e2e;
    if (queue) *queue = s->queue;
    pthread_mutex_unlock(&s->lock);
}
