/* tokenizer.c — SentencePiece-style BPE over a GGUF "llama" vocabulary.
 *
 * Encoding: split out special tokens, turn spaces into "▁", split into UTF-8
 * characters, then repeatedly merge the adjacent pair whose concatenation is
 * the best-scoring token (leftmost on ties), using a binary heap of candidate
 * pairs over a linked list of symbols: O(n log n). Each final symbol is a
 * token or goes out as <0xNN> byte tokens. Lookups go through an
 * open-addressing hash table of the token texts built at create. */
#include "tokenizer.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

#define SPACE_ESC "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */
#define SPACE_ESC_LEN 3
/* Inputs are indexed with int32 inside the encoder ("▁" triples a space). */
#define MAX_INPUT ((size_t)INT32_MAX / 4)

struct px_tokenizer {
    int32_t n_vocab;
    char *pool;    /* all token texts, each NUL-terminated */
    size_t *off;   /* [n_vocab] offset of token i's text in pool */
    uint32_t *len; /* [n_vocab] byte length of token i's text */
    float *score;  /* [n_vocab] merge priority, higher first */
    uint8_t *type; /* [n_vocab] px_token_type */
    uint8_t *eog;  /* [n_vocab] 1 if the token ends generation */
    int32_t *ht;   /* hash table of ids (-1 empty), size ht_mask + 1 */
    uint64_t ht_mask;
    int32_t byte_id[256]; /* <0xNN> token per byte, -1 if missing */
    int32_t bos, eos, unk, eot;
    bool add_bos, add_eos, add_space_prefix;
    /* Special-token matching: for each first byte b, the distinct lengths
     * of special texts starting with b, longest first, at
     * sp_lens[sp_start[b] .. sp_start[b + 1]). */
    uint32_t sp_start[257];
    uint32_t *sp_lens;
};

/* ---- lookup ----------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static const char *tok_text(const px_tokenizer *t, int32_t id) {
    return t->pool + t->off[id];
}

/* Id of the token whose text is s[0..n), or -1 (the lowest id on dupes). */
static int32_t lookup(const px_tokenizer *t, const char *s, size_t n) {
    uint64_t i = hash_bytes(s, n) & t->ht_mask;
    for (;;) {
        int32_t id = t->ht[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(tok_text(t, id), s, n) == 0) return id;
        i = (i + 1) & t->ht_mask;
    }
}

/* A merge may form this token, and a symbol with its text is emitted as it
 * (SentencePiece keeps control, unknown and byte tokens out of the text). */
static bool is_text_token(const px_tokenizer *t, int32_t id) {
    uint8_t ty = t->type[id];
    return ty != PX_TOKEN_CONTROL && ty != PX_TOKEN_UNKNOWN && ty != PX_TOKEN_BYTE;
}

static bool is_matchable(const px_tokenizer *t, int32_t id, int flags) {
    uint8_t ty = t->type[id];
    if (ty == PX_TOKEN_USER_DEFINED) return true;
    return (flags & PX_TOK_PARSE_SPECIAL) && (ty == PX_TOKEN_CONTROL || ty == PX_TOKEN_UNKNOWN);
}

/* ---- create ------------------------------------------------------------ */

void px_tokenizer_destroy(px_tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->eog);
    free(t->ht);
    free(t->sp_lens);
    free(t);
}

