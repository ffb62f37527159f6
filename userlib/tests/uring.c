// SPDX-License-Identifier: MIT
/*
 * Description: free()'s automatic trim through the io_uring path on the
 * device (deferred trims, region.c; the ring, uring.c): far fewer system
 * calls than one break move per trim, memory handed out again over a
 * pending or cancelled decommit reads as zero for calloc, fork with
 * decommits in flight, and UPALLOC_URING=0 gives the same results.
 *
 * This binary is linked with the library's objects and the ring built in
 * (the archives carry the ioctl path only). Each scenario runs in a fresh
 * exec of this binary (the library reads UPALLOC_URING once), which prints
 * name=value lines; the tests compare the ring run with the ioctl run.
 * Without /dev/upalloc every test is a SKIP.
 */
#include <sys/syscall.h>
#include <linux/perf_event.h>

#include "upa_test.h"
#include "userlib/uring.h"
#include "tools/bench/syscall_counter.h"

#define BLOCK		(128UL << 10)	/* one trim each, below the mmap threshold */
#define BLOCKS		64
#define ROUNDS		8

/* ---- the scenarios (run in the exec'd child) ---------------------------- */

static long long counter_read(int fd)
{
	long long v;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return -1;
	return v;
}

static void thresholds(void)
{
	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 10);
	mallopt(M_TOP_PAD, 0);
	mallopt(UPA_M_TCACHE_COUNT, 0);
}

static void print_uring(const char *prefix)
{
	struct upa_uring_stats us;

	upa_uring_get_stats(&us);
	printf("%sring_active=%u\n", prefix, us.ring_active);
	printf("%sring_syscalls=%llu\n", prefix,
	       (unsigned long long)(us.enters + us.decommits_ioctl));
	printf("%ssubmits=%llu\n%swaits=%llu\n%ssync_cmds=%llu\n", prefix,
	       (unsigned long long)us.submits, prefix,
	       (unsigned long long)us.waits, prefix,
	       (unsigned long long)us.sync_cmds);
	printf("%scancelled=%llu\n", prefix, (unsigned long long)us.cancelled);
	printf("%sfork_redone=%llu\n", prefix,
	       (unsigned long long)us.fork_redone);
}

/*
 * BLOCKS blocks of BLOCK bytes, one byte written per page, freed newest
 * first: each free merges into the top chunk and trims it.
 */
static int trims_round(int r)
{
	static char *p[BLOCKS];
	size_t off;
	int i;

	for (i = 0; i < BLOCKS; i++) {
		p[i] = malloc(BLOCK);
		if (!p[i])
			return -1;
		for (off = 0; off < BLOCK; off += 4096)
			p[i][off] = (char)(r + i + 1);
	}
	for (i = BLOCKS - 1; i >= 0; i--)
		free(p[i]);
	return 0;
}

/* ROUNDS rounds counted, after one that grows the heap to its size. */
static int scenario_trims(void)
{
	struct upa_lib_stats before, after;
	struct upalloc_proc_stats ps0, ps1;
	long long sc0, sc1;
	int cfd, r;

	thresholds();
	if (trims_round(0))
		return 1;
	upa_uring_flush();
	cfd = syscall_counter_open(0);
	stats_read(&before);
	dev_proc_stats(&ps0);
	if (cfd >= 0)
		ioctl(cfd, PERF_EVENT_IOC_ENABLE, 0);
	sc0 = counter_read(cfd);
	for (r = 1; r <= ROUNDS; r++) {
		if (trims_round(r))
			return 1;
	}
	sc1 = counter_read(cfd);
	stats_read(&after);
	upa_uring_flush();
	dev_proc_stats(&ps1);
	printf("trims=%zu\n", after.heap_trims - before.heap_trims);
	printf("syscalls=%lld\n", sc0 >= 0 && sc1 >= 0 ? sc1 - sc0 : -1LL);
	printf("pages_freed=%llu\n",
	       (unsigned long long)(ps1.pages_freed - ps0.pages_freed));
	print_uring("");
	printf("heap_check=%d\n", upa_heap_check());
	return 0;
}

/* Nonzero when [p, p + n) holds a byte that is not 0. */
static int not_zero(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 1;
	return 0;
}

/*
 * calloc over pages a trim just queued a decommit for (cancelled: they
 * keep 0xab), over pages whose decommit ran (flush), and over a range
 * part of which is still queued.
 */
