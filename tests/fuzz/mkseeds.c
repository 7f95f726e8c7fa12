/* mkseeds.c — writes the seed corpora of the fuzz targets (tests/fuzz/
 * corpus/<target>/): small images of every format and flavour the decoders
 * handle, written with the same libraries; data URLs and base64 of them;
 * GGUF files (vocabularies, a tiny model, a tiny mmproj, every value type);
 * OpenAI request bodies; tokenizer strings and id lists; renderer inputs.
 * Each file starts with the selector byte its target expects (none for
 * fuzz_gguf). Deterministic: the same build writes the same bytes.
 *   tests/fuzz/mkseeds OUTDIR        (then minimise with libFuzzer -merge=1) */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include "engine/gguf.h"
#include "engine/mkmodel.h"
#include "engine/vision.h"

static const char *outdir;

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void die(const char *what) {
    fprintf(stderr, "mkseeds: %s\n", what);
    exit(1);
}

static void mkdirs(const char *target) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(outdir, 0755) < 0 && errno != EEXIST) die(outdir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) die(path);
}

/* Writes sel (if >= 0) then d[0..n) to OUTDIR/target/name. */
static void seed(const char *target, const char *name, int sel, const void *d, size_t n) {
    char path[4096];
    mkdirs(target);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    if (sel >= 0) fputc(sel, f);
    if (n && fwrite(d, 1, n, f) != n) die(path);
    if (fclose(f) != 0) die(path);
}

static void seed_str(const char *target, const char *name, int sel, const char *s) {
    seed(target, name, sel, s, strlen(s));
}

/* A small w x h RGBA test pattern: gradients and a transparent corner. */
static uint8_t *pattern(int w, int h) {
    uint8_t *px = malloc((size_t)w * h * 4);
    if (!px) abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *o = px + ((size_t)y * w + x) * 4;
            o[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            o[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            o[2] = (uint8_t)((x ^ y) * 16);
            o[3] = x < 2 && y < 2 ? 0 : x == 2 ? 128 : 255;
        }
    return px;
}

/* ---- images ----------------------------------------------------------- */

static void png_write_fn(png_structp png, png_bytep d, size_t n) {
    put(png_get_io_ptr(png), d, n);
}
static void png_flush_fn(png_structp png) {
    (void)png;
}

/* color type, bit depth, interlace; samples taken from the pattern. */
static buf png_make(int w, int h, int ct, int depth, int interlace) {
    buf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) die("libpng");
    uint8_t *px = pattern(w, h);
    int ch = ct == 0 || ct == 3 ? 1 : ct == 4 ? 2 : ct == 2 ? 3 : 4;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    uint8_t *img = calloc((size_t)h, rowbytes);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    if (!img || !rows) abort();
    for (int y = 0; y < h; y++) {
        rows[y] = img + (size_t)y * rowbytes;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                const uint8_t *s = px + ((size_t)y * w + x) * 4;
                unsigned v = ct == 4 && c == 1 ? s[3] : ch == 4 ? s[c] : ch == 3 ? s[c] : s[0];
                size_t bit = ((size_t)x * ch + c) * depth;
                if (depth == 16) {
                    rows[y][bit / 8] = (uint8_t)v;
                    rows[y][bit / 8 + 1] = (uint8_t)(v ^ 0x5A);
                } else if (depth == 8) {
                    rows[y][bit / 8] = (uint8_t)v;
                } else {
                    v >>= 8 - depth;
                    rows[y][bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
                }
            }
    }
    png_set_write_fn(png, &out, png_write_fn, png_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ct,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (ct == 3) {
        png_color pal[256];
        png_byte trns[256];
        int n = 1 << depth;
        for (int i = 0; i < n; i++) {
            pal[i] = (png_color){(png_byte)(i * 37), (png_byte)(i * 91), (png_byte)(255 - i)};
            trns[i] = (png_byte)(i % 3 == 0 ? 0 : 255);
        }
        png_set_PLTE(png, info, pal, n);
        png_set_tRNS(png, info, trns, n, NULL);
    }
    if (ct == 0 && depth == 8) {
        png_color_16 key = {.gray = 0};
        png_set_tRNS(png, info, NULL, 0, &key);
    }
    png_text txt = {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Comment", .text = "seed"};
    png_set_text(png, info, &txt, 1);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(img);
    free(px);
    return out;
}

/* components 1 gray, 3 RGB, 4 CMYK (Adobe marker). */
static buf jpeg_make(int w, int h, int comps, int progressive, int quality) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &mem, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    if (comps == 3) { /* restart markers exercise the RSTn path */
        c.restart_interval = 1;
    }
    jpeg_start_compress(&c, TRUE);
    uint8_t *px = pattern(w, h), *row = malloc((size_t)w * 4);
    if (!row) abort();
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++)
                row[x * comps + k] = px[((size_t)y * w + x) * 4 + (k < 3 ? k : 3)];
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    buf out = {0};
    put(&out, mem, size);
    free(mem);
    free(row);
    free(px);
    return out;
}

