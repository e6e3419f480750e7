/* leak.c - leak tracking: every live block remembers its allocation call
 * stack; a report lists the blocks still live, grouped by call stack,
 * largest first, as text or JSON, in valgrind's classes: reachable from
 * globals, thread descriptors and the current stack ("still reachable"),
 * unreachable but pointed to by another unreachable block ("indirectly
 * lost"), or unreachable and pointed to by none ("definitely lost": the
 * roots of lost structures).
 *
 * How:
 *  1. Stacks are captured with libgcc's _Unwind_Backtrace (DWARF call-frame
 *     information, so programs need no frame pointers) only to learn: on
 *     x86-64, frame sizes learnt per return address let a walk go out from
 *     the allocator with loads alone, and only until it meets the thread's
 *     last walk where that is still on the stack (its slots validated
 *     against the return addresses they held). malloc, calloc and realloc
 *     hand over the program's frame that called them (the functions jumped
 *     to from the exported names read their own return address), so that
 *     walk starts there; an entry point called by another of ours (as
 *     posix_memalign calls its worker) walks out of libmemkit's frames
 *     first. Stacks are interned in a trie (a node per frame, keyed by its
 *     caller's node and return address), so that the new frames cost a
 *     lookup each: lookups take no lock, an insertion takes the table's
 *     lock, and threads that meet the same new frame at once wait for its
 *     adder rather than for the lock.
 *  2. A live block inside a chunk costs a 16-byte entry in a shadow of the
 *     chunk, indexed by address, written by the block's owner without a
 *     lock; a large block (mapped on its own) a 32-byte slot in one of 64
 *     locked shards of an open-addressing table.
 *  3. A report freezes the shards (not the shadows: page.c unmaps no chunk
 *     while tracking is on, so a block freed meanwhile can still be read),
 *     marks blocks reachable from the roots (conservative scan, as valgrind
 *     does), transitively through live blocks; then scans each unreachable
 *     block not yet reached that way and marks the unreachable blocks it
 *     reaches indirectly lost (valgrind's cliques); then unlocks and names
 *     the frames with dladdr. Blocks allocated or freed by other threads
 *     while it runs may be counted or not.
 *
 * Nothing here calls malloc (nor printf, qsort, backtrace() which may): the
 * tables come from mki_meta_alloc, output goes through mki_vsnprintf. A
 * thread-local flag stops re-entry: an allocation made while the tracker
 * itself runs (none is expected) is simply not tracked.
 *
 * May call: libc.c, meta.c, mki_block_of (alloc.c), mki_chunk_of and the
 * page descriptors' kind (internal.h); bumps page.c's mki_chunk_epoch when
 * tracking starts; _Unwind_Backtrace (through pointers:
 * libgcc_s is loaded by dlopen from libmemkit's constructor, only when
 * tracking is on), dl_iterate_phdr, dladdr1, open/read/close/readlink,
 * sigaction, pthread_atfork, pthread_key_create/setspecific, pread of
 * /proc/self/pagemap, getdents64 of /proc/self/task. The exit report
 * itself is written by stats.c (one file for statistics and leaks).
 * Lock order: report_lock, then the shard locks in index order, then
 * stack_table.lock; meta.c's lock may be taken under any of them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>
#include "memkit/internal.h"

#define LEAK_MAX_FRAMES	   24			 /* frames kept per stack, caller first */
#define LEAK_MAX_WALK	   (LEAK_MAX_FRAMES + 8) /* and libmemkit's own frames */
#define LEAK_SHARDS	   64			 /* live-block table shards (by address hash) */
#define LEAK_SHARD_MIN	   256			 /* first capacity of a shard, in slots */
#define LEAK_STACK_BUCKETS (1u << 20)	/* fixed, so lookups need no lock; touched lazily */
#define LEAK_STACK_ARENA   (256u << 10) /* stacks are carved from these */
#define LEAK_MARK	   (1ull << 63) /* in live_block.seq: reachable */
#define LEAK_INDIRECT	   (1ull << 62) /* in live_block.seq: indirectly lost */
#define LEAK_BITS	   (LEAK_MARK | LEAK_INDIRECT)
#define LEAK_MAX_ROOTS	   1024 /* address ranges scanned as roots */
#define LEAK_TCB_SCAN	   4096 /* bytes scanned from a thread descriptor */
#define LEAK_MAX_THREADS   1024 /* other threads whose stacks a report scans */

/* ------------------------------------------------------------ types */

/* One unique call stack: a node of a trie rooted at the outermost frame
 * kept, so that stacks that share their callers share their nodes and a
 * new stack costs a lookup per frame not seen before. Immutable once
 * published. A report keeps its per-stack totals in an array indexed by
 * id, not here: nodes stay small, for the walks' sake. */
#define LEAK_KIDS 3 /* callees found without the hash table (a cache miss less) */

struct kid {
	_Atomic uintptr_t ip; /* 0: free; written last */
	struct leak_stack *node;
};

struct leak_stack {
	struct kid kids[LEAK_KIDS]; /* the first callees interned, set once */
	struct leak_stack *parent;  /* the same stack without its innermost frame */
	struct leak_stack *next;    /* in its hash bucket (keyed by parent, ip) */
	struct leak_stack *all;	    /* list of every stack, for reports */
	uintptr_t ip;		    /* the innermost frame's return address */
	uint32_t depth;		    /* frames: 0 for the root (no stack) */
	uint32_t id;		    /* order of creation: 0, 1, ... */
};

/* The classes of a live block in a report, valgrind's names. */
enum leak_class { CLASS_DEFINITE, CLASS_INDIRECT, CLASS_REACHABLE, CLASSES };

/* A live block outside the chunks (a large mapping). addr 0: empty slot. */
struct live_block {
	uintptr_t addr;
	size_t size; /* as requested */
	struct leak_stack *stack;
	uint64_t seq; /* epoch of the allocation (windows) | LEAK_BITS */
};

struct shard {
	mki_lock_t lock;
	uint32_t count;
	size_t mask; /* capacity - 1; capacity is a power of two, or 0 */
	struct live_block *slots;
} __attribute__((aligned(64)));

/* A live block inside a chunk (slab or page run), found by its address in
 * the shadow of its chunk. The owner of the block writes it without a lock
 * (info first, stack last; free clears stack); a report reads it and sets
 * the mark bit with a compare-and-swap, so neither loses the other's write. */
struct shadow_entry {
	_Atomic uintptr_t stack; /* struct leak_stack * | SHADOW_BITS; 0: no block */
	_Atomic uint64_t info;	 /* requested size | epoch << 32 */
};

/* A range of memory scanned for pointers. */
struct root {
	uintptr_t lo, hi;
};

/* Buffered output through mki_vsnprintf, so a report is a few writes. */
struct out {
	int fd;
	int err;
	size_t len;
	char buf[4096];
};

/* ------------------------------------------------------------ state */

bool mki_leak_active;

static struct shard shards[LEAK_SHARDS];
static struct leak_stack *_Atomic *stack_buckets;
static struct leak_stack *root_stack; /* depth 0: the parent of outermost frames */
/* What adding a stack writes, away from what every capture reads
 * (root_stack, own_text_lo, window_report_pending): on one line with them,
 * 16 threads meeting new stacks together made each other's captures miss.
 * The lock has a line of its own too: threads waiting to add watch it. */
static struct {
	_Alignas(64) mki_lock_t lock;
	_Alignas(64) char *arena; /* stacks are bumped from 256 KiB arenas */
	char *arena_end;
	_Atomic size_t count;
	struct leak_stack *_Atomic all; /* every stack, the newest first */
} stack_table = {.lock = MKI_LOCK_INIT};
static mki_lock_t report_lock = MKI_LOCK_INIT;
/* A block records the epoch it was allocated in; opening a window starts a
 * new epoch. (A global counter bumped by every allocation would make all
 * threads fight over one cache line.) */
static _Atomic uint64_t epoch = 1;
static _Atomic size_t untracked; /* blocks not recorded: table full, no memory */

/* the window: blocks of epochs >= window_start (mk_leak_begin, SIGUSR2) */
static _Atomic uint64_t window_start;
static _Atomic bool window_open;
static _Atomic bool window_report_pending; /* set by the signal handler */
static _Atomic bool atfork_registered;

/* libmemkit's own code and data when it is a shared object (else 0..0):
 * frames inside it are not part of the user's stack, its data is no root. */
static uintptr_t own_text_lo, own_text_hi;
static uintptr_t own_base;

static __thread bool in_tracker __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------ hashing */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline struct shard *shard_of(uintptr_t addr)
{
	return &shards[mix64(addr) >> 58];
}

/* ------------------------------------------------------------ stack table */

static inline size_t child_bucket(const struct leak_stack *parent, uintptr_t ip)
{
	return mix64(ip ^ ((uintptr_t)parent * 0x9e3779b97f4a7c15ull)) % LEAK_STACK_BUCKETS;
}

static struct leak_stack *child_find(struct leak_stack *_Atomic *bucket,
				     const struct leak_stack *parent, uintptr_t ip)
{
	struct leak_stack *s = atomic_load_explicit(bucket, memory_order_acquire);
	for (; s; s = s->next)
		if (s->ip == ip && s->parent == parent)
			return s;
	return NULL;
}

/* Stacks are never freed: they come from 256 KiB arenas, bumped under
 * the table's lock, rather than one metadata allocation (and lock) each. */
static struct leak_stack *stack_new_locked(void)
{
	size_t size = sizeof(struct leak_stack);
	if ((size_t)(stack_table.arena_end - stack_table.arena) < size) {
		stack_table.arena = mki_meta_alloc(LEAK_STACK_ARENA);
		if (!stack_table.arena)
			return NULL;
		stack_table.arena_end = stack_table.arena + LEAK_STACK_ARENA;
	}
	struct leak_stack *s = (struct leak_stack *)stack_table.arena;
	stack_table.arena += size;
	s->id = (uint32_t)atomic_fetch_add_explicit(&stack_table.count, 1, memory_order_relaxed);
	s->all = atomic_load_explicit(&stack_table.all, memory_order_relaxed);
	/* release: a report that finds s on the list sees its id */
	atomic_store_explicit(&stack_table.all, s, memory_order_release);
	return s;
}

static struct leak_stack *child_new_locked(struct leak_stack *parent, uintptr_t ip)
{
	struct leak_stack *s = stack_new_locked();
	if (!s)
		return NULL;
	s->parent = parent;
	s->ip = ip;
	s->depth = parent->depth + 1;
	return s;
}

static void bucket_insert_locked(struct leak_stack *_Atomic *bucket, struct leak_stack *s)
{
	s->next = atomic_load_explicit(bucket, memory_order_relaxed);
	/* release: a lock-free reader that sees s sees its fields */
	atomic_store_explicit(bucket, s, memory_order_release);
}

/* The parent's first LEAK_KIDS callees are in its inline slots, and only
 * there: the parent is usually in cache (the walk just came through it), a
 * hash bucket seldom is. *full: every slot taken, so a callee not found may
 * be in the hash table; otherwise it is new. */
static inline struct leak_stack *kid_find(const struct leak_stack *parent, uintptr_t ip, bool *full)
{
	*full = false;
	for (unsigned i = 0; i < LEAK_KIDS; i++) {
		uintptr_t k = atomic_load_explicit(&parent->kids[i].ip, memory_order_acquire);
		if (k == ip)
			return parent->kids[i].node;
		if (!k)
			return NULL;
	}
	*full = true;
	return NULL;
}

/* false when the inline slots are all taken */
static bool kid_add_locked(struct leak_stack *parent, struct leak_stack *s)
{
	for (unsigned i = 0; i < LEAK_KIDS; i++) {
		if (atomic_load_explicit(&parent->kids[i].ip, memory_order_relaxed))
			continue;
		parent->kids[i].node = s;
		/* release: a reader that sees ip sees node */
		atomic_store_explicit(&parent->kids[i].ip, s->ip, memory_order_release);
		return true;
	}
	return false;
}

/* The callee ip of parent, if interned: lock-free. */
static struct leak_stack *child_lookup(struct leak_stack *parent, uintptr_t ip,
				       struct leak_stack *_Atomic *bucket)
{
	bool full;
	struct leak_stack *s = kid_find(parent, ip, &full);
	return s || !full ? s : child_find(bucket, parent, ip);
}

/* The table's lock for an insertion of (parent, ip), or NULL with the stack
 * itself when another thread added it meanwhile. Threads that run the same
 * code meet the same new frames at the same time: one adds each, and the
 * others watch for it while the lock is held, instead of queueing on the
 * lock (16 threads building the same trees, each taking the lock in turn
 * only to find the frame added, ran 16-21x the time of plain runs). */
