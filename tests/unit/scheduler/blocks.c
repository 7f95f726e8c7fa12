/* blocks.c — tests of scheduler/blocks.c: argument checks, allocation and
 * exhaustion, the FREE/USED/CACHED transitions with counts after every step,
 * LRU eviction order, unpublish on eviction, parent generations, full-key
 * comparison (including keys crafted to share a bucket or a whole 64-bit
 * hash), duplicate publishes, prefix_cache off, clear_cache, px_blocks_check
 * catching wrong expectations, linked keys (a local pool's block keyed by
 * a block of another pool and its generation), and a seeded random run
 * against a reference model written with plain arrays and linear search. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scheduler/blocks.h"
#include "px.h"
#include "suites.h"

/* Counts after an operation: free, used, cached; available and total follow. */
#define COUNTS(b, f, u, c) counts_at((b), (f), (u), (c), __LINE__)
static void counts_at(const px_blocks *b, int32_t f, int32_t u, int32_t c, int line) {
    ck_assert_msg(px_blocks_n_free(b) == f && px_blocks_n_used(b) == u &&
                      px_blocks_n_cached(b) == c,
                  "line %d: free/used/cached %d/%d/%d, want %d/%d/%d", line, px_blocks_n_free(b),
                  px_blocks_n_used(b), px_blocks_n_cached(b), f, u, c);
    ck_assert_msg(px_blocks_available(b) == f + c, "line %d: available %d, want %d", line,
                  px_blocks_available(b), f + c);
    ck_assert_int_eq(px_blocks_total(b), f + u + c);
}

/* px_blocks_check passes, with the expected ref counts when refs != NULL. */
#define CHECK_OK(b, refs) check_ok_at((b), (refs), __LINE__)
static void check_ok_at(const px_blocks *b, const int32_t *refs, int line) {
    char err[256] = "";
    int rc = px_blocks_check(b, refs, err, sizeof err);
    ck_assert_msg(rc == 0, "line %d: px_blocks_check: %s", line, err);
}

/* Both of the above. */
#define AGREE(b, refs, f, u, c)                                                                    \
    do {                                                                                           \
        counts_at((b), (f), (u), (c), __LINE__);                                                   \
        check_ok_at((b), (refs), __LINE__);                                                        \
    } while (0)

/* A block of bs tokens: tok[i] = base + i. */
static void fill_tokens(int32_t *tok, int bs, int32_t base) {
    for (int i = 0; i < bs; i++)
        tok[i] = base + i;
}

START_TEST(test_create_args) {
    ck_assert_ptr_null(px_blocks_create(0, 16, true));
    ck_assert_ptr_null(px_blocks_create(-1, 16, true));
    ck_assert_ptr_null(px_blocks_create(4, 0, true));
    ck_assert_ptr_null(px_blocks_create(4, -16, true));
    ck_assert_ptr_null(px_blocks_create(4, 4097, false));
    ck_assert_ptr_null(px_blocks_create(INT32_MAX, 16, true));
    px_blocks_destroy(NULL);

    px_blocks *b = px_blocks_create(5, 4096, true);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(px_blocks_total(b), 5);
    COUNTS(b, 5, 0, 0);
    int32_t zero[5] = {0};
    CHECK_OK(b, zero);
    for (int32_t i = 0; i < 5; i++) {
        ck_assert_int_eq(px_blocks_refcount(b, i), 0);
        ck_assert(!px_blocks_is_published(b, i));
    }
    px_blocks_destroy(b);
}
END_TEST

