/* lifecycle.c - process life-cycle, out-of-memory and bad-argument tests for
 * whatever allocator serves malloc in the process.
 *
 *   lifecycle LIBRARY|glibc CASE [DLOPEN-LIBRARY]
 *
 * The program re-executes itself with LD_PRELOAD=LIBRARY (or with no preload
 * for "glibc"); the child first proves that malloc & co. really come from
 * that library, then runs CASE. The parent is a watchdog: a child that hangs
 * (a deadlock after fork, say) is killed after a timeout and the case fails.
 * Exit status 0 means the case passed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allocator_check.h"

#define MIB ((size_t)1 << 20)

static int failures;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                       \
		}                                                                         \
	} while (0)

/* Keep the compiler from folding calls with constant impossible sizes. */
static size_t opaque_size(size_t n)
{
	__asm__ volatile("" : "+r"(n));
	return n;
}

static void *opaque_ptr(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static int verify(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			return 0;
	return 1;
}

static size_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t vm_bytes(void)
{
	unsigned long size = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu", &size) != 1)
		size = 0;
	fclose(f);
	return size * (size_t)sysconf(_SC_PAGESIZE);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for a child with a deadline; a child still running then is killed
 * and counted as hung. Returns 0 when it exited with status 0. */
static int wait_child(pid_t pid, double seconds, const char *what)
{
	double end = now_s() + seconds;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "%s: waitpid: %s\n", what, strerror(errno));
			return -1;
		}
		if (now_s() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "%s: child %d hung for %.0f s (deadlock?)\n", what,
				(int)pid, seconds);
			return -1;
		}
		usleep(1000);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "%s: child %d ended with %s %d\n", what, (int)pid,
		WIFSIGNALED(status) ? "signal" : "status",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	return -1;
}

/* A mixed allocation workload; 0 if every block kept its contents. */
static int churn(uint64_t *seed, int rounds, size_t max_small)
{
	enum { SLOTS = 64 };
	void *slot[SLOTS] = {0};
	size_t len[SLOTS] = {0};
	int bad = 0;

	for (int r = 0; r < rounds; r++) {
		unsigned i = (unsigned)(rng_next(seed) % SLOTS);
		if (slot[i]) {
			bad |= !verify(slot[i], len[i], i);
			free(slot[i]);
		}
		uint64_t x = rng_next(seed);
		len[i] =
		    (x & 63) == 0 ? (size_t)(x >> 8) % (512 * 1024) : (size_t)(x >> 8) % max_small;
		slot[i] = malloc(len[i]);
		if (!slot[i])
			return -1;
		fill(slot[i], len[i], i);
	}
	for (unsigned i = 0; i < SLOTS; i++) {
		if (slot[i])
			bad |= !verify(slot[i], len[i], i);
		free(slot[i]);
	}
	return bad ? -1 : 0;
}

/* ------------------------------------------------------------ fork + threads */

static atomic_int stop_workers;

static void *churn_worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
	long bad = 0;

	while (!atomic_load(&stop_workers))
		bad |= churn(&seed, 200, 4096) != 0;
	return (void *)bad;
}

static int case_fork_threads(void)
{
	enum { WORKERS = 4, FORKS = 200 };
	pthread_t t[WORKERS];

	for (uintptr_t i = 0; i < WORKERS; i++)
		pthread_create(&t[i], NULL, churn_worker, (void *)(i + 1));
	for (int f = 0; f < FORKS; f++) {
		pid_t pid = fork();
		if (pid == 0) {
			/* the child: only this thread exists; it must allocate */
			uint64_t seed = (uint64_t)f + 77;
			for (int k = 0; k < 200; k++) {
				void *p = malloc((size_t)(k * 97) % 20000 + 1);
				void *q = calloc(1, 200000);
				if (!p || !q)
					_exit(3);
				free(p);
				free(q);
			}
			_exit(churn(&seed, 200, 2048) ? 4 : 0);
		}
		CHECK(pid > 0);
		if (pid > 0)
			CHECK(wait_child(pid, 20, "fork-threads") == 0);
	}
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < WORKERS; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}
	return 0;
}

/* ------------------------------------------------------------ fork in a signal handler */

