/* large.c - blocks at or above the mmap threshold: a mapping each, as the
 * notes say glibc does above 128 KiB, so that freeing one gives it back to
 * the OS. Two things glibc does not do:
 *
 * - Freed mappings wait in a cache (each at most MKI_LARGE_CACHE_MAX bytes)
 *   for MEMKIT_DECAY_MS, so a loop that
 *   allocates and frees a 1 MiB buffer makes no system call per iteration;
 *   the part of a range not reused for MKI_LARGE_PURGE_MS gives its pages
 *   back meanwhile.
 *   A block taken from the front of a cached range grows by realloc into
 *   the rest of it, as a heap's top chunk grows: the same pages serve
 *   buffer after buffer. A block that realloc moved here (likely to grow
 *   again) comes from a range its thread freed if there is one, so that
 *   two threads' buffers do not block each other's growth, and the largest
 *   such range, so that it does not outgrow a remnant at once.
 * - Every live mapping is in a hash table keyed by address, so free() of an
 *   address that is not a live large block is caught, never trusted; and
 *   the block needs no header: the pointer is the page-aligned mapping.
 *
 * Both are split in MKI_LARGE_SHARDS parts, each with its own lock, so
 * that threads do not queue on one: the table by a hash of the address,
 * the cache by 64 MiB region of address space (neighbouring ranges meet
 * in one part and join). A thread looks for a range from its own starting
 * part on, through all of them before it maps new memory. With one cache
 * of 64 ranges for all, 16 threads of wl-random on 16 cores took 8x
 * glibc's time: evicted ranges were mapped and faulted in again, and every
 * large block went through one lock.
 *
 * Locks: a table shard's lock may be held while taking a cache shard's
 * (realloc growing into the range after a block), never the other way;
 * no other lock is taken under them (munmap happens after unlocking).
 * May call: os.c, meta.c, libc.c.
 */
#include <errno.h>
#include <string.h>
#include "memkit/internal.h"

#define MKI_LARGE_CACHE	      256		 /* ranges a shard */
#define MKI_LARGE_CACHE_MAX   ((size_t)64 << 20) /* one mapping */
#define MKI_LARGE_CACHE_TOTAL ((size_t)64 << 20) /* all of a shard's: 1 GiB in all */
#ifndef MKI_LARGE_PURGE_MS
#define MKI_LARGE_PURGE_MS 10 /* idle cached ranges give their pages back */
#endif
#define MKI_LARGE_GROW_AHEAD_MAX ((size_t)64 << 20) /* address space a realloc adds ahead */

struct large_entry {
	uintptr_t addr; /* 0 empty */
	size_t size;	/* bytes mapped */
};

struct cached_map {
	void *addr;
	size_t size;
	uint64_t since_ms;  /* when memory was last freed into it */
	uint64_t window_ms; /* when its current purge window began */
	char *hot_end;	    /* the furthest its front was taken to in the window */
	char *clean_from;   /* its pages from here on went back (MADV_DONTNEED) */
	const void *freer;  /* the thread that last gave it memory (its tag's address) */
};

#define MKI_LARGE_SHARDS 16 /* a power of two */
/* the last addresses freed, to tell a double free from a foreign pointer */
#define RECENT 64

struct large_table { /* the live blocks whose addresses hash here */
	mki_lock_t lock;
	struct large_entry *t;
	size_t cap, live;
	size_t live_bytes;
	/* Bumped whenever a block leaves this table or changes size: a
	 * thread's memory of its last lookup (a buffer realloc'ed a few bytes
	 * at a time asks again and again) holds only while it is unchanged. */
	_Atomic uint64_t gen;
	uintptr_t recent[RECENT];
	unsigned recent_next;
} __attribute__((aligned(64)));

struct large_cache { /* freed ranges of the blocks some threads allocated */
	mki_lock_t lock;
	size_t n, bytes;
	size_t largest;		     /* no range is larger; exact after a take looked at all */
	_Atomic size_t largest_hint; /* largest, for threads to peek at without the lock */
	struct cached_map m[MKI_LARGE_CACHE];
} __attribute__((aligned(64)));

