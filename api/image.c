/* api/image.c — images in requests: data URLs, base64, header probes, and
 * decoding from memory with libpng, libjpeg-turbo, libwebp and giflib. Every
 * byte is untrusted: probes read only what the length allows, and the limits
 * are checked on the probed size before any pixel buffer exists. libpng and
 * libjpeg report errors by longjmp, so each has one small function holding
 * the setjmp, with all state that outlives a jump in a job struct (never in
 * locals written after setjmp). Library messages are dropped: clients see
 * only our own words. */
#include <assert.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "api/image.h"
#include "px.h"

void px_image_limits_init(px_image_limits *l) {
    l->max_pixels = 33554432;
    l->max_side = 8192;
    l->max_bytes = (size_t)20 << 20;
}

void px_image_free(px_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

/* ---- data URLs --------------------------------------------------------- */

/* ASCII only, whatever the locale. */
static int lower(int c) {
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* RFC 7230 token characters: what a media type and its parameters use. */
static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ieq(const char *a, size_t n, const char *lit) {
    size_t m = strlen(lit);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lit[i]) return 0;
    return 1;
}

int px_data_url_parse(const char *url, size_t len, char *mime, size_t mime_cap, const char **b64,
                      size_t *b64_len, char *err, size_t errlen) {
    if (!url || !mime || mime_cap == 0 || !b64 || !b64_len)
        return px_fail(err, errlen, PX_EINVAL, "bad arguments");
    if (len < 5 || !ieq(url, 5, "data:"))
        return px_fail(err, errlen, PX_EINVAL, "the image URL is not a data: URL");
    size_t p = 5, start = p;
    int slash = 0;
    while (p < len && url[p] != ';' && url[p] != ',') {
        unsigned char c = (unsigned char)url[p];
        if (c == '/' && !slash && p > start) {
            slash = 1;
        } else if (!is_tchar(c)) {
            return px_fail(err, errlen, PX_EINVAL, "invalid media type in the data URL");
        }
        p++;
    }
    size_t mlen = p - start;
    if (mlen == 0 || !slash || url[p - 1] == '/')
        return px_fail(err, errlen, PX_EINVAL, "the data URL has no media type (e.g. image/png)");
    if (mlen >= mime_cap)
        return px_fail(err, errlen, PX_EINVAL, "the data URL's media type is too long");
    /* Parameters (;name=value) may precede the encoding, which must be
     * ";base64" right before the comma: percent-encoded payloads are refused. */
    int base64 = 0;
    while (p < len && url[p] == ';') {
        size_t q = ++p;
        while (p < len && url[p] != ';' && url[p] != ',')
            p++;
        if (p >= len) break;
        if (url[p] == ',' && ieq(url + q, p - q, "base64")) {
            base64 = 1;
            break;
        }
        const char *eq = memchr(url + q, '=', p - q);
        if (!eq || eq == url + q)
            return px_fail(err, errlen, PX_EINVAL, "invalid parameter in the data URL");
        for (size_t i = q; i < p; i++)
            if (url + i != eq && !is_tchar((unsigned char)url[i]))
                return px_fail(err, errlen, PX_EINVAL, "invalid parameter in the data URL");
    }
    if (p >= len) return px_fail(err, errlen, PX_EINVAL, "the data URL has no ',' before its data");
    if (!base64)
        return px_fail(err, errlen, PX_EINVAL,
                       "the data URL is not base64-encoded (expected ';base64,')");
    for (size_t i = 0; i < mlen; i++)
        mime[i] = (char)lower((unsigned char)url[start + i]);
    mime[mlen] = '\0';
    *b64 = url + p + 1;
    *b64_len = len - p - 1;
    return 0;
}

/* ---- base64 ------------------------------------------------------------ */

/* 0..63 for the standard alphabet, 64 for '=', 65 for a line break, 255 else. */
static unsigned char b64_class(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z') return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9') return (unsigned char)(c - '0' + 52);
    if (c == '+') return 62;
    if (c == '/') return 63;
    if (c == '=') return 64;
    if (c == '\r' || c == '\n') return 65;
    return 255;
}

