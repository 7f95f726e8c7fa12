/* server.h — polluxd's process: the libuv loop, libmicrohttpd under it, the
 * routes, and the streams that carry scheduler events back to clients.
 *
 * One request's path (loop thread unless noted):
 *   MHD_run -> on_request (headers; limits, auth, route, method) -> body
 *   chunks appended up to max_body_bytes -> route handler ->
 *   px_api_openai_parse or px_api_gemini_parse -> px_sched_submit (the
 *   scheduler thread takes it from there: px_sched_step -> px_forward ->
 *   px_sample_next -> px__request_post -> on_notify, which queues the
 *   request on the wake list and uv_async_send) -> on_wake drains every
 *   ready request's events -> stream_take_events renders chunks in the
 *   connection's dialect (px_api_openai_chunk, or px_api_gemini_chunk framed
 *   as SSE events or JSON array elements) into the stream's buffer ->
 *   MHD_resume_connection -> sse_reader hands the bytes to MHD. A
 *   non-streamed request is suspended until DONE, then answered whole.
 * Cancel: MHD's completion callback for a connection that ends early calls
 *   px_request_cancel; the scheduler frees the blocks at its next step and
 *   posts FINISH + DONE; the stream object is freed once both the connection
 *   and the request are finished.
 * Backpressure: the scheduler never waits for a reader; a request whose
 *   outbox grows past its bound is ended with an error (request.h).
 * Threads: the loop thread owns MHD, connections and streams; the scheduler
 *   thread only touches px_request (through its outbox and the wake list,
 *   which has its own lock). */
#ifndef PX_SERVER_H
#define PX_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "api/gemini.h"
#include "api/openai.h"
#include "engine/model.h"
#include "scheduler/request.h"
#include "scheduler/sched.h"
#include "server/config.h"
#include "server/metrics.h"

typedef struct px_stream px_stream;

typedef struct px_server {
    px_config *cfg;
    px_model *model;
    struct px_vision *vision; /* the image tower (--mmproj), or NULL */
    px_sched *sched;
    const px_tokenizer *tok;
    px_api_limits limits;
    px_api_ctx api;
    char model_id[128];
    int64_t started_at; /* unix seconds */
    int is_demo;        /* serving the built-in random-weight model */
    char **keys;        /* API keys (NULL-terminated), or NULL = open */

    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t mhd_poll;   /* MHD's epoll fd */
    uv_timer_t mhd_timer; /* MHD's timeouts */
    uv_timer_t tick;      /* keepalive pings, drain deadline, watchdog */
    uv_async_t wake;      /* scheduler -> loop */
    uv_signal_t sig_term, sig_int, sig_hup;

    pthread_mutex_t wake_lock;
    px_request **wake_list; /* requests with new events, each holding a ref */
    int wake_n, wake_cap;

    px_stream *streams; /* live streams (loop thread) */
    int n_streams;
    struct px_decode *decodes; /* requests whose images are being decoded */
    int n_decodes;
    uint64_t next_id;
    int ready;     /* /ready answers 200 */
    int loading;   /* the model is being loaded (sched is NULL) */
    int exit_code; /* process exit status when the loop ends */
    int draining;  /* SIGTERM received */
    double drain_deadline;
    px_http_counters counters;
} px_server;

/* Starts MHD on the loop (listening on cfg host:port, or the socket systemd
 * passed). 0 or -1 with err. */
int px_http_start(px_server *s, char *err, size_t errlen);
/* Stops accepting new connections (drain). */
void px_http_quiesce(px_server *s);
void px_http_stop(px_server *s);
/* Lets MHD process whatever is pending (call after resuming connections). */
void px_http_run(px_server *s);

/* The scheduler's notify callback (scheduler thread). */
void px_server_on_notify(px_request *r, void *arg);
/* Drains the wake list (loop thread). */
void px_server_drain_wakes(px_server *s);
/* Keepalive pings and deadline bookkeeping, every second (loop thread). */
void px_server_tick(px_server *s);
/* The scheduler thread has finished no step (nor checked in while idle) for
 * cfg->stall_timeout_s: /health answers 503 and main.c stops feeding the
 * systemd watchdog. False while loading (no scheduler yet). Any thread. */
