/* slab.c - slabs and the slab object caches built from them.
 *
 * A slab is one buddy block cut into equal slots, as in Bonwick's allocator
 * and the kernel's SLUB: a free slot holds the link to the next free one, so
 * the free list costs no memory. Slots are carved lazily, a page's worth at
 * a time, so a slab of 64 KiB used for three objects touches one page.
 * malloc's size classes are slabs owned by thread heaps (heap.c); an
 * mk_cache owns its slabs itself, under its own lock, in three lists as the
 * kernel keeps them: partial, full and empty.
 *
 * Descriptors live outside the slab (in meta.c memory), so a stray write
 * past an object never lands on the allocator's bookkeeping.
 *
 * Lock order: cache->lock -> a page.c zone's lock.
 * May call: page.c, meta.c, libc.c.
 */
#include <errno.h>
#include <string.h>
#include "memkit/internal.h"

uintptr_t mki_free_key;

/* ------------------------------------------------------------ descriptors
 * Slab descriptors are type-stable, as the kernel's SLAB_TYPESAFE_BY_RCU
 * caches are: once made, a descriptor is only ever a slab descriptor, kept
 * on desc_free when its slab is gone and never returned to meta.c. A remote
 * free may tell an owner about a slab (heap.c's reclaim stacks) at the
 * moment the owner deletes it; the late notice then lands on a descriptor
 * that is dead (owner mki_heap_none) or reused, which the owner checks, never
 * on foreign memory. For the same reason in_reclaim and reclaim_next survive
 * reuse: a descriptor sits on at most one reclaim stack at a time. */

static mki_lock_t desc_lock = MKI_LOCK_INIT;
static struct mki_slab *desc_free;

/* No slot handed out nor carved: the state of a new slab. */
static void slab_reset(struct mki_slab *s)
{
	s->free = NULL;
	s->used = s->carved = 0;
	s->state = MKI_SLAB_PARTIAL;
	s->next = s->prev = NULL;
	atomic_store_explicit(&s->thread_free, 0, memory_order_relaxed);
}

static struct mki_slab *desc_alloc(void)
{
	mki_lock(&desc_lock);
	struct mki_slab *s = desc_free;
	if (s)
		desc_free = s->next;
	mki_unlock(&desc_lock);
	if (!s)
		return mki_meta_alloc(sizeof(*s));
	s->cache = NULL;
	slab_reset(s);
	return s;
}

static void desc_release(struct mki_slab *s)
{
	atomic_store_explicit(&s->owner, &mki_heap_none, memory_order_release);
	s->state = MKI_SLAB_DEAD;
	mki_lock(&desc_lock);
	s->next = desc_free;
	desc_free = s;
	mki_unlock(&desc_lock);
}

struct mki_slab *mki_slab_new(uint32_t size, unsigned order, uint8_t cls, struct mki_heap *owner)
{
	struct mki_slab *s = desc_alloc();
	if (!s)
		return NULL;
	char *base = mki_pages_alloc(order, MKI_PAGE_SLAB, NULL);
	if (!base) {
		desc_release(s);
		errno = ENOMEM;
		return NULL;
	}
	size_t bytes = (size_t)1 << (order + MKI_PAGE_SHIFT);
#ifdef MKI_SECURE
	/* a guard page ends every slab: an overflow off its last slot faults
	 * instead of landing in the next slab */
	if (owner != &mki_heap_none) { /* malloc slabs; caches keep small slabs */
		bytes -= MKI_PAGE_SIZE;
		mki_os_protect(base + bytes, MKI_PAGE_SIZE, false);
	}
#endif
	s->start = base;
	s->size = size;
	s->capacity = (uint32_t)(bytes / size);
	s->span = s->capacity * size;
	s->divides = UINT64_MAX / size + 1;
	s->order = (uint8_t)order;
	s->cls = cls;
	struct mki_chunk *c = mki_chunk_of(base);
	struct mki_page *pg = mki_page_desc(c, base);
	for (size_t i = 0; i < ((size_t)1 << order); i++)
		pg[i].slab = s;
#ifndef MKI_SECURE
	/* free() checks pointers into a malloc slab against its class's
	 * geometry (mki_class_geom), which must be this slab's */
	if (owner != &mki_heap_none &&
	    (size != mki_class_size[cls] || s->span != mki_class_geom[cls].span ||
	     bytes != (size_t)mki_class_geom[cls].mask + 1))
		mki_fatal("internal error: slab of class %u does not have its geometry", cls);
#endif
	mki_slab_set_owner(s, owner);
	return s;
}