static struct large_table tables[MKI_LARGE_SHARDS];
static struct large_cache caches[MKI_LARGE_SHARDS];
static _Atomic unsigned next_cache_shard;
static __thread unsigned my_cache_shard1 __attribute__((tls_model("initial-exec")));

struct last_lookup {
	uintptr_t addr; /* ~address */
	size_t size;
	uint64_t gen;
};
static __thread struct last_lookup last_lookup __attribute__((tls_model("initial-exec")));
/* A thread's own address: tells cached ranges a thread freed from others'. */
static __thread char thread_tag __attribute__((tls_model("initial-exec")));

static size_t hash_addr(uintptr_t a)
{
	a >>= MKI_PAGE_SHIFT;
	a *= 0x9E3779B97F4A7C15ull;
	return (size_t)(a >> 17);
}

/* The top bits of the same product: independent of the slot's bits. */
static struct large_table *table_of(uintptr_t a)
{
	uint64_t h = (uint64_t)(a >> MKI_PAGE_SHIFT) * 0x9E3779B97F4A7C15ull;
	return &tables[h >> 60 & (MKI_LARGE_SHARDS - 1)];
}

/* A freed range goes to the cache shard of its address region (64 MiB),
 * so that ranges next to each other, which the kernel hands out in a row,
 * meet in one shard and join. */
#define MKI_LARGE_REGION_SHIFT 26
static struct large_cache *cache_of(const void *range)
{
	return &caches[(uintptr_t)range >> MKI_LARGE_REGION_SHIFT & (MKI_LARGE_SHARDS - 1)];
}

/* Where a thread starts looking for a range: as many starting points as
 * CPUs (up to MKI_LARGE_SHARDS), taken by threads in turn, so that threads
 * running at once mostly take different locks first. Not more: ranges are
 * reused where searches start, and with 16 threads on 2 CPUs, 16 starting
 * points left most shards' ranges idle past the purge window (twice the
 * page faults). */
static unsigned my_cache_shard(void)
{
	if (!my_cache_shard1) {
		unsigned n = mki_cpu_count();
		n = n < MKI_LARGE_SHARDS ? n : MKI_LARGE_SHARDS;
		my_cache_shard1 =
		    atomic_fetch_add_explicit(&next_cache_shard, 1, memory_order_relaxed) % n + 1;
	}
	return my_cache_shard1 - 1;
}

/* ------------------------------------------------------------ hash table */

static struct large_entry *table_find_locked(struct large_table *t, uintptr_t a)
{
	if (!t->t)
		return NULL;
	for (size_t i = hash_addr(a) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		if (t->t[i].addr == a)
			return &t->t[i];
		if (!t->t[i].addr)
			return NULL;
	}
}

static void table_put_raw(struct large_entry *t, size_t cap, struct large_entry e)
{
	size_t i = hash_addr(e.addr) & (cap - 1);
	while (t[i].addr)
		i = (i + 1) & (cap - 1);
	t[i] = e;
}

static int table_grow_locked(struct large_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	struct large_entry *n = mki_meta_alloc(cap * sizeof(*n));
	if (!n)
		return ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		if (t->t[i].addr)
			table_put_raw(n, cap, t->t[i]);
	if (t->t)
		mki_meta_free(t->t, t->cap * sizeof(*n));
	t->t = n;
	t->cap = cap;
	return 0;
}

/* Room for one more entry: once it returns 0, the next insert cannot fail. */
static int table_reserve_locked(struct large_table *t)
{
	return (t->live + 1) * 2 > t->cap ? table_grow_locked(t) : 0;
}

static void table_put_locked(struct large_table *t, uintptr_t a, size_t size)
{
	table_put_raw(t->t, t->cap, (struct large_entry){a, size});
	t->live++;
	t->live_bytes += size;
}

static int table_insert_locked(struct large_table *t, uintptr_t a, size_t size)
{
	if (table_reserve_locked(t))
		return ENOMEM;
	table_put_locked(t, a, size);
	return 0;
}

