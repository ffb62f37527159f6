// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the ioctl ABI and bad input (issue 2, items 8 and 10). The
 * VERSION query reports the module's ABI; unknown commands fail with ENOTTY,
 * bad pointers with EFAULT; every non-zero reserved field and unknown flag of
 * every command fails with EINVAL; unaligned, empty, overflowing and
 * region-crossing ranges fail with EINVAL, addresses outside the caller's
 * upalloc regions with EINVAL (ENOMEM when nothing is mapped there); and a
 * refused command changes nothing.
 */
#include "upalloc_test.h"

#define NPAGES 8

FIXTURE(abi) {
	int fd;
	char *p;
};

FIXTURE_SETUP(abi)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
	/* Pages 0..3 present with a pattern, 4..7 absent. */
	fill_pages(self->p, 0, 4, 1);
}

FIXTURE_TEARDOWN(abi)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

/* The fixture's region is exactly as set up. */
static void expect_region_unchanged(struct __test_metadata *_metadata, int fd,
				    char *p)
{
	struct upalloc_region_info info;

	ASSERT_EQ(0, upa_region_info(fd, p, &info));
	EXPECT_EQ(PAGES(NPAGES), info.len);
	EXPECT_EQ(PAGES(NPAGES), info.brk);
	EXPECT_EQ(4, info.pages_present);
	EXPECT_EQ(-1, check_pages(p, 0, 4, 1));
}

TEST_F(abi, version_ioctl_reports_module_abi)
{
	const uint64_t required = UPALLOC_FEAT_HEAP | UPALLOC_FEAT_DECOMMIT |
				  UPALLOC_FEAT_POPULATE | UPALLOC_FEAT_PROC_STATS;
	const uint64_t known = required | UPALLOC_FEAT_URING_CMD;
	struct upalloc_version v;
	size_t i;

	NEED_DEVICE();
	/* Outputs only: garbage in every field is overwritten. */
	memset(&v, 0xff, sizeof(v));
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, &v));
	EXPECT_EQ(UPALLOC_ABI_VERSION, v.abi_version);
	EXPECT_EQ(page_size(), v.page_size);
	EXPECT_EQ(required, v.features & required);
	EXPECT_EQ(0, v.features & ~known);
	EXPECT_NE(0, v.max_region_bytes);
	EXPECT_EQ(0, v.max_region_bytes % page_size());
	for (i = 0; i < ARRAY_SIZE(v.reserved); i++)
		EXPECT_EQ(0, v.reserved[i]);
	EXPECT_EQ(64, sizeof(v));
}

TEST_F(abi, command_structs_are_64_bytes)
{
	NEED_DEVICE();
	EXPECT_EQ(64, sizeof(struct upalloc_range));
	EXPECT_EQ(64, sizeof(struct upalloc_brk));
	EXPECT_EQ(64, sizeof(struct upalloc_region_info));
	EXPECT_EQ(64, sizeof(struct upalloc_version));
}

TEST_F(abi, proc_stats_output_reserved_fields_are_zeroed)
{
	struct upalloc_proc_stats ps;
	size_t i;

	NEED_DEVICE();
	memset(&ps, 0xff, sizeof(ps));
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_PROC_STATS, &ps));
	EXPECT_EQ(sizeof(ps), ps.size);
	EXPECT_EQ(UPALLOC_ABI_VERSION, ps.version);
	EXPECT_EQ(1, ps.regions_live);
	EXPECT_EQ(4, ps.pages_live);
	for (i = 0; i < ARRAY_SIZE(ps.reserved); i++)
		EXPECT_EQ(0, ps.reserved[i]);
}

