// SPDX-License-Identifier: MIT
/*
 * Description: every step of malloc's search order, each shown to serve a
 * request: thread cache, fast bin, small bin, unsorted bin (exact fit and
 * sorting), large bin best fit, bitmap search with a split, the top chunk,
 * heap growth and a mapping of its own for a large request. Each test
 * checks the returned address and the matching upa_lib_stats counter.
 *
 * Guard allocations keep freed chunks from merging with their neighbours
 * or with the top chunk; the thread cache is switched off where it would
 * take the chunk before the bin under test sees it.
 */
#include "upa_test.h"

UPA_FIXTURE(bins)

TEST_F(bins, tcache_hit_returns_last_freed_chunk)
{
	struct upa_lib_stats before, after;
	void *p, *q;

	p = malloc(56);
	ASSERT_NE(NULL, p);
	free(p);
	STATS(before);
	q = malloc(56);
	STATS(after);
	EXPECT_EQ(p, q);
	EXPECT_EQ(before.tcache_hits + 1, after.tcache_hits);
	EXPECT_EQ(before.malloc_calls + 1, after.malloc_calls);
	free(q);
}

/* Requests of 0..24 bytes all use the 32-byte chunk, cached alike. */
TEST_F(bins, tiny_requests_share_the_smallest_cache_bin)
{
	struct upa_lib_stats before, after;
	void *p = malloc(24), *q;

	ASSERT_NE(NULL, p);
	free(p);
	STATS(before);
	q = malloc(0);
	EXPECT_EQ(p, q);
	free(q);
	q = malloc(8);
	EXPECT_EQ(p, q);
	free(q);
	q = malloc(9);
	EXPECT_EQ(p, q);
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 3, after.tcache_hits);
	EXPECT_EQ(before.malloc_calls + 3, after.malloc_calls);
	EXPECT_EQ(before.free_calls + 2, after.free_calls);
	free(q);
}

/*
 * Blocks of 1 KiB..4 KiB are cached too, in the large cache bins: a few
 * per size (16 KiB per bin, at least 2), LIFO; 4105 bytes is past them.
 */
TEST_F(bins, large_cache_bins_take_blocks_up_to_4_kib)
{
	struct upa_lib_stats before, after;
	void *p[9], *guard, *q;
	int i;

	for (i = 0; i < 9; i++)
		p[i] = malloc(2000);	/* chunk 2016: 8 per bin */
	guard = malloc(100);
	for (i = 0; i < 8; i++)
		free(p[i]);
	STATS(before);
	for (i = 7; i >= 0; i--)
		EXPECT_EQ(p[i], malloc(2000));
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 8, after.tcache_hits);
	EXPECT_EQ(before.malloc_calls + 8, after.malloc_calls);
	EXPECT_EQ(before.free_calls, after.free_calls);
	/* 9 frees: the ninth finds the bin full and goes to the arena */
	for (i = 0; i < 9; i++)
		free(p[i]);
	STATS(before);
	EXPECT_EQ(after.free_calls + 9, before.free_calls);
	for (i = 0; i < 9; i++)
		p[i] = malloc(2000);
	STATS(after);
	EXPECT_GT(before.tcache_hits + 9, after.tcache_hits);

	q = malloc(4104);
	free(q);
	STATS(before);
	EXPECT_EQ(q, malloc(4104));
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 1, after.tcache_hits);
	free(q);

	q = malloc(4105);
	free(q);
	STATS(before);
	q = malloc(4105);
	STATS(after);
	EXPECT_EQ(before.tcache_hits, after.tcache_hits);
	free(q);
	for (i = 0; i < 9; i++)
		free(p[i]);
	free(guard);
}

TEST_F(bins, tcache_is_lifo_per_size)
{
	void *a = malloc(88), *b = malloc(88), *c = malloc(200);

	free(a);
	free(c);	/* another size: another list */
	free(b);
	EXPECT_EQ(b, malloc(88));
	EXPECT_EQ(a, malloc(88));
	EXPECT_EQ(c, malloc(200));
	free(a);
	free(b);
	free(c);
}

