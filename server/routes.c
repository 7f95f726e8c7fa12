/* routes.c — which handler answers which path: health and readiness,
 * metrics, models, tokenize/detokenize, and the OpenAI generation routes.
 * Also API-key checks and CORS preflight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/px.h"
#include "server/log.h"
#include "server/server.h"

typedef enum route_id {
    R_HEALTH,
    R_READY,
    R_METRICS,
    R_MODELS,
    R_CHAT,
    R_COMPLETIONS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_NONE
} route_id;

static const struct route {
    const char *path;
    const char *method; /* the one method allowed */
    int auth;           /* needs an API key when keys are configured */
} k_routes[] = {
    [R_HEALTH] = {"/health", "GET", 0},
    [R_READY] = {"/ready", "GET", 0},
    [R_METRICS] = {"/metrics", "GET", 0},
    [R_MODELS] = {"/v1/models", "GET", 1},
    [R_CHAT] = {"/v1/chat/completions", "POST", 1},
    [R_COMPLETIONS] = {"/v1/completions", "POST", 1},
    [R_TOKENIZE] = {"/tokenize", "POST", 1},
    [R_DETOKENIZE] = {"/detokenize", "POST", 1},
};

/* Constant-time comparison: the time does not depend on where the first
 * difference is (only on the lengths, which are not secret enough to matter
 * against keys of fixed format). */
static int same_secret(const char *a, size_t la, const char *b, size_t lb) {
    unsigned char d = (unsigned char)(la != lb);
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int authorized(px_server *s, px_conn *c) {
    if (!s->keys) return 1;
    const char *h = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    const char *key = h + 7;
    size_t len = strlen(key);
    int ok = 0;
    for (char **k = s->keys; *k; k++)
        ok |= same_secret(key, len, *k, strlen(*k));
    return ok;
}

static route_id find_route(const char *path) {
    for (int i = 0; i < R_NONE; i++)
        if (strcmp(path, k_routes[i].path) == 0) return (route_id)i;
    return R_NONE;
}

static enum MHD_Result method_not_allowed(px_conn *c, const char *allow) {
    px_buf b = {0};
    px_api_error e;
    px_api_fail(&e, 405, "invalid_request_error", NULL, NULL, "method %s not allowed; use %s",
                c->method, allow);
    px_api_openai_error(&b, &e);
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
    px_buf_free(&b);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(c->mc, 405, r);
    MHD_destroy_response(r);
    c->status = 405;
    return ret;
}

static enum MHD_Result preflight(px_server *s, px_conn *c, const struct route *rt) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    const char *origin = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Origin");
    const char *allowed = s->cfg->cors_origin;
    if (allowed && origin && (strcmp(allowed, "*") == 0 || strcmp(allowed, origin) == 0)) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", allowed);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", rt->method);
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    MHD_add_response_header(r, "Allow", rt->method);
    enum MHD_Result ret = MHD_queue_response(c->mc, 204, r);
    MHD_destroy_response(r);
    c->status = 204;
    return ret;
}

static enum MHD_Result handle_metrics(px_server *s, px_conn *c) {
    px_stats_counters sc;
    px_hist ttft, itl, e2e, queue;
    int have = s->sched != NULL;
    if (have) px_sched_snapshot(s->sched, &sc, &ttft, &itl, &e2e, &queue);
    px_buf b = {0};
    if (px_metrics_render(&b, s->model_id, have ? &sc : NULL, have ? &ttft : NULL,
                          have ? &itl : NULL, have ? &e2e : NULL, have ? &queue : NULL,
                          &s->counters) < 0) {
        px_buf_free(&b);
        return MHD_NO;
    }
    enum MHD_Result r = px_respond(c, 200, "text/plain; version=0.0.4", b.data, b.len);
    px_buf_free(&b);
    return r;
}

static enum MHD_Result handle_models(px_server *s, px_conn *c) {
    const px_model_config *mc = px_model_config_get(s->model);
    px_api_model_info mi = {
        .id = s->model_id,
        .created = s->started_at,
        .owned_by = s->is_demo ? "pollux (built-in demo model, random weights)" : "pollux",
        .n_vocab = mc->n_vocab,
        .n_ctx_train = px_model_n_ctx(s->model),
        .n_embd = mc->n_embd,
        .n_params = -1,
        .size = -1,
        .vision = 0,
    };
    px_buf b = {0};
    int rc = px_api_openai_models(&b, &mi);
    enum MHD_Result r = rc < 0 ? MHD_NO : px_respond_json(c, 200, b.data, b.len);
    px_buf_free(&b);
    return r;
}