int px_base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen) {
    if (!out || !out_len || (!in && len)) return px_fail(err, errlen, PX_EINVAL, "bad arguments");
    *out = NULL;
    *out_len = 0;
    /* Pass 1: validate and count, so the size is known before allocating. */
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char k = b64_class((unsigned char)in[i]);
        if (k == 65) continue;
        if (k == 255) {
            unsigned char c = (unsigned char)in[i];
            if (c == '-' || c == '_')
                return px_fail(err, errlen, PX_EFORMAT,
                               "invalid base64 character at offset %zu (URL-safe base64 is not "
                               "accepted; use the standard alphabet)",
                               i);
            return px_fail(err, errlen, PX_EFORMAT, "invalid base64 character at offset %zu", i);
        }
        if (k == 64) {
            if (++pad > 2) return px_fail(err, errlen, PX_EFORMAT, "too much base64 padding");
        } else if (pad) {
            return px_fail(err, errlen, PX_EFORMAT, "base64 data after padding at offset %zu", i);
        } else {
            n++;
        }
    }
    if (n == 0) return px_fail(err, errlen, PX_EFORMAT, "empty base64 data");
    if (n % 4 == 1 || (pad && (n + pad) % 4 != 0))
        return px_fail(err, errlen, PX_EFORMAT, "truncated base64 data (bad length)");
    size_t size = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    if (size > max_out)
        return px_fail(err, errlen, PX_ETOOBIG, "the decoded data is larger than %zu bytes",
                       max_out);
    uint8_t *buf = malloc(size);
    if (!buf) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    /* Pass 2: decode; only alphabet characters remain to be seen. */
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char k = b64_class((unsigned char)in[i]);
        if (k >= 64) continue;
        acc = (acc << 6 | k) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (uint8_t)(acc >> bits);
        }
    }
    assert(o == size); /* pass 1 counted the same characters */
    *out = buf;
    *out_len = size;
    return 0;
}

/* ---- header probes ----------------------------------------------------- */

static uint32_t be16(const uint8_t *p) {
    return (uint32_t)p[0] << 8 | p[1];
}
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le16(const uint8_t *p) {
    return (uint32_t)p[1] << 8 | p[0];
}
static uint32_t le24(const uint8_t *p) {
    return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | le24(p);
}

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/* Signature, then the IHDR chunk: length 13, "IHDR", width, height (big
 * endian, at most 2^31 - 1), bit depth, color type. */
static int probe_png(const uint8_t *d, size_t n, int *w, int *h, char *err, size_t errlen) {
    if (n < 8 + 8 + 13) return px_fail(err, errlen, PX_EFORMAT, "truncated PNG header");
    if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0)
        return px_fail(err, errlen, PX_EFORMAT, "corrupt PNG header");
    uint32_t pw = be32(d + 16), ph = be32(d + 20);
    if (pw > INT32_MAX || ph > INT32_MAX)
        return px_fail(err, errlen, PX_EFORMAT, "PNG dimensions out of range");
    unsigned depth = d[24], ct = d[25];
    int ok;
    switch (ct) {
    case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
    case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
    case 2:
    case 4:
    case 6: ok = depth == 8 || depth == 16; break;
    default: ok = 0;
    }
    if (!ok) return px_fail(err, errlen, PX_EFORMAT, "corrupt PNG header (bad color type)");
    *w = (int)pw;
    *h = (int)ph;
    return 0;
}

/* SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
static int is_sof(unsigned m) {
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* Walks the marker segments after SOI up to the first frame header. Each
 * segment's length is checked against what remains before it is skipped. */
