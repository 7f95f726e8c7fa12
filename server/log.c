/* log.c — level-filtered log lines, one write(2) each, to stderr or a file.
 *
 * Under systemd stderr is a journal stream: lines then start with the
 * syslog priority "<N>" so journalctl shows levels (sd-daemon(3)). A log file
 * gets an ISO-8601 UTC timestamp per line instead. px_log_open swaps files
 * with dup3 onto one descriptor number, so a thread writing meanwhile never
 * sees a closed or reused descriptor. */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

px_log_level px_log_threshold = PX_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const char level_prio[] = {'3', '4', '6', '7'};

static atomic_int log_fd = -1;  /* the file's descriptor; -1 = stderr */
static atomic_int journal = -1; /* stderr is the journal: -1 unknown, 0, 1 */

int px_log_parse_level(const char *s, px_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (px_log_level)i;
            return 0;
        }
    }
    return -1;
}

/* systemd sets JOURNAL_STREAM=dev:ino of the stream it connected; stderr is
 * the journal only if it is still that file (not redirected by a wrapper). */
static bool stderr_is_journal(void) {
    int j = atomic_load(&journal);
    if (j >= 0) return j;
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    j = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    atomic_store(&journal, j);
    return j;
}

int px_log_open(const char *path) {
    if (!path) {
        px_log_close();
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return -1;
    int cur = atomic_load(&log_fd);
    if (cur < 0) {
        atomic_store(&log_fd, fd);
        return 0;
    }
    /* Reopen: the new file takes the old descriptor's number atomically. */
    int rc = dup3(fd, cur, O_CLOEXEC);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

void px_log_close(void) {
    int fd = atomic_exchange(&log_fd, -1);
    if (fd >= 0) close(fd);
}

/* Longest line; longer messages end in TRUNC. */
#define LINE_MAX_BYTES 4096
static const char TRUNC[] = "\xe2\x80\xa6[truncated]"; /* "…[truncated]" */

void px_log_write(px_log_level lvl, const char *fmt, ...) {
    if ((unsigned)lvl > PX_LOG_DEBUG) lvl = PX_LOG_DEBUG;
    char line[LINE_MAX_BYTES];
    const size_t room = sizeof(line) - (sizeof(TRUNC) - 1) - 1; /* keep space for TRUNC, '\n' */
    int fd = atomic_load(&log_fd);
    size_t n = 0;
    if (fd >= 0) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, room, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, room - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    } else if (stderr_is_journal()) {
        line[n++] = '<';
        line[n++] = level_prio[lvl];
        line[n++] = '>';
    }
    n += (size_t)snprintf(line + n, room - n, "%s: ", level_names[lvl]);
    size_t start = n;

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, room - n, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    bool cut = (size_t)m >= room - n;
    n = cut ? room - 1 : n + (size_t)m;
    if (cut) { /* don't end inside a UTF-8 sequence */
        size_t j = n;
        while (j > start && ((unsigned char)line[j - 1] & 0xC0) == 0x80)
            j--;
        unsigned char b = j > start ? (unsigned char)line[j - 1] : 0;
        size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        if (n - (j - 1) < need) n = j - 1;
    }
    /* One event, one line: a newline in a message (a client string, say)
     * must not forge a second log line. */
    for (size_t i = start; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    if (cut) {
        memcpy(line + n, TRUNC, sizeof(TRUNC) - 1);
        n += sizeof(TRUNC) - 1;
    }
    line[n++] = '\n';

    int out = fd >= 0 ? fd : 2;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(out, line + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere left to report it */
        off += (size_t)w;
    }
}
