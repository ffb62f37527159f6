// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc: page-backed memory regions from /dev/upalloc.
 *
 * Module parameters (root may change them at run time through
 * /sys/module/upalloc/parameters/):
 *   max_pages              global commit limit in pages, 0 = unlimited.
 *                          Default: half of RAM at load time, because the
 *                          module's pages cannot be swapped or reclaimed.
 *   max_pages_per_process  commit limit per process (mm), 0 = unlimited.
 *                          Default: half of max_pages.
 *   max_pages_per_user     commit limit per real uid, over all of its
 *                          processes, 0 = unlimited. Default: 3/4 of
 *                          max_pages, so that one user cannot starve the
 *                          others.
 *   max_region_pages       the largest region an mmap accepts.
 *   uring_inline_pages     io_uring commands that allocate or free more
 *                          pages run in io-wq (upalloc_uring.c).
 * Memory is committed when a region is created (its whole length, or
 * nothing for a MAP_NORESERVE heap) or its break is raised; over a limit
 * the mmap or break move fails with ENOMEM. A fork child inherits its
 * parent's commitments beyond max_pages_per_process (they were within it
 * in the parent), but not past max_pages or max_pages_per_user: a region
 * whose copy would exceed them is left without memory in the child (any
 * access raises SIGBUS), since fork cannot fail there.
 *
 * The device file pins the module (.owner), and every mapping holds the
 * file, so rmmod is refused while a descriptor or a mapping exists.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

#include "upalloc.h"

#define CREATE_TRACE_POINTS
#include "upalloc_trace.h"

/* A limit the user gave no value at load: replaced by its default. */
#define UPALLOC_MAX_PAGES_UNSET	ULONG_MAX

unsigned long upalloc_max_pages = UPALLOC_MAX_PAGES_UNSET;
module_param_named(max_pages, upalloc_max_pages, ulong, 0644);
MODULE_PARM_DESC(max_pages,
		 "Global commit limit in pages, 0 = unlimited (default: half of RAM)");

unsigned long upalloc_max_pages_per_process = UPALLOC_MAX_PAGES_UNSET;
module_param_named(max_pages_per_process, upalloc_max_pages_per_process,
		   ulong, 0644);
MODULE_PARM_DESC(max_pages_per_process,
		 "Commit limit per process in pages, 0 = unlimited (default: max_pages / 2)");

unsigned long upalloc_max_pages_per_user = UPALLOC_MAX_PAGES_UNSET;
module_param_named(max_pages_per_user, upalloc_max_pages_per_user,
		   ulong, 0644);
MODULE_PARM_DESC(max_pages_per_user,
		 "Commit limit per user (real uid) in pages, 0 = unlimited (default: max_pages * 3 / 4)");

/* 256 GiB of 4 KiB pages: far more than any heap, far below 2^51. */
unsigned long upalloc_max_region_pages = 1UL << 26;
module_param_named(max_region_pages, upalloc_max_region_pages, ulong, 0644);
MODULE_PARM_DESC(max_region_pages, "Largest region an mmap accepts, in pages");

static long upalloc_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	return upalloc_do_cmd(file, cmd, (void __user *)arg);
}

static const struct file_operations upalloc_fops = {
	.owner = THIS_MODULE,
	.mmap = upalloc_mmap,
	.unlocked_ioctl = upalloc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.uring_cmd = upalloc_uring_cmd,
	.llseek = noop_llseek,
};

static struct miscdevice upalloc_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "upalloc",
	.fops = &upalloc_fops,
	.mode = 0666,
};

static int __init upalloc_init(void)
{
	int err;

	if (upalloc_max_pages == UPALLOC_MAX_PAGES_UNSET)
		upalloc_max_pages = totalram_pages() / 2;
	if (upalloc_max_pages_per_process == UPALLOC_MAX_PAGES_UNSET)
		upalloc_max_pages_per_process = upalloc_max_pages / 2;
	if (upalloc_max_pages_per_user == UPALLOC_MAX_PAGES_UNSET)
		upalloc_max_pages_per_user = upalloc_max_pages / 4 * 3;

	upalloc_pgoff_init();
	err = upalloc_pages_init();
	if (err)
		goto out_pgoff;
	err = upalloc_stats_init();
	if (err)
		goto out_pages;
	err = misc_register(&upalloc_misc);
	if (err)
		goto out_remove_proc;
	pr_info("ready: /dev/upalloc, max_pages %lu\n", upalloc_max_pages);
	upalloc_plant();
	return 0;

out_remove_proc:
	upalloc_stats_exit();
out_pages:
	upalloc_pages_exit();
out_pgoff:
	upalloc_pgoff_exit();
	return err;
}

static void __exit upalloc_exit(void)
{
	misc_deregister(&upalloc_misc);
	upalloc_orphans_exit();
	upalloc_stats_exit();
	upalloc_pages_exit();
	upalloc_pgoff_exit();
}

module_init(upalloc_init);
module_exit(upalloc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Page-backed memory regions for userspace allocators");
MODULE_AUTHOR("upalloc developers");
