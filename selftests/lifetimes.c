// SPDX-License-Identifier: GPL-2.0
/*
 * Description: lifetimes (issue 2, item 6). Closing the fd keeps mappings
 * valid; process exit and SIGKILL in the middle of faulting free every page
 * and region; rmmod (delete_module with O_NONBLOCK) is refused while an fd or
 * a mapping exists; partial munmap, partial mprotect and mremap are refused
 * with an error and leave the region intact (the module's documented choice).
 */
#include <pthread.h>
#include <sys/syscall.h>

#include "upalloc_test.h"

#define NPAGES 8

FIXTURE(lifetimes) {
	int fd;
};

FIXTURE_SETUP(lifetimes)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
}

FIXTURE_TEARDOWN(lifetimes)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* The region at p is whole: same start, length and contents as before. */
static void expect_region_intact(struct __test_metadata *_metadata, int fd,
				 char *p, size_t npages, uint64_t seed)
{
	struct upalloc_region_info info;

	ASSERT_EQ(0, upa_region_info(fd, p, &info));
	EXPECT_EQ((uintptr_t)p, info.start);
	EXPECT_EQ(PAGES(npages), info.len);
	EXPECT_EQ(npages, info.pages_present);
	EXPECT_EQ(-1, check_pages(p, 0, npages, seed));
	/* Still writable everywhere. */
	fill_pages(p, 0, npages, seed);
}

TEST_F(lifetimes, close_fd_keeps_mapping)
{
	struct upa_stats before, after;
	struct upalloc_region_info info;
	char *p;
	int fd2;

	NEED_DEVICE();
	READ_STATS(&before);
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 4, 1);
	ASSERT_EQ(0, close(self->fd));
	self->fd = -1;

	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
	fill_pages(p, 4, 4, 2);		/* new faults after the close */
	EXPECT_EQ(-1, check_pages(p, 4, 4, 2));

	/* Any other descriptor reaches the region. */
	fd2 = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, upa_region_info(fd2, p, &info));
	EXPECT_EQ(NPAGES, info.pages_present);
	close(fd2);

	READ_STATS(&after);
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, pages_live));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
}

TEST_F(lifetimes, process_exit_frees_everything)
{
	struct upa_stats before, after;
	pid_t pid;

	NEED_DEVICE();
	READ_STATS(&before);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *a = upa_map(self->fd, PAGES(32), 0);
		char *h = upa_map_heap(self->fd, PAGES(64));

		CHILD_CHECK(a && h);
		fill_pages(a, 0, 32, 1);
		CHILD_CHECK(upa_set_brk(self->fd, h, PAGES(16), NULL) == 0);
		fill_pages(h, 0, 10, 2);
		_exit(0);	/* no munmap: exit must clean up */
	}
	EXPECT_EQ(0, wait_child_ok(pid));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(42, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(2, STAT_DELTA(after, before, regions_destroyed));
}

struct faulter {
	char *p;
	int fd;
	size_t npages;
	int id;
	volatile int *progress;
};

