/* cmd-buddy.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_buddy(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: buddy: not built yet\n");
	return 1;
}
