// SPDX-License-Identifier: MIT
/*
 * hardened.c: the opt-in hardened mode (UPALLOC_HARDENED=1, or
 * mallopt(UPA_M_HARDENED, 1) before the first allocation), which catches
 * what glibc's checks (and the default mode's) miss:
 *
 *   - a free or realloc of a block that is not live: a second free
 *     wherever the first one left the block (this thread's cache, another
 *     thread's, a fast bin, a remote list, a bin), whatever was written
 *     into the freed block since; and a free of a pointer that is not the
 *     start of a block (an interior pointer);
 *   - one-byte (and longer) overflows past the requested size: a canary
 *     after the requested bytes, checked at free and realloc;
 *   - writes after free: a freed block's user part is filled with a
 *     pattern, verified when the block is handed out again.
 *
 * How. The mode wraps the public entry points (their slow paths dispatch
 * here: see upa_hard_dispatch) and runs the default allocator inside
 * (tc->hard_inner set) for a request one byte larger: room for the
 * canary. The default thread cache is off (its count is 0): its inline
 * fast paths then always miss, so the default mode's fast paths carry no
 * test of the mode at all. The mode has a cache of its own instead, per
 * thread (struct hard_cache), whose pops verify the pattern.
 *
 * The state map: out of band (never in the block, where a write after
 * free or an overflow could forge it), two bits per 16-byte granule of
 * the address space: LIVE (a block handed out starts here) and FREED (a
 * block that started here was freed and not handed out again; a malloc
 * clears it over the whole new block, so that a free of a pointer into
 * a live block is told apart from a double free); a live block's state
 * also records its arena flag (LIVE, or LIVE and FREED both for a
 * NON_MAIN_ARENA chunk). A free turns the live state into FREED with one
 * atomic exclusive or: of two racing frees only one finds it, the other
 * aborts, and so does a free whose header's arena flag was rewritten. The map is a directory of 2^21 slots (one per
 * 64 MiB of the 2^47-byte user address space), each slot's map (1 MiB
 * of address space, touched only where blocks are) mapped on first use.
 *
 * Which reuse paths verify the pattern, and why only these: the mode's
 * own cache (the block was filled at free and nothing was written into
 * it since: its entries are kept out of band; every byte verified, and
 * so are the chunks a refill carved for it, filled when carved) and the
 * arena's fast bins (fd and the cache key written since: all but the
 * first 16 bytes and the last word). Chunks from the other bins or the
 * top are not verified: coalescing writes headers and feet into the
 * middle of the merged chunk and large bins keep skip links, which the
 * allocator would have to restore on every merge and split; and the top
 * mixes merged chunks with fresh pages (zero), whose fill would touch
 * every page the heap ever reserves. With the default cache sizes, every
 * block of up to 1031 bytes (1032 less the canary's byte) that is freed
 * while its thread's bin has room (32 per size) is verified, and those up
 * to 119 bytes (M_MXFAST 128, less the canary) on the arena's side (a
 * full bin's flushed half, the cache off, another thread's block through
 * its arena's remote list, which the owner drains into the fast bins).
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"
#include "src.h"

#define HARD_PATTERN		0xa5
#define HARD_PATTERN_WORD	0xa5a5a5a5a5a5a5a5ULL

/*
 * The state map: 2 bits per granule, interleaved (32 granules a word), so
 * that a free is one atomic: LIVE -> FREED is an exclusive or. A live
 * block's state also says whether its header carries NON_MAIN_ARENA
 * (ST_LIVE, or ST_LIVE | ST_FREED: the one state left), so that a free
 * finds a flipped arena flag in the same atomic, without the heap map.
 */
#define SHADOW_SLOT_SHIFT	26
#define SHADOW_SLOTS		((size_t)1 << (UPA_HEAP_MAP_SPACE_BITS - \
					       SHADOW_SLOT_SHIFT))
#define SHADOW_GRANULES		((size_t)1 << (SHADOW_SLOT_SHIFT - 4))
#define SHADOW_SLOT_BYTES	(SHADOW_GRANULES / 32 * sizeof(uint64_t))
#define ST_LIVE			1ULL
#define ST_FREED		2ULL
#define ST_FREED_ALL		0xaaaaaaaaaaaaaaaaULL

/* The LIVE state of the block at mem, from its header's arena flag. */
static inline uint64_t live_state(const void *mem)
{
	return ST_LIVE | ((mem_chunk((void *)mem)->size & UPA_NON_MAIN_ARENA) >>
			  1);
}

/* tc->hard_inner in the mode's slow malloc (1 in its other wrappers). */
#define HARD_INNER_MALLOC	2

static uint64_t **shadow_dir;
static uintptr_t hard_secret;

