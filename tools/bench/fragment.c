// SPDX-License-Identifier: MIT
/*
 * fragment: allocate, free every other block, allocate larger.
 *
 * Each round fills the heap with small blocks, frees every other one (the
 * holes are too small for what comes next, and no two holes touch), then
 * allocates larger blocks worth as many bytes as were freed, then frees
 * everything. A perfect allocator needs 1.5 times the small set at the peak
 * and gives the memory back at the end; the workload reports RSS after each
 * phase of the first round (kB from /proc/self/status), the peak (VmHWM) and the final RSS after
 * everything is freed (and after malloc_trim(0), which every allocator under
 * test exports; the ones that do not trim simply ignore it).
 */
#include <malloc.h>
#include "bench.h"

struct slot {
	void *p;
	size_t size;
	uint64_t tag;
};

static void slot_fill(struct slot *s, size_t size, struct bench_rng *rng)
{
	s->size = size;
	s->tag = rng_next(rng);
	s->p = bench_malloc(size);
	block_tag(s->p, size, s->tag);
}

static void slot_free(struct slot *s)
{
	block_verify(s->p, s->size, s->tag);
	free(s->p);
	s->p = NULL;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	size_t nsmall = scaled(&o, 300000, 2000);
	int rounds = 3;
	struct slot *small = calloc(nsmall, sizeof(*small));
	struct slot *large = calloc(nsmall, sizeof(*large));
	long rss_full = 0, rss_holes = 0, rss_peak_phase = 0;
	long rss_before = status_kb("VmRSS");
	struct bench_rng rng;
	uint64_t sum = 0;
	size_t nlarge = 0;

	if (!small || !large)
		bench_fail("no memory for the slot tables");
	rng_seed(&rng, 5);
	for (int r = 0; r < rounds; r++) {
		size_t freed = 0;

		for (size_t i = 0; i < nsmall; i++)
			slot_fill(&small[i], 64 + rng_below(&rng, 193), &rng);
		if (r == 0)
			rss_full = status_kb("VmRSS");
		for (size_t i = 0; i < nsmall; i += 2) {
			freed += small[i].size;
			slot_free(&small[i]);
		}
		if (r == 0)
			rss_holes = status_kb("VmRSS");
		nlarge = 0;
		while (freed > 0) {
			size_t size = 512 + rng_below(&rng, 1537);	/* 512..2048 */

			slot_fill(&large[nlarge++], size, &rng);
			freed = freed > size ? freed - size : 0;
		}
		if (r == 0)
			rss_peak_phase = status_kb("VmRSS");
		for (size_t i = 1; i < nsmall; i += 2) {
			sum = mix64(sum, small[i].size);
			slot_free(&small[i]);
		}
		for (size_t i = 0; i < nlarge; i++) {
			sum = mix64(sum, large[i].size);
			slot_free(&large[i]);
		}
	}
	malloc_trim(0);
	printf("result workload=fragment allocator=%s checksum=%016llx rounds=%d small=%zu large=%zu"
	       " rss_start_kb=%ld rss_full_kb=%ld rss_holes_kb=%ld rss_after_large_kb=%ld"
	       " rss_peak_kb=%ld rss_final_kb=%ld\n",
	       bench_allocator(), (unsigned long long)sum, rounds, nsmall, nlarge,
	       rss_before, rss_full, rss_holes, rss_peak_phase,
	       status_kb("VmHWM"), status_kb("VmRSS"));
	free(small);
	free(large);
	return 0;
}
