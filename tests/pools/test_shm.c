/* test_shm.c - the shared-memory heap: one process (objects, roots, growth
 * to the maximum, bad frees), foreign and other-version files refused and
 * left unchanged, several forked processes exchanging and freeing each
 * other's objects while one of them is SIGKILLed, deterministic kills inside
 * the buddy system and slabs (MEMKIT_SHM_CRASH_AT) repaired by the next
 * process, reopening after everyone exited, memfd and POSIX shm backing.
 *
 * Usage: test_shm [DIR]   (files are made in DIR, default /tmp)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "memkit/pool.h"
#include "check.h"

static char dir[256] = "/tmp";

static void heap_path(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s/pools-shm-%d-%s.heap", dir, (int)getpid(), what);
}

/* ------------------------------------------------------------ objects
 * Every test object starts with this header; the rest of it is a byte
 * pattern computed from the header, so any process can verify any object. */
struct obj {
	uint32_t magic;
	uint32_t size;
	uint32_t owner;
	uint32_t seq;
};
#define OBJ_MAGIC 0x0b1ec7u

static unsigned char pattern(const struct obj *o, size_t i)
{
	return (unsigned char)(o->owner * 31u + o->seq * 7u + i);
}

static void obj_fill(struct obj *o, uint32_t size, uint32_t owner, uint32_t seq)
{
	o->size = size;
	o->owner = owner;
	o->seq = seq;
	unsigned char *b = (unsigned char *)o;
	for (size_t i = sizeof(*o); i < size; i++)
		b[i] = pattern(o, i);
	o->magic = OBJ_MAGIC;
}

static bool obj_valid(const struct obj *o)
{
	const unsigned char *b = (const unsigned char *)o;
	if (o->magic != OBJ_MAGIC || o->size < sizeof(*o))
		return false;
	for (size_t i = sizeof(*o); i < o->size; i++)
		if (b[i] != pattern(o, i))
			return false;
	return true;
}

static mk_shm_off_t obj_new(mk_shm_t *h, uint32_t size, uint32_t owner, uint32_t seq)
{
	mk_shm_off_t off = mk_shm_alloc(h, size);
	if (off)
		obj_fill(mk_shm_ptr(h, off), size, owner, seq);
	return off;
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)*s;
}

/* sizes from slabs (most) and from whole pages (some) */
static uint32_t rnd_size(uint64_t *s)
{
	uint32_t r = rnd(s);
	return r % 8 == 0 ? 2049 + r % 20000 : 16 + r % 2000;
}

/* ------------------------------------------------------------ one process */

