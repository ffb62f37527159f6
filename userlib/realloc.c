// SPDX-License-Identifier: MIT
/*
 * realloc.c: realloc and reallocarray.
 *
 *   realloc(NULL, n)  is malloc(n);
 *   realloc(p, 0)     frees p and returns NULL (glibc's behaviour);
 *   shrinking         stays in place, the tail (if a chunk's worth) freed;
 *   growing           in place into a free next chunk or the top chunk;
 *                     an mmapped chunk's region is resized (mremap on the
 *                     mmap backend; the device cannot resize a region);
 *   otherwise         malloc, copy, free; a block that must move to grow
 *                     gets 25 % headroom, so that a string built by
 *                     appends (realloc to the exact length each time)
 *                     moves O(log n) times, not on nearly every append.
 * On failure NULL + ENOMEM and the old block is untouched.
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"

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

/* Try to resize heap chunk c in place, arena locked. */
static bool resize_in_place(struct upa_arena *a, struct upa_chunk *c,
			    size_t nb)
{
	size_t size = chunk_size(c);
	struct upa_chunk *next = chunk_at(c, size);

	if (size >= nb) {
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
		chunk_set_size(c, nb);
		a->top = chunk_at(c, nb);
		chunk_set_head(a->top, (size + ts - nb) | UPA_PREV_INUSE |
				       upa_arena_flag(a));
		return true;
	}
	if (!chunk_inuse(next) && size + chunk_size(next) >= nb) {
		size_t total = size + chunk_size(next);

		upa_bin_unlink(next);
		chunk_set_size(c, total);
		chunk_set_inuse(c);
		chunk_shrink(a, c, nb);
		return true;
	}
	return false;
}

/*
 * A block for n bytes that is moving from one of old_usable bytes: when it
 * grows, ask for 25 % more (the caller is probably appending), falling back
 * to exactly n when that much is not available.
 */
static void *malloc_with_headroom(size_t n, size_t old_usable)
{
	int saved_errno = errno;
	void *mem;

	if (n > old_usable && n <= UPA_MAX_REQUEST / 2) {
		mem = upa_malloc_slow(n + n / 4);
		if (mem)
			return mem;
		errno = saved_errno;
	}
	return upa_malloc_slow(n);
}

static void *realloc_mmapped(struct upa_chunk *c, size_t n, size_t nb)
{
	size_t old_usable = chunk_usable(c);
	struct upa_chunk *nc;
	void *mem;

	/* A shrink that keeps most of the region: nothing to do. */
	if (old_usable >= n && old_usable / 2 <= n)
		return chunk_mem(c);
	nc = upa_region_remap_chunk(c, nb);
	if (nc)
		return chunk_mem(nc);
	if (old_usable >= n)
		return chunk_mem(c);
	mem = malloc_with_headroom(n, old_usable);
	if (!mem)
		return NULL;
	memcpy(mem, chunk_mem(c), old_usable);
	upa_region_munmap_chunk(c);
	return mem;
}

UPA_API void *upa_realloc(void *mem, size_t n)
{
	struct upa_chunk *c;
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
	a = upa_arena_of(c);
	if (!a->quarantined) {
		upa_lock(&a->lock);
		UPA_CHECK(size < a->system_mem, "realloc(): invalid old size");
		UPA_CHECK(chunk_inuse(c), "realloc(): invalid pointer");
		ok = resize_in_place(a, c, nb);
		upa_unlock(&a->lock);
		if (ok)
			return mem;
	} else if (size >= nb) {
		return mem;
	}
	nmem = malloc_with_headroom(n, chunk_usable(c));
	if (!nmem)
		return NULL;
	memcpy(nmem, mem, chunk_usable(c) < n ? chunk_usable(c) : n);
	if (!a->quarantined)
		upa_free(mem);
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
