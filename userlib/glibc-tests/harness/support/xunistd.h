/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/xunistd.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_XUNISTD_H
#define UPA_SUPPORT_XUNISTD_H
#include <support/upa-harness.h>
#endif
