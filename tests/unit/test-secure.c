/* test-secure.c - what the secure build (libmemkit-secure.so) catches that
 * the default build does not. Each case runs in this process and is expected
 * to die; secure-check.sh asserts how.
 *   test-secure slab-overflow | large-overflow | large-underflow |
 *               realloc-overflow | ok */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "ok";
	volatile char *p;
	if (!strcmp(c, "slab-overflow")) {
		p = malloc(10);
		p[10] = 1; /* one byte past the block */
		free((void *)p);
	} else if (!strcmp(c, "large-overflow")) {
		p = malloc(200000);
		p[200000] = 1; /* the guard page right after the block */
	} else if (!strcmp(c, "large-underflow")) {
		p = malloc(300000);
		p[-(4096 + 1)] = 1; /* the guard page before the mapping */
	} else if (!strcmp(c, "realloc-overflow")) {
		p = malloc(100);
		p = realloc((void *)p, 40);
		p[40] = 'x';
		free((void *)p);
	} else {
		for (int i = 0; i < 100000; i++) { /* in bounds: nothing reported */
			char *q = malloc((size_t)(i % 3000) + 1);
			memset(q, 1, (size_t)(i % 3000) + 1);
			free(q);
		}
	}
	puts("no error detected");
	return 0;
}
