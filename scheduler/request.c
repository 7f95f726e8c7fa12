/* request.c — px_request reference counting, inputs and the outbox. */
#include "request.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "px.h"
#include "stop.h"

const char *const px_finish_names[5] = {"none", "stop", "length", "cancelled", "error"};

double px_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

px_request *px_request_create(void) {
    px_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->n_choices = 1;
    r->max_pending = 4096;
    px_sampling_init(&r->sampling);
    atomic_init(&r->_refs, 1);
    atomic_init(&r->_cancel, 0);
    pthread_mutex_init(&r->_lock, NULL);
    return r;
}

void px_request_ref(px_request *r) {
    atomic_fetch_add_explicit(&r->_refs, 1, memory_order_relaxed);
}

static void free_stop(px_request *r) {
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->stop_len);
    r->stop = NULL;
    r->stop_len = NULL;
    r->n_stop = 0;
}

void px_request_unref(px_request *r) {
    if (!r || atomic_fetch_sub_explicit(&r->_refs, 1, memory_order_acq_rel) != 1) return;
    px_event_free_list(r->_head);
    pthread_mutex_destroy(&r->_lock);
    free(r->prompt);
    free_stop(r);
    for (int32_t i = 0; i < r->n_images; i++)
        free(r->images[i].rgb);
    free(r->images);
    free(r);
}

int px_request_add_image(px_request *r, int32_t pos, int32_t n_tokens, uint64_t hash, int width,
                         int height, uint8_t *rgb) {
    int32_t n = r->n_images;
    if (!rgb || width <= 0 || height <= 0 || n_tokens <= 0 || pos < 0 ||
        (n > 0 && pos < r->images[n - 1].pos + r->images[n - 1].n_tokens)) {
        free(rgb);
        return PX_EINVAL;
    }
    px_request_image *p = realloc(r->images, sizeof *p * (size_t)(n + 1));
    if (!p) {
        free(rgb);
        return PX_ENOMEM;
    }
    r->images = p;
    p[n] = (px_request_image){pos, n_tokens, hash, width, height, rgb};
    r->n_images = n + 1;
    return 0;
}

int px_request_set_prompt(px_request *r, const int32_t *ids, int32_t n) {
    if (n < 0 || (n > 0 && !ids)) return PX_EINVAL;
    int32_t *p = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!p) return PX_ENOMEM;
    if (n > 0) memcpy(p, ids, sizeof(int32_t) * (size_t)n);
    free(r->prompt);
    r->prompt = p;
    r->n_prompt = n;
    return 0;
}

int px_request_set_stop(px_request *r, const char *const *strs, const size_t *lens, int n) {
    if (n < 0 || n > PX_STOP_MAX) return PX_EINVAL;
    for (int i = 0; i < n; i++)
        if (!strs[i] || lens[i] == 0 || lens[i] > PX_STOP_MAX_LEN) return PX_EINVAL;
    free_stop(r);
    if (n == 0) return 0;
    r->stop = calloc((size_t)n, sizeof(char *));
    r->stop_len = calloc((size_t)n, sizeof(size_t));
    if (!r->stop || !r->stop_len) {
        free_stop(r);
        return PX_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        r->stop[i] = malloc(lens[i]);
        if (!r->stop[i]) {
            r->n_stop = i;
            free_stop(r);
            return PX_ENOMEM;
        }
        memcpy(r->stop[i], strs[i], lens[i]);
        r->stop_len[i] = lens[i];
        r->n_stop = i + 1;
    }
    return 0;
}

void px_request_cancel(px_request *r) {
    atomic_store_explicit(&r->_cancel, 1, memory_order_release);
}

int px_request_cancelled(const px_request *r) {
    return atomic_load_explicit(&r->_cancel, memory_order_acquire);
}

px_event *px_request_take_events(px_request *r) {
    pthread_mutex_lock(&r->_lock);
    px_event *ev = r->_head;
    r->_head = r->_tail = NULL;
    r->_n_events = 0;
    pthread_mutex_unlock(&r->_lock);
    return ev;
}

void px_event_free_list(px_event *ev) {
    while (ev) {
        px_event *next = ev->next;
        free(ev->text);
        free(ev);
        ev = next;
    }
}

int32_t px__request_post(px_request *r, px_event *ev) {
    ev->next = NULL;
    pthread_mutex_lock(&r->_lock);
    if (r->_tail)
        r->_tail->next = ev;
    else
        r->_head = ev;
    r->_tail = ev;
    int32_t n = ++r->_n_events;
    pthread_mutex_unlock(&r->_lock);
    return n;
}
