/* stream.c — one generation seen from the HTTP side: submits the parsed
 * request to the scheduler, turns its events into SSE chunks or one whole
 * response, and hands bytes to libmicrohttpd as the connection can take them.
 * Output takes the connection's dialect: OpenAI SSE chunks ending in
 * "data: [DONE]", or Gemini GenerateContentResponse objects, as SSE events
 * ("data: {json}\r\n\r\n", no sentinel) with ?alt=sse or else as the
 * elements of one JSON array written progressively. A Gemini stream sends
 * text deltas as they come and one last chunk with every candidate's
 * finishReason and the usageMetadata.
 * Loop thread only, except px_server_on_notify. */
#include <config.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/px.h"
#include "server/log.h"
#include "server/server.h"

struct px_stream {
    px_server *srv;
    px_conn *conn; /* NULL once the connection is gone */
    px_request *r; /* our reference */
    px_api_req areq;
    px_api_resp_meta meta;
    char id[64];
    int streaming;
    px_dialect dialect;
    int gemini_sse; /* Gemini stream framing: SSE events, else a JSON array */
    int n_elements; /* Gemini JSON array: elements written (comma before the next) */
    px_buf out;     /* bytes not yet taken by MHD */
    size_t out_off;
    int suspended;
    int done;        /* DONE drained: the scheduler is finished with it */
    int peer_gone;   /* the tick saw the client hang up and cancelled */
    int ended;       /* SSE: the last bytes are queued */
    int whole_ready; /* non-streamed: `out` holds the whole body */
    int whole_status;
    double last_send;
    int n_choices;
    int role_sent[PX_MAX_CHOICES];
    px_buf text[PX_MAX_CHOICES];
    px_finish finish[PX_MAX_CHOICES];
    px_sample *lps[PX_MAX_CHOICES]; /* non-streamed logprobs */
    int n_lps[PX_MAX_CHOICES], cap_lps[PX_MAX_CHOICES];
    int64_t text_cp[PX_MAX_CHOICES]; /* code points sent per choice (text_offset) */
    px_sample *plps;                 /* prompt logprobs (completions echo), index 1.. */
    int n_plps, cap_plps;
    int echo_sent[PX_MAX_CHOICES];
    px_api_error err; /* first error reported by the scheduler */
    int has_err;
    px_stream *prev, *next;
};

/* --- lifetime --------------------------------------------------------- */

static void link_stream(px_server *s, px_stream *st) {
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
}

static void free_stream(px_server *s, px_stream *st) {
    if (st->prev)
        st->prev->next = st->next;
    else if (s->streams == st)
        s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    s->n_streams--;
    if (st->r) {
        st->r->owner = NULL;
        px_request_unref(st->r);
    }
    px_api_req_free(&st->areq);
    px_buf_free(&st->out);
    free(st->plps);
    for (int i = 0; i < PX_MAX_CHOICES; i++) {
        px_buf_free(&st->text[i]);
        free(st->lps[i]);
    }
    free(st);
}

static void maybe_free(px_server *s, px_stream *st) {
    if (st->done && !st->conn) free_stream(s, st);
}

void px_stream_detach(px_server *s, px_stream *st, int client_gone) {
    st->conn = NULL;
    st->suspended = 0;
    /* A hang-up the tick noticed first has already ended the request
     * (done), but it is still the client's disconnect. */
    if (client_gone && (!st->done || st->peer_gone)) s->counters.client_disconnects++;
    if (!st->done) px_request_cancel(st->r);
    maybe_free(s, st);
}

void px_stream_cancel_all(px_server *s) {
    for (px_stream *st = s->streams; st; st = st->next)
        if (!st->done) px_request_cancel(st->r);
}

static void resume(px_stream *st) {
    if (st->suspended && st->conn) {
        MHD_resume_connection(st->conn->mc);
        st->suspended = 0;
    }
}

void px_stream_resume_all(px_server *s) {
    for (px_stream *st = s->streams; st; st = st->next)
        resume(st);
}

/* --- rendering -------------------------------------------------------- */