static int probe_jpeg(const uint8_t *d, size_t n, int *w, int *h, char *err, size_t errlen) {
    size_t p = 2;
    for (;;) {
        if (p >= n) return px_fail(err, errlen, PX_EFORMAT, "truncated JPEG header");
        if (d[p] != 0xFF) return px_fail(err, errlen, PX_EFORMAT, "corrupt JPEG header");
        while (p < n && d[p] == 0xFF) /* fill bytes */
            p++;
        if (p >= n) return px_fail(err, errlen, PX_EFORMAT, "truncated JPEG header");
        unsigned m = d[p++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; /* no payload */
        if (m == 0x00 || m == 0xD8 || m == 0xD9 || m == 0xDA)
            return px_fail(err, errlen, PX_EFORMAT, "corrupt JPEG header (no frame header)");
        if (n - p < 2) return px_fail(err, errlen, PX_EFORMAT, "truncated JPEG header");
        size_t seg = be16(d + p);
        if (seg < 2) return px_fail(err, errlen, PX_EFORMAT, "corrupt JPEG header");
        if (is_sof(m)) {
            /* length, precision, height, width, components */
            if (seg < 8) return px_fail(err, errlen, PX_EFORMAT, "corrupt JPEG frame header");
            if (n - p < 8) return px_fail(err, errlen, PX_EFORMAT, "truncated JPEG header");
            *h = (int)be16(d + p + 3);
            *w = (int)be16(d + p + 5);
            return 0;
        }
        if (seg > n - p) return px_fail(err, errlen, PX_EFORMAT, "truncated JPEG header");
        p += seg;
    }
}

/* RIFF container, then the first chunk: "VP8 " (lossy key frame: 3-byte
 * tag, start code 9D 01 2A, 14-bit width and height), "VP8L" (signature
 * 0x2F, then width-1 and height-1 in 14 bits each) or "VP8X" (flags,
 * 3 reserved bytes, canvas width-1 and height-1 in 24 bits each). */
static int probe_webp(const uint8_t *d, size_t n, int *w, int *h, char *err, size_t errlen) {
    if (n < 20) return px_fail(err, errlen, PX_EFORMAT, "truncated WebP header");
    const uint8_t *c = d + 20;
    size_t cn = n - 20;
    if (memcmp(d + 12, "VP8 ", 4) == 0) {
        if (cn < 10) return px_fail(err, errlen, PX_EFORMAT, "truncated WebP header");
        if ((c[0] & 1) != 0 || c[3] != 0x9D || c[4] != 0x01 || c[5] != 0x2A)
            return px_fail(err, errlen, PX_EFORMAT, "corrupt WebP header");
        *w = (int)(le16(c + 6) & 0x3FFF);
        *h = (int)(le16(c + 8) & 0x3FFF);
        return 0;
    }
    if (memcmp(d + 12, "VP8L", 4) == 0) {
        if (cn < 5) return px_fail(err, errlen, PX_EFORMAT, "truncated WebP header");
        uint32_t bits = le32(c + 1);
        if (c[0] != 0x2F || bits >> 29 != 0)
            return px_fail(err, errlen, PX_EFORMAT, "corrupt WebP header");
        *w = (int)(bits & 0x3FFF) + 1;
        *h = (int)(bits >> 14 & 0x3FFF) + 1;
        return 0;
    }
    if (memcmp(d + 12, "VP8X", 4) == 0) {
        if (cn < 10) return px_fail(err, errlen, PX_EFORMAT, "truncated WebP header");
        *w = (int)le24(c + 4) + 1;
        *h = (int)le24(c + 7) + 1;
        return 0;
    }
    return px_fail(err, errlen, PX_EFORMAT, "corrupt WebP header");
}

/* "GIF87a"/"GIF89a", the logical screen (width, height, flags, background,
 * aspect), the global color table if flagged, then extension blocks up to
 * the first image descriptor, which must be there. The screen is the size. */
static int probe_gif(const uint8_t *d, size_t n, int *w, int *h, char *err, size_t errlen) {
    if (n < 13) return px_fail(err, errlen, PX_EFORMAT, "truncated GIF header");
    size_t p = 13;
    if (d[10] & 0x80) p += (size_t)3 << ((d[10] & 7) + 1);
    for (;;) {
        if (p >= n) return px_fail(err, errlen, PX_EFORMAT, "truncated GIF header");
        if (d[p] == 0x2C) {
            if (n - p < 10) return px_fail(err, errlen, PX_EFORMAT, "truncated GIF header");
            break;
        }
        if (d[p] == 0x3B) return px_fail(err, errlen, PX_EFORMAT, "the GIF has no image");
        if (d[p] != 0x21) return px_fail(err, errlen, PX_EFORMAT, "corrupt GIF header");
        p += 2; /* introducer and label, then sub-blocks up to an empty one */
        for (;;) {
            if (p >= n) return px_fail(err, errlen, PX_EFORMAT, "truncated GIF header");
            size_t sz = d[p++];
            if (sz == 0) break;
            p += sz;
        }
    }
    *w = (int)le16(d + 6);
    *h = (int)le16(d + 8);
    return 0;
}

int px_image_probe(const uint8_t *data, size_t len, px_image_format *fmt, int *width, int *height,
                   char *err, size_t errlen) {
    if (!fmt || !width || !height || (!data && len))
        return px_fail(err, errlen, PX_EINVAL, "bad arguments");
    *fmt = PX_IMAGE_UNKNOWN;
    *width = *height = 0;
    int w = 0, h = 0, rc;
    px_image_format f;
    if (len == 0) return px_fail(err, errlen, PX_EFORMAT, "empty image data");
    if (len >= 8 && memcmp(data, png_sig, 8) == 0) {
        f = PX_IMAGE_PNG;
        rc = probe_png(data, len, &w, &h, err, errlen);
    } else if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        f = PX_IMAGE_JPEG;
        rc = probe_jpeg(data, len, &w, &h, err, errlen);
    } else if (len >= 16 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0) {
        f = PX_IMAGE_WEBP;
        rc = probe_webp(data, len, &w, &h, err, errlen);
    } else if (len >= 6 && (memcmp(data, "GIF87a", 6) == 0 || memcmp(data, "GIF89a", 6) == 0)) {
        f = PX_IMAGE_GIF;
        rc = probe_gif(data, len, &w, &h, err, errlen);
    } else {
        return px_fail(err, errlen, PX_EFORMAT,
                       "unrecognized image data (PNG, JPEG, WebP and GIF are accepted)");
    }
    if (rc < 0) return rc;
    *fmt = f;
    *width = w;
    *height = h;
    return 0;
}

