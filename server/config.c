/* config.c — polluxd's settings from defaults, the INI file (libinih), the
 * environment and the command line, in that order of increasing precedence.
 *
 * One table (keys[]) describes every setting: its section, type, range,
 * default and help. Defaults, parsing from all three sources, --help and
 * px_config_dump all walk that table, so they cannot drift apart. Every
 * error names the key and its source ("polluxd.conf:12: max_running: ...",
 * "environment POLLUXD_PORT: ...", "option --threads: ..."). */
#include "server/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

typedef enum ktype {
    T_STR,  /* char *; "" = unset (NULL) unless required */
    T_INT,  /* int, range-checked */
    T_I64,  /* int64_t, range-checked */
    T_SIZE, /* int64_t bytes; K/M/G (KiB/MiB/GiB) binary suffixes */
    T_BOOL, /* bool */
    T_ENUM, /* char *, one of choices */
} ktype;

typedef struct key {
    const char *name;    /* file key; option is --name with '-' for '_' */
    const char *section; /* INI section it must appear in */
    ktype type;
    size_t off;                 /* offsetof(px_config, field) */
    int64_t min, max;           /* T_INT, T_I64, T_SIZE */
    bool required;              /* T_STR, T_ENUM: may not be empty */
    const char *def;            /* default, in the syntax of the file; NULL = unset */
    const char *const *choices; /* T_ENUM, NULL-terminated */
    const char *metavar;        /* for --help */
    const char *help;
} key;

#define OFF(f) offsetof(px_config, f)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const templates[] = {"gemma", "llama2", "chatml", NULL};
static const char *const sections[] = {"server", "model", "scheduler", "limits", "log", NULL};

