/* arena.c - region pools (arenas): objects by pointer bump, freed all at once.
 *
 * An arena is a chain of blocks from the buddy system (mk_pages_alloc). The
 * arena's own struct lives at the start of its first block, so an arena needs
 * no metadata from anywhere else. Allocation bumps `cur` towards `end` in the
 * current block; when that block is full the next one is taken (kept from
 * before a reset, or new and twice as large, up to order 10 = 4 MiB). An
 * object too large for the next normal block gets a "dedicated" block of its
 * own (buddy pages, or an OS mapping above 4 MiB) and the current block stays
 * current, so its free tail is not wasted.
 *
 * Nested arenas: a child is linked into its parent's list of children and is
 * destroyed when the parent is destroyed or reset.
 *
 * Under AddressSanitizer the unused part of every block is poisoned and each
 * object is followed by a poisoned 16-byte red zone, so overflows between
 * arena objects and use after reset are reported.
 *
 * Not thread-safe: an arena has one owner at a time.
 * May call: mk_pages_alloc/mk_pages_free (page.c), mki_os_map/mki_os_unmap
 * (os.c), memset/memcpy/strlen. Never malloc.
 */
#include <errno.h>
#include <string.h>
#include "memkit/internal.h"
#include "memkit/pool.h"

#ifdef MKI_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_REDZONE  MKI_ALIGN
#define poison(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_REDZONE  0
#define poison(p, n)   ((void)(p), (void)(n))
#define unpoison(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_DEFAULT_ORDER 2		   /* 16 KiB first block */
#define ARENA_OS_BLOCK	    0xff	   /* order value of a block from mki_os_map */
#define ARENA_MAX_ALIGN	    MKI_CHUNK_SIZE /* 4 MiB */

/* At the start of every block. */
struct arena_block {
	struct arena_block *next;
	size_t size;   /* bytes of the whole block */
	uint8_t order; /* buddy order, or ARENA_OS_BLOCK */
	char pad[MKI_ALIGN - sizeof(uint8_t)];
};

struct mk_arena {
	char *cur, *end;	       /* the bump region of `current` */
	struct arena_block *head;      /* first block: holds this struct */
	struct arena_block *current;   /* where cur points */
	struct arena_block *tail;      /* last normal block */
	struct arena_block *dedicated; /* one object each; freed at reset */
	struct mk_arena *parent;
	struct mk_arena *children;     /* first child */
	struct mk_arena *next_sibling; /* in the parent's list */
	struct mk_arena *prev_sibling;
	unsigned next_order;	       /* order of the next new normal block */
	size_t requested, used_before; /* stats: used_before = bytes of blocks left behind */
	size_t reserved;
	size_t nblocks, ndedicated, nchildren;
	uint64_t allocs, resets;
	char name[32];
};

#define BLOCK_HDR sizeof(struct arena_block)
#define HEAD_HDR  mki_align_up(BLOCK_HDR + sizeof(struct mk_arena), MKI_ALIGN)

static size_t order_bytes(unsigned order)
{
	return MKI_PAGE_SIZE << order;
}

static char *block_data(struct arena_block *b, const struct mk_arena *a)
{
	/* the first block also holds the arena itself */
	return (char *)b + (b == a->head ? HEAD_HDR : BLOCK_HDR);
}

static char *block_end(struct arena_block *b)
{
	return (char *)b + b->size;
}

/* ------------------------------------------------------------ blocks */

/* A block of at least `bytes`, from the buddy system up to 4 MiB, from its
 * own mapping above. NULL + ENOMEM. */
static struct arena_block *block_new(size_t bytes)
{
	struct arena_block *b = NULL;
	unsigned order = 0;

	while (order <= MKI_MAX_ORDER && order_bytes(order) < bytes)
		order++;
	if (order <= MKI_MAX_ORDER) {
		b = mk_pages_alloc(order);
		if (!b)
			return NULL;
		b->size = order_bytes(order);
		b->order = (uint8_t)order;
	} else {
		size_t size = mki_align_up(bytes, MKI_PAGE_SIZE);
		void *p;
		int err = size < bytes ? ENOMEM : mki_os_map(size, MKI_PAGE_SIZE, &p);
		if (err) {
			errno = err;
			return NULL;
		}
		b = p;
		b->size = size;
		b->order = ARENA_OS_BLOCK;
	}
	b->next = NULL;
	poison((char *)b + BLOCK_HDR, b->size - BLOCK_HDR);
	return b;
}

