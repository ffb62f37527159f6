// SPDX-License-Identifier: GPL-2.0
/*
 * Description: threads (issue 2, item 5). Many threads faulting the same and
 * different pages of one region at the same time get exactly one page per
 * offset: every thread's writes land in the same page, the module allocates
 * exactly one page per offset and frees all of them at munmap. Concurrent
 * decommits, populates and faults leak nothing either.
 */
#include <pthread.h>

#include "upalloc_test.h"

#define NTHREADS	8
#define NPAGES		256

FIXTURE(threads) {
	int fd;
	char *p;
};

FIXTURE_SETUP(threads)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(threads)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

struct worker {
	pthread_t thread;
	pthread_barrier_t *start;
	char *p;
	int fd;
	int id;
	int rounds;
	uint64_t decommitted;
	int errors;
};

/*
 * Every thread touches every page, starting at a different offset and with
 * a mix of read-first and write-first accesses, writing its id into its own
 * byte of each page.
 */
static void *touch_all_pages(void *arg)
{
	struct worker *w = arg;
	size_t i;

	pthread_barrier_wait(w->start);
	for (i = 0; i < NPAGES; i++) {
		size_t pg = (i + (size_t)w->id * (NPAGES / NTHREADS)) % NPAGES;
		volatile char *page = w->p + PAGES(pg);

		if ((pg + w->id) & 1)
			(void)page[0];
		page[64 + w->id] = (char)(w->id + 1);
	}
	return NULL;
}

TEST_F(threads, concurrent_faults_get_one_page_per_offset)
{
	struct worker w[NTHREADS];
	struct upa_stats before, mid, after;
	struct upalloc_proc_stats ps;
	pthread_barrier_t start;
	size_t pg;
	int t;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, NTHREADS));
	for (t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){ .start = &start, .p = self->p, .id = t };
		ASSERT_EQ(0, pthread_create(&w[t].thread, NULL, touch_all_pages, &w[t]));
	}
	for (t = 0; t < NTHREADS; t++)
		ASSERT_EQ(0, pthread_join(w[t].thread, NULL));
	pthread_barrier_destroy(&start);

	/* Every thread's byte is in the one page of every offset. */
	for (pg = 0; pg < NPAGES; pg++) {
		for (t = 0; t < NTHREADS; t++) {
			ASSERT_EQ(t + 1, self->p[PAGES(pg) + 64 + t])
				TH_LOG("page %zu lost thread %d's write", pg, t);
		}
	}

	READ_STATS(&mid);
	EXPECT_EQ(NPAGES, upa_pages_present(self->fd, self->p));
	EXPECT_EQ(NPAGES, STAT_DELTA(mid, before, pages_allocated));
	EXPECT_EQ(NPAGES, STAT_DELTA(mid, before, pages_live));
	EXPECT_EQ(0, STAT_DELTA(mid, before, pages_freed));
	/* Racing faults on one offset may each be counted, never fewer. */
	EXPECT_LE(NPAGES, STAT_DELTA(mid, before, faults));
	ASSERT_EQ(0, upa_proc_stats(self->fd, &ps));
	EXPECT_EQ(NPAGES, ps.pages_live);
	EXPECT_EQ(NPAGES, ps.pages_allocated);

	ASSERT_EQ(0, munmap(self->p, PAGES(NPAGES)));
	self->p = NULL;
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, pages_freed));
}

static void *touch_own_pages(void *arg)
{
	struct worker *w = arg;
	size_t per = NPAGES / NTHREADS, pg;

	pthread_barrier_wait(w->start);
	for (pg = w->id * per; pg < (size_t)(w->id + 1) * per; pg++)
		fill_pages(w->p, pg, 1, (uint64_t)w->id + 100);
	return NULL;
}

TEST_F(threads, concurrent_faults_on_distinct_pages_are_exact)
{
	struct worker w[NTHREADS];
	struct upa_stats before, after;
	pthread_barrier_t start;
	size_t per = NPAGES / NTHREADS;
	int t;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, NTHREADS));
	for (t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){ .start = &start, .p = self->p, .id = t };
		ASSERT_EQ(0, pthread_create(&w[t].thread, NULL, touch_own_pages, &w[t]));
	}
	for (t = 0; t < NTHREADS; t++)
		ASSERT_EQ(0, pthread_join(w[t].thread, NULL));
	pthread_barrier_destroy(&start);
	READ_STATS(&after);

	for (t = 0; t < NTHREADS; t++)
		EXPECT_EQ(-1, check_pages(self->p, t * per, per, (uint64_t)t + 100));
	/* One fault per page, each a write fault. */
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, pages_allocated));
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, faults));
	EXPECT_EQ(NPAGES, STAT_DELTA(after, before, faults_write));
	EXPECT_EQ(0, STAT_DELTA(after, before, faults_read));
}

static void *fault_and_decommit(void *arg)
{
	struct worker *w = arg;
	int r;

	pthread_barrier_wait(w->start);
	for (r = 0; r < w->rounds; r++) {
		size_t pg = ((size_t)r * 7 + (size_t)w->id * 13) % (NPAGES - 8);
		uint64_t nr = 0;

		if (w->id % 4 == 1) {
			if (upa_populate(w->fd, w->p + PAGES(pg), PAGES(8), &nr))
				w->errors++;
		} else if (w->id % 2) {
			write_pages(w->p, pg, 8, (char)r);
		} else {
			if (upa_decommit(w->fd, w->p + PAGES(pg), PAGES(8), &nr))
				w->errors++;
			w->decommitted += nr;
		}
	}
	return NULL;
}

TEST_F(threads, concurrent_decommit_populate_and_faults_leak_nothing)
{
	struct worker w[NTHREADS];
	struct upa_stats before, after;
	pthread_barrier_t start;
	uint64_t decommitted = 0;
	int t;

	NEED_DEVICE();
	READ_STATS(&before);
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, NTHREADS));
	for (t = 0; t < NTHREADS; t++) {
		w[t] = (struct worker){ .start = &start, .p = self->p,
					.fd = self->fd, .id = t, .rounds = 300 };
		ASSERT_EQ(0, pthread_create(&w[t].thread, NULL, fault_and_decommit, &w[t]));
	}
	for (t = 0; t < NTHREADS; t++) {
		ASSERT_EQ(0, pthread_join(w[t].thread, NULL));
		EXPECT_EQ(0, w[t].errors);
		decommitted += w[t].decommitted;
	}
	pthread_barrier_destroy(&start);
	READ_STATS(&after);

	/* allocated - freed == present, and freed == what decommit reported. */
	EXPECT_EQ(decommitted, STAT_DELTA(after, before, pages_freed));
	EXPECT_EQ(decommitted, STAT_DELTA(after, before, pages_decommitted));
	EXPECT_EQ(STAT_DELTA(after, before, pages_allocated) -
		  STAT_DELTA(after, before, pages_freed),
		  upa_pages_present(self->fd, self->p));
	ASSERT_EQ(0, munmap(self->p, PAGES(NPAGES)));
	self->p = NULL;
	READ_STATS(&after);
	EXPECT_EQ(0, STAT_DELTA(after, before, pages_live));
}

UPALLOC_TEST_MAIN
