/* memkit.h - the public API of libmemkit.
 *
 * libmemkit is the memory-management stack of the Linux kernel and libc,
 * built in user space:
 *
 *   mk_malloc & co.   size-classed pools per thread (slabs), mmap for large blocks
 *   mk_cache_*        slab object caches with constructor and destructor
 *   mk_pages_*        the buddy system: 4 KiB pages in blocks of 2^order pages
 *
 * Linked or preloaded (LD_PRELOAD=libmemkit.so), it also provides the standard
 * malloc family; the mk_ names below are always available and behave the same.
 */
#ifndef MEMKIT_H
#define MEMKIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MK_EXPORT      __attribute__((visibility("default")))
#define MK_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define MK_EXPORT
#define MK_MALLOC_ATTR
#endif

#define MK_VERSION_MAJOR 0
#define MK_VERSION_MINOR 1
#define MK_VERSION_PATCH 0

/* ------------------------------------------------------------ malloc family */

MK_EXPORT MK_MALLOC_ATTR void *mk_malloc(size_t size);
MK_EXPORT MK_MALLOC_ATTR void *mk_calloc(size_t count, size_t size);
MK_EXPORT void *mk_realloc(void *ptr, size_t size);
MK_EXPORT void *mk_reallocarray(void *ptr, size_t count, size_t size);
MK_EXPORT void mk_free(void *ptr);
MK_EXPORT int mk_posix_memalign(void **out, size_t alignment, size_t size);
MK_EXPORT MK_MALLOC_ATTR void *mk_aligned_alloc(size_t alignment, size_t size);
MK_EXPORT MK_MALLOC_ATTR void *mk_memalign(size_t alignment, size_t size);
MK_EXPORT MK_MALLOC_ATTR void *mk_valloc(size_t size);
MK_EXPORT MK_MALLOC_ATTR void *mk_pvalloc(size_t size);
MK_EXPORT size_t mk_malloc_usable_size(const void *ptr);
/* Return free memory to the OS now (pad is ignored); 1 if anything was returned. */
MK_EXPORT int mk_malloc_trim(size_t pad);
/* glibc's mallopt: M_MMAP_THRESHOLD (-3) and M_TRIM_THRESHOLD/M_ARENA_* accepted. */
MK_EXPORT int mk_mallopt(int param, int value);

/* ------------------------------------------------------------ buddy pages */

#define MK_PAGE_SIZE 4096u
#define MK_MAX_ORDER 10 /* blocks of 1, 2, 4 ... 1024 pages: 11 free lists */

/* 2^order contiguous pages, aligned to their size; NULL + ENOMEM on failure,
 * NULL + EINVAL for an order above MK_MAX_ORDER. */
MK_EXPORT MK_MALLOC_ATTR void *mk_pages_alloc(unsigned order);
/* Give back a block from mk_pages_alloc with the same order; it merges with its
 * free buddy, and so on up. A wrong order or pointer aborts with a message. */
MK_EXPORT void mk_pages_free(void *pages, unsigned order);

/* ------------------------------------------------------------ slab caches */

typedef struct mk_cache mk_cache_t;
#define MK_CACHE_MAX_OBJECT ((size_t)128 * 1024) /* larger objects: use mk_pages_alloc */
typedef void (*mk_ctor_fn)(void *obj);
typedef void (*mk_dtor_fn)(void *obj);

/* A cache of equal objects of `size` bytes (1 .. MK_CACHE_MAX_OBJECT)
 * aligned to `align` (0: 16, or a power of two up to 4096). ctor runs once when a slab is carved, dtor
 * when the slab goes back to the buddy system: objects come out of
 * mk_cache_alloc in their constructed state and must go back in it. */
MK_EXPORT mk_cache_t *mk_cache_create(const char *name, size_t size, size_t align, mk_ctor_fn ctor,
				      mk_dtor_fn dtor);