START_TEST(test_alloc_exhaust) {
    enum { N = 6 };
    px_blocks *b = px_blocks_create(N, 4, true);
    int32_t refs[N] = {0};
    bool seen[N] = {false};
    for (int k = 0; k < N; k++) {
        int32_t id = px_blocks_alloc(b);
        ck_assert_msg(id >= 0 && id < N && !seen[id], "alloc %d returned %d", k, id);
        seen[id] = true;
        refs[id] = 1;
        ck_assert_int_eq(px_blocks_refcount(b, id), 1);
        AGREE(b, refs, N - 1 - k, k + 1, 0);
    }
    /* Nothing free or cached: -1, repeatedly, with no state change. */
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(px_blocks_alloc(b), -1);
        AGREE(b, refs, 0, N, 0);
    }
    /* The one block released is the one the next allocation gets. */
    px_blocks_unref(b, 3);
    refs[3] = 0;
    AGREE(b, refs, 1, N - 1, 0);
    ck_assert_int_eq(px_blocks_alloc(b), 3);
    refs[3] = 1;
    ck_assert_int_eq(px_blocks_alloc(b), -1);
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* FREE -> USED -> (more refs) -> FREE for an unpublished block. */
START_TEST(test_ref_unref_free) {
    px_blocks *b = px_blocks_create(3, 2, true);
    int32_t refs[3] = {0};
    int32_t id = px_blocks_alloc(b);
    ck_assert_int_ge(id, 0);
    refs[id] = 1;
    AGREE(b, refs, 2, 1, 0);
    for (int r = 2; r <= 4; r++) {
        px_blocks_ref(b, id);
        refs[id] = r;
        ck_assert_int_eq(px_blocks_refcount(b, id), r);
        AGREE(b, refs, 2, 1, 0);
    }
    for (int r = 3; r >= 1; r--) {
        px_blocks_unref(b, id);
        refs[id] = r;
        ck_assert_int_eq(px_blocks_refcount(b, id), r);
        AGREE(b, refs, 2, 1, 0);
    }
    px_blocks_unref(b, id);
    refs[id] = 0;
    ck_assert_int_eq(px_blocks_refcount(b, id), 0);
    ck_assert(!px_blocks_is_published(b, id));
    COUNTS(b, 3, 0, 0); /* unpublished: FREE, not CACHED */
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* USED -> CACHED on release of a published block; CACHED -> USED through
 * lookup and through px_blocks_ref; sharing a USED block through lookup. */
START_TEST(test_cached_transitions) {
    px_blocks *b = px_blocks_create(3, 4, true);
    int32_t refs[3] = {0}, t[4];
    fill_tokens(t, 4, 100);
    int32_t id = px_blocks_alloc(b);
    refs[id] = 1;
    ck_assert(!px_blocks_is_published(b, id));
    ck_assert_int_eq(px_blocks_publish(b, id, -1, t, 7), 1);
    ck_assert(px_blocks_is_published(b, id));
    AGREE(b, refs, 2, 1, 0);

    /* A lookup of a USED published block shares it. */
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 7), id);
    refs[id] = 2;
    ck_assert_int_eq(px_blocks_refcount(b, id), 2);
    AGREE(b, refs, 2, 1, 0);
    px_blocks_unref(b, id);
    refs[id] = 1;
    AGREE(b, refs, 2, 1, 0);

    px_blocks_unref(b, id);
    refs[id] = 0;
    ck_assert(px_blocks_is_published(b, id));
    AGREE(b, refs, 2, 0, 1);

    /* CACHED -> USED by lookup. */
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 7), id);
    refs[id] = 1;
    ck_assert_int_eq(px_blocks_refcount(b, id), 1);
    AGREE(b, refs, 2, 1, 0);
    px_blocks_unref(b, id);
    refs[id] = 0;
    AGREE(b, refs, 2, 0, 1);

    /* CACHED -> USED by ref; still published, still findable. */
    px_blocks_ref(b, id);
    refs[id] = 1;
    AGREE(b, refs, 2, 1, 0);
    px_blocks_ref(b, id);
    refs[id] = 2;
    AGREE(b, refs, 2, 1, 0);
    ck_assert(px_blocks_is_published(b, id));
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 7), id);
    refs[id] = 3;
    CHECK_OK(b, refs);
    for (int r = 2; r >= 0; r--) {
        px_blocks_unref(b, id);
        refs[id] = r;
        CHECK_OK(b, refs);
    }
    COUNTS(b, 2, 0, 1);
    px_blocks_destroy(b);
}
END_TEST

/* Free blocks go before cached ones; a referenced cached block is safe. */
START_TEST(test_free_before_cached) {
    px_blocks *b = px_blocks_create(3, 2, true);
    int32_t refs[3] = {0}, t[2] = {1, 2}, u[2] = {3, 4};
    int32_t a = px_blocks_alloc(b), c = px_blocks_alloc(b);
    ck_assert_int_eq(px_blocks_publish(b, a, -1, t, 0), 1);
    ck_assert_int_eq(px_blocks_publish(b, c, -1, u, 0), 1);
    px_blocks_unref(b, a);
    px_blocks_unref(b, c);
    COUNTS(b, 1, 0, 2);
    int32_t x = px_blocks_alloc(b);
    ck_assert(x != a && x != c);
    refs[x] = 1;
    COUNTS(b, 0, 1, 2);
    ck_assert(px_blocks_is_published(b, a) && px_blocks_is_published(b, c));
    CHECK_OK(b, refs);
    /* a is oldest, but referenced again: the allocation must take c. */
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 0), a);
    refs[a] = 1;
    ck_assert_int_eq(px_blocks_alloc(b), c);
    refs[c] = 1;
    ck_assert(!px_blocks_is_published(b, c));
    AGREE(b, refs, 0, 3, 0);
    ck_assert_int_eq(px_blocks_alloc(b), -1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, u, 0), -1);
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* Eviction takes the least recently released cached block; a block taken
 * back (by lookup or ref) and released again moves to the recent end. Each
 * eviction unpublishes, and the key can then be published anew. */
