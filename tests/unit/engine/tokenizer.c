/* tokenizer.c — tests of engine/tokenizer.c: BPE merges, byte fallback,
 * special tokens, BOS/EOS, the capacity protocol, the streaming decoder and
 * the refusal of malformed vocabularies. Vocabularies are written with the
 * GGUF writer into memory and parsed back, as a model file would be. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mkmodel.h"
#include "px.h"
#include "suites.h"
#include "tokenizer.h"

/* --- vocabulary fixtures ------------------------------------------------ */

typedef struct tv {
    const char *text;
    float score;
    int32_t type;
} tv;

enum { WITH_BYTES = 1, NO_SCORES = 2, SHORT_TYPES = 4, NO_MODEL = 8, GPT2 = 16, LLAMA = 32 };

/* Control tokens <pad> <eos> <bos> <unk> (ids 0..3), then the 256 byte
 * tokens if WITH_BYTES (ids 4..259), then `extra`. */
static px_gguf_writer *vocab_writer(const tv *extra, int n_extra, int opts) {
    px_gguf_writer *w = px_gguf_writer_create();
    ck_assert_ptr_nonnull(w);
    int n = 4 + ((opts & WITH_BYTES) ? 256 : 0) + n_extra;
    char **text = calloc((size_t)n, sizeof *text);
    float *score = calloc((size_t)n, sizeof *score);
    int32_t *type = calloc((size_t)n, sizeof *type);
    const char *ctl[4] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    int k = 0;
    for (int i = 0; i < 4; i++, k++) {
        text[k] = strdup(ctl[i]);
        type[k] = i == 3 ? PX_TOKEN_UNKNOWN : PX_TOKEN_CONTROL;
    }
    for (int b = 0; (opts & WITH_BYTES) && b < 256; b++, k++) {
        text[k] = malloc(8);
        snprintf(text[k], 8, "<0x%02X>", b);
        type[k] = PX_TOKEN_BYTE;
    }
    for (int i = 0; i < n_extra; i++, k++) {
        text[k] = strdup(extra[i].text);
        score[k] = extra[i].score;
        type[k] = extra[i].type ? extra[i].type : PX_TOKEN_NORMAL;
    }
    px_gguf_writer_set_str(w, "general.architecture", (opts & LLAMA) ? "llama" : "gemma3");
    if (!(opts & NO_MODEL))
        px_gguf_writer_set_str(w, "tokenizer.ggml.model", (opts & GPT2) ? "gpt2" : "llama");
    px_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)text, (uint64_t)n);
    if (!(opts & NO_SCORES))
        px_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PX_GGUF_FLOAT32, score, (uint64_t)n);
    px_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PX_GGUF_INT32, type,
                           (uint64_t)((opts & SHORT_TYPES) ? n - 1 : n));
    px_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 1);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 3);
    for (int i = 0; i < n; i++)
        free(text[i]);
    free(text);
    free(score);
    free(type);
    return w;
}

/* Writes w to memory, opens it, creates the tokenizer and drops the GGUF
 * (the tokenizer must not need it afterwards). NULL + err on failure. */
static px_tokenizer *tok_from_writer(px_gguf_writer *w, char *err, size_t errlen) {
    void *image = NULL;
    size_t size = 0;
    ck_assert_int_eq(px_gguf_writer_write_mem(w, &image, &size, err, errlen), 0);
    px_gguf_writer_destroy(w);
    px_gguf *g = px_gguf_open_mem(image, size, err, errlen);
    ck_assert_msg(g != NULL, "gguf: %s", err);
    px_tokenizer *t = px_tokenizer_create(g, err, errlen);
    px_gguf_close(g);
    memset(image, 0, size); /* any pointer kept into the image would now read zeros */
    free(image);
    return t;
}

static px_tokenizer *make_tok(const tv *extra, int n_extra, int opts) {
    char err[256] = "";
    px_tokenizer *t = tok_from_writer(vocab_writer(extra, n_extra, opts), err, sizeof err);
    ck_assert_msg(t != NULL, "create: %s", err);
    return t;
}

