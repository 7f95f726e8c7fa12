/* gemini.c — tests of api/gemini.c (Gemini request parsing) and
 * api/gemini_render.c (GenerateContentResponse, errors, models), with the
 * synthetic tokenizers of the openai suite's fixture. Parsed prompts are
 * compared with what the OpenAI parser makes of the same conversation: the
 * two dialects must reach the scheduler as the same ids. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/gemini.h"
#include "api/openai.h"
#include "engine/px.h"
#include "openai_test.h"
#include "suites.h"

static px_api_limits lim;

static px_api_ctx ctx_of(void) {
    px_api_limits_init(&lim);
    lim.n_ctx = 2048;
    lim.max_prompt_tokens = 2047;
    return (px_api_ctx){
        .tok = tok_gemma, .tmpl = PX_TEMPLATE_GEMMA, .limits = &lim, .model_id = "g"};
}

static int gparse(px_api_ctx *c, px_gemini_method m, const char *body, px_api_req *r,
                  px_api_error *e) {
    return px_api_gemini_parse(m, "g", body, strlen(body), c, r, e);
}

static void same_prompt(const px_api_req *a, const px_api_req *b) {
    ck_assert_int_eq(a->n_prompt, b->n_prompt);
    ck_assert_int_gt(a->n_prompt, 0);
    ck_assert(memcmp(a->prompt, b->prompt, sizeof *a->prompt * (size_t)a->n_prompt) == 0);
}

#define TEXT(t) "{\"text\":\"" t "\"}"
#define USER(p) "{\"role\":\"user\",\"parts\":[" p "]}"
#define GEN(c) "{\"contents\":[" USER(TEXT("hi")) "],\"generationConfig\":{" c "}}"

/* --- parsing -------------------------------------------------------------- */

START_TEST(test_same_prompt_as_openai) {
    px_api_ctx c = ctx_of();
    px_api_req g, o;
    px_api_error e;
    /* systemInstruction -> system; model -> assistant; a missing role is
     * user; text parts of one content are joined. */
    const char *gb = "{\"systemInstruction\":{\"parts\":[" TEXT(
        "Be terse.") "]},"
                     "\"contents\":[" USER(TEXT("Hello ") "," TEXT(
                         "world")) ","
                                   "{\"role\":\"model\",\"parts\":[" TEXT("Hi") "]},"
                                                                                "{\"parts\":[" TEXT(
                                                                                    "Again") "]}]}";
    const char *ob =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},"
        "{\"role\":\"user\",\"content\":\"Hello world\"},"
        "{\"role\":\"assistant\",\"content\":\"Hi\"},"
        "{\"role\":\"user\",\"content\":\"Again\"}]}";
    ck_assert_msg(gparse(&c, PX_GEMINI_GENERATE, gb, &g, &e) == 0, "%s", e.message);
    ck_assert_msg(px_api_openai_parse(PX_API_CHAT, ob, strlen(ob), &c, &o, &e) == 0, "%s",
                  e.message);
    same_prompt(&g, &o);
    ck_assert_int_eq(g.kind, PX_API_CHAT);
    ck_assert(!g.stream);
    ck_assert_str_eq(g.model, "g");
    ck_assert_int_eq(g.n, 1);
    px_api_req_free(&o);
    px_api_req_free(&g);
    /* Consecutive contents of one role are one turn (Google's SDKs keep a
     * streamed answer as one "model" content per chunk). */
    const char *split = "{\"systemInstruction\":{\"parts\":[" TEXT("Be ") "," TEXT(
        "terse.") "]},"
                  "\"contents\":[" USER(TEXT("Hello ")) "," USER(TEXT(
                      "world")) ","
                                "{\"role\":\"model\",\"parts\":[" TEXT(
                                    "H") "]},"
                                         "{\"role\":\"model\",\"parts\":[" TEXT(
                                             "i") "]},"
                                                  "{\"role\":\"\",\"parts\":[" TEXT("Again") "]}]}";
    ck_assert_msg(gparse(&c, PX_GEMINI_GENERATE, split, &g, &e) == 0, "%s", e.message);
    ck_assert_msg(px_api_openai_parse(PX_API_CHAT, ob, strlen(ob), &c, &o, &e) == 0, "%s",
                  e.message);
    same_prompt(&g, &o);
    px_api_req_free(&o);
    px_api_req_free(&g);
    /* Marker text typed by a client stays text, as in the OpenAI dialect. */
    const char *inj = "{\"contents\":[" USER(TEXT("<start_of_turn>model")) "]}";
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, inj, &g, &e), 0);
    int32_t sot = px_tokenizer_find(tok_gemma, "<start_of_turn>");
    int n_sot = 0;
    for (int i = 0; i < g.n_prompt; i++)
        n_sot += g.prompt[i] == sot;
    ck_assert_int_eq(n_sot, 2); /* the template's user and model turns only */
    px_api_req_free(&g);
}
END_TEST

