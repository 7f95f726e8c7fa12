/* config.c — tests of server/config.c: defaults, precedence file < env <
 * command line, --key=value and short forms, repeatable --api-key, every
 * error with its exact message, cross-field checks, --help, the dump
 * round trip and the shipped conf/polluxd.conf. Settings are compared
 * whole through px_config_dump, so a field nobody thought of still counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "px.h"
#include "server/config.h"
#include "suites.h"

extern char **environ;

/* Removes every POLLUXD_* variable so the runner's environment can't leak in. */
static void clear_env(void) {
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "POLLUXD_", 8) != 0)
            e++;
        if (!*e) return;
        char name[128];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof(name), "%.*s", (int)n, *e);
        unsetenv(name);
    }
}

static void setup(void) {
    clear_env();
}

/* A temp file holding text; returns its malloc'd path (caller unlinks). */
static char *write_tmp(const char *text) {
    const char *dir = getenv("TMPDIR");
    char *path;
    ck_assert_int_gt(asprintf(&path, "%s/pxconfXXXXXX", dir && *dir ? dir : "/tmp"), 0);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* The settings as text (px_config_dump), for whole-struct comparison. */
static char *dump(const px_config *c) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(px_config_dump(c, f, false), 0);
    fclose(f);
    return s;
}