/* For a block that realloc moved, which must not be lost: mremap has
 * already freed its old range. Past the load the table keeps (at most half
 * full) there is room to spare, so only a table with no free slot at all
 * (never seen: every other insert grows it first) is fatal. */
static void table_insert_moved_locked(struct large_table *t, uintptr_t a, size_t size)
{
	if (table_reserve_locked(t) && (!t->t || t->live + 1 >= t->cap))
		mki_fatal("out of memory for the table of large blocks (block %p)", (void *)a);
	table_put_locked(t, a, size);
}

/* Deletion without tombstones (which would pile up and force rebuilds):
 * each later entry of the probe run moves back into the hole unless that
 * would put it before its home slot, as in Knuth's algorithm R. */
static void table_remove_locked(struct large_table *t, struct large_entry *e)
{
	size_t mask = t->cap - 1, hole = (size_t)(e - t->t);
	atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
	t->live_bytes -= e->size;
	t->live--;
	for (size_t j = (hole + 1) & mask; t->t[j].addr; j = (j + 1) & mask) {
		size_t home = hash_addr(t->t[j].addr) & mask;
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t->t[hole] = t->t[j];
			hole = j;
		}
	}
	t->t[hole].addr = 0;
}

/* ------------------------------------------------------------ reuse cache */

/* The front `size` bytes of a cached range are handed out. */
static void cache_advance_front(struct cached_map *m, size_t size)
{
	m->addr = (char *)m->addr + size;
	m->size -= size;
	if ((char *)m->addr > m->hot_end)
		m->hot_end = m->addr;
}

/* Resident memory for `size` bytes from the cache: the smallest cached
 * range that holds it. A range much larger than asked is split, the rest
 * staying cached: mappings are plain address ranges to the kernel, so a
 * part can be handed out, and later unmapped, on its own. No system call
 * and no page fault, which is the point of the cache. */
static bool cache_take_locked(struct large_cache *c, size_t size, size_t align, bool grows,
			      void **addr, size_t *mapped)
{
	size_t pick = c->n, largest = 0;
	if (align > MKI_PAGE_SIZE)
		return false;
	/* the smallest that holds it; for a block that will grow, the largest,
	 * of those this thread freed if any: it grows into the rest of the
	 * range (cache_take_after_locked), which another thread's block taken
	 * right after it would block, and a remnant too small would send it
	 * to new pages while the range its last buffer used sits idle. (Not
	 * for every block: a worse fit costs the programs that do not grow
	 * theirs.) A thread that has freed ranges here but none large enough
	 * leaves the others' alone too: such a range is where its freer's
	 * next buffer grows, and taking it sent each thread of wl-realloc to
	 * the other's ranges in turn, every one of them kept resident (peak
	 * RSS 5.1 -> 4.5 MiB). A thread that never frees one (buffers handed
	 * to another thread to free) still takes the others'. */
	bool have_mine = false;
	for (size_t i = 0; grows && i < c->n; i++)
		have_mine |= c->m[i].freer == &thread_tag;
	for (size_t i = 0; i < c->n; i++) {
		const struct cached_map *m = &c->m[i], *best = &c->m[pick];
		largest = m->size > largest ? m->size : largest;
		if (m->size < size)
			continue;
		bool mine = grows && m->freer == &thread_tag;
		if (have_mine && !mine)
			continue;
		bool pick_mine = grows && pick < c->n && best->freer == &thread_tag;
		bool fits_better =
		    pick < c->n && (grows ? m->size > best->size : m->size < best->size);
		if (pick == c->n || (mine && !pick_mine) || (mine == pick_mine && fits_better))
			pick = i;
	}
	if (pick == c->n) {
		c->largest = largest;
		return false;
	}
	struct cached_map *m = &c->m[pick];
	bool was_largest = m->size == largest;
	*addr = m->addr;
	if (m->size - size >= mki_opt.mmap_threshold) {
		*mapped = size;
		cache_advance_front(m, size);
	} else {
		*mapped = m->size;
		*m = c->m[--c->n];
	}
	c->bytes -= *mapped;
	c->largest = largest;
	if (was_largest) { /* it may have been the only one that large */
		c->largest = 0;
		for (size_t i = 0; i < c->n; i++)
			c->largest = c->m[i].size > c->largest ? c->m[i].size : c->largest;
	}
	return true;
}

