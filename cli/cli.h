/* cli.h - what every memkit subcommand shares: messages, option parsing,
 * size formatting and libsmartcols tables. Implemented in cli/common.c.
 * /proc and /sys readers are in cli/procfs.h. May call libc and libsmartcols.
 *
 * API guide for subcommand authors (stable: names are only ever added):
 *
 *  Messages (util-linux err.h style, prefixed "memkit: <cmd>: "; the
 *  dispatcher sets <cmd> with mk_set_cmdname before calling cmd_<name>):
 *	mk_warn(fmt, ...)		message + ": strerror(errno)" on stderr
 *	mk_warnx(fmt, ...)		message only
 *	mk_err(status, fmt, ...)	mk_warn, then exit(status)
 *	mk_errx(status, fmt, ...)	mk_warnx, then exit(status)
 *	mk_errtryhelp()			"Try 'memkit <cmd> --help'..." and exit(2)
 *
 *  Options: put MK_COMMON_LONGOPTS (--help --version --proc-root) and, for a
 *  table command, MK_OUTPUT_LONGOPTS + MK_OUTPUT_SHORTOPTS ("Jrno:b") in the
 *  getopt_long tables; in the switch's default branch call
 *	if (mk_output_parse_opt(c, optarg, &out)) break;   (-J -r -n -o -b)
 *	if (mk_common_parse_opt(c, optarg)) break;         (--proc-root, -V)
 *	mk_errtryhelp();
 *  and after the loop, for a command without operands, mk_no_operands(argc,
 *  argv) (a stray operand: "unexpected argument", exit 2).
 *  Long-only options of a command: an enum starting at CHAR_MAX + 1 (values
 *  from MK_OPT_COMMON_FIRST up are taken by the common options).
 *  Numbers: mk_strtou64_or_err(str, "what") / mk_strtod_or_err /
 *  mk_strtopid_or_err exit 2 with "invalid <what>: '<str>'";
 *  mk_parse_size("4K"|"1MiB"|"123", &bytes) returns 0 or -EINVAL/-ERANGE.
 *
 *  Sizes: mk_size_human(bytes, buf) writes util-linux-style "1.5G", "4K",
 *  "512B" (binary units); MK_SIZE_BUFSZ is enough for any value.
 *
 *  Tables: describe columns once,
 *	enum { COL_NAME, COL_SIZE };
 *	static const struct mk_colinfo infos[] = {
 *		[COL_NAME] = {"NAME", 0.3, 0, "cache name", MK_COL_STRING},
 *		[COL_SIZE] = {"SIZE", 6, SCOLS_FL_RIGHT, "bytes used", MK_COL_SIZE},
 *	};
 *	static const int defaults[] = {COL_NAME, COL_SIZE};
 *  then
 *	struct mk_table t;
 *	mk_table_init(&t, &out, "slabs", infos, ARRAY_SIZE(infos),
 *		      defaults, ARRAY_SIZE(defaults));	(exits 2 on bad -o)
 *	struct libscols_line *ln = mk_table_new_line(&t);
 *	mk_table_set_str(&t, ln, COL_NAME, "dentry");
 *	mk_table_set_size(&t, ln, COL_SIZE, 4096);
 *	rc = mk_table_print(&t); mk_table_free(&t);
 *  Setting a column the user did not select with -o is a no-op. Sizes are
 *  human unless -b; with -b (and for MK_COL_NUMBER/MK_COL_FLOAT always)
 *  JSON gets numbers. mk_colinfo_usage(stdout, infos, n) lists columns for
 *  --help. Column lists accept "+LIST" to append to the defaults.
 *
 *  Several tables in one JSON document (e.g. devices + processes):
 *	mk_json_begin(); mk_table_print_member(&t1); mk_json_u64("n", 1);
 *	mk_table_print_member(&t2); mk_json_end();
 *
 *  Usage texts: end with MK_OUTPUT_USAGE (table commands) and
 *  MK_COMMON_USAGE. Mark functions that exit with MK_NORETURN (the GNU
 *  attribute, which cppcheck understands; C11 noreturn also works).
 *  The dispatcher sets argv[0] to "memkit <cmd>" so getopt's own messages
 *  read "memkit <cmd>: invalid option -- 'x'".
 */
#ifndef MEMKIT_CLI_CLI_H
#define MEMKIT_CLI_CLI_H

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>
#include <sys/types.h>
#include <libsmartcols/libsmartcols.h>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define MK_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* The GNU spelling: analysers that skip system headers (cppcheck) know it. */
#define MK_NORETURN __attribute__((__noreturn__))

/* ------------------------------------------------------------ messages */
void mk_set_cmdname(const char *name);
const char *mk_cmdname(void);
void mk_warn(const char *fmt, ...) MK_PRINTF(1, 2);
void mk_warnx(const char *fmt, ...) MK_PRINTF(1, 2);
MK_NORETURN void mk_err(int status, const char *fmt, ...) MK_PRINTF(2, 3);
MK_NORETURN void mk_errx(int status, const char *fmt, ...) MK_PRINTF(2, 3);
MK_NORETURN void mk_errtryhelp(void);
/* after getopt: a command that takes no operands stops at the first one */
void mk_no_operands(int argc, char **argv);
MK_NORETURN void mk_print_version(void);

