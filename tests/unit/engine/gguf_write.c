/* gguf_write.c — writer -> reader round trips of engine/gguf_write.c and
 * engine/gguf.c: every metadata value type, tensors of several dtypes and
 * alignments, in memory and through a file; the typed getters; what the
 * writer refuses. A test case of the "gguf" suite. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_test.h"
#include "px.h"
#include "util.h"

/* n bytes where byte i is (i * 7 + seed) & 0xff: tensor data we can recheck. */
static uint8_t *pattern(size_t n, uint8_t seed) {
    uint8_t *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + seed);
    return p;
}

static const char *const words[] = {"alpha", "", "gamma delta", "\xe2\x96\x81tok"};

/* Tensor shapes of the round-trip model; data from pattern(seed = i). */
static const struct {
    const char *name;
    px_dtype type;
    int n_dims;
    int64_t ne[4];
} shapes[] = {
    {"tok_embd.weight", PX_DTYPE_F32, 2, {5, 3, 1, 1}},
    {"blk.0.attn_q.weight", PX_DTYPE_Q8_0, 2, {64, 3, 1, 1}},
    {"blk.0.ffn_up.weight", PX_DTYPE_Q4_K, 2, {256, 2, 1, 1}},
    {"norm.bf16", PX_DTYPE_BF16, 1, {7, 1, 1, 1}},
    {"four.d", PX_DTYPE_F16, 4, {3, 2, 2, 2}},
    {"last.i8", PX_DTYPE_I8, 1, {64, 1, 1, 1}}, /* 64 bytes: the file ends without padding */
};

static size_t shape_bytes(size_t i) {
    const int64_t *ne = shapes[i].ne;
    return px_dtype_row_size(shapes[i].type, ne[0]) * (size_t)(ne[1] * ne[2] * ne[3]);
}

static px_gguf_writer *build_writer(uint32_t alignment) {
    px_gguf_writer *w = px_gguf_writer_create();
    ck_assert_ptr_nonnull(w);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 0xfedcba9876543210ull;
    int64_t i64 = INT64_MIN;
    double f64 = -1.0 / 3.0;
    ck_assert_int_eq(px_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.u8", PX_GGUF_UINT8, &u8), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.i8", PX_GGUF_INT8, &i8), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.u16", PX_GGUF_UINT16, &u16), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.i16", PX_GGUF_INT16, &i16), 0);
    ck_assert_int_eq(px_gguf_writer_set_u32(w, "v.u32", 123), 0); /* replaced below */
    ck_assert_int_eq(px_gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
    ck_assert_int_eq(px_gguf_writer_set_i32(w, "v.i32", -7), 0);
    ck_assert_int_eq(px_gguf_writer_set_f32(w, "v.f32", 1.5e-3f), 0);
    ck_assert_int_eq(px_gguf_writer_set_bool(w, "v.true", true), 0);
    ck_assert_int_eq(px_gguf_writer_set_bool(w, "v.false", false), 0);
    ck_assert_int_eq(px_gguf_writer_set_str(w, "v.empty", ""), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.u64", PX_GGUF_UINT64, &u64), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.i64", PX_GGUF_INT64, &i64), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "v.f64", PX_GGUF_FLOAT64, &f64), 0);
    const int32_t ints[] = {1, -2, 3, INT32_MIN};
    const float floats[] = {0.5f, -0.25f, 1e30f};
    const uint8_t bools[] = {1, 0, 1};
    ck_assert_int_eq(px_gguf_writer_set_arr(w, "a.i32", PX_GGUF_INT32, ints, 4), 0);
    ck_assert_int_eq(px_gguf_writer_set_arr(w, "a.f32", PX_GGUF_FLOAT32, floats, 3), 0);
    ck_assert_int_eq(px_gguf_writer_set_arr(w, "a.bool", PX_GGUF_BOOL, bools, 3), 0);
    ck_assert_int_eq(px_gguf_writer_set_arr(w, "a.empty", PX_GGUF_UINT64, NULL, 0), 0);
    ck_assert_int_eq(px_gguf_writer_set_arr_str(w, "a.str", words, PX_ARRAY_LEN(words)), 0);
    if (alignment) ck_assert_int_eq(px_gguf_writer_set_u32(w, "general.alignment", alignment), 0);
    for (size_t i = 0; i < PX_ARRAY_LEN(shapes); i++) {
        uint8_t *d = pattern(shape_bytes(i), (uint8_t)i);
        ck_assert_int_eq(px_gguf_writer_add_tensor(w, shapes[i].name, shapes[i].type,
                                                   shapes[i].n_dims, shapes[i].ne, d),
                         0);
        free(d);
    }
    return w;
}