/* Up to `ahead` bytes (at least `need`) of the cached range that starts
 * right after a block ending at `end`, for the block to grow into: no
 * system call, and the range's pages (often resident from the last buffer
 * that grew there) are reused instead of new ones faulted in. The rest of
 * the range stays cached unless too small to be worth keeping. Returns
 * the bytes taken, 0 if no such range. */
static size_t cache_take_after_locked(struct large_cache *c, char *end, size_t need, size_t ahead)
{
	for (size_t i = 0; i < c->n; i++) {
		struct cached_map *m = &c->m[i];
		if (m->addr != end || m->size < need)
			continue;
		size_t take = m->size < ahead ? m->size : ahead;
		if (m->size - take < mki_opt.mmap_threshold)
			take = m->size;
		cache_advance_front(m, take);
		c->bytes -= take;
		if (!m->size)
			*m = c->m[--c->n];
		return take;
	}
	return 0;
}

/* The part of a cached range not handed out for MKI_LARGE_PURGE_MS gives
 * its pages back but stays mapped (as mimalloc purges after a short delay):
 * a program that frees and allocates large blocks in a loop reuses them
 * resident, one whose large blocks come and go (buffers grown by realloc,
 * then freed) does not keep them all resident for the decay time; reuse of
 * a purged range costs page faults, not mmap. By part, not whole: a range
 * whose front serves buffer after buffer (each thread's growing buffers
 * do this) never sits idle as a whole, and the pages further in that
 * earlier, larger buffers touched would stay resident for good. Each
 * window of MKI_LARGE_PURGE_MS purges what lies beyond the furthest the
 * front was taken to during it. Under the lock: once unlocked, the range
 * may be handed out. */
static void purge_idle_locked(struct large_cache *c, uint64_t now)
{
	for (size_t i = 0; i < c->n; i++) {
		struct cached_map *m = &c->m[i];
		if (now - m->window_ms < MKI_LARGE_PURGE_MS)
			continue;
		char *end = (char *)m->addr + m->size;
		char *from = m->hot_end > (char *)m->addr ? m->hot_end : (char *)m->addr;
		if (from < m->clean_from && !mki_os_purge(from, (size_t)(end - from)))
			m->clean_from = from;
		m->window_ms = now;
		m->hot_end = m->addr;
	}
}

/* Caches a freed range, or hands it back in out[] to be unmapped, with the
 * oldest entry when it had to make room. Returns how many out[] holds. */
static unsigned cache_put_locked(struct large_cache *c, void *addr, size_t size,
				 struct cached_map out[2])
{
	unsigned n = 0;
	/* a range next to cached ones joins them, on both sides: what a split
	 * handed out comes back to its remainder, as buddies merge, and a gap
	 * between two cached ranges closes (joined on one side only, the
	 * three stayed two, and a request larger than either mapped new
	 * pages while both sat resident: wl-large's footprint) */
	struct cached_map *left = NULL, *right = NULL;
	for (size_t i = 0; i < c->n; i++) {
		struct cached_map *m = &c->m[i];
		if ((char *)m->addr + m->size == (char *)addr)
			left = m;
		else if ((char *)addr + size == m->addr)
			right = m;
	}
	if (left || right) {
		struct cached_map *m = left ? left : right;
		if (!left) {
			m->addr = addr; /* below hot_end: kept this window */
		} else {
			m->hot_end = (char *)addr + size;
			m->clean_from = m->hot_end;
		}
		m->size += size;
		if (left && right) { /* right's purged pages stay past clean_from */
			m->size += right->size;
			m->clean_from = right->clean_from;
			*right = c->m[--c->n];
			if (m == &c->m[c->n]) /* left was the last entry: it moved */
				m = right;
		}
		c->largest = m->size > c->largest ? m->size : c->largest;
		m->since_ms = mki_clock_ms();
		m->freer = &thread_tag;
		c->bytes += size;
		purge_idle_locked(c, m->since_ms);
		return 0;
	}
	if (c->n && (c->n == MKI_LARGE_CACHE || c->bytes + size > MKI_LARGE_CACHE_TOTAL)) {
		size_t oldest = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->m[i].since_ms < c->m[oldest].since_ms)
				oldest = i;
		out[n++] = c->m[oldest];
		c->m[oldest] = c->m[--c->n];
		c->bytes -= out[0].size;
	}
	if (c->bytes + size > MKI_LARGE_CACHE_TOTAL) {
		out[n++] = (struct cached_map){.addr = addr, .size = size};
		return n;
	}
	uint64_t now = mki_clock_ms();
	char *end = (char *)addr + size;
	c->m[c->n++] = (struct cached_map){addr, size, now, now, addr, end, &thread_tag};
	c->bytes += size;
	c->largest = size > c->largest ? size : c->largest;
	purge_idle_locked(c, now);
	return n;
}

