// SPDX-License-Identifier: MIT
/*
 * malloc.c: malloc and calloc behind the thread cache.
 *
 * Search order of a malloc of chunk size nb (upa_int_malloc, arena locked):
 *   0. (inline, no lock) the thread cache, tcache.h;
 *   1. requests >= the mmap threshold: a region of their own (no lock);
 *   2. the fast bin of nb (and refill the thread cache from it);
 *   3. the small bin of nb (ditto); for a large nb, consolidate fast bins;
 *   4. the unsorted bin, oldest first: the last remainder for a small
 *      request (locality), an exact fit is taken, everything else is sorted
 *      into its bin;
 *   5. best fit in nb's large bin;
 *   6. via the binmap, the smallest chunk of the next non-empty bin, split;
 *   7. the top chunk, split;
 *   8. consolidate the fast bins and retry, or grow the heap (region.c);
 *   9. a region of its own after all (the heap could not grow), or
 *      another arena.
 * Every split remainder goes to the unsorted bin.
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"

/*
 * Batch refill: a malloc of a cached size that had to come to the arena
 * also carves up to avail bytes at `at` into more chunks of nb for the
 * thread cache, in the same locked step. None on a bin's first miss; then
 * 1, 3, 7, 15 as the bin keeps missing (a program allocating many blocks
 * of one size, where every malloc would otherwise take the whole slow
 * path), at most 4 KiB and the bin's room, so that a size used once or
 * twice costs no memory. A cache set smaller than TCACHE_CARVE_MIN_LIMIT
 * per bin (M_TCACHE_COUNT; glibc's default is 7) carves nothing: whoever
 * sets one wants glibc's chunk-by-chunk behaviour. The chunks are pushed
 * highest address first: the next mallocs get ascending addresses, as
 * they would from the top. Returns the bytes carved; arena locked.
 */
#define TCACHE_CARVE_BYTES	4096
#define TCACHE_CARVE_MIN_LIMIT	16

static size_t tcache_carve(struct upa_arena *a, struct upa_chunk *at,
			   size_t nb, size_t avail)
{
	struct upa_tcache *tc = &upa_tc;
	size_t idx = tcache_index(nb), k, i;
	size_t head = nb | UPA_PREV_INUSE | upa_arena_flag(a);

	/* The hardened mode's cache instead (the default one is off). */
	if (unlikely(upa_mp.hardened)) {
		k = TCACHE_CARVE_BYTES / nb;
		return upa_hard_carve(a, at, nb, k < avail / nb ? k : avail / nb,
				      TCACHE_CARVE_MIN_LIMIT);
	}
	if (idx >= UPA_TCACHE_BINS || !tc->room[idx] ||
	    tc->limit < TCACHE_CARVE_MIN_LIMIT)
		return 0;
	k = ((size_t)1 << tc->misses[idx]) - 1;
	if (tc->misses[idx] < 4)
		tc->misses[idx]++;
	if (k > tc->room[idx])
		k = tc->room[idx];
	if (k > TCACHE_CARVE_BYTES / nb)
		k = TCACHE_CARVE_BYTES / nb;
	if (k > avail / nb)
		k = avail / nb;
	for (i = k; i > 0; i--) {
		struct upa_chunk *c = chunk_at(at, (i - 1) * nb);

		chunk_set_head(c, head);
		tcache_push_counted(tc, idx, chunk_mem(c));
	}
	return k * nb;
}

/* Take nb bytes off free chunk c (unlinked); the rest goes to unsorted. */
static void *chunk_take(struct upa_arena *a, struct upa_chunk *c,
			size_t nb)
{
	size_t size = chunk_size(c), rem = size - nb;
	size_t flag = upa_arena_flag(a);

	if (rem >= UPA_MIN_CHUNK) {
		size_t carved = tcache_carve(a, chunk_at(c, nb), nb,
					     rem - UPA_MIN_CHUNK);
		struct upa_chunk *r = chunk_at(c, nb + carved);

		rem -= carved;

		chunk_set_head(c, nb | (c->size & UPA_PREV_INUSE) | flag);
		chunk_set_head(r, rem | UPA_PREV_INUSE | flag);
		chunk_set_foot(r, rem);
		upa_bin_put_unsorted(a, r, "malloc(): corrupted unsorted chunks");
		if (in_smallbin_range(nb))
			a->last_remainder = r;
	} else {
		chunk_set_inuse(c);
	}
	return chunk_mem(c);
}

