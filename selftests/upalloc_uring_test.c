// SPDX-License-Identifier: GPL-2.0
/*
 * Description: io_uring passthrough (issue 6, items 1 and 4). Every command
 * submitted as IORING_OP_URING_CMD on the device gives the result, the
 * outputs and the statistics of the same ioctl; bad input through the ring
 * (unknown cmd_op, non-zero reserved fields in the SQE payload or in the
 * command structure, bad pointers, foreign addresses, a descriptor that is
 * not the device) gives the ioctl's errors; large commands that the module
 * runs in io-wq give the same results, and tearing down the ring or the
 * process while they are in flight leaks nothing.
 * SKIPs when the module does not advertise UPALLOC_FEAT_URING_CMD or when
 * io_uring itself is unavailable (io_uring_disabled, seccomp).
 */
#include <liburing.h>
#include <sys/syscall.h>

#include "upalloc_test.h"

#define URING_PARAM	"uring_inline_pages"

FIXTURE(uring) {
	int fd;
	struct io_uring ring;
	bool have_ring;
	uint64_t inline_pages;	/* larger commands run in io-wq */
};

FIXTURE_SETUP(uring)
{
	struct upalloc_version v = { 0 };
	int ret;

	self->have_ring = false;
	OPEN_DEVICE_OR_SKIP(&self->fd);
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, &v));
	if (!(v.features & UPALLOC_FEAT_URING_CMD))
		SKIP(return, "module lacks UPALLOC_FEAT_URING_CMD");
	ret = io_uring_queue_init(16, &self->ring, 0);
	if (ret == -ENOSYS || ret == -EPERM)
		SKIP(return, "io_uring unavailable: %s", strerror(-ret));
	ASSERT_EQ(0, ret);
	self->have_ring = true;
	if (upa_param_read(URING_PARAM, &self->inline_pages))
		self->inline_pages = 64;
}

FIXTURE_TEARDOWN(uring)
{
	if (self->have_ring)
		io_uring_queue_exit(&self->ring);
	if (self->fd >= 0)
		close(self->fd);
}

/* Queue one URING_CMD; the payload is struct upalloc_uring_cmd. */
static void prep_upalloc_cmd(struct io_uring_sqe *sqe, int fd, unsigned int op,
			     const void *arg, uint64_t reserved)
{
	struct upalloc_uring_cmd payload = {
		.arg = (uintptr_t)arg,
		.reserved = reserved,
	};

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = op;
	memcpy(sqe->cmd, &payload, sizeof(payload));
}

/* Submit one command and wait for it: cqe->res (0 or -errno). */
#define RING_FAILED	(-100000)
static int ring_cmd_full(struct io_uring *ring, int fd, unsigned int op,
			 const void *arg, uint64_t reserved,
			 unsigned int sqe_flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return RING_FAILED;
	prep_upalloc_cmd(sqe, fd, op, arg, reserved);
	sqe->flags |= sqe_flags;
	io_uring_sqe_set_data64(sqe, 0x0b7);
	if (io_uring_submit(ring) != 1)
		return RING_FAILED;
	if (io_uring_wait_cqe(ring, &cqe))
		return RING_FAILED;
	ret = cqe->user_data == 0x0b7 ? cqe->res : RING_FAILED;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

static int ring_cmd(struct io_uring *ring, int fd, unsigned int op, void *arg)
{
	return ring_cmd_full(ring, fd, op, arg, 0, 0);
}

static struct upalloc_range range_of(const void *addr, size_t len)
{
	struct upalloc_range r = {
		.addr = (uintptr_t)addr,
		.len = len,
	};

	return r;
}

/* ---- each command gives the ioctl's result ------------------------------ */

TEST_F(uring, version_matches_ioctl)
{
	struct upalloc_version by_ioctl = { 0 }, by_ring;

	NEED_DEVICE();
	memset(&by_ring, 0xff, sizeof(by_ring));
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, &by_ioctl));
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_VERSION, &by_ring));
	EXPECT_EQ(0, memcmp(&by_ioctl, &by_ring, sizeof(by_ring)));
	EXPECT_EQ(UPALLOC_ABI_VERSION, by_ring.abi_version);
	EXPECT_EQ(page_size(), by_ring.page_size);
	EXPECT_NE(0, by_ring.features & UPALLOC_FEAT_URING_CMD);
}

/*
 * POPULATE through the ring and through ioctl on twin regions touched the
 * same way: same nr_pages, same pages present, same statistics.
 */
