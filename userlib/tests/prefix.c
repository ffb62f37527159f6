// SPDX-License-Identifier: MIT
/*
 * Description: the prefixed API beside another allocator. This binary
 * links libupalloc-prefix.a, which defines only the upa_* names, so
 * malloc/free here are glibc's: the two allocators must not mix. upa_*
 * calls are counted by upalloc, plain malloc calls are not, and each
 * allocator's blocks work with its own functions.
 */
#include "upa_test.h"

UPA_FIXTURE(prefix)

TEST_F(prefix, upa_functions_use_upalloc)
{
	struct upa_lib_stats before, after;
	void *p, *q, *r;

	STATS(before);
	p = upa_malloc(100);
	q = upa_calloc(10, 10);
	r = upa_memalign(64, 100);
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	ASSERT_NE(NULL, r);
	EXPECT_EQ(0, (uintptr_t)r % 64);
	EXPECT_EQ(request_chunk(100), chunk_size(p));
	EXPECT_EQ(request_chunk(100) - 8, upa_malloc_usable_size(p));
	p = upa_realloc(p, 5000);
	ASSERT_NE(NULL, p);
	STATS(after);
	EXPECT_LT(before.bytes_in_use, after.bytes_in_use);
	upa_free(p);
	upa_free(q);
	upa_free(r);
}

TEST_F(prefix, plain_malloc_is_not_upalloc)
{
	struct upa_lib_stats before, after;
	void *p[100];
	int i;

	STATS(before);
	for (i = 0; i < 100; i++)
		p[i] = malloc(1000 + i);
	for (i = 0; i < 100; i++)
		free(p[i]);
	STATS(after);
	EXPECT_EQ(before.malloc_calls, after.malloc_calls);
	EXPECT_EQ(before.free_calls, after.free_calls);
	EXPECT_EQ(before.bytes_in_use, after.bytes_in_use);
}

TEST_F(prefix, both_allocators_work_side_by_side)
{
	void *mine[64], *theirs[64];
	int i;

	for (i = 0; i < 64; i++) {
		mine[i] = upa_malloc(i * 100 + 1);
		theirs[i] = malloc(i * 100 + 1);
		memset(mine[i], 1, i * 100 + 1);
		memset(theirs[i], 2, i * 100 + 1);
	}
	for (i = 0; i < 64; i++) {
		upa_free(mine[i]);
		free(theirs[i]);
	}
	EXPECT_EQ(0, upa_heap_check());
}

TEST_HARNESS_MAIN
