// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc mappings: ->mmap creates a region, the vm_ops fault its pages in,
 * break copy-on-write after fork, and follow the VMA's lifetime.
 *
 * Semantics worth knowing (also in the uapi header):
 * - Only MAP_SHARED mappings at offset 0, never executable: a private
 *   mapping would hand written data to the core's anonymous pages, and
 *   VM_MAYEXEC is cleared so that a later mprotect(PROT_EXEC) fails with
 *   EACCES.
 * - fork: the child gets a copy-on-write snapshot. ->open clones the table
 *   into a region of the child's mm and zaps the parent's PTEs (and the
 *   child's, see upalloc_vm_open()), so that the next write of either side
 *   faults and copies the page if it is still shared. MADV_DONTFORK leaves
 *   the child without the mapping; exec drops the child's shares.
 * - A page with a memory error (PageHWPoison) is never mapped or copied:
 *   VM_FAULT_HWPOISON, i.e. SIGBUS with BUS_MCEERR_AR.
 * - Write-notify only once forked: a region that never took part in a fork
 *   holds every page alone, so its VMA maps pages writable on any fault and
 *   has no ->page_mkwrite (upalloc_vm_ops). The fork switches the parent's
 *   and the child's VMA to upalloc_cow_vm_ops, whose ->page_mkwrite makes
 *   the core map pages read-only until a write reaches the module, which
 *   then copies a page still shared. A VMA never switches back.
 * - Partial munmap/mprotect/madvise that would split the VMA fail with
 *   EINVAL (->may_split); mremap moves fail with EINVAL (->mremap); growing
 *   in place fails with EFAULT (VM_DONTEXPAND, the core's rule); shrinking
 *   is a partial munmap.
 * - madvise(MADV_DONTNEED) only zaps PTEs: the region keeps its pages and
 *   the next touch maps the old contents again. UPALLOC_IOC_DECOMMIT is the
 *   way to give pages back.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/memcontrol.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>

#include "upalloc.h"
#include "upalloc_compat.h"
#include "upalloc_trace.h"

int upalloc_mmap(struct file *file, struct vm_area_struct *vma)
{
	pgoff_t nr_pages = vma_pages(vma);
	struct upalloc_region *r;

	/* Private mappings would take written pages away from the module. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/* Offsets belong to the module (one range per region). */
	if (vma->vm_pgoff)
		return -EINVAL;
	/* Heap memory is never executable, like a noexec mount. */
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	/* Bounded so that no region can exhaust the offset space. */
	if (nr_pages > READ_ONCE(upalloc_max_region_pages))
		return -EINVAL;

	r = upalloc_region_create(vma->vm_mm, nr_pages,
				  vma->vm_flags & VM_NORESERVE);
	if (IS_ERR(r))
		return PTR_ERR(r);

	vma->vm_pgoff = r->base;
	vma->vm_private_data = r;
	vma->vm_ops = &upalloc_vm_ops;
	/*
	 * VM_SPECIAL through DONTEXPAND: never merged, grown or mlocked.
	 * VM_MIXEDMAP lets POPULATE map pages with vm_insert_pages() under
	 * the mmap read lock (without it the core would set the flag itself,
	 * which needs the write lock). It also makes fork copy the PTEs;
	 * VM_WIPEONFORK stops that (the child faults its pages in from its
	 * own clone of the table), and ->open zaps both sides anyway, for a
	 * program that cleared the flag with MADV_KEEPONFORK.
	 */
	upalloc_vm_flags_mod(vma, VM_DONTEXPAND | VM_MIXEDMAP | VM_WIPEONFORK,
			     VM_MAYEXEC);
	return 0;
}

bool upalloc_vma_is_ours(const struct vm_area_struct *vma)
{
	return vma->vm_ops == &upalloc_vm_ops ||
	       vma->vm_ops == &upalloc_cow_vm_ops;
}

/*
 * Switch vma to write-notify: read faults and POPULATE map pages
 * read-only, so that every write to a page reaches ->page_mkwrite. The
 * vm_page_prot set here is what the core's vma_set_page_prot() gives a
 * shared VMA with ->page_mkwrite, and what mprotect() recomputes (the
 * module never sets cache attributes, the only bits that function would
 * carry over). Caller holds the mmap lock for writing (and, with per-VMA
 * locks, the VMA's write lock).
 */
static void upalloc_vma_set_cow(struct vm_area_struct *vma)
{
	vma->vm_ops = &upalloc_cow_vm_ops;
	WRITE_ONCE(vma->vm_page_prot,
		   vm_get_page_prot(vma->vm_flags & ~VM_SHARED));
}

/*
 * Map page (locked, with the fault's reference) at addr in a VMA that
 * never took part in a fork, and let the core retry the access. Handing
 * the page to the core instead (VM_FAULT_LOCKED) costs more for a shared
 * file mapping: finish_fault() and then fault_dirty_shared_page(), which
 * dirties the page and, with no ->page_mkwrite, updates the device
 * file's times on every write fault; neither means anything for the
 * module's pages. The page lock is held until the PTE is set, as the
 * removal protocol needs. A PTE set meanwhile by another thread's fault
 * (-EBUSY) is as good as ours.
 */
static vm_fault_t upalloc_fault_insert(struct vm_fault *vmf,
				       unsigned long addr, struct page *page)
{
	struct upalloc_region *r = vmf->vma->vm_private_data;
	int err;

	err = vm_insert_page(vmf->vma, addr, page);
	unlock_page(page);
	put_page(page);
	if (!err || err == -EBUSY)
		return VM_FAULT_NOPAGE;
	if (err == -ENOMEM) {
		upalloc_count(r->proc, UPALLOC_STAT_ENOMEM, 1);
		return VM_FAULT_OOM;
	}
	return VM_FAULT_SIGBUS;
}

/*
 * Memory the module allocates for a region is charged to the memcg of the
 * region's process, also when another process faults it in (ptrace,
 * process_vm_readv/writev, /proc/PID/mem): that process's memcg is made
 * the active one around the allocation. A fault of the process itself, or
 * of an io_uring worker sharing its mm, charges the current task's memcg
 * as usual. Returns the memcg to pass to owner_charge_end(), or NULL.
 */
static struct mem_cgroup *owner_charge_begin(struct vm_area_struct *vma,
					     struct mem_cgroup **old)
{
	struct mem_cgroup *memcg;

	if (current->mm == vma->vm_mm)
		return NULL;
	memcg = get_mem_cgroup_from_mm(vma->vm_mm);
	*old = set_active_memcg(memcg);
	return memcg;
}

static void owner_charge_end(struct mem_cgroup *memcg, struct mem_cgroup *old)
{
	if (!memcg)
		return;
	set_active_memcg(old);
	mem_cgroup_put(memcg);
}

static vm_fault_t upalloc_fault(struct vm_fault *vmf)
{
	struct mem_cgroup *memcg, *old_memcg = NULL;
	struct upalloc_region *r = vmf->vma->vm_private_data;
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	unsigned long addr = vmf->address & PAGE_MASK;
	/*
	 * sched_clock() (the TSC on x86) rather than ktime_get_ns(): the
	 * clocksource may be an MMIO device (hpet), whose two reads would
	 * cost a fair share of the fault they measure. And rather than
	 * local_clock(), which adds nothing for a duration on one CPU but,
	 * where the TSC is marked unstable (as in the test guests), filters
	 * each read through per-CPU state with interrupts off and a
	 * cmpxchg. A fault that migrates between two reads may be off by the
	 * CPUs' clock skew either way; a negative result is clamped below.
	 */
	u64 start = sched_clock();
	struct page *page;
	vm_fault_t ret;
	pgoff_t idx;
	s64 ns;

	/* A fork clone that could not be made: the child has no pages. */
	if (!r)
		return VM_FAULT_SIGBUS;
	idx = vmf->pgoff - r->base;
	memcg = owner_charge_begin(vmf->vma, &old_memcg);
	ret = upalloc_region_fault_page(r, vmf->vma, addr, idx, write, &page);
	owner_charge_end(memcg, old_memcg);
	if (ret == VM_FAULT_OOM)
		return ret;
	/* A core dump skipping a hole: not a fault of the program's. */
	if (ret == VM_FAULT_SIGBUS && (current->flags & PF_DUMPCORE))
		return ret;
	if (!ret) {
		/* Hold the page lock until the core has set the PTE. */
		lock_page(page);
		if (!upalloc_region_holds(r, idx, page)) {
			unlock_page(page);
			put_page(page);
			return VM_FAULT_NOPAGE;
		}
		ret = VM_FAULT_LOCKED;
		/*
		 * A memory error: never map the page. Handing it to the core
		 * instead would oops: __do_fault() unmaps a poisoned page
		 * through page->mapping, which the module's pages lack.
		 */
		if (PageHWPoison(page)) {
			unlock_page(page);
			put_page(page);
			ret = VM_FAULT_HWPOISON;
		}
	}
	if (ret == VM_FAULT_LOCKED) {
		if (vmf->vma->vm_ops == &upalloc_vm_ops)
			ret = upalloc_fault_insert(vmf, addr, page);
		else
			vmf->page = page;
	}

	/* Migrated to a CPU whose clock lags: count it as immediate. */
	ns = max_t(s64, sched_clock() - start, 0);
	trace_fault(r->base, addr, idx, write, ret, ns);
	if (ret & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON))
		upalloc_count(r->proc, UPALLOC_STAT_SIGBUS, 1);
	upalloc_count(r->proc, write ? UPALLOC_STAT_FAULTS_WRITE :
		      UPALLOC_STAT_FAULTS_READ, 1);
	upalloc_count_fault_latency(r->proc, ns);
	return ret;
}

static vm_fault_t upalloc_page_mkwrite(struct vm_fault *vmf)
{
	struct upalloc_region *r = vmf->vma->vm_private_data;
	struct mem_cgroup *memcg, *old_memcg = NULL;
	vm_fault_t ret;
	bool upgrade;

	if (!r)
		return VM_FAULT_SIGBUS;
	/*
	 * A present PTE: a read-only mapping being made writable, not the
	 * second half of a write fault on an empty PTE. (vmf->flags cannot
	 * tell: do_page_mkwrite() overwrites them.)
	 */
	upgrade = pte_present(vmf->orig_pte);
	memcg = owner_charge_begin(vmf->vma, &old_memcg);
	ret = upalloc_region_mkwrite(r, vmf->vma, vmf->address & PAGE_MASK,
				     vmf->pgoff - r->base, vmf->page, upgrade);
	owner_charge_end(memcg, old_memcg);
	return ret;
}

#ifdef CONFIG_PER_VMA_LOCK
/*
 * Maps nothing around a read fault (->fault maps every page, so that
 * faults counts each one). It exists because a vm_ops with ->map_pages
 * tells the core (vmf_can_call_fault()) that ->fault and ->page_mkwrite
 * need no mmap_lock: without it every fault under the per-VMA lock fails
 * with VM_FAULT_RETRY and runs again from the start under mmap_read_lock.
 * They need none: the region lives as long as the VMA, tables and pages
 * have their own locks, and what must exclude faults takes the VMA's write
 * lock (fork's ->open runs after dup_mmap() write-locks the parent's VMA;
 * munmap, mprotect likewise), while DECOMMIT and SET_BRK, which run
 * beside faults under mmap_read_lock anyway, rely only on the page lock
 * and the table locks.
 */
static vm_fault_t upalloc_map_pages(struct vm_fault *vmf, pgoff_t start,
				    pgoff_t end)
{
	return 0;
}
#endif

/*
 * A new VMA points at the region: a refused mremap's temporary copy in the
 * same mm, or the child's VMA during fork (current->mm is the parent's,
 * both mmap locks are held for writing, the child is not in i_mmap yet).
 *
 * Fork must leave neither side a PTE of a page that is now shared: the
 * parent's writable PTEs would write into the child's snapshot, and PTEs
 * copied into the child would write into the parent's pages. Whether the
 * core copies the page tables (copy_page_range(), skipped only with
 * VM_WIPEONFORK, which a program can clear) before or after calling here
 * has changed between kernel releases, stable ones included. So both
 * sides are zapped: the parent's before any copy the core makes after
 * this call, the child's after any copy it made before.
 */
static void upalloc_vm_open(struct vm_area_struct *vma)
{
	struct upalloc_region *r = vma->vm_private_data;
	struct upalloc_region *child = NULL;
	struct vm_area_struct *pvma;

	if (!r)
		return;
	if (vma->vm_mm == r->mm) {
		kref_get(&r->ref);
		return;
	}

	/* Whatever else happens, neither side keeps a PTE. */
	upalloc_zap(vma, vma->vm_start, vma->vm_end - vma->vm_start);
	pvma = vma_lookup(r->mm, vma->vm_start);
	if (pvma && pvma->vm_private_data == r) {
		upalloc_zap(pvma, pvma->vm_start, pvma->vm_end - pvma->vm_start);
		/* Both sides write-notify before any page is shared. */
		upalloc_vma_set_cow(pvma);
		upalloc_vma_set_cow(vma);
		child = upalloc_region_clone(r, vma->vm_mm);
	}
	vma->vm_private_data = child;
	/* A fatal signal fails the fork anyway: nothing to warn about. */
	if (!child && !fatal_signal_pending(current))
		pr_warn_ratelimited("fork: out of memory or over a commit limit, child's region unusable\n");
}

static void upalloc_vm_close(struct vm_area_struct *vma)
{
	struct upalloc_region *r = vma->vm_private_data;

	if (r)
		upalloc_region_put(r);
}

/* Regions are unmapped and protected whole: one VMA per region per mm. */
static int upalloc_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

/* Moves are refused; the core then moves the page tables back. */
static int upalloc_vm_mremap(struct vm_area_struct *vma)
{
	return -EINVAL;
}

/* A region that never took part in a fork: all its pages are its own. */
const struct vm_operations_struct upalloc_vm_ops = {
	.open = upalloc_vm_open,
	.close = upalloc_vm_close,
	.may_split = upalloc_may_split,
	.mremap = upalloc_vm_mremap,
	.fault = upalloc_fault,
#ifdef CONFIG_PER_VMA_LOCK
	.map_pages = upalloc_map_pages,
#endif
};

/* A fork parent or child: pages may be shared, writes must be seen. */
const struct vm_operations_struct upalloc_cow_vm_ops = {
	.open = upalloc_vm_open,
	.close = upalloc_vm_close,
	.may_split = upalloc_may_split,
	.mremap = upalloc_vm_mremap,
	.fault = upalloc_fault,
#ifdef CONFIG_PER_VMA_LOCK
	.map_pages = upalloc_map_pages,
#endif
	.page_mkwrite = upalloc_page_mkwrite,
};