static void check_populate_twins(struct __test_metadata *_metadata,
				 FIXTURE_DATA(uring) *self, size_t n,
				 size_t first, size_t count,
				 unsigned int sqe_flags)
{
	struct upa_stats s0, s1, s2;
	struct upalloc_range ri, rr;
	char *a, *b;

	a = upa_map(self->fd, PAGES(n), 0);
	b = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	/* One page already present in each: populate must not count it. */
	read_pages(a, first + 1, 1);
	read_pages(b, first + 1, 1);

	READ_STATS(&s0);
	ri = range_of(a + PAGES(first), PAGES(count));
	ri.nr_pages = 12345;
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_POPULATE, &ri));
	READ_STATS(&s1);
	rr = range_of(b + PAGES(first), PAGES(count));
	rr.nr_pages = 12345;
	ASSERT_EQ(0, ring_cmd_full(&self->ring, self->fd, UPALLOC_IOC_POPULATE,
				   &rr, 0, sqe_flags));
	READ_STATS(&s2);

	EXPECT_EQ(count - 1, ri.nr_pages);
	EXPECT_EQ(ri.nr_pages, rr.nr_pages);
	EXPECT_EQ(0, memcmp(&ri.reserved, &rr.reserved, sizeof(rr.reserved)));
	EXPECT_EQ(upa_pages_present(self->fd, a), upa_pages_present(self->fd, b));
	EXPECT_EQ(count, upa_pages_present(self->fd, b));
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_populated),
		  STAT_DELTA(s2, s1, pages_populated));
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_live), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(count - 1, STAT_DELTA(s2, s1, pages_live));

	/* The populated pages are mapped in this process: no fault on touch. */
	EXPECT_EQ(-1, check_zero_pages(b, first, count));
	READ_STATS(&s1);
	EXPECT_EQ(0, STAT_DELTA(s1, s2, faults));

	/* Nothing left to do the second time, either way. */
	ASSERT_EQ(0, ring_cmd_full(&self->ring, self->fd, UPALLOC_IOC_POPULATE,
				   &rr, 0, sqe_flags));
	EXPECT_EQ(0, rr.nr_pages);
	ASSERT_EQ(0, munmap(a, PAGES(n)));
	ASSERT_EQ(0, munmap(b, PAGES(n)));
}

TEST_F(uring, populate_inline_matches_ioctl)
{
	NEED_DEVICE();
	check_populate_twins(_metadata, self, 16, 4, 8, 0);
}

TEST_F(uring, populate_in_io_wq_matches_ioctl)
{
	size_t count = self->inline_pages + 40;

	NEED_DEVICE();
	/* Larger than uring_inline_pages: the module punts it to io-wq. */
	check_populate_twins(_metadata, self, count + 8, 3, count, 0);
}

TEST_F(uring, populate_forced_async_matches_ioctl)
{
	NEED_DEVICE();
	/* IOSQE_ASYNC: issued from io-wq even though it is short. */
	check_populate_twins(_metadata, self, 16, 2, 6, IOSQE_ASYNC);
}

/*
 * POPULATE through the ring of a forked region mapped PROT_WRITE only,
 * with a page still shared with the child: that page is left to its first
 * write (no copy, no read mapping allowed), the others are allocated; the
 * command succeeds like the ioctl does, inline and from io-wq.
 */
TEST_F(uring, populate_of_shared_write_only_region_succeeds)
{
	const unsigned int flags[] = { 0, IOSQE_ASYNC };
	struct upalloc_range rg;
	unsigned int i;
	int hold[2];
	char *p;
	pid_t pid;

	NEED_DEVICE();
	for (i = 0; i < 2; i++) {
		p = upa_map(self->fd, PAGES(8), 0);
		ASSERT_NE(NULL, p);
		fill_pages(p, 0, 1, 5);
		ASSERT_EQ(0, mprotect(p, PAGES(8), PROT_WRITE));
		ASSERT_EQ(0, pipe(hold));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			char c;

			/* Keep the share until the parent is done. */
			close(hold[1]);
			_exit(read(hold[0], &c, 1) == 0 ? 0 : 1);
		}
		close(hold[0]);
		rg = range_of(p, PAGES(8));
		EXPECT_EQ(0, ring_cmd_full(&self->ring, self->fd,
					   UPALLOC_IOC_POPULATE, &rg, 0,
					   flags[i])) TH_LOG("sqe flags %#x", flags[i]);
		EXPECT_EQ(7, rg.nr_pages);
		close(hold[1]);
		EXPECT_EQ(0, wait_child_ok(pid));
		ASSERT_EQ(0, mprotect(p, PAGES(8), PROT_READ | PROT_WRITE));
		EXPECT_EQ(-1, check_pages(p, 0, 1, 5));
		EXPECT_EQ(-1, check_zero_pages(p, 1, 7));
		ASSERT_EQ(0, munmap(p, PAGES(8)));
	}
}

static void check_decommit_twins(struct __test_metadata *_metadata,
				 FIXTURE_DATA(uring) *self, size_t n,
				 size_t first, size_t count)
{
	struct upa_stats s0, s1, s2;
	struct upalloc_range ri, rr;
	char *a, *b;

	a = upa_map(self->fd, PAGES(n), 0);
	b = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	fill_pages(a, 0, n, 1);
	fill_pages(b, 0, n, 1);
	/* A hole inside the range: decommit must not count it. */
	ASSERT_EQ(0, upa_decommit(self->fd, a + PAGES(first + 1), PAGES(1), NULL));
	ASSERT_EQ(0, upa_decommit(self->fd, b + PAGES(first + 1), PAGES(1), NULL));

	READ_STATS(&s0);
	ri = range_of(a + PAGES(first), PAGES(count));
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_DECOMMIT, &ri));
	READ_STATS(&s1);
	rr = range_of(b + PAGES(first), PAGES(count));
	rr.nr_pages = 12345;
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_DECOMMIT, &rr));
	READ_STATS(&s2);

	EXPECT_EQ(count - 1, ri.nr_pages);
	EXPECT_EQ(ri.nr_pages, rr.nr_pages);
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_decommitted),
		  STAT_DELTA(s2, s1, pages_decommitted));
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_live), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(-(int64_t)(count - 1), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(n - count, upa_pages_present(self->fd, b));

	/* Outside the range the data stays; inside it reads as zero. */
	EXPECT_EQ(-1, check_pages(b, 0, first, 1));
	EXPECT_EQ(-1, check_zero_pages(b, first, count));
	EXPECT_EQ(-1, check_pages(b, first + count, n - first - count, 1));
	ASSERT_EQ(0, munmap(a, PAGES(n)));
	ASSERT_EQ(0, munmap(b, PAGES(n)));
}

