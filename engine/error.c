/* error.c — PX_E* names and the px_fail() message helper. */
#include "px.h"

#include <stdio.h>

const char *px_strerror(int code) {
    switch (code) {
    case PX_OK: return "ok";
    case PX_EINVAL: return "invalid argument";
    case PX_ENOMEM: return "out of memory";
    case PX_EAGAIN: return "resource temporarily unavailable";
    case PX_ETOOBIG: return "over limit";
    case PX_EFORMAT: return "malformed input";
    case PX_ECANCELED: return "cancelled";
    case PX_EIO: return "I/O error";
    case PX_ENOTSUP: return "not supported";
    default: return "unknown error";
    }
}

int px_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
