/* gguf.c — the GGUF v2/v3 reader: a validating parser over a read-only mmap
 * or a caller's buffer, with hashed lookups of keys and tensor names (the
 * writer is gguf_write.c). The file is untrusted: every read is bounds-checked
 * against the image size and every size computed with overflow checks, so a
 * malformed file is refused with a message, never read past its end. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "px.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian fields with memcpy: port it before building big-endian"
#endif

#define HEADER_BYTES 24     /* magic, version, n_tensors, n_kv */
#define KV_MIN_BYTES 13     /* empty key (8) + value type (4) + 1-byte value */
#define TENSOR_MIN_BYTES 32 /* empty name (8) + n_dims (4) + ne[0] (8) + type (4) + offset (8) */
#define MAX_DEPTH 8         /* array nesting levels accepted (real files use 1) */

/* One metadata entry; pointers go into the image. */
typedef struct kv {
    px_gguf_str key;
    px_gguf_vtype type;
    px_gguf_vtype arr_type; /* ARRAY: element type */
    uint64_t n;             /* ARRAY: element count; STRING: byte length */
    const uint8_t *val;     /* scalar bytes, string bytes, or first array element */
    size_t *str_offs;       /* string arrays: image offset of each element's length field */
} kv;

/* Open-addressing hash index over names; slots hold entry indices, -1 empty. */
typedef struct hindex {
    int64_t *slots;
    size_t mask;
} hindex;

struct px_gguf {
    const uint8_t *base; /* the image (mapping or caller's buffer) */
    size_t size;
    void *map; /* non-NULL when we own an mmap of map_len bytes */
    size_t map_len;
    uint32_t version;
    size_t alignment;
    size_t data_start; /* image offset of the data section */
    int64_t n_kv;
    kv *kvs;
    hindex kv_index;
    int64_t n_tensors;
    px_gguf_tensor *tensors;
    hindex t_index;
};

/* Parse cursor; `ctx` names the entry being parsed, for messages. */
typedef struct rd {
    const uint8_t *p;
    size_t size, pos;
    char *err;
    size_t errlen;
    char ctx[160];
} rd;

