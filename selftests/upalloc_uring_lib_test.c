// SPDX-License-Identifier: GPL-2.0
/*
 * Description: libupalloc's io_uring paths (userlib/uring.c, issue 6 items
 * 2-4) against the real module: decommits are deferred and submitted in
 * batches, flush and reclaim settle them exactly (a cancelled decommit
 * keeps the contents, a completed one reads zero), populate-ahead fills the
 * next pages in the background so that touching them takes no fault, a
 * fork child never uses the parent's ring and redoes what was pending, and
 * every path falls back to ioctls with the same results when io_uring is
 * switched off (UPALLOC_URING=0, seccomp, io_uring_disabled).
 *
 * Each TEST runs in its own forked child, so the library's lazy, once per
 * process configuration sees the environment the test sets first.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "upalloc_test.h"
#include "../userlib/uring.h"

/*
 * uring.c is linked alone here: glue.h's locks register the library's
 * fork handler (arena.c) once the process has threads; there is none.
 */
int upa_fork_ready = 1;
void upa_fork_register_threaded(void);
void upa_fork_register_threaded(void)
{
}

FIXTURE(uring_lib) {
	int fd;
};

FIXTURE_SETUP(uring_lib)
{
	struct upalloc_version v = { 0 };

	OPEN_DEVICE_OR_SKIP(&self->fd);
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, &v));
	if (!(v.features & UPALLOC_FEAT_URING_CMD))
		SKIP(return, "module lacks UPALLOC_FEAT_URING_CMD");
}

#define IO_URING_DISABLED_PATH "/proc/sys/kernel/io_uring_disabled"
/* The sysctl's value before a test changed it ("" when untouched). */
static char io_uring_disabled_saved[16];

FIXTURE_TEARDOWN(uring_lib)
{
	if (io_uring_disabled_saved[0]) {
		int fd = open(IO_URING_DISABLED_PATH, O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, io_uring_disabled_saved,
				    strlen(io_uring_disabled_saved)) < 0)
			TH_LOG("cannot restore " IO_URING_DISABLED_PATH);
		if (fd >= 0)
			close(fd);
	}
	if (self->fd >= 0)
		close(self->fd);
}

/* Configure the library for this test (it reads the environment once). */
static void lib_env(const char *uring, const char *batch, const char *ahead)
{
	setenv("UPALLOC_URING", uring, 1);
	setenv("UPALLOC_URING_BATCH", batch, 1);
	setenv("UPALLOC_URING_POPULATE_AHEAD", ahead, 1);
}

#define NEED_RING() do {						\
	if (!upa_uring_available())					\
		SKIP(return, "io_uring not usable here");		\
} while (0)

static struct upa_uring_stats lib_stats(void)
{
	struct upa_uring_stats st;

	upa_uring_get_stats(&st);
	return st;
}

