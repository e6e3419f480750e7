/* commands.h - the subcommands of memkit(1), one file cli/cmd-<name>.c each.
 * Each returns the process exit status: 0 success, 1 failure, 2 usage error. */
#ifndef MEMKIT_CLI_COMMANDS_H
#define MEMKIT_CLI_COMMANDS_H

int cmd_free(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_drop_caches(int argc, char **argv);
int cmd_dirty(int argc, char **argv);
int cmd_swap(int argc, char **argv);
int cmd_buddy(int argc, char **argv);
int cmd_slab(int argc, char **argv);
int cmd_maps(int argc, char **argv);
int cmd_faults(int argc, char **argv);
int cmd_pagemap(int argc, char **argv);
int cmd_leak(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
