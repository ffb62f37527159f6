// SPDX-License-Identifier: MIT
/*
 * Description: the introspection API against a known workload: mallinfo2
 * and mallinfo, malloc_trim (the break moves down, free pages inside free
 * chunks are decommitted), the automatic trim above M_TRIM_THRESHOLD,
 * malloc_info's XML and malloc_stats' report.
 */
#include "upa_test.h"

UPA_FIXTURE(info)

TEST_F(info, mallinfo2_counts_known_workload)
{
	struct mallinfo2 m0, m1, m2;
	size_t sum = 0;
	void *p[10];
	int i;

	tcache_disable();
	m0 = mallinfo2();
	EXPECT_EQ(m0.arena, m0.uordblks + m0.fordblks);
	for (i = 0; i < 10; i++) {
		p[i] = malloc(1000);
		sum += chunk_size(p[i]);
	}
	m1 = mallinfo2();
	EXPECT_EQ(10 * 1008, sum);
	EXPECT_EQ(m0.uordblks + sum, m1.uordblks);
	EXPECT_EQ(m1.arena, m1.uordblks + m1.fordblks);
	EXPECT_EQ(m0.hblks, m1.hblks);
	for (i = 0; i < 10; i++)
		free(p[i]);
	m2 = mallinfo2();
	EXPECT_EQ(m0.uordblks, m2.uordblks);
	EXPECT_EQ(m2.arena, m2.uordblks + m2.fordblks);
	EXPECT_LE(m2.keepcost, m2.fordblks);
}

TEST_F(info, mallinfo2_counts_mmapped_chunks)
{
	struct mallinfo2 m0, m1, m2;
	void *p = NULL;

	m0 = mallinfo2();
	p = malloc(3 << 20);
	m1 = mallinfo2();
	ASSERT_TRUE(chunk_is_mmapped(p));
	EXPECT_EQ(m0.hblks + 1, m1.hblks);
	EXPECT_EQ(m0.hblkhd + chunk_size(p), m1.hblkhd);
	EXPECT_EQ(m0.arena, m1.arena);
	free(p);
	m2 = mallinfo2();
	EXPECT_EQ(m0.hblks, m2.hblks);
	EXPECT_EQ(m0.hblkhd, m2.hblkhd);
}

TEST_F(info, mallinfo2_counts_fastbin_chunks)
{
	struct mallinfo2 m0, m1;
	void *a, *b, *guard;

	tcache_disable();
	a = malloc(40);
	b = malloc(40);
	guard = malloc(40);
	m0 = mallinfo2();
	free(a);
	free(b);
	m1 = mallinfo2();
	EXPECT_EQ(m0.smblks + 2, m1.smblks);
	EXPECT_EQ(m0.fsmblks + 96, m1.fsmblks);
	EXPECT_EQ(m0.uordblks - 96, m1.uordblks);
	free(guard);
}

TEST_F(info, mallinfo_matches_mallinfo2)
{
	struct mallinfo2 m2;
	struct mallinfo m;
	void *p = malloc(12345), *q = malloc(1 << 20);

	m2 = mallinfo2();
	m = mallinfo();
	EXPECT_EQ((int)m2.arena, m.arena);
	EXPECT_EQ((int)m2.ordblks, m.ordblks);
	EXPECT_EQ((int)m2.smblks, m.smblks);
	EXPECT_EQ((int)m2.hblks, m.hblks);
	EXPECT_EQ((int)m2.hblkhd, m.hblkhd);
	EXPECT_EQ((int)m2.fsmblks, m.fsmblks);
	EXPECT_EQ((int)m2.uordblks, m.uordblks);
	EXPECT_EQ((int)m2.fordblks, m.fordblks);
	EXPECT_EQ((int)m2.keepcost, m.keepcost);
	free(p);
	free(q);
}

TEST_F(info, mallinfo2_agrees_with_lib_stats)
{
	struct upa_lib_stats st;
	struct mallinfo2 mi;
	void *p = malloc(1 << 20), *q = malloc(5 << 20);

	mi = mallinfo2();
	STATS(st);
	EXPECT_EQ(st.mmapped_chunks, mi.hblks);
	EXPECT_EQ(st.bytes_mmapped_chunks, mi.hblkhd);
	EXPECT_EQ(st.bytes_mapped, mi.arena + mi.hblkhd);
	free(p);
	free(q);
}

