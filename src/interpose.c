/* interpose.c - the standard malloc family, exported so that linking
 * libmemkit or preloading it (LD_PRELOAD=libmemkit.so) replaces the C
 * library's allocator. Each forwards to the hidden mki_* function that the
 * mk_* names use too, as a direct jump (no PLT); malloc and free are not
 * here but aliases of mki_malloc and mki_free (alloc.c), to save even that
 * jump on the two calls that matter most.
 *
 * Not built into memkit_api (MEMKIT_NO_OVERRIDE), the library used under
 * sanitizers, which bring their own malloc.
 *
 * May call: alloc.c.
 */
#include <errno.h>
#include <stddef.h>
#include "memkit/internal.h"

#ifndef MEMKIT_NO_OVERRIDE

#define EXPORT __attribute__((visibility("default")))

EXPORT void *calloc(size_t count, size_t size);
EXPORT void *realloc(void *ptr, size_t size);
EXPORT void *reallocarray(void *ptr, size_t count, size_t size);
EXPORT void cfree(void *ptr);
EXPORT int posix_memalign(void **out, size_t align, size_t size);
EXPORT void *aligned_alloc(size_t align, size_t size);
EXPORT void *memalign(size_t align, size_t size);
EXPORT void *valloc(size_t size);
EXPORT void *pvalloc(size_t size);
EXPORT size_t malloc_usable_size(void *ptr);
EXPORT int malloc_trim(size_t pad);
EXPORT int mallopt(int param, int value);

void *calloc(size_t count, size_t size)
{
	return mki_calloc(count, size);
}

void *realloc(void *ptr, size_t size)
{
	return mki_realloc(ptr, size);
}

void *reallocarray(void *ptr, size_t count, size_t size)
{
	return mk_reallocarray(ptr, count, size);
}

void cfree(void *ptr)
{
	mki_free(ptr);
}

int posix_memalign(void **out, size_t align, size_t size)
{
	return mk_posix_memalign(out, align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	return mk_aligned_alloc(align, size);
}

void *memalign(size_t align, size_t size)
{
	return mk_aligned_alloc(align, size);
}

void *valloc(size_t size)
{
	return mk_valloc(size);
}

void *pvalloc(size_t size)
{
	return mk_pvalloc(size);
}

size_t malloc_usable_size(void *ptr)
{
	return mki_usable_size(ptr);
}

int malloc_trim(size_t pad)
{
	(void)pad;
	return mki_trim();
}

int mallopt(int param, int value)
{
	return mki_mallopt(param, value);
}

#endif /* MEMKIT_NO_OVERRIDE */
