// SPDX-License-Identifier: MIT
/*
 * region.c: where chunks get their memory (the role of mimalloc's os.c).
 *
 * Heaps. Every arena, the main one included, lives in heaps: regions of
 * upa_mp.heap_reserve bytes (64 MiB by default, a power of two) reserved
 * at an address aligned to that size, with a header at the start. So the
 * heap of any chunk is its address masked (upa_heap_of), and the arena of a
 * NON_MAIN_ARENA chunk is that heap's header->arena: no table, no lock.
 * The top chunk is always the last chunk of the arena's newest heap and
 * ends exactly at that heap's break; growing the break (the sbrk
 * replacement) grows the top chunk, trimming it shrinks the top chunk.
 * When a heap is full, the arena gets a new one and the old top chunk is
 * freed behind a fence: an in-use chunk plus a 16-byte end marker (size 0,
 * PREV_INUSE) so that nothing ever coalesces past the old heap's end. A
 * newest heap that becomes entirely free is unmapped again (after unlock).
 *
 * Mmapped chunks: large requests get a region of their own; the chunk's
 * prev_size holds its offset from the region start (non-zero only for
 * aligned allocations), and region length == offset + chunk size.
 *
 * Deferred trims (issue 6): with the io_uring path, free()'s automatic trim
 * does not move the break (one SET_BRK each, ~750k system calls per
 * million trimming frees): it lowers h->size only and queues a decommit of
 * [size, old size) on the ring, submitted in batches. The break (h->brk)
 * stays; growing the top again up to it needs no system call either: the
 * pages are reclaimed (a decommit not yet submitted is cancelled, one in
 * flight is waited for). The invariant is stated at struct upa_heap.
 * Statistics: system_mem and the heap map count up to size, as if the
 * break had moved (the pages are given back, only the commit stays); the
 * module's pages_committed keeps counting up to brk until malloc_trim()
 * (which moves every break down to size, exactly as before) or the heap is
 * unmapped; pages_freed/pages_decommitted count the pages once the
 * decommit ran, and reading the module's statistics through the library
 * settles every queued decommit first. malloc_trim() and the mmap backend
 * (or UPALLOC_URING=0, no ring) keep the synchronous break moves.
 */
#include <string.h>

#include "internal.h"
#include "../kmod/uapi/upalloc.h"

static const struct upa_src *src = &upa_src_anon;
size_t upa_heap_mask = ~(UPA_DEFAULT_HEAP_RESERVE - 1);
size_t upa_next_size_mask = ~(UPA_DEFAULT_HEAP_RESERVE - 1) | UPA_PREV_INUSE;

/*
 * The heap map: one bit per heap_reserve-aligned slot of the user address
 * space (2^47 bytes), set while a heap of ours starts there. free() asks
 * it before it reads the header of a chunk's heap (upa_heap_known): a
 * forged chunk's upa_heap_of() is any aligned address, maybe unmapped.
 * Lock-free: set and cleared atomically; mapped (anonymous, touched only
 * where heaps are: 256 KiB of address space for 64 MiB heaps) with the
 * first heap and published once; private memory, so a fork child has its
 * own copy.
 */
uint64_t *upa_heap_map;
unsigned int upa_heap_shift = __builtin_ctzl(UPA_DEFAULT_HEAP_RESERVE);

static int heap_map_set(struct upa_heap *h, bool on)
{
	unsigned int slot_bits = UPA_HEAP_MAP_SPACE_BITS - upa_heap_shift;
	uintptr_t i = (uintptr_t)h >> upa_heap_shift;
	uint64_t *map = __atomic_load_n(&upa_heap_map, __ATOMIC_ACQUIRE);

	if (!map) {
		size_t len = upa_align_up(((size_t)1 << slot_bits) / 8,
					  upa_page_size);
		uint64_t *none = NULL;
		void *p;

		/* Metadata: anonymous memory whatever the backend. */
		if (upa_src_anon_meta_map(len, &p))
			return -ENOMEM;
		map = p;
		if (!__atomic_compare_exchange_n(&upa_heap_map, &none, map,
						 false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE)) {
			upa_src_anon.unmap(map, len);
			map = none;
		}
	}
	if (i >> slot_bits)
		return -ENOMEM;		/* above the map: not a heap for us */
	if (on)
		__atomic_fetch_or(&map[i / 64], 1ULL << (i % 64),
				  __ATOMIC_RELEASE);
	else
		__atomic_fetch_and(&map[i / 64], ~(1ULL << (i % 64)),
				   __ATOMIC_RELEASE);
	return 0;
}