void mki_slab_set_owner(struct mki_slab *s, struct mki_heap *owner)
{
	atomic_store_explicit(&s->owner, owner, memory_order_release);
	bool live = owner != &mki_heap_none && !s->cache;
	uint8_t cls = live ? s->cls : MKI_CLS_NONE;
	struct mki_page *pg = mki_page_desc(mki_chunk_of(s->start), s->start);
	for (size_t i = 0; i < ((size_t)1 << s->order); i++) {
		atomic_store_explicit(&pg[i].heap, live ? owner : &mki_heap_none,
				      memory_order_relaxed);
		atomic_store_explicit(&pg[i].cls, cls, memory_order_relaxed);
	}
}

/* since: when its last block went (mki_clock_ms), for the buddy's decay */
static void slab_delete_idle(struct mki_slab *s, uint32_t since)
{
#ifdef MKI_SECURE
	size_t bytes = (size_t)1 << (s->order + MKI_PAGE_SHIFT);
	if (!s->cache)
		mki_os_protect(s->start + bytes - MKI_PAGE_SIZE, MKI_PAGE_SIZE, true);
#endif
	mki_pages_free_idle(s->start, s->order, since);
	desc_release(s);
}

void mki_slab_delete(struct mki_slab *s)
{
	slab_delete_idle(s, (uint32_t)mki_clock_ms());
}

/* ------------------------------------------------------------ empty slabs
 * A malloc slab that empties is kept for the next slab of its class (up to
 * EMPTY_KEEP per class, EMPTY_KEEP_BYTES in all) instead of going back to
 * the buddy system at once. The pages of a slab are touched for blocks of
 * its size, a few for small ones, most of them for large ones; made into a
 * slab of another class, the same buddy block gets touched further, and in
 * a program whose threads come and go by the thousand every page of every
 * slab block ends up resident (bench/wl-threads: 61810 slabs made over the
 * run from 160 buddy blocks, 10 MiB of RSS against glibc's 5). Kept slabs
 * are free memory like the buddy system's free pages, kept a quarter of
 * MEMKIT_DECAY_MS (a slab that is reused at all is reused within
 * milliseconds); they count as active pages in the statistics and stay out
 * of the heaps' lists and of the per-class slab counts. Each class's list
 * has its own lock: under desc_lock with the descriptors, 16 threads coming
 * and going on 16 cores (wl-threads) waited on it for a third of its
 * acquisitions. */
#define EMPTY_KEEP	 32		   /* per class */
#define EMPTY_KEEP_BYTES ((size_t)8 << 20) /* in all */
static struct kept_list {
	mki_lock_t lock;
	struct mki_slab *head;
	_Atomic uint8_t n; /* slabs on it, for a peek without the lock */
} __attribute__((aligned(64))) kept[MKI_CLASSES_MAX];
static _Atomic size_t empty_bytes; /* on all the lists */
static _Atomic uint64_t last_expire_ms;

static size_t slab_bytes(const struct mki_slab *s)
{
	return (size_t)1 << (s->order + MKI_PAGE_SHIFT);
}

/* Room for `bytes` more on the lists, taken if there is. */
static bool kept_bytes_take(size_t bytes)
{
	size_t have = atomic_load_explicit(&empty_bytes, memory_order_relaxed);
	do {
		if (have + bytes > EMPTY_KEEP_BYTES)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    &empty_bytes, &have, have + bytes, memory_order_relaxed, memory_order_relaxed));
	return true;
}

