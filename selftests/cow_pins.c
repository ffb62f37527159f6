// SPDX-License-Identifier: GPL-2.0
/*
 * Description: references to a page that outlive a fork's sharing of it
 * (issue 11, item 2), after the scenarios of the kernel's mm selftest
 * cow.c, on device memory:
 * - vmsplice() in the child, then the child unmaps: the pipe keeps the
 *   snapshot, not the parent's later write;
 * - vmsplice() before fork, parent unmaps: the pipe keeps the contents of
 *   the time of the vmsplice, not the child's later write;
 * - an io_uring fixed buffer (a read/write long-term pin) registered
 *   before fork: the parent's CPU writes and the device's writes (a
 *   READ_FIXED from a file) both land in the parent's memory, and the
 *   child keeps its snapshot. SKIP where the kernel refuses to pin device
 *   memory (issue 11, item 7).
 */
#include <liburing.h>
#include <sys/uio.h>

#include "upalloc_test.h"

#define NPAGES 4

FIXTURE(cow_pins) {
	int fd;
	char *p;
	struct upa_channel ch;
};

FIXTURE_SETUP(cow_pins)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
	ASSERT_EQ(0, channel_open(&self->ch));
}

FIXTURE_TEARDOWN(cow_pins)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

/* Read a whole page from a pipe; 0 or -1. */
static int read_page(int fd, char *buf)
{
	size_t got = 0;
	ssize_t n;

	while (got < page_size()) {
		n = read(fd, buf + got, page_size() - got);
		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

TEST_F(cow_pins, vmsplice_then_unmap_in_child_keeps_snapshot)
{
	struct upa_channel *ch = &self->ch;
	char *p = self->p;
	int pipefd[2];
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, pipe(pipefd));
	memset(p, 'A', page_size());
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct iovec iov = { .iov_base = p, .iov_len = page_size() };
		char *buf = malloc(page_size());

		CHILD_CHECK(buf);
		CHILD_CHECK(vmsplice(pipefd[1], &iov, 1, 0) == (ssize_t)page_size());
		CHILD_CHECK(!munmap(p, PAGES(NPAGES)));
		TELL_PARENT(ch, 'u');
		CHILD_CHECK(WAIT_PARENT(ch) == 'w');
		CHILD_CHECK(!read_page(pipefd[0], buf));
		CHILD_CHECK(buf[0] == 'A' && buf[page_size() - 1] == 'A');
		_exit(0);
	}
	ASSERT_EQ('u', WAIT_CHILD(ch));
	memset(p, 'B', page_size());
	TELL_CHILD(ch, 'w');
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ('B', p[0]);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(cow_pins, vmsplice_before_fork_then_unmap_in_parent_keeps_contents)
{
	struct iovec iov = { .iov_base = self->p, .iov_len = page_size() };
	struct upa_channel *ch = &self->ch;
	char *p = self->p, *buf;
	int pipefd[2];
	pid_t pid;

	NEED_DEVICE();
	buf = malloc(page_size());
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, pipe(pipefd));
	memset(p, 'A', page_size());
	ASSERT_EQ((ssize_t)page_size(), vmsplice(pipefd[1], &iov, 1, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'u');
		memset(p, 'C', page_size());
		TELL_PARENT(ch, 'w');
		_exit(0);
	}
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	self->p = NULL;
	TELL_CHILD(ch, 'u');
	ASSERT_EQ('w', WAIT_CHILD(ch));
	EXPECT_EQ(0, wait_child_ok(pid));
	ASSERT_EQ(0, read_page(pipefd[0], buf));
	EXPECT_EQ('A', buf[0]);
	EXPECT_EQ('A', buf[page_size() - 1]);
	free(buf);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(cow_pins, fixed_buffer_pinned_before_fork_stays_parents)
{
	char tmpl[] = "/tmp/upalloc-cow-pins.XXXXXX";
	struct upa_channel *ch = &self->ch;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	struct iovec iov;
	char *p = self->p, *data;
	int file, err;
	pid_t pid;

	NEED_DEVICE();
	data = malloc(page_size());
	ASSERT_NE(NULL, data);
	memset(data, 'F', page_size());
	file = mkstemp(tmpl);
	ASSERT_LE(0, file);
	unlink(tmpl);
	ASSERT_EQ((ssize_t)page_size(), pwrite(file, data, page_size(), 0));

	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	memset(p, 'A', page_size());
	iov.iov_base = p;
	iov.iov_len = page_size();
	err = io_uring_register_buffers(&ring, &iov, 1);
	/* 6.1's io_uring refuses every file-backed buffer (kernel rule). */
	if (err == -EOPNOTSUPP) {
		io_uring_queue_exit(&ring);
		close(file);
		SKIP(return, "io_uring fixed buffer on device memory: %s",
		     strerror(-err));
	}
	ASSERT_EQ(0, err);

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'r');
		/* The snapshot of fork time, nothing the parent did later. */
		CHILD_CHECK(p[0] == 'A' && p[page_size() - 1] == 'A');
		_exit(0);
	}
	/* A CPU write, then the device writes through the pin. */
	memset(p, 'P', page_size());
	sqe = io_uring_get_sqe(&ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_read_fixed(sqe, file, p, page_size(), 0, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ((int)page_size(), cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	EXPECT_EQ('F', p[0]);
	EXPECT_EQ('F', p[page_size() - 1]);
	TELL_CHILD(ch, 'r');
	EXPECT_EQ(0, wait_child_ok(pid));
	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	close(file);
	free(data);
}

UPALLOC_TEST_MAIN
