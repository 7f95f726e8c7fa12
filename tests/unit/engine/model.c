/* model.c — tests of engine/model.c and engine/forward.c: loading, refusing
 * bad files with a message naming the key or tensor, and the batch-first
 * forward pass (batching, chunking and paging do not change the logits).
 * Numerical correctness against an independent implementation lives in
 * tests/reference/ (numpy). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "kernels.h"
#include "model_int.h"
#include "mkmodel.h"
#include "model.h"
#include "px.h"
#include "suites.h"
#include "util.h"

/* Batching, chunking and paging must not change a row's logits at all: the
 * matmul kernels are batch-invariant and every other op works per row. */
#define BATCH_TOL 0.0f

/* n_embd 0: the tiny default; otherwise that width and 2x it for the FFN
 * (multiples of 256 give the K types their own blocks). */
static char *make_model_dims(px_arch arch, px_dtype type, int32_t n_embd) {
    px_mkmodel_opts o;
    px_mkmodel_opts_tiny(&o, arch);
    o.wtype = type;
    o.embd_type = type == PX_DTYPE_Q4_K ? PX_DTYPE_Q8_0 : type;
    if (n_embd) {
        o.n_embd = n_embd;
        o.n_ff = 2 * n_embd;
        o.n_layer = 2;
        o.head_dim = arch == PX_ARCH_LLAMA ? n_embd / o.n_head : 64;
    }
    char *path = px_test_tmpfile(".gguf");
    char err[256];
    ck_assert_msg(px_mkmodel_write(&o, path, err, sizeof err) == 0, "mkmodel: %s", err);
    return path;
}

static char *make_model(px_arch arch, px_dtype type) {
    return make_model_dims(arch, type, 0);
}

static px_model *load_opts(const char *path, int64_t kv_blocks, int no_repack) {
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = 2;
    mo.kv_blocks = kv_blocks;
    mo.no_repack = no_repack;
    mo.max_batch_tokens = 256;
    mo.max_logit_rows = 256;
    mo.n_ctx = 1024;
    char err[256];
    px_model *m = px_model_load(path, &mo, err, sizeof err);
    ck_assert_msg(m != NULL, "load %s: %s", path, err);
    return m;
}

static px_model *load(const char *path, int64_t kv_blocks) {
    return load_opts(path, kv_blocks, 0);
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float e = fabsf(a[i] - b[i]);
        if (!(e <= d)) /* NaN propagates */
            d = e;
    }
    return d;
}

static void make_prompt(int32_t *ids, int n, uint32_t seed, int32_t n_vocab) {
    uint32_t s = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = (int32_t)(4 + (s >> 8) % (uint32_t)(n_vocab - 4));
    }
}

/* Runs one sequence of n tokens in chunks of `chunk`, its positions in the
 * blocks listed (block table), and returns all rows' logits (malloc'd). */
static float *run_seq(px_model *m, const int32_t *ids, int n, int chunk, const int32_t *blocks,
                      int n_blocks) {
    const px_model_config *c = px_model_config_get(m);
    float *out = malloc(sizeof(float) * (size_t)n * c->n_vocab);
    int32_t pos[256], seq[256];
    uint8_t want[256];
    ck_assert_ptr_nonnull(out);
    px_batch_seq bs = {.blocks = blocks, .n_blocks = n_blocks};
    for (int p0 = 0; p0 < n; p0 += chunk) {
        int k = PX_MIN(chunk, n - p0);
        for (int i = 0; i < k; i++) {
            pos[i] = p0 + i;
            seq[i] = 0;
            want[i] = 1;
        }
        px_batch b = {.n_tok = k,
                      .tokens = ids + p0,
                      .pos = pos,
                      .seq = seq,
                      .want_logits = want,
                      .n_seqs = 1,
                      .seqs = &bs};
        char err[256];
        ck_assert_msg(px_forward(m, &b, out + (size_t)p0 * c->n_vocab, err, sizeof err) == 0,
                      "forward: %s", err);
    }
    return out;
}