TEST_F(bins, fastbin_hit_once_tcache_is_full)
{
	struct upa_lib_stats before, after;
	void *p[3], *guard;
	int i;

	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 2));
	for (i = 0; i < 3; i++)
		p[i] = malloc(72);
	guard = malloc(72);
	/*
	 * p[0], p[1] fill the cache; p[2] overflows it and goes to the fast
	 * bin together with half of the bin (p[1], the newest): one lock
	 * for both, and room in the cache for the next frees.
	 */
	for (i = 0; i < 3; i++)
		free(p[i]);
	STATS(before);
	EXPECT_EQ(p[0], malloc(72));
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 1, after.tcache_hits);
	EXPECT_EQ(before.fastbin_hits, after.fastbin_hits);
	/*
	 * The fast bin is LIFO: p[2] went last (its top, as glibc's free
	 * leaves it); p[1] moves to the cache.
	 */
	EXPECT_EQ(p[2], malloc(72));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits + 1, after.fastbin_hits);
	EXPECT_EQ(p[1], malloc(72));
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 2, after.tcache_hits);
	for (i = 0; i < 3; i++)
		free(p[i]);
	free(guard);
}

/*
 * A size that keeps missing the cache (nothing of it was freed) gets more
 * chunks carved for the cache in the same locked step: none on the first
 * miss, then 1, 3, 7, 15. They follow the block just handed out, in
 * address order.
 */
TEST_F(bins, repeated_misses_carve_chunks_for_the_cache)
{
	struct upa_lib_stats before, after;
	char *p[16];
	int i;

	STATS(before);
	for (i = 0; i < 16; i++) {
		p[i] = malloc(200);
		ASSERT_NE(NULL, p[i]);
		if (i)
			EXPECT_EQ(p[i - 1] + 208, p[i]);
	}
	STATS(after);
	/* misses at the 1st, 2nd, 4th, 8th and 16th malloc */
	EXPECT_EQ(before.tcache_hits + 11, after.tcache_hits);
	EXPECT_EQ(before.malloc_calls + 16, after.malloc_calls);
	for (i = 0; i < 16; i++)
		free(p[i]);
	/* the 15 carved by the last miss wait in the cache (free bytes) */
	EXPECT_LE(15 * 208, after.bytes_free);
	STATS(before);
	EXPECT_EQ(after.bytes_free + 16 * 208, before.bytes_free);
}

TEST_F(bins, fastbin_is_lifo)
{
	struct upa_lib_stats before, after;
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);
	STATS(before);
	EXPECT_EQ(b, malloc(40));
	EXPECT_EQ(a, malloc(40));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits + 2, after.fastbin_hits);
	free(a);
	free(b);
	free(guard);
}

TEST_F(bins, unsorted_exact_fit_is_returned)
{
	struct upa_lib_stats before, after;
	void *a, *guard, *q;

	tcache_disable();
	a = malloc(200);
	guard = malloc(24);
	free(a);
	STATS(before);
	q = malloc(200);
	STATS(after);
	EXPECT_EQ(a, q);
	EXPECT_EQ(before.unsorted_hits + 1, after.unsorted_hits);
	EXPECT_EQ(before.smallbin_hits, after.smallbin_hits);
	EXPECT_EQ(before.top_splits, after.top_splits);
	free(q);
	free(guard);
}

TEST_F(bins, smallbin_exact_fit_returns_sorted_chunk)
{
	struct upa_lib_stats before, after;
	void *a, *guard, *big, *q;

	tcache_disable();
	a = malloc(200);
	guard = malloc(24);
	free(a);
	big = malloc(3000);	/* sorts a out of the unsorted bin */
	STATS(before);
	q = malloc(200);
	STATS(after);
	EXPECT_EQ(a, q);
	EXPECT_EQ(before.smallbin_hits + 1, after.smallbin_hits);
	EXPECT_EQ(before.unsorted_hits, after.unsorted_hits);
	free(q);
	free(big);
	free(guard);
}

