// SPDX-License-Identifier: GPL-2.0
/*
 * Description: limits and accounting (issue 2, item 7). The module
 * parameters max_pages (global) and max_pages_per_process (0 = unlimited) are
 * readable and writable under /sys/module/upalloc/parameters. Memory is
 * committed when a region is created or its break raised: over a limit the
 * mmap or SET_BRK fails with ENOMEM and nothing changes, and a later touch of
 * committed memory never fails, even after the limit is lowered. Every test
 * restores the parameters it changed.
 */
#include <grp.h>
#include <sys/mount.h>

#include "upalloc_test.h"

FIXTURE(limits) {
	int fd;
	uint64_t saved_max_pages;
	uint64_t saved_per_process;
	uint64_t saved_region_pages;
	uint64_t saved_per_user;
	uint64_t saved_offset_space;
	bool has_per_user;	/* max_pages_per_user exists (issue 11) */
	bool has_offset_space;	/* offset_space_pages exists (issue 11) */
	bool saved;
};

FIXTURE_SETUP(limits)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	if (geteuid())
		SKIP(return, "needs root to change module parameters");
	ASSERT_EQ(0, upa_param_read("max_pages", &self->saved_max_pages));
	ASSERT_EQ(0, upa_param_read("max_pages_per_process", &self->saved_per_process));
	ASSERT_EQ(0, upa_param_read("max_region_pages", &self->saved_region_pages));
	self->has_per_user = !upa_param_read("max_pages_per_user",
					     &self->saved_per_user);
	self->has_offset_space = !upa_param_read("offset_space_pages",
						 &self->saved_offset_space);
	self->saved = true;
}

FIXTURE_TEARDOWN(limits)
{
	if (self->saved) {
		EXPECT_EQ(0, upa_param_write("max_pages", self->saved_max_pages));
		EXPECT_EQ(0, upa_param_write("max_pages_per_process",
					     self->saved_per_process));
		EXPECT_EQ(0, upa_param_write("max_region_pages",
					     self->saved_region_pages));
		if (self->has_per_user)
			EXPECT_EQ(0, upa_param_write("max_pages_per_user",
						     self->saved_per_user));
		if (self->has_offset_space)
			EXPECT_EQ(0, upa_param_write("offset_space_pages",
						     self->saved_offset_space));
	}
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Issue 11, item 4: every mmap takes a range of the device's page-offset
 * space (2^51 pages), and it must come back when the mmap fails or the
 * region is unmapped. The module parameter offset_space_pages shrinks the
 * space to 2^44 pages, and with max_region_pages raised to 2^34 pages
 * (64 TiB) it holds 2^10 regions at once: twice as many mmaps as that,
 * half failing on the commit limit after their range was taken, half
 * succeeding (a MAP_NORESERVE heap commits nothing) and unmapped, and an
 * ordinary mmap must still work. A module that never reuses offsets fails
 * it with ENOMEM after 2^10 mmaps (seen with the old counter limited by
 * the same parameter). All of this file takes 45 s in the debug kernel of
 * make check-debug (KASAN); the whole 2^51, 132,096 mmaps, took 20 s under
 * TCG on a stock kernel and over 15 minutes under KASAN.
 */
#define PGOFF_SPACE_SHIFT	44
#define HUGE_REGION_SHIFT	34

TEST_F_TIMEOUT(limits, offsets_of_failed_and_unmapped_mmaps_are_reused, 150)
{
	size_t huge = (size_t)1 << (HUGE_REGION_SHIFT + 12);
	long rounds = 2L << (PGOFF_SPACE_SHIFT - HUGE_REGION_SHIFT);
	long i, failed = 0, mapped = 0;
	char *p;

	NEED_DEVICE();
	ASSERT_EQ(4096, page_size());
	ASSERT_TRUE(self->has_offset_space);
	ASSERT_EQ(0, upa_param_write("offset_space_pages",
				     (uint64_t)1 << PGOFF_SPACE_SHIFT));
	ASSERT_EQ(0, upa_param_write("max_region_pages",
				     (uint64_t)1 << HUGE_REGION_SHIFT));
	/* Far below 64 TiB: a reserved huge mapping cannot commit. */
	ASSERT_EQ(0, upa_param_write("max_pages", 1 << 20));

	for (i = 0; i < rounds; i++) {
		if (i & 1) {
			p = upa_map_heap(self->fd, huge);
			if (!p) {
				TH_LOG("heap mmap %ld: %s", i, strerror(errno));
				break;
			}
			ASSERT_EQ(0, munmap(p, huge));
			mapped++;
		} else {
			p = upa_map(self->fd, huge, 0);
			if (p) {
				munmap(p, huge);
				TH_LOG("mmap %ld committed 64 TiB", i);
				break;
			}
			if (errno != ENOMEM) {
				TH_LOG("mmap %ld: %s", i, strerror(errno));
				break;
			}
			failed++;
		}
	}
	TH_LOG("%ld failed and %ld unmapped 64 TiB mmaps", failed, mapped);
	EXPECT_EQ(rounds, i);

	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p) TH_LOG("ordinary mmap: %s", strerror(errno));
	p[0] = 1;
	EXPECT_EQ(0, munmap(p, PAGES(4)));
}