static void check_config(px_arch arch) {
    char *path = make_model(arch, PX_DTYPE_F32);
    px_model *m = load(path, 0);
    const px_model_config *c = px_model_config_get(m);
    px_mkmodel_opts o;
    px_mkmodel_opts_tiny(&o, arch);
    ck_assert_int_eq(c->arch, arch);
    ck_assert_int_eq(c->n_embd, o.n_embd);
    ck_assert_int_eq(c->n_layer, o.n_layer);
    ck_assert_int_eq(c->n_head, o.n_head);
    ck_assert_int_eq(c->n_head_kv, o.n_head_kv);
    ck_assert_int_eq(c->head_dim, o.head_dim);
    ck_assert_int_eq(c->n_ff, o.n_ff);
    ck_assert_int_eq(c->n_vocab, o.n_vocab);
    ck_assert_int_eq(c->sliding_window, o.sliding_window);
    ck_assert_int_eq(c->tied_output, arch == PX_ARCH_GEMMA3);
    ck_assert_int_eq(px_model_n_ctx(m), 1024);
    ck_assert_int_eq(px_model_kv_blocks(m), 1024 / 16);
    ck_assert_str_eq(px_model_name(m), o.name);
    px_model_free(m);
    unlink(path);
    free(path);
}

START_TEST(test_load_config_gemma3) {
    check_config(PX_ARCH_GEMMA3);
}
END_TEST

START_TEST(test_load_config_llama) {
    check_config(PX_ARCH_LLAMA);
}
END_TEST

/* Batching, chunking and paging must not change a sequence's logits. */
static void check_invariance(px_arch arch, px_dtype type) {
    char *path = make_model(arch, type);
    px_model *m = load(path, 256);
    const px_model_config *c = px_model_config_get(m);
    const int n = 150; /* longer than 4 sliding windows of 32 */
    int32_t ids[150];
    make_prompt(ids, n, 7, c->n_vocab);
    int32_t ident[16], shuffled[16];
    for (int i = 0; i < 16; i++) {
        ident[i] = i;
        shuffled[i] = 200 - 7 * i; /* non-contiguous, descending */
    }
    float *whole = run_seq(m, ids, n, n, ident, 10);
    float *chunked = run_seq(m, ids, n, 7, shuffled, 10);
    float *one = run_seq(m, ids, n, 1, ident + 5, 10);
    size_t sz = (size_t)n * c->n_vocab;
    float d1 = max_abs_diff(whole, chunked, sz), d2 = max_abs_diff(whole, one, sz);
    ck_assert_msg(d1 <= BATCH_TOL, "chunked+paged vs whole: max diff %g", (double)d1);
    ck_assert_msg(d2 <= BATCH_TOL, "token-at-a-time vs whole: max diff %g", (double)d2);
    /* The logits must depend on the input: a different prompt differs. */
    int32_t ids2[150];
    make_prompt(ids2, n, 8, c->n_vocab);
    float *other = run_seq(m, ids2, n, n, ident, 10);
    ck_assert_float_gt(max_abs_diff(whole, other, sz), 1e-2f);
    free(whole);
    free(chunked);
    free(one);
    free(other);
    px_model_free(m);
    unlink(path);
    free(path);
}

START_TEST(test_invariance_gemma3_f32) {
    check_invariance(PX_ARCH_GEMMA3, PX_DTYPE_F32);
}
END_TEST

START_TEST(test_invariance_llama_q8) {
    check_invariance(PX_ARCH_LLAMA, PX_DTYPE_Q8_0);
}
END_TEST

/* Repacking the Q4_0 / Q5_0 / Q8_0 matrices at load (the default where the
 * kernel set has X16 kernels) changes no logit bit, for a whole prompt and
 * for token-at-a-time decoding; gemma3's tied output is repacked while the
 * embedding keeps reading the file's rows. */
