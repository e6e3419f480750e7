/* internal.h - what libmemkit's files share (mki_ prefix), grouped by file.
 *
 * Glossary (the words mean one thing each in this code base):
 *   page     the kernel's 4 KiB page, MKI_PAGE_SIZE.
 *   chunk    4 MiB, 4 MiB-aligned, 1024 pages: the unit reserved from the OS.
 *            Its metadata (one struct mki_page per page) lives outside it, so
 *            that a whole chunk can be one order-10 buddy block.
 *   block    2^order pages, aligned to its size: the buddy system's unit.
 *   run      any number of pages (1..1024) cut from a block, the tail given
 *            back, as the kernel's alloc_pages_exact does.
 *   slab     a block carved into equal objects (slots) of one size class.
 *   heap     one per thread: a bin per size class, each bin its slabs.
 *   large    a request >= the mmap threshold: a mapping of its own.
 *
 * Layers call only downwards: alloc -> heap -> slab -> page -> os;
 * alloc -> large -> os. Only os.c makes memory system calls.
 */
#ifndef MEMKIT_INTERNAL_H
#define MEMKIT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <pthread.h>
#include "memkit.h"

/* Everything declared here is libmemkit's own: hidden, so that its globals
 * are reached PC-relative rather than through the GOT (the exported API is
 * marked MK_EXPORT in memkit.h). */
#pragma GCC visibility push(hidden)

#define MKI_PAGE_SHIFT	12
#define MKI_PAGE_SIZE	((size_t)1 << MKI_PAGE_SHIFT)
#define MKI_MAX_ORDER	10
#define MKI_ORDERS	(MKI_MAX_ORDER + 1)
#define MKI_CHUNK_SHIFT (MKI_PAGE_SHIFT + MKI_MAX_ORDER)
#define MKI_CHUNK_SIZE	((size_t)1 << MKI_CHUNK_SHIFT)
#define MKI_CHUNK_PAGES ((size_t)1 << MKI_MAX_ORDER)
#define MKI_ALIGN	16

#define mki_likely(x)	__builtin_expect(!!(x), 1)
#define mki_unlikely(x) __builtin_expect(!!(x), 0)
#define MKI_NOINLINE	__attribute__((noinline))
#define MKI_COLD	__attribute__((cold, noinline))

/* Not analysed across calls: an abort path that GCC would otherwise find
 * never returns, and call with a stack frame, can be jumped to instead.
 * (clang has no such attribute, and makes no such deduction.) */
#if defined(__clang__)
#define MKI_NOIPA __attribute__((noinline))
#else
#define MKI_NOIPA __attribute__((noipa))
#endif

/* Builds with a sanitizer (the test suite's mk_-API-only libraries):
 * arena.c poisons its red zones for ASan; os.c leaves the address ranges
 * the sanitizers' shadow memory takes alone. */
#if defined(__SANITIZE_ADDRESS__)
#define MKI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MKI_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MKI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MKI_TSAN 1
#endif
#endif

static inline size_t mki_align_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static inline bool mki_is_pow2(size_t x)
{
	return x && !(x & (x - 1));
}

/* ------------------------------------------------------------ libc.c
 * Formatting and environment without malloc: safe on every allocator path. */
int mki_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int mki_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* write(2) all of it, retrying on EINTR; 0 or errno */
int mki_write_all(int fd, const char *buf, size_t len);
int mki_dprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "memkit: <message>\n" on stderr, then abort(): for misuse and broken invariants */
__attribute__((noreturn, format(printf, 1, 2))) void mki_fatal(const char *fmt, ...);
/* environ lookup that works before the C runtime has set up anything */
const char *mki_getenv(const char *name);
uint64_t mki_clock_ms(void);
/* the CPUs this process may run on (sched_getaffinity), at least 1 */
unsigned mki_cpu_count(void);
/* true for the one caller that finds `period_ms` gone since *last and moves
 * it to now: periodic work done by whichever thread comes first */
bool mki_clock_due(_Atomic uint64_t *last, uint64_t period_ms);
/* A spin-then-sleep lock that never allocates. It knows its holder, so that
 * fork() from a signal handler that interrupted this thread inside the
 * allocator does not wait forever for a lock the thread itself holds. */
