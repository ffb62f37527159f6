// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc commands. upalloc_do_cmd() is the one entry point, shared by
 * ioctl and io_uring passthrough: it validates the whole argument,
 * and every address is looked up in the calling process's own VMAs, so a
 * descriptor passed to another process only ever reaches that process's
 * regions.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "upalloc.h"
#include "upalloc_compat.h"

static bool is_zeroed(const void *p, size_t size)
{
	return !memchr_inv(p, 0, size);
}

static long cmd_version(void __user *arg)
{
	struct upalloc_version v = {
		.abi_version = UPALLOC_ABI_VERSION,
		.page_size = PAGE_SIZE,
		.features = UPALLOC_FEAT_HEAP | UPALLOC_FEAT_DECOMMIT |
			    UPALLOC_FEAT_POPULATE | UPALLOC_FEAT_PROC_STATS |
			    UPALLOC_FEAT_URING_CMD,
		.max_region_bytes =
			(u64)READ_ONCE(upalloc_max_region_pages) << PAGE_SHIFT,
	};

	return copy_to_user(arg, &v, sizeof(v)) ? -EFAULT : 0;
}

/*
 * The caller's region holding [addr, addr + len), mmap lock held (also
 * io_uring's peek at a break move, upalloc_uring.c).
 * -ENOMEM: nothing is mapped at addr; -EINVAL: not an upalloc region of
 * the caller, or the range leaves it.
 */
int upalloc_cmd_lookup(u64 addr, u64 len, struct vm_area_struct **vmap,
		       struct upalloc_region **rp)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct upalloc_region *r;

	vma = vma_lookup(mm, untagged_addr(addr));
	if (!vma)
		return -ENOMEM;
	r = vma->vm_private_data;
	if (!upalloc_vma_is_ours(vma) || !r || r->mm != mm)
		return -EINVAL;
	if (len > vma->vm_end - untagged_addr(addr))
		return -EINVAL;
	*vmap = vma;
	*rp = r;
	return 0;
}

static int range_check(const struct upalloc_range *rg)
{
	if (rg->flags || rg->reserved0 ||
	    !is_zeroed(rg->reserved, sizeof(rg->reserved)))
		return -EINVAL;
	if (!rg->len || !PAGE_ALIGNED(rg->addr) || !PAGE_ALIGNED(rg->len) ||
	    rg->addr + rg->len < rg->addr)
		return -EINVAL;
	return 0;
}

/*
 * Map the populated range [first, last) of a fork parent or child through
 * the fault path, so that touching it takes no fault: writable where the
 * region holds the page alone, read-only where the page is still shared
 * with a fork relative (populating never copies: the first write does, as
 * it would anyway), and not at all where such a page would have to be
 * mapped read-only in a VMA without VM_READ (PROT_WRITE only). These
 * faults count like any other.
 */
static int populate_map(struct vm_area_struct *vma, pgoff_t first,
			pgoff_t last)
{
	struct upalloc_region *r = vma->vm_private_data;
	bool writable = vma->vm_flags & VM_WRITE;
	unsigned int flags;
	pgoff_t idx;
	int err;

	/* PROT_NONE: the pages are allocated, there is nothing to map. */
	if (!(vma->vm_flags & (VM_READ | VM_WRITE)))
		return 0;
	for (idx = first; idx < last; idx++) {
		if (upalloc_should_stop())
			return -EINTR;
		flags = writable && upalloc_region_page_exclusive(r, idx) ?
			FAULT_FLAG_WRITE : 0;
		/*
		 * Shared with a relative in a VMA without VM_READ: it could
		 * only be mapped for writing, which needs a copy, and the
		 * core refuses the read fault (EFAULT). Its first write maps
		 * it.
		 */
		if (!flags && !(vma->vm_flags & VM_READ))
			continue;
		/* No unlock pointer: the mmap lock stays held throughout. */
		err = fixup_user_fault(vma->vm_mm,
				       vma->vm_start + (idx << PAGE_SHIFT),
				       flags, NULL);
		/* The core reports a memory error as EFAULT here. */
		if (err == -EFAULT && upalloc_region_page_poisoned(r, idx))
			err = -EHWPOISON;
		if (err)
			return err;
		cond_resched();
	}
	return 0;
}

/* POPULATE and DECOMMIT: a page range below the break. */
static long cmd_range(struct upalloc_range *rgp, void __user *arg,
		      bool populate)
{
	struct mm_struct *mm = current->mm;
	struct upalloc_range rg = *rgp;
	struct vm_area_struct *vma;
	struct upalloc_region *r;
	pgoff_t first, last;
	u64 nr = 0;
	int err;

	err = range_check(&rg);
	if (err)
		return err;
	if (!mm)
		return -EINVAL;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	err = upalloc_cmd_lookup(rg.addr, rg.len, &vma, &r);
	if (err)
		goto out_unlock;
	first = (untagged_addr(rg.addr) - vma->vm_start) >> PAGE_SHIFT;
	last = first + (rg.len >> PAGE_SHIFT);
	if (last > READ_ONCE(r->brk)) {
		err = -EINVAL;
		goto out_unlock;
	}
	if (populate && vma->vm_ops == &upalloc_vm_ops &&
	    (vma->vm_flags & (VM_READ | VM_WRITE))) {
		/* Never forked: map in batches, without faults. */
		err = upalloc_region_populate(r, vma, first, last, &nr);
	} else if (populate) {
		err = upalloc_region_fill(r, first, last, &nr);
		if (!err)
			err = populate_map(vma, first, last);
	} else {
		nr = upalloc_region_decommit(r, vma, first, last);
	}
out_unlock:
	mmap_read_unlock(mm);
	if (err)
		return err;
	rg.nr_pages = nr;
	return copy_to_user(arg, &rg, sizeof(rg)) ? -EFAULT : 0;
}

