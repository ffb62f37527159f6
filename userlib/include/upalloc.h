/* SPDX-License-Identifier: MIT */
/*
 * libupalloc: a ptmalloc-style allocator drawing its memory from the
 * upalloc device (/dev/upalloc) or, as a fallback, from anonymous mmap.
 *
 * Preloaded (LD_PRELOAD=libupalloc.so) or linked (libupalloc.a) it provides
 * the whole malloc family under the standard names. The upa_-prefixed names
 * below are the same functions, for linking beside another allocator.
 */
#ifndef UPALLOC_LIB_H
#define UPALLOC_LIB_H

#include <stddef.h>
#include <stdio.h>
#include <malloc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPALLOC_LIB_VERSION_MAJOR 0
#define UPALLOC_LIB_VERSION_MINOR 1

void *upa_malloc(size_t size);
void upa_free(void *ptr);
void *upa_calloc(size_t nmemb, size_t size);
void *upa_realloc(void *ptr, size_t size);
void *upa_reallocarray(void *ptr, size_t nmemb, size_t size);
void *upa_memalign(size_t alignment, size_t size);
int upa_posix_memalign(void **memptr, size_t alignment, size_t size);
void *upa_aligned_alloc(size_t alignment, size_t size);
void *upa_valloc(size_t size);
void *upa_pvalloc(size_t size);
size_t upa_malloc_usable_size(void *ptr);
int upa_malloc_trim(size_t pad);
int upa_mallopt(int param, int value);
struct mallinfo2 upa_mallinfo2(void);
struct mallinfo upa_mallinfo(void);
void upa_malloc_stats(void);
int upa_malloc_info(int options, FILE *fp);

/*
 * malloc_info() options: 0 is glibc's output; UPA_MALLOC_INFO_CHUNKS adds,
 * in each <heap>, one <chunks start= end=> per heap region listing every
 * chunk in address order with its state (inuse, free, fast, tcache — the
 * calling thread's cache only —, unsorted, top). Anything else: EINVAL.
 */
#define UPA_MALLOC_INFO_CHUNKS	1

/*
 * mallopt() parameters beyond glibc's M_* (which are all accepted: M_MXFAST,
 * M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX,
 * M_ARENA_TEST, M_PERTURB, M_CHECK_ACTION). Every option can also be set by
 * the environment variable UPALLOC_<NAME>, e.g. UPALLOC_MMAP_THRESHOLD=65536,
 * read once at initialisation (ignored for setuid programs). Also read:
 * UPALLOC_BACKEND (below) and UPALLOC_STATS=1 (print statistics at exit).
 * Values may carry a k, m or g suffix.
 */
#define UPA_M_TCACHE_COUNT	-100	/* chunks per thread-cache bin */
#define UPA_M_TCACHE_MAX	-101	/* largest request the thread cache holds */
#define UPA_M_HEAP_RESERVE	-102	/* address space reserved per heap:
					 * a power of two >= 1 MiB, 64 MiB by
					 * default; settable until the first
					 * heap exists */
#define UPA_M_HARDENED		-103	/* 1: the hardened mode (catches
					 * writes after free, overflows past
					 * the requested size, double frees of
					 * cached blocks, interior-pointer
					 * frees; see upalloc(3)); settable
					 * until the first heap exists */

/*
 * Which page source the library uses: UPALLOC_BACKEND=auto|device|mmap.
 *   auto    (default) the device when /dev/upalloc opens and speaks ABI
 *           version 1 with heap support, else anonymous mmap;
 *   device  the device or nothing: if it cannot be used, the library writes
 *           "upalloc: UPALLOC_BACKEND=device but /dev/upalloc cannot be
 *           used (errno N)" to stderr and aborts at initialisation, so a
 *           test never silently runs on the wrong backend;
 *   mmap    anonymous mmap only.
 * Once running, a refusal by the device (its limits, ENOMEM) makes malloc
 * return NULL with errno ENOMEM. Returns "device" or "mmap" (initialising
 * the library if needed).
 */
const char *upa_backend_name(void);

/*
 * Walk every arena and check every heap invariant (chunk sizes and flags,
 * boundary tags, free-list links, bin membership and ordering, no two free
 * neighbours, top chunk placement, accounting), and the calling thread's
 * cache (other threads' caches are theirs alone). Returns 0 when the heap
 * is consistent; otherwise writes "upalloc: heap check: <what>" to stderr
 * and returns -1. Takes the arena locks; safe to call at any time.
 */
int upa_heap_check(void);

/*
 * Library counters, exported as one versioned structure so that tools can
 * read it without knowing its layout in advance (size first).
 */
/*
 * "Break" below means a heap's usable end. With the io_uring path an
 * automatic trim lowers it without moving the device's break (the pages
 * are decommitted in a batch; the device's pages_committed keeps them until
 * malloc_trim() or the heap is unmapped); these counters are the same
 * with and without the ring.
 */
struct upa_lib_stats {
	size_t size;		/* sizeof(struct upa_lib_stats) */
	unsigned int version;	/* 1 */
	unsigned int backend_is_device;
	size_t arenas;
	size_t bytes_mapped;	/* heap breaks + mmapped chunks */
	size_t bytes_in_use;	/* chunks handed out (chunk sizes; an
				 * mmapped chunk counts its whole region) */
	size_t bytes_free;	/* free chunks in bins and in every
				 * live thread's cache */
	size_t bytes_top;	/* top chunks */
	size_t mmapped_chunks;
	size_t bytes_mmapped_chunks;
	size_t malloc_calls;
	size_t free_calls;
	size_t tcache_hits;
	size_t fastbin_hits;
	size_t smallbin_hits;
	size_t unsorted_hits;
	size_t largebin_hits;
	size_t top_splits;
	size_t heap_grows;	/* break moved up */
	size_t heap_trims;	/* break moved down */
	size_t decommits;	/* decommit calls inside free chunks */
	size_t bytes_decommitted;
};

/* Fill *st (st->size must be set by the caller); returns 0 or -1. */
int upa_lib_stats(struct upa_lib_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* UPALLOC_LIB_H */
