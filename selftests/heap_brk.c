// SPDX-License-Identifier: GPL-2.0
/*
 * Description: heap regions that grow and shrink like sbrk (issue 2, item 2).
 * A MAP_NORESERVE mapping reserves address space with its break at 0; only
 * pages below the break may be touched (SIGBUS above it); UPALLOC_IOC_SET_BRK
 * raises the break (commits, ENOMEM up front over a limit, changing nothing)
 * or lowers it (frees the pages above). Plain mappings start with brk == len.
 * A raise racing with a lowering never exposes the lowered pages' old
 * contents (issue 11, item 9).
 */
#include <pthread.h>
#include <time.h>

#include "upalloc_test.h"

#define HEAP_PAGES	256

FIXTURE(heap_brk) {
	int fd;
	char *heap;
	uint64_t saved_limit;
	bool limit_saved;
};

static int overcommit_mode(void)
{
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "re");
	int mode = 0;

	if (f) {
		if (fscanf(f, "%d", &mode) != 1)
			mode = 0;
		fclose(f);
	}
	return mode;
}

FIXTURE_SETUP(heap_brk)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	/* With overcommit_memory=2 the kernel drops MAP_NORESERVE. */
	if (overcommit_mode() == 2)
		SKIP(return, "vm.overcommit_memory=2: no heap regions");
	self->heap = upa_map_heap(self->fd, PAGES(HEAP_PAGES));
	ASSERT_NE(NULL, self->heap) TH_LOG("heap mmap: %s", strerror(errno));
}

FIXTURE_TEARDOWN(heap_brk)
{
	if (self->limit_saved)
		upa_param_write("max_pages_per_process", self->saved_limit);
	if (self->heap)
		munmap(self->heap, PAGES(HEAP_PAGES));
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(heap_brk, heap_region_starts_with_zero_break)
{
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	struct upalloc_brk b;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap + PAGES(17), &info));
	EXPECT_EQ((uintptr_t)self->heap, info.start);
	EXPECT_EQ(PAGES(HEAP_PAGES), info.len);
	EXPECT_EQ(0, info.brk);
	EXPECT_EQ(0, info.pages_present);
	EXPECT_EQ(UPALLOC_REGION_HEAP, info.flags);

	ASSERT_EQ(0, upa_query_brk(self->fd, self->heap + PAGES(HEAP_PAGES) - 1, &b));
	EXPECT_EQ(0, b.old_brk);
	EXPECT_EQ((uintptr_t)self->heap, b.region_start);
	EXPECT_EQ(PAGES(HEAP_PAGES), b.region_len);

	/* A reservation commits nothing. */
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(1, ps.regions_live);
	EXPECT_EQ(0, ps.pages_committed);
	EXPECT_EQ(0, ps.pages_live);
}

TEST_F(heap_brk, plain_region_starts_with_break_at_len)
{
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(6), 0);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(PAGES(6), info.brk);
	EXPECT_EQ(0, info.flags & UPALLOC_REGION_HEAP);
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(6, ps.pages_committed);
	/* Every page of it can be touched. */
	write_pages(p, 0, 6, 1);
	ASSERT_EQ(0, munmap(p, PAGES(6)));
}

TEST_F(heap_brk, touch_beyond_break_raises_sigbus)
{
	struct upa_stats before, after;
	struct upa_probe_result res;
	char v;

	NEED_DEVICE();
	READ_STATS(&before);
	/* Break 0: even the first byte is beyond it. */
	EXPECT_EQ(SIGBUS, upa_probe_read(self->heap, &v, &res));
	EXPECT_EQ(BUS_ADRERR, res.code);
	EXPECT_EQ(self->heap, res.addr);

	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(2), NULL));
	EXPECT_EQ(0, upa_probe_write(self->heap, 1, NULL));
	EXPECT_EQ(0, upa_probe_write(self->heap + PAGES(2) - 1, 2, NULL));
	EXPECT_EQ(SIGBUS, upa_probe_write(self->heap + PAGES(2), 3, &res));
	EXPECT_EQ(self->heap + PAGES(2), res.addr);
	EXPECT_EQ(SIGBUS, upa_probe_read(self->heap + PAGES(HEAP_PAGES) - 1, &v, &res));
	EXPECT_EQ(self->heap + PAGES(HEAP_PAGES) - 1, res.addr);

	READ_STATS(&after);
	EXPECT_EQ(3, STAT_DELTA(after, before, sigbus));
	/* A SIGBUS allocates nothing. */
	EXPECT_EQ(2, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(2, upa_pages_present(self->fd, self->heap));
}