static px_tokenizer *mk_tok(px_arch arch) {
    px_gguf_writer *w = px_gguf_writer_create();
    px_gguf_writer_set_str(w, "general.architecture", arch == PX_ARCH_GEMMA3 ? "gemma3" : "llama");
    ck_assert_int_eq(px_mkmodel_write_vocab(w, arch, 1536), 0);
    char err[256] = "";
    px_tokenizer *t = tok_from_writer(w, err, sizeof err);
    ck_assert_msg(t != NULL, "create: %s", err);
    return t;
}

/* Encodes s (length n) into ids (cap 512); returns the count. */
static int enc(const px_tokenizer *t, const char *s, size_t n, int flags, int32_t *ids) {
    int64_t k = px_tokenizer_encode(t, s, n, flags, ids, 512);
    ck_assert_int_ge(k, 0);
    ck_assert_int_le(k, 512);
    return (int)k;
}

static int id_of(const px_tokenizer *t, const char *text) {
    int32_t id = px_tokenizer_find(t, text);
    ck_assert_msg(id >= 0, "no token \"%s\"", text);
    return id;
}

#define ASSERT_IDS(t, ids, n, ...)                                                                 \
    do {                                                                                           \
        const char *want_[] = {__VA_ARGS__};                                                       \
        ck_assert_int_eq((n), (int)PX_ARRAY_LEN(want_));                                           \
        for (size_t i_ = 0; i_ < PX_ARRAY_LEN(want_); i_++)                                        \
            ck_assert_msg((ids)[i_] == id_of((t), want_[i_]), "id %zu: want \"%s\"", i_,           \
                          want_[i_]);                                                              \
    } while (0)

/* Streaming decode of ids into out (NUL-terminated); returns the length. */
static size_t detok(const px_tokenizer *t, const int32_t *ids, int n, int special, char *out,
                    size_t cap) {
    px_detok d;
    px_detok_init(&d, t, special);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int k = px_detok_feed(&d, ids[i], out + len, cap - len - 1);
        ck_assert_int_ge(k, 0);
        len += (size_t)k;
    }
    int k = px_detok_flush(&d, out + len, cap - len - 1);
    ck_assert_int_ge(k, 0);
    len += (size_t)k;
    out[len] = '\0';
    return len;
}

static const tv abc[] = {
    {"a", 0, 0},   {"b", 0, 0},   {"c", 0, 0},     {"d", 0, 0},   {"ab", -5, 0},
    {"bc", -1, 0}, {"cd", -3, 0}, {"abcd", -4, 0}, {"aa", -2, 0},
};

/* --- tests -------------------------------------------------------------- */

