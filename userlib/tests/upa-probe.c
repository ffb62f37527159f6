// SPDX-License-Identifier: MIT
/*
 * Description: a tiny interpreter of allocator operations, exec'd by the
 * tests that need a fresh process (environment variables such as
 * UPALLOC_MMAP_THRESHOLD are read once, at library initialisation).
 *
 * usage: upa-probe CMD [ARGS] [CMD [ARGS]]...
 *   backend          print backend=<upa_backend_name()>
 *   malloc N         allocate N bytes; the pointer gets the next index
 *   free I           free pointer I
 *   chunk I          print mmapped=, non_main=, chunk_size=, usable= of I
 *   byte I OFF       print byte=<value of byte OFF of pointer I>
 *   mallopt P V      print mallopt=<mallopt(P, V)>
 *   trim PAD         print trim=<malloc_trim(PAD)>
 *   stats            print every upa_lib_stats field as name=value
 *   mallinfo         print arena=, uordblks=, fordblks=, hblks=, hblkhd=
 *   threads N        run N threads that allocate while all are alive,
 *                    then print arenas= and non_main_chunks=
 *   check            print heap_check=<upa_heap_check()>
 *   fork             fork; the child runs the remaining commands and exits,
 *                    the parent waits, prints fork_child_status=<exit
 *                    status, or -signal>, then runs them too
 * Output lines are name=value; exit status 0, or 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "upalloc.h"

#define MAX_PTRS 256

static void *ptrs[MAX_PTRS];
static int nptrs;

static size_t size_word(void *p)
{
	return ((size_t *)p)[-1];
}

static void print_stats(void)
{
	struct upa_lib_stats st = { .size = sizeof(st) };

	if (upa_lib_stats(&st)) {
		printf("stats=-1\n");
		return;
	}
#define P(f) printf(#f "=%zu\n", (size_t)st.f)
	P(version);
	P(backend_is_device);
	P(arenas);
	P(bytes_mapped);
	P(bytes_in_use);
	P(bytes_free);
	P(bytes_top);
	P(mmapped_chunks);
	P(bytes_mmapped_chunks);
	P(malloc_calls);
	P(free_calls);
	P(tcache_hits);
	P(fastbin_hits);
	P(smallbin_hits);
	P(unsorted_hits);
	P(largebin_hits);
	P(top_splits);
	P(heap_grows);
	P(heap_trims);
	P(decommits);
	P(bytes_decommitted);
#undef P
}

struct thread_arg {
	pthread_barrier_t *all_allocated;
	void *p;
};

static void *thread_alloc(void *argp)
{
	struct thread_arg *arg = argp;

	arg->p = malloc(200);
	/* stay alive until every thread holds an allocation */
	pthread_barrier_wait(arg->all_allocated);
	return NULL;
}

static void run_threads(int n)
{
	struct thread_arg args[64];
	pthread_t tids[64];
	pthread_barrier_t barrier;
	struct upa_lib_stats st = { .size = sizeof(st) };
	int i, non_main = 0;

	if (n > 64)
		n = 64;
	pthread_barrier_init(&barrier, NULL, n + 1);
	for (i = 0; i < n; i++) {
		args[i].all_allocated = &barrier;
		pthread_create(&tids[i], NULL, thread_alloc, &args[i]);
	}
	pthread_barrier_wait(&barrier);
	for (i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < n; i++) {
		if (args[i].p && (size_word(args[i].p) & 4))
			non_main++;
	}
	upa_lib_stats(&st);
	printf("arenas=%zu\nnon_main_chunks=%d\n", st.arenas, non_main);
	for (i = 0; i < n; i++)
		free(args[i].p);
}

static long arg_num(char **argv, int i, int argc)
{
	if (i >= argc) {
		fprintf(stderr, "upa-probe: missing argument\n");
		exit(2);
	}
	return strtol(argv[i], NULL, 0);
}

static void *arg_ptr(char **argv, int i, int argc)
{
	long idx = arg_num(argv, i, argc);

	if (idx < 0 || idx >= nptrs) {
		fprintf(stderr, "upa-probe: no pointer %ld\n", idx);
		exit(2);
	}
	return ptrs[idx];
}

int main(int argc, char **argv)
{
	int i = 1;

	while (i < argc) {
		const char *cmd = argv[i++];

		if (!strcmp(cmd, "backend")) {
			printf("backend=%s\n", upa_backend_name());
		} else if (!strcmp(cmd, "malloc")) {
			size_t n = arg_num(argv, i++, argc);

			if (nptrs == MAX_PTRS)
				return 2;
			ptrs[nptrs] = malloc(n);
			printf("ptr%d_null=%d\n", nptrs, ptrs[nptrs] == NULL);
			nptrs++;
		} else if (!strcmp(cmd, "free")) {
			free(arg_ptr(argv, i++, argc));
		} else if (!strcmp(cmd, "chunk")) {
			void *p = arg_ptr(argv, i++, argc);
			size_t w = size_word(p);

			printf("mmapped=%d\nnon_main=%d\nchunk_size=%zu\n"
			       "usable=%zu\n", !!(w & 2), !!(w & 4),
			       w & ~(size_t)7, malloc_usable_size(p));
		} else if (!strcmp(cmd, "byte")) {
			unsigned char *p = arg_ptr(argv, i++, argc);
			long off = arg_num(argv, i++, argc);

			printf("byte=%u\n", p[off]);
		} else if (!strcmp(cmd, "mallopt")) {
			long param = arg_num(argv, i++, argc);
			long value = arg_num(argv, i++, argc);

			printf("mallopt=%d\n", mallopt(param, value));
		} else if (!strcmp(cmd, "trim")) {
			printf("trim=%d\n", malloc_trim(arg_num(argv, i++, argc)));
		} else if (!strcmp(cmd, "stats")) {
			print_stats();
		} else if (!strcmp(cmd, "mallinfo")) {
			struct mallinfo2 mi = mallinfo2();

			printf("arena=%zu\nuordblks=%zu\nfordblks=%zu\n"
			       "hblks=%zu\nhblkhd=%zu\n", mi.arena, mi.uordblks,
			       mi.fordblks, mi.hblks, mi.hblkhd);
		} else if (!strcmp(cmd, "threads")) {
			run_threads(arg_num(argv, i++, argc));
		} else if (!strcmp(cmd, "check")) {
			printf("heap_check=%d\n", upa_heap_check());
		} else if (!strcmp(cmd, "fork")) {
			int status;
			pid_t pid;

			fflush(stdout);
			pid = fork();
			if (pid < 0)
				return 3;
			if (pid == 0)
				continue;
			if (waitpid(pid, &status, 0) != pid)
				return 3;
			printf("fork_child_status=%d\n", WIFEXITED(status) ?
			       WEXITSTATUS(status) : -WTERMSIG(status));
		} else {
			fprintf(stderr, "upa-probe: unknown command %s\n", cmd);
			return 2;
		}
	}
	fflush(stdout);
	return 0;
}
