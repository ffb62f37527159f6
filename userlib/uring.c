// SPDX-License-Identifier: MIT
/*
 * uring.c: one io_uring per process for deferred decommit and background
 * populate of device pages (the contract is in uring.h).
 *
 * Commands live in slots. A slot owns the struct upalloc_range that the
 * kernel reads (and writes nr_pages into) until the command's CQE has been
 * reaped, so it stays busy from the request to the reaping:
 *   FREE -> QUEUED (SQE prepared, not yet handed to the kernel)
 *        -> IN_FLIGHT (submitted) -> FREE (CQE reaped)
 * Invariants, under the lock:
 *   nr_queued == number of QUEUED slots == SQEs prepared and not submitted
 *   nr_busy   == number of QUEUED + IN_FLIGHT slots
 *   the SQE of slot i carries user_data i; nothing else carries i < SLOTS
 * A QUEUED SQE is still private to us (liburing publishes the SQ tail only
 * in io_uring_submit()), which is what lets reclaim rewrite or cancel it.
 *
 * Fork: the lock word and the "this process set the ring up" flag live in
 * a MADV_WIPEONFORK page, so a fork child finds the lock free and the flag
 * clear on its first call, whatever other threads were doing at the fork,
 * and repairs its copy of the state without a getpid() per call.
 * The ring memory is MADV_DONTFORK: the child never sees the parent's SQ.
 *
 * Nothing here calls malloc: liburing's queue_init/submit/wait/register
 * paths only mmap and make system calls (its calloc is in the probe
 * helpers, which are not used).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glue.h"
#include "uring.h"
#include "../kmod/uapi/upalloc.h"

#ifdef UPA_HAVE_LIBURING
#include <liburing.h>
#endif

#define URING_DEFAULT_BATCH		32
/*
 * Off unless asked for (e.g. 131072, the default top_pad). It works: in
 * the guest (tools/bench/URING.md, libupalloc preloaded) it removed 5-77 %
 * of the first-touch faults on the allocation path of bigheap,
 * calloc_blocks, realloc_grow, churn and fragment. But only realloc_grow
 * ran faster, and churn took 1.6-1.7x the CPU of the ring alone on both
 * kernels (fragment 1.5x on 6.1): the populate's io_uring_enter and io-wq
 * wake-up per break raise and pages populated that were never used
 * (churn: 2108 populated for 1433 faults saved) cost more than the faults
 * saved, at least under TCG on 2 busy cores. Earlier it had also raised a churning heap's faults (9589 ->
 * 12813): pages populated for one growth were trimmed before use and
 * populated again, and a populate submitted the decommits queued for
 * their batch; both are fixed (fresh addresses only, never while
 * decommits are queued).
 */
#define URING_DEFAULT_POPULATE_AHEAD	0
/* Descriptor numbers below this are the ones programs juggle. */
#define URING_FD_FLOOR			400
/* user_data of the set-up probe: not a slot. */
#define URING_PROBE_DATA		((uint64_t)-1)
/* Address ranges remembered as populated once (see populate_seen()). */
#define URING_POPULATED_RANGES		16
/*
 * Queued decommits are submitted at UPALLOC_URING_BATCH commands or at
 * this many bytes, whichever comes first: a few large trims must not keep
 * megabytes away from the kernel until 32 of them have accumulated.
 */
#define URING_MAX_QUEUED_BYTES		(8UL << 20)

enum uring_state {
	RING_NONE,		/* not set up (yet, or again after a fork) */
	RING_UP,
	RING_UNAVAILABLE,	/* disabled or set-up failed: ioctls only */
	RING_BROKEN,		/* failed after set-up: ioctls, never entered */
};

enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_IN_FLIGHT };
/* OP_SYNC: upa_uring_cmd(), its argument is the caller's (cmd unused). */
enum slot_op { OP_DECOMMIT = 1, OP_POPULATE, OP_CANCELLED, OP_SYNC };

struct uring_slot {
	struct upalloc_range cmd;	/* the kernel reads it until reaped */
	uint8_t state;
	uint8_t op;
	int res;			/* the last CQE's result */
	void *sqe;			/* QUEUED: its SQE */
};

/* The part of the state a fork child must find reset: one wiped page. */
struct uring_local {
	struct upa_lock lock;
	int live;		/* this process has checked/repaired the state */
};

static struct uring_local *local;	/* MADV_WIPEONFORK page */
static int local_failed;

