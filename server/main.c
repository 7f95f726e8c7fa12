/* main.c — polluxd: configuration, model, scheduler, HTTP, signals. */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "engine/mkmodel.h"
#include "engine/px.h"
#include "engine/vision.h"
#include "server/log.h"
#include "server/server.h"

static void on_wake(uv_async_t *a) {
    px_server_drain_wakes(a->data);
}

static void stop_loop_when_drained(px_server *s) {
    if (!s->draining || s->loading) return;
    if (s->n_streams > 0 && px_now() > s->drain_deadline) {
        px_log(PX_LOG_WARN, "drain timeout: cancelling %d requests", s->n_streams);
        px_stream_cancel_all(s);
        s->drain_deadline = px_now() + 1e9; /* cancel once */
    }
    if (s->n_streams == 0 && s->n_decodes == 0) uv_stop(s->loop);
}

static void on_tick(uv_timer_t *t) {
    px_server *s = t->data;
    px_server_tick(s);
    /* The watchdog is fed only while the scheduler thread shows progress
     * (its loop stamps last_step_time after every step and at least once a
     * second while idle), so a stuck engine gets the service restarted
     * even though this thread still answers; a stuck loop thread stops
     * the feed by itself. */
    if (s->sched) {
        if (!px_server_sched_stalled(s)) sd_notify(0, "WATCHDOG=1");
    } else if (s->loading) {
        sd_notify(0, "WATCHDOG=1"); /* the load is making progress on its own thread */
    }
    stop_loop_when_drained(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    px_server *s = h->data;
    if (signum == SIGHUP) {
        px_log(PX_LOG_INFO, "SIGHUP: reopening the log");
        if (s->cfg->log_file) px_log_open(s->cfg->log_file);
        return;
    }
    if (s->draining) {
        px_log(PX_LOG_WARN, "second signal: stopping now");
        px_stream_cancel_all(s);
        s->drain_deadline = 0;
        return;
    }
    px_log(PX_LOG_INFO, "%s: draining (up to %d s)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
           s->cfg->drain_timeout_s);
    sd_notify(0, "STOPPING=1");
    s->draining = 1;
    s->ready = 0;
    s->drain_deadline = px_now() + s->cfg->drain_timeout_s;
    px_http_quiesce(s);
    stop_loop_when_drained(s);
}

/* Splits "a,b,c" into a NULL-terminated array (NULL for an empty list). */
static char **split_keys(const char *list) {
    if (!list || !*list) return NULL;
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **v = calloc(n + 1, sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len > 0) v[k++] = strndup(p, len);
        p += len;
        if (*p == ',') p++;
    }
    return v;
}

/* Appends the keys in `path` (one per line; blank lines and # comments
 * skipped) to the NULL-terminated *keys. */
static int load_key_file(const char *path, char ***keys, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return px_fail(err, errlen, -1, "api_key_file %s: %s", path, strerror(errno));
    size_t n = 0;
    while (*keys && (*keys)[n])
        n++;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t')
            k++;
        if (!*k || *k == '#') continue;
        char **v = realloc(*keys, sizeof *v * (n + 2));
        if (!v || !(v[n] = strdup(k))) {
            fclose(f);
            return px_fail(err, errlen, -1, "out of memory");
        }
        v[++n] = NULL;
        *keys = v;
    }
    fclose(f);
    if (n == 0) return px_fail(err, errlen, -1, "api_key_file %s holds no key", path);
    return 0;
}

static void free_keys(char **v) {
    for (char **k = v; k && *k; k++)
        free(*k);
    free(v);
}

/* Loading happens on libuv's thread pool; the rest of the start-up on the
 * loop thread once it is done. */
typedef struct load_job {
    uv_work_t req;
    px_server *s;
    char path[4096];
    char err[512];
    double seconds;
} load_job;

/* The demo model's random vision tower: written to a temporary file, mapped,
 * and unlinked (the mapping keeps it), so the demo takes images too. */