static buf webp_make(int w, int h, int lossless, int alpha) {
    uint8_t *px = pattern(w, h), *out = NULL;
    size_t n;
    if (alpha)
        n = lossless ? WebPEncodeLosslessRGBA(px, w, h, w * 4, &out)
                     : WebPEncodeRGBA(px, w, h, w * 4, 75.0f, &out);
    else {
        for (int i = 0; i < w * h; i++) /* pack to RGB in place */
            memmove(px + 3 * i, px + 4 * i, 3);
        n = lossless ? WebPEncodeLosslessRGB(px, w, h, w * 3, &out)
                     : WebPEncodeRGB(px, w, h, w * 3, 75.0f, &out);
    }
    if (!n) die("libwebp");
    buf b = {0};
    put(&b, out, n);
    WebPFree(out);
    free(px);
    return b;
}

static int gif_write_fn(GifFileType *g, const GifByteType *d, int n) {
    put(g->UserData, d, (size_t)n);
    return n;
}

/* A GIF with a 16-colour table; frame (fw, fh) at (left, top) of the
 * screen; optional transparency and interlacing; two frames if `anim`. */
static buf gif_make(int w, int h, int left, int top, int fw, int fh, int transparent, int interlace,
                    int anim) {
    buf out = {0};
    int e = 0;
    GifFileType *g = EGifOpen(&out, gif_write_fn, &e);
    if (!g) die("giflib");
    GifColorType cols[16];
    for (int i = 0; i < 16; i++)
        cols[i] = (GifColorType){(GifByteType)(i * 16), (GifByteType)(255 - i * 16),
                                 (GifByteType)(i * 7)};
    ColorMapObject *cm = GifMakeMapObject(16, cols);
    EGifSetGifVersion(g, true);
    if (EGifPutScreenDesc(g, w, h, 4, 0, cm) == GIF_ERROR) die("gif screen");
    GifByteType *line = malloc((size_t)fw);
    if (!line) abort();
    for (int f = 0; f < (anim ? 2 : 1); f++) {
        if (transparent || anim) {
            GraphicsControlBlock gcb = {.DisposalMode = DISPOSAL_UNSPECIFIED,
                                        .DelayTime = 10,
                                        .TransparentColor = transparent ? 3 : NO_TRANSPARENT_COLOR};
            GifByteType ext[4];
            size_t n = EGifGCBToExtension(&gcb, ext);
            if (EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, (int)n, ext) == GIF_ERROR)
                die("gif gce");
        }
        if (EGifPutImageDesc(g, left, top, fw, fh, interlace, NULL) == GIF_ERROR) die("gif desc");
        for (int y = 0; y < fh; y++) {
            for (int x = 0; x < fw; x++)
                line[x] = (GifByteType)((x + y + f) & 15);
            if (EGifPutLine(g, line, fw) == GIF_ERROR) die("gif line");
        }
    }
    if (EGifCloseFile(g, &e) == GIF_ERROR) die("gif close");
    GifFreeMapObject(cm);
    free(line);
    return out;
}

