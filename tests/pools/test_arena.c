/* test_arena.c - arenas through the mk_ API: objects intact and aligned,
 * reset keeps pages, destroy gives every page back, children die with their
 * parent, bad arguments are refused. Built with ASan+UBSan.
 *
 * Pages are counted at the arena's boundary: the test is linked with
 * -Wl,--wrap=mk_pages_alloc,--wrap=mk_pages_free so every buddy block the
 * arena takes or gives back passes through the counters below first. (Only
 * the arena calls the public mk_pages_* in these programs.) The arena's own
 * OS mappings, for objects above 4 MiB, are observed with mincore: after the
 * arena lets go, the address is no longer mapped.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "memkit/internal.h"
#include "memkit/pool.h"
#include "check.h"

void *__real_mk_pages_alloc(unsigned order);
void __real_mk_pages_free(void *p, unsigned order);
void *__wrap_mk_pages_alloc(unsigned order);
void __wrap_mk_pages_free(void *p, unsigned order);

static long live_blocks;
static size_t live_bytes;

void *__wrap_mk_pages_alloc(unsigned order)
{
	void *p = __real_mk_pages_alloc(order);
	if (p) {
		live_blocks++;
		live_bytes += MKI_PAGE_SIZE << order;
	}
	return p;
}

void __wrap_mk_pages_free(void *p, unsigned order)
{
	live_blocks--;
	live_bytes -= MKI_PAGE_SIZE << order;
	__real_mk_pages_free(p, order);
}

static bool is_mapped(const void *p)
{
	unsigned char vec;
	void *page = (void *)((uintptr_t)p & ~(uintptr_t)(MKI_PAGE_SIZE - 1));
	return mincore(page, MKI_PAGE_SIZE, &vec) == 0;
}

/* Many objects of mixed sizes, each filled with its own byte; all still
 * intact at the end (no two overlap), all 16-aligned. */
static void test_bump_objects(void)
{
	enum { N = 5000 };
	static unsigned char *obj[N];
	static size_t len[N];
	mk_arena_t *a = mk_arena_create(NULL);
	CHECK(a != NULL);
	for (int i = 0; i < N; i++) {
		len[i] = 1 + (size_t)(i * 37) % 700;
		obj[i] = mk_arena_alloc(a, len[i]);
		CHECK(obj[i] != NULL);
		CHECK(((uintptr_t)obj[i] & 15) == 0);
		memset(obj[i], i & 0xff, len[i]);
	}
	int bad = 0;
	for (int i = 0; i < N; i++)
		for (size_t j = 0; j < len[i]; j++)
			bad += obj[i][j] != (i & 0xff);
	CHECK(bad == 0);
	struct mk_arena_stats st;
	CHECK(mk_arena_stats(a, &st) == 0);
	CHECK(st.allocs == N);
	size_t sum = 0;
	for (int i = 0; i < N; i++)
		sum += len[i];
	CHECK(st.requested_bytes == sum);
	CHECK(st.used_bytes >= sum);
	CHECK(st.reserved_bytes == live_bytes);
	CHECK(st.blocks >= 2);
	mk_arena_destroy(a);
	CHECK(live_blocks == 0 && live_bytes == 0);
}

