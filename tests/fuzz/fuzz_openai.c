/* fuzz_openai.c — libFuzzer target for the OpenAI request parsers:
 * /v1/chat/completions and /v1/completions (px_api_openai_parse, with
 * validation, image_url decoding and prompt tokenization), /tokenize and
 * /detokenize, and the JSON of the errors and results they lead to.
 *
 * Input: byte 0 picks the endpoint (bits 0-1), the vocabulary and template
 * (bits 2-3: Gemma, Llama 2, ChatML) and whether the model takes images
 * (bit 4), a max_tokens default (bit 5) and deferred image decoding (bit 7:
 * parse only checks images, px_api_decode_images decodes them after); the
 * rest is the body. Checks: a
 * refused body gets a 4xx whose message and param are valid UTF-8 and whose
 * JSON parses; an accepted one respects every limit (fz_check_req). */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/openai.h"
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

/* out holds one JSON value, valid UTF-8; freed after. */
static void check_out(px_buf *out, const char *what) {
    fz_check_json(out->data, out->len, what);
    px_buf_free(out);
}

static void check_error(const px_api_error *e) {
    FZ_LOG("refused %d (%s): %s\n", e->status, e->param, e->message);
    fz_check_api_error(e);
    FZ_CHECK(e->type != NULL, "status %d with no type", e->status);
    px_buf out = {0};
    FZ_CHECK(px_api_openai_error(&out, e) == 0, "render error");
    check_out(&out, "error");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    size_t len;
    const char *body = (const char *)fz_bytes(&in, SIZE_MAX, &len);

    static const px_chat_template tmpls[4] = {PX_TEMPLATE_GEMMA, PX_TEMPLATE_LLAMA2,
                                              PX_TEMPLATE_CHATML, PX_TEMPLATE_GEMMA};
    int t = (sel >> 2) & 3;
    px_api_limits lim;
    fz_api_limits(&lim, sel & 0x20 ? 100 : 0);
    px_api_ctx c = {.tok = t == 1 ? tok_llama : tok_gemma,
                    .tmpl = tmpls[t],
                    .limits = &lim,
                    .model_id = "tiny",
                    .image_tokens = sel & 0x10 ? 4 : 0,
                    .defer_image_decode = (sel & 0x80) != 0};
    px_api_error e;
    memset(&e, 0, sizeof e);

    switch (sel & 3) {
    case 0:
    case 1: {
        px_api_req r;
        memset(&r, 0x5A, sizeof r); /* the parser must not rely on a zeroed out */
        px_api_kind kind = (sel & 3) == 0 ? PX_API_CHAT : PX_API_COMPLETION;
        if (px_api_openai_parse(kind, body, len, &c, &r, &e) == 0) {
            FZ_LOG("accepted: %d prompt tokens, %d images\n", r.n_prompt, r.n_images);
            FZ_CHECK(r.kind == kind, "kind %d", (int)r.kind);
            fz_check_req(&r, &c,
                         (FZ_REQ_CTX | FZ_REQ_MODEL_UTF8) |
                             (c.defer_image_decode ? FZ_REQ_DEFERRED : 0));
            if (c.defer_image_decode) fz_decode_deferred(&r, &c);
            px_api_req_free(&r);
        } else {
            check_error(&e);
        }
        break;
    }
    case 2: {
        int32_t *ids = NULL, n = 0;
        int pieces = 0;
        if (px_api_tokenize_parse(body, len, &c, &ids, &n, &pieces, &e) == 0) {
            FZ_CHECK(n >= 0 && (n == 0 || ids), "n %d", n);
            for (int32_t i = 0; i < n; i++)
                FZ_CHECK(ids[i] >= 0 && ids[i] < px_tokenizer_n_vocab(c.tok), "id %d", ids[i]);
            px_buf out = {0};
            FZ_CHECK(px_api_tokenize_render(&out, c.tok, ids, n, pieces) == 0, "render");
            check_out(&out, "tokenize");
            free(ids);
        } else {
            FZ_CHECK(ids == NULL, "ids left on error");
            check_error(&e);
        }
        break;
    }
    case 3: {
        int32_t *ids = NULL, n = 0;
        if (px_api_detokenize_parse(body, len, &c, &ids, &n, &e) == 0) {
            for (int32_t i = 0; i < n; i++)
                FZ_CHECK(ids[i] >= 0 && ids[i] < px_tokenizer_n_vocab(c.tok), "id %d", ids[i]);
            px_buf out = {0};
            FZ_CHECK(px_api_detokenize_render(&out, c.tok, ids, n) == 0, "render");
            check_out(&out, "detokenize");
            free(ids);
        } else {
            FZ_CHECK(ids == NULL, "ids left on error");
            check_error(&e);
        }
        break;
    }
    }
    return 0;
}
