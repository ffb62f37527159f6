// SPDX-License-Identifier: MIT
/*
 * free.c: free behind the thread cache.
 *
 * Order: NULL; pointer checks; mmapped chunks are unmapped (no lock);
 * the thread cache (inline in tcache.h; here only when the thread was not
 * set up yet); else the chunk's arena, under its lock: small chunks go to
 * a fast bin, others are coalesced with free neighbours on both sides and
 * put in the unsorted bin or merged into the top chunk. Freeing a large
 * amount consolidates the fast bins and may trim the heap; heaps dropped
 * by the trim are unmapped after the unlock. errno is preserved.
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"

/*
 * Coalesce free chunk c of size bytes (not in any list) with its free
 * neighbours, then put it into the unsorted bin or the top chunk. Returns
 * the merged size. Arena locked. prev_msg: the abort message when c's
 * prev_size does not match the chunk before it (glibc's, which name the
 * caller: free or the fast-bin consolidation).
 */
size_t upa_free_coalesce(struct upa_arena *a, struct upa_chunk *c, size_t size,
			 const char *prev_msg)
{
	struct upa_chunk *next = chunk_at(c, size);
	size_t flag = upa_arena_flag(a);

	if (!chunk_prev_inuse(c)) {
		size_t psize = c->prev_size;
		struct upa_chunk *prev = chunk_prev(c);

		UPA_CHECK(chunk_size(prev) == psize, prev_msg);
		upa_bin_unlink(prev);
		c = prev;
		size += psize;
	}
	if (next != a->top) {
		size_t nsize = chunk_size(next);

		if (!chunk_inuse(next)) {
			upa_bin_unlink(next);
			size += nsize;
		} else {
			next->size &= ~UPA_PREV_INUSE;
		}
		chunk_set_head(c, size | UPA_PREV_INUSE | flag);
		chunk_set_foot(c, size);
		upa_bin_put_unsorted(a, c, "free(): corrupted unsorted chunks");
	} else {
		char *old_top_mem = chunk_mem(next);

		size += chunk_size(next);
		chunk_set_head(c, size | UPA_PREV_INUSE | flag);
		arena_set_top(a, c);
		/* Merged bytes are dirty: only what was zero stays zero. */
		if (a->zero_from < old_top_mem)
			a->zero_from = old_top_mem;
	}
	return size;
}

/*
 * What an automatic trim leaves in the top chunk. top_pad, unless the
 * dynamic threshold rose (a large mmapped chunk was freed: the program
 * allocates and frees blocks of that size): then half the trim threshold,
 * i.e. one such block. Trimming to top_pad gave the pages back on one free
 * and faulted them in again (zero-filled) on the next malloc of that size;
 * calloc_blocks spent more system time in those faults than user time.
 * An explicit M_TRIM_THRESHOLD or M_TOP_PAD keeps glibc's rule.
 */
static size_t auto_trim_pad(void)
{
	size_t half = upa_mp.trim_threshold / 2;

	if (upa_mp.no_dyn_threshold || half < upa_mp.top_pad)
		return upa_mp.top_pad;
	return half;
}

/*
 * Back-off for automatic trims that keep being undone. When the heap grew
 * again between a trim and the next occasion to trim (the program's
 * memory use swings by more than the trim threshold: calloc_blocks' large
 * blocks), the trim only cost a system call, a TLB shootdown and the pages
 * faulted in and zeroed again: the next 1, 2, 4 or 8 occasions are let
 * pass. A trim that was not undone halves the back-off. Only the dynamic
 * policy backs off (an explicit M_TRIM_THRESHOLD/M_TOP_PAD keeps glibc's
 * rule), and malloc_trim() always trims.
 */
#define UPA_TRIM_BACKOFF_MAX	8

static bool auto_trim_due(struct upa_arena *a)
{
	if (upa_mp.no_dyn_threshold)
		return true;
	if (!a->trim_judged) {
		a->trim_judged = true;
		if (a->st.heap_grows != a->grows_at_trim) {
			a->trim_backoff = a->trim_backoff ?
					  a->trim_backoff * 2 : 1;
			if (a->trim_backoff > UPA_TRIM_BACKOFF_MAX)
				a->trim_backoff = UPA_TRIM_BACKOFF_MAX;
		} else {
			a->trim_backoff /= 2;
		}
		a->trim_skip = a->trim_backoff;
	}
	if (a->trim_skip) {
		a->trim_skip--;
		return false;
	}
	return true;
}