typedef struct {
	_Atomic int state; /* 0 free, else the holder's thread id | MKI_LOCK_WAITERS */
	bool fork_skipped; /* held by the forking thread: not taken again */
} mki_lock_t;
#define MKI_LOCK_INIT    \
	{                \
		0, false \
	}
#define MKI_LOCK_WAITERS 0x40000000 /* above any thread id (pid_max <= 2^22) */
void mki_lock(mki_lock_t *l);
void mki_unlock(mki_lock_t *l);
bool mki_trylock(mki_lock_t *l);
/* a spinning waiter's pause: lets the other hyperthread run, and saves
 * the memory-order flush when the awaited line changes */
static inline void mki_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}
/* whether someone holds l: a hint for a waiter that has other ways to get
 * what it waits for (it may change at once) */
static inline bool mki_lock_held(mki_lock_t *l)
{
	return atomic_load_explicit(&l->state, memory_order_relaxed) != 0;
}
/* pthread_atfork handlers: take every lock before fork, release after */
void mki_lock_before_fork(mki_lock_t *l);
void mki_unlock_after_fork(mki_lock_t *l);
/* in the fork child: the thread id the locks record is the child's now */
void mki_lock_fork_child_self(void);
static inline void mki_lock_reset(mki_lock_t *l)
{
	atomic_store_explicit(&l->state, 0, memory_order_relaxed);
	l->fork_skipped = false;
}

/* ------------------------------------------------------------ options.c */
struct mki_options {
	size_t mmap_threshold; /* MEMKIT_MMAP_THRESHOLD, mallopt(M_MMAP_THRESHOLD) */
	uint32_t decay_ms;     /* MEMKIT_DECAY_MS: free memory kept this long before purge */
	bool stats;	       /* MEMKIT_STATS: print statistics at exit */
	bool leak;	       /* MEMKIT_LEAK: track allocation call stacks */
	bool verbose;	       /* MEMKIT_VERBOSE */
	bool purge_lazy;       /* MEMKIT_PURGE=free: MADV_FREE instead of MADV_DONTNEED */
	uint32_t fail_mmap;    /* MEMKIT_FAIL_MMAP=N: the Nth OS mapping fails (tests) */
	int stats_fd;	       /* MEMKIT_STATS_FD */
	char report_path[256]; /* MEMKIT_REPORT: where at-exit reports go (JSON) */
};
extern struct mki_options mki_opt;
void mki_options_init(void);
/* an mmap threshold brought into the accepted range (one page .. 32 MiB) */
size_t mki_clamp_threshold(size_t v);

/* ------------------------------------------------------------ os.c
 * The only file with mmap/munmap/madvise/mremap. 0 or an errno value. */
int mki_os_map(size_t size, size_t align, void **out);
/* A chunk (size a power of two, aligned to it), in the chunks' own part of
 * the address space when it can be */
int mki_os_map_chunk(size_t size, void **out);
int mki_os_unmap(void *addr, size_t size);
int mki_os_map_shared(int fd, size_t size, void **out); /* MAP_SHARED of a file */
int mki_os_unmap_shared(void *addr, size_t size);
int mki_os_purge(void *addr, size_t size); /* give the pages back, keep the range */
int mki_os_protect(void *addr, size_t size, bool accessible); /* guard pages */
int mki_os_remap(void *addr, size_t old_size, size_t new_size, bool may_move, void **out);
size_t mki_os_resident_bytes(void); /* this process's RSS, from /proc/self/statm */
struct mki_os_counters {
	_Atomic uint64_t mmap, munmap, madvise, mremap;
	_Atomic size_t mapped_bytes;
};
extern struct mki_os_counters mki_os_count;

/* ------------------------------------------------------------ meta.c
 * Metadata (heaps, slab descriptors, tables) from its own pages, never malloc.
 * Fixed-size free lists: mki_meta_free(p, size) with the size given to alloc. */
void *mki_meta_alloc(size_t size); /* zeroed, 16-aligned; NULL on ENOMEM */
void mki_meta_free(void *p, size_t size);
size_t mki_meta_bytes(void);
void mki_meta_fork_prepare(void);
void mki_meta_fork_parent(void);
void mki_meta_fork_child(void);

/* ------------------------------------------------------------ page.c
 * The buddy system over chunks, in zones (one a CPU, up to 8) with a lock
 * each: a thread allocates from its own zone, a block goes back to its
 * chunk's. */