#define STACK_WATCH 4096 /* looks at a held lock before sleeping on it */
static struct leak_stack *lock_for_insert(struct leak_stack *parent, uintptr_t ip,
					  struct leak_stack *_Atomic *bucket)
{
	for (unsigned look = 0; look < STACK_WATCH; look++) {
		/* the frame first: a lock seen free was often freed by its adder */
		struct leak_stack *s = child_lookup(parent, ip, bucket);
		if (s)
			return s;
		if (!mki_lock_held(&stack_table.lock) && mki_trylock(&stack_table.lock))
			return NULL;
		mki_cpu_relax();
	}
	mki_lock(&stack_table.lock);
	return NULL;
}

/* stack_child when the callee is not among the parent's inline slots. */
static MKI_NOINLINE struct leak_stack *stack_child_slow(struct leak_stack *parent, uintptr_t ip,
							bool full)
{
	struct leak_stack *s;
	struct leak_stack *_Atomic *bucket = &stack_buckets[child_bucket(parent, ip)];
	if (full && (s = child_find(bucket, parent, ip)) != NULL)
		return s;
	if ((s = lock_for_insert(parent, ip, bucket)) != NULL)
		return s;
	s = child_lookup(parent, ip, bucket); /* another thread may have added it */
	if (!s) {
		s = child_new_locked(parent, ip);
		if (s && !kid_add_locked(parent, s))
			bucket_insert_locked(bucket, s);
	}
	mki_unlock(&stack_table.lock);
	return s;
}

/* The stack `parent` called from ip; lookups take no lock, inserts do. A
 * new stack (a recursive program makes one per call path) costs no lookup
 * in the hash table, 8 MiB where every probe misses the cache, unless its
 * parent already has LEAK_KIDS callees. Inline, the slow path apart: the
 * walks call it for every new frame, and a call that saves registers for
 * the lock path cost more than the lookup. */
static inline struct leak_stack *stack_child(struct leak_stack *parent, uintptr_t ip)
{
	bool full;
	struct leak_stack *s = kid_find(parent, ip, &full);
	return mki_likely(s != NULL) ? s : stack_child_slow(parent, ip, full);
}

/* ------------------------------------------------------------ stack capture
 * The unwinder costs about 150 ns a frame (DWARF rules looked up and run for
 * each), so it runs only to learn. Each thread remembers its last walk: for
 * each frame kept, where its return address lay, which one it was, and the
 * stack (trie node) from there outwards. The next capture walks out from
 * its own frame with learnt frame sizes (below) only until it meets a slot
 * of the last walk holding the same return address; when every slot further
 * out still holds its return address too, the chain of callers there is the
 * one seen before (every slot lies in a live frame above us), so the stack
 * is that node extended by the few new frames: one trie lookup each. A
 * program allocating in a loop meets the last walk at its first frame; a
 * recursive one (a tree built node by node) a frame or two further out. */

struct walk {
	void *frames[LEAK_MAX_FRAMES]; /* kept: the caller's frames */
	unsigned n;
	uintptr_t ip[LEAK_MAX_WALK]; /* every frame walked, libmemkit's included */
	uintptr_t cfa[LEAK_MAX_WALK];
	unsigned nwalk;
	bool in_allocator; /* still in libmemkit's own frames */
	bool truncated;	   /* stopped at the frame limit, not at the outermost frame */
};

/* The kept frames of a thread's last walk. Stored outermost first (entry
 * 0 is the outermost frame, n - 1 the innermost), so that a capture
 * replaces the innermost ones in place and the frames kept do not move. */
struct last_walk {
	unsigned n;			 /* 0: none to reuse */
	bool truncated;			 /* frames beyond the last one were not kept */
	uintptr_t slot[LEAK_MAX_FRAMES]; /* where the return address lay */
	uintptr_t ra[LEAK_MAX_FRAMES];
	struct leak_stack *node[LEAK_MAX_FRAMES]; /* the stack from entry i outwards */
};

/* libmemkit's own frames, by distance from the first CFA of the walk: the
 * same entry point gives the same layout at any stack depth. */
struct own_frames {
	unsigned n;
	uintptr_t off[LEAK_MAX_WALK - LEAK_MAX_FRAMES]; /* slot - first CFA */
	uintptr_t ra[LEAK_MAX_WALK - LEAK_MAX_FRAMES];
	uintptr_t user_off; /* the CFA past them, less the first; 0: not known */
};

/* A frame size the thread looked up (see "Frame sizes" below). */
struct rule_memo {
	uintptr_t ip; /* 0: none */
	int32_t size;
};

#define RULE_MEMO 32 /* a power of two */

struct tstate {
	struct last_walk last;
	struct own_frames own;		  /* libmemkit's frames the last walk began with */
	uintptr_t stack_top;		  /* highest CFA a full walk reached on this thread */
	uint64_t rules_seen;		  /* rules_changed when the memo was last valid */
	struct rule_memo memo[RULE_MEMO]; /* direct-mapped, by return address */
};

#define TSTATE_DEAD ((struct tstate *)1) /* the thread is exiting */
static __thread struct tstate *tstate __attribute__((tls_model("initial-exec")));
static pthread_key_t tstate_key;
static bool tstate_key_ok;

/* Add a frame; false when the walk is full. */
static bool walk_add(struct walk *w, uintptr_t ip, uintptr_t cfa)
{
	if (w->nwalk == LEAK_MAX_WALK) {
		w->truncated = true;
		return false;
	}
	w->ip[w->nwalk] = ip;
	w->cfa[w->nwalk++] = cfa;
	if (w->in_allocator && ip >= own_text_lo && ip < own_text_hi)
		return true;
	w->in_allocator = false;
	w->frames[w->n++] = (void *)ip;
	w->truncated = w->n == LEAK_MAX_FRAMES;
	return !w->truncated;
}

/* libgcc's unwinder, from libgcc_s.so.1, loaded by mki_leak_load_unwinder
 * only when leak tracking is on: every other process is spared the library
 * (100 KiB of resident text). Published by unwind_backtrace, stored last. */
typedef _Unwind_Reason_Code (*unwind_backtrace_fn)(_Unwind_Trace_Fn, void *);
static _Unwind_Ptr (*unwind_get_ip)(struct _Unwind_Context *);
static _Unwind_Word (*unwind_get_cfa)(struct _Unwind_Context *);
static _Atomic(unwind_backtrace_fn) unwind_backtrace;

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg)
{
	uintptr_t ip = unwind_get_ip(ctx);
	if (!ip)
		return _URC_END_OF_STACK;
	return walk_add(arg, ip, unwind_get_cfa(ctx)) ? _URC_NO_REASON : _URC_END_OF_STACK;
}

enum { UNWIND_BACKTRACE, UNWIND_GET_IP, UNWIND_GET_CFA, UNWIND_FNS };
static const char *const unwind_names[UNWIND_FNS] = {"_Unwind_Backtrace", "_Unwind_GetIP",
						     "_Unwind_GetCFA"};

static void publish_unwinder(void *const fn[UNWIND_FNS])
{
	/* object pointers to function pointers: the symbols are the code */
	memcpy(&unwind_get_ip, &fn[UNWIND_GET_IP], sizeof(fn[0]));
	memcpy(&unwind_get_cfa, &fn[UNWIND_GET_CFA], sizeof(fn[0]));
	unwind_backtrace_fn bt;
	memcpy(&bt, &fn[UNWIND_BACKTRACE], sizeof(fn[0]));
	atomic_store_explicit(&unwind_backtrace, bt, memory_order_release);
}

/* the ELF types of this machine's word size (link.h's ElfW) */
#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Sym elf_sym;
typedef Elf64_Dyn elf_dyn;
typedef Elf64_Addr elf_addr;
#else
typedef Elf32_Sym elf_sym;
typedef Elf32_Dyn elf_dyn;
typedef Elf32_Addr elf_addr;
#endif

/* A name in an object's GNU hash table (the dynamic linker's own lookup,
 * without its locks and without allocating). */
static const elf_sym *gnu_hash_lookup(const uint32_t *gh, const elf_sym *symtab, const char *strtab,
				      const char *name)
{
	uint32_t h = 5381;
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = h * 33 + *c;
	uint32_t nbuckets = gh[0], symoffset = gh[1], bloom_words = gh[2];
	if (!nbuckets)
		return NULL;
	const uint32_t *buckets = (const uint32_t *)((const elf_addr *)(gh + 4) + bloom_words);
	const uint32_t *chain = buckets + nbuckets;
	for (uint32_t i = buckets[h % nbuckets]; i >= symoffset; i++) {
		uint32_t h2 = chain[i - symoffset];
		if ((h | 1) == (h2 | 1) && !strcmp(name, strtab + symtab[i].st_name))
			return &symtab[i];
		if (h2 & 1)
			break;
	}
	return NULL;
}

/* glibc relocates the dynamic section's addresses in place; others may not */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, elf_addr v)
{
	return v < info->dlpi_addr ? info->dlpi_addr + v : v;
}

/* dl_iterate_phdr callback: the unwinder's functions, if libgcc_s is mapped */
static int find_mapped_unwinder(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	void **fn = arg;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "libgcc_s.so"))
		return 0;
	const elf_dyn *dyn = NULL;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const elf_dyn *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	const elf_sym *symtab = NULL;
	const char *strtab = NULL;
	const uint32_t *gh = NULL;
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_SYMTAB)
			symtab = (const elf_sym *)dyn_addr(info, dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_STRTAB)
			strtab = (const char *)dyn_addr(info, dyn->d_un.d_ptr);
		else if (dyn->d_tag == DT_GNU_HASH)
			gh = (const uint32_t *)dyn_addr(info, dyn->d_un.d_ptr);
	}
	if (!symtab || !strtab || !gh)
		return 1;
	void *found[UNWIND_FNS];
	for (unsigned k = 0; k < UNWIND_FNS; k++) {
		const elf_sym *sym = gnu_hash_lookup(gh, symtab, strtab, unwind_names[k]);
		if (!sym || sym->st_shndx == SHN_UNDEF || !sym->st_value)
			return 1;
		found[k] = (void *)(info->dlpi_addr + sym->st_value);
	}
	memcpy(fn, found, sizeof(found));
	return 1;
}

/* At the first allocation: a C++ program has libgcc_s mapped already
 * (libstdc++ needs it), and its libraries' constructors, which run before
 * libmemkit's, get call stacks too. */
static void find_unwinder_mapped(void)
{
	void *fn[UNWIND_FNS] = {NULL};
	dl_iterate_phdr(find_mapped_unwinder, fn);
	if (fn[UNWIND_BACKTRACE])
		publish_unwinder(fn);
}

/* From libmemkit's constructor, never from an allocation: dlopen allocates.
 * Blocks allocated before (by the dynamic loader, libc's start-up and the
 * constructors of libraries that run before libmemkit's) are tracked
 * without a stack, unless libgcc_s was mapped already. */
void mki_leak_load_unwinder(void)
{
	if (!mki_leak_active)
		return;
	/* also when found mapped: the reference keeps it from being unloaded */
	in_tracker = true; /* the loader's blocks for it are libmemkit's, not the program's */
	void *lib = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
	void *fn[UNWIND_FNS] = {NULL};
	for (unsigned k = 0; lib && k < UNWIND_FNS; k++)
		fn[k] = dlsym(lib, unwind_names[k]);
	in_tracker = false;
	if (atomic_load_explicit(&unwind_backtrace, memory_order_acquire))
		return;
	if (!fn[UNWIND_BACKTRACE] || !fn[UNWIND_GET_IP] || !fn[UNWIND_GET_CFA]) {
		mki_dprintf(
		    2, "memkit: leak tracking without call stacks: libgcc_s.so.1 (the unwinder) "
		       "could not be loaded\n");
		return;
	}
	publish_unwinder(fn);
}

/* ------------------------------------------------------------ frame sizes
 * The distance from a frame's stack pointer at a call site to its CFA is
 * fixed for a given return address, unless the function allocates on the
 * stack at run time (alloca, VLAs). Full walks teach that distance per
 * return address (a second, different observation marks the address
 * variable); then a walk needs only loads: cfa += size(ip),
 * ip = *(cfa - 8). Every address reached must be one a full walk has seen,
 * else the full walk runs. */