static const char *const vtype_names[PX_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

static const char *vtype_name(uint32_t t) {
    return t < PX_GGUF_VTYPE_COUNT ? vtype_names[t] : "unknown";
}

size_t px_gguf_vtype_size(uint32_t t) {
    switch (t) {
    case PX_GGUF_UINT8:
    case PX_GGUF_INT8:
    case PX_GGUF_BOOL: return 1;
    case PX_GGUF_UINT16:
    case PX_GGUF_INT16: return 2;
    case PX_GGUF_UINT32:
    case PX_GGUF_INT32:
    case PX_GGUF_FLOAT32: return 4;
    case PX_GGUF_UINT64:
    case PX_GGUF_INT64:
    case PX_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Smallest encoding of one element of type t (empty string, empty array). */
static size_t min_elem_size(uint32_t t) {
    if (t == PX_GGUF_STRING) return 8;
    if (t == PX_GGUF_ARRAY) return 12;
    return px_gguf_vtype_size(t);
}

/* Copies up to 64 bytes of an untrusted name into buf for a message,
 * replacing anything but printable ASCII so logs stay readable. */
static const char *show(char *buf, size_t cap, const char *p, uint64_t len) {
    size_t n = len < 64 ? (size_t)len : 64, o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[o++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (n < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static int need(rd *r, uint64_t n) {
    if (n > r->size - r->pos)
        return px_fail(r->err, r->errlen, PX_EFORMAT,
                       "%s: truncated: need %llu bytes at offset %zu, file is %zu bytes", r->ctx,
                       (unsigned long long)n, r->pos, r->size);
    return 0;
}

static int rd_u32(rd *r, uint32_t *v) {
    int rc = need(r, 4);
    if (rc) return rc;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v) {
    int rc = need(r, 8);
    if (rc) return rc;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A length-prefixed string; `what` names it ("key", "value", "name"). */
static int rd_str(rd *r, px_gguf_str *s, const char *what) {
    uint64_t len;
    int rc = rd_u64(r, &len);
    if (rc) return rc;
    if (len > r->size - r->pos)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: %s length %llu exceeds the file", r->ctx,
                       what, (unsigned long long)len);
    s->ptr = (const char *)r->p + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

/* Refuses an array count that the rest of the file cannot hold, before
 * anything is allocated or iterated for it. */
static int check_count(rd *r, uint32_t type, uint64_t n) {
    if (type >= PX_GGUF_VTYPE_COUNT)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: unknown array element type %u", r->ctx,
                       type);
    if (n > (r->size - r->pos) / min_elem_size(type))
        return px_fail(r->err, r->errlen, PX_EFORMAT,
                       "%s: array of %llu %s elements exceeds the file", r->ctx,
                       (unsigned long long)n, vtype_name(type));
    return 0;
}

/* Validates and skips n elements of `type`. Nested arrays are walked with an
 * explicit stack of fixed depth, so a nesting bomb costs no recursion. */
static int skip_elems(rd *r, uint32_t type, uint64_t n) {
    struct {
        uint32_t type;
        uint64_t left;
    } st[MAX_DEPTH];
    int sp = 0, rc;
    st[sp].type = type;
    st[sp++].left = n;
    while (sp > 0) {
        uint32_t t = st[sp - 1].type;
        if (st[sp - 1].left == 0) {
            sp--;
            continue;
        }
        size_t sz = px_gguf_vtype_size(t);
        if (sz) { /* check_count() bounded left * sz by the remaining bytes */
            r->pos += (size_t)st[sp - 1].left * sz;
            st[sp - 1].left = 0;
            continue;
        }
        st[sp - 1].left--;
        if (t == PX_GGUF_STRING) {
            px_gguf_str s;
            if ((rc = rd_str(r, &s, "string element"))) return rc;
            continue;
        }
        uint32_t it;
        uint64_t in;
        if ((rc = rd_u32(r, &it)) || (rc = rd_u64(r, &in)) || (rc = check_count(r, it, in)))
            return rc;
        if (sp == MAX_DEPTH)
            return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: arrays nested deeper than %d levels",
                           r->ctx, MAX_DEPTH);
        st[sp].type = it;
        st[sp++].left = in;
    }
    return 0;
}

static int parse_value(rd *r, kv *e) {
    int rc;
    size_t sz = px_gguf_vtype_size(e->type);
    if (sz) {
        if ((rc = need(r, sz))) return rc;
        e->val = r->p + r->pos;
        r->pos += sz;
        return 0;
    }
    if (e->type == PX_GGUF_STRING) {
        px_gguf_str s;
        if ((rc = rd_str(r, &s, "string"))) return rc;
        e->val = (const uint8_t *)s.ptr;
        e->n = s.len;
        return 0;
    }
    uint32_t at;
    uint64_t n;
    if ((rc = rd_u32(r, &at)) || (rc = rd_u64(r, &n)) || (rc = check_count(r, at, n))) return rc;
    e->arr_type = (px_gguf_vtype)at;
    e->n = n;
    e->val = r->p + r->pos;
    if (at != PX_GGUF_STRING || n == 0) return skip_elems(r, at, n);
    /* String array: remember where each element starts so that lookups are
     * O(1). n <= remaining / 8, so the table is bounded by the file size. */
    e->str_offs = malloc((size_t)n * sizeof *e->str_offs);
    if (!e->str_offs)
        return px_fail(r->err, r->errlen, PX_ENOMEM, "%s: out of memory for %llu strings", r->ctx,
                       (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        px_gguf_str s;
        e->str_offs[i] = r->pos;
        if ((rc = rd_str(r, &s, "string element"))) return rc;
    }
    return 0;
}

static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int index_init(hindex *ix, int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) /* n is bounded by the file size, so this ends */
        cap *= 2;
    ix->slots = malloc(cap * sizeof *ix->slots);
    if (!ix->slots) return PX_ENOMEM;
    memset(ix->slots, 0xff, cap * sizeof *ix->slots);
    ix->mask = cap - 1;
    return 0;
}

/* Returns the slot holding `name`, or the empty slot where it would go.
 * name_at(ctx, i) gives the name of entry i. */
static int64_t *index_slot(const hindex *ix, const char *p, size_t n,
                           px_gguf_str (*name_at)(const px_gguf *, int64_t), const px_gguf *g) {
    size_t i = (size_t)hash_bytes(p, n) & ix->mask;
    for (;;) {
        int64_t e = ix->slots[i];
        if (e < 0) return &ix->slots[i];
        px_gguf_str s = name_at(g, e);
        if (s.len == n && memcmp(s.ptr, p, n) == 0) return &ix->slots[i];
        i = (i + 1) & ix->mask;
    }
}

static px_gguf_str kv_name(const px_gguf *g, int64_t i) {
    return g->kvs[i].key;
}

static px_gguf_str tensor_name(const px_gguf *g, int64_t i) {
    return g->tensors[i].name;
}

static int parse_kvs(px_gguf *g, rd *r) {
    char nm[80];
    int rc;
    if (!(g->kvs = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kvs)) ||
        index_init(&g->kv_index, g->n_kv))
        return px_fail(r->err, r->errlen, PX_ENOMEM, "out of memory for %lld metadata entries",
                       (long long)g->n_kv);
    for (int64_t i = 0; i < g->n_kv; i++) {
        kv *e = &g->kvs[i];
        uint32_t type;
        snprintf(r->ctx, sizeof r->ctx, "metadata entry %lld", (long long)i);
        if ((rc = rd_str(r, &e->key, "key"))) return rc;
        if (e->key.len == 0)
            return px_fail(r->err, r->errlen, PX_EFORMAT, "metadata entry %lld has an empty key",
                           (long long)i);
        snprintf(r->ctx, sizeof r->ctx, "metadata key '%s'",
                 show(nm, sizeof nm, e->key.ptr, e->key.len));
        int64_t *slot = index_slot(&g->kv_index, e->key.ptr, (size_t)e->key.len, kv_name, g);
        if (*slot >= 0)
            return px_fail(r->err, r->errlen, PX_EFORMAT, "duplicate metadata key '%s'", nm);
        *slot = i;
        if ((rc = rd_u32(r, &type))) return rc;
        if (type >= PX_GGUF_VTYPE_COUNT)
            return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: unknown value type %u", r->ctx,
                           type);
        e->type = (px_gguf_vtype)type;
        if ((rc = parse_value(r, e))) return rc;
    }
    return 0;
}

static int parse_alignment(px_gguf *g, rd *r) {
    g->alignment = PX_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = px_gguf_find_key(g, "general.alignment");
    if (i < 0) return 0;
    if (g->kvs[i].type != PX_GGUF_UINT32)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "general.alignment has type %s, expected u32",
                       vtype_name(g->kvs[i].type));
    uint32_t a;
    memcpy(&a, g->kvs[i].val, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return px_fail(r->err, r->errlen, PX_EFORMAT,
                       "general.alignment %u is not a nonzero power of two", a);
    g->alignment = a;
    return 0;
}

/* One tensor info: name, n_dims, ne[n_dims], type, offset. */
static int parse_tensor(px_gguf *g, rd *r, int64_t i) {
    px_gguf_tensor *t = &g->tensors[i];
    char nm[80];
    int rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor info %lld", (long long)i);
    if ((rc = rd_str(r, &t->name, "name"))) return rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor '%s'", show(nm, sizeof nm, t->name.ptr, t->name.len));
    int64_t *slot = index_slot(&g->t_index, t->name.ptr, (size_t)t->name.len, tensor_name, g);
    if (*slot >= 0) return px_fail(r->err, r->errlen, PX_EFORMAT, "duplicate tensor name '%s'", nm);
    *slot = i;
    if ((rc = rd_u32(r, &t->n_dims))) return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: n_dims %u outside 1..4", r->ctx,
                       t->n_dims);
    for (uint32_t d = 0; d < 4; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && (rc = rd_u64(r, &ne))) return rc;
        if (ne == 0 || ne > INT64_MAX)
            return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: ne[%u] = %llu is out of range",
                           r->ctx, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    uint32_t type;
    if ((rc = rd_u32(r, &type))) return rc;
    const px_dtype_info *info = px_dtype_get(type);
    if (!info->name)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: unknown tensor type %u", r->ctx, type);
    t->type = (px_dtype)type;
    if (t->ne[0] % info->block_elems != 0)
        return px_fail(r->err, r->errlen, PX_EFORMAT,
                       "%s: ne[0] = %lld is not a multiple of the %s block size %d", r->ctx,
                       (long long)t->ne[0], info->name, info->block_elems);
    uint64_t bytes = px_dtype_row_size(t->type, t->ne[0]);
    if (bytes == 0 || __builtin_mul_overflow(bytes, (uint64_t)t->ne[1], &bytes) ||
        __builtin_mul_overflow(bytes, (uint64_t)t->ne[2], &bytes) ||
        __builtin_mul_overflow(bytes, (uint64_t)t->ne[3], &bytes) || bytes > SIZE_MAX)
        return px_fail(r->err, r->errlen, PX_EFORMAT, "%s: byte size overflows", r->ctx);
    t->nbytes = bytes;
    if ((rc = rd_u64(r, &t->offset))) return rc;
    if (t->offset % g->alignment != 0)
        return px_fail(r->err, r->errlen, PX_EFORMAT,
                       "%s: offset %llu is not a multiple of the alignment %zu", r->ctx,
                       (unsigned long long)t->offset, g->alignment);
    return 0;
}

typedef struct span {
    uint64_t off, end;
    int64_t idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Every tensor's data inside the data section, and no two sharing a byte. */
static int check_data(px_gguf *g, rd *r) {
    char nm[80], nm2[80];
    size_t avail = g->data_start <= g->size ? g->size - g->data_start : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        px_gguf_tensor *t = &g->tensors[i];
        show(nm, sizeof nm, t->name.ptr, t->name.len);
        if (g->data_start > g->size || t->offset >= avail)
            return px_fail(r->err, r->errlen, PX_EFORMAT,
                           "tensor '%s': offset %llu outside the file (data section has %zu bytes)",
                           nm, (unsigned long long)t->offset, avail);
        if (t->nbytes > avail - t->offset)
            return px_fail(r->err, r->errlen, PX_EFORMAT,
                           "tensor '%s': %llu bytes at offset %llu run past the end of the file "
                           "(data section has %zu bytes)",
                           nm, (unsigned long long)t->nbytes, (unsigned long long)t->offset, avail);
        t->data = g->base + g->data_start + t->offset;
    }
    if (g->n_tensors < 2) return 0;
    span *s = malloc((size_t)g->n_tensors * sizeof *s);
    if (!s) return px_fail(r->err, r->errlen, PX_ENOMEM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++)
        s[i] = (span){g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].nbytes, i};
    qsort(s, (size_t)g->n_tensors, sizeof *s, span_cmp);
    int rc = 0;
    /* Sorted by start and never empty, so any overlap shows between neighbours. */
    for (int64_t i = 1; i < g->n_tensors && !rc; i++) {
        if (s[i - 1].end > s[i].off) {
            const px_gguf_tensor *a = &g->tensors[s[i - 1].idx], *b = &g->tensors[s[i].idx];
            rc = px_fail(r->err, r->errlen, PX_EFORMAT,
                         "tensors '%s' (offset %llu, %llu bytes) and '%s' (offset %llu) overlap",
                         show(nm, sizeof nm, a->name.ptr, a->name.len),
                         (unsigned long long)a->offset, (unsigned long long)a->nbytes,
                         show(nm2, sizeof nm2, b->name.ptr, b->name.len),
                         (unsigned long long)b->offset);
        }
    }
    free(s);
    return rc;
}

static int parse(px_gguf *g, char *err, size_t errlen) {
    rd r = {.p = g->base, .size = g->size, .err = err, .errlen = errlen, .ctx = "header"};
    int rc;
    if (g->size >= 4 && memcmp(g->base, "GGUF", 4) != 0)
        return px_fail(err, errlen, PX_EFORMAT, "bad magic %02x %02x %02x %02x: not a GGUF file",
                       g->base[0], g->base[1], g->base[2], g->base[3]);
    if (g->size >= 8) {
        uint32_t v;
        memcpy(&v, g->base + 4, 4);
        if (v != 2 && v != 3) {
            uint32_t sw = __builtin_bswap32(v);
            return px_fail(err, errlen, PX_EFORMAT, "unsupported GGUF version %u%s", v,
                           (sw == 2 || sw == 3) ? " (a big-endian file?)"
                           : v == 1             ? " (only 2 and 3 are read)"
                                                : "");
        }
        g->version = v;
    }
    if (g->size < HEADER_BYTES)
        return px_fail(err, errlen, PX_EFORMAT,
                       "truncated header: file is %zu bytes, a GGUF header needs %d", g->size,
                       HEADER_BYTES);
    uint64_t n_tensors, n_kv;
    memcpy(&n_tensors, g->base + 8, 8);
    memcpy(&n_kv, g->base + 16, 8);
    r.pos = HEADER_BYTES;
    size_t left = g->size - HEADER_BYTES;
    if (n_kv > left / KV_MIN_BYTES)
        return px_fail(err, errlen, PX_EFORMAT, "metadata count %llu exceeds the file (%zu bytes)",
                       (unsigned long long)n_kv, g->size);
    if (n_tensors > left / TENSOR_MIN_BYTES)
        return px_fail(err, errlen, PX_EFORMAT, "tensor count %llu exceeds the file (%zu bytes)",
                       (unsigned long long)n_tensors, g->size);
    g->n_kv = (int64_t)n_kv;
    if ((rc = parse_kvs(g, &r)) || (rc = parse_alignment(g, &r))) return rc;
    g->n_tensors = (int64_t)n_tensors;
    if (!(g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors)) ||
        index_init(&g->t_index, g->n_tensors))
        return px_fail(err, errlen, PX_ENOMEM, "out of memory for %llu tensors",
                       (unsigned long long)n_tensors);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((rc = parse_tensor(g, &r, i))) return rc;
    /* The data section starts at the next multiple of the alignment; a file
     * without tensors may end before that padding. */
    size_t start;
    if (__builtin_add_overflow(r.pos, g->alignment - 1, &start))
        start = SIZE_MAX; /* only reachable with a (size_t)-sized image */
    g->data_start = start & ~(g->alignment - 1);
    return check_data(g, &r);
}

