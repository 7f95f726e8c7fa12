/* model.h — a loaded model and its batch-first forward pass.
 *
 * px_model_load() maps a GGUF file, reads the hyper-parameters of its
 * architecture (gemma3 or llama, with the key and tensor names that
 * llama.cpp's converter writes), checks every tensor's presence, dtype and
 * shape, and preallocates everything a forward pass needs: activations for
 * up to max_batch_tokens rows, matmul scratch, and the paged KV arena.
 *
 * The KV arena is two pools of blocks of kv_block_size tokens (F16 K and V;
 * K transposed within a block, so attention reads 8 tokens per load):
 * the global pool holds the global layers (every layer of a model without
 * sliding-window layers, e.g. llama), the local pool the sliding-window
 * layers. Each pool has its own block ids, and a sequence one block table per
 * pool. A local layer reads only the last `sliding_window` positions, so a
 * caller may drop (and mark -1) local blocks that slid out of every row's
 * window, and the local pool can be much smaller than the global one. Pool
 * sizes: kv_blocks (and kv_blocks_local, default the same) when given; from
 * kv_cache_mb, the local pool gets the windows of kv_local_seqs sequences,
 * (sliding_window - 1) / block_size + 3 blocks each, plus max_batch_tokens /
 * block_size for a prefill chunk, so that it is not what limits that many
 * sequences, and the rest of the budget goes to the global pool; when that
 * would make the local pool the larger one, both get budget / (bytes of a
 * block of every layer), as a single cache would; with neither option, both
 * hold one full context. Without local layers the local pool is empty and
 * the global pool is what the single cache was.
 *
 * px_forward() runs one pass over a px_batch: tokens of several sequences,
 * each with its position and its sequence's block table. Each token's K/V is
 * written to the cache slot its position maps to, then attention reads every
 * earlier position of that sequence through the block table (causal; local
 * layers only the last `sliding_window` positions, through the local table;
 * image rows also the rest of their image). Rows may carry input embeddings
 * instead of token ids (images). Logits are computed only for the rows that
 * ask for them.
 *
 * Owns: the mapping, weights (pointers into it), the KV arena, the worker
 * pool, scratch. Never touches requests, sockets or JSON.
 * Threads: one caller at a time for px_forward (the scheduler thread); the
 * config and tokenizer getters are safe from any thread after load. */
#ifndef PX_MODEL_H
#define PX_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef enum px_arch { PX_ARCH_GEMMA3 = 0, PX_ARCH_LLAMA = 1 } px_arch;

/* Hyper-parameters, from GGUF metadata "<arch>.*". */
typedef struct px_model_config {
    px_arch arch;
    int32_t n_vocab;
    int32_t n_embd; /* d_model */
    int32_t n_layer;
    int32_t n_head;      /* query heads */
    int32_t n_head_kv;   /* key/value heads (MQA/GQA) */
    int32_t head_dim;    /* per head (gemma3: attention.key_length) */
    int32_t n_ff;        /* FFN hidden size */
    int32_t n_ctx_train; /* context_length */
    float rms_eps;
    float rope_base;        /* global layers (gemma3: 1e6) */
    float rope_base_local;  /* gemma3 local layers: 1e4 */
    float rope_scale;       /* linear position scale factor (1 = none) */
    int32_t sliding_window; /* gemma3 local window; 0 = none */
    int32_t swa_period;     /* gemma3: every swa_period-th layer is global (6) */
    float attn_scale;       /* multiplies q·k (1/sqrt(head_dim) by default) */
    float final_softcap;    /* 0 = none */
    bool tied_output;       /* output projection = token embedding */
} px_model_config;

typedef struct px_model_opts {
    int n_threads;        /* <= 0: online CPUs */
    int max_batch_tokens; /* rows per forward (default 512) */
    int max_logit_rows;   /* rows that may ask for logits (default 64) */
    int kv_block_size;    /* tokens per KV block (default 16) */
    int64_t kv_blocks;    /* global pool; 0: from kv_cache_mb, else one full context */
    int64_t kv_cache_mb;  /* KV arena size in MiB when kv_blocks is 0 (0: unused) */
    int n_ctx;            /* 0: the model's trained context */
    /* Local pool (sliding-window layers): kv_blocks_local blocks if > 0,
     * else as many as kv_blocks, or from kv_cache_mb sized for
     * kv_local_seqs sequences (0: max_logit_rows); see above. */
    int64_t kv_blocks_local;
    int kv_local_seqs;
    /* Keep Q4_0 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K matrices in the file's row layout. By default
     * they are repacked at load into the layout of the kernel set's
     * lanes-are-rows kernels, when it has them (the same bytes in anonymous
     * memory; the file's pages are dropped; the results are bitwise the
     * same either way). */
    int no_repack;
} px_model_opts;
void px_model_opts_init(px_model_opts *o);

