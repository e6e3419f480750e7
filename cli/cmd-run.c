/* cmd-run.c - "memkit run [--stats] [--leaks] [--report FILE] -- CMD ARGS":
 * runs CMD on libmemkit (LD_PRELOAD), passes its stdin, stdout, stderr and
 * exit status through, and turns the JSON report the program writes at exit
 * (MEMKIT_REPORT, see src/stats.c and src/leak.c) into a readable report on
 * stderr, or into FILE with every frame named by addr2line (file:line).
 *
 * Exit status: CMD's own; 128+N when a signal N killed it; with
 * --fail-on-leak, 3 (or the given code) when CMD exited 0 but leaked (blocks
 * definitely or indirectly lost, less those a --suppressions file covers);
 * 125 when memkit itself failed, 126/127 when CMD could not be run.
 *
 * May call cli/common.c, cli/suppress.c, libc, and addr2line(1) from binutils.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "suppress.h"

#ifndef MEMKIT_LIBDIR
#define MEMKIT_LIBDIR "/usr/local/lib"
#endif

#define EXIT_MEMKIT_FAILED 125
#define EXIT_CANNOT_EXEC   126
#define EXIT_NOT_FOUND	   127
#define EXIT_LEAKED	   3
#define ADDR2LINE_BATCH	   200 /* addresses per addr2line run */
#define REACHABLE_SHOWN	   10  /* still-reachable sites listed in the text report */

struct run_opts {
	bool stats, leaks;
	const char *report;	    /* --report FILE, or NULL */
	const char *lib;	    /* --lib PATH, or NULL: found next to memkit */
	int fail_on_leak;	    /* exit code for leaks; 0 = off */
	struct mk_suppressions sup; /* --suppressions, in the order given */
	char **cmd;
};

/* ------------------------------------------------------------ JSON
 * A small reader and writer for the report libmemkit writes: objects,
 * arrays, strings, numbers (kept as written), true, false, null. */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;
	char *s; /* J_STR: the string; J_NUM: the number as written */
	size_t n;
	char **keys;	     /* J_OBJ */
	struct jval **items; /* J_ARR, J_OBJ */
};

struct jparser {
	const char *p;
	int depth;
};

static struct jval *json_value(struct jparser *jp);

static void json_free(struct jval *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		json_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->s);
	free(v);
}

static struct jval *json_new(enum jtype type)
{
	struct jval *v = calloc(1, sizeof(*v));
	if (!v)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	v->type = type;
	return v;
}

static void skip_space(struct jparser *jp)
{
	while (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\t' || *jp->p == '\r')
		jp->p++;
}

static void json_append(struct jval *v, char *key, struct jval *item)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof(struct jval *));
	if (v->type == J_OBJ)
		v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
	if (!v->items || (v->type == J_OBJ && !v->keys))
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	if (v->type == J_OBJ)
		v->keys[v->n] = key;
	else
		free(key); /* an array's items have none */
	v->items[v->n++] = item;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* \uXXXX below 0x80 only: libmemkit escapes control characters that way */
static bool unescape(struct jparser *jp, char *out)
{
	char c = *jp->p++;
	const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
	for (const char *m = map; *m; m += 2)
		if (c == m[0]) {
			*out = m[1];
			return true;
		}
	if (c != 'u')
		return false;
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_digit(*jp->p++);
		if (d < 0)
			return false;
		v = v * 16 + d;
	}
	memset(out, v < 0x80 ? v : '?', 1); /* ASCII only; no narrowing cast */
	return true;
}

/* append c, growing the buffer; false without memory */
static bool str_push(char **s, size_t *len, size_t *cap, char c)
{
	if (*len + 2 > *cap) {
		char *bigger = realloc(*s, *cap * 2);
		if (!bigger)
			return false;
		*s = bigger;
		*cap *= 2;
	}
	(*s)[(*len)++] = c;
	return true;
}

static char *json_string(struct jparser *jp)
{
	if (*jp->p != '"')
		return NULL;
	jp->p++;
	size_t cap = 32, len = 0;
	char *s = malloc(cap);
	bool ok = s != NULL;
	while (ok && *jp->p && *jp->p != '"') {
		char c = *jp->p++;
		ok = (c != '\\' || unescape(jp, &c)) && str_push(&s, &len, &cap, c);
	}
	if (!ok || *jp->p != '"') {
		free(s);
		return NULL;
	}
	jp->p++;
	s[len] = '\0';
	return s;
}

static struct jval *json_number(struct jparser *jp)
{
	const char *start = jp->p;
	while (*jp->p && strchr("+-0123456789.eE", *jp->p))
		jp->p++;
	if (jp->p == start)
		return NULL;
	struct jval *v = json_new(J_NUM);
	v->s = strndup(start, (size_t)(jp->p - start));
	return v;
}

