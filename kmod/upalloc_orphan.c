// SPDX-License-Identifier: GPL-2.0
/*
 * Orphans: pages that leave the module's tables while someone else still
 * holds a reference to them.
 *
 * When the last table lets go of a page (DECOMMIT, a lowered break,
 * munmap or exit, the old page of a copy-on-write), something outside the
 * module may still reference it: a pipe buffer filled by vmsplice(), a
 * pin_user_pages() pin (an io_uring fixed buffer, an O_DIRECT transfer in
 * flight). The page is then not freed: it stays allocated, and charged to
 * the memcg it was allocated in (a kmem charge leaves with the page only),
 * until that reference is dropped. So it stays counted too, in pages_live
 * and in the pages_live of the process whose table let go of it last, and
 * counts in pages_freed only once the module lets go of it: the counters
 * then add up to the memory the module's users hold, and a program cannot
 * hide pages from them by pinning and decommitting.
 *
 * The module cannot be told when the other reference goes (order-0 pages
 * have no destructor), so it keeps one reference of its own on an orphan
 * and polls: the list is reaped (orphans whose reference is the only one
 * left are put and uncounted) by a delayed work every UPALLOC_ORPHAN_POLL
 * while the list is not empty, before every read of the counters (so a
 * reader sees the counts of the moment) and at module exit, where the
 * module's reference is dropped whoever else holds the page.
 *
 * An orphan is linked into the list through its ->lru (an allocated page
 * that is not on an LRU, in the page cache or in a pool leaves it unused)
 * and names its process record in ->private (the share count there went
 * to 0 with the last table), of which it holds a reference. A page with a
 * memory error is never kept: the kernel owns it from then on and may
 * hold its reference forever.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/list.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "upalloc.h"

#define UPALLOC_ORPHAN_POLL	HZ

static LIST_HEAD(upalloc_orphans);
static DEFINE_SPINLOCK(upalloc_orphans_lock);
static bool upalloc_orphans_stopped;

static void upalloc_orphans_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(upalloc_orphans_work, upalloc_orphans_work_fn);

/* Uncount and put an orphan taken off the list. */
static void orphan_free(struct page *page)
{
	struct upalloc_proc *proc = (struct upalloc_proc *)page_private(page);

	set_page_private(page, 0);
	upalloc_proc_pages_add(proc, -1);
	upalloc_proc_unhold(proc);
	upalloc_pages_live_add(-1);
	upalloc_stat_add(UPALLOC_STAT_PAGES_FREED, 1);
	put_page(page);
}

/*
 * The last table let go of page (family mutex held, page disowned): keep
 * it counted, against proc, while it has references besides the one the
 * table held. Returns true if it is kept (the caller leaves it in
 * pages_live), false if the caller is to uncount it now.
 */
bool upalloc_orphan_keep(struct upalloc_proc *proc, struct page *page)
{
	bool arm;

	if (page_ref_count(page) <= 1 || PageHWPoison(page))
		return false;
	get_page(page);
	upalloc_proc_hold(proc);
	upalloc_proc_pages_add(proc, 1);
	set_page_private(page, (unsigned long)proc);
	spin_lock(&upalloc_orphans_lock);
	arm = list_empty(&upalloc_orphans) && !upalloc_orphans_stopped;
	list_add_tail(&page->lru, &upalloc_orphans);
	spin_unlock(&upalloc_orphans_lock);
	if (arm)
		schedule_delayed_work(&upalloc_orphans_work,
				      UPALLOC_ORPHAN_POLL);
	return true;
}

/*
 * Put the orphans nobody else references any more (all of them with
 * force); returns true if some are left. Nobody can take a new reference
 * to an orphan but through one held already, so a count of 1 stays 1.
 */
static bool orphans_reap(bool force)
{
	struct page *page, *tmp;
	LIST_HEAD(done);
	bool left;

	spin_lock(&upalloc_orphans_lock);
	list_for_each_entry_safe(page, tmp, &upalloc_orphans, lru)
		if (force || page_ref_count(page) == 1)
			list_move(&page->lru, &done);
	left = !list_empty(&upalloc_orphans);
	spin_unlock(&upalloc_orphans_lock);

	list_for_each_entry_safe(page, tmp, &done, lru) {
		list_del(&page->lru);
		orphan_free(page);
	}
	return left;
}

/* Before a read of the counters: uncount the orphans let go of. */
void upalloc_orphans_reap(void)
{
	orphans_reap(false);
}

static void upalloc_orphans_work_fn(struct work_struct *work)
{
	if (orphans_reap(false) && !READ_ONCE(upalloc_orphans_stopped))
		schedule_delayed_work(&upalloc_orphans_work,
				      UPALLOC_ORPHAN_POLL);
}

/* Module exit, no region left: let go of every orphan. */
void upalloc_orphans_exit(void)
{
	spin_lock(&upalloc_orphans_lock);
	upalloc_orphans_stopped = true;
	spin_unlock(&upalloc_orphans_lock);
	cancel_delayed_work_sync(&upalloc_orphans_work);
	orphans_reap(true);
}