/* The kernel touching memory beyond the break gets EFAULT, not a signal. */
TEST_F(heap_brk, kernel_access_beyond_break_is_efault)
{
	int pipefd[2];

	NEED_DEVICE();
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(1), NULL));
	ASSERT_EQ(0, pipe(pipefd));
	ASSERT_EQ(3, write(pipefd[1], "abc", 3));
	errno = 0;
	EXPECT_EQ(-1, read(pipefd[0], self->heap + PAGES(1), 3));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, write(pipefd[1], self->heap + PAGES(2), 3));
	EXPECT_EQ(EFAULT, errno);
	/* Below the break the same calls work; nothing was consumed above. */
	EXPECT_EQ(3, read(pipefd[0], self->heap + PAGES(1) - 3, 3));
	EXPECT_EQ(0, memcmp(self->heap + PAGES(1) - 3, "abc", 3));
	EXPECT_EQ(1, upa_pages_present(self->fd, self->heap));
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(heap_brk, raising_break_commits)
{
	struct upa_stats before, after;
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	struct upalloc_brk b;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap + 5, PAGES(5), &b));
	EXPECT_EQ(0, b.old_brk);
	EXPECT_EQ((uintptr_t)self->heap, b.region_start);
	EXPECT_EQ(PAGES(HEAP_PAGES), b.region_len);

	READ_STATS(&after);
	EXPECT_EQ(5, STAT_DELTA(after, before, pages_committed));
	/* Committing is not allocating. */
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(5, ps.pages_committed);
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap, &info));
	EXPECT_EQ(PAGES(5), info.brk);
	EXPECT_EQ(0, info.pages_present);

	/* The committed pages are usable and zero. */
	EXPECT_EQ(-1, check_zero_pages(self->heap, 0, 5));
	fill_pages(self->heap, 0, 5, 7);
	EXPECT_EQ(-1, check_pages(self->heap, 0, 5, 7));

	/* Raising again keeps the contents; old_brk reports the old break. */
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(9), &b));
	EXPECT_EQ(PAGES(5), b.old_brk);
	EXPECT_EQ(-1, check_pages(self->heap, 0, 5, 7));
	EXPECT_EQ(-1, check_zero_pages(self->heap, 5, 4));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(9, ps.pages_committed);
}

TEST_F(heap_brk, lowering_break_frees_pages_above)
{
	struct upa_stats before, after;
	struct upalloc_proc_stats ps;
	struct upalloc_brk b;
	char v;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(8), NULL));
	fill_pages(self->heap, 0, 8, 3);
	EXPECT_EQ(8, upa_pages_present(self->fd, self->heap));

	READ_STATS(&before);
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(3), &b));
	EXPECT_EQ(PAGES(8), b.old_brk);
	READ_STATS(&after);
	EXPECT_EQ(3, upa_pages_present(self->fd, self->heap));
	EXPECT_EQ(-5, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(5, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(-5, STAT_DELTA(after, before, pages_committed));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(3, ps.pages_committed);
	EXPECT_EQ(3, ps.pages_live);

	/* The freed pages are gone from the mapping too. */
	EXPECT_EQ(SIGBUS, upa_probe_read(self->heap + PAGES(5), &v, NULL));
	EXPECT_EQ(SIGBUS, upa_probe_read(self->heap + PAGES(3), &v, NULL));
	EXPECT_EQ(-1, check_pages(self->heap, 0, 3, 3));

	/* Raised again, the break exposes fresh zero pages above 3. */
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(8), NULL));
	EXPECT_EQ(-1, check_pages(self->heap, 0, 3, 3));
	EXPECT_EQ(-1, check_zero_pages(self->heap, 3, 5));

	/* Lowering to 0 frees everything. */
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, 0, NULL));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(0, ps.pages_live);
	EXPECT_EQ(0, ps.pages_committed);
	EXPECT_EQ(0, upa_pages_present(self->fd, self->heap));
}

