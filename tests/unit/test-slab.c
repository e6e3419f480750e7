/* test-slab.c - slab object caches: constructed objects come out of the
 * cache, slabs move between partial, full and empty, shrink gives empty
 * slabs back to the buddy system with their destructors run, and the size
 * class table keeps its promises. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include "memkit/internal.h"
#include "check.h"

struct obj {
	uint64_t magic;
	char name[40];
};

static int constructed, destroyed;

static void ctor(void *p)
{
	struct obj *o = p;
	o->magic = 0xC0FFEE;
	constructed++;
}

static void dtor(void *p)
{
	struct obj *o = p;
	if (o->magic == 0xC0FFEE)
		destroyed++;
}

static void test_cache_lists(void)
{
	mk_cache_t *c = mk_cache_create("test_obj", sizeof(struct obj), 8, ctor, dtor);
	CHECK(c != NULL);
	struct mk_cache_info info;
	CHECK(mk_cache_info(c, &info) == 0);
	CHECK(info.slot_size >= sizeof(struct obj) && info.objects_per_slab >= 4);
	unsigned per = info.objects_per_slab;
	enum { N = 1000 };
	static struct obj *o[N];
	for (int i = 0; i < N; i++) {
		o[i] = mk_cache_alloc(c);
		CHECK(o[i] && o[i]->magic == 0xC0FFEE); /* constructed state */
		memcpy(o[i]->name, "payload", 8);
	}
	CHECK(mk_cache_info(c, &info) == 0);
	CHECK(info.active_objects == N);
	CHECK(info.slabs_full == N / per);
	CHECK(info.slabs_partial == (N % per ? 1u : 0u));
	CHECK(constructed == (int)((info.slabs_full + info.slabs_partial) * per));
	for (int i = 0; i < N; i++)
		mk_cache_free(c, o[i]);
	CHECK(mk_cache_info(c, &info) == 0);
	CHECK(info.active_objects == 0 && info.slabs_full == 0 && info.slabs_partial == 0);
	size_t empty = info.slabs_empty;
	CHECK(empty == (N + per - 1) / per);
	/* reuse: objects come back from an empty slab still constructed */
	struct obj *again = mk_cache_alloc(c);
	CHECK(again->magic == 0xC0FFEE);
	mk_cache_free(c, again);
	size_t pages = mk_cache_shrink(c);
	CHECK(pages == (empty << info.slab_order));
	CHECK(destroyed == (int)(empty * per));
	CHECK(mki_page_check() == 0);
	mk_cache_destroy(c);
}

static void test_cache_bad_args(void)
{
	CHECK(mk_cache_create("x", 0, 0, NULL, NULL) == NULL);
	CHECK(mk_cache_create("x", 10, 3, NULL, NULL) == NULL);
	mk_cache_t *c = mk_cache_create("aligned64", 100, 64, NULL, NULL);
	for (int i = 0; i < 100; i++) {
		void *p = mk_cache_alloc(c);
		CHECK(((uintptr_t)p & 63) == 0);
		mk_cache_free(c, p);
	}
	mk_cache_destroy(c);
}

static void test_size_classes(void)
{
	CHECK(mki_class_count > 8 && mki_class_count <= MKI_CLASSES_MAX);
	for (unsigned c = 0; c < mki_class_count; c++) {
		CHECK(mki_class_size[c] % 16 == 0);
		if (c)
			CHECK(mki_class_size[c] > mki_class_size[c - 1]);
		/* the waste bound: the previous class + 1 byte rounds up to this one */
		if (c && mki_class_size[c] > 128)
			CHECK((mki_class_size[c] - mki_class_size[c - 1] - 1) * 4 <
			      mki_class_size[c - 1] + 1);
		size_t slab = (size_t)4096 << mki_class_order[c];
		CHECK(slab / mki_class_size[c] >= 8);
	}
	CHECK(mki_class_size[mki_class_count - 1] == MKI_SLAB_MAX);
	for (size_t size = 0; size <= MKI_SLAB_MAX; size += (size < 2048 ? 1 : 7)) {
		unsigned c = mki_class_of(size);
		CHECK(mki_class_size[c] >= size);
		CHECK(c == 0 || mki_class_size[c - 1] < size);
	}
}

