/* common.c - the helpers every memkit subcommand shares: err.h-style
 * messages with a "memkit: <cmd>: " prefix, the common and table options,
 * number parsing, human sizes and libsmartcols tables (see cli.h).
 * May call libc, libsmartcols and procfs.c (for --proc-root).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "cli.h"
#include "procfs.h"

/* ------------------------------------------------------------ messages */

static const char *cmdname;

void mk_set_cmdname(const char *name)
{
	cmdname = name;
}

const char *mk_cmdname(void)
{
	return cmdname;
}

static void vwarn_prefixed(int errnum, const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("memkit: ", stderr);
	if (cmdname)
		fprintf(stderr, "%s: ", cmdname);
	/* every caller has run va_start: the analyzer does not follow them */
	vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	if (errnum)
		fprintf(stderr, ": %s", strerror(errnum));
	fputc('\n', stderr);
}

void mk_warn(const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;

	va_start(ap, fmt);
	vwarn_prefixed(errnum, fmt, ap);
	va_end(ap);
}

void mk_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn_prefixed(0, fmt, ap);
	va_end(ap);
}

void mk_err(int status, const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;

	va_start(ap, fmt);
	vwarn_prefixed(errnum, fmt, ap);
	va_end(ap);
	exit(status);
}

void mk_errx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn_prefixed(0, fmt, ap);
	va_end(ap);
	exit(status);
}

void mk_errtryhelp(void)
{
	if (cmdname)
		fprintf(stderr, "Try 'memkit %s --help' for more information.\n", cmdname);
	else
		fputs("Try 'memkit --help' for more information.\n", stderr);
	exit(2);
}

void mk_no_operands(int argc, char **argv)
{
	if (optind < argc) {
		mk_warnx("unexpected argument: '%s'", argv[optind]);
		mk_errtryhelp();
	}
}

void mk_print_version(void)
{
	printf("memkit %s\n", MEMKIT_VERSION);
	exit(0);
}

/* ------------------------------------------------------------ options */

bool mk_common_parse_opt(int c, const char *arg)
{
	switch (c) {
	case MK_OPT_PROC_ROOT:
		mk_proc_set_root(arg);
		return true;
	case 'V':
		mk_print_version();
	default:
		return false;
	}
}

bool mk_output_parse_opt(int c, const char *arg, struct mk_output *out)
{
	switch (c) {
	case 'J':
		out->json = true;
		return true;
	case 'r':
		out->raw = true;
		return true;
	case 'n':
		out->noheadings = true;
		return true;
	case 'o':
		out->columns = arg;
		return true;
	case 'b':
		out->bytes = true;
		return true;
	default:
		return false;
	}
}

