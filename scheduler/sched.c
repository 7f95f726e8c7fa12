/* sched.c — the continuous-batching loop: the inbox, reaping cancelled and
 * expired requests, planning each step (decodes, paced prefill chunks,
 * admission), running the engine, and the thread, submit and teardown.
 * Sequence lifecycle lives in seq.c. */
#include "sched.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blocks.h"
#include "px.h"
#include "sched_int.h"
#include "stop.h"
#include "tokenizer.h"

/* --- creation --------------------------------------------------------- */

void px_sched_opts_init(px_sched_opts *o) {
    o->max_batch_tokens = 512;
    o->max_running = 64;
    o->max_waiting = 1024;
    o->prefix_cache = true;
    o->itl_ratio = 2.0;
    o->vision = NULL;
    memset(&o->faults, 0, sizeof o->faults);
}

px_sched *px_sched_create(px_model *m, const px_sched_opts *o_in, char *err, size_t errlen) {
    px_sched_opts o;
    if (o_in)
        o = *o_in;
    else
        px_sched_opts_init(&o);
    if (o.max_batch_tokens <= 0 || o.max_running <= 0 || o.max_waiting <= 0 ||
        o.max_running > o.max_batch_tokens || !(o.faults.stall_s >= 0) || o.faults.stall_s > 3600 ||
        o.faults.nan_row < 0) {
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
    int64_t nl = px_model_kv_blocks_local(m);
    s->blocks = px_blocks_create((int32_t)nb, s->bs, o.prefix_cache);
    if (nl > 0) {
        s->lblocks = px_blocks_create((int32_t)nl, s->bs, o.prefix_cache);
        s->win = px_model_config_get(m)->sliding_window;
        s->lrefs_scratch = malloc(sizeof(int32_t) * (size_t)nl);
    }
    s->sampler = px_sampler_create(s->n_vocab);
    size_t T = (size_t)o.max_batch_tokens;
    s->b_tok = malloc(sizeof(int32_t) * T);
    s->b_pos = malloc(sizeof(int32_t) * T);
    s->b_seq = malloc(sizeof(int32_t) * T);
    s->b_want = malloc(T);
    s->b_seqs = malloc(sizeof(px_batch_seq) * T);
    s->b_lseqs = malloc(sizeof(px_batch_seq) * T);
    s->plan = malloc(sizeof(seq *) * T);
    s->logits = malloc(sizeof(float) * (size_t)s->max_logit_rows * (size_t)s->n_vocab);
    s->refs_scratch = malloc(sizeof(int32_t) * (size_t)nb);
    if (!s->blocks || !s->sampler || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want ||
        !s->b_seqs || !s->b_lseqs || !s->plan || !s->logits || !s->refs_scratch ||
        (nl > 0 && (!s->lblocks || !s->lrefs_scratch))) {
        px_fail(err, errlen, PX_ENOMEM, "out of memory");
        px_sched_destroy(s);
        return NULL;
    }
    if (px__images_init(s, err, errlen) < 0) {
        px_sched_destroy(s);
        return NULL;
    }
    s->stats.c.kv_blocks_total = nb;
    s->stats.c.kv_blocks_free = nb;
    s->stats.c.kv_local_total = nl;
    s->stats.c.kv_local_free = nl;
    return s;
}

/* --- fault injection (TEST ONLY) ---------------------------------------- */

/* One "key=value" of a fault plan into f. */
static int fault_item(char *item, px_sched_faults *f, char *err, size_t errlen) {
    char *eq = strchr(item, '='), *end = NULL;
    if (!eq || !eq[1]) return px_fail(err, errlen, PX_EINVAL, "'%s' is not key=value", item);
    *eq = 0;
    const char *val = eq + 1;
    int64_t *step = strcmp(item, "fail_step") == 0     ? &f->fail_step
                    : strcmp(item, "nan_step") == 0    ? &f->nan_step
                    : strcmp(item, "stall_step") == 0  ? &f->stall_step
                    : strcmp(item, "stall_every") == 0 ? &f->stall_every
                                                       : NULL;
    int is_row = strcmp(item, "nan_row") == 0, is_secs = strcmp(item, "stall_s") == 0;
    if (!step && !is_row && !is_secs)
        return px_fail(err, errlen, PX_EINVAL, "unknown key '%s'", item);
    /* Plain non-negative decimals only (strto* would take spaces, signs, "inf"). */
    int ok = strspn(val, is_secs ? "0123456789." : "0123456789") == strlen(val);
    double v = ok ? strtod(val, &end) : 0;
    if (!ok || *end || v > (is_secs ? 3600.0 : (double)INT32_MAX))
        return px_fail(err, errlen, PX_EINVAL, "%s: bad value '%s'", item, val);
    if (step) *step = (int64_t)v;
    if (is_row) f->nan_row = (int32_t)v;
    if (is_secs) f->stall_s = v;
    return 0;
}

int px_sched_faults_parse(const char *spec, px_sched_faults *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    for (const char *p = spec ? spec : ""; *p;) {
        size_t len = strcspn(p, ",");
        char item[64];
        int rc = 0;
        if (len == 0 || len >= sizeof item || (p[len] == ',' && !p[len + 1])) {
            rc = px_fail(err, errlen, PX_EINVAL, "an empty or overlong item");
        } else {
            memcpy(item, p, len);
            item[len] = 0;
            rc = fault_item(item, f, err, errlen);
        }
        if (rc < 0) {
            memset(f, 0, sizeof *f); /* all or nothing */
            return rc;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Before forward pass n: the injected stall. */
static void fault_before(const px_sched *s, int64_t n) {
    const px_sched_faults *f = &s->o.faults;
    if (f->stall_step <= 0 || n < f->stall_step || f->stall_s <= 0) return;
    if (n != f->stall_step && (f->stall_every <= 0 || (n - f->stall_step) % f->stall_every != 0))
        return;
    struct timespec ts = {(time_t)f->stall_s,
                          (long)((f->stall_s - (double)(time_t)f->stall_s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) /* resumed after a signal */
        ;
}

/* The logits rows this step's plan asked for. */
static int32_t logit_rows_of(const px_sched *s, int32_t n_plan) {
    int32_t rows = 0;
    for (int32_t p = 0; p < n_plan; p++)
        rows += s->plan[p]->n_logit_rows;
    return rows;
}

/* After forward pass n (of the first n_plan planned sequences): the
 * injected failure or NaN row. Returns the pass's result. */
static int fault_after(px_sched *s, int64_t n, int rc, int32_t n_plan, char *err, size_t errlen) {
    const px_sched_faults *f = &s->o.faults;
    if (rc == 0 && f->fail_step > 0 && n == f->fail_step)
        return px_fail(err, errlen, PX_EIO, "injected engine failure (test)");
    if (rc == 0 && f->nan_step > 0 && n == f->nan_step && f->nan_row < logit_rows_of(s, n_plan)) {
        float *row = s->logits + (size_t)f->nan_row * (size_t)s->n_vocab;
        for (int32_t v = 0; v < s->n_vocab; v++)
            row[v] = NAN;
    }
    return rc;
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
        seq *q = px__seq_new(s, r, 0);
        if (!q || px__enqueue(s, q) < 0) {
            if (q) px__seq_free(q);
            pthread_mutex_lock(&s->lock);
            s->queued--;
            pthread_mutex_unlock(&s->lock);
            for (int32_t c = 0; c < r->n_choices; c++) {
                px__post_finish(r, c, PX_FINISH_ERROR, PX_ENOMEM, "out of memory", NULL, 0);
                px__choice_done(s, r, PX_FINISH_ERROR);
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
            if (i >= lists[l]->n) continue; /* a finish removed several */
            seq *q = lists[l]->v[i];
            px_request *r = q->req;
            if (px_request_cancelled(r))
                px__finish_seq(s, q, PX_FINISH_CANCELLED, 0, NULL);
            else if (r->_overflowed)
                px__finish_seq(s, q, PX_FINISH_ERROR, PX_EAGAIN,
                               "the client is not reading the response fast enough");
            else if (r->deadline > 0 && now > r->deadline)
                px__finish_seq(s, q, PX_FINISH_ERROR, PX_ETOOBIG, "deadline exceeded");
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
        if (*want == pending && left == 0) *want = 0;
    }
    q->logit_row = q->n_logit_rows > 0 ? *logit_rows : -1;
    *logit_rows += q->n_logit_rows;
    return q->n_logit_rows;
}

static int32_t blocks_for(const px_sched *s, int32_t n_tokens) {
    return (n_tokens + s->bs - 1) / s->bs;
}

/* Local blocks q must allocate to compute its next n tokens (after its
 * blocks before the window are dropped). */
static int32_t local_need(const px_sched *s, const seq *q, int32_t n) {
    int32_t have = PX_MAX(q->n_lblk, px__local_first(s, q->n_computed));
    return PX_MAX(0, blocks_for(s, q->n_computed + n) - have);
}

/* Plans this step: returns the number of planned sequences in s->plan, each
 * with its chunk; blocks reserved. */
/* Fits step time = a + b * rows from the recent steps. 0 if not known yet. */
static int step_cost(const px_sched *s, double *a, double *b) {
    double det = s->fit_w * s->fit_xx - s->fit_x * s->fit_x;
    if (s->fit_w < 2.0 || det <= 1e-9 * s->fit_w * s->fit_xx) return 0;
    *b = (s->fit_w * s->fit_xy - s->fit_x * s->fit_y) / det;
    *a = (s->fit_y - *b * s->fit_x) / s->fit_w;
    if (!(*b > 0)) return 0;
    if (*a < 0) *a = 0;
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
    if (s->o.itl_ratio <= 1.0) return s->o.max_batch_tokens;
    if (!step_cost(s, &a, &b)) return PX_MAX(16, s->o.max_batch_tokens / 16);
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
            if (q->req->n_images > 0) want = px__image_limit(s, q, want, budget);
            int32_t rows_before = logit_rows;
            take_logit_rows(s, q, &want, pending, &logit_rows);
            if (want <= 0) {
                logit_rows = rows_before;
                i++;
                continue;
            }
            if (!px__reserve(s, q, want)) {
                /* q was preempted (removed from running) or out of memory. */
                logit_rows = rows_before;
                if (i < s->running.n && s->running.v[i] == q) i++;
                continue;
            }
            q->chunk = want;
            s->plan[n_plan++] = q;
            q->planned_at = s->step_no;
            budget -= want;
            if (pass == 0)
                n_decodes++;
            else if (n_decodes > 0)
                s->prefill_cap -= PX_MIN(s->prefill_cap, want);
            i++;
        }
    }
    s->step_decode_rows = n_decodes;
    if (n_decodes > 0) budget = PX_MIN(budget, s->prefill_cap);
    /* Admission: queue order, while the budget, the running limit and the
     * free blocks allow. Preempted sequences are first in the queue. */
    while (s->waiting.n > 0 && budget > 0 && s->running.n < s->o.max_running &&
           logit_rows < s->max_logit_rows) {
        seq *q = s->waiting.v[0];
        int first_time = q->state == SEQ_WAITING;
        int32_t hit = px__prefix_lookup(s, q);
        int32_t pending = q->n_tok - q->n_computed;
        int32_t want = PX_MIN(pending, budget);
        /* Waiting for an image's embeddings: admitted (the encoding starts)
         * but not planned until they are ready. */
        int img_wait = 0;
        if (q->req->n_images > 0 && want > 0) {
            want = px__image_limit(s, q, want, budget);
            img_wait = want == 0;
        }
        int32_t rows_before = logit_rows;
        if (!img_wait) take_logit_rows(s, q, &want, pending, &logit_rows);
        logit_rows = rows_before; /* taken for real below, once admitted */
        if (want <= 0 && !img_wait) {
            px__release_blocks(s, q);
            break;
        }
        int32_t need = blocks_for(s, q->n_computed + want) - q->n_blk;
        int32_t reserve_for_running =
            s->running.n > 0 ? PX_MAX(1, px_blocks_total(s->blocks) / 100) : 0;
        if (px_blocks_available(s->blocks) < need + reserve_for_running) {
            px__release_blocks(s, q);
            break;
        }
        if (s->lblocks &&
            px_blocks_available(s->lblocks) <
                local_need(s, q, want) +
                    (s->running.n > 0 ? PX_MAX(1, px_blocks_total(s->lblocks) / 100) : 0)) {
            px__release_blocks(s, q);
            break;
        }
        px__list_remove(&s->waiting, q);
        px__list_insert(&s->running, s->running.n, q);
        q->order = ++s->next_order;
        px__set_state(q, SEQ_PREFILL);
        double now = px_now();
        px_stats_lock(&s->stats);
        s->stats.c.prefix_hit_tokens += (uint64_t)hit;
        s->stats.c.prefix_query_tokens += (uint64_t)q->n_tok;
        if (first_time && q->choice == 0) px_hist_observe(&s->stats.queue, now - q->req->_t_submit);
        px_stats_unlock(&s->stats);
        if (first_time && q->choice == 0) {
            q->req->_t_admit = now;
            q->req->_cached_tokens = hit;
            pthread_mutex_lock(&s->lock);
            s->queued--;
            pthread_mutex_unlock(&s->lock);
        }
        if (img_wait) continue;
        if (!px__reserve(s, q, want))
            break; /* not expected after the check above; q was requeued */
        take_logit_rows(s, q, &want, pending, &logit_rows);
        q->chunk = want;
        s->plan[n_plan++] = q;
        q->planned_at = s->step_no;
        budget -= want;
    }
    return n_plan;
}

/* Seconds of vision work after this step: (itl_ratio - 1) decode steps'
 * worth while decodes run, else a slice short enough to admit new
 * requests promptly. */
static double vision_budget(const px_sched *s) {
    double a, b;
    if (s->step_decode_rows == 0) return 0.25;
    if (s->o.itl_ratio <= 1.0 || !step_cost(s, &a, &b)) return 0.01;
    return PX_MAX(0.002, (s->o.itl_ratio - 1.0) * (a + b * s->step_decode_rows));
}

static void update_gauges(px_sched *s) {
    px_stats_lock(&s->stats);
    s->stats.c.running = s->running.n;
    s->stats.c.waiting = s->waiting.n;
    s->stats.c.kv_blocks_used = px_blocks_n_used(s->blocks);
    s->stats.c.kv_blocks_cached = px_blocks_n_cached(s->blocks);
    s->stats.c.kv_blocks_free = px_blocks_n_free(s->blocks);
    if (s->lblocks) {
        s->stats.c.kv_local_used = px_blocks_n_used(s->lblocks);
        s->stats.c.kv_local_cached = px_blocks_n_cached(s->lblocks);
        s->stats.c.kv_local_free = px_blocks_n_free(s->lblocks);
    }
    s->stats.c.last_step_time = px_now();
    px_stats_unlock(&s->stats);
}

/* Ends every sequence of r with an engine error, planned or not: the
 * response is an error anyway, so its other choices stop too. Entries of
 * this step's plan are cleared so that the caller skips them. */
static void fail_request(px_sched *s, px_request *r, int32_t n_plan, int code) {
    px_request_ref(r); /* the last finish drops the scheduler's reference */
    seq_list *lists[2] = {&s->running, &s->waiting};
    for (int l = 0; l < 2; l++) {
        for (int32_t i = lists[l]->n - 1; i >= 0; i--) {
            if (i >= lists[l]->n) continue;
            seq *q = lists[l]->v[i];
            if (q->req != r) continue;
            for (int32_t p = 0; p < n_plan; p++)
                if (s->plan[p] == q) s->plan[p] = NULL;
            px__finish_seq(s, q, PX_FINISH_ERROR, code, "internal error in the model");
        }
    }
    px_request_unref(r);
}

int px_sched_step(px_sched *s) {
    drain_inbox(s);
    reap(s, px_now());
    s->step_no++;
    int32_t n_plan = plan_step(s);
    int rc = 0;
    if (n_plan > 0) {
        /* The batch: each planned sequence's chunk, rows in plan order. */
        int32_t n = 0, img_rows = 0;
        for (int32_t p = 0; p < n_plan; p++) {
            seq *q = s->plan[p];
            s->b_seqs[p] = (px_batch_seq){q->blk, q->n_blk};
            s->b_lseqs[p] = (px_batch_seq){q->lblk, q->n_lblk};
            if (s->b_embd) img_rows += PX_MAX(0, px__batch_images(s, q, n));
            for (int32_t k = 0; k < q->chunk; k++, n++) {
                int32_t pos = q->n_computed + k;
                s->b_tok[n] = q->tok[pos];
                s->b_pos[n] = pos;
                s->b_seq[n] = p;
                s->b_want[n] =
                    q->n_logit_rows == q->chunk || (q->logit_row >= 0 && k == q->chunk - 1);
            }
        }
        px_batch b = {.n_tok = n,
                      .tokens = s->b_tok,
                      .pos = s->b_pos,
                      .seq = s->b_seq,
                      .want_logits = s->b_want,
                      .embd = img_rows > 0 ? s->b_embd : NULL,
                      .attn_end = img_rows > 0 ? s->b_attn_end : NULL,
                      .n_seqs = n_plan,
                      .seqs = s->b_seqs,
                      .lseqs = s->lblocks ? s->b_lseqs : NULL};
        char err[256];
        int64_t pass = ++s->n_forward;
        fault_before(s, pass);
        double t0 = px_now();
        rc = px_forward(s->model, &b, s->logits, err, sizeof err);
        double now = px_now();
        rc = fault_after(s, pass, rc, n_plan, err, sizeof err); /* test-only faults */
        if (rc == 0) step_cost_add(s, n, now - t0); /* for pacing prefill against decodes */
        if (rc < 0) {
            /* Nothing of this pass can be trusted: every request in it ends.
             * K/V it may have written sit past n_computed, in blocks that
             * were never published, so the release frees them. */
            for (int32_t p = 0; p < n_plan; p++)
                if (s->plan[p]) fail_request(s, s->plan[p]->req, n_plan, rc);
        } else {
            px_stats_lock(&s->stats);
            s->stats.c.steps++;
            px_stats_unlock(&s->stats);
            /* Sequences forked this step sample from their parent's row. */
            seq *forks[PX_MAX_CHOICES];
            for (int32_t p = 0; p < n_plan; p++) {
                seq *q = s->plan[p];
                if (!q) continue; /* its request already ended with a fault this step */
                int32_t pos0 = q->n_computed;
                q->n_computed += q->chunk;
                /* A non-finite row means this sequence's state is garbage:
                 * end its request before anything is posted or its blocks
                 * are published for reuse. */
                if (q->n_logit_rows > 0 &&
                    px__has_nonfinite(s->logits + (size_t)q->logit_row * (size_t)s->n_vocab,
                                      q->n_logit_rows * s->n_vocab)) {
                    fail_request(s, q->req, n_plan, PX_EIO);
                    continue;
                }
                if (q->n_logit_rows > 1 || (q->n_logit_rows == 1 && wants_prompt_lp(q)))
                    px__post_prompt_logprobs(s, q, pos0);
                if (q->state == SEQ_PREFILL && q->n_computed == q->n_tok && q->n_gen == 0) {
                    px_stats_lock(&s->stats);
                    s->stats.c.prompt_tokens += (uint64_t)q->n_prompt;
                    px_stats_unlock(&s->stats);
                }
                px__publish_full(s, q);
                px__slide(s, q);
                if (q->logit_row < 0 || q->n_computed < q->n_tok) continue;
                const float *row =
                    s->logits + (size_t)(q->logit_row + q->n_logit_rows - 1) * (size_t)s->n_vocab;
                int32_t n_forks = 0;
                if (q->choice == 0 && !q->forked && q->req->n_choices > 1)
                    px__fork_choices(s, q, forks, &n_forks);
                px__take_token(s, q, row, now);
                for (int32_t f = 0; f < n_forks; f++)
                    px__take_token(s, forks[f], row, now);
            }
        }
    }
    if (s->iq_n > 0) px__image_work(s, vision_budget(s));
    update_gauges(s);
    return rc < 0 ? rc : s->running.n + s->waiting.n;
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
    if (s->started) return PX_EINVAL;
    update_gauges(s); /* progress is measured from now, even if the first step hangs */
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) return PX_ENOMEM;
    s->started = 1;
    return 0;
}

int px_sched_submit(px_sched *s, px_request *r, char *err, size_t errlen) {
    if (r->n_prompt <= 0 || !r->prompt)
        return px_fail(err, errlen, PX_EINVAL, "the prompt is empty");
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab)
            return px_fail(err, errlen, PX_EINVAL, "token id %d out of range", r->prompt[i]);
    if (r->n_images > 0 && !s->o.vision)
        return px_fail(err, errlen, PX_EINVAL, "this model takes no images");
    if (r->n_images > 0 && r->prompt_logprobs) /* logit rows would split image spans */
        return px_fail(err, errlen, PX_EINVAL, "prompt logprobs are not available with images");
    for (int32_t i = 0; i < r->n_images; i++) {
        const px_request_image *im = &r->images[i];
        if (im->n_tokens != s->img_tokens || im->pos < 1 || im->pos + im->n_tokens > r->n_prompt ||
            (i > 0 && im->pos < r->images[i - 1].pos + r->images[i - 1].n_tokens) || !im->rgb ||
            im->width <= 0 || im->height <= 0)
            return px_fail(err, errlen, PX_EINVAL, "image %d: bad placement or size", i);
    }
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
    int64_t need =
        blocks_for(s, r->n_prompt) + (int64_t)r->n_choices * (blocks_for(s, max_new) + 1);
    if (need > px_blocks_total(s->blocks))
        return px_fail(err, errlen, PX_ETOOBIG,
                       "the request needs %lld KV blocks; the cache has %d", (long long)need,
                       px_blocks_total(s->blocks));
    if (s->lblocks) {
        /* Local blocks one sequence holds at once: its window plus a
         * prefill chunk. Choices need not run together: those the local
         * pool cannot hold are preempted and recomputed later. */
        int64_t lneed = PX_MIN(need, (s->win + s->o.max_batch_tokens - 2) / s->bs + 2);
        if (lneed > px_blocks_total(s->lblocks))
            return px_fail(err, errlen, PX_ETOOBIG,
                           "the request needs %lld KV blocks of the sliding-window layers; the "
                           "cache has %d",
                           (long long)lneed, px_blocks_total(s->lblocks));
    }
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
    if (!s) return;
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
            px__finish_seq(s, s->running.v[s->running.n - 1], PX_FINISH_CANCELLED, 0, NULL);
        while (s->waiting.n > 0)
            px__finish_seq(s, s->waiting.v[s->waiting.n - 1], PX_FINISH_CANCELLED, 0, NULL);
    }
    free(s->running.v);
    free(s->waiting.v);
    free(s->inbox);
    px_blocks_destroy(s->blocks);
    px_blocks_destroy(s->lblocks);
    px_sampler_destroy(s->sampler);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_seqs);
    free(s->b_lseqs);
    free(s->plan);
    free(s->logits);
    free(s->refs_scratch);
    free(s->lrefs_scratch);
    px__images_free(s);
    px_stats_deinit(&s->stats);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void px_sched_snapshot(px_sched *s, px_stats_counters *c, px_hist *ttft, px_hist *itl, px_hist *e2e,
                       px_hist *queue) {
    px_stats_snapshot(&s->stats, c, ttft, itl, e2e, queue);
}

int px_sched_check(px_sched *s, char *err, size_t errlen) {
    int32_t nb = px_blocks_total(s->blocks);
    int32_t nl = s->lblocks ? px_blocks_total(s->lblocks) : 0;
    memset(s->refs_scratch, 0, sizeof(int32_t) * (size_t)nb);
    if (nl > 0) memset(s->lrefs_scratch, 0, sizeof(int32_t) * (size_t)nl);
    seq_list *lists[2] = {&s->running, &s->waiting};
    for (int l = 0; l < 2; l++)
        for (int32_t i = 0; i < lists[l]->n; i++) {
            const seq *q = lists[l]->v[i];
            for (int32_t k = 0; k < q->n_blk; k++)
                s->refs_scratch[q->blk[k]]++;
            for (int32_t k = 0; k < q->n_lblk; k++) {
                if ((k >= q->l_first) != (q->lblk[k] >= 0))
                    return px_fail(err, errlen, -1, "local block %d of %d is %d (first held %d)", k,
                                   q->n_lblk, q->lblk[k], q->l_first);
                if (q->lblk[k] >= 0) s->lrefs_scratch[q->lblk[k]]++;
            }
            if (l == 1 && (q->n_blk != 0 || q->n_lblk != 0))
                return px_fail(err, errlen, -1, "a queued sequence holds %d + %d blocks", q->n_blk,
                               q->n_lblk);
            if (l == 0 && nl > 0 && q->n_lblk - q->l_first > q->n_blk)
                return px_fail(err, errlen, -1, "a sequence holds %d local blocks for %d global",
                               q->n_lblk - q->l_first, q->n_blk);
        }
    int rc = px_blocks_check(s->blocks, s->refs_scratch, err, errlen);
    if (rc == 0 && nl > 0) rc = px_blocks_check(s->lblocks, s->lrefs_scratch, err, errlen);
    return rc;
}

void px_sched_clear_prefix_cache(px_sched *s) {
    px_blocks_clear_cache(s->blocks);
    if (s->lblocks) px_blocks_clear_cache(s->lblocks);
}
