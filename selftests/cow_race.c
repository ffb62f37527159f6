// SPDX-License-Identifier: GPL-2.0
/*
 * Description: copy-on-write races. In a fork child, two threads write
 * different words of the same still-shared pages at the same time, walking
 * the pages in the same order so that they meet on a page as often as the
 * machine lets them: both take the copy-on-write fault of one page
 * together, and one of them loses the race for the copy. Whatever the
 * interleaving, every page must end up holding both threads' words on top
 * of the parent's snapshot, and the parent must still see its own data.
 *
 * The test also measures how much real parallelism it got, printed as
 *   # cow_race: N rounds, R COW races (both threads inside the same page's
 *   first write), A alternations, in S s: R/S races/s
 * A "race" is a page one thread began writing while the other was still
 * inside its own first write to it; an "alternation" is a page write
 * between two of which the other thread made progress. With one host
 * thread for all guest CPUs (tools/upalloc-vm --tcg-threads single) the
 * threads only meet when the timer preempts one mid-page, so both numbers
 * are small; with a host thread per guest CPU (make check-race) they are
 * what the race tests are meant to see.
 *
 * Runs for UPALLOC_RACE_SECONDS seconds (default 3).
 */
#include <pthread.h>
#include <time.h>

#include "upalloc_test.h"

#define NPAGES	256

struct race {
	char *p;
	pthread_barrier_t start;
	/* bit t set while thread t is inside its first write to the page */
	unsigned int inside[NPAGES];
	unsigned long progress[2];
	unsigned long races;
	unsigned long alternations;
};

struct racer {
	struct race *r;
	int t;
};

static void *racer_main(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	unsigned long seen = 0, other;
	int t = me->t, i;

	pthread_barrier_wait(&r->start);
	for (i = 0; i < NPAGES; i++) {
		uint64_t *q = (uint64_t *)(r->p + PAGES(i));

		if (__atomic_fetch_or(&r->inside[i], 1U << t, __ATOMIC_SEQ_CST) &
		    (1U << !t))
			__atomic_fetch_add(&r->races, 1, __ATOMIC_RELAXED);
		/* word 1 + t: the parent's pattern stays in the others */
		q[1 + t] = 0xc0de0000ULL + ((uint64_t)t << 12) + i;
		__atomic_fetch_and(&r->inside[i], ~(1U << t), __ATOMIC_SEQ_CST);
		__atomic_store_n(&r->progress[t], i + 1, __ATOMIC_RELEASE);
		other = __atomic_load_n(&r->progress[!t], __ATOMIC_ACQUIRE);
		if (other != seen) {
			seen = other;
			__atomic_fetch_add(&r->alternations, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* In the child: race, check, report races and alternations in a pipe. */
static int child_round(char *p, int report)
{
	struct race *r = calloc(1, sizeof(*r));
	struct racer a[2];
	pthread_t th[2];
	unsigned long out[2];
	int t, i, bad = 0;

	if (!r)
		return 1;
	r->p = p;
	pthread_barrier_init(&r->start, NULL, 2);
	for (t = 0; t < 2; t++) {
		a[t].r = r;
		a[t].t = t;
		if (pthread_create(&th[t], NULL, racer_main, &a[t]))
			return 1;
	}
	for (t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	for (i = 0; i < NPAGES; i++) {
		uint64_t *q = (uint64_t *)(p + PAGES(i));

		if (q[0] != upa_pattern(7, i, 0) ||
		    q[1] != 0xc0de0000ULL + i ||
		    q[2] != 0xc0de0000ULL + (1ULL << 12) + i ||
		    q[3] != upa_pattern(7, i, 3)) {
			fprintf(stderr, "# page %d: %#llx %#llx %#llx %#llx\n", i,
				(unsigned long long)q[0], (unsigned long long)q[1],
				(unsigned long long)q[2], (unsigned long long)q[3]);
			bad = 1;
		}
	}
	out[0] = r->races;
	out[1] = r->alternations;
	if (write(report, out, sizeof(out)) != sizeof(out))
		bad = 1;
	return bad;
}

FIXTURE(cow_race) {
	int fd;
};

FIXTURE_SETUP(cow_race)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
}

FIXTURE_TEARDOWN(cow_race)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F_TIMEOUT(cow_race, two_threads_cow_the_same_pages_and_both_writes_stay, 700)
{
	const char *env = getenv("UPALLOC_RACE_SECONDS");
	double seconds = env ? atof(env) : 3, start, end;
	unsigned long rounds = 0, races = 0, alternations = 0, got[2];
	int fd = self->fd, pipefd[2], st;
	char *p;
	pid_t pid;

	NEED_DEVICE();
	if (seconds <= 0 || seconds > 600)
		seconds = 3;
	ASSERT_EQ(0, pipe(pipefd));
	start = now_s();
	end = start + seconds;
	while (now_s() < end) {
		p = upa_map(fd, PAGES(NPAGES), 0);
		ASSERT_NE(NULL, p);
		fill_pages(p, 0, NPAGES, 7);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0)
			_exit(child_round(p, pipefd[1]));
		ASSERT_EQ(pid, waitpid(pid, &st, 0));
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
			TH_LOG("round %lu: a page lost a thread's write or the "
			       "parent's data (status %#x)", rounds, st);
		ASSERT_EQ(sizeof(got), read(pipefd[0], got, sizeof(got)));
		races += got[0];
		alternations += got[1];
		/* the parent's snapshot is untouched */
		ASSERT_EQ(-1, check_pages(p, 0, NPAGES, 7));
		munmap(p, PAGES(NPAGES));
		rounds++;
	}
	seconds = now_s() - start;
	printf("# cow_race: %lu rounds, %lu COW races, %lu alternations, in "
	       "%.1f s: %.1f races/s, %.1f alternations/s\n", rounds, races,
	       alternations, seconds, races / seconds, alternations / seconds);
	fflush(stdout);
	close(pipefd[0]);
	close(pipefd[1]);
}

UPALLOC_TEST_MAIN
