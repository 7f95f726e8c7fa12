/* blocks.c — logical KV blocks: free list, reference counts, and the prefix
 * cache (an exact-key hash index plus an LRU list of unreferenced blocks). */
#include "blocks.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px.h"

enum { ST_FREE = 0, ST_USED = 1, ST_CACHED = 2 };

struct px_blocks {
    int32_t n;
    int bs;
    bool prefix_cache;
    int32_t *ref;       /* (n) */
    uint8_t *state;     /* (n) */
    uint8_t *published; /* (n) */
    uint32_t *gen;      /* (n) bumped on every reuse */
    /* published key */
    int32_t *parent;      /* (n) */
    uint32_t *parent_gen; /* (n) */
    uint64_t *extra;      /* (n) */
    uint64_t *hash;       /* (n) */
    int32_t *tokens;      /* (n, bs) */
    int32_t *hnext;       /* (n) bucket chain */
    int32_t *buckets;     /* (n_buckets) */
    uint32_t bucket_mask;
    /* free list: singly linked through `next`; LRU: doubly linked */
    int32_t *next, *prev; /* (n) */
    int32_t free_head;
    int32_t lru_head, lru_tail; /* head = least recently used */
    int32_t n_free, n_cached, n_used;
};

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    return h;
}

static uint64_t key_hash(int32_t parent, uint32_t parent_gen, const int32_t *tokens, int bs,
                         uint64_t extra) {
    uint64_t h = mix(0x5EED, (uint64_t)(uint32_t)parent | (uint64_t)parent_gen << 32);
    for (int i = 0; i < bs; i++)
        h = mix(h, (uint64_t)(uint32_t)tokens[i]);
    return mix(h, extra);
}

px_blocks *px_blocks_create(int32_t n_blocks, int block_size, bool prefix_cache) {
    if (n_blocks <= 0 || n_blocks > (1 << 28) || block_size <= 0 || block_size > 4096) return NULL;
    px_blocks *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->n = n_blocks;
    b->bs = block_size;
    b->prefix_cache = prefix_cache;
    uint32_t nb = 1;
    while (nb < (uint32_t)n_blocks * 2u)
        nb <<= 1;
    b->bucket_mask = nb - 1;
    size_t n = (size_t)n_blocks;
    b->ref = calloc(n, sizeof *b->ref);
    b->state = calloc(n, 1);
    b->published = calloc(n, 1);
    b->gen = calloc(n, sizeof *b->gen);
    b->parent = calloc(n, sizeof *b->parent);
    b->parent_gen = calloc(n, sizeof *b->parent_gen);
    b->extra = calloc(n, sizeof *b->extra);
    b->hash = calloc(n, sizeof *b->hash);
    b->tokens = calloc(n * (size_t)block_size, sizeof *b->tokens);
    b->hnext = calloc(n, sizeof *b->hnext);
    b->buckets = malloc(sizeof *b->buckets * nb);
    b->next = calloc(n, sizeof *b->next);
    b->prev = calloc(n, sizeof *b->prev);
    if (!b->ref || !b->state || !b->published || !b->gen || !b->parent || !b->parent_gen ||
        !b->extra || !b->hash || !b->tokens || !b->hnext || !b->buckets || !b->next || !b->prev) {
        px_blocks_destroy(b);
        return NULL;
    }
    for (uint32_t i = 0; i < nb; i++)
        b->buckets[i] = -1;
    /* Free list in ascending id order. */
    for (int32_t i = 0; i < n_blocks; i++)
        b->next[i] = i + 1 < n_blocks ? i + 1 : -1;
    b->free_head = 0;
    b->lru_head = b->lru_tail = -1;
    b->n_free = n_blocks;
    return b;
}

void px_blocks_destroy(px_blocks *b) {
    if (!b) return;
    free(b->ref);
    free(b->state);
    free(b->published);
    free(b->gen);
    free(b->parent);
    free(b->parent_gen);
    free(b->extra);
    free(b->hash);
    free(b->tokens);
    free(b->hnext);
    free(b->buckets);
    free(b->next);
    free(b->prev);
    free(b);
}

int32_t px_blocks_total(const px_blocks *b) {
    return b->n;
}
int32_t px_blocks_available(const px_blocks *b) {
    return b->n_free + b->n_cached;
}
int32_t px_blocks_n_free(const px_blocks *b) {
    return b->n_free;
}
int32_t px_blocks_n_cached(const px_blocks *b) {
    return b->n_cached;
}
int32_t px_blocks_n_used(const px_blocks *b) {
    return b->n_used;
}
int32_t px_blocks_refcount(const px_blocks *b, int32_t id) {
    return b->ref[id];
}
bool px_blocks_is_published(const px_blocks *b, int32_t id) {
    return b->published[id] != 0;
}

