/* memkit/pool.h - memory pools for programs: arenas, scoped cleanup and a
 * heap shared between processes (public API, mk_ prefix).
 *
 *   mk_arena_*      region pools: a pointer bump per object, everything freed
 *                   at once; pages come from libmemkit's buddy system
 *   MK_AUTOFREE     a variable whose block is freed when it goes out of scope
 *   MK_AUTO_ARENA   the same for an arena (destroyed at end of scope)
 *   mk_shm_*        a buddy + slab heap inside one MAP_SHARED file, memfd or
 *                   POSIX shm object, usable by several processes at once
 *
 * Self-contained: it includes memkit.h for MK_EXPORT, and memkit.h may include
 * it in turn. Arenas are not thread-safe (one owner at a time); the shared
 * heap is safe across processes and threads.
 */
#ifndef MEMKIT_POOL_H
#define MEMKIT_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "memkit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ arenas */

typedef struct mk_arena mk_arena_t;

struct mk_arena_opts {
	/* Order of the first block (2^order pages; 0..10). 0 picks the default
	 * (order 2: 16 KiB). Later blocks double up to order 10 (4 MiB). */
	unsigned block_order;
	/* A child arena: destroyed (and reset) together with its parent. */
	mk_arena_t *parent;
	/* For stats and messages; copied, at most 31 bytes kept. May be NULL. */
	const char *name;
};

/* A new arena, or NULL + errno (ENOMEM, EINVAL). opts may be NULL. */
MK_EXPORT mk_arena_t *mk_arena_create(const struct mk_arena_opts *opts);
/* size bytes aligned to 16; NULL + ENOMEM. Size 0 counts as 1. */
MK_EXPORT MK_MALLOC_ATTR void *mk_arena_alloc(mk_arena_t *a, size_t size);
/* align: a power of two, 1 to 4 MiB (strings can take 1); NULL + EINVAL otherwise. */
MK_EXPORT MK_MALLOC_ATTR void *mk_arena_alloc_aligned(mk_arena_t *a, size_t size, size_t align);
/* zero-filled; NULL + ENOMEM also when count * size overflows */
MK_EXPORT MK_MALLOC_ATTR void *mk_arena_calloc(mk_arena_t *a, size_t count, size_t size);
/* a copy of s in the arena */
MK_EXPORT MK_MALLOC_ATTR char *mk_arena_strdup(mk_arena_t *a, const char *s);
/* Forget every object; keep the arena's normal blocks for reuse. Blocks made
 * for one oversized object are given back, and child arenas are destroyed. */
MK_EXPORT void mk_arena_reset(mk_arena_t *a);
/* Destroy the arena and its children; every page goes back. NULL is a no-op. */
MK_EXPORT void mk_arena_destroy(mk_arena_t *a);

struct mk_arena_stats {
	size_t requested_bytes;	 /* sum of sizes asked since the last reset */
	size_t used_bytes;	 /* bytes bumped since the last reset, padding included */
	size_t reserved_bytes;	 /* bytes of all blocks held (headers included) */
	size_t blocks;		 /* normal blocks held */
	size_t dedicated_blocks; /* blocks holding one oversized object */
	size_t children;	 /* live child arenas */
	uint64_t allocs;	 /* objects since creation */
	uint64_t resets;
	char name[32];
};
/* 0, or EINVAL for a NULL argument */
MK_EXPORT int mk_arena_stats(const mk_arena_t *a, struct mk_arena_stats *st);

/* ------------------------------------------------------------ scoped cleanup
 * The compiler runs the cleanup function when the variable leaves its scope,
 * on every path: normal end, return, break, goto out of the block. (Not on
 * longjmp or exit().) Initialise the variable where it is declared and never
 * goto into its scope (gcc only warns with -Wjump-misses-init). To keep
 * the block, take it and clear the variable: `q = p; p = NULL;`.
 *
 *	MK_AUTOFREE char *buf = malloc(n);     free(buf) at end of scope
 *	MK_AUTO_ARENA mk_arena_t *a = mk_arena_create(NULL);
 */
static inline void mk_autofree_cleanup(void *pp)
{
	free(*(void **)pp);
}
static inline void mk_auto_mk_free_cleanup(void *pp)
{
	mk_free(*(void **)pp);
}
static inline void mk_auto_arena_cleanup(mk_arena_t **ap)
{
	mk_arena_destroy(*ap);
}
/* any cleanup: fn receives a pointer to the variable */
#define MK_AUTO(fn)    __attribute__((cleanup(fn)))
#define MK_AUTOFREE    MK_AUTO(mk_autofree_cleanup)	/* free() */
#define MK_AUTOFREE_MK MK_AUTO(mk_auto_mk_free_cleanup) /* mk_free(), when not linked as malloc */
#define MK_AUTO_ARENA  MK_AUTO(mk_auto_arena_cleanup)