static void block_free(struct arena_block *b)
{
	size_t size = b->size;
	unpoison(b, size); /* the page layer may write into it */
	if (b->order == ARENA_OS_BLOCK)
		mki_os_unmap(b, size);
	else
		mk_pages_free(b, b->order);
}

static void block_list_free(struct arena_block *b)
{
	while (b) {
		struct arena_block *next = b->next;
		block_free(b);
		b = next;
	}
}

/* ------------------------------------------------------------ create */

static void arena_link_child(struct mk_arena *parent, struct mk_arena *a)
{
	a->parent = parent;
	a->next_sibling = parent->children;
	if (parent->children)
		parent->children->prev_sibling = a;
	parent->children = a;
	parent->nchildren++;
}

static void arena_unlink_child(struct mk_arena *a)
{
	struct mk_arena *parent = a->parent;
	if (!parent)
		return;
	if (a->prev_sibling)
		a->prev_sibling->next_sibling = a->next_sibling;
	else
		parent->children = a->next_sibling;
	if (a->next_sibling)
		a->next_sibling->prev_sibling = a->prev_sibling;
	parent->nchildren--;
	a->parent = NULL;
}

static void arena_set_name(struct mk_arena *a, const char *name)
{
	size_t n = name ? strnlen(name, sizeof(a->name) - 1) : 0;
	memcpy(a->name, name ? name : "", n);
	a->name[n] = '\0';
}

mk_arena_t *mk_arena_create(const struct mk_arena_opts *opts)
{
	unsigned order = opts && opts->block_order ? opts->block_order : ARENA_DEFAULT_ORDER;
	struct arena_block *b;
	struct mk_arena *a;

	if (order > MKI_MAX_ORDER) {
		errno = EINVAL;
		return NULL;
	}
	b = block_new(order_bytes(order));
	if (!b)
		return NULL;
	a = (struct mk_arena *)((char *)b + BLOCK_HDR);
	unpoison(a, sizeof(*a));
	memset(a, 0, sizeof(*a));
	a->head = a->current = a->tail = b;
	a->cur = block_data(b, a);
	a->end = block_end(b);
	a->next_order = order < MKI_MAX_ORDER ? order + 1 : order;
	a->reserved = b->size;
	a->nblocks = 1;
	arena_set_name(a, opts ? opts->name : NULL);
	if (opts && opts->parent)
		arena_link_child(opts->parent, a);
	return a;
}

/* ------------------------------------------------------------ allocate */

static bool fits(const char *cur, const char *end, size_t size, size_t align, char **out)
{
	uintptr_t p = mki_align_up((uintptr_t)cur, align);
	if (p > (uintptr_t)end || size + ARENA_REDZONE > (uintptr_t)end - p)
		return false;
	*out = (char *)p;
	return true;
}

static void *bump(struct mk_arena *a, char *p, size_t size)
{
	a->cur = p + size + ARENA_REDZONE;
	a->requested += size;
	a->allocs++;
	unpoison(p, size);
	return p;
}

/* Make b the current block (it is already in the normal chain). */
static void switch_to(struct mk_arena *a, struct arena_block *b)
{
	a->used_before += (size_t)(a->cur - block_data(a->current, a));
	a->current = b;
	a->cur = block_data(b, a);
	a->end = block_end(b);
}

/* A kept block after the current one that can hold the request, or NULL.
 * Blocks skipped here stay unused until the next reset. */
static struct arena_block *next_kept_block(struct mk_arena *a, size_t size, size_t align)
{
	char *p = NULL;
	for (struct arena_block *b = a->current->next; b; b = b->next)
		if (fits(block_data(b, a), block_end(b), size, align, &p))
			return b;
	return NULL;
}

static void *alloc_in_new_block(struct mk_arena *a, size_t size, size_t align)
{
	struct arena_block *b = block_new(order_bytes(a->next_order));
	if (!b)
		return NULL;
	a->tail->next = b;
	a->tail = b;
	a->reserved += b->size;
	a->nblocks++;
	if (a->next_order < MKI_MAX_ORDER)
		a->next_order++;
	/* jump over kept blocks that were too small: they stay in the chain */
	while (a->current->next != b)
		switch_to(a, a->current->next);
	switch_to(a, b);
	char *p = NULL;
	fits(a->cur, a->end, size, align, &p);
	return bump(a, p, size);
}

