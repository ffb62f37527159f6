// SPDX-License-Identifier: GPL-2.0
/*
 * Description: process-shared futexes on device memory (issue 11, item 6).
 * FUTEX_WAIT/FUTEX_WAKE without FUTEX_PRIVATE_FLAG work on a region, and so
 * do glibc's PTHREAD_PROCESS_SHARED mutexes and condition variables,
 * sem_init(..., 1, ...) semaphores and barriers, also in the copy-on-write
 * snapshot a fork child inherits, with threads of parent and child using
 * their own copies at the same time. A futex word keeps its key across a
 * fork of the process (a waiter sleeping before the fork is woken after
 * it, when the wake breaks copy-on-write first), and parent and child
 * copies of one word are different futexes.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>

#include "upalloc_test.h"

#define NPAGES		4
#define ROUNDS		2000

FIXTURE(futex) {
	int fd;
	char *p;
};

FIXTURE_SETUP(futex)
{
	OPEN_DEVICE_OR_SKIP(&self->fd);
	self->p = upa_map(self->fd, PAGES(NPAGES), 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(futex)
{
	if (self->p)
		munmap(self->p, PAGES(NPAGES));
	if (self->fd >= 0)
		close(self->fd);
}

static long futex_op(uint32_t *uaddr, int op, uint32_t val,
		     const struct timespec *timeout)
{
	return syscall(SYS_futex, uaddr, op, val, timeout, NULL, 0);
}

TEST_F(futex, shared_futex_wake_and_wait_work)
{
	struct timespec ts = { 0, 1000000 };
	uint32_t *w = (uint32_t *)(self->p + PAGES(1));

	NEED_DEVICE();
	EXPECT_EQ(0, futex_op(w, FUTEX_WAKE, 1, NULL))
		TH_LOG("FUTEX_WAKE: %s", strerror(errno));
	/* Value differs: EAGAIN, not EFAULT. */
	EXPECT_EQ(-1, futex_op(w, FUTEX_WAIT, 1, &ts));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(-1, futex_op(w, FUTEX_WAIT, 0, &ts));
	EXPECT_EQ(ETIMEDOUT, errno);
}

/* Everything glibc builds on process-shared futexes, in one place. */
struct shared_objs {
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	pthread_barrier_t barrier;
	sem_t sem;
	long counter;
	int turn;
};

static int init_objs(struct shared_objs *o)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	pthread_barrierattr_t ba;

	if (pthread_mutexattr_init(&ma) ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) ||
	    pthread_mutex_init(&o->mutex, &ma))
		return -1;
	if (pthread_condattr_init(&ca) ||
	    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED) ||
	    pthread_cond_init(&o->cond, &ca))
		return -1;
	if (pthread_barrierattr_init(&ba) ||
	    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED) ||
	    pthread_barrier_init(&o->barrier, &ba, 2))
		return -1;
	if (sem_init(&o->sem, 1, 0))
		return -1;
	o->counter = 0;
	o->turn = 0;
	return 0;
}

/*
 * Two threads take turns through the condition variable, hand a
 * semaphore back and forth and meet at the barrier, ROUNDS times each:
 * every step that blocks needs a FUTEX_WAKE from the other thread.
 */
static void *ping(void *arg)
{
	struct shared_objs *o = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&o->mutex);
		while (o->turn != 0)
			pthread_cond_wait(&o->cond, &o->mutex);
		o->counter++;
		o->turn = 1;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->mutex);
		sem_post(&o->sem);
		pthread_barrier_wait(&o->barrier);
	}
	return NULL;
}

static void *pong(void *arg)
{
	struct shared_objs *o = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&o->mutex);
		while (o->turn != 1)
			pthread_cond_wait(&o->cond, &o->mutex);
		o->counter++;
		o->turn = 0;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->mutex);
		while (sem_wait(&o->sem) && errno == EINTR)
			;
		pthread_barrier_wait(&o->barrier);
	}
	return NULL;
}

/* Returns the counter after both threads, or -1. */
static long ping_pong(struct shared_objs *o)
{
	pthread_t a, b;

	if (pthread_create(&a, NULL, ping, o))
		return -1;
	if (pthread_create(&b, NULL, pong, o))
		return -1;
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return o->counter;
}

