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
 *   signals running workers (TIF_NOTIFY_SIGNAL, or SIGKILL at exit), as
 *   IORING_OP_ASYNC_CANCEL does; a running command stops early with -EINTR
 *   (upalloc_should_stop()), and the pages it populated belong to the
 *   region and are freed with it.
 *
 * - The command structure is read from the user once per issue
 *   (upalloc_cmd_copy_in()); the inline-or-io-wq decision and the command
 *   itself use that copy. SQE fields upalloc does not use must be 0.
 *
 * Completing long commands from task_work (io_uring_cmd_complete_in_task())
 * was rejected: task_work runs in the submitting task when it next enters the
 * kernel, so the work would not overlap with the application at all.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/sched/signal.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "upalloc.h"
#include "upalloc_compat.h"

/* The command area of a 128-byte SQE (IORING_SETUP_SQE128). */
#define UPALLOC_URING_CMD128_SIZE	80

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
 * Decided on the copy of the command that will run (a), never on a second
 * read of the user's structure.
 */
static bool upalloc_uring_cmd_is_long(unsigned int cmd_op,
				      const union upalloc_cmd_args *a)
{
	switch (cmd_op) {
	case UPALLOC_IOC_POPULATE:
	case UPALLOC_IOC_DECOMMIT:
		return (a->range.len >> PAGE_SHIFT) >
		       READ_ONCE(uring_inline_pages);
	case UPALLOC_IOC_SET_BRK:
		/* Raising the break only commits: inline. Lowering frees. */
		if (a->brk.flags & UPALLOC_BRK_QUERY)
			return false;
		return upalloc_uring_brk_is_long(a->brk.addr, a->brk.new_brk);
	default:
		return false;
	}
}

/*
 * Every SQE field upalloc does not define must be 0, so that it can be
 * given a meaning later: the payload's reserved word, the rest of the
 * command area of a 128-byte SQE, a registered buffer (the commands take
 * none), and ioprio, addr, len and buf_index. io_uring checks the rest
 * itself (__pad1, the uring_cmd flags it knows). On 6.1 the SQE outside
 * the command area is gone once the command went async (IOSQE_ASYNC, or a
 * drained or linked request); the command area is checked there too.
 */
static int upalloc_uring_check_unused(const struct io_uring_cmd *ioucmd,
				      const struct upalloc_uring_cmd *payload,
				      unsigned int issue_flags)
{
	const struct io_uring_sqe *sqe = upalloc_uring_cmd_sqe(ioucmd);

	if (ioucmd->flags & IORING_URING_CMD_FIXED)
		return -EINVAL;
	if (READ_ONCE(payload->reserved))
		return -EINVAL;
	if ((issue_flags & IO_URING_F_SQE128) &&
	    memchr_inv(payload + 1, 0, UPALLOC_URING_CMD128_SIZE -
		       sizeof(*payload)))
		return -EINVAL;
	if (sqe && (READ_ONCE(sqe->ioprio) || READ_ONCE(sqe->addr) ||
		    READ_ONCE(sqe->len) || READ_ONCE(sqe->buf_index)))
		return -EINVAL;
	return 0;
}

int upalloc_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags)
{
	const struct upalloc_uring_cmd *payload = upalloc_uring_cmd_payload(ioucmd);
	bool nonblock = issue_flags & IO_URING_F_NONBLOCK;
	unsigned int cmd_op = ioucmd->cmd_op;
	union upalloc_cmd_args a;
	void __user *arg;
	long ret;

	/* The SQE lives in memory the submitter can still write: read it once. */
	arg = u64_to_user_ptr(READ_ONCE(payload->arg));
	ret = upalloc_uring_check_unused(ioucmd, payload, issue_flags);
	if (ret)
		return ret;
	ret = upalloc_cmd_copy_in(cmd_op, arg, &a);
	if (ret)
		return ret;

	if (nonblock && upalloc_uring_cmd_is_long(cmd_op, &a))
		return -EAGAIN;

	ret = upalloc_cmd_run(cmd_op, &a, arg);
	/*
	 * Stopped inline by a TIF_NOTIFY_SIGNAL that was not meant for it
	 * (the SQPOLL thread gets them for task_work): let io-wq finish it.
	 * What was done stays done; the command picks up from there.
	 */
	if (ret == -EINTR && nonblock && !fatal_signal_pending(current))
		return -EAGAIN;
	return ret;
}
