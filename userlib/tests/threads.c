// SPDX-License-Identifier: MIT
/*
 * Description: threads. Threads alive at the same time get arenas of
 * their own (NON_MAIN_ARENA chunks); chunks freed by another thread than
 * the one that allocated them go back correctly (producer/consumer through
 * a pipe, bulk frees of another arena's chunks, which that arena reuses);
 * threads that exit with chunks still allocated; a mixed stress run. Every
 * test ends with the full heap check.
 */
#include <stdatomic.h>

#include "upa_test.h"

UPA_FIXTURE(threads)

static void fill(void *p, size_t n, unsigned int seed)
{
	memset(p, (int)(seed * 31 + n) & 0xff, n);
}

static bool filled(const void *p, size_t n, unsigned int seed)
{
	const unsigned char *c = p;
	unsigned char v = (seed * 31 + n) & 0xff;
	size_t i;

	for (i = 0; i < n; i++)
		if (c[i] != v)
			return false;
	return true;
}

/* ---- producer / consumer ---- */

#define ITEMS 20000

struct item {
	void *p;
	size_t n;
	unsigned int seed;
};

static void *producer(void *arg)
{
	int fd = *(int *)arg;
	unsigned int i;

	for (i = 0; i < ITEMS; i++) {
		struct item it = { .n = (i * 37) % 3000 + 1, .seed = i };

		if (i % 1000 == 999)
			it.n = 200 << 10;	/* some mmapped chunks too */
		it.p = malloc(it.n);
		if (!it.p)
			return (void *)1;
		fill(it.p, it.n, it.seed);
		if (write(fd, &it, sizeof(it)) != sizeof(it))
			return (void *)1;
	}
	close(fd);
	return NULL;
}

static void *consumer(void *arg)
{
	int fd = *(int *)arg;
	uintptr_t bad = 0;
	struct item it;

	while (read(fd, &it, sizeof(it)) == sizeof(it)) {
		if (!filled(it.p, it.n, it.seed))
			bad++;
		free(it.p);
	}
	return (void *)bad;
}

TEST_F(threads, consumer_thread_frees_producer_chunks)
{
	struct upa_lib_stats before, after;
	pthread_t prod, cons;
	void *prod_ret, *cons_ret;
	int fds[2];

	ASSERT_EQ(0, pipe(fds));
	STATS(before);
	ASSERT_EQ(0, pthread_create(&cons, NULL, consumer, &fds[0]));
	ASSERT_EQ(0, pthread_create(&prod, NULL, producer, &fds[1]));
	pthread_join(prod, &prod_ret);
	pthread_join(cons, &cons_ret);
	close(fds[0]);
	STATS(after);
	EXPECT_EQ(NULL, prod_ret);
	EXPECT_EQ(NULL, cons_ret) TH_LOG("%lu chunks arrived corrupted",
					 (unsigned long)(uintptr_t)cons_ret);
	EXPECT_LE(before.free_calls + ITEMS, after.free_calls);
	EXPECT_EQ(before.mmapped_chunks, after.mmapped_chunks);
}

/* ---- arenas ---- */

struct alive_arg {
	pthread_barrier_t *barrier;
	void *p[100];
};

static void *alloc_while_all_alive(void *argp)
{
	struct alive_arg *arg = argp;
	int i;

	pthread_barrier_wait(arg->barrier);	/* everyone has started */
	for (i = 0; i < 100; i++)
		arg->p[i] = malloc(64 + i * 8);
	pthread_barrier_wait(arg->barrier);	/* everyone has allocated */
	return NULL;
}

#define ALIVE_THREADS 8

/*
 * Runs ALIVE_THREADS threads of alloc_while_all_alive() to their end: 0,
 * or pthread_create()'s error (the barrier is static: threads already
 * started keep waiting on it while the test fails).
 */
