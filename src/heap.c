/* heap.c - one heap per thread: malloc's memory pools.
 *
 * A heap has a bin per size class; a bin is a list of partial slabs, the
 * first of which (direct[cls]) is where malloc pops from, and a list of
 * full slabs. The fast paths (alloc.c) touch only the thread's own heap and
 * slab: no lock, no atomic read-modify-write. This file is the slow path.
 *
 * A thread keeps the blocks of other live heaps that it frees on its own
 * recent list of the class, and its next malloc of the class takes the most
 * recent one before its current slab's: a block just written, still in
 * this core's cache, and a free that neither loads the slab's descriptor
 * (which its owner writes all the time) nor needs an atomic operation
 * (tcmalloc's thread caches work so). The page tells the class and the
 * owning heap (struct mki_page's cls and heap). While other heaps' blocks
 * of a class come in (struct mki_heap's shared: set by each, worn off in
 * two or three periods of 256 allocations of the class without), the
 * thread's own blocks join them too, so that no free touches a
 * descriptor; a thread alone frees straight into its slabs, which keeps
 * them packed. A block on a recent list
 * still counts as used in its slab. Each class's list has two halves, each
 * bounded (mki_class_recent_max): when the newer is full, the older goes
 * back to the slabs in runs of blocks of one slab, another heap's with one
 * CAS a run, this heap's straight onto the slab's free list, and the newer
 * becomes the older; all of it when the thread exits or trims.
 * Slabs with no live owner (abandoned, kept empty) have no class in their
 * pages, and frees into them take the descriptor's path: a dead thread's
 * blocks go straight back, so that its slabs can empty.
 *
 * Blocks go back to the slab's thread_free stack (one CAS, no lock). The
 * owner moves them to its free list when it runs dry. A full
 * slab is off the partial list, so its owner would never look at it again:
 * the owner marks it MKI_TF_FULL, and the first remote free that finds the
 * mark pushes the slab on the owner's reclaim stack (at most once, guarded
 * by in_reclaim). Heaps are never unmapped, only recycled, so a late push on
 * a dead heap's stack is harmless: whoever drains it checks ownership.
 *
 * A thread that exits abandons its slabs: their owner becomes mki_heap_none
 * and they wait on a per-class list for another thread to adopt them; the
 * periodic sweep frees those that became empty, so memory of dead threads
 * is reused or returned, never stranded.
 *
 * Lock order: heaps_lock -> an abandoned list's lock (one at a time) ->
 * a page.c zone's lock -> meta_lock.
 * May call: slab.c, page.c, meta.c, libc.c; pthread_{key_create,setspecific}.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "memkit/internal.h"

__thread struct mki_heap *mki_tls_heap __attribute__((tls_model("initial-exec")));
__thread bool mki_tls_heap_gone __attribute__((tls_model("initial-exec")));
struct mki_slab mki_empty_slab;
struct mki_heap mki_heap_none;

static mki_lock_t heaps_lock = MKI_LOCK_INIT;
static struct mki_heap *all_heaps;
static size_t nr_heaps_live, nr_heaps_abandoned;

/* A dead thread's slabs with live blocks, per class, each list with its
 * own lock: with one lock for all, 16 threads coming and going on 16 cores
 * (wl-threads) waited on it for a third of its two million acquisitions. */
static struct abandoned_list {
	mki_lock_t lock;
	struct mki_slab *head;
	_Atomic uint32_t n; /* slabs on it, for a peek without the lock */
} __attribute__((aligned(64))) abandoned[MKI_CLASSES_MAX];
static _Atomic size_t class_slabs[MKI_CLASSES_MAX];
static _Atomic uint64_t heapless_frees[MKI_CLASSES_MAX];

static pthread_key_t heap_key;
static bool heap_key_ready;

/* ------------------------------------------------------------ bin lists */

