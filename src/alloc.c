/* alloc.c - the mk_* entry points: route each request to its layer.
 *
 *   size <= MKI_SLAB_MAX (32 KiB)     a slot in a slab of the thread's heap
 *   up to the mmap threshold          a run of whole pages from the buddy system
 *   at or above the threshold         a mapping of its own (large.c)
 *
 * The fast paths are here, inline: malloc pops the first free slot of the
 * thread's current slab for the size class; free pushes it back when the
 * slab is the thread's own. Both are a handful of loads and stores, with no
 * lock and no atomic read-modify-write. free finds what a pointer is in
 * O(1) and checks it: the chunk is the one the thread freed into last, or a
 * radix map says whether it is ours; the page descriptor says what the page
 * holds, a multiplication whether the pointer starts a slot, and a tag in a
 * freed slot catches the common double free.
 *
 * May call: heap.c, slab.c, page.c, large.c, leak.c, options.c, libc.c.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "memkit/internal.h"

_Atomic bool mki_initialized;

/* ------------------------------------------------------------ set-up */

static void fork_prepare(void)
{
	mki_heap_fork_prepare();
	mki_large_fork_prepare();
	mki_slab_fork_prepare();
	mki_page_fork_prepare();
	mki_meta_fork_prepare();
}

static void fork_parent(void)
{
	mki_meta_fork_parent();
	mki_page_fork_parent();
	mki_slab_fork_parent();
	mki_large_fork_parent();
	mki_heap_fork_parent();
}

static void fork_child(void)
{
	mki_lock_fork_child_self();
	mki_meta_fork_child();
	mki_page_fork_child();
	mki_slab_fork_child();
	mki_large_fork_child();
	mki_heap_fork_child(); /* last: it frees slabs into the page layer */
}

static uintptr_t random_key(void)
{
	const void *at_random = (const void *)getauxval(AT_RANDOM);
	uint64_t r[2] = {0, 0};
	if (at_random)
		memcpy(r, at_random, sizeof(r)); /* 16 random bytes, unaligned */
	uintptr_t k = (uintptr_t)(r[0] ^ (r[1] << 1));
	return k ^ (uintptr_t)&k ^ (uintptr_t)mki_clock_ms() ^ 0x5bd1e9955bd1e995ull;
}

/* Idempotent and safe to re-enter: pthread_atfork or pthread_key_create
 * may call malloc, which then finds the size classes ready. */
static void set_slab_fast_max(void);

void mki_init(void)
{
	static mki_lock_t init_lock = MKI_LOCK_INIT;
	static __thread bool in_init;
	if (mki_likely(atomic_load_explicit(&mki_initialized, memory_order_acquire)) || in_init)
		return;
	in_init = true;
	mki_lock(&init_lock);
	if (!atomic_load_explicit(&mki_initialized, memory_order_relaxed)) {
		mki_options_init();
		mki_sizeclass_init();
		set_slab_fast_max();
		mki_free_key = random_key();
		mki_heap_init();
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		if (mki_opt.leak) {
			mki_leak_init();
			set_slab_fast_max(); /* no fast path while tracking */
		}
		if (mki_opt.verbose)
			mki_dprintf(2, "memkit: libmemkit %d.%d.%d active in pid %d\n",
				    MK_VERSION_MAJOR, MK_VERSION_MINOR, MK_VERSION_PATCH,
				    (int)getpid());
		atomic_store_explicit(&mki_initialized, true, memory_order_release);
	}
	mki_unlock(&init_lock);
	in_init = false;
}

__attribute__((constructor)) static void memkit_constructor(void)
{
	mki_init();
	mki_leak_load_unwinder();
}

/* ------------------------------------------------------------ allocation */

/* Now and then (every 256 allocations of a class): whether other heaps'
 * blocks of the class still come in (heap.c's recent lists); whether free
 * memory has waited long enough to go back (buddy pages, kept empty
 * slabs). */
static MKI_NOINLINE void give_back_idle(struct mki_heap *h, unsigned cls)
{
	h->allocs[cls] += 256; /* the tick wrapped */
	if (h->shared[cls])
		h->shared[cls]--;
	mki_page_maybe_purge();
	mki_slab_expire_empty(false);
}

/* The block this thread freed last of the class (heap.c's recent lists),
 * likely still in this core's cache; else one of the current slab's; NULL
 * when both are out. */
static inline struct mki_block *take_block(struct mki_heap *h, unsigned cls)
{
	struct mki_block *b = h->recent[cls];
	if (mki_unlikely(b != NULL)) { /* (laid out apart: single threads have none) */
		h->recent[cls] = mki_block_next(b);
		h->recent_room[cls]++;
		b->tag = 0;
		return b;
	}
	struct mki_slab *s = h->direct[cls];
	b = s->free;
	if (mki_unlikely(b == NULL))
		return NULL;
	s->free = mki_block_next(b);
	s->used++;
	b->tag = 0;
	return b;
}

static inline void *slab_pop(struct mki_heap *h, unsigned cls)
{
	struct mki_block *b = take_block(h, cls);
	if (mki_unlikely(!b))
		return mki_heap_alloc_slow(h, cls);
	if (mki_unlikely(!++h->tick[cls]))
		give_back_idle(h, cls);
	return b;
}

