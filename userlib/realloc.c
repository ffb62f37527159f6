// SPDX-License-Identifier: MIT
/*
 * realloc.c: realloc and reallocarray.
 *
 *   realloc(NULL, n)  is malloc(n);
 *   realloc(p, 0)     frees p and returns NULL (glibc's behaviour);
 *   fits already      the chunk holds n and at most a quarter more (see
 *                     headroom below): returned as is, without the arena
 *                     lock; this is the common case of a string built by
 *                     appends (realloc to the exact length each time);
 *   shrinking more    stays in place, the tail (if a chunk's worth) freed;
 *   growing           in place into a free next chunk or the top chunk,
 *                     taking the headroom too when it is there;
 *   mmapped chunks    their region is resized (mremap on the mmap backend,
 *                     the break of the region's reservation on the
 *                     device), with headroom when growing;
 *   otherwise         malloc (through the thread cache), copy, free.
 * Headroom: a block that grows is given n + n / 4 bytes where it can, so
 * that appends move or resize it O(log n) times, not on every append. In
 * a heap the headroom is carved from free space, never from pages nobody
 * touched (top_take leaves the pages above the header untouched), and in
 * a mapped region it is address space only: untouched pages are not
 * resident. A growing block of UPA_REALLOC_MMAP bytes or more moves to a
 * region of its own: further growth then remaps pages instead of copying
 * them, and its free gives all of it back at once instead of leaving a
 * large hole in a heap (the peak RSS of string building).
 * On failure NULL + ENOMEM and the old block is untouched.
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"

/*
 * Growing blocks of this many bytes or more move to a region of their own
 * (unless the user fixed the mmap threshold: then that one). Not the
 * dynamic threshold: it rises with every large free (glibc's rule for
 * malloc), which would send large strings back into the heaps.
 */
#define UPA_REALLOC_MMAP	UPA_DEFAULT_MMAP_THRESHOLD

/* The request a growing block of n bytes is given: n and a quarter. */
static size_t headroom_request(size_t n)
{
	return n <= UPA_MAX_REQUEST / 2 ? n + n / 4 : n;
}

/*
 * The chunk of size bytes may stay as it is for nb: it is big enough and
 * holds no more spare than headroom would have given (or too little to be
 * split off anyway).
 */
static bool fits_with_slack(size_t size, size_t nb)
{
	return size >= nb && (size - nb < UPA_MIN_CHUNK || size - nb <= nb / 4);
}

/* Cut chunk c (in use, size >= nb) down to nb, freeing the tail. */
static void chunk_shrink(struct upa_arena *a, struct upa_chunk *c, size_t nb)
{
	size_t size = chunk_size(c), rem = size - nb;
	struct upa_chunk *r = chunk_at(c, nb);

	if (rem < UPA_MIN_CHUNK)
		return;
	chunk_set_size(c, nb);
	chunk_set_head(r, rem | UPA_PREV_INUSE | upa_arena_flag(a));
	/* r is in use now (its next's P is set); free it properly. */
	upa_int_free(a, r);
}

/*
 * Try to resize heap chunk c in place to nb bytes (want >= nb when the
 * headroom may be taken too), arena locked.
 */
static bool resize_in_place(struct upa_arena *a, struct upa_chunk *c,
			    size_t nb, size_t want)
{
	size_t size = chunk_size(c);
	struct upa_chunk *next = chunk_at(c, size);

	if (size >= nb) {
		if (!fits_with_slack(size, nb))
			chunk_shrink(a, c, nb);
		return true;
	}
	if (next == a->top) {
		size_t ts = chunk_size(next);

		if (size + ts < nb + UPA_MIN_CHUNK) {
			if (upa_region_grow_top(a, nb - size) ||
			    a->top != next)
				return false;
			ts = chunk_size(next);
		}
		if (size + ts < want + UPA_MIN_CHUNK)
			want = nb;
		chunk_set_size(c, want);
		arena_set_top(a, chunk_at(c, want));
		chunk_set_head(a->top, (size + ts - want) | UPA_PREV_INUSE |
				       upa_arena_flag(a));
		return true;
	}
	if (!chunk_inuse(next) && size + chunk_size(next) >= nb) {
		size_t total = size + chunk_size(next);

		upa_bin_unlink(next);
		chunk_set_size(c, total);
		chunk_set_inuse(c);
		chunk_shrink(a, c, total < want ? total : want);
		return true;
	}
	return false;
}

/*
 * A new block for n bytes, for a block of old_usable bytes that cannot
 * resize in place. A growing one gets headroom; a large growing one a
 * region of its own. Small ones come from the thread cache when it has
 * one: realloc's frees go there, and a realloc that only ever allocated
 * past it would leave them stranded (and the cache full).
 */