/* Fills lp from a sample: token texts go to pool (cap bytes each, 21 slots). */
static void fill_logprob(const px_tokenizer *tok, const px_sample *smp, int n_top,
                         px_api_logprob *lp, char (*pool)[128]) {
    memset(lp, 0, sizeof *lp);
    /* Token texts as they appear in the response text (control tokens are
     * empty), so text_offset indexes the text. */
    int k = px_tokenizer_piece(tok, smp->token, 0, pool[0], sizeof pool[0]);
    lp->token = pool[0];
    lp->token_len = k > 0 ? (size_t)k : 0;
    lp->logprob = smp->logprob;
    lp->n_top = PX_MIN(n_top, smp->n_top);
    for (int i = 0; i < lp->n_top && i < 20; i++) {
        int t = px_tokenizer_piece(tok, smp->top_ids[i], 0, pool[i + 1], sizeof pool[i + 1]);
        lp->top_token[i] = pool[i + 1];
        lp->top_len[i] = t > 0 ? (size_t)t : 0;
        lp->top_logprob[i] = smp->top_logprobs[i];
    }
}

static const char *finish_name(px_finish f) {
    return f == PX_FINISH_LENGTH ? "length" : "stop";
}

/* Appends one Gemini JSON object in the stream's framing. */
static void gemini_frame(px_stream *st, const px_buf *json) {
    if (st->gemini_sse) {
        px_buf_append(&st->out, "data: ", 6);
        px_buf_append(&st->out, json->data, json->len);
        px_buf_append(&st->out, "\r\n\r\n", 4);
        return;
    }
    if (st->n_elements++ > 0) px_buf_append(&st->out, ",\r\n", 3);
    px_buf_append(&st->out, json->data, json->len);
}

static void sse_chunk(px_stream *st, int choice, const char *text, size_t len, const char *finish,
                      const px_sample *smp) {
    px_api_logprob lp;
    char pool[21][128];
    if (smp && st->areq.logprobs) {
        fill_logprob(st->srv->tok, smp, st->areq.top_logprobs, &lp, pool);
        lp.text_offset = st->text_cp[choice];
    }
    int role_first = st->meta.kind == PX_API_CHAT && !st->role_sent[choice];
    st->role_sent[choice] = 1;
    if (st->dialect == PX_DIALECT_GEMINI) {
        /* Finish reasons go out in the last chunk (gemini_end). */
        if (!finish) {
            px_buf b = {0};
            if (px_api_gemini_chunk(&b, &st->meta, choice, text, len,
                                    smp && st->areq.logprobs ? &lp : NULL) == 0)
                gemini_frame(st, &b);
            px_buf_free(&b);
        }
    } else {
        px_api_openai_chunk(&st->out, &st->meta, choice, role_first, text, len, finish,
                            smp && st->areq.logprobs ? &lp : NULL, st->areq.include_usage);
    }
    for (size_t i = 0; i < len; i++)
        st->text_cp[choice] += ((unsigned char)text[i] & 0xC0) != 0x80;
}

static void sse_error(px_stream *st, const px_api_error *e) {
    px_buf b = {0};
    if (st->dialect == PX_DIALECT_GEMINI) {
        if (px_api_gemini_error(&b, e) == 0) gemini_frame(st, &b);
    } else if (px_api_openai_error(&b, e) == 0) {
        px_buf_append(&st->out, "data: ", 6);
        px_buf_append(&st->out, b.data, b.len);
        px_buf_append(&st->out, "\n\n", 2);
    }
    px_buf_free(&b);
}

static void error_from_event(const px_event *ev, px_api_error *e) {
    if (strstr(ev->message, "deadline"))
        px_api_fail(e, 504, "timeout_error", "deadline_exceeded", NULL, "%s", ev->message);
    else if (ev->error == PX_EAGAIN)
        px_api_fail(e, 429, "rate_limit_error", NULL, NULL, "%s", ev->message);
    else
        px_api_fail(e, 500, "server_error", NULL, NULL, "%s", ev->message);
}

static void push_sample(px_sample **v, int *n, int *cap, const px_sample *smp) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        px_sample *nv = realloc(*v, sizeof *nv * (size_t)c);
        if (!nv) return;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = *smp;
}

static void keep_sample(px_stream *st, int choice, const px_sample *smp) {
    push_sample(&st->lps[choice], &st->n_lps[choice], &st->cap_lps[choice], smp);
}

/* The prompt's tokens as samples for echo: the first has no logprob. */
static int echo_len(const px_stream *st) {
    return st->areq.echo ? st->areq.n_prompt : 0;
}

