/* api/prompt.c — prompt assembly shared by the API dialects: rendered chat
 * text tokenized span by span, image spans expanded to their embedding rows,
 * and images decoded from base64 and data: URLs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/prompt.h"
#include "engine/px.h"

#define BAD "invalid_request_error"

static int tok_fail(px_api_error *e, int64_t rc) {
    if (rc == PX_ETOOBIG)
        return px_api_fail(e, 413, BAD, NULL, NULL, "the prompt text is too large to tokenize");
    if (rc == PX_ENOMEM) return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return px_api_fail(e, 500, "server_error", NULL, NULL, "tokenization failed");
}

static int oom(px_api_error *e) {
    return px_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
}

/* Output ids: stores up to cap (at most limit + 1), counts everything. */
typedef struct idbuf {
    int32_t *ids;
    int64_t n, cap, limit;
} idbuf;

/* Makes room for k more ids if the total stays within limit + 1. */
static int reserve(idbuf *b, int64_t k) {
    if (b->n + k <= b->cap || b->n + k > b->limit + 1) return 0;
    int64_t cap = PX_MIN(PX_MAX(b->cap * 2, b->n + k), b->limit + 1);
    int32_t *p = realloc(b->ids, (size_t)cap * sizeof *p);
    if (!p) return -1;
    b->ids = p;
    b->cap = cap;
    return 0;
}

static int push(idbuf *b, int32_t id) {
    if (reserve(b, 1)) return -1;
    if (b->n < b->cap) b->ids[b->n] = id;
    b->n++;
    return 0;
}

static int encode_text(idbuf *b, const px_tokenizer *tok, const char *s, size_t len, int flags,
                       px_api_error *e) {
    int64_t room = b->n < b->cap ? b->cap - b->n : 0;
    int64_t k = px_tokenizer_encode(tok, s, len, flags, room ? b->ids + b->n : NULL, room);
    if (k < 0) return tok_fail(e, k);
    if (k > room && b->n + k <= b->limit + 1) {
        if (reserve(b, k)) return oom(e);
        k = px_tokenizer_encode(tok, s, len, flags, b->ids + b->n, k);
        if (k < 0) return tok_fail(e, k);
    }
    b->n += k;
    return 0;
}

/* <start_of_image>, n placeholder rows, <end_of_image>. */
static int encode_image(idbuf *b, const px_api_ctx *ctx, px_api_req *r, int idx, int *next_image,
                        px_api_error *e) {
    if (idx != *next_image || idx >= r->n_images)
        return px_api_fail(e, 500, "server_error", NULL, NULL, "image parts out of order");
    (*next_image)++;
    int32_t start = px_tokenizer_find(ctx->tok, "<start_of_image>");
    int32_t end = px_tokenizer_find(ctx->tok, "<end_of_image>");
    if (start < 0 || end < 0 || ctx->image_tokens <= 0)
        return px_api_fail(e, 400, BAD, NULL, NULL, "this model does not take images");
    int32_t soft = px_tokenizer_find(ctx->tok, "<image_soft_token>");
    if (soft < 0) soft = start; /* any valid id: the rows' embeddings replace it */
    if (push(b, start)) return oom(e);
    r->images[idx].pos = b->n > INT32_MAX ? INT32_MAX : (int32_t)b->n;
    r->images[idx].n_tokens = ctx->image_tokens;
    if (reserve(b, ctx->image_tokens)) return oom(e);
    for (int32_t i = 0; i < ctx->image_tokens; i++)
        if (push(b, soft)) return oom(e);
    if (push(b, end)) return oom(e);
    return 0;
}

int px_api_encode_segs(const px_api_ctx *ctx, const char *text, const px_chat_seg *segs,
                       size_t n_segs, int add_bos, int64_t limit, px_api_req *r, int32_t **out,
                       int64_t *n_out, px_api_error *e) {
    int32_t be[4];
    int64_t n_be = 0;
    if (add_bos && (n_be = px_tokenizer_encode(ctx->tok, "", 0, PX_TOK_ADD_BOS, be, 4)) < 0)
        return tok_fail(e, n_be);
    int has_bos = n_be > 0 && be[0] == px_tokenizer_bos(ctx->tok) && be[0] >= 0;
    int has_eos = n_be > has_bos;
    size_t bytes = 0;
    for (size_t i = 0; i < n_segs; i++)
        bytes += segs[i].len;
    /* A token per byte plus a dummy prefix per span is the usual ceiling. */
    idbuf b = {.limit = limit};
    b.cap = (int64_t)PX_MIN(bytes + 2 * n_segs + 4, (size_t)limit + 1);
    if (!(b.ids = malloc((size_t)b.cap * sizeof *b.ids))) return oom(e);
    int next_image = 0, rc = 0;
    if (has_bos) rc = push(&b, be[0]) ? oom(e) : 0;
    for (size_t i = 0; rc == 0 && i < n_segs; i++) {
        if (segs[i].image >= 0)
            rc = encode_image(&b, ctx, r, segs[i].image, &next_image, e);
        else
            rc = encode_text(&b, ctx->tok, text + segs[i].off, segs[i].len,
                             segs[i].special ? PX_TOK_PARSE_SPECIAL : 0, e);
    }
    if (rc == 0 && r && next_image != r->n_images)
        rc = px_api_fail(e, 500, "server_error", NULL, NULL, "an image part was not rendered");
    if (rc == 0 && has_eos) rc = push(&b, be[n_be - 1]) ? oom(e) : 0;
    if (rc) {
        free(b.ids);
        return -1;
    }
    *out = b.ids;
    *n_out = b.n;
    return 0;
}

