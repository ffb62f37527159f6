/* SPDX-License-Identifier: MIT */
/*
 * chunk.h: the chunk, its boundary tags and its accessors.
 *
 * Every block handed out is the user part of a chunk. A chunk's header is
 * two words; the first belongs to the previous chunk unless that one is
 * free:
 *
 *   chunk -> +-------------------------------------------------------+
 *            | prev_size: size of the previous chunk, if it is free;  |
 *            |   otherwise the last word of its user data             |
 *            +-------------------------------------------------------+
 *            | size: this chunk's size in bytes           | N | M | P |
 *     mem -> +-------------------------------------------------------+
 *            | in use: user data, size - 8 usable bytes, running      |
 *            |   over the next chunk's prev_size word                 |
 *            | free:   fd, bk (bin links), and in large bins          |
 *            |   fd_nextsize, bk_nextsize (skip links), then unused   |
 *            .                                                       .
 *    next -> +-------------------------------------------------------+
 *            | prev_size == size of this chunk when this one is free  |
 *            +-------------------------------------------------------+
 *            | next chunk's size                          | N | M | P |
 *            +-------------------------------------------------------+
 *
 *   P  PREV_INUSE      the previous chunk is in use (so prev_size is not
 *                      valid); a chunk's own "in use" is its next's P bit.
 *   M  IS_MMAPPED      the chunk is a region of its own (large requests);
 *                      its prev_size holds its offset from the region start,
 *                      and all of size - 16 bytes are usable.
 *   N  NON_MAIN_ARENA  the chunk lives in a heap of a non-main arena; the
 *                      arena is found from the heap header (region.c).
 *
 * The size rule, the one place it is stated: addresses and sizes are
 * multiples of UPA_ALIGN (16), the smallest chunk is UPA_MIN_CHUNK (32
 * bytes: the header plus fd and bk), and a request of n bytes needs the
 * chunk size
 *
 *     upa_request_size(n) = max(UPA_MIN_CHUNK, align_up(n + 8, 16))
 *
 * (8, not 16: the next chunk's prev_size word is part of the user data).
 * Requests above UPA_MAX_REQUEST fail with ENOMEM.
 *
 * Invariants (checked by upa_chunk_check_*() in check.c and by
 * upa_heap_check()):
 *   chunk % 16 == 0, size % 16 == 0, size >= UPA_MIN_CHUNK;
 *   next(chunk) == chunk + size lies inside the heap, the top chunk last;
 *   free(chunk) => next.prev_size == size && !next.P;
 *   no free chunk borders another free chunk (they are coalesced), and
 *   the chunk before the top chunk is in use (a freed one merges into top);
 *   fast-bin and thread-cache chunks count as in use (their P bits stay).
 */
#ifndef UPALLOC_CHUNK_H
#define UPALLOC_CHUNK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define UPA_WORD		sizeof(size_t)
#define UPA_ALIGN		16
#define UPA_HEADER		(2 * UPA_WORD)
#define UPA_MIN_CHUNK		32
#define UPA_MAX_REQUEST		((size_t)PTRDIFF_MAX - 4 * UPA_MIN_CHUNK)

#define UPA_PREV_INUSE		((size_t)1)
#define UPA_IS_MMAPPED		((size_t)2)
#define UPA_NON_MAIN_ARENA	((size_t)4)
#define UPA_SIZE_FLAGS		((size_t)7)

struct upa_chunk {
	size_t prev_size;
	size_t size;
	struct upa_chunk *fd;		/* free chunks only */
	struct upa_chunk *bk;
	struct upa_chunk *fd_nextsize;	/* free chunks in large bins only */
	struct upa_chunk *bk_nextsize;
};

static inline size_t upa_request_size(size_t n)
{
	size_t sz = (n + UPA_WORD + UPA_ALIGN - 1) & ~(size_t)(UPA_ALIGN - 1);

	return sz < UPA_MIN_CHUNK ? UPA_MIN_CHUNK : sz;
}

/* false when n is too large to be a request at all */
static inline bool upa_request_ok(size_t n)
{
	return n <= UPA_MAX_REQUEST;
}

static inline void *chunk_mem(const struct upa_chunk *c)
{
	return (char *)c + UPA_HEADER;
}

static inline struct upa_chunk *mem_chunk(const void *mem)
{
	return (struct upa_chunk *)((char *)mem - UPA_HEADER);
}

static inline size_t chunk_size(const struct upa_chunk *c)
{
	return c->size & ~UPA_SIZE_FLAGS;
}

static inline size_t chunk_flags(const struct upa_chunk *c)
{
	return c->size & UPA_SIZE_FLAGS;
}

static inline bool chunk_prev_inuse(const struct upa_chunk *c)
{
	return c->size & UPA_PREV_INUSE;
}

static inline bool chunk_is_mmapped(const struct upa_chunk *c)
{
	return c->size & UPA_IS_MMAPPED;
}

static inline bool chunk_non_main(const struct upa_chunk *c)
{
	return c->size & UPA_NON_MAIN_ARENA;
}

static inline struct upa_chunk *chunk_at(const void *c, size_t offset)
{
	return (struct upa_chunk *)((char *)c + offset);
}

static inline struct upa_chunk *chunk_next(const struct upa_chunk *c)
{
	return chunk_at(c, chunk_size(c));
}

/* Only valid when !chunk_prev_inuse(c). */
static inline struct upa_chunk *chunk_prev(const struct upa_chunk *c)
{
	return (struct upa_chunk *)((char *)c - c->prev_size);
}

/* A heap chunk is in use when its successor's PREV_INUSE bit says so. */
static inline bool chunk_inuse(const struct upa_chunk *c)
{
	return chunk_prev_inuse(chunk_next(c));
}

static inline void chunk_set_inuse(struct upa_chunk *c)
{
	chunk_next(c)->size |= UPA_PREV_INUSE;
}

static inline void chunk_clear_inuse(struct upa_chunk *c)
{
	chunk_next(c)->size &= ~UPA_PREV_INUSE;
}

/* Write the size word (size | flags). */
static inline void chunk_set_head(struct upa_chunk *c, size_t size_and_flags)
{
	c->size = size_and_flags;
}

/* Change the size, keeping the flags. */
static inline void chunk_set_size(struct upa_chunk *c, size_t size)
{
	c->size = size | chunk_flags(c);
}

/* The trailing tag of a free chunk: the next chunk's prev_size. */
static inline void chunk_set_foot(struct upa_chunk *c, size_t size)
{
	chunk_at(c, size)->prev_size = size;
}

static inline bool chunk_aligned(const void *p)
{
	return ((uintptr_t)p & (UPA_ALIGN - 1)) == 0;
}

/* Bytes the user may use in an in-use chunk. */
static inline size_t chunk_usable(const struct upa_chunk *c)
{
	return chunk_size(c) - (chunk_is_mmapped(c) ? UPA_HEADER : UPA_WORD);
}

#endif /* UPALLOC_CHUNK_H */