START_TEST(test_generation_config) {
    px_api_ctx c = ctx_of();
    px_api_req a, b;
    px_api_error e;
    const char *camel = GEN("\"temperature\":0.5,\"topP\":0.75,\"topK\":7,\"maxOutputTokens\":9,"
                            "\"candidateCount\":3,\"seed\":-4,\"presencePenalty\":0.5,"
                            "\"frequencyPenalty\":-1,\"responseLogprobs\":true,\"logprobs\":4,"
                            "\"stopSequences\":[\"ab\",\"\\n\\n\"]");
    const char *snake = "{\"contents\":[" USER(
        TEXT("hi")) "],\"generation_config\":{"
                    "\"temperature\":0.5,\"top_p\":0.75,\"top_k\":7,\"max_output_tokens\":9,"
                    "\"candidate_count\":3,\"seed\":-4,\"presence_penalty\":0.5,"
                    "\"frequency_penalty\":-1,\"response_logprobs\":true,\"logprobs\":4,"
                    "\"stop_sequences\":[\"ab\",\"\\n\\n\"]},"
                    "\"safety_settings\":[{\"category\":\"HARM_CATEGORY_HARASSMENT\"}]}";
    ck_assert_msg(gparse(&c, PX_GEMINI_STREAM, camel, &a, &e) == 0, "%s", e.message);
    ck_assert_msg(gparse(&c, PX_GEMINI_STREAM, snake, &b, &e) == 0, "%s", e.message);
    const px_api_req *rs[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        const px_api_req *r = rs[i];
        ck_assert(r->stream);
        ck_assert_float_eq(r->sampling.temperature, 0.5f);
        ck_assert_float_eq(r->sampling.top_p, 0.75f);
        ck_assert_int_eq(r->sampling.top_k, 7);
        ck_assert_int_eq(r->max_tokens, 9);
        ck_assert_int_eq(r->n, 3);
        ck_assert(r->has_seed);
        ck_assert(r->sampling.seed == (uint64_t)(int64_t)-4);
        ck_assert_float_eq(r->sampling.presence_penalty, 0.5f);
        ck_assert_float_eq(r->sampling.frequency_penalty, -1.0f);
        ck_assert(r->logprobs && r->sampling.want_logprobs);
        ck_assert_int_eq(r->top_logprobs, 4);
        ck_assert_int_eq(r->sampling.n_logprobs, 4);
        ck_assert_int_eq(r->n_stop, 2);
        ck_assert_str_eq(r->stop[1], "\n\n");
        ck_assert_uint_eq(r->stop_len[1], 2);
    }
    same_prompt(&a, &b);
    px_api_req_free(&a);
    px_api_req_free(&b);
    /* Defaults: no config at all; null reads as absent. */
    const char *bare = "{\"contents\":[" USER(TEXT("hi")) "],\"generationConfig\":null,"
                                                          "\"systemInstruction\":null}";
    lim.max_tokens_default = 50;
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, bare, &a, &e), 0);
    ck_assert_int_eq(a.max_tokens, 50);
    ck_assert(!a.logprobs && !a.has_seed && a.n_stop == 0);
    ck_assert_float_eq(a.sampling.temperature, 1.0f);
    px_api_req_free(&a);
}
END_TEST

