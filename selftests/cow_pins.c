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
 *   READ_FIXED from a file) both land in the parent's memory, what the
 *   device reads through it (a WRITE_FIXED) is the parent's latest data,
 *   and the child keeps its snapshot. SKIP where the kernel refuses to pin
 *   device memory (issue 11, item 7);
 * - an O_DIRECT read in flight across fork (the device writes after the
 *   fork): the data lands in the parent's memory, also when the parent
 *   writes the page meanwhile, never in the child's snapshot;
 * - an O_DIRECT write in flight across fork (the device reads after the
 *   fork), the parent unmapping and the child writing meanwhile: the
 *   device gets the parent's data.
 * The O_DIRECT scenarios keep the I/O in flight with a dm-delay target
 * over a brd RAM disk (root, modprobe and dmsetup in the guest; SKIP
 * without them, a failure under UPALLOC_STRICT but on the debug kernel of
 * make check-debug, which has neither driver). cow.c's R/O pin
 * scenarios need CONFIG_GUP_TEST (the gup_test device), which Debian's
 * kernels lack; the O_DIRECT write is the read-only pin here.
 */
#include <liburing.h>
#include <pthread.h>
#include <sys/utsname.h>
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

TEST_F(cow_pins, fixed_buffer_pinned_before_fork_sends_parents_later_data)
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
	file = mkstemp(tmpl);
	ASSERT_LE(0, file);
	unlink(tmpl);

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
		/* The child's own write: never what the parent's pin sends. */
		memset(p, 'C', page_size());
		TELL_PARENT(ch, 'c');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		CHILD_CHECK(p[0] == 'C' && p[page_size() - 1] == 'C');
		_exit(0);
	}
	ASSERT_EQ('c', WAIT_CHILD(ch));
	memset(p, 'P', page_size());
	/* The device reads the page through the pin. */
	sqe = io_uring_get_sqe(&ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_write_fixed(sqe, file, p, page_size(), 0, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ((int)page_size(), cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	ASSERT_EQ((ssize_t)page_size(), pread(file, data, page_size(), 0));
	EXPECT_EQ('P', data[0]);
	EXPECT_EQ('P', data[page_size() - 1]);
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	close(file);
	free(data);
}

/* ---- O_DIRECT in flight across fork ------------------------------------- */

/* Completion delay of the dm-delay target: the window for the fork. */
#define DELAY_MS	1500
#define RAM_DISK	"/dev/ram0"
/* A design skip (tools/ktap-count), also under UPALLOC_STRICT. */
#define DEBUG_KERNEL_SKIP	"the debug kernel has no brd or dm-delay"

struct delay_dev {
	char name[64];
	char path[96];
	bool made;
};

/* Read or write the first page of RAM_DISK, bypassing its page cache. */
static int ram_disk_page(char *buf, bool write)
{
	ssize_t n;
	int fd;

	fd = open(RAM_DISK, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write ? pwrite(fd, buf, page_size(), 0) :
		    pread(fd, buf, page_size(), 0);
	close(fd);
	return n == (ssize_t)page_size() ? 0 : -1;
}

/*
 * A block device whose I/O completes DELAY_MS after it was submitted: a
 * dm-delay target over a brd RAM disk, whose data moves when the delayed
 * bio reaches the RAM disk. Returns NULL, or why it cannot be had.
 */
static const char *delay_dev_make(struct delay_dev *d)
{
	char cmd[256];

	struct utsname u;

	d->made = false;
	if (geteuid())
		return "needs root";
	if (system("modprobe brd rd_nr=1 rd_size=1024 && modprobe dm_delay")) {
		/* tools/debug-kernel/debug.config builds neither. */
		if (!uname(&u) && strstr(u.release, "-upalloc-debug") &&
		    system("modprobe -nq brd && modprobe -nq dm_delay"))
			return DEBUG_KERNEL_SKIP;
		return "cannot load brd and dm_delay";
	}
	snprintf(d->name, sizeof(d->name), "upalloc-delay-%d", getpid());
	snprintf(d->path, sizeof(d->path), "/dev/mapper/%s", d->name);
	snprintf(cmd, sizeof(cmd),
		 "echo '0 8 delay %s 0 %d' | dmsetup create %s --noudevsync && dmsetup mknodes %s",
		 RAM_DISK, DELAY_MS, d->name, d->name);
	if (system(cmd))
		return "dmsetup cannot make a dm-delay target";
	d->made = true;
	return NULL;
}

static void delay_dev_remove(struct delay_dev *d)
{
	char cmd[160];

	if (!d->made)
		return;
	snprintf(cmd, sizeof(cmd), "dmsetup remove --noudevsync %s", d->name);
	if (system(cmd))
		fprintf(stderr, "# cannot remove %s\n", d->name);
}

#define NEED_DELAY_DEV(d) do {						\
	const char *why = delay_dev_make(d);				\
	if (why) {							\
		if (strcmp(why, DEBUG_KERNEL_SKIP))			\
			ASSERT_EQ(NULL, getenv("UPALLOC_STRICT"))	\
				TH_LOG("%s", why);			\
		SKIP(return, "%s", why);				\
	}								\
} while (0)

/* One O_DIRECT transfer of a page, in a thread. */
struct direct_io {
	const char *path;
	char *buf;
	bool write;
	volatile bool started, done;
	ssize_t ret;
	int err;
};

static void *direct_io_run(void *arg)
{
	struct direct_io *io = arg;
	int fd;

	fd = open(io->path, (io->write ? O_WRONLY : O_RDONLY) | O_DIRECT |
		  O_CLOEXEC);
	io->ret = -1;
	io->err = errno;
	if (fd >= 0) {
		io->started = true;
		io->ret = io->write ? pwrite(fd, io->buf, page_size(), 0) :
				      pread(fd, io->buf, page_size(), 0);
		io->err = errno;
		close(fd);
	}
	io->done = true;
	return NULL;
}

/* Start io and return once it is in flight (pinned, data not moved). */
static int direct_io_start(struct direct_io *io, pthread_t *th)
{
	if (pthread_create(th, NULL, direct_io_run, io))
		return -1;
	while (!io->started && !io->done)
		usleep(1000);
	/* The pages are pinned at submission, the data moves DELAY_MS later. */
	usleep(DELAY_MS / 5 * 1000);
	return io->done ? -1 : 0;
}

/*
 * The O_DIRECT scenarios' start: the RAM disk's page holds disk_fill, the
 * region's first page mem_fill, and a transfer of that page (a read into
 * it, or a write from it) is left in flight. *blk is the caller's to free.
 */
static void start_odirect_in_flight(struct __test_metadata *_metadata,
				    struct direct_io *io, pthread_t *th,
				    const struct delay_dev *dev, char *page,
				    char **blk, char disk_fill, char mem_fill)
{
	ASSERT_EQ(0, posix_memalign((void **)blk, page_size(), page_size()));
	memset(*blk, disk_fill, page_size());
	ASSERT_EQ(0, ram_disk_page(*blk, true));
	memset(page, mem_fill, page_size());
	io->path = dev->path;
	io->buf = page;
	ASSERT_EQ(0, direct_io_start(io, th))
		TH_LOG("the %s did not stay in flight: %s",
		       io->write ? "write" : "read", strerror(io->err));
}

/*
 * An O_DIRECT read into the page is in flight at fork: the device writes
 * after the fork, into the parent's memory, also when the parent writes
 * another part of the page meanwhile (a copy-on-write there would leave
 * the device writing into the child's page: the parent would lose the
 * data). The child keeps its snapshot of fork time.
 */
TEST_F(cow_pins, odirect_read_in_flight_at_fork_lands_in_parent)
{
	struct direct_io io = { 0 };
	struct upa_channel *ch = &self->ch;
	struct delay_dev dev;
	char *p = self->p, *blk;
	pthread_t th;
	pid_t pid;

	NEED_DEVICE();
	NEED_DELAY_DEV(&dev);
	start_odirect_in_flight(_metadata, &io, &th, &dev, p, &blk, 'D', 'A');

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		CHILD_CHECK(WAIT_PARENT(ch) == 'r');
		/* Its snapshot of fork time, not the device's data. */
		CHILD_CHECK(p[0] == 'A' && p[1] == 'A' &&
			    p[page_size() - 1] == 'A');
		_exit(0);
	}
	/* A racy write, but the device's bytes must land in this page. */
	p[0] = 'P';
	pthread_join(th, NULL);
	EXPECT_EQ((ssize_t)page_size(), io.ret) TH_LOG("%s", strerror(io.err));
	EXPECT_EQ('D', p[1]);
	EXPECT_EQ('D', p[page_size() - 1]);
	TELL_CHILD(ch, 'r');
	EXPECT_EQ(0, wait_child_ok(pid));
	free(blk);
	delay_dev_remove(&dev);
}

/*
 * An O_DIRECT write from the page (a read-only pin) is in flight at fork;
 * the parent unmaps, leaving the page to the child, which writes it: the
 * device reads after that and must get the parent's data, not the
 * child's (cow.c's "vmsplice() before fork" with a pin in place of the
 * pipe).
 */
TEST_F(cow_pins, odirect_write_in_flight_at_fork_then_unmap_in_parent_sends_parents_data)
{
	struct direct_io io = { 0 };
	struct upa_channel *ch = &self->ch;
	struct delay_dev dev;
	char *p = self->p, *blk;
	pthread_t th;
	pid_t pid;

	NEED_DEVICE();
	NEED_DELAY_DEV(&dev);
	io.write = true;
	start_odirect_in_flight(_metadata, &io, &th, &dev, p, &blk, 'Z', 'A');

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
	pthread_join(th, NULL);
	EXPECT_EQ((ssize_t)page_size(), io.ret) TH_LOG("%s", strerror(io.err));
	ASSERT_EQ(0, ram_disk_page(blk, false));
	EXPECT_EQ('A', blk[0]);
	EXPECT_EQ('A', blk[page_size() - 1]);
	free(blk);
	delay_dev_remove(&dev);
}

UPALLOC_TEST_MAIN
