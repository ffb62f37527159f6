// SPDX-License-Identifier: MIT
/*
 * liveloop: the fast path with live blocks and mixed sizes.
 *
 * 64 live blocks of 16..47 bytes; every iteration picks one at random,
 * frees it and allocates a new one of a random size in its place:
 *
 *	free(r[k]); r[k] = malloc(16 + rnd % 32);
 *
 * Unlike pairloop (one block allocated and freed again at once), the
 * allocator sees what a program's small objects look like: several size
 * classes live at the same time, frees in a different order from the
 * mallocs, never the "last block of its page freed" case that sends some
 * allocators down a slow path on every pair.
 *
 * The runner's --callgrind mode runs this under callgrind with two iteration
 * counts (start-up cancels in the difference) and once more of each with
 * --empty: the same loop, same random numbers, same tag writes and checks,
 * on 64 fixed blocks, without malloc and free. The difference of the two
 * per-iteration counts is the allocator's share.
 *
 * Checks: the block about to be freed still carries the tags (head and
 * tail) written when it was allocated, so two live blocks that overlap, or
 * a block shorter than asked for, are noticed; every block is aligned.
 *
 * Usage: liveloop [--quick] [--scale=F] [--iters=N] [--empty]
 */
#include "bench.h"

#define LIVE 64
#define MIN_SIZE 16
#define SIZE_SPAN 32		/* sizes 16..47 */

struct live {
	unsigned char *p[LIVE];
	size_t size[LIVE];
	uint64_t tag[LIVE];
};

/*
 * One step, shared by both loops; `empty` is a constant in each caller, so
 * the compiler emits two loops that differ only in the malloc/free calls.
 */
static inline __attribute__((always_inline)) uint64_t
step(struct live *l, struct bench_rng *rng, unsigned char *const *spare,
     const int empty)
{
	uint64_t r = rng_next(rng);
	unsigned int k = r & (LIVE - 1);
	size_t size = MIN_SIZE + ((r >> 8) & (SIZE_SPAN - 1));
	unsigned char *p;

	block_verify(l->p[k], l->size[k], l->tag[k]);
	if (empty) {
		p = spare[k];
	} else {
		free(l->p[k]);
		p = malloc(size);
		if (!p)
			bench_fail("malloc(%zu) returned NULL", size);
	}
	block_tag(p, size, r);
	l->p[k] = p;
	l->size[k] = size;
	l->tag[k] = r;
	return size;
}

static uint64_t __attribute__((noinline))
loop_malloc(struct live *l, struct bench_rng *rng, uint64_t iters)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < iters; i++)
		sum += step(l, rng, NULL, 0);
	return sum;
}

static uint64_t __attribute__((noinline))
loop_empty(struct live *l, struct bench_rng *rng, unsigned char *const *spare,
	   uint64_t iters)
{
	uint64_t sum = 0;

	for (uint64_t i = 0; i < iters; i++)
		sum += step(l, rng, spare, 1);
	return sum;
}

int main(int argc, char **argv)
{
	uint64_t iters = 0, sum;
	int empty = 0, nargs = 1;
	unsigned char *spare[LIVE];
	struct live l;
	struct bench_rng rng;
	struct bench_opts o;

	/* --iters=N is exact (for callgrind); the rest is the usual set. */
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--iters=", 8) == 0)
			iters = strtoull(argv[i] + 8, NULL, 10);
		else if (strcmp(argv[i], "--empty") == 0)
			empty = 1;
		else
			argv[nargs++] = argv[i];
	}
	o = bench_parse(nargs, argv, 1);
	if (!iters)
		iters = scaled(&o, 40000000, 10000);
	rng_seed(&rng, 13);
	for (int k = 0; k < LIVE; k++) {
		/* The empty loop reuses one block per slot: big enough for
		 * every size. */
		spare[k] = bench_malloc(MIN_SIZE + SIZE_SPAN);
		l.p[k] = empty ? spare[k] : bench_malloc(MIN_SIZE);
		l.size[k] = MIN_SIZE;
		l.tag[k] = rng_next(&rng);
		block_tag(l.p[k], MIN_SIZE, l.tag[k]);
	}
	sum = empty ? loop_empty(&l, &rng, spare, iters) :
		      loop_malloc(&l, &rng, iters);
	for (int k = 0; k < LIVE; k++) {
		block_verify(l.p[k], l.size[k], l.tag[k]);
		if (!empty)
			free(l.p[k]);
		free(spare[k]);
	}
	/* The checksum is the same with --empty: same random sizes. */
	printf("result workload=liveloop allocator=%s checksum=%016llx iters=%llu mode=%s\n",
	       bench_allocator(), (unsigned long long)mix64(0, sum),
	       (unsigned long long)iters, empty ? "empty" : "malloc");
	return 0;
}
