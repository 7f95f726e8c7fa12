/* http.c — libmicrohttpd under libuv: MHD runs with no threads of its own
 * in epoll mode; its epoll fd is watched by one uv_poll and its timeouts by
 * a uv_timer. Requests are read here (limits, body) and handed to routes.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "engine/px.h"
#include "scheduler/request.h"
#include "server/log.h"
#include "server/server.h"

static void arm_timer(px_server *s);

/* Each connection's header deadline. MHD's timeout is per read, so a
 * client sending one header byte just under it would hold a connection
 * forever (slowloris, attacks.md item 5): a request's headers must all
 * arrive within header_timeout_s of the connection or of the previous
 * request's end. Past that the socket is shut down and MHD, seeing the
 * end of the stream, closes the connection. One HTTP server per process:
 * the list is the loop thread's. */
typedef struct hconn {
    struct MHD_Connection *mc;
    double since;   /* accepted, or the previous request ended */
    int in_request; /* headers received: the deadline no longer applies */
    struct hconn *prev, *next;
} hconn;
static hconn *g_hconns;

static void cut_slow_headers(px_server *s) {
    static double last;
    double now = px_now();
    if (now - last < 0.25) return;
    last = now;
    double limit = (double)s->cfg->header_timeout_s;
    for (hconn *h = g_hconns; h; h = h->next) {
        if (h->in_request || now - h->since < limit) continue;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(h->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
        h->in_request = 1; /* once */
    }
}

static hconn *hconn_of(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void px_http_run(px_server *s) {
    if (!s->mhd) return;
    MHD_run(s->mhd);
    cut_slow_headers(s);
    arm_timer(s);
}

static void on_mhd_timer(uv_timer_t *t) {
    px_http_run(t->data);
}

static void arm_timer(px_server *s) {
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
        uv_timer_start(&s->mhd_timer, on_mhd_timer, ms, 0);
    } else {
        uv_timer_stop(&s->mhd_timer);
    }
}

static void on_mhd_poll(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    px_http_run(p->data);
}

static double now_s(void) {
    return px_now();
}

/* Copies the path without the query, rejecting NULs and over-long paths. */
static int copy_path(char *dst, size_t cap, const char *url) {
    size_t n = strcspn(url, "?");
    if (n >= cap) return -1;
    memcpy(dst, url, n);
    dst[n] = 0;
    return 0;
}

/* Connections past max_connections kept for probes: one there may ask
 * only /health, /ready or /metrics (others get 503), so that a load
 * balancer still sees the process while clients hold every slot. */
#define PROBE_RESERVE 8

/* Past max_connections + PROBE_RESERVE a new connection is closed at once.
 * libmicrohttpd's own limit would instead stop accepting, leaving the excess
 * waiting in the listen backlog until it times out; a fast refusal lets a
 * client or a load balancer go elsewhere (attacks.md item 6). MHD's limit
 * stays as a ceiling above ours. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    px_server *s = cls;
    return s->counters.connections_open < (uint64_t)s->cfg->max_connections + PROBE_RESERVE
               ? MHD_YES
               : MHD_NO;
}

static int is_probe(const char *path) {
    return strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 ||
           strcmp(path, "/metrics") == 0;
}

/* How much of an oversized body is read (and dropped) so that its 413 can
 * be answered on a socket the client is still writing to: 4x the cap, at
 * most 256 MiB. */
static size_t discard_limit(const px_server *s) {
    size_t cap = (size_t)s->cfg->max_body_bytes, lim = cap > SIZE_MAX / 4 ? SIZE_MAX : 4 * cap;
    return lim > ((size_t)256 << 20) ? ((size_t)256 << 20) : lim;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    px_server *s = cls;
    px_conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = s;
        c->mc = mc;
        c->id = ++s->next_id;
        c->t_start = now_s();
        hconn *h = hconn_of(mc);
        if (h) h->in_request = 1;
        snprintf(c->method, sizeof c->method, "%s", method);
        *con_cls = c;
        s->counters.requests_total++;
        px_route_classify(c, url);
        if (copy_path(c->path, sizeof c->path, url) < 0) {
            px_api_error e;
            px_api_fail(&e, 414, "invalid_request_error", NULL, NULL, "request URI too long");
            return px_respond_error(c, &e);
        }
        if (s->counters.connections_open > (uint64_t)s->cfg->max_connections &&
            !is_probe(c->path)) {
            px_api_error e;
            px_api_fail(&e, 503, "unavailable_error", NULL, NULL,
                        "too many open connections; retry later");
            return px_respond_error(c, &e);
        }
        /* An announced oversized body: a client that asked first (Expect:
         * 100-continue) or announced more than we would read hears 413 now,
         * before any of it is sent; others are read and dropped, then
         * answered, since closing a socket with unread data resets it and
         * a client still sending would never see the 413. */
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            int bad = errno || *end;
            if (bad || v > (unsigned long long)s->cfg->max_body_bytes) {
                c->body_too_big = 1;
                if (!bad && v <= (unsigned long long)discard_limit(s) &&
                    !MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Expect"))
                    return MHD_YES; /* read, drop, then answer */
                px_api_error e;
                px_api_fail(&e, 413, "invalid_request_error", NULL, NULL,
                            "request body larger than %lld bytes",
                            (long long)s->cfg->max_body_bytes);
                return px_respond_error(c, &e);
            }
        }
        return MHD_YES;
    }
    if (c->status) return MHD_YES; /* already answered (e.g. 413): discard the rest */
    if (*upload_size > 0) {
        if (c->body_too_big) {
            c->discarded += *upload_size;
        } else {
            size_t need = c->body_len + *upload_size;
            if (need > (size_t)s->cfg->max_body_bytes) {
                /* Over the cap: drop the body as it comes (see above). */
                c->body_too_big = 1;
                c->discarded = need;
                free(c->body);
                c->body = NULL;
                c->body_len = c->body_cap = 0;
            } else {
                if (need + 1 > c->body_cap) {
                    size_t cap = c->body_cap ? c->body_cap : 4096;
                    while (cap < need + 1)
                        cap *= 2;
                    char *b = realloc(c->body, cap);
                    if (!b) return MHD_NO;
                    c->body = b;
                    c->body_cap = cap;
                }
                memcpy(c->body + c->body_len, upload_data, *upload_size);
                c->body_len = need;
            }
        }
        *upload_size = 0;
        if (c->body_too_big && c->discarded > discard_limit(s)) {
            /* Stop reading somewhere, not at the body's end: a chunked body
             * may never end. MHD 0.9.75 refuses a reply queued mid-upload
             * (newer ones send it and close); on refusal MHD_NO closes the
             * connection. Either way no more of the body is read. */
            px_api_error e;
            px_api_fail(&e, 413, "invalid_request_error", NULL, NULL,
                        "request body larger than %lld bytes", (long long)s->cfg->max_body_bytes);
            return px_respond_error(c, &e);
        }
        return MHD_YES;
    }
    if (c->body_too_big) {
        px_api_error e;
        px_api_fail(&e, 413, "invalid_request_error", NULL, NULL,
                    "request body larger than %lld bytes", (long long)s->cfg->max_body_bytes);
        return px_respond_error(c, &e);
    }
    if (c->decode) return px_decode_resumed(s, c);
    if (c->st) return px_stream_respond(s, c);
    return px_route(s, c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    px_server *s = cls;
    hconn *h = hconn_of(mc);
    if (h) { /* a kept-alive connection's next request starts its clock now */
        h->in_request = 0;
        h->since = px_now();
    }
    px_conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    px_conn_completed(s, c, toe);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code) {
    px_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        s->counters.connections_open++;
        hconn *h = calloc(1, sizeof *h);
        if (h) { /* without one the connection has MHD's idle timeout only */
            h->mc = mc;
            h->since = px_now();
            h->next = g_hconns;
            if (g_hconns) g_hconns->prev = h;
            g_hconns = h;
        }
        *socket_ctx = h;
        return;
    }
    if (s->counters.connections_open > 0) s->counters.connections_open--;
    hconn *h = *socket_ctx;
    if (!h) return;
    if (h->prev)
        h->prev->next = h->next;
    else
        g_hconns = h->next;
    if (h->next) h->next->prev = h->prev;
    free(h);
    *socket_ctx = NULL;
}