/* Fault, decommit and populate forever, until the process is killed. */
static void *fault_forever(void *arg)
{
	struct faulter *f = arg;
	uint64_t nr;

	for (;;) {
		size_t pg;

		if (f->id == 0) {
			upa_populate(f->fd, f->p, PAGES(f->npages), &nr);
			upa_decommit(f->fd, f->p, PAGES(f->npages), &nr);
			continue;
		}
		for (pg = f->id; pg < f->npages; pg += 3)
			f->p[PAGES(pg)] = 1;
		__atomic_fetch_add(f->progress, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

TEST_F(lifetimes, sigkill_during_faulting_frees_everything)
{
	struct upa_stats before, after;
	int ready[2];
	pid_t pid;
	int status;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static volatile int progress;
		struct faulter f[4];
		pthread_t t;
		size_t n = 2048;
		char *p = upa_map(self->fd, PAGES(n), 0);
		char *h = upa_map_heap(self->fd, PAGES(n));
		int i;

		CHILD_CHECK(p && h);
		CHILD_CHECK(upa_set_brk(self->fd, h, PAGES(n / 2), NULL) == 0);
		for (i = 0; i < 4; i++) {
			f[i] = (struct faulter){ .p = i % 2 ? h : p, .fd = self->fd,
						 .npages = i % 2 ? n / 2 : n,
						 .id = i, .progress = &progress };
			CHILD_CHECK(pthread_create(&t, NULL, fault_forever, &f[i]) == 0);
		}
		while (progress < 2)
			usleep(1000);
		sync_send(ready[1], 'r');
		for (;;)
			pause();
	}
	close(ready[1]);
	ASSERT_EQ('r', sync_recv(ready[0]));
	usleep(100 * 1000);	/* let the faults, populates and decommits run */
	ASSERT_EQ(0, kill(pid, SIGKILL));
	status = wait_child(pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	close(ready[0]);

	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(STAT_DELTA(after, before, pages_allocated),
		  STAT_DELTA(after, before, pages_freed));
}

/* delete_module(2) with O_NONBLOCK: 0 or -errno. */
static int try_unload_module(void)
{
	return syscall(SYS_delete_module, "upalloc", O_NONBLOCK) ? -errno : 0;
}

TEST_F(lifetimes, rmmod_refused_while_fd_open)
{
	NEED_DEVICE();
	if (geteuid())
		SKIP(return, "needs root (CAP_SYS_MODULE)");
	/* An open descriptor pins the module: EWOULDBLOCK (EAGAIN). */
	EXPECT_EQ(-EAGAIN, try_unload_module());
	ASSERT_EQ(0, access(UPALLOC_DEVICE_PATH, F_OK));
}

TEST_F(lifetimes, rmmod_refused_while_mapped)
{
	char *p;
	int ret;

	NEED_DEVICE();
	if (geteuid())
		SKIP(return, "needs root (CAP_SYS_MODULE)");
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	close(self->fd);
	self->fd = -1;

	/* Only the mapping is left; it must pin the module just the same. */
	ret = try_unload_module();
	EXPECT_EQ(-EAGAIN, ret);
	if (ret == 0)
		SKIP(return, "module unloaded while mapped: not touching the mapping");
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	fill_pages(p, 0, NPAGES, 2);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

TEST_F(lifetimes, partial_munmap_is_refused)
{
	struct upa_stats before, after;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	READ_STATS(&before);

	errno = 0;
	EXPECT_EQ(-1, munmap(p + PAGES(2), PAGES(1)));	/* middle */
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, munmap(p, PAGES(1)));		/* head */
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, munmap(p + PAGES(NPAGES - 1), PAGES(1)));	/* tail */
	EXPECT_EQ(EINVAL, errno);

	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_destroyed));
	expect_region_intact(_metadata, self->fd, p, NPAGES, 1);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

TEST_F(lifetimes, munmap_covering_whole_region_works)
{
	struct upa_stats before, after;
	char *area, *p;

	NEED_DEVICE();
	/* Anonymous guard pages on both sides of the region. */
	area = mmap(NULL, PAGES(NPAGES + 2), PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	READ_STATS(&before);
	p = mmap(area + PAGES(1), PAGES(NPAGES), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, self->fd, 0);
	ASSERT_EQ(area + PAGES(1), p);
	fill_pages(p, 0, NPAGES, 1);
	/* Splitting the neighbours is fine; the region goes away whole. */
	ASSERT_EQ(0, munmap(area, PAGES(NPAGES + 2)));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(1, STAT_DELTA(after, before, regions_destroyed));
}

TEST_F(lifetimes, partial_mprotect_is_refused)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);

	errno = 0;
	EXPECT_EQ(-1, mprotect(p + PAGES(1), PAGES(2), PROT_READ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mprotect(p, PAGES(1), PROT_READ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mprotect(p + PAGES(NPAGES - 1), PAGES(1), PROT_NONE));
	EXPECT_EQ(EINVAL, errno);
	expect_region_intact(_metadata, self->fd, p, NPAGES, 1);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

TEST_F(lifetimes, whole_region_mprotect_works)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	/* No split is needed for the whole region. */
	ASSERT_EQ(0, mprotect(p, PAGES(NPAGES), PROT_READ));
	EXPECT_EQ(SIGSEGV, upa_probe_write(p, 1, NULL));
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 1));
	ASSERT_EQ(0, mprotect(p, PAGES(NPAGES), PROT_READ | PROT_WRITE));
	expect_region_intact(_metadata, self->fd, p, NPAGES, 1);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

/* madvise on part of a region would split it too. */
TEST_F(lifetimes, partial_madvise_is_refused)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	errno = 0;
	EXPECT_EQ(-1, madvise(p + PAGES(1), PAGES(2), MADV_DONTFORK));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, madvise(p, PAGES(1), MADV_DONTDUMP));
	EXPECT_EQ(EINVAL, errno);
	/* Whole-region madvise is fine (but a VM_SPECIAL VMA stays DONTDUMP). */
	EXPECT_EQ(0, madvise(p, PAGES(NPAGES), MADV_DONTDUMP));
	EXPECT_EQ(-1, madvise(p, PAGES(NPAGES), MADV_DODUMP));
	EXPECT_EQ(EINVAL, errno);
	expect_region_intact(_metadata, self->fd, p, NPAGES, 1);
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

