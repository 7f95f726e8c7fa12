/* gguf_write.c — the GGUF v3 writer: metadata and tensors collected in
 * memory (values serialized and data copied when set), then written in one
 * pass to a file or a buffer with the alignment padding the reader expects. */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes host-order fields: port it before building big-endian"
#endif

/* A metadata entry: its value already serialized as it goes after the type. */
typedef struct wkv {
    char *key;
    px_gguf_vtype type;
    uint8_t *val;
    size_t len;
} wkv;

typedef struct wtensor {
    char *name;
    px_dtype type;
    uint32_t n_dims;
    int64_t ne[4];
    void *data; /* our copy */
    size_t nbytes;
} wtensor;

struct px_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_t, cap_t;
};

px_gguf_writer *px_gguf_writer_create(void) {
    return calloc(1, sizeof(px_gguf_writer));
}

void px_gguf_writer_destroy(px_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->ts[i].name);
        free(w->ts[i].data);
    }
    free(w->kvs);
    free(w->ts);
    free(w);
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return PX_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Sets key to an already-serialized value (taking `val`), replacing any
 * earlier value of the key. */
static int set_kv(px_gguf_writer *w, const char *key, px_gguf_vtype type, uint8_t *val,
                  size_t len) {
    if (!w || !key) {
        free(val);
        return PX_EINVAL;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].val);
            w->kvs[i] = (wkv){w->kvs[i].key, type, val, len};
            return 0;
        }
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs)) {
        free(k);
        free(val);
        return PX_ENOMEM;
    }
    w->kvs[w->n_kv++] = (wkv){k, type, val, len};
    return 0;
}

static int set_bytes(px_gguf_writer *w, const char *key, px_gguf_vtype type, const void *v,
                     size_t n) {
    uint8_t *val = malloc(n ? n : 1);
    if (!val) return PX_ENOMEM;
    memcpy(val, v, n);
    return set_kv(w, key, type, val, n);
}

int px_gguf_writer_set_val(px_gguf_writer *w, const char *key, px_gguf_vtype type, const void *v) {
    size_t sz = px_gguf_vtype_size(type);
    if (!sz || !v) return PX_EINVAL;
    return set_bytes(w, key, type, v, sz);
}

int px_gguf_writer_set_u32(px_gguf_writer *w, const char *key, uint32_t v) {
    return set_bytes(w, key, PX_GGUF_UINT32, &v, 4);
}

int px_gguf_writer_set_i32(px_gguf_writer *w, const char *key, int32_t v) {
    return set_bytes(w, key, PX_GGUF_INT32, &v, 4);
}

int px_gguf_writer_set_f32(px_gguf_writer *w, const char *key, float v) {
    return set_bytes(w, key, PX_GGUF_FLOAT32, &v, 4);
}

int px_gguf_writer_set_bool(px_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_bytes(w, key, PX_GGUF_BOOL, &b, 1);
}

int px_gguf_writer_set_str(px_gguf_writer *w, const char *key, const char *v) {
    if (!v) return PX_EINVAL;
    uint64_t len = strlen(v);
    uint8_t *val = malloc(8 + (size_t)len);
    if (!val) return PX_ENOMEM;
    memcpy(val, &len, 8);
    memcpy(val + 8, v, (size_t)len);
    return set_kv(w, key, PX_GGUF_STRING, val, 8 + (size_t)len);
}

int px_gguf_writer_set_arr(px_gguf_writer *w, const char *key, px_gguf_vtype type, const void *data,
                           uint64_t n) {
    size_t sz = px_gguf_vtype_size(type), bytes, total;
    if (!sz || (n && !data)) return PX_EINVAL;
    if (n > SIZE_MAX || __builtin_mul_overflow((size_t)n, sz, &bytes) ||
        __builtin_add_overflow(bytes, (size_t)12, &total))
        return PX_ETOOBIG;
    uint8_t *val = malloc(total);
    if (!val) return PX_ENOMEM;
    uint32_t t = type;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    if (bytes) memcpy(val + 12, data, bytes);
    return set_kv(w, key, PX_GGUF_ARRAY, val, total);
}

int px_gguf_writer_set_arr_str(px_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n) {
    size_t total = 12;
    if ((n && !v) || n > SIZE_MAX / 8) return PX_EINVAL;
    for (uint64_t i = 0; i < n; i++)
        if (!v[i] || __builtin_add_overflow(total, 8 + strlen(v[i]), &total))
            return v[i] ? PX_ETOOBIG : PX_EINVAL;
    uint8_t *val = malloc(total), *p = val + 12;
    if (!val) return PX_ENOMEM;
    uint32_t t = PX_GGUF_STRING;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strlen(v[i]);
        memcpy(p, &len, 8);
        memcpy(p + 8, v[i], (size_t)len);
        p += 8 + len;
    }
    return set_kv(w, key, PX_GGUF_ARRAY, val, total);
}

