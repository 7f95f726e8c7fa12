/* image.c — tests of api/image.c: data URLs and base64 (table-driven, with
 * the message each error must carry), header probes on every prefix of
 * real files, limits checked before decoding, mime mismatch, corrupt bodies,
 * and round trips through images made here with the libraries' encoders
 * (libpng, libjpeg-turbo, libwebp, giflib): exact pixels for lossless
 * formats, a tolerance for JPEG and lossy WebP. */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include "api/image.h"
#include "px.h"
#include "suites.h"

/* ---- a growable byte buffer the encoders write into -------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_le(buf *b, uint32_t v, int bytes) {
    for (int i = 0; i < bytes; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        buf_put(b, &c, 1);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Deterministic bytes (xorshift). */
static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Decodes and checks the size; returns the image (caller frees). */
static px_image must_decode(const buf *b, const char *mime, int w, int h) {
    px_image img;
    char err[256] = "";
    int rc = px_image_decode(b->p, b->n, mime, NULL, &img, err, sizeof err);
    ck_assert_msg(rc == 0, "decode failed: %s", err);
    ck_assert_int_eq(img.width, w);
    ck_assert_int_eq(img.height, h);
    return img;
}

static void expect_fail(const uint8_t *d, size_t n, const char *mime, const px_image_limits *lim,
                        int code, const char *substr) {
    px_image img;
    char err[256] = "";
    int rc = px_image_decode(d, n, mime, lim, &img, err, sizeof err);
    ck_assert_msg(rc == code, "rc %d, expected %d (%s)", rc, code, err);
    ck_assert_ptr_null(img.rgb);
    ck_assert_msg(strstr(err, substr) != NULL, "message '%s' lacks '%s'", err, substr);
}

/* RGBA over white, as the decoder composites. */
static uint8_t over_white(unsigned c, unsigned a) {
    return (uint8_t)((c * a + 255 * (255 - a) + 127) / 255);
}

/* ---- PNG writer -------------------------------------------------------- */

typedef struct png_spec {
    int ct, depth, interlace, trns;
} png_spec;

static void png_write_mem(png_structp png, png_bytep d, size_t n) {
    buf_put(png_get_io_ptr(png), d, n);
}
static void png_flush_mem(png_structp png) {
    (void)png;
}

/* Samples per pixel of a PNG color type. */
static int png_channels(int ct) {
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    default: return 4;
    }
}

/* Everything the writer needs, so its setjmp frame has no live locals. */
typedef struct png_job_w {
    buf *out;
    const png_spec *s;
    int w, h;
    png_bytep *rows;
    png_color *pal;
    int n_pal;
    png_byte *trns_a;
    png_color_16 *trns_c;
} png_job_w;

static void png_encode(const png_job_w *j) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng write failed");
    png_set_write_fn(png, j->out, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)j->w, (png_uint_32)j->h, j->s->depth, j->s->ct,
                 j->s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (j->n_pal) png_set_PLTE(png, info, j->pal, j->n_pal);
    if (j->s->trns) png_set_tRNS(png, info, j->trns_a, j->n_pal, j->n_pal ? NULL : j->trns_c);
    png_write_info(png, info);
    png_write_image(png, j->rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
}

/* Writes a w x h PNG of the given type from pseudo-random samples and fills
 * want (h, w, 3) with the RGB the decoder must return. */
static buf png_make(const png_spec *s, int w, int h, uint8_t *want) {
    buf out = {0};
    int ch = png_channels(s->ct), maxv = (1 << s->depth) - 1;
    int n_pal = s->ct == PNG_COLOR_TYPE_PALETTE ? maxv + 1 : 0;
    png_color pal[256];
    png_byte trns_a[256];
    uint32_t seed = 0x1234567u + (uint32_t)(s->ct * 31 + s->depth);
    for (int i = 0; i < n_pal; i++) {
        pal[i].red = (png_byte)rng_next(&seed);
        pal[i].green = (png_byte)rng_next(&seed);
        pal[i].blue = (png_byte)rng_next(&seed);
        trns_a[i] = (png_byte)(i % 3 == 0 ? 0 : i % 3 == 1 ? 255 : 77);
    }
    png_color_16 trns_c = {.gray = 1, .red = 0, .green = 0, .blue = 0};
    /* Each sample: 8-bit value v; 16-bit files store v * 257 (exact after
     * scaling); low depths store v in [0, maxv]. */
    size_t rowbytes = ((size_t)w * ch * s->depth + 7) / 8;
    uint8_t *img = calloc((size_t)h, rowbytes);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    ck_assert(img && rows);
    for (int y = 0; y < h; y++) {
        rows[y] = img + (size_t)y * rowbytes;
        for (int x = 0; x < w; x++) {
            unsigned v[4];
            for (int c = 0; c < ch; c++) {
                v[c] = rng_next(&seed) & (s->depth >= 8 ? 255u : (unsigned)maxv);
                if (x == 0 && c < ch) v[c] = (unsigned)(y % 2); /* hit the tRNS key */
                size_t bit = ((size_t)x * ch + c) * s->depth;
                if (s->depth == 16) {
                    rows[y][bit / 8] = (uint8_t)v[c];
                    rows[y][bit / 8 + 1] = (uint8_t)v[c];
                } else if (s->depth == 8) {
                    rows[y][bit / 8] = (uint8_t)v[c];
                } else {
                    rows[y][bit / 8] |= (uint8_t)(v[c] << (8 - s->depth - bit % 8));
                }
            }
            uint8_t *o = want + ((size_t)y * w + x) * 3;
            unsigned scale = s->depth >= 8 ? 1 : 255u / (unsigned)maxv;
            switch (s->ct) {
            case PNG_COLOR_TYPE_GRAY: {
                unsigned a = s->trns && v[0] == 1 ? 0 : 255;
                o[0] = o[1] = o[2] = over_white(v[0] * scale, a);
                break;
            }
            case PNG_COLOR_TYPE_PALETTE: {
                unsigned a = s->trns ? trns_a[v[0]] : 255;
                o[0] = over_white(pal[v[0]].red, a);
                o[1] = over_white(pal[v[0]].green, a);
                o[2] = over_white(pal[v[0]].blue, a);
                break;
            }
            case PNG_COLOR_TYPE_GRAY_ALPHA: o[0] = o[1] = o[2] = over_white(v[0], v[1]); break;
            case PNG_COLOR_TYPE_RGB:
                for (int c = 0; c < 3; c++)
                    o[c] = (uint8_t)v[c];
                break;
            default:
                for (int c = 0; c < 3; c++)
                    o[c] = over_white(v[c], v[3]);
            }
        }
    }
    png_job_w job = {&out, s, w, h, rows, pal, n_pal, trns_a, &trns_c};
    png_encode(&job);
    free(rows);
    free(img);
    return out;
}

