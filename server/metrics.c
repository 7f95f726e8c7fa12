/* metrics.c — /metrics in Prometheus' text exposition format 0.0.4.
 *
 * Names are vLLM's with our "pollux:" prefix, so dashboards and alerts built
 * for vLLM work after a label rewrite; the KV block and HTTP series are our
 * own. Every family gets # HELP and # TYPE, counters end in _total,
 * histograms give cumulative _bucket{le} ending at "+Inf" (== _count), then
 * _sum and _count. Every series carries model_name. */
#include "server/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest decimal that reads back as v; Prometheus spells infinities
 * +Inf/-Inf and not-a-number NaN. */
static void fmt_double(char *out, size_t n, double v) {
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* Label value escaping (exposition format): \ " and newline. */
static int put_label_value(px_buf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (esc ? px_buf_append(b, esc, 2) : px_buf_append(b, p, 1)) return -1;
    }
    return 0;
}

typedef struct out {
    px_buf *b;
    px_buf labels; /* model_name="..." (escaped), shared by every series */
    int err;
} out;

static void family(out *o, const char *name, const char *type, const char *help) {
    if (o->err) return;
    o->err =
        px_buf_printf(o->b, "# HELP pollux:%s %s\n# TYPE pollux:%s %s\n", name, help, name, type);
}

/* One sample: pollux:<name>{model_name="..."[,extra]} value */
static void sample(out *o, const char *name, const char *extra, const char *value) {
    if (o->err) return;
    o->err = px_buf_printf(o->b, "pollux:%s{%s%s%s} %s\n", name, o->labels.data, extra ? "," : "",
                           extra ? extra : "", value);
}

static void sample_u(out *o, const char *name, const char *extra, uint64_t v) {
    char s[24];
    snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
    sample(o, name, extra, s);
}

static void sample_d(out *o, const char *name, const char *extra, double v) {
    char s[40];
    fmt_double(s, sizeof(s), v);
    sample(o, name, extra, s);
}

static void gauge(out *o, const char *name, const char *help, double v) {
    family(o, name, "gauge", help);
    sample_d(o, name, NULL, v);
}

static void counter(out *o, const char *name, const char *help, uint64_t v) {
    family(o, name, "counter", help);
    sample_u(o, name, NULL, v);
}

static void histogram(out *o, const char *name, const char *help, const px_hist *h) {
    if (!h) return;
    char series[96], le[64], v[40];
    family(o, name, "histogram", help);
    snprintf(series, sizeof(series), "%s_bucket", name);
    int nb = h->n_bounds < 0                     ? 0
             : h->n_bounds > PX_HIST_MAX_BUCKETS ? PX_HIST_MAX_BUCKETS
                                                 : h->n_bounds;
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += h->counts[i];
        fmt_double(v, sizeof(v), h->bounds[i]);
        snprintf(le, sizeof(le), "le=\"%s\"", v);
        sample_u(o, series, le, cum);
    }
    cum += h->counts[nb];
    sample_u(o, series, "le=\"+Inf\"", cum);
    snprintf(series, sizeof(series), "%s_sum", name);
    sample_d(o, series, NULL, h->sum);
    /* The format requires _count == the +Inf bucket; use the buckets' total
     * so the output is consistent even if a snapshot were not. */
    snprintf(series, sizeof(series), "%s_count", name);
    sample_u(o, series, NULL, cum);
}

/* vLLM's finished_reason values, indexed by px_finish (none is skipped). */
static const char *const finish_labels[5] = {NULL, "stop", "length", "abort", "error"};

