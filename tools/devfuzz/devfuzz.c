// SPDX-License-Identifier: MIT
/*
 * devfuzz: a model-checking fuzzer for /dev/upalloc.
 *
 * Runs random sequences of open, close, mmap (flags, lengths, prot,
 * offsets, MAP_FIXED over its own regions), munmap, mprotect, madvise
 * (every advice), mremap, mlock, msync, every ioctl of kmod/uapi/upalloc.h
 * and the same commands through io_uring passthrough (valid-biased and
 * garbage arguments), page writes and reads, fork, exec, exit, descriptors
 * passed by SCM_RIGHTS and threads. Every process keeps a model of its
 * regions (start, length, break, protection, and the tag each page holds)
 * and checks as it goes:
 *
 *  - contents: every page read holds exactly what the model says (zero, or
 *    the pattern of the tag this process, or its parent before the fork,
 *    last wrote); a page holding another process's tag is reported as
 *    such (isolation);
 *  - ABI: calls the ABI says must fail do, with the documented errno where
 *    the ABI names one; calls that must succeed do (ENOMEM excepted under
 *    fault injection); accesses at or above the break raise SIGBUS;
 *  - counters: UPALLOC_IOC_PROC_STATS and UPALLOC_IOC_REGION_INFO agree
 *    with the model (regions_live, pages_committed, start, len, brk,
 *    flags); when no other process uses the device (--exclusive),
 *    /proc/upalloc/stats regions_live equals the model's count between
 *    rounds and pages_live, regions_live are 0 at the end.
 *
 * Output is KTAP: one result per invariant class, diagnostics as "#"
 * lines naming the seed, the round, the process and its last operations.
 * Every round's operations derive from --seed (printed); rerunning with
 * the same seed replays the same operation sequence in every process
 * (the interleaving of processes and threads is up to the scheduler).
 *
 *   devfuzz [--seed S] [--seconds N] [--rounds N] [--ops N] [--exclusive]
 *           [--fault-injection] [--verbose] [--self-test]
 *           [--fail-proc-read]
 *
 * --self-test makes the model forget one page write in ten: the run must
 * then fail contents_match_model (tools/devfuzz/run-guest checks that).
 * --fail-proc-read (debug kernel, with tools/devfuzz/fault-inject on) makes
 * every read of /proc/upalloc/processes by the model's checks fail in the
 * module (the task's fail-nth): with --fault-injection the run must pass
 * (ENOMEM is tolerated, never taken for a missing line), and it prints how
 * many reads failed (tools/devfuzz/run-guest checks both).
 *
 * Exit status: 0 when every invariant held, 1 otherwise, 4 (KSFT_SKIP)
 * when the device is absent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef DEVFUZZ_URING
#include <liburing.h>
#endif

#include "../../kmod/uapi/upalloc.h"

#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define MAX_REGIONS	12
#define MAX_FDS		6
#define MAX_CHILDREN	4
#define MAX_PAGES	64	/* of a valid-biased region */
#define HISTORY		24

/* Invariant classes: one KTAP result each; a child's exit status is the
 * mask of the classes it saw fail. */
enum {
	INV_CONTENTS,		/* pages hold what the model says */
	INV_ISOLATION,		/* never another process's data */
	INV_ABI,		/* results and errnos as documented */
	INV_STATS,		/* PROC_STATS / REGION_INFO agree with the model */
	INV_CHILDREN,		/* fork and exec children ended cleanly */
	INV_GLOBAL,		/* /proc/upalloc/stats balances */
	NR_INV
};

static const char *const inv_names[NR_INV] = {
	"contents_match_model",
	"no_data_of_another_process",
	"errors_match_abi",
	"proc_stats_and_region_info_match_model",
	"fork_and_exec_children_end_cleanly",
	"global_counters_balance",
};

struct region {
	char *addr;
	size_t len;		/* bytes */
	size_t brk;		/* bytes */
	int prot;
	bool heap;
	bool dontfork;
	bool inherited;		/* came with a fork */
	bool cloned;		/* ... and the module is known to hold its clone */
	bool dead;		/* a fork clone the module could not make */
	uint64_t *tag;		/* per page; 0 = zero-filled */
	uint8_t *maybe_zero;	/* per page: a failed call may have freed it */
};

struct actor {
	const char *name;	/* "main", "thread1", ... */
	bool is_main;		/* the process's own thread */
	uint64_t rng;
	int fds[MAX_FDS];
	int nfds;
	struct region reg[MAX_REGIONS];
	int nreg;
	uint64_t tagseq;
	unsigned long ops;
	char hist[HISTORY][96];
	unsigned int nhist;
#ifdef DEVFUZZ_URING
	struct io_uring ring;
	bool have_ring;
#endif
};

/* Options */
static uint64_t opt_seed;
static double opt_seconds = 30;
static unsigned long opt_rounds;
static unsigned long opt_ops = 400;
static bool opt_exclusive;
static bool opt_fault;
static bool opt_verbose;
/* --self-test: forget one write in ten, which the checks must catch */
static bool opt_self_test;
static bool opt_fail_proc_read;
static unsigned long proc_read_enomem;	/* reads of processes that failed */

static size_t ps;
static uint64_t max_region_bytes;
static bool have_uring_cmd;
static int sock[2] = { -1, -1 };	/* SCM_RIGHTS, shared by every process */
static unsigned int inv_failed;		/* this process's failed classes */
static unsigned long inv_count[NR_INV];
static pid_t children[MAX_CHILDREN];
static int nchildren;
static bool is_child;
static bool stats_exact = true;		/* no unmodelled region in this mm */
static int threads_alive;
static uint64_t round_seed;
static unsigned long round_no;
static char self_exe[PATH_MAX];
/* operations of every process and thread of the run (a shared page) */
static uint64_t *all_ops;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static __thread sigjmp_buf probe_env;
static __thread volatile int probe_sig;
static __thread volatile bool probing;

/* ---- randomness ------------------------------------------------------- */

