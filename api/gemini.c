/* api/gemini.c — parsing and validation of Gemini request bodies
 * (generateContent, streamGenerateContent, countTokens) into px_api_req.
 *
 * As in openai.c: cheap field checks first, then images, the chat template
 * and the tokenizer last; numbers judged as doubles before any conversion
 * (cJSON's valueint is never read); no recursion on client data. JSON null
 * reads as "not given" everywhere, as proto3's JSON mapping does. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/gemini.h"
#include "api/prompt.h"
#include "engine/px.h"

#define BAD "invalid_request_error"

/* JavaScript's MAX_SAFE_INTEGER: the largest integer a double holds with
 * its neighbours distinct. */
#define SAFE_INT 9007199254740991.0

/* Google allows five stop sequences (the config may allow more). */
#define GEMINI_MAX_STOP 5

/* snprintf for field paths: a path longer than the buffer is cut, which
 * only shortens an error message (through a function, so the compiler's
 * truncation warning does not fire for every path we build). */
static void pf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pf(char *dst, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

static int oom(px_api_error *e) {
    return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* --- field access ---------------------------------------------------------- */

/* The member named camel or snake (snake may be NULL) of obj, NULL when
 * absent or JSON null. Both spellings, or one twice, is an error: parsers
 * disagree on which copy wins. `where` prefixes the param ("" at the top). */
static int field(const cJSON *obj, const char *where, const char *camel, const char *snake,
                 const cJSON **out, px_api_error *e) {
    const cJSON *found = NULL;
    *out = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string) continue;
        if (strcmp(c->string, camel) != 0 && (!snake || strcmp(c->string, snake) != 0)) continue;
        if (found) {
            char param[64];
            pf(param, sizeof param, "%s%s", where, camel);
            return px_api_fail(e, 400, BAD, NULL, param, "'%s' is given twice", param);
        }
        found = c;
    }
    if (found && !cJSON_IsNull(found)) *out = found;
    return 0;
}

/* --- generationConfig ------------------------------------------------------ */

static int parse_stop(const cJSON *it, const px_api_limits *lim, px_api_req *r, px_api_error *e) {
    static const char *const P = "generationConfig.stopSequences";
    if (!it) return 0;
    if (!cJSON_IsArray(it))
        return px_api_fail(e, 400, BAD, NULL, P, "'%s' must be an array of strings", P);
    int max = PX_MAX(lim->max_stop, GEMINI_MAX_STOP), count = 0;
    for (const cJSON *c = it->child; c; c = c->next)
        if (++count > max)
            return px_api_fail(e, 400, BAD, NULL, P, "at most %d stop sequences", max);
    if (count == 0) return 0;
    r->stop = calloc((size_t)count, sizeof *r->stop);
    r->stop_len = calloc((size_t)count, sizeof *r->stop_len);
    if (!r->stop || !r->stop_len) return oom(e);
    int i = 0;
    for (const cJSON *c = it->child; c; c = c->next, i++) {
        char param[64];
        const char *s;
        size_t n;
        pf(param, sizeof param, "%s[%d]", P, i);
        if (px_api_str(c, param, &s, &n, e)) return -1;
        if (n == 0 || n > (size_t)lim->max_stop_len)
            return px_api_fail(e, 400, BAD, NULL, param,
                               "stop sequences must be 1 to %d bytes long", lim->max_stop_len);
        if (!(r->stop[i] = malloc(n + 1))) return oom(e);
        memcpy(r->stop[i], s, n + 1);
        r->stop_len[i] = n;
        r->n_stop = i + 1;
    }
    return 0;
}

/* One numeric field of generationConfig: looked up in both spellings,
 * range-checked; *given tells whether it was there. */
static int gc_num(const cJSON *gc, const char *camel, const char *snake, double lo, double hi,
                  int lo_open, int is_int, double *out, int *given, px_api_error *e) {
    const cJSON *it;
    *given = 0;
    if (field(gc, "generationConfig.", camel, snake, &it, e)) return -1;
    if (!it) return 0;
    char param[64];
    pf(param, sizeof param, "generationConfig.%s", camel);
    if (px_api_num(it, param, lo, hi, lo_open, is_int, out, e)) return -1;
    *given = 1;
    return 0;
}

