/* SPDX-License-Identifier: GPL-2.0 */
/*
 * upalloc internals shared by the module's files.
 *
 * Object model
 *   A region is what one mmap(2) of /dev/upalloc creates: a table from page
 *   index to driver-owned page, a break and a length. A fork clones the
 *   region into the child's mm; the clone shares the pages copy-on-write.
 *   All regions descended from one mmap form a family, with one mutex.
 *   Every mm that ever held a region has a record (struct upalloc_proc)
 *   carrying the per-process statistics.
 *
 * Page ownership
 *   A page in a region table holds one page reference and one "share" for
 *   that table. The share count (number of tables holding the page) lives in
 *   page_private() and is guarded by the family mutex; the page reference
 *   count is separate, and every PTE holds its own reference, so a page is
 *   never freed while a PTE maps it. A page is writable through a PTE only
 *   while its share count is 1. While in a table, a page has the module's
 *   address_space as ->mapping and, whenever a region holds it alone, that
 *   region's identity as ->index: what process-shared futexes key on
 *   (upalloc_region.c, page_own()).
 *
 * Lock order
 *   mmap_lock (or, for faults, the VMA's per-VMA lock where the kernel has
 *   them) -> page lock -> family mutex -> region xarray lock /
 *   upalloc_procs_lock / upalloc_commit_lock. Nothing takes a page lock
 *   while holding a family mutex. POPULATE holds up to UPALLOC_BATCH (32)
 *   page locks at once, but never waits for one: it locks fresh pages
 *   before anyone can see them and present ones with trylock_page().
 */
#ifndef _UPALLOC_H
#define _UPALLOC_H

#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/refcount.h>
#include <linux/types.h>
#include <linux/xarray.h>

#include "uapi/upalloc.h"

/* Fault latency histogram: bucket k counts faults of 2^k..2^(k+1)-1 ns. */
#define UPALLOC_LATENCY_BUCKETS	32

/* Event counters; also the order of the /proc/upalloc/stats lines. */
enum upalloc_stat {
	UPALLOC_STAT_REGIONS_CREATED,
	UPALLOC_STAT_REGIONS_DESTROYED,
	UPALLOC_STAT_PAGES_ALLOCATED,
	UPALLOC_STAT_PAGES_FREED,
	UPALLOC_STAT_FAULTS_READ,
	UPALLOC_STAT_FAULTS_WRITE,
	UPALLOC_STAT_FAULTS_MKWRITE,
	UPALLOC_STAT_COW_COPIES,
	UPALLOC_STAT_FORKS,
	UPALLOC_STAT_PAGES_POPULATED,
	UPALLOC_STAT_PAGES_DECOMMITTED,
	UPALLOC_STAT_ENOMEM,
	UPALLOC_STAT_SIGBUS,
	UPALLOC_STAT_LATENCY0,
	UPALLOC_NR_STATS = UPALLOC_STAT_LATENCY0 + UPALLOC_LATENCY_BUCKETS
};

/* Per-CPU event counters: summed on read, never reset. */
struct upalloc_counters {
	u64 count[UPALLOC_NR_STATS];
};

/*
 * Statistics of one mm (process).
 *
 * Invariants:
 *   pages_live == sum over the mm's live regions of region->nr_present,
 *                 plus the orphans naming the record (upalloc_orphan.c)
 *   regions == number of live regions whose ->proc is this record
 *   committed == sum over those regions of region->brk
 * Locks: node, regions under upalloc_procs_lock; committed under
 * upalloc_commit_lock; pages_live_peak (live count and its peak in one
 * word, see upalloc_stats.c) atomic; stats per-CPU.
 * Lifetime: the record holds an mmgrab() reference, so mm stays a unique
 * identity; it is unhashed once it has no regions and the mm is dead
 * (mm_users == 0), or at module exit, and freed when ref (one for the
 * hash table, one per reader of /proc/upalloc/processes formatting it,
 * one per orphan) drops to 0.
 */