enum mki_page_kind {
	MKI_PAGE_NONE = 0, /* tail page of a free block, or not yet used */
	MKI_PAGE_FREE,	   /* head of a free block of 2^order pages */
	MKI_PAGE_BLOCK,	   /* mk_pages_alloc block (head and tails) */
	MKI_PAGE_RUN,	   /* malloc page run (head and tails) */
	MKI_PAGE_SLAB,	   /* page of a slab: slab points to its descriptor */
	MKI_PAGE_ARENA,	   /* pages owned by an arena or other client */
};

struct mki_slab;
struct mki_page {
	uint8_t kind;
	uint8_t order;	     /* FREE/BLOCK: order of the block */
	uint8_t flags;	     /* MKI_PF_* */
	_Atomic uint8_t cls; /* SLAB: the size class while a thread's heap owns the
				slab (mki_slab_set_owner), else MKI_CLS_NONE; read
				by any thread's free without a lock */
	uint32_t npages;     /* RUN: pages in the run (head only) */
	uint32_t head;	     /* RUN/BLOCK tails: index of the head page */
	uint32_t stamp;	     /* FREE: mki_clock_ms() when it became free (low 32 bits) */
	union {
		struct {
			struct mki_slab *slab; /* SLAB: the slab's descriptor */
			/* SLAB: the heap that owns it (mki_heap_none when no
			 * live one does, cls then MKI_CLS_NONE): free() tells
			 * its own blocks from another heap's without the
			 * descriptor */
			struct mki_heap *_Atomic heap;
		};
		struct {
			struct mki_page *next, *prev; /* FREE: free list of its order */
		} lru;
		void *owner; /* ARENA */
	};
};
#define MKI_PF_DIRTY 0x1  /* FREE: may hold resident pages (not purged) */
#define MKI_CLS_NONE 0xFF /* a slab page no live heap owns */

struct mki_chunk {
	char *base; /* 4 MiB aligned */
	struct mki_chunk *next, *prev;
	uint32_t free_pages;
	uint8_t zone; /* page.c's zone whose lists hold its free blocks */
	struct mki_page pages[MKI_CHUNK_PAGES];
	/* leak.c's shadow of this address range, cached here so that a hook
	 * finds it from the chunk it looks up anyway (leak.c owns it, by
	 * address: a chunk mapped again at the same place finds it again).
	 * After the pages: a field before them would push every other
	 * descriptor across a cache line. */
	void *_Atomic leak_shadow;
};
_Static_assert(offsetof(struct mki_chunk, pages) % sizeof(struct mki_page) == 0 &&
		   64 % sizeof(struct mki_page) == 0,
	       "a page descriptor lies within one cache line");

/* The chunk a pointer lies in, or NULL: two loads through a radix map over
 * the 47-bit user address space (13 bits, then 12 bits of chunk number). */
#define MKI_RADIX_L2_BITS 12
#define MKI_RADIX_L1_BITS (47 - MKI_CHUNK_SHIFT - MKI_RADIX_L2_BITS)
extern struct mki_chunk *_Atomic *_Atomic mki_radix[1u << MKI_RADIX_L1_BITS];
static inline struct mki_chunk *mki_chunk_of(const void *p)
{
	uintptr_t n = (uintptr_t)p >> MKI_CHUNK_SHIFT;
	uintptr_t top = n >> MKI_RADIX_L2_BITS;
	/* the top level's index is itself the test for a user-space address */
	if (mki_unlikely(top >= (1u << MKI_RADIX_L1_BITS)))
		return NULL;
	struct mki_chunk *_Atomic *l2 = atomic_load_explicit(&mki_radix[top], memory_order_acquire);
	if (mki_unlikely(!l2))
		return NULL;
	return atomic_load_explicit(&l2[n & ((1u << MKI_RADIX_L2_BITS) - 1)], memory_order_acquire);
}
/* Bumped (by 2: it stays odd) each time a chunk leaves the radix map, and
 * when leak tracking starts: a thread's cached lookup (mki_heap's
 * chunk_key) holds the chunk's base xor the epoch it was made in, so that
 * every cached lookup goes stale at once when a chunk is unmapped (another
 * one, with another descriptor, may be mapped at the same place). Odd: a
 * key is never 0, which a heap starts with. */
extern _Atomic uintptr_t mki_chunk_epoch;
static inline uintptr_t mki_chunk_key(const void *p, uintptr_t epoch)
{
	return ((uintptr_t)p & ~(MKI_CHUNK_SIZE - 1)) ^ epoch;
}
/* Chunks are mostly mapped next to each other: consecutive chunk numbers
 * take different slots. */
