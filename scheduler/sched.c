/* sched.c — the continuous-batching loop: admission, batch building under a
 * token budget, preemption, sampling, stop conditions and events. */
#include "sched.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "px.h"
#include "stop.h"
#include "tokenizer.h"

typedef enum seq_state {
    SEQ_WAITING = 0, /* queued, never admitted */
    SEQ_PREFILL,     /* admitted; more than one token still to compute */
    SEQ_DECODE,      /* admitted; one token per step */
    SEQ_PREEMPTED,   /* blocks released; queued for recompute */
    SEQ_FINISHED,
} seq_state;
static const char *const seq_state_names[] = {"WAITING", "PREFILL", "DECODE", "PREEMPTED",
                                              "FINISHED"};

typedef struct seq {
    px_request *req;
    int32_t choice;
    seq_state state;
    int32_t *tok; /* (n_tok) prompt then generated ids */
    int32_t n_tok, cap_tok;
    int32_t n_prompt;
    int32_t n_gen;
    int32_t n_computed;  /* tokens whose K/V are in the cache */
    int32_t *blk;        /* (n_blk) block table */
    int32_t n_blk, cap_blk;
    int32_t n_published; /* leading full blocks published in the prefix cache */
    uint64_t rng;
    px_detok detok;
    px_stop *stop;
    uint64_t order;      /* admission order: larger = more recent */
    double t_last;       /* time of the last token (inter-token latency) */
    int forked;          /* choice 0: siblings created */
    /* this step */
    int32_t chunk;
    int32_t logit_row;   /* first logit row of this step, -1 if none */
    int32_t n_logit_rows;/* 1 (last row), or chunk (prompt logprobs) */
    int32_t n_plp;       /* prompt positions whose logprobs were posted */
} seq;

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
    px_blocks *blocks;
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
    px_batch_seq *b_seqs;
    seq **plan;
    float *logits;
    int32_t *refs_scratch;
    /* step pacing (see plan_step) */
    int32_t prefill_cap;      /* prefill tokens allowed in a step with decodes */
    int32_t step_decode_rows; /* decodes planned this step */
    /* step time ~ a + b * rows, fitted by exponentially weighted least
     * squares over recent steps: sums of weights, x, y, x^2, x*y */
    double fit_w, fit_x, fit_y, fit_xx, fit_xy;
};

/* --- small containers ------------------------------------------------- */

static int list_reserve(seq_list *l, int32_t n) {
    if (n <= l->cap)
        return 0;
    int32_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    seq **v = realloc(l->v, sizeof(seq *) * (size_t)cap);
    if (!v)
        return PX_ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

static int list_insert(seq_list *l, int32_t at, seq *q) {
    if (list_reserve(l, l->n + 1) < 0)
        return PX_ENOMEM;
    memmove(l->v + at + 1, l->v + at, sizeof(seq *) * (size_t)(l->n - at));
    l->v[at] = q;
    l->n++;
    return 0;
}

static void list_remove(seq_list *l, seq *q) {
    for (int32_t i = 0; i < l->n; i++) {
        if (l->v[i] == q) {
            memmove(l->v + i, l->v + i + 1, sizeof(seq *) * (size_t)(l->n - i - 1));
            l->n--;
            return;
        }
    }
    assert(!"sequence not in list");
}

static int grow_i32(int32_t **v, int32_t *cap, int32_t need) {
    if (need <= *cap)
        return 0;
    int32_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    int32_t *n = realloc(*v, sizeof(int32_t) * (size_t)c);
    if (!n)
        return PX_ENOMEM;
    *v = n;
    *cap = c;
    return 0;
}

static void set_state(seq *q, seq_state to) {
    static const unsigned legal[] = {
        [SEQ_WAITING] = 1u << SEQ_PREFILL | 1u << SEQ_FINISHED,
        [SEQ_PREFILL] = 1u << SEQ_PREFILL | 1u << SEQ_DECODE | 1u << SEQ_PREEMPTED |
                        1u << SEQ_FINISHED,
        [SEQ_DECODE] = 1u << SEQ_DECODE | 1u << SEQ_PREEMPTED | 1u << SEQ_FINISHED,
        [SEQ_PREEMPTED] = 1u << SEQ_PREFILL | 1u << SEQ_FINISHED,
        [SEQ_FINISHED] = 0,
    };
    (void)seq_state_names;
    assert(legal[q->state] & (1u << to));
    q->state = to;
}

/* --- creation --------------------------------------------------------- */

void px_sched_opts_init(px_sched_opts *o) {
    o->max_batch_tokens = 512;
    o->max_running = 64;
    o->max_waiting = 1024;
    o->prefix_cache = true;
    o->itl_ratio = 2.0;
}

px_sched *px_sched_create(px_model *m, const px_sched_opts *o_in, char *err, size_t errlen) {
    px_sched_opts o;
    if (o_in)
        o = *o_in;
    else
        px_sched_opts_init(&o);
    if (o.max_batch_tokens <= 0 || o.max_running <= 0 || o.max_waiting <= 0 ||
        o.max_running > o.max_batch_tokens) {
        px_fail(err, errlen, PX_EINVAL, "invalid scheduler options");
        return NULL;
    }
    px_sched *s = calloc(1, sizeof *s);
    if (!s) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    px_stats_init(&s->stats);
    s->model = m;
    s->tok = px_model_tokenizer(m);
    s->o = o;
    s->bs = px_model_kv_block_size(m);
    s->n_ctx = px_model_n_ctx(m);
    s->n_vocab = px_model_config_get(m)->n_vocab;
    s->max_logit_rows = px_model_max_logit_rows(m);
    if (px_model_max_batch_tokens(m) < o.max_batch_tokens || s->max_logit_rows < 1) {
        px_fail(err, errlen, PX_EINVAL,
                "the model was loaded for batches of %d tokens, the scheduler needs %d",
                px_model_max_batch_tokens(m), o.max_batch_tokens);
        px_sched_destroy(s);
        return NULL;
    }
    int64_t nb = px_model_kv_blocks(m);
    s->blocks = px_blocks_create((int32_t)nb, s->bs, o.prefix_cache);
    s->sampler = px_sampler_create(s->n_vocab);
    size_t T = (size_t)o.max_batch_tokens;
    s->b_tok = malloc(sizeof(int32_t) * T);
    s->b_pos = malloc(sizeof(int32_t) * T);
    s->b_seq = malloc(sizeof(int32_t) * T);
    s->b_want = malloc(T);
    s->b_seqs = malloc(sizeof(px_batch_seq) * T);
    s->plan = malloc(sizeof(seq *) * T);
    s->logits = malloc(sizeof(float) * (size_t)s->max_logit_rows * (size_t)s->n_vocab);
    s->refs_scratch = malloc(sizeof(int32_t) * (size_t)nb);
    if (!s->blocks || !s->sampler || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want ||
        !s->b_seqs || !s->plan || !s->logits || !s->refs_scratch) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        px_sched_destroy(s);
        return NULL;
    }
    s->stats.c.kv_blocks_total = nb;
    s->stats.c.kv_blocks_free = nb;
    return s;
}