/* ------------------------------------------------------------ mappings
 * The secure build puts a PROT_NONE page before and after each large block,
 * and places a block that needs no more than 16-byte alignment against the
 * guard after it, as Electric Fence does: running off the end by one byte
 * faults. It keeps no reuse cache: a freed block is unmapped at once. */

#ifdef MKI_SECURE
#define GUARD MKI_PAGE_SIZE
#else
#define GUARD ((size_t)0)
#endif

static int large_map(size_t size, size_t align, void **out)
{
	size_t page_align = align < MKI_PAGE_SIZE ? MKI_PAGE_SIZE : align;
	if (!GUARD)
		return mki_os_map(size, page_align, out);
	size_t tail = size & (MKI_PAGE_SIZE - 1); /* slack left before the guard */
	size = mki_align_up(size, MKI_PAGE_SIZE);
	size_t extra = page_align > MKI_PAGE_SIZE ? page_align : 0;
	size_t total = size + 2 * GUARD + extra;
	char *base;
	int err = mki_os_map(total, MKI_PAGE_SIZE, (void **)&base);
	if (err)
		return err;
	char *p = (char *)mki_align_up((uintptr_t)base + GUARD, page_align);
	char *lo = p - GUARD, *hi = p + size + GUARD;
	if (lo > base)
		mki_os_unmap(base, (size_t)(lo - base));
	if (base + total > hi)
		mki_os_unmap(hi, (size_t)(base + total - hi));
	mki_os_protect(lo, GUARD, false);
	mki_os_protect(p + size, GUARD, false);
	if (tail && align <= MKI_ALIGN)
		p += MKI_PAGE_SIZE - tail;
	*out = p;
	return 0;
}

/* size: what large_map was given for this p */
static void large_unmap(void *p, size_t size)
{
	uintptr_t head = (uintptr_t)p & ~(uintptr_t)(MKI_PAGE_SIZE - 1);
	size_t span = mki_align_up((uintptr_t)p + size - head, MKI_PAGE_SIZE);
	mki_os_unmap((char *)head - GUARD, span + 2 * GUARD);
}

/* ------------------------------------------------------------ blocks */

static void cache_lock(struct large_cache *c)
{
	mki_lock(&c->lock);
}

static void cache_unlock(struct large_cache *c)
{
	atomic_store_explicit(&c->largest_hint, c->n ? c->largest : 0, memory_order_relaxed);
	mki_unlock(&c->lock);
}

/* A cached range for `size` bytes: the first shard that has one, from the
 * thread's own on, passing over (for a second round) shards whose lock
 * another thread holds, so that threads do not queue behind each other's
 * searches. A shard whose ranges are all smaller is not locked at all. */
static bool may_fit(const struct large_cache *c, size_t size)
{
	return atomic_load_explicit(&c->largest_hint, memory_order_relaxed) >= size;
}

/* cache_take_locked on a shard whose lock the caller took */
static bool cache_take_and_unlock(struct large_cache *c, size_t size, size_t align, bool grows,
				  void **addr, size_t *mapped)
{
	bool found = cache_take_locked(c, size, align, grows, addr, mapped);
	cache_unlock(c);
	return found;
}

