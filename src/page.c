/* page.c - the buddy system, as the kernel's mm/page_alloc.c does it, over
 * 4 MiB chunks of this process's address space.
 *
 * Free blocks of 2^order pages (order 0..10) sit on 11 free lists. To
 * allocate order k, take a block from the first non-empty list of order
 * >= k and split it: each split gives back the upper half, a "buddy", to
 * the list one order down. To free, look at the buddy (index ^ 2^order): if
 * it is a free block of the same order, take it off its list and merge, and
 * so on up. Blocks never cross a chunk, so a chunk that is wholly free is
 * one order-10 block and can go back to the OS.
 *
 * Memory goes back to the OS in two steps, both after MEMKIT_DECAY_MS so
 * that a program that frees and allocates again does not pay system calls
 * each time: free blocks of MKI_PURGE_MIN_ORDER and up are purged
 * (MADV_DONTNEED: the range stays, the pages go), and wholly free chunks are
 * unmapped (all but one, kept purged against thrashing; none while leak
 * tracking is on: a leak report reads blocks and chunk descriptors that
 * their owners may free meanwhile). A free block
 * remembers whether it may hold resident pages (MKI_PF_DIRTY): a clean
 * block is known to read as zeros, which calloc uses. Dirty blocks sit at
 * the heads of the lists, clean ones at the tails, and an allocation takes
 * resident pages before purged ones (pick_order_locked).
 *
 * Zones: the free lists, chunks and counts are split in up to MKI_ZONES
 * zones (one a CPU), each with its own lock, as the kernel splits memory in
 * zones with a lock each: a thread allocates from its own zone, and a block
 * goes back to the zone of its chunk. Only when its zone has no block large
 * enough does a thread look in the others, before it maps a new chunk (but
 * a zone maps its first chunk before it borrows: take_block). With one lock
 * for all, 16 threads of wl-random on 16 cores found it taken in 90 % of
 * 536 k acquisitions. Chunks lie in a part of the address space of their
 * own (os.c), apart from the large blocks' mappings.
 *
 * Locking: a zone's lock guards its free lists, its chunk list and every
 * FREE page descriptor of its chunks. Functions named *_locked expect the
 * lock of the zone they are given (or of the chunk's zone) held; at most one
 * zone lock is held at a time.
 * Lock order: heap locks -> a zone's lock -> meta_lock.
 *
 * May call: os.c, meta.c, libc.c; reads leak.c's mki_leak_active.
 */
#include <errno.h>
#include <string.h>
#include "memkit/internal.h"

#define MKI_PURGE_MIN_ORDER 2 /* 16 KiB: smaller free blocks are not worth a madvise */

struct mki_chunk *_Atomic *_Atomic mki_radix[1u << MKI_RADIX_L1_BITS];
_Atomic uintptr_t mki_chunk_epoch = 1;

#define MKI_ZONES 8

struct zone {
	mki_lock_t lock;
	struct mki_page free_area[MKI_ORDERS]; /* list heads (lru links only) */
	size_t nr_free[MKI_ORDERS];
	size_t clean_free_pages; /* free and purged: not resident */
	size_t free_pages_total;
	/* free_pages_total - clean_free_pages, for a peek without the lock */
	_Atomic size_t dirty_hint;
	struct mki_chunk *chunk_list;
	_Atomic size_t nr_chunks; /* written under the lock, peeked at without */
} __attribute__((aligned(64)));

static struct zone zones[MKI_ZONES];
static _Atomic unsigned nr_zones_plus1; /* 0: not counted yet */
static _Atomic unsigned next_zone;
static __thread unsigned my_zone_plus1 __attribute__((tls_model("initial-exec")));

/* As many zones as CPUs, up to MKI_ZONES. */
static unsigned zone_count(void)
{
	unsigned n = atomic_load_explicit(&nr_zones_plus1, memory_order_relaxed);
	if (mki_unlikely(!n)) {
		n = mki_cpu_count();
		n = (n < MKI_ZONES ? n : MKI_ZONES) + 1;
		atomic_store_explicit(&nr_zones_plus1, n, memory_order_relaxed);
	}
	return n - 1;
}

/* The thread's zone, taken in turn by threads at their first allocation. */
static struct zone *my_zone(void)
{
	if (mki_unlikely(!my_zone_plus1))
		my_zone_plus1 =
		    atomic_fetch_add_explicit(&next_zone, 1, memory_order_relaxed) % zone_count() +
		    1;
	return &zones[my_zone_plus1 - 1];
}

static struct zone *zone_of(const struct mki_chunk *c)
{
	return &zones[c->zone];
}