/* Parses base[0..size) into a new px_gguf (not owning the image). */
static px_gguf *parse_new(const void *base, size_t size, char *err, size_t errlen) {
    px_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        return NULL;
    }
    g->base = base;
    g->size = size;
    if (parse(g, err, errlen) != 0) {
        px_gguf_close(g);
        return NULL;
    }
    return g;
}

px_gguf *px_gguf_open_mem(const void *data, size_t size, char *err, size_t errlen) {
    static const uint8_t empty[1];
    return parse_new(data ? data : empty, data ? size : 0, err, errlen);
}

px_gguf *px_gguf_open(const char *path, char *err, size_t errlen) {
    char msg[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        px_fail(err, errlen, PX_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        px_fail(err, errlen, PX_EIO, "'%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0 || (uint64_t)st.st_size > SIZE_MAX) {
        px_fail(err, errlen, PX_EFORMAT, "'%s': %s", path,
                st.st_size == 0 ? "empty file, not a GGUF file" : "file too large to map");
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    /* Hazard: a file truncated by someone else while mapped raises SIGBUS on
     * access; model files are expected to be immutable while served. */
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        px_fail(err, errlen, PX_EIO, "cannot map '%s': %s", path, strerror(map_errno));
        return NULL;
    }
    px_gguf *g = parse_new(map, size, msg, sizeof msg);
    if (!g) {
        munmap(map, size);
        px_fail(err, errlen, PX_EFORMAT, "%s: %s", path, msg);
        return NULL;
    }
    g->map = map;
    g->map_len = size;
    return g;
}

void px_gguf_close(px_gguf *g) {
    if (!g) return;
    if (g->kvs)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kvs[i].str_offs);
    free(g->kvs);
    free(g->kv_index.slots);
    free(g->tensors);
    free(g->t_index.slots);
    if (g->map) munmap(g->map, g->map_len);
    free(g);
}

uint32_t px_gguf_version(const px_gguf *g) {
    return g->version;
}

size_t px_gguf_alignment(const px_gguf *g) {
    return g->alignment;
}

int64_t px_gguf_n_kv(const px_gguf *g) {
    return g->n_kv;
}

int64_t px_gguf_find_key(const px_gguf *g, const char *key) {
    if (!g || !key) return -1;
    return *index_slot(&g->kv_index, key, strlen(key), kv_name, g);
}

px_gguf_str px_gguf_kv_key(const px_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return (px_gguf_str){NULL, 0};
    return g->kvs[i].key;
}

px_gguf_vtype px_gguf_kv_type(const px_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return PX_GGUF_VTYPE_COUNT;
    return g->kvs[i].type;
}

/* The entry for key, or NULL with *rc = PX_EINVAL and err filled. */
static const kv *lookup(const px_gguf *g, const char *key, char *err, size_t errlen, int *rc) {
    int64_t i = px_gguf_find_key(g, key);
    if (i < 0) {
        *rc = px_fail(err, errlen, PX_EINVAL, "metadata key '%s' not found", key ? key : "(null)");
        return NULL;
    }
    return &g->kvs[i];
}

static int wrong_type(const kv *e, const char *key, const char *want, char *err, size_t errlen) {
    return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s' has type %s, expected %s", key,
                   vtype_name(e->type), want);
}

