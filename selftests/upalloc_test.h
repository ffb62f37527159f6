/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the upalloc module selftests: device and region set-up,
 * the ioctls, /proc/upalloc parsing, module parameters, SIGBUS/SIGSEGV
 * probes and parent/child synchronisation.
 *
 * The counters in /proc/upalloc/stats are global, so tests compare
 * before/after deltas and the runner runs every test serially. Each TEST
 * runs in a freshly forked child of the harness (which itself holds no
 * upalloc region), so UPALLOC_IOC_PROC_STATS starts from zero in every test.
 */
#ifndef UPALLOC_SELFTEST_H
#define UPALLOC_SELFTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The harness's own signal handler has an unused parameter. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "../kmod/uapi/upalloc.h"

#define UPA_PARAM_DIR		"/sys/module/upalloc/parameters"
#define UPA_STATS_PATH		UPALLOC_PROC_DIR "/stats"
#define UPA_PROCESSES_PATH	UPALLOC_PROC_DIR "/processes"
#define UPA_HIST_BUCKETS	32

/*
 * The 6.1 harness runs a TEST_F body even when FIXTURE_SETUP called SKIP(),
 * so every test that needs the device starts with this.
 */
#define NEED_DEVICE() do { if (_metadata->skip) return; } while (0)

/* Open the device in FIXTURE_SETUP; SKIP when the module is not loaded. */
#define OPEN_DEVICE_OR_SKIP(fdp) do {					\
	*(fdp) = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);		\
	if (*(fdp) < 0 && errno == ENOENT)				\
		SKIP(return, UPALLOC_DEVICE_PATH " missing: module not loaded"); \
	ASSERT_LE(0, *(fdp)) TH_LOG("open %s: %s",			\
				  UPALLOC_DEVICE_PATH, strerror(errno)); \
} while (0)

static inline size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

#define PAGES(n)	((size_t)(n) * page_size())

/* ---- regions and ioctls -------------------------------------------------- */

