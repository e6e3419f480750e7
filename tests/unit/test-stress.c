/* test-stress.c - threads that allocate, fill, pass blocks to each other and
 * free them, checking every byte: remote frees, full slabs coming back,
 * heaps abandoned and adopted. Not a benchmark: it checks, it does not time.
 *   test-stress [threads] [rounds]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

#ifdef USE_MK_API /* the TSan build: the mk_ API, since TSan owns malloc */
#include "memkit.h"
#define malloc	mk_malloc
#define free	mk_free
#define realloc mk_realloc
#endif

#define SLOTS 4096

static _Atomic(void *) shared[SLOTS];
static int nthreads = 4, rounds = 200000;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick_size(uint64_t r)
{
	switch (r % 16) {
	case 0:
		return (r >> 8) % 300000; /* up to above the mmap threshold */
	case 1:
	case 2:
		return (r >> 8) % 40000; /* runs */
	default:
		return (r >> 8) % 1100; /* small classes */
	}
}

/* a block carries its size and a pattern derived from its address */
static void *make(size_t size)
{
	size_t n = size < sizeof(size_t) ? sizeof(size_t) : size;
	unsigned char *p = malloc(n);
	if (!p) {
		perror("malloc");
		exit(1);
	}
	memcpy(p, &n, sizeof(n));
	for (size_t i = sizeof(n); i < n; i += 61)
		p[i] = (unsigned char)((uintptr_t)p >> 4) ^ (unsigned char)i;
	return p;
}

static void check_and_free(unsigned char *p)
{
	size_t n;
	memcpy(&n, p, sizeof(n));
	for (size_t i = sizeof(n); i < n; i += 61)
		if (p[i] != (unsigned char)(((uintptr_t)p >> 4) ^ (unsigned char)i)) {
			fprintf(stderr, "corrupt block %p size %zu at %zu\n", (void *)p, n, i);
			abort();
		}
	free(p);
}

static void *worker(void *arg)
{
	uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	for (int i = 0; i < rounds; i++) {
		uint64_t r = rnd(&s);
		void *mine = make(pick_size(r));
		void *old = atomic_exchange(&shared[(r >> 40) % SLOTS], mine);
		if (old)
			check_and_free(old);
		if (r % 97 == 0) { /* large blocks moved by mremap while others map */
			unsigned char *g = NULL;
			size_t have = 0;
			for (size_t n = 100000; n < 700000; n += 37000 + (r % 5000)) {
				g = realloc(g, n);
				for (size_t k = 0; k < have; k += 4093)
					if (g[k] != (unsigned char)k) {
						fprintf(stderr, "corrupt realloc'd block at %zu\n",
							k);
						abort();
					}
				for (size_t k = have; k < n; k++)
					g[k] = (unsigned char)k;
				have = n;
			}
			free(g);
		}
		if (r % 7 == 0) { /* a realloc'd block that stays local */
			unsigned char *q = malloc(16);
			for (int k = 1; k < 6; k++) {
				q = realloc(q, (size_t)k * (r % 5000 + 1));
				q[0] = (unsigned char)k;
			}
			free(q);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nthreads = atoi(argv[1]);
	if (argc > 2)
		rounds = atoi(argv[2]);
	for (int gen = 0; gen < 3; gen++) { /* threads die, heaps are adopted */
		pthread_t t[64];
		for (long i = 0; i < nthreads; i++)
			pthread_create(&t[i], NULL, worker, (void *)(i + 1 + gen * 100));
		for (int i = 0; i < nthreads; i++)
			pthread_join(t[i], NULL);
	}
	for (int i = 0; i < SLOTS; i++) {
		void *p = atomic_exchange(&shared[i], NULL);
		if (p)
			check_and_free(p);
	}
	printf("stress: %d threads x %d rounds x 3 generations ok\n", nthreads, rounds);
	return 0;
}
