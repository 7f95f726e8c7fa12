/* decode.c — images of a request decoded on libuv's worker threads, not on
 * the event loop: a 30-megapixel JPEG takes a good fraction of a second to
 * decode, which would stall every stream the loop serves. The connection is
 * suspended meanwhile; when the decode is done it is resumed, and the access
 * handler's next call starts the generation (or answers the error).
 *
 * Lifetime: a job is on the server's list from start to its done callback.
 * Its connection stays valid while suspended (MHD reports nothing for a
 * suspended connection); at shutdown px_decode_detach_all resumes them with
 * the job marked detached, and the handler answers 503. Loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "api/prompt.h"
#include "server/server.h"

struct px_decode {
    uv_work_t req;
    px_server *s;
    px_conn *c; /* NULL once detached */
    px_api_req areq;
    px_api_error e;
    int rc;
    int finished; /* the work is done (done callback ran) */
    px_decode *next;
};

static void decode_work(uv_work_t *req) {
    px_decode *j = req->data;
    j->rc = px_api_decode_images(&j->areq, &j->s->limits, &j->e);
}

static void unlink_job(px_server *s, px_decode *j) {
    for (px_decode **p = &s->decodes; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            s->n_decodes--;
            return;
        }
}

static void decode_done(uv_work_t *req, int status) {
    px_decode *j = req->data;
    px_server *s = j->s;
    unlink_job(s, j);
    if (status != 0 && j->rc == 0) { /* cancelled by libuv */
        j->rc = -1;
        px_api_fail(&j->e, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
    }
    j->finished = 1;
    if (!j->c) {
        px_api_req_free(&j->areq);
        free(j);
        return;
    }
    MHD_resume_connection(j->c->mc);
    px_http_run(s);
}

/* Decodes queued or running at once. libuv runs 4 at a time (its pool);
 * each holds up to max_image_pixels x 3 bytes while it runs, and each queued
 * one its compressed images. Beyond this, a request is told to retry (429)
 * rather than waiting in an unbounded queue (attacks.md item 46). */
#define MAX_DECODES 16

enum MHD_Result px_decode_start(px_server *s, px_conn *c, px_api_req *areq) {
    int pending = 0;
    for (int i = 0; i < areq->n_images; i++)
        pending += areq->images[i].data != NULL;
    if (pending == 0) return px_stream_start(s, c, areq);
    if (s->n_decodes >= MAX_DECODES) {
        px_api_req_free(areq);
        px_api_error e;
        px_api_fail(&e, 429, "rate_limit_error", NULL, NULL,
                    "too many images are being decoded; retry later");
        return px_respond_error(c, &e);
    }
    px_decode *j = calloc(1, sizeof *j);
    if (!j) {
        px_api_req_free(areq);
        px_api_error e;
        px_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return px_respond_error(c, &e);
    }
    j->s = s;
    j->c = c;
    j->areq = *areq;
    j->req.data = j;
    if (uv_queue_work(s->loop, &j->req, decode_work, decode_done) != 0) {
        px_api_req_free(&j->areq);
        free(j);
        px_api_error e;
        px_api_fail(&e, 503, "unavailable_error", NULL, NULL, "cannot decode images now");
        return px_respond_error(c, &e);
    }
    j->next = s->decodes;
    s->decodes = j;
    s->n_decodes++;
    c->decode = j;
    MHD_suspend_connection(c->mc);
    return MHD_YES;
}

void px_decode_conn_gone(px_conn *c) {
    px_decode *j = c->decode;
    if (!j) return;
    c->decode = NULL;
    if (j->finished) { /* resumed, but the peer had gone: no handler call came */
        px_api_req_free(&j->areq);
        free(j);
    } else {
        j->c = NULL; /* the done callback frees it */
    }
}

enum MHD_Result px_decode_resumed(px_server *s, px_conn *c) {
    px_decode *j = c->decode;
    if (!j->finished) {
        /* Resumed at shutdown while the worker still runs: the job frees
         * itself when it is done. */
        j->c = NULL;
        c->decode = NULL;
        px_api_error e;
        px_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
        return px_respond_error(c, &e);
    }
    c->decode = NULL;
    px_api_req areq = j->areq;
    int rc = j->rc;
    px_api_error e = j->e;
    free(j);
    if (rc < 0) {
        px_api_req_free(&areq);
        return px_respond_error(c, &e);
    }
    return px_stream_start(s, c, &areq);
}

void px_decode_detach_all(px_server *s) {
    for (px_decode *j = s->decodes; j; j = j->next)
        if (j->c) MHD_resume_connection(j->c->mc);
}
