// SPDX-License-Identifier: MIT
/*
 * glibc_simple: the shape of glibc's benchtests/bench-malloc-simple.
 *
 * For block sizes 8, 16, 32, ... 4096 bytes and for 25, 100, 400 and 1600
 * blocks at a time: allocate that many blocks of that size, then free them
 * all in the order they were allocated, repeated so that every combination
 * does the same number of mallocs (100,000; glibc's does 200,000 and runs
 * one size per process). Three scenarios, as in glibc's: the main thread of
 * a single-threaded process; a new thread (glibc: a thread arena); the main
 * thread again once a thread has existed (allocators with a single-thread
 * fast path have lost it by then).
 *
 * Checks: every block is tagged after malloc and verified before free.
 */
#include <pthread.h>
#include "bench.h"

static const unsigned int counts[] = { 25, 100, 400, 1600 };

struct phase_args {
	void **blocks;
	uint64_t mallocs;
	uint64_t sum;
};

static void *phase(void *arg)
{
	struct phase_args *a = arg;
	uint64_t tag = 1;

	for (size_t size = 8; size <= 4096; size *= 2) {
		for (unsigned int ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			unsigned int n = counts[ci];
			uint64_t reps = a->mallocs / n;

			for (uint64_t r = 0; r < reps; r++) {
				for (unsigned int i = 0; i < n; i++) {
					a->blocks[i] = bench_malloc(size);
					block_tag(a->blocks[i], size, tag + i);
				}
				for (unsigned int i = 0; i < n; i++) {
					block_verify(a->blocks[i], size, tag + i);
					free(a->blocks[i]);
				}
				tag += n;
			}
			a->sum = mix64(a->sum, reps * n * size);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	struct phase_args a = { .mallocs = scaled(&o, 100000, 1600) };
	pthread_t tid;

	a.blocks = calloc(1600, sizeof(*a.blocks));
	if (!a.blocks)
		bench_fail("no memory for the block table");
	phase(&a);			/* single-threaded */
	if (pthread_create(&tid, NULL, phase, &a))	/* in a thread */
		bench_fail("pthread_create");
	pthread_join(tid, NULL);
	phase(&a);			/* main thread, no longer alone */
	printf("result workload=glibc_simple allocator=%s checksum=%016llx mallocs=%llu\n",
	       bench_allocator(), (unsigned long long)a.sum,
	       (unsigned long long)a.mallocs * 10 * 4 * 3);
	free(a.blocks);
	return 0;
}
