/* misuse.c - the bad-input suite: each misuse runs in a child process, and
 * the parent asserts how the child ended (signal or exit status) and what it
 * printed on stderr.
 *
 *   misuse EXPECT LIBRARY CASE
 *     EXPECT   memkit | secure | glibc: which expected outcomes apply
 *              (secure: libmemkit-secure.so, the memkit ones unless it differs)
 *     LIBRARY  the library to preload in the child, or "-" for none
 *     CASE     a case name, or "list"
 *
 * The same cases run against glibc (LIBRARY "-", EXPECT glibc) with glibc's
 * own messages as the expected outcome: that shows the harness sees what a
 * real allocator does. The child first checks, through the dynamic linker,
 * that malloc & co. really come from LIBRARY (ld.so ignores a preload it
 * cannot load), and exits with status 90 if not.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lifecycle/allocator_check.h"

/* This file commits uses after free on purpose. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#define CHILD_TIMEOUT_S 20
#define STATUS_PRELOAD	90 /* the child's allocator is not the one asked for */

/* Hide a pointer's origin from the compiler, so that it neither warns about
 * (-Wfree-nonheap-object) nor optimises away the misuse we mean to commit. */
static void *opaque(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

static size_t opaque_size(size_t n)
{
	__asm__ volatile("" : "+r"(n));
	return n;
}

static void say(const char *what, const void *p)
{
	fprintf(stderr, "case: %s %p\n", what, p);
}

/* Free p twice; the address travels as an integer so that the compiler
 * does not see (and reject) the use after free. */
static void free_twice(void *p)
{
	uintptr_t addr = (uintptr_t)p;

	free(p);
	say("second free of", (void *)addr);
	free(opaque((void *)addr));
}

/* A block with another live block after it, so that freeing it does not
 * merge it into glibc's top chunk (which would change glibc's diagnosis). */
static char *guarded_block(size_t size)
{
	char *p = malloc(opaque_size(size));
	void *guard = malloc(opaque_size(size));

	if (!p || !guard)
		abort();
	memset(p, 0, size);
	memset(guard, 0, size);
	return p;
}

/* ------------------------------------------------------------ the cases */

static int case_double_free_small(void)
{
	char *p = guarded_block(32);

	free_twice(p);
	return 0;
}

static pthread_barrier_t freed;

/* frees p, then stays alive (its cache with it) until the process ends */
static void *free_in_thread(void *p)
{
	free(p);
	pthread_barrier_wait(&freed);
	for (;;)
		pause();
	return NULL;
}

/* The first free comes from another thread, which stays alive, so the block
 * waits in that thread's cache (libmemkit's foreign list, glibc's tcache),
 * out of sight of the owner's lists; then the owner frees it again. glibc
 * looks for it in the freeing thread's own tcache only and misses it. */
static int case_double_free_threads(void)
{
	char *p = guarded_block(32);
	uintptr_t addr = (uintptr_t)p;
	pthread_t t;
	pthread_barrier_init(&freed, NULL, 2);
	if (pthread_create(&t, NULL, free_in_thread, p))
		return 1;
	pthread_barrier_wait(&freed);
	say("second free of", (void *)addr);
	free(opaque((void *)addr));
	fprintf(stderr, "double free not detected\n");
	return 0;
}

static int case_double_free_medium(void)
{
	char *p = guarded_block(4000);

	free_twice(p);
	return 0;
}

static int case_double_free_run(void)
{
	char *p = guarded_block(40000);

	free_twice(p);
	return 0;
}

static int case_double_free_large(void)
{
	char *p = guarded_block(1 << 20);

	free_twice(p);
	return 0;
}

static int case_free_stack(void)
{
	char buf[256];

	memset(buf, 0, sizeof(buf));
	say("free of stack", buf + 64);
	free(opaque(buf + 64));
	return (int)buf[0];
}

static int case_free_interior_small(void)
{
	char *p = guarded_block(256);

	say("free of interior", p + 64);
	free(opaque(p + 64));
	return 0;
}

static int case_free_interior_large(void)
{
	char *p = guarded_block(1 << 20);

	say("free of interior", p + 65536);
	free(opaque(p + 65536));
	return 0;
}

static pthread_barrier_t allocated;

/* allocates a 16-byte block for the main thread, then stays alive (its heap
 * with it, so that the block's slab has a live owner) */
static void *alloc_in_thread(void *out)
{
	*(void **)out = malloc(opaque_size(16));
	pthread_barrier_wait(&allocated);
	for (;;)
		pause();
	return NULL;
}

/* A pointer into pages of a chunk that no slab has used yet, freed by a
 * thread that has just freed another live thread's 16-byte block, which
 * makes the smallest class shared in its heap: a class-0 descriptor there
 * (a new chunk's zeroed descriptors) would send the pointer to the recent
 * list unchecked but for its offset. libmemkit's alone: glibc has no chunks. */
static int case_free_in_unused_pages(void)
{
	if (!dlsym(RTLD_DEFAULT, "mk_stats_get")) {
		fprintf(stderr, "not libmemkit: no chunk to free into\n");
		return 0;
	}
	void *other = NULL;
	pthread_t t;
	pthread_barrier_init(&allocated, NULL, 2);
	if (pthread_create(&t, NULL, alloc_in_thread, &other))
		return 1;
	pthread_barrier_wait(&allocated);
	free(other);
	char *chunk = (char *)((uintptr_t)other & ~(((uintptr_t)4 << 20) - 1));
	char *p = chunk + (3 << 20) + 4096 + 16;
	say("free in unused pages", p);
	free(opaque(p));
	fprintf(stderr, "free in unused pages not detected\n");
	return 0;
}

static int case_free_unaligned(void)
{
	char *p = guarded_block(256);

	say("free of unaligned", p + 1);
	free(opaque(p + 1));
	return 0;
}

static char *foreign_mapping(void)
{
	/* three pages: the middle one is passed, so a header read just before
	 * it lands in readable zeroes, not in an unmapped page */
	char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		abort();
	return m + 4096;
}

static int case_free_foreign(void)
{
	char *p = foreign_mapping();

	say("free of foreign mapping", p);
	free(opaque(p));
	return 0;
}

static int case_realloc_stack(void)
{
	char buf[256];

	memset(buf, 0, sizeof(buf));
	say("realloc of stack", buf + 64);
	void *q = realloc(opaque(buf + 64), 1000);
	return q != NULL && buf[0] == 0;
}

static int case_realloc_interior(void)
{
	char *p = guarded_block(256);

	say("realloc of interior", p + 64);
	void *q = realloc(opaque(p + 64), 1000);
	return q != NULL;
}

static int case_realloc_foreign(void)
{
	char *p = foreign_mapping();

	say("realloc of foreign mapping", p);
	void *q = realloc(opaque(p), 1000);
	return q != NULL;
}

/* A block resized in place (which libmemkit remembers, to answer the next
 * realloc of the same block at once), freed, then resized again. */
static int realloc_after_free(size_t size)
{
	char *p = guarded_block(size);
	p = realloc(opaque(p), opaque_size(size + 1));
	if (!p)
		abort();
	p = realloc(opaque(p), opaque_size(size + 2));
	if (!p)
		abort();
	uintptr_t addr = (uintptr_t)p;
	free(p);
	say("realloc after free of", (void *)addr);
	void *q = realloc(opaque((void *)addr), opaque_size(size + 3));
	fprintf(stderr, "realloc after free not detected (%s)\n", q ? "non-NULL" : "NULL");
	return 0;
}

static int case_realloc_freed_small(void)
{
	return realloc_after_free(100);
}

static int case_realloc_freed_large(void)
{
	return realloc_after_free(1 << 20);
}

static int case_usable_size_stack(void)
{
	char buf[256];

	memset(buf, 0, sizeof(buf));
	say("malloc_usable_size of stack", buf + 64);
	size_t n = malloc_usable_size(opaque(buf + 64));
	fprintf(stderr, "returned %zu\n", n);
	return 0;
}

static int case_usable_size_foreign(void)
{
	char *p = foreign_mapping();

	say("malloc_usable_size of foreign mapping", p);
	size_t n = malloc_usable_size(opaque(p));
	fprintf(stderr, "returned %zu\n", n);
	return 0;
}

static int case_free_null(void)
{
	free(opaque(NULL));
	fprintf(stderr, "free(NULL) returned\n");
	return 0;
}

/* realloc(p, 0) frees p (glibc's policy): a second free of p must then be
 * reported as a double free, which proves the first one happened. */
static int case_realloc_zero_frees(void)
{
	char *p = guarded_block(48);
	uintptr_t addr = (uintptr_t)p;
	void *q = realloc(opaque(p), opaque_size(0));

	fprintf(stderr, "realloc(p, 0) = %s\n", q ? "non-NULL" : "NULL");
	if (q)
		return 1;
	say("free after realloc(p, 0) of", (void *)addr);
	free(opaque((void *)addr));
	return 0;
}

static void report_pointer_result(const char *call, void *q, int err)
{
	fprintf(stderr, "%s = %s errno=%s\n", call, q ? "non-NULL" : "NULL",
		err == EINVAL	? "EINVAL"
		: err == ENOMEM ? "ENOMEM"
		: err == 0	? "0"
				: "other");
}

static int case_aligned_alloc_65(void)
{
	errno = 0;
	void *q = aligned_alloc(opaque_size(65), opaque_size(64));
	report_pointer_result("aligned_alloc(65, 64)", q, errno);
	return 0;
}

static int case_memalign_48(void)
{
	errno = 0;
	void *q = memalign(opaque_size(48), opaque_size(100));
	report_pointer_result("memalign(48, 100)", q, errno);
	return 0;
}

static int case_malloc_zero(void)
{
	void *a = malloc(opaque_size(0));
	void *b = malloc(opaque_size(0));

	fprintf(stderr, "malloc(0): %s, %s\n", a && b ? "non-NULL" : "NULL",
		a != b ? "unique" : "same");
	free(a);
	free(b);
	return 0;
}

/* One byte written past the size asked for (still inside the slot): only
 * the secure build's canary can see it, when the block is freed. */
static int case_overflow_1_byte(void)
{
	char *p = guarded_block(100);
	char *q = opaque(p);

	q[100] = 'X';
	say("free after a 1-byte overflow of", p);
	free(p);
	fprintf(stderr, "overflow not detected\n");
	return 0;
}

/* ------------------------------------------------------------ the table */

struct outcome {
	int signal; /* 0: a normal exit with status 0 */
	const char *regex;
};

struct misuse_case {
	const char *name;
	int (*run)(void);
	struct outcome memkit, glibc;
};

#define MK_ABORT(re)                                          \
	{                                                     \
		SIGABRT, "^memkit: " re " 0x[0-9a-f]+( .*)?$" \
	}
#define GLIBC_ABORT(re)             \
	{                           \
		SIGABRT, "^" re "$" \
	}
#define EXITS(re)     \
	{             \
		0, re \
	}

/* glibc (2.36) outcomes were observed on Debian 12; where glibc does not
 * detect the misuse the row says so (SIGSEGV, or a normal exit). */
static const struct misuse_case cases[] = {
    {"double-free-small", case_double_free_small, MK_ABORT("double free of"),
     GLIBC_ABORT("free\\(\\): double free detected in tcache 2")},
    {"double-free-threads", case_double_free_threads, MK_ABORT("double free of"),
     EXITS("^double free not detected$")},
    {"double-free-medium", case_double_free_medium, MK_ABORT("double free of"),
     GLIBC_ABORT("double free or corruption \\(!prev\\)")},
    {"double-free-run", case_double_free_run, MK_ABORT("double free of"),
     GLIBC_ABORT("double free or corruption \\(!prev\\)")},
    {"double-free-large",
     case_double_free_large,
     MK_ABORT("double free of"),
     {SIGSEGV, "^case: second free of 0x[0-9a-f]+$"}},
    {"free-stack", case_free_stack, MK_ABORT("free of invalid pointer"),
     GLIBC_ABORT("free\\(\\): invalid pointer")},
    {"free-interior-small", case_free_interior_small, MK_ABORT("free of interior pointer"),
     GLIBC_ABORT("free\\(\\): invalid pointer")},
    {"free-interior-large", case_free_interior_large, MK_ABORT("free of interior pointer"),
     GLIBC_ABORT("free\\(\\): invalid pointer")},
    {"free-in-unused-pages", case_free_in_unused_pages, MK_ABORT("free of invalid pointer"),
     EXITS("^not libmemkit: no chunk to free into$")},
    {"free-unaligned", case_free_unaligned, MK_ABORT("free of invalid pointer"),
     GLIBC_ABORT("free\\(\\): invalid pointer")},
    {"free-foreign", case_free_foreign, MK_ABORT("free of invalid pointer"),
     GLIBC_ABORT("free\\(\\): invalid pointer")},
    {"realloc-stack", case_realloc_stack, MK_ABORT("realloc of invalid pointer"),
     GLIBC_ABORT("realloc\\(\\): invalid pointer")},
    {"realloc-interior", case_realloc_interior, MK_ABORT("realloc of interior pointer"),
     GLIBC_ABORT("realloc\\(\\): invalid pointer")},
    {"realloc-foreign", case_realloc_foreign, MK_ABORT("realloc of invalid pointer"),
     GLIBC_ABORT("realloc\\(\\): invalid pointer")},
    {"realloc-freed-small", case_realloc_freed_small, MK_ABORT("realloc of freed pointer"),
     EXITS("^realloc after free not detected \\(non-NULL\\)$")},
    {"realloc-freed-large",
     case_realloc_freed_large,
     MK_ABORT("realloc of freed pointer"),
     {SIGSEGV, "^case: realloc after free of 0x[0-9a-f]+$"}},
    {"usable-size-stack", case_usable_size_stack, MK_ABORT("malloc_usable_size of invalid pointer"),
     EXITS("^returned [0-9]+$")},
    {"usable-size-foreign", case_usable_size_foreign,
     MK_ABORT("malloc_usable_size of invalid pointer"), EXITS("^returned [0-9]+$")},
    {"free-null", case_free_null, EXITS("^free\\(NULL\\) returned$"),
     EXITS("^free\\(NULL\\) returned$")},
    {"realloc-zero-frees", case_realloc_zero_frees, MK_ABORT("double free of"),
     GLIBC_ABORT("free\\(\\): double free detected in tcache 2")},
    {"aligned-alloc-65", case_aligned_alloc_65,
     EXITS("^aligned_alloc\\(65, 64\\) = NULL errno=EINVAL$"),
     EXITS("^aligned_alloc\\(65, 64\\) = non-NULL errno=0$")},
    {"memalign-48", case_memalign_48, EXITS("^memalign\\(48, 100\\) = NULL errno=EINVAL$"),
     EXITS("^memalign\\(48, 100\\) = non-NULL errno=0$")},
    {"malloc-zero", case_malloc_zero, EXITS("^malloc\\(0\\): non-NULL, unique$"),
     EXITS("^malloc\\(0\\): non-NULL, unique$")},
    {"overflow-1-byte", case_overflow_1_byte, EXITS("^overflow not detected$"),
     EXITS("^overflow not detected$")},
};

/* Where libmemkit-secure.so must do otherwise than the default build. */
static const struct {
	const char *name;
	struct outcome secure;
} secure_rows[] = {
    {"overflow-1-byte", {SIGABRT, "^memkit: heap overflow: .*0x[0-9a-f]+"}},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const struct misuse_case *find_case(const char *name)
{
	for (size_t i = 0; i < NCASES; i++)
		if (!strcmp(cases[i].name, name))
			return &cases[i];
	return NULL;
}

/* ------------------------------------------------------------ child side */

static int child_main(const char *want, const char *name)
{
	const struct misuse_case *c = find_case(name);
	struct rlimit no_core = {0, 0};

	setrlimit(RLIMIT_CORE, &no_core);
	if (!c)
		return 2;
	if (mkt_check_allocator(want))
		return STATUS_PRELOAD;
	return c->run();
}

/* ------------------------------------------------------------ parent side */

static char *read_all(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while (buf && (n = read(fd, buf + len, cap - len - 1)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (cap - len < 2) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

static int matches(const char *text, const char *re)
{
	regex_t rx;
	int rc;

	if (regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB)) {
		fprintf(stderr, "bad regex in the table: %s\n", re);
		return 0;
	}
	rc = regexec(&rx, text, 0, NULL, 0);
	regfree(&rx);
	return rc == 0;
}

static pid_t spawn(const char *self, const char *lib, const char *want, const char *name,
		   int *err_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid != 0) {
		close(fds[1]);
		*err_fd = fds[0];
		return pid;
	}
	dup2(fds[1], 2);
	close(fds[0]);
	close(fds[1]);
	/* glibc's own checking options would change its messages */
	unsetenv("MALLOC_CHECK_");
	unsetenv("MALLOC_PERTURB_");
	unsetenv("GLIBC_TUNABLES");
	if (strcmp(lib, "-"))
		setenv("LD_PRELOAD", lib, 1);
	else
		unsetenv("LD_PRELOAD");
	execl(self, self, "--child", want, name, (char *)NULL);
	_exit(127);
}

static void describe(int status, char *buf, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "exit status %d", WEXITSTATUS(status));
}

static int run_case(const char *self, const char *expect, const char *lib,
		    const struct misuse_case *c)
{
	const struct outcome *want = strcmp(expect, "glibc") ? &c->memkit : &c->glibc;
	const char *check_lib = strcmp(lib, "-") ? lib : "glibc";
	char how[128];
	int err_fd, status, ok;
	pid_t pid = spawn(self, lib, check_lib, c->name, &err_fd);

	for (size_t i = 0;
	     !strcmp(expect, "secure") && i < sizeof(secure_rows) / sizeof(secure_rows[0]); i++)
		if (!strcmp(secure_rows[i].name, c->name))
			want = &secure_rows[i].secure;
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	alarm(CHILD_TIMEOUT_S); /* a hung child kills us too: CTest reports it */
	char *text = read_all(err_fd);
	close(err_fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	alarm(0);
	describe(status, how, sizeof(how));
	if (WIFEXITED(status) && WEXITSTATUS(status) == STATUS_PRELOAD) {
		printf("FAIL %s: the child does not run on %s\n%s", c->name, check_lib,
		       text ? text : "");
		return 1;
	}
	ok = want->signal ? WIFSIGNALED(status) && WTERMSIG(status) == want->signal
			  : WIFEXITED(status) && WEXITSTATUS(status) == 0;
	ok = ok && text && matches(text, want->regex);
	printf("%s %s [%s]: %s; expected %s%s%s and /%s/\n--- child stderr "
	       "---\n%s--------------------\n",
	       ok ? "PASS" : "FAIL", c->name, expect, how,
	       want->signal ? "signal " : "a normal exit",
	       want->signal ? strsignal(want->signal) : "", "", want->regex,
	       text ? text : "(unreadable)");
	free(text);
	return !ok;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return child_main(argv[2], argv[3]);
	if (argc == 4 && (!strcmp(argv[1], "memkit") || !strcmp(argv[1], "glibc") ||
			  !strcmp(argv[1], "secure"))) {
		int failed = 0;
		if (!strcmp(argv[3], "list")) {
			for (size_t i = 0; i < NCASES; i++)
				printf("%s\n", cases[i].name);
			return 0;
		}
		if (!strcmp(argv[3], "all")) {
			for (size_t i = 0; i < NCASES; i++)
				failed += run_case("/proc/self/exe", argv[1], argv[2], &cases[i]);
			printf("%d of %zu cases failed\n", failed, NCASES);
			return failed != 0;
		}
		const struct misuse_case *c = find_case(argv[3]);
		if (c)
			return run_case("/proc/self/exe", argv[1], argv[2], c);
	}
	fprintf(stderr, "usage: %s memkit|secure|glibc LIBRARY|- CASE|all|list\n", argv[0]);
	return 2;
}