static long cmd_set_brk(struct upalloc_brk *bp, void __user *arg)
{
	struct mm_struct *mm = current->mm;
	struct upalloc_brk b = *bp;
	struct vm_area_struct *vma;
	struct upalloc_region *r;
	pgoff_t old = 0;
	int err;

	if ((b.flags & ~UPALLOC_BRK_QUERY) || b.reserved0 ||
	    !is_zeroed(b.reserved, sizeof(b.reserved)))
		return -EINVAL;
	if (!mm)
		return -EINVAL;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	err = upalloc_cmd_lookup(b.addr, 1, &vma, &r);
	if (err)
		goto out_unlock;
	b.region_start = vma->vm_start;
	b.region_len = (u64)r->nr_pages << PAGE_SHIFT;
	if (b.flags & UPALLOC_BRK_QUERY) {
		old = READ_ONCE(r->brk);
	} else if (!PAGE_ALIGNED(b.new_brk) || b.new_brk > b.region_len) {
		err = -EINVAL;
	} else {
		err = upalloc_region_set_brk(r, vma, b.new_brk >> PAGE_SHIFT,
					     &old);
	}
out_unlock:
	mmap_read_unlock(mm);
	if (err)
		return err;
	b.old_brk = (u64)old << PAGE_SHIFT;
	return copy_to_user(arg, &b, sizeof(b)) ? -EFAULT : 0;
}

static long cmd_region_info(struct upalloc_region_info *infop,
			    void __user *arg)
{
	struct upalloc_region_info info = *infop;
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct upalloc_region *r;
	int err;

	if (info.reserved0 || !is_zeroed(info.reserved, sizeof(info.reserved)))
		return -EINVAL;
	if (!mm)
		return -EINVAL;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	err = upalloc_cmd_lookup(info.addr, 1, &vma, &r);
	if (!err) {
		info.start = vma->vm_start;
		upalloc_region_describe(r, &info);
	}
	mmap_read_unlock(mm);
	if (err)
		return err;
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long cmd_proc_stats(void __user *arg)
{
	struct upalloc_proc_stats st;

	upalloc_proc_fill_stats(&st);
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

/*
 * Read the input of cmd from arg, once: every decision about the command
 * (io_uring's inline or io-wq, upalloc_uring.c) and its execution use this
 * copy, so a concurrent write to the user's structure cannot make them
 * disagree. Commands without input copy nothing.
 */
int upalloc_cmd_copy_in(unsigned int cmd, void __user *arg,
			union upalloc_cmd_args *a)
{
	size_t size;

	switch (cmd) {
	case UPALLOC_IOC_POPULATE:
	case UPALLOC_IOC_DECOMMIT:
		size = sizeof(a->range);
		break;
	case UPALLOC_IOC_SET_BRK:
		size = sizeof(a->brk);
		break;
	case UPALLOC_IOC_REGION_INFO:
		size = sizeof(a->info);
		break;
	case UPALLOC_IOC_VERSION:
	case UPALLOC_IOC_PROC_STATS:
		return 0;
	default:
		return -ENOTTY;
	}
	return copy_from_user(a, arg, size) ? -EFAULT : 0;
}

/* Run cmd on its input a (from upalloc_cmd_copy_in()); outputs go to arg. */
long upalloc_cmd_run(unsigned int cmd, union upalloc_cmd_args *a,
		     void __user *arg)
{
	switch (cmd) {
	case UPALLOC_IOC_VERSION:
		return cmd_version(arg);
	case UPALLOC_IOC_POPULATE:
		return cmd_range(&a->range, arg, true);
	case UPALLOC_IOC_DECOMMIT:
		return cmd_range(&a->range, arg, false);
	case UPALLOC_IOC_SET_BRK:
		return cmd_set_brk(&a->brk, arg);
	case UPALLOC_IOC_REGION_INFO:
		return cmd_region_info(&a->info, arg);
	case UPALLOC_IOC_PROC_STATS:
		return cmd_proc_stats(arg);
	default:
		return -ENOTTY;
	}
}

long upalloc_do_cmd(struct file *file, unsigned int cmd, void __user *arg)
{
	union upalloc_cmd_args a;
	int err;

	err = upalloc_cmd_copy_in(cmd, arg, &a);
	if (err)
		return err;
	return upalloc_cmd_run(cmd, &a, arg);
}
