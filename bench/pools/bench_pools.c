/* bench_pools.c - arenas against per-object allocation, on the same objects.
 *
 * One round: allocate N objects of pseudo-random sizes (16..256 bytes), write
 * a byte of each, then let all of them go. The ways of letting go:
 *   glibc malloc/free     free() each object (glibc's malloc: this program is
 *                         linked with libmemkit_api, which does not replace it)
 *   mk_malloc/mk_free     the same through libmemkit's mk_ API
 *   glibc obstack         obstack_alloc each, obstack_free(first) at the end
 *   mk_arena (reset)      mk_arena_alloc each, mk_arena_reset at the end
 *   mk_arena (create/destroy)  a new arena per round, destroyed at the end
 *   mk_shm_alloc/free     the shared heap (a memfd, one process): alloc and
 *                         free each object, the lock taken for every call
 * Prints nanoseconds per object (allocation + release): median, min and max
 * of REPS repetitions of ROUNDS rounds, the ways interleaved. Not a test:
 * nothing is asserted.
 *
 * Usage: bench_pools [N [ROUNDS [REPS]]]
 */
#include <obstack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "memkit.h"
#include "memkit/pool.h"

#define obstack_chunk_alloc malloc
#define obstack_chunk_free  free

static size_t n_objects = 100000, rounds = 20, reps = 7;
static uint16_t *sizes;
static void **ptrs;
static volatile unsigned char sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void round_malloc(void)
{
	for (size_t i = 0; i < n_objects; i++) {
		unsigned char *p = malloc(sizes[i]);
		p[0] = (unsigned char)i;
		ptrs[i] = p;
	}
	for (size_t i = 0; i < n_objects; i++)
		free(ptrs[i]);
}

static void round_mk_malloc(void)
{
	for (size_t i = 0; i < n_objects; i++) {
		unsigned char *p = mk_malloc(sizes[i]);
		p[0] = (unsigned char)i;
		ptrs[i] = p;
	}
	for (size_t i = 0; i < n_objects; i++)
		mk_free(ptrs[i]);
}

static struct obstack ob;
static void round_obstack(void)
{
	void *first = obstack_alloc(&ob, 1);
	for (size_t i = 0; i < n_objects; i++) {
		unsigned char *p = obstack_alloc(&ob, sizes[i]);
		p[0] = (unsigned char)i;
	}
	obstack_free(&ob, first);
}

static mk_arena_t *arena;
static void round_arena_reset(void)
{
	for (size_t i = 0; i < n_objects; i++) {
		unsigned char *p = mk_arena_alloc(arena, sizes[i]);
		p[0] = (unsigned char)i;
	}
	mk_arena_reset(arena);
}

static void round_arena_destroy(void)
{
	mk_arena_t *a = mk_arena_create(NULL);
	for (size_t i = 0; i < n_objects; i++) {
		unsigned char *p = mk_arena_alloc(a, sizes[i]);
		p[0] = (unsigned char)i;
	}
	mk_arena_destroy(a);
}

static mk_shm_t *shm;
static void round_shm(void)
{
	for (size_t i = 0; i < n_objects; i++) {
		mk_shm_off_t off = mk_shm_alloc(shm, sizes[i]);
		unsigned char *p = mk_shm_ptr(shm, off);
		p[0] = (unsigned char)i;
		ptrs[i] = (void *)(uintptr_t)off;
	}
	for (size_t i = 0; i < n_objects; i++)
		mk_shm_free(shm, (mk_shm_off_t)(uintptr_t)ptrs[i]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ns per object of one repetition (ROUNDS rounds) */
static double time_rounds(void (*fn)(void))
{
	double start = now_ns();
	for (size_t k = 0; k < rounds; k++)
		fn();
	return (now_ns() - start) / (double)(rounds * n_objects);
}

static double median(double *t, size_t n)
{
	qsort(t, n, sizeof(t[0]), cmp_double);
	return t[n / 2];
}

int main(int argc, char **argv)
{
	if (argc > 1)
		n_objects = strtoul(argv[1], NULL, 10);
	if (argc > 2)
		rounds = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		reps = strtoul(argv[3], NULL, 10);
	if (!n_objects || !rounds || !reps || reps > 64)
		return fprintf(stderr, "usage: bench_pools [N [ROUNDS [REPS<=64]]]\n"), 2;
	sizes = malloc(n_objects * sizeof(*sizes));
	ptrs = malloc(n_objects * sizeof(*ptrs));
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < n_objects; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		sizes[i] = (uint16_t)(16 + s % 241);
	}
	obstack_init(&ob);
	arena = mk_arena_create(NULL);
	shm = mk_shm_open("bench-pools", (size_t)1 << 30, MK_SHM_MEMFD);
	if (!arena || !shm)
		return fprintf(stderr, "setup failed: %s\n", mk_shm_error()), 1;
	static const struct {
		const char *name;
		void (*fn)(void);
	} ways[] = {
	    {"glibc malloc/free", round_malloc},
	    {"mk_malloc/mk_free", round_mk_malloc},
	    {"glibc obstack", round_obstack},
	    {"mk_arena (reset)", round_arena_reset},
	    {"mk_arena (create/destroy)", round_arena_destroy},
	    {"mk_shm_alloc/mk_shm_free", round_shm},
	};
	printf("%zu objects of 16..256 bytes per round, %zu rounds, median of %zu\n", n_objects,
	       rounds, reps);
	/* interleaved: repetition r of every way runs before repetition r+1 of
	 * any, so a change in the machine's load touches all of them alike */
	enum { NWAYS = sizeof(ways) / sizeof(ways[0]) };
	static double t[NWAYS][64];
	for (size_t w = 0; w < NWAYS; w++)
		ways[w].fn(); /* warm up: first-touch page faults are not compared */
	for (size_t r = 0; r < reps; r++)
		for (size_t w = 0; w < NWAYS; w++)
			t[w][r] = time_rounds(ways[w].fn);
	printf("%-28s %10s %10s %10s\n", "allocator", "median", "min", "max");
	for (size_t w = 0; w < NWAYS; w++) {
		double m = median(t[w], reps);
		printf("%-28s %10.2f %10.2f %10.2f\n", ways[w].name, m, t[w][0], t[w][reps - 1]);
	}
	printf("(ns per object: allocation, one byte written, release)\n");
	mk_arena_destroy(arena);
	mk_shm_close(shm);
	obstack_free(&ob, NULL);
	free(sizes);
	free(ptrs);
	return sink;
}
