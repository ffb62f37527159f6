// SPDX-License-Identifier: MIT
/*
 * glibc_simple: the shape of glibc's benchtests/bench-malloc-simple.
 *
 * For block sizes 16, 256, 1024 and 4096 bytes and for 25, 100, 400 and
 * 1600 blocks at a time: allocate that many blocks of that size, then free
 * them all in the order they were allocated, repeated so that every
 * combination does the same number of mallocs. glibc runs it once in a
 * single-threaded process and once after starting a thread (allocators with
 * a single-thread fast path lose it then); so does this program, in one
 * process: the first half before, the second half after a thread was
 * created (it stays parked until the end).
 *
 * Checks: every block is tagged after malloc and verified before free.
 */
#include <pthread.h>
#include "bench.h"

static const size_t sizes[] = { 16, 256, 1024, 4096 };
static const unsigned int counts[] = { 25, 100, 400, 1600 };

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int park_done;

static void *parked(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&park_lock);
	while (!park_done)
		pthread_cond_wait(&park_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
	return NULL;
}

static uint64_t phase(void **blocks, uint64_t mallocs)
{
	uint64_t sum = 0, tag = 1;

	for (unsigned int si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (unsigned int ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			size_t size = sizes[si];
			unsigned int n = counts[ci];
			uint64_t reps = mallocs / n;

			for (uint64_t r = 0; r < reps; r++) {
				for (unsigned int i = 0; i < n; i++) {
					blocks[i] = bench_malloc(size);
					block_tag(blocks[i], size, tag + i);
				}
				for (unsigned int i = 0; i < n; i++) {
					block_verify(blocks[i], size, tag + i);
					free(blocks[i]);
				}
				tag += n;
			}
			sum = mix64(sum, reps * n * size);
		}
	}
	return sum;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	uint64_t mallocs = scaled(&o, 400000, 3200), sum;
	void **blocks = calloc(1600, sizeof(*blocks));
	pthread_t tid;

	if (!blocks)
		bench_fail("no memory for the block table");
	sum = phase(blocks, mallocs);
	if (pthread_create(&tid, NULL, parked, NULL))
		bench_fail("pthread_create");
	sum = mix64(sum, phase(blocks, mallocs));
	pthread_mutex_lock(&park_lock);
	park_done = 1;
	pthread_cond_signal(&park_cond);
	pthread_mutex_unlock(&park_lock);
	pthread_join(tid, NULL);
	printf("result workload=glibc_simple allocator=%s checksum=%016llx mallocs=%llu\n",
	       bench_allocator(), (unsigned long long)sum,
	       (unsigned long long)mallocs * 16 * 2);
	free(blocks);
	return 0;
}
