// SPDX-License-Identifier: MIT
/*
 * Description: fork. A child of a threaded program has a working allocator
 * and a private copy of the heap; it can free what the parent allocated
 * and start threads. Two deadlock patterns from glibc's fork handling
 * (see shared/design/fork-safety.md) run bounded in time, a hang counting
 * as failure: threads forking while other threads hold FILE locks inside
 * getline() and the stdio list lock inside fflush(NULL); and a
 * single-threaded process forking from a signal handler that interrupted
 * malloc or free. And a thread that never allocated forking while the main
 * thread allocates (the fork handler is registered lazily).
 */
#include <stdatomic.h>
#include <sys/time.h>

#include "upa_test.h"

UPA_FIXTURE(fork)

/* ---- background allocation while the main thread forks ---- */

static atomic_int stop_churn;

static void *churn(void *arg)
{
	unsigned int x = (unsigned int)(uintptr_t)arg + 7;
	void *keep[64] = { NULL };

	while (!atomic_load(&stop_churn)) {
		int slot;

		x = x * 1103515245 + 12345;
		slot = (x >> 10) % 64;
		free(keep[slot]);
		keep[slot] = malloc((x >> 16) % ((x & 0x100) ? 5000 : 300));
	}
	for (x = 0; x < 64; x++)
		free(keep[x]);
	return NULL;
}

static int child_allocates(void)
{
	void *p[200];
	int i;

	/* small and medium chunks from the heap, a few mmapped ones */
	for (i = 0; i < 200; i++) {
		p[i] = malloc(i % 50 == 0 ? (256 << 10) : (size_t)i * 24);
		if (!p[i])
			return 2;
		memset(p[i], i, i % 50 == 0 ? 4096 : (size_t)i * 24);
	}
	for (i = 0; i < 200; i += 2)
		free(p[i]);
	if (upa_heap_check())
		return 3;
	for (i = 1; i < 200; i += 2)
		free(p[i]);
	return upa_heap_check() ? 4 : 0;
}

TEST_F_TIMEOUT(fork, child_of_threaded_program_can_allocate, 120)
{
	pthread_t t[3];
	int i, st;

	atomic_store(&stop_churn, 0);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn,
					    (void *)(uintptr_t)i));
	for (i = 0; i < 25; i++) {
		pid_t pid;

		fflush(NULL);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			alarm(20);
			_exit(child_allocates());
		}
		ASSERT_EQ(0, wait_bounded(pid, 30, &st))
			TH_LOG("fork child %d hung", i);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
			TH_LOG("fork child %d failed: status 0x%x", i, st);
	}
	atomic_store(&stop_churn, 1);
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

TEST_F(fork, child_heap_is_a_private_copy)
{
	char *small = malloc(100), *big = malloc(1 << 20);
	int to_child[2], to_parent[2], st;
	char c;
	pid_t pid;

	memset(small, 'A', 100);
	memset(big, 'A', 1 << 20);
	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int bad = 0;
		char *again;

		alarm(20);
		/* the child sees the parent's data as of the fork... */
		bad |= small[0] != 'A' || small[99] != 'A' || big[12345] != 'A';
		memset(small, 'B', 100);
		memset(big, 'B', 1 << 20);
		free(small);
		again = malloc(100);
		memset(again, 'C', 100);
		if (write(to_parent[1], "x", 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)
			_exit(9);
		/* ...and none of the parent's later writes */
		bad |= big[0] != 'B' || again[0] != 'C';
		_exit(bad ? 1 : upa_heap_check() ? 2 : 0);
	}
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	/* the child's writes and frees did not reach the parent */
	EXPECT_EQ('A', small[0]);
	EXPECT_EQ('A', small[99]);
	EXPECT_EQ('A', big[0]);
	EXPECT_EQ('A', big[(1 << 20) - 1]);
	memset(big, 'Z', 1 << 20);
	ASSERT_EQ(1, write(to_child[1], "y", 1));
	ASSERT_EQ(0, wait_bounded(pid, 30, &st));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
		TH_LOG("child status 0x%x", st);
	EXPECT_EQ(0, upa_heap_check());
	free(small);
	free(big);
}

static void *alloc_in_thread(void *arg)
{
	void **p = arg;
	int i;

	for (i = 0; i < 50; i++)
		p[i] = malloc(100 + i * 50);
	return NULL;
}

