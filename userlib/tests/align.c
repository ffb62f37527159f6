// SPDX-License-Identifier: MIT
/*
 * Description: alignment. Every pointer malloc returns is 16-aligned;
 * memalign, posix_memalign and aligned_alloc honour alignments from 32
 * bytes to 1 MiB (in the heap and for mmapped chunks), posix_memalign
 * rejects bad alignments with EINVAL, valloc and pvalloc return whole pages.
 */
#include "upa_test.h"

UPA_FIXTURE(align)

TEST_F(align, every_malloc_pointer_is_16_aligned)
{
	static void *p[2000];
	size_t n;
	int i = 0;

	for (n = 0; n < 2000; n++) {
		p[i] = malloc(n * 7 % 3001);
		ASSERT_EQ(0, (uintptr_t)p[i] % 16) TH_LOG("request %zu", n);
		if (n % 3)
			free(p[i]);
		else
			i++;
	}
	while (i--)
		free(p[i]);
}

TEST_F(align, large_and_calloc_pointers_are_16_aligned)
{
	void *a = malloc(1 << 20), *b = calloc(3, 1001), *c = realloc(NULL, 77);

	EXPECT_EQ(0, (uintptr_t)a % 16);
	EXPECT_EQ(0, (uintptr_t)b % 16);
	EXPECT_EQ(0, (uintptr_t)c % 16);
	free(a);
	free(b);
	free(c);
}

TEST_F(align, memalign_honours_alignments_from_32_bytes_to_1_mib)
{
	static const size_t sizes[] = { 1, 100, 5000, 200 << 10 };
	void *p[21][4];
	size_t align;
	int a, s;

	for (a = 0, align = 32; align <= (1 << 20); align <<= 1, a++) {
		for (s = 0; s < 4; s++) {
			p[a][s] = memalign(align, sizes[s]);
			ASSERT_NE(NULL, p[a][s]);
			ASSERT_EQ(0, (uintptr_t)p[a][s] % align)
				TH_LOG("alignment %zu size %zu", align, sizes[s]);
			ASSERT_LE(sizes[s], malloc_usable_size(p[a][s]));
			memset(p[a][s], 0x77, malloc_usable_size(p[a][s]));
		}
	}
	ASSERT_EQ(0, upa_heap_check());
	while (a--)
		for (s = 0; s < 4; s++)
			free(p[a][s]);
}

TEST_F(align, memalign_pieces_are_reusable_after_free)
{
	struct upa_lib_stats before, after;
	void *p;
	int i;

	tcache_disable();
	STATS(before);
	for (i = 0; i < 200; i++) {
		p = memalign(4096, 3000);
		ASSERT_EQ(0, (uintptr_t)p % 4096);
		free(p);
	}
	STATS(after);
	/* the leading and trailing pieces go back to the bins, nothing leaks */
	EXPECT_EQ(before.bytes_in_use, after.bytes_in_use);
	EXPECT_GE(before.bytes_mapped + (64 << 10), after.bytes_mapped);
}

TEST_F(align, memalign_rounds_odd_alignment_up_to_power_of_two)
{
	void *p = memalign(48, 100), *q = memalign(3000, 10);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(0, (uintptr_t)p % 64);
	EXPECT_EQ(0, (uintptr_t)q % 4096);
	free(p);
	free(q);
}

TEST_F(align, memalign_small_alignment_behaves_like_malloc)
{
	void *p = memalign(1, 10), *q = memalign(8, 10), *r = memalign(16, 10);

	EXPECT_EQ(0, (uintptr_t)p % 16);
	EXPECT_EQ(0, (uintptr_t)q % 16);
	EXPECT_EQ(0, (uintptr_t)r % 16);
	free(p);
	free(q);
	free(r);
}

TEST_F(align, memalign_rejects_impossible_alignment)
{
	errno = 0;
	EXPECT_EQ(NULL, memalign(SIZE_MAX / 2 + 2, 10));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, memalign(4096, SIZE_MAX - 100));
	EXPECT_EQ(ENOMEM, errno);
}

TEST_F(align, posix_memalign_returns_aligned_memory)
{
	void *p = NULL;
	size_t align;

	for (align = sizeof(void *); align <= (1 << 20); align <<= 1) {
		ASSERT_EQ(0, posix_memalign(&p, align, 333));
		ASSERT_EQ(0, (uintptr_t)p % align);
		ASSERT_LE(333, malloc_usable_size(p));
		free(p);
	}
}

TEST_F(align, posix_memalign_rejects_bad_alignment_with_einval)
{
	static const size_t bad[] = { 0, 1, 2, 4, 12, 24, 48, 4095, 4097 };
	void *marker = (void *)0x1234, *p;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = marker;
		EXPECT_EQ(EINVAL, posix_memalign(&p, bad[i], 100))
			TH_LOG("alignment %zu", bad[i]);
		/* the result is left untouched on failure */
		EXPECT_EQ(marker, p);
	}
}

TEST_F(align, posix_memalign_reports_enomem_for_huge_size)
{
	void *marker = (void *)0x1234, *p = marker;

	errno = 0;
	EXPECT_EQ(ENOMEM, posix_memalign(&p, 64, SIZE_MAX - 64));
	EXPECT_EQ(marker, p);
	/* as glibc: errno says it too (tst-malloc-thread-fail reads it) */
	EXPECT_EQ(ENOMEM, errno);
}

TEST_F(align, aligned_alloc_returns_aligned_memory)
{
	void *p = aligned_alloc(256, 1000), *q = aligned_alloc(1 << 16, 1 << 16);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(0, (uintptr_t)p % 256);
	EXPECT_EQ(0, (uintptr_t)q % (1 << 16));
	free(p);
	free(q);
}

TEST_F(align, valloc_returns_page_aligned_memory)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p = valloc(10), *q = valloc(3 * page + 1);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(0, (uintptr_t)p % page);
	EXPECT_EQ(0, (uintptr_t)q % page);
	EXPECT_LE(10, malloc_usable_size(p));
	EXPECT_LE(3 * page + 1, malloc_usable_size(q));
	free(p);
	free(q);
}

TEST_F(align, pvalloc_rounds_size_up_to_whole_pages)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = pvalloc(1), *q = pvalloc(page + 1);

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(0, (uintptr_t)p % page);
	EXPECT_EQ(0, (uintptr_t)q % page);
	EXPECT_LE(page, malloc_usable_size(p));
	EXPECT_LE(2 * page, malloc_usable_size(q));
	memset(p, 1, page);
	memset(q, 2, 2 * page);
	free(p);
	free(q);
}

TEST_F(align, aligned_functions_fail_with_enomem_for_huge_sizes)
{
	errno = 0;
	EXPECT_EQ(NULL, aligned_alloc(64, SIZE_MAX - 64));
	EXPECT_EQ(ENOMEM, errno);
	errno = 0;
	EXPECT_EQ(NULL, valloc(SIZE_MAX - 10));
	EXPECT_EQ(ENOMEM, errno);
	errno = 0;
	EXPECT_EQ(NULL, pvalloc(SIZE_MAX - 10));
	EXPECT_EQ(ENOMEM, errno);
}

TEST_HARNESS_MAIN
