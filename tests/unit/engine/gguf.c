/* gguf.c — tests of the GGUF reader (engine/gguf.c) on hand-built files: v2,
 * nested arrays, keys compared by length; corrupt files, each refused with a
 * message naming the problem; truncation at every length; a seeded
 * mini-fuzz. Assembles the "gguf" suite with the test cases of types.c and
 * gguf_write.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_test.h"
#include "px.h"
#include "suites.h"
#include "util.h"

/* --- byte builder for hand-made files --- */

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void bb_u8(bb *b, uint8_t v) {
    bb_put(b, &v, 1);
}

static void bb_u32(bb *b, uint32_t v) {
    bb_put(b, &v, 4);
}

static void bb_u64(bb *b, uint64_t v) {
    bb_put(b, &v, 8);
}

static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, PX_GGUF_UINT32);
    bb_u32(b, v);
}

static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

static void bb_pad(bb *b, size_t align) {
    while (b->len % align)
        bb_u8(b, 0);
}

/* n data bytes: byte i is (i * 7 + seed) & 0xff. */
static void bb_data(bb *b, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++)
        bb_u8(b, (uint8_t)(i * 7 + seed));
}

/* Opens an exact-size heap copy, so ASan flags any read past the end. The
 * copy is returned in *copy (caller frees after px_gguf_close). */
static px_gguf *open_copy(const void *p, size_t n, void **copy, char *err, size_t errlen) {
    *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(*copy);
    if (n) memcpy(*copy, p, n);
    return px_gguf_open_mem(*copy, n, err, errlen);
}

static void expect_refused_at(bb *b, const char *want, int line) {
    char err[512] = "";
    void *copy;
    px_gguf *g = open_copy(b->p, b->len, &copy, err, sizeof err);
    ck_assert_msg(g == NULL, "line %d: corrupt file was accepted (wanted '%s')", line, want);
    ck_assert_msg(strstr(err, want) != NULL, "line %d: message '%s' lacks '%s'", line, err, want);
    free(copy);
    free(b->p);
    *b = (bb){0};
}
#define EXPECT_REFUSED(b, want) expect_refused_at(b, want, __LINE__)

/* A v2 file built byte by byte, with an alignment of 16. */
START_TEST(test_v2_by_hand) {
    bb b = {0};
    const uint64_t ne_a[] = {4, 2}, ne_b[] = {8};
    bb_hdr(&b, 2, 2, 3);
    bb_str(&b, "general.name");
    bb_u32(&b, PX_GGUF_STRING);
    bb_str(&b, "tiny");
    bb_kv_u32(&b, "n", 5);
    bb_kv_u32(&b, "general.alignment", 16);
    bb_tensor(&b, "a", 2, ne_a, PX_DTYPE_F32, 0);
    bb_tensor(&b, "b", 1, ne_b, PX_DTYPE_F16, 32);
    bb_pad(&b, 16);
    size_t data_start = b.len;
    bb_data(&b, 48, 9);
    char err[256] = "";
    void *copy;
    px_gguf *g = open_copy(b.p, b.len, &copy, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_uint_eq(px_gguf_version(g), 2);
    ck_assert_uint_eq(px_gguf_alignment(g), 16);
    ck_assert_int_eq(px_gguf_n_kv(g), 3);
    uint32_t n;
    ck_assert_int_eq(px_gguf_get_u32(g, "n", &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 5);
    px_gguf_str s;
    ck_assert_int_eq(px_gguf_get_str(g, "general.name", &s, err, sizeof err), 0);
    ck_assert_int_eq(s.len == 4 && memcmp(s.ptr, "tiny", 4) == 0, 1);
    const px_gguf_tensor *tb = px_gguf_find_tensor(g, "b");
    ck_assert_ptr_nonnull(tb);
    ck_assert_int_eq(tb->type, PX_DTYPE_F16);
    ck_assert_int_eq(tb->ne[0], 8);
    ck_assert_int_eq(tb->ne[1], 1);
    ck_assert_uint_eq(tb->nbytes, 16);
    ck_assert_ptr_eq(tb->data, (uint8_t *)copy + data_start + 32);
    ck_assert_ptr_eq(px_gguf_find_tensor(g, "a")->data, (uint8_t *)copy + data_start);
    px_gguf_close(g);
    free(copy);
    free(b.p);
}
END_TEST

/* Keys are compared by length and bytes: "a", "a\0b" and "ab" are distinct. */
START_TEST(test_keys_by_length) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 3);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, PX_GGUF_UINT8);
    bb_u8(&b, 1);
    bb_kv_u32(&b, "a", 2);
    bb_kv_u32(&b, "ab", 3);
    char err[256] = "";
    void *copy;
    px_gguf *g = open_copy(b.p, b.len, &copy, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_int_eq(px_gguf_find_key(g, "a"), 1);
    ck_assert_int_eq(px_gguf_find_key(g, "ab"), 2);
    ck_assert_uint_eq(px_gguf_kv_key(g, 0).len, 3);
    ck_assert_int_eq(px_gguf_n_tensors(g), 0);
    px_gguf_close(g);
    free(copy);
    free(b.p);
}
END_TEST

