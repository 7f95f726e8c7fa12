/* api.h — what the HTTP layer gets from api/: a parsed and validated
 * request in the scheduler's terms, and the client-facing error.
 *
 * api/ turns HTTP JSON bodies into px_api_req (prompt token ids, sampling,
 * stop conditions, stream flags) and scheduler events back into JSON in the
 * request's dialect. Pure functions: no threads, no sockets, no globals
 * beyond constants; every function may be called from any thread.
 * Owns: a px_api_req owns its arrays until px_api_req_free. */
#ifndef PX_API_H
#define PX_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/chat_template.h"
#include "api/image.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

/* A client-facing error: HTTP status and OpenAI-style fields. Messages never
 * contain file paths, pointers or library text. */
typedef struct px_api_error {
    int status;       /* 400, 401, 404, 405, 413, 429, 500, 503, 504 */
    const char *type; /* "invalid_request_error", "authentication_error", ... */
    const char *code; /* NULL or e.g. "context_length_exceeded" */
    char param[64];   /* offending field ("messages[2].role"), or "" */
    char message[256];
} px_api_error;

/* Fills e and returns -1 (for `return px_api_fail(...)`). */
int px_api_fail(px_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Limits the parsers enforce (from the config). */
typedef struct px_api_limits {
    int32_t max_prompt_tokens;  /* the context minus one, or less */
    int32_t n_ctx;              /* model context */
    int32_t max_tokens_default; /* when the client gives none (0: up to the context) */
    int max_n;                  /* choices per request (8) */
    int max_stop;               /* stop strings (4) */
    int max_stop_len;           /* bytes per stop string (256) */
    int max_top_logprobs;       /* 20 */
    int max_messages;           /* 4096 */
    int max_images;             /* images per request (8) */
    px_image_limits image;      /* per image: pixels, side, encoded bytes */
    bool remote_images;         /* allow http(s) image URLs (default false: SSRF) */
} px_api_limits;
void px_api_limits_init(px_api_limits *l);

typedef enum px_api_kind {
    PX_API_CHAT = 0,       /* /v1/chat/completions */
    PX_API_COMPLETION = 1, /* /v1/completions */
} px_api_kind;

/* An image of a request; its prompt rows hold placeholder ids. Parsing
 * checks it (base64, header, type, dimensions) and keeps the encoded bytes;
 * px_api_decode_images turns them into RGB (off the event loop). */
typedef struct px_api_image {
    int32_t pos;      /* prompt index of its first embedding row */
    int32_t n_tokens; /* embedding rows (the tower's output tokens) */
    uint64_t hash;    /* of the encoded bytes: prefix-cache and reuse key */
    uint8_t *data;    /* encoded bytes until decoded (then NULL) */
    size_t len;
    char mime[32];  /* claimed type ("" = none) */
    char param[64]; /* the request field it came from, for errors */
    px_image img;   /* RGB8 once decoded */
} px_api_image;

/* A validated generation request. */
typedef struct px_api_req {
    px_api_kind kind;
    char model[128]; /* as the client named it (echoed back) */
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    int32_t *prompt;    /* (n_prompt) token ids, BOS included as the model wants */
    int32_t n_prompt;
    int32_t max_tokens; /* 0: up to the context */
    int n;              /* choices */
    px_sampling sampling;
    bool has_seed;
    bool ignore_eos;
    bool logprobs; /* chat: logprobs; completions: logprobs != null */
    int top_logprobs;
    bool echo;   /* completions: prepend the prompt text (and its logprobs) */
    char **stop; /* (n_stop) NUL-terminated; lengths in stop_len */
    size_t *stop_len;
    int n_stop;
    double timeout_s; /* client-requested deadline, 0 = server default */
    int priority;
    px_api_image *images; /* (n_images) in prompt order, owned */
    int n_images;
} px_api_req;
/* Frees the arrays of r and zeroes their fields (r itself is the caller's). */
void px_api_req_free(px_api_req *r);

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if it is not
 * one (overlong forms, UTF-16 surrogates, > U+10FFFF, truncated). U+0000
 * counts as well-formed here; callers that forbid it check separately. */
size_t px_api_utf8_seq(const char *s, size_t n);
/* 1 if s[0..n) is entirely well-formed UTF-8, else 0. */
int px_api_utf8_valid(const char *s, size_t n);

/* What parsing needs besides the body. */
typedef struct px_api_ctx {
    const px_tokenizer *tok;
    px_chat_template tmpl;
    const px_api_limits *limits;
    const char *model_id;    /* the served model's id */
    int32_t image_tokens;    /* embedding rows per image; 0: the model takes no images */
    bool defer_image_decode; /* parsing only checks images; the caller runs
                              * px_api_decode_images (on a worker thread) */
} px_api_ctx;

/* Field readers shared by the dialects' parsers (any cJSON item, NULL
 * included): a JSON number in [lo, hi] (lo excluded when lo_open), an
 * integer when is_int, judged as a double (never cJSON's valueint); a
 * string as (pointer, length), valid UTF-8 (U+0000 cannot occur:
 * px_api_json_parse refuses it). Otherwise -1 with a 400 naming param. */
struct cJSON;
int px_api_num(const struct cJSON *it, const char *param, double lo, double hi, int lo_open,
               int is_int, double *out, px_api_error *e);
int px_api_str(const struct cJSON *it, const char *param, const char **s, size_t *n,
               px_api_error *e);

/* Parses a request body (not NUL-terminated, len bytes) into a cJSON tree
 * (free with cJSON_Delete). Rejects with 400: an empty body, a UTF-8 BOM,
 * raw NUL bytes and \u0000 escapes (cJSON would cut the string there),
 * malformed or truncated JSON, nesting deeper than cJSON's limit, anything
 * but whitespace after the value, and a top level that is not an object.
 * Lone surrogate escapes are rejected by cJSON itself. */
struct cJSON;
int px_api_json_parse(const char *body, size_t len, struct cJSON **out, px_api_error *e);

#endif
