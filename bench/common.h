/* common.h - shared helpers for the memkit benchmark workloads.
 *
 * Every workload is a fixed amount of work that ends by printing one line
 *
 *     checksum=<decimal> allocator=<path of the malloc library, or glibc>
 *
 * and, where it measures something of its own, lines "metric <name>=<value>".
 * The checksum depends only on the work done, never on addresses or on thread
 * scheduling, so every allocator must print the same one; the driver
 * (bench/run.py) marks a run whose checksum differs as FAILED.
 *
 * BENCH_THREADS sets the thread count (default: the number of online cores),
 * BENCH_SCALE multiplies the amount of work (default 1.0; BENCH_QUICK runs
 * use less), BENCH_EXPECT names the library the driver preloaded: the
 * workload checks /proc/self/maps for it and exits with status 3 when it is
 * missing, since ld.so only warns about a bad LD_PRELOAD and goes on.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int bench_threads(void)
{
	const char *s = getenv("BENCH_THREADS");
	long n = s ? strtol(s, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* n scaled by BENCH_SCALE, at least 1. */
static inline long bench_scaled(long n)
{
	const char *s = getenv("BENCH_SCALE");
	double f = s ? strtod(s, NULL) : 1.0;
	long r = (long)((double)n * (f > 0 ? f : 1.0));
	return r > 0 ? r : 1;
}

/* xorshift64*: a small, fast, deterministic generator per thread. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t bench_seed(uint64_t n)
{
	return 0x9E3779B97F4A7C15ULL * (n + 1) | 1;
}

/* Mix a value into a running checksum (order-dependent). */
static inline uint64_t bench_mix(uint64_t sum, uint64_t v)
{
	sum ^= v + 0x9E3779B97F4A7C15ULL + (sum << 6) + (sum >> 2);
	return sum;
}

static inline void *bench_xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "bench: out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

/* Resident set size in bytes, from /proc/self/statm (second field, pages). */
static inline long bench_rss_bytes(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* The path of the first mapped library that provides malloc, or "glibc". */
static inline void bench_allocator(char *out, size_t len)
{
	static const char *const names[] = {"libjemalloc", "libtcmalloc", "libmimalloc",
					    "libmemkit"};
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "r");
	snprintf(out, len, "glibc");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');
		if (!path)
			continue;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (strstr(path, names[i])) {
				path[strcspn(path, "\n")] = '\0';
				snprintf(out, len, "%s", path);
				fclose(f);
				return;
			}
		}
	}
	fclose(f);
}

/* Print the result line; exit 3 if the expected library is not mapped. */
static inline int bench_finish(uint64_t checksum)
{
	char lib[4096];
	const char *want = getenv("BENCH_EXPECT");
	bench_allocator(lib, sizeof(lib));
	printf("checksum=%llu allocator=%s\n", (unsigned long long)checksum, lib);
	fflush(stdout);
	if (want && *want && !strstr(lib, want)) {
		fprintf(stderr, "bench: expected %s to be loaded, found %s\n", want, lib);
		return 3;
	}
	return 0;
}

/* Run fn(i) on n threads and wait for them all. */
static inline void bench_run_threads(int n, void *(*fn)(void *), void *args, size_t argsize)
{
	pthread_t *tid = bench_xmalloc(sizeof(*tid) * (size_t)n);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * argsize)) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(2);
		}
	}
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	free(tid);
}

#endif