enum { SIGNAL_FORKS = 1000 };
static pid_t signal_children[SIGNAL_FORKS];
static atomic_int signal_forks;

static void fork_handler(int sig)
{
	int saved = errno;
	int n = atomic_load(&signal_forks);

	(void)sig;
	if (n >= SIGNAL_FORKS)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		for (int k = 0; k < 50; k++) {
			void *p = malloc((size_t)k * 300 + 1);
			if (!p)
				_exit(3);
			free(p);
		}
		_exit(0);
	}
	signal_children[n] = pid;
	atomic_store(&signal_forks, n + 1);
	errno = saved;
}

static void *signal_sender(void *arg)
{
	pthread_t target = *(pthread_t *)arg;

	while (atomic_load(&signal_forks) < SIGNAL_FORKS) {
		pthread_kill(target, SIGUSR1);
		usleep(500);
	}
	return NULL;
}

static int case_fork_signal(void)
{
	struct sigaction sa;
	pthread_t self = pthread_self(), sender;
	uint64_t seed = 5;
	void *keep[16] = {0};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fork_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&sender, NULL, signal_sender, &self);
	/* malloc and free all the time, so that signals land inside them */
	while (atomic_load(&signal_forks) < SIGNAL_FORKS) {
		unsigned i = (unsigned)(rng_next(&seed) % 16);
		free(keep[i]);
		keep[i] = malloc((size_t)(rng_next(&seed) % 300000));
	}
	pthread_join(sender, NULL);
	for (int i = 0; i < 16; i++)
		free(keep[i]);
	for (int i = 0; i < SIGNAL_FORKS; i++)
		CHECK(signal_children[i] > 0 &&
		      wait_child(signal_children[i], 20, "fork-signal") == 0);
	return 0;
}

/* ------------------------------------------------------------ thread churn, RSS flat */

static void *short_thread(void *arg)
{
	uint64_t seed = (uintptr_t)arg + 1;
	void *b[256];
	long bad = 0;

	for (int i = 0; i < 256; i++) {
		size_t n = (size_t)(rng_next(&seed) % 2048) + 1;
		b[i] = malloc(n);
		if (!b[i])
			return (void *)1;
		memset(b[i], 0x5a, n);
	}
	void *big = malloc(300000);
	bad |= big == NULL;
	free(big);
	for (int i = 0; i < 256; i++)
		free(b[i]);
	bad |= churn(&seed, 100, 1024) != 0;
	return (void *)bad;
}

static int run_thread_batches(int batches, int per_batch, uintptr_t base)
{
	int bad = 0;

	for (int b = 0; b < batches; b++) {
		pthread_t t[64];
		for (int i = 0; i < per_batch; i++)
			if (pthread_create(&t[i], NULL, short_thread,
					   (void *)(base + (uintptr_t)(b * per_batch + i))))
				return -1;
		for (int i = 0; i < per_batch; i++) {
			void *r;
			pthread_join(t[i], &r);
			bad |= r != NULL;
		}
	}
	return bad ? -1 : 0;
}

static int case_thread_churn(void)
{
	enum { PER_BATCH = 16, WARM = 32, MAIN = 256 }; /* 512 + 4096 threads */
	size_t before, after;

	CHECK(run_thread_batches(WARM, PER_BATCH, 0) == 0);
	before = rss_bytes();
	CHECK(run_thread_batches(MAIN, PER_BATCH, 100000) == 0);
	after = rss_bytes();
	fprintf(stderr, "RSS after %d threads: %zu KiB; after %d more: %zu KiB\n", WARM * PER_BATCH,
		before >> 10, MAIN * PER_BATCH, after >> 10);
	CHECK(after < before + 16 * MIB);
	return 0;
}

/* ------------------------------------------------------------ thread-key destructors */

static pthread_key_t tsd_key;
static atomic_int tsd_destructor_calls, tsd_bad;

