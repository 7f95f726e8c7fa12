/* api/openai.c — parsing and validation of OpenAI request bodies
 * (/v1/chat/completions, /v1/completions, /tokenize, /detokenize).
 *
 * Order of work: the cheap field checks run first, the chat template and the
 * tokenizer last, so a bad field costs no tokenization. Numbers are judged
 * as doubles (integrality and range) before any conversion; cJSON's
 * valueint is never read (it saturates and is UB-adjacent for NaN). Nothing
 * here recurses on client data: every walk is a loop over one level. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/openai.h"
#include "api/prompt.h"
#include "engine/px.h"

#define BAD "invalid_request_error"

/* Largest integer a double holds exactly with its neighbours distinct
 * (JavaScript's MAX_SAFE_INTEGER): 2^53 - 1. */
#define SAFE_INT 9007199254740991.0

/* --- field access --------------------------------------------------------- */

/* The top-level fields we read, filled in one pass over the object. */
enum {
    F_MODEL,
    F_MESSAGES,
    F_PROMPT,
    F_STREAM,
    F_STREAM_OPTIONS,
    F_MAX_TOKENS,
    F_MAX_COMPLETION_TOKENS,
    F_TEMPERATURE,
    F_TOP_P,
    F_TOP_K,
    F_MIN_P,
    F_SEED,
    F_STOP,
    F_PRESENCE,
    F_FREQUENCY,
    F_REPETITION,
    F_N,
    F_LOGPROBS,
    F_TOP_LOGPROBS,
    F_IGNORE_EOS,
    F_TIMEOUT,
    F_PRIORITY,
    F_LOGIT_BIAS,
    F_RESPONSE_FORMAT,
    F_TOOLS,
    F_FUNCTIONS,
    F_ECHO,
    F_SUFFIX,
    F_BEST_OF,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "model",
    "messages",
    "prompt",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "n",
    "logprobs",
    "top_logprobs",
    "ignore_eos",
    "timeout",
    "priority",
    "logit_bias",
    "response_format",
    "tools",
    "functions",
    "echo",
    "suffix",
    "best_of",
};

/* Fills f[] from obj's members. A known field given twice is an error:
 * parsers disagree on which copy wins, and a proxy in front could check the
 * other one. Unknown fields are ignored, as OpenAI does. */
static int collect(const cJSON *obj, const cJSON *f[F_COUNT], px_api_error *e) {
    for (int i = 0; i < F_COUNT; i++)
        f[i] = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string) continue;
        for (int i = 0; i < F_COUNT; i++) {
            if (strcmp(c->string, field_names[i]) != 0) continue;
            if (f[i])
                return px_api_fail(e, 400, BAD, NULL, field_names[i], "'%s' is given twice",
                                   field_names[i]);
            f[i] = c;
            break;
        }
    }
    return 0;
}

/* A member of a nested object (first match; nested objects are small). */
static const cJSON *member(const cJSON *obj, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* Optional bool: absent or null leaves *out. */
static int opt_bool(const cJSON *it, const char *param, bool *out, px_api_error *e) {
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it))
        return px_api_fail(e, 400, BAD, NULL, param, "'%s' must be a boolean", param);
    *out = cJSON_IsTrue(it);
    return 0;
}

/* --- sampling and other scalar fields ------------------------------------ */