static void test_single(void)
{
	char path[300];
	heap_path(path, sizeof(path), "single");
	unlink(path);
	errno = 0;
	CHECK(mk_shm_open(path, 1 << 20, 0) == NULL && errno == ENOENT);
	CHECK(mk_shm_open(path, 1000, MK_SHM_CREATE) == NULL && errno == EINVAL);
	CHECK(access(path, F_OK) != 0); /* a refused creation leaves no file */

	mk_shm_t *h = mk_shm_open(path, 4 << 20, MK_SHM_CREATE | MK_SHM_EXCL);
	CHECK(h != NULL);
	if (!h)
		return;
	CHECK(mk_shm_open(path, 4 << 20, MK_SHM_CREATE | MK_SHM_EXCL) == NULL && errno == EEXIST);
	enum { N = 3000 };
	static mk_shm_off_t off[N];
	uint64_t seed = 42;
	for (int i = 0; i < N; i++) {
		off[i] = obj_new(h, 16 + rnd_size(&seed) / 8, 1, (uint32_t)i);
		CHECK(off[i] != 0);
		CHECK(off[i] % 16 == 0);
	}
	CHECK(mk_shm_check(h) == 0);
	for (int i = 0; i < N; i += 2)
		CHECK(mk_shm_free(h, off[i]) == 0);
	int bad = 0;
	for (int i = 1; i < N; i += 2)
		bad += !obj_valid(mk_shm_ptr(h, off[i]));
	CHECK(bad == 0);
	CHECK(mk_shm_check(h) == 0);

	/* bad frees change nothing */
	CHECK(mk_shm_free(h, off[0]) == EINVAL); /* double */
	CHECK(mk_shm_free(h, off[1] + 16) == EINVAL || mk_shm_free(h, off[1] + 8) == EINVAL);
	CHECK(mk_shm_free(h, 8) == EINVAL);
	CHECK(mk_shm_free(h, (mk_shm_off_t)1 << 40) == EINVAL);
	CHECK(strstr(mk_shm_error(), "not") != NULL);
	CHECK(mk_shm_check(h) == 0);

	/* offsets and pointers */
	CHECK(mk_shm_ptr(h, 0) == NULL);
	CHECK(mk_shm_off(h, mk_shm_ptr(h, off[1])) == off[1]);
	CHECK(mk_shm_off(h, &bad) == 0);

	/* roots */
	CHECK(mk_shm_root_set(h, "answer", off[1]) == 0);
	CHECK(mk_shm_root_get(h, "answer") == off[1]);
	CHECK(mk_shm_root_get(h, "missing") == 0);
	CHECK(mk_shm_root_set(h, "", off[1]) == EINVAL);
	char name[64];
	int filled = 1;
	for (int i = 0; i < MK_SHM_ROOTS + 1; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		filled += mk_shm_root_set(h, name, off[3]) == 0;
	}
	CHECK(filled == MK_SHM_ROOTS);
	CHECK(mk_shm_root_set(h, "one-too-many", off[3]) == ENOSPC);
	CHECK(mk_shm_root_set(h, "r0", 0) == 0 && mk_shm_root_get(h, "r0") == 0);
	CHECK(mk_shm_check(h) == 0);

	/* growth up to the maximum, then ENOMEM; everything still valid */
	struct mk_shm_stats st;
	mk_shm_stats(h, &st);
	size_t first_size = st.size;
	int got = 0;
	for (;;) {
		mk_shm_off_t o = obj_new(h, 64 << 10, 2, (uint32_t)got);
		if (!o)
			break;
		got++;
	}
	CHECK(errno == ENOMEM);
	mk_shm_stats(h, &st);
	CHECK(st.size > first_size);
	CHECK(st.size <= st.max_size && st.max_size <= (4 << 20));
	struct stat fst;
	CHECK(stat(path, &fst) == 0 && (size_t)fst.st_size == st.size);
	CHECK(got > 30);
	CHECK(mk_shm_check(h) == 0);
	mk_shm_close(h);

	/* reopen: same objects, same roots */
	h = mk_shm_open(path, 0, 0);
	CHECK(h != NULL);
	if (h) {
		bad = 0;
		for (int i = 1; i < N; i += 2)
			bad += !obj_valid(mk_shm_ptr(h, off[i]));
		CHECK(bad == 0);
		CHECK(mk_shm_root_get(h, "answer") == off[1]);
		CHECK(mk_shm_check(h) == 0);
		mk_shm_close(h);
	}
	unlink(path);
}

/* ------------------------------------------------------------ refusals */

static bool file_equals(const char *path, const unsigned char *bytes, size_t len)
{
	static unsigned char now[1 << 16];
	int fd = open(path, O_RDONLY);
	ssize_t n = read(fd, now, sizeof(now));
	close(fd);
	return n == (ssize_t)len && memcmp(now, bytes, len) == 0;
}

static void write_file(const char *path, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, bytes, len) == (ssize_t)len);
	close(fd);
}

static void test_refuse_foreign(void)
{
	char path[300];
	static unsigned char junk[40000];
	uint64_t seed = 7;
	heap_path(path, sizeof(path), "foreign");
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rnd(&seed);
	write_file(path, junk, sizeof(junk));
	errno = 0;
	CHECK(mk_shm_open(path, 1 << 20, MK_SHM_CREATE) == NULL);
	CHECK(errno == EMEDIUMTYPE);
	CHECK(strstr(mk_shm_error(), "not a memkit shared heap") != NULL);
	printf("foreign file refused: %s\n", mk_shm_error());
	CHECK(file_equals(path, junk, sizeof(junk)));

	/* a short file, and an empty one without MK_SHM_CREATE */
	write_file(path, "hello\n", 6);
	CHECK(mk_shm_open(path, 1 << 20, MK_SHM_CREATE) == NULL && errno == EMEDIUMTYPE);
	CHECK(file_equals(path, (const unsigned char *)"hello\n", 6));
	write_file(path, "", 0);
	CHECK(mk_shm_open(path, 1 << 20, 0) == NULL && errno == EMEDIUMTYPE);

	/* a real heap whose version field says 2 */
	unlink(path);
	mk_shm_t *h = mk_shm_open(path, 1 << 20, MK_SHM_CREATE);
	CHECK(h != NULL);
	mk_shm_close(h);
	int fd = open(path, O_RDWR);
	uint32_t v = 2;
	CHECK(pwrite(fd, &v, sizeof(v), 8) == sizeof(v)); /* right after the 8-byte magic */
	close(fd);
	static unsigned char before[1 << 16];
	fd = open(path, O_RDONLY);
	ssize_t n = read(fd, before, sizeof(before));
	close(fd);
	CHECK(n > 0);
	errno = 0;
	CHECK(mk_shm_open(path, 0, 0) == NULL && errno == EPROTONOSUPPORT);
	printf("other version refused: %s\n", mk_shm_error());
	CHECK(file_equals(path, before, (size_t)n));
	unlink(path);
}