/* Mmapped-chunk accounting; atomics, since no lock covers them. */
static size_t mmapped_chunks, mmapped_bytes;
static size_t max_mmapped_chunks, max_mmapped_bytes;

int upa_region_init(const char **why)
{
	const char *mode = upa_mp.backend;
	int err;

	upa_heap_mask = ~(upa_mp.heap_reserve - 1);
	upa_next_size_mask = upa_heap_mask | UPA_PREV_INUSE;
	upa_heap_shift = (unsigned int)__builtin_ctzl(upa_mp.heap_reserve);
	if (!strcmp(mode, "mmap")) {
		src = &upa_src_anon;
		return 0;
	}
	err = upa_src_dev_open();
	if (!err) {
		src = &upa_src_dev;
		return 0;
	}
	if (!strcmp(mode, "device")) {
		*why = "UPALLOC_BACKEND=device but /dev/upalloc cannot be used";
		return err;
	}
	src = &upa_src_anon;	/* auto: fall back */
	return 0;
}

const char *upa_region_backend_name(void)
{
	return src->name;
}

bool upa_region_is_device(void)
{
	return src->is_device;
}

void upa_region_fork_child(void)
{
	src->fork_child();
}

struct upa_chunk *upa_heap_first_chunk(struct upa_heap *h)
{
	uintptr_t p = (uintptr_t)(h + 1);

	/* The first heap of a non-main arena also holds the arena itself. */
	if (!h->prev && h->arena != &upa_main_arena)
		p += sizeof(struct upa_arena);
	return (struct upa_chunk *)upa_align_up(p, UPA_ALIGN);
}

/* A fresh heap with at least min_size bytes below its break. */
static int heap_new(struct upa_arena *a, size_t min_size,
		    struct upa_heap **out)
{
	size_t reserve = upa_mp.heap_reserve;
	size_t size;
	void *base;
	int err;

	if (min_size > reserve)
		return -E2BIG;
	size = upa_align_up(min_size, upa_page_size);
	err = src->heap_reserve(reserve, &base);
	if (err)
		return err;
	err = src->heap_set_brk(base, reserve, 0, size);
	if (!err)
		err = heap_map_set(base, true);
	if (err) {
		src->heap_release(base, reserve);
		return err;
	}
	*out = base;
	(*out)->arena = a;
	(*out)->prev = NULL;
	(*out)->size = size;
	(*out)->reserve = reserve;
	(*out)->brk = size;
	return 0;
}

/*
 * Heap h's usable end goes up to new_size: move the break if it is below,
 * and reclaim what a deferred trim left between size and brk. Pages of a
 * cancelled decommit keep old bytes: calloc must clear them (zero_from).
 * Arena locked; h is a's newest heap.
 */
static int heap_raise(struct upa_arena *a, struct upa_heap *h,
		      size_t new_size)
{
	size_t kept_end = new_size < h->brk ? new_size : h->brk;
	int err;

	if (new_size > h->brk) {
		err = src->heap_set_brk(h, h->reserve, h->brk, new_size);
		if (err)
			return err;
		h->brk = new_size;
	}
	if (kept_end > h->size &&
	    src->reclaim((char *)h + h->size, kept_end - h->size) &&
	    a->zero_from < (char *)h + kept_end)
		a->zero_from = (char *)h + kept_end;
	return 0;
}