START_TEST(test_lru_order) {
    enum { N = 5, BS = 3 };
    px_blocks *b = px_blocks_create(N, BS, true);
    int32_t refs[N] = {0}, tok[N][BS], id[N];
    for (int i = 0; i < N; i++) {
        fill_tokens(tok[i], BS, 10 * i);
        id[i] = px_blocks_alloc(b);
        refs[id[i]] = 1;
        ck_assert_int_eq(px_blocks_publish(b, id[i], -1, tok[i], 0), 1);
    }
    /* Release in the order 2, 0, 4, 3, 1: the LRU order. */
    static const int order[N] = {2, 0, 4, 3, 1};
    for (int k = 0; k < N; k++) {
        px_blocks_unref(b, id[order[k]]);
        refs[id[order[k]]] = 0;
        AGREE(b, refs, 0, N - 1 - k, k + 1);
    }
    /* 0 taken back by lookup and released: 2 4 3 1 0. */
    ck_assert_int_eq(px_blocks_lookup(b, -1, tok[0], 0), id[0]);
    COUNTS(b, 0, 1, N - 1);
    px_blocks_unref(b, id[0]);
    /* 4 taken back by ref and released: 2 3 1 0 4. */
    px_blocks_ref(b, id[4]);
    COUNTS(b, 0, 1, N - 1);
    px_blocks_unref(b, id[4]);
    CHECK_OK(b, refs);
    static const int evict[N] = {2, 3, 1, 0, 4};
    for (int k = 0; k < N; k++) {
        int32_t got = px_blocks_alloc(b);
        ck_assert_msg(got == id[evict[k]], "eviction %d took block %d, want %d", k, got,
                      id[evict[k]]);
        refs[got] = 1;
        ck_assert(!px_blocks_is_published(b, got));
        AGREE(b, refs, 0, k + 1, N - 1 - k);
        /* The evicted key misses; those still cached stay published. */
        ck_assert_int_eq(px_blocks_lookup(b, -1, tok[evict[k]], 0), -1);
        for (int j = k + 1; j < N; j++)
            ck_assert(px_blocks_is_published(b, id[evict[j]]));
    }
    ck_assert_int_eq(px_blocks_alloc(b), -1);
    /* The evicted key can be published by another block now. */
    ck_assert_int_eq(px_blocks_publish(b, id[evict[0]], -1, tok[evict[1]], 0), 1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, tok[evict[1]], 0), id[evict[0]]);
    refs[id[evict[0]]] = 2;
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* A child keyed under parent P stops matching once P is evicted and reused,
 * even when P's new content is published under P's old key, so that the
 * chain (P, same tokens) looks exactly like the old one. */
