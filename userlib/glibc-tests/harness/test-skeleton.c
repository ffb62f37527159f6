/* SPDX-License-Identifier: MIT */
/*
 * Stand-in for glibc's test-skeleton.c, included by the older tests as
 * "../test-skeleton.c" after "#define TEST_FUNCTION do_test ()": the
 * expression becomes a function for support/test-driver.c. Also brings
 * the headers those tests expect it to have included.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <support/check.h>
#include <support/support.h>
#include <support/xsignal.h>
#include <support/xthread.h>
#include <support/xunistd.h>
#include <support/temp_file.h>

#ifdef TEST_FUNCTION
static int upa_skeleton_test(void)
{
	return TEST_FUNCTION;
}
#undef TEST_FUNCTION
#define TEST_FUNCTION upa_skeleton_test
#endif

#include <support/test-driver.c>
