/* leak.c - leak tracking: every live block remembers its allocation call
 * stack; a report lists the blocks still live, the unreachable ones
 * ("definitely lost") apart from those reachable from globals, thread
 * descriptors and the current stack ("still reachable"), grouped by call
 * stack, largest first, as text or JSON.
 *
 * How:
 *  1. Stacks are captured with libgcc's _Unwind_Backtrace (DWARF call-frame
 *     information, so programs need no frame pointers), or, on x86-64, from
 *     two caches that spare most walks (a per-thread cache of whole stacks,
 *     validated against the return addresses on the stack, and frame sizes
 *     learnt per return address); they are interned in a table of unique
 *     stacks (hash of the frames); a live block costs one 32-byte slot in
 *     one of 64 shards of an open-addressing table.
 *  2. A report freezes the shards, marks blocks reachable from the roots
 *     (conservative scan, as valgrind does), transitively through live
 *     blocks, then unlocks and names the frames with dladdr.
 *
 * Nothing here calls malloc (nor printf, qsort, backtrace() which may): the
 * tables come from mki_meta_alloc, output goes through mki_vsnprintf. A
 * thread-local flag stops re-entry: an allocation made while the tracker
 * itself runs (none is expected) is simply not tracked.
 *
 * May call: libc.c, meta.c, mki_block_of (alloc.c), _Unwind_Backtrace,
 * dl_iterate_phdr, dladdr1, open/read/close/readlink, sigaction,
 * pthread_atfork, pthread_key_create/setspecific. The exit report itself is
 * written by stats.c (one file for statistics and leaks).
 * Lock order: report_lock, then the shard locks in index order, then
 * stack_lock; meta.c's lock may be taken under any of them.
 */
#define _GNU_SOURCE
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
#define LEAK_CACHE_ENTRIES 64			 /* per thread: stacks captured recently */
#define LEAK_SHARDS	   64			 /* live-block table shards (by address hash) */
#define LEAK_SHARD_MIN	   256			 /* first capacity of a shard, in slots */
#define LEAK_STACK_BUCKETS (1u << 20)	/* fixed, so lookups need no lock; touched lazily */
#define LEAK_STACK_ARENA   (256u << 10) /* stacks are carved from these */
#define LEAK_MARK	   (1ull << 63) /* in live_block.seq: reachable */
#define LEAK_MAX_ROOTS	   1024		/* address ranges scanned as roots */
#define LEAK_TCB_SCAN	   4096		/* bytes scanned from a thread descriptor */

/* ------------------------------------------------------------ types */

/* One unique call stack. Immutable once published, except the totals,
 * which only a report (under report_lock) writes. */
struct leak_stack {
	struct leak_stack *next; /* in its hash bucket */
	struct leak_stack *all;	 /* list of every stack, for reports */
	uint64_t hash;
	uint32_t depth;
	size_t lost_bytes, lost_blocks;
	size_t reach_bytes, reach_blocks;
	void *frames[]; /* return addresses, innermost first */
};

/* A live block. addr 0 marks an empty slot. */
struct live_block {
	uintptr_t addr;
	size_t size; /* as requested */
	struct leak_stack *stack;
	uint64_t seq; /* epoch of the allocation (windows) | LEAK_MARK */
};

struct shard {
	mki_lock_t lock;
	uint32_t count;
	size_t bytes; /* requested bytes of its live blocks */
	size_t mask;  /* capacity - 1; capacity is a power of two, or 0 */
	struct live_block *slots;
} __attribute__((aligned(64)));

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
static struct leak_stack *_Atomic all_stacks;
static _Atomic size_t stack_count;
static mki_lock_t stack_lock = MKI_LOCK_INIT;
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

static uint64_t hash_frames(void *const *frames, unsigned depth)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ depth;
	for (unsigned i = 0; i < depth; i++)
		h = mix64(h ^ (uintptr_t)frames[i]);
	return h ? h : 1;
}

static inline struct shard *shard_of(uintptr_t addr)
{
	return &shards[mix64(addr) >> 58];
}

/* ------------------------------------------------------------ stack table */