START_TEST(test_generation_evicted_parent) {
    px_blocks *b = px_blocks_create(4, 2, true);
    int32_t refs[4] = {0}, ta[2] = {5, 6}, tb[2] = {7, 8};
    int32_t p = px_blocks_alloc(b), c = px_blocks_alloc(b);
    ck_assert_int_eq(px_blocks_publish(b, p, -1, ta, 0), 1);
    ck_assert_int_eq(px_blocks_publish(b, c, p, tb, 0), 1);
    /* The chain is reachable while P is alive, cached or not. */
    px_blocks_unref(b, p);
    px_blocks_unref(b, c);
    ck_assert_int_eq(px_blocks_lookup(b, -1, ta, 0), p);
    ck_assert_int_eq(px_blocks_lookup(b, p, tb, 0), c);
    px_blocks_unref(b, p); /* P is now older than C in the LRU */
    px_blocks_unref(b, c);
    int32_t f1 = px_blocks_alloc(b), f2 = px_blocks_alloc(b);
    refs[f1] = refs[f2] = 1;
    COUNTS(b, 0, 2, 2);
    /* Evicts P; P gets the same first-block content again. */
    ck_assert_int_eq(px_blocks_alloc(b), p);
    refs[p] = 1;
    ck_assert_int_eq(px_blocks_lookup(b, -1, ta, 0), -1);
    ck_assert_int_eq(px_blocks_publish(b, p, -1, ta, 0), 1);
    ck_assert_int_eq(px_blocks_lookup(b, p, tb, 0), -1);
    AGREE(b, refs, 0, 3, 1);
    /* A new child under the new P is not a duplicate of the stale C. */
    px_blocks_unref(b, f1);
    refs[f1] = 0;
    int32_t d = px_blocks_alloc(b);
    ck_assert_int_eq(d, f1);
    refs[d] = 1;
    ck_assert_int_eq(px_blocks_publish(b, d, p, tb, 0), 1);
    ck_assert_int_eq(px_blocks_lookup(b, p, tb, 0), d);
    refs[d] = 2;
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* Same for a parent that was never published: it goes FREE on release and
 * its reuse from the free list must also retire its children's keys. */
START_TEST(test_generation_free_parent) {
    px_blocks *b = px_blocks_create(2, 2, true);
    int32_t refs[2] = {0}, tb[2] = {7, 8};
    int32_t p = px_blocks_alloc(b), c = px_blocks_alloc(b);
    ck_assert_int_eq(px_blocks_publish(b, c, p, tb, 3), 1);
    ck_assert_int_eq(px_blocks_lookup(b, p, tb, 3), c);
    px_blocks_unref(b, c);
    px_blocks_unref(b, c);
    px_blocks_unref(b, p);
    COUNTS(b, 1, 0, 1);
    ck_assert_int_eq(px_blocks_alloc(b), p); /* free before cached */
    refs[p] = 1;
    COUNTS(b, 0, 1, 1);
    ck_assert_int_eq(px_blocks_lookup(b, p, tb, 3), -1);
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* Lookups compare the whole key: one differing token, extra or parent misses. */
START_TEST(test_full_key_compare) {
    enum { BS = 5 };
    px_blocks *b = px_blocks_create(8, BS, true);
    int32_t refs[8] = {0}, t0[BS], t[BS];
    fill_tokens(t0, BS, 40);
    int32_t p = px_blocks_alloc(b), q = px_blocks_alloc(b), c = px_blocks_alloc(b);
    refs[p] = refs[q] = refs[c] = 1;
    const uint64_t extra = 0x8000000000000001ull;
    ck_assert_int_eq(px_blocks_publish(b, c, p, t0, extra), 1);
    for (int i = 0; i < BS; i++) {
        static const int32_t deltas[] = {1, -1, 1 << 16, INT32_MIN};
        for (size_t d = 0; d < PX_ARRAY_LEN(deltas); d++) {
            memcpy(t, t0, sizeof t);
            t[i] = (int32_t)((uint32_t)t[i] + (uint32_t)deltas[d]);
            ck_assert_msg(px_blocks_lookup(b, p, t, extra) == -1, "token %d delta %d matched", i,
                          deltas[d]);
        }
    }
    static const uint64_t extras[] = {0, 1, extra ^ 1, extra ^ (1ull << 63), UINT64_MAX};
    for (size_t e = 0; e < PX_ARRAY_LEN(extras); e++)
        ck_assert_int_eq(px_blocks_lookup(b, p, t0, extras[e]), -1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, t0, extra), -1);
    ck_assert_int_eq(px_blocks_lookup(b, q, t0, extra), -1);
    ck_assert_int_eq(px_blocks_lookup(b, c, t0, extra), -1);
    /* Every miss above took no reference. */
    CHECK_OK(b, refs);
    COUNTS(b, 5, 3, 0);
    ck_assert_int_eq(px_blocks_lookup(b, p, t0, extra), c);
    refs[c] = 2;
    CHECK_OK(b, refs);
    /* Out-of-range parents find nothing and publish nothing. */
    ck_assert_int_eq(px_blocks_lookup(b, -2, t0, extra), -1);
    ck_assert_int_eq(px_blocks_lookup(b, 8, t0, extra), -1);
    ck_assert_int_eq(px_blocks_publish(b, q, 8, t0, 0), 0);
    ck_assert(!px_blocks_is_published(b, q));
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* With one block the index has very few buckets, so most of 256 near-miss
 * keys land in the published block's bucket: each must still miss. With two
 * blocks, many trials put both in one bucket chain; evicting either (head or
 * inner link) must leave the other findable. */
START_TEST(test_bucket_sharing) {
    px_blocks *b = px_blocks_create(1, 2, true);
    int32_t t[2] = {1, 2}, refs1[1] = {1};
    int32_t id = px_blocks_alloc(b);
    ck_assert_int_eq(px_blocks_publish(b, id, -1, t, 0), 1);
    for (int32_t k = 0; k < 256; k++) {
        int32_t u[2] = {1, 3 + k};
        ck_assert_int_eq(px_blocks_lookup(b, -1, u, 0), -1);
        ck_assert_int_eq(px_blocks_lookup(b, -1, t, (uint64_t)k + 1), -1);
    }
    CHECK_OK(b, refs1);
    px_blocks_destroy(b);

    b = px_blocks_create(2, 2, true);
    for (int32_t trial = 0; trial < 64; trial++) {
        int32_t ta[2] = {trial, 0}, tb[2] = {trial, 1}, refs[2] = {0};
        int32_t x = px_blocks_alloc(b), y = px_blocks_alloc(b);
        ck_assert_int_eq(px_blocks_publish(b, x, -1, ta, 9), 1);
        ck_assert_int_eq(px_blocks_publish(b, y, -1, tb, 9), 1);
        /* Alternate which of the two is evicted first. */
        int32_t first = trial & 1 ? x : y, second = trial & 1 ? y : x;
        px_blocks_unref(b, first);
        px_blocks_unref(b, second);
        CHECK_OK(b, refs);
        ck_assert_int_eq(px_blocks_alloc(b), first);
        refs[first] = 1;
        CHECK_OK(b, refs);
        const int32_t *ts = second == x ? ta : tb, *tf = first == x ? ta : tb;
        ck_assert_int_eq(px_blocks_lookup(b, -1, tf, 9), -1);
        ck_assert_int_eq(px_blocks_lookup(b, -1, ts, 9), second);
        refs[second] = 1;
        CHECK_OK(b, refs);
        px_blocks_unref(b, first);
        px_blocks_unref(b, second);
        /* Leave both unpublished for the next trial. */
        px_blocks_clear_cache(b);
        COUNTS(b, 2, 0, 0);
        ck_assert_int_eq(px_blocks_lookup(b, -1, ts, 9), -1);
    }
    px_blocks_destroy(b);
}
END_TEST

/* White box: a copy of blocks.c's key hash, used to craft two different keys
 * with the same full 64-bit hash (the final extra word is solvable). If the
 * module's hash changes, this test still passes but no longer collides:
 * update the copy then. */
static uint64_t wb_mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    return h;
}
/* The hash state before the extra word is mixed in. */
static uint64_t wb_prefix(int32_t parent, uint32_t pgen, const int32_t *tok, int bs) {
    uint64_t h = wb_mix(0x5EED, (uint64_t)(uint32_t)parent | (uint64_t)pgen << 32);
    for (int i = 0; i < bs; i++)
        h = wb_mix(h, (uint64_t)(uint32_t)tok[i]);
    return h;
}

START_TEST(test_full_hash_collision) {
    px_blocks *b = px_blocks_create(3, 2, true);
    int32_t ta[2] = {11, 12}, tb[2] = {11, 13}, refs[3] = {0};
    /* Parent -1 has generation 0 in the key. */
    uint64_t ha = wb_prefix(-1, 0, ta, 2), hb = wb_prefix(-1, 0, tb, 2);
    const uint64_t k = 0x9E3779B97F4A7C15ull;
    uint64_t ea = 42;
    uint64_t eb = (ha ^ (ea + k + (ha << 6) + (ha >> 2)) ^ hb) - (k + (hb << 6) + (hb >> 2));
    ck_assert_uint_eq(wb_mix(ha, ea), wb_mix(hb, eb)); /* the copy is self-consistent */

    int32_t x = px_blocks_alloc(b), y = px_blocks_alloc(b);
    refs[x] = refs[y] = 1;
    ck_assert_int_eq(px_blocks_publish(b, x, -1, ta, ea), 1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, tb, eb), -1);
    ck_assert_int_eq(px_blocks_publish(b, y, -1, tb, eb), 1); /* not a duplicate */
    ck_assert_int_eq(px_blocks_lookup(b, -1, ta, ea), x);
    ck_assert_int_eq(px_blocks_lookup(b, -1, tb, eb), y);
    refs[x] = refs[y] = 2;
    CHECK_OK(b, refs);
    /* Same tokens, the other extra: also a different key. */
    ck_assert_int_eq(px_blocks_lookup(b, -1, ta, eb), -1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, tb, ea), -1);
    /* Evicting one leaves the other findable. */
    for (int r = 0; r < 2; r++) {
        px_blocks_unref(b, x);
        px_blocks_unref(b, y);
    }
    refs[x] = refs[y] = 0;
    CHECK_OK(b, refs);
    int32_t f = px_blocks_alloc(b);
    ck_assert(f != x && f != y);
    ck_assert_int_eq(px_blocks_alloc(b), x);
    ck_assert_int_eq(px_blocks_lookup(b, -1, ta, ea), -1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, tb, eb), y);
    refs[f] = refs[x] = refs[y] = 1;
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

