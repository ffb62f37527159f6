// SPDX-License-Identifier: GPL-2.0
/*
 * Description: fork (issue 2, item 4). The child gets a copy-on-write
 * snapshot of every region: writes after the fork by either side are
 * invisible to the other (also for pages absent at fork time); both sides can
 * keep faulting, moving breaks, decommitting and unmapping; MADV_DONTFORK
 * keeps a region out of the child; a child that execs drops its share; and
 * once both are gone every page is freed. Right after fork the child has no
 * PTE of the parent's (issue 11, item 3).
 */
#include <pthread.h>
#include <sys/uio.h>

#include "upalloc_test.h"

#define NPAGES 8

FIXTURE(fork) {
	int fd;
	char *p;
	struct upa_channel ch;
};

FIXTURE_SETUP(fork)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
	ASSERT_EQ(0, channel_open(&self->ch));
}

FIXTURE_TEARDOWN(fork)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0) {
		close(self->fd);
		channel_close(&self->ch);
	}
}

TEST_F(fork, fork_child_sees_parent_snapshot)
{
	struct upa_channel *ch = &self->ch;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);
	read_pages(p, 4, 1);		/* present and zero */

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(check_pages(p, 0, 4, 1) == -1);
		CHILD_CHECK(check_zero_pages(p, 4, NPAGES - 4) == -1);
		TELL_PARENT(ch, 'r');
		CHILD_CHECK(WAIT_PARENT(ch) == 'w');
		/* The parent rewrote every page meanwhile. */
		CHILD_CHECK(check_pages(p, 0, 4, 1) == -1);
		CHILD_CHECK(check_zero_pages(p, 4, NPAGES - 4) == -1);
		_exit(0);
	}
	ASSERT_EQ('r', WAIT_CHILD(ch));
	fill_pages(p, 0, NPAGES, 2);
	TELL_CHILD(ch, 'w');
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 2));
}

TEST_F(fork, writes_after_fork_are_private_both_ways)
{
	struct upa_channel *ch = &self->ch;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);		/* pages 4..7 absent at fork */

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'w');
		/* Parent wrote pages 0, 1 and 6: none of it shows here. */
		CHILD_CHECK(check_pages(p, 0, 4, 1) == -1);
		CHILD_CHECK(check_zero_pages(p, 6, 1) == -1);
		fill_pages(p, 1, 2, 3);		/* shared pages */
		fill_pages(p, 5, 1, 3);		/* absent at fork */
		fill_pages(p, 6, 1, 3);		/* parent's new page */
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		CHILD_CHECK(check_pages(p, 0, 1, 1) == -1);
		CHILD_CHECK(check_pages(p, 1, 2, 3) == -1);
		CHILD_CHECK(check_pages(p, 3, 1, 1) == -1);
		CHILD_CHECK(check_zero_pages(p, 4, 1) == -1);
		CHILD_CHECK(check_pages(p, 5, 2, 3) == -1);
		_exit(0);
	}
	fill_pages(p, 0, 2, 2);
	fill_pages(p, 6, 1, 2);
	TELL_CHILD(ch, 'w');
	ASSERT_EQ('c', WAIT_CHILD(ch));
	/* Child wrote pages 1, 2, 5 and 6: none of it shows here. */
	EXPECT_EQ(-1, check_pages(p, 0, 2, 2));
	EXPECT_EQ(-1, check_pages(p, 2, 2, 1));
	EXPECT_EQ(-1, check_zero_pages(p, 4, 2));
	EXPECT_EQ(-1, check_pages(p, 6, 1, 2));
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	/* And nothing changed when the child went away. */
	EXPECT_EQ(-1, check_pages(p, 0, 2, 2));
	EXPECT_EQ(-1, check_pages(p, 2, 2, 1));
	EXPECT_EQ(-1, check_zero_pages(p, 4, 2));
	EXPECT_EQ(-1, check_pages(p, 6, 1, 2));
}

