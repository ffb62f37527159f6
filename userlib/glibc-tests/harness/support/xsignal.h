/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/xsignal.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_XSIGNAL_H
#define UPA_SUPPORT_XSIGNAL_H
#include <support/upa-harness.h>
#endif
