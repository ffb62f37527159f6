// SPDX-License-Identifier: MIT
/*
 * cache_scratch: passive false sharing (the shape of Hoard's cache-scratch).
 *
 * The main thread allocates one 8-byte block per worker, back to back (so
 * they likely share a cache line), and hands one to each worker. Each
 * worker frees the block it was given, then allocates, writes many times
 * and frees its own 8-byte blocks over and over. An allocator that gives a
 * thread back the block another thread allocated (a freed block of a
 * neighbour's cache line) keeps the false sharing alive; one that returns
 * remote frees to their owner does not. See cache_false.h for the checks.
 */
#include "cache_false.h"

struct worker {
	pthread_t tid;
	unsigned char *given;
	uint64_t who, tag, iters, writes, sum;
};

static void *run(void *arg)
{
	struct worker *w = arg;

	block_verify(w->given, OBJ_SIZE, w->tag);
	free(w->given);
	for (uint64_t i = 0; i < w->iters; i++) {
		unsigned char *p = bench_malloc(OBJ_SIZE);

		check_alignment(p, OBJ_SIZE);
		w->sum = mix64(w->sum, hammer(p, OBJ_SIZE, w->writes, w->who + i));
		overlap_probe(p, i);
		free(p);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 2);
	uint64_t iters = scaled(&o, 20000, 2000), writes = 200, sum = 0;
	struct worker *w = calloc(o.threads, sizeof(*w));

	if (!w)
		bench_fail("no memory for the thread table");
	for (int t = 0; t < o.threads; t++) {
		w[t] = (struct worker){ .who = (uint64_t)t << 32, .iters = iters,
					.writes = writes, .tag = 0x5c7a7c400 + t };
		w[t].given = bench_malloc(OBJ_SIZE);
		block_tag(w[t].given, OBJ_SIZE, w[t].tag);
	}
	for (int t = 0; t < o.threads; t++)
		if (pthread_create(&w[t].tid, NULL, run, &w[t]))
			bench_fail("pthread_create");
	for (int t = 0; t < o.threads; t++) {
		pthread_join(w[t].tid, NULL);
		sum = mix64(sum, w[t].sum);
	}
	printf("result workload=cache_scratch allocator=%s checksum=%016llx threads=%d iters=%llu writes=%llu\n",
	       bench_allocator(), (unsigned long long)sum, o.threads,
	       (unsigned long long)iters, (unsigned long long)writes);
	free(w);
	return 0;
}
