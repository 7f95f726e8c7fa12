/* gguf.h — reader and writer for GGUF model files (versions 2 and 3).
 *
 * Format (little-endian throughout):
 *   magic "GGUF" (4 bytes), version u32 (2 or 3), n_tensors u64, n_kv u64,
 *   n_kv metadata pairs:  key (string), value type u32, value
 *   n_tensors infos:      name (string), n_dims u32 (1..4), ne[n_dims] u64,
 *                         type u32 (ggml type id), offset u64 (relative to
 *                         the data section, a multiple of the alignment)
 *   padding to `general.alignment` (u32 metadata, default 32), then the data.
 *   string = u64 length + bytes (no NUL). array = u32 elem type + u64 count +
 *   elements (arrays may nest). ne[0] is the innermost (contiguous) dimension.
 *
 * Owns: the mapping of the file (read-only mmap) and the parsed index of
 * metadata and tensor infos, which point into the mapping. Every count,
 * length, offset, dimension and type is checked before use; a bad file is
 * refused with a message naming what is wrong. Also refused: duplicate keys
 * or tensor names (compared by length and bytes), a general.alignment that is
 * not a u32 power of two, arrays nested more than 8 deep, tensors whose data
 * overlap. A bool value may be any byte (nonzero = true). Keys and tensor
 * names are hashed at open, so lookups are O(1); so is px_gguf_arr_str().
 * Threads: a px_gguf is immutable after px_gguf_open() returns; any thread may
 * read it concurrently. Pointers it hands out live until px_gguf_close(). */
#ifndef PX_GGUF_H
#define PX_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types.h"

#define PX_GGUF_DEFAULT_ALIGNMENT 32

typedef enum px_gguf_vtype {
    PX_GGUF_UINT8 = 0,
    PX_GGUF_INT8 = 1,
    PX_GGUF_UINT16 = 2,
    PX_GGUF_INT16 = 3,
    PX_GGUF_UINT32 = 4,
    PX_GGUF_INT32 = 5,
    PX_GGUF_FLOAT32 = 6,
    PX_GGUF_BOOL = 7,
    PX_GGUF_STRING = 8,
    PX_GGUF_ARRAY = 9,
    PX_GGUF_UINT64 = 10,
    PX_GGUF_INT64 = 11,
    PX_GGUF_FLOAT64 = 12,
    PX_GGUF_VTYPE_COUNT
} px_gguf_vtype;

/* Bytes of one value of a fixed-size type; 0 for STRING, ARRAY and unknown. */
size_t px_gguf_vtype_size(uint32_t type);

/* A string inside the mapping: not NUL-terminated. */
typedef struct px_gguf_str {
    const char *ptr; /* bytes in the mapping */
    uint64_t len;    /* byte length */
} px_gguf_str;

/* One tensor's info, validated: type known, 1 <= n_dims <= 4, every ne >= 1,
 * the byte size computed without overflow and the data inside the file. */
typedef struct px_gguf_tensor {
    px_gguf_str name; /* tensor name, e.g. "blk.0.attn_q.weight" */
    uint32_t n_dims;  /* 1..4 */
    int64_t ne[4];    /* dims, ne[0] innermost; unused dims are 1 */
    px_dtype type;    /* ggml type id */
    uint64_t offset;  /* offset from the start of the data section */
    uint64_t nbytes;  /* bytes of data */
    const void *data; /* pointer into the mapping */
} px_gguf_tensor;

typedef struct px_gguf px_gguf;

/* Maps and parses `path`. Returns NULL and fills err on any problem. */
px_gguf *px_gguf_open(const char *path, char *err, size_t errlen);
/* Parses a GGUF image already in memory (borrowed: must outlive the result).
 * Used by tests and the fuzzer. */
px_gguf *px_gguf_open_mem(const void *data, size_t size, char *err, size_t errlen);
void px_gguf_close(px_gguf *g);

uint32_t px_gguf_version(const px_gguf *g);
size_t px_gguf_alignment(const px_gguf *g);

/* --- metadata --- */
int64_t px_gguf_n_kv(const px_gguf *g);
/* Index of `key`, or -1. */
int64_t px_gguf_find_key(const px_gguf *g, const char *key);
px_gguf_str px_gguf_kv_key(const px_gguf *g, int64_t i);
px_gguf_vtype px_gguf_kv_type(const px_gguf *g, int64_t i);