/*
 * Free heap chunk c into arena a, locked. With released != NULL a large
 * free may also trim the heap; dropped heaps go on *released.
 */
static void int_free(struct upa_arena *a, struct upa_chunk *c,
		     struct upa_heap **released)
{
	size_t size = chunk_size(c), merged;
	struct upa_chunk *next = chunk_at(c, size);
	struct upa_heap *h = upa_heap_of(c);

	a->st.free_slow++;
	if (size <= upa_mp.max_fast) {
		UPA_CHECK(chunk_size(next) >= UPA_HEADER &&
			  chunk_size(next) < a->system_mem,
			  "free(): invalid next size (fast)");
		if (unlikely(upa_mp.perturb))
			memset(chunk_mem(c), upa_mp.perturb, size - UPA_HEADER);
		upa_fastbin_push(a, c, size);
		return;
	}
	UPA_CHECK(c != a->top, "double free or corruption (top)");
	UPA_CHECK((char *)next < (char *)h + h->size && (char *)next > (char *)c,
		  "double free or corruption (out)");
	UPA_CHECK(chunk_prev_inuse(next), "double free or corruption (!prev)");
	UPA_CHECK(chunk_size(next) >= UPA_HEADER &&
		  chunk_size(next) < a->system_mem,
		  "free(): invalid next size (normal)");
	if (unlikely(upa_mp.perturb))
		memset(chunk_mem(c), upa_mp.perturb, size - UPA_HEADER);
	merged = upa_free_coalesce(a, c, size,
				   "corrupted size vs. prev_size while consolidating");
	if (released && merged >= UPA_CONSOLIDATE_THRESHOLD) {
		if (a->have_fastchunks)
			upa_consolidate(a);
		/*
		 * Hysteresis: trim only when at least trim_threshold bytes
		 * would go (the top keeps top_pad), as glibc's heap_trim
		 * does. Trimming whenever the top reached the threshold
		 * released a few pages per large free, which the next malloc
		 * grew back (break churn: a syscall, a TLB shootdown and the
		 * pages faulted and zeroed again, each time).
		 */
		size_t top = upa_top_size(a), keep = upa_mp.top_pad +
						      UPA_MIN_CHUNK;

		if ((top > keep && top - keep >= upa_mp.trim_threshold &&
		     auto_trim_due(a)) ||
		    (a->heap->prev && a->top == upa_heap_first_chunk(a->heap))) {
			upa_region_trim(a, auto_trim_pad(), released, true);
			a->grows_at_trim = a->st.heap_grows;
			a->trim_judged = false;
		}
	}
}

/* For realloc and memalign, inside their locked section: never trims. */
void upa_int_free(struct upa_arena *a, struct upa_chunk *c)
{
	/* Never the program's block: the hardened mode's pattern goes in here. */
	if (unlikely(upa_mp.hardened))
		upa_hard_fill(c);
	int_free(a, c, NULL);
}

/*
 * Free heap chunk c into its arena, together with up to n chunks of the
 * calling thread's cache bin idx when they belong to the same arena, then
 * drain the arena's remote list: one lock round trip for all. Heaps the
 * frees drop are unmapped after the unlock (no syscall holds the lock).
 */
static void free_check_inuse(struct upa_arena *a, struct upa_chunk *c,
			     size_t size);

static void arena_free(struct upa_tcache *tc, struct upa_chunk *c,
		       unsigned int idx, unsigned int n)
{
	struct upa_arena *a = upa_arena_of_checked(c, "free(): invalid pointer");
	struct upa_heap *released = NULL;

	/* Fork child: the arena may be inconsistent; leak, never touch it. */
	if (unlikely(a->quarantined))
		return;
	upa_lock(&a->lock);
	while (n-- && *tcache_headp(tc, idx) &&
	       upa_arena_of_checked(mem_chunk(*tcache_headp(tc, idx)),
				    "free(): invalid pointer") == a)
		int_free(a, mem_chunk(tcache_pop_counted(tc, idx)), &released);
	/* c last: a fast bin's top, where glibc's free would leave it. */
	int_free(a, c, &released);
	upa_remote_drain(a, &released);
	upa_unlock(&a->lock);
	if (released)
		upa_region_release_heaps(released);
}