static const png_spec png_specs[] = {
    {PNG_COLOR_TYPE_GRAY, 1, 0, 0},        {PNG_COLOR_TYPE_GRAY, 2, 0, 0},
    {PNG_COLOR_TYPE_GRAY, 4, 1, 0},        {PNG_COLOR_TYPE_GRAY, 8, 0, 1},
    {PNG_COLOR_TYPE_GRAY, 16, 1, 0},       {PNG_COLOR_TYPE_RGB, 8, 0, 0},
    {PNG_COLOR_TYPE_RGB, 8, 1, 0},         {PNG_COLOR_TYPE_RGB, 16, 0, 0},
    {PNG_COLOR_TYPE_PALETTE, 1, 0, 0},     {PNG_COLOR_TYPE_PALETTE, 2, 1, 1},
    {PNG_COLOR_TYPE_PALETTE, 4, 0, 1},     {PNG_COLOR_TYPE_PALETTE, 8, 0, 0},
    {PNG_COLOR_TYPE_PALETTE, 8, 1, 1},     {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0},
    {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 1, 0}, {PNG_COLOR_TYPE_RGBA, 8, 0, 0},
    {PNG_COLOR_TYPE_RGBA, 8, 1, 0},        {PNG_COLOR_TYPE_RGBA, 16, 0, 0},
};

START_TEST(png_round_trip) {
    const png_spec *s = &png_specs[_i];
    int w = 13, h = 7;
    uint8_t want[13 * 7 * 3];
    buf b = png_make(s, w, h, want);
    px_image img = must_decode(&b, "image/png", w, h);
    for (int i = 0; i < w * h * 3; i++)
        ck_assert_msg(img.rgb[i] == want[i], "ct %d depth %d: byte %d is %d, expected %d", s->ct,
                      s->depth, i, img.rgb[i], want[i]);
    px_image_free(&img);
    ck_assert_ptr_null(img.rgb);
    free(b.p);
}
END_TEST

/* ---- JPEG writer ------------------------------------------------------- */

/* A smooth w x h image with `ch` channels (1 gray, 3 RGB, 4 CMYK). */
static void smooth_fill(uint8_t *px, int w, int h, int ch) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++)
                px[((size_t)y * w + x) * ch + c] = (uint8_t)(20 + 4 * x + 3 * y + 25 * c);
}

static buf jpeg_make(const uint8_t *px, int w, int h, J_COLOR_SPACE cs, int ch, int progressive,
                     const jpeg_scan_info *scans, int n_scans) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &mem, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    if (scans) {
        c.scan_info = scans;
        c.num_scans = n_scans;
    }
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * ch);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    buf b = {0};
    buf_put(&b, mem, size);
    free(mem);
    return b;
}

/* Max and mean |a - b| over n bytes. */
static void diff_stats(const uint8_t *a, const uint8_t *b, size_t n, int *max, double *mean) {
    long sum = 0;
    *max = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > *max) *max = d;
    }
    *mean = (double)sum / (double)n;
}

START_TEST(jpeg_round_trip) {
    enum { W = 24, H = 16 };
    static const struct {
        J_COLOR_SPACE cs;
        int ch, progressive;
    } cases[] = {{JCS_RGB, 3, 0}, {JCS_RGB, 3, 1}, {JCS_GRAYSCALE, 1, 0}, {JCS_CMYK, 4, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t px[W * H * 4], want[W * H * 3];
        smooth_fill(px, W, H, cases[k].ch);
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *s = px + (size_t)i * cases[k].ch;
                /* libjpeg stores CMYK as given and writes an Adobe marker,
                 * so the decoder reads it as inverted: R = C * K / 255. */
                want[i * 3 + c] = cases[k].ch == 1   ? s[0]
                                  : cases[k].ch == 3 ? s[c]
                                                     : (uint8_t)((s[c] * s[3] + 127) / 255);
            }
        buf b = jpeg_make(px, W, H, cases[k].cs, cases[k].ch, cases[k].progressive, NULL, 0);
        px_image img = must_decode(&b, "image/jpeg", W, H);
        int max;
        double mean;
        diff_stats(img.rgb, want, W * H * 3, &max, &mean);
        ck_assert_msg(max <= 16 && mean < 3.0, "case %zu: max diff %d mean %.2f", k, max, mean);
        px_image_free(&img);
        free(b.p);
    }
}
END_TEST

/* A valid progressive script of 631 scans (each AC coefficient refined bit
 * by bit) must be refused by the scan cap, not decoded at length. */
START_TEST(jpeg_scan_bomb) {
    enum { W = 8, H = 8, N = 1 + 63 * 10 };
    static jpeg_scan_info scans[N];
    scans[0] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = 0, .Se = 0, .Ah = 0, .Al = 0};
    int n = 1;
    for (int k = 1; k < 64; k++) {
        scans[n++] = (jpeg_scan_info){.comps_in_scan = 1, .Ss = k, .Se = k, .Ah = 0, .Al = 9};
        for (int al = 8; al >= 0; al--)
            scans[n++] =
                (jpeg_scan_info){.comps_in_scan = 1, .Ss = k, .Se = k, .Ah = al + 1, .Al = al};
    }
    ck_assert_int_eq(n, N);
    uint8_t px[W * H];
    smooth_fill(px, W, H, 1);
    buf b = jpeg_make(px, W, H, JCS_GRAYSCALE, 1, 0, scans, N);
    expect_fail(b.p, b.n, "image/jpeg", NULL, PX_EFORMAT, "more than 500 scans");
    free(b.p);
}
END_TEST

