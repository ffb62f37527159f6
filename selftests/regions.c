// SPDX-License-Identifier: GPL-2.0
/*
 * Description: regions of /dev/upalloc (issue 2, item 1). A MAP_SHARED
 * mapping of the device is a region whose pages appear zero-filled on first
 * touch and not before; MAP_POPULATE and UPALLOC_IOC_POPULATE pre-fault them;
 * MAP_PRIVATE, a non-zero offset, PROT_EXEC (also through mprotect) and
 * lengths beyond the module's limit are refused without creating anything.
 */
#include <sys/uio.h>
#include <sys/utsname.h>

#include "upalloc_test.h"

FIXTURE(regions) {
	int fd;
};

FIXTURE_SETUP(regions)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
}

FIXTURE_TEARDOWN(regions)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(regions, mmap_returns_zeroed_pages)
{
	const size_t n = 64;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(-1, check_zero_pages(p, 0, n));

	/* Dirty every page and give them back: reused pages are zeroed again. */
	memset(p, 0xa5, PAGES(n));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	/* Write faults this time: they must hand out zeroed pages as well. */
	for (size_t i = 0; i < n; i++)
		p[PAGES(i + 1) - 1] = 1;
	for (size_t i = 0; i < n; i++) {
		const char *pg = p + PAGES(i);
		size_t k = 0;

		while (k < page_size() - 1 && !pg[k])
			k++;
		EXPECT_EQ(page_size() - 1, k) TH_LOG("page %zu byte %zu not zero", i, k);
	}
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

TEST_F(regions, pages_appear_only_on_first_touch)
{
	struct upalloc_proc_stats ps;
	struct upa_stats before, after;
	const size_t n = 16;
	char *p;

	NEED_DEVICE();
	READ_STATS(&before);
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);

	/* Nothing is allocated by mmap itself. */
	ASSERT_EQ(0, upa_pages_present(self->fd, p));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_allocated));

	/* One page per touched offset, however often it is touched. */
	read_pages(p, 3, 1);
	EXPECT_EQ(1, upa_pages_present(self->fd, p));
	read_pages(p, 3, 1);
	p[PAGES(3) + 7] = 1;
	EXPECT_EQ(1, upa_pages_present(self->fd, p));
	write_pages(p, 7, 1, 2);
	write_pages(p, 7, 1, 3);
	EXPECT_EQ(2, upa_pages_present(self->fd, p));

	READ_STATS(&after);
	EXPECT_EQ(2, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(2, STAT_DELTA(after, before, pages_allocated));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(2, ps.pages_live);

	/* Reading untouched neighbours faults in three more zero pages. */
	EXPECT_EQ(-1, check_zero_pages(p, 0, 3));
	EXPECT_EQ(5, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
}

TEST_F(regions, map_populate_prefaults_region)
{
	struct upa_stats before, mid, after;
	const size_t n = 8;
	char *p;

	NEED_DEVICE();
	READ_STATS(&before);
	p = upa_map(self->fd, PAGES(n), MAP_POPULATE);
	ASSERT_NE(NULL, p);
	READ_STATS(&mid);
	EXPECT_EQ(n, upa_pages_present(self->fd, p));
	EXPECT_EQ(n, STAT_DELTA(mid, before, pages_live));
	/* The core populates a shared mapping with read faults. */
	EXPECT_EQ(n, STAT_DELTA(mid, before, faults_read));
	EXPECT_EQ(0, STAT_DELTA(mid, before, faults_write));

	/* Reading the populated pages takes no further fault. */
	EXPECT_EQ(-1, check_zero_pages(p, 0, n));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, mid, faults));
	EXPECT_EQ(0, STAT_DELTA(after, mid, pages_allocated));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