TEST_F(uring_lib, decommits_wait_for_a_full_batch)
{
	const size_t n = 32, batch = 8;
	struct upa_uring_stats st;
	char *p;
	size_t i;

	NEED_DEVICE();
	lib_env("1", "8", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, n, 3);

	for (i = 0; i < batch - 1; i++)
		ASSERT_EQ(0, upa_uring_decommit(p + PAGES(2 * i), PAGES(1)));
	/* Queued, not submitted: no system call yet, every page still there. */
	st = lib_stats();
	EXPECT_EQ(0, st.submits);
	EXPECT_EQ(batch - 1, st.decommits);
	EXPECT_EQ(n, upa_pages_present(self->fd, p));

	/* The batch-th request submits all of them in one io_uring_enter. */
	ASSERT_EQ(0, upa_uring_decommit(p + PAGES(2 * (batch - 1)), PAGES(1)));
	st = lib_stats();
	EXPECT_EQ(1, st.submits);
	EXPECT_EQ(0, st.decommits_ioctl);
	ASSERT_EQ(0, upa_uring_flush());
	EXPECT_EQ(n - batch, upa_pages_present(self->fd, p));
	for (i = 0; i < n; i++) {
		bool decommitted = i % 2 == 0 && i < 2 * batch;

		EXPECT_EQ(-1, decommitted ? check_zero_pages(p, i, 1)
					  : check_pages(p, i, 1, 3)) TH_LOG("page %zu", i);
	}
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

TEST_F(uring_lib, flush_completes_every_queued_decommit)
{
	struct upa_stats s0, s1;
	char *p;

	NEED_DEVICE();
	lib_env("1", "32", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(16), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, 16, 1);
	READ_STATS(&s0);
	ASSERT_EQ(0, upa_uring_decommit(p, PAGES(3)));
	ASSERT_EQ(0, upa_uring_decommit(p + PAGES(8), PAGES(4)));
	EXPECT_EQ(16, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, upa_uring_flush());
	READ_STATS(&s1);
	EXPECT_EQ(9, upa_pages_present(self->fd, p));
	EXPECT_EQ(7, STAT_DELTA(s1, s0, pages_decommitted));
	EXPECT_EQ(-7, STAT_DELTA(s1, s0, pages_live));
	EXPECT_EQ(1, lib_stats().submits);
	/* Nothing is left: reclaim says every decommit completed. */
	EXPECT_EQ(0, upa_uring_reclaim(p, PAGES(16)));
	ASSERT_EQ(0, munmap(p, PAGES(16)));
}

TEST_F(uring_lib, reclaim_cancels_queued_decommit_and_keeps_contents)
{
	char *p;

	NEED_DEVICE();
	lib_env("1", "32", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(16), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 16, 5);
	ASSERT_EQ(0, upa_uring_decommit(p, PAGES(10)));
	/* The allocator reuses pages 3..4 before the decommit was submitted. */
	EXPECT_EQ(1, upa_uring_reclaim(p + PAGES(3), PAGES(2)));
	EXPECT_EQ(1, lib_stats().cancelled);
	ASSERT_EQ(0, upa_uring_flush());
	/* Count before reading: reading a decommitted page faults it back. */
	EXPECT_EQ(8, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_zero_pages(p, 0, 3));
	EXPECT_EQ(-1, check_pages(p, 3, 2, 5));
	EXPECT_EQ(-1, check_zero_pages(p, 5, 5));
	EXPECT_EQ(-1, check_pages(p, 10, 6, 5));

	/* A fully covered queued decommit is cancelled whole. */
	ASSERT_EQ(0, upa_uring_decommit(p + PAGES(12), PAGES(2)));
	EXPECT_EQ(1, upa_uring_reclaim(p + PAGES(11), PAGES(4)));
	ASSERT_EQ(0, upa_uring_flush());
	EXPECT_EQ(16, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_pages(p, 10, 6, 5));
	ASSERT_EQ(0, munmap(p, PAGES(16)));
}

TEST_F(uring_lib, reclaim_waits_for_submitted_decommit)
{
	const size_t n = 512;	/* beyond uring_inline_pages: runs in io-wq */
	char *p;

	NEED_DEVICE();
	lib_env("1", "1", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, n, 9);
	ASSERT_EQ(0, upa_uring_decommit(p, PAGES(n - 4)));
	EXPECT_EQ(1, lib_stats().submits);
	/* Submitted already: reclaim waits, and then the range reads zero. */
	EXPECT_EQ(0, upa_uring_reclaim(p + PAGES(100), PAGES(1)));
	EXPECT_EQ(4, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_zero_pages(p, 0, n - 4));
	EXPECT_EQ(-1, check_pages(p, n - 4, 4, 9));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

TEST_F(uring_lib, populate_ahead_avoids_first_touch_faults)
{
	struct upalloc_proc_stats ps0, ps1;
	const size_t n = 64;
	char *heap;

	NEED_DEVICE();
	lib_env("1", "32", "65536");	/* 16 pages ahead */
	NEED_RING();
	EXPECT_EQ(65536, upa_uring_populate_ahead_bytes());
	heap = upa_map_heap(self->fd, PAGES(n));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(n), NULL));

	/* The break moved up: ask for the next pages, clamped to 64 KiB. */
	ASSERT_EQ(0, upa_uring_populate_ahead(heap, PAGES(n)));
	EXPECT_EQ(1, lib_stats().populates);
	/* Before the break may go down again the populate must be settled. */
	EXPECT_EQ(0, upa_uring_reclaim(heap, PAGES(n)));
	EXPECT_EQ(65536 / page_size(), upa_pages_present(self->fd, heap));

	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps0));
	write_pages(heap, 0, 65536 / page_size(), 1);
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps1));
	EXPECT_EQ(0, ps1.faults - ps0.faults);
	/* The pages after the populated ones still fault, one each. */
	write_pages(heap, 65536 / page_size(), 4, 1);
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps0));
	EXPECT_EQ(4, ps0.faults - ps1.faults);
	ASSERT_EQ(0, munmap(heap, PAGES(n)));
}