#define MKI_CHUNK_CACHE 16
static inline unsigned mki_chunk_slot(const void *p)
{
	return ((uintptr_t)p >> MKI_CHUNK_SHIFT) & (MKI_CHUNK_CACHE - 1);
}
static inline struct mki_page *mki_page_desc(struct mki_chunk *c, const void *p)
{
	/* chunks are aligned to their size: no need to load c->base. The
	 * descriptor's byte offset is taken from the address in one shift and
	 * one mask (32-byte descriptors), not as an index scaled afterwards:
	 * free's fast path computes it on every call */
	_Static_assert(sizeof(struct mki_page) == 32, "a shift of 5 scales a page index");
	uintptr_t off =
	    ((uintptr_t)p >> (MKI_PAGE_SHIFT - 5)) & ((uintptr_t)(MKI_CHUNK_PAGES - 1) << 5);
	return (struct mki_page *)((char *)c->pages + off);
}
static inline void *mki_page_addr(struct mki_chunk *c, struct mki_page *pg)
{
	return c->base + ((size_t)(pg - c->pages) << MKI_PAGE_SHIFT);
}

/* a block of 2^order pages marked `kind` (BLOCK, SLAB or ARENA); *zero tells
 * whether it is known to be zero-filled. NULL + ENOMEM. */
void *mki_pages_alloc(unsigned order, enum mki_page_kind kind, bool *zero);
void mki_pages_free(void *p, unsigned order);
/* whether a free block of 2^order pages or more may hold resident pages;
 * answered without the lock (and so only likely) when many free pages may */
bool mki_pages_resident_free(unsigned order);
/* the same for pages unused since `since` (mki_clock_ms): the decay counts
 * from then */
void mki_pages_free_idle(void *p, unsigned order, uint32_t since);
/* npages contiguous pages (1..1024) aligned to 2^align_order pages */
void *mki_run_alloc(size_t npages, unsigned align_order, bool *zero);
void mki_run_free(void *p);
/* shrink a run in place to npages (tail given back); true if done */
bool mki_run_shrink(void *p, size_t npages);
/* grow a run in place by taking the free pages after it; true if done */
bool mki_run_grow(void *p, size_t npages);
/* purge free blocks that have been free for decay_ms (all if force), release
 * free chunks; returns bytes given back to the OS */
size_t mki_page_purge(bool force);
/* cheap: at most every few ms, called from slow paths */
void mki_page_maybe_purge(void);
/* Bumped whenever pages go back to the free lists: a thread's memory of a
 * block's size holds only while it has not changed (alloc.c's realloc). */
extern _Atomic uint64_t mki_pages_freed_gen;
void mki_page_stats(struct mk_stats *st);
/* 0 if the buddy system's invariants hold, else which one broke */
int mki_page_check(void);
void mki_page_fork_prepare(void);
void mki_page_fork_parent(void);
void mki_page_fork_child(void);

/* ------------------------------------------------------------ sizeclass.c */
#define MKI_SLAB_MAX	((size_t)32 * 1024) /* largest slab size class */
#define MKI_CLASSES_MAX 48
/* the class of every size up to MKI_SLAB_MAX, by 16-byte step: one load,
 * and no test of which table serves a size (2 KiB; the lines of the
 * sizes a program asks for are the ones in cache) */
extern uint8_t mki_class_of_size[MKI_SLAB_MAX / MKI_ALIGN + 1];
extern uint32_t mki_class_size[MKI_CLASSES_MAX];
extern uint8_t mki_class_order[MKI_CLASSES_MAX]; /* slab order of each class */
extern unsigned mki_class_count;
extern uint32_t mki_class_recent_max[MKI_CLASSES_MAX]; /* a half of heap.c's recent lists */
#define MKI_RECENT_MIN 2u			       /* the least a half of a recent list takes */
/* The slot geometry of a class's slabs, which free() checks a pointer
 * against without loading the slab's descriptor: a malloc slab is a buddy
 * block of mki_class_order[cls], so it starts at an address aligned to its
 * size (mask + 1); its slots fill span bytes from there. */