/* ---- WebP -------------------------------------------------------------- */

START_TEST(webp_round_trip) {
    enum { W = 10, H = 6 };
    uint8_t rgb[W * H * 3], rgba[W * H * 4], want_a[W * H * 3];
    uint32_t seed = 99;
    for (int i = 0; i < W * H; i++) {
        for (int c = 0; c < 3; c++)
            rgb[i * 3 + c] = rgba[i * 4 + c] = (uint8_t)rng_next(&seed);
        rgba[i * 4 + 3] = (uint8_t)(i % 4 == 0 ? 0 : i % 4 == 1 ? 255 : rng_next(&seed));
        for (int c = 0; c < 3; c++)
            want_a[i * 3 + c] = over_white(rgba[i * 4 + c], rgba[i * 4 + 3]);
    }
    uint8_t *enc = NULL;
    buf b = {0};
    /* Lossless: exact. */
    b.n = WebPEncodeLosslessRGB(rgb, W, H, W * 3, &enc);
    b.p = enc;
    px_image img = must_decode(&b, "image/webp", W, H);
    ck_assert_mem_eq(img.rgb, rgb, sizeof rgb);
    px_image_free(&img);
    WebPFree(enc);
    b.n = WebPEncodeLosslessRGBA(rgba, W, H, W * 4, &enc);
    b.p = enc;
    img = must_decode(&b, "image/webp", W, H);
    ck_assert_mem_eq(img.rgb, want_a, sizeof want_a);
    px_image_free(&img);
    WebPFree(enc);
    /* Lossy, on a smooth image: within a tolerance. */
    uint8_t sm[W * H * 3];
    smooth_fill(sm, W, H, 3);
    b.n = WebPEncodeRGB(sm, W, H, W * 3, 95, &enc);
    b.p = enc;
    ck_assert_uint_gt(b.n, 0);
    img = must_decode(&b, "image/webp", W, H);
    int max;
    double mean;
    diff_stats(img.rgb, sm, sizeof sm, &max, &mean);
    ck_assert_msg(max <= 24 && mean < 4.0, "lossy WebP: max diff %d mean %.2f", max, mean);
    /* Determinism: the same bytes decode to the same pixels. */
    px_image again = must_decode(&b, NULL, W, H);
    ck_assert_mem_eq(img.rgb, again.rgb, sizeof sm);
    px_image_free(&again);
    px_image_free(&img);
    WebPFree(enc);
}
END_TEST

static void riff_chunk(buf *b, const char *id, const void *d, size_t n) {
    buf_put(b, id, 4);
    put_le(b, (uint32_t)n, 4);
    buf_put(b, d, n);
    if (n & 1) buf_put(b, "", 1);
}

/* Wraps chunks (already framed) in RIFF/WEBP. */
static buf riff_wrap(const buf *chunks) {
    buf b = {0};
    buf_put(&b, "RIFF", 4);
    put_le(&b, (uint32_t)(chunks->n + 4), 4);
    buf_put(&b, "WEBP", 4);
    buf_put(&b, chunks->p, chunks->n);
    return b;
}

/* A lossless frame's "VP8L" chunk (header included) for w x h RGBA. */
static buf vp8l_chunk(const uint8_t *rgba, int w, int h) {
    uint8_t *enc = NULL;
    size_t n = WebPEncodeLosslessRGBA(rgba, w, h, w * 4, &enc);
    ck_assert_uint_gt(n, 20);
    ck_assert(memcmp(enc + 12, "VP8L", 4) == 0);
    buf c = {0};
    buf_put(&c, enc + 12, n - 12);
    WebPFree(enc);
    return c;
}

static buf vp8x_chunk(uint8_t flags, int cw, int ch) {
    buf x = {0}, c = {0};
    put_le(&x, flags, 4);
    put_le(&x, (uint32_t)(cw - 1), 3);
    put_le(&x, (uint32_t)(ch - 1), 3);
    riff_chunk(&c, "VP8X", x.p, x.n);
    free(x.p);
    return c;
}

/* An animation on a 6x5 canvas: frame 1 is 2x2 blue at (2,2), frame 2 all
 * red. Only frame 1 may show, on white. */
START_TEST(webp_animated_first_frame) {
    uint8_t blue[2 * 2 * 4], red[6 * 5 * 4];
    for (int i = 0; i < 4; i++)
        memcpy(blue + 4 * i, (uint8_t[]){0, 0, 255, 255}, 4);
    for (int i = 0; i < 30; i++)
        memcpy(red + 4 * i, (uint8_t[]){255, 0, 0, 255}, 4);
    buf chunks = vp8x_chunk(0x02 | 0x10, 6, 5);
    uint8_t anim[6] = {0, 0, 0, 0, 0, 0};
    riff_chunk(&chunks, "ANIM", anim, sizeof anim);
    const struct {
        const uint8_t *px;
        int x, y, w, h;
    } fr[2] = {{blue, 2, 2, 2, 2}, {red, 0, 0, 6, 5}};
    for (int f = 0; f < 2; f++) {
        buf a = {0};
        put_le(&a, (uint32_t)fr[f].x / 2, 3);
        put_le(&a, (uint32_t)fr[f].y / 2, 3);
        put_le(&a, (uint32_t)fr[f].w - 1, 3);
        put_le(&a, (uint32_t)fr[f].h - 1, 3);
        put_le(&a, 100, 3);
        put_le(&a, 0x02, 1); /* do not blend, no dispose */
        buf v = vp8l_chunk(fr[f].px, fr[f].w, fr[f].h);
        buf_put(&a, v.p, v.n);
        riff_chunk(&chunks, "ANMF", a.p, a.n);
        free(a.p);
        free(v.p);
    }
    buf b = riff_wrap(&chunks);
    free(chunks.p);
    px_image img = must_decode(&b, "image/webp", 6, 5);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++) {
            const uint8_t *o = img.rgb + (y * 6 + x) * 3;
            int in = x >= 2 && x < 4 && y >= 2 && y < 4;
            ck_assert_msg(o[0] == (in ? 0 : 255) && o[1] == (in ? 0 : 255) && o[2] == 255,
                          "pixel %d,%d is %d,%d,%d", x, y, o[0], o[1], o[2]);
        }
    px_image_free(&img);
    free(b.p);
}
END_TEST

