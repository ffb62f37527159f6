// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the module's allocation failures, one at a time (issue 11,
 * devfuzz finding 3). Needs the debug kernel of make check-debug
 * (CONFIG_FAULT_INJECTION with failslab, fail_page_alloc and the stack
 * trace filter, debugfs): the task's /proc/thread-self/fail-nth makes the
 * N-th allocation made through upalloc.ko's code fail, and the tests sweep
 * N over one operation until it runs without a failure. Not part of
 * make -C selftests run_tests (a stock kernel has no fault injection):
 * tools/debug-kernel/guest-suites runs it as the fault-selftests suite,
 * where a missing prerequisite is a failure.
 *
 * - fork of a process holding regions, one page pinned (an io_uring fixed
 *   buffer: the clone copies it, an allocation that may fail after the
 *   clone has taken its commitment and shares): whichever allocation
 *   fails, the child's record counts exactly the clones that were made (regions,
 *   pages, commitments), in PROC_STATS and /proc/upalloc/processes alike,
 *   a lost clone raises SIGBUS, and once the child is gone the parent's
 *   record and the global counters are as before the fork.
 * - reading /proc/upalloc/processes: fails with ENOMEM or lists this
 *   process exactly, never a partial or wrong line.
 */
#include <liburing.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mount.h>

#include "upalloc_test.h"

#define DBG		"/sys/kernel/debug"
#define FAIL_NTH	"/proc/thread-self/fail-nth"
#define MAX_NTH		4000
#define NREG		3

static const char *const fault_dirs[] = { "failslab", "fail_page_alloc" };

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

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* [*lo, *hi): upalloc.ko's text. */
static int module_text(unsigned long *lo, unsigned long *hi)
{
	char buf[64], name[64];
	unsigned long size;
	int found = 0;
	FILE *f;

	if (read_file("/sys/module/upalloc/sections/.text", buf, sizeof(buf)))
		return -1;
	*lo = strtoul(buf, NULL, 0);
	f = fopen("/proc/modules", "re");
	if (!f)
		return -1;
	while (!found && fscanf(f, "%63s %lu %*[^\n]", name, &size) == 2)
		found = !strcmp(name, "upalloc");
	fclose(f);
	*hi = *lo + size;
	return found && *lo ? 0 : -1;
}

/*
 * Let fail-nth count only allocations whose stack passes through the
 * module's text, sleeping ones included; nothing fails at random
 * (probability 0). Returns NULL or what is missing.
 */
static const char *arm_fail_nth(void)
{
	static char why[256];
	unsigned long lo, hi;
	char path[128], val[64];
	size_t i;

	if (access(FAIL_NTH, W_OK))
		return FAIL_NTH " missing: not the debug kernel (CONFIG_FAULT_INJECTION)";
	if (access(DBG "/failslab", F_OK))
		mount("none", DBG, "debugfs", 0, NULL);
	if (module_text(&lo, &hi))
		return "upalloc.ko's text not found in /sys/module and /proc/modules";
	for (i = 0; i < sizeof(fault_dirs) / sizeof(fault_dirs[0]); i++) {
		static const char *const settings[][2] = {
			{ "probability", "0" }, { "verbose", "0" },
			{ "ignore-gfp-wait", "N" }, { "stacktrace-depth", "32" },
		};
		size_t s;

		for (s = 0; s < sizeof(settings) / sizeof(settings[0]); s++) {
			snprintf(path, sizeof(path), DBG "/%s/%s", fault_dirs[i],
				 settings[s][0]);
			if (write_file(path, settings[s][1]))
				goto missing;
		}
		snprintf(path, sizeof(path), DBG "/%s/require-start", fault_dirs[i]);
		snprintf(val, sizeof(val), "%#lx", lo);
		if (write_file(path, val))
			goto missing;
		snprintf(path, sizeof(path), DBG "/%s/require-end", fault_dirs[i]);
		snprintf(val, sizeof(val), "%#lx", hi);
		if (write_file(path, val))
			goto missing;
	}
	if (write_file(DBG "/fail_page_alloc/min-order", "0") ||
	    write_file(DBG "/fail_page_alloc/ignore-gfp-highmem", "N")) {
		snprintf(path, sizeof(path), DBG "/fail_page_alloc/min-order");
		goto missing;
	}
	return NULL;
missing:
	snprintf(why, sizeof(why), "cannot set %s: %s", path, strerror(errno));
	return why;
}

static int set_fail_nth(unsigned int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%u", n);
	return write_file(FAIL_NTH, buf);
}

