// SPDX-License-Identifier: MIT
/*
 * init.c: lazy initialisation, safe to reach from any entry point, in any
 * thread, before or after constructors, without malloc: the page size and
 * the thread-cache key come from the auxiliary vector, the options from
 * environ (options.c). Also the library constructor, which registers the
 * fork handler early with the device backend (before the program can
 * start threads; see arena.c for the mmap backend).
 */
#include <sys/auxv.h>
#include <sys/random.h>
#include <string.h>
#include <stdlib.h>

#include "internal.h"
#include "tcache.h"

int upa_initialized;
uintptr_t upa_tcache_key;
struct upa_lock upa_global_lock = UPA_LOCK_INIT;
size_t upa_page_size = 4096;
static struct upa_lock init_lock = UPA_LOCK_INIT;

/* splitmix64's finaliser: a bijective mix, so no input bit is exposed. */
static uint64_t key_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * The thread-cache key is stored in freed blocks, where a buggy program
 * can read it: so it must not be one of glibc's secrets (AT_RANDOM holds
 * the stack-protector and pointer-guard values). Fresh bytes from
 * getrandom(); if that fails, AT_RANDOM and addresses, mixed.
 */
static void key_init(void)
{
	const unsigned char *rnd = (const void *)getauxval(AT_RANDOM);
	int saved_errno = errno;
	uint64_t k = 0, a = 0, b = 0;

	if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != sizeof(k)) {
		if (rnd) {
			memcpy(&a, rnd, sizeof(a));
			memcpy(&b, rnd + 8, sizeof(b));
		}
		k = key_mix(a ^ key_mix(b ^ (uintptr_t)&k) ^
			    (uintptr_t)&upa_tcache_key);
	}
	errno = saved_errno;
	if (!k)
		k = 0x5a17c0de5a17c0deULL;
	upa_tcache_key = (uintptr_t)k;
}

void upa_init_slow(void)
{
	const char *why = "cannot initialise";
	unsigned long ps;
	int err;

	upa_lock(&init_lock);
	if (upa_initialized) {
		upa_unlock(&init_lock);
		return;
	}
	ps = getauxval(AT_PAGESZ);
	if (ps && upa_is_pow2(ps))
		upa_page_size = ps;
	key_init();
	upa_options_init();
	err = upa_region_init(&why);
	if (err) {
		char msg[160];

		upa_snprintf(msg, sizeof(msg), "%s (errno %d)", why, -err);
		upa_fatal(msg);
	}
	upa_arena_init(&upa_main_arena, 0);
	__atomic_store_n(&upa_initialized, 1, __ATOMIC_RELEASE);
	upa_unlock(&init_lock);
	/*
	 * The device's fork handler must run in every child; otherwise the
	 * handler waits for the first thread (arena.c). pthread_atfork may
	 * allocate: we are ready for that now.
	 */
	if (upa_region_is_device())
		upa_fork_register();
}

__attribute__((constructor)) static void upa_constructor(void)
{
	upa_ensure_init();
}

__attribute__((destructor)) static void upa_destructor(void)
{
	if (upa_initialized && upa_mp.print_stats)
		upa_stats_at_exit();
}

UPA_API const char *upa_backend_name(void)
{
	upa_ensure_init();
	return upa_region_backend_name();
}
