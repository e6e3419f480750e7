/* test_autofree.c - scoped cleanup: MK_AUTOFREE, MK_AUTOFREE_MK and
 * MK_AUTO_ARENA free on every way out of a scope (normal end, early return,
 * goto, break, continue), and not when ownership was taken.
 *
 * Three observers, none of them the macro itself:
 *   - the C library's own count of bytes in use (mallinfo2, or the ASan
 *     allocator's count in the sanitized build) is back where it was (run
 *     with GLIBC_TUNABLES=glibc.malloc.tcache_count=0: mallinfo2 counts
 *     blocks in glibc's per-thread cache as in use);
 *   - mk_free and the arena's page blocks are counted through link-time
 *     wrappers (-Wl,--wrap=...);
 *   - in the ASan build LeakSanitizer fails the run if anything leaked.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "memkit/internal.h"
#include "memkit/pool.h"
#include "check.h"

#ifdef POOLS_ASAN
/* from the sanitizer runtime (sanitizer/allocator_interface.h, not shipped by gcc 12) */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}
#endif

/* ------------------------------------------------------------ observers */
void *__real_mk_pages_alloc(unsigned order);
void __real_mk_pages_free(void *p, unsigned order);
void *__wrap_mk_pages_alloc(unsigned order);
void __wrap_mk_pages_free(void *p, unsigned order);

static long live_page_blocks;

void *__wrap_mk_pages_alloc(unsigned order)
{
	void *p = __real_mk_pages_alloc(order);
	live_page_blocks += p != NULL;
	return p;
}

void __wrap_mk_pages_free(void *p, unsigned order)
{
	live_page_blocks--;
	__real_mk_pages_free(p, order);
}

/* ------------------------------------------------------------ MK_AUTOFREE */

/* storing each block here keeps the compiler from eliding malloc/free pairs */
static void *volatile sink;

static int scope_exits; /* incremented by a cleanup beside each MK_AUTOFREE */
static void count_exit(int *unused)
{
	(void)unused;
	scope_exits++;
}
#define COUNTED MK_AUTO(count_exit) __attribute__((unused)) int counted_ = 0

static int normal_end(void)
{
	COUNTED;
	MK_AUTOFREE char *p = malloc(1000);
	sink = p;
	memset(p, 1, 1000);
	return p[999];
}

static int early_return(int bail)
{
	COUNTED;
	MK_AUTOFREE char *p = malloc(1000);
	sink = p;
	if (!p || bail)
		return -1;
	memset(p, 2, 1000);
	return p[0];
}

static int via_goto(int bail)
{
	int rc = 0;
	{
		COUNTED;
		MK_AUTOFREE char *p = malloc(1000);
		sink = p;
		MK_AUTOFREE char *q = malloc(3000);
		sink = q;
		if (bail)
			goto out;
		memset(q, 3, 3000);
		rc = p != NULL;
	}
out:
	return rc;
}

static int loop_break_continue(void)
{
	int n = 0;
	for (int i = 0; i < 10; i++) {
		COUNTED;
		MK_AUTOFREE char *p = malloc(100 + (size_t)i);
		sink = p;
		if (i % 3 == 0)
			continue;
		if (i == 8)
			break;
		n += p != NULL;
	}
	return n;
}

/* ownership taken: the variable is cleared, the block survives the scope */
static char *take_ownership(void)
{
	MK_AUTOFREE char *p = malloc(50);
	sink = p;
	char *kept = p;
	p = NULL;
	return kept;
}

typedef int (*path_fn)(int);
static int call_normal(int arg)
{
	(void)arg;
	return normal_end();
}
static int call_loop(int arg)
{
	(void)arg;
	return loop_break_continue();
}

static void expect_freed(const char *what, path_fn fn, int arg, int exits)
{
	size_t before = heap_in_use();
	scope_exits = 0;
	(void)fn(arg);
	if (heap_in_use() != before || scope_exits != exits)
		fprintf(stderr,
			"%s: %zu bytes in use before, %zu after; %d scope exits (want %d)\n", what,
			before, heap_in_use(), scope_exits, exits);
	CHECK(heap_in_use() == before);
	CHECK(scope_exits == exits);
}

static void test_autofree(void)
{
	expect_freed("normal end", call_normal, 0, 1);
	expect_freed("early return", early_return, 1, 1);
	expect_freed("late return", early_return, 0, 1);
	expect_freed("goto out of the block", via_goto, 1, 1);
	expect_freed("end of the block", via_goto, 0, 1);
	expect_freed("loop with break and continue", call_loop, 0, 9);

	size_t before = heap_in_use();
	char *kept = take_ownership();
	sink = kept;
	CHECK(kept != NULL && heap_in_use() > before);
	free(kept);
	CHECK(heap_in_use() == before);
}

/* ------------------------------------------------------------ MK_AUTOFREE_MK */
void __real_mk_free(void *p);
void __wrap_mk_free(void *p);
static int mk_frees;
void __wrap_mk_free(void *p)
{
	mk_frees += p != NULL;
	__real_mk_free(p);
}

static int mk_paths(int bail)
{
	MK_AUTOFREE_MK char *p = mk_malloc(200);
	sink = p;
	MK_AUTOFREE_MK char *q = mk_malloc(70000);
	sink = q;
	if (bail)
		return 0;
	return p && q;
}

static void test_autofree_mk(void)
{
	mk_frees = 0;
	mk_paths(1);
	CHECK(mk_frees == 2);
	mk_paths(0);
	CHECK(mk_frees == 4);
}

/* ------------------------------------------------------------ MK_AUTO_ARENA */

static int arena_paths(mk_arena_t *parent, int bail)
{
	MK_AUTO_ARENA mk_arena_t *a = mk_arena_create(&(struct mk_arena_opts){.parent = parent});
	for (int i = 0; i < 2000; i++)
		if (!mk_arena_alloc(a, 64))
			return -1;
	if (bail == 1)
		return 1;
	for (int round = 0; round < 3; round++) {
		MK_AUTO_ARENA mk_arena_t *scratch = mk_arena_create(NULL);
		if (!mk_arena_alloc(scratch, 100000))
			return -1;
		if (bail == 2)
			goto out;
	}
out:
	return 0;
}

static void test_auto_arena(void)
{
	mk_arena_t *parent = mk_arena_create(NULL);
	long base = live_page_blocks;
	struct mk_arena_stats st;
	for (int bail = 0; bail <= 2; bail++) {
		CHECK(arena_paths(parent, bail) >= 0);
		mk_arena_stats(parent, &st);
		CHECK(st.children == 0);
		CHECK(live_page_blocks == base);
	}
	mk_arena_destroy(parent);
	CHECK(live_page_blocks == 0);
}

int main(void)
{
	/* the C library sets up its allocator on the first call: not a leak */
	void *volatile first = malloc(1);
	free(first);
	test_autofree();
	test_autofree_mk();
	test_auto_arena();
	return check_report("test_autofree");
}
