/* gemini.h — the Gemini dialect (Google's generativelanguage REST shape):
 * request parsing and validation for models/{model}:generateContent,
 * :streamGenerateContent and :countTokens, and the JSON of
 * GenerateContentResponse objects (whole or as stream chunks),
 * countTokens answers, Model objects and errors.
 *
 * Requests become the same px_api_req the OpenAI parser produces, so the
 * scheduler path is shared: contents[] (role "user"/"model", parts of text
 * and inline images) and systemInstruction become chat messages rendered
 * with the model's template (api/prompt.h), consecutive contents of one
 * role joined into one turn; generationConfig becomes sampling, stop
 * strings, choices and logprobs. Field names are accepted in
 * lowerCamelCase and in proto snake_case, as Google's API does; a field given
 * in both spellings is an error. Unknown fields are ignored; safetySettings
 * is accepted and ignored. Responses use camelCase.
 *
 * Stream framing is the caller's: renderers write one JSON object, which the
 * HTTP side sends as an SSE event ("data: <json>\r\n\r\n", ?alt=sse) or as an
 * element of a JSON array written progressively.
 * Pure functions over cJSON and px_buf; any thread. */
#ifndef PX_GEMINI_H
#define PX_GEMINI_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"
#include "api/openai.h"

typedef enum px_gemini_method {
    PX_GEMINI_GENERATE = 0, /* :generateContent */
    PX_GEMINI_STREAM = 1,   /* :streamGenerateContent */
    PX_GEMINI_COUNT = 2,    /* :countTokens */
} px_gemini_method;

/* Parses "generateContent" etc. (the part of the path after the last ':');
 * 0 and *out, or -1 for an unknown method. */
int px_api_gemini_method_from_name(const char *name, px_gemini_method *out);

/* Parses and validates a body for method m addressed to `model` (the name
 * from the URL, without "models/"; echoed as modelVersion). Fills out (free
 * with px_api_req_free) or returns -1 with e filled (out then owns nothing).
 * out->kind is PX_API_CHAT and out->stream is m == PX_GEMINI_STREAM.
 * countTokens takes {contents[]} or {generateContentRequest:{...}} (not
 * both); its count is out->n_prompt, and the context checks are skipped
 * (past max_prompt_tokens the ids are not kept: out->prompt is NULL).
 * generate/stream check the prompt and maxOutputTokens against the context
 * (400 INVALID_ARGUMENT); without maxOutputTokens the default of
 * limits->max_tokens_default applies, clamped to the context left. */
int px_api_gemini_parse(px_gemini_method m, const char *model, const char *body, size_t len,
                        const px_api_ctx *ctx, px_api_req *out, px_api_error *e);

/* Google's status name for an HTTP status: 400 INVALID_ARGUMENT,
 * 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND,
 * 405/501 UNIMPLEMENTED, 413/414/422 INVALID_ARGUMENT, 429 RESOURCE_EXHAUSTED,
 * 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, anything else INTERNAL. */
const char *px_api_gemini_status_name(int status);

/* {"error":{"code","message","status"}} with, when e->param is set, a
 * google.rpc.BadRequest detail naming the field. */
int px_api_gemini_error(px_buf *out, const px_api_error *e);

/* Google's finishReason for ours ("stop" -> STOP, "length" -> MAX_TOKENS;
 * NULL -> NULL, anything else -> OTHER). Takes the OpenAI-style names that
 * px_api_choice carries. */
const char *px_api_gemini_finish(const char *finish);

/* A whole GenerateContentResponse: candidates[{content{parts[{text}],
 * role:"model"}, finishReason, index, avgLogprobs + logprobsResult when
 * lps}], usageMetadata, modelVersion (m->model), responseId (m->id).
 * Returns 0 or -1 (out of memory). */
int px_api_gemini_response(px_buf *out, const px_api_resp_meta *m, const px_api_choice *choices,
                           int n, int32_t prompt_tokens, int32_t completion_tokens,
                           int32_t cached_tokens);

/* One stream chunk carrying a text delta for candidate `choice` (and the
 * token's logprobsResult when lp is not NULL). No usageMetadata. */
int px_api_gemini_chunk(px_buf *out, const px_api_resp_meta *m, int choice, const char *text,
                        size_t text_len, const px_api_logprob *lp);

/* The last stream chunk: every candidate with an empty text part and its
 * finishReason (finish[i], OpenAI-style names), and usageMetadata. */
int px_api_gemini_final_chunk(px_buf *out, const px_api_resp_meta *m, const char *const *finish,
                              int n, int32_t prompt_tokens, int32_t completion_tokens,
                              int32_t cached_tokens);

/* {"totalTokens": n} */
int px_api_gemini_count(px_buf *out, int32_t total_tokens);

/* A Model object: {"name":"models/<id>", "baseModelId", "version",
 * "displayName", "description", "inputTokenLimit", "outputTokenLimit",
 * "supportedGenerationMethods", "temperature", "maxTemperature", "topP",
 * "topK"}. Token limits come from m->n_ctx_train. */
int px_api_gemini_model(px_buf *out, const px_api_model_info *m);
/* {"models":[<model>]} */
int px_api_gemini_models(px_buf *out, const px_api_model_info *m);

#endif
