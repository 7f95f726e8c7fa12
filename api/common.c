/* api/common.c — pieces shared by the API dialects: client errors, limits,
 * request teardown, the output buffer, UTF-8 checks and JSON string
 * escaping. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/openai.h"

/* Cuts a UTF-8 sequence left incomplete at the end of s by a truncating
 * snprintf (messages may quote client text). */
static void trim_utf8_tail(char *s) {
    size_t n = strlen(s), j = n;
    while (j > 0 && n - j < 4 && ((unsigned char)s[j - 1] & 0xC0) == 0x80)
        j--;
    if (j > 0 && (unsigned char)s[j - 1] >= 0x80)
        j--; /* the lead byte */
    else if (j == n)
        return; /* ends in ASCII */
    if (px_api_utf8_seq(s + j, n - j) != n - j) s[j] = '\0';
}

int px_api_fail(px_api_error *e, int status, const char *type, const char *code, const char *param,
                const char *fmt, ...) {
    if (!e) return -1;
    e->status = status;
    e->type = type;
    e->code = code;
    if ((size_t)snprintf(e->param, sizeof e->param, "%s", param ? param : "") >= sizeof e->param)
        trim_utf8_tail(e->param);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (k >= (int)sizeof e->message) trim_utf8_tail(e->message);
    return -1;
}

void px_api_limits_init(px_api_limits *l) {
    l->n_ctx = 8192;
    l->max_prompt_tokens = l->n_ctx - 1;
    l->max_tokens_default = 0;
    l->max_n = 8;
    l->max_stop = 4;
    l->max_stop_len = 256;
    l->max_top_logprobs = 20;
    l->max_messages = 4096;
    l->max_images = 8;
    px_image_limits_init(&l->image);
    l->remote_images = false;
}

void px_api_req_free(px_api_req *r) {
    if (!r) return;
    free(r->prompt);
    for (int i = 0; r->stop && i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->stop_len);
    for (int i = 0; r->images && i < r->n_images; i++) {
        px_image_free(&r->images[i].img);
        free(r->images[i].data);
    }
    free(r->images);
    r->images = NULL;
    r->n_images = 0;
    r->prompt = NULL;
    r->stop = NULL;
    r->stop_len = NULL;
    r->n_prompt = 0;
    r->n_stop = 0;
}

size_t px_api_utf8_seq(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t l;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        l = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        l = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates U+D800..DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        l = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    if (n < l || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < l; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return l;
}

int px_api_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = px_api_utf8_seq(s + i, n - i);
        if (l == 0) return 0;
        i += l;
    }
    return 1;
}

/* --- output buffer ------------------------------------------------------ */

static int reserve(px_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int px_buf_append(px_buf *b, const void *data, size_t n) {
    if (reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int px_buf_printf(px_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof small) return px_buf_append(b, small, (size_t)n);
    if (reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void px_buf_free(px_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int px_buf_json_str(px_buf *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (n > (SIZE_MAX - 16) / 6 || reserve(b, 6 * n + 2)) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)str[i];
        if (c >= 0x80) {
            size_t l = px_api_utf8_seq(str + i, n - i);
            if (l == 0) {
                /* One U+FFFD per invalid byte keeps the output valid. */
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                i++;
            } else {
                memcpy(o, str + i, l);
                o += l;
                i += l;
            }
            continue;
        }
        i++;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c >= 0x20) {
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

/* --- request bodies ------------------------------------------------------ */

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int px_api_json_parse(const char *body, size_t len, cJSON **out, px_api_error *e) {
    *out = NULL;
    if (!body || len == 0)
        return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                           "the request body is empty; expected a JSON object");
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                           "the request body starts with a byte order mark; send plain UTF-8 JSON");
    /* cJSON hands out NUL-terminated strings without their length, so a NUL
     * inside one would silently cut it: refuse the raw byte and the escape.
     * cJSON 1.7 also reads a malformed "\uX000" as U+0000 (its hex parser
     * returns 0 on a bad digit), so every \u must have four hex digits. A
     * backslash always escapes the next byte: skipping it keeps "\\u0000"
     * (an escaped backslash, then text) apart from "\u0000". cJSON also
     * takes raw control bytes inside strings, which JSON forbids (RFC 8259
     * section 7): they are refused too, tracking quotes for that. */
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\0')
            return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                               "the request body contains a NUL byte (offset %zu)", i);
        if (body[i] == '"') in_str = !in_str;
        if (in_str && (unsigned char)body[i] < 0x20)
            return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                               "unescaped control character in a string (offset %zu)", i);
        if (body[i] != '\\' || i + 1 >= len) continue;
        if (body[i + 1] == 'u') {
            int zero = 1;
            for (size_t k = i + 2; k < i + 6; k++) {
                if (k >= len || !is_hex(body[k]))
                    return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                                       "malformed \\u escape (offset %zu)", i);
                zero &= body[k] == '0';
            }
            if (zero)
                return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                                   "strings must not contain U+0000 (offset %zu)", i);
        }
        i++;
    }
    /* The length bound is what keeps cJSON inside the body; the copy's NUL
     * is a second fence for any read that forgets it. */
    char *copy = malloc(len + 1);
    if (!copy) return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    memcpy(copy, body, len);
    copy[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    size_t at = end ? (size_t)(end - copy) : 0;
    free(copy);
    if (!root)
        return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                           "the request body is not valid JSON (error near byte %zu)",
                           at > len ? len : at);
    while (at < len && is_ws(body[at]))
        at++;
    if (at != len) {
        cJSON_Delete(root);
        return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                           "unexpected data after the JSON value (byte %zu)", at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return px_api_fail(e, 400, "invalid_request_error", NULL, NULL,
                           "the request body must be a JSON object");
    }
    *out = root;
    return 0;
}

int px_api_num(const cJSON *it, const char *param, double lo, double hi, int lo_open, int is_int,
               double *out, px_api_error *e) {
    if (!cJSON_IsNumber(it))
        return px_api_fail(e, 400, "invalid_request_error", NULL, param, "'%s' must be %s", param,
                           is_int ? "an integer" : "a number");
    double d = it->valuedouble;
    if (!isfinite(d))
        return px_api_fail(e, 400, "invalid_request_error", NULL, param, "'%s' is out of range",
                           param);
    if (is_int && d != floor(d))
        return px_api_fail(e, 400, "invalid_request_error", NULL, param, "'%s' must be an integer",
                           param);
    if (d < lo || d > hi || (lo_open && d == lo))
        return px_api_fail(e, 400, "invalid_request_error", NULL, param,
                           "'%s' must be %s %.16g and at most %.16g", param,
                           lo_open ? "greater than" : "at least", lo, hi);
    *out = d;
    return 0;
}

int px_api_str(const cJSON *it, const char *param, const char **s, size_t *n, px_api_error *e) {
    if (!cJSON_IsString(it) || !it->valuestring)
        return px_api_fail(e, 400, "invalid_request_error", NULL, param, "'%s' must be a string",
                           param);
    *s = it->valuestring;
    *n = strlen(it->valuestring);
    if (!px_api_utf8_valid(*s, *n))
        return px_api_fail(e, 400, "invalid_request_error", NULL, param, "'%s' is not valid UTF-8",
                           param);
    return 0;
}