/* --- sequences -------------------------------------------------------- */

static seq *seq_new(px_sched *s, px_request *r, int32_t choice) {
    seq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->req = r;
    q->choice = choice;
    q->state = SEQ_WAITING;
    q->n_prompt = r->n_prompt;
    q->rng = px_rng_seed(r->sampling.seed + (uint64_t)choice);
    px_detok_init(&q->detok, s->tok, 0);
    q->logit_row = -1;
    if (grow_i32(&q->tok, &q->cap_tok, r->n_prompt + 1) < 0)
        goto fail;
    memcpy(q->tok, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
    q->n_tok = r->n_prompt;
    if (r->n_stop > 0) {
        q->stop = px_stop_create((const char *const *)r->stop, r->stop_len, r->n_stop);
        if (!q->stop)
            goto fail;
    }
    return q;
fail:
    free(q->tok);
    free(q);
    return NULL;
}

static void seq_free(seq *q) {
    px_stop_destroy(q->stop);
    free(q->tok);
    free(q->blk);
    free(q);
}

static void release_blocks(px_sched *s, seq *q) {
    /* Last to first: the prefix root becomes the most recently used cached
     * block, so LRU eviction takes leaves before the blocks they hang from. */
    for (int32_t i = q->n_blk - 1; i >= 0; i--)
        px_blocks_unref(s->blocks, q->blk[i]);
    q->n_blk = 0;
    q->n_published = 0;
    q->n_computed = 0;
}

static void notify(px_request *r) {
    if (r->notify)
        r->notify(r, r->notify_arg);
}

/* Posts an event; marks the request overflowed if its reader fell behind. */
static void post(px_request *r, px_event *ev) {
    if (px__request_post(r, ev) > r->max_pending && r->max_pending > 0)
        r->_overflowed = 1;
    notify(r);
}

static px_event *event_new(px_event_type type, int32_t choice) {
    px_event *ev = calloc(1, sizeof *ev);
    if (ev) {
        ev->type = type;
        ev->choice = choice;
    }
    return ev;
}

/* Ends the request once its last choice has finished: DONE with usage. */
static void choice_done(px_sched *s, px_request *r, px_finish why) {
    double now = px_now();
    if (--r->_choices_live > 0)
        return;
    px_event *ev = event_new(PX_EVENT_DONE, 0);
    if (ev) {
        ev->prompt_tokens = r->n_prompt;
        ev->completion_tokens = r->_completion_tokens;
        ev->cached_tokens = r->_cached_tokens;
        post(r, ev);
    }
    px_stats_lock(&s->stats);
    s->stats.c.requests_finished[why]++;
    px_hist_observe(&s->stats.e2e, now - r->_t_submit);
    px_stats_unlock(&s->stats);
    px_request_unref(r); /* the scheduler's reference */
}

static void post_finish(px_request *r, int32_t choice, px_finish why, int error,
                        const char *msg, char *text, size_t text_len) {
    px_event *ev = event_new(PX_EVENT_FINISH, choice);
    if (!ev) {
        free(text);
        return;
    }
    ev->finish = why;
    ev->error = error;
    ev->text = text;
    ev->text_len = text_len;
    if (msg)
        snprintf(ev->message, sizeof ev->message, "%s", msg);
    post(r, ev);
}

/* Finishes a sequence: releases its blocks, flushes held-back text for a
 * normal end, posts FINISH and, for the last choice, DONE. If choice 0 ends
 * before its siblings were forked, they end with it. */
static void finish_seq(px_sched *s, seq *q, px_finish why, int error, const char *msg) {
    px_request *r = q->req;
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (why == PX_FINISH_STOP || why == PX_FINISH_LENGTH) {
        char buf[64];
        int k = px_detok_flush(&q->detok, buf, sizeof buf);
        if (q->stop) {
            if (k > 0)
                px_stop_feed(q->stop, buf, (size_t)k, &text, &len, &cap);
            px_stop_flush(q->stop, &text, &len, &cap);
        } else if (k > 0 && (text = malloc((size_t)k))) {
            memcpy(text, buf, (size_t)k);
            len = (size_t)k;
        }
    }
    release_blocks(s, q);
    if (q->state == SEQ_WAITING || q->state == SEQ_PREEMPTED)
        list_remove(&s->waiting, q);
    else
        list_remove(&s->running, q);
    if (q->state == SEQ_WAITING) {
        pthread_mutex_lock(&s->lock);
        s->queued--;
        pthread_mutex_unlock(&s->lock);
    }
    set_state(q, SEQ_FINISHED);
    post_finish(r, q->choice, why, error, msg, text, len);
    int unforked = q->choice == 0 && !q->forked ? r->n_choices - 1 : 0;
    seq_free(q);
    for (int32_t c = 1; c <= unforked; c++) {
        post_finish(r, c, why, error, msg, NULL, 0);
        choice_done(s, r, why);
    }
    choice_done(s, r, why);
}

/* Queues q (new or preempted) in priority order; preempted ones go first. */
static int enqueue(px_sched *s, seq *q) {
    int32_t at = 0;
    if (q->state == SEQ_WAITING) {
        at = s->waiting.n;
        while (at > 0 && s->waiting.v[at - 1]->state == SEQ_WAITING &&
               s->waiting.v[at - 1]->req->priority < q->req->priority)
            at--;
    }
    return list_insert(&s->waiting, at, q);
}

/* Releases q's blocks and queues it at the front to be recomputed. */
static void preempt(px_sched *s, seq *q) {
    release_blocks(s, q);
    list_remove(&s->running, q);
    set_state(q, SEQ_PREEMPTED);
    if (list_insert(&s->waiting, 0, q) < 0) {
        /* Cannot requeue: end it rather than lose track of it. */
        q->state = SEQ_DECODE;
        list_insert(&s->running, s->running.n, q); /* capacity exists: it was just removed */
        finish_seq(s, q, PX_FINISH_ERROR, PX_ENOMEM, "out of memory");
        return;
    }
    px_stats_lock(&s->stats);
    s->stats.c.preemptions++;
    px_stats_unlock(&s->stats);
}

/* A block for q: a free or cached one, else preempt the most recently
 * admitted running sequence and retry. -1 if q itself had to go. */
static int32_t alloc_block(px_sched *s, seq *q) {
    for (;;) {
        int32_t b = px_blocks_alloc(s->blocks);
        if (b >= 0)
            return b;
        if (s->running.n == 0)
            return -1;
        seq *victim = s->running.v[0];
        for (int32_t i = 1; i < s->running.n; i++)
            if (s->running.v[i]->order > victim->order)
                victim = s->running.v[i];
        preempt(s, victim);
        if (victim == q)
            return -1;
    }
}

/* Makes positions [n_computed, n_computed + n) of q writable: allocates
 * missing blocks and copies shared ones (copy-on-write). False if q was
 * preempted on the way. */
static bool reserve(px_sched *s, seq *q, int32_t n) {
    int32_t first = q->n_computed / s->bs, last = (q->n_computed + n - 1) / s->bs;
    if (grow_i32(&q->blk, &q->cap_blk, last + 1) < 0)
        return false;
    for (int32_t i = first; i <= last && i < q->n_blk; i++) {
        int32_t old = q->blk[i];
        if (px_blocks_refcount(s->blocks, old) == 1)
            continue;
        assert(!px_blocks_is_published(s->blocks, old));
        int32_t nb = alloc_block(s, q);
        if (nb < 0)
            return false;
        px_model_kv_copy(s->model, nb, old);
        px_blocks_unref(s->blocks, old);
        q->blk[i] = nb;
    }
    while (q->n_blk <= last) {
        int32_t nb = alloc_block(s, q);
        if (nb < 0)
            return false;
        q->blk[q->n_blk++] = nb;
    }
    return true;
}

/* Reuses published blocks for q's leading full blocks (never the block of
 * its last token: at least one token is computed to get logits). */
static int32_t prefix_lookup(px_sched *s, seq *q) {
    int32_t max_full = (q->n_tok - 1) / s->bs, parent = -1, n = 0;
    if (grow_i32(&q->blk, &q->cap_blk, max_full + 1) < 0)
        return 0;
    while (n < max_full) {
        int32_t b = px_blocks_lookup(s->blocks, parent, q->tok + (size_t)n * s->bs, 0);
        if (b < 0)
            break;
        q->blk[n++] = b;
        parent = b;
    }
    q->n_blk = n;
    q->n_published = n;
    q->n_computed = n * s->bs;
    return n * s->bs;
}

/* Publishes q's newly completed full blocks in the prefix cache. */
static void publish_full(px_sched *s, seq *q) {
    while ((q->n_published + 1) * s->bs <= q->n_computed && q->n_published < q->n_blk) {
        int32_t i = q->n_published;
        px_blocks_publish(s->blocks, q->blk[i], i > 0 ? q->blk[i - 1] : -1,
                          q->tok + (size_t)i * s->bs, 0);
        q->n_published++;
    }
}

/* --- the step --------------------------------------------------------- */

static void drain_inbox(px_sched *s) {
    pthread_mutex_lock(&s->lock);
    int32_t n = s->inbox_n;
    px_request **in = s->inbox;
    s->inbox = NULL;
    s->inbox_n = s->inbox_cap = 0;
    pthread_mutex_unlock(&s->lock);
    for (int32_t i = 0; i < n; i++) {
        px_request *r = in[i];
        seq *q = seq_new(s, r, 0);
        if (!q || enqueue(s, q) < 0) {
            if (q)
                seq_free(q);
            pthread_mutex_lock(&s->lock);
            s->queued--;
            pthread_mutex_unlock(&s->lock);
            for (int32_t c = 0; c < r->n_choices; c++) {
                post_finish(r, c, PX_FINISH_ERROR, PX_ENOMEM, "out of memory", NULL, 0);
                choice_done(s, r, PX_FINISH_ERROR);
            }
        }
    }
    free(in);
}

/* Ends sequences whose request was cancelled, expired or stopped reading. */
static void reap(px_sched *s, double now) {
    seq_list *lists[2] = {&s->running, &s->waiting};
    for (int l = 0; l < 2; l++) {
        for (int32_t i = lists[l]->n - 1; i >= 0; i--) {
            if (i >= lists[l]->n)
                continue; /* a finish removed several */
            seq *q = lists[l]->v[i];
            px_request *r = q->req;
            if (px_request_cancelled(r))
                finish_seq(s, q, PX_FINISH_CANCELLED, 0, NULL);
            else if (r->_overflowed)
                finish_seq(s, q, PX_FINISH_ERROR, PX_EAGAIN,
                           "the client is not reading the response fast enough");
            else if (r->deadline > 0 && now > r->deadline)
                finish_seq(s, q, PX_FINISH_ERROR, PX_ETOOBIG, "deadline exceeded");
        }
    }
}

/* Choice 0 of a request that asked for prompt logprobs, until all are out. */
static int wants_prompt_lp(const seq *q) {
    return q->req->prompt_logprobs && q->choice == 0 && q->n_plp < q->n_prompt - 1;
}

/* Sets q's logit rows for a chunk of `want` tokens: every row while prompt
 * logprobs are wanted, else the last row if it completes the known tokens.
 * Returns the rows taken (want may shrink to the rows left). */
static int32_t take_logit_rows(const px_sched *s, seq *q, int32_t *want, int32_t pending,
                               int32_t *logit_rows) {
    int32_t left = s->max_logit_rows - *logit_rows;
    if (wants_prompt_lp(q)) {
        *want = PX_MIN(*want, left);
        q->n_logit_rows = *want;
    } else {
        q->n_logit_rows = *want == pending && left > 0 ? 1 : 0;
        if (*want == pending && left == 0)
            *want = 0;
    }
    q->logit_row = q->n_logit_rows > 0 ? *logit_rows : -1;
    *logit_rows += q->n_logit_rows;
    return q->n_logit_rows;
}

static int32_t blocks_for(const px_sched *s, int32_t n_tokens) {
    return (n_tokens + s->bs - 1) / s->bs;
}

/* Plans this step: returns the number of planned sequences in s->plan, each
 * with its chunk; blocks reserved. */
/* Fits step time = a + b * rows from the recent steps. 0 if not known yet. */
static int step_cost(const px_sched *s, double *a, double *b) {
    double det = s->fit_w * s->fit_xx - s->fit_x * s->fit_x;
    if (s->fit_w < 2.0 || det <= 1e-9 * s->fit_w * s->fit_xx)
        return 0;
    *b = (s->fit_w * s->fit_xy - s->fit_x * s->fit_y) / det;
    *a = (s->fit_y - *b * s->fit_x) / s->fit_w;
    if (!(*b > 0))
        return 0;
    if (*a < 0)
        *a = 0;
    return 1;
}

static void step_cost_add(px_sched *s, int32_t rows, double seconds) {
    const double keep = 0.95, x = rows;
    s->fit_w = s->fit_w * keep + 1.0;
    s->fit_x = s->fit_x * keep + x;
    s->fit_y = s->fit_y * keep + seconds;
    s->fit_xx = s->fit_xx * keep + x * x;
    s->fit_xy = s->fit_xy * keep + x * seconds;
}

/* The prefill tokens a step with n_decodes decodes may add: (itl_ratio - 1)
 * decode-steps' worth of time at the fitted cost per row. Small until the
 * costs are known. */
static int32_t prefill_cap(const px_sched *s, int32_t n_decodes) {
    double a, b;
    if (s->o.itl_ratio <= 1.0)
        return s->o.max_batch_tokens;
    if (!step_cost(s, &a, &b))
        return PX_MAX(16, s->o.max_batch_tokens / 16);
    double c = (s->o.itl_ratio - 1.0) * (a + b * n_decodes) / b;
    return (int32_t)PX_MAX(16.0, PX_MIN((double)s->o.max_batch_tokens, c));
}

static int32_t plan_step(px_sched *s) {
    /* Decodes first: the cap depends on how many run this step. */
    int32_t n_running_decodes = 0;
    for (int32_t i = 0; i < s->running.n; i++)
        n_running_decodes += s->running.v[i]->state == SEQ_DECODE;
    s->prefill_cap = prefill_cap(s, n_running_decodes);
    int32_t n_plan = 0, budget = s->o.max_batch_tokens, logit_rows = 0;
    /* Pass 0: running decodes, one token each, oldest first. Pass 1: partial
     * prefills in the budget left, capped while decodes run so that a step
     * with prefill stays within itl_ratio of a decode-only step. Preemption
     * takes the newest sequences, which are not planned yet (or are the one
     * asking). */
    int32_t n_decodes = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t i = 0; i < s->running.n && budget > 0;) {
            seq *q = s->running.v[i];
            int32_t pending = q->n_tok - q->n_computed;
            int is_decode = q->state == SEQ_DECODE && pending == 1;
            if (is_decode != (pass == 0)) {
                i++;
                continue;
            }
            int32_t cap = pass == 0 || n_decodes == 0 ? budget : PX_MIN(budget, s->prefill_cap);
            int32_t want = PX_MIN(pending, cap);
            int32_t rows_before = logit_rows;
            take_logit_rows(s, q, &want, pending, &logit_rows);
            if (want <= 0) {
                logit_rows = rows_before;
                i++;
                continue;
            }
            if (!reserve(s, q, want)) {
                /* q was preempted (removed from running) or out of memory. */
                logit_rows = rows_before;
                if (i < s->running.n && s->running.v[i] == q)
                    i++;
                continue;
            }
            q->chunk = want;
            s->plan[n_plan++] = q;
            budget -= want;
            if (pass == 0)
                n_decodes++;
            else if (n_decodes > 0)
                s->prefill_cap -= PX_MIN(s->prefill_cap, want);
            i++;
        }
    }
    s->step_decode_rows = n_decodes;
    if (n_decodes > 0)
        budget = PX_MIN(budget, s->prefill_cap);
    /* Admission: queue order, while the budget, the running limit and the
     * free blocks allow. Preempted sequences are first in the queue. */
    while (s->waiting.n > 0 && budget > 0 && s->running.n < s->o.max_running &&
           logit_rows < s->max_logit_rows) {
        seq *q = s->waiting.v[0];
        int first_time = q->state == SEQ_WAITING;
        int32_t hit = prefix_lookup(s, q);
        int32_t pending = q->n_tok - q->n_computed;
        int32_t want = PX_MIN(pending, budget);
        int32_t rows_before = logit_rows;
        take_logit_rows(s, q, &want, pending, &logit_rows);
        logit_rows = rows_before; /* taken for real below, once admitted */
        if (want <= 0) {
            release_blocks(s, q);
            break;
        }
        int32_t need = blocks_for(s, q->n_computed + want) - q->n_blk;
        int32_t reserve_for_running = s->running.n > 0 ? PX_MAX(1, px_blocks_total(s->blocks) / 100)
                                                       : 0;
        if (px_blocks_available(s->blocks) < need + reserve_for_running) {
            release_blocks(s, q);
            break;
        }
        list_remove(&s->waiting, q);
        list_insert(&s->running, s->running.n, q);
        q->order = ++s->next_order;
        set_state(q, SEQ_PREFILL);
        double now = px_now();
        px_stats_lock(&s->stats);
        s->stats.c.prefix_hit_tokens += (uint64_t)hit;
        s->stats.c.prefix_query_tokens += (uint64_t)q->n_tok;
        if (first_time && q->choice == 0)
            px_hist_observe(&s->stats.queue, now - q->req->_t_submit);
        px_stats_unlock(&s->stats);
        if (first_time && q->choice == 0) {
            q->req->_t_admit = now;
            q->req->_cached_tokens = hit;
            pthread_mutex_lock(&s->lock);
            s->queued--;
            pthread_mutex_unlock(&s->lock);
        }
        if (!reserve(s, q, want))
            break; /* not expected after the check above; q was requeued */
        take_logit_rows(s, q, &want, pending, &logit_rows);
        q->chunk = want;
        s->plan[n_plan++] = q;
        budget -= want;
    }
    return n_plan;
}