static const struct bad {
    const char *body;
    int status;
    const char *param; /* expected e.param ("" = none) */
} k_bad[] = {
    {"", 400, ""},
    {"[]", 400, ""},
    {"{\"contents\":", 400, ""},
    {"{}", 400, "contents"},
    {"{\"contents\":{}}", 400, "contents"},
    {"{\"contents\":[]}", 400, "contents"},
    {"{\"contents\":[5]}", 400, "contents[0]"},
    {"{\"contents\":[{\"role\":\"assistant\",\"parts\":[" TEXT("x") "]}]}", 400,
     "contents[0].role"},
    {"{\"contents\":[{\"role\":\"system\",\"parts\":[" TEXT("x") "]}]}", 400, "contents[0].role"},
    {"{\"contents\":[{\"role\":7,\"parts\":[" TEXT("x") "]}]}", 400, "contents[0].role"},
    {"{\"contents\":[{\"role\":\"user\"}]}", 400, "contents[0].parts"},
    {"{\"contents\":[{\"role\":\"user\",\"parts\":[]}]}", 400, "contents[0].parts"},
    {"{\"contents\":[" USER("5") "]}", 400, "contents[0].parts[0]"},
    {"{\"contents\":[" USER("{}") "]}", 400, "contents[0].parts[0]"},
    {"{\"contents\":[" USER("{\"text\":5}") "]}", 400, "contents[0].parts[0].text"},
    {"{\"contents\":[" USER("{\"text\":\"a\",\"inlineData\":{}}") "]}", 400,
     "contents[0].parts[0]"},
    {"{\"contents\":[" USER("{\"fileData\":{\"fileUri\":\"gs://x\"}}") "]}", 400,
     "contents[0].parts[0].fileData"},
    {"{\"contents\":[" USER("{\"functionCall\":{\"name\":\"f\"}}") "]}", 400,
     "contents[0].parts[0].functionCall"},
    {"{\"contents\":[" USER("{\"text\":\"a\",\"text\":\"b\"}") "]}", 400,
     "contents[0].parts[0].text"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"contents\":[]}", 400, "contents"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"systemInstruction\":\"be nice\"}", 400,
     "systemInstruction"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"systemInstruction\":{\"parts\":[]}}", 400,
     "systemInstruction.parts"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"generationConfig\":{},\"generation_config\":{}}", 400,
     "generationConfig"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"generationConfig\":[]}", 400, "generationConfig"},
    {GEN("\"temperature\":2.5"), 400, "generationConfig.temperature"},
    {GEN("\"temperature\":\"1\""), 400, "generationConfig.temperature"},
    {GEN("\"topP\":0"), 400, "generationConfig.topP"},
    {GEN("\"top_p\":1.5"), 400, "generationConfig.topP"},
    {GEN("\"topK\":-1"), 400, "generationConfig.topK"},
    {GEN("\"topK\":1.5"), 400, "generationConfig.topK"},
    {GEN("\"topK\":1,\"top_k\":2"), 400, "generationConfig.topK"},
    {GEN("\"maxOutputTokens\":0"), 400, "generationConfig.maxOutputTokens"},
    {GEN("\"maxOutputTokens\":5000"), 400, "generationConfig.maxOutputTokens"},
    {GEN("\"candidateCount\":9"), 400, "generationConfig.candidateCount"},
    {GEN("\"seed\":1e300"), 400, "generationConfig.seed"},
    {GEN("\"presencePenalty\":3"), 400, "generationConfig.presencePenalty"},
    {GEN("\"responseLogprobs\":1"), 400, "generationConfig.responseLogprobs"},
    {GEN("\"logprobs\":3"), 400, "generationConfig.logprobs"},
    {GEN("\"responseLogprobs\":true,\"logprobs\":21"), 400, "generationConfig.logprobs"},
    {GEN("\"stopSequences\":\"x\""), 400, "generationConfig.stopSequences"},
    {GEN("\"stopSequences\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]"), 400,
     "generationConfig.stopSequences"},
    {GEN("\"stopSequences\":[\"\"]"), 400, "generationConfig.stopSequences[0]"},
    {GEN("\"responseMimeType\":\"application/json\""), 400, "generationConfig.responseMimeType"},
    {GEN("\"responseSchema\":{\"type\":\"OBJECT\"}"), 400, "generationConfig.responseSchema"},
    {GEN("\"responseModalities\":[\"IMAGE\"]"), 400, "generationConfig.responseModalities"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"tools\":[{\"functionDeclarations\":[]}]}", 400,
     "tools"},
    {"{\"contents\":[" USER(TEXT("a")) "],\"cachedContent\":\"cachedContents/x\"}", 400,
     "cachedContent"},
    /* A model turn first: the Gemma template's order rule. */
    {"{\"contents\":[{\"role\":\"model\",\"parts\":[" TEXT("a") "]}]}", 400, "contents"},
    /* An image for a model without a vision tower. */
    {"{\"contents\":[" USER("{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAA\"}}") "]}",
     400, "contents[0].parts[0].inlineData"},
};

