/* api.c - the leak and stats API from a program linked with libmemkit
 * (run with MEMKIT_LEAK=1, linked -rdynamic so dladdr names its functions):
 *
 *   api window   mk_leak_begin/mk_leak_end: only blocks allocated in the
 *                window and still live are reported (JSON on stdout)
 *   api report   mk_leak_report as JSON on stdout, then "lost=N"
 *   api stats    mk_stats_print as JSON on stdout, after known allocations
 *   api requested  mk_stats_get's requested bytes follow known allocations,
 *                a realloc in place, and frees (with MEMKIT_LEAK=1)
 *   api bss      blocks pointed to from written pages of a large, mostly
 *                untouched static array are still reachable (mk_leak_report)
 *   api chunks   "before after": libmemkit's chunks while 24 MiB of page
 *                runs are live, and after they are freed and malloc_trim(0)
 *   api thread-stack  mk_leak_report while another thread, blocked in
 *                read(), holds a block in a frame of its stack only
 *   api running-thread  the same while the other thread runs (spins)
 *
 * May call libc and libmemkit's public API.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "memkit.h"

#define NOINLINE __attribute__((noinline))

static void *volatile sink;
static void *volatile kept_in_window;
static void *volatile kept_before;

NOINLINE void window_leak_a(void);
NOINLINE void window_leak_a(void)
{
	char *p = malloc(2222);
	memset(p, 1, 2222);
	sink = p;
	sink = NULL;
}

NOINLINE void report_leak_b(void);
NOINLINE void report_leak_b(void)
{
	char *p = malloc(3333);
	memset(p, 2, 3333);
	sink = p;
	sink = NULL;
}

static NOINLINE void scrub_stack(void)
{
	volatile char buf[32768];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0;
}

static int window(void)
{
	/* kept_before is new in an earlier window: opening this one must
	 * leave it out all the same */
	mk_leak_begin();
	kept_before = malloc(111);
	mk_leak_begin();
	window_leak_a();
	kept_in_window = malloc(333);
	sink = malloc(444);
	free(sink);
	scrub_stack();
	long n = mk_leak_end(STDOUT_FILENO, MK_FORMAT_JSON);
	printf("\nlost=%ld\n", n);
	return n == 1 ? 0 : 1;
}

static int report(void)
{
	report_leak_b();
	scrub_stack();
	long n = mk_leak_report(STDOUT_FILENO, MK_FORMAT_JSON);
	printf("\nlost=%ld\n", n);
	return n >= 1 ? 0 : 1;
}

static int stats(void)
{
	void *small[100], *large = malloc(1 << 20);
	for (int i = 0; i < 100; i++)
		small[i] = malloc(48);
	sink = large;
	struct mk_stats st;
	if (mk_stats_get(&st) || mk_stats_print(STDOUT_FILENO, MK_FORMAT_JSON))
		return 1;
	for (int i = 0; i < 100; i++)
		free(small[i]);
	free(large);
	printf("\nallocated=%zu large_live=%zu\n", st.allocated_bytes, st.large_live);
	return 0;
}

static size_t requested_now(void)
{
	struct mk_stats st;
	return mk_stats_get(&st) ? (size_t)-1 : st.requested_bytes;
}

/* Prints each step's change of the requested bytes, against what the step
 * asked for: "step got want", a line each. */
static int requested(void)
{
	enum { N = 100 };
	void *small[N];
	printf("start\n"); /* stdout's buffer is allocated before the base is taken */
	size_t base = requested_now();
	for (int i = 0; i < N; i++)
		small[i] = malloc(37);
	/* through sink: the compiler may drop a malloc whose block is only freed */
	char *big = malloc(300000), *zeroed = calloc(10, 100), *grown = malloc(1000);
	sink = big;
	sink = zeroed;
	sink = grown;
	printf("alloc %zu %d\n", requested_now() - base, N * 37 + 300000 + 1000 + 1000);
	grown = realloc(grown, 1001); /* in place: its class has room */
	printf("realloc %zu %d\n", requested_now() - base, N * 37 + 300000 + 1000 + 1001);
	for (int i = 0; i < N; i += 2)
		free(small[i]);
	free(big);
	printf("free %zu %d\n", requested_now() - base, N / 2 * 37 + 1000 + 1001);
	for (int i = 1; i < N; i += 2)
		free(small[i]);
	free(zeroed);
	free(grown);
	printf("all %zu %d\n", requested_now() - base, 0);
	return 0;
}