static uint64_t next(struct actor *a)
{
	uint64_t x = a->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	a->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(struct actor *a, uint64_t n)
{
	return n ? next(a) % n : 0;
}

static bool chance(struct actor *a, unsigned int percent)
{
	return below(a, 100) < percent;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x ? x : 1;
}

/* ---- reporting -------------------------------------------------------- */

static void note(struct actor *a, const char *fmt, ...)
{
	va_list ap;
	char *slot = a->hist[a->nhist++ % HISTORY];

	va_start(ap, fmt);
	vsnprintf(slot, sizeof(a->hist[0]), fmt, ap);
	va_end(ap);
	if (opt_verbose) {
		pthread_mutex_lock(&report_lock);
		printf("# [%d %s op %lu] %s\n", getpid(), a->name, a->ops, slot);
		fflush(stdout);
		pthread_mutex_unlock(&report_lock);
	}
}

static void fail(struct actor *a, int inv, const char *fmt, ...)
{
	va_list ap;
	unsigned int i, first;

	pthread_mutex_lock(&report_lock);
	inv_failed |= 1U << inv;
	inv_count[inv]++;
	if (inv_count[inv] <= 3) {
		printf("# FAIL %s: seed %" PRIu64 " round %lu (round seed %" PRIu64
		       ") pid %d %s op %lu: ", inv_names[inv], opt_seed,
		       round_no, round_seed, getpid(), a->name, a->ops);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n#   last operations of %s:\n", a->name);
		first = a->nhist > HISTORY ? a->nhist - HISTORY : 0;
		for (i = first; i < a->nhist; i++)
			printf("#     %s\n", a->hist[i % HISTORY]);
	}
	fflush(stdout);
	pthread_mutex_unlock(&report_lock);
}

/* ---- guarded memory access -------------------------------------------- */

static void on_fault(int sig)
{
	if (!probing) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	probe_sig = sig;
	siglongjmp(probe_env, 1);
}

static uint64_t pattern(uint64_t tag, size_t word)
{
	return (tag + word * 0x9E3779B97F4A7C15ULL) | 1;
}

/* Fill one page with the pattern of tag; 0 or the signal taken. */
static int guarded_fill(char *page, uint64_t tag_in)
{
	volatile uint64_t *q = (volatile uint64_t *)page;
	volatile uint64_t tag = tag_in;
	size_t w, words = ps / 8;

	probe_sig = 0;
	probing = true;
	if (sigsetjmp(probe_env, 1) == 0) {
		for (w = 0; w < words; w++)
			q[w] = pattern(tag, w);
	}
	probing = false;
	return probe_sig;
}

/*
 * Read one page: 0 with *found = the tag it holds (0 for zeros, the tag
 * of word 0 when the page is a whole pattern, ~0 when neither), or the
 * signal taken.
 */
static int guarded_read(const char *page, uint64_t *found)
{
	const volatile uint64_t *q = (const volatile uint64_t *)page;
	size_t w, words = ps / 8;
	uint64_t first, tag;

	probe_sig = 0;
	probing = true;
	if (sigsetjmp(probe_env, 1) == 0) {
		first = q[0];
		if (!first) {
			tag = 0;
			for (w = 1; w < words; w++)
				if (q[w]) {
					tag = ~0ULL;
					break;
				}
		} else {
			/* pattern(t, 0) == t | 1: try both candidates. */
			tag = first;
			if (q[1] != pattern(tag, 1))
				tag = first & ~1ULL;
			for (w = 0; w < words; w++)
				if (q[w] != pattern(tag, w)) {
					tag = ~0ULL;
					break;
				}
		}
		*found = tag;
	}
	probing = false;
	return probe_sig;
}

/* ---- model helpers ---------------------------------------------------- */

static uint64_t new_tag(struct actor *a)
{
	/* pid in the high bits: a foreign page names its writer. */
	return ((uint64_t)getpid() << 40) | ((++a->tagseq & 0xffffffffULL) << 2);
}

static pid_t tag_pid(uint64_t tag)
{
	return (pid_t)(tag >> 40);
}

static int region_alloc(struct region *r, size_t len)
{
	size_t n = len / ps;

	r->tag = calloc(n ? n : 1, sizeof(*r->tag));
	r->maybe_zero = calloc(n ? n : 1, 1);
	return r->tag && r->maybe_zero ? 0 : -1;
}

static void region_drop(struct actor *a, int i)
{
	free(a->reg[i].tag);
	free(a->reg[i].maybe_zero);
	a->reg[i] = a->reg[--a->nreg];
}

static void zero_pages(struct region *r, size_t from, size_t to)
{
	size_t p;

	for (p = from / ps; p < to / ps && p < r->len / ps; p++) {
		r->tag[p] = 0;
		r->maybe_zero[p] = 0;
	}
}

static struct region *pick_region(struct actor *a)
{
	int i;

	if (!a->nreg)
		return NULL;
	i = (int)below(a, a->nreg);
	return a->reg[i].dead ? NULL : &a->reg[i];
}

static int pick_fd(struct actor *a)
{
	if (!a->nfds)
		return -1;
	return a->fds[below(a, a->nfds)];
}

/* ---- commands: ioctl or io_uring -------------------------------------- */

#ifdef DEVFUZZ_URING
static int ring_cmd(struct actor *a, int fd, unsigned int op, void *arg,
		    uint64_t reserved)
{
	struct upalloc_uring_cmd payload = { .arg = (uintptr_t)arg,
					     .reserved = reserved };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	if (!a->have_ring) {
		if (io_uring_queue_init(8, &a->ring, 0))
			return -1000;
		a->have_ring = true;
	}
	sqe = io_uring_get_sqe(&a->ring);
	if (!sqe)
		return -1000;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = op;
	memcpy(sqe->cmd, &payload, sizeof(payload));
	if (chance(a, 20))
		sqe->flags |= IOSQE_ASYNC;
	if (io_uring_submit(&a->ring) != 1)
		return -1000;
	if (io_uring_wait_cqe(&a->ring, &cqe))
		return -1000;
	ret = cqe->res;
	io_uring_cqe_seen(&a->ring, cqe);
	return ret;
}
#endif

/* 0 or -errno, through ioctl or (half the time) io_uring. */
static int cmd(struct actor *a, int fd, unsigned long op, void *arg,
	       const char **via)
{
#ifdef DEVFUZZ_URING
	if (have_uring_cmd && chance(a, 40)) {
		int ret = ring_cmd(a, fd, (unsigned int)op, arg, 0);

		if (ret != -1000) {
			*via = "uring";
			return ret;
		}
	}
#endif
	*via = "ioctl";
	return ioctl(fd, op, arg) ? -errno : 0;
}

/* ---- checks ----------------------------------------------------------- */

/*
 * Under fault injection a fork may leave the child a region the module
 * could not clone (->open cannot fail a fork): its mapping has no region
 * behind it, so its pages raise SIGBUS and every command on it fails with
 * EINVAL (upalloc(4)). Only a region inherited by this process, of which
 * nothing has shown yet that the clone was made, can be such a one.
 */
static bool clone_may_be_lost(const struct region *r)
{
	return opt_fault && r->inherited && !r->cloned;
}

static bool clone_lost(struct actor *a, struct region *r, int sig)
{
	if (sig != SIGBUS || !clone_may_be_lost(r))
		return false;
	note(a, "region %p: fork clone lost under fault injection", r->addr);
	r->dead = true;
	stats_exact = false;
	return true;
}

/*
 * A command on r (one the ABI accepts) failed with -ret: a lost clone if
 * the clone may be lost, the error is EINVAL and REGION_INFO agrees that
 * the mapping has no region (EINVAL too).
 */
static bool clone_lost_cmd(struct actor *a, struct region *r, int fd, int ret)
{
	struct upalloc_region_info ri = { .addr = (uintptr_t)r->addr };

	if (ret != -EINVAL || !clone_may_be_lost(r))
		return false;
	if (!ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri)) {
		r->cloned = true;	/* a real EINVAL: the caller reports it */
		return false;
	}
	return errno == EINVAL && clone_lost(a, r, SIGBUS);
}

static void check_page(struct actor *a, struct region *r, size_t p,
		       const char *why)
{
	uint64_t found = 0;
	int sig;

	if (r->dead || !(r->prot & (PROT_READ | PROT_WRITE)) || p * ps >= r->brk)
		return;
	sig = guarded_read(r->addr + p * ps, &found);
	if (sig && clone_lost(a, r, sig))
		return;
	r->cloned |= !sig;
	if (sig) {
		fail(a, INV_ABI, "%s: reading page %zu of region %p (brk %zu) "
		     "raised signal %d", why, p, r->addr, r->brk / ps, sig);
		return;
	}
	if (found == r->tag[p] || (r->maybe_zero[p] && found == 0)) {
		r->tag[p] = found;
		r->maybe_zero[p] = 0;
		return;
	}
	if (found != ~0ULL && found && tag_pid(found) != tag_pid(r->tag[p]) &&
	    tag_pid(found) != getpid())
		fail(a, INV_ISOLATION, "%s: page %zu of region %p holds data "
		     "written by pid %d (tag %#" PRIx64 "), expected tag %#"
		     PRIx64, why, p, r->addr, tag_pid(found), found, r->tag[p]);
	else
		fail(a, INV_CONTENTS, "%s: page %zu of region %p holds tag %#"
		     PRIx64 ", model says %#" PRIx64 "%s", why, p, r->addr,
		     found, r->tag[p], r->maybe_zero[p] ? " or zero" : "");
	r->tag[p] = found == ~0ULL ? 0 : found;
	r->maybe_zero[p] = found == ~0ULL;
}

static void check_region(struct actor *a, struct region *r, const char *why)
{
	size_t p;

	for (p = 0; p < r->brk / ps; p++)
		check_page(a, r, p, why);
}

static int any_fd(struct actor *a)
{
	int fd = pick_fd(a);

	if (fd < 0) {
		fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && a->nfds < MAX_FDS)
			a->fds[a->nfds++] = fd;
	}
	return fd;
}

static void check_info(struct actor *a, struct region *r)
{
	struct upalloc_region_info ri = { .addr = (uintptr_t)r->addr +
					  below(a, r->len) };
	int fd = any_fd(a);

	if (fd < 0 || r->dead)
		return;
	if (ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri)) {
		if (errno == EINVAL && clone_lost(a, r, SIGBUS))
			return;
		if (!(opt_fault && errno == ENOMEM))
			fail(a, INV_STATS, "REGION_INFO of region %p: %s",
			     r->addr, strerror(errno));
		return;
	}
	r->cloned = true;
	if (ri.start != (uintptr_t)r->addr || ri.len != r->len ||
	    ri.brk != r->brk || !!(ri.flags & UPALLOC_REGION_HEAP) != r->heap ||
	    ri.pages_present > r->brk / ps ||
	    ri.pages_shared > ri.pages_present)
		fail(a, INV_STATS, "REGION_INFO of %p: start %#llx len %llu brk "
		     "%llu present %llu shared %llu flags %#x; model: len %zu "
		     "brk %zu heap %d", r->addr, (unsigned long long)ri.start,
		     (unsigned long long)ri.len, (unsigned long long)ri.brk,
		     (unsigned long long)ri.pages_present,
		     (unsigned long long)ri.pages_shared, ri.flags, r->len,
		     r->brk, r->heap);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Our line of /proc/upalloc/processes agrees with the model too. */
