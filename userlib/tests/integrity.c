// SPDX-License-Identifier: MIT
/*
 * Description: death tests, one per integrity check. Each corrupts exactly
 * the header word or free-list link that its check guards, in a child
 * process, and expects the child to print "upalloc: <check's message>" on
 * stderr and die of SIGABRT. The corruptions are the ones real bugs cause:
 * double frees, frees of pointers malloc never returned, writes past the
 * end of a chunk, use-after-free writes into free-list links.
 *
 * Free-list links: fd/bk (and fd_nextsize/bk_nextsize) point to chunk
 * headers; the singly linked thread-cache and fast-bin links are stored
 * mangled: (address of the link >> 12) ^ pointer.
 */
#include "upa_test.h"

UPA_FIXTURE(integrity)

/* A zeroed fake chunk: any list walk that reaches it finds broken links. */
static _Alignas(16) size_t fake_chunk[8];

static uintptr_t mangle(void *link_addr, uintptr_t ptr)
{
	return ((uintptr_t)link_addr >> 12) ^ ptr;
}

static void *header(void *p)
{
	return (char *)p - 16;
}

#define LINK(p, n) (((uintptr_t *)(p))[n])	/* fd 0, bk 1, fd_nextsize 2 */
#define HUGE_SIZE (((size_t)1 << 40) | CHUNK_PREV_INUSE)

/* ---- free() ---- */

/* 64 mallocs of n bytes: whatever the cache holds of that size comes out. */
static void malloc_64_of(size_t n)
{
	int i;

	for (i = 0; i < 64; i++)
		malloc(n);
}

static void free_misaligned_pointer(void)
{
	char *p = malloc(64);

	memset(p, 0, 64);
	free(p + 8);
}

TEST_F(integrity, free_misaligned_pointer_aborts)
{
	expect_death(_metadata, free_misaligned_pointer,
		     "free(): invalid pointer");
}

static void free_chunk_with_bad_size(void)
{
	char *p = malloc(256);

	memset(p, 0, 256);
	/* a fake chunk at p + 32 whose size is not a multiple of 16 */
	*(size_t *)(p + 40) = 24;
	free(p + 48);
}

TEST_F(integrity, free_of_chunk_with_invalid_size_aborts)
{
	expect_death(_metadata, free_chunk_with_bad_size,
		     "free(): invalid size");
}

/*
 * Size 0x48 | PREV_INUSE: bit 3 set, not a multiple of 16. The fast path
 * indexes its bins by size >> 4, which drops bit 3: such a chunk was cached
 * as a 64-byte one. (Its successor looks in use, as a real one would.)
 */
static void free_chunk_with_size_bit_3(void)
{
	char *p = malloc(256);

	memset(p, 0, 256);
	*(size_t *)(p + 40) = 0x49;
	*(size_t *)(p + 40 + 64) = 64 | CHUNK_PREV_INUSE;
	free(p + 48);
	malloc_64_of(56);
}

TEST_F(integrity, free_of_chunk_with_size_not_multiple_of_16_aborts)
{
	expect_death(_metadata, free_chunk_with_size_bit_3,
		     "free(): invalid size");
}

static void double_free_tcache(void)
{
	void *p = malloc(40);

	free(p);
	free(p);
}

TEST_F(integrity, double_free_in_tcache_aborts)
{
	expect_death(_metadata, double_free_tcache,
		     "free(): double free detected in tcache");
}

static void double_free_fastbin(void)
{
	void *p, *guard;

	tcache_disable();
	p = malloc(40);
	guard = malloc(40);
	free(p);
	free(p);
	free(guard);
}

TEST_F(integrity, double_free_at_fastbin_top_aborts)
{
	expect_death(_metadata, double_free_fastbin,
		     "double free or corruption (fasttop)");
}

static void fast_free_with_bad_next_size(void)
{
	char *p;

	tcache_disable();
	p = malloc(40);		/* 48-byte chunk */
	*chunk_size_word(p + 48) = CHUNK_PREV_INUSE;	/* next size 0 */
	free(p);
}

TEST_F(integrity, fast_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, fast_free_with_bad_next_size,
		     "free(): invalid next size (fast)");
}

static void free_top_chunk(void)
{
	char *p;

	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	p = malloc(200 << 10);	/* grows the heap: the top behind p is big */
	free(chunk_next(p));	/* the top chunk's user pointer */
}

TEST_F(integrity, free_of_top_chunk_aborts)
{
	expect_death(_metadata, free_top_chunk,
		     "double free or corruption (top)");
}

static void double_free_normal(void)
{
	void *p, *guard;

	tcache_disable();
	p = malloc(2000);
	guard = malloc(100);
	free(p);
	free(p);
	free(guard);
}

TEST_F(integrity, double_free_of_normal_chunk_aborts)
{
	expect_death(_metadata, double_free_normal,
		     "double free or corruption (!prev)");
}

