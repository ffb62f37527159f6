/* SPDX-License-Identifier: MIT */
/*
 * Stand-in for glibc's malloc/malloc-size.h: the alignment upalloc
 * promises, which is glibc's on x86-64 (16 bytes).
 */
#ifndef UPA_MALLOC_SIZE_H
#define UPA_MALLOC_SIZE_H
#define MALLOC_ALIGNMENT 16
#define MALLOC_ALIGN_MASK (MALLOC_ALIGNMENT - 1)
#endif
