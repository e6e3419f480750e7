/* wl-random - random sizes (8 B .. 1 MiB) and random lifetimes.
 *
 * Each thread keeps 512 slots; per step it frees the block in a random slot
 * and allocates one of a log-uniform size between 8 bytes and 1 MiB (so each
 * power of two is equally likely), writing one byte per 4 KiB page so that
 * the memory is really used. Lifetimes are geometric: a slot lives until the
 * random index hits it again.
 */
#include "common.h"

#define SLOTS 512

static long steps;

struct arg {
	int id;
	uint64_t sum;
};

static size_t pick_size(uint64_t *rng)
{
	uint64_t r = bench_rand(rng);
	unsigned shift = 3 + (unsigned)(r % 18); /* 2^3 .. 2^20 */
	size_t lo = (size_t)1 << shift;
	size_t n = lo + (size_t)((r >> 16) % lo);
	return n > (1u << 20) ? (1u << 20) : n;
}

static void touch(unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i += 4096)
		p[i] = v;
	p[n - 1] = v;
}

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id + 100);
	unsigned char **set = calloc(SLOTS, sizeof(*set));
	size_t *len = calloc(SLOTS, sizeof(*len));
	uint64_t sum = 0;

	for (long s = 0; s < steps; s++) {
		unsigned i = (unsigned)(bench_rand(&rng) % SLOTS);
		size_t n = pick_size(&rng);
		if (set[i]) {
			sum += set[i][0] + set[i][len[i] - 1];
			free(set[i]);
		}
		set[i] = bench_xmalloc(n);
		len[i] = n;
		touch(set[i], n, (unsigned char)s);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (set[i])
			sum += set[i][0];
		free(set[i]);
	}
	free(set);
	free(len);
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	steps = bench_scaled(300000);
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