/*
 * offset_space_pages really bounds the regions alive at once (else the
 * test above would prove nothing): 2^20 pages leave each size class a
 * 64th, 16 slots for regions of 2^10 pages. The 17th mmap fails with
 * ENOMEM, and once one region is unmapped its slot serves a new mmap.
 */
#define SMALL_SPACE_SHIFT	20
#define SLOT_SHIFT		10
#define NR_SLOTS		(1 << (SMALL_SPACE_SHIFT - 6 - SLOT_SHIFT))

TEST_F(limits, offset_space_pages_bounds_the_regions_alive_at_once)
{
	size_t len = PAGES(1 << SLOT_SHIFT);
	char *p[NR_SLOTS], *q;
	int i;

	NEED_DEVICE();
	ASSERT_TRUE(self->has_offset_space);
	ASSERT_EQ(0, upa_param_write("offset_space_pages",
				     1 << SMALL_SPACE_SHIFT));
	for (i = 0; i < NR_SLOTS; i++) {
		p[i] = upa_map_heap(self->fd, len);
		ASSERT_NE(NULL, p[i]) TH_LOG("mmap %d: %s", i, strerror(errno));
	}
	q = upa_map_heap(self->fd, len);
	EXPECT_EQ(NULL, q);
	EXPECT_EQ(ENOMEM, errno);
	if (q)
		munmap(q, len);
	ASSERT_EQ(0, munmap(p[0], len));
	p[0] = upa_map_heap(self->fd, len);
	EXPECT_NE(NULL, p[0]) TH_LOG("mmap after munmap: %s", strerror(errno));
	for (i = 0; i < NR_SLOTS; i++)
		if (p[i])
			munmap(p[i], len);
}

/* ---- per-user limits and fork (issue 11, item 5) ------------------------ */

#define USER_A	1000
#define USER_B	1001

/* In a forked child: become uid (and gid) uid for good, as setpriv does. */
static int become(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid))
		return -1;
	return 0;
}

/*
 * A child of user uid that maps pages (reserved, so committed) and reports
 * 'y' or 'n' for success; it keeps the mapping until told 'x'.
 */
static pid_t map_as(int fd, uid_t uid, size_t pages, struct upa_channel *ch)
{
	pid_t pid = fork();
	char *p;

	if (pid)
		return pid;
	CHILD_CHECK(become(uid) == 0);
	p = upa_map(fd, PAGES(pages), 0);
	TELL_PARENT(ch, p ? 'y' : 'n');
	CHILD_CHECK(WAIT_PARENT(ch) == 'x');
	_exit(0);
}

