/* wl-frag - how much freed memory goes back to the OS.
 *
 * Allocate 256 MiB in small blocks (16..1024 bytes), then a few long-lived
 * blocks after them (which pin the top of a brk heap), then free all the
 * small blocks. Resident set sizes, from /proc/self/statm:
 *
 *   before   at start
 *   peak     after the allocations
 *   after    right after the frees
 *   idle     after 1 s more, then 100 000 small malloc/free pairs: a program
 *            that goes on working, so that allocators which return memory
 *            from their allocation paths (on a tick or a decay) get to run
 *
 * and it reports "metric returned_pct" = (peak - idle) / (peak - before):
 * the share of the freed memory the allocator gave back without being asked
 * (no malloc_trim). Single-threaded.
 */
#include <time.h>

#include "common.h"

#define LONG_LIVED 64

int main(void)
{
	size_t total = (size_t)bench_scaled(256L << 20);
	size_t count = total / 520; /* mean block size */
	void **blk = bench_xmalloc(sizeof(void *) * count);
	void *keep[LONG_LIVED];
	uint64_t rng = bench_seed(700), sum = 0;
	long before, peak, after, idle;
	struct timespec pause = {1, 0};

	before = bench_rss_bytes();
	for (size_t i = 0; i < count; i++) {
		size_t n = 16 + bench_rand(&rng) % 1009;
		unsigned char *p = bench_xmalloc(n);
		memset(p, (int)(i & 0xff), n);
		blk[i] = p;
		sum += n;
	}
	for (int i = 0; i < LONG_LIVED; i++) {
		keep[i] = bench_xmalloc(64 + (size_t)i * 16);
		memset(keep[i], i, 64);
	}
	peak = bench_rss_bytes();
	for (size_t i = 0; i < count; i++) {
		sum += ((unsigned char *)blk[i])[0];
		free(blk[i]);
	}
	after = bench_rss_bytes();
	nanosleep(&pause, NULL);
	for (int i = 0; i < 100000; i++) {
		size_t n = 16 + bench_rand(&rng) % 1009;
		unsigned char *p = bench_xmalloc(n);
		p[0] = (unsigned char)i;
		sum += p[0];
		free(p);
	}
	idle = bench_rss_bytes();

	for (int i = 0; i < LONG_LIVED; i++) {
		sum += ((unsigned char *)keep[i])[0];
		free(keep[i]);
	}
	free(blk);
	printf("metric rss_peak_mib=%.1f\n", (double)peak / 1048576.0);
	printf("metric rss_after_free_mib=%.1f\n", (double)after / 1048576.0);
	printf("metric rss_idle_mib=%.1f\n", (double)idle / 1048576.0);
	printf("metric returned_now_pct=%.1f\n",
	       100.0 * (double)(peak - after) / (double)(peak - before));
	printf("metric returned_pct=%.1f\n",
	       100.0 * (double)(peak - idle) / (double)(peak - before));
	return bench_finish(sum);
}