TEST_F(abi, unknown_ioctl_is_enotty)
{
	char buf[256];
	const unsigned long bad[] = {
		_IO(UPALLOC_IOC_MAGIC, 0x7f),
		_IOR(UPALLOC_IOC_MAGIC, 0x06, struct upalloc_proc_stats),
		_IOWR(UPALLOC_IOC_MAGIC, 0x3f, struct upalloc_range),
		/* Known numbers with the wrong size or direction. */
		_IOWR(UPALLOC_IOC_MAGIC, 0x01, char[32]),
		_IOW(UPALLOC_IOC_MAGIC, 0x02, struct upalloc_range),
		_IOR(UPALLOC_IOC_MAGIC, 0x03, struct upalloc_brk),
		_IOWR(UPALLOC_IOC_MAGIC, 0x04, char[128]),
		_IOW(UPALLOC_IOC_MAGIC, 0x00, struct upalloc_version),
		_IOWR(UPALLOC_IOC_MAGIC, 0x05, struct upalloc_proc_stats),
		/* Another driver's magic, and a tty ioctl. */
		_IOWR('x', 0x01, struct upalloc_range),
		0x5401,	/* TCGETS */
	};
	size_t i;

	NEED_DEVICE();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(buf, 0, sizeof(buf));
		EXPECT_EQ(-ENOTTY, upa_ioctl(self->fd, bad[i], buf))
			TH_LOG("command %#lx", bad[i]);
	}
	expect_region_unchanged(_metadata, self->fd, self->p);
}

static const unsigned long all_commands[] = {
	UPALLOC_IOC_VERSION, UPALLOC_IOC_POPULATE, UPALLOC_IOC_DECOMMIT,
	UPALLOC_IOC_SET_BRK, UPALLOC_IOC_REGION_INFO, UPALLOC_IOC_PROC_STATS,
};

TEST_F(abi, null_argument_is_efault)
{
	size_t i;

	NEED_DEVICE();
	for (i = 0; i < ARRAY_SIZE(all_commands); i++)
		EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, all_commands[i], NULL))
			TH_LOG("command %#lx", all_commands[i]);
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, unmapped_or_truncated_argument_is_efault)
{
	char *guard;
	size_t i;

	NEED_DEVICE();
	/* One readable page followed by an inaccessible one. */
	guard = mmap(NULL, PAGES(2), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, guard);
	ASSERT_EQ(0, mprotect(guard + PAGES(1), PAGES(1), PROT_NONE));

	for (i = 0; i < ARRAY_SIZE(all_commands); i++) {
		unsigned long cmd = all_commands[i];

		/* Entirely in the inaccessible page. */
		EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, cmd, guard + PAGES(1)))
			TH_LOG("command %#lx", cmd);
		/* Straddling into it: the last 8 bytes are not there. */
		memset(guard, 0, PAGES(1));
		EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, cmd,
					     guard + PAGES(1) - _IOC_SIZE(cmd) + 8))
			TH_LOG("command %#lx", cmd);
	}
	/* Kernel addresses are no better. */
	EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, UPALLOC_IOC_VERSION,
				     (void *)0xffff888000000000UL));
	expect_region_unchanged(_metadata, self->fd, self->p);
	munmap(guard, PAGES(2));
}

TEST_F(abi, read_only_output_buffer_is_efault)
{
	struct upalloc_region_info *info;
	char *ro;

	NEED_DEVICE();
	ro = mmap(NULL, PAGES(1), PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	info = (struct upalloc_region_info *)ro;
	info->addr = (uintptr_t)self->p;
	ASSERT_EQ(0, mprotect(ro, PAGES(1), PROT_READ));
	EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, UPALLOC_IOC_VERSION, ro));
	EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, UPALLOC_IOC_PROC_STATS, ro));
	EXPECT_EQ(-EFAULT, upa_ioctl(self->fd, UPALLOC_IOC_REGION_INFO, ro));
	munmap(ro, PAGES(1));
}

/*
 * Build a valid argument for cmd, then corrupt the 32-bit word at byte
 * offset off with value: the module must answer EINVAL and do nothing.
 */
union cmd_arg {
	struct upalloc_range range;
	struct upalloc_brk brk;
	struct upalloc_region_info info;
	unsigned char bytes[64];
};