/* ---- decoders ----------------------------------------------------------
 * Each runs after the probe and the limits; decodes to RGB8 into out and
 * refuses a stream whose decoded size is not the probed w x h. */

/* Composites n_px RGBA8 pixels on white and packs them as RGB8. */
static void composite(uint8_t *px, size_t n_px) {
    /* In place: pixel i's RGB lands at 3i <= 4i, so going forward never
     * overwrites a pixel not yet read. */
    for (size_t i = 0; i < n_px; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned a = s[3], r = s[0], g = s[1], b = s[2];
        uint8_t *o = px + 3 * i;
        o[0] = (uint8_t)((r * a + 255 * (255 - a) + 127) / 255);
        o[1] = (uint8_t)((g * a + 255 * (255 - a) + 127) / 255);
        o[2] = (uint8_t)((b * a + 255 * (255 - a) + 127) / 255);
    }
}

/* Bytes in a (h, w, c) buffer; the caller already bounded w * h. */
static size_t rgb_bytes(int w, int h, int c) {
    return (size_t)w * (size_t)h * (size_t)c;
}

/* Shrinks an RGBA buffer that now holds RGB; keeps the old block if the
 * allocator declines. */
static uint8_t *shrink(uint8_t *buf, size_t size) {
    uint8_t *p = realloc(buf, size);
    return p ? p : buf;
}

/* ---- PNG --------------------------------------------------------------- */

typedef struct png_job {
    const uint8_t *data; /* the encoded file */
    size_t len, pos;     /* its size; read position */
    int w, h;            /* probed size */
    png_structp png;
    png_infop info;
    uint8_t *rgba; /* (h, w, 4) */
    png_bytep *rows;
    int lying; /* IHDR read by libpng differs from the probe */
    int oom;
} png_job;

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos) png_error(png, "truncated");
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