/* A VP8X canvas that is not the bitstream's size: a lying header. */
START_TEST(webp_lying_canvas) {
    uint8_t px[5 * 4 * 4];
    memset(px, 200, sizeof px);
    buf chunks = vp8x_chunk(0x10, 6, 4);
    buf v = vp8l_chunk(px, 5, 4);
    buf_put(&chunks, v.p, v.n);
    buf b = riff_wrap(&chunks);
    int w, h;
    px_image_format f;
    ck_assert_int_eq(px_image_probe(b.p, b.n, &f, &w, &h, NULL, 0), 0);
    ck_assert_int_eq(w, 6);
    expect_fail(b.p, b.n, "image/webp", NULL, PX_EFORMAT, "WebP");
    free(v.p);
    free(chunks.p);
    free(b.p);
}
END_TEST

/* ---- GIF writer -------------------------------------------------------- */

static int gif_write_mem(GifFileType *g, const GifByteType *d, int n) {
    buf_put(g->UserData, d, (size_t)n);
    return n;
}

/* A frame: position, size, pixels (indices), interlace, transparent index. */
typedef struct gif_frame {
    int x, y, w, h, interlace, transparent;
    const uint8_t *idx;
} gif_frame;

static const GifColorType gif_pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};

static buf gif_make(int sw, int sh, const gif_frame *fr, int n) {
    buf b = {0};
    int e = 0;
    GifFileType *g = EGifOpen(&b, gif_write_mem, &e);
    ck_assert_ptr_nonnull(g);
    ColorMapObject *cm = GifMakeMapObject(4, gif_pal);
    EGifSetGifVersion(g, true);
    ck_assert_int_eq(EGifPutScreenDesc(g, sw, sh, 2, 0, cm), GIF_OK);
    for (int f = 0; f < n; f++) {
        GraphicsControlBlock gcb = {.DisposalMode = DISPOSAL_UNSPECIFIED,
                                    .TransparentColor = fr[f].transparent};
        GifByteType ext[4];
        size_t len = EGifGCBToExtension(&gcb, ext);
        ck_assert_int_eq(EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, (int)len, ext), GIF_OK);
        ck_assert_int_eq(
            EGifPutImageDesc(g, fr[f].x, fr[f].y, fr[f].w, fr[f].h, fr[f].interlace, NULL), GIF_OK);
        /* Interlaced frames are written in pass order. */
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        for (int p = 0; p < (fr[f].interlace ? 4 : 1); p++)
            for (int y = fr[f].interlace ? start[p] : 0; y < fr[f].h;
                 y += fr[f].interlace ? step[p] : 1)
                ck_assert_int_eq(EGifPutLine(g, (GifPixelType *)(fr[f].idx + y * fr[f].w), fr[f].w),
                                 GIF_OK);
    }
    ck_assert_int_eq(EGifCloseFile(g, &e), GIF_OK);
    GifFreeMapObject(cm);
    return b;
}

/* The expected screen after frame f alone, on white. */
static void gif_expect(const gif_frame *f, int sw, int sh, uint8_t *want) {
    memset(want, 255, (size_t)sw * sh * 3);
    for (int y = 0; y < f->h; y++)
        for (int x = 0; x < f->w; x++) {
            int i = f->idx[y * f->w + x], sx = f->x + x, sy = f->y + y;
            if (i == f->transparent || sx >= sw || sy >= sh) continue;
            uint8_t *o = want + ((size_t)sy * sw + sx) * 3;
            o[0] = gif_pal[i].Red;
            o[1] = gif_pal[i].Green;
            o[2] = gif_pal[i].Blue;
        }
}

START_TEST(gif_first_frame_only) {
    enum { SW = 8, SH = 11 };
    uint8_t a[4 * 9], full[SW * SH];
    for (int i = 0; i < 4 * 9; i++)
        a[i] = (uint8_t)(i % 4); /* index 0 transparent below */
    memset(full, 1, sizeof full);
    for (int interlace = 0; interlace < 2; interlace++) {
        gif_frame fr[2] = {{2, 1, 4, 9, interlace, 0, a}, {0, 0, SW, SH, 0, -1, full}};
        buf b = gif_make(SW, SH, fr, 2);
        uint8_t want[SW * SH * 3];
        gif_expect(&fr[0], SW, SH, want);
        px_image img = must_decode(&b, "image/gif", SW, SH);
        ck_assert_mem_eq(img.rgb, want, sizeof want);
        px_image_free(&img);
        free(b.p);
    }
}
END_TEST

/* A frame reaching past the screen is clipped, not written out of bounds. */
START_TEST(gif_frame_clipped) {
    uint8_t a[6 * 5];
    for (int i = 0; i < 6 * 5; i++)
        a[i] = (uint8_t)(1 + i % 3);
    gif_frame fr = {5, 3, 6, 5, 0, -1, a};
    buf b = gif_make(8, 6, &fr, 1);
    uint8_t want[8 * 6 * 3];
    gif_expect(&fr, 8, 6, want);
    px_image img = must_decode(&b, "image/gif", 8, 6);
    ck_assert_mem_eq(img.rgb, want, sizeof want);
    ck_assert_int_eq(img.rgb[(5 * 8 + 7) * 3], gif_pal[a[2 * 6 + 2]].Red);
    px_image_free(&img);
    free(b.p);
}
END_TEST