static int parse_config(const cJSON *gc, const px_api_limits *lim, px_api_req *r, px_api_error *e) {
    if (!gc) return 0;
    if (!cJSON_IsObject(gc))
        return px_api_fail(e, 400, BAD, NULL, "generationConfig",
                           "'generationConfig' must be an object");
    px_sampling *p = &r->sampling;
    double d;
    int given;
    if (gc_num(gc, "temperature", NULL, 0, 2, 0, 0, &d, &given, e)) return -1;
    if (given) p->temperature = (float)d;
    if (gc_num(gc, "topP", "top_p", 0, 1, 1, 0, &d, &given, e)) return -1;
    if (given) p->top_p = (float)d;
    if (gc_num(gc, "topK", "top_k", 0, INT32_MAX, 0, 1, &d, &given, e)) return -1;
    if (given) p->top_k = (int32_t)d; /* 0: off */
    if (gc_num(gc, "maxOutputTokens", "max_output_tokens", 1, INT32_MAX, 0, 1, &d, &given, e))
        return -1;
    if (given) r->max_tokens = (int32_t)d;
    if (gc_num(gc, "candidateCount", "candidate_count", 1, lim->max_n, 0, 1, &d, &given, e))
        return -1;
    if (given) r->n = (int)d;
    if (gc_num(gc, "seed", NULL, -SAFE_INT, SAFE_INT, 0, 1, &d, &given, e)) return -1;
    if (given) {
        p->seed = (uint64_t)(int64_t)d;
        r->has_seed = true;
    }
    if (gc_num(gc, "presencePenalty", "presence_penalty", -2, 2, 0, 0, &d, &given, e)) return -1;
    if (given) p->presence_penalty = (float)d;
    if (gc_num(gc, "frequencyPenalty", "frequency_penalty", -2, 2, 0, 0, &d, &given, e)) return -1;
    if (given) p->frequency_penalty = (float)d;

    const cJSON *it;
    if (field(gc, "generationConfig.", "responseLogprobs", "response_logprobs", &it, e)) return -1;
    if (it) {
        if (!cJSON_IsBool(it))
            return px_api_fail(e, 400, BAD, NULL, "generationConfig.responseLogprobs",
                               "'generationConfig.responseLogprobs' must be a boolean");
        r->logprobs = cJSON_IsTrue(it);
    }
    int max_top = PX_MIN(lim->max_top_logprobs, PX_MAX_LOGPROBS);
    if (gc_num(gc, "logprobs", NULL, 0, max_top, 0, 1, &d, &given, e)) return -1;
    if (given) {
        if (!r->logprobs)
            return px_api_fail(e, 400, BAD, NULL, "generationConfig.logprobs",
                               "'logprobs' is only valid if 'responseLogprobs' is true");
        r->top_logprobs = (int)d;
    }
    p->want_logprobs = r->logprobs;
    p->n_logprobs = r->top_logprobs;

    if (field(gc, "generationConfig.", "stopSequences", "stop_sequences", &it, e) ||
        parse_stop(it, lim, r, e))
        return -1;

    /* Output shaping we do not do: refuse rather than silently ignore. */
    if (field(gc, "generationConfig.", "responseMimeType", "response_mime_type", &it, e)) return -1;
    if (it) {
        const char *s;
        size_t n;
        if (px_api_str(it, "generationConfig.responseMimeType", &s, &n, e)) return -1;
        if (strcmp(s, "text/plain") != 0)
            return px_api_fail(e, 400, BAD, NULL, "generationConfig.responseMimeType",
                               "responseMimeType '%s' is not supported; only text/plain", s);
    }
    static const char *const schemas[][2] = {{"responseSchema", "response_schema"},
                                             {"responseJsonSchema", "response_json_schema"}};
    for (size_t i = 0; i < PX_ARRAY_LEN(schemas); i++) {
        if (field(gc, "generationConfig.", schemas[i][0], schemas[i][1], &it, e)) return -1;
        if (it) {
            char param[64];
            pf(param, sizeof param, "generationConfig.%s", schemas[i][0]);
            return px_api_fail(e, 400, BAD, NULL, param, "'%s' is not supported", param);
        }
    }
    if (field(gc, "generationConfig.", "responseModalities", "response_modalities", &it, e))
        return -1;
    if (it) {
        if (!cJSON_IsArray(it))
            return px_api_fail(e, 400, BAD, NULL, "generationConfig.responseModalities",
                               "'generationConfig.responseModalities' must be an array");
        for (const cJSON *c = it->child; c; c = c->next)
            if (!cJSON_IsString(c) || strcmp(c->valuestring, "TEXT") != 0)
                return px_api_fail(e, 400, BAD, NULL, "generationConfig.responseModalities",
                                   "only the TEXT response modality is supported");
    }
    return 0;
}

