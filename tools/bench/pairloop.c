// SPDX-License-Identifier: MIT
/*
 * pairloop: malloc immediately followed by free, in a tight loop.
 *
 * The fast path of an allocator and nothing else: the runner's --callgrind
 * mode runs this under callgrind twice, with two iteration counts, and
 * divides the difference in instructions by the difference in iterations,
 * so that start-up cost cancels out. Sizes cycle through a few small
 * classes (16..256 bytes) so that one lucky size class cannot decide it.
 *
 * Usage: pairloop [--quick] [--scale=F] [--pairs=N] [--size=BYTES]
 * (--size: one fixed size instead of the cycle)
 */
#include "bench.h"

static const size_t sizes[8] = { 16, 24, 32, 48, 64, 96, 128, 256 };

int main(int argc, char **argv)
{
	uint64_t pairs = 0;
	size_t fixed = 0;
	struct bench_opts o;
	int nargs = 1;

	/* --pairs=N is exact (for callgrind); the rest is the usual set. */
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--pairs=", 8) == 0)
			pairs = strtoull(argv[i] + 8, NULL, 10);
		else if (strncmp(argv[i], "--size=", 7) == 0)
			fixed = strtoull(argv[i] + 7, NULL, 10);
		else
			argv[nargs++] = argv[i];
	}
	o = bench_parse(nargs, argv, 1);
	if (!pairs)
		pairs = scaled(&o, 40000000, 10000);
	for (uint64_t i = 0; i < pairs; i++) {
		size_t size = fixed ? fixed : sizes[i & 7];
		unsigned char *p = malloc(size);

		if (!p)
			bench_fail("malloc(%zu) returned NULL", size);
		/* One store, so the block is used; the barrier keeps the
		 * compiler from eliding the pair. */
		p[0] = (unsigned char)i;
		escape(p);
		/* Once in 1024 pairs, a second block while p is live: the two
		 * must not overlap (off the measured path: callgrind's
		 * difference of two runs still divides by all pairs, but this
		 * costs well under one instruction per pair). */
		if ((i & 1023) == 1023) {
			unsigned char *q = bench_malloc(size);

			block_tag(p, size, i);
			block_tag(q, size, ~i);
			block_verify(p, size, i);
			block_verify(q, size, ~i);
			free(q);
		}
		free(p);
	}
	printf("result workload=pairloop allocator=%s checksum=%016llx pairs=%llu\n",
	       bench_allocator(), (unsigned long long)mix64(0, pairs),
	       (unsigned long long)pairs);
	return 0;
}