/* ---- data URLs and base64 ---------------------------------------------- */

START_TEST(data_url_cases) {
    static const struct {
        const char *url;
        const char *mime; /* expected, or NULL: an error */
        const char *payload_or_msg;
    } t[] = {
        {"data:image/png;base64,AAAA", "image/png", "AAAA"},
        {"DATA:Image/PNG;BASE64,QQ==", "image/png", "QQ=="},
        {"data:image/jpeg;name=a.jpg;base64,", "image/jpeg", ""},
        {"http://169.254.169.254/x.png", NULL, "not a data: URL"},
        {"data:image/png,AAAA", NULL, "not base64"},
        {"data:image/png;charset=utf-8,AAAA", NULL, "not base64"},
        {"data:;base64,AAAA", NULL, "no media type"},
        {"data:image;base64,AAAA", NULL, "no media type"},
        {"data:image/;base64,AAAA", NULL, "no media type"},
        {"data:/png;base64,AAAA", NULL, "media type"},
        {"data:", NULL, "no media type"},
        {"dat", NULL, "not a data: URL"},
        {"data:image/png;base64", NULL, "no ','"},
        {"data:image/ png;base64,AA", NULL, "invalid media type"},
        {"data:image/png/x;base64,AA", NULL, "invalid media type"},
        {"data:image/png;base64x,AA", NULL, "invalid parameter"},
        {"data:image/png;=x;base64,AA", NULL, "invalid parameter"},
        {"data:image/png;a=<b>;base64,AA", NULL, "invalid parameter"},
        {"data:image/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;base64,AA", NULL,
         "too long"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char mime[48] = "unset", err[128] = "";
        const char *p = NULL;
        size_t n = 99;
        int rc = px_data_url_parse(t[i].url, strlen(t[i].url), mime, sizeof mime, &p, &n, err,
                                   sizeof err);
        if (t[i].mime) {
            ck_assert_msg(rc == 0, "%s: %s", t[i].url, err);
            ck_assert_str_eq(mime, t[i].mime);
            ck_assert_uint_eq(n, strlen(t[i].payload_or_msg));
            ck_assert(memcmp(p, t[i].payload_or_msg, n) == 0);
        } else {
            ck_assert_msg(rc == PX_EINVAL, "%s: rc %d", t[i].url, rc);
            ck_assert_msg(strstr(err, t[i].payload_or_msg), "%s: '%s'", t[i].url, err);
        }
    }
    /* The length bounds the parse: "data:image" is all there is. */
    char mime[32], err[128];
    const char *p;
    size_t n;
    ck_assert_int_lt(px_data_url_parse("data:image/png;base64,AAAA", 10, mime, sizeof mime, &p, &n,
                                       err, sizeof err),
                     0);
}
END_TEST

START_TEST(base64_cases) {
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        size_t max;
        const char *out; /* expected bytes, or NULL: an error */
        const char *msg;
    } t[] = {
        {"QQ==", 0, 16, "A", NULL},
        {"QQ", 0, 16, "A", NULL},
        {"QUI=", 0, 16, "AB", NULL},
        {"QUJD", 0, 16, "ABC", NULL},
        {"QUJD\r\nREVG\n", 0, 16, "ABCDEF", NULL},
        {"QU\nJ\nD", 0, 16, "ABC", NULL},
        {"QUJD", 0, 3, "ABC", NULL},
        {"", 0, 16, NULL, "empty"},
        {"\r\n", 0, 16, NULL, "empty"},
        {"QUJD!", 0, 16, NULL, "invalid base64 character at offset 4"},
        {"QU JD", 0, 16, NULL, "invalid base64 character at offset 2"},
        {"QU\0JD", 5, 16, NULL, "invalid base64 character at offset 2"},
        {"QUJ\tD", 0, 16, NULL, "offset 3"},
        {"QUJ-", 0, 16, NULL, "URL-safe"},
        {"QU_D", 0, 16, NULL, "URL-safe"},
        {"%2B", 0, 16, NULL, "offset 0"},
        {"Q", 0, 16, NULL, "truncated"},
        {"QUJDR", 0, 16, NULL, "truncated"},
        {"QQ=", 0, 16, NULL, "truncated"},
        {"QUJD=", 0, 16, NULL, "truncated"},
        {"QQ===", 0, 16, NULL, "too much"},
        {"QQ==QQ==", 0, 16, NULL, "after padding"},
        {"=QUJ", 0, 16, NULL, "after padding"},
        {"QUJD", 0, 2, NULL, "larger than 2 bytes"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t *out = (uint8_t *)"x";
        size_t n = 99;
        char err[160] = "";
        size_t len = t[i].len ? t[i].len : strlen(t[i].in);
        int rc = px_base64_decode(t[i].in, len, t[i].max, &out, &n, err, sizeof err);
        if (t[i].out) {
            ck_assert_msg(rc == 0, "case %zu: %s", i, err);
            ck_assert_uint_eq(n, strlen(t[i].out));
            ck_assert(memcmp(out, t[i].out, n) == 0);
            free(out);
        } else {
            ck_assert_msg(rc < 0, "case %zu accepted", i);
            ck_assert_ptr_null(out);
            ck_assert_msg(strstr(err, t[i].msg), "case %zu: '%s' lacks '%s'", i, err, t[i].msg);
        }
    }
}
END_TEST

/* Every byte value survives, at every length mod 3 (our own encoder). */
START_TEST(base64_all_bytes) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t src[258];
    for (int i = 0; i < 258; i++)
        src[i] = (uint8_t)(255 - i % 256);
    for (size_t len = 256; len <= 258; len++) {
        char enc[400];
        size_t o = 0;
        for (size_t i = 0; i < len; i += 3) {
            uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < len ? src[i + 1] << 8 : 0) |
                         (i + 2 < len ? src[i + 2] : 0);
            enc[o++] = al[v >> 18];
            enc[o++] = al[v >> 12 & 63];
            enc[o++] = i + 1 < len ? al[v >> 6 & 63] : '=';
            enc[o++] = i + 2 < len ? al[v & 63] : '=';
        }
        uint8_t *out;
        size_t n;
        ck_assert_int_eq(px_base64_decode(enc, o, len, &out, &n, NULL, 0), 0);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(out, src, len);
        free(out);
    }
}
END_TEST