static void tsd_destructor(void *value)
{
	char *v = value;
	int round = v[0];

	atomic_fetch_add(&tsd_destructor_calls, 1);
	if (!verify(v + 1, 999, (unsigned)round))
		atomic_fetch_add(&tsd_bad, 1);
	void *tmp = malloc(5000);
	char *grown = realloc(v, 200000);
	if (!tmp || !grown) {
		atomic_fetch_add(&tsd_bad, 1);
		return;
	}
	free(tmp);
	if (round == 1) {
		/* allocate again: the destructor runs a second time */
		char *again = malloc(1000);
		if (!again) {
			atomic_fetch_add(&tsd_bad, 1);
		} else {
			again[0] = 2;
			fill(again + 1, 999, 2);
			pthread_setspecific(tsd_key, again);
		}
	}
	free(grown);
}

static void *tsd_thread(void *arg)
{
	char *v = malloc(1000);

	(void)arg;
	if (!v)
		return (void *)1;
	v[0] = 1;
	fill(v + 1, 999, 1);
	pthread_setspecific(tsd_key, v);
	return NULL;
}

static int case_tsd(void)
{
	enum { THREADS = 200 };

	CHECK(pthread_key_create(&tsd_key, tsd_destructor) == 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_t t;
		void *r;
		CHECK(pthread_create(&t, NULL, tsd_thread, NULL) == 0);
		pthread_join(t, &r);
		CHECK(r == NULL);
	}
	fprintf(stderr, "destructor calls: %d\n", atomic_load(&tsd_destructor_calls));
	CHECK(atomic_load(&tsd_destructor_calls) == 2 * THREADS);
	CHECK(atomic_load(&tsd_bad) == 0);
	return 0;
}

/* ------------------------------------------------------------ atexit handlers */

static char *atexit_blocks[100];

static void atexit_handler(void)
{
	int bad = 0;

	for (int i = 0; i < 100; i++) {
		bad |= !verify(atexit_blocks[i], (size_t)i * 100 + 1, (unsigned)i);
		char *q = realloc(atexit_blocks[i], (size_t)i * 2000 + 10);
		bad |= q == NULL;
		free(q);
	}
	bad |= churn(&(uint64_t){99}, 2000, 4096) != 0;
	fprintf(stderr, "atexit handler ran: %s\n", bad ? "blocks damaged" : "ok");
	/* the only way to exit 0: main() itself returns 7 */
	_exit(bad ? 3 : 0);
}

static int case_atexit(void)
{
	pthread_t t;

	for (int i = 0; i < 100; i++) {
		atexit_blocks[i] = malloc((size_t)i * 100 + 1);
		if (!atexit_blocks[i])
			return 1;
		fill(atexit_blocks[i], (size_t)i * 100 + 1, (unsigned)i);
	}
	atexit(atexit_handler);
	/* a thread still allocating while the process exits */
	pthread_create(&t, NULL, churn_worker, (void *)9);
	usleep(20000);
	exit(7);
}

/* ------------------------------------------------------------ frees after the thread exited */

enum { ORPHAN_THREADS = 16, ORPHAN_BLOCKS = 4000 };
static void *orphans[ORPHAN_THREADS][ORPHAN_BLOCKS];

static size_t orphan_size(int t, int i)
{
	return (size_t)((t * 131 + i * 17) % 3000) + ((i % 500) == 0 ? 200000 : 1);
}

static void *orphan_maker(void *arg)
{
	int t = (int)(uintptr_t)arg;

	for (int i = 0; i < ORPHAN_BLOCKS; i++) {
		orphans[t][i] = malloc(orphan_size(t, i));
		if (!orphans[t][i])
			return (void *)1;
		fill(orphans[t][i], orphan_size(t, i), (unsigned)(t + i));
	}
	return NULL;
}

static void *orphan_freer(void *arg)
{
	int t = (int)(uintptr_t)arg;
	long bad = 0;

	for (int i = 1; i < ORPHAN_BLOCKS; i += 2) {
		bad |= !verify(orphans[t][i], orphan_size(t, i), (unsigned)(t + i));
		free(orphans[t][i]);
	}
	return (void *)bad;
}

