// SPDX-License-Identifier: MIT
/*
 * stats.c: mallinfo, mallinfo2, malloc_stats, malloc_info, upa_lib_stats
 * and the UPALLOC_STATS=1 report at exit.
 *
 * Nothing here allocates or uses stdio internally: numbers are gathered
 * under each arena's lock into plain structs, the lock is dropped, then
 * the text is formatted into a stack buffer (upa_snprintf) and written
 * with a non-cancelling write (glue.h). malloc_info() is the exception by
 * contract: it writes to the caller's FILE, always with no lock of ours
 * held (fputs may malloc).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <malloc.h>

#include "internal.h"
#include "tcache.h"
#include "include/upalloc.h"
#include "../kmod/uapi/upalloc.h"

void upa_write_all(int fd, const char *buf, size_t len)
{
	int saved_errno = errno;

	while (len) {
		ssize_t n = upa_write_nocancel(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf += n;
		len -= (size_t)n;
	}
	errno = saved_errno;
}

/* Append one formatted unsigned number. */
static size_t fmt_num(char *out, size_t room, unsigned long v, unsigned int base,
		      bool neg, int width, char pad, const char *prefix)
{
	char tmp[32];
	size_t n = 0, len, i = 0, plen = strlen(prefix);

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	len = n + (neg ? 1 : 0) + plen;
	while (width > 0 && (size_t)width > len && i < room) {
		out[i++] = pad;
		width--;
	}
	if (neg && i < room)
		out[i++] = '-';
	for (size_t k = 0; k < plen && i < room; k++)
		out[i++] = prefix[k];
	while (n && i < room)
		out[i++] = tmp[--n];
	return i;
}

int upa_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	size_t used = 0;
	va_list ap;

	if (!size)
		return 0;
	va_start(ap, fmt);
	for (; *fmt && used < size - 1; fmt++) {
		char pad = ' ';
		bool alt = false;
		int width = 0, lng = 0;

		if (*fmt != '%') {
			buf[used++] = *fmt;
			continue;
		}
		fmt++;
		if (*fmt == '#') {
			alt = true;
			fmt++;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t len = strlen(s ? s : "(null)");

			if (!s)
				s = "(null)";
			while (width > 0 && (size_t)width > len &&
			       used < size - 1) {
				buf[used++] = ' ';
				width--;
			}
			while (*s && used < size - 1)
				buf[used++] = *s++;
			break;
		}
		case 'd': {
			long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			unsigned long u = v < 0 ? -(unsigned long)v
						: (unsigned long)v;

			used += fmt_num(buf + used, size - 1 - used, u, 10,
					v < 0, width, pad, "");
			break;
		}
		case 'u':
		case 'x': {
			unsigned long v = lng ? va_arg(ap, unsigned long)
					      : va_arg(ap, unsigned int);

			used += fmt_num(buf + used, size - 1 - used, v,
					*fmt == 'x' ? 16 : 10, false, width,
					pad, alt && *fmt == 'x' ? "0x" : "");
			break;
		}
		case 'p':
			used += fmt_num(buf + used, size - 1 - used,
					(unsigned long)va_arg(ap, void *), 16,
					false, width, pad, "0x");
			break;
		case '%':
			buf[used++] = '%';
			break;
		default:
			fmt--;	/* print the unknown conversion literally */
			buf[used++] = '%';
			break;
		}
	}
	va_end(ap);
	buf[used] = '\0';
	return (int)used;
}

/* ------------------------------------------------------------------ */

struct arena_totals {
	size_t system, max_system, free_chunks, free_bytes;
	size_t fast_chunks, fast_bytes, top, overhead;
	struct upa_arena_stats st;
};

