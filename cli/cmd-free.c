/* cmd-free.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_free(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: free: not built yet\n");
	return 1;
}
