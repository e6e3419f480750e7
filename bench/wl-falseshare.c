/* wl-falseshare - false sharing between threads' objects.
 *
 * Two phases, after Hoard's cache-thrash and cache-scratch tests:
 *  active:  each thread repeatedly allocates an 8-byte object, writes it
 *           1000 times, frees it. An allocator that gives two threads
 *           neighbouring objects in one cache line makes the lines bounce.
 *  passive: the main thread allocates one 8-byte object per thread and hands
 *           them out; each thread frees its object, then allocates and writes
 *           8-byte objects as above: an allocator that reuses the freed
 *           object for the freeing thread shares a line with the others.
 */
#include "common.h"

#define WRITES 1000

struct arg {
	int id;
	volatile uint64_t *handed;
	uint64_t sum;
};

static long objects;

static uint64_t hammer(void)
{
	uint64_t sum = 0;
	for (long o = 0; o < objects; o++) {
		volatile uint64_t *x = bench_xmalloc(8);
		*x = 0;
		for (int w = 0; w < WRITES; w++)
			*x += (uint64_t)w;
		sum += *x;
		free((void *)x);
	}
	return sum;
}

static void *active(void *p)
{
	struct arg *a = p;
	a->sum = hammer();
	return NULL;
}

static void *passive(void *p)
{
	struct arg *a = p;
	free((void *)a->handed);
	a->sum = hammer();
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	objects = bench_scaled(400000);
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, active, args, sizeof(*args));
	for (int i = 0; i < nt; i++) {
		sum = bench_mix(sum, args[i].sum);
		args[i].handed = bench_xmalloc(8);
	}
	bench_run_threads(nt, passive, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