/*
 * Move heap h's break down to new_size (<= size), settling first whatever
 * was queued above it (deferred trims, populate-ahead). Arena locked, or h
 * unreachable by other threads.
 */
static int heap_lower(struct upa_heap *h, size_t new_size)
{
	int err;

	if (new_size >= h->brk)
		return 0;
	src->reclaim((char *)h + new_size, h->brk - new_size);
	err = src->heap_set_brk(h, h->reserve, h->brk, new_size);
	if (!err)
		h->brk = new_size;
	return err;
}

/*
 * Give back the commit that deferred trims kept: every heap of a gets its
 * break moved down to its usable end. True when a break moved.
 */
static bool heaps_lower_kept(struct upa_arena *a)
{
	struct upa_heap *h;
	bool did = false;

	for (h = a->heap; h; h = h->prev) {
		if (h->brk > h->size && !heap_lower(h, h->size))
			did = true;
	}
	return did;
}

/*
 * -ENOMEM from the page source while deferred trims keep commit (the
 * device's limits count every heap up to its break): move down the kept
 * breaks of every arena that can be locked without waiting (the caller
 * may hold one), so that a retry succeeds where it would have without the
 * ring. True when a break moved.
 */
static bool kept_give_back_all(void)
{
	struct upa_arena *a;
	bool did = false;

	for (a = upa_arena_list; a;
	     a = __atomic_load_n(&a->next, __ATOMIC_ACQUIRE)) {
		if (a->quarantined || !upa_lock_try(&a->lock))
			continue;
		if (heaps_lower_kept(a))
			did = true;
		upa_unlock(&a->lock);
	}
	return did;
}

/* Make the rest of heap h, from c on, the arena's top chunk. */
static void top_install(struct upa_arena *a, struct upa_heap *h,
			struct upa_chunk *c, size_t prev_inuse)
{
	size_t size = (size_t)((char *)h + h->size - (char *)c);

	chunk_set_head(c, size | prev_inuse | upa_arena_flag(a));
	arena_set_top(a, c);
	a->heap = h;
	a->zero_from = (char *)chunk_mem(c);
}

int upa_region_new_arena_heap(struct upa_arena **out)
{
	size_t need = sizeof(struct upa_heap) + sizeof(struct upa_arena) +
		      UPA_MIN_CHUNK + upa_mp.top_pad;
	struct upa_heap *h;
	struct upa_arena *a;
	int err;

	err = heap_new(NULL, need, &h);
	if (err == -ENOMEM && kept_give_back_all())
		err = heap_new(NULL, need, &h);
	if (err)
		return err;
	a = (struct upa_arena *)(h + 1);
	h->arena = a;
	upa_arena_init(a, 0);
	top_install(a, h, upa_heap_first_chunk(h), UPA_PREV_INUSE);
	arena_set_system_mem(a, h->size);
	a->max_system_mem = h->size;
	*out = a;
	return 0;
}

/*
 * Close the arena's current heap: its top chunk becomes a free chunk (if
 * big enough) followed by a fence chunk and the end marker.
 */
static void heap_retire_top(struct upa_arena *a)
{
	struct upa_chunk *top = a->top, *fence, *marker;
	size_t ts = chunk_size(top), flag = upa_arena_flag(a);
	char *end = (char *)top + ts;

	marker = (struct upa_chunk *)(end - UPA_HEADER);
	arena_set_top(a, NULL);
	if (ts >= 3 * UPA_HEADER + UPA_MIN_CHUNK) {
		fence = (struct upa_chunk *)(end - 3 * UPA_HEADER);
		chunk_set_head(fence, 2 * UPA_HEADER | UPA_PREV_INUSE | flag);
		marker->prev_size = 2 * UPA_HEADER;
		chunk_set_head(marker, 0 | UPA_PREV_INUSE | flag);
		chunk_set_size(top, ts - 3 * UPA_HEADER);
		upa_free_coalesce(a, top, ts - 3 * UPA_HEADER,
				  "corrupted size vs. prev_size while consolidating");
	} else {
		fence = top;
		chunk_set_size(fence, ts - UPA_HEADER);
		marker->prev_size = ts - UPA_HEADER;
		chunk_set_head(marker, 0 | UPA_PREV_INUSE | flag);
	}
}