/* Before the first heap exists the class table may not be built yet. */
static MKI_NOINLINE void *alloc_first(size_t size)
{
	struct mki_heap *h = mki_heap_get_slow();
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	return slab_pop(h, mki_class_of(size));
}

static inline void *alloc_class(size_t size, unsigned cls)
{
	struct mki_heap *h = mki_tls_heap;
	if (mki_unlikely(!h))
		return alloc_first(size);
	return slab_pop(h, cls);
}

/* The first class at or above size whose slots are multiples of align:
 * slabs start on a page, so such slots are all aligned. Powers of two are
 * classes, so one is always found by the next power of two. */
static unsigned class_aligned(size_t size, size_t align)
{
	unsigned c = mki_class_of(size < align ? align : size);
	while (mki_class_size[c] % align)
		c++;
	return c;
}

static unsigned order_of_align(size_t align)
{
	unsigned k = 0;
	while (((size_t)MKI_PAGE_SIZE << k) < align)
		k++;
	return k;
}

/* ------------------------------------------------------------ canaries
 * The secure build (MKI_SECURE) asks for MKI_CANARY more bytes per slab
 * block and stores the requested size in the slot's last 4 bytes, with the
 * bytes between the block and that size filled with a canary derived from
 * the process key and the address. free checks them: a write of even one
 * byte past the block is reported. The default build compiles all of this
 * away. */
#ifdef MKI_SECURE
#define MKI_CANARY 5

static unsigned char canary_byte(const void *slot)
{
	return (unsigned char)(((mki_free_key ^ (uintptr_t)slot) >> 8) | 1);
}

static inline void *canary_arm(void *p, size_t size, size_t slot)
{
	if (!p)
		return p;
	uint32_t n = (uint32_t)size;
	memcpy((char *)p + slot - 4, &n, 4);
	memset((char *)p + size, canary_byte(p), slot - 4 - size);
	return p;
}

static uint32_t canary_size(const struct mki_slab *s, const void *p)
{
	uint32_t n;
	memcpy(&n, (const char *)p + s->size - 4, 4);
	return n;
}

static MKI_NOINLINE void canary_check(const struct mki_slab *s, const void *p)
{
	uint32_t n = canary_size(s, p);
	const unsigned char *c = p, want = canary_byte(p);
	if (n > s->size - MKI_CANARY)
		mki_fatal("heap overflow: the size word of block %p was overwritten", p);
	for (size_t i = n; i < s->size - 4; i++)
		if (c[i] != want)
			mki_fatal("heap overflow: %zu bytes past the %u-byte block %p were written",
				  i - n + 1, n, p);
}
#else
#define MKI_CANARY 0
static inline void *canary_arm(void *p, size_t size, size_t slot)
{
	(void)size, (void)slot;
	return p;
}
#endif

/* A block that realloc moves to grow, and is past a page, goes to a page
 * run rather than a slab: it grows in place into the pages after it, as
 * in glibc's heap, where through the size classes it would be copied at
 * every one and leave a block resident in each class's slab (wl-realloc,
 * one thread: peak RSS 2.8 -> 2.5 MiB, glibc 2.5; CPU -4 %). Not in the
 * secure build: runs have no canary after the block. */
#ifndef MKI_SECURE
#define GROWS_IN_RUNS_FROM MKI_PAGE_SIZE
#else
#define GROWS_IN_RUNS_FROM MKI_SLAB_MAX
#endif

/* Everything but the small fast path: any size, any power-of-two align. */
static void *alloc_any(size_t size, size_t align, unsigned how)
{
	bool zero = how & MKI_ALLOC_ZERO;
	void *p;
	bool clean = false;
	mki_init();
	if (size >= mki_opt.mmap_threshold || align > MKI_CHUNK_SIZE) {
		if (size > PTRDIFF_MAX) {
			errno = ENOMEM;
			return NULL;
		}
		return mki_large_alloc(size ? size : 1, align, how);
	}
	size_t need = size + MKI_CANARY;
	if (need <= MKI_SLAB_MAX && align <= MKI_PAGE_SIZE &&
	    !((how & MKI_ALLOC_GROWS) && size > GROWS_IN_RUNS_FROM)) {
		unsigned cls = align <= MKI_ALIGN ? mki_class_of(need) : class_aligned(need, align);
		if (mki_class_size[cls] <= MKI_SLAB_MAX) {
			p = alloc_class(need, cls);
			if (p && zero)
				memset(p, 0, size);
			return canary_arm(p, size, mki_class_size[cls]);
		}
	}
	size_t npages = mki_align_up(size ? size : 1, MKI_PAGE_SIZE) >> MKI_PAGE_SHIFT;
	if (npages > MKI_CHUNK_PAGES)
		return mki_large_alloc(size, align, how);
	p = mki_run_alloc(npages, order_of_align(align), &clean);
	if (p && zero && !clean)
		memset(p, 0, size);
	return p;
}

/* Out of memory (address space under RLIMIT_AS, or the kernel's): give
 * back what the caches hold and try once more, so that memory the program
 * freed is memory it can have again. */
