/* vision.c — tests of engine/vision.c: mmproj loading and its refusals,
 * preprocessing of a known image, the encoder's output shape, finiteness
 * and determinism, and split encoding (any step size gives the one-pass
 * bits; step counts; restarts). (Numerical correctness against numpy lives in
 * tests/reference/check-reference.sh.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"
#include "px.h"
#include "suites.h"
#include "util.h"
#include "vision.h"

/* Writes a tiny mmproj (optionally broken) and returns its malloc'd path. */
static char *write_tiny(const char *omit, const char *bad_shape, const char *proj) {
    px_vision_mk_opts o;
    px_vision_mk_opts_tiny(&o);
    o.omit_tensor = omit;
    o.bad_shape = bad_shape;
    if (proj) o.projector_type = proj;
    char *path = px_test_tmpfile(".gguf");
    char err[256];
    ck_assert_msg(px_vision_mk_write(&o, path, err, sizeof err) == 0, "%s", err);
    return path;
}

/* Loading must fail with a message containing `needle`. */
static void expect_load_error(const char *omit, const char *bad, const char *proj,
                              const char *needle) {
    char *path = write_tiny(omit, bad, proj);
    px_pool *pool = px_pool_create(1);
    char err[512] = "";
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' does not name '%s'", err, needle);
    px_pool_destroy(pool);
    unlink(path);
    free(path);
}

START_TEST(test_load_config) {
    char *path = write_tiny(NULL, NULL, NULL);
    px_pool *pool = px_pool_create(1);
    char err[512];
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    const px_vision_config *c = px_vision_config_get(v);
    ck_assert_int_eq(c->image_size, 56);
    ck_assert_int_eq(c->patch_size, 14);
    ck_assert_int_eq(c->n_embd, 64);
    ck_assert_int_eq(c->n_ff, 128);
    ck_assert_int_eq(c->n_layer, 2);
    ck_assert_int_eq(c->n_head, 4);
    ck_assert_int_eq(c->n_tokens_out, 4); /* 4x4 patches pooled by 2 */
    ck_assert_int_eq(c->n_embd_out, 64);
    ck_assert_float_eq(c->mean[1], 0.5f);
    ck_assert_float_eq(c->std[2], 0.5f);
    px_vision_free(v);
    px_pool_destroy(pool);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_load_missing_tensor) {
    expect_load_error("v.blk.1.ffn_down.bias", NULL, NULL, "v.blk.1.ffn_down.bias");
    expect_load_error("mm.soft_emb_norm.weight", NULL, NULL, "mm.soft_emb_norm.weight");
}
END_TEST

START_TEST(test_load_wrong_shape) {
    expect_load_error(NULL, "v.position_embd.weight", NULL, "v.position_embd.weight");
    expect_load_error(NULL, "v.blk.0.attn_k.weight", NULL, "shape");
    expect_load_error(NULL, "mm.input_projection.weight", NULL, "mm.input_projection.weight");
}
END_TEST

START_TEST(test_load_wrong_projector) {
    expect_load_error(NULL, NULL, "llava", "clip.projector_type");
}
END_TEST

START_TEST(test_load_not_found) {
    px_pool *pool = px_pool_create(1);
    char err[256] = "";
    ck_assert_ptr_null(px_vision_load("/nonexistent/mmproj.gguf", pool, err, sizeof err));
    ck_assert_int_gt((int)strlen(err), 0);
    px_pool_destroy(pool);
}
END_TEST

/* A 2x2 image upscaled to 56: llama.cpp's bilinear steps by 1/56 from the
 * top-left pixel, truncates to 8 bits, then (v/255 - 0.5) / 0.5. */
START_TEST(test_preprocess_known) {
    char *path = write_tiny(NULL, NULL, NULL);
    px_pool *pool = px_pool_create(1);
    char err[512];
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    /* Channel 0 corners 0, 100 / 200, 255; channel 1 constant 51; channel 2
     * 255 everywhere. */
    const uint8_t rgb[2 * 2 * 3] = {0, 51, 255, 100, 51, 255, 200, 51, 255, 255, 51, 255};
    enum { S = 56 };
    float *out = malloc(sizeof(float) * 3 * S * S);
    ck_assert_int_eq(px_vision_preprocess(v, rgb, 2, 2, out), 0);
#define PIX(c, y, x) out[((c)*S + (y)) * S + (x)]
    ck_assert_float_eq_tol(PIX(0, 0, 0), -1.0f, 1e-6f);
    /* (28, 28): fx = fy = 0.5: top 50, bottom 227.5, 138.75 -> 138 */
    ck_assert_float_eq_tol(PIX(0, 28, 28), (138.0f / 255.0f - 0.5f) / 0.5f, 1e-6f);
    /* (0, 14): fx = 0.25 along the top row: 25 */
    ck_assert_float_eq_tol(PIX(0, 0, 14), (25.0f / 255.0f - 0.5f) / 0.5f, 1e-6f);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            ck_assert_float_eq_tol(PIX(1, y, x), (51.0f / 255.0f - 0.5f) / 0.5f, 1e-6f);
            ck_assert_float_eq_tol(PIX(2, y, x), 1.0f, 1e-6f);
        }
