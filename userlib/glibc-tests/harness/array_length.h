/* SPDX-License-Identifier: MIT */
/* Stand-in for glibc's include/array_length.h. */
#ifndef UPA_ARRAY_LENGTH_H
#define UPA_ARRAY_LENGTH_H
#define array_length(a) (sizeof(a) / sizeof((a)[0]))
#endif