/* ------------------------------------------------------------ options */
enum {
	MK_OPT_COMMON_FIRST = CHAR_MAX + 100,
	MK_OPT_PROC_ROOT = MK_OPT_COMMON_FIRST,
};

#define MK_COMMON_LONGOPTS                                                     \
	{"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, \
	{                                                                      \
		"proc-root", required_argument, NULL, MK_OPT_PROC_ROOT         \
	}

/* Help lines for the common options, to end a usage() text. */
#define MK_COMMON_USAGE                                                               \
	"     --proc-root <dir>  read /proc and /sys under <dir> (a recorded dump)\n" \
	" -h, --help             display this help\n"                                 \
	" -V, --version          display version\n"

bool mk_common_parse_opt(int c, const char *arg);

struct mk_output {
	bool json;	     /* -J: JSON, numbers as numbers in -b mode */
	bool raw;	     /* -r: raw, space separated */
	bool noheadings;     /* -n */
	bool bytes;	     /* -b: sizes in bytes */
	const char *columns; /* -o LIST, NULL for the defaults */
};

#define MK_OUTPUT_SHORTOPTS "Jrno:b"
#define MK_OUTPUT_LONGOPTS                                                                    \
	{"json", no_argument, NULL, 'J'}, {"raw", no_argument, NULL, 'r'},                    \
	    {"noheadings", no_argument, NULL, 'n'}, {"output", required_argument, NULL, 'o'}, \
	{                                                                                     \
		"bytes", no_argument, NULL, 'b'                                               \
	}

#define MK_OUTPUT_USAGE                                                           \
	" -J, --json             use JSON output format\n"                        \
	" -r, --raw              use raw output format\n"                         \
	" -n, --noheadings       don't print headings\n"                          \
	" -o, --output <list>    output columns (+list appends to the default)\n" \
	" -b, --bytes            print sizes in bytes rather than in human readable format\n"

bool mk_output_parse_opt(int c, const char *arg, struct mk_output *out);

uint64_t mk_strtou64_or_err(const char *str, const char *what);
double mk_strtod_or_err(const char *str, const char *what);
/* the monotonic clock in seconds, for sampling commands */
double mk_now_seconds(void);
pid_t mk_strtopid_or_err(const char *str);
int mk_parse_u64(const char *str, uint64_t *out);
int mk_parse_size(const char *str, uint64_t *bytes);

/* ------------------------------------------------------------ sizes */
#define MK_SIZE_BUFSZ 48
char *mk_size_human(uint64_t bytes, char buf[MK_SIZE_BUFSZ]);

/* ------------------------------------------------------------ tables */
enum mk_coltype {
	MK_COL_STRING,
	MK_COL_SIZE,   /* bytes: human unless -b */
	MK_COL_NUMBER, /* an integer count: always a JSON number */
	MK_COL_FLOAT,  /* a decimal: always a JSON number */
	MK_COL_BOOL,   /* JSON true/false */
};

struct mk_colinfo {
	const char *name;
	double whint;
	int flags; /* SCOLS_FL_* */
	const char *help;
	enum mk_coltype type;
};

#define MK_MAX_COLUMNS 64

struct mk_table {
	struct libscols_table *tb;
	const struct mk_colinfo *infos;
	size_t ninfos;
	const struct mk_output *out;
	size_t ncols;
	int cols[MK_MAX_COLUMNS]; /* selected column ids, in output order */
};

void mk_table_init(struct mk_table *t, const struct mk_output *out, const char *name,
		   const struct mk_colinfo *infos, size_t ninfos, const int *defaults,
		   size_t ndefaults);
struct libscols_line *mk_table_new_line(struct mk_table *t);
bool mk_table_has_column(const struct mk_table *t, int id);
void mk_table_set_str(struct mk_table *t, struct libscols_line *ln, int id, const char *s);
void mk_table_set_size(struct mk_table *t, struct libscols_line *ln, int id, uint64_t bytes);
void mk_table_set_u64(struct mk_table *t, struct libscols_line *ln, int id, uint64_t v);
void mk_table_set_i64(struct mk_table *t, struct libscols_line *ln, int id, int64_t v);
void mk_table_set_double(struct mk_table *t, struct libscols_line *ln, int id, double v,
			 int decimals);
void mk_table_set_bool(struct mk_table *t, struct libscols_line *ln, int id, bool v);
int mk_table_print(struct mk_table *t);
void mk_table_free(struct mk_table *t);
void mk_colinfo_usage(FILE *out, const struct mk_colinfo *infos, size_t ninfos);

/* Several tables (and plain numbers) as members of one JSON object:
 *	mk_json_begin(); mk_table_print_member(&t1); mk_json_u64("swappiness", 60);
 *	mk_table_print_member(&t2); mk_json_end();
 * each table appears as "<table name>": [ rows ]. */
void mk_json_begin(void);
int mk_table_print_member(struct mk_table *t);
void mk_json_u64(const char *key, uint64_t v);
void mk_json_str(const char *key, const char *v);
void mk_json_end(void);

/* ------------------------------------------------------------ misc */
bool mk_isatty_stdout(void);
bool mk_isatty_stderr(void);

#endif
