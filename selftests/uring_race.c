// SPDX-License-Identifier: GPL-2.0
/*
 * Description: the io_uring command is read once (issue 11, item 10).
 *
 * Whether a command runs inline (in the submitter, during
 * io_uring_enter()) or in an io-wq worker is decided on its length; the
 * command that runs must be the one decided on. A module that reads the
 * user's structure once for the decision and again for the command lets a
 * thread that changes the length in between run a long POPULATE inline,
 * blocking the submitter for all of it (and out of reach of io_uring's
 * cancellation). Here a thread flips the length of a POPULATE between 1
 * page and BIG_PAGES while the main thread submits it over and over. The
 * region took part in a fork, so POPULATE maps its pages through the fault
 * handler, and each such fault counts in the minor faults of the thread
 * that runs the command (getrusage(RUSAGE_THREAD)): a long populate run
 * inline shows as BIG_PAGES faults of the submitter's own, a punted one as
 * none. The race needs real parallelism: run by tools/guest/race-suites
 * (multi-threaded TCG); elsewhere it rarely interleaves and passes.
 * UPALLOC_RACE_SECONDS bounds the run (default 10).
 */
#include <liburing.h>
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

#include "upalloc_test.h"

#define BIG_PAGES	256	/* 1 MiB: 4 times the default inline limit */

FIXTURE(uring_race) {
	int fd;
	char *p;
	struct io_uring ring;
	bool have_ring;
};

FIXTURE_SETUP(uring_race)
{
	int ret;

	self->have_ring = false;
	self->p = NULL;
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(BIG_PAGES), 0);
	ASSERT_NE(NULL, self->p);
	ret = io_uring_queue_init(4, &self->ring, 0);
	if (ret == -ENOSYS || ret == -EPERM) {
		ASSERT_EQ(NULL, getenv("UPALLOC_STRICT"))
			TH_LOG("io_uring unavailable: %s", strerror(-ret));
		SKIP(return, "io_uring unavailable: %s", strerror(-ret));
	}
	ASSERT_EQ(0, ret);
	self->have_ring = true;
}

FIXTURE_TEARDOWN(uring_race)
{
	if (self->have_ring)
		io_uring_queue_exit(&self->ring);
	if (self->p)
		munmap(self->p, PAGES(BIG_PAGES));
	if (self->fd >= 0)
		close(self->fd);
}

struct flipper {
	struct upalloc_range *rg;
	volatile bool stop;
	unsigned long flips;
};

/* Flip the command's length between 1 page and BIG_PAGES, nonstop. */
static void *flip_len(void *arg)
{
	struct flipper *f = arg;

	while (!f->stop) {
		__atomic_store_n(&f->rg->len, PAGES(1), __ATOMIC_RELAXED);
		__atomic_store_n(&f->rg->len, PAGES(BIG_PAGES), __ATOMIC_RELAXED);
		f->flips++;
	}
	return NULL;
}

/* Minor faults of the calling thread so far. */
static uint64_t thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return 0;
	return ru.ru_minflt;
}

static uint64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Submit POPULATE with arg rg; the submitter's faults during the submit. */
static int submit_populate(struct io_uring *ring, int fd,
			   struct upalloc_range *rg, uint64_t *faults,
			   int *res)
{
	struct upalloc_uring_cmd payload = { .arg = (uintptr_t)rg };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	uint64_t t0;

	if (!sqe)
		return -1;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = UPALLOC_IOC_POPULATE;
	memcpy(sqe->cmd, &payload, sizeof(payload));
	t0 = thread_minflt();
	if (io_uring_submit(ring) != 1)
		return -1;
	*faults = thread_minflt() - t0;
	if (io_uring_wait_cqe(ring, &cqe))
		return -1;
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

TEST_F_TIMEOUT(uring_race, long_populate_never_runs_inline_while_length_flips, 120)
{
	unsigned long tries = 0, inline_long = 0, small = 0, big = 0, torn = 0;
	uint64_t ref_faults, t0, faults, nr, present, end;
	const char *env = getenv("UPALLOC_RACE_SECONDS");
	struct upalloc_range ref, rg;
	struct flipper f = { .rg = &rg };
	pthread_t th;
	pid_t pid;
	int res;

	NEED_DEVICE();
	/* After a fork, POPULATE maps through the fault handler. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(0);
	ASSERT_EQ(0, wait_child_ok(pid));
	ref = (struct upalloc_range){ .addr = (uintptr_t)self->p,
				      .len = PAGES(BIG_PAGES) };
	t0 = thread_minflt();
	ASSERT_EQ(0, upa_ioctl(self->fd, UPALLOC_IOC_POPULATE, &ref));
	ref_faults = thread_minflt() - t0;
	ASSERT_EQ(BIG_PAGES, ref.nr_pages);
	/* The observable: the faults are the populating thread's. */
	ASSERT_LE(BIG_PAGES, ref_faults);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(BIG_PAGES), &nr));
	/* And none of the submitter's when it runs in io-wq. */
	rg = ref;
	rg.nr_pages = 0;
	ASSERT_EQ(0, submit_populate(&self->ring, self->fd, &rg, &faults, &res));
	ASSERT_EQ(0, res);
	ASSERT_GT(BIG_PAGES / 2, faults);
	ASSERT_EQ(0, upa_decommit(self->fd, self->p, PAGES(BIG_PAGES), &nr));

	ASSERT_EQ(0, pthread_create(&th, NULL, flip_len, &f));
	end = now_s() + (env ? strtoul(env, NULL, 0) : 10);
	while (now_s() < end && inline_long == 0) {
		tries++;
		rg.nr_pages = 0;
		ASSERT_EQ(0, submit_populate(&self->ring, self->fd, &rg,
					     &faults, &res));
		/*
		 * The copy may tear the length (copy_from_user() moves
		 * bytes): 0 or 257 pages, both refused. The user's own race.
		 */
		if (res == -EINVAL)
			torn++;
		else
			ASSERT_EQ(0, res);
		present = upa_pages_present(self->fd, self->p);
		if (present == BIG_PAGES)
			big++;
		else if (present)
			small++;
		if (faults >= BIG_PAGES / 2) {
			inline_long++;
			TH_LOG("try %lu: %llu pages populated inline (%llu faults of the submitter's)",
			       tries, (unsigned long long)present,
			       (unsigned long long)faults);
		}
		ASSERT_EQ(0, upa_decommit(self->fd, self->p,
					  PAGES(BIG_PAGES), &nr));
	}
	f.stop = true;
	pthread_join(th, NULL);
	TH_LOG("%lu submissions (%lu ran with 1 page, %lu with %d, %lu read a torn length), %lu length flips",
	       tries, small, big, BIG_PAGES, torn, f.flips);
	EXPECT_EQ(0, inline_long);
}

UPALLOC_TEST_MAIN
