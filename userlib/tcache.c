// SPDX-License-Identifier: MIT
/*
 * tcache.c: per-thread cache set-up, refill and teardown.
 *
 * A thread is set up by its first slow-path malloc or free: the limits are
 * copied into its cache (until then limit == 0 sends every free to the slow
 * path), it joins the list of live threads (for statistics) and registers
 * a pthread key whose destructor returns the cache at thread exit.
 * pthread_key_create/pthread_setspecific do not allocate for the first 32
 * keys; if glibc ever calls calloc for a later key, that re-enters malloc
 * with the cache already set up, which is fine.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "internal.h"
#include "tcache.h"

__thread struct upa_tcache upa_tc
	__attribute__((tls_model("initial-exec"))) = { .state = UPA_THREAD_NEW };

static pthread_key_t tcache_key;
static bool tcache_key_ok;
static struct upa_tcache *thread_list;
/* Counters of threads that have exited. */
static size_t retired_counter[UPA_TC_COUNTERS];

static void tcache_thread_exit(void *arg);

void upa_thread_setup(struct upa_tcache *tc)
{
	if (tc->state != UPA_THREAD_NEW)
		return;
	upa_lock(&upa_global_lock);
	if (!tcache_key_ok)
		tcache_key_ok = pthread_key_create(&tcache_key,
						   tcache_thread_exit) == 0;
	tc->state = UPA_THREAD_LIVE;
	upa_tcache_set_limits(tc, upa_mp.tcache_count, upa_mp.tcache_bins);
	tc->prev = NULL;
	tc->next = thread_list;
	if (thread_list)
		thread_list->prev = tc;
	thread_list = tc;
	upa_unlock(&upa_global_lock);
	if (tcache_key_ok)
		pthread_setspecific(tcache_key, tc);
}

/*
 * Change the calling thread's limits, keeping what is cached up to the new
 * limit (the excess goes back to the arenas); the room of each bin follows.
 *
 * Each excess chunk is freed through upa_free_chunk_any(), whose drain of
 * the arena's remote list puts chunks into this thread's cache where a bin
 * has room. So a bin is closed (room 0) while it is trimmed, its count
 * taken once before: no drain pushes into it meanwhile, and the count
 * stays the length of its list. Bins not trimmed yet keep a room exact
 * for the old limit (a push there is counted when their turn comes);
 * trimmed ones have their room for the new limit already.
 */
void upa_tcache_set_limits(struct upa_tcache *tc, unsigned int limit,
			   unsigned int nbins)
{
	unsigned int i;

	if (nbins > UPA_TCACHE_ALL_BINS)
		nbins = UPA_TCACHE_ALL_BINS;
	if (tc->state != UPA_THREAD_LIVE)
		limit = nbins = 0;
	for (i = 0; i < tcache_bins_mapped(tc); i++) {
		unsigned int count, new_limit = tcache_limit_of(limit, nbins, i);
		uint16_t *room = tcache_roomp(tc, i);

		count = tcache_count(tc, i);
		*room = 0;
		for (; count > new_limit; count--) {
			struct upa_tcache_entry *e = tcache_pop_counted(tc, i);

			*room = 0;	/* the pop made room: closed again */
			upa_free_chunk_any(mem_chunk(e));
		}
		*room = (uint16_t)(new_limit - count);
	}
	tc->limit = limit;
	tc->nbins = nbins;
}

/*
 * Return every cached chunk to its arena; the cache stays off (the thread
 * is UPA_THREAD_DEAD: limits 0).
 */
static void tcache_flush(struct upa_tcache *tc)
{
	upa_tcache_set_limits(tc, 0, 0);
}

static void tcache_thread_exit(void *arg)
{
	struct upa_tcache *tc = arg;
	struct upa_tcache_large *large;
	unsigned int i;

	if (tc != &upa_tc || tc->state != UPA_THREAD_LIVE)
		return;
	tc->state = UPA_THREAD_DEAD;
	upa_hard_thread_exit(tc);
	tcache_flush(tc);
	upa_arena_detach(tc);
	upa_lock(&upa_global_lock);
	for (i = 0; i < UPA_TC_COUNTERS; i++)
		retired_counter[i] += tc->counter[i];
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		thread_list = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	tc->next = tc->prev = NULL;
	/* Off the list: no upa_threads_sum() reads it any more. */
	large = tc->large;
	tc->large = NULL;
	upa_unlock(&upa_global_lock);
	if (large)
		munmap(large, sizeof(*large));
}

/*
 * The key matched: either a double free or user data that happens to hold
 * the key. Walk the bin to tell; glibc does the same.
 */
void upa_tcache_double_free_scan(struct upa_tcache *tc, unsigned int idx,
				 void *mem)
{
	struct upa_tcache_entry *e = *tcache_headp(tc, idx);
	unsigned int n = 0;

	while (e) {
		/* A link rewritten into a cycle: the walk must end. */
		UPA_CHECK(n++ < tcache_count(tc, idx),
			  "free(): too many chunks detected in tcache");
		UPA_CHECK(e != mem, "free(): double free detected in tcache");
		UPA_CHECK(chunk_aligned(e),
			  "malloc(): unaligned tcache chunk detected");
		e = tcache_reveal(&e->next, e->next);
	}
}

/* free() of a block that carries the key: look for it, then cache it. */
void upa_tcache_free_keyed(struct upa_tcache *tc, unsigned int idx, void *mem)
{
	upa_free_check_held(tc, mem_chunk(mem));
	tcache_push(tc, idx, mem);
	tc->counter[UPA_TC_FREES]++;
}