static int case_orphans(void)
{
	for (int round = 0; round < 3; round++) {
		pthread_t t[ORPHAN_THREADS];
		void *r;
		for (int i = 0; i < ORPHAN_THREADS; i++)
			pthread_create(&t[i], NULL, orphan_maker, (void *)(uintptr_t)i);
		for (int i = 0; i < ORPHAN_THREADS; i++) {
			pthread_join(t[i], &r);
			CHECK(r == NULL);
		}
		/* the makers are gone: odd blocks freed by other threads, even
		 * ones by main, all after a check of their contents */
		for (int i = 0; i < ORPHAN_THREADS; i++)
			pthread_create(&t[i], NULL, orphan_freer, (void *)(uintptr_t)i);
		for (int i = 0; i < ORPHAN_THREADS; i++) {
			pthread_join(t[i], &r);
			CHECK(r == NULL);
		}
		for (int i = 0; i < ORPHAN_THREADS; i++)
			for (int j = 0; j < ORPHAN_BLOCKS; j += 2) {
				CHECK(verify(orphans[i][j], orphan_size(i, j), (unsigned)(i + j)));
				free(orphans[i][j]);
			}
		uint64_t seed = (uint64_t)round + 3;
		CHECK(churn(&seed, 20000, 4096) == 0);
	}
	return 0;
}

/* ------------------------------------------------------------ dlopen */

static const char *dlopen_path;

static int case_dlopen(void)
{
	char *odd[1000];

	for (int round = 0; round < 3; round++) {
		void *h = dlopen(dlopen_path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fprintf(stderr, "dlopen %s: %s\n", dlopen_path, dlerror());
			return 1;
		}
		int (*check)(char **, size_t) = (int (*)(char **, size_t))dlsym(h, "life_dl_check");
		CHECK(check != NULL);
		if (!check)
			return 1;
		int n = check(odd, 1000);
		CHECK(n == 500);
		for (int i = 0; i < n; i++)
			free(odd[i]);
		CHECK(dlclose(h) == 0);
	}
	return 0;
}

/* ------------------------------------------------------------ free keeps errno */

static int case_errno(void)
{
	static const size_t sizes[] = {0, 1, 24, 1000, 5000, 40000, 130000, 1 << 20, 8 << 20};
	void *p[sizeof(sizes) / sizeof(sizes[0])];
	const int marks[] = {EXDEV, ENOMEM, EINVAL, 0};

	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			p[i] = malloc(sizes[i]);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			errno = marks[m];
			free(p[i]);
			CHECK(errno == marks[m]);
		}
		errno = marks[m];
		free(NULL);
		CHECK(errno == marks[m]);
	}
	/* many frees of large blocks, so that any cache overflows and unmaps */
	for (int i = 0; i < 64; i++) {
		p[0] = malloc(1 << 20);
		if (p[0])
			memset(p[0], 1, 4096);
		errno = ERANGE;
		free(p[0]);
		CHECK(errno == ERANGE);
	}
	return 0;
}

/* ------------------------------------------------------------ bad arguments */