static px_vision *demo_vision(px_model *m, char *err, size_t errlen) {
    px_vision_mk_opts o;
    px_vision_mk_opts_tiny(&o);
    o.seed = 43;
    o.n_embd_out = px_model_config_get(m)->n_embd;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/polluxd-demo-mmproj-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file: %s", strerror(errno));
        return NULL;
    }
    close(fd);
    px_vision *v = NULL;
    if (px_vision_mk_write(&o, path, err, errlen) == 0)
        v = px_vision_load(path, px_model_pool(m), err, errlen);
    unlink(path);
    return v;
}

static void load_work(uv_work_t *req) {
    load_job *j = req->data;
    px_server *s = j->s;
    const px_config *cfg = s->cfg;
    if (cfg->model) {
        snprintf(j->path, sizeof j->path, "%s", cfg->model);
    } else {
        if (px_demo_model_path(j->path, sizeof j->path, j->err, sizeof j->err) < 0) return;
        s->is_demo = 1;
    }
    px_model_opts mo;
    px_model_opts_init(&mo);
    mo.n_threads = cfg->threads;
    mo.n_ctx = cfg->ctx;
    mo.kv_cache_mb = cfg->kv_cache_mb;
    mo.no_repack = !cfg->repack_weights;
    mo.max_batch_tokens = cfg->max_batch_tokens;
    mo.max_logit_rows = PX_MIN(cfg->max_batch_tokens, cfg->max_running + PX_MAX_CHOICES);
    mo.kv_local_seqs = cfg->max_running; /* windows the sliding-window layers' pool holds */
    double t0 = px_now();
    /* Test hook: stretch the load so tests can see the "loading" window. */
    const char *delay = getenv("PX_TEST_LOAD_DELAY_MS");
    if (delay && atoi(delay) > 0 && atoi(delay) <= 60000) usleep((useconds_t)atoi(delay) * 1000);
    s->model = px_model_load(j->path, &mo, j->err, sizeof j->err);
    if (s->model && s->is_demo && !cfg->mmproj) {
        char err[400];
        if (!(s->vision = demo_vision(s->model, err, sizeof err)))
            px_log(PX_LOG_WARN, "demo vision tower: %s (images disabled)", err);
    }
    if (s->model && cfg->mmproj) {
        char err[400];
        s->vision = px_vision_load(cfg->mmproj, px_model_pool(s->model), err, sizeof err);
        if (!s->vision) {
            snprintf(j->err, sizeof j->err, "--mmproj %s: %s", cfg->mmproj, err);
            px_model_free(s->model);
            s->model = NULL;
        }
    }
    j->seconds = px_now() - t0;
}

/* Test hook: PX_TEST_FAULTS="fail_step=5,nan_step=9,nan_row=0,stall_step=20,
 * stall_s=40" injects engine faults (scheduler/sched.h px_sched_faults) so
 * that tests/integration can watch the daemon survive them. */
static void test_faults(px_sched_faults *f) {
    const char *spec = getenv("PX_TEST_FAULTS");
    char err[200];
    if (!spec || !*spec) return;
    if (px_sched_faults_parse(spec, f, err, sizeof err) < 0)
        px_log(PX_LOG_WARN, "PX_TEST_FAULTS ignored: %s", err);
    else
        px_log(PX_LOG_WARN, "PX_TEST_FAULTS: injecting engine faults (%s): for tests only", spec);
}

/* Fails the start-up: logs, stops the loop, exit code 1. */
static void start_failed(px_server *s, int code) {
    s->exit_code = code;
    s->draining = 1;
    px_http_quiesce(s);
    uv_stop(s->loop);
}