/* Publishing a key another block already has changes nothing and returns 0;
 * the would-be duplicate then goes FREE on release, not CACHED. */
START_TEST(test_publish_duplicate) {
    px_blocks *b = px_blocks_create(4, 3, true);
    int32_t refs[4] = {0}, t[3] = {1, 1, 1};
    int32_t a = px_blocks_alloc(b), d = px_blocks_alloc(b);
    refs[a] = refs[d] = 1;
    ck_assert_int_eq(px_blocks_publish(b, a, -1, t, 0), 1);
    ck_assert_int_eq(px_blocks_publish(b, d, -1, t, 0), 0);
    ck_assert(!px_blocks_is_published(b, d));
    CHECK_OK(b, refs);
    /* Re-publishing the owner under its own key is a no-op as well. */
    ck_assert_int_eq(px_blocks_publish(b, a, -1, t, 0), 0);
    ck_assert(px_blocks_is_published(b, a));
    CHECK_OK(b, refs);
    px_blocks_unref(b, a);
    refs[a] = 0;
    COUNTS(b, 2, 1, 1);
    /* The owner is cached, not referenced: still a duplicate. */
    ck_assert_int_eq(px_blocks_publish(b, d, -1, t, 0), 0);
    px_blocks_unref(b, d);
    refs[d] = 0;
    AGREE(b, refs, 3, 0, 1);
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 0), a);
    refs[a] = 1;
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

START_TEST(test_no_prefix_cache) {
    px_blocks *b = px_blocks_create(2, 2, false);
    int32_t refs[2] = {0}, t[2] = {3, 4};
    int32_t a = px_blocks_alloc(b), c = px_blocks_alloc(b);
    refs[a] = refs[c] = 1;
    ck_assert_int_eq(px_blocks_publish(b, a, -1, t, 0), 0);
    ck_assert_int_eq(px_blocks_publish(b, c, a, t, 0), 0);
    ck_assert(!px_blocks_is_published(b, a) && !px_blocks_is_published(b, c));
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 0), -1);
    ck_assert_int_eq(px_blocks_lookup(b, a, t, 0), -1);
    CHECK_OK(b, refs);
    px_blocks_unref(b, a);
    px_blocks_unref(b, c);
    refs[a] = refs[c] = 0;
    COUNTS(b, 2, 0, 0);
    ck_assert_int_eq(px_blocks_lookup(b, -1, t, 0), -1);
    CHECK_OK(b, refs);
    px_blocks_destroy(b);
}
END_TEST

START_TEST(test_clear_cache) {
    enum { N = 6 };
    px_blocks *b = px_blocks_create(N, 2, true);
    int32_t refs[N] = {0}, tok[N][2], id[N];
    px_blocks_clear_cache(b); /* empty: nothing to do */
    COUNTS(b, N, 0, 0);
    for (int i = 0; i < 4; i++) {
        fill_tokens(tok[i], 2, 2 * i);
        id[i] = px_blocks_alloc(b);
        refs[id[i]] = 1;
        ck_assert_int_eq(px_blocks_publish(b, id[i], i ? id[i - 1] : -1, tok[i], 0), 1);
    }
    /* 0..2 cached, 3 still used. */
    for (int i = 0; i < 3; i++) {
        px_blocks_unref(b, id[i]);
        refs[id[i]] = 0;
    }
    COUNTS(b, 2, 1, 3);
    px_blocks_clear_cache(b);
    AGREE(b, refs, 5, 1, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(!px_blocks_is_published(b, id[i]));
        ck_assert_int_eq(px_blocks_lookup(b, i ? id[i - 1] : -1, tok[i], 0), -1);
    }
    ck_assert_int_eq(px_blocks_refcount(b, id[3]), 1);
    CHECK_OK(b, refs);
    /* Freed blocks are allocatable at once; nothing is evicted any more. */
    for (int k = 0; k < 5; k++)
        ck_assert_int_ge(px_blocks_alloc(b), 0);
    ck_assert_int_eq(px_blocks_alloc(b), -1);
    COUNTS(b, 0, N, 0);
    px_blocks_destroy(b);
}
END_TEST

