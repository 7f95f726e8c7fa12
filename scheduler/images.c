/* images.c — images in the scheduler: the cache of image embeddings (by
 * content hash), the queue of images to encode and the time-sliced vision
 * work between forward passes, the limits image spans put on prefill
 * chunks (a span goes into one forward pass, whole), and the prefix-cache
 * keys of blocks that hold image rows. Scheduler thread only. */
#include <stdlib.h>
#include <string.h>

#include "px.h"
#include "sched_int.h"
#include "vision.h"

int px__images_init(px_sched *s, char *err, size_t errlen) {
    if (!s->o.vision) return 0;
    const px_vision_config *vc = px_vision_config_get(s->o.vision);
    const px_model_config *mc = px_model_config_get(s->model);
    if (vc->n_embd_out != mc->n_embd)
        return px_fail(err, errlen, PX_EINVAL,
                       "the vision tower projects to %d dimensions, the model has %d",
                       vc->n_embd_out, mc->n_embd);
    if (vc->n_tokens_out > s->o.max_batch_tokens)
        return px_fail(err, errlen, PX_EINVAL,
                       "an image has %d rows, more than a batch of %d tokens holds",
                       vc->n_tokens_out, s->o.max_batch_tokens);
    if (mc->sliding_window > 0 && vc->n_tokens_out > mc->sliding_window)
        return px_fail(err, errlen, PX_ENOTSUP,
                       "an image of %d rows does not fit the sliding window of %d",
                       vc->n_tokens_out, mc->sliding_window);
    s->img_tokens = vc->n_tokens_out;
    s->img_embd = vc->n_embd_out;
    /* Steps of 256 patch rows: at Gemma 3 4B's size a step is a few tenths
     * of a second at most (a whole block would be seconds). */
    px_vision_set_step_rows(s->o.vision, 256);
    size_t S = (size_t)vc->image_size;
    s->img_pixels = malloc(sizeof(float) * 3 * S * S);
    s->img_out = malloc(sizeof(float) * (size_t)s->img_tokens * (size_t)s->img_embd);
    s->img_max = PX_MAX(16, s->o.max_running);
    s->img_cache = calloc((size_t)s->img_max, sizeof *s->img_cache);
    s->b_embd = calloc((size_t)s->o.max_batch_tokens, sizeof *s->b_embd);
    s->b_attn_end = calloc((size_t)s->o.max_batch_tokens, sizeof *s->b_attn_end);
    if (!s->img_pixels || !s->img_out || !s->img_cache || !s->b_embd || !s->b_attn_end)
        return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    return 0;
}

void px__images_free(px_sched *s) {
    for (int32_t i = 0; i < s->img_n; i++)
        free(s->img_cache[i].embd);
    free(s->img_cache);
    for (int32_t i = 0; i < s->iq_n; i++)
        px_request_unref(s->iq[i].r);
    free(s->iq);
    free(s->img_pixels);
    free(s->img_out);
    free(s->b_embd);
    free(s->b_attn_end);
}

/* The cached embeddings of an image, or NULL; a hit counts as a use. */
static img_entry *lookup(px_sched *s, uint64_t hash) {
    for (int32_t i = 0; i < s->img_n; i++)
        if (s->img_cache[i].hash == hash) {
            s->img_cache[i].last_use = s->step_no;
            return &s->img_cache[i];
        }
    return NULL;
}

const float *px__image_embd(px_sched *s, uint64_t hash) {
    img_entry *e = lookup(s, hash);
    return e ? e->embd : NULL;
}

/* A slot for new embeddings: a free one, else the least recently used entry
 * not used this step (those may be in the batch being built), else a new
 * one. NULL on no memory. */
static img_entry *cache_slot(px_sched *s) {
    if (s->img_n < s->img_max) {
        img_entry *e = &s->img_cache[s->img_n];
        e->embd = malloc(sizeof(float) * (size_t)s->img_tokens * (size_t)s->img_embd);
        if (!e->embd) return NULL;
        s->img_n++;
        return e;
    }
    img_entry *old = NULL;
    for (int32_t i = 0; i < s->img_n; i++)
        if (s->img_cache[i].last_use < s->step_no &&
            (!old || s->img_cache[i].last_use < old->last_use))
            old = &s->img_cache[i];
    if (old) return old;
    /* Every image was needed this step: grow rather than evict one. */
    img_entry *v = realloc(s->img_cache, sizeof *v * (size_t)(s->img_max * 2));
    if (!v) return NULL;
    memset(v + s->img_max, 0, sizeof *v * (size_t)s->img_max);
    s->img_cache = v;
    s->img_max *= 2;
    return cache_slot(s);
}

/* Queues image idx of r for encoding unless it is queued already. */
static void want_encode(px_sched *s, px_request *r, int32_t idx) {
    for (int32_t i = 0; i < s->iq_n; i++)
        if (s->iq[i].r == r && s->iq[i].idx == idx) return;
    if (s->iq_n == s->iq_cap) {
        int32_t cap = s->iq_cap ? s->iq_cap * 2 : 8;
        img_job *v = realloc(s->iq, sizeof *v * (size_t)cap);
        if (!v) return; /* retried at the next step */
        s->iq = v;
        s->iq_cap = cap;
    }
    px_request_ref(r);
    s->iq[s->iq_n++] = (img_job){r, idx};
}

