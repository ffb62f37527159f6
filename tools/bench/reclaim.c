// SPDX-License-Identifier: MIT
/*
 * reclaim: does memory go back by itself after a burst?
 *
 * A program keeps a live set, allocates a burst eight times its size, frees
 * most of the burst (all but the last sixteenth, which stays live on top of
 * the heap: a real program's newest objects), and then sleeps, calling
 * neither malloc nor malloc_trim. RSS is sampled every 100 ms for 1.5 s.
 * The figure is the time until the heap's RSS (RSS minus that before the
 * first allocation) is within 10 % of the bytes still live ("never" when it
 * stays above for the whole 1.5 s).
 *
 * Checks: every block carries tags, verified before it is freed; the
 * survivors are verified again after the sleep.
 *
 * result fields: live_kb (bytes live after the frees), heap_peak_kb,
 * heap_freed_kb (right after the frees), heap_end_kb (after 1.5 s),
 * back_ms (or "never"), samples (heap kB at 0, 100, ... 1500 ms).
 */
#include <unistd.h>
#include "bench.h"

#define SAMPLES 16		/* 0, 100, ..., 1500 ms */
#define SAMPLE_NS 100000000ULL

struct slot {
	void *p;
	size_t size;
	uint64_t tag;
};

/* Mostly small objects, some up to 16 KiB. */
static size_t pick_size(struct bench_rng *rng)
{
	if (rng_below(rng, 10) < 9)
		return 16 + rng_below(rng, 497);	/* 16..512 */
	return 513 + rng_below(rng, 15872);		/* 513..16384 */
}

static size_t fill(struct slot *s, size_t n, size_t bytes, struct bench_rng *rng,
		   uint64_t *sum)
{
	size_t i;

	for (i = 0; i < n && bytes > 0; i++) {
		s[i].size = pick_size(rng);
		s[i].tag = rng_next(rng);
		s[i].p = bench_malloc(s[i].size);
		/* Written whole, as a program would: RSS counts its pages. */
		memset(s[i].p, (int)(s[i].tag & 0xff), s[i].size);
		block_tag(s[i].p, s[i].size, s[i].tag);
		*sum = mix64(*sum, s[i].size);
		bytes = bytes > s[i].size ? bytes - s[i].size : 0;
	}
	return i;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	size_t live_target = o.quick ? (2u << 20) : (8u << 20);
	size_t burst_target = 8 * live_target;
	size_t max_blocks = burst_target / 256;	/* sizes average ~1 KiB */
	struct slot *live = calloc(max_blocks, sizeof(*live));
	struct slot *burst = calloc(max_blocks, sizeof(*burst));
	struct bench_rng rng;
	uint64_t sum = 0, t0;
	size_t nlive, nburst, keep_from, live_bytes = 0;
	long base_kb, peak_kb, freed_kb, samples[SAMPLES];
	int back = -1;

	if (!live || !burst)
		bench_fail("no memory for the slot tables");
	/* The tables are touched now, so that they count in the baseline. */
	memset(live, 0, max_blocks * sizeof(*live));
	memset(burst, 0, max_blocks * sizeof(*burst));
	base_kb = status_kb("VmRSS");
	if (base_kb < 0)
		bench_fail("no VmRSS in /proc/self/status");
	rng_seed(&rng, 4);
	nlive = fill(live, max_blocks, live_target, &rng, &sum);
	nburst = fill(burst, max_blocks, burst_target, &rng, &sum);
	peak_kb = status_kb("VmRSS") - base_kb;
	/* Free all but the newest sixteenth, in a random order. */
	keep_from = nburst - nburst / 16;
	for (size_t i = 0; i < keep_from; i++) {
		size_t j = i + rng_below(&rng, keep_from - i);
		struct slot t = burst[i];

		burst[i] = burst[j];
		burst[j] = t;
	}
	for (size_t i = 0; i < keep_from; i++) {
		block_verify(burst[i].p, burst[i].size, burst[i].tag);
		free(burst[i].p);
	}
	for (size_t i = 0; i < nlive; i++)
		live_bytes += live[i].size;
	for (size_t i = keep_from; i < nburst; i++)
		live_bytes += burst[i].size;
	t0 = now_ns();
	freed_kb = status_kb("VmRSS") - base_kb;
	for (int s = 0; s < SAMPLES; s++) {
		uint64_t due = t0 + s * SAMPLE_NS, now = now_ns();

		if (now < due)
			usleep((due - now) / 1000);
		samples[s] = status_kb("VmRSS") - base_kb;
		if (back < 0 && samples[s] * 1024.0 <= 1.1 * (double)live_bytes)
			back = s * 100;
	}
	for (size_t i = 0; i < nlive; i++) {
		block_verify(live[i].p, live[i].size, live[i].tag);
		free(live[i].p);
	}
	for (size_t i = keep_from; i < nburst; i++) {
		block_verify(burst[i].p, burst[i].size, burst[i].tag);
		free(burst[i].p);
	}
	printf("result workload=reclaim allocator=%s checksum=%016llx live_kb=%zu heap_peak_kb=%ld heap_freed_kb=%ld heap_end_kb=%ld back_ms=",
	       bench_allocator(), (unsigned long long)sum, live_bytes / 1024,
	       peak_kb, freed_kb, samples[SAMPLES - 1]);
	if (back < 0)
		printf("never");
	else
		printf("%d", back);
	printf(" samples=");
	for (int s = 0; s < SAMPLES; s++)
		printf("%s%ld", s ? "," : "", samples[s]);
	printf("\n");
	free(live);
	free(burst);
	return 0;
}
