/* api/openai_render.c — the JSON pollux sends in the OpenAI dialect:
 * chat.completion(.chunk), text_completion, usage chunks, errors,
 * /v1/models, /tokenize and /detokenize.
 *
 * Written directly into a px_buf (not through cJSON): model text can hold
 * any byte, including NUL and partial UTF-8 from byte-fallback tokens, and
 * px_buf_json_str turns all of it into valid UTF-8 JSON. Every function
 * appends to out and returns 0, or -1 when memory runs out (out then holds
 * a partial document the caller discards). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openai.h"
#include "api/json_writer.h"
#include "engine/px.h"

/* A string, or null for NULL. */
static void jstr_z(px_jw *o, const char *s) {
    if (s)
        jw_str(o, s, strlen(s));
    else
        jw_lit(o, "null");
}
static void jlogprob(px_jw *o, float v) {
    jw_num(o, (double)v);
}
/* "key": string */
static void kstr(px_jw *o, const char *key, const char *s) {
    jw_lit(o, "\"");
    jw_lit(o, key);
    jw_lit(o, "\":");
    jstr_z(o, s);
}

/* The fields every object of a response starts with. */
static void head(px_jw *o, const px_api_resp_meta *m, const char *object) {
    jw_lit(o, "{");
    kstr(o, "id", m->id);
    jw_lit(o, ",\"object\":\"");
    jw_lit(o, object);
    jw_lit(o, "\",\"created\":");
    jw_int(o, (long long)m->created);
    jw_lit(o, ",");
    kstr(o, "model", m->model ? m->model : "");
    jw_lit(o, ",");
    kstr(o, "system_fingerprint", m->system_fingerprint);
}

static const char *object_of(const px_api_resp_meta *m, int chunk) {
    if (m->kind == PX_API_COMPLETION) return "text_completion";
    return chunk ? "chat.completion.chunk" : "chat.completion";
}