static int scenario_calloc(void)
{
	size_t big = 1UL << 20;
	int dirty = 0, k;
	char *p, *q;

	thresholds();
	for (k = 0; k < 3; k++) {
		p = malloc(big);
		if (!p)
			return 1;
		memset(p, 0xab, big);
		free(p);		/* trims: decommit queued */
		if (k == 1)
			upa_uring_flush();	/* ... and done */
		q = calloc(1, k == 2 ? big / 2 : big);
		if (!q)
			return 1;
		dirty += not_zero(q, k == 2 ? big / 2 : big);
		if (k == 2) {
			/* The rest of the queued range, handed out later. */
			char *q2 = calloc(1, big / 2);

			if (!q2)
				return 1;
			dirty += not_zero(q2, big / 2);
			memset(q2, 0xcd, big / 2);
			free(q2);
		}
		memset(q, 0xcd, k == 2 ? big / 2 : big);
		free(q);
	}
	printf("calloc_dirty=%d\n", dirty);
	print_uring("");
	printf("heap_check=%d\n", upa_heap_check());
	return 0;
}

/*
 * Fork while a trim's decommit is queued (1 MiB: waits for its batch) and
 * while one is in flight (12 MiB: over the 8 MiB bound, submitted at
 * once; the module runs it in io-wq, and it may also have finished and
 * been reaped before the fork). Both processes then calloc over the
 * range: zero, whatever the parent's command did around the fork. Each
 * child reports under its own prefix.
 */
static int scenario_fork(void)
{
	static const size_t sizes[] = { 1UL << 20, 12UL << 20 };
	static const char *const prefixes[] = { "child_queued_",
						"child_in_flight_" };
	int status, dirty = 0, bad_status = 0;
	unsigned int i;
	char *p, *q;
	pid_t pid;

	thresholds();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t big = sizes[i];

		p = malloc(big);
		if (!p)
			return 1;
		memset(p, 0xab, big);
		free(p);		/* trims: decommit queued or submitted */
		fflush(stdout);
		pid = fork();
		if (pid < 0)
			return 1;
		q = calloc(1, big);
		dirty += !q || not_zero(q, big);
		if (q) {
			memset(q, 0xcd, big);
			free(q);
		}
		if (pid == 0) {
			print_uring(prefixes[i]);
			printf("%sdirty=%d\n%sheap_check=%d\n", prefixes[i],
			       dirty, prefixes[i], upa_heap_check());
			fflush(stdout);
			_exit(dirty ? 3 : 0);
		}
		if (waitpid(pid, &status, 0) != pid || status)
			bad_status++;
	}
	printf("child_status=%d\n", bad_status);
	printf("parent_dirty=%d\n", dirty);
	print_uring("");
	printf("heap_check=%d\n", upa_heap_check());
	return 0;
}

/*
 * A daemon closes every descriptor (ours, the ring's) while trims wait in
 * the ring, and opens files that get those numbers: the allocator must go
 * on with ioctls on its own reopened descriptor, never touch those files,
 * and calloc over the trimmed range must still read zero.
 */
static int scenario_closeall(void)
{
	size_t big = 1UL << 20;
	char buf[64], path[] = "/tmp/upa-uring-closeall-XXXXXX";
	int dirty = 0, k, fd, files[16], n = 0;
	struct stat st;
	char *p, *q;

	thresholds();
	p = malloc(big);
	if (!p)
		return 1;
	memset(p, 0xab, big);
	free(p);			/* a decommit queued on the ring */
	{
		struct upa_uring_stats us;

		upa_uring_get_stats(&us);
		printf("ring_was_active=%u\n", us.ring_active);
	}
	fd = mkstemp(path);
	if (fd < 0)
		return 1;
	unlink(path);
	close(fd);
	fflush(stdout);
	/* Everything but stdin/stdout/stderr, the ring's and ours included. */
	for (fd = 3; fd < 1024; fd++)
		close(fd);
	/* Files under the numbers ours had (the lowest free ones, 400+). */
	for (fd = 3; fd < 420 && n < 16; fd++) {
		int f = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (f < 0)
			break;
		if (f >= 400)
			files[n++] = f;
	}
	for (k = 0; k < 4; k++) {
		q = calloc(1, big);
		if (!q)
			return 1;
		dirty += not_zero(q, big);
		memset(q, 0xcd, big);
		free(q);
	}
	/* 12 MiB trimmed: over the 8 MiB bound, so the ring is entered. */
	for (k = 0; k < 2; k++) {
		q = calloc(1, 12UL << 20);
		if (!q)
			return 1;
		dirty += not_zero(q, 12UL << 20);
		memset(q, 0xef, 12UL << 20);
		free(q);
	}
	/* The /dev/null files were not used by the allocator. */
	for (k = 0; k < n; k++)
		if (fstat(files[k], &st) || !S_ISCHR(st.st_mode) ||
		    read(files[k], buf, sizeof(buf)) != 0)
			dirty++;
	printf("closeall_dirty=%d\n", dirty);
	print_uring("");
	printf("heap_check=%d\n", upa_heap_check());
	return 0;
}

