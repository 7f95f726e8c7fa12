/* fuzz_util.h — shared pieces of the libFuzzer targets in tests/fuzz/: a
 * byte reader that splits one fuzz input into fields, and the synthetic
 * tokenizers of engine/mkmodel.c built once per process.
 * Harness code, not library code: a failure to build a fixture aborts (it is
 * our bug, not an input error); inputs are never allowed to abort. */
#ifndef PX_FUZZ_UTIL_H
#define PX_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "api/api.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

/* Reads fields off the front of a fuzz input; past the end it yields zeros
 * and empty slices, so every input is usable whatever its length. */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint32_t fz_u32(fz_in *in);
/* Up to `max` bytes (fewer if the input runs out); *len gets the count. */
const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len);
/* A slice whose length is the next byte (0..255). */
const uint8_t *fz_str8(fz_in *in, size_t *len);

/* The synthetic vocabulary of `arch` (1536 tokens) as a tokenizer, built
 * through GGUF metadata in memory. Aborts on failure. */
px_tokenizer *fz_tokenizer(px_arch arch);

/* What every parsed request must satisfy: prompt ids in the vocabulary
 * (image rows aside), images in order inside the prompt and within
 * max_images, choices, stops and logprobs within the limits; with
 * FZ_REQ_CTX also prompt + max_tokens within the context, with
 * FZ_REQ_MODEL_UTF8 a model name in valid UTF-8 (JSON bodies; the Gemini
 * model comes from the URL as the caller gives it). */
enum { FZ_REQ_CTX = 1, FZ_REQ_MODEL_UTF8 = 2, FZ_REQ_DEFERRED = 4 };
void fz_check_req(const px_api_req *r, const px_api_ctx *c, int flags);
/* For a request parsed with defer_image_decode: px_api_decode_images, then
 * every image decoded, or a 4xx/500 error with a message. */
void fz_decode_deferred(px_api_req *r, const px_api_ctx *c);
/* The parsers' limits in the API targets: a 1024-token context, 3 images of
 * at most 1 Mpx, and the given max_tokens default. */
void fz_api_limits(px_api_limits *l, int max_tokens_default);
/* A refused request's error: 4xx, a message, message and param UTF-8. */
void fz_check_api_error(const px_api_error *e);
/* s[0..n) is valid UTF-8 and one JSON value. */
void fz_check_json(const char *s, size_t n, const char *what);

/* Nonzero when $PX_FUZZ_VERBOSE is set: targets then print why each input
 * was refused (for triage and for checking that seeds get through). */
int fz_verbose(void);
#define FZ_LOG(...)                                                                                \
    do {                                                                                           \
        if (fz_verbose()) fprintf(stderr, __VA_ARGS__);                                            \
    } while (0)

/* Aborts with a message: a property the harness checks does not hold. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                              \
    } while (0)
_Noreturn void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
