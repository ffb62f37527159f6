// SPDX-License-Identifier: MIT
/*
 * Description: the hardened mode (UPALLOC_HARDENED=1): death tests of what
 * it catches beyond glibc's checks, on each path a block can take (the
 * mode's per-thread cache, another thread's cache, the fast bins, a remote
 * list, mmapped blocks). The binary re-executes itself with
 * UPALLOC_HARDENED=1 unless the variable is set: run it with
 * UPALLOC_HARDENED=0 to see every death test fail in the default mode
 * (nothing is caught there), which is what they exist to show.
 */
#include <semaphore.h>

#include "upa_test.h"

__attribute__((constructor)) static void hardened_reexec(int argc, char **argv)
{
	if (getenv("UPALLOC_HARDENED"))
		return;
	setenv("UPALLOC_HARDENED", "1", 1);
	execv("/proc/self/exe", argv);
	perror("hardened: re-exec");
	_exit(1);
}

UPA_FIXTURE(hardened)

/* ---- the mode itself ---- */

TEST_F(hardened, usable_size_is_the_requested_size)
{
	char *p = malloc(10), *q = malloc(1000), *r = malloc(1 << 20);

	ASSERT_TRUE(p && q && r);
	EXPECT_EQ(10, malloc_usable_size(p));
	EXPECT_EQ(1000, malloc_usable_size(q));
	EXPECT_EQ(1 << 20, malloc_usable_size(r));
	/* Every usable byte may be written. */
	memset(p, 1, malloc_usable_size(p));
	memset(q, 1, malloc_usable_size(q));
	memset(r, 1, malloc_usable_size(r));
	p = realloc(p, 3000);
	ASSERT_TRUE(p != NULL);
	EXPECT_EQ(3000, malloc_usable_size(p));
	memset(p, 2, 3000);
	free(p);
	free(q);
	free(r);
}

TEST_F(hardened, mode_cannot_be_switched_once_blocks_exist)
{
	free(malloc(10));
	EXPECT_EQ(1, mallopt(UPA_M_HARDENED, 1));	/* on already */
	EXPECT_EQ(0, mallopt(UPA_M_HARDENED, 0));
}

/* ---- write after free ---- */

static void write_after_free_cached(void)
{
	char *p = malloc(100);

	free(p);
	p[50] = 1;
	malloc(100);
}

TEST_F(hardened, write_after_free_into_cached_block_aborts)
{
	expect_death(_metadata, write_after_free_cached,
		     "malloc(): write after free detected");
}

/*
 * The freed block's first word (where a linked cache keeps its link; the
 * mode's cache keeps none in the block): a write there too.
 */
static void write_after_free_over_cache_link(void)
{
	char *p = malloc(100), *q = malloc(100);

	free(q);
	free(p);
	((uintptr_t *)p)[0] = 0x4141414141414140;
	malloc(100);
	malloc(100);
}

TEST_F(hardened, write_after_free_over_cache_link_aborts)
{
	expect_death(_metadata, write_after_free_over_cache_link,
		     "malloc(): write after free detected");
}

/*
 * A write into a cached block's header (an underflow of the block before
 * it, or a write just before a freed pointer): the next malloc of that
 * size would hand out a block the header says is smaller.
 */
static void size_of_cached_block_overwritten(void)
{
	char *p = malloc(64);

	free(p);
	((size_t *)p)[-1] = 48 | CHUNK_PREV_INUSE;
	malloc(64);
}

TEST_F(hardened, size_of_cached_block_overwritten_aborts_at_malloc)
{
	expect_death(_metadata, size_of_cached_block_overwritten,
		     "malloc(): size of a cached block overwritten (hardened)");
}

static void write_after_free_fast_bin(void)
{
	char *p, *guard;

	tcache_disable();
	p = malloc(40);
	guard = malloc(40);
	free(p);		/* no cache: a fast bin */
	p[30] = 1;
	malloc(40);
	free(guard);
}

TEST_F(hardened, write_after_free_into_fast_bin_block_aborts)
{
	expect_death(_metadata, write_after_free_fast_bin,
		     "malloc(): write after free detected");
}

