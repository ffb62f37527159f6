// SPDX-License-Identifier: MIT
/*
 * Description: calloc. count * size overflow gives NULL and ENOMEM; the
 * requested bytes are zero whether it comes from the thread cache, a bin, a split
 * chunk, the top chunk (after the top held dirty data), a fresh mapping or
 * with M_PERTURB set.
 */
#include "upa_test.h"

UPA_FIXTURE(calloc)

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

TEST_F(calloc, calloc_overflow_returns_null_and_enomem)
{
	static const size_t pairs[][2] = {
		{ SIZE_MAX / 2 + 1, 2 },
		{ SIZE_MAX, SIZE_MAX },
		{ (size_t)1 << 32, (size_t)1 << 32 },
		{ 3, SIZE_MAX / 3 + 1 },
		{ (size_t)PTRDIFF_MAX, 1 },	/* no overflow, just too big */
	};
	unsigned int i;

	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		errno = 0;
		EXPECT_EQ(NULL, calloc(pairs[i][0], pairs[i][1]))
			TH_LOG("calloc(%zx, %zx)", pairs[i][0], pairs[i][1]);
		EXPECT_EQ(ENOMEM, errno);
	}
	free(calloc(10, 10));
}

TEST_F(calloc, calloc_zero_returns_unique_pointer)
{
	void *p = calloc(0, 10), *q = calloc(10, 0);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_NE(p, q);
	free(p);
	free(q);
}

TEST_F(calloc, calloc_zeroes_chunk_reused_from_tcache)
{
	void *p = malloc(500), *q;

	memset(p, 0xaa, malloc_usable_size(p));
	free(p);
	q = calloc(1, 500);
	EXPECT_EQ(p, q);
	EXPECT_TRUE(all_zero(q, 500));
	free(q);
}

TEST_F(calloc, calloc_zeroes_chunk_reused_from_fastbin)
{
	void *p, *guard, *q;

	tcache_disable();
	p = malloc(100);
	guard = malloc(24);
	memset(p, 0xbb, malloc_usable_size(p));
	free(p);
	q = calloc(4, 25);
	EXPECT_EQ(p, q);
	EXPECT_TRUE(all_zero(q, 100));
	free(q);
	free(guard);
}

TEST_F(calloc, calloc_zeroes_split_chunk_from_bins)
{
	void *p, *guard, *q;

	tcache_disable();
	p = malloc(6000);
	guard = malloc(24);
	memset(p, 0xcc, malloc_usable_size(p));
	free(p);
	q = calloc(100, 30);	/* split from p */
	EXPECT_EQ(p, q);
	EXPECT_TRUE(all_zero(q, 3000));
	free(q);
	free(guard);
}

TEST_F(calloc, calloc_zeroes_top_chunk_that_held_data)
{
	void *p, *q;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 64 << 20));
	p = malloc(50000);
	memset(p, 0xdd, malloc_usable_size(p));
	free(p);	/* merges into the top, dirty */
	q = calloc(1, 50000);
	EXPECT_EQ(p, q);
	EXPECT_TRUE(all_zero(q, 50000));
	free(q);
}

TEST_F(calloc, calloc_of_large_size_is_zero)
{
	char *p = malloc(2 << 20), *q;

	memset(p, 0xee, 2 << 20);
	free(p);
	q = calloc(1, 2 << 20);
	ASSERT_NE(NULL, q);
	EXPECT_TRUE(all_zero(q, 2 << 20));
	free(q);
}

TEST_F(calloc, calloc_zeroes_even_with_perturb)
{
	char *p;

	ASSERT_EQ(1, mallopt(M_PERTURB, 0x5a));
	p = calloc(1, 777);
	ASSERT_NE(NULL, p);
	EXPECT_TRUE(all_zero(p, 777));
	free(p);
	p = calloc(1, 777);
	EXPECT_TRUE(all_zero(p, 777));
	free(p);
}

TEST_F(calloc, calloc_zeroes_many_recycled_sizes)
{
	void *p[100];
	int round, i;

	for (round = 0; round < 5; round++) {
		for (i = 0; i < 100; i++) {
			p[i] = calloc(i + 1, 17 + round);
			ASSERT_TRUE(all_zero(p[i], (size_t)(i + 1) * (17 + round)))
				TH_LOG("round %d calloc(%d, %d)", round, i + 1,
				       17 + round);
			memset(p[i], 0xff, malloc_usable_size(p[i]));
		}
		/* alternate the free order so that chunks merge differently */
		for (i = 0; i < 100; i++)
			free(p[round % 2 ? 99 - i : i]);
	}
}

/*
 * A block the thread cache hands to calloc is cleared over its whole
 * usable size, as glibc does: programs that use malloc_usable_size() on
 * calloc'd memory rely on it. Sizes from each kind of cache bin.
 */
TEST_F(calloc, cached_block_is_zero_over_its_usable_size)
{
	static const size_t sizes[] = { 1, 17, 40, 100, 500, 1000, 1500, 4000 };
	unsigned int i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i], usable, j;
		unsigned char *p = malloc(n);

		ASSERT_NE(NULL, p);
		usable = malloc_usable_size(p);
		memset(p, 0xa5, usable);
		free(p);
		p = calloc(1, n);
		ASSERT_NE(NULL, p);
		ASSERT_EQ(usable, malloc_usable_size(p));
		for (j = 0; j < usable; j++)
			ASSERT_EQ(0, p[j])
				TH_LOG("calloc(1, %zu): byte %zu of %zu is %#x",
				       n, j, usable, p[j]);
		free(p);
	}
}

TEST_HARNESS_MAIN
