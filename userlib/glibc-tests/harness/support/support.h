/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/support.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_SUPPORT_H
#define UPA_SUPPORT_SUPPORT_H
#include <support/upa-harness.h>
#endif
