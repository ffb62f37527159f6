// SPDX-License-Identifier: MIT
/*
 * Description: randomized multithreaded stress of the whole malloc family
 * against a shadow model (shadow.h). Prints KTAP.
 *
 * Worker threads each own a table of block slots and, in a random mix,
 * allocate with every entry point (malloc, calloc, realloc, reallocarray,
 * memalign, posix_memalign, aligned_alloc, valloc, pvalloc), check and free,
 * hand blocks to another worker through its queue (so blocks are freed by a
 * thread other than their allocator, also after that thread exited), change
 * the cache and arena tunables with mallopt, call malloc_trim, fork (the
 * child checks the blocks it inherited, frees some, allocates, runs the
 * heap check and exits) and run upa_heap_check(). Workers exit after a
 * random number of operations, leaving their blocks to their successor;
 * the main thread starts a new worker in the freed place until the time is
 * up. Every block carries a pattern derived from (seed, block id) over its
 * whole usable size, checked before it is freed or reallocated; a calloc'd
 * block must be zero over its whole usable size, as glibc's is.
 *
 * Environment (or argv: stress [SEED [SECONDS [THREADS]]]):
 *   UPALLOC_SEED             the seed (default: from the clock); printed
 *   UPALLOC_STRESS_SECONDS   how long to run (default 15)
 *   UPALLOC_STRESS_THREADS   workers at a time (default 4)
 *   UPALLOC_STRESS_NOFORK=1  no fork (e.g. under ThreadSanitizer)
 * Replay: the same seed gives every worker the same sequence of choices;
 * the interleaving of threads is the scheduler's, so a threaded failure may
 * need several runs with its seed.
 *
 * Built twice: stress (linked with libupalloc.a whole, so malloc is
 * upalloc's) and, with -DSTRESS_PREFIX, over the upa_* names only, for the
 * sanitizer builds (userlib/tests/Makefile).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "upalloc.h"
#include "shadow.h"

#ifdef STRESS_PREFIX
#define A(fn) upa_##fn
#else
#define A(fn) fn
#endif

#define MAX_THREADS	32
#define SLOTS		512
#define QUEUE_LEN	256
#define HEAP_CHECK_EVERY 1000	/* operations per worker between checks */

struct block {
	void *p;
	size_t req;		/* requested size */
	size_t usable;		/* malloc_usable_size() when allocated */
	uint64_t id;
};

struct queue {
	pthread_mutex_t lock;
	unsigned int head, n;
	struct block b[QUEUE_LEN];
};

struct worker {
	pthread_t thread;
	int place;		/* index in places[] */
	unsigned int generation;
	atomic_bool done;
	bool running;
	struct shadow_rng rng;
	uint64_t ops;
};

/*
 * Per place (not per thread): a worker's slots and queue outlive it, so
 * its successor frees what it left behind, from another thread.
 */
struct place {
	struct block slot[SLOTS];
	struct queue q;
	struct worker w;
};

static uint64_t seed;
static unsigned int nthreads = 4;
static unsigned int seconds = 15;
static bool nofork;
static struct place *places;
static atomic_bool stop;
static atomic_uint_fast64_t next_id = 1;
static atomic_uint_fast64_t total_ops, forks, fork_failures, heap_checks,
	mallopts, trims, remote_frees, null_returns;
static atomic_int failures;
static atomic_int content_failures, heap_check_failures;
static atomic_long last_fork_ns;