static void proc_line_check(struct actor *a, int live, uint64_t committed,
			    const struct upalloc_proc_stats *st)
{
	FILE *f = fopen(UPALLOC_PROC_DIR "/processes", "r");
	long regions, plive, peak, comm_pages;
	char line[256], comm[64];
	bool found = false;
	int pid, err;

	if (!f)
		return;
	/* The first allocation through the module's code fails (fail-nth). */
	if (opt_fail_proc_read && write_file("/proc/thread-self/fail-nth", "1"))
		fail(a, INV_GLOBAL, "--fail-proc-read: /proc/thread-self/"
		     "fail-nth: %s", strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%d %63s %ld %ld %ld %ld", &pid, comm,
			       &regions, &plive, &peak, &comm_pages) == 6 &&
			pid == getpid();
	err = ferror(f) ? errno : 0;
	if (opt_fail_proc_read)
		write_file("/proc/thread-self/fail-nth", "0");	/* if unused */
	fclose(f);
	proc_read_enomem += err == ENOMEM;
	/*
	 * Reading the file allocates through the module (the snapshot of
	 * the records): under fault injection it may fail with ENOMEM.
	 */
	if (err) {
		if (!(opt_fault && err == ENOMEM))
			fail(a, INV_GLOBAL, "reading %s/processes: %s",
			     UPALLOC_PROC_DIR, strerror(err));
		return;
	}
	if (!found) {
		if (live)	/* no region, no line */
			fail(a, INV_GLOBAL, "%s/processes has no line for pid "
			     "%d; model: %d regions, %" PRIu64 " committed",
			     UPALLOC_PROC_DIR, getpid(), live, committed);
		return;
	}
	if (regions != live || (uint64_t)comm_pages != committed ||
	    (uint64_t)plive != st->pages_live)
		fail(a, INV_GLOBAL, "%s/processes line of pid %d: regions %ld "
		     "pages_live %ld pages_committed %ld; model: %d regions, %"
		     PRIu64 " committed, PROC_STATS pages_live %llu",
		     UPALLOC_PROC_DIR, getpid(), regions, plive, comm_pages, live,
		     committed, (unsigned long long)st->pages_live);
}

static void check_proc_stats(struct actor *a)
{
	struct upalloc_proc_stats st;
	uint64_t committed = 0;
	int fd = any_fd(a), i, live = 0;

	/* threads' regions are in the mm but not in this actor's model */
	if (fd < 0 || !stats_exact || !a->is_main || threads_alive)
		return;
	memset(&st, 0, sizeof(st));
	if (ioctl(fd, UPALLOC_IOC_PROC_STATS, &st)) {
		if (!(opt_fault && errno == ENOMEM))
			fail(a, INV_STATS, "PROC_STATS: %s", strerror(errno));
		return;
	}
	for (i = 0; i < a->nreg; i++) {
		committed += a->reg[i].brk / ps;
		live++;
	}
	proc_line_check(a, live, committed, &st);
	if (st.regions_live != (uint64_t)live ||
	    st.pages_committed != committed ||
	    st.pages_live > st.pages_peak)
		fail(a, INV_STATS, "PROC_STATS: regions_live %llu "
		     "pages_committed %llu pages_live %llu peak %llu; model: "
		     "%d regions, %" PRIu64 " pages committed",
		     (unsigned long long)st.regions_live,
		     (unsigned long long)st.pages_committed,
		     (unsigned long long)st.pages_live,
		     (unsigned long long)st.pages_peak, live, committed);
}

/* ---- operations ------------------------------------------------------- */

static void op_open(struct actor *a)
{
	int flags = chance(a, 85) ? O_RDWR : (chance(a, 50) ? O_RDONLY : O_WRONLY);
	int fd;

	if (chance(a, 70))
		flags |= O_CLOEXEC;
	fd = open(UPALLOC_DEVICE_PATH, flags);
	note(a, "open(flags %#x) = %d", flags, fd);
	if (fd < 0) {
		if (!(opt_fault && errno == ENOMEM))
			fail(a, INV_ABI, "open %s: %s", UPALLOC_DEVICE_PATH,
			     strerror(errno));
		return;
	}
	if (a->nfds == MAX_FDS) {
		int i = (int)below(a, MAX_FDS);

		close(a->fds[i]);
		a->fds[i] = fd;
	} else {
		a->fds[a->nfds++] = fd;
	}
}

static void op_close(struct actor *a)
{
	int i;

	if (!a->nfds)
		return;
	i = (int)below(a, a->nfds);
	note(a, "close(%d)", a->fds[i]);
	close(a->fds[i]);
	a->fds[i] = a->fds[--a->nfds];
}

static size_t pick_len(struct actor *a)
{
	switch (below(a, 10)) {
	case 0:
		return 0;
	case 1:
		return 1 + below(a, ps * 4);	/* not a page multiple */
	case 2:
		return max_region_bytes + ps * (1 + below(a, 4));
	default:
		return ps * (1 + below(a, MAX_PAGES));
	}
}

static bool fd_writable(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

static void add_region(struct actor *a, char *p, size_t len, int prot,
		       bool heap_asked)
{
	struct upalloc_region_info ri = { .addr = (uintptr_t)p };
	struct region *r;
	int fd = any_fd(a);

	if (a->nreg == MAX_REGIONS) {
		munmap(p, len);
		return;
	}
	r = &a->reg[a->nreg];
	memset(r, 0, sizeof(*r));
	r->addr = p;
	r->len = (len + ps - 1) / ps * ps;
	r->prot = prot;
	if (fd >= 0 && !ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri)) {
		if (ri.start != (uintptr_t)p || ri.len != r->len)
			fail(a, INV_STATS, "new region %p len %zu: REGION_INFO "
			     "says start %#llx len %llu", p, r->len,
			     (unsigned long long)ri.start,
			     (unsigned long long)ri.len);
		r->brk = ri.brk;
		r->heap = ri.flags & UPALLOC_REGION_HEAP;
		/* Without MAP_NORESERVE the region is committed whole. */
		if ((!heap_asked && (r->heap || r->brk != r->len)) ||
		    (heap_asked && r->brk != 0 && r->brk != r->len))
			fail(a, INV_ABI, "new region %p (MAP_NORESERVE %d) has "
			     "brk %zu of %zu, heap flag %d", p, heap_asked,
			     r->brk, r->len, r->heap);
	} else {
		fail(a, INV_STATS, "REGION_INFO of new region %p: %s", p,
		     fd < 0 ? "no descriptor" : strerror(errno));
		r->brk = heap_asked ? 0 : r->len;
		r->heap = heap_asked;
	}
	if (region_alloc(r, r->len)) {
		munmap(p, len);
		return;
	}
	a->nreg++;
	if (chance(a, 50))
		check_region(a, r, "new region is zero");
}