static void echo_sample(const px_stream *st, int i, px_sample *out, int *missing) {
    if (i > 0 && i - 1 < st->n_plps) {
        *out = st->plps[i - 1];
        *missing = 0;
    } else {
        memset(out, 0, sizeof *out);
        out->token = st->areq.prompt[i];
        *missing = 1;
    }
}

/* Streams the echoed prompt for a choice before its first token: one chunk
 * per prompt token with logprobs, else one chunk with the whole text. */
static void send_echo(px_stream *st, int choice) {
    if (!st->areq.echo || st->echo_sent[choice]) return;
    st->echo_sent[choice] = 1;
    px_buf text = {0};
    for (int i = 0; i < st->areq.n_prompt; i++) {
        char piece[128];
        int k = px_tokenizer_piece(st->srv->tok, st->areq.prompt[i], 0, piece, sizeof piece);
        if (k < 0) k = 0;
        if (st->areq.logprobs) {
            px_sample smp;
            int missing;
            echo_sample(st, i, &smp, &missing);
            px_api_logprob lp;
            char pool[21][128];
            fill_logprob(st->srv->tok, &smp, st->areq.top_logprobs, &lp, pool);
            lp.missing = missing;
            lp.text_offset = st->text_cp[choice];
            px_api_openai_chunk(&st->out, &st->meta, choice, 0, piece, (size_t)k, NULL, &lp,
                                st->areq.include_usage);
            for (int b = 0; b < k; b++)
                st->text_cp[choice] += ((unsigned char)piece[b] & 0xC0) != 0x80;
        } else {
            px_buf_append(&text, piece, (size_t)k);
        }
    }
    if (!st->areq.logprobs && text.len > 0) sse_chunk(st, choice, text.data, text.len, NULL, NULL);
    px_buf_free(&text);
}

static void render_whole(px_stream *st, const px_event *done) {
    px_api_choice ch[PX_MAX_CHOICES];
    px_api_logprob *lps[PX_MAX_CHOICES] = {0};
    char(*pool)[21][128] = NULL;
    int total = 0, n_echo = echo_len(st);
    for (int c = 0; c < st->n_choices; c++)
        total += st->n_lps[c] + n_echo;
    px_buf echo = {0};
    for (int i = 0; i < n_echo; i++) {
        char piece[128];
        int k = px_tokenizer_piece(st->srv->tok, st->areq.prompt[i], 0, piece, sizeof piece);
        if (k > 0) px_buf_append(&echo, piece, (size_t)k);
    }
    px_buf texts[PX_MAX_CHOICES] = {{0}};
    if (st->areq.logprobs && total > 0) pool = malloc(sizeof *pool * (size_t)total);
    int at = 0;
    for (int c = 0; c < st->n_choices; c++) {
        px_buf_append(&texts[c], echo.data, echo.len);
        px_buf_append(&texts[c], st->text[c].data, st->text[c].len);
        ch[c] = (px_api_choice){.text = texts[c].data ? texts[c].data : "",
                                .text_len = texts[c].len,
                                .finish = finish_name(st->finish[c])};
        if (pool) {
            int n = n_echo + st->n_lps[c];
            lps[c] = calloc((size_t)n + 1, sizeof(px_api_logprob));
            for (int k = 0; lps[c] && k < n; k++) {
                px_sample smp;
                int missing = 0;
                if (k < n_echo)
                    echo_sample(st, k, &smp, &missing);
                else
                    smp = st->lps[c][k - n_echo];
                fill_logprob(st->srv->tok, &smp, st->areq.top_logprobs, &lps[c][k], pool[at++]);
                lps[c][k].missing = missing;
            }
            ch[c].lps = lps[c];
            ch[c].n_lps = lps[c] ? n : 0;
        }
    }
    st->out.len = 0;
    st->out_off = 0;
    if (st->dialect == PX_DIALECT_GEMINI)
        px_api_gemini_response(&st->out, &st->meta, ch, st->n_choices, done->prompt_tokens,
                               done->completion_tokens, done->cached_tokens);
    else
        px_api_openai_response(&st->out, &st->meta, ch, st->n_choices, done->prompt_tokens,
                               done->completion_tokens, done->cached_tokens);
    for (int c = 0; c < st->n_choices; c++) {
        free(lps[c]);
        px_buf_free(&texts[c]);
    }
    px_buf_free(&echo);
    free(pool);
    st->whole_status = 200;
}

