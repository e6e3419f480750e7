/* cmd-faults.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_faults(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: faults: not built yet\n");
	return 1;
}