/* Diagnostics without stdio locks in the way of fork: one write each. */
static void diag(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	buf[0] = '#';
	buf[1] = ' ';
	va_start(ap, fmt);
	n = vsnprintf(buf + 2, sizeof(buf) - 3, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n += 2;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0)
		return;
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void fail_block(const char *what, const struct block *b, size_t off,
		       int place)
{
	atomic_fetch_add(&failures, 1);
	atomic_fetch_add(&content_failures, 1);
	diag("FAIL seed %" PRIu64 " place %d: %s: block id %" PRIu64
	     " at %p, requested %zu, usable %zu, wrong byte at offset %zu",
	     seed, place, what, b->id, b->p, b->req, b->usable, off);
}

/* The block must still hold its pattern over its usable size. */
static bool block_ok(const struct block *b, const char *when, int place)
{
	size_t off = shadow_check(b->p, 0, b->usable, seed, b->id);

	if (off == (size_t)-1)
		return true;
	fail_block(when, b, off, place);
	return false;
}

static void block_fill(struct block *b, size_t from)
{
	shadow_fill(b->p, from, b->usable, seed, b->id);
}

static bool usable_ok(struct block *b, const char *fn, int place)
{
	size_t u = A(malloc_usable_size)(b->p);

	if (u < b->req) {
		atomic_fetch_add(&failures, 1);
		atomic_fetch_add(&content_failures, 1);
		diag("FAIL seed %" PRIu64 " place %d: %s(%zu) = %p: usable size %zu < requested",
		     seed, place, fn, b->req, b->p, u);
		return false;
	}
	b->usable = u;
	return true;
}

static void release(struct block *b, int place)
{
	block_ok(b, "before free", place);
	A(free)(b->p);
	b->p = NULL;
}

/*
 * Allocate into the empty slot b with a random entry point. Returns false
 * when the allocation failed (NULL is allowed only with ENOMEM).
 */
static bool allocate(struct shadow_rng *r, struct block *b, int place)
{
	size_t req = shadow_size(r), align = 0, page = 4096;
	const char *fn;
	bool zero = false;
	void *p = NULL;
	int rc;

	errno = 0;
	switch (shadow_below(r, 12)) {
	case 0:
		fn = "calloc";
		zero = true;
		if (shadow_below(r, 2)) {
			req = req / 8 * 8;
			p = A(calloc)(req / 8, 8);
		} else {
			p = A(calloc)(1, req);
		}
		break;
	case 1:
		fn = "memalign";
		align = (size_t)16 << shadow_below(r, 9);	/* 16..4096 */
		p = A(memalign)(align, req);
		break;
	case 2:
		fn = "posix_memalign";
		align = (size_t)8 << shadow_below(r, 10);
		rc = A(posix_memalign)(&p, align, req);
		if (rc) {
			errno = rc;
			p = NULL;
		}
		break;
	case 3:
		fn = "aligned_alloc";
		align = (size_t)1 << shadow_below(r, 13);
		p = A(aligned_alloc)(align, req);
		break;
	case 4:
		fn = shadow_below(r, 2) ? "valloc" : "pvalloc";
		align = page;
		if (fn[0] == 'v') {
			p = A(valloc)(req);
		} else {
			p = A(pvalloc)(req);
			req = (req + page - 1) / page * page;
			if (!req)
				req = page;
		}
		break;
	case 5:
		fn = "reallocarray(NULL)";
		p = A(reallocarray)(NULL, 1, req);
		break;
	case 6:
		fn = "realloc(NULL)";
		p = A(realloc)(NULL, req);
		break;
	default:
		fn = "malloc";
		p = A(malloc)(req);
		break;
	}
	if (!p) {
		atomic_fetch_add(&null_returns, 1);
		if (errno != ENOMEM) {
			atomic_fetch_add(&failures, 1);
			atomic_fetch_add(&content_failures, 1);
			diag("FAIL seed %" PRIu64 " place %d: %s(%zu) returned NULL with errno %d, not ENOMEM",
			     seed, place, fn, req, errno);
		}
		return false;
	}
	b->p = p;
	b->req = req;
	b->id = atomic_fetch_add(&next_id, 1);
	if (align && (uintptr_t)p % align) {
		atomic_fetch_add(&failures, 1);
		atomic_fetch_add(&content_failures, 1);
		diag("FAIL seed %" PRIu64 " place %d: %s(%zu, %zu) = %p is misaligned",
		     seed, place, fn, align, req, p);
	}
	if (!usable_ok(b, fn, place)) {
		b->p = NULL;	/* leaked: do not touch what we cannot trust */
		return false;
	}
	if (zero) {
		size_t off = shadow_first_nonzero(p, b->usable);

		if (off != (size_t)-1) {
			atomic_fetch_add(&failures, 1);
			atomic_fetch_add(&content_failures, 1);
			diag("FAIL seed %" PRIu64 " place %d: calloc'd block %p (requested %zu, usable %zu) has a non-zero byte at offset %zu",
			     seed, place, p, req, b->usable, off);
		}
	}
	block_fill(b, 0);
	return true;
}

/* realloc or reallocarray the live block b to a new random size. */
static void reallocate(struct shadow_rng *r, struct block *b, int place)
{
	size_t req = shadow_below(r, 4) ? shadow_size(r) : b->req + shadow_below(r, 64);
	size_t keep;
	bool arr = shadow_below(r, 4) == 0;
	struct block nb = *b;
	void *p;

	if (!block_ok(b, "before realloc", place))
		return;
	errno = 0;
	if (arr && req >= 16)
		p = A(reallocarray)(b->p, req / 16, 16), req = req / 16 * 16;
	else if (arr)
		p = A(reallocarray)(b->p, req, 1);
	else
		p = A(realloc)(b->p, req);
	if (!p) {
		/* realloc(p, 0) may free; otherwise the old block stays. */
		if (req == 0) {
			b->p = NULL;
			return;
		}
		atomic_fetch_add(&null_returns, 1);
		if (errno != ENOMEM) {
			atomic_fetch_add(&failures, 1);
			atomic_fetch_add(&content_failures, 1);
			diag("FAIL seed %" PRIu64 " place %d: realloc(%zu) returned NULL with errno %d",
			     seed, place, req, errno);
		}
		block_ok(b, "after failed realloc", place);
		return;
	}
	nb.p = p;
	nb.req = req;
	if (!usable_ok(&nb, "realloc", place)) {
		b->p = NULL;
		return;
	}
	/* The old contents up to the smaller requested size moved along. */
	keep = b->req < req ? b->req : req;
	{
		size_t off = shadow_check(p, 0, keep, seed, b->id);

		if (off != (size_t)-1)
			fail_block("contents lost by realloc", &nb, off, place);
	}
	nb.id = atomic_fetch_add(&next_id, 1);
	block_fill(&nb, 0);
	*b = nb;
}

static void queue_init(struct queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	q->head = q->n = 0;
}

static bool queue_push(struct queue *q, const struct block *b)
{
	bool ok = false;

	pthread_mutex_lock(&q->lock);
	if (q->n < QUEUE_LEN) {
		q->b[(q->head + q->n) % QUEUE_LEN] = *b;
		q->n++;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static bool queue_pop(struct queue *q, struct block *b)
{
	bool ok = false;

	pthread_mutex_lock(&q->lock);
	if (q->n) {
		*b = q->b[q->head];
		q->head = (q->head + 1) % QUEUE_LEN;
		q->n--;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

/* Free or adopt what other workers sent this place. */
static void drain_queue(struct shadow_rng *r, struct place *pl, int place)
{
	struct block b;
	int n = 0;

	while (n++ < 64 && queue_pop(&pl->q, &b)) {
		struct block *s = &pl->slot[shadow_below(r, SLOTS)];

		atomic_fetch_add(&remote_frees, 1);
		if (!s->p && shadow_below(r, 4) == 0) {
			block_ok(&b, "received through a queue", place);
			*s = b;		/* adopt: freed or reallocated later */
		} else {
			release(&b, place);
		}
	}
}

static void tune(struct shadow_rng *r)
{
	static const int tcache_counts[] = { 0, 1, 2, 4, 7, 8, 16, 32, 64, 200 };
	static const int tcache_max[] = { 0, 16, 24, 256, 1032, 1056, 4096, 4112, 65536 };
	int v;

	atomic_fetch_add(&mallopts, 1);
	switch (shadow_below(r, 9)) {
	case 0:
		v = tcache_counts[shadow_below(r, 10)];
		A(mallopt)(UPA_M_TCACHE_COUNT, v);
		break;
	case 1:
		v = tcache_max[shadow_below(r, 9)];
		A(mallopt)(UPA_M_TCACHE_MAX, v);
		break;
	case 2:
		A(mallopt)(M_MXFAST, (int)shadow_below(r, 161));
		break;
	case 3:
		A(mallopt)(M_TRIM_THRESHOLD, (int)(4096 << shadow_below(r, 10)));
		break;
	case 4:
		A(mallopt)(M_TOP_PAD, (int)shadow_below(r, 256 * 1024));
		break;
	case 5:
		A(mallopt)(M_MMAP_THRESHOLD, (int)(16384 << shadow_below(r, 7)));
		break;
	case 6:
		A(mallopt)(M_ARENA_MAX, 1 + (int)shadow_below(r, 8));
		break;
	case 7:
		A(mallopt)(M_ARENA_TEST, 1 + (int)shadow_below(r, 8));
		break;
	default:
		A(mallopt)(M_MMAP_MAX, shadow_below(r, 8) ? 65536 : 0);
		break;
	}
}

/*
 * In the child of a fork: only the forking thread survives, with a copy of
 * every block. Its own slots were not being written by anyone at the fork,
 * so they must hold their patterns; then the child must be able to free,
 * allocate and pass the heap check. Exit status 0 = fine.
 */
static void fork_child(struct shadow_rng *r, struct place *pl, int place)
{
	struct block local[64];
	int i, bad = 0;

	alarm(60);	/* a deadlocked child dies of SIGALRM, reported */
	for (i = 0; i < SLOTS; i++) {
		struct block *b = &pl->slot[i];

		if (!b->p)
			continue;
		if (!block_ok(b, "inherited by a fork child", place))
			bad = 1;
		if (shadow_below(r, 2)) {
			A(free)(b->p);
			b->p = NULL;
		} else if (shadow_below(r, 4) == 0) {
			reallocate(r, b, place);
		}
	}
	memset(local, 0, sizeof(local));
	for (i = 0; i < 2000 && !atomic_load(&failures); i++) {
		struct block *b = &local[shadow_below(r, 64)];

		if (b->p)
			release(b, place);
		else
			allocate(r, b, place);
	}
	for (i = 0; i < 64; i++)
		if (local[i].p)
			release(&local[i], place);
	if (A(malloc_trim)(0) < 0)
		bad = 1;
	if (upa_heap_check())
		bad = 1;
	_exit(bad || atomic_load(&failures) ? 1 : 0);
}

static void do_fork(struct shadow_rng *r, struct place *pl, int place)
{
	long t = now_ns(), last = atomic_load(&last_fork_ns);
	int status;
	pid_t pid;

	/* At most about 20 forks a second in the whole process. */
	if (t - last < 50000000L ||
	    !atomic_compare_exchange_strong(&last_fork_ns, &last, t))
		return;
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0)
		fork_child(r, pl, place);
	atomic_fetch_add(&forks, 1);
	if (waitpid(pid, &status, 0) != pid)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	atomic_fetch_add(&fork_failures, 1);
	atomic_fetch_add(&failures, 1);
	if (WIFSIGNALED(status))
		diag("FAIL seed %" PRIu64 " place %d: fork child killed by signal %d%s",
		     seed, place, WTERMSIG(status),
		     WTERMSIG(status) == SIGALRM ? " (hung 60 s: deadlock?)" : "");
	else
		diag("FAIL seed %" PRIu64 " place %d: fork child exited with %d",
		     seed, place, WEXITSTATUS(status));
}

static void heap_check(int place)
{
	atomic_fetch_add(&heap_checks, 1);
	if (upa_heap_check()) {
		atomic_fetch_add(&failures, 1);
		atomic_fetch_add(&heap_check_failures, 1);
		diag("FAIL seed %" PRIu64 " place %d: upa_heap_check() failed (message on stderr)",
		     seed, place);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct place *pl = &places[w->place];
	struct shadow_rng *r = &w->rng;
	uint64_t life = 500 + shadow_below(r, 10000), n;
	/* Also a lifetime in time, so that threads come and go on a slow
	 * machine (a loaded TCG guest does a few hundred operations a second). */
	long die_at = now_ns() + 500000000L + (long)shadow_below(r, 2500000000UL);
	int place = w->place;

	for (n = 0; n < life && !atomic_load_explicit(&stop, memory_order_relaxed); n++) {
		if (n % 64 == 63 && now_ns() > die_at)
			break;
		struct block *b = &pl->slot[shadow_below(r, SLOTS)];
		uint64_t op = shadow_below(r, 10000);

		if (op < 4000) {
			if (b->p)
				release(b, place);
			else
				allocate(r, b, place);
		} else if (op < 6000) {
			if (b->p)
				reallocate(r, b, place);
			else
				allocate(r, b, place);
		} else if (op < 7500) {
			/* Send it to another place, to be freed there. */
			int to = (int)shadow_below(r, nthreads);

			if (b->p && (to == place || !queue_push(&places[to].q, b)))
				release(b, place);
			b->p = NULL;
		} else if (op < 9000) {
			drain_queue(r, pl, place);
		} else if (op < 9990) {
			if (b->p)
				block_ok(b, "spot check", place);
		} else if (op < 9994) {
			tune(r);
		} else if (op < 9996) {
			atomic_fetch_add(&trims, 1);
			A(malloc_trim)(shadow_below(r, 2) ? 0 : 65536);
		} else if (!nofork) {
			do_fork(r, pl, place);
		}
		if (n % HEAP_CHECK_EVERY == HEAP_CHECK_EVERY - 1)
			heap_check(place);
		/* Stop early once something is wrong: the first report counts. */
		if (atomic_load_explicit(&failures, memory_order_relaxed))
			break;
	}
	/* Its own cache is checked by this thread only: once more at exit. */
	heap_check(place);
	/* Leave the blocks to the successor, or free them all. */
	if (shadow_below(r, 2))
		for (n = 0; n < SLOTS; n++)
			if (pl->slot[n].p)
				release(&pl->slot[n], place);
	w->ops = n;
	atomic_fetch_add(&total_ops, n);
	atomic_store(&w->done, true);
	return NULL;
}

static void start_worker(int place, unsigned int generation)
{
	struct worker *w = &places[place].w;

	w->place = place;
	w->generation = generation;
	w->rng.s = shadow_mix(seed ^ shadow_mix(((uint64_t)place << 32) | generation));
	atomic_store(&w->done, false);
	if (pthread_create(&w->thread, NULL, worker_main, w)) {
		diag("pthread_create failed for place %d", place);
		w->running = false;
		return;
	}
	w->running = true;
}

static void on_alarm(int sig)
{
	static const char msg[] =
		"# FAIL: the stress run hung (watchdog): deadlock or livelock\n"
		"Bail out! stress hung\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static unsigned long env_num(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoul(s, NULL, 0) : dflt;
}

/*
 * With the hardened mode on (stress-hardened), the results' names say so:
 * make check runs both, in one KTAP stream.
 */
static const char *mode_prefix = "";

static void result(bool ok, int n, const char *name)
{
	printf("%s %d %s%s\n", ok ? "ok" : "not ok", n, mode_prefix, name);
}

int main(int argc, char **argv)
{
	unsigned int generation = 0, i;
	long start, end;
	const char *s;
	bool cut;

	setvbuf(stdout, NULL, _IONBF, 0);
	s = getenv("UPALLOC_SEED");
	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	else if (s && *s)
		seed = strtoull(s, NULL, 0);
	else
		seed = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
	seconds = argc > 2 ? strtoul(argv[2], NULL, 0)
			   : env_num("UPALLOC_STRESS_SECONDS", seconds);
	nthreads = argc > 3 ? strtoul(argv[3], NULL, 0)
			    : env_num("UPALLOC_STRESS_THREADS", nthreads);
	nofork = env_num("UPALLOC_STRESS_NOFORK", 0);
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;

	if (getenv("UPALLOC_HARDENED") && strcmp(getenv("UPALLOC_HARDENED"), "0"))
		mode_prefix = "hardened_";
	printf("TAP version 13\n1..4\n");
	diag("stress: seed %" PRIu64 ", %u s, %u threads, backend %s%s", seed,
	     seconds, nthreads, upa_backend_name(), nofork ? ", no fork" : "");
	diag("replay: %sUPALLOC_SEED=%" PRIu64 " UPALLOC_STRESS_SECONDS=%u UPALLOC_STRESS_THREADS=%u %s",
	     *mode_prefix ? "UPALLOC_HARDENED=1 " : "", seed, seconds, nthreads,
	     argv[0]);

	/* The model's own memory comes from mmap, not from the allocator. */
	places = mmap(NULL, sizeof(*places) * nthreads, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (places == MAP_FAILED) {
		printf("Bail out! mmap of the shadow model failed\n");
		return 1;
	}
	for (i = 0; i < nthreads; i++)
		queue_init(&places[i].q);
	signal(SIGALRM, on_alarm);
	alarm(seconds + 120);

	start = now_ns();
	end = start + (long)seconds * 1000000000L;
	for (i = 0; i < nthreads; i++)
		start_worker(i, generation++);
	while (now_ns() < end && !atomic_load(&failures)) {
		usleep(20000);
		for (i = 0; i < nthreads; i++) {
			struct worker *w = &places[i].w;

			if (w->running && atomic_load(&w->done)) {
				pthread_join(w->thread, NULL);
				w->running = false;
			}
			if (!w->running)
				start_worker(i, generation++);
		}
	}
	atomic_store(&stop, true);
	for (i = 0; i < nthreads; i++)
		if (places[i].w.running)
			pthread_join(places[i].w.thread, NULL);

	/* Everything left: queues then slots, checked and freed here. */
	for (i = 0; i < nthreads; i++) {
		struct block b;
		unsigned int j;

		while (queue_pop(&places[i].q, &b))
			release(&b, (int)i);
		for (j = 0; j < SLOTS; j++)
			if (places[i].slot[j].p)
				release(&places[i].slot[j], (int)i);
	}
	A(malloc_trim)(0);
	if (upa_heap_check()) {
		atomic_fetch_add(&failures, 1);
		atomic_fetch_add(&heap_check_failures, 1);
		diag("FAIL seed %" PRIu64 ": upa_heap_check() failed after freeing everything",
		     seed);
	}
	diag("%" PRIu64 " operations by %u worker threads, %" PRIu64 " blocks, %" PRIu64
	     " handed between threads, %" PRIu64 " forks, %" PRIu64 " mallopt, %" PRIu64
	     " trims, %" PRIu64 " heap checks, %" PRIu64 " NULL returns, %.1f s",
	     (uint64_t)atomic_load(&total_ops), generation,
	     (uint64_t)atomic_load(&next_id) - 1,
	     (uint64_t)atomic_load(&remote_frees), (uint64_t)atomic_load(&forks),
	     (uint64_t)atomic_load(&mallopts), (uint64_t)atomic_load(&trims),
	     (uint64_t)atomic_load(&heap_checks),
	     (uint64_t)atomic_load(&null_returns), (now_ns() - start) / 1e9);

	result(!atomic_load(&content_failures), 1,
	       "stress_blocks_keep_their_contents_across_threads");
	result(!atomic_load(&heap_check_failures), 2,
	       "stress_heap_check_passes_at_intervals");
	/* A run cut short by a failure says nothing about 3 and 4. */
	cut = atomic_load(&failures) && !atomic_load(&fork_failures);
	if (nofork)
		printf("ok 3 %sstress_fork_children_allocate_and_free # SKIP UPALLOC_STRESS_NOFORK\n",
		       mode_prefix);
	else if (cut && !atomic_load(&forks))
		printf("ok 3 %sstress_fork_children_allocate_and_free # SKIP the run stopped at the first failure\n",
		       mode_prefix);
	else
		result(!atomic_load(&fork_failures) && atomic_load(&forks) > 0, 3,
		       "stress_fork_children_allocate_and_free");
	if (cut && generation <= nthreads)
		printf("ok 4 %sstress_workers_exit_and_are_replaced # SKIP the run stopped at the first failure\n",
		       mode_prefix);
	else
		result(atomic_load(&total_ops) > 0 && generation > nthreads, 4,
		       "stress_workers_exit_and_are_replaced");
	if (atomic_load(&failures))
		diag("replay with UPALLOC_SEED=%" PRIu64, seed);
	return atomic_load(&failures) ? 1 : 0;
}