static inline char *upa_map(int fd, size_t len, int extra_flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | extra_flags, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A heap region: MAP_NORESERVE, break 0. */
static inline char *upa_map_heap(int fd, size_t len)
{
	return upa_map(fd, len, MAP_NORESERVE);
}

/* ioctl() returning 0 or -errno, so that ASSERT_EQ(-EINVAL, ...) reads well. */
static inline int upa_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int upa_range_cmd(int fd, unsigned long cmd, const void *addr,
				size_t len, uint64_t *nr_pages)
{
	struct upalloc_range r = {
		.addr = (uintptr_t)addr,
		.len = len,
	};
	int ret = upa_ioctl(fd, cmd, &r);

	if (nr_pages)
		*nr_pages = r.nr_pages;
	return ret;
}

static inline int upa_populate(int fd, const void *addr, size_t len,
			       uint64_t *nr_pages)
{
	return upa_range_cmd(fd, UPALLOC_IOC_POPULATE, addr, len, nr_pages);
}

static inline int upa_decommit(int fd, const void *addr, size_t len,
			       uint64_t *nr_pages)
{
	return upa_range_cmd(fd, UPALLOC_IOC_DECOMMIT, addr, len, nr_pages);
}

static inline int upa_set_brk(int fd, const void *addr, uint64_t new_brk,
			      struct upalloc_brk *out)
{
	struct upalloc_brk b = {
		.addr = (uintptr_t)addr,
		.new_brk = new_brk,
	};
	int ret = upa_ioctl(fd, UPALLOC_IOC_SET_BRK, &b);

	if (out)
		*out = b;
	return ret;
}

static inline int upa_query_brk(int fd, const void *addr, struct upalloc_brk *out)
{
	struct upalloc_brk b = {
		.addr = (uintptr_t)addr,
		.flags = UPALLOC_BRK_QUERY,
	};
	int ret = upa_ioctl(fd, UPALLOC_IOC_SET_BRK, &b);

	if (out)
		*out = b;
	return ret;
}

static inline int upa_region_info(int fd, const void *addr,
				  struct upalloc_region_info *info)
{
	memset(info, 0, sizeof(*info));
	info->addr = (uintptr_t)addr;
	return upa_ioctl(fd, UPALLOC_IOC_REGION_INFO, info);
}

/* Pages present in the region containing addr, or (uint64_t)-1 on error. */
static inline uint64_t upa_pages_present(int fd, const void *addr)
{
	struct upalloc_region_info info;

	if (upa_region_info(fd, addr, &info))
		return (uint64_t)-1;
	return info.pages_present;
}

static inline int upa_proc_stats(int fd, struct upalloc_proc_stats *ps)
{
	memset(ps, 0, sizeof(*ps));
	return upa_ioctl(fd, UPALLOC_IOC_PROC_STATS, ps);
}

/* ---- /proc/upalloc/stats ------------------------------------------------- */

struct upa_stats {
	uint64_t regions_live, regions_created, regions_destroyed;
	uint64_t pages_live, pages_peak, pages_committed;
	uint64_t pages_allocated, pages_freed;
	uint64_t faults, faults_read, faults_write, faults_mkwrite;
	uint64_t cow_copies, forks, pages_populated, pages_decommitted;
	uint64_t enomem, sigbus;
	uint64_t hist[UPA_HIST_BUCKETS];
};

struct upa_stat_name {
	const char *name;
	size_t offset;
};

#define UPA_STAT(f) { #f, offsetof(struct upa_stats, f) }
/* The documented order of the non-histogram lines. */
static const struct upa_stat_name upa_stat_names[] = {
	UPA_STAT(regions_live), UPA_STAT(regions_created),
	UPA_STAT(regions_destroyed), UPA_STAT(pages_live),
	UPA_STAT(pages_peak), UPA_STAT(pages_committed),
	UPA_STAT(pages_allocated), UPA_STAT(pages_freed),
	UPA_STAT(faults), UPA_STAT(faults_read), UPA_STAT(faults_write),
	UPA_STAT(faults_mkwrite), UPA_STAT(cow_copies), UPA_STAT(forks),
	UPA_STAT(pages_populated), UPA_STAT(pages_decommitted),
	UPA_STAT(enomem), UPA_STAT(sigbus),
};
#undef UPA_STAT

/*
 * Parse /proc/upalloc/stats. Returns 0 when every documented name was found
 * exactly once, -1 otherwise (unknown extra names are allowed).
 */
static inline int upa_read_stats(struct upa_stats *s)
{
	char name[128];
	unsigned long long val;
	unsigned int seen_hist = 0, seen = 0;
	size_t i;
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen(UPA_STATS_PATH, "re");
	if (!f)
		return -1;
	while (fscanf(f, "%127s %llu", name, &val) == 2) {
		unsigned int bucket;
		char tail;

		if (sscanf(name, "fault_latency_log2ns_%u%c", &bucket, &tail) == 1 &&
		    bucket < UPA_HIST_BUCKETS) {
			s->hist[bucket] = val;
			seen_hist++;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(upa_stat_names); i++) {
			if (!strcmp(name, upa_stat_names[i].name)) {
				*(uint64_t *)((char *)s + upa_stat_names[i].offset) = val;
				seen++;
			}
		}
	}
	fclose(f);
	return seen == ARRAY_SIZE(upa_stat_names) &&
	       seen_hist == UPA_HIST_BUCKETS ? 0 : -1;
}

static inline uint64_t upa_hist_sum(const struct upa_stats *s)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < UPA_HIST_BUCKETS; i++)
		sum += s->hist[i];
	return sum;
}

/* after.f - before.f as a signed value, for ASSERT_EQ(expected, DELTA(f)). */
#define STAT_DELTA(after, before, f) \
	((int64_t)((after).f - (before).f))