static void fill_valid_arg(unsigned long cmd, void *arg, char *p)
{
	memset(arg, 0, sizeof(union cmd_arg));
	if (cmd == UPALLOC_IOC_POPULATE || cmd == UPALLOC_IOC_DECOMMIT) {
		struct upalloc_range *r = arg;

		r->addr = (uintptr_t)p;
		r->len = PAGES(NPAGES);
	} else if (cmd == UPALLOC_IOC_SET_BRK) {
		struct upalloc_brk *b = arg;

		/* A no-op move would do nothing anyway: lower it to 0. */
		b->addr = (uintptr_t)p;
		b->new_brk = 0;
	} else {
		struct upalloc_region_info *i = arg;

		i->addr = (uintptr_t)p;
	}
}

struct reserved_word {
	unsigned long cmd;
	const char *field;
	size_t offset;	/* of a 32-bit word that must be zero */
};

#define RANGE_WORD(f, extra) \
	{ UPALLOC_IOC_POPULATE, #f, offsetof(struct upalloc_range, f) + (extra) }, \
	{ UPALLOC_IOC_DECOMMIT, #f, offsetof(struct upalloc_range, f) + (extra) }
#define BRK_WORD(f, extra) \
	{ UPALLOC_IOC_SET_BRK, #f, offsetof(struct upalloc_brk, f) + (extra) }
#define INFO_WORD(f, extra) \
	{ UPALLOC_IOC_REGION_INFO, #f, offsetof(struct upalloc_region_info, f) + (extra) }

static const struct reserved_word reserved_words[] = {
	RANGE_WORD(reserved0, 0),
	RANGE_WORD(reserved[0], 0), RANGE_WORD(reserved[0], 4),
	RANGE_WORD(reserved[1], 0), RANGE_WORD(reserved[1], 4),
	RANGE_WORD(reserved[2], 0), RANGE_WORD(reserved[2], 4),
	RANGE_WORD(reserved[3], 0), RANGE_WORD(reserved[3], 4),
	BRK_WORD(reserved0, 0),
	BRK_WORD(reserved[0], 0), BRK_WORD(reserved[0], 4),
	BRK_WORD(reserved[1], 0), BRK_WORD(reserved[1], 4),
	INFO_WORD(reserved0, 0),
	INFO_WORD(reserved[0], 0), INFO_WORD(reserved[0], 4),
};

TEST_F(abi, nonzero_reserved_field_is_einval_for_every_command)
{
	union cmd_arg arg;
	const uint32_t values[] = { 1, 0x80000000u, 0xffffffffu };
	struct upa_stats before, after;
	size_t i, k;

	NEED_DEVICE();
	READ_STATS(&before);
	for (i = 0; i < ARRAY_SIZE(reserved_words); i++) {
		const struct reserved_word *w = &reserved_words[i];

		for (k = 0; k < ARRAY_SIZE(values); k++) {
			fill_valid_arg(w->cmd, &arg, self->p);
			memcpy(arg.bytes + w->offset, &values[k], 4);
			EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, w->cmd, &arg))
				TH_LOG("command %#lx field %s+%zu = %#x", w->cmd,
				       w->field, w->offset, values[k]);
		}
	}
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, valid_arguments_of_the_reserved_field_test_work)
{
	union cmd_arg arg;
	char *q;

	NEED_DEVICE();
	/* The same arguments with every reserved word zero succeed. */
	q = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, q);
	fill_valid_arg(UPALLOC_IOC_POPULATE, &arg, q);
	EXPECT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_POPULATE, &arg));
	EXPECT_EQ(NPAGES, arg.range.nr_pages);
	fill_valid_arg(UPALLOC_IOC_DECOMMIT, &arg, q);
	EXPECT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_DECOMMIT, &arg));
	EXPECT_EQ(NPAGES, arg.range.nr_pages);
	fill_valid_arg(UPALLOC_IOC_REGION_INFO, &arg, q);
	EXPECT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_REGION_INFO, &arg));
	EXPECT_EQ((uintptr_t)q, arg.info.start);
	fill_valid_arg(UPALLOC_IOC_SET_BRK, &arg, q);
	EXPECT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &arg));
	EXPECT_EQ(PAGES(NPAGES), arg.brk.old_brk);
	ASSERT_EQ(0, munmap(q, PAGES(NPAGES)));
}

