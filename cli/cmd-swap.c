/* cmd-swap.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_swap(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: swap: not built yet\n");
	return 1;
}
