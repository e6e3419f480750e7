/* leak-grow.c - leaks 64 KiB every 20 ms for SECONDS seconds (argv[1]),
 * so memkit leak must call it growing. Says "ready" once running.
 * May call libc only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_NS	   (20 * 1000 * 1000)
#define LEAK_BYTES (64 * 1024)

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	long ticks = (long)(seconds * 1e9 / TICK_NS);
	struct timespec tick = {0, TICK_NS};

	puts("ready");
	fflush(stdout);
	for (long i = 0; i < ticks; i++) {
		char *p = malloc(LEAK_BYTES); /* never freed: the leak */
		if (p)
			memset(p, (int)i, LEAK_BYTES);
		nanosleep(&tick, NULL);
	}
	return 0;
}
