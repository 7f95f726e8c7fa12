/* fuzz_util.c — the input reader and fixtures shared by the fuzz targets. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/prompt.h"
#include "engine/gguf.h"
#include "engine/mkmodel.h"
#include "engine/px.h"
#include "fuzz_util.h"

uint8_t fz_u8(fz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

uint32_t fz_u32(fz_in *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}

const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len) {
    size_t k = max < in->n ? max : in->n;
    const uint8_t *p = in->p;
    in->p += k;
    in->n -= k;
    *len = k;
    return p;
}

const uint8_t *fz_str8(fz_in *in, size_t *len) {
    return fz_bytes(in, fz_u8(in), len);
}

int fz_verbose(void) {
    static int v = -1;
    if (v < 0) v = getenv("PX_FUZZ_VERBOSE") != NULL;
    return v;
}

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

px_tokenizer *fz_tokenizer(px_arch arch) {
    char err[256] = "";
    px_gguf_writer *w = px_gguf_writer_create();
    void *buf = NULL;
    size_t size = 0;
    if (!w ||
        px_gguf_writer_set_str(w, "general.architecture",
                               arch == PX_ARCH_GEMMA3 ? "gemma3" : "llama") != 0 ||
        px_mkmodel_write_vocab(w, arch, 1536) != 0 ||
        px_gguf_writer_write_mem(w, &buf, &size, err, sizeof err) != 0)
        fz_fail(__FILE__, __LINE__, "vocab", "cannot write the vocabulary: %s", err);
    px_gguf_writer_destroy(w);
    px_gguf *g = px_gguf_open_mem(buf, size, err, sizeof err);
    px_tokenizer *t = g ? px_tokenizer_create(g, err, sizeof err) : NULL;
    if (!t) fz_fail(__FILE__, __LINE__, "vocab", "cannot load the vocabulary: %s", err);
    px_gguf_close(g);
    free(buf);
    return t;
}

void fz_check_json(const char *s, size_t n, const char *what) {
    FZ_CHECK(px_api_utf8_valid(s, n), "%s: invalid UTF-8", what);
    cJSON *j = cJSON_ParseWithLength(s, n);
    FZ_CHECK(j != NULL, "%s: invalid JSON: %.*s", what, (int)(n < 400 ? n : 400), s);
    cJSON_Delete(j);
}

void fz_check_api_error(const px_api_error *e) {
    FZ_CHECK(e->status >= 400 && e->status < 500, "status %d", e->status);
    size_t ml = strnlen(e->message, sizeof e->message);
    size_t pl = strnlen(e->param, sizeof e->param);
    FZ_CHECK(ml > 0 && ml < sizeof e->message, "message");
    FZ_CHECK(pl < sizeof e->param, "param not terminated");
    FZ_CHECK(px_api_utf8_valid(e->message, ml), "message not UTF-8: %s", e->message);
    FZ_CHECK(px_api_utf8_valid(e->param, pl), "param not UTF-8: %s", e->param);
}

void fz_check_req(const px_api_req *r, const px_api_ctx *c, int flags) {
    int ctx_checked = flags & FZ_REQ_CTX;
    const px_api_limits *l = c->limits;
    int32_t nv = px_tokenizer_n_vocab(c->tok);
    /* countTokens past the limit keeps the count but no ids. */
    int count_only = !ctx_checked && r->n_prompt > l->max_prompt_tokens;
    FZ_CHECK(r->n_prompt >= 1 && (r->prompt != NULL || count_only), "n_prompt %d", r->n_prompt);
    FZ_CHECK(!count_only || r->prompt == NULL, "ids kept past the limit (%d)", r->n_prompt);
    FZ_CHECK(!ctx_checked || r->n_prompt <= l->max_prompt_tokens, "n_prompt %d", r->n_prompt);
    FZ_CHECK(r->n_images >= 0 && r->n_images <= l->max_images, "n_images %d", r->n_images);
    FZ_CHECK(r->n_images == 0 || c->image_tokens > 0, "images for a text-only model");
    int32_t prev_end = 0;
    for (int i = 0; i < r->n_images; i++) {
        const px_api_image *im = &r->images[i];
        FZ_CHECK(im->n_tokens == c->image_tokens && im->pos >= prev_end &&
                     (int64_t)im->pos + im->n_tokens <= r->n_prompt,
                 "image %d at %d+%d of %d", i, im->pos, im->n_tokens, r->n_prompt);
        if (flags & FZ_REQ_DEFERRED)
            FZ_CHECK(im->data && im->len > 0 && !im->img.rgb, "image %d not held encoded", i);
        else
            FZ_CHECK(im->img.rgb && im->img.width > 0 && im->img.height > 0 && !im->data,
                     "image %d not decoded", i);
        prev_end = im->pos + im->n_tokens;
    }
    int32_t stored = count_only ? 0 : r->n_prompt;
    for (int32_t i = 0, k = 0; i < stored; i++) {
        while (k < r->n_images && r->images[k].pos + r->images[k].n_tokens <= i)
            k++;
        if (k < r->n_images && i >= r->images[k].pos) continue; /* placeholder rows */
        FZ_CHECK(r->prompt[i] >= 0 && r->prompt[i] < nv, "prompt[%d] = %d", i, r->prompt[i]);
    }
    FZ_CHECK(r->max_tokens >= 0 &&
                 (!ctx_checked || (int64_t)r->n_prompt + r->max_tokens <= l->n_ctx),
             "max_tokens %d after %d", r->max_tokens, r->n_prompt);
    FZ_CHECK(r->n >= 1 && r->n <= l->max_n, "n %d", r->n);
    FZ_CHECK(r->n_stop >= 0 && r->n_stop <= l->max_stop, "n_stop %d", r->n_stop);
    for (int i = 0; i < r->n_stop; i++)
        FZ_CHECK(r->stop[i] && r->stop_len[i] <= (size_t)l->max_stop_len &&
                     strlen(r->stop[i]) == r->stop_len[i],
                 "stop %d", i);
    FZ_CHECK(r->top_logprobs >= 0 && r->top_logprobs <= l->max_top_logprobs, "top_logprobs %d",
             r->top_logprobs);
    size_t ml = strnlen(r->model, sizeof r->model);
    FZ_CHECK(ml < sizeof r->model, "model not terminated");
    FZ_CHECK(!(flags & FZ_REQ_MODEL_UTF8) || px_api_utf8_valid(r->model, ml), "model not UTF-8");
    FZ_CHECK(r->kind == PX_API_CHAT || r->kind == PX_API_COMPLETION, "kind");
}

void fz_decode_deferred(px_api_req *r, const px_api_ctx *c) {
    px_api_error e;
    memset(&e, 0, sizeof e);
    if (px_api_decode_images(r, c->limits, &e) < 0) {
        FZ_LOG("deferred decode refused %d (%s): %s\n", e.status, e.param, e.message);
        fz_check_api_error(&e);
        return;
    }
    for (int i = 0; i < r->n_images; i++)
        FZ_CHECK(r->images[i].img.rgb && !r->images[i].data, "image %d not decoded", i);
}

void fz_api_limits(px_api_limits *l, int max_tokens_default) {
    px_api_limits_init(l);
    l->n_ctx = 1024;
    l->max_prompt_tokens = 1023;
    l->max_tokens_default = max_tokens_default;
    l->max_images = 3;
    l->image.max_pixels = 1 << 20;
    l->image.max_side = 2048;
    l->image.max_bytes = 1 << 20;
}
