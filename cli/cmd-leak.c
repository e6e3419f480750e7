/* cmd-leak.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_leak(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: leak: not built yet\n");
	return 1;
}