static struct jval *json_literal(struct jparser *jp)
{
	static const struct {
		const char *word;
		enum jtype type;
		bool b;
	} lits[] = {{"true", J_BOOL, true}, {"false", J_BOOL, false}, {"null", J_NULL, false}};
	for (size_t i = 0; i < ARRAY_SIZE(lits); i++)
		if (!strncmp(jp->p, lits[i].word, strlen(lits[i].word))) {
			jp->p += strlen(lits[i].word);
			struct jval *v = json_new(lits[i].type);
			v->b = lits[i].b;
			return v;
		}
	return json_number(jp);
}

/* one "key": value member (key NULL for an array item); false on bad input */
static bool json_member(struct jparser *jp, struct jval *v)
{
	char *key = NULL;
	if (v->type == J_OBJ) {
		skip_space(jp);
		key = json_string(jp);
		skip_space(jp);
		if (!key || *jp->p++ != ':') {
			free(key);
			return false;
		}
	}
	struct jval *item = json_value(jp);
	if (!item) {
		free(key);
		return false;
	}
	json_append(v, key, item);
	return true;
}

/* the members of an object or the items of an array, up to `close` */
static struct jval *json_container(struct jparser *jp, enum jtype type, char close)
{
	struct jval *v = json_new(type);
	jp->p++;
	skip_space(jp);
	while (*jp->p != close) {
		if (!json_member(jp, v))
			goto bad;
		skip_space(jp);
		if (*jp->p == ',')
			jp->p++;
		else if (*jp->p != close)
			goto bad;
	}
	jp->p++;
	return v;
bad:
	json_free(v);
	return NULL;
}

static struct jval *json_value(struct jparser *jp)
{
	if (++jp->depth > 64)
		return NULL;
	skip_space(jp);
	struct jval *v;
	if (*jp->p == '{') {
		v = json_container(jp, J_OBJ, '}');
	} else if (*jp->p == '[') {
		v = json_container(jp, J_ARR, ']');
	} else if (*jp->p == '"') {
		char *s = json_string(jp);
		v = s ? json_new(J_STR) : NULL;
		if (v)
			v->s = s;
	} else {
		v = json_literal(jp);
	}
	jp->depth--;
	return v;
}

static struct jval *json_get(const struct jval *obj, const char *key)
{
	if (!obj || obj->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return obj->items[i];
	return NULL;
}

static const char *json_str(const struct jval *obj, const char *key)
{
	const struct jval *v = json_get(obj, key);
	return v && v->type == J_STR ? v->s : NULL;
}

static unsigned long long json_u64(const struct jval *obj, const char *key)
{
	const struct jval *v = json_get(obj, key);
	return v && v->type == J_NUM ? strtoull(v->s, NULL, 10) : 0;
}

static void json_set_str(struct jval *v, const char *s)
{
	free(v->s);
	v->type = J_STR;
	v->s = strdup(s);
	if (!v->s)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
}

static void json_set_u64(struct jval *v, unsigned long long n)
{
	free(v->s);
	v->type = J_NUM;
	if (asprintf(&v->s, "%llu", n) < 0)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
}

static char *json_key(const char *key)
{
	char *k = strdup(key);
	if (!k)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	return k;
}

static void json_add_str(struct jval *obj, const char *key, const char *s)
{
	struct jval *v = json_new(J_STR);
	json_set_str(v, s);
	json_append(obj, json_key(key), v);
}

static void json_add_u64(struct jval *obj, const char *key, unsigned long long n)
{
	struct jval *v = json_new(J_NUM);
	json_set_u64(v, n);
	json_append(obj, json_key(key), v);
}

/* {"bytes": B, "blocks": N} */
static struct jval *json_total(unsigned long long bytes, unsigned long long blocks)
{
	struct jval *t = json_new(J_OBJ);
	json_add_u64(t, "bytes", bytes);
	json_add_u64(t, "blocks", blocks);
	return t;
}

static void json_write_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_write(FILE *f, const struct jval *v)
{
	if (!v) { /* the parser stores none, but a missing value is null */
		fputs("null", f);
		return;
	}
	switch (v->type) {
	case J_NULL:
		fputs("null", f);
		break;
	case J_BOOL:
		fputs(v->b ? "true" : "false", f);
		break;
	case J_NUM:
		fputs(v->s, f);
		break;
	case J_STR:
		json_write_str(f, v->s);
		break;
	case J_ARR:
	case J_OBJ:
		fputc(v->type == J_OBJ ? '{' : '[', f);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				fputc(',', f);
			if (v->type == J_OBJ) {
				json_write_str(f, v->keys[i]);
				fputc(':', f);
			}
			json_write(f, v->items[i]);
		}
		fputc(v->type == J_OBJ ? '}' : ']', f);
		break;
	}
}

static struct jval *json_read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *text = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	struct jval *v = NULL;
	if (n > 0) {
		struct jparser jp = {text, 0};
		v = json_value(&jp);
	}
	free(text);
	return v;
}

