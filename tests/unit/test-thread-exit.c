/* test-thread-exit.c - threads that come and go leave no heap behind, through
 * the override (linked against libmemkit, so that glibc's own allocations,
 * a thread's TLS among them, are libmemkit's too).
 *
 * A detached thread's TLS was allocated by the thread that created it and is
 * freed by the detached thread itself, after its key destructors have run:
 * a heap made for that free would never be given up. And a thread that only
 * frees others' blocks (a consumer) gets a heap, which its exit gives up. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include "memkit.h"
#include "check.h"

enum { DETACHED = 400, CONSUMED = 1000, CONSUMERS = 8, EACH = CONSUMED / CONSUMERS };

static _Atomic int finished;
static void *consumed[CONSUMED];

static size_t live_heaps(void)
{
	struct mk_stats st;
	mk_stats_get(&st);
	return st.threads;
}

static void *touch_and_exit(void *arg)
{
	/* volatile: the compiler may not drop a malloc/free pair it sees */
	void *volatile p = (arg != NULL) ? malloc(100) : NULL;
	free(p);
	atomic_fetch_add(&finished, 1);
	return NULL;
}

/* a detached consumer: it gets a heap, gives it up at its exit, and its
 * TLS, freed after that, must not make it another */
static void *consume_some_and_exit(void *arg)
{
	void **mine = arg;
	for (int i = 0; i < EACH; i++)
		free(mine[i]);
	atomic_fetch_add(&finished, 1);
	return NULL;
}

/* returns the live heaps it sees, its own among them */
static void *consume(void *arg)
{
	(void)arg;
	for (int i = 0; i < CONSUMED; i++)
		free(consumed[i]);
	return (void *)live_heaps();
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/* The heaps of exited threads are given up a little after they signal
 * `finished`; a heap made too late stays live for good. */
static size_t live_heaps_settled(size_t want)
{
	size_t n = live_heaps();
	for (int i = 0; i < 500 && n > want; i++) {
		sleep_ms(10);
		n = live_heaps();
	}
	return n;
}

/* n detached threads started `fn` (each gets arg + i * step); waits until
 * all have said they finished */
static void run_detached(pthread_attr_t *attr, int n, void *(*fn)(void *), char *arg,
			 ptrdiff_t step)
{
	atomic_store(&finished, 0);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		CHECK(pthread_create(&t, attr, fn, arg ? arg + i * step : NULL) == 0);
	}
	while (atomic_load(&finished) < n)
		sleep_ms(1);
}

int main(void)
{
	void *volatile first = malloc(1); /* main's heap */
	free(first);
	size_t base = live_heaps();
	CHECK(base >= 1);

	pthread_attr_t attr;
	CHECK(pthread_attr_init(&attr) == 0);
	CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0);
	/* half of them allocate (and have a heap), half never do */
	run_detached(&attr, DETACHED / 2, touch_and_exit, NULL, 0);
	run_detached(&attr, DETACHED / 2, touch_and_exit, (char *)&attr, 0);
	CHECK(live_heaps_settled(base) == base);

	for (int i = 0; i < CONSUMED; i++)
		CHECK((consumed[i] = malloc(48)) != NULL);
	run_detached(&attr, CONSUMERS, consume_some_and_exit, (char *)consumed,
		     (ptrdiff_t)(EACH * sizeof(void *)));
	CHECK(live_heaps_settled(base) == base);

	for (int i = 0; i < CONSUMED; i++)
		CHECK((consumed[i] = malloc(48)) != NULL);
	pthread_t t;
	void *seen = NULL;
	CHECK(pthread_create(&t, NULL, consume, NULL) == 0);
	CHECK(pthread_join(t, &seen) == 0);
	CHECK((size_t)seen == base + 1); /* the consumer had a heap */
	CHECK(live_heaps_settled(base) == base);
	pthread_attr_destroy(&attr);
	return check_done("test-thread-exit");
}
