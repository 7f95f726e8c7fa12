/* json_writer.h — the appender the response renderers write JSON with: it
 * remembers the first allocation failure, so call sites stay flat and check
 * once at the end. Private to the api renderers. */
#ifndef PX_JSON_WRITER_H
#define PX_JSON_WRITER_H

#include <math.h>
#include <string.h>

#include "api/openai.h"

typedef struct px_jw {
    px_buf *b;
    int err;
} px_jw;

/* Raw text (punctuation, keys, literals). */
static inline void jw_lit(px_jw *o, const char *s) {
    if (!o->err && px_buf_append(o->b, s, strlen(s))) o->err = -1;
}
/* A JSON string literal of s[0..n) (NULL: ""). */
static inline void jw_str(px_jw *o, const char *s, size_t n) {
    if (!o->err && px_buf_json_str(o->b, s ? s : "", s ? n : 0)) o->err = -1;
}
static inline void jw_int(px_jw *o, long long v) {
    if (!o->err && px_buf_printf(o->b, "%lld", v)) o->err = -1;
}
/* JSON has no infinities: an impossible value (a logprob of -inf) is
 * written as -9999, as OpenAI does. */
static inline void jw_num(px_jw *o, double v) {
    if (!o->err && px_buf_printf(o->b, "%.9g", isfinite(v) ? v : -9999.0)) o->err = -1;
}

#endif