MK_EXPORT MK_MALLOC_ATTR void *mk_cache_alloc(mk_cache_t *cache);
MK_EXPORT void mk_cache_free(mk_cache_t *cache, void *obj);
/* Give the cache's empty slabs back to the buddy system; returns pages freed. */
MK_EXPORT size_t mk_cache_shrink(mk_cache_t *cache);
/* Destroy the cache; objects still allocated are reported on stderr and lost. */
MK_EXPORT void mk_cache_destroy(mk_cache_t *cache);

struct mk_cache_info {
	char name[32];
	size_t object_size;  /* as asked */
	size_t slot_size;    /* after alignment */
	unsigned slab_order; /* each slab is 2^slab_order pages */
	unsigned objects_per_slab;
	size_t active_objects;
	size_t total_objects;
	size_t slabs_full, slabs_partial, slabs_empty;
};
MK_EXPORT int mk_cache_info(const mk_cache_t *cache, struct mk_cache_info *info);

/* ------------------------------------------------------------ statistics */

#define MK_STATS_MAX_CLASSES 64

struct mk_class_stats {
	size_t block_size;  /* 0 marks the end of the array */
	size_t live_blocks; /* allocated and not freed */
	size_t slabs;	    /* slabs of this class in use */
	size_t slab_bytes;  /* bytes of those slabs */
	uint64_t allocs, frees;
};

struct mk_stats {
	/* what the program asked for and what it holds */
	size_t requested_bytes; /* sum of live request sizes (approximate across threads) */
	size_t allocated_bytes; /* sum of live block sizes (size-class rounded) */
	size_t active_bytes;	/* pages in use by slabs, runs and large blocks */
	size_t resident_bytes;	/* from /proc/self/statm; 0 if unreadable */
	size_t mapped_bytes;	/* chunks + large mappings + metadata */
	size_t metadata_bytes;
	/* the buddy system over libmemkit's chunks: like /proc/buddyinfo */
	size_t chunks;
	size_t buddy_free_blocks[MK_MAX_ORDER + 1];
	size_t buddy_free_bytes;
	size_t buddy_purged_bytes; /* free and returned to the OS (MADV_DONTNEED) */
	/* large blocks (>= mmap threshold) */
	size_t large_live, large_live_bytes;
	size_t large_cached, large_cached_bytes;
	size_t mmap_threshold;
	/* fragmentation */
	size_t internal_frag_bytes; /* allocated - requested */
	double external_frag;	    /* share of free pages not in the largest order block */
	/* system calls made by the OS layer */
	uint64_t sys_mmap, sys_munmap, sys_madvise, sys_mremap;
	uint64_t threads, heaps_abandoned;
	struct mk_class_stats classes[MK_STATS_MAX_CLASSES];
};

enum mk_format { MK_FORMAT_TEXT = 0, MK_FORMAT_JSON = 1 };

MK_EXPORT int mk_stats_get(struct mk_stats *stats);
/* Write the statistics to fd without allocating. 0 or an errno value. */
MK_EXPORT int mk_stats_print(int fd, enum mk_format format);

/* ------------------------------------------------------------ leaks */

/* Leak tracking is on when MEMKIT_LEAK=1 is set at start-up (memkit run
 * --leaks). Each live block then remembers its allocation call stack. */
MK_EXPORT bool mk_leak_enabled(void);
/* Report blocks still live (unreachable ones as leaks, reachable apart),
 * grouped by call stack, largest first. Returns the number of leaked blocks,
 * or -1 with errno set. */
MK_EXPORT long mk_leak_report(int fd, enum mk_format format);
/* A window: mk_leak_begin() starts one; mk_leak_end() reports the blocks
 * allocated since and still live. */
MK_EXPORT void mk_leak_begin(void);
MK_EXPORT long mk_leak_end(int fd, enum mk_format format);

#ifdef __cplusplus
}
#endif

/* arenas, scoped cleanup, the shared-memory heap */
#include "memkit/pool.h"

#endif /* MEMKIT_H */