/* --- contents -------------------------------------------------------------- */

/* Fields of a request that carries a conversation (the top level, or
 * countTokens' generateContentRequest). */
typedef struct conv {
    const cJSON *contents, *system, *config, *tools, *cached;
} conv;

static int collect_conv(const cJSON *obj, const char *where, conv *cv, px_api_error *e) {
    const cJSON *ignored;
    if (field(obj, where, "contents", NULL, &cv->contents, e) ||
        field(obj, where, "systemInstruction", "system_instruction", &cv->system, e) ||
        field(obj, where, "generationConfig", "generation_config", &cv->config, e) ||
        field(obj, where, "tools", NULL, &cv->tools, e) ||
        field(obj, where, "cachedContent", "cached_content", &cv->cached, e) ||
        /* accepted and ignored, as a local server has no safety filter */
        field(obj, where, "safetySettings", "safety_settings", &ignored, e))
        return -1;
    if (cv->tools && !(cJSON_IsArray(cv->tools) && !cv->tools->child))
        return px_api_fail(e, 400, BAD, NULL, "tools", "tools are not supported");
    if (cv->cached && !(cJSON_IsString(cv->cached) && !cv->cached->valuestring[0]))
        return px_api_fail(e, 400, BAD, NULL, "cachedContent", "cached content is not supported");
    return 0;
}

/* Everything a conversation's messages point into or own. */
typedef struct msgs {
    px_chat_msg *msg; /* (n) */
    int n;
    px_chat_part *parts; /* shared pool, (n_parts) of cap_parts */
    int n_parts, cap_parts;
    char **owned; /* (n) joined texts */
} msgs;

static void msgs_free(msgs *m) {
    for (int i = 0; m->owned && i < m->n; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->msg);
    free(m->parts);
    memset(m, 0, sizeof *m);
}

/* Reads one part: a text (*text set) or an inline image (*image set, the
 * image decoded and added to r). Exactly one kind of data per part. */