/* Reads an integer value: *neg tells whether *mag is the magnitude of a
 * negative number. False for non-integer types. */
static bool int_value(const kv *e, bool *neg, uint64_t *mag) {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    int8_t s8;
    int16_t s16;
    int32_t s32;
    int64_t s;
    *neg = false;
    switch (e->type) {
    case PX_GGUF_UINT8: memcpy(&u8, e->val, 1), *mag = u8; return true;
    case PX_GGUF_UINT16: memcpy(&u16, e->val, 2), *mag = u16; return true;
    case PX_GGUF_UINT32: memcpy(&u32, e->val, 4), *mag = u32; return true;
    case PX_GGUF_UINT64: memcpy(mag, e->val, 8); return true;
    case PX_GGUF_INT8: memcpy(&s8, e->val, 1), s = s8; break;
    case PX_GGUF_INT16: memcpy(&s16, e->val, 2), s = s16; break;
    case PX_GGUF_INT32: memcpy(&s32, e->val, 4), s = s32; break;
    case PX_GGUF_INT64: memcpy(&s, e->val, 8); break;
    default: return false;
    }
    *neg = s < 0;
    *mag = s < 0 ? 0 - (uint64_t)s : (uint64_t)s;
    return true;
}

int px_gguf_get_u32(const px_gguf *g, const char *key, uint32_t *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    bool neg;
    uint64_t mag;
    if (!int_value(e, &neg, &mag)) return wrong_type(e, key, "an integer", err, errlen);
    if (neg || mag > UINT32_MAX)
        return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s': value %s%llu does not fit u32",
                       key, neg ? "-" : "", (unsigned long long)mag);
    *out = (uint32_t)mag;
    return 0;
}