#define EXPECT_NULL_ERRNO(call, err)                                                           \
	do {                                                                                   \
		errno = 0;                                                                     \
		void *r_ = (call);                                                             \
		int e_ = errno;                                                                \
		if (r_ != NULL || e_ != (err)) {                                               \
			fprintf(stderr, "FAILED %s:%d: %s = %p errno %d (%s), want NULL %s\n", \
				__FILE__, __LINE__, #call, r_, e_, strerror(e_), #err);        \
			failures++;                                                            \
		}                                                                              \
	} while (0)

static int case_args(void)
{
	const size_t max = opaque_size(SIZE_MAX);
	char *p = malloc(100);
	void *out;

	fill(p, 100, 3);
	EXPECT_NULL_ERRNO(malloc(max), ENOMEM);
	EXPECT_NULL_ERRNO(malloc(max - 4096), ENOMEM);
	EXPECT_NULL_ERRNO(malloc(max / 2 + 1), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(max / 2 + 1, 2), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(2, max / 2 + 1), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(opaque_size((size_t)1 << 32), (size_t)1 << 32), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(1, max), ENOMEM);
	EXPECT_NULL_ERRNO(realloc(opaque_ptr(NULL), max), ENOMEM);
	EXPECT_NULL_ERRNO(realloc(opaque_ptr(p), max), ENOMEM);
	EXPECT_NULL_ERRNO(realloc(opaque_ptr(p), max - 64), ENOMEM);
	EXPECT_NULL_ERRNO(reallocarray(opaque_ptr(p), max / 2 + 1, 2), ENOMEM);
	EXPECT_NULL_ERRNO(
	    reallocarray(opaque_ptr(p), opaque_size((size_t)1 << 33), (size_t)1 << 33), ENOMEM);
	EXPECT_NULL_ERRNO(reallocarray(opaque_ptr(NULL), max / 16 + 1, 16), ENOMEM);
	CHECK(verify(p, 100, 3)); /* the failed reallocs left it alone */
	EXPECT_NULL_ERRNO(aligned_alloc(64, max - 32), ENOMEM);
	EXPECT_NULL_ERRNO(aligned_alloc(4096, max / 2), ENOMEM);
	EXPECT_NULL_ERRNO(memalign(16, max), ENOMEM);
	EXPECT_NULL_ERRNO(memalign(1 << 20, max - (1 << 19)), ENOMEM);
	EXPECT_NULL_ERRNO(valloc(max), ENOMEM);
	EXPECT_NULL_ERRNO(valloc(max - 4000), ENOMEM);
	EXPECT_NULL_ERRNO(pvalloc(max), ENOMEM);
	EXPECT_NULL_ERRNO(pvalloc(max - 4000), ENOMEM);

	/* posix_memalign returns the error and leaves errno and *out alone */
	static const size_t bad_align[] = {0, 1, 2, 4, 3, 24, 48, 65, 4097, 3 << 20};
	for (size_t i = 0; i < sizeof(bad_align) / sizeof(bad_align[0]); i++) {
		out = (void *)0x1234;
		errno = 0;
		int rc = posix_memalign(&out, opaque_size(bad_align[i]), 64);
		if (rc != EINVAL || out != (void *)0x1234 || errno != 0) {
			fprintf(stderr,
				"FAILED posix_memalign(align %zu): rc %d, out %p, errno %d\n",
				bad_align[i], rc, out, errno);
			failures++;
		}
	}
	out = (void *)0x1234;
	CHECK(posix_memalign(&out, 64, max) == ENOMEM && out == (void *)0x1234);
	out = (void *)0x1234;
	CHECK(posix_memalign(&out, 4096, max - 8192) == ENOMEM && out == (void *)0x1234);
	/* and the good ones work */
	for (size_t a = sizeof(void *); a <= (4u << 20); a <<= 1) {
		out = NULL;
		CHECK(posix_memalign(&out, a, 100) == 0 && out && ((uintptr_t)out & (a - 1)) == 0);
		free(out);
	}
	free(p);
	return 0;
}

/* ------------------------------------------------------------ out of memory */

enum { OOM_MAX_BLOCKS = 1 << 18 };
static void *oom_blocks[OOM_MAX_BLOCKS];
static size_t oom_count;

/* allocate blocks of `size` until malloc fails; 0 if it failed with ENOMEM */
static int oom_fill(size_t size)
{
	for (;;) {
		if (oom_count == OOM_MAX_BLOCKS) {
			fprintf(stderr, "oom: %zu blocks and no failure\n", oom_count);
			return -1;
		}
		errno = 0;
		void *p = malloc(size);
		if (!p) {
			if (errno != ENOMEM)
				fprintf(stderr, "oom: malloc(%zu) = NULL, errno %d\n", size, errno);
			return errno == ENOMEM ? 0 : -1;
		}
		*(size_t *)p = oom_count;
		oom_blocks[oom_count++] = p;
	}
}

static void oom_entry_points(size_t size, char *old)
{
	void *out = (void *)0x1234;

	EXPECT_NULL_ERRNO(malloc(size), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(1, size), ENOMEM);
	EXPECT_NULL_ERRNO(calloc(size / 64, 64), ENOMEM);
	EXPECT_NULL_ERRNO(realloc(NULL, size), ENOMEM);
	EXPECT_NULL_ERRNO(realloc(opaque_ptr(old), size), ENOMEM);
	EXPECT_NULL_ERRNO(reallocarray(opaque_ptr(old), size / 16, 16), ENOMEM);
	EXPECT_NULL_ERRNO(aligned_alloc(64, size), ENOMEM);
	EXPECT_NULL_ERRNO(memalign(4096, size), ENOMEM);
	EXPECT_NULL_ERRNO(valloc(size), ENOMEM);
	EXPECT_NULL_ERRNO(pvalloc(size), ENOMEM);
	int rc = posix_memalign(&out, 256, size);
	if (rc != ENOMEM || out != (void *)0x1234) {
		fprintf(stderr, "FAILED posix_memalign(256, %zu) = %d, out %p under OOM\n", size,
			rc, out);
		failures++;
	}
}

static int case_oom(void)
{
	char *old = malloc(3000);
	uint64_t seed = 11;
	struct rlimit rl;

	/* warm up whatever the allocator sets up on first use */
	CHECK(churn(&seed, 5000, 4096) == 0);
	fill(old, 3000, 42);
	getrlimit(RLIMIT_AS, &rl);
	rl.rlim_cur = vm_bytes() + 256 * MIB;
	if (setrlimit(RLIMIT_AS, &rl)) {
		perror("setrlimit");
		return 1;
	}
	CHECK(oom_fill(MIB) == 0);
	CHECK(oom_fill(64 * 1024) == 0);
	CHECK(oom_fill(4096) == 0);
	CHECK(oom_fill(1000) == 0);
	fprintf(stderr, "oom: %zu blocks allocated before the first failures\n", oom_count);
	CHECK(oom_count > 100);
	oom_entry_points(MIB, old);
	oom_entry_points(64 * 1024, old);
	CHECK(verify(old, 3000, 42)); /* the failed reallocs left it intact */
	for (size_t i = 0; i < oom_count; i++) {
		CHECK(*(size_t *)oom_blocks[i] == i);
		free(oom_blocks[i]);
	}
	oom_count = 0;
	/* memory is free again: allocation must succeed again */
	for (int i = 0; i < 150; i++) {
		void *p = malloc(MIB);
		CHECK(p != NULL);
		if (p)
			memset(p, 1, MIB);
		oom_blocks[oom_count++] = p;
	}
	for (int i = 0; i < 1000; i++) {
		void *p = malloc((size_t)i * 64 + 1);
		CHECK(p != NULL);
		oom_blocks[oom_count++] = p;
	}
	char *grown = realloc(opaque_ptr(old), 10 * MIB);
	CHECK(grown != NULL && verify(grown, 3000, 42));
	free(grown);
	for (size_t i = 0; i < oom_count; i++)
		free(oom_blocks[i]);
	return 0;
}

/* ------------------------------------------------------------ memory goes back */

enum { TRAP_BLOCKS = 400000, TRAP_SIZE = 1000 };

/* The notes' heap-top trap: everything freed but the last block. 0 when at
 * least 90% of the resident memory grown is given back. */
static int heap_top(int use_trim)
{
	char **b = mmap(NULL, TRAP_BLOCKS * sizeof(char *), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t seed = 1;
	size_t before, peak, after;

	if (b == MAP_FAILED)
		return 1;
	memset(b, 0, TRAP_BLOCKS * sizeof(char *)); /* its pages count before, not after */
	before = rss_bytes();
	for (int i = 0; i < TRAP_BLOCKS; i++) {
		b[i] = malloc(TRAP_SIZE);
		if (!b[i])
			return 1;
		memset(b[i], i & 0xff, TRAP_SIZE);
	}
	peak = rss_bytes();
	for (int i = 0; i < TRAP_BLOCKS - 1; i++)
		free(b[i]);
	if (use_trim) {
		CHECK(malloc_trim(0) == 1);
	} else {
		sleep(2);
		/* a little allocation work */
		CHECK(churn(&seed, 2000, 512) == 0);
	}
	after = rss_bytes();
	double grown = (double)(peak - before);
	double back = peak > after ? (double)(peak - after) : 0;
	fprintf(stderr,
		"RSS before %zu KiB, peak %zu KiB, after %zu KiB: %.1f%% of the growth returned\n",
		before >> 10, peak >> 10, after >> 10, 100.0 * back / grown);
	CHECK(grown > 300.0 * (double)MIB);
	CHECK(back >= 0.9 * grown);
	CHECK(b[TRAP_BLOCKS - 1][0] == (char)((TRAP_BLOCKS - 1) & 0xff));
	free(b[TRAP_BLOCKS - 1]);
	return 0;
}

static int case_heap_top(void)
{
	return heap_top(0);
}

static int case_trim(void)
{
	return heap_top(1);
}

/* ------------------------------------------------------------ small stacks */

/* Threads with the smallest stack POSIX allows (PTHREAD_STACK_MIN, 16 KiB
 * here), as programs that run many threads make them: every path of malloc
 * and free must fit, the periodic purge of freed memory and malloc_trim
 * included (libmemkit's purge of cached large blocks once took 14 KiB of
 * stack). */
static void *small_stack_worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 7;
	long bad = 0;
	for (int round = 0; round < 4; round++) {
		void *big[6];
		for (int i = 0; i < 6; i++) { /* 256 KiB .. 1 MiB: the large cache */
			big[i] = malloc(((size_t)256 << 10) << (i % 3));
			bad |= big[i] == NULL;
		}
		for (int i = 0; i < 6; i++)
			free(big[i]);
		bad |= churn(&seed, 3000, 2048) != 0;
		void *p = calloc(1000, 64);
		void *q = realloc(p, 300000);
		bad |= p == NULL || q == NULL;
		free(q ? q : p);
		malloc_trim(0);
		struct timespec pause = {0, 30 * 1000 * 1000}; /* past the decay */
		nanosleep(&pause, NULL);
	}
	return (void *)bad;
}

static int case_small_stack(void)
{
	enum { THREADS = 4 };
	pthread_attr_t attr;
	pthread_t t[THREADS];
	CHECK(pthread_attr_init(&attr) == 0);
	CHECK(pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) == 0);
	for (uintptr_t i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], &attr, small_stack_worker, (void *)i) == 0);
	for (int i = 0; i < THREADS; i++) {
		void *bad = (void *)1;
		CHECK(pthread_join(t[i], &bad) == 0 && bad == NULL);
	}
	pthread_attr_destroy(&attr);
	return 0;
}