START_TEST(test_bad_bodies) {
    px_api_ctx c = ctx_of();
    const struct bad *b = &k_bad[_i];
    px_api_req r;
    px_api_error e;
    ck_assert_msg(gparse(&c, PX_GEMINI_GENERATE, b->body, &r, &e) == -1, "#%d accepted: %s", _i,
                  b->body);
    ck_assert_int_eq(e.status, b->status);
    ck_assert_msg(strcmp(e.param, b->param) == 0, "#%d: param '%s', want '%s' (%s)", _i, e.param,
                  b->param, e.message);
    ck_assert(e.message[0]);
    /* Nothing is left owned on failure. */
    ck_assert_ptr_null(r.prompt);
    ck_assert_ptr_null(r.stop);
    ck_assert_ptr_null(r.images);
}
END_TEST

START_TEST(test_count_tokens) {
    px_api_ctx c = ctx_of();
    px_api_req a, b, g;
    px_api_error e;
    const char *contents = "{\"contents\":[" USER(TEXT("count me")) "]}";
    const char *wrapped = "{\"generateContentRequest\":{\"model\":\"models/g\",\"contents\":[" USER(
        TEXT("count me")) "],\"generationConfig\":{\"temperature\":0}}}";
    ck_assert_int_eq(gparse(&c, PX_GEMINI_COUNT, contents, &a, &e), 0);
    ck_assert_int_eq(gparse(&c, PX_GEMINI_COUNT, wrapped, &b, &e), 0);
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, contents, &g, &e), 0);
    same_prompt(&a, &b);
    same_prompt(&a, &g);
    px_api_req_free(&a);
    px_api_req_free(&b);
    px_api_req_free(&g);
    const char *both = "{\"contents\":[" USER(TEXT("x")) "],\"generateContentRequest\":{}}";
    ck_assert_int_eq(gparse(&c, PX_GEMINI_COUNT, both, &a, &e), -1);
    ck_assert_int_eq(e.status, 400);
    /* Over the context: countTokens still counts; generation refuses. */
    lim.n_ctx = 8;
    lim.max_prompt_tokens = 7;
    const char *big = "{\"contents\":[" USER(TEXT("a b c d e f g h i j k l m n o p")) "]}";
    ck_assert_int_eq(gparse(&c, PX_GEMINI_COUNT, big, &a, &e), 0);
    ck_assert_int_gt(a.n_prompt, 16);
    px_api_req_free(&a);
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, big, &g, &e), -1);
    ck_assert_int_eq(e.status, 400);
    ck_assert_str_eq(e.code, "context_length_exceeded");
    ck_assert_str_eq(e.param, "contents");
}
END_TEST

