/* image.h — images in requests: data URLs, base64, and decoding PNG, JPEG,
 * WebP and GIF (first frame) to RGB8 with limits checked before any pixel
 * buffer is allocated (dimensions come from the header probe).
 * Pure functions over caller buffers; any thread. Decoders are the Debian
 * libraries (libpng, libjpeg-turbo, libwebp, giflib), driven from memory
 * with their error paths caught (no longjmp past our frames, no exit).
 * Functions return 0 or a negative PX_E* code (engine/px.h) and fill err
 * with a message fit for a client (no library text, no paths):
 *   PX_EINVAL  malformed data URL, claimed mime type that lies, 0-pixel image;
 *   PX_EFORMAT bad base64, unrecognized / corrupt / truncated image;
 *   PX_ETOOBIG over a limit (max_out, max_bytes, max_side, max_pixels);
 *   PX_ENOTSUP claimed mime type that is not PNG, JPEG, WebP or GIF;
 *   PX_ENOMEM  allocation failed. */
#ifndef PX_IMAGE_H
#define PX_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef enum px_image_format {
    PX_IMAGE_UNKNOWN = 0,
    PX_IMAGE_PNG = 1,
    PX_IMAGE_JPEG = 2,
    PX_IMAGE_WEBP = 3,
    PX_IMAGE_GIF = 4,
} px_image_format;

typedef struct px_image_limits {
    int64_t max_pixels; /* width * height (default 33,554,432) */
    int max_side;       /* pixels on either side (default 8192) */
    size_t max_bytes;   /* encoded bytes (default 20 MiB) */
} px_image_limits;
void px_image_limits_init(px_image_limits *l);

/* A decoded image: rgb is (height, width, 3) bytes, malloc'd. */
typedef struct px_image {
    int width, height;
    uint8_t *rgb;
} px_image;
void px_image_free(px_image *img);

/* Splits "data:<mime>[;name=value]*;base64,<payload>": copies the mime type
 * (lower-case) into mime, points *b64 at the payload (inside url). Refuses
 * a URL that is not data:, has no type/subtype, is not base64 (percent-
 * encoded data), or whose mime does not fit mime_cap. */
int px_data_url_parse(const char *url, size_t len, char *mime, size_t mime_cap, const char **b64,
                      size_t *b64_len, char *err, size_t errlen);
/* Decodes standard base64 (padding optional, no whitespace other than
 * line breaks) into a malloc'd buffer of at most max_out bytes; the size is
 * checked before allocating. Empty input, URL-safe or other characters
 * (the message gives the offset) and bad lengths are refused. */
int px_base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen);
/* Reads format and dimensions from the header only (no library, no
 * allocation): PNG IHDR, JPEG's first SOFn, WebP VP8/VP8L/VP8X, GIF's
 * logical screen (an image descriptor must follow). A size may be 0. */
int px_image_probe(const uint8_t *data, size_t len, px_image_format *fmt, int *width, int *height,
                   char *err, size_t errlen);
/* The checks px_image_decode makes before decoding (size, claimed type,
 * header, dimensions against the limits), without decoding: cheap enough
 * for the event loop. Fills width and height (if not NULL). */
int px_image_check(const uint8_t *data, size_t len, const char *claimed_mime,
                   const px_image_limits *lim, int *width, int *height, char *err, size_t errlen);
/* Probes, checks the claimed mime type (if not NULL) against the bytes, the
 * limits (lim NULL: defaults) and refuses 0 pixels, then decodes to RGB8
 * (alpha composited on white; GIF and animated WebP: first frame). A stream
 * whose decoded size differs from its header is refused. On failure out is
 * empty. */
int px_image_decode(const uint8_t *data, size_t len, const char *claimed_mime,
                    const px_image_limits *lim, px_image *out, char *err, size_t errlen);

#endif