TEST_F(uring, decommit_inline_matches_ioctl)
{
	NEED_DEVICE();
	check_decommit_twins(_metadata, self, 16, 3, 9);
}

TEST_F(uring, decommit_in_io_wq_matches_ioctl)
{
	size_t count = self->inline_pages + 24;

	NEED_DEVICE();
	check_decommit_twins(_metadata, self, count + 6, 2, count);
}

TEST_F(uring, set_brk_matches_ioctl)
{
	const size_t n = 64;
	struct upalloc_brk bi, br;
	struct upa_stats s0, s1, s2;
	char *a, *b;

	NEED_DEVICE();
	a = upa_map_heap(self->fd, PAGES(n));
	b = upa_map_heap(self->fd, PAGES(n));
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);

	/* Up: commit 40 pages. */
	ASSERT_EQ(0, upa_set_brk(self->fd, a + PAGES(3), PAGES(40), &bi));
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)(b + PAGES(3));
	br.new_brk = PAGES(40);
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	EXPECT_EQ(bi.old_brk, br.old_brk);
	EXPECT_EQ(0, br.old_brk);
	EXPECT_EQ((uintptr_t)b, br.region_start);
	EXPECT_EQ(bi.region_len, br.region_len);
	EXPECT_EQ(PAGES(n), br.region_len);

	/* A query through the ring reports the new break. */
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)b;
	br.flags = UPALLOC_BRK_QUERY;
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	EXPECT_EQ(PAGES(40), br.old_brk);

	/* Down to 10 pages frees the 30 touched pages above it, both ways. */
	write_pages(a, 0, 40, 1);
	write_pages(b, 0, 40, 1);
	READ_STATS(&s0);
	ASSERT_EQ(0, upa_set_brk(self->fd, a, PAGES(10), &bi));
	READ_STATS(&s1);
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)b;
	br.new_brk = PAGES(10);
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	READ_STATS(&s2);
	EXPECT_EQ(bi.old_brk, br.old_brk);
	EXPECT_EQ(PAGES(40), br.old_brk);
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_live), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(-30, STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_committed),
		  STAT_DELTA(s2, s1, pages_committed));
	EXPECT_EQ(10, upa_pages_present(self->fd, b));

	/* Beyond the region's length: the ioctl's EINVAL, nothing changes. */
	br.new_brk = PAGES(n + 1);
	bi = br;
	bi.addr = (uintptr_t)a;
	EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &bi));
	EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	ASSERT_EQ(0, upa_query_brk(self->fd, b, &br));
	EXPECT_EQ(PAGES(10), br.old_brk);
	ASSERT_EQ(0, munmap(a, PAGES(n)));
	ASSERT_EQ(0, munmap(b, PAGES(n)));
}

TEST_F(uring, set_brk_down_by_many_pages_matches_ioctl)
{
	size_t n = self->inline_pages * 2 + 8;	/* freed in io-wq */
	struct upalloc_brk bi, br;
	struct upa_stats s0, s1, s2;
	char *a, *b;

	NEED_DEVICE();
	a = upa_map_heap(self->fd, PAGES(n));
	b = upa_map_heap(self->fd, PAGES(n));
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, upa_set_brk(self->fd, a, PAGES(n), NULL));
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)b;
	br.new_brk = PAGES(n);
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	write_pages(a, 0, n, 1);
	write_pages(b, 0, n, 1);

	READ_STATS(&s0);
	ASSERT_EQ(0, upa_set_brk(self->fd, a, PAGES(2), &bi));
	READ_STATS(&s1);
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)b + PAGES(1);
	br.new_brk = PAGES(2);
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &br));
	READ_STATS(&s2);
	EXPECT_EQ(bi.old_brk, br.old_brk);
	EXPECT_EQ(PAGES(n), br.old_brk);
	EXPECT_EQ((uintptr_t)b, br.region_start);
	EXPECT_EQ(STAT_DELTA(s1, s0, pages_live), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(-(int64_t)(n - 2), STAT_DELTA(s2, s1, pages_live));
	EXPECT_EQ(2, upa_pages_present(self->fd, b));
	ASSERT_EQ(0, munmap(a, PAGES(n)));
	ASSERT_EQ(0, munmap(b, PAGES(n)));
}