static PNG_NORETURN void png_on_error(png_structp png, png_const_charp msg) {
    (void)msg;
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Ancillary chunks we never use, discarded unread: compressed text and ICC
 * profiles are where decompression bombs hide. */
static const png_byte png_ignored[] = "iCCP\0iTXt\0tEXt\0zTXt\0sPLT\0eXIf\0hIST\0sBIT\0pCAL\0sCAL";

/* The only function with a setjmp for libpng. Everything it allocates or
 * learns goes into *j, so nothing it needs after a jump is a local. */
static int png_run(png_job *j) {
    if (setjmp(png_jmpbuf(j->png))) return -1;
    png_read_info(j->png, j->info);
    if (png_get_image_width(j->png, j->info) != (png_uint_32)j->w ||
        png_get_image_height(j->png, j->info) != (png_uint_32)j->h) {
        j->lying = 1;
        return -1;
    }
    int ct = png_get_color_type(j->png, j->info);
    /* To RGBA8: palette and low-depth gray expanded, tRNS to alpha, 16-bit
     * scaled, gray to RGB, opaque formats given a 0xFF alpha. */
    png_set_expand(j->png);
    png_set_scale_16(j->png);
    if (!(ct & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(j->png);
    if (!(ct & PNG_COLOR_MASK_ALPHA) && !png_get_valid(j->png, j->info, PNG_INFO_tRNS))
        png_set_filler(j->png, 0xFF, PNG_FILLER_AFTER);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    if (png_get_rowbytes(j->png, j->info) != (size_t)j->w * 4) png_error(j->png, "layout");
    j->rgba = malloc(rgb_bytes(j->w, j->h, 4));
    j->rows = malloc((size_t)j->h * sizeof *j->rows);
    if (!j->rgba || !j->rows) {
        j->oom = 1;
        return -1;
    }
    for (int y = 0; y < j->h; y++)
        j->rows[y] = j->rgba + (size_t)y * j->w * 4;
    png_read_image(j->png, j->rows);
    return 0;
}

static int decode_png(const uint8_t *data, size_t len, int w, int h, px_image *out, char *err,
                      size_t errlen) {
    png_job j = {.data = data, .len = len, .w = w, .h = h};
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
    if (!j.png) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    j.info = png_create_info_struct(j.png);
    if (!j.info) {
        png_destroy_read_struct(&j.png, NULL, NULL);
        return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    }
    png_set_read_fn(j.png, &j, png_read_mem);
    png_set_user_limits(j.png, (png_uint_32)w, (png_uint_32)h);
    png_set_chunk_cache_max(j.png, 64);
    png_set_chunk_malloc_max(j.png, (png_alloc_size_t)8 << 20);
    png_set_keep_unknown_chunks(j.png, PNG_HANDLE_CHUNK_NEVER, png_ignored,
                                (int)(sizeof png_ignored / 5));
    int rc = png_run(&j);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    free(j.rows);
    if (rc < 0) {
        free(j.rgba);
        if (j.oom) return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
        if (j.lying) return px_fail(err, errlen, PX_EFORMAT, "corrupt PNG (inconsistent header)");
        return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated PNG data");
    }
    composite(j.rgba, (size_t)w * h);
    out->rgb = shrink(j.rgba, rgb_bytes(w, h, 3));
    out->width = w;
    out->height = h;
    return 0;
}

/* ---- JPEG -------------------------------------------------------------- */

/* Progressive JPEGs can carry thousands of tiny scans that each cost a pass
 * over the coefficients (libjpeg-turbo's "LJT-01-003"); real files use < 20. */
#define JPEG_MAX_SCANS 500

typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr prog;
    jmp_buf jb;
    const uint8_t *data;
    size_t len;
    int w, h;      /* probed size */
    int created;   /* cinfo needs jpeg_destroy_decompress */
    uint8_t *rgb;  /* (h, w, 3) */
    uint8_t *cmyk; /* one (w, 4) row for CMYK/YCCK files */
    int lying, oom, scans;
} jpeg_job;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_job *j = c->client_data;
    longjmp(j->jb, 1);
}

/* Warnings that mean the data is damaged (truncated file, bad entropy
 * codes) end the decode; libjpeg would otherwise fill the rest with gray. */
static void jpeg_on_message(j_common_ptr c, int level) {
    if (level >= 0) return; /* trace messages */
    switch (c->err->msg_code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_BOGUS_ICC: return; /* harmless, common in the wild */
    default: jpeg_on_error(c);
    }
}

static void jpeg_on_output(j_common_ptr c) {
    (void)c;
}

static void jpeg_on_progress(j_common_ptr c) {
    jpeg_job *j = c->client_data;
    if (c->is_decompressor && ((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
        j->scans = 1;
        longjmp(j->jb, 1);
    }
}

/* The only function with a setjmp for libjpeg; state lives in *j. */
static int jpeg_run(jpeg_job *j) {
    if (setjmp(j->jb)) return -1;
    jpeg_create_decompress(&j->cinfo);
    j->created = 1;
    j->cinfo.progress = &j->prog;
    jpeg_mem_src(&j->cinfo, j->data, (unsigned long)j->len);
    jpeg_read_header(&j->cinfo, TRUE);
    if (j->cinfo.image_width != (JDIMENSION)j->w || j->cinfo.image_height != (JDIMENSION)j->h) {
        j->lying = 1;
        return -1;
    }
    int cmyk = j->cinfo.jpeg_color_space == JCS_CMYK || j->cinfo.jpeg_color_space == JCS_YCCK;
    j->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&j->cinfo);
    if (j->cinfo.output_width != (JDIMENSION)j->w || j->cinfo.output_height != (JDIMENSION)j->h ||
        j->cinfo.output_components != (cmyk ? 4 : 3)) {
        j->lying = 1;
        return -1;
    }
    j->rgb = malloc(rgb_bytes(j->w, j->h, 3));
    j->cmyk = cmyk ? malloc((size_t)j->w * 4) : NULL;
    if (!j->rgb || (cmyk && !j->cmyk)) {
        j->oom = 1;
        return -1;
    }
    /* Photoshop (Adobe marker) writes CMYK inverted: 255 means no ink. */
    int inverted = j->cinfo.saw_Adobe_marker;
    while (j->cinfo.output_scanline < j->cinfo.output_height) {
        uint8_t *dst = j->rgb + (size_t)j->cinfo.output_scanline * j->w * 3;
        JSAMPROW row = cmyk ? j->cmyk : dst;
        if (jpeg_read_scanlines(&j->cinfo, &row, 1) != 1) return -1;
        if (!cmyk) continue;
        for (int x = 0; x < j->w; x++) {
            const uint8_t *s = j->cmyk + 4 * x;
            unsigned k = inverted ? s[3] : 255u - s[3];
            for (int c = 0; c < 3; c++) {
                unsigned v = inverted ? s[c] : 255u - s[c];
                dst[3 * x + c] = (uint8_t)((v * k + 127) / 255);
            }
        }
    }
    jpeg_finish_decompress(&j->cinfo); /* reads to EOI: a cut file fails here */
    return 0;
}

static int decode_jpeg(const uint8_t *data, size_t len, int w, int h, px_image *out, char *err,
                       size_t errlen) {
    jpeg_job *j = calloc(1, sizeof *j);
    if (!j) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    j->data = data;
    j->len = len;
    j->w = w;
    j->h = h;
    j->cinfo.err = jpeg_std_error(&j->jerr);
    j->cinfo.client_data = j; /* kept by jpeg_create_decompress */
    j->jerr.error_exit = jpeg_on_error;
    j->jerr.emit_message = jpeg_on_message;
    j->jerr.output_message = jpeg_on_output;
    j->prog.progress_monitor = jpeg_on_progress;
    int rc = jpeg_run(j);
    if (j->created) jpeg_destroy_decompress(&j->cinfo);
    free(j->cmyk);
    if (rc < 0) {
        free(j->rgb);
        int oom = j->oom, lying = j->lying, scans = j->scans;
        free(j);
        if (oom) return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
        if (lying) return px_fail(err, errlen, PX_EFORMAT, "corrupt JPEG (inconsistent header)");
        if (scans)
            return px_fail(err, errlen, PX_EFORMAT, "the JPEG has more than %d scans",
                           JPEG_MAX_SCANS);
        return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated JPEG data");
    }
    out->rgb = j->rgb;
    out->width = w;
    out->height = h;
    free(j);
    return 0;
}

/* ---- WebP -------------------------------------------------------------- */

/* An animation's first frame, rendered on its canvas by WebPAnimDecoder
 * (frames may be smaller than the canvas and offset). */
static int webp_first_frame(const uint8_t *data, size_t len, int w, int h, uint8_t *rgba) {
    WebPAnimDecoderOptions opt;
    if (!WebPAnimDecoderOptionsInit(&opt)) return -1;
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPData wd = {.bytes = data, .size = len};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opt);
    if (!dec) return -1;
    WebPAnimInfo info;
    uint8_t *frame = NULL;
    int ts = 0, rc = -1;
    if (WebPAnimDecoderGetInfo(dec, &info) && info.canvas_width == (uint32_t)w &&
        info.canvas_height == (uint32_t)h && WebPAnimDecoderGetNext(dec, &frame, &ts) && frame) {
        memcpy(rgba, frame, rgb_bytes(w, h, 4));
        rc = 0;
    }
    WebPAnimDecoderDelete(dec);
    return rc;
}

static int decode_webp(const uint8_t *data, size_t len, int w, int h, px_image *out, char *err,
                       size_t errlen) {
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(data, len, &f) != VP8_STATUS_OK)
        return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated WebP data");
    if (f.width != w || f.height != h)
        return px_fail(err, errlen, PX_EFORMAT, "corrupt WebP (inconsistent header)");
    size_t n_px = (size_t)w * h;
    if (!f.has_alpha && !f.has_animation) {
        uint8_t *rgb = malloc(rgb_bytes(w, h, 3));
        if (!rgb) return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
        if (!WebPDecodeRGBInto(data, len, rgb, rgb_bytes(w, h, 3), w * 3)) {
            free(rgb);
            return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated WebP data");
        }
        out->rgb = rgb;
    } else {
        uint8_t *rgba = malloc(rgb_bytes(w, h, 4));
        if (!rgba) return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
        int ok = f.has_animation
                     ? webp_first_frame(data, len, w, h, rgba) == 0
                     : WebPDecodeRGBAInto(data, len, rgba, rgb_bytes(w, h, 4), w * 4) != NULL;
        if (!ok) {
            free(rgba);
            return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated WebP data");
        }
        composite(rgba, n_px);
        out->rgb = shrink(rgba, rgb_bytes(w, h, 3));
    }
    out->width = w;
    out->height = h;
    return 0;
}

