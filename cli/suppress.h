/* suppress.h - leak suppressions for "memkit run --suppressions FILE", in
 * LeakSanitizer's format so that a file written for LSan
 * (LSAN_OPTIONS=suppressions=FILE) works unchanged: one "leak:PATTERN" a
 * line; blank lines and lines starting with '#' are ignored. cmd-run.c
 * matches each pattern against the function, source file and object of
 * every frame of a lost call stack. Implemented in cli/suppress.c; may call
 * libc and cli/common.c.
 */
#ifndef MEMKIT_CLI_SUPPRESS_H
#define MEMKIT_CLI_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>

struct mk_suppression {
	char *pattern;				 /* what follows "leak:" */
	char *origin;				 /* "FILE:LINE", where it was read */
	unsigned long long sites, blocks, bytes; /* what it suppressed */
};

struct mk_suppressions {
	struct mk_suppression *v;
	size_t n;
};

/* Adds the suppressions of the file at path to s. A file that cannot be
 * read, or a line that is not "leak:PATTERN", is a usage error: the message
 * names the file and line, and the program exits 2. */
void mk_suppressions_load(struct mk_suppressions *s, const char *path);

/* Whether name matches pattern as LSan matches it: anywhere in name unless
 * the pattern starts with '^' (then at its start) or ends with '$' (then at
 * its end); '*' matches any run of characters. */
bool mk_suppression_match(const char *pattern, const char *name);

void mk_suppressions_free(struct mk_suppressions *s);

#endif