/* Checks everything build_writer() put in, in a file of `size` bytes at base. */
static void check_model(const px_gguf *g, const void *base, size_t size, size_t align) {
    char err[256];
    ck_assert_uint_eq(px_gguf_version(g), 3);
    ck_assert_uint_eq(px_gguf_alignment(g), align);
    ck_assert_int_eq(px_gguf_n_kv(g), align == 32 ? 19 : 20);
    ck_assert_int_eq(px_gguf_find_key(g, "general.architecture"), 0);
    px_gguf_str k = px_gguf_kv_key(g, 1);
    ck_assert_uint_eq(k.len, 4);
    ck_assert_int_eq(memcmp(k.ptr, "v.u8", 4), 0);
    ck_assert_int_eq(px_gguf_kv_type(g, 1), PX_GGUF_UINT8);
    ck_assert_int_eq(px_gguf_kv_type(g, px_gguf_find_key(g, "v.i16")), PX_GGUF_INT16);
    ck_assert_int_eq(px_gguf_kv_type(g, px_gguf_find_key(g, "v.f64")), PX_GGUF_FLOAT64);
    ck_assert_int_eq(px_gguf_find_key(g, "v.u3"), -1);
    ck_assert_int_eq(px_gguf_find_key(g, "v.u32x"), -1);

    px_gguf_str s;
    ck_assert_int_eq(px_gguf_get_str(g, "general.architecture", &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.len, 5);
    ck_assert_int_eq(memcmp(s.ptr, "llama", 5), 0);
    ck_assert_int_eq(px_gguf_get_str(g, "v.empty", &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.len, 0);

    uint32_t u32;
    int64_t i64;
    float f;
    bool b;
    ck_assert_int_eq(px_gguf_get_u32(g, "v.u8", &u32, err, sizeof err), 0);
    ck_assert_uint_eq(u32, 200);
    ck_assert_int_eq(px_gguf_get_u32(g, "v.u16", &u32, err, sizeof err), 0);
    ck_assert_uint_eq(u32, 60000);
    ck_assert_int_eq(px_gguf_get_u32(g, "v.u32", &u32, err, sizeof err), 0);
    ck_assert_uint_eq(u32, 4000000000u);
    ck_assert_int_eq(px_gguf_get_i64(g, "v.i8", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, -100);
    ck_assert_int_eq(px_gguf_get_i64(g, "v.i16", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, -30000);
    ck_assert_int_eq(px_gguf_get_i64(g, "v.i32", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, -7);
    ck_assert_int_eq(px_gguf_get_i64(g, "v.i64", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, INT64_MIN);
    ck_assert_int_eq(px_gguf_get_i64(g, "v.u32", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, 4000000000ll);
    ck_assert_int_eq(px_gguf_get_f32(g, "v.f32", &f, err, sizeof err), 0);
    ck_assert_float_eq(f, 1.5e-3f);
    ck_assert_int_eq(px_gguf_get_f32(g, "v.f64", &f, err, sizeof err), 0);
    ck_assert_float_eq(f, (float)(-1.0 / 3.0));
    ck_assert_int_eq(px_gguf_get_bool(g, "v.true", &b, err, sizeof err), 0);
    ck_assert(b);
    ck_assert_int_eq(px_gguf_get_bool(g, "v.false", &b, err, sizeof err), 0);
    ck_assert(!b);
    uint64_t u64;
    double f64;
    px_gguf_arr a;
    int64_t ki = px_gguf_find_key(g, "v.u64");
    ck_assert_int_eq(px_gguf_kv_type(g, ki), PX_GGUF_UINT64);
    ck_assert_int_eq(px_gguf_get_arr(g, "v.u64", &a, err, sizeof err), PX_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "v.u64"));
    ck_assert_int_eq(px_gguf_get_i64(g, "v.u64", &i64, err, sizeof err), PX_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "does not fit"));

    ck_assert_int_eq(px_gguf_get_arr(g, "a.i32", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_INT32);
    ck_assert_uint_eq(a.n, 4);
    int32_t ints[4];
    memcpy(ints, a.data, sizeof ints);
    ck_assert_int_eq(ints[1], -2);
    ck_assert_int_eq(ints[3], INT32_MIN);
    ck_assert_int_eq(px_gguf_get_arr(g, "a.f32", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_FLOAT32);
    float fl[3];
    memcpy(fl, a.data, sizeof fl);
    ck_assert_float_eq(fl[2], 1e30f);
    ck_assert_int_eq(px_gguf_get_arr(g, "a.bool", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_BOOL);
    ck_assert_uint_eq(a.n, 3);
    ck_assert_int_eq(((const uint8_t *)a.data)[1], 0);
    ck_assert_int_eq(((const uint8_t *)a.data)[2], 1);
    ck_assert_int_eq(px_gguf_get_arr(g, "a.empty", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_UINT64);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_int_eq(px_gguf_get_arr(g, "a.str", &a, err, sizeof err), 0);
    ck_assert_int_eq(a.type, PX_GGUF_STRING);
    ck_assert_uint_eq(a.n, PX_ARRAY_LEN(words));
    for (uint64_t i = 0; i < a.n; i++) {
        s = px_gguf_arr_str(g, &a, i);
        ck_assert_uint_eq(s.len, strlen(words[i]));
        ck_assert_int_eq(memcmp(s.ptr, words[i], s.len), 0);
    }
    ck_assert_ptr_null(px_gguf_arr_str(g, &a, a.n).ptr);
    /* The scalar values read back bit-exactly through the raw accessors too. */
    memcpy(&u64, (const char *)px_gguf_kv_key(g, ki).ptr + 5 + 4, 8);
    ck_assert_uint_eq(u64, 0xfedcba9876543210ull);
    memcpy(&f64, (const char *)px_gguf_kv_key(g, px_gguf_find_key(g, "v.f64")).ptr + 5 + 4, 8);
    ck_assert(f64 == -1.0 / 3.0);

    ck_assert_int_eq(px_gguf_n_tensors(g), (int64_t)PX_ARRAY_LEN(shapes));
    const uint8_t *lo = base;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < PX_ARRAY_LEN(shapes); i++) {
        const px_gguf_tensor *t = px_gguf_tensor_at(g, (int64_t)i);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_eq(px_gguf_find_tensor(g, shapes[i].name), t);
        ck_assert_uint_eq(t->name.len, strlen(shapes[i].name));
        ck_assert_int_eq(memcmp(t->name.ptr, shapes[i].name, t->name.len), 0);
        ck_assert_int_eq(t->type, shapes[i].type);
        ck_assert_uint_eq(t->n_dims, (uint32_t)shapes[i].n_dims);
        for (int d = 0; d < 4; d++)
            ck_assert_int_eq(t->ne[d], shapes[i].ne[d]);
        ck_assert_uint_eq(t->nbytes, shape_bytes(i));
        ck_assert_uint_eq(t->offset % align, 0);
        ck_assert_uint_ge(t->offset, prev_end);
        prev_end = t->offset + t->nbytes;
        size_t at = (size_t)((const uint8_t *)t->data - lo);
        ck_assert_uint_eq(at % align, 0);
        ck_assert_uint_le(at + t->nbytes, size);
        uint8_t *d = pattern(t->nbytes, (uint8_t)i);
        ck_assert_int_eq(memcmp(t->data, d, t->nbytes), 0);
        free(d);
    }
    ck_assert_ptr_null(px_gguf_tensor_at(g, -1));
    ck_assert_ptr_null(px_gguf_tensor_at(g, (int64_t)PX_ARRAY_LEN(shapes)));
    ck_assert_ptr_null(px_gguf_find_tensor(g, "blk.0.attn_q"));
    ck_assert_ptr_null(px_gguf_find_tensor(g, "blk.0.attn_q.weightx"));
}

START_TEST(test_roundtrip_mem) {
    static const uint32_t aligns[] = {0, 64, 4096};
    for (size_t k = 0; k < PX_ARRAY_LEN(aligns); k++) {
        px_gguf_writer *w = build_writer(aligns[k]);
        void *img;
        size_t size;
        char err[256] = "";
        ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), 0);
        size_t align = aligns[k] ? aligns[k] : 32;
        ck_assert_uint_eq(size % align, 0);
        px_gguf *g = px_gguf_open_mem(img, size, err, sizeof err);
        ck_assert_msg(g != NULL, "%s", err);
        check_model(g, img, size, align);
        px_gguf_close(g);
        free(img);
        px_gguf_writer_destroy(w);
    }
}
END_TEST

START_TEST(test_roundtrip_file) {
    px_gguf_writer *w = build_writer(0);
    char *path = px_test_tmpfile(".gguf");
    char err[512] = "";
    ck_assert_int_eq(px_gguf_writer_write(w, path, err, sizeof err), 0);
    /* The file holds exactly the bytes write_mem produces. */
    void *img;
    size_t size;
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), 0);
    uint8_t *disk = malloc(size + 1);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(disk, 1, size + 1, f), size);
    fclose(f);
    ck_assert_int_eq(memcmp(disk, img, size), 0);
    px_gguf *g = px_gguf_open(path, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    px_gguf *gm = px_gguf_open_mem(img, size, err, sizeof err);
    ck_assert_ptr_nonnull(gm);
    /* Where the mapping starts: tensor 0's data minus its image offset. */
    size_t at0 = (size_t)((const uint8_t *)px_gguf_tensor_at(gm, 0)->data - (uint8_t *)img);
    const uint8_t *base = (const uint8_t *)px_gguf_tensor_at(g, 0)->data - at0;
    check_model(g, base, size, 32);
    /* The mapping is page-aligned, so tensor data is aligned in memory. */
    for (int64_t i = 0; i < px_gguf_n_tensors(g); i++)
        ck_assert_uint_eq((uintptr_t)px_gguf_tensor_at(g, i)->data % 32, 0);
    px_gguf_close(gm);
    px_gguf_close(g);
    free(img);
    free(disk);
    ck_assert_int_eq(unlink(path), 0);
    free(path);
    px_gguf_writer_destroy(w);
}
END_TEST

START_TEST(test_getter_types) {
    px_gguf_writer *w = px_gguf_writer_create();
    int8_t neg = -1;
    uint64_t big = 1ull << 40, huge = 1ull << 63;
    double wide = 1e300;
    ck_assert_int_eq(px_gguf_writer_set_val(w, "neg", PX_GGUF_INT8, &neg), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "big", PX_GGUF_UINT64, &big), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "huge", PX_GGUF_UINT64, &huge), 0);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "wide", PX_GGUF_FLOAT64, &wide), 0);
    ck_assert_int_eq(px_gguf_writer_set_str(w, "name", "x"), 0);
    ck_assert_int_eq(px_gguf_writer_set_bool(w, "flag", true), 0);
    void *img;
    size_t size;
    char err[256];
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), 0);
    px_gguf *g = px_gguf_open_mem(img, size, err, sizeof err);
    ck_assert_ptr_nonnull(g);
    uint32_t u32 = 77;
    int64_t i64 = 77;
    float f = 77;
    bool b = false;
    px_gguf_str s;
    ck_assert_int_eq(px_gguf_get_u32(g, "missing", &u32, err, sizeof err), PX_EINVAL);
    ck_assert_uint_eq(u32, 77);
    ck_assert_int_eq(px_gguf_get_i64(g, "missing", &i64, NULL, 0), PX_EINVAL);
    ck_assert_int_eq(i64, 77);
    ck_assert_int_eq(px_gguf_get_u32(g, "neg", &u32, err, sizeof err), PX_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "'neg'"));
    ck_assert_int_eq(px_gguf_get_u32(g, "big", &u32, err, sizeof err), PX_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "does not fit u32"));
    ck_assert_uint_eq(u32, 77);
    ck_assert_int_eq(px_gguf_get_i64(g, "big", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, 1ll << 40);
    ck_assert_int_eq(px_gguf_get_i64(g, "huge", &i64, err, sizeof err), PX_EFORMAT);
    ck_assert_int_eq(px_gguf_get_i64(g, "neg", &i64, err, sizeof err), 0);
    ck_assert_int_eq(i64, -1);
    ck_assert_int_eq(px_gguf_get_u32(g, "name", &u32, err, sizeof err), PX_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "'name' has type string"));
    ck_assert_int_eq(px_gguf_get_u32(g, "flag", &u32, err, sizeof err), PX_EFORMAT);
    ck_assert_int_eq(px_gguf_get_f32(g, "big", &f, err, sizeof err), PX_EFORMAT);
    ck_assert_int_eq(px_gguf_get_f32(g, "wide", &f, err, sizeof err), PX_EFORMAT);
    ck_assert_float_eq(f, 77);
    ck_assert_int_eq(px_gguf_get_bool(g, "neg", &b, err, sizeof err), PX_EFORMAT);
    ck_assert_int_eq(px_gguf_get_bool(g, "flag", &b, err, sizeof err), 0);
    ck_assert(b);
    ck_assert_int_eq(px_gguf_get_str(g, "flag", &s, err, sizeof err), PX_EFORMAT);
    ck_assert_int_eq(px_gguf_kv_type(g, 99), PX_GGUF_VTYPE_COUNT);
    ck_assert_ptr_null(px_gguf_kv_key(g, -1).ptr);
    px_gguf_close(g);
    free(img);
    px_gguf_writer_destroy(w);
}
END_TEST

