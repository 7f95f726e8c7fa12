/* openai.h — the OpenAI dialect: request parsing and validation for
 * /v1/chat/completions and /v1/completions, and the JSON of responses,
 * stream chunks, /v1/models, /tokenize, /detokenize and errors.
 *
 * Parsing is strict where OpenAI is (types, ranges, roles) and lenient where
 * it is (unknown fields are ignored). Numbers are checked as doubles before
 * any conversion (no cJSON valueint), strings as valid UTF-8 without NULs.
 * Pure functions over cJSON. Any thread. */
#ifndef PX_OPENAI_H
#define PX_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "api/chat_template.h"
#include "engine/tokenizer.h"

/* Parses and validates a body for `kind`; fills out (free with
 * px_api_req_free) or returns -1 with e filled (400/413 class; out then
 * owns nothing). Chat prompts: the template's markers are tokenized as
 * special tokens, message content never is (no prompt injection of
 * <start_of_turn> and the like). Completions string prompts are tokenized
 * with special tokens (the client writes the whole prompt). Numeric fields
 * reject null and every non-number; optional bool/object/array fields
 * (stream, stop, stream_options, logit_bias, tools, ...) read null as
 * absent. A known top-level field given twice is an error. Without
 * max_tokens: limits->max_tokens_default clamped to the context left. */
int px_api_openai_parse(px_api_kind kind, const char *body, size_t len, const px_api_ctx *ctx,
                        px_api_req *out, px_api_error *e);

/* Growable output buffer for rendering. */
typedef struct px_buf {
    char *data;
    size_t len, cap;
} px_buf;
int px_buf_append(px_buf *b, const void *data, size_t n);
int px_buf_printf(px_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void px_buf_free(px_buf *b);
/* Appends s[0..n) as a JSON string literal (quotes included): '"', '\\' and
 * control characters escaped (U+0000 as \u0000), valid UTF-8 kept as is,
 * each byte of an invalid sequence replaced by U+FFFD, so the output is
 * always valid UTF-8 JSON. */
int px_buf_json_str(px_buf *b, const char *s, size_t n);

/* Per-response constants shared by every chunk. */
typedef struct px_api_resp_meta {
    px_api_kind kind;
    char id[64];     /* "chatcmpl-..." / "cmpl-..." */
    int64_t created; /* unix seconds */
    const char *model;
    const char *system_fingerprint;
} px_api_resp_meta;

/* One token's logprob data as rendered (text bytes of the token and the
 * top alternatives, already detokenized by the caller). */
typedef struct px_api_logprob {
    const char *token; /* bytes of the token's text */
    size_t token_len;
    float logprob; /* non-finite values are written as -9999.0 */
    int n_top;
    const char *top_token[20];
    size_t top_len[20];
    float top_logprob[20];
    int missing;         /* completions echo: the first prompt token has no
                          * logprob (token_logprobs/top_logprobs entry null) */
    int64_t text_offset; /* completions chunks: the token's offset in the
                          * choice's text (code points); whole responses
                          * compute it themselves */
} px_api_logprob;

/* Appends "data: {chunk}\n\n" for one choice's delta to out. Chat: role_first
 * adds role "assistant" and "content" even when empty (first chunk of the
 * choice); otherwise "content" appears only when text is non-empty, so the
 * final chunk has an empty delta. Completions: {"text","index","logprobs",
 * "finish_reason"}, role_first ignored, text_offset from lp. finish is NULL
 * (null) or "stop"/"length"; lp NULL (logprobs null) or the token's
 * logprobs. With include_usage every chunk carries "usage": null, without
 * it there is no usage key. Returns 0 or -1 (out of memory). */
int px_api_openai_chunk(px_buf *out, const px_api_resp_meta *m, int choice, int role_first,
                        const char *text, size_t text_len, const char *finish,
                        const px_api_logprob *lp, int include_usage);
/* The final usage chunk (choices: []), only when include_usage. */
int px_api_openai_usage_chunk(px_buf *out, const px_api_resp_meta *m, int32_t prompt_tokens,
                              int32_t completion_tokens, int32_t cached_tokens);

/* A whole non-streamed response with n choices. */
typedef struct px_api_choice {
    const char *text;
    size_t text_len;
    const char *finish;        /* "stop" / "length" */
    const px_api_logprob *lps; /* (n_lps) or NULL */
    int n_lps;
} px_api_choice;
/* Chat: choices[{index, message{role, content, refusal: null}, logprobs,
 * finish_reason}]; completions: choices[{text, index, logprobs,
 * finish_reason}] with text_offset computed from the tokens. A choice's
 * logprobs is null when lps is NULL. Returns 0 or -1 (out of memory). */
int px_api_openai_response(px_buf *out, const px_api_resp_meta *m, const px_api_choice *choices,
                           int n, int32_t prompt_tokens, int32_t completion_tokens,
                           int32_t cached_tokens);

/* {"error":{"message","type","param","code"}}; param and code are null
 * when absent. */
int px_api_openai_error(px_buf *out, const px_api_error *e);

/* --- /v1/models ----------------------------------------------------------- */

/* What /v1/models says about the served model (llama.cpp's "meta" keys). */
typedef struct px_api_model_info {
    const char *id;       /* model id clients use */
    int64_t created;      /* unix seconds (file mtime or start time) */
    const char *owned_by; /* e.g. "pollux" */
    int64_t n_vocab, n_ctx_train, n_embd, n_params, size; /* meta; < 0: omitted */
    int vision;                                           /* input_modalities lists "image" too */
} px_api_model_info;
/* {"object":"list","data":[<model>]} */
int px_api_openai_models(px_buf *out, const px_api_model_info *m);
/* One model object, for GET /v1/models/{id}:
 * {"id","object":"model","created","owned_by","meta":{...}}. */
int px_api_openai_model(px_buf *out, const px_api_model_info *m);

/* --- /tokenize, /detokenize (llama.cpp's extras) -------------------------- */

/* Parses {"content": string, "add_special": bool (false),
 * "parse_special": bool (true), "with_pieces": bool (false)} and tokenizes
 * content into *ids (malloc'd, *n_ids). Returns 0 or -1 with e filled. */
int px_api_tokenize_parse(const char *body, size_t len, const px_api_ctx *ctx, int32_t **ids,
                          int32_t *n_ids, int *with_pieces, px_api_error *e);
/* {"tokens":[ids]} or, with_pieces, {"tokens":[{"id","piece"}]} where piece
 * is the token's text, or its bytes as an array of ints when they are not
 * valid UTF-8 on their own (a byte-fallback token). */
int px_api_tokenize_render(px_buf *out, const px_tokenizer *tok, const int32_t *ids, int32_t n,
                           int with_pieces);
/* Parses {"tokens":[ids]} (each in [0, n_vocab), at most
 * max(limits->n_ctx, 65536) of them: 413 above). */
int px_api_detokenize_parse(const char *body, size_t len, const px_api_ctx *ctx, int32_t **ids,
                            int32_t *n_ids, px_api_error *e);
/* {"content": text}: the tokens' text with control tokens written out,
 * incomplete UTF-8 as U+FFFD. */
int px_api_detokenize_render(px_buf *out, const px_tokenizer *tok, const int32_t *ids, int32_t n);

#endif
