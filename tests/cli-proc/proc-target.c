/* proc-target.c - a process for the cli-proc tests to look at.
 *   proc-target touch N        touch N fresh pages, exit 0 (faults -- CMD)
 *   proc-target wait-touch N   touch N fresh pages, say "ready", wait
 *   proc-target threads N [spin]  N threads blocked in read(2) (and with
 *                              "spin" one more that never sleeps), a heap,
 *                              an mmap'd block and a file mapping; "ready", wait
 *   proc-target pages          8 anonymous pages with 0, 2 and 4 written, and
 *                              one page of a file read; prints their
 *                              addresses ("anon=0x... file=0x..."), waits
 * "Waits" means: until killed, or for 60 s (alarm) so that a failed test
 * never leaves it behind. May call libc and pthreads only.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int block_pipe[2];

static _Noreturn void wait_until_killed(void)
{
	alarm(60);
	for (;;)
		pause();
}

static void say(const char *msg)
{
	fputs(msg, stdout);
	fflush(stdout);
}

static char *map_anon_pages(size_t n)
{
	char *p = mmap(NULL, n * (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void touch_pages(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	volatile char *p = map_anon_pages(n);

	for (size_t i = 0; i < n; i++)
		p[i * page] = 1;
}

/* Each thread blocks in read(2) so /proc/PID/task/TID/syscall shows its
 * stack pointer. */
static void *blocked_thread(void *arg)
{
	char c;

	(void)arg;
	if (read(block_pipe[0], &c, 1) < 0)
		perror("read");
	return NULL;
}

/* A thread that stays on a CPU: its syscall file often says "running". */
static void *spinning_thread(void *arg)
{
	volatile unsigned long *count = arg;

	for (;;)
		(*count)++;
	return NULL;
}

static void start_spinner(void)
{
	static unsigned long count;
	pthread_t t;

	if (pthread_create(&t, NULL, spinning_thread, &count)) {
		fputs("pthread_create failed\n", stderr);
		exit(1);
	}
}

static void start_threads(int n)
{
	pthread_t t;

	if (pipe(block_pipe) < 0) {
		perror("pipe");
		exit(1);
	}
	for (int i = 0; i < n; i++)
		if (pthread_create(&t, NULL, blocked_thread, NULL)) {
			fputs("pthread_create failed\n", stderr);
			exit(1);
		}
}

static const char *map_file_page(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	const char *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* Held until the process is killed, so memkit maps sees a heap and an
 * anonymous mapping. */
static char *small_block, *big_block;

static _Noreturn void run_threads(int n, bool spin, const char *self)
{
	start_threads(n);
	if (spin)
		start_spinner();
	small_block = malloc(1000);	 /* from the heap (brk) */
	big_block = malloc(1024 * 1024); /* its own mapping */
	if (!small_block || !big_block)
		exit(1);
	memset(small_block, 1, 1000);
	memset(big_block, 1, 1024 * 1024);
	volatile char c = *map_file_page(self);
	(void)c;
	say("ready\n");
	wait_until_killed();
}

static _Noreturn void run_pages(const char *self)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *anon = map_anon_pages(8);
	const char *file = map_file_page(self);
	volatile char c = file[0];

	(void)c;
	for (size_t i = 0; i <= 4; i += 2)
		anon[i * page] = 1;
	printf("anon=%p file=%p\n", (void *)anon, (const void *)file);
	say("ready\n");
	wait_until_killed();
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "touch")) {
		touch_pages(strtoul(argv[2], NULL, 10));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "wait-touch")) {
		touch_pages(strtoul(argv[2], NULL, 10));
		say("ready\n");
		wait_until_killed();
	}
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "threads"))
		run_threads(atoi(argv[2]), argc == 4 && !strcmp(argv[3], "spin"), argv[0]);
	if (argc == 2 && !strcmp(argv[1], "pages"))
		run_pages(argv[0]);
	fputs("usage: proc-target touch N | wait-touch N | threads N [spin] | pages\n", stderr);
	return 2;
}
