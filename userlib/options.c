// SPDX-License-Identifier: MIT
/*
 * options.c: every tunable in one table. Each can be set by mallopt()
 * (glibc's M_* numbers, plus UPA_M_* from upalloc.h) and by the
 * environment variable UPALLOC_<NAME> (read once, at initialisation).
 *
 * The environment is read from environ directly, not with getenv(): no
 * locale or allocation concerns, and it works before libc has finished
 * starting up; if environ is not set yet, /proc/self/environ is read.
 * Values are decimal or 0x-hex, optionally with a k, m or g suffix.
 * In secure-execution mode (setuid programs, AT_SECURE) the environment is
 * ignored, as glibc ignores its MALLOC_* variables there.
 */
#include <malloc.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "internal.h"
#include "tcache.h"
#include "include/upalloc.h"

extern char **environ;

struct upa_params upa_mp = {
	.max_fast	= (UPA_DEFAULT_MXFAST + UPA_WORD) & ~(size_t)(UPA_ALIGN - 1),
	.trim_threshold	= UPA_DEFAULT_TRIM_THRESHOLD,
	.top_pad	= UPA_DEFAULT_TOP_PAD,
	.mmap_threshold	= UPA_DEFAULT_MMAP_THRESHOLD,
	.mmap_max	= UPA_DEFAULT_MMAP_MAX,
	.arena_test	= UPA_DEFAULT_ARENA_TEST,
	.heap_reserve	= UPA_DEFAULT_HEAP_RESERVE,
	.tcache_count	= UPA_DEFAULT_TCACHE_COUNT,
	.tcache_bins	= UPA_TCACHE_ALL_BINS,
	.backend	= "auto",
};

struct upa_option {
	const char *name;	/* UPALLOC_<name> */
	int param;		/* mallopt number */
};

static const struct upa_option options[] = {
	{ "MXFAST",		M_MXFAST },
	{ "TRIM_THRESHOLD",	M_TRIM_THRESHOLD },
	{ "TOP_PAD",		M_TOP_PAD },
	{ "MMAP_THRESHOLD",	M_MMAP_THRESHOLD },
	{ "MMAP_MAX",		M_MMAP_MAX },
	{ "CHECK_ACTION",	M_CHECK_ACTION },
	{ "PERTURB",		M_PERTURB },
	{ "ARENA_TEST",		M_ARENA_TEST },
	{ "ARENA_MAX",		M_ARENA_MAX },
	{ "TCACHE_COUNT",	UPA_M_TCACHE_COUNT },
	{ "TCACHE_MAX",		UPA_M_TCACHE_MAX },
	{ "HEAP_RESERVE",	UPA_M_HEAP_RESERVE },
	{ "HARDENED",		UPA_M_HARDENED },
};

int upa_option_set(int param, int value)
{
	struct upa_tcache *tc = &upa_tc;
	size_t v = (size_t)(long)value;

	switch (param) {
	case M_MXFAST:
		if (value < 0 || value > UPA_MAX_MXFAST)
			return 0;
		/* 0 disables fast bins: no chunk is that small. */
		upa_mp.max_fast = value ? (v + UPA_WORD) & ~(size_t)(UPA_ALIGN - 1)
					: UPA_MIN_CHUNK / 2;
		return 1;
	case M_TRIM_THRESHOLD:
		upa_mp.trim_threshold = v;
		upa_mp.no_dyn_threshold = true;
		return 1;
	case M_TOP_PAD:
		upa_mp.top_pad = v;
		upa_mp.no_dyn_threshold = true;
		return 1;
	case M_MMAP_THRESHOLD:
		if (value < 0 || v > UPA_MAX_MMAP_THRESHOLD)
			return 0;
		upa_mp.mmap_threshold = v;
		upa_mp.no_dyn_threshold = true;
		return 1;
	case M_MMAP_MAX:
		if (value < 0)
			return 0;
		upa_mp.mmap_max = v;
		upa_mp.no_dyn_threshold = true;
		return 1;
	case M_CHECK_ACTION:
		/* Accepted for compatibility: our checks always abort. */
		return 1;
	case M_PERTURB:
		/* The hardened mode's pattern takes its place. */
		if (!upa_mp.hardened)
			upa_mp.perturb = value & 0xff;
		return 1;
	case M_ARENA_TEST:
		if (value <= 0)
			return 0;
		upa_mp.arena_test = v;
		return 1;
	case M_ARENA_MAX:
		if (value <= 0)
			return 0;
		upa_mp.arena_max = v;
		return 1;
	case UPA_M_TCACHE_COUNT:
		if (value < 0 || value > 65535)
			return 0;
		if (upa_mp.hardened) {
			/* The mode's own cache; the default one stays off. */
			upa_mp.hard_cache_count = (unsigned int)value;
			return 1;
		}
		upa_mp.tcache_count = (unsigned int)value;
		if (tc->state == UPA_THREAD_LIVE)
			upa_tcache_set_limits(tc, upa_mp.tcache_count, tc->nbins);
		return 1;
	case UPA_M_TCACHE_MAX:
		if (value < 0 || value > UPA_TCACHE_ALL_MAX_REQUEST)
			return 0;
		upa_mp.tcache_bins = tcache_index(upa_request_size(v)) + 1;
		if (tc->state == UPA_THREAD_LIVE)
			upa_tcache_set_limits(tc, tc->limit, upa_mp.tcache_bins);
		return 1;
	case UPA_M_HEAP_RESERVE:
		/* Fixed once the first heap exists (the heap mask). */
		if (!upa_is_pow2(v) || v < (1UL << 20) ||
		    (upa_initialized && (upa_main_arena.heap ||
					 upa_narenas > 1)))
			return v == upa_mp.heap_reserve;
		upa_mp.heap_reserve = v;
		upa_heap_mask = ~(v - 1);
		upa_next_size_mask = upa_heap_mask | UPA_PREV_INUSE;
		upa_heap_shift = (unsigned int)__builtin_ctzl(v);
		return 1;
	case UPA_M_HARDENED:
		/*
		 * Only before the first heap: a block handed out before has
		 * no state in the mode's map (and one cached by the default
		 * cache none in its).
		 */
		if (value != 0 && value != 1)
			return 0;
		if (upa_initialized && (upa_main_arena.heap || upa_narenas > 1))
			return value == upa_mp.hardened;
		if (upa_hard_enable(value))
			return 0;
		if (tc->state == UPA_THREAD_LIVE)
			upa_tcache_set_limits(tc, upa_mp.tcache_count, tc->nbins);
		return 1;
	}
	return 0;
}

