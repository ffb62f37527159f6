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
 *   room_ci[0] == room_ci[1] == 0 (no chunk size below 32);
 *   every entry is a 16-aligned chunk of (i + 2) * 16 bytes, in use in its
 *   arena, with key == upa_tcache_key (chunks in fast bins and on remote
 *   lists carry it too: a free of a keyed chunk looks for it there); next
 *   pointers are stored mangled (safe-linking: (address of the field >> 12)
 *   ^ pointer).
 */
#ifndef UPALLOC_TCACHE_H
#define UPALLOC_TCACHE_H

#include "internal.h"

#define UPA_TCACHE_BINS		64	/* in TLS: the inline fast paths */
#define UPA_TCACHE_MAX_REQUEST	1032	/* (64 + 1) * 16 - 8 */
#define UPA_TCACHE_MAX_CHUNK	1040	/* (64 + 1) * 16 */
/*
 * The large bins, chunk sizes 1056..4112 (requests up to 4104), live in
 * struct upa_tcache_large, mapped on the thread's first use of such a
 * size: in TLS they would take 2 KiB, past what glibc can give a library
 * that is dlopen()ed (its static TLS surplus is about 1.6 KiB). They are
 * served by the slow paths before the arena lock, and hold at most
 * UPA_TCACHE_LARGE_BYTES per bin (at least 2 chunks).
 */
#define UPA_TCACHE_LARGE_BINS	192
#define UPA_TCACHE_ALL_BINS	(UPA_TCACHE_BINS + UPA_TCACHE_LARGE_BINS)
#define UPA_TCACHE_ALL_MAX_REQUEST	4104	/* (256 + 1) * 16 - 8 */
#define UPA_TCACHE_LARGE_BYTES	16384

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

/*
 * Per-thread counters, summed over threads by upa_lib_stats(). The malloc
 * fast path counts nothing: its hits are derived (upa_threads_sum) as
 * every chunk put in the cache (FREES + PUSHED) minus every chunk taken
 * out otherwise (POPPED) minus what is cached now.
 */
enum upa_thread_counter {
	UPA_TC_HITS,		/* mallocs served by the cache: derived */
	UPA_TC_FREES,		/* frees absorbed by the cache */
	UPA_TC_SLOW_MALLOCS,	/* allocations past the cache */
	UPA_TC_SLOW_FREES,	/* frees past the cache */
	UPA_TC_PUSHED,		/* chunks cached by the slow paths */
	UPA_TC_POPPED,		/* chunks taken out, not by a malloc hit */
	UPA_TC_COUNTERS,
};

struct upa_tcache_large {
	struct upa_tcache_entry *head[UPA_TCACHE_LARGE_BINS];
	uint16_t room[UPA_TCACHE_LARGE_BINS];
};

struct upa_tcache {
	struct upa_tcache_entry *head[UPA_TCACHE_BINS];
	/*
	 * Free slots per bin. free() indexes them by its chunk's size / 16
	 * (room_ci[idx + 2] is room[idx]), which saves the subtraction; the
	 * two slots below size 32 stay 0, so a corrupt size takes the slow
	 * path, which rejects it.
	 */
	union {
		uint16_t room_ci[UPA_TCACHE_BINS + 2];
		struct {
			uint16_t room_below_min_[2];
			uint16_t room[UPA_TCACHE_BINS];
		};
	};
	uint8_t misses[UPA_TCACHE_BINS];	/* slow mallocs per bin, to 4 */
	unsigned int limit;		/* chunks per bin; 0 until set up */
	unsigned int nbins;		/* bins in use; 0 until set up */
	struct upa_tcache_large *large;	/* NULL: no large bins yet */
	size_t counter[UPA_TC_COUNTERS];
	struct upa_arena *arena;	/* NULL until the first slow path */
	enum upa_thread_state state;
	struct upa_tcache *next, *prev;	/* live threads (upa_global_lock) */
	struct hard_cache *hard;	/* hardened mode's cache, or NULL */
	int hard_inner;			/* in the hardened mode's wrapper */
};

extern __thread struct upa_tcache upa_tc
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

/* Bin of a chunk size; >= UPA_TCACHE_ALL_BINS for sizes past the cache. */
static inline size_t tcache_index(size_t chunk_size)
{
	return (chunk_size >> 4) - 2;
}

/*
 * The chunks bin idx (0..UPA_TCACHE_ALL_BINS-1) may hold under the given
 * limit and number of bins in use: limit up to 1 KiB, fewer above (at
 * most UPA_TCACHE_LARGE_BYTES, at least 2), 0 from nbins on.
 */
