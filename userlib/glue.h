/* SPDX-License-Identifier: MIT */
/*
 * glue.h: everything libupalloc needs from its host, in one place (as musl's
 * mallocng glue.h): branch hints, page size, locks, the fatal-error path.
 *
 * Nothing here, and nothing in the library, calls malloc or stdio: the
 * library is the allocator, and stdio allocates.
 */
#ifndef UPALLOC_GLUE_H
#define UPALLOC_GLUE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/single_threaded.h>
#include <linux/futex.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define UPA_HIDDEN	__attribute__((visibility("hidden")))
#define UPA_API		__attribute__((visibility("default")))
#define UPA_NOINLINE	__attribute__((noinline))
#define UPA_COLD	__attribute__((cold, noinline))

#define UPA_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static inline size_t upa_align_up(size_t n, size_t align)
{
	return (n + align - 1) & ~(align - 1);
}

static inline size_t upa_align_down(size_t n, size_t align)
{
	return n & ~(align - 1);
}

static inline bool upa_is_pow2(size_t n)
{
	return n && !(n & (n - 1));
}

/* The page size, set once by upa_init() from the auxiliary vector. */
extern size_t upa_page_size UPA_HIDDEN;

/*
 * Locks: a three-state futex mutex (0 free, 1 held, 2 held with waiters).
 * Our own rather than pthread_mutex_t so that a fork child can inspect a
 * lock word (was it held at the fork instant?) and re-initialise it by a
 * plain store; see arena.c. The futex syscall may set errno, which free()
 * must preserve, so the slow path saves and restores it.
 */
struct upa_lock {
	int word;
};

#define UPA_LOCK_INIT { 0 }

/*
 * A process that never created a thread needs no atomic instruction
 * (glibc's SINGLE_THREAD_P): the lock word is still written, by plain
 * stores, so that a fork child (fork from a signal handler that
 * interrupted malloc) sees a held lock as in the threaded case. glibc
 * clears __libc_single_threaded in pthread_create before the new thread
 * exists, i.e. between two malloc calls of the only thread, never while
 * it holds a lock; it may set it again only when one thread is left
 * (fork child), which holds no lock either.
 */
static inline bool upa_single_threaded(void)
{
	return __libc_single_threaded;
}

/*
 * The fork handler (arena.c) is registered on the first lock taken once
 * the process has threads: registering it touches a part of libc (the
 * fork code) that a program which never forks would not otherwise map,
 * ~64-120 KiB of resident text. 1 once it is registered. See arena.c.
 */
extern int upa_fork_ready UPA_HIDDEN;
void upa_fork_register_threaded(void) UPA_HIDDEN;

static inline bool upa_lock_try(struct upa_lock *l)
{
	int expected = 0;

	if (upa_single_threaded()) {
		if (unlikely(l->word))
			return false;	/* re-entered: upa_lock_wait */
		l->word = 1;
		/* Ordered for a signal handler's fork (no instruction). */
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		return true;
	}
	if (unlikely(!__atomic_load_n(&upa_fork_ready, __ATOMIC_ACQUIRE)))
		upa_fork_register_threaded();
	return __atomic_compare_exchange_n(&l->word, &expected, 1, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void upa_lock_wait(struct upa_lock *l)
{
	int saved_errno = errno;

	while (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) != 0)
		syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
	errno = saved_errno;
}

static inline void upa_lock(struct upa_lock *l)
{
	if (unlikely(!upa_lock_try(l)))
		upa_lock_wait(l);
}

static inline void upa_unlock(struct upa_lock *l)
{
	if (upa_single_threaded()) {
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		l->word = 0;	/* no waiter can exist */
		return;
	}
	if (unlikely(__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)) {
		int saved_errno = errno;

		syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		errno = saved_errno;
	}
}

static inline bool upa_lock_is_held(const struct upa_lock *l)
{
	return __atomic_load_n(&l->word, __ATOMIC_ACQUIRE) != 0;
}

/* Only for a fork child, where no other thread exists. */
static inline void upa_lock_reinit(struct upa_lock *l)
{
	l->word = 0;
}

/*
 * Fatal errors: write "upalloc: <msg>\n" to fd 2 (a bare write) and abort().
 * Every always-on integrity check ends here (check.c).
 */
void upa_fatal(const char *msg) UPA_HIDDEN __attribute__((noreturn, cold));

#define UPA_CHECK(cond, msg)				\
	do {						\
		if (unlikely(!(cond)))			\
			upa_fatal(msg);			\
	} while (0)

/* Debug-build assertions; upa_heap_check() is the expensive one. */
#ifdef UPA_DEBUG
#define upa_assert(cond)	UPA_CHECK(cond, "assertion failed: " #cond)
#else
#define upa_assert(cond)	do { (void)sizeof(cond); } while (0)
#endif

/*
 * The file calls the library makes, as bare system calls. libc's open,
 * read, write and close are cancellation points: a thread with a
 * cancellation pending would be unwound out of malloc (locks held, a
 * descriptor half set up, a report cut off). glibc's own malloc uses its
 * internal no-cancel variants; syscall(2) is not a cancellation point.
 * Each returns -1 with errno set on failure, as the libc calls do.
 */
static inline int upa_open_nocancel(const char *path, int flags)
{
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
}

static inline ssize_t upa_read_nocancel(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

static inline ssize_t upa_write_nocancel(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

static inline int upa_close_nocancel(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* Raw output without stdio: all of buf, retrying on EINTR; errno kept. */
void upa_write_all(int fd, const char *buf, size_t len) UPA_HIDDEN;

/* Own tiny formatter: %s %d %u %ld %lu %zu %zd %x %lx %zx %p %%; no malloc. */
int upa_snprintf(char *buf, size_t size, const char *fmt, ...)
	UPA_HIDDEN __attribute__((format(printf, 3, 4)));

#endif /* UPALLOC_GLUE_H */
