/* large.c - blocks at or above the mmap threshold: a mapping each, as the
 * notes say glibc does above 128 KiB, so that freeing one gives it back to
 * the OS. Two things glibc does not do:
 *
 * - Freed mappings wait in a small cache (MKI_LARGE_CACHE entries, each at
 *   most MKI_LARGE_CACHE_MAX bytes) for MEMKIT_DECAY_MS, so a loop that
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
 * Lock: large_lock guards the table and the cache; no other lock is taken
 * under it (munmap of evicted entries happens after unlocking).
 * May call: os.c, meta.c, libc.c.
 */
#include <errno.h>
#include <string.h>
#include "memkit/internal.h"

#define MKI_LARGE_CACHE	      64
#define MKI_LARGE_CACHE_MAX   ((size_t)64 << 20)  /* one mapping */
#define MKI_LARGE_CACHE_TOTAL ((size_t)128 << 20) /* all of them */
#ifndef MKI_LARGE_PURGE_MS
#define MKI_LARGE_PURGE_MS 10 /* idle cached ranges give their pages back */
#endif
#define TOMBSTONE		 ((uintptr_t)1)
#define MKI_LARGE_GROW_AHEAD_MAX ((size_t)64 << 20) /* address space a realloc adds ahead */

struct large_entry {
	uintptr_t addr; /* 0 empty, TOMBSTONE deleted */
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

static mki_lock_t large_lock = MKI_LOCK_INIT;
static struct large_entry *table;
static size_t table_cap, table_used, table_live; /* used counts tombstones too */
static size_t live_bytes;
/* Bumped whenever a block leaves the table: a thread's memory of its last
 * lookup (a buffer realloc'ed a few bytes at a time asks again and again)
 * holds only while no block has left since. */
_Atomic uint64_t mki_large_gen;
struct last_lookup {
	uintptr_t addr; /* ~address */
	size_t size;
	uint64_t gen;
};
static __thread struct last_lookup last_lookup __attribute__((tls_model("initial-exec")));
static struct cached_map cache[MKI_LARGE_CACHE];
/* A thread's own address: tells cached ranges a thread freed from others'. */
static __thread char thread_tag __attribute__((tls_model("initial-exec")));
static size_t nr_cached, cached_bytes;
/* the last addresses freed, to tell a double free from a foreign pointer */
#define RECENT 64
static uintptr_t recent[RECENT];
static unsigned recent_next;

/* ------------------------------------------------------------ hash table */

static size_t hash_addr(uintptr_t a)
{
	a >>= MKI_PAGE_SHIFT;
	a *= 0x9E3779B97F4A7C15ull;
	return (size_t)(a >> 17);
}

static struct large_entry *table_find_locked(uintptr_t a)
{
	if (!table)
		return NULL;
	for (size_t i = hash_addr(a) & (table_cap - 1);; i = (i + 1) & (table_cap - 1)) {
		if (table[i].addr == a)
			return &table[i];
		if (!table[i].addr)
			return NULL;
	}
}

static void table_put_raw(struct large_entry *t, size_t cap, uintptr_t a, size_t size)
{
	size_t i = hash_addr(a) & (cap - 1);
	while (t[i].addr > TOMBSTONE)
		i = (i + 1) & (cap - 1);
	t[i].addr = a;
	t[i].size = size;
}

static int table_grow_locked(void)
{
	size_t cap = table_cap ? table_cap * 2 : 256;
	if (table_live * 4 < table_cap) /* mostly tombstones: rebuild same size */
		cap = table_cap;
	struct large_entry *t = mki_meta_alloc(cap * sizeof(*t));
	if (!t)
		return ENOMEM;
	for (size_t i = 0; i < table_cap; i++)
		if (table[i].addr > TOMBSTONE)
			table_put_raw(t, cap, table[i].addr, table[i].size);
	if (table)
		mki_meta_free(table, table_cap * sizeof(*t));
	table = t;
	table_cap = cap;
	table_used = table_live;
	return 0;
}

/* Room for one more entry: once it returns 0, the next insert cannot fail. */
static int table_reserve_locked(void)
{
	return (table_used + 1) * 2 > table_cap ? table_grow_locked() : 0;
}

static int table_insert_locked(uintptr_t a, size_t size)
{
	if (table_reserve_locked())
		return ENOMEM;
	table_put_raw(table, table_cap, a, size);
	table_used++;
	table_live++;
	live_bytes += size;
	return 0;
}

static void table_remove_locked(struct large_entry *e)
{
	atomic_fetch_add_explicit(&mki_large_gen, 1, memory_order_release);
	live_bytes -= e->size;
	e->addr = TOMBSTONE;
	table_live--;
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
static bool cache_take_locked(size_t size, size_t align, bool grows, void **addr, size_t *mapped)
{
	size_t pick = nr_cached;
	if (align > MKI_PAGE_SIZE)
		return false;
	/* the smallest that holds it; for a block that will grow, the largest,
	 * of those this thread freed if any: it grows into the rest of the
	 * range (cache_take_after_locked), which another thread's block taken
	 * right after it would block, and a remnant too small would send it
	 * to new pages while the range its last buffer used sits idle. (Not
	 * for every block: a worse fit costs the programs that do not grow
	 * theirs.) */
	for (size_t i = 0; i < nr_cached; i++) {
		if (cache[i].size < size)
			continue;
		bool mine = grows && cache[i].freer == &thread_tag;
		bool pick_mine = grows && pick < nr_cached && cache[pick].freer == &thread_tag;
		bool fits_better = pick < nr_cached && (grows ? cache[i].size > cache[pick].size
							      : cache[i].size < cache[pick].size);
		if (pick == nr_cached || (mine && !pick_mine) || (mine == pick_mine && fits_better))
			pick = i;
	}
	if (pick == nr_cached)
		return false;
	struct cached_map *m = &cache[pick];
	*addr = m->addr;
	if (m->size - size >= mki_opt.mmap_threshold) {
		*mapped = size;
		cache_advance_front(m, size);
	} else {
		*mapped = m->size;
		*m = cache[--nr_cached];
	}
	cached_bytes -= *mapped;
	return true;
}

/* Up to `ahead` bytes (at least `need`) of the cached range that starts
 * right after a block ending at `end`, for the block to grow into: no
 * system call, and the range's pages (often resident from the last buffer
 * that grew there) are reused instead of new ones faulted in. The rest of
 * the range stays cached unless too small to be worth keeping. Returns
 * the bytes taken, 0 if no such range. */
static size_t cache_take_after_locked(char *end, size_t need, size_t ahead)
{
	for (size_t i = 0; i < nr_cached; i++) {
		struct cached_map *m = &cache[i];
		if (m->addr != end || m->size < need)
			continue;
		size_t take = m->size < ahead ? m->size : ahead;
		if (m->size - take < mki_opt.mmap_threshold)
			take = m->size;
		cache_advance_front(m, take);
		cached_bytes -= take;
		if (!m->size)
			*m = cache[--nr_cached];
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
static void purge_idle_locked(uint64_t now)
{
	for (size_t i = 0; i < nr_cached; i++) {
		struct cached_map *m = &cache[i];
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
static unsigned cache_put_locked(void *addr, size_t size, struct cached_map out[2])
{
	unsigned n = 0;
	/* a range next to a cached one joins it: what a split handed out comes
	 * back to its remainder, as buddies merge */
	for (size_t i = 0; i < nr_cached; i++) {
		struct cached_map *m = &cache[i];
		if ((char *)m->addr + m->size == (char *)addr || (char *)addr + size == m->addr) {
			if ((char *)addr < (char *)m->addr) {
				m->addr = addr; /* below hot_end: kept this window */
			} else {
				m->hot_end = (char *)addr + size;
				m->clean_from = m->hot_end;
			}
			m->size += size;
			m->since_ms = mki_clock_ms();
			m->freer = &thread_tag;
			cached_bytes += size;
			purge_idle_locked(m->since_ms);
			return 0;
		}
	}
	if (nr_cached &&
	    (nr_cached == MKI_LARGE_CACHE || cached_bytes + size > MKI_LARGE_CACHE_TOTAL)) {
		size_t oldest = 0;
		for (size_t i = 1; i < nr_cached; i++)
			if (cache[i].since_ms < cache[oldest].since_ms)
				oldest = i;
		out[n++] = cache[oldest];
		cache[oldest] = cache[--nr_cached];
		cached_bytes -= out[0].size;
	}
	if (cached_bytes + size > MKI_LARGE_CACHE_TOTAL) {
		out[n++] = (struct cached_map){.addr = addr, .size = size};
		return n;
	}
	uint64_t now = mki_clock_ms();
	char *end = (char *)addr + size;
	cache[nr_cached++] = (struct cached_map){addr, size, now, now, addr, end, &thread_tag};
	cached_bytes += size;
	purge_idle_locked(now);
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

void *mki_large_alloc(size_t size, size_t align, unsigned how)
{
	bool zero = how & MKI_ALLOC_ZERO;
	size_t mapped = GUARD ? mki_align_up(size, MKI_ALIGN) : mki_align_up(size, MKI_PAGE_SIZE);
	void *p = NULL;
	bool reused;
	if (mapped < size || align > MKI_CHUNK_SIZE * 64) {
		errno = ENOMEM;
		return NULL;
	}
	mki_lock(&large_lock);
	reused = cache_take_locked(mapped, align, how & MKI_ALLOC_GROWS, &p, &mapped);
	mki_unlock(&large_lock);
	if (!reused && large_map(mapped, align, &p)) {
		errno = ENOMEM;
		return NULL;
	}
	mki_lock(&large_lock);
	int err = table_insert_locked((uintptr_t)p, mapped);
	mki_unlock(&large_lock);
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
	struct cached_map out[2];
	unsigned nout = 0;
	bool unmap_now = false;
	size_t size = 0;
	mki_lock(&large_lock);
	struct large_entry *e = table_find_locked((uintptr_t)p);
	if (!e) {
		mki_unlock(&large_lock);
		return false;
	}
	size = e->size;
	table_remove_locked(e);
	recent[recent_next++ % RECENT] = (uintptr_t)p;
	if (size <= MKI_LARGE_CACHE_MAX && mki_opt.decay_ms && !GUARD)
		nout = cache_put_locked(p, size, out);
	else
		unmap_now = true;
	mki_unlock(&large_lock);
	if (unmap_now)
		large_unmap(p, size);
	for (unsigned i = 0; i < nout; i++)
		large_unmap(out[i].addr, out[i].size);
	mki_page_maybe_purge();
	return true;
}

void *mki_large_containing(const void *p)
{
	uintptr_t a = (uintptr_t)p, found = 0;
	mki_lock(&large_lock);
	for (size_t i = 0; i < table_cap && !found; i++)
		if (table[i].addr > TOMBSTONE && a - table[i].addr < table[i].size)
			found = table[i].addr;
	mki_unlock(&large_lock);
	return (void *)found;
}

bool mki_large_was_freed(const void *p)
{
	bool found = false;
	mki_lock(&large_lock);
	for (unsigned i = 0; i < RECENT && !found; i++)
		found = recent[i] == (uintptr_t)p;
	mki_unlock(&large_lock);
	return found;
}

size_t mki_large_usable(const void *p)
{
	struct last_lookup *last = &last_lookup;
	uint64_t gen = atomic_load_explicit(&mki_large_gen, memory_order_acquire);
	if (last->addr == ~(uintptr_t)p && last->gen == gen)
		return last->size;
	mki_lock(&large_lock);
	struct large_entry *e = table_find_locked((uintptr_t)p);
	size_t n = e ? e->size : 0;
	gen = atomic_load_explicit(&mki_large_gen, memory_order_relaxed);
	mki_unlock(&large_lock);
	if (n) /* complemented: not a pointer to the block for the leak scan */
		*last = (struct last_lookup){~(uintptr_t)p, n, gen};
	return n;
}

/* Grow or shrink with mremap: the kernel moves page-table entries instead
 * of copying bytes. A block that grows gets half as much again as it asks
 * for: address space, not memory (the pages stay untouched until used), and
 * a buffer grown a little at a time then costs a few system calls (and
 * TLB shootdowns), not one per page. NULL (errno ENOMEM) leaves the block
 * as it was. */
void *mki_large_realloc(void *p, size_t size)
{
	size_t want = mki_align_up(size, MKI_PAGE_SIZE);
	mki_lock(&large_lock);
	/* a block that moves leaves the table and comes back under another
	 * address: room for it first, so that a moved block is never lost */
	if (table_reserve_locked()) {
		mki_unlock(&large_lock);
		return NULL;
	}
	struct large_entry *e = table_find_locked((uintptr_t)p);
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
		size_t taken = cache_take_after_locked((char *)p + have, want - have, ahead - have);
		if (taken) {
			e->size = have + taken;
			live_bytes += taken;
			/* threads' memory of the block's size is stale now */
			atomic_fetch_add_explicit(&mki_large_gen, 1, memory_order_release);
			mki_unlock(&large_lock);
			return p;
		}
	}
	/* Off the table before mremap frees the old range: another thread may
	 * map that range at once, and its block must not meet our stale entry. */
	if (move)
		table_remove_locked(e);
	mki_unlock(&large_lock);
	if (keep)
		return p; /* shrinking by less than half: keep the mapping */
	if (!move)
		return NULL; /* not ours, or guarded (mremap would move the guards) */
	want = ahead;
	void *q;
	int err = mki_os_remap(p, have, want, true, &q);
	mki_lock(&large_lock);
	if (err)
		table_insert_locked((uintptr_t)p, have); /* room reserved above */
	else
		table_insert_locked((uintptr_t)q, want);
	mki_unlock(&large_lock);
	if (err) {
		errno = ENOMEM;
		return NULL;
	}
	return q;
}

size_t mki_large_purge(bool force)
{
	struct cached_map out[MKI_LARGE_CACHE];
	size_t n = 0, bytes = 0;
	uint64_t now = mki_clock_ms();
	mki_lock(&large_lock);
	for (size_t i = 0; i < nr_cached;) {
		if (force || now - cache[i].since_ms >= mki_opt.decay_ms) {
			out[n++] = cache[i];
			cached_bytes -= cache[i].size;
			cache[i] = cache[--nr_cached];
		} else {
			i++;
		}
	}
	mki_unlock(&large_lock);
	for (size_t i = 0; i < n; i++) {
		large_unmap(out[i].addr, out[i].size);
		bytes += out[i].size;
	}
	return bytes;
}

void mki_large_stats(struct mk_stats *st)
{
	mki_lock(&large_lock);
	st->large_live += table_live;
	st->large_live_bytes += live_bytes;
	st->large_cached += nr_cached;
	for (size_t i = 0; i < nr_cached; i++)
		st->large_cached_bytes += cache[i].size;
	st->mapped_bytes += live_bytes;
	st->active_bytes += live_bytes;
	mki_unlock(&large_lock);
	st->mapped_bytes += st->large_cached_bytes;
	st->allocated_bytes += st->large_live_bytes;
}

void mki_large_fork_prepare(void)
{
	mki_lock_before_fork(&large_lock);
}

void mki_large_fork_parent(void)
{
	mki_unlock_after_fork(&large_lock);
}

void mki_large_fork_child(void)
{
	mki_lock_reset(&large_lock);
}