/* ------------------------------------------------------------ symbols
 * Each frame carries "object" and "offset" (the address addr2line wants);
 * addr2line adds the function (from the full symbol table, which dladdr in
 * the program cannot see) and file:line where debug information exists. */

struct sym_request {
	const char *object;
	struct jval **frames; /* frames in that object */
	size_t n;
};

struct sym_set {
	struct sym_request *req;
	size_t n;
	bool addr2line_missing;
};

static void sym_add(struct sym_set *set, struct jval *frame)
{
	const char *obj = json_str(frame, "object");
	if (!obj || !json_str(frame, "offset") || obj[0] != '/')
		return;
	size_t i = 0;
	while (i < set->n && strcmp(set->req[i].object, obj) != 0)
		i++;
	if (i == set->n) {
		set->req = realloc(set->req, (set->n + 1) * sizeof(*set->req));
		if (!set->req)
			mk_err(EXIT_MEMKIT_FAILED, "out of memory");
		set->req[set->n++] = (struct sym_request){obj, NULL, 0};
	}
	struct sym_request *r = &set->req[i];
	r->frames = realloc(r->frames, (r->n + 1) * sizeof(struct jval *));
	if (!r->frames)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	r->frames[r->n++] = frame;
}

static void sym_collect_sites(struct sym_set *set, const struct jval *sites)
{
	for (size_t i = 0; sites && sites->type == J_ARR && i < sites->n; i++) {
		const struct jval *frames = json_get(sites->items[i], "frames");
		for (size_t k = 0; frames && frames->type == J_ARR && k < frames->n; k++)
			sym_add(set, frames->items[k]);
	}
}

/* Start addr2line on object for the first frame of each of n groups (below)
 * and return its output. */
static FILE *addr2line_start(const char *object, struct jval **frames, const size_t *group,
			     size_t n, pid_t *pid)
{
	char **argv = calloc(n + 6, sizeof(*argv));
	int fds[2];
	if (!argv || pipe(fds))
		mk_err(EXIT_MEMKIT_FAILED, "cannot start addr2line");
	size_t a = 0;
	argv[a++] = "addr2line";
	argv[a++] = "-f";
	argv[a++] = "-C";
	argv[a++] = "-e";
	argv[a++] = (char *)object;
	for (size_t g = 0; g < n; g++)
		argv[a++] = (char *)json_str(frames[group[g]], "offset");
	*pid = fork();
	if (*pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		unsetenv("LD_PRELOAD");
		execvp("addr2line", argv);
		_exit(EXIT_NOT_FOUND);
	}
	free(argv);
	close(fds[1]);
	if (*pid < 0) {
		close(fds[0]);
		return NULL;
	}
	return fdopen(fds[0], "r");
}

/* drop the newline, and addr2line's " (discriminator N)" */
static void chomp(char *s)
{
	s[strcspn(s, "\n")] = '\0';
	char *d = strstr(s, " (discriminator");
	if (d)
		*d = '\0';
}

/* Write "function" (when the program could not name it) and "source". */
static void apply_symbol(struct jval *frame, const char *func, const char *source)
{
	struct jval *fn = json_get(frame, "function");
	if (fn && strcmp(func, "??") != 0)
		json_set_str(fn, func);
	if (strncmp(source, "??", 2) != 0 && !strstr(source, ":0") && !strstr(source, ":?")) {
		struct jval *src = json_new(J_STR);
		src->s = strdup(source);
		json_append(frame, strdup("source"), src);
	}
}

/* n groups of frames, group k the run of frames at one offset from
 * frames[group[k]] to frames[group[k + 1] - 1]: one address each. */
static bool symbolize_batch(const char *object, struct jval **frames, const size_t *group, size_t n)
{
	pid_t pid;
	FILE *out = addr2line_start(object, frames, group, n, &pid);
	if (!out)
		return false;
	char *func = NULL, *src = NULL;
	size_t fcap = 0, scap = 0;
	for (size_t g = 0; g < n; g++) {
		if (getline(&func, &fcap, out) < 0 || getline(&src, &scap, out) < 0)
			break;
		chomp(func);
		chomp(src);
		for (size_t i = group[g]; i < group[g + 1]; i++)
			apply_symbol(frames[i], func, src);
	}
	free(func);
	free(src);
	fclose(out);
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) != EXIT_NOT_FOUND;
}

static int by_offset(const void *a, const void *b)
{
	return strcmp(json_str(*(struct jval *const *)a, "offset"),
		      json_str(*(struct jval *const *)b, "offset"));
}

/* The frames of each object sorted by offset and asked for once per
 * distinct offset: a report names the same return addresses again and
 * again (python's exit report: 1767 frames, 191 distinct), and each
 * addr2line run reads the object's debug information anew. */
