// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: an input is a sequence of malloc-family operations on
 * 64 block slots, run against the shadow model of the stress test
 * (userlib/tests/shadow.h) through the upa_* API. The library is compiled
 * into the fuzzer with coverage instrumentation, so libFuzzer steers the
 * sequences towards new paths through the bins, the cache and the tunables.
 *
 * Any disagreement with the model (a block's contents changed, a calloc'd
 * block not zero over its usable size, a misaligned result, a usable size
 * below the request, NULL without ENOMEM, upa_heap_check() failing) is
 * reported and aborts, so libFuzzer saves the input as a crash-* file.
 * The library's own integrity checks abort the same way.
 *
 * Input format, one operation after another until the input ends:
 *   byte op: low nibble = operation, high nibble = size class
 *   byte slot (mod 64), then two bytes little-endian v (the size seed)
 * The last operation's missing bytes read as zero.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upalloc.h"
#include "shadow.h"

#define NSLOTS 64
#define FUZZ_SEED 0x5eedf00dULL	/* patterns only: fixed, for replay */

struct fblock {
	void *p;
	size_t req, usable;
	uint64_t id;
};

static struct fblock slots[NSLOTS];
static uint64_t next_id;

static void die(const char *what, const struct fblock *b, size_t x)
{
	fprintf(stderr, "fuzz_ops: %s: block %p id %llu requested %zu usable %zu (%zu)\n",
		what, b ? b->p : NULL, b ? (unsigned long long)b->id : 0ULL,
		b ? b->req : 0, b ? b->usable : 0, x);
	abort();
}

static void check_block(const struct fblock *b, const char *when)
{
	size_t off = shadow_check(b->p, 0, b->usable, FUZZ_SEED, b->id);

	if (off != (size_t)-1)
		die(when, b, off);
}

static void release(struct fblock *b)
{
	check_block(b, "contents changed before free");
	upa_free(b->p);
	b->p = NULL;
}

/* Adopt a fresh block p of req bytes into b; zero: must read as zero. */
static void adopt(struct fblock *b, void *p, size_t req, size_t align,
		  int zero)
{
	if (!p) {
		if (errno != ENOMEM)
			die("NULL without ENOMEM", NULL, req);
		return;
	}
	b->p = p;
	b->req = req;
	b->id = ++next_id;
	b->usable = upa_malloc_usable_size(p);
	if (b->usable < req)
		die("usable size below the request", b, req);
	if (align && (uintptr_t)p % align)
		die("misaligned", b, align);
	if (zero && shadow_first_nonzero(p, b->usable) != (size_t)-1)
		die("calloc'd block not zero over its usable size", b,
		    shadow_first_nonzero(p, b->usable));
	shadow_fill(p, 0, b->usable, FUZZ_SEED, b->id);
}

static size_t op_size(unsigned int cls, unsigned int v)
{
	if (cls < 10)
		return v % 512;
	if (cls < 14)
		return v % 8192;
	if (cls == 14)
		return (size_t)v * 4;		/* up to 256 KiB */
	return (size_t)v * 16;			/* up to 1 MiB: mmapped */
}

