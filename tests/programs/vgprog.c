/* vgprog.c - a small workload to run the allocator under valgrind (memcheck
 * checks the allocator's own code: reads of uninitialised or unmapped memory).
 * It also says which library provides malloc, so that the test can see that
 * valgrind did not replace the preloaded allocator with its own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *work(void *arg)
{
	uintptr_t seed = (uintptr_t)arg;
	void *slot[64] = {0};
	size_t len[64] = {0};
	unsigned long sum = 0;

	for (int i = 0; i < 20000; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		unsigned k = (unsigned)(seed >> 58);
		if (slot[k]) {
			sum += ((unsigned char *)slot[k])[len[k] - 1];
			free(slot[k]);
		}
		len[k] = (seed >> 20) % ((i % 100) == 0 ? 300000 : 2000) + 1;
		switch (i % 4) {
		case 0:
			slot[k] = malloc(len[k]);
			break;
		case 1:
			slot[k] = calloc(1, len[k]);
			break;
		case 2:
			if (posix_memalign(&slot[k], 64, len[k]))
				slot[k] = NULL;
			break;
		default:
			slot[k] = realloc(malloc(16), len[k]);
			break;
		}
		if (!slot[k])
			return (void *)1;
		memset(slot[k], (int)k, len[k]);
	}
	for (int k = 0; k < 64; k++)
		free(slot[k]);
	return (void *)(uintptr_t)(sum == 0);
}

int main(void)
{
	Dl_info info;
	pthread_t t[2];
	int bad = 0;

	if (dladdr(dlsym(RTLD_DEFAULT, "malloc"), &info) && info.dli_fname)
		printf("malloc from %s\n", info.dli_fname);
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, work, (void *)(i + 1));
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad |= r != NULL;
	}
	malloc_trim(0);
	printf("%s\n", bad ? "FAILED" : "ok");
	return bad;
}