/* Arena a, locked by the caller. */
static void arena_totals(struct upa_arena *a, struct arena_totals *t)
{
	struct upa_heap *h;
	unsigned int i;

	memset(t, 0, sizeof(*t));
	t->system = a->system_mem;
	t->max_system = a->max_system_mem;
	t->top = upa_top_size(a);
	t->st = a->st;
	for (i = UPA_UNSORTED; i < UPA_NBINS; i++) {
		struct upa_chunk *head = upa_bin_at(a, i), *c;

		for (c = head->fd; c != head; c = c->fd) {
			t->free_chunks++;
			t->free_bytes += chunk_size(c);
		}
	}
	for (i = 0; i < UPA_NFASTBINS; i++) {
		struct upa_chunk *c;

		for (c = a->fastbins[i]; c;
		     c = fastbin_reveal(&c->fd, (uintptr_t)c->fd)) {
			t->fast_chunks++;
			t->fast_bytes += chunk_size(c);
		}
	}
	/* Heap headers (and the arena struct), fences and end markers. */
	for (h = a->heap; h; h = h->prev) {
		t->overhead += (size_t)((char *)upa_heap_first_chunk(h) -
					(char *)h);
		if (h != a->heap) {
			struct upa_chunk *m = (struct upa_chunk *)
				((char *)h + h->size - UPA_HEADER);

			t->overhead += m->prev_size + UPA_HEADER;
		}
	}
}

/* Calls fn for each usable arena with its totals, no lock held during fn. */
static void for_each_arena(void (*fn)(struct upa_arena *a,
				      struct arena_totals *t, void *arg),
			   void *arg)
{
	struct upa_arena *a;
	struct arena_totals t;

	for (a = upa_arena_list; a;
	     a = __atomic_load_n(&a->next, __ATOMIC_ACQUIRE)) {
		if (a->quarantined)
			continue;
		upa_lock(&a->lock);
		arena_totals(a, &t);
		upa_unlock(&a->lock);
		fn(a, &t, arg);
	}
}

static void sum_arena(struct upa_arena *a, struct arena_totals *t, void *arg)
{
	struct arena_totals *sum = arg;
	size_t *s = (size_t *)&sum->st, *x = (size_t *)&t->st;
	unsigned int i;

	(void)a;
	sum->system += t->system;
	sum->max_system += t->max_system;
	sum->free_chunks += t->free_chunks;
	sum->free_bytes += t->free_bytes;
	sum->fast_chunks += t->fast_chunks;
	sum->fast_bytes += t->fast_bytes;
	sum->top += t->top;
	sum->overhead += t->overhead;
	for (i = 0; i < sizeof(t->st) / sizeof(size_t); i++)
		s[i] += x[i];
}

UPA_API struct mallinfo2 upa_mallinfo2(void)
{
	struct arena_totals sum;
	struct mallinfo2 mi;
	size_t mm, mmb, maxc, maxb;

	upa_ensure_init();
	memset(&sum, 0, sizeof(sum));
	for_each_arena(sum_arena, &sum);
	upa_region_counts(&mm, &mmb, &maxc, &maxb);
	memset(&mi, 0, sizeof(mi));
	mi.arena = sum.system;
	mi.ordblks = sum.free_chunks + 1;	/* + top, as glibc counts */
	mi.smblks = sum.fast_chunks;
	mi.hblks = mm;
	mi.hblkhd = mmb;
	mi.usmblks = 0;
	mi.fsmblks = sum.fast_bytes;
	mi.fordblks = sum.free_bytes + sum.fast_bytes + sum.top;
	mi.uordblks = sum.system - mi.fordblks;
	mi.keepcost = upa_top_size(&upa_main_arena);
	return mi;
}

UPA_API struct mallinfo upa_mallinfo(void)
{
	struct mallinfo2 m2 = upa_mallinfo2();
	struct mallinfo mi;

	/* The old interface's int fields wrap for big heaps, as in glibc. */
	mi.arena = (int)m2.arena;
	mi.ordblks = (int)m2.ordblks;
	mi.smblks = (int)m2.smblks;
	mi.hblks = (int)m2.hblks;
	mi.hblkhd = (int)m2.hblkhd;
	mi.usmblks = (int)m2.usmblks;
	mi.fsmblks = (int)m2.fsmblks;
	mi.uordblks = (int)m2.uordblks;
	mi.fordblks = (int)m2.fordblks;
	mi.keepcost = (int)m2.keepcost;
	return mi;
}

