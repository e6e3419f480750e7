/* planted.c - a program with leaks planted at known call sites, for the
 * leak tests (check.py): each leak_* function loses what it allocates, with
 * byte and block counts that check.py expects exactly; keep_* blocks stay
 * reachable from globals; everything else is freed. Built with
 * -fomit-frame-pointer: the stack capture must not need frame pointers.
 *
 *   planted leaks      plant the leaks, exit 0
 *   planted clean      allocate and free the same way, leak nothing
 *   planted exit N     exit with status N
 *   planted kill SIG   kill itself with signal SIG
 *   planted echo       copy stdin to stdout
 *   planted signal-window  open and close a leak window with SIGUSR2
 *   planted recursive  loses 1000 + d bytes at the bottom of a recursion
 *                      d deep, for d = 1..12 (stacks taken by the fast walk)
 *   planted tree       builds a binary tree of depth 10 node by node, every
 *                      node lost: 16 + path bytes, the path (1, then a bit
 *                      a level: 0 left, 1 right) being the calls to go_left
 *                      and go_right in its stack (siblings at one depth,
 *                      stacks of up to 26 frames: the walks' reuse of the
 *                      last walk, truncated or not)
 *   planted forest     the tree, built by 4 threads at once: each site 4
 *                      blocks (threads meet the same new stacks together)
 *   planted fork       the child loses 111 bytes and exits; the parent waits
 *                      for it, then _exits (no report of its own)
 *   planted threads    8 threads allocate and free at once; each loses 100
 *                      blocks of 100 + i bytes (thread i) from one call site
 *   planted outer      a loop in alloc_here, reached through level1 and
 *                      level2 from outer_a (2 blocks of 40 bytes a round)
 *                      or outer_b (3 of 56), alternately for 3 rounds: the
 *                      same innermost frames at the same addresses, the
 *                      caller three frames out different (the tracker's
 *                      loop fast path must see it)
 *   planted structures loses whole structures, for "indirectly lost": a
 *                      list of 10 nodes (48 bytes each, one call site), a
 *                      ring of 3 (32 bytes each), a 24-byte owner of a
 *                      500-byte payload allocated at another site; keeps
 *                      keep_some's blocks reachable
 *
 * May call libc and pthreads only.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#define NOINLINE __attribute__((noinline))

/* stores through a volatile pointer: the compiler may not drop the blocks */
static void *volatile sink;
/* reachable from a global: "still reachable", never "definitely lost" */
static void *volatile keep_single;
struct node {
	struct node *next;
	char pad[56];
};
static struct node *keep_list;

static NOINLINE void touch(void *p, size_t n)
{
	memset(p, 0x5a, n);
	sink = p;
	sink = NULL;
}

/* 3 blocks of 100 bytes from one call site */
static NOINLINE void leak_malloc_loop(void)
{
	for (int i = 0; i < 3; i++)
		touch(malloc(100), 100);
}

/* 480 bytes, zeroed */
static NOINLINE void leak_calloc(void)
{
	char *p = calloc(10, 48);
	sink = p;
	sink = NULL;
}

/* 28 bytes: 27 characters and the terminating zero */
static NOINLINE void leak_strdup(void)
{
	char *s = strdup("a string that leaks: 27 ch.");
	sink = s;
	sink = NULL;
}

/* 300000 bytes: above the mmap threshold (128 KiB), a mapping of its own */
static NOINLINE void leak_large(void)
{
	touch(malloc(300000), 4096);
}

/* 2000 bytes, allocated by another thread */
static NOINLINE void leak_in_thread(void)
{
	touch(malloc(2000), 2000);
}

/* aligned allocations, 8492 bytes in 3 blocks: posix_memalign and
 * memalign reach the allocator through a call inside libmemkit, not a
 * jump, so the tracker finds the program's frame by walking out of ours */
static NOINLINE void leak_aligned(void)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, 200) == 0)
		touch(p, 200);
	touch(aligned_alloc(4096, 8192), 8192);
	touch(memalign(32, 100), 100);
}

/* realloc'd twice: only the final 5000-byte block is live, and lost */
static NOINLINE void leak_realloc(void)
{
	char *p = malloc(10);
	p = realloc(p, 1000);
	p = realloc(p, 5000);
	touch(p, 5000);
}

/* grown in place by realloc (the second and third calls take libmemkit's
 * fast path for the block it last resized): 5100 bytes lost, recorded at
 * the realloc */
static NOINLINE void leak_grown_in_place(void)
{
	char *p = malloc(5000);
	p = realloc(p, 5050);
	p = realloc(p, 5080);
	p = realloc(p, 5100);
	touch(p, 5100);
}

