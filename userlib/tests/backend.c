// SPDX-License-Identifier: MIT
/*
 * Description: the page source. UPALLOC_BACKEND selects it (auto picks the
 * device exactly when /dev/upalloc exists; device fails clearly without
 * it); a program that closes all its descriptors, even one that reuses the
 * numbers for its own files, keeps a working allocator whose device calls
 * never touch those files; on the device backend the memory is the
 * module's (the process's own counters from UPALLOC_IOC_PROC_STATS grow
 * with the heap and shrink when it is trimmed or a chunk unmapped).
 */
#include <dirent.h>
#include <dlfcn.h>

#include "upa_test.h"

UPA_FIXTURE(backend)

TEST_F(backend, backend_follows_environment)
{
	const char *want = getenv("UPALLOC_BACKEND");
	struct upa_lib_stats st;

	if (!want || (strcmp(want, "mmap") && strcmp(want, "device")))
		SKIP(return, "UPALLOC_BACKEND is not mmap or device");
	EXPECT_STREQ(want, upa_backend_name());
	STATS(st);
	EXPECT_EQ(!strcmp(want, "device"), st.backend_is_device);
}

TEST_F(backend, auto_backend_uses_device_exactly_when_present)
{
	const char *const env[] = { "UPALLOC_BACKEND=auto", NULL };
	const char *const argv[] = { "backend", "malloc", "100", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_NE(NULL, strstr(r.out, device_present() ? "backend=device\n" :
					       "backend=mmap\n"))
		TH_LOG("device %s; probe said: %s",
		       device_present() ? "present" : "absent", r.out);
	EXPECT_EQ(0, probe_value(&r, "ptr0_null"));
}

TEST_F(backend, mmap_backend_is_used_when_requested)
{
	const char *const env[] = { "UPALLOC_BACKEND=mmap", NULL };
	const char *const argv[] = { "backend", "malloc", "100", "stats", NULL };
	struct probe_result r;

	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_NE(NULL, strstr(r.out, "backend=mmap\n")) TH_LOG("%s", r.out);
	EXPECT_EQ(0, probe_value(&r, "backend_is_device"));
}

TEST_F(backend, device_backend_fails_clearly_without_device)
{
	const char *const env[] = { "UPALLOC_BACKEND=device", NULL };
	const char *const argv[] = { "malloc", "100", "backend", NULL };
	struct probe_result r;

	if (device_present())
		SKIP(return, "/dev/upalloc exists");
	ASSERT_EQ(0, run_probe(&r, env, argv));
	/* no silent fallback: the program does not go on as if nothing happened */
	EXPECT_EQ(NULL, strstr(r.out, "backend=mmap")) TH_LOG("%s", r.out);
	EXPECT_FALSE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 &&
		     probe_value(&r, "ptr0_null") == 0)
		TH_LOG("the probe succeeded without the device: %s", r.out);
	/* and says why, naming the device */
	EXPECT_NE(NULL, strstr(r.err, "upalloc")) TH_LOG("stderr: %s", r.err);
	EXPECT_NE(NULL, strstr(r.err, "/dev/upalloc")) TH_LOG("stderr: %s", r.err);
}

TEST_F(backend, device_backend_is_used_when_requested)
{
	const char *const env[] = { "UPALLOC_BACKEND=device", NULL };
	const char *const argv[] = { "backend", "malloc", "100", "stats", NULL };
	struct probe_result r;

	if (!device_present())
		SKIP(return, "/dev/upalloc is missing");
	ASSERT_EQ(0, run_probe(&r, env, argv));
	PROBE_OK(r);
	EXPECT_NE(NULL, strstr(r.out, "backend=device\n")) TH_LOG("%s", r.out);
	EXPECT_EQ(1, probe_value(&r, "backend_is_device"));
}

/* ---- a program that closes every descriptor ---- */

