/* memkit.c - the command's entry: find the subcommand and hand it argv.
 * Each subcommand parses its own options (cli/cmd-<name>.c). */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "commands.h"

struct subcommand {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{"free", cmd_free, "memory in use, free and available, as procps free"},
	{"cache", cmd_cache, "page-cache residency of files; touch, evict, lock"},
	{"drop-caches", cmd_drop_caches, "drop the page cache and/or slab caches"},
	{"dirty", cmd_dirty, "the vm.dirty_* writeback settings and thresholds"},
	{"swap", cmd_swap, "swap devices, swappiness, processes using swap"},
	{"buddy", cmd_buddy, "buddy-system free blocks per order and fragmentation"},
	{"slab", cmd_slab, "kernel slab caches, sorted like slabtop"},
	{"maps", cmd_maps, "a process's memory layout, high to low"},
	{"faults", cmd_faults, "minor and major page faults of a process"},
	{"pagemap", cmd_pagemap, "page-table entries of a process's addresses"},
	{"leak", cmd_leak, "watch a process for steady memory growth"},
	{"run", cmd_run, "run a program on libmemkit: stats and leak reports"},
};

static void usage(FILE *out)
{
	fputs("Usage:\n memkit <command> [options]\n\nCommands:\n", out);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, " %-12s %s\n", subcommands[i].name, subcommands[i].summary);
	fputs("\nOptions:\n -h, --help     display this help\n -V, --version  display version\n"
	      "\nRun 'memkit <command> --help' for a command's options.\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(name, "-V") || !strcmp(name, "--version")) {
		printf("memkit %s\n", MEMKIT_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(name, subcommands[i].name))
			return subcommands[i].main(argc - 1, argv + 1);
	fprintf(stderr, "memkit: unknown command '%s'\nTry 'memkit --help' for more information.\n",
		name);
	return 2;
}