static void symbolize(struct sym_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct sym_request *r = &set->req[i];
		size_t *group = malloc((r->n + 1) * sizeof(*group)), ngroups = 0;
		if (!group)
			mk_err(EXIT_MEMKIT_FAILED, "out of memory");
		/* the array holds pointers: their size is meant */
		qsort(r->frames, r->n, sizeof(*r->frames), // NOLINT(bugprone-sizeof-expression)
		      by_offset);
		for (size_t k = 0; k < r->n; k++)
			if (!k || by_offset(&r->frames[k - 1], &r->frames[k]))
				group[ngroups++] = k;
		group[ngroups] = r->n;
		for (size_t g = 0; g < ngroups; g += ADDR2LINE_BATCH) {
			size_t m = ngroups - g < ADDR2LINE_BATCH ? ngroups - g : ADDR2LINE_BATCH;
			if (!symbolize_batch(r->object, r->frames, group + g, m))
				set->addr2line_missing = true;
		}
		free(group);
		free(r->frames);
	}
	free(set->req);
}

/* "function (file:line)", "function (object+0xoff)" or "object+0xoff" */
static char *frame_text(const struct jval *frame)
{
	const char *func = json_str(frame, "function");
	const char *src = json_str(frame, "source");
	const char *obj = json_str(frame, "object");
	const char *off = json_str(frame, "offset");
	char *s = NULL;
	int rc;
	if (func && src)
		rc = asprintf(&s, "%s (%s)", func, src);
	else if (func)
		rc = asprintf(&s, "%s (%s+%s)", func, obj ? obj : "?", off ? off : "?");
	else
		rc = asprintf(&s, "%s+%s", obj ? obj : "?", off ? off : "?");
	if (rc < 0)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	return s;
}

/* Rewrite each site's "stack" strings from its symbolized frames. */
static void restring_sites(struct jval *sites)
{
	for (size_t i = 0; sites && sites->type == J_ARR && i < sites->n; i++) {
		struct jval *stack = json_get(sites->items[i], "stack");
		const struct jval *frames = json_get(sites->items[i], "frames");
		if (!stack || !frames || stack->type != J_ARR || frames->n != stack->n)
			continue;
		for (size_t k = 0; k < frames->n; k++) {
			char *text = frame_text(frames->items[k]);
			json_set_str(stack->items[k], text);
			free(text);
		}
	}
}

static bool symbolize_report(struct jval *leaks)
{
	struct sym_set set = {0};
	sym_collect_sites(&set, json_get(leaks, "leaks"));
	sym_collect_sites(&set, json_get(leaks, "indirect"));
	sym_collect_sites(&set, json_get(leaks, "reachable"));
	symbolize(&set);
	restring_sites(json_get(leaks, "leaks"));
	restring_sites(json_get(leaks, "indirect"));
	restring_sites(json_get(leaks, "reachable"));
	return !set.addr2line_missing;
}

/* ------------------------------------------------------------ suppressions
 * A lost site is suppressed when a frame of its stack matches a pattern of
 * a --suppressions file: its function, its source file (file:line less the
 * line) or its object. Suppressed sites leave "leaks" and "indirect" for
 * "suppressed" (each with the pattern that matched) and their bytes and
 * blocks leave the lost totals, so --fail-on-leak does not count them.
 * Still-reachable sites are not leaks and are left alone. */

static bool frame_suppressed(const struct jval *frame, const char *pattern)
{
	const char *func = json_str(frame, "function");
	const char *obj = json_str(frame, "object");
	const char *src = json_str(frame, "source");
	if ((func && mk_suppression_match(pattern, func)) ||
	    (obj && mk_suppression_match(pattern, obj)))
		return true;
	if (!src)
		return false;
	char *file = strdup(src);
	if (!file)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	char *colon = strrchr(file, ':');
	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1))
		*colon = '\0';
	bool hit = mk_suppression_match(pattern, file);
	free(file);
	return hit;
}

/* The first suppression, in the order given, that covers the site. */
static struct mk_suppression *site_suppression(const struct jval *site, struct mk_suppressions *sup)
{
	const struct jval *frames = json_get(site, "frames");
	size_t n = frames && frames->type == J_ARR ? frames->n : 0;
	for (size_t i = 0; i < sup->n; i++)
		for (size_t k = 0; k < n; k++)
			if (frame_suppressed(frames->items[k], sup->v[i].pattern))
				return &sup->v[i];
	return NULL;
}

/* Moves the suppressed sites of leaks[key] to `out`, each marked with its
 * kind and pattern, and takes them off leaks[total]. */
