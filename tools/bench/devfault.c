// SPDX-License-Identifier: MIT
/*
 * devfault: the cost of first-touch faults and of populating on a
 * /dev/upalloc region, next to anonymous memory, in the same process.
 *
 * Usage: devfault [--quick] [--pages=N] [--reps=R] [--threads=T] [--test=NAME]
 *                 [--chunked]
 * (--test: only that one, e.g. to profile it)
 *
 * For each kind of memory (dev: a plain MAP_SHARED mapping of /dev/upalloc,
 * committed whole; anon: MAP_PRIVATE | MAP_ANONYMOUS, with transparent huge
 * pages disabled for the process (PR_SET_THP_DISABLE, also covering
 * MAP_POPULATE) so that both sides fault 4 KiB pages) it times, on a fresh mapping of N
 * pages each time, the median of R repetitions of:
 *
 *   touch     one write per page, in address order (one fault per page)
 *   stream    memset of the whole mapping (faults plus writing every byte)
 *   threads   T threads, each writing one byte per page of its own slice
 *   populate  dev: mmap + UPALLOC_IOC_POPULATE; anon: mmap(MAP_POPULATE)
 *   touch_populated  one write per page after populating (no faults left)
 *   unmap     munmap of a mapping whose pages are all present
 *
 * and prints nanoseconds per page and the ratios dev/anon, and populate
 * against first touch; then the same per-page times and ratios for the
 * fastest repetition of each ("min" lines). Every mapping is checked (written bytes read back,
 * untouched bytes zero, POPULATE's nr_pages) outside the timed sections.
 * --chunked measures instead, for a loaded host, touch and populate in
 * chunks of 64 pages, dev and anon chunks alternating within one pass
 * over two fresh mappings (populate: UPALLOC_IOC_POPULATE against
 * MADV_POPULATE_WRITE), and prints the median chunk per kind over all
 * repetitions: a chunk takes well under a host time slice, so the
 * chunks during which the host ran something else are outliers on both
 * sides, which the medians drop.
 *
 * Exit 4 (kselftest skip) when /dev/upalloc is missing.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "uapi/upalloc.h"
#include "bench.h"

#define KSFT_SKIP 4

enum kind { DEV, ANON };
static const char *const kind_name[] = { [DEV] = "dev", [ANON] = "anon" };

static int dev_fd = -1;
static size_t page_size;

static unsigned char *map_region(enum kind kind, size_t len, int populate)
{
	void *p;

	if (kind == DEV) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dev_fd, 0);
		if (p == MAP_FAILED)
			bench_fail("mmap of %zu bytes of %s: %s", len,
				   UPALLOC_DEVICE_PATH, strerror(errno));
		if (populate) {
			struct upalloc_range r = {
				.addr = (uintptr_t)p,
				.len = len,
			};

			if (ioctl(dev_fd, UPALLOC_IOC_POPULATE, &r))
				bench_fail("UPALLOC_IOC_POPULATE: %s", strerror(errno));
			if (r.nr_pages != len / page_size)
				bench_fail("UPALLOC_IOC_POPULATE allocated %llu pages, not %zu",
					   (unsigned long long)r.nr_pages,
					   len / page_size);
		}
		return p;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
	if (p == MAP_FAILED)
		bench_fail("anonymous mmap of %zu bytes: %s", len, strerror(errno));
	return p;
}

static void touch_pages(unsigned char *p, size_t npages, unsigned char v)
{
	for (size_t i = 0; i < npages; i++)
		((volatile unsigned char *)p)[i * page_size] = v;
}

/* Outside the timing: written bytes are there, the rest of a page is 0. */
static void verify_pages(const unsigned char *p, size_t npages, int written,
			 unsigned char v)
{
	for (size_t i = 0; i < npages; i++) {
		const unsigned char *page = p + i * page_size;

		if (written && page[0] != v)
			bench_fail("page %zu lost its written byte", i);
		if (!written && page[0] != 0)
			bench_fail("page %zu is not zero-filled", i);
		if (page[page_size / 2] != 0 || page[page_size - 1] != 0)
			bench_fail("page %zu is not zero-filled", i);
	}
}

struct slice {
	unsigned char *p;
	size_t npages;
	pthread_barrier_t *start;
};