static bool same_stack(const struct leak_stack *s, uint64_t hash, void *const *frames,
		       unsigned depth)
{
	return s->hash == hash && s->depth == depth &&
	       !memcmp(s->frames, frames, depth * sizeof(void *));
}

static struct leak_stack *stack_find(uint64_t hash, void *const *frames, unsigned depth)
{
	struct leak_stack *s =
	    atomic_load_explicit(&stack_buckets[hash % LEAK_STACK_BUCKETS], memory_order_acquire);
	for (; s; s = s->next)
		if (same_stack(s, hash, frames, depth))
			return s;
	return NULL;
}

/* Stacks are never freed: they come from 256 KiB arenas, bumped under
 * stack_lock, rather than one metadata allocation (and lock) each. */
static char *stack_arena, *stack_arena_end;

static void *stack_arena_alloc_locked(size_t size)
{
	size = mki_align_up(size, sizeof(void *));
	if ((size_t)(stack_arena_end - stack_arena) < size) {
		stack_arena = mki_meta_alloc(LEAK_STACK_ARENA);
		if (!stack_arena)
			return NULL;
		stack_arena_end = stack_arena + LEAK_STACK_ARENA;
	}
	void *p = stack_arena;
	stack_arena += size;
	return p;
}

static struct leak_stack *stack_insert_locked(uint64_t hash, void *const *frames, unsigned depth)
{
	struct leak_stack *s = stack_arena_alloc_locked(sizeof(*s) + depth * sizeof(void *));
	if (!s)
		return NULL;
	s->hash = hash;
	s->depth = depth;
	memcpy(s->frames, frames, depth * sizeof(void *));
	struct leak_stack *_Atomic *bucket = &stack_buckets[hash % LEAK_STACK_BUCKETS];
	s->next = atomic_load_explicit(bucket, memory_order_relaxed);
	s->all = atomic_load_explicit(&all_stacks, memory_order_relaxed);
	/* release: a lock-free reader that sees s sees its frames */
	atomic_store_explicit(bucket, s, memory_order_release);
	atomic_store_explicit(&all_stacks, s, memory_order_release);
	atomic_fetch_add_explicit(&stack_count, 1, memory_order_relaxed);
	return s;
}

/* The unique copy of this stack; lookups take no lock, inserts do. */
static struct leak_stack *stack_intern(void *const *frames, unsigned depth)
{
	uint64_t hash = hash_frames(frames, depth);
	struct leak_stack *s = stack_find(hash, frames, depth);
	if (mki_likely(s != NULL))
		return s;
	mki_lock(&stack_lock);
	s = stack_find(hash, frames, depth);
	if (!s)
		s = stack_insert_locked(hash, frames, depth);
	mki_unlock(&stack_lock);
	return s;
}

/* ------------------------------------------------------------ stack capture
 * The unwinder costs about 150 ns a frame (DWARF rules looked up and run for
 * each). Programs allocate from a few call sites in loops, so each thread
 * keeps a small cache: the stack found for a given frame address of
 * stack_of_caller, with where each return address of the walk lay and what
 * it was. A hit re-reads those slots; when every one still holds the same
 * return address, the chain of callers is the same one (every slot lies in
 * a live frame above us), and the unwinder is not run. */

struct walk {
	void *frames[LEAK_MAX_FRAMES]; /* kept: the caller's frames */
	unsigned n;
	uintptr_t ip[LEAK_MAX_WALK]; /* every frame walked, libmemkit's included */
	uintptr_t cfa[LEAK_MAX_WALK];
	unsigned nwalk;
	bool in_allocator; /* still in libmemkit's own frames */
	bool truncated;	   /* stopped at the frame limit, not at the outermost frame */
};

struct cached_stack {
	uintptr_t key; /* frame address of stack_of_caller; 0: empty */
	struct leak_stack *stack;
	unsigned nslots;
	uintptr_t slot[LEAK_MAX_WALK]; /* where a return address lay */
	uintptr_t ra[LEAK_MAX_WALK];   /* and which one */
};

struct stack_cache {
	struct cached_stack e[LEAK_CACHE_ENTRIES];
	uintptr_t stack_top; /* highest CFA a full walk reached on this thread */
};

