/* stop.c — tests of scheduler/stop.c: stop strings split across chunks, the
 * earliest moment held bytes are released, overlapping and tied matches,
 * UTF-8, argument checks, and a seeded randomized comparison with a
 * brute-force matcher that asserts the exact output after every feed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"
#include "scheduler/stop.h"
#include "suites.h"

/* A matcher plus the text it has emitted so far. */
typedef struct feeder {
    px_stop *s;
    char *out;
    size_t len, cap;
} feeder;

static void feeder_init(feeder *f, const char *const *strs, int n) {
    size_t lens[PX_STOP_MAX];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(strs[i]);
    f->s = px_stop_create(strs, lens, n);
    ck_assert_ptr_nonnull(f->s);
    f->out = NULL;
    f->len = f->cap = 0;
}

static void feeder_deinit(feeder *f) {
    px_stop_destroy(f->s);
    free(f->out);
}

static void assert_out(const feeder *f, const char *want) {
    size_t n = strlen(want);
    ck_assert_msg(f->len == n && (n == 0 || memcmp(f->out, want, n) == 0),
                  "emitted \"%.*s\" (%zu bytes), want \"%s\"", (int)f->len, f->out ? f->out : "",
                  f->len, want);
}

/* Feeds chunk and checks the return code, the whole output so far and the
 * number of held bytes. */
static void feed(feeder *f, const char *chunk, int want_rc, const char *want_out,
                 size_t want_pending) {
    int rc = px_stop_feed(f->s, chunk, strlen(chunk), &f->out, &f->len, &f->cap);
    ck_assert_msg(rc == want_rc, "feed \"%s\": rc %d, want %d", chunk, rc, want_rc);
    assert_out(f, want_out);
    ck_assert_uint_eq(px_stop_pending(f->s), want_pending);
}

static void flush(feeder *f, const char *want_out) {
    ck_assert_int_eq(px_stop_flush(f->s, &f->out, &f->len, &f->cap), 0);
    assert_out(f, want_out);
    ck_assert_uint_eq(px_stop_pending(f->s), 0);
}

START_TEST(test_split_two_chunks) {
    feeder f;
    feeder_init(&f, (const char *[]){"</end>"}, 1);
    feed(&f, "hello </e", 0, "hello ", 3);
    feed(&f, "nd> world", 1, "hello ", 0);
    feeder_deinit(&f);
}
END_TEST

START_TEST(test_split_three_chunks) {
    feeder f;
    feeder_init(&f, (const char *[]){"STOP"}, 1);
    feed(&f, "abS", 0, "ab", 1);
    feed(&f, "T", 0, "ab", 2);
    feed(&f, "OPxyz", 1, "ab", 0);
    feeder_deinit(&f);
}
END_TEST

/* One byte per feed: the held count grows by one each time, nothing of the
 * stop string is ever emitted, and the text before it is emitted at once. */
START_TEST(test_split_bytewise) {
    feeder f;
    feeder_init(&f, (const char *[]){"<|im_end|>"}, 1);
    const char *text = "ok<|im_end|>tail";
    char one[2] = {0};
    for (size_t i = 0; i < 2; i++) {
        one[0] = text[i];
        feed(&f, one, 0, i == 0 ? "o" : "ok", 0);
    }
    for (size_t i = 2; i < 11; i++) {
        one[0] = text[i];
        feed(&f, one, 0, "ok", i - 1);
    }
    one[0] = text[11];
    feed(&f, one, 1, "ok", 0);
    feeder_deinit(&f);
}
END_TEST

/* A partial prefix is released by the very feed that breaks it. */
START_TEST(test_release_earliest) {
    feeder f;
    feeder_init(&f, (const char *[]){"abcd"}, 1);
    feed(&f, "xa", 0, "x", 1);
    feed(&f, "b", 0, "x", 2);
    feed(&f, "c", 0, "x", 3);
    feed(&f, "e", 0, "xabce", 0); /* "abce" is not a prefix: all of it goes */
    feed(&f, "ab", 0, "xabce", 2);
    feed(&f, "ab", 0, "xabceab", 2); /* "abab": only the last "ab" can start "abcd" */
    feed(&f, "", 0, "xabceab", 2);
    feed(&f, "cd", 1, "xabceab", 0);
    feeder_deinit(&f);
}
END_TEST