static void *top_take(struct upa_arena *a, size_t nb, bool *fresh)
{
	struct upa_chunk *c = a->top;
	size_t ts = chunk_size(c);
	struct upa_chunk *r = chunk_at(c, nb);

	chunk_set_head(c, nb | (c->size & UPA_PREV_INUSE) | upa_arena_flag(a));
	chunk_set_head(r, (ts - nb) | UPA_PREV_INUSE | upa_arena_flag(a));
	arena_set_top(a, r);
	a->st.top_splits++;
	if (fresh)
		*fresh = (char *)chunk_mem(c) >= a->zero_from;
	return chunk_mem(c);
}

/* After top_take(): carve more chunks of nb off the top for the cache. */
static void top_carve(struct upa_arena *a, size_t nb)
{
	size_t ts = upa_top_size(a), carved;

	if (ts < nb + UPA_MIN_CHUNK)
		return;
	carved = tcache_carve(a, a->top, nb, ts - UPA_MIN_CHUNK);
	if (carved) {
		arena_set_top(a, chunk_at(a->top, carved));
		chunk_set_head(a->top, (ts - carved) | UPA_PREV_INUSE |
					       upa_arena_flag(a));
	}
}

static void tcache_refill(struct upa_arena *a, size_t nb)
{
	struct upa_tcache *tc = &upa_tc;
	unsigned int idx = tcache_index(nb);

	if (idx < UPA_TCACHE_BINS && tc->room[idx])
		upa_tcache_fill(tc, a, idx);
}

/*
 * Steps 4-6: the unsorted bin, then large bins and the binmap. Exact fits
 * found while sorting first fill the thread cache's bin for nb (the next
 * mallocs of this size then take no lock); one of them is returned when
 * the scan is over.
 */
static void *bins_search(struct upa_arena *a, size_t nb)
{
	struct upa_chunk *head = upa_bin_at(a, UPA_UNSORTED);
	struct upa_tcache *tc = &upa_tc;
	size_t tidx = tcache_index(nb);
	bool stashed = false;
	struct upa_chunk *c;
	unsigned int iters = 0;

	while ((c = head->bk) != head) {
		struct upa_chunk *bck = c->bk;
		size_t size = chunk_size(c);
		struct upa_chunk *next = chunk_at(c, size);

		UPA_CHECK(size >= UPA_MIN_CHUNK && size <= a->system_mem,
			  "malloc(): invalid size (unsorted)");
		UPA_CHECK(chunk_size(next) >= UPA_HEADER &&
			  chunk_size(next) <= a->system_mem,
			  "malloc(): invalid next size (unsorted)");
		UPA_CHECK(next->prev_size == size,
			  "malloc(): mismatching next->prev_size (unsorted)");
		UPA_CHECK(bck->fd == c && c->fd == head,
			  "malloc(): unsorted double linked list corrupted");
		UPA_CHECK(!chunk_prev_inuse(next),
			  "malloc(): invalid next->prev_inuse (unsorted)");

		if (in_smallbin_range(nb) && bck == head &&
		    c == a->last_remainder && size >= nb + UPA_MIN_CHUNK) {
			/* Keep carving the last remainder: locality. */
			head->bk = head->fd = head;
			a->st.unsorted_hits++;
			return chunk_take(a, c, nb);
		}
		head->bk = bck;
		bck->fd = head;
		if (size == nb) {
			chunk_set_inuse(c);
			a->st.unsorted_hits++;
			if (tcache_room(tc, tidx)) {
				tcache_push_counted(tc, tidx, chunk_mem(c));
				stashed = true;
			} else {
				return chunk_mem(c);
			}
		} else {
			upa_bin_place(a, c, size);
		}
		if (++iters >= 10000)
			break;
	}
	if (stashed)
		return tcache_pop_counted(tc, tidx);

	if (!in_smallbin_range(nb)) {
		c = upa_largebin_best_fit(a, nb);
		if (c) {
			a->st.largebin_hits++;
			return chunk_take(a, c, nb);
		}
	}
	c = upa_binmap_next(a, nb);
	if (c) {
		if (in_smallbin_range(chunk_size(c)))
			a->st.smallbin_hits++;
		else
			a->st.largebin_hits++;
		return chunk_take(a, c, nb);
	}
	return NULL;
}