TEST_F(info, malloc_trim_moves_break_down)
{
	struct upa_lib_stats before, after;
	struct mallinfo2 m0, m1;
	void *p[128];
	int i;

	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 256 << 20));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 1 << 20));
	for (i = 0; i < 128; i++) {
		p[i] = malloc(64 << 10);
		ASSERT_FALSE(chunk_is_mmapped(p[i]));
		memset(p[i], 1, 64 << 10);
	}
	for (i = 127; i >= 0; i--)
		free(p[i]);
	STATS(before);
	m0 = mallinfo2();
	EXPECT_EQ(1, malloc_trim(0));
	STATS(after);
	m1 = mallinfo2();
	EXPECT_EQ(before.heap_trims + 1, after.heap_trims);
	EXPECT_LE(7 << 20, before.bytes_mapped - after.bytes_mapped);
	EXPECT_LE(7 << 20, m0.arena - m1.arena);
	EXPECT_GT(before.bytes_top, after.bytes_top);
	/* nothing left to give back */
	EXPECT_EQ(0, malloc_trim(0));
}

TEST_F(info, malloc_trim_keeps_pad_bytes)
{
	struct upa_lib_stats after;
	void *p;

	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 256 << 20));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 8 << 20));
	p = malloc(4 << 20);
	memset(p, 1, 4 << 20);
	free(p);
	malloc_trim(1 << 20);
	STATS(after);
	EXPECT_LE(1 << 20, after.bytes_top);
	EXPECT_GT(3 << 20, after.bytes_top);
}

TEST_F(info, malloc_trim_decommits_pages_inside_free_chunks)
{
	struct upa_lib_stats before, after;
	void *a, *guard, *again;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 4 << 20));
	a = malloc(1 << 20);
	guard = malloc(100);	/* keeps a away from the top */
	memset(a, 0x11, 1 << 20);
	free(a);
	STATS(before);
	EXPECT_EQ(1, malloc_trim(0));
	STATS(after);
	EXPECT_LT(before.decommits, after.decommits);
	/* all but the pages holding the chunk's header and list links */
	EXPECT_LE((1 << 20) - 3 * 4096,
		  after.bytes_decommitted - before.bytes_decommitted);
	/* the decommitted chunk is still a valid free chunk */
	again = malloc(1 << 20);
	EXPECT_EQ(a, again);
	memset(again, 0x22, 1 << 20);
	free(again);
	free(guard);
}

TEST_F(info, free_trims_top_above_trim_threshold)
{
	struct upa_lib_stats before, after;
	void *p;

	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 256 << 10));
	ASSERT_EQ(1, mallopt(M_TOP_PAD, 0));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 8 << 20));
	p = malloc(4 << 20);
	memset(p, 1, 4 << 20);
	STATS(before);
	free(p);
	STATS(after);
	EXPECT_EQ(before.heap_trims + 1, after.heap_trims);
	EXPECT_LE(3 << 20, before.bytes_mapped - after.bytes_mapped);
	EXPECT_GE(256 << 10, after.bytes_top);
}

TEST_F(info, automatic_trims_back_off_when_the_heap_grows_again)
{
	struct upa_lib_stats before, after;
	void *q[3];
	int round, i, trims;

	/* the dynamic thresholds rise to ~1 MiB (trim threshold ~2 MiB) */
	free(malloc(1 << 20));
	STATS(before);
	for (round = 0; round < 40; round++) {
		for (i = 0; i < 3; i++) {
			q[i] = malloc(900 << 10);
			ASSERT_FALSE(chunk_is_mmapped(q[i]));
			memset(q[i], 1, 900 << 10);
		}
		for (i = 2; i >= 0; i--)
			free(q[i]);
	}
	STATS(after);
	trims = (int)(after.heap_trims - before.heap_trims);
	/* every round frees enough to trim and grows it back: most pass */
	EXPECT_LT(0, trims);
	EXPECT_GT(12, trims) TH_LOG("%d trims in 40 rounds", trims);
	/* a trim keeps one such block in the top */
	EXPECT_LE(900 << 10, after.bytes_top);
}

