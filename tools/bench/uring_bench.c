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
 *
 * 3. --lib PATH: the whole library (libupalloc.so preloaded) instead of
 *    uring.c alone, in three modes: "ioctl" (UPALLOC_URING=0), "ring"
 *    (UPALLOC_URING=1, populate-ahead off) and "ahead" (ring, populate-ahead
 *    UPALLOC_URING_POPULATE_AHEAD = --ahead, default 128 KiB), interleaved
 *    (the mode order rotates per repetition), the median of --reps runs.
 *    Workloads (--lib-workloads, comma-separated): "trimfree" (this
 *    program: rounds of 64 blocks of 128 KiB, one byte written per page,
 *    freed newest first, so that every free trims the heap), "bigheap"
 *    (this program: rounds of --heap-mib MiB in 16 KiB blocks, every page
 *    written, freed oldest first) and the bench workloads churn,
 *    calloc_blocks, realloc_grow and fragment (build/bench/, --quick when
 *    --quick is given). Counted for the whole process tree: system calls
 *    (an inherited perf counter on raw_syscalls:sys_enter), page faults
 *    (wait4's ru_minflt), the module's fault count (UPALLOC_STATS=1 at
 *    exit: first touches of device memory, the allocation path's; POPULATE
 *    maps without faults), pages populated, CPU seconds (user + system,
 *    io-wq included) and wall seconds.
 *
 *   uring_bench --lib build/userlib/libupalloc.so [--quick] [--reps R]
 *               [--lib-workloads trimfree,bigheap,calloc_blocks,...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <malloc.h>
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
#include "syscall_counter.h"

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
		counter = syscall_counter_open(0);
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

/* ---- 3. the whole library, preloaded ------------------------------------ */

#define LIB_TRIM_BLOCK	(128UL << 10)
#define LIB_TRIM_BLOCKS	64
#define LIB_BIG_BLOCK	(16UL << 10)
#define LIB_MODES	3

static const char *const lib_mode_names[LIB_MODES] = { "ioctl", "ring",
							 "ahead" };

/* Run in the preloaded child: every free of a round trims the heap. */
static int lib_job_trimfree(size_t frees)
{
	static char *p[LIB_TRIM_BLOCKS];
	size_t done = 0, off;
	int i, r;

	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 10);
	mallopt(M_TOP_PAD, 0);
	for (r = 1; done < frees; r++) {
		for (i = 0; i < LIB_TRIM_BLOCKS; i++) {
			p[i] = malloc(LIB_TRIM_BLOCK);
			if (!p[i])
				return 1;
			for (off = 0; off < LIB_TRIM_BLOCK; off += page)
				p[i][off] = (char)(r + i);
		}
		for (i = LIB_TRIM_BLOCKS - 1; i >= 0; i--) {
			if (p[i][page] != (char)(r + i))
				return 1;
			free(p[i]);
		}
		done += LIB_TRIM_BLOCKS;
	}
	printf("frees=%zu\n", done);
	return 0;
}

/* A large heap built, written and freed, 4 times. */
static int lib_job_bigheap(size_t heap_bytes)
{
	size_t n = heap_bytes / LIB_BIG_BLOCK, i, off;
	char **p = malloc(n * sizeof(*p));
	int r;

	if (!p)
		return 1;
	for (r = 1; r <= 4; r++) {
		for (i = 0; i < n; i++) {
			p[i] = malloc(LIB_BIG_BLOCK - 64);
			if (!p[i])
				return 1;
			for (off = 0; off < LIB_BIG_BLOCK - 64; off += page)
				p[i][off] = (char)(r + i);
		}
		for (i = 0; i < n; i++) {
			if (p[i][0] != (char)(r + i))
				return 1;
			free(p[i]);
		}
	}
	free(p);
	printf("pages=%zu\n", 4 * heap_bytes / page);
	return 0;
}

struct lib_result {
	double wall, cpu;
	uint64_t syscalls, faults, ops;
	uint64_t populated;	/* pages populated ahead (module, at exit) */
	uint64_t mod_faults;	/* faults the module served (at exit) */
	int status;
};

/* The number after "name =" in the library's UPALLOC_STATS=1 output. */
static uint64_t stats_value(const char *text, const char *name)
{
	const char *s = strstr(text, name);

	if (!s)
		return 0;
	s = strchr(s, '=');
	return s ? strtoull(s + 1, NULL, 10) : 0;
}

/* One run of workload argv under the library in mode; 0 or -1. */
static int lib_run(char *const argv[], const char *lib, int mode,
		   struct lib_result *res)
{
	int counter = syscall_counter_open(1), ofd, efd, status;
	static char out[65536];
	struct rusage ru;
	const char *s;
	double t0;
	ssize_t n;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	ofd = memfd_create("lib-out", 0);
	efd = memfd_create("lib-err", 0);
	if (ofd < 0 || efd < 0)
		die("memfd_create");
	if (counter >= 0) {
		ioctl(counter, PERF_EVENT_IOC_RESET, 0);
		ioctl(counter, PERF_EVENT_IOC_ENABLE, 0);
	}
	t0 = now();
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		char ahead[32];

		dup2(ofd, 1);
		dup2(efd, 2);
		setenv("LD_PRELOAD", lib, 1);
		/* malloc_stats() at exit: the module's counters of the run. */
		setenv("UPALLOC_STATS", "1", 1);
		setenv("UPALLOC_BACKEND", "device", 1);
		setenv("UPALLOC_URING", mode ? "1" : "0", 1);
		snprintf(ahead, sizeof(ahead), "%s",
			 mode == 2 ? getenv("UB_AHEAD") : "0");
		setenv("UPALLOC_URING_POPULATE_AHEAD", ahead, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) != pid)
		die("wait4");
	res->wall = now() - t0;
	if (counter >= 0) {
		ioctl(counter, PERF_EVENT_IOC_DISABLE, 0);
		res->syscalls = counter_read(counter);
		close(counter);
	} else {
		res->syscalls = UINT64_MAX;
	}
	res->cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	res->faults = (uint64_t)ru.ru_minflt;
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	n = pread(ofd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(ofd);
	s = strstr(out, "frees=");
	if (s)
		res->ops = strtoull(s + 6, NULL, 10);
	n = pread(efd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(efd);
	res->populated = stats_value(out, "pages populated");
	res->mod_faults = stats_value(out, "\nfaults ");
	return res->status ? -1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int lib_bench(const char *self, const char *lib, const char *list,
		     bool quick, unsigned int reps, size_t frees,
		     size_t heap_bytes)
{
	char names[512], *save = NULL, *w;
	int failed = 0;

	if (!getenv("UB_AHEAD"))
		setenv("UB_AHEAD", "131072", 1);
	snprintf(names, sizeof(names), "%s", list);
	printf("# libupalloc preloaded (%s); median of %u runs, modes "
	       "interleaved; ahead = UPALLOC_URING_POPULATE_AHEAD=%s\n", lib,
	       reps, getenv("UB_AHEAD"));
	printf("# faults: the process's minflt (wait4); alloc.faults: the "
	       "module's fault count (device memory; populate takes none)\n");
	printf("%-14s %-6s %12s %14s %10s %12s %10s %10s %10s\n", "workload",
	       "mode", "syscalls", "per 1M frees", "faults", "alloc.faults",
	       "populated", "cpu s", "wall s");
	for (w = strtok_r(names, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		double wall[LIB_MODES][16], cpu[LIB_MODES][16];
		double fl[LIB_MODES][16], sc[LIB_MODES][16];
		double af[LIB_MODES][16], pp[LIB_MODES][16];
		double med_cpu[LIB_MODES], med_wall[LIB_MODES];
		char path[4096], arg1[64], arg2[64];
		char *argv[5] = { NULL };
		uint64_t ops = 0;
		unsigned int k, m, nrep = reps > 16 ? 16 : reps;
		bool bad = false;

		if (!strcmp(w, "trimfree") || !strcmp(w, "bigheap")) {
			snprintf(arg1, sizeof(arg1), "--lib-job=%s", w);
			snprintf(arg2, sizeof(arg2), "%zu",
				 !strcmp(w, "trimfree") ? frees : heap_bytes);
			argv[0] = (char *)self;
			argv[1] = arg1;
			argv[2] = arg2;
		} else {
			snprintf(path, sizeof(path), "%.*s/%s",
				 (int)(strrchr(self, '/') ? strrchr(self, '/') - self : 1),
				 strrchr(self, '/') ? self : ".", w);
			argv[0] = path;
			argv[1] = quick ? "--quick" : NULL;
		}
		for (k = 0; k < nrep && !bad; k++) {
			for (m = 0; m < LIB_MODES; m++) {
				unsigned int mode = (m + k) % LIB_MODES;
				struct lib_result r;

				if (lib_run(argv, lib, (int)mode, &r)) {
					printf("%-14s %-6s FAIL (status %d)\n", w,
					       lib_mode_names[mode], r.status);
					bad = true;
					break;
				}
				wall[mode][k] = r.wall;
				cpu[mode][k] = r.cpu;
				fl[mode][k] = (double)r.faults;
				/*
				 * The module's faults: since eb8b7ce POPULATE
				 * maps its pages with vm_insert_pages(), no
				 * fault, so these are the program's own (the
				 * process's minflt also counts faults on other
				 * memory: stacks, libraries, anonymous mmaps).
				 */
				af[mode][k] = (double)r.mod_faults;
				pp[mode][k] = (double)r.populated;
				sc[mode][k] = r.syscalls == UINT64_MAX ? -1 :
					      (double)r.syscalls;
				ops = r.ops;
			}
		}
		if (bad) {
			failed = 1;
			continue;
		}
		for (m = 0; m < LIB_MODES; m++) {
			double syscalls = median(sc[m], nrep);
			double faults = median(fl[m], nrep);
			double alloc_faults = median(af[m], nrep);
			double populated = median(pp[m], nrep);

			med_cpu[m] = median(cpu[m], nrep);
			med_wall[m] = median(wall[m], nrep);
			printf("%-14s %-6s %12.0f %14.0f %10.0f %12.0f %10.0f %10.3f %10.3f\n",
			       w, lib_mode_names[m], syscalls,
			       ops ? syscalls * 1e6 / (double)ops : 0.0, faults,
			       alloc_faults, populated, med_cpu[m], med_wall[m]);
			printf("libresult workload=%s mode=%s syscalls=%.0f "
			       "frees=%" PRIu64 " faults=%.0f alloc_faults=%.0f "
			       "populated=%.0f cpu=%.4f wall=%.4f\n",
			       w, lib_mode_names[m], syscalls, ops, faults,
			       alloc_faults, populated, med_cpu[m], med_wall[m]);
		}
		printf("libratio workload=%s cpu_ring_over_ioctl=%.3f "
		       "cpu_ahead_over_ioctl=%.3f wall_ring_over_ioctl=%.3f "
		       "wall_ahead_over_ioctl=%.3f\n", w,
		       med_cpu[1] / med_cpu[0], med_cpu[2] / med_cpu[0],
		       med_wall[1] / med_wall[0], med_wall[2] / med_wall[0]);
	}
	return failed;
}

static void usage(void)
{
	fprintf(stderr, "usage: uring_bench [--frees N] [--heap-mib M] "
		"[--batch B] [--ahead BYTES] [--reps R]\n"
		"       uring_bench --lib LIBUPALLOC.so [--lib-workloads W,...] "
		"[--quick] [--frees N] [--heap-mib M] [--ahead BYTES] [--reps R]\n");
	exit(2);
}

/*
 * uring.c alone: glue.h's locks register the library's fork handler (in
 * arena.c) once the process has threads; this program has none to register.
 */
int upa_fork_ready = 1;
void upa_fork_register_threaded(void);
void upa_fork_register_threaded(void)
{
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "frees", required_argument, NULL, 'f' },
		{ "heap-mib", required_argument, NULL, 'm' },
		{ "batch", required_argument, NULL, 'b' },
		{ "ahead", required_argument, NULL, 'a' },
		{ "reps", required_argument, NULL, 'r' },
		{ "lib", required_argument, NULL, 'l' },
		{ "lib-workloads", required_argument, NULL, 'w' },
		{ "lib-job", required_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	const char *lib = NULL, *job = NULL;
	const char *lib_workloads = "trimfree,bigheap,calloc_blocks,"
				    "realloc_grow,churn,fragment";
	bool quick = false;
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
		case 'l':
			lib = optarg;
			break;
		case 'w':
			lib_workloads = optarg;
			break;
		case 'j':
			job = optarg;
			break;
		case 'q':
			quick = true;
			break;
		default:
			usage();
		}
	}
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (job) {
		/* A library job, in a preloaded child: the size is argv. */
		size_t n = optind < argc ? strtoul(argv[optind], NULL, 0) : 0;

		if (!strcmp(job, "trimfree") && n)
			return lib_job_trimfree(n);
		if (!strcmp(job, "bigheap") && n)
			return lib_job_bigheap(n);
		usage();
	}
	if (!frees || heap_bytes < (1UL << 20) || !reps)
		usage();
	dev = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		printf("uring_bench: SKIP: %s: %s\n", UPALLOC_DEVICE_PATH,
		       strerror(errno));
		return 4;
	}
	if (lib) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		close(dev);
		if (n <= 0)
			die("readlink /proc/self/exe");
		self[n] = '\0';
		if (getenv("UPALLOC_URING_POPULATE_AHEAD"))
			setenv("UB_AHEAD", getenv("UPALLOC_URING_POPULATE_AHEAD"), 1);
		return lib_bench(self, lib, lib_workloads, quick, reps, frees,
				 heap_bytes);
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