struct other_thread_blocks {
	void **p;
	int big;
};

static void *alloc_blocks(void *arg)
{
	struct other_thread_blocks *b = arg;
	int i;

	for (i = 0; i < b->big; i++)
		b->p[i] = malloc(5000);	/* above the thread cache */
	b->p[i] = malloc(100);	/* guard: p[big - 1] does not border the top */
	return NULL;
}

/*
 * p[0 .. big - 1]: blocks above the thread cache from another thread's
 * arena (so this thread's frees of them go to that arena's remote list),
 * p[big] a guard block after them. False when no thread could run.
 */
static bool alloc_in_other_thread(void **p, int big)
{
	struct other_thread_blocks b = { p, big };
	pthread_t t;

	return !pthread_create(&t, NULL, alloc_blocks, &b) &&
	       !pthread_join(t, NULL);
}

/*
 * Chunks of another thread's arena are freed onto that arena's remote
 * list without its lock; a second free of a listed chunk finds it on the
 * list (listed chunks carry the cache key; the keyed free looks there).
 */
static void double_free_remote(void)
{
	static void *p[2];

	if (!alloc_in_other_thread(p, 1))
		return;
	free(p[0]);
	free(p[0]);
	free(p[1]);
}

TEST_F(integrity, double_free_of_remote_chunk_aborts)
{
	expect_death(_metadata, double_free_remote,
		     "free(): double free detected (remote list)");
}

/*
 * A remote-list entry keeps its link at word 0 and the list's key at word
 * 1 of the user data while it waits for the owner. A use-after-free write
 * there is found when the list is drained: here by malloc_trim().
 */
static void overwrite_remote_entry_key(void)
{
	static void *p[3];

	if (!alloc_in_other_thread(p, 2))
		return;
	free(p[0]);
	((uintptr_t *)p[0])[1] = 0x5555;
	malloc_trim(0);		/* drains every arena's list */
}

TEST_F(integrity, remote_entry_with_overwritten_key_aborts)
{
	expect_death(_metadata, overwrite_remote_entry_key,
		     "free(): double free detected (remote list)");
}

/* An entry whose link was redirected to a chunk of another arena. */
static void redirect_remote_link(void)
{
	static void *p[3];
	uintptr_t *entry, *foreign;

	if (!alloc_in_other_thread(p, 2))
		return;
	foreign = malloc(5000);		/* this thread's arena */
	free(p[0]);
	entry = p[0];
	foreign[1] = entry[1];		/* the list's key, read after free */
	entry[0] = mangle(&entry[0], (uintptr_t)foreign);
	malloc_trim(0);		/* drains every arena's list */
}

TEST_F(integrity, remote_link_to_another_arena_aborts)
{
	expect_death(_metadata, redirect_remote_link,
		     "free(): corrupted remote list");
}

static void free_chunk_reaching_past_heap(void)
{
	void *p, *guard;

	tcache_disable();
	p = malloc(2000);
	guard = malloc(100);
	*chunk_size_word(p) = HUGE_SIZE;
	free(p);
	free(guard);
}

TEST_F(integrity, free_of_chunk_reaching_past_heap_aborts)
{
	expect_death(_metadata, free_chunk_reaching_past_heap,
		     "double free or corruption (out)");
}

static void normal_free_with_bad_next_size(void)
{
	void *p, *guard;

	tcache_disable();
	p = malloc(2000);
	guard = malloc(100);
	*chunk_size_word(guard) = CHUNK_PREV_INUSE;	/* size 0, p in use */
	free(p);
}

TEST_F(integrity, normal_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, normal_free_with_bad_next_size,
		     "free(): invalid next size (normal)");
}

static void coalesce_with_mismatched_prev_size(void)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(2000);
	b = malloc(2000);
	guard = malloc(100);
	free(b);
	/* b's size says 2016, the boundary tag after it now says 2000 */
	*chunk_prev_size_word(guard) = 2000;
	free(a);	/* merging with b unlinks b */
	free(guard);
}

TEST_F(integrity, unlink_with_size_not_matching_prev_size_aborts)
{
	expect_death(_metadata, coalesce_with_mismatched_prev_size,
		     "corrupted size vs. prev_size");
}

static void coalesce_with_broken_list(void)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(2000);
	b = malloc(2000);
	guard = malloc(100);
	free(b);
	LINK(b, 0) = (uintptr_t)fake_chunk;	/* fd->bk != b */
	free(a);
	free(guard);
}

TEST_F(integrity, unlink_with_corrupted_links_aborts)
{
	expect_death(_metadata, coalesce_with_broken_list,
		     "corrupted double-linked list");
}

