// SPDX-License-Identifier: MIT
/*
 * uring_bench: what the io_uring path of libupalloc (userlib/uring.c) saves,
 * measured on /dev/upalloc in one run, with and without the ring.
 *
 * 1. frees: a free path that gives the pages of each freed chunk back
 *    (decommit). Without the ring every free is one ioctl; with it decommits
 *    are queued and submitted in batches (UPALLOC_URING_BATCH). Reported:
 *    system calls per million frees (counted by the kernel: a perf counter
 *    on raw_syscalls:sys_enter for this thread, or, without perf, the
 *    library's own count), pages decommitted, time.
 * 2. first-touch faults on the allocation path: a top-chunk allocator on a
 *    heap region that raises the break by 128 KiB at a time. With the ring
 *    every break raise queues a background populate of the new pages
 *    (UPALLOC_URING_POPULATE_AHEAD) in io-wq, so the allocating thread finds
 *    them mapped. Workloads: "heap" (write each new 16 KiB block once),
 *    "calloc" (memset each new block), "realloc" (one block grown 4 KiB at a
 *    time, copied to the top every time). Reported: faults taken by the
 *    allocating thread (getrusage RUSAGE_THREAD minflt), faults counted by
 *    the module for the process, time, and the time ratio ring/ioctl.
 *
 * Each mode runs in a fresh child process, so that the library reads its
 * tunables (UPALLOC_URING=0|1) at its first call as a program would.
 * Output: a table, then one "result" line per measurement.
 *
 *   uring_bench [--frees N] [--heap-mib M] [--batch B] [--ahead BYTES]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/upalloc.h"
#include "uring.h"

#define CHUNK_PAGES	4		/* pages given back per free */
#define GROW_STEP	(128 * 1024UL)	/* break raise, like M_TOP_PAD */
#define BLOCK		(16 * 1024UL)

static size_t page;
static int dev = -1;

struct measure {
	double seconds;
	uint64_t syscalls;	/* UINT64_MAX: not measurable */
	uint64_t thread_faults;
	uint64_t module_faults;
	uint64_t pages;		/* decommitted or touched */
	uint64_t ring_active;
	uint64_t submits;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "uring_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A counter of this thread's system calls, or -1 without perf/tracefs. */
static int syscall_counter_open(void)
{
	static const char *const ids[] = {
		"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
		"/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
	};
	struct perf_event_attr attr;
	unsigned long long id = 0;
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		f = fopen(ids[i], "re");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &id) != 1)
			id = 0;
		fclose(f);
		if (id)
			break;
	}
	if (!id)
		return -1;
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = id;
	attr.disabled = 1;
	attr.sample_period = 0;
	return (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1,
			    PERF_FLAG_FD_CLOEXEC);
}

static uint64_t counter_read(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return UINT64_MAX;
	return v;
}

static uint64_t thread_minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

static uint64_t module_faults(void)
{
	struct upalloc_proc_stats ps;

	memset(&ps, 0, sizeof(ps));
	if (ioctl(dev, UPALLOC_IOC_PROC_STATS, &ps))
		return 0;
	return ps.faults;
}

static void start(struct measure *m, int counter)
{
	memset(m, 0, sizeof(*m));
	m->thread_faults = thread_minflt();
	m->module_faults = module_faults();
	if (counter >= 0) {
		ioctl(counter, PERF_EVENT_IOC_RESET, 0);
		ioctl(counter, PERF_EVENT_IOC_ENABLE, 0);
	}
	m->seconds = now();
}

static void stop(struct measure *m, int counter)
{
	struct upa_uring_stats st;

	m->seconds = now() - m->seconds;
	if (counter >= 0)
		ioctl(counter, PERF_EVENT_IOC_DISABLE, 0);
	m->syscalls = counter_read(counter);
	m->thread_faults = thread_minflt() - m->thread_faults;
	m->module_faults = module_faults() - m->module_faults;
	upa_uring_get_stats(&st);
	m->ring_active = st.ring_active;
	m->submits = st.submits + st.waits;
	/* Without perf: the library's enters plus its ioctls. */
	if (m->syscalls == UINT64_MAX && counter < 0)
		m->syscalls = st.submits + st.waits + st.decommits_ioctl +
			      st.populates_ioctl;
}