/* An oversized object: a block of its own, aligned inside it. */
static void *alloc_dedicated(struct mk_arena *a, size_t size, size_t align)
{
	size_t need = BLOCK_HDR + align + size + ARENA_REDZONE;
	if (need < size) {
		errno = ENOMEM;
		return NULL;
	}
	struct arena_block *b = block_new(need);
	if (!b)
		return NULL;
	b->next = a->dedicated;
	a->dedicated = b;
	a->reserved += b->size;
	a->ndedicated++;
	a->used_before += size;
	char *p = (char *)mki_align_up((uintptr_t)b + BLOCK_HDR, align);
	a->requested += size;
	a->allocs++;
	unpoison(p, size);
	return p;
}

MKI_NOINLINE static void *alloc_slow(struct mk_arena *a, size_t size, size_t align)
{
	struct arena_block *kept = next_kept_block(a, size, align);
	char *p = NULL;

	if (kept) {
		while (a->current != kept)
			switch_to(a, a->current->next);
		fits(a->cur, a->end, size, align, &p);
		return bump(a, p, size);
	}
	/* would it fit an empty block of the next normal size? */
	if (size + align + ARENA_REDZONE <= order_bytes(a->next_order) - BLOCK_HDR &&
	    size <= order_bytes(a->next_order))
		return alloc_in_new_block(a, size, align);
	return alloc_dedicated(a, size, align);
}

void *mk_arena_alloc_aligned(mk_arena_t *a, size_t size, size_t align)
{
	char *p = NULL;

	if (mki_unlikely(!mki_is_pow2(align) || align > ARENA_MAX_ALIGN)) {
		errno = EINVAL;
		return NULL;
	}
	if (mki_unlikely(size == 0))
		size = 1;
	/* the common case: a few adds and compares */
	if (mki_likely(fits(a->cur, a->end, size, align, &p)))
		return bump(a, p, size);
	return alloc_slow(a, size, align);
}

void *mk_arena_alloc(mk_arena_t *a, size_t size)
{
	return mk_arena_alloc_aligned(a, size, MKI_ALIGN);
}

void *mk_arena_calloc(mk_arena_t *a, size_t count, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(count, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = mk_arena_alloc(a, bytes);
	if (p)
		memset(p, 0, bytes);
	return p;
}

char *mk_arena_strdup(mk_arena_t *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mk_arena_alloc_aligned(a, n, 1);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* ------------------------------------------------------------ reset, destroy */

static void destroy_children(struct mk_arena *a)
{
	while (a->children)
		mk_arena_destroy(a->children);
}

void mk_arena_reset(mk_arena_t *a)
{
	destroy_children(a);
	block_list_free(a->dedicated);
	a->dedicated = NULL;
	a->ndedicated = 0;
	a->reserved = 0;
	struct arena_block *b = a->head; /* never NULL: it holds *a */
	do {
		a->reserved += b->size;
		poison(block_data(b, a), (size_t)(block_end(b) - block_data(b, a)));
	} while ((b = b->next));
	a->current = a->head;
	a->cur = block_data(a->head, a);
	a->end = block_end(a->head);
	a->requested = 0;
	a->used_before = 0;
	a->resets++;
}

void mk_arena_destroy(mk_arena_t *a)
{
	if (!a)
		return;
	destroy_children(a);
	arena_unlink_child(a);
	block_list_free(a->dedicated);
	struct arena_block *head = a->head;
	block_list_free(head->next); /* the head holds *a: it goes last */
	head->next = NULL;
	block_free(head);
}

/* ------------------------------------------------------------ stats */

int mk_arena_stats(const mk_arena_t *a, struct mk_arena_stats *st)
{
	if (!a || !st)
		return EINVAL;
	memset(st, 0, sizeof(*st));
	st->requested_bytes = a->requested;
	st->used_bytes = a->used_before + (size_t)(a->cur - block_data(a->current, a));
	st->reserved_bytes = a->reserved;
	st->blocks = a->nblocks;
	st->dedicated_blocks = a->ndedicated;
	st->children = a->nchildren;
	st->allocs = a->allocs;
	st->resets = a->resets;
	memcpy(st->name, a->name, sizeof(st->name));
	return 0;
}