static size_t zone_chunks(const struct zone *z)
{
	return atomic_load_explicit(&z->nr_chunks, memory_order_relaxed);
}

static void update_dirty_hint_locked(struct zone *z)
{
	atomic_store_explicit(&z->dirty_hint, z->free_pages_total - z->clean_free_pages,
			      memory_order_relaxed);
}
/* Free memory that may be resident is kept for the decay time, but never
 * more than MKI_DIRTY_MAX: a program that frees hundreds of megabytes gets
 * them back to the OS at once, not a second later and only if it calls
 * malloc again; the purge then goes down to MKI_DIRTY_KEEP. */
#define MKI_DIRTY_MAX_PAGES  ((size_t)(256u << 20) >> MKI_PAGE_SHIFT)
#define MKI_DIRTY_KEEP_PAGES ((size_t)(48u << 20) >> MKI_PAGE_SHIFT)
static _Atomic uint64_t last_purge_ms;

static void purge_excess(void);

/* ------------------------------------------------------------ chunk registry */

static int radix_set(struct mki_chunk *c, struct mki_chunk *value)
{
	uintptr_t n = (uintptr_t)c->base >> MKI_CHUNK_SHIFT;
	_Atomic(struct mki_chunk * _Atomic *) *slot = &mki_radix[n >> MKI_RADIX_L2_BITS];
	struct mki_chunk *_Atomic *l2 = atomic_load_explicit(slot, memory_order_acquire);
	if (!l2) { /* two zones may map chunks in one region at once */
		struct mki_chunk *_Atomic *fresh = mki_meta_alloc(sizeof(*l2) << MKI_RADIX_L2_BITS);
		if (!fresh)
			return ENOMEM;
		if (atomic_compare_exchange_strong_explicit(slot, &l2, fresh, memory_order_acq_rel,
							    memory_order_acquire))
			l2 = fresh;
		else
			mki_meta_free(fresh, sizeof(*l2) << MKI_RADIX_L2_BITS);
	}
	atomic_store_explicit(&l2[n & ((1u << MKI_RADIX_L2_BITS) - 1)], value,
			      memory_order_release);
	return 0;
}

/* ------------------------------------------------------------ free lists */

static void list_init(struct zone *z)
{
	for (int k = 0; k < MKI_ORDERS; k++)
		z->free_area[k].lru.next = z->free_area[k].lru.prev = &z->free_area[k];
}

/* Link a free block into list `order` right after `at` (the list head, or
 * its last block), and count it. */
static void list_link_locked(struct zone *z, struct mki_page *pg, unsigned order,
			     struct mki_page *at)
{
	pg->lru.next = at->lru.next;
	pg->lru.prev = at;
	at->lru.next->lru.prev = pg;
	at->lru.next = pg;
	z->nr_free[order]++;
	z->free_pages_total += (size_t)1 << order;
	if (!(pg->flags & MKI_PF_DIRTY))
		z->clean_free_pages += (size_t)1 << order;
	update_dirty_hint_locked(z);
}

/* A block that may be resident goes to the head of its list, one known to
 * be purged to the tail: a list's head tells whether it holds resident
 * pages at all. */
static void list_add_locked(struct zone *z, struct mki_page *pg, unsigned order)
{
	struct mki_page *head = &z->free_area[order];
	if (!head->lru.next)
		list_init(z);
	list_link_locked(z, pg, order, (pg->flags & MKI_PF_DIRTY) ? head : head->lru.prev);
}

static void list_del_locked(struct zone *z, struct mki_page *pg, unsigned order)
{
	pg->lru.prev->lru.next = pg->lru.next;
	pg->lru.next->lru.prev = pg->lru.prev;
	pg->lru.next = pg->lru.prev = NULL;
	z->nr_free[order]--;
	z->free_pages_total -= (size_t)1 << order;
	if (!(pg->flags & MKI_PF_DIRTY))
		z->clean_free_pages -= (size_t)1 << order;
	update_dirty_hint_locked(z);
}

static bool list_empty(const struct zone *z, unsigned order)
{
	return !z->free_area[order].lru.next ||
	       z->free_area[order].lru.next == &z->free_area[order];
}

/* A free head records its own index (in `head`), which leads back to the
 * chunk that holds the descriptor. */
static struct mki_chunk *chunk_of_free_head(struct mki_page *pg, size_t *index)
{
	*index = pg->head;
	return (struct mki_chunk *)((char *)(pg - pg->head) - offsetof(struct mki_chunk, pages));
}

/* Put a free block of 2^order pages at page index i of chunk c on its list,
 * marking its head. Tail descriptors keep kind NONE. */
