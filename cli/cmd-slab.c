/* cmd-slab.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_slab(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: slab: not built yet\n");
	return 1;
}
