/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/xthread.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_XTHREAD_H
#define UPA_SUPPORT_XTHREAD_H
#include <support/upa-harness.h>
#endif
