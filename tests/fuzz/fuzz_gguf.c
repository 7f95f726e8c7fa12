/* fuzz_gguf.c — libFuzzer target for model files: the GGUF reader (from
 * memory, and from a file through a memfd), every metadata and tensor
 * getter, the vocabulary loader, and, for files that parse, px_model_load
 * and px_vision_load with small run-time sizes (the start-up path of a
 * hostile GGUF).
 *
 * Input: a whole GGUF file. Checks: a refused file gets a message; a parsed
 * one hands out only tensors and strings inside the input; a loaded
 * vocabulary encodes and decodes a fixed text with ids in range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "engine/px.h"
#include "engine/tokenizer.h"
#include "engine/vision.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_pool *pool;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    pool = px_pool_create(1);
    if (!pool) abort();
    return 0;
}

/* p[0..n) lies inside the input. */
static void check_inside(const uint8_t *data, size_t size, const void *p, uint64_t n,
                         const char *what) {
    const uint8_t *b = p;
    FZ_CHECK(n == 0 || (b >= data && b <= data + size && n <= (uint64_t)(data + size - b)),
             "%s outside the file", what);
}

static void walk(const px_gguf *g, const uint8_t *data, size_t size) {
    char err[256];
    int64_t n_kv = px_gguf_n_kv(g);
    FZ_CHECK(n_kv >= 0, "n_kv %lld", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        px_gguf_str k = px_gguf_kv_key(g, i);
        check_inside(data, size, k.ptr, k.len, "key");
        px_gguf_vtype t = px_gguf_kv_type(g, i);
        FZ_CHECK((unsigned)t < PX_GGUF_VTYPE_COUNT, "type %d", (int)t);
        /* Look the key up by name: only keys without NULs are reachable. */
        char key[128];
        if (k.len >= sizeof key || memchr(k.ptr, 0, k.len)) continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        FZ_CHECK(px_gguf_find_key(g, key) == i, "key %s not found at %lld", key, (long long)i);
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        px_gguf_str s;
        px_gguf_arr a;
        (void)px_gguf_get_u32(g, key, &u32, err, sizeof err);
        (void)px_gguf_get_i64(g, key, &i64, err, sizeof err);
        (void)px_gguf_get_f32(g, key, &f32, err, sizeof err);
        (void)px_gguf_get_bool(g, key, &b, err, sizeof err);
        if (px_gguf_get_str(g, key, &s, err, sizeof err) == 0)
            check_inside(data, size, s.ptr, s.len, "string");
        if (px_gguf_get_arr(g, key, &a, err, sizeof err) == 0) {
            if (a.type == PX_GGUF_STRING) {
                for (uint64_t j = 0; j < a.n; j++) {
                    px_gguf_str e = px_gguf_arr_str(g, &a, j);
                    check_inside(data, size, e.ptr, e.len, "array string");
                }
            } else if (px_gguf_vtype_size(a.type) > 0) {
                check_inside(data, size, a.data, a.n * px_gguf_vtype_size(a.type), "array");
            }
        }
    }
    int64_t n_t = px_gguf_n_tensors(g);
    FZ_CHECK(n_t >= 0, "n_tensors %lld", (long long)n_t);
    for (int64_t i = 0; i < n_t; i++) {
        const px_gguf_tensor *t = px_gguf_tensor_at(g, i);
        FZ_CHECK(t != NULL, "tensor %lld", (long long)i);
        FZ_CHECK(t->n_dims >= 1 && t->n_dims <= 4, "n_dims %u", t->n_dims);
        check_inside(data, size, t->name.ptr, t->name.len, "tensor name");
        check_inside(data, size, t->data, t->nbytes, "tensor data");
        uint64_t ne = 1;
        for (int d = 0; d < 4; d++) {
            FZ_CHECK(t->ne[d] >= 1, "ne[%d] = %lld", d, (long long)t->ne[d]);
            ne *= (uint64_t)t->ne[d]; /* bounded: the data is inside the file */
        }
        FZ_CHECK(t->nbytes > 0 || ne == 0, "empty tensor");
        volatile uint8_t sink = 0;
        if (t->nbytes) sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
        (void)sink;
    }
}