/* The end of a Gemini stream: the last chunk (finish reasons and usage),
 * or the error, then the array's closing bracket. */
static void gemini_end(px_stream *st, const px_event *done) {
    px_buf b = {0};
    if (st->has_err) {
        sse_error(st, &st->err);
    } else {
        const char *fin[PX_MAX_CHOICES];
        for (int c = 0; c < st->n_choices && c < PX_MAX_CHOICES; c++)
            fin[c] = finish_name(st->finish[c]);
        if (px_api_gemini_final_chunk(&b, &st->meta, fin, st->n_choices, done->prompt_tokens,
                                      done->completion_tokens, done->cached_tokens) == 0)
            gemini_frame(st, &b);
    }
    if (!st->gemini_sse) px_buf_append(&st->out, "]", 1);
    px_buf_free(&b);
}

/* Turns the request's queued events into output. */
static void take_events(px_server *s, px_stream *st) {
    px_event *ev = px_request_take_events(st->r);
    for (px_event *e = ev; e; e = e->next) {
        if (e->type == PX_EVENT_PROMPT) {
            push_sample(&st->plps, &st->n_plps, &st->cap_plps, &e->token);
            continue;
        }
        if (st->streaming && (e->type == PX_EVENT_DELTA || e->type == PX_EVENT_FINISH))
            send_echo(st, e->choice);
        if (e->type == PX_EVENT_DELTA) {
            if (st->streaming) {
                if (e->text_len > 0 || (e->n_tokens && st->areq.logprobs))
                    sse_chunk(st, e->choice, e->text, e->text_len, NULL,
                              e->n_tokens ? &e->token : NULL);
            } else {
                px_buf_append(&st->text[e->choice], e->text, e->text_len);
                if (e->n_tokens && st->areq.logprobs) keep_sample(st, e->choice, &e->token);
            }
        } else if (e->type == PX_EVENT_FINISH) {
            st->finish[e->choice] = e->finish;
            if (e->finish == PX_FINISH_ERROR && !st->has_err) {
                error_from_event(e, &st->err);
                st->has_err = 1;
            }
            if (st->streaming) {
                if (e->text_len > 0) sse_chunk(st, e->choice, e->text, e->text_len, NULL, NULL);
                if (e->finish == PX_FINISH_STOP || e->finish == PX_FINISH_LENGTH)
                    sse_chunk(st, e->choice, "", 0, finish_name(e->finish), NULL);
            } else {
                px_buf_append(&st->text[e->choice], e->text, e->text_len);
            }
        } else if (e->type == PX_EVENT_DONE) {
            st->done = 1;
            if (st->streaming && st->dialect == PX_DIALECT_GEMINI) {
                gemini_end(st, e);
                st->ended = 1;
            } else if (st->streaming) {
                if (st->has_err) {
                    sse_error(st, &st->err);
                } else {
                    if (st->areq.include_usage)
                        px_api_openai_usage_chunk(&st->out, &st->meta, e->prompt_tokens,
                                                  e->completion_tokens, e->cached_tokens);
                    px_buf_append(&st->out, "data: [DONE]\n\n", 14);
                }
                st->ended = 1;
            } else if (st->has_err) {
                st->out.len = 0;
                if (st->dialect == PX_DIALECT_GEMINI)
                    px_api_gemini_error(&st->out, &st->err);
                else
                    px_api_openai_error(&st->out, &st->err);
                st->whole_status = st->err.status;
                st->whole_ready = 1;
            } else {
                render_whole(st, e);
                st->whole_ready = 1;
            }
        }
    }
    px_event_free_list(ev);
    resume(st);
    maybe_free(s, st);
}

/* --- MHD side ---------------------------------------------------------- */

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    px_stream *st = cls;
    if (st->out_off < st->out.len) {
        size_t n = PX_MIN(max, st->out.len - st->out_off);
        memcpy(buf, st->out.data + st->out_off, n);
        st->out_off += n;
        if (st->out_off == st->out.len) st->out.len = st->out_off = 0;
        st->last_send = px_now();
        return (ssize_t)n;
    }
    if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing to send yet: park the connection until events arrive. */
    if (st->conn && !st->suspended) {
        MHD_suspend_connection(st->conn->mc);
        st->suspended = 1;
    }
    return 0;
}

