/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's include/libc-diag.h: warning push/ignore/pop. */
#ifndef UPA_LIBC_DIAG_H
#define UPA_LIBC_DIAG_H
#define UPA_DIAG_PRAGMA_(x) _Pragma(#x)
#define DIAG_PUSH_NEEDS_COMMENT _Pragma("GCC diagnostic push")
#define DIAG_POP_NEEDS_COMMENT _Pragma("GCC diagnostic pop")
#define DIAG_IGNORE_NEEDS_COMMENT(version, option)			\
	UPA_DIAG_PRAGMA_(GCC diagnostic ignored option)
#define DIAG_IGNORE_Os_NEEDS_COMMENT(version, option)
#endif