static char *map_region(size_t len, int flags)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | flags,
		       dev, 0);

	if (p == MAP_FAILED)
		die("mmap /dev/upalloc");
	return p;
}

/* ---- 1: frees that give pages back ------------------------------------- */

static void bench_frees(size_t frees, struct measure *m, int counter)
{
	const size_t chunks = 1024;
	size_t len = chunks * CHUNK_PAGES * page, done = 0, i;
	char *p = map_region(len, 0);
	double busy = 0, t0;

	start(m, counter);
	if (counter >= 0)
		ioctl(counter, PERF_EVENT_IOC_DISABLE, 0);
	while (done < frees) {
		size_t n = frees - done < chunks ? frees - done : chunks;

		/* Allocation side, not measured: the chunks get used. */
		for (i = 0; i < n * CHUNK_PAGES; i++)
			p[i * page] = 1;
		if (counter >= 0)
			ioctl(counter, PERF_EVENT_IOC_ENABLE, 0);
		t0 = now();
		for (i = 0; i < n; i++) {
			if (upa_uring_decommit(p + i * CHUNK_PAGES * page,
					       CHUNK_PAGES * page))
				die("decommit");
		}
		/* The allocator settles them before the chunks are reused. */
		upa_uring_flush();
		busy += now() - t0;
		if (counter >= 0)
			ioctl(counter, PERF_EVENT_IOC_DISABLE, 0);
		done += n;
		m->pages += n * CHUNK_PAGES;
	}
	stop(m, counter);
	m->seconds = busy;
	/* The faults were the unmeasured allocation side's: not reported. */
	m->thread_faults = 0;
	m->module_faults = 0;
	munmap(p, len);
}

/* ---- 2: first-touch faults on the allocation path ---------------------- */

/*
 * A top-chunk allocator on one heap region: bump pointer; the break is
 * kept GROW_STEP beyond the last request, like glibc's M_TOP_PAD.
 * Populate-ahead keeps [top, top + ahead) populated or in flight: when the
 * populated watermark is less than ahead/2 in front of top it queues the
 * next stretch, so the background populate works on pages that will be
 * touched a while later, not on the ones being touched right now.
 */
struct top_heap {
	char *base;
	size_t reserve, brk, top;
	size_t populated;	/* watermark: populate requested below it */
	size_t ahead;		/* upa_uring_populate_ahead_bytes() */
};

static void top_init(struct top_heap *h, size_t reserve)
{
	h->base = map_region(reserve, MAP_NORESERVE);
	h->reserve = reserve;
	h->brk = 0;
	h->top = 0;
	h->populated = 0;
	h->ahead = upa_uring_available() ? upa_uring_populate_ahead_bytes() : 0;
}

static void top_grow(struct top_heap *h, size_t need)
{
	size_t new_brk = h->brk;
	struct upalloc_brk b;

	while (new_brk < h->top + need + GROW_STEP)
		new_brk += GROW_STEP;
	if (new_brk > h->reserve)
		new_brk = h->reserve;
	if (new_brk < h->top + need) {
		errno = ENOMEM;
		die("heap full");
	}
	memset(&b, 0, sizeof(b));
	b.addr = (uintptr_t)h->base;
	b.new_brk = new_brk;
	if (ioctl(dev, UPALLOC_IOC_SET_BRK, &b))
		die("SET_BRK");
	h->brk = new_brk;
}

/* The allocation-path hook: one comparison unless a stretch is due. */
static void top_populate_ahead(struct top_heap *h)
{
	size_t want = h->top + h->ahead, from;

	if (!h->ahead || h->populated >= h->top + h->ahead / 2)
		return;
	if (want > h->brk)
		want = h->brk;
	from = h->populated > h->top ? h->populated : h->top;
	from = (from + page - 1) & ~(page - 1);
	want &= ~(page - 1);
	if (want > from)
		upa_uring_populate_ahead(h->base + from, want - from);
	h->populated = want;
}

