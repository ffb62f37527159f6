// SPDX-License-Identifier: MIT
/*
 * bins.c: the free lists of an arena.
 *
 *   fast bins   singly linked LIFO lists of small chunks (chunk size <=
 *               upa_mp.max_fast), never coalesced while there, marked in
 *               use; links stored mangled (safe-linking).
 *   bin 1       the unsorted bin: freed and split-off chunks land here and
 *               are sorted into their bins by the next malloc that looks.
 *   bins 2..63  small bins, one exact chunk size each, FIFO.
 *   bins 64..   large bins, size ranges (see bin_index() in internal.h),
 *               sorted by decreasing size; the first chunk of each size is
 *               also on the nextsize skip list (fd_nextsize: next smaller
 *               size, bk_nextsize: next larger, circular), so that a best
 *               fit is found by skipping over runs of equal sizes.
 *   binmap      one bit per bin; set when a chunk is placed in the bin,
 *               cleared lazily when a scan finds the bin empty. So a clear
 *               bit means an empty bin; a set bit means "look".
 *
 * The bin heads are sentinel chunks whose fd/bk close the circular lists;
 * only their fd/bk exist (upa_bin_at() in internal.h); their other fields
 * overlap the neighbouring heads and are never written.
 * All functions run with the arena's lock held.
 */
#include "internal.h"

static inline struct upa_chunk *bin_head(struct upa_arena *a, unsigned int i)
{
	return upa_bin_at(a, i);
}

static inline void binmap_mark(struct upa_arena *a, unsigned int i)
{
	a->binmap[i / 64] |= 1ULL << (i % 64);
}

static inline void binmap_unmark(struct upa_arena *a, unsigned int i)
{
	a->binmap[i / 64] &= ~(1ULL << (i % 64));
}

void upa_bins_init(struct upa_arena *a)
{
	unsigned int i;

	/* <= : the spare head too, so that no head's fd_nextsize is NULL. */
	for (i = 0; i <= UPA_NBINS; i++) {
		struct upa_chunk *h = bin_head(a, i);

		h->fd = h->bk = h;
	}
	for (i = 0; i < UPA_BINMAP_WORDS; i++)
		a->binmap[i] = 0;
	for (i = 0; i < UPA_NFASTBINS; i++)
		a->fastbins[i] = NULL;
	a->have_fastchunks = false;
}

/* Take a free chunk out of its doubly linked bin (any bin). */
void upa_bin_unlink(struct upa_chunk *c)
{
	size_t size = chunk_size(c);
	struct upa_chunk *fd = c->fd, *bk = c->bk;

	UPA_CHECK(chunk_at(c, size)->prev_size == size,
		  "corrupted size vs. prev_size");
	UPA_CHECK(fd->bk == c && bk->fd == c, "corrupted double-linked list");
	fd->bk = bk;
	bk->fd = fd;
	if (in_smallbin_range(size) || !c->fd_nextsize)
		return;
	/* c is the first of its size in a large bin: fix the skip list. */
	UPA_CHECK(c->fd_nextsize->bk_nextsize == c &&
		  c->bk_nextsize->fd_nextsize == c,
		  "corrupted double-linked list (not small)");
	if (!fd->fd_nextsize) {
		/* fd has the same size: it takes c's place. */
		if (c->fd_nextsize == c) {
			fd->fd_nextsize = fd->bk_nextsize = fd;
		} else {
			fd->fd_nextsize = c->fd_nextsize;
			fd->bk_nextsize = c->bk_nextsize;
			c->fd_nextsize->bk_nextsize = fd;
			c->bk_nextsize->fd_nextsize = fd;
		}
	} else {
		c->fd_nextsize->bk_nextsize = c->bk_nextsize;
		c->bk_nextsize->fd_nextsize = c->fd_nextsize;
	}
}

/* msg: the abort message, glibc's for the caller (free or malloc). */
void upa_bin_put_unsorted(struct upa_arena *a, struct upa_chunk *c,
			  const char *msg)
{
	struct upa_chunk *head = bin_head(a, UPA_UNSORTED);
	struct upa_chunk *fwd = head->fd;

	UPA_CHECK(fwd->bk == head, msg);
	if (!in_smallbin_range(chunk_size(c)))
		c->fd_nextsize = c->bk_nextsize = NULL;
	c->fd = fwd;
	c->bk = head;
	head->fd = c;
	fwd->bk = c;
}

