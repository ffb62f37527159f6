// SPDX-License-Identifier: GPL-2.0
/*
 * Description: decommit (issue 2, item 3). UPALLOC_IOC_DECOMMIT gives back
 * the pages of a page-aligned sub-range of a region while the mapping stays:
 * the next touch gets a fresh zero page, the neighbours keep their data, the
 * break and the commit charge are unchanged, and the statistics drop by the
 * exact number of pages freed. Also checks what madvise(MADV_DONTNEED) does on
 * these mappings, as the module documents it.
 *
 * A page something else still holds when it leaves the region (a pipe
 * buffer filled by vmsplice(), a pin) is not freed until that reference
 * goes, and stays counted until then (issue 11, item 8).
 */
#include <sys/uio.h>

#include "upalloc_test.h"

#define NPAGES 16

FIXTURE(decommit) {
	int fd;
	char *p;
};

FIXTURE_SETUP(decommit)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(decommit)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(decommit, decommit_returns_zero_pages)
{
	uint64_t nr = 0;

	NEED_DEVICE();
	fill_pages(self->p, 0, NPAGES, 1);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p + PAGES(2), PAGES(4), &nr));
	EXPECT_EQ(4, nr);

	/* The mapping stays: the range reads back as fresh zero pages. */
	EXPECT_EQ(-1, check_zero_pages(self->p, 2, 4));
	EXPECT_EQ(-1, check_pages(self->p, 0, 2, 1));
	EXPECT_EQ(-1, check_pages(self->p, 6, NPAGES - 6, 1));

	/* And it is writable again. */
	fill_pages(self->p, 2, 4, 2);
	EXPECT_EQ(-1, check_pages(self->p, 2, 4, 2));
	EXPECT_EQ(NPAGES, upa_pages_present(self->fd, self->p));
}

TEST_F(decommit, decommit_drops_pages_live)
{
	struct upa_stats before, after;
	struct upalloc_proc_stats ps;
	uint64_t nr = 0;

	NEED_DEVICE();
	write_pages(self->p, 0, 10, 1);	/* pages 10..15 never touched */
	READ_STATS(&before);
	/* Pages 6..13: six present, two absent. */
	ASSERT_EQ(0, upa_decommit(self->fd, self->p + PAGES(6), PAGES(8), &nr));
	EXPECT_EQ(4, nr);
	READ_STATS(&after);
	EXPECT_EQ(-4, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(4, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(4, STAT_DELTA(after, before, pages_decommitted));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(6, upa_pages_present(self->fd, self->p));

	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(6, ps.pages_live);
	EXPECT_EQ(10, ps.pages_peak);
	EXPECT_EQ(4, ps.pages_decommitted);
	EXPECT_EQ(4, ps.pages_freed);
	EXPECT_EQ(NPAGES, ps.pages_committed);
}

TEST_F(decommit, decommit_of_untouched_range_frees_nothing)
{
	struct upa_stats before, after;
	uint64_t nr = 99;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(NPAGES), &nr));
	EXPECT_EQ(0, nr);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_decommitted));

	/* Twice in a row: the second call finds nothing left. */
	write_pages(self->p, 0, 3, 1);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(NPAGES), &nr));
	EXPECT_EQ(3, nr);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(NPAGES), &nr));
	EXPECT_EQ(0, nr);
}

TEST_F(decommit, decommit_above_break_is_rejected)
{
	struct upalloc_region_info info;
	uint64_t nr;
	char *heap;

	NEED_DEVICE();
	heap = upa_map_heap(self->fd, PAGES(8));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(2), NULL));
	fill_pages(heap, 0, 2, 5);
	/* The range must lie below the break. */
	EXPECT_EQ(-EINVAL, upa_decommit(self->fd, heap, PAGES(4), &nr));
	EXPECT_EQ(-EINVAL, upa_decommit(self->fd, heap + PAGES(2), PAGES(1), &nr));
	EXPECT_EQ(-EINVAL, upa_populate(self->fd, heap + PAGES(1), PAGES(2), &nr));
	/* Nothing happened. */
	ASSERT_EQ(0, upa_region_info(self->fd, heap, &info));
	EXPECT_EQ(2, info.pages_present);
	EXPECT_EQ(PAGES(2), info.brk);
	EXPECT_EQ(-1, check_pages(heap, 0, 2, 5));
	ASSERT_EQ(0, munmap(heap, PAGES(8)));
}

TEST_F(decommit, decommit_in_heap_keeps_break)
{
	struct upalloc_region_info info;
	uint64_t nr;
	char *heap;

	NEED_DEVICE();
	heap = upa_map_heap(self->fd, PAGES(8));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(6), NULL));
	fill_pages(heap, 0, 6, 5);
	ASSERT_EQ(0, upa_decommit(self->fd, heap + PAGES(1), PAGES(5), &nr));
	EXPECT_EQ(5, nr);
	ASSERT_EQ(0, upa_region_info(self->fd, heap, &info));
	EXPECT_EQ(PAGES(6), info.brk);
	EXPECT_EQ(1, info.pages_present);
	EXPECT_EQ(-1, check_pages(heap, 0, 1, 5));
	EXPECT_EQ(-1, check_zero_pages(heap, 1, 5));
	ASSERT_EQ(0, munmap(heap, PAGES(8)));
}