static inline unsigned int tcache_limit_of(unsigned int limit,
					   unsigned int nbins,
					   unsigned int idx)
{
	unsigned int cap;

	if (idx >= nbins)
		return 0;
	if (idx < UPA_TCACHE_BINS)
		return limit;
	cap = UPA_TCACHE_LARGE_BYTES / ((idx + 2) * 16);
	if (cap < 2)
		cap = 2;
	return limit < cap ? limit : cap;
}

/* Bins of tc that exist: the large ones too once they are mapped. */
static inline unsigned int tcache_bins_mapped(const struct upa_tcache *tc)
{
	return tc->large ? UPA_TCACHE_ALL_BINS : UPA_TCACHE_BINS;
}

static inline unsigned int tcache_bin_limit(const struct upa_tcache *tc,
					    unsigned int idx)
{
	if (idx >= UPA_TCACHE_BINS && !tc->large)
		return 0;
	return tcache_limit_of(tc->limit, tc->nbins, idx);
}

/* Bin idx's list head and free slots, for any bin (large: tc->large set). */
static inline struct upa_tcache_entry **tcache_headp(struct upa_tcache *tc,
						     size_t idx)
{
	return idx < UPA_TCACHE_BINS ? &tc->head[idx] :
	       &tc->large->head[idx - UPA_TCACHE_BINS];
}

static inline uint16_t *tcache_roomp(struct upa_tcache *tc, size_t idx)
{
	return idx < UPA_TCACHE_BINS ? &tc->room[idx] :
	       &tc->large->room[idx - UPA_TCACHE_BINS];
}

/* Free slots of any bin; 0 for a large bin before tc->large exists. */
static inline unsigned int tcache_room(const struct upa_tcache *tc,
				       size_t idx)
{
	if (idx < UPA_TCACHE_BINS)
		return tc->room[idx];
	if (idx >= UPA_TCACHE_ALL_BINS || !tc->large)
		return 0;
	return tc->large->room[idx - UPA_TCACHE_BINS];
}

/* Chunks cached in bin idx. */
static inline unsigned int tcache_count(const struct upa_tcache *tc,
					unsigned int idx)
{
	return tcache_bin_limit(tc, idx) - tcache_room(tc, idx);
}

/*
 * tcache_index(upa_request_size(n)) for 9 <= n <= UPA_TCACHE_MAX_REQUEST,
 * in two instructions: every 16 bytes of request from 9 start the next bin
 * (9..24 -> 0, 25 -> 1, 41 -> 2, ..., 1032 -> 63). Outside that range the
 * result is >= UPA_TCACHE_BINS (n < 9 wraps around), so one comparison
 * sends both n > 1032 and n < 9 (also bin 0) off the main path.
 */
#define TCACHE_REQUEST_BASE	(UPA_MIN_CHUNK - UPA_WORD - UPA_ALIGN + 1)

static inline size_t tcache_request_index(size_t n)
{
	return (n - TCACHE_REQUEST_BASE) >> 4;
}

/*
 * An empty asm that makes the compiler treat v as computed: the range
 * checks then test the shifted index itself instead of keeping the
 * unshifted value in a second register to compare (one instruction less
 * on each fast path). No instruction of its own.
 */
#define TCACHE_OPAQUE(v)	__asm__("" : "+r"(v))

static inline struct upa_tcache_entry *tcache_reveal(const void *pos,
						     uintptr_t v)
{
	return (struct upa_tcache_entry *)(((uintptr_t)pos >> 12) ^ v);
}

/*
 * Push e on the list at *head whose free slots are *room, and pop from it:
 * the one implementation behind the push and pop of either bin kind.
 */
static inline void tcache_link(struct upa_tcache_entry **head, uint16_t *room,
			       struct upa_tcache_entry *e)
{
	e->next = fastbin_protect(&e->next, *head);
	e->key = upa_tcache_key;
	*head = e;
	(*room)--;
}

static inline struct upa_tcache_entry *
tcache_unlink(struct upa_tcache_entry **head, uint16_t *room)
{
	struct upa_tcache_entry *e = *head;

	UPA_CHECK(chunk_aligned(e), "malloc(): unaligned tcache chunk detected");
	*head = tcache_reveal(&e->next, e->next);
	(*room)++;
	e->key = 0;
	return e;
}

/* Push and pop on a small bin (idx < UPA_TCACHE_BINS): the fast paths. */
static inline void tcache_push(struct upa_tcache *tc, size_t idx,
			       struct upa_tcache_entry *e)
{
	tcache_link(&tc->head[idx], &tc->room[idx], e);
}