/* ---- GIF --------------------------------------------------------------- */

typedef struct gif_mem {
    const uint8_t *data;
    size_t len, pos;
} gif_mem;

static int gif_read(GifFileType *g, GifByteType *buf, int want) {
    gif_mem *m = g->UserData;
    size_t n = want > 0 ? (size_t)want : 0;
    if (n > m->len - m->pos) n = m->len - m->pos;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (int)n;
}

/* Reads records up to the first image descriptor, noting the transparent
 * index of a graphic control extension on the way. */
static int gif_seek_image(GifFileType *g, int *transparent) {
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) return -1;
        if (rt == IMAGE_DESC_RECORD_TYPE) return 0;
        if (rt != EXTENSION_RECORD_TYPE) return -1; /* trailer or junk: no image */
        int code;
        GifByteType *ext = NULL;
        if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) return -1;
        GraphicsControlBlock gcb;
        if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 &&
            DGifExtensionToGCB(ext[0], ext + 1, &gcb) == GIF_OK)
            *transparent = gcb.TransparentColor;
        while (ext)
            if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) return -1;
    }
}

/* Decodes the first frame onto the logical screen: pixels outside the
 * screen are clipped, transparent and uncovered ones are white. */
static int gif_first_frame(GifFileType *g, int w, int h, const px_image_limits *lim, uint8_t *rgb,
                           int *oom) {
    int transparent = NO_TRANSPARENT_COLOR;
    if (gif_seek_image(g, &transparent) < 0 || DGifGetImageDesc(g) == GIF_ERROR) return -1;
    const GifImageDesc *d = &g->Image;
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    if (!cm || !cm->Colors || d->Width <= 0 || d->Height <= 0 || d->Left < 0 || d->Top < 0)
        return -1;
    /* The frame may be larger than the screen; its rows are all decoded. */
    if ((int64_t)d->Width * d->Height > lim->max_pixels) return PX_ETOOBIG;
    GifPixelType *line = malloc((size_t)d->Width);
    if (!line) {
        *oom = 1;
        return -1;
    }
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1, rc = 0;
    for (int p = 0; p < passes && rc == 0; p++) {
        for (int y = d->Interlace ? start[p] : 0; y < d->Height; y += d->Interlace ? step[p] : 1) {
            if (DGifGetLine(g, line, d->Width) == GIF_ERROR) {
                rc = -1;
                break;
            }
            int64_t sy = (int64_t)d->Top + y;
            if (sy >= h) {
                if (!d->Interlace) break; /* the rest is off-screen */
                continue;
            }
            uint8_t *row = rgb + (size_t)sy * w * 3;
            for (int x = 0; x < d->Width && (int64_t)d->Left + x < w; x++) {
                int idx = line[x];
                if (idx == transparent) continue;
                uint8_t *o = row + (size_t)(d->Left + x) * 3;
                if (idx < cm->ColorCount) {
                    o[0] = cm->Colors[idx].Red;
                    o[1] = cm->Colors[idx].Green;
                    o[2] = cm->Colors[idx].Blue;
                } else { /* index past the table: black, as browsers do */
                    o[0] = o[1] = o[2] = 0;
                }
            }
        }
    }
    free(line);
    return rc;
}

