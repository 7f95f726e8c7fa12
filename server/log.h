/* log.h — one logging macro for the daemon, level-checked before its
 * arguments are evaluated. Lines go to stderr (journald adds time and unit)
 * or to the configured file with a timestamp; each line carries a level tag
 * and, for request lines, the request id. SIGHUP reopens the file.
 * Threads: any (one write(2) per line, so lines never interleave). */
#ifndef PX_LOG_H
#define PX_LOG_H

#include <stdarg.h>

typedef enum px_log_level {
    PX_LOG_ERROR = 0,
    PX_LOG_WARN = 1,
    PX_LOG_INFO = 2,
    PX_LOG_DEBUG = 3,
} px_log_level;

extern px_log_level px_log_threshold;

/* "error", "warn", "info", "debug" -> 0; otherwise -1. */
int px_log_parse_level(const char *s, px_log_level *out);
/* Opens (or reopens, for SIGHUP) the log file, O_APPEND, mode 0640; NULL =
 * stderr. A reopen replaces the file under the same descriptor, so other
 * threads may log meanwhile. On failure the previous destination stays and
 * errno is set. 0 or -1. Call from the main/loop thread (not from a raw
 * signal handler: use uv_signal). */
int px_log_open(const char *path);
/* Back to stderr; only when no other thread logs any more (at exit). */
void px_log_close(void);
/* Formats one line: "[time ]level: message\n" (time only with a file;
 * "<N>" syslog priority first when stderr is the journal). Longer than 4 KiB
 * ends in "…[truncated]"; CR/LF in the message become spaces. */
void px_log_write(px_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define px_log(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= px_log_threshold) px_log_write((lvl), __VA_ARGS__);                           \
    } while (0)

#endif
