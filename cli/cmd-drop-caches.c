/* cmd-drop-caches.c - placeholder until the subcommand is written. */
#include <stdio.h>
#include "commands.h"

int cmd_drop_caches(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "memkit: drop-caches: not built yet\n");
	return 1;
}
