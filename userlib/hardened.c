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
 * a live block is told apart from a double free). A free turns LIVE into
 * FREED with one atomic exclusive or: of two racing frees only one finds
 * LIVE, the other aborts. The map is a directory of 2^21 slots (one per
 * 64 MiB of the 2^47-byte user address space), each slot's map (1 MiB
 * of address space, touched only where blocks are) mapped on first use.
 *
 * Which reuse paths verify the pattern, and why only these: the mode's
 * own cache (the block was filled at free and only its first word, the
 * list link, was the allocator's since: all but 8 bytes verified) and the
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
 * full bin, the cache off, another thread's block through its arena's
 * remote list, which the owner drains into the fast bins).
 */
#include <string.h>

#include "internal.h"
#include "tcache.h"
#include "src.h"

#define HARD_PATTERN		0xa5
#define HARD_PATTERN_WORD	0xa5a5a5a5a5a5a5a5ULL

/*
 * The state map: 2 bits per granule, interleaved (32 granules a word), so
 * that a free is one atomic: LIVE -> FREED is an exclusive or of both.
 */
#define SHADOW_SLOT_SHIFT	26
#define SHADOW_SLOTS		((size_t)1 << (UPA_HEAP_MAP_SPACE_BITS - \
					       SHADOW_SLOT_SHIFT))
#define SHADOW_GRANULES		((size_t)1 << (SHADOW_SLOT_SHIFT - 4))
#define SHADOW_SLOT_BYTES	(SHADOW_GRANULES / 32 * sizeof(uint64_t))
#define ST_LIVE			1ULL
#define ST_FREED		2ULL
#define ST_FREED_ALL		0xaaaaaaaaaaaaaaaaULL

static uint64_t **shadow_dir;
static uintptr_t hard_secret;

/* The mode's per-thread cache: chunks up to UPA_TCACHE_MAX_CHUNK. */
struct hard_cache {
	uintptr_t head[UPA_TCACHE_BINS];	/* newest (links: mangled) */
	uint16_t count[UPA_TCACHE_BINS];
};

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

/* The state of p's granule: 0, ST_LIVE or ST_FREED. */
static inline uint64_t state_of(const void *p)
{
	uint64_t *s = shadow_slot(p, false);

	if (!s)
		return 0;
	return (__atomic_load_n(state_word(s, p), __ATOMIC_RELAXED) >>
		state_shift(p)) & 3;
}

/* No granule of [p, p + len) stays FREED (p 16-aligned). */
static void shadow_clear_freed(char *p, size_t len)
{
	size_t ng = (len + 15) >> 4, n;

	for (; ng; ng -= n, p += n << 4) {
		unsigned int sh = state_shift(p);
		uint64_t *s = shadow_slot(p, false), *w, mask;

		n = 32 - sh / 2;
		if (n > ng)
			n = ng;
		if (!s)
			continue;
		w = state_word(s, p);
		mask = ((n == 32 ? ~0ULL : ((1ULL << (2 * n)) - 1)) << sh) &
		       ST_FREED_ALL;
		/* Rarely any: a load first, the atomic only when needed. */
		if (__atomic_load_n(w, __ATOMIC_RELAXED) & mask)
			__atomic_fetch_and(w, ~mask, __ATOMIC_RELAXED);
	}
}

/*
 * mem becomes LIVE, and no granule of the block [mem, mem + len) stays
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
	live = ST_LIVE << sh;
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
		UPA_CHECK(!(old & live),
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

static inline uint8_t canary_byte(const void *mem)
{
	uint64_t x = ((uintptr_t)mem ^ hard_secret) * 0x9e3779b97f4a7c15ULL;

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

static void canary_write(char *mem, size_t usable, size_t n)
{
	size_t pad = usable - n;
	uint8_t k = canary_byte(mem);

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

/* The request size the canary encodes, or SIZE_MAX when it was damaged. */
static size_t canary_read(const char *mem, size_t usable)
{
	uint8_t k = canary_byte(mem), t;
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
 * place).
 */
static void *block_adopt(void *mem, size_t n, size_t clean)
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
	canary_write(mem, usable, n);
	return mem;
}

/*
 * Take block mem back from the program (free, or a realloc that may
 * move it): it must be LIVE; it is FREED afterwards (one exclusive or;
 * realloc's block_unclaim undoes it when it fails). is_free picks the
 * caller's abort messages.
 */
static void block_claim(void *mem, bool is_free)
{
	uint64_t *s = shadow_slot(mem, false), st = 0, *w;
	unsigned int sh = state_shift(mem);

	UPA_CHECK(chunk_aligned(mem), is_free ? "free(): invalid pointer" :
						"realloc(): invalid pointer");
	if (likely(s)) {
		w = state_word(s, mem);
		st = (__atomic_fetch_xor(w, (ST_LIVE | ST_FREED) << sh,
					 __ATOMIC_ACQ_REL) >> sh) & 3;
		if (likely(st == ST_LIVE))
			return;
		__atomic_fetch_xor(w, (ST_LIVE | ST_FREED) << sh,
				   __ATOMIC_ACQ_REL);
	}
	UPA_CHECK(st != ST_FREED,
		  is_free ? "free(): double free detected (hardened)" :
			    "realloc(): block was freed (hardened)");
	upa_fatal(is_free ? "free(): pointer is not the start of a block" :
			    "realloc(): pointer is not the start of a block");
}