TEST_F(heap_brk, break_over_limit_fails_with_enomem_and_changes_nothing)
{
	struct upa_stats before, after;
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	struct upalloc_brk b;
	char v;

	NEED_DEVICE();
	if (upa_param_read("max_pages_per_process", &self->saved_limit))
		SKIP(return, "max_pages_per_process parameter not readable");
	if (geteuid())
		SKIP(return, "needs root to set max_pages_per_process");
	self->limit_saved = true;

	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(4), NULL));
	fill_pages(self->heap, 0, 4, 9);
	ASSERT_EQ(0, upa_param_write("max_pages_per_process", 10));

	READ_STATS(&before);
	ASSERT_EQ(-ENOMEM, upa_set_brk(self->fd, self->heap, PAGES(11), &b));
	ASSERT_EQ(-ENOMEM, upa_set_brk(self->fd, self->heap, PAGES(HEAP_PAGES), &b));
	READ_STATS(&after);
	EXPECT_EQ(2, STAT_DELTA(after, before, enomem));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));

	/* Nothing moved: same break, same pages, same contents. */
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap, &info));
	EXPECT_EQ(PAGES(4), info.brk);
	EXPECT_EQ(4, info.pages_present);
	EXPECT_EQ(-1, check_pages(self->heap, 0, 4, 9));
	EXPECT_EQ(SIGBUS, upa_probe_read(self->heap + PAGES(4), &v, NULL));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(4, ps.pages_committed);
	EXPECT_EQ(2, ps.enomem);

	/* Exactly up to the limit is still allowed. */
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(10), &b));
	EXPECT_EQ(PAGES(4), b.old_brk);
	write_pages(self->heap, 0, 10, 1);
}

TEST_F(heap_brk, break_beyond_region_len_is_rejected)
{
	struct upalloc_region_info info;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(2), NULL));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, self->heap, PAGES(HEAP_PAGES + 1), NULL));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, self->heap, ~0ULL & ~(uint64_t)(page_size() - 1), NULL));
	/* The whole length is fine. */
	EXPECT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(HEAP_PAGES), NULL));
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap, &info));
	EXPECT_EQ(PAGES(HEAP_PAGES), info.brk);
}

TEST_F(heap_brk, unaligned_break_is_rejected)
{
	struct upalloc_region_info info;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(2), NULL));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, self->heap, PAGES(3) + 1, NULL));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, self->heap, 100, NULL));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, self->heap, PAGES(1) - 1, NULL));
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap, &info));
	EXPECT_EQ(PAGES(2), info.brk);
}

TEST_F(heap_brk, query_reports_break_without_moving_it)
{
	struct upalloc_region_info info;
	struct upalloc_brk b = {
		.addr = (uintptr_t)self->heap,
		.new_brk = PAGES(7),		/* ignored with QUERY */
		.flags = UPALLOC_BRK_QUERY,
	};

	NEED_DEVICE();
	ASSERT_EQ(0, upa_set_brk(self->fd, self->heap, PAGES(3), NULL));
	b.addr = (uintptr_t)self->heap + PAGES(100);
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &b));
	EXPECT_EQ(PAGES(3), b.old_brk);
	EXPECT_EQ((uintptr_t)self->heap, b.region_start);
	EXPECT_EQ(PAGES(HEAP_PAGES), b.region_len);
	ASSERT_EQ(0, upa_region_info(self->fd, self->heap, &info));
	EXPECT_EQ(PAGES(3), info.brk);
}

