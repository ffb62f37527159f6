// SPDX-License-Identifier: MIT
/*
 * cache_thrash: active false sharing (the shape of Hoard's cache-thrash).
 *
 * Every thread, at the same time, allocates an 8-byte block, writes it many
 * times and frees it, over and over. An allocator that hands consecutive
 * small blocks of one cache line to different threads makes the threads'
 * writes fight over that line; one that keeps each thread's blocks apart
 * does not. See cache_false.h for the checks.
 */
#include "cache_false.h"

struct worker {
	pthread_t tid;
	uint64_t who, iters, writes, sum;
};

static void *run(void *arg)
{
	struct worker *w = arg;

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
					.writes = writes };
		if (pthread_create(&w[t].tid, NULL, run, &w[t]))
			bench_fail("pthread_create");
	}
	for (int t = 0; t < o.threads; t++) {
		pthread_join(w[t].tid, NULL);
		sum = mix64(sum, w[t].sum);
	}
	printf("result workload=cache_thrash allocator=%s checksum=%016llx threads=%d iters=%llu writes=%llu\n",
	       bench_allocator(), (unsigned long long)sum, o.threads,
	       (unsigned long long)iters, (unsigned long long)writes);
	free(w);
	return 0;
}
