// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc regions: the page tables behind the mappings, fork families and
 * copy-on-write, the break, decommit, and commit accounting.
 *
 * Removing a page from a table (decommit, break lowered, COW replacement)
 * always follows one protocol, so that no PTE of the region is left mapping
 * a page the region no longer holds:
 *   1. under the family mutex, take the page out of (or replace it in) the
 *      table;
 *   2. lock_page() + unlock_page(): waits for a fault (or POPULATE) that
 *      validated the page before step 1 and is installing its PTE (both
 *      hold the page lock from validation until the PTE is set; one
 *      validating after step 1 sees the change and retries or skips);
 *   3. zap the address range in the region's VMA;
 *   4. under the family mutex, drop the table's share; then put_page().
 * The share is dropped after the zap so that a fork relative never sees its
 * share count fall to 1 (and writes the page in place) while this region
 * still maps the page.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/pseudo_fs.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "upalloc.h"
#include "upalloc_compat.h"
#include "upalloc_trace.h"

/* Driver pages: zeroed or copied by us, memcg-charged, never movable. */
#define UPALLOC_GFP		(GFP_HIGHUSER | __GFP_ACCOUNT)
#define UPALLOC_XA_GFP		GFP_KERNEL_ACCOUNT
/*
 * A fork clone's table is charged like the rest of the child's memory
 * (its page tables, VMAs): ->open runs in the forking process, whose
 * memcg is the one the child joins (cgroup_post_fork(), after the copy of
 * the mm; only clone3(CLONE_INTO_CGROUP) picks another, and then the
 * table stays charged to the parent's, as kernel memory charges never
 * move). The child's mm cannot name its memcg yet: its owner is not in
 * its cgroup during the copy. Over the limit, the memcg reclaims or
 * OOM-kills like for the rest of the fork; if the table still cannot be
 * had, the child's region is left unusable (->open cannot fail the fork).
 * The shared pages stay charged where they were allocated; copies of
 * pinned pages are charged to the forking process's memcg too.
 */
#define UPALLOC_FORK_GFP	GFP_KERNEL_ACCOUNT

/* Pages taken out of a table per round of the removal protocol. */
#define UPALLOC_BATCH		32
/*
 * Table entries visited per hold of the family mutex by the walks over a
 * whole table (fork's clone, release, REGION_INFO): between two holds
 * they reschedule, so that a huge region neither stalls its CPU nor keeps
 * its relatives off the mutex for long, and the clone notices a fatal
 * signal.
 */
#define UPALLOC_WALK_BATCH	1024

/*
 * Page identity, for process-shared futexes. get_futex_key() keys a
 * shared futex in a page that is not anonymous on (page->mapping->host,
 * page->index), and fails with EFAULT when ->mapping is NULL. So every
 * page in a table has as ->mapping the one address_space of the module's
 * own pseudo filesystem inode (its a_ops only mark pages dirty, a no-op),
 * and ->index identifies the region and the page index in it: the
 * region's key_base, a range of its own taken from a 64-bit counter for
 * every region and every fork clone, plus the index. The key must not
 * change under a futex waiter and must differ between a fork parent and
 * child: get_futex_key() first takes the page for writing, which breaks
 * copy-on-write, and a page only becomes writable where the region holds
 * it alone, after page_own() (on entering the table) or
 * upalloc_region_mkwrite() (after the relatives let go) set ->index to
 * the holder's identity. So a futex word keeps its key for as long as
 * its region lives, across forks, like anonymous memory's (mm, address).
 *
 * Being the module's, ->mapping is never truncated or written back: the
 * address_space caches no page, i_mmap is empty, and the pages are marked
 * dirty from the start, so that nothing tries to evict them as clean
 * page cache (the core's hwpoison handling of a fault does). ->mapping
 * is cleared when the last table lets go of the page, before anyone else
 * (a pin) can free it.
 */
#define UPALLOC_FS_MAGIC	0x75706166	/* "upaf" */

static struct vfsmount *upalloc_mnt;
static struct inode *upalloc_key_inode;
static atomic64_t upalloc_next_key = ATOMIC64_INIT(0);

