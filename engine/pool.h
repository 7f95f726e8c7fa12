/* pool.h — the worker thread pool: fork-join, one job at a time.
 *
 * Owns: N-1 worker threads (the caller is worker 0). px_pool_run() runs
 * fn(ctx, ith, nth) on every worker and returns when all have finished.
 * Workers spin briefly between jobs (decode issues hundreds of small jobs per
 * token) and then sleep on a condition variable, so an idle daemon uses no CPU.
 * Threads: one thread at a time may call px_pool_run (the scheduler thread in
 * the daemon). OpenBLAS is set to one thread: workers call sgemm on their own
 * slices, so there is never oversubscription. Allocates nothing per job. */
#ifndef PX_POOL_H
#define PX_POOL_H

typedef struct px_pool px_pool;
typedef void (*px_pool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 means the number of online CPUs. */
px_pool *px_pool_create(int n_threads);
void px_pool_destroy(px_pool *p);
int px_pool_size(const px_pool *p);
/* Runs fn on all workers (ith = 0..nth-1, the caller is ith 0) and waits. */
void px_pool_run(px_pool *p, px_pool_fn fn, void *ctx);

#endif
