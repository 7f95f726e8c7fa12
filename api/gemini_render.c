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
#include "engine/px.h"

/* An appender that remembers the first failure. */
typedef struct w {
    px_buf *b;
    int err;
} w;

static void lit(w *o, const char *s) {
    if (!o->err && px_buf_append(o->b, s, strlen(s))) o->err = -1;
}
static void jstr(w *o, const char *s, size_t n) {
    if (!o->err && px_buf_json_str(o->b, s ? s : "", s ? n : 0)) o->err = -1;
}
static void jstr_z(w *o, const char *s) {
    jstr(o, s, s ? strlen(s) : 0);
}
static void jint(w *o, long long v) {
    if (!o->err && px_buf_printf(o->b, "%lld", v)) o->err = -1;
}
/* JSON has no infinities: an impossible token is written as -9999. */
static void jnum(w *o, double v) {
    if (!o->err && px_buf_printf(o->b, "%.9g", isfinite(v) ? v : -9999.0)) o->err = -1;
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
    w o = {out, 0};
    int status = e->status ? e->status : 500;
    lit(&o, "{\"error\":{\"code\":");
    jint(&o, status);
    lit(&o, ",\"message\":");
    jstr_z(&o, e->message);
    lit(&o, ",\"status\":\"");
    lit(&o, px_api_gemini_status_name(status));
    lit(&o, "\"");
    if (e->param[0]) {
        lit(&o, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
                "\"fieldViolations\":[{\"field\":");
        jstr_z(&o, e->param);
        lit(&o, ",\"description\":");
        jstr_z(&o, e->message);
        lit(&o, "}]}]");
    }
    lit(&o, "}}");
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
static void lp_candidate(w *o, const char *tok, size_t n, float lp) {
    lit(o, "{\"token\":");
    jstr(o, tok, n);
    lit(o, ",\"logProbability\":");
    jnum(o, lp);
    lit(o, "}");
}

/* logprobsResult: topCandidates[i].candidates and chosenCandidates[i] per
 * decoding step, and their sum. */
static void logprobs_result(w *o, const px_api_logprob *lps, int n) {
    double sum = 0;
    lit(o, "\"logprobsResult\":{\"topCandidates\":[");
    for (int i = 0; i < n; i++) {
        lit(o, i ? ",{\"candidates\":[" : "{\"candidates\":[");
        for (int k = 0; k < lps[i].n_top && k < 20; k++) {
            if (k) lit(o, ",");
            lp_candidate(o, lps[i].top_token[k], lps[i].top_len[k], lps[i].top_logprob[k]);
        }
        lit(o, "]}");
    }
    lit(o, "],\"chosenCandidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) lit(o, ",");
        lp_candidate(o, lps[i].token, lps[i].token_len, lps[i].logprob);
        sum += isfinite(lps[i].logprob) ? lps[i].logprob : -9999.0;
    }
    lit(o, "],\"logProbabilitySum\":");
    jnum(o, sum);
    lit(o, "}");
}

/* One candidate; finish NULL leaves finishReason out (not finished). */
static void candidate(w *o, int index, const char *text, size_t len, const char *finish,
                      const px_api_logprob *lps, int n_lps) {
    lit(o, "{\"content\":{\"parts\":[{\"text\":");
    jstr(o, text, len);
    lit(o, "}],\"role\":\"model\"}");
    if (finish) {
        lit(o, ",\"finishReason\":\"");
        lit(o, px_api_gemini_finish(finish));
        lit(o, "\"");
    }
    lit(o, ",\"index\":");
    jint(o, index);
    if (lps) {
        double sum = 0;
        for (int i = 0; i < n_lps; i++)
            sum += isfinite(lps[i].logprob) ? lps[i].logprob : -9999.0;
        if (n_lps > 0) {
            lit(o, ",\"avgLogprobs\":");
            jnum(o, sum / n_lps);
        }
        lit(o, ",");
        logprobs_result(o, lps, n_lps);
    }
    lit(o, "}");
}

static void usage(w *o, int32_t prompt, int32_t completion, int32_t cached) {
    lit(o, ",\"usageMetadata\":{\"promptTokenCount\":");
    jint(o, prompt);
    lit(o, ",\"candidatesTokenCount\":");
    jint(o, completion);
    lit(o, ",\"totalTokenCount\":");
    jint(o, (long long)prompt + completion);
    if (cached > 0) {
        lit(o, ",\"cachedContentTokenCount\":");
        jint(o, cached);
    }
    lit(o, ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    jint(o, prompt);
    lit(o, "}]}");
}

static void tail(w *o, const px_api_resp_meta *m) {
    lit(o, ",\"modelVersion\":");
    jstr_z(o, m->model ? m->model : "");
    lit(o, ",\"responseId\":");
    jstr_z(o, m->id);
    lit(o, "}");
}

int px_api_gemini_response(px_buf *out, const px_api_resp_meta *m, const px_api_choice *choices,
                           int n, int32_t prompt_tokens, int32_t completion_tokens,
                           int32_t cached_tokens) {
    w o = {out, 0};
    lit(&o, "{\"candidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) lit(&o, ",");
        candidate(&o, i, choices[i].text, choices[i].text_len,
                  choices[i].finish ? choices[i].finish : "stop", choices[i].lps, choices[i].n_lps);
    }
    lit(&o, "]");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    tail(&o, m);
    return o.err;
}

int px_api_gemini_chunk(px_buf *out, const px_api_resp_meta *m, int choice, const char *text,
                        size_t text_len, const px_api_logprob *lp) {
    w o = {out, 0};
    lit(&o, "{\"candidates\":[");
    candidate(&o, choice, text, text_len, NULL, lp, lp ? 1 : 0);
    lit(&o, "]");
    tail(&o, m);
    return o.err;
}

int px_api_gemini_final_chunk(px_buf *out, const px_api_resp_meta *m, const char *const *finish,
                              int n, int32_t prompt_tokens, int32_t completion_tokens,
                              int32_t cached_tokens) {
    w o = {out, 0};
    lit(&o, "{\"candidates\":[");
    for (int i = 0; i < n; i++) {
        if (i) lit(&o, ",");
        candidate(&o, i, "", 0, finish[i] ? finish[i] : "stop", NULL, 0);
    }
    lit(&o, "]");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    tail(&o, m);
    return o.err;
}

int px_api_gemini_count(px_buf *out, int32_t total_tokens) {
    w o = {out, 0};
    lit(&o, "{\"totalTokens\":");
    jint(&o, total_tokens);
    lit(&o, ",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    jint(&o, total_tokens);
    lit(&o, "}]}");
    return o.err;
}

/* --- models ---------------------------------------------------------------- */

static void model_obj(w *o, const px_api_model_info *m) {
    const char *id = m->id ? m->id : "";
    long long limit = m->n_ctx_train > 0 ? (long long)m->n_ctx_train : 0;
    lit(o, "{\"name\":");
    px_buf name = {0};
    if (px_buf_append(&name, "models/", 7) || px_buf_append(&name, id, strlen(id))) o->err = -1;
    jstr(o, name.data, name.len);
    px_buf_free(&name);
    lit(o, ",\"baseModelId\":");
    jstr_z(o, id);
    lit(o, ",\"version\":\"001\",\"displayName\":");
    jstr_z(o, id);
    lit(o, ",\"description\":");
    jstr_z(o, m->owned_by ? m->owned_by : "pollux");
    lit(o, ",\"inputTokenLimit\":");
    jint(o, limit);
    lit(o, ",\"outputTokenLimit\":");
    jint(o, limit);
    lit(o, ",\"supportedGenerationMethods\":[\"generateContent\",\"streamGenerateContent\","
           "\"countTokens\"],\"temperature\":1,\"maxTemperature\":2,\"topP\":1}");
}

int px_api_gemini_model(px_buf *out, const px_api_model_info *m) {
    w o = {out, 0};
    model_obj(&o, m);
    return o.err;
}

int px_api_gemini_models(px_buf *out, const px_api_model_info *m) {
    w o = {out, 0};
    lit(&o, "{\"models\":[");
    model_obj(&o, m);
    lit(&o, "]}");
    return o.err;
}