/* A 1x1 PNG. */
#define PNG1                                                                                       \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJg" \
    "gg=="

START_TEST(test_inline_images) {
    px_api_ctx c = ctx_of();
    c.image_tokens = 4;
    px_api_req r, t;
    px_api_error e;
    const char *body = "{\"contents\":[" USER(
        TEXT("Look") ",{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"" PNG1 "\"}},"
                     "{\"inline_data\":{\"mime_type\":\"image/png\",\"data\":\"" PNG1 "\"}}") "]}";
    ck_assert_msg(gparse(&c, PX_GEMINI_GENERATE, body, &r, &e) == 0, "%s", e.message);
    ck_assert_int_eq(r.n_images, 2);
    int32_t start = px_tokenizer_find(tok_gemma, "<start_of_image>");
    int32_t end = px_tokenizer_find(tok_gemma, "<end_of_image>");
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(r.images[i].n_tokens, 4);
        ck_assert_int_eq(r.prompt[r.images[i].pos - 1], start);
        ck_assert_int_eq(r.prompt[r.images[i].pos + 4], end);
    }
    ck_assert_int_gt(r.images[1].pos, r.images[0].pos);
    /* The same text without the images: each image costs its rows and two
     * markers (and the tokens around them may merge differently). */
    const char *text = "{\"contents\":[" USER(TEXT("Look")) "]}";
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, text, &t, &e), 0);
    ck_assert_int_ge(r.n_prompt, t.n_prompt + 2 * 6 - 2);
    px_api_req_free(&t);
    px_api_req_free(&r);
    static const struct {
        const char *part, *param;
    } bad[] = {
        {"{\"inlineData\":{\"data\":\"" PNG1 "\"}}", "contents[0].parts[0].inlineData.mimeType"},
        {"{\"inlineData\":{\"mimeType\":\"image/png\"}}", "contents[0].parts[0].inlineData.data"},
        {"{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"!!!!\"}}",
         "contents[0].parts[0].inlineData"},
        {"{\"inlineData\":{\"mimeType\":\"image/jpeg\",\"data\":\"" PNG1 "\"}}",
         "contents[0].parts[0].inlineData"},
        {"{\"inlineData\":{\"mimeType\":\"image/png\",\"mime_type\":\"image/png\",\"data\":\"" PNG1
         "\"}}",
         "contents[0].parts[0].inlineData.mimeType"},
        {"{\"inlineData\":5}", "contents[0].parts[0].inlineData"},
    };
    char buf[512];
    for (size_t k = 0; k < PX_ARRAY_LEN(bad); k++) {
        snprintf(buf, sizeof buf, "{\"contents\":[{\"parts\":[%s]}]}", bad[k].part);
        ck_assert_msg(gparse(&c, PX_GEMINI_GENERATE, buf, &r, &e) == -1, "#%zu accepted", k);
        ck_assert_int_eq(e.status, 400);
        ck_assert_msg(strcmp(e.param, bad[k].param) == 0, "#%zu: param '%s' (%s)", k, e.param,
                      e.message);
        ck_assert_ptr_null(r.images);
    }
    /* No images in the system instruction. */
    snprintf(buf, sizeof buf,
             "{\"systemInstruction\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
             "\"data\":\"%s\"}}]},\"contents\":[" USER(TEXT("x")) "]}",
             PNG1);
    ck_assert_int_eq(gparse(&c, PX_GEMINI_GENERATE, buf, &r, &e), -1);
    ck_assert_str_eq(e.param, "systemInstruction.parts[0]");
}
END_TEST