static void suppress_sites(struct jval *leaks, const char *key, const char *total, const char *kind,
			   struct mk_suppressions *sup, struct jval *out)
{
	struct jval *sites = json_get(leaks, key);
	struct jval *t = json_get(leaks, total);
	if (!sites || sites->type != J_ARR || !t)
		return;
	unsigned long long bytes = 0, blocks = 0;
	size_t kept = 0;
	for (size_t i = 0; i < sites->n; i++) {
		struct jval *site = sites->items[i];
		struct mk_suppression *s = site_suppression(site, sup);
		if (!s) {
			sites->items[kept++] = site;
			continue;
		}
		unsigned long long b = json_u64(site, "bytes"), k = json_u64(site, "blocks");
		s->sites++;
		s->bytes += b;
		s->blocks += k;
		bytes += b;
		blocks += k;
		json_add_str(site, "kind", kind);
		json_add_str(site, "suppression", s->pattern);
		json_append(out, NULL, site);
	}
	sites->n = kept;
	struct jval *tb = json_get(t, "bytes"), *tk = json_get(t, "blocks");
	if (tb && tk) {
		json_set_u64(tb, json_u64(t, "bytes") - bytes);
		json_set_u64(tk, json_u64(t, "blocks") - blocks);
	}
}

/* Adds "suppressed" (the sites), "suppressed_total" and "suppressions"
 * (each pattern with where it was read and what it covered) to leaks. */
static void apply_suppressions(struct jval *leaks, struct mk_suppressions *sup)
{
	struct jval *out = json_new(J_ARR);
	suppress_sites(leaks, "leaks", "definitely_lost", "definitely lost", sup, out);
	suppress_sites(leaks, "indirect", "indirectly_lost", "indirectly lost", sup, out);
	unsigned long long bytes = 0, blocks = 0;
	struct jval *used = json_new(J_ARR);
	for (size_t i = 0; i < sup->n; i++) {
		const struct mk_suppression *s = &sup->v[i];
		struct jval *e = json_new(J_OBJ);
		json_add_str(e, "pattern", s->pattern);
		json_add_str(e, "origin", s->origin);
		json_add_u64(e, "sites", s->sites);
		json_add_u64(e, "blocks", s->blocks);
		json_add_u64(e, "bytes", s->bytes);
		json_append(used, NULL, e);
		bytes += s->bytes;
		blocks += s->blocks;
	}
	json_append(leaks, json_key("suppressed"), out);
	json_append(leaks, json_key("suppressed_total"), json_total(bytes, blocks));
	json_append(leaks, json_key("suppressions"), used);
}

/* ------------------------------------------------------------ text report */

static const char *plural(unsigned long long n)
{
	return n == 1 ? "" : "s";
}

static void print_site(const struct jval *site, const char *what)
{
	unsigned long long bytes = json_u64(site, "bytes"), blocks = json_u64(site, "blocks");
	fprintf(stderr, "\n%llu bytes in %llu block%s %s, allocated at:\n", bytes, blocks,
		plural(blocks), what);
	const struct jval *stack = json_get(site, "stack");
	size_t n = stack && stack->type == J_ARR ? stack->n : 0;
	for (size_t k = 0; k < n; k++)
		fprintf(stderr, "    #%-2zu %s\n", k,
			stack->items[k]->s ? stack->items[k]->s : "?");
	if (!n) /* as libmemkit's own text report says it */
		fprintf(stderr, "    (no stack)\n");
}

static void print_total(const struct jval *leaks, const char *key, const char *label,
			const struct jval *sites)
{
	const struct jval *t = json_get(leaks, key);
	unsigned long long bytes = json_u64(t, "bytes"), blocks = json_u64(t, "blocks");
	size_t n = sites && sites->type == J_ARR ? sites->n : 0;
	fprintf(stderr, "   %s: %llu bytes in %llu block%s from %zu call stack%s\n", label, bytes,
		blocks, plural(blocks), n, plural(n));
}

static void print_sites(const struct jval *sites, const char *what)
{
	for (size_t i = 0; sites && sites->type == J_ARR && i < sites->n; i++)
		print_site(sites->items[i], what);
}

/* LSan's "Suppressions used:" list: the patterns that covered a site. */
static void print_suppressions_used(const struct jval *used)
{
	bool header = false;
	for (size_t i = 0; used && used->type == J_ARR && i < used->n; i++) {
		const struct jval *s = used->items[i];
		if (!json_u64(s, "sites"))
			continue;
		if (!header)
			fputs("\nSuppressions used:\n  sites  blocks       bytes  pattern\n",
			      stderr);
		header = true;
		fprintf(stderr, "  %5llu  %6llu  %10llu  %s (%s)\n", json_u64(s, "sites"),
			json_u64(s, "blocks"), json_u64(s, "bytes"), json_str(s, "pattern"),
			json_str(s, "origin"));
	}
}

