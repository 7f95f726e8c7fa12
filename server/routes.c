/* routes.c — which handler answers which path: health and readiness,
 * metrics, models, tokenize/detokenize, the OpenAI generation routes and the
 * Gemini ones (/v1beta/models/{model}:{method}, the same under /v1). Also
 * API-key checks, CORS preflight and the choice of error dialect. */
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
    R_MODEL,         /* GET /v1/models/{id} (OpenAI) */
    R_GEMINI_MODELS, /* GET /v1beta/models */
    R_GEMINI_MODEL,  /* GET /v1beta/models/{model} */
    R_GEMINI_ACTION, /* POST /v1beta/models/{model}:{method} */
    R_NONE
} route_id;

static const struct route {
    const char *path;   /* exact path, or NULL for the parameterized routes */
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
    [R_MODEL] = {NULL, "GET", 1},
    [R_GEMINI_MODELS] = {NULL, "GET", 1},
    [R_GEMINI_MODEL] = {NULL, "GET", 1},
    [R_GEMINI_ACTION] = {NULL, "POST", 1},
};

/* A matched route with the pieces of a parameterized path. */
typedef struct match {
    route_id id;
    char model[256]; /* {model} / {id}, decoded */
    char action[64]; /* {method} of a Gemini action ("" if none) */
    const char *ver; /* "v1beta" or "v1" for Gemini routes (messages) */
} match;

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

static int key_ok(px_server *s, const char *key) {
    size_t len = strlen(key);
    int ok = 0;
    for (char **k = s->keys; *k; k++)
        ok |= same_secret(key, len, *k, strlen(*k));
    return ok;
}

/* A key from Authorization: Bearer, x-goog-api-key (Google's documented
 * header) or ?key= (older Google samples); any one that matches will do. */
static int authorized(px_server *s, px_conn *c) {
    if (!s->keys) return 1;
    const char *h = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 && key_ok(s, h + 7)) return 1;
    const char *g = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "x-goog-api-key");
    if (g && key_ok(s, g)) return 1;
    const char *q = MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, "key");
    return q && key_ok(s, q);
}

/* Google's clients announce themselves; OpenAI's never send these. */
static int google_client(struct MHD_Connection *mc) {
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "x-goog-api-key") ||
           MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "x-goog-api-client") ||
           MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "key");
}

/* Splits "/v1beta/models[/{model}[:{method}]]" (or "/v1/...") into m.
 * Returns 1 for a models path, 0 otherwise. The method is what follows the
 * last ':' so that model ids holding ':' (e.g. "gemma3:4b") still work. */
static int models_path(const char *path, match *m) {
    const char *rest;
    if (strncmp(path, "/v1beta/models", 14) == 0) {
        m->ver = "v1beta";
        rest = path + 14;
    } else if (strncmp(path, "/v1/models", 10) == 0) {
        m->ver = "v1";
        rest = path + 10;
    } else {
        return 0;
    }
    m->model[0] = m->action[0] = '\0';
    if (*rest == '\0') return 1;
    if (*rest != '/' || rest[1] == '\0') return 0;
    rest++;
    const char *colon = strrchr(rest, ':');
    size_t n = colon ? (size_t)(colon - rest) : strlen(rest);
    if (n == 0 || n >= sizeof m->model) return 0;
    memcpy(m->model, rest, n);
    m->model[n] = '\0';
    if (colon) {
        if (strlen(colon + 1) >= sizeof m->action) return 0;
        strcpy(m->action, colon + 1);
    }
    return 1;
}

static void find_route(px_server *s, px_conn *c, match *m) {
    memset(m, 0, sizeof *m);
    m->id = R_NONE;
    for (int i = 0; i < R_NONE; i++)
        if (k_routes[i].path && strcmp(c->path, k_routes[i].path) == 0) m->id = (route_id)i;
    if (m->id != R_NONE && m->id != R_MODELS) return;
    if (!models_path(c->path, m)) return;
    int gemini = strcmp(m->ver, "v1beta") == 0 || m->action[0] || google_client(c->mc);
    /* GET of a model whose id holds ':' ("gemma3:4b"): no method there. */
    if (m->action[0] && strcmp(c->method, "POST") != 0 && s->model_id[0]) {
        char whole[sizeof m->model + sizeof m->action];
        snprintf(whole, sizeof whole, "%s:%s", m->model, m->action);
        if (strcmp(whole, s->model_id) == 0) {
            snprintf(m->model, sizeof m->model, "%s", s->model_id);
            m->action[0] = '\0';
        }
    }
    if (m->action[0])
        m->id = R_GEMINI_ACTION;
    else if (!m->model[0])
        m->id = gemini ? R_GEMINI_MODELS : R_MODELS;
    else
        m->id = gemini ? R_GEMINI_MODEL : R_MODEL;
}