TEST_F(regions, populate_ioctl_prefaults_range)
{
	struct upalloc_proc_stats ps;
	struct upa_stats before, mid, after;
	const size_t n = 16;
	uint64_t nr = 99;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	read_pages(p, 5, 1);	/* already present: not counted again */

	READ_STATS(&before);
	ASSERT_EQ(0, upa_populate(self->fd, p + PAGES(4), PAGES(8), &nr));
	EXPECT_EQ(7, nr);
	READ_STATS(&mid);
	EXPECT_EQ(8, upa_pages_present(self->fd, p));
	EXPECT_EQ(7, STAT_DELTA(mid, before, pages_live));
	EXPECT_EQ(7, STAT_DELTA(mid, before, pages_allocated));
	EXPECT_EQ(7, STAT_DELTA(mid, before, pages_populated));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(7, ps.pages_populated);

	/* A second populate of the same range has nothing left to do. */
	nr = 99;
	ASSERT_EQ(0, upa_populate(self->fd, p + PAGES(4), PAGES(8), &nr));
	EXPECT_EQ(0, nr);

	/* The pages are mapped: touching them (read and write) takes no fault. */
	EXPECT_EQ(-1, check_zero_pages(p, 4, 8));
	write_pages(p, 4, 8, 1);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, mid, faults));
	EXPECT_EQ(0, STAT_DELTA(after, mid, pages_allocated));
	EXPECT_EQ(0, STAT_DELTA(after, mid, pages_populated));
	EXPECT_EQ(8, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

/* An mmap the module refuses must leave no region behind. */
static void expect_mmap_refused(struct __test_metadata *_metadata, int fd,
				int prot, int flags, off_t off, size_t len,
				int expected_errno)
{
	struct upa_stats before, after;
	void *p;

	READ_STATS(&before);
	errno = 0;
	p = mmap(NULL, len, prot, flags, fd, off);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(expected_errno, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	if (p != MAP_FAILED)
		munmap(p, len);
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
}

TEST_F(regions, private_mapping_is_rejected)
{
	NEED_DEVICE();
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE, 0, PAGES(4), EINVAL);
	expect_mmap_refused(_metadata, self->fd, PROT_READ,
			    MAP_PRIVATE, 0, PAGES(4), EINVAL);
}

TEST_F(regions, nonzero_offset_is_rejected)
{
	NEED_DEVICE();
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED, page_size(), PAGES(4), EINVAL);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED, 1UL << 30, PAGES(1), EINVAL);
}

/* EPERM, like a noexec mount (which a noexec /dev gives by itself). */
TEST_F(regions, exec_mapping_is_rejected)
{
	NEED_DEVICE();
	expect_mmap_refused(_metadata, self->fd,
			    PROT_READ | PROT_WRITE | PROT_EXEC,
			    MAP_SHARED, 0, PAGES(4), EPERM);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_EXEC,
			    MAP_SHARED, 0, PAGES(4), EPERM);
}

