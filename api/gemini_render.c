/* api/gemini_render.c — the JSON pollux sends in the Gemini dialect:
 * GenerateContentResponse (whole and as stream chunks), countTokens,
 * Model objects and errors.
 *
 * Written directly into a px_buf, as openai_render.c does: model text can
 * hold any byte and px_buf_json_str keeps the output valid UTF-8 JSON.
 * Every function appends to out and returns 0, or -1 when memory runs out. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/gemini.h"
#include "api/json_writer.h"
#include "engine/px.h"

static void jstr_z(px_jw *o, const char *s) {
    jw_str(o, s, s ? strlen(s) : 0);
}

const char *px_api_gemini_status_name(int status) {
    switch (status) {
    case 400:
    case 413:
    case 414:
    case 422: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 405:
    case 501: return "UNIMPLEMENTED";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return "INTERNAL";
    }
}

int px_api_gemini_error(px_buf *out, const px_api_error *e) {
    px_jw o = {out, 0};
    int status = e->status ? e->status : 500;
    jw_lit(&o, "{\"error\":{\"code\":");
    jw_int(&o, status);
    jw_lit(&o, ",\"message\":");
    jstr_z(&o, e->message);
    jw_lit(&o, ",\"status\":\"");
    jw_lit(&o, px_api_gemini_status_name(status));
    jw_lit(&o, "\"");
    if (e->param[0]) {
        jw_lit(&o, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
                   "\"fieldViolations\":[{\"field\":");
        jstr_z(&o, e->param);
        jw_lit(&o, ",\"description\":");
        jstr_z(&o, e->message);
        jw_lit(&o, "}]}]");
    }
    jw_lit(&o, "}}");
    return o.err;
}

const char *px_api_gemini_finish(const char *finish) {
    if (!finish) return NULL;
    if (strcmp(finish, "stop") == 0) return "STOP";
    if (strcmp(finish, "length") == 0) return "MAX_TOKENS";
    return "OTHER";
}

/* --- candidates ------------------------------------------------------------ */

/* {"token","tokenId"?,"logProbability"}; token ids are not carried by
 * px_api_logprob, so only the text is given. */
static void lp_candidate(px_jw *o, const char *tok, size_t n, float lp) {
    jw_lit(o, "{\"token\":");
    jw_str(o, tok, n);
    jw_lit(o, ",\"logProbability\":");
    jw_num(o, lp);
    jw_lit(o, "}");
}

/* logprobsResult: topCandidates[i].candidates and chosenCandidates[i] per
 * decoding step, and their sum. */
static void logprobs_result(px_jw *o, const px_api_logprob *lps, int n) {
    double sum = 0;
    jw_lit(o, "\"logprobsResult\":{\"topCandidates\":[");
    for (int i = 0; i < n; i++) {
        jw_lit(o, i ? ",{\"candidates\":[" : "{\"candidates\":[");
        for (int k = 0; k < lps[i].n_top && k < 20; k++) {
            if (k) jw_lit(o, ",");
            lp_candidate(o, lps[i].top_token[k], lps[i].top_len[k], lps[i].top_logprob[k]);
        }
        jw_lit(o, "]}");
    }
    jw_lit(o, "],\"chosenCandidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        lp_candidate(o, lps[i].token, lps[i].token_len, lps[i].logprob);
        sum += isfinite(lps[i].logprob) ? lps[i].logprob : -9999.0;
    }
    jw_lit(o, "],\"logProbabilitySum\":");
    jw_num(o, sum);
    jw_lit(o, "}");
}

/* One candidate; finish NULL leaves finishReason out (not finished). */
static void candidate(px_jw *o, int index, const char *text, size_t len, const char *finish,
                      const px_api_logprob *lps, int n_lps) {
    jw_lit(o, "{\"content\":{\"parts\":[{\"text\":");
    jw_str(o, text, len);
    jw_lit(o, "}],\"role\":\"model\"}");
    if (finish) {
        jw_lit(o, ",\"finishReason\":\"");
        jw_lit(o, px_api_gemini_finish(finish));
        jw_lit(o, "\"");
    }
    jw_lit(o, ",\"index\":");
    jw_int(o, index);
    if (lps) {
        double sum = 0;
        for (int i = 0; i < n_lps; i++)
            sum += isfinite(lps[i].logprob) ? lps[i].logprob : -9999.0;
        if (n_lps > 0) {
            jw_lit(o, ",\"avgLogprobs\":");
            jw_num(o, sum / n_lps);
        }
        jw_lit(o, ",");
        logprobs_result(o, lps, n_lps);
    }
    jw_lit(o, "}");
}