/*
 * Serve nb (a chunk size) from arena a, locked. *fresh (if not NULL) is set
 * when the memory is known to be zero (fresh from the page source).
 */
void *upa_int_malloc(struct upa_arena *a, size_t nb, bool *fresh)
{
	struct upa_chunk *c;
	void *mem;

	if (fresh)
		*fresh = false;
	a->st.malloc_slow++;
	if (nb <= upa_mp.max_fast) {
		c = upa_fastbin_pop(a, fastbin_index(nb));
		if (c) {
			if (unlikely(upa_mp.hardened))
				upa_hard_verify_fast(c);
			a->st.fastbin_hits++;
			tcache_refill(a, nb);
			return chunk_mem(c);
		}
	}
	if (in_smallbin_range(nb)) {
		c = upa_smallbin_pop(a, bin_index(nb));
		if (c) {
			a->st.smallbin_hits++;
			tcache_refill(a, nb);
			return chunk_mem(c);
		}
	} else if (a->have_fastchunks) {
		upa_consolidate(a);
	}

	for (;;) {
		mem = bins_search(a, nb);
		if (mem)
			return mem;
		/*
		 * glibc's bound, and ours: the top chunk ends at its heap's
		 * usable end (a size made smaller would leave the rest of
		 * the heap to no chunk, a larger one run past it).
		 */
		UPA_CHECK(upa_top_size(a) <= a->system_mem &&
			  (!a->top || (char *)a->top + upa_top_size(a) ==
				      (char *)a->heap + a->heap->size),
			  "malloc(): corrupted top size");
		if (upa_top_size(a) >= nb + UPA_MIN_CHUNK)
			break;
		if (a->have_fastchunks) {
			upa_consolidate(a);
			continue;
		}
		if (upa_region_grow_top(a, nb))
			return NULL;
		break;
	}
	mem = top_take(a, nb, fresh);
	top_carve(a, nb);
	return mem;
}

static void *perturb_alloc(void *mem, size_t n)
{
	if (unlikely(upa_mp.perturb) && mem)
		memset(mem, upa_mp.perturb ^ 0xff, n);
	return mem;
}

/*
 * The heap had to grow for a large request: the program moved on to
 * larger blocks. Small chunks the thread cache still holds (32 per bin)
 * keep their heap pages resident and split the free space around them
 * into holes too small for the large blocks; a cache holding more than
 * UPA_CACHE_GIVE_BACK bytes gives them back to their arenas (where they
 * coalesce) and starts over. calloc_blocks' small phase left ~300 KB so.
 * The first time, then at most once per UPA_CACHE_GIVE_BACK_EVERY heap
 * grows of the arena: a program that mixes sizes all along (churn) keeps
 * its cache.
 */
#define UPA_CACHE_GIVE_BACK		(64 * 1024UL)
#define UPA_CACHE_GIVE_BACK_EVERY	64

static void cache_give_back(struct upa_tcache *tc)
{
	unsigned int i, limit = tc->limit, nbins = tc->nbins;
	size_t bytes = 0;

	for (i = 0; i < UPA_TCACHE_ALL_BINS; i++)
		bytes += (size_t)tcache_count(tc, i) * (i + 2) * 16;
	if (bytes <= UPA_CACHE_GIVE_BACK)
		return;
	upa_tcache_set_limits(tc, 0, nbins);
	upa_tcache_set_limits(tc, limit, nbins);
}

/*
 * The whole slow path for a chunk of nb bytes: mmap for large requests,
 * else the thread's arena, else mmap anyway, else another arena.
 */