static int decode_gif(const uint8_t *data, size_t len, int w, int h, const px_image_limits *lim,
                      px_image *out, char *err, size_t errlen) {
    gif_mem m = {.data = data, .len = len};
    int gerr = 0, oom = 0;
    GifFileType *g = DGifOpen(&m, gif_read, &gerr);
    if (!g) return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated GIF data");
    if (g->SWidth != w || g->SHeight != h) {
        DGifCloseFile(g, &gerr);
        return px_fail(err, errlen, PX_EFORMAT, "corrupt GIF (inconsistent header)");
    }
    uint8_t *rgb = malloc(rgb_bytes(w, h, 3));
    if (!rgb) {
        DGifCloseFile(g, &gerr);
        return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
    }
    memset(rgb, 255, rgb_bytes(w, h, 3));
    int rc = gif_first_frame(g, w, h, lim, rgb, &oom);
    DGifCloseFile(g, &gerr);
    if (rc < 0) {
        free(rgb);
        if (oom) return px_fail(err, errlen, PX_ENOMEM, "out of memory decoding the image");
        if (rc == PX_ETOOBIG)
            return px_fail(err, errlen, PX_ETOOBIG, "the GIF's first frame is too large");
        return px_fail(err, errlen, PX_EFORMAT, "corrupt or truncated GIF data");
    }
    out->rgb = rgb;
    out->width = w;
    out->height = h;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

static const char *const fmt_names[] = {"unknown", "PNG", "JPEG", "WebP", "GIF"};

static px_image_format mime_format(const char *m) {
    size_t n = strlen(m);
    if (ieq(m, n, "image/png")) return PX_IMAGE_PNG;
    if (ieq(m, n, "image/jpeg") || ieq(m, n, "image/jpg") || ieq(m, n, "image/pjpeg"))
        return PX_IMAGE_JPEG;
    if (ieq(m, n, "image/webp")) return PX_IMAGE_WEBP;
    if (ieq(m, n, "image/gif")) return PX_IMAGE_GIF;
    return PX_IMAGE_UNKNOWN;
}

/* The client's own mime string, echoed only if short and made of token
 * characters (it ends up in a JSON error body). */
static const char *safe_mime(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > 64) return "another type";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)m[i]) && m[i] != '/') return "another type";
    return m;
}