static int parse_scalars(px_api_kind kind, const cJSON *const *f, const px_api_limits *lim,
                         px_api_req *r, px_api_error *e) {
    double d;
    const char *s;
    size_t n;

    if (!f[F_MODEL]) return px_api_fail(e, 400, BAD, NULL, "model", "'model' is required");
    if (px_api_str(f[F_MODEL], "model", &s, &n, e)) return -1;
    if (n == 0 || n >= sizeof r->model)
        return px_api_fail(e, 400, BAD, NULL, "model", "'model' must be 1 to %zu bytes long",
                           sizeof r->model - 1);
    memcpy(r->model, s, n + 1);

    if (opt_bool(f[F_STREAM], "stream", &r->stream, e)) return -1;
    const cJSON *so = f[F_STREAM_OPTIONS];
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return px_api_fail(e, 400, BAD, NULL, "stream_options",
                               "'stream_options' must be an object");
        bool iu = false;
        if (opt_bool(member(so, "include_usage"), "stream_options.include_usage", &iu, e))
            return -1;
        r->include_usage = r->stream && iu; /* meaningless without stream */
    }

    /* max_completion_tokens replaces max_tokens; both are checked. */
    double mt = 0, mct = 0;
    if (f[F_MAX_TOKENS] && px_api_num(f[F_MAX_TOKENS], "max_tokens", 1, INT32_MAX, 0, 1, &mt, e))
        return -1;
    if (f[F_MAX_COMPLETION_TOKENS] &&
        px_api_num(f[F_MAX_COMPLETION_TOKENS], "max_completion_tokens", 1, INT32_MAX, 0, 1, &mct,
                   e))
        return -1;
    r->max_tokens = (int32_t)(f[F_MAX_COMPLETION_TOKENS] ? mct : mt); /* 0: not given */

    px_sampling *p = &r->sampling;
    if (f[F_TEMPERATURE]) {
        if (px_api_num(f[F_TEMPERATURE], "temperature", 0, 2, 0, 0, &d, e)) return -1;
        p->temperature = (float)d;
    }
    if (f[F_TOP_P]) {
        if (px_api_num(f[F_TOP_P], "top_p", 0, 1, 1, 0, &d, e)) return -1;
        p->top_p = (float)d;
    }
    if (f[F_TOP_K]) {
        if (px_api_num(f[F_TOP_K], "top_k", -1, INT32_MAX, 0, 1, &d, e)) return -1;
        p->top_k = d <= 0 ? 0 : (int32_t)d;
    }
    if (f[F_MIN_P]) {
        if (px_api_num(f[F_MIN_P], "min_p", 0, 1, 0, 0, &d, e)) return -1;
        p->min_p = (float)d;
    }
    if (f[F_SEED]) {
        if (px_api_num(f[F_SEED], "seed", -SAFE_INT, SAFE_INT, 0, 1, &d, e)) return -1;
        p->seed = (uint64_t)(int64_t)d;
        r->has_seed = true;
    }
    if (f[F_PRESENCE]) {
        if (px_api_num(f[F_PRESENCE], "presence_penalty", -2, 2, 0, 0, &d, e)) return -1;
        p->presence_penalty = (float)d;
    }
    if (f[F_FREQUENCY]) {
        if (px_api_num(f[F_FREQUENCY], "frequency_penalty", -2, 2, 0, 0, &d, e)) return -1;
        p->frequency_penalty = (float)d;
    }
    if (f[F_REPETITION]) {
        if (px_api_num(f[F_REPETITION], "repetition_penalty", 0, 10, 1, 0, &d, e)) return -1;
        p->repetition_penalty = (float)d;
    }
    if (f[F_N]) {
        if (px_api_num(f[F_N], "n", 1, lim->max_n, 0, 1, &d, e)) return -1;
        r->n = (int)d;
    }
    if (kind == PX_API_COMPLETION && f[F_BEST_OF] && !cJSON_IsNull(f[F_BEST_OF])) {
        if (px_api_num(f[F_BEST_OF], "best_of", 1, INT32_MAX, 0, 1, &d, e)) return -1;
        if (d != r->n)
            return px_api_fail(e, 400, BAD, NULL, "best_of",
                               "'best_of' other than 'n' is not supported");
    }

    if (kind == PX_API_CHAT) {
        if (opt_bool(f[F_LOGPROBS], "logprobs", &r->logprobs, e)) return -1;
        if (f[F_TOP_LOGPROBS] && !cJSON_IsNull(f[F_TOP_LOGPROBS])) {
            if (px_api_num(f[F_TOP_LOGPROBS], "top_logprobs", 0, lim->max_top_logprobs, 0, 1, &d,
                           e))
                return -1;
            if (!r->logprobs)
                return px_api_fail(e, 400, BAD, NULL, "top_logprobs",
                                   "'top_logprobs' requires 'logprobs' to be true");
            r->top_logprobs = (int)d;
        }
    } else {
        /* Completions: logprobs is the number of top alternatives (0..5). */
        if (f[F_LOGPROBS] && !cJSON_IsNull(f[F_LOGPROBS])) {
            if (px_api_num(f[F_LOGPROBS], "logprobs", 0, 5, 0, 1, &d, e)) return -1;
            r->logprobs = true;
            r->top_logprobs = (int)d;
        }
        if (opt_bool(f[F_ECHO], "echo", &r->echo, e)) return -1;
        if (f[F_SUFFIX] && !cJSON_IsNull(f[F_SUFFIX]))
            return px_api_fail(e, 400, BAD, NULL, "suffix", "'suffix' is not supported");
    }
    if (r->top_logprobs > PX_MAX_LOGPROBS)
        return px_api_fail(e, 400, BAD, NULL, "top_logprobs", "at most %d top logprobs",
                           PX_MAX_LOGPROBS);
    p->want_logprobs = r->logprobs;
    p->n_logprobs = r->top_logprobs;

    if (opt_bool(f[F_IGNORE_EOS], "ignore_eos", &r->ignore_eos, e)) return -1;
    if (f[F_TIMEOUT]) {
        if (px_api_num(f[F_TIMEOUT], "timeout", 0, 1e9, 1, 0, &d, e)) return -1;
        r->timeout_s = d;
    }
    if (f[F_PRIORITY]) {
        if (px_api_num(f[F_PRIORITY], "priority", INT32_MIN, INT32_MAX, 0, 1, &d, e)) return -1;
        r->priority = (int)d;
    }
    return 0;
}

