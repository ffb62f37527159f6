// SPDX-License-Identifier: MIT
/*
 * calloc_blocks: calloc of small and of large blocks.
 *
 * Small blocks churn over a live set; large blocks (64 KiB..1 MiB) are
 * allocated, used and freed, so an allocator can win by knowing that fresh
 * pages are already zero and lose by zeroing them again. Every block is
 * checked for zeroes (large ones at least once per 256 bytes, which touches
 * every page) and then dirtied, so that memory handed out again must be
 * cleared again.
 */
#include "bench.h"

struct slot {
	unsigned char *p;
	size_t size;
};

/* Small blocks: every byte must be zero; then the whole block is dirtied. */
static void check_small(unsigned char *p, size_t size)
{
	unsigned char any = 0;

	for (size_t i = 0; i < size; i++)
		any |= p[i];
	if (any)
		bench_fail("calloc block %p of %zu bytes is not zeroed", (void *)p, size);
	memset(p, 0xa5, size);
}

/*
 * Large blocks: one byte in 256 (every page) and the last must be zero;
 * then the same bytes are dirtied (all checked first: the last byte can be
 * one of the strided ones).
 */
static void check_large(unsigned char *p, size_t size)
{
	if (p[size - 1])
		bench_fail("calloc block %p of %zu bytes: last byte is %#x",
			   (void *)p, size, p[size - 1]);
	for (size_t i = 0; i < size; i += 256)
		if (p[i])
			bench_fail("calloc block %p of %zu bytes: byte %zu is %#x",
				   (void *)p, size, i, p[i]);
	for (size_t i = 0; i < size; i += 256)
		p[i] = 0xa5;
	p[size - 1] = 0x5a;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	size_t live = 8192;
	uint64_t small_ops = scaled(&o, 4000000, 1000);
	uint64_t large_ops = scaled(&o, 6000, 20);
	struct slot *slots = calloc(live, sizeof(*slots));
	struct slot large[4] = { { 0 } };
	struct bench_rng rng;
	uint64_t sum = 0;

	if (!slots)
		bench_fail("no memory for the slot table");
	rng_seed(&rng, 4);
	for (uint64_t n = 0; n < small_ops; n++) {
		struct slot *s = &slots[rng_below(&rng, live)];
		size_t count = 1 + rng_below(&rng, 32);
		size_t elem = 1u << rng_below(&rng, 5);		/* 1..16 */

		free(s->p);
		s->size = count * elem;
		s->p = calloc(count, elem);
		if (!s->p)
			bench_fail("calloc(%zu, %zu) returned NULL", count, elem);
		check_alignment(s->p, s->size);
		check_small(s->p, s->size);
		sum = mix64(sum, s->size);
	}
	for (size_t i = 0; i < live; i++)
		free(slots[i].p);
	for (uint64_t n = 0; n < large_ops; n++) {
		struct slot *s = &large[rng_below(&rng, 4)];

		free(s->p);
		s->size = 65536 + rng_below(&rng, 983041);	/* 64K..1M */
		s->p = calloc(1, s->size);
		if (!s->p)
			bench_fail("calloc(1, %zu) returned NULL", s->size);
		check_alignment(s->p, s->size);
		check_large(s->p, s->size);
		sum = mix64(sum, s->size);
	}
	for (int i = 0; i < 4; i++)
		free(large[i].p);
	/* An overflowing count * size must fail, not return a short block. */
	{
		/* volatile: the compiler would warn about the constant. */
		volatile size_t huge = (size_t)1 << 33;

		if (calloc(huge, huge) != NULL)
			bench_fail("calloc(2^33, 2^33) did not fail");
	}
	free(slots);
	printf("result workload=calloc_blocks allocator=%s checksum=%016llx small=%llu large=%llu\n",
	       bench_allocator(), (unsigned long long)sum,
	       (unsigned long long)small_ops, (unsigned long long)large_ops);
	return 0;
}
