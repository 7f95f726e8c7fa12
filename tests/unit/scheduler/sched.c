/* sched.c — tests of scheduler/sched.c: continuous batching gives every
 * sequence the tokens it gets alone (batching, chunked prefill, preemption,
 * prefix-cache hits, n > 1 choices), stop conditions, cancellation,
 * admission errors, and block accounting after every test. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/mkmodel.h"
#include "engine/model.h"
#include "engine/px.h"
#include "scheduler/request.h"
#include "scheduler/sched.h"
#include "sched_test.h"
#include "suites.h"

/* The matmul kernels are batch-invariant (a row's result does not depend on
 * the other rows in the call, the path or the thread count), and every other
 * op is per row, so a sequence's logits are bitwise the same alone or
 * batched, chunked or recomputed after preemption: tokens must match
 * exactly. TIE_EPS bounds other float comparisons (prompt logprobs against a
 * log-softmax computed here in double). */
#define TIE_EPS 1e-4f

char *g_model_path;

void make_model_once(void) {
    if (g_model_path) return;
    px_mkmodel_opts o;
    px_mkmodel_opts_tiny(&o, PX_ARCH_GEMMA3);
    o.wtype = PX_DTYPE_Q8_0;
    o.embd_type = PX_DTYPE_Q8_0;
    o.seed = 5;
    const char *dir = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/pxsched-%ld.gguf", dir && *dir ? dir : "/tmp", (long)getpid());
    g_model_path = strdup(buf);
    char err[256];
    ck_assert_msg(px_mkmodel_write(&o, g_model_path, err, sizeof err) == 0, "%s", err);
}