TEST_F(uring, region_info_matches_ioctl)
{
	struct upalloc_region_info bi, br;
	char *p;

	NEED_DEVICE();
	p = upa_map_heap(self->fd, PAGES(32));
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, upa_set_brk(self->fd, p, PAGES(12), NULL));
	write_pages(p, 2, 5, 1);

	ASSERT_EQ(0, upa_region_info(self->fd, p + PAGES(20), &bi));
	memset(&br, 0, sizeof(br));
	br.addr = (uintptr_t)(p + PAGES(20));
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_REGION_INFO, &br));
	EXPECT_EQ(0, memcmp(&bi, &br, sizeof(br)));
	EXPECT_EQ((uintptr_t)p, br.start);
	EXPECT_EQ(PAGES(32), br.len);
	EXPECT_EQ(PAGES(12), br.brk);
	EXPECT_EQ(5, br.pages_present);
	EXPECT_NE(0, br.flags & UPALLOC_REGION_HEAP);
	ASSERT_EQ(0, munmap(p, PAGES(32)));
}

TEST_F(uring, proc_stats_matches_ioctl)
{
	struct upalloc_proc_stats bi, br;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(8), 0);
	ASSERT_NE(NULL, p);
	write_pages(p, 0, 6, 1);

	ASSERT_EQ(0, upa_proc_stats(self->fd, &bi));
	memset(&br, 0, sizeof(br));
	ASSERT_EQ(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_PROC_STATS, &br));
	EXPECT_EQ(0, memcmp(&bi, &br, sizeof(br)));
	EXPECT_EQ(sizeof(br), br.size);
	EXPECT_EQ(6, br.pages_live);
	EXPECT_EQ(1, br.regions_live);
	ASSERT_EQ(0, munmap(p, PAGES(8)));
}

/* ---- bad input gives the ioctl's errors --------------------------------- */

TEST_F(uring, unknown_cmd_op_gives_enotty)
{
	const unsigned int ops[] = {
		_IOWR(UPALLOC_IOC_MAGIC, 0x7f, struct upalloc_range),
		/* VERSION's number with the wrong direction */
		_IOW(UPALLOC_IOC_MAGIC, 0x00, struct upalloc_version),
		_IOWR(UPALLOC_IOC_MAGIC, 0x06, struct upalloc_range),
		_IOWR('N', 0x80, struct upalloc_range),
		0, 1, 0xffffffffu,
	};
	char buf[64] = { 0 };
	size_t i;

	NEED_DEVICE();
	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		EXPECT_EQ(-ENOTTY, upa_ioctl(self->fd, ops[i], buf)) TH_LOG("op %#x", ops[i]);
		/* Rejected before anything was written back. */
		EXPECT_EQ(0, buf[0]);
		EXPECT_EQ(-ENOTTY, ring_cmd(&self->ring, self->fd, ops[i], buf))
			TH_LOG("op %#x", ops[i]);
	}
}

TEST_F(uring, nonzero_payload_reserved_gives_einval)
{
	struct upalloc_version v = { 0 };
	struct upalloc_range r;
	uint64_t nr = 0;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(-EINVAL, ring_cmd_full(&self->ring, self->fd,
					 UPALLOC_IOC_VERSION, &v, 1, 0));
	EXPECT_EQ(0, v.abi_version);
	r = range_of(p, PAGES(4));
	EXPECT_EQ(-EINVAL, ring_cmd_full(&self->ring, self->fd,
					 UPALLOC_IOC_POPULATE, &r, 1ULL << 63, 0));
	/* Refused before anything happened. */
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	EXPECT_EQ(-EINVAL, ring_cmd_full(&self->ring, self->fd,
					 UPALLOC_IOC_POPULATE, &r, 1, IOSQE_ASYNC));
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	/* With the payload clean the same command works. */
	EXPECT_EQ(0, upa_populate(self->fd, p, PAGES(4), &nr));
	EXPECT_EQ(4, nr);
	ASSERT_EQ(0, munmap(p, PAGES(4)));
}

TEST_F(uring, nonzero_struct_reserved_gives_einval)
{
	struct upalloc_range r;
	struct upalloc_brk b;
	struct upalloc_region_info info;
	char *p;
	int i;

	NEED_DEVICE();
	p = upa_map_heap(self->fd, PAGES(16));
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, upa_set_brk(self->fd, p, PAGES(8), NULL));

	for (i = 0; i < 6; i++) {
		r = range_of(p, PAGES(4));
		if (i < 4)
			r.reserved[i] = 1;
		else if (i == 4)
			r.reserved0 = 1;
		else
			r.flags = 1u << 31;
		EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_POPULATE, &r));
		EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd,
					    UPALLOC_IOC_POPULATE, &r)) TH_LOG("case %d", i);
		EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd,
					    UPALLOC_IOC_DECOMMIT, &r)) TH_LOG("case %d", i);
	}
	EXPECT_EQ(0, upa_pages_present(self->fd, p));

	memset(&b, 0, sizeof(b));
	b.addr = (uintptr_t)p;
	b.new_brk = PAGES(16);
	b.reserved[1] = 7;
	EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &b));
	EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_SET_BRK, &b));
	ASSERT_EQ(0, upa_query_brk(self->fd, p, &b));
	EXPECT_EQ(PAGES(8), b.old_brk);

	memset(&info, 0, sizeof(info));
	info.addr = (uintptr_t)p;
	info.reserved0 = 1;
	EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_REGION_INFO, &info));
	EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd,
				    UPALLOC_IOC_REGION_INFO, &info));
	ASSERT_EQ(0, munmap(p, PAGES(16)));
}

