/* config.h — polluxd's settings: defaults, the INI file, the environment
 * and the command line, in increasing precedence (command line > environment
 * > file > default).
 *
 * File: INI (conf/polluxd.conf documents every key), sections [server],
 * [model], [limits], [scheduler], [log]. Environment: POLLUXD_<KEY> with the
 * key upper-cased (e.g. POLLUXD_PORT, POLLUXD_KV_CACHE_MB). Command line:
 * --key value or --key=value with the key's dashes (e.g. --kv-cache-mb 512),
 * plus --config FILE, --help, --version, --check-config.
 * Unknown keys, bad numbers and out-of-range values are errors that name the
 * key and where it came from (file:line, environment variable, option).
 * An empty value unsets an optional string (model = ). Booleans are
 * true/false, yes/no, on/off, 1/0; max_body_bytes takes K, M, G (binary).
 * Unknown POLLUXD_* environment variables are ignored; unknown file keys,
 * sections and options are errors.
 * Owns: its strings (px_config_free). Threads: main thread, before start. */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct px_config {
    /* [server] */
    char *host;                /* listen address (default 127.0.0.1) */
    int port;                  /* default 8080 */
    int max_connections;       /* default 256 */
    int64_t max_body_bytes;    /* default 32 MiB (413 above) */
    int header_timeout_s;      /* idle connection / header read timeout (default 30) */
    int request_timeout_s;     /* default deadline of a request, queue to last token (600) */
    int max_request_timeout_s; /* a client may ask for up to this (3600) */
    int drain_timeout_s;       /* SIGTERM: time for in-flight streams (30) */
    int keepalive_s;           /* SSE comment ping interval while queued (5) */
    char *api_keys;            /* comma-separated keys; NULL = no auth */
    char *api_key_file;        /* one key per line */
    char *cors_origin;         /* Access-Control-Allow-Origin value; NULL = none */
    /* [model] */
    char *model;         /* GGUF path; NULL = built-in demo model */
    char *mmproj;        /* vision projector GGUF, or NULL */
    char *model_id;      /* name in /v1/models (default: from the file) */
    char *chat_template; /* "gemma", "llama2", "chatml" or NULL = detect */
    int threads;         /* 0 = online CPUs */
    int ctx;             /* 0 = the model's */
    int kv_cache_mb;     /* KV arena size (default 1024) */
    bool repack_weights; /* X16 layout at load (default true) */
    /* [scheduler] */
    int max_batch_tokens; /* 512 */
    int max_running;      /* 64 */
    int max_waiting;      /* 1024 (429 above) */
    bool prefix_cache;    /* true */
    int stall_timeout_s;  /* no scheduler step for this long: /health 503, watchdog unfed (30) */
    /* [limits] */
    int max_tokens_default;   /* when the client sets none (0 = up to the context) */
    int max_n;                /* 8 */
    int max_images;           /* 8 */
    int64_t max_image_pixels; /* 33 Mpx */
    bool allow_remote_images; /* false */
    /* [log] */
    char *log_level; /* error, warn, info, debug (info) */
    char *log_file;  /* NULL = stderr */
    /* command-line only */
    char *config_file;
    bool check_config; /* --check-config: validate and exit */
    bool help, version;
} px_config;

/* Fills the defaults. */
void px_config_init(px_config *c);
void px_config_free(px_config *c);

/* Applies the config file named by --config (or $POLLUXD_CONFIG; none by
 * default), then the environment, then argv. With --help or --version it
 * stops after setting that flag (nothing else is read). Returns 0, or a
 * negative PX_E* code (PX_EINVAL for bad input, PX_EIO for an unreadable
 * file, PX_ENOMEM) with err naming the key and its source. */
int px_config_load(px_config *c, int argc, char **argv, char *err, size_t errlen);

/* Checks cross-field constraints (timeouts, batch sizes, keys). 0 or
 * PX_EINVAL with err. */
int px_config_validate(const px_config *c, char *err, size_t errlen);

/* The --help text, every option with its default (static storage, built on
 * first call; main thread). */
const char *px_config_usage(void);

/* Writes the effective settings as a config file that px_config_load reads
 * back (for --check-config); api_keys shown as "(redacted)" if redact.
 * 0 or PX_EIO. */
int px_config_dump(const px_config *c, FILE *out, bool redact);

/* The name of the i-th known key (file spelling), NULL past the end. */
const char *px_config_key_name(int i);

#endif
