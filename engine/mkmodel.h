/* mkmodel.h — writes GGUF model files with deterministic random weights.
 *
 * Used by tools/pollux-mkmodel, by tests (tiny models made on the fly) and
 * for the built-in demo model. Files carry the metadata keys and tensor names
 * of llama.cpp's converter for `gemma3` and `llama`, so other engines load
 * them too. The vocabulary is synthetic but SentencePiece-shaped: control
 * tokens (<pad> <eos> <bos> <unk>, and for gemma3 <start_of_turn>
 * <end_of_turn>), 256 <0xNN> byte tokens (so any text tokenizes), "▁", the
 * printable ASCII characters, and a word list with all its prefixes so BPE
 * merges reach whole words; larger vocabularies are padded with unused
 * tokens. Gemma norm weights are stored as (1 + w), as the converter does.
 * Owns: nothing after the call. Any thread. */
#ifndef PX_MKMODEL_H
#define PX_MKMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "types.h"

typedef struct px_mkmodel_opts {
    px_arch arch;
    uint64_t seed;
    const char *name; /* general.name */
    int32_t n_vocab;  /* >= the synthetic vocabulary (about 1400) */
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int32_t n_ctx;
    int32_t sliding_window; /* gemma3 */
    float rope_base;
    float rope_scale;   /* linear scaling factor, 1 = none (gemma3 global) */
    px_dtype wtype;     /* 2-D weights */
    px_dtype embd_type; /* token embedding (and tied output) */
    int tied_output;    /* llama: 0 writes output.weight */
} px_mkmodel_opts;

/* Tiny defaults for tests: n_embd 64, 2..6 layers, vocab of the synthetic
 * size, window 32, F32. */
void px_mkmodel_opts_tiny(px_mkmodel_opts *o, px_arch arch);
/* The built-in demo model (gemma3, small, Q8_0, seed 42). */
void px_mkmodel_opts_demo(px_mkmodel_opts *o);
/* gemma3 1B dimensions (d_model 1152, 26 layers, 4 heads, 1 KV head,
 * head_dim 256, FFN 6912, vocab 262144, window 512). */
void px_mkmodel_opts_1b(px_mkmodel_opts *o, px_dtype wtype);

/* Deterministic uniform floats in [-1, 1) (xorshift64*); the random
 * weights of every generated file come from it. */
float px_mkmodel_rand(uint64_t *state);

/* Writes the model to path. Returns 0 or a negative PX_E* with err. */
int px_mkmodel_write(const px_mkmodel_opts *o, const char *path, char *err, size_t errlen);

/* Writes the synthetic vocabulary's keys (tokenizer.ggml.*) into w; used by
 * px_mkmodel_write and by tokenizer tests. */
struct px_gguf_writer;
int px_mkmodel_write_vocab(struct px_gguf_writer *w, px_arch arch, int32_t n_vocab);

/* The built-in demo model's path: $PX_DEMO_MODEL, else demo.gguf in the
 * build tree or pkgdatadir, else generated on first use under
 * $XDG_CACHE_HOME/pollux (or ~/.cache/pollux). Writes the path to out. */
int px_demo_model_path(char *out, size_t cap, char *err, size_t errlen);

#endif
