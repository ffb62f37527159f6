/* SPDX-License-Identifier: MIT */
/*
 * uring.h: deferred decommit and asynchronous pre-population of device
 * pages through one io_uring per process (IORING_OP_URING_CMD on
 * /dev/upalloc, see kmod/uapi/upalloc.h).
 *
 * Everything here is an optimisation with an exact fallback: when the ring
 * cannot be used (built without liburing, UPALLOC_URING=0, io_uring_setup
 * fails with ENOSYS/EPERM because of io_uring_disabled or seccomp, the
 * module lacks UPALLOC_FEAT_URING_CMD, or the ring breaks later) each call
 * does the same work with a plain ioctl, synchronously.
 *
 * Tunables (environment, read once at the first call):
 *   UPALLOC_URING=0|1               use the ring (default 1)
 *   UPALLOC_URING_BATCH=N           decommits queued before one submission
 *                                   (default 32, 1..UPA_URING_SLOTS)
 *   UPALLOC_URING_POPULATE_AHEAD=B  bytes populated ahead of the top chunk
 *                                   (default 0 = off; e.g. 131072)
 *
 * THE CONTRACT (what the allocator must do):
 *
 *  1. upa_uring_decommit(addr, len) may return before the pages are freed.
 *     Until [addr, addr + len) or any part of it has been passed to
 *     upa_uring_reclaim() (or upa_uring_flush() has returned), the caller
 *     must not hand out any byte of that part, lower a heap's break below
 *     it, munmap it, or otherwise let its address be reused.
 *     upa_uring_reclaim() settles every queued command overlapping the
 *     range: a decommit not yet submitted is cancelled for the overlap (its
 *     pages keep their old contents), one already submitted is waited for.
 *     It returns 1 when some byte of the range may still hold old contents
 *     (a cancelled or failed decommit: calloc must clear it), 0 when every
 *     decommit that covered the range completed (those pages read as zero).
 *  2. upa_uring_populate_ahead(addr, len) asks for pages that the top chunk
 *     will hand out next to be populated in the background (io-wq). It never
 *     changes contents, so the memory may be handed out at once, but the
 *     range must go through upa_uring_reclaim() before the break is lowered
 *     below it, and through upa_uring_release() before it is unmapped (so
 *     that a late populate cannot land on a later mapping at the same
 *     address). Only addresses never populated ahead before are populated:
 *     a top chunk that is trimmed and grows back over the same pages does
 *     not get them populated again (they would mostly be trimmed unused
 *     again); upa_uring_release() forgets a range.
 *  3. Any of these may be called with an arena lock held: the ring lock
 *     nests inside the arena locks and nothing here calls malloc.
 *  4. fork: the ring is the parent's alone (its memory is MADV_DONTFORK).
 *     The child notices the fork by itself (the lock word lives in a
 *     MADV_WIPEONFORK page, so no getpid() per call), closes its copy of the
 *     ring fd, redoes every decommit that was queued or in flight at the
 *     fork with an ioctl on its own pages (they are then known to read as
 *     zero), and sets up its own ring at its next call.
 *  5. errno is preserved by every function.
 */
#ifndef UPALLOC_URING_H
#define UPALLOC_URING_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* Commands queued or in flight at most (also the ring's SQ size). */
#define UPA_URING_SLOTS		64

/*
 * Optional, before the first other call: the allocator's descriptor of
 * /dev/upalloc (registered with the ring as a fixed file, never closed
 * here) and its ioctl function (0 or -errno), used for every fallback.
 * Without it the first call opens a descriptor of its own (O_CLOEXEC) and
 * falls back to ioctl(2) on it.
 */
void upa_uring_attach(int fd, int (*dev_ioctl)(unsigned long cmd, void *arg));

/* True when commands go through the ring (initialising it if needed). */
bool upa_uring_available(void);

/*
 * Queue a decommit of page-aligned [addr, addr + len). 0 or -errno; with
 * the ring, errors of the command itself (a range that is not a region)
 * are only counted (stats.failed), as the caller could not act on them.
 */
int upa_uring_decommit(void *addr, size_t len);

/* Populate (part of) page-aligned [addr, addr + len) in the background. */
int upa_uring_populate_ahead(void *addr, size_t len);

/* See the contract above: 1 = may hold old contents, 0 = as decommitted. */
int upa_uring_reclaim(void *addr, size_t len);

/* upa_uring_reclaim() for a range about to be unmapped (see point 2). */
int upa_uring_release(void *addr, size_t len);

/*
 * Any UPALLOC_IOC_* command (arg as for ioctl(2)) through the ring, waited
 * for: one io_uring_enter() on the registered (fixed) file. Its result is
 * the command's (0 or -errno); -ENOTCONN when there is no ring (this
 * never sets one up) or the transport failed, and the caller then uses
 * ioctl(2). Used so that the
 * ring path needs no per-call check of the descriptor: a fixed file holds
 * its own reference to /dev/upalloc, whatever the program does with the
 * descriptor number. Commands already queued may still be pending (a
 * SET_BRK does not wait for decommits; the allocator reclaims first).
 */
int upa_uring_cmd(unsigned long cmd, void *arg);

/*
 * For checkers: true when a decommit overlapping [addr, addr + len) is
 * queued or in flight (not yet reclaimed, flushed or reaped).
 */
bool upa_uring_decommit_pending(void *addr, size_t len);

/* Submit everything queued and wait for every command in flight. */
int upa_uring_flush(void);

/* The bytes upa_uring_populate_ahead() populates at most per call. */
size_t upa_uring_populate_ahead_bytes(void);

/* Counters, for tests, benchmarks and malloc_info. */
struct upa_uring_stats {
	uint64_t decommits;		/* upa_uring_decommit() calls */
	uint64_t decommits_ioctl;	/* ... done by ioctl (fallback, retry) */
	uint64_t populates;		/* populate commands queued */
	uint64_t populates_ioctl;	/* ... done by ioctl */
	uint64_t submits;		/* io_uring_enter() calls that submit */
	uint64_t waits;			/* io_uring_enter() calls that wait */
	uint64_t cancelled;		/* queued decommits cancelled by reclaim */
	uint64_t failed;		/* commands that completed with an error */
	uint64_t fork_redone;		/* decommits redone in a fork child */
	uint64_t sync_cmds;		/* upa_uring_cmd() through the ring */
	uint64_t enters;		/* submit calls (<= 1 enter each) */
	uint32_t ring_active;		/* 1 when the ring is in use */
	uint32_t batch;			/* the tunables in force */
	uint64_t populate_ahead;
};

void upa_uring_get_stats(struct upa_uring_stats *st);

#endif /* UPALLOC_URING_H */