UPA_API int upa_lib_stats(struct upa_lib_stats *out)
{
	struct upa_lib_stats st;
	struct arena_totals sum;
	size_t tc[UPA_TC_COUNTERS], tcache_bytes, maxc, maxb;
	size_t copy;

	if (!out || out->size < sizeof(size_t) + sizeof(unsigned int)) {
		errno = EINVAL;
		return -1;
	}
	upa_ensure_init();
	memset(&sum, 0, sizeof(sum));
	for_each_arena(sum_arena, &sum);
	upa_threads_sum(tc, &tcache_bytes);
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	st.version = 1;
	st.backend_is_device = upa_region_is_device();
	st.arenas = __atomic_load_n(&upa_narenas, __ATOMIC_RELAXED);
	upa_region_counts(&st.mmapped_chunks, &st.bytes_mmapped_chunks,
			  &maxc, &maxb);
	st.bytes_mapped = sum.system + st.bytes_mmapped_chunks;
	st.bytes_top = sum.top;
	st.bytes_free = sum.free_bytes + sum.fast_bytes + tcache_bytes;
	st.bytes_in_use = sum.system - sum.free_bytes - sum.fast_bytes -
			  sum.top - sum.overhead - tcache_bytes +
			  st.bytes_mmapped_chunks;
	st.malloc_calls = tc[UPA_TC_HITS] + tc[UPA_TC_SLOW_MALLOCS];
	st.free_calls = tc[UPA_TC_FREES] + tc[UPA_TC_SLOW_FREES];
	st.tcache_hits = tc[UPA_TC_HITS];
	st.fastbin_hits = sum.st.fastbin_hits;
	st.smallbin_hits = sum.st.smallbin_hits;
	st.unsorted_hits = sum.st.unsorted_hits;
	st.largebin_hits = sum.st.largebin_hits;
	st.top_splits = sum.st.top_splits;
	st.heap_grows = sum.st.heap_grows;
	st.heap_trims = sum.st.heap_trims;
	st.decommits = sum.st.decommits;
	st.bytes_decommitted = sum.st.bytes_decommitted;
	/* Older callers get the prefix they know; size says what we wrote. */
	copy = out->size < sizeof(st) ? out->size : sizeof(st);
	st.size = copy;
	memcpy(out, &st, copy);
	return 0;
}

/* ------------------------------------------------------------------ */

struct text {
	char buf[1024];
	int fd;
};

static void print_arena(struct upa_arena *a, struct arena_totals *t, void *arg)
{
	struct text *out = arg;
	int n;

	n = upa_snprintf(out->buf, sizeof(out->buf),
			 "Arena %u:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n",
			 a->index, t->system,
			 t->system - t->free_bytes - t->fast_bytes - t->top);
	upa_write_all(out->fd, out->buf, (size_t)n);
}

static void print_device_stats(struct text *out)
{
	struct upalloc_proc_stats ps;
	int n;

	if (upa_region_proc_stats(&ps)) {
		n = upa_snprintf(out->buf, sizeof(out->buf),
				 "backend: %s\n", upa_region_backend_name());
		upa_write_all(out->fd, out->buf, (size_t)n);
		return;
	}
	n = upa_snprintf(out->buf, sizeof(out->buf),
			 "backend: device (/dev/upalloc), this process:\n"
			 "regions live     = %10lu\nregions created  = %10lu\n"
			 "pages live       = %10lu\npages peak       = %10lu\n"
			 "pages committed  = %10lu\npages allocated  = %10lu\n"
			 "pages freed      = %10lu\nfaults           = %10lu\n"
			 "cow copies       = %10lu\npages populated  = %10lu\n"
			 "pages decommitted= %10lu\nenomem           = %10lu\n",
			 (unsigned long)ps.regions_live,
			 (unsigned long)ps.regions_created,
			 (unsigned long)ps.pages_live,
			 (unsigned long)ps.pages_peak,
			 (unsigned long)ps.pages_committed,
			 (unsigned long)ps.pages_allocated,
			 (unsigned long)ps.pages_freed,
			 (unsigned long)ps.faults,
			 (unsigned long)ps.cow_copies,
			 (unsigned long)ps.pages_populated,
			 (unsigned long)ps.pages_decommitted,
			 (unsigned long)ps.enomem);
	upa_write_all(out->fd, out->buf, (size_t)n);
}