int px_gguf_writer_add_tensor(px_gguf_writer *w, const char *name, px_dtype type, int n_dims,
                              const int64_t *ne, const void *data) {
    if (!w || !name || !ne || !data || n_dims < 1 || n_dims > 4) return PX_EINVAL;
    wtensor t = {.type = type, .n_dims = (uint32_t)n_dims, .ne = {1, 1, 1, 1}};
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return PX_EINVAL;
        t.ne[d] = ne[d];
    }
    /* row_size is 0 for unknown types and ne[0] not a multiple of the block */
    uint64_t bytes = px_dtype_row_size(type, t.ne[0]);
    if (bytes == 0) return PX_EINVAL;
    if (__builtin_mul_overflow(bytes, (uint64_t)t.ne[1], &bytes) ||
        __builtin_mul_overflow(bytes, (uint64_t)t.ne[2], &bytes) ||
        __builtin_mul_overflow(bytes, (uint64_t)t.ne[3], &bytes) || bytes > SIZE_MAX)
        return PX_ETOOBIG;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0) return PX_EINVAL;
    t.nbytes = (size_t)bytes;
    t.name = strdup(name);
    t.data = malloc(t.nbytes);
    if (!t.name || !t.data || grow((void **)&w->ts, &w->cap_t, w->n_t, sizeof *w->ts)) {
        free(t.name);
        free(t.data);
        return PX_ENOMEM;
    }
    memcpy(t.data, data, t.nbytes);
    w->ts[w->n_t++] = t;
    return 0;
}

/* Output: a FILE or a growing memory buffer; the first error sticks. */
typedef struct sink {
    FILE *f;
    uint8_t *buf;
    size_t len, cap;
    int rc;
} sink;

static void put(sink *s, const void *p, size_t n) {
    if (s->rc || n == 0) return;
    if (s->f) {
        if (fwrite(p, 1, n, s->f) != n) s->rc = PX_EIO;
        s->len += n;
        return;
    }
    if (n > s->cap - s->len) {
        size_t nc = s->cap ? s->cap : 4096;
        while (nc - s->len < n)
            if (__builtin_mul_overflow(nc, (size_t)2, &nc)) {
                s->rc = PX_ENOMEM;
                return;
            }
        uint8_t *b = realloc(s->buf, nc);
        if (!b) {
            s->rc = PX_ENOMEM;
            return;
        }
        s->buf = b;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void put_u32(sink *s, uint32_t v) {
    put(s, &v, 4);
}

static void put_u64(sink *s, uint64_t v) {
    put(s, &v, 8);
}

static void pad(sink *s, size_t align) {
    static const uint8_t zeros[64];
    size_t n = (align - s->len % align) % align;
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        put(s, zeros, k);
        n -= k;
    }
}

/* The alignment the file will declare: general.alignment if set (it must be
 * a u32 power of two, as the reader demands), else the default. */
static int writer_alignment(const px_gguf_writer *w, size_t *align, char *err, size_t errlen) {
    *align = PX_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        uint32_t a = 0;
        if (w->kvs[i].type == PX_GGUF_UINT32) memcpy(&a, w->kvs[i].val, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return px_fail(err, errlen, PX_EINVAL,
                           "general.alignment must be a u32 nonzero power of two");
        *align = a;
    }
    return 0;
}

static int emit(const px_gguf_writer *w, sink *s, char *err, size_t errlen) {
    size_t align, off = 0;
    int rc = writer_alignment(w, &align, err, errlen);
    if (rc) return rc;
    put(s, "GGUF", 4);
    put_u32(s, 3);
    put_u64(s, w->n_t);
    put_u64(s, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_u64(s, strlen(w->kvs[i].key));
        put(s, w->kvs[i].key, strlen(w->kvs[i].key));
        put_u32(s, w->kvs[i].type);
        put(s, w->kvs[i].val, w->kvs[i].len);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        put_u64(s, strlen(t->name));
        put(s, t->name, strlen(t->name));
        put_u32(s, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(s, (uint64_t)t->ne[d]);
        put_u32(s, t->type);
        put_u64(s, off);
        if (__builtin_add_overflow(off, t->nbytes, &off) ||
            __builtin_add_overflow(off, (align - off % align) % align, &off))
            return px_fail(err, errlen, PX_ETOOBIG, "tensor data exceeds the address space");
    }
    /* Data: each tensor padded to the alignment, the last one too, as ggml does. */
    pad(s, align);
    for (size_t i = 0; i < w->n_t; i++) {
        put(s, w->ts[i].data, w->ts[i].nbytes);
        pad(s, align);
    }
    if (s->rc)
        return px_fail(err, errlen, s->rc, "writing GGUF: %s",
                       s->f ? strerror(errno) : px_strerror(s->rc));
    return 0;
}

int px_gguf_writer_write(px_gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (!w || !path) return px_fail(err, errlen, PX_EINVAL, "no writer or path");
    sink s = {.f = fopen(path, "wb")};
    if (!s.f) return px_fail(err, errlen, PX_EIO, "cannot create '%s': %s", path, strerror(errno));
    int rc = emit(w, &s, err, errlen);
    if (fclose(s.f) != 0 && rc == 0)
        rc = px_fail(err, errlen, PX_EIO, "cannot write '%s': %s", path, strerror(errno));
    if (rc) remove(path); /* never leave a half-written model behind */
    return rc;
}

int px_gguf_writer_write_mem(px_gguf_writer *w, void **out, size_t *size, char *err,
                             size_t errlen) {
    if (!w || !out || !size) return px_fail(err, errlen, PX_EINVAL, "no writer or output");
    sink s = {0};
    int rc = emit(w, &s, err, errlen);
    if (rc) {
        free(s.buf);
        return rc;
    }
    *out = s.buf;
    *size = s.len;
    return 0;
}
