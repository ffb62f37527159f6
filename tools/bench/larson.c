// SPDX-License-Identifier: MIT
/*
 * larson: a server-style workload after Larson and Krishnan's benchmark.
 *
 * Each worker thread owns an array of blocks and replaces random ones (free
 * the old block, allocate a new one). At the end of a round the workers exit
 * and a new generation of threads starts; each new thread inherits the array
 * of a different old thread, so most blocks are freed by a thread other than
 * the one that allocated them, and per-thread caches are created and torn
 * down all the time, as in a server that hands connections between threads.
 */
#include <pthread.h>
#include "bench.h"

struct slot {
	void *p;
	size_t size;
	uint64_t tag;
};

struct worker {
	struct slot *slots;
	size_t nslots;
	uint64_t steps;
	uint64_t seed;
	uint64_t sum;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct bench_rng rng;

	rng_seed(&rng, w->seed);
	for (uint64_t i = 0; i < w->steps; i++) {
		struct slot *s = &w->slots[rng_below(&rng, w->nslots)];

		block_verify(s->p, s->size, s->tag);
		free(s->p);
		s->size = 16 + rng_below(&rng, 1009);	/* 16..1024 */
		s->tag = rng_next(&rng);
		s->p = bench_malloc(s->size);
		block_tag(s->p, s->size, s->tag);
		w->sum = mix64(w->sum, s->size);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 4);
	int nthreads = o.threads;
	size_t nslots = o.quick ? 2000 : 8000;
	int rounds = o.quick ? 10 : 30;
	uint64_t steps = scaled(&o, 60000, 500);
	struct worker *w = calloc(nthreads, sizeof(*w));
	struct slot **arrays = calloc(nthreads, sizeof(*arrays));
	pthread_t *tids = calloc(nthreads, sizeof(*tids));
	struct bench_rng rng;
	uint64_t sum = 0;

	if (!w || !arrays || !tids)
		bench_fail("no memory for the thread tables");
	rng_seed(&rng, 2);
	for (int t = 0; t < nthreads; t++) {
		arrays[t] = calloc(nslots, sizeof(struct slot));
		if (!arrays[t])
			bench_fail("no memory for a slot array");
		for (size_t i = 0; i < nslots; i++) {
			struct slot *s = &arrays[t][i];

			s->size = 16 + rng_below(&rng, 1009);
			s->tag = rng_next(&rng);
			s->p = bench_malloc(s->size);
			block_tag(s->p, s->size, s->tag);
		}
	}
	for (int r = 0; r < rounds; r++) {
		for (int t = 0; t < nthreads; t++) {
			/* Hand the arrays on: thread t now frees what thread
			 * t - r allocated. */
			w[t] = (struct worker){
				.slots = arrays[(t + r) % nthreads],
				.nslots = nslots,
				.steps = steps,
				.seed = (uint64_t)r * 1000 + t + 7,
			};
			if (pthread_create(&tids[t], NULL, worker_run, &w[t]))
				bench_fail("pthread_create");
		}
		for (int t = 0; t < nthreads; t++) {
			pthread_join(tids[t], NULL);
			sum = mix64(sum, w[t].sum);
		}
	}
	for (int t = 0; t < nthreads; t++) {
		for (size_t i = 0; i < nslots; i++) {
			block_verify(arrays[t][i].p, arrays[t][i].size,
				     arrays[t][i].tag);
			free(arrays[t][i].p);
		}
		free(arrays[t]);
	}
	printf("result workload=larson allocator=%s checksum=%016llx threads=%d rounds=%d steps=%llu\n",
	       bench_allocator(), (unsigned long long)sum, nthreads, rounds,
	       (unsigned long long)steps * rounds * nthreads);
	free(w);
	free(arrays);
	free(tids);
	return 0;
}