struct mki_class_geom {
	uint64_t divides; /* ceil(2^64 / size): mki_is_multiple */
	uint32_t span;
	uint32_t mask;
};
/* off (< 2^32) is a multiple of the size whose `divides` this is: Lemire,
 * Kaser and Kurz's test (off * ceil(2^64 / size) wraps to less than
 * ceil(2^64 / size) exactly then); one multiplication, no constant. */
static inline bool mki_is_multiple(uint64_t off, uint64_t divides)
{
	return off * divides < divides;
}
extern struct mki_class_geom mki_class_geom[MKI_CLASSES_MAX];
void mki_sizeclass_init(void);
static inline unsigned mki_class_of(size_t size) /* size <= MKI_SLAB_MAX */
{
	return mki_class_of_size[(size + MKI_ALIGN - 1) / MKI_ALIGN];
}

/* ------------------------------------------------------------ slab.c
 * A slab: one buddy block cut into equal slots. Owned by one heap (malloc)
 * or one mk_cache. Frees from non-owners go to thread_free (atomic stack);
 * its low bit MKI_TF_FULL asks the next remote freer to tell the owner. */
struct mki_block {
	struct mki_block *next;
	uintptr_t tag; /* mki_free_tag(block) while on a free list: catches double frees */
};
struct mki_heap;
struct mk_cache;
struct mki_slab {
	/* first cache line: what the owner's fast paths read and write */
	struct mki_block *free;		/* owner's free list */
	char *start;			/* first slot */
	uint64_t divides;		/* ceil(2^64 / size): mki_is_multiple, slot index */
	struct mki_heap *_Atomic owner; /* mki_heap_none: abandoned or cache-owned */
	uint32_t used;			/* slots out, not freed back (+ MKI_USED_FULL if full) */
	uint32_t size;			/* slot size */
	uint32_t capacity;		/* slots in the slab */
	uint32_t carved;		/* slots initialised so far (lazy carving) */
	uint32_t span;			/* capacity * size: bytes of slots */
	uint8_t cls;			/* in the first line too: free reads it */
	uint8_t order;
	uint8_t state;		/* MKI_SLAB_* */
	struct mk_cache *cache; /* object cache, or NULL for malloc */
	/* second cache line: written by other threads */
	_Atomic uintptr_t thread_free __attribute__((aligned(64))); /* remote frees | MKI_TF_FULL */
	struct mki_slab *reclaim_next; /* in its owner's reclaim stack */
	_Atomic int in_reclaim;
	uint32_t idle_since;	      /* ms: when it was kept empty (slab.c) */
	struct mki_slab *next, *prev; /* in its bin / cache list */
};
/* thread_free packs three things in one word, so that a remote free is one
 * CAS and the owner takes the whole list without walking it: bit 0 is
 * MKI_TF_FULL, bits 4..47 the list head (slots are 16-aligned, user
 * addresses below 2^47), bits 48..63 how many blocks the list holds. */
#define MKI_TF_FULL	   ((uintptr_t)1)
#define MKI_TF_COUNT_SHIFT 48
static inline struct mki_block *mki_tf_list(uintptr_t tf)
{
	return (struct mki_block *)(tf &
				    ((((uintptr_t)1 << MKI_TF_COUNT_SHIFT) - 1) & ~MKI_TF_FULL));
}
static inline uint32_t mki_tf_count(uintptr_t tf)
{
	return (uint32_t)(tf >> MKI_TF_COUNT_SHIFT);
}
/* Added to a full slab's used count, so that one signed test of the
 * decremented count finds both frees that need the slow path. */
#define MKI_USED_FULL 0x80000000u
/* used minus n; true when the free that did it needs the slow path (the
 * slab emptied, or was full): the result is <= 0 as a signed number, and
 * the subtraction never overflows (a full slab has blocks out). On x86-64
 * one instruction and a branch on its flags: compilers test the stored
 * value again. */
static inline __attribute__((always_inline)) bool mki_slab_put_back(uint32_t *used, uint32_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__asm__ goto("subl %1, %0\n\tjle %l[slow]" : "+m"(*used) : "ri"(n) : "cc" : slow);
	return false;
slow:
	return true;
#else
	int32_t u = (int32_t)*used - (int32_t)n;
	*used = (uint32_t)u;
	return u <= 0;
#endif
}
enum {
	MKI_SLAB_PARTIAL = 0,
	MKI_SLAB_FULL,
	MKI_SLAB_ABANDONED,
	MKI_SLAB_CACHE,
	MKI_SLAB_DEAD,
	MKI_SLAB_EMPTY /* kept for the next slab of its class (slab.c) */
};
_Static_assert(offsetof(struct mki_slab, cache) + sizeof(void *) <= 64,
	       "the fields of the fast paths share one cache line");

