// SPDX-License-Identifier: GPL-2.0
/*
 * Description: isolation (issue 2, item 8). A device fd passed to another
 * process with SCM_RIGHTS lets it create and manage only its own regions:
 * commands name regions by (calling process, address), so the same address
 * in another process, an anonymous mapping or an unmapped address never
 * reaches someone else's pages. /proc/upalloc/processes shows a non-root
 * reader only its own processes, root sees every process.
 */
#include <sys/socket.h>

#include "upalloc_test.h"

#define NPAGES 4
#define NOBODY 65534

FIXTURE(isolation) {
	int fd;
	struct upa_channel ch;
};

FIXTURE_SETUP(isolation)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	ASSERT_EQ(0, channel_open(&self->ch));
}

FIXTURE_TEARDOWN(isolation)
{
	if (self->fd >= 0) {
		close(self->fd);
		channel_close(&self->ch);
	}
}

static int send_fd(int sock, int fd)
{
	char data = 'f';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	memset(&u, 0, sizeof(u));
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/*
 * The child is forked before the parent creates its region, so nothing of
 * the parent's region exists in it: it only has the received descriptor and
 * the region's address.
 */
TEST_F(isolation, scm_rights_fd_creates_only_own_regions)
{
	struct upa_channel *ch = &self->ch;
	struct upalloc_region_info info;
	int sv[2];
	char *p;
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct upalloc_proc_stats ps;
		char *theirs, *mine;
		uint64_t nr;
		int fd;

		close(self->fd);	/* only the passed descriptor is used */
		fd = recv_fd(sv[1]);
		CHILD_CHECK(fd >= 0);
		CHILD_CHECK(read(ch->to_child[0], &theirs, sizeof(theirs)) == sizeof(theirs));

		/* Nothing is mapped at the parent's address in this process. */
		CHILD_CHECK(upa_region_info(fd, theirs, &info) == -ENOMEM);
		CHILD_CHECK(upa_decommit(fd, theirs, PAGES(NPAGES), &nr) == -ENOMEM);
		CHILD_CHECK(upa_populate(fd, theirs, PAGES(NPAGES), &nr) == -ENOMEM);
		CHILD_CHECK(upa_set_brk(fd, theirs, 0, NULL) == -ENOMEM);

		/* A region of its own, even at the very same address. */
		mine = mmap(theirs, PAGES(NPAGES), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
		CHILD_CHECK(mine == theirs);
		CHILD_CHECK(check_zero_pages(mine, 0, NPAGES) == -1);
		fill_pages(mine, 0, NPAGES, 2);
		CHILD_CHECK(upa_region_info(fd, mine, &info) == 0);
		CHILD_CHECK(info.pages_present == NPAGES && info.flags == 0);
		CHILD_CHECK(upa_decommit(fd, mine, PAGES(2), &nr) == 0 && nr == 2);
		CHILD_CHECK(upa_set_brk(fd, mine, PAGES(1), NULL) == 0);
		CHILD_CHECK(upa_proc_stats(fd, &ps) == 0);
		CHILD_CHECK(ps.regions_live == 1 && ps.pages_live == 0);
		CHILD_CHECK(munmap(mine, PAGES(NPAGES)) == 0);
		_exit(0);
	}
	close(sv[1]);
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	ASSERT_EQ(0, send_fd(sv[0], self->fd));
	ASSERT_EQ(sizeof(p), write(ch->to_child[1], &p, sizeof(p)));
	EXPECT_EQ(0, wait_child_ok(pid));
	close(sv[0]);

	/* The parent's region saw none of it. */
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ(NPAGES, info.pages_present);
	EXPECT_EQ(PAGES(NPAGES), info.brk);
	EXPECT_EQ(0, info.pages_shared);
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

/* A command on an address that is not the caller's upalloc region fails. */
static void expect_all_commands_fail(struct __test_metadata *_metadata, int fd,
				     void *addr, int err)
{
	struct upalloc_region_info info;
	uint64_t nr;

	EXPECT_EQ(err, upa_region_info(fd, addr, &info));
	EXPECT_EQ(err, upa_decommit(fd, addr, PAGES(1), &nr));
	EXPECT_EQ(err, upa_populate(fd, addr, PAGES(1), &nr));
	EXPECT_EQ(err, upa_set_brk(fd, addr, 0, NULL));
	EXPECT_EQ(err, upa_query_brk(fd, addr, NULL));
}

TEST_F(isolation, ioctl_on_another_process_region_address_fails)
{
	struct upa_channel *ch = &self->ch;
	char *p;
	pid_t pid;

	NEED_DEVICE();
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *theirs;

		CHILD_CHECK(read(ch->to_child[0], &theirs, sizeof(theirs)) == sizeof(theirs));
		/* Anonymous memory where the parent has its region. */
		CHILD_CHECK(mmap(theirs, PAGES(NPAGES), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
				 -1, 0) == theirs);
		memset(theirs, 1, PAGES(NPAGES));
		{
			struct upalloc_region_info info;
			uint64_t nr;

			CHILD_CHECK(upa_region_info(self->fd, theirs, &info) == -EINVAL);
			CHILD_CHECK(upa_decommit(self->fd, theirs, PAGES(NPAGES), &nr) == -EINVAL);
			CHILD_CHECK(upa_populate(self->fd, theirs, PAGES(NPAGES), &nr) == -EINVAL);
			CHILD_CHECK(upa_set_brk(self->fd, theirs, 0, NULL) == -EINVAL);
		}
		/* The anonymous memory itself is left alone. */
		CHILD_CHECK(theirs[0] == 1 && theirs[PAGES(NPAGES) - 1] == 1);
		_exit(0);
	}
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	ASSERT_EQ(sizeof(p), write(ch->to_child[1], &p, sizeof(p)));
	EXPECT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(NPAGES, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

TEST_F(isolation, ioctl_on_non_upalloc_address_fails)
{
	char *anon, *hole;
	int stack_var = 0;
	int memfd;
	char *shm;

	NEED_DEVICE();
	/* Anonymous private memory. */
	anon = mmap(NULL, PAGES(2), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	expect_all_commands_fail(_metadata, self->fd, anon, -EINVAL);

	/* Another file's shared mapping. */
	memfd = memfd_create("not-upalloc", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, PAGES(2)));
	shm = mmap(NULL, PAGES(2), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(MAP_FAILED, shm);
	expect_all_commands_fail(_metadata, self->fd, shm, -EINVAL);

	/* The stack and the program text. */
	expect_all_commands_fail(_metadata, self->fd,
				 (void *)((uintptr_t)&stack_var & ~(page_size() - 1)),
				 -EINVAL);
	expect_all_commands_fail(_metadata, self->fd,
				 (void *)((uintptr_t)&expect_all_commands_fail &
					  ~(page_size() - 1)), -EINVAL);

	/* A hole: nothing mapped at all. */
	hole = mmap(NULL, PAGES(1), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, PAGES(1)));
	expect_all_commands_fail(_metadata, self->fd, hole, -ENOMEM);

	munmap(shm, PAGES(2));
	close(memfd);
	munmap(anon, PAGES(2));
}

TEST_F(isolation, ioctl_through_any_device_fd_reaches_own_region)
{
	struct upalloc_region_info info;
	uint64_t nr;
	char *p;
	int fd2;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	fd2 = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, upa_region_info(fd2, p, &info));
	EXPECT_EQ((uintptr_t)p, info.start);
	ASSERT_EQ(0, upa_decommit(fd2, p, PAGES(1), &nr));
	EXPECT_EQ(1, nr);
	EXPECT_EQ(NPAGES - 1, upa_pages_present(self->fd, p));
	close(fd2);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

/* pids listed in /proc/upalloc/processes; returns the count, -1 on error. */
static int processes_pids(pid_t *pids, int max)
{
	char line[512];
	int n = 0;
	FILE *f;

	f = fopen(UPA_PROCESSES_PATH, "re");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {	/* header */
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		int pid;

		if (sscanf(line, "%d", &pid) == 1 && n < max)
			pids[n++] = pid;
	}
	fclose(f);
	return n;
}

static bool has_pid(const pid_t *pids, int n, pid_t pid)
{
	int i;

	for (i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

TEST_F(isolation, processes_file_as_nonroot_shows_only_own_lines)
{
	struct upa_channel *ch = &self->ch;
	pid_t pids[64];
	char *p;
	pid_t pid;
	int n;

	NEED_DEVICE();
	if (geteuid())
		SKIP(return, "needs root to switch to another uid");
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, 1, 1);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *mine;
		int fd;

		/* Drop the inherited region: the child lists only its own. */
		CHILD_CHECK(munmap(p, PAGES(NPAGES)) == 0);
		CHILD_CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
		CHILD_CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
		/* No region yet: no line at all. */
		n = processes_pids(pids, 64);
		CHILD_CHECK(n == 0);
		fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(fd >= 0);
		mine = upa_map(fd, PAGES(NPAGES), 0);
		CHILD_CHECK(mine != NULL);
		write_pages(mine, 0, 2, 1);
		n = processes_pids(pids, 64);
		CHILD_CHECK(n == 1);
		CHILD_CHECK(pids[0] == getpid());
		TELL_PARENT(ch, 'm');
		CHILD_CHECK(WAIT_PARENT(ch) == 'x');
		_exit(0);
	}
	ASSERT_EQ('m', WAIT_CHILD(ch));
	/* Root sees both. */
	n = processes_pids(pids, 64);
	ASSERT_LE(2, n);
	EXPECT_TRUE(has_pid(pids, n, getpid()));
	EXPECT_TRUE(has_pid(pids, n, pid));
	TELL_CHILD(ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	/* Gone from the list once the regions are gone. */
	n = processes_pids(pids, 64);
	ASSERT_LE(0, n);
	EXPECT_FALSE(has_pid(pids, n, getpid()));
	EXPECT_FALSE(has_pid(pids, n, pid));
}

UPALLOC_TEST_MAIN