/* Appends an array value nested `depth` levels deep: arrays of one array,
 * innermost a u16 array of two elements. */
static void bb_nested(bb *b, int depth) {
    for (int i = 1; i < depth; i++) {
        bb_u32(b, PX_GGUF_ARRAY);
        bb_u64(b, 1);
    }
    bb_u32(b, PX_GGUF_UINT16);
    bb_u64(b, 2);
    bb_u32(b, 0x00020001);
}

START_TEST(test_nested_arrays) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 4);
    /* "mixed": [[1, 2, 3] as u16, ["x", "yz"]] */
    bb_str(&b, "mixed");
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u64(&b, 2);
    bb_u32(&b, PX_GGUF_UINT16);
    bb_u64(&b, 3);
    bb_put(&b, "\1\0\2\0\3\0", 6);
    bb_u32(&b, PX_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "x");
    bb_str(&b, "yz");
    bb_str(&b, "deep"); /* four levels */
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_nested(&b, 4);
    bb_str(&b, "empty_nest"); /* an array of zero arrays */
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u64(&b, 0);
    bb_kv_u32(&b, "after", 7);
    char err[256] = "";
    void *copy;
    px_gguf *g = open_copy(b.p, b.len, &copy, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    px_gguf_arr a;
    ck_assert_int_eq(px_gguf_get_arr(g, "mixed", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_ARRAY);
    ck_assert_uint_eq(a.n, 2);
    ck_assert_ptr_null(px_gguf_arr_str(g, &a, 0).ptr);
    ck_assert_int_eq(px_gguf_get_arr(g, "deep", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_ARRAY);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_int_eq(px_gguf_get_arr(g, "empty_nest", &a, err, sizeof err), 0);
    ck_assert_uint_eq(a.n, 0);
    uint32_t v;
    ck_assert_int_eq(px_gguf_get_u32(g, "after", &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 7); /* parsing resumed at the right byte */
    px_gguf_close(g);
    free(copy);
    free(b.p);
}
END_TEST

START_TEST(test_refuse_nesting_bomb) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "bomb");
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_nested(&b, 100000);
    EXPECT_REFUSED(&b, "metadata key 'bomb': arrays nested deeper than");
}
END_TEST

/* --- corrupt files --- */

/* Every prefix of a valid file (which ends exactly at its last tensor's data)
 * is refused without reading past its end; the whole file opens. */
START_TEST(test_truncated_everywhere) {
    size_t size;
    uint8_t *img = px_test_gguf_image(&size);
    for (size_t len = 0; len <= size; len++) {
        char err[512] = "";
        void *copy;
        px_gguf *g = open_copy(img, len, &copy, err, sizeof err);
        if (len == size) {
            ck_assert_msg(g != NULL, "%s", err);
            px_gguf_close(g);
        } else {
            ck_assert_msg(g == NULL, "prefix of %zu bytes accepted", len);
            if (len < 24)
                ck_assert_msg(strstr(err, "truncated header") != NULL, "%zu: %s", len, err);
            else
                ck_assert_msg(strstr(err, "truncated") || strstr(err, "exceeds the file") ||
                                  strstr(err, "outside the file") || strstr(err, "past the end"),
                              "%zu: %s", len, err);
        }
        free(copy);
    }
    free(img);
}
END_TEST

START_TEST(test_refuse_header) {
    bb b = {0};
    bb_put(&b, "GGML", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    EXPECT_REFUSED(&b, "bad magic");
    bb_hdr(&b, 1, 0, 0);
    EXPECT_REFUSED(&b, "unsupported GGUF version 1");
    bb_hdr(&b, 4, 0, 0);
    EXPECT_REFUSED(&b, "unsupported GGUF version 4");
    bb_hdr(&b, 0x03000000, 0, 0);
    EXPECT_REFUSED(&b, "big-endian");
    bb_hdr(&b, 3, 0, 0);
    b.len = 20;
    EXPECT_REFUSED(&b, "truncated header: file is 20 bytes");
    bb_hdr(&b, 3, UINT64_MAX, 0);
    bb_data(&b, 100, 0);
    EXPECT_REFUSED(&b, "tensor count 18446744073709551615 exceeds the file");
    bb_hdr(&b, 3, 4, 0); /* 4 tensors cannot fit in 100 bytes */
    bb_data(&b, 100, 0);
    EXPECT_REFUSED(&b, "tensor count 4 exceeds the file");
    bb_hdr(&b, 3, 0, 1ull << 62);
    bb_data(&b, 100, 0);
    EXPECT_REFUSED(&b, "metadata count 4611686018427387904 exceeds the file");
    /* A well-formed empty file opens. */
    bb_hdr(&b, 3, 0, 0);
    char err[128];
    px_gguf *g = px_gguf_open_mem(b.p, b.len, err, sizeof err);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(px_gguf_n_kv(g) + px_gguf_n_tensors(g), 0);
    px_gguf_close(g);
    free(b.p);
}
END_TEST

START_TEST(test_refuse_metadata) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX);
    bb_data(&b, 40, 0);
    EXPECT_REFUSED(&b, "metadata entry 0: key length 18446744073709551615 exceeds the file");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "x");
    bb_u32(&b, PX_GGUF_STRING);
    bb_u64(&b, UINT64_MAX);
    bb_data(&b, 40, 0);
    EXPECT_REFUSED(&b, "metadata key 'x': string length 18446744073709551615 exceeds the file");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "x");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    EXPECT_REFUSED(&b, "metadata key 'x': unknown value type 13");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u32(&b, 99);
    bb_u64(&b, 0);
    EXPECT_REFUSED(&b, "metadata key 'arr': unknown array element type 99");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u32(&b, PX_GGUF_STRING);
    bb_u64(&b, 1ull << 60);
    bb_data(&b, 64, 0);
    EXPECT_REFUSED(&b, "metadata key 'arr': array of 1152921504606846976 string elements");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, PX_GGUF_ARRAY);
    bb_u32(&b, PX_GGUF_UINT32);
    bb_u64(&b, 1ull << 62); /* n * 4 would wrap to 0 */
    EXPECT_REFUSED(&b, "array of 4611686018427387904 u32 elements exceeds the file");
    bb_hdr(&b, 3, 0, 2);
    bb_kv_u32(&b, "a", 1);
    bb_kv_u32(&b, "a", 2);
    EXPECT_REFUSED(&b, "duplicate metadata key 'a'");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "v");
    bb_u32(&b, PX_GGUF_UINT64);
    bb_u32(&b, 1); /* 4 of 8 bytes */
    EXPECT_REFUSED(&b, "metadata key 'v': truncated");
    /* A key with control bytes is shown sanitised. */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k\n\x1b");
    bb_u32(&b, 77);
    EXPECT_REFUSED(&b, "metadata key 'k?\?': unknown value type 77");
}
END_TEST

