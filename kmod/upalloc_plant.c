// SPDX-License-Identifier: GPL-2.0
/*
 * Planted defects for the harness test of make check-debug: compiled into
 * upalloc.ko only when the build defines UPALLOC_PLANT_UAF or
 * UPALLOC_PLANT_LEAK (tools/debug-kernel/check-debug --plant uaf|leak),
 * never in a normal build. The test expects the debug kernel's KASAN
 * to report the use-after-free and kmemleak the leak, and check-debug to
 * fail because of them.
 */
#include <linux/slab.h>

#include "upalloc.h"

#ifdef UPALLOC_PLANT_LEAK
/* Allocated at load, never freed, no pointer kept: kmemleak's job. */
static noinline void upalloc_plant_leak(void)
{
	void *p = kmalloc(192, GFP_KERNEL);

	if (p)
		memset(p, 0x5a, 192);
	pr_info("planted leak of 192 bytes\n");
}
#else
static inline void upalloc_plant_leak(void)
{
}
#endif

#ifdef UPALLOC_PLANT_UAF
/* Read after kfree(): KASAN's job. */
static noinline void upalloc_plant_uaf(void)
{
	u8 *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	p[0] = 1;
	kfree(p);
	pr_info("planted use-after-free reads %u\n", READ_ONCE(p[0]));
}
#else
static inline void upalloc_plant_uaf(void)
{
}
#endif

void upalloc_plant(void)
{
	upalloc_plant_uaf();
	upalloc_plant_leak();
}