static void check_repack(px_arch arch, px_dtype type, int32_t n_embd) {
    char *path = make_model_dims(arch, type, n_embd);
    px_model *m[2] = {load_opts(path, 64, 0), load_opts(path, 64, 1)};
    ck_assert_int_eq(px_model_repacked_bytes(m[1]), 0);
    if (px__kernels_get()->x16[type]) {
        ck_assert_ptr_nonnull(m[0]->packed);
        ck_assert_int_ge(px_model_repacked_bytes(m[0]), px_model_weight_bytes_per_token(m[0]) / 2);
        ck_assert_int_eq(m[0]->layers[0].w_gate.layout, PX_LAYOUT_X16);
        ck_assert_int_eq(m[0]->output.layout, PX_LAYOUT_X16);
        ck_assert_int_eq(m[0]->tok_embd.layout, PX_LAYOUT_ROWS);
    }
    if (type == PX_DTYPE_Q4_K) { /* the Q4_K_M mix: Q4_K and Q6_K both repacked */
        int n_k[2] = {0, 0};
        for (int il = 0; il < m[0]->cfg.n_layer; il++) {
            const px_tensor *ts[3] = {&m[0]->layers[il].w_gate, &m[0]->layers[il].w_down,
                                      &m[0]->layers[il].wv};
            for (int k = 0; k < 3; k++) {
                int q6 = ts[k]->type == PX_DTYPE_Q6_K;
                if (!q6 && ts[k]->type != PX_DTYPE_Q4_K) continue;
                n_k[q6]++;
                ck_assert_int_eq(ts[k]->layout, px__kernels_get()->x16[ts[k]->type]
                                                    ? PX_LAYOUT_X16
                                                    : PX_LAYOUT_ROWS);
            }
        }
        ck_assert_msg(n_k[0] > 0 && n_k[1] > 0, "Q4_K %d, Q6_K %d tensors", n_k[0], n_k[1]);
    }
    ck_assert_ptr_null(m[1]->packed);
    ck_assert_int_eq(m[1]->output.layout, PX_LAYOUT_ROWS);
    const px_model_config *c = px_model_config_get(m[0]);
    const int n = 70;
    int32_t ids[70], ident[8];
    make_prompt(ids, n, 11, c->n_vocab);
    for (int i = 0; i < 8; i++)
        ident[i] = i;
    size_t sz = (size_t)n * c->n_vocab;
    for (int chunk = 1; chunk <= n; chunk += n - 1) {
        float *a = run_seq(m[0], ids, n, chunk, ident, 8);
        float *b = run_seq(m[1], ids, n, chunk, ident, 8);
        ck_assert_msg(memcmp(a, b, sizeof(float) * sz) == 0,
                      "chunks of %d: repacked logits differ (max %g)", chunk,
                      (double)max_abs_diff(a, b, sz));
        free(a);
        free(b);
    }
    px_model_free(m[0]);
    px_model_free(m[1]);
    unlink(path);
    free(path);
}

START_TEST(test_repack_bitwise) {
    check_repack(PX_ARCH_GEMMA3, PX_DTYPE_Q8_0, 0);
    check_repack(PX_ARCH_LLAMA, PX_DTYPE_Q8_0, 0);
    check_repack(PX_ARCH_GEMMA3, PX_DTYPE_Q5_0, 0);
    check_repack(PX_ARCH_LLAMA, PX_DTYPE_Q4_0, 0);
    check_repack(PX_ARCH_GEMMA3, PX_DTYPE_Q4_K, 256);
    check_repack(PX_ARCH_LLAMA, PX_DTYPE_Q4_K, 512);
    check_repack(PX_ARCH_GEMMA3, PX_DTYPE_Q5_K, 256);
}
END_TEST