/*
 * Another thread's block, freed here without a cache: it waits on its
 * arena's remote list until its owner's next malloc drains the list
 * into a fast bin and takes it from there.
 */
struct owner {
	sem_t allocated, freed;
	char *p, *guard;
	size_t n;
};

static void *owner_thread(void *arg)
{
	struct owner *o = arg;

	o->p = malloc(o->n);
	o->guard = malloc(o->n);
	sem_post(&o->allocated);
	sem_wait(&o->freed);
	malloc(o->n);
	return NULL;
}

static void write_after_remote_free(void)
{
	static struct owner o = { .n = 40 };
	pthread_t t;

	tcache_disable();
	sem_init(&o.allocated, 0, 0);
	sem_init(&o.freed, 0, 0);
	if (pthread_create(&t, NULL, owner_thread, &o))
		return;
	sem_wait(&o.allocated);
	free(o.p);		/* the owner's arena's remote list */
	o.p[30] = 1;
	sem_post(&o.freed);
	pthread_join(t, NULL);
}

TEST_F(hardened, write_after_remote_free_aborts)
{
	expect_death(_metadata, write_after_remote_free,
		     "malloc(): write after free detected");
}

/*
 * No false alarm: realloc moves a block of another thread's arena, whose
 * old chunk (112 bytes, past the fast bins' 80 then) waits on that
 * arena's remote list while M_MXFAST rises to 128; the owner's drain then
 * puts it in a fast bin, where its next malloc verifies it. The chunk must
 * have been filled, whatever M_MXFAST said when it was freed.
 */
static void *owner_allocates_after_drain(void *arg)
{
	struct owner *o = arg;

	o->p = malloc(o->n);
	o->guard = malloc(o->n);	/* o->p cannot grow in place */
	memset(o->p, 0x11, o->n);
	sem_post(&o->allocated);
	sem_wait(&o->freed);
	free(malloc(o->n));
	free(o->guard);
	return NULL;
}

TEST_F(hardened, remote_chunk_of_realloc_is_filled_whatever_mxfast_said)
{
	struct owner o = { .n = 100 };
	pthread_t t;
	char *q;

	tcache_disable();
	ASSERT_EQ(1, mallopt(M_MXFAST, 64));
	sem_init(&o.allocated, 0, 0);
	sem_init(&o.freed, 0, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, owner_allocates_after_drain, &o));
	sem_wait(&o.allocated);
	q = realloc(o.p, 2000);		/* moves: the old chunk goes remote */
	ASSERT_TRUE(q != NULL && q != o.p);
	EXPECT_EQ(0x11, (unsigned char)q[99]);
	ASSERT_EQ(1, mallopt(M_MXFAST, 128));
	sem_post(&o.freed);
	pthread_join(t, NULL);
	free(q);
}

/* ---- overflows past the requested size ---- */

static void one_byte_overflow_small(void)
{
	char *p = malloc(10);

	p[10] = 0;		/* the terminating NUL one byte too far */
	free(p);
}

TEST_F(hardened, one_byte_overflow_of_small_block_aborts_at_free)
{
	expect_death(_metadata, one_byte_overflow_small,
		     "free(): canary after the requested size overwritten");
}

static void one_byte_overflow_arena(void)
{
	char *p = malloc(5000), *guard = malloc(100);

	p[5000] = 'x';
	free(p);
	free(guard);
}

TEST_F(hardened, one_byte_overflow_of_arena_block_aborts_at_free)
{
	expect_death(_metadata, one_byte_overflow_arena,
		     "free(): canary after the requested size overwritten");
}

static void one_byte_overflow_mmapped(void)
{
	size_t n = (1 << 20) + 5;
	char *p = malloc(n);

	p[n] = 0;
	free(p);
}

TEST_F(hardened, one_byte_overflow_of_mmapped_block_aborts_at_free)
{
	expect_death(_metadata, one_byte_overflow_mmapped,
		     "free(): canary after the requested size overwritten");
}

static void one_byte_overflow_realloc(void)
{
	char *p = malloc(100);

	p[100] = 0;
	free(realloc(p, 200));
}

TEST_F(hardened, one_byte_overflow_aborts_at_realloc)
{
	expect_death(_metadata, one_byte_overflow_realloc,
		     "realloc(): canary after the requested size overwritten");
}