TEST_F(fork, child_frees_chunks_of_every_parent_arena)
{
	void *main_chunks[50], *thread_chunks[50], *mapped;
	pthread_t t;
	pid_t pid;
	int i, st;

	for (i = 0; i < 50; i++)
		main_chunks[i] = malloc(100 + i * 50);
	ASSERT_EQ(0, pthread_create(&t, NULL, alloc_in_thread, thread_chunks));
	pthread_join(t, NULL);
	mapped = malloc(2 << 20);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		alarm(20);
		for (i = 0; i < 50; i++) {
			free(main_chunks[i]);
			free(thread_chunks[i]);
		}
		free(mapped);
		if (upa_heap_check())
			_exit(1);
		_exit(child_allocates());
	}
	ASSERT_EQ(0, wait_bounded(pid, 30, &st));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
		TH_LOG("child status 0x%x", st);
	for (i = 0; i < 50; i++) {
		free(main_chunks[i]);
		free(thread_chunks[i]);
	}
	free(mapped);
}

static void *thread_allocates(void *arg)
{
	(void)arg;
	return child_allocates() ? (void *)1 : NULL;
}

static int child_starts_threads(void)
{
	pthread_t t[4];
	void *ret;
	int i, bad = 0;

	for (i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, thread_allocates, NULL))
			return 5;
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &ret);
		bad |= ret != NULL;
	}
	return bad ? 6 : upa_heap_check() ? 7 : 0;
}

TEST_F(fork, child_of_threaded_program_can_start_threads)
{
	pthread_t t;
	pid_t pid;
	int st;

	atomic_store(&stop_churn, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, churn, (void *)1));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		alarm(20);
		_exit(child_starts_threads());
	}
	ASSERT_EQ(0, wait_bounded(pid, 30, &st));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
		TH_LOG("child status 0x%x", st);
	atomic_store(&stop_churn, 1);
	pthread_join(t, NULL);
}

/*
 * Progress of a workload child, in memory shared with the test process:
 * when the bound runs out, it tells a deadlock (stuck) from a slow guest
 * (still counting).
 */
struct progress {
	atomic_int forks_done;
};

static struct progress *progress_map(struct __test_metadata *_metadata)
{
	struct progress *pr = mmap(NULL, sizeof(*pr), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, pr);
	atomic_store(&pr->forks_done, 0);
	return pr;
}