static void coalesce_with_broken_size_list(void)
{
	void *a, *b, *guard, *big;

	tcache_disable();
	a = malloc(2000);
	b = malloc(2000);
	guard = malloc(100);
	free(b);
	big = malloc(5000);	/* b moves to its large bin */
	LINK(b, 2) = (uintptr_t)fake_chunk;	/* fd_nextsize->bk_nextsize != b */
	free(a);
	free(big);
	free(guard);
}

TEST_F(integrity, unlink_with_corrupted_size_links_aborts)
{
	expect_death(_metadata, coalesce_with_broken_size_list,
		     "corrupted double-linked list (not small)");
}

/*
 * ---- double free after a cache bin overflowed ----
 * A free that finds its cache bin full sends the chunk to the arena, with
 * half of the bin: the bin has room again, so the second free of that
 * chunk reaches the cache, which must not take it (nor the arena twice).
 * Each test frees the first K of 200 blocks (K past the bin's 32), then
 * p[K - 1] again, then mallocs 64 blocks: without the abort one block
 * would come back twice. The cache is emptied first (limit 0 and back,
 * as cache_give_back does): the mallocs leave carved chunks in the bin.
 */
#define OVF_N 200
static void *ovf[OVF_N];

static void malloc_64_expect_distinct(size_t n)
{
	void *q[64];
	int i, j;

	for (i = 0; i < 64; i++) {
		q[i] = malloc(n);
		for (j = 0; j < i; j++)
			if (q[i] == q[j])
				_exit(3);	/* handed out twice */
	}
}

static void empty_cache(void)
{
	mallopt(UPA_M_TCACHE_COUNT, 0);
	mallopt(UPA_M_TCACHE_COUNT, 32);
}

static void overflow_then_double_free(size_t n, int k)
{
	int i;

	for (i = 0; i < OVF_N; i++)
		ovf[i] = malloc(n);
	empty_cache();
	for (i = 0; i < k; i++)
		free(ovf[i]);
	free(ovf[k - 1]);
	malloc_64_expect_distinct(n);
}

static void double_free_fast_after_overflow(void)
{
	overflow_then_double_free(40, 33);
}

TEST_F(integrity, double_free_after_bin_overflow_aborts)
{
	expect_death(_metadata, double_free_fast_after_overflow,
		     "double free or corruption (fasttop)");
}

static void double_free_batched_chunk(void)
{
	int i;

	for (i = 0; i < OVF_N; i++)
		ovf[i] = malloc(40);
	empty_cache();
	for (i = 0; i < 33; i++)
		free(ovf[i]);
	free(ovf[20]);		/* moved to the fast bin with the batch */
	malloc_64_expect_distinct(40);
}

TEST_F(integrity, double_free_of_chunk_inside_fast_bin_aborts)
{
	expect_death(_metadata, double_free_batched_chunk,
		     "free(): double free detected in fast bin");
}

static void double_free_small_after_overflow(void)
{
	overflow_then_double_free(400, 33);
}

TEST_F(integrity, double_free_of_small_chunk_after_bin_overflow_aborts)
{
	expect_death(_metadata, double_free_small_after_overflow,
		     "double free or corruption (!prev)");
}

/* The large cache bins (chunks of 1056..4112 bytes) hold 8 of 2000. */
static void double_free_large_cached_after_overflow(void)
{
	overflow_then_double_free(2000, 9);
}

TEST_F(integrity, double_free_after_large_cache_bin_overflow_aborts)
{
	expect_death(_metadata, double_free_large_cached_after_overflow,
		     "double free or corruption (!prev)");
}

/* Another thread's blocks: the overflow goes to its arena's remote list. */
static void *alloc_ovf(void *arg)
{
	int i;

	for (i = 0; i < OVF_N; i++)
		ovf[i] = malloc((size_t)(uintptr_t)arg);
	return NULL;
}

static void remote_overflow_then_double_free(size_t n)
{
	pthread_t t;
	int i;

	if (pthread_create(&t, NULL, alloc_ovf, (void *)(uintptr_t)n) ||
	    pthread_join(t, NULL))
		return;
	empty_cache();
	for (i = 0; i < 33; i++)
		free(ovf[i]);
	free(ovf[32]);
	malloc_64_expect_distinct(n);
}

static void double_free_remote_fast_after_overflow(void)
{
	remote_overflow_then_double_free(40);
}

TEST_F(integrity, double_free_of_remote_chunk_after_bin_overflow_aborts)
{
	expect_death(_metadata, double_free_remote_fast_after_overflow,
		     "free(): double free detected (remote list)");
}

static void double_free_remote_small_after_overflow(void)
{
	remote_overflow_then_double_free(400);
}

TEST_F(integrity, double_free_of_remote_small_chunk_after_overflow_aborts)
{
	expect_death(_metadata, double_free_remote_small_after_overflow,
		     "free(): double free detected (remote list)");
}