#define RULES	       (1u << 16) /* return addresses remembered */
#define RULE_PROBES    16
#define RULE_VARIABLE  INT32_MIN /* seen with two frame sizes */
#define RULE_OUTERMOST INT32_MAX /* the unwinder stopped there: no caller */
#define FAST_MAX_FRAME (1 << 20) /* a larger frame is not believed */

struct frame_rule {
	_Atomic uintptr_t ip; /* 0: empty */
	_Atomic int32_t size; /* 0: not known yet */
};

static struct frame_rule *rules;
/* Bumped by every size learnt: the threads' memos of sizes hold until it
 * moves (learning happens on full walks, which become rare). */
static _Atomic uint64_t rules_changed;

/* One multiply (Fibonacci hashing), not mix64: a walk's next frame waits
 * for this lookup, so its latency is the walk's. */
_Static_assert(RULES == 1u << 16, "rule_hash gives 16 bits");
static inline size_t rule_hash(uintptr_t ip)
{
	return (size_t)((ip * 0x9e3779b97f4a7c15ull) >> 48); /* RULES = 2^16 */
}

static struct frame_rule *rule_slot(uintptr_t ip, bool insert)
{
	size_t h = rule_hash(ip);
	for (unsigned i = 0; i < RULE_PROBES; i++) {
		struct frame_rule *r = &rules[(h + i) % RULES];
		uintptr_t cur = atomic_load_explicit(&r->ip, memory_order_acquire);
		if (cur == ip)
			return r;
		if (cur)
			continue;
		if (!insert)
			return NULL;
		if (atomic_compare_exchange_strong(&r->ip, &cur, ip) || cur == ip)
			return r;
	}
	return NULL;
}

static int32_t rule_size(uintptr_t ip)
{
	struct frame_rule *r = rule_slot(ip, false);
	return r ? atomic_load_explicit(&r->size, memory_order_relaxed) : 0;
}

/* rule_size through the thread's memo: the table is 1 MiB, and a program
 * that allocates along many distinct stacks (a tree built node by node)
 * streams through so much memory that the few lines of the table its walks
 * read fell out of the cache; the memo lies next to the last walk, which
 * every capture reads. Only known sizes are kept. */
static inline int32_t rule_size_memo(struct tstate *t, uintptr_t ip)
{
	struct rule_memo *m = &t->memo[(ip * 0x9e3779b97f4a7c15ull) >> 59];
	_Static_assert(RULE_MEMO == 32, "the memo's hash gives 5 bits");
	if (mki_likely(m->ip == ip))
		return m->size;
	int32_t size = rule_size(ip);
	if (size) {
		m->ip = ip;
		m->size = size;
	}
	return size;
}

/* The memo forgets everything once a size has been learnt since. */
static inline void memo_refresh(struct tstate *t)
{
	uint64_t now = atomic_load_explicit(&rules_changed, memory_order_relaxed);
	if (mki_unlikely(t->rules_seen != now)) {
		memset(t->memo, 0, sizeof(t->memo));
		t->rules_seen = now;
	}
}

static void rule_learn(uintptr_t ip, int32_t size)
{
	struct frame_rule *r = rule_slot(ip, true);
	if (!r)
		return;
	int32_t old = atomic_load_explicit(&r->size, memory_order_relaxed);
	if (old == size || old == RULE_VARIABLE)
		return;
	atomic_store_explicit(&r->size, old ? RULE_VARIABLE : size, memory_order_relaxed);
	atomic_fetch_add_explicit(&rules_changed, 1, memory_order_relaxed);
}

/* After a full walk that kept the return-address rule (walk_is_cacheable). */
static void learn_frame_sizes(const struct walk *w, struct tstate *t)
{
	if (!rules)
		return;
	for (unsigned i = 1; i + 1 < w->nwalk; i++) {
		uintptr_t size = w->cfa[i + 1] - w->cfa[i];
		rule_learn(w->ip[i],
			   size > 0 && size < FAST_MAX_FRAME ? (int32_t)size : RULE_VARIABLE);
	}
	if (w->truncated || w->nwalk < 2)
		return;
	rule_learn(w->ip[w->nwalk - 1], RULE_OUTERMOST);
	if (t && w->cfa[w->nwalk - 1] > t->stack_top)
		t->stack_top = w->cfa[w->nwalk - 1];
}

/* Walk from frame 1 (our caller) with learnt frame sizes only; false when
 * an address or size is unknown, or the walk would leave the stack. */
static bool fast_walk(struct walk *w, uintptr_t ip, uintptr_t cfa, uintptr_t top)
{
	if (!rules || !top || cfa > top)
		return false;
	/* frame 0 is stack_of_caller: a place holder, never kept nor compared */
	w->ip[0] = w->cfa[0] = 0;
	w->nwalk = 1;
	for (;;) {
		int32_t size = rule_size(ip);
		if (size == 0 || size == RULE_VARIABLE)
			return false;
		if (!walk_add(w, ip, cfa) || size == RULE_OUTERMOST)
			return true;
		cfa += (uintptr_t)size;
		if (cfa > top || (cfa & (sizeof(void *) - 1)))
			return false;
		ip = *(const uintptr_t *)(cfa - sizeof(void *));
	}
}

/* libgcc gives, with each frame's IP, the CFA of the frame below it (its
 * callee): the return address IP lies just below that CFA (x86-64's call
 * instruction defines it so). Frame 0 is stack_of_caller, whose callee, the
 * unwinder, is gone by then: its slot is not kept. A walk through a signal
 * frame breaks the rule and is neither learnt from nor reused. */
static bool walk_is_cacheable(const struct walk *w)
{
#if defined(__x86_64__)
	for (unsigned i = 1; i < w->nwalk; i++)
		if (*(const uintptr_t *)(w->cfa[i] - sizeof(void *)) != w->ip[i])
			return false;
	return w->nwalk > 1;
#else
	(void)w;
	return false;
#endif
}

/* The stack of a whole walk, interned from its outermost kept frame in;
 * the last walk (if any) remembers it for the next capture. */
static struct leak_stack *intern_walk(const struct walk *w, struct last_walk *l, bool reusable)
{
	struct leak_stack *node = root_stack;
	unsigned first = w->nwalk - w->n; /* the kept frames end the walk */
	if (l)
		l->n = 0;
	for (unsigned k = w->n; k-- > 0;) {
		node = stack_child(node, (uintptr_t)w->frames[k]);
		if (!node)
			return NULL;
		if (l) {
			unsigned i = w->n - 1 - k;
			l->slot[i] = w->cfa[first + k] - sizeof(void *);
			l->ra[i] = w->ip[first + k];
			l->node[i] = node;
		}
	}
	if (l && reusable) {
		l->n = w->n;
		l->truncated = w->truncated;
	}
	return node;
}

/* Frames an incremental walk found before it met the last walk. */
struct fresh {
	unsigned n;
	uintptr_t ip[LEAK_MAX_FRAMES];
	uintptr_t slot[LEAK_MAX_FRAMES];
};

/* The outermost of the last walk's entries lo .. hi - 1 whose slot no
 * longer holds its return address, or hi when all do. Scanned from the
 * outside in, so the first difference found is the outermost one. */
static inline unsigned first_changed(const struct last_walk *l, unsigned lo, unsigned hi)
{
	/* pointers, not an index: the walk keeps many values live, and an
	 * index spilled to the stack made each step wait on a reload */
	const uintptr_t *slot = l->slot + lo, *ra = l->ra + lo, *end = l->slot + hi;
	for (; slot < end; slot++, ra++)
		if (*(const uintptr_t *)*slot != *ra)
			break;
	return (unsigned)(slot - l->slot);
}

/* The last walk becomes its outermost `keep` entries, then the fresh
 * frames; returns the stack of the innermost one (NULL without memory). */
static struct leak_stack *splice_walk(struct last_walk *l, unsigned keep, const struct fresh *f)
{
	struct leak_stack *node = keep ? l->node[keep - 1] : root_stack;
	for (unsigned i = f->n; i-- > 0;) {
		node = stack_child(node, f->ip[i]);
		if (!node) {
			l->n = 0;
			return NULL;
		}
		unsigned at = keep + (f->n - 1 - i);
		l->slot[at] = f->slot[i];
		l->ra[at] = f->ip[i];
		l->node[at] = node;
	}
	l->n = f->n + keep;
	/* a recursive program allocates next in a callee of this frame: the
	 * lookup will start from this node, likely not in cache yet (one node
	 * per distinct stack), so its line is fetched while the program runs */
	__builtin_prefetch(node);
	return node;
}

/* A stack deeper than the frames kept: its innermost LEAK_MAX_FRAMES are
 * the last walk's entries drop .. keep - 1 and the fresh frames. The trie
 * is rooted at a stack's outermost kept frame, so every node is looked up
 * anew, from the entries at hand: no frame is walked again. */
static struct leak_stack *reroot_walk(struct last_walk *l, unsigned keep, const struct fresh *f,
				      unsigned drop)
{
	struct leak_stack *node = root_stack;
	unsigned n = 0;
	for (unsigned i = drop; i < keep; i++, n++) {
		node = stack_child(node, l->ra[i]);
		if (!node) {
			l->n = 0;
			return NULL;
		}
		l->slot[n] = l->slot[i];
		l->ra[n] = l->ra[i];
		l->node[n] = node;
	}
	l->truncated = true;
	return splice_walk(l, n, f);
}

/* The walk met the last walk's entry keep - 1, and the entries further out
 * are unchanged: reuse them if the kept frames still start at the same
 * outermost one; re-root them if the stack is now deeper than the frames
 * kept (python's are); NULL (walk in full) if the last walk was cut short
 * and this stack is shallower: the frames beyond its cut are not known. */
static struct leak_stack *meet_last_walk(struct last_walk *l, unsigned keep, const struct fresh *f)
{
	unsigned depth = f->n + keep;
	if (depth <= LEAK_MAX_FRAMES && !(l->truncated && depth != l->n))
		return splice_walk(l, keep, f);
	if (depth < LEAK_MAX_FRAMES)
		return NULL;
	return reroot_walk(l, keep, f, depth - LEAK_MAX_FRAMES);
}

/* libmemkit's own frames, with the same return addresses at the same
 * distances from the first CFA as in the last walk, lead to the first
 * frame of the program at the same distance: skip them without looking up
 * their sizes. (Reading each return address where the learnt sizes put it
 * is what a walk with those sizes would do; libmemkit's frames have fixed
 * sizes.) Relative, not absolute: a recursive program allocates at a new
 * depth almost every time. */
static bool skip_own_frames(const struct own_frames *o, uintptr_t top, uintptr_t *ip,
			    uintptr_t *cfa)
{
	uintptr_t base = *cfa;
	if (!o->user_off || o->ra[0] != *ip || base + o->user_off > top)
		return false;
	for (unsigned i = 1; i < o->n; i++)
		if (*(const uintptr_t *)(base + o->off[i]) != o->ra[i])
			return false;
	*cfa = base + o->user_off;
	*ip = *(const uintptr_t *)(*cfa - sizeof(void *));
	return true;
}

/* How far an incremental walk may trust the last walk: entries below
 * `verified` are known to hold their return addresses still, and it can
 * meet the last walk only at an entry below `limit` (the outermost entry
 * found changed, or all of them). */
struct trust {
	unsigned verified, limit;
};

/* The stack of a caller whose first frame (ip, cfa) is the last walk's
 * innermost, same slot and return address (a loop), when the frames
 * further out are the same too; else NULL, with what the look found. */
static inline struct leak_stack *walk_same_place(struct last_walk *l, uintptr_t ip, uintptr_t cfa,
						 struct trust *tr)
{
	tr->verified = 0;
	tr->limit = l->n;
	if (!l->n || l->slot[l->n - 1] != cfa - sizeof(void *) || l->ra[l->n - 1] != ip)
		return NULL;
	unsigned m = first_changed(l, 0, l->n - 1);
	if (m == l->n - 1)
		return l->node[m];
	tr->verified = tr->limit = m;
	return NULL;
}

/* walk_same_place for the fast path: the same answer when it is yes, but a
 * no found cheaply, from the inside out (a recursion allocating along a
 * sibling's path differs near the innermost frame): the slow path looks
 * again in its own order. */
static inline struct leak_stack *same_place_stack(const struct last_walk *l, uintptr_t ip,
						  uintptr_t cfa)
{
	unsigned n = l->n;
	if (!n || l->slot[n - 1] != cfa - sizeof(void *) || l->ra[n - 1] != ip)
		return NULL;
	for (unsigned i = n - 1; i-- > 0;)
		if (*(const uintptr_t *)l->slot[i] != l->ra[i])
			return NULL;
	return l->node[n - 1];
}

