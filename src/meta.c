/* meta.c - memory for the allocator's own bookkeeping (heaps, slab
 * descriptors, tables of the leak tracker), never from malloc: a bump
 * allocator over 256 KiB mappings with a free list per 16-byte size, as the
 * kernel boots its first kmem_caches before any cache exists. Requests
 * above 4 KiB get their own mapping.
 *
 * May call: os.c, libc.c.
 */
#include <string.h>
#include "memkit/internal.h"

#define META_REGION  ((size_t)256 * 1024)
#define META_MAX     4096
#define META_CLASSES (META_MAX / MKI_ALIGN)

struct meta_free {
	struct meta_free *next;
};

static mki_lock_t meta_lock = MKI_LOCK_INIT;
static char *bump, *bump_end;
static struct meta_free *free_lists[META_CLASSES + 1];
static _Atomic size_t meta_bytes;

static void *bump_alloc_locked(size_t size)
{
	if ((size_t)(bump_end - bump) < size) {
		void *region;
		if (mki_os_map(META_REGION, MKI_PAGE_SIZE, &region))
			return NULL;
		atomic_fetch_add_explicit(&meta_bytes, META_REGION, memory_order_relaxed);
		bump = region; /* the old tail is lost: at most 4 KiB per region */
		bump_end = bump + META_REGION;
	}
	/* objects of a cache line or more start on one, so that a slab
	 * descriptor's hot fields share a line and its remote-free line is
	 * its own */
	if (size >= 64) {
		char *aligned = (char *)mki_align_up((uintptr_t)bump, 64);
		if (aligned + size <= bump_end)
			bump = aligned;
	}
	void *p = bump;
	bump += size;
	return p;
}

void *mki_meta_alloc(size_t size)
{
	size = mki_align_up(size ? size : 1, MKI_ALIGN);
	if (size > META_MAX) {
		void *p;
		if (mki_os_map(size, MKI_PAGE_SIZE, &p))
			return NULL;
		atomic_fetch_add_explicit(&meta_bytes, mki_align_up(size, MKI_PAGE_SIZE),
					  memory_order_relaxed);
		return p; /* fresh mappings are zero */
	}
	size_t cls = size / MKI_ALIGN;
	mki_lock(&meta_lock);
	struct meta_free *f = free_lists[cls];
	void *p;
	if (f) {
		free_lists[cls] = f->next;
		p = f;
	} else {
		p = bump_alloc_locked(size);
	}
	mki_unlock(&meta_lock);
	if (p)
		memset(p, 0, size);
	return p;
}

void mki_meta_free(void *p, size_t size)
{
	if (!p)
		return;
	size = mki_align_up(size ? size : 1, MKI_ALIGN);
	if (size > META_MAX) {
		mki_os_unmap(p, size);
		atomic_fetch_sub_explicit(&meta_bytes, mki_align_up(size, MKI_PAGE_SIZE),
					  memory_order_relaxed);
		return;
	}
	size_t cls = size / MKI_ALIGN;
	struct meta_free *f = p;
	mki_lock(&meta_lock);
	f->next = free_lists[cls];
	free_lists[cls] = f;
	mki_unlock(&meta_lock);
}

size_t mki_meta_bytes(void)
{
	return atomic_load_explicit(&meta_bytes, memory_order_relaxed);
}

void mki_meta_fork_prepare(void)
{
	mki_lock_before_fork(&meta_lock);
}

void mki_meta_fork_parent(void)
{
	mki_unlock_after_fork(&meta_lock);
}

void mki_meta_fork_child(void)
{
	mki_lock_reset(&meta_lock);
}
