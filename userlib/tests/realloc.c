// SPDX-License-Identifier: MIT
/*
 * Description: realloc and reallocarray. NULL acts as malloc; a chunk
 * that fits with at most a quarter to spare is kept as is; shrinking more
 * stays in place and frees the rest; growing takes a free next chunk or the
 * top chunk in place, with a quarter of headroom when there is room;
 * mmapped chunks grow and shrink keeping their data; otherwise the data
 * is copied and the old chunk freed. realloc(p, 0) frees p and returns
 * NULL (glibc); a failed realloc leaves the block untouched and sets
 * ENOMEM; reallocarray catches overflow.
 */
#include "upa_test.h"

UPA_FIXTURE(realloc)

static void fill(void *p, size_t n, unsigned int seed)
{
	unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

static bool filled(const void *p, size_t n, unsigned int seed)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7 + (i >> 8)))
			return false;
	return true;
}

TEST_F(realloc, realloc_null_acts_as_malloc)
{
	struct upa_lib_stats before, after;
	void *p;

	STATS(before);
	p = realloc(NULL, 100);
	STATS(after);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(request_chunk(100), chunk_size(p));
	EXPECT_EQ(before.bytes_in_use + chunk_size(p), after.bytes_in_use);
	free(p);
}

TEST_F(realloc, realloc_null_zero_returns_unique_pointer)
{
	void *p = realloc(NULL, 0), *q = realloc(NULL, 0);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_NE(p, q);
	free(p);
	free(q);
}

TEST_F(realloc, realloc_shrink_stays_in_place)
{
	void *a, *guard, *q;

	tcache_disable();
	a = malloc(2000);
	guard = malloc(24);
	fill(a, 2000, 1);
	q = realloc(a, 100);
	EXPECT_EQ(a, q);
	EXPECT_EQ(112, chunk_size(q));
	EXPECT_TRUE(filled(q, 100, 1));
	/* the rest became a free chunk before the guard */
	EXPECT_EQ(2016 - 112, chunk_size(chunk_next(q)));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	EXPECT_EQ(2016 - 112, *chunk_prev_size_word(guard));
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_shrink_below_min_remainder_keeps_chunk)
{
	void *a, *guard, *q;

	tcache_disable();
	a = malloc(200);
	guard = malloc(24);
	q = realloc(a, 190);
	EXPECT_EQ(a, q);
	EXPECT_EQ(208, chunk_size(q));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_grows_in_place_into_free_next_chunk)
{
	struct upa_lib_stats before, after;
	void *a, *b, *guard, *q;

	tcache_disable();
	a = malloc(300);
	b = malloc(1000);
	guard = malloc(300);
	fill(a, 300, 2);
	free(b);
	STATS(before);
	q = realloc(a, 500);
	STATS(after);
	EXPECT_EQ(a, q);
	EXPECT_TRUE(filled(q, 300, 2));
	EXPECT_LE(500, malloc_usable_size(q));
	/* 320 + 1008 bytes: 640 used (500 and a quarter), 688 freed */
	EXPECT_EQ(640, chunk_size(q));
	EXPECT_EQ(688, chunk_size(chunk_next(q)));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	EXPECT_EQ(before.top_splits, after.top_splits);
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_grows_into_free_next_chunk_without_full_headroom)
{
	void *a, *b, *guard, *q;

	tcache_disable();
	a = malloc(300);
	b = malloc(250);
	guard = malloc(300);
	free(b);
	/* 320 + 272 bytes: enough for 512, not for 640: all of it, no split */
	q = realloc(a, 500);
	EXPECT_EQ(a, q);
	EXPECT_EQ(592, chunk_size(q));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_within_headroom_keeps_chunk_and_larger_shrink_splits)
{
	void *a, *b, *guard, *q;

	tcache_disable();
	a = malloc(300);
	b = malloc(300);
	guard = malloc(300);
	free(b);
	q = realloc(a, 500);
	ASSERT_EQ(a, q);
	ASSERT_EQ(640, chunk_size(q));
	/* 520 and 600 fit the headroom: nothing changes */
	EXPECT_EQ(a, realloc(q, 520));
	EXPECT_EQ(640, chunk_size(q));
	EXPECT_EQ(a, realloc(q, 600));
	EXPECT_EQ(640, chunk_size(q));
	EXPECT_TRUE(chunk_prev_inuse(guard));
	/* 400 would leave 224 spare bytes, more than a quarter: split */
	EXPECT_EQ(a, realloc(q, 400));
	EXPECT_EQ(416, chunk_size(q));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_grows_in_place_into_top)
{
	struct upa_lib_stats before, after;
	void *first, *a, *q;

	tcache_disable();
	first = malloc(7000);
	STATS(before);
	a = malloc(300);	/* from the top: borders it */
	STATS(after);
	ASSERT_EQ(before.top_splits + 1, after.top_splits);
	fill(a, 300, 3);
	q = realloc(a, 20000);
	EXPECT_EQ(a, q);
	EXPECT_TRUE(filled(q, 300, 3));
	EXPECT_LE(20000, malloc_usable_size(q));
	free(q);
	free(first);
}

TEST_F(realloc, realloc_copies_when_next_chunk_is_in_use)
{
	void *a, *guard, *q;

	tcache_disable();
	a = malloc(300);
	guard = malloc(300);
	fill(a, 300, 4);
	q = realloc(a, 5000);
	ASSERT_NE(NULL, q);
	EXPECT_NE(a, q);
	EXPECT_TRUE(filled(q, 300, 4));
	/* the old chunk was freed */
	EXPECT_FALSE(chunk_prev_inuse(guard));
	free(q);
	free(guard);
}