/* From the frame (ip, cfa) outwards with learnt frame sizes, until the
 * last walk is met or the outermost frame reached; NULL when that cannot be
 * done (a size not learnt, too deep): the caller walks in full. The walk
 * meets entry j when its frame has j's slot and return address and every
 * entry further out still holds its own: each entry is looked at once per
 * walk, whatever the number of candidates. base: the first CFA of the walk;
 * own: (ip, cfa) is still that first frame, whose own frames were not
 * skipped. */
static MKI_NOINLINE struct leak_stack *walk_incremental(struct tstate *t, uintptr_t ip,
							uintptr_t cfa, uintptr_t base, bool own,
							struct trust tr)
{
	struct last_walk *l = &t->last;
	struct own_frames *o = &t->own;
	struct fresh f;
	unsigned live = l->n; /* entries 0 .. live - 1 lie at or above this frame */
	bool too_many = false;
	if (own) {
		o->n = 0;
		o->user_off = 0; /* until the walk reaches the program */
	}
	f.n = 0;
	for (unsigned step = 0; step < LEAK_MAX_WALK; step++) {
		if (cfa > t->stack_top || (cfa & (sizeof(void *) - 1)))
			return NULL;
		uintptr_t slot = cfa - sizeof(void *);
		if (own && ip >= own_text_lo && ip < own_text_hi) {
			if (o->n < LEAK_MAX_WALK - LEAK_MAX_FRAMES) {
				o->off[o->n] = slot - base;
				o->ra[o->n++] = ip;
			} else {
				too_many = true;
			}
		} else {
			if (own) {
				own = false;
				o->user_off = too_many || !o->n ? 0 : cfa - base;
			}
			while (live && l->slot[live - 1] < slot)
				live--; /* frames that have returned since */
			unsigned j = live - 1;
			if (live && j < tr.limit && l->slot[j] == slot && l->ra[j] == ip) {
				/* a caller further out may have changed (a sibling
				 * call at the same depth): then meet beyond it */
				unsigned m = j < tr.verified ? j : first_changed(l, tr.verified, j);
				if (m == j)
					return meet_last_walk(l, j + 1, &f);
				tr.verified = tr.limit = m;
			}
			if (f.n == LEAK_MAX_FRAMES)
				return NULL;
			f.ip[f.n] = ip;
			f.slot[f.n++] = slot;
		}
		int32_t size = rule_size_memo(t, ip);
		if (size == 0 || size == RULE_VARIABLE)
			return NULL;
		if (size == RULE_OUTERMOST) {
			l->truncated = false;
			return splice_walk(l, 0, &f);
		}
		cfa += (uintptr_t)size;
		ip = *(const uintptr_t *)(cfa - sizeof(void *));
	}
	return NULL;
}

static void tstate_release(void *p)
{
	tstate = TSTATE_DEAD;
	mki_meta_free(p, sizeof(struct tstate));
}

static struct tstate *thread_state(void)
{
	struct tstate *t = tstate;
	if (mki_likely(t != NULL))
		return t == TSTATE_DEAD ? NULL : t;
	t = mki_meta_alloc(sizeof(*t));
	if (!t)
		return NULL;
	/* the destructor gives the state back when the thread exits */
	if (tstate_key_ok)
		pthread_setspecific(tstate_key, t);
	tstate = t;
	return t;
}

/* The full walk: learnt sizes if all are known, else libgcc's unwinder. */
static MKI_NOINLINE struct leak_stack *walk_full(struct tstate *t, uintptr_t ip, uintptr_t cfa)
{
	struct walk w;
	memset(&w, 0, offsetof(struct walk, ip));
	w.in_allocator = true;
	if (!(t && fast_walk(&w, ip, cfa, t->stack_top))) {
		w.n = w.nwalk = 0;
		w.in_allocator = true;
		w.truncated = false;
		unwind_backtrace_fn unwind =
		    atomic_load_explicit(&unwind_backtrace, memory_order_acquire);
		if (unwind)
			unwind(walk_frame, &w);
		if (walk_is_cacheable(&w))
			learn_frame_sizes(&w, t);
		else if (t)
			t->last.n = 0;
	}
	return intern_walk(&w, t ? &t->last : NULL, walk_is_cacheable(&w));
}

/* From the frame (ip, cfa), with the last walk and learnt frame sizes: the
 * last stack if the frame is the last walk's innermost and nothing further
 * out changed, else a walk out to where the two meet; NULL when neither
 * can tell (the full walk then). own and base as for walk_incremental. */
static inline struct leak_stack *walk_out(struct tstate *t, uintptr_t ip, uintptr_t cfa,
					  uintptr_t base, bool own)
{
	struct trust tr = {0, t->last.n};
	memo_refresh(t);
	struct leak_stack *st = own ? NULL : walk_same_place(&t->last, ip, cfa, &tr);
	return st ? st : walk_incremental(t, ip, cfa, base, own, tr);
}

/* The interned stack of whoever called the allocator. */
static MKI_NOINLINE struct leak_stack *stack_of_caller(struct tstate *t)
{
	/* our CFA is the frame pointer + 16; the return address lies below it */
	uintptr_t cfa = (uintptr_t)__builtin_frame_address(0) + 16;
	uintptr_t ip = (uintptr_t)__builtin_return_address(0);
#if defined(__x86_64__)
	if (t && rules && t->stack_top) {
		uintptr_t base = cfa;
		bool own = !skip_own_frames(&t->own, t->stack_top, &ip, &cfa);
		struct leak_stack *st = walk_out(t, ip, cfa, base, own);
		if (st)
			return st;
	}
#endif
	return walk_full(t, ip, cfa);
}

/* The same from the program's own frame (ip, cfa), which the allocator's
 * entry point read off its return address: no frames of ours to skip. */
static inline struct leak_stack *stack_of_frame(struct tstate *t, uintptr_t ip, uintptr_t cfa)
{
#if defined(__x86_64__)
	struct leak_stack *st =
	    t && rules && t->stack_top ? walk_out(t, ip, cfa, cfa, false) : NULL;
	if (st)
		return st;
#endif
	return walk_full(t, ip, cfa);
}

/* ------------------------------------------------------------ chunk shadows
 * Blocks inside chunks (slabs and page runs: all but large mappings) are
 * recorded in a shadow of their chunk: one 16-byte entry per 16-byte
 * granule, found through the chunk's descriptor (which the hooks look up
 * anyway) or, the first time and for a report, by address (a radix map
 * shaped like mki_radix), no hash, no lock. Blocks allocated one after
 * another sit side by side, so their entries share cache lines. A shadow
 * is mapped untouched (4 MiB of address space per chunk) and only the
 * pages of entries in use become resident. page.c unmaps no chunk while
 * tracking is on, so a report may read a block's memory, and its chunk's
 * descriptor, while the owner frees it. */

#define SHADOW_SHIFT   4 /* a granule: MKI_ALIGN */
#define SHADOW_ENTRIES (MKI_CHUNK_SIZE >> SHADOW_SHIFT)
#define SHADOW_L2      (1u << MKI_RADIX_L2_BITS)
/* in shadow_entry.stack (nodes are 8-byte aligned): the block's class,
 * set by a report; neither bit: definitely lost */
#define SHADOW_MARK	((uintptr_t)1) /* reachable */
#define SHADOW_INDIRECT ((uintptr_t)2) /* indirectly lost */
#define SHADOW_BITS	(SHADOW_MARK | SHADOW_INDIRECT)
#define INFO_SIZE(i)	((size_t)((i)&0xffffffffu))
#define INFO_EPOCH(i)	((i) >> 32)

static struct shadow_entry *_Atomic *_Atomic shadow_dir[1u << MKI_RADIX_L1_BITS];

/* *slot, created if need be (a lost race frees the loser's copy) */
static void *install(void *_Atomic *slot, size_t size)
{
	void *cur = atomic_load_explicit(slot, memory_order_acquire);
	if (cur)
		return cur;
	void *fresh = mki_meta_alloc(size);
	if (!fresh)
		return NULL;
	if (atomic_compare_exchange_strong(slot, &cur, fresh))
		return fresh;
	mki_meta_free(fresh, size);
	return cur;
}

/* The shadow of the chunk at address a, by address (it outlives the chunk:
 * a chunk mapped there again finds it again); NULL if it does not exist
 * and create is false, or without memory. */
static struct shadow_entry *shadow_by_address(uintptr_t a, bool create)
{
	uintptr_t n = a >> MKI_CHUNK_SHIFT;
	struct shadow_entry *_Atomic *l2 =
	    atomic_load_explicit(&shadow_dir[n >> MKI_RADIX_L2_BITS], memory_order_acquire);
	if (mki_unlikely(!l2)) {
		if (!create)
			return NULL;
		l2 = install((void *_Atomic *)&shadow_dir[n >> MKI_RADIX_L2_BITS],
			     SHADOW_L2 * sizeof(*l2));
		if (!l2)
			return NULL;
	}
	struct shadow_entry *sh =
	    atomic_load_explicit(&l2[n & (SHADOW_L2 - 1)], memory_order_acquire);
	if (mki_unlikely(!sh) && create)
		sh = install((void *_Atomic *)&l2[n & (SHADOW_L2 - 1)],
			     SHADOW_ENTRIES * sizeof(*sh));
	return sh;
}

/* The first lookup of a chunk's shadow (or of a new chunk's at the same
 * address): by address, then cached in the chunk. */
static MKI_NOINLINE struct shadow_entry *shadow_of_chunk(struct mki_chunk *c, uintptr_t a,
							 bool create)
{
	struct shadow_entry *sh = shadow_by_address(a, create);
	if (sh)
		atomic_store_explicit(&c->leak_shadow, sh, memory_order_release);
	return sh;
}

/* The entry of address a, inside chunk c: one load, from the chunk the
 * hook looked up anyway. */
static inline struct shadow_entry *shadow_entry_in(struct mki_chunk *c, uintptr_t a, bool create)
{
	struct shadow_entry *sh = atomic_load_explicit(&c->leak_shadow, memory_order_acquire);
	if (mki_unlikely(!sh) && !(sh = shadow_of_chunk(c, a, create)))
		return NULL;
	return &sh[(a & (MKI_CHUNK_SIZE - 1)) >> SHADOW_SHIFT];
}

static inline void shadow_set(struct shadow_entry *e, size_t size, struct leak_stack *st)
{
	uint64_t ep = atomic_load_explicit(&epoch, memory_order_relaxed);
	atomic_store_explicit(&e->info, (uint64_t)size | ep << 32, memory_order_relaxed);
	/* release: a report that sees the stack sees the size */
	atomic_store_explicit(&e->stack, (uintptr_t)st, memory_order_release);
}

/* A blind store, no load first: the entry's line is seldom in cache (a
 * line per block), and a store that misses does not hold the free up as a
 * load does. No shadow: the chunk has had no block recorded. */
static inline void shadow_clear(struct mki_chunk *c, uintptr_t a)
{
	struct shadow_entry *e = shadow_entry_in(c, a, false);
	if (e)
		atomic_store_explicit(&e->stack, 0, memory_order_relaxed);
}

/* Calls fn on every entry of every chunk page that may hold blocks (slab
 * and run pages): other pages' shadow stays untouched. */
typedef void (*entry_fn)(void *ctx, uintptr_t addr, struct shadow_entry *e);

static void shadow_each_in_chunk(struct shadow_entry *sh, uintptr_t base, entry_fn fn, void *ctx)
{
	struct mki_chunk *c = mki_chunk_of((void *)base);
	if (!c)
		return;
	const size_t per_page = MKI_PAGE_SIZE >> SHADOW_SHIFT;
	for (size_t pg = 0; pg < MKI_CHUNK_PAGES; pg++) {
		uint8_t kind = __atomic_load_n(&c->pages[pg].kind, __ATOMIC_RELAXED);
		if (kind != MKI_PAGE_SLAB && kind != MKI_PAGE_RUN)
			continue;
		for (size_t i = pg * per_page; i < (pg + 1) * per_page; i++)
			if (atomic_load_explicit(&sh[i].stack, memory_order_acquire))
				fn(ctx, base + (i << SHADOW_SHIFT), &sh[i]);
	}
}