static int parse_byte_token(const char *s, size_t n) {
    /* "<0xNN>" with upper- or lower-case hex */
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int cmp_u32_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Builds the special-token length lists (distinct per first byte). */
static int build_special_index(px_tokenizer *t) {
    size_t n_sp = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->type[i];
        if ((ty == PX_TOKEN_CONTROL || ty == PX_TOKEN_UNKNOWN || ty == PX_TOKEN_USER_DEFINED) &&
            t->len[i] > 0)
            n_sp++;
    }
    /* pairs (first byte, length), sorted per byte, deduplicated */
    uint32_t cnt[256] = {0};
    uint64_t *pairs = malloc((n_sp ? n_sp : 1) * sizeof *pairs);
    if (!pairs) return PX_ENOMEM;
    size_t k = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->type[i];
        if ((ty == PX_TOKEN_CONTROL || ty == PX_TOKEN_UNKNOWN || ty == PX_TOKEN_USER_DEFINED) &&
            t->len[i] > 0)
            pairs[k++] = (uint64_t)(uint8_t)tok_text(t, i)[0] << 32 | t->len[i];
    }
    t->sp_lens = malloc((n_sp ? n_sp : 1) * sizeof *t->sp_lens);
    if (!t->sp_lens) {
        free(pairs);
        return PX_ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        cnt[pairs[i] >> 32]++;
    uint32_t start = 0;
    for (int b = 0; b < 256; b++) {
        t->sp_start[b] = start;
        start += cnt[b];
    }
    t->sp_start[256] = start;
    uint32_t fill[256];
    memcpy(fill, t->sp_start, sizeof fill);
    for (size_t i = 0; i < k; i++)
        t->sp_lens[fill[pairs[i] >> 32]++] = (uint32_t)pairs[i];
    free(pairs);
    /* sort each byte's lengths longest first and drop duplicates, compacting */
    uint32_t w = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t s = t->sp_start[b], e = t->sp_start[b + 1];
        qsort(t->sp_lens + s, e - s, sizeof *t->sp_lens, cmp_u32_desc);
        t->sp_start[b] = w;
        for (uint32_t i = s; i < e; i++)
            if (i == s || t->sp_lens[i] != t->sp_lens[i - 1]) t->sp_lens[w++] = t->sp_lens[i];
    }
    t->sp_start[256] = w;
    return 0;
}

static bool id_ok(int32_t id, int32_t n) {
    return id >= -1 && id < n;
}

px_tokenizer *px_tokenizer_create_vocab(const px_tokenizer_vocab *v, char *err, size_t errlen) {
    if (!v || v->n_vocab <= 0 || !v->text || !v->scores || !v->types) {
        px_fail(err, errlen, PX_EINVAL, "tokenizer: empty vocabulary");
        return NULL;
    }
    int32_t n = v->n_vocab;
    if (!id_ok(v->bos, n) || !id_ok(v->eos, n) || !id_ok(v->unk, n) || !id_ok(v->eot, n)) {
        px_fail(err, errlen, PX_EFORMAT, "tokenizer: special token id out of range (n_vocab %d)",
                (int)n);
        return NULL;
    }
    px_tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->n_vocab = n;
    t->off = malloc((size_t)n * sizeof *t->off);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->type = malloc((size_t)n);
    t->eog = calloc((size_t)n, 1);
    if (!t->off || !t->len || !t->score || !t->type || !t->eog) goto oom;

    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s = v->text[i];
        size_t l = v->text_len ? v->text_len[i] : (s ? strlen(s) : 0);
        if (!s && l > 0) {
            px_fail(err, errlen, PX_EINVAL, "tokenizer: token %d has no text", (int)i);
            goto fail;
        }
        if (l > UINT32_MAX / 2) {
            px_fail(err, errlen, PX_EFORMAT, "tokenizer: token %d is too long", (int)i);
            goto fail;
        }
        t->len[i] = (uint32_t)l;
        t->off[i] = total;
        total += l + 1;
        int32_t ty = v->types[i];
        if (ty == 0) ty = PX_TOKEN_NORMAL;
        if (ty < PX_TOKEN_NORMAL || ty > PX_TOKEN_BYTE) {
            px_fail(err, errlen, PX_EFORMAT, "tokenizer.ggml.token_type[%d]: unknown type %d",
                    (int)i, (int)v->types[i]);
            goto fail;
        }
        t->type[i] = (uint8_t)ty;
        float sc = v->scores[i];
        t->score[i] = isnan(sc) ? -INFINITY : sc;
    }
    t->pool = malloc(total ? total : 1);
    if (!t->pool) goto oom;
    for (int32_t i = 0; i < n; i++) {
        if (t->len[i]) memcpy(t->pool + t->off[i], v->text[i], t->len[i]);
        t->pool[t->off[i] + t->len[i]] = '\0';
    }

    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2)
        cap <<= 1;
    t->ht = malloc(cap * sizeof *t->ht);
    if (!t->ht) goto oom;
    memset(t->ht, 0xff, cap * sizeof *t->ht);
    t->ht_mask = cap - 1;
    for (int32_t i = 0; i < n; i++) {
        if (lookup(t, tok_text(t, i), t->len[i]) >= 0) continue; /* duplicate: keep first */
        uint64_t h = hash_bytes(tok_text(t, i), t->len[i]) & t->ht_mask;
        while (t->ht[h] >= 0)
            h = (h + 1) & t->ht_mask;
        t->ht[h] = i;
    }

    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    for (int32_t i = 0; i < n; i++) {
        if (t->type[i] != PX_TOKEN_BYTE) continue;
        int b = parse_byte_token(tok_text(t, i), t->len[i]);
        if (b < 0) {
            px_fail(err, errlen, PX_EFORMAT,
                    "tokenizer.ggml.tokens[%d]: byte token \"%.16s\" is not <0xNN>", (int)i,
                    tok_text(t, i));
            goto fail;
        }
        if (t->byte_id[b] < 0) t->byte_id[b] = i;
    }

    t->bos = v->bos;
    t->eos = v->eos;
    t->unk = v->unk;
    t->add_bos = v->add_bos && v->bos >= 0;
    t->add_eos = v->add_eos && v->eos >= 0;
    t->add_space_prefix = v->add_space_prefix != 0;
    static const char *const eog_names[] = {"<end_of_turn>", "<|eot_id|>", "<|im_end|>"};
    int32_t eot = v->eot;
    for (size_t k = 0; k < PX_ARRAY_LEN(eog_names); k++) {
        int32_t id = lookup(t, eog_names[k], strlen(eog_names[k]));
        if (id < 0) continue;
        t->eog[id] = 1;
        if (eot < 0) eot = id;
    }
    t->eot = eot;
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;

    if (build_special_index(t) != 0) goto oom;
    return t;