static void op_mmap(struct actor *a)
{
	int fd = pick_fd(a), prot = PROT_READ | PROT_WRITE;
	int flags = MAP_SHARED;
	off_t off = 0;
	size_t len = ps * (1 + below(a, MAX_PAGES));
	bool valid = true, heap = false;
	char *hint = NULL;
	void *p;

	if (fd < 0)
		return;
	if (chance(a, 35)) {
		flags |= MAP_NORESERVE;
		heap = true;
	}
	if (chance(a, 15))
		flags |= MAP_POPULATE;
	if (chance(a, 25)) {
		/* garbage-biased: one thing wrong, or random bits */
		switch (below(a, 9)) {
		case 0:
			flags = (flags & ~MAP_SHARED) | MAP_PRIVATE;
			valid = false;
			break;
		case 1:
			prot |= PROT_EXEC;
			valid = false;
			break;
		case 2:
			off = (off_t)(ps * (1 + below(a, 8)));
			valid = false;
			break;
		case 3:
			len = pick_len(a);
			valid = len && len <= max_region_bytes;
			break;
		case 4:
			prot = (int)below(a, 8);
			valid = false;	/* may succeed; then modelled */
			break;
		case 5: {
			/* random extra flag bits, never MAP_FIXED */
			static const int extra[] = {
				MAP_LOCKED, MAP_GROWSDOWN, MAP_HUGETLB,
				MAP_32BIT, MAP_STACK, MAP_NONBLOCK,
				MAP_DENYWRITE, MAP_EXECUTABLE,
				0x80000 /* MAP_SYNC */, 0x4000000 /* MAP_UNINITIALIZED */,
			};
			flags |= extra[below(a, sizeof(extra) / sizeof(extra[0]))];
			valid = false;
			break;
		}
		case 6:
			off = (off_t)next(a);
			valid = false;
			break;
		case 7:
			if (a->nreg) {
				/* over an existing region: EEXIST */
				hint = a->reg[below(a, a->nreg)].addr;
				flags |= MAP_FIXED_NOREPLACE;
				valid = false;
			}
			break;
		default:
			flags = (flags & ~MAP_SHARED) | 0x03; /* MAP_SHARED_VALIDATE */
			valid = true;
			break;
		}
	}
	if (!fd_writable(fd) && (prot & PROT_WRITE))
		valid = false;
	p = mmap(hint, len, prot, flags, fd, off);
	note(a, "mmap(%p, %zu, prot %#x, flags %#x, fd %d, off %#llx) = %p",
	     hint, len, prot, flags, fd, (unsigned long long)off, p);
	if (p == MAP_FAILED) {
		if (valid && !(opt_fault && errno == ENOMEM) && errno != ENOMEM)
			fail(a, INV_ABI, "mmap(len %zu, prot %#x, flags %#x) "
			     "of a valid region failed: %s", len, prot, flags,
			     strerror(errno));
		if (prot & PROT_EXEC && errno != EPERM && errno != EINVAL &&
		    errno != EACCES && !(flags & MAP_PRIVATE) && !off)
			fail(a, INV_ABI, "PROT_EXEC mmap: %s", strerror(errno));
		return;
	}
	if (prot & PROT_EXEC) {
		fail(a, INV_ABI, "mmap with PROT_EXEC succeeded");
	} else if (flags & MAP_PRIVATE && !(flags & MAP_SHARED)) {
		fail(a, INV_ABI, "MAP_PRIVATE mmap succeeded");
	} else if (off) {
		fail(a, INV_ABI, "mmap at offset %#llx succeeded",
		     (unsigned long long)off);
	} else if (flags & MAP_HUGETLB) {
		fail(a, INV_ABI, "MAP_HUGETLB mmap succeeded");
	}
	add_region(a, p, len, prot & (PROT_READ | PROT_WRITE), heap);
}

/* MAP_FIXED over one of our regions: whole (replaces it) or part (refused). */
static void op_mmap_fixed(struct actor *a)
{
	struct region *r = pick_region(a);
	int fd = pick_fd(a);
	bool whole = chance(a, 50);
	size_t off = 0, len;
	void *p;

	if (!r || fd < 0 || !fd_writable(fd))
		return;
	len = r->len;
	if (!whole) {
		if (r->len < 2 * ps)
			return;
		off = ps * below(a, r->len / ps - 1);
		len = ps * (1 + below(a, (r->len - off) / ps - 1));
		if (off == 0 && len == r->len)
			len -= ps;
	}
	p = mmap(r->addr + off, len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0);
	note(a, "mmap(MAP_FIXED %p+%zu, %zu) over region %p/%zu = %p",
	     r->addr, off, len, r->addr, r->len, p);
	if (whole) {
		if (p == MAP_FAILED) {
			/* the old region may or may not be gone */
			if (!(opt_fault && errno == ENOMEM))
				fail(a, INV_ABI, "MAP_FIXED over a whole region: %s",
				     strerror(errno));
			struct upalloc_region_info ri = { .addr = (uintptr_t)r->addr };

			if (ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri))
				region_drop(a, (int)(r - a->reg));
			return;
		}
		region_drop(a, (int)(r - a->reg));
		add_region(a, p, len, PROT_READ | PROT_WRITE, false);
		return;
	}
	if (p != MAP_FAILED) {
		fail(a, INV_ABI, "MAP_FIXED over part of region %p succeeded "
		     "(a partial unmap)", r->addr);
		munmap(p, len);
		/* the model of this region is lost */
		region_drop(a, (int)(r - a->reg));
		stats_exact = false;
		return;
	}
	check_info(a, r);
}

static void op_munmap(struct actor *a)
{
	struct region *r;
	size_t off, len;
	int ret;

	if (!a->nreg)
		return;
	r = &a->reg[below(a, a->nreg)];
	if (chance(a, 75) || r->len < 2 * ps) {
		ret = munmap(r->addr, r->len);
		note(a, "munmap(%p, %zu) = %d", r->addr, r->len, ret);
		if (ret)
			fail(a, INV_ABI, "munmap of a whole region: %s",
			     strerror(errno));
		region_drop(a, (int)(r - a->reg));
		return;
	}
	off = ps * below(a, r->len / ps);
	len = ps * (1 + below(a, (r->len - off) / ps));
	if (off == 0 && len == r->len)
		len -= ps;
	ret = munmap(r->addr + off, len);
	note(a, "munmap(%p+%zu, %zu) partial = %d", r->addr, off, len, ret);
	if (!ret) {
		fail(a, INV_ABI, "partial munmap of region %p succeeded", r->addr);
		munmap(r->addr, r->len);
		region_drop(a, (int)(r - a->reg));
		stats_exact = false;
		return;
	}
	check_info(a, r);
}

/* Lines of /proc/self/maps inside [addr, addr + len): 1 unless split. */
static int vma_count(const char *addr, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi, s = (uintptr_t)addr, e = s + len;
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < e && hi > s)
			n++;
	fclose(f);
	return n;
}

static const char *region_desc(struct actor *a, struct region *r)
{
	static __thread char buf[160];
	struct upalloc_region_info ri = { .addr = (uintptr_t)r->addr };
	int fd = pick_fd(a);

	if (fd < 0 || ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri))
		ri.flags = ~0U;
	snprintf(buf, sizeof(buf), "region %p len %zu brk %zu prot %#x "
		 "heap %d info-flags %#x", r->addr, r->len / ps, r->brk / ps,
		 r->prot, r->heap, ri.flags);
	return buf;
}

static void op_mprotect(struct actor *a)
{
	static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ,
				     PROT_NONE, PROT_WRITE,
				     PROT_READ | PROT_EXEC };
	struct region *r = pick_region(a);
	int prot = prots[below(a, 5)], ret;
	bool part;

	if (!r)
		return;
	part = r->len >= 2 * ps && chance(a, 20);
	ret = mprotect(r->addr, part ? ps : r->len, prot);
	note(a, "mprotect(%p, %zu, %#x) = %d", r->addr, part ? ps : r->len,
	     prot, ret);
	if (prot & PROT_EXEC) {
		if (!ret)
			fail(a, INV_ABI, "mprotect PROT_EXEC succeeded");
		else if (errno != EACCES)
			fail(a, INV_ABI, "mprotect PROT_EXEC: %s (want EACCES)",
			     strerror(errno));
		return;
	}
	if (part) {
		/* succeeds only when nothing changes, never splits */
		if (!ret && vma_count(r->addr, r->len) != 1) {
			fail(a, INV_ABI, "partial mprotect split %s",
			     region_desc(a, r));
			mprotect(r->addr, r->len, r->prot);
		}
		return;
	}
	if (ret) {
		if (!(opt_fault && errno == ENOMEM))
			fail(a, INV_ABI, "mprotect(%#x) of a whole region: %s",
			     prot, strerror(errno));
		return;
	}
	r->prot = prot;	/* PROT_WRITE alone reads too on x86 */
}

static const struct {
	int advice;
	const char *name;
} advices[] = {
	{ MADV_NORMAL, "NORMAL" }, { MADV_RANDOM, "RANDOM" },
	{ MADV_SEQUENTIAL, "SEQUENTIAL" }, { MADV_WILLNEED, "WILLNEED" },
	{ MADV_DONTNEED, "DONTNEED" }, { MADV_FREE, "FREE" },
	{ MADV_REMOVE, "REMOVE" }, { MADV_DONTFORK, "DONTFORK" },
	{ MADV_DOFORK, "DOFORK" }, { MADV_MERGEABLE, "MERGEABLE" },
	{ MADV_UNMERGEABLE, "UNMERGEABLE" }, { MADV_HUGEPAGE, "HUGEPAGE" },
	{ MADV_NOHUGEPAGE, "NOHUGEPAGE" }, { MADV_DONTDUMP, "DONTDUMP" },
	{ MADV_DODUMP, "DODUMP" }, { MADV_WIPEONFORK, "WIPEONFORK" },
	{ MADV_KEEPONFORK, "KEEPONFORK" }, { MADV_COLD, "COLD" },
	{ MADV_PAGEOUT, "PAGEOUT" }, { MADV_POPULATE_READ, "POPULATE_READ" },
	{ MADV_POPULATE_WRITE, "POPULATE_WRITE" },
	{ MADV_DONTNEED_LOCKED, "DONTNEED_LOCKED" },
	{ MADV_COLLAPSE, "COLLAPSE" }, { 77, "invalid(77)" },
	/* MADV_HWPOISON and MADV_SOFT_OFFLINE poison pages for good: left
	 * to the selftests of issue 11's defect 1. */
};