int32_t px__image_limit(px_sched *s, seq *q, int32_t want, int32_t max) {
    const px_request *r = q->req;
    int32_t c = q->n_computed;
    for (int32_t i = 0; i < r->n_images; i++) {
        const px_request_image *im = &r->images[i];
        int32_t p = im->pos, e = im->pos + im->n_tokens;
        if (e <= c) continue;
        if (p >= c + want) break;
        /* The chunk reaches into this image's rows. */
        if (!lookup(s, im->hash)) {
            want_encode(s, q->req, i);
            return PX_MAX(0, p - c);
        }
        if (c + want < e) {
            /* Stop before it, or (at its start) take all of it if it fits. */
            if (p > c) return p - c;
            return e - c <= max ? e - c : 0;
        }
    }
    return want;
}

/* Mixes a 64-bit value into a hash (splitmix64 finaliser). */
static uint64_t mix(uint64_t h, uint64_t v) {
    uint64_t x = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t px__block_extra(const px_sched *s, const seq *q, int32_t block) {
    const px_request *r = q->req;
    int32_t lo = block * s->bs, hi = lo + s->bs;
    uint64_t x = 0;
    for (int32_t i = 0; i < r->n_images; i++) {
        const px_request_image *im = &r->images[i];
        if (im->pos >= hi) break;
        if (im->pos + im->n_tokens <= lo) continue;
        x = mix(mix(x, im->hash), (uint64_t)(int64_t)(im->pos - lo));
    }
    return x;
}

int32_t px__batch_images(px_sched *s, seq *q, int32_t row0) {
    const px_request *r = q->req;
    int32_t c = q->n_computed, n_img_rows = 0;
    for (int32_t k = 0; k < q->chunk; k++) {
        s->b_embd[row0 + k] = NULL;
        s->b_attn_end[row0 + k] = 0;
    }
    for (int32_t i = 0; i < r->n_images; i++) {
        const px_request_image *im = &r->images[i];
        int32_t p = im->pos, e = im->pos + im->n_tokens;
        if (e <= c) continue;
        if (p >= c + q->chunk) break;
        const float *embd = px__image_embd(s, im->hash);
        if (!embd) return -1; /* px__image_limit makes this impossible */
        for (int32_t pos = PX_MAX(p, c); pos < e && pos < c + q->chunk; pos++) {
            s->b_embd[row0 + pos - c] = embd + (size_t)(pos - p) * (size_t)s->img_embd;
            s->b_attn_end[row0 + pos - c] = e;
            n_img_rows++;
        }
    }
    return n_img_rows;
}

/* Ends every sequence of r with an error (the image could not be encoded). */
static void fail_request(px_sched *s, px_request *r, int rc) {
    seq_list *lists[2] = {&s->running, &s->waiting};
    for (int l = 0; l < 2; l++)
        for (int32_t i = lists[l]->n - 1; i >= 0; i--)
            if (i < lists[l]->n && lists[l]->v[i]->req == r)
                px__finish_seq(s, lists[l]->v[i], PX_FINISH_ERROR, rc,
                               "the image could not be encoded");
}

static void pop_job(px_sched *s) {
    px_request_unref(s->iq[0].r);
    memmove(s->iq, s->iq + 1, sizeof *s->iq * (size_t)(s->iq_n - 1));
    s->iq_n--;
    s->img_encoding = 0;
}

int px__image_work(px_sched *s, double budget) {
    double t0 = px_now();
    int did = 0;
    while (s->iq_n > 0) {
        img_job *j = &s->iq[0];
        const px_request_image *im = &j->r->images[j->idx];
        if (!s->img_encoding) {
            /* Not wanted any more (cancelled, finished) or already there. */
            if (px_request_cancelled(j->r) || j->r->_choices_live == 0 || lookup(s, im->hash)) {
                pop_job(s);
                continue;
            }
            char err[160];
            int rc =
                px_vision_preprocess(s->o.vision, im->rgb, im->width, im->height, s->img_pixels);
            if (rc == 0) rc = px_vision_encode_begin(s->o.vision, s->img_pixels, err, sizeof err);
            if (rc < 0) {
                px_request *r = j->r;
                px_request_ref(r);
                pop_job(s);
                fail_request(s, r, rc);
                px_request_unref(r);
                continue;
            }
            s->img_encoding = 1;
            s->img_t_start = t0;
        } else if (px_request_cancelled(j->r)) {
            pop_job(s); /* abandoned mid-way: the next begin restarts the tower */
            continue;
        }
        if (did && px_now() - t0 >= budget) break;
        char err[160];
        int rc = px_vision_encode_step(s->o.vision, s->img_out, err, sizeof err);
        did = 1;
        if (rc == 1) continue;
        uint64_t hash = im->hash;
        px_request *r = j->r;
        px_request_ref(r);
        pop_job(s);
        img_entry *e = rc == 0 ? cache_slot(s) : NULL;
        if (rc == 0 && !e) rc = PX_ENOMEM;
        if (rc == 0) {
            memcpy(e->embd, s->img_out,
                   sizeof(float) * (size_t)s->img_tokens * (size_t)s->img_embd);
            e->hash = hash;
            e->last_use = s->step_no;
            px_stats_lock(&s->stats);
            s->stats.c.images_encoded++;
            px_stats_unlock(&s->stats);
        } else {
            fail_request(s, r, rc);
        }
        px_request_unref(r);
    }
    return s->iq_n;
}
