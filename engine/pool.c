/* pool.c — the fork-join worker pool.
 *
 * A job is published by bumping `gen` (release); workers that see the new
 * generation (acquire) read fn/ctx, run their share and decrement `pending`.
 * Between jobs a worker spins (pause, then sched_yield) for SPIN_NS, because
 * decode issues hundreds of jobs per token, and then sleeps on `wake`. The
 * caller only takes the mutex when some worker announced it sleeps: the
 * worker's `sleeping` increment and the caller's `gen` store are seq_cst, so
 * either the caller sees the sleeper or the sleeper sees the new job. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "cpu.h"

enum {
    PAUSE_NS = 20000, /* spin with pause this long, */
    SPIN_NS = 60000,  /* then with sched_yield up to this, then sleep */
};

typedef struct worker {
    px_pool *pool;
    int ith;
    pthread_t thread;
} worker;

struct px_pool {
    int n;           /* threads including the caller */
    worker *workers; /* n - 1 entries (ith 1..n-1) */
    px_pool_fn fn;   /* the current job; written before gen is bumped */
    void *ctx;
    atomic_uint gen;     /* job generation */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleeping; /* workers in (or entering) the condvar wait */
    atomic_bool stop;    /* set once by destroy */
    pthread_mutex_t mu;  /* guards only the condvar handshake */
    pthread_cond_t wake;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until gen differs from seen; returns the new generation. */
static unsigned wait_job(px_pool *p, unsigned seen) {
    int64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        if (i % 64 == 0) {
            int64_t el = now_ns() - t0;
            if (el > SPIN_NS) break;
            if (el > PAUSE_NS) sched_yield();
        }
        px_cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    px_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, w->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

static void publish(px_pool *p) {
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the sleeper's increment */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

px_pool *px_pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = px_cpu_count();
    px_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof(worker));
        if (!p->workers) goto fail;
    }
    for (int i = 1; i < n_threads; i++) {
        worker *w = &p->workers[i - 1];
        w->pool = p;
        w->ith = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->n = i; /* destroy joins only the threads that started */
            px_pool_destroy(p);
            return NULL;
        }
    }
    return p;
fail:
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

void px_pool_destroy(px_pool *p) {
    if (!p) return;
    atomic_store_explicit(&p->stop, true, memory_order_release);
    publish(p);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->workers[i - 1].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int px_pool_size(const px_pool *p) {
    return p->n;
}

void px_pool_run(px_pool *p, px_pool_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    publish(p);
    fn(ctx, 0, p->n);
    /* Workers' shares are short: spin, yielding once it takes a while. */
    for (unsigned i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; i++) {
        if (i > 2000)
            sched_yield();
        else
            px_cpu_relax();
    }
}
