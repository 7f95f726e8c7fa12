/* fuzz_gemini.c — libFuzzer target for the Gemini request parser
 * (px_api_gemini_parse: generateContent, streamGenerateContent and
 * countTokens bodies, with validation, inlineData images and prompt
 * tokenization) and the JSON of its errors (px_api_gemini_error).
 *
 * Input: byte 0 picks the method (bits 0-1: generate, stream, count,
 * generate), the vocabulary and template (bits 2-3: Gemma, Llama 2,
 * ChatML), whether the model takes images (bit 4), a max_tokens default
 * (bit 5), deferred image decoding (bit 7) and whether the model name (from the URL) comes next as
 * a length-prefixed string (bit 6; else "tiny"); the rest is the body. Checks: as fuzz_openai
 * (fz_check_req; countTokens skips the context checks), stream is set exactly for
 * streamGenerateContent, and the model name comes back as given. */
#include <string.h>

#include "api/api.h"
#include "api/gemini.h"
#include "engine/px.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_tokenizer *tok_gemma, *tok_llama;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    tok_gemma = fz_tokenizer(PX_ARCH_GEMMA3);
    tok_llama = fz_tokenizer(PX_ARCH_LLAMA);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    char model[300] = "tiny";
    if (sel & 0x40) {
        size_t n;
        const uint8_t *p = fz_str8(&in, &n);
        memcpy(model, p, n);
        model[n] = '\0';
    }
    size_t len;
    const char *body = (const char *)fz_bytes(&in, SIZE_MAX, &len);

    static const px_gemini_method methods[4] = {PX_GEMINI_GENERATE, PX_GEMINI_STREAM,
                                                PX_GEMINI_COUNT, PX_GEMINI_GENERATE};
    static const px_chat_template tmpls[4] = {PX_TEMPLATE_GEMMA, PX_TEMPLATE_LLAMA2,
                                              PX_TEMPLATE_CHATML, PX_TEMPLATE_GEMMA};
    px_gemini_method m = methods[sel & 3];
    int t = (sel >> 2) & 3;
    px_api_limits lim;
    fz_api_limits(&lim, sel & 0x20 ? 100 : 0);
    px_api_ctx c = {.tok = t == 1 ? tok_llama : tok_gemma,
                    .tmpl = tmpls[t],
                    .limits = &lim,
                    .model_id = "tiny",
                    .image_tokens = sel & 0x10 ? 4 : 0,
                    .defer_image_decode = (sel & 0x80) != 0};
    px_api_req r;
    px_api_error e;
    memset(&r, 0x5A, sizeof r);
    memset(&e, 0, sizeof e);
    if (px_api_gemini_parse(m, model, body, len, &c, &r, &e) == 0) {
        FZ_LOG("accepted: %d prompt tokens, %d images\n", r.n_prompt, r.n_images);
        FZ_CHECK(r.kind == PX_API_CHAT && r.stream == (m == PX_GEMINI_STREAM), "kind/stream");
        /* The model is copied as given (polluxd passes only its own id). */
        FZ_CHECK(strcmp(r.model, model) == 0, "model %s for %s", r.model, model);
        fz_check_req(&r, &c,
                     (m != PX_GEMINI_COUNT ? FZ_REQ_CTX : 0) |
                         (c.defer_image_decode ? FZ_REQ_DEFERRED : 0));
        if (c.defer_image_decode) fz_decode_deferred(&r, &c);
        px_api_req_free(&r);
    } else {
        FZ_LOG("refused %d (%s): %s\n", e.status, e.param, e.message);
        fz_check_api_error(&e);
        px_buf out = {0};
        FZ_CHECK(px_api_gemini_error(&out, &e) == 0, "render error");
        fz_check_json(out.data, out.len, "error");
        px_buf_free(&out);
    }
    return 0;
}