/*
 * The mode's per-thread cache: chunks up to 4112 bytes (the default
 * cache's sizes, its large bins included: programs whose blocks of a few
 * KiB otherwise took the arena's locked path at every call), as a
 * stack of pointers per size, out of band: a freed block holds nothing
 * but the pattern (no link a write after free could redirect, so every
 * byte of it is verified and no link needs checking against the map).
 * Per size the count the default cache would hold (UPA_M_TCACHE_COUNT;
 * the large bins: at most 16 KiB, at least 2), and at most
 * HARD_CACHE_CAP. Only the sizes up to UPA_TCACHE_MAX_CHUNK are filled
 * with the pattern and verified (larger ones never were: see the file's
 * head).
 */
#define HARD_CACHE_CAP		64

struct hard_cache {
	uint16_t count[UPA_TCACHE_ALL_BINS];
	void *slot[UPA_TCACHE_ALL_BINS][HARD_CACHE_CAP];
};

static inline unsigned int hard_cache_limit(size_t idx)
{
	unsigned int l = tcache_limit_of(upa_mp.hard_cache_count,
					 UPA_TCACHE_ALL_BINS, (unsigned int)idx);

	return l < HARD_CACHE_CAP ? l : HARD_CACHE_CAP;
}

static __attribute__((noinline)) uint64_t *shadow_slot_new(uint64_t **e)
{
	uint64_t *none = NULL;
	void *m;

	if (upa_src_anon_meta_map(SHADOW_SLOT_BYTES, &m))
		return NULL;
	if (!__atomic_compare_exchange_n(e, &none, (uint64_t *)m, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		upa_src_anon.unmap(m, SHADOW_SLOT_BYTES);
		return none;
	}
	return m;
}

/* p's slot of the map; NULL when it has none (nothing there was live). */
static inline uint64_t *shadow_slot(const void *p, bool create)
{
	uintptr_t a = (uintptr_t)p;
	uint64_t **e, *s;

	if (unlikely(a >> UPA_HEAP_MAP_SPACE_BITS))
		return NULL;
	e = &shadow_dir[a >> SHADOW_SLOT_SHIFT];
	s = __atomic_load_n(e, __ATOMIC_ACQUIRE);
	if (likely(s) || !create)
		return s;
	return shadow_slot_new(e);
}

static inline size_t granule(const void *p)
{
	return ((uintptr_t)p >> 4) & (SHADOW_GRANULES - 1);
}

static inline uint64_t *state_word(uint64_t *s, const void *p)
{
	return &s[granule(p) >> 5];
}

static inline unsigned int state_shift(const void *p)
{
	return (unsigned int)(granule(p) & 31) * 2;
}

/* The state of p's granule: 0, ST_FREED or a live one (ST_LIVE set). */
static inline uint64_t state_of(const void *p)
{
	uint64_t *s = shadow_slot(p, false);

	if (!s)
		return 0;
	return (__atomic_load_n(state_word(s, p), __ATOMIC_RELAXED) >>
		state_shift(p)) & 3;
}

/*
 * No granule of [p, p + len) stays FREED (p 16-aligned). One slot lookup
 * per 64 MiB, whole words of the map in between (a load each: FREED
 * granules inside a new block are rare, the atomic only where one is).
 */
static void shadow_clear_freed(char *p, size_t len)
{
	size_t ng = (len + 15) >> 4, n;

	for (; ng; ng -= n, p += n << 4) {
		uint64_t *s = shadow_slot(p, false), *w, mask;
		size_t g = granule(p), k, left;
		unsigned int sh;

		n = SHADOW_GRANULES - g;
		if (n > ng)
			n = ng;
		if (!s)
			continue;
		w = &s[g >> 5];
		sh = (unsigned int)(g & 31) * 2;
		for (left = n; left; left -= k, w++, sh = 0) {
			k = 32 - sh / 2;
			if (k > left)
				k = left;
			mask = ((k == 32 ? ~0ULL : ((1ULL << (2 * k)) - 1)) <<
				sh) & ST_FREED_ALL;
			if (__atomic_load_n(w, __ATOMIC_RELAXED) & mask)
				__atomic_fetch_and(w, ~mask, __ATOMIC_RELAXED);
		}
	}
}

/*
 * mem (its header set) becomes LIVE, and no granule of the block [mem, mem + len) stays
 * FREED (so that a free of a pointer into it is told apart from a double
 * free) from offset `from` on: a block that grew in place was clean up
 * to there already. false: no memory for the map.
 */
static bool shadow_adopt(char *mem, size_t from, size_t len)
{
	uint64_t *s = shadow_slot(mem, true), *w, old, nw, live, fmask;
	unsigned int sh = state_shift(mem);
	size_t n = 32 - sh / 2;

	if (!s)
		return false;
	w = state_word(s, mem);
	live = live_state(mem) << sh;
	if (from < UPA_ALIGN) {
		/* The block's granules in this word: in the same CAS. */
		if (n > (len + 15) >> 4)
			n = (len + 15) >> 4;
		fmask = ((n == 32 ? ~0ULL : ((1ULL << (2 * n)) - 1)) << sh) &
			ST_FREED_ALL;
		from = n << 4;
	} else {
		fmask = ST_FREED << sh;
	}
	old = __atomic_load_n(w, __ATOMIC_RELAXED);
	do {
		UPA_CHECK(!(old & (ST_LIVE << sh)),
			  "malloc(): returned a block that is in use");
		nw = (old & ~fmask) | live;
	} while (!__atomic_compare_exchange_n(w, &old, nw, true,
					      __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	if (len > from)
		shadow_clear_freed(mem + from, len - from);
	return true;
}

/* ---- the canary ---------------------------------------------------- */

/*
 * The bytes [n, usable) after a request of n: the first ones (up to
 * CANARY_SPAN) hold the byte k (the chunk's, from its address and a
 * secret; bit 7 set, so never NUL, the usual off-by-one), the last one
 * k ^ pad (pad = usable - n), which tells where the request ended; a pad
 * too long for that byte (>= PAD_LONG) ends in k ^ PAD_LONG with
 * pad ^ secret stored in the 8 bytes before it. An overflow from byte n
 * on rewrites the k bytes first.
 */
#define PAD_LONG	0x7f
/*
 * At most this many k bytes: an overflow rewrites the first ones first,
 * and a realloc's headroom (a pad of kilobytes) costs no more than a
 * small block's.
 */
#define CANARY_SPAN	16

/*
 * Also from the block's size word (but PREV_INUSE, which its
 * predecessor's free and reuse change): a rewritten size or arena flag
 * moves or changes the canary, and the free that reads it aborts.
 */
static inline uint8_t canary_byte(const void *mem)
{
	uint64_t x = ((uintptr_t)mem ^ hard_secret ^
		      (mem_chunk((void *)mem)->size & ~UPA_PREV_INUSE)) *
		     0x9e3779b97f4a7c15ULL;

	return (uint8_t)(x >> 56) | 0x80;
}

/*
 * len bytes of k at p, or whether they all are k: whole words, then the
 * tail as one word (or half, quarter word, byte) overlapping what came
 * before: no byte loop, and no byte outside [p, p + len) touched.
 */
#define BYTES_K(k)	(0x0101010101010101ULL * (k))

static inline void bytes_set(char *p, size_t len, uint8_t k)
{
	uint64_t kw = BYTES_K(k);
	char *end = p + len;

	if (len >= 8) {
		for (; p + 8 <= end; p += 8)
			memcpy(p, &kw, 8);
		memcpy(end - 8, &kw, 8);
	} else if (len >= 4) {
		memcpy(p, &kw, 4);
		memcpy(end - 4, &kw, 4);
	} else if (len >= 2) {
		memcpy(p, &kw, 2);
		memcpy(end - 2, &kw, 2);
	} else if (len) {
		*p = (char)k;
	}
}

static inline bool bytes_are(const char *p, size_t len, uint8_t k)
{
	uint64_t kw = BYTES_K(k), acc = 0, v = 0, u = 0;
	const char *end = p + len;

	if (len >= 8) {
		for (; p + 8 <= end; p += 8) {
			memcpy(&v, p, 8);
			acc |= v ^ kw;
		}
		memcpy(&v, end - 8, 8);
		return !(acc | (v ^ kw));
	}
	if (len >= 4) {
		memcpy(&v, p, 4);
		memcpy(&u, end - 4, 4);
		return !((v | u << 32) ^ kw);
	}
	if (len >= 2) {
		memcpy(&v, p, 2);
		memcpy(&u, end - 2, 2);
		return !((v | u << 16) ^ (kw & 0xffffffff));
	}
	return !len || (uint8_t)*p == k;
}

/*
 * A pad of 1 to CANARY_SPAN (every block from the cache and the arena
 * but the smallest, whose requests round up by less than 16): the canary
 * is then exactly the bytes [n, usable) of the last 16 of the usable
 * area, which one 16-byte load, mask and store write and one load and
 * shift verify, with no branch on the pad. The bytes before n in those
 * 16 are the program's (a realloc in place keeps them): kept as they are.
 */
typedef unsigned __int128 hard_u128;

static inline hard_u128 canary_k16(uint8_t k)
{
	return (hard_u128)BYTES_K(k) << 64 | BYTES_K(k);
}

static void canary_write_slow(char *mem, size_t usable, size_t n, uint8_t k);

/*
 * fresh: no byte of the block is the program's yet (a malloc, not a
 * realloc): the bytes before n in the last 16 may be overwritten too,
 * which saves the mask.
 */
static inline void canary_write(char *mem, size_t usable, size_t n,
				bool fresh)
{
	size_t pad = usable - n;
	uint8_t k = canary_byte(mem);
	hard_u128 old, keep, kk;

	if (unlikely(pad > CANARY_SPAN))
		return canary_write_slow(mem, usable, n, k);
	kk = canary_k16(k) ^ (hard_u128)pad << 120;
	if (fresh) {
		memcpy(mem + usable - CANARY_SPAN, &kk, sizeof(kk));
		return;
	}
	keep = ((hard_u128)1 << (8 * (CANARY_SPAN - pad))) - 1;
	memcpy(&old, mem + usable - CANARY_SPAN, sizeof(old));
	old = (old & keep) | (kk & ~keep);
	memcpy(mem + usable - CANARY_SPAN, &old, sizeof(old));
}

static __attribute__((noinline)) void
canary_write_slow(char *mem, size_t usable, size_t n, uint8_t k)
{
	size_t pad = usable - n;

	if (pad < PAD_LONG) {
		size_t span = pad - 1 < CANARY_SPAN ? pad - 1 : CANARY_SPAN;

		bytes_set(mem + n, span, k);
		mem[usable - 1] = (char)(k ^ pad);
	} else {
		uint64_t w = pad ^ hard_secret;

		bytes_set(mem + n, CANARY_SPAN, k);
		memcpy(mem + usable - 9, &w, sizeof(w));
		mem[usable - 1] = (char)(k ^ PAD_LONG);
	}
}

static size_t canary_read_slow(const char *mem, size_t usable, uint8_t k);

/* The request size the canary encodes, or SIZE_MAX when it was damaged. */
static inline size_t canary_read(const char *mem, size_t usable)
{
	uint8_t k = canary_byte(mem);
	hard_u128 x;
	size_t pad;

	memcpy(&x, mem + usable - CANARY_SPAN, sizeof(x));
	x ^= canary_k16(k);
	pad = (size_t)(x >> 120);
	if (unlikely(pad - 1 >= CANARY_SPAN))
		return canary_read_slow(mem, usable, k);
	/* The pad's bytes: all k but the last, k ^ pad. */
	if ((x ^ (hard_u128)pad << 120) >> (8 * (CANARY_SPAN - pad)))
		return SIZE_MAX;
	return usable - pad;
}

static __attribute__((noinline)) size_t
canary_read_slow(const char *mem, size_t usable, uint8_t k)
{
	uint8_t t;
	size_t pad, body;

	t = (uint8_t)mem[usable - 1] ^ k;
	if (t >= 1 && t < PAD_LONG) {
		pad = t;
		body = pad - 1;
	} else if (t == PAD_LONG) {
		uint64_t w;

		memcpy(&w, mem + usable - 9, sizeof(w));
		pad = (size_t)(w ^ hard_secret);
		if (pad < PAD_LONG)
			return SIZE_MAX;
		body = pad - 9;
	} else {
		return SIZE_MAX;
	}
	if (body > CANARY_SPAN)
		body = CANARY_SPAN;
	if (pad > usable || !bytes_are(mem + usable - pad, body, k))
		return SIZE_MAX;
	return usable - pad;
}

/* ---- the pattern ---------------------------------------------------- */

/*
 * [from, end): a multiple of 16 bytes (a chunk's user part less its first
 * word or two and its last: sizes are multiples of 16), 8-aligned; one
 * test at the end, 16 bytes an iteration.
 */
typedef uint64_t hard_v2 __attribute__((vector_size(16), aligned(8)));

static void pattern_verify(const char *from, const char *end)
{
	const hard_v2 pat = { HARD_PATTERN_WORD, HARD_PATTERN_WORD };
	const hard_v2 *v = (const hard_v2 *)from;
	hard_v2 acc = { 0, 0 };

	for (; (const char *)v < end; v++)
		acc |= *v ^ pat;
	UPA_CHECK(!(acc[0] | acc[1]), "malloc(): write after free detected");
}

/*
 * An internal free (realloc's, memalign's): the chunk's user part, for
 * every size the program's frees fill too (past any M_MXFAST). Only
 * fast-bin sizes are verified, but the current M_MXFAST cannot decide:
 * another thread may raise it before this chunk reaches a bin (a remote
 * list is drained later), and a chunk that then went to a fast bin
 * unfilled was taken for one written after free (the stress test of the
 * branch libmachine found it).
 */
void upa_hard_fill(struct upa_chunk *c)
{
	if (chunk_size(c) <= UPA_TCACHE_MAX_CHUNK)
		memset(chunk_mem(c), HARD_PATTERN, chunk_size(c) - UPA_HEADER);
}

/* A fast-bin chunk taken by malloc: all but fd, the key and the foot. */
void upa_hard_verify_fast(struct upa_chunk *c)
{
	pattern_verify((char *)chunk_mem(c) + 2 * UPA_WORD,
		       (char *)c + chunk_size(c));
}

/* ---- blocks handed out and taken back ------------------------------ */

/*
 * A chunk from the allocator becomes a live block of n bytes; clean:
 * bytes at its start known not to hold FREED granules (a realloc in
 * place); fresh: none of its bytes is the program's yet (not a realloc).
 */
static void *block_adopt(void *mem, size_t n, size_t clean, bool fresh)
{
	struct upa_chunk *c = mem_chunk(mem);
	size_t usable = chunk_usable(c);

	if (unlikely(!shadow_adopt(mem, clean, usable))) {
		/* No memory for the map: give the chunk back, ENOMEM. */
		upa_hard_fill(c);
		upa_tc.hard_inner = 1;
		upa_free_slow(mem);
		upa_tc.hard_inner = 0;
		errno = ENOMEM;
		return NULL;
	}
	canary_write(mem, usable, n, fresh);
	return mem;
}

/*
 * Take block mem back from the program (free, or a realloc that may
 * move it): it must be LIVE, with the arena flag its header had when it
 * was handed out; it is FREED afterwards (one exclusive or; realloc's
 * block_unclaim undoes it when it fails). is_free picks the caller's
 * abort messages.
 */
static inline __attribute__((always_inline)) void block_claim(void *mem,
								bool is_free)
{
	uint64_t *s = shadow_slot(mem, false), st = 0, *w, live = 0;
	unsigned int sh = state_shift(mem);

	UPA_CHECK(chunk_aligned(mem), is_free ? "free(): invalid pointer" :
						"realloc(): invalid pointer");
	if (likely(s)) {
		live = live_state(mem);
		w = state_word(s, mem);
		st = (__atomic_fetch_xor(w, (live ^ ST_FREED) << sh,
					 __ATOMIC_ACQ_REL) >> sh) & 3;
		if (likely(st == live))
			return;
		__atomic_fetch_xor(w, (live ^ ST_FREED) << sh,
				   __ATOMIC_ACQ_REL);
	}
	UPA_CHECK(st != ST_FREED,
		  is_free ? "free(): double free detected (hardened)" :
			    "realloc(): block was freed (hardened)");
	/* Live, but its header's arena flag is not the one handed out. */
	UPA_CHECK(!(st & ST_LIVE), is_free ? "free(): invalid pointer" :
					     "realloc(): invalid pointer");
	upa_fatal(is_free ? "free(): pointer is not the start of a block" :
			    "realloc(): pointer is not the start of a block");
}

/* LIVE <-> FREED for the block at mem (header set): undo of a claim. */
static void block_unclaim(void *mem)
{
	__atomic_fetch_xor(state_word(shadow_slot(mem, false), mem),
			   (live_state(mem) ^ ST_FREED) << state_shift(mem),
			   __ATOMIC_ACQ_REL);
}

/* The header's size is sane and the canary intact; the request's size. */
static inline __attribute__((always_inline)) size_t block_check(void *mem,
								  bool is_free)
{
	struct upa_chunk *c = mem_chunk(mem);
	size_t size = chunk_size(c), n;

	UPA_CHECK(size >= UPA_MIN_CHUNK && (size % UPA_ALIGN) == 0 &&
		  (uintptr_t)c <= -size,
		  is_free ? "free(): invalid size" : "realloc(): invalid old size");
	n = canary_read(mem, chunk_usable(c));
	UPA_CHECK(n != SIZE_MAX,
		  is_free ? "free(): canary after the requested size overwritten" :
			    "realloc(): canary after the requested size overwritten");
	return n;
}

/* ---- the mode's cache --------------------------------------------- */

static struct hard_cache *hard_cache_of(struct upa_tcache *tc, bool create)
{
	void *m;

	if (tc->hard || !create || tc->state != UPA_THREAD_LIVE)
		return tc->hard;
	if (upa_src_anon_meta_map(sizeof(struct hard_cache), &m))
		return NULL;
	tc->hard = m;
	return m;
}

/*
 * A non-mmapped chunk's user part, [mem, mem + usable) with usable = size
 * - 8 (16-aligned, 16 * m + 8 bytes): m 16-byte stores or loads, then the
 * last word. The link of a cache entry is not in the block: every byte is
 * filled and verified.
 */
typedef uint64_t hard_v2a __attribute__((vector_size(16)));

/* A loop, not memset: GCC would call it, or use rep stos (slow to start). */
static inline __attribute__((optimize("no-tree-loop-distribute-patterns")))
void pattern_fill_block(char *mem, size_t usable)
{
	const hard_v2a pat = { HARD_PATTERN_WORD, HARD_PATTERN_WORD };
	char *end = mem + usable - UPA_WORD;
	hard_v2a *v = (hard_v2a *)mem;
	uint64_t pw = HARD_PATTERN_WORD;

	memcpy(end, &pw, sizeof(pw));
	if ((usable - UPA_WORD) & UPA_ALIGN)
		*v++ = pat;
	for (; (char *)v < end; v += 2) {
		v[0] = pat;
		v[1] = pat;
	}
}

static inline void pattern_verify_block(const char *mem, size_t usable)
{
	const hard_v2a pat = { HARD_PATTERN_WORD, HARD_PATTERN_WORD };
	const char *end = mem + usable - UPA_WORD;
	const hard_v2a *v = (const hard_v2a *)mem;
	hard_v2a acc;
	uint64_t last;

	memcpy(&last, end, sizeof(last));
	acc = (hard_v2a){ last ^ HARD_PATTERN_WORD, 0 };
	/* m 16-byte words: an odd one first, then two an iteration. */
	if ((usable - UPA_WORD) & UPA_ALIGN)
		acc |= *v++ ^ pat;
	for (; (const char *)v < end; v += 2)
		acc |= (v[0] ^ pat) | (v[1] ^ pat);
	UPA_CHECK(!(acc[0] | acc[1]), "malloc(): write after free detected");
}

/*
 * A pop: the block was FREED (its start granule only: the rest of it has
 * been clean since the malloc that handed it out, and no other block can
 * start inside it while it is cached), and becomes LIVE in one exclusive
 * or; the pattern must be intact and the header must still say this
 * bin's size.
 */
static void *hard_cache_pop(struct hard_cache *hc, size_t idx)
{
	char *mem = hc->slot[idx][--hc->count[idx]];
	size_t size = (idx + 2) * UPA_ALIGN;
	uint64_t *s = shadow_slot(mem, false), old;
	unsigned int sh = state_shift(mem);

	UPA_CHECK((mem_chunk(mem)->size &
		   ~(UPA_PREV_INUSE | UPA_NON_MAIN_ARENA)) == size,
		  "malloc(): size of a cached block overwritten (hardened)");
	if (idx < UPA_TCACHE_BINS)
		pattern_verify_block(mem, size - UPA_WORD);
	old = __atomic_fetch_xor(state_word(s, mem),
				 (live_state(mem) ^ ST_FREED) << sh,
				 __ATOMIC_ACQ_REL);
	UPA_CHECK(((old >> sh) & 3) == ST_FREED,
		  "malloc(): returned a block that is in use");
	return mem;
}

void upa_hard_thread_exit(struct upa_tcache *tc)
{
	struct hard_cache *hc = tc->hard;
	unsigned int i;

	if (!hc)
		return;
	tc->hard = NULL;
	for (i = 0; i < UPA_TCACHE_ALL_BINS; i++)
		while (hc->count[i])
			upa_free_chunk_any(mem_chunk(hc->slot[i][--hc->count[i]]));
	upa_src_anon.unmap(hc, sizeof(*hc));
}

/* ---- the entry points ------------------------------------------------ */

/* A request the mode's cache cannot serve: the allocator's, adopted. */
static __attribute__((noinline)) void *hard_malloc_slow(size_t n)
{
	struct upa_tcache *tc = &upa_tc;
	void *mem;

	if (unlikely(n >= UPA_MAX_REQUEST)) {
		errno = ENOMEM;
		return NULL;
	}
	tc->hard_inner = HARD_INNER_MALLOC;
	mem = upa_malloc_slow(n + 1);
	tc->hard_inner = 0;
	return mem ? block_adopt(mem, n, 0, true) : NULL;
}

void *upa_hard_malloc(size_t n)
{
	struct hard_cache *hc = upa_tc.hard;
	/* A huge n wraps to a small idx: hence the test of n too. */
	size_t idx = tcache_index(upa_request_size(n + 1));
	void *mem;

	if (likely(hc) && idx < UPA_TCACHE_ALL_BINS && n < UPA_MAX_REQUEST &&
	    hc->count[idx]) {
		mem = hard_cache_pop(hc, idx);
		canary_write(mem, (idx + 2) * UPA_ALIGN - UPA_WORD, n, true);
		return mem;
	}
	return hard_malloc_slow(n);
}

/*
 * tcache_carve's batch refill (malloc.c), for the mode's cache: up to max
 * chunks of nb at `at` (free space of arena a, locked), as many as the
 * bin's ramp (1, 3, 7, 15 on its successive misses, as the default
 * cache's) and room allow, each in the state of a cached block: FREED
 * at its start, no other granule FREED, filled with the pattern. Only
 * from inside the mode's own slow malloc (HARD_INNER_MALLOC: a realloc's
 * or memalign's chunk is not of a size the program asks for again and
 * again, and the carved chunks' fill would be wasted). Returns the
 * bytes carved.
 */
size_t upa_hard_carve(struct upa_arena *a, struct upa_chunk *at, size_t nb,
		      size_t max, unsigned int min_limit)
{
	struct upa_tcache *tc = &upa_tc;
	struct hard_cache *hc = tc->hard;
	size_t idx = tcache_index(nb), k, i;
	size_t head = nb | UPA_PREV_INUSE | upa_arena_flag(a);
	unsigned int limit;

	if (!hc || tc->hard_inner != HARD_INNER_MALLOC || idx >= UPA_TCACHE_BINS)
		return 0;
	limit = hard_cache_limit(idx);
	if (limit < min_limit || hc->count[idx] >= limit)
		return 0;
	k = ((size_t)1 << tc->misses[idx]) - 1;
	if (tc->misses[idx] < 4)
		tc->misses[idx]++;
	if (k > limit - hc->count[idx])
		k = limit - hc->count[idx];
	if (k > max)
		k = max;
	/*
	 * Every chunk's header and state first: a failure leaves the carve
	 * shorter (the caller writes the rest's header over the first one
	 * left out).
	 */
	for (i = 0; i < k; i++) {
		struct upa_chunk *c = chunk_at(at, i * nb);

		chunk_set_head(c, head);
		if (!shadow_adopt(chunk_mem(c), 0, nb - UPA_WORD))
			break;
		block_unclaim(chunk_mem(c));	/* LIVE -> FREED */
	}
	for (k = i; i > 0; i--) {
		struct upa_chunk *c = chunk_at(at, (i - 1) * nb);

		pattern_fill_block(chunk_mem(c), nb - UPA_WORD);
		hc->slot[idx][hc->count[idx]++] = chunk_mem(c);
	}
	return k * nb;
}

/*
 * A full bin: half of it, the newest entries as long as they are of the
 * thread's own arena, goes to the arena in one batch (one lock round trip,
 * as the default cache's free_batch), and the bin has room for the next
 * frees: a program that frees many blocks of one size in a row paid the
 * whole slow path per block. They stay FREED in the map.
 */
static void hard_cache_flush(struct upa_tcache *tc, struct hard_cache *hc,
			     size_t idx)
{
	struct upa_chunk *v[HARD_CACHE_CAP / 2 + 1];
	unsigned int n = 0, want = hc->count[idx] / 2 + 1;

	while (n < want && hc->count[idx]) {
		struct upa_chunk *e = mem_chunk(hc->slot[idx][hc->count[idx] - 1]);

		if (upa_arena_of_checked(e, "free(): invalid pointer") != tc->arena)
			break;
		v[n++] = e;
		hc->count[idx]--;
	}
	if (n)
		upa_free_chunks_mine(v, n);
}

/*
 * The free of a block that the mode's cache does not take at once: the
 * thread's first (no cache yet), a full bin, a larger or mmapped block.
 */
static __attribute__((noinline)) void hard_free_slow(struct upa_tcache *tc,
						     void *mem, size_t size)
{
	struct upa_chunk *c = mem_chunk(mem);
	struct hard_cache *hc;
	int saved_errno = errno;
	size_t idx = tcache_index(size);

	if (unlikely(tc->state == UPA_THREAD_NEW))
		upa_thread_setup(tc);
	hc = hard_cache_of(tc, true);
	if (!chunk_is_mmapped(c) && idx < UPA_TCACHE_ALL_BINS && hc &&
	    tc->arena && hc->count[idx] && hc->count[idx] >= hard_cache_limit(idx))
		hard_cache_flush(tc, hc, idx);
	if (!chunk_is_mmapped(c) && idx < UPA_TCACHE_ALL_BINS && hc &&
	    hc->count[idx] < hard_cache_limit(idx)) {
		/* What the default fast path checks before it caches. */
		upa_arena_of_checked(c, "free(): invalid pointer");
		UPA_CHECK(chunk_prev_inuse(chunk_at(c, size)),
			  "double free or corruption (!prev)");
		hc->slot[idx][hc->count[idx]++] = mem;
	} else {
		tc->hard_inner = 1;
		upa_free_slow(mem);
		tc->hard_inner = 0;
	}
	errno = saved_errno;
}

/*
 * The block must be LIVE with the arena flag it was handed out with (it
 * is FREED from here on), its size sane and its canary intact (the
 * canary also binds the size word: a rewritten size fails it). Then the
 * cache takes it when its bin has room, filled with the pattern, with
 * the default fast path's check of the successor (PREV_INUSE set, a
 * plausible size). No heap-map lookup on this path: the map's LIVE,
 * out of band, says the pointer is a block handed out, and its state the
 * arena flag (the canary alone would miss a flipped flag once in 128: a
 * pad of one byte leaves it one byte to compare). Blocks that reach an
 * arena get the heap-map check there.
 */
void upa_hard_free(void *mem)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_chunk *c = mem_chunk(mem);
	struct hard_cache *hc = tc->hard;
	size_t size, idx;

	block_claim(mem, true);
	block_check(mem, true);
	size = chunk_size(c);
	/*
	 * Only sizes the mode's cache or a fast bin takes are verified:
	 * larger ones are not filled (an mmapped block's pages would all be
	 * touched just before they are unmapped).
	 */
	if (size > UPA_TCACHE_MAX_CHUNK || chunk_is_mmapped(c))
		return hard_free_slow(tc, mem, size);
	pattern_fill_block(mem, size - UPA_WORD);
	idx = tcache_index(size);
	if (likely(hc) && hc->count[idx] < upa_mp.hard_cache_count &&
	    likely(hc->count[idx] < HARD_CACHE_CAP) &&
	    likely(!((chunk_at(c, size)->size - (UPA_HEADER | UPA_PREV_INUSE)) &
		     upa_next_size_mask))) {
		hc->slot[idx][hc->count[idx]++] = mem;
		return;
	}
	/* No cache yet, a full bin, or a successor the slow path reports. */
	hard_free_slow(tc, mem, size);
}

void *upa_hard_calloc(size_t n)
{
	void *mem = upa_hard_malloc(n);

	return mem ? memset(mem, 0, n) : NULL;
}

void *upa_hard_realloc(void *mem, size_t n)
{
	struct upa_tcache *tc = &upa_tc;
	size_t old_usable;
	void *nmem;

	block_claim(mem, false);
	block_check(mem, false);
	old_usable = chunk_usable(mem_chunk(mem));
	if (unlikely(n >= UPA_MAX_REQUEST)) {
		block_unclaim(mem);
		errno = ENOMEM;
		return NULL;
	}
	/* The old canary is user data to the default realloc: it copies it. */
	tc->hard_inner = 1;
	nmem = upa_realloc(mem, n + 1);
	tc->hard_inner = 0;
	if (!nmem) {
		block_unclaim(mem);
		return NULL;
	}
	/* Moved: the old block stays FREED. */
	return block_adopt(nmem, n, nmem == mem ? old_usable : 0, false);
}

void *upa_hard_memalign(size_t align, size_t n)
{
	struct upa_tcache *tc = &upa_tc;
	void *mem;

	if (unlikely(n >= UPA_MAX_REQUEST)) {
		errno = ENOMEM;
		return NULL;
	}
	tc->hard_inner = 1;
	mem = upa_int_memalign(align, n + 1);
	tc->hard_inner = 0;
	return mem ? block_adopt(mem, n, 0, true) : NULL;
}

/* The bytes before the canary: what the program may use. */
size_t upa_hard_usable_size(void *mem)
{
	size_t n;

	if (!mem || !chunk_aligned(mem) || !(state_of(mem) & ST_LIVE))
		return 0;
	n = canary_read(mem, chunk_usable(mem_chunk(mem)));
	UPA_CHECK(n != SIZE_MAX,
		  "malloc_usable_size(): canary after the requested size overwritten");
	return n;
}

/*
 * Turn the mode on (before the first heap: blocks handed out before would
 * have no state). The default thread cache is off while it is on; its
 * count is the mode's cache's. M_PERTURB is ignored (the pattern is
 * the mode's own).
 */
int upa_hard_enable(bool on)
{
	void *m;

	if (on == upa_mp.hardened)
		return 0;
	if (!on) {
		upa_mp.hardened = false;
		upa_mp.tcache_count = upa_mp.hard_cache_count;
		return 0;
	}
	if (!shadow_dir) {
		size_t len = SHADOW_SLOTS * sizeof(uint64_t *);

		if (upa_src_anon_meta_map(len, &m))
			return -ENOMEM;
		shadow_dir = m;
	}
	hard_secret = upa_tcache_key * 0xbf58476d1ce4e5b9ULL + 1;
	upa_mp.hard_cache_count = upa_mp.tcache_count;
	upa_mp.tcache_count = 0;
	upa_mp.perturb = 0;
	upa_mp.hardened = true;
	return 0;
}