static struct mki_slab *slab_holding(const void *p)
{
	struct mki_chunk *c = mki_chunk_of(p);
	return c ? mki_page_desc(c, p)->slab : NULL;
}

static unsigned page_class(const void *p)
{
	return atomic_load(&mki_page_desc(mki_chunk_of(p), p)->cls);
}

/* free() checks a pointer against its class's geometry instead of the
 * slab's descriptor: both must say the same of every offset. */
static void test_class_geometry(void)
{
	for (unsigned c = 0; c < mki_class_count; c++) {
		const struct mki_class_geom *g = &mki_class_geom[c];
		uint32_t size = mki_class_size[c];
		size_t slab = (size_t)4096 << mki_class_order[c];
		CHECK(g->mask + (size_t)1 == slab && g->span == slab / size * size);
		int wrong = 0;
		for (uint64_t off = 0; off <= g->mask; off += 8)
			wrong += mki_is_multiple(off, g->divides) != (off % size == 0);
		CHECK(wrong == 0);
	}
	void *p = mk_malloc(100);
	struct mki_slab *s = slab_holding(p);
	CHECK(s && page_class(p) == s->cls && page_class(s->start) == s->cls);
	CHECK(s && ((uintptr_t)s->start & mki_class_geom[s->cls].mask) == 0);
	mk_free(p);
}

static size_t list_length(const struct mki_block *b)
{
	size_t n = 0;
	for (; b; b = mki_block_next(b))
		n++;
	return n;
}

static void *free_then_malloc(void *p)
{
	void *own = mk_malloc(64); /* the thread's heap exists from here */
	mk_free(p);
	void *q = mk_malloc(64); /* the block just freed, though main's */
	mk_free(own);
	return q;
}

enum { MANY = 3000 };
static void *many[MANY];

/* Frees MANY of main's blocks: its recent lists keep two halves at most,
 * the newest blocks; the rest went back to main's slabs. */
static void *free_many(void *arg)
{
	(void)arg;
	void *own = mk_malloc(64);
	struct mki_heap *h = mki_tls_heap;
	unsigned cls = mki_class_of(64);
	uint32_t half = mki_class_recent_max[cls];
	for (int i = 0; i < MANY; i++)
		mk_free(many[i]);
	CHECK(h && list_length(h->recent[cls]) <= half);
	CHECK(list_length(h->older[cls]) <= half + 1);
	CHECK(mki_heap_recent_holds(h, cls, many[MANY - 1]));
	CHECK(!mki_heap_recent_holds(h, cls, many[0]));
	/* its own block joins them while other heaps' blocks flow in */
	mk_free(own);
	CHECK(mki_heap_recent_holds(h, cls, own));
	mk_malloc_trim(0);
	CHECK(h->recent[cls] == NULL && h->older[cls] == NULL);
	/* and no longer once none have come for 4 x 256 allocations */
	enum { TICKS = 4 * 256 };
	static void *mine[TICKS];
	for (int i = 0; i < TICKS; i++)
		mine[i] = mk_malloc(64);
	for (int i = 0; i < TICKS; i++)
		mk_free(mine[i]);
	CHECK(h->recent[cls] == NULL && h->shared[cls] == 0);
	return NULL;
}

static void *keep_one(void *arg)
{
	(void)arg;
	return mk_malloc(64);
}

/* Other live heaps' blocks wait on the freeing thread's recent lists and
 * come back first; two halves at most, the rest goes back to the slabs. A
 * thread's own blocks go straight to their slabs while its list of the
 * class is empty. A dead thread's slab has no class in its pages, so frees
 * into it go straight back instead. */
/* A thread that never allocates frees MANY of main's blocks: it gets a heap
 * (the frees are its own to batch and count), and it keeps no more than an
 * eighth of a half's worth of them, since it has no use for them. */
static void *only_free_many(void *arg)
{
	(void)arg;
	unsigned cls = mki_class_of(64);
	uint32_t half = mki_class_recent_max[cls];
	uint32_t batch = half / 8 > MKI_RECENT_MIN ? half / 8 : MKI_RECENT_MIN;
	for (int i = 0; i < MANY; i++)
		mk_free(many[i]);
	struct mki_heap *h = mki_tls_heap;
	CHECK(h != NULL);
	if (h)
		CHECK(list_length(h->recent[cls]) + list_length(h->older[cls]) <= batch);
	return NULL;
}