/* Typed getters by key. Each returns 0, PX_EINVAL if the key is missing
 * (out untouched), or PX_EFORMAT if the value has another type (err names the
 * key). Integer getters accept any integer type whose value fits the target;
 * px_gguf_get_f32 accepts FLOAT32 and FLOAT64. */
int px_gguf_get_u32(const px_gguf *g, const char *key, uint32_t *out, char *err, size_t errlen);
int px_gguf_get_i64(const px_gguf *g, const char *key, int64_t *out, char *err, size_t errlen);
int px_gguf_get_f32(const px_gguf *g, const char *key, float *out, char *err, size_t errlen);
int px_gguf_get_bool(const px_gguf *g, const char *key, bool *out, char *err, size_t errlen);
int px_gguf_get_str(const px_gguf *g, const char *key, px_gguf_str *out, char *err, size_t errlen);

/* Arrays: element type and count of the array at `key` (PX_EINVAL if missing,
 * PX_EFORMAT if not an array). For arrays of fixed-size scalars `data` points
 * at the packed little-endian elements in the mapping (possibly unaligned:
 * read with memcpy); for arrays of strings use px_gguf_arr_str(). Nested
 * arrays are parsed and validated but exposed only through their type. */
typedef struct px_gguf_arr {
    px_gguf_vtype type; /* element type */
    uint64_t n;         /* element count */
    const void *data;   /* first element (scalar arrays) */
    int64_t _kv;        /* private: metadata index */
} px_gguf_arr;
int px_gguf_get_arr(const px_gguf *g, const char *key, px_gguf_arr *out, char *err, size_t errlen);
/* i-th string of a string array (i < arr->n), O(1). */
px_gguf_str px_gguf_arr_str(const px_gguf *g, const px_gguf_arr *arr, uint64_t i);

/* --- tensors --- */
int64_t px_gguf_n_tensors(const px_gguf *g);
const px_gguf_tensor *px_gguf_tensor_at(const px_gguf *g, int64_t i);
/* The tensor named `name`, or NULL. */
const px_gguf_tensor *px_gguf_find_tensor(const px_gguf *g, const char *name);

/* --- writer (tools and tests) ---
 * Build metadata and tensors in memory, then write the file in one go.
 * Tensor data is copied at add time. Alignment from "general.alignment" if set
 * before writing (default 32; it must be a u32 power of two). Setting a key
 * again replaces its value. Setters and add_tensor return 0, PX_EINVAL (bad
 * argument: scalar setter given STRING/ARRAY, unknown dtype, ne < 1, ne[0] not
 * a multiple of the block size, duplicate tensor name) or PX_ENOMEM. */
typedef struct px_gguf_writer px_gguf_writer;
px_gguf_writer *px_gguf_writer_create(void);
void px_gguf_writer_destroy(px_gguf_writer *w);
int px_gguf_writer_set_u32(px_gguf_writer *w, const char *key, uint32_t v);
int px_gguf_writer_set_i32(px_gguf_writer *w, const char *key, int32_t v);
int px_gguf_writer_set_f32(px_gguf_writer *w, const char *key, float v);
int px_gguf_writer_set_bool(px_gguf_writer *w, const char *key, bool v);
int px_gguf_writer_set_str(px_gguf_writer *w, const char *key, const char *v);
/* One value of any fixed-size scalar type (not STRING or ARRAY) read from v. */
int px_gguf_writer_set_val(px_gguf_writer *w, const char *key, px_gguf_vtype type, const void *v);
/* Array of scalars: n elements of `type` packed at `data`. */
int px_gguf_writer_set_arr(px_gguf_writer *w, const char *key, px_gguf_vtype type, const void *data,
                           uint64_t n);
/* Array of n NUL-terminated strings. */
int px_gguf_writer_set_arr_str(px_gguf_writer *w, const char *key, const char *const *v,
                               uint64_t n);
/* Adds a tensor; `data` holds px_dtype_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3] bytes. */
int px_gguf_writer_add_tensor(px_gguf_writer *w, const char *name, px_dtype type, int n_dims,
                              const int64_t *ne, const void *data);
/* Writes the GGUF v3 file. Returns 0 or a negative PX_E* and fills err. */
int px_gguf_writer_write(px_gguf_writer *w, const char *path, char *err, size_t errlen);
/* Writes the same image into a new malloc'd buffer: *out (caller frees), *size. */
int px_gguf_writer_write_mem(px_gguf_writer *w, void **out, size_t *size, char *err, size_t errlen);

#endif
