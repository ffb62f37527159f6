/* SPDX-License-Identifier: MIT */
/*
 * Stand-ins for the parts of glibc's support/ library that the malloc
 * tests we run need (userlib/glibc-tests/README.md lists them), written for
 * upalloc: every helper exits with status 1 and a message when the call it
 * wraps fails, as the originals do. Header-only, static: each test is one
 * translation unit. Nothing here is glibc's code.
 */
#ifndef UPA_GLIBC_HARNESS_H
#define UPA_GLIBC_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Failures recorded by TEST_VERIFY/TEST_COMPARE; the driver reads it. */
static volatile int upa_test_failures;
static unsigned int test_verbose __attribute__((unused));

static inline void support_record_failure(void)
{
	upa_test_failures++;
}

__attribute__((noreturn, format(printf, 3, 4), unused))
static void upa_exit_fail(int status, const char *where, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

#define UPA_WHERE_(f, l) f ":" #l
#define UPA_WHERE(f, l) UPA_WHERE_(f, l)
#define UPA_HERE UPA_WHERE(__FILE__, __LINE__)

/* Every x* wrapper: on failure, say which call and exit 1. */
#define UPA_X(call, bad, what)						\
	do {								\
		if (bad)						\
			upa_exit_fail(1, UPA_HERE, "%s failed: %s",	\
				      what, strerror(errno));		\
	} while (0)

__attribute__((unused))
static void write_message(const char *msg)
{
	ssize_t r = write(2, msg, strlen(msg));

	(void)r;
}

__attribute__((unused)) static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p && n)
		upa_exit_fail(1, "xmalloc", "out of memory (%zu bytes)", n);
	return p;
}

__attribute__((unused)) static void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n, m);

	if (!p && n && m)
		upa_exit_fail(1, "xcalloc", "out of memory (%zu x %zu)", n, m);
	return p;
}

__attribute__((unused)) static void *xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n);

	if (!p && n)
		upa_exit_fail(1, "xrealloc", "out of memory (%zu bytes)", n);
	return p;
}

__attribute__((unused)) static char *xstrdup(const char *s)
{
	return strcpy(xmalloc(strlen(s) + 1), s);
}

/* Memory shared with forked children: a shared anonymous mapping. */
__attribute__((unused)) static void *support_shared_allocate(size_t n)
{
	size_t *p = mmap(NULL, n + 16, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		upa_exit_fail(1, "support_shared_allocate", "mmap: %s",
			      strerror(errno));
	p[0] = n + 16;
	return (char *)p + 16;
}

__attribute__((unused)) static void support_shared_free(void *q)
{
	size_t *p = (size_t *)((char *)q - 16);

	munmap(p, p[0]);
}

__attribute__((unused)) static pid_t xfork(void)
{
	pid_t pid = fork();

	UPA_X(fork, pid < 0, "fork");
	return pid;
}

__attribute__((unused)) static int xopen(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);

	if (fd < 0)
		upa_exit_fail(1, "xopen", "open(%s): %s", path, strerror(errno));
	return fd;
}

__attribute__((unused)) static void xclose(int fd)
{
	UPA_X(close, close(fd) < 0 && errno != EINTR, "close");
}

__attribute__((unused))
static void *xmmap(void *addr, size_t len, int prot, int flags, int fd)
{
	void *p = mmap(addr, len, prot, flags, fd, 0);

	UPA_X(mmap, p == MAP_FAILED, "mmap");
	return p;
}

__attribute__((unused)) static void xmunmap(void *addr, size_t len)
{
	UPA_X(munmap, munmap(addr, len) < 0, "munmap");
}

__attribute__((unused))
static sighandler_t xsignal(int sig, sighandler_t handler)
{
	sighandler_t old = signal(sig, handler);

	UPA_X(signal, old == SIG_ERR, "signal");
	return old;
}

/* pthread functions return the error number instead of setting errno. */
#define UPA_XPT(what, expr)						\
	do {								\
		int upa_rc_ = (expr);					\
		if (upa_rc_)						\
			upa_exit_fail(1, UPA_HERE, "%s failed: %s",	\
				      what, strerror(upa_rc_));		\
	} while (0)

__attribute__((unused)) static pthread_t
xpthread_create(pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	pthread_t t;

	UPA_XPT("pthread_create", pthread_create(&t, attr, fn, arg));
	return t;
}

__attribute__((unused)) static void *xpthread_join(pthread_t t)
{
	void *ret;

	UPA_XPT("pthread_join", pthread_join(t, &ret));
	return ret;
}

__attribute__((unused)) static void xpthread_kill(pthread_t t, int sig)
{
	UPA_XPT("pthread_kill", pthread_kill(t, sig));
}

__attribute__((unused)) static void
xpthread_barrier_init(pthread_barrier_t *b, pthread_barrierattr_t *a,
		      unsigned int n)
{
	UPA_XPT("pthread_barrier_init", pthread_barrier_init(b, a, n));
}

__attribute__((unused)) static int xpthread_barrier_wait(pthread_barrier_t *b)
{
	int rc = pthread_barrier_wait(b);

	if (rc && rc != PTHREAD_BARRIER_SERIAL_THREAD)
		upa_exit_fail(1, "xpthread_barrier_wait", "%s", strerror(rc));
	return rc;
}

__attribute__((unused))
static void xpthread_barrier_destroy(pthread_barrier_t *b)
{
	UPA_XPT("pthread_barrier_destroy", pthread_barrier_destroy(b));
}

__attribute__((unused))
static void xpthread_barrierattr_init(pthread_barrierattr_t *a)
{
	UPA_XPT("pthread_barrierattr_init", pthread_barrierattr_init(a));
}

__attribute__((unused))
static void xpthread_barrierattr_destroy(pthread_barrierattr_t *a)
{
	UPA_XPT("pthread_barrierattr_destroy", pthread_barrierattr_destroy(a));
}

__attribute__((unused))
static void xpthread_barrierattr_setpshared(pthread_barrierattr_t *a, int s)
{
	UPA_XPT("pthread_barrierattr_setpshared",
		pthread_barrierattr_setpshared(a, s));
}

__attribute__((unused))
static void xpthread_mutex_lock(pthread_mutex_t *m)
{
	UPA_XPT("pthread_mutex_lock", pthread_mutex_lock(m));
}

__attribute__((unused))
static void xpthread_mutex_unlock(pthread_mutex_t *m)
{
	UPA_XPT("pthread_mutex_unlock", pthread_mutex_unlock(m));
}

/* Temporary files, removed when the test process exits. */
static char *upa_temp_files[16];
static int upa_ntemp;

static void upa_remove_temp_files(void)
{
	while (upa_ntemp > 0)
		unlink(upa_temp_files[--upa_ntemp]);
}

__attribute__((unused)) static void add_temp_file(const char *name)
{
	if (upa_ntemp == 0)
		atexit(upa_remove_temp_files);
	if (upa_ntemp < 16)
		upa_temp_files[upa_ntemp++] = xstrdup(name);
}

__attribute__((unused))
static int create_temp_file(const char *base, char **filename)
{
	const char *dir = getenv("TMPDIR");
	char *name;
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	name = xmalloc(strlen(dir) + strlen(base) + 16);
	sprintf(name, "%s/%sXXXXXX", dir, base);
	fd = mkstemp(name);
	if (fd < 0) {
		fprintf(stderr, "create_temp_file: %s: %s\n", name,
			strerror(errno));
		free(name);
		return -1;
	}
	add_temp_file(name);
	if (filename)
		*filename = name;
	else
		free(name);
	return fd;
}

#endif /* UPA_GLIBC_HARNESS_H */