int mk_parse_u64(const char *str, uint64_t *out)
{
	char *end = NULL;

	if (!str || !*str || *str == '-' || *str == '+')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(str, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == str || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

uint64_t mk_strtou64_or_err(const char *str, const char *what)
{
	uint64_t v;

	if (mk_parse_u64(str, &v) < 0) {
		mk_warnx("invalid %s: '%s'", what, str);
		mk_errtryhelp();
	}
	return v;
}

double mk_strtod_or_err(const char *str, const char *what)
{
	char *end = NULL;

	errno = 0;
	double v = str && *str ? strtod(str, &end) : NAN;
	if (errno || !end || *end || !isfinite(v)) {
		mk_warnx("invalid %s: '%s'", what, str ? str : "");
		mk_errtryhelp();
	}
	return v;
}

pid_t mk_strtopid_or_err(const char *str)
{
	uint64_t v;

	if (mk_parse_u64(str, &v) < 0 || v == 0 || v > INT_MAX) {
		mk_warnx("invalid PID: '%s'", str);
		mk_errtryhelp();
	}
	return (pid_t)v;
}

/* The multiplier of a size suffix: K, KB, KiB (all 1024), up to E. */
static int size_suffix_shift(const char *suffix, unsigned *shift)
{
	static const char units[] = "KMGTPE";
	const char *p;

	if (!*suffix) {
		*shift = 0;
		return 0;
	}
	if ((*suffix == 'B' || *suffix == 'b') && !suffix[1]) {
		*shift = 0;
		return 0;
	}
	p = strchr(units, *suffix >= 'a' ? *suffix - 'a' + 'A' : *suffix);
	if (!p || !*suffix)
		return -EINVAL;
	if (suffix[1] && strcmp(suffix + 1, "B") != 0 && strcmp(suffix + 1, "iB") != 0)
		return -EINVAL;
	*shift = 10 * (unsigned)(p - units + 1);
	return 0;
}

int mk_parse_size(const char *str, uint64_t *bytes)
{
	char *end = NULL;
	unsigned shift;

	if (!str || !*str || *str == '-' || *str == '+')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(str, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == str || size_suffix_shift(end, &shift) < 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = (uint64_t)v << shift;
	return 0;
}

/* ------------------------------------------------------------ sizes */

/* util-linux style: the largest binary unit that leaves an integer part,
 * one decimal rounded to nearest, ".0" dropped: 1536 -> "1.5K". */
char *mk_size_human(uint64_t bytes, char buf[MK_SIZE_BUFSZ])
{
	static const char units[] = "BKMGTPE";
	unsigned i = 0;

	while (i + 1 < sizeof(units) - 1 && bytes >= (1ULL << (10 * (i + 1))))
		i++;
	if (i == 0) {
		snprintf(buf, MK_SIZE_BUFSZ, "%" PRIu64 "B", bytes);
		return buf;
	}
	uint64_t unit = 1ULL << (10 * i);
	uint64_t whole = bytes / unit;
	/* tenths, rounded to nearest from the remainder */
	uint64_t tenths = ((bytes % unit) * 10 + unit / 2) / unit;
	if (tenths == 10) {
		whole++;
		tenths = 0;
	}
	if (whole == 1024 && i + 1 < sizeof(units) - 1) {
		whole = 1;
		i++;
	}
	if (tenths)
		snprintf(buf, MK_SIZE_BUFSZ, "%" PRIu64 ".%" PRIu64 "%c", whole, tenths, units[i]);
	else
		snprintf(buf, MK_SIZE_BUFSZ, "%" PRIu64 "%c", whole, units[i]);
	return buf;
}

/* ------------------------------------------------------------ tables */

static int column_name_to_id(const struct mk_colinfo *infos, size_t ninfos, const char *name,
			     size_t len)
{
	for (size_t i = 0; i < ninfos; i++)
		if (strlen(infos[i].name) == len && !strncasecmp(infos[i].name, name, len))
			return (int)i;
	return -1;
}

static void add_column_id(struct mk_table *t, int id)
{
	if (t->ncols >= MK_MAX_COLUMNS)
		mk_errx(2, "too many output columns");
	t->cols[t->ncols++] = id;
}

/* Fill t->cols from "-o LIST" ("+LIST" appends to the defaults). */
static void select_columns(struct mk_table *t, const char *list, const int *defaults,
			   size_t ndefaults)
{
	if (!list || *list == '+')
		for (size_t i = 0; i < ndefaults; i++)
			add_column_id(t, defaults[i]);
	if (!list)
		return;
	if (*list == '+')
		list++;
	while (*list) {
		size_t len = strcspn(list, ",");
		int id = column_name_to_id(t->infos, t->ninfos, list, len);
		if (id < 0) {
			mk_warnx("unknown column: %.*s", (int)len, list);
			mk_errtryhelp();
		}
		add_column_id(t, id);
		list += len;
		if (*list == ',')
			list++;
	}
}

static int json_type_of(const struct mk_table *t, enum mk_coltype type)
{
	switch (type) {
	case MK_COL_SIZE:
		return t->out->bytes ? SCOLS_JSON_NUMBER : SCOLS_JSON_STRING;
	case MK_COL_NUMBER:
	case MK_COL_FLOAT:
		return SCOLS_JSON_NUMBER;
	case MK_COL_BOOL:
		return SCOLS_JSON_BOOLEAN;
	default:
		return SCOLS_JSON_STRING;
	}
}

void mk_table_init(struct mk_table *t, const struct mk_output *out, const char *name,
		   const struct mk_colinfo *infos, size_t ninfos, const int *defaults,
		   size_t ndefaults)
{
	memset(t, 0, sizeof(*t));
	t->infos = infos;
	t->ninfos = ninfos;
	t->out = out;
	select_columns(t, out->columns, defaults, ndefaults);

	scols_init_debug(0);
	t->tb = scols_new_table();
	if (!t->tb)
		mk_err(1, "cannot create output table");
	scols_table_enable_json(t->tb, out->json);
	scols_table_enable_raw(t->tb, out->raw);
	scols_table_enable_noheadings(t->tb, out->noheadings);
	if (name)
		scols_table_set_name(t->tb, name);
	for (size_t i = 0; i < t->ncols; i++) {
		const struct mk_colinfo *ci = &infos[t->cols[i]];
		struct libscols_column *cl =
		    scols_table_new_column(t->tb, ci->name, ci->whint, ci->flags);
		if (!cl)
			mk_err(1, "cannot create output column");
		scols_column_set_json_type(cl, json_type_of(t, ci->type));
	}
}

struct libscols_line *mk_table_new_line(struct mk_table *t)
{
	struct libscols_line *ln = scols_table_new_line(t->tb, NULL);
	if (!ln)
		mk_err(1, "cannot create output line");
	return ln;
}

/* The position of column id in the output, or -1 when not selected. */
static int column_position(const struct mk_table *t, int id)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i] == id)
			return (int)i;
	return -1;
}