static void usage(px_jw *o, int32_t prompt, int32_t completion, int32_t cached) {
    jw_lit(o, "\"usage\":{\"prompt_tokens\":");
    jw_int(o, prompt);
    jw_lit(o, ",\"completion_tokens\":");
    jw_int(o, completion);
    jw_lit(o, ",\"total_tokens\":");
    jw_int(o, (long long)prompt + completion);
    jw_lit(o, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    jw_int(o, cached);
    jw_lit(o, "}}");
}

/* --- logprobs -------------------------------------------------------------- */

static void bytes_array(px_jw *o, const char *s, size_t n) {
    jw_lit(o, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        jw_int(o, (unsigned char)s[i]);
    }
    jw_lit(o, "]");
}

/* {"token","logprob","bytes"} — token text made valid UTF-8 (U+FFFD for a
 * partial sequence), the real bytes beside it. */
static void chat_lp_item(px_jw *o, const char *tok, size_t n, float lp) {
    jw_lit(o, "{\"token\":");
    jw_str(o, tok, n);
    jw_lit(o, ",\"logprob\":");
    jlogprob(o, lp);
    jw_lit(o, ",\"bytes\":");
    bytes_array(o, tok, n);
}

static void chat_lp_entry(px_jw *o, const px_api_logprob *lp) {
    chat_lp_item(o, lp->token, lp->token_len, lp->logprob);
    jw_lit(o, ",\"top_logprobs\":[");
    for (int k = 0; k < lp->n_top && k < 20; k++) {
        if (k) jw_lit(o, ",");
        chat_lp_item(o, lp->top_token[k], lp->top_len[k], lp->top_logprob[k]);
        jw_lit(o, "}");
    }
    jw_lit(o, "]}");
}

static void chat_logprobs(px_jw *o, const px_api_logprob *lps, int n) {
    if (!lps) {
        jw_lit(o, "null");
        return;
    }
    jw_lit(o, "{\"content\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        chat_lp_entry(o, &lps[i]);
    }
    jw_lit(o, "]}");
}

/* Code points a token adds to the text: count all but continuation bytes,
 * so a character split over byte tokens counts once in total. */
static int64_t cp_count(const char *s, size_t n) {
    int64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* {"tok": lp, ...} for completions. Keys are compared as rendered: two
 * tokens that both render as U+FFFD would otherwise repeat a key. */
static void completion_top(px_jw *o, const px_api_logprob *lp) {
    if (lp->missing) {
        jw_lit(o, "null");
        return;
    }
    px_buf keys[20] = {{0}};
    int nk = 0;
    jw_lit(o, "{");
    for (int k = 0; k < lp->n_top && k < 20 && !o->err; k++) {
        px_buf *kb = &keys[nk];
        if (px_buf_json_str(kb, lp->top_token[k], lp->top_len[k])) {
            o->err = -1;
            break;
        }
        int dup = 0;
        for (int j = 0; j < nk && !dup; j++)
            dup = keys[j].len == kb->len && memcmp(keys[j].data, kb->data, kb->len) == 0;
        if (dup) {
            px_buf_free(kb);
            continue;
        }
        if (nk) jw_lit(o, ",");
        jw_lit(o, kb->data);
        jw_lit(o, ":");
        jlogprob(o, lp->top_logprob[k]);
        nk++;
    }
    jw_lit(o, "}");
    for (int j = 0; j < 20; j++)
        px_buf_free(&keys[j]);
}

/* {"tokens","token_logprobs","top_logprobs","text_offset"}; offsets count
 * from `base` (chunks pass the token's own offset). */
static void completion_logprobs(px_jw *o, const px_api_logprob *lps, int n, int computed,
                                int64_t base) {
    if (!lps) {
        jw_lit(o, "null");
        return;
    }
    jw_lit(o, "{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        jw_str(o, lps[i].token, lps[i].token_len);
    }
    jw_lit(o, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        if (lps[i].missing)
            jw_lit(o, "null");
        else
            jlogprob(o, lps[i].logprob);
    }
    jw_lit(o, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        completion_top(o, &lps[i]);
    }
    jw_lit(o, "],\"text_offset\":[");
    int64_t off = base;
    for (int i = 0; i < n; i++) {
        if (i) jw_lit(o, ",");
        jw_int(o, computed ? off : lps[i].text_offset);
        off += cp_count(lps[i].token, lps[i].token_len);
    }
    jw_lit(o, "]}");
}

/* --- chunks and responses -------------------------------------------------- */

int px_api_openai_chunk(px_buf *out, const px_api_resp_meta *m, int choice, int role_first,
                        const char *text, size_t text_len, const char *finish,
                        const px_api_logprob *lp, int include_usage) {
    px_jw o = {out, 0};
    jw_lit(&o, "data: ");
    head(&o, m, object_of(m, 1));
    jw_lit(&o, ",\"choices\":[{");
    if (m->kind == PX_API_COMPLETION) {
        jw_lit(&o, "\"text\":");
        jw_str(&o, text, text_len);
        jw_lit(&o, ",\"index\":");
        jw_int(&o, choice);
        jw_lit(&o, ",\"logprobs\":");
        completion_logprobs(&o, lp, lp ? 1 : 0, 0, 0);
    } else {
        jw_lit(&o, "\"index\":");
        jw_int(&o, choice);
        jw_lit(&o, ",\"delta\":{");
        if (role_first) jw_lit(&o, "\"role\":\"assistant\"");
        if (role_first || text_len > 0) {
            jw_lit(&o, role_first ? ",\"content\":" : "\"content\":");
            jw_str(&o, text, text_len);
        }
        jw_lit(&o, "},\"logprobs\":");
        chat_logprobs(&o, lp, lp ? 1 : 0);
    }
    jw_lit(&o, ",");
    kstr(&o, "finish_reason", finish);
    jw_lit(&o, "}]");
    if (include_usage) jw_lit(&o, ",\"usage\":null");
    jw_lit(&o, "}\n\n");
    return o.err;
}

int px_api_openai_usage_chunk(px_buf *out, const px_api_resp_meta *m, int32_t prompt_tokens,
                              int32_t completion_tokens, int32_t cached_tokens) {
    px_jw o = {out, 0};
    jw_lit(&o, "data: ");
    head(&o, m, object_of(m, 1));
    jw_lit(&o, ",\"choices\":[],");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    jw_lit(&o, "}\n\n");
    return o.err;
}

int px_api_openai_response(px_buf *out, const px_api_resp_meta *m, const px_api_choice *choices,
                           int n, int32_t prompt_tokens, int32_t completion_tokens,
                           int32_t cached_tokens) {
    px_jw o = {out, 0};
    head(&o, m, object_of(m, 0));
    jw_lit(&o, ",\"choices\":[");
    for (int i = 0; i < n; i++) {
        const px_api_choice *c = &choices[i];
        jw_lit(&o, i ? ",{" : "{");
        if (m->kind == PX_API_COMPLETION) {
            jw_lit(&o, "\"text\":");
            jw_str(&o, c->text, c->text_len);
            jw_lit(&o, ",\"index\":");
            jw_int(&o, i);
            jw_lit(&o, ",\"logprobs\":");
            completion_logprobs(&o, c->lps, c->n_lps, 1, 0);
        } else {
            jw_lit(&o, "\"index\":");
            jw_int(&o, i);
            jw_lit(&o, ",\"message\":{\"role\":\"assistant\",\"content\":");
            jw_str(&o, c->text, c->text_len);
            jw_lit(&o, ",\"refusal\":null},\"logprobs\":");
            chat_logprobs(&o, c->lps, c->n_lps);
        }
        jw_lit(&o, ",");
        kstr(&o, "finish_reason", c->finish);
        jw_lit(&o, "}");
    }
    jw_lit(&o, "],");
    usage(&o, prompt_tokens, completion_tokens, cached_tokens);
    jw_lit(&o, "}");
    return o.err;
}

int px_api_openai_error(px_buf *out, const px_api_error *e) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"error\":{");
    kstr(&o, "message", e->message);
    jw_lit(&o, ",");
    kstr(&o, "type", e->type ? e->type : "server_error");
    jw_lit(&o, ",");
    kstr(&o, "param", e->param[0] ? e->param : NULL);
    jw_lit(&o, ",");
    kstr(&o, "code", e->code);
    jw_lit(&o, "}}");
    return o.err;
}

