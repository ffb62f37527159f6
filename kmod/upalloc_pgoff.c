// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc page-offset ranges.
 *
 * Every fork family owns one range of the device's page-offset space,
 * which its regions put in vm_pgoff: the fault handler finds a page's
 * index as vmf->pgoff - base, and all of the device's VMAs sit in the one
 * i_mmap tree of its inode, where distinct ranges keep them from
 * overlapping (and traces name a region by its base). A range is taken
 * when an mmap creates a family and given back when the family's last
 * region is released, or when the mmap fails. (It used to come from a
 * counter that never went back, so failed or unmapped mmaps used the space
 * up for good and then every mmap failed.)
 *
 * Layout: offsets stay below 2^51 so that pgoff << PAGE_SHIFT fits in
 * loff_t. The space is cut into 64 zones of 2^45 pages; zone k holds slots
 * of 2^k pages for the regions of 2^(k-1) + 1 .. 2^k pages, numbered by an
 * IDA, so a range is one slot and freeing needs nothing but its base. A
 * region fits a zone up to k = 45, far beyond any address space (64 TiB is
 * 2^34 pages). A zone has 2^(45-k) slots (at most INT_MAX): 2^19 regions
 * of the default max_region_pages (2^26) can be alive at once, and offset
 * 0 is never used.
 *
 * offset_space_pages (a module parameter, root only) shrinks the space for
 * tests: each zone then offers only its share of it, a 64th, so that
 * running out of offsets takes a few thousand mmaps instead of millions.
 */
#include <linux/bits.h>
#include <linux/idr.h>
#include <linux/log2.h>
#include <linux/moduleparam.h>

#include "upalloc.h"

#define UPALLOC_ZONE_SHIFT	45
#define UPALLOC_NR_ZONES	(UPALLOC_ZONE_SHIFT + 1)
/* 64 zones of 2^45 pages: the whole space, and the parameter's maximum. */
#define UPALLOC_SPACE_SHIFT	(UPALLOC_ZONE_SHIFT + 6)

static unsigned long offset_space_pages = BIT_ULL(UPALLOC_SPACE_SHIFT);
module_param(offset_space_pages, ulong, 0644);
MODULE_PARM_DESC(offset_space_pages,
		 "Page-offset space regions take their ranges from, for tests (default and most 2^51)");

static struct ida upalloc_pgoff_zones[UPALLOC_NR_ZONES];

void upalloc_pgoff_init(void)
{
	int k;

	for (k = 0; k < UPALLOC_NR_ZONES; k++)
		ida_init(&upalloc_pgoff_zones[k]);
}

/*
 * Take a free range of at least nr_pages (>= 1) pages. Returns 0 or
 * -ENOMEM (no free slot of that size, or no memory for the IDA).
 */
int upalloc_pgoff_alloc(pgoff_t nr_pages, pgoff_t *base)
{
	unsigned long space = READ_ONCE(offset_space_pages);
	unsigned int k = order_base_2(nr_pages);
	unsigned long slots;
	int slot;

	if (k >= UPALLOC_NR_ZONES)
		return -ENOMEM;
	/* A zone's share of the space, in slots of 2^k pages. */
	space = min_t(unsigned long, space, BIT_ULL(UPALLOC_SPACE_SHIFT));
	slots = (space >> (UPALLOC_SPACE_SHIFT - UPALLOC_ZONE_SHIFT)) >> k;
	slots = min_t(unsigned long, slots, (unsigned long)INT_MAX + 1);
	/* Zone 0 never hands out slot 0. */
	if (slots <= (k ? 0 : 1))
		return -ENOMEM;
	slot = ida_alloc_range(&upalloc_pgoff_zones[k], k ? 0 : 1, slots - 1,
			       GFP_KERNEL_ACCOUNT);
	if (slot < 0)
		return -ENOMEM;
	*base = ((pgoff_t)k << UPALLOC_ZONE_SHIFT) + ((pgoff_t)slot << k);
	return 0;
}

/* Give back the range that starts at base. */
void upalloc_pgoff_free(pgoff_t base)
{
	unsigned int k = base >> UPALLOC_ZONE_SHIFT;
	pgoff_t slot = (base & (BIT_ULL(UPALLOC_ZONE_SHIFT) - 1)) >> k;

	ida_free(&upalloc_pgoff_zones[k], slot);
}

/* Module exit: every family is gone, every zone should be empty. */
void upalloc_pgoff_exit(void)
{
	int k;

	for (k = 0; k < UPALLOC_NR_ZONES; k++) {
		WARN_ON(!ida_is_empty(&upalloc_pgoff_zones[k]));
		ida_destroy(&upalloc_pgoff_zones[k]);
	}
}