oom:
    px_fail(err, errlen, PX_ENOMEM, "tokenizer: out of memory");
fail:
    px_tokenizer_destroy(t);
    return NULL;
}

/* Reads an optional token id key: absent leaves *out alone. */
static int get_id(const px_gguf *g, const char *key, int32_t n, int32_t *out, char *err,
                  size_t errlen) {
    int64_t v;
    int rc = px_gguf_get_i64(g, key, &v, err, errlen);
    if (rc == PX_EINVAL) return 0;
    if (rc != 0) return rc;
    if (v < 0 || v >= n)
        return px_fail(err, errlen, PX_EFORMAT, "%s: id %lld out of range (n_vocab %d)", key,
                       (long long)v, (int)n);
    *out = (int32_t)v;
    return 0;
}

static int get_flag(const px_gguf *g, const char *key, int *out, char *err, size_t errlen) {
    bool b;
    int rc = px_gguf_get_bool(g, key, &b, err, errlen);
    if (rc == PX_EINVAL) return 0;
    if (rc != 0) return rc;
    *out = b;
    return 0;
}

px_tokenizer *px_tokenizer_create(const px_gguf *g, char *err, size_t errlen) {
    px_gguf_str model;
    int rc = px_gguf_get_str(g, "tokenizer.ggml.model", &model, err, errlen);
    if (rc == PX_EINVAL) {
        px_fail(err, errlen, PX_EFORMAT, "tokenizer.ggml.model: missing");
        return NULL;
    }
    if (rc != 0) return NULL;
    if (model.len != 5 || memcmp(model.ptr, "llama", 5) != 0) {
        px_fail(err, errlen, PX_ENOTSUP,
                "tokenizer.ggml.model: \"%.*s\" is not supported (only "
                "\"llama\")",
                (int)PX_MIN(model.len, 32), model.ptr);
        return NULL;
    }
    static const char *const keys[3] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                        "tokenizer.ggml.token_type"};
    static const px_gguf_vtype want[3] = {PX_GGUF_STRING, PX_GGUF_FLOAT32, PX_GGUF_INT32};
    px_gguf_arr arr[3];
    for (int k = 0; k < 3; k++) {
        rc = px_gguf_get_arr(g, keys[k], &arr[k], err, errlen);
        if (rc == PX_EINVAL) {
            px_fail(err, errlen, PX_EFORMAT, "%s: missing", keys[k]);
            return NULL;
        }
        if (rc != 0) return NULL;
        if (arr[k].type != want[k]) {
            px_fail(err, errlen, PX_EFORMAT, "%s: wrong element type %d", keys[k],
                    (int)arr[k].type);
            return NULL;
        }
        if (arr[k].n != arr[0].n) {
            px_fail(err, errlen, PX_EFORMAT, "%s: %llu entries, but %s has %llu", keys[k],
                    (unsigned long long)arr[k].n, keys[0], (unsigned long long)arr[0].n);
            return NULL;
        }
    }
    if (arr[0].n == 0 || arr[0].n > INT32_MAX) {
        px_fail(err, errlen, PX_EFORMAT, "%s: bad count %llu", keys[0],
                (unsigned long long)arr[0].n);
        return NULL;
    }
    int32_t n = (int32_t)arr[0].n;

    px_tokenizer_vocab v = {
        .n_vocab = n, .bos = 1, .eos = 2, .unk = 0, .eot = -1, .add_bos = 1, .add_eos = 0};
    if (v.bos >= n) v.bos = -1;
    if (v.eos >= n) v.eos = -1;
    int32_t pad = -1;
    px_gguf_str arch = {0};
    v.add_space_prefix = 1;
    if (px_gguf_get_str(g, "general.architecture", &arch, NULL, 0) == 0 && arch.len >= 5 &&
        memcmp(arch.ptr, "gemma", 5) == 0)
        v.add_space_prefix = 0;
    if (get_id(g, "tokenizer.ggml.bos_token_id", n, &v.bos, err, errlen) ||
        get_id(g, "tokenizer.ggml.eos_token_id", n, &v.eos, err, errlen) ||
        get_id(g, "tokenizer.ggml.unknown_token_id", n, &v.unk, err, errlen) ||
        get_id(g, "tokenizer.ggml.padding_token_id", n, &pad, err, errlen) ||
        get_id(g, "tokenizer.ggml.eot_token_id", n, &v.eot, err, errlen) ||
        get_flag(g, "tokenizer.ggml.add_bos_token", &v.add_bos, err, errlen) ||
        get_flag(g, "tokenizer.ggml.add_eos_token", &v.add_eos, err, errlen) ||
        get_flag(g, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix, err, errlen))
        return NULL;

    const char **text = malloc((size_t)n * sizeof *text);
    size_t *tlen = malloc((size_t)n * sizeof *tlen);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    px_tokenizer *t = NULL;
    if (!text || !tlen || !scores || !types) {
        px_fail(err, errlen, PX_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        px_gguf_str s = px_gguf_arr_str(g, &arr[0], (uint64_t)i);
        text[i] = s.ptr;
        tlen[i] = (size_t)s.len;
    }
    memcpy(scores, arr[1].data, (size_t)n * sizeof *scores); /* unaligned in the map */
    memcpy(types, arr[2].data, (size_t)n * sizeof *types);
    v.text = text;
    v.text_len = tlen;
    v.scores = scores;
    v.types = types;
    t = px_tokenizer_create_vocab(&v, err, errlen);
done:
    free(text);
    free(tlen);
    free(scores);
    free(types);
    return t;
}