static void set_defaults(void)
{
	upa_mallopt(UPA_M_TCACHE_COUNT, 32);
	upa_mallopt(UPA_M_TCACHE_MAX, 4104);
	upa_mallopt(M_MXFAST, 128);
	upa_mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	upa_mallopt(M_TOP_PAD, 128 * 1024);
	upa_mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	upa_mallopt(M_MMAP_MAX, 65536);
	upa_mallopt(M_PERTURB, 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	set_defaults();
	return 0;
}

static void tune(unsigned int sel, unsigned int v)
{
	switch (sel % 8) {
	case 0:
		upa_mallopt(UPA_M_TCACHE_COUNT, (int)(v % 80));
		break;
	case 1:
		upa_mallopt(UPA_M_TCACHE_MAX, (int)(v % 4200));
		break;
	case 2:
		upa_mallopt(M_MXFAST, (int)(v % 170));
		break;
	case 3:
		upa_mallopt(M_TRIM_THRESHOLD, (int)v * 16);
		break;
	case 4:
		upa_mallopt(M_TOP_PAD, (int)v * 4);
		break;
	case 5:
		upa_mallopt(M_MMAP_THRESHOLD, 4096 + (int)v * 8);
		break;
	case 6:
		upa_mallopt(M_PERTURB, (int)(v & 0xff));
		break;
	default:
		upa_mallopt(M_MMAP_MAX, v & 1 ? 0 : 65536);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	size_t i = 0, k;

	while (i < len) {
		unsigned int op = data[i];
		unsigned int slot = i + 1 < len ? data[i + 1] % NSLOTS : 0;
		unsigned int v = (i + 2 < len ? data[i + 2] : 0) |
				 (i + 3 < len ? data[i + 3] : 0) << 8;
		unsigned int cls = op >> 4;
		struct fblock *b = &slots[slot];
		size_t sz = op_size(cls, v), align = (size_t)16 << (v % 9);
		void *p = NULL;
		int rc;

		i += 4;
		errno = 0;
		switch (op & 15) {
		case 0: case 1: case 2: case 3:
			if (b->p)
				release(b);
			adopt(b, upa_malloc(sz), sz, 0, 0);
			break;
		case 4:
			if (b->p)
				release(b);
			adopt(b, upa_calloc(1 + cls % 4, sz), (1 + cls % 4) * sz, 0, 1);
			break;
		case 5:
		case 6:
			if (!b->p) {
				adopt(b, upa_realloc(NULL, sz), sz, 0, 0);
				break;
			}
			check_block(b, "contents changed before realloc");
			p = (op & 15) == 5 ? upa_realloc(b->p, sz)
					   : upa_reallocarray(b->p, sz, 1);
			if (!p) {
				if (sz == 0) {
					b->p = NULL;	/* freed */
					break;
				}
				if (errno != ENOMEM)
					die("realloc NULL without ENOMEM", b, sz);
				check_block(b, "failed realloc changed the block");
				break;
			}
			k = b->req < sz ? b->req : sz;
			if (shadow_check(p, 0, k, FUZZ_SEED, b->id) != (size_t)-1)
				die("realloc lost the contents", b,
				    shadow_check(p, 0, k, FUZZ_SEED, b->id));
			b->p = NULL;
			adopt(b, p, sz, 0, 0);
			break;
		case 7:
			if (b->p)
				release(b);
			adopt(b, upa_memalign(align, sz), sz, align, 0);
			break;
		case 8:
			if (b->p)
				release(b);
			rc = upa_posix_memalign(&p, align, sz);
			if (rc)
				errno = rc, p = NULL;
			adopt(b, p, sz, align, 0);
			break;
		case 9:
			if (b->p)
				release(b);
			adopt(b, upa_aligned_alloc(align, sz), sz, align, 0);
			break;
		case 10:
			if (b->p)
				release(b);
			if (cls & 1)
				adopt(b, upa_valloc(sz), sz, 4096, 0);
			else
				adopt(b, upa_pvalloc(sz), (sz + 4095) & ~4095UL,
				      4096, 0);
			break;
		case 11:
		case 12:
			if (b->p)
				release(b);
			break;
		case 13:
			tune(cls, v);
			break;
		case 14:
			upa_malloc_trim(v % 3 ? 0 : v);
			break;
		default:
			if (b->p)
				check_block(b, "contents changed");
			if (upa_heap_check())
				die("upa_heap_check() failed", NULL, 0);
			break;
		}
	}
	for (k = 0; k < NSLOTS; k++)
		if (slots[k].p)
			release(&slots[k]);
	set_defaults();
	if (upa_heap_check())
		die("upa_heap_check() failed at the end of the input", NULL, 0);
	return 0;
}