static int run_alive_threads(struct alive_arg *args)
{
	static pthread_barrier_t barrier;
	pthread_t t[ALIVE_THREADS];
	int i, err;

	pthread_barrier_init(&barrier, NULL, ALIVE_THREADS);
	for (i = 0; i < ALIVE_THREADS; i++) {
		args[i].barrier = &barrier;
		err = pthread_create(&t[i], NULL, alloc_while_all_alive,
				     &args[i]);
		if (err)
			return err;
	}
	for (i = 0; i < ALIVE_THREADS; i++)
		pthread_join(t[i], NULL);
	return 0;
}

static void free_alive_blocks(struct alive_arg *args)
{
	int i, j;

	for (i = 0; i < ALIVE_THREADS; i++)
		for (j = 0; j < 100; j++)
			free(args[i].p[j]);
}

TEST_F(threads, concurrent_threads_get_arenas_of_their_own)
{
	static struct alive_arg args[ALIVE_THREADS];
	struct upa_lib_stats st;
	int i, j, non_main = 0;

	ASSERT_EQ(0, run_alive_threads(args));
	STATS(st);
	EXPECT_LT(1, st.arenas);
	for (i = 0; i < ALIVE_THREADS; i++) {
		if (chunk_is_non_main(args[i].p[0]))
			non_main++;
		/* one thread, one arena: all its chunks agree */
		for (j = 1; j < 100; j++)
			EXPECT_EQ(chunk_is_non_main(args[i].p[0]),
				  chunk_is_non_main(args[i].p[j]));
	}
	EXPECT_LE(1, non_main);
	ASSERT_EQ(0, upa_heap_check());
	/* the main thread frees every arena's chunks */
	free_alive_blocks(args);
}

TEST_F(threads, arena_limit_makes_threads_share_arenas)
{
	static struct alive_arg args[ALIVE_THREADS];
	struct upa_lib_stats st;

	ASSERT_EQ(1, mallopt(M_ARENA_MAX, 2));
	ASSERT_EQ(0, run_alive_threads(args));
	STATS(st);
	EXPECT_EQ(2, st.arenas);
	ASSERT_EQ(0, upa_heap_check());
	free_alive_blocks(args);
}

struct reuse_arg {
	int to_main[2], to_thread[2];
	void *first[200], *second[200];
};

static void *alloc_twice(void *argp)
{
	struct reuse_arg *arg = argp;
	char c;
	int i;

	for (i = 0; i < 200; i++)
		arg->first[i] = malloc(5000);
	if (write(arg->to_main[1], "a", 1) != 1)
		return (void *)1;
	if (read(arg->to_thread[0], &c, 1) != 1)	/* main freed them */
		return (void *)1;
	for (i = 0; i < 200; i++)
		arg->second[i] = malloc(5000);
	return NULL;
}

TEST_F(threads, chunks_freed_by_other_thread_return_to_their_arena)
{
	static struct reuse_arg arg;
	struct upa_lib_stats before, after;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	pthread_t t;
	char c;
	int i;

	/* keep the freed memory mapped so that its reuse can be seen */
	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 256 << 20));
	ASSERT_EQ(0, pipe(arg.to_main));
	ASSERT_EQ(0, pipe(arg.to_thread));
	ASSERT_EQ(0, pthread_create(&t, NULL, alloc_twice, &arg));
	ASSERT_EQ(1, read(arg.to_main[0], &c, 1));
	ASSERT_TRUE(chunk_is_non_main(arg.first[0]))
		TH_LOG("a second thread should get an arena of its own");
	for (i = 0; i < 200; i++) {
		uintptr_t a = (uintptr_t)arg.first[i];

		lo = a < lo ? a : lo;
		hi = a > hi ? a : hi;
		/* 5000 bytes is above the thread cache: back to the arena */
		free(arg.first[i]);
	}
	ASSERT_EQ(0, upa_heap_check());
	STATS(before);
	ASSERT_EQ(1, write(arg.to_thread[1], "b", 1));
	pthread_join(t, NULL);
	STATS(after);
	/* the thread's second round reuses the memory the main thread freed */
	for (i = 0; i < 200; i++) {
		uintptr_t a = (uintptr_t)arg.second[i];

		EXPECT_TRUE(a >= lo && a <= hi) TH_LOG("chunk %d at %lx", i,
						       (unsigned long)a);
		EXPECT_TRUE(chunk_is_non_main(arg.second[i]));
	}
	EXPECT_EQ(before.bytes_mapped, after.bytes_mapped);
	for (i = 0; i < 200; i++)
		free(arg.second[i]);
}

