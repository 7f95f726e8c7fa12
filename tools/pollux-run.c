/* pollux-run — runs one prompt through a model from the command line.
 *
 *   pollux-run [-m FILE] (-p TEXT | --prompt-ids 1,2,3) [-n N] [--temp T]
 *              [--top-k K] [--top-p P] [--seed S] [--threads N] [--ctx N]
 *              [--ids] [--ignore-eos] [--dump-logits FILE]
 *              [--mmproj FILE (--image FILE | --image-rgb FILE,W,H)...]
 *
 * Images: each "img" in --prompt-ids stands for the next image's embedding
 * rows (write <start_of_image> and <end_of_image> ids around it); with -p,
 * each <start_of_image> in the text is followed by the next image's rows
 * and <end_of_image>. --image takes a PNG, JPEG, WebP or GIF file,
 * --image-rgb raw RGB8 bytes of W x H. An image's rows go into one forward
 * pass and attend to each other both ways, as in the daemon.
 *
 * Prints the continuation on stdout (with --ids, the generated token ids on
 * one line instead) and prefill / decode speed on stderr. --dump-logits
 * writes the logits of every prompt position (n_prompt x n_vocab float32,
 * little-endian). Without -m it runs the built-in demo model (random
 * weights). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/image.h"
#include "mkmodel.h"
#include "model.h"
#include "px.h"
#include "sampler.h"
#include "tokenizer.h"
#include "vision.h"

#define MAX_IMAGES 16
#define IMG_MARK (-1) /* an image's rows in a prompt being built */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void) {
    fprintf(stderr, "usage: pollux-run [-m FILE] (-p TEXT | --prompt-ids 1,2,3) [-n N] [--temp T]\n"
                    "         [--top-k K] [--top-p P] [--seed S] [--threads N] [--ctx N] [--ids]\n"
                    "         [--ignore-eos] [--dump-logits FILE]\n"
                    "         [--mmproj FILE (--image FILE | --image-rgb FILE,W,H)...]\n");
}

static int parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 16, k = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) return -1;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s && strncmp(s, "img", 3) == 0) {
            v = IMG_MARK;
            end = (char *)s + 3;
        } else if (end == s || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (k == cap) {
            cap *= 2;
            int32_t *t = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!t) {
                free(ids);
                return -1;
            }
            ids = t;
        }
        ids[k++] = (int32_t)v;
        s = end;
        if (*s == ',' || *s == ' ')
            s++;
        else if (*s) {
            free(ids);
            return -1;
        }
    }
    *out = ids;
    *n = k;
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* "--image FILE" (encoded) or "--image-rgb FILE,W,H" into img. */
static int load_image(const char *arg, int raw, px_image *img) {
    char path[4096];
    int w = 0, h = 0;
    snprintf(path, sizeof path, "%s", arg);
    if (raw) {
        char *c2 = strrchr(path, ','), *c1;
        if (!c2) return -1;
        *c2 = '\0';
        if (!(c1 = strrchr(path, ','))) return -1;
        *c1 = '\0';
        w = atoi(c1 + 1);
        h = atoi(c2 + 1);
        if (w <= 0 || h <= 0 || w > 16384 || h > 16384) return -1;
    }
    size_t len;
    uint8_t *data = read_file(path, &len);
    if (!data) return -1;
    char err[200];
    int rc = 0;
    if (raw) {
        rc = len == (size_t)w * (size_t)h * 3 ? 0 : -1;
        *img = (px_image){w, h, data};
        if (rc) free(data);
        return rc;
    }
    rc = px_image_decode(data, len, NULL, NULL, img, err, sizeof err);
    free(data);
    if (rc < 0) fprintf(stderr, "pollux-run: %s: %s\n", path, err);
    return rc;
}

/* Expands each IMG_MARK of ids into n_rows placeholder rows; records where
 * each image's rows start. */