static char *top_alloc(struct top_heap *h, size_t n)
{
	char *p;

	if (h->top + n > h->brk)
		top_grow(h, n);
	p = h->base + h->top;
	h->top += n;
	top_populate_ahead(h);
	return p;
}

static void top_destroy(struct top_heap *h)
{
	upa_uring_reclaim(h->base, h->reserve);
	munmap(h->base, h->reserve);
}

enum touch_kind { TOUCH_HEAP, TOUCH_CALLOC, TOUCH_REALLOC };

static void bench_touch(enum touch_kind kind, size_t heap_bytes,
			struct measure *m, int counter)
{
	struct top_heap h;
	size_t i, blocks = heap_bytes / BLOCK;

	top_init(&h, 4 * heap_bytes + 4 * GROW_STEP);
	start(m, counter);
	if (kind == TOUCH_REALLOC) {
		/* realloc growth at the top: move, copy, grow by a page. */
		size_t size = page;
		char *cur = top_alloc(&h, size);

		memset(cur, 1, size);
		while (h.top + size + page <= 2 * heap_bytes) {
			char *next = top_alloc(&h, size + page);

			memcpy(next, cur, size);
			next[size] = 1;
			size += page;
			cur = next;
		}
		m->pages = h.top / page;
	} else {
		for (i = 0; i < blocks; i++) {
			char *b = top_alloc(&h, BLOCK);

			if (kind == TOUCH_CALLOC) {
				memset(b, 0, BLOCK);
			} else {
				size_t off;

				for (off = 0; off < BLOCK; off += page)
					b[off] = (char)i;
			}
		}
		m->pages = blocks * BLOCK / page;
	}
	stop(m, counter);
	top_destroy(&h);
}

/* ---- driver ------------------------------------------------------------ */

struct job {
	const char *name;
	int kind;		/* -1: frees, else enum touch_kind */
};

static const struct job jobs[] = {
	{ "frees", -1 },
	{ "heap", TOUCH_HEAP },
	{ "calloc", TOUCH_CALLOC },
	{ "realloc", TOUCH_REALLOC },
};