/* px_blocks_check rejects wrong expected ref counts, block by block. */
START_TEST(test_check_catches) {
    enum { N = 4 };
    px_blocks *b = px_blocks_create(N, 2, true);
    int32_t refs[N] = {0}, t[2] = {0, 0};
    int32_t a = px_blocks_alloc(b), c = px_blocks_alloc(b), d = px_blocks_alloc(b);
    px_blocks_ref(b, a);
    refs[a] = 2;
    refs[c] = 1;
    ck_assert_int_eq(px_blocks_publish(b, d, -1, t, 0), 1);
    px_blocks_unref(b, d); /* cached, ref 0 */
    CHECK_OK(b, refs);
    CHECK_OK(b, NULL);
    for (int i = 0; i < N; i++) {
        static const int32_t deltas[] = {1, -1, 100};
        for (size_t k = 0; k < PX_ARRAY_LEN(deltas); k++) {
            int32_t bad[N];
            memcpy(bad, refs, sizeof bad);
            bad[i] += deltas[k];
            char err[256] = "";
            ck_assert_int_eq(px_blocks_check(b, bad, err, sizeof err), -1);
            ck_assert_msg(err[0] != '\0', "no message for block %d", i);
            ck_assert_int_eq(px_blocks_check(b, bad, NULL, 0), -1);
        }
    }
    px_blocks_destroy(b);
}
END_TEST

/* ---- randomized test against a reference model ---- */

/* ck_assert records a mark point on every success, which would dominate the
 * run time here; this checks the same and only calls into Check on failure. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

enum { M_MAXN = 16, M_MAXBS = 4 };
enum { M_FREE, M_USED, M_CACHED };

/* The reference: each block's state, refs, published key and generation;
 * LRU order by the stamp of the release that cached it. */
typedef struct {
    int n, bs;
    bool pc;
    int state[M_MAXN];
    int32_t ref[M_MAXN];
    bool pub[M_MAXN];
    uint32_t gen[M_MAXN];
    int32_t kparent[M_MAXN];
    uint32_t kpgen[M_MAXN];
    uint64_t kextra[M_MAXN];
    int32_t ktok[M_MAXN][M_MAXBS];
    uint64_t stamp[M_MAXN], clock;
} model;

/* Coverage of the random run, to assert it reached the interesting cases. */
typedef struct {
    long hits, misses, stale, evictions, dup_publishes, publishes, exhausted;
} mstats;

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static int rng_below(uint64_t *s, int n) {
    return (int)(rng_next(s) >> 33) % n;
}

static uint32_t m_pgen(const model *m, int32_t parent) {
    return parent >= 0 ? m->gen[parent] : 0;
}

/* The published block with this key, by linear search (at most one). */
static int32_t m_find(const model *m, int32_t parent, const int32_t *tok, uint64_t extra,
                      mstats *st) {
    int32_t found = -1;
    for (int32_t i = 0; i < m->n; i++) {
        if (!m->pub[i] || m->kparent[i] != parent || m->kextra[i] != extra ||
            memcmp(m->ktok[i], tok, sizeof(int32_t) * (size_t)m->bs) != 0)
            continue;
        if (m->kpgen[i] != m_pgen(m, parent)) {
            if (st) st->stale++; /* same parent id and content, retired generation */
            continue;
        }
        REQUIRE(found < 0, "model: key published twice (%d, %d)", found, i);
        found = i;
    }
    return found;
}

static void m_ref(model *m, int32_t id) {
    REQUIRE(m->state[id] != M_FREE, "model: ref of free block %d", id);
    m->state[id] = M_USED;
    m->ref[id]++;
}

static void m_unref(model *m, int32_t id) {
    REQUIRE(m->state[id] == M_USED && m->ref[id] > 0, "model: unref of block %d", id);
    if (--m->ref[id] > 0) return;
    if (m->pub[id]) {
        m->state[id] = M_CACHED;
        m->stamp[id] = ++m->clock;
    } else {
        m->state[id] = M_FREE;
    }
}

static int m_count(const model *m, int state) {
    int k = 0;
    for (int i = 0; i < m->n; i++)
        k += m->state[i] == state;
    return k;
}

/* A random block in `state`, or -1. */
static int32_t m_pick(const model *m, int state, uint64_t *rng) {
    int k = m_count(m, state);
    if (k == 0) return -1;
    int j = rng_below(rng, k);
    for (int32_t i = 0; i < m->n; i++)
        if (m->state[i] == state && j-- == 0) return i;
    return -1;
}

/* The implementation agrees with the model after an operation. */
static void m_agree(const px_blocks *b, const model *m, long step) {
    int nf = m_count(m, M_FREE), nu = m_count(m, M_USED), nc = m_count(m, M_CACHED);
    REQUIRE(px_blocks_n_free(b) == nf && px_blocks_n_used(b) == nu && px_blocks_n_cached(b) == nc &&
                px_blocks_available(b) == nf + nc,
            "step %ld: free/used/cached %d/%d/%d, model %d/%d/%d", step, px_blocks_n_free(b),
            px_blocks_n_used(b), px_blocks_n_cached(b), nf, nu, nc);
    char err[256] = "";
    REQUIRE(px_blocks_check(b, m->ref, err, sizeof err) == 0, "step %ld: %s", step, err);
    for (int32_t i = 0; i < m->n; i++)
        REQUIRE(px_blocks_is_published(b, i) == m->pub[i], "step %ld: block %d published %d", step,
                i, m->pub[i]);
}