/* The order here is the order of --help, px_config_dump and conf/polluxd.conf. */
static const key keys[] = {
    /* [server] */
    {"host", "server", T_STR, OFF(host), 0, 0, true, "127.0.0.1", NULL, "ADDR",
     "address to listen on (ignored under socket activation)"},
    {"port", "server", T_INT, OFF(port), 1, 65535, false, "8080", NULL, "N", "TCP port"},
    {"max_connections", "server", T_INT, OFF(max_connections), 1, 65536, false, "256", NULL, "N",
     "open HTTP connections at most"},
    {"max_body_bytes", "server", T_SIZE, OFF(max_body_bytes), 1024, INT64_C(1) << 32, false, "32M",
     NULL, "SIZE", "largest request body (413 above); K, M, G suffixes"},
    {"header_timeout_s", "server", T_INT, OFF(header_timeout_s), 1, 3600, false, "30", NULL, "SEC",
     "idle connection and header/body read timeout; a request's headers must all arrive within it"},
    {"request_timeout_s", "server", T_INT, OFF(request_timeout_s), 1, 86400, false, "600", NULL,
     "SEC", "default deadline of a request, queueing to last token"},
    {"max_request_timeout_s", "server", T_INT, OFF(max_request_timeout_s), 1, 86400, false, "3600",
     NULL, "SEC", "longest deadline a client may ask for"},
    {"drain_timeout_s", "server", T_INT, OFF(drain_timeout_s), 0, 86400, false, "30", NULL, "SEC",
     "on SIGTERM, time left to in-flight requests"},
    {"keepalive_s", "server", T_INT, OFF(keepalive_s), 1, 3600, false, "5", NULL, "SEC",
     "SSE comment ping interval while a stream waits"},
    {"api_keys", "server", T_STR, OFF(api_keys), 0, 0, false, NULL, NULL, "KEY,...",
     "accepted API keys, comma-separated (unset = no authentication)"},
    {"api_key_file", "server", T_STR, OFF(api_key_file), 0, 0, false, NULL, NULL, "FILE",
     "file of API keys, one per line"},
    {"cors_origin", "server", T_STR, OFF(cors_origin), 0, 0, false, NULL, NULL, "ORIGIN",
     "Access-Control-Allow-Origin value (unset = no CORS)"},
    /* [model] */
    {"model", "model", T_STR, OFF(model), 0, 0, false, NULL, NULL, "FILE",
     "GGUF model file (unset = built-in demo model)"},
    {"mmproj", "model", T_STR, OFF(mmproj), 0, 0, false, NULL, NULL, "FILE",
     "vision projector GGUF"},
    {"model_id", "model", T_STR, OFF(model_id), 0, 0, false, NULL, NULL, "NAME",
     "model name in /v1/models (unset = from the file)"},
    {"chat_template", "model", T_ENUM, OFF(chat_template), 0, 0, false, NULL, templates, "NAME",
     "gemma, llama2 or chatml (unset = detect from the GGUF)"},
    {"threads", "model", T_INT, OFF(threads), 0, 1024, false, "0", NULL, "N",
     "compute threads (0 = online CPUs)"},
    {"ctx", "model", T_INT, OFF(ctx), 0, 1 << 20, false, "0", NULL, "N",
     "context length in tokens (0 = the model's)"},
    {"kv_cache_mb", "model", T_INT, OFF(kv_cache_mb), 1, 1 << 20, false, "1024", NULL, "MB",
     "KV cache arena size in MiB"},
    {"repack_weights", "model", T_BOOL, OFF(repack_weights), 0, 0, false, "true", NULL, "BOOL",
     "copy Q4_0/Q5_0/Q8_0/Q4_K/Q5_K/Q6_K weights at load into the fast kernels' layout (false: "
     "compute "
     "from "
     "the file's pages, shared by processes that map the same file)"},
    /* [scheduler] */
    {"max_batch_tokens", "scheduler", T_INT, OFF(max_batch_tokens), 1, 1 << 16, false, "512", NULL,
     "N", "tokens per engine step"},
    {"max_running", "scheduler", T_INT, OFF(max_running), 1, 4096, false, "64", NULL, "N",
     "sequences decoded together"},
    {"max_waiting", "scheduler", T_INT, OFF(max_waiting), 0, 1 << 20, false, "1024", NULL, "N",
     "queued requests (429 above)"},
    {"prefix_cache", "scheduler", T_BOOL, OFF(prefix_cache), 0, 0, false, "true", NULL, "BOOL",
     "reuse KV blocks of shared prompt prefixes"},
    {"stall_timeout_s", "scheduler", T_INT, OFF(stall_timeout_s), 2, 86400, false, "30", NULL,
     "SEC",
     "a scheduler step older than this means stalled: /health answers 503 and the systemd "
     "watchdog is no longer fed"},
    /* [limits] */
    {"max_tokens_default", "limits", T_INT, OFF(max_tokens_default), 0, 1 << 20, false, "0", NULL,
     "N", "max_tokens when the client sets none (0 = up to the context)"},
    {"max_n", "limits", T_INT, OFF(max_n), 1, 128, false, "8", NULL, "N", "choices per request"},
    {"max_images", "limits", T_INT, OFF(max_images), 0, 1024, false, "8", NULL, "N",
     "images per request"},
    {"max_image_pixels", "limits", T_I64, OFF(max_image_pixels), 1, INT64_C(1) << 31, false,
     "33177600", NULL, "N", "pixels per decoded image (7680x4320)"},
    {"allow_remote_images", "limits", T_BOOL, OFF(allow_remote_images), 0, 0, false, "false", NULL,
     "BOOL", "fetch http(s) image URLs"},
    /* [log] */
    {"log_level", "log", T_ENUM, OFF(log_level), 0, 0, true, "info", log_levels, "LEVEL",
     "error, warn, info or debug"},
    {"log_file", "log", T_STR, OFF(log_file), 0, 0, false, NULL, NULL, "FILE",
     "log file, reopened on SIGHUP (unset = stderr)"},
};
#define N_KEYS ((int)PX_ARRAY_LEN(keys))

/* Short options and the key or command they stand for. */
static const struct {
    char c;
    const char *name;
} shorts[] = {{'m', "model"},  {'p', "port"}, {'t', "threads"},
              {'c', "config"}, {'h', "help"}, {'V', "version"}};

#define MSG_LEN 256

static const key *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

const char *px_config_key_name(int i) {
    return i >= 0 && i < N_KEYS ? keys[i].name : NULL;
}

static bool ieq(const char *a, const char *b) {
    return strcasecmp(a, b) == 0;
}

/* Decimal integer, the whole string, optional '-'; no spaces, no '+'. */
static int parse_int(const char *s, int64_t *out, const char **rest) {
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])))) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    *rest = end;
    return 0;
}