/* glibc's layout, plus the page source's own counters; to stderr. */
UPA_API void upa_malloc_stats(void)
{
	struct arena_totals sum;
	struct text out;
	size_t mm, mmb, maxc, maxb;
	int n;

	upa_ensure_init();
	out.fd = 2;
	memset(&sum, 0, sizeof(sum));
	for_each_arena(print_arena, &out);
	for_each_arena(sum_arena, &sum);
	upa_region_counts(&mm, &mmb, &maxc, &maxb);
	n = upa_snprintf(out.buf, sizeof(out.buf),
			 "Total (incl. mmap):\nsystem bytes     = %10zu\n"
			 "in use bytes     = %10zu\nmax mmap regions = %10zu\n"
			 "max mmap bytes   = %10zu\n",
			 sum.system + mmb,
			 sum.system - sum.free_bytes - sum.fast_bytes - sum.top +
			 mmb, maxc, maxb);
	upa_write_all(2, out.buf, (size_t)n);
	print_device_stats(&out);
}

/* The size_t counters of struct upa_lib_stats, listed once. */
#define UPA_STAT_FIELDS(X)						\
	X(arenas) X(bytes_mapped) X(bytes_in_use) X(bytes_free)		\
	X(bytes_top) X(mmapped_chunks) X(bytes_mmapped_chunks)		\
	X(malloc_calls) X(free_calls) X(tcache_hits) X(fastbin_hits)	\
	X(smallbin_hits) X(unsorted_hits) X(largebin_hits)		\
	X(top_splits) X(heap_grows) X(heap_trims) X(decommits)		\
	X(bytes_decommitted)

struct stat_field {
	const char *name;
	size_t offset;
};

#define UPA_STAT_ENTRY(f) { #f, offsetof(struct upa_lib_stats, f) },
static const struct stat_field stat_fields[] = {
	UPA_STAT_FIELDS(UPA_STAT_ENTRY)
};

/* UPALLOC_STATS=1: "name value" lines on stderr, then the device's. */
void upa_stats_at_exit(void)
{
	struct upa_lib_stats st;
	struct text out;
	unsigned int i;
	int n;

	st.size = sizeof(st);
	if (upa_lib_stats(&st))
		return;
	out.fd = 2;
	n = upa_snprintf(out.buf, sizeof(out.buf),
			 "upalloc: statistics at exit (pid %d)\nbackend %s\n",
			 (int)getpid(), upa_region_backend_name());
	upa_write_all(2, out.buf, (size_t)n);
	for (i = 0; i < UPA_ARRAY_SIZE(stat_fields); i++) {
		const size_t *v = (const size_t *)((const char *)&st +
						   stat_fields[i].offset);

		n = upa_snprintf(out.buf, sizeof(out.buf), "%s %zu\n",
				 stat_fields[i].name, *v);
		upa_write_all(2, out.buf, (size_t)n);
	}
	print_device_stats(&out);
}

/* ------------------------------------------------------------------ */

struct bin_sizes {
	size_t count[UPA_NBINS], total[UPA_NBINS];
	size_t fast_count[UPA_NFASTBINS], fast_total[UPA_NFASTBINS];
};

/*
 * The chunk list of malloc_info(UPA_MALLOC_INFO_CHUNKS): filled under the
 * arena lock, printed after it is dropped. The buffer is mmapped, never
 * malloc'ed (we may be inside malloc's own arena), and bounded: a heap with
 * more chunks than fit is listed up to the limit and marked truncated.
 */
enum chunk_state {
	CS_INUSE, CS_FREE, CS_FAST, CS_TCACHE, CS_UNSORTED, CS_TOP,
};

static const char *const chunk_state_name[] = {
	"inuse", "free", "fast", "tcache", "unsorted", "top",
};

struct chunk_rec {
	uintptr_t addr;
	size_t size_state;	/* size | state: sizes are 16-aligned */
};

struct heap_rec {
	uintptr_t start, end;	/* first chunk .. break */
	size_t first, count;	/* into the chunk records */
	bool truncated;
};