static void lru_remove(px_blocks *b, int32_t id) {
    int32_t p = b->prev[id], n = b->next[id];
    if (p >= 0)
        b->next[p] = n;
    else
        b->lru_head = n;
    if (n >= 0)
        b->prev[n] = p;
    else
        b->lru_tail = p;
    b->prev[id] = b->next[id] = -1;
}

static void lru_push_tail(px_blocks *b, int32_t id) {
    b->prev[id] = b->lru_tail;
    b->next[id] = -1;
    if (b->lru_tail >= 0)
        b->next[b->lru_tail] = id;
    else
        b->lru_head = id;
    b->lru_tail = id;
}

static void unpublish(px_blocks *b, int32_t id) {
    if (!b->published[id]) return;
    int32_t *pp = &b->buckets[b->hash[id] & b->bucket_mask];
    while (*pp != id) {
        assert(*pp >= 0);
        pp = &b->hnext[*pp];
    }
    *pp = b->hnext[id];
    b->hnext[id] = -1;
    b->published[id] = 0;
}

int32_t px_blocks_alloc(px_blocks *b) {
    int32_t id;
    if (b->free_head >= 0) {
        id = b->free_head;
        b->free_head = b->next[id];
        b->n_free--;
    } else if (b->lru_head >= 0) {
        id = b->lru_head;
        lru_remove(b, id);
        unpublish(b, id);
        b->n_cached--;
    } else {
        return -1;
    }
    assert(b->ref[id] == 0);
    b->gen[id]++;
    b->ref[id] = 1;
    b->state[id] = ST_USED;
    b->n_used++;
    b->next[id] = b->prev[id] = -1;
    return id;
}

void px_blocks_ref(px_blocks *b, int32_t id) {
    assert(id >= 0 && id < b->n && b->state[id] != ST_FREE);
    if (b->state[id] == ST_CACHED) {
        lru_remove(b, id);
        b->state[id] = ST_USED;
        b->n_cached--;
        b->n_used++;
    }
    b->ref[id]++;
}

void px_blocks_unref(px_blocks *b, int32_t id) {
    assert(id >= 0 && id < b->n && b->state[id] == ST_USED && b->ref[id] > 0);
    if (--b->ref[id] > 0) return;
    b->n_used--;
    if (b->published[id]) {
        b->state[id] = ST_CACHED;
        lru_push_tail(b, id);
        b->n_cached++;
    } else {
        b->state[id] = ST_FREE;
        b->next[id] = b->free_head;
        b->free_head = id;
        b->n_free++;
    }
}

static int32_t find(const px_blocks *b, uint64_t h, int32_t parent, uint32_t parent_gen,
                    const int32_t *tokens, uint64_t extra) {
    for (int32_t id = b->buckets[h & b->bucket_mask]; id >= 0; id = b->hnext[id]) {
        if (b->hash[id] == h && b->parent[id] == parent && b->parent_gen[id] == parent_gen &&
            b->extra[id] == extra &&
            memcmp(b->tokens + (size_t)id * b->bs, tokens, sizeof(int32_t) * (size_t)b->bs) == 0)
            return id;
    }
    return -1;
}

int32_t px_blocks_find(const px_blocks *b, int32_t parent, const int32_t *tokens, uint64_t extra) {
    if (!b->prefix_cache || parent < -1 || parent >= b->n) return -1;
    uint32_t pg = parent >= 0 ? b->gen[parent] : 0;
    return find(b, key_hash(parent, pg, tokens, b->bs, extra), parent, pg, tokens, extra);
}

int32_t px_blocks_lookup(px_blocks *b, int32_t parent, const int32_t *tokens, uint64_t extra) {
    int32_t id = px_blocks_find(b, parent, tokens, extra);
    if (id >= 0) px_blocks_ref(b, id);
    return id;
}

uint32_t px_blocks_gen(const px_blocks *b, int32_t id) {
    assert(id >= 0 && id < b->n);
    return b->gen[id];
}

int32_t px_blocks_find_linked(const px_blocks *b, int32_t owner, uint32_t owner_gen,
                              const int32_t *tokens, uint64_t extra) {
    if (!b->prefix_cache || owner < 0) return -1;
    return find(b, key_hash(owner, owner_gen, tokens, b->bs, extra), owner, owner_gen, tokens,
                extra);
}