static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < PX_ARRAY_LEN(yes); i++) {
        if (ieq(s, yes[i])) return *out = true, 0;
        if (ieq(s, no[i])) return *out = false, 0;
    }
    return -1;
}

/* Parses val into the field of k. Returns 0, PX_EINVAL with msg (no source
 * prefix), or PX_ENOMEM. */
static int set_value(px_config *c, const key *k, const char *val, char *msg) {
    char *field = (char *)c + k->off;
    int64_t v = 0;
    const char *rest = "";
    switch (k->type) {
    case T_STR:
    case T_ENUM: {
        char **sp = (char **)field;
        if (val[0] == '\0') {
            if (k->required) return px_fail(msg, MSG_LEN, PX_EINVAL, "empty value");
            free(*sp);
            *sp = NULL;
            return 0;
        }
        if (k->type == T_ENUM) {
            const char *const *ch = k->choices;
            while (*ch && strcmp(*ch, val) != 0)
                ch++;
            if (!*ch) {
                int n = snprintf(msg, MSG_LEN, "'%s' is not one of", val);
                for (ch = k->choices; *ch && n > 0 && n < MSG_LEN; ch++)
                    n += snprintf(msg + n, (size_t)(MSG_LEN - n), " %s", *ch);
                return PX_EINVAL;
            }
        }
        char *dup = strdup(val);
        if (!dup) return px_fail(msg, MSG_LEN, PX_ENOMEM, "out of memory");
        free(*sp);
        *sp = dup;
        return 0;
    }
    case T_BOOL:
        if (parse_bool(val, (bool *)field))
            return px_fail(msg, MSG_LEN, PX_EINVAL,
                           "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", val);
        return 0;
    case T_INT:
    case T_I64:
    case T_SIZE: {
        int rc = parse_int(val, &v, &rest);
        if (rc == -2)
            return px_fail(msg, MSG_LEN, PX_EINVAL, "%s out of range %lld..%lld", val,
                           (long long)k->min, (long long)k->max);
        if (rc == 0 && k->type == T_SIZE && *rest) {
            static const struct {
                const char *suf;
                int shift;
            } sufs[] = {{"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
            size_t i = 0;
            while (i < PX_ARRAY_LEN(sufs) && !ieq(rest, sufs[i].suf))
                i++;
            if (i == PX_ARRAY_LEN(sufs))
                return px_fail(msg, MSG_LEN, PX_EINVAL,
                               "'%s' is not a size (bytes, or a number with K, M or G)", val);
            if (v > (k->max >> sufs[i].shift) || v < -(k->max >> sufs[i].shift))
                return px_fail(msg, MSG_LEN, PX_EINVAL, "%s out of range %lld..%lld", val,
                               (long long)k->min, (long long)k->max);
            v *= INT64_C(1) << sufs[i].shift;
            rest = "";
        }
        if (rc != 0 || *rest)
            return px_fail(msg, MSG_LEN, PX_EINVAL, "'%s' is not %s", val,
                           k->type == T_SIZE ? "a size (bytes, or a number with K, M or G)"
                                             : "an integer");
        if (v < k->min || v > k->max)
            return px_fail(msg, MSG_LEN, PX_EINVAL, "%s out of range %lld..%lld", val,
                           (long long)k->min, (long long)k->max);
        if (k->type == T_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = v;
        return 0;
    }
    }
    return PX_EINVAL;
}

void px_config_init(px_config *c) {
    memset(c, 0, sizeof(*c));
    char msg[MSG_LEN];
    for (int i = 0; i < N_KEYS; i++) {
        if (!keys[i].def) continue;
        int rc = set_value(c, &keys[i], keys[i].def, msg);
        /* Our own table must parse; ENOMEM leaves a required string NULL,
         * which px_config_validate reports. */
        assert(rc == 0 || rc == PX_ENOMEM);
        (void)rc;
    }
}

void px_config_free(px_config *c) {
    for (int i = 0; i < N_KEYS; i++) {
        if (keys[i].type == T_STR || keys[i].type == T_ENUM) {
            char **sp = (char **)((char *)c + keys[i].off);
            free(*sp);
            *sp = NULL;
        }
    }
    free(c->config_file);
    c->config_file = NULL;
}

/* ---- the file ----------------------------------------------------------- */

/* Hands inih one line at a time so that we know the line number in the
 * handler (Debian builds inih without INI_HANDLER_LINENO) and can refuse
 * lines longer than inih's buffer instead of letting it split them. */
typedef struct reader {
    const char *p, *end;
    int line;
    int too_long; /* line number of an over-long line, or 0 */
    int max_len;  /* longest line inih's buffer takes, without its newline */
    bool stop;
} reader;

static char *read_line(char *str, int num, void *stream) {
    reader *r = stream;
    if (r->stop || r->p >= r->end) return NULL;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    size_t len = nl ? (size_t)(nl - r->p) + 1 : (size_t)(r->end - r->p);
    r->line++;
    if (len > (size_t)num - 2) { /* room for "\r\n\0" as inih asks */
        r->too_long = r->line;
        r->max_len = num - 3;
        return NULL;
    }
    memcpy(str, r->p, len);
    str[len] = '\0';
    r->p += len;
    return str;
}

typedef struct file_ctx {
    px_config *c;
    const char *path;
    reader *rd;
    int err_line; /* line of our first error, 0 if none */
    int err_code; /* its PX_E* code */
    char msg[MSG_LEN * 2];
    int set_line[PX_ARRAY_LEN(keys)]; /* line each key was set on, 0 = not yet */
} file_ctx;

static int file_error(file_ctx *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int file_error(file_ctx *f, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
    f->err_line = f->rd->line;
    f->err_code = code;
    f->rd->stop = true; /* one error is enough; stop reading */
    return 0;           /* inih: zero means error */
}

static int on_entry(void *user, const char *section, const char *name, const char *value) {
    file_ctx *f = user;
    int line = f->rd->line;
    if (section[0] == '\0')
        return file_error(f, PX_EINVAL, "%s:%d: %s: outside a section (put it under [%s])", f->path,
                          line, name, find_key(name) ? find_key(name)->section : "...");
    const char *const *s = sections;
    while (*s && strcmp(*s, section) != 0)
        s++;
    if (!*s)
        return file_error(f, PX_EINVAL,
                          "%s:%d: unknown section [%s] (sections: server, model, scheduler, "
                          "limits, log)",
                          f->path, line, section);
    const key *k = find_key(name);
    if (!k)
        return file_error(f, PX_EINVAL, "%s:%d: unknown key '%s' in [%s]", f->path, line, name,
                          section);
    if (strcmp(k->section, section) != 0)
        return file_error(f, PX_EINVAL, "%s:%d: %s belongs in [%s], not [%s]", f->path, line, name,
                          k->section, section);
    /* A repeated key is usually a mistake, and inih reports a continuation
     * line (leading whitespace) as the same key again. */
    int *first = &f->set_line[k - keys];
    if (*first)
        return file_error(f, PX_EINVAL, "%s:%d: %s: already set on line %d", f->path, line, name,
                          *first);
    *first = line;
    char msg[MSG_LEN];
    int rc = set_value(f->c, k, value, msg);
    if (rc) return file_error(f, rc, "%s:%d: %s: %s", f->path, line, name, msg);
    return 1;
}

/* Largest config file we read; a real one is a few KiB. */
#define MAX_FILE_BYTES (1 << 20)

static int load_file(px_config *c, const char *path, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return px_fail(err, errlen, PX_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(MAX_FILE_BYTES + 1);
    if (!buf) {
        fclose(fp);
        return px_fail(err, errlen, PX_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, fp);
    int rerr = ferror(fp);
    fclose(fp);
    int rc = 0;
    if (rerr)
        rc = px_fail(err, errlen, PX_EIO, "%s: read error", path);
    else if (n > MAX_FILE_BYTES)
        rc = px_fail(err, errlen, PX_EINVAL, "%s: larger than %d bytes", path, MAX_FILE_BYTES);
    else if (memchr(buf, '\0', n))
        rc = px_fail(err, errlen, PX_EINVAL, "%s: contains a NUL byte (not a text file?)", path);
    if (rc) {
        free(buf);
        return rc;
    }
    reader rd = {.p = buf, .end = buf + n};
    file_ctx *f = calloc(1, sizeof(*f));
    if (!f) {
        free(buf);
        return px_fail(err, errlen, PX_ENOMEM, "%s: out of memory", path);
    }
    f->c = c;
    f->path = path;
    f->rd = &rd;
    int ret = ini_parse_stream(read_line, &rd, on_entry, f);
    /* inih returns the first bad line, ours or its own syntax error; ours
     * stops the reader, so an earlier line number is inih's. */
    if (rd.too_long && (!f->err_line || rd.too_long < f->err_line))
        rc = px_fail(err, errlen, PX_EINVAL, "%s:%d: line longer than %d characters", path,
                     rd.too_long, rd.max_len);
    else if (ret > 0 && (!f->err_line || ret < f->err_line))
        rc = px_fail(err, errlen, PX_EINVAL,
                     "%s:%d: syntax error (expected '[section]', 'key = value' or a comment)", path,
                     ret);
    else if (f->err_line)
        rc = px_fail(err, errlen, f->err_code, "%s", f->msg);
    else if (ret != 0)
        rc = px_fail(err, errlen, PX_EIO, "%s: cannot parse (inih error %d)", path, ret);
    free(f);
    free(buf);
    return rc;
}

/* ---- the environment ---------------------------------------------------- */

/* POLLUXD_<KEY> for every key. Unknown POLLUXD_* variables are ignored so
 * that a newer unit file's environment does not break an older daemon. */
static int load_env(px_config *c, char *err, size_t errlen) {
    for (int i = 0; i < N_KEYS; i++) {
        char var[64] = "POLLUXD_";
        size_t n = strlen(var);
        for (const char *p = keys[i].name; *p && n + 1 < sizeof(var); p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *val = getenv(var);
        if (!val) continue;
        char msg[MSG_LEN];
        int rc = set_value(c, &keys[i], val, msg);
        if (rc) return px_fail(err, errlen, rc, "environment %s: %s", var, msg);
    }
    return 0;
}

/* ---- the command line --------------------------------------------------- */

/* Appends one --api-key value. The command line replaces the keys of the
 * file and environment (it has precedence); repeats add to each other. */
static int add_api_key(px_config *c, const char *val, bool *cli_keys, char *msg) {
    if (val[0] == '\0' || strchr(val, ','))
        return px_fail(msg, MSG_LEN, PX_EINVAL, "a key may not be empty or contain ','");
    size_t old = *cli_keys && c->api_keys ? strlen(c->api_keys) : 0;
    char *s = malloc(old + 1 + strlen(val) + 1);
    if (!s) return px_fail(msg, MSG_LEN, PX_ENOMEM, "out of memory");
    if (old)
        sprintf(s, "%s,%s", c->api_keys, val);
    else
        strcpy(s, val);
    free(c->api_keys);
    c->api_keys = s;
    *cli_keys = true;
    return 0;
}

/* One pass over argv. The prescan only picks up --config, --help and
 * --version (so the file can be read before the command line overrides it,
 * and --help works whatever else is wrong); the main pass applies the rest
 * and reports every error. */
static int parse_argv(px_config *c, int argc, char **argv, bool prescan, char *err, size_t errlen) {
    bool cli_keys = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char name[64];
        char opt[80]; /* the option as the user spelt it, for messages */
        const char *val = NULL;
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len >= sizeof(name)) len = sizeof(name) - 1;
            for (size_t j = 0; j < len; j++)
                name[j] = a[2 + j] == '-' ? '_' : a[2 + j];
            name[len] = '\0';
            snprintf(opt, sizeof(opt), "--%.*s", (int)len, a + 2);
            if (eq) val = eq + 1;
        } else if (a[0] == '-' && a[1] && a[1] != '-') {
            size_t j = 0;
            while (j < PX_ARRAY_LEN(shorts) && shorts[j].c != a[1])
                j++;
            if (j == PX_ARRAY_LEN(shorts)) {
                if (prescan) continue;
                return px_fail(err, errlen, PX_EINVAL, "unknown option -%c (see --help)", a[1]);
            }
            snprintf(name, sizeof(name), "%s", shorts[j].name);
            snprintf(opt, sizeof(opt), "-%c", a[1]);
            if (a[2]) val = a + 2; /* -p8080 */
        } else {
            if (prescan) continue;
            return px_fail(err, errlen, PX_EINVAL, "unexpected argument '%s' (see --help)", a);
        }

        bool *flag = strcmp(name, "help") == 0           ? &c->help
                     : strcmp(name, "version") == 0      ? &c->version
                     : strcmp(name, "check_config") == 0 ? &c->check_config
                                                         : NULL;
        if (flag) {
            if (val) {
                if (prescan) continue;
                return px_fail(err, errlen, PX_EINVAL, "option %s takes no value", opt);
            }
            *flag = true;
            continue;
        }
        const key *k = find_key(name);
        bool is_config = strcmp(name, "config") == 0, is_api_key = strcmp(name, "api_key") == 0;
        if (!k && !is_config && !is_api_key) {
            if (prescan) continue;
            return px_fail(err, errlen, PX_EINVAL, "unknown option %s (see --help)", opt);
        }
        if (!val) {
            if (i + 1 >= argc) {
                if (prescan) return 0;
                return px_fail(err, errlen, PX_EINVAL, "option %s: missing value", opt);
            }
            val = argv[++i];
        }
        char msg[MSG_LEN];
        int rc = 0;
        if (is_config) {
            if (!prescan) continue;
            if (val[0] == '\0')
                return px_fail(err, errlen, PX_EINVAL, "option %s: empty value", opt);
            char *dup = strdup(val);
            if (!dup) return px_fail(err, errlen, PX_ENOMEM, "out of memory");
            free(c->config_file);
            c->config_file = dup;
        } else if (prescan) {
            continue;
        } else if (is_api_key) {
            rc = add_api_key(c, val, &cli_keys, msg);
        } else {
            rc = set_value(c, k, val, msg);
            if (rc == 0 && k->off == OFF(api_keys)) cli_keys = true;
        }
        if (rc) return px_fail(err, errlen, rc, "option %s: %s", opt, msg);
    }
    return 0;
}

int px_config_load(px_config *c, int argc, char **argv, char *err, size_t errlen) {
    int rc = parse_argv(c, argc, argv, true, err, errlen);
    if (rc) return rc;
    if (c->help || c->version) return 0;
    if (!c->config_file) {
        const char *env = getenv("POLLUXD_CONFIG");
        if (env && env[0] && !(c->config_file = strdup(env)))
            return px_fail(err, errlen, PX_ENOMEM, "out of memory");
    }
    if (c->config_file && (rc = load_file(c, c->config_file, err, errlen))) return rc;
    if ((rc = load_env(c, err, errlen))) return rc;
    return parse_argv(c, argc, argv, false, err, errlen);
}

/* ---- checks across keys ------------------------------------------------- */

static bool has_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

int px_config_validate(const px_config *c, char *err, size_t errlen) {
    if (!c->host || !c->log_level)
        return px_fail(err, errlen, PX_EINVAL, "%s: not set", !c->host ? "host" : "log_level");
    if (c->max_request_timeout_s < c->request_timeout_s)
        return px_fail(err, errlen, PX_EINVAL,
                       "max_request_timeout_s (%d) is below request_timeout_s (%d)",
                       c->max_request_timeout_s, c->request_timeout_s);
    if (c->max_running > c->max_batch_tokens)
        return px_fail(err, errlen, PX_EINVAL,
                       "max_running (%d) exceeds max_batch_tokens (%d): each running sequence "
                       "needs a token per step",
                       c->max_running, c->max_batch_tokens);
    if (c->ctx && c->max_tokens_default > c->ctx)
        return px_fail(err, errlen, PX_EINVAL, "max_tokens_default (%d) exceeds ctx (%d)",
                       c->max_tokens_default, c->ctx);
    if (c->mmproj && !c->model)
        return px_fail(err, errlen, PX_EINVAL,
                       "mmproj is set but model is not (the demo model has no vision tower)");
    if (c->api_keys) {
        /* Keys go in an Authorization header: no empty entries, no spaces. */
        const char *p = c->api_keys;
        for (int n = 1;; n++) {
            size_t len = strcspn(p, ",");
            if (len == 0) return px_fail(err, errlen, PX_EINVAL, "api_keys: key %d is empty", n);
            for (size_t j = 0; j < len; j++)
                if ((unsigned char)p[j] <= 0x20 || p[j] == 0x7f)
                    return px_fail(err, errlen, PX_EINVAL,
                                   "api_keys: key %d contains a space or control character", n);
            if (!p[len]) break;
            p += len + 1;
        }
    }
    if (c->cors_origin && has_ctl(c->cors_origin))
        return px_fail(err, errlen, PX_EINVAL,
                       "cors_origin: contains a control character (it is sent as a header)");
    if (c->model_id && has_ctl(c->model_id))
        return px_fail(err, errlen, PX_EINVAL, "model_id: contains a control character");
    return 0;
}

/* ---- --help and dump ---------------------------------------------------- */

static void opt_name(const key *k, char *out, size_t n) {
    size_t j = 0;
    for (const char *p = k->name; *p && j + 1 < n; p++)
        out[j++] = *p == '_' ? '-' : *p;
    out[j] = '\0';
}

const char *px_config_usage(void) {
    static char text[8192];
    if (text[0]) return text;
    size_t n = 0;
#define ADD(...)                                                                                   \
    n += (size_t)snprintf(text + n, n < sizeof(text) ? sizeof(text) - n : 0, __VA_ARGS__)
    ADD("Usage: polluxd [OPTION]...\n"
        "Serve a GGUF model (Gemma 3, Llama) over an OpenAI-compatible HTTP API.\n\n"
        "  -c, --config FILE            read settings from FILE (or $POLLUXD_CONFIG)\n"
        "      --check-config           check the settings, print them and exit\n"
        "  -h, --help                   show this help and exit\n"
        "  -V, --version                show the version and exit\n"
        "      --api-key KEY            accept KEY (repeatable; replaces api_keys from\n"
        "                               the file and environment)\n");
    const char *sec = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key *k = &keys[i];
        if (!sec || strcmp(sec, k->section) != 0) {
            sec = k->section;
            ADD("\n[%s]\n", sec);
        }
        char on[48], left[96];
        opt_name(k, on, sizeof(on));
        char sh = 0;
        for (size_t j = 0; j < PX_ARRAY_LEN(shorts); j++)
            if (strcmp(shorts[j].name, k->name) == 0) sh = shorts[j].c;
        if (sh)
            snprintf(left, sizeof(left), "  -%c, --%s %s", sh, on, k->metavar);
        else
            snprintf(left, sizeof(left), "      --%s %s", on, k->metavar);
        char desc[192];
        snprintf(desc, sizeof(desc), "%s%s%s%s", k->help, k->def ? " (default: " : "",
                 k->def ? k->def : "", k->def ? ")" : "");
        /* Word-wrap the description at 79 columns, indented under column 32. */
        ADD("%-30s", left);
        size_t col = strlen(left) < 30 ? 30 : strlen(left);
        for (const char *w = desc; *w;) {
            size_t wl = strcspn(w, " ");
            if (col + 1 + wl > 79 && col > 30) {
                ADD("\n%30s", "");
                col = 30;
            }
            ADD(" %.*s", (int)wl, w);
            col += 1 + wl;
            w += wl;
            while (*w == ' ')
                w++;
        }
        ADD("\n");
    }
    ADD("\nEvery option is also a key of the config file (in the [section] shown,\n"
        "with '_' for '-') and an environment variable POLLUXD_<KEY>, e.g.\n"
        "POLLUXD_KV_CACHE_MB.\n"
        "The command line wins over the environment, which wins over the file.\n"
        "Options take their value as --key VALUE or --key=VALUE.\n");
#undef ADD
    assert(n < sizeof(text));
    return text;
}

int px_config_dump(const px_config *c, FILE *out, bool redact) {
    const char *sec = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key *k = &keys[i];
        const char *field = (const char *)c + k->off;
        if (!sec || strcmp(sec, k->section) != 0) {
            sec = k->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", sec);
        }
        fprintf(out, "%s = ", k->name);
        switch (k->type) {
        case T_STR:
        case T_ENUM: {
            const char *s = *(char *const *)field;
            if (s && redact && k->off == OFF(api_keys)) s = "(redacted)";
            fprintf(out, "%s\n", s ? s : "");
            break;
        }
        case T_INT: fprintf(out, "%d\n", *(const int *)field); break;
        case T_I64:
        case T_SIZE: fprintf(out, "%lld\n", (long long)*(const int64_t *)field); break;
        case T_BOOL: fprintf(out, "%s\n", *(const bool *)field ? "true" : "false"); break;
        }
    }
    return ferror(out) ? PX_EIO : 0;
}