extern uintptr_t mki_free_key; /* random per process */
static inline uintptr_t mki_free_tag(const void *b)
{
	return mki_free_key ^ (uintptr_t)b;
}

/* Free-list links. The secure build (MKI_SECURE, libmemkit-secure.so)
 * stores them encoded with the process key and the slot's own address, so a
 * use-after-free write cannot steer malloc to an address of its choosing. */
#ifdef MKI_SECURE
#define MKI_LINK_KEY (mki_free_key * 0x9E3779B97F4A7C15ull)
static inline struct mki_block *mki_block_next(const struct mki_block *b)
{
	return (struct mki_block *)((uintptr_t)b->next ^ MKI_LINK_KEY ^ ((uintptr_t)b >> 4));
}
static inline void mki_block_set_next(struct mki_block *b, struct mki_block *next)
{
	b->next = (struct mki_block *)((uintptr_t)next ^ MKI_LINK_KEY ^ ((uintptr_t)b >> 4));
}
#else
static inline struct mki_block *mki_block_next(const struct mki_block *b)
{
	return b->next;
}
static inline void mki_block_set_next(struct mki_block *b, struct mki_block *next)
{
	b->next = next;
}
#endif

/* a slab over a fresh buddy block; NULL + ENOMEM */
struct mki_slab *mki_slab_new(uint32_t size, unsigned order, uint8_t cls, struct mki_heap *owner);
/* The slab changes hands; its pages tell free() which live heap owns it
 * now, if any, and its class (struct mki_page's heap and cls). */
void mki_slab_set_owner(struct mki_slab *s, struct mki_heap *owner);
void mki_slab_delete(struct mki_slab *s);
/* a malloc slab that emptied: kept for the next slab of its class, or deleted */
void mki_slab_put_empty(struct mki_slab *s);
/* a kept empty slab of class cls made over to owner, or NULL */
struct mki_slab *mki_slab_reuse(unsigned cls, struct mki_heap *owner);
/* before a new slab of class cls takes pages that are not resident, a kept
 * empty slab of another class gives back its own */
void mki_slab_give_back_kept(unsigned cls, unsigned order);
/* delete the kept empty slabs idle for a quarter of the decay time (looking
 * at most every eighth of it), or all of them if force */
void mki_slab_expire_empty(bool force);
void mki_slab_fork_prepare(void);
void mki_slab_fork_parent(void);
void mki_slab_fork_child(void);
/* carve more slots into the free list; false when the slab is exhausted */
bool mki_slab_extend(struct mki_slab *s);
/* move remote frees into the owner's free list; returns how many */
uint32_t mki_slab_collect(struct mki_slab *s);
/* Owner only: the slab has nothing left to give. Sets MKI_TF_FULL so the
 * next remote free tells the owner (true also when it is marked already);
 * false if a remote free came first. */
bool mki_slab_try_mark_full(struct mki_slab *s);
/* p is in the slab's slot area (not the tail waste after the last slot) */
static inline bool mki_slab_contains(const struct mki_slab *s, const void *p)
{
	return (size_t)((const char *)p - s->start) < s->span;
}
/* p is the start of one of the slab's slots: in the slot area (so its
 * offset is below 2^32, as mki_is_multiple needs) and at a multiple of the
 * size. A compare and a multiplication by a field of the line free reads. */
static inline bool mki_slab_holds_slot(const struct mki_slab *s, const void *p)
{
	uint64_t off = (uint64_t)((const char *)p - s->start);
	return off < s->span && mki_is_multiple(off, s->divides);
}
/* off / size for off < 2^32: the high half of off * ceil(2^64 / size)
 * (Lemire, Kaser and Kurz) */
static inline size_t mki_slab_index(const struct mki_slab *s, const void *p)
{
	uint64_t off = (uint64_t)((const char *)p - s->start);
	return (size_t)(((unsigned __int128)off * s->divides) >> 64);
}
static inline void *mki_slab_slot_of(const struct mki_slab *s, const void *p)
{
	return s->start + mki_slab_index(s, p) * s->size;
}
const char *mki_cache_name(const struct mk_cache *c);
/* is p on one of the slab's free lists? O(slab): only to confirm a double free */
bool mki_slab_holds_free(struct mki_slab *s, const void *p);

