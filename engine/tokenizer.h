/* tokenizer.h — SentencePiece-style BPE as GGUF stores it ("llama" model).
 *
 * Vocabulary from GGUF metadata: tokenizer.ggml.tokens (strings),
 * tokenizer.ggml.scores (f32), tokenizer.ggml.token_type (i32: 1 normal,
 * 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), bos/eos/unk/pad
 * ids, add_bos_token / add_eos_token. Text is normalised the SentencePiece
 * way: spaces become "▁" (U+2581), with a leading "▁" where the model adds a
 * dummy prefix (tokenizer.ggml.add_space_prefix, default true for Llama,
 * false for Gemma 3). Encoding merges the best-scoring adjacent pair first;
 * characters with no token fall back to <0xNN> byte tokens.
 * Special tokens written in the text are split out before BPE, leftmost
 * first and longest at a position (as SentencePiece and HF tokenizers do):
 * CONTROL and UNKNOWN tokens only with PX_TOK_PARSE_SPECIAL (otherwise they
 * are ordinary text); USER_DEFINED tokens always, as llama.cpp and HF do
 * (Gemma 3's "\n" runs, "<b>" and the like are user-defined). With the
 * dummy prefix on, a "▁" is also put before the text that follows a special
 * token (llama.cpp). Text is split into UTF-8 characters (each byte of an
 * invalid sequence is a character of its own); a merge may form any token
 * but CONTROL, UNKNOWN and BYTE ones (SentencePiece's rule); a character
 * with no token becomes <0xNN> byte tokens (<unk> if those are missing).
 * Decoding: NORMAL and USER_DEFINED tokens give their text with "▁" as a
 * space (HF's decoder; llama.cpp leaves user-defined text raw, which would
 * print Gemma's "▁▁" space tokens literally), UNKNOWN its text, UNUSED
 * nothing. PX_TOK_ADD_BOS adds BOS (and EOS) as add_bos_token
 * (default true) and add_eos_token (default false) say.
 * Owns: its own copy of the vocabulary (independent of the GGUF mapping).
 * Threads: immutable after create; any thread may encode/decode at once. */
#ifndef PX_TOKENIZER_H
#define PX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct px_tokenizer px_tokenizer;

enum {
    PX_TOK_ADD_BOS = 1 << 0,       /* prepend BOS if the vocabulary says so */
    PX_TOK_PARSE_SPECIAL = 1 << 1, /* recognise control/user tokens in text */
};

typedef enum px_token_type {
    PX_TOKEN_NORMAL = 1,
    PX_TOKEN_UNKNOWN = 2,
    PX_TOKEN_CONTROL = 3,
    PX_TOKEN_USER_DEFINED = 4,
    PX_TOKEN_UNUSED = 5,
    PX_TOKEN_BYTE = 6,
} px_token_type;

/* Loads the vocabulary; NULL + err if missing or malformed (names the key).
 * Keys: tokenizer.ggml.model ("llama"), .tokens, .scores, .token_type (all
 * three required, same length), .bos_token_id (default 1), .eos_token_id
 * (2), .unknown_token_id (0), .padding_token_id, .eot_token_id,
 * .add_bos_token, .add_eos_token, .add_space_prefix (default false when
 * general.architecture starts with "gemma", else true). */
px_tokenizer *px_tokenizer_create(const px_gguf *g, char *err, size_t errlen);

/* A vocabulary given directly (tests and tools): texts are byte strings
 * (text_len[i] bytes, or NUL-terminated if text_len is NULL); types are
 * px_token_type values (0 is read as NORMAL); ids are -1 when absent.
 * Everything is copied. */
typedef struct px_tokenizer_vocab {
    int32_t n_vocab;            /* number of tokens */
    const char *const *text;    /* [n_vocab] token texts */
    const size_t *text_len;     /* [n_vocab] byte lengths, or NULL */
    const float *scores;        /* [n_vocab] merge priority, higher first */
    const int32_t *types;       /* [n_vocab] px_token_type */
    int32_t bos, eos, unk, eot; /* special ids or -1 */
    int add_bos, add_eos;       /* what PX_TOK_ADD_BOS adds */
    int add_space_prefix;       /* dummy "▁" before text */
} px_tokenizer_vocab;
px_tokenizer *px_tokenizer_create_vocab(const px_tokenizer_vocab *v, char *err, size_t errlen);
void px_tokenizer_destroy(px_tokenizer *t);

int32_t px_tokenizer_n_vocab(const px_tokenizer *t);
int32_t px_tokenizer_bos(const px_tokenizer *t); /* -1 if none */
int32_t px_tokenizer_eos(const px_tokenizer *t); /* -1 if none */
/* Id of a token given by its exact text (e.g. "<end_of_turn>"), or -1. */
int32_t px_tokenizer_find(const px_tokenizer *t, const char *text);
/* Type of a token; 0 for an id out of range. */
px_token_type px_tokenizer_type(const px_tokenizer *t, int32_t id);
/* Whether the vocabulary adds a dummy-prefix space (add_space_prefix). */
int px_tokenizer_add_space_prefix(const px_tokenizer *t);
/* True for tokens that end generation: EOS, EOT and <end_of_turn>-like
 * control tokens named in the vocabulary metadata. */
int px_tokenizer_is_eog(const px_tokenizer *t, int32_t id);

/* Encodes text[0..len) (any bytes; invalid UTF-8 goes through byte
 * fallback). Writes up to cap ids to out and returns the total count needed
 * (which may exceed cap: call again with a bigger buffer), or a negative
 * PX_E*. */
int64_t px_tokenizer_encode(const px_tokenizer *t, const char *text, size_t len, int flags,
                            int32_t *out, int64_t cap);

/* The raw bytes a token stands for in output text: "▁" becomes a space,
 * <0xNN> becomes that byte, control tokens give "" unless with_special.
 * Returns the byte count written (<= cap) or a negative PX_E* (bad id,
 * PX_ETOOBIG if cap is too small). */
int px_tokenizer_piece(const px_tokenizer *t, int32_t id, int with_special, char *out, size_t cap);

/* Streaming-safe decoder: feed ids one at a time; emits only complete UTF-8
 * sequences and holds back a partial one until the bytes that end it arrive.
 * Also strips the dummy-prefix space at the start when the model adds one. */
typedef struct px_detok {
    const px_tokenizer *tok; /* borrowed */
    uint8_t pending[8];      /* bytes of an incomplete UTF-8 sequence */
    int n_pending;
    int n_fed;        /* tokens fed so far */
    int with_special; /* control tokens give their text */
    int started;      /* some text went out: no more prefix stripping */
} px_detok;
void px_detok_init(px_detok *d, const px_tokenizer *t, int with_special);
/* Appends the text completed by `id` to out (cap bytes); returns bytes
 * written or a negative PX_E*. A complete invalid sequence is emitted as
 * U+FFFD. */
int px_detok_feed(px_detok *d, int32_t id, char *out, size_t cap);
/* Flushes held-back bytes (as U+FFFD) at end of stream. */
int px_detok_flush(px_detok *d, char *out, size_t cap);

#endif