/* Appends text to the event, through the stop matcher. Returns 1 if a stop
 * string matched. */
static int emit_text(seq *q, const char *piece, int n, px_event *ev) {
    size_t cap = ev->text_len;
    if (q->stop)
        return px_stop_feed(q->stop, piece, (size_t)n, &ev->text, &ev->text_len, &cap) == 1;
    char *t = realloc(ev->text, ev->text_len + (size_t)n);
    if (!t)
        return 0;
    memcpy(t + ev->text_len, piece, (size_t)n);
    ev->text = t;
    ev->text_len += (size_t)n;
    return 0;
}

static int has_nonfinite(const float *row, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(row[i]))
            return 1;
    return 0;
}

/* Creates choices 1..n-1 of q's request sharing q's blocks, each about to
 * sample from the same logits row as q. */
static void fork_choices(px_sched *s, seq *q, seq **out, int32_t *n_out) {
    px_request *r = q->req;
    q->forked = 1;
    for (int32_t c = 1; c < r->n_choices; c++) {
        seq *f = seq_new(s, r, c);
        if (!f || grow_i32(&f->blk, &f->cap_blk, q->n_blk) < 0 || enqueue(s, f) < 0) {
            if (f)
                seq_free(f);
            post_finish(r, c, PX_FINISH_ERROR, PX_ENOMEM, "out of memory", NULL, 0);
            choice_done(s, r, PX_FINISH_ERROR);
            continue;
        }
        /* Move it from the queue into the running set, sharing q's blocks. */
        list_remove(&s->waiting, f);
        list_insert(&s->running, s->running.n, f);
        f->state = SEQ_PREFILL;
        f->order = ++s->next_order;
        for (int32_t i = 0; i < q->n_blk; i++) {
            px_blocks_ref(s->blocks, q->blk[i]);
            f->blk[i] = q->blk[i];
        }
        f->n_blk = q->n_blk;
        f->n_published = q->n_published;
        f->n_computed = q->n_computed;
        out[(*n_out)++] = f;
    }
}

