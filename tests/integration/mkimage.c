/* mkimage.c — writes a deterministic test image for the integration tests.
 *
 *   mkimage png|jpeg W H SEED > FILE
 *
 * A smooth colour field with a seeded pattern (so equal seeds give equal
 * bytes and different seeds different images), encoded with libpng or
 * libjpeg-turbo to stdout. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t */
#include <png.h>

static uint8_t *pixels(int w, int h, unsigned seed) {
    uint8_t *p = malloc((size_t)w * (size_t)h * 3);
    if (!p) return NULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * (size_t)w + (size_t)x) * 3;
            q[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            q[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            q[2] = (uint8_t)((x * 7 + y * 13 + seed * 97) & 0xff);
        }
    return p;
}

static int write_png(const uint8_t *px, int w, int h) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return 1;
    }
    png_init_io(png, stdout);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(px + (size_t)y * (size_t)w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

static int write_jpeg(const uint8_t *px, int w, int h) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr); /* errors exit: acceptable in a test tool */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, stdout);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: mkimage png|jpeg W H SEED > FILE\n");
        return 2;
    }
    int w = atoi(argv[2]), h = atoi(argv[3]);
    if (w <= 0 || h <= 0 || w > 20000 || h > 20000) {
        fprintf(stderr, "mkimage: bad size\n");
        return 2;
    }
    uint8_t *px = pixels(w, h, (unsigned)strtoul(argv[4], NULL, 10));
    if (!px) return 1;
    int rc = strcmp(argv[1], "png") == 0    ? write_png(px, w, h)
             : strcmp(argv[1], "jpeg") == 0 ? write_jpeg(px, w, h)
                                            : 2;
    free(px);
    return rc;
}