static const char sample[] = "Hello world, the <start_of_turn>user\n<bos> caf\xc3\xa9 \xe2\x96\x81 "
                             "\xf0\x9f\x98\x80 \xff\xfe end";

static void use_vocab(const px_tokenizer *t) {
    int32_t nv = px_tokenizer_n_vocab(t);
    FZ_CHECK(nv > 0, "n_vocab %d", nv);
    int32_t ids[256];
    for (int flags = 0; flags < 4; flags++) {
        int64_t n = px_tokenizer_encode(t, sample, sizeof sample - 1, flags, ids, 256);
        if (n < 0) continue; /* a vocabulary may lack what the text needs */
        for (int64_t i = 0; i < PX_MIN(n, 256); i++)
            FZ_CHECK(ids[i] >= 0 && ids[i] < nv, "id %d of %d", ids[i], nv);
        px_detok d;
        px_detok_init(&d, t, flags & 1);
        char out[64];
        for (int64_t i = 0; i < PX_MIN(n, 256); i++)
            (void)px_detok_feed(&d, ids[i], out, sizeof out);
        (void)px_detok_flush(&d, out, sizeof out);
    }
    char piece[64];
    for (int32_t id = 0; id < PX_MIN(nv, 2048); id++) {
        int r = px_tokenizer_piece(t, id, id & 1, piece, sizeof piece);
        FZ_CHECK(r <= (int)sizeof piece, "piece %d: %d bytes", id, r);
        (void)px_tokenizer_type(t, id);
        (void)px_tokenizer_is_eog(t, id);
    }
    (void)px_tokenizer_find(t, "<end_of_turn>");
}

/* Writes the file to a memfd and loads it as a model and as an mmproj. */
static void load_as_file(const uint8_t *data, size_t size) {
    int fd = memfd_create("px-fuzz-gguf", MFD_CLOEXEC);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    char path[64], err[256] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    px_model_opts o;
    px_model_opts_init(&o);
    o.n_threads = 1;
    o.n_ctx = 64;
    o.max_batch_tokens = 16;
    o.max_logit_rows = 2;
    o.kv_block_size = 16;
    o.kv_blocks = 4;
    px_model *m = px_model_load(path, &o, err, sizeof err);
    FZ_LOG("model: %s\n", m ? "loaded" : err);
    if (m) {
        FZ_CHECK(px_model_n_ctx(m) > 0 && px_model_n_ctx(m) <= 64, "n_ctx %d", px_model_n_ctx(m));
        px_model_free(m);
    } else {
        FZ_CHECK(err[0] != '\0', "model refused without a message");
    }
    err[0] = '\0';
    px_vision *v = px_vision_load(path, pool, err, sizeof err);
    FZ_LOG("mmproj: %s\n", v ? "loaded" : err);
    if (v)
        px_vision_free(v);
    else
        FZ_CHECK(err[0] != '\0', "mmproj refused without a message");
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256] = "";
    px_gguf *g = px_gguf_open_mem(data, size, err, sizeof err);
    if (!g) {
        FZ_LOG("gguf refused: %s\n", err);
        FZ_CHECK(err[0] != '\0', "refused without a message");
        return 0;
    }
    FZ_CHECK(px_gguf_version(g) == 2 || px_gguf_version(g) == 3, "version %u", px_gguf_version(g));
    size_t al = px_gguf_alignment(g);
    FZ_CHECK(al > 0 && (al & (al - 1)) == 0, "alignment %zu", al);
    walk(g, data, size);
    err[0] = '\0';
    px_tokenizer *t = px_tokenizer_create(g, err, sizeof err);
    FZ_LOG("vocabulary: %s\n", t ? "loaded" : err);
    if (t) {
        use_vocab(t);
        px_tokenizer_destroy(t);
    } else {
        FZ_CHECK(err[0] != '\0', "vocabulary refused without a message");
    }
    px_gguf_close(g);
    load_as_file(data, size);
    return 0;
}
