/* SPDX-License-Identifier: MIT */
/*
 * internal.h: what the library's files share, grouped by the file that
 * defines it. Everything here has hidden visibility.
 */
#ifndef UPALLOC_INTERNAL_H
#define UPALLOC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "glue.h"
#include "chunk.h"
#include "src.h"
#include "include/upalloc.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------------ */
/* options.c: the tunables, one table, from mallopt() and UPALLOC_<NAME> */

#define UPA_DEFAULT_MXFAST		128
#define UPA_MAX_MXFAST			160
#define UPA_DEFAULT_MMAP_THRESHOLD	(128 * 1024UL)
#define UPA_MAX_MMAP_THRESHOLD		(32 * 1024 * 1024UL)
#define UPA_DEFAULT_TRIM_THRESHOLD	(128 * 1024UL)
#define UPA_DEFAULT_TOP_PAD		(128 * 1024UL)
#define UPA_DEFAULT_MMAP_MAX		65536
#define UPA_DEFAULT_HEAP_RESERVE	(64 * 1024 * 1024UL)
#define UPA_DEFAULT_TCACHE_COUNT	32
#define UPA_DEFAULT_TCACHE_MAX		4104
#define UPA_DEFAULT_ARENA_TEST		8

/*
 * The live parameters. Written under upa_global_lock (mallopt, init, the
 * dynamic mmap threshold), read without a lock: a stale value only changes
 * a policy decision, never correctness.
 */
struct upa_params {
	size_t max_fast;		/* largest fast-bin chunk size */
	size_t trim_threshold;
	size_t top_pad;
	size_t mmap_threshold;
	size_t mmap_max;		/* mmapped chunks at most */
	size_t arena_max;		/* 0: 8 x CPUs */
	size_t arena_test;
	size_t heap_reserve;		/* fixed after init: power of two */
	int perturb;			/* 0 or the fill byte */
	unsigned int tcache_count;	/* per bin */
	unsigned int tcache_bins;	/* bins in use */
	unsigned int hard_cache_count;	/* hardened mode: its cache's count */
	bool hardened;			/* UPALLOC_HARDENED: hardened.c */
	bool no_dyn_threshold;		/* user set an mmap/trim option */
	bool print_stats;		/* UPALLOC_STATS=1: print at exit */
	char backend[8];		/* "auto", "device" or "mmap" */
};

extern struct upa_params upa_mp;

void upa_options_init(void);
/* mallopt(): 1 on success, 0 on a bad parameter or value */
int upa_option_set(int param, int value);
/* The environment variable's value, from environ directly, or NULL. */
const char *upa_getenv(const char *name);

/* ------------------------------------------------------------------ */
/* init.c: lazy, reentrancy-safe initialisation */

extern int upa_initialized;
void upa_init_slow(void);

static inline void upa_ensure_init(void)
{
	if (unlikely(!__atomic_load_n(&upa_initialized, __ATOMIC_ACQUIRE)))
		upa_init_slow();
}

extern uintptr_t upa_tcache_key;	/* random, marks thread-cache entries */
extern struct upa_lock upa_global_lock;	/* options, arena list, threads */

/* ------------------------------------------------------------------ */
/* bins.c: fast bins, unsorted, small and large bins, the binmap */

#define UPA_NFASTBINS		10	/* chunk sizes 32..176 */
/* Large bins per power of two: 1 << UPA_LARGE_SUB_BITS. */
#ifndef UPA_LARGE_SUB_BITS
#define UPA_LARGE_SUB_BITS	4
#endif
#define UPA_LARGE_SUB		(1U << UPA_LARGE_SUB_BITS)
/* small bins, then UPA_LARGE_SUB bins for each of 16 powers of two */
#define UPA_NBINS		(64 + 16 * UPA_LARGE_SUB)
#define UPA_UNSORTED		1
#define UPA_NSMALLBINS		64	/* bins 2..63: chunk sizes 32..1008 */
#define UPA_MIN_LARGE_SIZE	(UPA_NSMALLBINS * UPA_ALIGN)
#define UPA_BINMAP_WORDS	((UPA_NBINS + 63) / 64)
/* Freed chunks this large trigger fast-bin consolidation (as glibc). */
#define UPA_CONSOLIDATE_THRESHOLD	(64 * 1024UL)

