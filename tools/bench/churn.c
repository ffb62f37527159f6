// SPDX-License-Identifier: MIT
/*
 * churn: single-thread size-class churn over a live set.
 *
 * A table of live blocks; each step picks a random slot, verifies and frees
 * the block in it (if any) and puts a new block of a random size there. Sizes
 * follow a skewed mix (mostly small, some medium, a few large) so that every
 * size class and the bin/coalescing paths are exercised while the live set
 * stays roughly constant, the steady state of a long-running program.
 */
#include "bench.h"

struct slot {
	void *p;
	size_t size;
	uint64_t tag;
};

static size_t pick_size(struct bench_rng *rng)
{
	uint64_t r = rng_below(rng, 1000);

	if (r < 700)
		return 8 + rng_below(rng, 249);		/* 8..256 */
	if (r < 950)
		return 257 + rng_below(rng, 3840);	/* 257..4096 */
	if (r < 998)
		return 4097 + rng_below(rng, 28672);	/* 4K..32K */
	return 32769 + rng_below(rng, 229376);		/* 32K..256K */
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	size_t live = o.quick ? 4000 : 20000;
	uint64_t steps = scaled(&o, 4000000, 1000);
	struct bench_rng rng;
	struct slot *slots = calloc(live, sizeof(*slots));
	uint64_t sum = 0, bytes = 0;

	if (!slots)
		bench_fail("no memory for the slot table");
	rng_seed(&rng, 1);
	for (uint64_t i = 0; i < steps; i++) {
		struct slot *s = &slots[rng_below(&rng, live)];

		if (s->p) {
			block_verify(s->p, s->size, s->tag);
			free(s->p);
		}
		s->size = pick_size(&rng);
		s->tag = rng_next(&rng);
		s->p = bench_malloc(s->size);
		block_tag(s->p, s->size, s->tag);
		sum = mix64(sum, s->size);
		bytes += s->size;
	}
	for (size_t i = 0; i < live; i++) {
		if (slots[i].p) {
			block_verify(slots[i].p, slots[i].size, slots[i].tag);
			free(slots[i].p);
		}
	}
	free(slots);
	printf("result workload=churn allocator=%s checksum=%016llx steps=%llu bytes=%llu\n",
	       bench_allocator(), (unsigned long long)sum,
	       (unsigned long long)steps, (unsigned long long)bytes);
	return 0;
}