static void test_recent_lists(void)
{
	void *p = mk_malloc(64);
	struct mki_heap *h = mki_tls_heap;
	unsigned cls = mki_class_of(64);
	CHECK(h && atomic_load(&mki_page_desc(mki_chunk_of(p), p)->heap) == h);

	pthread_t t;
	void *got = NULL;
	CHECK(pthread_create(&t, NULL, free_then_malloc, p) == 0);
	CHECK(pthread_join(t, &got) == 0);
	CHECK(got == p);
	mk_free(got);
	CHECK(!mki_heap_recent_holds(h, cls, got));

	for (int i = 0; i < MANY; i++)
		many[i] = mk_malloc(64);
	CHECK(pthread_create(&t, NULL, free_many, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	for (int i = 0; i < MANY; i++)
		many[i] = mk_malloc(64);
	CHECK(pthread_create(&t, NULL, only_free_many, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);

	void *orphan = NULL;
	CHECK(pthread_create(&t, NULL, keep_one, NULL) == 0);
	CHECK(pthread_join(t, &orphan) == 0);
	CHECK(orphan && page_class(orphan) == MKI_CLS_NONE);
	mk_free(orphan);
	CHECK(!mki_heap_recent_holds(h, cls, orphan));
}

/* A full-slab notice that went stale (the owner freed into the slab, used it
 * up and marked it full again before draining its reclaim stack) must leave
 * the slab on the full list: put back on the partial list with no free slot
 * and the full mark set, it made the next malloc of its class spin for ever
 * (seen once in 30 runs of bench/wl-larson). The race is made by hand here:
 * the notice is pushed the way notify_owner does. */
static void test_stale_reclaim_notice(void)
{
	enum { N = 4096, SIZE = 3000 };
	static void *p[N];
	p[0] = mk_malloc(SIZE);
	struct mki_heap *h = mki_tls_heap;
	struct mki_slab *s1 = slab_holding(p[0]);
	CHECK(h != NULL && s1 != NULL);
	size_t n = 1;
	while (n < N && (p[n] = mk_malloc(SIZE)) && slab_holding(p[n]) == s1)
		n++;
	CHECK(n < N && s1->state == MKI_SLAB_FULL && atomic_load(&s1->thread_free) == MKI_TF_FULL);
	atomic_store(&s1->in_reclaim, 1);
	s1->reclaim_next = atomic_load(&h->reclaim);
	atomic_store(&h->reclaim, s1);
	for (size_t i = n + 1; i < N; i++) /* slow paths drain the stale notice */
		CHECK((p[i] = mk_malloc(SIZE)) != NULL);
	CHECK(s1->state == MKI_SLAB_FULL);
	for (size_t i = 0; i < N; i++)
		mk_free(p[i]);
}

/* A remote free that read a slab's owner just before that thread exited
 * pushes the slab on the dead heap's reclaim stack, after the heap's last
 * drain (heap.c, drain_dead_heaps). Made by hand: thread A fills a slab,
 * frees one block of it and exits, the late notice is pushed the way
 * notify_owner does, thread B
 * adopts the slab and fills it; a remote free then finds the slab's notice
 * flag set and tells B nothing, unless the periodic sweep drained the dead
 * heap's stack (and cleared the flag, or announced the slab to B). */
enum { DH_SIZE = 2500, DH_MAX = 4096 };
static void *dh_blocks[DH_MAX];
static size_t dh_count;
static struct mki_slab *dh_slab;
static struct mki_heap *dh_heap_a, *dh_heap_b;
static _Atomic int dh_phase;

static void dh_wait(int phase)
{
	while (atomic_load(&dh_phase) < phase)
		sched_yield();
}

/* Blocks of `size` until one lands outside the first one's slab, which
 * they fill: blocks[0 .. *count - 1] in that slab (returned), blocks[*count]
 * the first of the next (unless *count reached max). */
static struct mki_slab *fill_a_slab(size_t size, void **blocks, size_t max, size_t *count)
{
	blocks[0] = mk_malloc(size);
	struct mki_slab *s = slab_holding(blocks[0]);
	size_t n = 1;
	while (n < max && (blocks[n] = mk_malloc(size)) && slab_holding(blocks[n]) == s)
		n++;
	*count = n;
	return s;
}

static void *dh_thread_a(void *arg)
{
	(void)arg;
	dh_slab = fill_a_slab(DH_SIZE, dh_blocks, DH_MAX, &dh_count);
	/* one slot free again: only a slab with room is taken over */
	if (dh_count > 1 && dh_count < DH_MAX) {
		mk_free(dh_blocks[dh_count - 1]);
		dh_blocks[dh_count - 1] = dh_blocks[dh_count];
		dh_count--;
	}
	dh_heap_a = mki_tls_heap;
	return NULL; /* exits: its heap dies, its slabs are abandoned */
}

static void *dh_thread_b(void *arg)
{
	(void)arg;
	static void *mine[DH_MAX];
	size_t n = 0;
	bool seen = false;
	void *other = mk_malloc(64); /* a heap, without the class of the test */
	dh_heap_b = mki_tls_heap;
	atomic_store(&dh_phase, 1);
	dh_wait(2);
	while (n < DH_MAX && (mine[n] = mk_malloc(DH_SIZE))) {
		bool in = slab_holding(mine[n++]) == dh_slab;
		if (seen && !in)
			break; /* the slab is full: it adopted and used it up */
		seen = seen || in;
	}
	atomic_store(&dh_phase, 3);
	dh_wait(4);
	for (size_t i = 0; i < n; i++)
		mk_free(mine[i]);
	mk_free(other);
	return NULL;
}

static void test_dead_heap_reclaim_notice(void)
{
	pthread_t a, b;
	CHECK(pthread_create(&b, NULL, dh_thread_b, NULL) == 0);
	dh_wait(1);
	CHECK(pthread_create(&a, NULL, dh_thread_a, NULL) == 0);
	CHECK(pthread_join(a, NULL) == 0);
	struct mki_slab *s = dh_slab;
	CHECK(s != NULL && dh_count > 1 && dh_count < DH_MAX && dh_heap_a && dh_heap_a->dead);
	/* the late notice */
	atomic_store(&s->in_reclaim, 1);
	s->reclaim_next = atomic_load(&dh_heap_a->reclaim);
	atomic_store(&dh_heap_a->reclaim, s);
	atomic_store(&dh_phase, 2);
	dh_wait(3);
	CHECK(atomic_load(&s->owner) == dh_heap_b && s->state == MKI_SLAB_FULL);
	/* the flag, still set, would keep this remote free from telling B
	 * (B's own slow paths may have swept the dead heap already) */
	mki_heap_free_remote(s, dh_blocks[0]);
	mki_heap_collect_abandoned(true);
	CHECK(atomic_load(&dh_heap_b->reclaim) == s);
	atomic_store(&dh_phase, 4);
	CHECK(pthread_join(b, NULL) == 0);
	for (size_t i = 1; i <= dh_count && i < DH_MAX; i++)
		mk_free(dh_blocks[i]);
}

/* A new slab takes the pages of an emptied slab of another class, kept for
 * its own class, before pages that are not resident: fifteen slabs of
 * 48-byte blocks empty (a class gives back only when it keeps several), the
 * buddy system's free pages are purged, and the first slab of 2560-byte
 * blocks lies where one of them was. Run first, before other tests leave
 * slabs of that class. */
static void test_kept_slab_given_back(void)
{
	enum { N = 20000 };
	static uintptr_t was[N];
	unsigned small = mki_class_of(48), big = mki_class_of(2560);
	uintptr_t mask = ((uintptr_t)MKI_PAGE_SIZE << mki_class_order[small]) - 1;
	CHECK(mki_class_order[small] >= mki_class_order[big]);
	for (int i = 0; i < N; i++) {
		char *p = mk_malloc(48);
		memset(p, 1, 48);
		was[i] = (uintptr_t)p;
	}
	for (int i = 0; i < N; i++) {
		mk_free((void *)was[i]);
		was[i] &= ~mask;
	}
	mki_page_purge(true);
	CHECK(!mki_pages_resident_free(mki_class_order[big]));
	char *q = mk_malloc(2560);
	bool reused = false;
	for (int i = 0; i < N; i++)
		reused |= ((uintptr_t)q & ~mask) == was[i];
	CHECK(reused);
	mk_free(q);
}

/* A dead thread's slab whose blocks are all live (handed to another
 * thread) is not taken over: the next thread's malloc leaves it abandoned.
 * Once one of its blocks is freed, the next thread takes it over and gets
 * that block. 3000-byte blocks: a class no other test uses. */
enum { FA_SIZE = 3000, FA_MAX = 4096 };
static void *fa_blocks[FA_MAX];
static size_t fa_count;
static struct mki_slab *fa_slab;

static void *fa_fill(void *arg)
{
	(void)arg;
	fa_slab = fill_a_slab(FA_SIZE, fa_blocks, FA_MAX, &fa_count);
	if (fa_count < FA_MAX)
		mk_free(fa_blocks[fa_count]); /* the first block of the next slab */
	return NULL;			      /* exits: fa_slab, full, is abandoned */
}

struct fa_arg {
	void *p;
	bool taken; /* fa_slab was this thread's when it had allocated */
};

static void *fa_malloc_once(void *arg)
{
	struct fa_arg *a = arg;
	a->p = mk_malloc(FA_SIZE);
	/* while this thread lives: a slab it took over is its own */
	a->taken = atomic_load(&fa_slab->owner) == mki_tls_heap;
	/* freed here: its slab, if not fa_slab, empties and is not abandoned */
	mk_free(a->p);
	return NULL;
}

static void test_full_abandoned_slab_left(void)
{
	pthread_t t;
	struct fa_arg a = {0};
	CHECK(pthread_create(&t, NULL, fa_fill, NULL) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(fa_slab && fa_count > 1 && fa_count < FA_MAX);
	if (!fa_slab || fa_count < 2 || fa_count >= FA_MAX)
		return;
	CHECK(fa_slab->state == MKI_SLAB_ABANDONED);
	CHECK(pthread_create(&t, NULL, fa_malloc_once, &a) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(a.p && slab_holding(a.p) != fa_slab && !a.taken);
	mk_free(fa_blocks[fa_count / 2]); /* a slot of fa_slab free again */
	CHECK(pthread_create(&t, NULL, fa_malloc_once, &a) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(a.p == fa_blocks[fa_count / 2] && a.taken);
	for (size_t i = 0; i < fa_count; i++)
		if (i != fa_count / 2)
			mk_free(fa_blocks[i]);
}

/* free remembers the chunk of the thread's last free (and a table of
 * others); when any chunk is unmapped all of it goes stale at once
 * (another chunk, with another descriptor, may be mapped at the same
 * address), and the next free looks its chunk up again. */
static void test_free_lookup_goes_stale(void)
{
	char *p = mk_malloc(64);
	CHECK(p != NULL);
	mk_free(p);
	struct mki_heap *h = mki_tls_heap;
	uintptr_t epoch = atomic_load(&mki_chunk_epoch);
	CHECK(h->chunk == mki_chunk_of(p));
	CHECK(h->chunk_key == mki_chunk_key(p, epoch));
	CHECK(h->chunks[mki_chunk_slot(p)] == mki_chunk_of(p));
	CHECK(h->chunk_keys[mki_chunk_slot(p)] == mki_chunk_key(p, epoch));
	/* a chunk of its own, then unmapped */
	char *whole = mk_pages_alloc(MKI_MAX_ORDER);
	CHECK(whole != NULL);
	mk_pages_free(whole, MKI_MAX_ORDER);
	mk_malloc_trim(0);
	CHECK(mki_chunk_of(whole) == NULL);
	CHECK(h->chunk_key != mki_chunk_key(p, atomic_load(&mki_chunk_epoch)));
	CHECK(h->chunk_keys[mki_chunk_slot(p)] != mki_chunk_key(p, atomic_load(&mki_chunk_epoch)));
	/* and the next free looks again, and remembers */
	p = mk_malloc(64);
	mk_free(p);
	CHECK(h->chunk == mki_chunk_of(p));
	CHECK(h->chunk_key == mki_chunk_key(p, atomic_load(&mki_chunk_epoch)));
}

int main(void)
{
	mki_init();
	test_kept_slab_given_back();
	test_cache_lists();
	test_cache_bad_args();
	test_size_classes();
	test_class_geometry();
	test_recent_lists();
	test_stale_reclaim_notice();
	test_dead_heap_reclaim_notice();
	test_full_abandoned_slab_left();
	test_free_lookup_goes_stale();
	return check_done("test-slab");
}