static int read_part(const cJSON *part, const char *where, const px_api_ctx *ctx, px_api_req *r,
                     const char **text, size_t *text_len, int *image, px_api_error *e) {
    char param[96];
    *text = NULL;
    *image = -1;
    if (!cJSON_IsObject(part))
        return px_api_fail(e, 400, BAD, NULL, where, "'%s' must be an object", where);
    pf(param, sizeof param, "%s.", where);
    const cJSON *t, *inl, *fd;
    if (field(part, param, "text", NULL, &t, e) ||
        field(part, param, "inlineData", "inline_data", &inl, e) ||
        field(part, param, "fileData", "file_data", &fd, e))
        return -1;
    static const char *const unsupported[][2] = {
        {"functionCall", "function_call"},
        {"functionResponse", "function_response"},
        {"executableCode", "executable_code"},
        {"codeExecutionResult", "code_execution_result"},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(unsupported); i++) {
        const cJSON *u;
        if (field(part, param, unsupported[i][0], unsupported[i][1], &u, e)) return -1;
        if (u) {
            pf(param, sizeof param, "%s.%s", where, unsupported[i][0]);
            return px_api_fail(e, 400, BAD, NULL, param, "%s parts are not supported",
                               unsupported[i][0]);
        }
    }
    if (fd) {
        pf(param, sizeof param, "%s.fileData", where);
        return px_api_fail(e, 400, BAD, NULL, param,
                           "fileData parts are not supported; send images as inlineData");
    }
    if ((t != NULL) + (inl != NULL) != 1)
        return px_api_fail(e, 400, BAD, NULL, where,
                           "'%s' must hold exactly one of text and inlineData", where);
    if (t) {
        pf(param, sizeof param, "%s.text", where);
        return px_api_str(t, param, text, text_len, e);
    }
    pf(param, sizeof param, "%s.inlineData", where);
    if (!cJSON_IsObject(inl))
        return px_api_fail(e, 400, BAD, NULL, param, "'%s' must be an object", param);
    const cJSON *mt, *data;
    char sub[96];
    pf(sub, sizeof sub, "%s.", param);
    if (field(inl, sub, "mimeType", "mime_type", &mt, e) || field(inl, sub, "data", NULL, &data, e))
        return -1;
    const char *mime, *b64;
    size_t mime_len, b64_len;
    pf(sub, sizeof sub, "%s.mimeType", param);
    if (!mt) return px_api_fail(e, 400, BAD, NULL, sub, "'%s' is required", sub);
    if (px_api_str(mt, sub, &mime, &mime_len, e)) return -1;
    pf(sub, sizeof sub, "%s.data", param);
    if (!data) return px_api_fail(e, 400, BAD, NULL, sub, "'%s' is required", sub);
    if (px_api_str(data, sub, &b64, &b64_len, e)) return -1;
    int k = px_api_add_image_b64(r, ctx, mime, b64, b64_len, param, e);
    if (k < 0) return -1;
    *image = k;
    return 0;
}

/* Reads a Content's parts onto the end of the part pool; *images counts
 * its images. allow_images is 0 for systemInstruction. */
static int read_parts(const cJSON *content, const char *where, int allow_images,
                      const px_api_ctx *ctx, px_api_req *r, msgs *ms, int *images,
                      px_api_error *e) {
    char param[96];
    const cJSON *parts;
    pf(param, sizeof param, "%s.", where);
    if (field(content, param, "parts", NULL, &parts, e)) return -1;
    pf(param, sizeof param, "%s.parts", where);
    if (!parts) return px_api_fail(e, 400, BAD, NULL, param, "'%s' is required", param);
    if (!cJSON_IsArray(parts))
        return px_api_fail(e, 400, BAD, NULL, param, "'%s' must be an array", param);
    if (!parts->child)
        return px_api_fail(e, 400, BAD, NULL, param, "'%s' must not be empty", param);
    int j = 0;
    for (const cJSON *p = parts->child; p; p = p->next, j++) {
        const char *text;
        size_t len = 0;
        int image;
        pf(param, sizeof param, "%s.parts[%d]", where, j);
        if (read_part(p, param, ctx, r, &text, &len, &image, e)) return -1;
        if (image >= 0 && !allow_images)
            return px_api_fail(e, 400, BAD, NULL, param, "'%s' may hold only text parts", where);
        if (ms->n_parts >= ms->cap_parts) /* count_parts sized it: cannot happen */
            return px_api_fail(e, 500, "server_error", NULL, NULL, "part count mismatch");
        ms->parts[ms->n_parts++] = (px_chat_part){.text = text, .len = len, .image = image};
        *images += image >= 0;
    }
    return 0;
}

/* Makes message ms->msg[ms->n] from pool parts [start, ms->n_parts): only
 * text -> the texts joined into content; any image -> the parts in order. */
static int emit_msg(msgs *ms, const char *role, int start, int images, px_api_error *e) {
    px_chat_msg *m = &ms->msg[ms->n];
    m->role = role;
    if (images) {
        m->parts = ms->parts + start;
        m->n_parts = (size_t)(ms->n_parts - start);
    } else {
        px_buf joined = {0};
        for (int k = start; k < ms->n_parts; k++)
            if (px_buf_append(&joined, ms->parts[k].text, ms->parts[k].len)) {
                px_buf_free(&joined);
                return oom(e);
            }
        if (!joined.data && px_buf_append(&joined, "", 0)) return oom(e);
        ms->owned[ms->n] = joined.data;
        m->content = joined.data;
        m->content_len = joined.len;
    }
    ms->n++;
    return 0;
}

