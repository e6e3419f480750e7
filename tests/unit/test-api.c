/* test-api.c - the malloc family through the mk_ API: glibc's documented
 * semantics, every size path (slab classes, page runs, large mappings),
 * alignment, realloc in place and moving, errno on failure. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "memkit.h"
#include "check.h"

static const size_t sizes[] = {0,     1,     8,	     15,     16,     17,      100,    1000,
			       1024,  1025,  4095,   4096,   5000,   16384,   32768,  32769,
			       65536, 70000, 131071, 131072, 200000, 1 << 20, 5 << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static int verify(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed))
			return 0;
	return 1;
}

static void test_sizes(void)
{
	void *p[NSIZES];
	for (size_t i = 0; i < NSIZES; i++) {
		p[i] = mk_malloc(sizes[i]);
		CHECK(p[i] != NULL);
		CHECK(((uintptr_t)p[i] & 15) == 0);
		CHECK(mk_malloc_usable_size(p[i]) >= sizes[i]);
		fill(p[i], sizes[i], (unsigned)i);
	}
	for (size_t i = 0; i < NSIZES; i++) {
		CHECK(verify(p[i], sizes[i], (unsigned)i));
		mk_free(p[i]);
	}
}

static void test_malloc_zero_unique(void)
{
	void *a = mk_malloc(0), *b = mk_malloc(0);
	CHECK(a && b && a != b);
	mk_free(a);
	mk_free(b);
	mk_free(NULL);
}

static void test_calloc(void)
{
	for (size_t i = 0; i < NSIZES; i++) { /* dirty the memory first */
		unsigned char *d = mk_malloc(sizes[i]);
		memset(d, 0xAB, sizes[i]);
		mk_free(d);
		unsigned char *z = mk_calloc(1, sizes[i]);
		CHECK(z != NULL);
		int zero = 1;
		for (size_t k = 0; k < sizes[i]; k++)
			zero &= z[k] == 0;
		CHECK(zero);
		mk_free(z);
	}
	errno = 0;
	CHECK(mk_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(mk_malloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(mk_reallocarray(NULL, SIZE_MAX / 4, 8) == NULL && errno == ENOMEM);
}

static void test_realloc(void)
{
	unsigned char *p = NULL;
	size_t have = 0;
	for (size_t i = 1; i < NSIZES; i++) { /* grow through every path */
		p = mk_realloc(p, sizes[i]);
		CHECK(p != NULL);
		CHECK(verify(p, have, 7));
		fill(p, sizes[i], 7);
		have = sizes[i];
	}
	for (size_t i = NSIZES - 1; i > 1; i--) { /* and shrink back */
		p = mk_realloc(p, sizes[i - 1]);
		CHECK(p != NULL && verify(p, sizes[i - 1], 7));
	}
	CHECK(mk_realloc(p, 0) == NULL); /* glibc: frees, returns NULL */
	/* a run grows in place when the pages after it are free */
	void *hold = mk_malloc(40000);
	unsigned char *r = mk_malloc(40000);
	fill(r, 40000, 3);
	unsigned char *r2 = mk_realloc(r, 60000);
	CHECK(r2 != NULL && verify(r2, 40000, 3));
	mk_free(r2);
	mk_free(hold);
	/* failure leaves the old block intact */
	unsigned char *k = mk_malloc(100);
	fill(k, 100, 9);
	errno = 0;
	CHECK(mk_realloc(k, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
	CHECK(verify(k, 100, 9));
	mk_free(k);
}

static void test_alignment(void)
{
	static const size_t aligns[] = {8, 16, 32, 64, 128, 256, 4096, 8192, 65536, 1 << 21};
	for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++)
		for (size_t i = 0; i < NSIZES; i++) {
			void *p = NULL;
			CHECK(mk_posix_memalign(&p, aligns[a], sizes[i]) == 0);
			CHECK(p && ((uintptr_t)p & (aligns[a] - 1)) == 0);
			CHECK(mk_malloc_usable_size(p) >= sizes[i]);
			memset(p, 1, sizes[i]);
			mk_free(p);
			p = mk_aligned_alloc(aligns[a], sizes[i]);
			CHECK(p && ((uintptr_t)p & (aligns[a] - 1)) == 0);
			mk_free(p);
		}
	void *untouched = (void *)0x1234;
	CHECK(mk_posix_memalign(&untouched, 24, 10) == EINVAL && untouched == (void *)0x1234);
	CHECK(mk_posix_memalign(&untouched, 4, 10) == EINVAL); /* not a multiple of void* */
	errno = 0;
	CHECK(mk_aligned_alloc(65, 64) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(mk_memalign(48, 100) == NULL && errno == EINVAL);
	void *v = mk_valloc(10);
	CHECK(v && ((uintptr_t)v & 4095) == 0);
	mk_free(v);
	void *pv = mk_pvalloc(5000);
	CHECK(pv && ((uintptr_t)pv & 4095) == 0 && mk_malloc_usable_size(pv) >= 8192);
	mk_free(pv);
}

/* allocations so far of the slab classes above a page */
static uint64_t slab_allocs_above_page(void)
{
	struct mk_stats st;
	uint64_t n = 0;
	mk_stats_get(&st);
	for (unsigned c = 0; c < MK_STATS_MAX_CLASSES; c++)
		if (st.classes[c].block_size > 4096)
			n += st.classes[c].allocs;
	return n;
}

/* A buffer that realloc grows past a page moves to a page run and grows
 * there, not through the slab classes above a page (a copy at each, and a
 * block left resident in each class's slab). */
static void test_growing_buffer_leaves_slabs(void)
{
	unsigned char *p = mk_malloc(3000);
	CHECK(p != NULL);
	fill(p, 3000, 31);
	uint64_t before = slab_allocs_above_page();
	size_t n = 3000;
	for (; n < 32 << 10; n += 1000) {
		p = mk_realloc(p, n + 1000);
		CHECK(p != NULL && verify(p, 3000, 31));
	}
	CHECK(slab_allocs_above_page() == before);
	/* shrunk to well under half, it goes back to a slab */
	unsigned char *q = mk_realloc(p, 5000);
	CHECK(q != NULL && verify(q, 3000, 31) && slab_allocs_above_page() == before + 1);
	mk_free(q);
}

/* A large block grows into the cached range right after it: same address,
 * contents kept, and that part of the range is no longer handed out. */
static void test_large_grows_into_cache(void)
{
	const size_t first = 256 << 10, grown = 1 << 20;
	mk_malloc_trim(0); /* the large cache empty */
	unsigned char *range = mk_malloc(4 << 20);
	CHECK(range != NULL);
	mk_free(range); /* the only cached range */
	unsigned char *a = mk_malloc(first);
	CHECK(a == range); /* from the front of the cached range */
	fill(a, first, 5);
	unsigned char *a2 = mk_realloc(a, grown);
	CHECK(a2 == a && verify(a2, first, 5));
	size_t usable = mk_malloc_usable_size(a2);
	CHECK(usable >= grown);
	unsigned char *b = mk_malloc(first);
	CHECK(b != NULL && (b >= a2 + usable || b + first <= a2));
	fill(a2, usable, 6);
	fill(b, first, 8);
	CHECK(verify(a2, usable, 6) && verify(b, first, 8));
	mk_free(b);
	mk_free(a2);
}

/* A large block that cannot grow where it is moves (mremap) to a mapping
 * up to twice the size it would have grown to in place (half as much again
 * as it had): address space for its next growth, so that a buffer grown
 * step by step does not move again and again, leaving a remnant behind
 * each time. Under twice its size, though: a mapping less than half used
 * would be shrunk by the next realloc and grown again by the one after. */
static void test_large_move_doubles_room(void)
{
	const size_t first = 256 << 10;
	mk_malloc_trim(0);
	unsigned char *range = mk_malloc(4 << 20);
	CHECK(range != NULL);
	mk_free(range); /* the only cached range */
	unsigned char *a = mk_malloc(first), *b = mk_malloc(first);
	CHECK(a == range && b == range + first); /* b keeps a from growing in place */
	fill(a, first, 9);
	unsigned char *q = mk_realloc(a, first + 4096);
	CHECK(q != NULL && q != a && verify(q, first, 9));
	/* twice the half again it would have had, but under twice its size:
	 * the next realloc, a little larger, finds it half used and keeps it */
	size_t usable = mk_malloc_usable_size(q);
	CHECK(usable == 2 * (first + 4096) - 4096);
	unsigned char *r = mk_realloc(q, first + 8192);
	CHECK(r == q && mk_malloc_usable_size(r) == usable && verify(r, first, 9));
	mk_free(r);
	mk_free(b);
	mk_malloc_trim(0);
}

/* A block that realloc moves into the large class, likely to grow further,
 * takes the front of the largest range this thread freed, not a remnant it
 * would soon outgrow. */
static void test_large_growing_takes_largest(void)
{
	const size_t big = 4 << 20, small = 256 << 10;
	mk_malloc_trim(0);
	unsigned char *range = mk_malloc(big);
	CHECK(range != NULL);
	mk_free(range);
	unsigned char *x = mk_malloc(small), *y = mk_malloc(small);
	CHECK(x == range && y == range + small);
	mk_free(x); /* cached: x's 256 KiB, and the 3.5 MiB after y */
	unsigned char *p = mk_malloc(20000);
	CHECK(p != NULL);
	fill(p, 20000, 12);
	unsigned char *q = mk_realloc(p, 200 << 10);
	CHECK(q != NULL && verify(q, 20000, 12));
	CHECK(q == range + 2 * small);
	mk_free(q);
	mk_free(y);
}

/* A freed block between two cached ranges joins both: one range again,
 * which serves a request larger than either part without a new mapping. */
static void test_large_cache_joins_both_sides(void)
{
	const size_t big = 4 << 20, part = 256 << 10;
	struct mk_stats before, after;
	mk_malloc_trim(0);
	unsigned char *range = mk_malloc(big);
	CHECK(range != NULL);
	mk_free(range);
	unsigned char *x = mk_malloc(part), *y = mk_malloc(part), *z = mk_malloc(part);
	CHECK(x == range && y == range + part && z == range + 2 * part);
	mk_free(x);
	mk_free(z); /* joins the rest of the range after it */
	mk_free(y); /* between x and z */
	mk_stats_get(&before);
	CHECK(before.large_cached == 1 && before.large_cached_bytes == big);
	unsigned char *again = mk_malloc(big);
	mk_stats_get(&after);
	CHECK(again == range && after.sys_mmap == before.sys_mmap);
	mk_free(again);
	mk_malloc_trim(0);
}

/* Pages of a cached range that its reuse does not reach go back to the
 * OS, even while its front serves block after block (the range as a whole
 * is never idle). */
static void test_large_cache_purges_unused_tail(void)
{
	const size_t big = 4 << 20, used = 256 << 10, page = 4096;
	static unsigned char vec[(4 << 20) / 4096];
	mk_malloc_trim(0);
	unsigned char *a = mk_malloc(big);
	CHECK(a != NULL);
	memset(a, 1, big);
	mk_free(a); /* resident, cached */
	for (int i = 0; i < 6; i++) {
		unsigned char *p = mk_malloc(used);
		CHECK(p == a); /* the front, again and again */
		memset(p, 2, used);
		mk_free(p);
		struct timespec ts = {0, 12L * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	CHECK(mincore(a, big, vec) == 0);
	size_t tail_resident = 0;
	for (size_t i = used / page; i < big / page; i++)
		tail_resident += vec[i] & 1;
	CHECK(tail_resident == 0);
	mk_malloc_trim(0);
}

/* A range one thread freed serves another thread's block: no new mapping
 * (the cache is split in shards to spare threads each other's locks; a
 * thread whose first shard has nothing looks in the others). */
static void *allocate_one_mib(void *out)
{
	*(void **)out = mk_malloc(1 << 20);
	return NULL;
}

static void test_large_range_reused_across_threads(void)
{
	struct mk_stats before, after;
	void *theirs = NULL;
	pthread_t t;
	mk_malloc_trim(0);
	void *mine = mk_malloc(1 << 20);
	CHECK(mine != NULL);
	mk_free(mine);
	mk_stats_get(&before);
	CHECK(pthread_create(&t, NULL, allocate_one_mib, &theirs) == 0 &&
	      pthread_join(t, NULL) == 0);
	mk_stats_get(&after);
	CHECK(theirs == mine);
	CHECK(after.sys_mmap == before.sys_mmap);
	mk_free(theirs);
	mk_malloc_trim(0);
}

/* A block that grows (moved into the large class by realloc) does not take
 * a range another thread freed while its own thread has freed ranges too,
 * none large enough: that range is where its freer's next buffer grows. A
 * thread that has freed none still takes the others' ranges. All of it is
 * carved from one cached range in one 64 MiB region (one cache shard):
 * x | sep1 | y | sep2 | rest, the separators keeping the freed ones apart.
 * The first thread stays alive while the second runs: a new thread may
 * have an exited one's thread-local addresses, by which ranges know their
 * freer. */
struct grow_arg {
	unsigned char *free_first; /* freed by the thread first, or NULL */
	unsigned char *grown;
	pthread_barrier_t *done; /* waited on twice after growing, if set */
};

static void *grow_one(void *v)
{
	struct grow_arg *a = v;
	mk_free(a->free_first);
	unsigned char *p = mk_malloc(20000);
	CHECK(p != NULL);
	fill(p, 20000, 21);
	a->grown = mk_realloc(p, 300 << 10);
	CHECK(a->grown != NULL && verify(a->grown, 20000, 21));
	if (a->done) {
		pthread_barrier_wait(a->done);
		pthread_barrier_wait(a->done);
	}
	return NULL;
}

static void test_large_growing_leaves_others_ranges(void)
{
	const size_t total = 12 << 20, xs = 4 << 20, sep = 128 << 10, ys = 256 << 10;
	unsigned char *kept[8] = {0};
	unsigned char *big = NULL;
	mk_malloc_trim(0);
	for (int i = 0; i < 8 && !big; i++) { /* within one region; else keep it and retry */
		kept[i] = mk_malloc(total);
		CHECK(kept[i] != NULL);
		if ((uintptr_t)kept[i] >> 26 == ((uintptr_t)kept[i] + total - 1) >> 26) {
			big = kept[i];
			kept[i] = NULL;
		}
	}
	CHECK(big != NULL);
	mk_free(big);
	unsigned char *x = mk_malloc(xs), *sep1 = mk_malloc(sep), *y = mk_malloc(ys),
		      *sep2 = mk_malloc(sep);
	CHECK(x == big && sep1 == x + xs && y == sep1 + sep && sep2 == y + ys);
	mk_free(x); /* this thread's range: x; and the rest after sep2 */

	pthread_barrier_t done;
	struct grow_arg t = {y, NULL, &done}, u = {NULL, NULL, NULL};
	pthread_t tt, tu;
	CHECK(pthread_barrier_init(&done, NULL, 2) == 0);
	CHECK(pthread_create(&tt, NULL, grow_one, &t) == 0);
	pthread_barrier_wait(&done);
	CHECK(t.grown < big || t.grown >= big + total); /* new pages, not x nor the rest */
	CHECK(pthread_create(&tu, NULL, grow_one, &u) == 0 && pthread_join(tu, NULL) == 0);
	CHECK(u.grown == sep2 + sep); /* the largest: the rest */
	pthread_barrier_wait(&done);
	CHECK(pthread_join(tt, NULL) == 0);
	pthread_barrier_destroy(&done);
	mk_free(t.grown);
	mk_free(u.grown);
	mk_free(sep1);
	mk_free(sep2);
	for (int i = 0; i < 8; i++)
		mk_free(kept[i]);
	mk_malloc_trim(0);
}

/* Many large blocks live at once, freed in a scrambled order: the table of
 * live blocks (open addressing, deletion by moving entries back) keeps
 * finding every one, with its size. */
static void test_large_table_churn(void)
{
	enum { N = 3000 };
	static unsigned char *blocks[N];
	const size_t size = 128 << 10;
	for (int i = 0; i < N; i++) {
		blocks[i] = mk_malloc(size + (size_t)(i % 7) * 4096);
		CHECK(blocks[i] != NULL);
		blocks[i][0] = (unsigned char)i;
	}
	for (int round = 0; round < 2; round++) {
		for (int i = round; i < N; i += 2) { /* every other, in a scrambled order */
			int j = (int)(((unsigned)i * 2654435761u) % N);
			if (j % 2 != round || !blocks[j])
				continue;
			mk_free(blocks[j]);
			blocks[j] = NULL;
		}
		for (int i = 0; i < N; i++)
			if (blocks[i])
				CHECK(mk_malloc_usable_size(blocks[i]) >=
					  size + (size_t)(i % 7) * 4096 &&
				      blocks[i][0] == (unsigned char)i);
	}
	for (int i = 0; i < N; i++)
		mk_free(blocks[i]);
	mk_malloc_trim(0);
}

static void test_mallopt_threshold(void)
{
	CHECK(mk_mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1);
	struct mk_stats st;
	void *p = mk_malloc((size_t)100 * 1024);
	CHECK(mk_stats_get(&st) == 0);
	CHECK(st.mmap_threshold == (size_t)64 * 1024);
	CHECK(st.large_live >= 1);
	mk_free(p);
	CHECK(mk_mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
	CHECK(mk_mallopt(12345, 1) == 0);
}

static void test_free_keeps_errno(void)
{
	void *a = mk_malloc(10), *b = mk_malloc(1 << 20);
	errno = 42;
	mk_free(a);
	mk_free(b);
	CHECK(errno == 42);
}

static void test_trim(void)
{
	void *p[2000];
	for (int i = 0; i < 2000; i++)
		p[i] = mk_malloc(3000);
	for (int i = 0; i < 2000; i++)
		mk_free(p[i]);
	mk_malloc_trim(0);
	struct mk_stats st;
	CHECK(mk_stats_get(&st) == 0);
	/* after trim every free page is purged (not resident) */
	CHECK(st.buddy_free_bytes == st.buddy_purged_bytes);
}

/* Slabs that empty are kept for the next slabs of their class (their pages
 * stay allocated: active), and malloc_trim gives them back. */
static void test_empty_slabs_kept_until_trim(void)
{
	enum { N = 600 }; /* 3000-byte blocks: 21 to a 64 KiB slab, about 29 slabs */
	static void *p[N];
	struct mk_stats before, kept, trimmed;
	mk_malloc_trim(0);
	CHECK(mk_stats_get(&before) == 0);
	for (int i = 0; i < N; i++)
		CHECK((p[i] = mk_malloc(3000)) != NULL);
	for (int i = 0; i < N; i++)
		mk_free(p[i]);
	CHECK(mk_stats_get(&kept) == 0);
	CHECK(kept.active_bytes >= before.active_bytes + ((size_t)16 << 16)); /* 16+ slabs kept */
	mk_malloc_trim(0);
	CHECK(mk_stats_get(&trimmed) == 0);
	CHECK(trimmed.active_bytes <=
	      before.active_bytes + ((size_t)1 << 16)); /* all but the current */
}

static size_t live_blocks_of(size_t block_size)
{
	struct mk_stats st;
	CHECK(mk_stats_get(&st) == 0);
	for (unsigned c = 0; c < MK_STATS_MAX_CLASSES; c++)
		if (st.classes[c].block_size == block_size)
			return st.classes[c].live_blocks;
	return 0;
}

enum { HANDED = 300, HANDED_SIZE = 768 };
static void *handed[HANDED];

static void *allocate_and_exit(void *arg)
{
	(void)arg;
	for (int i = 0; i < HANDED; i++)
		handed[i] = mk_malloc(HANDED_SIZE);
	return NULL;
}

static void *free_handed(void *arg)
{
	(void)arg;
	for (int i = 0; i < HANDED; i++)
		mk_free(handed[i]);
	return NULL;
}

/* The per-class live counts stay exact whichever thread frees a block: one
 * still running (it keeps the block to reuse), or after the owner exited. */
static void test_live_counts_across_threads(void)
{
	size_t before = live_blocks_of(HANDED_SIZE);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0 && pthread_join(t, NULL) == 0);
	CHECK(live_blocks_of(HANDED_SIZE) == before + HANDED);
	free_handed(NULL); /* the owner is gone */
	CHECK(live_blocks_of(HANDED_SIZE) == before);
	for (int i = 0; i < HANDED; i++)
		handed[i] = mk_malloc(HANDED_SIZE);
	CHECK(pthread_create(&t, NULL, free_handed, NULL) == 0 && pthread_join(t, NULL) == 0);
	CHECK(live_blocks_of(HANDED_SIZE) == before); /* freed by a thread that is not the owner */
}

/* Counts across the fast path's tick, which wraps every 256 allocations of
 * a class and hands 256 to the heap's count: the live count stays exact
 * through many wraps (and blocks of a class with many slots a slab, so
 * that most allocations take the fast path). */
static void test_live_counts_many(void)
{
	enum { N = 5000, SIZE = 48 };
	static void *p[N];
	size_t before = live_blocks_of(SIZE);
	for (int i = 0; i < N; i++)
		CHECK((p[i] = mk_malloc(SIZE)) != NULL);
	CHECK(live_blocks_of(SIZE) == before + N);
	for (int i = 0; i < N; i += 2)
		mk_free(p[i]);
	CHECK(live_blocks_of(SIZE) == before + N / 2);
	for (int i = 0; i < N; i += 2)
		CHECK((p[i] = mk_malloc(SIZE)) != NULL);
	for (int i = 0; i < N; i++)
		mk_free(p[i]);
	CHECK(live_blocks_of(SIZE) == before);
}

int main(void)
{
	test_sizes();
	test_malloc_zero_unique();
	test_calloc();
	test_realloc();
	test_large_grows_into_cache();
	test_large_move_doubles_room();
	test_large_growing_takes_largest();
	test_large_cache_purges_unused_tail();
	test_large_cache_joins_both_sides();
	test_growing_buffer_leaves_slabs();
	test_large_range_reused_across_threads();
	test_large_growing_leaves_others_ranges();
	test_large_table_churn();
	test_alignment();
	test_mallopt_threshold();
	test_free_keeps_errno();
	test_trim();
	test_empty_slabs_kept_until_trim();
	test_live_counts_across_threads();
	test_live_counts_many();
	return check_done("test-api");
}