/* The text after a broken prefix may itself start the stop string again. */
START_TEST(test_release_partial_reuse) {
    feeder f;
    feeder_init(&f, (const char *[]){"aab"}, 1);
    feed(&f, "a", 0, "", 1);
    feed(&f, "a", 0, "", 2);
    feed(&f, "a", 0, "a", 2); /* "aaa": the last two may still become "aab" */
    feed(&f, "b", 1, "a", 0); /* "aaab" matches at 1 */
    feeder_deinit(&f);

    feeder_init(&f, (const char *[]){"aab"}, 1);
    feed(&f, "aaab", 1, "a", 0);
    feeder_deinit(&f);
}
END_TEST

START_TEST(test_repeated_prefix) {
    feeder f;
    feeder_init(&f, (const char *[]){"abac"}, 1);
    /* "ababac": a naive matcher that restarts after the failed 'b' misses
     * the match at 2. */
    static const size_t pending[] = {1, 2, 3, 2, 3};
    static const char *const out[] = {"", "", "", "ab", "ab"};
    const char *text = "ababac";
    char one[2] = {0};
    for (int i = 0; i < 5; i++) {
        one[0] = text[i];
        feed(&f, one, 0, out[i], pending[i]);
    }
    feed(&f, "c", 1, "ab", 0);
    feeder_deinit(&f);

    feeder_init(&f, (const char *[]){"abac"}, 1);
    feed(&f, "ababac", 1, "ab", 0);
    feeder_deinit(&f);
}
END_TEST

START_TEST(test_overlapping_strings) {
    feeder f;
    const char *abc_bcd[] = {"abc", "bcd"};
    const char *bcd_abc[] = {"bcd", "abc"};

    /* "abc" ends first in "abcd". */
    feeder_init(&f, abc_bcd, 2);
    feed(&f, "ab", 0, "", 2);
    feed(&f, "cd", 1, "", 0);
    feeder_deinit(&f);
    /* "bcd" matches when "abc" does not complete. */
    feeder_init(&f, bcd_abc, 2);
    feed(&f, "xab", 0, "x", 2);
    feed(&f, "b", 0, "xab", 1); /* "abb" kills "abc"; "b" may start "bcd" */
    feed(&f, "cd", 1, "xab", 0);
    feeder_deinit(&f);
    /* Held text is the longest suffix over all strings: "bc" for "bcd" while
     * "abc" holds nothing. */
    feeder_init(&f, abc_bcd, 2);
    feed(&f, "xbc", 0, "x", 2);
    feed(&f, "e", 0, "xbce", 0);
    feeder_deinit(&f);
}
END_TEST

/* The match that ends first wins, even when it starts later. */
START_TEST(test_earliest_end_wins) {
    feeder f;
    feeder_init(&f, (const char *[]){"abcd", "bc"}, 2);
    feed(&f, "zabcd", 1, "za", 0);
    feeder_deinit(&f);
    feeder_init(&f, (const char *[]){"bc", "abcd"}, 2);
    feed(&f, "za", 0, "z", 1);
    feed(&f, "b", 0, "z", 2);
    feed(&f, "c", 1, "za", 0);
    feeder_deinit(&f);
}
END_TEST

/* Two strings ending on the same byte: the longer (earlier) one wins,
 * whatever the order they were given in. */
START_TEST(test_tie_earliest_start) {
    const char *orders[2][2] = {{"cd", "abcd"}, {"abcd", "cd"}};
    for (int o = 0; o < 2; o++) {
        feeder f;
        feeder_init(&f, orders[o], 2);
        feed(&f, "xab", 0, "x", 2);
        feed(&f, "cd!", 1, "x", 0);
        feeder_deinit(&f);
    }
}
END_TEST

START_TEST(test_stop_at_start) {
    feeder f;
    feeder_init(&f, (const char *[]){"###"}, 1);
    feed(&f, "###rest", 1, "", 0);
    feeder_deinit(&f);

    feeder_init(&f, (const char *[]){"x"}, 1);
    feed(&f, "x", 1, "", 0);
    feeder_deinit(&f);
}
END_TEST