static void random_tokens(int32_t *tok, int bs, int alphabet, uint64_t *rng) {
    for (int i = 0; i < bs; i++)
        tok[i] = rng_below(rng, alphabet);
}

static void run_model(int n, int bs, bool pc, int alphabet, uint64_t seed, long steps, mstats *st) {
    px_blocks *b = px_blocks_create(n, bs, pc);
    ck_assert_ptr_nonnull(b);
    model m;
    memset(&m, 0, sizeof m);
    m.n = n;
    m.bs = bs;
    m.pc = pc;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (long step = 0; step < steps; step++) {
        int op = rng_below(&rng, 200);
        int32_t tok[M_MAXBS];
        if (op < 45) { /* alloc */
            int32_t got = px_blocks_alloc(b);
            int32_t lru = -1;
            for (int32_t i = 0; i < n; i++)
                if (m.state[i] == M_CACHED && (lru < 0 || m.stamp[i] < m.stamp[lru])) lru = i;
            if (m_count(&m, M_FREE) > 0) {
                REQUIRE(got >= 0 && got < n && m.state[got] == M_FREE,
                        "step %ld: alloc took %d, not a free block", step, got);
            } else if (lru >= 0) {
                REQUIRE(got == lru, "step %ld: alloc took %d, LRU is %d", step, got, lru);
                m.pub[got] = false;
                st->evictions++;
            } else {
                REQUIRE(got == -1, "step %ld: alloc took %d with none available", step, got);
                st->exhausted++;
            }
            if (got >= 0) {
                m.gen[got]++;
                m.state[got] = M_USED;
                m.ref[got] = 1;
            }
        } else if (op < 105) { /* unref */
            int32_t id = m_pick(&m, M_USED, &rng);
            if (id >= 0) {
                px_blocks_unref(b, id);
                m_unref(&m, id);
            }
        } else if (op < 120) { /* ref, of a USED or CACHED block */
            int32_t id = m_pick(&m, rng_below(&rng, 2) ? M_USED : M_CACHED, &rng);
            if (id >= 0 && m.ref[id] < 6) {
                px_blocks_ref(b, id);
                m_ref(&m, id);
            }
        } else if (op < 160) { /* publish an unpublished USED block */
            int32_t id = m_pick(&m, M_USED, &rng);
            if (id >= 0 && !m.pub[id]) {
                int32_t parent = rng_below(&rng, 3) == 0 ? -1 : rng_below(&rng, n);
                uint64_t extra = (uint64_t)rng_below(&rng, 2);
                random_tokens(tok, bs, alphabet, &rng);
                int want = pc && m_find(&m, parent, tok, extra, NULL) < 0;
                int got = px_blocks_publish(b, id, parent, tok, extra);
                REQUIRE(got == want, "step %ld: publish %d returned %d, want %d", step, id, got,
                        want);
                if (want) {
                    m.pub[id] = true;
                    m.kparent[id] = parent;
                    m.kpgen[id] = m_pgen(&m, parent);
                    m.kextra[id] = extra;
                    memcpy(m.ktok[id], tok, sizeof(int32_t) * (size_t)bs);
                    st->publishes++;
                } else if (pc) {
                    st->dup_publishes++;
                }
            }
        } else if (op < 199) { /* lookup: a random key, or a published one */
            int32_t parent, src = rng_below(&rng, 2) ? rng_below(&rng, n) : -1;
            uint64_t extra;
            if (src >= 0 && m.pub[src]) {
                parent = m.kparent[src];
                extra = m.kextra[src];
                memcpy(tok, m.ktok[src], sizeof(int32_t) * (size_t)bs);
            } else {
                parent = rng_below(&rng, 3) == 0 ? -1 : rng_below(&rng, n);
                extra = (uint64_t)rng_below(&rng, 2);
                random_tokens(tok, bs, alphabet, &rng);
            }
            int32_t want = pc ? m_find(&m, parent, tok, extra, st) : -1;
            int32_t got = px_blocks_lookup(b, parent, tok, extra);
            REQUIRE(got == want, "step %ld: lookup returned %d, want %d", step, got, want);
            if (want >= 0) {
                m_ref(&m, want);
                st->hits++;
            } else {
                st->misses++;
            }
        } else { /* clear the cache */
            px_blocks_clear_cache(b);
            for (int32_t i = 0; i < n; i++)
                if (m.state[i] == M_CACHED) {
                    m.state[i] = M_FREE;
                    m.pub[i] = false;
                }
        }
        m_agree(b, &m, step);
    }
    /* Drain: release everything; with the cache cleared all blocks are free. */
    for (int32_t i = 0; i < n; i++)
        while (m.ref[i] > 0) {
            px_blocks_unref(b, i);
            m_unref(&m, i);
        }
    m_agree(b, &m, steps);
    px_blocks_clear_cache(b);
    ck_assert_int_eq(px_blocks_n_free(b), n);
    px_blocks_destroy(b);
}