TEST_F(info, heap_growth_for_a_large_block_empties_a_full_thread_cache)
{
	struct upa_lib_stats before, after;
	static void *p[64][32];
	void *a, *b;
	int i, j;

	ASSERT_EQ(1, mallopt(M_TOP_PAD, 0));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 4 << 20));
	/* ~1.1 MB of small blocks, then all of them in the thread cache */
	for (i = 0; i < 64; i++)
		for (j = 0; j < 32; j++)
			p[i][j] = malloc((size_t)(i + 2) * 16 - 8);
	for (i = 0; i < 64; i++)
		for (j = 0; j < 32; j++)
			free(p[i][j]);
	/* the heap grows for a large block: the cache gives them back */
	a = malloc(200 << 10);
	ASSERT_NE(NULL, a);
	STATS(before);
	/* they coalesced below a: room for a block that size, no growth */
	b = malloc(500 << 10);
	STATS(after);
	ASSERT_NE(NULL, b);
	EXPECT_EQ(before.heap_grows, after.heap_grows);
	EXPECT_GT((uintptr_t)a, (uintptr_t)b);
	EXPECT_EQ(0, upa_heap_check());
	free(b);
	free(a);
}

TEST_F(info, free_does_not_trim_below_trim_threshold)
{
	struct upa_lib_stats before, after;
	void *p;

	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 64 << 20));
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 8 << 20));
	p = malloc(4 << 20);
	STATS(before);
	free(p);
	STATS(after);
	EXPECT_EQ(before.heap_trims, after.heap_trims);
	EXPECT_EQ(before.bytes_mapped, after.bytes_mapped);
}

/*
 * A small XML checker: every tag is closed in order, attributes are
 * quoted, and the document is one <malloc> element.
 */
static const char *xml_check(const char *s, int *heaps)
{
	char stack[32][32];
	int depth = 0, root_seen = 0;

	*heaps = 0;
	while (*s) {
		const char *lt = strchr(s, '<'), *gt;
		char name[32];
		size_t nlen;
		bool closing, empty;

		if (!lt) {
			while (*s == ' ' || *s == '\n' || *s == '\t')
				s++;
			return *s ? "text after the root element" : NULL;
		}
		if (depth == 0 && root_seen)
			return "more than one root element";
		gt = strchr(lt, '>');
		if (!gt)
			return "unterminated tag";
		if (lt[1] == '?') {	/* an optional <?xml ...?> prolog */
			s = gt + 1;
			continue;
		}
		closing = lt[1] == '/';
		empty = gt[-1] == '/';
		nlen = strcspn(lt + 1 + closing, " />");
		if (nlen == 0 || nlen >= sizeof(name))
			return "bad tag name";
		memcpy(name, lt + 1 + closing, nlen);
		name[nlen] = '\0';
		{	/* attributes: name="value" pairs */
			const char *a = lt + 1 + closing + nlen;

			while (a < gt) {
				const char *eq, *q2;

				while (a < gt && (*a == ' ' || *a == '/'))
					a++;
				if (a >= gt)
					break;
				eq = memchr(a, '=', gt - a);
				if (!eq || eq[1] != '"')
					return "attribute without quoted value";
				q2 = memchr(eq + 2, '"', gt - (eq + 2));
				if (!q2)
					return "unterminated attribute value";
				a = q2 + 1;
			}
		}
		if (closing) {
			if (depth == 0 || strcmp(stack[depth - 1], name))
				return "mismatched closing tag";
			depth--;
		} else {
			if (depth == 0) {
				if (strcmp(name, "malloc"))
					return "root element is not <malloc>";
				root_seen = 1;
			}
			if (!strcmp(name, "heap"))
				(*heaps)++;
			if (!empty) {
				if (depth == 32)
					return "nesting too deep";
				strcpy(stack[depth++], name);
			}
		}
		s = gt + 1;
	}
	if (depth)
		return "unclosed element";
	return root_seen ? NULL : "no <malloc> element";
}

TEST_F(info, xml_checker_rejects_broken_documents)
{
	int heaps;

	EXPECT_EQ(NULL, xml_check("<malloc version=\"1\"><heap nr=\"0\"/></malloc>\n",
				  &heaps));
	EXPECT_EQ(1, heaps);
	EXPECT_NE(NULL, xml_check("<malloc><heap></malloc>", &heaps));
	EXPECT_NE(NULL, xml_check("<malloc><a x=1/></malloc>", &heaps));
	EXPECT_NE(NULL, xml_check("<heap/>", &heaps));
	EXPECT_NE(NULL, xml_check("<malloc></malloc><malloc></malloc>", &heaps));
}