static void load_done(uv_work_t *req, int status) {
    load_job *j = req->data;
    px_server *s = j->s;
    const px_config *cfg = s->cfg;
    char err[512];
    s->loading = 0;
    if (status != 0 || !s->model) {
        px_log(PX_LOG_ERROR, "cannot load %s: %s", j->path[0] ? j->path : "the demo model",
               j->err[0] ? j->err : "cancelled");
        start_failed(s, 1);
        return;
    }
    if (s->is_demo)
        px_log(PX_LOG_WARN,
               "no --model given: serving the built-in demo model %s "
               "(random weights: its output is meaningless)",
               j->path);
    s->tok = px_model_tokenizer(s->model);
    const px_model_config *mc = px_model_config_get(s->model);
    px_log(PX_LOG_INFO,
           "loaded %s in %.2f s: %s, %d layers, d_model %d, vocab %d, context %d, %lld KV blocks "
           "of %d tokens (%lld more for the sliding-window layers), %lld MiB of weights repacked",
           px_model_name(s->model), j->seconds, mc->arch == PX_ARCH_GEMMA3 ? "gemma3" : "llama",
           mc->n_layer, mc->n_embd, mc->n_vocab, px_model_n_ctx(s->model),
           (long long)px_model_kv_blocks(s->model), px_model_kv_block_size(s->model),
           (long long)px_model_kv_blocks_local(s->model),
           (long long)(px_model_repacked_bytes(s->model) >> 20));
    snprintf(s->model_id, sizeof s->model_id, "%s",
             cfg->model_id ? cfg->model_id : px_model_name(s->model));
    px_api_limits_init(&s->limits);
    s->limits.n_ctx = px_model_n_ctx(s->model);
    s->limits.max_prompt_tokens = s->limits.n_ctx - 1;
    s->limits.max_tokens_default = cfg->max_tokens_default;
    s->limits.max_n = cfg->max_n;
    s->limits.max_images = cfg->max_images;
    s->limits.image.max_pixels = cfg->max_image_pixels;
    s->limits.remote_images = cfg->allow_remote_images;
    px_chat_template tmpl = mc->arch == PX_ARCH_GEMMA3 ? PX_TEMPLATE_GEMMA : PX_TEMPLATE_LLAMA2;
    if (cfg->chat_template) {
        if (px_chat_template_from_name(cfg->chat_template, &tmpl) < 0) {
            px_log(PX_LOG_ERROR, "unknown chat_template '%s'", cfg->chat_template);
            start_failed(s, 2);
            return;
        }
    } else {
        const char *jinja = px_model_chat_template(s->model);
        tmpl = px_chat_template_detect(jinja, jinja ? strlen(jinja) : 0, tmpl);
    }
    px_log(PX_LOG_INFO, "chat template: %s", px_chat_template_name(tmpl));
    s->api =
        (px_api_ctx){.tok = s->tok, .tmpl = tmpl, .limits = &s->limits, .model_id = s->model_id};
    if (s->vision) {
        const px_vision_config *vc = px_vision_config_get(s->vision);
        s->api.image_tokens = vc->n_tokens_out;
        s->api.defer_image_decode = true; /* decode.c: off the event loop */
        px_log(PX_LOG_INFO, "vision tower: %s, %dx%d images, %d blocks, %d rows per image",
               cfg->mmproj ? cfg->mmproj : "demo (random weights)", vc->image_size, vc->image_size,
               vc->n_layer, vc->n_tokens_out);
    }
    px_sched_opts so;
    px_sched_opts_init(&so);
    so.max_batch_tokens = cfg->max_batch_tokens;
    so.max_running = cfg->max_running;
    so.max_waiting = cfg->max_waiting;
    so.prefix_cache = cfg->prefix_cache;
    so.vision = s->vision;
    test_faults(&so.faults);
    px_sched *sched = px_sched_create(s->model, &so, err, sizeof err);
    if (!sched || px_sched_start(sched) < 0) {
        px_log(PX_LOG_ERROR, "scheduler: %s", sched ? "cannot start its thread" : err);
        px_sched_destroy(sched);
        start_failed(s, 1);
        return;
    }
    s->sched = sched;
    if (s->draining) { /* a signal came during the load */
        uv_stop(s->loop);
        return;
    }
    s->ready = 1;
    sd_notify(0, "READY=1");
    px_log(PX_LOG_INFO, "ready");
}