/* Loads argv (NULL-terminated) into c; returns px_config_load's result. */
static int load(px_config *c, char *err, const char *const *args) {
    char *argv[32] = {"polluxd"};
    int argc = 1;
    while (args && args[argc - 1]) {
        ck_assert_int_lt(argc, 31);
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    px_config_init(c);
    err[0] = '\0';
    return px_config_load(c, argc, argv, err, 512);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_defaults) {
    px_config c;
    px_config_init(&c);
    ck_assert_str_eq(c.host, "127.0.0.1");
    ck_assert_int_eq(c.port, 8080);
    ck_assert_int_eq(c.max_connections, 256);
    ck_assert_int_eq(c.max_body_bytes, 32 << 20);
    ck_assert_int_eq(c.header_timeout_s, 30);
    ck_assert_int_eq(c.request_timeout_s, 600);
    ck_assert_int_eq(c.max_request_timeout_s, 3600);
    ck_assert_int_eq(c.drain_timeout_s, 30);
    ck_assert_int_eq(c.keepalive_s, 5);
    ck_assert_ptr_null(c.api_keys);
    ck_assert_ptr_null(c.api_key_file);
    ck_assert_ptr_null(c.cors_origin);
    ck_assert_ptr_null(c.model);
    ck_assert_ptr_null(c.mmproj);
    ck_assert_ptr_null(c.model_id);
    ck_assert_ptr_null(c.chat_template);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_int_eq(c.ctx, 0);
    ck_assert_int_eq(c.kv_cache_mb, 1024);
    ck_assert(c.repack_weights);
    ck_assert_int_eq(c.max_batch_tokens, 512);
    ck_assert_int_eq(c.max_running, 64);
    ck_assert_int_eq(c.max_waiting, 1024);
    ck_assert(c.prefix_cache);
    ck_assert_int_eq(c.max_tokens_default, 0);
    ck_assert_int_eq(c.max_n, 8);
    ck_assert_int_eq(c.max_images, 8);
    ck_assert_int_eq(c.max_image_pixels, 7680 * 4320);
    ck_assert(!c.allow_remote_images);
    ck_assert_str_eq(c.log_level, "info");
    ck_assert_ptr_null(c.log_file);
    ck_assert_ptr_null(c.config_file);
    ck_assert(!c.help && !c.version && !c.check_config);
    char err[256];
    ck_assert_int_eq(px_config_validate(&c, err, sizeof(err)), 0);
    px_config_free(&c);
}
END_TEST

START_TEST(test_no_sources_is_defaults) {
    px_config d, c;
    char err[512];
    px_config_init(&d);
    ck_assert_int_eq(load(&c, err, NULL), 0);
    char *a = dump(&d), *b = dump(&c);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    px_config_free(&c);
    px_config_free(&d);
}
END_TEST

START_TEST(test_precedence) {
    char *path = write_tmp("[server]\nport = 1000\nhost = 0.0.0.0\n"
                           "[model]\nthreads = 2\nmodel = /file.gguf\nkv_cache_mb = 100\n"
                           "[log]\nlog_level = debug\n");
    setenv("POLLUXD_PORT", "2000", 1);
    setenv("POLLUXD_MODEL", "/env.gguf", 1);
    setenv("POLLUXD_KV_CACHE_MB", "200", 1);
    px_config c;
    char err[512];
    ck_assert_msg(load(&c, err, ARGS("--config", path, "--port", "3000", "--kv-cache-mb", "300")) ==
                      0,
                  "%s", err);
    ck_assert_int_eq(c.port, 3000);         /* file < env < command line */
    ck_assert_int_eq(c.kv_cache_mb, 300);   /* idem */
    ck_assert_str_eq(c.model, "/env.gguf"); /* file < env */
    ck_assert_int_eq(c.threads, 2);         /* file only */
    ck_assert_str_eq(c.host, "0.0.0.0");    /* file only */
    ck_assert_str_eq(c.log_level, "debug"); /* file only */
    ck_assert_int_eq(c.max_running, 64);    /* nobody: default */
    ck_assert_str_eq(c.config_file, path);
    px_config_free(&c);

    /* Without the command line, the environment wins over the file. */
    ck_assert_msg(load(&c, err, ARGS("-c", path)) == 0, "%s", err);
    ck_assert_int_eq(c.port, 2000);
    ck_assert_int_eq(c.kv_cache_mb, 200);
    px_config_free(&c);

    /* $POLLUXD_CONFIG names the file when --config doesn't. */
    unsetenv("POLLUXD_PORT");
    setenv("POLLUXD_CONFIG", path, 1);
    ck_assert_msg(load(&c, err, NULL) == 0, "%s", err);
    ck_assert_int_eq(c.port, 1000);
    px_config_free(&c);
    /* --config wins over $POLLUXD_CONFIG (the named file doesn't exist). */
    setenv("POLLUXD_CONFIG", "/nonexistent/polluxd.conf", 1);
    ck_assert_msg(load(&c, err, ARGS("-c", path)) == 0, "%s", err);
    ck_assert_int_eq(c.port, 1000);
    px_config_free(&c);
    unlink(path);
    free(path);
}
END_TEST

START_TEST(test_option_forms) {
    px_config c;
    char err[512];
    ck_assert_msg(load(&c, err,
                       ARGS("--kv-cache-mb=512", "-t", "3", "-p8081", "--max_running=32", "-m",
                            "m.gguf", "--check-config", "--prefix-cache=off", "--max-body-bytes=2K",
                            "--mmproj", "mm.gguf", "--host=::1", "--allow-remote-images", "YES",
                            "--chat-template", "chatml", "--model-id=", "--api-key=-k1")) == 0,
                  "%s", err);
    ck_assert_int_eq(c.kv_cache_mb, 512);
    ck_assert_int_eq(c.threads, 3);
    ck_assert_int_eq(c.port, 8081);
    ck_assert_int_eq(c.max_running, 32);
    ck_assert_str_eq(c.model, "m.gguf");
    ck_assert_str_eq(c.mmproj, "mm.gguf");
    ck_assert_str_eq(c.host, "::1");
    ck_assert(c.check_config);
    ck_assert(!c.prefix_cache);
    ck_assert(c.allow_remote_images);
    ck_assert_int_eq(c.max_body_bytes, 2048);
    ck_assert_str_eq(c.chat_template, "chatml");
    ck_assert_ptr_null(c.model_id); /* empty = unset */
    ck_assert_str_eq(c.api_keys, "-k1");
    ck_assert(!c.help && !c.version);
    px_config_free(&c);

    /* A value may start with '-' when it is a separate argument. */
    ck_assert_msg(load(&c, err, ARGS("--api-key", "-x", "--model", "--weird")) == 0, "%s", err);
    ck_assert_str_eq(c.api_keys, "-x");
    ck_assert_str_eq(c.model, "--weird");
    px_config_free(&c);

    /* Sizes: binary suffixes, any case. */
    static const struct {
        const char *in;
        int64_t want;
    } sizes[] = {{"1024", 1024},           {"1k", 1024},
                 {"3M", 3 << 20},          {"2MiB", 2 << 20},
                 {"1G", INT64_C(1) << 30}, {"4GiB", INT64_C(4) << 30}};
    for (size_t i = 0; i < PX_ARRAY_LEN(sizes); i++) {
        ck_assert_msg(load(&c, err, ARGS("--max-body-bytes", sizes[i].in)) == 0, "%s", err);
        ck_assert_msg(c.max_body_bytes == sizes[i].want, "%s -> %lld", sizes[i].in,
                      (long long)c.max_body_bytes);
        px_config_free(&c);
    }
    /* Booleans: every spelling. */
    static const char *const yes[] = {"true", "Yes", "ON", "1"}, *const no[] = {"false", "no",
                                                                                "Off", "0"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(load(&c, err, ARGS("--prefix-cache", no[i])), 0);
        ck_assert(!c.prefix_cache);
        px_config_free(&c);
        setenv("POLLUXD_ALLOW_REMOTE_IMAGES", yes[i], 1);
        ck_assert_int_eq(load(&c, err, NULL), 0);
        ck_assert(c.allow_remote_images);
        px_config_free(&c);
    }
}
END_TEST

START_TEST(test_api_keys) {
    char *path = write_tmp("[server]\napi_keys = f1,f2\n");
    px_config c;
    char err[512];
    ck_assert_int_eq(load(&c, err, ARGS("-c", path)), 0);
    ck_assert_str_eq(c.api_keys, "f1,f2");
    px_config_free(&c);
    /* The command line's keys replace the file's; repeats add up. */
    ck_assert_int_eq(load(&c, err, ARGS("-c", path, "--api-key", "a", "--api-key=b")), 0);
    ck_assert_str_eq(c.api_keys, "a,b");
    px_config_free(&c);
    ck_assert_int_eq(load(&c, err, ARGS("-c", path, "--api-keys", "x,y", "--api-key", "z")), 0);
    ck_assert_str_eq(c.api_keys, "x,y,z");
    px_config_free(&c);
    setenv("POLLUXD_API_KEYS", "e1", 1);
    ck_assert_int_eq(load(&c, err, ARGS("-c", path)), 0);
    ck_assert_str_eq(c.api_keys, "e1");
    px_config_free(&c);
    ck_assert_int_eq(load(&c, err, ARGS("-c", path, "--api-key", "c")), 0);
    ck_assert_str_eq(c.api_keys, "c");
    px_config_free(&c);
    unlink(path);
    free(path);
}
END_TEST

/* One error case: file text (or NULL), env var (or NULL), argv, expected
 * message; "%s" in the message stands for the temp file's path. */
typedef struct err_case {
    const char *file;
    const char *env_name, *env_val;
    const char *args[4];
    const char *want;
} err_case;

static const err_case err_cases[] = {
    {"[scheduler]\n# comment\nmax_running = abc\n",
     NULL,
     NULL,
     {0},
     "%s:3: max_running: 'abc' is not an integer"},
    {NULL, "POLLUXD_PORT", "70000", {0}, "environment POLLUXD_PORT: 70000 out of range 1..65535"},
    {NULL, "POLLUXD_PORT", "", {0}, "environment POLLUXD_PORT: '' is not an integer"},
    {NULL,
     "POLLUXD_MAX_BODY_BYTES",
     "1Q",
     {0},
     "environment POLLUXD_MAX_BODY_BYTES: '1Q' is not a size (bytes, or a number with K, M or G)"},
    {NULL,
     "POLLUXD_LOG_LEVEL",
     "loud",
     {0},
     "environment POLLUXD_LOG_LEVEL: 'loud' is not one of error warn info debug"},
    {NULL, NULL, NULL, {"--threads", "x"}, "option --threads: 'x' is not an integer"},
    {NULL, NULL, NULL, {"-t", "5x"}, "option -t: '5x' is not an integer"},
    {NULL, NULL, NULL, {"--threads", " 5"}, "option --threads: ' 5' is not an integer"},
    {NULL, NULL, NULL, {"--threads", "+5"}, "option --threads: '+5' is not an integer"},
    {NULL, NULL, NULL, {"--threads=-1"}, "option --threads: -1 out of range 0..1024"},
    {NULL,
     NULL,
     NULL,
     {"--port", "99999999999999999999"},
     "option --port: 99999999999999999999 out of range 1..65535"},
    {NULL, NULL, NULL, {"--port", "0"}, "option --port: 0 out of range 1..65535"},
    {NULL,
     NULL,
     NULL,
     {"--max-body-bytes", "5G"},
     "option --max-body-bytes: 5G out of range 1024..4294967296"},
    {NULL,
     NULL,
     NULL,
     {"--max-body-bytes", "1023"},
     "option --max-body-bytes: 1023 out of range 1024..4294967296"},
    {NULL,
     NULL,
     NULL,
     {"--max-body-bytes", "9999999999999G"},
     "option --max-body-bytes: 9999999999999G out of range 1024..4294967296"},
    {NULL,
     NULL,
     NULL,
     {"--prefix-cache=maybe"},
     "option --prefix-cache: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)"},
    {NULL,
     NULL,
     NULL,
     {"--chat-template", "vicuna"},
     "option --chat-template: 'vicuna' is not one of gemma llama2 chatml"},
    {NULL, NULL, NULL, {"--host="}, "option --host: empty value"},
    {NULL, NULL, NULL, {"--bogus", "1"}, "unknown option --bogus (see --help)"},
    {NULL, NULL, NULL, {"-x"}, "unknown option -x (see --help)"},
    {NULL, NULL, NULL, {"model.gguf"}, "unexpected argument 'model.gguf' (see --help)"},
    {NULL, NULL, NULL, {"--port"}, "option --port: missing value"},
    {NULL, NULL, NULL, {"-p"}, "option -p: missing value"},
    {NULL, NULL, NULL, {"--check-config=yes"}, "option --check-config takes no value"},
    {NULL,
     NULL,
     NULL,
     {"--api-key", ""},
     "option --api-key: a key may not be empty or contain ','"},
    {NULL,
     NULL,
     NULL,
     {"--api-key", "a,b"},
     "option --api-key: a key may not be empty or contain ','"},
    {NULL,
     NULL,
     NULL,
     {"--config", "/nonexistent/x.conf"},
     "/nonexistent/x.conf: cannot open: No such file or directory"},
    {"[server]\nprot = 1\n", NULL, NULL, {0}, "%s:2: unknown key 'prot' in [server]"},
    {"[sever]\nport = 1\n",
     NULL,
     NULL,
     {0},
     "%s:2: unknown section [sever] (sections: server, model, scheduler, limits, log)"},
    {"[model]\nport = 1\n", NULL, NULL, {0}, "%s:2: port belongs in [server], not [model]"},
    {"port = 1\n", NULL, NULL, {0}, "%s:1: port: outside a section (put it under [server])"},
    {"[server]\nport = 1\n\nport = 2\n", NULL, NULL, {0}, "%s:4: port: already set on line 2"},
    {"[server]\nmodel = /a\n", NULL, NULL, {0}, "%s:2: model belongs in [model], not [server]"},
    {"[model]\nmodel = /a\n  /b\n", NULL, NULL, {0}, "%s:3: model: already set on line 2"},
    {"[server]\nport 8080\n",
     NULL,
     NULL,
     {0},
     "%s:2: syntax error (expected '[section]', 'key = value' or a comment)"},
    {"[server\nport = 1\n",
     NULL,
     NULL,
     {0},
     "%s:1: syntax error (expected '[section]', 'key = value' or a comment)"},
    /* A syntax error before one of ours is reported first. */
    {"[server]\njunk\nport = x\n",
     NULL,
     NULL,
     {0},
     "%s:2: syntax error (expected '[section]', 'key = value' or a comment)"},
    {"[server]\nhost =\n", NULL, NULL, {0}, "%s:2: host: empty value"},
    {"[log]\nlog_level = verbose ; comment\n",
     NULL,
     NULL,
     {0},
     "%s:2: log_level: 'verbose' is not one of error warn info debug"},
    {"[model]\n\nmodel = /"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "a"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "a"
     "aaaaaaaaaaaaaaaaaaaa.gguf\n",
     NULL,
     NULL,
     {0},
     "%s:3: line longer than 197 characters"},
};

START_TEST(test_errors) {
    const err_case *t = &err_cases[_i];
    char *path = t->file ? write_tmp(t->file) : NULL;
    const char *args[8] = {0};
    int n = 0;
    if (path) {
        args[n++] = "--config";
        args[n++] = path;
    }
    for (int i = 0; i < 4 && t->args[i]; i++)
        args[n++] = t->args[i];
    if (t->env_name) setenv(t->env_name, t->env_val, 1);
    px_config c;
    char err[512], want[512];
    int rc = load(&c, err, args);
    snprintf(want, sizeof(want), t->want, path ? path : "");
    ck_assert_msg(rc < 0, "case %d: accepted", _i);
    ck_assert_str_eq(err, want);
    px_config_free(&c);
    if (path) {
        unlink(path);
        free(path);
    }
}
END_TEST

START_TEST(test_help_first) {
    /* --help and --version work whatever else is wrong. */
    setenv("POLLUXD_PORT", "bad", 1);
    px_config c;
    char err[512];
    ck_assert_int_eq(load(&c, err, ARGS("--bogus", "--config", "/nonexistent", "--help")), 0);
    ck_assert(c.help);
    px_config_free(&c);
    ck_assert_int_eq(load(&c, err, ARGS("-V")), 0);
    ck_assert(c.version && !c.help);
    px_config_free(&c);
    /* A value that looks like --help is a value. */
    unsetenv("POLLUXD_PORT");
    ck_assert_int_eq(load(&c, err, ARGS("--model", "--help")), 0);
    ck_assert(!c.help);
    ck_assert_str_eq(c.model, "--help");
    px_config_free(&c);
}
END_TEST

START_TEST(test_validate) {
    static const struct {
        const char *args[6];
        const char *env_name, *env_val;
        const char *want;
    } cases[] = {
        {{"--request-timeout-s", "100", "--max-request-timeout-s", "99"},
         NULL,
         NULL,
         "max_request_timeout_s (99) is below request_timeout_s (100)"},
        {{"--max-running", "65", "--max-batch-tokens", "64"},
         NULL,
         NULL,
         "max_running (65) exceeds max_batch_tokens (64): each running sequence needs a token "
         "per step"},
        {{"--ctx", "100", "--max-tokens-default", "101"},
         NULL,
         NULL,
         "max_tokens_default (101) exceeds ctx (100)"},
        {{"--mmproj", "mm.gguf"},
         NULL,
         NULL,
         "mmproj is set but model is not (the demo model has no vision tower)"},
        {{0}, "POLLUXD_API_KEYS", "a,,b", "api_keys: key 2 is empty"},
        {{0}, "POLLUXD_API_KEYS", "a,b c", "api_keys: key 2 contains a space or control character"},
        {{0}, "POLLUXD_API_KEYS", "a,", "api_keys: key 2 is empty"},
        {{0},
         "POLLUXD_CORS_ORIGIN",
         "https://x\r\nSet-Cookie: a=b",
         "cors_origin: contains a control character (it is sent as a header)"},
    };
    for (size_t i = 0; i < PX_ARRAY_LEN(cases); i++) {
        clear_env();
        if (cases[i].env_name) setenv(cases[i].env_name, cases[i].env_val, 1);
        px_config c;
        char err[512];
        const char *args[8] = {0};
        for (int j = 0; j < 6 && cases[i].args[j]; j++)
            args[j] = cases[i].args[j];
        ck_assert_msg(load(&c, err, args) == 0, "%s", err);
        ck_assert_int_eq(px_config_validate(&c, err, sizeof(err)), PX_EINVAL);
        ck_assert_str_eq(err, cases[i].want);
        px_config_free(&c);
    }
    /* The edges themselves are fine. */
    clear_env();
    px_config c;
    char err[512];
    ck_assert_int_eq(
        load(&c, err,
             ARGS("--request-timeout-s", "100", "--max-request-timeout-s", "100", "--max-running",
                  "64", "--max-batch-tokens", "64", "--api-key", "k1", "--api-key", "k2")),
        0);
    ck_assert_msg(px_config_validate(&c, err, sizeof(err)) == 0, "%s", err);
    px_config_free(&c);
}
END_TEST

START_TEST(test_usage_lists_every_option) {
    const char *u = px_config_usage();
    ck_assert_ptr_eq(u, px_config_usage());
    for (int i = 0; px_config_key_name(i); i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "--%s ", px_config_key_name(i));
        for (char *p = opt; *p; p++)
            if (*p == '_') *p = '-';
        ck_assert_msg(strstr(u, opt), "--help lacks %s", opt);
    }
    static const char *const extra[] = {"-m, --model FILE",  "-p, --port N",    "-t, --threads N",
                                        "-c, --config FILE", "-h, --help",      "-V, --version",
                                        "--check-config",    "--api-key KEY",   "(default: 8080)",
                                        "(default: 32M)",    "(default: info)", "POLLUXD_"};
    for (size_t i = 0; i < PX_ARRAY_LEN(extra); i++)
        ck_assert_msg(strstr(u, extra[i]), "--help lacks '%s'", extra[i]);
    ck_assert_ptr_null(px_config_key_name(-1));
}
END_TEST