static void random_id(char *out, size_t cap, const char *prefix, uint64_t n) {
    static uint64_t salt;
    if (!salt) salt = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&salt;
    uint64_t x = (n + 1) * 0xBF58476D1CE4E5B9ull ^ salt;
    x ^= x >> 31;
    snprintf(out, cap, "%s%016llx%08llx", prefix, (unsigned long long)x,
             (unsigned long long)(n & 0xffffffffu));
}

enum MHD_Result px_stream_start(px_server *s, px_conn *c, px_api_req *areq) {
    px_stream *st = calloc(1, sizeof *st);
    px_request *r = px_request_create();
    px_api_error e;
    if (!st || !r) {
        free(st);
        px_request_unref(r);
        px_api_req_free(areq);
        px_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return px_respond_error(c, &e);
    }
    st->srv = s;
    st->conn = c;
    st->areq = *areq;
    st->streaming = areq->stream;
    st->dialect = c->dialect;
    st->gemini_sse = c->gemini_sse;
    st->n_choices = areq->n;
    st->r = r;
    random_id(st->id, sizeof st->id,
              c->dialect == PX_DIALECT_GEMINI ? ""
              : areq->kind == PX_API_CHAT     ? "chatcmpl-"
                                              : "cmpl-",
              c->id);
    st->meta = (px_api_resp_meta){.kind = areq->kind,
                                  .created = (int64_t)time(NULL),
                                  .model = st->areq.model,
                                  .system_fingerprint = "pollux-" PACKAGE_VERSION};
    snprintf(st->meta.id, sizeof st->meta.id, "%s", st->id);