/* Two sequences decoded in one batch give each one's solo logits. */
START_TEST(test_multi_sequence_batch) {
    char *path = make_model(PX_ARCH_GEMMA3, PX_DTYPE_F32);
    px_model *m = load(path, 64);
    const px_model_config *c = px_model_config_get(m);
    int32_t a[40], bb[25];
    make_prompt(a, 40, 1, c->n_vocab);
    make_prompt(bb, 25, 2, c->n_vocab);
    int32_t blk_a[3] = {0, 1, 2}, blk_b[2] = {10, 11};
    float *solo_a = run_seq(m, a, 40, 40, blk_a, 3);
    float *solo_b = run_seq(m, bb, 25, 25, blk_b, 2);
    /* Now prefill both again into other blocks, interleaved in one batch:
     * rows of a and b alternate, each with its own positions. */
    int32_t blk_a2[3] = {20, 21, 22}, blk_b2[2] = {30, 31};
    px_batch_seq seqs[2] = {{blk_a2, 3}, {blk_b2, 2}};
    int32_t tok[65], pos[65], seq[65];
    uint8_t want[65];
    int n = 0, ia = 0, ib = 0;
    while (ia < 40 || ib < 25) {
        if (ia < 40) {
            tok[n] = a[ia];
            pos[n] = ia++;
            seq[n] = 0;
            want[n++] = 1;
        }
        if (ib < 25) {
            tok[n] = bb[ib];
            pos[n] = ib++;
            seq[n] = 1;
            want[n++] = 1;
        }
    }
    float *mixed = malloc(sizeof(float) * 65 * (size_t)c->n_vocab);
    px_batch b = {.n_tok = 65,
                  .tokens = tok,
                  .pos = pos,
                  .seq = seq,
                  .want_logits = want,
                  .n_seqs = 2,
                  .seqs = seqs};
    char err[256];
    ck_assert_msg(px_forward(m, &b, mixed, err, sizeof err) == 0, "%s", err);
    float d = 0;
    for (int r = 0; r < 65; r++) {
        const float *ref = seq[r] == 0 ? solo_a + (size_t)pos[r] * c->n_vocab
                                       : solo_b + (size_t)pos[r] * c->n_vocab;
        float e = max_abs_diff(ref, mixed + (size_t)r * c->n_vocab, (size_t)c->n_vocab);
        d = e > d ? e : d;
    }
    ck_assert_msg(d <= BATCH_TOL, "interleaved batch vs solo: max diff %g", (double)d);
    free(solo_a);
    free(solo_b);
    free(mixed);
    px_model_free(m);
    unlink(path);
    free(path);
}
END_TEST

/* Copy-on-write support: a sequence continued from copied blocks gives the
 * logits of the original. */
START_TEST(test_kv_copy) {
    char *path = make_model(PX_ARCH_LLAMA, PX_DTYPE_F32);
    px_model *m = load(path, 32);
    const px_model_config *c = px_model_config_get(m);
    int32_t ids[40];
    make_prompt(ids, 40, 3, c->n_vocab);
    int32_t blk[3] = {0, 1, 2};
    float *ref = run_seq(m, ids, 40, 40, blk, 3);
    /* Prefill 32 tokens into blocks 0,1, copy them to 5,6, then run the last
     * 8 tokens through the copies only. */
    float *tmp = run_seq(m, ids, 32, 32, blk, 2);
    px_model_kv_copy(m, 5, 0);
    px_model_kv_copy(m, 6, 1);
    memset(tmp, 0, sizeof(float) * 8 * (size_t)c->n_vocab);
    int32_t blk2[3] = {5, 6, 7}, pos[8], seq[8] = {0};
    uint8_t want[8];
    for (int i = 0; i < 8; i++) {
        pos[i] = 32 + i;
        want[i] = 1;
    }
    /* Scribble over the originals to prove they are not read. */
    px_model_kv_copy(m, 0, 9);
    px_model_kv_copy(m, 1, 9);
    px_batch_seq s = {blk2, 3};
    px_batch b = {.n_tok = 8,
                  .tokens = ids + 32,
                  .pos = pos,
                  .seq = seq,
                  .want_logits = want,
                  .n_seqs = 1,
                  .seqs = &s};
    char err[256];
    ck_assert_msg(px_forward(m, &b, tmp, err, sizeof err) == 0, "%s", err);
    float d = max_abs_diff(ref + 32 * (size_t)c->n_vocab, tmp, 8 * (size_t)c->n_vocab);
    ck_assert_msg(d <= BATCH_TOL, "continued from copies: max diff %g", (double)d);
    free(ref);
    free(tmp);
    px_model_free(m);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_forward_rejects_bad_batch) {
    char *path = make_model(PX_ARCH_GEMMA3, PX_DTYPE_F32);
    px_model *m = load(path, 8);
    const px_model_config *c = px_model_config_get(m);
    float *logits = malloc(sizeof(float) * 4 * (size_t)c->n_vocab);
    int32_t blk[2] = {0, 1}, bad_blk[1] = {8};
    int32_t tok[2] = {5, 6}, pos[2] = {0, 1}, seq[2] = {0, 0};
    uint8_t want[2] = {1, 1};
    px_batch_seq s = {blk, 2};
    px_batch b = {.n_tok = 2,
                  .tokens = tok,
                  .pos = pos,
                  .seq = seq,
                  .want_logits = want,
                  .n_seqs = 1,
                  .seqs = &s};
    char err[256];
    tok[1] = c->n_vocab;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "token id"));
    tok[1] = -1;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    tok[1] = 6;
    pos[1] = 32; /* block 2 of a 2-block table */
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "block table"));
    pos[1] = 5000; /* beyond the context */
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    pos[1] = 1;
    seq[1] = 1;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    seq[1] = 0;
    s.blocks = bad_blk;
    s.n_blocks = 1;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "block id"));
    s.blocks = blk;
    s.n_blocks = 2;
    b.n_tok = 0;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), PX_EINVAL);
    b.n_tok = 2;
    ck_assert_int_eq(px_forward(m, &b, logits, err, sizeof err), 0);
    free(logits);
    px_model_free(m);
    unlink(path);
    free(path);
}
END_TEST

