/* stop.c — stop-string matcher for streamed text (OpenAI `stop`, Gemini
 * `stopSequences`).
 *
 * Each stop string runs its own KMP automaton over the byte stream: its state
 * is the length of the longest suffix of the text seen so far that is a
 * proper prefix of the string. The text that must be held back is therefore
 * exactly the longest of those suffixes (the maximum state); every byte before
 * it can never become part of a match and is emitted at once. A state reaching
 * the string's length is a match; the first byte at which any string
 * completes decides (the match that ends first wins) and among strings ending
 * on that byte the longest (it starts earliest) wins, so the emitted text is
 * the shortest possible. Cost: amortized O(n_stop) per byte, memory
 * O(total stop bytes) with at most max_len - 1 bytes held. */
#include "stop.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

_Static_assert(PX_STOP_MAX_LEN <= UINT16_MAX, "KMP states are stored as uint16_t");

typedef struct stop_pat {
    unsigned char *str; /* the stop string's bytes (not NUL-terminated) */
    uint16_t len;       /* 1..PX_STOP_MAX_LEN */
    uint16_t state;     /* bytes of str matched by the text's current suffix (< len) */
    uint16_t *fail;     /* fail[k]: longest proper border of str[0..k] (KMP) */
} stop_pat;

struct px_stop {
    int n;               /* stop strings */
    size_t max_len;      /* longest stop string; 0 for pass-through */
    bool matched;        /* a stop string was found: the stream is over */
    size_t held_len;     /* bytes in held, == max state over pats */
    unsigned char *held; /* the held-back tail, capacity max_len */
    stop_pat pats[PX_STOP_MAX];
};

/* KMP failure function: fail[k] is the length of the longest proper prefix of
 * p[0..k] that is also its suffix. */
static void build_fail(const unsigned char *p, uint16_t len, uint16_t *fail) {
    fail[0] = 0;
    uint16_t k = 0;
    for (uint16_t i = 1; i < len; i++) {
        while (k > 0 && p[i] != p[k])
            k = fail[k - 1];
        if (p[i] == p[k]) k++;
        fail[i] = k;
    }
}

px_stop *px_stop_create(const char *const *strs, const size_t *lens, int n) {
    if (n < 0 || n > PX_STOP_MAX || (n > 0 && (!strs || !lens))) return NULL;
    for (int i = 0; i < n; i++)
        if (!strs[i] || lens[i] == 0 || lens[i] > PX_STOP_MAX_LEN) return NULL;

    px_stop *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->n = n;
    for (int i = 0; i < n; i++) {
        stop_pat *p = &s->pats[i];
        p->len = (uint16_t)lens[i];
        p->str = malloc(lens[i]);
        p->fail = malloc(lens[i] * sizeof(*p->fail));
        if (!p->str || !p->fail) {
            px_stop_destroy(s);
            return NULL;
        }
        memcpy(p->str, strs[i], lens[i]);
        build_fail(p->str, p->len, p->fail);
        if (lens[i] > s->max_len) s->max_len = lens[i];
    }
    if (s->max_len > 0 && !(s->held = malloc(s->max_len))) {
        px_stop_destroy(s);
        return NULL;
    }
    return s;
}

void px_stop_destroy(px_stop *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->pats[i].str);
        free(s->pats[i].fail);
    }
    free(s->held);
    free(s);
}

/* Makes room for `extra` more bytes in *out; the buffer is untouched on
 * failure. */
static int reserve(char **out, size_t *out_len, size_t *out_cap, size_t extra) {
    if (extra > SIZE_MAX - *out_len) return PX_ENOMEM;
    size_t need = *out_len + extra;
    if (need <= *out_cap && (*out || need == 0)) return 0;
    size_t cap = *out_cap > 0 ? *out_cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(*out, cap);
    if (!p) return PX_ENOMEM;
    *out = p;
    *out_cap = cap;
    return 0;
}

/* Appends pending bytes [0, n) of held ++ text to *out (room reserved). */
static void emit(const px_stop *s, const unsigned char *text, size_t n, char **out,
                 size_t *out_len) {
    if (n == 0) return; /* *out may still be NULL */
    size_t from_held = PX_MIN(n, s->held_len);
    if (from_held > 0) memcpy(*out + *out_len, s->held, from_held);
    if (n > from_held) memcpy(*out + *out_len + from_held, text, n - from_held);
    *out_len += n;
}

int px_stop_feed(px_stop *s, const char *text, size_t len, char **out, size_t *out_len,
                 size_t *out_cap) {
    if (!s || !out || !out_len || !out_cap || (len > 0 && !text) || s->matched) return PX_EINVAL;
    /* Reserve the worst case first so a failed allocation changes nothing. */
    int rc = reserve(out, out_len, out_cap, s->held_len + len);
    if (rc < 0) return rc;
    const unsigned char *t = (const unsigned char *)text;
    if (s->n == 0) {
        emit(s, t, len, out, out_len);
        return 0;
    }

    size_t hold = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = t[i];
        size_t best = 0; /* longest string completing on this byte */
        hold = 0;
        for (int j = 0; j < s->n; j++) {
            stop_pat *p = &s->pats[j];
            uint16_t m = p->state;
            while (m > 0 && p->str[m] != c)
                m = p->fail[m - 1];
            if (p->str[m] == c) m++;
            if (m == p->len) {
                if (m > best) best = m;
            } else if (m > hold) {
                hold = m;
            }
            p->state = m;
        }
        if (best > 0) {
            /* The match ends at pending index held_len + i; every byte of it
             * was held, so it starts inside the pending text. */
            size_t end = s->held_len + i + 1;
            assert(end >= best);
            emit(s, t, end - best, out, out_len);
            s->matched = true;
            s->held_len = 0;
            return 1;
        }
    }
    if (len == 0) return 0;

    /* Emit everything but the longest suffix that may still start a match. */
    size_t total = s->held_len + len;
    size_t n_emit = total - hold;
    assert(hold <= total && hold < s->max_len);
    emit(s, t, n_emit, out, out_len);
    if (hold <= len) {
        memcpy(s->held, t + len - hold, hold);
    } else {
        /* The new tail starts inside the old one: slide it down, then add
         * all of text. */
        memmove(s->held, s->held + n_emit, s->held_len - n_emit);
        memcpy(s->held + (s->held_len - n_emit), t, len);
    }
    s->held_len = hold;
    return 0;
}

int px_stop_flush(px_stop *s, char **out, size_t *out_len, size_t *out_cap) {
    if (!s || !out || !out_len || !out_cap) return PX_EINVAL;
    if (s->held_len > 0) {
        int rc = reserve(out, out_len, out_cap, s->held_len);
        if (rc < 0) return rc;
        emit(s, NULL, s->held_len, out, out_len);
    }
    s->held_len = 0;
    for (int j = 0; j < s->n; j++)
        s->pats[j].state = 0;
    return 0;
}

size_t px_stop_pending(const px_stop *s) {
    return s ? s->held_len : 0;
}