#define READ_STATS(s) \
	ASSERT_EQ(0, upa_read_stats(s)) TH_LOG("cannot parse " UPA_STATS_PATH)

/* ---- module parameters --------------------------------------------------- */

static inline int upa_param_read(const char *name, uint64_t *val)
{
	char path[256];
	unsigned long long v;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), UPA_PARAM_DIR "/%s", name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	if (!ok)
		return -EINVAL;
	*val = v;
	return 0;
}

/* Returns 0 or -errno of the write. */
static inline int upa_param_write_str(const char *name, const char *text)
{
	char path[256];
	ssize_t n;
	int fd, err = 0;

	snprintf(path, sizeof(path), UPA_PARAM_DIR "/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		err = -errno;
	else if ((size_t)n != strlen(text))
		err = -EIO;
	close(fd);
	return err;
}

static inline int upa_param_write(const char *name, uint64_t val)
{
	char text[32];

	snprintf(text, sizeof(text), "%" PRIu64 "\n", val);
	return upa_param_write_str(name, text);
}

/* ---- fault probes -------------------------------------------------------- */

/*
 * Touch one byte and report which signal (0, SIGBUS or SIGSEGV) the access
 * raised, with its si_code and si_addr. The handler jumps back over the
 * faulting instruction, so the test process survives.
 */
struct upa_probe_result {
	int sig;
	int code;
	void *addr;
};

static __thread sigjmp_buf upa_probe_env;
static __thread struct upa_probe_result upa_probe_last;

static void upa_probe_handler(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	upa_probe_last.sig = sig;
	upa_probe_last.code = info->si_code;
	upa_probe_last.addr = info->si_addr;
	siglongjmp(upa_probe_env, 1);
}

static inline void upa_probe_install(void)
{
	struct sigaction sa = {
		.sa_sigaction = upa_probe_handler,
		.sa_flags = SA_SIGINFO | SA_NODEFER,
	};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

static inline void upa_probe_uninstall(void)
{
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
}

/* Returns 0 or the signal number; *value gets the byte read. */
static inline int upa_probe_read(const volatile char *p, char *value,
				 struct upa_probe_result *res)
{
	volatile char v = 0;

	memset(&upa_probe_last, 0, sizeof(upa_probe_last));
	upa_probe_install();
	if (sigsetjmp(upa_probe_env, 1) == 0)
		v = *p;
	upa_probe_uninstall();
	if (value)
		*value = v;
	if (res)
		*res = upa_probe_last;
	return upa_probe_last.sig;
}

static inline int upa_probe_write(volatile char *p, char value,
				  struct upa_probe_result *res)
{
	memset(&upa_probe_last, 0, sizeof(upa_probe_last));
	upa_probe_install();
	if (sigsetjmp(upa_probe_env, 1) == 0)
		*p = value;
	upa_probe_uninstall();
	if (res)
		*res = upa_probe_last;
	return upa_probe_last.sig;
}

/* ---- page patterns ------------------------------------------------------- */

/* A pattern that differs per seed, page and word, so misplaced pages show. */
static inline uint64_t upa_pattern(uint64_t seed, size_t page, size_t word)
{
	return (seed << 40) ^ ((uint64_t)page << 16) ^ word ^ 0x5a5a000000000000ULL;
}

static inline void fill_pages(char *base, size_t first, size_t n, uint64_t seed)
{
	size_t words = page_size() / sizeof(uint64_t);
	size_t pg, w;

	for (pg = first; pg < first + n; pg++) {
		uint64_t *q = (uint64_t *)(base + PAGES(pg));

		for (w = 0; w < words; w++)
			q[w] = upa_pattern(seed, pg, w);
	}
}

/* Returns the index of the first page that does not hold the pattern, or -1. */
static inline long check_pages(const char *base, size_t first, size_t n,
			       uint64_t seed)
{
	size_t words = page_size() / sizeof(uint64_t);
	size_t pg, w;

	for (pg = first; pg < first + n; pg++) {
		const uint64_t *q = (const uint64_t *)(base + PAGES(pg));

		for (w = 0; w < words; w++)
			if (q[w] != upa_pattern(seed, pg, w))
				return (long)pg;
	}
	return -1;
}

/* Returns the index of the first page with a non-zero byte, or -1. */
static inline long check_zero_pages(const char *base, size_t first, size_t n)
{
	size_t words = page_size() / sizeof(uint64_t);
	size_t pg, w;

	for (pg = first; pg < first + n; pg++) {
		const uint64_t *q = (const uint64_t *)(base + PAGES(pg));

		for (w = 0; w < words; w++)
			if (q[w])
				return (long)pg;
	}
	return -1;
}

/* Read one byte of every page (read faults only). */
static inline void read_pages(const char *base, size_t first, size_t n)
{
	size_t pg;

	for (pg = first; pg < first + n; pg++)
		(void)*(const volatile char *)(base + PAGES(pg));
}

/* Write one byte of every page. */
static inline void write_pages(char *base, size_t first, size_t n, char v)
{
	size_t pg;

	for (pg = first; pg < first + n; pg++)
		*(volatile char *)(base + PAGES(pg)) = v;
}

/* ---- child processes ----------------------------------------------------- */

/*
 * Forked children must not use ASSERT_* (it would longjmp into the parent's
 * copy of the harness state): they report the first failed check on stderr
 * and exit with status 1.
 */
#define CHILD_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "# %s:%d: child %d: check failed: %s (errno %d: %s)\n", \
			__FILE__, __LINE__, getpid(), #cond, errno,	\
			strerror(errno));				\
		_exit(1);						\
	}								\
} while (0)