static void list_push(struct mki_slab **head, struct mki_slab *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

/* after the head: a slab coming back to the partial list must not take
 * the place of the one malloc is using */
static void list_push_second(struct mki_slab **head, struct mki_slab *s)
{
	if (!*head) {
		list_push(head, s);
		return;
	}
	struct mki_slab *h = *head;
	s->prev = h;
	s->next = h->next;
	if (h->next)
		h->next->prev = s;
	h->next = s;
}

static void list_del(struct mki_slab **head, struct mki_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static void update_direct(struct mki_heap *h, unsigned cls)
{
	struct mki_slab *s = h->bins[cls].partial;
	h->direct[cls] = s ? s : &mki_empty_slab;
}

static void slab_retire(struct mki_heap *h, struct mki_slab *s)
{
	list_del(&h->bins[s->cls].partial, s);
	update_direct(h, s->cls);
	atomic_fetch_sub_explicit(&class_slabs[s->cls], 1, memory_order_relaxed);
	mki_slab_put_empty(s);
}

static void slab_to_full(struct mki_heap *h, struct mki_slab *s)
{
	struct mki_bin *bin = &h->bins[s->cls];
	list_del(&bin->partial, s);
	list_push(&bin->full, s);
	s->state = MKI_SLAB_FULL;
	s->used += MKI_USED_FULL;
	update_direct(h, s->cls);
}

static void slab_to_partial(struct mki_heap *h, struct mki_slab *s)
{
	struct mki_bin *bin = &h->bins[s->cls];
	list_del(&bin->full, s);
	list_push_second(&bin->partial, s);
	s->state = MKI_SLAB_PARTIAL;
	s->used -= MKI_USED_FULL;
	update_direct(h, s->cls);
}

/* ------------------------------------------------------------ remote frees */

static void notify_owner(struct mki_slab *s)
{
	struct mki_heap *h = atomic_load_explicit(&s->owner, memory_order_acquire);
	if (h == &mki_heap_none)
		return;
	if (atomic_exchange_explicit(&s->in_reclaim, 1, memory_order_acq_rel))
		return;
	struct mki_slab *old = atomic_load_explicit(&h->reclaim, memory_order_relaxed);
	do
		s->reclaim_next = old;
	while (!atomic_compare_exchange_weak_explicit(&h->reclaim, &old, s, memory_order_release,
						      memory_order_relaxed));
}

/* n blocks of s, linked from first to last, onto its thread_free stack */
static void push_remote(struct mki_slab *s, struct mki_block *first, struct mki_block *last,
			uint32_t n)
{
	uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
	uintptr_t next;
	do {
		mki_block_set_next(last, mki_tf_list(old));
		next =
		    (uintptr_t)first | ((uintptr_t)(mki_tf_count(old) + n) << MKI_TF_COUNT_SHIFT);
	} while (!atomic_compare_exchange_weak_explicit(
	    &s->thread_free, &old, next, memory_order_release, memory_order_relaxed));
	if (old & MKI_TF_FULL)
		notify_owner(s);
}

void mki_heap_count_heapless_free(unsigned cls)
{
	atomic_fetch_add_explicit(&heapless_frees[cls], 1, memory_order_relaxed);
}

void mki_heap_free_remote(struct mki_slab *s, void *p)
{
	struct mki_block *b = p;
	b->tag = mki_free_tag(b);
	push_remote(s, b, b, 1);
}

static struct mki_slab *slab_of_block(const struct mki_block *b)
{
	return mki_page_desc(mki_chunk_of(b), b)->slab;
}

/* n blocks of s, linked from first to last, back from h's recent list */
static void give_back_run(struct mki_heap *h, struct mki_slab *s, struct mki_block *first,
			  struct mki_block *last, uint32_t n)
{
	if (atomic_load_explicit(&s->owner, memory_order_relaxed) != h) {
		push_remote(s, first, last, n);
		return;
	}
	mki_block_set_next(last, s->free);
	s->free = first;
	if (mki_slab_put_back(&s->used, n))
		mki_heap_free_slow(h, s);
}

/* Blocks back to their slabs, in runs of blocks of one slab. Slabs are
 * never deleted while a block of theirs is out (used counts it), so every
 * block on a recent list still has its slab. */
static void give_back_list(struct mki_heap *h, struct mki_block *b)
{
	while (b) {
		struct mki_slab *s = slab_of_block(b);
		struct mki_block *first = b, *last = b;
		uint32_t n = 1;
		for (b = mki_block_next(b); b && mki_slab_contains(s, b); b = mki_block_next(b)) {
			last = b;
			n++;
		}
		give_back_run(h, s, first, last, n);
	}
}

/* Blocks the newer half of a class's recent list takes. A thread that
 * does not allocate from the class (a consumer) keeps them only to give
 * them back in runs, and its list is the part of its producers' slabs
 * that neither can use: an eighth of the bound there (wl-prodcons peak
 * RSS 4.9 -> 4.2 MiB). */
static int32_t recent_room_of(const struct mki_heap *h, unsigned cls)
{
	uint32_t n = mki_class_recent_max[cls];
	if (!(h->alloc_classes & ((uint64_t)1 << cls)))
		n = n / 8 > MKI_RECENT_MIN ? n / 8 : MKI_RECENT_MIN;
	return (int32_t)n;
}

/* One walk per block given back, and the blocks freed last stay at hand
 * (the older half is what a flush of "all but the newest" would have to
 * walk past first). */
void mki_heap_recent_turn(struct mki_heap *h, unsigned cls)
{
	struct mki_block *old = h->older[cls];
	h->older[cls] = h->recent[cls];
	h->recent[cls] = NULL;
	h->recent_room[cls] = recent_room_of(h, cls);
	give_back_list(h, old);
	/* a thread that has not allocated from the class (a consumer) has no
	 * use for the blocks it keeps: they go back too, and no more than a
	 * half's worth keeps its owners' slabs from emptying */
	if (!(h->alloc_classes & ((uint64_t)1 << cls))) {
		old = h->older[cls];
		h->older[cls] = NULL;
		give_back_list(h, old);
	}
}

static void flush_all_recent(struct mki_heap *h)
{
	for (unsigned cls = 0; cls < mki_class_count; cls++) {
		struct mki_block *newer = h->recent[cls], *old = h->older[cls];
		h->recent[cls] = h->older[cls] = NULL;
		h->recent_room[cls] = recent_room_of(h, cls);
		give_back_list(h, newer);
		give_back_list(h, old);
	}
}

static bool list_holds(const struct mki_block *b, const void *p)
{
	for (; b; b = mki_block_next(b))
		if (b == p)
			return true;
	return false;
}

bool mki_heap_recent_holds(const struct mki_heap *h, unsigned cls, const void *p)
{
	return h && (list_holds(h->recent[cls], p) || list_holds(h->older[cls], p));
}

/* A notice can be stale: between the push and this drain the owner may
 * have freed into the slab, used it up and marked it full again. Then
 * nothing was freed since the mark, and the slab stays on the full list. */
static bool slab_still_marked_full(struct mki_slab *s)
{
	return atomic_load_explicit(&s->thread_free, memory_order_acquire) == MKI_TF_FULL;
}

/* Full slabs that got remote frees come back to the partial list. */
static void drain_reclaim(struct mki_heap *h)
{
	if (!atomic_load_explicit(&h->reclaim, memory_order_relaxed))
		return;
	struct mki_slab *s = atomic_exchange_explicit(&h->reclaim, NULL, memory_order_acquire);
	while (s) {
		struct mki_slab *next = s->reclaim_next;
		atomic_store_explicit(&s->in_reclaim, 0, memory_order_release);
		if (atomic_load_explicit(&s->owner, memory_order_relaxed) == h &&
		    s->state == MKI_SLAB_FULL && !slab_still_marked_full(s))
			slab_to_partial(h, s);
		s = next;
	}
}

/* ------------------------------------------------------------ abandonment */

static void abandoned_add_locked(struct abandoned_list *a, struct mki_slab *s)
{
	list_push(&a->head, s);
	atomic_fetch_add_explicit(&a->n, 1, memory_order_relaxed);
}

static void abandoned_del_locked(struct abandoned_list *a, struct mki_slab *s)
{
	list_del(&a->head, s);
	atomic_fetch_sub_explicit(&a->n, 1, memory_order_relaxed);
}

/* A slab of a heap given up: an empty one is put away at once, one with
 * live blocks goes on *chain (linked by next) for the abandoned lists. */
static void abandon_slab(struct mki_slab *s, struct mki_slab **chain)
{
	if (s->state == MKI_SLAB_FULL)
		s->used -= MKI_USED_FULL;
	mki_slab_collect(s);
	if (!s->used) {
		atomic_fetch_sub_explicit(&class_slabs[s->cls], 1, memory_order_relaxed);
		mki_slab_put_empty(s);
		return;
	}
	mki_slab_set_owner(s, &mki_heap_none);
	atomic_fetch_and_explicit(&s->thread_free, ~MKI_TF_FULL, memory_order_relaxed);
	s->state = MKI_SLAB_ABANDONED;
	s->next = *chain;
	*chain = s;
}

static void abandon_list(struct mki_slab *list, struct mki_slab **chain)
{
	while (list) {
		struct mki_slab *next = list->next;
		list->next = list->prev = NULL;
		abandon_slab(list, chain);
		list = next;
	}
}

/* A class's slabs go to its list under one lock, not one lock a slab. */
static void abandon_chain(unsigned cls, struct mki_slab *chain)
{
	if (!chain)
		return;
	struct abandoned_list *a = &abandoned[cls];
	mki_lock(&a->lock);
	while (chain) {
		struct mki_slab *next = chain->next;
		abandoned_add_locked(a, chain);
		chain = next;
	}
	mki_unlock(&a->lock);
}

/* Everything the heap owns goes to the abandoned lists; the heap itself is
 * kept (dead) for the next thread. heaps_lock is held by the caller. */
static void heap_abandon_locked(struct mki_heap *h)
{
	flush_all_recent(h);
	drain_reclaim(h); /* before the walk: it may move slabs between the lists */
	for (unsigned cls = 0; cls < mki_class_count; cls++) {
		struct mki_bin *bin = &h->bins[cls];
		struct mki_slab *chain = NULL;
		abandon_list(bin->partial, &chain);
		abandon_list(bin->full, &chain);
		abandon_chain(cls, chain);
		bin->partial = bin->full = NULL;
		h->direct[cls] = &mki_empty_slab;
	}
	drain_reclaim(h);
	h->dead = true;
	nr_heaps_live--;
	nr_heaps_abandoned++;
}

static void heap_thread_exit(void *arg)
{
	struct mki_heap *h = arg;
	mki_lock(&heaps_lock);
	heap_abandon_locked(h);
	mki_unlock(&heaps_lock);
	if (mki_tls_heap == h) {
		mki_tls_heap = NULL;
		mki_tls_heap_gone = true;
	}
}

/* A dead thread's slab is worth taking over only with a free slot: one
 * whose blocks are all still live (handed to another thread that frees
 * them later, as in wl-threads) would go straight to the new owner's full
 * list, to be abandoned again when that thread exits; 16 threads on 16
 * cores passed such slabs around, one lock each, two million times a run.
 * Under the list's lock, which keeps free and carved still (the sweep and
 * adopters change them only under it). */
#define ADOPT_LOOK 8 /* slabs looked at */
static bool abandoned_has_room(const struct mki_slab *s)
{
	return s->free || s->carved < s->capacity ||
	       (atomic_load_explicit(&s->thread_free, memory_order_relaxed) & ~MKI_TF_FULL);
}

/* Take a slab a dead thread left behind. */
static struct mki_slab *adopt_slab(struct mki_heap *h, unsigned cls)
{
	struct abandoned_list *a = &abandoned[cls];
	if (!atomic_load_explicit(&a->n, memory_order_relaxed))
		return NULL;
	mki_lock(&a->lock);
	struct mki_slab *s = a->head;
	unsigned looked = 1;
	while (s && !abandoned_has_room(s))
		s = looked++ < ADOPT_LOOK ? s->next : NULL;
	if (s)
		abandoned_del_locked(a, s);
	mki_unlock(&a->lock);
	if (!s)
		return NULL;
	mki_slab_set_owner(s, h);
	s->state = MKI_SLAB_PARTIAL;
	mki_slab_collect(s);
	return s;
}

#define DEAD_DRAIN_MS 100
#define COLLECT_MS    10 /* the sweep of abandoned slabs */

/* A remote free that read a slab's owner just before that thread exited
 * can push the slab on the dead heap's reclaim stack after the heap's last
 * drain. The slab keeps its in_reclaim flag then, and whoever adopts it is
 * never told of its remote frees while it is full: its blocks wait until
 * the dead heap is recycled. Dead heaps' stacks are drained here instead:
 * the flag is cleared, and a slab with remote frees waiting is announced to
 * its owner now. heaps_lock keeps the heaps dead meanwhile
 * (no thread takes one over), so no one else drains these stacks. */
static void drain_dead_heaps(bool force)
{
	/* unless forced, at most every DEAD_DRAIN_MS: the walk visits every
	 * heap, and the race it repairs is rare */
	static _Atomic uint64_t last_ms;
	if (!force && !mki_clock_due(&last_ms, DEAD_DRAIN_MS))
		return;
	mki_lock(&heaps_lock);
	for (struct mki_heap *h = all_heaps; h; h = h->next_heap) {
		if (!h->dead || !atomic_load_explicit(&h->reclaim, memory_order_relaxed))
			continue;
		struct mki_slab *s =
		    atomic_exchange_explicit(&h->reclaim, NULL, memory_order_acquire);
		while (s) {
			struct mki_slab *next = s->reclaim_next; /* before the flag frees it */
			atomic_store_explicit(&s->in_reclaim, 0, memory_order_release);
			/* remote frees waiting: the one that found the flag set
			 * took the full mark off and told no one (a needless
			 * notice is ignored by the owner's drain) */
			if (atomic_load_explicit(&s->thread_free, memory_order_acquire) &
			    ~MKI_TF_FULL)
				notify_owner(s);
			s = next;
		}
	}
	mki_unlock(&heaps_lock);
}

/* Abandoned slabs that remote frees emptied go back to the buddy system. */
void mki_heap_collect_abandoned(bool force)
{
	/* The sweep walks every abandoned slab: at most every COLLECT_MS, not
	 * at every thread's 64th slow call (with 16 threads on 16 cores, the
	 * walk held the lock that the others queued on). */
	static _Atomic uint64_t last_collect_ms;
	drain_dead_heaps(force);
	if (!force && !mki_clock_due(&last_collect_ms, COLLECT_MS))
		return;
	struct mki_slab *empty = NULL;
	for (unsigned cls = 0; cls < mki_class_count; cls++) {
		struct abandoned_list *a = &abandoned[cls];
		if (!atomic_load_explicit(&a->n, memory_order_relaxed))
			continue;
		mki_lock(&a->lock);
		struct mki_slab *s = a->head;
		while (s) {
			struct mki_slab *next = s->next;
			mki_slab_collect(s);
			if (!s->used) {
				abandoned_del_locked(a, s);
				list_push(&empty, s);
			}
			s = next;
		}
		mki_unlock(&a->lock);
	}
	while (empty) {
		struct mki_slab *next = empty->next;
		atomic_fetch_sub_explicit(&class_slabs[empty->cls], 1, memory_order_relaxed);
		mki_slab_put_empty(empty);
		empty = next;
	}
	mki_slab_expire_empty(false);
}

/* ------------------------------------------------------------ heap life */

static struct mki_heap *heap_take_locked(void)
{
	for (struct mki_heap *h = all_heaps; h; h = h->next_heap)
		if (h->dead) {
			nr_heaps_abandoned--;
			return h;
		}
	struct mki_heap *h = mki_meta_alloc(sizeof(*h));
	if (!h)
		return NULL;
	h->next_heap = all_heaps;
	all_heaps = h;
	return h;
}

struct mki_heap *mki_heap_get_slow(void)
{
	if (mki_tls_heap)
		return mki_tls_heap;
	mki_init();
	mki_lock(&heaps_lock);
	struct mki_heap *h = heap_take_locked();
	if (h) {
		h->dead = false;
		h->alloc_classes = 0;
		for (unsigned cls = 0; cls < MKI_CLASSES_MAX; cls++) {
			h->direct[cls] = &mki_empty_slab;
			h->recent_room[cls] = recent_room_of(h, cls);
		}
		h->tid = (pid_t)syscall(SYS_gettid);
		nr_heaps_live++;
	}
	mki_unlock(&heaps_lock);
	if (!h)
		return NULL;
	mki_tls_heap = h;
	drain_reclaim(h); /* late pushes meant for its previous thread */
	/* may allocate for keys past the first 32: the heap is already set */
	if (heap_key_ready)
		pthread_setspecific(heap_key, h);
	return h;
}

/* ------------------------------------------------------------ slow paths */

static struct mki_slab *first_usable_partial(struct mki_heap *h, struct mki_bin *bin)
{
	struct mki_slab *s;
	while ((s = bin->partial)) {
		if (s->free || mki_slab_collect(s) || mki_slab_extend(s))
			return s;
		if (mki_slab_try_mark_full(s))
			slab_to_full(h, s);
	}
	return NULL;
}

/* A slab of the class with a free slot, at the head of the partial list:
 * one of ours, else one a dead thread left, else a new one. */
static struct mki_slab *find_slab(struct mki_heap *h, unsigned cls)
{
	struct mki_bin *bin = &h->bins[cls];
	struct mki_slab *s;
	while (!(s = first_usable_partial(h, bin))) {
		s = adopt_slab(h, cls);
		if (!s && (s = mki_slab_reuse(cls, h)) != NULL)
			atomic_fetch_add_explicit(&class_slabs[cls], 1, memory_order_relaxed);
		if (!s) {
			mki_slab_give_back_kept(cls, mki_class_order[cls]);
			s = mki_slab_new(mki_class_size[cls], mki_class_order[cls], (uint8_t)cls,
					 h);
			if (!s)
				return NULL;
			atomic_fetch_add_explicit(&class_slabs[cls], 1, memory_order_relaxed);
		}
		list_push(&bin->partial, s);
	}
	return s;
}

/* The newer half is empty: the older one serves, most recent first too. */
static void *older_pop(struct mki_heap *h, unsigned cls)
{
	struct mki_block *b = h->older[cls];
	h->older[cls] = mki_block_next(b);
	b->tag = 0;
	h->allocs[cls]++;
	return b;
}

void *mki_heap_alloc_slow(struct mki_heap *h, unsigned cls)
{
	if (!h && !(h = mki_heap_get_slow())) {
		errno = ENOMEM;
		return NULL;
	}
	h->alloc_classes |= (uint64_t)1 << cls;
	if (h->older[cls]) /* alloc.c's take_block found the newer half empty */
		return older_pop(h, cls);
	if ((++h->slow_calls & 63) == 0) {
		mki_page_maybe_purge();
		mki_heap_collect_abandoned(false);
	}
	drain_reclaim(h);
	struct mki_slab *s = find_slab(h, cls);
	update_direct(h, cls);
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	struct mki_block *b = s->free;
	s->free = mki_block_next(b);
	s->used++;
	b->tag = 0;
	h->allocs[cls]++;
	return b;
}

/* After a local free that emptied the slab or found it full. */
void mki_heap_free_slow(struct mki_heap *h, struct mki_slab *s)
{
	if (s->state == MKI_SLAB_FULL) {
		atomic_fetch_and_explicit(&s->thread_free, ~MKI_TF_FULL, memory_order_relaxed);
		slab_to_partial(h, s);
	}
	if (!s->used && h->bins[s->cls].partial != s)
		slab_retire(h, s);
}

/* ------------------------------------------------------------ set-up, stats */

void mki_heap_init(void)
{
	if (!pthread_key_create(&heap_key, heap_thread_exit))
		heap_key_ready = true;
	if (mki_tls_heap)
		pthread_setspecific(heap_key, mki_tls_heap);
}

void mki_heap_stats(struct mk_stats *st)
{
	uint64_t allocs[MKI_CLASSES_MAX] = {0}, frees[MKI_CLASSES_MAX] = {0};
	mki_lock(&heaps_lock);
	for (struct mki_heap *h = all_heaps; h; h = h->next_heap)
		for (unsigned c = 0; c < mki_class_count; c++) {
			allocs[c] += h->allocs[c] + h->tick[c];
			frees[c] += h->frees[c];
		}
	st->threads += nr_heaps_live;
	st->heaps_abandoned += nr_heaps_abandoned;
	mki_unlock(&heaps_lock);
	for (unsigned c = 0; c < mki_class_count; c++)
		frees[c] += atomic_load_explicit(&heapless_frees[c], memory_order_relaxed);
	for (unsigned c = 0; c < mki_class_count && c < MK_STATS_MAX_CLASSES; c++) {
		struct mk_class_stats *cs = &st->classes[c];
		size_t live = allocs[c] > frees[c] ? (size_t)(allocs[c] - frees[c]) : 0;
		size_t slabs = atomic_load_explicit(&class_slabs[c], memory_order_relaxed);
		cs->block_size = mki_class_size[c];
		cs->live_blocks += live;
		cs->slabs += slabs;
		cs->slab_bytes += slabs << (mki_class_order[c] + MKI_PAGE_SHIFT);
		cs->allocs += allocs[c];
		cs->frees += frees[c];
		st->allocated_bytes += live * mki_class_size[c];
	}
}

/* ------------------------------------------------------------ fork */

void mki_heap_fork_prepare(void)
{
	mki_lock_before_fork(&heaps_lock);
	for (unsigned cls = 0; cls < MKI_CLASSES_MAX; cls++)
		mki_lock_before_fork(&abandoned[cls].lock);
}

void mki_heap_fork_parent(void)
{
	for (unsigned cls = MKI_CLASSES_MAX; cls-- > 0;)
		mki_unlock_after_fork(&abandoned[cls].lock);
	mki_unlock_after_fork(&heaps_lock);
}

/* In the child only this thread exists. The other threads' heaps may have
 * been caught halfway through a list update (their fast paths take no
 * lock), so they are left alone rather than walked: their memory is lost to
 * the child, which stays correct. */
void mki_heap_fork_child(void)
{
	for (unsigned cls = 0; cls < MKI_CLASSES_MAX; cls++)
		mki_lock_reset(&abandoned[cls].lock);
	mki_lock_reset(&heaps_lock);
	if (mki_tls_heap)
		mki_tls_heap->tid = (pid_t)syscall(SYS_gettid);
}

/* malloc_trim: this thread's own empty current slabs go back too. */
void mki_heap_trim_self(void)
{
	struct mki_heap *h = mki_tls_heap;
	if (!h)
		return;
	flush_all_recent(h);
	drain_reclaim(h);
	for (unsigned cls = 0; cls < mki_class_count; cls++) {
		struct mki_slab *s = h->bins[cls].partial;
		while (s) {
			struct mki_slab *next = s->next;
			mki_slab_collect(s);
			if (!s->used)
				slab_retire(h, s);
			s = next;
		}
	}
}
