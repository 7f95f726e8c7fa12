/* request.h — px_request: one client request as the scheduler sees it, and
 * the outbox of events it produces.
 *
 * Lifecycle: the submitter (the HTTP loop thread, or a test) creates a
 * request, fills the "input" fields, and hands it to px_sched_submit(),
 * which takes its own reference. The scheduler thread turns it into one
 * sequence per choice, and posts events to the request's outbox: DELTA
 * (text and tokens), FINISH (one per choice, with the reason), and finally
 * DONE (usage), after which the scheduler drops its reference. The submitter
 * drains the outbox with px_request_take_events() whenever the notify
 * callback fires (wake-ups may coalesce: always drain everything).
 * Cancellation: any thread may call px_request_cancel(); the scheduler frees
 * the request's KV blocks at its next step and posts FINISH(CANCELLED) and
 * DONE.
 *
 * Field ownership: "input" fields are written before submit and never
 * after; the outbox is shared under `_lock`; `_cancel` and `_refs` are
 * atomic; "scheduler" fields belong to the scheduler thread.
 * Backpressure: a request whose outbox holds more than max_pending events
 * (its reader fell far behind) is cancelled with an error instead of
 * blocking the scheduler. */
#ifndef PX_REQUEST_H
#define PX_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

#define PX_MAX_CHOICES 16

typedef enum px_finish {
    PX_FINISH_NONE = 0,
    PX_FINISH_STOP = 1,      /* end-of-generation token or a stop string */
    PX_FINISH_LENGTH = 2,    /* max_tokens or the context is full */
    PX_FINISH_CANCELLED = 3, /* client gone or shutdown */
    PX_FINISH_ERROR = 4,     /* deadline, slow reader, engine fault */
} px_finish;
extern const char *const px_finish_names[5];

typedef enum px_event_type {
    PX_EVENT_DELTA = 0,  /* new text and/or tokens for one choice */
    PX_EVENT_FINISH = 1, /* a choice ended (finish, and error text if ERROR) */
    PX_EVENT_DONE = 2,   /* the request ended: usage; always the last event */
    PX_EVENT_PROMPT = 3, /* logprob of prompt token `index` (1..n_prompt-1), in order,
                          * before any DELTA (only with prompt_logprobs) */
} px_event_type;

typedef struct px_event {
    struct px_event *next;
    px_event_type type;
    int32_t choice; /* DELTA, FINISH: index among the request's choices */
    char *text;     /* DELTA, FINISH: bytes safe to emit (may be NULL) */
    size_t text_len;
    int32_t n_tokens;      /* DELTA: tokens covered (0 or 1) */
    px_sample token;       /* DELTA, PROMPT: the token, with logprobs if asked */
    int32_t index;         /* PROMPT: position of the token in the prompt */
    px_finish finish;      /* FINISH */
    int error;             /* FINISH with ERROR: PX_E* code (PX_ETOOBIG = deadline...) */
    char message[160];     /* FINISH with ERROR: client-safe message */
    int32_t prompt_tokens; /* DONE: usage */
    int32_t completion_tokens;
    int32_t cached_tokens; /* DONE: prompt tokens served from the prefix cache */
} px_event;

/* An image in the prompt: n_tokens embedding rows from prompt index pos on
 * (the prompt holds placeholder ids there). The scheduler encodes it with
 * the vision tower before the prefill reaches pos, and the whole span goes
 * into one forward pass (its rows attend to each other both ways). */
typedef struct px_request_image {
    int32_t pos, n_tokens;
    uint64_t hash;     /* of the encoded image: prefix-cache and reuse key */
    int width, height; /* of rgb */
    uint8_t *rgb;      /* (height, width, 3), owned by the request */
} px_request_image;

typedef struct px_request px_request;
typedef void (*px_request_notify_fn)(px_request *r, void *arg);

struct px_request {
    /* --- input: written by the submitter before px_sched_submit --- */
    uint64_t id;     /* for logs */
    int32_t *prompt; /* (n_prompt) token ids, owned (px_request_set_prompt) */
    int32_t n_prompt;
    int32_t max_tokens;   /* new tokens per choice; 0 = up to the context */
    int32_t n_choices;    /* 1..PX_MAX_CHOICES; choices share the prompt's blocks */
    px_sampling sampling; /* choice i uses seed + i */
    int ignore_eos;       /* keep going past end-of-generation tokens */
    int prompt_logprobs;  /* post PROMPT events: logprob of every prompt token
                           * after the first (evaluation harnesses) */
    int32_t prompt_top;   /* with prompt_logprobs: top alternatives, 0..20 */
    int priority;         /* higher is admitted first; FIFO within a priority */
    double deadline;      /* monotonic seconds (px_now()); 0 = none */
    int max_pending;      /* outbox bound before the reader is judged gone */
    char **stop;          /* (n_stop) stop strings, owned (px_request_set_stop) */
    size_t *stop_len;
    int n_stop;
    px_request_notify_fn notify; /* called by the scheduler thread after posting */
    void *notify_arg;
    void *owner;              /* the submitter's own state; never touched by the
                               * scheduler (the HTTP loop's stream object) */
    px_request_image *images; /* (n_images) by increasing pos, owned */
    int32_t n_images;

    /* --- shared --- */
    atomic_int _refs;
    atomic_int _cancel;
    pthread_mutex_t _lock; /* guards the outbox */
    px_event *_head, *_tail;
    int32_t _n_events;

    /* --- scheduler thread only --- */
    double _t_submit, _t_admit, _t_first;
    int32_t _choices_live; /* choices not yet finished */
    int32_t _completion_tokens;
    int32_t _cached_tokens;
    int _overflowed; /* outbox bound hit: cancel with an error */
};

/* A request with defaults (1 choice, px_sampling_init, max_pending 4096),
 * refcount 1. NULL on no memory. */
px_request *px_request_create(void);
void px_request_ref(px_request *r);
/* Drops a reference; the last one frees the request and any events left. */
void px_request_unref(px_request *r);

/* Copies n ids as the prompt. Returns 0 or PX_ENOMEM / PX_EINVAL. */
int px_request_set_prompt(px_request *r, const int32_t *ids, int32_t n);
/* Copies n stop strings (with byte lengths). PX_EINVAL if n or a length is
 * out of the matcher's limits (see stop.h). */
int px_request_set_stop(px_request *r, const char *const *strs, const size_t *lens, int n);

/* Appends an image, taking ownership of rgb (freed with the request, also
 * on error). Images must come in increasing pos order. 0 or PX_ENOMEM /
 * PX_EINVAL. */
int px_request_add_image(px_request *r, int32_t pos, int32_t n_tokens, uint64_t hash, int width,
                         int height, uint8_t *rgb);

/* Asks the scheduler to stop this request (any thread, idempotent). */
void px_request_cancel(px_request *r);
int px_request_cancelled(const px_request *r);

/* Takes every queued event (oldest first); the caller frees them with
 * px_event_free_list. Any thread. */
px_event *px_request_take_events(px_request *r);
void px_event_free_list(px_event *ev);

/* --- scheduler side --- */
/* Appends an event (taking ownership) and counts it; returns the outbox
 * length after the append. */
int32_t px__request_post(px_request *r, px_event *ev);

/* Monotonic clock in seconds. */
double px_now(void);

#endif