/*
 * Populate-ahead (issue 6, 2b): after the break moved up for a request of
 * nb bytes from the top chunk, the pages the top chunk hands out after it
 * (the top_pad slack) are populated in the background, so that the
 * allocations that follow take no first-touch fault. Only pages fresh from
 * the page source (at or above the old break, fresh_from): pages of the
 * kept range were trimmed once already, and populating them again would
 * undo the decommit that a quick regrowth normally cancels. The request's
 * own pages are left to the caller, who touches them at once (populating
 * them in the background would race its faults for the same pages).
 */
static void top_populate_ahead(struct upa_arena *a, size_t nb,
			       char *fresh_from)
{
	char *lo = (char *)upa_align_up((uintptr_t)a->top + nb + UPA_MIN_CHUNK,
					upa_page_size);
	char *hi = (char *)a->heap + a->heap->size;

	if (lo < fresh_from)
		lo = fresh_from;
	if (lo < hi)
		src->populate_ahead(lo, (size_t)(hi - lo));
}

/*
 * Make the top chunk at least nb + UPA_MIN_CHUNK bytes: move the break of
 * the newest heap up (with top_pad to spare), or start a new heap. Called
 * with a's lock held; -ENOMEM when the device or the kernel says no,
 * -E2BIG when nb can never fit a heap (the caller mmaps it instead).
 */
int upa_region_grow_top(struct upa_arena *a, size_t nb)
{
	struct upa_heap *h = a->heap, *nh;
	size_t first_off, need;
	char *fresh_from;
	int err;

	if (h) {
		size_t ts = upa_top_size(a);
		size_t want = nb + UPA_MIN_CHUNK - ts;
		size_t padded = upa_align_up(h->size + want + upa_mp.top_pad,
					     upa_page_size);
		size_t bare = upa_align_up(h->size + want, upa_page_size);
		size_t new_size = padded <= h->reserve ? padded : bare;

		if (new_size <= h->reserve) {
			fresh_from = (char *)h + h->brk;
			err = heap_raise(a, h, new_size);
			if (err == -ENOMEM &&
			    (heaps_lower_kept(a) | kept_give_back_all()))
				err = heap_raise(a, h, new_size);
			if (err && new_size != bare) {
				new_size = bare;
				err = heap_raise(a, h, new_size);
			}
			if (err)
				return err;
			chunk_set_size(a->top, ts + new_size - h->size);
			arena_set_system_mem(a, a->system_mem + new_size -
						 h->size);
			h->size = new_size;
			goto out;
		}
	}

	first_off = upa_align_up(sizeof(struct upa_heap), UPA_ALIGN);
	need = first_off + nb + UPA_MIN_CHUNK;
	if (need > upa_mp.heap_reserve)
		return -E2BIG;
	if (need + upa_mp.top_pad <= upa_mp.heap_reserve)
		need += upa_mp.top_pad;
	err = heap_new(a, need, &nh);
	/* The device's limits count the commit deferred trims kept. */
	if (err == -ENOMEM && (heaps_lower_kept(a) | kept_give_back_all()))
		err = heap_new(a, need, &nh);
	if (err)
		return err;
	nh->prev = h;
	if (h)
		heap_retire_top(a);
	top_install(a, nh, upa_heap_first_chunk(nh), UPA_PREV_INUSE);
	arena_set_system_mem(a, a->system_mem + nh->size);
	fresh_from = (char *)nh;
out:
	if (a->system_mem > a->max_system_mem)
		a->max_system_mem = a->system_mem;
	a->st.heap_grows++;
	top_populate_ahead(a, nb, fresh_from);
	return 0;
}