/*
 * ---- chunks outside every heap ----
 * A forged chunk of a size past the thread cache whose header looks fine
 * (successor in use): its heap, upa_heap_of(), is the 64 MiB-aligned
 * address below it, no heap of ours; free() read that heap's header
 * (SIGSEGV, with the arena lock held). Static data, a stack, a mapping.
 */
#define FORGED_SIZE 0x2000UL

static void forge_and_free(char *buf, size_t flags)
{
	*(size_t *)(buf + 8) = FORGED_SIZE | CHUNK_PREV_INUSE | flags;
	*(size_t *)(buf + FORGED_SIZE + 8) = 0x100 | CHUNK_PREV_INUSE;
	free(buf + 16);
}

static _Alignas(64) char forged_static[FORGED_SIZE + 0x200];

static void free_forged_static_chunk(void)
{
	forge_and_free(forged_static, CHUNK_NON_MAIN_ARENA);
}

TEST_F(integrity, free_of_forged_chunk_in_static_data_aborts)
{
	expect_death(_metadata, free_forged_static_chunk,
		     "free(): invalid pointer");
}

static void free_forged_stack_chunk(void)
{
	_Alignas(64) char buf[FORGED_SIZE + 0x200];

	memset(buf, 0, sizeof(buf));
	forge_and_free(buf, 0);		/* "the main arena's" */
}

TEST_F(integrity, free_of_forged_chunk_on_the_stack_aborts)
{
	expect_death(_metadata, free_forged_stack_chunk,
		     "free(): invalid pointer");
}

static void free_forged_mapped_chunk(void)
{
	char *m = mmap(NULL, 4 * FORGED_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return;
	forge_and_free(m + FORGED_SIZE, CHUNK_NON_MAIN_ARENA);
}

TEST_F(integrity, free_of_forged_chunk_in_a_mapping_aborts)
{
	expect_death(_metadata, free_forged_mapped_chunk,
		     "free(): invalid pointer");
}

/*
 * ---- corruption glibc 2.36 catches, on every path ----
 * With the default cache (32 blocks per size up to 4 KiB) most frees and
 * mallocs never reach the arena, where glibc makes these checks: each
 * check is tested on the thread-cache path too (no tcache_disable()).
 */

/* The successor's size overwritten (an overflow of the block): size 0. */
static void next_size_zeroed_then_free(size_t n)
{
	char *p = malloc(n), *guard = malloc(n);

	*chunk_size_word(guard) = CHUNK_PREV_INUSE;	/* p in use, size 0 */
	free(p);
	malloc_64_of(n);
}

static void tcache_fast_free_with_bad_next_size(void)
{
	next_size_zeroed_then_free(40);
}

TEST_F(integrity, cached_fast_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, tcache_fast_free_with_bad_next_size,
		     "free(): invalid next size (fast)");
}

static void tcache_normal_free_with_bad_next_size(void)
{
	next_size_zeroed_then_free(400);
}

TEST_F(integrity, cached_normal_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, tcache_normal_free_with_bad_next_size,
		     "free(): invalid next size (normal)");
}

static void large_cache_free_with_bad_next_size(void)
{
	next_size_zeroed_then_free(2000);
}

TEST_F(integrity, large_cached_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, large_cache_free_with_bad_next_size,
		     "free(): invalid next size (normal)");
}

/* A huge successor size: past anything the arena holds. */
static void tcache_free_with_huge_next_size(void)
{
	char *p = malloc(40), *guard = malloc(40);

	*chunk_size_word(guard) = HUGE_SIZE;
	free(p);
	malloc_64_of(40);
}

TEST_F(integrity, cached_free_with_huge_next_size_aborts)
{
	expect_death(_metadata, tcache_free_with_huge_next_size,
		     "free(): invalid next size (fast)");
}

/* The remote path: another arena's chunk, freed past a full bin. */
static void remote_free_with_bad_next_size(void)
{
	pthread_t t;
	int i;

	if (pthread_create(&t, NULL, alloc_ovf, (void *)(uintptr_t)400) ||
	    pthread_join(t, NULL))
		return;
	empty_cache();
	for (i = 0; i < 32; i++)
		free(ovf[i]);			/* the bin is full */
	*chunk_size_word(ovf[33]) = CHUNK_PREV_INUSE;
	free(ovf[32]);
	malloc_64_of(400);
}

TEST_F(integrity, remote_free_with_invalid_next_size_aborts)
{
	expect_death(_metadata, remote_free_with_bad_next_size,
		     "free(): invalid next size (normal)");
}

/* Sorting the unsorted bin: the successor's prev_size disagrees. */
static void unsorted_prev_size_mismatch(void)
{
	char *a = malloc(6000), *guard = malloc(100);

	free(a);				/* past the cache: unsorted */
	*chunk_prev_size_word(guard) = 6000;	/* a's size is 6016 */
	malloc(8000);
}

