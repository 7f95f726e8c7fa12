/* window.c — tests of the sliding-window layers' own KV pool: the engine
 * reads local layers through their own table and never a block before the
 * window; the scheduler keeps only the window's local blocks of a sequence,
 * fits sequences a budget holding every layer could not, reuses slid-out
 * local blocks through the prefix cache (or recomputes what was evicted),
 * and a llama model (no local layer) keeps one pool. Every sequence gives
 * the tokens of a plain engine run with a cache big enough for everything,
 * and both pools are back to idle after every test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/mkmodel.h"
#include "engine/px.h"
#include "sched_test.h"
#include "suites.h"

#define WIN 32 /* the tiny gemma3 model's sliding window */
#define BS 16  /* tokens per block */

static px_model *g_ref;

/* The reference for the tiny gemma3 model: one table for every layer,
 * nothing ever dropped. */
static void reference(const int32_t *prompt, int n_prompt, int n_gen, ref_run *out) {
    if (!g_ref) g_ref = load_model(64, 256, 1);
    reference_model(g_ref, prompt, n_prompt, n_gen, out);
}

static px_model *load_pools(int64_t global, int64_t local, int64_t mb, int local_seqs,
                            int max_batch, int logit_rows) {
    make_model_once();
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = 2;
    mo.n_ctx = 512;
    mo.kv_blocks = global;
    mo.kv_blocks_local = local;
    mo.kv_cache_mb = mb;
    mo.kv_local_seqs = local_seqs;
    mo.max_batch_tokens = max_batch;
    mo.max_logit_rows = logit_rows;
    char err[256];
    px_model *m = px_model_load(g_model_path, &mo, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    return m;
}

static px_stats_counters counters(px_sched *s) {
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    return c;
}

/* Runs one greedy request alone to the end; returns its outcome (the
 * caller unrefs o->r). */
static void run_one(px_sched *s, outcome *o, const int32_t *p, int n, int gen) {
    memset(o, 0, sizeof *o);
    o->r = make_request(p, n, gen);
    char err[256];
    ck_assert_msg(px_sched_submit(s, o->r, err, sizeof err) == 0, "%s", err);
    run_all(s, o, 1);
    ck_assert_int_eq(o->n_tok[0], gen);
}

/* --- the engine contract --- */

/* Pool sizes from a MiB budget: the local pool gets kv_local_seqs
 * sequences' windows plus a batch, the rest goes to the global pool; a
 * forward pass whose local table has -1 before the window gives bitwise the
 * logits of the full table, and -1 inside the window is refused. */
START_TEST(test_engine_local_table) {
    px_model *m = load_pools(0, 0, 1, 4, 64, 4);
    /* Blocks cost 2 KiB per layer here (16 x 32 F16, K and V); 1 global and
     * 6 local layers. Local: 4 * ((32 - 1) / 16 + 3) + 64 / 16 = 20. */
    ck_assert_int_eq(px_model_kv_block_bytes(m, 0), 2048);
    ck_assert_int_eq(px_model_kv_block_bytes(m, 1), 6 * 2048);
    ck_assert_int_eq(px_model_kv_blocks_local(m), 20);
    ck_assert_int_eq(px_model_kv_blocks(m), (1024 - 20 * 12) / 2);
    px_model_free(m);
    /* A budget too small for the wanted local pool: two equal pools, as
     * one table for every layer would have. */
    m = load_pools(0, 0, 1, 64, 64, 4);
    ck_assert_int_eq(px_model_kv_blocks(m), 1024 / 14);
    ck_assert_int_eq(px_model_kv_blocks_local(m), 1024 / 14);
    px_model_free(m);

    m = load_pools(40, 8, 0, 0, 128, 1);
    ck_assert_int_eq(px_model_kv_blocks(m), 40);
    ck_assert_int_eq(px_model_kv_blocks_local(m), 8);
    int32_t n_vocab = px_model_config_get(m)->n_vocab;
    int32_t p[100], pos[100], sq[100] = {0};
    uint8_t want[100] = {0};
    make_prompt(p, 100, 3);
    for (int i = 0; i < 100; i++)
        pos[i] = i;
    want[99] = 1;
    float *a = malloc(sizeof(float) * (size_t)n_vocab),
          *b = malloc(sizeof(float) * (size_t)n_vocab);
    int32_t g[7] = {0, 1, 2, 3, 4, 5, 6}, l[7] = {7, 6, 5, 4, 3, 2, 1};
    px_batch_seq gs = {g, 7}, ls = {l, 7};
    px_batch bt = {.n_tok = 96,
                   .tokens = p,
                   .pos = pos,
                   .seq = sq,
                   .want_logits = want,
                   .n_seqs = 1,
                   .seqs = &gs,
                   .lseqs = &ls};
    char err[256];
    /* Positions 0..95, then 96..99 with the full table. */
    ck_assert_msg(px_forward(m, &bt, NULL, err, sizeof err) == 0, "%s", err);
    bt.n_tok = 4;
    bt.tokens = p + 96;
    bt.pos = pos + 96;
    bt.want_logits = want + 96;
    ck_assert_msg(px_forward(m, &bt, a, err, sizeof err) == 0, "%s", err);
    /* Again with blocks 0..3 dropped: row 96 reads from 65 (block 4) on. */
    for (int i = 0; i < 4; i++)
        l[i] = -1;
    ck_assert_msg(px_forward(m, &bt, b, err, sizeof err) == 0, "%s", err);
    ck_assert(memcmp(a, b, sizeof(float) * (size_t)n_vocab) == 0);
    l[4] = -1; /* inside the window */
    ck_assert_int_eq(px_forward(m, &bt, b, err, sizeof err), PX_EINVAL);
    l[4] = 8; /* beyond the local pool */
    ck_assert_int_eq(px_forward(m, &bt, b, err, sizeof err), PX_EINVAL);
    /* Without local tables, global ids must fit the local pool too. */
    bt.lseqs = NULL;
    ck_assert_int_eq(px_forward(m, &bt, b, err, sizeof err), 0);
    g[6] = 20;
    ck_assert_int_eq(px_forward(m, &bt, b, err, sizeof err), PX_EINVAL);
    free(a);
    free(b);
    px_model_free(m);
}
END_TEST

/* --- the scheduler --- */

/* A sequence many windows long holds at most its window's local blocks
 * ((WIN - 1) / BS + 2 while decoding; a prefill chunk of n adds its own
 * blocks) at every step, with the reference's tokens; the blocks it dropped
 * stay in the prefix cache. */
START_TEST(test_long_sequence_holds_window) {
    static const int batches[] = {16, 64};
    int32_t prompt[100];
    make_prompt(prompt, 100, 17);
    ref_run ref;
    reference(prompt, 100, 200, &ref);
    for (int k = 0; k < 2; k++) {
        int mb = batches[k];
        px_model *m = load_pools(64, 0, 0, 0, mb, 4);
        px_sched *s = make_sched(m, mb, 4, 1);
        ck_assert_int_eq(counters(s).kv_local_total, 64);
        outcome o = {0};
        o.r = make_request(prompt, 100, 200);
        char err[256];
        ck_assert_int_eq(px_sched_submit(s, o.r, err, sizeof err), 0);
        int64_t max_dec = 0, max_pre = 0, max_global = 0;
        for (int steps = 0; !o.done; steps++) {
            ck_assert_int_lt(steps, 1000);
            int decoding = o.n_tok[0] > 0;
            ck_assert_int_ge(px_sched_step(s), 0);
            ck_assert_msg(px_sched_check(s, err, sizeof err) == 0, "%s", err);
            /* The gauges are taken after the step dropped what slid out: one
             * block more is held during the step at most, and the next
             * reserve drops before it allocates. */
            px_stats_counters c = counters(s);
            if (decoding)
                max_dec = PX_MAX(max_dec, c.kv_local_used);
            else
                max_pre = PX_MAX(max_pre, c.kv_local_used);
            max_global = PX_MAX(max_global, c.kv_blocks_used);
            collect(&o);
        }
        expect_tokens(o.tok[0], o.n_tok[0], &ref, "long sequence");
        ck_assert_int_le(max_dec, (WIN - 1) / BS + 2);
        ck_assert_int_ge(max_dec, WIN / BS);
        ck_assert_int_le(max_pre, (WIN + mb - 2) / BS + 2);
        ck_assert_int_eq(max_global, (299 + BS - 1) / BS); /* 299 positions computed */
        /* Every full block was published, so the dropped ones are cached. */
        px_stats_counters c = counters(s);
        ck_assert_int_eq(c.kv_local_cached, 299 / BS);
        px_request_unref(o.r);
        expect_idle(s);
        px_sched_destroy(s);
        px_model_free(m);
    }
}
END_TEST

/* A 1 MiB budget holds 73 blocks of every layer (1,168 tokens); eight
 * sequences of 300 tokens need 152. With the local layers windowed they all
 * run at once and give the reference's tokens. A local pool too small for
 * one prefill chunk is refused at submit. */
START_TEST(test_budget_fits_with_windows) {
    px_model *m = load_pools(0, 0, 1, 8, 64, 8);
    int64_t old_blocks = 1024 / 14; /* 14 KiB per block of every layer */
    ck_assert_int_eq(old_blocks, 73);
    ck_assert_int_ge(px_model_kv_blocks(m), 8 * 19);
    px_sched *s = make_sched(m, 64, 8, 1);
    outcome o[8];
    ref_run ref[8];
    char err[256];
    for (int i = 0; i < 8; i++) {
        int32_t p[100];
        make_prompt(p, 100, 300 + (uint32_t)i);
        reference(p, 100, 200, &ref[i]);
        memset(&o[i], 0, sizeof o[i]);
        o[i].r = make_request(p, 100, 200);
        ck_assert_msg(px_sched_submit(s, o[i].r, err, sizeof err) == 0, "%s", err);
    }
    int64_t max_global = 0, max_local = 0;
    for (int steps = 0;; steps++) {
        ck_assert_int_lt(steps, 5000);
        int live = px_sched_step(s);
        ck_assert_int_ge(live, 0);
        ck_assert_msg(px_sched_check(s, err, sizeof err) == 0, "%s", err);
        px_stats_counters c = counters(s);
        max_global = PX_MAX(max_global, c.kv_blocks_used);
        max_local = PX_MAX(max_local, c.kv_local_used);
        for (int i = 0; i < 8; i++)
            collect(&o[i]);
        if (live == 0) break;
    }
    for (int i = 0; i < 8; i++) {
        ck_assert(o[i].done);
        ck_assert_int_eq(o[i].finish[0], PX_FINISH_LENGTH);
        expect_tokens(o[i].tok[0], o[i].n_tok[0], &ref[i], "windowed budget");
        px_request_unref(o[i].r);
    }
    /* More KV in use at once than the old layout had at all. */
    ck_assert_int_gt(max_global, old_blocks);
    ck_assert_int_le(max_local, px_model_kv_blocks_local(m));
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);

    /* 6 local blocks: a chunk of 64 after a window of 32 needs 7. */
    m = load_pools(64, 6, 0, 0, 64, 8);
    s = make_sched(m, 64, 8, 1);
    int32_t p[100];
    make_prompt(p, 100, 1);
    px_request *r = make_request(p, 100, 4);
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err, "sliding-window"));
    px_request_unref(r);
    /* Short enough for the local blocks it holds: accepted and correct. */
    ref_run rr;
    reference(p, 20, 4, &rr);
    outcome os;
    run_one(s, &os, p, 20, 4);
    expect_tokens(os.tok[0], os.n_tok[0], &rr, "short");
    px_request_unref(os.r);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* Prefix-cache hits through local blocks that slid out of their window:
 * A = X (160 tokens) + its own 24; then B = X + other 24 tokens.
 * 1. Nothing evicted: B reuses all 160 (the local blocks 8 and 9 of the
 *    window before 160 slid out of A's window but stayed cached).
 * 2. A's local blocks evicted except 4 and 5 (kept warm by E, which reused
 *    X's first 96): B falls back to the longest prefix whose window is still
 *    there, 96.
 * 3. Every local block of A evicted: B recomputes everything, and its
 *    local blocks are published linked to A's global ones (still cached),
 *    so C = X + a third suffix reuses all 160 again.
 * Tokens equal the reference every time. */
START_TEST(test_prefix_hits_after_slide_and_evict) {
    int32_t a[184], b[184], c3[184], e[112], f[512];
    make_prompt(a, 184, 50);
    memcpy(b, a, sizeof(int32_t) * 160);
    make_prompt(b + 160, 24, 51);
    memcpy(c3, a, sizeof(int32_t) * 160);
    make_prompt(c3 + 160, 24, 54);
    memcpy(e, a, sizeof(int32_t) * 100);
    make_prompt(e + 100, 12, 52);
    ref_run ra, rb, rc, re;
    reference(a, 184, 4, &ra);
    reference(c3, 184, 4, &rc);
    reference(b, 184, 4, &rb);
    reference(e, 112, 4, &re);
    px_model *m = load_pools(256, 24, 0, 0, 64, 4);
    for (int scenario = 1; scenario <= 3; scenario++) {
        px_sched *s = make_sched(m, 64, 4, 1);
        outcome o;
        run_one(s, &o, a, 184, 4);
        expect_tokens(o.tok[0], o.n_tok[0], &ra, "A");
        px_request_unref(o.r);
        /* A's full blocks 0..10 are cached in both pools; 11 was freed. */
        px_stats_counters c = counters(s);
        ck_assert_int_eq(c.kv_local_cached, 11);
        ck_assert_int_eq(c.kv_blocks_cached, 11);
        int32_t want_hit = 160;
        if (scenario == 2) {
            run_one(s, &o, e, 112, 4);
            expect_tokens(o.tok[0], o.n_tok[0], &re, "E");
            ck_assert_int_eq(o.usage_cached, 96);
            px_request_unref(o.r);
            want_hit = 96;
        }
        if (scenario >= 2) {
            /* A filler of its own tokens takes every free local block, then
             * evicts the least recently used cached ones: A's 0..3, 6..8,
             * 10, 9 (9 blocks; in scenario 3 all 11 and more). */
            c = counters(s);
            int64_t n_alloc = c.kv_local_free + (scenario == 2 ? 9 : 11);
            make_prompt(f, (int)(n_alloc * BS), 53);
            run_one(s, &o, f, (int)(n_alloc * BS), 1);
            px_request_unref(o.r);
            c = counters(s);
            ck_assert_int_eq(c.kv_local_free, 0);
            ck_assert_int_ge(c.kv_blocks_cached, 11); /* the global pool evicted nothing */
            if (scenario == 3) want_hit = 0;
        }
        run_one(s, &o, b, 184, 4);
        expect_tokens(o.tok[0], o.n_tok[0], &rb, "B");
        ck_assert_msg(o.usage_cached == want_hit, "scenario %d: %d cached tokens, expected %d",
                      scenario, o.usage_cached, want_hit);
        px_request_unref(o.r);
        if (scenario == 3) {
            run_one(s, &o, c3, 184, 4);
            expect_tokens(o.tok[0], o.n_tok[0], &rc, "C");
            ck_assert_int_eq(o.usage_cached, 160);
            px_request_unref(o.r);
        }
        expect_idle(s);
        px_sched_destroy(s);
    }
    px_model_free(m);
}
END_TEST

/* n > 1 choices share the prompt's blocks in both pools (copy-on-write of
 * the last one), a tiny cache preempts and recomputes, and every choice
 * still gives the reference, across many windows. */
START_TEST(test_choices_and_preemption_windowed) {
    px_model *m = load_pools(40, 14, 0, 0, 64, 8);
    g_itl_ratio = 0.0;
    px_sched *s = make_sched(m, 64, 8, 1);
    g_itl_ratio = 2.0;
    int32_t p[6][120];
    ref_run ref[6];
    outcome o[6];
    char err[256];
    for (int i = 0; i < 6; i++) {
        int len = 40 + 16 * i;
        make_prompt(p[i], len, 900 + (uint32_t)i);
        reference(p[i], len, 120, &ref[i]);
        memset(&o[i], 0, sizeof o[i]);
        o[i].r = make_request(p[i], len, 120);
        if (i == 0) o[i].r->n_choices = 3;
        ck_assert_msg(px_sched_submit(s, o[i].r, err, sizeof err) == 0, "%s", err);
    }
    run_all(s, o, 6);
    for (int i = 0; i < 6; i++) {
        for (int c = 0; c < (i == 0 ? 3 : 1); c++)
            expect_tokens(o[i].tok[c], o[i].n_tok[c], &ref[i], "windowed choice");
        px_request_unref(o[i].r);
    }
    ck_assert_uint_gt(counters(s).preemptions, 0);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
}
END_TEST

/* A llama model has no local layer: one pool, sized from a budget exactly
 * as before (every layer per block), no local figures, and batched
 * sequences with preemption give the engine's tokens. */
START_TEST(test_llama_one_pool) {
    px_mkmodel_opts mk;
    px_mkmodel_opts_tiny(&mk, PX_ARCH_LLAMA);
    mk.wtype = PX_DTYPE_Q8_0;
    mk.embd_type = PX_DTYPE_Q8_0;
    mk.seed = 9;
    char path[512], err[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/pxwin-llama-%ld.gguf", dir && *dir ? dir : "/tmp",
             (long)getpid());
    ck_assert_msg(px_mkmodel_write(&mk, path, err, sizeof err) == 0, "%s", err);
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = 2;
    mo.n_ctx = 512;
    mo.max_batch_tokens = 256;
    mo.max_logit_rows = 8;
    mo.kv_cache_mb = 1;
    px_model *m = px_model_load(path, &mo, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    const px_model_config *cfg = px_model_config_get(m);
    int64_t per_block = (int64_t)cfg->n_layer * 2 * BS * cfg->n_head_kv * cfg->head_dim * 2;
    ck_assert_int_eq(px_model_kv_blocks(m), (1 << 20) / per_block);
    ck_assert_int_eq(px_model_kv_blocks_local(m), 0);
    ck_assert_int_eq(px_model_kv_block_bytes(m, 1), 0);
    px_model_free(m);
    mo.kv_cache_mb = 0;
    mo.kv_blocks = 64;
    px_model *ref_m = px_model_load(path, &mo, err, sizeof err);
    mo.kv_blocks = 20;
    m = px_model_load(path, &mo, err, sizeof err);
    ck_assert_msg(m && ref_m, "%s", err);
    g_itl_ratio = 0.0;
    px_sched *s = make_sched(m, 128, 8, 1);
    g_itl_ratio = 2.0;
    outcome o[8];
    ref_run ref[8];
    for (int i = 0; i < 8; i++) {
        int32_t p[120];
        int len = 10 + 13 * i;
        make_prompt(p, len, 70 + (uint32_t)i);
        reference_model(ref_m, p, len, 40, &ref[i]);
        memset(&o[i], 0, sizeof o[i]);
        o[i].r = make_request(p, len, 40);
        ck_assert_msg(px_sched_submit(s, o[i].r, err, sizeof err) == 0, "%s", err);
    }
    run_all(s, o, 8);
    for (int i = 0; i < 8; i++) {
        expect_tokens(o[i].tok[0], o[i].n_tok[0], &ref[i], "llama");
        px_request_unref(o[i].r);
    }
    px_stats_counters c = counters(s);
    ck_assert_uint_gt(c.preemptions, 0);
    ck_assert_int_eq(c.kv_blocks_total, 20);
    ck_assert_int_eq(c.kv_local_total, 0);
    expect_idle(s);
    px_sched_destroy(s);
    px_model_free(m);
    px_model_free(ref_m);
    unlink(path);
}
END_TEST

static void teardown(void) {
    if (g_ref) {
        px_model_free(g_ref);
        g_ref = NULL;
    }
    drop_model();
}

Suite *px_suite_sched_window(void) {
    Suite *s = suite_create("sched_window");
    TCase *tc = tcase_create("window");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_engine_local_table);
    tcase_add_test(tc, test_long_sequence_holds_window);
    tcase_add_test(tc, test_budget_fits_with_windows);
    tcase_add_test(tc, test_prefix_hits_after_slide_and_evict);
    tcase_add_test(tc, test_choices_and_preemption_windowed);
    tcase_add_test(tc, test_llama_one_pool);
    suite_add_tcase(s, tc);
    return s;
}
