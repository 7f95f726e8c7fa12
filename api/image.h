/* image.h — images in requests: data URLs, base64, and decoding PNG, JPEG,
 * WebP and GIF (first frame) to RGB8 with limits checked before any pixel
 * buffer is allocated (dimensions come from the header probe).
 * Pure functions over caller buffers; any thread. Decoders are the Debian
 * libraries (libpng, libjpeg-turbo, libwebp, giflib), driven from memory
 * with their error paths caught (no longjmp past our frames, no exit). */
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
    int64_t max_pixels;  /* width * height (default 33,554,432) */
    int max_side;        /* pixels on either side (default 8192) */
    size_t max_bytes;    /* encoded bytes (default 20 MiB) */
} px_image_limits;
void px_image_limits_init(px_image_limits *l);

/* A decoded image: rgb is (height, width, 3) bytes, malloc'd. */
typedef struct px_image {
    int width, height;
    uint8_t *rgb;
} px_image;
void px_image_free(px_image *img);

/* Splits "data:<mime>;base64,<payload>": copies the mime type (lower-case)
 * into mime, points *b64 at the payload. 0, or -1 with err (not a data URL,
 * not base64, mime too long). */
int px_data_url_parse(const char *url, size_t len, char *mime, size_t mime_cap, const char **b64,
                      size_t *b64_len, char *err, size_t errlen);
/* Decodes standard base64 (padding optional, no whitespace other than
 * line breaks) into a malloc'd buffer of at most max_out bytes. 0 or -1. */
int px_base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen);
/* Reads format and dimensions from the header only. 0 or -1. */
int px_image_probe(const uint8_t *data, size_t len, px_image_format *fmt, int *width, int *height,
                   char *err, size_t errlen);
/* Probes, checks limits (and that the claimed mime type, if not NULL,
 * matches the bytes), then decodes to RGB8 (alpha composited on white).
 * 0 or -1 with a client-safe message. */
int px_image_decode(const uint8_t *data, size_t len, const char *claimed_mime,
                    const px_image_limits *lim, px_image *out, char *err, size_t errlen);

#endif
