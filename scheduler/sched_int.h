/* sched_int.h — the scheduler's private state, shared by sched.c (the loop,
 * admission, batch building, submit/teardown) and seq.c (a sequence's
 * lifecycle, blocks and events). Scheduler thread only unless a field says
 * otherwise. Not for use outside scheduler/. */
#ifndef PX_SCHED_INT_H
#define PX_SCHED_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blocks.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "request.h"
#include "sched.h"
#include "stats.h"
#include "stop.h"

struct px_vision;

typedef enum seq_state {
    SEQ_WAITING = 0, /* queued, never admitted */
    SEQ_PREFILL,     /* admitted; more than one token still to compute */
    SEQ_DECODE,      /* admitted; one token per step */
    SEQ_PREEMPTED,   /* blocks released; queued for recompute */
    SEQ_FINISHED,
} seq_state;

typedef struct seq {
    px_request *req;
    int32_t choice;
    seq_state state;
    int32_t *tok; /* (n_tok) prompt then generated ids */
    int32_t n_tok, cap_tok;
    int32_t n_prompt;
    int32_t n_gen;
    int32_t n_computed; /* tokens whose K/V are in the cache */
    int32_t *blk;       /* (n_blk) block table, global pool */
    int32_t n_blk, cap_blk;
    int32_t n_published; /* leading full blocks published in the prefix cache */
    int32_t pub_tail;    /* the published block naming the prefix up to block
                          * n_published - 1: blk[n_published - 1], or an equal
                          * block computed before (-1: none) */
    /* Local pool (sliding-window layers; unused without one): lblk[i] holds
     * the same positions as blk[i]; entries below l_first slid out of the
     * window and are -1. */
    int32_t *lblk; /* (n_lblk) */
    int32_t n_lblk, cap_lblk;
    int32_t l_first;
    uint64_t rng;
    px_detok detok;
    px_stop *stop;
    uint64_t order; /* admission order: larger = more recent */
    double t_last;  /* time of the last token (inter-token latency) */
    int forked;     /* choice 0: siblings created */
    /* this step */
    uint64_t planned_at; /* step_no of the last step that planned it */
    int32_t chunk;
    int32_t logit_row;    /* first logit row of this step, -1 if none */
    int32_t n_logit_rows; /* 1 (last row), or chunk (prompt logprobs) */
    int32_t n_plp;        /* prompt positions whose logprobs were posted */
} seq;

/* Cached embeddings of one image (images.c). */
typedef struct img_entry {
    uint64_t hash;
    float *embd;       /* (img_tokens, img_embd) */
    uint64_t last_use; /* step number */
} img_entry;

/* An image to encode: image idx of request r (a reference is held). */
typedef struct img_job {
    px_request *r;
    int32_t idx;
} img_job;

typedef struct seq_list {
    seq **v;
    int32_t n, cap;
} seq_list;

struct px_sched {
    px_model *model;
    const px_tokenizer *tok;
    px_sched_opts o;
    int bs;
    int n_ctx;
    int32_t n_vocab;
    int max_logit_rows;
    px_blocks *blocks;  /* the global pool (every layer without a local pool) */
    px_blocks *lblocks; /* the sliding-window layers' pool, or NULL */
    int32_t win;        /* sliding window (tokens) when lblocks */
    px_sampler *sampler;
    px_stats stats;

    /* inbox: any thread pushes, the scheduler drains */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    px_request **inbox;
    int32_t inbox_n, inbox_cap;
    int32_t queued; /* requests submitted and not yet admitted (under lock) */
    int stopping;
    pthread_t thread;
    int started;

    /* scheduler thread */
    seq_list waiting; /* front = next to admit */
    seq_list running; /* admission order, oldest first */
    uint64_t next_order;
    /* step buffers, sized at create */
    int32_t *b_tok, *b_pos, *b_seq;
    uint8_t *b_want;
    px_batch_seq *b_seqs, *b_lseqs;
    seq **plan;
    float *logits;
    int32_t *refs_scratch, *lrefs_scratch;
    /* step pacing (see plan_step) */
    int32_t prefill_cap;      /* prefill tokens allowed in a step with decodes */
    int32_t step_decode_rows; /* decodes planned this step */
    /* step time ~ a + b * rows, fitted by exponentially weighted least
     * squares over recent steps: sums of weights, x, y, x^2, x*y */
    double fit_w, fit_x, fit_y, fit_xx, fit_xy;

    /* images (images.c); all empty without a vision tower */
    int32_t img_tokens, img_embd; /* rows per image, floats per row */
    img_entry *img_cache;
    int32_t img_n, img_max;
    img_job *iq; /* iq[0] is being encoded when img_encoding */
    int32_t iq_n, iq_cap;
    int img_encoding;
    double img_t_start;
    float *img_pixels, *img_out; /* preprocessed image, tower output */
    const float **b_embd;        /* (max_batch_tokens) step buffers */
    int32_t *b_attn_end;
    uint64_t step_no;
    int64_t n_forward; /* forward passes started (the fault plan counts these) */
};

/* Shared between sched.c and seq.c (seq.c defines them; each is documented
 * there). */
int px__list_insert(seq_list *l, int32_t at, seq *q);
void px__list_remove(seq_list *l, seq *q);
void px__set_state(seq *q, seq_state to);
seq *px__seq_new(px_sched *s, px_request *r, int32_t choice);
void px__seq_free(seq *q);
void px__release_blocks(px_sched *s, seq *q);
void px__choice_done(px_sched *s, px_request *r, px_finish why);
void px__post_finish(px_request *r, int32_t choice, px_finish why, int error, const char *msg,
                     char *text, size_t text_len);
void px__finish_seq(px_sched *s, seq *q, px_finish why, int error, const char *msg);
int px__enqueue(px_sched *s, seq *q);
bool px__reserve(px_sched *s, seq *q, int32_t n);
int32_t px__prefix_lookup(px_sched *s, seq *q);
void px__publish_full(px_sched *s, seq *q);
int32_t px__local_first(const px_sched *s, int32_t pos);
void px__slide(px_sched *s, seq *q);
int px__has_nonfinite(const float *row, int32_t n);
void px__fork_choices(px_sched *s, seq *q, seq **out, int32_t *n_out);
void px__take_token(px_sched *s, seq *q, const float *row, double now);
void px__post_prompt_logprobs(px_sched *s, seq *q, int32_t pos0);

/* images.c */
int px__images_init(px_sched *s, char *err, size_t errlen);
void px__images_free(px_sched *s);
/* The cached embeddings of an image (NULL if not encoded yet). */
const float *px__image_embd(px_sched *s, uint64_t hash);
/* Trims a chunk of `want` tokens of q so that it stops before an image
 * whose embeddings are not ready (and queues it for encoding), and holds an
 * image's rows whole: a chunk that starts at an image takes all of it if
 * that fits in `max`, else nothing. */
int32_t px__image_limit(px_sched *s, seq *q, int32_t want, int32_t max);
/* The extra prefix-cache key of q's block `block`: its images' hashes and
 * offsets (0 for a block without image rows). */
uint64_t px__block_extra(const px_sched *s, const seq *q, int32_t block);
/* Fills b_embd / b_attn_end for q's chunk at batch rows row0..; returns the
 * number of image rows (-1 if an image is missing). */
int32_t px__batch_images(px_sched *s, seq *q, int32_t row0);
/* Runs queued vision work for about budget seconds (at least one unit if
 * any is queued). Returns the images still queued. */
int px__image_work(px_sched *s, double budget);

#endif
