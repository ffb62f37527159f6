// SPDX-License-Identifier: GPL-2.0
/*
 * upalloc: io_uring passthrough (IORING_OP_URING_CMD on /dev/upalloc).
 *
 * sqe->cmd_op is one of the UPALLOC_IOC_* numbers and the SQE's 16-byte
 * command area holds a struct upalloc_uring_cmd whose arg points at the same
 * command structure the ioctl takes. The command goes through the ioctl's own
 * dispatcher, upalloc_do_cmd(), so validation, errors and outputs are those of
 * the ioctl; only the transport differs. The result is the CQE's res.
 *
 * Where a command runs, and why that is safe:
 *
 * - Short commands (VERSION, REGION_INFO, PROC_STATS, a break query or
 *   raise, POPULATE/DECOMMIT of at most uring_inline_pages pages, a break
 *   lowered by at most that many pages) run inline, in the submitting task,
 *   during io_uring_enter(); current->mm is the submitter's, exactly as for
 *   the ioctl.
 *
 * - Long commands (bigger POPULATE/DECOMMIT, a break lowered by more, or
 *   any break move while the mmap lock is contended) issued inline
 *   (IO_URING_F_NONBLOCK) return
 *   -EAGAIN. For a request without REQ_F_NOWAIT, io_uring then queues it to
 *   io-wq (io_queue_async(): uring_cmd has no pollin/pollout, so
 *   io_arm_poll_handler() returns IO_APOLL_ABORTED -> io_queue_iowq()), after
 *   saving the SQE (6.1: io_uring_cmd_prep_async() into async_data; 6.12:
 *   memcpy into the uring_cache), and io-wq issues it again without
 *   IO_URING_F_NONBLOCK. We then run it to the end in the worker.
 *   io-wq workers are made by create_io_thread() with CLONE_VM|CLONE_THREAD
 *   from the submitting task, so current->mm is the submitter's mm and the
 *   worker itself holds a reference on it (mm_users) for as long as it runs:
 *   the command never touches a dead mm, needs no kthread_use_mm() and no
 *   mmget_not_zero(), and charges pages to the submitter's memcg.
 *   The same holds for IOSQE_ASYNC submissions and for an SQPOLL thread,
 *   which is a CLONE_VM thread of the ring's creator.
 *
 * - Nothing is ever left pending here: every call returns a result or
 *   -EAGAIN, never -EIOCBQUEUED, so there is no completion to lose and
 *   nothing to cancel (no io_uring_cmd_mark_cancelable() on 6.12; this
 *   handler is never called with IO_URING_F_CANCEL). On ring teardown or
 *   process exit io-wq cancels queued work (-ECANCELED, never issued) and
 *   signals running workers (TIF_NOTIFY_SIGNAL, or SIGKILL at exit); a
 *   running command finishes or stops early as the ioctl would on a signal,
 *   and the pages it populated belong to the region and are freed with it.
 *
 * Completing long commands from task_work (io_uring_cmd_complete_in_task())
 * was rejected: task_work runs in the submitting task when it next enters the
 * kernel, so the work would not overlap with the application at all.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/uaccess.h>

#include "upalloc.h"
#include "upalloc_compat.h"

static unsigned int uring_inline_pages = 64;
module_param(uring_inline_pages, uint, 0644);
MODULE_PARM_DESC(uring_inline_pages,
		 "io_uring commands allocating or freeing more pages run in io-wq (default 64)");

/*
 * Would lowering the break of the caller's region at addr to new_brk free
 * more pages than we allow inline? Only a peek: the dispatcher looks the
 * region up again and validates everything. A busy mmap lock says yes
 * (io-wq may wait for it, the submitter should not).
 */
static bool upalloc_uring_brk_is_long(u64 addr, u64 new_brk)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct upalloc_region *r;
	bool is_long = false;
	pgoff_t old_brk, to;

	if (!mm)
		return false;
	if (!mmap_read_trylock(mm))
		return true;
	if (!upalloc_cmd_lookup(addr, 1, &vma, &r)) {
		old_brk = READ_ONCE(r->brk);
		to = new_brk >> PAGE_SHIFT;
		is_long = to < old_brk &&
			  old_brk - to > READ_ONCE(uring_inline_pages);
	}
	mmap_read_unlock(mm);
	return is_long;
}

/*
 * Would this command allocate or free more pages than we allow inline?
 * A pointer we cannot read says no: the dispatcher then reports -EFAULT
 * exactly as the ioctl does.
 */
static bool upalloc_uring_cmd_is_long(unsigned int cmd_op, void __user *arg)
{
	struct upalloc_range __user *range = arg;
	struct upalloc_brk __user *brk = arg;
	u64 len, addr, new_brk;
	u32 flags;

	switch (cmd_op) {
	case UPALLOC_IOC_POPULATE:
	case UPALLOC_IOC_DECOMMIT:
		if (get_user(len, &range->len))
			return false;
		return (len >> PAGE_SHIFT) > READ_ONCE(uring_inline_pages);
	case UPALLOC_IOC_SET_BRK:
		/* Raising the break only commits: inline. Lowering frees. */
		if (get_user(flags, &brk->flags) || get_user(addr, &brk->addr) ||
		    get_user(new_brk, &brk->new_brk))
			return false;
		if (flags & UPALLOC_BRK_QUERY)
			return false;
		return upalloc_uring_brk_is_long(addr, new_brk);
	default:
		return false;
	}
}

int upalloc_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags)
{
	const struct upalloc_uring_cmd *payload = upalloc_uring_cmd_payload(ioucmd);
	unsigned int cmd_op = ioucmd->cmd_op;
	void __user *arg;

	/* The SQE lives in memory the submitter can still write: read it once. */
	arg = u64_to_user_ptr(READ_ONCE(payload->arg));
	if (READ_ONCE(payload->reserved))
		return -EINVAL;

	if ((issue_flags & IO_URING_F_NONBLOCK) &&
	    upalloc_uring_cmd_is_long(cmd_op, arg))
		return -EAGAIN;

	return upalloc_do_cmd(ioucmd->file, cmd_op, arg);
}
