/* wl-realloc - buffers grown with realloc.
 *
 * Each thread builds strings by appending pieces of 1..64 bytes. Half of the
 * strings grow by exactly what is appended (a realloc per append, as naive
 * code does), half double their capacity when full. Final lengths are
 * log-uniform between 64 bytes and 256 KiB. The content is hashed at the end,
 * which also checks that realloc kept it.
 */
#include "common.h"

static long strings;

struct arg {
	int id;
	uint64_t sum;
};

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id + 400);
	uint64_t sum = 0;

	for (long s = 0; s < strings; s++) {
		unsigned shift = 6 + (unsigned)(bench_rand(&rng) % 13); /* 64 B .. 256 KiB */
		size_t target = ((size_t)1 << shift) + bench_rand(&rng) % ((size_t)1 << shift);
		int doubling = (int)(s & 1);
		size_t len = 0, cap = 0;
		unsigned char *buf = NULL;
		uint64_t h = 1469598103934665603ULL;

		while (len < target) {
			size_t piece = 1 + bench_rand(&rng) % 64;
			if (len + piece > cap) {
				cap = doubling ? (cap ? cap * 2 : 16) : len + piece;
				if (cap < len + piece)
					cap = len + piece;
				buf = realloc(buf, cap);
				if (!buf)
					exit(2);
			}
			memset(buf + len, (int)('a' + piece % 26), piece);
			len += piece;
		}
		/* every byte of the first 64 (where a header would be), then a sample */
		for (size_t i = 0; i < len; i += i < 64 ? 1 : 61)
			h = (h ^ buf[i]) * 1099511628211ULL;
		sum = bench_mix(sum, h ^ len);
		free(buf);
	}
	a->sum = sum;
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0;

	strings = bench_scaled(20000);
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++)
		sum = bench_mix(sum, args[i].sum);
	free(args);
	return bench_finish(sum);
}
