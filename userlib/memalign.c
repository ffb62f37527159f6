// SPDX-License-Identifier: MIT
/*
 * memalign.c: memalign, posix_memalign, aligned_alloc, valloc, pvalloc.
 *
 * Over-allocate nb + align + a minimum chunk, then cut the chunk at the
 * first aligned address that leaves a leader of at least a minimum chunk;
 * leader and tail go back to the bins. Large requests get an mmapped
 * region with the chunk placed at the aligned offset.
 */
#include <stdint.h>

#include "internal.h"
#include "tcache.h"

static void *memalign_heap(size_t align, size_t nb)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_arena *a;
	struct upa_chunk *c;
	size_t flag, size;
	void *m;

	if (unlikely(tc->state == UPA_THREAD_NEW))
		upa_thread_setup(tc);
	a = upa_arena_lock_mine(tc);
	if (unlikely(!a))
		return NULL;	/* none usable: the caller maps a region */
	m = upa_int_malloc(a, nb + align + UPA_MIN_CHUNK, NULL);
	if (!m) {
		upa_unlock(&a->lock);
		return NULL;
	}
	flag = upa_arena_flag(a);
	c = mem_chunk(m);
	if ((uintptr_t)m & (align - 1)) {
		struct upa_chunk *ac = mem_chunk((void *)upa_align_up((uintptr_t)m,
								      align));
		size_t lead;

		if ((char *)ac - (char *)c < UPA_MIN_CHUNK)
			ac = chunk_at(ac, align);
		lead = (size_t)((char *)ac - (char *)c);
		size = chunk_size(c) - lead;
		/* ac keeps the in-use bit in its successor; c becomes a leader. */
		chunk_set_head(ac, size | UPA_PREV_INUSE | flag);
		chunk_set_head(c, lead | (c->size & UPA_PREV_INUSE) | flag);
		upa_int_free(a, c);
		c = ac;
	}
	size = chunk_size(c);
	if (size >= nb + UPA_MIN_CHUNK) {
		struct upa_chunk *r = chunk_at(c, nb);

		chunk_set_size(c, nb);
		chunk_set_head(r, (size - nb) | UPA_PREV_INUSE | flag);
		upa_int_free(a, r);
	}
	upa_unlock(&a->lock);
	return chunk_mem(c);
}

/* align: a power of two > 16. NULL + ENOMEM on failure. */
void *upa_int_memalign(size_t align, size_t n)
{
	struct upa_chunk *c;
	size_t nb;
	void *mem;

	upa_ensure_init();
	if (upa_hard_dispatch())
		return upa_hard_memalign(align, n);
	upa_tc.counter[UPA_TC_SLOW_MALLOCS]++;
	if (!upa_request_ok(n) || align > UPA_MAX_REQUEST - n) {
		errno = ENOMEM;
		return NULL;
	}
	nb = upa_request_size(n);
	if (nb >= upa_mp.mmap_threshold) {
		c = upa_region_mmap_chunk(nb, align, false);
		if (c)
			return chunk_mem(c);
	}
	mem = memalign_heap(align, nb);
	if (!mem) {
		c = upa_region_mmap_chunk(nb, align, true);
		if (c)
			return chunk_mem(c);
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely(upa_mp.perturb))
		__builtin_memset(mem, upa_mp.perturb ^ 0xff, n);
	return mem;
}

UPA_API void *upa_memalign(size_t align, size_t n)
{
	if (align <= UPA_ALIGN)
		return upa_malloc(n);
	if (align > (SIZE_MAX >> 1) + 1) {
		errno = EINVAL;
		return NULL;
	}
	/* glibc rounds a non-power-of-two alignment up. */
	if (!upa_is_pow2(align))
		align = (size_t)1 << (64 - __builtin_clzl(align));
	return upa_int_memalign(align, n);
}

/*
 * Failure: ENOMEM returned, and errno left as the allocation set it
 * (ENOMEM), as glibc does; programs (glibc's tst-malloc-thread-fail among
 * them) report errno after a failed posix_memalign.
 */
UPA_API int upa_posix_memalign(void **memptr, size_t align, size_t n)
{
	void *mem;

	if (align % sizeof(void *) || !upa_is_pow2(align / sizeof(void *)))
		return EINVAL;
	mem = upa_memalign(align, n);
	if (!mem)
		return ENOMEM;
	*memptr = mem;
	return 0;
}

/* C11: the alignment must be a power of two (EINVAL otherwise). */
UPA_API void *upa_aligned_alloc(size_t align, size_t n)
{
	if (!upa_is_pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return upa_memalign(align, n);
}

UPA_API void *upa_valloc(size_t n)
{
	upa_ensure_init();
	return upa_memalign(upa_page_size, n);
}

UPA_API void *upa_pvalloc(size_t n)
{
	size_t rounded;

	upa_ensure_init();
	rounded = upa_align_up(n ? n : 1, upa_page_size);
	if (rounded < n) {
		errno = ENOMEM;
		return NULL;
	}
	return upa_memalign(upa_page_size, rounded);
}
