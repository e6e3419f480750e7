/* shm.c - a heap inside one shared file: buddy pages + slabs over offsets,
 * guarded by a robust process-shared mutex.
 *
 * The file (a path, a POSIX shm object or a memfd) is mapped MAP_SHARED by
 * every process that opens it, possibly at different addresses, so nothing
 * inside it holds a pointer: pages are named by index, objects by offset from
 * the start of the file. Layout, all offsets from the start:
 *
 *   0          struct shm_header: magic, version, geometry, the lock, free
 *              lists, slab lists, counters, named roots
 *   desc_off   struct shm_desc[max_pages]: one per data page (sparse: pages of
 *              it that were never written take no memory or disk)
 *   data_off   data pages 0 .. npages-1; the file ends at data_off + npages pages
 *
 * Growth: each process maps max_size bytes up front (the file may be shorter;
 * only pages below its end are ever touched). When the buddy system runs out,
 * the process holding the lock extends the file with ftruncate, raises
 * npages, and frees the new pages into the buddy system. Other processes need
 * do nothing: their mapping already covers the new pages.
 *
 * The buddy system: a free block of 2^k pages starts at a page index that is
 * a multiple of 2^k; its buddy is index ^ 2^k. Allocation takes the smallest
 * free block that is large enough and splits it, the halves going back to the
 * free lists; freeing merges with the buddy while the buddy is free and of
 * the same order. The descriptor of a block's first page (its head) says what
 * the block is (free, used, slab); the descriptors of its other pages are
 * NONE, except slab pages (TAIL, pointing at their head).
 *
 * Slabs: objects up to MK_SHM_MAX_SMALL bytes come from slabs of one size
 * class; a slab is a block whose first 64 bytes hold a header with a bitmap
 * (1 = slot allocated). Slabs with free slots are on their class's partial list.
 *
 * Crash safety: the bitmaps and the descriptors of used and slab heads are
 * the truth; free lists, partial lists and counters are derived from them.
 * When a process dies holding the lock, the next one gets EOWNERDEAD and
 * rebuilds the derived part from the truth (shm_rebuild) before going on.
 * What the dead process was in the middle of allocating may be lost (never
 * handed out twice); what it was freeing is either freed or still allocated.
 *
 * Lock order: one lock per heap; it is recursive (mk_shm_lock may wrap calls).
 * May call: open/close/ftruncate/fstat/flock, shm_open, memfd_create,
 * pthread mutexes, mki_os_map_shared/mki_os_unmap_shared for the shared
 * file and mki_os_map/mki_os_unmap for the handle,
 * mki_vsnprintf. Never malloc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, EMEDIUMTYPE */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "memkit/internal.h"
#include "memkit/pool.h"

#define SHM_MAGIC      "memkitSH"
#define SHM_VERSION    1u
#define SHM_PAGE       4096u
#define SHM_MAX_ORDER  18 /* 1 GiB blocks */
#define SHM_ORDERS     (SHM_MAX_ORDER + 1)
#define SHM_NONE       UINT32_MAX
#define SHM_INIT_PAGES 256u /* 1 MiB of data pages in a new file */
#define SHM_SLAB_MAGIC 0x534c4142u
#define SHM_SLAB_HDR   64u
#define SHM_SLAB_SLOTS 256u
#define SHM_MIN_SLOTS  8u
#define SHM_CLASSES    14

static const uint32_t class_size[SHM_CLASSES] = {16,  32,  48,	64,  96,   128,	 192,
						 256, 384, 512, 768, 1024, 1536, 2048};

enum { D_NONE = 0, D_FREE, D_USED, D_SLAB, D_TAIL };

struct shm_desc {
	uint8_t state; /* D_* */
	uint8_t order; /* FREE, USED, SLAB: the block's order */
	uint8_t cls;   /* SLAB: size class */
	uint8_t pad;
	uint32_t next, prev; /* FREE: free list of its order; SLAB: partial list */
	uint32_t head;	     /* TAIL: index of the slab's head page */
};

struct shm_slab {
	uint32_t magic;
	uint16_t cls;
	uint16_t used;	 /* derived: popcount of bitmap */
	uint16_t nslots; /* slots in this slab */
	uint16_t pad[3];
	uint64_t bitmap[SHM_SLAB_SLOTS / 64];
};
_Static_assert(sizeof(struct shm_slab) <= SHM_SLAB_HDR, "slab header too large");

struct shm_root {
	char name[MK_SHM_ROOT_NAME + 1];
	uint64_t off;
};

struct shm_header {
	char magic[8];
	uint32_t version;
	uint32_t header_bytes; /* sizeof(struct shm_header) of the writer */
	uint32_t page_size;
	uint32_t max_order;
	uint64_t max_size; /* the file never grows beyond this */
	uint64_t desc_off, data_off;
	uint32_t max_pages;
	uint32_t npages; /* data pages the file holds now */
	pthread_mutex_t lock;
	/* derived state, rebuilt after a crash */
	uint32_t free_head[SHM_ORDERS];
	uint32_t partial[SHM_CLASSES];
	uint64_t free_pages;
	uint64_t live_objects;
	/* counters */
	uint64_t allocs, frees, repairs;
	struct shm_root roots[MK_SHM_ROOTS];
};

