/* openai_render.c — tests of api/openai_render.c: every document is parsed
 * back with cJSON and checked field by field, including which keys exist. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/openai.h"
#include "engine/px.h"
#include "openai_test.h"

static const px_api_resp_meta chat_meta = {.kind = PX_API_CHAT,
                                           .id = "chatcmpl-abc",
                                           .created = 1735142223,
                                           .model = "gemma-3",
                                           .system_fingerprint = "fp_pollux"};
static const px_api_resp_meta cmpl_meta = {.kind = PX_API_COMPLETION,
                                           .id = "cmpl-xyz",
                                           .created = 42,
                                           .model = "m",
                                           .system_fingerprint = NULL};

/* Parses a whole document; asserts it is valid UTF-8 JSON with nothing
 * after it. */
static cJSON *parse_doc(const char *s, size_t n) {
    ck_assert(px_api_utf8_valid(s, n));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(s, &end, 1);
    ck_assert_msg(j != NULL, "not JSON: %s", s);
    return j;
}

/* "data: <json>\n\n" -> the JSON. */
static cJSON *parse_event(const px_buf *b) {
    ck_assert_uint_gt(b->len, 8);
    ck_assert(memcmp(b->data, "data: ", 6) == 0);
    ck_assert(memcmp(b->data + b->len - 2, "\n\n", 2) == 0);
    ck_assert_ptr_null(memchr(b->data, '\n', b->len - 2)); /* one line */
    char *s = strndup(b->data + 6, b->len - 8);
    cJSON *j = parse_doc(s, strlen(s));
    free(s);
    return j;
}

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "missing key %s", k);
    return v;
}
static void has_str(const cJSON *o, const char *k, const char *want) {
    const cJSON *v = get(o, k);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", k);
    ck_assert_str_eq(v->valuestring, want);
}
static void has_num(const cJSON *o, const char *k, double want) {
    const cJSON *v = get(o, k);
    ck_assert(cJSON_IsNumber(v));
    ck_assert_msg(v->valuedouble == want, "%s = %g, want %g", k, v->valuedouble, want);
}
static void has_null(const cJSON *o, const char *k) {
    ck_assert_msg(cJSON_IsNull(get(o, k)), "%s is not null", k);
}
/* The object has exactly these keys (n of them). */
static void keys_are(const cJSON *o, const char *const *keys, int n) {
    ck_assert_int_eq(cJSON_GetArraySize(o), n);
    for (int i = 0; i < n; i++)
        get(o, keys[i]);
}
#define KEYS(o, ...)                                                                               \
    do {                                                                                           \
        static const char *const k_[] = {__VA_ARGS__};                                             \
        keys_are(o, k_, (int)PX_ARRAY_LEN(k_));                                                    \
    } while (0)

static void check_head(const cJSON *j, const px_api_resp_meta *m, const char *object) {
    has_str(j, "id", m->id);
    has_str(j, "object", object);
    has_num(j, "created", (double)m->created);
    has_str(j, "model", m->model);
    if (m->system_fingerprint)
        has_str(j, "system_fingerprint", m->system_fingerprint);
    else
        has_null(j, "system_fingerprint");
}