/* Counts parts of a Content without judging them (bad shapes are reported
 * by read_parts); sizes the shared part pool. */
static int count_parts(const cJSON *content) {
    if (!cJSON_IsObject(content)) return 0;
    int n = 0;
    for (const cJSON *c = content->child; c; c = c->next)
        if (c->string && strcmp(c->string, "parts") == 0 && cJSON_IsArray(c))
            for (const cJSON *p = c->child; p; p = p->next)
                n++;
    return n;
}

static int parse_conversation(const conv *cv, const px_api_ctx *ctx, px_api_req *r,
                              px_api_error *e) {
    const cJSON *cs = cv->contents;
    if (!cs) return px_api_fail(e, 400, BAD, NULL, "contents", "'contents' is required");
    if (!cJSON_IsArray(cs))
        return px_api_fail(e, 400, BAD, NULL, "contents", "'contents' must be an array");
    int n = 0, n_parts = 0;
    for (const cJSON *c = cs->child; c; c = c->next) {
        if (++n > ctx->limits->max_messages)
            return px_api_fail(e, 400, BAD, NULL, "contents", "at most %d contents",
                               ctx->limits->max_messages);
        n_parts += count_parts(c);
    }
    if (n == 0) return px_api_fail(e, 400, BAD, NULL, "contents", "'contents' must not be empty");
    if (cv->system && !cJSON_IsObject(cv->system))
        return px_api_fail(e, 400, BAD, NULL, "systemInstruction",
                           "'systemInstruction' must be an object");
    n_parts += cv->system ? count_parts(cv->system) : 0;

    msgs ms = {0};
    int cap = n + 1;
    ms.msg = calloc((size_t)cap, sizeof *ms.msg);
    ms.owned = calloc((size_t)cap, sizeof *ms.owned);
    ms.parts = calloc((size_t)n_parts + 1, sizeof *ms.parts);
    ms.cap_parts = n_parts;
    int rc = -1;
    if (!ms.msg || !ms.owned || !ms.parts) {
        oom(e);
        goto out;
    }
    if (cv->system) {
        int images = 0;
        if (read_parts(cv->system, "systemInstruction", 0, ctx, r, &ms, &images, e) ||
            emit_msg(&ms, "system", 0, 0, e))
            goto out;
    }
    /* Consecutive contents of one role become one message, as the chat
     * templates want turns to alternate: Google's SDKs record a streamed
     * answer as one "model" content per chunk. */
    const char *group_role = NULL;
    int group_start = 0, group_images = 0, i = 0;
    for (const cJSON *c = cs->child; c; c = c->next, i++) {
        char param[64];
        pf(param, sizeof param, "contents[%d]", i);
        if (!cJSON_IsObject(c)) {
            px_api_fail(e, 400, BAD, NULL, param, "'%s' must be an object", param);
            goto out;
        }
        const cJSON *role;
        char where[64];
        pf(where, sizeof where, "%s.", param);
        if (field(c, where, "role", NULL, &role, e)) goto out;
        const char *mrole = "user"; /* Google's default for a missing or empty role */
        if (role) {
            const char *rs;
            size_t len;
            pf(where, sizeof where, "%s.role", param);
            if (px_api_str(role, where, &rs, &len, e)) goto out;
            if (strcmp(rs, "model") == 0) {
                mrole = "assistant";
            } else if (len > 0 && strcmp(rs, "user") != 0) {
                px_api_fail(e, 400, BAD, NULL, where,
                            "'%s' must be \"user\" or \"model\" (system text goes in "
                            "systemInstruction)",
                            where);
                goto out;
            }
        }
        if (group_role && strcmp(mrole, group_role) != 0) {
            if (emit_msg(&ms, group_role, group_start, group_images, e)) goto out;
            group_role = NULL;
        }
        if (!group_role) {
            group_role = mrole;
            group_start = ms.n_parts;
            group_images = 0;
        }
        if (read_parts(c, param, 1, ctx, r, &ms, &group_images, e)) goto out;
    }
    if (emit_msg(&ms, group_role, group_start, group_images, e)) goto out;
    if (px_api_chat_prompt(ctx, ms.msg, (size_t)ms.n, "contents", r, e)) goto out;
    rc = 0;
out:
    msgs_free(&ms);
    return rc;
}