struct mk_shm {
	char *base;
	struct shm_header *hdr;
	struct shm_desc *desc;
	size_t map_size;
	int fd;
	int crash_point; /* MEMKIT_SHM_CRASH_AT (tests): die at this point */
	int crash_countdown;
};

/* ------------------------------------------------------------ errors */

static __thread char shm_errbuf[200];

const char *mk_shm_error(void)
{
	return shm_errbuf[0] ? shm_errbuf : "no error";
}

/* Record why, set errno, return err: `return fail(EINVAL, "...")` */
__attribute__((format(printf, 2, 3))) static int fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mki_vsnprintf(shm_errbuf, sizeof(shm_errbuf), fmt, ap);
	va_end(ap);
	errno = err;
	return err;
}

/* Fault injection for the tests: MEMKIT_SHM_CRASH_AT=point[:n] makes the
 * process SIGKILL itself the nth time it passes `point` (lock held). */
enum { CP_NONE = 0, CP_SPLIT, CP_MERGE, CP_SLAB_BIT, CP_GROW };

static void crash_point(struct mk_shm *h, int point)
{
	if (mki_unlikely(h->crash_point == point) && --h->crash_countdown <= 0)
		kill(getpid(), SIGKILL);
}

static void read_crash_option(struct mk_shm *h)
{
	const char *v = getenv("MEMKIT_SHM_CRASH_AT");
	static const char *const names[] = {"", "split", "merge", "slab-bit", "grow"};
	if (!v)
		return;
	for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		size_t n = strlen(names[i]);
		if (strncmp(v, names[i], n) == 0 && (v[n] == '\0' || v[n] == ':')) {
			h->crash_point = i;
			h->crash_countdown = v[n] == ':' ? atoi(v + n + 1) : 1;
		}
	}
}

/* ------------------------------------------------------------ geometry */

static struct shm_desc *desc_of(struct mk_shm *h, uint32_t i)
{
	return &h->desc[i];
}

static uint64_t page_off(const struct shm_header *hd, uint32_t i)
{
	return hd->data_off + (uint64_t)i * SHM_PAGE;
}

static char *page_addr(struct mk_shm *h, uint32_t i)
{
	return h->base + page_off(h->hdr, i);
}

static uint32_t pages_of(unsigned order)
{
	return (uint32_t)1 << order;
}

static struct shm_slab *slab_at(struct mk_shm *h, uint32_t i)
{
	return (struct shm_slab *)page_addr(h, i);
}

/* the slab order of a class: the smallest with at least SHM_MIN_SLOTS slots */
static unsigned class_order(unsigned cls)
{
	unsigned order = 0;
	while ((SHM_PAGE << order) - SHM_SLAB_HDR < SHM_MIN_SLOTS * class_size[cls])
		order++;
	return order;
}

static unsigned class_slots(unsigned cls)
{
	unsigned n = ((SHM_PAGE << class_order(cls)) - SHM_SLAB_HDR) / class_size[cls];
	return n < SHM_SLAB_SLOTS ? n : SHM_SLAB_SLOTS;
}

static int class_of(size_t size)
{
	for (int c = 0; c < SHM_CLASSES; c++)
		if (size <= class_size[c])
			return c;
	return -1;
}

/* ------------------------------------------------------------ lists
 * Doubly linked through the descriptors; heads in the header. Used for the
 * free lists (per order) and the partial slab lists (per class). */

static void list_push(struct mk_shm *h, uint32_t *head, uint32_t i)
{
	struct shm_desc *d = desc_of(h, i);
	d->prev = SHM_NONE;
	d->next = *head;
	if (*head != SHM_NONE)
		desc_of(h, *head)->prev = i;
	*head = i;
}

static void list_remove(struct mk_shm *h, uint32_t *head, uint32_t i)
{
	struct shm_desc *d = desc_of(h, i);
	if (d->prev != SHM_NONE)
		desc_of(h, d->prev)->next = d->next;
	else
		*head = d->next;
	if (d->next != SHM_NONE)
		desc_of(h, d->next)->prev = d->prev;
	d->next = d->prev = SHM_NONE;
}

/* ------------------------------------------------------------ buddy system
 * All of these are called with the lock held (_locked). */

static void free_block_push_locked(struct mk_shm *h, uint32_t i, unsigned order)
{
	struct shm_desc *d = desc_of(h, i);
	d->state = D_FREE;
	d->order = (uint8_t)order;
	list_push(h, &h->hdr->free_head[order], i);
	h->hdr->free_pages += pages_of(order);
}

static void free_block_pop_locked(struct mk_shm *h, uint32_t i, unsigned order)
{
	list_remove(h, &h->hdr->free_head[order], i);
	desc_of(h, i)->state = D_NONE;
	h->hdr->free_pages -= pages_of(order);
}

/* Is the buddy of block i (order k) free, whole, and of order k? */
static bool buddy_is_free(struct mk_shm *h, uint32_t buddy, unsigned order)
{
	if ((uint64_t)buddy + pages_of(order) > h->hdr->npages)
		return false;
	const struct shm_desc *d = desc_of(h, buddy);
	return d->state == D_FREE && d->order == order;
}