#define INFO_MAX_HEAPS		256
#define INFO_SCRATCH_BYTES	(4UL << 20)
#define INFO_MAX_CHUNKS \
	((INFO_SCRATCH_BYTES - INFO_MAX_HEAPS * sizeof(struct heap_rec)) / \
	 sizeof(struct chunk_rec))

struct chunk_scratch {
	struct heap_rec heap[INFO_MAX_HEAPS];
	unsigned int nheaps;
	bool heaps_truncated;	/* more heap regions than INFO_MAX_HEAPS */
	size_t nchunks;
	struct chunk_rec chunk[];
};

struct info_ctx {
	FILE *fp;
	struct arena_totals sum;
	struct bin_sizes bs;
	struct chunk_scratch *cs;	/* NULL: no chunk list asked for */
};

/* The record of chunk address addr within heap hr, or NULL. */
static struct chunk_rec *find_chunk(struct chunk_scratch *cs,
				    const struct heap_rec *hr, uintptr_t addr)
{
	size_t lo = hr->first, hi = hr->first + hr->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cs->chunk[mid].addr == addr)
			return &cs->chunk[mid];
		if (cs->chunk[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Relabels chunk c, if it was listed, as state s. */
static void mark_chunk(struct chunk_scratch *cs, const void *c,
		       enum chunk_state s)
{
	unsigned int i;

	for (i = 0; i < cs->nheaps; i++) {
		struct heap_rec *hr = &cs->heap[i];
		struct chunk_rec *r;

		if ((uintptr_t)c < hr->start || (uintptr_t)c >= hr->end)
			continue;
		r = find_chunk(cs, hr, (uintptr_t)c);
		if (r)
			r->size_state = (r->size_state & ~(size_t)15) | s;
		return;
	}
}

/*
 * Arena a, locked by the caller. Walks every heap region in address order
 * (the same tiling check.c verifies): a chunk is free when the next chunk's
 * PREV_INUSE is clear, in use otherwise; then relabels the fast-bin, unsorted
 * and (calling thread's) tcache chunks, which the walk sees as in use or
 * plain free.
 */
static void collect_chunks(struct upa_arena *a, struct chunk_scratch *cs)
{
	struct upa_heap *h, *order[INFO_MAX_HEAPS];
	unsigned int n = 0, i, j;

	cs->nheaps = 0;
	cs->nchunks = 0;
	cs->heaps_truncated = false;
	for (h = a->heap; h; h = h->prev) {
		if (n == INFO_MAX_HEAPS) {
			cs->heaps_truncated = true;
			break;
		}
		order[n++] = h;
	}
	/* Address order: insertion sort, n is small and qsort may malloc. */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && order[j - 1] > order[j]; j--) {
			h = order[j];
			order[j] = order[j - 1];
			order[j - 1] = h;
		}
	for (i = 0; i < n; i++) {
		struct heap_rec *hr = &cs->heap[cs->nheaps++];
		char *end;
		struct upa_chunk *c;

		h = order[i];
		end = (char *)h + h->size;
		c = upa_heap_first_chunk(h);
		hr->start = (uintptr_t)c;
		hr->end = (uintptr_t)end;
		hr->first = cs->nchunks;
		hr->count = 0;
		hr->truncated = false;
		while ((char *)c < end) {
			struct upa_chunk *next;
			size_t size;
			enum chunk_state s;

			if (h == a->heap && c == a->top) {
				size = chunk_size(c);
				s = CS_TOP;
			} else if (h != a->heap && (char *)c == end - UPA_HEADER) {
				break;	/* end marker of an old heap */
			} else {
				size = chunk_size(c);
				if (size < UPA_HEADER || (char *)c + size > end)
					break;	/* corrupt: upa_heap_check says more */
				next = chunk_at(c, size);
				s = (char *)next < end && !chunk_prev_inuse(next)
					? CS_FREE : CS_INUSE;
			}
			if (cs->nchunks == INFO_MAX_CHUNKS) {
				hr->truncated = true;
				break;
			}
			cs->chunk[cs->nchunks].addr = (uintptr_t)c;
			cs->chunk[cs->nchunks].size_state = size | s;
			cs->nchunks++;
			hr->count++;
			if (s == CS_TOP)
				break;
			c = chunk_at(c, size);
		}
	}
	for (i = 0; i < UPA_NFASTBINS; i++) {
		struct upa_chunk *c;

		for (c = a->fastbins[i]; c;
		     c = fastbin_reveal(&c->fd, (uintptr_t)c->fd))
			mark_chunk(cs, c, CS_FAST);
	}
	{
		struct upa_chunk *head = upa_bin_at(a, UPA_UNSORTED), *c;

		for (c = head->fd; c != head; c = c->fd)
			mark_chunk(cs, c, CS_UNSORTED);
	}
	/*
	 * Only the calling thread's cache: it is ours to read without a lock.
	 * Chunks in other threads' caches are listed as in use, which is what
	 * they are to the arena.
	 */
	for (i = 0; i < tcache_bins_mapped(&upa_tc); i++) {
		struct upa_tcache_entry *e = *tcache_headp(&upa_tc, i);
		unsigned int k = 0;

		for (; e && k < tcache_count(&upa_tc, i);
		     e = tcache_reveal(&e->next, e->next), k++)
			mark_chunk(cs, mem_chunk(e), CS_TCACHE);
	}
}

static void print_chunks(FILE *fp, const struct chunk_scratch *cs)
{
	char line[160];
	unsigned int i;
	size_t k;

	for (i = 0; i < cs->nheaps; i++) {
		const struct heap_rec *hr = &cs->heap[i];

		upa_snprintf(line, sizeof(line),
			     "<chunks start=\"%#zx\" end=\"%#zx\"%s>\n",
			     (size_t)hr->start, (size_t)hr->end,
			     hr->truncated ? " truncated=\"1\"" : "");
		fputs(line, fp);
		for (k = hr->first; k < hr->first + hr->count; k++) {
			const struct chunk_rec *r = &cs->chunk[k];

			upa_snprintf(line, sizeof(line),
				     "  <chunk addr=\"%#zx\" size=\"%zu\" state=\"%s\"/>\n",
				     (size_t)r->addr,
				     r->size_state & ~(size_t)15,
				     chunk_state_name[r->size_state & 15]);
			fputs(line, fp);
		}
		fputs("</chunks>\n", fp);
	}
	if (cs->heaps_truncated)
		fputs("<chunks truncated=\"1\"/>\n", fp);
}

static size_t bin_low(unsigned int i)
{
	unsigned int k, sub;

	if (i < UPA_NSMALLBINS)
		return (size_t)i * 16;
	k = 10 + (i - 64) / UPA_LARGE_SUB;
	sub = (i - 64) % UPA_LARGE_SUB;
	return ((size_t)1 << k) +
	       (size_t)sub * ((size_t)1 << (k - UPA_LARGE_SUB_BITS));
}

static void info_arena(struct upa_arena *a, struct info_ctx *ctx)
{
	struct bin_sizes *bs = &ctx->bs;
	struct arena_totals t;
	char line[256];
	unsigned int i;

	memset(bs, 0, sizeof(*bs));
	upa_lock(&a->lock);
	arena_totals(a, &t);
	for (i = UPA_UNSORTED; i < UPA_NBINS; i++) {
		struct upa_chunk *head = upa_bin_at(a, i), *c;

		for (c = head->fd; c != head; c = c->fd) {
			bs->count[i]++;
			bs->total[i] += chunk_size(c);
		}
	}
	for (i = 0; i < UPA_NFASTBINS; i++) {
		struct upa_chunk *c;

		for (c = a->fastbins[i]; c;
		     c = fastbin_reveal(&c->fd, (uintptr_t)c->fd)) {
			bs->fast_count[i]++;
			bs->fast_total[i] += chunk_size(c);
		}
	}
	if (ctx->cs)
		collect_chunks(a, ctx->cs);
	upa_unlock(&a->lock);
	sum_arena(a, &t, &ctx->sum);

	/* No lock of ours is held from here: fputs may allocate. */
	upa_snprintf(line, sizeof(line), "<heap nr=\"%u\">\n<sizes>\n", a->index);
	fputs(line, ctx->fp);
	for (i = 0; i < UPA_NFASTBINS; i++) {
		if (!bs->fast_count[i])
			continue;
		upa_snprintf(line, sizeof(line),
			     "  <size from=\"%u\" to=\"%u\" total=\"%zu\" count=\"%zu\"/>\n",
			     (i + 2) * 16 - 15, (i + 2) * 16,
			     bs->fast_total[i], bs->fast_count[i]);
		fputs(line, ctx->fp);
	}
	for (i = UPA_UNSORTED + 1; i < UPA_NBINS; i++) {
		if (!bs->count[i])
			continue;
		upa_snprintf(line, sizeof(line),
			     "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
			     bin_low(i), i + 1 < UPA_NBINS ? bin_low(i + 1) - 1
							   : (size_t)-1,
			     bs->total[i], bs->count[i]);
		fputs(line, ctx->fp);
	}
	if (bs->count[UPA_UNSORTED]) {
		upa_snprintf(line, sizeof(line),
			     "  <unsorted from=\"0\" to=\"0\" total=\"%zu\" count=\"%zu\"/>\n",
			     bs->total[UPA_UNSORTED], bs->count[UPA_UNSORTED]);
		fputs(line, ctx->fp);
	}
	upa_snprintf(line, sizeof(line),
		     "</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		     "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		     "<total type=\"top\" count=\"%u\" size=\"%zu\"/>\n",
		     t.fast_chunks, t.fast_bytes, t.free_chunks, t.free_bytes,
		     t.top ? 1U : 0U, t.top);
	fputs(line, ctx->fp);
	upa_snprintf(line, sizeof(line),
		     "<system type=\"current\" size=\"%zu\"/>\n"
		     "<system type=\"max\" size=\"%zu\"/>\n"
		     "<aspace type=\"total\" size=\"%zu\"/>\n"
		     "<aspace type=\"mprotect\" size=\"%zu\"/>\n",
		     t.system, t.max_system, t.system, t.system);
	fputs(line, ctx->fp);
	if (ctx->cs)
		print_chunks(ctx->fp, ctx->cs);
	fputs("</heap>\n", ctx->fp);
}

UPA_API int upa_malloc_info(int options, FILE *fp)
{
	struct info_ctx *ctx, local;
	struct upa_arena *a;
	size_t mm, mmb, maxc, maxb;
	char line[512];

	if (options != 0 && options != UPA_MALLOC_INFO_CHUNKS) {
		errno = EINVAL;
		return -1;
	}
	upa_ensure_init();
	ctx = &local;
	memset(ctx, 0, sizeof(*ctx));
	ctx->fp = fp;
	if (options == UPA_MALLOC_INFO_CHUNKS) {
		void *p = mmap(NULL, INFO_SCRATCH_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			errno = ENOMEM;
			return -1;
		}
		ctx->cs = p;
	}
	fputs("<malloc version=\"1\">\n", fp);
	for (a = upa_arena_list; a;
	     a = __atomic_load_n(&a->next, __ATOMIC_ACQUIRE))
		if (!a->quarantined)
			info_arena(a, ctx);
	upa_region_counts(&mm, &mmb, &maxc, &maxb);
	upa_snprintf(line, sizeof(line),
		     "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		     "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		     "<total type=\"top\" size=\"%zu\"/>\n"
		     "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
		     "<system type=\"current\" size=\"%zu\"/>\n"
		     "<system type=\"max\" size=\"%zu\"/>\n"
		     "<aspace type=\"total\" size=\"%zu\"/>\n"
		     "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		     "<backend name=\"%s\"/>\n</malloc>\n",
		     ctx->sum.fast_chunks, ctx->sum.fast_bytes,
		     ctx->sum.free_chunks, ctx->sum.free_bytes, ctx->sum.top,
		     mm, mmb,
		     ctx->sum.system, ctx->sum.max_system, ctx->sum.system,
		     ctx->sum.system, upa_region_backend_name());
	fputs(line, fp);
	if (ctx->cs)
		munmap(ctx->cs, INFO_SCRATCH_BYTES);
	return 0;
}