static void set_free_block_locked(struct mki_chunk *c, size_t i, unsigned order, bool dirty,
				  uint32_t stamp)
{
	struct mki_page *pg = &c->pages[i];
	pg->kind = MKI_PAGE_FREE;
	pg->order = (uint8_t)order;
	pg->flags = dirty ? MKI_PF_DIRTY : 0;
	pg->stamp = stamp;
	pg->npages = 0;
	pg->head = (uint32_t)i;
	list_add_locked(zone_of(c), pg, order);
	c->free_pages += 1u << order;
}

static bool is_free_head(const struct mki_page *pg, unsigned order)
{
	return pg->kind == MKI_PAGE_FREE && pg->order == order;
}

_Atomic uint64_t mki_pages_freed_gen;

/* The heart of freeing: merge with free buddies as far as they go. */
static void free_block_locked(struct mki_chunk *c, size_t i, unsigned order, bool dirty,
			      uint32_t stamp)
{
	atomic_store_explicit(&mki_pages_freed_gen,
			      atomic_load_explicit(&mki_pages_freed_gen, memory_order_relaxed) + 1,
			      memory_order_release);
	while (order < MKI_MAX_ORDER) {
		size_t buddy = i ^ ((size_t)1 << order);
		struct mki_page *bp = &c->pages[buddy];
		if (!is_free_head(bp, order))
			break;
		list_del_locked(zone_of(c), bp, order);
		c->free_pages -= 1u << order;
		dirty |= bp->flags & MKI_PF_DIRTY;
		if ((int32_t)(bp->stamp - stamp) > 0)
			stamp = bp->stamp;
		bp->kind = MKI_PAGE_NONE;
		bp->flags = 0;
		i &= ~((size_t)1 << order);
		order++;
	}
	set_free_block_locked(c, i, order, dirty, stamp);
}

/* Free the pages [start, end) of chunk c as the largest aligned blocks that
 * fit: how a run's tail, or a whole run, goes back. */
static void free_range_locked(struct mki_chunk *c, size_t start, size_t end, bool dirty,
			      uint32_t stamp)
{
	while (start < end) {
		unsigned k = start ? (unsigned)__builtin_ctzl(start) : MKI_MAX_ORDER;
		if (k > MKI_MAX_ORDER)
			k = MKI_MAX_ORDER;
		while (k && start + ((size_t)1 << k) > end)
			k--;
		free_block_locked(c, start, k, dirty, stamp);
		start += (size_t)1 << k;
	}
}

/* ------------------------------------------------------------ chunks */

/* Only a slab page owned by a live heap names that heap and a class (a
 * new chunk's descriptors, never written, name no heap and class 0):
 * free() tests the heap before the kind (alloc.c's free_in_chunk). */
static void forget_slab(struct mki_page *pg)
{
	atomic_store_explicit(&pg->cls, MKI_CLS_NONE, memory_order_relaxed);
	pg->slab = NULL;
	atomic_store_explicit(&pg->heap, NULL, memory_order_relaxed);
}

static struct mki_chunk *chunk_new_locked(struct zone *z)
{
	void *base;
	struct mki_chunk *c;
	if (mki_os_map_chunk(MKI_CHUNK_SIZE, &base))
		return NULL;
	c = mki_meta_alloc(sizeof(*c));
	if (!c)
		goto out_unmap;
	c->base = base;
	c->zone = (uint8_t)(z - zones);
	if (radix_set(c, c))
		goto out_free_meta;
	c->next = z->chunk_list;
	if (z->chunk_list)
		z->chunk_list->prev = c;
	z->chunk_list = c;
	atomic_store_explicit(&z->nr_chunks, zone_chunks(z) + 1, memory_order_relaxed);
	set_free_block_locked(c, 0, MKI_MAX_ORDER, false, (uint32_t)mki_clock_ms());
	return c;

out_free_meta:
	mki_meta_free(c, sizeof(*c));
out_unmap:
	mki_os_unmap(base, MKI_CHUNK_SIZE);
	return NULL;
}

static void chunk_release_locked(struct mki_chunk *c)
{
	struct zone *z = zone_of(c);
	list_del_locked(z, &c->pages[0], MKI_MAX_ORDER);
	radix_set(c, NULL);
	/* after the radix map forgets it: a lookup cached under the new epoch
	 * read the map after this, and cannot have found the chunk */
	atomic_fetch_add_explicit(&mki_chunk_epoch, 2, memory_order_seq_cst);
	if (c->prev)
		c->prev->next = c->next;
	else
		z->chunk_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_store_explicit(&z->nr_chunks, zone_chunks(z) - 1, memory_order_relaxed);
	mki_os_unmap(c->base, MKI_CHUNK_SIZE);
	mki_meta_free(c, sizeof(*c));
}