    r->id = c->id;
    int rc = px_request_set_prompt(r, st->areq.prompt, st->areq.n_prompt);
    for (int i = 0; rc == 0 && i < st->areq.n_images; i++) {
        px_api_image *im = &st->areq.images[i];
        rc = px_request_add_image(r, im->pos, im->n_tokens, im->hash, im->img.width, im->img.height,
                                  im->img.rgb);
        im->img.rgb = NULL; /* the request owns it now, also on failure */
    }
    if (rc == 0 && st->areq.n_stop > 0)
        rc = px_request_set_stop(r, (const char *const *)st->areq.stop, st->areq.stop_len,
                                 st->areq.n_stop);
    r->max_tokens = st->areq.max_tokens;
    r->n_choices = st->areq.n;
    r->sampling = st->areq.sampling;
    if (!st->areq.has_seed)
        r->sampling.seed = (uint64_t)time(NULL) * 6364136223846793005ull + c->id;
    r->sampling.want_logprobs = st->areq.logprobs;
    r->sampling.n_logprobs = st->areq.logprobs ? st->areq.top_logprobs : 0;
    r->ignore_eos = st->areq.ignore_eos;
    if (st->areq.echo && st->areq.logprobs) {
        r->prompt_logprobs = 1;
        r->prompt_top = st->areq.top_logprobs;
    }
    r->priority = st->areq.priority;
    double timeout = s->cfg->request_timeout_s;
    if (st->areq.timeout_s > 0)
        timeout = PX_MIN(st->areq.timeout_s, (double)s->cfg->max_request_timeout_s);
    r->deadline = px_now() + timeout;
    r->notify = px_server_on_notify;
    r->notify_arg = s;
    r->owner = st;
    char err[256] = "";
    if (rc == 0) rc = px_sched_submit(s->sched, r, err, sizeof err);
    if (rc < 0) {
        if (rc == PX_EAGAIN) {
            s->counters.rejected_queue_full++;
            px_api_fail(&e, 429, "rate_limit_error", NULL, NULL, "%s", err);
        } else if (rc == PX_ETOOBIG) {
            px_api_fail(&e, 400, "invalid_request_error", "context_length_exceeded",
                        c->dialect == PX_DIALECT_GEMINI ? "contents" : "messages", "%s", err);
        } else {
            px_api_fail(&e, rc == PX_ENOMEM ? 500 : 400,
                        rc == PX_ENOMEM ? "server_error" : "invalid_request_error", NULL, NULL,
                        "%s", err[0] ? err : "invalid request");
        }
        r->owner = NULL;
        px_request_unref(r);
        st->r = NULL;
        px_api_req_free(&st->areq);
        free(st);
        return px_respond_error(c, &e);
    }
    link_stream(s, st);
    c->st = st;
    st->last_send = px_now();
    if (!st->streaming) {
        MHD_suspend_connection(c->mc);
        st->suspended = 1;
        return MHD_YES;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, st, NULL);
    if (!resp) return MHD_NO;
    int json_array = st->dialect == PX_DIALECT_GEMINI && !st->gemini_sse;
    /* The array opens at once, so keepalive whitespace after it is valid. */
    if (json_array) px_buf_append(&st->out, "[", 1);
    MHD_add_response_header(resp, "Content-Type",
                            json_array ? "application/json" : "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (s->draining) MHD_add_response_header(resp, "Connection", "close");
    if (s->cfg->cors_origin)
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", s->cfg->cors_origin);
    enum MHD_Result ret = MHD_queue_response(c->mc, 200, resp);
    MHD_destroy_response(resp);
    c->status = 200;
    return ret;
}

enum MHD_Result px_stream_respond(px_server *s, px_conn *c) {
    (void)s;
    px_stream *st = c->st;
    if (!st->whole_ready) {
        /* Resumed without a result (should not happen): wait again. */
        MHD_suspend_connection(c->mc);
        st->suspended = 1;
        return MHD_YES;
    }
    return px_respond_json(c, st->whole_status, st->out.data ? st->out.data : "{}",
                           st->out.data ? st->out.len : 2);
}

/* --- wake-ups from the scheduler --------------------------------------- */

void px_server_on_notify(px_request *r, void *arg) {
    px_server *s = arg;
    pthread_mutex_lock(&s->wake_lock);
    if (s->wake_n == s->wake_cap) {
        int cap = s->wake_cap ? s->wake_cap * 2 : 64;
        px_request **v = realloc(s->wake_list, sizeof *v * (size_t)cap);
        if (!v) {
            /* The request stays queued; the next notify or tick drains it. */
            pthread_mutex_unlock(&s->wake_lock);
            uv_async_send(&s->wake);
            return;
        }
        s->wake_list = v;
        s->wake_cap = cap;
    }
    px_request_ref(r);
    s->wake_list[s->wake_n++] = r;
    pthread_mutex_unlock(&s->wake_lock);
    uv_async_send(&s->wake);
}

void px_server_drain_wakes(px_server *s) {
    pthread_mutex_lock(&s->wake_lock);
    px_request **list = s->wake_list;
    int n = s->wake_n;
    s->wake_list = NULL;
    s->wake_n = s->wake_cap = 0;
    pthread_mutex_unlock(&s->wake_lock);
    for (int i = 0; i < n; i++) {
        px_stream *st = list[i]->owner;
        if (st && !st->done) take_events(s, st);
        px_request_unref(list[i]);
    }
    free(list);
    px_http_run(s);
}

/* True if the peer of a suspended connection has hung up: MHD does not
 * watch suspended sockets, so a client that gives up on a long
 * non-streamed request (or while queued) would otherwise go unnoticed until
 * the answer is ready. */
static int peer_gone(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void px_server_tick(px_server *s) {
    double now = px_now();
    int any = 0;
    for (px_stream *st = s->streams; st; st = st->next) {
        /* The cancel ends the request at the next step; its DONE resumes
         * the connection and MHD then sees the closed socket (and counts
         * the disconnect through the completion callback). */
        if (st->suspended && st->conn && !st->done && !st->peer_gone && peer_gone(st->conn->mc)) {
            st->peer_gone = 1;
            px_request_cancel(st->r);
        }
    }
    /* Streams with nothing to say for keepalive_s get an SSE comment, so
     * proxies and clients see the connection is alive while it is queued. */
    for (px_stream *st = s->streams; st; st = st->next) {
        if (st->streaming && !st->ended && st->conn &&
            now - st->last_send >= (double)s->cfg->keepalive_s) {
            if (st->dialect == PX_DIALECT_OPENAI)
                px_buf_append(&st->out, ": ping\n\n", 8);
            else if (st->gemini_sse)
                px_buf_append(&st->out, ": ping\r\n\r\n", 10);
            else
                px_buf_append(&st->out, "\n", 1); /* whitespace inside the JSON array */
            st->last_send = now;
            resume(st);
            any = 1;
        }
    }
    if (any) px_http_run(s);
}