/* --- bad files: rewrite a valid model with one edit --- */

typedef struct edit {
    const char *drop_key;       /* metadata key to leave out */
    const char *set_arch;       /* replace general.architecture */
    const char *drop_tensor;    /* tensor to leave out */
    const char *reshape_tensor; /* tensor whose ne[0] is doubled (data padded) */
    const char *retype_tensor;  /* tensor rewritten as Q4_1 (parsed, not computable) */
} edit;

static void copy_kv(const px_gguf *g, px_gguf_writer *w, int64_t i, const edit *e) {
    px_gguf_str k = px_gguf_kv_key(g, i);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
    if (e->drop_key && strcmp(key, e->drop_key) == 0) return;
    px_gguf_vtype t = px_gguf_kv_type(g, i);
    if (t == PX_GGUF_STRING) {
        px_gguf_str s;
        ck_assert_int_eq(px_gguf_get_str(g, key, &s, NULL, 0), 0);
        char *v = strndup(s.ptr, s.len);
        if (e->set_arch && strcmp(key, "general.architecture") == 0) {
            free(v);
            v = strdup(e->set_arch);
        }
        ck_assert_int_eq(px_gguf_writer_set_str(w, key, v), 0);
        free(v);
    } else if (t == PX_GGUF_ARRAY) {
        px_gguf_arr a;
        ck_assert_int_eq(px_gguf_get_arr(g, key, &a, NULL, 0), 0);
        if (a.type == PX_GGUF_STRING) {
            char **v = calloc(a.n, sizeof(char *));
            for (uint64_t j = 0; j < a.n; j++) {
                px_gguf_str s = px_gguf_arr_str(g, &a, j);
                v[j] = strndup(s.ptr, s.len);
            }
            ck_assert_int_eq(px_gguf_writer_set_arr_str(w, key, (const char *const *)v, a.n), 0);
            for (uint64_t j = 0; j < a.n; j++)
                free(v[j]);
            free(v);
        } else {
            ck_assert_int_eq(px_gguf_writer_set_arr(w, key, a.type, a.data, a.n), 0);
        }
    } else {
        /* Scalars: read through the typed getters. */
        uint32_t u;
        float f;
        bool bl;
        if (t == PX_GGUF_FLOAT32 && px_gguf_get_f32(g, key, &f, NULL, 0) == 0)
            ck_assert_int_eq(px_gguf_writer_set_f32(w, key, f), 0);
        else if (t == PX_GGUF_BOOL && px_gguf_get_bool(g, key, &bl, NULL, 0) == 0)
            ck_assert_int_eq(px_gguf_writer_set_bool(w, key, bl), 0);
        else if (px_gguf_get_u32(g, key, &u, NULL, 0) == 0)
            ck_assert_int_eq(px_gguf_writer_set_u32(w, key, u), 0);
        else
            ck_abort_msg("cannot copy key %s", key);
    }
}