/* ------------------------------------------------------------ allocation */

static void mark_allocated(struct mki_chunk *c, size_t i, size_t npages, enum mki_page_kind kind,
			   unsigned order)
{
	struct mki_page *pg = &c->pages[i];
	pg->kind = (uint8_t)kind;
	pg->order = (uint8_t)order;
	pg->npages = (uint32_t)npages;
	pg->head = (uint32_t)i;
	forget_slab(pg);
	for (size_t j = 1; j < npages; j++) {
		pg[j].kind = (uint8_t)kind;
		pg[j].flags = 0;
		pg[j].head = (uint32_t)i;
		forget_slab(&pg[j]);
	}
}

/* The order to take a block of `order` pages from: the smallest whose list
 * holds a block that may be resident, else the smallest with any block;
 * MKI_ORDERS if none. Pages already faulted in serve before purged ones,
 * even if a larger block is split for it: a purged block costs a page fault
 * per page touched and as much RSS as new memory. */
static unsigned pick_order_locked(struct zone *z, unsigned order, bool *resident)
{
	unsigned smallest = MKI_ORDERS;
	for (unsigned k = order; k <= MKI_MAX_ORDER; k++) {
		if (list_empty(z, k))
			continue;
		if (z->free_area[k].lru.next->flags & MKI_PF_DIRTY) {
			*resident = true;
			return k;
		}
		if (smallest == MKI_ORDERS)
			smallest = k;
	}
	*resident = false;
	return smallest;
}

bool mki_pages_resident_free(unsigned order)
{
	bool resident;
	/* enough free pages that may be resident: most likely one block is
	 * large enough (a peek without the lock, which many threads making
	 * slabs at once would queue on) */
	struct zone *z = my_zone();
	if (atomic_load_explicit(&z->dirty_hint, memory_order_relaxed) >= (size_t)4 << order)
		return true;
	mki_lock(&z->lock);
	pick_order_locked(z, order, &resident);
	mki_unlock(&z->lock);
	return resident;
}

/* Take a free block of exactly `order` from zone z, splitting a larger one
 * if needed: each split puts the upper half on the list one order down.
 * With may_map, a zone without one maps a new chunk; else NULL. */
static struct mki_chunk *take_block_locked(struct zone *z, unsigned order, bool may_map,
					   size_t *index, bool *clean)
{
	bool resident;
	unsigned k = pick_order_locked(z, order, &resident);
	if (k > MKI_MAX_ORDER) {
		if (!may_map || !chunk_new_locked(z))
			return NULL;
		k = MKI_MAX_ORDER;
	}
	struct mki_page *pg = z->free_area[k].lru.next;
	size_t i;
	struct mki_chunk *c = chunk_of_free_head(pg, &i);
	bool dirty = pg->flags & MKI_PF_DIRTY;
	uint32_t stamp = pg->stamp;
	list_del_locked(z, pg, k);
	c->free_pages -= 1u << k;
	pg->kind = MKI_PAGE_NONE;
	pg->flags = 0;
	while (k > order) {
		k--;
		set_free_block_locked(c, i + ((size_t)1 << k), k, dirty, stamp);
	}
	*index = i;
	*clean = !dirty && !mki_opt.purge_lazy;
	return c;
}

static unsigned order_for_pages(size_t npages)
{
	unsigned k = 0;
	while (((size_t)1 << k) < npages)
		k++;
	return k;
}

/* A block of `order` from the thread's zone, else from another zone that
 * has one, else from a new chunk of the thread's zone; a zone without a
 * chunk yet maps its first before it looks elsewhere, so that threads of
 * different zones do not share one chunk from the start, where their page
 * runs lie in between each other's and cannot grow in place (wl-realloc's
 * two threads kept 1.4-1.55 MiB of their one chunk resident, one thread
 * alone 0.35-0.38). Returned with its zone's lock held (*locked); NULL, no
 * lock held, without memory. */
static struct mki_chunk *take_block(unsigned order, size_t *index, bool *clean,
				    struct zone **locked)
{
	struct zone *home = my_zone();
	unsigned n = zone_count(), h = (unsigned)(home - zones);
	unsigned tries = zone_chunks(home) ? n : 1;
	for (unsigned j = 0; j < tries; j++) {
		struct zone *z = &zones[(h + j) % n];
		if (j && !zone_chunks(z))
			continue; /* nothing to find there */
		mki_lock(&z->lock);
		struct mki_chunk *c = take_block_locked(z, order, false, index, clean);
		if (c) {
			*locked = z;
			return c;
		}
		mki_unlock(&z->lock);
	}
	mki_lock(&home->lock);
	struct mki_chunk *c = take_block_locked(home, order, true, index, clean);
	if (!c) {
		mki_unlock(&home->lock);
		return NULL;
	}
	*locked = home;
	return c;
}