/* Samples q's next token from row, appends it, posts its events and ends q
 * if a stop condition holds. */
static void take_token(px_sched *s, seq *q, const float *row, double now) {
    px_request *r = q->req;
    px_sample smp;
    int rc = px_sample_next(s->sampler, &r->sampling, &q->rng, row, q->tok, q->n_prompt,
                            q->n_gen, &smp);
    if (rc < 0 || grow_i32(&q->tok, &q->cap_tok, q->n_tok + 1) < 0) {
        finish_seq(s, q, PX_FINISH_ERROR, rc < 0 ? rc : PX_ENOMEM,
                   rc < 0 ? "sampling failed" : "out of memory");
        return;
    }
    q->tok[q->n_tok++] = smp.token;
    q->n_gen++;
    r->_completion_tokens++;
    if (q->state == SEQ_PREFILL)
        set_state(q, SEQ_DECODE);
    px_stats_lock(&s->stats);
    s->stats.c.generation_tokens++;
    if (r->_t_first == 0) {
        r->_t_first = now;
        px_hist_observe(&s->stats.ttft, now - r->_t_submit);
    } else if (q->t_last > 0) {
        px_hist_observe(&s->stats.itl, now - q->t_last);
    }
    px_stats_unlock(&s->stats);
    q->t_last = now;

    int eog = px_tokenizer_is_eog(s->tok, smp.token) && !r->ignore_eos;
    px_event *ev = event_new(PX_EVENT_DELTA, q->choice);
    int stopped = 0;
    if (ev) {
        ev->n_tokens = 1;
        ev->token = smp;
        if (!eog) {
            char piece[256];
            int k = px_detok_feed(&q->detok, smp.token, piece, sizeof piece);
            if (k > 0)
                stopped = emit_text(q, piece, k, ev);
        }
        post(r, ev);
    }
    if (eog || stopped)
        finish_seq(s, q, PX_FINISH_STOP, 0, NULL);
    else if ((r->max_tokens > 0 && q->n_gen >= r->max_tokens) || q->n_tok >= s->n_ctx)
        finish_seq(s, q, PX_FINISH_LENGTH, 0, NULL);
}

