/* blocks.h — the logical side of the paged KV cache: which physical block
 * belongs to whom, and which full blocks can be reused by a later request.
 *
 * Every block is in exactly one state:
 *   FREE    on the free list, content meaningless;
 *   USED    referenced by one or more sequences (ref > 0);
 *   CACHED  unreferenced but published in the prefix cache, kept in LRU
 *           order and evicted (oldest first) when a free block is needed.
 * A full block can be published under its key: (parent block, parent's
 * generation, its block_size tokens, an extra 64-bit content hash for
 * non-token inputs such as images). The parent is the block before it in the
 * sequence (-1 for the first), so a key names the whole prefix exactly, with
 * no hash-collision risk: the hash only picks the bucket, and lookups compare
 * the full key. A block's generation increases every time it is reused for
 * new content, so keys naming an evicted parent no longer match.
 * A model with sliding-window layers has two pools, each its own px_blocks
 * (scheduler/sched.h): the global layers' and the local layers'. A local
 * block is published under a linked key that names, instead of a parent of
 * its own pool, the global block holding the same positions (its id and
 * generation): that global block's key already names the whole prefix, and
 * local blocks of a prefix stay findable after the local blocks before them
 * were dropped (slid out of the window) or evicted.
 * Owns: the per-block arrays and the hash index. Threads: the scheduler
 * thread only. Allocates nothing after create. */
#ifndef PX_BLOCKS_H
#define PX_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_blocks px_blocks;

/* n_blocks blocks of block_size tokens; prefix_cache false disables
 * publishing (lookups always miss). NULL on bad arguments or no memory. */
px_blocks *px_blocks_create(int32_t n_blocks, int block_size, bool prefix_cache);
void px_blocks_destroy(px_blocks *b);

int32_t px_blocks_total(const px_blocks *b);
/* Blocks an allocation could get now: free + cached. */
int32_t px_blocks_available(const px_blocks *b);
int32_t px_blocks_n_free(const px_blocks *b);
int32_t px_blocks_n_cached(const px_blocks *b);
int32_t px_blocks_n_used(const px_blocks *b);

/* Takes a block with ref 1: a free one, else the least recently used cached
 * one. Returns -1 if none is available. */
int32_t px_blocks_alloc(px_blocks *b);
/* Adds a reference (a USED or CACHED block; a CACHED block becomes USED). */
void px_blocks_ref(px_blocks *b, int32_t id);
/* Drops a reference; at 0 a published block becomes CACHED (most recently
 * used end of the LRU), an unpublished one FREE. */
void px_blocks_unref(px_blocks *b, int32_t id);
int32_t px_blocks_refcount(const px_blocks *b, int32_t id);

/* Finds the published block with this key and takes a reference on it, or
 * returns -1. parent = -1 for a sequence's first block. */
int32_t px_blocks_lookup(px_blocks *b, int32_t parent, const int32_t *tokens, uint64_t extra);
/* The same without taking a reference. */
int32_t px_blocks_find(const px_blocks *b, int32_t parent, const int32_t *tokens, uint64_t extra);
/* The generation of block id (changes whenever it is reused). */
uint32_t px_blocks_gen(const px_blocks *b, int32_t id);
/* Linked keys (see above): owner is a block id of another pool (>= 0) and
 * owner_gen its generation there. Find takes no reference; publish is as
 * px_blocks_publish. */
int32_t px_blocks_find_linked(const px_blocks *b, int32_t owner, uint32_t owner_gen,
                              const int32_t *tokens, uint64_t extra);
int px_blocks_publish_linked(px_blocks *b, int32_t id, int32_t owner, uint32_t owner_gen,
                             const int32_t *tokens, uint64_t extra);
/* Publishes a full, USED block under its key. If another block already has
 * the key, nothing changes (returns 0); returns 1 when published. */
int px_blocks_publish(px_blocks *b, int32_t id, int32_t parent, const int32_t *tokens,
                      uint64_t extra);
bool px_blocks_is_published(const px_blocks *b, int32_t id);

/* Unpublishes every cached block and frees it (prefix cache reset). */
void px_blocks_clear_cache(px_blocks *b);

/* Verifies the invariants (state counts, list links, ref counts against
 * `expected_refs` if not NULL, index consistency). Returns 0 or -1 with a
 * message. For tests and debug builds. */
int px_blocks_check(const px_blocks *b, const int32_t *expected_refs, char *err, size_t errlen);

#endif