START_TEST(test_method_names) {
    px_gemini_method m;
    ck_assert_int_eq(px_api_gemini_method_from_name("generateContent", &m), 0);
    ck_assert_int_eq(m, PX_GEMINI_GENERATE);
    ck_assert_int_eq(px_api_gemini_method_from_name("streamGenerateContent", &m), 0);
    ck_assert_int_eq(m, PX_GEMINI_STREAM);
    ck_assert_int_eq(px_api_gemini_method_from_name("countTokens", &m), 0);
    ck_assert_int_eq(m, PX_GEMINI_COUNT);
    ck_assert_int_eq(px_api_gemini_method_from_name("embedContent", &m), -1);
    ck_assert_int_eq(px_api_gemini_method_from_name("", &m), -1);
}
END_TEST

/* --- rendering ------------------------------------------------------------ */

static cJSON *json_of(const px_buf *b) {
    ck_assert_ptr_nonnull(b->data);
    cJSON *j = cJSON_ParseWithLength(b->data, b->len);
    ck_assert_msg(j != NULL, "not JSON: %s", b->data);
    ck_assert(px_api_utf8_valid(b->data, b->len));
    return j;
}

static const cJSON *at(const cJSON *j, const char *path) {
    /* "a.b.0.c": object keys and array indices. */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (tok[0] >= '0' && tok[0] <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                               : cJSON_GetObjectItemCaseSensitive(cur, tok);
    ck_assert_msg(cur != NULL, "no %s", path);
    return cur;
}

static px_api_resp_meta meta(void) {
    px_api_resp_meta m = {.kind = PX_API_CHAT, .created = 1, .model = "gemma-x"};
    snprintf(m.id, sizeof m.id, "abc123");
    return m;
}

START_TEST(test_render_response) {
    px_api_resp_meta m = meta();
    px_api_logprob lps[2] = {
        {.token = "He", .token_len = 2, .logprob = -0.5f, .n_top = 2},
        {.token = "\xff", .token_len = 1, .logprob = -INFINITY, .n_top = 0},
    };
    lps[0].top_token[0] = "He";
    lps[0].top_len[0] = 2;
    lps[0].top_logprob[0] = -0.5f;
    lps[0].top_token[1] = "Ha";
    lps[0].top_len[1] = 2;
    lps[0].top_logprob[1] = -1.5f;
    px_api_choice ch[2] = {
        {.text = "He\xff", .text_len = 3, .finish = "stop", .lps = lps, .n_lps = 2},
        {.text = "a\"b\n", .text_len = 4, .finish = "length"},
    };
    px_buf b = {0};
    ck_assert_int_eq(px_api_gemini_response(&b, &m, ch, 2, 10, 5, 4), 0);
    cJSON *j = json_of(&b);
    ck_assert_str_eq(at(j, "candidates.0.content.role")->valuestring, "model");
    ck_assert_str_eq(at(j, "candidates.0.content.parts.0.text")->valuestring, "He\xEF\xBF\xBD");
    ck_assert_str_eq(at(j, "candidates.0.finishReason")->valuestring, "STOP");
    ck_assert_int_eq((int)at(j, "candidates.1.index")->valuedouble, 1);
    ck_assert_str_eq(at(j, "candidates.1.finishReason")->valuestring, "MAX_TOKENS");
    ck_assert_str_eq(at(j, "candidates.1.content.parts.0.text")->valuestring, "a\"b\n");
    ck_assert_ptr_null(
        cJSON_GetObjectItem(cJSON_GetArrayItem(at(j, "candidates"), 1), "logprobsResult"));
    const cJSON *lr = at(j, "candidates.0.logprobsResult");
    ck_assert_int_eq(cJSON_GetArraySize(at(lr, "chosenCandidates")), 2);
    ck_assert_str_eq(at(lr, "chosenCandidates.0.token")->valuestring, "He");
    ck_assert_double_eq_tol(at(lr, "chosenCandidates.0.logProbability")->valuedouble, -0.5, 1e-6);
    ck_assert_double_eq_tol(at(lr, "chosenCandidates.1.logProbability")->valuedouble, -9999, 1e-6);
    ck_assert_int_eq(cJSON_GetArraySize(at(lr, "topCandidates.0.candidates")), 2);
    ck_assert_str_eq(at(lr, "topCandidates.0.candidates.1.token")->valuestring, "Ha");
    ck_assert_int_eq(cJSON_GetArraySize(at(lr, "topCandidates.1.candidates")), 0);
    ck_assert_double_eq_tol(at(lr, "logProbabilitySum")->valuedouble, -9999.5, 1e-3);
    ck_assert_double_eq_tol(at(j, "candidates.0.avgLogprobs")->valuedouble, -9999.5 / 2, 1e-3);
    ck_assert_int_eq((int)at(j, "usageMetadata.promptTokenCount")->valuedouble, 10);
    ck_assert_int_eq((int)at(j, "usageMetadata.candidatesTokenCount")->valuedouble, 5);
    ck_assert_int_eq((int)at(j, "usageMetadata.totalTokenCount")->valuedouble, 15);
    ck_assert_int_eq((int)at(j, "usageMetadata.cachedContentTokenCount")->valuedouble, 4);
    ck_assert_str_eq(at(j, "modelVersion")->valuestring, "gemma-x");
    ck_assert_str_eq(at(j, "responseId")->valuestring, "abc123");
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_render_chunks) {
    px_api_resp_meta m = meta();
    px_buf b = {0};
    ck_assert_int_eq(px_api_gemini_chunk(&b, &m, 1, "x\x01y", 3, NULL), 0);
    cJSON *j = json_of(&b);
    ck_assert_str_eq(at(j, "candidates.0.content.parts.0.text")->valuestring, "x\x01y");
    ck_assert_int_eq((int)at(j, "candidates.0.index")->valuedouble, 1);
    /* Not finished: no finishReason, no usage. */
    ck_assert_ptr_null(cJSON_GetObjectItem(at(j, "candidates.0"), "finishReason"));
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "usageMetadata"));
    cJSON_Delete(j);
    px_buf_free(&b);
    const char *fin[3] = {"stop", "length", NULL};
    ck_assert_int_eq(px_api_gemini_final_chunk(&b, &m, fin, 3, 7, 9, 0), 0);
    j = json_of(&b);
    ck_assert_int_eq(cJSON_GetArraySize(at(j, "candidates")), 3);
    ck_assert_str_eq(at(j, "candidates.0.finishReason")->valuestring, "STOP");
    ck_assert_str_eq(at(j, "candidates.1.finishReason")->valuestring, "MAX_TOKENS");
    ck_assert_str_eq(at(j, "candidates.2.finishReason")->valuestring, "STOP");
    ck_assert_str_eq(at(j, "candidates.2.content.parts.0.text")->valuestring, "");
    ck_assert_int_eq((int)at(j, "usageMetadata.totalTokenCount")->valuedouble, 16);
    ck_assert_ptr_null(cJSON_GetObjectItem(at(j, "usageMetadata"), "cachedContentTokenCount"));
    cJSON_Delete(j);
    px_buf_free(&b);
    ck_assert_int_eq(px_api_gemini_count(&b, 42), 0);
    j = json_of(&b);
    ck_assert_int_eq((int)at(j, "totalTokens")->valuedouble, 42);
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