static struct {
	bool configured;
	bool enabled;			/* UPALLOC_URING */
	bool fixed_file;		/* fd registered as fixed file 0 */
	bool ring_dontfork;
	enum uring_state state;
	unsigned int batch;
	size_t populate_ahead;
	int fd;
	int (*dev_ioctl)(unsigned long cmd, void *arg);
	unsigned int nr_queued;
	unsigned int nr_busy;		/* also read without the lock */
	uint64_t queued_bytes;		/* QUEUED decommits (upper bound) */
	/*
	 * Hull of every decommit that finally failed: its pages may keep
	 * their contents, so reclaim() reports it dirty forever (a failure
	 * means a bug or a module refusing a range; never seen in tests).
	 * Written before nr_busy drops, so the lock-free check sees it.
	 */
	uint64_t failed_lo, failed_hi;
	struct uring_slot slots[UPA_URING_SLOTS];
	/* Ranges populated ahead once; [start, end), end == 0: unused. */
	struct {
		uintptr_t start, end;
	} populated[URING_POPULATED_RANGES];
	unsigned int populated_next;	/* round-robin victim */
	struct upa_uring_stats st;
#ifdef UPA_HAVE_LIBURING
	struct io_uring ring;
	dev_t ring_dev;			/* identity of the ring descriptor */
	ino_t ring_ino;
#endif
} U = { .fd = -1 };

/* ---- small helpers ------------------------------------------------------ */

