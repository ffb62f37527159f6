/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every difference between the Debian 6.1 and 6.12 kernel APIs that upalloc
 * meets, in one place. Nothing else in the module tests a kernel version.
 * Kbuild defines UPALLOC_MM_API_6_3 on kernels >= 6.3, where
 * zap_page_range() gave way to zap_page_range_single() and vm_flags became
 * read-only behind vm_flags_set()/vm_flags_mod(), and
 * UPALLOC_URING_API_6_7 on kernels >= 6.7, where the io_uring command API
 * moved to linux/io_uring/cmd.h.
 */
#ifndef _UPALLOC_COMPAT_H
#define _UPALLOC_COMPAT_H

#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

#ifndef UPALLOC_MM_API_6_3
/* 6.1: vm_flags is a plain field, written under the mmap write lock. */
static inline void upalloc_vm_flags_mod(struct vm_area_struct *vma,
					unsigned long set, unsigned long clear)
{
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
}

/* How many PTEs map page (order 0): 6.1 has page_mapcount() inline. */
static inline int upalloc_page_mapcount(struct page *page)
{
	return page_mapcount(page);
}

/* 6.1 exports zap_page_range(); zap_page_range_single() is static there. */
static inline void upalloc_zap_range(struct vm_area_struct *vma,
				     unsigned long addr, unsigned long size)
{
	zap_page_range(vma, addr, size);
}
#else
static inline void upalloc_vm_flags_mod(struct vm_area_struct *vma,
					unsigned long set, unsigned long clear)
{
	vm_flags_mod(vma, set, clear);
}

static inline void upalloc_zap_range(struct vm_area_struct *vma,
				     unsigned long addr, unsigned long size)
{
	zap_page_range_single(vma, addr, size, NULL);
}

/* 6.12 dropped page_mapcount(); folio_mapcount() is inline there. */
static inline int upalloc_page_mapcount(struct page *page)
{
	return folio_mapcount(page_folio(page));
}
#endif

/*
 * The task that owns mm (the thread group leader, or a successor if it
 * exited), for pid, comm and uid in /proc/upalloc/processes. Only kernels
 * with CONFIG_MEMCG track it (both Debian kernels do); elsewhere the caller
 * falls back to the pid that created the record. Call under rcu_read_lock().
 */
static inline struct task_struct *upalloc_mm_owner(struct mm_struct *mm)
{
#ifdef CONFIG_MEMCG
	return rcu_dereference(mm->owner);
#else
	return NULL;
#endif
}

/*
 * Should a long command (POPULATE, DECOMMIT, a break lowered) stop early
 * with -EINTR? In the caller's own task only on a fatal signal: a handled
 * signal must not make an ioctl fail half done. An io_uring worker
 * (PF_IO_WORKER: io-wq, or the SQPOLL thread) is never sent signals; it is
 * told to stop, on ring teardown or cancellation, through
 * TIF_NOTIFY_SIGNAL, which signal_pending() sees and fatal_signal_pending()
 * and task_sigpending() do not. Both kernels (6.1 and 6.12) work this way.
 * The SQPOLL thread also gets TIF_NOTIFY_SIGNAL for routine task_work;
 * upalloc_uring.c turns such an interruption of an inline command into
 * -EAGAIN, so that io-wq runs it again.
 */
static inline bool upalloc_should_stop(void)
{
	if (fatal_signal_pending(current))
		return true;
	return (current->flags & PF_IO_WORKER) && signal_pending(current);
}

/*
 * io_uring passthrough: the SQE's command area. 6.1 passes it as
 * ioucmd->cmd; 6.12 passes the SQE and io_uring_sqe_cmd() finds it.
 */
#ifdef UPALLOC_URING_API_6_7
#include <linux/io_uring/cmd.h>

static inline const void *
upalloc_uring_cmd_payload(const struct io_uring_cmd *ioucmd)
{
	return io_uring_sqe_cmd(ioucmd->sqe);
}

/* 6.12 always has the whole SQE (or io_uring's copy of all of it). */
static inline const struct io_uring_sqe *
upalloc_uring_cmd_sqe(const struct io_uring_cmd *ioucmd)
{
	return ioucmd->sqe;
}
#else
#include <linux/io_uring.h>
#include <linux/io_uring_types.h>

static inline const void *
upalloc_uring_cmd_payload(const struct io_uring_cmd *ioucmd)
{
	return ioucmd->cmd;
}

/*
 * 6.1 keeps the SQE only until the command goes async: then
 * io_uring_cmd_prep_async() copies the command area alone into async_data
 * and points ->cmd there. NULL in that case; the caller checks what it can.
 */
static inline const struct io_uring_sqe *
upalloc_uring_cmd_sqe(const struct io_uring_cmd *ioucmd)
{
	const struct io_kiocb *req = cmd_to_io_kiocb(ioucmd);

	if (ioucmd->cmd == req->async_data)
		return NULL;
	return (const struct io_uring_sqe *)((const u8 *)ioucmd->cmd -
		offsetof(struct io_uring_sqe, cmd));
}
#endif

#endif /* _UPALLOC_COMPAT_H */