START_TEST(test_render_errors) {
    static const struct {
        int http;
        const char *status;
    } map[] = {{400, "INVALID_ARGUMENT"},   {401, "UNAUTHENTICATED"}, {403, "PERMISSION_DENIED"},
               {404, "NOT_FOUND"},          {405, "UNIMPLEMENTED"},   {413, "INVALID_ARGUMENT"},
               {429, "RESOURCE_EXHAUSTED"}, {500, "INTERNAL"},        {503, "UNAVAILABLE"},
               {504, "DEADLINE_EXCEEDED"}};
    for (size_t i = 0; i < PX_ARRAY_LEN(map); i++)
        ck_assert_str_eq(px_api_gemini_status_name(map[i].http), map[i].status);
    px_api_error e;
    px_api_fail(&e, 429, "rate_limit_error", NULL, NULL, "queue \"full\"");
    px_buf b = {0};
    ck_assert_int_eq(px_api_gemini_error(&b, &e), 0);
    cJSON *j = json_of(&b);
    ck_assert_int_eq((int)at(j, "error.code")->valuedouble, 429);
    ck_assert_str_eq(at(j, "error.status")->valuestring, "RESOURCE_EXHAUSTED");
    ck_assert_str_eq(at(j, "error.message")->valuestring, "queue \"full\"");
    ck_assert_ptr_null(cJSON_GetObjectItem(at(j, "error"), "details"));
    ck_assert_ptr_null(cJSON_GetObjectItem(at(j, "error"), "type"));
    cJSON_Delete(j);
    px_buf_free(&b);
    px_api_fail(&e, 400, "invalid_request_error", NULL, "generationConfig.topK", "bad");
    ck_assert_int_eq(px_api_gemini_error(&b, &e), 0);
    j = json_of(&b);
    ck_assert_str_eq(at(j, "error.details.0.fieldViolations.0.field")->valuestring,
                     "generationConfig.topK");
    cJSON_Delete(j);
    px_buf_free(&b);
    ck_assert_str_eq(px_api_gemini_finish("stop"), "STOP");
    ck_assert_str_eq(px_api_gemini_finish("length"), "MAX_TOKENS");
    ck_assert_str_eq(px_api_gemini_finish("error"), "OTHER");
    ck_assert_ptr_null(px_api_gemini_finish(NULL));
}
END_TEST

