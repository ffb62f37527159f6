// SPDX-License-Identifier: GPL-2.0
/*
 * Description: walks over a whole region table (issue 11, item 12): fork's
 * clone, the release of a region and REGION_INFO visit every page of a
 * huge region in batches, rescheduling between them, and a fork cloning a
 * huge region stops early when the forking process is killed. Counts stay
 * exact across batches, and nothing leaks when a clone is abandoned.
 */
#include <time.h>

#include "upalloc_test.h"

/* 96 Ki pages: 384 MiB with 4 KiB pages, 96 walk batches. */
#define HUGE_PAGES	(96 * 1024)

/*
 * A fork child commits what its parent does (issue 11, item 5): the
 * default limits of a small guest leave no room for a few copies of the
 * huge region, and the limits are not what these tests are about, so
 * they are lifted for each test and restored after it.
 */
static const char *const lifted_limits[] = {
	"max_pages", "max_pages_per_process", "max_pages_per_user",
};
#define NR_LIMITS	ARRAY_SIZE(lifted_limits)

FIXTURE(long_walks) {
	int fd;
	char *p;
	size_t len;
	uint64_t saved[NR_LIMITS];
	bool lifted;
};

FIXTURE_SETUP(long_walks)
{
	uint64_t nr = 0;
	size_t i;

	self->lifted = false;
	OPEN_DEVICE_OR_SKIP(&self->fd);
	for (i = 0; i < NR_LIMITS; i++)
		ASSERT_EQ(0, upa_param_read(lifted_limits[i], &self->saved[i]));
	self->lifted = true;
	for (i = 0; i < NR_LIMITS; i++)
		ASSERT_EQ(0, upa_param_write(lifted_limits[i], 0));
	self->len = PAGES(HUGE_PAGES);
	self->p = upa_map(self->fd, self->len, 0);
	ASSERT_NE(NULL, self->p) TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, upa_populate(self->fd, self->p, self->len, &nr));
	ASSERT_EQ(HUGE_PAGES, nr);
}

FIXTURE_TEARDOWN(long_walks)
{
	size_t i;

	if (self->p)
		munmap(self->p, self->len);
	if (self->fd >= 0)
		close(self->fd);
	for (i = 0; self->lifted && i < NR_LIMITS; i++)
		EXPECT_EQ(0, upa_param_write(lifted_limits[i], self->saved[i]));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Clone, REGION_INFO and release over many batches keep exact counts. */
TEST_F(long_walks, huge_region_fork_info_and_release_stay_exact)
{
	struct upalloc_region_info info;
	struct upa_stats before, after;
	struct upa_channel ch;
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, channel_open(&ch));
	READ_STATS(&before);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(!upa_region_info(self->fd, self->p, &info));
		CHILD_CHECK(info.pages_present == HUGE_PAGES);
		CHILD_CHECK(info.pages_shared == HUGE_PAGES);
		TELL_PARENT(&ch, 'i');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'x');
		_exit(0);
	}
	ASSERT_EQ('i', WAIT_CHILD(&ch));
	ASSERT_EQ(0, upa_region_info(self->fd, self->p, &info));
	EXPECT_EQ(HUGE_PAGES, info.pages_present);
	EXPECT_EQ(HUGE_PAGES, info.pages_shared);
	TELL_CHILD(&ch, 'x');
	ASSERT_EQ(0, wait_child_ok(pid));
	/* The child's release dropped every share: nothing is shared now. */
	ASSERT_EQ(0, upa_region_info(self->fd, self->p, &info));
	EXPECT_EQ(0, info.pages_shared);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(1, STAT_DELTA(after, before, forks));
	channel_close(&ch);
}

/*
 * Kill a process that forks again and again, a quarter of a fork into
 * one of its forks. Returns how long it took to die, or -1.
 */
static double kill_during_fork(double t_fork)
{
	struct upa_channel ch;
	double t0, t_dead;
	int status;
	pid_t pid;

	if (channel_open(&ch))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		pid_t gc;

		for (;;) {
			TELL_PARENT(&ch, 'f');
			gc = fork();
			if (!gc)
				_exit(0);
			if (gc > 0)
				wait_child(gc);
		}
	}
	/* Let the first fork finish, kill in the middle of the second. */
	WAIT_CHILD(&ch);
	WAIT_CHILD(&ch);
	usleep((useconds_t)(t_fork * 1e6 / 4));
	t0 = now_s();
	kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
		return -1;
	t_dead = now_s() - t0;
	channel_close(&ch);
	return t_dead;
}

#define KILL_ROUNDS	3

/*
 * A process forking a huge region is killed while the fork clones it: the
 * clone stops at a batch boundary and the process dies in much less than
 * a fork takes. Without that, the clone runs to its end, and the killed
 * fork then releases the whole clone before the process can die: about a
 * fork's time. The process's own copy of the region is released in both
 * cases (about half a fork's time), hence the margin. The best of
 * KILL_ROUNDS rounds counts, against scheduling noise.
 */
TEST_F(long_walks, fork_cloning_huge_region_is_killable)
{
	double t_fork = 1e9, t, t0, best = 1e9;
	struct upa_stats before, after;
	int i;
	pid_t pid;

	NEED_DEVICE();
	/* Fork's duration with this region, child exit included. */
	for (i = 0; i < 3; i++) {
		t0 = now_s();
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			_exit(0);
		ASSERT_EQ(0, wait_child_ok(pid));
		t = now_s() - t0;
		if (t < t_fork)
			t_fork = t;
	}
	TH_LOG("fork + exit of a %d-page region: %.3f s", HUGE_PAGES, t_fork);

	READ_STATS(&before);
	for (i = 0; i < KILL_ROUNDS; i++) {
		t = kill_during_fork(t_fork);
		ASSERT_LE(0, t);
		TH_LOG("killed %.3f s into a fork: dead after %.3f s",
		       t_fork / 4, t);
		if (t < best)
			best = t;
	}
	EXPECT_GT(t_fork * 0.7, best);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
}

UPALLOC_TEST_MAIN