/* Give block i of 2^order pages back, merging with free buddies. */
static void buddy_free_locked(struct mk_shm *h, uint32_t i, unsigned order)
{
	desc_of(h, i)->state = D_NONE;
	while (order < SHM_MAX_ORDER) {
		uint32_t buddy = i ^ pages_of(order);
		if (!buddy_is_free(h, buddy, order))
			break;
		free_block_pop_locked(h, buddy, order);
		crash_point(h, CP_MERGE);
		i = i < buddy ? i : buddy;
		order++;
	}
	free_block_push_locked(h, i, order);
}

static int grow_locked(struct mk_shm *h, unsigned order);

/* A block of 2^order pages marked USED, or SHM_NONE (errno ENOMEM). */
static uint32_t buddy_alloc_locked(struct mk_shm *h, unsigned order)
{
	struct shm_header *hd = h->hdr;
	unsigned k = order;

	while (k <= SHM_MAX_ORDER && hd->free_head[k] == SHM_NONE)
		k++;
	if (k > SHM_MAX_ORDER) {
		if (grow_locked(h, order))
			return SHM_NONE;
		return buddy_alloc_locked(h, order);
	}
	uint32_t i = hd->free_head[k];
	free_block_pop_locked(h, i, k);
	crash_point(h, CP_SPLIT);
	while (k > order) { /* split: keep the lower half, free the upper */
		k--;
		free_block_push_locked(h, i + pages_of(k), k);
	}
	struct shm_desc *d = desc_of(h, i);
	d->order = (uint8_t)order;
	d->state = D_USED;
	return i;
}

/* Free the pages [from, to) into the buddy system as the largest aligned
 * blocks that fit: used for a new file, growth, and rebuilding. */
static void free_range_locked(struct mk_shm *h, uint32_t from, uint32_t to)
{
	while (from < to) {
		unsigned k = 0;
		while (k < SHM_MAX_ORDER && (from & (pages_of(k + 1) - 1)) == 0 &&
		       (uint64_t)from + pages_of(k + 1) <= to)
			k++;
		buddy_free_locked(h, from, k);
		from += pages_of(k);
	}
}

/* Extend the file so that a block of 2^order pages can exist: at least
 * double the data pages, never beyond max_pages. 0 or ENOMEM. */
static int grow_locked(struct mk_shm *h, unsigned order)
{
	struct shm_header *hd = h->hdr;
	uint64_t want = (uint64_t)hd->npages * 2;
	if (want < (uint64_t)hd->npages + 2 * (uint64_t)pages_of(order))
		want = (uint64_t)hd->npages + 2 * (uint64_t)pages_of(order);
	if (want > hd->max_pages)
		want = hd->max_pages;
	if (want <= hd->npages)
		return fail(ENOMEM, "shared heap full: %llu bytes, its maximum size",
			    (unsigned long long)hd->max_size);
	if (ftruncate(h->fd, (off_t)page_off(hd, (uint32_t)want)))
		return fail(errno, "cannot grow the shared heap file: %s", strerror(errno));
	uint32_t old = hd->npages;
	/* first: a rebuild then finds the new pages free. Atomic: mk_shm_ptr
	 * reads it without the lock. */
	__atomic_store_n(&hd->npages, (uint32_t)want, __ATOMIC_RELEASE);
	crash_point(h, CP_GROW);
	free_range_locked(h, old, (uint32_t)want);
	return 0;
}

/* ------------------------------------------------------------ slabs */

static uint32_t slab_new_locked(struct mk_shm *h, unsigned cls)
{
	unsigned order = class_order(cls);
	uint32_t i = buddy_alloc_locked(h, order);
	if (i == SHM_NONE)
		return SHM_NONE;
	struct shm_slab *s = slab_at(h, i);
	memset(s, 0, sizeof(*s));
	s->cls = (uint16_t)cls;
	s->nslots = (uint16_t)class_slots(cls);
	s->magic = SHM_SLAB_MAGIC;
	for (uint32_t t = 1; t < pages_of(order); t++) {
		desc_of(h, i + t)->state = D_TAIL;
		desc_of(h, i + t)->head = i;
	}
	struct shm_desc *d = desc_of(h, i);
	d->cls = (uint8_t)cls;
	d->state = D_SLAB; /* last: until here a crash leaves a USED block */
	list_push(h, &h->hdr->partial[cls], i);
	return i;
}

static void slab_delete_locked(struct mk_shm *h, uint32_t i)
{
	unsigned order = desc_of(h, i)->order;
	list_remove(h, &h->hdr->partial[desc_of(h, i)->cls], i);
	slab_at(h, i)->magic = 0;
	for (uint32_t t = 1; t < pages_of(order); t++)
		desc_of(h, i + t)->state = D_NONE;
	buddy_free_locked(h, i, order);
}

static int first_clear_bit(const struct shm_slab *s)
{
	for (unsigned w = 0; w < SHM_SLAB_SLOTS / 64; w++)
		if (~s->bitmap[w])
			return (int)(w * 64 + (unsigned)__builtin_ctzll(~s->bitmap[w]));
	return -1;
}

