/* cmd-leak.c - memkit leak PID: samples a process's VmSize, VmRSS and VmData
 * (/proc/PID/status) every --interval seconds for --duration seconds, fits
 * a least-squares line to each, and says whether memory grows steadily: the
 * rate per minute, R^2, growth over noise, whether the floor rises, and a
 * sparkline. A steady process or a sawtooth (grow, free, grow) is not
 * called leaking. The verdict is also the exit status, for scripts.
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

/* Exit statuses beyond 0 (no growth), 1 (error) and 2 (usage). */
#define EXIT_GROWING 3

/* A trend counts as sustained growth when all of these hold:
 * the line explains most of the variation (R^2), the growth it predicts over
 * the window stands well above the scatter around it, and the lowest values
 * of the last third are above those of the first third: a sawtooth's floor
 * stays put while a leak lifts it. */
#define MIN_R2		 0.8
#define MIN_GROWTH_NOISE 4.0
#define MIN_SAMPLES	 3
#define SPARKLINE_WIDTH	 40

enum metric { M_VMSIZE, M_VMRSS, M_VMDATA, M_COUNT };

static const char *const metric_keys[M_COUNT] = {"VmSize", "VmRSS", "VmData"};

/* Which metrics decide the verdict: virtual growth is what a leak makes;
 * RSS alone also grows when a program touches memory it already has. */
static const bool metric_decides[M_COUNT] = {true, false, true};

struct series {
	size_t n, cap;
	double *t;	    /* seconds since the first sample */
	double *v[M_COUNT]; /* bytes */
};

struct trend {
	double slope;	   /* bytes per second */
	double r2;	   /* 0..1; 0 when the series is flat */
	double growth;	   /* slope times the window */
	double noise;	   /* residual standard deviation, at least a page */
	double floor_rise; /* min(last third) - min(first third) */
	double first, last, min, max;
	const char *verdict;
	bool growing;
};

enum {
	COL_METRIC,
	COL_FIRST,
	COL_LAST,
	COL_MIN,
	COL_MAX,
	COL_RATE,
	COL_R2,
	COL_GROWTH_NOISE,
	COL_FLOOR_RISE,
	COL_TREND,
	COL_VERDICT,
};

static const struct mk_colinfo infos[] = {
    [COL_METRIC] = {"METRIC", 6, 0, "VmSize, VmRSS or VmData from /proc/PID/status", MK_COL_STRING},
    [COL_FIRST] = {"FIRST", 6, SCOLS_FL_RIGHT, "first sample", MK_COL_SIZE},
    [COL_LAST] = {"LAST", 6, SCOLS_FL_RIGHT, "last sample", MK_COL_SIZE},
    [COL_MIN] = {"MIN", 6, SCOLS_FL_RIGHT, "smallest sample", MK_COL_SIZE},
    [COL_MAX] = {"MAX", 6, SCOLS_FL_RIGHT, "largest sample", MK_COL_SIZE},
    [COL_RATE] = {"RATE/MIN", 8, SCOLS_FL_RIGHT,
		  "slope of the least-squares line, per minute (signed)", MK_COL_SIZE},
    [COL_R2] = {"R2", 5, SCOLS_FL_RIGHT, "how well a line fits the samples (0..1)", MK_COL_FLOAT},
    [COL_GROWTH_NOISE] = {"GROWTH/NOISE", 6, SCOLS_FL_RIGHT,
			  "growth over the window / scatter around the line", MK_COL_FLOAT},
    [COL_FLOOR_RISE] = {"FLOORRISE", 8, SCOLS_FL_RIGHT,
			"lowest value of the last third minus that of the first (signed)",
			MK_COL_SIZE},
    [COL_TREND] = {"TREND", 0.3, SCOLS_FL_NOEXTREMES, "sparkline of the samples", MK_COL_STRING},
    [COL_VERDICT] = {"VERDICT", 8, 0, "growing, shrinking, stable or fluctuating", MK_COL_STRING},
};

static const int default_columns[] = {COL_METRIC, COL_FIRST,	    COL_LAST,  COL_RATE,
				      COL_R2,	  COL_GROWTH_NOISE, COL_TREND, COL_VERDICT};

