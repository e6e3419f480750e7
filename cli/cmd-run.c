/* cmd-run.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: run: not built yet\n");
	return 1;
}
