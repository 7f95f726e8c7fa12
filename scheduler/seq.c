/* seq.c — one sequence's life in the scheduler: the containers it lives
 * in, its state transitions, its KV blocks (allocation, copy-on-write,
 * prefix reuse, release, preemption), sampling its next token and posting
 * the events. Scheduler thread only. */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "px.h"
#include "sched_int.h"
#include "stop.h"
#include "tokenizer.h"

static const char *const seq_state_names[] = {"WAITING", "PREFILL", "DECODE", "PREEMPTED",
                                              "FINISHED"};

/* --- small containers ------------------------------------------------- */

static int list_reserve(seq_list *l, int32_t n) {
    if (n <= l->cap) return 0;
    int32_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    seq **v = realloc(l->v, sizeof(seq *) * (size_t)cap);
    if (!v) return PX_ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

int px__list_insert(seq_list *l, int32_t at, seq *q) {
    if (list_reserve(l, l->n + 1) < 0) return PX_ENOMEM;
    memmove(l->v + at + 1, l->v + at, sizeof(seq *) * (size_t)(l->n - at));
    l->v[at] = q;
    l->n++;
    return 0;
}

void px__list_remove(seq_list *l, seq *q) {
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
    if (need <= *cap) return 0;
    int32_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    int32_t *n = realloc(*v, sizeof(int32_t) * (size_t)c);
    if (!n) return PX_ENOMEM;
    *v = n;
    *cap = c;
    return 0;
}

void px__set_state(seq *q, seq_state to) {
    static const unsigned legal[] = {
        [SEQ_WAITING] = 1u << SEQ_PREFILL | 1u << SEQ_FINISHED,
        [SEQ_PREFILL] =
            1u << SEQ_PREFILL | 1u << SEQ_DECODE | 1u << SEQ_PREEMPTED | 1u << SEQ_FINISHED,
        [SEQ_DECODE] = 1u << SEQ_DECODE | 1u << SEQ_PREEMPTED | 1u << SEQ_FINISHED,
        [SEQ_PREEMPTED] = 1u << SEQ_PREFILL | 1u << SEQ_FINISHED,
        [SEQ_FINISHED] = 0,
    };
    (void)seq_state_names;
    assert(legal[q->state] & (1u << to));
    q->state = to;
}

/* --- sequences -------------------------------------------------------- */

seq *px__seq_new(px_sched *s, px_request *r, int32_t choice) {
    seq *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->req = r;
    q->choice = choice;
    q->state = SEQ_WAITING;
    q->n_prompt = r->n_prompt;
    q->rng = px_rng_seed(r->sampling.seed + (uint64_t)choice);
    px_detok_init(&q->detok, s->tok, 0);
    q->logit_row = -1;
    q->pub_tail = -1;
    if (grow_i32(&q->tok, &q->cap_tok, r->n_prompt + 1) < 0) goto fail;
    memcpy(q->tok, r->prompt, sizeof(int32_t) * (size_t)r->n_prompt);
    q->n_tok = r->n_prompt;
    if (r->n_stop > 0) {
        q->stop = px_stop_create((const char *const *)r->stop, r->stop_len, r->n_stop);
        if (!q->stop) goto fail;
    }
    return q;
fail:
    free(q->tok);
    free(q);
    return NULL;
}

void px__seq_free(seq *q) {
    px_stop_destroy(q->stop);
    free(q->tok);
    free(q->blk);
    free(q->lblk);
    free(q);
}

void px__release_blocks(px_sched *s, seq *q) {
    /* Last to first: the prefix root becomes the most recently used cached
     * block, so LRU eviction takes leaves before the blocks they hang from. */
    for (int32_t i = q->n_blk - 1; i >= 0; i--)
        px_blocks_unref(s->blocks, q->blk[i]);
    for (int32_t i = q->n_lblk - 1; i >= q->l_first; i--)
        px_blocks_unref(s->lblocks, q->lblk[i]);
    q->n_blk = 0;
    q->n_lblk = 0;
    q->l_first = 0;
    q->n_published = 0;
    q->pub_tail = -1;
    q->n_computed = 0;
}

/* The first local block that computing position pos reads: its window
 * starts at pos - win + 1. */
int32_t px__local_first(const px_sched *s, int32_t pos) {
    int32_t lo = pos - s->win + 1;
    return lo > 0 ? lo / s->bs : 0;
}

/* Drops q's local blocks that slid out of the window of its next position
 * (every later row's window starts later). Published ones stay cached. */
void px__slide(px_sched *s, seq *q) {
    if (!s->lblocks) return;
    int32_t keep = PX_MIN(px__local_first(s, q->n_computed), q->n_lblk);
    for (int32_t i = q->l_first; i < keep; i++) {
        px_blocks_unref(s->lblocks, q->lblk[i]);
        q->lblk[i] = -1;
    }
    q->l_first = PX_MAX(q->l_first, keep);
}

static void notify(px_request *r) {
    if (r->notify) r->notify(r, r->notify_arg);
}

/* Posts an event; marks the request overflowed if its reader fell behind. */
static void post(px_request *r, px_event *ev) {
    if (px__request_post(r, ev) > r->max_pending && r->max_pending > 0) r->_overflowed = 1;
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
void px__choice_done(px_sched *s, px_request *r, px_finish why) {
    double now = px_now();
    if (--r->_choices_live > 0) return;
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

void px__post_finish(px_request *r, int32_t choice, px_finish why, int error, const char *msg,
                     char *text, size_t text_len) {
    px_event *ev = event_new(PX_EVENT_FINISH, choice);
    if (!ev) {
        free(text);
        return;
    }
    ev->finish = why;
    ev->error = error;
    ev->text = text;
    ev->text_len = text_len;
    if (msg) snprintf(ev->message, sizeof ev->message, "%s", msg);
    post(r, ev);
}

/* Finishes a sequence: releases its blocks, flushes held-back text for a
 * normal end, posts FINISH and, for the last choice, DONE. If choice 0 ends
 * before its siblings were forked, they end with it. */
void px__finish_seq(px_sched *s, seq *q, px_finish why, int error, const char *msg) {
    px_request *r = q->req;
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (why == PX_FINISH_STOP || why == PX_FINISH_LENGTH) {
        char buf[64];
        int k = px_detok_flush(&q->detok, buf, sizeof buf);
        if (q->stop) {
            if (k > 0) px_stop_feed(q->stop, buf, (size_t)k, &text, &len, &cap);
            px_stop_flush(q->stop, &text, &len, &cap);
        } else if (k > 0 && (text = malloc((size_t)k))) {
            memcpy(text, buf, (size_t)k);
            len = (size_t)k;
        }
    }
    px__release_blocks(s, q);
    if (q->state == SEQ_WAITING || q->state == SEQ_PREEMPTED)
        px__list_remove(&s->waiting, q);
    else
        px__list_remove(&s->running, q);
    if (q->state == SEQ_WAITING) {
        pthread_mutex_lock(&s->lock);
        s->queued--;
        pthread_mutex_unlock(&s->lock);
    }
    px__set_state(q, SEQ_FINISHED);
    px__post_finish(r, q->choice, why, error, msg, text, len);
    int unforked = q->choice == 0 && !q->forked ? r->n_choices - 1 : 0;
    px__seq_free(q);
    for (int32_t c = 1; c <= unforked; c++) {
        px__post_finish(r, c, why, error, msg, NULL, 0);
        px__choice_done(s, r, why);
    }
    px__choice_done(s, r, why);
}

/* Queues q (new or preempted) in priority order; preempted ones go first. */
int px__enqueue(px_sched *s, seq *q) {
    int32_t at = 0;
    if (q->state == SEQ_WAITING) {
        at = s->waiting.n;
        while (at > 0 && s->waiting.v[at - 1]->state == SEQ_WAITING &&
               s->waiting.v[at - 1]->req->priority < q->req->priority)
            at--;
    }
    return px__list_insert(&s->waiting, at, q);
}

/* Releases q's blocks and queues it at the front to be recomputed. */
static void preempt(px_sched *s, seq *q) {
    px__release_blocks(s, q);
    px__list_remove(&s->running, q);
    px__set_state(q, SEQ_PREEMPTED);
    if (px__list_insert(&s->waiting, 0, q) < 0) {
        /* Cannot requeue: end it rather than lose track of it. */
        q->state = SEQ_DECODE;
        px__list_insert(&s->running, s->running.n, q); /* capacity exists: it was just removed */
        px__finish_seq(s, q, PX_FINISH_ERROR, PX_ENOMEM, "out of memory");
        return;
    }
    px_stats_lock(&s->stats);
    s->stats.c.preemptions++;
    px_stats_unlock(&s->stats);
}

/* A block of pool for q: a free or cached one, else preempt the most
 * recently admitted running sequence not yet planned this step (q itself if
 * it is the newest such) and retry. -1 if q itself had to go. */
static int32_t alloc_block(px_sched *s, px_blocks *pool, seq *q) {
    for (;;) {
        int32_t b = px_blocks_alloc(pool);
        if (b >= 0) return b;
        if (s->running.n == 0) return -1;
        /* A planned one is in this step's batch already: an older prefill
         * (planned after the decodes) must not take a newer decode's
         * blocks from under it. */
        seq *victim = q;
        for (int32_t i = 0; i < s->running.n; i++) {
            seq *r = s->running.v[i];
            if (r->planned_at != s->step_no && r->order > victim->order) victim = r;
        }
        preempt(s, victim);
        if (victim == q) return -1;
    }
}

/* Makes blocks first..last of one pool's table writable: allocates missing
 * blocks and copies shared ones (copy-on-write). False if q was preempted
 * on the way (its tables are empty then). */
static bool reserve_pool(px_sched *s, seq *q, int local, int32_t first, int32_t last) {
    px_blocks *pool = local ? s->lblocks : s->blocks;
    int32_t **tbl = local ? &q->lblk : &q->blk;
    int32_t *n_tbl = local ? &q->n_lblk : &q->n_blk;
    if (grow_i32(tbl, local ? &q->cap_lblk : &q->cap_blk, last + 1) < 0) return false;
    for (int32_t i = first; i <= last && i < *n_tbl; i++) {
        int32_t old = (*tbl)[i];
        assert(old >= 0);
        if (px_blocks_refcount(pool, old) == 1) continue;
        assert(!px_blocks_is_published(pool, old));
        int32_t nb = alloc_block(s, pool, q);
        if (nb < 0) return false;
        if (local)
            px_model_kv_copy_local(s->model, nb, old);
        else
            px_model_kv_copy(s->model, nb, old);
        px_blocks_unref(pool, old);
        (*tbl)[i] = nb;
    }
    while (*n_tbl <= last) {
        int32_t nb = alloc_block(s, pool, q);
        if (nb < 0) return false;
        (*tbl)[(*n_tbl)++] = nb;
    }
    return true;
}

/* Makes positions [n_computed, n_computed + n) of q writable in both pools,
 * first dropping local blocks that slid out of the window. False if q was
 * preempted on the way. */
bool px__reserve(px_sched *s, seq *q, int32_t n) {
    int32_t first = q->n_computed / s->bs, last = (q->n_computed + n - 1) / s->bs;
    if (!reserve_pool(s, q, 0, first, last)) return false;
    if (!s->lblocks) return true;
    px__slide(s, q);
    assert(q->l_first <= first && q->n_lblk >= q->l_first);
    return reserve_pool(s, q, 1, first, last);
}

/* Reuses published blocks for q's leading full blocks (never the block of
 * its last token: at least one token is computed to get logits). Resuming
 * at position P = n blocks needs the global blocks before P and the local
 * blocks of the window before P: the longest such n is taken. */
int32_t px__prefix_lookup(px_sched *s, seq *q) {
    int32_t max_full = (q->n_tok - 1) / s->bs, parent = -1, n = 0;
    if (grow_i32(&q->blk, &q->cap_blk, max_full + 1) < 0 ||
        (s->lblocks && grow_i32(&q->lblk, &q->cap_lblk, max_full + 1) < 0))
        return 0;
    while (n < max_full) {
        int32_t b =
            px_blocks_find(s->blocks, parent, q->tok + (size_t)n * s->bs, px__block_extra(s, q, n));
        if (b < 0) break;
        q->blk[n++] = b;
        parent = b;
    }
    int32_t lo = 0;
    if (s->lblocks && n > 0) {
        for (int32_t j = 0; j < n; j++)
            q->lblk[j] =
                px_blocks_find_linked(s->lblocks, q->blk[j], px_blocks_gen(s->blocks, q->blk[j]),
                                      q->tok + (size_t)j * s->bs, px__block_extra(s, q, j));
        /* A missing local block j rules out every n whose window covers it:
         * try n = j next (windows only move back as n shrinks). */
        for (;;) {
            lo = px__local_first(s, n * s->bs);
            int32_t miss = n - 1;
            while (miss >= lo && q->lblk[miss] >= 0)
                miss--;
            if (miss < lo) break;
            n = miss;
        }
        for (int32_t j = 0; j < lo; j++)
            q->lblk[j] = -1;
        for (int32_t j = lo; j < n; j++)
            px_blocks_ref(s->lblocks, q->lblk[j]);
        q->n_lblk = n;
        q->l_first = lo;
    }
    for (int32_t j = 0; j < n; j++)
        px_blocks_ref(s->blocks, q->blk[j]);
    q->n_blk = n;
    q->n_published = n;
    q->pub_tail = n > 0 ? q->blk[n - 1] : -1;
    q->n_computed = n * s->bs;
    return n * s->bs;
}

/* Publishes q's newly completed full blocks in the prefix cache. A block
 * equal to one already published (computed again, e.g. after its local
 * twin was evicted) is not, but the keys of the blocks after it name the
 * published one, and its local twin is published linked to it: the next
 * request with this prefix finds both pools' blocks again. */
void px__publish_full(px_sched *s, seq *q) {
    while ((q->n_published + 1) * s->bs <= q->n_computed && q->n_published < q->n_blk) {
        int32_t i = q->n_published;
        uint64_t extra = px__block_extra(s, q, i);
        const int32_t *tok = q->tok + (size_t)i * s->bs;
        int32_t parent = i == 0 ? -1 : q->pub_tail >= 0 ? q->pub_tail : q->blk[i - 1];
        int32_t pub = q->blk[i];
        if (!px_blocks_publish(s->blocks, pub, parent, tok, extra)) {
            int32_t twin = px_blocks_find(s->blocks, parent, tok, extra);
            if (twin >= 0) pub = twin;
        }
        q->pub_tail = pub;
        if (s->lblocks && i >= q->l_first && i < q->n_lblk &&
            px_blocks_is_published(s->blocks, pub))
            px_blocks_publish_linked(s->lblocks, q->lblk[i], pub, px_blocks_gen(s->blocks, pub),
                                     tok, extra);
        q->n_published++;
    }
}

/* Appends text to the event, through the stop matcher. Returns 1 if a stop
 * string matched. */
static int emit_text(seq *q, const char *piece, int n, px_event *ev) {
    size_t cap = ev->text_len;
    if (q->stop)
        return px_stop_feed(q->stop, piece, (size_t)n, &ev->text, &ev->text_len, &cap) == 1;
    char *t = realloc(ev->text, ev->text_len + (size_t)n);
    if (!t) return 0;
    memcpy(t + ev->text_len, piece, (size_t)n);
    ev->text = t;
    ev->text_len += (size_t)n;
    return 0;
}

int px__has_nonfinite(const float *row, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(row[i])) return 1;
    return 0;
}

/* Creates choices 1..n-1 of q's request sharing q's blocks, each about to
 * sample from the same logits row as q. */
void px__fork_choices(px_sched *s, seq *q, seq **out, int32_t *n_out) {
    px_request *r = q->req;
    q->forked = 1;
    for (int32_t c = 1; c < r->n_choices; c++) {
        seq *f = px__seq_new(s, r, c);
        if (!f || grow_i32(&f->blk, &f->cap_blk, q->n_blk) < 0 ||
            grow_i32(&f->lblk, &f->cap_lblk, q->n_lblk) < 0 || px__enqueue(s, f) < 0) {
            if (f) px__seq_free(f);
            px__post_finish(r, c, PX_FINISH_ERROR, PX_ENOMEM, "out of memory", NULL, 0);
            px__choice_done(s, r, PX_FINISH_ERROR);
            continue;
        }
        /* Move it from the queue into the running set, sharing q's blocks. */
        px__list_remove(&s->waiting, f);
        px__list_insert(&s->running, s->running.n, f);
        f->state = SEQ_PREFILL;
        f->order = ++s->next_order;
        for (int32_t i = 0; i < q->n_blk; i++) {
            px_blocks_ref(s->blocks, q->blk[i]);
            f->blk[i] = q->blk[i];
        }
        f->n_blk = q->n_blk;
        for (int32_t i = 0; i < q->n_lblk; i++) {
            if (i >= q->l_first) px_blocks_ref(s->lblocks, q->lblk[i]);
            f->lblk[i] = q->lblk[i];
        }
        f->n_lblk = q->n_lblk;
        f->l_first = q->l_first;
        f->n_published = q->n_published;
        f->pub_tail = q->pub_tail;
        f->n_computed = q->n_computed;
        out[(*n_out)++] = f;
    }
}

/* Samples q's next token from row, appends it, posts its events and ends q
 * if a stop condition holds. */
void px__take_token(px_sched *s, seq *q, const float *row, double now) {
    px_request *r = q->req;
    px_sample smp;
    int rc =
        px_sample_next(s->sampler, &r->sampling, &q->rng, row, q->tok, q->n_prompt, q->n_gen, &smp);
    if (rc < 0 || grow_i32(&q->tok, &q->cap_tok, q->n_tok + 1) < 0) {
        px__finish_seq(s, q, PX_FINISH_ERROR, rc < 0 ? rc : PX_ENOMEM,
                       rc < 0 ? "sampling failed" : "out of memory");
        return;
    }
    q->tok[q->n_tok++] = smp.token;
    q->n_gen++;
    r->_completion_tokens++;
    if (q->state == SEQ_PREFILL) px__set_state(q, SEQ_DECODE);
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
            if (k > 0) stopped = emit_text(q, piece, k, ev);
        }
        post(r, ev);
    }
    if (eog || stopped)
        px__finish_seq(s, q, PX_FINISH_STOP, 0, NULL);
    else if ((r->max_tokens > 0 && q->n_gen >= r->max_tokens) || q->n_tok >= s->n_ctx)
        px__finish_seq(s, q, PX_FINISH_LENGTH, 0, NULL);
}

/* Posts the logprob of each prompt token that this step's rows predict
 * (row for position p predicts the token at p + 1), skipping ones already
 * posted before a preemption. */
void px__post_prompt_logprobs(px_sched *s, seq *q, int32_t pos0) {
    for (int32_t k = 0; k < q->n_logit_rows; k++) {
        int32_t target = pos0 + k + 1;
        if (target >= q->n_prompt || target <= q->n_plp) continue;
        px_event *ev = event_new(PX_EVENT_PROMPT, 0);
        if (!ev) return;
        const float *row = s->logits + (size_t)(q->logit_row + k) * (size_t)s->n_vocab;
        px_sample_logprob(s->sampler, row, q->tok[target], q->req->prompt_top, &ev->token);
        ev->n_tokens = 1;
        ev->index = target;
        post(q->req, ev);
        q->n_plp = target;
    }
}