static void shadow_each(entry_fn fn, void *ctx)
{
	for (size_t i = 0; i < (1u << MKI_RADIX_L1_BITS); i++) {
		struct shadow_entry *_Atomic *l2 = atomic_load(&shadow_dir[i]);
		for (size_t j = 0; l2 && j < SHADOW_L2; j++) {
			struct shadow_entry *sh = atomic_load(&l2[j]);
			if (sh)
				shadow_each_in_chunk(sh, (i * SHADOW_L2 + j) << MKI_CHUNK_SHIFT, fn,
						     ctx);
		}
	}
}

/* ------------------------------------------------------------ large blocks
 * Blocks outside the chunks (large mappings, which free unmaps) are few
 * and slow to allocate anyway: they go to 64 shards of an open-addressing
 * table keyed by address, under the shard's lock, which a report holds
 * while it reads them. */

static struct live_block *slot_find_locked(const struct shard *sh, uintptr_t addr)
{
	if (!sh->slots)
		return NULL;
	for (size_t i = mix64(addr) & sh->mask;; i = (i + 1) & sh->mask) {
		struct live_block *b = &sh->slots[i];
		if (b->addr == addr)
			return b;
		if (!b->addr)
			return NULL;
	}
}

static void slot_put_locked(struct shard *sh, const struct live_block *nb)
{
	if (!sh->slots)
		return; /* callers grow the shard first */
	size_t i = mix64(nb->addr) & sh->mask;
	while (sh->slots[i].addr && sh->slots[i].addr != nb->addr)
		i = (i + 1) & sh->mask;
	if (!sh->slots[i].addr)
		sh->count++;
	sh->slots[i] = *nb;
}

/* Double the shard's capacity (or create it); false without memory. */
static bool shard_grow_locked(struct shard *sh)
{
	size_t old_cap = sh->slots ? sh->mask + 1 : 0;
	size_t cap = old_cap ? old_cap * 2 : LEAK_SHARD_MIN;
	struct live_block *old = sh->slots;
	struct live_block *slots = mki_meta_alloc(cap * sizeof(*slots));
	if (!slots)
		return false;
	sh->slots = slots;
	sh->mask = cap - 1;
	sh->count = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].addr)
			slot_put_locked(sh, &old[i]);
	mki_meta_free(old, old_cap * sizeof(*old));
	return true;
}

static bool live_insert(uintptr_t addr, size_t size, struct leak_stack *stack)
{
	struct live_block nb = {addr, size, stack,
				atomic_load_explicit(&epoch, memory_order_relaxed)};
	struct shard *sh = shard_of(addr);
	mki_lock(&sh->lock);
	/* keep the load under 1/2: linear probing slows down fast above it */
	if (((size_t)sh->count + 1) * 2 > (sh->slots ? sh->mask + 1 : 0) &&
	    !shard_grow_locked(sh)) {
		mki_unlock(&sh->lock);
		return false;
	}
	slot_put_locked(sh, &nb);
	mki_unlock(&sh->lock);
	return true;
}

/* Remove slot i and shift back the entries of its probe run (no tombstones,
 * so lookups never degrade). */
static void slot_delete_locked(struct shard *sh, size_t i)
{
	size_t j = i;
	for (;;) {
		sh->slots[i].addr = 0;
		for (;;) {
			j = (j + 1) & sh->mask;
			if (!sh->slots[j].addr)
				goto done;
			size_t home = mix64(sh->slots[j].addr) & sh->mask;
			/* j may move to i if its home is not in (i, j] cyclically */
			bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
			if (!stays)
				break;
		}
		sh->slots[i] = sh->slots[j];
		i = j;
	}
done:
	sh->count--;
}

static void live_remove(uintptr_t addr)
{
	struct shard *sh = shard_of(addr);
	mki_lock(&sh->lock);
	struct live_block *b = slot_find_locked(sh, addr);
	if (b)
		slot_delete_locked(sh, (size_t)(b - sh->slots));
	mki_unlock(&sh->lock);
}

static void lock_all_shards(void)
{
	for (unsigned i = 0; i < LEAK_SHARDS; i++)
		mki_lock(&shards[i].lock);
}

static void unlock_all_shards(void)
{
	for (unsigned i = LEAK_SHARDS; i-- > 0;)
		mki_unlock(&shards[i].lock);
}

/* ------------------------------------------------------------ fork */

static void leak_fork_prepare(void)
{
	mki_lock(&report_lock);
	lock_all_shards();
	mki_lock(&stack_table.lock);
}

static void leak_fork_parent(void)
{
	mki_unlock(&stack_table.lock);
	unlock_all_shards();
	mki_unlock(&report_lock);
}

static void leak_fork_child(void)
{
	mki_lock_reset(&stack_table.lock);
	for (unsigned i = 0; i < LEAK_SHARDS; i++)
		mki_lock_reset(&shards[i].lock);
	mki_lock_reset(&report_lock);
}

/* pthread_atfork allocates, so it cannot run inside mki_init (which may be
 * inside the first malloc); the first tracked allocation registers it, with
 * the re-entry flag set so that its own allocation is not tracked. */
static MKI_NOINLINE void register_fork_handlers(void)
{
	if (atomic_exchange(&atfork_registered, true))
		return;
	pthread_atfork(leak_fork_prepare, leak_fork_parent, leak_fork_child);
}

static inline void register_fork_handlers_once(void)
{
	if (mki_unlikely(!atomic_load_explicit(&atfork_registered, memory_order_relaxed)))
		register_fork_handlers();
}

/* ------------------------------------------------------------ hooks */

static void report_signal_window(void);

static MKI_NOINLINE void count_untracked(void)
{
	atomic_fetch_add_explicit(&untracked, 1, memory_order_relaxed);
}

/* A block outside the chunks, in the table of large blocks. */
static MKI_NOINLINE void record_large(uintptr_t p, size_t size, struct leak_stack *st)
{
	if (!live_insert(p, size, st))
		count_untracked();
}

/* A block in a chunk, in its entry e of the chunk's shadow (NULL: no
 * memory for the shadow); any other block (c NULL) in the table. */
static inline void record_block(struct mki_chunk *c, struct shadow_entry *e, uintptr_t p,
				size_t size, struct leak_stack *st)
{
	if (mki_unlikely(!c))
		record_large(p, size, st);
	else if (mki_likely(e != NULL))
		shadow_set(e, size, st);
	else
		count_untracked();
}

/* A tracked allocation, with in_tracker set: record p's stack (ip 0: the
 * caller's frame is found by walking out of ours), then clear the flag and
 * write a window's report if a signal asked for one meanwhile. */
static inline void track_alloc(struct tstate *t, void *p, size_t size, uintptr_t ip, uintptr_t cfa)
{
	register_fork_handlers_once();
	struct mki_chunk *c = mki_chunk_of(p);
	struct shadow_entry *e = c ? shadow_entry_in(c, (uintptr_t)p, true) : NULL;
	/* a block's entry is seldom in cache (a line per block): it is fetched
	 * while the stack is walked */
	__builtin_prefetch(e, 1);
	struct leak_stack *st = ip ? stack_of_frame(t, ip, cfa) : stack_of_caller(t);
	if (st)
		record_block(c, e, (uintptr_t)p, size, st);
	else
		count_untracked();
	in_tracker = false;
	if (mki_unlikely(atomic_load_explicit(&window_report_pending, memory_order_relaxed)))
		report_signal_window();
}

/* The program's return address the entry point handed over, or 0 if it is
 * one of ours (the entry point was called, not jumped to: by another of
 * ours, or in an unoptimised build): then the walk starts in our frames
 * and skips them, as from any other entry point. */
static inline uintptr_t program_ip(uintptr_t ip)
{
	return mki_unlikely(!own_text_hi || (ip >= own_text_lo && ip < own_text_hi)) ? 0 : ip;
}

static MKI_NOINLINE void track_alloc_from(struct tstate *t, void *p, size_t size, uintptr_t ip,
					  uintptr_t cfa)
{
	track_alloc(t ? t : thread_state(), p, size, program_ip(ip), cfa);
}

/* A loop allocating where it allocated last, into a chunk that has its
 * shadow: the last walk's stack and one entry written, in a function small
 * enough to save few registers. Anything else, and a thread's first
 * allocation (it has no last walk yet), goes on to track_alloc_from. */
void mki_leak_on_alloc_from(void *p, size_t size, uintptr_t ip, uintptr_t cfa)
{
	if (!p || in_tracker)
		return;
	in_tracker = true; /* from here: a signal handler's malloc leaves t->last alone */
	struct tstate *t = tstate;
	if (mki_unlikely(!t || t == TSTATE_DEAD)) {
		track_alloc_from(NULL, p, size, ip, cfa);
		return;
	}
	struct leak_stack *st = same_place_stack(&t->last, ip, cfa);
	struct mki_chunk *c = st ? mki_chunk_of(p) : NULL;
	struct shadow_entry *sh =
	    c ? atomic_load_explicit(&c->leak_shadow, memory_order_acquire) : NULL;
	if (mki_unlikely(sh == NULL)) {
		track_alloc_from(t, p, size, ip, cfa);
		return;
	}
	shadow_set(&sh[((uintptr_t)p & (MKI_CHUNK_SIZE - 1)) >> SHADOW_SHIFT], size, st);
	in_tracker = false;
	if (mki_unlikely(atomic_load_explicit(&window_report_pending, memory_order_relaxed)))
		report_signal_window();
}

/* The block's entry, changed in place: size, stack and epoch as a new
 * allocation's. False if the block has none. */
static bool shadow_resize(struct mki_chunk *c, uintptr_t addr, size_t size, struct leak_stack *st)
{
	struct shadow_entry *e = shadow_entry_in(c, addr, false);
	if (!e || !atomic_load_explicit(&e->stack, memory_order_relaxed))
		return false;
	shadow_set(e, size, st);
	return true;
}

static bool live_resize(uintptr_t addr, size_t size, struct leak_stack *st)
{
	struct shard *sh = shard_of(addr);
	mki_lock(&sh->lock);
	struct live_block *b = slot_find_locked(sh, addr);
	if (b)
		*b = (struct live_block){addr, size, st,
					 atomic_load_explicit(&epoch, memory_order_relaxed)};
	mki_unlock(&sh->lock);
	return b != NULL;
}

/* A realloc that kept the block where it was: as a free and an allocation
 * by the realloc's caller (valgrind's record of it), but the entry changes
 * in place instead of going and coming back. */
void mki_leak_on_resize(void *p, size_t size, uintptr_t ip, uintptr_t cfa)
{
	if (in_tracker)
		return;
	in_tracker = true;
	struct tstate *t = thread_state();
	ip = program_ip(ip);
	struct leak_stack *st = ip ? stack_of_frame(t, ip, cfa) : stack_of_caller(t);
	uintptr_t a = (uintptr_t)p;
	struct mki_chunk *c = mki_chunk_of(p);
	if (!st) {
		in_tracker = false;
		mki_leak_on_free(c, p);
		count_untracked();
		return;
	}
	if (!(c ? shadow_resize(c, a, size, st) : live_resize(a, size, st)))
		/* not recorded before: allocated untracked */
		record_block(c, c ? shadow_entry_in(c, a, true) : NULL, a, size, st);
	in_tracker = false;
	if (mki_unlikely(atomic_load_explicit(&window_report_pending, memory_order_relaxed)))
		report_signal_window();
}

/* A large block's free: out of line, so that the common case saves no
 * registers for the lock this takes. */
static MKI_NOINLINE void forget_large(void *p)
{
	if (!p || in_tracker)
		return;
	/* a signal handler that frees while we hold a shard lock must not
	 * come back for it */
	in_tracker = true;
	live_remove((uintptr_t)p);
	in_tracker = false;
}

void mki_leak_on_free(struct mki_chunk *c, void *p)
{
	/* a block in a chunk: one store, no lock, safe even inside the tracker */
	if (mki_likely(c != NULL))
		shadow_clear(c, (uintptr_t)p);
	else
		forget_large(p);
}

/* ------------------------------------------------------------ init */

struct own_search {
	uintptr_t probe; /* an address inside libmemkit's code */
	bool found;
};

static bool phdr_contains(const struct dl_phdr_info *info, uintptr_t a)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && a >= lo && a < lo + ph->p_memsz)
			return true;
	}
	return false;
}

static int find_own_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct own_search *s = arg;
	if (!phdr_contains(info, s->probe))
		return 0;
	s->found = true;
	/* the main program (name "") means a static link: nothing to skip */
	if (!info->dlpi_name || !info->dlpi_name[0])
		return 1;
	own_base = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			own_text_lo = info->dlpi_addr + ph->p_vaddr;
			own_text_hi = own_text_lo + ph->p_memsz;
		}
	}
	return 1;
}

