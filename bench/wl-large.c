/* wl-large - large blocks around and above the mmap threshold.
 *
 * Each thread keeps 4 blocks of 128 KiB .. 4 MiB (uniform) and, per step,
 * replaces a random one, writing one byte in every 4 KiB page of the new
 * block. Allocators that hand back each block to the kernel at once pay a
 * page fault per page on every reuse; caches avoid that at a cost in RSS.
 */
#include "common.h"

#define SLOTS 4

static long steps;

struct arg {
	int id;
	uint64_t sum;
};

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id + 500);
	unsigned char *set[SLOTS] = {0};
	size_t len[SLOTS] = {0};
	uint64_t sum = 0;

	for (long s = 0; s < steps; s++) {
		unsigned i = (unsigned)(bench_rand(&rng) % SLOTS);
		size_t n = (128u << 10) + bench_rand(&rng) % ((4u << 20) - (128u << 10) + 1);
		if (set[i])
			sum += set[i][0] + set[i][len[i] - 1];
		free(set[i]);
		set[i] = bench_xmalloc(n);
		len[i] = n;
		for (size_t k = 0; k < n; k += 4096)
			set[i][k] = (unsigned char)(s + k);
		set[i][n - 1] = (unsigned char)s;
	}
	for (int i = 0; i < SLOTS; i++)
		free(set[i]);
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	steps = bench_scaled(6000);
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