TEST_F(integrity, unsorted_chunk_with_mismatching_prev_size_aborts)
{
	expect_death(_metadata, unsorted_prev_size_mismatch,
		     "malloc(): mismatching next->prev_size (unsorted)");
}

/* The same on the arena path of a small size (cache off). */
static void unsorted_small_prev_size_mismatch(void)
{
	char *a, *guard;

	tcache_disable();
	a = malloc(400);
	guard = malloc(100);
	free(a);
	*chunk_prev_size_word(guard) = 400;	/* a's size is 416 */
	malloc(3000);
}

TEST_F(integrity, unsorted_small_chunk_with_mismatching_prev_size_aborts)
{
	expect_death(_metadata, unsorted_small_prev_size_mismatch,
		     "malloc(): mismatching next->prev_size (unsorted)");
}

/* With the default cache: a block past it, its bk overwritten. */
static void unsorted_link_corrupted_default_cache(void)
{
	char *a = malloc(6000), *guard = malloc(100);

	free(a);
	LINK(a, 1) = (uintptr_t)fake_chunk;	/* bk->fd != a */
	malloc(8000);
	free(guard);
}

TEST_F(integrity, unsorted_list_corrupted_with_default_cache_aborts)
{
	expect_death(_metadata, unsorted_link_corrupted_default_cache,
		     "malloc(): unsorted double linked list corrupted");
}

/* The successor's PREV_INUSE set again while the chunk sits unsorted. */
static void unsorted_next_marked_in_use(void)
{
	char *a = malloc(6000), *guard = malloc(100);

	free(a);
	*chunk_size_word(guard) |= CHUNK_PREV_INUSE;
	malloc(8000);
	free(guard);
}

TEST_F(integrity, unsorted_chunk_whose_successor_says_in_use_aborts)
{
	expect_death(_metadata, unsorted_next_marked_in_use,
		     "malloc(): invalid next->prev_inuse (unsorted)");
}

/*
 * Freeing b merges it with the free chunk before it, found through b's
 * prev_size: a prev_size that does not match that chunk's size.
 */
static void consolidate_backward_bad_prev_size(void)
{
	char *a = malloc(6000), *b = malloc(6000), *guard = malloc(100);

	free(a);
	*chunk_prev_size_word(b) = 6016 - 64;	/* into a's user data */
	free(b);
	free(guard);
}

TEST_F(integrity, consolidating_with_mismatched_prev_size_aborts)
{
	expect_death(_metadata, consolidate_backward_bad_prev_size,
		     "corrupted size vs. prev_size while consolidating");
}

/* A fast-bin chunk merged by the consolidation (glibc's own message). */
static void consolidate_fastbin_bad_prev_size(void)
{
	char *a, *b, *guard;

	tcache_disable();
	a = malloc(400);
	b = malloc(40);
	guard = malloc(100);
	free(a);				/* unsorted */
	free(b);				/* fast bin */
	*chunk_prev_size_word(b) = 416 - 64;
	malloc(70000);				/* consolidates the fast bins */
	free(guard);
}

TEST_F(integrity, consolidating_fast_chunk_with_mismatched_prev_size_aborts)
{
	expect_death(_metadata, consolidate_fastbin_bad_prev_size,
		     "corrupted size vs. prev_size in fastbins");
}

/* The top chunk's size made smaller: it no longer ends at the heap's end. */
static void top_size_made_too_small(void)
{
	char *p;

	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	p = malloc(200 << 10);		/* the top follows p */
	*chunk_size_word(chunk_next(p)) = 64 | CHUNK_PREV_INUSE;
	malloc(300 << 10);
}

TEST_F(integrity, malloc_from_top_made_too_small_aborts)
{
	expect_death(_metadata, top_size_made_too_small,
		     "malloc(): corrupted top size");
}

/* Sorting unsorted: the successor's size is past the arena's memory. */
static void unsorted_next_size_huge(void)
{
	char *a = malloc(6000), *guard = malloc(100);

	free(a);
	*chunk_size_word(guard) = HUGE_SIZE;
	malloc(8000);
}

TEST_F(integrity, unsorted_chunk_with_invalid_next_size_aborts)
{
	expect_death(_metadata, unsorted_next_size_huge,
		     "malloc(): invalid next size (unsorted)");
}

/* A fast-bin chunk's size rewritten to another fast size, consolidated. */
static void consolidate_fast_chunk_of_wrong_size(void)
{
	char *a, *guard;

	tcache_disable();
	a = malloc(40);
	guard = malloc(100);
	free(a);
	*chunk_size_word(a) = 64 | CHUNK_PREV_INUSE;
	malloc(70000);		/* consolidates the fast bins */
	free(guard);
}

TEST_F(integrity, consolidating_fast_chunk_of_wrong_size_aborts)
{
	expect_death(_metadata, consolidate_fast_chunk_of_wrong_size,
		     "malloc_consolidate(): invalid chunk size");
}

