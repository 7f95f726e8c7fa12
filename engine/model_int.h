/* model_int.h — the model's private state, shared by model.c (load) and
 * forward.c (the pass). Not for use outside engine/. */
#ifndef PX_MODEL_INT_H
#define PX_MODEL_INT_H

#include "gguf.h"
#include "matmul.h"
#include "model.h"
#include "pool.h"
#include "tokenizer.h"
#include "types.h"

/* One transformer block's weights; shapes as (rows, cols) = (out, in). */
typedef struct px_layer {
    px_tensor attn_norm;      /* (n_embd) */
    px_tensor wq;             /* (n_head*head_dim, n_embd) */
    px_tensor wk;             /* (n_head_kv*head_dim, n_embd) */
    px_tensor wv;             /* (n_head_kv*head_dim, n_embd) */
    px_tensor wo;             /* (n_embd, n_head*head_dim) */
    px_tensor q_norm;         /* gemma3: (head_dim) */
    px_tensor k_norm;         /* gemma3: (head_dim) */
    px_tensor post_attn_norm; /* gemma3: (n_embd) */
    px_tensor ffn_norm;       /* (n_embd) */
    px_tensor w_gate;         /* (n_ff, n_embd) */
    px_tensor w_up;           /* (n_ff, n_embd) */
    px_tensor w_down;         /* (n_embd, n_ff) */
    px_tensor post_ffn_norm;  /* gemma3: (n_embd) */
    int is_local;             /* sliding-window layer */
    size_t kv_off;            /* its K then V in the arena: offset of K, in elements */
    int64_t kv_n_blocks;      /* blocks of its pool (kv_blocks or kv_blocks_local) */
} px_layer;

/* Per-forward activations, sized for max_batch_tokens rows at load. */
typedef struct px_run_state {
    float *x;      /* (n_tok, n_embd) residual stream */
    float *xn;     /* (n_tok, n_embd) normed input / layer output */
    float *q;      /* (n_tok, n_head*head_dim) */
    float *k;      /* (n_tok, n_head_kv*head_dim) */
    float *v;      /* (n_tok, n_head_kv*head_dim) */
    float *att;    /* (n_tok, n_head*head_dim) attention output */
    float *gate;   /* (n_tok, n_ff) */
    float *up;     /* (n_tok, n_ff) */
    float *rope_g; /* (n_tok, head_dim) cos then sin halves, global base */
    float *rope_l; /* (n_tok, head_dim) local base */
    float *xl;     /* (max_logit_rows, n_embd) rows that want logits */
    float *scores; /* (n_threads, PX__ATTN_Q, n_ctx + 16) attention weights per worker */
    px_f16 *k16;   /* (n_head_kv*head_dim) a K row in F16 before its transposed store */
} px_run_state;

/* Query heads one attention pass serves (they share each K and V load). */
#define PX__ATTN_Q 4

struct px_model {
    px_model_config cfg;
    px_gguf *gguf;
    px_tokenizer *tok;
    px_pool *pool;
    px_matmul_ctx *mm;
    char name[128];
    char *chat_template; /* tokenizer.chat_template, or NULL */

    px_tensor tok_embd; /* (n_vocab, n_embd) */
    px_tensor out_norm; /* (n_embd) */
    px_tensor output;   /* (n_vocab, n_embd); = tok_embd when tied */
    px_layer *layers;   /* (n_layer) */
    float *inv_freq_g;  /* (head_dim/2) global rope frequencies (scaled) */
    float *inv_freq_l;  /* (head_dim/2) local rope frequencies */

    int n_ctx;
    int max_batch_tokens;
    int max_logit_rows;
    int n_threads;

    /* Paged KV arena: per layer, K then V, each (its pool's blocks,
     * block_size, n_head_kv, head_dim) F16; global layers have kv_blocks
     * blocks, local (sliding-window) layers kv_blocks_local. */
    int kv_block_size;
    int64_t kv_blocks;       /* global pool */
    int64_t kv_blocks_local; /* local pool; 0 without local layers */
    int n_local_layers;
    size_t kv_block_elems; /* block_size * n_head_kv * head_dim */
    px_f16 *kv;            /* one allocation for every layer */

    void *packed; /* repacked weights (one allocation), or NULL */
    size_t packed_bytes;

    px_run_state rs;
};

/* K (which=0) or V (which=1) of `layer`, block `block`. */
static inline px_f16 *px__kv_block(const struct px_model *m, int layer, int which, int64_t block) {
    const px_layer *L = &m->layers[layer];
    return m->kv + L->kv_off +
           ((size_t)which * (size_t)L->kv_n_blocks + (size_t)block) * m->kv_block_elems;
}

#endif