static uint64_t slab_alloc_locked(struct mk_shm *h, unsigned cls)
{
	uint32_t i = h->hdr->partial[cls];
	if (i == SHM_NONE && (i = slab_new_locked(h, cls)) == SHM_NONE)
		return 0;
	struct shm_slab *s = slab_at(h, i);
	int slot = first_clear_bit(s);
	if (slot < 0 || slot >= s->nslots)
		mki_fatal("shared heap: slab at page %u on the partial list is full", i);
	s->bitmap[slot / 64] |= (uint64_t)1 << (slot % 64);
	crash_point(h, CP_SLAB_BIT);
	if (++s->used == s->nslots)
		list_remove(h, &h->hdr->partial[cls], i);
	return page_off(h->hdr, i) + SHM_SLAB_HDR + (uint64_t)slot * class_size[cls];
}

static int slab_free_locked(struct mk_shm *h, uint32_t i, uint64_t off)
{
	struct shm_slab *s = slab_at(h, i);
	uint64_t rel = off - page_off(h->hdr, i);
	uint32_t size = class_size[s->cls];
	if (rel < SHM_SLAB_HDR || (rel - SHM_SLAB_HDR) % size)
		return fail(EINVAL,
			    "mk_shm_free: offset %llu is inside an object, not at its start",
			    (unsigned long long)off);
	uint64_t slot = (rel - SHM_SLAB_HDR) / size;
	uint64_t bit = (uint64_t)1 << (slot % 64);
	if (slot >= s->nslots || !(s->bitmap[slot / 64] & bit))
		return fail(EINVAL, "mk_shm_free: offset %llu is not allocated (double free?)",
			    (unsigned long long)off);
	s->bitmap[slot / 64] &= ~bit;
	if (s->used-- == s->nslots)
		list_push(h, &h->hdr->partial[s->cls], i);
	/* an empty slab goes back unless it is its class's only partial slab */
	if (s->used == 0 && !(h->hdr->partial[s->cls] == i && desc_of(h, i)->next == SHM_NONE))
		slab_delete_locked(h, i);
	return 0;
}

/* ------------------------------------------------------------ rebuild
 * From the truth (heads of used blocks and slabs, slab bitmaps) recompute
 * everything else. Called with the lock held after EOWNERDEAD. */

static bool slab_header_valid(struct mk_shm *h, uint32_t i)
{
	const struct shm_desc *d = desc_of(h, i);
	const struct shm_slab *s = slab_at(h, i);
	return s->magic == SHM_SLAB_MAGIC && d->cls < SHM_CLASSES && s->cls == d->cls &&
	       d->order == class_order(d->cls) && s->nslots == class_slots(d->cls);
}

static unsigned slab_popcount(const struct shm_slab *s)
{
	unsigned n = 0;
	for (unsigned w = 0; w < SHM_SLAB_SLOTS / 64; w++)
		n += (unsigned)__builtin_popcountll(s->bitmap[w]);
	return n;
}

/* the head at i is a used block or slab whose extent fits where it is */
static bool head_is_allocated(struct mk_shm *h, uint32_t i)
{
	const struct shm_desc *d = desc_of(h, i);
	if (d->state != D_USED && d->state != D_SLAB)
		return false;
	if (d->order > SHM_MAX_ORDER || (i & (pages_of(d->order) - 1)) ||
	    (uint64_t)i + pages_of(d->order) > h->hdr->npages)
		return false;
	return d->state == D_USED || slab_header_valid(h, i);
}

static void rebuild_slab_locked(struct mk_shm *h, uint32_t i)
{
	struct shm_slab *s = slab_at(h, i);
	unsigned order = desc_of(h, i)->order;
	/* bits past the last slot would be objects that do not exist */
	for (unsigned slot = s->nslots; slot < SHM_SLAB_SLOTS; slot++)
		s->bitmap[slot / 64] &= ~((uint64_t)1 << (slot % 64));
	s->used = (uint16_t)slab_popcount(s);
	for (uint32_t t = 1; t < pages_of(order); t++) {
		desc_of(h, i + t)->state = D_TAIL;
		desc_of(h, i + t)->head = i;
	}
	if (s->used < s->nslots)
		list_push(h, &h->hdr->partial[s->cls], i);
	h->hdr->live_objects += s->used;
}

static void shm_rebuild_locked(struct mk_shm *h)
{
	struct shm_header *hd = h->hdr;
	uint32_t run = 0, i = 0;

	for (unsigned k = 0; k < SHM_ORDERS; k++)
		hd->free_head[k] = SHM_NONE;
	for (unsigned c = 0; c < SHM_CLASSES; c++)
		hd->partial[c] = SHM_NONE;
	hd->free_pages = hd->live_objects = 0;
	/* stale free heads must not be merged with while the runs are freed */
	for (uint32_t p = 0; p < hd->npages; p++)
		if (desc_of(h, p)->state == D_FREE)
			desc_of(h, p)->state = D_NONE;
	while (i < hd->npages) {
		if (!head_is_allocated(h, i)) {
			desc_of(h, i++)->state = D_NONE; /* part of a free run */
			continue;
		}
		free_range_locked(h, run, i);
		uint32_t n = pages_of(desc_of(h, i)->order);
		for (uint32_t t = 1; t < n; t++)
			desc_of(h, i + t)->state = D_NONE;
		if (desc_of(h, i)->state == D_SLAB)
			rebuild_slab_locked(h, i);
		else
			hd->live_objects++;
		i += n;
		run = i;
	}
	free_range_locked(h, run, hd->npages);
	hd->repairs++;
}