static void on_window_signal(int sig)
{
	(void)sig;
	/* async-signal-safe: lock-free atomics only */
	if (!atomic_load(&window_open)) {
		atomic_store(&window_start, atomic_fetch_add(&epoch, 1) + 1);
		atomic_store(&window_open, true);
	} else {
		atomic_store(&window_report_pending, true);
	}
}

/* SIGUSR2 toggles a window, unless the program already handles SIGUSR2. */
static void install_window_signal(void)
{
	struct sigaction old;
	if (sigaction(SIGUSR2, NULL, &old) || old.sa_handler != SIG_DFL)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_window_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
}

void mki_leak_init(void)
{
	if (mki_leak_active)
		return;
	stack_buckets = mki_meta_alloc(LEAK_STACK_BUCKETS * sizeof(*stack_buckets));
	if (stack_buckets) {
		mki_lock(&stack_table.lock);
		root_stack = stack_new_locked();
		mki_unlock(&stack_table.lock);
	}
	if (!stack_buckets || !root_stack) {
		mki_dprintf(2, "memkit: leak tracking off: no memory for its tables\n");
		return;
	}
	struct own_search s = {(uintptr_t)&mki_leak_init, false};
	dl_iterate_phdr(find_own_object, &s);
	find_unwinder_mapped();
	install_window_signal();
	tstate_key_ok = !pthread_key_create(&tstate_key, tstate_release);
	/* MEMKIT_LEAK_FAST=0: always the full unwinder (to compare, or distrust) */
	const char *fast = mki_getenv("MEMKIT_LEAK_FAST");
	if (!fast || *fast != '0')
		rules = mki_meta_alloc(RULES * sizeof(*rules));
	mki_leak_active = true;
	/* the threads' cached chunk lookups go stale: their frees take the
	 * path that tells the tracker */
	atomic_fetch_add_explicit(&mki_chunk_epoch, 2, memory_order_seq_cst);
}

static void add_requested(void *ctx, uintptr_t addr, struct shadow_entry *e)
{
	(void)addr;
	*(size_t *)ctx += INFO_SIZE(atomic_load_explicit(&e->info, memory_order_relaxed));
}

/* Live requested bytes, for mk_stats_get: summed from the shadows and the
 * large-block table when asked, so that free stores to the block's entry
 * without reading its size first. Other threads are not stopped: a
 * snapshot, as all statistics. */
size_t mki_leak_requested_bytes(void)
{
	size_t sum = 0;
	shadow_each(add_requested, &sum);
	/* a signal handler's free must not wait for a shard lock held here */
	bool was_in = in_tracker;
	in_tracker = true;
	for (unsigned i = 0; i < LEAK_SHARDS; i++) {
		struct shard *sh = &shards[i];
		mki_lock(&sh->lock);
		for (size_t j = 0; sh->slots && j <= sh->mask; j++)
			if (sh->slots[j].addr)
				sum += sh->slots[j].size;
		mki_unlock(&sh->lock);
	}
	in_tracker = was_in;
	return sum;
}

bool mk_leak_enabled(void)
{
	return mki_leak_active;
}

/* ------------------------------------------------------------ output */

static void out_flush(struct out *o)
{
	if (o->len && !o->err)
		o->err = mki_write_all(o->fd, o->buf, o->len);
	o->len = 0;
}

static void out_raw(struct out *o, const char *s, size_t n)
{
	while (n) {
		if (o->len == sizeof(o->buf))
			out_flush(o);
		size_t k = sizeof(o->buf) - o->len;
		k = k < n ? k : n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = mki_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_raw(o, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void out_str(struct out *o, const char *s)
{
	out_raw(o, s, strlen(s));
}

/* s as a JSON string, quotes included */
static void out_json_str(struct out *o, const char *s)
{
	out_raw(o, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			out_raw(o, esc, 2);
		} else if (c < 0x20) {
			out_printf(o, "\\u%04x", c);
		} else {
			out_raw(o, (const char *)&c, 1);
		}
	}
	out_raw(o, "\"", 1);
}

/* ------------------------------------------------------------ roots */

struct roots {
	struct root r[LEAK_MAX_ROOTS];
	unsigned n;
	struct other_thread {
		long tid;
		uintptr_t sp; /* 0: running, no stack pointer to read */
	} other[LEAK_MAX_THREADS];
	unsigned nother;
};

static void add_root(struct roots *rs, uintptr_t lo, uintptr_t hi)
{
	lo = mki_align_up(lo, sizeof(void *));
	if (hi > lo && rs->n < LEAK_MAX_ROOTS)
		rs->r[rs->n++] = (struct root){lo, hi};
}

/* Writable segments of every loaded object but libmemkit: globals. */
static int add_object_roots(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	if (own_text_hi && info->dlpi_addr == own_base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		add_root(arg, lo, lo + ph->p_memsz);
	}
	return 0;
}

/* /proc/self/maps, one line at a time, through a fixed buffer */
struct maps_reader {
	int fd;
	size_t len, pos;
	char buf[4096];
};

struct map_line {
	uintptr_t lo, hi;
	char perms[5];
	unsigned long inode;
	const char *path; /* "" for anonymous memory */
};

static uintptr_t parse_hex(const char **s)
{
	uintptr_t v = 0;
	for (;; (*s)++) {
		char c = **s;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uintptr_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uintptr_t)(c - 'a' + 10);
		else
			return v;
	}
}

static const char *skip_field(const char *s)
{
	while (*s && *s != ' ')
		s++;
	while (*s == ' ')
		s++;
	return s;
}

/* "lo-hi perms offset dev inode   path" */
static void parse_map_line(char *line, struct map_line *m)
{
	const char *s = line;
	m->lo = parse_hex(&s);
	s++;
	m->hi = parse_hex(&s);
	s++;
	memcpy(m->perms, s, 4);
	m->perms[4] = '\0';
	s = skip_field(skip_field(skip_field(s)));
	m->inode = 0;
	while (*s >= '0' && *s <= '9')
		m->inode = m->inode * 10 + (unsigned long)(*s++ - '0');
	while (*s == ' ')
		s++;
	m->path = s;
}

/* the next line (NUL-terminated, without '\n'), or NULL at the end */
static char *maps_next_line(struct maps_reader *r)
{
	for (;;) {
		char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
		if (nl) {
			char *line = r->buf + r->pos;
			*nl = '\0';
			r->pos = (size_t)(nl - r->buf) + 1;
			return line;
		}
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
		if (r->len == sizeof(r->buf) - 1)
			r->len = 0; /* a line longer than the buffer: drop it */
		ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
		if (n <= 0)
			return NULL;
		r->len += (size_t)n;
	}
}

/* A thread descriptor (glibc's struct pthread on x86-64 and aarch64 begins
 * with tcb and self pointers to itself) found near the top of a mapping:
 * it holds the thread's DTV and pthread_setspecific arrays, which glibc
 * keeps even for joined threads whose stack it caches. */
static uintptr_t find_thread_descriptor(uintptr_t lo, uintptr_t hi)
{
	for (uintptr_t a = (hi - 3 * sizeof(void *)) & ~(uintptr_t)63; a >= lo; a -= 64) {
		const uintptr_t *w = (const uintptr_t *)a;
		if (w[0] == a && w[2] == a)
			return a;
		if (hi - a > (64u << 10))
			break; /* descriptors sit within the top 64 KiB (TLS below them) */
	}
	return 0;
}

static bool is_allocator_memory(uintptr_t lo)
{
	void *start;
	size_t usable;
	return mki_chunk_of((void *)lo) ||
	       mki_block_of((void *)lo, &start, &usable) != MKI_PTR_INVALID;
}

/* The stack pointer of another, blocked thread within [lo, hi), or 0. */
static uintptr_t other_thread_sp_in(const struct roots *rs, uintptr_t lo, uintptr_t hi)
{
	for (unsigned i = 0; i < rs->nother; i++)
		if (rs->other[i].sp >= lo && rs->other[i].sp < hi)
			return rs->other[i].sp;
	return 0;
}

static bool is_running_thread(const struct roots *rs, long tid)
{
	for (unsigned i = 0; tid && i < rs->nother; i++)
		if (rs->other[i].tid == tid)
			return !rs->other[i].sp;
	return false;
}

/* The thread id in a glibc thread descriptor (x86-64: after the TCB header
 * and a list link), 0 where its place is not known. Only compared with the
 * ids of live threads: a wrong offset matches none. */
#if defined(__x86_64__) && defined(__GLIBC__)
#define PTHREAD_TID_OFFSET 0x2d0
#endif
static long descriptor_tid(uintptr_t tcb, uintptr_t hi)
{
#ifdef PTHREAD_TID_OFFSET
	if (tcb + PTHREAD_TID_OFFSET + sizeof(pid_t) <= hi)
		return *(const pid_t *)(tcb + PTHREAD_TID_OFFSET);
#endif
	(void)tcb, (void)hi;
	return 0;
}

static void add_map_roots(struct roots *rs, const struct map_line *m, uintptr_t sp)
{
	if (m->perms[0] != 'r' || m->perms[1] != 'w')
		return;
	if (sp >= m->lo && sp < m->hi) {
		add_root(rs, sp, m->hi); /* the current thread's live frames */
		return;
	}
	if (m->inode || is_allocator_memory(m->lo))
		return;
	/* another thread's live frames, its static TLS and its descriptor
	 * (which a thread library puts above the stack) */
	uintptr_t other = other_thread_sp_in(rs, m->lo, m->hi);
	if (other) {
		add_root(rs, other, m->hi);
		return;
	}
	uintptr_t tcb = find_thread_descriptor(m->lo, m->hi);
	/* a running thread's stack, with no stack pointer to start from: all
	 * of it that was ever written (a stale frame below its stack pointer
	 * may keep a lost block reachable, rather than a block in use be
	 * called lost); the main thread's has no descriptor at its top */
	if ((tcb && is_running_thread(rs, descriptor_tid(tcb, m->hi))) ||
	    (!strncmp(m->path, "[stack]", 7) && is_running_thread(rs, (long)getpid()))) {
		add_root(rs, m->lo, m->hi);
		return;
	}
	if (tcb)
		add_root(rs, tcb, tcb + LEAK_TCB_SCAN < m->hi ? tcb + LEAK_TCB_SCAN : m->hi);
}

/* Thread tid's user stack pointer while it is blocked (in a system call,
 * or stopped), from /proc/self/task/TID/syscall ("NR ARGS... SP PC", or
 * "-1 SP PC"); 0 while it runs ("running": nothing to read) or without the
 * file. */
static uintptr_t blocked_thread_sp(long tid)
{
	char path[64], buf[256];
	mki_snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] < '-' || buf[0] > '9')
		return 0;
	buf[n] = 0;
	const char *tok[2] = {NULL, NULL}; /* the last two "0x" fields seen */
	for (const char *q = buf; (q = strstr(q, "0x")) != NULL; q += 2) {
		tok[0] = tok[1];
		tok[1] = q + 2;
	}
	if (!tok[0])
		return 0;
	return parse_hex(&tok[0]);
}

/* The process's other threads, with the stack pointers of those that are
 * blocked: a report scans their stacks from there up, as the current
 * thread's, so that a block held in a frame of a thread waiting in a
 * system call at exit, or while a window report runs, is not called lost;
 * a running thread's whole stack is scanned. Not seen: what another thread
 * holds in registers alone. */