START_TEST(test_chat_chunks) {
    px_buf b = {0};
    /* First chunk: role and empty content; no usage key without include_usage. */
    ck_assert_int_eq(px_api_openai_chunk(&b, &chat_meta, 0, 1, "", 0, NULL, NULL, 0), 0);
    cJSON *j = parse_event(&b);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices");
    check_head(j, &chat_meta, "chat.completion.chunk");
    const cJSON *ch = get(j, "choices");
    ck_assert_int_eq(cJSON_GetArraySize(ch), 1);
    const cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    KEYS(c0, "index", "delta", "logprobs", "finish_reason");
    has_num(c0, "index", 0);
    KEYS(get(c0, "delta"), "role", "content");
    has_str(get(c0, "delta"), "role", "assistant");
    has_str(get(c0, "delta"), "content", "");
    has_null(c0, "logprobs");
    has_null(c0, "finish_reason");
    cJSON_Delete(j);

    /* A content chunk of choice 2, with usage: null on it. */
    b.len = 0;
    ck_assert_int_eq(px_api_openai_chunk(&b, &chat_meta, 2, 0, "Hi \"x\"", 6, NULL, NULL, 1), 0);
    j = parse_event(&b);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices", "usage");
    has_null(j, "usage");
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    has_num(c0, "index", 2);
    KEYS(get(c0, "delta"), "content");
    has_str(get(c0, "delta"), "content", "Hi \"x\"");
    cJSON_Delete(j);

    /* The last chunk: empty delta, finish_reason set. */
    b.len = 0;
    ck_assert_int_eq(px_api_openai_chunk(&b, &chat_meta, 0, 0, NULL, 0, "length", NULL, 0), 0);
    j = parse_event(&b);
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(get(c0, "delta")), 0);
    has_str(c0, "finish_reason", "length");
    cJSON_Delete(j);

    /* Usage chunk: choices [] and full usage. */
    b.len = 0;
    ck_assert_int_eq(px_api_openai_usage_chunk(&b, &chat_meta, 44, 48, 12), 0);
    j = parse_event(&b);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices", "usage");
    check_head(j, &chat_meta, "chat.completion.chunk");
    ck_assert(cJSON_IsArray(get(j, "choices")));
    ck_assert_int_eq(cJSON_GetArraySize(get(j, "choices")), 0);
    const cJSON *u = get(j, "usage");
    KEYS(u, "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details");
    has_num(u, "prompt_tokens", 44);
    has_num(u, "completion_tokens", 48);
    has_num(u, "total_tokens", 92);
    KEYS(get(u, "prompt_tokens_details"), "cached_tokens");
    has_num(get(u, "prompt_tokens_details"), "cached_tokens", 12);
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

/* A token that is half a UTF-8 character shows U+FFFD in "token" and its
 * real bytes in "bytes". */
