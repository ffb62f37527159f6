/* SPDX-License-Identifier: MIT */
/*
 * Self-describing blocks for workloads whose blocks change hands between
 * threads (mstress, glibc_thread): the block itself records its size and
 * tag in a header, so whichever thread ends up freeing it can verify it.
 * The tail carries a second copy of the tag (block_tag's tail word).
 */
#ifndef UPALLOC_OBJ_H
#define UPALLOC_OBJ_H

#include "bench.h"

struct obj {
	uint64_t size;		/* the whole block, header included */
	uint64_t tag;
};

#define OBJ_MIN (sizeof(struct obj) + 16)

static inline struct obj *obj_new(size_t size, uint64_t tag)
{
	struct obj *o;

	if (size < OBJ_MIN)
		size = OBJ_MIN;
	o = bench_malloc(size);
	check_alignment(o, size);
	o->size = size;
	o->tag = tag;
	block_tag(o + 1, size - sizeof(*o), tag);
	return o;
}

/* Verifies and frees; returns a value that depends on the block's content. */
static inline uint64_t obj_free(struct obj *o)
{
	uint64_t v;

	if (o->size < OBJ_MIN)
		bench_fail("block %p: header size %llu overwritten", (void *)o,
			   (unsigned long long)o->size);
	block_verify(o + 1, o->size - sizeof(*o), o->tag);
	v = o->tag ^ o->size;
	free(o);
	return v;
}

#endif /* UPALLOC_OBJ_H */
