/* wl-larson - a server-like pattern (after Larson and Krishnan's benchmark).
 *
 * 1024 "connections", each holding up to 8 buffers of 24..4096 bytes, are
 * shared by all threads. A thread serves a request by locking a random
 * connection, freeing one of its buffers (most likely allocated by another
 * thread) and allocating a new one of a random size, which it fills with a
 * tag. Before freeing, the tag is checked, so corruption shows up in the
 * checksum. BENCH_THREADS may exceed the cores (the driver also runs it with
 * four threads per core).
 */
#include "common.h"

#define CONNS 1024
#define BUFS  8

struct conn {
	pthread_mutex_t lock;
	uint64_t *buf[BUFS];
};

struct arg {
	int id;
	uint64_t sum, bad;
};

static struct conn conns[CONNS];
static long requests;

static uint64_t *new_buf(uint64_t *rng, uint64_t *sum)
{
	size_t n = 24 + bench_rand(rng) % 4073;
	uint64_t *b = bench_xmalloc(n);
	b[0] = n;
	b[1] = n * 0x9E3779B97F4A7C15ULL;
	((unsigned char *)b)[n - 1] = (unsigned char)n;
	*sum += n;
	return b;
}

static int bad_buf(const uint64_t *b)
{
	return b[1] != b[0] * 0x9E3779B97F4A7C15ULL ||
	       ((const unsigned char *)b)[b[0] - 1] != (unsigned char)b[0];
}

static void *worker(void *p)
{
	struct arg *a = p;
	uint64_t rng = bench_seed((uint64_t)a->id + 300);
	for (long r = 0; r < requests; r++) {
		uint64_t x = bench_rand(&rng);
		struct conn *c = &conns[x % CONNS];
		unsigned k = (unsigned)((x >> 20) % BUFS);
		pthread_mutex_lock(&c->lock);
		if (c->buf[k]) {
			a->bad += (uint64_t)bad_buf(c->buf[k]);
			free(c->buf[k]);
		}
		c->buf[k] = new_buf(&rng, &a->sum);
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

int main(void)
{
	int nt = bench_threads();
	struct arg *args = calloc((size_t)nt, sizeof(*args));
	uint64_t sum = 0, bad = 0;
	uint64_t rng = bench_seed(12345);

	/* A fixed total amount of work, shared out among the threads. */
	requests = bench_scaled(4000000) / nt;
	for (int i = 0; i < CONNS; i++) {
		pthread_mutex_init(&conns[i].lock, NULL);
		for (int k = 0; k < BUFS; k++)
			conns[i].buf[k] = new_buf(&rng, &sum);
	}
	for (int i = 0; i < nt; i++)
		args[i].id = i;
	bench_run_threads(nt, worker, args, sizeof(*args));
	for (int i = 0; i < nt; i++) {
		sum = bench_mix(sum, args[i].sum);
		bad += args[i].bad;
	}
	for (int i = 0; i < CONNS; i++) {
		for (int k = 0; k < BUFS; k++) {
			bad += (uint64_t)bad_buf(conns[i].buf[k]);
			free(conns[i].buf[k]);
		}
	}
	free(args);
	return bench_finish(bad ? bad : sum);
}
