// SPDX-License-Identifier: GPL-2.0
/*
 * Description: stress (issue 2: threads x forks x decommits, bounded in
 * time). Writer threads keep writing a region and a heap, a decommit thread
 * keeps decommitting pages and moving the heap's break, while two forker
 * threads fork children one after the other. Each child checks that its
 * snapshot is stable (the parent's ongoing writes never show through),
 * writes its own marker everywhere, moves its own break and forks a
 * grandchild whose writes it must not see; the parent checks that no child
 * or grandchild marker ever shows in its memory. At the end every page and region is
 * released: pages_live and regions_live are back to their values before the
 * test (0 when nothing else uses the module).
 *
 * Runs for UPALLOC_STRESS_SECONDS seconds (default 15).
 */
#include <pthread.h>
#include <time.h>

#include "upalloc_test.h"

#define REGION_PAGES	128
#define HEAP_PAGES	256
#define HEAP_LOW	32	/* writers stay below this heap page */
#define HEAP_HIGH	64
#define NWRITERS	3
#define NFORKERS	2
#define CHILD_MARK	0xc41dc41dc41dc41dULL
#define GRANDCHILD_MARK	0x96c496c496c496c4ULL

FIXTURE(stress) {
	int fd;
};

FIXTURE_SETUP(stress)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
}

FIXTURE_TEARDOWN(stress)
{
	if (self->fd >= 0)
		close(self->fd);
}

struct shared_state {
	int fd;
	char *region;
	char *heap;
	volatile int stop;
	unsigned long decommits;
	int errors;
};

struct writer {
	pthread_t thread;
	struct shared_state *st;
	int id;
};

static uint64_t *word_at(char *base, size_t page, size_t word)
{
	return (uint64_t *)(base + PAGES(page)) + word;
}

/* Writes tagged values (never CHILD_MARK) into its own slice of pages. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct shared_state *st = w->st;
	size_t per = REGION_PAGES / NWRITERS;
	uint64_t counter = 0;

	while (!st->stop) {
		size_t pg = w->id * per + counter % per;
		size_t hp = (w->id + counter * NWRITERS) % HEAP_LOW;
		size_t k;

		for (k = 0; k < page_size() / 8; k += 64)
			*word_at(st->region, pg, k) = ((uint64_t)w->id << 56) | counter;
		*word_at(st->heap, hp, counter % 512) = counter;
		counter++;
	}
	return NULL;
}

/* Decommits region pages and moves the heap's break up and down. */
static void *decommitter_main(void *arg)
{
	struct shared_state *st = arg;
	unsigned long i = 0;

	while (!st->stop) {
		size_t pg = (i * 37) % (REGION_PAGES - 4);
		uint64_t nr;

		if (upa_decommit(st->fd, st->region + PAGES(pg), PAGES(4), &nr))
			st->errors++;
		if (upa_set_brk(st->fd, st->heap,
				PAGES(i % 2 ? HEAP_HIGH : HEAP_LOW), NULL))
			st->errors++;
		st->decommits++;
		i++;
		usleep(500);
	}
	return NULL;
}

/*
 * The child: its snapshot must not change while the parent keeps writing,
 * its own writes must stick, and its heap is its own. Exit 0 when all held.
 */
