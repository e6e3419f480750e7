/* cmd-maps.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_maps(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: maps: not built yet\n");
	return 1;
}