/*
 * The large bins, mapped on the thread's first free of such a size (a
 * thread that never uses them costs nothing). Published with a release
 * store: upa_threads_sum() of another thread may read the rooms.
 */
static struct upa_tcache_large *tcache_large_create(struct upa_tcache *tc)
{
	struct upa_tcache_large *large;
	unsigned int i;

	if (tc->state != UPA_THREAD_LIVE)
		return NULL;
	large = mmap(NULL, sizeof(*large), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (large == MAP_FAILED)
		return NULL;
	for (i = 0; i < UPA_TCACHE_LARGE_BINS; i++)
		large->room[i] = (uint16_t)tcache_limit_of(tc->limit, tc->nbins,
							   UPA_TCACHE_BINS + i);
	__atomic_store_n(&tc->large, large, __ATOMIC_RELEASE);
	return large;
}

/*
 * free() of a chunk of 1056..4112 bytes (checked like every free): into
 * its large bin when that has room and the chunk is of the thread's own
 * arena (a thread that frees what others allocated would otherwise sit
 * on up to 8 KiB per size of their memory; those take the remote path).
 * Returns false when the arena must take it.
 */
bool upa_tcache_large_free(struct upa_tcache *tc, struct upa_chunk *c,
			   size_t size)
{
	size_t idx = tcache_index(size);
	struct upa_tcache_entry *e = chunk_mem(c);

	if (idx < UPA_TCACHE_BINS || idx >= UPA_TCACHE_ALL_BINS ||
	    idx >= tc->nbins || upa_arena_of(c) != tc->arena)
		return false;
	if (!tc->large && !tcache_large_create(tc))
		return false;
	if (!*tcache_roomp(tc, idx))
		return false;
	tcache_push_any(tc, idx, e);
	tc->counter[UPA_TC_FREES]++;
	return true;
}

/* malloc() of 1033..4104 bytes: a cached chunk, or NULL. */
void *upa_tcache_large_malloc(struct upa_tcache *tc, size_t nb)
{
	size_t idx = tcache_index(nb);

	if (!tc->large || idx >= UPA_TCACHE_ALL_BINS ||
	    !*tcache_headp(tc, idx))
		return NULL;
	return tcache_pop_any(tc, idx);	/* a hit: derived */
}

/*
 * Called with a's lock held after the slow path took a chunk from a fast
 * or small bin: move more chunks of the same size into the cache, so that
 * the next mallocs of this size take no lock. The bin pop functions do the
 * integrity checks.
 */
void upa_tcache_fill(struct upa_tcache *tc, struct upa_arena *a,
		     unsigned int idx)
{
	size_t size = (idx + 2) * 16;

	while (tc->room[idx]) {
		struct upa_chunk *c;

		if (size <= upa_mp.max_fast && a->fastbins[fastbin_index(size)])
			c = upa_fastbin_pop(a, fastbin_index(size));
		else if (in_smallbin_range(size))
			c = upa_smallbin_pop(a, bin_index(size));
		else
			c = NULL;
		if (!c)
			break;
		tcache_push_counted(tc, idx, chunk_mem(c));
	}
}

/*
 * Sum the counters of all threads, live and exited, and the cached bytes.
 * The hits are derived: chunks cached (FREES + PUSHED) minus chunks taken
 * out otherwise (POPPED) minus chunks cached now. Exact for the calling
 * thread and exited ones; another running thread's counters are read
 * while they change, so its share may be off by the few operations in
 * flight (never below zero).
 */
void upa_threads_sum(size_t *counters, size_t *tcache_bytes)
{
	struct upa_tcache *tc;
	unsigned int i;
	size_t bytes = 0, cached = 0, in, out;

	upa_lock(&upa_global_lock);
	for (i = 0; i < UPA_TC_COUNTERS; i++)
		counters[i] = retired_counter[i];
	for (tc = thread_list; tc; tc = tc->next) {
		struct upa_tcache_large *large =
			__atomic_load_n(&tc->large, __ATOMIC_ACQUIRE);

		for (i = 0; i < UPA_TC_COUNTERS; i++)
			counters[i] += __atomic_load_n(&tc->counter[i],
						       __ATOMIC_RELAXED);
		for (i = 0; i < UPA_TCACHE_ALL_BINS; i++) {
			uint16_t *room;
			size_t n;

			if (i < UPA_TCACHE_BINS)
				room = &tc->room[i];
			else if (large)
				room = &large->room[i - UPA_TCACHE_BINS];
			else
				break;
			n = (size_t)(tcache_limit_of(tc->limit, tc->nbins, i) -
				     __atomic_load_n(room, __ATOMIC_RELAXED));

			cached += n;
			bytes += n * (i + 2) * 16;
		}
	}
	upa_unlock(&upa_global_lock);
	in = counters[UPA_TC_FREES] + counters[UPA_TC_PUSHED];
	out = counters[UPA_TC_POPPED] + cached;
	counters[UPA_TC_HITS] += in > out ? in - out : 0;
	*tcache_bytes = bytes;
}

/* Fork child: the other threads are gone, their caches with them. */
void upa_threads_after_fork_child(void)
{
	struct upa_tcache *tc = &upa_tc;

	if (tc->state == UPA_THREAD_LIVE) {
		tc->next = tc->prev = NULL;
		thread_list = tc;
	} else {
		thread_list = NULL;
	}
}
