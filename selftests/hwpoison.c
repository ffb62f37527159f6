// SPDX-License-Identifier: GPL-2.0
/*
 * Description: memory errors (issue 11, item 1). A page marked
 * hardware-poisoned (madvise(MADV_HWPOISON), the path a real uncorrectable
 * error takes) is never mapped again nor copied: every access that reaches
 * the module (a fault in a fork relative, a write that would break
 * copy-on-write, a write upgrading a read-only PTE, a fault after the PTE
 * was zapped, POPULATE) gets SIGBUS (BUS_MCEERR_AR) or EHWPOISON, and the
 * kernel does not oops; the other pages of the region are unaffected.
 * madvise(MADV_SOFT_OFFLINE) on a module page loses no data.
 *
 * Needs root (CAP_SYS_ADMIN for the madvise advice) and a kernel with
 * CONFIG_MEMORY_FAILURE; each poisoned page is lost to the guest for good,
 * so every test poisons one page only.
 */
#include "upalloc_test.h"

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#ifndef BUS_MCEERR_AR
#define BUS_MCEERR_AR 4
#endif

#define NPAGES 4

FIXTURE(hwpoison) {
	int fd;
	char *p;
	struct upa_channel ch;
};

FIXTURE_SETUP(hwpoison)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	if (geteuid())
		SKIP(return, "needs root for MADV_HWPOISON");
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
	ASSERT_EQ(0, channel_open(&self->ch));
}

FIXTURE_TEARDOWN(hwpoison)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Poison the page at p. The module's pages are not on the LRU, so the
 * kernel only marks them (EBUSY) and leaves them mapped. Returns 0 when the
 * page is marked, -1 (after SKIP) when the kernel cannot inject errors.
 */
static int poison(struct __test_metadata *_metadata, char *p)
{
	if (!madvise(p, page_size(), MADV_HWPOISON) || errno == EBUSY)
		return 0;
	if (errno == EINVAL || errno == EPERM)
		SKIP(return -1, "MADV_HWPOISON: %s (CONFIG_MEMORY_FAILURE?)",
		     strerror(errno));
	ASSERT_EQ(0, errno) TH_LOG("MADV_HWPOISON: %s", strerror(errno));
	return -1;
}

/* The access raised SIGBUS for a memory error at p. */
static bool mce_sigbus(int sig, const struct upa_probe_result *res, char *p)
{
	return sig == SIGBUS && res->code == BUS_MCEERR_AR && res->addr == p;
}

TEST_F(hwpoison, fork_child_read_of_poisoned_page_gets_sigbus)
{
	struct upa_probe_result res;
	char *p = self->p, v;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int sig;

		WAIT_PARENT(&self->ch);
		/* No PTE yet: ->fault finds the poisoned page shared. */
		sig = upa_probe_read(p, &v, &res);
		CHILD_CHECK(mce_sigbus(sig, &res, p));
		/* A write would copy the page: no copy of a memory error. */
		sig = upa_probe_write(p, 'c', &res);
		CHILD_CHECK(mce_sigbus(sig, &res, p));
		CHILD_CHECK(check_pages(p, 1, NPAGES - 1, 1) == -1);
		fill_pages(p, 1, NPAGES - 1, 2);
		CHILD_CHECK(check_pages(p, 1, NPAGES - 1, 2) == -1);
		_exit(0);
	}
	/* The parent maps the shared page read-only, then it goes bad. */
	read_pages(p, 0, 1);
	if (poison(_metadata, p)) {
		kill(pid, SIGKILL);
		wait_child(pid);
		return;
	}
	TELL_CHILD(&self->ch, 'g');
	ASSERT_EQ(0, wait_child_ok(pid));

	/* The parent's read-only PTE: a write asks ->page_mkwrite. */
	EXPECT_TRUE(mce_sigbus(upa_probe_write(p, 'p', &res), &res, p));
	/* Zapped, then touched again: ->fault refuses it too. */
	ASSERT_EQ(0, madvise(p, page_size(), MADV_DONTNEED));
	EXPECT_TRUE(mce_sigbus(upa_probe_read(p, &v, &res), &res, p));
	EXPECT_EQ(-1, check_pages(p, 1, NPAGES - 1, 1));
}

TEST_F(hwpoison, poisoned_page_of_unforked_region_is_not_mapped_again)
{
	struct upa_probe_result res;
	uint64_t nr = 0;
	char *p = self->p, v;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 3);
	if (poison(_metadata, p + PAGES(1)))
		return;
	ASSERT_EQ(0, madvise(p, PAGES(NPAGES), MADV_DONTNEED));
	EXPECT_TRUE(mce_sigbus(upa_probe_read(p + PAGES(1), &v, &res), &res,
			       p + PAGES(1)));
	EXPECT_EQ(-1, check_pages(p, 0, 1, 3));
	/* POPULATE maps up to the bad page and reports it. */
	EXPECT_EQ(-EHWPOISON, upa_populate(self->fd, p, PAGES(NPAGES), &nr));
	EXPECT_EQ(-1, check_pages(p, 2, NPAGES - 2, 3));
	EXPECT_TRUE(mce_sigbus(upa_probe_write(p + PAGES(1), 'w', &res), &res,
			       p + PAGES(1)));
	/* Decommitting the bad page gives a fresh zeroed one. */
	ASSERT_EQ(0, upa_decommit(self->fd, p + PAGES(1), PAGES(1), &nr));
	EXPECT_EQ(1, nr);
	EXPECT_EQ(-1, check_zero_pages(p, 1, 1));
}

TEST_F(hwpoison, populate_of_forked_region_reports_poisoned_page)
{
	struct upa_probe_result res;
	uint64_t nr = 0;
	char *p = self->p;
	pid_t pid;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 4);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		WAIT_PARENT(&self->ch);
		CHILD_CHECK(upa_populate(self->fd, p, PAGES(NPAGES), &nr) ==
			    -EHWPOISON);
		CHILD_CHECK(check_pages(p, 0, 2, 4) == -1);
		_exit(0);
	}
	read_pages(p, 2, 1);
	if (poison(_metadata, p + PAGES(2))) {
		kill(pid, SIGKILL);
		wait_child(pid);
		return;
	}
	TELL_CHILD(&self->ch, 'g');
	ASSERT_EQ(0, wait_child_ok(pid));
	EXPECT_TRUE(mce_sigbus(upa_probe_write(p + PAGES(2), 'p', &res), &res,
			       p + PAGES(2)));
}

/*
 * Soft offlining migrates a page's contents elsewhere; the module's pages
 * cannot move, so the kernel must refuse and leave them intact.
 */
TEST_F(hwpoison, soft_offline_keeps_contents)
{
	struct upa_probe_result res;
	char *p = self->p, v;
	int sig;

	NEED_DEVICE();
	fill_pages(p, 0, NPAGES, 5);
	if (madvise(p, page_size(), MADV_SOFT_OFFLINE) && errno == EINVAL)
		SKIP(return, "MADV_SOFT_OFFLINE: EINVAL (CONFIG_MEMORY_FAILURE?)");
	sig = upa_probe_read(p, &v, &res);
	ASSERT_EQ(0, sig) TH_LOG("read after soft offline: signal %d code %d",
				 sig, res.code);
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 5));
	fill_pages(p, 0, NPAGES, 6);
	EXPECT_EQ(-1, check_pages(p, 0, NPAGES, 6));
}

UPALLOC_TEST_MAIN