TEST_F(fork, child_region_is_marked_forked)
{
	struct upa_channel *ch = &self->ch;
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(upa_region_info(self->fd, p, &info) == 0);
		CHILD_CHECK(info.flags == UPALLOC_REGION_FORKED);
		CHILD_CHECK(info.start == (uintptr_t)p);
		CHILD_CHECK(info.len == PAGES(NPAGES));
		CHILD_CHECK(info.brk == PAGES(NPAGES));
		CHILD_CHECK(info.pages_present == 4);
		CHILD_CHECK(info.pages_shared == 4);
		/* The child's own statistics: one region (the copy), 4 pages. */
		CHILD_CHECK(upa_proc_stats(self->fd, &ps) == 0);
		CHILD_CHECK(ps.regions_live == 1 && ps.regions_created == 1);
		CHILD_CHECK(ps.pages_live == 4 && ps.pages_allocated == 0);
		CHILD_CHECK(ps.pages_committed == NPAGES);
		/* Writing a shared page unshares it on both sides. */
		p[0] = 1;
		CHILD_CHECK(upa_region_info(self->fd, p, &info) == 0);
		CHILD_CHECK(info.pages_present == 4);
		CHILD_CHECK(info.pages_shared == 3);
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		_exit(0);
	}
	ASSERT_EQ('c', WAIT_CHILD(ch));
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(4, info.pages_present);
	EXPECT_EQ(3, info.pages_shared);
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(0, info.pages_shared);
}

TEST_F(fork, child_can_fault_brk_decommit_unmap)
{
	struct upalloc_region_info info;
	struct upalloc_proc_stats ps;
	char *heap;
	uint64_t nr;
	pid_t pid;
	char v;

	NEED_DEVICE();
	heap = upa_map_heap(self->fd, PAGES(16));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(4), NULL));
	fill_pages(heap, 0, 4, 1);
	fill_pages(self->p, 0, 2, 1);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct upalloc_brk b;

		CHILD_CHECK(check_pages(heap, 0, 4, 1) == -1);
		/* Grow: new pages are zero and private. */
		CHILD_CHECK(upa_set_brk(self->fd, heap, PAGES(8), &b) == 0);
		CHILD_CHECK(b.old_brk == PAGES(4));
		CHILD_CHECK(check_zero_pages(heap, 4, 4) == -1);
		fill_pages(heap, 4, 4, 2);
		/* Decommit two pages still shared with the parent. */
		CHILD_CHECK(upa_decommit(self->fd, heap + PAGES(1), PAGES(2), &nr) == 0);
		CHILD_CHECK(nr == 2);
		CHILD_CHECK(check_zero_pages(heap, 1, 1) == -1);	/* faults page 1 */
		/* Populate brings back the other one, then shrink below them. */
		CHILD_CHECK(upa_populate(self->fd, heap + PAGES(1), PAGES(2), &nr) == 0);
		CHILD_CHECK(nr == 1);
		CHILD_CHECK(check_zero_pages(heap, 1, 2) == -1);
		CHILD_CHECK(upa_set_brk(self->fd, heap, PAGES(2), NULL) == 0);
		CHILD_CHECK(upa_probe_read(heap + PAGES(3), &v, NULL) == SIGBUS);
		CHILD_CHECK(check_pages(heap, 0, 1, 1) == -1);
		/* Unmap both regions. */
		CHILD_CHECK(munmap(heap, PAGES(16)) == 0);
		CHILD_CHECK(check_pages(self->p, 0, 2, 1) == -1);
		CHILD_CHECK(munmap(self->p, PAGES(NPAGES)) == 0);
		CHILD_CHECK(upa_proc_stats(self->fd, &ps) == 0);
		CHILD_CHECK(ps.regions_live == 0);
		CHILD_CHECK(ps.pages_live == 0);
		CHILD_CHECK(ps.pages_committed == 0);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));

	/* The parent's heap is exactly as it was. */
	ASSERT_EQ(0, upa_region_info(self->fd, heap, &info));
	EXPECT_EQ(PAGES(4), info.brk);
	EXPECT_EQ(4, info.pages_present);
	EXPECT_EQ(0, info.pages_shared);
	EXPECT_EQ(-1, check_pages(heap, 0, 4, 1));
	EXPECT_EQ(SIGBUS, upa_probe_read(heap + PAGES(4), &v, NULL));
	EXPECT_EQ(-1, check_pages(self->p, 0, 2, 1));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(2, ps.regions_live);
	EXPECT_EQ(6, ps.pages_live);
	EXPECT_EQ(4 + NPAGES, ps.pages_committed);
	ASSERT_EQ(0, munmap(heap, PAGES(16)));
}