void *mki_pages_alloc(unsigned order, enum mki_page_kind kind, bool *zero)
{
	size_t i;
	bool clean;
	struct zone *z;
	if (order > MKI_MAX_ORDER) {
		errno = EINVAL;
		return NULL;
	}
	struct mki_chunk *c = take_block(order, &i, &clean, &z);
	if (c) {
		mark_allocated(c, i, (size_t)1 << order, kind, order);
		mki_unlock(&z->lock);
	}
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	if (zero)
		*zero = clean;
	return c->base + (i << MKI_PAGE_SHIFT);
}

void *mki_run_alloc(size_t npages, unsigned align_order, bool *zero)
{
	size_t i;
	bool clean;
	unsigned k = order_for_pages(npages);
	if (k < align_order)
		k = align_order;
	if (!npages || k > MKI_MAX_ORDER) {
		errno = ENOMEM;
		return NULL;
	}
	struct zone *z;
	struct mki_chunk *c = take_block(k, &i, &clean, &z);
	if (c) {
		/* keep what was asked, give the tail back (alloc_pages_exact) */
		free_range_locked(c, i + npages, i + ((size_t)1 << k), !clean,
				  (uint32_t)mki_clock_ms());
		mark_allocated(c, i, npages, MKI_PAGE_RUN, 0);
		mki_unlock(&z->lock);
	}
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	if (zero)
		*zero = clean;
	return c->base + (i << MKI_PAGE_SHIFT);
}

static void clear_descs(struct mki_page *pg, size_t npages)
{
	for (size_t j = 0; j < npages; j++) {
		pg[j].kind = MKI_PAGE_NONE;
		pg[j].flags = 0;
		forget_slab(&pg[j]);
	}
}

static bool is_head(struct mki_chunk *c, struct mki_page *pg)
{
	return pg->head == (uint32_t)(pg - c->pages);
}

void mki_pages_free(void *p, unsigned order)
{
	mki_pages_free_idle(p, order, (uint32_t)mki_clock_ms());
}

void mki_pages_free_idle(void *p, unsigned order, uint32_t since)
{
	struct mki_chunk *c = mki_chunk_of(p);
	if (!c)
		mki_fatal("free of invalid pointer %p (pages not from memkit)", p);
	struct mki_page *pg = mki_page_desc(c, p);
	size_t i = (size_t)(pg - c->pages);
	struct zone *z = zone_of(c);
	mki_lock(&z->lock);
	if (pg->kind == MKI_PAGE_FREE || pg->kind == MKI_PAGE_NONE)
		mki_fatal("internal error: pages at %p freed twice", p);
	clear_descs(pg, (size_t)1 << order);
	free_block_locked(c, i, order, true, since);
	mki_unlock(&z->lock);
	purge_excess();
	mki_page_maybe_purge();
}

void mki_run_free(void *p)
{
	struct mki_chunk *c = mki_chunk_of(p);
	struct mki_page *pg = mki_page_desc(c, p);
	size_t i = (size_t)(pg - c->pages), n = pg->npages;
	uint32_t now = (uint32_t)mki_clock_ms();
	struct zone *z = zone_of(c);
	mki_lock(&z->lock);
	clear_descs(pg, n);
	free_range_locked(c, i, i + n, true, now);
	mki_unlock(&z->lock);
	purge_excess();
	mki_page_maybe_purge();
}

bool mki_run_shrink(void *p, size_t npages)
{
	struct mki_chunk *c = mki_chunk_of(p);
	struct mki_page *pg = mki_page_desc(c, p);
	size_t i = (size_t)(pg - c->pages), n = pg->npages;
	if (!npages || npages > n)
		return false;
	if (npages == n)
		return true;
	struct zone *z = zone_of(c);
	mki_lock(&z->lock);
	clear_descs(pg + npages, n - npages);
	pg->npages = (uint32_t)npages;
	free_range_locked(c, i + npages, i + n, true, (uint32_t)mki_clock_ms());
	mki_unlock(&z->lock);
	return true;
}

/* The free block of chunk c that contains page j, or NULL. A free block of
 * order k starts at j with its low k bits cleared. */