/* ---- small accessors -------------------------------------------------- */

int32_t px_tokenizer_n_vocab(const px_tokenizer *t) {
    return t->n_vocab;
}
int32_t px_tokenizer_bos(const px_tokenizer *t) {
    return t->bos;
}
int32_t px_tokenizer_eos(const px_tokenizer *t) {
    return t->eos;
}
int px_tokenizer_add_space_prefix(const px_tokenizer *t) {
    return t->add_space_prefix;
}
int32_t px_tokenizer_find(const px_tokenizer *t, const char *text) {
    return text ? lookup(t, text, strlen(text)) : -1;
}
px_token_type px_tokenizer_type(const px_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? (px_token_type)t->type[id] : (px_token_type)0;
}
int px_tokenizer_is_eog(const px_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

/* ---- encode ------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static int utf8_valid_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlongs */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)len > n || s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

typedef struct symbol {
    int32_t start, n;   /* bytes [start, start + n) of the normalized text; n = 0: merged away */
    int32_t prev, next; /* neighbours in the list, -1 at the ends */
} symbol;

typedef struct bigram {
    float score;  /* score of the token the pair would form */
    int32_t left; /* left symbol; the right one is symbols[left].next */
    int32_t size; /* byte length of the pair when queued (stale if changed) */
} bigram;