struct leak_opts {
	double interval, duration;
	bool quiet;
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
	fputs("\nUsage:\n memkit leak [options] <pid>\n\n"
	      "Sample a process's VmSize, VmRSS and VmData and tell whether its memory\n"
	      "grows steadily (a leak) or not. Where it grows from: run the program\n"
	      "under 'memkit run --leaks' (allocation call stacks of what is lost).\n\n"
	      "Options:\n"
	      " -i, --interval <secs>  time between samples (default 1; decimals allowed)\n"
	      " -d, --duration <secs>  how long to watch (default 60; Ctrl-C stops early)\n"
	      " -q, --quiet            no table: only the exit status\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nExit status:\n"
	      " 0  no sustained growth of VmSize or VmData\n"
	      " 1  failure (no such process, too few samples, ...)\n"
	      " 2  wrong usage\n"
	      " 3  VmSize or VmData grows steadily: a leak is likely\n",
	      stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

/* ------------------------------------------------------------ sampling */

/* Sleeps until the monotonic clock reaches the deadline (or Ctrl-C). */
static void sleep_until(double deadline)
{
	double left = deadline - mk_now_seconds();

	if (left <= 0)
		return;
	struct timespec ts = {.tv_sec = (time_t)left,
			      .tv_nsec = (long)((left - floor(left)) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
		;
}

static void series_reserve(struct series *s)
{
	if (s->n < s->cap)
		return;
	s->cap = s->cap ? s->cap * 2 : 128;
	s->t = realloc(s->t, s->cap * sizeof(double));
	if (!s->t)
		mk_err(1, "cannot allocate memory");
	for (int m = 0; m < M_COUNT; m++) {
		s->v[m] = realloc(s->v[m], s->cap * sizeof(double));
		if (!s->v[m])
			mk_err(1, "cannot allocate memory");
	}
}

static void series_free(struct series *s)
{
	free(s->t);
	for (int m = 0; m < M_COUNT; m++)
		free(s->v[m]);
}

/* One sample of the three metrics; -1 when the process is gone or has no
 * user memory (a kernel thread). */
static int take_sample(pid_t pid, double t, struct series *s)
{
	uint64_t v[M_COUNT];

	for (int m = 0; m < M_COUNT; m++)
		if (mk_pid_status_kb(pid, metric_keys[m], &v[m]) < 0)
			return -1;
	series_reserve(s);
	s->t[s->n] = t;
	for (int m = 0; m < M_COUNT; m++)
		s->v[m][s->n] = (double)v[m];
	s->n++;
	return 0;
}

static void show_progress(pid_t pid, const struct series *s, const struct leak_opts *o)
{
	if (o->quiet || !mk_isatty_stderr())
		return;
	fprintf(stderr, "\rmemkit: leak: sampling process %d: %.0f/%.0f s", (int)pid,
		s->t[s->n - 1], o->duration);
	fflush(stderr);
}

static void end_progress(const struct leak_opts *o)
{
	if (!o->quiet && mk_isatty_stderr())
		fputs("\r\033[K", stderr);
}

/* Samples on a fixed schedule t0 + k * interval, so slow reads do not
 * stretch the window. Stops early when the process ends. */
static void sample_process(pid_t pid, const struct leak_opts *o, struct series *s)
{
	double t0 = mk_now_seconds();

	for (unsigned long k = 0; !interrupted; k++) {
		double due = (double)k * o->interval;
		if (due > o->duration + 1e-9)
			break;
		sleep_until(t0 + due);
		if (interrupted || take_sample(pid, mk_now_seconds() - t0, s) < 0)
			break;
		show_progress(pid, s, o);
	}
	end_progress(o);
}

/* ------------------------------------------------------------ the fit */

static double mean(const double *x, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += x[i];
	return sum / (double)n;
}

static double min_of(const double *x, size_t from, size_t to)
{
	double m = x[from];

	for (size_t i = from + 1; i < to; i++)
		if (x[i] < m)
			m = x[i];
	return m;
}

static double max_of(const double *x, size_t n)
{
	double m = x[0];

	for (size_t i = 1; i < n; i++)
		if (x[i] > m)
			m = x[i];
	return m;
}

/* Ordinary least squares y = a + b t; sets slope, R^2 and the residual
 * standard deviation (floored at one page: the counters move in pages). */
static void fit_line(const double *t, const double *y, size_t n, struct trend *tr)
{
	double mt = mean(t, n), my = mean(y, n);
	double stt = 0, sty = 0, syy = 0, sse = 0;

	for (size_t i = 0; i < n; i++) {
		stt += (t[i] - mt) * (t[i] - mt);
		sty += (t[i] - mt) * (y[i] - my);
		syy += (y[i] - my) * (y[i] - my);
	}
	tr->slope = stt > 0 ? sty / stt : 0;
	for (size_t i = 0; i < n; i++) {
		double r = y[i] - (my + tr->slope * (t[i] - mt));
		sse += r * r;
	}
	tr->r2 = syy > 0 ? 1.0 - sse / syy : 0;
	double page = (double)sysconf(_SC_PAGESIZE);
	tr->noise = fmax(sqrt(sse / (double)(n > 2 ? n - 2 : 1)), page);
}

static const char *trend_verdict(const struct trend *tr)
{
	bool sustained = tr->r2 >= MIN_R2 && fabs(tr->growth) >= MIN_GROWTH_NOISE * tr->noise;

	if (sustained && tr->growth > 0 && tr->floor_rise > 0)
		return "growing";
	if (sustained && tr->growth < 0)
		return "shrinking";
	return tr->max - tr->min > tr->noise ? "fluctuating" : "stable";
}

static void analyse(const struct series *s, enum metric m, struct trend *tr)
{
	const double *y = s->v[m];
	size_t third = s->n / 3 ? s->n / 3 : 1;

	fit_line(s->t, y, s->n, tr);
	tr->growth = tr->slope * (s->t[s->n - 1] - s->t[0]);
	tr->floor_rise = min_of(y, s->n - third, s->n) - min_of(y, 0, third);
	tr->first = y[0];
	tr->last = y[s->n - 1];
	tr->min = min_of(y, 0, s->n);
	tr->max = max_of(y, s->n);
	tr->verdict = trend_verdict(tr);
	tr->growing = !strcmp(tr->verdict, "growing");
}

/* ------------------------------------------------------------ output */

static bool locale_is_utf8(void)
{
	return !strcmp(nl_langinfo(CODESET), "UTF-8");
}

/* Eighths of a block, U+2581..U+2588, or ASCII where the locale is not
 * UTF-8 or the output is raw (libsmartcols prints other bytes as \x escapes
 * there). */
static void sparkline(const double *y, size_t n, bool ascii_only, char *buf, size_t len)
{
	static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	static const char *const ascii[] = {"_", ".", "-", "~", "=", "+", "*", "#"};
	const char *const *levels = ascii_only || !locale_is_utf8() ? ascii : bars;
	size_t width = SPARKLINE_WIDTH;

	buf[0] = '\0';
	if (n == 0)
		return;
	if (n < width)
		width = n;
	double lo = min_of(y, 0, n), hi = max_of(y, n);
	for (size_t col = 0; col < width; col++) {
		/* Each character is the mean of its share of the samples. */
		size_t from = col * n / width, to = (col + 1) * n / width;
		double v = mean(y + from, to - from);
		int level = hi > lo ? (int)((v - lo) / (hi - lo) * 7.0 + 0.5) : 0;
		strncat(buf, levels[level], len - strlen(buf) - 1);
	}
}

/* A signed amount: "+1.5M" (or bytes with -b), for rates and rises. */
static void set_signed_size(struct mk_table *t, struct libscols_line *ln, int id, double v,
			    const struct mk_output *out)
{
	char buf[MK_SIZE_BUFSZ + 2];

	if (out->bytes) {
		snprintf(buf, sizeof(buf), "%.0f", v);
	} else {
		char human[MK_SIZE_BUFSZ];
		snprintf(buf, sizeof(buf), "%s%s", v < 0 ? "-" : "+",
			 mk_size_human((uint64_t)fabs(v), human));
	}
	mk_table_set_str(t, ln, id, buf);
}

static void add_metric_line(struct mk_table *t, const struct series *s, enum metric m,
			    const struct trend *tr, const struct mk_output *out)
{
	struct libscols_line *ln = mk_table_new_line(t);
	char spark[SPARKLINE_WIDTH * 4 + 1];

	mk_table_set_str(t, ln, COL_METRIC, metric_keys[m]);
	mk_table_set_size(t, ln, COL_FIRST, (uint64_t)tr->first);
	mk_table_set_size(t, ln, COL_LAST, (uint64_t)tr->last);
	mk_table_set_size(t, ln, COL_MIN, (uint64_t)tr->min);
	mk_table_set_size(t, ln, COL_MAX, (uint64_t)tr->max);
	set_signed_size(t, ln, COL_RATE, tr->slope * 60.0, out);
	mk_table_set_double(t, ln, COL_R2, tr->r2, 3);
	mk_table_set_double(t, ln, COL_GROWTH_NOISE, tr->growth / tr->noise, 1);
	set_signed_size(t, ln, COL_FLOOR_RISE, tr->floor_rise, out);
	sparkline(s->v[m], s->n, out->raw, spark, sizeof(spark));
	mk_table_set_str(t, ln, COL_TREND, spark);
	mk_table_set_str(t, ln, COL_VERDICT, tr->verdict);
}

/* Prints the table and returns the verdict's exit status. */
static int report(pid_t pid, const struct series *s, const struct leak_opts *o)
{
	struct trend tr[M_COUNT];
	bool growing = false;

	for (int m = 0; m < M_COUNT; m++) {
		analyse(s, m, &tr[m]);
		growing |= metric_decides[m] && tr[m].growing;
	}
	if (o->quiet)
		return growing ? EXIT_GROWING : 0;
	struct mk_table t;
	mk_table_init(&t, &o->out, "leak", infos, ARRAY_SIZE(infos), default_columns,
		      ARRAY_SIZE(default_columns));
	for (int m = 0; m < M_COUNT; m++)
		add_metric_line(&t, s, m, &tr[m], &o->out);
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	if (!o->out.json && !o->out.raw) {
		printf("process %d: %s over %.1f s (%zu samples)\n", (int)pid,
		       growing ? "memory grows steadily: a leak is likely" : "no sustained growth",
		       s->t[s->n - 1], s->n);
		/* the trend says that it grows; the tracker says where */
		if (growing)
			printf("which call stacks hold it: run the program under "
			       "'memkit run --leaks -- COMMAND'\n");
	}
	if (rc)
		return 1;
	return growing ? EXIT_GROWING : 0;
}

static int leak_of_pid(pid_t pid, const struct leak_opts *o)
{
	struct series s = {0};
	int rc;

	if (!mk_pid_exists(pid))
		mk_errx(1, "No such process: %d", (int)pid);
	sample_process(pid, o, &s);
	if (s.n == 0) {
		mk_warnx("cannot read VmSize, VmRSS and VmData of process %d (a kernel thread, "
			 "or it has exited)",
			 (int)pid);
		rc = 1;
	} else if (s.n < MIN_SAMPLES) {
		mk_warnx("only %zu samples of process %d (it ended, or the duration is too short "
			 "for the interval); need %d",
			 s.n, (int)pid, MIN_SAMPLES);
		rc = 1;
	} else {
		if (s.t[s.n - 1] + o->interval < o->duration && !interrupted)
			mk_warnx("process %d ended after %.1f s; judging from %zu samples",
				 (int)pid, s.t[s.n - 1], s.n);
		rc = report(pid, &s, o);
	}
	series_free(&s);
	return rc;
}

static double positive_seconds_or_err(const char *arg, const char *what)
{
	double v = mk_strtod_or_err(arg, what);

	if (v <= 0) {
		mk_warnx("invalid %s: '%s' (must be more than 0)", what, arg);
		mk_errtryhelp();
	}
	return v;
}

int cmd_leak(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"interval", required_argument, NULL, 'i'},
	    {"duration", required_argument, NULL, 'd'},
	    {"quiet", no_argument, NULL, 'q'},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct leak_opts o = {.interval = 1.0, .duration = 60.0};
	int c;

	while ((c = getopt_long(argc, argv, "i:d:qhV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o.interval = positive_seconds_or_err(optarg, "interval");
			break;
		case 'd':
			o.duration = positive_seconds_or_err(optarg, "duration");
			break;
		case 'q':
			o.quiet = true;
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
	if (argc - optind != 1) {
		mk_warnx(optind < argc ? "too many arguments" : "no process ID given");
		mk_errtryhelp();
	}
	pid_t pid = mk_strtopid_or_err(argv[optind]);
	/* The character set only: numbers must keep a decimal point for JSON. */
	setlocale(LC_CTYPE, "");
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	return leak_of_pid(pid, &o);
}
