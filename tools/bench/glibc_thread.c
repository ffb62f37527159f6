// SPDX-License-Identifier: MIT
/*
 * glibc_thread: the shape of glibc's benchtests/bench-malloc-thread.
 *
 * Every thread keeps a working set of 1024 slots and, over and over, picks
 * a random slot, frees the block in it and allocates one of a random size
 * there. Sizes run from 4 bytes to 32 KiB, small ones far more likely (the
 * density falls with the square of the size, as in glibc's benchmark).
 * glibc's runs for a fixed time and reports iterations per second; this one
 * does a fixed number of iterations per thread, timed by the runner. Runs
 * with 1 thread and with --threads=N; the runner uses 4.
 *
 * Checks: every block is tagged after malloc and verified before free.
 */
#include <pthread.h>
#include "bench.h"

#define WORKING_SET 1024
#define MIN_SIZE 4.0
#define MAX_SIZE 32768.0

struct worker {
	pthread_t tid;
	uint64_t seed, iters, sum;
};

/* Inverse of the distribution function of a density proportional to
 * 1/size^2 on [MIN_SIZE, MAX_SIZE]. */
static size_t pick_size(struct bench_rng *rng)
{
	double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0;
	double s = 1.0 / (1.0 / MIN_SIZE - u * (1.0 / MIN_SIZE - 1.0 / MAX_SIZE));

	return s > MAX_SIZE ? (size_t)MAX_SIZE : (size_t)s;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	void *blocks[WORKING_SET] = { 0 };
	size_t sizes[WORKING_SET];
	uint64_t tags[WORKING_SET];
	struct bench_rng rng;

	rng_seed(&rng, w->seed);
	for (uint64_t i = 0; i < w->iters; i++) {
		unsigned int k = rng_below(&rng, WORKING_SET);

		if (blocks[k]) {
			block_verify(blocks[k], sizes[k], tags[k]);
			free(blocks[k]);
		}
		sizes[k] = pick_size(&rng);
		tags[k] = rng_next(&rng);
		blocks[k] = bench_malloc(sizes[k]);
		block_tag(blocks[k], sizes[k], tags[k]);
		w->sum = mix64(w->sum, sizes[k]);
	}
	for (unsigned int k = 0; k < WORKING_SET; k++) {
		if (blocks[k]) {
			block_verify(blocks[k], sizes[k], tags[k]);
			free(blocks[k]);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 4);
	uint64_t iters = scaled(&o, 2000000, 20000), sum = 0;
	struct worker *w = calloc(o.threads, sizeof(*w));

	if (!w)
		bench_fail("no memory for the thread table");
	for (int t = 0; t < o.threads; t++) {
		w[t] = (struct worker){ .seed = 500 + t, .iters = iters };
		if (pthread_create(&w[t].tid, NULL, run, &w[t]))
			bench_fail("pthread_create");
	}
	for (int t = 0; t < o.threads; t++) {
		pthread_join(w[t].tid, NULL);
		sum = mix64(sum, w[t].sum);
	}
	printf("result workload=glibc_thread allocator=%s checksum=%016llx threads=%d iters=%llu\n",
	       bench_allocator(), (unsigned long long)sum, o.threads,
	       (unsigned long long)iters);
	free(w);
	return 0;
}
