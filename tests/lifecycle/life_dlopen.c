/* life_dlopen.c - a library that allocates in its constructor and frees in
 * its destructor: dlopen()ed by lifecycle.c's "dlopen" case. */
#include <stdlib.h>
#include <string.h>

#define LIFE_DL_BLOCKS 1000

static char *blocks[LIFE_DL_BLOCKS];

__attribute__((constructor)) static void life_dl_init(void)
{
	for (size_t i = 0; i < LIFE_DL_BLOCKS; i++) {
		size_t n = 16 + (i * 37) % 3000;
		blocks[i] = malloc(n);
		if (blocks[i])
			memset(blocks[i], (int)(i & 0xff), n);
	}
	/* a large one, above any mmap threshold */
	blocks[0] = realloc(blocks[0], 1 << 20);
	if (blocks[0])
		memset(blocks[0], 0, 1 << 20);
}

__attribute__((destructor)) static void life_dl_fini(void)
{
	for (size_t i = 0; i < LIFE_DL_BLOCKS; i++)
		free(blocks[i]);
}

/* 0 if every block made by the constructor still holds its pattern. The
 * odd blocks are handed to the caller (*odd), who frees them. */
int life_dl_check(char **odd, size_t max);

__attribute__((visibility("default"))) int life_dl_check(char **odd, size_t max)
{
	size_t k = 0;

	if (!blocks[0])
		return -1;
	for (size_t j = 0; j < (1u << 20); j++)
		if (blocks[0][j])
			return -1;
	for (size_t i = 1; i < LIFE_DL_BLOCKS; i++) {
		size_t n = 16 + (i * 37) % 3000;
		if (!blocks[i])
			return -1;
		for (size_t j = 0; j < n; j++)
			if ((unsigned char)blocks[i][j] != (i & 0xff))
				return -1;
		if ((i & 1) && k < max) {
			odd[k++] = blocks[i];
			blocks[i] = NULL;
		}
	}
	return (int)k;
}
