/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the libupalloc unit tests (kselftest harness).
 *
 * Every test binary links libupalloc.a whole, so malloc/free/... below are
 * upalloc's. The harness runs each test in a fork of the runner, so a test
 * may change tunables with mallopt() without affecting the next one.
 *
 * The chunk layout the tests rely on is ptmalloc's, which libupalloc keeps:
 *
 *     chunk -> +-------------------------------+
 *              | prev_size (if previous free)  |  p - 16
 *              +-------------------------------+
 *              | size | NON_MAIN | MMAPPED | P  |  p - 8
 *       p ---> +-------------------------------+
 *              | fd (free) / user data         |  p
 *              | bk (free)                     |  p + 8
 *              | fd_nextsize (large, free)     |  p + 16
 *              | bk_nextsize (large, free)     |  p + 24
 *
 * chunk size = max(32, (request + 8 + 15) & ~15), i.e. 16-aligned, the
 * 8-byte size word included and the next chunk's prev_size word usable.
 */
#ifndef UPA_TEST_H
#define UPA_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "upalloc.h"
#include "kmod/uapi/upalloc.h"

#define CHUNK_PREV_INUSE	0x1UL
#define CHUNK_IS_MMAPPED	0x2UL
#define CHUNK_NON_MAIN_ARENA	0x4UL
#define CHUNK_FLAGS		0x7UL
#define MIN_CHUNK		32UL
#define CHUNK_ALIGN		16UL

/* The size word of the chunk whose user pointer is p (flags included). */
static inline size_t *chunk_size_word(const void *p)
{
	return (size_t *)p - 1;
}

static inline size_t *chunk_prev_size_word(const void *p)
{
	return (size_t *)p - 2;
}

static inline size_t chunk_size(const void *p)
{
	return *chunk_size_word(p) & ~CHUNK_FLAGS;
}

static inline bool chunk_is_mmapped(const void *p)
{
	return *chunk_size_word(p) & CHUNK_IS_MMAPPED;
}

static inline bool chunk_is_non_main(const void *p)
{
	return *chunk_size_word(p) & CHUNK_NON_MAIN_ARENA;
}

static inline bool chunk_prev_inuse(const void *p)
{
	return *chunk_size_word(p) & CHUNK_PREV_INUSE;
}

/* The user pointer of the chunk that follows p's chunk in memory. */
static inline void *chunk_next(const void *p)
{
	return (char *)p + chunk_size(p);
}

/* The chunk size libupalloc uses for a request of n bytes. */
static inline size_t request_chunk(size_t n)
{
	size_t c = (n + 8 + 15) & ~15UL;

	return c < MIN_CHUNK ? MIN_CHUNK : c;
}

/* The largest request that fits a chunk of c bytes. */
static inline size_t chunk_request(size_t c)
{
	return c - 8;
}

/*
 * The fixture every test uses: its teardown walks the heap after the test's
 * workload, so each test also checks every heap invariant.
 */
#define UPA_FIXTURE(name)						\
	FIXTURE(name) {							\
		int unused;						\
	};								\
	FIXTURE_SETUP(name)						\
	{								\
	}								\
	FIXTURE_TEARDOWN(name)						\
	{								\
		/* a failed ASSERT leaves the log trigger armed */	\
		_metadata->trigger = 0;					\
		EXPECT_EQ(0, upa_heap_check())				\
			TH_LOG("upa_heap_check() failed after the test");	\
	}

static inline int stats_read(struct upa_lib_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return upa_lib_stats(st);
}

#define STATS(st)							\
	do {								\
		ASSERT_EQ(0, stats_read(&(st)));			\
	} while (0)

/* Tunables that make one bin path reachable without the others interfering. */
static inline void tcache_disable(void)
{
	mallopt(UPA_M_TCACHE_COUNT, 0);
}

static inline bool backend_is_device(void)
{
	return strcmp(upa_backend_name(), "device") == 0;
}

/* ---- child processes ---------------------------------------------------- */

/*
 * Wait for pid at most timeout_s seconds; on timeout kill it and return -1
 * (for the tests a hang is a deadlock, i.e. a failure). Polls with a short
 * sleep: the result never depends on how fast the child is, only the bound.
 */
static inline int wait_bounded(pid_t pid, int timeout_s, int *status)
{
	struct timespec tick = { 0, 5 * 1000 * 1000 }, now, end;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_s;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec ||
		    (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			break;
		nanosleep(&tick, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

/* Read everything left in fd (from offset 0) into buf, NUL-terminated. */
static inline size_t read_all_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	lseek(fd, 0, SEEK_SET);
	while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		n += r;
	}
	buf[n] = '\0';
	return n;
}

/* Does text contain a line exactly equal to line? */
static inline bool has_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	const char *s = text;

	while ((s = strstr(s, line)) != NULL) {
		bool starts = s == text || s[-1] == '\n';
		bool ends = s[len] == '\n' || s[len] == '\0';

		if (starts && ends)
			return true;
		s++;
	}
	return false;
}

/*
 * Death test: run fn() in a child whose stderr is captured and expect the
 * child to die of SIGABRT after printing the line "upalloc: <msg>".
 * The corruption happens in the child's copy of the heap only.
 */
