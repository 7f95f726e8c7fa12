/* tokcheck — compares engine/tokenizer.c with Gemma 3's reference tokenizer.
 *
 * Usage: tokcheck DIR, where crosscheck.mjs wrote DIR/vocab.tsv (the
 * vocabulary) and DIR/cases.tsv (strings and the ids the JS tokenizer gives
 * them). Builds a GGUF vocabulary from vocab.tsv with the GGUF writer, as
 * llama.cpp's converter would for gemma3 (model "llama", no dummy prefix),
 * loads it with px_tokenizer_create and checks for every string: the ids
 * (encoded with PX_TOK_PARSE_SPECIAL, no BOS) equal the reference, and the
 * streaming decoder gives the string back. Prints the first mismatches with
 * context; exits 0 if all match, 1 otherwise. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "px.h"
#include "tokenizer.h"

#define MAX_REPORTS 8

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *data, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (b->n + n + 1 > nc)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            fprintf(stderr, "tokcheck: out of memory\n");
            exit(2);
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    buf b = {0};
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_put(&b, chunk, n);
    fclose(f);
    *size = b.n;
    return b.p;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex in s[0..n) into a new NUL-terminated buffer; *len gets bytes. */
static char *unhex(const char *s, size_t n, size_t *len) {
    char *out = malloc(n / 2 + 1);
    if (!out || n % 2) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (char)(hi * 16 + lo);
    }
    out[n / 2] = '\0';
    *len = n / 2;
    return out;
}

/* Next line of text (modifies it); NULL at the end. */
static char *next_line(char **cur) {
    if (!*cur || !**cur) return NULL;
    char *line = *cur, *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cur = nl + 1;
    } else
        *cur = line + strlen(line);
    return line;
}

/* Reads vocab.tsv and writes it as a GGUF image in memory. */
static px_gguf *load_vocab(const char *dir, void **image) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.tsv", dir);
    size_t size;
    char *data = read_file(path, &size);
    if (!data) return NULL;
    int32_t bos = -1, eos = -1, unk = -1, pad = -1;
    size_t cap = 1 << 18, n = 0;
    char **text = malloc(cap * sizeof *text);
    float *score = malloc(cap * sizeof *score);
    int32_t *type = malloc(cap * sizeof *type);
    char *cur = data, *line;
    while ((line = next_line(&cur))) {
        char key[16];
        int v;
        if (line[0] == '#') {
            if (sscanf(line, "# %15s %d", key, &v) == 2) {
                if (!strcmp(key, "bos")) bos = v;
                if (!strcmp(key, "eos")) eos = v;
                if (!strcmp(key, "unk")) unk = v;
                if (!strcmp(key, "pad")) pad = v;
            }
            continue;
        }
        if (n == cap) {
            cap *= 2;
            text = realloc(text, cap * sizeof *text);
            score = realloc(score, cap * sizeof *score);
            type = realloc(type, cap * sizeof *type);
        }
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        size_t len;
        if (!t2 || !(text[n] = unhex(t2 + 1, strlen(t2 + 1), &len)) || strlen(text[n]) != len) {
            fprintf(stderr, "tokcheck: %s: bad line for token %zu\n", path, n);
            exit(2);
        }
        type[n] = atoi(line);
        score[n] = strtof(t1 + 1, NULL);
        n++;
    }
    free(data);

    px_gguf_writer *w = px_gguf_writer_create();
    px_gguf_writer_set_str(w, "general.architecture", "gemma3");
    px_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    px_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)text, n);
    px_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PX_GGUF_FLOAT32, score, n);
    px_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PX_GGUF_INT32, type, n);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    px_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    px_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    px_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    char err[256];
    size_t isize;
    px_gguf *g = NULL;
    if (px_gguf_writer_write_mem(w, image, &isize, err, sizeof err) != 0 ||
        !(g = px_gguf_open_mem(*image, isize, err, sizeof err)))
        fprintf(stderr, "tokcheck: GGUF: %s\n", err);
    px_gguf_writer_destroy(w);
    for (size_t i = 0; i < n; i++)
        free(text[i]);
    free(text);
    free(score);
    free(type);
    return g;
}

static void print_escaped(const char *s, size_t n, size_t max) {
    putchar('"');
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("\"%s", n > max ? "..." : "");
}

static void print_ids(const px_tokenizer *t, const int32_t *ids, int64_t n, int64_t from) {
    for (int64_t i = from; i < n && i < from + 12; i++) {
        char piece[256];
        int k = px_tokenizer_piece(t, ids[i], 1, piece, sizeof piece);
        printf(" %d", (int)ids[i]);
        if (k >= 0) print_escaped(piece, (size_t)k, 24);
    }
    if (n > from + 12) printf(" ...");
    putchar('\n');
}