/* ------------------------------------------------------------ heap.c */
struct mki_bin {
	struct mki_slab *partial; /* list; the head is where malloc allocates */
	struct mki_slab *full;
};
struct mki_heap {
	/* free's lookups of chunks: keys are the chunk's base xor
	 * mki_chunk_epoch. The chunk of the thread's last free first: most
	 * frees land in the chunk of the one before, and its descriptor is
	 * then at hand without a load that waits for the pointer (free is a
	 * chain of dependent loads; the radix map puts two more at its head).
	 * Then MKI_CHUNK_CACHE more, by the low bits of the chunk number
	 * (mki_chunk_slot), for frees that hop between chunks (a server's).
	 * Never set while leak tracking is on: its frees take the tracker's
	 * path. */
	uintptr_t chunk_key;
	struct mki_chunk *chunk;
	uintptr_t chunk_keys[MKI_CHUNK_CACHE];
	struct mki_chunk *chunks[MKI_CHUNK_CACHE];
	struct mki_slab *direct[MKI_CLASSES_MAX]; /* fast path: current slab of each class */
	struct mki_bin bins[MKI_CLASSES_MAX];
	struct mki_slab *_Atomic reclaim; /* full slabs that got remote frees */
	/* blocks this thread freed (other heaps', and its own while `shared`
	 * says so), reused by its next mallocs of the class before they go
	 * back to their slabs; in two
	 * halves: frees go to the newer and mallocs come from it, most recent
	 * first; when it is full, the older half goes back to the slabs and the
	 * newer becomes the older (heap.c) */
	struct mki_block *recent[MKI_CLASSES_MAX];
	struct mki_block *older[MKI_CLASSES_MAX];
	int32_t recent_room[MKI_CLASSES_MAX]; /* blocks the newer half takes yet */
	/* other heaps' blocks of the class freed lately (2 is or-ed in at
	 * each, one taken off every 256 allocations of the class): while not
	 * 0, the thread's own blocks of the class go on the recent list too.
	 * Indexed by any page's cls, MKI_CLS_NONE included (always 0). */
	uint8_t shared[256];
	/* classes this thread has allocated from since it took the heap
	 * (set on the slow path, which a thread's first malloc of a class
	 * takes): the others' recent lists are only a batch to give back */
	uint64_t alloc_classes;
	struct mki_heap *next_heap; /* all heaps, for stats */
	/* malloc's fast path counts in tick, an add that sets the flags its
	 * test of the 256th allocation needs (two instructions, not five);
	 * allocs takes 256 at each wrap, and the slow paths' allocations:
	 * a class's allocations are allocs + tick */
	uint8_t tick[MKI_CLASSES_MAX];
	uint64_t allocs[MKI_CLASSES_MAX], frees[MKI_CLASSES_MAX];
	uint64_t slow_calls;
	pid_t tid;
	bool dead;
};
_Static_assert(MKI_CLASSES_MAX <= 64, "alloc_classes has a bit per class");
extern __thread struct mki_heap *mki_tls_heap __attribute__((tls_model("initial-exec")));
/* the thread's heap was given up at its exit: what it frees later (glibc
 * frees a detached thread's TLS after the key destructors ran) must not
 * make it a new one, which no destructor would give up */
extern __thread bool mki_tls_heap_gone __attribute__((tls_model("initial-exec")));
extern struct mki_slab mki_empty_slab;
extern struct mki_heap mki_heap_none; /* owner of abandoned slabs: never a thread's */
/* a free by a thread that does not own the slab: lock-free push, and the
 * owner is told when the slab was full */
void mki_heap_free_remote(struct mki_slab *s, void *p);
/* a free by a thread that has no heap (it never allocated): counted apart */
void mki_heap_count_heapless_free(unsigned cls);
/* the newer half of cls's recent blocks is full: the older goes back */
void mki_heap_recent_turn(struct mki_heap *h, unsigned cls);
bool mki_heap_recent_holds(const struct mki_heap *h, unsigned cls, const void *p);
struct mki_heap *mki_heap_get_slow(void);
void *mki_heap_alloc_slow(struct mki_heap *h, unsigned cls);
void mki_heap_free_slow(struct mki_heap *h, struct mki_slab *s);
void mki_heap_stats(struct mk_stats *st);
void mki_heap_collect_abandoned(bool force); /* force: now, not at most every 100 ms */
void mki_heap_trim_self(void);
void mki_heap_init(void); /* from mki_init: the thread-exit key */
void mki_heap_fork_prepare(void);
void mki_heap_fork_parent(void);
void mki_heap_fork_child(void);