#undef PIX
    ck_assert_int_eq(px_vision_preprocess(v, rgb, 0, 2, out), PX_EINVAL);
    ck_assert_int_eq(px_vision_preprocess(v, NULL, 2, 2, out), PX_EINVAL);
    /* A 1-pixel image must not read past it. */
    ck_assert_int_eq(px_vision_preprocess(v, rgb, 1, 1, out), 0);
    ck_assert_float_eq_tol(out[S * S - 1], -1.0f, 1e-6f);
    free(out);
    px_vision_free(v);
    px_pool_destroy(pool);
    unlink(path);
    free(path);
}
END_TEST

static void encode_random(px_vision *v, uint64_t seed, float *out) {
    const px_vision_config *c = px_vision_config_get(v);
    size_t n = 3 * (size_t)c->image_size * (size_t)c->image_size;
    float *pix = malloc(sizeof(float) * n);
    px_test_fill_random(pix, n, seed);
    char err[256];
    ck_assert_msg(px_vision_encode(v, pix, out, err, sizeof err) == 0, "%s", err);
    free(pix);
}

START_TEST(test_encode_shape_determinism) {
    char *path = write_tiny(NULL, NULL, NULL);
    px_pool *pool1 = px_pool_create(1), *pool2 = px_pool_create(2);
    char err[512];
    px_vision *v1 = px_vision_load(path, pool1, err, sizeof err);
    ck_assert_msg(v1 != NULL, "%s", err);
    px_vision *v2 = px_vision_load(path, pool2, err, sizeof err);
    ck_assert_msg(v2 != NULL, "%s", err);
    const px_vision_config *c = px_vision_config_get(v1);
    size_t n = (size_t)c->n_tokens_out * (size_t)c->n_embd_out;
    /* One guard float past the output: encode must write exactly n. */
    float *a = malloc(sizeof(float) * (n + 1)), *b = malloc(sizeof(float) * n);
    float *d = malloc(sizeof(float) * n), *t2 = malloc(sizeof(float) * n);
    a[n] = 12345.0f;
    encode_random(v1, 1, a);
    ck_assert_float_eq(a[n], 12345.0f);
    encode_random(v1, 1, b);
    encode_random(v1, 2, d);
    encode_random(v2, 1, t2);
    double rms = 0, dist = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(isfinite(a[i]));
        ck_assert_float_eq(a[i], b[i]);  /* same image, same bits */
        ck_assert_float_eq(a[i], t2[i]); /* 2 threads: fixed task shapes, same bits */
        rms += (double)a[i] * a[i];
        dist += fabs((double)a[i] - d[i]);
    }
    ck_assert(rms / (double)n > 1e-3);  /* not all zero */
    ck_assert(dist / (double)n > 1e-3); /* the image matters */
    /* Tokens differ from one another (pooling does not collapse them). */
    ck_assert(fabsf(a[0] - a[(size_t)c->n_embd_out]) + fabsf(a[1] - a[(size_t)c->n_embd_out + 1]) >
              0);
    ck_assert_int_lt(px_vision_encode(v1, NULL, a, err, sizeof err), 0);
    /* Split encoding: n_layer steps return 1, the last writes the same bits. */
    ck_assert_int_lt(px_vision_encode_step(v1, b, err, sizeof err), 0); /* nothing begun */
    size_t n_pix = 3 * (size_t)c->image_size * (size_t)c->image_size;
    float *pix = malloc(sizeof(float) * n_pix);
    px_test_fill_random(pix, n_pix, 1);
    memset(b, 0, sizeof(float) * n);
    ck_assert_int_eq(px_vision_encode_begin(v1, pix, err, sizeof err), 0);
    for (int i = 0; i < c->n_layer; i++)
        ck_assert_int_eq(px_vision_encode_step(v1, b, err, sizeof err), 1);
    ck_assert_int_eq(px_vision_encode_step(v1, b, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(a[i], b[i]);
    ck_assert_int_lt(px_vision_encode_step(v1, b, err, sizeof err), 0); /* finished */
    free(pix);
    free(a);
    free(b);
    free(d);
    free(t2);
    px_vision_free(v1);
    px_vision_free(v2);
    px_pool_destroy(pool1);
    px_pool_destroy(pool2);
    unlink(path);
    free(path);
}
END_TEST

/* ---- split encoding ----------------------------------------------------- */

/* A tower with 24 x 24 = 576 patches (image 168, patch 7), so 256-row chunks
 * give 3 chunks per phase, the last one partial; Q8_0 blocks. */
static char *write_multichunk(int n_head) {
    px_vision_mk_opts o;
    px_vision_mk_opts_tiny(&o);
    o.n_head = n_head;
    o.image_size = 168;
    o.patch_size = 7;
    o.scale_factor = 4; /* 6 x 6 = 36 tokens */
    o.wtype = PX_DTYPE_Q8_0;
    char *path = px_test_tmpfile(".gguf");
    char err[256];
    ck_assert_msg(px_vision_mk_write(&o, path, err, sizeof err) == 0, "%s", err);
    return path;
}

/* Runs begin and steps to the end, counting the steps (the final one
 * included); every step but the last must return 1. */
static int encode_steps(px_vision *v, const float *pix, float *out) {
    char err[256];
    ck_assert_msg(px_vision_encode_begin(v, pix, err, sizeof err) == 0, "%s", err);
    int n = 0, rc;
    while ((rc = px_vision_encode_step(v, out, err, sizeof err)) == 1)
        ck_assert_int_lt(++n, 100000);
    ck_assert_msg(rc == 0, "step %d: %s", n, err);
    return n + 1;
}

typedef struct split_case {
    int rows;  /* passed to px_vision_set_step_rows */
    int steps; /* steps it must take, the final one included */
} split_case;

/* Every step size must give the bits of px_vision_encode, in exactly the
 * number of steps px_vision_steps_total announces. */
static void check_split(const char *path, int n_threads, const split_case *cases, int n_cases) {
    px_pool *pool = px_pool_create(n_threads);
    char err[512];
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    const px_vision_config *c = px_vision_config_get(v);
    size_t n = (size_t)c->n_tokens_out * (size_t)c->n_embd_out;
    size_t n_pix = 3 * (size_t)c->image_size * (size_t)c->image_size;
    float *pix = malloc(sizeof(float) * n_pix);
    float *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * (n + 1));
    px_test_fill_random(pix, n_pix, 3);
    ck_assert_msg(px_vision_encode(v, pix, ref, err, sizeof err) == 0, "%s", err);
    double rms = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)ref[i] * ref[i];
    ck_assert(rms / (double)n > 1e-3); /* not all zero */
    for (int k = 0; k < n_cases; k++) {
        px_vision_set_step_rows(v, cases[k].rows);
        ck_assert_int_eq(px_vision_steps_total(v), cases[k].steps);
        memset(out, 0, sizeof(float) * n);
        out[n] = 12345.0f;
        ck_assert_int_eq(encode_steps(v, pix, out), cases[k].steps);
        ck_assert_msg(memcmp(out, ref, sizeof(float) * n) == 0, "rows %d: output differs",
                      cases[k].rows);
        ck_assert_float_eq(out[n], 12345.0f);
        ck_assert_int_lt(px_vision_encode_step(v, out, err, sizeof err), 0); /* finished */
    }
    free(pix);
    free(ref);
    free(out);
    px_vision_free(v);
    px_pool_destroy(pool);
}