/* Allocations of the countdown left; 0 when the N-th one failed. */
static long fail_nth_left(void)
{
	char buf[16];

	if (read_file(FAIL_NTH, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

/*
 * pid's line of /proc/upalloc/processes: 1 found, 0 absent, -errno when
 * the file could not be read.
 */
static int processes_line(pid_t pid, long *regions, long *live,
			  long *committed)
{
	char line[512], comm[64];
	long peak, faults;
	int ret = 0, p;
	FILE *f;

	f = fopen(UPA_PROCESSES_PATH, "re");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f))
		ret = ferror(f) ? -errno : -ENODATA;
	while (!ret && fgets(line, sizeof(line), f))
		if (sscanf(line, "%d %63s %ld %ld %ld %ld %ld", &p, comm,
			   regions, live, &peak, committed, &faults) == 7 &&
		    p == pid)
			ret = 1;
	if (!ret && ferror(f))
		ret = -errno;
	fclose(f);
	return ret;
}

static sigjmp_buf probe_env;

static void probe_bus(int sig)
{
	siglongjmp(probe_env, sig);
}

/* The signal reading p raises, or 0. */
static int probe(const volatile char *p)
{
	struct sigaction sa = { .sa_handler = probe_bus }, old;
	volatile int sig;

	sigaction(SIGBUS, &sa, &old);
	sig = sigsetjmp(probe_env, 1);
	if (!sig)
		(void)*p;
	sigaction(SIGBUS, &old, NULL);
	return sig;
}

FIXTURE(faults) {
	int fd;
	char *reg[NREG];
	size_t len[NREG];
	struct io_uring ring;
	bool ring_up;
};

FIXTURE_SETUP(faults)
{
	const char *why;
	int i;

	/* Run only on the debug kernel: a missing prerequisite fails. */
	self->fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", UPALLOC_DEVICE_PATH,
				      strerror(errno));
	why = arm_fail_nth();
	ASSERT_EQ(NULL, why) TH_LOG("%s", why);

	/* All touched, half touched plus a heap below its break, untouched. */
	self->len[0] = PAGES(16);
	self->len[1] = PAGES(8);
	self->len[2] = PAGES(64);
	self->reg[0] = upa_map(self->fd, self->len[0], 0);
	self->reg[1] = upa_map(self->fd, self->len[1], 0);
	self->reg[2] = upa_map_heap(self->fd, self->len[2]);
	for (i = 0; i < NREG; i++)
		ASSERT_NE(NULL, self->reg[i]);
	ASSERT_EQ(0, upa_set_brk(self->fd, self->reg[2], PAGES(12), NULL));
	fill_pages(self->reg[0], 0, 16, 1);
	fill_pages(self->reg[1], 0, 4, 2);
	fill_pages(self->reg[2], 0, 5, 3);
	/* A pinned page: fork copies it for the child (6.12 takes the pin). */
	ASSERT_EQ(0, io_uring_queue_init(4, &self->ring, 0));
	self->ring_up = true;
	{
		struct iovec iov = { .iov_base = self->reg[0] + PAGES(3),
				     .iov_len = page_size() };

		ASSERT_EQ(0, io_uring_register_buffers(&self->ring, &iov, 1));
	}
}