/* --- /v1/models ------------------------------------------------------------ */

static void model_obj(px_jw *o, const px_api_model_info *m) {
    jw_lit(o, "{");
    kstr(o, "id", m->id ? m->id : "");
    jw_lit(o, ",\"object\":\"model\",\"created\":");
    jw_int(o, (long long)m->created);
    jw_lit(o, ",");
    kstr(o, "owned_by", m->owned_by ? m->owned_by : "pollux");
    jw_lit(o, ",\"meta\":{");
    static const char *const names[] = {"n_vocab", "n_ctx_train", "n_embd", "n_params", "size"};
    const int64_t vals[] = {m->n_vocab, m->n_ctx_train, m->n_embd, m->n_params, m->size};
    int first = 1;
    for (size_t i = 0; i < PX_ARRAY_LEN(names); i++) {
        if (vals[i] < 0) continue;
        jw_lit(o, first ? "\"" : ",\"");
        jw_lit(o, names[i]);
        jw_lit(o, "\":");
        jw_int(o, (long long)vals[i]);
        first = 0;
    }
    jw_lit(o, "},\"architecture\":{\"input_modalities\":");
    jw_lit(o, m->vision ? "[\"text\",\"image\"]" : "[\"text\"]");
    jw_lit(o, "}}");
}

int px_api_openai_model(px_buf *out, const px_api_model_info *m) {
    px_jw o = {out, 0};
    model_obj(&o, m);
    return o.err;
}

int px_api_openai_models(px_buf *out, const px_api_model_info *m) {
    px_jw o = {out, 0};
    jw_lit(&o, "{\"object\":\"list\",\"data\":[");
    model_obj(&o, m);
    jw_lit(&o, "]}");
    return o.err;
}

/* --- /tokenize, /detokenize ------------------------------------------------ */

/* Token texts are short; a bigger buffer is tried when one is not. */
enum { PIECE_SMALL = 256, PIECE_MAX = 1 << 20 };

int px_api_tokenize_render(px_buf *out, const px_tokenizer *tok, const int32_t *ids, int32_t n,
                           int with_pieces) {
    px_jw o = {out, 0};
    char small[PIECE_SMALL];
    jw_lit(&o, "{\"tokens\":[");
    for (int32_t i = 0; i < n && !o.err; i++) {
        if (i) jw_lit(&o, ",");
        if (!with_pieces) {
            jw_int(&o, ids[i]);
            continue;
        }
        char *buf = small;
        size_t cap = sizeof small;
        int k;
        while ((k = px_tokenizer_piece(tok, ids[i], 1, buf, cap)) == PX_ETOOBIG &&
               cap < PIECE_MAX) {
            if (buf != small) free(buf);
            cap *= 4;
            if (!(buf = malloc(cap))) {
                o.err = -1;
                return -1;
            }
        }
        jw_lit(&o, "{\"id\":");
        jw_int(&o, ids[i]);
        jw_lit(&o, ",\"piece\":");
        if (k < 0)
            jw_lit(&o, "\"\"");
        else if (px_api_utf8_valid(buf, (size_t)k))
            jw_str(&o, buf, (size_t)k);
        else
            bytes_array(&o, buf, (size_t)k);
        jw_lit(&o, "}");
        if (buf != small) free(buf);
    }
    jw_lit(&o, "]}");
    return o.err;
}

int px_api_detokenize_render(px_buf *out, const px_tokenizer *tok, const int32_t *ids, int32_t n) {
    px_buf text = {0};
    px_detok d;
    char small[PIECE_SMALL];
    int err = 0;
    px_detok_init(&d, tok, 1);
    for (int32_t i = 0; i < n && !err; i++) {
        char *buf = small;
        size_t cap = sizeof small;
        int k;
        while ((k = px_detok_feed(&d, ids[i], buf, cap)) == PX_ETOOBIG && cap < PIECE_MAX) {
            if (buf != small) free(buf);
            cap *= 4;
            if (!(buf = malloc(cap))) {
                err = -1;
                break;
            }
        }
        if (!err && k > 0 && px_buf_append(&text, buf, (size_t)k)) err = -1;
        if (buf != small) free(buf);
    }
    int k = px_detok_flush(&d, small, sizeof small);
    if (!err && k > 0 && px_buf_append(&text, small, (size_t)k)) err = -1;
    px_jw o = {out, err};
    jw_lit(&o, "{\"content\":");
    jw_str(&o, text.data, text.len);
    jw_lit(&o, "}");
    px_buf_free(&text);
    return o.err;
}