TEST_F(uring_lib, populate_ahead_skips_pages_populated_before)
{
	const size_t n = 32;
	char *heap;

	NEED_DEVICE();
	lib_env("1", "32", "65536");	/* 16 pages ahead */
	NEED_RING();
	heap = upa_map_heap(self->fd, PAGES(n));
	ASSERT_NE(NULL, heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(n), NULL));
	ASSERT_EQ(0, upa_uring_populate_ahead(heap, PAGES(8)));
	EXPECT_EQ(0, upa_uring_reclaim(heap, PAGES(n)));
	EXPECT_EQ(8, upa_pages_present(self->fd, heap));

	/* A trim frees them; growing back over them populates nothing. */
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, 0, NULL));
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(n), NULL));
	ASSERT_EQ(0, upa_uring_populate_ahead(heap, PAGES(8)));
	EXPECT_EQ(0, upa_uring_reclaim(heap, PAGES(n)));
	EXPECT_EQ(0, upa_pages_present(self->fd, heap));
	EXPECT_EQ(1, lib_stats().populates);

	/* Only the part beyond what was populated before is new. */
	ASSERT_EQ(0, upa_uring_populate_ahead(heap + PAGES(4), PAGES(8)));
	EXPECT_EQ(0, upa_uring_reclaim(heap, PAGES(n)));
	EXPECT_EQ(4, upa_pages_present(self->fd, heap));
	EXPECT_EQ(-1, check_zero_pages(heap, 8, 4));

	/* Once released (unmapped), the addresses are new again. */
	EXPECT_EQ(0, upa_uring_release(heap, PAGES(n)));
	ASSERT_EQ(0, munmap(heap, PAGES(n)));
	/* A new heap at the very same address. */
	ASSERT_EQ(heap, mmap(heap, PAGES(n), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			     self->fd, 0));
	ASSERT_EQ(0, upa_set_brk(self->fd, heap, PAGES(n), NULL));
	ASSERT_EQ(0, upa_uring_populate_ahead(heap, PAGES(8)));
	EXPECT_EQ(0, upa_uring_reclaim(heap, PAGES(n)));
	EXPECT_EQ(8, upa_pages_present(self->fd, heap));
	ASSERT_EQ(0, munmap(heap, PAGES(n)));
}

TEST_F(uring_lib, populate_ahead_zero_disables_it)
{
	char *p;

	NEED_DEVICE();
	lib_env("1", "32", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(8), 0);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, upa_uring_populate_ahead(p, PAGES(8)));
	ASSERT_EQ(0, upa_uring_flush());
	EXPECT_EQ(0, lib_stats().populates);
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(8)));
}

/* Without a ring every decommit happens before the call returns. */
static void expect_ioctl_fallback(struct __test_metadata *_metadata, int fd)
{
	struct upa_uring_stats st;
	char *p;

	EXPECT_FALSE(upa_uring_available());
	p = upa_map(fd, PAGES(8), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 8, 4);
	ASSERT_EQ(0, upa_uring_decommit(p + PAGES(2), PAGES(3)));
	EXPECT_EQ(5, upa_pages_present(fd, p));
	EXPECT_EQ(-1, check_zero_pages(p, 2, 3));
	EXPECT_EQ(-1, check_pages(p, 0, 2, 4));
	EXPECT_EQ(-1, check_pages(p, 5, 3, 4));
	EXPECT_EQ(0, upa_uring_reclaim(p, PAGES(8)));
	/* Errors are the ioctl's. */
	EXPECT_EQ(-EINVAL, upa_uring_decommit(p + 1, PAGES(1)));
	/* Populate-ahead is only an optimisation: nothing without a ring. */
	ASSERT_EQ(0, upa_uring_populate_ahead(p, PAGES(8)));
	ASSERT_EQ(0, upa_uring_flush());
	st = lib_stats();
	EXPECT_EQ(0, st.ring_active);
	EXPECT_EQ(0, st.submits);
	EXPECT_EQ(2, st.decommits_ioctl);
	ASSERT_EQ(0, munmap(p, PAGES(8)));
}

TEST_F(uring_lib, uring_off_falls_back_to_ioctl)
{
	NEED_DEVICE();
	lib_env("0", "32", "65536");
	expect_ioctl_fallback(_metadata, self->fd);
}

/* Make io_uring_setup fail with err, as a container's seccomp profile does. */
static int deny_io_uring_setup(int err)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = ARRAY_SIZE(filter),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) ? -errno : 0;
}

TEST_F(uring_lib, seccomp_eperm_falls_back_to_ioctl)
{
	NEED_DEVICE();
	lib_env("1", "32", "65536");
	ASSERT_EQ(0, deny_io_uring_setup(EPERM));
	expect_ioctl_fallback(_metadata, self->fd);
}

TEST_F(uring_lib, seccomp_enosys_falls_back_to_ioctl)
{
	NEED_DEVICE();
	lib_env("1", "32", "65536");
	ASSERT_EQ(0, deny_io_uring_setup(ENOSYS));
	expect_ioctl_fallback(_metadata, self->fd);
}