/*
 * Writes the kernel does on a process's behalf (read(2) into the buffer,
 * process_vm_writev) take the same copy-on-write path as user writes.
 */
TEST_F(fork, kernel_writes_after_fork_are_private)
{
	struct upa_channel *ch = &self->ch;
	char *p = self->p;
	char data[64];
	int pipefd[2];
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);
	memset(data, 'K', sizeof(data));
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct iovec local = { data, sizeof(data) };
		struct iovec remote = { p + PAGES(1) + 100, sizeof(data) };

		CHILD_CHECK(write(pipefd[1], data, sizeof(data)) == sizeof(data));
		CHILD_CHECK(read(pipefd[0], p + 100, sizeof(data)) == sizeof(data));
		CHILD_CHECK(process_vm_writev(getpid(), &local, 1, &remote, 1, 0) ==
			    sizeof(data));
		CHILD_CHECK(!memcmp(p + 100, data, sizeof(data)));
		CHILD_CHECK(!memcmp(p + PAGES(1) + 100, data, sizeof(data)));
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'p');
		/* The parent's kernel write to page 2 is not ours. */
		CHILD_CHECK(check_pages(p, 2, 2, 1) == -1);
		_exit(0);
	}
	ASSERT_EQ('c', WAIT_CHILD(ch));
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
	ASSERT_EQ(sizeof(data), write(pipefd[1], data, sizeof(data)));
	ASSERT_EQ(sizeof(data), read(pipefd[0], p + PAGES(2), sizeof(data)));
	TELL_CHILD(ch, 'p');
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(0, memcmp(p + PAGES(2), data, sizeof(data)));
	EXPECT_EQ(-1, check_pages(p, 0, 2, 1));
	close(pipefd[0]);
	close(pipefd[1]);
}

/*
 * POPULATE in a child whose pages are still shared with the parent: the
 * number of pages it reports must be the number it allocated (whether it
 * maps shared pages read-only or copies them for writing).
 */
TEST_F(fork, populate_in_child_reports_what_it_allocates)
{
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);		/* 4 shared pages, 4 absent */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct upalloc_proc_stats before, after;
		uint64_t nr = 0;

		CHILD_CHECK(upa_proc_stats(self->fd, &before) == 0);
		CHILD_CHECK(upa_populate(self->fd, p, PAGES(NPAGES), &nr) == 0);
		CHILD_CHECK(upa_proc_stats(self->fd, &after) == 0);
		CHILD_CHECK(check_pages(p, 0, 4, 1) == -1);
		CHILD_CHECK(check_zero_pages(p, 4, 4) == -1);
		fprintf(stderr, "# child: populate reported %llu pages, allocated %llu, cow_copies %llu\n",
			(unsigned long long)nr,
			(unsigned long long)(after.pages_allocated - before.pages_allocated),
			(unsigned long long)(after.cow_copies - before.cow_copies));
		CHILD_CHECK(nr == 4);
		CHILD_CHECK(after.pages_allocated - before.pages_allocated == nr);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
}

/*
 * POPULATE of a forked region mapped PROT_WRITE only: a page still shared
 * with a relative cannot be mapped for writing without a copy, which
 * populating never makes, and the VMA allows no read mapping either, so
 * the page is left to its first write. The absent pages are allocated and
 * mapped; the call succeeds on both sides of the fork.
 */
TEST_F(fork, populate_of_shared_write_only_region_succeeds)
{
	char *p = self->p;
	uint64_t nr = 0;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 1, 3);		/* 1 page shared after fork, 7 absent */
	ASSERT_EQ(0, mprotect(p, PAGES(NPAGES), PROT_WRITE));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t cnr = 0;

		CHILD_CHECK(upa_populate(self->fd, p, PAGES(NPAGES), &cnr) == 0);
		CHILD_CHECK(cnr == NPAGES - 1);
		CHILD_CHECK(mprotect(p, PAGES(NPAGES), PROT_READ | PROT_WRITE) == 0);
		CHILD_CHECK(check_pages(p, 0, 1, 3) == -1);
		CHILD_CHECK(check_zero_pages(p, 1, NPAGES - 1) == -1);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(0, upa_populate(self->fd, p, PAGES(NPAGES), &nr)) {
		TH_LOG("populate: %s", strerror(errno));
	}
	EXPECT_EQ(NPAGES - 1, nr);
	ASSERT_EQ(0, mprotect(p, PAGES(NPAGES), PROT_READ | PROT_WRITE));
	EXPECT_EQ(-1, check_pages(p, 0, 1, 3));
	EXPECT_EQ(-1, check_zero_pages(p, 1, NPAGES - 1));
}