/*
 * The hardened mode's batch from a full bin of its cache: n heap chunks
 * of the calling thread's own arena (the caller checked), freed already
 * as far as the mode is concerned, into the arena's bins under one lock
 * round trip, each with free_slow's checks of its neighbours.
 */
void upa_free_chunks_mine(struct upa_chunk *const *v, unsigned int n)
{
	struct upa_arena *a = upa_tc.arena;
	struct upa_heap *released = NULL;
	unsigned int i;

	/* Fork child: the arena may be inconsistent; leak, never touch it. */
	if (unlikely(a->quarantined))
		return;
	upa_lock(&a->lock);
	for (i = 0; i < n; i++) {
		free_check_inuse(a, v[i], chunk_size(v[i]));
		int_free(a, v[i], &released);
	}
	upa_remote_drain(a, &released);
	upa_unlock(&a->lock);
	if (released)
		upa_region_release_heaps(released);
}

/* Free a heap chunk into its own arena. */
void upa_free_chunk_any(struct upa_chunk *c)
{
	arena_free(&upa_tc, c, 0, 0);
}

/*
 * Free c, whose thread-cache bin idx is full, together with up to half of
 * that bin's chunks when they belong to the same arena: one lock round
 * trip and one pass through the slow path for a batch, and the bin has
 * room for the next frees: a thread that frees many blocks of one size
 * in a row (a program tearing down a structure) paid the whole slow path
 * per block. (Chunks of other threads' arenas go to their remote lists
 * instead, see below.)
 */
static void free_batch(struct upa_tcache *tc, unsigned int idx,
		       struct upa_chunk *c)
{
	arena_free(tc, c, idx, tcache_bin_limit(tc, idx) / 2);
}

/*
 * Remote frees. A thread that frees chunks of another thread's arena (a
 * consumer freeing what a producer allocated) does not take that arena's
 * lock: it pushes them on the arena's remote list with one CAS, and the
 * owner frees them into its bins in one go the next time it holds its lock
 * anyway (its next slow malloc). Per free, the lock round trip and the
 * contention with the owner's mallocs are gone; the owner's lock and bins
 * stay in its own cache. Whoever pushes the list past UPA_REMOTE_DRAIN
 * chunks drains it itself if the lock is free: an arena whose thread is
 * idle or gone still gets its memory back.
 *
 * Integrity: listed chunks carry upa_tcache_key, like cached ones, so a
 * second free of a listed chunk takes the keyed path
 * (upa_free_check_held), which finds it on the list; the drain aborts on
 * any entry without the key (overwritten after free) or of another arena.
 * Chunks stay "in use" for their arena while listed, like chunks in a
 * thread cache.
 */
#define UPA_REMOTE_DRAIN	256

/*
 * Free every listed chunk of a (locked) into its bins; when a is the
 * calling thread's own arena, the ones its cache has room for go there
 * instead: its next mallocs of those sizes then take no lock and no bin.
 */
void upa_remote_drain(struct upa_arena *a, struct upa_heap **released)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_tcache_entry *e;
	uintptr_t key = upa_tcache_key;
	bool mine = tc->arena == a;
	long n = 0;

	if (!__atomic_load_n(&a->remote, __ATOMIC_RELAXED))
		return;
	e = __atomic_exchange_n(&a->remote, NULL, __ATOMIC_ACQUIRE);
	while (e) {
		struct upa_tcache_entry *next = tcache_reveal(&e->next, e->next);
		struct upa_chunk *c = mem_chunk(e);

		UPA_CHECK(chunk_aligned(e) && e->key == key,
			  "free(): double free detected (remote list)");
		/* Listed chunks were checked when freed: the key is enough. */
		UPA_CHECK(!chunk_is_mmapped(c) && upa_arena_of(c) == a,
			  "free(): corrupted remote list");
		e->key = 0;
		if (mine) {
			size_t idx = tcache_index(chunk_size(c));

			if (idx < UPA_TCACHE_BINS && tc->room[idx])
				tcache_push_counted(tc, idx, e);
			else
				int_free(a, c, released);
		} else {
			int_free(a, c, released);
		}
		e = next;
		n++;
	}
	__atomic_sub_fetch(&a->remote_count, n, __ATOMIC_RELAXED);
}