START_TEST(test_refuse_alignment) {
    static const struct {
        uint32_t v;
        const char *want;
    } bad[] = {{48, "general.alignment 48 is not a nonzero power of two"},
               {0, "general.alignment 0 is not"},
               {3, "general.alignment 3 is not"}};
    for (size_t i = 0; i < PX_ARRAY_LEN(bad); i++) {
        bb b = {0};
        bb_hdr(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", bad[i].v);
        EXPECT_REFUSED(&b, bad[i].want);
    }
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, PX_GGUF_INT32);
    bb_u32(&b, 32);
    EXPECT_REFUSED(&b, "general.alignment has type i32, expected u32");
}
END_TEST

/* One tensor "w" of `type` and shape ne[n_dims] at `offset`, followed by a
 * 64-byte data section. */
static bb one_tensor(uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    bb b = {0};
    bb_hdr(&b, 3, 1, 0);
    bb_tensor(&b, "blk.0.attn_q.weight", n_dims, ne, type, offset);
    bb_pad(&b, 32);
    bb_data(&b, 64, 1);
    return b;
}

START_TEST(test_refuse_tensors) {
    const uint64_t ne8[] = {8}, ne_zero[] = {8, 0}, ne33[] = {33, 2},
                   ne_big[] = {1ull << 40, 1ull << 40};
    const uint64_t ne_neg[] = {1ull << 63}, ne5[] = {1, 1, 1, 1, 1};
    bb b = one_tensor(1, ne8, 4, 0);
    EXPECT_REFUSED(&b, "tensor 'blk.0.attn_q.weight': unknown tensor type 4");
    b = one_tensor(1, ne8, 1000, 0);
    EXPECT_REFUSED(&b, "unknown tensor type 1000");
    b = one_tensor(0, ne8, PX_DTYPE_F32, 0);
    EXPECT_REFUSED(&b, "tensor 'blk.0.attn_q.weight': n_dims 0 outside 1..4");
    b = one_tensor(5, ne5, PX_DTYPE_F32, 0);
    EXPECT_REFUSED(&b, "n_dims 5 outside 1..4");
    b = one_tensor(2, ne_zero, PX_DTYPE_F32, 0);
    EXPECT_REFUSED(&b, "tensor 'blk.0.attn_q.weight': ne[1] = 0 is out of range");
    b = one_tensor(1, ne_neg, PX_DTYPE_I8, 0);
    EXPECT_REFUSED(&b, "ne[0] = 9223372036854775808 is out of range");
    b = one_tensor(2, ne33, PX_DTYPE_Q8_0, 0);
    EXPECT_REFUSED(&b, "ne[0] = 33 is not a multiple of the Q8_0 block size 32");
    b = one_tensor(2, ne_big, PX_DTYPE_F32, 0);
    EXPECT_REFUSED(&b, "byte size overflows");
    b = one_tensor(1, ne8, PX_DTYPE_F32, 16);
    EXPECT_REFUSED(&b, "offset 16 is not a multiple of the alignment 32");
    b = one_tensor(1, ne8, PX_DTYPE_F32, 4096);
    EXPECT_REFUSED(&b,
                   "tensor 'blk.0.attn_q.weight': offset 4096 outside the file (data section has "
                   "64 bytes)");
    b = one_tensor(1, ne8, PX_DTYPE_F32, 64);
    EXPECT_REFUSED(&b, "offset 64 outside the file");
    b = one_tensor(1, ne8, PX_DTYPE_F32, UINT64_MAX - 31); /* offset + size would wrap */
    EXPECT_REFUSED(&b, "outside the file");
    const uint64_t ne24[] = {24};
    b = one_tensor(1, ne24, PX_DTYPE_F32, 32); /* 96 bytes from 32 in a 64-byte section */
    EXPECT_REFUSED(&b, "96 bytes at offset 32 run past the end of the file");
    /* Tensor infos end without the data section at all. */
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_tensor(&b, "w", 1, ne8, PX_DTYPE_F32, 0);
    EXPECT_REFUSED(&b, "tensor 'w': offset 0 outside the file (data section has 0 bytes)");

    const uint64_t ne16[] = {16};
    b = (bb){0};
    bb_hdr(&b, 3, 3, 0);
    bb_tensor(&b, "c", 1, ne8, PX_DTYPE_F32, 96);
    bb_tensor(&b, "a", 1, ne16, PX_DTYPE_F32, 0); /* bytes 0..63 */
    bb_tensor(&b, "b", 1, ne8, PX_DTYPE_F32, 32); /* bytes 32..63 */
    bb_pad(&b, 32);
    bb_data(&b, 128, 0);
    EXPECT_REFUSED(&b, "tensors 'a' (offset 0, 64 bytes) and 'b' (offset 32) overlap");
    b = (bb){0};
    bb_hdr(&b, 3, 2, 0);
    bb_tensor(&b, "w", 1, ne8, PX_DTYPE_F32, 0);
    bb_tensor(&b, "w", 1, ne8, PX_DTYPE_F32, 32);
    bb_pad(&b, 32);
    bb_data(&b, 64, 0);
    EXPECT_REFUSED(&b, "duplicate tensor name 'w'");
    b = (bb){0};
    bb_hdr(&b, 3, 1, 0);
    bb_u64(&b, 1ull << 40);
    bb_data(&b, 64, 0);
    EXPECT_REFUSED(&b, "tensor info 0: name length 1099511627776 exceeds the file");
}
END_TEST