TEST_F(uring, bad_arg_pointer_gives_efault)
{
	const unsigned int ops[] = {
		UPALLOC_IOC_VERSION, UPALLOC_IOC_POPULATE, UPALLOC_IOC_DECOMMIT,
		UPALLOC_IOC_SET_BRK, UPALLOC_IOC_REGION_INFO,
		UPALLOC_IOC_PROC_STATS,
	};
	void *bad[3];
	void *unmapped;
	size_t i, j;

	NEED_DEVICE();
	unmapped = mmap(NULL, PAGES(1), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, unmapped);
	ASSERT_EQ(0, munmap(unmapped, PAGES(1)));
	bad[0] = NULL;
	bad[1] = unmapped;
	bad[2] = (void *)0xffff888000000000ULL;	/* kernel address */

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		for (j = 0; j < ARRAY_SIZE(bad); j++) {
			EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, ops[i], bad[j]))
				TH_LOG("op %#x ptr %p", ops[i], bad[j]);
			EXPECT_EQ(-EFAULT, ring_cmd(&self->ring, self->fd, ops[i], bad[j]))
				TH_LOG("op %#x ptr %p", ops[i], bad[j]);
			EXPECT_EQ(-EFAULT, ring_cmd_full(&self->ring, self->fd, ops[i],
							 bad[j], 0, IOSQE_ASYNC))
				TH_LOG("async op %#x ptr %p", ops[i], bad[j]);
		}
	}
}

/* Run one range command both ways and expect the same (documented) error. */
static void expect_same_range_error(struct __test_metadata *_metadata,
				    FIXTURE_DATA(uring) *self, unsigned int op,
				    const void *addr, size_t len, int expected)
{
	struct upalloc_range ri = range_of(addr, len), rr = range_of(addr, len);

	EXPECT_EQ(expected, upa_ioctl(self->fd, op, &ri))
		TH_LOG("ioctl op %#x addr %p len %zu", op, addr, len);
	EXPECT_EQ(expected, ring_cmd(&self->ring, self->fd, op, &rr))
		TH_LOG("ring op %#x addr %p len %zu", op, addr, len);
}

TEST_F(uring, foreign_addresses_give_ioctl_errors)
{
	const unsigned int ops[] = { UPALLOC_IOC_POPULATE, UPALLOC_IOC_DECOMMIT };
	struct upalloc_region_info info;
	char *anon, *p, *hole;
	size_t i;

	NEED_DEVICE();
	anon = mmap(NULL, PAGES(4), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	p = upa_map(self->fd, PAGES(4), 0);
	ASSERT_NE(NULL, p);
	hole = mmap(NULL, PAGES(1), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, PAGES(1)));

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		/* Not an upalloc mapping: EINVAL; nothing mapped: ENOMEM. */
		expect_same_range_error(_metadata, self, ops[i], anon, PAGES(2), -EINVAL);
		expect_same_range_error(_metadata, self, ops[i], hole, PAGES(1), -ENOMEM);
		/* Running past the end of the region, misaligned, empty. */
		expect_same_range_error(_metadata, self, ops[i], p + PAGES(2), PAGES(4), -EINVAL);
		expect_same_range_error(_metadata, self, ops[i], p + 1, PAGES(1), -EINVAL);
		expect_same_range_error(_metadata, self, ops[i], p, 0, -EINVAL);
	}
	memset(&info, 0, sizeof(info));
	info.addr = (uintptr_t)anon;
	EXPECT_EQ(-EINVAL, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_REGION_INFO, &info));
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(4)));
	ASSERT_EQ(0, munmap(anon, PAGES(4)));
}

/*
 * Another process's region: its address means nothing (or something else)
 * here, so a decommit through our ring must fail and leave its data alone.
 */
TEST_F(uring, other_process_region_is_out_of_reach)
{
	struct upa_channel ch;
	struct upalloc_range r;
	uintptr_t addr = 0;
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, channel_open(&ch));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		char *q = upa_map(self->fd, PAGES(8), 0);

		CHILD_CHECK(q);
		fill_pages(q, 0, 8, 7);
		addr = (uintptr_t)q;
		CHILD_CHECK(write(ch.to_parent[1], &addr, sizeof(addr)) == sizeof(addr));
		WAIT_PARENT(&ch);
		CHILD_CHECK(check_pages(q, 0, 8, 7) == -1);
		CHILD_CHECK(upa_pages_present(self->fd, q) == 8);
		_exit(0);
	}
	ASSERT_EQ(sizeof(addr), read(ch.to_parent[0], &addr, sizeof(addr)));
	r = range_of((void *)addr, PAGES(8));
	EXPECT_GT(0, ring_cmd(&self->ring, self->fd, UPALLOC_IOC_DECOMMIT, &r));
	r = range_of((void *)addr, PAGES(8));
	EXPECT_GT(0, ring_cmd_full(&self->ring, self->fd, UPALLOC_IOC_DECOMMIT,
				   &r, 0, IOSQE_ASYNC));
	TELL_CHILD(&ch, 'g');
	EXPECT_EQ(0, wait_child_ok(pid));
	channel_close(&ch);
}