/* ------------------------------------------------------------ lock */

int mk_shm_lock(mk_shm_t *h)
{
	int err = pthread_mutex_lock(&h->hdr->lock);
	if (err == EOWNERDEAD) {
		/* a process died holding the lock, maybe half-way through a change */
		shm_rebuild_locked(h);
		pthread_mutex_consistent(&h->hdr->lock);
		err = 0;
	}
	if (err)
		return fail(err, "cannot take the shared heap's lock: %s", strerror(err));
	return 0;
}

void mk_shm_unlock(mk_shm_t *h)
{
	pthread_mutex_unlock(&h->hdr->lock);
}

/* ------------------------------------------------------------ alloc, free */

mk_shm_off_t mk_shm_alloc(mk_shm_t *h, size_t size)
{
	uint64_t off = 0;
	if (size > (size_t)SHM_PAGE << SHM_MAX_ORDER) {
		fail(ENOMEM, "mk_shm_alloc: %zu bytes is larger than the largest block", size);
		return 0;
	}
	if (mk_shm_lock(h))
		return 0;
	int cls = class_of(size ? size : 1);
	if (cls >= 0) {
		off = slab_alloc_locked(h, (unsigned)cls);
	} else {
		unsigned order = 0;
		while (((size_t)SHM_PAGE << order) < size)
			order++;
		uint32_t i = buddy_alloc_locked(h, order);
		off = i == SHM_NONE ? 0 : page_off(h->hdr, i);
	}
	if (off) {
		h->hdr->allocs++;
		h->hdr->live_objects++;
	}
	mk_shm_unlock(h);
	return off;
}

/* the head page of the block that holds off, or SHM_NONE */
static uint32_t head_of_locked(struct mk_shm *h, uint64_t off)
{
	const struct shm_header *hd = h->hdr;
	if (off < hd->data_off || off >= page_off(hd, hd->npages))
		return SHM_NONE;
	uint32_t i = (uint32_t)((off - hd->data_off) / SHM_PAGE);
	if (desc_of(h, i)->state == D_TAIL)
		i = desc_of(h, i)->head;
	return i;
}

static int free_locked(struct mk_shm *h, uint64_t off)
{
	uint32_t i = head_of_locked(h, off);
	const struct shm_desc *d = i == SHM_NONE ? NULL : desc_of(h, i);

	if (d && d->state == D_SLAB)
		return slab_free_locked(h, i, off);
	if (d && d->state == D_USED && off == page_off(h->hdr, i)) {
		buddy_free_locked(h, i, d->order);
		return 0;
	}
	return fail(EINVAL, "mk_shm_free: offset %llu is not a live object",
		    (unsigned long long)off);
}

int mk_shm_free(mk_shm_t *h, mk_shm_off_t off)
{
	int err = mk_shm_lock(h);
	if (err)
		return err;
	err = free_locked(h, off);
	if (!err) {
		h->hdr->frees++;
		h->hdr->live_objects--;
	}
	mk_shm_unlock(h);
	return err;
}

void *mk_shm_ptr(const mk_shm_t *h, mk_shm_off_t off)
{
	/* npages only grows; a stale read is merely conservative */
	if (!off || off >= page_off(h->hdr, __atomic_load_n(&h->hdr->npages, __ATOMIC_ACQUIRE)))
		return NULL;
	return h->base + off;
}

mk_shm_off_t mk_shm_off(const mk_shm_t *h, const void *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)h->base;
	if (a <= b || a >= b + h->map_size)
		return 0;
	return a - b;
}

/* ------------------------------------------------------------ roots */

static bool root_name_ok(const char *name)
{
	return name && name[0] && strnlen(name, MK_SHM_ROOT_NAME + 1) <= MK_SHM_ROOT_NAME;
}

static struct shm_root *root_find_locked(struct mk_shm *h, const char *name)
{
	for (unsigned r = 0; r < MK_SHM_ROOTS; r++)
		if (strcmp(h->hdr->roots[r].name, name) == 0)
			return &h->hdr->roots[r];
	return NULL;
}

int mk_shm_root_set(mk_shm_t *h, const char *name, mk_shm_off_t off)
{
	if (!root_name_ok(name))
		return fail(EINVAL, "root names are 1 to %d bytes", MK_SHM_ROOT_NAME);
	int err = mk_shm_lock(h);
	if (err)
		return err;
	struct shm_root *r = root_find_locked(h, name);
	if (!r && off)
		r = root_find_locked(h, "");
	if (!r) {
		mk_shm_unlock(h);
		return off ? fail(ENOSPC, "all %d root names are taken", MK_SHM_ROOTS) : 0;
	}
	if (off) {
		strcpy(r->name, name);
		r->off = off;
	} else {
		memset(r, 0, sizeof(*r));
	}
	mk_shm_unlock(h);
	return 0;
}

mk_shm_off_t mk_shm_root_get(mk_shm_t *h, const char *name)
{
	uint64_t off = 0;
	if (!root_name_ok(name) || mk_shm_lock(h))
		return 0;
	struct shm_root *r = root_find_locked(h, name);
	if (r)
		off = r->off;
	mk_shm_unlock(h);
	return off;
}

