/* cmd-pagemap.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_pagemap(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: pagemap: not built yet\n");
	return 1;
}