static void op_madvise(struct actor *a)
{
	struct region *r = pick_region(a);
	int i = (int)below(a, sizeof(advices) / sizeof(advices[0]));
	int adv = advices[i].advice, ret;
	size_t len;
	bool part;

	if (!r)
		return;
	part = r->len >= 2 * ps && chance(a, 15);
	len = part ? ps : r->len;
	ret = madvise(r->addr, len, adv);
	note(a, "madvise(%p, %zu, %s) = %d (%s)", r->addr, len,
	     advices[i].name, ret, ret ? strerror(errno) : "ok");
	/* a VMA split is documented as refused */
	if (!ret && part && vma_count(r->addr, r->len) != 1)
		fail(a, INV_ABI, "madvise(%s) of part split %s",
		     advices[i].name, region_desc(a, r));
	if (!ret && adv == MADV_WIPEONFORK)
		fail(a, INV_ABI, "MADV_WIPEONFORK accepted on a shared mapping");
	if (!ret && !part && adv == MADV_DONTFORK)
		r->dontfork = true;
	if (!ret && !part && adv == MADV_DOFORK)
		r->dontfork = false;
	if (ret && (adv == MADV_POPULATE_READ || adv == MADV_POPULATE_WRITE) &&
	    r->brk < r->len && errno == EFAULT)
		return;		/* the pages above the break SIGBUS */
	/* Whatever the advice did, no page changes. */
	if (chance(a, 50) && r->brk)
		check_page(a, r, below(a, r->brk / ps), advices[i].name);
}

static void op_mremap(struct actor *a)
{
	struct region *r = pick_region(a);
	size_t nlen;
	int flags = 0;
	void *p, *target = NULL;

	if (!r)
		return;
	switch (below(a, 5)) {
	case 0:
		nlen = r->len + ps * (1 + below(a, 4));	/* grow in place */
		break;
	case 1:
		nlen = r->len > ps ? r->len - ps : r->len;	/* shrink */
		break;
	case 2:
		nlen = r->len + ps;
		flags = MREMAP_MAYMOVE;
		break;
	case 3:
		nlen = r->len;
		flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
		break;
	default:
		nlen = r->len;		/* same size: a no-op */
		break;
	}
	p = mremap(r->addr, r->len, nlen, flags, target);
	note(a, "mremap(%p, %zu, %zu, %#x) = %p", r->addr, r->len, nlen,
	     flags, p);
	if (p == MAP_FAILED)
		return;
	if (p == r->addr && nlen == r->len)
		return;
	fail(a, INV_ABI, "mremap(%p, %zu -> %zu, flags %#x) succeeded at %p",
	     r->addr, r->len, nlen, flags, p);
	/* Give up on this region's model. */
	munmap(p, nlen);
	if (p != r->addr)
		munmap(r->addr, r->len);
	region_drop(a, (int)(r - a->reg));
	stats_exact = false;
}

static void op_mlock(struct actor *a)
{
	struct region *r = pick_region(a);
	int ret;

	if (!r)
		return;
	if (chance(a, 50)) {
		ret = mlock(r->addr, r->brk);
		note(a, "mlock(%p, %zu) = %d", r->addr, r->brk, ret);
		munlock(r->addr, r->brk);
	} else {
		ret = msync(r->addr, r->len, chance(a, 50) ? MS_SYNC : MS_ASYNC);
		note(a, "msync(%p, %zu) = %d", r->addr, r->len, ret);
	}
	if (r->brk && chance(a, 50))
		check_page(a, r, below(a, r->brk / ps), "mlock/msync");
}

static void op_write(struct actor *a)
{
	struct region *r = pick_region(a);
	size_t n, i, p;
	int sig;

	if (!r || !r->brk || !(r->prot & PROT_WRITE))
		return;
	n = 1 + below(a, 4);
	for (i = 0; i < n; i++) {
		uint64_t tag = new_tag(a);

		p = below(a, r->brk / ps);
		sig = guarded_fill(r->addr + p * ps, tag);
		note(a, "write page %zu of %p tag %#" PRIx64 " = sig %d", p,
		     r->addr, tag, sig);
		if (sig && clone_lost(a, r, sig))
			return;
		r->cloned |= !sig;
		if (sig) {
			fail(a, INV_ABI, "writing page %zu below the break of "
			     "region %p raised signal %d", p, r->addr, sig);
			return;
		}
		if (opt_self_test && chance(a, 10))
			continue;
		r->tag[p] = tag;
		r->maybe_zero[p] = 0;
	}
}

static void op_read(struct actor *a)
{
	struct region *r = pick_region(a);

	if (!r || !r->brk)
		return;
	if (chance(a, 20)) {
		note(a, "check region %p (%zu pages)", r->addr, r->brk / ps);
		check_region(a, r, "check region");
	} else {
		size_t p = below(a, r->brk / ps);

		note(a, "read page %zu of %p", p, r->addr);
		check_page(a, r, p, "read");
	}
}

/* At or above the break: SIGBUS. */
static void op_probe_brk(struct actor *a)
{
	struct region *r = pick_region(a);
	uint64_t found;
	size_t p;
	int sig;

	if (!r || r->brk >= r->len || !(r->prot & (PROT_READ | PROT_WRITE)))
		return;
	p = r->brk / ps + below(a, (r->len - r->brk) / ps);
	sig = guarded_read(r->addr + p * ps, &found);
	note(a, "probe page %zu of %p above brk %zu = sig %d", p, r->addr,
	     r->brk / ps, sig);
	if (sig != SIGBUS)
		fail(a, INV_ABI, "access to page %zu of region %p at or above "
		     "its break (%zu) gave signal %d, want SIGBUS", p, r->addr,
		     r->brk / ps, sig);
}

/* A range inside r, page aligned, 1+ pages; maybe beyond the break. */
static void pick_range(struct actor *a, struct region *r, size_t *off,
		       size_t *len)
{
	size_t limit = r->brk && chance(a, 85) ? r->brk : r->len;

	*off = ps * below(a, limit / ps);
	*len = ps * (1 + below(a, (limit - *off) / ps));
}

static void op_range_cmd(struct actor *a, bool decommit)
{
	struct region *r = pick_region(a);
	struct upalloc_range rg;
	int fd = pick_fd(a), ret;
	bool valid = true;
	const char *via;
	size_t off, len;

	if (!r || fd < 0)
		return;
	pick_range(a, r, &off, &len);
	memset(&rg, 0, sizeof(rg));
	rg.addr = (uintptr_t)r->addr + off;
	rg.len = len;
	if (off + len > r->brk)
		valid = false;
	if (chance(a, 15)) {
		switch (below(a, 6)) {
		case 0:
			rg.flags = 1U << below(a, 32);
			break;
		case 1:
			rg.reserved[below(a, 4)] = next(a) | 1;
			break;
		case 2:
			rg.reserved0 = 1;
			break;
		case 3:
			rg.addr += 1 + below(a, ps - 1);
			break;
		case 4:
			rg.len = 0;
			break;
		default:
			rg.len += r->len;	/* past the region's end */
			break;
		}
		valid = false;
	}
	ret = cmd(a, fd, decommit ? UPALLOC_IOC_DECOMMIT : UPALLOC_IOC_POPULATE,
		  &rg, &via);
	note(a, "%s %s(%p+%zu, %llu) = %d nr %llu", via,
	     decommit ? "DECOMMIT" : "POPULATE", r->addr, off,
	     (unsigned long long)rg.len, ret, (unsigned long long)rg.nr_pages);
	if (!valid) {
		if (!ret)
			fail(a, INV_ABI, "%s %s with an invalid range or a "
			     "reserved field succeeded", via,
			     decommit ? "DECOMMIT" : "POPULATE");
		else if (ret != -EINVAL && ret != -ENOMEM &&
			 !(opt_fault && ret == -ENOMEM))
			fail(a, INV_ABI, "%s %s invalid: %s, want EINVAL", via,
			     decommit ? "DECOMMIT" : "POPULATE", strerror(-ret));
		return;
	}
	if (ret && clone_lost_cmd(a, r, fd, ret))
		return;
	r->cloned |= !ret;
	if (ret && !(opt_fault && (ret == -ENOMEM || ret == -EINTR))) {
		fail(a, INV_ABI, "%s %s of a valid range (pages %zu+%zu of %s): "
		     "%s", via, decommit ? "DECOMMIT" : "POPULATE", off / ps,
		     len / ps, region_desc(a, r), strerror(-ret));
	}
	if (!ret && rg.nr_pages > len / ps)
		fail(a, INV_ABI, "%s %s returned nr_pages %llu for %zu pages",
		     via, decommit ? "DECOMMIT" : "POPULATE",
		     (unsigned long long)rg.nr_pages, len / ps);
	if (decommit) {
		if (!ret) {
			zero_pages(r, off, off + len);
		} else {
			size_t p;

			for (p = off / ps; p < (off + len) / ps; p++)
				r->maybe_zero[p] = 1;
		}
	}
	if (chance(a, 50))
		check_page(a, r, (off + below(a, len)) / ps,
			   decommit ? "after DECOMMIT" : "after POPULATE");
}