TEST_F(info, malloc_info_writes_well_formed_xml)
{
	static char buf[1 << 16];
	const char *err;
	void *p = malloc(100), *q = malloc(1 << 20);
	FILE *f = tmpfile();
	int heaps;
	size_t n;

	ASSERT_NE(NULL, f);
	ASSERT_EQ(0, malloc_info(0, f));
	fflush(f);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ASSERT_LT(0, n);
	err = xml_check(buf, &heaps);
	EXPECT_EQ(NULL, err) TH_LOG("%s in:\n%s", err, buf);
	EXPECT_LE(1, heaps) TH_LOG("no <heap> element in:\n%s", buf);
	EXPECT_EQ(0, strncmp(buf, "<malloc version=\"", 17)) TH_LOG("%s", buf);
	free(p);
	free(q);
}

static void *alloc_in_own_arena(void *arg)
{
	pthread_barrier_t *all_started = arg;
	void *p;

	pthread_barrier_wait(all_started);	/* all alive: one arena each */
	p = malloc(5000);
	pthread_barrier_wait(all_started);
	free(p);
	return NULL;
}

TEST_F(info, malloc_info_lists_every_arena)
{
	static char buf[1 << 17];
	struct upa_lib_stats st;
	pthread_barrier_t barrier;
	pthread_t t[3];
	const char *err;
	FILE *f = tmpfile();
	int i, heaps;
	size_t n;

	pthread_barrier_init(&barrier, NULL, 3);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, alloc_in_own_arena,
					    &barrier));
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	STATS(st);
	ASSERT_LE(2, st.arenas);
	ASSERT_EQ(0, malloc_info(0, f));
	fflush(f);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	err = xml_check(buf, &heaps);
	EXPECT_EQ(NULL, err) TH_LOG("%s in:\n%s", err, buf);
	EXPECT_EQ(st.arenas, heaps) TH_LOG("%s", buf);
}

TEST_F(info, malloc_info_rejects_options)
{
	FILE *f = tmpfile();

	errno = 0;
	EXPECT_EQ(-1, malloc_info(2, f));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, malloc_info(-1, f));
	EXPECT_EQ(EINVAL, errno);
	fclose(f);
}

/*
 * malloc_info(opts) into buf (NUL-terminated) through f, which the caller
 * opened before its workload (tmpfile() allocates, and would reuse the
 * chunks under test); returns malloc_info's result.
 */
static int capture_malloc_info(FILE *f, int opts, char *buf, size_t cap)
{
	size_t n;
	int rc;

	if (!f)
		return -2;
	rc = malloc_info(opts, f);
	fflush(f);
	rewind(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return rc;
}

TEST_F(info, malloc_info_without_chunks_option_lists_no_chunks)
{
	static char buf[1 << 16];

	ASSERT_EQ(0, capture_malloc_info(tmpfile(), 0, buf, sizeof(buf)));
	EXPECT_EQ(NULL, strstr(buf, "<chunks")) TH_LOG("%s", buf);
	EXPECT_EQ(NULL, strstr(buf, "<chunk ")) TH_LOG("%s", buf);
}

struct listed_chunk {
	uintptr_t addr;
	size_t size;
	char state[12];
};

/* The state malloc_info listed for the chunk of user pointer p, or "". */
static const char *listed_state(const struct listed_chunk *c, size_t n,
				const void *p)
{
	uintptr_t addr = (uintptr_t)p - 2 * sizeof(size_t);
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i].addr == addr)
			return c[i].state;
	return "";
}