void mki_slab_put_empty(struct mki_slab *s)
{
	struct kept_list *k = &kept[s->cls];
	if (!s->cache && mki_opt.decay_ms) {
		mki_lock(&k->lock);
		if (atomic_load_explicit(&k->n, memory_order_relaxed) < EMPTY_KEEP &&
		    kept_bytes_take(slab_bytes(s))) {
			mki_slab_set_owner(s, &mki_heap_none);
			s->state = MKI_SLAB_EMPTY;
			s->idle_since = (uint32_t)mki_clock_ms();
			s->prev = NULL;
			s->next = k->head;
			k->head = s;
			atomic_fetch_add_explicit(&k->n, 1, memory_order_relaxed);
			mki_unlock(&k->lock);
			return;
		}
		mki_unlock(&k->lock);
	}
	mki_slab_delete(s);
}

/* the newest kept empty slab of class cls, off the list; NULL if none */
static struct mki_slab *kept_pop(unsigned cls)
{
	struct kept_list *k = &kept[cls];
	mki_lock(&k->lock);
	struct mki_slab *s = k->head;
	if (s) {
		k->head = s->next;
		atomic_fetch_sub_explicit(&k->n, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&empty_bytes, slab_bytes(s), memory_order_relaxed);
	}
	mki_unlock(&k->lock);
	return s;
}

struct mki_slab *mki_slab_reuse(unsigned cls, struct mki_heap *owner)
{
	if (!atomic_load_explicit(&kept[cls].n, memory_order_relaxed))
		return NULL;
	struct mki_slab *s = kept_pop(cls);
	if (!s)
		return NULL;
	/* carved anew from its first slot: the pages touched before are the
	 * ones touched again */
	slab_reset(s);
	mki_slab_set_owner(s, owner);
	return s;
}

/* A slab of class cls and `order` is about to be made and the buddy system
 * has no resident block for it: a kept empty slab of another class, of
 * that order or larger, goes back first, so that its pages (resident) serve
 * instead of new ones faulted in beside it. sqlite3 fills its page cache
 * (4608-byte blocks) after freeing hundreds of thousands of 48-byte ones:
 * the slabs kept for the 48-byte class sat resident while the cache grew
 * into new pages. Only from a class that keeps several: one or two kept
 * slabs are the ones a program whose threads come and go reuses, and given
 * to another class they get more of their pages touched (wl-threads' peak
 * RSS 5.0 -> 5.8 MiB when any kept slab went). */
#define GIVE_BACK_FROM 8
void mki_slab_give_back_kept(unsigned cls, unsigned order)
{
	unsigned from = MKI_CLASSES_MAX;
	for (unsigned k = 0; k < mki_class_count && from == MKI_CLASSES_MAX; k++)
		if (k != cls && mki_class_order[k] >= order &&
		    atomic_load_explicit(&kept[k].n, memory_order_relaxed) >= GIVE_BACK_FROM)
			from = k;
	if (from == MKI_CLASSES_MAX || mki_pages_resident_free(order))
		return;
	struct mki_slab *s = kept_pop(from);
	if (s)
		slab_delete_idle(s, s->idle_since);
}

void mki_slab_expire_empty(bool force)
{
	if (!force && !mki_clock_due(&last_expire_ms, mki_opt.decay_ms / 8))
		return;
	uint64_t now = mki_clock_ms();
	struct mki_slab *old = NULL;
	for (unsigned cls = 0; cls < mki_class_count; cls++) {
		struct kept_list *k = &kept[cls];
		if (!atomic_load_explicit(&k->n, memory_order_relaxed))
			continue;
		mki_lock(&k->lock);
		struct mki_slab **link = &k->head;
		while (*link) {
			struct mki_slab *s = *link;
			if (force || (uint32_t)now - s->idle_since >= mki_opt.decay_ms / 4) {
				*link = s->next;
				atomic_fetch_sub_explicit(&k->n, 1, memory_order_relaxed);
				atomic_fetch_sub_explicit(&empty_bytes, slab_bytes(s),
							  memory_order_relaxed);
				s->next = old;
				old = s;
			} else {
				link = &s->next;
			}
		}
		mki_unlock(&k->lock);
	}
	if (!old)
		return;
	while (old) {
		struct mki_slab *next = old->next;
		slab_delete_idle(old, old->idle_since);
		old = next;
	}
	/* the pages of all of them, not only of the first (the buddy system's
	 * own periodic purge ran when the first came back) */
	mki_page_purge(false);
}