static void one_byte_overflow_memalign(void)
{
	char *p = memalign(256, 33);

	p[33] = 0;
	free(p);
}

TEST_F(hardened, one_byte_overflow_of_aligned_block_aborts_at_free)
{
	expect_death(_metadata, one_byte_overflow_memalign,
		     "free(): canary after the requested size overwritten");
}

/*
 * A live block's arena flag rewritten: caught at free on the mode's
 * cached path too, by the heap map (the canary, derived from the size
 * word as well, would miss it once in 128).
 */
static void arena_flag_of_live_block_flipped(void)
{
	char *p = malloc(64);

	((size_t *)p)[-1] ^= CHUNK_NON_MAIN_ARENA;
	free(p);
}

TEST_F(hardened, arena_flag_of_live_block_flipped_aborts_at_free)
{
	expect_death(_metadata, arena_flag_of_live_block_flipped,
		     "free(): invalid pointer");
}

/* ---- double frees held in any cache ---- */

/*
 * The first free left the block in another thread's cache (the thread is
 * alive and keeps it): this thread's caches, bins and lists do not hold
 * it, so the default mode's keyed free finds nothing and caches it again.
 */
static void *free_and_keep(void *arg)
{
	struct owner *o = arg;

	free(o->p);
	sem_post(&o->allocated);
	sem_wait(&o->freed);
	return NULL;
}

static void double_free_other_threads_cache(void)
{
	static struct owner o;
	pthread_t t;

	o.p = malloc(64);
	sem_init(&o.allocated, 0, 0);
	sem_init(&o.freed, 0, 0);
	if (pthread_create(&t, NULL, free_and_keep, &o))
		return;
	sem_wait(&o.allocated);
	free(o.p);
	sem_post(&o.freed);
	pthread_join(t, NULL);
}

TEST_F(hardened, double_free_held_in_another_threads_cache_aborts)
{
	expect_death(_metadata, double_free_other_threads_cache,
		     "free(): double free detected (hardened)");
}

/*
 * Past the mode's bin (32 by default): the bin's newest half goes to the
 * arena in one batch, a fast bin for this size; the block freed twice is
 * among them.
 */
static void double_free_after_bin_flush(void)
{
	char *p[100];
	int i;

	for (i = 0; i < 100; i++)
		p[i] = malloc(64);
	for (i = 0; i < 100; i++)
		free(p[i]);
	free(p[60]);
}

TEST_F(hardened, double_free_of_block_flushed_from_the_modes_bin_aborts)
{
	expect_death(_metadata, double_free_after_bin_flush,
		     "free(): double free detected (hardened)");
}

/* A write after free cleared the cache key: the default mode sees no free. */
static void double_free_key_overwritten(void)
{
	char *p = malloc(64);

	free(p);
	memset(p, 0, 16);
	free(p);
}

TEST_F(hardened, double_free_of_cached_block_with_overwritten_key_aborts)
{
	expect_death(_metadata, double_free_key_overwritten,
		     "free(): double free detected (hardened)");
}

/* ---- interior pointers ---- */

/*
 * A pointer into a live block whose bytes before it look like a chunk
 * header with an in-use successor (the program's own data can): the
 * default mode's checks all pass and the middle of the block is cached.
 */
static char *interior_with_plausible_header(void)
{
	char *p = malloc(128);

	memset(p, 0, 128);
	*(size_t *)(p + 24) = 48 | CHUNK_PREV_INUSE;	/* chunk at p + 16 */
	*(size_t *)(p + 72) = 32 | CHUNK_PREV_INUSE;	/* its successor */
	return p + 32;
}

static void free_interior(void)
{
	free(interior_with_plausible_header());
}

TEST_F(hardened, free_of_interior_pointer_aborts)
{
	expect_death(_metadata, free_interior,
		     "free(): pointer is not the start of a block");
}

static void realloc_interior(void)
{
	free(realloc(interior_with_plausible_header(), 16));
}

TEST_F(hardened, realloc_of_interior_pointer_aborts)
{
	expect_death(_metadata, realloc_interior,
		     "realloc(): pointer is not the start of a block");
}

TEST_HARNESS_MAIN