/* Tiny tower: 16 patches, 2 blocks, so any rows > 0 is one chunk: embed 1
 * + 3 phases x 2 blocks + finish 1 = 8 steps. */
START_TEST(test_split_tiny_same_bits) {
    char *path = write_tiny(NULL, NULL, NULL);
    const split_case cases[] = {{0, 3}, {1, 8}, {255, 8}, {256, 8}, {1 << 30, 8}, {-7, 3}};
    check_split(path, 1, cases, (int)PX_ARRAY_LEN(cases));
    check_split(path, 2, cases, (int)PX_ARRAY_LEN(cases));
    unlink(path);
    free(path);
}
END_TEST

/* 576 patches: rows round up to 256 (3 chunks: 3 x (1 + 3 x 2) + 1 = 22
 * steps), 512 (2 chunks: 15) or cover the image (8). Attention run for a
 * chunk before every row's K and V exist, or over the chunk's keys only,
 * changes the bits. */
START_TEST(test_split_multichunk_same_bits) {
    char *path = write_multichunk(4);
    const split_case cases[] = {{1, 22},   {256, 22}, {257, 15}, {300, 15},
                                {512, 15}, {513, 8},  {576, 8},  {0, 3}};
    check_split(path, 2, cases, (int)PX_ARRAY_LEN(cases));
    check_split(path, 1, cases, 3);
    unlink(path);
    free(path);
    /* 16 heads: attention in 4 steps of 4 heads per chunk, so 3 x (1 + 6 x
     * 2) + 1 = 40 steps at 256 rows; still the same bits. */
    path = write_multichunk(16);
    const split_case heads[] = {{256, 40}, {576, 14}, {0, 3}};
    check_split(path, 2, heads, (int)PX_ARRAY_LEN(heads));
    unlink(path);
    free(path);
}
END_TEST