/*
 * Under a per-process commit limit (set by the test): a heap block freed
 * and trimmed through the ring keeps its commit (the break stays), and a
 * large block that only fits once that commit is given back must still
 * be allocated, as it is without the ring.
 */
static int scenario_limit(void)
{
	size_t heap_block = 30UL << 20, big = 70UL << 20;
	struct upalloc_proc_stats ps;
	char *p, *q;

	thresholds();
	mallopt(M_MMAP_THRESHOLD, 32 << 20);	/* the largest: 30 MiB on the heap */
	p = malloc(heap_block);
	if (!p)
		return 1;
	memset(p, 0xab, heap_block);
	free(p);			/* trimmed; the commit stays with the ring */
	dev_proc_stats(&ps);
	printf("committed_before=%llu\n",
	       (unsigned long long)ps.pages_committed);
	/* Larger than a heap: only an mmapped chunk can hold it. */
	q = malloc(big);
	printf("big_ok=%d\n", q != NULL);
	if (q) {
		memset(q, 1, big);
		free(q);
	}
	print_uring("");
	printf("heap_check=%d\n", upa_heap_check());
	return 0;
}

/* ---- the tests ---------------------------------------------------------- */

/* Run this binary's scenario with UPALLOC_URING=ring; output in r. */
static int run_scenario(struct probe_result *r, const char *name, int ring)
{
	const char *const env[] = {
		ring ? "UPALLOC_URING=1" : "UPALLOC_URING=0",
		"UPALLOC_BACKEND=device", NULL
	};
	const char *const argv[] = { "--scenario", name, NULL };
	char self[PATH_MAX];
	ssize_t len;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return -1;
	self[len] = '\0';
	return run_program(r, self, env, argv, 120);
}

#define SCENARIO(r, name, ring)						\
	do {								\
		ASSERT_EQ(0, run_scenario(&(r), name, ring));		\
		ASSERT_TRUE(WIFEXITED((r).status) &&			\
			    WEXITSTATUS((r).status) == 0)		\
			TH_LOG("%s (ring %d): status 0x%x, out: %s err: %s", \
			       name, ring, (r).status, (r).out, (r).err);	\
	} while (0)

/* The ring is there in the ring run (else the comparison means nothing). */
#define NEED_RING(r)							\
	do {								\
		if (probe_value(&(r), "ring_active") != 1)		\
			SKIP(return, "no io_uring path (liburing, "	\
			     "io_uring_disabled or an old module)");	\
	} while (0)

UPA_FIXTURE(uring)

TEST_F(uring, trimming_frees_take_few_system_calls_through_the_ring)
{
	struct probe_result ring, ioc;
	long long trims, calls, ioc_calls;

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	SCENARIO(ring, "trims", 1);
	NEED_RING(ring);
	SCENARIO(ioc, "trims", 0);
	EXPECT_EQ(0, probe_value(&ring, "heap_check"));
	EXPECT_EQ(0, probe_value(&ioc, "heap_check"));
	EXPECT_EQ(0, probe_value(&ioc, "ring_active"));
	/* The same trims in both modes: the policy did not change. */
	trims = probe_value(&ring, "trims");
	EXPECT_LE(ROUNDS * BLOCKS, trims);
	EXPECT_EQ(trims, probe_value(&ioc, "trims"));
	/* The kernel's count when perf can tell, else the ring's own. */
	calls = probe_value(&ring, "syscalls");
	ioc_calls = probe_value(&ioc, "syscalls");
	if (calls < 0)
		calls = probe_value(&ring, "ring_syscalls");
	TH_LOG("%lld trims: %lld system calls with the ring, %lld without",
	       trims, calls, ioc_calls);
	EXPECT_GT(trims / 10, calls);
	if (ioc_calls >= 0)
		EXPECT_LE(trims, ioc_calls);
	/* The ring really gave pages back (not only cancelled decommits). */
	EXPECT_LE(BLOCKS * (BLOCK / 4096) / 2,
		  probe_value(&ring, "pages_freed"));
}

TEST_F(uring, calloc_over_pending_decommit_is_zero)
{
	struct probe_result ring, ioc;

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	SCENARIO(ring, "calloc", 1);
	NEED_RING(ring);
	SCENARIO(ioc, "calloc", 0);
	EXPECT_EQ(0, probe_value(&ring, "calloc_dirty"));
	EXPECT_EQ(0, probe_value(&ioc, "calloc_dirty"));
	EXPECT_EQ(0, probe_value(&ring, "heap_check"));
	EXPECT_EQ(0, probe_value(&ioc, "heap_check"));
	/* The ring run did hand out pages of a cancelled decommit. */
	EXPECT_LE(1, probe_value(&ring, "cancelled"));
}

