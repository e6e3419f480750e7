/* test-buddy.c - the buddy system through mk_pages_alloc/mk_pages_free:
 * every order, blocks aligned to their size, splits that leave one free
 * buddy per order, and frees in any order merging back to whole chunks. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include "memkit/internal.h"
#include "check.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void stats(struct mk_stats *st)
{
	memset(st, 0, sizeof(*st));
	mki_page_stats(st);
}

/* all free memory is in whole chunks: everything merged */
static int all_merged(void)
{
	struct mk_stats st;
	stats(&st);
	for (int k = 0; k < MKI_MAX_ORDER; k++)
		if (st.buddy_free_blocks[k])
			return 0;
	return 1;
}

static void test_every_order(void)
{
	for (unsigned k = 0; k <= MKI_MAX_ORDER; k++) {
		char *p = mk_pages_alloc(k);
		size_t bytes = (size_t)4096 << k;
		CHECK(p != NULL);
		CHECK(((uintptr_t)p & (bytes - 1)) == 0);
		memset(p, 0x5A, bytes);
		CHECK(mki_page_check() == 0);
		mk_pages_free(p, k);
	}
	CHECK(mk_pages_alloc(MKI_MAX_ORDER + 1) == NULL);
	CHECK(mki_page_check() == 0);
	CHECK(all_merged());
}

/* One order-0 page taken from a fresh chunk splits it 10 times: one free
 * block of each order 0..9 remains, as the kernel's expand() leaves them;
 * freeing the page merges everything back into the order-10 block. */
static void test_split_leaves_one_per_order(void)
{
	struct mk_stats st;
	mk_malloc_trim(0); /* nothing else uses pages here: no chunk is left */
	stats(&st);
	CHECK(st.chunks == 0);
	void *p = mk_pages_alloc(0);
	stats(&st);
	CHECK(st.chunks == 1);
	for (int k = 0; k < MKI_MAX_ORDER; k++)
		CHECK(st.buddy_free_blocks[k] == 1);
	CHECK(st.buddy_free_blocks[MKI_MAX_ORDER] == 0);
	mk_pages_free(p, 0);
	stats(&st);
	CHECK(all_merged() && st.buddy_free_blocks[MKI_MAX_ORDER] == 1);
	CHECK(mki_page_check() == 0);
}

static void test_random_merge(void)
{
	enum { N = 3000 };
	static void *blocks[N];
	static unsigned orders[N];
	uint64_t seed = 12345;
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < N; i++) {
			orders[i] = (unsigned)(rnd(&seed) % 6);
			blocks[i] = mk_pages_alloc(orders[i]);
			CHECK(blocks[i] != NULL);
			*(int *)blocks[i] = i;
		}
		CHECK(mki_page_check() == 0);
		for (int i = N - 1; i > 0; i--) { /* shuffle, then free */
			int j = (int)(rnd(&seed) % (uint64_t)(i + 1));
			void *tb = blocks[i];
			unsigned to = orders[i];
			blocks[i] = blocks[j], orders[i] = orders[j];
			blocks[j] = tb, orders[j] = to;
		}
		for (int i = 0; i < N; i++) {
			mk_pages_free(blocks[i], orders[i]);
			if (i % 500 == 0)
				CHECK(mki_page_check() == 0);
		}
		CHECK(mki_page_check() == 0);
		CHECK(all_merged());
	}
}

/* Free chunks go back to the OS: after a trim no free chunk stays mapped
 * or resident. */
static void test_trim_releases_chunks(void)
{
	void *p[40];
	for (int i = 0; i < 40; i++) {
		p[i] = mk_pages_alloc(MKI_MAX_ORDER);
		memset(p[i], 1, MKI_CHUNK_SIZE);
	}
	for (int i = 0; i < 40; i++)
		mk_pages_free(p[i], MKI_MAX_ORDER);
	mk_malloc_trim(0);
	struct mk_stats st;
	stats(&st);
	CHECK(st.buddy_free_blocks[MKI_MAX_ORDER] == 0);
	CHECK(st.buddy_free_bytes == st.buddy_purged_bytes);
}

static size_t dirty_free_mib(void)
{
	struct mk_stats st;
	stats(&st);
	return (st.buddy_free_bytes - st.buddy_purged_bytes) >> 20;
}

/* Freed pages stay resident for reuse, up to 256 MiB (python3 frees more
 * than 100 MiB at once and allocates it again within milliseconds); past
 * that they go back to the OS at once, down to 48 MiB. */