static inline unsigned int fastbin_index(size_t sz)
{
	return (unsigned int)(sz >> 4) - 2;
}

static inline bool in_smallbin_range(size_t sz)
{
	return sz < UPA_MIN_LARGE_SIZE;
}

/*
 * Bin indexing invariant: bin_index() is monotonic in the chunk size, so
 * every chunk in bin j > i is larger than every chunk in bin i (the binmap
 * scan for "the next non-empty bin" then finds a chunk that fits).
 *   small: size < 1024, bin = size / 16 (one exact size per bin, 2..63);
 *   large: size >= 1024, UPA_LARGE_SUB (16) bins per power of two: for
 *          2^k <= size < 2^(k+1), bin = 64 + 16 (k - 10) + the next four
 *          bits of size, up to the last bin, which also holds everything
 *          >= 2^26 (64 MiB). Narrow bins keep the sorted walks short
 *          (bin_place, best fit): a 16 KiB..32 KiB bin spans 1 KiB, 64
 *          sizes, where four bins per power of two left 256.
 */
static inline unsigned int bin_index(size_t sz)
{
	unsigned int k, idx;

	if (in_smallbin_range(sz))
		return (unsigned int)(sz >> 4);
	k = 63 - (unsigned int)__builtin_clzl(sz);
	idx = 64 + UPA_LARGE_SUB * (k - 10) +
	      (unsigned int)((sz >> (k - UPA_LARGE_SUB_BITS)) &
			     (UPA_LARGE_SUB - 1));
	return idx < UPA_NBINS ? idx : UPA_NBINS - 1;
}

struct upa_arena;
void upa_bins_init(struct upa_arena *a);
void upa_bin_unlink(struct upa_chunk *c);
void upa_bin_put_unsorted(struct upa_arena *a, struct upa_chunk *c,
			  const char *msg);
void upa_bin_place(struct upa_arena *a, struct upa_chunk *c, size_t size);
void upa_fastbin_push(struct upa_arena *a, struct upa_chunk *c, size_t size);
struct upa_chunk *upa_fastbin_pop(struct upa_arena *a, unsigned int idx);
struct upa_chunk *upa_smallbin_pop(struct upa_arena *a, unsigned int idx);
struct upa_chunk *upa_largebin_best_fit(struct upa_arena *a, size_t nb);
struct upa_chunk *upa_binmap_next(struct upa_arena *a, size_t nb);
void upa_consolidate(struct upa_arena *a);
void upa_bins_decommit(struct upa_arena *a, size_t *pages_out);

static inline struct upa_chunk *fastbin_reveal(const void *pos, uintptr_t v)
{
	return (struct upa_chunk *)(((uintptr_t)pos >> 12) ^ v);
}

static inline uintptr_t fastbin_protect(const void *pos, const void *ptr)
{
	return ((uintptr_t)pos >> 12) ^ (uintptr_t)ptr;
}

/* ------------------------------------------------------------------ */
/* region.c: heaps (the sbrk replacement), the top chunk, mmapped chunks */

/*
 * A heap: a region reserved with length == alignment == upa_mp.heap_reserve,
 * so that upa_heap_of(chunk) is one mask. The header sits at the start;
 * the first heap of a non-main arena holds the arena struct right after it.
 *
 * Invariants (upa_heap_check): (uintptr_t)heap % reserve == 0;
 * first chunk .. top (newest heap) or the end marker (older heaps) tile
 * [upa_heap_first_chunk(h), h + size) exactly; size % page == 0;
 * arena->system_mem == sum over the arena's heaps of size.
 * Older heaps end with fence (16 or 32 bytes, in use) + end marker
 * (16 bytes, size 0 | PREV_INUSE) so that no chunk merges past the end.
 *
 * Deferred trims (region.c): size is where the heap's chunks end, brk the
 * page source's break; size <= brk <= reserve, brk % page == 0. When
 * brk > size, a free() trimmed [size, brk) by a decommit queued on the
 * ring (maybe still pending) and left the break where it was. Invariant:
 * no byte at or above (char *)h + size is handed out, written, unmapped or
 * left above a lowered break before src->reclaim() covered it (the
 * decommit completed, or was cancelled for the pages reused). The top
 * chunk ends at size, so only the break moves of region.c (grow_top,
 * trim, release) cross it.
 */