/* The parent giving pages back (decommit, lower break) leaves the child's. */
TEST_F(fork, parent_decommit_and_brk_leave_child_snapshot)
{
	struct upa_channel *ch = &self->ch;
	struct upalloc_region_info info;
	char *p = self->p, *heap;
	uint64_t nr;
	pid_t pid;

	NEED_DEVICE();
	heap = upa_map_heap(self->fd, PAGES(8));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(8), NULL));
	fill_pages(p, 0, NPAGES, 1);
	fill_pages(heap, 0, 8, 2);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'd');
		CHILD_CHECK(check_pages(p, 0, NPAGES, 1) == -1);
		CHILD_CHECK(check_pages(heap, 0, 8, 2) == -1);
		CHILD_CHECK(upa_region_info(self->fd, heap, &info) == 0);
		CHILD_CHECK(info.brk == PAGES(8) && info.pages_present == 8);
		/* Nothing is shared any more: the parent dropped its shares. */
		CHILD_CHECK(info.pages_shared == 6);
		CHILD_CHECK(upa_region_info(self->fd, p, &info) == 0);
		CHILD_CHECK(info.pages_present == NPAGES && info.pages_shared == 0);
		_exit(0);
	}
	ASSERT_EQ(0, upa_decommit(self->fd, p, PAGES(NPAGES), &nr));
	EXPECT_EQ(NPAGES, nr);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(6), NULL));
	EXPECT_EQ(-1, check_zero_pages(p, 0, NPAGES));
	TELL_CHILD(ch, 'd');
	EXPECT_EQ(0, wait_child_ok(pid));
	ASSERT_EQ(0, munmap(heap, PAGES(8)));
}

TEST_F(fork, madv_dontfork_hides_region_from_child)
{
	struct upa_stats before, after;
	struct upalloc_region_info info;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 1);
	ASSERT_EQ(0, madvise(p, PAGES(NPAGES), MADV_DONTFORK));
	READ_STATS(&before);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char v;

		CHILD_CHECK(upa_region_info(self->fd, p, &info) == -ENOMEM);
		CHILD_CHECK(upa_probe_read(p, &v, NULL) == SIGSEGV);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));
	/* No copy of the region was made, so nothing is shared. */
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(0, info.pages_shared);
	fill_pages(p, 0, NPAGES, 2);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(0, STAT_DELTA(after, before, cow_copies));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 2));
}

TEST_F(fork, exec_drops_child_share)
{
	struct upa_stats before, after;
	struct upalloc_region_info info;
	int exec_pipe[2], stdin_pipe[2];
	char *p = self->p;
	char status;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 1);
	ASSERT_EQ(0, pipe2(exec_pipe, O_CLOEXEC));
	ASSERT_EQ(0, pipe(stdin_pipe));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		close(exec_pipe[0]);
		dup2(stdin_pipe[0], 0);
		close(stdin_pipe[1]);
		if (null >= 0)
			dup2(null, 1);
		/* cat waits for EOF on stdin: the child lives on after exec. */
		execl("/bin/cat", "cat", (char *)NULL);
		status = 'e';
		if (write(exec_pipe[1], &status, 1) < 0)
			_exit(2);
		_exit(1);
	}
	close(exec_pipe[1]);
	close(stdin_pipe[0]);
	/* EOF on the close-on-exec pipe: the exec has happened. */
	ASSERT_EQ(0, read(exec_pipe[0], &status, 1)) TH_LOG("exec of /bin/cat failed");
	close(exec_pipe[0]);

	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(0, info.pages_shared);
	READ_STATS(&before);
	fill_pages(p, 0, NPAGES, 2);	/* nothing left to copy */
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, cow_copies));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_allocated));

	close(stdin_pipe[1]);
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 2));
}