TEST_F(info, malloc_info_chunk_list_covers_heap_exactly)
{
	static char buf[1 << 22];
	static struct listed_chunk chunks[1 << 15];
	void *used[8], *small[4], *big[2], *guard[2], *later;
	size_t nchunks = 0, regions = 0, tops = 0, heaps = 0;
	const char *err, *h, *r;
	static char fbuf[1 << 12];
	FILE *f = tmpfile();
	int i;

	ASSERT_NE(NULL, f);
	setvbuf(f, fbuf, _IOFBF, sizeof(fbuf));	/* no buffer malloc later */
	/*
	 * A workload with one chunk in each state, all carved from the top
	 * first so that no request is served from a freed chunk: two small
	 * frees fill the thread cache (2 per bin), the third overflows it and
	 * goes to a fast bin with half of the bin (the second); a big free
	 * goes to the unsorted list, and a later large request sorts it into
	 * a bin (plain free) before a second big free lands in unsorted.
	 */
	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 2));
	for (i = 0; i < 8; i++)
		used[i] = malloc(300);
	for (i = 0; i < 4; i++)
		small[i] = malloc(40);
	for (i = 0; i < 2; i++) {
		big[i] = malloc(5000);	/* above the thread cache */
		guard[i] = malloc(300);
	}
	free(big[0]);
	later = malloc(7000);		/* sorts big[0] out of unsorted */
	free(big[1]);
	free(small[0]);
	free(small[1]);
	free(small[2]);

	ASSERT_EQ(0, capture_malloc_info(f, UPA_MALLOC_INFO_CHUNKS, buf,
					 sizeof(buf)));
	ASSERT_LT(strlen(buf), sizeof(buf) - 1) TH_LOG("output too long");
	err = xml_check(buf, &i);
	EXPECT_EQ(NULL, err) TH_LOG("%s in:\n%s", err, buf);

	for (h = strstr(buf, "<heap nr="); h; h = strstr(h + 1, "<heap nr=")) {
		const char *heap_end = strstr(h, "</heap>");
		size_t heap_tops = 0;

		ASSERT_NE(NULL, heap_end);
		heaps++;
		for (r = strstr(h, "<chunks start="); r && r < heap_end;
		     r = strstr(r + 1, "<chunks start=")) {
			unsigned long start, end, expect;
			const char *c, *close = strstr(r, "</chunks>");

			ASSERT_NE(NULL, close);
			ASSERT_EQ(2, sscanf(r, "<chunks start=\"%lx\" end=\"%lx\"",
					    &start, &end));
			EXPECT_EQ(NULL, strstr(r, "truncated"));
			regions++;
			expect = start;
			for (c = strstr(r, "<chunk addr="); c && c < close;
			     c = strstr(c + 1, "<chunk addr=")) {
				struct listed_chunk *lc = &chunks[nchunks];

				ASSERT_LT(nchunks, sizeof(chunks) / sizeof(chunks[0]));
				ASSERT_EQ(3, sscanf(c, "<chunk addr=\"%lx\" size=\"%zu\" state=\"%11[a-z]\"",
						    &lc->addr, &lc->size,
						    lc->state));
				/* Contiguous: each chunk starts where the last ended. */
				EXPECT_EQ(expect, lc->addr);
				EXPECT_LE(MIN_CHUNK, lc->size);
				expect = lc->addr + lc->size;
				if (!strcmp(lc->state, "top"))
					heap_tops++;
				nchunks++;
			}
			/*
			 * The chunks tile the region up to its break (or, in an
			 * older heap, up to its end marker and fence).
			 */
			EXPECT_LE(expect, end);
			EXPECT_GT(expect + 64, end);
			r = close;
		}
		EXPECT_EQ(1, heap_tops) TH_LOG("heap %zu has %zu top chunks",
					       heaps, heap_tops);
		tops += heap_tops;
		h = heap_end;
	}
	EXPECT_LE(1, heaps);
	EXPECT_LE(1, regions);
	EXPECT_EQ(heaps, tops);

	for (i = 0; i < 8; i++)
		EXPECT_STREQ("inuse", listed_state(chunks, nchunks, used[i]));
	EXPECT_STREQ("inuse", listed_state(chunks, nchunks, guard[0]));
	EXPECT_STREQ("inuse", listed_state(chunks, nchunks, later));
	EXPECT_STREQ("free", listed_state(chunks, nchunks, big[0]));
	EXPECT_STREQ("unsorted", listed_state(chunks, nchunks, big[1]));
	EXPECT_STREQ("tcache", listed_state(chunks, nchunks, small[0]));
	EXPECT_STREQ("fast", listed_state(chunks, nchunks, small[1]));
	EXPECT_STREQ("fast", listed_state(chunks, nchunks, small[2]));
	EXPECT_STREQ("inuse", listed_state(chunks, nchunks, small[3]));

	for (i = 0; i < 8; i++)
		free(used[i]);
	free(guard[0]);
	free(guard[1]);
	free(later);
	free(small[3]);
}