struct upalloc_proc {
	struct hlist_node node;
	refcount_t ref;
	struct upalloc_user *user;	/* charged for committed */
	struct mm_struct *mm;
	pid_t tgid;			/* creator, if MEMCG has no mm->owner */
	long regions;
	long committed;			/* pages */
	atomic64_t pages_live_peak;
	struct upalloc_counters __percpu *stats;
};

/*
 * A user's commitments: the sum of committed over the records created by
 * processes whose real uid is uid. committed is under
 * upalloc_commit_lock, node under upalloc_procs_lock; records live until
 * module exit.
 */
struct upalloc_user {
	struct hlist_node node;
	kuid_t uid;
	long committed;			/* pages */
};

/*
 * A fork family: the regions descended from one mmap.
 * lock guards, for every member region: the table contents, brk,
 * nr_present, and the share counts (page_private) of the pages in the
 * tables; except that a fresh page goes into an empty table slot under
 * the region's xarray lock alone (brk and nr_present are written under
 * both locks), so that faults on missing pages do not serialise on it.
 * ref counts the member regions.
 */
struct upalloc_family {
	struct mutex lock;		/* see above */
	refcount_t ref;
	pgoff_t base;			/* its offset range (upalloc_pgoff.c) */
};

/*
 * One region: the pages behind one VMA of one mm.
 *
 * Invariants (under family->lock):
 *   every page in pages is at an index < brk <= nr_pages
 *   nr_present == number of entries in pages
 *   each entry holds one page reference and one share of the page
 * ref counts the VMAs pointing at the region through vm_private_data
 * (one, except transiently during a refused mremap). mm is an identity
 * only: the region dies (->close) before its mm does.
 * brk_lock serialises break moves, each one with the freeing of the
 * pages it lowers the break past, so that a concurrent raise cannot
 * bring back pages a lowering has not freed yet. Taken before any page
 * lock and the family mutex.
 */
struct upalloc_region {
	struct kref ref;
	struct mutex brk_lock;		/* see above */
	struct upalloc_family *family;
	struct upalloc_proc *proc;
	struct mm_struct *mm;
	struct xarray pages;
	pgoff_t base;			/* vm_pgoff: the family's range */
	pgoff_t key_base;		/* page identity, see page_own() */
	pgoff_t nr_pages;		/* reserved length in pages */
	pgoff_t brk;			/* break in pages */
	unsigned long nr_present;
	bool heap;			/* created with MAP_NORESERVE */
	bool forked;			/* a fork child's clone */
};

/* Module parameters (upalloc_main.c). */
extern unsigned long upalloc_max_pages;
extern unsigned long upalloc_max_pages_per_process;
extern unsigned long upalloc_max_pages_per_user;
extern unsigned long upalloc_max_region_pages;

/* upalloc_mmap.c */
extern const struct vm_operations_struct upalloc_vm_ops;
extern const struct vm_operations_struct upalloc_cow_vm_ops;
int upalloc_mmap(struct file *file, struct vm_area_struct *vma);
bool upalloc_vma_is_ours(const struct vm_area_struct *vma);

/* upalloc_region.c */
int upalloc_pages_init(void);
void upalloc_pages_exit(void);
struct upalloc_region *upalloc_region_create(struct mm_struct *mm,
					     pgoff_t nr_pages, bool heap);
void upalloc_region_put(struct upalloc_region *r);
struct upalloc_region *upalloc_region_clone(struct upalloc_region *parent,
					    struct mm_struct *mm);
vm_fault_t upalloc_region_fault_page(struct upalloc_region *r,
				     struct vm_area_struct *vma,
				     unsigned long addr, pgoff_t idx,
				     bool write, struct page **pagep);
vm_fault_t upalloc_region_mkwrite(struct upalloc_region *r,
				  struct vm_area_struct *vma,
				  unsigned long addr, pgoff_t idx,
				  struct page *page, bool upgrade);