static void *alloc_and_exit(void *arg)
{
	void **keep = arg;
	int i;

	for (i = 0; i < 50; i++) {
		void *p = malloc(16 + i * 40);

		if (i % 2)
			free(p);
		else
			keep[i / 2] = p;
	}
	return NULL;
}

TEST_F(threads, chunks_of_exited_threads_stay_valid)
{
	static void *keep[32][25];
	pthread_t t;
	int i, j;

	for (i = 0; i < 32; i++) {
		ASSERT_EQ(0, pthread_create(&t, NULL, alloc_and_exit, keep[i]));
		pthread_join(t, NULL);
	}
	ASSERT_EQ(0, upa_heap_check());
	for (i = 0; i < 32; i++)
		for (j = 0; j < 25; j++)
			free(keep[i][j]);
}

/* ---- stress: every thread allocates, frees and frees others' chunks ---- */

#define SLOTS 512
static void *_Atomic slots[SLOTS];

static void *stress(void *arg)
{
	unsigned int x = (unsigned int)(uintptr_t)arg * 2654435761u + 1;
	int i;

	for (i = 0; i < 40000; i++) {
		size_t n;
		void *p;

		x = x * 1103515245 + 12345;
		n = (x >> 16) % 100 == 0 ? (x >> 8) % (300 << 10) :
					    (x >> 8) % 1200;
		p = malloc(n);
		if (!p)
			return (void *)1;
		memset(p, 0x33, n < 64 ? n : 64);
		/* swap into a shared slot: the old occupant came from anyone */
		p = atomic_exchange(&slots[(x >> 4) % SLOTS], p);
		free(p);
	}
	return NULL;
}

TEST_F(threads, mixed_cross_thread_traffic_keeps_heap_consistent)
{
	pthread_t t[4];
	void *ret;
	int i;

	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, stress,
					    (void *)(uintptr_t)i));
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &ret);
		EXPECT_EQ(NULL, ret);
	}
	ASSERT_EQ(0, upa_heap_check());
	for (i = 0; i < SLOTS; i++)
		free(slots[i]);
}

TEST_F(threads, heap_check_is_safe_while_threads_allocate)
{
	pthread_t t[2];
	int i;

	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, stress,
					    (void *)(uintptr_t)(i + 10)));
	for (i = 0; i < 50; i++)
		ASSERT_EQ(0, upa_heap_check());
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < SLOTS; i++)
		free(slots[i]);
}

/*
 * Cross-thread frees only: thread t allocates into its own slots and frees
 * the blocks of thread t + 1's slots (sizes 1..600, one request in 256 up
 * to 256 KiB). The frees of another arena's chunks go to its remote list,
 * whose drain ran into the cache bin being trimmed (the count wrapped and
 * a later trim popped an empty bin: SIGSEGV in free).
 */
#define XFREE_THREADS	4
#define XFREE_SLOTS	256
static void *_Atomic xslots[XFREE_THREADS][XFREE_SLOTS];

