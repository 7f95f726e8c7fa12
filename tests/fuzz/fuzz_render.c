/* fuzz_render.c — libFuzzer target for the OpenAI renderers with arbitrary
 * token text: JSON string escaping (px_buf_json_str), SSE stream chunks,
 * usage chunks, whole responses and error bodies.
 *
 * Input: byte 0 flags (bit 0 completions, bit 1 first chunk, bits 2-3
 * finish reason, bit 4 include_usage, bit 5 logprobs, bit 6 missing
 * logprob), then the number of top logprobs, a choice index, three counts,
 * the model name, the token and top-token texts with float bit patterns,
 * an error message and param, and the rest is the text.
 * Checks: every output is valid UTF-8 and parses with cJSON; an SSE chunk is
 * exactly "data: " + one line of JSON + "\n\n" (no CR or LF inside, or a
 * client would split the event); text that is valid UTF-8 without NULs
 * comes back unchanged from the parsed JSON. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/openai.h"
#include "engine/px.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Text survives a JSON round trip intact when it is valid UTF-8 without NUL
 * (cJSON strings end at NUL). */
static int exact(const char *s, size_t n) {
    return px_api_utf8_valid(s, n) && memchr(s, 0, n) == NULL;
}

static cJSON *parse(const px_buf *b, size_t off, size_t len, const char *what) {
    FZ_CHECK(px_api_utf8_valid(b->data, b->len), "%s: invalid UTF-8", what);
    cJSON *j = cJSON_ParseWithLength(b->data + off, len);
    FZ_CHECK(j != NULL, "%s: invalid JSON: %.*s", what, (int)PX_MIN(len, 400), b->data + off);
    return j;
}

static void check_str(const char *s, size_t n) {
    px_buf b = {0};
    FZ_CHECK(px_buf_json_str(&b, s, n) == 0, "json_str");
    cJSON *j = parse(&b, 0, b.len, "json_str");
    FZ_CHECK(cJSON_IsString(j), "not a string");
    if (exact(s, n))
        FZ_CHECK(strlen(j->valuestring) == n && memcmp(j->valuestring, s, n) == 0,
                 "string changed");
    cJSON_Delete(j);
    px_buf_free(&b);
}

/* NUL-terminated copy of at most cap-1 bytes. */
static void cstr(char *dst, size_t cap, const uint8_t *p, size_t n) {
    n = PX_MIN(n, cap - 1);
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static float f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    uint8_t fl = fz_u8(&in);
    int n_top = fz_u8(&in) % 21;
    int choice = (int)(fz_u32(&in) & 0x7FFFFFFF);
    int32_t counts[3];
    for (int i = 0; i < 3; i++)
        counts[i] = (int32_t)fz_u32(&in);
    size_t n;
    const uint8_t *p = fz_str8(&in, &n);
    char model[128];
    cstr(model, sizeof model, p, n);

    px_api_logprob lp = {0};
    lp.token = (const char *)fz_str8(&in, &lp.token_len);
    lp.logprob = f32(fz_u32(&in));
    lp.n_top = n_top;
    for (int i = 0; i < n_top; i++) {
        lp.top_token[i] = (const char *)fz_str8(&in, &lp.top_len[i]);
        lp.top_logprob[i] = f32(fz_u32(&in));
    }
    lp.missing = (fl >> 6) & 1;
    lp.text_offset = fz_u32(&in);

    px_api_error e = {.status = 400, .type = "invalid_request_error", .code = NULL};
    p = fz_str8(&in, &n);
    cstr(e.message, sizeof e.message, p, n);
    p = fz_str8(&in, &n);
    cstr(e.param, sizeof e.param, p, n);

    size_t text_len;
    const char *text = (const char *)fz_bytes(&in, SIZE_MAX, &text_len);

    check_str(text, text_len);
    check_str(lp.token, lp.token_len);

    static const char *const finishes[4] = {NULL, "stop", "length", NULL};
    px_api_resp_meta m = {.kind = fl & 1 ? PX_API_COMPLETION : PX_API_CHAT,
                          .id = "chatcmpl-fuzz",
                          .created = 1700000000,
                          .model = model,
                          .system_fingerprint = "fp_pollux"};
    const px_api_logprob *lpp = fl & 0x20 ? &lp : NULL;

    /* One stream chunk. */
    px_buf b = {0};
    FZ_CHECK(px_api_openai_chunk(&b, &m, choice, (fl >> 1) & 1, text, text_len,
                                 finishes[(fl >> 2) & 3], lpp, (fl >> 4) & 1) == 0,
             "chunk");
    FZ_CHECK(b.len > 8 && memcmp(b.data, "data: ", 6) == 0 &&
                 memcmp(b.data + b.len - 2, "\n\n", 2) == 0,
             "chunk framing");
    size_t jl = b.len - 8;
    FZ_CHECK(memchr(b.data + 6, '\n', jl) == NULL && memchr(b.data + 6, '\r', jl) == NULL,
             "line break inside an SSE event");
    cJSON *j = parse(&b, 6, jl, "chunk");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    FZ_CHECK(c0 != NULL, "no choice");
    cJSON *idx = cJSON_GetObjectItem(c0, "index");
    FZ_CHECK(cJSON_IsNumber(idx) && idx->valuedouble == (double)choice, "index");
    if (exact(text, text_len) && text_len > 0) {
        cJSON *t = m.kind == PX_API_CHAT
                       ? cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "content")
                       : cJSON_GetObjectItem(c0, "text");
        FZ_CHECK(cJSON_IsString(t) && strlen(t->valuestring) == text_len &&
                     memcmp(t->valuestring, text, text_len) == 0,
                 "text changed in the chunk");
    }
    cJSON_Delete(j);
    px_buf_free(&b);

    /* The usage chunk. */
    FZ_CHECK(px_api_openai_usage_chunk(&b, &m, counts[0], counts[1], counts[2]) == 0, "usage");
    FZ_CHECK(b.len > 8 && memcmp(b.data, "data: ", 6) == 0, "usage framing");
    cJSON_Delete(parse(&b, 6, b.len - 8, "usage"));
    px_buf_free(&b);

    /* A whole response: the text split into up to three choices. */
    px_api_choice ch[3];
    int nc = 1 + (int)(text_len % 3);
    size_t off = 0;
    for (int i = 0; i < nc; i++) {
        size_t l = i == nc - 1 ? text_len - off : text_len / (size_t)nc;
        ch[i] = (px_api_choice){.text = text + off,
                                .text_len = l,
                                .finish = i & 1 ? "length" : "stop",
                                .lps = lpp,
                                .n_lps = lpp ? 1 : 0};
        off += l;
    }
    FZ_CHECK(px_api_openai_response(&b, &m, ch, nc, counts[0], counts[1], counts[2]) == 0,
             "response");
    j = parse(&b, 0, b.len, "response");
    FZ_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")) == nc, "choices");
    cJSON_Delete(j);
    px_buf_free(&b);

    /* An error body with client-derived bytes in message and param. */
    FZ_CHECK(px_api_openai_error(&b, &e) == 0, "error");
    cJSON_Delete(parse(&b, 0, b.len, "error"));
    px_buf_free(&b);
    return 0;
}
