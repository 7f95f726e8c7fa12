/* images.c — tests of images in the scheduler (scheduler/images.c): a
 * request with images produces exactly the tokens of a direct engine run
 * (tower, then one forward pass over the prompt with the image rows
 * bidirectional), alone, chunked and batched with text; equal images are
 * encoded once and reused through the prefix cache, different ones are not
 * confused; decodes keep running while an image encodes; cancellation and
 * bad submissions leave nothing behind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/px.h"
#include "engine/vision.h"
#include "sched_test.h"
#include "suites.h"

#define ROWS 16 /* image rows: 4x4 patches, no pooling */

static char *g_mmproj;

static px_vision *load_vision(px_model *m) {
    if (!g_mmproj) {
        px_vision_mk_opts o;
        px_vision_mk_opts_tiny(&o);
        o.scale_factor = 1;
        o.seed = 77;
        char buf[512], err[256];
        const char *dir = getenv("TMPDIR");
        snprintf(buf, sizeof buf, "%s/pxsched-mm-%ld.gguf", dir && *dir ? dir : "/tmp",
                 (long)getpid());
        g_mmproj = strdup(buf);
        ck_assert_msg(px_vision_mk_write(&o, g_mmproj, err, sizeof err) == 0, "%s", err);
    }
    char err[256];
    px_vision *v = px_vision_load(g_mmproj, px_model_pool(m), err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    ck_assert_int_eq(px_vision_config_get(v)->n_tokens_out, ROWS);
    return v;
}

static px_sched *make_vsched(px_model *m, px_vision *v, int max_batch, int max_running) {
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.itl_ratio = g_itl_ratio;
    so.max_batch_tokens = max_batch;
    so.max_running = max_running;
    so.vision = v;
    char err[256];
    px_sched *s = px_sched_create(m, &so, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

/* A deterministic w x h RGB image. */
static uint8_t *make_rgb(int w, int h, uint32_t seed) {
    uint8_t *p = malloc((size_t)w * (size_t)h * 3);
    ck_assert_ptr_nonnull(p);
    uint32_t s = seed * 747796405u + 1;
    for (int i = 0; i < w * h * 3; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (uint8_t)(s >> 16);
    }
    return p;
}

/* A prompt: pre text ids, 3 (as <start_of_image>), ROWS placeholders (4),
 * 5 (<end_of_image>), post text ids. Returns its length; *img_pos = the
 * first image row. */
static int image_prompt(int32_t *ids, int pre, int post, uint32_t seed, int32_t *img_pos) {
    make_prompt(ids, pre, seed);
    ids[pre] = 3;
    for (int i = 0; i < ROWS; i++)
        ids[pre + 1 + i] = 4;
    ids[pre + 1 + ROWS] = 5;
    make_prompt(ids + pre + 2 + ROWS, post, seed + 100);
    *img_pos = pre + 1;
    return pre + 2 + ROWS + post;
}

static px_request *image_request(const int32_t *ids, int n, int32_t pos, const uint8_t *rgb, int w,
                                 int h, uint64_t hash, int max_tokens) {
    px_request *r = make_request(ids, n, max_tokens);
    uint8_t *copy = malloc((size_t)w * (size_t)h * 3);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, rgb, (size_t)w * (size_t)h * 3);
    ck_assert_int_eq(px_request_add_image(r, pos, ROWS, hash, w, h, copy), 0);
    return r;
}

/* The direct run: the tower, one forward pass over the whole prompt with
 * the image rows as embeddings (bidirectional), then greedy decoding. */
static void direct(px_model *m, px_vision *v, const int32_t *ids, int n, int32_t pos,
                   const uint8_t *rgb, int w, int h, int n_gen, int32_t *out) {
    const px_vision_config *vc = px_vision_config_get(v);
    int32_t n_embd = px_model_config_get(m)->n_embd, n_vocab = px_model_config_get(m)->n_vocab;
    float *pix = malloc(sizeof(float) * 3 * (size_t)vc->image_size * (size_t)vc->image_size);
    float *embd = malloc(sizeof(float) * ROWS * (size_t)n_embd);
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    char err[256];
    ck_assert_int_eq(px_vision_preprocess(v, rgb, w, h, pix), 0);
    ck_assert_msg(px_vision_encode(v, pix, embd, err, sizeof err) == 0, "%s", err);
    int32_t blocks[32], seqi[256] = {0}, p[256], attn_end[256] = {0};
    const float *rows[256] = {0};
    uint8_t want[256] = {0};
    for (int i = 0; i < 32; i++)
        blocks[i] = 40 + i; /* away from the blocks the scheduler uses first */
    for (int i = 0; i < n; i++) {
        p[i] = i;
        want[i] = i == n - 1;
        if (i >= pos && i < pos + ROWS) {
            rows[i] = embd + (size_t)(i - pos) * (size_t)n_embd;
            attn_end[i] = pos + ROWS;
        }
    }
    px_batch_seq bs = {blocks, 32};
    px_batch b = {.n_tok = n,
                  .tokens = ids,
                  .pos = p,
                  .seq = seqi,
                  .want_logits = want,
                  .embd = rows,
                  .attn_end = attn_end,
                  .n_seqs = 1,
                  .seqs = &bs};
    ck_assert_msg(px_forward(m, &b, logits, err, sizeof err) == 0, "%s", err);
    for (int g = 0; g < n_gen; g++) {
        int32_t best = 0;
        for (int32_t k = 1; k < n_vocab; k++)
            if (logits[k] > logits[best]) best = k;
        out[g] = best;
        int32_t q = n + g;
        uint8_t w1 = 1;
        px_batch d = {.n_tok = 1,
                      .tokens = &out[g],
                      .pos = &q,
                      .seq = seqi,
                      .want_logits = &w1,
                      .n_seqs = 1,
                      .seqs = &bs};
        ck_assert_msg(px_forward(m, &d, logits, err, sizeof err) == 0, "%s", err);
    }
    free(pix);
    free(embd);
    free(logits);
}

static uint64_t images_encoded(px_sched *s) {
    px_stats_counters c;
    px_sched_snapshot(s, &c, NULL, NULL, NULL, NULL);
    return c.images_encoded;
}

/* One image request with several batch budgets, alone and among text
 * requests: always the direct run's tokens. */
START_TEST(test_image_matches_direct) {
    static const int budgets[] = {256, 16, 24};
    px_model *m = load_model(256, 256, 16);
    px_vision *v = load_vision(m);
    int32_t ids[128], pos, want[12];
    int n = image_prompt(ids, 9, 30, 1, &pos);
    uint8_t *rgb = make_rgb(37, 23, 1);
    direct(m, v, ids, n, pos, rgb, 37, 23, 12, want);
    for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++) {
        for (int with_text = 0; with_text < 2; with_text++) {
            px_sched *s = make_vsched(m, v, budgets[k], 8);
            outcome o[4] = {{0}};
            char err[256];
            int n_req = with_text ? 4 : 1;
            for (int i = 1; i < n_req; i++) { /* text first: it decodes meanwhile */
                int32_t t[64];
                make_prompt(t, 20 + 9 * i, 50 + (uint32_t)i);
                o[i].r = make_request(t, 20 + 9 * i, 20);
                ck_assert_int_eq(px_sched_submit(s, o[i].r, err, sizeof err), 0);
            }
            if (with_text) px_sched_step(s);
            o[0].r = image_request(ids, n, pos, rgb, 37, 23, 0xabc, 12);
            ck_assert_msg(px_sched_submit(s, o[0].r, err, sizeof err) == 0, "%s", err);
            run_all(s, o, n_req);
            ck_assert_int_eq(o[0].n_tok[0], 12);
            for (int g = 0; g < 12; g++)
                ck_assert_msg(o[0].tok[0][g] == want[g],
                              "budget %d, text %d: token %d is %d, direct run %d", budgets[k],
                              with_text, g, o[0].tok[0][g], want[g]);
            ck_assert_int_eq(o[0].usage_prompt, n);
            ck_assert_int_eq(images_encoded(s), 1);
            for (int i = 0; i < n_req; i++)
                px_request_unref(o[i].r);
            expect_idle(s);
            px_sched_destroy(s);
        }
    }
    free(rgb);
    px_vision_free(v);
    px_model_free(m);
}
END_TEST

/* The same image again is neither encoded nor computed again; a different
 * image behind the same text is not mistaken for it. */
START_TEST(test_image_reuse_and_keys) {
    px_model *m = load_model(256, 256, 16);
    px_vision *v = load_vision(m);
    px_sched *s = make_vsched(m, v, 256, 8);
    int32_t ids[128], pos, want_a[8], want_b[8];
    int n = image_prompt(ids, 20, 40, 3, &pos);
    uint8_t *a = make_rgb(30, 30, 5), *b = make_rgb(30, 30, 6);
    direct(m, v, ids, n, pos, a, 30, 30, 8, want_a);
    direct(m, v, ids, n, pos, b, 30, 30, 8, want_b);
    char err[256];
    for (int round = 0; round < 3; round++) {
        /* a, a again, then b with its own hash */
        const uint8_t *rgb = round < 2 ? a : b;
        outcome o = {0};
        o.r = image_request(ids, n, pos, rgb, 30, 30, round < 2 ? 111 : 222, 8);
        ck_assert_int_eq(px_sched_submit(s, o.r, err, sizeof err), 0);
        run_all(s, &o, 1);
        const int32_t *want = round < 2 ? want_a : want_b;
        for (int g = 0; g < 8; g++)
            ck_assert_msg(o.tok[0][g] == want[g], "round %d token %d: %d, want %d", round, g,
                          o.tok[0][g], want[g]);
        int bs = px_model_kv_block_size(m);
        if (round == 1) /* everything up to the last full block came from the cache */
            ck_assert_int_ge(o.usage_cached, (n - 1) / bs * bs);
        if (round == 2) /* only the blocks before the image match */
            ck_assert_int_le(o.usage_cached, pos / bs * bs);
        ck_assert_int_eq(images_encoded(s), round < 2 ? 1 : 2);
        px_request_unref(o.r);
    }
    expect_idle(s);
    px_sched_destroy(s);
    free(a);
    free(b);
    px_vision_free(v);
    px_model_free(m);
}
END_TEST

/* While an image is encoded in slices, a running stream still gets a token
 * every step; an image request cancelled mid-way leaves nothing behind. */
START_TEST(test_decodes_continue_and_cancel) {
    px_model *m = load_model(256, 256, 16);
    px_vision *v = load_vision(m);
    for (int cancel = 0; cancel < 2; cancel++) {
        px_sched *s = make_vsched(m, v, 256, 8);
        char err[256];
        outcome o[2] = {{0}};
        int32_t t[32];
        make_prompt(t, 12, 9);
        o[1].r = make_request(t, 12, 40);
        ck_assert_int_eq(px_sched_submit(s, o[1].r, err, sizeof err), 0);
        for (int i = 0; i < 3; i++) /* prefill and a few decodes: costs are known */
            px_sched_step(s);
        collect(&o[1]);
        int32_t ids[128], pos;
        int n = image_prompt(ids, 5, 5, 11, &pos);
        uint8_t *rgb = make_rgb(50, 40, 3);
        o[0].r = image_request(ids, n, pos, rgb, 50, 40, 7, 4);
        free(rgb);
        ck_assert_int_eq(px_sched_submit(s, o[0].r, err, sizeof err), 0);
        int before = o[1].n_tok[0], steps = 0;
        while (o[0].n_tok[0] == 0 && !o[0].done) {
            px_sched_step(s);
            steps++;
            collect(&o[0]);
            collect(&o[1]);
            ck_assert_msg(o[1].n_tok[0] - before == steps || o[1].done,
                          "step %d: the text stream got %d tokens", steps, o[1].n_tok[0] - before);
            if (cancel && steps == 1) px_request_cancel(o[0].r);
            ck_assert_int_lt(steps, 1000);
        }
        run_all(s, o, 2);
        if (cancel) {
            ck_assert_int_eq(o[0].finish[0], PX_FINISH_CANCELLED);
        } else {
            ck_assert_int_eq(o[0].finish[0], PX_FINISH_LENGTH);
            ck_assert_int_eq(images_encoded(s), 1);
        }
        ck_assert_int_eq(o[1].n_tok[0], 40);
        px_request_unref(o[0].r);
        px_request_unref(o[1].r);
        expect_idle(s);
        px_sched_destroy(s);
    }
    px_vision_free(v);
    px_model_free(m);
}
END_TEST

START_TEST(test_image_submit_errors) {
    px_model *m = load_model(64, 64, 8);
    px_vision *v = load_vision(m);
    px_sched *plain = make_sched(m, 64, 8, 1), *s = make_vsched(m, v, 64, 8);
    int32_t ids[128], pos;
    int n = image_prompt(ids, 4, 4, 2, &pos);
    uint8_t *rgb = make_rgb(8, 8, 1);
    char err[256];
    px_request *r = image_request(ids, n, pos, rgb, 8, 8, 1, 4);
    ck_assert_int_eq(px_sched_submit(plain, r, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no images"));
    px_request_unref(r);
    /* Rows past the prompt; a wrong row count. */
    r = image_request(ids, n, n - ROWS + 1, rgb, 8, 8, 1, 4);
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_EINVAL);
    px_request_unref(r);
    r = make_request(ids, n, 4);
    uint8_t *copy = malloc(8 * 8 * 3);
    memcpy(copy, rgb, 8 * 8 * 3);
    ck_assert_int_eq(px_request_add_image(r, pos, ROWS - 1, 1, 8, 8, copy), 0);
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_EINVAL);
    px_request_unref(r);
    /* Prompt logprobs would need logit rows inside the image span. */
    r = image_request(ids, n, pos, rgb, 8, 8, 1, 4);
    r->prompt_logprobs = 1;
    ck_assert_int_eq(px_sched_submit(s, r, err, sizeof err), PX_EINVAL);
    px_request_unref(r);
    /* Overlapping images are refused when added. */
    r = image_request(ids, n, pos, rgb, 8, 8, 1, 4);
    copy = malloc(8 * 8 * 3);
    ck_assert_int_eq(px_request_add_image(r, pos + 2, ROWS, 1, 8, 8, copy), PX_EINVAL);
    px_request_unref(r);
    free(rgb);
    expect_idle(s);
    px_sched_destroy(s);
    px_sched_destroy(plain);
    px_vision_free(v);
    px_model_free(m);
}
END_TEST

static void teardown(void) {
    drop_model();
    if (g_mmproj) {
        unlink(g_mmproj);
        free(g_mmproj);
        g_mmproj = NULL;
    }
}

Suite *px_suite_sched_images(void) {
    Suite *s = suite_create("sched_images");
    TCase *tc = tcase_create("images");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_image_matches_direct);
    tcase_add_test(tc, test_image_reuse_and_keys);
    tcase_add_test(tc, test_decodes_continue_and_cancel);
    tcase_add_test(tc, test_image_submit_errors);
    suite_add_tcase(s, tc);
    return s;
}