bool px_server_sched_stalled(px_server *s);

/* The per-connection state, created at the first callback of a request. */
typedef struct px_conn px_conn;
/* Which API shape a connection's answers take (errors included). */
typedef enum px_dialect {
    PX_DIALECT_OPENAI = 0,
    PX_DIALECT_GEMINI = 1,
} px_dialect;
/* Sets c->dialect from the raw URL (path and query) and headers, before
 * anything is answered, so that even 413/414 errors take the route's shape:
 * Gemini for /v1beta/... and for POST .../models/{model}:{method} under /v1,
 * and for GET /v1/models[/{id}] when the client sends x-goog-api-key,
 * x-goog-api-client or ?key= (Google's clients do; OpenAI's never). */
void px_route_classify(px_conn *c, const char *url);
/* Routes a complete request (headers and body read). Returns an MHD result. */
enum MHD_Result px_route(px_server *s, px_conn *c);
/* Called when MHD is done with a connection's request. */
void px_conn_completed(px_server *s, px_conn *c, enum MHD_RequestTerminationCode toe);

struct px_conn {
    px_server *srv;
    struct MHD_Connection *mc;
    uint64_t id;
    double t_start;
    char method[8];
    char path[256]; /* decoded URL path (no query) */
    char *body;
    size_t body_len, body_cap;
    int body_too_big;
    size_t discarded; /* bytes of an oversized body read and dropped */
    int status;       /* status sent (for the access log) */
    px_dialect dialect;
    int gemini_sse;           /* Gemini stream: ?alt=sse (SSE events); else a JSON array */
    px_stream *st;            /* generation in progress, if any */
    struct px_decode *decode; /* image decoding in progress, if any */
};

/* Queues a response (body copied) with status and content type; adds CORS,
 * Retry-After (429, 503) and WWW-Authenticate (401) as they apply. */
enum MHD_Result px_respond(px_conn *c, int status, const char *ctype, const char *body, size_t len);
/* Queues a JSON response (copied) with status. */
enum MHD_Result px_respond_json(px_conn *c, int status, const char *json, size_t len);
/* Queues an error in the connection's dialect (OpenAI or Google shape). */
enum MHD_Result px_respond_error(px_conn *c, const px_api_error *e);

/* decode.c: starts a parsed request whose images still need decoding (on
 * a worker thread, the connection suspended), then the generation; without
 * such images it is px_stream_start. Takes ownership of areq. */
typedef struct px_decode px_decode;
enum MHD_Result px_decode_start(px_server *s, px_conn *c, px_api_req *areq);
/* The access handler's call after a decode resumed the connection. */
/* The connection is ending (MHD's completion callback): a job still
 * running frees itself when done, a finished one that no handler call
 * picked up (the peer hung up while it ran) is freed now. */
void px_decode_conn_gone(px_conn *c);
enum MHD_Result px_decode_resumed(px_server *s, px_conn *c);
/* Shutdown: resumes the connections of decodes still running (before
 * stopping MHD); they are answered 503. */
void px_decode_detach_all(px_server *s);

/* Starts a generation for a parsed request (takes ownership of areq); the
 * answer takes c->dialect's shape (and c->gemini_sse's framing). */
enum MHD_Result px_stream_start(px_server *s, px_conn *c, px_api_req *areq);
/* Second call of the access handler after a non-streamed request resumed. */
enum MHD_Result px_stream_respond(px_server *s, px_conn *c);
/* The connection ended; frees the stream when the request is finished too. */
void px_stream_detach(px_server *s, px_stream *st, int client_gone);
/* Resumes every suspended connection (before stopping MHD). */
void px_stream_resume_all(px_server *s);
/* Cancels every stream (shutdown). */
void px_stream_cancel_all(px_server *s);

#endif