static void test_dirty_limit(void)
{
	enum { ORDER = 8, N = 300 }; /* 1 MiB blocks */
	static void *p[N];
	size_t block = (size_t)MKI_PAGE_SIZE << ORDER;
	mk_malloc_trim(0);
	for (int round = 0; round < 2; round++) {
		int n = round ? N : 128;
		for (int i = 0; i < n; i++) {
			CHECK((p[i] = mk_pages_alloc(ORDER)) != NULL);
			memset(p[i], 1, block);
		}
		for (int i = 0; i < n; i++)
			mk_pages_free(p[i], ORDER);
		size_t dirty = dirty_free_mib();
		if (round == 0)
			CHECK(dirty >= 128); /* kept: under the limit */
		else
			CHECK(dirty <= 48 + (N - 256)); /* purged down to 48 MiB at 256 */
		mk_malloc_trim(0);
	}
}

/* A block that may be resident is taken before a purged one, even from a
 * larger order: a purged block costs as many page faults, and as much RSS,
 * as new memory. A purged 8-page block and a resident 16-page one are free;
 * an 8-page request takes the resident one. */
static void test_resident_first(void)
{
	const size_t page = MKI_PAGE_SIZE;
	bool zero;
	mk_malloc_trim(0);
	char *a = mki_run_alloc(32, 5, &zero);
	char *r = mki_run_alloc(16, 4, &zero);
	CHECK(a && r);
	memset(a, 1, 32 * page);
	CHECK(mki_run_shrink(r, 8));  /* its upper half free, beside a live half */
	mk_malloc_trim(0);	      /* and purged */
	CHECK(mki_run_shrink(a, 16)); /* its upper half free and resident */
	CHECK(mki_pages_resident_free(3));
	char *q = mk_pages_alloc(3);
	CHECK(q == a + 16 * page);
	CHECK(mki_page_check() == 0); /* the resident ahead of the purged on each list */
	mk_pages_free(q, 3);
	mki_run_free(a);
	mki_run_free(r);
	mk_malloc_trim(0);
	CHECK(!mki_pages_resident_free(0));
}

/* A thread whose zone has no chunk yet maps one of its own rather than
 * taking pages from another zone's chunk: two threads' page runs then do
 * not lie in between each other's, where neither could grow in place.
 * Zones are taken in turn by threads, so as many threads as zones, one
 * after the other, see every zone; before the rule they all took pages
 * from main's chunk. (With one CPU there is one zone, and one is seen.) */
static void *zone_of_new_thread(void *arg)
{
	void *p = mk_pages_alloc(0);
	*(int *)arg = p ? mki_chunk_of(p)->zone : -1;
	if (p)
		mk_pages_free(p, 0);
	return NULL;
}

static void test_zone_maps_its_first_chunk(void)
{
	unsigned zones = mki_cpu_count() < 8 ? mki_cpu_count() : 8;
	void *hold = mk_pages_alloc(0); /* main's zone has a chunk with room */
	uint64_t seen = 0;
	CHECK(hold != NULL);
	for (unsigned i = 0; i < zones; i++) {
		pthread_t t;
		int zone = -1;
		CHECK(pthread_create(&t, NULL, zone_of_new_thread, &zone) == 0);
		CHECK(pthread_join(t, NULL) == 0);
		CHECK(zone >= 0);
		if (zone >= 0)
			seen |= (uint64_t)1 << zone;
	}
	CHECK(seen == ((uint64_t)1 << zones) - 1);
	CHECK(mki_page_check() == 0);
	mk_pages_free(hold, 0);
}

/* The free lists are split in zones, one a CPU (up to 8), and a thread
 * allocates from its own: but one whose zone has no block large enough
 * takes one from another zone before it maps a new chunk. A thread of
 * another zone than main's (zones are taken in turn) frees a whole chunk;
 * main's next whole-chunk request gets that one, and no chunk is mapped.
 * (With one CPU there is one zone, and the same holds.) */
static void *chunk_freed_by_thread(void *arg)
{
	void *p = mk_pages_alloc(MKI_MAX_ORDER);
	*(void **)arg = p;
	if (p) {
		memset(p, 1, MKI_PAGE_SIZE);
		mk_pages_free(p, MKI_MAX_ORDER);
	}
	return NULL;
}

static void test_other_zone_before_new_chunk(void)
{
	pthread_t t;
	void *freed = NULL;
	struct mk_stats st;
	mk_malloc_trim(0);
	void *hold = mk_pages_alloc(0); /* main's zone: a chunk, not wholly free */
	CHECK(pthread_create(&t, NULL, chunk_freed_by_thread, &freed) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	stats(&st);
	size_t chunks = st.chunks;
	void *q = mk_pages_alloc(MKI_MAX_ORDER);
	stats(&st);
	CHECK(hold && freed && q == freed);
	CHECK(st.chunks == chunks);
	CHECK(mki_page_check() == 0);
	mk_pages_free(q, MKI_MAX_ORDER);
	mk_pages_free(hold, 0);
}

int main(void)
{
	mki_init();
	test_every_order();
	test_split_leaves_one_per_order();
	test_random_merge();
	test_trim_releases_chunks();
	test_dirty_limit();
	test_resident_first();
	test_zone_maps_its_first_chunk();
	test_other_zone_before_new_chunk();
	return check_done("test-buddy");
}