static MKI_NOINLINE void *alloc_generic(size_t size, size_t align, unsigned how)
{
	void *p = alloc_any(size, align, how);
	if (mki_unlikely(!p) && errno == ENOMEM && mki_trim())
		p = alloc_any(size, align, how);
	if (!p)
		errno = ENOMEM;
	return p;
}

/* A macro: the caller's frame is the entry point's own, not an inline
 * helper's. */
#define leak_note_alloc(p, size)                                                            \
	do {                                                                                \
		if (mki_unlikely(mki_leak_active) && (p))                                   \
			mki_leak_on_alloc_from(p, size, MKI_CALLER_IP(), MKI_CALLER_CFA()); \
	} while (0)

/* The largest request malloc's fast path serves from a slab: below the mmap
 * threshold, which mallopt may lower; until mki_init has read the options,
 * what lies below any threshold they may set (a page at least). */
static size_t slab_fast_max = MKI_PAGE_SIZE - 1 - MKI_CANARY;
/* What mki_malloc's fast path takes: sizes below this; 0 while leak
 * tracking is on (every allocation then records its stack), so that the
 * fast path tests one bound, not a bound and a flag. */
static size_t fast_path_limit = MKI_PAGE_SIZE - MKI_CANARY;

static void set_slab_fast_max(void)
{
	size_t below = mki_opt.mmap_threshold - 1;
	slab_fast_max = MKI_SLAB_MAX - MKI_CANARY < below ? MKI_SLAB_MAX - MKI_CANARY : below;
	fast_path_limit = mki_leak_active ? 0 : slab_fast_max + 1;
}

static MKI_NOINLINE void *malloc_slow(size_t size)
{
	void *p = NULL;
	if (mki_likely(size <= slab_fast_max)) {
		size_t need = size + MKI_CANARY;
		unsigned cls = mki_class_of(need);
		p = canary_arm(alloc_class(need, cls), size, mki_class_size[cls]);
	}
	if (mki_unlikely(!p))
		p = alloc_generic(size, MKI_ALIGN, 0);
	/* mki_malloc jumps here, so our return address is the program's call
	 * and our CFA its frame's: the tracker starts there instead of walking
	 * out of its own frames and ours */
	leak_note_alloc(p, size);
	return p;
}

#ifndef MKI_SECURE
static MKI_NOINLINE void *purge_then(struct mki_heap *h, unsigned cls, void *p)
{
	give_back_idle(h, cls);
	return p;
}
#endif

/* The common case inline, everything else (first call, empty slab, leak
 * tracking, canaries, larger sizes) in malloc_slow, reached by a tail call:
 * the fast path saves no register and has no stack frame. */
void *mki_malloc(size_t size)
{
#ifndef MKI_SECURE
	if (mki_likely(size < fast_path_limit)) {
		unsigned cls = mki_class_of(size);
		struct mki_heap *h = mki_tls_heap;
		if (mki_likely(h != NULL)) {
			struct mki_block *b = take_block(h, cls);
			if (mki_likely(b != NULL)) {
				/* as slab_pop: now and then, see whether memory waits to go back */
				if (mki_unlikely(!++h->tick[cls]))
					return purge_then(h, cls, b);
				return b;
			}
		}
	}
#endif
	return malloc_slow(size);
}