/* Sort free chunk c (not in any list) into its small or large bin. */
void upa_bin_place(struct upa_arena *a, struct upa_chunk *c, size_t size)
{
	unsigned int idx = bin_index(size);
	struct upa_chunk *head = bin_head(a, idx);
	struct upa_chunk *fwd, *bck;

	if (in_smallbin_range(size)) {
		bck = head;
		fwd = head->fd;
	} else if (head->fd == head) {
		c->fd_nextsize = c->bk_nextsize = c;
		bck = head;
		fwd = head;
	} else if (size < chunk_size(head->bk)) {
		/* Smaller than all: append, a new smallest size. */
		struct upa_chunk *largest = head->fd;

		fwd = head;
		bck = head->bk;
		c->fd_nextsize = largest;
		c->bk_nextsize = largest->bk_nextsize;
		largest->bk_nextsize = c;
		c->bk_nextsize->fd_nextsize = c;
	} else {
		fwd = head->fd;
		while (size < chunk_size(fwd))
			fwd = fwd->fd_nextsize;
		if (size == chunk_size(fwd)) {
			/* Behind the first of its size: not on the skip list. */
			fwd = fwd->fd;
			c->fd_nextsize = c->bk_nextsize = NULL;
		} else {
			UPA_CHECK(fwd->bk_nextsize->fd_nextsize == fwd,
				  "malloc(): largebin double linked list corrupted (nextsize)");
			c->fd_nextsize = fwd;
			c->bk_nextsize = fwd->bk_nextsize;
			fwd->bk_nextsize = c;
			c->bk_nextsize->fd_nextsize = c;
		}
		bck = fwd->bk;
		UPA_CHECK(bck->fd == fwd,
			  "malloc(): largebin double linked list corrupted (bk)");
	}
	binmap_mark(a, idx);
	c->bk = bck;
	c->fd = fwd;
	fwd->bk = c;
	bck->fd = c;
}

void upa_fastbin_push(struct upa_arena *a, struct upa_chunk *c, size_t size)
{
	unsigned int idx = fastbin_index(size);
	struct upa_chunk *old = a->fastbins[idx];

	/* The cheap double-free check: c is not already the bin's top. */
	UPA_CHECK(old != c, "double free or corruption (fasttop)");
	UPA_CHECK(!old || fastbin_index(chunk_size(old)) == idx,
		  "invalid fastbin entry (free)");
	c->fd = (struct upa_chunk *)fastbin_protect(&c->fd, old);
	/*
	 * The cache key marks it free, as in a thread cache: its second
	 * free, which the cache may take, is looked up here
	 * (upa_free_check_held).
	 */
	c->bk = (struct upa_chunk *)upa_tcache_key;
	a->fastbins[idx] = c;
	a->have_fastchunks = true;
}

struct upa_chunk *upa_fastbin_pop(struct upa_arena *a, unsigned int idx)
{
	struct upa_chunk *c = a->fastbins[idx];

	if (!c)
		return NULL;
	UPA_CHECK(chunk_aligned(c), "malloc(): unaligned fastbin chunk detected");
	UPA_CHECK(fastbin_index(chunk_size(c)) == idx,
		  "malloc(): memory corruption (fast)");
	a->fastbins[idx] = fastbin_reveal(&c->fd, (uintptr_t)c->fd);
	c->bk = NULL;		/* the key: in use again */
	return c;
}

/* The oldest chunk of small bin idx, marked in use; NULL when empty. */
struct upa_chunk *upa_smallbin_pop(struct upa_arena *a, unsigned int idx)
{
	struct upa_chunk *head = bin_head(a, idx);
	struct upa_chunk *c = head->bk, *bck;

	if (c == head)
		return NULL;
	bck = c->bk;
	UPA_CHECK(bck->fd == c && c->fd == head,
		  "malloc(): smallbin double linked list corrupted");
	UPA_CHECK(chunk_at(c, chunk_size(c))->prev_size == chunk_size(c),
		  "corrupted size vs. prev_size");
	head->bk = bck;
	bck->fd = head;
	chunk_set_inuse(c);
	return c;
}