START_TEST(test_utf8) {
    feeder f;
    /* "。" is E3 80 82; split inside the character. */
    feeder_init(&f, (const char *[]){"\xe3\x80\x82"}, 1);
    feed(&f, "\xe6\x97\xa5\xe3", 0, "\xe6\x97\xa5", 1);
    feed(&f, "\x80", 0, "\xe6\x97\xa5", 2);
    feed(&f, "\x82\xe6\x9c\xac", 1, "\xe6\x97\xa5", 0);
    feeder_deinit(&f);

    /* "é" (C3 A9) held on its lead byte, released when "è" (C3 A8) turns
     * out to be something else. */
    feeder_init(&f, (const char *[]){"\xc3\xa9"}, 1);
    feed(&f, "caf\xc3", 0, "caf", 1);
    feed(&f, "\xa8", 0, "caf\xc3\xa8", 0);
    feeder_deinit(&f);

    /* A stop string ending mid-character still matches (bytes, not
     * characters): the rest of the character is dropped with it. */
    feeder_init(&f, (const char *[]){"\xe3\x80"}, 1);
    feed(&f, "a\xe3\x80\x82", 1, "a", 0);
    feeder_deinit(&f);
}
END_TEST

/* A 1000-byte stop string arriving 7 bytes at a time, then a near miss that
 * differs only in its last byte and is released whole by that byte. */
START_TEST(test_long_stop) {
    enum { L = 1000, CHUNK = 7 };
    char *stop = malloc(L + 1);
    ck_assert_ptr_nonnull(stop);
    for (int i = 0; i < L; i++)
        stop[i] = (char)('a' + (i * 7 + i / 13) % 26);
    stop[L] = '\0';

    for (int miss = 0; miss < 2; miss++) {
        char *text = malloc(L + 4);
        ck_assert_ptr_nonnull(text);
        memcpy(text, "<<", 2);
        memcpy(text + 2, stop, L);
        if (miss) text[2 + L - 1] = '#'; /* '#' starts nothing */
        memcpy(text + 2 + L, ">", 2);
        feeder f;
        feeder_init(&f, (const char *[]){stop}, 1);
        size_t fed = 0, total = L + 3;
        int rc = 0;
        while (fed < total && rc == 0) {
            size_t n = PX_MIN((size_t)CHUNK, total - fed);
            rc = px_stop_feed(f.s, text + fed, n, &f.out, &f.len, &f.cap);
            fed += n;
            if (fed < 2 + L) {
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(f.len, 2);
                ck_assert_uint_eq(px_stop_pending(f.s), fed - 2);
            }
        }
        if (miss) {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(px_stop_pending(f.s), 0);
            ck_assert_uint_eq(f.len, total);
            ck_assert_mem_eq(f.out, text, total);
        } else {
            ck_assert_int_eq(rc, 1);
            ck_assert_uint_eq(f.len, 2);
            ck_assert_mem_eq(f.out, "<<", 2);
        }
        feeder_deinit(&f);
        free(text);
    }
    free(stop);
}
END_TEST

START_TEST(test_flush_releases) {
    feeder f;
    feeder_init(&f, (const char *[]){"\n\nUser:"}, 1);
    feed(&f, "answer\n\nUs", 0, "answer", 4);
    flush(&f, "answer\n\nUs");
    /* The matcher starts over after a flush. */
    feed(&f, "\n\nUser:", 1, "answer\n\nUs", 0);
    /* After a match, flush emits nothing and feeding is refused. */
    flush(&f, "answer\n\nUs");
    ck_assert_int_eq(px_stop_feed(f.s, "z", 1, &f.out, &f.len, &f.cap), PX_EINVAL);
    assert_out(&f, "answer\n\nUs");
    feeder_deinit(&f);
}
END_TEST

/* Output is appended after whatever the caller's buffer already holds. */
START_TEST(test_appends) {
    feeder f;
    feeder_init(&f, (const char *[]){"zz"}, 1);
    f.cap = 4;
    f.out = malloc(f.cap);
    ck_assert_ptr_nonnull(f.out);
    memcpy(f.out, "pre:", 4);
    f.len = 4;
    feed(&f, "0123456789abcdefghijklmnopqrstuvwxy", 0, "pre:0123456789abcdefghijklmnopqrstuvwxy",
         0);
    ck_assert_uint_ge(f.cap, f.len);
    feeder_deinit(&f);
}
END_TEST