/* Does a fresh process of uid manage to map pages? 'y' or 'n'. */
static char try_map_as(struct __test_metadata *_metadata, int fd, uid_t uid,
		       size_t pages)
{
	struct upa_channel ch;
	pid_t pid;
	char c;

	if (channel_open(&ch))
		return '?';
	pid = map_as(fd, uid, pages, &ch);
	if (pid < 0)
		return '?';
	c = WAIT_CHILD(&ch);
	TELL_CHILD(&ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	channel_close(&ch);
	return c;
}

/*
 * max_pages_per_user covers all of a user's processes together and no
 * other user's: user A's second process cannot take what the first one
 * left, user B can.
 */
TEST_F(limits, per_user_limit_spans_a_users_processes_only)
{
	struct upa_channel ch;
	pid_t holder;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages", 0));
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 0));
	ASSERT_EQ(0, upa_param_write("max_pages_per_user", 100));

	ASSERT_EQ(0, channel_open(&ch));
	holder = map_as(self->fd, USER_A, 60, &ch);
	ASSERT_LE(0, holder);
	ASSERT_EQ('y', WAIT_CHILD(&ch));
	EXPECT_EQ('n', try_map_as(_metadata, self->fd, USER_A, 60));
	EXPECT_EQ('y', try_map_as(_metadata, self->fd, USER_A, 40));
	EXPECT_EQ('y', try_map_as(_metadata, self->fd, USER_B, 100));
	EXPECT_EQ('n', try_map_as(_metadata, self->fd, USER_B, 101));
	TELL_CHILD(&ch, 'x');
	EXPECT_EQ(0, wait_child_ok(holder));
	channel_close(&ch);
	/* Given back at munmap/exit. */
	EXPECT_EQ('y', try_map_as(_metadata, self->fd, USER_A, 100));
}

/*
 * The defaults (as loaded) keep one user from starving the others: a
 * process gets at most max_pages / 2, a user at most 3/4 of max_pages, so
 * two processes of user A cannot both take their share, and user B still
 * gets memory after A took all it may.
 */
TEST_F(limits, default_limits_leave_memory_for_other_users)
{
	uint64_t per_proc = self->saved_per_process;
	uint64_t per_user = self->saved_per_user;
	struct upa_channel ch1, ch2;
	pid_t a1, a2;

	NEED_DEVICE();
	ASSERT_TRUE(self->has_per_user);
	ASSERT_NE(0, self->saved_max_pages) TH_LOG("max_pages unlimited");
	EXPECT_EQ(self->saved_max_pages / 2, per_proc);
	EXPECT_EQ(self->saved_max_pages / 4 * 3, per_user);
	ASSERT_LT(per_proc, per_user);

	EXPECT_EQ('n', try_map_as(_metadata, self->fd, USER_A, per_proc + 1));
	ASSERT_EQ(0, channel_open(&ch1));
	ASSERT_EQ(0, channel_open(&ch2));
	a1 = map_as(self->fd, USER_A, per_proc, &ch1);
	ASSERT_LE(0, a1);
	ASSERT_EQ('y', WAIT_CHILD(&ch1));
	EXPECT_EQ('n', try_map_as(_metadata, self->fd, USER_A, per_proc));
	a2 = map_as(self->fd, USER_A, per_user - per_proc, &ch2);
	ASSERT_LE(0, a2);
	ASSERT_EQ('y', WAIT_CHILD(&ch2));
	EXPECT_EQ('n', try_map_as(_metadata, self->fd, USER_A, 1));
	/* A is at its limit; B is not starved. */
	EXPECT_EQ('y', try_map_as(_metadata, self->fd, USER_B, 1024));
	TELL_CHILD(&ch1, 'x');
	TELL_CHILD(&ch2, 'x');
	EXPECT_EQ(0, wait_child_ok(a1));
	EXPECT_EQ(0, wait_child_ok(a2));
	channel_close(&ch1);
	channel_close(&ch2);
}

/*
 * Fork cannot fail in the module, so the limits hold across it this way:
 * a child's copy of a region is made only if its commitment fits under
 * max_pages and the user's max_pages_per_user (max_pages_per_process does
 * not apply: the parent's commitments were within it); otherwise the
 * child's mapping has no memory and any access raises SIGBUS. The parent
 * keeps its region, and the count does not grow.
 */
