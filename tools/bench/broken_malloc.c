// SPDX-License-Identifier: MIT
/*
 * libbroken_malloc.so: a deliberately wrong malloc, preloaded by
 * tools/bench/smoke to show that every workload notices wrong results
 * (a benchmark that cannot fail could make a broken allocator look fast).
 *
 * A bump allocator with a 16-byte size header that never reuses memory,
 * with one defect chosen by BROKEN_MALLOC:
 *   overlap  every 64th malloc returns the block handed out just before
 *   calloc   every 64th calloc leaves a non-zero byte in the block
 *   realloc  every 64th realloc flips a bit of the first byte it copies
 * Thread-safe (atomic bump pointer); memory comes from one big mapping.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_BYTES (64ULL << 30)	/* reserved, not committed */
#define HEADER 16

static char *arena;
static _Atomic size_t arena_used;
static _Atomic unsigned long calls;
static _Atomic(char *) last_block;
static int defect = -1;

enum { OVERLAP, CALLOC, REALLOC };

static void broken_init(void)
{
	const char *d = getenv("BROKEN_MALLOC");

	arena = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED)
		abort();
	defect = !d ? OVERLAP : !strcmp(d, "calloc") ? CALLOC :
		 !strcmp(d, "realloc") ? REALLOC : OVERLAP;
}

static int unlucky(void)
{
	return atomic_fetch_add(&calls, 1) % 64 == 63;
}

static char *bump(size_t size)
{
	size_t need = (size + HEADER + 15) & ~(size_t)15;
	size_t at = atomic_fetch_add(&arena_used, need);
	char *p;

	if (at + need > ARENA_BYTES || size > ARENA_BYTES) {
		errno = ENOMEM;
		return NULL;
	}
	p = arena + at + HEADER;
	memcpy(p - HEADER, &size, sizeof(size));
	return p;
}

void *malloc(size_t size)
{
	char *prev, *p;

	if (!arena)
		broken_init();
	prev = atomic_load(&last_block);
	if (defect == OVERLAP && prev && unlucky()) {
		size_t prev_size;

		memcpy(&prev_size, prev - HEADER, sizeof(prev_size));
		if (prev_size >= size)
			return prev;
	}
	p = bump(size);
	atomic_store(&last_block, p);
	return p;
}

void free(void *p)
{
	(void)p;
}

void *calloc(size_t n, size_t size)
{
	char *p;

	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	p = malloc(n * size);
	if (p && n * size != 0 && defect == CALLOC && unlucky())
		p[n * size - 1] = 1;	/* fresh mapping memory is zero anyway */
	return p;
}

void *realloc(void *old, size_t size)
{
	size_t old_size = 0;
	char *p = malloc(size);

	if (!old || !p)
		return p;
	memcpy(&old_size, (char *)old - HEADER, sizeof(old_size));
	memcpy(p, old, old_size < size ? old_size : size);
	if (defect == REALLOC && old_size && old_size <= size && unlucky())
		p[0] ^= 1;
	return p;
}

void *memalign(size_t align, size_t size)
{
	char *p = malloc(size + align);

	return p ? (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1)) : NULL;
}

int posix_memalign(void **out, size_t align, size_t size)
{
	*out = memalign(align, size);
	return *out ? 0 : ENOMEM;
}

void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

size_t malloc_usable_size(void *p)
{
	size_t size = 0;

	if (p)
		memcpy(&size, (char *)p - HEADER, sizeof(size));
	return size;
}