/* Decodes ids with the streaming decoder into out. */
static void detok_all(const px_tokenizer *t, const int32_t *ids, int64_t n, buf *out) {
    px_detok d;
    px_detok_init(&d, t, 1);
    char piece[512];
    for (int64_t i = 0; i < n; i++) {
        int k = px_detok_feed(&d, ids[i], piece, sizeof piece);
        if (k > 0) buf_put(out, piece, (size_t)k);
    }
    int k = px_detok_flush(&d, piece, sizeof piece);
    if (k > 0) buf_put(out, piece, (size_t)k);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tokcheck DIR\n");
        return 2;
    }
    void *image = NULL;
    px_gguf *g = load_vocab(argv[1], &image);
    if (!g) return 2;
    char err[256];
    px_tokenizer *t = px_tokenizer_create(g, err, sizeof err);
    px_gguf_close(g);
    free(image); /* the tokenizer keeps its own copy */
    if (!t) {
        fprintf(stderr, "tokcheck: px_tokenizer_create: %s\n", err);
        return 2;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/cases.tsv", argv[1]);
    size_t size;
    char *data = read_file(path, &size);
    if (!data) return 2;
    int n_cases = 0, n_bad_ids = 0, n_bad_trip = 0, n_trip = 0, reports = 0;
    size_t total_bytes = 0;
    int64_t total_ids = 0;
    double enc_sec = 0;
    char *cur = data, *line;
    while ((line = next_line(&cur))) {
        char *tab = strchr(line, '\t');
        size_t len;
        char *s = tab ? unhex(line, (size_t)(tab - line), &len) : NULL;
        if (!s) {
            fprintf(stderr, "tokcheck: %s: bad line %d\n", path, n_cases + 1);
            return 2;
        }
        /* reference ids */
        int64_t n_ref = 0, cap_ref = 64;
        int32_t *ref = malloc((size_t)cap_ref * sizeof *ref);
        for (char *p = tab + 1; *p;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (n_ref == cap_ref) ref = realloc(ref, (size_t)(cap_ref *= 2) * sizeof *ref);
            ref[n_ref++] = (int32_t)v;
            p = end;
        }
        /* ours: ask for the size first (capacity protocol), then encode */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int64_t n_ids = px_tokenizer_encode(t, s, len, PX_TOK_PARSE_SPECIAL, NULL, 0);
        int32_t *ids = malloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof *ids);
        int64_t n2 =
            n_ids >= 0 ? px_tokenizer_encode(t, s, len, PX_TOK_PARSE_SPECIAL, ids, n_ids) : n_ids;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        enc_sec += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        total_bytes += len;
        total_ids += n_ref;

        bool same = n2 == n_ids && n_ids == n_ref;
        int64_t diff = 0;
        while (diff < n_ref && diff < n_ids && ids[diff] == ref[diff])
            diff++;
        if (same && diff != n_ref) same = false;
        if (!same) {
            n_bad_ids++;
            if (reports++ < MAX_REPORTS) {
                printf("MISMATCH case %d (%zu bytes): ", n_cases + 1, len);
                print_escaped(s, len, 200);
                printf("\n  first difference at id %lld (ours %lld ids, reference %lld)\n",
                       (long long)diff, (long long)n_ids, (long long)n_ref);
                int64_t from = diff > 3 ? diff - 3 : 0;
                printf("  ours:");
                if (n_ids > 0)
                    print_ids(t, ids, n_ids, from);
                else
                    putchar('\n');
                printf("  ref: ");
                print_ids(t, ref, n_ref, from);
            }
        }
        /* round trip; a literal U+2581 decodes to a space by design */
        if (n_ids >= 0 && !memmem(s, len, "\xe2\x96\x81", 3)) {
            buf dec = {0};
            detok_all(t, ids, n_ids, &dec);
            n_trip++;
            if (dec.n != len || (len && memcmp(dec.p, s, len) != 0)) {
                n_bad_trip++;
                if (reports++ < MAX_REPORTS) {
                    printf("ROUND TRIP case %d: ", n_cases + 1);
                    print_escaped(s, len, 200);
                    printf("\n  decoded: ");
                    print_escaped(dec.p ? dec.p : "", dec.n, 200);
                    putchar('\n');
                }
            }
            free(dec.p);
        }
        free(ids);
        free(ref);
        free(s);
        n_cases++;
    }
    free(data);

    /* BOS comes first when asked for */
    int32_t two[2];
    int64_t nb = px_tokenizer_encode(t, "Hi", 2, PX_TOK_ADD_BOS, two, 2);
    bool bos_ok = nb >= 1 && two[0] == px_tokenizer_bos(t);
    px_tokenizer_destroy(t);

    printf("tokcheck: %d strings, %zu bytes, %lld ids; %d id mismatches, %d/%d round-trip "
           "failures; BOS %s; encode %.1f MB/s\n",
           n_cases, total_bytes, (long long)total_ids, n_bad_ids, n_bad_trip, n_trip,
           bos_ok ? "ok" : "WRONG", enc_sec > 0 ? (double)total_bytes / enc_sec / 1e6 : 0.0);
    bool ok = n_cases >= 500 && n_bad_ids == 0 && n_bad_trip == 0 && bos_ok;
    if (n_cases < 500) printf("tokcheck: expected at least 500 strings\n");
    printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