void *mki_calloc(size_t count, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(count, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = alloc_generic(bytes, MKI_ALIGN, MKI_ALLOC_ZERO);
	leak_note_alloc(p, bytes);
	return p;
}

void *mki_aligned(size_t align, size_t size)
{
	void *p = alloc_generic(size, align, 0);
	leak_note_alloc(p, size);
	return p;
}

/* ------------------------------------------------------------ free */

static bool block_is_free(struct mki_slab *s, const void *p)
{
	return mki_slab_holds_free(s, p) || mki_heap_recent_holds(mki_tls_heap, s->cls, p);
}

/* The tag is keyed by a per-process secret and the block's own address, and
 * malloc clears it: live data holds it only if the block was freed. The
 * lists are walked for the message alone; a block on another thread's
 * recent list cannot be looked for, and a free must not go on either way. */
static MKI_COLD MKI_NOIPA __attribute__((unused)) void double_free_abort(struct mki_slab *s,
									 void *p)
{
	if (block_is_free(s, p))
		mki_fatal("double free of %p", p);
	mki_fatal("double free of %p (freed by another thread, not yet reused)", p);
}

/* A freed block, kept on this thread's recent list for its next malloc of
 * the class (heap.c). */
static inline void recent_push(struct mki_heap *h, unsigned cls, struct mki_block *b, uintptr_t tag)
{
	b->tag = tag;
	mki_block_set_next(b, h->recent[cls]);
	h->recent[cls] = b;
	h->frees[cls]++;
	if (mki_unlikely(--h->recent_room[cls] < 0))
		mki_heap_recent_turn(h, cls);
}

static MKI_COLD void bad_pointer(const char *what, const void *p, struct mki_page *pg)
{
	void *large = pg ? NULL : mki_large_containing(p);
	if (large)
		mki_fatal("%s of interior pointer %p (block starts at %p)", what, p, large);
	if (pg && (pg->kind == MKI_PAGE_FREE || pg->kind == MKI_PAGE_NONE))
		mki_fatal("%s of invalid pointer %p (in free pages: freed twice?)", what, p);
	mki_fatal("%s of invalid pointer %p", what, p);
}

static MKI_COLD MKI_NOIPA void bad_slab_pointer(const char *what, struct mki_slab *s, const void *p)
{
	if ((uintptr_t)p & (MKI_ALIGN - 1))
		mki_fatal("%s of invalid pointer %p (misaligned: no block starts there)", what, p);
	if (s->cache)
		mki_fatal("%s of invalid pointer %p (an object of cache '%s': use mk_cache_free)",
			  what, p, mki_cache_name(s->cache));
	if (mki_slab_contains(s, p))
		mki_fatal("%s of interior pointer %p (block starts at %p)", what, p,
			  mki_slab_slot_of(s, p));
	mki_fatal("%s of invalid pointer %p", what, p);
}

/* A thread that only frees (a consumer) gets a heap too, once it has freed
 * CONSUMER_FREES of other heaps' blocks: its frees then go back in runs from
 * its recent lists, one atomic push a run, and are counted in its own heap.
 * Without one, every free was an atomic push and an atomic add on a count
 * that all such threads shared (16 threads of wl-prodcons on 16 cores took
 * 2.5x mimalloc's time). Not at the first such free: glibc frees a detached
 * thread's TLS (which its creator allocated) after the key destructors have
 * run, and a heap made then would never be given up. */
#define CONSUMER_FREES 64
static __thread uint32_t heapless_frees_seen __attribute__((tls_model("initial-exec")));

static struct mki_heap *consumer_heap(void)
{
	if (mki_tls_heap_gone || ++heapless_frees_seen < CONSUMER_FREES)
		return NULL;
	return mki_heap_get_slow();
}

/* A free of a block of another heap's slab (or of an object cache's). */
static MKI_NOINLINE void free_other(struct mki_heap *h, struct mki_heap *owner, struct mki_slab *s,
				    struct mki_block *b, uintptr_t tag)
{
	if (mki_unlikely(s->cache != NULL))
		bad_slab_pointer("free", s, b);
	/* a dead thread's block goes straight back: its slab may then empty
	 * and return to the buddy system, instead of being pinned by a thread
	 * that may never allocate from this class again */
	if (mki_likely(owner != &mki_heap_none)) {
		if (mki_unlikely(h == NULL))
			h = consumer_heap();
		if (mki_likely(h != NULL)) {
			recent_push(h, s->cls, b, tag);
			return;
		}
	}
	if (h)
		h->frees[s->cls]++;
	else
		mki_heap_count_heapless_free(s->cls);
	mki_heap_free_remote(s, b);
}

/* free's checks of p against its slab's descriptor; false when p failed
 * them (the abort paths are reached by a jump: they need no frame here) */
static inline __attribute__((always_inline)) bool
slab_checks_pass(struct mki_slab *s, struct mki_block *b, uintptr_t tag)
{
#ifndef MKI_NO_FREE_CHECKS /* a build for `make bench` only, to price the checks */
	if (mki_unlikely(!mki_slab_holds_slot(s, b))) {
		bad_slab_pointer("free", s, b);
		return false;
	}
	if (mki_unlikely(b->tag == tag)) {
		double_free_abort(s, b);
		return false;
	}
#else
	(void)s, (void)b, (void)tag;
#endif
#ifdef MKI_SECURE
	canary_check(s, b);
#endif
	return true;
}

/* A block of one of h's own slabs (of class cls): onto the slab's free list. */
static inline __attribute__((always_inline)) void
own_free(struct mki_heap *h, struct mki_slab *s, unsigned cls, struct mki_block *b, uintptr_t tag)
{
	mki_block_set_next(b, s->free);
	b->tag = tag;
	s->free = b;
	h->frees[cls]++;
	if (mki_unlikely(mki_slab_put_back(&s->used, 1)))
		mki_heap_free_slow(h, s);
}

/* Any slab's block, its owner read from the descriptor. */
static inline __attribute__((always_inline)) void slab_free(struct mki_slab *s, void *p)
{
	struct mki_block *b = p;
	uintptr_t tag = mki_free_tag(b); /* once: the stores below could alias the key */
	if (!slab_checks_pass(s, b, tag))
		return;
	struct mki_heap *h = mki_tls_heap;
	struct mki_heap *owner = atomic_load_explicit(&s->owner, memory_order_relaxed);
	if (mki_likely(owner == h)) {
		own_free(h, s, s->cls, b, tag);
		return;
	}
	free_other(h, owner, s, b, tag);
}

/* Slabs that no live heap owns (abandoned, kept empty, object caches'), and
 * threads without a heap. */
static MKI_NOINLINE void free_by_descriptor(struct mki_slab *s, void *p)
{
	slab_free(s, p);
}

#ifndef MKI_SECURE
/* The pointer failed free_to_recent's checks: which one, told from the
 * slab's descriptor (looked up again, so that the fast path need not keep
 * it at hand). */
static MKI_COLD MKI_NOIPA __attribute__((unused)) void bad_recent_free(void *p)
{
	struct mki_slab *s = mki_page_desc(mki_chunk_of(p), p)->slab;
	if (!mki_slab_holds_slot(s, p))
		bad_slab_pointer("free", s, p);
	double_free_abort(s, p);
}

/* A block of this thread's own slab, as its page says (only the thread
 * itself makes a slab its own or gives it up). */
static inline __attribute__((always_inline)) void free_own(struct mki_heap *h, struct mki_slab *s,
							   unsigned cls, void *p)
{
	struct mki_block *b = p;
	uintptr_t tag = mki_free_tag(b);
	if (slab_checks_pass(s, b, tag))
		own_free(h, s, cls, b, tag);
}

/* A block of another live thread's slab, as its page says: onto this
 * thread's recent list, checked against its class's slot geometry, without
 * a load of the slab's descriptor, which its owner writes all the time.
 * The secure build checks its canaries on the descriptor's path instead. */
static inline __attribute__((always_inline)) void free_to_recent(struct mki_heap *h, unsigned cls,
								 void *p)
{
	struct mki_block *b = p;
	uintptr_t tag = mki_free_tag(b);
#ifndef MKI_NO_FREE_CHECKS
	const struct mki_class_geom *g = &mki_class_geom[cls];
	uint64_t off = (uintptr_t)p & g->mask;
	if (mki_unlikely(!mki_is_multiple(off, g->divides) || off >= g->span)) {
		bad_recent_free(p);
		return;
	}
	if (mki_unlikely(b->tag == tag)) {
		bad_recent_free(p);
		return;
	}
#endif
	recent_push(h, cls, b, tag);
}

/* free_to_recent as a function of its own, reached by a tail call: its
 * registers would otherwise be saved on the path of a thread's own blocks
 * too. p first: free has it in that register already. */
static MKI_NOINLINE void free_shared(void *p, struct mki_heap *h, unsigned cls)
{
	free_to_recent(h, cls, p);
}
#endif

static bool is_run_head(struct mki_chunk *c, struct mki_page *pg, const void *p)
{
	return pg->kind == MKI_PAGE_RUN && pg->head == (uint32_t)(pg - c->pages) &&
	       !((uintptr_t)p & (MKI_PAGE_SIZE - 1));
}

static MKI_NOINLINE void free_not_slab(struct mki_chunk *c, struct mki_page *pg, void *p)
{
	if (is_run_head(c, pg, p)) {
		mki_run_free(p);
		return;
	}
	if (pg->kind == MKI_PAGE_RUN)
		mki_fatal("free of interior pointer %p (block starts at %p)", p,
			  mki_page_addr(c, &c->pages[pg->head]));
	if ((pg->kind == MKI_PAGE_FREE || pg->kind == MKI_PAGE_NONE) &&
	    !((uintptr_t)p & (MKI_PAGE_SIZE - 1)))
		mki_fatal("double free of %p", p);
	bad_pointer("free", p, pg);
}

static MKI_NOINLINE void free_large(void *p)
{
	if (!p)
		return;
	int saved = errno; /* free never changes errno */
	if (!mki_large_free(p)) {
		if (mki_large_was_freed(p))
			mki_fatal("double free of %p", p);
		bad_pointer("free", p, NULL);
	}
	errno = saved;
}

#ifndef MKI_SECURE
/* free_in_chunk's other cases: not a slab's block, a slab no live heap
 * owns, another heap's block of a class not yet shared. */
static MKI_NOINLINE void free_in_chunk_other(struct mki_heap *h, struct mki_chunk *c,
					     struct mki_page *pg, void *p)
{
	if (pg->kind != MKI_PAGE_SLAB) {
		free_not_slab(c, pg, p);
		return;
	}
	unsigned cls = atomic_load_explicit(&pg->cls, memory_order_relaxed);
	if (cls == MKI_CLS_NONE) {
		free_by_descriptor(pg->slab, p);
		return;
	}
	h->shared[cls] = 2;
	free_shared(p, h, cls);
}
#endif

/* A block of chunk c, freed by a thread with heap h. Every path but the
 * slab fast path is a function of its own, reached by a tail call, so that
 * the fast path saves no register. */
static inline __attribute__((always_inline)) void free_in_chunk(struct mki_heap *h,
								struct mki_chunk *c, void *p)
{
	struct mki_page *pg = mki_page_desc(c, p);
#ifndef MKI_SECURE
	/* the page names the heap that owns the slab and its class: only a
	 * slab page of a live heap names a heap (page.c's forget_slab), so a
	 * thread's own blocks need no test of the kind. Such a block goes
	 * back to its slab, unless other heaps' blocks of the class have come
	 * in lately: then it joins them on the recent list, and no descriptor
	 * is touched (in the server pattern the descriptors' lines are what
	 * free costs); a thread alone keeps its slabs packed. */
	struct mki_heap *owner = atomic_load_explicit(&pg->heap, memory_order_relaxed);
	unsigned cls = atomic_load_explicit(&pg->cls, memory_order_relaxed);
	/* tested first: whose block it is may change at every call (a
	 * mispredicted branch per free cost the server pattern 7 %); never
	 * set for MKI_CLS_NONE */
	if (h->shared[cls]) {
		/* pages no slab has used yet say class 0 */
		if (mki_unlikely(pg->kind != MKI_PAGE_SLAB)) {
			free_not_slab(c, pg, p);
			return;
		}
		h->shared[cls] |= (uint8_t)((owner != h) << 1);
		free_shared(p, h, cls);
		return;
	}
	if (mki_likely(owner == h)) {
		free_own(h, pg->slab, cls, p);
		return;
	}
	free_in_chunk_other(h, c, pg, p);
#else
	if (mki_unlikely(pg->kind != MKI_PAGE_SLAB)) {
		free_not_slab(c, pg, p);
		return;
	}
	(void)h;
	slab_free(pg->slab, p);
#endif
}

/* A thread without a heap (it never allocated): by the slab's descriptor. */
static MKI_NOINLINE void free_heapless(struct mki_chunk *c, void *p)
{
	struct mki_page *pg = mki_page_desc(c, p);
	if (pg->kind != MKI_PAGE_SLAB)
		free_not_slab(c, pg, p);
	else
		free_by_descriptor(pg->slab, p);
}

/* A block whose chunk is c (NULL: none of ours), without telling the tracker. */
static inline __attribute__((always_inline)) void free_located(struct mki_chunk *c, void *p)
{
	if (mki_unlikely(c == NULL)) {
		free_large(p);
		return;
	}
	struct mki_heap *h = mki_tls_heap;
	if (mki_unlikely(h == NULL)) {
		free_heapless(c, p);
		return;
	}
	free_in_chunk(h, c, p);
}

static void free_block(void *p)
{
	free_located(mki_chunk_of(p), p);
}

/* The block's chunk looked up once for both. */
static MKI_NOINLINE void free_tracked(void *p)
{
	struct mki_chunk *c = mki_chunk_of(p);
	mki_leak_on_free(c, p);
	free_located(c, p);
}

/* free by a thread without a heap (it never allocated): the radix map says
 * which chunk. */
static MKI_NOINLINE void free_uncached(void *p)
{
	if (mki_unlikely(mki_leak_active)) {
		free_tracked(p);
		return;
	}
	free_block(p);
}

/* free of a block outside the chunk the thread freed into last: the
 * thread's table of chunks, else the radix map (and the table remembers).
 * key was made with an epoch read before the map: a chunk the map still
 * holds then cannot have been unmapped under that epoch (mki_chunk_epoch);
 * one bumped by the tracker's start comes with mki_leak_active set. */
static MKI_NOINLINE void free_other_chunk(void *p, struct mki_heap *h, uintptr_t key)
{
	unsigned i = mki_chunk_slot(p);
	struct mki_chunk *c = h->chunks[i];
	if (mki_unlikely(key != h->chunk_keys[i])) {
		if (mki_unlikely(mki_leak_active)) {
			free_tracked(p);
			return;
		}
		c = mki_chunk_of(p);
		if (mki_unlikely(c == NULL)) {
			free_large(p);
			return;
		}
		h->chunk_keys[i] = key;
		h->chunks[i] = c;
	}
	h->chunk_key = key;
	h->chunk = c;
	free_in_chunk(h, c, p);
}

/* The fast path: a block of the chunk of the thread's last free. free(NULL)
 * misses (no chunk starts at address 0) and free_large takes it: the
 * common case tests one thing less. */
void mki_free(void *p)
{
	struct mki_heap *h = mki_tls_heap;
	if (mki_unlikely(h == NULL)) {
		free_uncached(p);
		return;
	}
	uintptr_t key =
	    mki_chunk_key(p, atomic_load_explicit(&mki_chunk_epoch, memory_order_acquire));
	if (mki_unlikely(key != h->chunk_key)) {
		free_other_chunk(p, h, key);
		return;
	}
	free_in_chunk(h, h->chunk, p);
}

/* ------------------------------------------------------------ what a pointer is */

enum mki_ptr_kind mki_block_of(const void *p, void **start, size_t *usable)
{
	struct mki_chunk *c = mki_chunk_of(p);
	if (c) {
		struct mki_page *pg = mki_page_desc(c, p);
		if (pg->kind == MKI_PAGE_SLAB && pg->slab && !pg->slab->cache) {
			struct mki_slab *s = pg->slab;
			if (!mki_slab_contains(s, p))
				return MKI_PTR_INVALID;
			*start = mki_slab_slot_of(s, p);
			*usable = s->size;
			return MKI_PTR_SLAB;
		}
		if (pg->kind == MKI_PAGE_RUN) {
			struct mki_page *head = &c->pages[pg->head];
			*start = mki_page_addr(c, head);
			*usable = (size_t)head->npages << MKI_PAGE_SHIFT;
			return MKI_PTR_RUN;
		}
		return MKI_PTR_INVALID;
	}
	size_t n = mki_large_usable(p);
	if (!n)
		return MKI_PTR_INVALID;
	*start = (void *)p;
	*usable = n;
	return MKI_PTR_LARGE;
}

/* The usable size of the block that starts at p; fatal for anything else. */
static size_t usable_or_die(const void *p, const char *what, enum mki_ptr_kind *kind)
{
	void *start;
	size_t usable;
	*kind = mki_block_of(p, &start, &usable);
	if (*kind == MKI_PTR_INVALID) {
		struct mki_chunk *c = mki_chunk_of(p);
		if (!c && mki_large_was_freed(p))
			mki_fatal("%s of freed pointer %p", what, p);
		bad_pointer(what, p, c ? mki_page_desc(c, p) : NULL);
	}
	if ((uintptr_t)p & (MKI_ALIGN - 1))
		mki_fatal("%s of invalid pointer %p (misaligned: no block starts there)", what, p);
	if (start != p)
		mki_fatal("%s of interior pointer %p (block starts at %p)", what, p, start);
	if (*kind == MKI_PTR_SLAB && ((const struct mki_block *)p)->tag == mki_free_tag(p)) {
		struct mki_chunk *c = mki_chunk_of(p);
		if (block_is_free(mki_page_desc(c, p)->slab, p))
			mki_fatal("%s of freed pointer %p", what, p);
	}
#ifdef MKI_SECURE
	if (*kind == MKI_PTR_SLAB) /* the size asked for: past it is the canary */
		return canary_size(mki_page_desc(mki_chunk_of(p), p)->slab, p);
#endif
	return usable;
}

size_t mki_usable_size(const void *p)
{
	enum mki_ptr_kind kind;
	if (!p)
		return 0;
	return usable_or_die(p, "malloc_usable_size", &kind);
}

/* ------------------------------------------------------------ realloc */

/* A block moved to a larger size is likely to grow again (MKI_ALLOC_GROWS). */
static void *realloc_move(void *p, size_t old_usable, size_t size)
{
	void *q = alloc_generic(size, MKI_ALIGN, size > old_usable ? MKI_ALLOC_GROWS : 0);
	if (!q)
		return NULL; /* the old block stays as it was */
	memcpy(q, p, old_usable < size ? old_usable : size);
	free_block(p);
	return q;
}

static void *realloc_run(void *p, size_t usable, size_t size)
{
	size_t npages = mki_align_up(size, MKI_PAGE_SIZE) >> MKI_PAGE_SHIFT;
	size_t have = usable >> MKI_PAGE_SHIFT;
	if (size >= mki_opt.mmap_threshold)
		return realloc_move(p, usable, size);
	if (size <= MKI_SLAB_MAX && size < usable / 2) /* shrunk: a slab's block */
		return realloc_move(p, usable, size);
	if (npages <= have) {
		mki_run_shrink(p, npages);
		return p;
	}
	if (mki_run_grow(p, npages))
		return p;
	return realloc_move(p, usable, size);
}

static void *realloc_large(void *p, size_t usable, size_t size)
{
	if (size <= usable && size >= usable / 2)
		return p; /* fits the mapping (page-rounded, or grown ahead) */
	if (size < mki_opt.mmap_threshold / 2)
		return realloc_move(p, usable, size);
	/* mremap refuses guarded mappings, and ranges that span two of the
	 * kernel's mappings (the reuse cache joins neighbours): then copy */
	void *q = mki_large_realloc(p, size);
	if (!q)
		q = realloc_move(p, usable, size);
	return q;
}

/* A buffer grown a few bytes at a time calls realloc again and again on the
 * same block, and its own writes evict the radix map and page descriptors
 * from the cache: the thread remembers the block it last resized in place
 * and the sizes that keep it there, valid while no block of its kind went
 * back (pages to the buddy system, or a large mapping: the block's own
 * slab, run or mapping may have been among them). A slab block's free tag
 * still catches a realloc after free. */
struct realloc_memo {
	uintptr_t addr;			/* ~address: not a pointer to the block for the leak scan */
	size_t lo, hi;			/* sizes in (lo, hi] stay in place */
	const _Atomic uint64_t *gen_of; /* mki_pages_freed_gen or mki_large_gen_of() */
	uint64_t gen;			/* its value when remembered */
	bool slab;
};
static __thread struct realloc_memo realloc_memo __attribute__((tls_model("initial-exec")));

static void realloc_remember(void *p, enum mki_ptr_kind kind, size_t usable)
{
#ifndef MKI_SECURE /* which re-arms the canary on every resize */
	struct realloc_memo *m = &realloc_memo;
	m->gen_of = kind == MKI_PTR_LARGE ? mki_large_gen_of(p) : &mki_pages_freed_gen;
	m->gen = atomic_load_explicit(m->gen_of, memory_order_acquire);
	if (kind == MKI_PTR_RUN) { /* usable was the size before it grew or shrank */
		usable = (size_t)mki_page_desc(mki_chunk_of(p), p)->npages << MKI_PAGE_SHIFT;
		m->lo = usable - MKI_PAGE_SIZE;
		m->hi = usable < mki_opt.mmap_threshold ? usable : mki_opt.mmap_threshold - 1;
	} else {
		if (kind == MKI_PTR_LARGE)
			usable = mki_large_usable(p); /* may have moved or grown ahead */
		m->lo = usable / 2;
		m->hi = usable;
	}
	m->addr = ~(uintptr_t)p;
	m->slab = kind == MKI_PTR_SLAB;
#else
	(void)p, (void)kind, (void)usable;
#endif
}

static MKI_NOINLINE void *realloc_slow(void *p, size_t size)
{
	if (!p)
		return mki_malloc(size);
	if (!size) {
		mki_free(p);
		return NULL;
	}
	enum mki_ptr_kind kind;
	size_t usable = usable_or_die(p, "realloc", &kind);
	bool leak = mki_unlikely(mki_leak_active);
	void *q;
	if (size > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if (leak) /* before p can be freed and handed to another thread */
		mki_leak_on_free(mki_chunk_of(p), p);
	if (kind == MKI_PTR_SLAB && size <= usable && size > usable / 2) {
		q = p; /* fits, and not so much smaller that it should move */
#ifdef MKI_SECURE
		canary_arm(p, size, mki_page_desc(mki_chunk_of(p), p)->slab->size);
#endif
	} else if (kind == MKI_PTR_SLAB)
		q = realloc_move(p, usable, size);
	else if (kind == MKI_PTR_RUN)
		q = realloc_run(p, usable, size);
	else
		q = realloc_large(p, usable, size);
	if (leak) /* mki_realloc jumps here: the program's frame is our caller's */
		mki_leak_on_alloc_from(q ? q : p, q ? size : usable, MKI_CALLER_IP(),
				       MKI_CALLER_CFA());
	if (q == p)
		realloc_remember(p, kind, usable);
	return q;
}

/* The fast path's case with leak tracking on: the entry changes in place. */
static MKI_NOINLINE void *realloc_tracked_in_place(void *p, size_t size)
{
	mki_leak_on_resize(p, size, MKI_CALLER_IP(), MKI_CALLER_CFA());
	return p;
}

/* The block the thread last resized, still fitting: a leaf, as malloc's
 * fast path; everything else in realloc_slow. */
void *mki_realloc(void *p, size_t size)
{
	const struct realloc_memo *m = &realloc_memo;
	if (mki_likely(m->addr == ~(uintptr_t)p && size > m->lo && size <= m->hi &&
		       m->gen == atomic_load_explicit(m->gen_of, memory_order_acquire) &&
		       !(m->slab && ((struct mki_block *)p)->tag == mki_free_tag(p)))) {
		if (mki_unlikely(mki_leak_active))
			return realloc_tracked_in_place(p, size);
		return p;
	}
	return realloc_slow(p, size);
}

/* ------------------------------------------------------------ trim, mallopt */

int mki_trim(void)
{
	mki_init();
	mki_heap_trim_self();
	mki_heap_collect_abandoned(true);
	mki_slab_expire_empty(true);
	size_t bytes = mki_large_purge(true) + mki_page_purge(true);
	return bytes != 0;
}

int mki_mallopt(int param, int value)
{
	mki_init();
	switch (param) {
	case M_MMAP_THRESHOLD:
		if (value < 0)
			return 0;
		mki_opt.mmap_threshold = mki_clamp_threshold((size_t)value);
		set_slab_fast_max();
		return 1;
	case M_TRIM_THRESHOLD:
	case M_TOP_PAD:
	case M_MMAP_MAX:
	case M_CHECK_ACTION:
	case M_PERTURB:
	case M_ARENA_TEST:
	case M_ARENA_MAX:
		return 1; /* accepted: glibc's knobs that have no meaning here */
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ public API */

static bool valid_align(size_t align)
{
	return mki_is_pow2(align);
}

void *mk_malloc(size_t size)
{
	return mki_malloc(size);
}

void *mk_calloc(size_t count, size_t size)
{
	return mki_calloc(count, size);
}

void *mk_realloc(void *ptr, size_t size)
{
	return mki_realloc(ptr, size);
}

void *mk_reallocarray(void *ptr, size_t count, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(count, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return mki_realloc(ptr, bytes);
}

void mk_free(void *ptr)
{
	mki_free(ptr);
}

int mk_posix_memalign(void **out, size_t align, size_t size)
{
	if (!valid_align(align) || align % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = mki_aligned(align, size);
	if (!p) {
		errno = saved;
		return ENOMEM;
	}
	*out = p;
	return 0;
}

void *mk_aligned_alloc(size_t align, size_t size)
{
	if (!valid_align(align)) {
		errno = EINVAL;
		return NULL;
	}
	return mki_aligned(align, size);
}

void *mk_memalign(size_t align, size_t size)
{
	return mk_aligned_alloc(align, size);
}

void *mk_valloc(size_t size)
{
	return mki_aligned(MKI_PAGE_SIZE, size);
}

void *mk_pvalloc(size_t size)
{
	size_t rounded = mki_align_up(size ? size : 1, MKI_PAGE_SIZE);
	if (rounded < size) {
		errno = ENOMEM;
		return NULL;
	}
	return mki_aligned(MKI_PAGE_SIZE, rounded);
}

size_t mk_malloc_usable_size(const void *ptr)
{
	return mki_usable_size(ptr);
}

int mk_malloc_trim(size_t pad)
{
	(void)pad;
	return mki_trim();
}

int mk_mallopt(int param, int value)
{
	return mki_mallopt(param, value);
}

/* The exported malloc and free are the fast paths themselves, not wrappers
 * that jump to them (interpose.c exports the rest of the family). */
#ifndef MEMKIT_NO_OVERRIDE
extern __typeof(mki_malloc) malloc __attribute__((alias("mki_malloc"), visibility("default")));
extern __typeof(mki_free) free __attribute__((alias("mki_free"), visibility("default")));
#endif