static inline void expect_death(struct __test_metadata *_metadata,
				void (*fn)(void), const char *msg)
{
	static char err[65536];
	char want[256];
	int status = 0, fd;
	pid_t pid;

	snprintf(want, sizeof(want), "upalloc: %s", msg);
	fd = memfd_create("death-stderr", 0);
	ASSERT_LE(0, fd);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		dup2(fd, 2);
		fn();
		_exit(0);	/* the corruption went unnoticed */
	}
	ASSERT_EQ(0, wait_bounded(pid, 20, &status))
		TH_LOG("corruption test hung (no abort within 20 s)");
	read_all_fd(fd, err, sizeof(err));
	close(fd);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
		TH_LOG("expected SIGABRT, got %s %d; stderr: %s",
		       WIFSIGNALED(status) ? "signal" : "exit status",
		       WIFSIGNALED(status) ? WTERMSIG(status) :
					     WEXITSTATUS(status), err);
	EXPECT_TRUE(has_line(err, want))
		TH_LOG("stderr lacks the line \"%s\"; stderr was: %s", want, err);
}

/*
 * Run fn(arg) in a child and return its wait status in *status; the
 * child's exit status is fn's return value. Returns -1 if it did not end
 * within timeout_s seconds.
 */
static inline int run_child(int (*fn)(void *), void *arg, int timeout_s,
			    int *status)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		alarm(timeout_s + 30);	/* never outlive the test */
		_exit(fn(arg));
	}
	return wait_bounded(pid, timeout_s, status);
}

#define EXPECT_CHILD_OK(fn, arg, timeout_s)				\
	do {								\
		int __st = 0;						\
		ASSERT_EQ(0, run_child(fn, arg, timeout_s, &__st))	\
			TH_LOG("child did not finish within %d s (deadlock)", \
			       timeout_s);				\
		EXPECT_FALSE(WIFSIGNALED(__st) && WTERMSIG(__st) == SIGALRM) \
			TH_LOG("child hung until its alarm (deadlock)");	\
		EXPECT_TRUE(WIFEXITED(__st) && WEXITSTATUS(__st) == 0)	\
			TH_LOG("child failed: %s %d",			\
			       WIFEXITED(__st) ? "exit status" : "signal", \
			       WIFEXITED(__st) ? WEXITSTATUS(__st) :	\
						 WTERMSIG(__st));	\
	} while (0)

/* ---- the probe: a fresh process with its own environment --------------- */

struct probe_result {
	int status;		/* wait status */
	char out[16384];
	char err[16384];
};

/*
 * Run the program path with the arguments argv (NULL-terminated) and the
 * extra environment entries env (NULL-terminated "NAME=value", may be
 * NULL), without core dumps; its standard output and error end up in r,
 * its wait status in r->status (-1 when it ran past timeout_s seconds).
 */
static inline int run_program(struct probe_result *r, const char *path,
			      const char *const *env, const char *const *argv,
			      int timeout_s)
{
	const char *args[64];
	int ofd, efd, i, n;
	pid_t pid;

	args[0] = path;
	for (n = 1; argv[n - 1] && n < 63; n++)
		args[n] = argv[n - 1];
	args[n] = NULL;

	ofd = memfd_create("probe-out", 0);
	efd = memfd_create("probe-err", 0);
	if (ofd < 0 || efd < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		for (i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(path, (char *const *)args);
		_exit(127);
	}
	if (wait_bounded(pid, timeout_s, &r->status))
		r->status = -1;
	read_all_fd(ofd, r->out, sizeof(r->out));
	read_all_fd(efd, r->err, sizeof(r->err));
	close(ofd);
	close(efd);
	return 0;
}

/*
 * Run build/userlib/tests/upa-probe (next to this binary) with the extra
 * environment entries env (NULL-terminated "NAME=value", may be NULL) and
 * the probe commands argv (NULL-terminated). Options are read once at
 * library initialisation, so a fresh exec is the only way to test them.
 */
static inline int run_probe(struct probe_result *r, const char *const *env,
			    const char *const *argv)
{
	char self[PATH_MAX], probe[PATH_MAX + 16], *slash;
	ssize_t len;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return -1;
	self[len] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(probe, sizeof(probe), "%s/upa-probe", self);
	return run_program(r, probe, env, argv, 30);
}

/* The value of the last "key=value" line of the probe's output, or -1. */
static inline long long probe_value(const struct probe_result *r,
				    const char *key)
{
	size_t klen = strlen(key);
	long long v = -1;
	const char *s = r->out;

	while (s && *s) {
		if (strncmp(s, key, klen) == 0 && s[klen] == '=')
			v = strtoll(s + klen + 1, NULL, 0);
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return v;
}

#define PROBE_OK(r)							\
	do {								\
		ASSERT_TRUE(WIFEXITED((r).status) &&			\
			    WEXITSTATUS((r).status) == 0)		\
			TH_LOG("probe failed (status 0x%x): out: %s err: %s", \
			       (r).status, (r).out, (r).err);		\
	} while (0)

/* ---- the device -------------------------------------------------------- */

/* The calling process's counters from the module; 0 or -errno. */
static inline int dev_proc_stats(struct upalloc_proc_stats *ps)
{
	int fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	memset(ps, 0, sizeof(*ps));
	ps->size = sizeof(*ps);
	if (ioctl(fd, UPALLOC_IOC_PROC_STATS, ps))
		ret = -errno;
	close(fd);
	return ret;
}

static inline bool device_present(void)
{
	return access(UPALLOC_DEVICE_PATH, F_OK) == 0;
}

#endif /* UPA_TEST_H */
