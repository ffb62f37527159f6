// SPDX-License-Identifier: MIT
/*
 * src_dev.c: the page source on /dev/upalloc (see kmod/uapi/upalloc.h).
 *
 * Heaps are device heap regions (MAP_SHARED | MAP_NORESERVE, break 0) whose
 * break UPALLOC_IOC_SET_BRK moves. The device cannot place a region at an
 * aligned address by itself and refuses partial munmap, so a heap is first
 * reserved as an aligned anonymous PROT_NONE range, which the device region
 * then replaces with MAP_FIXED. A large chunk gets a region of its own too:
 * a heap region with half as much again reserved behind its break, so
 * that realloc can grow it in place by moving the break (regions cannot
 * be moved or cut: mremap and partial munmap are refused).
 *
 * The descriptor: programs (daemons) close every descriptor they did not
 * open, and may open something else that gets our number. Mappings survive
 * the close, but an ioctl or mmap on a reused number would act on somebody
 * else's file. Invariant: no command or mmap reaches a file that is not
 * /dev/upalloc. Two ways to keep it:
 *   - with the ring (uring.c), commands go to a registered (fixed) file:
 *     the ring holds its own reference to the device file, taken from a
 *     descriptor opened for the purpose, so what the program does with
 *     descriptor numbers cannot redirect them and no check is needed.
 *     One io_uring_enter() per command instead of fstat() + ioctl();
 *   - without it (UPALLOC_URING=0, no liburing, io_uring disabled or
 *     refused) and for mmap, every use first checks with fstat() that the
 *     number still names the upalloc character device, and reopens it
 *     (O_CLOEXEC) if not. Nothing cheaper is safe: F_GETFD/F_GETFL do not
 *     identify the file, a cached "still ours" flag goes stale with any
 *     close()/dup2()/close_range() we cannot see, and trying the ioctl and
 *     judging by its error is exactly the use of a foreign file to avoid
 *     (another driver may define the same command number).
 *   The fstat() costs are paid on the ioctl path only; the trim-heavy paths
 *   use the ring when there is one (deferred trims, region.c).
 *
 * Decommits go through uring.c: batched into one io_uring submission when
 * the module takes commands that way, plain ioctls otherwise; settle()
 * waits for them (malloc_trim() settles before it unlocks the arena), and
 * reclaim() settles those over one range before it is reused.
 */
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "glue.h"
#include "src.h"
#include "uring.h"
#include "../kmod/uapi/upalloc.h"

/* Descriptor numbers below this are the ones programs juggle. */
#define DEV_FD_FLOOR	400

static int dev_fd = -1;
static dev_t dev_rdev;
static struct upa_lock dev_fd_lock = UPA_LOCK_INIT;

static int dev_errno(int saved_errno)
{
	int err = errno;

	errno = saved_errno;
	return -err;
}

static bool dev_fd_is_ours(int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == dev_rdev;
}

/* Open the device, move it out of the way; -errno on failure. */
static int dev_open_fd(void)
{
	struct stat st;
	int fd, high;

	fd = upa_open_nocancel(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISCHR(st.st_mode)) {
		upa_close_nocancel(fd);
		return -ENODEV;
	}
	high = fcntl(fd, F_DUPFD_CLOEXEC, DEV_FD_FLOOR);
	if (high >= 0) {
		upa_close_nocancel(fd);
		fd = high;
	}
	dev_rdev = st.st_rdev;
	return fd;
}

/* The device descriptor, checked and reopened if needed; -errno if none. */
static int dev_get_fd(void)
{
	int saved_errno = errno;
	int fd = __atomic_load_n(&dev_fd, __ATOMIC_ACQUIRE);

	if (likely(dev_fd_is_ours(fd))) {
		errno = saved_errno;
		return fd;
	}
	upa_lock(&dev_fd_lock);
	fd = dev_fd;
	if (!dev_fd_is_ours(fd)) {
		/* Not ours any more: never close it, someone else owns it. */
		fd = dev_open_fd();
		if (fd >= 0)
			__atomic_store_n(&dev_fd, fd, __ATOMIC_RELEASE);
	}
	upa_unlock(&dev_fd_lock);
	errno = saved_errno;
	return fd;
}

static int dev_ioctl(unsigned long cmd, void *arg)
{
	int saved_errno = errno;
	int fd = dev_get_fd();

	if (fd < 0)
		return fd;
	if (ioctl(fd, cmd, arg))
		return dev_errno(saved_errno);
	return 0;
}

/* A command through the ring when there is one, else a checked ioctl. */
static int dev_cmd(unsigned long cmd, void *arg)
{
	int ret = upa_uring_cmd(cmd, arg);

	if (ret != -ENOTCONN)
		return ret;
	return dev_ioctl(cmd, arg);
}

int upa_src_dev_open(void)
{
	struct upalloc_version v;
	int saved_errno = errno;
	int fd, err;

	fd = dev_open_fd();
	errno = saved_errno;
	if (fd < 0)
		return fd;
	memset(&v, 0, sizeof(v));
	if (ioctl(fd, UPALLOC_IOC_VERSION, &v)) {
		err = dev_errno(saved_errno);
		goto out_close;
	}
	if (v.abi_version != UPALLOC_ABI_VERSION) {
		err = -EPROTO;
		goto out_close;
	}
	if (!(v.features & UPALLOC_FEAT_HEAP)) {
		err = -EOPNOTSUPP;
		goto out_close;
	}
	__atomic_store_n(&dev_fd, fd, __ATOMIC_RELEASE);
	upa_uring_attach(fd, dev_ioctl);
	return 0;

out_close:
	upa_close_nocancel(fd);
	errno = saved_errno;
	return err;
}

