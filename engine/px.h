/* px.h — error codes and small helpers shared by every pollux module.
 *
 * Owns: the PX_E* status codes and px_strerror(). Every module returns 0 or a
 * negative PX_E* code from functions that can fail, and fills a caller's
 * message buffer (char *err, size_t errlen; NULL allowed) with the detail.
 * Thread-safe: pure functions and constants only. */
#ifndef PX_PX_H
#define PX_PX_H

#include <stdarg.h>
#include <stddef.h>

enum {
    PX_OK = 0,
    PX_EINVAL = -1,    /* bad argument or input */
    PX_ENOMEM = -2,    /* allocation failed */
    PX_EAGAIN = -3,    /* try again later (queue full, no blocks) */
    PX_ETOOBIG = -4,   /* input over a configured limit */
    PX_EFORMAT = -5,   /* malformed file or payload */
    PX_ECANCELED = -6, /* cancelled by the caller */
    PX_EIO = -7,       /* operating-system I/O error */
    PX_ENOTSUP = -8,   /* valid but unsupported (type, architecture) */
};

/* Returns a static, human-readable name for a PX_E* code. */
const char *px_strerror(int code);

/* Writes a printf-style message into err (if err != NULL and errlen > 0),
 * always NUL-terminated, and returns code so callers can `return px_fail(...)`. */
int px_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define PX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
