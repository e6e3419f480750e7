/* shm.c - example: a heap shared by several processes through one file.
 *
 * The parent creates a heap file and a "board" object, published as a named
 * root. Three children open the same file (each maps it at its own address),
 * find the board by its root name and push notes onto a list that links
 * objects by offset, never by pointer. The parent then reads every note,
 * verifies the heap, closes it, and opens it again to show the data stayed.
 *
 * Usage: shm [FILE]   (default: a file in /tmp, removed at the end)
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "memkit.h"
#include "memkit/pool.h"

struct note {
	mk_shm_off_t next; /* offset of the next note, 0 at the end */
	int writer, seq;
	char text[40];
};

struct board {
	mk_shm_off_t first;
	unsigned count;
};

static int child(const char *path, int id)
{
	mk_shm_t *h = mk_shm_open(path, 0, 0);
	if (!h)
		return fprintf(stderr, "child %d: %s\n", id, mk_shm_error()), 1;
	struct board *b = mk_shm_ptr(h, mk_shm_root_get(h, "board"));
	for (int seq = 0; b && seq < 5; seq++) {
		mk_shm_off_t off = mk_shm_alloc(h, sizeof(struct note));
		struct note *n = mk_shm_ptr(h, off);
		if (!n)
			return 1;
		n->writer = id;
		n->seq = seq;
		snprintf(n->text, sizeof(n->text), "note %d from process %d", seq, (int)getpid());
		mk_shm_lock(h); /* the push must be atomic for the other writers */
		n->next = b->first;
		b->first = off;
		b->count++;
		mk_shm_unlock(h);
	}
	mk_shm_close(h);
	return b ? 0 : 1;
}

static void print_heap(mk_shm_t *h)
{
	struct mk_shm_stats st;
	mk_shm_stats(h, &st);
	printf("heap: file %zu KiB (at most %zu KiB), %zu objects, %zu KiB free, check: %s\n",
	       st.size >> 10, st.max_size >> 10, st.live_objects, st.free_bytes >> 10,
	       mk_shm_check(h) == 0 ? "ok" : mk_shm_error());
}

int main(int argc, char **argv)
{
	char path[256];
	if (argc > 1)
		snprintf(path, sizeof(path), "%s", argv[1]);
	else
		snprintf(path, sizeof(path), "/tmp/memkit-example-shm-%d.heap", (int)getpid());

	mk_shm_t *h = mk_shm_open(path, 16 << 20, MK_SHM_CREATE | MK_SHM_EXCL);
	if (!h)
		return fprintf(stderr, "%s\n", mk_shm_error()), 1;
	mk_shm_off_t board = mk_shm_alloc(h, sizeof(struct board));
	memset(mk_shm_ptr(h, board), 0, sizeof(struct board));
	mk_shm_root_set(h, "board", board);

	for (int id = 1; id <= 3; id++)
		if (fork() == 0)
			_exit(child(path, id));
	int failed = 0, status;
	while (wait(&status) > 0)
		failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;

	struct board *b = mk_shm_ptr(h, board);
	printf("%u notes on the board from 3 processes; the last three pushed:\n", b->count);
	int shown = 0;
	for (mk_shm_off_t off = b->first; off; off = ((struct note *)mk_shm_ptr(h, off))->next)
		if (shown++ < 3)
			printf("  at offset %-8llu %s\n", (unsigned long long)off,
			       ((struct note *)mk_shm_ptr(h, off))->text);
	print_heap(h);
	mk_shm_close(h);

	h = mk_shm_open(path, 0, 0); /* all closed: the file keeps the heap */
	b = h ? mk_shm_ptr(h, mk_shm_root_get(h, "board")) : NULL;
	printf("reopened: the board still holds %u notes\n", b ? b->count : 0);
	unsigned count = b ? b->count : 0;
	mk_shm_close(h);
	if (argc <= 1)
		unlink(path);
	return failed == 0 && count == 15 ? 0 : 1;
}