int px_gguf_get_i64(const px_gguf *g, const char *key, int64_t *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    bool neg;
    uint64_t mag;
    if (!int_value(e, &neg, &mag)) return wrong_type(e, key, "an integer", err, errlen);
    if (!neg && mag > INT64_MAX)
        return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s': value %llu does not fit i64",
                       key, (unsigned long long)mag);
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag; /* 0 - mag wraps to the two's complement */
    return 0;
}

int px_gguf_get_f32(const px_gguf *g, const char *key, float *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    if (e->type == PX_GGUF_FLOAT32) {
        memcpy(out, e->val, 4);
        return 0;
    }
    if (e->type != PX_GGUF_FLOAT64) return wrong_type(e, key, "f32 or f64", err, errlen);
    double d;
    memcpy(&d, e->val, 8);
    if (d == d && (d > 3.4028234663852886e38 || d < -3.4028234663852886e38) && d - d == 0)
        return px_fail(err, errlen, PX_EFORMAT, "metadata key '%s': value %g does not fit f32", key,
                       d);
    *out = (float)d;
    return 0;
}

int px_gguf_get_bool(const px_gguf *g, const char *key, bool *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    if (e->type != PX_GGUF_BOOL) return wrong_type(e, key, "bool", err, errlen);
    *out = e->val[0] != 0;
    return 0;
}