/* Fields we accept only in their inert form. */
static int parse_unsupported(const cJSON *const *f, px_api_error *e) {
    const cJSON *lb = f[F_LOGIT_BIAS];
    if (lb && !cJSON_IsNull(lb)) {
        if (!cJSON_IsObject(lb))
            return px_api_fail(e, 400, BAD, NULL, "logit_bias", "'logit_bias' must be an object");
        if (lb->child)
            return px_api_fail(e, 400, BAD, NULL, "logit_bias", "'logit_bias' is not supported");
    }
    const cJSON *rf = f[F_RESPONSE_FORMAT];
    if (rf && !cJSON_IsNull(rf)) {
        const char *t;
        size_t n;
        if (!cJSON_IsObject(rf))
            return px_api_fail(e, 400, BAD, NULL, "response_format",
                               "'response_format' must be an object");
        if (px_api_str(member(rf, "type"), "response_format.type", &t, &n, e)) return -1;
        if (strcmp(t, "json_object") == 0 || strcmp(t, "json_schema") == 0)
            return px_api_fail(e, 400, BAD, NULL, "response_format.type",
                               "response_format '%s' is not supported", t);
        if (strcmp(t, "text") != 0)
            return px_api_fail(e, 400, BAD, NULL, "response_format.type",
                               "unknown response_format type");
    }
    static const int tf[] = {F_TOOLS, F_FUNCTIONS};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *t = f[tf[i]];
        const char *name = field_names[tf[i]];
        if (!t || cJSON_IsNull(t)) continue;
        if (!cJSON_IsArray(t))
            return px_api_fail(e, 400, BAD, NULL, name, "'%s' must be an array", name);
        if (t->child) return px_api_fail(e, 400, BAD, NULL, name, "tool calling is not supported");
    }
    return 0;
}