struct upa_heap {
	struct upa_arena *arena;
	struct upa_heap *prev;		/* older heap of the same arena */
	size_t size;			/* the usable end, from the heap start */
	size_t reserve;			/* reserved and aligned length */
	size_t brk;			/* the page source's break >= size */
	/*
	 * A cache line of its own: every free of a NON_MAIN_ARENA chunk reads
	 * ->arena, from any thread, and the arena struct that follows in a
	 * first heap is written by its owner under the lock all the time.
	 */
} __attribute__((aligned(64)));

extern size_t upa_heap_mask;		/* ~(heap_reserve - 1), fixed at init */
/*
 * upa_heap_mask | PREV_INUSE: for a chunk's successor's size word s,
 * ((s - 17) & upa_next_size_mask) == 0 exactly when PREV_INUSE is set
 * and 16 <= size < reserve + 16 (s - 17 is even only with PREV_INUSE,
 * and wraps around below 17): the fast path's one test of both.
 */
extern size_t upa_next_size_mask;

static inline struct upa_heap *upa_heap_of(const void *p)
{
	return (struct upa_heap *)((uintptr_t)p & upa_heap_mask);
}

/*
 * region.c's heap map: bit (address >> upa_heap_shift) set for our heaps,
 * covering the user address space below 2^UPA_HEAP_MAP_SPACE_BITS.
 */
#define UPA_HEAP_MAP_SPACE_BITS	47
extern uint64_t *upa_heap_map;
extern unsigned int upa_heap_shift;

/* Is h (an aligned address) a heap of ours? Lock-free, reads no header. */
static inline bool upa_heap_known(const struct upa_heap *h)
{
	uintptr_t i = (uintptr_t)h >> upa_heap_shift;
	const uint64_t *map = __atomic_load_n(&upa_heap_map, __ATOMIC_ACQUIRE);

	return map && !(i >> (UPA_HEAP_MAP_SPACE_BITS - upa_heap_shift)) &&
	       (__atomic_load_n(&map[i / 64], __ATOMIC_ACQUIRE) >> (i % 64) & 1);
}

struct upa_chunk *upa_heap_first_chunk(struct upa_heap *h);
int upa_region_init(const char **why);
const char *upa_region_backend_name(void);
bool upa_region_is_device(void);
int upa_region_new_arena_heap(struct upa_arena **out);
int upa_region_grow_top(struct upa_arena *a, size_t nb);
bool upa_region_trim(struct upa_arena *a, size_t pad,
		     struct upa_heap **released, bool defer);
void upa_region_release_heaps(struct upa_heap *list);
struct upa_chunk *upa_region_mmap_chunk(size_t nb, size_t align, bool force);
void upa_region_munmap_chunk(struct upa_chunk *c);
struct upa_chunk *upa_region_remap_chunk(struct upa_chunk *c, size_t nb);
int upa_region_decommit(void *addr, size_t len);
int upa_region_settle(void);
int upa_region_proc_stats(struct upalloc_proc_stats *st);
void upa_region_fork_child(void);
void upa_region_counts(size_t *chunks, size_t *bytes, size_t *max_chunks,
		       size_t *max_bytes);


/* ------------------------------------------------------------------ */
/* arena.c: arenas, their locks, the thread -> arena choice, fork */

/* Counters kept per arena, under its lock. */
struct upa_arena_stats {
	size_t malloc_slow;
	size_t free_slow;
	size_t fastbin_hits;
	size_t smallbin_hits;
	size_t unsorted_hits;
	size_t largebin_hits;
	size_t top_splits;
	size_t heap_grows;
	size_t heap_trims;
	size_t decommits;
	size_t bytes_decommitted;
};

/*
 * An arena: a lock, its bins, its heaps and top chunk.
 *
 * Invariants (upa_heap_check): bins[i] is a circular doubly linked list of
 * free chunks whose bin_index() is i (small bins: exactly one size; large
 * bins: sorted by decreasing size, the first chunk of each size linked by
 * the nextsize skip list); binmap bit i clear => bins[i] empty; fastbins[i]
 * holds chunks of exactly (i + 2) * 16 bytes marked in use;
 * sum(in-use) + sum(free in bins) + top + fences == system_mem - headers.
 * A quarantined arena (fork child: it was locked at the fork instant, by a
 * thread that does not exist in the child) is never read or written again.
 */