static int dev_set_brk(void *addr, size_t new_brk, struct upalloc_brk *out)
{
	memset(out, 0, sizeof(*out));
	out->addr = (uintptr_t)addr;
	out->new_brk = new_brk;
	return dev_cmd(UPALLOC_IOC_SET_BRK, out);
}

static int dev_heap_reserve(size_t len, void **base)
{
	int saved_errno = errno;
	size_t span = len + len;
	char *p, *aligned;
	void *dev;
	int fd;

	if (span < len)
		return -ENOMEM;
	fd = dev_get_fd();
	if (fd < 0)
		return fd;
	p = mmap(NULL, span, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return dev_errno(saved_errno);
	aligned = (char *)upa_align_up((uintptr_t)p, len);
	if (aligned > p)
		munmap(p, aligned - p);
	if (aligned + len < p + span)
		munmap(aligned + len, p + span - (aligned + len));
	dev = mmap(aligned, len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (dev == MAP_FAILED) {
		int err = dev_errno(saved_errno);

		munmap(aligned, len);
		errno = saved_errno;
		return err;
	}
	*base = dev;
	return 0;
}

static int dev_heap_set_brk(void *base, size_t len, size_t old_brk,
			    size_t new_brk)
{
	struct upalloc_brk b;

	(void)old_brk;
	if (new_brk > len)
		return -EINVAL;
	return dev_set_brk(base, new_brk, &b);
}

static int dev_munmap(void *addr, size_t len)
{
	int saved_errno = errno;

	if (munmap(addr, len))
		return dev_errno(saved_errno);
	return 0;
}

/* The reserved length of the region at addr (0 when it cannot be told). */
static size_t dev_region_len(void *addr)
{
	struct upalloc_brk b;

	memset(&b, 0, sizeof(b));
	b.addr = (uintptr_t)addr;
	b.flags = UPALLOC_BRK_QUERY;
	if (dev_cmd(UPALLOC_IOC_SET_BRK, &b))
		return 0;
	return (size_t)b.region_len;
}

static int dev_map(size_t len, void **addr)
{
	size_t reserve = upa_align_up(len + len / 2, upa_page_size);
	int saved_errno = errno;
	struct upalloc_brk b;
	void *p;
	int fd, err;

	if (reserve < len)
		reserve = len;
	fd = dev_get_fd();
	if (fd < 0)
		return fd;
	p = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		return dev_errno(saved_errno);
	/* Commit len bytes (or give back the rest if NORESERVE was ignored). */
	err = dev_set_brk(p, len, &b);
	if (err) {
		munmap(p, reserve);
		errno = saved_errno;
		return err;
	}
	*addr = p;
	return 0;
}

/* Move the break within the reservation; the region never moves. */
static int dev_resize(void *addr, size_t old_len, size_t new_len,
		      bool may_move, void **new_addr)
{
	struct upalloc_brk b;
	int err;

	(void)may_move;
	(void)old_len;
	if (new_len > dev_region_len(addr))
		return -ENOMEM;
	err = dev_set_brk(addr, new_len, &b);
	if (err)
		return err;
	*new_addr = addr;
	return 0;
}

/* A chunk region: unmap all of it, the reservation behind the break too. */
static int dev_unmap(void *addr, size_t len)
{
	size_t region_len = dev_region_len(addr);

	return dev_munmap(addr, region_len > len ? region_len : len);
}

static int dev_range(unsigned long cmd, void *addr, size_t len)
{
	struct upalloc_range r;

	memset(&r, 0, sizeof(r));
	r.addr = (uintptr_t)addr;
	r.len = len;
	return dev_cmd(cmd, &r);
}

static int dev_decommit(void *addr, size_t len)
{
	return upa_uring_decommit(addr, len);
}

static int dev_settle(void)
{
	return upa_uring_flush();
}

static int dev_trim_deferred(void *addr, size_t len)
{
	if (!upa_uring_available())
		return -EOPNOTSUPP;
	return upa_uring_decommit(addr, len);
}

static int dev_reclaim(void *addr, size_t len)
{
	return upa_uring_reclaim(addr, len);
}

static void dev_populate_ahead(void *addr, size_t len)
{
	upa_uring_populate_ahead(addr, len);
}

/* No command may still be queued on a heap when its address goes away. */
static int dev_heap_release(void *base, size_t len)
{
	upa_uring_release(base, len);
	return dev_munmap(base, len);
}

static int dev_populate(void *addr, size_t len)
{
	return dev_range(UPALLOC_IOC_POPULATE, addr, len);
}

static int dev_proc_stats(struct upalloc_proc_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	st->version = UPALLOC_ABI_VERSION;
	/* Exact: decommits still queued are counted once they are done. */
	upa_uring_flush();
	return dev_cmd(UPALLOC_IOC_PROC_STATS, st);
}

/* The lock may have been held by a thread that is gone in the child. */
static void dev_fork_child(void)
{
	upa_lock_reinit(&dev_fd_lock);
}

const struct upa_src upa_src_dev = {
	.name		= "device",
	.is_device	= true,
	.heap_reserve	= dev_heap_reserve,
	.heap_set_brk	= dev_heap_set_brk,
	.heap_release	= dev_heap_release,
	.map		= dev_map,
	.resize		= dev_resize,
	.unmap		= dev_unmap,
	.decommit	= dev_decommit,
	.settle		= dev_settle,
	.trim_deferred	= dev_trim_deferred,
	.reclaim	= dev_reclaim,
	.populate_ahead	= dev_populate_ahead,
	.populate	= dev_populate,
	.proc_stats	= dev_proc_stats,
	.fork_child	= dev_fork_child,
};