static int child_main(struct shared_state *st, char *snapshot)
{
	size_t pg, k;
	uint64_t nr;
	int status;
	pid_t gc;

	memcpy(snapshot, st->region, PAGES(REGION_PAGES));
	usleep(2000);
	if (memcmp(snapshot, st->region, PAGES(REGION_PAGES)))
		return 10;	/* the parent's writes showed through */

	for (pg = 0; pg < REGION_PAGES; pg++)
		for (k = 0; k < page_size() / 8; k += 64)
			*word_at(st->region, pg, k) = CHILD_MARK;

	/* Its own break moves, faults and decommits. */
	if (upa_set_brk(st->fd, st->heap, PAGES(HEAP_PAGES), NULL))
		return 11;
	for (pg = 0; pg < HEAP_PAGES; pg += 8)
		*word_at(st->heap, pg, 1) = CHILD_MARK;
	if (upa_decommit(st->fd, st->heap, PAGES(HEAP_PAGES / 2), &nr))
		return 12;
	if (upa_set_brk(st->fd, st->heap, PAGES(HEAP_LOW), NULL))
		return 13;

	/* A grandchild sees the child's marks; its own stay its own. */
	gc = fork();
	if (gc < 0)
		return 15;
	if (gc == 0) {
		for (pg = 0; pg < REGION_PAGES; pg += 5) {
			if (*word_at(st->region, pg, 0) != CHILD_MARK)
				_exit(16);
			*word_at(st->region, pg, 0) = GRANDCHILD_MARK;
		}
		_exit(0);
	}
	status = wait_child(gc);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return WIFEXITED(status) ? WEXITSTATUS(status) : 17;

	usleep(1000);
	for (pg = 0; pg < REGION_PAGES; pg++)
		for (k = 0; k < page_size() / 8; k += 64)
			if (*word_at(st->region, pg, k) != CHILD_MARK)
				return 14;	/* parent's or grandchild's writes */
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Fork children one after the other until the deadline, each with its own
 * snapshot buffer, and check after each that no mark reached the parent.
 */
struct forker {
	pthread_t thread;
	struct shared_state *st;
	double end;
	char *snapshot;
	int forks, bad_children, leaks;
};

static void *forker_main(void *arg)
{
	struct forker *f = arg;
	struct shared_state *st = f->st;
	size_t pg, k;

	while (now_seconds() < f->end) {
		int status;
		pid_t pid = fork();

		if (pid < 0)
			break;
		if (pid == 0)
			_exit(child_main(st, f->snapshot));
		status = wait_child(pid);
		f->forks++;
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			f->bad_children++;
			fprintf(stderr, "# child %d: status %#x\n", f->forks, status);
		}
		for (pg = 0; pg < REGION_PAGES; pg++)
			for (k = 0; k < page_size() / 8; k += 64) {
				uint64_t v = *word_at(st->region, pg, k);

				if (v == CHILD_MARK || v == GRANDCHILD_MARK)
					f->leaks++;
			}
		for (pg = 0; pg < HEAP_LOW; pg += 8)
			if (*word_at(st->heap, pg, 1) == CHILD_MARK)
				f->leaks++;
	}
	return NULL;
}

TEST_F_TIMEOUT(stress, threads_forks_decommits_keep_snapshots_isolated, 120)
{
	struct shared_state st = { .fd = self->fd };
	struct writer w[NWRITERS];
	struct forker f[NFORKERS];
	struct upa_stats before, after;
	pthread_t decommitter;
	const char *env = getenv("UPALLOC_STRESS_SECONDS");
	double seconds = env ? atof(env) : 15, end;
	int forks = 0, bad_children = 0, leaks = 0;
	char *snapshot;
	int i;

	NEED_DEVICE();
	if (seconds <= 0 || seconds > 100)
		seconds = 15;
	snapshot = malloc(NFORKERS * PAGES(REGION_PAGES));
	ASSERT_NE(NULL, snapshot);
	memset(snapshot, 0, NFORKERS * PAGES(REGION_PAGES));
	READ_STATS(&before);

	st.region = upa_map(self->fd, PAGES(REGION_PAGES), 0);
	ASSERT_NE(NULL, st.region);
	st.heap = upa_map_heap(self->fd, PAGES(HEAP_PAGES));
	ASSERT_NE(NULL, st.heap);
	ASSERT_EQ(0, upa_set_brk(self->fd, st.heap, PAGES(HEAP_HIGH), NULL));

	for (i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ .st = &st, .id = i };
		ASSERT_EQ(0, pthread_create(&w[i].thread, NULL, writer_main, &w[i]));
	}
	ASSERT_EQ(0, pthread_create(&decommitter, NULL, decommitter_main, &st));

	end = now_seconds() + seconds;
	for (i = 0; i < NFORKERS; i++) {
		f[i] = (struct forker){ .st = &st, .end = end,
					.snapshot = snapshot + i * PAGES(REGION_PAGES) };
		ASSERT_EQ(0, pthread_create(&f[i].thread, NULL, forker_main, &f[i]));
	}
	for (i = 0; i < NFORKERS; i++) {
		ASSERT_EQ(0, pthread_join(f[i].thread, NULL));
		forks += f[i].forks;
		bad_children += f[i].bad_children;
		leaks += f[i].leaks;
	}

	st.stop = 1;
	for (i = 0; i < NWRITERS; i++)
		ASSERT_EQ(0, pthread_join(w[i].thread, NULL));
	ASSERT_EQ(0, pthread_join(decommitter, NULL));
	TH_LOG("%d forks, %lu decommit rounds in %.0f s", forks,
	       st.decommits, seconds);

	EXPECT_EQ(0, bad_children);
	EXPECT_EQ(0, leaks);
	EXPECT_EQ(0, st.errors);
	EXPECT_LE(3, forks);

	ASSERT_EQ(0, munmap(st.region, PAGES(REGION_PAGES)));
	ASSERT_EQ(0, munmap(st.heap, PAGES(HEAP_PAGES)));
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, regions_live));
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_committed));
	EXPECT_EQ(STAT_DELTA(after, before, pages_allocated),
		  STAT_DELTA(after, before, pages_freed));
	free(snapshot);
}

UPALLOC_TEST_MAIN
