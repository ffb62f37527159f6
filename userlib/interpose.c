// SPDX-License-Identifier: MIT
/*
 * interpose.c: the standard malloc-family names. Preloaded, libupalloc.so
 * replaces every one of them (and glibc's __libc_* entry points, which a
 * few programs call directly), so that no block ever crosses between this
 * allocator and glibc's. malloc and free inline the thread-cache fast path;
 * the rest call the upa_* functions (bound locally: -Bsymbolic-functions).
 *
 * Built without UPA_INTERPOSE, the object is empty: libupalloc-prefix.a
 * holds only the upa_* names, for linking beside another allocator.
 */
#include <stdio.h>
#include <malloc.h>

#include "internal.h"
#include "tcache.h"
#include "include/upalloc.h"

#ifdef UPA_INTERPOSE

UPA_API void *malloc(size_t n)
{
	return upa_malloc_inline(n);
}

UPA_API void free(void *p)
{
	upa_free_inline(p);
}

UPA_API void cfree(void *p)
{
	upa_free_inline(p);
}

UPA_API void *calloc(size_t nmemb, size_t size)
{
	return upa_calloc(nmemb, size);
}

UPA_API void *realloc(void *p, size_t n)
{
	return upa_realloc(p, n);
}

UPA_API void *reallocarray(void *p, size_t nmemb, size_t size)
{
	return upa_reallocarray(p, nmemb, size);
}

UPA_API void *memalign(size_t align, size_t n)
{
	return upa_memalign(align, n);
}

UPA_API int posix_memalign(void **memptr, size_t align, size_t n)
{
	return upa_posix_memalign(memptr, align, n);
}

UPA_API void *aligned_alloc(size_t align, size_t n)
{
	return upa_aligned_alloc(align, n);
}

UPA_API void *valloc(size_t n)
{
	return upa_valloc(n);
}

UPA_API void *pvalloc(size_t n)
{
	return upa_pvalloc(n);
}

UPA_API size_t malloc_usable_size(void *p)
{
	return upa_malloc_usable_size(p);
}

UPA_API int malloc_trim(size_t pad)
{
	return upa_malloc_trim(pad);
}

UPA_API int mallopt(int param, int value)
{
	return upa_mallopt(param, value);
}

UPA_API struct mallinfo mallinfo(void)
{
	return upa_mallinfo();
}

UPA_API struct mallinfo2 mallinfo2(void)
{
	return upa_mallinfo2();
}

UPA_API void malloc_stats(void)
{
	upa_malloc_stats();
}

UPA_API int malloc_info(int options, FILE *fp)
{
	return upa_malloc_info(options, fp);
}

/* glibc's internal entry points, for the programs that use them. */
UPA_API void *__libc_malloc(size_t n)
{
	return upa_malloc_inline(n);
}

UPA_API void __libc_free(void *p)
{
	upa_free_inline(p);
}

UPA_API void *__libc_calloc(size_t nmemb, size_t size)
{
	return upa_calloc(nmemb, size);
}

UPA_API void *__libc_realloc(void *p, size_t n)
{
	return upa_realloc(p, n);
}

UPA_API void *__libc_memalign(size_t align, size_t n)
{
	return upa_memalign(align, n);
}

UPA_API void *__libc_valloc(size_t n)
{
	return upa_valloc(n);
}

UPA_API void *__libc_pvalloc(size_t n)
{
	return upa_pvalloc(n);
}

UPA_API int __posix_memalign(void **memptr, size_t align, size_t n)
{
	return upa_posix_memalign(memptr, align, n);
}

#endif /* UPA_INTERPOSE */