#define CACHE_DEAD ((struct stack_cache *)1) /* the thread is exiting */
static __thread struct stack_cache *tcache __attribute__((tls_model("initial-exec")));
static pthread_key_t tcache_key;
static bool tcache_key_ok;

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

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg)
{
	uintptr_t ip = _Unwind_GetIP(ctx);
	if (!ip)
		return _URC_END_OF_STACK;
	return walk_add(arg, ip, _Unwind_GetCFA(ctx)) ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/* ------------------------------------------------------------ frame sizes
 * The second level: the distance from a frame's stack pointer at a call
 * site to its CFA is fixed for a given return address, unless the function
 * allocates on the stack at run time (alloca, VLAs). Full walks teach that
 * distance per return address (a second, different observation marks the
 * address variable); then a walk needs only loads: cfa += size(ip),
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

static struct frame_rule *rule_slot(uintptr_t ip, bool insert)
{
	for (unsigned i = 0; i < RULE_PROBES; i++) {
		struct frame_rule *r = &rules[(mix64(ip) + i) % RULES];
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

static void rule_learn(uintptr_t ip, int32_t size)
{
	struct frame_rule *r = rule_slot(ip, true);
	if (!r)
		return;
	int32_t old = atomic_load_explicit(&r->size, memory_order_relaxed);
	if (old == size || old == RULE_VARIABLE)
		return;
	atomic_store_explicit(&r->size, old ? RULE_VARIABLE : size, memory_order_relaxed);
}

/* After a full walk that kept the return-address rule (walk_is_cacheable). */
static void learn_frame_sizes(const struct walk *w, struct stack_cache *c)
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
	if (c && w->cfa[w->nwalk - 1] > c->stack_top)
		c->stack_top = w->cfa[w->nwalk - 1];
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
 * frame breaks the rule and is not cached. */
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

static void cache_fill(struct cached_stack *e, uintptr_t key, const struct walk *w,
		       struct leak_stack *st)
{
	e->key = 0;
	if (!walk_is_cacheable(w))
		return;
	e->nslots = w->nwalk - 1;
	for (unsigned i = 0; i < e->nslots; i++) {
		e->slot[i] = w->cfa[i + 1] - sizeof(void *);
		e->ra[i] = w->ip[i + 1];
	}
	e->stack = st;
	e->key = key;
}

static bool cache_hit(const struct cached_stack *e, uintptr_t key)
{
	if (e->key != key)
		return false;
	for (unsigned i = 0; i < e->nslots; i++)
		if (*(const uintptr_t *)e->slot[i] != e->ra[i])
			return false;
	return true;
}

static void tcache_release(void *p)
{
	tcache = CACHE_DEAD;
	mki_meta_free(p, sizeof(struct stack_cache));
}

static struct stack_cache *thread_cache(void)
{
	struct stack_cache *c = tcache;
	if (mki_likely(c != NULL))
		return c == CACHE_DEAD ? NULL : c;
	c = mki_meta_alloc(sizeof(*c));
	if (!c)
		return NULL;
	/* the destructor gives the cache back when the thread exits */
	if (tcache_key_ok)
		pthread_setspecific(tcache_key, c);
	tcache = c;
	return c;
}

/* The interned stack of whoever called the allocator. */
static MKI_NOINLINE struct leak_stack *stack_of_caller(void)
{
	uintptr_t key = (uintptr_t)__builtin_frame_address(0);
	struct stack_cache *c = thread_cache();
	struct cached_stack *e = c ? &c->e[mix64(key) % LEAK_CACHE_ENTRIES] : NULL;
	if (e && cache_hit(e, key))
		return e->stack;
	struct walk w;
	memset(&w, 0, offsetof(struct walk, ip));
	w.nwalk = 0;
	w.in_allocator = true;
#if defined(__x86_64__)
	/* our CFA is the frame pointer + 16; the return address lies below it */
	bool fast =
	    c && fast_walk(&w, (uintptr_t)__builtin_return_address(0), key + 16, c->stack_top);
#else
	bool fast = false;
#endif
	if (!fast) {
		w.n = w.nwalk = 0;
		w.in_allocator = true;
		w.truncated = false;
		_Unwind_Backtrace(walk_frame, &w);
		if (walk_is_cacheable(&w))
			learn_frame_sizes(&w, c);
	}
	struct leak_stack *st = stack_intern(w.frames, w.n);
	if (e && st)
		cache_fill(e, key, &w, st);
	return st;
}

/* ------------------------------------------------------------ live blocks */

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
	else
		sh->bytes -= sh->slots[i].size;
	sh->bytes += nb->size;
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
	sh->bytes = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].addr)
			slot_put_locked(sh, &old[i]);
	mki_meta_free(old, old_cap * sizeof(*old));
	return true;
}