START_TEST(test_chat_logprobs) {
    px_api_logprob lp = {.token = "\xE2\x82", .token_len = 2, .logprob = -0.5f, .n_top = 2};
    lp.top_token[0] = "\xE2\x82";
    lp.top_len[0] = 2;
    lp.top_logprob[0] = -0.5f;
    lp.top_token[1] = "\xC3\xA9";
    lp.top_len[1] = 2;
    lp.top_logprob[1] = -1.0f / 0.0f; /* -inf: JSON has none */
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_chunk(&b, &chat_meta, 0, 0, "x", 1, NULL, &lp, 0), 0);
    cJSON *j = parse_event(&b);
    const cJSON *l = get(cJSON_GetArrayItem(get(j, "choices"), 0), "logprobs");
    KEYS(l, "content");
    ck_assert_int_eq(cJSON_GetArraySize(get(l, "content")), 1);
    const cJSON *t = cJSON_GetArrayItem(get(l, "content"), 0);
    KEYS(t, "token", "logprob", "bytes", "top_logprobs");
    has_str(t, "token", "\xEF\xBF\xBD\xEF\xBF\xBD");
    has_num(t, "logprob", -0.5);
    const cJSON *by = get(t, "bytes");
    ck_assert_int_eq(cJSON_GetArraySize(by), 2);
    ck_assert(cJSON_GetArrayItem(by, 0)->valuedouble == 0xE2);
    ck_assert(cJSON_GetArrayItem(by, 1)->valuedouble == 0x82);
    const cJSON *tops = get(t, "top_logprobs");
    ck_assert_int_eq(cJSON_GetArraySize(tops), 2);
    const cJSON *t1 = cJSON_GetArrayItem(tops, 1);
    KEYS(t1, "token", "logprob", "bytes");
    has_str(t1, "token", "\xC3\xA9");
    has_num(t1, "logprob", -9999.0);
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_chat_response) {
    px_api_logprob lps[2] = {{.token = "Hi", .token_len = 2, .logprob = -0.25f},
                             {.token = "!", .token_len = 1, .logprob = -1.5f}};
    px_api_choice ch[2] = {
        {.text = "Hi!", .text_len = 3, .finish = "stop", .lps = lps, .n_lps = 2},
        {.text = "a\nb", .text_len = 3, .finish = "length"},
    };
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_response(&b, &chat_meta, ch, 2, 10, 5, 4), 0);
    cJSON *j = parse_doc(b.data, b.len);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices", "usage");
    check_head(j, &chat_meta, "chat.completion");
    const cJSON *c = get(j, "choices");
    ck_assert_int_eq(cJSON_GetArraySize(c), 2);
    const cJSON *c0 = cJSON_GetArrayItem(c, 0), *c1 = cJSON_GetArrayItem(c, 1);
    KEYS(c0, "index", "message", "logprobs", "finish_reason");
    has_num(c0, "index", 0);
    has_num(c1, "index", 1);
    KEYS(get(c0, "message"), "role", "content", "refusal");
    has_str(get(c0, "message"), "role", "assistant");
    has_str(get(c0, "message"), "content", "Hi!");
    has_str(get(c1, "message"), "content", "a\nb");
    has_str(c0, "finish_reason", "stop");
    has_str(c1, "finish_reason", "length");
    has_null(c1, "logprobs");
    const cJSON *lc = get(get(c0, "logprobs"), "content");
    ck_assert_int_eq(cJSON_GetArraySize(lc), 2);
    has_str(cJSON_GetArrayItem(lc, 1), "token", "!");
    has_num(cJSON_GetArrayItem(lc, 1), "logprob", -1.5);
    ck_assert_int_eq(cJSON_GetArraySize(get(cJSON_GetArrayItem(lc, 1), "top_logprobs")), 0);
    has_num(get(j, "usage"), "total_tokens", 15);
    has_num(get(get(j, "usage"), "prompt_tokens_details"), "cached_tokens", 4);
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_completion_render) {
    /* echo: the first prompt token has no logprob. */
    px_api_logprob lps[3] = {
        {.token = "The", .token_len = 3, .missing = 1},
        {.token = " caf\xC3\xA9", .token_len = 6, .logprob = -1.0f, .n_top = 2},
        {.token = "\xF0\x9F", .token_len = 2, .logprob = -2.0f, .n_top = 2},
    };
    lps[1].top_token[0] = " caf\xC3\xA9";
    lps[1].top_len[0] = 6;
    lps[1].top_logprob[0] = -1.0f;
    lps[1].top_token[1] = " cat";
    lps[1].top_len[1] = 4;
    lps[1].top_logprob[1] = -3.0f;
    /* Two byte tokens render as the same key: written once. */
    lps[2].top_token[0] = "\xF0";
    lps[2].top_len[0] = 1;
    lps[2].top_logprob[0] = -2.0f;
    lps[2].top_token[1] = "\xF1";
    lps[2].top_len[1] = 1;
    lps[2].top_logprob[1] = -4.0f;
    px_api_choice ch = {
        .text = "The caf\xC3\xA9", .text_len = 9, .finish = "length", .lps = lps, .n_lps = 3};
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_response(&b, &cmpl_meta, &ch, 1, 3, 2, 0), 0);
    cJSON *j = parse_doc(b.data, b.len);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices", "usage");
    check_head(j, &cmpl_meta, "text_completion");
    const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    KEYS(c0, "text", "index", "logprobs", "finish_reason");
    has_str(c0, "text", "The caf\xC3\xA9");
    const cJSON *l = get(c0, "logprobs");
    KEYS(l, "tokens", "token_logprobs", "top_logprobs", "text_offset");
    ck_assert_str_eq(cJSON_GetArrayItem(get(l, "tokens"), 1)->valuestring, " caf\xC3\xA9");
    ck_assert_str_eq(cJSON_GetArrayItem(get(l, "tokens"), 2)->valuestring,
                     "\xEF\xBF\xBD\xEF\xBF\xBD");
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(get(l, "token_logprobs"), 0)));
    ck_assert(cJSON_GetArrayItem(get(l, "token_logprobs"), 1)->valuedouble == -1.0);
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(get(l, "top_logprobs"), 0)));
    const cJSON *top1 = cJSON_GetArrayItem(get(l, "top_logprobs"), 1);
    ck_assert_int_eq(cJSON_GetArraySize(top1), 2);
    has_num(top1, " cat", -3.0);
    const cJSON *top2 = cJSON_GetArrayItem(get(l, "top_logprobs"), 2);
    ck_assert_int_eq(cJSON_GetArraySize(top2), 1);
    has_num(top2, "\xEF\xBF\xBD", -2.0);
    /* Offsets in code points: 0, 3, 3 + 5. */
    const cJSON *off = get(l, "text_offset");
    ck_assert(cJSON_GetArrayItem(off, 0)->valuedouble == 0);
    ck_assert(cJSON_GetArrayItem(off, 1)->valuedouble == 3);
    ck_assert(cJSON_GetArrayItem(off, 2)->valuedouble == 8);
    cJSON_Delete(j);

    /* A completions chunk: "text", and the offset the caller gives. */
    b.len = 0;
    lps[1].text_offset = 77;
    ck_assert_int_eq(px_api_openai_chunk(&b, &cmpl_meta, 1, 1, "x", 1, NULL, &lps[1], 1), 0);
    j = parse_event(&b);
    KEYS(j, "id", "object", "created", "model", "system_fingerprint", "choices", "usage");
    check_head(j, &cmpl_meta, "text_completion");
    c0 = cJSON_GetArrayItem(get(j, "choices"), 0);
    KEYS(c0, "text", "index", "logprobs", "finish_reason");
    has_str(c0, "text", "x");
    has_num(c0, "index", 1);
    ck_assert(cJSON_GetArrayItem(get(get(c0, "logprobs"), "text_offset"), 0)->valuedouble == 77);
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