static void print_leaks(const struct jval *leaks)
{
	const struct jval *lost = json_get(leaks, "leaks");
	const struct jval *indirect = json_get(leaks, "indirect");
	const struct jval *reach = json_get(leaks, "reachable");
	const char *exe = json_str(leaks, "exe");
	fprintf(stderr, "memkit: leak report for pid %llu (%s)\n", json_u64(leaks, "pid"),
		exe ? exe : "?");
	print_sites(lost, "definitely lost");
	print_sites(indirect, "indirectly lost");
	size_t nreach = reach && reach->type == J_ARR ? reach->n : 0;
	for (size_t i = 0; i < nreach && i < REACHABLE_SHOWN; i++)
		print_site(reach->items[i], "still reachable");
	if (nreach > REACHABLE_SHOWN)
		fprintf(stderr, "\n(%zu more still-reachable call stacks: see --report FILE)\n",
			nreach - REACHABLE_SHOWN);
	fputs("\nLEAK SUMMARY:\n", stderr);
	print_total(leaks, "definitely_lost", "definitely lost", lost);
	print_total(leaks, "indirectly_lost", "indirectly lost", indirect);
	print_total(leaks, "still_reachable", "still reachable", reach);
	const struct jval *sup = json_get(leaks, "suppressed");
	if (sup)
		print_total(leaks, "suppressed_total", "suppressed", sup);
	print_suppressions_used(json_get(leaks, "suppressions"));
}

static void print_stat_line(const struct jval *stats, const char *key, const char *label)
{
	char h[MK_SIZE_BUFSZ];
	unsigned long long v = json_u64(stats, key);
	fprintf(stderr, "  %-22s %14llu  %s\n", label, v, mk_size_human(v, h));
}

static void print_buddy(const struct jval *stats)
{
	const struct jval *blocks = json_get(stats, "buddy_free_blocks");
	const struct jval *unusable = json_get(stats, "unusable_index");
	fputs("  buddy order           ", stderr);
	for (size_t k = 0; blocks && k < blocks->n; k++)
		fprintf(stderr, " %6zu", k);
	fputs("\n  free blocks           ", stderr);
	for (size_t k = 0; blocks && k < blocks->n; k++)
		fprintf(stderr, " %6s", blocks->items[k]->s);
	fputs("\n  unusable index        ", stderr);
	for (size_t k = 0; unusable && k < unusable->n; k++)
		fprintf(stderr, " %6.3f", strtod(unusable->items[k]->s, NULL));
	fputc('\n', stderr);
}

static void print_classes(const struct jval *stats)
{
	const struct jval *classes = json_get(stats, "classes");
	fprintf(stderr, "  %10s %10s %8s %12s %12s %12s\n", "class size", "live", "slabs",
		"slab bytes", "allocs", "frees");
	for (size_t i = 0; classes && classes->type == J_ARR && i < classes->n; i++) {
		const struct jval *c = classes->items[i];
		if (!json_u64(c, "allocs") && !json_u64(c, "slabs"))
			continue;
		fprintf(stderr, "  %10llu %10llu %8llu %12llu %12llu %12llu\n",
			json_u64(c, "block_size"), json_u64(c, "live_blocks"), json_u64(c, "slabs"),
			json_u64(c, "slab_bytes"), json_u64(c, "allocs"), json_u64(c, "frees"));
	}
}

static void print_stats(const struct jval *stats, bool leaks_tracked)
{
	static const char *const sizes[][2] = {
	    {"requested_bytes", "requested"},
	    {"allocated_bytes", "allocated"},
	    {"active_bytes", "active"},
	    {"resident_bytes", "resident"},
	    {"mapped_bytes", "mapped"},
	    {"metadata_bytes", "metadata"},
	    {"internal_frag_bytes", "internal frag."},
	    {"buddy_free_bytes", "buddy free"},
	    {"large_live_bytes", "large live"},
	    {"large_cached_bytes", "large cached"},
	};
	fputs("memkit: allocator statistics\n", stderr);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		print_stat_line(stats, sizes[i][0], sizes[i][1]);
	if (!leaks_tracked)
		fputs("  (requested bytes and internal fragmentation are known with --leaks)\n",
		      stderr);
	const struct jval *ext = json_get(stats, "external_frag");
	fprintf(stderr, "  %-22s %13.1f%%\n", "external frag.",
		ext ? strtod(ext->s, NULL) * 100 : 0);
	print_buddy(stats);
	print_classes(stats);
	fprintf(stderr, "  system calls: mmap %llu, munmap %llu, madvise %llu, mremap %llu\n",
		json_u64(stats, "sys_mmap"), json_u64(stats, "sys_munmap"),
		json_u64(stats, "sys_madvise"), json_u64(stats, "sys_mremap"));
}

/* ------------------------------------------------------------ the library */

static bool is_file(const char *path)
{
	struct stat st;
	return !stat(path, &st) && S_ISREG(st.st_mode);
}