static void op_set_brk(struct actor *a)
{
	struct region *r = pick_region(a);
	struct upalloc_brk b;
	int fd = pick_fd(a), ret;
	bool valid = true, query = false;
	const char *via;
	size_t nb;

	if (!r || fd < 0)
		return;
	nb = ps * below(a, r->len / ps + 1);
	memset(&b, 0, sizeof(b));
	b.addr = (uintptr_t)r->addr + below(a, r->len);
	b.new_brk = nb;
	if (chance(a, 15)) {
		b.flags = UPALLOC_BRK_QUERY;
		query = true;
	}
	if (chance(a, 12)) {
		switch (below(a, 5)) {
		case 0:
			/* QUERY ignores new_brk */
			b.new_brk += 1 + below(a, ps - 1);
			valid = query;
			break;
		case 1:
			b.new_brk = r->len + ps * (1 + below(a, 4));
			valid = query;
			break;
		case 2:
			b.reserved[below(a, 2)] = 1;
			break;
		case 3:
			b.flags |= 2U << below(a, 30);
			break;
		default:
			b.reserved0 = (uint32_t)next(a) | 1;
			break;
		}
		if (b.flags & ~UPALLOC_BRK_QUERY || b.reserved0 ||
		    b.reserved[0] || b.reserved[1])
			valid = false;
	}
	ret = cmd(a, fd, UPALLOC_IOC_SET_BRK, &b, &via);
	note(a, "%s SET_BRK(%p, %llu%s) = %d old %llu", via, r->addr,
	     (unsigned long long)b.new_brk, query ? ", QUERY" : "", ret,
	     (unsigned long long)b.old_brk);
	if (!valid) {
		if (!ret)
			fail(a, INV_ABI, "%s SET_BRK with invalid arguments "
			     "succeeded", via);
		else if (ret != -EINVAL)
			fail(a, INV_ABI, "%s SET_BRK invalid: %s, want EINVAL",
			     via, strerror(-ret));
		return;
	}
	if (ret && clone_lost_cmd(a, r, fd, ret))
		return;
	r->cloned |= !ret;
	if (ret) {
		/* Raising may hit a limit: ENOMEM, nothing changed. */
		if (!(ret == -ENOMEM && nb > r->brk) &&
		    !(opt_fault && ret == -ENOMEM))
			fail(a, INV_ABI, "%s SET_BRK(%zu -> %zu): %s", via,
			     r->brk, nb, strerror(-ret));
		if (ret == -ENOMEM && nb < r->brk) {
			size_t p;

			for (p = nb / ps; p < r->brk / ps; p++)
				r->maybe_zero[p] = 1;
		}
		return;
	}
	if (b.old_brk != r->brk || b.region_start != (uintptr_t)r->addr ||
	    b.region_len != r->len)
		fail(a, INV_STATS, "%s SET_BRK reports old_brk %llu start %#llx "
		     "len %llu; model: brk %zu start %p len %zu", via,
		     (unsigned long long)b.old_brk,
		     (unsigned long long)b.region_start,
		     (unsigned long long)b.region_len, r->brk, r->addr, r->len);
	if (query)
		return;
	if (nb < r->brk)
		zero_pages(r, nb, r->brk);
	r->brk = nb;
}

static void op_info(struct actor *a)
{
	struct region *r = pick_region(a);
	struct upalloc_region_info ri;
	struct upalloc_version v;
	int fd = pick_fd(a), ret;
	const char *via;

	if (fd < 0)
		return;
	switch (below(a, 6)) {
	case 0:
		memset(&v, 0xa5, sizeof(v));
		ret = cmd(a, fd, UPALLOC_IOC_VERSION, &v, &via);
		note(a, "%s VERSION = %d", via, ret);
		if (ret || v.abi_version != UPALLOC_ABI_VERSION ||
		    v.page_size != ps || v.max_region_bytes != max_region_bytes)
			fail(a, INV_ABI, "%s VERSION = %d abi %u page %u max %llu",
			     via, ret, v.abi_version, v.page_size,
			     (unsigned long long)v.max_region_bytes);
		break;
	case 1:
		if (r)
			check_info(a, r);
		break;
	case 2:
		check_proc_stats(a);
		break;
	case 3:
		/* an address in no region of ours */
		memset(&ri, 0, sizeof(ri));
		ri.addr = (uintptr_t)&ri;
		ret = cmd(a, fd, UPALLOC_IOC_REGION_INFO, &ri, &via);
		note(a, "%s REGION_INFO(stack) = %d", via, ret);
		if (ret != -EINVAL && ret != -ENOMEM)
			fail(a, INV_ABI, "%s REGION_INFO of a stack address = %d",
			     via, ret);
		break;
	case 4: {
		/* unknown command numbers and bad pointers */
		static const unsigned long bad_cmds[] = {
			_IO(UPALLOC_IOC_MAGIC, 0x06),
			_IOWR(UPALLOC_IOC_MAGIC, 0x01, char[8]),
			_IOWR(UPALLOC_IOC_MAGIC, 0x7f, struct upalloc_range),
			_IOR('T', 0x01, int), 0,
		};
		unsigned long c = bad_cmds[below(a, 5)];

		ret = cmd(a, fd, c, &ri, &via);
		note(a, "%s cmd %#lx = %d", via, c, ret);
		if (ret != -ENOTTY && ret != -EINVAL && ret != -EOPNOTSUPP)
			fail(a, INV_ABI, "%s unknown command %#lx = %d", via, c,
			     ret);
		break;
	}
	default: {
		static const unsigned long cmds[] = {
			UPALLOC_IOC_VERSION, UPALLOC_IOC_POPULATE,
			UPALLOC_IOC_DECOMMIT, UPALLOC_IOC_SET_BRK,
			UPALLOC_IOC_REGION_INFO, UPALLOC_IOC_PROC_STATS,
		};
		unsigned long c = cmds[below(a, 6)];
		void *bad = chance(a, 50) ? NULL : (void *)(uintptr_t)(next(a) | (1ULL << 63));

		ret = cmd(a, fd, c, bad, &via);
		note(a, "%s cmd %#lx(%p) = %d", via, c, bad, ret);
		if (ret != -EFAULT)
			fail(a, INV_ABI, "%s command %#lx with pointer %p = %d, "
			     "want EFAULT", via, c, bad, ret);
		break;
	}
	}
}

#ifdef DEVFUZZ_URING
/* Reserved field of the io_uring command area: EINVAL. */
static void op_uring_garbage(struct actor *a)
{
	struct upalloc_version v;
	int fd = pick_fd(a), ret;

	if (fd < 0 || !have_uring_cmd)
		return;
	ret = ring_cmd(a, fd, UPALLOC_IOC_VERSION, &v, next(a) | 1);
	note(a, "uring VERSION reserved!=0 = %d", ret);
	if (ret != -EINVAL && ret != -1000)
		fail(a, INV_ABI, "uring command with a reserved field set = %d",
		     ret);
}
#endif