TEST_F(uring, non_device_fd_is_refused)
{
	struct upalloc_version v = { 0 };
	int fd;

	NEED_DEVICE();
	/* (Not /dev/null: it has a ->uring_cmd that accepts anything.) */
	fd = memfd_create("not-upalloc", MFD_CLOEXEC);
	ASSERT_LE(0, fd);
	/*
	 * io_uring itself refuses files without ->uring_cmd (EOPNOTSUPP)
	 * where the ioctl layer says ENOTTY; neither reaches the module.
	 */
	EXPECT_EQ(-ENOTTY, upa_ioctl(fd, UPALLOC_IOC_VERSION, &v));
	EXPECT_EQ(-EOPNOTSUPP, ring_cmd(&self->ring, fd, UPALLOC_IOC_VERSION, &v));
	EXPECT_EQ(0, v.abi_version);
	close(fd);
}

TEST_F(uring, batch_of_commands_completes_each_with_its_result)
{
	enum { N = 12 };
	struct upalloc_range r[N];
	struct io_uring_cqe *cqe;
	bool seen[N] = { false };
	char *p;
	int i, res;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(N), 0);
	ASSERT_NE(NULL, p);
	for (i = 0; i < N; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);

		ASSERT_NE(NULL, sqe);
		r[i] = range_of(p + PAGES(i), PAGES(1));
		/* Every third one is bad: its own error, the others unaffected. */
		if (i % 3 == 2)
			r[i].reserved[2] = 1;
		prep_upalloc_cmd(sqe, self->fd, UPALLOC_IOC_POPULATE, &r[i], 0);
		io_uring_sqe_set_data64(sqe, i);
	}
	ASSERT_EQ(N, io_uring_submit(&self->ring));
	for (i = 0; i < N; i++) {
		ASSERT_EQ(0, io_uring_wait_cqe(&self->ring, &cqe));
		ASSERT_GT(N, cqe->user_data);
		res = cqe->res;
		seen[cqe->user_data] = true;
		if (cqe->user_data % 3 == 2) {
			EXPECT_EQ(-EINVAL, res);
		} else {
			EXPECT_EQ(0, res);
			EXPECT_EQ(1, r[cqe->user_data].nr_pages);
		}
		io_uring_cqe_seen(&self->ring, cqe);
	}
	for (i = 0; i < N; i++)
		EXPECT_TRUE(seen[i]);
	EXPECT_EQ(N - N / 3, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(N)));
}

/*
 * An SQPOLL ring issues commands from its kernel thread, a CLONE_VM thread
 * of the ring's creator: the commands still act on the creator's regions.
 */
TEST_F(uring, sqpoll_ring_acts_on_the_creators_regions)
{
	size_t n = self->inline_pages + 16;
	struct io_uring_params params;
	struct io_uring sq_ring;
	struct upalloc_range r;
	char *p;
	int ret;

	NEED_DEVICE();
	memset(&params, 0, sizeof(params));
	params.flags = IORING_SETUP_SQPOLL;
	params.sq_thread_idle = 100;
	ret = io_uring_queue_init_params(8, &sq_ring, &params);
	if (ret == -EPERM || ret == -EINVAL)
		SKIP(return, "no SQPOLL ring here: %s", strerror(-ret));
	ASSERT_EQ(0, ret);
	p = upa_map(self->fd, PAGES(n), 0);
	ASSERT_NE(NULL, p);
	r = range_of(p, PAGES(6));
	EXPECT_EQ(0, ring_cmd(&sq_ring, self->fd, UPALLOC_IOC_POPULATE, &r));
	EXPECT_EQ(6, r.nr_pages);
	EXPECT_EQ(6, upa_pages_present(self->fd, p));
	r = range_of(p, PAGES(n));	/* large: punted to io-wq */
	EXPECT_EQ(0, ring_cmd(&sq_ring, self->fd, UPALLOC_IOC_DECOMMIT, &r));
	EXPECT_EQ(6, r.nr_pages);
	EXPECT_EQ(0, upa_pages_present(self->fd, p));
	io_uring_queue_exit(&sq_ring);
	ASSERT_EQ(0, munmap(p, PAGES(n)));
}

/*
 * A ring inherited over fork: whoever submits is the process whose regions
 * the command names, so the child's decommit frees the child's copy only.
 */
TEST_F(uring, inherited_ring_acts_on_the_submitter)
{
	struct upalloc_range r;
	pid_t pid;
	char *p;

	NEED_DEVICE();
	p = upa_map(self->fd, PAGES(8), 0);
	ASSERT_NE(NULL, p);
	fill_pages(p, 0, 8, 11);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		r = range_of(p, PAGES(8));
		CHILD_CHECK(ring_cmd(&self->ring, self->fd,
				     UPALLOC_IOC_DECOMMIT, &r) == 0);
		CHILD_CHECK(upa_pages_present(self->fd, p) == 0);
		CHILD_CHECK(check_zero_pages(p, 0, 8) == -1);
		_exit(0);
	}
	ASSERT_EQ(0, wait_child_ok(pid));
	EXPECT_EQ(-1, check_pages(p, 0, 8, 11));
	EXPECT_EQ(8, upa_pages_present(self->fd, p));
	ASSERT_EQ(0, munmap(p, PAGES(8)));
}

/* ---- teardown with work in flight --------------------------------------- */

enum teardown_how {
	TEARDOWN_RING_EXIT,	/* io_uring_queue_exit(), munmap, then exit */
	TEARDOWN_EXIT,		/* _exit() with everything still open */
	TEARDOWN_SIGKILL,	/* killed by the parent */
};