static void collect_thread_sps(struct roots *rs)
{
	int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return;
	long self = (long)gettid();
	char buf[4096];
	ssize_t n;
	while ((n = getdents64(dir, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			const struct dirent64 *d = (const struct dirent64 *)(buf + off);
			off += d->d_reclen;
			long tid = 0;
			const char *c = d->d_name;
			for (; *c >= '0' && *c <= '9'; c++)
				tid = tid * 10 + (*c - '0');
			if (*c || !tid || tid == self || rs->nother == LEAK_MAX_THREADS)
				continue;
			rs->other[rs->nother++] =
			    (struct other_thread){tid, blocked_thread_sp(tid)};
		}
	}
	close(dir);
}

static void collect_map_roots(struct roots *rs, uintptr_t sp)
{
	struct maps_reader r;
	r.fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (r.fd < 0)
		return;
	r.len = r.pos = 0;
	char *line;
	while ((line = maps_next_line(&r))) {
		struct map_line m;
		parse_map_line(line, &m);
		add_map_roots(rs, &m, sp);
	}
	close(r.fd);
}

/* ------------------------------------------------------------ marking */

struct work_item {
	uintptr_t addr;
	size_t size;
};

struct marker {
	struct work_item *work;
	size_t top, cap;
	uintptr_t lo, hi; /* every live block lies in [lo, hi) */
	bool indirect;	  /* the pass: from the roots, or from unreachable blocks */
	uintptr_t leader; /* the unreachable block scanned: it stays definitely lost */
};

static void push_block(struct marker *mk, uintptr_t addr, size_t size)
{
	if (mk->top < mk->cap)
		mk->work[mk->top++] = (struct work_item){addr, size};
}

/* Marks the live block that starts at addr (reachable, or indirectly lost
 * in the second pass), if it is not marked yet and is not the leader;
 * false if no live block starts there. */
static bool mark_block(struct marker *mk, uintptr_t addr)
{
	struct mki_chunk *c = mki_chunk_of((void *)addr);
	if (c) {
		struct shadow_entry *e =
		    (addr & (MKI_ALIGN - 1)) ? NULL : shadow_entry_in(c, addr, false);
		uintptr_t s = e ? atomic_load_explicit(&e->stack, memory_order_acquire) : 0;
		if (!s)
			return false;
		uintptr_t bit = mk->indirect ? SHADOW_INDIRECT : SHADOW_MARK;
		/* fails only if the owner freed or replaced the block meanwhile */
		if (!(s & SHADOW_BITS) && addr != mk->leader &&
		    atomic_compare_exchange_strong(&e->stack, &s, s | bit))
			push_block(mk, addr, INFO_SIZE(atomic_load(&e->info)));
		return true;
	}
	struct live_block *b = slot_find_locked(shard_of(addr), addr);
	if (!b)
		return false;
	if (!(b->seq & LEAK_BITS) && addr != mk->leader) {
		b->seq |= mk->indirect ? LEAK_INDIRECT : LEAK_MARK;
		push_block(mk, b->addr, b->size);
	}
	return true;
}

static void mark_word(struct marker *mk, uintptr_t w)
{
	if (w < mk->lo || w >= mk->hi)
		return;
	void *start;
	size_t usable;
	if (mki_block_of((void *)w, &start, &usable) == MKI_PTR_INVALID)
		return;
	/* or an aligned block handed out inside its slot */
	if (!mark_block(mk, (uintptr_t)start) && (uintptr_t)start != w)
		mark_block(mk, w);
}

static void mark_range(struct marker *mk, uintptr_t lo, uintptr_t hi)
{
	for (uintptr_t a = mki_align_up(lo, sizeof(void *)); a + sizeof(void *) <= hi;
	     a += sizeof(void *))
		mark_word(mk, *(const uintptr_t *)a);
}

static void mark_transitively(struct marker *mk)
{
	while (mk->top) {
		struct work_item it = mk->work[--mk->top];
		mark_range(mk, it.addr, it.addr + it.size);
	}
}

/* Valgrind's cliques: an unreachable block that no earlier scan reached
 * leads one. Every unreachable block it reaches, transitively, is
 * indirectly lost, earlier leaders included (they are pointed to after
 * all); the leader stays definitely lost unless a later leader reaches it.
 * So the definitely lost blocks are the ones no unreachable block points
 * to, and of a cycle that nothing else points to, the first one scanned. */
static void scan_leader(struct marker *mk, uintptr_t addr, size_t size)
{
	mk->leader = addr;
	mark_range(mk, addr, addr + size);
	mark_transitively(mk);
}

static void leader_entry(void *ctx, uintptr_t addr, struct shadow_entry *e)
{
	uintptr_t s = atomic_load_explicit(&e->stack, memory_order_acquire);
	if (s && !(s & SHADOW_BITS))
		scan_leader(ctx, addr,
			    INFO_SIZE(atomic_load_explicit(&e->info, memory_order_relaxed)));
}

/* After the pass from the roots, with the shards locked. */
static void mark_indirect_locked(struct marker *mk)
{
	if (!mk->work)
		return; /* no memory for the work list: all unreachable stay definite */
	mk->indirect = true;
	shadow_each(leader_entry, mk);
	for (unsigned s = 0; s < LEAK_SHARDS; s++) {
		const struct shard *sh = &shards[s];
		for (size_t i = 0; sh->slots && i <= sh->mask; i++) {
			const struct live_block *b = &sh->slots[i];
			if (b->addr && !(b->seq & LEAK_BITS))
				scan_leader(mk, b->addr, b->size);
		}
	}
	mk->leader = 0;
}

struct prep {
	struct marker *mk;
	size_t n;
};

static void widen(struct prep *pp, uintptr_t addr, size_t size)
{
	struct marker *mk = pp->mk;
	pp->n++;
	mk->lo = addr < mk->lo ? addr : mk->lo;
	mk->hi = addr + size + 1 > mk->hi ? addr + size + 1 : mk->hi;
}

static void prepare_entry(void *ctx, uintptr_t addr, struct shadow_entry *e)
{
	uintptr_t s = atomic_load_explicit(&e->stack, memory_order_relaxed);
	if (s & SHADOW_BITS)
		atomic_compare_exchange_strong(&e->stack, &s, s & ~SHADOW_BITS);
	widen(ctx, addr, INFO_SIZE(atomic_load_explicit(&e->info, memory_order_relaxed)));
}

/* Clear marks, find the address range of live blocks; returns the count. */
static size_t prepare_marks_locked(struct marker *mk)
{
	struct prep pp = {mk, 0};
	mk->lo = UINTPTR_MAX;
	mk->hi = 0;
	shadow_each(prepare_entry, &pp);
	for (unsigned s = 0; s < LEAK_SHARDS; s++) {
		struct shard *sh = &shards[s];
		for (size_t i = 0; sh->slots && i <= sh->mask; i++) {
			struct live_block *b = &sh->slots[i];
			if (!b->addr)
				continue;
			b->seq &= ~LEAK_BITS;
			widen(&pp, b->addr, b->size);
		}
	}
	return pp.n;
}

/* ------------------------------------------------------------ tallying */

/* A stack's blocks of each class, in an array indexed by the stack's id
 * that a report allocates (stacks created while it runs are left out). */
struct site_totals {
	size_t bytes[CLASSES], blocks[CLASSES];
};

struct tally {
	size_t bytes[CLASSES], blocks[CLASSES], sites[CLASSES];
	uint64_t min_seq;
	struct site_totals *per_stack; /* NULL without memory: totals only */
	size_t nstacks;
};

static enum leak_class shadow_class(uintptr_t s)
{
	return s & SHADOW_MARK	     ? CLASS_REACHABLE
	       : s & SHADOW_INDIRECT ? CLASS_INDIRECT
				     : CLASS_DEFINITE;
}

static enum leak_class seq_class(uint64_t seq)
{
	return seq & LEAK_MARK	     ? CLASS_REACHABLE
	       : seq & LEAK_INDIRECT ? CLASS_INDIRECT
				     : CLASS_DEFINITE;
}

static void tally_block(struct tally *t, const struct leak_stack *s, size_t size, enum leak_class c)
{
	if (s->id >= t->nstacks)
		return; /* allocated while the report runs */
	t->bytes[c] += size;
	t->blocks[c]++;
	if (!t->per_stack)
		return;
	struct site_totals *st = &t->per_stack[s->id];
	t->sites[c] += !st->blocks[c];
	st->bytes[c] += size;
	st->blocks[c]++;
}

static void tally_entry(void *ctx, uintptr_t addr, struct shadow_entry *e)
{
	(void)addr;
	struct tally *t = ctx;
	uintptr_t s = atomic_load_explicit(&e->stack, memory_order_acquire);
	uint64_t info = atomic_load_explicit(&e->info, memory_order_relaxed);
	if (s && INFO_EPOCH(info) >= t->min_seq)
		tally_block(t, (struct leak_stack *)(s & ~SHADOW_BITS), INFO_SIZE(info),
			    shadow_class(s));
}

/* nstacks: stack_table.count when the report began */
static void tally_locked(struct tally *t, uint64_t min_seq, size_t nstacks)
{
	memset(t, 0, sizeof(*t));
	t->min_seq = min_seq;
	t->nstacks = nstacks;
	t->per_stack = nstacks ? mki_meta_alloc(nstacks * sizeof(struct site_totals)) : NULL;
	shadow_each(tally_entry, t);
	for (unsigned s = 0; s < LEAK_SHARDS; s++) {
		const struct shard *sh = &shards[s];
		for (size_t i = 0; sh->slots && i <= sh->mask; i++) {
			const struct live_block *b = &sh->slots[i];
			if (b->addr && (b->seq & ~LEAK_BITS) >= min_seq)
				tally_block(t, b->stack, b->size, seq_class(b->seq));
		}
	}
}

static void tally_free(struct tally *t)
{
	mki_meta_free(t->per_stack, t->nstacks * sizeof(struct site_totals));
	t->per_stack = NULL;
}

/* ------------------------------------------------------------ sorting */

/* One call stack's blocks of one class, as a report lists them. */
struct site {
	const struct leak_stack *stack;
	size_t bytes, blocks;
};

/* heap sort, largest first by bytes: qsort may allocate */
static void sift_down(struct site *a, size_t i, size_t n)
{
	for (;;) {
		size_t m = i, l = 2 * i + 1, r = l + 1;
		/* a min-heap, so the sorted array ends up descending */
		if (l < n && a[l].bytes < a[m].bytes)
			m = l;
		if (r < n && a[r].bytes < a[m].bytes)
			m = r;
		if (m == i)
			return;
		struct site t = a[i];
		a[i] = a[m];
		a[m] = t;
		i = m;
	}
}

static void sort_descending(struct site *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (size_t end = n; end-- > 1;) {
		struct site t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

/* The sites of class c, sorted; *n is their count (at most t->sites[c],
 * the size of the array). */
static struct site *sorted_sites(const struct tally *t, enum leak_class c, size_t *n)
{
	*n = 0;
	if (!t->sites[c])
		return NULL;
	struct site *a = mki_meta_alloc(t->sites[c] * sizeof(*a));
	if (!a)
		return NULL;
	for (struct leak_stack *s = atomic_load(&stack_table.all); s && *n < t->sites[c];
	     s = s->all) {
		if (s->id >= t->nstacks)
			continue;
		const struct site_totals *st = &t->per_stack[s->id];
		if (st->blocks[c])
			a[(*n)++] = (struct site){s, st->bytes[c], st->blocks[c]};
	}
	sort_descending(a, *n);
	return a;
}

/* ------------------------------------------------------------ symbols */

struct frame_info {
	const char *func;   /* NULL if not in the dynamic symbol table */
	uintptr_t func_off; /* from the function's start */
	const char *object; /* path of the ELF file */
	uintptr_t rel;	    /* address within the object, as addr2line wants it */
};

static char exe_path[512];

static const char *main_program_path(void)
{
	if (!exe_path[0]) {
		ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
		exe_path[n > 0 ? n : 0] = '\0';
	}
	return exe_path;
}

/* ip is a return address: ip - 1 lies in the call instruction */
static void describe_frame(void *ip, struct frame_info *fi)
{
	uintptr_t pc = (uintptr_t)ip - 1;
	Dl_info di;
	struct link_map *lm = NULL;
	memset(fi, 0, sizeof(*fi));
	fi->object = "?";
	fi->rel = pc;
	if (!dladdr1((void *)pc, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		return;
	fi->object = lm->l_name && lm->l_name[0] ? lm->l_name : main_program_path();
	fi->rel = pc - lm->l_addr;
	if (di.dli_sname && di.dli_saddr) {
		fi->func = di.dli_sname;
		fi->func_off = pc - (uintptr_t)di.dli_saddr;
	}
}

/* The frames a report has described: it names the same return addresses
 * again and again (python's exit report: 1841 frames, 207 distinct), and
 * dladdr searches an object's symbols one by one (55 k instructions a call
 * in libpython). Direct-mapped by address; without one (no memory) each
 * frame is described afresh. */
#define FRAME_MEMO 4096
struct frame_memo {
	uintptr_t ip[FRAME_MEMO]; /* 0: empty (no frame returns to address 0) */
	struct frame_info fi[FRAME_MEMO];
};

static const struct frame_info *frame_described(struct frame_memo *m, uintptr_t ip,
						struct frame_info *scratch)
{
	if (!m) {
		describe_frame((void *)ip, scratch);
		return scratch;
	}
	size_t i = (size_t)mix64(ip) & (FRAME_MEMO - 1);
	if (m->ip[i] != ip) {
		describe_frame((void *)ip, &m->fi[i]);
		m->ip[i] = ip;
	}
	return &m->fi[i];
}

/* "func+0x12 (/path/obj+0x1234)" */
static void format_frame(char *buf, size_t size, const struct frame_info *fi)
{
	if (fi->func)
		mki_snprintf(buf, size, "%s+0x%zx (%s+0x%zx)", fi->func, (size_t)fi->func_off,
			     fi->object, (size_t)fi->rel);
	else
		mki_snprintf(buf, size, "%s+0x%zx", fi->object, (size_t)fi->rel);
}

/* ------------------------------------------------------------ report text */

/* by class: the text's words, the JSON's totals and site-list keys */
static const char *const class_text[CLASSES] = {"definitely lost", "indirectly lost",
						"still reachable"};
static const char *const class_total_key[CLASSES] = {"definitely_lost", "indirectly_lost",
						     "still_reachable"};
static const char *const class_sites_key[CLASSES] = {"leaks", "indirect", "reachable"};

/* what a report shows: the totals, and each class's sites, sorted */
struct report {
	struct tally t;
	struct site *sites[CLASSES];
	size_t nsites[CLASSES];
	bool window;
	struct frame_memo *memo; /* may be NULL */
};

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

static void text_site(struct out *o, const struct site *site, const char *what,
		      struct frame_memo *memo)
{
	const struct leak_stack *s = site->stack;
	out_printf(o, "\n%zu bytes in %zu block%s %s, allocated at:\n", site->bytes, site->blocks,
		   plural(site->blocks), what);
	unsigned i = 0;
	for (const struct leak_stack *f = s; f->depth; f = f->parent, i++) {
		struct frame_info scratch;
		char line[640];
		format_frame(line, sizeof(line), frame_described(memo, f->ip, &scratch));
		out_printf(o, "    #%-2u %p %s\n", i, (void *)f->ip, line);
	}
	if (!s->depth)
		out_str(o, "    (no stack)\n");
}

static void text_report(struct out *o, const struct report *r)
{
	const struct tally *t = &r->t;
	out_printf(o, "memkit: leak report for pid %d (%s)%s\n", (int)getpid(), main_program_path(),
		   r->window ? ", blocks allocated in the window" : "");
	for (unsigned c = 0; c < CLASSES; c++)
		for (size_t i = 0; i < r->nsites[c]; i++)
			text_site(o, &r->sites[c][i], class_text[c], r->memo);
	out_str(o, "\nLEAK SUMMARY:\n");
	for (unsigned c = 0; c < CLASSES; c++)
		out_printf(o, "   %s: %zu bytes in %zu block%s from %zu call stack%s\n",
			   class_text[c], t->bytes[c], t->blocks[c], plural(t->blocks[c]),
			   t->sites[c], plural(t->sites[c]));
	size_t nu = atomic_load(&untracked);
	if (nu)
		out_printf(o, "   not tracked (tracker out of memory): %zu block%s\n", nu,
			   plural(nu));
}

/* ------------------------------------------------------------ report JSON */

static void json_frames(struct out *o, const struct leak_stack *s, struct frame_memo *memo)
{
	char line[640];
	struct frame_info scratch;
	out_str(o, "\"stack\":[");
	for (const struct leak_stack *f = s; f->depth; f = f->parent) {
		format_frame(line, sizeof(line), frame_described(memo, f->ip, &scratch));
		out_str(o, f != s ? "," : "");
		out_json_str(o, line);
	}
	out_str(o, "],\"frames\":[");
	for (const struct leak_stack *f = s; f->depth; f = f->parent) {
		const struct frame_info *fi = frame_described(memo, f->ip, &scratch);
		out_printf(o, "%s{\"ip\":\"%p\",\"object\":", f != s ? "," : "", (void *)f->ip);
		out_json_str(o, fi->object);
		out_printf(o, ",\"offset\":\"0x%zx\",\"function\":", (size_t)fi->rel);
		if (fi->func)
			out_json_str(o, fi->func);
		else
			out_str(o, "null");
		out_str(o, "}");
	}
	out_str(o, "]");
}

static void json_sites(struct out *o, const char *name, const struct site *a, size_t n,
		       struct frame_memo *memo)
{
	out_printf(o, ",\"%s\":[", name);
	for (size_t i = 0; i < n; i++) {
		out_printf(o, "%s{\"bytes\":%zu,\"blocks\":%zu,", i ? "," : "", a[i].bytes,
			   a[i].blocks);
		json_frames(o, a[i].stack, memo);
		out_str(o, "}");
	}
	out_str(o, "]");
}

static void json_report(struct out *o, const struct report *r)
{
	const struct tally *t = &r->t;
	out_printf(o, "{\"pid\":%d,\"exe\":", (int)getpid());
	out_json_str(o, main_program_path());
	out_printf(o, ",\"window\":%s", r->window ? "true" : "false");
	for (unsigned c = 0; c < CLASSES; c++)
		out_printf(o, ",\"%s\":{\"bytes\":%zu,\"blocks\":%zu}", class_total_key[c],
			   t->bytes[c], t->blocks[c]);
	out_printf(o, ",\"untracked_blocks\":%zu", (size_t)atomic_load(&untracked));
	for (unsigned c = 0; c < CLASSES; c++)
		json_sites(o, class_sites_key[c], r->sites[c], r->nsites[c], r->memo);
	out_str(o, "}");
}

/* ------------------------------------------------------------ report */

/* Where the scan of the current thread's stack begins: just below the
 * callee-saved registers that a public entry point spilled in its prologue
 * (__builtin_unwind_init), so that the caller's registers are roots but the
 * tracker's own deeper frames, which may hold stale copies of pointers, are
 * not. The entry points must not tail-call (see ENTRY_BARRIER). */
#define SCAN_FROM_HERE() ((uintptr_t)__builtin_frame_address(0) - 64)
#define ENTRY_BARRIER()	 __asm__ volatile("" ::: "memory")

/* In /proc/self/pagemap's entries: the page is in memory, or in swap. */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_BATCH	512 /* entries read at a time (4 KiB on the stack) */

/* A root range, less its pages that were never written: an untouched bss
 * page is zero and an untouched data page holds the file's bytes, neither a
 * heap address; such a page is neither present nor swapped. A program's
 * large static arrays cost a report nothing until it uses them (a 128 MiB
 * bss took 50 ms to scan), and reading them does not map the zero page
 * over them. pagemap < 0 (not readable): every page is scanned. */
static void mark_root_range(struct marker *mk, int pagemap, uintptr_t lo, uintptr_t hi)
{
	uint64_t ent[PAGEMAP_BATCH];
	uintptr_t page = lo & ~(uintptr_t)(MKI_PAGE_SIZE - 1);
	while (pagemap >= 0 && page < hi) {
		size_t want = (hi - page + MKI_PAGE_SIZE - 1) >> MKI_PAGE_SHIFT;
		if (want > PAGEMAP_BATCH)
			want = PAGEMAP_BATCH;
		ssize_t got = pread(pagemap, ent, want * sizeof(ent[0]),
				    (off_t)((page >> MKI_PAGE_SHIFT) * sizeof(ent[0])));
		if (got < (ssize_t)sizeof(ent[0]))
			break; /* the rest is scanned whole */
		for (size_t i = 0; i < (size_t)got / sizeof(ent[0]); i++, page += MKI_PAGE_SIZE)
			if (ent[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))
				mark_range(mk, page < lo ? lo : page,
					   page + MKI_PAGE_SIZE < hi ? page + MKI_PAGE_SIZE : hi);
	}
	if (page < hi)
		mark_range(mk, page < lo ? lo : page, hi);
}

static void mark_from_roots(struct marker *mk, uintptr_t stack_from)
{
	struct roots *rs = mki_meta_alloc(sizeof(*rs));
	if (!rs)
		return;
	dl_iterate_phdr(add_object_roots, rs);
	collect_thread_sps(rs);
	collect_map_roots(rs, stack_from);
	lock_all_shards();
	size_t live = prepare_marks_locked(mk);
	mk->cap = live;
	mk->work = live ? mki_meta_alloc(live * sizeof(struct work_item)) : NULL;
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	for (unsigned i = 0; mk->work && i < rs->n; i++) {
		mark_root_range(mk, pagemap, rs->r[i].lo, rs->r[i].hi);
		mark_transitively(mk);
	}
	if (pagemap >= 0)
		close(pagemap);
	mki_meta_free(rs, sizeof(*rs));
	/* the shards stay locked: the caller marks the indirectly lost,
	 * tallies, then unlocks */
}

/* Classify (the shards locked while blocks are marked and counted), then
 * write. Returns the blocks lost: definitely and indirectly, as valgrind
 * counts leak errors. */
static long write_report(int fd, enum mk_format format, uint64_t min_seq, bool window,
			 uintptr_t stack_from)
{
	struct marker mk = {0};
	struct report r = {.window = window};
	size_t nstacks = atomic_load(&stack_table.count);
	mark_from_roots(&mk, stack_from);
	mark_indirect_locked(&mk);
	tally_locked(&r.t, min_seq, nstacks);
	unlock_all_shards();
	mki_meta_free(mk.work, mk.cap * sizeof(struct work_item));

	for (unsigned c = 0; c < CLASSES; c++)
		r.sites[c] = sorted_sites(&r.t, c, &r.nsites[c]);
	int err = ENOMEM;
	struct out *o = mki_meta_alloc(sizeof(*o));
	r.memo = mki_meta_alloc(sizeof(*r.memo));
	if (r.memo)
		memset(r.memo->ip, 0, sizeof(r.memo->ip));
	if (o) {
		o->fd = fd;
		if (format == MK_FORMAT_JSON)
			json_report(o, &r);
		else
			text_report(o, &r);
		out_flush(o);
		err = o->err;
		mki_meta_free(o, sizeof(*o));
	}
	if (r.memo)
		mki_meta_free(r.memo, sizeof(*r.memo));
	for (unsigned c = 0; c < CLASSES; c++)
		mki_meta_free(r.sites[c], r.t.sites[c] * sizeof(struct site));
	tally_free(&r.t);
	if (err) {
		errno = err;
		return -1;
	}
	return (long)(r.t.blocks[CLASS_DEFINITE] + r.t.blocks[CLASS_INDIRECT]);
}

static MKI_NOINLINE long guarded_report(int fd, enum mk_format format, uint64_t min_seq,
					bool window, uintptr_t stack_from)
{
	if (!mki_leak_active) {
		errno = ENOTSUP;
		return -1;
	}
	bool nested = in_tracker;
	in_tracker = true;
	mki_lock(&report_lock);
	long r = write_report(fd, format, min_seq, window, stack_from);
	mki_unlock(&report_lock);
	in_tracker = nested;
	return r;
}

MKI_NOINLINE long mk_leak_report(int fd, enum mk_format format)
{
	__builtin_unwind_init();
	long r = guarded_report(fd, format, 0, false, SCAN_FROM_HERE());
	ENTRY_BARRIER();
	return r;
}

void mk_leak_begin(void)
{
	atomic_store(&window_start, atomic_fetch_add(&epoch, 1) + 1);
	atomic_store(&window_open, true);
}

static long end_window(int fd, enum mk_format format, uintptr_t stack_from)
{
	uint64_t start = atomic_load(&window_start);
	atomic_store(&window_open, false);
	return guarded_report(fd, format, start, true, stack_from);
}

MKI_NOINLINE long mk_leak_end(int fd, enum mk_format format)
{
	__builtin_unwind_init();
	long r = end_window(fd, format, SCAN_FROM_HERE());
	ENTRY_BARRIER();
	return r;
}

/* Second SIGUSR2: the next allocation outside the tracker reports the
 * window on stderr (a signal handler may not do this work itself). */
static MKI_NOINLINE void report_signal_window(void)
{
	__builtin_unwind_init();
	if (in_tracker || !atomic_exchange(&window_report_pending, false))
		return;
	end_window(2, MK_FORMAT_TEXT, SCAN_FROM_HERE());
	ENTRY_BARRIER();
}

/* The exit report on fd 2, once. libmemkit's own exit path (stats.c's
 * destructor) calls mk_leak_report instead, to reach a saved copy of stderr
 * and to put statistics and leaks in one JSON file. */
MKI_NOINLINE void mki_leak_at_exit(void)
{
	static _Atomic bool done;
	__builtin_unwind_init();
	if (!mki_leak_active || atomic_exchange(&done, true))
		return;
	guarded_report(2, MK_FORMAT_TEXT, 0, false, SCAN_FROM_HERE());
	ENTRY_BARRIER();
}