static int parse_stop(const cJSON *it, const px_api_limits *lim, px_api_req *r, px_api_error *e) {
    if (!it || cJSON_IsNull(it)) return 0;
    int count;
    if (cJSON_IsString(it)) {
        count = 1;
    } else if (cJSON_IsArray(it)) {
        count = 0;
        for (const cJSON *c = it->child; c; c = c->next)
            if (++count > lim->max_stop)
                return px_api_fail(e, 400, BAD, NULL, "stop", "at most %d stop sequences",
                                   lim->max_stop);
    } else {
        return px_api_fail(e, 400, BAD, NULL, "stop",
                           "'stop' must be a string or an array of strings");
    }
    if (count == 0) return 0;
    r->stop = calloc((size_t)count, sizeof *r->stop);
    r->stop_len = calloc((size_t)count, sizeof *r->stop_len);
    if (!r->stop || !r->stop_len)
        return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *c = cJSON_IsString(it) ? it : it->child;
    for (int i = 0; i < count; i++, c = c->next) {
        char param[32];
        snprintf(param, sizeof param, cJSON_IsString(it) ? "stop" : "stop[%d]", i);
        const char *s;
        size_t n;
        if (px_api_str(c, param, &s, &n, e)) return -1;
        if (n == 0 || n > (size_t)lim->max_stop_len)
            return px_api_fail(e, 400, BAD, NULL, param,
                               "stop sequences must be 1 to %d bytes long", lim->max_stop_len);
        if (!(r->stop[i] = malloc(n + 1)))
            return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(r->stop[i], s, n + 1);
        r->stop_len[i] = n;
        r->n_stop = i + 1;
    }
    return 0;
}

/* --- prompt tokens ------------------------------------------------------- */

/* One message's content: a string, null (assistant only) or an array of
 * parts. Text parts are joined in order into *text; a user message with
 * image_url parts gets *parts (texts and images in order; the images are
 * decoded and added to r) instead. */
static int message_content(const cJSON *m, int i, int role, const px_api_ctx *ctx, px_api_req *r,
                           px_chat_msg *msg, char **owned, px_chat_part **parts, px_api_error *e) {
    char param[64];
    const cJSON *c = member(m, "content");
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!c || cJSON_IsNull(c)) {
        if (role != 'a') return px_api_fail(e, 400, BAD, NULL, param, "'%s' is required", param);
        msg->content = "";
        msg->content_len = 0;
        return 0;
    }
    if (cJSON_IsString(c)) return px_api_str(c, param, &msg->content, &msg->content_len, e);
    if (!cJSON_IsArray(c))
        return px_api_fail(e, 400, BAD, NULL, param, "'%s' must be a string or an array of parts",
                           param);
    int n_parts = cJSON_GetArraySize(c), n_img = 0;
    if (n_parts > 0 && !(*parts = calloc((size_t)n_parts, sizeof **parts)))
        return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    px_buf b = {0};
    int j = 0;
    for (const cJSON *part = c->child; part; part = part->next, j++) {
        const char *type;
        size_t tl;
        snprintf(param, sizeof param, "messages[%d].content[%d]", i, j);
        if (!cJSON_IsObject(part)) {
            px_buf_free(&b);
            return px_api_fail(e, 400, BAD, NULL, param, "content parts must be objects");
        }
        snprintf(param, sizeof param, "messages[%d].content[%d].type", i, j);
        if (px_api_str(member(part, "type"), param, &type, &tl, e)) {
            px_buf_free(&b);
            return -1;
        }
        px_chat_part *pp = &(*parts)[j];
        if (strcmp(type, "text") == 0) {
            snprintf(param, sizeof param, "messages[%d].content[%d].text", i, j);
            if (px_api_str(member(part, "text"), param, &pp->text, &pp->len, e)) {
                px_buf_free(&b);
                return -1;
            }
            pp->image = -1;
            if (px_buf_append(&b, pp->text, pp->len)) {
                px_buf_free(&b);
                return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            }
            continue;
        }
        if (strcmp(type, "image_url") == 0) {
            px_buf_free(&b);
            if (role != 'u')
                return px_api_fail(e, 400, BAD, NULL, param,
                                   "images are only allowed in user messages");
            snprintf(param, sizeof param, "messages[%d].content[%d].image_url", i, j);
            const cJSON *iu = member(part, "image_url"), *url = NULL;
            if (cJSON_IsObject(iu))
                url = member(iu, "url");
            else if (cJSON_IsString(iu))
                url = iu; /* a bare string, as some clients send */
            const char *u;
            size_t ul;
            if (!url)
                return px_api_fail(e, 400, BAD, NULL, param, "'%s' must be an object with a url",
                                   param);
            snprintf(param, sizeof param, "messages[%d].content[%d].image_url.url", i, j);
            if (px_api_str(url, param, &u, &ul, e)) return -1;
            int idx = px_api_add_image_url(r, ctx, u, ul, param, e);
            if (idx < 0) return -1;
            pp->image = idx;
            n_img++;
            continue;
        }
        px_buf_free(&b);
        return px_api_fail(e, 400, BAD, NULL, param, "content part type '%s' is not supported",
                           type);
    }
    if (n_img > 0) {
        px_buf_free(&b);
        msg->parts = *parts;
        msg->n_parts = (size_t)n_parts;
        return 0;
    }
    if (!b.data && px_buf_append(&b, "", 0))
        return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    *owned = b.data;
    msg->content = b.data;
    msg->content_len = b.len;
    return 0;
}

