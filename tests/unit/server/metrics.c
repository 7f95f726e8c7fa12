/* metrics.c — tests of server/metrics.c: exact lines for a snapshot with
 * known numbers (cumulative buckets, +Inf, _sum/_count, finish reasons,
 * KV usage, HTTP counters), label escaping, and a small checker of the text
 * exposition format 0.0.4 that every rendering must pass (names, labels,
 * values, HELP/TYPE before samples, counters' _total, histogram shape). The
 * checker is itself shown to reject malformed text. */
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"
#include "server/metrics.h"
#include "suites.h"

/* ---- a checker for the exposition format -------------------------------- */

static bool name_ok(const char *s, size_t n, bool colon) {
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || (colon && s[0] == ':')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || (colon && s[i] == ':'))) return false;
    return true;
}

static bool value_ok(const char *s, double *v) {
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
        *v = !strcmp(s, "NaN") ? NAN : s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    if (!*s || isspace((unsigned char)s[0])) return false;
    char *end;
    *v = strtod(s, &end);
    /* strtod also takes "inf", "nan" and hex: the format doesn't */
    for (const char *p = s; p < end; p++)
        if (!(isdigit((unsigned char)*p) || strchr("+-.eE", *p))) return false;
    return *end == '\0';
}

typedef struct family {
    char name[256];
    char type[16];
    bool help, has_samples;
} family;

typedef struct checker {
    family fam[64];
    int n_fam;
    char series[256][256]; /* seen name{labels}, to catch duplicates */
    int n_series;
    /* current histogram's bucket state */
    char hist_key[256];
    double last_le, last_count;
    bool inf_seen;
    double inf_count;
    char err[256];
} checker;

static family *find_family(checker *k, const char *name, size_t n) {
    for (int i = 0; i < k->n_fam; i++)
        if (strlen(k->fam[i].name) == n && !strncmp(k->fam[i].name, name, n)) return &k->fam[i];
    return NULL;
}

static bool reject(checker *k, int line, const char *why) {
    snprintf(k->err, sizeof(k->err), "line %d: %s", line, why);
    return false;
}

static bool ends_with(const char *s, size_t n, const char *suf) {
    size_t m = strlen(suf);
    return n >= m && !strncmp(s + n - m, suf, m);
}

