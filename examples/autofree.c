/* autofree.c - example: scoped cleanup, C's answer to smart pointers.
 *
 * MK_AUTOFREE frees a malloc'd block, and MK_AUTO_ARENA destroys an arena,
 * when the variable goes out of scope: at the end of the block, on an early
 * return, on a goto out of the block. The program reads a /proc file into an
 * automatically freed buffer on each path and shows, through a counting
 * cleanup beside it, that every path ran the cleanup.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "memkit.h"
#include "memkit/pool.h"

static int cleanups;
static void note_cleanup(int *unused)
{
	(void)unused;
	cleanups++;
}

/* The value of one "Name:" line of /proc/self/status, or -1. */
static long status_field(const char *name)
{
	MK_AUTO(note_cleanup) __attribute__((unused)) int watch = 0;
	MK_AUTOFREE char *buf = malloc(8192);
	if (!buf)
		return -1; /* early return: buf is NULL, free(NULL) is fine */
	int fd = open("/proc/self/status", O_RDONLY);
	/* static analysers do not know the cleanup attribute: suppressed */
	if (fd < 0)
		return -1; // cppcheck-suppress memleak ; NOLINT(clang-analyzer-unix.Malloc)
	ssize_t n = read(fd, buf, 8191);
	close(fd);
	if (n <= 0)
		goto fail; /* goto out of scope: buf freed */
	buf[n] = '\0';
	const char *line = strstr(buf, name);
	if (!line)
		goto fail;
	return strtol(line + strlen(name), NULL, 10); /* normal return: buf freed */
fail:
	return -1;
}

static size_t words_longer_than(size_t min)
{
	MK_AUTO(note_cleanup) __attribute__((unused)) int watch = 0;
	MK_AUTO_ARENA mk_arena_t *a = mk_arena_create(NULL);
	static const char *const words[] = {"pages", "buddy", "slab", "arena", "mmap", "swap"};
	size_t count = 0;
	for (size_t i = 0; a && i < sizeof(words) / sizeof(words[0]); i++) {
		char *copy = mk_arena_strdup(a, words[i]);
		count += copy && strlen(copy) > min;
	}
	return count; /* the arena and all its copies go away here */
}

int main(void)
{
	long rss = status_field("VmRSS:");
	long missing = status_field("NoSuchField:");
	size_t longer = words_longer_than(4);
	printf("VmRSS of this process: %ld kB\n", rss);
	printf("a field that does not exist: %ld (the goto path)\n", missing);
	printf("words longer than 4 letters: %zu (counted in an auto-destroyed arena)\n", longer);
	printf("scope cleanups run: %d of 3\n", cleanups);
	return rss > 0 && missing == -1 && longer == 3 && cleanups == 3 ? 0 : 1;
}
