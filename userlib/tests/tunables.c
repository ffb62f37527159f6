// SPDX-License-Identifier: MIT
/*
 * Description: every mallopt() parameter changes the behaviour it names,
 * and so does the matching UPALLOC_<NAME> environment variable (checked in
 * a freshly exec'd upa-probe, since the environment is read once at start).
 * Each environment test compares against a run without the variable, so a
 * variable that is ignored fails the test.
 */
#include "upa_test.h"

UPA_FIXTURE(tunables)

/* ---- M_MXFAST ---- */

TEST_F(tunables, mallopt_mxfast_zero_disables_fastbins)
{
	struct upa_lib_stats before, after;
	void *a, *guard;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_MXFAST, 0));
	a = malloc(40);
	guard = malloc(40);
	free(a);
	STATS(before);
	EXPECT_EQ(a, malloc(40));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits, after.fastbin_hits);
	free(a);
	free(guard);
}

TEST_F(tunables, mallopt_mxfast_raises_fast_limit)
{
	struct upa_lib_stats before, after;
	void *a, *guard;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_MXFAST, 160));
	a = malloc(150);	/* 160-byte chunk: fast only after the change */
	guard = malloc(40);
	free(a);
	STATS(before);
	EXPECT_EQ(a, malloc(150));
	STATS(after);
	EXPECT_EQ(before.fastbin_hits + 1, after.fastbin_hits);
	free(a);
	free(guard);
}

TEST_F(tunables, mallopt_mxfast_above_maximum_is_refused)
{
	EXPECT_EQ(0, mallopt(M_MXFAST, 161));
	EXPECT_EQ(0, mallopt(M_MXFAST, -1));
}

static const char *const fast_probe[] = {
	"malloc", "40", "malloc", "40", "free", "0", "stats", "malloc", "40",
	"stats", NULL
};

TEST_F(tunables, env_mxfast_is_read_at_start)
{
	const char *const with[] = { "UPALLOC_TCACHE_COUNT=0",
				     "UPALLOC_MXFAST=0", NULL };
	const char *const without[] = { "UPALLOC_TCACHE_COUNT=0", NULL };
	struct probe_result r;
	char *first;
	long long hits_before;

	/* fastbin_hits printed twice: before and after the second malloc */
	ASSERT_EQ(0, run_probe(&r, without, fast_probe));
	PROBE_OK(r);
	first = strstr(r.out, "fastbin_hits=");
	ASSERT_NE(NULL, first);
	hits_before = strtoll(first + 13, NULL, 10);
	EXPECT_EQ(hits_before + 1, probe_value(&r, "fastbin_hits"));

	ASSERT_EQ(0, run_probe(&r, with, fast_probe));
	PROBE_OK(r);
	first = strstr(r.out, "fastbin_hits=");
	ASSERT_NE(NULL, first);
	hits_before = strtoll(first + 13, NULL, 10);
	EXPECT_EQ(hits_before, probe_value(&r, "fastbin_hits"));
}

/* ---- M_TRIM_THRESHOLD ---- */

static const char *const trim_probe[] = {
	"mallopt", "-3" /* M_MMAP_THRESHOLD */, "16777216",
	"malloc", "4194304", "stats", "free", "0", "stats", NULL
};

TEST_F(tunables, env_trim_threshold_controls_automatic_trim)
{
	const char *const low[] = { "UPALLOC_TRIM_THRESHOLD=131072", NULL };
	const char *const high[] = { "UPALLOC_TRIM_THRESHOLD=268435456", NULL };
	struct probe_result r;
	char *first;
	long long trims;

	ASSERT_EQ(-3, M_MMAP_THRESHOLD);
	ASSERT_EQ(0, run_probe(&r, low, trim_probe));
	PROBE_OK(r);
	first = strstr(r.out, "heap_trims=");
	ASSERT_NE(NULL, first);
	trims = strtoll(first + 11, NULL, 10);
	EXPECT_EQ(trims + 1, probe_value(&r, "heap_trims")) TH_LOG("%s", r.out);

	ASSERT_EQ(0, run_probe(&r, high, trim_probe));
	PROBE_OK(r);
	first = strstr(r.out, "heap_trims=");
	trims = strtoll(first + 11, NULL, 10);
	EXPECT_EQ(trims, probe_value(&r, "heap_trims")) TH_LOG("%s", r.out);
}