/* Scratch of one encode call (per call: encoders run concurrently). */
typedef struct enc {
    const px_tokenizer *t;
    char *norm; /* normalized fragment */
    symbol *sym;
    bigram *heap;
    size_t n_heap, cap_heap;
    int32_t *out; /* caller's buffer */
    int64_t cap, count;
} enc;

static void emit(enc *e, int32_t id) {
    if (e->count < e->cap) e->out[e->count] = id;
    e->count++;
}

/* a goes before b: higher score, then leftmost */
static bool bg_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(enc *e, bigram b) {
    if (e->n_heap == e->cap_heap) {
        size_t nc = e->cap_heap ? e->cap_heap * 2 : 64;
        bigram *nh = realloc(e->heap, nc * sizeof *nh);
        if (!nh) return PX_ENOMEM;
        e->heap = nh;
        e->cap_heap = nc;
    }
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(&b, &e->heap[p])) break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = b;
    return 0;
}

static bigram heap_pop(enc *e) {
    bigram top = e->heap[0];
    bigram last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bg_before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!bg_before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n > 0) e->heap[i] = last;
    return top;
}

static int try_pair(enc *e, int32_t left) {
    if (left < 0) return 0;
    int32_t right = e->sym[left].next;
    if (right < 0) return 0;
    int32_t size = e->sym[left].n + e->sym[right].n;
    int32_t id = lookup(e->t, e->norm + e->sym[left].start, (size_t)size);
    if (id < 0 || !is_text_token(e->t, id)) return 0;
    return heap_push(e, (bigram){.score = e->t->score[id], .left = left, .size = size});
}

static void emit_bytes(enc *e, const char *s, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        int32_t id = e->t->byte_id[(uint8_t)s[i]];
        if (id < 0) id = e->t->unk; /* no byte tokens: <unk>, or dropped if none */
        if (id >= 0) emit(e, id);
    }
}

