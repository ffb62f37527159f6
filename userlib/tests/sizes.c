// SPDX-License-Identifier: MIT
/*
 * Description: request sizes at every boundary: 0, 1, the minimum chunk,
 * the request-to-chunk rule, the largest fast chunk, the small/large bin
 * boundary (1008/1024-byte chunks), the mmap threshold and its dynamic
 * raise (capped at 32 MiB), malloc_usable_size, and requests too large to
 * satisfy (NULL with ENOMEM, never a crash).
 */
#include "upa_test.h"

UPA_FIXTURE(sizes)

TEST_F(sizes, malloc_zero_returns_unique_min_chunk)
{
	void *p = malloc(0), *q = malloc(0);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_NE(p, q);
	EXPECT_EQ(MIN_CHUNK, chunk_size(p));
	EXPECT_EQ(MIN_CHUNK - 8, malloc_usable_size(p));
	free(p);
	free(q);
}

TEST_F(sizes, malloc_one_returns_min_chunk)
{
	char *p = malloc(1);

	ASSERT_NE(NULL, p);
	EXPECT_EQ(MIN_CHUNK, chunk_size(p));
	*p = 1;
	free(p);
}

TEST_F(sizes, min_chunk_holds_24_bytes_and_25_need_next_size)
{
	void *p = malloc(24), *q = malloc(25);

	EXPECT_EQ(32, chunk_size(p));
	EXPECT_EQ(48, chunk_size(q));
	EXPECT_EQ(24, malloc_usable_size(p));
	EXPECT_EQ(40, malloc_usable_size(q));
	free(p);
	free(q);
}

TEST_F(sizes, chunk_size_follows_request_rule)
{
	size_t n;

	for (n = 0; n <= 4200; n++) {
		void *p = malloc(n);

		ASSERT_NE(NULL, p);
		ASSERT_EQ(request_chunk(n), chunk_size(p))
			TH_LOG("request %zu", n);
		ASSERT_EQ(request_chunk(n) - 8, malloc_usable_size(p))
			TH_LOG("request %zu", n);
		memset(p, 0xa5, malloc_usable_size(p));
		free(p);
	}
}

TEST_F(sizes, whole_usable_size_is_writable)
{
	void *p[300];
	int i;

	for (i = 0; i < 300; i++) {
		p[i] = malloc(i * 13);
		memset(p[i], i, malloc_usable_size(p[i]));
	}
	/* writing every usable byte must not touch any header */
	ASSERT_EQ(0, upa_heap_check());
	for (i = 0; i < 300; i++)
		free(p[i]);
}

TEST_F(sizes, malloc_usable_size_of_null_is_zero)
{
	EXPECT_EQ(0, malloc_usable_size(NULL));
}

TEST_F(sizes, largest_fast_chunk_is_fast_and_next_size_is_not)
{
	struct upa_lib_stats before, after;
	void *fast, *slow, *guard, *guard2;

	tcache_disable();
	fast = malloc(chunk_request(128));
	guard = malloc(24);
	slow = malloc(chunk_request(144));
	guard2 = malloc(24);
	free(fast);
	free(slow);
	STATS(before);
	EXPECT_EQ(fast, malloc(chunk_request(128)));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits + 1, after.fastbin_hits);
	STATS(before);
	EXPECT_EQ(slow, malloc(chunk_request(144)));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits, after.fastbin_hits);
	free(fast);
	free(slow);
	free(guard);
	free(guard2);
}

/* Free a chunk of size csize, sort it into its bin, take it back. */
static void bin_round_trip(struct __test_metadata *_metadata, size_t csize,
			   struct upa_lib_stats *before,
			   struct upa_lib_stats *after)
{
	void *p, *guard, *big;

	p = malloc(chunk_request(csize));
	guard = malloc(24);
	ASSERT_EQ(csize, chunk_size(p));
	free(p);
	big = malloc(9000);	/* sorts p into its bin */
	ASSERT_EQ(0, stats_read(before));
	ASSERT_EQ(p, malloc(chunk_request(csize)));
	ASSERT_EQ(0, stats_read(after));
	free(p);
	free(guard);
	free(big);
}