TEST_F(bins, smallbin_is_fifo)
{
	void *a, *b, *g1, *g2, *big;

	tcache_disable();
	a = malloc(200);
	g1 = malloc(24);
	b = malloc(200);
	g2 = malloc(24);
	free(a);
	free(b);
	big = malloc(3000);
	/* small bins hand out the chunk that has waited longest */
	EXPECT_EQ(a, malloc(200));
	EXPECT_EQ(b, malloc(200));
	free(a);
	free(b);
	free(g1);
	free(g2);
	free(big);
}

TEST_F(bins, unsorted_chunks_are_sorted_into_bins_by_next_malloc)
{
	struct upa_lib_stats before, after;
	void *a, *b, *g1, *g2, *big;

	tcache_disable();
	a = malloc(300);
	g1 = malloc(24);
	b = malloc(1500);
	g2 = malloc(24);
	free(a);
	free(b);
	big = malloc(4000);	/* fits neither: both get sorted */
	STATS(before);
	EXPECT_EQ(a, malloc(300));
	EXPECT_EQ(b, malloc(1500));
	STATS(after);
	EXPECT_EQ(before.smallbin_hits + 1, after.smallbin_hits);
	EXPECT_EQ(before.largebin_hits + 1, after.largebin_hits);
	EXPECT_EQ(before.unsorted_hits, after.unsorted_hits);
	free(a);
	free(b);
	free(g1);
	free(g2);
	free(big);
}

TEST_F(bins, largebin_best_fit_takes_smallest_fitting_chunk)
{
	static const size_t chunks[] = { 1536, 1584, 1568, 1600 };
	struct upa_lib_stats before, after;
	void *p[4], *g[4], *big, *q;
	int i;

	tcache_disable();
	for (i = 0; i < 4; i++) {
		p[i] = malloc(chunk_request(chunks[i]));
		g[i] = malloc(24);
		ASSERT_EQ(chunks[i], chunk_size(p[i]));
	}
	for (i = 0; i < 4; i++)
		free(p[i]);
	big = malloc(8000);
	STATS(before);
	q = malloc(chunk_request(1552));
	STATS(after);
	/* 1568 is the smallest free chunk >= 1552; 16 bytes are too few to split */
	EXPECT_EQ(p[2], q);
	EXPECT_EQ(1568, chunk_size(q));
	EXPECT_EQ(before.largebin_hits + 1, after.largebin_hits);
	EXPECT_EQ(before.top_splits, after.top_splits);
	free(q);
	for (i = 0; i < 4; i++)
		free(g[i]);
	free(big);
}

TEST_F(bins, binmap_search_splits_larger_chunk)
{
	struct upa_lib_stats before, after;
	void *x, *guard, *big, *q, *rest;

	tcache_disable();
	x = malloc(4000);
	guard = malloc(24);
	ASSERT_EQ(4016, chunk_size(x));
	free(x);
	big = malloc(8000);	/* x moves to its large bin */
	STATS(before);
	q = malloc(1000);	/* no 1008 chunk anywhere: next non-empty bin */
	STATS(after);
	EXPECT_EQ(x, q);
	EXPECT_EQ(1008, chunk_size(q));
	EXPECT_EQ(before.top_splits, after.top_splits);
	EXPECT_EQ(before.smallbin_hits, after.smallbin_hits);
	EXPECT_EQ(before.unsorted_hits, after.unsorted_hits);
	/* the remainder is a free chunk right behind the split-off part */
	rest = chunk_next(q);
	EXPECT_EQ(4016 - 1008, chunk_size(rest));
	EXPECT_EQ(4016 - 1008, *chunk_prev_size_word(guard));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	/* ...and serves the next request of its size */
	EXPECT_EQ(rest, malloc(chunk_request(4016 - 1008)));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	free(rest);
	free(q);
	free(guard);
	free(big);
}

TEST_F(bins, top_split_serves_request_when_bins_are_empty)
{
	struct upa_lib_stats before, after;
	void *p, *q;

	tcache_disable();
	p = malloc(5000);
	STATS(before);
	q = malloc(5000);
	STATS(after);
	/* two consecutive splits of the top chunk are adjacent */
	EXPECT_EQ(chunk_next(p), q);
	EXPECT_EQ(before.top_splits + 1, after.top_splits);
	EXPECT_EQ(before.heap_grows, after.heap_grows);
	EXPECT_EQ(before.bytes_top - chunk_size(q), after.bytes_top);
	free(q);
	free(p);
}

