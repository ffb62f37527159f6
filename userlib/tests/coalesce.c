// SPDX-License-Identifier: MIT
/*
 * Description: splitting and coalescing. A freed chunk merges with a free
 * chunk before it, after it, on both sides and with the top chunk; fast
 * chunks stay unmerged until consolidation (a large request or a trim);
 * split remainders are free chunks that serve later requests.
 *
 * The merged size is read from the freed chunk's own header, and the
 * neighbour's PREV_INUSE bit and prev_size word show the boundary tags.
 * 300-byte requests (320-byte chunks) are above the fast-bin maximum; the
 * thread cache is off so that frees reach the arena.
 */
#include "upa_test.h"

UPA_FIXTURE(coalesce)

TEST_F(coalesce, free_coalesces_with_next_chunk)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(300);
	b = malloc(300);
	guard = malloc(300);
	ASSERT_EQ(chunk_next(a), b);
	free(b);
	free(a);
	EXPECT_EQ(640, chunk_size(a));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	EXPECT_EQ(640, *chunk_prev_size_word(guard));
	free(guard);
}

TEST_F(coalesce, free_coalesces_with_previous_chunk)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(300);
	b = malloc(300);
	guard = malloc(300);
	free(a);
	EXPECT_FALSE(chunk_prev_inuse(b));
	EXPECT_EQ(320, *chunk_prev_size_word(b));
	free(b);
	EXPECT_EQ(640, chunk_size(a));
	EXPECT_EQ(640, *chunk_prev_size_word(guard));
	free(guard);
}

TEST_F(coalesce, free_coalesces_with_both_neighbours)
{
	void *a, *b, *c, *guard;

	tcache_disable();
	a = malloc(300);
	b = malloc(300);
	c = malloc(300);
	guard = malloc(300);
	free(a);
	free(c);
	free(b);
	EXPECT_EQ(960, chunk_size(a));
	EXPECT_EQ(960, *chunk_prev_size_word(guard));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	free(guard);
}

TEST_F(coalesce, free_merges_last_chunk_into_top)
{
	struct upa_lib_stats before, after;
	void *a, *b;

	tcache_disable();
	a = malloc(5000);
	STATS(before);
	b = malloc(300);	/* split from the top: b borders the top */
	STATS(after);
	ASSERT_EQ(before.top_splits + 1, after.top_splits);
	STATS(before);
	free(b);
	STATS(after);
	EXPECT_EQ(before.bytes_top + 320, after.bytes_top);
	EXPECT_EQ(before.bytes_free, after.bytes_free);
	/* the top now starts at b: the next split from it returns b */
	EXPECT_EQ(b, malloc(6000));
	free(b);
	free(a);
}

TEST_F(coalesce, free_merges_chunk_and_free_neighbour_into_top)
{
	struct upa_lib_stats before, after;
	void *a, *b, *c;

	tcache_disable();
	a = malloc(5000);
	b = malloc(300);
	c = malloc(300);	/* c borders the top */
	free(b);
	STATS(before);
	free(c);
	STATS(after);
	/* b and c both join the top */
	EXPECT_EQ(before.bytes_top + 640, after.bytes_top);
	EXPECT_EQ(b, malloc(7000));
	free(b);
	free(a);
}

TEST_F(coalesce, fast_chunks_are_not_coalesced_on_free)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);
	EXPECT_EQ(48, chunk_size(a));
	EXPECT_EQ(48, chunk_size(b));
	/* fast chunks keep looking in use to their neighbours */
	EXPECT_TRUE(chunk_prev_inuse(b));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	free(guard);
}

TEST_F(coalesce, large_request_consolidates_fast_chunks)
{
	void *a, *b, *guard, *big;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);
	big = malloc(5000);
	/* a and b merged into one free 96-byte chunk */
	EXPECT_EQ(96, chunk_size(a));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	EXPECT_EQ(96, *chunk_prev_size_word(guard));
	EXPECT_EQ(a, malloc(chunk_request(96)));
	free(a);
	free(guard);
	free(big);
}

TEST_F(coalesce, malloc_trim_consolidates_fast_chunks)
{
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	free(a);
	free(b);
	malloc_trim(0);
	EXPECT_EQ(96, chunk_size(a));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	free(guard);
}

TEST_F(coalesce, split_remainder_serves_next_fitting_request)
{
	struct upa_lib_stats before, after;
	void *x, *guard, *q, *rest;

	tcache_disable();
	x = malloc(3000);
	guard = malloc(24);
	free(x);
	q = malloc(1000);	/* split from x */
	ASSERT_EQ(x, q);
	rest = chunk_next(q);
	ASSERT_EQ(3008 - 1008, chunk_size(rest));
	STATS(before);
	EXPECT_EQ(rest, malloc(chunk_request(2000)));
	STATS(after);
	EXPECT_EQ(before.top_splits, after.top_splits);
	free(rest);
	free(q);
	free(guard);
}

TEST_F(coalesce, split_leaves_no_remainder_below_min_chunk)
{
	void *x, *guard, *q;

	tcache_disable();
	x = malloc(chunk_request(1040));
	guard = malloc(24);
	free(x);
	/* 1040 - 1024 = 16 bytes cannot form a chunk: x is handed out whole */
	q = malloc(chunk_request(1024));
	EXPECT_EQ(x, q);
	EXPECT_EQ(1040, chunk_size(q));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	free(q);
	free(guard);
}

TEST_F(coalesce, freeing_everything_leaves_one_free_run)
{
	void *p[64], *guard;
	size_t total = 0;
	int i;

	tcache_disable();
	for (i = 0; i < 64; i++) {
		p[i] = malloc(200 + 37 * i);
		total += chunk_size(p[i]);
	}
	guard = malloc(24);
	for (i = 0; i < 63; i++)
		ASSERT_EQ(chunk_next(p[i]), p[i + 1]);
	/* free in an order that exercises every merge direction */
	for (i = 0; i < 64; i += 2)
		free(p[i]);
	for (i = 63; i > 0; i -= 2)
		free(p[i]);
	EXPECT_EQ(total, chunk_size(p[0]));
	EXPECT_EQ(total, *chunk_prev_size_word(guard));
	free(guard);
}

TEST_HARNESS_MAIN