/* mallopt(M_TRIM_THRESHOLD) itself: see info.c free_trims_top_* tests. */

/* ---- M_TOP_PAD ---- */

/* Allocate 32 KiB pieces until the heap grows; returns the top after it. */
static size_t top_after_growth(struct __test_metadata *_metadata)
{
	struct upa_lib_stats before, now;
	int i;

	ASSERT_EQ(0, stats_read(&before));
	for (i = 0; i < 4096; i++) {
		void *p = malloc(32 << 10);

		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, stats_read(&now));
		if (now.heap_grows > before.heap_grows)
			return now.bytes_top;
	}
	return 0;
}

TEST_F(tunables, mallopt_top_pad_grows_heap_by_pad)
{
	size_t top;

	ASSERT_EQ(1, mallopt(M_TOP_PAD, 8 << 20));
	top = top_after_growth(_metadata);
	EXPECT_LE(8 << 20, top);
}

TEST_F(tunables, env_top_pad_grows_heap_by_pad)
{
	const char *const env[] = { "UPALLOC_TOP_PAD=16777216", NULL };
	/*
	 * 30 MB in the heap: more than the first heap holds with either pad,
	 * so the break moves up after the request and leaves the pad on top.
	 */
	const char *const argv[] = { "mallopt", "-3", "33554432",
				     "malloc", "30000000", "stats", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	/* any growth leaves at least the pad in the top */
	EXPECT_LE(16 << 20, probe_value(&r, "bytes_top")) TH_LOG("%s", r.out);
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_GT(16 << 20, probe_value(&r, "bytes_top")) TH_LOG("%s", r.out);
}

/* ---- M_MMAP_THRESHOLD ---- */

TEST_F(tunables, mallopt_mmap_threshold_sets_threshold)
{
	void *below, *above;

	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 64 << 10));
	below = malloc(60 << 10);
	above = malloc(70 << 10);
	EXPECT_FALSE(chunk_is_mmapped(below));
	EXPECT_TRUE(chunk_is_mmapped(above));
	free(below);
	free(above);
}

TEST_F(tunables, mallopt_mmap_threshold_above_32_mib_is_refused)
{
	EXPECT_EQ(0, mallopt(M_MMAP_THRESHOLD, 64 << 20));
	EXPECT_EQ(1, mallopt(M_MMAP_THRESHOLD, 32 << 20));
}