static enum MHD_Result handle_tokenize(px_server *s, px_conn *c, int de) {
    px_api_error e;
    int32_t *ids = NULL, n = 0;
    int pieces = 0;
    int rc = de ? px_api_detokenize_parse(c->body, c->body_len, &s->api, &ids, &n, &e)
                : px_api_tokenize_parse(c->body, c->body_len, &s->api, &ids, &n, &pieces, &e);
    if (rc < 0) return px_respond_error(c, &e);
    px_buf b = {0};
    rc = de ? px_api_detokenize_render(&b, s->tok, ids, n)
            : px_api_tokenize_render(&b, s->tok, ids, n, pieces);
    free(ids);
    enum MHD_Result r = rc < 0 ? MHD_NO : px_respond_json(c, 200, b.data, b.len);
    px_buf_free(&b);
    return r;
}

enum MHD_Result px_route(px_server *s, px_conn *c) {
    route_id id = find_route(c->path);
    px_api_error e;
    if (id == R_NONE) {
        px_api_fail(&e, 404, "invalid_request_error", NULL, NULL, "no route for %s %s", c->method,
                    c->path[0] ? c->path : "/");
        return px_respond_error(c, &e);
    }
    const struct route *rt = &k_routes[id];
    if (strcmp(c->method, "OPTIONS") == 0) return preflight(s, c, rt);
    int is_head = strcmp(c->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
    if (strcmp(c->method, rt->method) != 0 && !is_head) return method_not_allowed(c, rt->method);
    if (rt->auth && !authorized(s, c)) {
        px_api_fail(&e, 401, "authentication_error", "invalid_api_key", NULL,
                    "missing or invalid API key");
        return px_respond_error(c, &e);
    }
    if (!s->sched && id != R_HEALTH && id != R_READY && id != R_METRICS) {
        px_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the model is loading");
        return px_respond_error(c, &e);
    }
    switch (id) {
    case R_HEALTH: {
        /* Alive means the scheduler thread is making progress too. */
        if (!s->sched)
            return px_respond(c, 200, "application/json", "{\"status\":\"loading\"}", 20);
        px_stats_counters sc;
        px_sched_snapshot(s->sched, &sc, NULL, NULL, NULL, NULL);
        int stuck = sc.last_step_time > 0 && px_now() - sc.last_step_time > 30.0;
        return stuck ? px_respond(c, 503, "application/json", "{\"status\":\"scheduler stalled\"}",
                                  30)
                     : px_respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
    }
    case R_READY:
        if (!s->ready || s->draining)
            return px_respond(c, 503, "application/json",
                              s->draining ? "{\"status\":\"draining\"}"
                                          : "{\"status\":\"loading\"}",
                              s->draining ? 21 : 20);
        return px_respond(c, 200, "application/json", "{\"status\":\"ready\"}", 18);
    case R_METRICS: return handle_metrics(s, c);
    case R_MODELS: return handle_models(s, c);
    case R_TOKENIZE: return handle_tokenize(s, c, 0);
    case R_DETOKENIZE: return handle_tokenize(s, c, 1);
    case R_CHAT:
    case R_COMPLETIONS: {
        if (s->draining) {
            px_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the server is shutting down");
            return px_respond_error(c, &e);
        }
        px_api_req areq;
        if (px_api_openai_parse(id == R_CHAT ? PX_API_CHAT : PX_API_COMPLETION, c->body,
                                c->body_len, &s->api, &areq, &e) < 0)
            return px_respond_error(c, &e);
        return px_stream_start(s, c, &areq);
    }
    default: break;
    }
    return MHD_NO;
}

void px_conn_completed(px_server *s, px_conn *c, enum MHD_RequestTerminationCode toe) {
    int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (c->status >= 100 && c->status < 600) s->counters.responses_by_class[c->status / 100]++;
    px_log(PX_LOG_INFO, "req=%llu %s %s status=%d %.3fs%s", (unsigned long long)c->id, c->method,
           c->path, c->status, px_now() - c->t_start, ok ? "" : " (connection ended early)");
    if (c->st) px_stream_detach(s, c->st, !ok);
    free(c->body);
    free(c);
}