/* ------------------------------------------------------------ check
 * Everything that must hold between operations; the first problem found is
 * reported. Walks every descriptor and every list: O(pages). */

static int check_free_lists_locked(struct mk_shm *h, uint64_t count[SHM_ORDERS])
{
	const struct shm_header *hd = h->hdr;
	for (unsigned k = 0; k < SHM_ORDERS; k++) {
		uint32_t prev = SHM_NONE, n = 0;
		for (uint32_t i = hd->free_head[k]; i != SHM_NONE; i = desc_of(h, i)->next) {
			if (i >= hd->npages || ++n > hd->npages)
				return fail(EUCLEAN, "free list %u: bad index or a cycle", k);
			const struct shm_desc *d = desc_of(h, i);
			if (d->state != D_FREE || d->order != k || d->prev != prev)
				return fail(
				    EUCLEAN,
				    "free list %u: page %u is not a free block of that order", k,
				    i);
			prev = i;
		}
		if (n != count[k])
			return fail(EUCLEAN, "free list %u holds %u blocks, the pages show %llu", k,
				    n, (unsigned long long)count[k]);
	}
	return 0;
}

static int check_partial_lists_locked(struct mk_shm *h, const uint64_t count[SHM_CLASSES])
{
	const struct shm_header *hd = h->hdr;
	for (unsigned c = 0; c < SHM_CLASSES; c++) {
		uint32_t prev = SHM_NONE, n = 0;
		for (uint32_t i = hd->partial[c]; i != SHM_NONE; i = desc_of(h, i)->next) {
			if (i >= hd->npages || ++n > hd->npages)
				return fail(EUCLEAN, "partial list %u: bad index or a cycle", c);
			const struct shm_desc *d = desc_of(h, i);
			if (d->state != D_SLAB || d->cls != c || d->prev != prev ||
			    slab_at(h, i)->used >= slab_at(h, i)->nslots)
				return fail(
				    EUCLEAN,
				    "partial list %u: page %u is not a partial slab of that class",
				    c, i);
			prev = i;
		}
		if (n != count[c])
			return fail(EUCLEAN, "partial list %u holds %u slabs, the pages show %llu",
				    c, n, (unsigned long long)count[c]);
	}
	return 0;
}

static int check_block_locked(struct mk_shm *h, uint32_t i, uint64_t *live, uint64_t partial[])
{
	const struct shm_desc *d = desc_of(h, i);
	uint32_t n = pages_of(d->order);
	for (uint32_t t = 1; t < n; t++) {
		const struct shm_desc *td = desc_of(h, i + t);
		bool tail_ok =
		    d->state == D_SLAB ? td->state == D_TAIL && td->head == i : td->state == D_NONE;
		if (!tail_ok)
			return fail(EUCLEAN, "page %u inside the block at page %u is marked %u",
				    i + t, i, td->state);
	}
	if (d->state == D_USED)
		(*live)++;
	if (d->state != D_SLAB)
		return 0;
	const struct shm_slab *s = slab_at(h, i);
	if (!slab_header_valid(h, i) || s->used != slab_popcount(s))
		return fail(EUCLEAN, "slab at page %u: bad header or count", i);
	*live += s->used;
	if (s->used < s->nslots)
		partial[s->cls]++;
	return 0;
}

static int check_pages_locked(struct mk_shm *h)
{
	const struct shm_header *hd = h->hdr;
	uint64_t nfree[SHM_ORDERS] = {0}, partial[SHM_CLASSES] = {0}, free_pages = 0, live = 0;
	uint32_t i = 0;
	int err;

	while (i < hd->npages) {
		const struct shm_desc *d = desc_of(h, i);
		if (d->state == D_FREE) {
			if (d->order > SHM_MAX_ORDER || (i & (pages_of(d->order) - 1)) ||
			    (uint64_t)i + pages_of(d->order) > hd->npages)
				return fail(EUCLEAN, "free block at page %u has a bad order", i);
			if (buddy_is_free(h, i ^ pages_of(d->order), d->order) &&
			    d->order < SHM_MAX_ORDER)
				return fail(EUCLEAN,
					    "free block at page %u and its buddy were not merged",
					    i);
			nfree[d->order]++;
			free_pages += pages_of(d->order);
		} else if (!head_is_allocated(h, i)) {
			return fail(EUCLEAN, "page %u should start a block but is marked %u", i,
				    d->state);
		}
		if ((err = check_block_locked(h, i, &live, partial)))
			return err;
		i += pages_of(d->order);
	}
	if (free_pages != hd->free_pages || live != hd->live_objects)
		return fail(
		    EUCLEAN,
		    "counters: %llu free pages and %llu objects, the pages show %llu and %llu",
		    (unsigned long long)hd->free_pages, (unsigned long long)hd->live_objects,
		    (unsigned long long)free_pages, (unsigned long long)live);
	if ((err = check_free_lists_locked(h, nfree)))
		return err;
	return check_partial_lists_locked(h, partial);
}

static int check_roots_locked(struct mk_shm *h)
{
	for (unsigned r = 0; r < MK_SHM_ROOTS; r++) {
		const struct shm_root *root = &h->hdr->roots[r];
		if (!root->name[0])
			continue;
		uint32_t i = head_of_locked(h, root->off);
		if (i == SHM_NONE ||
		    (desc_of(h, i)->state != D_USED && desc_of(h, i)->state != D_SLAB))
			return fail(EUCLEAN, "root \"%s\" points outside any live block",
				    root->name);
	}
	return 0;
}