TEST_F(tunables, env_mmap_threshold_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_MMAP_THRESHOLD=65536", NULL };
	const char *const argv[] = { "malloc", "70000", "chunk", "0", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(1, probe_value(&r, "mmapped"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "mmapped"));
}

/* ---- M_MMAP_MAX ---- */

TEST_F(tunables, mallopt_mmap_max_zero_disables_mmapped_chunks)
{
	void *p;

	ASSERT_EQ(1, mallopt(M_MMAP_MAX, 0));
	p = malloc(4 << 20);
	ASSERT_NE(NULL, p);
	EXPECT_FALSE(chunk_is_mmapped(p));
	free(p);
}

TEST_F(tunables, mallopt_mmap_max_limits_mmapped_chunk_count)
{
	struct upa_lib_stats st;
	void *a, *b, *c;

	STATS(st);
	ASSERT_EQ(1, mallopt(M_MMAP_MAX, st.mmapped_chunks + 2));
	a = malloc(1 << 20);
	b = malloc(1 << 20);
	c = malloc(1 << 20);
	EXPECT_TRUE(chunk_is_mmapped(a));
	EXPECT_TRUE(chunk_is_mmapped(b));
	EXPECT_FALSE(chunk_is_mmapped(c));
	free(a);
	free(b);
	free(c);
}

TEST_F(tunables, env_mmap_max_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_MMAP_MAX=0", NULL };
	const char *const argv[] = { "malloc", "4194304", "chunk", "0", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "mmapped"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(1, probe_value(&r, "mmapped"));
}

/* ---- M_ARENA_MAX / M_ARENA_TEST ---- */

static void *alloc_and_wait(void *arg)
{
	void **slot = arg;

	*slot = malloc(200);
	return NULL;
}

TEST_F(tunables, mallopt_arena_max_one_keeps_threads_on_main_arena)
{
	struct upa_lib_stats st;
	pthread_t t[8];
	void *p[8];
	int i;

	ASSERT_EQ(1, mallopt(M_ARENA_MAX, 1));
	for (i = 0; i < 8; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, alloc_and_wait, &p[i]));
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	STATS(st);
	EXPECT_EQ(1, st.arenas);
	for (i = 0; i < 8; i++) {
		EXPECT_FALSE(chunk_is_non_main(p[i]));
		free(p[i]);
	}
}

TEST_F(tunables, env_arena_max_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_ARENA_MAX=1", NULL };
	const char *const argv[] = { "threads", "8", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(1, probe_value(&r, "arenas"));
	EXPECT_EQ(0, probe_value(&r, "non_main_chunks"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_LT(1, probe_value(&r, "arenas"));
	EXPECT_LT(0, probe_value(&r, "non_main_chunks"));
}

TEST_F(tunables, mallopt_arena_test_is_accepted)
{
	EXPECT_EQ(1, mallopt(M_ARENA_TEST, 2));
}

TEST_F(tunables, env_arena_test_is_accepted)
{
	const char *const env[] = { "UPALLOC_ARENA_TEST=2", NULL };
	const char *const argv[] = { "threads", "4", "check", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "heap_check"));
	EXPECT_EQ(NULL, strstr(r.err, "upalloc")) TH_LOG("%s", r.err);
}

/* ---- M_PERTURB ---- */

TEST_F(tunables, mallopt_perturb_fills_allocated_and_freed_memory)
{
	unsigned char *p, *guard;
	size_t i;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_PERTURB, 0x5a));
	p = malloc(300);
	guard = malloc(24);
	for (i = 0; i < 300; i++)
		ASSERT_EQ(0x5a ^ 0xff, p[i]) TH_LOG("byte %zu", i);
	free(p);
	/* past the free-list links, the freed chunk holds the perturb byte */
	for (i = 32; i < 300; i++)
		ASSERT_EQ(0x5a, p[i]) TH_LOG("byte %zu", i);
	free(guard);
}

TEST_F(tunables, env_perturb_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_PERTURB=0x5a", NULL };
	const char *const argv[] = { "malloc", "300", "byte", "0", "200", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0x5a ^ 0xff, probe_value(&r, "byte")) TH_LOG("%s", r.out);
}

/* ---- M_CHECK_ACTION ---- */

TEST_F(tunables, mallopt_check_action_is_accepted)
{
	EXPECT_EQ(1, mallopt(M_CHECK_ACTION, 3));
}

TEST_F(tunables, env_check_action_is_accepted)
{
	const char *const env[] = { "UPALLOC_CHECK_ACTION=3", NULL };
	const char *const argv[] = { "malloc", "10", "check", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "heap_check"));
	EXPECT_EQ(NULL, strstr(r.err, "upalloc")) TH_LOG("%s", r.err);
}

/* ---- thread cache ---- */

TEST_F(tunables, tcache_count_zero_disables_thread_cache)
{
	struct upa_lib_stats before, after;
	void *p = malloc(56), *guard = malloc(56);

	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 0));
	free(p);
	STATS(before);
	EXPECT_EQ(p, malloc(56));
	STATS(after);
	EXPECT_EQ(before.tcache_hits, after.tcache_hits);
	free(p);
	free(guard);
}

