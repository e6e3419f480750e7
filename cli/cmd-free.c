/* cmd-free.c - "memkit free": procps free(1)'s numbers, layout and flags,
 * plus --explain (what each column means, with this machine's numbers),
 * the memory cgroup limit when one applies, and -J for JSON.
 * Derived values follow procps 4: used = MemTotal - MemAvailable,
 * buff/cache = Buffers + Cached + SReclaimable.
 * May call cli/common.c and cli/procfs.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

enum unit_exponent {
	UNIT_DEFAULT = 0, /* KiB (or kB with --si) */
	UNIT_BYTES = 1,
	UNIT_KILO = 2, /* 2..6: base^(exponent - 1) */
	UNIT_PETA = 6,
};

struct free_opts {
	int exponent;
	bool unit_set;
	bool si, human, lohi, total, wide, committed, json, explain;
	bool repeat;
	double seconds;
	uint64_t count; /* 0 = forever when repeating */
};

/* Every number free prints, in bytes. */
struct free_numbers {
	uint64_t total, used, free, shared, buffers, cache, available;
	uint64_t swap_total, swap_used, swap_free;
	uint64_t low_total, low_used, low_free, high_total, high_used, high_free;
	uint64_t commit_limit, committed;
};

static uint64_t sub_or_zero(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t meminfo_or(const struct mk_meminfo *mi, const char *key, uint64_t fallback)
{
	uint64_t v;

	return mk_meminfo_get(mi, key, &v) == 0 ? v : fallback;
}

static void compute_numbers(const struct mk_meminfo *mi, struct free_numbers *n)
{
	memset(n, 0, sizeof(*n));
	n->total = mi->mem_total;
	n->free = mi->mem_free;
	n->shared = mi->shmem;
	n->buffers = mi->buffers;
	n->cache = mi->cached + mi->sreclaimable;
	/* Kernels before 3.14 lack MemAvailable; procps then uses MemFree. */
	n->available = mi->has_mem_available ? mi->mem_available : mi->mem_free;
	n->used = sub_or_zero(n->total, n->available);
	n->swap_total = mi->swap_total;
	n->swap_free = mi->swap_free;
	n->swap_used = sub_or_zero(mi->swap_total, mi->swap_free);
	/* Without highmem the kernel has no Low* keys: all memory is low. */
	n->low_total = meminfo_or(mi, "LowTotal", mi->mem_total);
	n->low_free = meminfo_or(mi, "LowFree", mi->mem_free);
	n->low_used = sub_or_zero(n->low_total, n->low_free);
	n->high_total = meminfo_or(mi, "HighTotal", 0);
	n->high_free = meminfo_or(mi, "HighFree", 0);
	n->high_used = sub_or_zero(n->high_total, n->high_free);
	n->commit_limit = meminfo_or(mi, "CommitLimit", 0);
	n->committed = meminfo_or(mi, "Committed_AS", 0);
}

/* ------------------------------------------------------------ formatting */

static double power_of(double base, int exponent)
{
	double r = 1;

	while (exponent-- > 0)
		r *= base;
	return r;
}

/* procps -h: the shortest of "123B", "1.5Ki", "15Ki"... that fits in 4
 * characters (5 with the binary 'i'), trying units from bytes upward. */
static void format_human(uint64_t bytes, bool si, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	const int limit = si ? 4 : 5;

	if (snprintf(buf, len, "%" PRIu64 "B", bytes) <= 4)
		return;
	for (int i = 1; units[i]; i++) {
		double scaled = (double)bytes / power_of(si ? 1000.0 : 1024.0, i);
		const char *suffix = si ? "" : "i";
		/* procps rounds through a float; do the same to match it digit for digit */
		if (snprintf(buf, len, "%.1f%c%s", (double)(float)scaled, units[i], suffix) <=
		    limit)
			return;
		if (snprintf(buf, len, "%ld%c%s", (long)scaled, units[i], suffix) <= limit)
			return;
	}
}

static void format_value(const struct free_opts *o, uint64_t bytes, char *buf, size_t len)
{
	double base = o->si ? 1000.0 : 1024.0;

	if (o->human)
		format_human(bytes, o->si, buf, len);
	else if (o->exponent == UNIT_BYTES)
		snprintf(buf, len, "%" PRIu64, bytes);
	else if (o->exponent == UNIT_DEFAULT)
		snprintf(buf, len, "%" PRIu64, bytes / (uint64_t)base);
	else
		snprintf(buf, len, "%ld", (long)((double)bytes / power_of(base, o->exponent - 1)));
}

/* procps' layout: an 8-wide row label, then 12-wide right-aligned cells. */
static void print_row(const struct free_opts *o, const char *label, const uint64_t *v, size_t nv)
{
	char buf[64];

	printf("%-8s", label);
	for (size_t i = 0; i < nv; i++) {
		format_value(o, v[i], buf, sizeof(buf));
		printf("%12s", buf);
	}
	putchar('\n');
}

static void print_header(const struct free_opts *o)
{
	printf("%8s%12s%12s%12s%12s", "", "total", "used", "free", "shared");
	if (o->wide)
		printf("%12s%12s", "buffers", "cache");
	else
		printf("%12s", "buff/cache");
	printf("%12s\n", "available");
}

static void print_table(const struct free_opts *o, const struct free_numbers *n,
			const struct mk_cgroup_memory *cg)
{
	print_header(o);
	if (o->wide) {
		uint64_t mem[] = {n->total,   n->used,	n->free,     n->shared,
				  n->buffers, n->cache, n->available};
		print_row(o, "Mem:", mem, ARRAY_SIZE(mem));
	} else {
		uint64_t mem[] = {n->total,    n->used, n->free, n->shared, n->buffers + n->cache,
				  n->available};
		print_row(o, "Mem:", mem, ARRAY_SIZE(mem));
	}
	if (o->lohi) {
		uint64_t low[] = {n->low_total, n->low_used, n->low_free};
		uint64_t high[] = {n->high_total, n->high_used, n->high_free};
		print_row(o, "Low:", low, ARRAY_SIZE(low));
		print_row(o, "High:", high, ARRAY_SIZE(high));
	}
	uint64_t swap[] = {n->swap_total, n->swap_used, n->swap_free};
	print_row(o, "Swap:", swap, ARRAY_SIZE(swap));
	if (o->total) {
		uint64_t tot[] = {n->total + n->swap_total, n->used + n->swap_used,
				  n->free + n->swap_free};
		print_row(o, "Total:", tot, ARRAY_SIZE(tot));
	}
	if (o->committed) {
		uint64_t comm[] = {n->commit_limit, n->committed,
				   sub_or_zero(n->commit_limit, n->committed)};
		print_row(o, "Comm:", comm, ARRAY_SIZE(comm));
	}
	if (cg->limited) {
		/* total = the limit, used = usage, free = what is left under it */
		uint64_t cgv[] = {cg->limit, cg->usage, sub_or_zero(cg->limit, cg->usage)};
		print_row(o, "Cgroup:", cgv, ARRAY_SIZE(cgv));
	}
}

/* ------------------------------------------------------------ JSON */

static void json_pair(const char *key, uint64_t v, bool last)
{
	printf("\"%s\": %" PRIu64 "%s", key, v, last ? "" : ", ");
}

static void print_json(const struct free_opts *o, const struct free_numbers *n,
		       const struct mk_cgroup_memory *cg)
{
	printf("{\n   \"memory\": {");
	json_pair("total", n->total, false);
	json_pair("used", n->used, false);
	json_pair("free", n->free, false);
	json_pair("shared", n->shared, false);
	json_pair("buffers", n->buffers, false);
	json_pair("cache", n->cache, false);
	json_pair("buff_cache", n->buffers + n->cache, false);
	json_pair("available", n->available, true);
	printf("},\n   \"swap\": {");
	json_pair("total", n->swap_total, false);
	json_pair("used", n->swap_used, false);
	json_pair("free", n->swap_free, true);
	printf("}");
	if (o->lohi) {
		printf(",\n   \"low\": {");
		json_pair("total", n->low_total, false);
		json_pair("used", n->low_used, false);
		json_pair("free", n->low_free, true);
		printf("},\n   \"high\": {");
		json_pair("total", n->high_total, false);
		json_pair("used", n->high_used, false);
		json_pair("free", n->high_free, true);
		printf("}");
	}
	if (o->committed) {
		printf(",\n   \"committed\": {");
		json_pair("limit", n->commit_limit, false);
		json_pair("used", n->committed, true);
		printf("}");
	}
	if (cg->version) {
		printf(",\n   \"cgroup\": {\"version\": %d, \"path\": \"", cg->version);
		for (const char *p = cg->path; *p; p++)
			printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		printf("\", \"limited\": %s, ", cg->limited ? "true" : "false");
		if (cg->limited)
			json_pair("limit", cg->limit, false);
		json_pair("usage", cg->usage, false);
		json_pair("file", cg->file, false);
		json_pair("inactive_file", cg->inactive_file, true);
		printf("}");
	}
	printf("\n}\n");
}

/* ------------------------------------------------------------ --explain */

static const char *hs(uint64_t bytes, char buf[MK_SIZE_BUFSZ])
{
	return mk_size_human(bytes, buf);
}

static void explain_memory(const struct mk_meminfo *mi, const struct free_numbers *n)
{
	char a[MK_SIZE_BUFSZ], b[MK_SIZE_BUFSZ], c[MK_SIZE_BUFSZ], d[MK_SIZE_BUFSZ];
	char e[MK_SIZE_BUFSZ];
	uint64_t file_pages = mi->active_file + mi->inactive_file;

	printf("\nWhat the columns mean, with this machine's numbers:\n\n");
	printf("  total       %-7s RAM the kernel manages (MemTotal): physical memory minus\n"
	       "              what firmware and the kernel image took at boot.\n",
	       hs(n->total, a));
	printf("  used        %-7s total - available: memory that could not be handed to a\n"
	       "              new program without swapping.\n",
	       hs(n->used, a));
	printf("  free        %-7s pages holding nothing at all (MemFree). A small number\n"
	       "              here is normal: Linux keeps idle RAM busy as page cache.\n",
	       hs(n->free, a));
	printf("  shared      %-7s tmpfs files and shared memory (Shmem). It is counted in\n"
	       "              buff/cache too, but cannot be dropped: it can only go to swap.\n",
	       hs(n->shared, a));
	printf("  buff/cache  %-7s Buffers %s (block-device metadata) + Cached %s (file\n"
	       "              pages: the page cache) + SReclaimable %s (dentry and inode\n"
	       "              caches). It makes file I/O fast and is reclaimed when programs\n"
	       "              need memory; dirty pages among it must first be written back\n"
	       "              to disk (now %s dirty), which is when disk I/O spikes.\n",
	       hs(n->buffers + n->cache, a), hs(mi->buffers, b), hs(mi->cached, c),
	       hs(mi->sreclaimable, d), hs(mi->dirty, e));
	printf("  available   %-7s the kernel's estimate (MemAvailable) of what new programs\n"
	       "              can get without swapping: free, plus the file pages (%s) and\n"
	       "              reclaimable slab (%s) it can drop, minus the reserve it keeps\n"
	       "              for itself (the zones' low watermarks).\n",
	       hs(n->available, a), hs(file_pages, b), hs(mi->sreclaimable, c));
	uint64_t naive = n->free + n->buffers + n->cache;
	printf("\n  \"available is about free + buff/cache\" is a rule of thumb: here free +\n"
	       "  buff/cache = %s and available = %s. ",
	       hs(naive, a), hs(n->available, b));
	if (naive >= n->available)
		printf("Of the %s between them, %s is\n"
		       "  shared memory, which counts as cache but cannot be dropped; the rest\n"
		       "  is the reserve the kernel keeps (watermarks) and the part of the cache\n"
		       "  it treats as still in use.\n",
		       hs(naive - n->available, c),
		       hs(n->shared < naive - n->available ? n->shared : naive - n->available, d));
	else
		printf("available is larger here because it\n"
		       "  also counts reclaimable kernel memory outside buff/cache.\n");
}

static void explain_swap(const struct mk_meminfo *mi, const struct free_numbers *n)
{
	char a[MK_SIZE_BUFSZ], b[MK_SIZE_BUFSZ], c[MK_SIZE_BUFSZ];

	if (!n->swap_total) {
		printf("\n  Swap: none configured. When memory runs out the kernel can only drop\n"
		       "  cache, then kill a process (the OOM killer).\n");
		return;
	}
	printf("\n  Swap: %s of %s in use. Anonymous pages the kernel found cold were\n"
	       "  written there to free RAM; %s of them are also still in RAM\n"
	       "  (SwapCached), so dropping those costs no I/O.\n",
	       hs(n->swap_used, a), hs(n->swap_total, b), hs(mi->swap_cached, c));
}

static void explain_cgroup(const struct mk_cgroup_memory *cg, const struct free_numbers *n)
{
	char a[MK_SIZE_BUFSZ], b[MK_SIZE_BUFSZ], c[MK_SIZE_BUFSZ];
	char d[MK_SIZE_BUFSZ], e[MK_SIZE_BUFSZ];

	if (!cg->version)
		return;
	if (!cg->limited) {
		printf("\n  Cgroup: this process's memory cgroup (v%d, %s)\n"
		       "  has no limit, so the machine-wide numbers above are what applies.\n",
		       cg->version, cg->path);
		return;
	}
	uint64_t working_set = sub_or_zero(cg->usage, cg->inactive_file);
	printf("\n  Cgroup: this process runs in a memory cgroup (v%d, %s) limited to %s,\n"
	       "  of which %s is in use (%s of it page cache). Programs here hit the\n"
	       "  limit, not the machine's %s available: they are reclaimed, then\n"
	       "  OOM-killed, once the working set (%s, usage minus inactive file pages)\n"
	       "  reaches the limit.\n",
	       cg->version, cg->path, hs(cg->limit, a), hs(cg->usage, b), hs(cg->file, c),
	       hs(n->available, d), hs(working_set, e));
}

/* ------------------------------------------------------------ main */

static MK_NORETURN void usage(void)
{
	fputs("Usage:\n memkit free [options]\n\n"
	      "Memory in use, free and available, as procps free(1) computes it.\n\n"
	      "Options:\n"
	      " -b, --bytes            show output in bytes\n"
	      "     --kilo, --mega, --giga, --tera, --peta\n"
	      "                        show output in powers of 1000\n"
	      " -k, --kibi             show output in kibibytes (the default)\n"
	      " -m, --mebi             show output in mebibytes\n"
	      " -g, --gibi             show output in gibibytes\n"
	      "     --tebi, --pebi     show output in tebibytes, pebibytes\n"
	      " -h, --human            show human-readable output\n"
	      "     --si               use powers of 1000 not 1024\n"
	      " -l, --lohi             show detailed low and high memory statistics\n"
	      " -t, --total            show total for RAM + swap\n"
	      " -v, --committed        show committed memory and commit limit\n"
	      " -s, --seconds <N>      repeat printing every N seconds\n"
	      " -c, --count <N>        repeat printing N times, then exit\n"
	      " -w, --wide             wide output (buffers and cache apart)\n"
	      " -J, --json             JSON output, all values in bytes\n"
	      "     --explain          explain each column with this machine's numbers\n"
	      "     --help             display this help\n"
	      " -V, --version          display version\n"
	      "     --proc-root <dir>  read /proc and /sys under <dir> (a recorded dump)\n"
	      "\nA \"Cgroup:\" row (limit, usage, left) is added when a memory cgroup\n"
	      "limit applies to this process.\n",
	      stdout);
	exit(0);
}

enum {
	OPT_SI = CHAR_MAX + 1,
	OPT_KILO,
	OPT_MEGA,
	OPT_GIGA,
	OPT_TERA,
	OPT_PETA,
	OPT_TEBI,
	OPT_PEBI,
	OPT_HELP,
	OPT_EXPLAIN,
};

static void set_unit(struct free_opts *o, int exponent, bool si)
{
	if (o->unit_set) {
		mk_warnx("multiple unit options don't make sense");
		mk_errtryhelp();
	}
	o->unit_set = true;
	o->exponent = exponent;
	if (si)
		o->si = true;
}

static bool parse_unit_opt(int c, struct free_opts *o)
{
	switch (c) {
	case 'b':
		set_unit(o, UNIT_BYTES, false);
		return true;
	case 'k':
		set_unit(o, UNIT_KILO, false);
		return true;
	case 'm':
		set_unit(o, UNIT_KILO + 1, false);
		return true;
	case 'g':
		set_unit(o, UNIT_KILO + 2, false);
		return true;
	case OPT_TEBI:
		set_unit(o, UNIT_KILO + 3, false);
		return true;
	case OPT_PEBI:
		set_unit(o, UNIT_PETA, false);
		return true;
	case OPT_KILO:
	case OPT_MEGA:
	case OPT_GIGA:
	case OPT_TERA:
	case OPT_PETA:
		set_unit(o, UNIT_KILO + (c - OPT_KILO), true);
		return true;
	default:
		return false;
	}
}

static void parse_repeat_opt(int c, const char *arg, struct free_opts *o)
{
	o->repeat = true;
	if (c == 's') {
		o->seconds = mk_strtod_or_err(arg, "seconds");
		if (o->seconds <= 0 || o->seconds > 86400.0 * 365) {
			mk_warnx("seconds must be a positive number: '%s'", arg);
			mk_errtryhelp();
		}
	} else {
		o->count = mk_strtou64_or_err(arg, "count");
		if (o->count == 0) {
			mk_warnx("count must be at least 1: '%s'", arg);
			mk_errtryhelp();
		}
	}
}

static void parse_options(int argc, char **argv, struct free_opts *o)
{
	static const struct option longopts[] = {
	    {"bytes", no_argument, NULL, 'b'},
	    {"kilo", no_argument, NULL, OPT_KILO},
	    {"mega", no_argument, NULL, OPT_MEGA},
	    {"giga", no_argument, NULL, OPT_GIGA},
	    {"tera", no_argument, NULL, OPT_TERA},
	    {"peta", no_argument, NULL, OPT_PETA},
	    {"kibi", no_argument, NULL, 'k'},
	    {"mebi", no_argument, NULL, 'm'},
	    {"gibi", no_argument, NULL, 'g'},
	    {"tebi", no_argument, NULL, OPT_TEBI},
	    {"pebi", no_argument, NULL, OPT_PEBI},
	    {"human", no_argument, NULL, 'h'},
	    {"si", no_argument, NULL, OPT_SI},
	    {"lohi", no_argument, NULL, 'l'},
	    {"total", no_argument, NULL, 't'},
	    {"committed", no_argument, NULL, 'v'},
	    {"seconds", required_argument, NULL, 's'},
	    {"count", required_argument, NULL, 'c'},
	    {"wide", no_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'J'},
	    {"explain", no_argument, NULL, OPT_EXPLAIN},
	    {"help", no_argument, NULL, OPT_HELP},
	    {"version", no_argument, NULL, 'V'},
	    {"proc-root", required_argument, NULL, MK_OPT_PROC_ROOT},
	    {NULL, 0, NULL, 0},
	};
	int c;

	o->seconds = 1.0;
	while ((c = getopt_long(argc, argv, "bkmghltvc:ws:JV", longopts, NULL)) != -1) {
		if (parse_unit_opt(c, o))
			continue;
		switch (c) {
		case 'h':
			o->human = true;
			break;
		case OPT_SI:
			o->si = true;
			break;
		case 'l':
			o->lohi = true;
			break;
		case 't':
			o->total = true;
			break;
		case 'v':
			o->committed = true;
			break;
		case 's':
		case 'c':
			parse_repeat_opt(c, optarg, o);
			break;
		case 'w':
			o->wide = true;
			break;
		case 'J':
			o->json = true;
			break;
		case OPT_EXPLAIN:
			o->explain = true;
			break;
		case OPT_HELP:
			usage();
		default:
			if (mk_common_parse_opt(c, optarg))
				break;
			mk_errtryhelp();
		}
	}
	mk_no_operands(argc, argv);
}

static int show_once(const struct free_opts *o)
{
	struct mk_meminfo mi;
	struct free_numbers n;
	struct mk_cgroup_memory cg;

	if (mk_meminfo_read(&mi) < 0) {
		mk_proc_warn_open("/proc/meminfo");
		return 1;
	}
	compute_numbers(&mi, &n);
	/* No cgroup information is normal (no /proc/self/cgroup in old dumps). */
	if (mk_cgroup_memory_read(&cg) < 0)
		memset(&cg, 0, sizeof(cg));
	if (o->json)
		print_json(o, &n, &cg);
	else
		print_table(o, &n, &cg);
	if (o->explain && !o->json) {
		explain_memory(&mi, &n);
		explain_swap(&mi, &n);
		explain_cgroup(&cg, &n);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static void sleep_seconds(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s,
			      .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cmd_free(int argc, char **argv)
{
	struct free_opts o = {0};

	parse_options(argc, argv, &o);
	for (uint64_t i = 1;; i++) {
		int rc = show_once(&o);
		if (rc || !o.repeat || (o.count && i >= o.count))
			return rc;
		putchar('\n');
		fflush(stdout);
		sleep_seconds(o.seconds);
	}
}