int mk_shm_check(mk_shm_t *h)
{
	int err = mk_shm_lock(h);
	if (err)
		return err;
	const struct shm_header *hd = h->hdr;
	if (hd->npages > hd->max_pages || page_off(hd, hd->npages) > hd->max_size)
		err = fail(EUCLEAN, "the header's page counts are out of range");
	if (!err)
		err = check_pages_locked(h);
	if (!err)
		err = check_roots_locked(h);
	mk_shm_unlock(h);
	return err;
}

int mk_shm_stats(mk_shm_t *h, struct mk_shm_stats *st)
{
	int err = mk_shm_lock(h);
	if (err)
		return err;
	const struct shm_header *hd = h->hdr;
	memset(st, 0, sizeof(*st));
	st->size = page_off(hd, hd->npages);
	st->max_size = hd->max_size;
	st->data_bytes = (size_t)hd->npages * SHM_PAGE;
	st->free_bytes = hd->free_pages * SHM_PAGE;
	st->live_objects = hd->live_objects;
	st->allocs = hd->allocs;
	st->frees = hd->frees;
	st->repairs = hd->repairs;
	mk_shm_unlock(h);
	return 0;
}

/* ------------------------------------------------------------ open, close */

static int open_backing(const char *name, unsigned flags, bool *created)
{
	int fd;
	*created = false;
	if (flags & MK_SHM_MEMFD) {
		fd = memfd_create(name, MFD_CLOEXEC);
		*created = fd >= 0;
	} else {
		int (*op)(const char *, int, mode_t) = (flags & MK_SHM_POSIX) ? shm_open : NULL;
		int base = O_RDWR | O_CLOEXEC;
		fd = -1;
		errno = ENOENT;
		if (flags & MK_SHM_CREATE) {
			fd = op ? op(name, base | O_CREAT | O_EXCL, 0600)
				: open(name, base | O_CREAT | O_EXCL, 0600);
			*created = fd >= 0;
		}
		if (fd < 0 && errno == EEXIST && !(flags & MK_SHM_EXCL))
			errno = ENOENT;
		if (fd < 0 && errno == ENOENT)
			fd = op ? op(name, base, 0600) : open(name, base);
	}
	if (fd < 0)
		return -fail(errno, "cannot open shared heap \"%s\": %s", name, strerror(errno));
	return fd;
}

static void remove_backing(const char *name, unsigned flags)
{
	if (flags & MK_SHM_POSIX)
		shm_unlink(name);
	else if (!(flags & MK_SHM_MEMFD))
		unlink(name);
}

static size_t header_bytes(void)
{
	return mki_align_up(sizeof(struct shm_header), SHM_PAGE);
}

static uint64_t desc_bytes(uint64_t max_pages)
{
	return mki_align_up(max_pages * sizeof(struct shm_desc), SHM_PAGE);
}

/* Choose the geometry of a new heap of at most size bytes. */
static int plan_geometry(struct shm_header *g, size_t size)
{
	if (size < MK_SHM_MIN_SIZE || size > MK_SHM_MAX_SIZE)
		return fail(EINVAL, "shared heap size %zu is outside %zu..%zu", size,
			    (size_t)MK_SHM_MIN_SIZE, (size_t)MK_SHM_MAX_SIZE);
	uint64_t pages = (size - header_bytes()) / (SHM_PAGE + sizeof(struct shm_desc));
	while (header_bytes() + desc_bytes(pages) + pages * SHM_PAGE > size)
		pages--;
	g->desc_off = header_bytes();
	g->data_off = g->desc_off + desc_bytes(pages);
	g->max_pages = (uint32_t)pages;
	g->max_size = g->data_off + pages * SHM_PAGE;
	g->npages = pages < SHM_INIT_PAGES ? (uint32_t)pages : SHM_INIT_PAGES;
	return 0;
}

/* The header of an existing file: refuse anything that is not a memkit heap
 * of this version and geometry. Only reads. */
static int validate_existing(int fd, const char *name, struct shm_header *g)
{
	struct stat st;
	/* the header first, then the size: a process growing the heap extends
	 * the file before it raises npages, so the size read second is enough */
	ssize_t got = pread(fd, g, sizeof(*g), 0);
	if (fstat(fd, &st))
		return fail(errno, "cannot stat \"%s\": %s", name, strerror(errno));
	if (got != (ssize_t)sizeof(*g) || memcmp(g->magic, SHM_MAGIC, sizeof(g->magic)) != 0)
		return fail(EMEDIUMTYPE,
			    "\"%s\" is not a memkit shared heap (no memkit header); left unchanged",
			    name);
	if (g->version != SHM_VERSION || g->header_bytes != sizeof(*g) ||
	    g->page_size != SHM_PAGE || g->max_order != SHM_MAX_ORDER)
		return fail(
		    EPROTONOSUPPORT,
		    "\"%s\" is a memkit shared heap of format version %u (header %u bytes); "
		    "this libmemkit reads version %u (header %zu bytes); left unchanged",
		    name, g->version, g->header_bytes, SHM_VERSION, sizeof(*g));
	if (g->desc_off != header_bytes() ||
	    g->data_off != g->desc_off + desc_bytes(g->max_pages) ||
	    g->max_size != g->data_off + (uint64_t)g->max_pages * SHM_PAGE ||
	    g->npages > g->max_pages || (uint64_t)st.st_size < page_off(g, g->npages))
		return fail(EUCLEAN, "\"%s\": memkit shared heap header is damaged; left unchanged",
			    name);
	return 0;
}