/*
 * A thread that frees much more than it allocates (a consumer) fills its
 * cache with other threads' chunks that it never reuses: resident memory
 * stranded there (up to limit x 64 bins per thread). Such a thread keeps
 * a small cache, and gets the full one back once it allocates as well.
 */
#define UPA_REMOTE_FREER_LIMIT	4

static void remote_freer_adapt(struct upa_tcache *tc)
{
	/*
	 * Cache hits are not counted: what went in, did not go out otherwise
	 * and is not cached now (as upa_threads_sum derives them). Exact: an
	 * estimate counting the cached chunks as hits switched only after
	 * the caches had filled, and the peak RSS with them.
	 */
	size_t in = tc->counter[UPA_TC_FREES] + tc->counter[UPA_TC_PUSHED];
	size_t out = tc->counter[UPA_TC_POPPED], allocs;
	unsigned int i;

	for (i = 0; i < tcache_bins_mapped(tc); i++)
		out += tcache_count(tc, i);
	allocs = (in > out ? in - out : 0) + tc->counter[UPA_TC_SLOW_MALLOCS];
	size_t frees = tc->counter[UPA_TC_FREES] +
		       tc->counter[UPA_TC_SLOW_FREES];
	unsigned int full = upa_mp.tcache_count, want = full;

	if (allocs * 4 < frees && full > UPA_REMOTE_FREER_LIMIT)
		want = UPA_REMOTE_FREER_LIMIT;
	if (tc->limit != want)
		upa_tcache_set_limits(tc, want, tc->nbins);
}

/*
 * Free c, a chunk of arena a (not the thread's own), onto a's remote list;
 * when the cache bin idx is full, up to half of its chunks of arena a go
 * with it (the consumer's cache would otherwise stay full of them).
 */
static void remote_free(struct upa_tcache *tc, struct upa_arena *a,
			struct upa_chunk *c, size_t idx)
{
	struct upa_tcache_entry *first = chunk_mem(c), *last = first, *e;
	uintptr_t key = upa_tcache_key;
	struct upa_heap *released = NULL;
	long n = 1, count;
	void *head;