static char *base64(const uint8_t *d, size_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    if (!o) abort();
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = al[v >> 18];
        *p++ = al[v >> 12 & 63];
        *p++ = i + 1 < n ? al[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? al[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

/* Raw bytes (selector 0, no claim; 4 + 4*k claims mimes[k]), a data URL
 * (selector 1 | claim) and bare base64 (selector 2). */
static void image_seeds(const char *name, const char *mime, int claim, buf b) {
    char fn[128];
    snprintf(fn, sizeof fn, "%s", name);
    seed("fuzz_image", fn, claim << 2, b.p, b.n);
    if (b.n < 2048) {
        char *s = base64(b.p, b.n);
        size_t ul = strlen(s) + 64;
        char *url = malloc(ul);
        if (!url) abort();
        snprintf(url, ul, "data:%s;base64,%s", mime, s);
        snprintf(fn, sizeof fn, "%s.url", name);
        seed_str("fuzz_image", fn, 1 | claim << 2, url);
        snprintf(fn, sizeof fn, "%s.b64", name);
        seed_str("fuzz_image", fn, 2 | claim << 2, s);
        free(url);
        free(s);
    }
    free(b.p);
}

static char *tiny_png_url(void) {
    buf b = png_make(4, 3, 2, 8, 0);
    char *s = base64(b.p, b.n);
    char *url = malloc(strlen(s) + 32);
    if (!url) abort();
    sprintf(url, "data:image/png;base64,%s", s);
    free(s);
    free(b.p);
    return url;
}

static void images(void) {
    image_seeds("png_rgb8", "image/png", 1, png_make(9, 7, 2, 8, 0));
    image_seeds("png_rgba16_i", "image/png", 1, png_make(5, 6, 6, 16, 1));
    image_seeds("png_pal4_trns", "image/png", 0, png_make(11, 3, 3, 4, 0));
    image_seeds("png_pal8_i", "image/png", 1, png_make(8, 8, 3, 8, 1));
    image_seeds("png_gray1", "image/png", 1, png_make(17, 2, 0, 1, 0));
    image_seeds("png_gray8_trns", "image/png", 1, png_make(4, 4, 0, 8, 0));
    image_seeds("png_ga8", "image/png", 1, png_make(3, 5, 4, 8, 0));
    image_seeds("png_rgb16", "image/png", 1, png_make(2, 2, 2, 16, 0));
    image_seeds("jpeg_rgb", "image/jpeg", 2, jpeg_make(16, 9, 3, 0, 80));
    image_seeds("jpeg_prog", "image/jpeg", 2, jpeg_make(10, 10, 3, 1, 60));
    image_seeds("jpeg_gray", "image/jpg", 5, jpeg_make(8, 13, 1, 0, 90));
    image_seeds("jpeg_cmyk", "image/jpeg", 0, jpeg_make(7, 7, 4, 0, 85));
    image_seeds("webp_lossy", "image/webp", 3, webp_make(12, 8, 0, 0));
    image_seeds("webp_lossy_alpha", "image/webp", 3, webp_make(6, 6, 0, 1));
    image_seeds("webp_lossless", "image/webp", 3, webp_make(9, 4, 1, 0));
    image_seeds("webp_lossless_alpha", "image/webp", 0, webp_make(5, 5, 1, 1));
    image_seeds("gif", "image/gif", 4, gif_make(8, 6, 0, 0, 8, 6, 0, 0, 0));
    image_seeds("gif_trns_i", "image/gif", 4, gif_make(10, 10, 2, 1, 6, 9, 1, 1, 0));
    image_seeds("gif_anim", "image/gif", 0, gif_make(6, 4, 0, 0, 6, 4, 1, 0, 1));
    /* Wrong claims and odd URLs. */
    seed_str("fuzz_image", "url_params", 1, "data:image/png;charset=x;name=a.png;base64,iVBORw0K");
    seed_str("fuzz_image", "url_pct", 1, "data:image/png,%89PNG");
    seed_str("fuzz_image", "b64_lines", 2, "R0lG\r\nODlh\nAQAB\nAA==");
}

/* ---- GGUF ------------------------------------------------------------- */

static void gguf_seed(const char *name, px_gguf_writer *w) {
    void *p = NULL;
    size_t n = 0;
    char err[256];
    if (px_gguf_writer_write_mem(w, &p, &n, err, sizeof err) != 0) die(err);
    seed("fuzz_gguf", name, -1, p, n);
    free(p);
    px_gguf_writer_destroy(w);
}

static void file_seed(const char *target, const char *name, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    buf b = {0};
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        put(&b, tmp, k);
    fclose(f);
    seed(target, name, -1, b.p, b.n);
    free(b.p);
}

static void ggufs(void) {
    char err[256], path[] = "/tmp/px-mkseeds-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp");
    close(fd);
    for (int a = 0; a < 2; a++) { /* vocabulary only */
        px_gguf_writer *w = px_gguf_writer_create();
        px_gguf_writer_set_str(w, "general.architecture", a ? "llama" : "gemma3");
        if (px_mkmodel_write_vocab(w, a ? PX_ARCH_LLAMA : PX_ARCH_GEMMA3, 1400) != 0) die("vocab");
        gguf_seed(a ? "vocab_llama" : "vocab_gemma3", w);
    }
    /* Every value type, nested arrays, tensors of several types. */
    px_gguf_writer *w = px_gguf_writer_create();
    uint8_t u8 = 200;
    int8_t i8 = -5;
    uint16_t u16 = 60000;
    int16_t i16 = -300;
    int64_t i64 = -1234567890123LL;
    uint64_t u64 = 1ULL << 40;
    double f64 = 2.5;
    px_gguf_writer_set_u32(w, "general.alignment", 64);
    px_gguf_writer_set_val(w, "t.u8", PX_GGUF_UINT8, &u8);
    px_gguf_writer_set_val(w, "t.i8", PX_GGUF_INT8, &i8);
    px_gguf_writer_set_val(w, "t.u16", PX_GGUF_UINT16, &u16);
    px_gguf_writer_set_val(w, "t.i16", PX_GGUF_INT16, &i16);
    px_gguf_writer_set_i32(w, "t.i32", -7);
    px_gguf_writer_set_f32(w, "t.f32", 0.5f);
    px_gguf_writer_set_bool(w, "t.bool", true);
    px_gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo");
    px_gguf_writer_set_val(w, "t.u64", PX_GGUF_UINT64, &u64);
    px_gguf_writer_set_val(w, "t.i64", PX_GGUF_INT64, &i64);
    px_gguf_writer_set_val(w, "t.f64", PX_GGUF_FLOAT64, &f64);
    const int32_t arr[] = {1, -2, 3};
    px_gguf_writer_set_arr(w, "t.arr_i32", PX_GGUF_INT32, arr, 3);
    const char *const strs[] = {"a", "", "ccc"};
    px_gguf_writer_set_arr_str(w, "t.arr_str", strs, 3);
    float f[64];
    for (int i = 0; i < 64; i++)
        f[i] = (float)i / 8.0f - 4.0f;
    int64_t ne1[4] = {64, 1, 1, 1}, ne2[4] = {32, 2, 1, 1}, ne3[4] = {4, 2, 2, 1};
    px_gguf_writer_add_tensor(w, "f32", PX_DTYPE_F32, 1, ne1, f);
    uint8_t q[256] = {0};
    px_gguf_writer_add_tensor(w, "q8_0", PX_DTYPE_Q8_0, 2, ne2, q);
    px_gguf_writer_add_tensor(w, "f32_3d", PX_DTYPE_F32, 3, ne3, f);
    gguf_seed("types", w);

    /* A tiny model: small enough to keep the corpus small. */
    px_mkmodel_opts o;
    px_mkmodel_opts_tiny(&o, PX_ARCH_GEMMA3);
    o.n_vocab = 1400;
    o.n_embd = 32;
    o.n_layer = 1;
    o.n_head = 2;
    o.n_head_kv = 1;
    o.head_dim = 16;
    o.n_ff = 32;
    o.n_ctx = 64;
    o.embd_type = PX_DTYPE_Q8_0;
    o.wtype = PX_DTYPE_Q8_0;
    if (px_mkmodel_write(&o, path, err, sizeof err) != 0) die(err);
    file_seed("fuzz_gguf", "model_gemma3", path);
    px_mkmodel_opts_tiny(&o, PX_ARCH_LLAMA);
    o.n_vocab = 1400;
    o.n_embd = 32;
    o.n_layer = 1;
    o.n_head = 2;
    o.n_head_kv = 2;
    o.head_dim = 16;
    o.n_ff = 32;
    o.n_ctx = 64;
    o.embd_type = PX_DTYPE_Q8_0;
    o.wtype = PX_DTYPE_F16;
    o.tied_output = 1;
    if (px_mkmodel_write(&o, path, err, sizeof err) != 0) die(err);
    file_seed("fuzz_gguf", "model_llama", path);
    /* A tiny mmproj: 8-pixel images of 4-pixel patches. */
    px_vision_mk_opts v;
    px_vision_mk_opts_tiny(&v);
    v.image_size = 8;
    v.patch_size = 4;
    v.n_embd = 32;
    v.n_ff = 32;
    v.n_layer = 1;
    v.n_head = 2;
    v.n_embd_out = 32;
    v.scale_factor = 2;
    if (px_vision_mk_write(&v, path, err, sizeof err) != 0) die(err);
    file_seed("fuzz_gguf", "mmproj", path);
    unlink(path);
}

/* ---- API bodies ------------------------------------------------------- */

static void bodies(void) {
    /* selector: bits 0-1 endpoint (chat, completions, tokenize,
     * detokenize), 2-3 template, 4 images on, 5 max_tokens default, 7
     * deferred image decoding. */
    seed_str("fuzz_openai", "chat_min", 0x00,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    seed_str("fuzz_openai", "chat_full", 0x20,
             "{\"model\":\"tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"Hello <start_of_turn>model\\n\\u00e9\"},"
             "{\"role\":\"assistant\",\"content\":\"Hi.\"},{\"role\":\"user\",\"content\":"
             "[{\"type\":\"text\",\"text\":\"and?\"}]}],\"max_tokens\":16,\"temperature\":0.7,"
             "\"top_p\":0.9,\"top_k\":40,\"seed\":3,\"stop\":[\"\\n\",\"END\"],\"n\":2,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"logprobs\":true,"
             "\"top_logprobs\":2,\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
             "\"user\":\"u\"}");
    seed_str("fuzz_openai", "chat_llama2", 0x04,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"sys\"},"
             "{\"role\":\"user\",\"content\":\"[INST] x\"}],\"max_completion_tokens\":5}");
    seed_str("fuzz_openai", "chat_chatml", 0x08,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
             "{\"role\":\"user\",\"content\":\"<|im_end|>\"}],\"stop\":\"x\"}");
    char *url = tiny_png_url();
    char body[4096];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
             "\"text\":\"What is this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\","
             "\"detail\":\"auto\"}},{\"type\":\"text\",\"text\":\"and\"},{\"type\":\"image_url\","
             "\"image_url\":{\"url\":\"%s\"}}]}]}",
             url, url);
    seed_str("fuzz_openai", "chat_images", 0x10, body);
    seed_str("fuzz_openai", "chat_images_deferred", 0x90, body);
    seed_str("fuzz_openai", "chat_image_off", 0x00, body);
    free(url);
    url = NULL;
    seed_str("fuzz_openai", "chat_image_remote", 0x10,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
             "\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\"}}]}]}");
    seed_str("fuzz_openai", "completion", 0x01,
             "{\"model\":\"m\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"echo\":true,"
             "\"logprobs\":3,\"suffix\":null,\"best_of\":1,\"stream\":false}");
    seed_str(
        "fuzz_openai", "completion_ids", 0x21,
        "{\"model\":\"m\",\"prompt\":[2,100,200,300],\"n\":3,\"stop\":[\"a\",\"b\",\"c\",\"d\"]}");
    seed_str("fuzz_openai", "completion_list", 0x05, "{\"prompt\":[\"<s>hi\"],\"timeout\":3}");
    seed_str("fuzz_openai", "tokenize", 0x02,
             "{\"content\":\"Hello <bos> world\",\"add_special\":true,\"parse_special\":false,"
             "\"with_pieces\":true}");
    seed_str("fuzz_openai", "detokenize", 0x03, "{\"tokens\":[2,4,260,261,300,1399]}");
    seed_str("fuzz_openai", "bad_dup", 0x00, "{\"model\":\"a\",\"model\":\"b\",\"messages\":[]}");

    /* Gemini: bits 0-1 method (generate, stream, count), 2-3 template, 4
     * images on, 5 max_tokens default, 6 model name follows, 7 deferred
     * image decoding. */
    seed_str("fuzz_gemini", "generate", 0x00,
             "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"Hello\"}]}]}");
    seed_str("fuzz_gemini", "stream_full", 0x21,
             "{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},\"contents\":["
             "{\"role\":\"user\",\"parts\":[{\"text\":\"Hi\"}]},{\"role\":\"model\","
             "\"parts\":[{\"text\":\"Hello.\"}]},{\"role\":\"user\",\"parts\":[{\"text\":"
             "\"More <start_of_turn>\"}]}],\"generationConfig\":{\"temperature\":0.5,"
             "\"topP\":0.9,\"topK\":20,\"maxOutputTokens\":12,\"stopSequences\":[\"x\"],"
             "\"candidateCount\":2,\"seed\":7,\"responseLogprobs\":true,\"logprobs\":2,"
             "\"presencePenalty\":0.1,\"frequencyPenalty\":0.2},\"safetySettings\":[]}");
    seed_str("fuzz_gemini", "snake", 0x04,
             "{\"contents\":[{\"parts\":[{\"text\":\"a\"}]}],\"generation_config\":"
             "{\"max_output_tokens\":3,\"stop_sequences\":[]}}");
    seed_str("fuzz_gemini", "count", 0x02,
             "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"count me\"}]}]}");
    seed_str("fuzz_gemini", "count_wrapped", 0x0A,
             "{\"generateContentRequest\":{\"model\":\"models/tiny\",\"contents\":[{\"parts\":"
             "[{\"text\":\"x\"}]}]}}");
    seed_str("fuzz_gemini", "model_name", 0x40, "\x0bgemma-3-1b\xff{\"contents\":[]}");
    url = tiny_png_url();
    snprintf(body, sizeof body,
             "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"What?\"},"
             "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"}},"
             "{\"inline_data\":{\"mime_type\":\"image/png\",\"data\":\"%s\"}}]}]}",
             url + 22, url + 22);
    seed_str("fuzz_gemini", "images", 0x10, body);
    seed_str("fuzz_gemini", "images_deferred", 0x90, body);
    free(url);
}