/* environ directly: getenv() may not be usable this early in a preload. */
static const char *env_lookup(const char *name)
{
	size_t n = strlen(name);
	char **e;

	for (e = environ; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static size_t env_size(const char *name, size_t def, size_t max)
{
	const char *s = env_lookup(name);
	size_t v = 0;

	if (!s || !*s)
		return def;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (size_t)(*s - '0');
	if (*s == 'k' || *s == 'K')
		v <<= 10;
	else if (*s == 'm' || *s == 'M')
		v <<= 20;
	return v > max ? max : v;
}

static size_t uring_page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

static int open_high_cloexec(const char *path)
{
	int fd = upa_open_nocancel(path, O_RDWR | O_CLOEXEC);
	int high;

	if (fd < 0)
		return -1;
	high = fcntl(fd, F_DUPFD_CLOEXEC, URING_FD_FLOOR);
	if (high >= 0) {
		upa_close_nocancel(fd);
		fd = high;
	}
	return fd;
}

/* The device descriptor: the allocator's, or our own opened on demand. */
static int dev_fd(void)
{
	int fd = __atomic_load_n(&U.fd, __ATOMIC_ACQUIRE);
	int expected = -1;

	if (fd >= 0)
		return fd;
	fd = open_high_cloexec(UPALLOC_DEVICE_PATH);
	if (fd < 0)
		return -1;
	if (!__atomic_compare_exchange_n(&U.fd, &expected, fd, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		upa_close_nocancel(fd);	/* another thread was first */
		return expected;
	}
	return fd;
}

static int dev_cmd(unsigned long cmd, void *arg)
{
	int fd;

	if (U.dev_ioctl)
		return U.dev_ioctl(cmd, arg);
	fd = dev_fd();
	if (fd < 0)
		return -ENODEV;
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static int dev_range(unsigned long cmd, uint64_t addr, uint64_t len)
{
	struct upalloc_range r = { .addr = addr, .len = len };

	return dev_cmd(cmd, &r);
}

/* Read the tunables. Once per process image. */
static void uring_configure(void)
{
	if (U.configured)
		return;
	U.enabled = env_size("UPALLOC_URING", 1, 1) != 0;
	U.batch = (unsigned int)env_size("UPALLOC_URING_BATCH",
					 URING_DEFAULT_BATCH, UPA_URING_SLOTS);
	if (!U.batch)
		U.batch = 1;
	U.populate_ahead = upa_align_down(env_size("UPALLOC_URING_POPULATE_AHEAD",
						   URING_DEFAULT_POPULATE_AHEAD,
						   (size_t)1 << 40),
					  uring_page_size());
	U.st.batch = U.batch;
	U.st.populate_ahead = U.populate_ahead;
	U.configured = true;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- the ring (liburing) ------------------------------------------------ */

#ifdef UPA_HAVE_LIBURING

static void failed_note(uint64_t addr, uint64_t len)
{
	if (!U.failed_hi || addr < U.failed_lo)
		U.failed_lo = addr;
	if (addr + len > U.failed_hi)
		U.failed_hi = addr + len;
}

static void slot_complete(uint64_t idx, int res)
{
	struct uring_slot *s;

	if (idx >= UPA_URING_SLOTS)
		return;
	s = &U.slots[idx];
	if (res < 0 && s->op != OP_CANCELLED && s->op != OP_SYNC) {
		U.st.failed++;
		/*
		 * A decommit the ring could not run (cancelled by io-wq,
		 * interrupted, refused by the transport) is redone by ioctl,
		 * so that it ends exactly as without the ring.
		 */
		if (s->op == OP_DECOMMIT &&
		    (res == -ECANCELED || res == -EINTR || res == -EAGAIN ||
		     res == -EOPNOTSUPP || res == -EBADF || res == -ENXIO)) {
			res = dev_range(UPALLOC_IOC_DECOMMIT, s->cmd.addr, s->cmd.len);
			U.st.decommits_ioctl++;
		}
		if (s->op == OP_DECOMMIT && res < 0)
			failed_note(s->cmd.addr, s->cmd.len);
	}
	s->res = res;
	s->state = SLOT_FREE;
	__atomic_store_n(&U.nr_busy, U.nr_busy - 1, __ATOMIC_RELEASE);
}

/* Reap every CQE there is; no system call. */
static void ring_reap(void)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	if (U.state != RING_UP && U.state != RING_BROKEN)
		return;
	io_uring_for_each_cqe(&U.ring, head, cqe) {
		slot_complete(cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&U.ring, n);
}

/*
 * The ring failed under us (its descriptor closed by the program, ...).
 * Queued decommits are done by ioctl now; in-flight commands still finish
 * in the kernel and post their CQEs into the (still mapped) ring, which
 * ring_wait() then polls. The ring is never entered again.
 */
static void ring_break(void)
{
	unsigned int i;

	U.state = RING_BROKEN;
	U.st.ring_active = 0;
	for (i = 0; i < UPA_URING_SLOTS; i++) {
		struct uring_slot *s = &U.slots[i];

		if (s->state != SLOT_QUEUED)
			continue;
		if (s->op == OP_DECOMMIT) {
			s->res = dev_range(UPALLOC_IOC_DECOMMIT, s->cmd.addr,
					   s->cmd.len);
			U.st.decommits_ioctl++;
			if (s->res < 0)
				failed_note(s->cmd.addr, s->cmd.len);
		} else if (s->op == OP_SYNC) {
			s->res = -ENOTCONN;	/* upa_uring_cmd(): use ioctl */
		}
		s->state = SLOT_FREE;
		U.nr_busy--;
	}
	U.nr_queued = 0;
	U.queued_bytes = 0;
	__atomic_store_n(&U.nr_busy, U.nr_busy, __ATOMIC_RELEASE);
}

/* Hand every QUEUED SQE to the kernel; with wait, also wait for a CQE. */
static void ring_submit(bool wait)
{
	unsigned int i;
	int ret;

	if (U.state == RING_BROKEN) {
		if (wait)
			sched_yield();
		ring_reap();
		return;
	}
	if (!U.nr_queued && !wait)
		return;
	do {
		ret = wait ? io_uring_submit_and_wait(&U.ring, 1)
			   : io_uring_submit(&U.ring);
		U.st.enters++;
	} while (ret == -EINTR);
	if (U.nr_queued)
		U.st.submits++;
	if (wait)
		U.st.waits++;
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
		ring_break();
		return;
	}
	/*
	 * liburing has published the whole SQ tail: whatever the kernel did
	 * not consume now it consumes at the next enter, so none of these
	 * SQEs may be rewritten any more.
	 */
	for (i = 0; i < UPA_URING_SLOTS; i++) {
		if (U.slots[i].state == SLOT_QUEUED) {
			U.slots[i].state = SLOT_IN_FLIGHT;
			U.slots[i].sqe = NULL;
		}
	}
	U.nr_queued = 0;
	U.queued_bytes = 0;
	ring_reap();
}

/* Wait until slot idx has been reaped. */
static void ring_wait_slot(unsigned int idx)
{
	while (U.slots[idx].state != SLOT_FREE)
		ring_submit(true);
}

static int slot_get(void)
{
	unsigned int i;

	for (i = 0; i < UPA_URING_SLOTS; i++) {
		if (U.slots[i].state == SLOT_FREE)
			return (int)i;
	}
	return -1;
}

/* A free slot, waiting for a completion if all are busy; -1 if broken. */
static int slot_get_wait(void)
{
	int idx;

	ring_reap();
	while ((idx = slot_get()) < 0) {
		if (U.state != RING_UP)
			return -1;
		ring_submit(true);
	}
	return idx;
}

static void prep_upalloc_cmd(struct io_uring_sqe *sqe, unsigned int op,
			     void *arg)
{
	struct upalloc_uring_cmd payload = { .arg = (uintptr_t)arg };

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, U.fixed_file ? 0 : U.fd,
			 NULL, 0, 0);
	sqe->cmd_op = op;
	memcpy(sqe->cmd, &payload, sizeof(payload));
	if (U.fixed_file)
		sqe->flags |= IOSQE_FIXED_FILE;
}

/* Fill slot idx and prepare its SQE (not submitted). false: SQ full. */
static bool slot_queue(int idx, unsigned int op_kind, uint64_t addr,
		       uint64_t len, unsigned int sqe_flags)
{
	struct uring_slot *s = &U.slots[idx];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&U.ring);

	if (!sqe)
		return false;
	memset(&s->cmd, 0, sizeof(s->cmd));
	s->cmd.addr = addr;
	s->cmd.len = len;
	s->op = (uint8_t)op_kind;
	s->res = 0;
	s->sqe = sqe;
	prep_upalloc_cmd(sqe, op_kind == OP_DECOMMIT ? UPALLOC_IOC_DECOMMIT
						     : UPALLOC_IOC_POPULATE,
			 &s->cmd);
	sqe->flags |= sqe_flags;
	io_uring_sqe_set_data64(sqe, (uint64_t)idx);
	s->state = SLOT_QUEUED;
	U.nr_queued++;
	if (op_kind == OP_DECOMMIT)
		U.queued_bytes += len;
	__atomic_store_n(&U.nr_busy, U.nr_busy + 1, __ATOMIC_RELEASE);
	return true;
}

/* One command through the ring, waited for: the set-up probe. */
static int ring_probe(void)
{
	struct upalloc_version v;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&U.ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return -EBUSY;
	memset(&v, 0, sizeof(v));
	prep_upalloc_cmd(sqe, UPALLOC_IOC_VERSION, &v);
	io_uring_sqe_set_data64(sqe, URING_PROBE_DATA);
	do {
		ret = io_uring_submit_and_wait(&U.ring, 1);
	} while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = io_uring_peek_cqe(&U.ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->user_data == URING_PROBE_DATA ? cqe->res : -EIO;
	io_uring_cqe_seen(&U.ring, cqe);
	if (!ret && v.abi_version != UPALLOC_ABI_VERSION)
		ret = -EPROTO;
	return ret;
}

/* Move the ring descriptor out of the range programs close wholesale. */
static void ring_fd_move_high(void)
{
	int high = fcntl(U.ring.ring_fd, F_DUPFD_CLOEXEC, URING_FD_FLOOR);

	if (high < 0)
		return;
	upa_close_nocancel(U.ring.ring_fd);
	U.ring.ring_fd = high;
	U.ring.enter_ring_fd = high;
}

static void ring_setup(void)
{
	struct io_uring_params p;
	struct upalloc_version v;
	struct stat st;
	int ret, rfd;

	U.state = RING_UNAVAILABLE;
	if (!U.enabled || dev_fd() < 0)
		return;
	memset(&v, 0, sizeof(v));
	if (dev_cmd(UPALLOC_IOC_VERSION, &v) ||
	    !(v.features & UPALLOC_FEAT_URING_CMD))
		return;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	ret = io_uring_queue_init_params(UPA_URING_SLOTS, &U.ring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(UPA_URING_SLOTS, &U.ring, &p);
	}
	if (ret)	/* ENOSYS, EPERM (io_uring_disabled, seccomp), ENOMEM */
		return;
	ring_fd_move_high();
	if (!fstat(U.ring.ring_fd, &st)) {
		U.ring_dev = st.st_dev;
		U.ring_ino = st.st_ino;
	}
	U.ring_dontfork = io_uring_ring_dontfork(&U.ring) == 0;
	/*
	 * Only as a fixed file, registered from a descriptor opened here
	 * for the purpose: it holds its own reference to the device, so no
	 * command can reach another file that the program opened under a
	 * number we once used (nothing checks numbers per command here).
	 */
	rfd = open_high_cloexec(UPALLOC_DEVICE_PATH);
	U.fixed_file = rfd >= 0 &&
		       io_uring_register_files(&U.ring, &rfd, 1) == 0;
	if (rfd >= 0)
		upa_close_nocancel(rfd);	/* the registered file keeps its reference */
	if (!U.fixed_file || ring_probe()) {
		io_uring_queue_exit(&U.ring);
		U.fixed_file = false;
		return;
	}
	U.state = RING_UP;
	U.st.ring_active = 1;
}

/*
 * First call in a fork child of a process that had a ring: the ring is
 * the parent's. Every decommit that was queued or in flight at the fork is
 * redone on the child's own pages, which makes them read as zero whatever
 * the parent's command did before or after the fork instant.
 */
static void ring_fork_child(void)
{
	struct stat st;
	unsigned int i;

	for (i = 0; i < UPA_URING_SLOTS; i++) {
		struct uring_slot *s = &U.slots[i];

		if (s->state == SLOT_FREE)
			continue;
		if (s->op == OP_DECOMMIT) {
			if (dev_range(UPALLOC_IOC_DECOMMIT, s->cmd.addr,
				      s->cmd.len))
				failed_note(s->cmd.addr, s->cmd.len);
			U.st.fork_redone++;
		}
		s->state = SLOT_FREE;
	}
	U.nr_queued = 0;
	U.queued_bytes = 0;
	__atomic_store_n(&U.nr_busy, 0, __ATOMIC_RELEASE);
	/*
	 * Our copy of the ring descriptor, unless the program has closed it
	 * and the number now names something else.
	 */
	if (!fstat(U.ring.ring_fd, &st) && st.st_dev == U.ring_dev &&
	    st.st_ino == U.ring_ino)
		upa_close_nocancel(U.ring.ring_fd);
	if (!U.ring_dontfork) {
		/* Inherited mappings of the parent's ring: drop ours. */
		munmap(U.ring.sq.ring_ptr, U.ring.sq.ring_sz);
		munmap(U.ring.sq.sqes, U.ring.sq.ring_entries *
		       sizeof(struct io_uring_sqe));
		if (U.ring.cq.ring_ptr != U.ring.sq.ring_ptr)
			munmap(U.ring.cq.ring_ptr, U.ring.cq.ring_sz);
	}
	memset(&U.ring, 0, sizeof(U.ring));
	U.fixed_file = false;
	U.state = RING_NONE;
	U.st.ring_active = 0;
}

#else /* !UPA_HAVE_LIBURING: every command is an ioctl */

static void ring_submit(bool wait)
{
	(void)wait;
}

static void ring_setup(void)
{
	U.state = RING_UNAVAILABLE;
}

static void ring_fork_child(void)
{
	U.state = RING_NONE;
}

#endif /* UPA_HAVE_LIBURING */

/* ---- entry and exit of every public call -------------------------------- */

static struct uring_local *local_page(void)
{
	struct uring_local *l = __atomic_load_n(&local, __ATOMIC_ACQUIRE);
	struct uring_local *expected = NULL;
	void *p;

	if (likely(l) || __atomic_load_n(&local_failed, __ATOMIC_RELAXED))
		return l;
	p = mmap(NULL, uring_page_size(), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		__atomic_store_n(&local_failed, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (madvise(p, uring_page_size(), MADV_WIPEONFORK)) {
		/* Without it a fork child could not tell: no ring at all. */
		munmap(p, uring_page_size());
		__atomic_store_n(&local_failed, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&local, &expected, p, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		munmap(p, uring_page_size());
		return expected;
	}
	return p;
}

/*
 * Take the lock and bring the state up to date for this process. Returns
 * false (lock not taken) when no ring can ever be used here; the caller
 * then does the ioctl itself.
 */
static bool uring_lock(bool want_ring)
{
	struct uring_local *l = local_page();

	if (!l) {
		/* No fork detection possible: never a ring, only ioctls. */
		static struct upa_lock cfg_lock = UPA_LOCK_INIT;

		if (!U.configured) {
			upa_lock(&cfg_lock);
			uring_configure();
			upa_unlock(&cfg_lock);
		}
		return false;
	}
	upa_lock(&l->lock);
	if (!l->live) {
		uring_configure();
		/* A ring set up before a fork (this is the child). */
		if (U.state == RING_UP || U.state == RING_BROKEN)
			ring_fork_child();
		l->live = 1;
	}
	if (want_ring && U.state == RING_NONE)
		ring_setup();
	return true;
}

static void uring_unlock(void)
{
	upa_unlock(&local->lock);
}

/* ---- the API ------------------------------------------------------------ */

void upa_uring_attach(int fd, int (*dev_ioctl)(unsigned long cmd, void *arg))
{
	int saved_errno = errno;

	bool locked = uring_lock(false);

	/* Too late once a ring holds another descriptor. */
	if (U.state != RING_UP && U.state != RING_BROKEN) {
		int old = __atomic_exchange_n(&U.fd, fd, __ATOMIC_ACQ_REL);

		if (old >= 0 && old != fd)
			upa_close_nocancel(old);	/* our own, opened by dev_fd() */
		U.dev_ioctl = dev_ioctl;
	}
	if (locked)
		uring_unlock();
	errno = saved_errno;
}

bool upa_uring_available(void)
{
	int saved_errno = errno;
	bool up = false;

	if (uring_lock(true)) {
		up = U.state == RING_UP;
		uring_unlock();
	}
	errno = saved_errno;
	return up;
}

size_t upa_uring_populate_ahead_bytes(void)
{
	if (!U.configured)
		(void)upa_uring_available();
	return U.populate_ahead;
}

#ifdef UPA_HAVE_LIBURING
/* Wait for the populate commands overlapping [addr, addr + len). */
static void populate_wait(void *addr, size_t len)
{
	unsigned int i;

	ring_reap();
	for (i = 0; i < UPA_URING_SLOTS; i++) {
		struct uring_slot *s = &U.slots[i];

		if (s->state != SLOT_FREE && s->op == OP_POPULATE &&
		    ranges_overlap(s->cmd.addr, s->cmd.len, (uintptr_t)addr,
				   len))
			ring_wait_slot(i);
	}
}
#endif

int upa_uring_decommit(void *addr, size_t len)
{
	int saved_errno = errno;
	int ret = 0;

	if (!len)
		return -EINVAL;
	if (!uring_lock(true)) {
		ret = dev_range(UPALLOC_IOC_DECOMMIT, (uintptr_t)addr, len);
		goto out;
	}
	U.st.decommits++;
#ifdef UPA_HAVE_LIBURING
	if (U.state == RING_UP) {
		int idx;

		/*
		 * A populate-ahead still running over the range would fill
		 * the pages again after the decommit freed them: wait.
		 */
		populate_wait(addr, len);
		idx = slot_get_wait();

		if (idx >= 0 && slot_queue(idx, OP_DECOMMIT, (uintptr_t)addr,
					   len, 0)) {
			if (U.nr_queued >= U.batch ||
			    U.queued_bytes >= URING_MAX_QUEUED_BYTES)
				ring_submit(false);
			uring_unlock();
			goto out;
		}
	}
#endif
	ret = dev_range(UPALLOC_IOC_DECOMMIT, (uintptr_t)addr, len);
	U.st.decommits_ioctl++;
	uring_unlock();
out:
	errno = saved_errno;
	return ret;
}

/*
 * Settle every command overlapping [a, a + len), lock held. With cancel,
 * queued decommits lose their overlap (reclaim); without, they are
 * submitted and waited for like the rest (populate-ahead, which must not
 * turn a decommit the caller counts on into old contents). Returns 1 when
 * part of the range may keep old contents (a decommit cancelled or failed).
 */
static int uring_settle_locked(uint64_t a, uint64_t len, bool cancel)
{
	int dirty = 0;
#ifdef UPA_HAVE_LIBURING
	uint64_t b = a + len;
	unsigned int i;

	ring_reap();
	/* Not yet submitted: cancel the overlap, keep the rest queued. */
	for (i = 0; cancel && i < UPA_URING_SLOTS; i++) {
		struct uring_slot *s = &U.slots[i];
		uint64_t s_start = s->cmd.addr, s_end = s->cmd.addr + s->cmd.len;

		if (s->state != SLOT_QUEUED || s->op != OP_DECOMMIT ||
		    !ranges_overlap(s_start, s->cmd.len, a, len))
			continue;
		dirty = 1;
		U.st.cancelled++;
		if (s_start < a) {
			s->cmd.len = a - s_start;	/* keep the left part */
			if (s_end > b) {
				int j = slot_get();

				/* The right part too, if there is room. */
				if (j >= 0)
					slot_queue(j, OP_DECOMMIT, b, s_end - b, 0);
			}
		} else if (s_end > b) {
			s->cmd.addr = b;		/* keep the right part */
			s->cmd.len = s_end - b;
		} else {
			/* All of it: the SQE becomes a no-op, still reaped. */
			io_uring_prep_nop(s->sqe);
			io_uring_sqe_set_data64(s->sqe, (uint64_t)i);
			s->op = OP_CANCELLED;
		}
	}
	/* Submitted (or a populate): wait for it. */
	for (i = 0; i < UPA_URING_SLOTS; i++) {
		struct uring_slot *s = &U.slots[i];

		if (s->state == SLOT_FREE || s->op == OP_CANCELLED ||
		    !ranges_overlap(s->cmd.addr, s->cmd.len, a, len))
			continue;
		if (cancel && s->state == SLOT_QUEUED && s->op == OP_DECOMMIT)
			continue;	/* what was left outside the range */
		ring_wait_slot(i);
		if (s->op == OP_DECOMMIT && s->res < 0)
			dirty = 1;
	}
	if (U.failed_hi && ranges_overlap(a, len, U.failed_lo,
					  U.failed_hi - U.failed_lo))
		dirty = 1;
#else
	(void)a;
	(void)len;
	(void)cancel;
#endif
	return dirty;
}

static int uring_reclaim_locked(uint64_t a, uint64_t len)
{
	return uring_settle_locked(a, len, true);
}

int upa_uring_reclaim(void *addr, size_t len)
{
	int saved_errno = errno;
	int dirty;

	/* The common case, no command anywhere: no lock, no system call. */
	if (!len)
		return 0;
	if (!__atomic_load_n(&U.nr_busy, __ATOMIC_ACQUIRE)) {
		uint64_t lo = U.failed_lo, hi = U.failed_hi;

		return hi && ranges_overlap((uintptr_t)addr, len, lo, hi - lo);
	}
	dirty = 0;
	if (uring_lock(false)) {
		dirty = uring_reclaim_locked((uintptr_t)addr, len);
		uring_unlock();
	}
	errno = saved_errno;
	return dirty;
}

/*
 * Populate-ahead only where a heap grows for the first time: a top chunk
 * that shrinks (trim) and grows again over the same addresses would
 * otherwise have pages populated that the next trim frees unused (a churn
 * workload doubled its page allocations that way). Cut [*a, *b) down to
 * its part beyond the remembered ranges; remember what is left.
 * Lock held.
 */
static bool populate_first_time(uintptr_t *a, uintptr_t *b)
{
	unsigned int i, victim;

	for (i = 0; i < URING_POPULATED_RANGES; i++) {
		uintptr_t s = U.populated[i].start, e = U.populated[i].end;

		if (!e || e <= *a || s >= *b)
			continue;
		if (s <= *a)
			*a = e < *b ? e : *b;		/* a prefix was done */
		else if (e >= *b)
			*b = s;				/* a suffix was done */
	}
	if (*a >= *b)
		return false;
	for (i = 0; i < URING_POPULATED_RANGES; i++) {
		/* Extend a range that ends where this one starts. */
		if (U.populated[i].end && U.populated[i].end == *a) {
			U.populated[i].end = *b;
			return true;
		}
	}
	victim = U.populated_next++ % URING_POPULATED_RANGES;
	U.populated[victim].start = *a;
	U.populated[victim].end = *b;
	return true;
}

/* The range goes away (unmapped): forget that it was populated. Lock held. */
static void populate_forget(uintptr_t a, uintptr_t b)
{
	unsigned int i;

	for (i = 0; i < URING_POPULATED_RANGES; i++) {
		if (U.populated[i].end && U.populated[i].start < b &&
		    U.populated[i].end > a) {
			U.populated[i].start = 0;
			U.populated[i].end = 0;
		}
	}
}

int upa_uring_populate_ahead(void *addr, size_t len)
{
	int saved_errno = errno;
	uintptr_t a = (uintptr_t)addr, b;
	int ret = 0;

	if (!uring_lock(true)) {
		errno = saved_errno;
		return 0;
	}
	if (len > U.populate_ahead)
		len = U.populate_ahead;
	b = a + len;
	/*
	 * Advisory: nothing to do without a ring, nor while decommits wait
	 * for their batch: submitting the populate submits them too (the SQ
	 * goes to the kernel whole), and a trimmed range that the top chunk
	 * grows back into before its batch is submitted is cancelled instead
	 * of being freed and faulted in again. Submitting them early doubled
	 * the populate mode's first-touch faults (bigheap, fragment).
	 */
	if (!len || U.state != RING_UP || U.nr_queued ||
	    !populate_first_time(&a, &b))
		goto out;
#ifdef UPA_HAVE_LIBURING
	{
		int idx;

		/* Keep the kernel's view ordered: no decommit left pending. */
		uring_settle_locked(a, b - a, false);
		ring_reap();
		idx = slot_get();
		/* IOSQE_ASYNC: populate in io-wq, beside the program. */
		if (idx >= 0 && slot_queue(idx, OP_POPULATE, a, b - a,
					   IOSQE_ASYNC)) {
			U.st.populates++;
			ring_submit(false);
		}
	}
#endif
out:
	uring_unlock();
	errno = saved_errno;
	return ret;
}

int upa_uring_release(void *addr, size_t len)
{
	int saved_errno = errno;
	int dirty = 0;

	if (!len)
		return 0;
	if (uring_lock(false)) {
		dirty = uring_reclaim_locked((uintptr_t)addr, len);
		populate_forget((uintptr_t)addr, (uintptr_t)addr + len);
		uring_unlock();
	}
	errno = saved_errno;
	return dirty;
}

bool upa_uring_decommit_pending(void *addr, size_t len)
{
	int saved_errno = errno;
	bool hit = false;
	unsigned int i;

	if (!len || !__atomic_load_n(&U.nr_busy, __ATOMIC_ACQUIRE))
		return false;
	if (uring_lock(false)) {
		/* No reaping: a done but unreaped decommit still counts. */
		for (i = 0; i < UPA_URING_SLOTS; i++) {
			struct uring_slot *s = &U.slots[i];

			if (s->state != SLOT_FREE && s->op == OP_DECOMMIT &&
			    ranges_overlap(s->cmd.addr, s->cmd.len,
					   (uintptr_t)addr, len))
				hit = true;
		}
		uring_unlock();
	}
	errno = saved_errno;
	return hit;
}

/*
 * One command through the ring, waited for: the caller's ioctl without
 * its descriptor check (see uring.h). -ENOTCONN: no ring, use ioctl.
 */
int upa_uring_cmd(unsigned long cmd, void *arg)
{
	int saved_errno = errno;
	int ret = -ENOTCONN;

	/*
	 * Only a ring that is up already (set up by the first deferred trim
	 * or decommit): a fork child that only grows its heap before exec
	 * must not pay for a ring of its own (io_uring_setup, mmaps,
	 * registration, probe: ~8 system calls).
	 */
	if (!uring_lock(false)) {
		errno = saved_errno;
		return ret;
	}
#ifdef UPA_HAVE_LIBURING
	if (U.state == RING_UP) {
		int idx = slot_get_wait();
		struct io_uring_sqe *sqe;
		struct uring_slot *s;

		if (idx < 0)
			goto out;
		sqe = io_uring_get_sqe(&U.ring);
		if (!sqe)
			goto out;
		s = &U.slots[idx];
		/* addr = len = 0: overlaps no range that settle() looks at. */
		memset(&s->cmd, 0, sizeof(s->cmd));
		s->op = OP_SYNC;
		s->res = 0;
		s->sqe = sqe;
		prep_upalloc_cmd(sqe, (unsigned int)cmd, arg);
		io_uring_sqe_set_data64(sqe, (uint64_t)idx);
		s->state = SLOT_QUEUED;
		U.nr_queued++;
		__atomic_store_n(&U.nr_busy, U.nr_busy + 1, __ATOMIC_RELEASE);
		ring_wait_slot((unsigned int)idx);
		ret = s->res;
		U.st.sync_cmds++;
		/* Transport failures (not the command's answer): use ioctl. */
		if (ret == -ECANCELED || ret == -EINTR || ret == -EAGAIN ||
		    ret == -EOPNOTSUPP || ret == -EBADF || ret == -ENXIO)
			ret = -ENOTCONN;
		else if (ret > 0)
			ret = 0;
	}
out:
#else
	(void)cmd;
	(void)arg;
#endif
	uring_unlock();
	errno = saved_errno;
	return ret;
}

int upa_uring_flush(void)
{
	int saved_errno = errno;

	if (!__atomic_load_n(&U.nr_busy, __ATOMIC_ACQUIRE))
		return 0;
	if (uring_lock(false)) {
		ring_submit(false);
		while (U.nr_busy)
			ring_submit(true);
		uring_unlock();
	}
	errno = saved_errno;
	return 0;
}

void upa_uring_get_stats(struct upa_uring_stats *st)
{
	if (uring_lock(false)) {
		*st = U.st;
		uring_unlock();
	} else {
		*st = U.st;
	}
}