/*
 * A child queues large populates (io-wq) and decommits on several regions,
 * then goes away without waiting for them. Once it is gone every page and
 * region it had must be freed, whatever state the commands were in.
 */
static void teardown_with_work_in_flight(struct __test_metadata *_metadata,
					 FIXTURE_DATA(uring) *self,
					 enum teardown_how how)
{
	enum { REGIONS = 4, CMDS_PER_REGION = 4 };
	const size_t region_pages = 2048;	/* 8 MiB with 4 KiB pages */
	struct upa_stats before, after;
	struct upa_channel ch;
	pid_t pid;
	int status;

	READ_STATS(&before);
	ASSERT_EQ(0, channel_open(&ch));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		static struct upalloc_range r[REGIONS][CMDS_PER_REGION];
		struct io_uring ring;
		char *q[REGIONS];
		size_t chunk = region_pages / CMDS_PER_REGION;
		int i, j;

		CHILD_CHECK(io_uring_queue_init(64, &ring, 0) == 0);
		for (i = 0; i < REGIONS; i++) {
			q[i] = upa_map(self->fd, PAGES(region_pages), 0);
			CHILD_CHECK(q[i]);
			for (j = 0; j < CMDS_PER_REGION; j++) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				unsigned int op = (j == 3) ? UPALLOC_IOC_DECOMMIT
							   : UPALLOC_IOC_POPULATE;

				CHILD_CHECK(sqe);
				r[i][j] = range_of(q[i] + PAGES(j * chunk),
						   PAGES(chunk));
				prep_upalloc_cmd(sqe, self->fd, op, &r[i][j], 0);
				if (j == 1)
					sqe->flags |= IOSQE_ASYNC;
			}
		}
		CHILD_CHECK(io_uring_submit(&ring) == REGIONS * CMDS_PER_REGION);
		TELL_PARENT(&ch, 's');
		if (how == TEARDOWN_RING_EXIT) {
			io_uring_queue_exit(&ring);
			for (i = 0; i < REGIONS; i++)
				CHILD_CHECK(munmap(q[i], PAGES(region_pages)) == 0);
			_exit(0);
		}
		if (how == TEARDOWN_EXIT)
			_exit(0);
		for (;;)
			pause();
	}
	ASSERT_EQ('s', WAIT_CHILD(&ch));
	if (how == TEARDOWN_SIGKILL)
		kill(pid, SIGKILL);
	status = wait_child(pid);
	if (how == TEARDOWN_SIGKILL) {
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	} else {
		EXPECT_EQ(0, status);
	}
	channel_close(&ch);

	/*
	 * The io-wq workers are threads of the child and are reaped with it,
	 * but the ring's final teardown runs from a kernel workqueue: give it
	 * a bounded time to drop its last file references.
	 */
	for (int tries = 0; tries < 200; tries++) {
		READ_STATS(&after);
		if (after.pages_live == before.pages_live &&
		    after.regions_live == before.regions_live)
			break;
		usleep(50 * 1000);
	}
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(STAT_DELTA(after, before, pages_allocated),
		  STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(REGIONS, STAT_DELTA(after, before, regions_created));
}

TEST_F(uring, ring_exit_with_populates_in_flight_leaks_nothing)
{
	NEED_DEVICE();
	teardown_with_work_in_flight(_metadata, self, TEARDOWN_RING_EXIT);
}

TEST_F(uring, process_exit_with_populates_in_flight_leaks_nothing)
{
	NEED_DEVICE();
	teardown_with_work_in_flight(_metadata, self, TEARDOWN_EXIT);
}

TEST_F(uring, sigkill_with_populates_in_flight_leaks_nothing)
{
	NEED_DEVICE();
	teardown_with_work_in_flight(_metadata, self, TEARDOWN_SIGKILL);
}

/* ---- unused SQE fields (issue 11, item 10) ----------------------------- */

/* VERSION with one unused SQE field set: the module must refuse it. */
static int version_with_sqe_field(struct io_uring *ring, int fd, int field,
				  struct upalloc_version *v)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return RING_FAILED;
	prep_upalloc_cmd(sqe, fd, UPALLOC_IOC_VERSION, v, 0);
	switch (field) {
	case 0:
		sqe->ioprio = 1;
		break;
	case 1:
		sqe->addr = 0x1000;
		break;
	case 2:
		sqe->len = 1;
		break;
	case 3:
		sqe->buf_index = 1;
		break;
	}
	if (io_uring_submit(ring) != 1 || io_uring_wait_cqe(ring, &cqe))
		return RING_FAILED;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

TEST_F(uring, nonzero_unused_sqe_fields_give_einval)
{
	static const char *const names[] = { "ioprio", "addr", "len",
					     "buf_index" };
	struct upalloc_version v;
	int i;

	NEED_DEVICE();
	for (i = 0; i < 4; i++) {
		memset(&v, 0, sizeof(v));
		EXPECT_EQ(-EINVAL, version_with_sqe_field(&self->ring, self->fd,
							   i, &v))
			TH_LOG("sqe->%s", names[i]);
		EXPECT_EQ(0, v.abi_version) TH_LOG("sqe->%s", names[i]);
	}
	/* The same command with every unused field 0 still works. */
	EXPECT_EQ(0, version_with_sqe_field(&self->ring, self->fd, -1, &v));
	EXPECT_EQ(UPALLOC_ABI_VERSION, v.abi_version);
}