/* libmemkit.so next to the memkit binary (a build tree), else installed */
static char *find_library(const char *given)
{
	char exe[PATH_MAX], *path = NULL;
	if (given)
		return is_file(given) ? realpath(given, NULL) : NULL;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		if (asprintf(&path, "%s/libmemkit.so", exe) > 0 && is_file(path))
			return path;
		free(path);
	}
	if (asprintf(&path, "%s/libmemkit.so", MEMKIT_LIBDIR) > 0 && is_file(path))
		return path;
	return NULL;
}

/* ------------------------------------------------------------ the child */

static void set_env_or_die(const char *name, const char *value)
{
	if (setenv(name, value, 1))
		_exit(EXIT_MEMKIT_FAILED);
}

/* LD_PRELOAD with libmemkit first, before what the caller had */
static void set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *v = NULL;
	if (old && *old) {
		if (asprintf(&v, "%s:%s", lib, old) < 0)
			_exit(EXIT_MEMKIT_FAILED);
		set_env_or_die("LD_PRELOAD", v);
		free(v);
	} else {
		set_env_or_die("LD_PRELOAD", lib);
	}
}

/* With --leaks, libgcc_s (the unwinder) is preloaded after libmemkit when
 * it can be loaded: libmemkit finds it mapped at the first allocation, so
 * the blocks that libraries' constructors allocate before libmemkit's own
 * constructor runs (where it would load the unwinder) get call stacks too. */
static void set_leak_preload(const char *lib)
{
	static const char unwinder[] = "libgcc_s.so.1";
	char *v = NULL;
	if (!dlopen(unwinder, RTLD_LAZY)) {
		set_preload(lib);
		return;
	}
	if (asprintf(&v, "%s:%s", lib, unwinder) < 0)
		_exit(EXIT_MEMKIT_FAILED);
	set_preload(v);
	free(v);
}

static noreturn void exec_child(const struct run_opts *o, const char *lib, const char *tmp)
{
	char pid[32];
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	if (o->leaks)
		set_leak_preload(lib);
	else
		set_preload(lib);
	if (o->leaks)
		set_env_or_die("MEMKIT_LEAK", "1");
	if (o->stats)
		set_env_or_die("MEMKIT_STATS", "1");
	if (tmp) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		set_env_or_die("MEMKIT_REPORT", tmp);
		set_env_or_die("MEMKIT_TARGET_PID", pid);
	}
	execvp(o->cmd[0], o->cmd);
	int err = errno;
	mk_warn("cannot run '%s'", o->cmd[0]);
	_exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

static pid_t child_pid;

/* what memkit receives, the program gets (SIGUSR2 toggles a leak window) */
static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static void setup_parent_signals(void)
{
	/* as system(3) does: the terminal's ^C and ^\ reach the program, and
	 * memkit stays to print the report */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
}

