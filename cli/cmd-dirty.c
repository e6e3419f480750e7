/* cmd-dirty.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_dirty(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: dirty: not built yet\n");
	return 1;
}