TEST_F(uring_lib, io_uring_disabled_sysctl_falls_back_to_ioctl)
{
	char old[16] = "";
	FILE *f;
	int fd;

	NEED_DEVICE();
	f = fopen(IO_URING_DISABLED_PATH, "re");
	if (!f)
		SKIP(return, "no " IO_URING_DISABLED_PATH " on this kernel");
	ASSERT_NE(NULL, fgets(old, sizeof(old), f));
	fclose(f);
	fd = open(IO_URING_DISABLED_PATH, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "cannot write " IO_URING_DISABLED_PATH);
	/* 2: io_uring_setup() fails with EPERM for everybody. */
	memcpy(io_uring_disabled_saved, old, sizeof(old));
	ASSERT_EQ(2, write(fd, "2\n", 2));
	close(fd);
	lib_env("1", "32", "65536");
	expect_ioctl_fallback(_metadata, self->fd);
}

TEST_F(uring_lib, fork_child_redoes_pending_decommits_on_its_own_pages)
{
	struct upa_uring_stats st;
	const size_t n = 16;
	pid_t pid;
	char *p;

	NEED_DEVICE();
	lib_env("1", "32", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, n, 6);
	ASSERT_EQ(0, upa_uring_decommit(p, PAGES(4)));
	ASSERT_EQ(0, upa_uring_decommit(p + PAGES(8), PAGES(2)));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct upa_uring_stats cst;

		/* First call in the child: it repairs its copy of the state. */
		CHILD_CHECK(upa_uring_reclaim(p, PAGES(n)) == 0);
		upa_uring_get_stats(&cst);
		CHILD_CHECK(cst.fork_redone == 2);
		CHILD_CHECK(upa_pages_present(self->fd, p) == n - 6);
		CHILD_CHECK(check_zero_pages(p, 0, 4) == -1);
		CHILD_CHECK(check_zero_pages(p, 8, 2) == -1);
		CHILD_CHECK(check_pages(p, 4, 4, 6) == -1);
		CHILD_CHECK(check_pages(p, 10, 6, 6) == -1);
		/* It gets a ring of its own, which works. */
		CHILD_CHECK(upa_uring_available());
		CHILD_CHECK(upa_uring_decommit(p + PAGES(12), PAGES(2)) == 0);
		CHILD_CHECK(upa_uring_flush() == 0);
		upa_uring_get_stats(&cst);
		CHILD_CHECK(cst.submits == 1 && cst.ring_active == 1);
		CHILD_CHECK(upa_pages_present(self->fd, p) == n - 2);
		CHILD_CHECK(check_zero_pages(p, 12, 2) == -1);
		_exit(0);
	}
	ASSERT_EQ(0, wait_child_ok(pid));

	/* The parent's own queue was untouched by the child. */
	st = lib_stats();
	EXPECT_EQ(0, st.submits);
	EXPECT_EQ(n, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, upa_uring_flush());
	EXPECT_EQ(n - 6, upa_pages_present(self->fd, p));
	EXPECT_EQ(-1, check_pages(p, 12, 2, 6));
	EXPECT_EQ(-1, check_zero_pages(p, 0, 4));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

struct thread_arg {
	char *base;
	size_t first, count;
};

static void *decommit_thread(void *argp)
{
	struct thread_arg *a = argp;
	size_t i;

	for (i = 0; i < a->count; i++)
		if (upa_uring_decommit(a->base + PAGES(a->first + i), PAGES(1)))
			return (void *)1;
	return NULL;
}

TEST_F(uring_lib, threads_share_the_ring_safely)
{
	enum { THREADS = 4, PER_THREAD = 48 };
	struct thread_arg args[THREADS];
	pthread_t t[THREADS];
	struct upa_stats s0, s1;
	char *p;
	int i;
	void *ret;

	NEED_DEVICE();
	lib_env("1", "5", "0");
	NEED_RING();
	p = upa_map(self->fd, PAGES(THREADS * PER_THREAD), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, THREADS * PER_THREAD, 1);
	READ_STATS(&s0);
	for (i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ p, (size_t)i * PER_THREAD, PER_THREAD };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, decommit_thread, &args[i]));
	}
	for (i = 0; i < THREADS; i++) {
		ASSERT_EQ(0, pthread_join(t[i], &ret));
		EXPECT_EQ(NULL, ret);
	}
	ASSERT_EQ(0, upa_uring_flush());
	READ_STATS(&s1);
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	EXPECT_EQ(THREADS * PER_THREAD, STAT_DELTA(s1, s0, pages_decommitted));
	EXPECT_EQ(THREADS * PER_THREAD, lib_stats().decommits);
	/* 192 decommits in batches of 5: far fewer system calls. */
	EXPECT_GE((THREADS * PER_THREAD + 4) / 5 + 1, lib_stats().submits);
	ASSERT_EQ(0, munmap(p, PAGES(THREADS * PER_THREAD)));
}

UPALLOC_TEST_MAIN