TEST_F(uring, fork_with_decommits_in_flight)
{
	struct probe_result ring, ioc;

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	SCENARIO(ring, "fork", 1);
	NEED_RING(ring);
	SCENARIO(ioc, "fork", 0);
	EXPECT_EQ(0, probe_value(&ring, "child_status"));
	EXPECT_EQ(0, probe_value(&ioc, "child_status"));
	EXPECT_EQ(0, probe_value(&ring, "child_queued_dirty"));
	EXPECT_EQ(0, probe_value(&ring, "child_in_flight_dirty"));
	EXPECT_EQ(0, probe_value(&ring, "parent_dirty"));
	EXPECT_EQ(0, probe_value(&ioc, "child_queued_dirty"));
	EXPECT_EQ(0, probe_value(&ioc, "child_in_flight_dirty"));
	EXPECT_EQ(0, probe_value(&ioc, "parent_dirty"));
	EXPECT_EQ(0, probe_value(&ring, "child_queued_heap_check"));
	EXPECT_EQ(0, probe_value(&ring, "child_in_flight_heap_check"));
	EXPECT_EQ(0, probe_value(&ring, "heap_check"));
	/*
	 * The child redid the decommit queued at the fork on its pages. (The
	 * in-flight one may have completed before the fork: nothing to redo.)
	 */
	EXPECT_LE(1, probe_value(&ring, "child_queued_fork_redone"));
	TH_LOG("in-flight decommit redone by the child: %lld",
	       probe_value(&ring, "child_in_flight_fork_redone"));
}

TEST_F(uring, closing_every_descriptor_with_decommits_queued)
{
	struct probe_result ring, ioc;

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	SCENARIO(ring, "closeall", 1);
	if (probe_value(&ring, "ring_was_active") != 1)
		SKIP(return, "no io_uring path");
	SCENARIO(ioc, "closeall", 0);
	EXPECT_EQ(0, probe_value(&ring, "closeall_dirty"));
	EXPECT_EQ(0, probe_value(&ioc, "closeall_dirty"));
	/* The ring's descriptor now names /dev/null: the ring was given up. */
	EXPECT_EQ(0, probe_value(&ring, "ring_active"));
	EXPECT_EQ(0, probe_value(&ring, "heap_check"));
	EXPECT_EQ(0, probe_value(&ioc, "heap_check"));
}

#define LIMIT_PARAM "/sys/module/upalloc/parameters/max_pages_per_process"

static int limit_set(const char *value, char *old, size_t oldsz)
{
	int fd = open(LIMIT_PARAM, O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	if (old) {
		n = read(fd, old, oldsz - 1);
		old[n > 0 ? n : 0] = '\0';
		lseek(fd, 0, SEEK_SET);
	}
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

TEST_F(uring, kept_commit_is_given_back_under_a_limit)
{
	struct probe_result ring, ioc;
	char old[32];

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	/* 90 MiB: the 70 MiB block fits only without the 30 MiB kept. */
	if (limit_set("23040", old, sizeof(old)))
		SKIP(return, "cannot set " LIMIT_PARAM);
	run_scenario(&ring, "limit", 1);
	run_scenario(&ioc, "limit", 0);
	limit_set(old, NULL, 0);
	ASSERT_TRUE(WIFEXITED(ring.status) && WEXITSTATUS(ring.status) == 0);
	ASSERT_TRUE(WIFEXITED(ioc.status) && WEXITSTATUS(ioc.status) == 0);
	NEED_RING(ring);
	/* The ring run did keep the commit; the ioctl run gave it back. */
	EXPECT_LE(7000, probe_value(&ring, "committed_before"));
	EXPECT_GT(2000, probe_value(&ioc, "committed_before"));
	EXPECT_EQ(1, probe_value(&ioc, "big_ok"));
	EXPECT_EQ(1, probe_value(&ring, "big_ok"));
	EXPECT_EQ(0, probe_value(&ring, "heap_check"));
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--scenario")) {
		int ret = 2;

		if (!strcmp(argv[2], "trims"))
			ret = scenario_trims();
		else if (!strcmp(argv[2], "calloc"))
			ret = scenario_calloc();
		else if (!strcmp(argv[2], "fork"))
			ret = scenario_fork();
		else if (!strcmp(argv[2], "closeall"))
			ret = scenario_closeall();
		else if (!strcmp(argv[2], "limit"))
			ret = scenario_limit();
		fflush(stdout);
		return ret;
	}
	return test_harness_run(argc, argv);
}