TEST_F(fork, all_pages_freed_after_both_exit)
{
	struct upa_channel *ch = &self->ch;
	struct upa_stats before, mid, after;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	/* The fixture's region is already counted in "before". */
	READ_STATS(&before);
	fill_pages(p, 0, NPAGES, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *own;

		fill_pages(p, 0, NPAGES / 2, 2);	/* copies */
		own = upa_map(self->fd, PAGES(4), 0);
		CHILD_CHECK(own != NULL);
		fill_pages(own, 0, 4, 3);
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		_exit(0);	/* leaves both regions to exit */
	}
	ASSERT_EQ('c', WAIT_CHILD(ch));
	READ_STATS(&mid);
	/* Parent's 8, child's 4 copies and 4 own pages. */
	EXPECT_EQ(NPAGES + NPAGES / 2 + 4, STAT_DELTA(mid, before, pages_live));
	EXPECT_EQ(2, STAT_DELTA(mid, before, regions_live));
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));

	READ_STATS(&after);
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	self->p = NULL;
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(-1, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(STAT_DELTA(after, before, pages_allocated),
		  STAT_DELTA(after, before, pages_freed));
}

TEST_F(fork, parent_unmapping_first_leaves_child_snapshot_intact)
{
	struct upa_channel *ch = &self->ch;
	struct upa_stats before, after;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	READ_STATS(&before);
	fill_pages(p, 0, NPAGES, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'u');
		/* The parent's region is gone; the snapshot is still ours. */
		CHILD_CHECK(check_pages(p, 0, NPAGES, 1) == -1);
		fill_pages(p, 0, 2, 2);
		CHILD_CHECK(check_pages(p, 0, 2, 2) == -1);
		CHILD_CHECK(check_pages(p, 2, NPAGES - 2, 1) == -1);
		_exit(0);
	}
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	self->p = NULL;
	TELL_CHILD(ch, 'u');
	EXPECT_EQ(0, wait_child_ok(pid));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(-1, STAT_DELTA(after, before, regions_live));
}

TEST_F(fork, grandchild_sees_child_snapshot)
{
	struct upa_channel *ch = &self->ch;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, 4, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		pid_t gc;

		fill_pages(p, 0, 2, 2);
		gc = fork();
		CHILD_CHECK(gc >= 0);
		if (gc == 0) {
			CHILD_CHECK(WAIT_PARENT(ch) == 'g');
			CHILD_CHECK(check_pages(p, 0, 2, 2) == -1);
			CHILD_CHECK(check_pages(p, 2, 2, 1) == -1);
			fill_pages(p, 1, 2, 4);
			_exit(0);
		}
		fill_pages(p, 0, 1, 3);
		TELL_CHILD(ch, 'g');
		CHILD_CHECK(wait_child_ok(gc) == 0);
		CHILD_CHECK(check_pages(p, 0, 1, 3) == -1);
		CHILD_CHECK(check_pages(p, 1, 1, 2) == -1);
		CHILD_CHECK(check_pages(p, 2, 2, 1) == -1);
		_exit(0);
	}
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
}

/*
 * Fork while another thread populates (with the batched, fault-free
 * POPULATE of a region that never forked), decommits and writes the
 * region: the child's snapshot stays stable while the parent goes on, the
 * child's writes never reach the parent, and nothing leaks. A fresh
 * region each round, since a fork switches its region to the
 * copy-on-write mode for good.
 */
#define RACE_PAGES	64
#define RACE_ROUNDS	20
#define CHILD_MARK	0x7f	/* the populater's marks stay below 100 */

struct populater {
	int fd;
	char *p;
	volatile bool stop;
	int rounds, errors;
};

static void *populater_main(void *arg)
{
	struct populater *w = arg;
	uint64_t nr;

	while (!w->stop) {
		if (upa_decommit(w->fd, w->p, PAGES(RACE_PAGES), &nr) ||
		    upa_populate(w->fd, w->p, PAGES(RACE_PAGES), &nr))
			w->errors++;
		write_pages(w->p, 0, RACE_PAGES, (char)(w->rounds % 100));
		w->rounds++;
	}
	return NULL;
}