/* Run a fork workload bounded by timeout_s; report its progress. */
static void run_fork_workload(struct __test_metadata *_metadata,
			      int (*fn)(void *), struct progress *pr,
			      int total, int timeout_s)
{
	struct timespec t0, t1;
	int st = 0, ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = run_child(fn, pr, timeout_s, &st);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ksft_print_msg("%d of %d forks in %ld s\n", atomic_load(&pr->forks_done),
		       total, (long)(t1.tv_sec - t0.tv_sec));
	fflush(stdout);	/* the harness ends this process with _exit() */
	EXPECT_EQ(0, ret)
		TH_LOG("not finished after %d s: %d of %d forks done (deadlock)",
		       timeout_s, atomic_load(&pr->forks_done), total);
	/* More than asked means the workload did not stop at its count. */
	EXPECT_LE(atomic_load(&pr->forks_done), total)
		TH_LOG("%d of %d forks done: overran its count",
		       atomic_load(&pr->forks_done), total);
	EXPECT_FALSE(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
		TH_LOG("hung until its alarm: %d of %d forks done (deadlock)",
		       atomic_load(&pr->forks_done), total);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
		TH_LOG("workload failed: %s %d (11: a fork child failed, 12: heap check, 13: a fork child hung)",
		       WIFEXITED(st) ? "exit status" : "signal",
		       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ---- pattern 1: fork vs. getline vs. fflush(NULL) ---- */

#define FORKERS 2
#define FORKS_EACH 30

static atomic_int stdio_stop;
static atomic_int stdio_failures;
static atomic_int stdio_child_hangs;

static void *forker(void *arg)
{
	struct progress *pr = arg;
	int i, st;

	for (i = 0; i < FORKS_EACH; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			atomic_fetch_add(&stdio_failures, 1);
			break;
		}
		if (pid == 0) {
			void *p;

			alarm(10);	/* a deadlocked child must not linger */
			p = malloc(300);
			free(p);
			p = malloc(5000);
			free(p);
			_exit(p ? 0 : 1);
		}
		if (waitpid(pid, &st, 0) != pid)
			atomic_fetch_add(&stdio_failures, 1);
		else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
			atomic_fetch_add(&stdio_child_hangs, 1);
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			atomic_fetch_add(&stdio_failures, 1);
		atomic_fetch_add(&pr->forks_done, 1);
	}
	return NULL;
}

static void *line_reader(void *arg)
{
	FILE *f = arg;

	while (!atomic_load(&stdio_stop)) {
		char *line = NULL;	/* getline mallocs under the FILE lock */
		size_t cap = 0;

		if (getline(&line, &cap, f) < 0)
			rewind(f);
		free(line);
	}
	return NULL;
}

static void *flusher(void *arg)
{
	(void)arg;
	while (!atomic_load(&stdio_stop))
		fflush(NULL);	/* the list lock, then each FILE lock */
	return NULL;
}

static int stdio_fork_workload(void *progress)
{
	pthread_t fk[FORKERS], rd[2], fl[2];
	FILE *files[2];
	int i, j;

	for (i = 0; i < 2; i++) {
		files[i] = tmpfile();
		if (!files[i])
			return 10;
		/*
		 * Lines of 1.5 to 6 kB: getline's buffer then grows beyond the
		 * thread cache, so its mallocs take an arena lock while the
		 * FILE lock is held (the first link of the deadlock cycle).
		 */
		for (j = 0; j < 200; j++)
			fprintf(files[i], "%0*d\n", 1500 + (j * 397) % 4500, j);
		rewind(files[i]);
		pthread_create(&rd[i], NULL, line_reader, files[i]);
		pthread_create(&fl[i], NULL, flusher, NULL);
	}
	for (i = 0; i < FORKERS; i++)
		pthread_create(&fk[i], NULL, forker, progress);
	for (i = 0; i < FORKERS; i++)
		pthread_join(fk[i], NULL);
	atomic_store(&stdio_stop, 1);
	for (i = 0; i < 2; i++) {
		pthread_join(rd[i], NULL);
		pthread_join(fl[i], NULL);
		fclose(files[i]);
	}
	/* exit codes for the parent's report */
	if (atomic_load(&stdio_child_hangs))
		return 13;	/* a fork child hung in malloc or exit */
	if (atomic_load(&stdio_failures))
		return 11;	/* a fork child failed */
	return upa_heap_check() ? 12 : 0;
}

/*
 * The bound is generous: on the device backend under TCG on a busy host a
 * fork of this process takes up to a second; a deadlock never ends.
 */
TEST_F_TIMEOUT(fork, fork_while_threads_hold_stdio_locks_does_not_deadlock,
	       330)
{
	run_fork_workload(_metadata, stdio_fork_workload, progress_map(_metadata),
			  FORKERS * FORKS_EACH, 240);
}

/* ---- pattern 2: fork from a signal handler that interrupted malloc ---- */

#define HANDLER_FORKS 100

static volatile sig_atomic_t handler_forks, handler_failures;
static struct progress *handler_progress;

static void fork_in_handler(int sig)
{
	int saved_errno = errno, st;
	pid_t pid;

	(void)sig;
	/*
	 * Once the count is reached the handler must not fork again: when a
	 * fork costs more CPU time than the timer's period (a debug kernel
	 * takes tens of ms), the next SIGPROF is pending as this handler
	 * returns, so the interrupted loop never runs to see the count and
	 * the handler would fork on forever.
	 */
	if (handler_forks >= HANDLER_FORKS)
		return;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		handler_failures++;
	handler_forks++;
	atomic_fetch_add(&handler_progress->forks_done, 1);
	errno = saved_errno;
}

static int signal_fork_workload(void *progress)
{
	struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa = { .sa_handler = fork_in_handler };
	void *keep[32] = { NULL };
	unsigned int x = 99;
	int i;

	handler_progress = progress;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGPROF, &sa, NULL))
		return 20;
	/*
	 * No system calls in the loop (the heap neither grows nor shrinks),
	 * and sizes above the thread cache: nearly all the CPU time, where
	 * the CPU-time ticks land, is spent inside malloc and free with the
	 * arena locked.
	 */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 4 << 20);
	if (setitimer(ITIMER_PROF, &every_ms, NULL))
		return 21;
	while (handler_forks < HANDLER_FORKS) {
		int slot;

		x = x * 1103515245 + 12345;
		slot = (x >> 8) % 32;
		free(keep[slot]);
		keep[slot] = malloc(1100 + (x >> 16) % 3000);
	}
	setitimer(ITIMER_PROF, &off, NULL);
	for (i = 0; i < 32; i++)
		free(keep[i]);
	if (handler_failures)
		return 22;
	return upa_heap_check() ? 23 : 0;
}

TEST_F_TIMEOUT(fork, fork_from_signal_handler_during_malloc_does_not_deadlock,
	       330)
{
	run_fork_workload(_metadata, signal_fork_workload,
			  progress_map(_metadata), HANDLER_FORKS, 240);
}

/*
 * ---- pattern 3: a thread that never allocated forks while the main
 * thread is inside malloc and free ----
 *
 * The fork handler is registered lazily (arena.c: on the first lock
 * taken once the process has threads): here by the main thread, since
 * the forking thread never enters the allocator before its fork. A
 * child that inherits the main arena locked must still allocate.
 */

#define QUIET_FORKS 60

static atomic_int quiet_stop, quiet_failures;

