/* sched.h — continuous batching: many requests share every forward pass.
 *
 * One scheduler thread loops: take new requests from the inbox, drop
 * cancelled and expired ones, build a batch (every running decode gets one
 * token; prefill chunks of admitted prompts fill the rest of the
 * max_batch_tokens budget, so a long prompt never stalls running streams for
 * more than one chunk), run px_forward, sample, and post events. A sequence
 * is WAITING, PREFILL (tokens still to compute), DECODE (one token per step)
 * or FINISHED.
 * KV memory: blocks come from px_blocks (free list, ref counts, prefix
 * cache). A new sequence first reuses published blocks of its prompt's prefix;
 * choices of one request share the prompt's blocks and copy a shared block on
 * their first divergent write. When a block is needed and none is free, the
 * most recently admitted running sequence is preempted: its blocks are
 * released (full ones stay in the prefix cache) and it goes back to the front
 * of the queue to be recomputed later, keeping the tokens it generated.
 * A model with sliding-window layers has two pools (engine/model.h), each
 * its own px_blocks, and a sequence a table in each: the local layers' table
 * keeps only the blocks of the window (a block is dropped once every
 * position in it is before n_computed - sliding_window + 1, the window of
 * the next row to compute; image rows attend within that window too, since
 * an image fits the window and goes into one chunk), so a decoding sequence
 * holds at most (sliding_window - 1) / block_size + 2 local blocks. Dropped
 * blocks stay in the local pool's prefix cache when published; a prefix hit
 * of P tokens takes the global blocks before P and the local blocks of the
 * window before P, for the longest P both pools have (else a shorter one).
 * Preemption and cancellation release both tables; choices share and copy
 * on write in both pools.
 * A request that could never fit (prompt + max_tokens beyond the context or
 * the whole global pool; or a window plus a prefill chunk beyond the whole
 * local pool: choices the local pool cannot hold together take turns,
 * through preemption) is refused at submit.
 * Images (with opts.vision): a prefill chunk stops before an image whose
 * embeddings are not ready; the image is queued for the vision tower, whose
 * work runs in time slices after each forward pass (about (itl_ratio - 1)
 * decode steps' worth while decodes run), one image at a time since an
 * image's 4096 patch rows already fill the matrix units. Embeddings are
 * cached by the image's content hash, and prefix-cache keys of blocks with
 * image rows include it, so a repeated image is neither encoded nor
 * computed again. An image's rows go into one forward pass, whole (they
 * attend to each other both ways), even past the pacing cap.
 * Engine faults: a failed px_forward ends every request with a sequence in
 * that pass, a non-finite logits row the request of its sequence (all its
 * choices, FINISH error "internal error in the model"; their blocks are
 * released, and K/V from the bad pass is never published for reuse); the
 * other requests go on untouched. px_sched_faults injects both (tests).
 * Owns: every sequence, the block manager, the sampler, the stats. Threads:
 * px_sched_submit and px_sched_snapshot from any thread; px_sched_step only
 * from the scheduler thread (or a test driving it without a thread). */
#ifndef PX_SCHED_H
#define PX_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "request.h"
#include "stats.h"

/* TEST ONLY: engine faults injected on purpose, to prove that a fault ends
 * just the requests it hits (tests/unit/scheduler/faults.c, polluxd's
 * PX_TEST_FAULTS). Steps are the scheduler's forward passes counted from 1;
 * 0 (or less) turns a fault off. Each fires once. */
typedef struct px_sched_faults {
    int64_t fail_step;   /* this pass counts as failed (PX_EIO), as a real engine error */
    int64_t nan_step;    /* this pass's logits row nan_row becomes NaN */
    int32_t nan_row;     /* a logits row of nan_step (0 = the first planned sequence's;
                          * nothing happens if the pass has fewer rows) */
    int64_t stall_step;  /* before this pass the thread sleeps stall_s seconds, as a */
    double stall_s;      /* stuck kernel would, without stamping progress */
    int64_t stall_every; /* > 0: also before every stall_every-th pass after it (a slow engine) */
} px_sched_faults;

/* Parses "fail_step=5,nan_step=9,nan_row=0,stall_step=20,stall_s=40,stall_every=1" (any
 * subset, any order) into *f (zeroed first). 0, or PX_EINVAL with err and
 * *f zeroed. */
int px_sched_faults_parse(const char *spec, px_sched_faults *f, char *err, size_t errlen);

typedef struct px_sched_opts {
    int max_batch_tokens;     /* tokens per step (default 512; <= the model's) */
    int max_running;          /* sequences in flight (default 64; <= model's logit rows) */
    int max_waiting;          /* queued requests before submit says PX_EAGAIN (default 1024) */
    bool prefix_cache;        /* reuse published prefix blocks (default true) */
    double itl_ratio;         /* while decodes run, prefill chunks are sized so a step
                               * takes at most this many decode-only steps' time, from
                               * measured costs (default 2; <= 1: no cap) */
    struct px_vision *vision; /* the image tower (borrowed), or NULL: no images */
    px_sched_faults faults;   /* TEST ONLY (default: none) */
} px_sched_opts;
void px_sched_opts_init(px_sched_opts *o);

typedef struct px_sched px_sched;

/* The model must have been loaded with max_batch_tokens and max_logit_rows at
 * least the options' (the scheduler needs one logit row per running
 * sequence). NULL + err on a mismatch or no memory. */
px_sched *px_sched_create(px_model *m, const px_sched_opts *o, char *err, size_t errlen);
/* Stops the thread if started, cancels every request (FINISH cancelled +
 * DONE), and frees everything. The model is not freed. */
void px_sched_destroy(px_sched *s);

/* Starts the scheduler thread. */
int px_sched_start(px_sched *s);

/* Validates and queues a request, taking a reference. Returns 0, PX_EINVAL
 * (empty prompt, bad token id, bad parameters), PX_ETOOBIG (can never fit:
 * err says why), or PX_EAGAIN (the queue is full). On error the request is
 * untouched and gets no events. Any thread. */
int px_sched_submit(px_sched *s, px_request *r, char *err, size_t errlen);

/* Runs one step (without a thread: tests). Returns the number of sequences
 * still waiting or running, or a negative PX_E* on an engine failure (the
 * affected requests were finished with an error). */
int px_sched_step(px_sched *s);

/* Copies the counters and histograms (any thread). last_step_time is
 * stamped at the end of every step and at least once a second while idle,
 * so its age is how long the scheduler thread has made no progress. */
void px_sched_snapshot(px_sched *s, px_stats_counters *c, px_hist *ttft, px_hist *itl, px_hist *e2e,
                       px_hist *queue);

/* For tests: checks block accounting against the live sequences' tables
 * (0 or -1 with a message). Scheduler thread / no thread only. */
int px_sched_check(px_sched *s, char *err, size_t errlen);
/* For tests: drops every cached prefix block. */
void px_sched_clear_prefix_cache(px_sched *s);

#endif
