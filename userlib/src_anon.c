// SPDX-License-Identifier: MIT
/*
 * src_anon.c: the page source on plain anonymous mmap, for machines without
 * the upalloc module and for the host unit tests.
 *
 * A heap is a PROT_NONE reservation aligned to its length; moving the break
 * up makes pages read-write (they are untouched, hence zero), moving it down
 * drops the pages (MADV_DONTNEED) and makes them inaccessible again, so an
 * access above the break faults as it does on the device.
 */
#include <sys/mman.h>
#include <errno.h>
#include <stdint.h>

#include "glue.h"
#include "src.h"

/* The raw calls below set errno; the contract says we must not. */
static int anon_errno(int saved_errno)
{
	int err = errno;

	errno = saved_errno;
	return -err;
}

/* Reserve len bytes of PROT_NONE address space aligned to align. */
static int anon_reserve_aligned(size_t len, size_t align, void **base)
{
	int saved_errno = errno;
	size_t span = len + align;
	char *p, *aligned;

	if (span < len)
		return -ENOMEM;
	p = mmap(NULL, span, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return anon_errno(saved_errno);
	aligned = (char *)upa_align_up((uintptr_t)p, align);
	/* Trim the misaligned head and the unused tail of the span. */
	if (aligned > p)
		munmap(p, aligned - p);
	if (aligned + len < p + span)
		munmap(aligned + len, p + span - (aligned + len));
	errno = saved_errno;
	*base = aligned;
	return 0;
}

static int anon_heap_reserve(size_t len, void **base)
{
	return anon_reserve_aligned(len, len, base);
}

static int anon_heap_set_brk(void *base, size_t len, size_t old_brk,
			     size_t new_brk)
{
	int saved_errno = errno;
	char *b = base;

	if (new_brk > len)
		return -EINVAL;
	if (new_brk > old_brk) {
		if (mprotect(b + old_brk, new_brk - old_brk,
			     PROT_READ | PROT_WRITE))
			return anon_errno(saved_errno);
	} else if (new_brk < old_brk) {
		/* Drop the pages first: PROT_NONE alone would keep them. */
		if (madvise(b + new_brk, old_brk - new_brk, MADV_DONTNEED))
			return anon_errno(saved_errno);
		if (mprotect(b + new_brk, old_brk - new_brk, PROT_NONE))
			return anon_errno(saved_errno);
	}
	return 0;
}

static int anon_unmap(void *addr, size_t len)
{
	int saved_errno = errno;

	if (munmap(addr, len))
		return anon_errno(saved_errno);
	return 0;
}

static int anon_map(size_t len, void **addr)
{
	int saved_errno = errno;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return anon_errno(saved_errno);
	*addr = p;
	return 0;
}

static int anon_resize(void *addr, size_t old_len, size_t new_len,
		       bool may_move, void **new_addr)
{
	int saved_errno = errno;
	void *p = mremap(addr, old_len, new_len, may_move ? MREMAP_MAYMOVE : 0);

	if (p == MAP_FAILED)
		return anon_errno(saved_errno);
	*new_addr = p;
	return 0;
}

static int anon_decommit(void *addr, size_t len)
{
	int saved_errno = errno;

	if (madvise(addr, len, MADV_DONTNEED))
		return anon_errno(saved_errno);
	return 0;
}

static int anon_settle(void)
{
	return 0;
}

/* Trims move the break: the mmap backend has no queue to batch them in. */
static int anon_trim_deferred(void *addr, size_t len)
{
	(void)addr;
	(void)len;
	return -EOPNOTSUPP;
}

static int anon_reclaim(void *addr, size_t len)
{
	(void)addr;
	(void)len;
	return 0;
}

/* Page faults on anonymous memory are the kernel's business. */
static void anon_populate_ahead(void *addr, size_t len)
{
	(void)addr;
	(void)len;
}

static int anon_populate(void *addr, size_t len)
{
	int saved_errno = errno;

	/* Best effort: MADV_POPULATE_WRITE exists since Linux 5.14. */
	if (madvise(addr, len, 23 /* MADV_POPULATE_WRITE */))
		return anon_errno(saved_errno);
	return 0;
}

static int anon_proc_stats(struct upalloc_proc_stats *st)
{
	(void)st;
	return -ENODEV;
}

static void anon_fork_child(void)
{
}

int upa_src_anon_meta_map(size_t len, void **addr)
{
	return anon_map(len, addr);
}

const struct upa_src upa_src_anon = {
	.name		= "mmap",
	.is_device	= false,
	.heap_reserve	= anon_heap_reserve,
	.heap_set_brk	= anon_heap_set_brk,
	.heap_release	= anon_unmap,
	.map		= anon_map,
	.resize		= anon_resize,
	.unmap		= anon_unmap,
	.decommit	= anon_decommit,
	.settle		= anon_settle,
	.trim_deferred	= anon_trim_deferred,
	.reclaim	= anon_reclaim,
	.populate_ahead	= anon_populate_ahead,
	.populate	= anon_populate,
	.proc_stats	= anon_proc_stats,
	.fork_child	= anon_fork_child,
};