/*
 * MADV_DONTNEED only zaps this process's page table entries: the module
 * still owns the pages, so they stay allocated and the next touch maps the
 * same page with the old contents (documented in the module: it is not a
 * decommit; use UPALLOC_IOC_DECOMMIT).
 */
TEST_F(decommit, madvise_dontneed_behaviour)
{
	struct upa_stats before, after;

	NEED_DEVICE();
	fill_pages(self->p, 0, 4, 6);
	READ_STATS(&before);
	ASSERT_EQ(0, madvise(self->p, PAGES(4), MADV_DONTNEED));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(4, upa_pages_present(self->fd, self->p));
	EXPECT_EQ(-1, check_pages(self->p, 0, 4, 6));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_allocated));
}

#define SPLICED	8

/* vmsplice() pages [0, SPLICED) of p into a new pipe; 0 or -1. */
static int splice_pages(char *p, int pipefd[2])
{
	struct iovec iov = { .iov_base = p, .iov_len = PAGES(SPLICED) };
	ssize_t n;

	if (pipe(pipefd))
		return -1;
	while (iov.iov_len) {
		n = vmsplice(pipefd[1], &iov, 1, 0);
		if (n <= 0)
			return -1;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= n;
	}
	return 0;
}

/* Read SPLICED pages from the pipe into buf and close it; 0 or -1. */
static int drain_pipe(int pipefd[2], char *buf)
{
	size_t got = 0;
	ssize_t n;

	while (got < PAGES(SPLICED)) {
		n = read(pipefd[0], buf + got, PAGES(SPLICED) - got);
		if (n <= 0)
			return -1;
		got += n;
	}
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

/*
 * The pipe holds the decommitted pages: they stay allocated, so they stay
 * in pages_live (global and the process's) and out of pages_freed until
 * the pipe lets go of them; the pipe keeps their old contents.
 */
TEST_F(decommit, decommit_of_vmspliced_pages_keeps_them_counted_until_pipe_drains)
{
	struct upa_stats before, mid, after;
	struct upalloc_proc_stats ps;
	int pipefd[2];
	uint64_t nr = 0;
	char *buf;

	NEED_DEVICE();
	buf = malloc(PAGES(SPLICED));
	ASSERT_NE(NULL, buf);
	fill_pages(self->p, 0, SPLICED, 3);
	ASSERT_EQ(0, splice_pages(self->p, pipefd));
	READ_STATS(&before);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(NPAGES), &nr));
	EXPECT_EQ(SPLICED, nr);
	READ_STATS(&mid);
	EXPECT_EQ(0, STAT_DELTA(mid, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(mid, before, pages_freed));
	EXPECT_EQ(SPLICED, STAT_DELTA(mid, before, pages_decommitted));
	EXPECT_EQ(0, upa_pages_present(self->fd, self->p));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(SPLICED, ps.pages_live);

	ASSERT_EQ(0, drain_pipe(pipefd, buf));
	EXPECT_EQ(-1, check_pages(buf, 0, SPLICED, 3));
	READ_STATS(&after);
	EXPECT_EQ(-SPLICED, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(SPLICED, STAT_DELTA(after, before, pages_freed));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(0, ps.pages_live);
	/* The region itself got fresh pages. */
	EXPECT_EQ(-1, check_zero_pages(self->p, 0, SPLICED));
	free(buf);
}

/* Likewise when the region goes away while the pipe holds its pages. */
TEST_F(decommit, unmap_of_vmspliced_pages_keeps_them_counted_until_pipe_drains)
{
	struct upa_stats before, mid, after;
	struct upalloc_proc_stats ps;
	int pipefd[2];
	char *buf;

	NEED_DEVICE();
	buf = malloc(PAGES(SPLICED));
	ASSERT_NE(NULL, buf);
	fill_pages(self->p, 0, SPLICED, 4);
	ASSERT_EQ(0, splice_pages(self->p, pipefd));
	READ_STATS(&before);
	ASSERT_EQ(0, munmap(self->p, PAGES(NPAGES)));
	self->p = NULL;
	READ_STATS(&mid);
	EXPECT_EQ(-1, STAT_DELTA(mid, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(mid, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(mid, before, pages_freed));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(0, ps.regions_live);
	EXPECT_EQ(SPLICED, ps.pages_live);

	ASSERT_EQ(0, drain_pipe(pipefd, buf));
	EXPECT_EQ(-1, check_pages(buf, 0, SPLICED, 4));
	READ_STATS(&after);
	EXPECT_EQ(-SPLICED, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(SPLICED, STAT_DELTA(after, before, pages_freed));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(0, ps.pages_live);
	free(buf);
}

UPALLOC_TEST_MAIN