/* Returns true if text is valid exposition text; k->err says why not. */
static bool check_exposition(const char *text, checker *k) {
    memset(k, 0, sizeof(*k));
    if (!*text || text[strlen(text) - 1] != '\n') return reject(k, 0, "must end in a newline");
    int ln = 0;
    for (const char *p = text; *p;) {
        ln++;
        size_t len = strcspn(p, "\n");
        char line[1024];
        if (len >= sizeof(line)) return reject(k, ln, "line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + 1;
        if (line[0] == '#') {
            char kw[8], name[256];
            int off = 0;
            if (sscanf(line, "# %7s %255s %n", kw, name, &off) < 2 || off == 0)
                return reject(k, ln, "bad comment line");
            if (strcmp(kw, "HELP") && strcmp(kw, "TYPE")) continue; /* other comments are allowed */
            if (!name_ok(name, strlen(name), true))
                return reject(k, ln, "bad metric name in comment");
            family *f = find_family(k, name, strlen(name));
            if (!f) {
                if (k->n_fam == 64) return reject(k, ln, "too many families for the checker");
                f = &k->fam[k->n_fam++];
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (f->has_samples) return reject(k, ln, "HELP/TYPE after the family's samples");
            if (!strcmp(kw, "HELP")) {
                if (f->help) return reject(k, ln, "second HELP");
                f->help = true;
                for (const char *q = line + off; *q; q++)
                    if (*q == '\\' && q[1] != '\\' && q[1] != 'n')
                        return reject(k, ln, "bad escape in HELP");
            } else {
                const char *t = line + off;
                if (f->type[0]) return reject(k, ln, "second TYPE");
                if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
                    strcmp(t, "summary") && strcmp(t, "untyped"))
                    return reject(k, ln, "unknown TYPE");
                snprintf(f->type, sizeof(f->type), "%s", t);
                if (!strcmp(t, "counter") && !ends_with(name, strlen(name), "_total"))
                    return reject(k, ln, "counter name without _total");
            }
            continue;
        }
        if (!line[0]) return reject(k, ln, "empty line");
        /* name{label="value",...} value */
        size_t nl = strcspn(line, "{ ");
        if (!name_ok(line, nl, true)) return reject(k, ln, "bad metric name");
        const char *q = line + nl;
        char le[256] = "";
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t ll = strcspn(q, "=");
                if (!name_ok(q, ll, false) || q[ll] != '=' || q[ll + 1] != '"')
                    return reject(k, ln, "bad label name");
                bool is_le = ll == 2 && !strncmp(q, "le", 2);
                q += ll + 2;
                size_t vn = 0;
                char val[256];
                while (*q != '"') {
                    if (!*q) return reject(k, ln, "unterminated label value");
                    if (*q == '\\') {
                        if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
                            return reject(k, ln, "bad escape in label value");
                        q++;
                    }
                    if (vn + 1 < sizeof(val)) val[vn++] = *q;
                    q++;
                }
                val[vn] = '\0';
                if (is_le) snprintf(le, sizeof(le), "%s", val);
                q++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    return reject(k, ln, "expected ',' or '}'");
            }
            q++;
        }
        if (*q != ' ') return reject(k, ln, "expected a space before the value");
        double v;
        if (!value_ok(q + 1, &v)) return reject(k, ln, "bad value");
        /* duplicates */
        size_t key_len = (size_t)(q - line);
        if (key_len >= sizeof(k->series[0]) || k->n_series == 256)
            return reject(k, ln, "series too long for the checker");
        for (int i = 0; i < k->n_series; i++)
            if (!strncmp(k->series[i], line, key_len) && k->series[i][key_len] == '\0')
                return reject(k, ln, "duplicate series");
        memcpy(k->series[k->n_series], line, key_len);
        k->series[k->n_series++][key_len] = '\0';
        /* the family: the name itself, or a histogram's base name */
        family *f = find_family(k, line, nl);
        const char *suffix = NULL;
        if (!f) {
            static const char *const sufs[] = {"_bucket", "_sum", "_count"};
            for (int i = 0; i < 3 && !f; i++)
                if (ends_with(line, nl, sufs[i]) &&
                    (f = find_family(k, line, nl - strlen(sufs[i]))))
                    suffix = sufs[i];
            if (f && strcmp(f->type, "histogram") && strcmp(f->type, "summary"))
                return reject(k, ln, "suffixed sample of a non-histogram family");
        } else if (!strcmp(f->type, "histogram")) {
            return reject(k, ln, "histogram sample without _bucket/_sum/_count");
        }
        if (!f || !f->type[0] || !f->help)
            return reject(k, ln, "sample before its family's HELP and TYPE");
        f->has_samples = true;
        if (!strcmp(f->type, "counter") && v < 0) return reject(k, ln, "negative counter");
        if (suffix && !strcmp(suffix, "_bucket")) {
            double b;
            if (!le[0] || !value_ok(le, &b)) return reject(k, ln, "bucket without a valid le");
            /* the series without le identifies the histogram */
            char hk[256];
            snprintf(hk, sizeof(hk), "%.*s", (int)nl, line);
            if (strcmp(hk, k->hist_key)) {
                snprintf(k->hist_key, sizeof(k->hist_key), "%s", hk);
                k->last_le = -INFINITY;
                k->last_count = 0;
                k->inf_seen = false;
            }
            if (k->inf_seen || !(b > k->last_le))
                return reject(k, ln, "le not ascending or after +Inf");
            if (v < k->last_count) return reject(k, ln, "buckets not cumulative");
            k->last_le = b;
            k->last_count = v;
            if (isinf(b)) {
                k->inf_seen = true;
                k->inf_count = v;
            }
        } else if (suffix && !strcmp(suffix, "_count")) {
            if (!k->inf_seen) return reject(k, ln, "histogram without a +Inf bucket");
            if (v != k->inf_count) return reject(k, ln, "_count differs from the +Inf bucket");
        }
    }
    return true;
}

/* ---- rendering ---------------------------------------------------------- */

static const double bounds[] = {0.125, 0.5, 1.0};

typedef struct snap {
    px_stats_counters c;
    px_hist ttft, itl, e2e, queue;
    px_http_counters h;
} snap;