void mki_slab_fork_prepare(void)
{
	for (unsigned cls = 0; cls < MKI_CLASSES_MAX; cls++)
		mki_lock_before_fork(&kept[cls].lock);
	mki_lock_before_fork(&desc_lock);
}

void mki_slab_fork_parent(void)
{
	mki_unlock_after_fork(&desc_lock);
	for (unsigned cls = MKI_CLASSES_MAX; cls-- > 0;)
		mki_unlock_after_fork(&kept[cls].lock);
}

void mki_slab_fork_child(void)
{
	mki_lock_reset(&desc_lock);
	for (unsigned cls = 0; cls < MKI_CLASSES_MAX; cls++)
		mki_lock_reset(&kept[cls].lock);
}

#ifdef MKI_SECURE
/* The secure build hands slots out in random order (Fisher-Yates over the
 * new slots), so an overflow cannot count on what lies next to its block. */
static void link_shuffled(struct mki_slab *s, char *first, uint32_t n)
{
	uint16_t order[MKI_PAGE_SIZE / MKI_ALIGN];
	uint64_t x = mki_free_key ^ (uintptr_t)first ^ ((uint64_t)s->carved << 32);
	for (uint32_t i = 0; i < n; i++)
		order[i] = (uint16_t)i;
	for (uint32_t i = n; i-- > 1;) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t j = (uint32_t)(x % (i + 1));
		uint16_t t = order[i];
		order[i] = order[j], order[j] = t;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct mki_block *b = (struct mki_block *)(first + (size_t)order[i] * s->size);
		mki_block_set_next(b, s->free);
		s->free = b;
	}
}
#endif

/* Link the next page's worth of slots (at least one) into the free list, in
 * address order so that consecutive mallocs return neighbouring memory. */
bool mki_slab_extend(struct mki_slab *s)
{
	if (s->carved >= s->capacity)
		return false;
	uint32_t n = (uint32_t)(MKI_PAGE_SIZE / s->size);
	if (n == 0)
		n = 1;
	if (n > s->capacity - s->carved)
		n = s->capacity - s->carved;
	char *first = s->start + (size_t)s->carved * s->size;
#ifdef MKI_SECURE
	link_shuffled(s, first, n);
#else
	struct mki_block *b = (struct mki_block *)first;
	for (uint32_t i = 1; i < n; i++) {
		struct mki_block *next = (struct mki_block *)((char *)b + s->size);
		mki_block_set_next(b, next);
		b = next;
	}
	mki_block_set_next(b, s->free);
	s->free = (struct mki_block *)first;
#endif
	s->carved += n;
	return true;
}

uint32_t mki_slab_collect(struct mki_slab *s)
{
	uintptr_t tf = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
	if (!(tf & ~MKI_TF_FULL))
		return 0;
	tf = atomic_exchange_explicit(&s->thread_free, tf & MKI_TF_FULL, memory_order_acquire);
	/* a concurrent remote free may have cleared the FULL bit we just put
	 * back; the owner re-checks the bit before trusting it */
	struct mki_block *list = mki_tf_list(tf);
	uint32_t n = mki_tf_count(tf);
	if (s->free) { /* rare: the owner collects when its own list is empty */
		struct mki_block *last = list;
		while (mki_block_next(last))
			last = mki_block_next(last);
		mki_block_set_next(last, s->free);
	}
	s->free = list;
	s->used -= n;
	return n;
}

bool mki_slab_try_mark_full(struct mki_slab *s)
{
	uintptr_t expect = 0;
	if (atomic_compare_exchange_strong_explicit(&s->thread_free, &expect, MKI_TF_FULL,
						    memory_order_acq_rel, memory_order_relaxed))
		return true;
	/* already marked and nothing freed since: it belongs on the full list
	 * (returning false here would make the caller retry for ever) */
	return expect == MKI_TF_FULL;
}