/* A free onto a fast bin whose top chunk's size was rewritten. */
static void free_onto_corrupted_fastbin_top(void)
{
	char *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(100);
	free(a);
	*chunk_size_word(a) = 64 | CHUNK_PREV_INUSE;
	free(b);
	free(guard);
}

TEST_F(integrity, free_onto_fast_bin_with_corrupted_top_aborts)
{
	expect_death(_metadata, free_onto_corrupted_fastbin_top,
		     "invalid fastbin entry (free)");
}

/*
 * A cached chunk's link rewritten to point to itself: the bin's list is
 * a cycle. The next free that carries the key walks the bin and must
 * stop (glibc's "too many chunks") instead of looping.
 */
static void tcache_bin_made_a_cycle(void)
{
	uintptr_t *a = malloc(40), *b = malloc(40), *c = malloc(40);

	empty_cache();
	free(a);
	free(b);			/* the bin's head */
	b[0] = mangle(&b[0], (uintptr_t)b);
	c[1] = b[1];			/* the key, read after free */
	free(c);
}

TEST_F(integrity, keyed_free_into_tcache_bin_with_a_cycle_aborts)
{
	expect_death(_metadata, tcache_bin_made_a_cycle,
		     "free(): too many chunks detected in tcache");
}

/* A free chunk's bk overwritten; the next chunk freed goes in front. */
static void free_into_corrupted_unsorted(void)
{
	char *a = malloc(6000), *g1 = malloc(100);
	char *b = malloc(6000), *g2 = malloc(100);

	free(a);
	LINK(a, 1) = (uintptr_t)fake_chunk;	/* head->fd->bk != head */
	free(b);
	free(g1);
	free(g2);
}

TEST_F(integrity, free_into_corrupted_unsorted_bin_aborts)
{
	expect_death(_metadata, free_into_corrupted_unsorted,
		     "free(): corrupted unsorted chunks");
}

/*
 * A chunk a in its large bin, alone; its links overwritten; then a chunk
 * of a larger size of the same bin is sorted in front of it.
 */
static void large_bin_links_corrupted(int link)
{
	char *a = malloc(6000), *g1 = malloc(100);	/* chunk 6016 */
	char *b = malloc(6088), *g2 = malloc(100);	/* 6096: same bin */

	free(a);
	malloc(8000);		/* a sorted into its large bin */
	LINK(a, link) = (uintptr_t)fake_chunk;
	free(b);
	malloc(8000);		/* b sorted in front of a */
	free(g1);
	free(g2);
}

static void large_bin_nextsize_corrupted(void)
{
	large_bin_links_corrupted(3);	/* bk_nextsize */
}

TEST_F(integrity, sorting_into_large_bin_with_corrupted_nextsize_aborts)
{
	expect_death(_metadata, large_bin_nextsize_corrupted,
		     "malloc(): largebin double linked list corrupted (nextsize)");
}

static void large_bin_bk_corrupted(void)
{
	large_bin_links_corrupted(1);	/* bk */
}

TEST_F(integrity, sorting_into_large_bin_with_corrupted_bk_aborts)
{
	expect_death(_metadata, large_bin_bk_corrupted,
		     "malloc(): largebin double linked list corrupted (bk)");
}

/*
 * A fast bin's links rewritten into a cycle (b -> a -> b); a free of a
 * chunk that carries the key walks the bin looking for it, and must
 * stop. (With the cache off, only the arena's lists hold freed chunks.)
 */
static void keyed_free_with_fastbin_cycle(void)
{
	uintptr_t *a, *b, *x, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	x = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);			/* the bin: b -> a */
	a[0] = mangle(&a[0], (uintptr_t)header(b));
	x[1] = b[1];			/* the key, read after free */
	free(x);
	free(guard);
}

TEST_F(integrity, keyed_free_with_fast_bin_cycle_aborts)
{
	expect_death(_metadata, keyed_free_with_fastbin_cycle,
		     "free(): too many chunks detected in fast bin");
}

/* ---- malloc() ---- */

static void corrupt_top_size(void)
{
	char *p;

	tcache_disable();
	mallopt(M_TOP_PAD, 1 << 20);
	p = malloc(300);
	*chunk_size_word(chunk_next(p)) = HUGE_SIZE;
	malloc(50000);
}

TEST_F(integrity, malloc_from_corrupted_top_aborts)
{
	expect_death(_metadata, corrupt_top_size, "malloc(): corrupted top size");
}

static void misalign_tcache_link(void)
{
	char *a = malloc(40), *b = malloc(40);

	free(a);
	free(b);	/* the list is b -> a */
	LINK(b, 0) = mangle(b, (uintptr_t)a + 8);
	malloc(40);
	malloc(40);
}