/* Posts the logprob of each prompt token that this step's rows predict
 * (row for position p predicts the token at p + 1), skipping ones already
 * posted before a preemption. */
static void post_prompt_logprobs(px_sched *s, seq *q, int32_t pos0) {
    for (int32_t k = 0; k < q->n_logit_rows; k++) {
        int32_t target = pos0 + k + 1;
        if (target >= q->n_prompt || target <= q->n_plp)
            continue;
        px_event *ev = event_new(PX_EVENT_PROMPT, 0);
        if (!ev)
            return;
        const float *row = s->logits + (size_t)(q->logit_row + k) * (size_t)s->n_vocab;
        px_sample_logprob(s->sampler, row, q->tok[target], q->req->prompt_top, &ev->token);
        ev->n_tokens = 1;
        ev->index = target;
        post(q->req, ev);
        q->n_plp = target;
    }
}

static void update_gauges(px_sched *s) {
    px_stats_lock(&s->stats);
    s->stats.c.running = s->running.n;
    s->stats.c.waiting = s->waiting.n;
    s->stats.c.kv_blocks_used = px_blocks_n_used(s->blocks);
    s->stats.c.kv_blocks_cached = px_blocks_n_cached(s->blocks);
    s->stats.c.kv_blocks_free = px_blocks_n_free(s->blocks);
    s->stats.c.last_step_time = px_now();
    px_stats_unlock(&s->stats);
}