static bool cache_take(unsigned own, size_t size, size_t align, bool grows, void **addr,
		       size_t *mapped)
{
	uint32_t busy = 0;
	for (unsigned i = 0; i < MKI_LARGE_SHARDS; i++) {
		unsigned k = (own + i) & (MKI_LARGE_SHARDS - 1);
		struct large_cache *c = &caches[k];
		if (!may_fit(c, size))
			continue;
		if (i == 0) {
			cache_lock(c);
		} else if (!mki_trylock(&c->lock)) {
			busy |= (uint32_t)1 << k;
			continue;
		}
		if (cache_take_and_unlock(c, size, align, grows, addr, mapped))
			return true;
	}
	for (unsigned k = 0; busy; k++, busy >>= 1) {
		struct large_cache *c = &caches[k];
		if (!(busy & 1) || !may_fit(c, size))
			continue;
		cache_lock(c);
		if (cache_take_and_unlock(c, size, align, grows, addr, mapped))
			return true;
	}
	return false;
}

void *mki_large_alloc(size_t size, size_t align, unsigned how)
{
	bool zero = how & MKI_ALLOC_ZERO;
	size_t mapped = GUARD ? mki_align_up(size, MKI_ALIGN) : mki_align_up(size, MKI_PAGE_SIZE);
	void *p = NULL;
	unsigned own = my_cache_shard();
	if (mapped < size || align > MKI_CHUNK_SIZE * 64) {
		errno = ENOMEM;
		return NULL;
	}
	bool reused = cache_take(own, mapped, align, how & MKI_ALLOC_GROWS, &p, &mapped);
	if (!reused && large_map(mapped, align, &p)) {
		errno = ENOMEM;
		return NULL;
	}
	struct large_table *t = table_of((uintptr_t)p);
	mki_lock(&t->lock);
	int err = table_insert_locked(t, (uintptr_t)p, mapped);
	mki_unlock(&t->lock);
	if (err) {
		large_unmap(p, mapped);
		errno = ENOMEM;
		return NULL;
	}
	if (reused && zero)
		memset(p, 0, size);
	mki_page_maybe_purge();
	return p;
}

bool mki_large_free(void *p)
{
	struct large_table *t = table_of((uintptr_t)p);
	mki_lock(&t->lock);
	struct large_entry *e = table_find_locked(t, (uintptr_t)p);
	if (!e) {
		mki_unlock(&t->lock);
		return false;
	}
	struct large_entry gone = *e;
	table_remove_locked(t, e);
	t->recent[t->recent_next++ % RECENT] = (uintptr_t)p;
	mki_unlock(&t->lock);

	struct cached_map out[2];
	unsigned nout = 0;
	if (gone.size <= MKI_LARGE_CACHE_MAX && mki_opt.decay_ms && !GUARD) {
		struct large_cache *c = cache_of(p);
		cache_lock(c);
		nout = cache_put_locked(c, p, gone.size, out);
		cache_unlock(c);
	} else {
		out[nout++] = (struct cached_map){.addr = p, .size = gone.size};
	}
	for (unsigned i = 0; i < nout; i++)
		large_unmap(out[i].addr, out[i].size);
	mki_page_maybe_purge();
	return true;
}

void *mki_large_containing(const void *p)
{
	uintptr_t a = (uintptr_t)p, found = 0;
	for (struct large_table *t = tables; t < tables + MKI_LARGE_SHARDS && !found; t++) {
		mki_lock(&t->lock);
		for (size_t i = 0; i < t->cap && !found; i++)
			if (t->t[i].addr && a - t->t[i].addr < t->t[i].size)
				found = t->t[i].addr;
		mki_unlock(&t->lock);
	}
	return (void *)found;
}

bool mki_large_was_freed(const void *p)
{
	struct large_table *t = table_of((uintptr_t)p);
	bool found = false;
	mki_lock(&t->lock);
	for (unsigned i = 0; i < RECENT && !found; i++)
		found = t->recent[i] == (uintptr_t)p;
	mki_unlock(&t->lock);
	return found;
}