int px_api_chat_prompt(const px_api_ctx *ctx, const px_chat_msg *msgs, size_t n, const char *param,
                       px_api_req *r, px_api_error *e) {
    char *text = NULL, err[160];
    px_chat_seg *segs = NULL;
    size_t len, n_segs;
    if (!param) param = "messages";
    if (px_chat_template_render_segs(ctx->tmpl, msgs, n, &text, &len, &segs, &n_segs, err,
                                     sizeof err))
        return px_api_fail(e, 400, BAD, NULL, param, "%s", err);
    int64_t count;
    int rc = px_api_encode_segs(ctx, text, segs, n_segs, 1, ctx->limits->max_prompt_tokens, r,
                                &r->prompt, &count, e);
    free(text);
    free(segs);
    if (rc) return -1;
    r->n_prompt = count > INT32_MAX ? INT32_MAX : (int32_t)count;
    return 0;
}

/* 64-bit hash of the encoded bytes (FNV-1a over 8-byte words, then a
 * finaliser): keys the prefix cache, so equal files share cached blocks. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

int px_api_add_image_b64(px_api_req *r, const px_api_ctx *ctx, const char *mime, const char *b64,
                         size_t len, const char *param, px_api_error *e) {
    char err[200];
    if (ctx->image_tokens <= 0)
        return px_api_fail(e, 400, BAD, NULL, param,
                           "this model does not take images (no vision tower is loaded)");
    if (r->n_images >= ctx->limits->max_images)
        return px_api_fail(e, 400, BAD, NULL, param, "at most %d images per request",
                           ctx->limits->max_images);
    uint8_t *bytes;
    size_t n;
    int rc = px_base64_decode(b64, len, ctx->limits->image.max_bytes, &bytes, &n, err, sizeof err);
    if (rc < 0)
        return px_api_fail(e,
                           rc == PX_ETOOBIG  ? 413
                           : rc == PX_ENOMEM ? 500
                                             : 400,
                           rc == PX_ENOMEM ? "server_error" : BAD, NULL, param, "%s", err);
    int w, h;
    rc = px_image_check(bytes, n, mime, &ctx->limits->image, &w, &h, err, sizeof err);
    /* Over the pixel or side limits is a bad argument (400), not a body
     * too large: the body itself was accepted. */
    if (rc < 0) {
        free(bytes);
        return px_api_fail(e, rc == PX_ENOMEM ? 500 : 400, rc == PX_ENOMEM ? "server_error" : BAD,
                           NULL, param, "%s", err);
    }
    px_api_image *p = realloc(r->images, sizeof *p * (size_t)(r->n_images + 1));
    if (!p) {
        free(bytes);
        return oom(e);
    }
    r->images = p;
    px_api_image *im = &p[r->n_images];
    memset(im, 0, sizeof *im);
    im->hash = hash_bytes(bytes, n);
    im->data = bytes;
    im->len = n;
    snprintf(im->mime, sizeof im->mime, "%s", mime ? mime : "");
    snprintf(im->param, sizeof im->param, "%s", param ? param : "");
    int idx = r->n_images++;
    if (!ctx->defer_image_decode && px_api_decode_images(r, ctx->limits, e) < 0) return -1;
    return idx;
}

int px_api_decode_images(px_api_req *r, const px_api_limits *lim, px_api_error *e) {
    for (int i = 0; i < r->n_images; i++) {
        px_api_image *im = &r->images[i];
        if (!im->data) continue;
        char err[200];
        int rc = px_image_decode(im->data, im->len, im->mime[0] ? im->mime : NULL, &lim->image,
                                 &im->img, err, sizeof err);
        free(im->data);
        im->data = NULL;
        if (rc < 0)
            return px_api_fail(e, rc == PX_ENOMEM ? 500 : 400,
                               rc == PX_ENOMEM ? "server_error" : BAD, NULL, im->param, "%s", err);
    }
    return 0;
}

int px_api_add_image_url(px_api_req *r, const px_api_ctx *ctx, const char *url, size_t len,
                         const char *param, px_api_error *e) {
    if ((len >= 7 && strncmp(url, "http://", 7) == 0) ||
        (len >= 8 && strncmp(url, "https://", 8) == 0)) {
        if (!ctx->limits->remote_images)
            return px_api_fail(e, 400, BAD, NULL, param,
                               "remote image URLs are disabled on this server; send the image "
                               "inline as a data: URL (data:image/png;base64,...)");
        return px_api_fail(e, 400, BAD, NULL, param,
                           "fetching remote images is not supported; send a data: URL");
    }
    char mime[64], err[200];
    const char *b64;
    size_t b64_len;
    if (px_data_url_parse(url, len, mime, sizeof mime, &b64, &b64_len, err, sizeof err) < 0)
        return px_api_fail(e, 400, BAD, NULL, param, "%s", err);
    return px_api_add_image_b64(r, ctx, mime, b64, b64_len, param, e);
}