static void usage(px_jw *o, int32_t prompt, int32_t completion, int32_t cached) {
    jw_lit(o, ",\"usageMetadata\":{\"promptTokenCount\":");
    jw_int(o, prompt);
    jw_lit(o, ",\"candidatesTokenCount\":");
    jw_int(o, completion);
    jw_lit(o, ",\"totalTokenCount\":");
    jw_int(o, (long long)prompt + completion);
    if (cached > 0) {
        jw_lit(o, ",\"cachedContentTokenCount\":");
        jw_int(o, cached);
    }
    jw_lit(o, ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    jw_int(o, prompt);
    jw_lit(o, "}]}");
}

static void tail(px_jw *o, const px_api_resp_meta *m) {
    jw_lit(o, ",\"modelVersion\":");
    jstr_z(o, m->model ? m->model : "");
    jw_lit(o, ",\"responseId\":");
    jstr_z(o, m->id);
    jw_lit(o, "}");
}

int px_api_gemini_response(px_buf *out, const px_api_resp_meta *m, const px_api_choice *choices,
                           int n, int32_t prompt_tokens, int32_t completion_tokens,
                           int32_t cached_tokens) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"candidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(&o, ",");
        candidate(&o, i, choices[i].text, choices[i].text_len,
                  choices[i].finish ? choices[i].finish : "stop", choices[i].lps, choices[i].n_lps);
    }
    jw_lit(&o, "]");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    tail(&o, m);
    return o.err;
}

int px_api_gemini_chunk(px_buf *out, const px_api_resp_meta *m, int choice, const char *text,
                        size_t text_len, const px_api_logprob *lp) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"candidates\":[");
    candidate(&o, choice, text, text_len, NULL, lp, lp ? 1 : 0);
    jw_lit(&o, "]");
    tail(&o, m);
    return o.err;
}

int px_api_gemini_final_chunk(px_buf *out, const px_api_resp_meta *m, const char *const *finish,
                              int n, int32_t prompt_tokens, int32_t completion_tokens,
                              int32_t cached_tokens) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"candidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(&o, ",");
        candidate(&o, i, "", 0, finish[i] ? finish[i] : "stop", NULL, 0);
    }
    jw_lit(&o, "]");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    tail(&o, m);
    return o.err;
}

int px_api_gemini_count(px_buf *out, int32_t total_tokens) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"totalTokens\":");
    jw_int(&o, total_tokens);
    jw_lit(&o, ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    jw_int(&o, total_tokens);
    jw_lit(&o, "}]}");
    return o.err;
}

/* --- models ---------------------------------------------------------------- */

static void model_obj(px_jw *o, const px_api_model_info *m) {
    const char *id = m->id ? m->id : "";
    long long limit = m->n_ctx_train > 0 ? (long long)m->n_ctx_train : 0;
    jw_lit(o, "{\"name\":");
    px_buf name = {0};
    if (px_buf_append(&name, "models/", 7) || px_buf_append(&name, id, strlen(id))) o->err = -1;
    jw_str(o, name.data, name.len);
    px_buf_free(&name);
    jw_lit(o, ",\"baseModelId\":");
    jstr_z(o, id);
    jw_lit(o, ",\"version\":\"001\",\"displayName\":");
    jstr_z(o, id);
    jw_lit(o, ",\"description\":");
    jstr_z(o, m->owned_by ? m->owned_by : "pollux");
    jw_lit(o, ",\"inputTokenLimit\":");
    jw_int(o, limit);
    jw_lit(o, ",\"outputTokenLimit\":");
    jw_int(o, limit);
    jw_lit(o, ",\"supportedGenerationMethods\":[\"generateContent\",\"streamGenerateContent\","
              "\"countTokens\"],\"temperature\":1,\"maxTemperature\":2,\"topP\":1}");
}

int px_api_gemini_model(px_buf *out, const px_api_model_info *m) {
    px_jw o = {out, 0};
    model_obj(&o, m);
    return o.err;
}

int px_api_gemini_models(px_buf *out, const px_api_model_info *m) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"models\":[");
    model_obj(&o, m);
    jw_lit(&o, "]}");
    return o.err;
}
