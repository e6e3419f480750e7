/* cmd-faults.c - memkit faults: minor and major page faults of a process,
 * as totals and rates. For a PID the counts come from /proc/PID/stat, once
 * (rates averaged since the process started) or sampled every --interval
 * seconds; for "-- CMD ARGS" memkit runs the command and reports what
 * wait4(2) says it used, with optional samples while it runs.
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

/* Exit statuses with "-- CMD", as time(1) and env(1). */
#define EXIT_CANNOT_INVOKE 126
#define EXIT_ENOENT	   127

struct fault_counts {
	uint64_t minflt, majflt;   /* the process itself */
	uint64_t cminflt, cmajflt; /* its waited-for children */
};

struct fault_sample {
	double elapsed; /* seconds since the first sample or since start */
	struct fault_counts n;
	double min_rate, maj_rate; /* faults per second over the period */
};

struct sample_list {
	size_t n, cap;
	struct fault_sample *s;
};

enum {
	COL_TIME,
	COL_MINFLT,
	COL_MAJFLT,
	COL_MINRATE,
	COL_MAJRATE,
	COL_CMINFLT,
	COL_CMAJFLT,
};

static const struct mk_colinfo infos[] = {
    [COL_TIME] = {"TIME", 6, SCOLS_FL_RIGHT,
		  "seconds covered (since start, or since the first sample)", MK_COL_FLOAT},
    [COL_MINFLT] = {"MINFLT", 8, SCOLS_FL_RIGHT,
		    "minor faults: page mapped without I/O (zero page, page cache)", MK_COL_NUMBER},
    [COL_MAJFLT] = {"MAJFLT", 8, SCOLS_FL_RIGHT, "major faults: page read from disk or swap",
		    MK_COL_NUMBER},
    [COL_MINRATE] = {"MINFLT/S", 9, SCOLS_FL_RIGHT, "minor faults per second in the period",
		     MK_COL_FLOAT},
    [COL_MAJRATE] = {"MAJFLT/S", 9, SCOLS_FL_RIGHT, "major faults per second in the period",
		     MK_COL_FLOAT},
    [COL_CMINFLT] = {"CMINFLT", 8, SCOLS_FL_RIGHT, "minor faults of waited-for children",
		     MK_COL_NUMBER},
    [COL_CMAJFLT] = {"CMAJFLT", 8, SCOLS_FL_RIGHT, "major faults of waited-for children",
		     MK_COL_NUMBER},
};

static const int default_columns[] = {COL_TIME, COL_MINFLT, COL_MAJFLT, COL_MINRATE, COL_MAJRATE};