/* Run one job in a child with UPALLOC_URING=ring; the result via a pipe. */
static int run_job(const struct job *j, bool ring, size_t frees,
		   size_t heap_bytes, struct measure *out)
{
	int pfd[2], status;
	pid_t pid;

	if (pipe(pfd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		struct measure m;
		int counter;

		close(pfd[0]);
		setenv("UPALLOC_URING", ring ? "1" : "0", 1);
		upa_uring_attach(dev, NULL);
		if (ring && !upa_uring_available())
			_exit(77);
		counter = syscall_counter_open();
		if (j->kind < 0)
			bench_frees(frees, &m, counter);
		else
			bench_touch((enum touch_kind)j->kind, heap_bytes, &m, counter);
		if (counter < 0)
			m.syscalls |= 1ULL << 63;	/* marks "estimated" */
		if (write(pfd[1], &m, sizeof(m)) != sizeof(m))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], out, sizeof(*out)) != sizeof(*out))
		memset(out, 0, sizeof(*out));
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void usage(void)
{
	fprintf(stderr, "usage: uring_bench [--frees N] [--heap-mib M] "
		"[--batch B] [--ahead BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "frees", required_argument, NULL, 'f' },
		{ "heap-mib", required_argument, NULL, 'm' },
		{ "batch", required_argument, NULL, 'b' },
		{ "ahead", required_argument, NULL, 'a' },
		{ "reps", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	size_t frees = 100000, heap_bytes = 32UL << 20;
	unsigned int reps = 3;
	size_t i;
	int c, failed = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			frees = strtoul(optarg, NULL, 0);
			break;
		case 'm':
			heap_bytes = strtoul(optarg, NULL, 0) << 20;
			break;
		case 'b':
			setenv("UPALLOC_URING_BATCH", optarg, 1);
			break;
		case 'a':
			setenv("UPALLOC_URING_POPULATE_AHEAD", optarg, 1);
			break;
		case 'r':
			reps = (unsigned int)strtoul(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (!frees || heap_bytes < (1UL << 20) || !reps)
		usage();
	page = (size_t)sysconf(_SC_PAGESIZE);
	dev = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		printf("uring_bench: SKIP: %s: %s\n", UPALLOC_DEVICE_PATH,
		       strerror(errno));
		return 4;
	}
	if (!getenv("UPALLOC_URING_POPULATE_AHEAD")) {
		char v[32];

		/* Populate every break raise whole. */
		snprintf(v, sizeof(v), "%lu", GROW_STEP);
		setenv("UPALLOC_URING_POPULATE_AHEAD", v, 1);
	}

	printf("# best of %u runs per line; thr.faults: faults taken by the "
	       "allocating thread\n", reps);
	printf("%-8s %-6s %10s %12s %14s %14s %12s %10s\n", "job", "mode",
	       "pages", "seconds", "syscalls", "syscalls/1Mop", "thr.faults",
	       "mod.faults");
	for (i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		struct measure r[2], rm;
		int st[2] = { 0, 0 };
		unsigned int k;
		int mode;

		/*
		 * The fastest of reps runs per mode, the modes alternating so
		 * that a busy spell of the (shared, TCG) host hits both.
		 */
		memset(r, 0, sizeof(r));
		for (k = 0; k < reps; k++) {
			for (mode = 0; mode < 2; mode++) {
				if (st[mode])
					continue;
				st[mode] = run_job(&jobs[i], mode, frees, heap_bytes, &rm);
				if (!st[mode] && (!k || rm.seconds < r[mode].seconds))
					r[mode] = rm;
			}
		}
		for (mode = 0; mode < 2; mode++) {
			struct measure *m = &r[mode];
			bool estimated;
			uint64_t ops;

			if (st[mode] == 77) {
				printf("%-8s %-6s SKIP: io_uring not usable\n",
				       jobs[i].name, "ring");
				m->seconds = 0;
				continue;
			}
			if (st[mode]) {
				printf("%-8s %-6s FAIL (status %d)\n", jobs[i].name,
				       mode ? "ring" : "ioctl", st[mode]);
				failed = 1;
				m->seconds = 0;
				continue;
			}
			estimated = m->syscalls >> 63;
			m->syscalls &= ~(1ULL << 63);
			ops = jobs[i].kind < 0 ? frees : m->pages;
			printf("%-8s %-6s %10" PRIu64 " %12.4f %13" PRIu64 "%s %14.0f %12" PRIu64
			       " %10" PRIu64 "\n", jobs[i].name,
			       mode ? "ring" : "ioctl", m->pages, m->seconds,
			       m->syscalls, estimated ? "~" : " ",
			       ops ? (double)m->syscalls * 1e6 / (double)ops : 0.0,
			       m->thread_faults, m->module_faults);
			printf("result job=%s mode=%s pages=%" PRIu64
			       " seconds=%.6f syscalls=%" PRIu64
			       " syscalls_estimated=%d per_million=%.1f"
			       " thread_faults=%" PRIu64 " module_faults=%" PRIu64
			       " ring_active=%" PRIu64 "\n",
			       jobs[i].name, mode ? "ring" : "ioctl", m->pages,
			       m->seconds, m->syscalls, estimated,
			       ops ? (double)m->syscalls * 1e6 / (double)ops : 0.0,
			       m->thread_faults, m->module_faults, m->ring_active);
		}
		if (r[0].seconds > 0 && r[1].seconds > 0)
			printf("ratio job=%s time_ring_over_ioctl=%.3f\n",
			       jobs[i].name, r[1].seconds / r[0].seconds);
	}
	close(dev);
	return failed;
}