static void *arena_malloc(size_t nb, bool *fresh)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_arena *a;
	struct upa_chunk *c;
	size_t grows;
	bool give_back;
	void *mem = NULL;	/* stays NULL when no arena is usable */

	if (unlikely(tc->state == UPA_THREAD_NEW))
		upa_thread_setup(tc);
	if (nb >= upa_mp.mmap_threshold) {
		c = upa_region_mmap_chunk(nb, UPA_ALIGN, false);
		if (c) {
			if (fresh)
				*fresh = true;
			return chunk_mem(c);
		}
	}
	a = upa_arena_lock_mine(tc);
	if (unlikely(!a))
		goto no_arena;
	/* Other threads' frees of our chunks first (no trim: we allocate). */
	upa_remote_drain(a, NULL);
	grows = a->st.heap_grows;
	mem = upa_int_malloc(a, nb, fresh);
	give_back = a->st.heap_grows != grows &&
		    nb >= UPA_CONSOLIDATE_THRESHOLD &&
		    (!a->grows_at_give_back ||
		     a->st.heap_grows - a->grows_at_give_back >=
		     UPA_CACHE_GIVE_BACK_EVERY);
	if (give_back)
		a->grows_at_give_back = a->st.heap_grows;
	upa_unlock(&a->lock);
	if (likely(mem)) {
		if (unlikely(give_back))
			cache_give_back(tc);
		return mem;
	}

	/*
	 * The heap could not grow, or no arena is usable (a fork child
	 * whose arenas were all held at the fork, no new heap mappable):
	 * a region of its own, or another arena.
	 */
no_arena:
	c = upa_region_mmap_chunk(nb, UPA_ALIGN, true);
	if (c) {
		if (fresh)
			*fresh = true;
		return chunk_mem(c);
	}
	a = upa_arena_lock_other(tc, a);
	if (a) {
		mem = upa_int_malloc(a, nb, fresh);
		upa_unlock(&a->lock);
	}
	return mem;
}

static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	void *mem;

	if (n > UPA_TCACHE_MAX_REQUEST && n <= UPA_TCACHE_ALL_MAX_REQUEST) {
		mem = upa_tcache_large_malloc(&upa_tc, upa_request_size(n));
		if (mem)
			return mem;
	}
	upa_tc.counter[UPA_TC_SLOW_MALLOCS]++;
	if (unlikely(!upa_request_ok(n))) {
		errno = ENOMEM;
		return NULL;
	}
	mem = arena_malloc(upa_request_size(n), NULL);
	if (unlikely(!mem)) {
		errno = ENOMEM;
		return NULL;
	}
	return perturb_alloc(mem, n);
}

/* The hardened mode's dispatch before malloc_slow's prologue. */
__attribute__((noinline)) void *upa_malloc_slow(size_t n)
{
	upa_ensure_init();
	if (upa_hard_dispatch())
		return upa_hard_malloc(n);
	return malloc_slow(n);
}

UPA_API void *upa_malloc(size_t n)
{
	return upa_malloc_inline(n);
}

/*
 * calloc: overflow of nmemb * size is ENOMEM. Chunks known to be fresh
 * from the page source (a new region, or the part of a top chunk that no
 * chunk has used since the break moved up) are zero already.
 */
UPA_API void *upa_calloc(size_t nmemb, size_t size)
{
	size_t n, nb;
	bool fresh = false;
	void *mem;

	if (unlikely(__builtin_mul_overflow(nmemb, size, &n)) ||
	    unlikely(!upa_request_ok(n))) {
		errno = ENOMEM;
		return NULL;
	}
	upa_ensure_init();
	if (upa_hard_dispatch())
		return upa_hard_calloc(n);
	nb = upa_request_size(n);
	if (n <= UPA_TCACHE_MAX_REQUEST) {
		struct upa_tcache *tc = &upa_tc;
		unsigned int idx = tcache_index(nb);

		/*
		 * The whole usable size, as glibc: programs read up to
		 * malloc_usable_size() of calloc'd memory.
		 */
		if (tc->head[idx]) {
			mem = tcache_pop(tc, idx);	/* a hit: derived */
			return memset(mem, 0, nb - UPA_WORD);
		}
	}
	upa_tc.counter[UPA_TC_SLOW_MALLOCS]++;
	mem = arena_malloc(nb, &fresh);
	if (unlikely(!mem)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!fresh)
		memset(mem, 0, chunk_usable(mem_chunk(mem)));
	return mem;
}

UPA_API size_t upa_malloc_usable_size(void *mem)
{
	struct upa_chunk *c;

	if (!mem)
		return 0;
	if (unlikely(upa_mp.hardened))
		return upa_hard_usable_size(mem);
	c = mem_chunk(mem);
	if (chunk_is_mmapped(c))
		return chunk_size(c) - UPA_HEADER;
	return chunk_inuse(c) ? chunk_size(c) - UPA_WORD : 0;
}