static int upalloc_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, UPALLOC_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type upalloc_fs_type = {
	.name = "upalloc",
	.init_fs_context = upalloc_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

int upalloc_pages_init(void)
{
	upalloc_mnt = kern_mount(&upalloc_fs_type);
	if (IS_ERR(upalloc_mnt))
		return PTR_ERR(upalloc_mnt);
	upalloc_key_inode = alloc_anon_inode(upalloc_mnt->mnt_sb);
	if (IS_ERR(upalloc_key_inode)) {
		kern_unmount(upalloc_mnt);
		return PTR_ERR(upalloc_key_inode);
	}
	return 0;
}

void upalloc_pages_exit(void)
{
	iput(upalloc_key_inode);
	kern_unmount(upalloc_mnt);
}

/* A range of nr identities for a new region or fork clone. */
static pgoff_t key_range(pgoff_t nr)
{
	return atomic64_fetch_add(nr, &upalloc_next_key);
}

/*
 * new enters r's table at idx with share 1: it becomes the module's page
 * and r's. Called before anyone else can see new.
 */
static void page_own(struct upalloc_region *r, struct page *new, pgoff_t idx)
{
	set_page_private(new, 1);
	new->index = r->key_base + idx;
	SetPageDirty(new);
	WRITE_ONCE(new->mapping, upalloc_key_inode->i_mapping);
}

/* The page leaves the module: it never entered a table, or the last let go. */
static void page_disown(struct page *page)
{
	WRITE_ONCE(page->mapping, NULL);
	set_page_private(page, 0);
}

/*
 * page_private() holds the share count and PAGE_WAS_SHARED: the page was
 * shared with a fork relative since a region last took it for writing.
 * Such a page, even once held by one table only, is written in place only
 * if nobody else holds a reference to it: a relative may have let its
 * snapshot of the page out (vmsplice into a pipe, a pin) before it let go
 * of its share, and a write in place would change what it let out. The
 * kernel's anonymous memory has the same rule (PageAnonExclusive). A page
 * with such a reference (a pin, direct I/O in flight) at fork is copied for
 * the child instead, so the DMA keeps going into its owner's memory.
 */
#define PAGE_WAS_SHARED		BIT(BITS_PER_LONG - 1)

static unsigned long page_share(struct page *page)
{
	return READ_ONCE(page->private) & ~PAGE_WAS_SHARED;
}

/*
 * May page be written in place by the one region holding it? extra is
 * the number of references the caller knows of besides the table's and
 * one per PTE.
 */
static bool page_reusable(struct page *page, int extra)
{
	unsigned long priv = READ_ONCE(page->private);

	if ((priv & ~PAGE_WAS_SHARED) != 1)
		return false;
	if (!(priv & PAGE_WAS_SHARED))
		return true;
	return page_ref_count(page) <= 1 + upalloc_page_mapcount(page) + extra;
}

/*
 * Drop one table's share of page, a table of proc's; family mutex held.
 * The last share leaves the page counted while a pipe or a pin still
 * holds it (upalloc_orphan.c).
 */
static void page_unshare(struct upalloc_proc *proc, struct page *page)
{
	unsigned long share = page_share(page);

	if (share > 1) {
		set_page_private(page, page_private(page) - 1);
		return;
	}
	page_disown(page);
	if (upalloc_orphan_keep(proc, page))
		return;
	upalloc_pages_live_add(-1);
	upalloc_stat_add(UPALLOC_STAT_PAGES_FREED, 1);
}

void upalloc_zap(struct vm_area_struct *vma, unsigned long addr,
		 unsigned long size)
{
	upalloc_zap_range(vma, addr, size);
}

static struct upalloc_region *region_alloc(struct mm_struct *mm, gfp_t gfp,
					   unsigned int xa_flags)
{
	struct upalloc_region *r;

	r = kzalloc(sizeof(*r), gfp);
	if (!r)
		return NULL;
	r->proc = upalloc_proc_get(mm, gfp);
	if (!r->proc) {
		kfree(r);
		return NULL;
	}
	kref_init(&r->ref);
	mutex_init(&r->brk_lock);
	xa_init_flags(&r->pages, xa_flags);
	r->mm = mm;
	return r;
}

static void region_free(struct upalloc_region *r)
{
	xa_destroy(&r->pages);
	mutex_destroy(&r->brk_lock);
	upalloc_proc_put_region(r->proc);
	kfree(r);
}

/*
 * Drop r's share and reference of every page in its table, in batches of
 * UPALLOC_WALK_BATCH under the family mutex. The table itself is left for
 * region_free(). Nothing else may change r's table meanwhile.
 */
static void table_drop_all(struct upalloc_region *r)
{
	struct upalloc_family *fam = r->family;
	unsigned long idx = 0;
	struct page *page;
	unsigned int n;

	do {
		n = 0;
		mutex_lock(&fam->lock);
		xa_for_each_start(&r->pages, idx, page, idx) {
			page_unshare(r->proc, page);
			put_page(page);
			if (++n == UPALLOC_WALK_BATCH)
				break;
		}
		mutex_unlock(&fam->lock);
		cond_resched();
		/* A full batch: idx is its last entry, resume after it. */
	} while (n == UPALLOC_WALK_BATCH && ++idx);
}

static void family_put(struct upalloc_family *fam)
{
	if (refcount_dec_and_test(&fam->ref)) {
		if (fam->base)
			upalloc_pgoff_free(fam->base);
		mutex_destroy(&fam->lock);
		kfree(fam);
	}
}

/* A new region of nr_pages for mm; heap regions start with brk 0. */
struct upalloc_region *upalloc_region_create(struct mm_struct *mm,
					     pgoff_t nr_pages, bool heap)
{
	struct upalloc_region *r;
	int err = -ENOMEM;
	/* Table nodes allocated under the xarray lock are charged too. */
	r = region_alloc(mm, GFP_KERNEL_ACCOUNT, XA_FLAGS_ACCOUNT);
	if (!r)
		return ERR_PTR(-ENOMEM);
	r->family = kzalloc(sizeof(*r->family), GFP_KERNEL_ACCOUNT);
	if (!r->family)
		goto out_free_region;
	mutex_init(&r->family->lock);
	refcount_set(&r->family->ref, 1);

	/* Given back by family_put(), also when this mmap fails. */
	err = upalloc_pgoff_alloc(nr_pages, &r->family->base);
	if (err)
		goto out_put_family;
	r->base = r->family->base;
	r->nr_pages = nr_pages;
	r->heap = heap;
	r->brk = heap ? 0 : nr_pages;
	err = upalloc_commit(r->proc, r->brk, false);
	if (err)
		goto out_put_family;

	r->key_base = key_range(nr_pages);
	upalloc_count(r->proc, UPALLOC_STAT_REGIONS_CREATED, 1);
	trace_region_create(r->base, nr_pages, r->brk, heap, false);
	return r;

out_put_family:
	family_put(r->family);
out_free_region:
	region_free(r);
	return ERR_PTR(err);
}

static void region_release(struct kref *kref)
{
	struct upalloc_region *r = container_of(kref, struct upalloc_region,
						ref);
	struct upalloc_family *fam = r->family;
	unsigned long nr_present;
	pgoff_t brk;

	/* ->close runs after the VMA's PTEs are gone: no mapper is left. */
	mutex_lock(&fam->lock);
	nr_present = r->nr_present;
	brk = r->brk;
	mutex_unlock(&fam->lock);
	table_drop_all(r);

	upalloc_proc_pages_add(r->proc, -(long)nr_present);
	upalloc_proc_add(r->proc, UPALLOC_STAT_PAGES_FREED, nr_present);
	upalloc_commit(r->proc, -(long)brk, true);
	upalloc_count(r->proc, UPALLOC_STAT_REGIONS_DESTROYED, 1);
	trace_region_destroy(r->base, nr_present);
	family_put(fam);
	region_free(r);
}

void upalloc_region_put(struct upalloc_region *r)
{
	kref_put(&r->ref, region_release);
}

/*
 * May a device be reading or writing page? A pin (FOLL_PIN) says so; 6.1's
 * direct I/O takes plain references (FOLL_GET), seen only as references
 * besides one per table holding the page and one per PTE mapping it
 * (none is changing: the fork holds the parent's mmap lock for writing,
 * and faults hold it or the VMA's lock). A transient reference (a
 * lockless lookup) only costs a needless copy. Family mutex held.
 */
static bool page_maybe_dma(struct page *page)
{
	return folio_maybe_dma_pinned(page_folio(page)) ||
	       page_ref_count(page) > page_share(page) +
				      upalloc_page_mapcount(page);
}

/*
 * Enter page (idx of the parent's table) into the child's table r: shared
 * (share + 1), or, when a device may be using it (page_maybe_dma()), as a
 * copy of the child's own, which leaves the page under DMA the parent's
 * alone (the kernel does the same for pinned anonymous memory). Family
 * mutex held. Returns the page entered or NULL (out of memory).
 */
static struct page *clone_page(struct upalloc_region *r, pgoff_t idx,
			       struct page *page)
{
	struct page *copy;

	if (page_maybe_dma(page) && !PageHWPoison(page)) {
		copy = alloc_page(UPALLOC_GFP);
		if (!copy)
			return NULL;
		copy_highpage(copy, page);
		page_own(r, copy, idx);
		if (xa_err(xa_store(&r->pages, idx, copy, UPALLOC_FORK_GFP))) {
			page_disown(copy);
			__free_page(copy);
			return NULL;
		}
		upalloc_pages_live_add(1);
		upalloc_stat_add(UPALLOC_STAT_PAGES_ALLOCATED, 1);
		upalloc_stat_add(UPALLOC_STAT_COW_COPIES, 1);
		return copy;
	}
	if (xa_err(xa_store(&r->pages, idx, page, UPALLOC_FORK_GFP)))
		return NULL;
	get_page(page);
	set_page_private(page, (page_private(page) + 1) | PAGE_WAS_SHARED);
	return page;
}

/*
 * Fork: a copy of parent for the child's mm, sharing every page (share + 1
 * each). Runs from ->open with both mmap locks held for writing (and, with
 * per-VMA locks, the parent's VMA write-locked), so neither table changes
 * but through the clone itself; the share counts, which other family
 * members change too, are changed under the family mutex, dropped every
 * UPALLOC_WALK_BATCH entries. Commitments are inherited beyond the
 * per-process limit, but not past the global or per-user one
 * (upalloc_commit_fork()). Returns NULL when memory runs out, a limit
 * refuses or a fatal signal is pending (the fork then fails anyway); the
 * child's mapping is then left without a region (SIGBUS on access).
 */
struct upalloc_region *upalloc_region_clone(struct upalloc_region *parent,
					    struct mm_struct *mm)
{
	struct upalloc_family *fam = parent->family;
	struct upalloc_region *r;
	unsigned long idx;
	struct page *page;
	unsigned int n;

	r = region_alloc(mm, UPALLOC_FORK_GFP, XA_FLAGS_ACCOUNT);
	if (!r)
		return NULL;
	r->family = fam;
	r->base = parent->base;
	r->key_base = key_range(parent->nr_pages);
	r->nr_pages = parent->nr_pages;
	r->heap = parent->heap;
	r->forked = true;

	/* From here on table_drop_all() may undo the copy. */
	refcount_inc(&fam->ref);
	r->brk = parent->brk;
	/* Past the global or per-user limit: no memory for the child. */
	if (upalloc_commit_fork(r->proc, r->brk))
		goto out_put;
	idx = 0;
	do {
		n = 0;
		mutex_lock(&fam->lock);
		xa_for_each_start(&parent->pages, idx, page, idx) {
			page = clone_page(r, idx, page);
			if (!page)
				goto out_unlock;
			r->nr_present++;
			if (++n == UPALLOC_WALK_BATCH)
				break;
		}
		mutex_unlock(&fam->lock);
		cond_resched();
		if (fatal_signal_pending(current))
			goto out_drop;
	} while (n == UPALLOC_WALK_BATCH && ++idx);

	upalloc_proc_pages_add(r->proc, r->nr_present);
	upalloc_count(r->proc, UPALLOC_STAT_REGIONS_CREATED, 1);
	upalloc_count(r->proc, UPALLOC_STAT_FORKS, 1);
	trace_region_create(r->base, r->nr_pages, r->brk, r->heap, true);
	return r;

out_unlock:
	mutex_unlock(&fam->lock);
out_drop:
	/* Shares of the parent's pages drop back; copies are freed. */
	table_drop_all(r);
	upalloc_commit(r->proc, -(long)r->brk, true);
out_put:
	family_put(fam);
	region_free(r);
	return NULL;
}

/* A referenced page at idx, or NULL; lockless (RCU) lookup. */
static struct page *table_get(struct upalloc_region *r, pgoff_t idx)
{
	struct page *page;

	rcu_read_lock();
	page = xa_load(&r->pages, idx);
	if (page && !get_page_unless_zero(page))
		page = NULL;
	if (page && xa_load(&r->pages, idx) != page) {
		put_page(page);
		page = NULL;
	}
	rcu_read_unlock();
	return page;
}

bool upalloc_region_holds(struct upalloc_region *r, pgoff_t idx,
			  struct page *page)
{
	return xa_load(&r->pages, idx) == page;
}

/* Steps 2-4 of the removal protocol for one page at addr. */
static void region_retire_page(struct upalloc_region *r,
			       struct vm_area_struct *vma, unsigned long addr,
			       struct page *page)
{
	lock_page(page);
	unlock_page(page);
	upalloc_zap(vma, addr, PAGE_SIZE);
	mutex_lock(&r->family->lock);
	page_unshare(r->proc, page);
	mutex_unlock(&r->family->lock);
	put_page(page);
}

/* Account a page the module just put into r's table. */
static void region_count_new_page(struct upalloc_region *r, bool new_entry)
{
	upalloc_pages_live_add(1);
	upalloc_count(r->proc, UPALLOC_STAT_PAGES_ALLOCATED, 1);
	if (new_entry)
		upalloc_proc_pages_add(r->proc, 1);
}

/*
 * Put new (a fresh page, not yet visible to anyone) into the empty slot
 * idx of r's table if idx is below the break, with share 1. Only the
 * xarray's lock is taken, not the family mutex: an empty slot has no fork
 * relative to agree with, and brk and nr_present are written under both
 * locks, so the break checked here is the one a concurrent lowering of
 * the break either precedes (and then sees this entry when it empties the
 * range above it) or follows. Returns 0, -EBUSY (filled meanwhile),
 * -ERANGE (not below the break) or -ENOMEM.
 */
static int table_insert_new(struct upalloc_region *r, pgoff_t idx,
			    struct page *new)
{
	XA_STATE(xas, &r->pages, idx);
	int err;

	page_own(r, new, idx);
	do {
		xas_lock(&xas);
		if (idx >= r->brk) {
			err = -ERANGE;
		} else if (xas_load(&xas)) {
			err = -EBUSY;
		} else {
			xas_store(&xas, new);
			err = xas_error(&xas);
			if (!err)
				r->nr_present++;
		}
		xas_unlock(&xas);
		/* A node could not be allocated under the lock: retry. */
	} while (xas_nomem(&xas, UPALLOC_XA_GFP));
	if (err)
		page_disown(new);
	return err;
}

/*
 * A zeroed page put into the empty slot idx of r's table with
 * table_insert_new() and accounted, locked and with a reference for the
 * caller, both taken before others can see the page: the caller holds the
 * lock until the PTE is set, so that step 2 of the removal protocol waits
 * for it. Returns the page or ERR_PTR(-ENOMEM, -EBUSY or -ERANGE).
 */
static struct page *table_insert_zeroed(struct upalloc_region *r,
					pgoff_t idx)
{
	struct page *new;
	int err;

	new = alloc_page(UPALLOC_GFP | __GFP_ZERO);
	if (!new)
		return ERR_PTR(-ENOMEM);
	get_page(new);
	__folio_set_locked(page_folio(new));
	err = table_insert_new(r, idx, new);
	if (err) {
		__folio_clear_locked(page_folio(new));
		put_page(new);
		__free_page(new);
		return ERR_PTR(err);
	}
	region_count_new_page(r, true);
	return new;
}

/*
 * The page to map at idx for a fault, referenced. A missing page is
 * allocated zeroed; for a write, a page shared with a fork relative is
 * replaced by a private copy. Returns 0 (the caller locks the page and
 * checks that the table still holds it), VM_FAULT_LOCKED (a new page,
 * locked before it entered the table, so no removal can have passed step 2
 * of the protocol yet: nothing to check), VM_FAULT_SIGBUS (beyond the
 * break) or VM_FAULT_OOM (allocation failed).
 */
vm_fault_t upalloc_region_fault_page(struct upalloc_region *r,
				     struct vm_area_struct *vma,
				     unsigned long addr, pgoff_t idx,
				     bool write, struct page **pagep)
{
	struct upalloc_family *fam = r->family;
	struct page *page, *new;

retry:
	if (idx >= READ_ONCE(r->brk))
		return VM_FAULT_SIGBUS;
	page = table_get(r, idx);
	if (page && (!write || page_share(page) == 1)) {
		*pagep = page;
		return 0;
	}
	/*
	 * A core dump (which includes these shared mappings only when
	 * coredump_filter bit 3 is set) skips holes instead of filling them.
	 */
	if (!page && (current->flags & PF_DUMPCORE))
		return VM_FAULT_SIGBUS;

	if (!page) {
		new = table_insert_zeroed(r, idx);
		if (IS_ERR(new)) {
			if (PTR_ERR(new) == -ENOMEM)
				goto out_oom;
			/* Filled meanwhile, or the break moved: look again. */
			goto retry;
		}
		*pagep = new;
		return VM_FAULT_LOCKED;
	}

	/* A memory error: there is nothing to copy from. */
	if (PageHWPoison(page)) {
		put_page(page);
		return VM_FAULT_HWPOISON;
	}
	new = alloc_page(UPALLOC_GFP);
	if (!new)
		goto out_oom;
	/* A shared page is never written, so copying it unlocked is safe. */
	copy_highpage(new, page);

	mutex_lock(&fam->lock);
	if (idx >= r->brk || xa_load(&r->pages, idx) != page) {
		mutex_unlock(&fam->lock);
		__free_page(new);
		put_page(page);
		goto retry;
	}
	if (page_share(page) == 1) {
		/* The relatives dropped their shares meanwhile. */
		mutex_unlock(&fam->lock);
		__free_page(new);
		*pagep = page;
		return 0;
	}
	/* Replacing a present entry allocates nothing and cannot fail. */
	page_own(r, new, idx);
	xa_store(&r->pages, idx, new, UPALLOC_XA_GFP);
	get_page(new);
	mutex_unlock(&fam->lock);

	region_count_new_page(r, false);
	upalloc_count(r->proc, UPALLOC_STAT_COW_COPIES, 1);
	region_retire_page(r, vma, addr, page);
	put_page(page);
	*pagep = new;
	return 0;

out_oom:
	if (page)
		put_page(page);
	upalloc_count(r->proc, UPALLOC_STAT_ENOMEM, 1);
	return VM_FAULT_OOM;
}

/*
 * ->page_mkwrite for page at idx: make it writable if the region holds it
 * alone (VM_FAULT_LOCKED, page locked), else give the region a private
 * copy, zap the read-only PTE and let the fault retry (VM_FAULT_NOPAGE).
 * upgrade tells a read-only PTE being upgraded from the second half of a
 * write fault (only the former counts in faults_mkwrite).
 */
vm_fault_t upalloc_region_mkwrite(struct upalloc_region *r,
				  struct vm_area_struct *vma,
				  unsigned long addr, pgoff_t idx,
				  struct page *page, bool upgrade)
{
	struct upalloc_family *fam = r->family;
	struct page *new;

	lock_page(page);
	if (!upalloc_region_holds(r, idx, page))
		goto out_stale;
	/* A memory error: neither write the page nor copy it. */
	if (PageHWPoison(page)) {
		unlock_page(page);
		return VM_FAULT_HWPOISON;
	}
	/* The core holds a reference for the fault (vmf->page). */
	if (page_reusable(page, 1))
		goto out_exclusive;

	new = alloc_page(UPALLOC_GFP);
	if (!new) {
		unlock_page(page);
		upalloc_count(r->proc, UPALLOC_STAT_ENOMEM, 1);
		return VM_FAULT_OOM;
	}
	copy_highpage(new, page);
	mutex_lock(&fam->lock);
	if (!upalloc_region_holds(r, idx, page)) {
		mutex_unlock(&fam->lock);
		__free_page(new);
		goto out_stale;
	}
	if (page_reusable(page, 1)) {
		mutex_unlock(&fam->lock);
		__free_page(new);
		goto out_exclusive;
	}
	/* Replacing a present entry allocates nothing and cannot fail. */
	page_own(r, new, idx);
	xa_store(&r->pages, idx, new, UPALLOC_XA_GFP);
	mutex_unlock(&fam->lock);

	region_count_new_page(r, false);
	upalloc_count(r->proc, UPALLOC_STAT_COW_COPIES, 1);
	if (upgrade)
		upalloc_count(r->proc, UPALLOC_STAT_FAULTS_MKWRITE, 1);
	unlock_page(page);
	/* Our own page lock stood for step 2 of the protocol. */
	upalloc_zap(vma, addr, PAGE_SIZE);
	mutex_lock(&fam->lock);
	page_unshare(r->proc, page);
	mutex_unlock(&fam->lock);
	put_page(page);
	return VM_FAULT_NOPAGE;

out_exclusive:
	/*
	 * About to be writable here alone: the futex key becomes this
	 * region's (the page may have entered a relative's table first).
	 * Page lock held, no PTE writable anywhere yet. It is exclusive
	 * now: later references (pins) do not make it copied.
	 */
	page->index = r->key_base + idx;
	if (page_private(page) & PAGE_WAS_SHARED) {
		mutex_lock(&fam->lock);
		set_page_private(page, page_private(page) & ~PAGE_WAS_SHARED);
		mutex_unlock(&fam->lock);
	}
	if (upgrade)
		upalloc_count(r->proc, UPALLOC_STAT_FAULTS_MKWRITE, 1);
	return VM_FAULT_LOCKED;

out_stale:
	/* Removed meanwhile: drop the stale PTE so the fault can progress. */
	unlock_page(page);
	upalloc_zap(vma, addr, PAGE_SIZE);
	return VM_FAULT_NOPAGE;
}

/*
 * Allocate zeroed pages for the absent entries of [first, last), all below
 * the break. *nr_new counts the pages allocated. Returns 0, -ENOMEM or
 * -EINTR (upalloc_should_stop(); the pages allocated so far stay).
 */
int upalloc_region_fill(struct upalloc_region *r, pgoff_t first,
			pgoff_t last, u64 *nr_new)
{
	struct page *new;
	pgoff_t idx;
	int err;

	*nr_new = 0;
	for (idx = first; idx < last; idx++) {
		if (upalloc_should_stop())
			return -EINTR;
		cond_resched();
		if (xa_load(&r->pages, idx))
			continue;
		new = alloc_page(UPALLOC_GFP | __GFP_ZERO);
		if (!new)
			goto out_enomem;
		err = table_insert_new(r, idx, new);
		if (err) {
			__free_page(new);
			if (err == -ENOMEM)
				goto out_enomem;
			continue;
		}
		region_count_new_page(r, true);
		upalloc_count(r->proc, UPALLOC_STAT_PAGES_POPULATED, 1);
		(*nr_new)++;
	}
	return 0;

out_enomem:
	upalloc_count(r->proc, UPALLOC_STAT_ENOMEM, 1);
	return -ENOMEM;
}

/*
 * The page at idx for POPULATE to map, locked and referenced, or NULL when
 * there is nothing to map there: the page is locked by someone else (a
 * fault mapping it, or a removal), or idx is no longer below the break.
 * A missing page is allocated zeroed and enters the table already locked,
 * as in a fault. *err is set to -ENOMEM when an allocation fails, to
 * -EHWPOISON when the page has a memory error.
 */
static struct page *populate_get(struct upalloc_region *r, pgoff_t idx,
				 u64 *nr_new, int *err)
{
	struct page *page;

retry:
	page = table_get(r, idx);
	if (page) {
		if (!trylock_page(page)) {
			put_page(page);
			return NULL;
		}
		if (!upalloc_region_holds(r, idx, page)) {
			unlock_page(page);
			put_page(page);
			return NULL;
		}
		/* A memory error: map nothing, stop with -EHWPOISON. */
		if (PageHWPoison(page)) {
			unlock_page(page);
			put_page(page);
			*err = -EHWPOISON;
			return NULL;
		}
		return page;
	}
	page = table_insert_zeroed(r, idx);
	if (IS_ERR(page)) {
		if (PTR_ERR(page) == -ENOMEM)
			goto out_enomem;
		if (PTR_ERR(page) == -EBUSY)
			goto retry;
		return NULL;
	}
	upalloc_count(r->proc, UPALLOC_STAT_PAGES_POPULATED, 1);
	(*nr_new)++;
	return page;

out_enomem:
	upalloc_count(r->proc, UPALLOC_STAT_ENOMEM, 1);
	*err = -ENOMEM;
	return NULL;
}

/*
 * Map pages[0..n) at addr, addr + PAGE_SIZE, ... in a batch: one page-table
 * walk and one PTE lock per 8 pages. A PTE already present (-EBUSY: the
 * page was touched before) stays as it is.
 */
static int populate_insert(struct vm_area_struct *vma, unsigned long addr,
			   struct page **pages, unsigned int n)
{
	unsigned long left;
	unsigned int done;
	int err;

	while (n) {
		left = n;
		err = vm_insert_pages(vma, addr, pages, &left);
		if (!err)
			return 0;
		if (err != -EBUSY)
			return err;
		/* pages[done] is the one whose PTE was present: skip it. */
		done = n - left + 1;
		addr += (unsigned long)done << PAGE_SHIFT;
		pages += done;
		n -= done;
	}
	return 0;
}

/*
 * POPULATE for a region that never took part in a fork (its VMA has
 * upalloc_vm_ops, so every page is the region's alone and vm_page_prot
 * maps it writable if the VMA is): allocate the absent pages of
 * [first, last), all below the break, and map the whole range with
 * vm_insert_pages() instead of a fault per page. Each page stays locked
 * from the moment it is found in (or enters) the table until its PTE is
 * set, as in a fault, so that step 2 of the removal protocol waits for
 * it. No fault is counted: none happens. mmap lock held for reading.
 * *nr_new counts the pages allocated. Returns 0, -ENOMEM, -EHWPOISON or -EINTR (the
 * pages allocated so far stay).
 */
int upalloc_region_populate(struct upalloc_region *r,
			    struct vm_area_struct *vma, pgoff_t first,
			    pgoff_t last, u64 *nr_new)
{
	struct page *batch[UPALLOC_BATCH];
	pgoff_t idx = first, start;
	unsigned int n, i;
	struct page *page;
	int err = 0, ret;

	*nr_new = 0;
	while (idx < last && !err) {
		if (upalloc_should_stop())
			return -EINTR;
		cond_resched();
		/* A run of consecutive pages to map, ended by one to skip. */
		start = idx;
		n = 0;
		while (idx < last && n < UPALLOC_BATCH) {
			page = populate_get(r, idx++, nr_new, &err);
			if (!page)
				break;
			batch[n++] = page;
		}
		ret = populate_insert(vma, vma->vm_start + (start << PAGE_SHIFT),
				      batch, n);
		if (!err)
			err = ret;
		for (i = 0; i < n; i++) {
			unlock_page(batch[i]);
			put_page(batch[i]);
		}
	}
	return err;
}

/*
 * Free the pages of [first, last) (page indexes) with the removal protocol;
 * vma is r's VMA, mmap lock held. Returns the number of pages taken out of
 * the table.
 */
static u64 region_remove_range(struct upalloc_region *r,
			       struct vm_area_struct *vma, pgoff_t first,
			       pgoff_t last)
{
	struct upalloc_family *fam = r->family;
	struct page *batch[UPALLOC_BATCH];
	pgoff_t start = first, idx, lo, hi;
	unsigned int n, i;
	struct page *page;
	u64 total = 0;

	while (first < last) {
		n = 0;
		lo = 0;
		hi = 0;
		mutex_lock(&fam->lock);
		xa_for_each_range(&r->pages, idx, page, first, last - 1) {
			xa_erase(&r->pages, idx);
			if (!n)
				lo = idx;
			hi = idx;
			batch[n++] = page;
			if (n == UPALLOC_BATCH)
				break;
		}
		xa_lock(&r->pages);
		r->nr_present -= n;
		xa_unlock(&r->pages);
		mutex_unlock(&fam->lock);
		if (!n)
			break;

		for (i = 0; i < n; i++) {
			lock_page(batch[i]);
			unlock_page(batch[i]);
		}
		upalloc_zap(vma, vma->vm_start + (lo << PAGE_SHIFT),
			    (hi - lo + 1) << PAGE_SHIFT);
		mutex_lock(&fam->lock);
		for (i = 0; i < n; i++)
			page_unshare(r->proc, batch[i]);
		mutex_unlock(&fam->lock);
		for (i = 0; i < n; i++)
			put_page(batch[i]);

		upalloc_proc_pages_add(r->proc, -(long)n);
		upalloc_proc_add(r->proc, UPALLOC_STAT_PAGES_FREED, n);
		upalloc_count(r->proc, UPALLOC_STAT_PAGES_DECOMMITTED, n);
		total += n;
		if (n < UPALLOC_BATCH)
			break;
		first = hi + 1;
		cond_resched();
	}
	trace_decommit(r->base, start, last, total);
	return total;
}

u64 upalloc_region_decommit(struct upalloc_region *r,
			    struct vm_area_struct *vma, pgoff_t first,
			    pgoff_t last)
{
	return region_remove_range(r, vma, first, last);
}

/*
 * Move the break to new_brk pages. Raising commits the difference or fails
 * with -ENOMEM, changing nothing; lowering uncommits it and frees the
 * pages above the new break before any other move of the break: a raise
 * meanwhile would otherwise expose, below its break, pages the lowering
 * had not freed yet. -EINTR: a fatal signal came while waiting for
 * another move.
 */
int upalloc_region_set_brk(struct upalloc_region *r,
			   struct vm_area_struct *vma, pgoff_t new_brk,
			   pgoff_t *old_brk)
{
	struct upalloc_family *fam = r->family;
	pgoff_t old;
	int err = 0;

	if (mutex_lock_killable(&r->brk_lock))
		return -EINTR;
	mutex_lock(&fam->lock);
	old = r->brk;
	if (new_brk > old)
		err = upalloc_commit(r->proc, new_brk - old, false);
	else
		upalloc_commit(r->proc, -(long)(old - new_brk), true);
	if (!err) {
		/* Under the xarray lock too: see table_insert_new(). */
		xa_lock(&r->pages);
		WRITE_ONCE(r->brk, new_brk);
		xa_unlock(&r->pages);
	}
	mutex_unlock(&fam->lock);
	*old_brk = old;
	if (!err && new_brk < old)
		region_remove_range(r, vma, new_brk, old);
	mutex_unlock(&r->brk_lock);
	return err;
}

/* Does r hold a page at idx that no fork relative shares? (A hint.) */
bool upalloc_region_page_exclusive(struct upalloc_region *r, pgoff_t idx)
{
	struct page *page;
	bool exclusive;

	rcu_read_lock();
	page = xa_load(&r->pages, idx);
	exclusive = page && page_share(page) == 1;
	rcu_read_unlock();
	return exclusive;
}

/* Does r hold a page with a memory error at idx? (A hint.) */
bool upalloc_region_page_poisoned(struct upalloc_region *r, pgoff_t idx)
{
	struct page *page;
	bool poisoned;

	rcu_read_lock();
	page = xa_load(&r->pages, idx);
	poisoned = page && PageHWPoison(page);
	rcu_read_unlock();
	return poisoned;
}

/* Fill the outputs of REGION_INFO except start. */
void upalloc_region_describe(struct upalloc_region *r,
			     struct upalloc_region_info *info)
{
	unsigned long idx;
	struct page *page;
	u64 shared = 0;
	unsigned int n;

	mutex_lock(&r->family->lock);
	info->brk = (u64)r->brk << PAGE_SHIFT;
	info->pages_present = r->nr_present;
	mutex_unlock(&r->family->lock);
	/* Each batch is exact; the whole is a snapshot of a moving table. */
	idx = 0;
	do {
		n = 0;
		mutex_lock(&r->family->lock);
		xa_for_each_start(&r->pages, idx, page, idx) {
			if (page_share(page) > 1)
				shared++;
			if (++n == UPALLOC_WALK_BATCH)
				break;
		}
		mutex_unlock(&r->family->lock);
		cond_resched();
	} while (n == UPALLOC_WALK_BATCH && ++idx);
	info->pages_shared = shared;
	info->len = (u64)r->nr_pages << PAGE_SHIFT;
	info->flags = (r->heap ? UPALLOC_REGION_HEAP : 0) |
		      (r->forked ? UPALLOC_REGION_FORKED : 0);
}