static int close_everything_then_allocate(void *unused)
{
	char name[] = "/tmp/upa-fds-XXXXXX", buf[64];
	int fd, i, files[16];
	void *p[64];
	struct stat sb;
	ssize_t n;

	(void)unused;
	/* daemons do this: nothing survives, not even the library's fd */
	for (fd = 0; fd < 1024; fd++)
		close(fd);
	/* reuse the low numbers for files of our own */
	fd = mkstemp(name);
	if (fd < 0)
		return 10;
	unlink(name);
	if (write(fd, "untouched", 9) != 9)
		return 11;
	for (i = 0; i < 16; i++)
		files[i] = open("/dev/null", O_RDWR);
	/* heap growth, trimming and large chunks all need the page source */
	for (i = 0; i < 64; i++) {
		p[i] = malloc(i % 8 == 0 ? (1 << 20) : (size_t)(i + 1) * 4000);
		if (!p[i])
			return 12;
		memset(p[i], i, i % 8 == 0 ? (1 << 20) : (size_t)(i + 1) * 4000);
	}
	for (i = 0; i < 64; i++)
		free(p[i]);
	malloc_trim(0);
	if (upa_heap_check())
		return 13;
	/* our files saw no foreign I/O */
	if (fstat(fd, &sb) || sb.st_size != 9)
		return 14;
	n = pread(fd, buf, sizeof(buf), 0);
	if (n != 9 || memcmp(buf, "untouched", 9))
		return 15;
	if (lseek(fd, 0, SEEK_CUR) != 9)
		return 16;
	for (i = 0; i < 16; i++)
		if (files[i] < 0 || fcntl(files[i], F_GETFD) < 0)
			return 17;
	return 0;
}

TEST_F(backend, closing_all_fds_keeps_allocator_working)
{
	EXPECT_CHILD_OK(close_everything_then_allocate, NULL, 30);
}

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

TEST_F(backend, allocating_does_not_leak_descriptors)
{
	int before, after, i;
	void *p[32];

	before = count_open_fds();
	for (i = 0; i < 32; i++)
		p[i] = malloc((size_t)(i + 1) << 16);
	for (i = 0; i < 32; i++)
		free(p[i]);
	malloc_trim(0);
	after = count_open_fds();
	ASSERT_LE(0, before);
	EXPECT_EQ(before, after);
}

/* ---- the device's own accounting ---- */

TEST_F(backend, device_heap_pages_come_from_module)
{
	struct upalloc_proc_stats before, during, after;
	void *p;

	if (!backend_is_device())
		SKIP(return, "not on the device backend");
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 16 << 20));
	ASSERT_EQ(1, mallopt(M_TRIM_THRESHOLD, 128 << 10));
	ASSERT_EQ(1, mallopt(M_TOP_PAD, 0));	/* the trim keeps no pad */
	ASSERT_EQ(0, dev_proc_stats(&before));
	p = malloc(4 << 20);
	ASSERT_NE(NULL, p);
	ASSERT_FALSE(chunk_is_mmapped(p));
	memset(p, 1, 4 << 20);
	ASSERT_EQ(0, dev_proc_stats(&during));
	/* 1024 pages touched: each one allocated by the module */
	EXPECT_LE(before.pages_allocated + 1000, during.pages_allocated);
	EXPECT_LE(before.pages_live + 1000, during.pages_live);
	/* the chunk lies below the break: committed */
	EXPECT_LE(1024, during.pages_committed);
	free(p);	/* top above the trim threshold: the break moves down */
	ASSERT_EQ(0, dev_proc_stats(&after));
	EXPECT_LE(after.pages_freed, after.pages_allocated);
	EXPECT_LE(before.pages_freed + 1000, after.pages_freed);
	EXPECT_GE(before.pages_live + 64, after.pages_live);
}

TEST_F(backend, device_mmapped_chunk_is_a_module_region)
{
	struct upalloc_proc_stats before, during, after;
	struct upalloc_region_info ri, heap_ri;
	void *p, *small;
	int fd;

	if (!backend_is_device())
		SKIP(return, "not on the device backend");
	small = malloc(100);
	ASSERT_EQ(0, dev_proc_stats(&before));
	p = malloc(2 << 20);
	ASSERT_TRUE(chunk_is_mmapped(p));
	memset(p, 1, 2 << 20);
	ASSERT_EQ(0, dev_proc_stats(&during));
	EXPECT_EQ(before.regions_created + 1, during.regions_created);
	EXPECT_EQ(before.regions_live + 1, during.regions_live);
	EXPECT_LE(before.pages_allocated + 512, during.pages_allocated);
	fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	memset(&ri, 0, sizeof(ri));
	ri.addr = (uintptr_t)p;
	ASSERT_EQ(0, ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri));
	/* the whole chunk lies in the region, below its break */
	EXPECT_LE(ri.start, (uintptr_t)p - 16);
	EXPECT_LE((uintptr_t)p + (2 << 20), ri.start + ri.brk);
	EXPECT_LE(512, ri.pages_present);
	/* and the region is not a heap's: no heap chunk lives in it */
	memset(&heap_ri, 0, sizeof(heap_ri));
	heap_ri.addr = (uintptr_t)small;
	ASSERT_EQ(0, ioctl(fd, UPALLOC_IOC_REGION_INFO, &heap_ri));
	EXPECT_NE(ri.start, heap_ri.start);
	close(fd);
	free(small);
	free(p);
	ASSERT_EQ(0, dev_proc_stats(&after));
	EXPECT_EQ(before.regions_live, after.regions_live);
	EXPECT_GE(before.pages_live + 16, after.pages_live);
}