START_TEST(test_dump_round_trip) {
    px_config c;
    char err[512];
    ck_assert_msg(load(&c, err,
                       ARGS("--port", "9", "--model", "/m.gguf", "--prefix-cache", "no",
                            "--max-body-bytes", "1M", "--api-key", "s3cret", "--log-level", "warn",
                            "--max-image-pixels", "1000")) == 0,
                  "%s", err);
    char *text = dump(&c);
    char *path = write_tmp(text);
    px_config back;
    ck_assert_msg(load(&back, err, ARGS("-c", path)) == 0, "%s", err);
    char *text2 = dump(&back);
    ck_assert_str_eq(text, text2);
    ck_assert(strstr(text, "\nport = 9\n"));
    ck_assert(strstr(text, "\nmax_body_bytes = 1048576\n"));
    /* --check-config shows the settings without the secrets. */
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    ck_assert_int_eq(px_config_dump(&c, f, true), 0);
    fclose(f);
    ck_assert_ptr_null(strstr(s, "s3cret"));
    ck_assert(strstr(s, "api_keys = (redacted)"));
    free(s);
    free(text);
    free(text2);
    px_config_free(&c);
    px_config_free(&back);
    unlink(path);
    free(path);
}
END_TEST

static char *shipped_path(void) {
    const char *src = getenv("PX_SRCDIR");
    char *p;
    if (src && *src) {
        ck_assert_int_gt(asprintf(&p, "%s/conf/polluxd.conf", src), 0);
    } else { /* run by hand: find the tree from this file's path */
        const char *f = __FILE__;
        const char *tail = strstr(f, "tests/unit/server/config.c");
        ck_assert_ptr_nonnull(tail);
        ck_assert_int_gt(asprintf(&p, "%.*sconf/polluxd.conf", (int)(tail - f), f), 0);
    }
    return p;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *s = NULL;
    size_t n = 0;
    ck_assert_int_gt(getdelim(&s, &n, '\0', f), 0);
    fclose(f);
    return s;
}