static struct mki_page *free_block_containing(struct mki_chunk *c, size_t j)
{
	for (unsigned k = 0; k <= MKI_MAX_ORDER; k++) {
		struct mki_page *h = &c->pages[j & ~(((size_t)1 << k) - 1)];
		if (is_free_head(h, k))
			return h;
	}
	return NULL;
}

/* Take pages [from, to) of chunk c, all known free, off the free lists,
 * giving back the parts of their blocks outside the range. */
static void claim_range_locked(struct mki_chunk *c, size_t from, size_t to)
{
	size_t j = from;
	while (j < to) {
		struct mki_page *h = free_block_containing(c, j);
		size_t hi = (size_t)(h - c->pages), end = hi + ((size_t)1 << h->order);
		bool dirty = h->flags & MKI_PF_DIRTY;
		uint32_t stamp = h->stamp;
		list_del_locked(zone_of(c), h, h->order);
		c->free_pages -= 1u << h->order;
		h->kind = MKI_PAGE_NONE;
		h->flags = 0;
		if (hi < j)
			free_range_locked(c, hi, j, dirty, stamp);
		if (end > to)
			free_range_locked(c, to, end, dirty, stamp);
		j = end;
	}
}

bool mki_run_grow(void *p, size_t npages)
{
	struct mki_chunk *c = mki_chunk_of(p);
	struct mki_page *pg = mki_page_desc(c, p);
	size_t i = (size_t)(pg - c->pages), n = pg->npages;
	if (npages <= n)
		return true;
	if (i + npages > MKI_CHUNK_PAGES)
		return false;
	bool ok = true;
	struct zone *z = zone_of(c);
	mki_lock(&z->lock);
	for (size_t j = i + n; j < i + npages && ok;) {
		struct mki_page *h = free_block_containing(c, j);
		if (!h)
			ok = false;
		else
			j = (size_t)(h - c->pages) + ((size_t)1 << h->order);
	}
	if (ok) {
		claim_range_locked(c, i + n, i + npages);
		mark_allocated(c, i, npages, MKI_PAGE_RUN, 0);
	}
	mki_unlock(&z->lock);
	return ok;
}

/* ------------------------------------------------------------ giving back */

static bool decayed(const struct mki_page *pg, uint32_t now, bool force)
{
	return force || (uint32_t)(now - pg->stamp) >= mki_opt.decay_ms;
}

/* Purge one free block: the list lock is held across madvise, which is
 * short for the sizes concerned and keeps the block from being taken. */
static size_t purge_block_locked(struct mki_page *pg, unsigned order)
{
	size_t i;
	struct mki_chunk *c = chunk_of_free_head(pg, &i);
	size_t bytes = (size_t)1 << (order + MKI_PAGE_SHIFT);
	if (mki_os_purge(c->base + (i << MKI_PAGE_SHIFT), bytes))
		return 0;
	list_del_locked(zone_of(c), pg, order);
	pg->flags &= (uint16_t)~MKI_PF_DIRTY;
	list_add_locked(zone_of(c), pg, order); /* to the tail, with the purged */
	return bytes;
}

static size_t purge_order_locked(struct zone *z, unsigned order, uint32_t now, bool force)
{
	size_t bytes = 0;
	struct mki_page *head = &z->free_area[order];
	/* the dirty blocks lie ahead of the clean ones, where a purged one goes */
	for (struct mki_page *pg = head->lru.next; pg && pg != head;) {
		struct mki_page *next = pg->lru.next;
		if (!(pg->flags & MKI_PF_DIRTY))
			break;
		if (decayed(pg, now, force))
			bytes += purge_block_locked(pg, order);
		pg = next;
	}
	return bytes;
}

/* Wholly free chunks go back to the OS, all but one (purged) so that a
 * program hovering around a chunk boundary does not map and unmap. Not
 * while leak tracking is on: its reports and statistics read blocks and
 * chunk descriptors without the zones' locks; the free chunks stay, purged. */
static size_t release_chunks_locked(struct zone *z, uint32_t now, bool force, bool keep_one)
{
	size_t bytes = 0;
	if (mki_leak_active)
		return 0;
	struct mki_page *head = &z->free_area[MKI_MAX_ORDER];
	struct mki_page *pg = head->lru.next;
	bool kept = !keep_one;
	while (pg && pg != head) {
		struct mki_page *next = pg->lru.next;
		size_t i;
		struct mki_chunk *c = chunk_of_free_head(pg, &i);
		if (!kept) {
			kept = true;
		} else if (decayed(pg, now, force)) {
			bytes += (pg->flags & MKI_PF_DIRTY) ? MKI_CHUNK_SIZE : 0;
			chunk_release_locked(c);
		}
		pg = next;
	}
	return bytes;
}