FIXTURE_TEARDOWN(faults)
{
	int i;

	set_fail_nth(0);
	if (self->ring_up)
		io_uring_queue_exit(&self->ring);
	for (i = 0; i < NREG; i++)
		if (self->reg[i])
			munmap(self->reg[i], self->len[i]);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * The child: its record must count exactly the regions whose clone was
 * made (REGION_INFO finds them; a lost one has no region and its pages
 * raise SIGBUS). Exit status 0 when all holds, else the failed check.
 */
static int fork_child_checks(int fd, char *const *reg, int *lost)
{
	struct upalloc_region_info ri;
	struct upalloc_proc_stats ps;
	long regions = 0, live = 0, committed = 0, l_regions, l_live, l_comm;
	int i, ret;

	*lost = 0;
	for (i = 0; i < NREG; i++) {
		if (upa_region_info(fd, reg[i], &ri)) {
			if (errno != EINVAL || probe(reg[i]) != SIGBUS)
				return 10 + i;
			(*lost)++;
			continue;
		}
		regions++;
		live += ri.pages_present;
		committed += ri.brk / page_size();
		if (probe(reg[i]))
			return 20 + i;
	}
	if (upa_proc_stats(fd, &ps))
		return 30;
	if ((long)ps.regions_live != regions || (long)ps.pages_live != live ||
	    (long)ps.pages_committed != committed) {
		fprintf(stderr, "# child: PROC_STATS regions %lld pages_live %lld committed %lld; clones: %ld regions, %ld pages, %ld committed\n",
			(long long)ps.regions_live, (long long)ps.pages_live,
			(long long)ps.pages_committed, regions, live, committed);
		return 31;
	}
	ret = processes_line(getpid(), &l_regions, &l_live, &l_comm);
	if (ret < 0) {
		fprintf(stderr, "# child: reading processes: %s\n", strerror(-ret));
		return 40;
	}
	if (ret != !!regions || (ret && (l_regions != regions ||
					 l_live != live || l_comm != committed))) {
		fprintf(stderr, "# child: processes line %s: regions %ld pages_live %ld committed %ld; clones: %ld regions, %ld pages, %ld committed\n",
			ret ? "found" : "absent", ret ? l_regions : 0,
			ret ? l_live : 0, ret ? l_comm : 0, regions, live,
			committed);
		return 41;
	}
	return 0;
}

TEST_F_TIMEOUT(faults, fork_under_each_allocation_failure_keeps_records_exact, 900)
{
	struct upalloc_proc_stats before, after;
	struct upa_stats g_before, g_after;
	unsigned int nth, lost_runs = 0;
	int status, pipefd[2];
	long left = -1;
	pid_t pid;

	if (self->fd < 0 || _metadata->skip)
		return;
	ASSERT_EQ(0, upa_proc_stats(self->fd, &before));
	ASSERT_EQ(NREG, before.regions_live);
	for (nth = 1; nth <= MAX_NTH; nth++) {
		int lost = -1;

		ASSERT_EQ(0, upa_read_stats(&g_before));
		ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
		ASSERT_EQ(0, set_fail_nth(nth));
		pid = fork();
		left = fail_nth_left();
		set_fail_nth(0);
		ASSERT_LE(0, pid) TH_LOG("fork with fail-nth %u: %s", nth,
					 strerror(errno));
		if (pid == 0) {
			int ret = fork_child_checks(self->fd, self->reg, &lost);

			if (write(pipefd[1], &lost, sizeof(lost)) != sizeof(lost))
				ret = 50;
			_exit(ret);
		}
		close(pipefd[1]);
		if (read(pipefd[0], &lost, sizeof(lost)) != sizeof(lost))
			lost = -1;
		close(pipefd[0]);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("fail-nth %u (%ld left): child status %#x, %d clones lost",
			       nth, left, status, lost);
		lost_runs += lost > 0;

		/* The child is gone: everything as before its fork. */
		ASSERT_EQ(0, upa_proc_stats(self->fd, &after));
		EXPECT_EQ(before.regions_live, after.regions_live)
			TH_LOG("fail-nth %u", nth);
		EXPECT_EQ(before.pages_committed, after.pages_committed)
			TH_LOG("fail-nth %u", nth);
		EXPECT_EQ(before.pages_live, after.pages_live)
			TH_LOG("fail-nth %u", nth);
		ASSERT_EQ(0, upa_read_stats(&g_after));
		EXPECT_EQ(g_before.regions_live, g_after.regions_live)
			TH_LOG("fail-nth %u", nth);
		EXPECT_EQ(g_before.pages_live, g_after.pages_live)
			TH_LOG("fail-nth %u", nth);
		EXPECT_EQ(g_before.pages_committed, g_after.pages_committed)
			TH_LOG("fail-nth %u", nth);
		if (_metadata->passed == 0 || left > 0)
			break;
	}
	/* The sweep ended with a fork that made every allocation. */
	EXPECT_LT(0, left) TH_LOG("fail-nth still failing at %u", nth);
	/* And the injection did reach the clone. */
	EXPECT_LT(0, lost_runs);
	EXPECT_EQ(-1, check_pages(self->reg[0], 0, 16, 1));
	EXPECT_EQ(-1, check_pages(self->reg[1], 0, 4, 2));
	EXPECT_EQ(-1, check_pages(self->reg[2], 0, 5, 3));
	TH_LOG("%u forks swept, %u lost a clone", nth, lost_runs);
}

TEST_F_TIMEOUT(faults, processes_read_under_each_allocation_failure_is_exact_or_enomem, 300)
{
	long regions, live, committed;
	struct upalloc_proc_stats ps;
	unsigned int nth, failed = 0;
	long left = -1;
	int ret;

	if (self->fd < 0 || _metadata->skip)
		return;
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	for (nth = 1; nth <= MAX_NTH; nth++) {
		ASSERT_EQ(0, set_fail_nth(nth));
		ret = processes_line(getpid(), &regions, &live, &committed);
		left = fail_nth_left();
		set_fail_nth(0);
		if (ret < 0) {
			EXPECT_EQ(-ENOMEM, ret) TH_LOG("fail-nth %u", nth);
			failed++;
		} else {
			EXPECT_EQ(1, ret) TH_LOG("fail-nth %u", nth);
			EXPECT_EQ(NREG, regions);
			EXPECT_EQ((long)ps.pages_live, live);
			EXPECT_EQ((long)ps.pages_committed, committed);
		}
		if (left > 0)
			break;
	}
	EXPECT_LT(0, left);
	EXPECT_LT(0, failed);
}

UPALLOC_TEST_MAIN