/* The context budget, in Google's words. */
static int check_context(const px_api_limits *lim, px_api_req *r, px_api_error *e) {
    if (r->n_prompt == 0) return px_api_fail(e, 400, BAD, NULL, "contents", "the prompt is empty");
    if (r->n_prompt > lim->max_prompt_tokens)
        return px_api_fail(e, 400, BAD, "context_length_exceeded", "contents",
                           "The input token count (%d) exceeds the maximum number of tokens "
                           "allowed (%d).",
                           r->n_prompt, lim->max_prompt_tokens);
    if (r->max_tokens > 0) {
        if ((int64_t)r->n_prompt + r->max_tokens > lim->n_ctx)
            return px_api_fail(e, 400, BAD, "context_length_exceeded",
                               "generationConfig.maxOutputTokens",
                               "The input token count (%d) plus maxOutputTokens (%d) exceeds the "
                               "model's context of %d tokens.",
                               r->n_prompt, r->max_tokens, lim->n_ctx);
    } else if (lim->max_tokens_default > 0) {
        r->max_tokens = PX_MIN(lim->max_tokens_default, lim->n_ctx - r->n_prompt);
    }
    return 0;
}

int px_api_gemini_method_from_name(const char *name, px_gemini_method *out) {
    static const char *const names[] = {"generateContent", "streamGenerateContent", "countTokens"};
    for (size_t i = 0; i < PX_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (px_gemini_method)i;
            return 0;
        }
    return -1;
}

int px_api_gemini_parse(px_gemini_method m, const char *model, const char *body, size_t len,
                        const px_api_ctx *ctx, px_api_req *out, px_api_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->kind = PX_API_CHAT;
    out->n = 1;
    out->stream = m == PX_GEMINI_STREAM;
    px_sampling_init(&out->sampling);
    size_t ml = model ? strlen(model) : 0;
    if (ml == 0 || ml >= sizeof out->model)
        return px_api_fail(e, 400, BAD, NULL, "model", "the model name must be 1 to %zu bytes",
                           sizeof out->model - 1);
    memcpy(out->model, model, ml + 1);
    cJSON *root;
    if (px_api_json_parse(body, len, &root, e)) return -1;
    conv cv = {0};
    int rc = 0;
    if (m == PX_GEMINI_COUNT) {
        const cJSON *gcr, *contents;
        rc = field(root, "", "generateContentRequest", "generate_content_request", &gcr, e);
        if (rc == 0) rc = field(root, "", "contents", NULL, &contents, e);
        if (rc == 0 && gcr && contents)
            rc = px_api_fail(e, 400, BAD, NULL, "contents",
                             "'contents' and 'generateContentRequest' are mutually exclusive");
        if (rc == 0 && gcr && !cJSON_IsObject(gcr))
            rc = px_api_fail(e, 400, BAD, NULL, "generateContentRequest",
                             "'generateContentRequest' must be an object");
        if (rc == 0)
            rc = collect_conv(gcr ? gcr : root, gcr ? "generateContentRequest." : "", &cv, e);
    } else {
        rc = collect_conv(root, "", &cv, e);
    }
    /* Sampling settings are validated for countTokens too (a bad request is
     * bad whatever the method) but only matter for generation. */
    if (rc == 0) rc = parse_config(cv.config, ctx->limits, out, e);
    if (rc == 0) rc = parse_conversation(&cv, ctx, out, e);
    if (rc == 0 && m != PX_GEMINI_COUNT) rc = check_context(ctx->limits, out, e);
    if (rc == 0 && m == PX_GEMINI_COUNT && out->n_prompt > ctx->limits->max_prompt_tokens) {
        /* Only counted past the limit: keep the px_api_req contract (prompt
         * holds n_prompt ids) by keeping no ids at all. */
        free(out->prompt);
        out->prompt = NULL;
    }
    cJSON_Delete(root);
    if (rc) {
        px_api_req_free(out);
        return -1;
    }
    return 0;
}