/*
 * Fallback when environ is not set yet: "A=1\0B=2\0...", mapped on first
 * use (rarely needed; as static data its 64 KiB of .bss sat between the
 * library's other static variables and spread them over one more page).
 */
#define PROC_ENVIRON_SIZE 65536
static char *proc_environ;

static const char *proc_getenv(const char *name, size_t len)
{
	static bool loaded;
	size_t used = 0;
	char *p;

	if (!loaded) {
		int fd = upa_open_nocancel("/proc/self/environ", O_RDONLY | O_CLOEXEC);
		ssize_t n = 0;

		loaded = true;
		if (fd < 0)
			return NULL;
		p = mmap(NULL, PROC_ENVIRON_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			upa_close_nocancel(fd);
			return NULL;
		}
		while (used < PROC_ENVIRON_SIZE - 1 &&
		       (n = upa_read_nocancel(fd, p + used,
				 PROC_ENVIRON_SIZE - 1 - used)) > 0)
			used += (size_t)n;
		upa_close_nocancel(fd);
		p[used] = '\0';
		proc_environ = p;
	}
	if (!proc_environ)
		return NULL;
	for (p = proc_environ; *p; p += strlen(p) + 1)
		if (!strncmp(p, name, len) && p[len] == '=')
			return p + len + 1;
	return NULL;
}

const char *upa_getenv(const char *name)
{
	size_t len = strlen(name);
	char **e = environ;

	if (getauxval(AT_SECURE))
		return NULL;
	if (!e)
		return proc_getenv(name, len);
	for (; *e; e++)
		if (!strncmp(*e, name, len) && (*e)[len] == '=')
			return *e + len + 1;
	return NULL;
}

/* Parse "123", "0x1f", "64k", "32M", "1g"; false when malformed. */
static bool parse_size(const char *s, long *out)
{
	unsigned long v = 0, base = 10;
	int shift = 0;
	bool neg = false;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned int d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned int)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned int)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned int)(*s - 'A' + 10);
		else
			break;
		if (v > (~0UL - d) / base)
			return false;
		v = v * base + d;
	}
	if (*s == 'k' || *s == 'K')
		shift = 10;
	else if (*s == 'm' || *s == 'M')
		shift = 20;
	else if (*s == 'g' || *s == 'G')
		shift = 30;
	if (shift)
		s++;
	if (*s || (shift && v > (~0UL >> shift)))
		return false;
	v <<= shift;
	if (v > 0x7fffffffUL)
		return false;
	*out = neg ? -(long)v : (long)v;
	return true;
}

static void warn_bad_env(const char *var, const char *value)
{
	char msg[256];
	int n = upa_snprintf(msg, sizeof(msg),
			     "upalloc: ignoring %s=%s: invalid value\n",
			     var, value);

	upa_write_all(2, msg, (size_t)n < sizeof(msg) ? (size_t)n
							 : sizeof(msg) - 1);
}

void upa_options_init(void)
{
	char var[64];
	const char *s;
	unsigned int i;
	long v;

	for (i = 0; i < UPA_ARRAY_SIZE(options); i++) {
		upa_snprintf(var, sizeof(var), "UPALLOC_%s", options[i].name);
		s = upa_getenv(var);
		if (!s)
			continue;
		if (!parse_size(s, &v) || !upa_option_set(options[i].param,
							  (int)v))
			warn_bad_env(var, s);
	}
	s = upa_getenv("UPALLOC_BACKEND");
	if (s) {
		if (!strcmp(s, "auto") || !strcmp(s, "device") ||
		    !strcmp(s, "mmap"))
			strcpy(upa_mp.backend, s);
		else
			warn_bad_env("UPALLOC_BACKEND", s);
	}
	s = upa_getenv("UPALLOC_STATS");
	if (s)
		upa_mp.print_stats = s[0] && strcmp(s, "0") != 0;
}

UPA_API int upa_mallopt(int param, int value)
{
	int ok;

	upa_ensure_init();
	upa_lock(&upa_global_lock);
	ok = upa_option_set(param, value);
	upa_unlock(&upa_global_lock);
	return ok;
}