void px_route_classify(px_conn *c, const char *url) {
    /* The path is not copied yet (and may be too long to be): look at the
     * raw URL, which is enough to tell the dialects apart. */
    int gemini = strncmp(url, "/v1beta/", 8) == 0 || strcmp(url, "/v1beta") == 0;
    if (!gemini && strncmp(url, "/v1/models", 10) == 0) {
        const char *rest = url + 10;
        size_t n = strcspn(rest, "?");
        gemini = memchr(rest, ':', n) != NULL || google_client(c->mc);
    }
    c->dialect = gemini ? PX_DIALECT_GEMINI : PX_DIALECT_OPENAI;
}

static enum MHD_Result method_not_allowed(px_conn *c, const char *allow) {
    px_buf b = {0};
    px_api_error e;
    px_api_fail(&e, 405, "invalid_request_error", NULL, NULL, "method %s not allowed; use %s",
                c->method, allow);
    if (c->dialect == PX_DIALECT_GEMINI)
        px_api_gemini_error(&b, &e);
    else
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
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, x-goog-api-key, x-goog-api-client");
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

static void model_info(px_server *s, px_api_model_info *mi) {
    const px_model_config *mc = px_model_config_get(s->model);
    *mi = (px_api_model_info){
        .id = s->model_id,
        .created = s->started_at,
        .owned_by = s->is_demo ? "pollux (built-in demo model, random weights)" : "pollux",
        .n_vocab = mc->n_vocab,
        .n_ctx_train = px_model_n_ctx(s->model),
        .n_embd = mc->n_embd,
        .n_params = -1,
        .size = -1,
        .vision = s->api.image_tokens > 0,
    };
}

/* The model lists and single models of both dialects. A single model that
 * is not the served one is a 404 in the connection's shape. */
static enum MHD_Result handle_models(px_server *s, px_conn *c, const match *m) {
    px_api_model_info mi;
    model_info(s, &mi);
    if ((m->id == R_MODEL || m->id == R_GEMINI_MODEL) && strcmp(m->model, s->model_id) != 0) {
        px_api_error e;
        if (m->id == R_GEMINI_MODEL)
            px_api_fail(&e, 404, "invalid_request_error", "model_not_found", NULL,
                        "models/%s is not found for API version %s", m->model, m->ver);
        else
            px_api_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%s' does not exist", m->model);
        return px_respond_error(c, &e);
    }
    px_buf b = {0};
    int rc;
    switch (m->id) {
    case R_MODEL: rc = px_api_openai_model(&b, &mi); break;
    case R_GEMINI_MODELS: rc = px_api_gemini_models(&b, &mi); break;
    case R_GEMINI_MODEL: rc = px_api_gemini_model(&b, &mi); break;
    default: rc = px_api_openai_models(&b, &mi); break;
    }
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

/* POST models/{model}:generateContent | :streamGenerateContent | :countTokens */
static enum MHD_Result handle_gemini(px_server *s, px_conn *c, const match *m) {
    px_api_error e;
    px_gemini_method gm;
    if (px_api_gemini_method_from_name(m->action, &gm) < 0) {
        px_api_fail(&e, 404, "invalid_request_error", NULL, NULL,
                    "method '%s' is not found for API version %s", m->action, m->ver);
        return px_respond_error(c, &e);
    }
    if (strcmp(m->model, s->model_id) != 0) {
        px_api_fail(&e, 404, "invalid_request_error", "model_not_found", NULL,
                    "models/%s is not found for API version %s, or is not supported for %s",
                    m->model, m->ver, m->action);
        return px_respond_error(c, &e);
    }
    px_api_req areq;
    if (px_api_gemini_parse(gm, m->model, c->body, c->body_len, &s->api, &areq, &e) < 0)
        return px_respond_error(c, &e);
    if (gm == PX_GEMINI_COUNT) {
        px_buf b = {0};
        int rc = px_api_gemini_count(&b, areq.n_prompt);
        px_api_req_free(&areq);
        enum MHD_Result r = rc < 0 ? MHD_NO : px_respond_json(c, 200, b.data, b.len);
        px_buf_free(&b);
        return r;
    }
    const char *alt = MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, "alt");
    c->gemini_sse = alt && strcmp(alt, "sse") == 0;
    return px_decode_start(s, c, &areq);
}

enum MHD_Result px_route(px_server *s, px_conn *c) {
    match m;
    find_route(s, c, &m);
    px_api_error e;
    if (m.id == R_NONE) {
        px_api_fail(&e, 404, "invalid_request_error", NULL, NULL, "no route for %s %s", c->method,
                    c->path[0] ? c->path : "/");
        return px_respond_error(c, &e);
    }
    /* The dialect follows the route once it is known (classify only saw
     * the raw URL). */
    c->dialect =
        m.id >= R_GEMINI_MODELS && m.id <= R_GEMINI_ACTION ? PX_DIALECT_GEMINI : PX_DIALECT_OPENAI;
    const struct route *rt = &k_routes[m.id];
    if (strcmp(c->method, "OPTIONS") == 0) return preflight(s, c, rt);
    int is_head = strcmp(c->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
    if (strcmp(c->method, rt->method) != 0 && !is_head) return method_not_allowed(c, rt->method);
    if (rt->auth && !authorized(s, c)) {
        if (c->dialect == PX_DIALECT_GEMINI)
            px_api_fail(&e, 401, "authentication_error", "invalid_api_key", NULL,
                        "Method doesn't allow unregistered callers. Please pass a valid API "
                        "key (x-goog-api-key header, key parameter or Bearer token).");
        else
            px_api_fail(&e, 401, "authentication_error", "invalid_api_key", NULL,
                        "missing or invalid API key");
        return px_respond_error(c, &e);
    }
    if (!s->sched && m.id != R_HEALTH && m.id != R_READY && m.id != R_METRICS) {
        px_api_fail(&e, 503, "unavailable_error", NULL, NULL, "the model is loading");
        return px_respond_error(c, &e);
    }
    switch (m.id) {
    case R_HEALTH: {
        /* Alive means the scheduler thread is making progress too. */
        if (!s->sched)
            return px_respond(c, 200, "application/json", "{\"status\":\"loading\"}", 20);
        return px_server_sched_stalled(s)
                   ? px_respond(c, 503, "application/json", "{\"status\":\"scheduler stalled\"}",
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
    case R_MODELS:
    case R_MODEL:
    case R_GEMINI_MODELS:
    case R_GEMINI_MODEL: return handle_models(s, c, &m);
    case R_TOKENIZE: return handle_tokenize(s, c, 0);
    case R_DETOKENIZE: return handle_tokenize(s, c, 1);
    case R_GEMINI_ACTION: return handle_gemini(s, c, &m);
    case R_CHAT:
    case R_COMPLETIONS: {
        px_api_req areq;
        if (px_api_openai_parse(m.id == R_CHAT ? PX_API_CHAT : PX_API_COMPLETION, c->body,
                                c->body_len, &s->api, &areq, &e) < 0)
            return px_respond_error(c, &e);
        return px_decode_start(s, c, &areq);
    }
    default: break;
    }
    return MHD_NO;
}

bool px_server_sched_stalled(px_server *s) {
    if (!s->sched) return false;
    px_stats_counters c;
    px_sched_snapshot(s->sched, &c, NULL, NULL, NULL, NULL);
    /* px_sched_start stamps it first: never 0 here in practice. */
    return c.last_step_time > 0 && px_now() - c.last_step_time >= s->cfg->stall_timeout_s;
}

void px_conn_completed(px_server *s, px_conn *c, enum MHD_RequestTerminationCode toe) {
    int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (c->status >= 100 && c->status < 600) s->counters.responses_by_class[c->status / 100]++;
    px_log(PX_LOG_INFO, "req=%llu %s %s status=%d %.3fs%s", (unsigned long long)c->id, c->method,
           c->path, c->status, px_now() - c->t_start, ok ? "" : " (connection ended early)");
    if (c->st) px_stream_detach(s, c->st, !ok);
    px_decode_conn_gone(c);
    free(c->body);
    free(c);
}