static void *cross_free(void *arg)
{
	unsigned int t = (unsigned int)(uintptr_t)arg;
	unsigned int x = t * 2654435761u + 7;
	struct timespec start, now;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < 2000000; i++) {
		void *_Atomic *own = &xslots[t][(x >> 4) % XFREE_SLOTS];
		void *_Atomic *next = &xslots[(t + 1) % XFREE_THREADS]
					     [(x >> 12) % XFREE_SLOTS];
		size_t n;
		void *p;

		x = x * 1103515245 + 12345;
		/*
		 * Phases: mostly allocating (own slots), then mostly
		 * freeing the next thread's blocks: the cache limit of a
		 * thread that frees more than it allocates changes back
		 * and forth (remote_freer_adapt).
		 */
		if ((x >> 20) % 8 < ((i >> 11) & 1 ? 7u : 1u)) {
			free(atomic_exchange(next, NULL));
			continue;
		}
		n = (x >> 16) % 256 == 0 ? 1 + (x >> 8) % (256 << 10) :
					    1 + (x >> 8) % 600;
		p = malloc(n);
		if (!p)
			return (void *)1;
		memset(p, 0x5a, n < 32 ? n : 32);
		free(atomic_exchange(own, p));	/* replaced, if not taken */
		if (i % 1024 == 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - start.tv_sec >= 3)
				break;
		}
	}
	return NULL;
}

TEST_F(threads, cross_thread_frees_keep_cache_counts_exact)
{
	pthread_t t[XFREE_THREADS];
	void *ret;
	int i, j;

	for (i = 0; i < XFREE_THREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, cross_free,
					    (void *)(uintptr_t)i));
	for (i = 0; i < XFREE_THREADS; i++) {
		pthread_join(t[i], &ret);
		EXPECT_EQ(NULL, ret);
	}
	ASSERT_EQ(0, upa_heap_check());
	for (i = 0; i < XFREE_THREADS; i++)
		for (j = 0; j < XFREE_SLOTS; j++)
			free(xslots[i][j]);
}

/*
 * The same, step by step: a thread whose cache holds its own chunks frees
 * many chunks of another arena, so that its cache shrinks to the remote
 * freer's limit (remote_freer_adapt -> upa_tcache_set_limits) while its
 * own arena's remote list holds chunks of the bin being trimmed: the trim
 * freed the excess into the arena, whose drain pushed the listed chunks
 * back into that bin (SIGSEGV later, in free).
 */
#define ADAPT_OWN	20
#define ADAPT_FOREIGN	400
static void *adapt_given[ADAPT_OWN];
static void *adapt_foreign[ADAPT_FOREIGN];
static pthread_barrier_t adapt_barrier;

static void *adapt_worker(void *arg)
{
	void *kept[ADAPT_OWN];
	int i;

	for (i = 0; i < ADAPT_OWN; i++) {
		adapt_given[i] = malloc(40);
		kept[i] = malloc(40);
		if (!adapt_given[i] || !kept[i])
			return (void *)1;
	}
	pthread_barrier_wait(&adapt_barrier);	/* main frees adapt_given */
	pthread_barrier_wait(&adapt_barrier);
	for (i = 0; i < ADAPT_OWN; i++)
		free(kept[i]);			/* own chunks, cached */
	for (i = 0; i < ADAPT_FOREIGN; i++)
		free(adapt_foreign[i]);		/* main's: a remote freer */
	return upa_heap_check() ? (void *)2 : NULL;
}

TEST_F(threads, remote_freer_cache_shrink_keeps_counts_exact)
{
	void *fill[40], *ret;
	pthread_t t;
	int i;

	for (i = 0; i < ADAPT_FOREIGN; i++)
		ASSERT_NE(NULL, adapt_foreign[i] = malloc(40));
	for (i = 0; i < 40; i++)
		ASSERT_NE(NULL, fill[i] = malloc(40));
	ASSERT_EQ(0, pthread_barrier_init(&adapt_barrier, NULL, 2));
	ASSERT_EQ(0, pthread_create(&t, NULL, adapt_worker, NULL));
	pthread_barrier_wait(&adapt_barrier);
	for (i = 0; i < 40; i++)
		free(fill[i]);		/* our bin full: the next go remote */
	for (i = 0; i < ADAPT_OWN; i++)
		free(adapt_given[i]);	/* onto the worker arena's list */
	pthread_barrier_wait(&adapt_barrier);
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(NULL, ret);
}

TEST_HARNESS_MAIN
