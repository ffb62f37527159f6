/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/test-driver.h (see test-driver.c). */
#ifndef UPA_SUPPORT_TEST_DRIVER_H
#define UPA_SUPPORT_TEST_DRIVER_H
#include <support/upa-harness.h>

enum { DEFAULT_TIMEOUT = 20 };	/* seconds, times $TIMEOUTFACTOR */

#define verbose_printf(...)						\
	do {								\
		if (test_verbose > 0)					\
			printf(__VA_ARGS__);				\
	} while (0)
#endif