/* The newest heap is entirely free: unlink it, reopen the older heap. */
static void heap_drop_newest(struct upa_arena *a, struct upa_heap **released)
{
	struct upa_heap *h = a->heap, *ph = h->prev;
	char *pend = (char *)ph + ph->size;
	struct upa_chunk *marker = (struct upa_chunk *)(pend - UPA_HEADER);
	struct upa_chunk *fence, *top;

	/* heap_retire_top() left the fence's size in the marker. */
	fence = (struct upa_chunk *)((char *)marker - marker->prev_size);
	top = fence;
	if (!chunk_prev_inuse(fence)) {
		top = chunk_prev(fence);
		upa_bin_unlink(top);
	}
	arena_set_system_mem(a, a->system_mem - (h->size));
	top_install(a, ph, top, top->size & UPA_PREV_INUSE);
	a->zero_from = pend;
	h->prev = *released;
	*released = h;
}

/*
 * Give memory back: drop entirely free newest heaps, then lower the usable
 * end of the current heap so that the top chunk keeps pad bytes (plus one
 * minimum chunk). With defer (free()'s automatic trim) that is a decommit
 * queued on the ring when there is one, the break staying put; without
 * (malloc_trim), or without a ring, the break moves, and every break that
 * deferred trims kept is moved down too. Called with a's lock held; the
 * dropped heaps are put on *released and must be unmapped with
 * upa_region_release_heaps() after the unlock. Returns true when anything
 * was released.
 */
bool upa_region_trim(struct upa_arena *a, size_t pad,
		     struct upa_heap **released, bool defer)
{
	struct upa_heap *h;
	bool did = false;
	char *keep_end, *end;

	if (!a->top)
		return false;
	while (a->heap->prev && a->top == upa_heap_first_chunk(a->heap)) {
		heap_drop_newest(a, released);
		did = true;
	}
	h = a->heap;
	end = (char *)h + h->size;
	keep_end = (char *)upa_align_up((uintptr_t)a->top + UPA_MIN_CHUNK +
					pad, upa_page_size);
	if (keep_end < end && pad < upa_mp.heap_reserve) {
		size_t new_size = (size_t)(keep_end - (char *)h);

		/*
		 * Deferred, size drops to keep_end: the next trim starts
		 * below the range queued now and queues only what this one
		 * did not (no range is queued twice while pending).
		 */
		if ((defer && !src->trim_deferred(keep_end,
						  (size_t)(end - keep_end))) ||
		    !heap_lower(h, new_size)) {
			chunk_set_size(a->top, chunk_size(a->top) -
					       (h->size - new_size));
			arena_set_system_mem(a, a->system_mem -
						 (h->size - new_size));
			h->size = new_size;
			if (a->zero_from > keep_end)
				a->zero_from = keep_end;
			did = true;
		}
	}
	if (!defer && heaps_lower_kept(a))
		did = true;
	if (did)
		a->st.heap_trims++;
	return did;
}

void upa_region_release_heaps(struct upa_heap *list)
{
	while (list) {
		struct upa_heap *next = list->prev;

		heap_map_set(list, false);
		src->heap_release(list, list->reserve);
		list = next;
	}
}

static void mmapped_count(ssize_t chunks, ssize_t bytes)
{
	size_t n = __atomic_add_fetch(&mmapped_chunks, chunks, __ATOMIC_RELAXED);
	size_t b = __atomic_add_fetch(&mmapped_bytes, bytes, __ATOMIC_RELAXED);

	/* Peaks: racy maxima are fine for statistics. */
	if (n > __atomic_load_n(&max_mmapped_chunks, __ATOMIC_RELAXED))
		__atomic_store_n(&max_mmapped_chunks, n, __ATOMIC_RELAXED);
	if (b > __atomic_load_n(&max_mmapped_bytes, __ATOMIC_RELAXED))
		__atomic_store_n(&max_mmapped_bytes, b, __ATOMIC_RELAXED);
}