struct upa_arena {
	struct upa_lock lock;
	bool have_fastchunks;
	unsigned int index;
	unsigned int attached;		/* threads using it (global lock) */
	struct upa_chunk *top;		/* NULL until the first heap */
	struct upa_chunk *last_remainder;
	char *zero_from;		/* top bytes at/above are known zero */
	struct upa_heap *heap;		/* newest heap: holds top */
	size_t system_mem;		/* sum of heap breaks */
	size_t max_system_mem;
	/* Automatic trim back-off (free.c auto_trim_due), under the lock. */
	size_t grows_at_trim;		/* st.heap_grows after the last trim */
	unsigned int trim_backoff;	/* occasions to let pass, 0..8 */
	unsigned int trim_skip;		/* of which still to pass */
	bool trim_judged;		/* last trim's effect seen already */
	size_t grows_at_give_back;	/* malloc.c cache_give_back() */
	struct upa_arena *next;		/* list of all arenas */
	uint64_t binmap[UPA_BINMAP_WORDS];
	struct upa_chunk *fastbins[UPA_NFASTBINS];
	struct upa_arena_stats st;
	/*
	 * List heads, fd and bk only (as glibc): upa_bin_at(a, i) is a
	 * chunk pointer 16 bytes before bins[2 * i], so its fd/bk are
	 * bins[2i], bins[2i + 1]; its prev_size/size (the previous head's
	 * links) are never read or written; its fd_nextsize is the next
	 * head's fd, never NULL (upa_bin_unlink() tests the fd_nextsize of
	 * a chunk that may be a head), hence one spare head after the
	 * last. A third of the size of whole chunks as heads: the main
	 * arena is static data, written whole at init (two pages fewer),
	 * and every other arena sits in its first heap.
	 */
	struct upa_chunk *bins[2 * (UPA_NBINS + 1)];
	/*
	 * Remote frees (free.c): chunks of this arena freed by threads that
	 * use another arena, pushed without the lock (one CAS per batch) and
	 * freed into the bins by whoever next holds the lock and drains the
	 * list. A stack of user-data entries (struct upa_tcache_entry: next
	 * mangled as in the thread cache, key = upa_tcache_key); only
	 * emptied whole (exchange), so no ABA. remote_count: chunks pushed
	 * minus chunks drained, approximate (a trigger, never a bound).
	 * Last, kilobytes away from the lock: the pushers' CAS must not
	 * bounce the cache line of the lock the owner takes and releases on
	 * every slow malloc (it did: 85 % of the owner's lock/unlock samples).
	 * quarantined is here too: remote frees read it, the owner rarely.
	 */
	void *remote;
	long remote_count;
	bool quarantined;
};

/*
 * a->top and a->system_mem change under the arena lock but are also read
 * without it, atomically, by free's and realloc's lockless checks: the
 * writers store atomically too (relaxed: a plain move on x86), so the
 * reader sees the old or the new word, never a torn one, and the C memory
 * model (and TSan) agree.
 */
static inline void arena_set_top(struct upa_arena *a, struct upa_chunk *c)
{
	__atomic_store_n(&a->top, c, __ATOMIC_RELAXED);
}

static inline void arena_set_system_mem(struct upa_arena *a, size_t bytes)
{
	__atomic_store_n(&a->system_mem, bytes, __ATOMIC_RELAXED);
}

extern struct upa_arena upa_main_arena;

/* The head of bin i (0 <= i <= UPA_NBINS; UPA_NBINS: the spare). */
static inline struct upa_chunk *upa_bin_at(struct upa_arena *a,
					   unsigned int i)
{
	return (struct upa_chunk *)((char *)&a->bins[2 * i] -
				    offsetof(struct upa_chunk, fd));
}

/* The NON_MAIN_ARENA bit every chunk of arena a carries. */
static inline size_t upa_arena_flag(const struct upa_arena *a)
{
	return a == &upa_main_arena ? 0 : UPA_NON_MAIN_ARENA;
}

static inline size_t upa_top_size(const struct upa_arena *a)
{
	return a->top ? chunk_size(a->top) : 0;
}

extern struct upa_arena *upa_arena_list;	/* main first */
extern unsigned int upa_narenas;

