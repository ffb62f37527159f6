// SPDX-License-Identifier: MIT
/*
 * check.c: the fatal-error path of the always-on integrity checks, and
 * upa_heap_check(), the walker that verifies every invariant stated above
 * the structs in chunk.h, internal.h and tcache.h.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "uring.h"
#include "tcache.h"
#include "include/upalloc.h"

void upa_fatal(const char *msg)
{
	char buf[256];
	int n = upa_snprintf(buf, sizeof(buf), "upalloc: %s\n", msg);

	upa_write_all(2, buf, (size_t)n < sizeof(buf) ? (size_t)n
						      : sizeof(buf) - 1);
	abort();
}

/* Bound on list walks, so that a corrupted cycle cannot hang the check. */
#define WALK_LIMIT	(1UL << 28)

struct check {
	char msg[200];
};

#define CHECK_FAIL(ck, ...)						\
	do {								\
		upa_snprintf((ck)->msg, sizeof((ck)->msg), __VA_ARGS__);	\
		return -1;						\
	} while (0)

static bool chunk_in_arena(struct upa_arena *a, const struct upa_chunk *c)
{
	struct upa_heap *h;

	for (h = a->heap; h; h = h->prev)
		if ((const char *)c >= (const char *)upa_heap_first_chunk(h) &&
		    (const char *)c < (const char *)h + h->size)
			return true;
	return false;
}

/* Walk every chunk of every heap: tiling, flags, tags, coalescing. */
static int check_heaps(struct check *ck, struct upa_arena *a,
		       size_t *nfree, size_t *free_bytes)
{
	size_t flag = upa_arena_flag(a), sys = 0;
	struct upa_heap *h;

	*nfree = 0;
	*free_bytes = 0;
	if (a->top && !a->heap)
		CHECK_FAIL(ck, "arena %u: top without a heap", a->index);
	for (h = a->heap; h; h = h->prev) {
		bool current = h == a->heap, prev_free = false;
		char *end = (char *)h + h->size;
		struct upa_chunk *c = upa_heap_first_chunk(h);

		if ((uintptr_t)h & ~upa_heap_mask)
			CHECK_FAIL(ck, "heap %p misaligned", (void *)h);
		if (h->arena != a)
			CHECK_FAIL(ck, "heap %p: wrong arena", (void *)h);
		if (h->size % upa_page_size || h->size > h->reserve)
			CHECK_FAIL(ck, "heap %p: bad break %zu", (void *)h,
				   h->size);
		/* Deferred trims: the break kept at or above the usable end. */
		if (h->brk % upa_page_size || h->brk < h->size ||
		    h->brk > h->reserve)
			CHECK_FAIL(ck, "heap %p: bad kept break %zu (size %zu)",
				   (void *)h, h->brk, h->size);
		/* Below the usable end every decommit has been reclaimed. */
		if (upa_region_is_device() &&
		    upa_uring_decommit_pending(h, h->size))
			CHECK_FAIL(ck, "heap %p: decommit pending below its end %zu",
				   (void *)h, h->size);
		if (!chunk_prev_inuse(c))
			CHECK_FAIL(ck, "first chunk %p without PREV_INUSE",
				   (void *)c);
		for (;;) {
			struct upa_chunk *next;
			size_t size;

			if ((char *)c >= end)
				CHECK_FAIL(ck, "chunk %p beyond heap end", (void *)c);
			if (!chunk_aligned(c))
				CHECK_FAIL(ck, "chunk %p misaligned", (void *)c);
			if (chunk_prev_inuse(c) == prev_free)
				CHECK_FAIL(ck, "chunk %p: PREV_INUSE is %d but previous chunk is %s",
					   (void *)c, (int)chunk_prev_inuse(c),
					   prev_free ? "free" : "in use");
			if (current && c == a->top) {
				if ((char *)c + chunk_size(c) != end)
					CHECK_FAIL(ck, "top %p does not end at the break",
						   (void *)c);
				if (chunk_size(c) < UPA_MIN_CHUNK)
					CHECK_FAIL(ck, "top %p too small", (void *)c);
				if (chunk_flags(c) & ~UPA_PREV_INUSE & ~flag)
					CHECK_FAIL(ck, "top %p: bad flags", (void *)c);
				break;
			}
			if (!current && (char *)c == end - UPA_HEADER) {
				if (c->size != (UPA_PREV_INUSE | flag))
					CHECK_FAIL(ck, "heap %p: bad end marker",
						   (void *)h);
				break;
			}
			size = chunk_size(c);
			if (size < UPA_HEADER || size % UPA_ALIGN ||
			    (char *)c + size > end)
				CHECK_FAIL(ck, "chunk %p: bad size %zu", (void *)c,
					   size);
			if ((c->size & UPA_NON_MAIN_ARENA) != flag ||
			    chunk_is_mmapped(c))
				CHECK_FAIL(ck, "chunk %p: bad flags %#zx", (void *)c,
					   chunk_flags(c));
			next = chunk_at(c, size);
			if ((char *)next < end && !chunk_prev_inuse(next)) {
				if (prev_free)
					CHECK_FAIL(ck, "free chunks %p and its predecessor are adjacent",
						   (void *)c);
				if (next->prev_size != size)
					CHECK_FAIL(ck, "corrupted size vs. prev_size at %p",
						   (void *)c);
				if (size < UPA_MIN_CHUNK)
					CHECK_FAIL(ck, "free chunk %p too small", (void *)c);
				(*nfree)++;
				*free_bytes += size;
				prev_free = true;
			} else {
				if (size < UPA_MIN_CHUNK &&
				    (current || (char *)next != end - UPA_HEADER))
					CHECK_FAIL(ck, "chunk %p: size %zu below minimum",
						   (void *)c, size);
				prev_free = false;
			}
			c = next;
		}
		sys += h->size;
	}
	if (sys != a->system_mem)
		CHECK_FAIL(ck, "arena %u: system_mem %zu but heaps hold %zu",
			   a->index, a->system_mem, sys);
	return 0;
}