static void *slice_touch(void *arg)
{
	struct slice *s = arg;

	pthread_barrier_wait(s->start);
	touch_pages(s->p, s->npages, 0x5a);
	return NULL;
}

enum test { T_TOUCH, T_STREAM, T_THREADS, T_POPULATE, T_TOUCH_POPULATED,
	    T_UNMAP, NTESTS };
static const char *const test_name[] = {
	[T_TOUCH] = "touch", [T_STREAM] = "stream", [T_THREADS] = "threads",
	[T_POPULATE] = "populate", [T_TOUCH_POPULATED] = "touch_populated",
	[T_UNMAP] = "unmap",
};

/* One timed pass of test on a fresh mapping; returns nanoseconds. */
static uint64_t one_pass(enum kind kind, enum test test, size_t npages,
			 int nthreads)
{
	size_t len = npages * page_size;
	unsigned char *p = NULL;
	uint64_t t0 = 0, t1 = 0;

	switch (test) {
	case T_TOUCH:
		p = map_region(kind, len, 0);
		t0 = now_ns();
		touch_pages(p, npages, 0xa5);
		t1 = now_ns();
		verify_pages(p, npages, 1, 0xa5);
		break;
	case T_STREAM:
		p = map_region(kind, len, 0);
		t0 = now_ns();
		memset(p, 0x3c, len);
		t1 = now_ns();
		for (size_t i = 0; i < len; i += 1021)
			if (p[i] != 0x3c)
				bench_fail("byte %zu lost its value after memset", i);
		break;
	case T_THREADS: {
		pthread_t tid[nthreads];
		struct slice s[nthreads];
		pthread_barrier_t start;
		size_t per = npages / nthreads;

		p = map_region(kind, len, 0);
		pthread_barrier_init(&start, NULL, nthreads + 1);
		for (int t = 0; t < nthreads; t++) {
			s[t] = (struct slice){
				.p = p + t * per * page_size,
				.npages = t == nthreads - 1 ? npages - t * per : per,
				.start = &start,
			};
			if (pthread_create(&tid[t], NULL, slice_touch, &s[t]))
				bench_fail("pthread_create");
		}
		t0 = now_ns();
		pthread_barrier_wait(&start);
		for (int t = 0; t < nthreads; t++)
			pthread_join(tid[t], NULL);
		t1 = now_ns();
		pthread_barrier_destroy(&start);
		verify_pages(p, npages, 1, 0x5a);
		break;
	}
	case T_POPULATE:
		t0 = now_ns();
		p = map_region(kind, len, 1);
		t1 = now_ns();
		verify_pages(p, npages, 0, 0);
		break;
	case T_TOUCH_POPULATED:
		p = map_region(kind, len, 1);
		t0 = now_ns();
		touch_pages(p, npages, 0x77);
		t1 = now_ns();
		verify_pages(p, npages, 1, 0x77);
		break;
	case T_UNMAP:
		p = map_region(kind, len, 0);
		touch_pages(p, npages, 0x11);
		t0 = now_ns();
		if (munmap(p, len))
			bench_fail("munmap: %s", strerror(errno));
		t1 = now_ns();
		return t1 - t0;
	default:
		bench_fail("unknown test %d", test);
	}
	if (munmap(p, len))
		bench_fail("munmap: %s", strerror(errno));
	return t1 - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

#define CHUNK_PAGES 64

enum chunked_test { C_TOUCH, C_POPULATE, NCHUNKED };
static const char *const chunked_name[] = {
	[C_TOUCH] = "touch", [C_POPULATE] = "populate",
};

/* Populate pages [first, first + n) of p, of either kind; checked. */
static void populate_chunk(enum kind kind, unsigned char *p, size_t first,
			   size_t n)
{
	unsigned char *at = p + first * page_size;

	if (kind == DEV) {
		struct upalloc_range r = {
			.addr = (uintptr_t)at,
			.len = n * page_size,
		};

		if (ioctl(dev_fd, UPALLOC_IOC_POPULATE, &r))
			bench_fail("UPALLOC_IOC_POPULATE: %s", strerror(errno));
		if (r.nr_pages != n)
			bench_fail("UPALLOC_IOC_POPULATE allocated %llu pages, not %zu",
				   (unsigned long long)r.nr_pages, n);
	} else if (madvise(at, n * page_size, MADV_POPULATE_WRITE)) {
		bench_fail("MADV_POPULATE_WRITE: %s", strerror(errno));
	}
}

/*
 * --chunked: touch and populate timed per chunk of CHUNK_PAGES, dev and
 * anon chunks alternating; prints the median chunk's ns/page per kind.
 */
static void run_chunked(size_t npages, int reps)
{
	size_t nchunks = npages / CHUNK_PAGES, n = nchunks * reps;
	uint64_t *t[NCHUNKED][2];
	double med[NCHUNKED][2];

	for (int c = 0; c < NCHUNKED; c++)
		for (int kind = 0; kind < 2; kind++) {
			t[c][kind] = calloc(n, sizeof(uint64_t));
			if (!t[c][kind])
				bench_fail("out of memory");
		}
	for (int r = 0; r < reps; r++) {
		for (int c = 0; c < NCHUNKED; c++) {
			unsigned char *p[2];

			for (int kind = 0; kind < 2; kind++)
				p[kind] = map_region(kind, npages * page_size, 0);
			for (size_t i = 0; i < nchunks; i++) {
				for (int kind = 0; kind < 2; kind++) {
					size_t first = i * CHUNK_PAGES;
					uint64_t t0 = now_ns();

					if (c == C_TOUCH)
						touch_pages(p[kind] + first * page_size,
							    CHUNK_PAGES, 0x6b);
					else
						populate_chunk(kind, p[kind], first,
							       CHUNK_PAGES);
					t[c][kind][r * nchunks + i] = now_ns() - t0;
				}
			}
			for (int kind = 0; kind < 2; kind++) {
				verify_pages(p[kind], nchunks * CHUNK_PAGES,
					     c == C_TOUCH, 0x6b);
				if (munmap(p[kind], npages * page_size))
					bench_fail("munmap: %s", strerror(errno));
			}
		}
	}
	for (int c = 0; c < NCHUNKED; c++)
		for (int kind = 0; kind < 2; kind++) {
			qsort(t[c][kind], n, sizeof(uint64_t), cmp_u64);
			med[c][kind] = (double)t[c][kind][n / 2] / CHUNK_PAGES;
			free(t[c][kind]);
		}
	printf("devfault --chunked: %zu chunks of %d pages, %d repetitions, median chunk\n",
	       nchunks, CHUNK_PAGES, reps);
	printf("%-16s %12s %12s %10s\n", "ns/page", "dev", "anon", "dev/anon");
	for (int c = 0; c < NCHUNKED; c++)
		printf("%-16s %12.1f %12.1f %10.3f\n", chunked_name[c],
		       med[c][DEV], med[c][ANON], med[c][DEV] / med[c][ANON]);
	printf("dev populate / anon touch %.3f; anon populate / anon touch %.3f\n",
	       med[C_POPULATE][DEV] / med[C_TOUCH][ANON],
	       med[C_POPULATE][ANON] / med[C_TOUCH][ANON]);
}

int main(int argc, char **argv)
{
	size_t npages = 16384;
	int reps = 5, quick = 0, only = -1, chunked = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nthreads = ncpu > 4 ? 4 : ncpu < 2 ? 2 : (int)ncpu;
	double ns[2][NTESTS], mins[2][NTESTS];
	struct upalloc_version ver = { 0 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
			npages = 4096;
			reps = 3;
		} else if (strcmp(argv[i], "--chunked") == 0) {
			chunked = 1;
		} else if (strncmp(argv[i], "--pages=", 8) == 0) {
			npages = strtoul(argv[i] + 8, NULL, 10);
		} else if (strncmp(argv[i], "--reps=", 7) == 0) {
			reps = atoi(argv[i] + 7);
		} else if (strncmp(argv[i], "--threads=", 10) == 0) {
			nthreads = atoi(argv[i] + 10);
		} else if (strncmp(argv[i], "--test=", 7) == 0) {
			for (int t = 0; t < NTESTS; t++)
				if (strcmp(argv[i] + 7, test_name[t]) == 0)
					only = t;
			if (only < 0) {
				fprintf(stderr, "%s: unknown test %s\n", argv[0], argv[i] + 7);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [--quick] [--pages=N] [--reps=R] [--threads=T] [--test=NAME] [--chunked]\n",
				argv[0]);
			return 2;
		}
	}
	if (npages < 64 || reps < 1 || nthreads < 1) {
		fprintf(stderr, "%s: need --pages >= 64, --reps >= 1, --threads >= 1\n",
			argv[0]);
		return 2;
	}
	page_size = sysconf(_SC_PAGESIZE);
	/* 4 KiB faults on both sides, MAP_POPULATE included. */
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		bench_fail("PR_SET_THP_DISABLE: %s", strerror(errno));
	dev_fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0) {
		printf("devfault: SKIP %s: %s\n", UPALLOC_DEVICE_PATH, strerror(errno));
		return KSFT_SKIP;
	}
	if (ioctl(dev_fd, UPALLOC_IOC_VERSION, &ver))
		bench_fail("UPALLOC_IOC_VERSION: %s", strerror(errno));
	if (ver.max_region_bytes && npages * page_size > ver.max_region_bytes)
		npages = ver.max_region_bytes / page_size;
	if (chunked) {
		run_chunked(npages, reps);
		close(dev_fd);
		return 0;
	}

	for (int test = 0; test < NTESTS; test++) {
		uint64_t t[2][reps];

		if (only >= 0 && test != only) {
			ns[DEV][test] = ns[ANON][test] = 0;
			mins[DEV][test] = mins[ANON][test] = 0;
			continue;
		}
		/* dev and anon alternate, so that drift hits both alike. */
		for (int r = 0; r < reps; r++)
			for (int kind = 0; kind < 2; kind++)
				t[kind][r] = one_pass(kind, test, npages, nthreads);
		for (int kind = 0; kind < 2; kind++) {
			qsort(t[kind], reps, sizeof(t[kind][0]), cmp_u64);
			ns[kind][test] = (double)t[kind][reps / 2] / npages;
			mins[kind][test] = (double)t[kind][0] / npages;
		}
	}

	printf("devfault: %zu pages of %zu bytes, median of %d, %d threads%s\n",
	       npages, page_size, reps, nthreads, quick ? " (quick)" : "");
	printf("%-16s %12s %12s %10s\n", "ns/page", "dev", "anon", "dev/anon");
	if (only >= 0) {
		printf("%-16s %12.1f %12.1f %10.3f\n", test_name[only],
		       ns[DEV][only], ns[ANON][only], ns[DEV][only] / ns[ANON][only]);
		printf("min %-12s %12.1f %12.1f %10.3f\n", test_name[only],
		       mins[DEV][only], mins[ANON][only],
		       mins[DEV][only] / mins[ANON][only]);
		return 0;
	}
	for (int test = 0; test < NTESTS; test++)
		printf("%-16s %12.1f %12.1f %10.3f\n", test_name[test],
		       ns[DEV][test], ns[ANON][test],
		       ns[DEV][test] / ns[ANON][test]);
	/*
	 * The fastest repetition too: on a loaded host (a TCG guest whose
	 * vCPUs are descheduled at random) it is the least disturbed one.
	 */
	for (int test = 0; test < NTESTS; test++)
		printf("min %-12s %12.1f %12.1f %10.3f\n", test_name[test],
		       mins[DEV][test], mins[ANON][test],
		       mins[DEV][test] / mins[ANON][test]);
	printf("populate/first-touch: dev %.3f, anon %.3f; dev populate / anon touch %.3f\n",
	       ns[DEV][T_POPULATE] / ns[DEV][T_TOUCH],
	       ns[ANON][T_POPULATE] / ns[ANON][T_TOUCH],
	       ns[DEV][T_POPULATE] / ns[ANON][T_TOUCH]);

	printf("result workload=devfault checksum=%016llx pages=%zu reps=%d threads=%d",
	       (unsigned long long)mix64(npages, reps), npages, reps, nthreads);
	for (int test = 0; test < NTESTS; test++)
		for (int kind = 0; kind < 2; kind++)
			printf(" %s_%s_ns=%.1f", kind_name[kind], test_name[test],
			       ns[kind][test]);
	printf("\n");
	close(dev_fd);
	return 0;
}