/* Everything short of decoding: size, claimed type, header, dimensions. */
static int image_check(const uint8_t *data, size_t len, const char *claimed_mime,
                       const px_image_limits *lim, px_image_format *fmt, int *w, int *h, char *err,
                       size_t errlen) {
    if (!data && len) return px_fail(err, errlen, PX_EINVAL, "bad arguments");
    if (len > lim->max_bytes)
        return px_fail(err, errlen, PX_ETOOBIG, "the image is larger than %zu bytes",
                       lim->max_bytes);
    px_image_format claimed = PX_IMAGE_UNKNOWN;
    if (claimed_mime) {
        claimed = mime_format(claimed_mime);
        if (claimed == PX_IMAGE_UNKNOWN)
            return px_fail(err, errlen, PX_ENOTSUP,
                           "unsupported image type %s (PNG, JPEG, WebP and GIF are accepted)",
                           safe_mime(claimed_mime));
    }
    int rc = px_image_probe(data, len, fmt, w, h, err, errlen);
    if (rc < 0) return rc;
    if (claimed_mime && claimed != *fmt)
        return px_fail(err, errlen, PX_EINVAL, "the image is a %s but was sent as %s",
                       fmt_names[*fmt], safe_mime(claimed_mime));
    if (*w <= 0 || *h <= 0)
        return px_fail(err, errlen, PX_EINVAL, "the %s image has no pixels (%dx%d)",
                       fmt_names[*fmt], *w, *h);
    if (*w > lim->max_side || *h > lim->max_side)
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the image is %dx%d; the largest side allowed is %d pixels", *w, *h,
                       lim->max_side);
    if ((int64_t)*w * *h > lim->max_pixels || (uint64_t)*w * (uint64_t)*h > SIZE_MAX / 4)
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the image is %dx%d; at most %lld pixels are allowed", *w, *h,
                       (long long)lim->max_pixels);
    return 0;
}

int px_image_check(const uint8_t *data, size_t len, const char *claimed_mime,
                   const px_image_limits *lim, int *width, int *height, char *err, size_t errlen) {
    px_image_limits def;
    if (!lim) {
        px_image_limits_init(&def);
        lim = &def;
    }
    px_image_format fmt;
    int w = 0, h = 0;
    int rc = image_check(data, len, claimed_mime, lim, &fmt, &w, &h, err, errlen);
    if (width) *width = w;
    if (height) *height = h;
    return rc;
}

int px_image_decode(const uint8_t *data, size_t len, const char *claimed_mime,
                    const px_image_limits *lim, px_image *out, char *err, size_t errlen) {
    if (!out || (!data && len)) return px_fail(err, errlen, PX_EINVAL, "bad arguments");
    out->width = out->height = 0;
    out->rgb = NULL;
    px_image_limits def;
    if (!lim) {
        px_image_limits_init(&def);
        lim = &def;
    }
    px_image_format fmt;
    int w, h;
    int rc = image_check(data, len, claimed_mime, lim, &fmt, &w, &h, err, errlen);
    if (rc < 0) return rc;
    switch (fmt) {
    case PX_IMAGE_PNG: rc = decode_png(data, len, w, h, out, err, errlen); break;
    case PX_IMAGE_JPEG: rc = decode_jpeg(data, len, w, h, out, err, errlen); break;
    case PX_IMAGE_WEBP: rc = decode_webp(data, len, w, h, out, err, errlen); break;
    case PX_IMAGE_GIF: rc = decode_gif(data, len, w, h, lim, out, err, errlen); break;
    default: rc = px_fail(err, errlen, PX_EFORMAT, "unrecognized image data");
    }
    if (rc < 0) {
        px_image_free(out);
        return rc;
    }
    assert(out->rgb && out->width == w && out->height == h);
    return 0;
}