static int check_large_order(struct check *ck, struct upa_chunk *head,
			     struct upa_chunk *c, size_t prev_size)
{
	size_t size = chunk_size(c);

	if (c->bk != head && size > prev_size)
		CHECK_FAIL(ck, "large bin not sorted at %p", (void *)c);
	if (c->bk == head || size != prev_size) {
		/* First of its size: on the skip list. */
		if (!c->fd_nextsize || !c->bk_nextsize ||
		    c->fd_nextsize->bk_nextsize != c ||
		    c->bk_nextsize->fd_nextsize != c)
			CHECK_FAIL(ck, "nextsize links broken at %p", (void *)c);
	} else if (c->fd_nextsize) {
		CHECK_FAIL(ck, "chunk %p: nextsize set but not first of its size",
			   (void *)c);
	}
	return 0;
}

static int check_bins(struct check *ck, struct upa_arena *a,
		      size_t *nfree, size_t *free_bytes)
{
	unsigned int i;

	*nfree = 0;
	*free_bytes = 0;
	for (i = UPA_UNSORTED; i < UPA_NBINS; i++) {
		struct upa_chunk *head = upa_bin_at(a, i), *c;
		size_t prev_size = 0;
		unsigned long n = 0;

		if (head->fd != head &&
		    !(a->binmap[i / 64] & (1ULL << (i % 64))) && i != UPA_UNSORTED)
			CHECK_FAIL(ck, "bin %u non-empty but binmap bit clear", i);
		for (c = head->fd; c != head; c = c->fd) {
			size_t size = chunk_size(c);

			if (++n > WALK_LIMIT)
				CHECK_FAIL(ck, "bin %u: cycle", i);
			if (!chunk_in_arena(a, c) || !chunk_aligned(c))
				CHECK_FAIL(ck, "bin %u: chunk %p outside the arena",
					   i, (void *)c);
			if (c->fd->bk != c || c->bk->fd != c)
				CHECK_FAIL(ck, "bin %u: corrupted double-linked list at %p",
					   i, (void *)c);
			if (chunk_inuse(c))
				CHECK_FAIL(ck, "bin %u: chunk %p is marked in use",
					   i, (void *)c);
			if (i != UPA_UNSORTED && bin_index(size) != i)
				CHECK_FAIL(ck, "bin %u: chunk %p of size %zu belongs in bin %u",
					   i, (void *)c, size, bin_index(size));
			if (i != UPA_UNSORTED && !in_smallbin_range(size) &&
			    check_large_order(ck, head, c, prev_size))
				return -1;
			prev_size = size;
			(*nfree)++;
			*free_bytes += size;
		}
	}
	for (i = 0; i < UPA_NFASTBINS; i++) {
		struct upa_chunk *c = a->fastbins[i];
		unsigned long n = 0;

		while (c) {
			if (++n > WALK_LIMIT)
				CHECK_FAIL(ck, "fast bin %u: cycle", i);
			if (!chunk_aligned(c) || !chunk_in_arena(a, c))
				CHECK_FAIL(ck, "fast bin %u: bad chunk %p", i,
					   (void *)c);
			if (fastbin_index(chunk_size(c)) != i)
				CHECK_FAIL(ck, "fast bin %u: chunk %p has size %zu",
					   i, (void *)c, chunk_size(c));
			if (!chunk_inuse(c))
				CHECK_FAIL(ck, "fast bin %u: chunk %p not marked in use",
					   i, (void *)c);
			c = fastbin_reveal(&c->fd, (uintptr_t)c->fd);
		}
	}
	return 0;
}