bool upalloc_region_holds(struct upalloc_region *r, pgoff_t idx,
			  struct page *page);
int upalloc_region_fill(struct upalloc_region *r, pgoff_t first,
			pgoff_t last, u64 *nr_new);
int upalloc_region_populate(struct upalloc_region *r,
			    struct vm_area_struct *vma, pgoff_t first,
			    pgoff_t last, u64 *nr_new);
u64 upalloc_region_decommit(struct upalloc_region *r,
			    struct vm_area_struct *vma, pgoff_t first,
			    pgoff_t last);
int upalloc_region_set_brk(struct upalloc_region *r,
			   struct vm_area_struct *vma, pgoff_t new_brk,
			   pgoff_t *old_brk);
bool upalloc_region_page_exclusive(struct upalloc_region *r, pgoff_t idx);
bool upalloc_region_page_poisoned(struct upalloc_region *r, pgoff_t idx);
void upalloc_region_describe(struct upalloc_region *r,
			     struct upalloc_region_info *info);
void upalloc_zap(struct vm_area_struct *vma, unsigned long addr,
		 unsigned long size);

/* upalloc_orphan.c */
bool upalloc_orphan_keep(struct upalloc_proc *proc, struct page *page);
void upalloc_orphans_reap(void);
void upalloc_orphans_exit(void);

/* upalloc_pgoff.c */
void upalloc_pgoff_init(void);
int upalloc_pgoff_alloc(pgoff_t nr_pages, pgoff_t *base);
void upalloc_pgoff_free(pgoff_t base);
void upalloc_pgoff_exit(void);

/* upalloc_stats.c */
int upalloc_stats_init(void);
void upalloc_stats_exit(void);
void upalloc_stat_add(enum upalloc_stat item, u64 n);
void upalloc_proc_add(struct upalloc_proc *proc, enum upalloc_stat item,
		      u64 n);
void upalloc_count(struct upalloc_proc *proc, enum upalloc_stat item, u64 n);
void upalloc_count_fault_latency(struct upalloc_proc *proc, u64 ns);
void upalloc_pages_live_add(long n);
void upalloc_proc_pages_add(struct upalloc_proc *proc, long n);
struct upalloc_proc *upalloc_proc_get(struct mm_struct *mm, gfp_t gfp);
void upalloc_proc_put_region(struct upalloc_proc *proc);
int upalloc_commit(struct upalloc_proc *proc, long pages, bool force);
int upalloc_commit_fork(struct upalloc_proc *proc, long pages);
void upalloc_proc_hold(struct upalloc_proc *proc);
void upalloc_proc_unhold(struct upalloc_proc *proc);
void upalloc_proc_fill_stats(struct upalloc_proc_stats *st);

/* upalloc_ioctl.c */
/* The input of a command, as read once from the user (ioctl or io_uring). */
union upalloc_cmd_args {
	struct upalloc_range range;
	struct upalloc_brk brk;
	struct upalloc_region_info info;
};

long upalloc_do_cmd(struct file *file, unsigned int cmd, void __user *arg);
int upalloc_cmd_copy_in(unsigned int cmd, void __user *arg,
			union upalloc_cmd_args *a);
long upalloc_cmd_run(unsigned int cmd, union upalloc_cmd_args *a,
		     void __user *arg);
int upalloc_cmd_lookup(u64 addr, u64 len, struct vm_area_struct **vmap,
		       struct upalloc_region **rp);

/* upalloc_uring.c (io_uring passthrough) */
struct io_uring_cmd;
int upalloc_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags);

/* upalloc_plant.c: planted defects, only in check-debug's harness test */
#if defined(UPALLOC_PLANT_UAF) || defined(UPALLOC_PLANT_LEAK)
void upalloc_plant(void);
#else
static inline void upalloc_plant(void)
{
}
#endif

#endif /* _UPALLOC_H */