struct faults_opts {
	double interval; /* 0: no sampling */
	uint64_t count;	 /* samples; 0 = until the process ends or SIGINT */
	struct mk_output out;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static noreturn void usage(void)
{
	fputs("\nUsage:\n memkit faults [options] <pid>\n memkit faults [options] -- <command> "
	      "[args...]\n\n"
	      "Show minor and major page faults of a process, totals and rates.\n"
	      "With a command, run it and report its faults; memkit then exits with the\n"
	      "command's status (126: cannot run it, 127: not found).\n\n"
	      "Options:\n"
	      " -i, --interval <secs>  sample every <secs> seconds (decimals allowed)\n"
	      " -c, --count <n>        stop after <n> samples (default: until the process\n"
	      "                        exits or Ctrl-C)\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

/* ------------------------------------------------------------ sampling */

static void sleep_seconds(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
		;
}

/* Field n (1-based, as proc(5) numbers them) of a stat line, counted after
 * the ")" that ends the command name, which may hold spaces. */
static int stat_field_u64(const char *stat, int n, uint64_t *v)
{
	const char *p = strrchr(stat, ')');

	for (int field = 2; p && field < n; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	*v = strtoull(p + 1, NULL, 10);
	return 0;
}

static int read_fault_counts(pid_t pid, struct fault_counts *fc, uint64_t *starttime)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/stat", (int)pid);
	char *stat = mk_proc_read_file(rel, NULL);
	if (!stat)
		return -1;
	int rc = stat_field_u64(stat, 10, &fc->minflt) | stat_field_u64(stat, 11, &fc->cminflt) |
		 stat_field_u64(stat, 12, &fc->majflt) | stat_field_u64(stat, 13, &fc->cmajflt);
	if (starttime)
		rc |= stat_field_u64(stat, 22, starttime);
	free(stat);
	if (rc)
		errno = EINVAL;
	return rc ? -1 : 0;
}

/* Seconds the process has run: uptime less its start time (in clock ticks). */
static double process_age(uint64_t starttime)
{
	char *text = mk_proc_read_file("/proc/uptime", NULL);
	double age = 0;

	if (text) {
		age = strtod(text, NULL) - (double)starttime / (double)sysconf(_SC_CLK_TCK);
		free(text);
	}
	return age > 0 ? age : 0;
}

static void sample_list_add(struct sample_list *l, const struct fault_sample *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct fault_sample *p = realloc(l->s, cap * sizeof(*p));
		if (!p)
			mk_err(1, "cannot allocate memory");
		l->s = p;
		l->cap = cap;
	}
	l->s[l->n++] = *s;
}

static double rate(uint64_t now, uint64_t before, double seconds)
{
	return seconds > 0 && now >= before ? (double)(now - before) / seconds : 0.0;
}

/* Adds a sample whose rates cover the time since the previous one. */
static void add_sample(struct sample_list *l, double elapsed, const struct fault_counts *fc)
{
	struct fault_sample s = {.elapsed = elapsed, .n = *fc};

	if (l->n > 0) {
		const struct fault_sample *prev = &l->s[l->n - 1];
		double dt = elapsed - prev->elapsed;
		s.min_rate = rate(fc->minflt, prev->n.minflt, dt);
		s.maj_rate = rate(fc->majflt, prev->n.majflt, dt);
	}
	sample_list_add(l, &s);
}

/* Samples until count is reached, the process is gone or Ctrl-C.
 * The first sample is time 0; the others give rates per interval. */
static void sample_process(pid_t pid, const struct faults_opts *o, struct sample_list *l)
{
	double t0 = mk_now_seconds();

	while (!interrupted && (o->count == 0 || l->n < o->count)) {
		struct fault_counts fc;
		if (read_fault_counts(pid, &fc, NULL) < 0)
			break;
		add_sample(l, mk_now_seconds() - t0, &fc);
		if (o->count && l->n >= o->count)
			break;
		sleep_seconds(o->interval);
	}
}

/* ------------------------------------------------------------ output */

static int print_samples(const struct sample_list *l, const struct mk_output *out)
{
	struct mk_table t;

	mk_table_init(&t, out, "faults", infos, ARRAY_SIZE(infos), default_columns,
		      ARRAY_SIZE(default_columns));
	for (size_t i = 0; i < l->n; i++) {
		const struct fault_sample *s = &l->s[i];
		struct libscols_line *ln = mk_table_new_line(&t);
		mk_table_set_double(&t, ln, COL_TIME, s->elapsed, 3);
		mk_table_set_u64(&t, ln, COL_MINFLT, s->n.minflt);
		mk_table_set_u64(&t, ln, COL_MAJFLT, s->n.majflt);
		mk_table_set_double(&t, ln, COL_MINRATE, s->min_rate, 1);
		mk_table_set_double(&t, ln, COL_MAJRATE, s->maj_rate, 1);
		mk_table_set_u64(&t, ln, COL_CMINFLT, s->n.cminflt);
		mk_table_set_u64(&t, ln, COL_CMAJFLT, s->n.cmajflt);
	}
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	return rc ? 1 : 0;
}

/* ------------------------------------------------------------ a PID */

static void warn_stat_unreadable(pid_t pid)
{
	char rel[64];

	if (errno == ENOENT) {
		mk_warnx("No such process: %d", (int)pid);
		return;
	}
	snprintf(rel, sizeof(rel), "/proc/%d/stat", (int)pid);
	mk_proc_warn_open(rel);
}

/* One row: the totals so far and the average rates over the process's life. */
static int faults_of_pid_once(pid_t pid, const struct faults_opts *o)
{
	struct sample_list l = {0};
	struct fault_counts fc = {0};
	uint64_t starttime;

	if (read_fault_counts(pid, &fc, &starttime) < 0) {
		warn_stat_unreadable(pid);
		return 1;
	}
	double age = process_age(starttime);
	struct fault_sample s = {.elapsed = age,
				 .n = fc,
				 .min_rate = rate(fc.minflt, 0, age),
				 .maj_rate = rate(fc.majflt, 0, age)};
	sample_list_add(&l, &s);
	int rc = print_samples(&l, &o->out);
	free(l.s);
	return rc;
}

static int faults_of_pid(pid_t pid, const struct faults_opts *o)
{
	struct sample_list l = {0};

	if (!mk_pid_exists(pid))
		mk_errx(1, "No such process: %d", (int)pid);
	if (o->interval <= 0)
		return faults_of_pid_once(pid, o);
	sample_process(pid, o, &l);
	if (l.n == 0) {
		warn_stat_unreadable(pid);
		return 1;
	}
	int rc = print_samples(&l, &o->out);
	free(l.s);
	return rc;
}

/* ------------------------------------------------------------ a command */

static noreturn void exec_command(char **cmd)
{
	execvp(cmd[0], cmd);
	int saved = errno;
	mk_warn("cannot run %s", cmd[0]);
	_exit(saved == ENOENT ? EXIT_ENOENT : EXIT_CANNOT_INVOKE);
}

/* The command's exit status as a shell reports it. */
static int command_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/* While the child runs (and until --count samples), samples its
 * /proc/PID/stat; the child is reaped only by wait4 below, so the PID stays
 * valid until then. */
static void sample_child(pid_t child, const struct faults_opts *o, struct sample_list *l)
{
	double t0 = mk_now_seconds();

	while (o->count == 0 || l->n < o->count) {
		struct fault_counts fc;
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == child)
			return;
		if (read_fault_counts(child, &fc, NULL) < 0)
			return;
		add_sample(l, mk_now_seconds() - t0, &fc);
		sleep_seconds(o->interval);
	}
}

static int faults_of_command(char **cmd, const struct faults_opts *o)
{
	struct sample_list l = {0};
	struct rusage ru;
	int status;
	double t0 = mk_now_seconds();

	fflush(NULL);
	pid_t child = fork();
	if (child < 0)
		mk_err(1, "cannot fork");
	if (child == 0)
		exec_command(cmd);
	/* Ctrl-C reaches the child too; wait for it to end and still report. */
	signal(SIGINT, SIG_IGN);
	if (o->interval > 0)
		sample_child(child, o, &l);
	while (wait4(child, &status, 0, &ru) < 0)
		if (errno != EINTR)
			mk_err(1, "wait4");
	struct fault_counts fc = {.minflt = (uint64_t)ru.ru_minflt,
				  .majflt = (uint64_t)ru.ru_majflt};
	double elapsed = mk_now_seconds() - t0;
	if (l.n > 0) {
		add_sample(&l, elapsed, &fc);
	} else {
		struct fault_sample s = {.elapsed = elapsed,
					 .n = fc,
					 .min_rate = rate(fc.minflt, 0, elapsed),
					 .maj_rate = rate(fc.majflt, 0, elapsed)};
		sample_list_add(&l, &s);
	}
	int rc = print_samples(&l, &o->out);
	free(l.s);
	int cmd_rc = command_status(status);
	return cmd_rc ? cmd_rc : rc;
}

int cmd_faults(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"interval", required_argument, NULL, 'i'},
	    {"count", required_argument, NULL, 'c'},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct faults_opts o = {0};
	int c;

	/* "+": options end at the PID or the command. */
	while ((c = getopt_long(argc, argv, "+i:c:hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o.interval = mk_strtod_or_err(optarg, "interval");
			if (o.interval <= 0) {
				mk_warnx("invalid interval: '%s'", optarg);
				mk_errtryhelp();
			}
			break;
		case 'c':
			o.count = mk_strtou64_or_err(optarg, "count");
			break;
		case 'h':
			usage();
		default:
			if (mk_output_parse_opt(c, optarg, &o.out))
				break;
			if (mk_common_parse_opt(c, optarg))
				break;
			mk_errtryhelp();
		}
	}
	if (optind >= argc) {
		mk_warnx("no process ID or command given");
		mk_errtryhelp();
	}
	if (o.count && o.interval <= 0)
		o.interval = 1.0;
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	if (!strcmp(argv[optind - 1], "--"))
		return faults_of_command(argv + optind, &o);
	if (argc - optind != 1) {
		mk_warnx("too many arguments (put a command after --)");
		mk_errtryhelp();
	}
	return faults_of_pid(mk_strtopid_or_err(argv[optind]), &o);
}
