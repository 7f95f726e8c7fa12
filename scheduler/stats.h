/* stats.h — the scheduler's counters and latency histograms for /metrics.
 *
 * Counters and gauges are plain fields written by the scheduler thread only
 * and read by other threads through px_stats_snapshot(), which copies them
 * under the stats lock. Histograms have fixed bucket bounds (seconds) like
 * Prometheus' and vLLM's: cumulative counts are computed at render time.
 * KV gauges: the kv_blocks_* figures are the global pool's (every layer's
 * blocks for a model without sliding-window layers; the pool that grows with
 * a sequence's length), kv_local_* the sliding-window layers' pool's.
 * Owns: its buckets. Threads: px_stats_* writers from the scheduler thread,
 * px_stats_snapshot from any thread. */
#ifndef PX_STATS_H
#define PX_STATS_H

#include <pthread.h>
#include <stdint.h>

#define PX_HIST_MAX_BUCKETS 24

typedef struct px_hist {
    int n_bounds;                             /* finite upper bounds, ascending */
    double bounds[PX_HIST_MAX_BUCKETS];       /* seconds */
    uint64_t counts[PX_HIST_MAX_BUCKETS + 1]; /* per bucket, last = +Inf */
    uint64_t count;                           /* observations */
    double sum;                               /* sum of observations */
} px_hist;

/* Returns 0 if bounds[0..n) is usable: 1 <= n <= PX_HIST_MAX_BUCKETS,
 * finite, > 0 (durations; bucket 0's lower edge is 0) and strictly
 * ascending; PX_EINVAL otherwise. */
int px_hist_check_bounds(const double *bounds, int n);
/* Initialises an empty histogram with a copy of the bounds. Bounds that fail
 * px_hist_check_bounds leave only the +Inf bucket (n_bounds 0): count and
 * sum still work, quantiles are NaN. */
void px_hist_init(px_hist *h, const double *bounds, int n);
/* Counts v in the first bucket whose bound is >= v (Prometheus' `le`), or in
 * +Inf. NaN is ignored so that sum stays meaningful. */
void px_hist_observe(px_hist *h, double v);
/* Value below which fraction q (0..1, clamped) of observations fall,
 * interpolated linearly inside the bucket (as Prometheus' histogram_quantile
 * does): 0 is the lower edge of the first bucket, a rank in +Inf gives the
 * highest finite bound, and q == 0 gives the lower edge of the first
 * non-empty bucket. NaN for an empty histogram (as Prometheus), q NaN or no
 * finite bounds. */
double px_hist_quantile(const px_hist *h, double q);

typedef struct px_stats_counters {
    int64_t running;               /* gauge: sequences running */
    int64_t waiting;               /* gauge: requests waiting */
    int64_t kv_blocks_total;       /* gauge: KV blocks of the global pool (see above) */
    int64_t kv_blocks_used;        /* gauge: referenced by a sequence */
    int64_t kv_blocks_cached;      /* gauge: unreferenced, kept for prefix reuse */
    int64_t kv_blocks_free;        /* gauge */
    int64_t kv_local_total;        /* gauge: the same for the local pool (0: none) */
    int64_t kv_local_used;         /* gauge */
    int64_t kv_local_cached;       /* gauge */
    int64_t kv_local_free;         /* gauge */
    uint64_t preemptions;          /* counter */
    uint64_t prompt_tokens;        /* counter: prompt tokens of finished prefills */
    uint64_t generation_tokens;    /* counter */
    uint64_t prefix_hit_tokens;    /* counter: prompt tokens served from the cache */
    uint64_t prefix_query_tokens;  /* counter: prompt tokens looked up */
    uint64_t requests_finished[5]; /* counter by px finish reason */
    uint64_t steps;                /* counter: engine steps */
    uint64_t images_encoded;       /* counter: images run through the vision tower */
    double last_step_time;         /* monotonic seconds of the last step (watchdog) */
} px_stats_counters;

typedef struct px_stats {
    pthread_mutex_t lock;
    px_stats_counters c;
    px_hist ttft;  /* time to first token */
    px_hist itl;   /* inter-token latency */
    px_hist e2e;   /* request end-to-end latency */
    px_hist queue; /* time waiting before admission */
} px_stats;

/* Zeroes the counters, creates the lock and sets the default bounds (vLLM's
 * buckets, listed with their reasons in stats.c): ttft 1 ms..2560 s,
 * itl 1 ms..80 s, e2e 0.3 s..7680 s, queue 1 ms..7680 s. */
void px_stats_init(px_stats *s);
void px_stats_deinit(px_stats *s);
/* Writers take the lock around a group of updates. */
void px_stats_lock(px_stats *s);
void px_stats_unlock(px_stats *s);
/* Copies everything under the lock (any thread); any output may be NULL. */
void px_stats_snapshot(px_stats *s, px_stats_counters *c, px_hist *ttft, px_hist *itl, px_hist *e2e,
                       px_hist *queue);

#endif