TEST_F(tunables, tcache_count_limits_cached_chunks_per_size)
{
	struct upa_lib_stats before, after;
	void *p[6], *q[5];
	int i;

	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 4));
	for (i = 0; i < 6; i++)
		p[i] = malloc(104);
	for (i = 0; i < 4; i++)
		free(p[i]);	/* 4 cached: the limit */
	STATS(before);
	for (i = 0; i < 4; i++)
		q[i] = malloc(104);
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 4, after.tcache_hits);
	EXPECT_EQ(before.fastbin_hits, after.fastbin_hits);
	/* the cache is empty now: the fifth comes from the arena */
	q[4] = malloc(104);
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 4, after.tcache_hits);
	for (i = 0; i < 5; i++)
		free(q[i]);
	/*
	 * 5 frees: 4 fill the bin, the fifth overflows it and takes half of
	 * the bin (2) along to the fast bin: 2 left cached.
	 */
	STATS(before);
	for (i = 0; i < 3; i++)
		q[i] = malloc(104);
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 2, after.tcache_hits);
	EXPECT_EQ(before.fastbin_hits + 1, after.fastbin_hits);
	for (i = 0; i < 3; i++)
		free(q[i]);
	free(p[4]);
	free(p[5]);
}

TEST_F(tunables, tcache_max_limits_cached_sizes)
{
	struct upa_lib_stats before, after;
	void *small = malloc(40), *big = malloc(100), *guard = malloc(40);

	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_MAX, 64));
	free(small);
	free(big);
	STATS(before);
	EXPECT_EQ(big, malloc(100));
	STATS(after);
	EXPECT_EQ(before.tcache_hits, after.tcache_hits);
	EXPECT_EQ(small, malloc(40));
	STATS(after);
	EXPECT_EQ(before.tcache_hits + 1, after.tcache_hits);
	free(small);
	free(big);
	free(guard);
}