/* Begin in the middle of an image abandons it: the next image's output is
 * exactly its one-pass encoding. A step size set mid-image applies from the
 * next begin on. */
START_TEST(test_split_restart) {
    char *path = write_multichunk(4);
    px_pool *pool = px_pool_create(2);
    char err[512];
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    ck_assert_msg(v != NULL, "%s", err);
    const px_vision_config *c = px_vision_config_get(v);
    size_t n = (size_t)c->n_tokens_out * (size_t)c->n_embd_out;
    size_t n_pix = 3 * (size_t)c->image_size * (size_t)c->image_size;
    float *pa = malloc(sizeof(float) * n_pix), *pb = malloc(sizeof(float) * n_pix);
    float *ra = malloc(sizeof(float) * n), *rb = malloc(sizeof(float) * n);
    float *out = malloc(sizeof(float) * n);
    px_test_fill_random(pa, n_pix, 11);
    px_test_fill_random(pb, n_pix, 12);
    ck_assert_msg(px_vision_encode(v, pa, ra, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(px_vision_encode(v, pb, rb, err, sizeof err) == 0, "%s", err);
    ck_assert(memcmp(ra, rb, sizeof(float) * n) != 0);
    /* Stepping with nothing begun fails, in either mode. */
    ck_assert_int_eq(px_vision_encode_step(v, out, err, sizeof err), PX_EINVAL);
    px_vision_set_step_rows(v, 256);
    ck_assert_int_eq(px_vision_encode_step(v, out, err, sizeof err), PX_EINVAL);
    /* Abandon A at each of several points (in the embedding, in block 0's
     * QKV, attention and MLP, in block 1) and encode B from scratch. */
    const int stops[] = {1, 4, 7, 9, 12, 20};
    for (size_t s = 0; s < PX_ARRAY_LEN(stops); s++) {
        ck_assert_int_eq(px_vision_encode_begin(v, pa, err, sizeof err), 0);
        for (int i = 0; i < stops[s]; i++)
            ck_assert_int_eq(px_vision_encode_step(v, out, err, sizeof err), 1);
        ck_assert_int_eq(encode_steps(v, pb, out), 22);
        ck_assert(memcmp(out, rb, sizeof(float) * n) == 0);
    }
    /* Step size changed mid-image: this image keeps its 22 steps, the next
     * one takes 3. */
    ck_assert_int_eq(px_vision_encode_begin(v, pa, err, sizeof err), 0);
    ck_assert_int_eq(px_vision_encode_step(v, out, err, sizeof err), 1);
    px_vision_set_step_rows(v, 0);
    ck_assert_int_eq(px_vision_steps_total(v), 3);
    int steps = 1;
    while (px_vision_encode_step(v, out, err, sizeof err) == 1)
        steps++;
    ck_assert_int_eq(steps + 1, 22);
    ck_assert(memcmp(out, ra, sizeof(float) * n) == 0);
    ck_assert_int_eq(encode_steps(v, pb, out), 3);
    ck_assert(memcmp(out, rb, sizeof(float) * n) == 0);
    /* Abandoned in block mode, restarted in chunk mode. */
    ck_assert_int_eq(px_vision_encode_begin(v, pb, err, sizeof err), 0);
    ck_assert_int_eq(px_vision_encode_step(v, out, err, sizeof err), 1);
    px_vision_set_step_rows(v, 512);
    ck_assert_int_eq(encode_steps(v, pa, out), 15);
    ck_assert(memcmp(out, ra, sizeof(float) * n) == 0);
    free(pa);
    free(pb);
    free(ra);
    free(rb);
    free(out);
    px_vision_free(v);
    px_pool_destroy(pool);
    unlink(path);
    free(path);
}
END_TEST

Suite *px_suite_vision(void) {
    Suite *s = suite_create("vision");
    TCase *tc = tcase_create("vision");
    tcase_add_test(tc, test_load_config);
    tcase_add_test(tc, test_load_missing_tensor);
    tcase_add_test(tc, test_load_wrong_shape);
    tcase_add_test(tc, test_load_wrong_projector);
    tcase_add_test(tc, test_load_not_found);
    tcase_add_test(tc, test_preprocess_known);
    tcase_add_test(tc, test_encode_shape_determinism);
    tcase_add_test(tc, test_split_tiny_same_bits);
    tcase_add_test(tc, test_split_multichunk_same_bits);
    tcase_add_test(tc, test_split_restart);
    tcase_set_timeout(tc, 60); /* about 40 small encodes; slow under ASan */
    suite_add_tcase(s, tc);
    return s;
}