/*
 * A region of its own for a chunk of nb bytes whose user memory is aligned
 * to align (16 or a larger power of two). NULL when mapping fails or the
 * mmap_max count is reached, unless force: the heaps could not serve it
 * (M_MMAP_MAX=0 must not make requests larger than a heap impossible).
 */
struct upa_chunk *upa_region_mmap_chunk(size_t nb, size_t align,
					 bool force)
{
	size_t len, offset;
	struct upa_chunk *c;
	void *base;
	char *mem;
	int err;

	if (align < UPA_ALIGN)
		align = UPA_ALIGN;
	if (!force && __atomic_load_n(&mmapped_chunks, __ATOMIC_RELAXED) >=
	    upa_mp.mmap_max)
		return NULL;
	len = nb + UPA_WORD + (align > UPA_ALIGN ? align : 0);
	if (len < nb)
		return NULL;
	len = upa_align_up(len, upa_page_size);
	if (len < nb)
		return NULL;
	err = src->map(len, &base);
	if (err == -ENOMEM && kept_give_back_all())
		err = src->map(len, &base);
	if (err)
		return NULL;
	mem = (char *)upa_align_up((uintptr_t)base + UPA_HEADER, align);
	c = mem_chunk(mem);
	offset = (size_t)((char *)c - (char *)base);
	c->prev_size = offset;
	chunk_set_head(c, (len - offset) | UPA_IS_MMAPPED);
	mmapped_count(1, len);
	return c;
}

static bool mmapped_chunk_ok(const struct upa_chunk *c)
{
	uintptr_t base = (uintptr_t)c - c->prev_size;
	size_t len = c->prev_size + chunk_size(c);

	return ((base | len) & (upa_page_size - 1)) == 0 &&
	       chunk_aligned(chunk_mem(c)) && base <= (uintptr_t)c;
}

void upa_region_munmap_chunk(struct upa_chunk *c)
{
	size_t len = c->prev_size + chunk_size(c);

	UPA_CHECK(mmapped_chunk_ok(c), "munmap_chunk(): invalid pointer");
	src->unmap((char *)c - c->prev_size, len);
	mmapped_count(-1, -(ssize_t)len);
}

/* Resize an mmapped chunk's region to hold nb bytes; NULL if impossible. */
struct upa_chunk *upa_region_remap_chunk(struct upa_chunk *c, size_t nb)
{
	size_t offset = c->prev_size;
	size_t old_len = offset + chunk_size(c);
	size_t new_len = upa_align_up(offset + nb + UPA_WORD, upa_page_size);
	void *base;

	UPA_CHECK(mmapped_chunk_ok(c), "realloc(): invalid pointer");
	if (new_len < nb)
		return NULL;
	if (new_len == old_len)
		return c;
	if (src->resize((char *)c - offset, old_len, new_len, true, &base))
		return NULL;
	c = chunk_at(base, offset);
	chunk_set_head(c, (new_len - offset) | UPA_IS_MMAPPED);
	mmapped_count(0, (ssize_t)new_len - (ssize_t)old_len);
	return c;
}

int upa_region_decommit(void *addr, size_t len)
{
	return src->decommit(addr, len);
}

int upa_region_settle(void)
{
	return src->settle();
}

int upa_region_proc_stats(struct upalloc_proc_stats *st)
{
	return src->proc_stats(st);
}

void upa_region_counts(size_t *chunks, size_t *bytes, size_t *max_chunks,
		       size_t *max_bytes)
{
	*chunks = __atomic_load_n(&mmapped_chunks, __ATOMIC_RELAXED);
	*bytes = __atomic_load_n(&mmapped_bytes, __ATOMIC_RELAXED);
	*max_chunks = __atomic_load_n(&max_mmapped_chunks, __ATOMIC_RELAXED);
	*max_bytes = __atomic_load_n(&max_mmapped_bytes, __ATOMIC_RELAXED);
}