TEST_F(integrity, misaligned_tcache_link_aborts)
{
	expect_death(_metadata, misalign_tcache_link,
		     "malloc(): unaligned tcache chunk detected");
}

static void misalign_fastbin_link(void)
{
	char *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);	/* the list is b -> a */
	LINK(b, 0) = mangle(b, (uintptr_t)header(a) + 8);
	malloc(40);
	malloc(40);
	free(guard);
}

TEST_F(integrity, misaligned_fastbin_link_aborts)
{
	expect_death(_metadata, misalign_fastbin_link,
		     "malloc(): unaligned fastbin chunk detected");
}

static void resize_fastbin_chunk(void)
{
	char *a, *guard;

	tcache_disable();
	a = malloc(40);
	guard = malloc(40);
	free(a);
	*chunk_size_word(a) = 64 | CHUNK_PREV_INUSE;	/* was 48 */
	malloc(40);
	free(guard);
}

TEST_F(integrity, fastbin_chunk_of_wrong_size_aborts)
{
	expect_death(_metadata, resize_fastbin_chunk,
		     "malloc(): memory corruption (fast)");
}

static void misalign_link_then_consolidate(void)
{
	char *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);
	LINK(b, 0) = mangle(b, (uintptr_t)header(a) + 8);
	malloc(5000);	/* consolidation walks the fast bins */
	free(guard);
}

TEST_F(integrity, consolidating_misaligned_fastbin_link_aborts)
{
	expect_death(_metadata, misalign_link_then_consolidate,
		     "malloc_consolidate(): unaligned fastbin chunk detected");
}

static void corrupt_smallbin_link(void)
{
	void *a, *guard, *big;

	tcache_disable();
	a = malloc(200);
	guard = malloc(100);
	free(a);
	big = malloc(3000);	/* a moves to its small bin */
	LINK(a, 1) = (uintptr_t)fake_chunk;	/* bk->fd != a */
	malloc(200);
	free(big);
	free(guard);
}

TEST_F(integrity, smallbin_with_corrupted_link_aborts)
{
	expect_death(_metadata, corrupt_smallbin_link,
		     "malloc(): smallbin double linked list corrupted");
}

static void corrupt_unsorted_link(void)
{
	void *a, *guard;

	tcache_disable();
	a = malloc(2000);
	guard = malloc(100);
	free(a);
	LINK(a, 1) = (uintptr_t)fake_chunk;	/* bk->fd != a */
	malloc(3000);
	free(guard);
}

TEST_F(integrity, unsorted_bin_with_corrupted_link_aborts)
{
	expect_death(_metadata, corrupt_unsorted_link,
		     "malloc(): unsorted double linked list corrupted");
}

static void corrupt_unsorted_size(void)
{
	void *a, *guard;

	tcache_disable();
	a = malloc(2000);
	guard = malloc(100);
	free(a);
	*chunk_size_word(a) = HUGE_SIZE;
	malloc(3000);
	free(guard);
}

TEST_F(integrity, unsorted_chunk_with_invalid_size_aborts)
{
	expect_death(_metadata, corrupt_unsorted_size,
		     "malloc(): invalid size (unsorted)");
}

/* ---- realloc() ---- */

static void realloc_misaligned_pointer(void)
{
	char *p = malloc(64);

	memset(p, 0, 64);
	free(realloc(p + 8, 100));
}

TEST_F(integrity, realloc_of_misaligned_pointer_aborts)
{
	expect_death(_metadata, realloc_misaligned_pointer,
		     "realloc(): invalid pointer");
}

static void realloc_corrupted_size(void)
{
	char *p = malloc(100);

	*chunk_size_word(p) = HUGE_SIZE;
	free(realloc(p, 200));
}

TEST_F(integrity, realloc_of_chunk_with_invalid_size_aborts)
{
	expect_death(_metadata, realloc_corrupted_size,
		     "realloc(): invalid old size");
}

/* ---- mmapped chunks ---- */

static void realloc_with_bad_next_size(void)
{
	char *p = malloc(2000), *guard = malloc(100);

	*chunk_size_word(guard) = HUGE_SIZE;
	free(realloc(p, 6000));
}

TEST_F(integrity, realloc_with_invalid_next_size_aborts)
{
	expect_death(_metadata, realloc_with_bad_next_size,
		     "realloc(): invalid next size");
}

static void free_mmapped_with_bad_size(void)
{
	char *p = malloc(1 << 20);

	*chunk_size_word(p) += 16;	/* no longer whole pages */
	free(p);
}

TEST_F(integrity, free_of_mmapped_chunk_with_bad_size_aborts)
{
	expect_death(_metadata, free_mmapped_with_bad_size,
		     "munmap_chunk(): invalid pointer");
}

/* ---- the checks do not fire on valid use ---- */