static void fork_over_limit(struct __test_metadata *_metadata, int fd,
			    uid_t uid)
{
	struct upa_stats s0, s1;
	char *small, *big;
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		char v;

		if (uid)
			CHILD_CHECK(become(uid) == 0);
		small = upa_map(fd, PAGES(30), 0);
		big = upa_map(fd, PAGES(40), 0);
		CHILD_CHECK(small && big);
		small[0] = 's';
		big[0] = 'b';
		/* 70 committed, 100 allowed: the copy of big does not fit. */
		CHILD_CHECK(upa_read_stats(&s0) == 0);
		pid = fork();
		CHILD_CHECK(pid >= 0);
		if (!pid) {
			/* small (30) fits, big (30 + 40 > 100 - 70) does not. */
			CHILD_CHECK(upa_probe_read(small, &v, NULL) == 0);
			CHILD_CHECK(v == 's');
			CHILD_CHECK(upa_probe_read(big, &v, NULL) == SIGBUS);
			CHILD_CHECK(upa_probe_write(big, 'c', NULL) == SIGBUS);
			_exit(0);
		}
		CHILD_CHECK(wait_child_ok(pid) == 0);
		CHILD_CHECK(upa_read_stats(&s1) == 0);
		/* The parent is untouched. */
		CHILD_CHECK(big[0] == 'b');
		big[1] = 'B';
		CHILD_CHECK(s1.pages_committed == s0.pages_committed);
		_exit(0);
	}
	status = wait_child_ok(pid);
	EXPECT_EQ(0, status);
}

TEST_F(limits, fork_past_the_global_limit_leaves_the_child_without_memory)
{
	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 0));
	if (self->has_per_user)
		ASSERT_EQ(0, upa_param_write("max_pages_per_user", 0));
	ASSERT_EQ(0, upa_param_write("max_pages", 100));
	fork_over_limit(_metadata, self->fd, 0);
}

TEST_F(limits, fork_past_the_user_limit_leaves_the_child_without_memory)
{
	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 0));
	ASSERT_EQ(0, upa_param_write("max_pages", 0));
	ASSERT_EQ(0, upa_param_write("max_pages_per_user", 100));
	fork_over_limit(_metadata, self->fd, USER_A);
}

TEST_F(limits, module_params_are_readable_and_writable)
{
	struct stat st;
	uint64_t v = 0;

	NEED_DEVICE();
	ASSERT_EQ(0, stat(UPA_PARAM_DIR "/max_pages", &st));
	EXPECT_EQ(0644, st.st_mode & 0777);
	ASSERT_EQ(0, stat(UPA_PARAM_DIR "/max_pages_per_process", &st));
	EXPECT_EQ(0644, st.st_mode & 0777);

	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 12345));
	ASSERT_EQ(0, upa_param_read("max_pages_per_process", &v));
	EXPECT_EQ(12345, v);
	ASSERT_EQ(0, upa_param_write("max_pages", 1234567));
	ASSERT_EQ(0, upa_param_read("max_pages", &v));
	EXPECT_EQ(1234567, v);
	ASSERT_EQ(0, upa_param_write("max_pages", 0));
	ASSERT_EQ(0, upa_param_read("max_pages", &v));
	EXPECT_EQ(0, v);

	/* Garbage is refused and changes nothing. */
	EXPECT_EQ(-EINVAL, upa_param_write_str("max_pages_per_process", "lots\n"));
	EXPECT_EQ(-EINVAL, upa_param_write_str("max_pages_per_process", "-5\n"));
	ASSERT_EQ(0, upa_param_read("max_pages_per_process", &v));
	EXPECT_EQ(12345, v);
}

TEST_F(limits, max_pages_per_process_enforced_at_mmap)
{
	struct upa_stats before, after;
	struct upalloc_proc_stats ps;
	char *a, *b, *c;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 16));
	a = upa_map(self->fd, PAGES(10), 0);
	ASSERT_NE(NULL, a);
	b = upa_map(self->fd, PAGES(6), 0);
	ASSERT_NE(NULL, b);

	READ_STATS(&before);
	errno = 0;
	c = upa_map(self->fd, PAGES(1), 0);
	EXPECT_EQ(NULL, c);
	EXPECT_EQ(ENOMEM, errno);
	READ_STATS(&after);
	EXPECT_EQ(1, STAT_DELTA(after, before, enomem));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(16, ps.pages_committed);
	EXPECT_EQ(2, ps.regions_live);
	EXPECT_EQ(1, ps.enomem);

	/* Unmapping gives the commit back. */
	ASSERT_EQ(0, munmap(b, PAGES(6)));
	c = upa_map(self->fd, PAGES(6), 0);
	ASSERT_NE(NULL, c);
	fill_pages(a, 0, 10, 1);
	fill_pages(c, 0, 6, 1);
	ASSERT_EQ(0, munmap(c, PAGES(6)));
	ASSERT_EQ(0, munmap(a, PAGES(10)));
}