TEST_F(uring, registered_buffer_flag_gives_einval)
{
	struct upalloc_version v = { 0 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct iovec iov;

	NEED_DEVICE();
	/* Anonymous memory: 6.1 refuses long-term pins of file pages. */
	iov.iov_len = page_size();
	iov.iov_base = mmap(NULL, iov.iov_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, iov.iov_base);
	ASSERT_EQ(0, io_uring_register_buffers(&self->ring, &iov, 1));
	sqe = io_uring_get_sqe(&self->ring);
	ASSERT_NE(NULL, sqe);
	prep_upalloc_cmd(sqe, self->fd, UPALLOC_IOC_VERSION, &v, 0);
	sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
	sqe->buf_index = 0;
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&self->ring, &cqe));
	EXPECT_EQ(-EINVAL, cqe->res);
	io_uring_cqe_seen(&self->ring, cqe);
	EXPECT_EQ(0, v.abi_version);
	io_uring_unregister_buffers(&self->ring);
	munmap(iov.iov_base, iov.iov_len);
}

/* A 128-byte SQE's command area is 80 bytes: the 64 we do not use are 0. */
TEST_F(uring, nonzero_tail_of_big_sqe_command_area_gives_einval)
{
	struct upalloc_version v = { 0 };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct io_uring big;
	int round;

	NEED_DEVICE();
	ASSERT_EQ(0, io_uring_queue_init(4, &big, IORING_SETUP_SQE128));
	for (round = 0; round < 2; round++) {
		sqe = io_uring_get_sqe(&big);
		ASSERT_NE(NULL, sqe);
		memset(sqe, 0, 128);
		prep_upalloc_cmd(sqe, self->fd, UPALLOC_IOC_VERSION, &v, 0);
		if (!round)
			sqe->cmd[79] = 1;
		ASSERT_EQ(1, io_uring_submit(&big));
		ASSERT_EQ(0, io_uring_wait_cqe(&big, &cqe));
		EXPECT_EQ(round ? 0 : -EINVAL, cqe->res);
		io_uring_cqe_seen(&big, cqe);
		EXPECT_EQ(round ? UPALLOC_ABI_VERSION : 0, v.abi_version);
	}
	io_uring_queue_exit(&big);
}

/* ---- cancellation stops a long POPULATE (issue 11, item 10) ------------- */

/*
 * A POPULATE of 256 MiB running in io-wq is cancelled (IORING_OP_ASYNC_CANCEL,
 * which io-wq delivers to its worker as TIF_NOTIFY_SIGNAL, as it does on
 * ring teardown and exec; not a fatal signal). It must stop early with
 * -EINTR, leaving part of the region populated; a module that only checks
 * fatal signals populates to the end and completes with 0. (Closing the
 * ring while the process lives is no test: unmapping the rings waits for
 * the mmap lock that POPULATE holds.)
 */
#define CANCEL_PAGES	65536

TEST_F_TIMEOUT(uring, cancel_stops_long_populate_in_io_wq, 120)
{
	struct upalloc_range rg;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int res_pop = 1, res_cancel = 1, i, tries;
	uint64_t p0 = 0, p1;
	char *q;

	NEED_DEVICE();
	q = upa_map(self->fd, PAGES(CANCEL_PAGES), 0);
	ASSERT_NE(NULL, q);
	sqe = io_uring_get_sqe(&self->ring);
	ASSERT_NE(NULL, sqe);
	rg = range_of(q, PAGES(CANCEL_PAGES));
	prep_upalloc_cmd(sqe, self->fd, UPALLOC_IOC_POPULATE, &rg, 0);
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data64(sqe, 1);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	/* Wait until the worker is under way. */
	for (tries = 0; tries < 1000 && p0 < 256; tries++) {
		usleep(1000);
		p0 = upa_pages_present(self->fd, q);
	}
	ASSERT_LE(256, p0);
	sqe = io_uring_get_sqe(&self->ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_cancel64(sqe, 1, 0);
	io_uring_sqe_set_data64(sqe, 2);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, io_uring_wait_cqe(&self->ring, &cqe));
		if (cqe->user_data == 1)
			res_pop = cqe->res;
		else
			res_cancel = cqe->res;
		io_uring_cqe_seen(&self->ring, cqe);
	}
	p1 = upa_pages_present(self->fd, q);
	TH_LOG("pages present: %llu at the cancel, %llu at the end (of %d); results %d, cancel %d",
	       (unsigned long long)p0, (unsigned long long)p1, CANCEL_PAGES,
	       res_pop, res_cancel);
	EXPECT_EQ(-EINTR, res_pop);
	EXPECT_GT(CANCEL_PAGES, p1);
	EXPECT_EQ(0, munmap(q, PAGES(CANCEL_PAGES)));
}

/* ---- the knob that decides inline vs io-wq ------------------------------ */

TEST_F(uring, inline_pages_parameter_is_exposed)
{
	uint64_t v = 0;

	NEED_DEVICE();
	ASSERT_EQ(0, upa_param_read(URING_PARAM, &v));
	EXPECT_EQ(self->inline_pages, v);
}

UPALLOC_TEST_MAIN
