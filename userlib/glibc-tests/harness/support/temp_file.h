/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's support/temp_file.h (see upa-harness.h). */
#ifndef UPA_SUPPORT_TEMP_FILE_H
#define UPA_SUPPORT_TEMP_FILE_H
#include <support/upa-harness.h>
#endif