/* Wait for a child; returns its raw wait status, or -1. */
static inline int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

/* 0 when the child exited with status 0, else the raw wait status (or -1). */
static inline int wait_child_ok(pid_t pid)
{
	int status = wait_child(pid);

	if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return status ? status : -1;
}

/* One-byte messages over a pipe, to order parent and child steps. */
static inline void sync_send(int fd, char c)
{
	while (write(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static inline char sync_recv(int fd)
{
	char c = 0;
	ssize_t n;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? c : 0;
}

/* A pair of pipes: parent->child and child->parent. */
struct upa_channel {
	int to_child[2];
	int to_parent[2];
};

static inline int channel_open(struct upa_channel *ch)
{
	if (pipe2(ch->to_child, O_CLOEXEC))
		return -1;
	if (pipe2(ch->to_parent, O_CLOEXEC))
		return -1;
	return 0;
}

static inline void channel_close(struct upa_channel *ch)
{
	close(ch->to_child[0]);
	close(ch->to_child[1]);
	close(ch->to_parent[0]);
	close(ch->to_parent[1]);
}

#define TELL_CHILD(ch, c)	sync_send((ch)->to_child[1], c)
#define WAIT_PARENT(ch)		sync_recv((ch)->to_child[0])
#define TELL_PARENT(ch, c)	sync_send((ch)->to_parent[1], c)
#define WAIT_CHILD(ch)		sync_recv((ch)->to_parent[0])

/* ---- main ---------------------------------------------------------------- */

/*
 * Without the device every test reports SKIP; the binary then exits with
 * KSFT_SKIP (4) as the build contract asks, instead of the harness's 0.
 */
static void upa_exit_skip_without_device(void)
{
	fflush(stdout);
	fflush(stderr);
	_exit(KSFT_SKIP);
}

#define UPALLOC_TEST_MAIN						\
	int main(int argc, char **argv)					\
	{								\
		if (access(UPALLOC_DEVICE_PATH, F_OK))			\
			atexit(upa_exit_skip_without_device);		\
		return test_harness_run(argc, argv);			\
	}

#endif /* UPALLOC_SELFTEST_H */
