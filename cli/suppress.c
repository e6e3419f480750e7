/* suppress.c - leak suppressions in LeakSanitizer's format (suppress.h):
 * reading the files and matching a pattern against a name. What a match
 * does to a report is cmd-run.c's business.
 *
 * May call libc and cli/common.c (messages).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "suppress.h"

#define EXIT_USAGE  2
#define EXIT_FAILED 125 /* memkit run's status when memkit itself fails */
#define LEAK_PREFIX "leak:"

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void add(struct mk_suppressions *s, const char *pattern, const char *path, size_t line)
{
	struct mk_suppression *v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		mk_err(EXIT_FAILED, "out of memory");
	s->v = v;
	struct mk_suppression *e = &v[s->n];
	*e = (struct mk_suppression){0};
	e->pattern = strdup(pattern);
	if (!e->pattern || asprintf(&e->origin, "%s:%zu", path, line) < 0)
		mk_err(EXIT_FAILED, "out of memory");
	s->n++;
}

void mk_suppressions_load(struct mk_suppressions *s, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		mk_err(EXIT_USAGE, "cannot read suppressions file %s", path);
	char *buf = NULL;
	size_t cap = 0, line = 0;
	while (getline(&buf, &cap, f) >= 0) {
		line++;
		char *t = trim(buf);
		if (!*t || *t == '#')
			continue;
		if (strncmp(t, LEAK_PREFIX, strlen(LEAK_PREFIX)) != 0)
			mk_errx(EXIT_USAGE,
				"%s:%zu: not a leak suppression (want '%sPATTERN'): '%s'", path,
				line, LEAK_PREFIX, t);
		char *pattern = trim(t + strlen(LEAK_PREFIX));
		if (!*pattern)
			mk_errx(EXIT_USAGE, "%s:%zu: empty pattern", path, line);
		add(s, pattern, path, line);
	}
	if (ferror(f))
		mk_err(EXIT_USAGE, "cannot read suppressions file %s", path);
	free(buf);
	fclose(f);
}

/* Glob matching with '*' only, backtracking to the last star: linear for
 * the usual patterns, never recursive. lead_star and trail_star stand for
 * the stars an unanchored pattern has implicitly at either end. */
static bool glob(const char *p, const char *pe, const char *s, bool lead_star, bool trail_star)
{
	const char *star = lead_star ? p : NULL; /* where the pattern resumes */
	const char *retry = s;			 /* where the star's match ends */
	while (*s) {
		if (p < pe && *p == '*') {
			star = ++p;
			retry = s;
		} else if (p < pe && *p == *s) {
			p++;
			s++;
		} else if (p == pe && trail_star) {
			return true;
		} else if (star) {
			p = star;
			s = ++retry;
		} else {
			return false;
		}
	}
	while (p < pe && *p == '*')
		p++;
	return p == pe;
}

bool mk_suppression_match(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);
	bool at_start = n && pattern[0] == '^';
	bool at_end = n > (size_t)at_start && pattern[n - 1] == '$';
	return glob(pattern + at_start, pattern + n - at_end, name, !at_start, !at_end);
}

void mk_suppressions_free(struct mk_suppressions *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].pattern);
		free(s->v[i].origin);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
