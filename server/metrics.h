/* metrics.h — the Prometheus text exposition of /metrics.
 *
 * Names follow vLLM's (prefix "pollux:"): num_requests_running,
 * num_requests_waiting, kv_cache_usage_perc, num_preemptions_total,
 * prompt_tokens_total, generation_tokens_total, prefix_cache_queries_total,
 * prefix_cache_hits_total, request_success_total{finished_reason},
 * time_to_first_token_seconds, inter_token_latency_seconds,
 * e2e_request_latency_seconds, request_queue_time_seconds (histograms with
 * _bucket{le}, _sum, _count), plus the HTTP layer's own counters.
 * Pure function over a snapshot. Any thread. */
#ifndef PX_METRICS_H
#define PX_METRICS_H

#include <stdint.h>

#include "api/openai.h"
#include "scheduler/stats.h"

/* Counters kept by the HTTP layer (loop thread). */
typedef struct px_http_counters {
    uint64_t requests_total;        /* every HTTP request */
    uint64_t responses_by_class[6]; /* 1xx..5xx (index = status / 100) */
    uint64_t connections_open;      /* gauge */
    uint64_t rejected_queue_full;   /* 429s */
    uint64_t client_disconnects;    /* streams cancelled by the client going away */
} px_http_counters;

/* Appends the exposition text to out. model_name labels every series
 * (model_name="..."), escaped as Prometheus requires (NULL = ""). Any of c,
 * the histograms and h may be NULL: their families are left out. Also
 * rendered: kv_blocks{state="used|cached|free"} (the global layers' pool;
 * every layer's without sliding-window layers), kv_local_blocks{state=...}
 * (the sliding-window layers' pool, when there is one), engine_steps_total, and
 * request_success_total's finished_reason stop|length|abort|error (px
 * STOP, LENGTH, CANCELLED, ERROR). Returns 0 or -1 (out of memory; out
 * then holds a partial text). */
int px_metrics_render(px_buf *out, const char *model_name, const px_stats_counters *c,
                      const px_hist *ttft, const px_hist *itl, const px_hist *e2e,
                      const px_hist *queue, const px_http_counters *h);

#endif
