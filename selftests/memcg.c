// SPDX-License-Identifier: GPL-2.0
/*
 * Description: memory cgroup charges (issue 11, item 8). The memory the
 * module allocates for a region is charged to the memcg of the region's
 * process: its pages also when another process faults them in
 * (process_vm_writev, ptrace, /proc/PID/mem), and a fork child's copy of
 * the page table (the forking process's memcg, which the child joins).
 *
 * Needs cgroup v2 with the memory controller at /sys/fs/cgroup; the test
 * makes its own child cgroups there and removes them.
 */
#include <fcntl.h>
#include <sys/uio.h>

#include "upalloc_test.h"

#define CG_ROOT		"/sys/fs/cgroup"

FIXTURE(memcg) {
	int fd;
	char owner[128];	/* cgroup of the region's process */
	char other[128];	/* cgroup of the accessing process */
	bool made;
	uint64_t saved[3];
	bool lifted;
};

static const char *const memcg_limits[] = {
	"max_pages", "max_pages_per_process", "max_pages_per_user",
};

static int cg_write(const char *dir, const char *file, const char *text)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -errno;
}

static long long cg_current(const char *dir)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* Move the calling process into cgroup dir. */
static int cg_enter(const char *dir)
{
	return cg_write(dir, "cgroup.procs", "0");
}

FIXTURE_SETUP(memcg)
{
	size_t i;

	self->made = false;
	self->lifted = false;
	OPEN_DEVICE_OR_SKIP(&self->fd);
	if (access(CG_ROOT "/cgroup.subtree_control", W_OK)) {
		/* UPALLOC_STRICT (CI): a missing prerequisite fails. */
		ASSERT_EQ(NULL, getenv("UPALLOC_STRICT"))
			TH_LOG("no cgroup v2 at " CG_ROOT);
		SKIP(return, "no cgroup v2 at " CG_ROOT);
	}
	/* The root cgroup may enable controllers while it has processes. */
	ASSERT_EQ(0, cg_write(CG_ROOT, "cgroup.subtree_control", "+memory"));
	snprintf(self->owner, sizeof(self->owner), CG_ROOT "/upa-owner-%d",
		 getpid());
	snprintf(self->other, sizeof(self->other), CG_ROOT "/upa-other-%d",
		 getpid());
	ASSERT_EQ(0, mkdir(self->owner, 0755));
	ASSERT_EQ(0, mkdir(self->other, 0755));
	self->made = true;
	ASSERT_LE(0, cg_current(self->owner));
	/* A big region and a fork of it: the limits are not under test. */
	for (i = 0; i < ARRAY_SIZE(memcg_limits); i++)
		ASSERT_EQ(0, upa_param_read(memcg_limits[i], &self->saved[i]));
	self->lifted = true;
	for (i = 0; i < ARRAY_SIZE(memcg_limits); i++)
		ASSERT_EQ(0, upa_param_write(memcg_limits[i], 0));
}

FIXTURE_TEARDOWN(memcg)
{
	size_t i;

	for (i = 0; self->lifted && i < ARRAY_SIZE(memcg_limits); i++)
		EXPECT_EQ(0, upa_param_write(memcg_limits[i], self->saved[i]));
	if (self->made) {
		/* The children that lived there are gone (waited for). */
		EXPECT_EQ(0, rmdir(self->owner));
		EXPECT_EQ(0, rmdir(self->other));
	}
	if (self->fd >= 0)
		close(self->fd);
}

#define REMOTE_PAGES	4096	/* 16 MiB with 4 KiB pages */

/*
 * One process maps a region in cgroup owner; another, in cgroup other,
 * writes all of it with process_vm_writev(), which faults the pages in
 * from the writer's context. The pages are the region's: owner's
 * memory.current grows by them, other's does not.
 */