static int expand_images(int32_t **ids, int *n, int n_images, int32_t n_rows, int32_t filler,
                         int32_t *img_pos) {
    int marks = 0;
    for (int i = 0; i < *n; i++)
        marks += (*ids)[i] == IMG_MARK;
    if (marks != n_images) {
        fprintf(stderr, "pollux-run: %d image places in the prompt for %d images\n", marks,
                n_images);
        return -1;
    }
    if (marks == 0) return 0;
    int total = *n + marks * (n_rows - 1), k = 0, im = 0;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)total);
    if (!out) return -1;
    for (int i = 0; i < *n; i++) {
        if ((*ids)[i] != IMG_MARK) {
            out[k++] = (*ids)[i];
            continue;
        }
        img_pos[im++] = k;
        for (int32_t r = 0; r < n_rows; r++)
            out[k++] = filler;
    }
    free(*ids);
    *ids = out;
    *n = total;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL, *dump = NULL;
    const char *mmproj = NULL, *image_arg[MAX_IMAGES];
    int image_raw[MAX_IMAGES], n_images = 0;
    int n_gen = 32, n_threads = 0, n_ctx = 0, print_ids = 0, ignore_eos = 0;
    px_sampling sp;
    px_sampling_init(&sp);
    sp.temperature = 0.8f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ids") == 0) {
            print_ids = 1;
            continue;
        }
        if (strcmp(a, "--ignore-eos") == 0) {
            ignore_eos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "-m") == 0)
            model_path = v;
        else if (strcmp(a, "-p") == 0)
            prompt = v;
        else if (strcmp(a, "--prompt-ids") == 0)
            prompt_ids = v;
        else if (strcmp(a, "-n") == 0)
            n_gen = atoi(v);
        else if (strcmp(a, "--temp") == 0)
            sp.temperature = strtof(v, NULL);
        else if (strcmp(a, "--top-k") == 0)
            sp.top_k = atoi(v);
        else if (strcmp(a, "--top-p") == 0)
            sp.top_p = strtof(v, NULL);
        else if (strcmp(a, "--seed") == 0)
            sp.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--threads") == 0)
            n_threads = atoi(v);
        else if (strcmp(a, "--ctx") == 0)
            n_ctx = atoi(v);
        else if (strcmp(a, "--dump-logits") == 0)
            dump = v;
        else if (strcmp(a, "--mmproj") == 0)
            mmproj = v;
        else if ((strcmp(a, "--image") == 0 || strcmp(a, "--image-rgb") == 0) &&
                 n_images < MAX_IMAGES) {
            image_raw[n_images] = strcmp(a, "--image-rgb") == 0;
            image_arg[n_images++] = v;
        } else {
            fprintf(stderr, "pollux-run: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if ((!prompt && !prompt_ids) || n_gen < 0 || (n_images > 0 && !mmproj)) {
        usage();
        return 2;
    }
    char err[512], demo[4096];
    if (!model_path) {
        if (px_demo_model_path(demo, sizeof demo, err, sizeof err) < 0) {
            fprintf(stderr, "pollux-run: demo model: %s\n", err);
            return 1;
        }
        model_path = demo;
        fprintf(stderr,
                "pollux-run: no -m given: using the built-in demo model %s "
                "(random weights: its text is meaningless)\n",
                demo);
    }

    /* The tokenizer comes with the model; load with a provisional context
     * and size the KV cache to the request afterwards would need two loads,
     * so size it for n_ctx (or the trained context) up front. */
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = n_threads;
    mo.n_ctx = n_ctx;
    mo.max_batch_tokens = dump && n_images == 0 ? 128 : 512;
    mo.max_logit_rows = dump ? mo.max_batch_tokens : 1;
    px_model *m = px_model_load(model_path, &mo, err, sizeof err);
    if (!m) {
        fprintf(stderr, "pollux-run: %s: %s\n", model_path, err);
        return 1;
    }
    const px_tokenizer *tok = px_model_tokenizer(m);
    const px_model_config *cfg = px_model_config_get(m);
    int32_t *ids = NULL;
    int n_prompt = 0;
    /* Images: encoded up front; their rows replace placeholders below. */
    px_vision *vis = NULL;
    float *img_embd[MAX_IMAGES] = {0};
    int32_t img_pos[MAX_IMAGES], img_rows = 0;
    if (mmproj) {
        vis = px_vision_load(mmproj, px_model_pool(m), err, sizeof err);
        if (!vis) {
            fprintf(stderr, "pollux-run: %s: %s\n", mmproj, err);
            px_model_free(m);
            return 1;
        }
        const px_vision_config *vc = px_vision_config_get(vis);
        img_rows = vc->n_tokens_out;
        if (vc->n_embd_out != cfg->n_embd || img_rows > 512) {
            fprintf(stderr,
                    "pollux-run: %s projects to %d dimensions (%d rows); the model has %d\n",
                    mmproj, vc->n_embd_out, img_rows, cfg->n_embd);
            px_vision_free(vis);
            px_model_free(m);
            return 1;
        }
        float *pix = malloc(sizeof(float) * 3 * (size_t)vc->image_size * (size_t)vc->image_size);
        double te = now_s();
        for (int i = 0; i < n_images; i++) {
            px_image img = {0};
            img_embd[i] = malloc(sizeof(float) * (size_t)img_rows * (size_t)vc->n_embd_out);
            if (!pix || !img_embd[i] || load_image(image_arg[i], image_raw[i], &img) < 0 ||
                px_vision_preprocess(vis, img.rgb, img.width, img.height, pix) < 0 ||
                px_vision_encode(vis, pix, img_embd[i], err, sizeof err) < 0) {
                fprintf(stderr, "pollux-run: image %s: cannot load or encode it\n", image_arg[i]);
                px_image_free(&img);
                free(pix);
                for (int k = 0; k <= i; k++)
                    free(img_embd[k]);
                px_vision_free(vis);
                px_model_free(m);
                return 1;
            }
            px_image_free(&img);
        }
        free(pix);
        if (n_images > 0)
            fprintf(stderr, "pollux-run: encoded %d image(s) in %.2f s\n", n_images, now_s() - te);
    }
    if (prompt_ids) {
        if (parse_ids(prompt_ids, &ids, &n_prompt) < 0 || n_prompt == 0) {
            fprintf(stderr, "pollux-run: bad --prompt-ids\n");
            px_model_free(m);
            return 2;
        }
    } else {
        int64_t need = px_tokenizer_encode(tok, prompt, strlen(prompt),
                                           PX_TOK_ADD_BOS | PX_TOK_PARSE_SPECIAL, NULL, 0);
        ids = malloc(sizeof(int32_t) * (size_t)(need > 0 ? need : 1));
        if (need <= 0 || !ids ||
            px_tokenizer_encode(tok, prompt, strlen(prompt), PX_TOK_ADD_BOS | PX_TOK_PARSE_SPECIAL,
                                ids, need) != need) {
            fprintf(stderr, "pollux-run: cannot tokenize the prompt\n");
            free(ids);
            px_model_free(m);
            return 1;
        }
        n_prompt = (int)need;
        int32_t soi = px_tokenizer_find(tok, "<start_of_image>");
        int32_t eoi = px_tokenizer_find(tok, "<end_of_image>");
        int marks = 0;
        for (int i = 0; i < n_prompt && n_images > 0; i++)
            marks += ids[i] == soi;
        if (marks > 0 && soi >= 0 && eoi >= 0) {
            int32_t *x = malloc(sizeof(int32_t) * (size_t)(n_prompt + 2 * marks));
            int k = 0;
            for (int i = 0; x && i < n_prompt; i++) {
                x[k++] = ids[i];
                if (ids[i] == soi) {
                    x[k++] = IMG_MARK;
                    x[k++] = eoi;
                }
            }
            free(ids);
            ids = x;
            n_prompt = x ? k : 0;
        }
    }
    int32_t filler = px_tokenizer_find(tok, "<start_of_image>");
    if (n_prompt <= 0 ||
        expand_images(&ids, &n_prompt, n_images, img_rows, filler < 0 ? 0 : filler, img_pos) < 0) {
        fprintf(stderr, "pollux-run: bad prompt\n");
        free(ids);
        for (int k = 0; k < n_images; k++)
            free(img_embd[k]);
        px_vision_free(vis);
        px_model_free(m);
        return 2;
    }
    int n_ctx_m = px_model_n_ctx(m), bs = px_model_kv_block_size(m);
    if (n_prompt + n_gen > n_ctx_m) {
        fprintf(stderr, "pollux-run: prompt (%d tokens) + %d new tokens exceed the context of %d\n",
                n_prompt, n_gen, n_ctx_m);
        free(ids);
        px_model_free(m);
        return 1;
    }
    int total = n_prompt + n_gen;
    int n_blocks = (total + bs - 1) / bs;
    int32_t *blocks = malloc(sizeof(int32_t) * (size_t)n_blocks);
    int32_t *all = malloc(sizeof(int32_t) * (size_t)(total + 1));
    int32_t *pos = malloc(sizeof(int32_t) * 512), *seq = calloc(512, sizeof(int32_t));
    uint8_t *want = calloc(512, 1);
    const float **row_embd = calloc(512, sizeof *row_embd);
    int32_t *attn_end = calloc(512, sizeof *attn_end);
    float *logits = malloc(sizeof(float) * (size_t)cfg->n_vocab * (size_t)mo.max_logit_rows);
    px_sampler *smp = px_sampler_create(cfg->n_vocab);
    FILE *df = dump ? fopen(dump, "wb") : NULL;
    int rc = 1;
    if (!blocks || !all || !pos || !seq || !want || !row_embd || !attn_end || !logits || !smp ||
        (dump && !df)) {
        fprintf(stderr, "pollux-run: out of memory or cannot open %s\n", dump ? dump : "");
        goto out;
    }
    for (int i = 0; i < n_blocks; i++)
        blocks[i] = i;
    memcpy(all, ids, sizeof(int32_t) * (size_t)n_prompt);
    px_batch_seq bseq = {.blocks = blocks, .n_blocks = n_blocks};
    px_batch b = {.pos = pos, .seq = seq, .want_logits = want, .n_seqs = 1, .seqs = &bseq};

    double t0 = now_s();
    int chunk = n_images > 0 ? 128 : mo.max_batch_tokens, n = 0;
    for (int p0 = 0; p0 < n_prompt; p0 += n) {
        n = PX_MIN(chunk, n_prompt - p0);
        /* Never split an image's rows between passes. */
        for (int k = 0; k < n_images; k++) {
            int e = img_pos[k] + img_rows;
            if (img_pos[k] < p0 + n && e > p0 + n) n = img_pos[k] > p0 ? img_pos[k] - p0 : e - p0;
        }
        int has_img = 0;
        for (int i = 0; i < n; i++) {
            pos[i] = p0 + i;
            want[i] = dump ? 1 : (p0 + i == n_prompt - 1);
            row_embd[i] = NULL;
            attn_end[i] = 0;
            for (int k = 0; k < n_images; k++)
                if (p0 + i >= img_pos[k] && p0 + i < img_pos[k] + img_rows) {
                    row_embd[i] = img_embd[k] + (size_t)(p0 + i - img_pos[k]) * cfg->n_embd;
                    attn_end[i] = img_pos[k] + img_rows;
                    has_img = 1;
                }
        }
        b.n_tok = n;
        b.tokens = all + p0;
        b.embd = has_img ? row_embd : NULL;
        b.attn_end = has_img ? attn_end : NULL;
        if (px_forward(m, &b, logits, err, sizeof err) < 0) {
            fprintf(stderr, "pollux-run: %s\n", err);
            goto out;
        }
        if (df &&
            fwrite(logits, sizeof(float) * (size_t)cfg->n_vocab, (size_t)n, df) != (size_t)n) {
            fprintf(stderr, "pollux-run: writing %s failed\n", dump);
            goto out;
        }
    }
    double t1 = now_s();
    /* The last prompt row's logits are the last row written. */
    const float *last = logits + (size_t)cfg->n_vocab * (size_t)(dump ? n - 1 : 0);
    b.embd = NULL;
    b.attn_end = NULL;
    uint64_t rng = px_rng_seed(sp.seed);
    px_detok dt;
    px_detok_init(&dt, tok, 0);
    int n_done = 0;
    char text[256];
    for (int g = 0; g < n_gen; g++) {
        px_sample s;
        if (px_sample_next(smp, &sp, &rng, last, all, n_prompt, g, &s) < 0) {
            fprintf(stderr, "pollux-run: sampling failed\n");
            goto out;
        }
        all[n_prompt + g] = s.token;
        n_done++;
        if (print_ids) {
            printf(g ? " %d" : "%d", s.token);
        } else {
            int k = px_detok_feed(&dt, s.token, text, sizeof text);
            if (k > 0) fwrite(text, 1, (size_t)k, stdout);
            fflush(stdout);
        }
        if (!ignore_eos && px_tokenizer_is_eog(tok, s.token)) break;
        if (g + 1 == n_gen) break;
        pos[0] = n_prompt + g;
        want[0] = 1;
        b.n_tok = 1;
        b.tokens = all + n_prompt + g;
        if (px_forward(m, &b, logits, err, sizeof err) < 0) {
            fprintf(stderr, "pollux-run: %s\n", err);
            goto out;
        }
        last = logits;
    }
    if (!print_ids) {
        int k = px_detok_flush(&dt, text, sizeof text);
        if (k > 0) fwrite(text, 1, (size_t)k, stdout);
    }
    printf("\n");
    double t2 = now_s();
    fprintf(stderr, "pollux-run: prompt %d tokens, %.1f tok/s; generated %d tokens, %.1f tok/s\n",
            n_prompt, n_prompt / (t1 - t0), n_done, n_done > 1 ? (n_done - 1) / (t2 - t1) : 0.0);
    rc = 0;
out:
    if (df && fclose(df) != 0 && rc == 0) {
        fprintf(stderr, "pollux-run: writing %s failed\n", dump);
        rc = 1;
    }
    px_sampler_destroy(smp);
    free(row_embd);
    free(attn_end);
    for (int k = 0; k < n_images; k++)
        free(img_embd[k]);
    px_vision_free(vis);
    free(logits);
    free(want);
    free(seq);
    free(pos);
    free(all);
    free(blocks);
    free(ids);
    px_model_free(m);
    return rc;
}