/* ---- tokenizer and renderer ---------------------------------------------- */

static void strings(void) {
    /* selector: bit 0 llama, 1 parse special, 2 add BOS, 3 decode. */
    seed_str("fuzz_tokenizer", "plain", 0x00, "Hello world, the quick brown fox.");
    seed_str("fuzz_tokenizer", "special", 0x02,
             "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n<bos><unk>");
    seed_str("fuzz_tokenizer", "llama_bos", 0x05, "  two  spaces\tand\ttabs\n\nnew lines ");
    seed_str("fuzz_tokenizer", "llama_special", 0x07, "<s>[INST] x [/INST]</s><unk>");
    seed_str("fuzz_tokenizer", "utf8", 0x00,
             "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 "
             "\xff\xc0\x80\xed\xa0\x80");
    int32_t ids[] = {0,    1,    2,   3,          4,          5,        10,       100,
                     200,  259,  260, 261,        262,        300,      700,      1399,
                     1535, 1536, -1,  0x7FFFFFFF, 0x40000001, 0xE2 + 3, 0x96 + 3, 0x81 + 3};
    seed("fuzz_tokenizer", "ids_gemma", 0x28, ids, sizeof ids);
    seed("fuzz_tokenizer", "ids_llama_special", 0x1B, ids, sizeof ids);

    /* Renderer: flags, n_top, choice u32, 3 counts u32, model, token, logprob,
     * top tokens with logprobs, text_offset, error message, param, text. */
    buf b = {0};
    uint8_t hdr[2] = {0x32, 2};
    put(&b, hdr, 2);
    uint32_t u[4] = {0, 10, 5, 3};
    put(&b, u, sizeof u);
    uint8_t l = 4;
    put(&b, &l, 1);
    put(&b, "tiny", 4);
    l = 3;
    put(&b, &l, 1);
    put(&b, "\xe2\x96\x81", 3);
    float lp = -0.25f;
    put(&b, &lp, 4);
    for (int i = 0; i < 2; i++) {
        l = 2;
        put(&b, &l, 1);
        put(&b, i ? "\xc3\xa9" : "a\"", 2);
        lp = i ? -INFINITY : -1.5f;
        put(&b, &lp, 4);
    }
    uint32_t off = 7;
    put(&b, &off, 4);
    l = 9;
    put(&b, &l, 1);
    put(&b, "bad \xff\x01\"\\", 9);
    l = 4;
    put(&b, &l, 1);
    put(&b, "a[0]", 4);
    const char *text = "Hello \"world\"\n\t\\ caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8 \x7f \x01";
    put(&b, text, strlen(text));
    seed("fuzz_render", "chat_logprobs", -1, b.p, b.n);
    b.p[0] = 0x07; /* completions, first, finish "stop" */
    seed("fuzz_render", "completion", -1, b.p, b.n);
    free(b.p);
    seed_str("fuzz_render", "short", 0x00, "");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    images();
    ggufs();
    bodies();
    strings();
    return 0;
}