TEST_F(abi, unknown_flag_is_einval_for_every_command)
{
	struct upalloc_range r;
	struct upalloc_brk b;
	int bit;

	NEED_DEVICE();
	for (bit = 0; bit < 32; bit++) {
		fill_valid_arg(UPALLOC_IOC_POPULATE, &r, self->p);
		r.flags = 1U << bit;
		EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_POPULATE, &r))
			TH_LOG("populate flag bit %d", bit);
		fill_valid_arg(UPALLOC_IOC_DECOMMIT, &r, self->p);
		r.flags = 1U << bit;
		EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_DECOMMIT, &r))
			TH_LOG("decommit flag bit %d", bit);
		if ((1U << bit) == UPALLOC_BRK_QUERY)
			continue;
		fill_valid_arg(UPALLOC_IOC_SET_BRK, &b, self->p);
		b.flags = 1U << bit;
		EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &b))
			TH_LOG("set_brk flag bit %d", bit);
		b.flags |= UPALLOC_BRK_QUERY;
		EXPECT_EQ(-EINVAL, upa_ioctl(self->fd, UPALLOC_IOC_SET_BRK, &b))
			TH_LOG("set_brk flag bit %d with QUERY", bit);
	}
	expect_region_unchanged(_metadata, self->fd, self->p);
}

/* POPULATE and DECOMMIT both refuse [addr, addr + len) with err. */
static void expect_range_refused(struct __test_metadata *_metadata, int fd,
				 uint64_t addr, uint64_t len, int err)
{
	struct upalloc_range r = { .addr = addr, .len = len, .nr_pages = 77 };

	EXPECT_EQ(err, upa_ioctl(fd, UPALLOC_IOC_POPULATE, &r))
		TH_LOG("populate %#llx + %#llx", (unsigned long long)addr,
		       (unsigned long long)len);
	r = (struct upalloc_range){ .addr = addr, .len = len, .nr_pages = 77 };
	EXPECT_EQ(err, upa_ioctl(fd, UPALLOC_IOC_DECOMMIT, &r))
		TH_LOG("decommit %#llx + %#llx", (unsigned long long)addr,
		       (unsigned long long)len);
}

TEST_F(abi, unaligned_range_is_einval)
{
	uint64_t p = (uintptr_t)self->p;

	NEED_DEVICE();
	expect_range_refused(_metadata, self->fd, p + 1, PAGES(1), -EINVAL);
	expect_range_refused(_metadata, self->fd, p + PAGES(1) - 8, PAGES(1), -EINVAL);
	expect_range_refused(_metadata, self->fd, p, 100, -EINVAL);
	expect_range_refused(_metadata, self->fd, p, PAGES(2) + 1, -EINVAL);
	expect_range_refused(_metadata, self->fd, p, PAGES(1) - 1, -EINVAL);
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, zero_length_range_is_einval)
{
	NEED_DEVICE();
	expect_range_refused(_metadata, self->fd, (uintptr_t)self->p, 0, -EINVAL);
	expect_range_refused(_metadata, self->fd, (uintptr_t)self->p + PAGES(4), 0, -EINVAL);
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, overflowing_range_is_einval)
{
	uint64_t p = (uintptr_t)self->p;
	uint64_t page_mask = ~(uint64_t)(page_size() - 1);

	NEED_DEVICE();
	/* addr + len wraps around 2^64. */
	expect_range_refused(_metadata, self->fd, p, page_mask, -EINVAL);
	expect_range_refused(_metadata, self->fd, p, (0ULL - p) & page_mask, -EINVAL);
	expect_range_refused(_metadata, self->fd, p + PAGES(1), 1ULL << 63, -EINVAL);
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, range_crossing_region_end_is_einval)
{
	uint64_t p = (uintptr_t)self->p;

	NEED_DEVICE();
	expect_range_refused(_metadata, self->fd, p + PAGES(NPAGES - 1), PAGES(2), -EINVAL);
	expect_range_refused(_metadata, self->fd, p, PAGES(NPAGES + 1), -EINVAL);
	expect_range_refused(_metadata, self->fd, p + PAGES(2), PAGES(NPAGES), -EINVAL);
	expect_region_unchanged(_metadata, self->fd, self->p);
}

