/* SPDX-License-Identifier: MIT */
/*
 * Shared by cache_scratch.c and cache_thrash.c: each thread owns one small
 * block at a time and writes it over and over. Whether those writes run at
 * full speed depends on whether the allocator placed blocks of different
 * threads in one cache line (false sharing).
 *
 * Every write pass stores a value derived from the thread and the pass into
 * every byte and reads it back: a block shared with another thread, or
 * shorter than asked for, shows up as a byte that changed under the writer.
 */
#ifndef UPALLOC_CACHE_FALSE_H
#define UPALLOC_CACHE_FALSE_H

#include <pthread.h>
#include "bench.h"

#define OBJ_SIZE 8

/* Write the block `writes` times; returns a value depending on the work only. */
static uint64_t hammer(volatile unsigned char *p, size_t size, uint64_t writes,
		       uint64_t who)
{
	uint64_t sum = 0;

	for (uint64_t n = 0; n < writes; n++) {
		unsigned char v = (unsigned char)(who * 31 + n);

		for (size_t i = 0; i < size; i++)
			p[i] = v;
		for (size_t i = 0; i < size; i++)
			if (p[i] != v)
				bench_fail("thread %llu: byte %zu of block %p changed under its writer",
					   (unsigned long long)who, i, (void *)p);
		sum += v;
	}
	return sum;
}

/*
 * Every 16th block: a second block while p is live; tags on both must
 * survive (the two threads' blocks alone would catch an overlap only when
 * the threads happen to write at the same moment).
 */
static void overlap_probe(unsigned char *p, uint64_t i)
{
	unsigned char *q;

	if (i % 16 != 15)
		return;
	q = bench_malloc(OBJ_SIZE);
	block_tag(p, OBJ_SIZE, i);
	block_tag(q, OBJ_SIZE, ~i);
	block_verify(p, OBJ_SIZE, i);
	block_verify(q, OBJ_SIZE, ~i);
	free(q);
}

#endif /* UPALLOC_CACHE_FALSE_H */
