/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the upalloc benchmark workloads.
 *
 * Every workload is deterministic (fixed seed, its own PRNG, fixed operation
 * counts) and checks its own results: blocks carry tags that are verified
 * before they are freed, calloc memory is checked for zeroes, realloc'ed
 * strings are checked byte for byte. A workload that finds a wrong result
 * prints "bench: FAIL ..." and exits 1, so a broken allocator cannot look
 * fast. On success the last line of stdout is
 *
 *	result workload=NAME allocator=WHO checksum=HEX [key=value ...]
 *
 * where the checksum depends only on the operation sequence, never on the
 * allocator or on addresses, so that the runner can compare it across
 * allocators. Timing is done by the runner (wall time of the process).
 */
#ifndef UPALLOC_BENCH_H
#define UPALLOC_BENCH_H

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* splitmix64: small, fast, and identical on every machine. */
struct bench_rng {
	uint64_t state;
};

static inline uint64_t rng_next(struct bench_rng *rng)
{
	uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, bound) by multiply-high (no division in the hot loops). */
static inline uint64_t rng_below(struct bench_rng *rng, uint64_t bound)
{
	return (uint64_t)(((unsigned __int128)rng_next(rng) * bound) >> 64);
}

static inline void rng_seed(struct bench_rng *rng, uint64_t seed)
{
	rng->state = seed * 0x2545f4914f6cdd1dULL + 1;
}

static inline uint64_t mix64(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bench_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench: FAIL ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline void *bench_malloc(size_t size)
{
	void *p = malloc(size);

	if (!p)
		bench_fail("malloc(%zu) returned NULL", size);
	return p;
}

/* Keeps the compiler from deleting a malloc/free pair whose block is unused. */
static inline void escape(void *p)
{
	__asm__ volatile("" : : "g"(p) : "memory");
}

/*
 * The alignment malloc promises for a block of this size: 16 bytes
 * (alignof(max_align_t)) on x86-64, less only for blocks smaller than that,
 * which need only the alignment of the largest type that fits.
 */
static inline void check_alignment(const void *p, size_t size)
{
	size_t align = 16;

	while (align > 1 && align > size)
		align >>= 1;
	if ((uintptr_t)p & (align - 1))
		bench_fail("block %p of %zu bytes is not %zu-aligned", p, size, align);
}

/*
 * Tag a block: a word derived from tag at its start and another at its end
 * (blocks of 16 bytes or more), or every byte (smaller blocks). Two live
 * blocks that overlap, a block shorter than asked for, or a block handed out
 * twice break a tag with high probability. Cheap on purpose: the workloads
 * should spend their time in the allocator, not in their own checks.
 */
#define TAG_TAIL_MIX 0xa5a5a5a5a5a5a5a5ULL

static inline void block_tag(void *block, size_t size, uint64_t tag)
{
	unsigned char *p = block;

	check_alignment(block, size);
	if (size >= 16) {
		uint64_t tail = tag ^ TAG_TAIL_MIX;

		memcpy(p, &tag, 8);
		memcpy(p + size - 8, &tail, 8);
		return;
	}
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(tag >> (i * 4));
}

static inline void block_verify(const void *block, size_t size, uint64_t tag)
{
	const unsigned char *p = block;

	if (size >= 16) {
		uint64_t head, tail;

		memcpy(&head, p, 8);
		memcpy(&tail, p + size - 8, 8);
		if (head != tag || tail != (tag ^ TAG_TAIL_MIX))
			bench_fail("block %p (%zu bytes) lost its %s tag", block, size,
				   head != tag ? "head" : "tail");
		return;
	}
	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)(tag >> (i * 4)))
			bench_fail("block %p (%zu bytes) lost its tag at byte %zu",
				   block, size, i);
}

/* Which allocator really serves malloc: probes symbols only each one has. */
static inline const char *bench_allocator(void)
{
	const char *(*backend)(void);

	backend = (const char *(*)(void))dlsym(RTLD_DEFAULT, "upa_backend_name");
	if (backend)
		return strcmp(backend(), "device") == 0 ? "upalloc-device" :
							  "upalloc-mmap";
	if (dlsym(RTLD_DEFAULT, "mallctl"))
		return "jemalloc";
	if (dlsym(RTLD_DEFAULT, "tc_malloc"))
		return "tcmalloc";
	if (dlsym(RTLD_DEFAULT, "mi_malloc"))
		return "mimalloc";
	return "glibc";
}

/* A field of /proc/self/status in kB (VmRSS, VmHWM), or -1. */
static inline long status_kb(const char *field)
{
	char line[256];
	size_t len = strlen(field);
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, len) == 0 && line[len] == ':') {
			kb = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* Common command line: --quick (smoke sizes), --scale=F, --threads=N. */
struct bench_opts {
	double scale;
	int threads;
	int quick;
};

static inline struct bench_opts bench_parse(int argc, char **argv,
					    int default_threads)
{
	struct bench_opts o = { .scale = 1.0, .threads = default_threads };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			o.quick = 1;
			o.scale = 0.1;
		} else if (strncmp(argv[i], "--scale=", 8) == 0) {
			o.scale = strtod(argv[i] + 8, NULL);
		} else if (strncmp(argv[i], "--threads=", 10) == 0) {
			o.threads = atoi(argv[i] + 10);
		} else {
			fprintf(stderr,
				"usage: %s [--quick] [--scale=F] [--threads=N]\n",
				argv[0]);
			exit(2);
		}
	}
	if (!(o.scale > 0) || o.threads < 1) {
		fprintf(stderr, "%s: --scale must be > 0, --threads >= 1\n",
			argv[0]);
		exit(2);
	}
	return o;
}

/* Scale an operation count, never below a floor that still exercises it. */
static inline uint64_t scaled(const struct bench_opts *o, uint64_t full,
			      uint64_t floor)
{
	uint64_t n = (uint64_t)((double)full * o->scale);

	return n < floor ? floor : n;
}

#endif /* UPALLOC_BENCH_H */
