/* cmd-cache.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_cache(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: cache: not built yet\n");
	return 1;
}