static void fill(snap *s) {
    memset(s, 0, sizeof(*s));
    s->c.running = 3;
    s->c.waiting = 7;
    s->c.kv_blocks_total = 16;
    s->c.kv_blocks_used = 4;
    s->c.kv_blocks_cached = 2;
    s->c.kv_blocks_free = 10;
    s->c.kv_local_total = 8;
    s->c.kv_local_used = 3;
    s->c.kv_local_cached = 1;
    s->c.kv_local_free = 4;
    s->c.preemptions = 5;
    s->c.prompt_tokens = 1234;
    s->c.generation_tokens = UINT64_MAX; /* printed exactly, not via double */
    s->c.prefix_hit_tokens = 40;
    s->c.prefix_query_tokens = 100;
    s->c.requests_finished[0] = 99; /* "none" is not a reason: never shown */
    s->c.requests_finished[1] = 11;
    s->c.requests_finished[2] = 12;
    s->c.requests_finished[3] = 13;
    s->c.requests_finished[4] = 14;
    s->c.steps = 77;
    px_hist_init(&s->ttft, bounds, 3);
    /* dyadic values so that _sum is exact: 0.0625 0.0625 0.125 | 0.25 | 0.75 | 2 */
    static const double obs[] = {0.0625, 0.0625, 0.125, 0.25, 0.75, 2.0};
    for (size_t i = 0; i < PX_ARRAY_LEN(obs); i++)
        px_hist_observe(&s->ttft, obs[i]);
    static const double tenth[] = {0.1, 0.2};
    px_hist_init(&s->itl, tenth, 2); /* decimal bounds print as written */
    px_hist_observe(&s->itl, 0.3);
    px_hist_init(&s->e2e, bounds, 0); /* no finite bounds: only +Inf */
    px_hist_observe(&s->e2e, 4.5);
    px_hist_init(&s->queue, bounds, 3); /* empty */
    s->h.requests_total = 20;
    s->h.responses_by_class[2] = 15;
    s->h.responses_by_class[4] = 4;
    s->h.responses_by_class[5] = 1;
    s->h.connections_open = 2;
    s->h.rejected_queue_full = 3;
    s->h.client_disconnects = 1;
}

static char *render(const snap *s, const char *model) {
    px_buf b = {0};
    ck_assert_int_eq(
        px_metrics_render(&b, model, &s->c, &s->ttft, &s->itl, &s->e2e, &s->queue, &s->h), 0);
    return b.data;
}

/* line is a whole line of text (first, middle or last). */
static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
    return false;
}

#define HAS_LINE(text, line) ck_assert_msg(has_line((text), line), "missing line: %s", line)