size_t mki_page_purge(bool force)
{
	uint32_t now = (uint32_t)mki_clock_ms();
	size_t bytes = 0;
	for (struct zone *z = zones; z < zones + MKI_ZONES; z++) {
		if (!zone_chunks(z))
			continue;
		mki_lock(&z->lock);
		bytes += release_chunks_locked(z, now, force, !force);
		for (unsigned k = MKI_PURGE_MIN_ORDER; k <= MKI_MAX_ORDER; k++)
			bytes += purge_order_locked(z, k, now, force);
		if (force)
			for (unsigned k = 0; k < MKI_PURGE_MIN_ORDER; k++)
				bytes += purge_order_locked(z, k, now, force);
		mki_unlock(&z->lock);
	}
	atomic_store_explicit(&last_purge_ms, mki_clock_ms(), memory_order_relaxed);
	return bytes;
}

/* Too much free and resident memory: release free chunks (keeping one), then
 * purge free blocks, whatever their age but the longest free first (a freed
 * block goes to the head of its list), down to MKI_DIRTY_KEEP. Not all of
 * them: a program that frees a great deal and then allocates again
 * (python's collector) would fault the pages back in; purging them all cost
 * python3 155 k page faults a run instead of 117 k. And not from 64 MiB on,
 * as at first: python3 frees more than that at once, to allocate it again
 * within milliseconds, and made 115 k faults instead of 57 k (0.81 against
 * 0.70 s). */
static size_t dirty_pages_all(void)
{
	size_t n = 0;
	for (struct zone *z = zones; z < zones + MKI_ZONES; z++)
		n += atomic_load_explicit(&z->dirty_hint, memory_order_relaxed);
	return n;
}

/* The limits hold for all zones together: zone after zone purges until the
 * total, the other zones' parts read from their hints, is down to the
 * target. */
static void purge_excess(void)
{
	if (dirty_pages_all() <= MKI_DIRTY_MAX_PAGES)
		return;
	uint32_t now = (uint32_t)mki_clock_ms();
	const size_t target = MKI_DIRTY_KEEP_PAGES;
	for (struct zone *z = zones; z < zones + MKI_ZONES && dirty_pages_all() > target; z++) {
		if (!atomic_load_explicit(&z->dirty_hint, memory_order_relaxed))
			continue;
		mki_lock(&z->lock);
		release_chunks_locked(z, now, true, true);
		for (unsigned k = MKI_MAX_ORDER + 1; k-- > MKI_PURGE_MIN_ORDER;) {
			struct mki_page *head = &z->free_area[k];
			struct mki_page *pg = head->lru.prev;
			while (pg && pg != head && dirty_pages_all() > target) {
				struct mki_page *prev = pg->lru.prev;
				if (pg->flags & MKI_PF_DIRTY)
					purge_block_locked(pg, k);
				pg = prev;
			}
		}
		mki_unlock(&z->lock);
	}
}

/* Called from slow paths: one relaxed load and a compare in the common case. */
void mki_page_maybe_purge(void)
{
	if (!mki_clock_due(&last_purge_ms, mki_opt.decay_ms / 4))
		return; /* not yet, or another thread does it */
	mki_page_purge(false);
	mki_large_purge(false);
}

/* ------------------------------------------------------------ statistics */

void mki_page_stats(struct mk_stats *st)
{
	size_t nr_free[MKI_ORDERS] = {0}, chunks = 0, clean = 0;
	for (struct zone *z = zones; z < zones + MKI_ZONES; z++) {
		mki_lock(&z->lock);
		chunks += zone_chunks(z);
		clean += z->clean_free_pages;
		for (unsigned k = 0; k <= MKI_MAX_ORDER; k++)
			nr_free[k] += z->nr_free[k];
		mki_unlock(&z->lock);
	}
	st->chunks += chunks;
	size_t free_pages = 0;
	for (unsigned k = 0; k <= MKI_MAX_ORDER; k++) {
		st->buddy_free_blocks[k] += nr_free[k];
		free_pages += nr_free[k] << k;
	}
	st->buddy_free_bytes += free_pages << MKI_PAGE_SHIFT;
	st->buddy_purged_bytes += clean << MKI_PAGE_SHIFT;
	st->mapped_bytes += chunks * MKI_CHUNK_SIZE;
	st->active_bytes += (chunks * MKI_CHUNK_PAGES - free_pages) << MKI_PAGE_SHIFT;
	/* external fragmentation: the share of free pages that are not in a
	 * block of the largest order present */
	int top = MKI_MAX_ORDER;
	while (top >= 0 && !nr_free[top])
		top--;
	if (free_pages && top >= 0)
		st->external_frag = 1.0 - (double)(nr_free[top] << top) / (double)free_pages;
}

