/* SPDX-License-Identifier: MIT */
/*
 * src.h: the page source contract (the role of mimalloc's prim.h).
 *
 * Two implementations: src_dev.c (/dev/upalloc) and src_anon.c (anonymous
 * mmap, for machines without the module and for fast unit tests). Only
 * region.c calls them; only those two files include <sys/mman.h>.
 *
 * Shared preconditions, stated once for every operation below:
 *   - addresses and lengths are page aligned, lengths are > 0;
 *   - every operation returns 0 or -errno and leaves errno unchanged;
 *   - ENOMEM means "the kernel or the device's limits said no": the
 *     allocator turns it into NULL + ENOMEM, never into a crash.
 *
 * Two kinds of memory:
 *   - a heap: a reserved range, aligned to its own (power of two) length,
 *     of which only [base, base + brk) is usable; heap_set_brk() moves the
 *     break up (commit, fresh pages read as zero) or down (the pages above
 *     it go back to the kernel). This is the sbrk(2) replacement.
 *   - a chunk region: one mapping per large chunk, committed in full,
 *     created by map() and destroyed whole by unmap().
 */
#ifndef UPALLOC_SRC_H
#define UPALLOC_SRC_H

#include <stddef.h>
#include <stdbool.h>

struct upalloc_proc_stats;

#pragma GCC visibility push(hidden)

struct upa_src {
	const char *name;	/* "device" or "mmap" */
	bool is_device;

	/* Reserve a heap of len bytes aligned to len (a power of two), brk 0. */
	int (*heap_reserve)(size_t len, void **base);
	/* Move the break of the heap at base from old_brk to new_brk. */
	int (*heap_set_brk)(void *base, size_t len, size_t old_brk,
			    size_t new_brk);
	/* Give the whole heap back. */
	int (*heap_release)(void *base, size_t len);

	/* A committed, zero-filled region of at least len bytes. */
	int (*map)(size_t len, void **addr);
	/*
	 * Resize the region at addr from old_len to new_len: in place, or
	 * when may_move anywhere (the contents move with it; *new_addr says
	 * where). -ENOMEM when impossible; the region is unchanged then.
	 */
	int (*resize)(void *addr, size_t old_len, size_t new_len,
		      bool may_move, void **new_addr);
	/* Destroy the region that map() or resize() returned at addr. */
	int (*unmap)(void *addr, size_t len);

	/*
	 * Free the pages of [addr, addr + len); they read as zero later. May
	 * only be queued: nothing in the range may be reused, unmapped or
	 * moved below a break until settle() has returned.
	 */
	int (*decommit)(void *addr, size_t len);
	/* Complete every queued decommit. */
	int (*settle)(void);
	/*
	 * Trim [addr, addr + len), the end of a heap below its break, without
	 * moving the break: 0 when a decommit of the range was queued (the
	 * io_uring path: batched, no system call of its own), -EOPNOTSUPP
	 * when the caller should move the break instead (the ioctl path).
	 * After 0, nothing in the range may be handed out, written, unmapped
	 * or put above a lowered break before reclaim() covered it.
	 */
	int (*trim_deferred)(void *addr, size_t len);
	/*
	 * Settle every queued decommit overlapping [addr, addr + len) (cancel
	 * what is not submitted yet, wait for the rest): 1 when some byte may
	 * keep its old contents (a cancelled or failed decommit), 0 when every
	 * decommit that covered the range completed (the pages read as zero).
	 */
	int (*reclaim)(void *addr, size_t len);
	/*
	 * Advisory: [addr, addr + len), fresh pages below a heap's break that
	 * the top chunk hands out next, may be populated in the background
	 * (io_uring). Contents never change, so they may be used at once;
	 * reclaim() before the break goes below them, as for decommits.
	 */
	void (*populate_ahead)(void *addr, size_t len);
	/* Fault in every page of [addr, addr + len) now (may be a no-op). */
	int (*populate)(void *addr, size_t len);
	/* The device's statistics for this process; -ENODEV without one. */
	int (*proc_stats)(struct upalloc_proc_stats *st);
	/* In a fork child (one thread): re-initialise internal locks. */
	void (*fork_child)(void);
};

extern const struct upa_src upa_src_dev;
extern const struct upa_src upa_src_anon;

/*
 * Open the device (for "auto" and "device"). 0 when it can serve heaps,
 * else -errno (why, for the message of UPALLOC_BACKEND=device).
 */
int upa_src_dev_open(void);

/* Anonymous private memory for the allocator's own metadata. */
int upa_src_anon_meta_map(size_t len, void **addr);

#pragma GCC visibility pop

#endif /* UPALLOC_SRC_H */