px_model *load_model(int64_t kv_blocks, int max_batch, int logit_rows) {
    make_model_once();
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = 2;
    mo.n_ctx = 512;
    mo.kv_blocks = kv_blocks;
    mo.max_batch_tokens = max_batch;
    mo.max_logit_rows = logit_rows;
    char err[256];
    px_model *m = px_model_load(g_model_path, &mo, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

static px_model *g_ref_model;

void reference_model(px_model *m, const int32_t *prompt, int n_prompt, int n_gen, ref_run *out) {
    int32_t n_vocab = px_model_config_get(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    int32_t blocks[64], seqi[256] = {0}, pos[256];
    uint8_t want[256] = {0};
    for (int i = 0; i < 64; i++)
        blocks[i] = i;
    px_batch_seq bs = {blocks, 64};
    for (int i = 0; i < n_prompt; i++) {
        pos[i] = i;
        want[i] = i == n_prompt - 1;
    }
    px_batch b = {.n_tok = n_prompt,
                  .tokens = prompt,
                  .pos = pos,
                  .seq = seqi,
                  .want_logits = want,
                  .n_seqs = 1,
                  .seqs = &bs};
    char err[256];
    ck_assert_msg(px_forward(m, &b, logits, err, sizeof err) == 0, "%s", err);
    out->n = 0;
    for (int g = 0; g < n_gen; g++) {
        int32_t best = 0;
        for (int32_t v = 1; v < n_vocab; v++)
            if (logits[v] > logits[best]) best = v;
        float second = -INFINITY;
        for (int32_t v = 0; v < n_vocab; v++)
            if (v != best && logits[v] > second) second = logits[v];
        out->tok[out->n] = best;
        out->gap[out->n++] = logits[best] - second;
        if (g + 1 == n_gen) break;
        int32_t t = best, p = n_prompt + g;
        uint8_t w = 1;
        px_batch d = {.n_tok = 1,
                      .tokens = &t,
                      .pos = &p,
                      .seq = seqi,
                      .want_logits = &w,
                      .n_seqs = 1,
                      .seqs = &bs};
        ck_assert_msg(px_forward(m, &d, logits, err, sizeof err) == 0, "%s", err);
    }
    free(logits);
}

/* The reference: greedy decoding of one prompt straight through the engine,
 * with one block table for every layer and nothing dropped. */
static void reference(const int32_t *prompt, int n_prompt, int n_gen, ref_run *out) {
    if (!g_ref_model) g_ref_model = load_model(64, 256, 1);
    reference_model(g_ref_model, prompt, n_prompt, n_gen, out);
}

void collect(outcome *o) {
    px_event *ev = px_request_take_events(o->r), *e;
    for (e = ev; e; e = e->next) {
        ck_assert_msg(!o->done, "event after DONE");
        if (e->type == PX_EVENT_DELTA || e->type == PX_EVENT_FINISH) {
            ck_assert_int_lt(e->choice, PX_MAX_CHOICES);
            ck_assert_msg(o->finish[e->choice] == PX_FINISH_NONE, "event after FINISH");
            if (e->text_len) {
                ck_assert_uint_le(o->text_len[e->choice] + e->text_len, 4095);
                memcpy(o->text[e->choice] + o->text_len[e->choice], e->text, e->text_len);
                o->text_len[e->choice] += e->text_len;
            }
        }
        if (e->type == PX_EVENT_DELTA && e->n_tokens == 1) {
            ck_assert_int_lt(o->n_tok[e->choice], 256);
            o->tok[e->choice][o->n_tok[e->choice]++] = e->token.token;
        } else if (e->type == PX_EVENT_FINISH) {
            o->finish[e->choice] = e->finish;
            o->n_finish++;
            if (e->message[0]) snprintf(o->message, sizeof o->message, "%s", e->message);
        } else if (e->type == PX_EVENT_DONE) {
            o->done = 1;
            o->usage_prompt = e->prompt_tokens;
            o->usage_completion = e->completion_tokens;
            o->usage_cached = e->cached_tokens;
        }
    }
    px_event_free_list(ev);
}

px_request *make_request(const int32_t *prompt, int n, int max_tokens) {
    px_request *r = px_request_create();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(px_request_set_prompt(r, prompt, n), 0);
    r->max_tokens = max_tokens;
    r->ignore_eos = 1;
    r->sampling.temperature = 0.0f;
    return r;
}

void make_prompt(int32_t *ids, int n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 7;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)(8 + (s >> 8) % 1400u);
    }
}

/* Steps until every outcome is done, checking the block accounting as it
 * goes; returns the number of steps. */
int run_all(px_sched *s, outcome *o, int n) {
    int steps = 0;
    char err[256];
    for (;;) {
        int live = px_sched_step(s);
        ck_assert_int_ge(live, 0);
        ck_assert_msg(px_sched_check(s, err, sizeof err) == 0, "step %d: %s", steps, err);
        for (int i = 0; i < n; i++)
            if (!o[i].done) collect(&o[i]);
        steps++;
        ck_assert_int_lt(steps, 100000);
        if (live == 0) break;
    }
    for (int i = 0; i < n; i++)
        ck_assert_msg(o[i].done, "request %d never finished", i);
    return steps;
}

/* Compares a greedy choice's tokens with the reference, accepting a
 * divergence only at a near-tie. */
void expect_tokens(const int32_t *got, int n_got, const ref_run *ref, const char *what) {
    ck_assert_msg(n_got == ref->n, "%s: %d tokens, expected %d", what, n_got, ref->n);
    for (int i = 0; i < n_got; i++)
        ck_assert_msg(got[i] == ref->tok[i], "%s: token %d is %d, expected %d (top-2 gap %g)", what,
                      i, got[i], ref->tok[i], (double)ref->gap[i]);
}

void expect_idle(px_sched *s) {
    char err[256];
    ck_assert_msg(px_sched_check(s, err, sizeof err) == 0, "%s", err);
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    ck_assert_int_eq(c.kv_blocks_used, 0);
    ck_assert_int_eq(c.running, 0);
    ck_assert_int_eq(c.waiting, 0);
    ck_assert_int_eq(c.kv_blocks_used + c.kv_blocks_cached + c.kv_blocks_free, c.kv_blocks_total);
    /* The sliding-window layers' pool too. */
    ck_assert_int_eq(c.kv_local_used, 0);
    ck_assert_int_eq(c.kv_local_used + c.kv_local_cached + c.kv_local_free, c.kv_local_total);
}

/* Pacing (itl_ratio) sizes prefill chunks from measured step times, so the
 * interleaving of a step-driven test depends on timing; tests that count
 * preemptions turn it off to make the schedule deterministic. */
double g_itl_ratio = 2.0;

px_sched *make_sched(px_model *m, int max_batch, int max_running, int prefix) {
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.itl_ratio = g_itl_ratio;
    so.max_batch_tokens = max_batch;
    so.max_running = max_running;
    so.prefix_cache = prefix;
    char err[256];
    px_sched *s = px_sched_create(m, &so, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

/* n requests with prompts of varied lengths, greedy, all submitted at once:
 * each must produce its solo reference tokens. */
static void equivalence(int n, int64_t kv_blocks, int max_batch, int max_running, int prefix,
                        int shared_prefix, uint64_t *preemptions, int64_t *hit_tokens) {
    px_model *m = load_model(kv_blocks, max_batch, max_running);
    px_sched *s = make_sched(m, max_batch, max_running, prefix);
    outcome *o = calloc((size_t)n, sizeof *o);
    ref_run *ref = calloc((size_t)n, sizeof *ref);
    for (int i = 0; i < n; i++) {
        int32_t prompt[160];
        int len = 5 + (i * 37) % 90, gen = 4 + (i * 13) % 28;
        make_prompt(prompt, len, (uint32_t)i + 1);
        if (shared_prefix) {
            int32_t common[64];
            make_prompt(common, 64, 999);
            memmove(prompt + 64, prompt, sizeof(int32_t) * (size_t)len);
            memcpy(prompt, common, sizeof common);
            len += 64;
        }
        reference(prompt, len, gen, &ref[i]);
        o[i].r = make_request(prompt, len, gen);
        char err[256];
        ck_assert_msg(px_sched_submit(s, o[i].r, err, sizeof err) == 0, "%s", err);
    }
    run_all(s, o, n);
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "request %d of %d", i, n);
        expect_tokens(o[i].tok[0], o[i].n_tok[0], &ref[i], what);
        ck_assert_int_eq(o[i].finish[0], PX_FINISH_LENGTH);
        ck_assert_int_eq(o[i].usage_completion, ref[i].n);
        ck_assert_int_eq(o[i].usage_prompt, o[i].r->n_prompt);
        px_request_unref(o[i].r);
    }
    expect_idle(s);
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    if (preemptions) *preemptions = c.preemptions;
    if (hit_tokens) *hit_tokens = (int64_t)c.prefix_hit_tokens;
    free(o);
    free(ref);
    px_sched_destroy(s);
    px_model_free(m);
}

START_TEST(test_alone_matches_reference) {
    equivalence(1, 64, 256, 8, 1, 0, NULL, NULL);
}
END_TEST

START_TEST(test_batched_matches_alone) {
    static const int sizes[] = {2, 5, 17, 33};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        equivalence(sizes[i], 512, 256, 64, 1, 0, NULL, NULL);
}
END_TEST

START_TEST(test_chunked_prefill) {
    /* A budget of 16 tokens: every prompt is prefilled in chunks while
     * others decode. */
    equivalence(9, 256, 16, 8, 1, 0, NULL, NULL);
}
END_TEST

START_TEST(test_preemption_with_tiny_cache) {
    uint64_t pre = 0;
    /* 24 blocks of 16 tokens; 12 requests of up to ~120 tokens each. */
    g_itl_ratio = 0.0;
    equivalence(12, 24, 128, 12, 1, 0, &pre, NULL);
    g_itl_ratio = 2.0;
    ck_assert_msg(pre > 0, "the tiny cache forced no preemption");
}
END_TEST

START_TEST(test_prefix_cache_hits) {
    int64_t hits = 0;
    equivalence(6, 256, 256, 8, 1, 1, NULL, &hits);
    /* Requests admitted in the same step cannot share what is not computed
     * yet; later admissions must reuse the shared 64-token prefix. */
    ck_assert_msg(hits >= 64, "only %lld prefix tokens were reused", (long long)hits);
    /* Without the cache: same outputs, no hits. */
    equivalence(6, 256, 256, 8, 0, 1, NULL, &hits);
    ck_assert_int_eq(hits, 0);
}
END_TEST

/* A second wave of requests with the same prefix reuses its blocks, and
 * reports them as cached prompt tokens. */
START_TEST(test_prefix_reuse_across_waves) {
    px_model *m = load_model(128, 256, 8);
    px_sched *s = make_sched(m, 256, 8, 1);
    int32_t prompt[100];
    make_prompt(prompt, 100, 42);
    ref_run ref;
    reference(prompt, 100, 8, &ref);
    for (int wave = 0; wave < 2; wave++) {
        outcome o = {0};
        o.r = make_request(prompt, 100, 8);
        char err[256];
        ck_assert_msg(px_sched_submit(s, o.r, err, sizeof err) == 0, "%s", err);
        run_all(s, &o, 1);
        expect_tokens(o.tok[0], o.n_tok[0], &ref, "wave");
        ck_assert_int_eq(o.usage_cached, wave == 0 ? 0 : 96); /* 6 full blocks of 16 */
        px_request_unref(o.r);
    }
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* Seeded sampling is reproducible under batching: a request with n = 4
 * choices in a batch of 7 gives, for choice c, exactly the tokens of the
 * same request run alone with seed + c; the same batch run twice gives the
 * same tokens; the choices differ from each other. */
static void run_seeded_mix(px_model *m, outcome *mix) {
    px_sched *s = make_sched(m, 256, 32, 1);
    int32_t prompt[40];
    make_prompt(prompt, 40, 77);
    char err[256];
    memset(mix, 0, sizeof(outcome) * 7);
    mix[0].r = make_request(prompt, 40, 20);
    mix[0].r->sampling.temperature = 0.9f;
    mix[0].r->sampling.top_k = 50;
    mix[0].r->sampling.seed = 100;
    mix[0].r->n_choices = 4;
    for (int i = 1; i < 7; i++) {
        int32_t p[30];
        make_prompt(p, 30, 500 + (uint32_t)i);
        mix[i].r = make_request(p, 30, 25);
        mix[i].r->sampling.temperature = 1.0f;
        mix[i].r->sampling.seed = (uint64_t)i;
    }
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(px_sched_submit(s, mix[i].r, err, sizeof err), 0);
    run_all(s, mix, 7);
    for (int i = 0; i < 7; i++)
        px_request_unref(mix[i].r);
    expect_idle(s);
    px_sched_destroy(s);
}

START_TEST(test_seeded_sampling_and_choices) {
    px_model *m = load_model(256, 256, 32);
    outcome a[7], b[7];
    run_seeded_mix(m, a);
    run_seeded_mix(m, b);
    for (int i = 0; i < 7; i++)
        for (int c = 0; c < (i == 0 ? 4 : 1); c++) {
            ck_assert_int_eq(a[i].n_tok[c], b[i].n_tok[c]);
            ck_assert_msg(memcmp(a[i].tok[c], b[i].tok[c], sizeof(int32_t) * 20) == 0,
                          "request %d choice %d is not reproducible", i, c);
        }
    /* Alone: choice c is the request with seed 100 + c. */
    px_sched *s = make_sched(m, 256, 32, 1);
    int32_t prompt[40];
    make_prompt(prompt, 40, 77);
    char err[256];
    for (int c = 0; c < 4; c++) {
        outcome solo = {0};
        solo.r = make_request(prompt, 40, 20);
        solo.r->sampling.temperature = 0.9f;
        solo.r->sampling.top_k = 50;
        solo.r->sampling.seed = 100 + (uint64_t)c;
        ck_assert_int_eq(px_sched_submit(s, solo.r, err, sizeof err), 0);
        run_all(s, &solo, 1);
        ck_assert_msg(memcmp(a[0].tok[c], solo.tok[0], sizeof(int32_t) * 20) == 0,
                      "choice %d differs from the solo request with seed %d", c, 100 + c);
        px_request_unref(solo.r);
    }
    px_sched_destroy(s);
    for (int c = 0; c < 4; c++) {
        ck_assert_int_eq(a[0].n_tok[c], 20);
        ck_assert_int_eq(a[0].finish[c], PX_FINISH_LENGTH);
        for (int d = 0; d < c; d++)
            ck_assert_msg(memcmp(a[0].tok[c], a[0].tok[d], sizeof(int32_t) * 20) != 0,
                          "choices %d and %d sampled the same tokens", c, d);
    }
    ck_assert_int_eq(a[0].usage_completion, 80);
    ck_assert_int_eq(a[0].n_finish, 4);
    px_model_free(m);
}
END_TEST

/* n greedy choices share the prompt's blocks and all give the reference. */
START_TEST(test_greedy_choices_share_prompt) {
    px_model *m = load_model(256, 256, 32);
    px_sched *s = make_sched(m, 256, 32, 1);
    int32_t prompt[40];
    make_prompt(prompt, 40, 78);
    ref_run ref;
    reference(prompt, 40, 20, &ref);
    char err[256];
    outcome o = {0};
    o.r = make_request(prompt, 40, 20);
    o.r->n_choices = 4;
    ck_assert_int_eq(px_sched_submit(s, o.r, err, sizeof err), 0);
    px_sched_step(s); /* prefill once, fork, first tokens */
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    /* 40 tokens = 3 blocks, shared by all four choices. */
    ck_assert_int_eq(c.kv_blocks_used, 3);
    run_all(s, &o, 1);
    for (int k = 0; k < 4; k++)
        expect_tokens(o.tok[k], o.n_tok[k], &ref, "greedy choice");
    px_request_unref(o.r);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* Stop strings: the text ends right before the stop string, even when it
 * spans tokens, and the finish reason is STOP. */
START_TEST(test_stop_string) {
    px_model *m = load_model(128, 256, 8);
    px_sched *s = make_sched(m, 256, 8, 1);
    int32_t prompt[20];
    make_prompt(prompt, 20, 3);
    char err[256];
    outcome full = {0};
    full.r = make_request(prompt, 20, 40);
    ck_assert_int_eq(px_sched_submit(s, full.r, err, sizeof err), 0);
    run_all(s, &full, 1);
    ck_assert_uint_gt(full.text_len[0], 12);
    /* A stop string taken from the middle of the text. */
    size_t at = full.text_len[0] / 2;
    char stop[6];
    memcpy(stop, full.text[0] + at, 5);
    stop[5] = 0;
    const char *first = memmem(full.text[0], full.text_len[0], stop, 5);
    size_t expect_len = (size_t)(first - full.text[0]);
    outcome o = {0};
    o.r = make_request(prompt, 20, 40);
    const char *strs[1] = {stop};
    size_t lens[1] = {5};
    ck_assert_int_eq(px_request_set_stop(o.r, strs, lens, 1), 0);
    ck_assert_int_eq(px_sched_submit(s, o.r, err, sizeof err), 0);
    run_all(s, &o, 1);
    ck_assert_int_eq(o.finish[0], PX_FINISH_STOP);
    ck_assert_uint_eq(o.text_len[0], expect_len);
    ck_assert(memcmp(o.text[0], full.text[0], expect_len) == 0);
    ck_assert_int_lt(o.n_tok[0], 40);
    px_request_unref(full.r);
    px_request_unref(o.r);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* Cancelling a running request frees its blocks at the next step and the
 * others carry on unchanged. */
START_TEST(test_cancel_running) {
    px_model *m = load_model(128, 256, 8);
    px_sched *s = make_sched(m, 256, 8, 1);
    int32_t pa[50], pb[30];
    make_prompt(pa, 50, 1);
    make_prompt(pb, 30, 2);
    ref_run rb;
    reference(pb, 30, 30, &rb);
    outcome o[2] = {{0}};
    o[0].r = make_request(pa, 50, 100);
    o[1].r = make_request(pb, 30, 30);
    char err[256];
    ck_assert_int_eq(px_sched_submit(s, o[0].r, err, sizeof err), 0);
    ck_assert_int_eq(px_sched_submit(s, o[1].r, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) {
        px_sched_step(s);
        collect(&o[0]);
        collect(&o[1]);
    }
    ck_assert_int_gt(o[0].n_tok[0], 0);
    px_request_cancel(o[0].r);
    px_sched_step(s);
    collect(&o[0]);
    ck_assert(o[0].done);
    ck_assert_int_eq(o[0].finish[0], PX_FINISH_CANCELLED);
    run_all(s, &o[1], 1);
    expect_tokens(o[1].tok[0], o[1].n_tok[0], &rb, "survivor");
    px_request_unref(o[0].r);
    px_request_unref(o[1].r);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

START_TEST(test_submit_errors) {
    px_model *m = load_model(16, 64, 4);
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.max_batch_tokens = 64;
    so.max_running = 4;
    so.max_waiting = 2;
    char err[256];
    px_sched *s = px_sched_create(m, &so, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    int32_t p[600];
    make_prompt(p, 600, 1);
    px_request *r = make_request(p, 0, 4);
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_EINVAL);
    px_request_unref(r);
    r = make_request(p, 600, 4); /* longer than the context of 512 */
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "context"));
    px_request_unref(r);
    r = make_request(p, 200, 100); /* 19 blocks: the cache has 16 */
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "KV blocks"));
    px_request_unref(r);
    r = make_request(p, 10, 4);
    r->prompt[3] = 1 << 20; /* token id beyond the vocabulary */
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_EINVAL);
    px_request_unref(r);
    /* Queue limit: two accepted, the third refused until one is admitted. */
    px_request *q[3];
    for (int i = 0; i < 3; i++)
        q[i] = make_request(p, 10, 2);
    ck_assert_int_eq(px_sched_submit(s, q[0], err, sizeof err), 0);
    ck_assert_int_eq(px_sched_submit(s, q[1], err, sizeof err), 0);
    ck_assert_int_eq(px_sched_submit(s, q[2], err, sizeof err), PX_EAGAIN);
    outcome o[2] = {{.r = q[0]}, {.r = q[1]}};
    run_all(s, o, 2);
    ck_assert_int_eq(px_sched_submit(s, q[2], err, sizeof err), 0);
    outcome o3 = {.r = q[2]};
    run_all(s, &o3, 1);
    for (int i = 0; i < 3; i++)
        px_request_unref(q[i]);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* A reader that never drains is cut off with an error instead of growing
 * the outbox without bound; an expired deadline ends a request too. */
START_TEST(test_slow_reader_and_deadline) {
    px_model *m = load_model(64, 64, 4);
    px_sched *s = make_sched(m, 64, 4, 1);
    int32_t p[10];
    make_prompt(p, 10, 9);
    char err[256];
    px_request *slow = make_request(p, 10, 200);
    slow->max_pending = 5;
    ck_assert_int_eq(px_sched_submit(s, slow, err, sizeof err), 0);
    for (int i = 0; i < 20; i++)
        px_sched_step(s);
    outcome o = {.r = slow};
    collect(&o);
    ck_assert(o.done);
    ck_assert_int_eq(o.finish[0], PX_FINISH_ERROR);
    ck_assert_ptr_nonnull(strstr(o.message, "not reading"));
    ck_assert_int_le(o.n_tok[0], 7);
    px_request *late = make_request(p, 10, 50);
    late->deadline = px_now() - 1.0;
    ck_assert_int_eq(px_sched_submit(s, late, err, sizeof err), 0);
    outcome o2 = {.r = late};
    run_all(s, &o2, 1);
    ck_assert_int_eq(o2.finish[0], PX_FINISH_ERROR);
    ck_assert_ptr_nonnull(strstr(o2.message, "deadline"));
    ck_assert_int_eq(o2.n_tok[0], 0);
    px_request_unref(slow);
    px_request_unref(late);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* Prompt logprobs (completions echo): one PROMPT event per prompt token
 * after the first, in order, before any token, matching the log-softmax of
 * a direct forward pass; the prompt is split over steps by the logit-row
 * limit. */
START_TEST(test_prompt_logprobs) {
    px_model *m = load_model(64, 64, 8);
    px_sched *s = make_sched(m, 64, 4, 1);
    int32_t prompt[40];
    make_prompt(prompt, 40, 31);
    /* Reference: all rows' logits of the prompt in one pass. */
    int32_t n_vocab = px_model_config_get(m)->n_vocab;
    px_model_free(g_ref_model); /* this test needs every row's logits */
    g_ref_model = load_model(64, 256, 64);
    float *logits = malloc(sizeof(float) * 40 * (size_t)n_vocab);
    int32_t blocks[4] = {0, 1, 2, 3}, pos[40], sq[40] = {0};
    uint8_t want[40];
    for (int i = 0; i < 40; i++) {
        pos[i] = i;
        want[i] = 1;
    }
    px_batch_seq bs = {blocks, 4};
    px_batch b = {.n_tok = 40,
                  .tokens = prompt,
                  .pos = pos,
                  .seq = sq,
                  .want_logits = want,
                  .n_seqs = 1,
                  .seqs = &bs};
    char err[256];
    ck_assert_msg(px_forward(g_ref_model, &b, logits, err, sizeof err) == 0, "%s", err);
    px_request *r = make_request(prompt, 40, 3);
    r->prompt_logprobs = 1;
    r->prompt_top = 3;
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), 0);
    int n_prompt_ev = 0, seen_delta = 0, done = 0;
    for (int steps = 0; steps < 1000 && !done; steps++) {
        px_sched_step(s);
        px_event *ev = px_request_take_events(r);
        for (px_event *e = ev; e; e = e->next) {
            if (e->type == PX_EVENT_PROMPT) {
                ck_assert_msg(!seen_delta, "prompt logprob after a token");
                ck_assert_int_eq(e->index, n_prompt_ev + 1);
                ck_assert_int_eq(e->token.token, prompt[e->index]);
                const float *row = logits + (size_t)(e->index - 1) * n_vocab;
                double mx = -INFINITY, sum = 0;
                for (int32_t v = 0; v < n_vocab; v++)
                    mx = row[v] > mx ? row[v] : mx;
                for (int32_t v = 0; v < n_vocab; v++)
                    sum += exp(row[v] - mx);
                double want_lp = row[prompt[e->index]] - mx - log(sum);
                ck_assert_msg(fabs(e->token.logprob - want_lp) < TIE_EPS,
                              "position %d: logprob %g, reference %g", e->index,
                              (double)e->token.logprob, want_lp);
                ck_assert_int_eq(e->token.n_top, 3);
                ck_assert(e->token.top_logprobs[0] >= e->token.top_logprobs[1]);
                ck_assert(e->token.top_logprobs[0] >= e->token.logprob - 1e-6f);
                n_prompt_ev++;
            } else if (e->type == PX_EVENT_DELTA) {
                seen_delta = 1;
            } else if (e->type == PX_EVENT_DONE) {
                done = 1;
            }
        }
        px_event_free_list(ev);
    }
    ck_assert(done);
    ck_assert_int_eq(n_prompt_ev, 39);
    ck_assert(seen_delta);
    free(logits);
    px_request_unref(r);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* --- stress: the threaded scheduler, 1,000 requests, random lengths and
 * cancellations, a tiny cache --- */

typedef struct stress_req {
    outcome o;
    ref_run ref;
    int cancel_after; /* tokens seen before cancelling; -1 never */
    pthread_mutex_t *wake_lock;
    pthread_cond_t *wake;
} stress_req;

static void stress_notify(px_request *r, void *arg) {
    (void)r;
    stress_req *q = arg;
    pthread_mutex_lock(q->wake_lock);
    pthread_cond_signal(q->wake);
    pthread_mutex_unlock(q->wake_lock);
}

START_TEST(test_stress_threaded) {
    const int N = 1000;
    px_model *m = load_model(40, 128, 16);
    px_sched *s = make_sched(m, 128, 16, 1);
    pthread_mutex_t wl = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t wc = PTHREAD_COND_INITIALIZER;
    stress_req *rq = calloc((size_t)N, sizeof *rq);
    uint32_t rnd = 12345;
    for (int i = 0; i < N; i++) {
        rnd = rnd * 1103515245u + 12345u;
        int len = 1 + (int)((rnd >> 8) % 60);
        rnd = rnd * 1103515245u + 12345u;
        int gen = 1 + (int)((rnd >> 8) % 24);
        rnd = rnd * 1103515245u + 12345u;
        rq[i].cancel_after = (rnd >> 8) % 10 == 0 ? (int)((rnd >> 12) % 6) : -1;
        int32_t p[64];
        /* A few shared prefixes so the prefix cache is exercised too. */
        make_prompt(p, len, (uint32_t)(i % 50));
        reference(p, len, gen, &rq[i].ref);
        rq[i].o.r = make_request(p, len, gen);
        rq[i].o.r->notify = stress_notify;
        rq[i].o.r->notify_arg = &rq[i];
        rq[i].wake_lock = &wl;
        rq[i].wake = &wc;
    }
    ck_assert_int_eq(px_sched_start(s), 0);
    char err[256];
    int submitted = 0, done = 0;
    double t_end = px_now() + 540.0; /* generous: sanitizer builds on a loaded 2-core machine */
    while (done < N) {
        ck_assert_msg(px_now() < t_end, "stress test timed out with %d/%d done", done, N);
        while (submitted < N && submitted - done < 64) {
            int rc = px_sched_submit(s, rq[submitted].o.r, err, sizeof err);
            if (rc == PX_EAGAIN) break;
            ck_assert_msg(rc == 0, "%s", err);
            submitted++;
        }
        pthread_mutex_lock(&wl);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&wc, &wl, &ts);
        pthread_mutex_unlock(&wl);
        done = 0;
        for (int i = 0; i < submitted; i++) {
            stress_req *q = &rq[i];
            if (!q->o.done) {
                collect(&q->o);
                if (q->cancel_after >= 0 && q->o.n_tok[0] >= q->cancel_after)
                    px_request_cancel(q->o.r);
            }
            done += q->o.done;
        }
    }
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        stress_req *q = &rq[i];
        if (q->o.finish[0] == PX_FINISH_CANCELLED) {
            cancelled++;
            ck_assert_int_ge(q->cancel_after, 0);
            /* What was produced before the cancel is still the right prefix. */
            for (int k = 0; k < q->o.n_tok[0] && k < q->ref.n; k++)
                ck_assert_int_eq(q->o.tok[0][k], q->ref.tok[k]);
        } else {
            ck_assert_int_eq(q->o.finish[0], PX_FINISH_LENGTH);
            char what[32];
            snprintf(what, sizeof what, "stress request %d", i);
            expect_tokens(q->o.tok[0], q->o.n_tok[0], &q->ref, what);
        }
        px_request_unref(q->o.r);
    }
    ck_assert_int_gt(cancelled, 0);
    /* The gauges are refreshed at the end of the step that posted the last
     * events: wait for that, boundedly. */
    px_stats_counters c;
    for (int tries = 0; tries < 200; tries++) {
        px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
        if (c.running == 0 && c.kv_blocks_used == 0) break;
        usleep(10000);
    }
    /* Preemption is asserted by the deterministic tiny-cache test; here it
     * depends on timing. */
    ck_assert_int_eq(c.running, 0);
    ck_assert_int_eq(c.waiting, 0);
    ck_assert_int_eq(c.kv_blocks_used, 0);
    px_sched_destroy(s);
    free(rq);
    px_model_free(m);
}
END_TEST

void drop_model(void) {
    if (g_model_path) {
        unlink(g_model_path);
        free(g_model_path);
        g_model_path = NULL;
    }
}

static void teardown(void) {
    if (g_ref_model) {
        px_model_free(g_ref_model);
        g_ref_model = NULL;
    }
    drop_model();
}

Suite *px_suite_sched(void) {
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("sched");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_alone_matches_reference);
    tcase_add_test(tc, test_batched_matches_alone);
    tcase_add_test(tc, test_chunked_prefill);
    tcase_add_test(tc, test_preemption_with_tiny_cache);
    tcase_add_test(tc, test_prefix_cache_hits);
    tcase_add_test(tc, test_prefix_reuse_across_waves);
    tcase_add_test(tc, test_seeded_sampling_and_choices);
    tcase_add_test(tc, test_greedy_choices_share_prompt);
    tcase_add_test(tc, test_stop_string);
    tcase_add_test(tc, test_cancel_running);
    tcase_add_test(tc, test_submit_errors);
    tcase_add_test(tc, test_slow_reader_and_deadline);
    tcase_add_test(tc, test_prompt_logprobs);
    tcase_add_test(tc, test_stress_threaded);
    suite_add_tcase(s, tc);
    return s;
}
