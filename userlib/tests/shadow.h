/* SPDX-License-Identifier: MIT */
/*
 * The shadow model shared by the stress test (stress.c) and the fuzzer
 * (userlib/fuzz/): what every live block must contain, derived from
 * (seed, block id) alone, so that a block handed out twice, an overlap, a
 * write past a neighbour's end or a lost realloc copy shows up as a
 * mismatch when the block is checked (before every free and realloc).
 *
 * A block is filled over its whole malloc_usable_size(), not just the
 * requested size: the library promises those bytes are the caller's, so a
 * usable size that is too large overlaps the next chunk and is caught too.
 *
 * Nothing here allocates: the model must not disturb the heap it checks.
 */
#ifndef UPA_SHADOW_H
#define UPA_SHADOW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct shadow_rng {
	uint64_t s;
};

static inline uint64_t shadow_mix(uint64_t x)
{
	/* splitmix64's finaliser: every input bit moves every output bit */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t shadow_next(struct shadow_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return shadow_mix(r->s);
}

/* Uniform in [0, n), n > 0 (the bias is irrelevant here). */
static inline uint64_t shadow_below(struct shadow_rng *r, uint64_t n)
{
	return shadow_next(r) % n;
}

/*
 * The pattern: word i of block id holds base(id) + i * odd. Consecutive
 * words differ, two blocks' patterns differ, and a copy shifted by any
 * number of bytes does not match.
 */
#define SHADOW_STEP	0xd6e8feb86659fd93ULL

static inline uint64_t shadow_base(uint64_t seed, uint64_t id)
{
	return shadow_mix(seed ^ shadow_mix(id));
}

static inline uint8_t shadow_byte(uint64_t base, size_t off)
{
	uint64_t w = base + (off / 8) * SHADOW_STEP;

	return (uint8_t)(w >> (8 * (off % 8)));
}

/* Fill bytes [from, to) of p with block id's pattern. */
static inline void shadow_fill(void *p, size_t from, size_t to,
			       uint64_t seed, uint64_t id)
{
	uint64_t base = shadow_base(seed, id);
	unsigned char *b = p;
	size_t off = from;

	for (; off < to && off % 8; off++)
		b[off] = shadow_byte(base, off);
	for (; off + 8 <= to; off += 8) {
		uint64_t w = base + (off / 8) * SHADOW_STEP;

		memcpy(b + off, &w, 8);
	}
	for (; off < to; off++)
		b[off] = shadow_byte(base, off);
}

/*
 * Check bytes [from, to) of p against block id's pattern. Returns the
 * offset of the first wrong byte, or (size_t)-1 when all match.
 */
static inline size_t shadow_check(const void *p, size_t from, size_t to,
				  uint64_t seed, uint64_t id)
{
	uint64_t base = shadow_base(seed, id);
	const unsigned char *b = p;
	size_t off = from;

	for (; off < to && off % 8; off++)
		if (b[off] != shadow_byte(base, off))
			return off;
	for (; off + 8 <= to; off += 8) {
		uint64_t w = base + (off / 8) * SHADOW_STEP, v;

		memcpy(&v, b + off, 8);
		if (v != w)
			break;
	}
	for (; off < to; off++)
		if (b[off] != shadow_byte(base, off))
			return off;
	return (size_t)-1;
}

/* Offset of the first non-zero byte in [0, n), or (size_t)-1. */
static inline size_t shadow_first_nonzero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return i;
	return (size_t)-1;
}

/*
 * Request sizes: mostly small (the thread cache and fast bins), some in the
 * small and large bins, a few past the mmap threshold. sel picks the class.
 */
static inline size_t shadow_size(struct shadow_rng *r)
{
	uint64_t c = shadow_below(r, 1000);

	if (c < 600)
		return shadow_below(r, 257);		/* 0..256 */
	if (c < 850)
		return 257 + shadow_below(r, 4096 - 256);
	if (c < 980)
		return 4097 + shadow_below(r, 65536 - 4096);
	return 65537 + shadow_below(r, 600 * 1024);	/* mmapped, mostly */
}

#endif /* UPA_SHADOW_H */
