// SPDX-License-Identifier: MIT
/*
 * init.c: lazy initialisation, safe to reach from any entry point, in any
 * thread, before or after constructors, without malloc: the page size and
 * the thread-cache key come from the auxiliary vector, the options from
 * environ (options.c). Also the library constructor, which registers the
 * fork handler early (before the program can start threads).
 */
#include <sys/auxv.h>
#include <string.h>
#include <stdlib.h>

#include "internal.h"
#include "tcache.h"

int upa_initialized;
uintptr_t upa_tcache_key;
struct upa_lock upa_global_lock = UPA_LOCK_INIT;
size_t upa_page_size = 4096;
static struct upa_lock init_lock = UPA_LOCK_INIT;

static void key_init(void)
{
	const unsigned char *rnd = (const void *)getauxval(AT_RANDOM);
	uintptr_t k = (uintptr_t)&k ^ 0x9e3779b97f4a7c15ULL;

	/*
	 * AT_RANDOM: 16 random bytes from the kernel; glibc uses the first 8
	 * for the stack protector, we take the last 8.
	 */
	if (rnd)
		memcpy(&k, rnd + 8, sizeof(k));
	if (!k)
		k = 0x5a17c0de5a17c0deULL;
	upa_tcache_key = k;
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
	/* pthread_atfork may allocate: we are ready for that now. */
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