TEST_F(realloc, realloc_of_mmapped_chunk_grows_keeping_data)
{
	void *p = malloc(1 << 20), *q;

	ASSERT_TRUE(chunk_is_mmapped(p));
	fill(p, 1 << 20, 5);
	q = realloc(p, 4 << 20);
	ASSERT_NE(NULL, q);
	EXPECT_TRUE(chunk_is_mmapped(q));
	EXPECT_LE(4 << 20, malloc_usable_size(q));
	EXPECT_TRUE(filled(q, 1 << 20, 5));
	memset((char *)q + (1 << 20), 1, 3 << 20);
	free(q);
}

TEST_F(realloc, realloc_of_mmapped_chunk_shrinks_keeping_data)
{
	void *p = malloc(2 << 20), *q;

	ASSERT_TRUE(chunk_is_mmapped(p));
	fill(p, 2 << 20, 6);
	q = realloc(p, 300 << 10);
	ASSERT_NE(NULL, q);
	EXPECT_TRUE(filled(q, 300 << 10, 6));
	EXPECT_LE(300 << 10, malloc_usable_size(q));
	free(q);
}

TEST_F(realloc, realloc_moves_small_chunk_to_mmap_and_back)
{
	void *p = malloc(1000), *guard = malloc(24), *q, *r;

	/* the guard keeps p from growing into the top chunk */
	fill(p, 1000, 7);
	q = realloc(p, 1 << 20);
	ASSERT_NE(NULL, q);
	EXPECT_TRUE(chunk_is_mmapped(q));
	EXPECT_TRUE(filled(q, 1000, 7));
	r = realloc(q, 500);
	ASSERT_NE(NULL, r);
	EXPECT_TRUE(filled(r, 500, 7));
	free(r);
	free(guard);
}

TEST_F(realloc, realloc_zero_frees_and_returns_null)
{
	void *a, *guard;

	tcache_disable();
	a = malloc(300);
	guard = malloc(300);
	EXPECT_EQ(NULL, realloc(a, 0));
	EXPECT_FALSE(chunk_prev_inuse(guard));
	free(guard);
}

TEST_F(realloc, realloc_failure_leaves_block_intact)
{
	static const size_t huge[] = {
		SIZE_MAX, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX - 100,
	};
	struct upa_lib_stats before, after;
	unsigned int i;
	void *p;

	p = malloc(100);
	fill(p, 100, 8);
	STATS(before);
	for (i = 0; i < 3; i++) {
		errno = 0;
		EXPECT_EQ(NULL, realloc(p, huge[i]));
		EXPECT_EQ(ENOMEM, errno);
	}
	STATS(after);
	EXPECT_TRUE(filled(p, 100, 8));
	EXPECT_EQ(before.bytes_in_use, after.bytes_in_use);
	EXPECT_EQ(request_chunk(100), chunk_size(p));
	free(p);
}

TEST_F(realloc, realloc_failure_of_mmapped_chunk_leaves_it_intact)
{
	void *p = malloc(1 << 20);

	fill(p, 1 << 20, 9);
	errno = 0;
	EXPECT_EQ(NULL, realloc(p, SIZE_MAX - 4096));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_TRUE(chunk_is_mmapped(p));
	EXPECT_TRUE(filled(p, 1 << 20, 9));
	free(p);
}

TEST_F(realloc, realloc_sequence_preserves_contents)
{
	unsigned int x = 12345, i;
	size_t n = 1, next;
	char *p = malloc(1);

	fill(p, 1, 10);
	for (i = 0; i < 3000; i++) {
		x = x * 1103515245 + 12345;
		next = (x >> 8) % ((i % 50 == 0) ? (600 << 10) : 5000) + 1;
		p = realloc(p, next);
		ASSERT_NE(NULL, p);
		ASSERT_TRUE(filled(p, n < next ? n : next, 10))
			TH_LOG("step %u: %zu -> %zu", i, n, next);
		fill(p, next, 10);
		n = next;
	}
	free(p);
}

TEST_F(realloc, reallocarray_multiplies_sizes)
{
	int *p = reallocarray(NULL, 100, sizeof(int)), *q;
	int i;

	ASSERT_NE(NULL, p);
	EXPECT_LE(100 * sizeof(int), malloc_usable_size(p));
	for (i = 0; i < 100; i++)
		p[i] = i;
	q = reallocarray(p, 1000, sizeof(int));
	ASSERT_NE(NULL, q);
	for (i = 0; i < 100; i++)
		ASSERT_EQ(i, q[i]);
	free(q);
}

TEST_F(realloc, reallocarray_overflow_fails_and_keeps_block)
{
	void *p = malloc(64);

	fill(p, 64, 11);
	errno = 0;
	EXPECT_EQ(NULL, reallocarray(p, SIZE_MAX / 2, 3));
	EXPECT_EQ(ENOMEM, errno);
	errno = 0;
	EXPECT_EQ(NULL, reallocarray(p, (size_t)1 << 32, (size_t)1 << 32));
	EXPECT_EQ(ENOMEM, errno);
	errno = 0;
	EXPECT_EQ(NULL, reallocarray(NULL, SIZE_MAX, 2));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_TRUE(filled(p, 64, 11));
	free(p);
}

TEST_HARNESS_MAIN
