/* leak-sawtooth.c - grows by 256 KiB every 20 ms and frees it all every
 * 7th tick (a 140 ms period), for SECONDS seconds (argv[1]): memory rises
 * and falls like a sawtooth, which memkit leak must not call leaking.
 * May call libc only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_NS		(20 * 1000 * 1000)
#define STEP_BYTES	(256 * 1024)
#define TICKS_PER_TOOTH 7

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	long ticks = (long)(seconds * 1e9 / TICK_NS);
	struct timespec tick = {0, TICK_NS};
	char *held[TICKS_PER_TOOTH] = {0};

	puts("ready");
	fflush(stdout);
	for (long i = 0; i < ticks; i++) {
		int slot = (int)(i % TICKS_PER_TOOTH);
		if (slot == 0)
			for (int k = 0; k < TICKS_PER_TOOTH; k++) {
				free(held[k]);
				held[k] = NULL;
			}
		held[slot] = malloc(STEP_BYTES);
		if (held[slot])
			memset(held[slot], 1, STEP_BYTES);
		nanosleep(&tick, NULL);
	}
	for (int k = 0; k < TICKS_PER_TOOTH; k++)
		free(held[k]);
	return 0;
}