int px_metrics_render(px_buf *outbuf, const char *model_name, const px_stats_counters *c,
                      const px_hist *ttft, const px_hist *itl, const px_hist *e2e,
                      const px_hist *queue, const px_http_counters *h) {
    out o = {.b = outbuf};
    if (px_buf_append(&o.labels, "model_name=\"", 12) ||
        put_label_value(&o.labels, model_name ? model_name : "") ||
        px_buf_append(&o.labels, "\"", 1)) {
        px_buf_free(&o.labels);
        return -1;
    }

    if (c) {
        gauge(&o, "num_requests_running", "Number of requests in the running batch.",
              (double)c->running);
        gauge(&o, "num_requests_waiting", "Number of requests waiting to be scheduled.",
              (double)c->waiting);
        double usage =
            c->kv_blocks_total > 0 ? (double)c->kv_blocks_used / (double)c->kv_blocks_total : 0.0;
        gauge(&o, "kv_cache_usage_perc",
              "KV-cache usage: fraction of blocks held by sequences (1 = 100 percent).", usage);
        family(&o, "kv_blocks", "gauge",
               "KV-cache blocks by state: used by a sequence, cached for prefix reuse, free.");
        sample_d(&o, "kv_blocks", "state=\"used\"", (double)c->kv_blocks_used);
        sample_d(&o, "kv_blocks", "state=\"cached\"", (double)c->kv_blocks_cached);
        sample_d(&o, "kv_blocks", "state=\"free\"", (double)c->kv_blocks_free);
        if (c->kv_local_total > 0) {
            /* Models with sliding-window layers: their own pool of blocks. */
            family(&o, "kv_local_blocks", "gauge",
                   "Sliding-window layers' KV-cache blocks by state (kv_blocks: the others').");
            sample_d(&o, "kv_local_blocks", "state=\"used\"", (double)c->kv_local_used);
            sample_d(&o, "kv_local_blocks", "state=\"cached\"", (double)c->kv_local_cached);
            sample_d(&o, "kv_local_blocks", "state=\"free\"", (double)c->kv_local_free);
        }
        counter(&o, "num_preemptions_total", "Cumulative number of sequence preemptions.",
                c->preemptions);
        counter(&o, "prompt_tokens_total", "Number of prefill tokens processed.", c->prompt_tokens);
        counter(&o, "generation_tokens_total", "Number of generation tokens processed.",
                c->generation_tokens);
        counter(&o, "prefix_cache_queries_total",
                "Prefix cache queries, in prompt tokens looked up.", c->prefix_query_tokens);
        counter(&o, "prefix_cache_hits_total", "Prefix cache hits, in prompt tokens reused.",
                c->prefix_hit_tokens);
        counter(&o, "images_encoded_total",
                "Images encoded by the vision tower (cached embeddings are not counted).",
                c->images_encoded);
        family(&o, "request_success_total", "counter",
               "Count of finished requests by finish reason.");
        for (int i = 1; i < 5; i++) {
            char l[48];
            snprintf(l, sizeof(l), "finished_reason=\"%s\"", finish_labels[i]);
            sample_u(&o, "request_success_total", l, c->requests_finished[i]);
        }
        counter(&o, "engine_steps_total", "Number of engine steps (batches run).", c->steps);
    }
    histogram(&o, "time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              ttft);
    histogram(&o, "inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              itl);
    histogram(&o, "e2e_request_latency_seconds",
              "Histogram of end to end request latency in seconds.", e2e);
    histogram(&o, "request_queue_time_seconds",
              "Histogram of time spent waiting before admission in seconds.", queue);
    if (h) {
        counter(&o, "http_requests_total", "HTTP requests received.", h->requests_total);
        family(&o, "http_responses_total", "counter", "HTTP responses by status class.");
        for (int i = 1; i <= 5; i++) {
            char l[16];
            snprintf(l, sizeof(l), "code=\"%dxx\"", i);
            sample_u(&o, "http_responses_total", l, h->responses_by_class[i]);
        }
        gauge(&o, "http_connections", "Open HTTP connections.", (double)h->connections_open);
        counter(&o, "http_rejected_queue_full_total",
                "Requests refused with 429 because the waiting queue was full.",
                h->rejected_queue_full);
        counter(&o, "client_disconnects_total", "Requests cancelled because the client went away.",
                h->client_disconnects);
    }
    px_buf_free(&o.labels);
    return o.err ? -1 : 0;
}