/* the same for a large block, grown within its mapping */
static NOINLINE void leak_large_grown_in_place(void)
{
	char *p = malloc(200000);
	p = realloc(p, 200100);
	p = realloc(p, 200150);
	p = realloc(p, 200200);
	touch(p, 4096);
}

/* Overwrite the dead frames below the caller, where copies of the lost
 * pointers may linger (a conservative scan would find them). */
static NOINLINE void scrub_stack(void)
{
	volatile char buf[32768];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0;
}

static void *thread_main(void *arg)
{
	(void)arg;
	leak_in_thread();
	scrub_stack();
	return NULL;
}

static NOINLINE void keep_some(void)
{
	keep_single = malloc(777);
	for (int i = 0; i < 4; i++) {
		struct node *n = malloc(sizeof(*n));
		n->next = keep_list;
		keep_list = n;
	}
}

/* the same sizes and calls, every block freed */
static NOINLINE void clean_run(void)
{
	void *p[6] = {malloc(100), calloc(10, 48), strdup("x"), malloc(300000), NULL, NULL};
	p[4] = realloc(malloc(10), 5000);
	for (int i = 0; i < 6; i++)
		free(p[i]);
}

static int plant_leaks(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, thread_main, NULL) || pthread_join(t, NULL))
		return 1;
	leak_malloc_loop();
	leak_calloc();
	leak_strdup();
	leak_large();
	leak_realloc();
	leak_aligned();
	leak_grown_in_place();
	leak_large_grown_in_place();
	keep_some();
	clean_run();
	scrub_stack();
	return 0;
}

/* free through the volatile sink: gcc drops a plain free(malloc(n)) */
static void free_now(void *p)
{
	sink = p;
	free(sink);
}

static NOINLINE void window_leak(void)
{
	touch(malloc(4321), 4321);
}

/* SIGUSR2 opens the window; the second asks for a report, which the next
 * allocation writes on stderr */
static int signal_window(void)
{
	void *before = malloc(1234);
	touch(before, 16);
	raise(SIGUSR2);
	window_leak();
	free_now(malloc(64)); /* allocated and freed in the window: not reported */
	raise(SIGUSR2);
	scrub_stack();
	free_now(malloc(32)); /* the allocation that writes the report */
	free(before);
	return 0;
}

#define STRESS_THREADS 8
#define STRESS_ROUNDS  20000

static void *stress_thread(void *arg)
{
	size_t size = 100 + (size_t)(uintptr_t)arg;
	for (int i = 0; i < STRESS_ROUNDS; i++) {
		char *p = malloc(size); /* every 200th is lost: 100 per thread */
		p[0] = 1;
		if (i % 200 != 0)
			free(p);
		char *q = realloc(strdup("grow"), 64 + (size_t)(i % 512));
		free(q);
	}
	scrub_stack();
	return NULL;
}

static int threads(void)
{
	pthread_t t[STRESS_THREADS];
	for (uintptr_t i = 0; i < STRESS_THREADS; i++)
		if (pthread_create(&t[i], NULL, stress_thread, (void *)i))
			return 1;
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	scrub_stack();
	return 0;
}

/* d calls deep, then lose 1000 + d bytes; not a tail call */
static NOINLINE void recurse_leak(int d, int depth)
{
	if (d == 0) {
		touch(malloc(1000 + (size_t)depth), 8);
		return;
	}
	recurse_leak(d - 1, depth);
	sink = NULL;
}

static int recursive(void)
{
	for (int d = 1; d <= 12; d++)
		recurse_leak(d, d);
	scrub_stack();
	return 0;
}

static NOINLINE void tree_node(int depth, unsigned path);

/* not tail calls: each stays a frame of the stack */
static NOINLINE void go_left(int depth, unsigned path)
{
	tree_node(depth, path * 2);
	sink = NULL;
}

static NOINLINE void go_right(int depth, unsigned path)
{
	tree_node(depth, path * 2 + 1);
	sink = NULL;
}

static NOINLINE void tree_node(int depth, unsigned path)
{
	touch(malloc(16 + path), 8);
	if (depth > 0) {
		go_left(depth - 1, path);
		go_right(depth - 1, path);
	}
	sink = NULL;
}

static int tree(void)
{
	tree_node(10, 1);
	scrub_stack();
	return 0;
}

/* not tail calls, and outer_a and outer_b differ (a store each) so that the
 * compiler does not fold them into one function */
static NOINLINE void alloc_here(size_t n, int k)
{
	for (int i = 0; i < k; i++)
		touch(malloc(n), 8);
	sink = NULL;
}

static NOINLINE void level2(size_t n, int k)
{
	alloc_here(n, k);
	sink = NULL;
}

static NOINLINE void level1(size_t n, int k)
{
	level2(n, k);
	sink = NULL;
}

