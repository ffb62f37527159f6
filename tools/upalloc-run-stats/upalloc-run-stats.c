// SPDX-License-Identifier: MIT
/*
 * upalloc-run-stats.so: preloaded by upalloc-run next to libupalloc. When
 * the program exits, it writes the library's counters (upa_lib_stats(),
 * found at run time, so any library works) and the device's statistics of
 * this process (UPALLOC_IOC_PROC_STATS) to the file named by
 * UPALLOC_RUN_STATS_FILE, one "name value" line each, device fields
 * prefixed "device_". A "%p" in the name is replaced by the pid, so that
 * forked children do not overwrite their parent's file.
 *
 * With UPALLOC_RUN_MALLOC_INFO set (same "%p" rule) it also writes
 * malloc_info(0, ...) of the preloaded allocator there, for heapviz.
 *
 * It runs as a destructor, late in exit: the heaps still exist, so the
 * device's pages_live is what the program held at its end. The statistics
 * need no allocation and no stdio (a stack buffer and write(2));
 * malloc_info writes to a FILE by its definition, so that part uses stdio.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../kmod/uapi/upalloc.h"
#include "../../userlib/include/upalloc.h"

struct out {
	char buf[4096];
	size_t len;
};

static void put(struct out *o, const char *name, unsigned long long value)
{
	int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s %llu\n",
			 name, value);

	if (n > 0 && (size_t)n < sizeof(o->buf) - o->len)
		o->len += (size_t)n;
}

static void put_text(struct out *o, const char *name, const char *value)
{
	int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s %s\n",
			 name, value);

	if (n > 0 && (size_t)n < sizeof(o->buf) - o->len)
		o->len += (size_t)n;
}

/* The path with every "%p" replaced by the pid; false if it is too long. */
static int expand_path(const char *tmpl, char *path, size_t size)
{
	size_t used = 0;
	const char *s;

	for (s = tmpl; *s; s++) {
		int n;

		if (s[0] == '%' && s[1] == 'p') {
			n = snprintf(path + used, size - used, "%d", (int)getpid());
			s++;
		} else {
			n = snprintf(path + used, size - used, "%c", *s);
		}
		if (n < 0 || (size_t)n >= size - used)
			return 0;
		used += (size_t)n;
	}
	return 1;
}

static void lib_stats(struct out *o)
{
	int (*stats_fn)(struct upa_lib_stats *);
	const char *(*backend_fn)(void);
	struct upa_lib_stats st;

	backend_fn = (const char *(*)(void))dlsym(RTLD_DEFAULT,
						  "upa_backend_name");
	if (backend_fn)
		put_text(o, "backend", backend_fn());
	stats_fn = (int (*)(struct upa_lib_stats *))dlsym(RTLD_DEFAULT,
							  "upa_lib_stats");
	if (!stats_fn)
		return;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	if (stats_fn(&st))
		return;
	put(o, "version", st.version);
	put(o, "arenas", st.arenas);
	put(o, "bytes_mapped", st.bytes_mapped);
	put(o, "bytes_in_use", st.bytes_in_use);
	put(o, "bytes_free", st.bytes_free);
	put(o, "bytes_top", st.bytes_top);
	put(o, "mmapped_chunks", st.mmapped_chunks);
	put(o, "bytes_mmapped_chunks", st.bytes_mmapped_chunks);
	put(o, "malloc_calls", st.malloc_calls);
	put(o, "free_calls", st.free_calls);
	put(o, "tcache_hits", st.tcache_hits);
	put(o, "fastbin_hits", st.fastbin_hits);
	put(o, "smallbin_hits", st.smallbin_hits);
	put(o, "unsorted_hits", st.unsorted_hits);
	put(o, "largebin_hits", st.largebin_hits);
	put(o, "top_splits", st.top_splits);
	put(o, "heap_grows", st.heap_grows);
	put(o, "heap_trims", st.heap_trims);
	put(o, "decommits", st.decommits);
	put(o, "bytes_decommitted", st.bytes_decommitted);
}

static void device_stats(struct out *o)
{
	struct upalloc_proc_stats st;
	int fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	memset(&st, 0, sizeof(st));
	if (ioctl(fd, UPALLOC_IOC_PROC_STATS, &st) == 0) {
		put(o, "device_regions_live", st.regions_live);
		put(o, "device_regions_created", st.regions_created);
		put(o, "device_pages_live", st.pages_live);
		put(o, "device_pages_peak", st.pages_peak);
		put(o, "device_pages_committed", st.pages_committed);
		put(o, "device_pages_allocated", st.pages_allocated);
		put(o, "device_pages_freed", st.pages_freed);
		put(o, "device_faults", st.faults);
		put(o, "device_faults_read", st.faults_read);
		put(o, "device_faults_write", st.faults_write);
		put(o, "device_cow_copies", st.cow_copies);
		put(o, "device_pages_populated", st.pages_populated);
		put(o, "device_pages_decommitted", st.pages_decommitted);
		put(o, "device_enomem", st.enomem);
	}
	close(fd);
}

static void write_malloc_info(void)
{
	const char *tmpl = getenv("UPALLOC_RUN_MALLOC_INFO");
	int (*info_fn)(int, FILE *);
	char path[4096];
	FILE *fp;

	if (!tmpl || !*tmpl || !expand_path(tmpl, path, sizeof(path)))
		return;
	info_fn = (int (*)(int, FILE *))dlsym(RTLD_DEFAULT, "malloc_info");
	if (!info_fn)
		return;
	fp = fopen(path, "we");
	if (!fp)
		return;
	info_fn(0, fp);
	fclose(fp);
}

__attribute__((destructor)) static void upalloc_run_stats_at_exit(void)
{
	const char *tmpl = getenv("UPALLOC_RUN_STATS_FILE");
	int saved_errno = errno;
	char path[4096];
	struct out o;
	int fd;

	write_malloc_info();
	if (!tmpl || !*tmpl || !expand_path(tmpl, path, sizeof(path)))
		goto out;
	o.len = 0;
	lib_stats(&o);
	device_stats(&o);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		const char *p = o.buf;
		size_t left = o.len;

		while (left) {
			ssize_t n = write(fd, p, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			p += n;
			left -= (size_t)n;
		}
		close(fd);
	}
out:
	errno = saved_errno;
}