START_TEST(merge_best_score_first) {
    px_tokenizer *t = make_tok(abc, PX_ARRAY_LEN(abc), 0);
    int32_t ids[512];
    /* "bc" (-1) beats "ab" (-5) */
    int n = enc(t, "abc", 3, 0, ids);
    ASSERT_IDS(t, ids, n, "a", "bc");
    /* "abcd": bc first leaves a|bc|d, and no token joins those: a, bc, d */
    n = enc(t, "abcd", 4, 0, ids);
    ASSERT_IDS(t, ids, n, "a", "bc", "d");
    /* ties go to the leftmost pair */
    n = enc(t, "aaa", 3, 0, ids);
    ASSERT_IDS(t, ids, n, "aa", "a");
    px_tokenizer_destroy(t);

    /* with "bc" worse than "ab" and "cd", the merges go ab, cd, then abcd */
    tv v2[PX_ARRAY_LEN(abc)];
    memcpy(v2, abc, sizeof abc);
    v2[5].score = -9;
    t = make_tok(v2, PX_ARRAY_LEN(v2), 0);
    n = enc(t, "abcd", 4, 0, ids);
    ASSERT_IDS(t, ids, n, "abcd");
    n = enc(t, "abc", 3, 0, ids);
    ASSERT_IDS(t, ids, n, "ab", "c");
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(space_becomes_metaspace) {
    static const tv v[] = {
        {"\xe2\x96\x81", 0, 0},    {"h", 0, 0},  {"i", 0, 0}, {"\xe2\x96\x81h", -2, 0},
        {"\xe2\x96\x81hi", -1, 0}, {"hi", -3, 0}};
    px_tokenizer *t = make_tok(v, PX_ARRAY_LEN(v), 0); /* gemma3: no dummy prefix */
    int32_t ids[512];
    int n = enc(t, "hi hi", 5, 0, ids);
    ASSERT_IDS(t, ids, n, "hi", "\xe2\x96\x81hi");
    px_tokenizer_destroy(t);
    t = make_tok(v, PX_ARRAY_LEN(v), LLAMA); /* llama: dummy prefix by default */
    n = enc(t, "hi hi", 5, 0, ids);
    ASSERT_IDS(t, ids, n, "\xe2\x96\x81hi", "\xe2\x96\x81hi");
    char out[64];
    ck_assert_uint_eq(detok(t, ids, n, 0, out, sizeof out), 5);
    ck_assert_str_eq(out, "hi hi");
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(byte_fallback) {
    static const tv v[] = {{"A", 0, 0}, {"B", 0, 0}, {"AB", -1, 0}};
    px_tokenizer *t = make_tok(v, PX_ARRAY_LEN(v), WITH_BYTES);
    int32_t ids[512];
    /* é has no token: its two UTF-8 bytes */
    int n = enc(t, "A\xc3\xa9", 3, 0, ids);
    ASSERT_IDS(t, ids, n, "A", "<0xC3>", "<0xA9>");
    /* invalid UTF-8: a lone lead byte, then valid text that still merges */
    n = enc(t,
            "\xe2"
            "AB",
            3, 0, ids);
    ASSERT_IDS(t, ids, n, "<0xE2>", "AB");
    /* stray continuation, overlong, surrogate, past U+10FFFF: byte by byte */
    n = enc(t, "\x80\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xff", 11, 0, ids);
    ASSERT_IDS(t, ids, n, "<0x80>", "<0xC0>", "<0xAF>", "<0xED>", "<0xA0>", "<0x80>", "<0xF4>",
               "<0x90>", "<0x80>", "<0x80>", "<0xFF>");
    /* NUL bytes inside the text */
    n = enc(t, "A\0B\0", 4, 0, ids);
    ASSERT_IDS(t, ids, n, "A", "<0x00>", "B", "<0x00>");
    /* a 4-byte character split over four byte tokens decodes whole */
    n = enc(t, "\xf0\x9f\x98\x80", 4, 0, ids);
    ck_assert_int_eq(n, 4);
    char out[64];
    ck_assert_uint_eq(detok(t, ids, n, 0, out, sizeof out), 4);
    ck_assert_str_eq(out, "\xf0\x9f\x98\x80");
    px_tokenizer_destroy(t);

    /* without byte tokens: <unk> */
    t = make_tok(v, PX_ARRAY_LEN(v), 0);
    n = enc(t, "A\xc3\xa9", 3, 0, ids);
    ASSERT_IDS(t, ids, n, "A", "<unk>", "<unk>");
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(round_trip) {
    static const char *const strs[] = {
        "Hello world",
        " leading space",
        "trailing space ",
        "  two  spaces  ",
        "\ttab\nnewline\r\n",
        "ctl \x01\x02\x1f\x7f end",
        "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 done",
        "CJK \xe4\xbd\xa0\xe5\xa5\xbd Arabic \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
        "the quick brown fox jumps over the lazy dog",
        "<start_of_turn>user\nhi<end_of_turn>\n",
        "a",
        " ",
        "x\0y",
    };
    static const size_t lens[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
    for (int a = 0; a < 2; a++) {
        px_tokenizer *t = mk_tok(a ? PX_ARCH_LLAMA : PX_ARCH_GEMMA3);
        for (size_t i = 0; i < PX_ARRAY_LEN(strs); i++) {
            size_t len = lens[i] ? lens[i] : strlen(strs[i]);
            for (int flags = 0; flags <= (PX_TOK_ADD_BOS | PX_TOK_PARSE_SPECIAL); flags++) {
                int32_t ids[512];
                int n = enc(t, strs[i], len, flags, ids);
                int skip = 0; /* BOS shows as "<bos>" when decoding with specials */
                if (flags & PX_TOK_ADD_BOS) {
                    ck_assert_int_eq(ids[0], px_tokenizer_bos(t));
                    skip = (flags & PX_TOK_PARSE_SPECIAL) ? 1 : 0;
                }
                char out[1024];
                size_t k = detok(t, ids + skip, n - skip, (flags & PX_TOK_PARSE_SPECIAL) != 0, out,
                                 sizeof out);
                bool has_special = strstr(strs[i], "<start_of_turn>") != NULL;
                if (has_special && !(flags & PX_TOK_PARSE_SPECIAL)) continue;
                ck_assert_msg(k == len && memcmp(out, strs[i], len) == 0,
                              "arch %d flags %d: \"%s\" came back as \"%s\"", a, flags, strs[i],
                              out);
            }
        }
        px_tokenizer_destroy(t);
    }
}
END_TEST

START_TEST(special_tokens) {
    px_tokenizer *t = mk_tok(PX_ARCH_GEMMA3);
    int32_t sot = id_of(t, "<start_of_turn>"), eot = id_of(t, "<end_of_turn>");
    int32_t ids[512];
    const char *s = "<start_of_turn>user\nhi<end_of_turn>";
    int n = enc(t, s, strlen(s), PX_TOK_PARSE_SPECIAL, ids);
    ck_assert_int_eq(ids[0], sot);
    ck_assert_int_eq(ids[n - 1], eot);
    /* the text between is tokenized as it would be alone */
    int32_t mid[512];
    int m = enc(t, "user\nhi", 7, 0, mid);
    ck_assert_int_eq(n, m + 2);
    ck_assert_mem_eq(ids + 1, mid, (size_t)m * sizeof *mid);
    /* without the flag they are plain text */
    n = enc(t, s, strlen(s), 0, ids);
    for (int i = 0; i < n; i++) {
        ck_assert_int_ne(ids[i], sot);
        ck_assert_int_ne(ids[i], eot);
    }
    /* decoding: control tokens only with_special */
    char out[64];
    ck_assert_int_eq(px_tokenizer_piece(t, sot, 0, out, sizeof out), 0);
    ck_assert_int_eq(px_tokenizer_piece(t, sot, 1, out, sizeof out), 15);
    ck_assert_mem_eq(out, "<start_of_turn>", 15);
    ck_assert(px_tokenizer_is_eog(t, eot));
    ck_assert(px_tokenizer_is_eog(t, px_tokenizer_eos(t)));
    ck_assert(!px_tokenizer_is_eog(t, sot));
    ck_assert(!px_tokenizer_is_eog(t, px_tokenizer_bos(t)));
    ck_assert(!px_tokenizer_is_eog(t, -1));
    px_tokenizer_destroy(t);

    /* user-defined tokens match with or without the flag, longest first */
    static const tv v[] = {{"<", 0, 0},
                           {">", 0, 0},
                           {"x", 0, 0},
                           {"<x>", 0, PX_TOKEN_USER_DEFINED},
                           {"<x>>", 0, PX_TOKEN_USER_DEFINED}};
    t = make_tok(v, PX_ARRAY_LEN(v), 0);
    n = enc(t, "x<x>x<x>>", 9, 0, ids);
    ASSERT_IDS(t, ids, n, "x", "<x>", "x", "<x>>");
    n = enc(t, "<bos>x", 6, 0, ids); /* control text without the flag: no <bos> id */
    for (int i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], 2);
    n = enc(t, "<bos>x", 6, PX_TOK_PARSE_SPECIAL, ids);
    ASSERT_IDS(t, ids, n, "<bos>", "x");
    px_tokenizer_destroy(t);

    /* llama: a dummy prefix after a special token too */
    t = mk_tok(PX_ARCH_LLAMA);
    int32_t bos = px_tokenizer_bos(t);
    int32_t a[512], b[512];
    n = enc(t, "<s>hello", 8, PX_TOK_PARSE_SPECIAL, a);
    m = enc(t, "hello", 5, 0, b);
    ck_assert_int_eq(a[0], bos);
    ck_assert_int_eq(n, m + 1);
    ck_assert_mem_eq(a + 1, b, (size_t)m * sizeof *b);
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(bos_and_eos) {
    px_tokenizer *t = make_tok(abc, PX_ARRAY_LEN(abc), 0);
    int32_t ids[512];
    int n = enc(t, "ab", 2, PX_TOK_ADD_BOS, ids);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(enc(t, "", 0, PX_TOK_ADD_BOS, ids), 1);
    ck_assert_int_eq(enc(t, "", 0, 0, ids), 0);
    ck_assert_int_eq(enc(t, NULL, 0, 0, ids), 0);
    px_tokenizer_destroy(t);

    px_gguf_writer *w = vocab_writer(abc, PX_ARRAY_LEN(abc), 0);
    px_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    px_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", true);
    char err[256];
    t = tok_from_writer(w, err, sizeof err);
    ck_assert_ptr_nonnull(t);
    n = enc(t, "ab", 2, PX_TOK_ADD_BOS, ids);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0], id_of(t, "ab"));
    ck_assert_int_eq(ids[1], 1);
    ck_assert_int_eq(enc(t, "ab", 2, 0, ids), 1);
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(capacity_protocol) {
    px_tokenizer *t = mk_tok(PX_ARCH_GEMMA3);
    const char *s = "a few words of text \xf0\x9f\x98\x80 to count";
    int64_t need = px_tokenizer_encode(t, s, strlen(s), PX_TOK_ADD_BOS, NULL, 0);
    ck_assert_int_gt(need, 4);
    int32_t full[512], part[512];
    ck_assert_int_eq(px_tokenizer_encode(t, s, strlen(s), PX_TOK_ADD_BOS, full, 512), need);
    for (int i = 0; i < 512; i++)
        part[i] = -7;
    ck_assert_int_eq(px_tokenizer_encode(t, s, strlen(s), PX_TOK_ADD_BOS, part, 3), need);
    ck_assert_mem_eq(part, full, 3 * sizeof *part);
    ck_assert_int_eq(part[3], -7); /* nothing written past cap */
    ck_assert_int_eq(px_tokenizer_encode(t, s, strlen(s), 0, NULL, 5), PX_EINVAL);
    ck_assert_int_eq(px_tokenizer_encode(t, s, strlen(s), 0, full, -1), PX_EINVAL);
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(streaming_decoder) {
    px_tokenizer *t = make_tok(abc, PX_ARRAY_LEN(abc), WITH_BYTES);
    int32_t e2 = id_of(t, "<0xE2>"), x82 = id_of(t, "<0x82>"), xac = id_of(t, "<0xAC>");
    int32_t a = id_of(t, "a");
    px_detok d;
    px_detok_init(&d, t, 0);
    char out[16];
    /* "€" = E2 82 AC arrives one byte token at a time */
    ck_assert_int_eq(px_detok_feed(&d, e2, out, sizeof out), 0);
    ck_assert_int_eq(px_detok_feed(&d, x82, out, sizeof out), 0);
    ck_assert_int_eq(px_detok_feed(&d, xac, out, sizeof out), 3);
    ck_assert_mem_eq(out, "\xe2\x82\xac", 3);
    /* too small a buffer leaves the state untouched */
    ck_assert_int_eq(px_detok_feed(&d, e2, out, sizeof out), 0);
    ck_assert_int_eq(px_detok_feed(&d, a, out, 1), PX_ETOOBIG);
    /* a broken sequence becomes U+FFFD, then the byte that broke it */
    ck_assert_int_eq(px_detok_feed(&d, a, out, sizeof out), 4);
    ck_assert_mem_eq(out,
                     "\xef\xbf\xbd"
                     "a",
                     4);
    /* held bytes at the end flush as U+FFFD */
    ck_assert_int_eq(px_detok_feed(&d, e2, out, sizeof out), 0);
    ck_assert_int_eq(px_detok_feed(&d, x82, out, sizeof out), 0);
    ck_assert_int_eq(px_detok_flush(&d, out, sizeof out), 3);
    ck_assert_mem_eq(out, "\xef\xbf\xbd", 3);
    ck_assert_int_eq(px_detok_flush(&d, out, sizeof out), 0);
    /* bad ids */
    ck_assert_int_eq(px_detok_feed(&d, -1, out, sizeof out), PX_EINVAL);
    ck_assert_int_eq(px_detok_feed(&d, px_tokenizer_n_vocab(t), out, sizeof out), PX_EINVAL);
    ck_assert_int_eq(px_tokenizer_piece(t, -1, 0, out, sizeof out), PX_EINVAL);
    ck_assert_int_eq(px_tokenizer_piece(t, px_tokenizer_n_vocab(t), 0, out, sizeof out), PX_EINVAL);
    ck_assert_int_eq(px_tokenizer_piece(t, id_of(t, "abcd"), 0, out, 2), PX_ETOOBIG);
    ck_assert_int_eq(px_tokenizer_piece(t, id_of(t, "abcd"), 0, out, 4), 4);
    ck_assert_int_eq(px_tokenizer_piece(t, xac, 0, out, 1), 1);
    ck_assert_int_eq((uint8_t)out[0], 0xac);
    ck_assert_int_eq(px_tokenizer_type(t, xac), PX_TOKEN_BYTE);
    ck_assert_int_eq(px_tokenizer_type(t, -3), 0);
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(dummy_prefix_stripped_once) {
    px_tokenizer *t = mk_tok(PX_ARCH_LLAMA);
    ck_assert(px_tokenizer_add_space_prefix(t));
    int32_t ids[512];
    /* " x": the prefix plus a real space; only the prefix goes */
    int n = enc(t, "  x", 3, PX_TOK_ADD_BOS, ids);
    char out[64];
    ck_assert_uint_eq(detok(t, ids, n, 0, out, sizeof out), 3);
    ck_assert_str_eq(out, "  x");
    px_tokenizer_destroy(t);
    t = mk_tok(PX_ARCH_GEMMA3);
    ck_assert(!px_tokenizer_add_space_prefix(t));
    px_tokenizer_destroy(t);
}
END_TEST

START_TEST(long_input) {
    px_tokenizer *t = mk_tok(PX_ARCH_GEMMA3);
    const char *words[] = {"the ", "quick ", "brown ",          "fox ", "\xe4\xbd\xa0\xe5\xa5\xbd ",
                           "  ",   "\n",     "\xf0\x9f\x98\x80"};
    size_t cap = 200000, len = 0;
    char *s = malloc(cap + 32);
    for (unsigned i = 0; len < cap; i = i * 1103515245u + 12345u) {
        const char *w = words[(i >> 16) % PX_ARRAY_LEN(words)];
        memcpy(s + len, w, strlen(w));
        len += strlen(w);
    }
    int64_t n = px_tokenizer_encode(t, s, len, 0, NULL, 0);
    ck_assert_int_gt(n, 0);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    ck_assert_int_eq(px_tokenizer_encode(t, s, len, 0, ids, n), n);
    char *out = malloc(len + 64);
    size_t k = detok(t, ids, (int)n, 0, out, len + 64);
    ck_assert_uint_eq(k, len);
    ck_assert(memcmp(out, s, len) == 0);
    free(out);
    free(ids);
    free(s);
    px_tokenizer_destroy(t);
}
END_TEST

static void expect_refused(int opts, const char *key) {
    char err[256] = "";
    px_tokenizer *t = tok_from_writer(vocab_writer(abc, PX_ARRAY_LEN(abc), opts), err, sizeof err);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, key) != NULL, "message \"%s\" does not name %s", err, key);
}

START_TEST(malformed_vocab_refused) {
    expect_refused(NO_SCORES, "tokenizer.ggml.scores");
    expect_refused(SHORT_TYPES, "tokenizer.ggml.token_type");
    expect_refused(NO_MODEL, "tokenizer.ggml.model");
    expect_refused(GPT2, "tokenizer.ggml.model");
    char err[256] = "";
    px_gguf_writer *w = vocab_writer(abc, PX_ARRAY_LEN(abc), 0);
    px_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 9999);
    ck_assert_ptr_null(tok_from_writer(w, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "tokenizer.ggml.eos_token_id"));
    w = vocab_writer(abc, PX_ARRAY_LEN(abc), 0);
    int32_t bad_types[13] = {3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 77};
    px_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PX_GGUF_INT32, bad_types, 13);
    ck_assert_ptr_null(tok_from_writer(w, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "tokenizer.ggml.token_type"));
    w = vocab_writer(abc, PX_ARRAY_LEN(abc), 0);
    float fs[13] = {0};
    px_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PX_GGUF_FLOAT32, fs, 13);
    ck_assert_ptr_null(tok_from_writer(w, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "tokenizer.ggml.token_type"));
}
END_TEST

Suite *px_suite_tokenizer(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, merge_best_score_first);
    tcase_add_test(tc, space_becomes_metaspace);
    tcase_add_test(tc, byte_fallback);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, special_tokens);
    tcase_add_test(tc, bos_and_eos);
    tcase_add_test(tc, capacity_protocol);
    tcase_add_test(tc, streaming_decoder);
    tcase_add_test(tc, dummy_prefix_stripped_once);
    tcase_add_test(tc, long_input);
    tcase_add_test(tc, malformed_vocab_refused);
    suite_add_tcase(s, tc);
    return s;
}
