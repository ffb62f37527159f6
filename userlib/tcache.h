/* SPDX-License-Identifier: MIT */
/*
 * tcache.h: the per-thread cache and the inline fast paths of malloc and
 * free built on it: no lock, no syscall, no atomic.
 *
 * Each thread has one struct upa_tcache in static TLS (initial-exec: one
 * %fs-relative access). Bin i holds free chunks of exactly (i + 2) * 16
 * bytes, i.e. requests up to 1032 bytes, as a LIFO list threaded through
 * the chunks' user data. Chunks in the cache still count as "in use" for
 * their arena. A free that finds its bin full goes to the arena instead;
 * at thread exit the whole cache goes back to the arenas (tcache.c).
 *
 * Invariants (checked by upa_heap_check for the calling thread):
 *   room[i] == bin_limit(i) - (length of the list at head[i]) >= 0, where
 *   bin_limit(i) is limit for i < nbins and 0 above: so "room[idx] != 0" is
 *   the whole test of a cacheable free (a thread not set up has no room);
 *   every entry is a 16-aligned chunk of (i + 2) * 16 bytes, in use in its
 *   arena, with key == upa_tcache_key; next pointers are stored mangled
 *   (safe-linking: (address of the field >> 12) ^ pointer).
 */
#ifndef UPALLOC_TCACHE_H
#define UPALLOC_TCACHE_H

#include "internal.h"

#define UPA_TCACHE_BINS		64
#define UPA_TCACHE_MAX_REQUEST	1032	/* (64 + 1) * 16 - 8 */

enum upa_thread_state {
	UPA_THREAD_NEW = 0,	/* limit == 0: every free takes the slow path */
	UPA_THREAD_LIVE,
	UPA_THREAD_DEAD,	/* cache returned at thread exit */
};

/* Lives in the freed chunk's user data. */
struct upa_tcache_entry {
	uintptr_t next;		/* mangled */
	uintptr_t key;		/* upa_tcache_key while cached */
};

/* Per-thread counters, summed over threads by upa_lib_stats(). */
enum upa_thread_counter {
	UPA_TC_HITS,		/* mallocs served by the cache */
	UPA_TC_FREES,		/* frees absorbed by the cache */
	UPA_TC_SLOW_MALLOCS,	/* allocations past the cache */
	UPA_TC_SLOW_FREES,	/* frees past the cache */
	UPA_TC_COUNTERS,
};

struct upa_tcache {
	struct upa_tcache_entry *head[UPA_TCACHE_BINS];
	uint16_t room[UPA_TCACHE_BINS];	/* free slots per bin */
	uint8_t misses[UPA_TCACHE_BINS];	/* slow mallocs per bin, to 4 */
	unsigned int limit;		/* chunks per bin; 0 until set up */
	unsigned int nbins;		/* bins in use; 0 until set up */
	size_t counter[UPA_TC_COUNTERS];
	struct upa_arena *arena;	/* NULL until the first slow path */
	enum upa_thread_state state;
	struct upa_tcache *next, *prev;	/* live threads (upa_global_lock) */
};

extern __thread struct upa_tcache upa_tc
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline unsigned int tcache_index(size_t chunk_size)
{
	return (unsigned int)(chunk_size >> 4) - 2;
}

static inline unsigned int tcache_bin_limit(const struct upa_tcache *tc,
					    unsigned int idx)
{
	return idx < tc->nbins ? tc->limit : 0;
}

/* Chunks cached in bin idx. */
static inline unsigned int tcache_count(const struct upa_tcache *tc,
					unsigned int idx)
{
	return tcache_bin_limit(tc, idx) - tc->room[idx];
}

/*
 * tcache_index(upa_request_size(n)) for n <= UPA_TCACHE_MAX_REQUEST, in
 * fewer instructions: requests up to 24 bytes share bin 0 (chunk 32), and
 * from there every 16 bytes of request start the next bin (25 -> 1,
 * 41 -> 2, ..., 1032 -> 63).
 */
static inline size_t tcache_request_index(size_t n)
{
	size_t m = n < UPA_MIN_CHUNK - UPA_WORD ? UPA_MIN_CHUNK - UPA_WORD : n;

	return (m - (UPA_MIN_CHUNK - UPA_WORD - UPA_ALIGN + 1)) >> 4;
}

static inline struct upa_tcache_entry *tcache_reveal(const void *pos,
						     uintptr_t v)
{
	return (struct upa_tcache_entry *)(((uintptr_t)pos >> 12) ^ v);
}

static inline void tcache_push(struct upa_tcache *tc, size_t idx,
			       struct upa_tcache_entry *e)
{
	e->next = ((uintptr_t)&e->next >> 12) ^ (uintptr_t)tc->head[idx];
	e->key = upa_tcache_key;
	tc->head[idx] = e;
	tc->room[idx]--;
}

static inline struct upa_tcache_entry *tcache_pop(struct upa_tcache *tc,
						  size_t idx)
{
	struct upa_tcache_entry *e = tc->head[idx];

	UPA_CHECK(chunk_aligned(e), "malloc(): unaligned tcache chunk detected");
	tc->head[idx] = tcache_reveal(&e->next, e->next);
	tc->room[idx]++;
	e->key = 0;
	return e;
}

static inline void *upa_malloc_inline(size_t n)
{
	struct upa_tcache *tc = &upa_tc;

	if (likely(n <= UPA_TCACHE_MAX_REQUEST)) {
		size_t idx = tcache_request_index(n);

		if (likely(tc->head[idx] != NULL)) {
			tc->counter[UPA_TC_HITS]++;
			return tcache_pop(tc, idx);
		}
	}
	return upa_malloc_slow(n);
}

static inline void upa_free_inline(void *mem)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_chunk *c;
	size_t size, idx;

	if (unlikely(mem == NULL))
		return;
	c = mem_chunk(mem);
	size = chunk_size(c);
	idx = (size >> 4) - 2;	/* tcache_index(), kept 64-bit: no extension */
	/* Mmapped chunks are >= a page: their idx is never that small. */
	if (likely(idx < UPA_TCACHE_BINS && tc->room[idx])) {
		struct upa_tcache_entry *e = mem;

		UPA_CHECK((uintptr_t)c <= -size && chunk_aligned(c),
			  "free(): invalid pointer");
		/* A tail call: the fast path saves no registers. */
		if (unlikely(e->key == upa_tcache_key))
			return upa_tcache_free_keyed(tc, idx, mem);
		tcache_push(tc, idx, e);
		tc->counter[UPA_TC_FREES]++;
		return;
	}
	upa_free_slow(mem);
}

#endif /* UPALLOC_TCACHE_H */
