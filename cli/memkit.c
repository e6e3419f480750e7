/* memkit.c - the command's entry: global options (--proc-root, -h, -V),
 * then find the subcommand and hand it argv. Each subcommand parses its own
 * options (cli/cmd-<name>.c). May call cli/common.c and cli/procfs.c.
 */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "cli.h"
#include "commands.h"
#include "procfs.h"

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
	fputs("Usage:\n memkit [--proc-root <dir>] <command> [options]\n\nCommands:\n", out);
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(out, " %-12s %s\n", subcommands[i].name, subcommands[i].summary);
	fputs("\nOptions:\n"
	      "     --proc-root <dir>  read /proc and /sys under <dir> (also $MEMKIT_PROC_ROOT)\n"
	      " -h, --help             display this help\n"
	      " -V, --version          display version\n"
	      "\nRun 'memkit <command> --help' for a command's options.\n",
	      out);
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(name, subcommands[i].name))
			return &subcommands[i];
	return NULL;
}

/* Global options come before the command name; returns argv's index of
 * the command name. */
static int parse_global_options(int argc, char **argv)
{
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			mk_print_version();
		} else if (!strcmp(a, "--proc-root") && i + 1 < argc) {
			mk_proc_set_root(argv[++i]);
		} else if (!strncmp(a, "--proc-root=", 12)) {
			mk_proc_set_root(a + 12);
		} else {
			fprintf(stderr, "memkit: unknown option '%s'\n", a);
			mk_errtryhelp();
		}
		i++;
	}
	return i;
}

int main(int argc, char **argv)
{
	/* the user's character set, so that tables may hold UTF-8 (sparklines)
	 * and numbers stay in the C locale */
	setlocale(LC_CTYPE, "");
	int first = parse_global_options(argc, argv);

	if (first >= argc) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[first];
	if (!strcmp(name, "help")) {
		usage(stdout);
		return 0;
	}
	const struct subcommand *sc = find_subcommand(name);
	if (!sc) {
		fprintf(stderr, "memkit: unknown command '%s'\n", name);
		mk_errtryhelp();
	}
	/* getopt_long names argv[0] in its messages: make it "memkit <cmd>" */
	static char progname[64];
	snprintf(progname, sizeof(progname), "memkit %s", sc->name);
	argv[first] = progname;
	mk_set_cmdname(sc->name);
	return sc->main(argc - first, argv + first);
}