START_TEST(test_exact_lines) {
    snap s;
    fill(&s);
    char *t = render(&s, "gemma");
    checker k;
    ck_assert_msg(check_exposition(t, &k), "%s", k.err);
    HAS_LINE(t, "# HELP pollux:num_requests_running Number of requests in the running batch.");
    HAS_LINE(t, "# TYPE pollux:num_requests_running gauge");
    HAS_LINE(t, "pollux:num_requests_running{model_name=\"gemma\"} 3");
    HAS_LINE(t, "pollux:num_requests_waiting{model_name=\"gemma\"} 7");
    HAS_LINE(t, "pollux:kv_cache_usage_perc{model_name=\"gemma\"} 0.25");
    HAS_LINE(t, "pollux:kv_blocks{model_name=\"gemma\",state=\"used\"} 4");
    HAS_LINE(t, "pollux:kv_blocks{model_name=\"gemma\",state=\"cached\"} 2");
    HAS_LINE(t, "pollux:kv_blocks{model_name=\"gemma\",state=\"free\"} 10");
    HAS_LINE(t, "# TYPE pollux:kv_local_blocks gauge");
    HAS_LINE(t, "pollux:kv_local_blocks{model_name=\"gemma\",state=\"used\"} 3");
    HAS_LINE(t, "pollux:kv_local_blocks{model_name=\"gemma\",state=\"cached\"} 1");
    HAS_LINE(t, "pollux:kv_local_blocks{model_name=\"gemma\",state=\"free\"} 4");
    HAS_LINE(t, "# TYPE pollux:num_preemptions_total counter");
    HAS_LINE(t, "pollux:num_preemptions_total{model_name=\"gemma\"} 5");
    HAS_LINE(t, "pollux:prompt_tokens_total{model_name=\"gemma\"} 1234");
    HAS_LINE(t, "pollux:generation_tokens_total{model_name=\"gemma\"} 18446744073709551615");
    HAS_LINE(t, "pollux:prefix_cache_queries_total{model_name=\"gemma\"} 100");
    HAS_LINE(t, "pollux:prefix_cache_hits_total{model_name=\"gemma\"} 40");
    HAS_LINE(t, "pollux:request_success_total{model_name=\"gemma\",finished_reason=\"stop\"} 11");
    HAS_LINE(t, "pollux:request_success_total{model_name=\"gemma\",finished_reason=\"length\"} 12");
    HAS_LINE(t, "pollux:request_success_total{model_name=\"gemma\",finished_reason=\"abort\"} 13");
    HAS_LINE(t, "pollux:request_success_total{model_name=\"gemma\",finished_reason=\"error\"} 14");
    ck_assert_ptr_null(strstr(t, "\"none\""));
    ck_assert_ptr_null(strstr(t, " 99\n"));
    /* cumulative buckets: 3 at <= 0.125, 4 at <= 0.5, 5 at <= 1, 6 in all */
    HAS_LINE(t, "# TYPE pollux:time_to_first_token_seconds histogram");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_bucket{model_name=\"gemma\",le=\"0.125\"} 3");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_bucket{model_name=\"gemma\",le=\"0.5\"} 4");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_bucket{model_name=\"gemma\",le=\"1\"} 5");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_bucket{model_name=\"gemma\",le=\"+Inf\"} 6");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_sum{model_name=\"gemma\"} 3.25");
    HAS_LINE(t, "pollux:time_to_first_token_seconds_count{model_name=\"gemma\"} 6");
    HAS_LINE(t, "pollux:inter_token_latency_seconds_bucket{model_name=\"gemma\",le=\"0.1\"} 0");
    HAS_LINE(t, "pollux:inter_token_latency_seconds_bucket{model_name=\"gemma\",le=\"0.2\"} 0");
    HAS_LINE(t, "pollux:inter_token_latency_seconds_bucket{model_name=\"gemma\",le=\"+Inf\"} 1");
    HAS_LINE(t, "pollux:inter_token_latency_seconds_sum{model_name=\"gemma\"} 0.3");
    HAS_LINE(t, "pollux:e2e_request_latency_seconds_bucket{model_name=\"gemma\",le=\"+Inf\"} 1");
    HAS_LINE(t, "pollux:e2e_request_latency_seconds_sum{model_name=\"gemma\"} 4.5");
    HAS_LINE(t, "pollux:e2e_request_latency_seconds_count{model_name=\"gemma\"} 1");
    HAS_LINE(t, "pollux:request_queue_time_seconds_bucket{model_name=\"gemma\",le=\"+Inf\"} 0");
    HAS_LINE(t, "pollux:request_queue_time_seconds_sum{model_name=\"gemma\"} 0");
    HAS_LINE(t, "pollux:request_queue_time_seconds_count{model_name=\"gemma\"} 0");
    HAS_LINE(t, "pollux:http_requests_total{model_name=\"gemma\"} 20");
    HAS_LINE(t, "pollux:http_responses_total{model_name=\"gemma\",code=\"1xx\"} 0");
    HAS_LINE(t, "pollux:http_responses_total{model_name=\"gemma\",code=\"2xx\"} 15");
    HAS_LINE(t, "pollux:http_responses_total{model_name=\"gemma\",code=\"4xx\"} 4");
    HAS_LINE(t, "pollux:http_responses_total{model_name=\"gemma\",code=\"5xx\"} 1");
    HAS_LINE(t, "pollux:http_connections{model_name=\"gemma\"} 2");
    HAS_LINE(t, "pollux:http_rejected_queue_full_total{model_name=\"gemma\"} 3");
    HAS_LINE(t, "pollux:client_disconnects_total{model_name=\"gemma\"} 1");
    /* the +Inf bucket comes after the finite ones */
    const char *fin = strstr(t, "le=\"1\"} 5"), *inf = strstr(t, "le=\"+Inf\"} 6");
    ck_assert(fin && inf && fin < inf);
    ck_assert(strncmp(t, "# HELP ", 7) == 0);
    free(t);
}
END_TEST

START_TEST(test_escaping) {
    snap s;
    fill(&s);
    char *t = render(&s, "a\"b\\c\nd");
    checker k;
    ck_assert_msg(check_exposition(t, &k), "%s", k.err);
    HAS_LINE(t, "pollux:num_requests_running{model_name=\"a\\\"b\\\\c\\nd\"} 3");
    free(t);
    /* Odd but legal names pass through untouched. */
    t = render(&s, "gemma-3 4b/it:Q4_0 ünï");
    ck_assert_msg(check_exposition(t, &k), "%s", k.err);
    HAS_LINE(t, "pollux:num_requests_waiting{model_name=\"gemma-3 4b/it:Q4_0 ünï\"} 7");
    free(t);
}
END_TEST