TEST_F(integrity, valid_use_passes_every_check)
{
	void *p[256];
	int round, i;

	tcache_disable();
	for (round = 0; round < 4; round++) {
		for (i = 0; i < 256; i++)
			p[i] = malloc((size_t)(i * 97 + round * 13) % 5000);
		for (i = 0; i < 256; i += 3)
			p[i] = realloc(p[i], (size_t)i * 11);
		for (i = 0; i < 256; i++)
			free(p[(i * 7) % 256]);
		ASSERT_EQ(0, upa_heap_check());
	}
}

TEST_F(integrity, heap_check_reports_corruption)
{
	int status = 0, fd;
	char err[4096];
	pid_t pid;

	fd = memfd_create("check-stderr", 0);
	ASSERT_LE(0, fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		void *a, *b, *guard;

		dup2(fd, 2);
		tcache_disable();
		a = malloc(2000);
		b = malloc(2000);
		guard = malloc(100);
		free(b);
		*chunk_prev_size_word(guard) = 1000;	/* a broken boundary tag */
		(void)a;
		_exit(upa_heap_check() == -1 ? 0 : 1);
	}
	ASSERT_EQ(0, wait_bounded(pid, 20, &status));
	read_all_fd(fd, err, sizeof(err));
	close(fd);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("upa_heap_check() did not report the corruption: 0x%x",
		       status);
	EXPECT_LT(0, strlen(err)) TH_LOG("no description on stderr");
}

/* ---- the rest of glibc's messages ---- */

/*
 * glibc's "free(): unaligned chunk detected in tcache 2": a keyed free
 * walks the bin and meets a misaligned link. x gets the key read from a
 * cached block, as a program's data could hold it.
 */
static void keyed_free_into_bin_with_misaligned_link(void)
{
	char *x = malloc(40), *a = malloc(40), *b = malloc(40);

	free(a);
	free(b);	/* the list is b -> a */
	LINK(b, 0) = mangle(b, (uintptr_t)a + 8);
	LINK(x, 1) = LINK(b, 1);
	free(x);
}

TEST_F(integrity, keyed_free_into_tcache_bin_with_misaligned_link_aborts)
{
	expect_death(_metadata, keyed_free_into_bin_with_misaligned_link,
		     "malloc(): unaligned tcache chunk detected");
}

/*
 * glibc's "tcache_thread_shutdown(): unaligned tcache chunk detected":
 * the cache of an exiting thread goes back to the arenas, link by link.
 */
static void *cache_misaligned_link_and_exit(void *arg)
{
	char *a = malloc(40), *b = malloc(40);

	free(a);
	free(b);
	LINK(b, 0) = mangle(b, (uintptr_t)a + 8);
	return arg;
}

static void thread_exit_with_misaligned_tcache_link(void)
{
	pthread_t t;

	if (!pthread_create(&t, NULL, cache_misaligned_link_and_exit, NULL))
		pthread_join(t, NULL);
}

TEST_F(integrity, thread_exit_with_misaligned_tcache_link_aborts)
{
	expect_death(_metadata, thread_exit_with_misaligned_tcache_link,
		     "malloc(): unaligned tcache chunk detected");
}

/*
 * glibc's "malloc(): corrupted unsorted chunks" (and " 2"): the remainder
 * of a split goes to an unsorted bin whose first entry does not point
 * back at the bin. The bin is empty (its head's bk is the head, so the
 * sort of step 4 reads nothing) but its head's fd was rewritten; the
 * head's address is the fd of the chunk that was in it.
 */
static void split_remainder_into_corrupted_unsorted(void)
{
	uintptr_t *head;
	char *x;

	tcache_disable();
	x = malloc(600);
	malloc(100);		/* guard: x does not border the top */
	free(x);		/* alone in the unsorted bin */
	head = (uintptr_t *)LINK(x, 0);
	malloc(1000);		/* sorts x into its small bin */
	head[2] = (uintptr_t)fake_chunk;	/* the head's fd */
	malloc(100);		/* from x's bin, split */
}

TEST_F(integrity, split_remainder_into_corrupted_unsorted_bin_aborts)
{
	expect_death(_metadata, split_remainder_into_corrupted_unsorted,
		     "malloc(): corrupted unsorted chunks");
}

/*
 * glibc's "mremap_chunk(): invalid pointer": growing an mmapped block
 * whose offset from its region's start (prev_size) was overwritten.
 */
static void realloc_mmapped_with_bad_offset(void)
{
	char *p = malloc(1 << 20);

	*chunk_prev_size_word(p) = 16;
	free(realloc(p, 4 << 20));
}

TEST_F(integrity, realloc_of_mmapped_chunk_with_bad_offset_aborts)
{
	expect_death(_metadata, realloc_mmapped_with_bad_offset,
		     "realloc(): invalid pointer");
}

TEST_HARNESS_MAIN
