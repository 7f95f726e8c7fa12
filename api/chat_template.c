/* api/chat_template.c — Gemma, Llama 2 and ChatML prompt rendering.
 *
 * The output is built as a list of spans: template markers (special tokens)
 * and plain text, so the caller can tokenize client content without special
 * token parsing. Behaviour on odd conversations is documented in
 * chat_template.h; it follows each family's reference Jinja template. */
#include "api/chat_template.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

px_chat_template px_chat_template_detect(const char *jinja, size_t len, px_chat_template fallback) {
    static const struct {
        const char *marker;
        px_chat_template t;
    } marks[] = {
        {"<start_of_turn>", PX_TEMPLATE_GEMMA},
        {"<|im_start|>", PX_TEMPLATE_CHATML},
        {"[INST]", PX_TEMPLATE_LLAMA2},
    };
    if (!jinja) return fallback;
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        size_t ml = strlen(marks[i].marker);
        for (size_t p = 0; p + ml <= len; p++)
            if (jinja[p] == marks[i].marker[0] && memcmp(jinja + p, marks[i].marker, ml) == 0)
                return marks[i].t;
    }
    return fallback;
}

static const char *const names[] = {"gemma", "llama2", "chatml"};

int px_chat_template_from_name(const char *name, px_chat_template *out) {
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (px_chat_template)i;
            return 0;
        }
    return -1;
}

const char *px_chat_template_name(px_chat_template t) {
    return (unsigned)t < 3 ? names[t] : "unknown";
}

/* --- output builder ---------------------------------------------------- */

typedef struct builder {
    char *buf;
    size_t len, cap;
    px_chat_seg *segs;
    size_t n_segs, cap_segs;
    int oom;
} builder;

static void push_seg(builder *b, px_chat_seg seg) {
    if (b->n_segs == b->cap_segs) {
        size_t cap = b->cap_segs ? 2 * b->cap_segs : 16;
        px_chat_seg *p = realloc(b->segs, cap * sizeof *p);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->segs = p;
        b->cap_segs = cap;
    }
    b->segs[b->n_segs++] = seg;
}

static void put(builder *b, const char *s, size_t n, int special) {
    if (b->oom || n == 0) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    if (b->n_segs > 0 && b->segs[b->n_segs - 1].special == special &&
        b->segs[b->n_segs - 1].image < 0) {
        b->segs[b->n_segs - 1].len += n;
    } else {
        push_seg(b, (px_chat_seg){.off = b->len, .len = n, .special = special, .image = -1});
        if (b->oom) return;
    }
    b->len += n;
    b->buf[b->len] = '\0';
}

/* An empty span standing for an image. */
static void image(builder *b, int idx) {
    if (!b->oom) push_seg(b, (px_chat_seg){.off = b->len, .len = 0, .special = 0, .image = idx});
}

static void text(builder *b, const char *s, size_t n) {
    put(b, s, n, 0);
}
static void text_z(builder *b, const char *s) {
    put(b, s, strlen(s), 0);
}
static void mark(builder *b, const char *s) {
    put(b, s, strlen(s), 1);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* --- Python str.strip() over UTF-8 ------------------------------------- */

/* Code points Python's str.isspace() accepts (what Jinja's trim strips). */
static int is_py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes the (assumed well-formed) UTF-8 sequence at s[0..n); returns its
 * length, or 1 with an impossible code point for a stray byte. */
static size_t dec(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (l == 0 || l > n) {
        *cp = 0xFFFFFFFF;
        return 1;
    }
    uint32_t v = l == 1 ? c : c & (0x7F >> l);
    for (size_t i = 1; i < l; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFFFFFF;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return l;
}

static void lstrip(const char **s, size_t *n) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t a = 0;
    while (a < *n) {
        uint32_t cp;
        size_t l = dec(p + a, *n - a, &cp);
        if (!is_py_space(cp)) break;
        a += l;
    }
    *s += a;
    *n -= a;
}

static void rstrip(const char *s, size_t *n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t e = *n;
    while (e > 0) {
        /* Step back to the start of the last character (at most 4 bytes). */
        size_t b = e - 1;
        while (b > 0 && (p[b] & 0xC0) == 0x80 && e - b < 4)
            b--;
        uint32_t cp;
        size_t l = dec(p + b, e - b, &cp);
        if (b + l != e || !is_py_space(cp)) break;
        e = b;
    }
    *n = e;
}

static void strip(const char **s, size_t *n) {
    lstrip(s, n);
    rstrip(*s, n);
}

/* Writes a message's content: its text, or its parts in order with images
 * as image spans. trim is Jinja's `| trim`: of the whole text, or of each
 * text part, as Gemma's template does for a list of parts. */
static void content(builder *b, const px_chat_msg *m, int trim) {
    if (!m->parts) {
        const char *c = m->content ? m->content : "";
        size_t cl = m->content ? m->content_len : 0;
        if (trim) strip(&c, &cl);
        text(b, c, cl);
        return;
    }
    for (size_t i = 0; i < m->n_parts; i++) {
        const px_chat_part *p = &m->parts[i];
        if (p->image >= 0) {
            image(b, p->image);
            continue;
        }
        const char *c = p->text ? p->text : "";
        size_t cl = p->text ? p->len : 0;
        if (trim) strip(&c, &cl);
        text(b, c, cl);
    }
}

/* --- roles -------------------------------------------------------------- */

enum { R_SYSTEM, R_USER, R_ASSISTANT, R_BAD };

static int role_of(const char *r) {
    if (!r) return R_BAD;
    if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) return R_SYSTEM;
    if (strcmp(r, "user") == 0) return R_USER;
    if (strcmp(r, "assistant") == 0) return R_ASSISTANT;
    return R_BAD;
}