static inline struct upa_tcache_entry *tcache_pop(struct upa_tcache *tc,
						  size_t idx)
{
	return tcache_unlink(&tc->head[idx], &tc->room[idx]);
}

/* Push and pop on any bin (the caller knows it has room / an entry). */
static inline void tcache_push_any(struct upa_tcache *tc, size_t idx,
				   struct upa_tcache_entry *e)
{
	tcache_link(tcache_headp(tc, idx), tcache_roomp(tc, idx), e);
}

static inline struct upa_tcache_entry *tcache_pop_any(struct upa_tcache *tc,
						      size_t idx)
{
	return tcache_unlink(tcache_headp(tc, idx), tcache_roomp(tc, idx));
}

/* The slow paths' push and pop: they keep the counts hits derive from. */
static inline void tcache_push_counted(struct upa_tcache *tc, size_t idx,
				       struct upa_tcache_entry *e)
{
	tcache_push_any(tc, idx, e);
	tc->counter[UPA_TC_PUSHED]++;
}

static inline struct upa_tcache_entry *
tcache_pop_counted(struct upa_tcache *tc, size_t idx)
{
	tc->counter[UPA_TC_POPPED]++;
	return tcache_pop_any(tc, idx);
}

/*
 * The hardened mode's entry points take over on the slow paths (in that
 * mode the default cache is off, so every call reaches them), except for
 * the default allocator's own calls from inside them.
 */
static inline bool upa_hard_dispatch(void)
{
	return unlikely(upa_mp.hardened) && !upa_tc.hard_inner;
}

void upa_hard_thread_exit(struct upa_tcache *tc);

static inline void *upa_malloc_inline(size_t n)
{
	struct upa_tcache *tc = &upa_tc;

	size_t idx = tcache_request_index(n);

	TCACHE_OPAQUE(idx);
	if (unlikely(idx >= UPA_TCACHE_BINS)) {
		if (n >= TCACHE_REQUEST_BASE)
			return upa_malloc_slow(n);	/* n > 1032 */
		idx = 0;				/* n < 9 */
	}
	if (likely(tc->head[idx] != NULL))
		return tcache_pop(tc, idx);
	return upa_malloc_slow(n);
}

static inline void upa_free_inline(void *mem)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_chunk *c;
	size_t ci, size, nsize;

	if (unlikely(mem == NULL))
		return;
	c = mem_chunk(mem);
	size = c->size;
	ci = size >> 4;		/* the size / 16: the flags shift out */
	TCACHE_OPAQUE(ci);
	/* Mmapped chunks are >= a page: their ci is never that small. */
	if (likely(ci < UPA_TCACHE_BINS + 2 && tc->room_ci[ci])) {
		struct upa_tcache_entry *e = mem;

		/*
		 * glibc's "(uintptr_t)c <= -size && aligned", for every
		 * size the cache takes at once (a few more pointers at the
		 * very top of the address space fail it; none is valid),
		 * stated on mem: mem below 16 is either NULL or unaligned.
		 */
		UPA_CHECK((uintptr_t)mem <= -(uintptr_t)(UPA_TCACHE_MAX_CHUNK -
							 UPA_HEADER) &&
			  chunk_aligned(mem), "free(): invalid pointer");
		/*
		 * Bit 3 (not a multiple of 16: the shift dropped it) or
		 * IS_MMAPPED (no mmapped chunk is this small): the slow path
		 * aborts on it.
		 */
		if (unlikely(size & (UPA_IS_MMAPPED | 8)))
			return upa_free_slow(mem);
		/*
		 * The successor: its PREV_INUSE is clear when the chunk is
		 * free already, in a bin of its arena (cached, fast-bin and
		 * remote-listed chunks count as in use; those carry the key
		 * instead), and its size is >= 16 and below a heap's reserve
		 * (glibc's "invalid next size", which its cache skips). The
		 * slow path tells which check failed.
		 */
		nsize = chunk_at(c, ci << 4)->size;
		if (unlikely((nsize - (UPA_HEADER | UPA_PREV_INUSE)) &
			     upa_next_size_mask))
			return upa_free_slow(mem);
		/* A tail call: the fast path saves no registers. */
		if (unlikely(e->key == upa_tcache_key))
			return upa_tcache_free_keyed(tc, ci - 2, mem);
		tcache_push(tc, ci - 2, e);
		tc->counter[UPA_TC_FREES]++;
		return;
	}
	upa_free_slow(mem);
}

#endif /* UPALLOC_TCACHE_H */