int px_sched_step(px_sched *s) {
    drain_inbox(s);
    reap(s, px_now());
    int32_t n_plan = plan_step(s);
    int rc = 0;
    if (n_plan > 0) {
        /* The batch: each planned sequence's chunk, rows in plan order. */
        int32_t n = 0;
        for (int32_t p = 0; p < n_plan; p++) {
            seq *q = s->plan[p];
            s->b_seqs[p] = (px_batch_seq){q->blk, q->n_blk};
            for (int32_t k = 0; k < q->chunk; k++, n++) {
                int32_t pos = q->n_computed + k;
                s->b_tok[n] = q->tok[pos];
                s->b_pos[n] = pos;
                s->b_seq[n] = p;
                s->b_want[n] = q->n_logit_rows == q->chunk || (q->logit_row >= 0 && k == q->chunk - 1);
            }
        }
        px_batch b = {.n_tok = n, .tokens = s->b_tok, .pos = s->b_pos, .seq = s->b_seq,
                      .want_logits = s->b_want, .n_seqs = n_plan, .seqs = s->b_seqs};
        char err[256];
        double t0 = px_now();
        rc = px_forward(s->model, &b, s->logits, err, sizeof err);
        double now = px_now();
        if (rc == 0)
            step_cost_add(s, n, now - t0); /* for pacing prefill against decodes */
        if (rc < 0) {
            for (int32_t p = 0; p < n_plan; p++)
                finish_seq(s, s->plan[p], PX_FINISH_ERROR, rc, "internal error in the model");
        } else {
            px_stats_lock(&s->stats);
            s->stats.c.steps++;
            px_stats_unlock(&s->stats);
            /* Sequences forked this step sample from their parent's row. */
            seq *forks[PX_MAX_CHOICES];
            for (int32_t p = 0; p < n_plan; p++) {
                seq *q = s->plan[p];
                int32_t pos0 = q->n_computed;
                q->n_computed += q->chunk;
                if (q->n_logit_rows > 1 || (q->n_logit_rows == 1 && wants_prompt_lp(q)))
                    post_prompt_logprobs(s, q, pos0);
                if (q->state == SEQ_PREFILL && q->n_computed == q->n_tok && q->n_gen == 0) {
                    px_stats_lock(&s->stats);
                    s->stats.c.prompt_tokens += (uint64_t)q->n_prompt;
                    px_stats_unlock(&s->stats);
                }
                publish_full(s, q);
                if (q->logit_row < 0 || q->n_computed < q->n_tok)
                    continue;
                const float *row =
                    s->logits + (size_t)(q->logit_row + q->n_logit_rows - 1) * (size_t)s->n_vocab;
                if (has_nonfinite(row, s->n_vocab)) {
                    finish_seq(s, q, PX_FINISH_ERROR, PX_EINVAL, "internal error in the model");
                    continue;
                }
                int32_t n_forks = 0;
                if (q->choice == 0 && !q->forked && q->req->n_choices > 1)
                    fork_choices(s, q, forks, &n_forks);
                take_token(s, q, row, now);
                for (int32_t f = 0; f < n_forks; f++)
                    take_token(s, forks[f], row, now);
            }
        }
    }
    update_gauges(s);
    return s->running.n + s->waiting.n;
}

