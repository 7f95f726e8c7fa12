/* fuzz_image.c — libFuzzer target for images in requests: data URL parsing,
 * base64, the header probe, decoding (PNG, JPEG, WebP, GIF) and the vision
 * tower's preprocessing of whatever decodes.
 *
 * Input: byte 0 picks the path (bits 0-1) and the claimed mime type (bits
 * 2-4); the rest is, by path, the raw image bytes, a data: URL, or bare
 * base64 text. Limits are small (4 Mpixel, 4096 a side) so huge headers are
 * refused at once. Checks: errors are negative PX_E* with a message;
 * px_image_check refuses what decoding refuses before decoding, with the
 * same code; a decoded image matches its probe, its check and the limits;
 * preprocessing gives finite values. The tiny random mmproj is written and loaded once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/image.h"
#include "engine/pool.h"
#include "engine/px.h"
#include "engine/vision.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_pool *pool;
static px_vision *vision;
static float *pixels; /* (3, S, S) */
static px_image_limits lim;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[] = "/tmp/px-fuzz-mmproj-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) fz_fail(__FILE__, __LINE__, "mkstemp", "cannot create %s", path);
    close(fd);
    char err[256] = "";
    px_vision_mk_opts o;
    px_vision_mk_opts_tiny(&o);
    pool = px_pool_create(1);
    if (!pool || px_vision_mk_write(&o, path, err, sizeof err) != 0)
        fz_fail(__FILE__, __LINE__, "mmproj", "cannot write the mmproj: %s", err);
    vision = px_vision_load(path, pool, err, sizeof err);
    unlink(path);
    if (!vision) fz_fail(__FILE__, __LINE__, "mmproj", "cannot load the mmproj: %s", err);
    int s = px_vision_config_get(vision)->image_size;
    pixels = malloc(sizeof *pixels * 3 * (size_t)s * (size_t)s);
    if (!pixels) abort();
    px_image_limits_init(&lim);
    lim.max_pixels = 4 << 20;
    lim.max_side = 4096;
    lim.max_bytes = 1 << 20;
    return 0;
}

static const char *const mimes[8] = {NULL,        "image/png", "image/jpeg", "image/webp",
                                     "image/gif", "image/jpg", "IMAGE/PNG",  "image/x-icon"};

static void check_err(int rc, const char *err) {
    FZ_LOG("refused (%d): %s\n", rc, err);
    FZ_CHECK(rc < 0 && rc >= PX_ENOTSUP, "rc %d", rc);
    FZ_CHECK(err[0] != '\0', "rc %d with no message", rc);
}

/* Decodes bytes as `mime` claims and preprocesses the result. */
static void decode(const uint8_t *b, size_t n, const char *mime) {
    char err[256] = "";
    px_image_format fmt;
    int pw = -1, ph = -1;
    int prc = px_image_probe(b, n, &fmt, &pw, &ph, err, sizeof err);
    if (prc < 0) check_err(prc, err);

    /* The event loop's cheap check makes the same decisions, short of
     * decoding: a refusal there is the same refusal here. */
    int cw = -1, chh = -1;
    int crc = px_image_check(b, n, mime, &lim, &cw, &chh, err, sizeof err);
    if (crc < 0) check_err(crc, err);

    px_image img = {0};
    err[0] = '\0';
    int rc = px_image_decode(b, n, mime, &lim, &img, err, sizeof err);
    FZ_CHECK(crc == 0 || rc == crc, "check %d but decode %d", crc, rc);
    if (rc < 0) {
        check_err(rc, err);
        FZ_CHECK(img.rgb == NULL && img.width == 0 && img.height == 0, "rc %d left an image", rc);
        return;
    }
    FZ_CHECK(prc == 0, "decoded an image the probe refused");
    FZ_CHECK(cw == img.width && chh == img.height, "check %dx%d", cw, chh);
    FZ_CHECK(img.rgb != NULL && img.width == pw && img.height == ph, "%dx%d vs probe %dx%d",
             img.width, img.height, pw, ph);
    FZ_CHECK(img.width <= lim.max_side && img.height <= lim.max_side &&
                 (int64_t)img.width * img.height <= lim.max_pixels,
             "%dx%d over the limits", img.width, img.height);
    /* Touch every byte so ASan sees a short buffer. */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++)
        sum += img.rgb[i];
    (void)sum;

    FZ_LOG("decoded %dx%d\n", img.width, img.height);
    rc = px_vision_preprocess(vision, img.rgb, img.width, img.height, pixels);
    FZ_CHECK(rc == 0, "preprocess %dx%d: %d", img.width, img.height, rc);
    int s = px_vision_config_get(vision)->image_size;
    for (size_t i = 0; i < 3 * (size_t)s * (size_t)s; i++)
        FZ_CHECK(isfinite(pixels[i]) && fabsf(pixels[i]) < 1e3f, "pixel %zu = %g", i,
                 (double)pixels[i]);
    px_image_free(&img);
}

/* Bare base64 text, then the image bytes. */
static void from_base64(const char *s, size_t n, const char *mime) {
    char err[256] = "";
    uint8_t *bin = NULL;
    size_t len = 0;
    int rc = px_base64_decode(s, n, lim.max_bytes, &bin, &len, err, sizeof err);
    if (rc < 0) {
        check_err(rc, err);
        FZ_CHECK(bin == NULL && len == 0, "rc %d left output", rc);
        return;
    }
    FZ_CHECK(bin != NULL && len > 0 && len <= lim.max_bytes && len <= n / 4 * 3 + 2,
             "%zu bytes from %zu characters", len, n);
    decode(bin, len, mime);
    free(bin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    size_t n;
    const uint8_t *rest = fz_bytes(&in, SIZE_MAX, &n);
    const char *mime = mimes[(sel >> 2) & 7];
    switch (sel & 3) {
    case 0:
    case 3: decode(rest, n, mime); break;
    case 1: {
        char m[64], err[256] = "";
        const char *b64 = NULL;
        size_t b64_len = 0;
        int rc =
            px_data_url_parse((const char *)rest, n, m, sizeof m, &b64, &b64_len, err, sizeof err);
        if (rc < 0) {
            check_err(rc, err);
            break;
        }
        FZ_CHECK(b64 >= (const char *)rest && b64 + b64_len == (const char *)rest + n,
                 "payload outside the URL");
        FZ_CHECK(strlen(m) > 0 && strlen(m) < sizeof m, "mime");
        from_base64(b64, b64_len, m);
        break;
    }
    case 2: from_base64((const char *)rest, n, mime); break;
    }
    return 0;
}