TEST_F(abi, range_spanning_two_regions_is_einval)
{
	char *area, *a, *b;

	NEED_DEVICE();
	/* Two regions back to back, with anonymous memory before them. */
	area = mmap(NULL, PAGES(9), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	a = mmap(area + PAGES(1), PAGES(4), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, self->fd, 0);
	ASSERT_EQ(area + PAGES(1), a);
	b = mmap(area + PAGES(5), PAGES(4), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, self->fd, 0);
	ASSERT_EQ(area + PAGES(5), b);
	fill_pages(a, 0, 4, 2);
	fill_pages(b, 0, 4, 3);

	expect_range_refused(_metadata, self->fd, (uintptr_t)a + PAGES(2), PAGES(4), -EINVAL);
	expect_range_refused(_metadata, self->fd, (uintptr_t)a, PAGES(8), -EINVAL);
	/* Starting in anonymous memory, ending in a region. */
	expect_range_refused(_metadata, self->fd, (uintptr_t)area, PAGES(2), -EINVAL);
	EXPECT_EQ(4, upa_pages_present(self->fd, a));
	EXPECT_EQ(4, upa_pages_present(self->fd, b));
	EXPECT_EQ(-1, check_pages(a, 0, 4, 2));
	EXPECT_EQ(-1, check_pages(b, 0, 4, 3));
	ASSERT_EQ(0, munmap(area, PAGES(9)));
}

TEST_F(abi, foreign_addresses_are_einval_or_enomem)
{
	struct upalloc_region_info info;
	char *anon, *hole;

	NEED_DEVICE();
	anon = mmap(NULL, PAGES(2), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, anon);
	hole = mmap(NULL, PAGES(2), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	ASSERT_EQ(0, munmap(hole, PAGES(2)));

	/* Mapped, but not upalloc: EINVAL. */
	expect_range_refused(_metadata, self->fd, (uintptr_t)anon, PAGES(1), -EINVAL);
	EXPECT_EQ(-EINVAL, upa_region_info(self->fd, anon, &info));
	EXPECT_EQ(-EINVAL, upa_set_brk(self->fd, anon, 0, NULL));
	/* Nothing mapped: ENOMEM. */
	expect_range_refused(_metadata, self->fd, (uintptr_t)hole, PAGES(1), -ENOMEM);
	EXPECT_EQ(-ENOMEM, upa_region_info(self->fd, hole, &info));
	EXPECT_EQ(-ENOMEM, upa_set_brk(self->fd, hole, 0, NULL));
	EXPECT_EQ(-ENOMEM, upa_region_info(self->fd, NULL, &info));
	expect_range_refused(_metadata, self->fd, 0, PAGES(1), -ENOMEM);
	/* Beyond the user address space: nothing of the caller is there. */
	expect_range_refused(_metadata, self->fd, 0xffff888000000000ULL, PAGES(1), -ENOMEM);
	EXPECT_EQ(-ENOMEM, upa_region_info(self->fd, (void *)0xffff888000000000UL, &info));
	expect_region_unchanged(_metadata, self->fd, self->p);
	munmap(anon, PAGES(2));
}

UPALLOC_TEST_MAIN