static void live_insert(uintptr_t addr, size_t size, struct leak_stack *stack)
{
	struct live_block nb = {addr, size, stack,
				atomic_load_explicit(&epoch, memory_order_relaxed)};
	struct shard *sh = shard_of(addr);
	mki_lock(&sh->lock);
	/* keep the load under 1/2: linear probing slows down fast above it */
	if (((size_t)sh->count + 1) * 2 > (sh->slots ? sh->mask + 1 : 0) &&
	    !shard_grow_locked(sh)) {
		mki_unlock(&sh->lock);
		atomic_fetch_add_explicit(&untracked, 1, memory_order_relaxed);
		return;
	}
	slot_put_locked(sh, &nb);
	mki_unlock(&sh->lock);
}

/* Remove slot i and shift back the entries of its probe run (no tombstones,
 * so lookups never degrade). */
static void slot_delete_locked(struct shard *sh, size_t i)
{
	size_t j = i;
	sh->bytes -= sh->slots[i].size;
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
	mki_lock(&stack_lock);
}

static void leak_fork_parent(void)
{
	mki_unlock(&stack_lock);
	unlock_all_shards();
	mki_unlock(&report_lock);
}

static void leak_fork_child(void)
{
	mki_lock_reset(&stack_lock);
	for (unsigned i = 0; i < LEAK_SHARDS; i++)
		mki_lock_reset(&shards[i].lock);
	mki_lock_reset(&report_lock);
}

/* pthread_atfork allocates, so it cannot run inside mki_init (which may be
 * inside the first malloc); the first tracked allocation registers it, with
 * the re-entry flag set so that its own allocation is not tracked. */
static void register_fork_handlers_once(void)
{
	if (mki_likely(atomic_load_explicit(&atfork_registered, memory_order_relaxed)))
		return;
	if (atomic_exchange(&atfork_registered, true))
		return;
	pthread_atfork(leak_fork_prepare, leak_fork_parent, leak_fork_child);
}

/* ------------------------------------------------------------ hooks */

static void report_signal_window(void);

void mki_leak_on_alloc(void *p, size_t size)
{
	if (!p || in_tracker)
		return;
	in_tracker = true;
	register_fork_handlers_once();
	struct leak_stack *st = stack_of_caller();
	if (st)
		live_insert((uintptr_t)p, size, st);
	else
		atomic_fetch_add_explicit(&untracked, 1, memory_order_relaxed);
	in_tracker = false;
	if (mki_unlikely(atomic_load_explicit(&window_report_pending, memory_order_relaxed)))
		report_signal_window();
}

void mki_leak_on_free(void *p)
{
	if (!p || in_tracker)
		return;
	/* a signal handler that frees while we hold a shard lock must not
	 * come back for it */
	in_tracker = true;
	live_remove((uintptr_t)p);
	in_tracker = false;
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
	if (!stack_buckets) {
		mki_dprintf(2, "memkit: leak tracking off: no memory for its tables\n");
		return;
	}
	struct own_search s = {(uintptr_t)&mki_leak_init, false};
	dl_iterate_phdr(find_own_object, &s);
	install_window_signal();
	tcache_key_ok = !pthread_key_create(&tcache_key, tcache_release);
	/* MEMKIT_LEAK_FAST=0: always the full unwinder (to compare, or distrust) */
	const char *fast = mki_getenv("MEMKIT_LEAK_FAST");
	if (!fast || *fast != '0')
		rules = mki_meta_alloc(RULES * sizeof(*rules));
	mki_leak_active = true;
}