/* Linked keys: found by (owner, owner generation, tokens, extra) and
 * nothing else, find takes no reference, a published linked block behaves
 * like any other (cached when unreferenced, unpublished when evicted), and
 * the generation of a block changes when it is reused. */
START_TEST(test_linked_keys) {
    px_blocks *g = px_blocks_create(4, 4, true), *l = px_blocks_create(2, 4, true);
    int32_t tok[4], other[4];
    fill_tokens(tok, 4, 10);
    fill_tokens(other, 4, 20);
    int32_t gb = px_blocks_alloc(g);
    uint32_t gen = px_blocks_gen(g, gb);
    int32_t lb = px_blocks_alloc(l);
    ck_assert_int_eq(px_blocks_publish_linked(l, lb, gb, gen, tok, 7), 1);
    ck_assert_int_eq(px_blocks_publish_linked(l, lb, gb, gen, tok, 7), 0); /* already */
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen, tok, 7), lb);
    ck_assert_int_eq(px_blocks_refcount(l, lb), 1); /* no reference taken */
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen + 1, tok, 7), -1);
    ck_assert_int_eq(px_blocks_find_linked(l, gb + 1, gen, tok, 7), -1);
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen, other, 7), -1);
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen, tok, 8), -1);
    ck_assert_int_eq(px_blocks_find_linked(l, -1, 0, tok, 7), -1);
    /* A second block under the same key is refused. */
    int32_t lb2 = px_blocks_alloc(l);
    ck_assert_int_eq(px_blocks_publish_linked(l, lb2, gb, gen, tok, 7), 0);
    px_blocks_unref(l, lb2);
    /* Unreferenced: cached, still found; evicted by the next alloc once
     * the free block is gone. */
    px_blocks_unref(l, lb);
    AGREE(l, NULL, 1, 0, 1);
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen, tok, 7), lb);
    int32_t x = px_blocks_alloc(l), y = px_blocks_alloc(l);
    ck_assert(x != y && (x == lb || y == lb));
    AGREE(l, NULL, 0, 2, 0);
    ck_assert_int_eq(px_blocks_find_linked(l, gb, gen, tok, 7), -1);
    /* The owner's generation moves when it is reused. */
    px_blocks_unref(g, gb);
    ck_assert_int_eq(px_blocks_alloc(g), gb);
    ck_assert_uint_ne(px_blocks_gen(g, gb), gen);
    /* Own-pool lookups without a reference. */
    ck_assert_int_eq(px_blocks_publish(g, gb, -1, tok, 0), 1);
    ck_assert_int_eq(px_blocks_find(g, -1, tok, 0), gb);
    ck_assert_int_eq(px_blocks_refcount(g, gb), 1);
    ck_assert_int_eq(px_blocks_find(g, -1, other, 0), -1);
    CHECK_OK(g, NULL);
    px_blocks_destroy(g);
    px_blocks_destroy(l);
}
END_TEST

START_TEST(test_model_random) {
    static const struct {
        int n, bs, alphabet;
        bool pc;
    } cfg[] = {
        {1, 1, 2, true},  {2, 2, 2, true},  {3, 1, 3, true},  {5, 2, 2, true},   {8, 3, 2, true},
        {16, 4, 2, true}, {16, 1, 4, true}, {4, 2, 2, false}, {16, 2, 2, false},
    };
    mstats st;
    memset(&st, 0, sizeof st);
    for (size_t c = 0; c < PX_ARRAY_LEN(cfg); c++)
        for (uint64_t seed = 1; seed <= 5; seed++)
            run_model(cfg[c].n, cfg[c].bs, cfg[c].pc, cfg[c].alphabet, seed + 10 * c, 5000, &st);
    /* The run reached every case it is meant to compare. */
    REQUIRE(st.hits > 1000 && st.misses > 1000 && st.stale > 50 && st.evictions > 500 &&
                st.dup_publishes > 100 && st.publishes > 1000 && st.exhausted > 100,
            "coverage: hits %ld misses %ld stale %ld evictions %ld dup %ld publishes %ld "
            "exhausted %ld",
            st.hits, st.misses, st.stale, st.evictions, st.dup_publishes, st.publishes,
            st.exhausted);
}
END_TEST

Suite *px_suite_blocks(void) {
    Suite *s = suite_create("blocks");
    TCase *tc = tcase_create("blocks");
    tcase_add_test(tc, test_create_args);
    tcase_add_test(tc, test_alloc_exhaust);
    tcase_add_test(tc, test_ref_unref_free);
    tcase_add_test(tc, test_cached_transitions);
    tcase_add_test(tc, test_free_before_cached);
    tcase_add_test(tc, test_lru_order);
    tcase_add_test(tc, test_generation_evicted_parent);
    tcase_add_test(tc, test_generation_free_parent);
    tcase_add_test(tc, test_full_key_compare);
    tcase_add_test(tc, test_bucket_sharing);
    tcase_add_test(tc, test_full_hash_collision);
    tcase_add_test(tc, test_publish_duplicate);
    tcase_add_test(tc, test_no_prefix_cache);
    tcase_add_test(tc, test_clear_cache);
    tcase_add_test(tc, test_check_catches);
    tcase_add_test(tc, test_linked_keys);
    tcase_add_test(tc, test_model_random);
    suite_add_tcase(s, tc);
    return s;
}
