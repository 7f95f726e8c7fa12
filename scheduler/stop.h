/* stop.h — stop strings matched across token boundaries in streamed text.
 *
 * A px_stop sits between the detokenizer and the client: text deltas go in,
 * text that can safely be sent comes out. Text that might be the start of a
 * stop string is held back until the following text resolves it; when a stop
 * string appears, everything from its first byte on is dropped and the
 * matcher reports the stop. Matching is on raw bytes, so a stop string that
 * ends in the middle of a UTF-8 character still matches.
 * Owns: copies of the stop strings and the held-back bytes.
 * Threads: one owner at a time (the scheduler thread). */
#ifndef PX_STOP_H
#define PX_STOP_H

#include <stddef.h>

#define PX_STOP_MAX 16       /* stop strings per request */
#define PX_STOP_MAX_LEN 1024 /* bytes per stop string */

typedef struct px_stop px_stop;

/* Copies the n strings (each 1..PX_STOP_MAX_LEN bytes, given with lengths).
 * Returns NULL for n < 0 or n > PX_STOP_MAX, a NULL array or string, an empty
 * or over-long string, or no memory. n == 0 gives a pass-through matcher
 * (strs and lens may then be NULL). The caller keeps its strings. */
px_stop *px_stop_create(const char *const *strs, const size_t *lens, int n);
void px_stop_destroy(px_stop *s);

/* Feeds len bytes of new text. Appends the bytes that are now safe to emit
 * to *out (grown with realloc as needed; *out_len updated; *out may start as
 * NULL with *out_len == *out_cap == 0) and returns 1 if a stop string matched
 * (the match and anything after it are never emitted), 0 otherwise, PX_EINVAL
 * for bad arguments or a feed after a match, or PX_ENOMEM (nothing changed).
 * With several stop strings the match that ends first wins; of those ending
 * on the same byte, the one starting first. Every byte that can no longer be
 * part of a match is emitted by the feed that decides it. */
int px_stop_feed(px_stop *s, const char *text, size_t len, char **out, size_t *out_len,
                 size_t *out_cap);
/* End of stream without a match: releases the held-back bytes into *out and
 * resets the matcher (a later feed starts a fresh stream). After a match it
 * emits nothing. Returns 0, PX_EINVAL or PX_ENOMEM. */
int px_stop_flush(px_stop *s, char **out, size_t *out_len, size_t *out_cap);
/* Bytes currently held back (< the longest stop string). */
size_t px_stop_pending(const px_stop *s);

#endif
