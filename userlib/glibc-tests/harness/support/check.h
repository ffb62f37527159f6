/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/check.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_CHECK_H
#define UPA_SUPPORT_CHECK_H
#include <support/upa-harness.h>

#define FAIL_EXIT(st, ...)	upa_exit_fail(st, UPA_HERE, __VA_ARGS__)
#define FAIL_EXIT1(...)		FAIL_EXIT(1, __VA_ARGS__)
#define FAIL_UNSUPPORTED(...)	FAIL_EXIT(77, __VA_ARGS__)
#define FAIL_RET(...)							\
	do {								\
		support_record_failure();				\
		printf("%s: ", UPA_HERE);				\
		printf(__VA_ARGS__);					\
		putchar('\n');						\
		return 1;						\
	} while (0)
#define FAIL(...)							\
	do {								\
		support_record_failure();				\
		printf("%s: ", UPA_HERE);				\
		printf(__VA_ARGS__);					\
		putchar('\n');						\
	} while (0)

#define TEST_VERIFY(expr)						\
	do {								\
		if (!(expr)) {						\
			support_record_failure();			\
			printf("%s: not true: %s\n", UPA_HERE, #expr);	\
		}							\
	} while (0)
#define TEST_VERIFY_EXIT(expr)						\
	do {								\
		if (!(expr))						\
			upa_exit_fail(1, UPA_HERE, "not true: %s", #expr); \
	} while (0)

/* Both sides as long long (the tests compare integers and pointers'
 * integer fields); prints both values when they differ. */
#define TEST_COMPARE(left, right)					\
	do {								\
		long long upa_l_ = (long long)(left);			\
		long long upa_r_ = (long long)(right);			\
		if (upa_l_ != upa_r_) {					\
			support_record_failure();			\
			printf("%s: %s == %s: %lld != %lld\n", UPA_HERE,	\
			       #left, #right, upa_l_, upa_r_);		\
		}							\
	} while (0)
#endif