int px_http_start(px_server *s, char *err, size_t errlen) {
    px_config *cfg = s->cfg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    int listen_fd = -1;
    int n = sd_listen_fds(1);
    if (n > 1) return px_fail(err, errlen, -1, "systemd passed %d sockets; polluxd takes one", n);
    if (n == 1) listen_fd = SD_LISTEN_FDS_START;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *addr = NULL;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (listen_fd < 0) {
        if (inet_pton(AF_INET, cfg->host, &a4.sin_addr) == 1) {
            a4.sin_family = AF_INET;
            a4.sin_port = htons((uint16_t)cfg->port);
            addr = (struct sockaddr *)&a4;
        } else if (inet_pton(AF_INET6, cfg->host, &a6.sin6_addr) == 1) {
            a6.sin6_family = AF_INET6;
            a6.sin6_port = htons((uint16_t)cfg->port);
            addr = (struct sockaddr *)&a6;
            flags |= MHD_USE_IPv6;
        } else {
            return px_fail(err, errlen, -1, "host '%s' is not an IPv4 or IPv6 address", cfg->host);
        }
    }
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)cfg->port, on_accept, s, on_request, s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + PROBE_RESERVE + 64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->header_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        listen_fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
        listen_fd >= 0 ? (void *)(intptr_t)listen_fd : (void *)addr, MHD_OPTION_END);
    if (!s->mhd)
        return px_fail(err, errlen, -1, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                       strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) return px_fail(err, errlen, -1, "libmicrohttpd has no epoll fd");
    uv_poll_init(s->loop, &s->mhd_poll, info->epoll_fd);
    s->mhd_poll.data = s;
    uv_poll_start(&s->mhd_poll, UV_READABLE, on_mhd_poll);
    uv_timer_init(s->loop, &s->mhd_timer);
    s->mhd_timer.data = s;
    arm_timer(s);
    return 0;
}