typedef struct px_model px_model;

px_model *px_model_load(const char *path, const px_model_opts *opts, char *err, size_t errlen);
void px_model_free(px_model *m);

const px_model_config *px_model_config_get(const px_model *m);
const px_tokenizer *px_model_tokenizer(const px_model *m);
int px_model_n_ctx(const px_model *m);
int px_model_kv_block_size(const px_model *m);
/* Blocks of the global pool (every layer's when there is no local pool). */
int64_t px_model_kv_blocks(const px_model *m);
/* Blocks of the local (sliding-window layers') pool; 0: the model has no
 * sliding-window layer, one table serves every layer. */
int64_t px_model_kv_blocks_local(const px_model *m);
/* Bytes of one block of each pool (K and V of its layers). */
int64_t px_model_kv_block_bytes(const px_model *m, int local);
int px_model_max_batch_tokens(const px_model *m);
int px_model_max_logit_rows(const px_model *m);
/* tokenizer.chat_template from the file (NUL-terminated), or NULL. */
const char *px_model_chat_template(const px_model *m);
/* The worker pool (shared with the vision tower). */
struct px_pool *px_model_pool(px_model *m);
/* A human-readable name (general.name, or the file's base name). */
const char *px_model_name(const px_model *m);
/* Bytes of weights read by one decode step with one logit row (for the
 * bandwidth bound in benchmarks). */
int64_t px_model_weight_bytes_per_token(const px_model *m);
/* Bytes allocated for the weights repacked at load (px_model_opts.
 * no_repack; whole 2 MiB pages), 0 if none: anonymous memory the process
 * holds in place of the file's pages. */
int64_t px_model_repacked_bytes(const px_model *m);

/* One sequence's view of one pool of the KV arena: physical block ids for
 * its logical blocks, in order; position p lives in blocks[p / block_size],
 * slot p % block_size. In a local-pool table, blocks whose positions are all
 * before the window of the sequence's first row in the batch
 * (pos - sliding_window + 1) are not read and may be -1. */
typedef struct px_batch_seq {
    const int32_t *blocks; /* (n_blocks) physical block ids */
    int32_t n_blocks;
} px_batch_seq;

/* One forward pass's input (plain data, borrowed for the call). */
typedef struct px_batch {
    int32_t n_tok;
    const int32_t *tokens;      /* (n_tok) token ids */
    const int32_t *pos;         /* (n_tok) position in its sequence */
    const int32_t *seq;         /* (n_tok) index into seqs */
    const uint8_t *want_logits; /* (n_tok) nonzero: compute logits for row */
    /* Multimodal rows (both NULL for text): embd[i], if not NULL, is row
     * i's input embedding (n_embd floats, used as given: no embedding
     * scale), replacing tokens[i] (still a valid id); attn_end[i] > pos[i]
     * lets row i also attend to its sequence's positions pos[i] + 1 ..
     * attn_end[i] - 1 (an image's rows see each other both ways). Those
     * positions must be written by this batch or an earlier one. */
    const float *const *embd;
    const int32_t *attn_end;
    int32_t n_seqs;
    const px_batch_seq *seqs; /* (n_seqs) global pool tables */
    /* (n_seqs) local pool tables, or NULL: the local layers use `seqs`
     * (whose ids must then be within the local pool too). */
    const px_batch_seq *lseqs;
} px_batch;

/* Runs the batch. Writes one row of n_vocab logits per row with
 * want_logits set, in batch order, to logits. A token at position p of a
 * sequence may attend to positions < p written by earlier calls or earlier
 * rows of this batch. Returns 0, or a negative PX_E* with err filled (bad
 * token id, position outside the block table, too many rows); on error the
 * cache contents of the batch's positions are unspecified. */
int px_forward(px_model *m, const px_batch *b, float *logits, char *err, size_t errlen);

/* Copies one physical block's K/V to another: copy-on-write for shared
 * prefix blocks. px_model_kv_copy works in the global pool (every layer
 * without a local pool), px_model_kv_copy_local in the local pool. */
void px_model_kv_copy(px_model *m, int32_t dst_block, int32_t src_block);
void px_model_kv_copy_local(px_model *m, int32_t dst_block, int32_t src_block);

#endif
