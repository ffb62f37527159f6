// SPDX-License-Identifier: MIT
/*
 * arena.c: arenas, the thread -> arena choice, and fork.
 *
 * The main arena is static; further arenas (up to M_ARENA_MAX, by default
 * 8 x CPUs as glibc) live at the start of their first heap. A thread keeps
 * the arena it was given (tc->arena). Its first slow path picks an arena
 * no thread is attached to, else creates one while under the limit, else
 * shares one round-robin. When the thread's arena is contended (its
 * trylock fails) and shared with other threads, the thread moves to a new
 * arena if the limit allows, or to any arena whose trylock succeeds,
 * before it blocks on its own; a thread alone on its arena just waits
 * (the holder is freeing chunks it got from this thread).
 *
 * fork (see /work/shared/design/fork-safety.md): glibc's fork runs our
 * prepare handler *before* it takes the stdio list lock, so holding arena
 * locks across fork deadlocks against threads in getline()/fflush(NULL)
 * (tst-malloc-fork-deadlock); and a prepare handler that locks deadlocks a
 * single-threaded fork from a signal handler that interrupted malloc
 * (tst-mallocfork2). So we take no lock at fork at all. Instead the child
 * handler, running alone in the child, looks at each arena's lock word:
 * the child's memory is a snapshot in which every thread is stopped
 * between two of its own stores, so a free lock means the arena is
 * consistent (unlock is a release store after all updates), and a held
 * lock means a thread (that does not exist in the child) was inside: that
 * arena is quarantined, never read or written again by the child, its
 * memory leaked (freeing its chunks is a no-op). Locks are re-initialised,
 * the thread list is reset to the forking thread, which moves to a usable
 * arena if its own was quarantined. Chunks in other threads' caches are
 * lost to the child: a little memory, never corruption or a deadlock. The
 * child's heap contents are its own copy (the device copies heap regions
 * at fork like private memory; anonymous memory is private anyway).
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "tcache.h"

struct upa_arena upa_main_arena;
struct upa_arena *upa_arena_list = &upa_main_arena;
unsigned int upa_narenas = 1;
static struct upa_arena *reuse_cursor;
static unsigned int arena_limit_cached;

void upa_arena_init(struct upa_arena *a, unsigned int index)
{
	upa_lock_reinit(&a->lock);
	a->remote = NULL;
	a->remote_count = 0;
	a->quarantined = false;
	a->index = index;
	a->attached = 0;
	arena_set_top(a, NULL);
	a->last_remainder = NULL;
	a->zero_from = NULL;
	a->heap = NULL;
	arena_set_system_mem(a, 0);
	a->max_system_mem = 0;
	a->grows_at_trim = 0;
	a->trim_backoff = 0;
	a->trim_skip = 0;
	a->trim_judged = true;
	a->grows_at_give_back = 0;
	a->next = NULL;
	memset(&a->st, 0, sizeof(a->st));
	upa_bins_init(a);
}

static unsigned int cpu_count(void)
{
	cpu_set_t set;
	int n;

	/* The raw affinity mask: no allocation, no /proc parsing. */
	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	n = CPU_COUNT(&set);
	return n > 0 ? (unsigned int)n : 1;
}

static unsigned int arena_limit(void)
{
	if (upa_mp.arena_max)
		return (unsigned int)upa_mp.arena_max;
	/* Up to arena_test arenas before the CPUs are even counted. */
	if (upa_narenas < upa_mp.arena_test)
		return (unsigned int)upa_mp.arena_test;
	if (!arena_limit_cached)
		arena_limit_cached = 8 * cpu_count();
	return arena_limit_cached;
}

/* A new arena at the list's tail, or NULL. upa_global_lock held. */
static struct upa_arena *arena_create(bool force)
{
	struct upa_arena *a, *last;

	if (!force && upa_narenas >= arena_limit())
		return NULL;
	if (upa_region_new_arena_heap(&a))
		return NULL;
	a->index = upa_narenas;
	for (last = upa_arena_list; last->next; last = last->next)
		;
	/* Published fully initialised: readers walk the list unlocked. */
	__atomic_store_n(&last->next, a, __ATOMIC_RELEASE);
	upa_narenas++;
	return a;
}

static struct upa_arena *arena_next_usable(struct upa_arena *from)
{
	struct upa_arena *a = from;

	do {
		a = a->next ? a->next : upa_arena_list;
		if (!a->quarantined)
			return a;
	} while (a != from);
	return NULL;
}

static void arena_attach(struct upa_tcache *tc, struct upa_arena *a)
{
	if (tc->arena)
		tc->arena->attached--;
	if (tc->state == UPA_THREAD_DEAD) {
		tc->arena = NULL;
		return;
	}
	a->attached++;
	tc->arena = a;
}

/* First use (or own arena quarantined): choose, attach, lock. */
static struct upa_arena *arena_pick(struct upa_tcache *tc)
{
	struct upa_arena *a;

	upa_lock(&upa_global_lock);
	for (a = upa_arena_list; a; a = a->next)
		if (!a->attached && !a->quarantined)
			break;
	if (!a)
		a = arena_create(false);
	if (!a) {
		reuse_cursor = arena_next_usable(reuse_cursor ? reuse_cursor :
						 upa_arena_list);
		a = reuse_cursor;
	}
	if (!a)
		a = arena_create(true);	/* all quarantined: a fork child */
	if (!a) {
		upa_unlock(&upa_global_lock);
		return NULL;
	}
	arena_attach(tc, a);
	upa_unlock(&upa_global_lock);
	upa_lock(&a->lock);
	return a;
}