/* kB of locked memory of this process (VmLck in /proc/self/status), or -1. */
static long vmlck_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * VM_SPECIAL mappings are never mlocked (driver pages are not on the LRU):
 * mlock succeeds and faults the pages in like MAP_POPULATE, but nothing is
 * locked, and munlock and munmap free everything as usual.
 */
TEST_F(lifetimes, mlock_prefaults_but_never_locks)
{
	struct upa_stats before, after;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 2, 1);
	READ_STATS(&before);
	EXPECT_EQ(0, mlock(p, PAGES(NPAGES)));
	EXPECT_EQ(0, vmlck_kb());
	READ_STATS(&after);
	EXPECT_EQ(NPAGES - 2, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(NPAGES, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_pages(p, 0, 2, 1));
	EXPECT_EQ(-1, check_zero_pages(p, 2, NPAGES - 2));
	EXPECT_EQ(0, munlock(p, PAGES(NPAGES)));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
	READ_STATS(&after);
	EXPECT_EQ(-2, STAT_DELTA(after, before, pages_live));
}

TEST_F(lifetimes, many_regions_are_tracked)
{
	struct upalloc_proc_stats ps;
	struct upa_stats before, after;
	enum { N = 300 };
	static char *r[N];
	int i;

	NEED_DEVICE();
	READ_STATS(&before);
	for (i = 0; i < N; i++) {
		r[i] = upa_map(self->fd, PAGES(1 + i % 3), i % 2 ? MAP_NORESERVE : 0);
		ASSERT_NE(NULL, r[i]);
		if (i % 2)
			ASSERT_EQ(0, upa_set_brk(self->fd, r[i], PAGES(1), NULL));
		r[i][0] = (char)i;
	}
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(N, ps.regions_live);
	EXPECT_EQ(N, ps.pages_live);
	for (i = 0; i < N; i++) {
		EXPECT_EQ((char)i, r[i][0]);
		ASSERT_EQ(0, munmap(r[i], PAGES(1 + i % 3)));
	}
	READ_STATS(&after);
	EXPECT_EQ(N, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
}

TEST_F(lifetimes, mremap_is_refused)
{
	struct upa_stats before, after;
	char *p, *target, *q;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, NPAGES, 1);
	target = mmap(NULL, PAGES(NPAGES * 2), PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, target);
	READ_STATS(&before);

	/* Growing: the region's length is fixed (VM_DONTEXPAND: EFAULT). */
	errno = 0;
	q = mremap(p, PAGES(NPAGES), PAGES(NPAGES * 2), 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);
	q = mremap(p, PAGES(NPAGES), PAGES(NPAGES * 2), MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);

	/* Shrinking would split the region. */
	q = mremap(p, PAGES(NPAGES), PAGES(NPAGES / 2), 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EINVAL, errno);

	/* Moving it whole. */
	q = mremap(p, PAGES(NPAGES), PAGES(NPAGES),
		   MREMAP_MAYMOVE | MREMAP_FIXED, target);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EINVAL, errno);

	/* Moving a part of it. */
	q = mremap(p + PAGES(1), PAGES(2), PAGES(2),
		   MREMAP_MAYMOVE | MREMAP_FIXED, target);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EINVAL, errno);

	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	expect_region_intact(_metadata, self->fd, p, NPAGES, 1);
	munmap(target, PAGES(NPAGES * 2));
	ASSERT_EQ(0, munmap(p, PAGES(NPAGES)));
}

UPALLOC_TEST_MAIN