/* Any bytes in model text come out as valid UTF-8 JSON that decodes to the
 * text (invalid bytes as U+FFFD). */
START_TEST(test_utf8_escaping) {
    static const char text[] = "q\"b\\s/\n\r\t\x01\x1f\x7f \xC3\xA9 \xF0\x9F\x98\x80 "
                               "\xFF\xC0\xAF\xED\xA0\x80\xE2\x82";
    static const char want[] = "q\"b\\s/\n\r\t\x01\x1f\x7f \xC3\xA9 \xF0\x9F\x98\x80 "
                               "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                               "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
    px_api_choice ch = {.text = text, .text_len = sizeof text - 1, .finish = "stop"};
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_response(&b, &chat_meta, &ch, 1, 1, 1, 0), 0);
    cJSON *j = parse_doc(b.data, b.len);
    has_str(get(cJSON_GetArrayItem(get(j, "choices"), 0), "message"), "content", want);
    cJSON_Delete(j);
    /* NUL is written as \u0000, never raw. */
    b.len = 0;
    ck_assert_int_eq(px_buf_json_str(&b, "a\0b", 3), 0);
    ck_assert_str_eq(b.data, "\"a\\u0000b\"");
    ck_assert_uint_eq(b.len, 10);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_error_render) {
    px_api_error e;
    px_api_fail(&e, 400, "invalid_request_error", NULL, NULL, "bad \"x\"");
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_error(&b, &e), 0);
    cJSON *j = parse_doc(b.data, b.len);
    KEYS(j, "error");
    const cJSON *o = get(j, "error");
    KEYS(o, "message", "type", "param", "code");
    has_str(o, "message", "bad \"x\"");
    has_str(o, "type", "invalid_request_error");
    has_null(o, "param");
    has_null(o, "code");
    cJSON_Delete(j);
    b.len = 0;
    px_api_fail(&e, 400, "invalid_request_error", "context_length_exceeded", "messages", "%d", 7);
    ck_assert_int_eq(px_api_openai_error(&b, &e), 0);
    j = parse_doc(b.data, b.len);
    o = get(j, "error");
    has_str(o, "param", "messages");
    has_str(o, "code", "context_length_exceeded");
    has_str(o, "message", "7");
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_models_render) {
    px_api_model_info m = {.id = "gemma-3-4b-it",
                           .created = 99,
                           .owned_by = "pollux",
                           .n_vocab = 262144,
                           .n_ctx_train = 131072,
                           .n_embd = 2560,
                           .n_params = -1,
                           .size = 123,
                           .vision = 1};
    px_buf b = {0};
    ck_assert_int_eq(px_api_openai_models(&b, &m), 0);
    cJSON *j = parse_doc(b.data, b.len);
    KEYS(j, "object", "data");
    has_str(j, "object", "list");
    ck_assert_int_eq(cJSON_GetArraySize(get(j, "data")), 1);
    const cJSON *d = cJSON_GetArrayItem(get(j, "data"), 0);
    KEYS(d, "id", "object", "created", "owned_by", "meta", "architecture");
    has_str(d, "id", "gemma-3-4b-it");
    has_str(d, "object", "model");
    has_num(d, "created", 99);
    has_str(d, "owned_by", "pollux");
    KEYS(get(d, "meta"), "n_vocab", "n_ctx_train", "n_embd", "size"); /* n_params < 0 left out */
    has_num(get(d, "meta"), "n_ctx_train", 131072);
    const cJSON *mod = get(get(d, "architecture"), "input_modalities");
    ck_assert_int_eq(cJSON_GetArraySize(mod), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(mod, 1)->valuestring, "image");
    cJSON_Delete(j);
    b.len = 0;
    ck_assert_int_eq(px_api_openai_model(&b, &m), 0);
    j = parse_doc(b.data, b.len);
    has_str(j, "object", "model");
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_tokenize_render) {
    int32_t byte_e2 = px_tokenizer_find(tok_gemma, "<0xE2>");
    int32_t the = px_tokenizer_find(tok_gemma, "the");
    int32_t sot = px_tokenizer_find(tok_gemma, "<start_of_turn>");
    ck_assert(byte_e2 >= 0 && the >= 0 && sot >= 0);
    int32_t ids[] = {sot, the, byte_e2};
    px_buf b = {0};
    ck_assert_int_eq(px_api_tokenize_render(&b, tok_gemma, ids, 3, 0), 0);
    cJSON *j = parse_doc(b.data, b.len);
    KEYS(j, "tokens");
    ck_assert_int_eq(cJSON_GetArraySize(get(j, "tokens")), 3);
    ck_assert(cJSON_GetArrayItem(get(j, "tokens"), 1)->valuedouble == the);
    cJSON_Delete(j);
    b.len = 0;
    ck_assert_int_eq(px_api_tokenize_render(&b, tok_gemma, ids, 3, 1), 0);
    j = parse_doc(b.data, b.len);
    const cJSON *t = get(j, "tokens");
    KEYS(cJSON_GetArrayItem(t, 0), "id", "piece");
    has_str(cJSON_GetArrayItem(t, 0), "piece", "<start_of_turn>");
    has_str(cJSON_GetArrayItem(t, 1), "piece", "the");
    const cJSON *p = get(cJSON_GetArrayItem(t, 2), "piece");
    ck_assert(cJSON_IsArray(p)); /* a lone 0xE2 byte: its bytes */
    ck_assert_int_eq(cJSON_GetArraySize(p), 1);
    ck_assert(cJSON_GetArrayItem(p, 0)->valuedouble == 0xE2);
    cJSON_Delete(j);

    /* Detokenize: incomplete UTF-8 at the end becomes U+FFFD. */
    b.len = 0;
    ck_assert_int_eq(px_api_detokenize_render(&b, tok_gemma, ids, 3), 0);
    j = parse_doc(b.data, b.len);
    KEYS(j, "content");
    has_str(j, "content", "<start_of_turn>the\xEF\xBF\xBD");
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

void px_test_openai_render_tcase(Suite *s) {
    TCase *tc = tcase_create("render");
    tcase_add_checked_fixture(tc, px_test_api_setup, px_test_api_teardown);
    tcase_add_test(tc, test_chat_chunks);
    tcase_add_test(tc, test_chat_logprobs);
    tcase_add_test(tc, test_chat_response);
    tcase_add_test(tc, test_completion_render);
    tcase_add_test(tc, test_utf8_escaping);
    tcase_add_test(tc, test_error_render);
    tcase_add_test(tc, test_models_render);
    tcase_add_test(tc, test_tokenize_render);
    suite_add_tcase(s, tc);
}