void px_http_quiesce(px_server *s) {
    if (!s->mhd) return;
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void px_http_stop(px_server *s) {
    if (!s->mhd) return;
    /* Close the handles before MHD closes its epoll fd; the loop finishes
     * the closes on its next run. */
    uv_poll_stop(&s->mhd_poll);
    uv_timer_stop(&s->mhd_timer);
    uv_close((uv_handle_t *)&s->mhd_poll, NULL);
    uv_close((uv_handle_t *)&s->mhd_timer, NULL);
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
}

enum MHD_Result px_respond(px_conn *c, int status, const char *ctype, const char *body,
                           size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (c->srv->cfg->cors_origin)
        MHD_add_response_header(r, "Access-Control-Allow-Origin", c->srv->cfg->cors_origin);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (c->srv->draining) MHD_add_response_header(r, "Connection", "close");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c->mc, (unsigned)status, r);
    MHD_destroy_response(r);
    c->status = status;
    return ret;
}

enum MHD_Result px_respond_json(px_conn *c, int status, const char *json, size_t len) {
    return px_respond(c, status, "application/json", json, len);
}

enum MHD_Result px_respond_error(px_conn *c, const px_api_error *e) {
    px_buf b = {0};
    int rc =
        c->dialect == PX_DIALECT_GEMINI ? px_api_gemini_error(&b, e) : px_api_openai_error(&b, e);
    if (rc < 0) {
        px_buf_free(&b);
        return MHD_NO;
    }
    enum MHD_Result r = px_respond_json(c, e->status, b.data, b.len);
    px_buf_free(&b);
    return r;
}