/* ------------------------------------------------------------ shared heap
 * One heap = one file mapped MAP_SHARED. Inside it: a header (magic, version,
 * a robust process-shared mutex, named roots), page descriptors, and pages
 * managed by a buddy system; objects up to 2 KiB come from slabs. Objects are
 * named by offsets from the start of the heap, valid in every process;
 * mk_shm_ptr turns one into this process's address. Offset 0 is never an
 * object: it means "none".
 */
typedef struct mk_shm mk_shm_t;
typedef uint64_t mk_shm_off_t;

#define MK_SHM_CREATE 0x1u /* create the heap when the file does not exist */
#define MK_SHM_EXCL   0x2u /* with CREATE: fail with EEXIST if it exists */
#define MK_SHM_POSIX  0x4u /* name is a POSIX shm object ("/name", shm_open) */
#define MK_SHM_MEMFD \
	0x8u /* an anonymous memfd (name is its label): shared
			    * with the children forked after mk_shm_open */

#define MK_SHM_MIN_SIZE	 ((size_t)256 << 10) /* 256 KiB */
#define MK_SHM_MAX_SIZE	 ((size_t)64 << 30)  /* 64 GiB */
#define MK_SHM_ROOTS	 32		     /* named roots per heap */
#define MK_SHM_ROOT_NAME 47		     /* longest root name */
#define MK_SHM_MAX_SMALL 2048		     /* larger objects take whole pages */

/* Open or create a heap. size is the heap's maximum size, fixed at creation
 * (MK_SHM_MIN_SIZE..MK_SHM_MAX_SIZE, rounded up to 4 KiB): the file starts
 * small and grows up to it. When an existing heap is opened size is ignored
 * (0 is fine). Returns NULL and sets errno on failure:
 *   EMEDIUMTYPE      the file is not a memkit heap (it is left unchanged)
 *   EPROTONOSUPPORT  a memkit heap of another format version (left unchanged)
 *   EINVAL           bad size or flags; others from open/mmap/ftruncate.
 * mk_shm_error() then says why in words. */
MK_EXPORT mk_shm_t *mk_shm_open(const char *path_or_name, size_t size, unsigned flags);
/* Unmap and close; the heap's contents stay in the file. NULL is a no-op. */
MK_EXPORT void mk_shm_close(mk_shm_t *h);
/* The last error of an mk_shm_* call in this thread, as a sentence. */
MK_EXPORT const char *mk_shm_error(void);

/* An object of size bytes (16-aligned, not zeroed); 0 + errno (ENOMEM when
 * the heap is at its maximum size). */
MK_EXPORT mk_shm_off_t mk_shm_alloc(mk_shm_t *h, size_t size);
/* 0, or EINVAL for an offset that is not a live object (nothing changed) */
MK_EXPORT int mk_shm_free(mk_shm_t *h, mk_shm_off_t off);
/* offset -> address in this process (NULL for 0 or outside the heap) */
MK_EXPORT void *mk_shm_ptr(const mk_shm_t *h, mk_shm_off_t off);
/* address in this process -> offset (0 if p is not inside the heap) */
MK_EXPORT mk_shm_off_t mk_shm_off(const mk_shm_t *h, const void *p);

/* Named roots: how processes find each other's data. set: 0, or EINVAL (bad
 * name), ENOSPC (table full). off 0 removes the name. get: the offset, or 0. */
MK_EXPORT int mk_shm_root_set(mk_shm_t *h, const char *name, mk_shm_off_t off);
MK_EXPORT mk_shm_off_t mk_shm_root_get(mk_shm_t *h, const char *name);

/* Hold the heap's lock across several steps that must look atomic to other
 * processes (e.g. fill an object, then publish it as a root). Other mk_shm_*
 * calls on this heap may be made while holding it (it is recursive).
 * 0, or the error of pthread_mutex_lock; a dead holder is repaired first. */
MK_EXPORT int mk_shm_lock(mk_shm_t *h);
MK_EXPORT void mk_shm_unlock(mk_shm_t *h);

/* Verify the whole structure under the lock: 0, or EUCLEAN with the first
 * problem in mk_shm_error(). */
MK_EXPORT int mk_shm_check(mk_shm_t *h);

struct mk_shm_stats {
	size_t size;	   /* bytes of the file now */
	size_t max_size;   /* the limit set at creation */
	size_t data_bytes; /* pages the buddy system manages now */
	size_t free_bytes; /* in free buddy blocks */
	size_t live_objects;
	uint64_t allocs, frees;
	uint64_t repairs; /* times a dead lock holder's changes were repaired */
};
MK_EXPORT int mk_shm_stats(mk_shm_t *h, struct mk_shm_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* MEMKIT_POOL_H */