TEST_F(backend, device_heap_is_a_heap_region)
{
	struct upalloc_region_info ri;
	void *p = malloc(100);
	int fd;

	if (!backend_is_device())
		SKIP(return, "not on the device backend");
	fd = open(UPALLOC_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	memset(&ri, 0, sizeof(ri));
	ri.addr = (uintptr_t)p;
	ASSERT_EQ(0, ioctl(fd, UPALLOC_IOC_REGION_INFO, &ri));
	EXPECT_TRUE(ri.flags & UPALLOC_REGION_HEAP);
	/* the chunk lies below the break: committed memory */
	EXPECT_LE((uintptr_t)p + 100, ri.start + ri.brk);
	close(fd);
	free(p);
}

TEST_F(backend, device_trim_decommits_free_pages)
{
	struct upalloc_proc_stats before, after;
	void *a, *guard;

	if (!backend_is_device())
		SKIP(return, "not on the device backend");
	tcache_disable();
	ASSERT_EQ(1, mallopt(M_MMAP_THRESHOLD, 16 << 20));
	a = malloc(2 << 20);
	guard = malloc(100);
	memset(a, 1, 2 << 20);
	free(a);
	ASSERT_EQ(0, dev_proc_stats(&before));
	EXPECT_EQ(1, malloc_trim(0));
	ASSERT_EQ(0, dev_proc_stats(&after));
	EXPECT_LE(before.pages_decommitted + 500, after.pages_decommitted);
	EXPECT_LE(before.pages_freed + 500, after.pages_freed);
	free(guard);
}

/* ---- interposition: the preload library exports the whole family ---- */

TEST_F(backend, preload_library_defines_every_malloc_symbol)
{
	static const char *const names[] = {
		"malloc", "free", "cfree", "calloc", "realloc", "reallocarray",
		"memalign", "posix_memalign", "aligned_alloc", "valloc",
		"pvalloc", "malloc_usable_size", "malloc_trim", "mallopt",
		"mallinfo", "mallinfo2", "malloc_stats", "malloc_info",
		"__libc_malloc", "__libc_free", "__libc_calloc",
		"__libc_realloc", "__libc_memalign", "__libc_valloc",
		"__libc_pvalloc", "__posix_memalign",
		"upa_malloc", "upa_free", "upa_heap_check", "upa_lib_stats",
	};
	char dir[PATH_MAX], so[PATH_MAX + 32], real_so[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	unsigned int i;
	void *h;

	ASSERT_LT(0, len);
	dir[len] = 0;
	*strrchr(dir, '/') = 0;	/* build/userlib/tests */
	snprintf(so, sizeof(so), "%s/../libupalloc.so", dir);
	if (access(so, R_OK))
		SKIP(return, "%s is not built", so);
	ASSERT_NE(NULL, realpath(so, real_so));
	h = dlopen(real_so, RTLD_NOW | RTLD_LOCAL);
	ASSERT_NE(NULL, h) TH_LOG("dlopen: %s", dlerror());
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *sym = dlsym(h, names[i]);
		Dl_info info;

		/* a name the library lacks would resolve to glibc's */
		ASSERT_NE(NULL, sym) TH_LOG("%s is missing", names[i]);
		ASSERT_NE(0, dladdr(sym, &info));
		EXPECT_STREQ(real_so, info.dli_fname)
			TH_LOG("%s comes from %s", names[i], info.dli_fname);
	}
}

/* ---- a program that forks before its first allocation ---- */

TEST_F(backend, fork_before_first_malloc_leaves_both_working)
{
	const char *const argv[] = { "fork", "malloc", "100", "malloc", "300000",
				     "malloc", "5000", "free", "0", "check", NULL };
	struct probe_result r;
	const char *first;

	ASSERT_EQ(0, run_probe(&r, NULL, argv));
	PROBE_OK(r);
	EXPECT_EQ(0, probe_value(&r, "fork_child_status")) TH_LOG("%s", r.out);
	/* the child's and the parent's heaps both check out */
	first = strstr(r.out, "heap_check=0\n");
	ASSERT_NE(NULL, first) TH_LOG("%s", r.out);
	EXPECT_NE(NULL, strstr(first + 1, "heap_check=0\n")) TH_LOG("%s", r.out);
	EXPECT_EQ(NULL, strstr(r.out, "_null=1")) TH_LOG("%s", r.out);
}

TEST_HARNESS_MAIN
