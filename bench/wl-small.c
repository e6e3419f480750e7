/* wl-small - many small same-thread allocations with a working set.
 *
 * The common case: each thread keeps a working set of 2048 live blocks of
 * 8..512 bytes (most under 128) and, per step, frees a random one and
 * allocates a new one in its place, writing its first and last bytes.
 *
 * BENCH_NULL=1 does the same loop without calling malloc or free (blocks come
 * from a static area); the instruction count of that run, subtracted from a
 * real run's, gives instructions per malloc/free pair (see run.py --callgrind).
 */
#include "common.h"

#define WORKSET 2048

static long steps;
static int null_mode;

struct arg {
	int id;
	uint64_t sum;
};

static size_t pick_size(uint64_t *rng)
{
	uint64_t r = bench_rand(rng);
	if ((r & 7) != 0)
		return 8 + (r >> 8) % 120; /* 7 in 8: 8..127 */
	return 8 + (r >> 8) % 505;	   /* 1 in 8: 8..512 */
}

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id);
	static _Alignas(64) unsigned char null_area[64][WORKSET * 2][512];
	unsigned char **set = bench_xmalloc(sizeof(*set) * WORKSET);
	uint64_t sum = 0;
	unsigned char *area = (unsigned char *)null_area[a->id % 64];

	for (int i = 0; i < WORKSET; i++) {
		size_t n = pick_size(&rng);
		set[i] = null_mode ? area + (size_t)i * 512 : bench_xmalloc(n);
		set[i][0] = (unsigned char)n;
		set[i][n - 1] = (unsigned char)i;
	}
	for (long s = 0; s < steps; s++) {
		uint64_t r = bench_rand(&rng);
		unsigned i = (unsigned)(r % WORKSET);
		size_t n = pick_size(&rng);
		sum += set[i][0];
		if (!null_mode) {
			free(set[i]);
			set[i] = bench_xmalloc(n);
		}
		set[i][0] = (unsigned char)n;
		set[i][n - 1] = (unsigned char)s;
	}
	for (int i = 0; i < WORKSET; i++) {
		sum += set[i][0];
		if (!null_mode)
			free(set[i]);
	}
	free(set);
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	null_mode = getenv("BENCH_NULL") && atoi(getenv("BENCH_NULL"));
	steps = bench_scaled(30000000);
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