static int check_arena(struct check *ck, struct upa_arena *a)
{
	size_t walk_n, walk_bytes, bin_n, bin_bytes;

	if (check_heaps(ck, a, &walk_n, &walk_bytes) ||
	    check_bins(ck, a, &bin_n, &bin_bytes))
		return -1;
	if (walk_n != bin_n || walk_bytes != bin_bytes)
		CHECK_FAIL(ck, "arena %u: %zu free chunks (%zu bytes) in the heap, %zu (%zu bytes) in bins",
			   a->index, walk_n, walk_bytes, bin_n, bin_bytes);
	return 0;
}

static int check_tcache(struct check *ck)
{
	struct upa_tcache *tc = &upa_tc;
	unsigned int i;

	for (i = 0; i < tcache_bins_mapped(tc); i++) {
		struct upa_tcache_entry *e = *tcache_headp(tc, i);
		unsigned int n = 0;

		while (e) {
			struct upa_chunk *c = mem_chunk(e);

			if (++n > tcache_count(tc, i))
				CHECK_FAIL(ck, "tcache bin %u longer than its count %u",
					   i, tcache_count(tc, i));
			if (!chunk_aligned(e) || chunk_size(c) != (i + 2) * 16 ||
			    e->key != upa_tcache_key)
				CHECK_FAIL(ck, "tcache bin %u: bad entry %p", i,
					   (void *)e);
			e = tcache_reveal(&e->next, e->next);
		}
		if (tcache_room(tc, i) > tcache_bin_limit(tc, i) ||
		    n != tcache_count(tc, i))
			CHECK_FAIL(ck, "tcache bin %u: count %u but %u entries",
				   i, tcache_count(tc, i), n);
	}
	return 0;
}

UPA_API int upa_heap_check(void)
{
	struct check ck;
	struct upa_arena *a;
	int err;

	upa_ensure_init();
	err = check_tcache(&ck);
	for (a = upa_arena_list; a && !err;
	     a = __atomic_load_n(&a->next, __ATOMIC_ACQUIRE)) {
		if (a->quarantined)
			continue;
		upa_lock(&a->lock);
		err = check_arena(&ck, a);
		upa_unlock(&a->lock);
	}
	if (err) {
		char buf[256];
		int n = upa_snprintf(buf, sizeof(buf),
				     "upalloc: heap check: %s\n", ck.msg);

		upa_write_all(2, buf, (size_t)n < sizeof(buf) ? (size_t)n
							      : sizeof(buf) - 1);
		return -1;
	}
	return 0;
}