/* BPE over text[0..len) with the dummy prefix if asked. */
static int encode_fragment(enc *e, const char *text, size_t len, bool prefix) {
    int32_t nb = 0;
    if (prefix) {
        memcpy(e->norm, SPACE_ESC, SPACE_ESC_LEN);
        nb = SPACE_ESC_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e->norm + nb, SPACE_ESC, SPACE_ESC_LEN);
            nb += SPACE_ESC_LEN;
        } else
            e->norm[nb++] = text[i];
    }
    int32_t ns = 0;
    for (int32_t i = 0; i < nb;) {
        int l = utf8_valid_len((const uint8_t *)e->norm + i, (size_t)(nb - i));
        if (l == 0) l = 1; /* an invalid byte is a character of its own */
        e->sym[ns] = (symbol){.start = i, .n = l, .prev = ns - 1, .next = -1};
        if (ns > 0) e->sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (try_pair(e, i) != 0) return PX_ENOMEM;
    while (e->n_heap > 0) {
        bigram b = heap_pop(e);
        symbol *l = &e->sym[b.left];
        if (l->n == 0 || l->next < 0) continue;
        symbol *r = &e->sym[l->next];
        if (l->n + r->n != b.size) continue; /* one side changed since queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = b.left;
        if (try_pair(e, l->prev) != 0 || try_pair(e, b.left) != 0) return PX_ENOMEM;
    }
    for (int32_t i = ns > 0 ? 0 : -1; i >= 0; i = e->sym[i].next) {
        const char *s = e->norm + e->sym[i].start;
        int32_t id = lookup(e->t, s, (size_t)e->sym[i].n);
        if (id >= 0 && is_text_token(e->t, id))
            emit(e, id);
        else
            emit_bytes(e, s, e->sym[i].n);
    }
    return 0;
}

/* The special token starting at text[i] (leftmost-longest), or -1. */
static int32_t match_special(const px_tokenizer *t, const char *text, size_t len, size_t i,
                             int flags, uint32_t *mlen) {
    uint8_t b = (uint8_t)text[i];
    for (uint32_t k = t->sp_start[b]; k < t->sp_start[b + 1]; k++) {
        uint32_t l = t->sp_lens[k];
        if (l > len - i) continue;
        int32_t id = lookup(t, text + i, l);
        if (id >= 0 && is_matchable(t, id, flags)) {
            *mlen = l;
            return id;
        }
    }
    return -1;
}

int64_t px_tokenizer_encode(const px_tokenizer *t, const char *text, size_t len, int flags,
                            int32_t *out, int64_t cap) {
    if (!t || (!text && len > 0) || cap < 0 || (!out && cap > 0)) return PX_EINVAL;
    if (len > MAX_INPUT) return PX_ETOOBIG;
    enc e = {.t = t, .out = out, .cap = cap};
    int rc = 0;
    if ((flags & PX_TOK_ADD_BOS) && t->add_bos) emit(&e, t->bos);
    if (len > 0) {
        e.norm = malloc(len * SPACE_ESC_LEN + SPACE_ESC_LEN);
        e.sym = malloc((len + 1) * sizeof *e.sym);
        if (!e.norm || !e.sym) {
            rc = PX_ENOMEM;
            goto done;
        }
    }
    bool prev_special = true; /* the dummy prefix goes at the start and after specials */
    size_t frag = 0;
    for (size_t i = 0; i <= len;) {
        uint32_t ml = 0;
        int32_t sp = i < len ? match_special(t, text, len, i, flags, &ml) : -1;
        if (sp < 0 && i < len) {
            i++;
            continue;
        }
        if (i > frag) {
            rc = encode_fragment(&e, text + frag, i - frag, t->add_space_prefix && prev_special);
            if (rc != 0) goto done;
            prev_special = false;
        }
        if (sp < 0) break; /* i == len */
        emit(&e, sp);
        prev_special = true;
        i += ml;
        frag = i;
    }
    if ((flags & PX_TOK_ADD_BOS) && t->add_eos) emit(&e, t->eos);
done:
    free(e.norm);
    free(e.sym);
    free(e.heap);
    return rc != 0 ? rc : e.count;
}

/* ---- decode ------------------------------------------------------------ */

/* Calls put(ctx, byte) for each byte token `id` stands for; see the header
 * for what each type gives. */
static void piece_bytes(const px_tokenizer *t, int32_t id, int with_special,
                        void (*put)(void *, uint8_t), void *ctx) {
    const char *s = tok_text(t, id);
    uint32_t n = t->len[id];
    switch (t->type[id]) {
    case PX_TOKEN_CONTROL:
        if (!with_special) return;
        /* fall through */
    case PX_TOKEN_UNKNOWN:
        for (uint32_t i = 0; i < n; i++)
            put(ctx, (uint8_t)s[i]);
        return;
    case PX_TOKEN_BYTE: put(ctx, (uint8_t)parse_byte_token(s, n)); return;
    case PX_TOKEN_UNUSED: return;
    default: /* NORMAL, USER_DEFINED */
        for (uint32_t i = 0; i < n; i++) {
            if (i + SPACE_ESC_LEN <= n && memcmp(s + i, SPACE_ESC, SPACE_ESC_LEN) == 0) {
                put(ctx, ' ');
                i += SPACE_ESC_LEN - 1;
            } else
                put(ctx, (uint8_t)s[i]);
        }
    }
}

typedef struct sink {
    char *out;
    size_t cap, n; /* n may pass cap: then nothing more is stored */
} sink;

static void sink_put(void *ctx, uint8_t b) {
    sink *k = ctx;
    if (k->n < k->cap) k->out[k->n] = (char)b;
    k->n++;
}

int px_tokenizer_piece(const px_tokenizer *t, int32_t id, int with_special, char *out, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab || (!out && cap > 0)) return PX_EINVAL;
    sink k = {.out = out, .cap = cap};
    piece_bytes(t, id, with_special, sink_put, &k);
    if (k.n > cap) return PX_ETOOBIG;
    if (k.n > INT32_MAX) return PX_ETOOBIG;
    return (int)k.n;
}

void px_detok_init(px_detok *d, const px_tokenizer *t, int with_special) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->with_special = with_special;
}