	/*
	 * Nothing to adapt with no cache at all, now or wanted (count 0:
	 * the hardened mode's case, where every remote free comes here).
	 */
	if (idx < UPA_TCACHE_BINS && !tc->room[idx] &&
	    (upa_mp.tcache_count | tc->limit))
		remote_freer_adapt(tc);
	first->key = key;
	if (idx < UPA_TCACHE_BINS && !tc->room[idx] && tc->limit >= 2) {
		/*
		 * A remote freer (small limit) sends a's chunks of every bin
		 * along: its cache then holds little of others' memory, and
		 * the owner still gets them in batches.
		 */
		bool all = tc->limit <= UPA_REMOTE_FREER_LIMIT;
		size_t i = all ? 0 : idx, end = all ? UPA_TCACHE_BINS : idx + 1;

		for (; i < end; i++) {
			unsigned int k = all ? tc->limit : tc->limit / 2;

			while (k-- && tc->head[i] &&
			       upa_arena_of_checked(mem_chunk(tc->head[i]),
						    "free(): invalid pointer") == a) {
				e = tcache_pop_counted(tc, i);
				e->key = key;
				last->next = fastbin_protect(&last->next, e);
				last = e;
				n++;
			}
		}
	}
	head = __atomic_load_n(&a->remote, __ATOMIC_RELAXED);
	do {
		last->next = fastbin_protect(&last->next, head);
	} while (!__atomic_compare_exchange_n(&a->remote, &head, first, true,
					      __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	count = __atomic_add_fetch(&a->remote_count, n, __ATOMIC_RELAXED);
	if (count >= UPA_REMOTE_DRAIN && upa_lock_try(&a->lock)) {
		upa_remote_drain(a, &released);
		upa_unlock(&a->lock);
		if (released)
			upa_region_release_heaps(released);
	}
}

/* Mmapped chunk: update the dynamic thresholds, unmap (no lock held). */
static void free_mmapped(struct upa_chunk *c)
{
	size_t size = chunk_size(c);

	if (!upa_mp.no_dyn_threshold && size > upa_mp.mmap_threshold &&
	    size <= UPA_MAX_MMAP_THRESHOLD) {
		/* glibc's rule: such sizes were worth keeping on the heap. */
		upa_mp.mmap_threshold = size;
		upa_mp.trim_threshold = 2 * size;
	}
	upa_region_munmap_chunk(c);
}

/*
 * glibc's checks of a heap chunk on free, made here for every size (the
 * thread cache takes chunks glibc's arena would see): not the top chunk,
 * the successor inside the heap, marked in use by it (cached, fast-bin
 * and remote-listed chunks count as in use), its size sane. Read without
 * the arena lock: none of these words changes while the chunk is in use
 * (system_mem only bounds a sanity check).
 */
static void free_check_inuse(struct upa_arena *a, struct upa_chunk *c,
			     size_t size)
{
	struct upa_heap *h = upa_heap_of(c);
	struct upa_chunk *next = chunk_at(c, size);

	UPA_CHECK(c != __atomic_load_n(&a->top, __ATOMIC_RELAXED),
		  "double free or corruption (top)");
	UPA_CHECK((char *)next < (char *)h + h->size && (char *)next > (char *)c,
		  "double free or corruption (out)");
	UPA_CHECK(chunk_prev_inuse(next), "double free or corruption (!prev)");
	if (chunk_size(next) < UPA_HEADER ||
	    chunk_size(next) >= __atomic_load_n(&a->system_mem,
						__ATOMIC_RELAXED))
		upa_fatal(size <= upa_mp.max_fast ?
			  "free(): invalid next size (fast)" :
			  "free(): invalid next size (normal)");
}

/*
 * free() of a chunk whose user data carry upa_tcache_key: it was freed
 * already and is held where that key marks chunks (this thread's cache, a
 * fast bin, its arena's remote list), or its data hold the key by chance
 * (then it is not found and the free proceeds). Chunks elsewhere in the
 * arena are free (their successor's PREV_INUSE is clear, checked before).
 * Aborts when found; takes the arena lock for the walks (no lock held by
 * the caller). Only keyed frees pay for it.
 */
/* Walks of a list a program may have rewritten into a cycle end here. */
#define HELD_WALK_LIMIT		(1UL << 26)

void upa_free_check_held(struct upa_tcache *tc, struct upa_chunk *c)
{
	size_t size = chunk_size(c), idx = tcache_index(size);
	void *mem = chunk_mem(c);
	struct upa_tcache_entry *e;
	struct upa_arena *a;
	unsigned long n = 0;

	if (idx < tcache_bins_mapped(tc))
		upa_tcache_double_free_scan(tc, (unsigned int)idx, mem);
	a = upa_arena_of_checked(c, "free(): invalid pointer");
	if (a->quarantined)
		return;
	upa_lock(&a->lock);
	/* Pushers only prepend: the list below the head read is stable. */
	for (e = __atomic_load_n(&a->remote, __ATOMIC_ACQUIRE); e;
	     e = tcache_reveal(&e->next, e->next)) {
		UPA_CHECK(e != mem, "free(): double free detected (remote list)");
		UPA_CHECK(chunk_aligned(e) && ++n < HELD_WALK_LIMIT,
			  "free(): corrupted remote list");
	}
	if (fastbin_index(size) < UPA_NFASTBINS) {
		struct upa_chunk *f = a->fastbins[fastbin_index(size)];

		UPA_CHECK(f != c, "double free or corruption (fasttop)");
		for (n = 0; f; f = fastbin_reveal(&f->fd, (uintptr_t)f->fd)) {
			UPA_CHECK(f != c, "free(): double free detected in fast bin");
			UPA_CHECK(chunk_aligned(f),
				  "malloc(): unaligned fastbin chunk detected");
			UPA_CHECK(++n < HELD_WALK_LIMIT,
				  "free(): too many chunks detected in fast bin");
		}
	}
	upa_unlock(&a->lock);
}

static __attribute__((noinline)) void free_slow(void *mem)
{
	struct upa_tcache *tc = &upa_tc;
	int saved_errno = errno;
	struct upa_chunk *c;
	size_t size;

	if (!mem)
		return;
	c = mem_chunk(mem);
	size = chunk_size(c);
	UPA_CHECK((uintptr_t)c <= -size && chunk_aligned(c),
		  "free(): invalid pointer");
	if (chunk_is_mmapped(c)) {
		tc->counter[UPA_TC_SLOW_FREES]++;
		free_mmapped(c);
		errno = saved_errno;
		return;
	}
	UPA_CHECK(size >= UPA_MIN_CHUNK && size % UPA_ALIGN == 0,
		  "free(): invalid size");
	free_check_inuse(upa_arena_of_checked(c, "free(): invalid pointer"), c,
			 size);
	if (unlikely(((struct upa_tcache_entry *)mem)->key == upa_tcache_key))
		upa_free_check_held(tc, c);
	if (unlikely(tc->state == UPA_THREAD_NEW)) {
		unsigned int idx = tcache_index(size);

		upa_thread_setup(tc);
		if (idx < UPA_TCACHE_BINS && tc->room[idx]) {
			struct upa_tcache_entry *e = mem;

			tcache_push(tc, idx, e);
			tc->counter[UPA_TC_FREES]++;
			return;
		}
	}
	/* 1056..4112 bytes: the large cache bins, as the fast path would. */
	if (size > UPA_TCACHE_MAX_CHUNK && upa_tcache_large_free(tc, c, size)) {
		errno = saved_errno;
		return;
	}
	/* Past the cache (a free it took counts in FREES instead). */
	tc->counter[UPA_TC_SLOW_FREES]++;
	{
		struct upa_arena *a = upa_arena_of(c);
		size_t idx = tcache_index(size);

		if (a != tc->arena && tc->state == UPA_THREAD_LIVE &&
		    !a->quarantined)
			remote_free(tc, a, c, idx);
		else if (idx < UPA_TCACHE_ALL_BINS &&
			 tcache_bin_limit(tc, idx) >= 2 && !tcache_room(tc, idx))
			free_batch(tc, idx, c);
		else
			upa_free_chunk_any(c);
	}
	errno = saved_errno;
}

/*
 * The hardened mode's dispatch first, before free_slow's prologue (it
 * saves every register it uses, and reads errno): in that mode every
 * free comes here, and most never need more than upa_hard_free's cache.
 */
__attribute__((noinline)) void upa_free_slow(void *mem)
{
	if (upa_hard_dispatch() && mem)
		return upa_hard_free(mem);
	free_slow(mem);
}

UPA_API void upa_free(void *mem)
{
	upa_free_inline(mem);
}

/*
 * malloc_trim(pad): consolidate, give every arena's top back down to pad
 * bytes (dropping free heaps), and decommit the whole pages inside free
 * chunks. Returns 1 when any memory went back to the page source.
 */
UPA_API int upa_malloc_trim(size_t pad)
{
	struct upa_arena *a;
	int released_any = 0;

	upa_ensure_init();
	for (a = upa_arena_list; a;
	     a = __atomic_load_n(&a->next, __ATOMIC_ACQUIRE)) {
		struct upa_heap *released = NULL;
		size_t pages = 0;

		if (a->quarantined)
			continue;
		upa_lock(&a->lock);
		upa_remote_drain(a, &released);
		upa_consolidate(a);
		if (upa_region_trim(a, pad, &released, false))
			released_any = 1;
		upa_bins_decommit(a, &pages);
		upa_unlock(&a->lock);
		if (released)
			upa_region_release_heaps(released);
		if (pages)
			released_any = 1;
	}
	return released_any;
}