/* Own arena contended: move to a new or an idle arena, else wait. */
static struct upa_arena *arena_contended(struct upa_tcache *tc,
					 struct upa_arena *a)
{
	struct upa_arena *b;
	bool locked = false;

	/*
	 * Alone on its arena, the thread waits: the holder is another
	 * thread freeing chunks of this arena (producer/consumer), which
	 * is brief and follows the memory wherever it goes. Moving would
	 * only spread one thread's memory over more arenas, each keeping
	 * its own top pad (peak RSS) and its own trim/grow churn.
	 * Read without the global lock: a stale value only changes policy.
	 */
	if (__atomic_load_n(&a->attached, __ATOMIC_RELAXED) <= 1) {
		upa_lock(&a->lock);
		return a;
	}
	upa_lock(&upa_global_lock);
	b = arena_create(false);
	if (!b) {
		for (b = arena_next_usable(a); b && b != a;
		     b = arena_next_usable(b)) {
			if (upa_lock_try(&b->lock)) {
				locked = true;
				break;
			}
		}
		if (b == a)
			b = NULL;
	}
	if (b)
		arena_attach(tc, b);
	upa_unlock(&upa_global_lock);
	if (!b) {
		upa_lock(&a->lock);
		return a;
	}
	if (!locked)
		upa_lock(&b->lock);
	return b;
}

/*
 * The calling thread's arena, locked. Never NULL except when no arena can
 * be had at all (then callers fail with ENOMEM): the caller copes.
 */
struct upa_arena *upa_arena_lock_mine(struct upa_tcache *tc)
{
	struct upa_arena *a = tc->arena;

	if (likely(a && !a->quarantined)) {
		if (likely(upa_lock_try(&a->lock)))
			return a;
		return arena_contended(tc, a);
	}
	return arena_pick(tc);
}

/*
 * The main arena, locked, for one retry after a thread arena could not
 * grow (glibc does the same); NULL when failed is the main arena. Never a
 * new arena: a request that failed for want of memory would only leave
 * an empty arena behind.
 */
struct upa_arena *upa_arena_lock_other(struct upa_tcache *tc,
				       struct upa_arena *failed)
{
	(void)tc;
	if (!failed || failed == &upa_main_arena ||
	    upa_main_arena.quarantined)
		return NULL;
	upa_lock(&upa_main_arena.lock);
	return &upa_main_arena;
}

void upa_arena_detach(struct upa_tcache *tc)
{
	upa_lock(&upa_global_lock);
	if (tc->arena)
		tc->arena->attached--;
	tc->arena = NULL;
	upa_unlock(&upa_global_lock);
}

static void fork_child(void)
{
	struct upa_tcache *tc = &upa_tc;
	struct upa_arena *a;

	upa_lock_reinit(&upa_global_lock);
	for (a = upa_arena_list; a; a = a->next) {
		if (upa_lock_is_held(&a->lock))
			a->quarantined = true;
		upa_lock_reinit(&a->lock);
		a->attached = 0;
	}
	if (tc->arena && tc->arena->quarantined)
		tc->arena = NULL;
	if (tc->arena)
		tc->arena->attached = 1;
	reuse_cursor = NULL;
	/* This handler runs: it is registered in the child too. */
	__atomic_store_n(&upa_fork_ready, 1, __ATOMIC_RELAXED);
	upa_threads_after_fork_child();
	upa_region_fork_child();
}

/*
 * When the handler is registered. A single-threaded process needs none:
 * its fork child is a copy of the one thread, which resumes whatever it
 * was doing (a fork from a signal handler that interrupted malloc: the
 * child returns from the handler into that malloc, which completes and
 * unlocks; calling malloc from the handler itself is not allowed in the
 * parent either). So the handler is registered (upa_fork_register_threaded)
 * by the first lock taken while __libc_single_threaded is false, before
 * that lock is taken, and by init with the device backend, whose child
 * handler must run after every fork. Invariant: no upalloc lock is held
 * by a thread of a multi-threaded process unless the handler is
 * registered, or was when the thread took it, because:
 *  - the flag turns false in pthread_create, never while the only thread
 *    holds a lock (glue.h), so locks taken single-threaded are all free
 *    by then;
 *  - later every lock acquisition checks upa_fork_ready first; threads
 *    that find it clear wait (pthread_once) for the one registering,
 *    holding no lock (any lock they held would have been taken after the
 *    same check);
 *  - glibc's fork and pthread_atfork exclude each other (its atfork
 *    lock), so a fork either runs the handler or happens while the
 *    registering and waiting threads hold no upalloc lock.
 * pthread_atfork may allocate: a lock taken by the registering thread
 * inside it proceeds (registering); fork cannot run meanwhile.
 */
int upa_fork_ready;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static __thread bool fork_registering;

static void fork_register_once(void)
{
	fork_registering = true;
	/* No prepare or parent handler: nothing is locked across fork. */
	pthread_atfork(NULL, NULL, fork_child);
	fork_registering = false;
	__atomic_store_n(&upa_fork_ready, 1, __ATOMIC_RELEASE);
}

/*
 * pthread_once, not a flag of our own: a fork by another thread while the
 * registration is under way (before pthread_atfork takes glibc's atfork
 * lock) leaves a child in which nobody would finish it; glibc's
 * pthread_once restarts an initialisation interrupted by fork. A fork
 * after the handler is in but before upa_fork_ready is set runs
 * fork_child(), which sets it.
 */
void upa_fork_register(void)
{
	if (fork_registering)
		return;
	pthread_once(&fork_once, fork_register_once);
}

UPA_COLD void upa_fork_register_threaded(void)
{
	upa_fork_register();
}