TEST_F(bins, heap_grows_when_top_is_too_small)
{
	struct upa_lib_stats before, now;
	void *p[400];
	int i, n = 0, grown_at = -1;

	ASSERT_EQ(1, mallopt(M_TOP_PAD, 0));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 1 << 20));
	STATS(before);
	for (i = 0; i < 400 && grown_at < 0; i++) {
		p[n++] = malloc(64 << 10);
		ASSERT_NE(NULL, p[i]);
		ASSERT_FALSE(chunk_is_mmapped(p[i]));
		STATS(now);
		if (now.heap_grows > before.heap_grows)
			grown_at = i;
	}
	ASSERT_LE(0, grown_at) TH_LOG("26 MiB allocated without heap growth");
	/* the break moved up: the heap stays contiguous */
	if (grown_at > 0)
		EXPECT_EQ(chunk_next(p[grown_at - 1]), p[grown_at]);
	EXPECT_LT(before.bytes_mapped, now.bytes_mapped);
	for (i = 0; i < n; i++)
		free(p[i]);
}

TEST_F(bins, large_request_gets_mapping_of_its_own)
{
	struct upa_lib_stats before, during, after;
	void *p;

	STATS(before);
	p = malloc(1 << 20);
	ASSERT_NE(NULL, p);
	STATS(during);
	EXPECT_TRUE(chunk_is_mmapped(p));
	EXPECT_LE((1 << 20) + 8, chunk_size(p));
	EXPECT_EQ(before.mmapped_chunks + 1, during.mmapped_chunks);
	EXPECT_EQ(before.bytes_mmapped_chunks + chunk_size(p),
		  during.bytes_mmapped_chunks);
	EXPECT_EQ(before.top_splits, during.top_splits);
	memset(p, 0x5a, 1 << 20);
	free(p);
	STATS(after);
	EXPECT_EQ(before.mmapped_chunks, after.mmapped_chunks);
	EXPECT_EQ(before.bytes_mmapped_chunks, after.bytes_mmapped_chunks);
	EXPECT_EQ(before.bytes_mapped, after.bytes_mapped);
}

TEST_F(bins, call_counters_count_each_call)
{
	struct upa_lib_stats before, mid, after;
	void *p[10];
	int i;

	STATS(before);
	for (i = 0; i < 10; i++)
		p[i] = malloc(16 + 100 * i);
	STATS(mid);
	for (i = 0; i < 10; i++)
		free(p[i]);
	STATS(after);
	EXPECT_EQ(before.malloc_calls + 10, mid.malloc_calls);
	EXPECT_EQ(before.free_calls, mid.free_calls);
	EXPECT_EQ(mid.free_calls + 10, after.free_calls);
}

TEST_F(bins, in_use_bytes_follow_allocations)
{
	struct upa_lib_stats before, mid, after;
	size_t sum = 0, accounted;
	void *p[8];
	int i;

	tcache_disable();
	STATS(before);
	for (i = 0; i < 8; i++) {
		p[i] = malloc(1000 + 500 * i);
		sum += chunk_size(p[i]);
	}
	STATS(mid);
	EXPECT_EQ(before.bytes_in_use + sum, mid.bytes_in_use);
	for (i = 0; i < 8; i++)
		free(p[i]);
	STATS(after);
	EXPECT_EQ(before.bytes_in_use, after.bytes_in_use);
	/*
	 * Every mapped byte is in use (mmapped chunks included), free, top,
	 * or heap bookkeeping (heap header, fences): a few words per heap.
	 */
	accounted = after.bytes_in_use + after.bytes_free + after.bytes_top;
	EXPECT_LE(accounted, after.bytes_mapped);
	EXPECT_GT(accounted + 4096, after.bytes_mapped);
}

TEST_HARNESS_MAIN