START_TEST(test_shipped_conf) {
    char *path = shipped_path();
    px_config d, c;
    char err[512];
    px_config_init(&d);
    char *want = dump(&d);

    /* As shipped (every setting commented out) it parses to the defaults. */
    ck_assert_msg(load(&c, err, ARGS("-c", path)) == 0, "%s", err);
    char *got = dump(&c);
    ck_assert_str_eq(got, want);
    free(got);
    px_config_free(&c);

    /* Each key is documented as "#key = <default>": uncommented, the file
     * still gives exactly the defaults, and every key is there. */
    char *text = slurp(path), *out = malloc(strlen(text) + 1);
    ck_assert_ptr_nonnull(out);
    size_t o = 0;
    for (char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        bool setting = line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " =") &&
                       strstr(line, " =") < line + len;
        memcpy(out + o, line + setting, len - setting);
        o += len - setting;
        line += len;
        if (*line) out[o++] = *line++;
    }
    out[o] = '\0';
    for (int i = 0; px_config_key_name(i); i++) {
        char pat[64];
        snprintf(pat, sizeof(pat), "\n%s =", px_config_key_name(i));
        ck_assert_msg(strstr(out, pat), "conf/polluxd.conf does not document %s",
                      px_config_key_name(i));
    }
    char *tmp = write_tmp(out);
    ck_assert_msg(load(&c, err, ARGS("-c", tmp)) == 0, "uncommented: %s", err);
    got = dump(&c);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(px_config_validate(&c, err, sizeof(err)), 0);
    free(got);
    px_config_free(&c);
    px_config_free(&d);
    unlink(tmp);
    free(tmp);
    free(out);
    free(text);
    free(want);
    free(path);
}
END_TEST