START_TEST(test_optional_parts) {
    /* No counters, histograms or HTTP counters: nothing of them is shown,
     * and what is shown stays valid. */
    snap s;
    fill(&s);
    px_buf b = {0};
    ck_assert_int_eq(px_metrics_render(&b, "m", NULL, &s.ttft, NULL, NULL, NULL, NULL), 0);
    checker k;
    ck_assert_msg(check_exposition(b.data, &k), "%s", k.err);
    ck_assert(strstr(b.data, "pollux:time_to_first_token_seconds_count"));
    ck_assert_ptr_null(strstr(b.data, "num_requests_running"));
    ck_assert_ptr_null(strstr(b.data, "inter_token_latency"));
    ck_assert_ptr_null(strstr(b.data, "http_"));
    /* Appends: earlier content is kept. */
    size_t before = b.len;
    ck_assert_int_eq(px_metrics_render(&b, NULL, &s.c, NULL, NULL, NULL, NULL, NULL), 0);
    ck_assert_uint_gt(b.len, before);
    ck_assert(strstr(b.data + before, "pollux:num_requests_running{model_name=\"\"} 3\n"));
    px_buf_free(&b);
    /* No blocks at all: usage is 0, not NaN; no local pool, no family. */
    s.c.kv_blocks_total = 0;
    s.c.kv_local_total = 0;
    ck_assert_int_eq(px_metrics_render(&b, "m", &s.c, NULL, NULL, NULL, NULL, NULL), 0);
    HAS_LINE(b.data, "pollux:kv_cache_usage_perc{model_name=\"m\"} 0");
    ck_assert_ptr_null(strstr(b.data, "kv_local_blocks"));
    px_buf_free(&b);
}
END_TEST

START_TEST(test_default_buckets_valid) {
    /* The scheduler's real bounds (vLLM's) render as valid, ascending le. */
    px_stats st;
    px_stats_init(&st);
    px_stats_lock(&st);
    px_hist_observe(&st.ttft, 0.02);
    px_hist_observe(&st.itl, 1e9);
    px_hist_observe(&st.e2e, 0.0);
    px_stats_unlock(&st);
    px_stats_counters c;
    px_hist h[4];
    px_stats_snapshot(&st, &c, &h[0], &h[1], &h[2], &h[3]);
    px_buf b = {0};
    ck_assert_int_eq(px_metrics_render(&b, "m", &c, &h[0], &h[1], &h[2], &h[3], NULL), 0);
    checker k;
    ck_assert_msg(check_exposition(b.data, &k), "%s", k.err);
    /* every bound reads back as the double it came from, in few digits */
    const char *p = b.data;
    int n_le = 0;
    while ((p = strstr(p, "time_to_first_token_seconds_bucket{model_name=\"m\",le=\""))) {
        p += strlen("time_to_first_token_seconds_bucket{model_name=\"m\",le=\"");
        if (n_le < h[0].n_bounds) {
            ck_assert_double_eq(strtod(p, NULL), h[0].bounds[n_le]);
            ck_assert_msg(strspn(p, "0123456789.e-") < 12, "long le: %.30s", p);
        }
        n_le++;
    }
    ck_assert_int_eq(n_le, h[0].n_bounds + 1);
    px_buf_free(&b);
    px_stats_deinit(&st);
}
END_TEST

START_TEST(test_checker_rejects) {
    static const char *const bad[] = {
        "pollux:x{a=\"b} 1\n",                          /* unterminated */
        "# HELP 1bad x\n# TYPE 1bad gauge\n1bad 2\n",   /* name */
        "# HELP x h\n# TYPE x gauge\nx{a=\"b\"} abc\n", /* value */
        "# HELP x h\n# TYPE x gauge\nx{a=\"\\q\"} 1\n", /* escape */
        "# HELP x h\n# TYPE x gauge\nx{a=\"b\"}1\n",    /* no space */
        "# HELP x h\n# TYPE x gauge\nx{1a=\"b\"} 1\n",  /* label name */
        "# HELP x h\n# TYPE x gauge\nx 1\nx 2\n",       /* duplicate */
        "x 1\n",                                        /* no HELP/TYPE */
        "# HELP x h\n# TYPE x counter\nx 1\n",          /* counter without _total */
        "# HELP x h\n# TYPE x gauge\nx inf\n",          /* strtod's spelling */
        "# HELP x h\n# TYPE x gauge\nx 1",              /* no final newline */
        ("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
         "h_bucket{le=\"+Inf\"} 2\nh_count 2\n"),                               /* not cumulative */
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2\n",    /* no +Inf */
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", /* count */
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n", /* order */
    };
    checker k;
    for (size_t i = 0; i < PX_ARRAY_LEN(bad); i++)
        ck_assert_msg(!check_exposition(bad[i], &k), "checker accepted case %zu", i);
    ck_assert(check_exposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                               "h_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n",
                               &k));
}
END_TEST

Suite *px_suite_metrics(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_exact_lines);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_optional_parts);
    tcase_add_test(tc, test_default_buckets_valid);
    tcase_add_test(tc, test_checker_rejects);
    suite_add_tcase(s, tc);
    return s;
}