static NOINLINE void outer_a(size_t n, int k)
{
	level1(n, k);
	sink = (void *)1;
}

static NOINLINE void outer_b(size_t n, int k)
{
	level1(n, k);
	sink = (void *)2;
}

static int outer(void)
{
	for (int round = 0; round < 3; round++) {
		outer_a(40, 2);
		outer_b(56, 3);
	}
	sink = NULL;
	scrub_stack();
	return 0;
}

#define FOREST_THREADS 4
static pthread_barrier_t forest_start;

static void *forest_thread(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&forest_start);
	tree_node(10, 1);
	scrub_stack();
	return NULL;
}

static int forest(void)
{
	pthread_t t[FOREST_THREADS];
	pthread_barrier_init(&forest_start, NULL, FOREST_THREADS);
	for (int i = 0; i < FOREST_THREADS; i++)
		if (pthread_create(&t[i], NULL, forest_thread, NULL))
			return 1;
	for (int i = 0; i < FOREST_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&forest_start);
	return 0;
}

static NOINLINE void leak_in_child(void)
{
	touch(malloc(111), 111);
}

/* Only the process memkit run started writes a report. Here that process
 * ends with _exit (no report); if its child wrote one, memkit run finds it. */
static int fork_leak(void)
{
	int status;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		leak_in_child();
		scrub_stack();
		exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	_exit(0);
}

/* Lost structures: only the first block of each is pointed to by no other
 * lost block (valgrind: "definitely lost"); the rest are reachable from it
 * alone ("indirectly lost"). Every byte is written: no stale pointer in
 * them may link one structure to another. */
#define LIST_NODES 10
#define RING_NODES 3

struct list_node {
	struct list_node *next;
	char pad[40]; /* 48 bytes */
};

struct ring_node {
	struct ring_node *next;
	char pad[24]; /* 32 bytes */
};

struct owner {
	char *payload;
	char pad[16]; /* 24 bytes */
};

/* 10 nodes from one call site: 1 block definitely, 9 indirectly lost */
static NOINLINE void leak_list(void)
{
	struct list_node *head = NULL;
	for (int i = 0; i < LIST_NODES; i++) {
		struct list_node *n = malloc(sizeof(*n));
		memset(n, 0, sizeof(*n));
		n->next = head;
		head = n;
	}
	sink = head;
	sink = NULL;
}

/* a cycle nothing else points to: valgrind calls the block it scans first
 * definitely lost, the 2 others indirectly */
static NOINLINE void leak_ring(void)
{
	struct ring_node *n[RING_NODES];
	for (int i = 0; i < RING_NODES; i++) {
		n[i] = malloc(sizeof(*n[i]));
		memset(n[i], 0, sizeof(*n[i]));
	}
	for (int i = 0; i < RING_NODES; i++)
		n[i]->next = n[(i + 1) % RING_NODES];
	sink = n[0];
	sink = NULL;
}

/* 500 bytes, indirectly lost through its owner */
static NOINLINE char *leak_payload(void)
{
	char *p = malloc(500);
	memset(p, 0x5a, 500);
	return p;
}

/* 24 bytes definitely lost, at a site of its own */
static NOINLINE void leak_owner(void)
{
	struct owner *o = malloc(sizeof(*o));
	memset(o, 0, sizeof(*o));
	o->payload = leak_payload();
	sink = o;
	sink = NULL;
}

static int lose_structures(void)
{
	leak_list();
	leak_ring();
	leak_owner();
	keep_some();
	scrub_stack();
	return 0;
}

static int echo(void)
{
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if (fwrite(buf, 1, n, stdout) != n)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "leaks";
	if (!strcmp(mode, "leaks"))
		return plant_leaks();
	if (!strcmp(mode, "clean")) {
		clean_run();
		return 0;
	}
	if (!strcmp(mode, "exit") && argc > 2)
		return atoi(argv[2]);
	if (!strcmp(mode, "kill") && argc > 2)
		return raise(atoi(argv[2])) ? 1 : 0;
	if (!strcmp(mode, "echo"))
		return echo();
	if (!strcmp(mode, "signal-window"))
		return signal_window();
	if (!strcmp(mode, "threads"))
		return threads();
	if (!strcmp(mode, "recursive"))
		return recursive();
	if (!strcmp(mode, "tree"))
		return tree();
	if (!strcmp(mode, "forest"))
		return forest();
	if (!strcmp(mode, "fork"))
		return fork_leak();
	if (!strcmp(mode, "structures"))
		return lose_structures();
	if (!strcmp(mode, "outer"))
		return outer();
	fprintf(stderr, "usage: planted leaks|clean|exit N|kill SIG|echo|signal-window|"
			"threads|recursive|tree|forest|fork|structures|outer\n");
	return 2;
}