static void test_aligned_and_bad_args(void)
{
	mk_arena_t *a = mk_arena_create(&(struct mk_arena_opts){.block_order = 0, .name = "al"});
	CHECK(a != NULL);
	for (size_t align = 1; align <= ((size_t)4 << 20); align <<= 1) {
		char *p = mk_arena_alloc_aligned(a, 100, align);
		CHECK(p != NULL);
		CHECK(((uintptr_t)p & (align - 1)) == 0);
		memset(p, 0x5a, 100);
	}
	errno = 0;
	CHECK(mk_arena_alloc_aligned(a, 8, 24) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(mk_arena_alloc_aligned(a, 8, (size_t)8 << 20) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(mk_arena_calloc(a, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(mk_arena_alloc(a, SIZE_MAX - 64) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(mk_arena_create(&(struct mk_arena_opts){.block_order = 11}) == NULL &&
	      errno == EINVAL);
	CHECK(mk_arena_stats(NULL, NULL) == EINVAL);
	unsigned char *z = mk_arena_calloc(a, 1000, 3);
	int nonzero = 0;
	for (int i = 0; z && i < 3000; i++)
		nonzero += z[i] != 0;
	CHECK(z != NULL && nonzero == 0);
	char *s = mk_arena_strdup(a, "pool");
	CHECK(s && strcmp(s, "pool") == 0);
	struct mk_arena_stats st;
	mk_arena_stats(a, &st);
	CHECK(strcmp(st.name, "al") == 0);
	void *zero = mk_arena_alloc(a, 0);
	CHECK(zero != NULL && zero != mk_arena_alloc(a, 0));
	mk_arena_destroy(a);
	mk_arena_destroy(NULL);
	CHECK(live_blocks == 0);
}

/* Above 4 MiB an object gets its own mapping; below, a dedicated buddy block
 * when it does not fit the next normal block. Reset gives both back. */
static void test_oversized(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	char *small = mk_arena_alloc(a, 64);
	char *big = mk_arena_alloc(a, (size_t)6 << 20);
	char *mid = mk_arena_alloc(a, (size_t)1 << 20);
	char *small2 = mk_arena_alloc(a, 64);
	CHECK(small && big && mid && small2);
	if (!small || !big || !mid || !small2)
		return;
	memset(big, 1, (size_t)6 << 20);
	memset(mid, 2, (size_t)1 << 20);
	CHECK(is_mapped(big));
	/* the small objects share the first block: the big ones did not take it over */
	CHECK(small2 == small + 64 + 16 || small2 == small + 64);
	struct mk_arena_stats st;
	mk_arena_stats(a, &st);
	CHECK(st.dedicated_blocks == 2);
	CHECK(st.blocks == 1);
	mk_arena_reset(a);
	mk_arena_stats(a, &st);
	CHECK(st.dedicated_blocks == 0 && st.requested_bytes == 0 && st.used_bytes == 0);
	CHECK(!is_mapped(big));
	CHECK(live_blocks == 1);
	CHECK(st.reserved_bytes == live_bytes);
	mk_arena_destroy(a);
	CHECK(live_blocks == 0);
}

/* Reset keeps the normal blocks: the same work again takes no new pages. */
static void test_reset_keeps_pages(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 20000; i++) {
			char *p = mk_arena_alloc(a, 48);
			CHECK(p != NULL);
			if (p)
				p[47] = (char)i;
		}
		static long blocks_after_first;
		if (round == 0)
			blocks_after_first = live_blocks;
		CHECK(live_blocks == blocks_after_first);
		mk_arena_reset(a);
		struct mk_arena_stats st;
		mk_arena_stats(a, &st);
		CHECK(st.resets == (uint64_t)round + 1);
		CHECK(st.used_bytes == 0);
		CHECK(st.reserved_bytes == live_bytes);
	}
	mk_arena_destroy(a);
	CHECK(live_blocks == 0);
}

static void test_nested(void)
{
	mk_arena_t *parent = mk_arena_create(&(struct mk_arena_opts){.name = "parent"});
	mk_arena_t *c1 = mk_arena_create(&(struct mk_arena_opts){.parent = parent, .name = "c1"});
	mk_arena_t *c2 = mk_arena_create(&(struct mk_arena_opts){.parent = parent});
	mk_arena_t *g = mk_arena_create(&(struct mk_arena_opts){.parent = c1});
	CHECK(parent && c1 && c2 && g);
	for (int i = 0; i < 1000; i++) {
		CHECK(mk_arena_alloc(c1, 100) != NULL);
		CHECK(mk_arena_alloc(g, 100) != NULL);
	}
	struct mk_arena_stats st;
	mk_arena_stats(parent, &st);
	CHECK(st.children == 2);
	mk_arena_destroy(c2); /* a child alone: unlinked from its parent */
	mk_arena_stats(parent, &st);
	CHECK(st.children == 1);
	mk_arena_reset(parent); /* reset destroys the children too */
	mk_arena_stats(parent, &st);
	CHECK(st.children == 0);
	CHECK(live_blocks == 1);
	c1 = mk_arena_create(&(struct mk_arena_opts){.parent = parent});
	g = mk_arena_create(&(struct mk_arena_opts){.parent = c1});
	char *big = mk_arena_alloc(g, (size_t)5 << 20);
	CHECK(big != NULL && is_mapped(big));
	mk_arena_destroy(parent); /* and destroy takes the whole tree */
	CHECK(live_blocks == 0 && !is_mapped(big));
}

#ifdef POOLS_ASAN
/* The child process overflows an arena object by one byte; ASan must catch
 * it (the child dies) because the arena poisons what it has not handed out. */
static int dies_in_child(void (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void overflow_by_one(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	char *p = mk_arena_alloc(a, 40);
	char *next = mk_arena_alloc(a, 40);
	volatile char *q = p;
	q[40] = 1;
	(void)next;
}

static void use_after_reset(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	volatile char *p = mk_arena_alloc(a, 40);
	mk_arena_reset(a);
	p[0] = 1;
}

static void in_bounds(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	volatile char *p = mk_arena_alloc(a, 40);
	p[39] = 1;
	mk_arena_destroy(a);
}

static void test_asan_sees_arena_bugs(void)
{
	fprintf(stderr, "(two AddressSanitizer reports follow; they are expected)\n");
	CHECK(dies_in_child(overflow_by_one));
	CHECK(dies_in_child(use_after_reset));
	CHECK(!dies_in_child(in_bounds));
}
#endif

int main(void)
{
	test_bump_objects();
	test_aligned_and_bad_args();
	test_oversized();
	test_reset_keeps_pages();
	test_nested();
#ifdef POOLS_ASAN
	test_asan_sees_arena_bugs();
#else
	printf("test_arena: not built with ASan, red-zone checks not run\n");
#endif
	return check_report("test_arena");
}
