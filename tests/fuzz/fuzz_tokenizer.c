/* fuzz_tokenizer.c — libFuzzer target for the tokenizer with the synthetic
 * Gemma 3 and Llama vocabularies: encoding arbitrary bytes (with and
 * without special-token parsing and BOS) and decoding arbitrary ids, one
 * piece at a time and through the streaming decoder.
 *
 * Input: byte 0: bit 0 the vocabulary, bit 1 PX_TOK_PARSE_SPECIAL, bit 2
 * PX_TOK_ADD_BOS, bit 3 decode instead of encode, bits 4-7 a small output
 * capacity for the piece calls. Encode: the rest is the text. Decode: the
 * rest is little-endian int32 ids (any value).
 * Checks: counts agree between a short and an exact buffer, ids are in the
 * vocabulary, text without U+2581 comes back byte for byte from its pieces
 * (ids with special text included when special tokens were parsed), the
 * streaming decoder's output is always valid UTF-8, and bad ids and short
 * buffers give errors, never writes past the buffer. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "engine/px.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    toks[0] = fz_tokenizer(PX_ARCH_GEMMA3);
    toks[1] = fz_tokenizer(PX_ARCH_LLAMA);
    return 0;
}

/* Appends n bytes to a growable buffer. */
typedef struct gbuf {
    char *p;
    size_t n, cap;
} gbuf;
static void gput(gbuf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void encode(const px_tokenizer *t, int flags, const char *text, size_t len) {
    int32_t nv = px_tokenizer_n_vocab(t);
    int32_t small[8];
    int64_t n = px_tokenizer_encode(t, text, len, flags, small, 8);
    FZ_CHECK(n >= 0, "encode: %lld", (long long)n);
    int32_t *ids = malloc(sizeof *ids * (size_t)(n + 1));
    if (!ids) abort();
    int64_t n2 = px_tokenizer_encode(t, text, len, flags, ids, n);
    FZ_CHECK(n2 == n, "count %lld then %lld", (long long)n, (long long)n2);
    FZ_CHECK(memcmp(small, ids, sizeof *ids * (size_t)PX_MIN(n, 8)) == 0, "short buffer differs");
    FZ_CHECK(len == 0 || n > 0, "%zu bytes gave no tokens", len);

    int with_special = (flags & PX_TOK_PARSE_SPECIAL) != 0;
    gbuf text_back = {0};
    char piece[256];
    for (int64_t i = 0; i < n; i++) {
        FZ_CHECK(ids[i] >= 0 && ids[i] < nv, "id %d", ids[i]);
        /* The BOS PX_TOK_ADD_BOS adds is not text (neither vocabulary adds EOS). */
        if ((flags & PX_TOK_ADD_BOS) && i == 0) {
            FZ_CHECK(ids[0] == px_tokenizer_bos(t), "no BOS first");
            continue;
        }
        int r = px_tokenizer_piece(t, ids[i], with_special, piece, sizeof piece);
        FZ_CHECK(r >= 0, "piece %d: %d", ids[i], r);
        gput(&text_back, piece, (size_t)r);
    }
    /* Round trip: SentencePiece turns spaces into U+2581 and back, so a
     * literal U+2581 cannot survive; the dummy prefix adds one space in
     * front (and after special tokens, which only parsing produces). */
    int has_sp = memmem(text, len, "\xe2\x96\x81", 3) != NULL;
    if (!has_sp && !(px_tokenizer_add_space_prefix(t) && with_special)) {
        const char *b = text_back.p ? text_back.p : "";
        size_t bn = text_back.n;
        if (px_tokenizer_add_space_prefix(t) && len > 0) {
            FZ_CHECK(bn > 0 && b[0] == ' ', "no dummy prefix");
            b++;
            bn--;
        }
        FZ_CHECK(bn == len && memcmp(b, text, len) == 0, "round trip: %zu bytes -> %zu", len, bn);
    }
    free(text_back.p);
    free(ids);
}

static void decode(const px_tokenizer *t, int with_special, size_t cap, const uint8_t *p,
                   size_t n) {
    int32_t nv = px_tokenizer_n_vocab(t);
    px_detok d;
    px_detok_init(&d, t, with_special);
    gbuf out = {0};
    char buf[64], *tiny = malloc(cap ? cap : 1); /* exact size: ASan catches overruns */
    if (!tiny) abort();
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int32_t id;
        memcpy(&id, p + i, 4);
        /* Fold most ids into range so valid ones dominate; keep some wild. */
        if (!(id & 0x40000000)) id = (int32_t)((uint32_t)id % (uint32_t)(nv + 8)) - 4;
        int valid = id >= 0 && id < nv;
        int r = px_tokenizer_piece(t, id, with_special, tiny, cap);
        FZ_CHECK(valid || r < 0, "bad id %d gave %d", id, r);
        FZ_CHECK(r < 0 || (size_t)r <= cap, "piece %d: %d bytes in %zu", id, r, cap);
        r = px_detok_feed(&d, id, buf, sizeof buf);
        FZ_CHECK(valid || r < 0, "detok of bad id %d gave %d", id, r);
        if (r > 0) gput(&out, buf, (size_t)r);
    }
    int r = px_detok_flush(&d, buf, sizeof buf);
    FZ_CHECK(r >= 0, "flush: %d", r);
    gput(&out, buf, (size_t)r);
    FZ_CHECK(px_api_utf8_valid(out.p, out.n), "detok output is not UTF-8 (%zu bytes)", out.n);
    free(out.p);
    free(tiny);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    uint8_t sel = fz_u8(&in);
    size_t n;
    const uint8_t *rest = fz_bytes(&in, SIZE_MAX, &n);
    const px_tokenizer *t = toks[sel & 1];
    int flags = (sel & 2 ? PX_TOK_PARSE_SPECIAL : 0) | (sel & 4 ? PX_TOK_ADD_BOS : 0);
    if (sel & 8)
        decode(t, (sel & 2) != 0, (size_t)(sel >> 4) * 2, rest, n);
    else
        encode(t, flags, (const char *)rest, n);
    return 0;
}