bool mki_slab_holds_free(struct mki_slab *s, const void *p)
{
	for (struct mki_block *b = s->free; b; b = mki_block_next(b))
		if (b == p)
			return true;
	uintptr_t tf = atomic_load_explicit(&s->thread_free, memory_order_acquire);
	for (struct mki_block *b = mki_tf_list(tf); b; b = mki_block_next(b))
		if (b == p)
			return true;
	return false;
}

/* ------------------------------------------------------------ object caches */

struct mk_cache {
	char name[32];
	size_t object_size;
	uint32_t slot_size;
	unsigned order;
	mk_ctor_fn ctor;
	mk_dtor_fn dtor;
	mki_lock_t lock;
	struct mki_slab *partial, *full, *empty;
	size_t nfull, npartial, nempty;
	size_t active;
};

static void cache_list_add(struct mki_slab **head, struct mki_slab *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

static void cache_list_del(struct mki_slab **head, struct mki_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

/* Like the kernel's calculate_order: the smallest block that holds at least
 * four objects and wastes at most 1/8 of itself. */
static unsigned cache_slab_order(size_t slot)
{
	for (unsigned k = 0; k < MKI_MAX_ORDER; k++) {
		size_t bytes = (size_t)1 << (k + MKI_PAGE_SHIFT);
		if (bytes / slot >= 4 && (bytes % slot) * 8 <= bytes)
			return k;
	}
	return MKI_MAX_ORDER;
}

mk_cache_t *mk_cache_create(const char *name, size_t size, size_t align, mk_ctor_fn ctor,
			    mk_dtor_fn dtor)
{
	mki_init();
	if (!align)
		align = MKI_ALIGN;
	if (!size || !mki_is_pow2(align) || align > MKI_PAGE_SIZE || size > MK_CACHE_MAX_OBJECT) {
		errno = EINVAL;
		return NULL;
	}
	struct mk_cache *c = mki_meta_alloc(sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	/* with a constructor the object's bytes are the caller's even while
	 * free, so the free-list link goes after the object (as SLUB does) */
	size_t need = ctor ? size + sizeof(void *) : size;
	if (need < sizeof(struct mki_block))
		need = sizeof(struct mki_block);
	size_t slot = mki_align_up(need, align < MKI_ALIGN ? MKI_ALIGN : align);
	mki_snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	c->object_size = size;
	c->slot_size = (uint32_t)slot;
	c->order = cache_slab_order(slot);
	c->ctor = ctor;
	c->dtor = dtor;
	return c;
}

static struct mki_block **link_of(const struct mk_cache *c, void *obj)
{
	if (c->ctor)
		return (struct mki_block **)((char *)obj + c->slot_size - sizeof(void *));
	return &((struct mki_block *)obj)->next;
}

/* A new slab: all its slots constructed and linked at once (Bonwick: the
 * constructed state is what the cache keeps). */
static struct mki_slab *cache_grow_locked(struct mk_cache *c)
{
	struct mki_slab *s = mki_slab_new(c->slot_size, c->order, 0, &mki_heap_none);
	if (!s)
		return NULL;
	s->cache = c;
	s->state = MKI_SLAB_CACHE;
	s->carved = s->capacity;
	for (uint32_t i = s->capacity; i-- > 0;) {
		char *obj = s->start + (size_t)i * s->size;
		if (c->ctor)
			c->ctor(obj);
		*link_of(c, obj) = s->free;
		s->free = (struct mki_block *)obj;
	}
	return s;
}

static void cache_move(struct mki_slab **from, size_t *nfrom, struct mki_slab **to, size_t *nto,
		       struct mki_slab *s)
{
	cache_list_del(from, s);
	(*nfrom)--;
	cache_list_add(to, s);
	(*nto)++;
}

void *mk_cache_alloc(mk_cache_t *c)
{
	mki_lock(&c->lock);
	struct mki_slab *s = c->partial;
	if (!s && c->empty) {
		s = c->empty;
		cache_move(&c->empty, &c->nempty, &c->partial, &c->npartial, s);
	}
	if (!s) {
		s = cache_grow_locked(c);
		if (!s) {
			mki_unlock(&c->lock);
			errno = ENOMEM;
			return NULL;
		}
		cache_list_add(&c->partial, s);
		c->npartial++;
	}
	struct mki_block *b = s->free;
	s->free = *link_of(c, b);
	s->used++;
	c->active++;
	if (!s->free)
		cache_move(&c->partial, &c->npartial, &c->full, &c->nfull, s);
	mki_unlock(&c->lock);
	return b;
}

static struct mki_slab *cache_slab_of(const mk_cache_t *c, const void *obj)
{
	struct mki_chunk *ch = mki_chunk_of(obj);
	struct mki_page *pg = ch ? mki_page_desc(ch, obj) : NULL;
	if (!pg || pg->kind != MKI_PAGE_SLAB || pg->slab->cache != c)
		mki_fatal("mk_cache_free of invalid pointer %p (not from cache '%s')", obj,
			  c->name);
	struct mki_slab *s = pg->slab;
	if (!mki_slab_holds_slot(s, obj))
		mki_fatal("mk_cache_free of interior pointer %p (cache '%s')", obj, c->name);
	return s;
}

void mk_cache_free(mk_cache_t *c, void *obj)
{
	if (!obj)
		return;
	struct mki_slab *s = cache_slab_of(c, obj);
	mki_lock(&c->lock);
	if (!s->free)
		cache_move(&c->full, &c->nfull, &c->partial, &c->npartial, s);
	*link_of(c, obj) = s->free;
	s->free = obj;
	s->used--;
	c->active--;
	if (!s->used)
		cache_move(&c->partial, &c->npartial, &c->empty, &c->nempty, s);
	mki_unlock(&c->lock);
}

static void cache_slab_destroy(mk_cache_t *c, struct mki_slab *s)
{
	if (c->dtor)
		for (uint32_t i = 0; i < s->capacity; i++)
			c->dtor(s->start + (size_t)i * s->size);
	mki_slab_delete(s);
}

/* Empty slabs go back to the buddy system; the destructor runs on their
 * objects first. Outside the lock, so a destructor may use the cache. */
size_t mk_cache_shrink(mk_cache_t *c)
{
	mki_lock(&c->lock);
	struct mki_slab *list = c->empty;
	size_t pages = c->nempty << c->order;
	c->empty = NULL;
	c->nempty = 0;
	mki_unlock(&c->lock);
	while (list) {
		struct mki_slab *next = list->next;
		cache_slab_destroy(c, list);
		list = next;
	}
	return pages;
}

void mk_cache_destroy(mk_cache_t *c)
{
	if (!c)
		return;
	mk_cache_shrink(c);
	if (c->active)
		mki_dprintf(2, "memkit: mk_cache_destroy: cache '%s' still has %zu objects\n",
			    c->name, c->active);
	struct mki_slab *lists[2] = {c->partial, c->full};
	for (int i = 0; i < 2; i++)
		while (lists[i]) {
			struct mki_slab *next = lists[i]->next;
			cache_slab_destroy(c, lists[i]);
			lists[i] = next;
		}
	mki_meta_free(c, sizeof(*c));
}

const char *mki_cache_name(const struct mk_cache *c)
{
	return c->name;
}

int mk_cache_info(const mk_cache_t *c, struct mk_cache_info *info)
{
	if (!c || !info) {
		errno = EINVAL;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	mki_lock((mki_lock_t *)&c->lock);
	mki_snprintf(info->name, sizeof(info->name), "%s", c->name);
	info->object_size = c->object_size;
	info->slot_size = c->slot_size;
	info->slab_order = c->order;
	info->objects_per_slab =
	    (unsigned)((((size_t)1 << (c->order + MKI_PAGE_SHIFT))) / c->slot_size);
	info->active_objects = c->active;
	info->slabs_full = c->nfull;
	info->slabs_partial = c->npartial;
	info->slabs_empty = c->nempty;
	info->total_objects = (c->nfull + c->npartial + c->nempty) * info->objects_per_slab;
	mki_unlock((mki_lock_t *)&c->lock);
	return 0;
}