TEST_F(futex, pshared_mutex_cond_sem_barrier_work_between_threads)
{
	struct shared_objs *o = (struct shared_objs *)self->p;

	NEED_DEVICE();
	ASSERT_EQ(0, init_objs(o));
	EXPECT_EQ(2 * ROUNDS, ping_pong(o));
}

/*
 * The objects are set up before the fork; parent and child then run the
 * same exchange at the same time, each on its own copy at the same
 * address. Copies must not wake each other's waiters instead of their
 * own (that would lose wake-ups and hang), and each counts to its end.
 */
TEST_F(futex, pshared_objects_in_fork_snapshot_work_in_both)
{
	struct shared_objs *o = (struct shared_objs *)self->p;
	pid_t pid;

	NEED_DEVICE();
	ASSERT_EQ(0, init_objs(o));
	o->counter = 1000000;
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
			CHILD_CHECK(ping_pong(o) == 1000000 + 2 * ROUNDS);
		_exit(0);
	}
	o->counter = 0;
	EXPECT_EQ(2 * ROUNDS, ping_pong(o));
	EXPECT_EQ(0, wait_child_ok(pid));
}

/* A thread asleep in FUTEX_WAIT on the word at arg. */
struct waiter {
	uint32_t *word;
	pid_t tid;
	long ret;
	int err;
};

static void *wait_on_word(void *arg)
{
	struct timespec ts = { 20, 0 };
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	w->ret = futex_op(w->word, FUTEX_WAIT, 0, &ts);
	w->err = errno;
	return NULL;
}

/* Wait until thread tid sleeps in the futex system call. */
static int wait_until_in_futex(pid_t tid)
{
	char path[64], buf[64];
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	for (i = 0; i < 2000; i++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (atoi(buf) == SYS_futex)
				return 0;
		}
		usleep(5000);
	}
	return -1;
}

/*
 * A thread sleeps on a word; another thread forks (the word's page is now
 * shared with the child), then writes the word and wakes the sleeper:
 * the wake breaks copy-on-write first and must still find the sleeper's
 * key. The child's wake of its own copy must not wake the parent's
 * sleeper.
 */
TEST_F(futex, waiter_before_fork_is_woken_after_fork)
{
	struct waiter w = { .word = (uint32_t *)(self->p + PAGES(2)) };
	struct upa_channel ch;
	pthread_t t;
	pid_t pid, tid;

	NEED_DEVICE();
	ASSERT_EQ(0, channel_open(&ch));
	*w.word = 0;
	ASSERT_EQ(0, pthread_create(&t, NULL, wait_on_word, &w));
	while (!(tid = __atomic_load_n(&w.tid, __ATOMIC_ACQUIRE)))
		usleep(1000);
	ASSERT_EQ(0, wait_until_in_futex(tid));

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Its own copy: wakes nobody (the waiter is the parent's). */
		*w.word = 2;
		CHILD_CHECK(futex_op(w.word, FUTEX_WAKE, 1, NULL) == 0);
		TELL_PARENT(&ch, 'w');
		/* Alive, so that the parent's write copies the page. */
		CHILD_CHECK(WAIT_PARENT(&ch) == 'x');
		CHILD_CHECK(*w.word == 2);
		_exit(0);
	}
	ASSERT_EQ('w', WAIT_CHILD(&ch));
	/* Still asleep after the child's wake. */
	usleep(100000);
	EXPECT_EQ(0, wait_until_in_futex(tid));
	EXPECT_EQ(0, *w.word);

	__atomic_store_n(w.word, 1, __ATOMIC_SEQ_CST);
	EXPECT_EQ(1, futex_op(w.word, FUTEX_WAKE, 1, NULL))
		TH_LOG("FUTEX_WAKE: %s", strerror(errno));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, w.ret) TH_LOG("FUTEX_WAIT: %s", strerror(w.err));
	TELL_CHILD(&ch, 'x');
	EXPECT_EQ(0, wait_child_ok(pid));
	channel_close(&ch);
}

UPALLOC_TEST_MAIN