TEST_F(limits, heap_reservation_commits_nothing)
{
	struct upalloc_proc_stats ps;
	char *h;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 4));
	/* Far beyond the limit as address space, but nothing committed. */
	h = upa_map_heap(self->fd, PAGES(4096));
	ASSERT_NE(NULL, h) TH_LOG("heap mmap: %s", strerror(errno));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(0, ps.pages_committed);
	ASSERT_EQ(0, munmap(h, PAGES(4096)));
}

TEST_F(limits, max_pages_per_process_enforced_at_set_brk)
{
	struct upalloc_region_info info;
	char *h, *p;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 8));
	p = upa_map(self->fd, PAGES(3), 0);
	ASSERT_NE(NULL, p);
	h = upa_map_heap(self->fd, PAGES(64));
	ASSERT_NE(NULL, h);
	/* 3 plain + 5 heap = 8: allowed; one more page is not. */
	ASSERT_EQ(0, upa_set_brk(self->fd, h, PAGES(5), NULL));
	EXPECT_EQ(-ENOMEM, upa_set_brk(self->fd, h, PAGES(6), NULL));
	ASSERT_EQ(0, upa_region_info(self->fd, h, &info));
	EXPECT_EQ(PAGES(5), info.brk);
	/* Lowering always works, and frees commit for others. */
	ASSERT_EQ(0, upa_set_brk(self->fd, h, PAGES(1), NULL));
	ASSERT_EQ(0, munmap(p, PAGES(3)));
	ASSERT_EQ(0, upa_set_brk(self->fd, h, PAGES(8), NULL));
	write_pages(h, 0, 8, 1);
	ASSERT_EQ(0, munmap(h, PAGES(64)));
}

TEST_F(limits, max_pages_enforced_globally)
{
	struct upa_stats s;
	char *a, *b;
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 0));
	READ_STATS(&s);
	/* Room for exactly 12 more pages, whoever commits them. */
	ASSERT_EQ(0, upa_param_write("max_pages", s.pages_committed + 12));
	a = upa_map(self->fd, PAGES(8), 0);
	ASSERT_NE(NULL, a);

	/* Another process sees the same global limit. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *c;

		/*
		 * The child's copy of a would take 8 + 8 > 12: fork leaves
		 * it without memory (the limit holds across fork), and the 4
		 * pages left are all anyone may commit.
		 */
		CHILD_CHECK(upa_probe_read(a, NULL, NULL) == SIGBUS);
		c = upa_map(self->fd, PAGES(5), 0);
		CHILD_CHECK(c == NULL && errno == ENOMEM);
		CHILD_CHECK(munmap(a, PAGES(8)) == 0);
		c = upa_map(self->fd, PAGES(4), 0);
		CHILD_CHECK(c != NULL);
		_exit(0);
	}
	ASSERT_EQ(0, wait_child_ok(pid));
	errno = 0;
	b = upa_map(self->fd, PAGES(5), 0);
	EXPECT_EQ(NULL, b);
	EXPECT_EQ(ENOMEM, errno);
	b = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, b);
	fill_pages(a, 0, 8, 1);
	fill_pages(b, 0, 4, 1);
	ASSERT_EQ(0, munmap(b, PAGES(4)));
	ASSERT_EQ(0, munmap(a, PAGES(8)));
}

TEST_F(limits, later_touch_never_fails_after_limit_lowered)
{
	struct upa_stats before, after;
	char *p, *h;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(16), 0);
	ASSERT_NE(NULL, p);
	h = upa_map_heap(self->fd, PAGES(16));
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, upa_set_brk(self->fd, h, PAGES(16), NULL));

	/* Limits far below what is already committed. */
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 1));
	ASSERT_EQ(0, upa_param_write("max_pages", 1));
	READ_STATS(&before);
	fill_pages(p, 0, 16, 1);
	fill_pages(h, 0, 16, 2);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, sigbus));
	EXPECT_EQ(32, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(-1, check_pages(p, 0, 16, 1));
	EXPECT_EQ(-1, check_pages(h, 0, 16, 2));
	/* But nothing new can be committed. */
	EXPECT_EQ(NULL, upa_map(self->fd, PAGES(1), 0));
	EXPECT_EQ(ENOMEM, errno);
	ASSERT_EQ(0, munmap(h, PAGES(16)));
	ASSERT_EQ(0, munmap(p, PAGES(16)));
}