/* 64 MiB of bss, three of its pages written: a report reads those only */
static void *volatile big_bss[8 << 20]; /* volatile: the stores must stay */

NOINLINE void bss_alloc(void);
NOINLINE void bss_alloc(void)
{
	size_t per_page = 4096 / sizeof(void *);
	big_bss[(40 << 20) / sizeof(void *)] = malloc(5555);	/* a page's first word */
	big_bss[per_page * 3000 + per_page - 1] = malloc(6666); /* a page's last word */
	big_bss[(8 << 20) - 1] = malloc(7777);			/* the array's last word */
}

static int bss(void)
{
	bss_alloc();
	report_leak_b();
	scrub_stack();
	long n = mk_leak_report(STDOUT_FILENO, MK_FORMAT_JSON);
	printf("\nlost=%ld\n", n);
	return 0;
}

static size_t chunks_now(void)
{
	struct mk_stats st;
	return mk_stats_get(&st) ? 0 : st.chunks;
}

/* Page runs (below the mmap threshold, above the slab classes) fill
 * several chunks, then all go back; a trim would unmap the chunks. */
static int chunks(void)
{
	enum { N = 240 };
	static void *runs[N];
	for (int i = 0; i < N; i++)
		memset(runs[i] = malloc(100 << 10), 1, 100 << 10);
	size_t before = chunks_now();
	for (int i = 0; i < N; i++)
		free(runs[i]);
	malloc_trim(0);
	printf("%zu %zu\n", before, chunks_now());
	return 0;
}

static int ready_pipe[2], release_pipe[2];

/* Holds its block in a frame of its own (volatile: not in a register
 * alone, which no scan of memory sees) while blocked in read(). */
NOINLINE void *held_by_thread(void *arg);
NOINLINE void *held_by_thread(void *arg)
{
	(void)arg;
	char *volatile held = malloc(4444);
	memset(held, 3, 4444);
	char c = 0;
	if (write(ready_pipe[1], &c, 1) != 1 || read(release_pipe[0], &c, 1) != 1)
		abort();
	free(held);
	return NULL;
}

static int thread_stack(void)
{
	pthread_t t;
	char c;
	if (pipe(ready_pipe) || pipe(release_pipe) ||
	    pthread_create(&t, NULL, held_by_thread, NULL) || read(ready_pipe[0], &c, 1) != 1)
		return 1;
	/* until the thread is in read(): its stack pointer is read from
	 * /proc/self/task while it is blocked */
	usleep(100 * 1000);
	report_leak_b();
	scrub_stack();
	long n = mk_leak_report(STDOUT_FILENO, MK_FORMAT_JSON);
	printf("\nlost=%ld\n", n);
	if (write(release_pipe[1], &c, 1) != 1 || pthread_join(t, NULL))
		return 1;
	return 0;
}

static _Atomic int spin_state; /* 1: the spinner holds its block; 2: stop */

/* Holds its block in a frame of its own while it runs, never blocking. */
NOINLINE void *held_by_spinner(void *arg);
NOINLINE void *held_by_spinner(void *arg)
{
	(void)arg;
	char *volatile held = malloc(5555);
	memset(held, 4, 5555);
	atomic_store(&spin_state, 1);
	while (atomic_load(&spin_state) != 2)
		;
	free(held);
	return NULL;
}

static int running_thread(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, held_by_spinner, NULL))
		return 1;
	while (atomic_load(&spin_state) != 1)
		;
	report_leak_b();
	scrub_stack();
	long n = mk_leak_report(STDOUT_FILENO, MK_FORMAT_JSON);
	printf("\nlost=%ld\n", n);
	atomic_store(&spin_state, 2);
	return pthread_join(t, NULL) ? 1 : 0;
}

static const struct mode {
	const char *name;
	int (*run)(void);
	bool needs_tracking;
} modes[] = {
    {"stats", stats, false},
    {"chunks", chunks, false},
    {"window", window, true},
    {"report", report, true},
    {"requested", requested, true},
    {"bss", bss, true},
    {"thread-stack", thread_stack, true},
    {"running-thread", running_thread, true},
};

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(name, modes[i].name))
			continue;
		if (modes[i].needs_tracking && !mk_leak_enabled()) {
			fprintf(stderr, "api: leak tracking is off (MEMKIT_LEAK=1 not seen)\n");
			return 1;
		}
		return modes[i].run();
	}
	fprintf(stderr, "usage: api MODE (");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(stderr, "%s%s", i ? "|" : "", modes[i].name);
	fprintf(stderr, ")\n");
	return 2;
}