static void *quiet_forker(void *arg)
{
	struct progress *pr = arg;
	int i, st;

	for (i = 0; i < QUIET_FORKS; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			atomic_fetch_add(&quiet_failures, 1);
			break;
		}
		if (pid == 0) {
			alarm(10);	/* a deadlocked child must not linger */
			_exit(child_allocates());
		}
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			atomic_fetch_add(&quiet_failures, 1);
		atomic_fetch_add(&pr->forks_done, 1);
	}
	atomic_store(&quiet_stop, 1);
	return NULL;
}

static int quiet_fork_workload(void *progress)
{
	void *keep[32] = { NULL };
	unsigned int x = 5;
	pthread_t t;
	int i;

	if (pthread_create(&t, NULL, quiet_forker, progress))
		return 20;
	/* Above the thread cache: every call takes the arena lock. */
	while (!atomic_load(&quiet_stop)) {
		int slot;

		x = x * 1103515245 + 12345;
		slot = (x >> 8) % 32;
		free(keep[slot]);
		keep[slot] = malloc(5000 + (x >> 16) % 4000);
	}
	pthread_join(t, NULL);
	for (i = 0; i < 32; i++)
		free(keep[i]);
	if (atomic_load(&quiet_failures))
		return 11;
	return upa_heap_check() ? 12 : 0;
}

TEST_F_TIMEOUT(fork, fork_by_a_thread_that_never_allocated, 330)
{
	run_fork_workload(_metadata, quiet_fork_workload,
			  progress_map(_metadata), QUIET_FORKS, 240);
}

/*
 * ---- a fork child with no usable arena ----
 * With one arena for all (M_ARENA_MAX 1) and threads that take its lock
 * all the time (blocks past the thread cache), many forks happen while it
 * is held: the child quarantines it and must make a new arena, which
 * RLIMIT_AS forbids. malloc and memalign must then fail with ENOMEM (or
 * fall back to a region of their own), never dereference the missing
 * arena (44 to 123 of 300 such children died of SIGSEGV).
 */
static atomic_int stop_locking;

static void *lock_holder(void *arg)
{
	unsigned int x = (unsigned int)(uintptr_t)arg * 7919 + 1;
	void *keep[16] = { NULL };

	while (!atomic_load(&stop_locking)) {
		int slot;

		x = x * 1103515245 + 12345;
		slot = (x >> 10) % 16;
		free(keep[slot]);
		keep[slot] = malloc(5000 + (x >> 16) % 20000);
	}
	for (x = 0; x < 16; x++)
		free(keep[x]);
	return NULL;
}

/* Exit status: 0 memory from an arena, 1 none usable, 2 wrong result. */
static int child_without_arena(void)
{
	struct rlimit lim;
	unsigned long pages = 0;
	char buf[64] = "";
	int fd = open("/proc/self/statm", O_RDONLY), none = 0, i;
	ssize_t n;

	if (fd < 0)
		return 2;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || sscanf(buf, "%lu", &pages) != 1)
		return 2;
	/* No new mapping at all: neither a heap nor a region. */
	lim.rlim_cur = lim.rlim_max = pages * (unsigned long)getpagesize();
	if (setrlimit(RLIMIT_AS, &lim))
		return 2;
	for (i = 0; i < 4; i++) {
		void *p = i & 1 ? memalign(64, 6000) : malloc(6000 + i);

		if (!p) {
			if (errno != ENOMEM)
				return 2;
			none = 1;
			continue;
		}
		memset(p, 1, 6000);
		free(p);
	}
	return none;
}

TEST_F_TIMEOUT(fork, child_without_usable_arena_fails_with_enomem, 120)
{
	int i, st, none = 0, crashed = 0, wrong = 0, forks = 0;
	pthread_t t[2];

	ASSERT_EQ(1, mallopt(M_ARENA_MAX, 1));
	atomic_store(&stop_locking, 0);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, lock_holder,
					    (void *)(uintptr_t)i));
	for (i = 0; i < 300 && none < 20; i++) {
		pid_t pid;

		fflush(NULL);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			alarm(20);
			_exit(child_without_arena());
		}
		forks++;
		ASSERT_EQ(0, wait_bounded(pid, 30, &st))
			TH_LOG("fork child %d hung", i);
		if (WIFSIGNALED(st))
			crashed++;
		else if (WEXITSTATUS(st) == 1)
			none++;
		else if (WEXITSTATUS(st) != 0)
			wrong++;
	}
	atomic_store(&stop_locking, 1);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	EXPECT_EQ(0, crashed)
		TH_LOG("%d of %d children died of a signal", crashed, forks);
	EXPECT_EQ(0, wrong)
		TH_LOG("%d of %d children got NULL without ENOMEM", wrong, forks);
	/* Else the case was not met (the arena was never held at a fork). */
	EXPECT_LT(0, none + crashed)
		TH_LOG("no child of %d found every arena quarantined", forks);
}

TEST_HARNESS_MAIN
