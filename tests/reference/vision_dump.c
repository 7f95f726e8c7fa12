/* vision_dump.c — encodes a deterministic random image through pollux's
 * vision tower and writes what the numpy reference needs to recompute it.
 *
 *   vision_dump MMPROJ SEED W H RGB_OUT EMBD_OUT [--threads N] [--repeat N]
 *
 * RGB_OUT gets the W x H x 3 image bytes (so the reference needs no copy of
 * this generator), EMBD_OUT the (n_tokens_out, n_embd_out) float32
 * embeddings. Prints the encode time of each repeat (for benchmarks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#include "px.h"
#include "vision.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: vision_dump MMPROJ SEED W H RGB_OUT EMBD_OUT [--threads N] "
                        "[--repeat N]\n");
        return 2;
    }
    unsigned long long seed = strtoull(argv[2], NULL, 10);
    int w = atoi(argv[3]), h = atoi(argv[4]), nth = 1, repeat = 1;
    for (int i = 7; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            nth = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = atoi(argv[i + 1]);
    }
    if (w <= 0 || h <= 0 || w > 8192 || h > 8192 || repeat < 1) {
        fprintf(stderr, "vision_dump: bad size or repeat\n");
        return 2;
    }
    char err[512];
    px_pool *pool = px_pool_create(nth);
    px_vision *v = pool ? px_vision_load(argv[1], pool, err, sizeof err) : NULL;
    if (!v) {
        fprintf(stderr, "vision_dump: %s\n", pool ? err : "no pool");
        px_pool_destroy(pool);
        return 1;
    }
    const px_vision_config *c = px_vision_config_get(v);
    size_t n_rgb = (size_t)w * (size_t)h * 3, S = (size_t)c->image_size;
    size_t n_out = (size_t)c->n_tokens_out * (size_t)c->n_embd_out;
    uint8_t *rgb = malloc(n_rgb);
    float *pix = malloc(sizeof(float) * 3 * S * S), *out = malloc(sizeof(float) * n_out);
    int rc = rgb && pix && out ? 0 : 1;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n_rgb && !rc; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        rgb[i] = (uint8_t)(s >> 56);
    }
    for (int r = 0; r < repeat && !rc; r++) {
        double t0 = now();
        rc = px_vision_preprocess(v, rgb, w, h, pix) < 0 ||
             px_vision_encode(v, pix, out, err, sizeof err) < 0;
        if (rc)
            fprintf(stderr, "vision_dump: %s\n", err);
        else
            printf("encode %d: %.3f s (%d threads)\n", r, now() - t0, nth);
    }
    if (!rc && (write_file(argv[5], rgb, n_rgb) < 0 ||
                write_file(argv[6], out, sizeof(float) * n_out) < 0)) {
        fprintf(stderr, "vision_dump: cannot write the outputs\n");
        rc = 1;
    }
    free(rgb);
    free(pix);
    free(out);
    px_vision_free(v);
    px_pool_destroy(pool);
    return rc;
}