/* --- thread, submit, teardown ---------------------------------------- */

static void *sched_main(void *arg) {
    px_sched *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        int idle = s->inbox_n == 0 && s->running.n == 0 && s->waiting.n == 0;
        if (idle) {
            /* Wake at least every second so the watchdog sees the loop. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            pthread_mutex_unlock(&s->lock);
            update_gauges(s);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        px_sched_step(s);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int px_sched_start(px_sched *s) {
    if (s->started)
        return PX_EINVAL;
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0)
        return PX_ENOMEM;
    s->started = 1;
    return 0;
}

int px_sched_submit(px_sched *s, px_request *r, char *err, size_t errlen) {
    if (r->n_prompt <= 0 || !r->prompt)
        return px_fail(err, errlen, PX_EINVAL, "the prompt is empty");
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab)
            return px_fail(err, errlen, PX_EINVAL, "token id %d out of range", r->prompt[i]);
    if (r->n_choices < 1 || r->n_choices > PX_MAX_CHOICES)
        return px_fail(err, errlen, PX_EINVAL, "n must be between 1 and %d", PX_MAX_CHOICES);
    if (r->max_tokens < 0)
        return px_fail(err, errlen, PX_EINVAL, "max_tokens must not be negative");
    const px_sampling *sp = &r->sampling;
    if (!(sp->temperature >= 0) || !(sp->top_p > 0 && sp->top_p <= 1) ||
        !(sp->min_p >= 0 && sp->min_p <= 1) || !(sp->repetition_penalty > 0) ||
        sp->n_logprobs < 0 || sp->n_logprobs > PX_MAX_LOGPROBS || r->prompt_top < 0 ||
        r->prompt_top > PX_MAX_LOGPROBS)
        return px_fail(err, errlen, PX_EINVAL, "invalid sampling parameters");
    if (r->n_prompt >= s->n_ctx)
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the prompt has %d tokens; the context holds %d including the output",
                       r->n_prompt, s->n_ctx);
    int32_t max_new = r->max_tokens > 0 ? r->max_tokens : s->n_ctx - r->n_prompt;
    if ((int64_t)r->n_prompt + max_new > s->n_ctx)
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the prompt (%d tokens) plus max_tokens (%d) exceeds the context of %d",
                       r->n_prompt, max_new, s->n_ctx);
    int64_t need = blocks_for(s, r->n_prompt) +
                   (int64_t)r->n_choices * (blocks_for(s, max_new) + 1);
    if (need > px_blocks_total(s->blocks))
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the request needs %lld KV blocks; the cache has %d",
                       (long long)need, px_blocks_total(s->blocks));
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return px_fail(err, errlen, PX_EAGAIN, "the server is shutting down");
    }
    if (s->queued >= s->o.max_waiting) {
        pthread_mutex_unlock(&s->lock);
        return px_fail(err, errlen, PX_EAGAIN, "too many requests are waiting");
    }
    if (s->inbox_n == s->inbox_cap) {
        int32_t cap = s->inbox_cap ? s->inbox_cap * 2 : 16;
        px_request **v = realloc(s->inbox, sizeof *v * (size_t)cap);
        if (!v) {
            pthread_mutex_unlock(&s->lock);
            return px_fail(err, errlen, PX_ENOMEM, "out of memory");
        }
        s->inbox = v;
        s->inbox_cap = cap;
    }
    px_request_ref(r);
    r->_t_submit = px_now();
    r->_choices_live = r->n_choices;
    s->inbox[s->inbox_n++] = r;
    s->queued++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void px_sched_destroy(px_sched *s) {
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->started = 0;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_mutex_unlock(&s->lock);
    if (s->blocks && s->sampler) {
        drain_inbox(s);
        while (s->running.n > 0)
            finish_seq(s, s->running.v[s->running.n - 1], PX_FINISH_CANCELLED, 0, NULL);
        while (s->waiting.n > 0)
            finish_seq(s, s->waiting.v[s->waiting.n - 1], PX_FINISH_CANCELLED, 0, NULL);
    }
    free(s->running.v);
    free(s->waiting.v);
    free(s->inbox);
    px_blocks_destroy(s->blocks);
    px_sampler_destroy(s->sampler);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_seqs);
    free(s->plan);
    free(s->logits);
    free(s->refs_scratch);
    px_stats_deinit(&s->stats);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void px_sched_snapshot(px_sched *s, px_stats_counters *c, px_hist *ttft, px_hist *itl,
                       px_hist *e2e, px_hist *queue) {
    px_stats_snapshot(&s->stats, c, ttft, itl, e2e, queue);
}

int px_sched_check(px_sched *s, char *err, size_t errlen) {
    int32_t nb = px_blocks_total(s->blocks);
    memset(s->refs_scratch, 0, sizeof(int32_t) * (size_t)nb);
    seq_list *lists[2] = {&s->running, &s->waiting};
    for (int l = 0; l < 2; l++)
        for (int32_t i = 0; i < lists[l]->n; i++) {
            const seq *q = lists[l]->v[i];
            for (int32_t k = 0; k < q->n_blk; k++)
                s->refs_scratch[q->blk[k]]++;
            if (l == 1 && q->n_blk != 0)
                return px_fail(err, errlen, -1, "a queued sequence holds %d blocks", q->n_blk);
        }
    return px_blocks_check(s->blocks, s->refs_scratch, err, errlen);
}

void px_sched_clear_prefix_cache(px_sched *s) {
    px_blocks_clear_cache(s->blocks);
}