START_TEST(test_free_clears) {
    /* Strings from every source, freed once (ASan's leak check runs at exit). */
    char *path = write_tmp("[server]\ncors_origin = *\n[model]\nmodel_id = a\n");
    setenv("POLLUXD_MODEL", "/e.gguf", 1);
    setenv("POLLUXD_MODEL_ID", "b", 1); /* replaces the file's string */
    px_config c;
    char err[512];
    ck_assert_int_eq(load(&c, err,
                          ARGS("-c", path, "--mmproj", "x", "--mmproj", "y", "--api-key", "k",
                               "--log-file", "/tmp/l")),
                     0);
    ck_assert_str_eq(c.model_id, "b");
    ck_assert_str_eq(c.mmproj, "y");
    px_config_free(&c);
    ck_assert_ptr_null(c.host);
    ck_assert_ptr_null(c.model);
    ck_assert_ptr_null(c.config_file);
    ck_assert_ptr_null(c.api_keys);
    px_config_free(&c); /* twice is harmless */
    unlink(path);
    free(path);
}
END_TEST

Suite *px_suite_config(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_no_sources_is_defaults);
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_option_forms);
    tcase_add_test(tc, test_api_keys);
    tcase_add_loop_test(tc, test_errors, 0, (int)PX_ARRAY_LEN(err_cases));
    tcase_add_test(tc, test_help_first);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_usage_lists_every_option);
    tcase_add_test(tc, test_dump_round_trip);
    tcase_add_test(tc, test_shipped_conf);
    tcase_add_test(tc, test_free_clears);
    suite_add_tcase(s, tc);
    return s;
}