/*
 * Best fit in nb's own large bin: the smallest chunk >= nb, taking the
 * second chunk of a size when there is one (no skip-list surgery).
 * Returned unlinked, still marked free.
 */
struct upa_chunk *upa_largebin_best_fit(struct upa_arena *a, size_t nb)
{
	struct upa_chunk *head = bin_head(a, bin_index(nb));
	struct upa_chunk *c = head->fd;

	if (c == head || chunk_size(c) < nb)
		return NULL;
	c = c->bk_nextsize;		/* the smallest size */
	while (chunk_size(c) < nb)
		c = c->bk_nextsize;	/* next larger size */
	if (c != head->bk && chunk_size(c->fd) == chunk_size(c))
		c = c->fd;
	upa_bin_unlink(c);
	return c;
}

/*
 * The smallest chunk of the first non-empty bin above nb's bin: by the
 * indexing invariant it is larger than nb. Returned unlinked, still free.
 */
struct upa_chunk *upa_binmap_next(struct upa_arena *a, size_t nb)
{
	unsigned int idx = bin_index(nb) + 1;

	while (idx < UPA_NBINS) {
		unsigned int w = idx / 64;
		uint64_t bits = a->binmap[w] & (~0ULL << (idx % 64));
		struct upa_chunk *head, *c;

		if (!bits) {
			idx = (w + 1) * 64;
			continue;
		}
		idx = w * 64 + (unsigned int)__builtin_ctzll(bits);
		head = bin_head(a, idx);
		c = head->bk;
		if (c == head) {
			binmap_unmark(a, idx);	/* lazily cleared */
			idx++;
			continue;
		}
		upa_bin_unlink(c);
		return c;
	}
	return NULL;
}

/*
 * Empty the fast bins: coalesce each chunk with its free neighbours and
 * put the result in the unsorted bin (or into top). Done before serving a
 * large request and before trimming, so that fragments merge.
 */
void upa_consolidate(struct upa_arena *a)
{
	unsigned int i;

	a->have_fastchunks = false;
	for (i = 0; i < UPA_NFASTBINS; i++) {
		struct upa_chunk *c = a->fastbins[i];

		a->fastbins[i] = NULL;
		while (c) {
			struct upa_chunk *next;

			UPA_CHECK(chunk_aligned(c),
				  "malloc_consolidate(): unaligned fastbin chunk detected");
			UPA_CHECK(fastbin_index(chunk_size(c)) == i,
				  "malloc_consolidate(): invalid chunk size");
			next = fastbin_reveal(&c->fd, (uintptr_t)c->fd);
			c->bk = NULL;	/* no stale key inside a merged chunk */
			upa_free_coalesce(a, c, chunk_size(c),
					  "corrupted size vs. prev_size in fastbins");
			c = next;
		}
	}
}

/*
 * malloc_trim(): hand the whole pages inside free chunks back to the page
 * source. The chunk's header and links (the first 48 bytes) and the next
 * chunk's prev_size stay. Returns the number of pages in *pages_out. The
 * decommits are settled before returning: the caller still holds the
 * lock, so none of those pages can be handed out while one is queued.
 */
void upa_bins_decommit(struct upa_arena *a, size_t *pages_out)
{
	unsigned int i;
	size_t pages = 0;

	for (i = UPA_UNSORTED; i < UPA_NBINS; i++) {
		struct upa_chunk *head = bin_head(a, i), *c;

		for (c = head->fd; c != head; c = c->fd) {
			uintptr_t lo = upa_align_up((uintptr_t)c +
						    sizeof(struct upa_chunk),
						    upa_page_size);
			uintptr_t hi = upa_align_down((uintptr_t)c +
						      chunk_size(c),
						      upa_page_size);

			if (hi > lo && !upa_region_decommit((void *)lo, hi - lo)) {
				pages += (hi - lo) / upa_page_size;
				a->st.decommits++;
				a->st.bytes_decommitted += hi - lo;
			}
		}
	}
	if (pages)
		upa_region_settle();
	*pages_out = pages;
}