/* Publishes id under the key (parent, pg, tokens, extra) unless it is taken. */
static int publish_key(px_blocks *b, int32_t id, int32_t parent, uint32_t pg, const int32_t *tokens,
                       uint64_t extra) {
    assert(id >= 0 && id < b->n && b->state[id] == ST_USED);
    if (!b->prefix_cache || b->published[id]) return 0;
    uint64_t h = key_hash(parent, pg, tokens, b->bs, extra);
    if (find(b, h, parent, pg, tokens, extra) >= 0) return 0;
    b->parent[id] = parent;
    b->parent_gen[id] = pg;
    b->extra[id] = extra;
    b->hash[id] = h;
    memcpy(b->tokens + (size_t)id * b->bs, tokens, sizeof(int32_t) * (size_t)b->bs);
    int32_t *head = &b->buckets[h & b->bucket_mask];
    b->hnext[id] = *head;
    *head = id;
    b->published[id] = 1;
    return 1;
}

int px_blocks_publish(px_blocks *b, int32_t id, int32_t parent, const int32_t *tokens,
                      uint64_t extra) {
    assert(id >= 0 && id < b->n && b->state[id] == ST_USED);
    if (parent < -1 || parent >= b->n) return 0;
    return publish_key(b, id, parent, parent >= 0 ? b->gen[parent] : 0, tokens, extra);
}

int px_blocks_publish_linked(px_blocks *b, int32_t id, int32_t owner, uint32_t owner_gen,
                             const int32_t *tokens, uint64_t extra) {
    assert(id >= 0 && id < b->n && b->state[id] == ST_USED);
    if (owner < 0) return 0;
    return publish_key(b, id, owner, owner_gen, tokens, extra);
}

void px_blocks_clear_cache(px_blocks *b) {
    while (b->lru_head >= 0) {
        int32_t id = b->lru_head;
        lru_remove(b, id);
        unpublish(b, id);
        b->state[id] = ST_FREE;
        b->n_cached--;
        b->next[id] = b->free_head;
        b->free_head = id;
        b->n_free++;
    }
}

int px_blocks_check(const px_blocks *b, const int32_t *expected_refs, char *err, size_t errlen) {
    int32_t nf = 0, nc = 0, nu = 0;
    for (int32_t i = 0; i < b->n; i++) {
        switch (b->state[i]) {
        case ST_FREE:
            nf++;
            if (b->ref[i] != 0 || b->published[i])
                return px_fail(err, errlen, -1, "free block %d has ref %d / published %d", i,
                               b->ref[i], b->published[i]);
            break;
        case ST_CACHED:
            nc++;
            if (b->ref[i] != 0 || !b->published[i])
                return px_fail(err, errlen, -1, "cached block %d has ref %d / published %d", i,
                               b->ref[i], b->published[i]);
            break;
        case ST_USED:
            nu++;
            if (b->ref[i] <= 0)
                return px_fail(err, errlen, -1, "used block %d has ref %d", i, b->ref[i]);
            break;
        default: return px_fail(err, errlen, -1, "block %d in bad state %d", i, b->state[i]);
        }
        if (expected_refs && expected_refs[i] != b->ref[i])
            return px_fail(err, errlen, -1, "block %d: ref %d, expected %d", i, b->ref[i],
                           expected_refs[i]);
    }
    if (nf != b->n_free || nc != b->n_cached || nu != b->n_used)
        return px_fail(err, errlen, -1, "counts free %d/%d cached %d/%d used %d/%d", nf, b->n_free,
                       nc, b->n_cached, nu, b->n_used);
    int32_t k = 0;
    for (int32_t id = b->free_head; id >= 0 && k <= b->n; id = b->next[id], k++)
        if (b->state[id] != ST_FREE)
            return px_fail(err, errlen, -1, "free list holds block %d in state %d", id,
                           b->state[id]);
    if (k != nf) return px_fail(err, errlen, -1, "free list has %d blocks, expected %d", k, nf);
    k = 0;
    for (int32_t id = b->lru_head, prev = -1; id >= 0 && k <= b->n; prev = id, id = b->next[id]) {
        if (b->state[id] != ST_CACHED || b->prev[id] != prev)
            return px_fail(err, errlen, -1, "LRU list broken at block %d", id);
        k++;
    }
    if (k != nc) return px_fail(err, errlen, -1, "LRU list has %d blocks, expected %d", k, nc);
    int32_t np = 0;
    for (uint32_t h = 0; h <= b->bucket_mask; h++)
        for (int32_t id = b->buckets[h]; id >= 0 && np <= b->n; id = b->hnext[id]) {
            if (!b->published[id] || (b->hash[id] & b->bucket_mask) != h)
                return px_fail(err, errlen, -1, "index holds block %d wrongly", id);
            np++;
        }
    int32_t want_np = 0;
    for (int32_t i = 0; i < b->n; i++)
        want_np += b->published[i] != 0;
    if (np != want_np)
        return px_fail(err, errlen, -1, "index has %d blocks, %d published", np, want_np);
    return 0;
}