/* ------------------------------------------------------------ driver */

struct life_case {
	const char *name;
	int (*run)(void);
	int timeout_s;
};

static const struct life_case cases[] = {
    {"fork-threads", case_fork_threads, 120},
    {"fork-signal", case_fork_signal, 30},
    {"thread-churn", case_thread_churn, 120},
    {"tsd-destructors", case_tsd, 60},
    {"atexit", case_atexit, 60},
    {"orphan-blocks", case_orphans, 120},
    {"dlopen", case_dlopen, 60},
    {"free-errno", case_errno, 60},
    {"bad-args", case_args, 60},
    {"oom", case_oom, 120},
    {"heap-top", case_heap_top, 120},
    {"trim", case_trim, 120},
    {"small-stack", case_small_stack, 60},
};

static int child_main(const char *want, const struct life_case *c)
{
	if (mkt_check_allocator(want))
		return 90;
	int rc = c->run();
	return rc || failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct life_case *c = NULL;

	if (argc >= 4 && !strcmp(argv[1], "--child")) {
		dlopen_path = argc > 4 ? argv[4] : "";
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (!strcmp(cases[i].name, argv[3]))
				return child_main(argv[2], &cases[i]);
		return 2;
	}
	if (argc >= 3)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (!strcmp(cases[i].name, argv[2]))
				c = &cases[i];
	if (!c) {
		fprintf(stderr, "usage: %s LIBRARY|glibc CASE [DLOPEN-LIBRARY]\ncases:", argv[0]);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			fprintf(stderr, " %s", cases[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	double t0 = now_s();
	pid_t pid = fork();
	if (pid == 0) {
		if (strcmp(argv[1], "glibc"))
			setenv("LD_PRELOAD", argv[1], 1);
		else
			unsetenv("LD_PRELOAD");
		execl("/proc/self/exe", argv[0], "--child", argv[1], c->name,
		      argc > 3 ? argv[3] : "", (char *)NULL);
		_exit(127);
	}
	int rc = wait_child(pid, c->timeout_s, c->name);
	fprintf(stderr, "%s %s on %s (%.1f s)\n", rc ? "FAIL" : "PASS", c->name, argv[1],
		now_s() - t0);
	return rc ? 1 : 0;
}
