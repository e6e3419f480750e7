/* wl-threads - many threads created and exiting.
 *
 * Rounds of 2 x cores short-lived threads. Each thread allocates 500 blocks
 * of 16..2048 bytes, frees half of them, hands the other half to the main
 * thread (which frees them after the join: frees of memory whose thread has
 * exited) and exits. Costs: per-thread heap set-up and tear-down, and what
 * happens to a dead thread's memory.
 */
#include "common.h"

#define PER_THREAD 500

struct arg {
	int id;
	uint64_t sum;
	void *keep[PER_THREAD / 2];
};

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id + 600);
	void *mine[PER_THREAD];
	uint64_t sum = 0;

	for (int i = 0; i < PER_THREAD; i++) {
		size_t n = 16 + bench_rand(&rng) % 2033;
		uint64_t *b = bench_xmalloc(n);
		b[0] = n;
		sum += n;
		mine[i] = b;
	}
	for (int i = 0; i < PER_THREAD; i++) {
		if (i & 1)
			free(mine[i]);
		else
			a->keep[i / 2] = mine[i];
	}
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads() * 2;
	long rounds = bench_scaled(2000);
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	for (long r = 0; r < rounds; r++) {
		for (int i = 0; i < nt; i++)
			args[i].id = (int)(r * nt + i);
		bench_run_threads(nt, worker, args, sizeof(*args));
		for (int i = 0; i < nt; i++) {
			sum = bench_mix(sum, args[i].sum);
			for (int k = 0; k < PER_THREAD / 2; k++) {
				sum += *(uint64_t *)args[i].keep[k];
				free(args[i].keep[k]);
			}
		}
	}
	free(args);
	return bench_finish(sum);
}