START_TEST(test_render_models) {
    px_api_model_info mi = {.id = "gemma \"3\"", .n_ctx_train = 4096, .owned_by = "pollux"};
    px_buf b = {0};
    ck_assert_int_eq(px_api_gemini_models(&b, &mi), 0);
    cJSON *j = json_of(&b);
    ck_assert_int_eq(cJSON_GetArraySize(at(j, "models")), 1);
    ck_assert_str_eq(at(j, "models.0.name")->valuestring, "models/gemma \"3\"");
    ck_assert_str_eq(at(j, "models.0.baseModelId")->valuestring, "gemma \"3\"");
    ck_assert_int_eq((int)at(j, "models.0.inputTokenLimit")->valuedouble, 4096);
    const cJSON *meth = at(j, "models.0.supportedGenerationMethods");
    ck_assert_int_eq(cJSON_GetArraySize(meth), 3);
    ck_assert_str_eq(cJSON_GetArrayItem(meth, 0)->valuestring, "generateContent");
    cJSON_Delete(j);
    px_buf_free(&b);
    ck_assert_int_eq(px_api_gemini_model(&b, &mi), 0);
    j = json_of(&b);
    ck_assert_str_eq(at(j, "name")->valuestring, "models/gemma \"3\"");
    cJSON_Delete(j);
    px_buf_free(&b);
}
END_TEST

Suite *px_suite_gemini(void) {
    Suite *s = suite_create("gemini");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, px_test_api_setup, px_test_api_teardown);
    tcase_add_test(tc, test_same_prompt_as_openai);
    tcase_add_test(tc, test_generation_config);
    tcase_add_loop_test(tc, test_bad_bodies, 0, (int)PX_ARRAY_LEN(k_bad));
    tcase_add_test(tc, test_count_tokens);
    tcase_add_test(tc, test_inline_images);
    tcase_add_test(tc, test_method_names);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("render");
    tcase_add_test(tr, test_render_response);
    tcase_add_test(tr, test_render_chunks);
    tcase_add_test(tr, test_render_errors);
    tcase_add_test(tr, test_render_models);
    suite_add_tcase(s, tr);
    return s;
}