/* SCM_RIGHTS over the shared socketpair: any process may take it. */
static void op_send_fd(struct actor *a)
{
	int fd = pick_fd(a);
	char buf[CMSG_SPACE(sizeof(int))], b = 'f';
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c;
	ssize_t n;

	if (fd < 0)
		return;
	memset(buf, 0, sizeof(buf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	n = sendmsg(sock[chance(a, 50)], &mh, MSG_DONTWAIT);
	note(a, "send fd %d = %zd", fd, n);
}

static void op_recv_fd(struct actor *a)
{
	char buf[CMSG_SPACE(sizeof(int))], b;
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	n = recvmsg(sock[chance(a, 50)], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	note(a, "received fd %d", fd);
	if (a->nfds < MAX_FDS) {
		a->fds[a->nfds++] = fd;
		/* the descriptor another process opened maps our regions */
		if (chance(a, 60))
			op_mmap(a);
	} else {
		close(fd);
	}
}

/* ---- processes and threads -------------------------------------------- */

static void run_ops(struct actor *a, unsigned long n, bool may_fork);

static void reap(struct actor *a, bool all)
{
	int i, st;
	pid_t p;

	for (i = 0; i < nchildren; i++) {
		p = waitpid(children[i], &st, all ? 0 : WNOHANG);
		if (p == 0)
			continue;
		if (p < 0) {
			fail(a, INV_CHILDREN, "waitpid(%d): %s", children[i],
			     strerror(errno));
		} else if (WIFSIGNALED(st)) {
			fail(a, INV_CHILDREN, "child %d killed by signal %d",
			     p, WTERMSIG(st));
		} else if (WEXITSTATUS(st)) {
			int inv;

			/* the child reported its own failures */
			for (inv = 0; inv < NR_INV; inv++)
				if (WEXITSTATUS(st) & (1 << inv)) {
					inv_failed |= 1U << inv;
					inv_count[inv]++;
				}
		}
		children[i--] = children[--nchildren];
	}
}

static void child_reset(struct actor *a, bool threads_alive)
{
	int i;

	is_child = true;
	nchildren = 0;
	memset(inv_count, 0, sizeof(inv_count));
	inv_failed = 0;
	/* threads' regions came along, unmodelled; under fault injection
	 * the module may have failed to clone any region */
	if (threads_alive || opt_fault)
		stats_exact = false;
#ifdef DEVFUZZ_URING
	if (a->have_ring) {
		/* the parent's ring: not ours to use */
		io_uring_queue_exit(&a->ring);
		a->have_ring = false;
	}
#endif
	for (i = 0; i < a->nreg; i++) {
		a->reg[i].inherited = true;
		a->reg[i].cloned = false;
	}
	for (i = 0; i < a->nreg; i++)
		if (a->reg[i].dontfork) {
			/* not in the child: touching it must SEGV */
			uint64_t found;
			int sig = guarded_read(a->reg[i].addr, &found);

			if (sig != SIGSEGV)
				fail(a, INV_ISOLATION, "MADV_DONTFORK region %p "
				     "is readable in the child (signal %d)",
				     a->reg[i].addr, sig);
			region_drop(a, i--);
		}
}

static void op_fork(struct actor *a, bool do_exec)
{
	uint64_t cseed = next(a);
	unsigned long n = 20 + below(a, 80);
	pid_t p;

	reap(a, false);
	if (nchildren == MAX_CHILDREN)
		return;
	note(a, "%s seed %" PRIu64 " ops %lu", do_exec ? "fork+exec" : "fork",
	     cseed, n);
	fflush(stdout);
	p = fork();
	if (p < 0) {
		if (!(opt_fault && (errno == ENOMEM || errno == EAGAIN)))
			fail(a, INV_CHILDREN, "fork: %s", strerror(errno));
		return;
	}
	if (p == 0) {
		char s[32], o[32];

		if (do_exec) {
			snprintf(s, sizeof(s), "%" PRIu64, cseed);
			snprintf(o, sizeof(o), "%lu", n);
			execl(self_exe, "devfuzz", "--exec-child", "--seed", s,
			      "--ops", o, opt_fault ? "--fault-injection" : "",
			      (char *)NULL);
			_exit(1 << INV_CHILDREN);
		}
		child_reset(a, threads_alive > 0);
		a->rng = mix(cseed);
		a->name = "child";
		a->ops = 0;
		/* what the parent wrote before the fork */
		if (a->nreg)
			check_region(a, &a->reg[below(a, a->nreg)], "child sees snapshot");
		run_ops(a, n, true);
		reap(a, true);
		check_proc_stats(a);
		fflush(stdout);
		_exit(inv_failed & 0x7f);
	}
	children[nchildren++] = p;
	/* the parent writes at once: the child must not see it */
	if (chance(a, 60))
		op_write(a);
}

struct thread_arg {
	struct actor a;
	unsigned long n;
	pthread_t tid;
	bool running;
};

static struct thread_arg thr[2];

/*
 * The threads run on stacks wiped at fork, not copied (MADV_WIPEONFORK):
 * the main thread's fork then never makes a thread's stack copy-on-write
 * while that thread is inside a command. Otherwise the module's copy of a
 * result onto the stack needs a page, an allocation with the module on
 * the call stack that fault injection fails, and the command returns
 * EFAULT: the kernel's rule for any system call under memory exhaustion,
 * not the module's (FINDINGS.md, finding 5). Children start no threads.
 */
#define THREAD_STACK_SIZE	(8UL << 20)

static void *thread_stack(int i)
{
	static void *stacks[2];
	void *s;

	if (stacks[i])
		return stacks[i];
	s = mmap(NULL, THREAD_STACK_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		 -1, 0);
	if (s == MAP_FAILED)
		return NULL;
	if (madvise(s, THREAD_STACK_SIZE, MADV_WIPEONFORK)) {
		munmap(s, THREAD_STACK_SIZE);
		return NULL;
	}
	stacks[i] = s;
	return s;
}

static void *thread_main(void *p)
{
	struct thread_arg *t = p;
	int i;

	run_ops(&t->a, t->n, false);
	for (i = 0; i < t->a.nreg; i++) {
		check_region(&t->a, &t->a.reg[i], "thread end");
		munmap(t->a.reg[i].addr, t->a.reg[i].len);
		free(t->a.reg[i].tag);
		free(t->a.reg[i].maybe_zero);
	}
	t->a.nreg = 0;
	for (i = 0; i < t->a.nfds; i++)
		close(t->a.fds[i]);
	t->a.nfds = 0;
#ifdef DEVFUZZ_URING
	if (t->a.have_ring)
		io_uring_queue_exit(&t->a.ring);
	t->a.have_ring = false;
#endif
	return NULL;
}

static void join_threads(void)
{
	int i;

	for (i = 0; i < 2; i++)
		if (thr[i].running) {
			pthread_join(thr[i].tid, NULL);
			thr[i].running = false;
			threads_alive--;
		}
}

static void op_thread(struct actor *a)
{
	int i = (int)below(a, 2);
	struct thread_arg *t = &thr[i];
	pthread_attr_t attr;
	void *stack;

	if (t->running) {
		pthread_join(t->tid, NULL);
		t->running = false;
		threads_alive--;
		note(a, "joined thread%d", i + 1);
		return;
	}
	memset(&t->a, 0, sizeof(t->a));
	t->a.name = i ? "thread2" : "thread1";
	t->a.rng = mix(next(a));
	t->n = 20 + below(a, 100);
	note(a, "thread%d starts (%lu ops)", i + 1, t->n);
	stack = thread_stack(i);
	if (!stack) {
		note(a, "thread%d: no stack: %s", i + 1, strerror(errno));
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, stack, THREAD_STACK_SIZE);
	/* thread regions are outside the main actor's model */
	if (pthread_create(&t->tid, &attr, thread_main, t) == 0) {
		t->running = true;
		threads_alive++;
	}
	pthread_attr_destroy(&attr);
}

static void run_ops(struct actor *a, unsigned long n, bool may_fork)
{
	unsigned long i;
	uint64_t w;

	for (i = 0; i < n; i++) {
		a->ops++;
		if (all_ops)
			__atomic_fetch_add(all_ops, 1, __ATOMIC_RELAXED);
		if (a->nfds == 0 || chance(a, 3))
			op_open(a);
		if (a->nreg == 0 && chance(a, 80))
			op_mmap(a);
		w = below(a, 1000);
		if (w < 110)
			op_mmap(a);
		else if (w < 160)
			op_munmap(a);
		else if (w < 320)
			op_write(a);
		else if (w < 440)
			op_read(a);
		else if (w < 490)
			op_probe_brk(a);
		else if (w < 560)
			op_range_cmd(a, false);
		else if (w < 630)
			op_range_cmd(a, true);
		else if (w < 720)
			op_set_brk(a);
		else if (w < 780)
			op_info(a);
		else if (w < 820)
			op_madvise(a);
		else if (w < 840)
			op_mprotect(a);
		else if (w < 855)
			op_mremap(a);
		else if (w < 865)
			op_mmap_fixed(a);
		else if (w < 875)
			op_mlock(a);
		else if (w < 890)
			op_close(a);
		else if (w < 900)
			op_send_fd(a);
		else if (w < 915)
			op_recv_fd(a);
#ifdef DEVFUZZ_URING
		else if (w < 925)
			op_uring_garbage(a);
#endif
		else if (w < 955 && may_fork)
			op_fork(a, false);
		else if (w < 965 && may_fork)
			op_fork(a, true);
		else if (w < 985 && may_fork && !is_child)
			op_thread(a);
		else if (w < 990 && is_child)
			return;		/* exit early, holding everything */
		else if (w < 1000 && a->is_main)
			reap(a, false);	/* children[] is the main thread's */
	}
}

/* ---- rounds ----------------------------------------------------------- */

static int read_global(const char *name, uint64_t *val)
{
	FILE *f = fopen(UPALLOC_PROC_DIR "/stats", "r");
	char key[64];
	unsigned long long v;
	int ret = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %llu", key, &v) == 2)
		if (!strcmp(key, name)) {
			*val = v;
			ret = 0;
			break;
		}
	fclose(f);
	return ret;
}

static void teardown(struct actor *a)
{
	int i;

	join_threads();
	reap(a, true);
	check_proc_stats(a);
	for (i = 0; i < a->nreg; i++)
		check_region(a, &a->reg[i], "end of round");
	while (a->nreg) {
		if (munmap(a->reg[0].addr, a->reg[0].len))
			fail(a, INV_ABI, "munmap at the end: %s", strerror(errno));
		region_drop(a, 0);
	}
	for (i = 0; i < a->nfds; i++)
		close(a->fds[i]);
	a->nfds = 0;
#ifdef DEVFUZZ_URING
	if (a->have_ring)
		io_uring_queue_exit(&a->ring);
	a->have_ring = false;
#endif
	/* drain descriptors still in flight */
	for (;;) {
		char buf[CMSG_SPACE(sizeof(int))], b;
		struct iovec iov = { .iov_base = &b, .iov_len = 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = buf,
				     .msg_controllen = sizeof(buf) };
		struct cmsghdr *c;
		int fd, got = 0;

		for (i = 0; i < 2; i++)
			if (recvmsg(sock[i], &mh, MSG_DONTWAIT) > 0) {
				got = 1;
				c = CMSG_FIRSTHDR(&mh);
				if (c && c->cmsg_type == SCM_RIGHTS) {
					memcpy(&fd, CMSG_DATA(c), sizeof(int));
					close(fd);
				}
				mh.msg_controllen = sizeof(buf);
			}
		if (!got)
			break;
	}
}

static void global_check(struct actor *a, const char *when)
{
	uint64_t regions = 0, pages = 0;

	if (!opt_exclusive)
		return;
	if (read_global("regions_live", &regions) ||
	    read_global("pages_live", &pages)) {
		fail(a, INV_GLOBAL, "cannot read %s/stats", UPALLOC_PROC_DIR);
		return;
	}
	if (regions || pages)
		fail(a, INV_GLOBAL, "%s: regions_live %" PRIu64 " pages_live %"
		     PRIu64 " with no region mapped by anyone", when, regions,
		     pages);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void setup_device(void)
{
	struct upalloc_version v;
	int fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("TAP version 13\n1..0 # SKIP %s: %s\n",
		       UPALLOC_DEVICE_PATH, strerror(errno));
		exit(4);
	}
	if (ioctl(fd, UPALLOC_IOC_VERSION, &v)) {
		printf("TAP version 13\n1..1\nnot ok 1 version # %s\n",
		       strerror(errno));
		exit(1);
	}
	max_region_bytes = v.max_region_bytes;
	have_uring_cmd = v.features & UPALLOC_FEAT_URING_CMD;
	close(fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: devfuzz [--seed S] [--seconds N] [--rounds N] "
		"[--ops N] [--exclusive] [--fault-injection] [--verbose] "
		"[--self-test] [--fail-proc-read]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct actor main_actor;
	bool exec_child = false, seeded = false;
	unsigned long rounds = 0, total_ops = 0;
	struct sigaction sa;
	double start;
	int i, inv;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			opt_seed = strtoull(argv[++i], NULL, 0);
			seeded = true;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			opt_seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			opt_rounds = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			opt_ops = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--exclusive")) {
			opt_exclusive = true;
		} else if (!strcmp(argv[i], "--fault-injection")) {
			opt_fault = true;
		} else if (!strcmp(argv[i], "--self-test")) {
			opt_self_test = true;
		} else if (!strcmp(argv[i], "--fail-proc-read")) {
			opt_fail_proc_read = true;
		} else if (!strcmp(argv[i], "--verbose")) {
			opt_verbose = true;
		} else if (!strcmp(argv[i], "--exec-child")) {
			exec_child = true;
		} else if (!argv[i][0]) {
			continue;
		} else {
			usage();
		}
	}
	if (!seeded) {
		const char *env = getenv("UPALLOC_SEED");

		opt_seed = env ? strtoull(env, NULL, 0) :
			(uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	}
	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1) < 0)
		strcpy(self_exe, argv[0]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	memset(&main_actor, 0, sizeof(main_actor));
	main_actor.name = "main";
	main_actor.is_main = true;
	if (exec_child) {
		struct upalloc_proc_stats st;

		/* after exec: none of the parent's regions is ours */
		is_child = true;
		setup_device();
		main_actor.name = "exec-child";
		main_actor.rng = mix(opt_seed);
		op_open(&main_actor);
		memset(&st, 0, sizeof(st));
		if (main_actor.nfds &&
		    !ioctl(main_actor.fds[0], UPALLOC_IOC_PROC_STATS, &st) &&
		    (st.regions_live || st.pages_live || st.pages_committed))
			fail(&main_actor, INV_ISOLATION, "after exec: PROC_STATS "
			     "shows %llu regions %llu pages of the old image",
			     (unsigned long long)st.regions_live,
			     (unsigned long long)st.pages_live);
		run_ops(&main_actor, opt_ops, false);
		check_proc_stats(&main_actor);
		return inv_failed & 0x7f;
	}

	setup_device();
	all_ops = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (all_ops == MAP_FAILED)
		all_ops = NULL;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sock)) {
		perror("socketpair");
		return 1;
	}
	printf("TAP version 13\n");
	printf("# devfuzz: seed %" PRIu64 " (replay: devfuzz --seed %" PRIu64
	       "), %g s, %lu ops per round%s%s\n", opt_seed, opt_seed,
	       opt_seconds, opt_ops, opt_exclusive ? ", exclusive" : "",
	       opt_fault ? ", fault injection" : "");
	printf("1..%d\n", NR_INV);
	start = now();
	global_check(&main_actor, "before the first round");
	for (round_no = 0;; round_no++) {
		if (opt_rounds ? round_no >= opt_rounds :
		    now() - start >= opt_seconds)
			break;
		round_seed = mix(opt_seed + round_no);
		main_actor.rng = round_seed;
		main_actor.ops = 0;
		run_ops(&main_actor, opt_ops, true);
		total_ops += main_actor.ops;
		teardown(&main_actor);
		global_check(&main_actor, "after a round");
		rounds++;
	}
	if (opt_fail_proc_read)
		printf("# reads of %s/processes that failed with ENOMEM: %lu\n",
		       UPALLOC_PROC_DIR, proc_read_enomem);
	printf("# %lu rounds, %lu operations of the main processes, %" PRIu64
	       " of all processes and threads (exec children excepted) in "
	       "%.1f s: %.0f/s\n", rounds, total_ops,
	       all_ops ? *all_ops : 0, now() - start,
	       (all_ops ? *all_ops : 0) / (now() - start + 1e-9));
	for (inv = 0; inv < NR_INV; inv++) {
		if (inv_failed & (1U << inv))
			printf("not ok %d %s # %lu failures, seed %" PRIu64 "\n",
			       inv + 1, inv_names[inv], inv_count[inv], opt_seed);
		else if (inv == INV_GLOBAL && !opt_exclusive)
			printf("ok %d %s # SKIP not --exclusive\n", inv + 1,
			       inv_names[inv]);
		else
			printf("ok %d %s\n", inv + 1, inv_names[inv]);
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n",
	       NR_INV - __builtin_popcount(inv_failed),
	       __builtin_popcount(inv_failed));
	return inv_failed ? 1 : 0;
}