TEST_F(memcg, remote_write_charges_region_owner_memcg)
{
	struct upa_channel ch;
	long long o0, o1, a0, a1;
	size_t len = PAGES(REMOTE_PAGES);
	char *p, *buf;
	pid_t owner, writer;
	int addr_pipe[2], hold[2];
	char c;

	NEED_DEVICE();
	ASSERT_EQ(0, channel_open(&ch));
	ASSERT_EQ(0, pipe(addr_pipe));
	ASSERT_EQ(0, pipe(hold));
	owner = fork();
	ASSERT_LE(0, owner);
	if (!owner) {
		CHILD_CHECK(cg_enter(self->owner) == 0);
		p = upa_map(self->fd, len, 0);
		CHILD_CHECK(p != NULL);
		CHILD_CHECK(write(addr_pipe[1], &p, sizeof(p)) == sizeof(p));
		/* Hold the region until the parent has measured (EOF). */
		close(hold[1]);
		CHILD_CHECK(read(hold[0], &c, 1) == 0);
		CHILD_CHECK(check_pages(p, 0, 1, 7) == -1);
		_exit(0);
	}
	ASSERT_EQ(sizeof(p), read(addr_pipe[0], &p, sizeof(p)));
	writer = fork();
	ASSERT_LE(0, writer);
	if (!writer) {
		struct iovec local, remote;

		close(hold[1]);
		CHILD_CHECK(cg_enter(self->other) == 0);
		buf = malloc(len);
		CHILD_CHECK(buf != NULL);
		fill_pages(buf, 0, REMOTE_PAGES, 7);
		local.iov_base = buf;
		local.iov_len = len;
		remote.iov_base = p;
		remote.iov_len = len;
		/* The writer's own buffer is charged before the baseline. */
		TELL_PARENT(&ch, 'r');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'w');
		CHILD_CHECK(process_vm_writev(owner, &local, 1, &remote, 1, 0) ==
			    (ssize_t)len);
		TELL_PARENT(&ch, 'd');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'x');
		_exit(0);
	}
	/* Not a delay: on a loaded host the fill can take seconds. */
	ASSERT_EQ('r', WAIT_CHILD(&ch));
	a0 = cg_current(self->other);
	o0 = cg_current(self->owner);
	TELL_CHILD(&ch, 'w');
	ASSERT_EQ('d', WAIT_CHILD(&ch));
	o1 = cg_current(self->owner);
	a1 = cg_current(self->other);
	TH_LOG("%d pages written remotely: owner's memcg +%lld KiB, writer's +%lld KiB",
	       REMOTE_PAGES, (o1 - o0) / 1024, (a1 - a0) / 1024);
	EXPECT_LE((long long)len * 3 / 4, o1 - o0);
	EXPECT_GT((long long)len / 4, a1 - a0);
	TELL_CHILD(&ch, 'x');
	close(hold[1]);
	EXPECT_EQ(0, wait_child_ok(writer));
	EXPECT_EQ(0, wait_child_ok(owner));
	close(addr_pipe[0]);
	close(addr_pipe[1]);
	close(hold[0]);
	channel_close(&ch);
}

/* 128 Ki pages: about 1.1 MiB of table nodes (64 entries each). */
#define CLONE_PAGES	(128 * 1024)
#define SMALL_PAGES	64

/*
 * How much memory.current of cgroup dir grows over a fork of a process
 * holding a populated region of nr pages, the child alive. < 0 on error.
 */
static long long fork_growth(int fd, const char *dir, size_t nr)
{
	struct upa_channel ch;
	long long before, after;
	uint64_t got;
	pid_t pid;
	char *p;

	p = upa_map(fd, PAGES(nr), 0);
	if (!p || upa_populate(fd, p, PAGES(nr), &got) || got != nr)
		return -1;
	if (channel_open(&ch))
		return -1;
	usleep(100000);
	before = cg_current(dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		TELL_PARENT(&ch, 'f');
		WAIT_PARENT(&ch);
		_exit(0);
	}
	WAIT_CHILD(&ch);
	after = cg_current(dir);
	TELL_CHILD(&ch, 'x');
	if (wait_child_ok(pid))
		return -1;
	channel_close(&ch);
	munmap(p, PAGES(nr));
	return after - before;
}

/*
 * A fork child's copy of a big region's table is charged to the memcg of
 * the forking process (which the child joins): the fork of a region of
 * CLONE_PAGES pages grows memory.current by about its table more than
 * the fork of a small one does.
 */