static int parse_messages(const cJSON *ms, const px_api_ctx *ctx, px_api_req *r, px_api_error *e) {
    if (!ms) return px_api_fail(e, 400, BAD, NULL, "messages", "'messages' is required");
    if (!cJSON_IsArray(ms))
        return px_api_fail(e, 400, BAD, NULL, "messages", "'messages' must be an array");
    int n = 0;
    for (const cJSON *m = ms->child; m; m = m->next)
        if (++n > ctx->limits->max_messages)
            return px_api_fail(e, 400, BAD, NULL, "messages", "at most %d messages",
                               ctx->limits->max_messages);
    if (n == 0) return px_api_fail(e, 400, BAD, NULL, "messages", "'messages' must not be empty");

    px_chat_msg *msgs = calloc((size_t)n, sizeof *msgs);
    char **owned = calloc((size_t)n, sizeof *owned);
    px_chat_part **parts = calloc((size_t)n, sizeof *parts);
    int rc = -1;
    if (!msgs || !owned || !parts) {
        px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto out;
    }
    int i = 0;
    for (const cJSON *m = ms->child; m; m = m->next, i++) {
        static const char *const roles[] = {"system", "developer", "user", "assistant"};
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) {
            px_api_fail(e, 400, BAD, NULL, param, "messages must be objects");
            goto out;
        }
        snprintf(param, sizeof param, "messages[%d].role", i);
        const char *role;
        size_t rl;
        if (px_api_str(member(m, "role"), param, &role, &rl, e)) goto out;
        msgs[i].role = NULL;
        for (size_t k = 0; k < 4; k++)
            if (strcmp(role, roles[k]) == 0) msgs[i].role = roles[k];
        if (!msgs[i].role) {
            if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0)
                px_api_fail(e, 400, BAD, NULL, param, "tool messages are not supported");
            else
                px_api_fail(e, 400, BAD, NULL, param, "unknown role in '%s'", param);
            goto out;
        }
        int kind = msgs[i].role[0]; /* 's'ystem, 'd'eveloper, 'u'ser, 'a'ssistant */
        const cJSON *tc = member(m, "tool_calls");
        if (tc && !cJSON_IsNull(tc) && !(cJSON_IsArray(tc) && !tc->child)) {
            snprintf(param, sizeof param, "messages[%d].tool_calls", i);
            px_api_fail(e, 400, BAD, NULL, param, "tool calls are not supported");
            goto out;
        }
        if (message_content(m, i, kind, ctx, r, &msgs[i], &owned[i], &parts[i], e)) goto out;
    }
    rc = px_api_chat_prompt(ctx, msgs, (size_t)n, "messages", r, e);
out:
    for (int k = 0; owned && k < n; k++)
        free(owned[k]);
    for (int k = 0; parts && k < n; k++)
        free(parts[k]);
    free(owned);
    free(parts);
    free(msgs);
    return rc;
}