/* Live requested bytes, for mk_stats_get; declared here until internal.h
 * lists it. Read without the shard locks: a snapshot, as all statistics. */
size_t mki_leak_requested_bytes(void)
{
	size_t sum = 0;
	for (unsigned i = 0; i < LEAK_SHARDS; i++)
		sum += __atomic_load_n(&shards[i].bytes, __ATOMIC_RELAXED);
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
	uintptr_t tcb = find_thread_descriptor(m->lo, m->hi);
	if (tcb)
		add_root(rs, tcb, tcb + LEAK_TCB_SCAN < m->hi ? tcb + LEAK_TCB_SCAN : m->hi);
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

struct marker {
	struct live_block **work;
	size_t top, cap;
	uintptr_t lo, hi; /* every live block lies in [lo, hi) */
};

static struct live_block *live_find_any_locked(uintptr_t addr)
{
	return slot_find_locked(shard_of(addr), addr);
}

static void mark_word(struct marker *mk, uintptr_t w)
{
	if (w < mk->lo || w >= mk->hi)
		return;
	void *start;
	size_t usable;
	if (mki_block_of((void *)w, &start, &usable) == MKI_PTR_INVALID)
		return;
	struct live_block *b = live_find_any_locked((uintptr_t)start);
	if (!b && (uintptr_t)start != w)
		b = live_find_any_locked(w); /* an aligned block handed out inside its slot */
	if (!b || (b->seq & LEAK_MARK))
		return;
	b->seq |= LEAK_MARK;
	if (mk->top < mk->cap)
		mk->work[mk->top++] = b;
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
		struct live_block *b = mk->work[--mk->top];
		mark_range(mk, b->addr, b->addr + b->size);
	}
}

/* Clear marks, find the address range of live blocks; returns the count. */
static size_t prepare_marks_locked(struct marker *mk)
{
	size_t n = 0;
	mk->lo = UINTPTR_MAX;
	mk->hi = 0;
	for (unsigned s = 0; s < LEAK_SHARDS; s++) {
		struct shard *sh = &shards[s];
		for (size_t i = 0; sh->slots && i <= sh->mask; i++) {
			struct live_block *b = &sh->slots[i];
			if (!b->addr)
				continue;
			b->seq &= ~LEAK_MARK;
			n++;
			mk->lo = b->addr < mk->lo ? b->addr : mk->lo;
			mk->hi = b->addr + b->size + 1 > mk->hi ? b->addr + b->size + 1 : mk->hi;
		}
	}
	return n;
}

/* ------------------------------------------------------------ tallying */

struct tally {
	size_t lost_bytes, lost_blocks, reach_bytes, reach_blocks;
	size_t lost_sites, reach_sites;
};

static void reset_stack_totals(void)
{
	for (struct leak_stack *s = atomic_load(&all_stacks); s; s = s->all)
		s->lost_bytes = s->lost_blocks = s->reach_bytes = s->reach_blocks = 0;
}

static void tally_block(struct tally *t, const struct live_block *b)
{
	struct leak_stack *s = b->stack;
	if (b->seq & LEAK_MARK) {
		t->reach_sites += !s->reach_blocks;
		s->reach_bytes += b->size;
		s->reach_blocks++;
		t->reach_bytes += b->size;
		t->reach_blocks++;
	} else {
		t->lost_sites += !s->lost_blocks;
		s->lost_bytes += b->size;
		s->lost_blocks++;
		t->lost_bytes += b->size;
		t->lost_blocks++;
	}
}

static void tally_locked(struct tally *t, uint64_t min_seq)
{
	memset(t, 0, sizeof(*t));
	for (unsigned s = 0; s < LEAK_SHARDS; s++) {
		const struct shard *sh = &shards[s];
		for (size_t i = 0; sh->slots && i <= sh->mask; i++) {
			const struct live_block *b = &sh->slots[i];
			if (b->addr && (b->seq & ~LEAK_MARK) >= min_seq)
				tally_block(t, b);
		}
	}
}

/* ------------------------------------------------------------ sorting */