/* Gemma and Llama 2 share the structure check: [system] user (assistant
 * user)* [assistant]. Returns the index of the first non-system message. */
static int check_alternation(const px_chat_msg *msgs, size_t n, size_t *first, char *err,
                             size_t errlen) {
    size_t i0 = (n > 0 && role_of(msgs[0].role) == R_SYSTEM) ? 1 : 0;
    if (i0 == n) return fail(err, errlen, "the conversation has no user message");
    for (size_t i = i0; i < n; i++) {
        int r = role_of(msgs[i].role);
        if (r == R_BAD) return fail(err, errlen, "messages[%zu]: unknown role", i);
        if (r == R_SYSTEM)
            return fail(err, errlen,
                        "messages[%zu]: a system message is only allowed as the first message", i);
        int want = ((i - i0) % 2 == 0) ? R_USER : R_ASSISTANT;
        if (r != want)
            return fail(err, errlen,
                        "messages[%zu]: conversation roles must alternate "
                        "user/assistant/user/assistant/...",
                        i);
    }
    *first = i0;
    return 0;
}

static int render_gemma(builder *b, const px_chat_msg *msgs, size_t n, char *err, size_t errlen) {
    size_t i0;
    if (check_alternation(msgs, n, &i0, err, errlen)) return -1;
    for (size_t i = i0; i < n; i++) {
        int user = role_of(msgs[i].role) == R_USER;
        mark(b, "<start_of_turn>");
        text_z(b, user ? "user\n" : "model\n");
        if (i == i0 && i0 == 1) {
            /* Gemma 3: messages[0]['content'] + '\n\n', untrimmed. */
            content(b, &msgs[0], 0);
            text_z(b, "\n\n");
        }
        content(b, &msgs[i], 1);
        mark(b, "<end_of_turn>");
        text_z(b, "\n");
    }
    mark(b, "<start_of_turn>");
    text_z(b, "model\n");
    return 0;
}

static int render_llama2(builder *b, const px_chat_msg *msgs, size_t n, char *err, size_t errlen) {
    size_t i0;
    if (check_alternation(msgs, n, &i0, err, errlen)) return -1;
    for (size_t i = 0; i < n; i++)
        if (msgs[i].parts)
            return fail(err, errlen, "messages[%zu]: the Llama 2 template takes no images", i);
    for (size_t i = i0; i < n; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        size_t cl = msgs[i].content ? msgs[i].content_len : 0;
        if (role_of(msgs[i].role) == R_ASSISTANT) {
            strip(&c, &cl);
            text_z(b, " ");
            text(b, c, cl);
            text_z(b, " ");
            mark(b, "</s>");
            continue;
        }
        /* The first BOS is the tokenizer's; later turns open with "<s>". */
        if (i > i0) mark(b, "<s>");
        text_z(b, "[INST] ");
        if (i == i0 && i0 == 1) {
            /* strip() of '<<SYS>>\n' + sys + '\n<</SYS>>\n\n' + user: the
             * front starts with '<', so the user text loses only trailing
             * space; an all-space user text lets the strip reach into the
             * block's trailing newlines. */
            text_z(b, "<<SYS>>\n");
            text(b, msgs[0].content, msgs[0].content_len);
            rstrip(c, &cl);
            text_z(b, cl ? "\n<</SYS>>\n\n" : "\n<</SYS>>");
        } else {
            strip(&c, &cl);
        }
        text(b, c, cl);
        text_z(b, " [/INST]");
    }
    return 0;
}

static int render_chatml(builder *b, const px_chat_msg *msgs, size_t n, char *err, size_t errlen) {
    static const char *const rn[] = {"system", "user", "assistant"};
    for (size_t i = 0; i < n; i++) {
        int r = role_of(msgs[i].role);
        if (r == R_BAD) return fail(err, errlen, "messages[%zu]: unknown role", i);
        mark(b, "<|im_start|>");
        text_z(b, rn[r]);
        text_z(b, "\n");
        content(b, &msgs[i], 0);
        mark(b, "<|im_end|>");
        text_z(b, "\n");
    }
    mark(b, "<|im_start|>");
    text_z(b, "assistant\n");
    return 0;
}

int px_chat_template_render_segs(px_chat_template t, const px_chat_msg *msgs, size_t n, char **out,
                                 size_t *out_len, px_chat_seg **segs, size_t *n_segs, char *err,
                                 size_t errlen) {
    builder b = {0};
    int rc;
    switch (t) {
    case PX_TEMPLATE_GEMMA: rc = render_gemma(&b, msgs, n, err, errlen); break;
    case PX_TEMPLATE_LLAMA2: rc = render_llama2(&b, msgs, n, err, errlen); break;
    case PX_TEMPLATE_CHATML: rc = render_chatml(&b, msgs, n, err, errlen); break;
    default: rc = fail(err, errlen, "unknown chat template");
    }
    if (rc == 0 && !b.oom && !b.buf) {
        /* Nothing rendered (cannot happen with the checks above): "". */
        b.buf = calloc(1, 1);
        b.oom = b.buf == NULL;
    }
    if (rc == 0 && b.oom) rc = fail(err, errlen, "out of memory rendering the chat template");
    if (rc) {
        free(b.buf);
        free(b.segs);
        return -1;
    }
    *out = b.buf;
    *out_len = b.len;
    if (segs)
        *segs = b.segs;
    else
        free(b.segs);
    if (n_segs) *n_segs = b.n_segs;
    return 0;
}

int px_chat_template_render(px_chat_template t, const px_chat_msg *msgs, size_t n, char **out,
                            size_t *out_len, char *err, size_t errlen) {
    return px_chat_template_render_segs(t, msgs, n, out, out_len, NULL, NULL, err, errlen);
}