START_TEST(test_writer_rejects) {
    px_gguf_writer *w = px_gguf_writer_create();
    uint8_t buf[1024] = {0};
    const int64_t ne_q4k[] = {100, 1}, ne_ok[] = {256, 1}, ne_zero[] = {4, 0},
                  ne5[] = {1, 1, 1, 1, 1};
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_Q4_K, 2, ne_q4k, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", (px_dtype)4, 2, ne_ok, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_F32, 0, ne_ok, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_F32, 5, ne5, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_F32, 2, ne_zero, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_Q4_K, 2, ne_ok, buf), 0);
    ck_assert_int_eq(px_gguf_writer_add_tensor(w, "a", PX_DTYPE_Q4_K, 2, ne_ok, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_set_val(w, "s", PX_GGUF_STRING, buf), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_set_arr(w, "s", PX_GGUF_ARRAY, buf, 1), PX_EINVAL);
    ck_assert_int_eq(px_gguf_writer_set_str(w, "s", NULL), PX_EINVAL);
    void *img = NULL;
    size_t size;
    char err[256] = "";
    ck_assert_int_eq(px_gguf_writer_set_u32(w, "general.alignment", 48), 0);
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "general.alignment"));
    ck_assert_int_eq(px_gguf_writer_set_i32(w, "general.alignment", 64), 0);
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), PX_EINVAL);
    ck_assert_ptr_null(img);
    char *path = px_test_tmpfile(".gguf");
    ck_assert_int_eq(px_gguf_writer_write(w, path, err, sizeof err), PX_EINVAL);
    ck_assert_int_eq(access(path, F_OK), -1); /* no half-written file left */
    free(path);
    ck_assert_int_eq(px_gguf_writer_write(w, "/nonexistent-dir/x.gguf", err, sizeof err), PX_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x.gguf"));
    px_gguf_writer_destroy(w);
}
END_TEST