/* the program's exit status as a shell reports it */
static int run_child(const struct run_opts *o, const char *lib, const char *tmp, bool *signaled)
{
	child_pid = fork();
	if (child_pid < 0)
		mk_err(EXIT_MEMKIT_FAILED, "fork");
	if (child_pid == 0)
		exec_child(o, lib, tmp);
	setup_parent_signals();
	int status;
	while (waitpid(child_pid, &status, 0) < 0)
		if (errno != EINTR)
			mk_err(EXIT_MEMKIT_FAILED, "waitpid");
	*signaled = WIFSIGNALED(status);
	if (*signaled) {
		if (tmp)
			mk_warnx("%s killed by signal %d (%s): no report", o->cmd[0],
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* ------------------------------------------------------------ the report */

static char *make_temp_report(void)
{
	const char *dir = getenv("TMPDIR");
	char *path = NULL;
	if (asprintf(&path, "%s/memkit-run-XXXXXX.json", dir && *dir ? dir : "/tmp") < 0)
		mk_err(EXIT_MEMKIT_FAILED, "out of memory");
	int fd = mkstemps(path, 5);
	if (fd < 0)
		mk_err(EXIT_MEMKIT_FAILED, "cannot create %s", path);
	close(fd);
	return path;
}

static bool write_report_file(const char *path, const struct jval *report)
{
	FILE *f = fopen(path, "we");
	if (!f) {
		mk_warn("cannot write %s", path);
		return false;
	}
	json_write(f, report);
	fputc('\n', f);
	if (fclose(f)) {
		mk_warn("cannot write %s", path);
		return false;
	}
	return true;
}

/* Read the child's report, name its frames, show or save it. Returns the
 * number of leaked blocks (definitely and indirectly lost, as valgrind
 * counts leak errors, less the suppressed ones), or -1 when there was no
 * report. */
static long long handle_report(struct run_opts *o, const char *tmp)
{
	struct jval *report = json_read_file(tmp);
	if (!report || report->type != J_OBJ) {
		mk_warnx("the program wrote no report (it ended through _exit, exec or a crash?)");
		json_free(report);
		return -1;
	}
	struct jval *leaks = json_get(report, "leaks");
	struct jval *stats = json_get(report, "stats");
	bool have_leaks = leaks && leaks->type == J_OBJ;
	if (have_leaks && !symbolize_report(leaks))
		mk_warnx("addr2line (binutils) did not run: frames have no file:line");
	if (have_leaks && o->sup.n)
		apply_suppressions(leaks, &o->sup);
	if (o->report) {
		write_report_file(o->report, report);
	} else {
		if (stats && stats->type == J_OBJ)
			print_stats(stats, have_leaks);
		if (have_leaks)
			print_leaks(leaks);
	}
	long long lost = have_leaks
			     ? (long long)(json_u64(json_get(leaks, "definitely_lost"), "blocks") +
					   json_u64(json_get(leaks, "indirectly_lost"), "blocks"))
			     : 0;
	json_free(report);
	return lost;
}

/* ------------------------------------------------------------ options */

static noreturn void usage(void)
{
	fputs("Usage:\n memkit run [options] [--] <command> [<argument>...]\n\n"
	      "Run a program on libmemkit; report allocator statistics and leaks at its exit.\n\n"
	      "Options:\n"
	      "     --stats              allocator statistics (sizes, classes, buddy, syscalls)\n"
	      "     --leaks              track allocation call stacks; report blocks still live\n"
	      "     --report <file>      write the report as JSON to <file> instead of stderr\n"
	      "     --fail-on-leak[=<n>] exit with <n> (default 3) if the program exited 0\n"
	      "                          but leaked (blocks definitely or indirectly lost)\n"
	      "     --suppressions <file>\n"
	      "                          leaks not to report nor count: 'leak:PATTERN' lines\n"
	      "                          (LeakSanitizer's format) matched against each\n"
	      "                          frame's function, source file and object\n"
	      "     --lib <path>         the libmemkit.so to preload\n"
	      " -h, --help               display this help\n"
	      " -V, --version            display version\n\n"
	      "SIGUSR2 sent to memkit or to the program opens a leak window, a second one\n"
	      "reports the blocks allocated in it and still live (on the program's stderr).\n"
	      "See memkit-run(1); 'memkit leak PID' watches a running process for growth.\n",
	      stdout);
	exit(0);
}

enum {
	OPT_STATS = CHAR_MAX + 1,
	OPT_LEAKS,
	OPT_REPORT,
	OPT_FAIL_ON_LEAK,
	OPT_SUPPRESSIONS,
	OPT_LIB
};

static void parse_options(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
	    {"stats", no_argument, NULL, OPT_STATS},
	    {"leaks", no_argument, NULL, OPT_LEAKS},
	    {"report", required_argument, NULL, OPT_REPORT},
	    {"fail-on-leak", optional_argument, NULL, OPT_FAIL_ON_LEAK},
	    {"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
	    {"lib", required_argument, NULL, OPT_LIB},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 0; /* "+": the command's own options are not ours */
	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STATS:
			o->stats = true;
			break;
		case OPT_LEAKS:
			o->leaks = true;
			break;
		case OPT_REPORT:
			o->report = optarg;
			break;
		case OPT_FAIL_ON_LEAK:
			o->fail_on_leak = EXIT_LEAKED;
			if (optarg) {
				uint64_t code = mk_strtou64_or_err(optarg, "exit code");
				if (code < 1 || code > 255)
					mk_errx(2, "invalid exit code: '%s'", optarg);
				o->fail_on_leak = (int)code;
			}
			o->leaks = true;
			break;
		case OPT_SUPPRESSIONS:
			mk_suppressions_load(&o->sup, optarg);
			o->leaks = true;
			break;
		case OPT_LIB:
			o->lib = optarg;
			break;
		case 'h':
			usage();
		case 'V':
			mk_print_version();
		default:
			mk_errtryhelp();
		}
	}
	if (optind >= argc) {
		mk_warnx("no command given");
		mk_errtryhelp();
	}
	o->cmd = argv + optind;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	parse_options(argc, argv, &o);
	char *lib = find_library(o.lib);
	if (!lib)
		mk_errx(EXIT_MEMKIT_FAILED, "cannot find libmemkit.so (next to memkit or in %s)",
			MEMKIT_LIBDIR);
	char *tmp = o.stats || o.leaks ? make_temp_report() : NULL;
	fflush(NULL);
	bool signaled;
	int status = run_child(&o, lib, tmp, &signaled);
	/* an exec failure (126, 127) was reported by the child already */
	bool expect_report =
	    tmp && !signaled && status != EXIT_CANNOT_EXEC && status != EXIT_NOT_FOUND;
	long long lost = expect_report ? handle_report(&o, tmp) : 0;
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(lib);
	mk_suppressions_free(&o.sup);
	if (o.fail_on_leak && status == 0 && lost > 0)
		return o.fail_on_leak;
	return status;
}