/* ---- probes, limits, lies and damage ----------------------------------- */

static uint32_t crc32_png(const uint8_t *d, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

/* Signature and an IHDR (valid CRC) claiming w x h RGB8, then IEND. */
static buf png_header(uint32_t w, uint32_t h) {
    uint8_t d[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    put_be32(d + 8, 13);
    memcpy(d + 12, "IHDR", 4);
    put_be32(d + 16, w);
    put_be32(d + 20, h);
    d[24] = 8;
    d[25] = 2;
    put_be32(d + 29, crc32_png(d + 12, 17));
    memcpy(d + 37, "IEND", 4);
    put_be32(d + 41, crc32_png(d + 37, 4));
    buf b = {0};
    buf_put(&b, d, sizeof d);
    return b;
}

/* One small file of each kind, for the prefix and damage tests. */
static buf sample(int kind, int *w, int *h) {
    uint8_t want[16 * 8 * 4], px[16 * 8 * 4];
    *w = 16;
    *h = 8;
    smooth_fill(px, 16, 8, 4);
    uint8_t *enc = NULL;
    size_t n = 0;
    buf b = {0};
    switch (kind) {
    case 0: {
        png_spec s = {PNG_COLOR_TYPE_RGBA, 8, 1, 0};
        return png_make(&s, 16, 8, want);
    }
    case 1: return jpeg_make(px, 16, 8, JCS_RGB, 3, 0, NULL, 0);
    case 2: return jpeg_make(px, 16, 8, JCS_RGB, 3, 1, NULL, 0);
    case 3: n = WebPEncodeRGB(px, 16, 8, 48, 80, &enc); break;
    case 4: n = WebPEncodeLosslessRGBA(px, 16, 8, 64, &enc); break;
    default: {
        for (int i = 0; i < 16 * 8; i++)
            px[i] = (uint8_t)(i % 4);
        gif_frame fr = {0, 0, 16, 8, kind == 6, 3, px};
        return gif_make(16, 8, &fr, 1);
    }
    }
    ck_assert_uint_gt(n, 0);
    buf_put(&b, enc, n);
    WebPFree(enc);
    return b;
}
#define N_SAMPLES 7

/* Every prefix: the probe reports the true size or fails; a decode fails,
 * or (a GIF without its trailer, a PNG without IEND) gives the same pixels. */
START_TEST(truncated_prefixes) {
    int w, h;
    buf b = sample(_i, &w, &h);
    px_image full = must_decode(&b, NULL, w, h);
    int failed_half = 0;
    for (size_t k = 0; k < b.n; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exact size: ASan sees overreads */
        memcpy(cut, b.p, k);
        px_image_format f;
        int pw, ph;
        char err[160];
        if (px_image_probe(cut, k, &f, &pw, &ph, err, sizeof err) == 0) {
            ck_assert_int_eq(pw, w);
            ck_assert_int_eq(ph, h);
        } else {
            ck_assert_int_eq(f, PX_IMAGE_UNKNOWN);
        }
        px_image img;
        int rc = px_image_decode(cut, k, NULL, NULL, &img, err, sizeof err);
        if (rc == 0) {
            ck_assert_mem_eq(img.rgb, full.rgb, (size_t)w * h * 3);
            px_image_free(&img);
        } else {
            ck_assert_ptr_null(img.rgb);
            ck_assert(strstr(err, "bad arguments") == NULL);
            if (k == b.n / 2) failed_half = 1;
        }
        free(cut);
    }
    ck_assert_msg(failed_half, "sample %d: half a file decoded", _i);
    px_image_free(&full);
    free(b.p);
}
END_TEST

START_TEST(limits_before_decode) {
    /* The crafted headers carry no pixel data: reaching a decoder would
     * give "corrupt", so ETOOBIG shows the limit came first. */
    buf b = png_header(100000, 100000);
    expect_fail(b.p, b.n, "image/png", NULL, PX_ETOOBIG, "largest side allowed is 8192");
    free(b.p);
    b = png_header(8000, 8000);
    expect_fail(b.p, b.n, NULL, NULL, PX_ETOOBIG, "at most 33554432 pixels");
    free(b.p);
    b = png_header(0x80000000u, 1);
    expect_fail(b.p, b.n, NULL, NULL, PX_EFORMAT, "out of range");
    free(b.p);
    static const uint8_t jpeg_sof[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF,
                                       0xC2, 0x00, 0x11, 0x08, 0xFF, 0xDC, 0xFF, 0xDC, 0x03};
    expect_fail(jpeg_sof, sizeof jpeg_sof, "image/jpeg", NULL, PX_ETOOBIG, "65500x65500");
    uint8_t gif[] = {'G', 'I',  'F', '8', '9', 'a', 0xFF, 0xFF, 0xFF, 0xFF, 0, 0,
                     0,   0x2C, 0,   0,   0,   0,   0xFF, 0xFF, 0xFF, 0xFF, 0};
    expect_fail(gif, sizeof gif, "image/gif", NULL, PX_ETOOBIG, "65535x65535");
    buf chunks = vp8x_chunk(0, 16384, 16384), v = riff_wrap(&chunks);
    expect_fail(v.p, v.n, "image/webp", NULL, PX_ETOOBIG, "16384x16384");
    free(chunks.p);
    free(v.p);
    /* Caller limits on a real image: side, pixels, bytes. */
    int w, h;
    b = sample(0, &w, &h);
    px_image_limits lim;
    px_image_limits_init(&lim);
    lim.max_side = 15;
    expect_fail(b.p, b.n, NULL, &lim, PX_ETOOBIG, "largest side allowed is 15");
    px_image_limits_init(&lim);
    lim.max_pixels = 16 * 8 - 1;
    expect_fail(b.p, b.n, NULL, &lim, PX_ETOOBIG, "at most 127 pixels");
    px_image_limits_init(&lim);
    lim.max_bytes = b.n - 1;
    expect_fail(b.p, b.n, NULL, &lim, PX_ETOOBIG, "larger than");
    lim.max_bytes = b.n;
    px_image img;
    ck_assert_int_eq(px_image_decode(b.p, b.n, NULL, &lim, &img, NULL, 0), 0);
    px_image_free(&img);
    free(b.p);
}
END_TEST

START_TEST(zero_pixels) {
    buf b = png_header(0, 5);
    expect_fail(b.p, b.n, "image/png", NULL, PX_EINVAL, "no pixels (0x5)");
    free(b.p);
    static const uint8_t jpeg_dnl[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x00,
                                       0x00, 0x10, 0x03, 1,    0x11, 0,    2,    0x11, 0};
    expect_fail(jpeg_dnl, sizeof jpeg_dnl, NULL, NULL, PX_EINVAL, "no pixels (16x0)");
    uint8_t gif[] = {'G', 'I',  'F', '8', '7', 'a', 0, 0, 0, 0, 0, 0,
                     0,   0x2C, 0,   0,   0,   0,   0, 0, 0, 0, 0};
    expect_fail(gif, sizeof gif, NULL, NULL, PX_EINVAL, "no pixels (0x0)");
}
END_TEST

START_TEST(mime_checked) {
    int w, h;
    buf png = sample(0, &w, &h), jpg = sample(1, &w, &h), gif = sample(5, &w, &h);
    expect_fail(png.p, png.n, "image/jpeg", NULL, PX_EINVAL,
                "the image is a PNG but was sent as image/jpeg");
    expect_fail(jpg.p, jpg.n, "image/png", NULL, PX_EINVAL, "is a JPEG but was sent as image/png");
    expect_fail(gif.p, gif.n, "image/webp", NULL, PX_EINVAL, "is a GIF but");
    expect_fail(png.p, png.n, "image/bmp", NULL, PX_ENOTSUP, "unsupported image type image/bmp");
    expect_fail(png.p, png.n, "image/png\"<x>", NULL, PX_ENOTSUP, "another type");
    expect_fail(png.p, png.n, "", NULL, PX_ENOTSUP, "unsupported");
    static const uint8_t bmp[] = "BM\x36\0\0\0\0\0\0\0\x36\0\0\0";
    expect_fail(bmp, sizeof bmp, NULL, NULL, PX_EFORMAT, "unrecognized image data");
    expect_fail(bmp, 0, NULL, NULL, PX_EFORMAT, "empty");
    px_image img;
    ck_assert_int_eq(px_image_decode(png.p, png.n, "IMAGE/PNG", NULL, &img, NULL, 0), 0);
    px_image_free(&img);
    ck_assert_int_eq(px_image_decode(jpg.p, jpg.n, "image/jpg", NULL, &img, NULL, 0), 0);
    px_image_free(&img);
    free(png.p);
    free(jpg.p);
    free(gif.p);
}
END_TEST

/* Finds chunk `id` in a PNG; returns the offset of its data. */
static size_t png_find(const buf *b, const char *id, uint32_t *len) {
    for (size_t p = 8; p + 12 <= b->n;) {
        uint32_t n = (uint32_t)b->p[p] << 24 | (uint32_t)b->p[p + 1] << 16 |
                     (uint32_t)b->p[p + 2] << 8 | b->p[p + 3];
        if (memcmp(b->p + p + 4, id, 4) == 0) {
            *len = n;
            return p + 8;
        }
        p += 12 + n;
    }
    ck_abort_msg("no %s chunk", id);
    return 0;
}

START_TEST(corrupt_body) {
    int w, h;
    /* PNG: IDAT bytes damaged, once with a stale CRC, once with a fixed one
     * so zlib is what notices. */
    buf b = sample(0, &w, &h);
    uint32_t n;
    size_t off = png_find(&b, "IDAT", &n);
    for (uint32_t i = 2; i < n; i += 3)
        b.p[off + i] ^= 0x5A;
    expect_fail(b.p, b.n, "image/png", NULL, PX_EFORMAT, "corrupt or truncated PNG");
    put_be32(b.p + off + n, crc32_png(b.p + off - 4, n + 4));
    expect_fail(b.p, b.n, "image/png", NULL, PX_EFORMAT, "corrupt or truncated PNG");
    free(b.p);
    /* JPEG: the frame header claims more rows than the scan holds. */
    b = sample(1, &w, &h);
    size_t sof = 2;
    while (!(b.p[sof] == 0xFF && b.p[sof + 1] == 0xC0))
        sof++;
    b.p[sof + 5] = 0; /* height 8 -> 64 */
    b.p[sof + 6] = 64;
    expect_fail(b.p, b.n, NULL, NULL, PX_EFORMAT, "corrupt or truncated JPEG");
    free(b.p);
    /* JPEG: scan data replaced by a marker soup, EOI kept. */
    b = sample(1, &w, &h);
    size_t sos = 2;
    while (!(b.p[sos] == 0xFF && b.p[sos + 1] == 0xDA))
        sos++;
    size_t data = sos + 2 + ((size_t)b.p[sos + 2] << 8 | b.p[sos + 3]);
    for (size_t i = data; i + 2 < b.n; i++)
        b.p[i] = (uint8_t)(i % 2 ? 0xFF : 0xD3);
    expect_fail(b.p, b.n, NULL, NULL, PX_EFORMAT, "JPEG");
    free(b.p);
    /* Lossless WebP: bitstream garbled. */
    b = sample(4, &w, &h);
    for (size_t i = 26; i < b.n; i++)
        b.p[i] = (uint8_t)(0xA5 ^ i);
    expect_fail(b.p, b.n, NULL, NULL, PX_EFORMAT, "WebP");
    free(b.p);
    /* GIF: LZW minimum code size of 12 (at most 8 is valid). */
    b = sample(5, &w, &h);
    size_t desc = 13 + 12; /* screen + 4-color table */
    while (b.p[desc] != 0x2C)
        desc++;
    b.p[desc + 10] = 12;
    expect_fail(b.p, b.n, NULL, NULL, PX_EFORMAT, "GIF");
    free(b.p);
}
END_TEST

/* Same bytes, same pixels, for every sample (JPEG's IDCT included). */
START_TEST(deterministic) {
    for (int k = 0; k < N_SAMPLES; k++) {
        int w, h;
        buf b = sample(k, &w, &h);
        px_image a = must_decode(&b, NULL, w, h), c = must_decode(&b, NULL, w, h);
        ck_assert_mem_eq(a.rgb, c.rgb, (size_t)w * h * 3);
        px_image_free(&a);
        px_image_free(&c);
        free(b.p);
    }
}
END_TEST

START_TEST(probe_formats) {
    static const px_image_format want[N_SAMPLES] = {PX_IMAGE_PNG,  PX_IMAGE_JPEG, PX_IMAGE_JPEG,
                                                    PX_IMAGE_WEBP, PX_IMAGE_WEBP, PX_IMAGE_GIF,
                                                    PX_IMAGE_GIF};
    for (int k = 0; k < N_SAMPLES; k++) {
        int w, h, pw = 0, ph = 0;
        px_image_format f;
        buf b = sample(k, &w, &h);
        ck_assert_int_eq(px_image_probe(b.p, b.n, &f, &pw, &ph, NULL, 0), 0);
        ck_assert_int_eq(f, want[k]);
        ck_assert_int_eq(pw, 16);
        ck_assert_int_eq(ph, 8);
        free(b.p);
    }
    /* A JPEG segment length running past the data. */
    static const uint8_t seg[] = {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0, 0};
    px_image_format f;
    int w, h;
    char err[128];
    ck_assert_int_eq(px_image_probe(seg, sizeof seg, &f, &w, &h, err, sizeof err), PX_EFORMAT);
    ck_assert(strstr(err, "truncated JPEG"));
}
END_TEST

/* Random damage to valid files (a small in-test fuzz run): every decode
 * returns cleanly, and a success has the probed size. ASan checks reads. */
START_TEST(mutations) {
    int w, h;
    buf b = sample(_i, &w, &h);
    uint32_t seed = 0xC0FFEEu + (uint32_t)_i;
    int failed = 0;
    for (int round = 0; round < 300; round++) {
        uint8_t *m = malloc(b.n);
        memcpy(m, b.p, b.n);
        int flips = 1 + (int)(rng_next(&seed) % 4);
        for (int k = 0; k < flips; k++)
            m[rng_next(&seed) % b.n] = (uint8_t)rng_next(&seed);
        px_image img;
        char err[160];
        px_image_format f;
        int pw, ph;
        int rc = px_image_decode(m, b.n, NULL, NULL, &img, err, sizeof err);
        if (rc == 0) {
            ck_assert_int_eq(px_image_probe(m, b.n, &f, &pw, &ph, NULL, 0), 0);
            ck_assert_int_eq(img.width, pw);
            ck_assert_int_eq(img.height, ph);
            ck_assert_ptr_nonnull(img.rgb);
            px_image_free(&img);
        } else {
            ck_assert_ptr_null(img.rgb);
            ck_assert(err[0] != '\0');
            failed++;
        }
        free(m);
    }
    ck_assert_int_gt(failed, 0); /* the damage is noticed at least sometimes */
    free(b.p);
}
END_TEST

/* A first frame far larger than its 4x4 screen is refused before its rows
 * are decoded (the LZW data is absent: decoding would say "corrupt"). */
START_TEST(gif_huge_frame) {
    static const uint8_t gif[] = {'G',  'I', 'F', '8', '9',  'a',  4,    0,    4,   0,
                                  0x80, 0,   0,   0,   0,    0,    255,  255,  255, 0x2C,
                                  0,    0,   0,   0,   0xFF, 0xFF, 0xFF, 0xFF, 0,   2};
    expect_fail(gif, sizeof gif, "image/gif", NULL, PX_ETOOBIG, "first frame is too large");
}
END_TEST

Suite *px_suite_image(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_add_loop_test(tc, png_round_trip, 0, (int)(sizeof png_specs / sizeof png_specs[0]));
    tcase_add_test(tc, jpeg_round_trip);
    tcase_add_test(tc, jpeg_scan_bomb);
    tcase_add_test(tc, webp_round_trip);
    tcase_add_test(tc, webp_animated_first_frame);
    tcase_add_test(tc, webp_lying_canvas);
    tcase_add_test(tc, gif_first_frame_only);
    tcase_add_test(tc, gif_frame_clipped);
    tcase_add_test(tc, data_url_cases);
    tcase_add_test(tc, base64_cases);
    tcase_add_test(tc, base64_all_bytes);
    tcase_add_loop_test(tc, truncated_prefixes, 0, N_SAMPLES);
    tcase_add_test(tc, limits_before_decode);
    tcase_add_test(tc, zero_pixels);
    tcase_add_test(tc, mime_checked);
    tcase_add_test(tc, corrupt_body);
    tcase_add_test(tc, deterministic);
    tcase_add_test(tc, probe_formats);
    tcase_add_loop_test(tc, mutations, 0, N_SAMPLES);
    tcase_add_test(tc, gif_huge_frame);
    suite_add_tcase(s, tc);
    return s;
}