/* A 262144-entry vocabulary: every string reachable in O(1). */
START_TEST(test_big_vocab) {
    enum { N = 262144 };
    char(*buf)[12] = malloc((size_t)N * 12);
    const char **v = malloc((size_t)N * sizeof *v);
    ck_assert(buf && v);
    for (int i = 0; i < N; i++) {
        snprintf(buf[i], sizeof buf[i], "t%d", i);
        v[i] = buf[i];
    }
    px_gguf_writer *w = px_gguf_writer_create();
    ck_assert_int_eq(px_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v, N), 0);
    void *img;
    size_t size;
    char err[256];
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, &size, err, sizeof err), 0);
    px_gguf *g = px_gguf_open_mem(img, size, err, sizeof err);
    ck_assert_ptr_nonnull(g);
    px_gguf_arr a;
    ck_assert_int_eq(px_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, err, sizeof err), 0);
    ck_assert_uint_eq(a.n, N);
    for (int i = 0; i < N; i += 4099) {
        px_gguf_str s = px_gguf_arr_str(g, &a, (uint64_t)i);
        ck_assert_uint_eq(s.len, strlen(buf[i]));
        ck_assert_int_eq(memcmp(s.ptr, buf[i], s.len), 0);
    }
    px_gguf_str last = px_gguf_arr_str(g, &a, N - 1);
    ck_assert_int_eq(last.len == 7 && memcmp(last.ptr, "t262143", 7) == 0, 1);
    px_gguf_close(g);
    free(img);
    px_gguf_writer_destroy(w);
    free(v);
    free(buf);
}
END_TEST

void *px_test_gguf_image(size_t *size) {
    px_gguf_writer *w = build_writer(0);
    void *img;
    char err[256];
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &img, size, err, sizeof err), 0);
    px_gguf_writer_destroy(w);
    return img;
}

TCase *px_test_tcase_gguf_write(void) {
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_roundtrip_mem);
    tcase_add_test(tc, test_roundtrip_file);
    tcase_add_test(tc, test_getter_types);
    tcase_add_test(tc, test_writer_rejects);
    tcase_add_test(tc, test_big_vocab);
    return tc;
}