static void *malloc_for_move(size_t n, size_t old_usable)
{
	size_t limit = upa_mp.no_dyn_threshold ? upa_mp.mmap_threshold :
						 UPA_REALLOC_MMAP;
	int saved_errno = errno;
	void *mem;

	if (n > old_usable) {
		size_t hn = headroom_request(n);

		if (hn >= limit) {
			struct upa_chunk *c;

			c = upa_region_mmap_chunk(upa_request_size(hn),
						  UPA_ALIGN, false);
			if (c)
				return chunk_mem(c);
		}
		mem = upa_malloc_inline(hn);
		if (mem)
			return mem;
		errno = saved_errno;
	}
	return upa_malloc_inline(n);
}

static void *realloc_mmapped(struct upa_chunk *c, size_t n, size_t nb)
{
	size_t old_usable = chunk_usable(c);
	struct upa_chunk *nc;
	void *mem;

	/* A shrink that keeps most of the region: nothing to do. */
	if (old_usable >= n && old_usable / 2 <= n)
		return chunk_mem(c);
	/* Growing: the headroom is address space, resident once touched. */
	if (n > old_usable) {
		nc = upa_region_remap_chunk(c,
				upa_request_size(headroom_request(n)));
		if (nc)
			return chunk_mem(nc);
	}
	nc = upa_region_remap_chunk(c, nb);
	if (nc)
		return chunk_mem(nc);
	if (old_usable >= n)
		return chunk_mem(c);
	mem = malloc_for_move(n, old_usable);
	if (!mem)
		return NULL;
	memcpy(mem, chunk_mem(c), old_usable);
	upa_region_munmap_chunk(c);
	return mem;
}

UPA_API void *upa_realloc(void *mem, size_t n)
{
	struct upa_chunk *c, *next;
	struct upa_arena *a;
	size_t size, nb;
	void *nmem;
	bool ok;

	if (!mem)
		return upa_malloc_slow(n);
	if (n == 0) {
		upa_free(mem);
		return NULL;
	}
	upa_ensure_init();
	if (upa_hard_dispatch())
		return upa_hard_realloc(mem, n);
	c = mem_chunk(mem);
	size = chunk_size(c);
	UPA_CHECK((uintptr_t)c <= -size && chunk_aligned(c),
		  "realloc(): invalid pointer");
	if (unlikely(!upa_request_ok(n))) {
		errno = ENOMEM;
		return NULL;
	}
	nb = upa_request_size(n);
	if (chunk_is_mmapped(c)) {
		nmem = realloc_mmapped(c, n, nb);
		if (!nmem)
			errno = ENOMEM;
		return nmem;
	}
	UPA_CHECK(size >= UPA_MIN_CHUNK && size % UPA_ALIGN == 0,
		  "realloc(): invalid old size");
	a = upa_arena_of_checked(c, "realloc(): invalid pointer");
	/*
	 * Fits already: no lock. The chunk is the caller's, so its size is
	 * stable; only the neighbour's header (its P bit, set while c is in
	 * use, whatever another thread does to the neighbour under the lock)
	 * and system_mem (a sanity bound) are read racily, atomically.
	 */
	if (fits_with_slack(size, nb)) {
		UPA_CHECK(size < __atomic_load_n(&a->system_mem,
						 __ATOMIC_RELAXED),
			  "realloc(): invalid old size");
		next = chunk_at(c, size);
		UPA_CHECK(__atomic_load_n(&next->size, __ATOMIC_RELAXED) &
			  UPA_PREV_INUSE, "realloc(): invalid pointer");
		return mem;
	}
	if (!a->quarantined) {
		upa_lock(&a->lock);
		UPA_CHECK(size < a->system_mem, "realloc(): invalid old size");
		UPA_CHECK(chunk_inuse(c), "realloc(): invalid pointer");
		UPA_CHECK(chunk_size(chunk_at(c, size)) >= UPA_HEADER &&
			  chunk_size(chunk_at(c, size)) < a->system_mem,
			  "realloc(): invalid next size");
		ok = resize_in_place(a, c, nb,
				     upa_request_size(headroom_request(n)));
		upa_unlock(&a->lock);
		if (ok)
			return mem;
	} else if (size >= nb) {
		return mem;
	}
	nmem = malloc_for_move(n, chunk_usable(c));
	if (!nmem)
		return NULL;
	memcpy(nmem, mem, chunk_usable(c) < n ? chunk_usable(c) : n);
	if (a->quarantined)
		return nmem;
	if (unlikely(upa_mp.hardened))
		upa_hard_fill(c);
	/*
	 * A block that grew out of a large cache bin size goes back to its
	 * arena, not to the thread cache: growing blocks pass each size
	 * once, so the exact-size cache bins of 1056..4112 bytes (8 KiB
	 * each) would only collect them (realloc_grow: +1.1 MB peak RSS).
	 * Small sizes stay cached: every new string passes through them.
	 */
	if (size > UPA_TCACHE_MAX_CHUNK && n > chunk_usable(c)) {
		upa_tc.counter[UPA_TC_SLOW_FREES]++;
		upa_free_chunk_any(c);
	} else {
		upa_free(mem);
	}
	return nmem;
}

UPA_API void *upa_reallocarray(void *mem, size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return upa_realloc(mem, n);
}
