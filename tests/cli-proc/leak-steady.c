/* leak-steady.c - holds 8 MiB and churns small allocations (malloc, use,
 * free) every 20 ms for SECONDS seconds (argv[1]): busy but not growing,
 * so memkit leak must not call it leaking. May call libc only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_NS	   (20 * 1000 * 1000)
#define HELD_BYTES (8 * 1024 * 1024)

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	long ticks = (long)(seconds * 1e9 / TICK_NS);
	struct timespec tick = {0, TICK_NS};
	char *held = malloc(HELD_BYTES);

	if (!held)
		return 1;
	memset(held, 1, HELD_BYTES);
	puts("ready");
	fflush(stdout);
	for (long i = 0; i < ticks; i++) {
		char *tmp[64];
		for (int k = 0; k < 64; k++) {
			tmp[k] = malloc(100 + (size_t)k * 50);
			if (tmp[k])
				memset(tmp[k], k, 100);
		}
		for (int k = 0; k < 64; k++)
			free(tmp[k]);
		held[(size_t)i * 4096 % HELD_BYTES]++;
		nanosleep(&tick, NULL);
	}
	free(held);
	return 0;
}