START_TEST(test_invalid_args) {
    const char *strs[PX_STOP_MAX + 1];
    size_t lens[PX_STOP_MAX + 1];
    for (int i = 0; i <= PX_STOP_MAX; i++) {
        strs[i] = "x";
        lens[i] = 1;
    }
    px_stop *s = px_stop_create(strs, lens, PX_STOP_MAX);
    ck_assert_ptr_nonnull(s);
    px_stop_destroy(s);
    ck_assert_ptr_null(px_stop_create(strs, lens, PX_STOP_MAX + 1));
    ck_assert_ptr_null(px_stop_create(strs, lens, -1));
    ck_assert_ptr_null(px_stop_create(NULL, lens, 1));
    ck_assert_ptr_null(px_stop_create(strs, NULL, 1));

    lens[1] = 0; /* empty string */
    ck_assert_ptr_null(px_stop_create(strs, lens, 2));
    lens[1] = 1;
    strs[1] = NULL;
    ck_assert_ptr_null(px_stop_create(strs, lens, 2));

    char *big = malloc(PX_STOP_MAX_LEN + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'q', PX_STOP_MAX_LEN + 1);
    strs[1] = big;
    lens[1] = PX_STOP_MAX_LEN + 1;
    ck_assert_ptr_null(px_stop_create(strs, lens, 2));
    lens[1] = PX_STOP_MAX_LEN; /* exactly the limit is fine */
    s = px_stop_create(strs, lens, 2);
    ck_assert_ptr_nonnull(s);

    char *out = NULL;
    size_t len = 0, cap = 0;
    ck_assert_int_eq(px_stop_feed(s, NULL, 3, &out, &len, &cap), PX_EINVAL);
    ck_assert_int_eq(px_stop_feed(s, "a", 1, NULL, &len, &cap), PX_EINVAL);
    ck_assert_int_eq(px_stop_feed(s, NULL, 0, &out, &len, &cap), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(px_stop_flush(NULL, &out, &len, &cap), PX_EINVAL);
    px_stop_destroy(s);
    px_stop_destroy(NULL);
    free(big);
    free(out);
}
END_TEST

START_TEST(test_passthrough) {
    px_stop *s = px_stop_create(NULL, NULL, 0);
    ck_assert_ptr_nonnull(s);
    char *out = NULL;
    size_t len = 0, cap = 0;
    ck_assert_int_eq(px_stop_feed(s, "ab", 2, &out, &len, &cap), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(px_stop_feed(s, "c\0d", 3, &out, &len, &cap), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(out, "abc\0d", 5);
    ck_assert_uint_eq(px_stop_pending(s), 0);
    ck_assert_int_eq(px_stop_flush(s, &out, &len, &cap), 0);
    ck_assert_uint_eq(len, 5);
    px_stop_destroy(s);
    free(out);
}
END_TEST

/* A long stream that keeps a 1023-byte prefix of a 1024-byte stop string
 * pending: the held window stays bounded and everything older goes out. */
START_TEST(test_long_stream_bounded) {
    enum { L = PX_STOP_MAX_LEN, N = 64 * 1024 };
    char *stop = malloc(L);
    ck_assert_ptr_nonnull(stop);
    memset(stop, 'a', L - 1);
    stop[L - 1] = 'b';
    size_t lens[1] = {L};
    px_stop *s = px_stop_create((const char *const[]){stop}, lens, 1);
    ck_assert_ptr_nonnull(s);
    char *out = NULL;
    size_t len = 0, cap = 0;
    char chunk[3] = {'a', 'a', 'a'};
    for (size_t fed = 0; fed < N; fed += sizeof(chunk)) {
        ck_assert_int_eq(px_stop_feed(s, chunk, sizeof(chunk), &out, &len, &cap), 0);
        size_t total = fed + sizeof(chunk);
        size_t held = PX_MIN(total, (size_t)L - 1);
        ck_assert_uint_eq(px_stop_pending(s), held);
        ck_assert_uint_eq(len, total - held);
    }
    ck_assert_int_eq(px_stop_feed(s, "b", 1, &out, &len, &cap), 1);
    size_t total = N - N % 3 + (N % 3 ? 3 : 0);
    ck_assert_uint_eq(len, total - (L - 1));
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(out[i], 'a');
    px_stop_destroy(s);
    free(stop);
    free(out);
}
END_TEST

/* --- randomized comparison with a brute-force matcher ------------------ */

static uint64_t rng_next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static size_t rng_below(uint64_t *x, size_t n) {
    return (size_t)(rng_next(x) % n);
}

typedef struct ref_case {
    int n;
    char strs[4][6];
    size_t lens[4];
} ref_case;

/* Earliest-ending match in t[0..n), earliest start on a tie: sets *start and
 * returns 1, or returns 0. */
static int ref_match(const ref_case *c, const char *t, size_t n, size_t *start) {
    for (size_t e = 1; e <= n; e++) {
        size_t best = 0;
        for (int j = 0; j < c->n; j++) {
            size_t l = c->lens[j];
            if (l <= e && l > best && memcmp(t + e - l, c->strs[j], l) == 0) best = l;
        }
        if (best) {
            *start = e - best;
            return 1;
        }
    }
    return 0;
}

/* Longest suffix of t[0..n) that is a proper prefix of some stop string. */
static size_t ref_hold(const ref_case *c, const char *t, size_t n) {
    size_t best = 0;
    for (int j = 0; j < c->n; j++)
        for (size_t k = 1; k < c->lens[j] && k <= n; k++)
            if (k > best && memcmp(t + n - k, c->strs[j], k) == 0) best = k;
    return best;
}

START_TEST(test_random_vs_bruteforce) {
    enum { CASES = 4000, MAX_TEXT = 48 };
    /* Small alphabets make overlaps frequent; NUL and 0xff check the matcher
     * is byte-clean. */
    static const char alpha[] = {'a', 'b', 'c', '\0', '\xff'};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_matched = 0;
    for (int it = 0; it < CASES; it++) {
        size_t na = it % 3 == 0 ? 2 : it % 3 == 1 ? 3 : sizeof(alpha);
        ref_case c;
        c.n = 1 + (int)rng_below(&rng, 4);
        const char *ptrs[4];
        for (int j = 0; j < c.n; j++) {
            c.lens[j] = 1 + rng_below(&rng, 5);
            for (size_t k = 0; k < c.lens[j]; k++)
                c.strs[j][k] = alpha[rng_below(&rng, na)];
            ptrs[j] = c.strs[j];
        }
        char text[MAX_TEXT];
        size_t n_text = rng_below(&rng, MAX_TEXT + 1);
        for (size_t k = 0; k < n_text; k++)
            text[k] = alpha[rng_below(&rng, na)];
        size_t want_start = n_text;
        int want_match = ref_match(&c, text, n_text, &want_start);
        n_matched += want_match;

        px_stop *s = px_stop_create(ptrs, c.lens, c.n);
        ck_assert_ptr_nonnull(s);
        char *out = NULL;
        size_t len = 0, cap = 0;
        size_t fed = 0;
        int rc = 0;
        while (fed < n_text && rc == 0) {
            size_t n = rng_below(&rng, 6); /* 0..5 bytes, empty feeds too */
            n = PX_MIN(n, n_text - fed);
            rc = px_stop_feed(s, text + fed, n, &out, &len, &cap);
            fed += n;
            ck_assert_int_ge(rc, 0);
            /* Exactly what brute force allows on the text so far: nothing
             * more (never leak a stop string) and nothing less (emit as
             * early as possible). */
            size_t start;
            int m = ref_match(&c, text, fed, &start);
            ck_assert_msg(rc == m, "case %d: rc %d after %zu bytes, want %d", it, rc, fed, m);
            size_t allowed = m ? start : fed - ref_hold(&c, text, fed);
            ck_assert_msg(len == allowed, "case %d: %zu bytes out after %zu fed, want %zu", it, len,
                          fed, allowed);
            ck_assert_uint_eq(px_stop_pending(s), m ? 0 : fed - allowed);
        }
        if (rc == 0) ck_assert_int_eq(px_stop_flush(s, &out, &len, &cap), 0);
        ck_assert_int_eq(rc, want_match);
        ck_assert_uint_eq(len, want_start);
        if (len > 0) ck_assert_mem_eq(out, text, len);
        px_stop_destroy(s);
        free(out);
    }
    /* The generator must exercise both outcomes. */
    ck_assert_int_gt(n_matched, CASES / 10);
    ck_assert_int_lt(n_matched, CASES - CASES / 10);
}
END_TEST

Suite *px_suite_stop(void) {
    Suite *s = suite_create("stop");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_split_two_chunks);
    tcase_add_test(tc, test_split_three_chunks);
    tcase_add_test(tc, test_split_bytewise);
    tcase_add_test(tc, test_release_earliest);
    tcase_add_test(tc, test_release_partial_reuse);
    tcase_add_test(tc, test_repeated_prefix);
    tcase_add_test(tc, test_overlapping_strings);
    tcase_add_test(tc, test_earliest_end_wins);
    tcase_add_test(tc, test_tie_earliest_start);
    tcase_add_test(tc, test_stop_at_start);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_long_stop);
    tcase_add_test(tc, test_flush_releases);
    tcase_add_test(tc, test_appends);
    tcase_add_test(tc, test_invalid_args);
    tcase_add_test(tc, test_passthrough);
    tcase_add_test(tc, test_long_stream_bounded);
    tcase_add_test(tc, test_random_vs_bruteforce);
    suite_add_tcase(s, tc);
    return s;
}