/* Forks of a big region: minutes under KASAN on a loaded host. */
TEST_F_TIMEOUT(memcg, fork_clone_table_is_charged_to_forking_memcg, 300)
{
	long long small, big;
	pid_t pid;
	int status;

	NEED_DEVICE();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(cg_enter(self->owner) == 0);
		small = fork_growth(self->fd, self->owner, SMALL_PAGES);
		big = fork_growth(self->fd, self->owner, CLONE_PAGES);
		fprintf(stderr, "# fork growth: %d-page region +%lld KiB, %d-page region +%lld KiB\n",
			SMALL_PAGES, small / 1024, CLONE_PAGES, big / 1024);
		CHILD_CHECK(small >= -(1LL << 30) && big >= -(1LL << 30));
		/* 8 bytes per entry at least; about 9 with node overhead. */
		CHILD_CHECK(big - small >= CLONE_PAGES * 8LL * 3 / 4);
		_exit(0);
	}
	status = wait_child_ok(pid);
	EXPECT_EQ(0, status);
}

#define PIPED_PAGES	256	/* 1 MiB with 4 KiB pages: pipe-max-size */

/* vmsplice() all of [p, p + len) into pipe fd; 0 or -1. */
static int splice_all(int fd, char *p, size_t len)
{
	struct iovec iov = { .iov_base = p, .iov_len = len };
	ssize_t n;

	while (iov.iov_len) {
		n = vmsplice(fd, &iov, 1, 0);
		if (n <= 0)
			return -1;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= n;
	}
	return 0;
}

static long long live_pages(void)
{
	struct upa_stats s;

	/* The read also lets the module reap the pages let go of. */
	return upa_read_stats(&s) ? -1 : (long long)s.pages_live;
}

/*
 * A process in cgroup owner fills PIPED_PAGES pages, vmsplices them into a
 * pipe and decommits them: the pipe holds the pages, which stay allocated,
 * so they stay charged to owner and counted in pages_live. Once the pipe
 * is read (it lets go of them), the charge and the count go.
 */
TEST_F(memcg, decommitted_vmspliced_pages_stay_charged_until_pipe_drains)
{
	size_t len = PAGES(PIPED_PAGES), got;
	long long c0, c1, c2, c3, l1, l2, l3;
	int pipefd[2];
	uint64_t nr;
	char *p, *buf;
	pid_t pid;
	ssize_t n;

	NEED_DEVICE();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(cg_enter(self->owner) == 0);
		buf = malloc(len);
		CHILD_CHECK(buf != NULL);
		/* Charged now (not 0: malloc + memset(0) may become calloc). */
		memset(buf, 1, len);
		CHILD_CHECK(pipe(pipefd) == 0);
		CHILD_CHECK(fcntl(pipefd[1], F_SETPIPE_SZ, (int)len) >= (int)len);
		usleep(100000);
		c0 = cg_current(self->owner);
		p = upa_map(self->fd, len, 0);
		CHILD_CHECK(p != NULL);
		fill_pages(p, 0, PIPED_PAGES, 9);
		CHILD_CHECK(splice_all(pipefd[1], p, len) == 0);
		c1 = cg_current(self->owner);
		l1 = live_pages();
		CHILD_CHECK(upa_decommit(self->fd, p, len, &nr) == 0);
		CHILD_CHECK(nr == PIPED_PAGES);
		c2 = cg_current(self->owner);
		l2 = live_pages();
		for (got = 0; got < len; got += n) {
			n = read(pipefd[0], buf + got, len - got);
			CHILD_CHECK(n > 0);
		}
		CHILD_CHECK(check_pages(buf, 0, PIPED_PAGES, 9) == -1);
		l3 = live_pages();
		c3 = cg_current(self->owner);
		fprintf(stderr, "# memory.current: filled +%lld KiB, decommitted +%lld KiB, pipe read +%lld KiB; pages_live %lld, %lld, %lld\n",
			(c1 - c0) / 1024, (c2 - c0) / 1024, (c3 - c0) / 1024,
			l1, l2, l3);
		CHILD_CHECK(c0 >= 0 && c1 >= 0 && c2 >= 0 && c3 >= 0);
		CHILD_CHECK(c1 - c0 >= (long long)len * 3 / 4);
		/* Decommitted, but the pipe holds them: still charged. */
		CHILD_CHECK(c2 - c0 >= (long long)len * 3 / 4);
		CHILD_CHECK(l1 >= 0 && l2 == l1);
		/* Let go of: uncharged and uncounted. */
		CHILD_CHECK(c2 - c3 >= (long long)len * 3 / 4);
		CHILD_CHECK(l1 - l3 == PIPED_PAGES);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));
}

UPALLOC_TEST_MAIN