/* Run malloc_stats() with stderr redirected; the report is in buf. */
static void capture_malloc_stats(char *buf, size_t cap)
{
	int fd = memfd_create("stats", 0), saved = dup(2);

	fflush(stderr);
	dup2(fd, 2);
	malloc_stats();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	read_all_fd(fd, buf, cap);
	close(fd);
}

/* The number after the first occurrence of label in text, or -1. */
static long long number_after(const char *text, const char *label)
{
	const char *s = strstr(text, label);

	if (!s)
		return -1;
	s += strlen(label);
	while (*s && (*s < '0' || *s > '9'))
		s++;
	return *s ? strtoll(s, NULL, 10) : -1;
}

TEST_F(info, malloc_stats_reports_arena_totals)
{
	static char buf[1 << 16];
	struct mallinfo2 mi;
	void *p = malloc(3000), *q = malloc(2 << 20);

	mi = mallinfo2();
	capture_malloc_stats(buf, sizeof(buf));
	EXPECT_NE(NULL, strstr(buf, "Arena 0:")) TH_LOG("%s", buf);
	/* arena 0 is the main arena: its numbers are mallinfo2's */
	EXPECT_EQ((long long)mi.arena, number_after(buf, "system bytes"))
		TH_LOG("%s", buf);
	EXPECT_EQ((long long)mi.uordblks, number_after(buf, "in use bytes"))
		TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "Total (incl. mmap):")) TH_LOG("%s", buf);
	free(p);
	free(q);
}

struct cancel_probe {
	pthread_barrier_t gate;
	int fd;
	bool stats_returned;
};

static void *stats_with_cancel_pending(void *arg)
{
	struct cancel_probe *pr = arg;

	/* released with a cancellation already pending (deferred) */
	pthread_barrier_wait(&pr->gate);
	malloc_stats();
	pr->stats_returned = true;
	pthread_testcancel();
	return NULL;
}

/*
 * glibc's malloc_stats is not a cancellation point (its
 * tst-malloc-stats-cancellation): a pending cancellation must not cut the
 * report short nor unwind the thread out of the allocator; the thread is
 * cancelled at its next real cancellation point instead.
 */
TEST_F(info, malloc_stats_is_not_a_cancellation_point)
{
	static char buf[1 << 16];
	struct cancel_probe pr = { .stats_returned = false };
	int saved = dup(2);
	pthread_t t;
	void *rv = NULL;

	pr.fd = memfd_create("stats", 0);
	ASSERT_LE(0, pr.fd);
	ASSERT_EQ(0, pthread_barrier_init(&pr.gate, NULL, 2));
	fflush(stderr);
	dup2(pr.fd, 2);
	ASSERT_EQ(0, pthread_create(&t, NULL, stats_with_cancel_pending, &pr));
	ASSERT_EQ(0, pthread_cancel(t));
	pthread_barrier_wait(&pr.gate);
	ASSERT_EQ(0, pthread_join(t, &rv));
	dup2(saved, 2);
	close(saved);
	read_all_fd(pr.fd, buf, sizeof(buf));
	close(pr.fd);
	EXPECT_EQ(PTHREAD_CANCELED, rv);
	EXPECT_TRUE(pr.stats_returned);
	EXPECT_NE(NULL, strstr(buf, "max mmap bytes")) TH_LOG("%s", buf);
}

TEST_F(info, malloc_stats_reports_page_source)
{
	static char buf[1 << 16];
	struct upalloc_proc_stats ps;
	void *p = malloc(3 << 20);

	memset(p, 1, 3 << 20);
	capture_malloc_stats(buf, sizeof(buf));
	if (!backend_is_device()) {
		EXPECT_NE(NULL, strstr(buf, "backend: mmap")) TH_LOG("%s", buf);
		free(p);
		return;
	}
	/* the device's per-process counters, as the module reports them */
	ASSERT_EQ(0, dev_proc_stats(&ps));
	EXPECT_NE(NULL, strstr(buf, "backend: device")) TH_LOG("%s", buf);
	EXPECT_EQ((long long)ps.regions_live, number_after(buf, "regions live"))
		TH_LOG("%s", buf);
	EXPECT_LE(768, number_after(buf, "pages live")) TH_LOG("%s", buf);
	free(p);
}

TEST_HARNESS_MAIN