const _Atomic uint64_t *mki_large_gen_of(const void *p)
{
	return &table_of((uintptr_t)p)->gen;
}

size_t mki_large_usable(const void *p)
{
	struct last_lookup *last = &last_lookup;
	struct large_table *t = table_of((uintptr_t)p);
	uint64_t gen = atomic_load_explicit(&t->gen, memory_order_acquire);
	if (last->addr == ~(uintptr_t)p && last->gen == gen)
		return last->size;
	mki_lock(&t->lock);
	struct large_entry *e = table_find_locked(t, (uintptr_t)p);
	size_t n = e ? e->size : 0;
	gen = atomic_load_explicit(&t->gen, memory_order_relaxed);
	mki_unlock(&t->lock);
	if (n) /* complemented: not a pointer to the block for the leak scan */
		*last = (struct last_lookup){~(uintptr_t)p, n, gen};
	return n;
}

/* The mapping for a block that mremap must move to grow: twice the room it
 * would have grown into in place (ahead, at least want), under twice the
 * size asked for. Each move leaves a remnant of the block's last range
 * behind, resident and cached, and the buffer's next growth would move it
 * again: in wl-realloc each thread's buffers went through several ranges a
 * purge window, all of them resident (peak RSS 4.9 -> 4.3 MiB, glibc 3.7;
 * page faults 940-2400 -> 860-1070 and mremap calls 14-69 -> 6-9 a run).
 * Address space only: the pages stay untouched until used. */
static size_t room_to_move(size_t size, size_t want, size_t ahead)
{
	size_t extra = ahead > SIZE_MAX / 2 ? MKI_LARGE_GROW_AHEAD_MAX : 2 * ahead - want;
	if (extra > MKI_LARGE_GROW_AHEAD_MAX)
		extra = MKI_LARGE_GROW_AHEAD_MAX;
	size_t room = want > SIZE_MAX - extra ? want : want + extra;
	/* under twice the size asked for: the next, larger realloc must find
	 * the block at least half used, or it would shrink the mapping
	 * (realloc_large's rule), and the one after grow it again, two
	 * mremaps for every few bytes appended */
	size_t below_twice =
	    size > SIZE_MAX / 2 ? room : (2 * size - 1) & ~(size_t)(MKI_PAGE_SIZE - 1);
	if (room > below_twice)
		room = below_twice > ahead ? below_twice : ahead;
	return room;
}

/* Grow or shrink with mremap: the kernel moves page-table entries instead
 * of copying bytes. A block that grows gets half as much again as it asks
 * for: address space, not memory (the pages stay untouched until used), and
 * a buffer grown a little at a time then costs a few system calls (and
 * TLB shootdowns), not one per page; twice that if it has to move. NULL
 * (errno ENOMEM) leaves the block as it was. */
void *mki_large_realloc(void *p, size_t size)
{
	size_t want = mki_align_up(size, MKI_PAGE_SIZE);
	struct large_table *t = table_of((uintptr_t)p);
	mki_lock(&t->lock);
	/* a block that moves leaves the table and comes back under another
	 * address: room for it first, so that a moved block is never lost */
	if (table_reserve_locked(t)) {
		mki_unlock(&t->lock);
		return NULL;
	}
	struct large_entry *e = table_find_locked(t, (uintptr_t)p);
	size_t have = e ? e->size : 0;
	bool keep = have && want >= size && want <= have && want >= have / 2;
	bool move = have && want >= size && !keep && !GUARD;
	size_t ahead = want;
	if (move && want > have) {
		ahead = mki_align_up(have + have / 2, MKI_PAGE_SIZE);
		if (ahead > want && ahead - want > MKI_LARGE_GROW_AHEAD_MAX)
			ahead = want + MKI_LARGE_GROW_AHEAD_MAX;
		if (ahead < want)
			ahead = want;
		struct large_cache *c = cache_of((char *)p + have);
		cache_lock(c);
		size_t taken =
		    cache_take_after_locked(c, (char *)p + have, want - have, ahead - have);
		cache_unlock(c);
		if (taken) {
			e->size = have + taken;
			t->live_bytes += taken;
			/* threads' memory of the block's size is stale now */
			atomic_fetch_add_explicit(&t->gen, 1, memory_order_release);
			mki_unlock(&t->lock);
			return p;
		}
	}
	/* Off the table before mremap frees the old range: another thread may
	 * map that range at once, and its block must not meet our stale entry. */
	if (move)
		table_remove_locked(t, e);
	mki_unlock(&t->lock);
	if (keep)
		return p; /* shrinking by less than half: keep the mapping */
	if (!move)
		return NULL; /* not ours, or guarded (mremap would move the guards) */
	want = want > have ? room_to_move(size, want, ahead) : ahead;
	void *q;
	int err = mki_os_remap(p, have, want, true, &q);
	struct large_table *tq = table_of((uintptr_t)(err ? p : q));
	mki_lock(&tq->lock);
	table_insert_moved_locked(tq, (uintptr_t)(err ? p : q), err ? have : want);
	mki_unlock(&tq->lock);
	if (err) {
		errno = ENOMEM;
		return NULL;
	}
	return q;
}