static int parse_prompt(const cJSON *p, const px_api_ctx *ctx, px_api_req *r, px_api_error *e) {
    if (!p) return px_api_fail(e, 400, BAD, NULL, "prompt", "'prompt' is required");
    if (cJSON_IsArray(p) && p->child && cJSON_IsString(p->child)) {
        if (p->child->next)
            return px_api_fail(e, 400, BAD, NULL, "prompt", "batched prompts are not supported");
        p = p->child;
    }
    if (cJSON_IsString(p)) {
        const char *s;
        size_t n;
        if (px_api_str(p, "prompt", &s, &n, e)) return -1;
        if (n == 0) return px_api_fail(e, 400, BAD, NULL, "prompt", "'prompt' must not be empty");
        /* The client writes the whole prompt: its markers are meant. */
        px_chat_seg seg = {.off = 0, .len = n, .special = 1, .image = -1};
        int64_t count;
        if (px_api_encode_segs(ctx, s, &seg, 1, 1, ctx->limits->max_prompt_tokens, r, &r->prompt,
                               &count, e))
            return -1;
        r->n_prompt = count > INT32_MAX ? INT32_MAX : (int32_t)count;
        return 0;
    }
    if (!cJSON_IsArray(p))
        return px_api_fail(e, 400, BAD, NULL, "prompt",
                           "'prompt' must be a string or an array of token ids");
    int64_t n = 0;
    for (const cJSON *c = p->child; c; c = c->next) {
        if (cJSON_IsArray(c) || cJSON_IsString(c))
            return px_api_fail(e, 400, BAD, NULL, "prompt", "batched prompts are not supported");
        n++;
    }
    if (n == 0) return px_api_fail(e, 400, BAD, NULL, "prompt", "'prompt' must not be empty");
    if (n > ctx->limits->max_prompt_tokens) {
        r->n_prompt = (int32_t)PX_MIN(n, INT32_MAX);
        return 0; /* the context check reports it */
    }
    if (!(r->prompt = malloc((size_t)n * sizeof *r->prompt)))
        return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    int32_t n_vocab = px_tokenizer_n_vocab(ctx->tok);
    int i = 0;
    for (const cJSON *c = p->child; c; c = c->next, i++) {
        char param[32];
        double d;
        snprintf(param, sizeof param, "prompt[%d]", i);
        if (px_api_num(c, param, 0, n_vocab - 1, 0, 1, &d, e)) return -1;
        r->prompt[i] = (int32_t)d;
    }
    r->n_prompt = (int32_t)n;
    return 0;
}

/* The context budget: prompt, then prompt + completion. */
static int check_context(const px_api_limits *lim, px_api_req *r, px_api_error *e) {
    const char *what = r->kind == PX_API_CHAT ? "messages" : "prompt";
    if (r->n_prompt == 0) return px_api_fail(e, 400, BAD, NULL, what, "the prompt is empty");
    if (r->n_prompt > lim->max_prompt_tokens)
        return px_api_fail(e, 400, BAD, "context_length_exceeded", what,
                           "This model's maximum context length is %d tokens and prompts may "
                           "have at most %d; this prompt has %d tokens.",
                           lim->n_ctx, lim->max_prompt_tokens, r->n_prompt);
    if (r->max_tokens > 0) {
        if ((int64_t)r->n_prompt + r->max_tokens > lim->n_ctx)
            return px_api_fail(e, 400, BAD, "context_length_exceeded", "max_tokens",
                               "This model's maximum context length is %d tokens; you requested "
                               "%lld tokens (%d in the prompt, %d for the completion).",
                               lim->n_ctx, (long long)r->n_prompt + r->max_tokens, r->n_prompt,
                               r->max_tokens);
    } else if (lim->max_tokens_default > 0) {
        /* Not asked for: the default, clamped to what the context leaves. */
        r->max_tokens = PX_MIN(lim->max_tokens_default, lim->n_ctx - r->n_prompt);
    }
    return 0;
}