/* ------------------------------------------------------------ processes */

#define MAILBOX_SLOTS 1024 /* enough live objects that the file must grow meanwhile */
struct mailbox {
	_Atomic uint64_t slot[MAILBOX_SLOTS];
	_Atomic uint32_t go, stop;
	_Atomic uint64_t verified; /* objects of other processes checked and freed */
};

/* Allocate, fill, swap into a random mailbox slot; the object that comes out
 * (usually another process's) is verified and freed. Exit status: errors. */
static int worker(const char *path, uint32_t id, long iterations)
{
	mk_shm_t *h = mk_shm_open(path, 0, 0); /* its own mapping, at its own address */
	if (!h)
		return 100;
	struct mailbox *mb = mk_shm_ptr(h, mk_shm_root_get(h, "mailbox"));
	uint64_t seed = 0x9e3779b97f4a7c15ull * (id + 1);
	int errors = 0;
	while (!atomic_load(&mb->go))
		;
	for (long i = 0; !atomic_load(&mb->stop) && (iterations < 0 || i < iterations); i++) {
		mk_shm_off_t off = obj_new(h, rnd_size(&seed), id, (uint32_t)i);
		if (!off) {
			errors++;
			continue;
		}
		mk_shm_off_t old = atomic_exchange(&mb->slot[rnd(&seed) % MAILBOX_SLOTS], off);
		if (!old)
			continue;
		const struct obj *o = mk_shm_ptr(h, old);
		errors += !obj_valid(o);
		if (o->owner != id)
			atomic_fetch_add(&mb->verified, 1);
		errors += mk_shm_free(h, old) != 0;
	}
	mk_shm_close(h);
	return errors > 99 ? 99 : errors;
}