/* ------------------------------------------------------------ fork */

void mki_page_fork_prepare(void)
{
	for (struct zone *z = zones; z < zones + MKI_ZONES; z++)
		mki_lock_before_fork(&z->lock);
}

void mki_page_fork_parent(void)
{
	for (struct zone *z = zones + MKI_ZONES; z-- > zones;)
		mki_unlock_after_fork(&z->lock);
}

void mki_page_fork_child(void)
{
	for (struct zone *z = zones; z < zones + MKI_ZONES; z++)
		mki_lock_reset(&z->lock);
	/* a fork from a signal handler may have cut a free between a cached
	 * lookup's key and its chunk (mki_heap's chunk_key): none is trusted */
	atomic_fetch_add_explicit(&mki_chunk_epoch, 2, memory_order_relaxed);
}

/* ------------------------------------------------------------ public API */

void *mk_pages_alloc(unsigned order)
{
	mki_init();
	return mki_pages_alloc(order, MKI_PAGE_BLOCK, NULL);
}

void mk_pages_free(void *pages, unsigned order)
{
	if (!pages)
		return;
	struct mki_chunk *c = mki_chunk_of(pages);
	if (!c || ((uintptr_t)pages & (MKI_PAGE_SIZE - 1)))
		mki_fatal("mk_pages_free of invalid pointer %p", pages);
	struct mki_page *pg = mki_page_desc(c, pages);
	if (pg->kind == MKI_PAGE_FREE || pg->kind == MKI_PAGE_NONE)
		mki_fatal("double free of %p (mk_pages_free)", pages);
	if (pg->kind != MKI_PAGE_BLOCK || !is_head(c, pg))
		mki_fatal("mk_pages_free of invalid pointer %p (not a page block)", pages);
	if (pg->order != order)
		mki_fatal("mk_pages_free of %p with order %u, allocated with order %u", pages,
			  order, (unsigned)pg->order);
	mki_pages_free(pages, order);
}

/* ------------------------------------------------------------ invariants */

/* Walk every chunk and free list and check the buddy system's invariants:
 * (a) a free block is aligned to its size and its tail pages are unmarked,
 * (b) no free block has a free buddy of the same order (it would have
 *     merged), (c) the counts agree with the lists. 0 if all hold, else the
 *     number of the broken rule. For tests and MEMKIT debugging. */
static int check_zone_locked(const struct zone *z)
{
	int bad = 0;
	size_t listed[MKI_ORDERS] = {0}, found[MKI_ORDERS] = {0};
	for (unsigned k = 0; k <= MKI_MAX_ORDER; k++) {
		bool purged_seen = false;
		for (struct mki_page *pg = z->free_area[k].lru.next; pg && pg != &z->free_area[k];
		     pg = pg->lru.next) {
			size_t i;
			listed[k]++;
			bool dirty = pg->flags & MKI_PF_DIRTY;
			if (dirty && purged_seen)
				bad = 4; /* a resident block behind a purged one */
			purged_seen |= !dirty;
			if (zone_of(chunk_of_free_head(pg, &i)) != z)
				bad = 5; /* on another zone's lists than its chunk's */
		}
	}
	for (struct mki_chunk *c = z->chunk_list; c && !bad; c = c->next) {
		size_t free_pages = 0;
		for (size_t i = 0; i < MKI_CHUNK_PAGES && !bad;) {
			struct mki_page *pg = &c->pages[i];
			if (pg->kind != MKI_PAGE_FREE) {
				i++;
				continue;
			}
			size_t n = (size_t)1 << pg->order;
			if (i & (n - 1))
				bad = 1;
			for (size_t j = 1; j < n && !bad; j++)
				if (pg[j].kind != MKI_PAGE_NONE)
					bad = 1;
			if (pg->order < MKI_MAX_ORDER && is_free_head(&c->pages[i ^ n], pg->order))
				bad = 2;
			found[pg->order]++;
			free_pages += n;
			i += n;
		}
		if (!bad && free_pages != c->free_pages)
			bad = 3;
	}
	for (unsigned k = 0; k <= MKI_MAX_ORDER && !bad; k++)
		if (listed[k] != z->nr_free[k] || found[k] != z->nr_free[k])
			bad = 3;
	return bad;
}

int mki_page_check(void)
{
	int bad = 0;
	for (struct zone *z = zones; z < zones + MKI_ZONES && !bad; z++) {
		mki_lock(&z->lock);
		bad = check_zone_locked(z);
		mki_unlock(&z->lock);
	}
	return bad;
}