TEST_F(sizes, chunk_of_1008_bytes_is_small)
{
	struct upa_lib_stats before, after;

	tcache_disable();
	bin_round_trip(_metadata, 1008, &before, &after);
	EXPECT_EQ(before.smallbin_hits + 1, after.smallbin_hits);
	EXPECT_EQ(before.largebin_hits, after.largebin_hits);
}

TEST_F(sizes, chunk_of_1024_bytes_is_large)
{
	struct upa_lib_stats before, after;

	tcache_disable();
	bin_round_trip(_metadata, 1024, &before, &after);
	EXPECT_EQ(before.largebin_hits + 1, after.largebin_hits);
	EXPECT_EQ(before.smallbin_hits, after.smallbin_hits);
}

TEST_F(sizes, request_at_mmap_threshold_is_mmapped)
{
	void *below = malloc((128 << 10) - 64), *at = malloc(128 << 10);

	ASSERT_NE(NULL, below);
	ASSERT_NE(NULL, at);
	EXPECT_FALSE(chunk_is_mmapped(below));
	EXPECT_TRUE(chunk_is_mmapped(at));
	free(below);
	free(at);
}

TEST_F(sizes, mmapped_chunk_is_page_aligned_and_usable)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = malloc(300 << 10);

	ASSERT_TRUE(chunk_is_mmapped(p));
	/* the chunk header starts its mapping */
	EXPECT_EQ(0, ((uintptr_t)p - 16) % page);
	EXPECT_EQ(0, chunk_size(p) % page);
	EXPECT_LE(300 << 10, malloc_usable_size(p));
	memset(p, 1, malloc_usable_size(p));
	free(p);
}

TEST_F(sizes, mmap_threshold_rises_after_mmapped_chunk_is_freed)
{
	void *p = malloc(200 << 10), *q;

	ASSERT_TRUE(chunk_is_mmapped(p));
	free(p);
	q = malloc(200 << 10);
	EXPECT_FALSE(chunk_is_mmapped(q));
	free(q);
	/* below the new threshold, above the old */
	q = malloc(150 << 10);
	EXPECT_FALSE(chunk_is_mmapped(q));
	free(q);
}

TEST_F(sizes, mmap_threshold_does_not_rise_above_32_mib)
{
	void *p = malloc(33 << 20), *q;

	ASSERT_NE(NULL, p);
	ASSERT_TRUE(chunk_is_mmapped(p));
	free(p);
	q = malloc(33 << 20);
	EXPECT_TRUE(chunk_is_mmapped(q));
	free(q);
	q = malloc(1 << 20);
	EXPECT_TRUE(chunk_is_mmapped(q));
	free(q);
}

TEST_F(sizes, fixed_mmap_threshold_disables_dynamic_raise)
{
	void *p, *q;

	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 128 << 10));
	p = malloc(200 << 10);
	ASSERT_TRUE(chunk_is_mmapped(p));
	free(p);
	q = malloc(200 << 10);
	EXPECT_TRUE(chunk_is_mmapped(q));
	free(q);
}

TEST_F(sizes, huge_requests_fail_with_enomem)
{
	static const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4096,
		(size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX,
		(size_t)PTRDIFF_MAX - 4096,
	};
	unsigned int i;

	for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		errno = 0;
		EXPECT_EQ(NULL, malloc(huge[i])) TH_LOG("size %zx", huge[i]);
		EXPECT_EQ(ENOMEM, errno) TH_LOG("size %zx", huge[i]);
	}
	/* the allocator still works */
	free(malloc(100));
}

TEST_F(sizes, free_null_does_nothing_and_keeps_errno)
{
	struct upa_lib_stats before, after;

	STATS(before);
	errno = EILSEQ;
	free(NULL);
	EXPECT_EQ(EILSEQ, errno);
	STATS(after);
	EXPECT_EQ(before.bytes_in_use, after.bytes_in_use);
}

TEST_F(sizes, free_keeps_errno)
{
	void *small = malloc(100), *big = malloc(1 << 20);

	errno = EILSEQ;
	free(small);
	EXPECT_EQ(EILSEQ, errno);
	free(big);	/* munmap inside must not leak its errno either */
	EXPECT_EQ(EILSEQ, errno);
}

TEST_HARNESS_MAIN