TEST_F(regions, mprotect_exec_is_refused)
{
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	p[0] = 42;
	errno = 0;
	EXPECT_EQ(-1, mprotect(p, PAGES(4), PROT_READ | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	EXPECT_EQ(-1, mprotect(p, PAGES(4), PROT_READ | PROT_WRITE | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	/* The mapping is untouched and still writable. */
	p[1] = 43;
	EXPECT_EQ(42, p[0]);
	EXPECT_EQ(43, p[1]);
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

TEST_F(regions, oversized_length_is_rejected)
{
	struct upalloc_version v;
	char *p;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, &v));
	ASSERT_NE(0, v.max_region_bytes);
	ASSERT_EQ(0, v.max_region_bytes % page_size());

	/* The largest accepted length works as a heap (nothing committed). */
	p = upa_map_heap(self->fd, v.max_region_bytes);
	ASSERT_NE(NULL, p) TH_LOG("max_region_bytes %llu refused: %s",
				  (unsigned long long)v.max_region_bytes,
				  strerror(errno));
	ASSERT_EQ(0, munmap(p, v.max_region_bytes));

	/* One page more is refused, as heap and as plain region. */
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_NORESERVE, 0,
			    v.max_region_bytes + page_size(), EINVAL);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED, 0, v.max_region_bytes + page_size(),
			    EINVAL);
}

TEST_F(regions, map_fixed_over_whole_region_replaces_it)
{
	struct upa_stats before, after;
	char *p, *q;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 4, 1);
	READ_STATS(&before);
	q = mmap(p, PAGES(4), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 self->fd, 0);
	ASSERT_EQ(p, q);
	READ_STATS(&after);
	EXPECT_EQ(1, STAT_DELTA(after, before, regions_destroyed));
	EXPECT_EQ(1, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(4, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(-4, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, upa_pages_present(self->fd, q));
	EXPECT_EQ(-1, check_zero_pages(q, 0, 4));
	ASSERT_EQ(0, munmap(q, PAGES(4)));
}

/*
 * errno of an mmap(MAP_FIXED) whose implicit munmap would split a region:
 * the core turns ->may_split's EINVAL into ENOMEM on 6.1 and passes it
 * through on 6.12 (the two kernels this module targets).
 */
static int split_by_map_fixed_errno(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return 0;
	if (major == 6 && minor == 1)
		return ENOMEM;
	if (major == 6 && minor == 12)
		return EINVAL;
	return 0;	/* another kernel: either is fine */
}

/* Mapping over part of a region would split it: refused, region intact. */
TEST_F(regions, map_fixed_over_part_of_region_is_refused)
{
	int expected_errno = split_by_map_fixed_errno();
	struct upalloc_region_info info;
	char *p, *q;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 4, 1);
	errno = 0;
	q = mmap(p + PAGES(1), PAGES(1), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_TRUE(expected_errno ? errno == expected_errno :
		    errno == EINVAL || errno == ENOMEM) TH_LOG("errno %d", errno);
	errno = 0;
	q = mmap(p + PAGES(3), PAGES(2), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, self->fd, 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_TRUE(expected_errno ? errno == expected_errno :
		    errno == EINVAL || errno == ENOMEM) TH_LOG("errno %d", errno);
	ASSERT_EQ(0, upa_region_info(self->fd, p, &info));
	EXPECT_EQ((uintptr_t)p, info.start);
	EXPECT_EQ(PAGES(4), info.len);
	EXPECT_EQ(4, info.pages_present);
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

/* GUP (process_vm_readv/writev, O_DIRECT, ptrace) works on the pages. */
TEST_F(regions, gup_reads_and_writes_region)
{
	char buf[256], data[256];
	struct iovec local = { buf, sizeof(buf) };
	struct iovec remote;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 1, 1);
	remote = (struct iovec){ p + 64, sizeof(buf) };
	ASSERT_EQ(sizeof(buf), process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(0, memcmp(buf, p + 64, sizeof(buf)));
	/* An absent page is faulted in (zero) by the read. */
	remote = (struct iovec){ p + PAGES(2), sizeof(buf) };
	ASSERT_EQ(sizeof(buf), process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	memset(data, 0, sizeof(data));
	EXPECT_EQ(0, memcmp(buf, data, sizeof(buf)));
	EXPECT_EQ(2, upa_pages_present(self->fd, p));
	/* And written into. */
	memset(data, 'w', sizeof(data));
	local = (struct iovec){ data, sizeof(data) };
	remote = (struct iovec){ p + PAGES(3) + 8, sizeof(data) };
	ASSERT_EQ(sizeof(data), process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	EXPECT_EQ(0, memcmp(p + PAGES(3) + 8, data, sizeof(data)));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

/* The core's own rules for file mappings apply to the device as well. */
TEST_F(regions, unsupported_mmap_flags_are_rejected)
{
	char *p;

	NEED_DEVICE();
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_GROWSDOWN, 0, PAGES(4), EINVAL);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_HUGETLB, 0, PAGES(4), EINVAL);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED_VALIDATE | MAP_SYNC, 0, PAGES(4), EOPNOTSUPP);
	expect_mmap_refused(_metadata, self->fd, PROT_READ | PROT_WRITE,
			    MAP_SHARED, 0, 0, EINVAL);
	/* MAP_SHARED_VALIDATE without unknown flags is plain MAP_SHARED. */
	p = mmap(NULL, PAGES(2), PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE,
		 self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	EXPECT_EQ(1, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(2)));
}

TEST_F(regions, prot_none_region_can_be_opened_whole)
{
	struct upa_stats before, after;
	char *p;
	char v;

	NEED_DEVICE();
	READ_STATS(&before);
	p = mmap(NULL, PAGES(4), PROT_NONE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(SIGSEGV, upa_probe_read(p, &v, NULL));
	READ_STATS(&after);
	EXPECT_EQ(1, STAT_DELTA(after, before, regions_created));
	EXPECT_EQ(4, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(0, STAT_DELTA(after, before, faults));
	ASSERT_EQ(0, mprotect(p, PAGES(4), PROT_READ | PROT_WRITE));
	fill_pages(p, 0, 4, 1);
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

/*
 * A descriptor opened O_RDONLY never yields a writable region. For a
 * MAP_SHARED mapping of it the core clears VM_SHARED (keeping VM_MAYSHARE),
 * so the module may refuse it like a private mapping (EINVAL, nothing
 * created) or accept a read-only region: both are checked exactly.
 */
TEST_F(regions, read_only_descriptor_never_maps_writable)
{
	struct upa_stats before, after;
	char *p;
	char v;
	int ro, err;

	NEED_DEVICE();
	ro = open(UPALLOC_DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	expect_mmap_refused(_metadata, ro, PROT_READ | PROT_WRITE, MAP_SHARED,
			    0, PAGES(2), EACCES);
	READ_STATS(&before);
	errno = 0;
	p = mmap(NULL, PAGES(2), PROT_READ, MAP_SHARED, ro, 0);
	err = errno;
	READ_STATS(&after);
	if (p == MAP_FAILED) {
		EXPECT_EQ(EINVAL, err);
		EXPECT_EQ(0, STAT_DELTA(after, before, regions_created));
		EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	} else {
		EXPECT_EQ(1, STAT_DELTA(after, before, regions_created));
		EXPECT_EQ(0, upa_probe_read(p, &v, NULL));
		EXPECT_EQ(0, v);
		EXPECT_EQ(SIGSEGV, upa_probe_write(p, 1, NULL));
		errno = 0;
		EXPECT_EQ(-1, mprotect(p, PAGES(2), PROT_READ | PROT_WRITE));
		EXPECT_EQ(EACCES, errno);
		ASSERT_EQ(0, munmap(p, PAGES(2)));
	}
	close(ro);
}

TEST_F(regions, region_info_describes_plain_region)
{
	struct upalloc_region_info info;
	const size_t n = 8;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 2, 3, 1);

	/* Any address inside the region names it. */
	ASSERT_EQ(0, upa_region_info(self->fd, p + PAGES(5) + 123, &info));
	EXPECT_EQ((uintptr_t)p, info.start);
	EXPECT_EQ(PAGES(n), info.len);
	EXPECT_EQ(PAGES(n), info.brk);
	EXPECT_EQ(3, info.pages_present);
	EXPECT_EQ(0, info.pages_shared);
	EXPECT_EQ(0, info.flags);
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

TEST_F(regions, munmap_destroys_region)
{
	struct upa_stats before, mid, after;
	struct upalloc_region_info info;
	const size_t n = 8;
	char *p;

	NEED_DEVICE();
	READ_STATS(&before);
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, n, 1);
	READ_STATS(&mid);
	EXPECT_EQ(1, STAT_DELTA(mid, before, regions_created));
	EXPECT_EQ(1, STAT_DELTA(mid, before, regions_live));
	EXPECT_EQ(n, STAT_DELTA(mid, before, pages_committed));
	EXPECT_EQ(n, STAT_DELTA(mid, before, pages_live));

	ASSERT_EQ(0, munmap(p, PAGES(n)));
	READ_STATS(&after);
	EXPECT_EQ(1, STAT_DELTA(after, before, regions_destroyed));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(n, STAT_DELTA(after, before, pages_freed));
	/* Nothing is mapped there any more. */
	EXPECT_EQ(-ENOMEM, upa_region_info(self->fd, p, &info));
}

UPALLOC_TEST_MAIN