static void block_unclaim(void *mem)
{
	__atomic_fetch_xor(state_word(shadow_slot(mem, false), mem),
			   (ST_LIVE | ST_FREED) << state_shift(mem),
			   __ATOMIC_ACQ_REL);
}

/* The header's size is sane and the canary intact; the request's size. */
static size_t block_check(void *mem, bool is_free)
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

static inline uintptr_t link_protect(const void *pos, uintptr_t v)
{
	return ((uintptr_t)pos >> 12) ^ v;
}

/*
 * A pop: the link is the block's first word, which a write after free
 * may have changed: the next entry must be a granule the map says was
 * freed, else the link was overwritten.
 */
static void *hard_cache_pop(struct hard_cache *hc, size_t idx)
{
	char *mem = (char *)(hc->head[idx]);
	uintptr_t next = link_protect(mem, *(uintptr_t *)mem);

	UPA_CHECK(!next || (chunk_aligned((void *)next) &&
			    state_of((void *)next) == ST_FREED),
		  "malloc(): write after free detected");
	hc->head[idx] = next;
	hc->count[idx]--;
	pattern_verify(mem + UPA_WORD, mem + chunk_usable(mem_chunk(mem)));
	return mem;
}

static void hard_cache_push(struct hard_cache *hc, size_t idx, char *mem)
{
	*(uintptr_t *)mem = link_protect(mem, hc->head[idx]);
	hc->head[idx] = (uintptr_t)mem;
	hc->count[idx]++;
}

void upa_hard_thread_exit(struct upa_tcache *tc)
{
	struct hard_cache *hc = tc->hard;
	unsigned int i;

	if (!hc)
		return;
	tc->hard = NULL;
	for (i = 0; i < UPA_TCACHE_BINS; i++)
		while (hc->head[i]) {
			char *mem = (char *)hc->head[i];

			hc->head[i] = link_protect(mem, *(uintptr_t *)mem);
			upa_free_chunk_any(mem_chunk(mem));
		}
	upa_src_anon.unmap(hc, sizeof(*hc));
}

/* ---- the entry points ------------------------------------------------ */

void *upa_hard_malloc(size_t n)
{
	struct upa_tcache *tc = &upa_tc;
	struct hard_cache *hc = tc->hard;
	void *mem;

	if (unlikely(n >= UPA_MAX_REQUEST)) {
		errno = ENOMEM;
		return NULL;
	}
	if (hc) {
		size_t idx = tcache_index(upa_request_size(n + 1));

		if (idx < UPA_TCACHE_BINS && hc->head[idx])
			return block_adopt(hard_cache_pop(hc, idx), n, 0);
	}
	tc->hard_inner = 1;
	mem = upa_malloc_slow(n + 1);
	tc->hard_inner = 0;
	return mem ? block_adopt(mem, n, 0) : NULL;
}

void upa_hard_free(void *mem)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_chunk *c = mem_chunk(mem);
	struct hard_cache *hc;
	int saved_errno = errno;
	size_t size, idx;

	block_claim(mem, true);
	block_check(mem, true);
	size = chunk_size(c);
	/*
	 * Only sizes the mode's cache or a fast bin takes are verified:
	 * larger ones are not filled (an mmapped block's pages would all be
	 * touched just before they are unmapped).
	 */
	if (size <= UPA_TCACHE_MAX_CHUNK && !chunk_is_mmapped(c))
		memset(mem, HARD_PATTERN, chunk_usable(c));
	if (unlikely(tc->state == UPA_THREAD_NEW))
		upa_thread_setup(tc);
	idx = tcache_index(size);
	hc = hard_cache_of(tc, true);
	if (!chunk_is_mmapped(c) && idx < UPA_TCACHE_BINS && hc &&
	    hc->count[idx] < upa_mp.hard_cache_count) {
		/* What the default fast path checks before it caches. */
		upa_arena_of_checked(c, "free(): invalid pointer");
		UPA_CHECK(chunk_prev_inuse(chunk_at(c, size)),
			  "double free or corruption (!prev)");
		hard_cache_push(hc, idx, mem);
	} else {
		tc->hard_inner = 1;
		upa_free_slow(mem);
		tc->hard_inner = 0;
	}
	errno = saved_errno;
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
	return block_adopt(nmem, n, nmem == mem ? old_usable : 0);
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
	return mem ? block_adopt(mem, n, 0) : NULL;
}

/* The bytes before the canary: what the program may use. */
size_t upa_hard_usable_size(void *mem)
{
	size_t n;

	if (!mem || !chunk_aligned(mem) || state_of(mem) != ST_LIVE)
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