/* ---- memory cgroup charging ---------------------------------------------- */

#define CG_MOUNT	"/tmp/upalloc-selftest-cgroup2"
#define CG_PAGES	1024
/* memcg charges go through per-CPU stocks of up to 64 pages per CPU. */
#define CG_SLACK	256

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

static long long cg_read_ll(const char *dir, const char *file)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static bool cg_has_word(const char *dir, const char *file, const char *word)
{
	char path[256], w[64];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fscanf(f, "%63s", w) == 1)
		found = !strcmp(w, word);
	fclose(f);
	return found;
}

TEST_F(limits, pages_are_charged_to_callers_memcg)
{
	struct upa_channel ch;
	char root[128], cg[192];
	bool mounted = false, enabled = false;
	long long c0, c1, c2;
	pid_t pid;

	NEED_DEVICE();
	snprintf(root, sizeof(root), "/sys/fs/cgroup");
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK)) {
		mkdir(CG_MOUNT, 0700);
		if (mount("none", CG_MOUNT, "cgroup2", 0, NULL))
			SKIP(return, "cannot mount cgroup2: %s", strerror(errno));
		mounted = true;
		snprintf(root, sizeof(root), CG_MOUNT);
	}
	if (!cg_has_word(root, "cgroup.controllers", "memory")) {
		if (mounted)
			umount(CG_MOUNT);
		SKIP(return, "no memory controller");
	}
	if (!cg_has_word(root, "cgroup.subtree_control", "memory")) {
		ASSERT_EQ(0, cg_write(root, "cgroup.subtree_control", "+memory"));
		enabled = true;
	}
	snprintf(cg, sizeof(cg), "%s/upalloc-selftest-%d", root, getpid());
	ASSERT_EQ(0, mkdir(cg, 0755));
	ASSERT_EQ(0, channel_open(&ch));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *p;

		CHILD_CHECK(cg_write(cg, "cgroup.procs", "0") == 0);
		/* Map before measuring: only the pages remain to be charged. */
		p = upa_map(self->fd, PAGES(CG_PAGES), 0);
		CHILD_CHECK(p != NULL);
		TELL_PARENT(&ch, 'j');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'm');
		write_pages(p, 0, CG_PAGES, 1);
		TELL_PARENT(&ch, 't');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'm');
		CHILD_CHECK(munmap(p, PAGES(CG_PAGES)) == 0);
		TELL_PARENT(&ch, 'u');
		CHILD_CHECK(WAIT_PARENT(&ch) == 'x');
		_exit(0);
	}
	ASSERT_EQ('j', WAIT_CHILD(&ch));
	c0 = cg_read_ll(cg, "memory.current");
	TELL_CHILD(&ch, 'm');
	ASSERT_EQ('t', WAIT_CHILD(&ch));
	c1 = cg_read_ll(cg, "memory.current");
	TELL_CHILD(&ch, 'm');
	ASSERT_EQ('u', WAIT_CHILD(&ch));
	c2 = cg_read_ll(cg, "memory.current");
	TELL_CHILD(&ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	channel_close(&ch);

	TH_LOG("memory.current: %lld -> %lld -> %lld bytes", c0, c1, c2);
	EXPECT_LE(0, c0);
	/* The child's cgroup pays for its pages, and gets them back. */
	EXPECT_LE((long long)PAGES(CG_PAGES - CG_SLACK), c1 - c0);
	EXPECT_GE((long long)PAGES(CG_PAGES + CG_SLACK), c1 - c0);
	EXPECT_LE((long long)PAGES(CG_PAGES - CG_SLACK), c1 - c2);

	rmdir(cg);
	if (enabled)
		cg_write(root, "cgroup.subtree_control", "-memory");
	if (mounted)
		umount(CG_MOUNT);
}

UPALLOC_TEST_MAIN