TEST_F(heap_brk, plain_region_break_can_be_lowered_and_raised)
{
	struct upalloc_proc_stats ps;
	char *p;
	char v;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(8), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 8, 4);
	ASSERT_EQ(0, upa_set_brk(self->fd, p, PAGES(2), NULL));
	EXPECT_EQ(2, upa_pages_present(self->fd, p));
	EXPECT_EQ(SIGBUS, upa_probe_read(p + PAGES(2), &v, NULL));
	ASSERT_EQ(0, upa_set_brk(self->fd, p, PAGES(8), NULL));
	EXPECT_EQ(-1, check_pages(p, 0, 2, 4));
	EXPECT_EQ(-1, check_zero_pages(p, 2, 6));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(8, ps.pages_committed);
	ASSERT_EQ(0, munmap(p, PAGES(8)));
}

/* A raiser thread: waits for the break to drop below len, puts it back. */
struct brk_raiser {
	int fd;
	char *heap;
	uint64_t len;
	int err;
	bool raised;
};

static void *raise_when_lowered(void *arg)
{
	struct brk_raiser *rs = arg;
	struct upalloc_brk b;
	long spins;

	for (spins = 0; spins < 10000000; spins++) {
		if (upa_query_brk(rs->fd, rs->heap, &b)) {
			rs->err = -errno;
			return NULL;
		}
		if (b.old_brk < rs->len)
			break;
		if (spins % 64 == 63)
			sched_yield();
	}
	rs->err = upa_set_brk(rs->fd, rs->heap, rs->len, NULL);
	rs->raised = true;
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define RACE_PAGES	4096
#define RACE_ROUNDS	10
#define RACE_SECONDS	5.0

/*
 * One thread lowers the break to 0, another raises it back to the end as
 * soon as it sees it lowered, while the lowering is still freeing pages
 * in batches. The lowering must free every page it lowered the break
 * past: after both, nothing was written, so every page reads zero. The
 * old module resumed its batches from the raised break and left the old
 * contents there. Bounded: RACE_ROUNDS rounds or RACE_SECONDS.
 */
TEST_F(heap_brk, raise_racing_with_lowering_exposes_no_old_contents)
{
	double deadline = now_s() + RACE_SECONDS;
	struct brk_raiser rs = { .fd = self->fd, .len = PAGES(RACE_PAGES) };
	struct upalloc_brk b;
	int round, raced = 0;
	pthread_t t;
	char *heap;
	long bad;

	NEED_DEVICE();
	heap = upa_map_heap(self->fd, PAGES(RACE_PAGES));
	ASSERT_NE(NULL, heap);
	rs.heap = heap;
	for (round = 0; round < RACE_ROUNDS && now_s() < deadline; round++) {
		ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(RACE_PAGES), NULL));
		write_pages(heap, 0, RACE_PAGES, 'o');
		rs.raised = false;
		ASSERT_EQ(0, pthread_create(&t, NULL, raise_when_lowered, &rs));
		ASSERT_EQ(0, upa_set_brk(self->fd, heap, 0, &b));
		ASSERT_EQ(0, pthread_join(t, NULL));
		ASSERT_EQ(0, rs.err);
		ASSERT_TRUE(rs.raised);
		ASSERT_EQ(0, upa_query_brk(self->fd, heap, &b));
		ASSERT_EQ(PAGES(RACE_PAGES), b.old_brk);
		bad = check_zero_pages(heap, 0, RACE_PAGES);
		ASSERT_EQ(-1, bad) TH_LOG("round %d: page %ld kept its old contents",
					  round, bad);
		raced++;
	}
	TH_LOG("%d rounds", raced);
	munmap(heap, PAGES(RACE_PAGES));
}

UPALLOC_TEST_MAIN
