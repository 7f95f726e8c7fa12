/* prompt.h — prompt assembly shared by the API dialects: chat messages
 * (text and image parts) rendered with the model's chat template and
 * tokenized into ids, and images from requests (base64 or data: URLs)
 * decoded and attached to the request.
 *
 * An image becomes <start_of_image>, ctx->image_tokens placeholder rows and
 * <end_of_image> in place of its part (as Gemma 3 and llama.cpp's mtmd lay
 * it out); the placeholder rows are replaced by the vision tower's
 * embeddings in the scheduler. Chat prompts start with BOS when the
 * vocabulary has one. Pure functions; any thread.
 * Owns: nothing beyond what it adds to a px_api_req. */
#ifndef PX_PROMPT_H
#define PX_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

/* Tokenizes rendered template text span by span (markers with special-token
 * parsing, message text without), BOS (and EOS) around the whole when
 * add_bos and the vocabulary asks for them, image spans expanded as above
 * (r->images[k].pos set). Stores at most limit + 1 ids (beyond that it only
 * counts, so a huge prompt costs no memory) and returns the true count in
 * *n_out. 0, or -1 with e filled (413 too large, 400 image problems, 500). */
int px_api_encode_segs(const px_api_ctx *ctx, const char *text, const px_chat_seg *segs,
                       size_t n_segs, int add_bos, int64_t limit, px_api_req *r, int32_t **out,
                       int64_t *n_out, px_api_error *e);

/* Renders msgs with ctx's template and tokenizes them into r->prompt and
 * r->n_prompt (the true count: may exceed max_prompt_tokens, which the
 * caller checks). Image parts refer to r->images by index. Template errors
 * (roles, order) are 400s with param "messages" (override with param). */
int px_api_chat_prompt(const px_api_ctx *ctx, const px_chat_msg *msgs, size_t n, const char *param,
                       px_api_req *r, px_api_error *e);

/* Decodes a base64 image (mime: the claimed type, or NULL), checks its
 * header, and appends it to r->images, decoded to RGB unless
 * ctx->defer_image_decode; returns its index, or -1 with e filled: 400 when
 * the model takes no images, for more than limits->max_images, bad base64,
 * a corrupt or truncated image, a mime type that lies or is not an image
 * type, 0 pixels, too many pixels; 413 over the encoded-size limit. param
 * names the field in messages. */
int px_api_add_image_b64(px_api_req *r, const px_api_ctx *ctx, const char *mime, const char *b64,
                         size_t len, const char *param, px_api_error *e);

/* Decodes every image of r still held encoded (px_api_ctx's
 * defer_image_decode), freeing the encoded bytes: the slow part, for a
 * worker thread. 0, or -1 with e filled (400 naming the image's field for a
 * corrupt or truncated image, 500 out of memory). */
int px_api_decode_images(px_api_req *r, const px_api_limits *lim, px_api_error *e);

/* The same for an OpenAI image_url: a data: URL; http(s) URLs are refused
 * (400) unless limits->remote_images, and fetching is not built in yet, so
 * they are refused then too, with a message saying so. */
int px_api_add_image_url(px_api_req *r, const px_api_ctx *ctx, const char *url, size_t len,
                         const char *param, px_api_error *e);

#endif