START_TEST(test_open_paths) {
    char err[512] = "";
    ck_assert_ptr_null(px_gguf_open("/nonexistent/model.gguf", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cannot open '/nonexistent/model.gguf'"));
    ck_assert_ptr_null(px_gguf_open("/", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    char *empty = px_test_write_tmp("", 0);
    ck_assert_ptr_null(px_gguf_open(empty, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "empty file"));
    ck_assert_ptr_nonnull(strstr(err, empty));
    unlink(empty);
    free(empty);
    /* A corrupt file on disk: the message names the file and the problem. */
    const uint64_t ne8[] = {8};
    bb b = one_tensor(1, ne8, PX_DTYPE_F32, 4096);
    char *path = px_test_write_tmp(b.p, b.len);
    ck_assert_ptr_null(px_gguf_open(path, err, sizeof err));
    ck_assert_int_eq(strncmp(err, path, strlen(path)), 0);
    ck_assert_ptr_nonnull(strstr(err, "offset 4096 outside the file"));
    unlink(path);
    free(path);
    free(b.p);
    /* NULL err is allowed. */
    ck_assert_ptr_null(px_gguf_open("/nonexistent/model.gguf", NULL, 0));
    ck_assert_ptr_null(px_gguf_open_mem("GGU", 3, NULL, 0));
}
END_TEST

/* --- mini-fuzz --- */

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Touches everything an accepted file exposes, so ASan sees any bad pointer. */
static unsigned walk(const px_gguf *g) {
    unsigned sum = 0;
    char err[256];
    for (int64_t i = 0; i < px_gguf_n_kv(g); i++) {
        px_gguf_str k = px_gguf_kv_key(g, i);
        for (uint64_t j = 0; j < k.len; j++)
            sum += (unsigned char)k.ptr[j];
        if (px_gguf_kv_type(g, i) != PX_GGUF_ARRAY || memchr(k.ptr, 0, k.len)) continue;
        char key[256];
        if (k.len >= sizeof key) continue;
        memcpy(key, k.ptr, k.len);
        key[k.len] = '\0';
        px_gguf_arr a;
        if (px_gguf_get_arr(g, key, &a, err, sizeof err) != 0 || a.type != PX_GGUF_STRING) continue;
        for (uint64_t j = 0; j < a.n; j++) {
            px_gguf_str s = px_gguf_arr_str(g, &a, j);
            if (s.len) sum += (unsigned char)s.ptr[s.len - 1];
        }
    }
    for (int64_t i = 0; i < px_gguf_n_tensors(g); i++) {
        const px_gguf_tensor *t = px_gguf_tensor_at(g, i);
        const uint8_t *d = t->data;
        sum += d[0] + d[t->nbytes - 1];
    }
    return sum;
}

START_TEST(test_fuzz_mutations) {
    size_t size;
    uint8_t *img = px_test_gguf_image(&size);
    char err[512];
    px_gguf *g0 = px_gguf_open_mem(img, size, err, sizeof err);
    ck_assert_ptr_nonnull(g0);
    /* Mutate mostly the metadata and tensor infos, where the parsing is. */
    size_t meta = (size_t)((const uint8_t *)px_gguf_tensor_at(g0, 0)->data - img);
    px_gguf_close(g0);
    static const uint64_t interesting[] = {
        0, 1, 31, 32, 0x7fffffffffffffffull, UINT64_MAX, 1ull << 32, 0xffffffffull};
    uint64_t seed = 0x5eed1234abcdull;
    int accepted = 0, refused = 0;
    unsigned sink = 0;
    for (int it = 0; it < 4000; it++) {
        uint8_t *m = malloc(size);
        ck_assert_ptr_nonnull(m);
        memcpy(m, img, size);
        int n_mut = 1 + (int)(rnd(&seed) % 4);
        for (int k = 0; k < n_mut; k++) {
            size_t pos = rnd(&seed) % 10 == 0 ? rnd(&seed) % size : rnd(&seed) % meta;
            switch (rnd(&seed) % 4) {
            case 0: m[pos] = (uint8_t)rnd(&seed); break;
            case 1: m[pos] ^= (uint8_t)(1u << (rnd(&seed) % 8)); break;
            case 2: m[pos] = (uint8_t)(m[pos] + (rnd(&seed) % 2 ? 1 : -1)); break;
            default:
                if (pos + 8 <= size) {
                    uint64_t v = interesting[rnd(&seed) % PX_ARRAY_LEN(interesting)];
                    memcpy(m + pos, &v, 8);
                }
            }
        }
        /* Sometimes also cut the file short. */
        size_t len = rnd(&seed) % 8 == 0 ? rnd(&seed) % size : size;
        err[0] = '\0';
        px_gguf *g = px_gguf_open_mem(m, len, err, sizeof err);
        if (g) {
            accepted++;
            sink += walk(g);
            px_gguf_close(g);
        } else {
            refused++;
            ck_assert_msg(err[0] != '\0', "refused without a message");
        }
        free(m);
    }
    (void)sink;
    ck_assert_int_gt(accepted, 0);
    ck_assert_int_gt(refused, 0);
    free(img);
}
END_TEST

Suite *px_suite_gguf(void) {
    Suite *s = suite_create("gguf");
    suite_add_tcase(s, px_test_tcase_types());
    suite_add_tcase(s, px_test_tcase_gguf_write());
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_v2_by_hand);
    tcase_add_test(tc, test_keys_by_length);
    tcase_add_test(tc, test_nested_arrays);
    suite_add_tcase(s, tc);
    tc = tcase_create("corrupt");
    tcase_add_test(tc, test_truncated_everywhere);
    tcase_add_test(tc, test_refuse_header);
    tcase_add_test(tc, test_refuse_metadata);
    tcase_add_test(tc, test_refuse_alignment);
    tcase_add_test(tc, test_refuse_tensors);
    tcase_add_test(tc, test_refuse_nesting_bomb);
    tcase_add_test(tc, test_open_paths);
    tcase_add_test(tc, test_fuzz_mutations);
    suite_add_tcase(s, tc);
    return s;
}