static int init_lock(pthread_mutex_t *m)
{
	pthread_mutexattr_t attr;
	int err = pthread_mutexattr_init(&attr);
	if (!err)
		err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (!err)
		err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (!err)
		err = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	if (!err)
		err = pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
	return err ? fail(err, "cannot set up a process-shared robust mutex: %s", strerror(err))
		   : 0;
}

/* Write a new heap into the mapped, zero-filled file. The magic goes last:
 * a file without it is never taken for a heap. */
static int init_new(struct mk_shm *h, const struct shm_header *g)
{
	struct shm_header *hd = h->hdr;
	int err = init_lock(&hd->lock);
	if (err)
		return err;
	hd->version = SHM_VERSION;
	hd->header_bytes = sizeof(*hd);
	hd->page_size = SHM_PAGE;
	hd->max_order = SHM_MAX_ORDER;
	hd->max_size = g->max_size;
	hd->desc_off = g->desc_off;
	hd->data_off = g->data_off;
	hd->max_pages = g->max_pages;
	hd->npages = g->npages;
	for (unsigned k = 0; k < SHM_ORDERS; k++)
		hd->free_head[k] = SHM_NONE;
	for (unsigned c = 0; c < SHM_CLASSES; c++)
		hd->partial[c] = SHM_NONE;
	free_range_locked(h, 0, hd->npages);
	memcpy(hd->magic, SHM_MAGIC, sizeof(hd->magic));
	return 0;
}

static struct mk_shm *handle_new(int fd, size_t map_size)
{
	void *mem;
	int err = mki_os_map(sizeof(struct mk_shm), MKI_PAGE_SIZE, &mem);
	if (err) {
		fail(err, "no memory for a shared heap handle");
		return NULL;
	}
	struct mk_shm *h = mem;
	void *base;
	err = mki_os_map_shared(fd, map_size, &base);
	if (err) {
		fail(err, "cannot map the shared heap (%zu bytes): %s", map_size, strerror(err));
		mki_os_unmap(h, sizeof(*h));
		return NULL;
	}
	h->base = base;
	h->hdr = base;
	h->map_size = map_size;
	h->fd = fd;
	read_crash_option(h);
	return h;
}

static void handle_delete(struct mk_shm *h)
{
	mki_os_unmap_shared(h->base, h->map_size);
	close(h->fd);
	mki_os_unmap(h, sizeof(*h));
}

/* Under flock(LOCK_EX), so that one process initialises a new file while the
 * others wait to read a complete header. */
static struct mk_shm *open_locked(int fd, const char *name, size_t size, unsigned flags)
{
	struct shm_header g;
	struct stat st;
	bool fresh;
	memset(&g, 0, sizeof(g));
	if (fstat(fd, &st)) {
		fail(errno, "cannot stat \"%s\": %s", name, strerror(errno));
		return NULL;
	}
	fresh = st.st_size == 0 && (flags & (MK_SHM_CREATE | MK_SHM_MEMFD));
	if (fresh ? plan_geometry(&g, mki_align_up(size, SHM_PAGE))
		  : validate_existing(fd, name, &g))
		return NULL;
	if (fresh && ftruncate(fd, (off_t)page_off(&g, g.npages))) {
		fail(errno, "cannot size \"%s\": %s", name, strerror(errno));
		return NULL;
	}
	struct mk_shm *h = handle_new(fd, g.max_size);
	if (!h)
		return NULL;
	h->desc = (struct shm_desc *)(h->base + g.desc_off);
	if (fresh && init_new(h, &g)) {
		int err = errno;
		handle_delete(h);
		errno = err;
		return NULL;
	}
	return h;
}

mk_shm_t *mk_shm_open(const char *path_or_name, size_t size, unsigned flags)
{
	const unsigned known = MK_SHM_CREATE | MK_SHM_EXCL | MK_SHM_POSIX | MK_SHM_MEMFD;
	bool created;

	if (!path_or_name || (flags & ~known) ||
	    ((flags & MK_SHM_POSIX) && (flags & MK_SHM_MEMFD))) {
		fail(EINVAL, "mk_shm_open: bad name or flags");
		return NULL;
	}
	int fd = open_backing(path_or_name, flags, &created);
	if (fd < 0)
		return NULL;
	flock(fd, LOCK_EX);
	struct mk_shm *h = open_locked(fd, path_or_name, size, flags);
	int err = errno;
	flock(fd, LOCK_UN);
	if (!h) {
		if (created)
			remove_backing(path_or_name, flags);
		close(fd);
		errno = err;
		return NULL;
	}
	shm_errbuf[0] = '\0';
	return h;
}

void mk_shm_close(mk_shm_t *h)
{
	if (h)
		handle_delete(h);
}