/* heap sort, largest first by key(): qsort may allocate */
static size_t key_lost(const struct leak_stack *s)
{
	return s->lost_bytes;
}

static size_t key_reach(const struct leak_stack *s)
{
	return s->reach_bytes;
}

typedef size_t (*stack_key_fn)(const struct leak_stack *s);

static void sift_down(struct leak_stack **a, size_t i, size_t n, stack_key_fn key)
{
	for (;;) {
		size_t m = i, l = 2 * i + 1, r = l + 1;
		/* a min-heap, so the sorted array ends up descending */
		if (l < n && key(a[l]) < key(a[m]))
			m = l;
		if (r < n && key(a[r]) < key(a[m]))
			m = r;
		if (m == i)
			return;
		struct leak_stack *t = a[i];
		a[i] = a[m];
		a[m] = t;
		i = m;
	}
}

static void sort_descending(struct leak_stack **a, size_t n, stack_key_fn key)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n, key);
	for (size_t end = n; end-- > 1;) {
		struct leak_stack *t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end, key);
	}
}

/* the stacks with a non-zero key, sorted; *n is the count */
static struct leak_stack **sorted_sites(stack_key_fn key, size_t max, size_t *n)
{
	*n = 0;
	if (!max)
		return NULL;
	struct leak_stack **a = mki_meta_alloc(max * sizeof(struct leak_stack *));
	if (!a)
		return NULL;
	for (struct leak_stack *s = atomic_load(&all_stacks); s && *n < max; s = s->all)
		if (key(s))
			a[(*n)++] = s;
	sort_descending(a, *n, key);
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

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

static void text_site(struct out *o, const struct leak_stack *s, size_t bytes, size_t blocks,
		      const char *what)
{
	out_printf(o, "\n%zu bytes in %zu block%s %s, allocated at:\n", bytes, blocks,
		   plural(blocks), what);
	for (unsigned i = 0; i < s->depth; i++) {
		struct frame_info fi;
		char line[640];
		describe_frame(s->frames[i], &fi);
		format_frame(line, sizeof(line), &fi);
		out_printf(o, "    #%-2u %p %s\n", i, s->frames[i], line);
	}
	if (!s->depth)
		out_str(o, "    (no stack)\n");
}

static void text_report(struct out *o, const struct tally *t, struct leak_stack **lost,
			size_t nlost, struct leak_stack **reach, size_t nreach, bool window)
{
	out_printf(o, "memkit: leak report for pid %d (%s)%s\n", (int)getpid(), main_program_path(),
		   window ? ", blocks allocated in the window" : "");
	for (size_t i = 0; i < nlost; i++)
		text_site(o, lost[i], lost[i]->lost_bytes, lost[i]->lost_blocks, "definitely lost");
	for (size_t i = 0; i < nreach; i++)
		text_site(o, reach[i], reach[i]->reach_bytes, reach[i]->reach_blocks,
			  "still reachable");
	out_str(o, "\nLEAK SUMMARY:\n");
	out_printf(o, "   definitely lost: %zu bytes in %zu block%s from %zu call stack%s\n",
		   t->lost_bytes, t->lost_blocks, plural(t->lost_blocks), t->lost_sites,
		   plural(t->lost_sites));
	out_printf(o, "   still reachable: %zu bytes in %zu block%s from %zu call stack%s\n",
		   t->reach_bytes, t->reach_blocks, plural(t->reach_blocks), t->reach_sites,
		   plural(t->reach_sites));
	size_t nu = atomic_load(&untracked);
	if (nu)
		out_printf(o, "   not tracked (tracker out of memory): %zu block%s\n", nu,
			   plural(nu));
}

/* ------------------------------------------------------------ report JSON */

static void json_frames(struct out *o, const struct leak_stack *s)
{
	char line[640];
	out_str(o, "\"stack\":[");
	for (unsigned i = 0; i < s->depth; i++) {
		struct frame_info fi;
		describe_frame(s->frames[i], &fi);
		format_frame(line, sizeof(line), &fi);
		out_str(o, i ? "," : "");
		out_json_str(o, line);
	}
	out_str(o, "],\"frames\":[");
	for (unsigned i = 0; i < s->depth; i++) {
		struct frame_info fi;
		describe_frame(s->frames[i], &fi);
		out_printf(o, "%s{\"ip\":\"%p\",\"object\":", i ? "," : "", s->frames[i]);
		out_json_str(o, fi.object);
		out_printf(o, ",\"offset\":\"0x%zx\",\"function\":", (size_t)fi.rel);
		if (fi.func)
			out_json_str(o, fi.func);
		else
			out_str(o, "null");
		out_str(o, "}");
	}
	out_str(o, "]");
}

static void json_sites(struct out *o, const char *name, struct leak_stack **a, size_t n, bool lost)
{
	out_printf(o, ",\"%s\":[", name);
	for (size_t i = 0; i < n; i++) {
		size_t bytes = lost ? a[i]->lost_bytes : a[i]->reach_bytes;
		size_t blocks = lost ? a[i]->lost_blocks : a[i]->reach_blocks;
		out_printf(o, "%s{\"bytes\":%zu,\"blocks\":%zu,", i ? "," : "", bytes, blocks);
		json_frames(o, a[i]);
		out_str(o, "}");
	}
	out_str(o, "]");
}

static void json_report(struct out *o, const struct tally *t, struct leak_stack **lost,
			size_t nlost, struct leak_stack **reach, size_t nreach, bool window)
{
	out_printf(o, "{\"pid\":%d,\"exe\":", (int)getpid());
	out_json_str(o, main_program_path());
	out_printf(o,
		   ",\"window\":%s,\"definitely_lost\":{\"bytes\":%zu,\"blocks\":%zu},"
		   "\"still_reachable\":{\"bytes\":%zu,\"blocks\":%zu},\"untracked_blocks\":%zu",
		   window ? "true" : "false", t->lost_bytes, t->lost_blocks, t->reach_bytes,
		   t->reach_blocks, (size_t)atomic_load(&untracked));
	json_sites(o, "leaks", lost, nlost, true);
	json_sites(o, "reachable", reach, nreach, false);
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

static void mark_from_roots(struct marker *mk, uintptr_t stack_from)
{
	struct roots *rs = mki_meta_alloc(sizeof(*rs));
	if (!rs)
		return;
	dl_iterate_phdr(add_object_roots, rs);
	collect_map_roots(rs, stack_from);
	lock_all_shards();
	size_t live = prepare_marks_locked(mk);
	mk->cap = live;
	mk->work = live ? mki_meta_alloc(live * sizeof(struct live_block *)) : NULL;
	for (unsigned i = 0; mk->work && i < rs->n; i++) {
		mark_range(mk, rs->r[i].lo, rs->r[i].hi);
		mark_transitively(mk);
	}
	mki_meta_free(rs, sizeof(*rs));
	/* the shards stay locked: the caller tallies, then unlocks */
}

static long write_report(int fd, enum mk_format format, uint64_t min_seq, bool window,
			 uintptr_t stack_from)
{
	struct marker mk = {0};
	struct tally t;
	mark_from_roots(&mk, stack_from);
	reset_stack_totals();
	tally_locked(&t, min_seq);
	unlock_all_shards();
	mki_meta_free(mk.work, mk.cap * sizeof(struct live_block *));

	size_t nstacks = atomic_load(&stack_count), nlost, nreach;
	struct leak_stack **lost = sorted_sites(key_lost, nstacks, &nlost);
	struct leak_stack **reach = sorted_sites(key_reach, nstacks, &nreach);
	struct out *o = mki_meta_alloc(sizeof(*o));
	if (!o) {
		errno = ENOMEM;
		return -1;
	}
	o->fd = fd;
	if (format == MK_FORMAT_JSON)
		json_report(o, &t, lost, nlost, reach, nreach, window);
	else
		text_report(o, &t, lost, nlost, reach, nreach, window);
	out_flush(o);
	int err = o->err;
	mki_meta_free(o, sizeof(*o));
	mki_meta_free(lost, nstacks * sizeof(struct leak_stack *));
	mki_meta_free(reach, nstacks * sizeof(struct leak_stack *));
	if (err) {
		errno = err;
		return -1;
	}
	return (long)t.lost_blocks;
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