static pid_t spawn_worker(const char *path, uint32_t id, long iterations)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(worker(path, id, iterations));
	return pid;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_processes(void)
{
	enum { WORKERS = 4, VICTIMS = 10 };
	char path[300];
	heap_path(path, sizeof(path), "procs");
	unlink(path);
	mk_shm_t *h = mk_shm_open(path, 64 << 20, MK_SHM_CREATE);
	CHECK(h != NULL);
	if (!h)
		return;
	struct mk_shm_stats st0;
	mk_shm_stats(h, &st0);
	size_t start_size = st0.size;
	mk_shm_off_t mbo = mk_shm_alloc(h, sizeof(struct mailbox));
	struct mailbox *mb = mk_shm_ptr(h, mbo);
	memset(mb, 0, sizeof(*mb));
	CHECK(mk_shm_root_set(h, "mailbox", mbo) == 0);
	mk_shm_off_t keep = obj_new(h, 3000, 99, 1);
	CHECK(mk_shm_root_set(h, "keep", keep) == 0);

	/* the workers run until told to stop; meanwhile victims are started and
	 * SIGKILLed one after another, at whatever point they have reached */
	pid_t pid[WORKERS];
	for (uint32_t w = 0; w < WORKERS; w++)
		pid[w] = spawn_worker(path, w + 1, -1);
	atomic_store(&mb->go, 1);
	uint64_t seed = (uint64_t)getpid();
	for (int v = 0; v < VICTIMS; v++) {
		pid_t victim = spawn_worker(path, 50 + (uint32_t)v, -1);
		sleep_ms(5 + rnd(&seed) % 30);
		kill(victim, SIGKILL);
		int status = 0;
		waitpid(victim, &status, 0);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	/* the others go on after the kills */
	uint64_t at_last_kill = atomic_load(&mb->verified);
	for (int waited = 0; waited < 10000 && atomic_load(&mb->verified) <= at_last_kill + 100;
	     waited += 10)
		sleep_ms(10); /* progress, not speed: a loaded machine may take a while */
	CHECK(atomic_load(&mb->verified) > at_last_kill + 100);
	atomic_store(&mb->stop, 1);
	for (int w = 0; w < WORKERS; w++) {
		int status = 0;
		waitpid(pid[w], &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK(mk_shm_check(h) == 0);
	if (mk_shm_check(h))
		fprintf(stderr, "check: %s\n", mk_shm_error());
	struct mk_shm_stats st;
	mk_shm_stats(h, &st);
	CHECK(st.size > start_size); /* the heap grew while all of them ran */
	printf("processes: %llu objects of other processes verified and freed, %llu allocs, "
	       "%llu repairs after %d kills (a kill outside the lock needs none), file grew to %zu "
	       "KiB\n",
	       (unsigned long long)atomic_load(&mb->verified), (unsigned long long)st.allocs,
	       (unsigned long long)st.repairs, (int)VICTIMS, st.size >> 10);
	int bad = 0;
	for (int s = 0; s < MAILBOX_SLOTS; s++) {
		mk_shm_off_t o = atomic_load(&mb->slot[s]);
		bad += o && !obj_valid(mk_shm_ptr(h, o));
	}
	CHECK(bad == 0);
	mk_shm_close(h);

	/* everyone has exited: a new process finds the data as it was left */
	pid_t p = fork();
	if (p == 0) {
		mk_shm_t *r = mk_shm_open(path, 0, 0);
		int ok = r && obj_valid(mk_shm_ptr(r, mk_shm_root_get(r, "keep"))) &&
			 mk_shm_check(r) == 0;
		struct mailbox *m = r ? mk_shm_ptr(r, mk_shm_root_get(r, "mailbox")) : NULL;
		for (int s = 0; ok && m && s < MAILBOX_SLOTS; s++) {
			mk_shm_off_t o = atomic_load(&m->slot[s]);
			ok = !o || obj_valid(mk_shm_ptr(r, o));
		}
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	waitpid(p, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(path);
}

/* ------------------------------------------------------------ crash points
 * The child dies (SIGKILL, lock held) at a chosen point inside an operation;
 * the parent's next call finds the lock's owner dead, repairs, and the heap
 * checks clean with every earlier object intact. */

static void crash_child_work(mk_shm_t *h)
{
	/* enough of everything to pass each crash point at least once */
	mk_shm_off_t small[300], big[40];
	for (int i = 0; i < 300; i++)
		small[i] = mk_shm_alloc(h, 100);
	for (int i = 0; i < 40; i++)
		big[i] = mk_shm_alloc(h, 20000);
	for (int i = 0; i < 40; i++)
		mk_shm_free(h, big[i]);
	for (int i = 0; i < 300; i++)
		mk_shm_free(h, small[i]);
	for (int i = 0; i < 100; i++)
		(void)mk_shm_alloc(h, 60000);
}

static void test_crash_point(const char *point)
{
	char path[300];
	heap_path(path, sizeof(path), point);
	unlink(path);
	mk_shm_t *h = mk_shm_open(path, 32 << 20, MK_SHM_CREATE);
	CHECK(h != NULL);
	if (!h)
		return;
	mk_shm_off_t mine[50];
	for (int i = 0; i < 50; i++)
		mine[i] = obj_new(h, 100 + 200 * (uint32_t)i, 7, (uint32_t)i);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("MEMKIT_SHM_CRASH_AT", point, 1);
		mk_shm_t *c = mk_shm_open(path, 0, 0);
		if (c)
			crash_child_work(c);
		_exit(0); /* reached only if the crash point was never passed */
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	int err = mk_shm_check(h);
	CHECK(err == 0);
	if (err)
		fprintf(stderr, "crash at %s: %s\n", point, mk_shm_error());
	struct mk_shm_stats st;
	mk_shm_stats(h, &st);
	CHECK(st.repairs == 1);
	int bad = 0;
	for (int i = 0; i < 50; i++)
		bad += !obj_valid(mk_shm_ptr(h, mine[i]));
	CHECK(bad == 0);
	/* and it goes on working */
	for (int i = 0; i < 50; i++)
		CHECK(mk_shm_free(h, mine[i]) == 0);
	for (int i = 0; i < 200; i++)
		CHECK(obj_new(h, 5000, 8, (uint32_t)i) != 0);
	CHECK(mk_shm_check(h) == 0);
	printf("crash at %s: repaired, check passes\n", point);
	mk_shm_close(h);
	unlink(path);
}

/* ------------------------------------------------------------ creators
 * Several processes create the same heap at once: one heap results. */

static void test_concurrent_create(void)
{
	enum { CREATORS = 4 };
	char path[300];
	heap_path(path, sizeof(path), "create");
	unlink(path);
	pid_t pid[CREATORS];
	for (int c = 0; c < CREATORS; c++) {
		pid[c] = fork();
		if (pid[c] == 0) {
			mk_shm_t *h = mk_shm_open(path, 1 << 20, MK_SHM_CREATE);
			char name[16];
			snprintf(name, sizeof(name), "c%d", c);
			int ok =
			    h && mk_shm_root_set(h, name, obj_new(h, 100, (uint32_t)c, 0)) == 0;
			_exit(ok ? 0 : 1);
		}
	}
	for (int c = 0; c < CREATORS; c++) {
		int status = 0;
		waitpid(pid[c], &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	mk_shm_t *h = mk_shm_open(path, 0, 0);
	CHECK(h != NULL);
	for (int c = 0; h && c < CREATORS; c++) {
		char name[16];
		snprintf(name, sizeof(name), "c%d", c);
		const struct obj *o = mk_shm_ptr(h, mk_shm_root_get(h, name));
		CHECK(o && obj_valid(o) && o->owner == (uint32_t)c);
	}
	CHECK(h && mk_shm_check(h) == 0);
	mk_shm_close(h);
	unlink(path);
}

/* ------------------------------------------------------------ threads
 * Threads of one process share a handle; the lock serialises them too. */

struct thread_arg {
	mk_shm_t *h;
	uint32_t id;
	int errors;
};

static void *thread_main(void *p)
{
	struct thread_arg *t = p;
	mk_shm_off_t mine[64] = {0};
	uint64_t seed = t->id * 1000003ull + 1;
	for (int i = 0; i < 20000; i++) {
		int k = (int)(rnd(&seed) % 64);
		if (mine[k]) {
			t->errors += !obj_valid(mk_shm_ptr(t->h, mine[k]));
			t->errors += mk_shm_free(t->h, mine[k]) != 0;
		}
		mine[k] = obj_new(t->h, rnd_size(&seed), t->id, (uint32_t)i);
		t->errors += mine[k] == 0;
	}
	for (int k = 0; k < 64; k++)
		t->errors += mine[k] && mk_shm_free(t->h, mine[k]) != 0;
	return NULL;
}

static void test_threads(void)
{
	enum { THREADS = 4 };
	mk_shm_t *h = mk_shm_open("pools-threads", 64 << 20, MK_SHM_MEMFD);
	CHECK(h != NULL);
	if (!h)
		return;
	pthread_t tid[THREADS];
	struct thread_arg arg[THREADS];
	for (uint32_t t = 0; t < THREADS; t++) {
		arg[t] = (struct thread_arg){.h = h, .id = t + 1};
		CHECK(pthread_create(&tid[t], NULL, thread_main, &arg[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(tid[t], NULL);
		CHECK(arg[t].errors == 0);
	}
	struct mk_shm_stats st;
	mk_shm_stats(h, &st);
	CHECK(st.live_objects == 0);
	CHECK(mk_shm_check(h) == 0);
	mk_shm_close(h);
}

/* ------------------------------------------------------------ backings */

static void test_memfd_and_posix(void)
{
	mk_shm_t *h = mk_shm_open("pools-test", 1 << 20, MK_SHM_MEMFD);
	CHECK(h != NULL);
	if (h) {
		pid_t p = fork();
		if (p == 0) { /* the child shares the memfd mapping it inherited */
			mk_shm_off_t o = obj_new(h, 500, 3, 3);
			_exit(o && mk_shm_root_set(h, "from-child", o) == 0 ? 0 : 1);
		}
		int status = 0;
		waitpid(p, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		const struct obj *o = mk_shm_ptr(h, mk_shm_root_get(h, "from-child"));
		CHECK(o && obj_valid(o) && o->owner == 3);
		CHECK(mk_shm_check(h) == 0);
		mk_shm_close(h);
	}
	char name[64];
	snprintf(name, sizeof(name), "/memkit-pools-%d", (int)getpid());
	h = mk_shm_open(name, 1 << 20, MK_SHM_POSIX | MK_SHM_CREATE);
	CHECK(h != NULL);
	if (h) {
		mk_shm_off_t o = obj_new(h, 700, 4, 4);
		CHECK(mk_shm_root_set(h, "x", o) == 0);
		mk_shm_close(h);
		h = mk_shm_open(name, 0, MK_SHM_POSIX);
		CHECK(h && obj_valid(mk_shm_ptr(h, mk_shm_root_get(h, "x"))));
		mk_shm_close(h);
		shm_unlink(name);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	test_single();
	test_refuse_foreign();
	test_memfd_and_posix();
	test_threads();
	test_concurrent_create();
	test_processes();
	test_crash_point("split");
	test_crash_point("merge");
	test_crash_point("slab-bit");
	test_crash_point("grow");
	return check_report("test_shm");
}