bool mk_table_has_column(const struct mk_table *t, int id)
{
	return column_position(t, id) >= 0;
}

void mk_table_set_str(struct mk_table *t, struct libscols_line *ln, int id, const char *s)
{
	int pos = column_position(t, id);

	if (pos >= 0 && scols_line_set_data(ln, (size_t)pos, s ? s : "") != 0)
		mk_err(1, "cannot set output cell");
}

void mk_table_set_size(struct mk_table *t, struct libscols_line *ln, int id, uint64_t bytes)
{
	char buf[MK_SIZE_BUFSZ];

	if (t->out->bytes)
		snprintf(buf, sizeof(buf), "%" PRIu64, bytes);
	else
		mk_size_human(bytes, buf);
	mk_table_set_str(t, ln, id, buf);
}

void mk_table_set_u64(struct mk_table *t, struct libscols_line *ln, int id, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	mk_table_set_str(t, ln, id, buf);
}

void mk_table_set_i64(struct mk_table *t, struct libscols_line *ln, int id, int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	mk_table_set_str(t, ln, id, buf);
}

void mk_table_set_double(struct mk_table *t, struct libscols_line *ln, int id, double v,
			 int decimals)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	mk_table_set_str(t, ln, id, buf);
}

void mk_table_set_bool(struct mk_table *t, struct libscols_line *ln, int id, bool v)
{
	mk_table_set_str(t, ln, id, v ? "yes" : "no");
}

int mk_table_print(struct mk_table *t)
{
	int rc = scols_print_table(t->tb);

	if (rc)
		mk_warnx("cannot print table");
	if (fflush(stdout) != 0) {
		mk_warn("write error");
		rc = -1;
	}
	return rc ? 1 : 0;
}

void mk_table_free(struct mk_table *t)
{
	scols_unref_table(t->tb);
	t->tb = NULL;
}

void mk_colinfo_usage(FILE *out, const struct mk_colinfo *infos, size_t ninfos)
{
	fputs("\nAvailable output columns:\n", out);
	for (size_t i = 0; i < ninfos; i++)
		fprintf(out, " %14s  %s\n", infos[i].name, infos[i].help);
}

/* ------------------------------------------------------------ JSON */

static bool json_need_comma;

void mk_json_begin(void)
{
	fputs("{\n", stdout);
	json_need_comma = false;
}

static void json_separator(void)
{
	if (json_need_comma)
		fputs(",\n", stdout);
	json_need_comma = true;
}

/* libsmartcols prints "{\n   "name": [...]\n}\n"; keep the middle. */
int mk_table_print_member(struct mk_table *t)
{
	char *data = NULL;

	if (scols_print_table_to_string(t->tb, &data) != 0 || !data) {
		mk_warnx("cannot print table");
		free(data);
		return 1;
	}
	char *body = strchr(data, '\n');
	char *end = strrchr(data, '}');
	json_separator();
	if (body && end && end > body) {
		while (end > body && end[-1] == '\n')
			end--;
		fwrite(body + 1, 1, (size_t)(end - body - 1), stdout);
	}
	free(data);
	return 0;
}

void mk_json_u64(const char *key, uint64_t v)
{
	json_separator();
	printf("   \"%s\": %" PRIu64, key, v);
}

void mk_json_str(const char *key, const char *v)
{
	json_separator();
	printf("   \"%s\": \"", key);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			putchar('\\');
		if ((unsigned char)*v < 0x20)
			printf("\\u%04x", *v);
		else
			putchar(*v);
	}
	putchar('"');
}

void mk_json_end(void)
{
	fputs("\n}\n", stdout);
}

/* ------------------------------------------------------------ misc */

bool mk_isatty_stdout(void)
{
	return isatty(STDOUT_FILENO) == 1;
}

bool mk_isatty_stderr(void)
{
	return isatty(STDERR_FILENO) == 1;
}

double mk_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
