// SPDX-License-Identifier: MIT
/*
 * mstress: many threads, short-lived allocations, some blocks passed across
 * threads (the shape of the mstress test of mimalloc-bench).
 *
 * Each round starts a fresh set of threads (thread caches created and torn
 * down all the time). Every thread keeps a small set of blocks, mostly small
 * (16..256 B) with a few large ones (up to 64 KiB), and replaces them in a
 * random order; now and then it swaps one of its blocks with a slot of a
 * table shared by all threads, taking over a block some other thread (of
 * this round or an earlier one) allocated. At the end of a round each
 * thread frees what it holds; the shared table lives on into the next round.
 *
 * Checks: every block carries its size and tag (obj.h), verified by
 * whichever thread frees it; the number of blocks freed must equal the
 * number allocated, and the sum of their (tag ^ size) must agree too.
 */
#include <pthread.h>
#include <stdatomic.h>
#include "obj.h"

#define LOCAL 256
#define SHARED 1024

static _Atomic(struct obj *) shared[SHARED];
static _Atomic uint64_t made_sum, freed_sum, made_n, freed_n;

struct worker {
	pthread_t tid;
	uint64_t seed, steps, sum;
};

static size_t pick_size(struct bench_rng *rng)
{
	if (rng_below(rng, 100) < 97)
		return 16 + rng_below(rng, 241);		/* 16..256 */
	return 257 + rng_below(rng, 65280);		/* ..64 KiB */
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct obj *local[LOCAL] = { 0 };
	uint64_t made = 0, freed = 0, nmade = 0, nfreed = 0;
	struct bench_rng rng;

	rng_seed(&rng, w->seed);
	for (uint64_t i = 0; i < w->steps; i++) {
		unsigned int k = rng_below(&rng, LOCAL);
		size_t size = pick_size(&rng);
		uint64_t tag = rng_next(&rng);

		if (local[k]) {
			freed += obj_free(local[k]);
			nfreed++;
		}
		local[k] = obj_new(size, tag);
		made += local[k]->tag ^ local[k]->size;
		nmade++;
		w->sum = mix64(w->sum, size);
		if (rng_below(&rng, 8) == 0) {
			/* Hand a block to whichever thread takes this slot next. */
			unsigned int s = rng_below(&rng, SHARED);

			local[k] = atomic_exchange(&shared[s], local[k]);
		}
	}
	for (unsigned int k = 0; k < LOCAL; k++) {
		if (local[k]) {
			freed += obj_free(local[k]);
			nfreed++;
		}
	}
	atomic_fetch_add(&made_sum, made);
	atomic_fetch_add(&freed_sum, freed);
	atomic_fetch_add(&made_n, nmade);
	atomic_fetch_add(&freed_n, nfreed);
	return NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 8);
	int rounds = o.quick ? 5 : 20;
	uint64_t steps = scaled(&o, 50000, 2000), sum = 0;
	struct worker *w = calloc(o.threads, sizeof(*w));

	if (!w)
		bench_fail("no memory for the thread table");
	for (int r = 0; r < rounds; r++) {
		for (int t = 0; t < o.threads; t++) {
			w[t] = (struct worker){ .seed = (uint64_t)r * 1000 + t + 11,
						.steps = steps };
			if (pthread_create(&w[t].tid, NULL, run, &w[t]))
				bench_fail("pthread_create");
		}
		for (int t = 0; t < o.threads; t++) {
			pthread_join(w[t].tid, NULL);
			sum = mix64(sum, w[t].sum);
		}
	}
	for (unsigned int s = 0; s < SHARED; s++) {
		struct obj *b = atomic_load(&shared[s]);

		if (b) {
			freed_sum += obj_free(b);
			freed_n++;
		}
	}
	if (made_n != freed_n || made_sum != freed_sum)
		bench_fail("%llu blocks made, %llu freed; sums %016llx vs %016llx",
			   (unsigned long long)made_n, (unsigned long long)freed_n,
			   (unsigned long long)made_sum, (unsigned long long)freed_sum);
	printf("result workload=mstress allocator=%s checksum=%016llx threads=%d rounds=%d blocks=%llu\n",
	       bench_allocator(), (unsigned long long)sum, o.threads, rounds,
	       (unsigned long long)made_n);
	free(w);
	return 0;
}