/* Ranges idle past the decay (all with force) go back, a few at a time:
 * unmapped outside the shard's lock, and with a small stack frame, since
 * any thread's malloc may come here (a thread's stack may be 16 KiB). */
#define PURGE_BATCH 16
static size_t purge_some(struct large_cache *c, bool force, uint64_t now, size_t *bytes)
{
	struct cached_map out[PURGE_BATCH];
	size_t n = 0;
	cache_lock(c);
	for (size_t i = 0; i < c->n && n < PURGE_BATCH;) {
		if (force || now - c->m[i].since_ms >= mki_opt.decay_ms) {
			out[n++] = c->m[i];
			c->bytes -= c->m[i].size;
			c->m[i] = c->m[--c->n];
		} else {
			i++;
		}
	}
	cache_unlock(c);
	for (size_t i = 0; i < n; i++) {
		large_unmap(out[i].addr, out[i].size);
		*bytes += out[i].size;
	}
	return n;
}

size_t mki_large_purge(bool force)
{
	size_t bytes = 0;
	uint64_t now = mki_clock_ms();
	for (struct large_cache *c = caches; c < caches + MKI_LARGE_SHARDS; c++)
		while (may_fit(c, 1) && purge_some(c, force, now, &bytes) == PURGE_BATCH)
			;
	return bytes;
}

void mki_large_stats(struct mk_stats *st)
{
	for (struct large_table *t = tables; t < tables + MKI_LARGE_SHARDS; t++) {
		mki_lock(&t->lock);
		st->large_live += t->live;
		st->large_live_bytes += t->live_bytes;
		mki_unlock(&t->lock);
	}
	size_t cached_bytes = 0;
	for (struct large_cache *c = caches; c < caches + MKI_LARGE_SHARDS; c++) {
		cache_lock(c);
		st->large_cached += c->n;
		cached_bytes += c->bytes;
		cache_unlock(c);
	}
	st->large_cached_bytes += cached_bytes;
	st->mapped_bytes += st->large_live_bytes + cached_bytes;
	st->active_bytes += st->large_live_bytes;
	st->allocated_bytes += st->large_live_bytes;
}

/* Tables before caches, the order realloc takes them in. */
void mki_large_fork_prepare(void)
{
	for (unsigned i = 0; i < MKI_LARGE_SHARDS; i++)
		mki_lock_before_fork(&tables[i].lock);
	for (unsigned i = 0; i < MKI_LARGE_SHARDS; i++)
		mki_lock_before_fork(&caches[i].lock);
}

void mki_large_fork_parent(void)
{
	for (unsigned i = MKI_LARGE_SHARDS; i--;)
		mki_unlock_after_fork(&caches[i].lock);
	for (unsigned i = MKI_LARGE_SHARDS; i--;)
		mki_unlock_after_fork(&tables[i].lock);
}

void mki_large_fork_child(void)
{
	for (unsigned i = 0; i < MKI_LARGE_SHARDS; i++) {
		mki_lock_reset(&tables[i].lock);
		mki_lock_reset(&caches[i].lock);
	}
}