/* ------------------------------------------------------------ large.c */
/* how a block is wanted: zero-filled; moved by realloc (likely to grow again) */
enum { MKI_ALLOC_ZERO = 1, MKI_ALLOC_GROWS = 2 };
void *mki_large_alloc(size_t size, size_t align, unsigned how);
/* false if p is not a live large block */
bool mki_large_free(void *p);
size_t mki_large_usable(const void *p); /* 0 if not a large block */
/* a counter bumped whenever a large block that shares p's part of the
 * table is freed, moved or resized (a thread's memory of a block's size
 * holds only while it has not changed) */
const _Atomic uint64_t *mki_large_gen_of(const void *p);
/* p is not live but was among the last large blocks freed */
bool mki_large_was_freed(const void *p);
/* the live large block that contains p, or NULL: a scan, for error paths only */
void *mki_large_containing(const void *p);
void *mki_large_realloc(void *p, size_t size);
size_t mki_large_purge(bool force);
void mki_large_stats(struct mk_stats *st);
void mki_large_fork_prepare(void);
void mki_large_fork_parent(void);
void mki_large_fork_child(void);

/* ------------------------------------------------------------ alloc.c
 * The mk_* entry points. What a pointer is, in O(1): */
enum mki_ptr_kind { MKI_PTR_INVALID = 0, MKI_PTR_SLAB, MKI_PTR_RUN, MKI_PTR_LARGE };
/* For any address: the block that contains it (start, usable size) and its
 * kind; MKI_PTR_INVALID if libmemkit did not hand out memory there. Does not
 * tell whether the slot is currently allocated (the leak tracker knows). */
enum mki_ptr_kind mki_block_of(const void *p, void **start, size_t *usable);
void mki_init(void);
/* the malloc family, hidden: both mk_* and the exported names call these */
void *mki_malloc(size_t size);
void *mki_calloc(size_t count, size_t size);
void *mki_realloc(void *p, size_t size);
void mki_free(void *p);
void *mki_aligned(size_t align, size_t size); /* align: a power of two */
size_t mki_usable_size(const void *p);
int mki_trim(void);
int mki_mallopt(int param, int value);
extern _Atomic bool mki_initialized;

/* ------------------------------------------------------------ leak.c
 * Called by alloc.c only while mki_leak_active is true. Must not allocate
 * through malloc (they may use mki_meta_alloc / mki_pages_alloc). */
extern bool mki_leak_active;
void mki_leak_init(void);	   /* from mki_init when mki_opt.leak */
void mki_leak_load_unwinder(void); /* from the constructor: dlopen allocates */
/* p was allocated; ip and cfa are the program's frame that called the
 * allocator: its return address into the program, and the address just
 * above it (MKI_CALLER_IP and MKI_CALLER_CFA); an ip inside libmemkit (the
 * entry point was called, not jumped to) makes the tracker walk out of ours */
void mki_leak_on_alloc_from(void *p, size_t size, uintptr_t ip, uintptr_t cfa);
void mki_leak_on_free(struct mki_chunk *c, void *p); /* c: mki_chunk_of(p) */
/* realloc kept p where it was, now of `size` bytes; ip, cfa as above */
void mki_leak_on_resize(void *p, size_t size, uintptr_t ip, uintptr_t cfa);
/* In an entry point that the program's call reaches by jumps alone (the
 * exported name's tail call, its own tail calls), and that is not inlined:
 * the program's return address and frame (our frame pointer + 16). */
#define MKI_CALLER_IP()	 ((uintptr_t)__builtin_return_address(0))
#define MKI_CALLER_CFA() ((uintptr_t)__builtin_frame_address(0) + 16)
void mki_leak_at_exit(void);
/* bytes the program asked for in its live blocks (known while tracking) */
size_t mki_leak_requested_bytes(void);

/* ------------------------------------------------------------ stats.c */
void mki_stats_at_exit(void);

#pragma GCC visibility pop

#endif /* MEMKIT_INTERNAL_H */