TEST_F(tunables, env_tcache_count_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_TCACHE_COUNT=0", NULL };
	const char *const argv[] = { "malloc", "56", "free", "0", "malloc", "56",
				     "stats", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "tcache_hits"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_LE(1, probe_value(&r, "tcache_hits"));
}

TEST_F(tunables, env_tcache_max_is_read_at_start)
{
	const char *const env[] = { "UPALLOC_TCACHE_MAX=64", NULL };
	const char *const argv[] = { "malloc", "100", "free", "0", "malloc", "100",
				     "stats", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "tcache_hits"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_LE(1, probe_value(&r, "tcache_hits"));
}

/* ---- misc ---- */

TEST_F(tunables, mallopt_unknown_parameter_is_refused)
{
	EXPECT_EQ(0, mallopt(12345, 1));
	EXPECT_EQ(0, mallopt(-12345, 1));
}

TEST_F(tunables, env_malformed_value_is_ignored)
{
	const char *const env[] = { "UPALLOC_MMAP_THRESHOLD=lots", NULL };
	const char *const argv[] = { "malloc", "200000", "chunk", "0", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	/* the default (128 KiB) stays in force */
	EXPECT_EQ(1, probe_value(&r, "mmapped"));
}

/* ---- UPA_M_HEAP_RESERVE ---- */

TEST_F(tunables, mallopt_heap_reserve_rejects_non_power_of_two)
{
	EXPECT_EQ(0, mallopt(UPA_M_HEAP_RESERVE, 3 << 20));
	EXPECT_EQ(0, mallopt(UPA_M_HEAP_RESERVE, -1));
}

TEST_F(tunables, env_heap_reserve_limits_heap_size)
{
	/* with a 2 MiB heap, a 3 MB chunk cannot live in a heap: mmapped */
	const char *const env[] = { "UPALLOC_HEAP_RESERVE=2097152", NULL };
	const char *const argv[] = { "mallopt", "-3", "33554432",
				     "malloc", "3000000", "chunk", "0",
				     "malloc", "100", "check", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(1, probe_value(&r, "mmapped")) TH_LOG("%s", r.out);
	EXPECT_EQ(0, probe_value(&r, "heap_check"));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "mmapped")) TH_LOG("%s", r.out);
}

/* ---- UPA_M_HARDENED ---- */

/* This process has heaps: the mode would find blocks it has no state of. */
TEST_F(tunables, mallopt_hardened_is_refused_once_heaps_exist)
{
	free(malloc(100));
	EXPECT_EQ(0, mallopt(UPA_M_HARDENED, 1));
	EXPECT_EQ(1, mallopt(UPA_M_HARDENED, 0));	/* off already */
	EXPECT_EQ(0, mallopt(UPA_M_HARDENED, 2));
	EXPECT_EQ(0, mallopt(UPA_M_HARDENED, -1));
}

/* In the mode, the usable size is the request (the canary follows it). */
TEST_F(tunables, env_hardened_turns_the_mode_on)
{
	const char *const env[] = { "UPALLOC_HARDENED=1", NULL };
	const char *const argv[] = { "malloc", "10", "chunk", "0",
				     "mallopt", "-103", "1", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_EQ(10, probe_value(&r, "usable")) TH_LOG("%s", r.out);
	EXPECT_EQ(1, probe_value(&r, "mallopt")) TH_LOG("%s", r.out);
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(24, probe_value(&r, "usable")) TH_LOG("%s", r.out);
	EXPECT_EQ(0, probe_value(&r, "mallopt")) TH_LOG("%s", r.out);
}

/* ---- UPALLOC_STATS ---- */

TEST_F(tunables, env_stats_prints_statistics_at_exit)
{
	const char *const env[] = { "UPALLOC_STATS=1", NULL };
	const char *const argv[] = { "malloc", "100", "malloc", "200", NULL };
	struct probe_result r;
	const char *calls;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_NE(NULL, strstr(r.err, "upalloc: statistics at exit"))
		TH_LOG("stderr: %s", r.err);
	calls = strstr(r.err, "\nmalloc_calls ");
	ASSERT_NE(NULL, calls) TH_LOG("stderr: %s", r.err);
	EXPECT_LE(2, strtoll(calls + 14, NULL, 10));
	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(NULL, strstr(r.err, "statistics at exit")) TH_LOG("%s", r.err);
}

/*
 * Lowering M_TCACHE_COUNT frees the excess of each bin; freeing drains the
 * arena's remote list, whose chunks went back into the bin being trimmed
 * (room made by the pops) while the trim kept its own count: the bin ended
 * longer than its count, and the next trim popped an empty bin (SIGSEGV).
 */
#define TRIM_N 200
static void *trim_blocks[TRIM_N];
static pthread_barrier_t trim_barrier;

static void *free_others_blocks(void *arg)
{
	int i;

	for (i = 0; i < TRIM_N; i++)
		free(trim_blocks[i]);	/* the main arena's: remote frees */
	pthread_barrier_wait(&trim_barrier);	/* stay alive: no flush */
	pthread_barrier_wait(&trim_barrier);
	return NULL;
}

TEST_F(tunables, lowering_tcache_count_with_remote_frees_pending)
{
	void *mine[8], *again[8];
	pthread_t t;
	int i;

	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 8));
	for (i = 0; i < TRIM_N; i++)
		ASSERT_NE(NULL, trim_blocks[i] = malloc(40));
	for (i = 0; i < 8; i++)
		ASSERT_NE(NULL, mine[i] = malloc(40));
	for (i = 0; i < 8; i++)
		free(mine[i]);		/* the bin is full */
	ASSERT_EQ(0, pthread_barrier_init(&trim_barrier, NULL, 2));
	ASSERT_EQ(0, pthread_create(&t, NULL, free_others_blocks, NULL));
	pthread_barrier_wait(&trim_barrier);
	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 4));
	EXPECT_EQ(0, upa_heap_check());
	for (i = 0; i < 8; i++)
		ASSERT_NE(NULL, again[i] = malloc(40));
	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 2));
	for (i = 0; i < 8; i++)
		free(again[i]);
	ASSERT_EQ(1, mallopt(UPA_M_TCACHE_COUNT, 1));
	EXPECT_EQ(0, upa_heap_check());
	pthread_barrier_wait(&trim_barrier);
	pthread_join(t, NULL);
}

TEST_HARNESS_MAIN
