// SPDX-License-Identifier: MIT
/*
 * realloc_grow: string building with realloc.
 *
 * Many strings grow at once, each by short appends, each append a realloc to
 * the exact new length (the naive string builder found in a lot of C code).
 * Interleaving the strings keeps them from simply growing into free space
 * behind them. When a string reaches its target length its whole content is
 * checked and it is freed; a new string takes its place.
 */
#include "bench.h"

#define NSTRINGS 64

struct str {
	char *buf;
	size_t len;
	size_t target;
	uint64_t seed;
};

/* Never 0 (the terminator), different for neighbouring strings. */
static inline char content_byte(uint64_t seed, size_t i)
{
	return (char)(0x40 + (((uint32_t)(seed + i) * 0x9e3779b1u) >> 26));
}

static void str_start(struct str *s, struct bench_rng *rng)
{
	uint64_t r = rng_below(rng, 100);

	s->buf = NULL;
	s->len = 0;
	s->seed = rng_next(rng);
	if (r < 80)
		s->target = 16 + rng_below(rng, 2048);
	else if (r < 98)
		s->target = 2048 + rng_below(rng, 30720);
	else
		s->target = 32768 + rng_below(rng, 229376);
}

static uint64_t str_finish(struct str *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (s->buf[i] != content_byte(s->seed, i))
			bench_fail("string of %zu bytes differs at %zu", s->len, i);
	if (s->buf[s->len] != '\0')
		bench_fail("string of %zu bytes lost its terminator", s->len);
	free(s->buf);
	return s->len;
}

int main(int argc, char **argv)
{
	struct bench_opts o = bench_parse(argc, argv, 1);
	uint64_t appends = scaled(&o, 3000000, 2000);
	struct str strs[NSTRINGS];
	struct bench_rng rng;
	uint64_t sum = 0, finished = 0;

	rng_seed(&rng, 3);
	for (int i = 0; i < NSTRINGS; i++)
		str_start(&strs[i], &rng);
	for (uint64_t n = 0; n < appends; n++) {
		struct str *s = &strs[rng_below(&rng, NSTRINGS)];
		size_t piece = 1 + rng_below(&rng, 48);
		char *grown;

		if (s->len + piece > s->target)
			piece = s->target - s->len;
		grown = realloc(s->buf, s->len + piece + 1);
		if (!grown)
			bench_fail("realloc to %zu returned NULL", s->len + piece + 1);
		check_alignment(grown, s->len + piece + 1);
		for (size_t i = 0; i < piece; i++)
			grown[s->len + i] = content_byte(s->seed, s->len + i);
		s->buf = grown;
		s->len += piece;
		s->buf[s->len] = '\0';
		if (s->len == s->target) {
			sum = mix64(sum, str_finish(s));
			finished++;
			str_start(s, &rng);
		}
	}
	for (int i = 0; i < NSTRINGS; i++)
		if (strs[i].buf)
			sum = mix64(sum, str_finish(&strs[i]));
	printf("result workload=realloc_grow allocator=%s checksum=%016llx appends=%llu strings=%llu\n",
	       bench_allocator(), (unsigned long long)sum,
	       (unsigned long long)appends, (unsigned long long)finished);
	return 0;
}