int px_api_openai_parse(px_api_kind kind, const char *body, size_t len, const px_api_ctx *ctx,
                        px_api_req *out, px_api_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->kind = kind;
    out->n = 1;
    px_sampling_init(&out->sampling);
    cJSON *root;
    if (px_api_json_parse(body, len, &root, e)) return -1;
    const cJSON *f[F_COUNT];
    int rc = collect(root, f, e);
    if (rc == 0) rc = parse_scalars(kind, f, ctx->limits, out, e);
    if (rc == 0) rc = parse_unsupported(f, e);
    if (rc == 0) rc = parse_stop(f[F_STOP], ctx->limits, out, e);
    if (rc == 0)
        rc = kind == PX_API_CHAT ? parse_messages(f[F_MESSAGES], ctx, out, e)
                                 : parse_prompt(f[F_PROMPT], ctx, out, e);
    if (rc == 0) rc = check_context(ctx->limits, out, e);
    cJSON_Delete(root);
    if (rc) {
        px_api_req_free(out);
        return -1;
    }
    return 0;
}

/* --- /tokenize, /detokenize ---------------------------------------------- */

int px_api_tokenize_parse(const char *body, size_t len, const px_api_ctx *ctx, int32_t **ids,
                          int32_t *n_ids, int *with_pieces, px_api_error *e) {
    cJSON *root;
    *ids = NULL;
    *n_ids = 0;
    memset(e, 0, sizeof *e);
    if (px_api_json_parse(body, len, &root, e)) return -1;
    bool add_special = false, parse_special = true, pieces = false;
    const char *s;
    size_t n;
    int rc = -1;
    const cJSON *content = member(root, "content");
    if (!content) {
        px_api_fail(e, 400, BAD, NULL, "content", "'content' is required");
        goto out;
    }
    if (px_api_str(content, "content", &s, &n, e) ||
        opt_bool(member(root, "add_special"), "add_special", &add_special, e) ||
        opt_bool(member(root, "parse_special"), "parse_special", &parse_special, e) ||
        opt_bool(member(root, "with_pieces"), "with_pieces", &pieces, e))
        goto out;
    px_chat_seg seg = {.off = 0, .len = n, .special = parse_special, .image = -1};
    int64_t count;
    /* No context limit here; the body size bounds the work. */
    if (px_api_encode_segs(ctx, s, &seg, 1, add_special, INT32_MAX - 1, NULL, ids, &count, e))
        goto out;
    *n_ids = (int32_t)count;
    *with_pieces = pieces;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int px_api_detokenize_parse(const char *body, size_t len, const px_api_ctx *ctx, int32_t **ids,
                            int32_t *n_ids, px_api_error *e) {
    cJSON *root;
    *ids = NULL;
    *n_ids = 0;
    memset(e, 0, sizeof *e);
    if (px_api_json_parse(body, len, &root, e)) return -1;
    int rc = -1;
    const cJSON *t = member(root, "tokens");
    int64_t max = PX_MAX(ctx->limits->n_ctx, 65536), n = 0;
    if (!cJSON_IsArray(t)) {
        px_api_fail(e, 400, BAD, NULL, "tokens", "'tokens' must be an array of token ids");
        goto out;
    }
    for (const cJSON *c = t->child; c; c = c->next)
        if (++n > max) {
            px_api_fail(e, 413, BAD, NULL, "tokens", "at most %lld tokens", (long long)max);
            goto out;
        }
    if (!(*ids = malloc((size_t)(n ? n : 1) * sizeof **ids))) {
        px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto out;
    }
    int32_t n_vocab = px_tokenizer_n_vocab(ctx->tok);
    int i = 0;
    for (const cJSON *c = t->child; c; c = c->next, i++) {
        char param[32];
        double d;
        snprintf(param, sizeof param, "tokens[%d]", i);
        if (px_api_num(c, param, 0, n_vocab - 1, 0, 1, &d, e)) {
            free(*ids);
            *ids = NULL;
            goto out;
        }
        (*ids)[i] = (int32_t)d;
    }
    *n_ids = (int32_t)n;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}