struct upa_tcache;
void upa_arena_init(struct upa_arena *a, unsigned int index);
struct upa_arena *upa_arena_lock_mine(struct upa_tcache *tc);
struct upa_arena *upa_arena_lock_other(struct upa_tcache *tc,
				       struct upa_arena *failed);
void upa_arena_detach(struct upa_tcache *tc);
void upa_fork_register(void);

static inline struct upa_arena *upa_arena_of(const struct upa_chunk *c)
{
	return chunk_non_main(c) ? upa_heap_of(c)->arena : &upa_main_arena;
}

/*
 * upa_arena_of() for a chunk handed in by the program (free, realloc) or
 * taken from a list a program could have written: its heap must be one of
 * ours before the heap's header is read, the chunk past that header, its
 * NON_MAIN_ARENA bit that of the heap's arena. A forged chunk elsewhere
 * (static data, a stack, a mapping that is no heap) would make us read an
 * arbitrary aligned address. Aborts with msg.
 */
static inline struct upa_arena *upa_arena_of_checked(const struct upa_chunk *c,
						     const char *msg)
{
	struct upa_heap *h = upa_heap_of(c);
	struct upa_arena *a;

	UPA_CHECK(upa_heap_known(h) && (const void *)c >= (const void *)(h + 1),
		  msg);
	a = h->arena;
	/* Past the arena too when the heap holds it (its first heap). */
	UPA_CHECK((a != &upa_main_arena) == chunk_non_main(c) &&
		  ((void *)a != (void *)(h + 1) ||
		   (const void *)c >= (const void *)(a + 1)), msg);
	return a;
}

/* ------------------------------------------------------------------ */
/* tcache.c: the per-thread cache; tcache.h holds the inline fast paths */

void upa_thread_setup(struct upa_tcache *tc);
void upa_tcache_double_free_scan(struct upa_tcache *tc, unsigned int idx,
				 void *mem);
void upa_tcache_set_limits(struct upa_tcache *tc, unsigned int limit,
			   unsigned int nbins);
void upa_tcache_free_keyed(struct upa_tcache *tc, unsigned int idx, void *mem);
void upa_tcache_fill(struct upa_tcache *tc, struct upa_arena *a,
		     unsigned int idx);
bool upa_tcache_large_free(struct upa_tcache *tc, struct upa_chunk *c,
			   size_t size);
void *upa_tcache_large_malloc(struct upa_tcache *tc, size_t nb);
void upa_threads_sum(size_t *counters, size_t *tcache_bytes);
void upa_threads_after_fork_child(void);

/* ------------------------------------------------------------------ */
/* malloc.c, free.c, realloc.c, memalign.c: the paths behind the cache */

void *upa_malloc_slow(size_t n);

/* hardened.c: the opt-in hardened mode (upa_hard_dispatch in tcache.h) */
int upa_hard_enable(bool on);
void *upa_hard_malloc(size_t n);
void upa_hard_free(void *mem);
void *upa_hard_calloc(size_t n);
void *upa_hard_realloc(void *mem, size_t n);
void *upa_hard_memalign(size_t align, size_t n);
size_t upa_hard_usable_size(void *mem);
void upa_hard_fill(struct upa_chunk *c);
void upa_hard_verify_fast(struct upa_chunk *c);
void upa_free_chunks_mine(struct upa_chunk *const *v, unsigned int n);
size_t upa_hard_carve(struct upa_arena *a, struct upa_chunk *at, size_t nb,
		      size_t max, unsigned int min_limit);
void upa_free_slow(void *mem);
void *upa_int_malloc(struct upa_arena *a, size_t nb, bool *fresh);
void upa_int_free(struct upa_arena *a, struct upa_chunk *c);
void upa_free_chunk_any(struct upa_chunk *c);
void upa_free_check_held(struct upa_tcache *tc, struct upa_chunk *c);
void upa_remote_drain(struct upa_arena *a, struct upa_heap **released);
size_t upa_free_coalesce(struct upa_arena *a, struct upa_chunk *c,
			 size_t size, const char *prev_msg);
void *upa_int_memalign(size_t align, size_t n);

/* ------------------------------------------------------------------ */
/* stats.c (also the allocation-free output helpers of glue.h) */

void upa_stats_at_exit(void);

#pragma GCC visibility pop

#endif /* UPALLOC_INTERNAL_H */