int px_gguf_get_str(const px_gguf *g, const char *key, px_gguf_str *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    if (e->type != PX_GGUF_STRING) return wrong_type(e, key, "string", err, errlen);
    out->ptr = (const char *)e->val;
    out->len = e->n;
    return 0;
}

int px_gguf_get_arr(const px_gguf *g, const char *key, px_gguf_arr *out, char *err, size_t errlen) {
    int rc;
    const kv *e = lookup(g, key, err, errlen, &rc);
    if (!e) return rc;
    if (e->type != PX_GGUF_ARRAY) return wrong_type(e, key, "array", err, errlen);
    out->type = e->arr_type;
    out->n = e->n;
    out->data = e->val;
    out->_kv = e - g->kvs;
    return 0;
}

px_gguf_str px_gguf_arr_str(const px_gguf *g, const px_gguf_arr *arr, uint64_t i) {
    px_gguf_str s = {NULL, 0};
    if (!arr || arr->_kv < 0 || arr->_kv >= g->n_kv) return s;
    const kv *e = &g->kvs[arr->_kv];
    if (e->type != PX_GGUF_ARRAY || e->arr_type != PX_GGUF_STRING || i >= e->n) return s;
    memcpy(&s.len, g->base + e->str_offs[i], 8);
    s.ptr = (const char *)g->base + e->str_offs[i] + 8;
    return s;
}

int64_t px_gguf_n_tensors(const px_gguf *g) {
    return g->n_tensors;
}

const px_gguf_tensor *px_gguf_tensor_at(const px_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}

const px_gguf_tensor *px_gguf_find_tensor(const px_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t i = *index_slot(&g->t_index, name, strlen(name), tensor_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}