int main(int argc, char **argv) {
    px_config cfg;
    char err[512];
    px_config_init(&cfg);
    if (px_config_load(&cfg, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "polluxd: %s\n", err);
        px_config_free(&cfg);
        return 2;
    }
    if (cfg.help || cfg.version) {
        fputs(cfg.help ? px_config_usage() : "polluxd " PACKAGE_VERSION "\n", stdout);
        px_config_free(&cfg);
        return 0;
    }
    if (px_config_validate(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "polluxd: %s\n", err);
        px_config_free(&cfg);
        return 2;
    }
    if (cfg.check_config) {
        px_config_dump(&cfg, stdout, true); /* API keys redacted */
        px_config_free(&cfg);
        return 0;
    }
    px_log_level lvl;
    if (cfg.log_level && px_log_parse_level(cfg.log_level, &lvl) == 0) px_log_threshold = lvl;
    if (cfg.log_file && px_log_open(cfg.log_file) < 0) {
        fprintf(stderr, "polluxd: cannot open log file %s\n", cfg.log_file);
        px_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    px_server s;
    memset(&s, 0, sizeof s);
    s.cfg = &cfg;
    s.started_at = (int64_t)time(NULL);
    pthread_mutex_init(&s.wake_lock, NULL);

    s.keys = split_keys(cfg.api_keys);
    if (cfg.api_key_file && load_key_file(cfg.api_key_file, &s.keys, err, sizeof err) < 0) {
        px_log(PX_LOG_ERROR, "%s", err);
        return 2;
    }

    /* Listen first and load the model on a worker thread, so that probes
     * get 503 "loading" instead of a refused connection meanwhile. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    s.loop = &loop;
    uv_async_init(&loop, &s.wake, on_wake);
    s.wake.data = &s;
    uv_timer_init(&loop, &s.tick);
    s.tick.data = &s;
    uv_timer_start(&s.tick, on_tick, 250, 250); /* pings, hang-ups, watchdog, drain */
    int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    uv_signal_t *hs[3] = {&s.sig_term, &s.sig_int, &s.sig_hup};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, hs[i]);
        hs[i]->data = &s;
        uv_signal_start(hs[i], on_signal, sigs[i]);
    }
    if (px_http_start(&s, err, sizeof err) < 0) {
        px_log(PX_LOG_ERROR, "%s", err);
        return 1;
    }
    px_log(PX_LOG_INFO, "listening on %s:%d", cfg.host, cfg.port);
    load_job job = {.s = &s};
    job.req.data = &job;
    s.loading = 1;
    uv_queue_work(&loop, &job.req, load_work, load_done);

    uv_run(&loop, UV_RUN_DEFAULT);
    int exit_code = s.exit_code;

    px_stream_cancel_all(&s);
    px_stream_resume_all(&s);
    px_decode_detach_all(&s);
    px_http_run(&s);
    px_http_stop(&s);
    if (s.sched) px_sched_destroy(s.sched); /* joins the thread; cancels what is left */
    px_server_drain_wakes(&s);
    uv_close((uv_handle_t *)&s.wake, NULL);
    uv_close((uv_handle_t *)&s.tick, NULL);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)hs[i], NULL);
    /* Closing the last handle puts back the default action; a late SIGTERM
     * (a supervisor repeating itself) must not turn a clean exit into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) px_log(PX_LOG_WARN, "event loop closed with handles still open");
    free_keys(s.keys);
    px_vision_free(s.vision);
    px_model_free(s.model);
    pthread_mutex_destroy(&s.wake_lock);
    px_log(PX_LOG_INFO, "stopped");
    px_log_close();
    px_config_free(&cfg);
    return exit_code;
}