/* Streaming UTF-8 assembly: state of one px_detok plus where bytes go. */
typedef struct dstate {
    px_detok *d;
    sink k;
    bool first; /* first byte of this token */
    bool strip; /* drop a leading space of this token (dummy prefix) */
} dstate;

static void out_fffd(dstate *s) {
    sink_put(&s->k, 0xef);
    sink_put(&s->k, 0xbf);
    sink_put(&s->k, 0xbd);
}

/* Bytes a sequence led by c needs (0: c cannot lead one), and the allowed
 * range of its second byte. */
static int utf8_need(uint8_t c, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0) *lo = 0xa0;
        if (c == 0xed) *hi = 0x9f;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0) *lo = 0x90;
        if (c == 0xf4) *hi = 0x8f;
        return 4;
    }
    return 0;
}

static void detok_put(void *ctx, uint8_t b) {
    dstate *s = ctx;
    px_detok *d = s->d;
    if (s->first) {
        s->first = false;
        if (s->strip && b == ' ') {
            d->started = 1; /* only one space is the dummy prefix */
            return;
        }
    }
    d->started = 1;
    if (d->n_pending > 0) {
        uint8_t lo, hi;
        int need = utf8_need(d->pending[0], &lo, &hi);
        if (d->n_pending > 1) lo = 0x80, hi = 0xbf;
        if (b >= lo && b <= hi) {
            d->pending[d->n_pending++] = b;
            if (d->n_pending == need) {
                for (int i = 0; i < need; i++)
                    sink_put(&s->k, d->pending[i]);
                d->n_pending = 0;
            }
            return;
        }
        out_fffd(s); /* the sequence broke off: replace what we held */
        d->n_pending = 0;
    }
    uint8_t lo, hi;
    if (b < 0x80)
        sink_put(&s->k, b);
    else if (utf8_need(b, &lo, &hi) > 0)
        d->pending[d->n_pending++] = b;
    else
        out_fffd(s);
}

int px_detok_feed(px_detok *d, int32_t id, char *out, size_t cap) {
    const px_tokenizer *t = d->tok;
    if (!t || id < 0 || id >= t->n_vocab || (!out && cap > 0)) return PX_EINVAL;
    bool strip = t->add_space_prefix && !d->started;
    /* dry run on a copy first so that PX_ETOOBIG leaves the state as it was */
    px_detok trial = *d;
    dstate s = {.d = &trial, .k = {.out = NULL, .cap = 0}, .first = true, .strip = strip};
    piece_bytes(t, id, d->with_special, detok_put, &s);
    if (s.k.n > cap || s.k.n > INT32_MAX) return PX_ETOOBIG;
    s = (dstate){.d = d, .k = {.out = out, .cap = cap}, .first = true, .strip = strip};
    piece_bytes(t, id, d->with_special, detok_put, &s);
    d->n_fed++;
    return (int)s.k.n;
}

int px_detok_flush(px_detok *d, char *out, size_t cap) {
    if (!out && cap > 0) return PX_EINVAL;
    if (d->n_pending == 0) return 0;
    if (cap < 3) return PX_ETOOBIG;
    memcpy(out, "\xef\xbf\xbd", 3);
    d->n_pending = 0;
    return 3;
}
