/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * upalloc: page-backed memory regions from /dev/upalloc.
 *
 * The one ABI shared by the kernel module, libupalloc, the selftests and the
 * tools. Every structure has a fixed size and reserved fields that callers
 * must zero; the module rejects a non-zero reserved field with EINVAL so that
 * the fields can be given a meaning later without breaking old callers.
 *
 * Regions
 *   mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) creates a
 *   region of len bytes (a page multiple). Pages appear zero-filled on first
 *   touch and are owned, counted and freed by the module. Offsets must be 0,
 *   MAP_PRIVATE and PROT_EXEC are refused. The descriptor must be open for
 *   writing (O_RDWR): the kernel turns a MAP_SHARED mapping of a read-only
 *   descriptor into a private one, which is refused with EINVAL like
 *   MAP_PRIVATE.
 *
 *   Every region has a break: a byte offset from its start, a page multiple,
 *   0 <= brk <= len. Only pages below the break may be touched; an access at
 *   or above it raises SIGBUS, like memory beyond brk(2). Memory is committed
 *   (counted against the module's limits) for the pages below the break, so a
 *   touch below the break never fails for quota reasons.
 *
 *   - A plain mapping starts with brk == len: the whole region is committed.
 *   - A mapping made with MAP_NORESERVE is a heap region: it reserves the
 *     address range and starts with brk == 0. UPALLOC_IOC_SET_BRK moves the
 *     break up (commit, ENOMEM up front when a limit would be exceeded) or
 *     down (the pages above the new break are freed). This replaces sbrk(2).
 *     When the kernel ignores MAP_NORESERVE (vm.overcommit_memory=2) the
 *     region is created committed, with brk == len.
 *
 *   A region is destroyed whole by munmap(2); partial munmap, mprotect or
 *   madvise of part of a region and mremap moves are refused with EINVAL
 *   (growing a region in place fails with EFAULT, the kernel's rule for
 *   such mappings). PROT_EXEC fails with EPERM at mmap and with EACCES at
 *   mprotect. Lengths above upalloc_version.max_region_bytes: EINVAL.
 *
 *   fork(2) gives the child a copy-on-write snapshot of every region (both
 *   sides keep their own writes); the child inherits the commitments, even
 *   beyond the limits. MADV_DONTFORK keeps a region out of the child; exec
 *   drops the child's share. madvise(MADV_DONTNEED) only unmaps: the region
 *   keeps its pages and the next touch sees the old contents again; use
 *   UPALLOC_IOC_DECOMMIT to give pages back. Core dumps include regions
 *   only when bit 3 (shared file mappings) of /proc/PID/coredump_filter is
 *   set; pages never touched are then dumped as holes, not allocated.
 *
 * Commands
 *   Each command is an ioctl on a /dev/upalloc descriptor. Addresses name
 *   the caller's own regions: a range that does not lie inside one upalloc
 *   region of the calling process fails with EINVAL (ENOMEM when nothing is
 *   mapped there), whatever descriptor is used.
 *   The same command numbers and structures are accepted through io_uring
 *   passthrough (IORING_OP_URING_CMD on the device descriptor): sqe->cmd_op
 *   is the ioctl number and the SQE's command area holds a
 *   struct upalloc_uring_cmd pointing at the command structure. The result
 *   is the CQE's res (0 or -errno), outputs are written back as by ioctl.
 */
#ifndef _UAPI_LINUX_UPALLOC_H
#define _UAPI_LINUX_UPALLOC_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define UPALLOC_DEVICE_PATH	"/dev/upalloc"
#define UPALLOC_PROC_DIR	"/proc/upalloc"

/* Bumped on incompatible changes only; additions use reserved fields. */
#define UPALLOC_ABI_VERSION	1

#define UPALLOC_IOC_MAGIC	0xB7

/* Feature bits reported in upalloc_version.features. */
#define UPALLOC_FEAT_HEAP	0x01ULL /* MAP_NORESERVE heaps + SET_BRK */
#define UPALLOC_FEAT_DECOMMIT	0x02ULL
#define UPALLOC_FEAT_POPULATE	0x04ULL
#define UPALLOC_FEAT_PROC_STATS	0x08ULL
#define UPALLOC_FEAT_URING_CMD	0x10ULL /* io_uring passthrough */

/* UPALLOC_IOC_VERSION: what this module speaks. All fields are outputs. */
struct upalloc_version {
	__u32 abi_version;	/* UPALLOC_ABI_VERSION of the module */
	__u32 page_size;	/* bytes */
	__u64 features;		/* UPALLOC_FEAT_* */
	__u64 max_region_bytes;	/* largest len an mmap accepts */
	__u64 reserved[5];
};

/*
 * UPALLOC_IOC_POPULATE, UPALLOC_IOC_DECOMMIT: a page-aligned range
 * [addr, addr + len) inside one region of the caller, below its break.
 *
 * POPULATE allocates and maps every page of the range that is not yet
 * present, so that later touches take no fault (MAP_POPULATE does the same
 * for a whole new region). In a region that never took part in a fork it
 * maps the pages in batches, without faults (none is counted); in a fork
 * parent or child it maps them through the fault handler (one counted
 * fault per page, read-only where the page is still shared). DECOMMIT
 * frees the pages of the range; the mapping stays and the next touch gets
 * a fresh zero page. The number of pages allocated or freed is returned
 * in nr_pages.
 */
struct upalloc_range {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple, > 0 */
	__u64 nr_pages;		/* out */
	__u32 flags;		/* in: must be 0 */
	__u32 reserved0;	/* must be 0 */
	__u64 reserved[4];	/* must be 0 */
};

/*
 * UPALLOC_IOC_SET_BRK: move the break of the region that contains addr to
 * new_brk bytes from the region's start (a page multiple, <= the region's
 * length). Raising commits memory and fails with ENOMEM, changing nothing,
 * when a limit would be exceeded; lowering frees the pages above the new
 * break. On success old_brk and region_len describe the region as it was
 * and is. With UPALLOC_BRK_QUERY the break is only reported, not moved.
 */
#define UPALLOC_BRK_QUERY	0x1U

struct upalloc_brk {
	__u64 addr;		/* in: any address inside the region */
	__u64 new_brk;		/* in: bytes from the region's start */
	__u64 old_brk;		/* out: the break before the call */
	__u64 region_start;	/* out */
	__u64 region_len;	/* out: the reserved length */
	__u32 flags;		/* in: UPALLOC_BRK_* */
	__u32 reserved0;	/* must be 0 */
	__u64 reserved[2];	/* must be 0 */
};

/* UPALLOC_IOC_REGION_INFO: describe the caller's region containing addr. */
#define UPALLOC_REGION_HEAP	0x1U /* created with MAP_NORESERVE */
#define UPALLOC_REGION_FORKED	0x2U /* a fork child's copy */

struct upalloc_region_info {
	__u64 addr;		/* in: any address inside the region */
	__u64 start;		/* out */
	__u64 len;		/* out: reserved length */
	__u64 brk;		/* out: committed length */
	__u64 pages_present;	/* out: pages the region holds */
	__u64 pages_shared;	/* out: of those, shared with a fork relative */
	__u32 flags;		/* out: UPALLOC_REGION_* */
	__u32 reserved0;	/* must be 0 */
	__u64 reserved[1];	/* must be 0 */
};

/*
 * UPALLOC_IOC_PROC_STATS: the calling process's own statistics. The
 * counters have the meaning of the /proc/upalloc/stats lines of the same
 * names, restricted to this process (its mm), except for pages: pages_live
 * counts the pages in the process's regions, including pages still shared
 * with a fork relative (a fork child starts with its parent's pages live);
 * pages_allocated counts the pages this process allocated (first touch,
 * POPULATE, copy-on-write copies) and pages_freed the pages its regions
 * dropped (decommit, lowered break, munmap, replaced by a copy). The
 * counters start at 0 when the process creates its first region (or
 * inherits one). Every field is an output.
 */
struct upalloc_proc_stats {
	__u32 size;		/* sizeof(struct upalloc_proc_stats) */
	__u32 version;		/* UPALLOC_ABI_VERSION */
	__u64 regions_live;
	__u64 regions_created;
	__u64 pages_live;	/* pages held by the process's regions */
	__u64 pages_peak;
	__u64 pages_committed;	/* sum of the regions' breaks, in pages */
	__u64 pages_allocated;
	__u64 pages_freed;
	__u64 faults;
	__u64 faults_read;
	__u64 faults_write;
	__u64 cow_copies;
	__u64 pages_populated;
	__u64 pages_decommitted;
	__u64 enomem;
	__u64 faults_mkwrite;	/* read-only PTEs made writable (forked regions) */
	__u64 sigbus;		/* faults refused (beyond the break) */
	__u64 reserved[14];
};

/*
 * io_uring passthrough: the 16-byte command area of a 64-byte SQE carries
 * this; cmd_op is one of the UPALLOC_IOC_* numbers below.
 */
struct upalloc_uring_cmd {
	__u64 arg;		/* user pointer to the command's structure */
	__u64 reserved;		/* must be 0 */
};

#define UPALLOC_IOC_VERSION	_IOR(UPALLOC_IOC_MAGIC, 0x00, struct upalloc_version)
#define UPALLOC_IOC_POPULATE	_IOWR(UPALLOC_IOC_MAGIC, 0x01, struct upalloc_range)
#define UPALLOC_IOC_DECOMMIT	_IOWR(UPALLOC_IOC_MAGIC, 0x02, struct upalloc_range)
#define UPALLOC_IOC_SET_BRK	_IOWR(UPALLOC_IOC_MAGIC, 0x03, struct upalloc_brk)
#define UPALLOC_IOC_REGION_INFO	_IOWR(UPALLOC_IOC_MAGIC, 0x04, struct upalloc_region_info)
#define UPALLOC_IOC_PROC_STATS	_IOR(UPALLOC_IOC_MAGIC, 0x05, struct upalloc_proc_stats)

#endif /* _UAPI_LINUX_UPALLOC_H */