TEST_F(fork, forks_during_populate_keep_snapshots_isolated)
{
	struct upa_stats before, after;
	int round, bad_parent = 0;

	NEED_DEVICE();
	READ_STATS(&before);
	for (round = 0; round < RACE_ROUNDS; round++) {
		struct populater w = { .fd = self->fd };
		pthread_t thread;
		pid_t pid;
		size_t i;

		w.p = upa_map(self->fd, PAGES(RACE_PAGES), 0);
		ASSERT_NE(NULL, w.p);
		ASSERT_EQ(0, pthread_create(&thread, NULL, populater_main, &w));
		usleep(1000 + 500 * (round % 4));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			char a[RACE_PAGES], b[RACE_PAGES];

			for (i = 0; i < RACE_PAGES; i++)
				a[i] = w.p[PAGES(i)];
			usleep(2000);
			for (i = 0; i < RACE_PAGES; i++)
				b[i] = w.p[PAGES(i)];
			CHILD_CHECK(memcmp(a, b, sizeof(a)) == 0);
			write_pages(w.p, 0, RACE_PAGES, CHILD_MARK);
			for (i = 0; i < RACE_PAGES; i++)
				CHILD_CHECK(w.p[PAGES(i)] == CHILD_MARK);
			_exit(0);
		}
		EXPECT_EQ(0, wait_child_ok(pid));
		w.stop = true;
		ASSERT_EQ(0, pthread_join(thread, NULL));
		EXPECT_EQ(0, w.errors);
		for (i = 0; i < RACE_PAGES; i++)
			if (w.p[PAGES(i)] == CHILD_MARK)
				bad_parent++;
		ASSERT_EQ(0, munmap(w.p, PAGES(RACE_PAGES)));
	}
	EXPECT_EQ(0, bad_parent);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	/* Each fork clones the fixture's region too. */
	EXPECT_EQ(2 * RACE_ROUNDS, STAT_DELTA(after, before, forks));
}

/*
 * Bit 63 (present) of the /proc/self/pagemap entry of every page of
 * [p, p + PAGES(n)), one char '1' or '0' per page into map; 0 or -errno.
 * Reading pagemap walks the page tables without faulting anything in.
 */
static int pagemap_present(const char *p, size_t n, char *map)
{
	uint64_t entry;
	size_t i;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		off_t off = (off_t)((uintptr_t)(p + PAGES(i)) / page_size() *
				    sizeof(entry));

		if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry)) {
			close(fd);
			return -EIO;
		}
		map[i] = entry >> 63 ? '1' : '0';
	}
	map[n] = 0;
	close(fd);
	return 0;
}

#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19
#endif

/*
 * Issue 11, item 3: right after fork, before touching anything, the child
 * has no PTE of the region at all (pagemap), so that its first write
 * faults and gets a private copy; a PTE copied from the parent would write
 * into the parent's page. keep_on_fork clears VM_WIPEONFORK, with which the
 * module stops the core from copying PTEs, so that only ->open's zaps
 * stand between the parent's PTEs and the child.
 */
static void child_inherits_no_pte(struct __test_metadata *_metadata,
				  char *p, struct upa_channel *ch,
				  bool keep_on_fork)
{
	char map[NPAGES + 1];
	pid_t pid;

	if (keep_on_fork)
		ASSERT_EQ(0, madvise(p, PAGES(NPAGES), MADV_KEEPONFORK));
	fill_pages(p, 0, NPAGES, 1);
	/* The parent maps every page: pagemap can see PTEs. */
	ASSERT_EQ(0, pagemap_present(p, NPAGES, map));
	ASSERT_STREQ("11111111", map);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int err = pagemap_present(p, NPAGES, map);

		/* Before any fault of the child's. */
		if (err || strcmp(map, "00000000")) {
			fprintf(stderr, "# child's PTEs right after fork: %s (%d)\n",
				map, err);
			TELL_PARENT(ch, 'f');
			_exit(1);
		}
		fill_pages(p, 0, NPAGES, 3);
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		CHILD_CHECK(check_pages(p, 0, NPAGES, 3) == -1);
		_exit(0);
	}
	if (WAIT_CHILD(ch) != 'c') {
		wait_child(pid);
		ASSERT_TRUE(false) TH_LOG("the child inherited PTEs");
	}
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	fill_pages(p, 0, NPAGES, 2);
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 2));
}

TEST_F(fork, child_inherits_no_pte_of_parent)
{
	NEED_DEVICE();
	child_inherits_no_pte(_metadata, self->p, &self->ch, false);
}

TEST_F(fork, child_inherits_no_pte_of_parent_with_keeponfork)
{
	NEED_DEVICE();
	child_inherits_no_pte(_metadata, self->p, &self->ch, true);
}

UPALLOC_TEST_MAIN