static char *rewrite(const char *src, const edit *e) {
    char err[256];
    px_gguf *g = px_gguf_open(src, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    px_gguf_writer *w = px_gguf_writer_create();
    for (int64_t i = 0; i < px_gguf_n_kv(g); i++)
        copy_kv(g, w, i, e);
    for (int64_t i = 0; i < px_gguf_n_tensors(g); i++) {
        const px_gguf_tensor *t = px_gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (e->drop_tensor && strcmp(name, e->drop_tensor) == 0) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (e->reshape_tensor && strcmp(name, e->reshape_tensor) == 0) {
            ne[0] *= 2;
            void *d = calloc(2, t->nbytes);
            ck_assert_int_eq(px_gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, ne, d), 0);
            free(d);
        } else if (e->retype_tensor && strcmp(name, e->retype_tensor) == 0) {
            size_t sz = px_dtype_row_size(PX_DTYPE_Q4_1, ne[0]) * (size_t)(ne[1] * ne[2] * ne[3]);
            void *d = calloc(1, sz);
            ck_assert_int_eq(
                px_gguf_writer_add_tensor(w, name, PX_DTYPE_Q4_1, (int)t->n_dims, ne, d), 0);
            free(d);
        } else {
            ck_assert_int_eq(
                px_gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, ne, t->data), 0);
        }
    }
    char *out = px_test_tmpfile(".gguf");
    ck_assert_msg(px_gguf_writer_write(w, out, err, sizeof err) == 0, "%s", err);
    px_gguf_writer_destroy(w);
    px_gguf_close(g);
    return out;
}

static void expect_refused(const char *src, const edit *e, const char *needle) {
    char *path = rewrite(src, e);
    char err[512] = "";
    px_model *m = px_model_load(path, NULL, err, sizeof err);
    ck_assert_msg(m == NULL, "a bad file was accepted (expected '%s')", needle);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' does not name '%s'", err, needle);
    unlink(path);
    free(path);
}

START_TEST(test_bad_files_refused) {
    char *path = make_model(PX_ARCH_GEMMA3, PX_DTYPE_Q8_0);
    /* The unedited rewrite loads: the edits below are what breaks it. */
    edit none = {0};
    char *same = rewrite(path, &none);
    char err[256];
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_ctx = 256;
    px_model *m = px_model_load(same, &mo, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    px_model_free(m);
    unlink(same);
    free(same);

    expect_refused(path, &(edit){.set_arch = "gpt2"}, "gpt2");
    expect_refused(path, &(edit){.drop_key = "general.architecture"}, "general.architecture");
    expect_refused(path, &(edit){.drop_key = "gemma3.block_count"}, "gemma3.block_count");
    expect_refused(path, &(edit){.drop_key = "tokenizer.ggml.tokens"}, "tokenizer.ggml.tokens");
    expect_refused(path, &(edit){.drop_tensor = "blk.3.ffn_down.weight"}, "blk.3.ffn_down.weight");
    expect_refused(path, &(edit){.drop_tensor = "token_embd.weight"}, "token_embd.weight");
    expect_refused(path, &(edit){.reshape_tensor = "blk.1.attn_k.weight"}, "blk.1.attn_k.weight");
    expect_refused(path, &(edit){.retype_tensor = "blk.0.attn_q.weight"}, "blk.0.attn_q.weight");
    unlink(path);
    free(path);
    /* Not a GGUF at all, and a missing file. */
    char *junk = px_test_write_tmp("hello, world", 12);
    ck_assert_ptr_null(px_model_load(junk, NULL, err, sizeof err));
    unlink(junk);
    free(junk);
    ck_assert_ptr_null(px_model_load("/nonexistent/model.gguf", NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/model.gguf"));
}
END_TEST

Suite *px_suite_model(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_load_config_gemma3);
    tcase_add_test(tc, test_load_config_llama);
    tcase_add_test(tc, test_invariance_gemma3_f32);
    tcase_add_test(tc, test_invariance_llama_q8);
    tcase_add_test(tc, test_multi_sequence_batch);
    tcase_add_test(tc, test_repack_bitwise);
    tcase_add_test(tc, test_kv_copy);
    tcase_add_test(tc, test_forward_rejects_bad_batch);
    tcase_add_test(tc, test_bad_files_refused);
    suite_add_tcase(s, tc);
    return s;
}
