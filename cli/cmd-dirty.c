/* cmd-dirty.c - "memkit dirty": the vm.dirty_* writeback settings with their
 * units and meaning, the background and blocking thresholds in bytes as the
 * kernel derives them (mm/page-writeback.c, domain_dirty_limits), next to
 * the kernel's own figures from /proc/vmstat, and the current Dirty and
 * Writeback; --set NAME=VALUE validates and writes one setting.
 * May call cli/common.c and cli/procfs.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

enum dirty_unit { UNIT_BYTES, UNIT_PERCENT, UNIT_CENTISECS, UNIT_SECONDS };

struct dirty_setting {
	const char *name;
	enum dirty_unit unit;
	const char *meaning;
};

static const struct dirty_setting settings[] = {
    {"dirty_background_ratio", UNIT_PERCENT,
     "background writeback starts when dirty pages exceed this % of dirtyable memory"},
    {"dirty_background_bytes", UNIT_BYTES,
     "the same in bytes; when non-zero it overrides dirty_background_ratio"},
    {"dirty_ratio", UNIT_PERCENT,
     "a writing process is throttled (blocks) above this % of dirtyable memory"},
    {"dirty_bytes", UNIT_BYTES, "the same in bytes; when non-zero it overrides dirty_ratio"},
    {"dirty_expire_centisecs", UNIT_CENTISECS,
     "dirty data older than this is written back by the next flusher run"},
    {"dirty_writeback_centisecs", UNIT_CENTISECS,
     "how often the flusher threads wake up (0: never periodically)"},
    {"dirtytime_expire_seconds", UNIT_SECONDS,
     "lazily-updated inode timestamps are written back after this long"},
};

enum { COL_NAME, COL_VALUE, COL_UNIT, COL_SHOWN, COL_MEANING };

static const struct mk_colinfo setting_infos[] = {
    [COL_NAME] = {"NAME", 0.2, 0, "sysctl name (vm.NAME)", MK_COL_STRING},
    [COL_VALUE] = {"VALUE", 4, SCOLS_FL_RIGHT, "the raw value", MK_COL_NUMBER},
    [COL_UNIT] = {"UNIT", 4, 0, "the unit of VALUE", MK_COL_STRING},
    [COL_SHOWN] = {"MEANS", 6, SCOLS_FL_RIGHT, "the value in readable units", MK_COL_STRING},
    [COL_MEANING] = {"DESCRIPTION", 0.5, SCOLS_FL_TRUNC, "what the setting does", MK_COL_STRING},
};

static const int setting_cols[] = {COL_NAME, COL_VALUE, COL_UNIT, COL_SHOWN, COL_MEANING};

enum { TCOL_NAME, TCOL_SIZE, TCOL_KERNEL, TCOL_HOW };

static const struct mk_colinfo threshold_infos[] = {
    [TCOL_NAME] = {"NAME", 0.2, 0, "threshold or counter", MK_COL_STRING},
    [TCOL_SIZE] = {"SIZE", 6, SCOLS_FL_RIGHT, "derived here from the settings and meminfo",
		   MK_COL_SIZE},
    [TCOL_KERNEL] = {"KERNEL", 6, SCOLS_FL_RIGHT, "the kernel's own figure (/proc/vmstat)",
		     MK_COL_SIZE},
    [TCOL_HOW] = {"HOW", 0.5, SCOLS_FL_TRUNC, "how SIZE is obtained", MK_COL_STRING},
};

static const int threshold_cols[] = {TCOL_NAME, TCOL_SIZE, TCOL_KERNEL, TCOL_HOW};

static const char *unit_name(enum dirty_unit u)
{
	static const char *const names[] = {"bytes", "%", "1/100 s", "s"};
	return names[u];
}

static int read_setting(const struct dirty_setting *s, uint64_t *v)
{
	char rel[96];

	snprintf(rel, sizeof(rel), "/proc/sys/vm/%s", s->name);
	return mk_proc_read_u64(rel, v);
}

static void format_shown(const struct dirty_setting *s, uint64_t v, char *buf, size_t len)
{
	char h[MK_SIZE_BUFSZ];

	switch (s->unit) {
	case UNIT_BYTES:
		snprintf(buf, len, "%s", v ? mk_size_human(v, h) : "unset");
		break;
	case UNIT_PERCENT:
		snprintf(buf, len, "%" PRIu64 "%%", v);
		break;
	case UNIT_CENTISECS:
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "s", v / 100, v % 100);
		break;
	default:
		snprintf(buf, len, "%" PRIu64 "s", v);
		break;
	}
}

/* ------------------------------------------------------------ thresholds */

struct dirty_values {
	uint64_t v[ARRAY_SIZE(settings)];
	bool ok[ARRAY_SIZE(settings)];
};

static const struct dirty_setting *find_setting(const char *name, size_t *index)
{
	if (!strncmp(name, "vm.", 3))
		name += 3;
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (!strcmp(settings[i].name, name)) {
			if (index)
				*index = i;
			return &settings[i];
		}
	return NULL;
}

static uint64_t value_of(const struct dirty_values *dv, const char *name)
{
	size_t i = 0;

	find_setting(name, &i);
	return dv->ok[i] ? dv->v[i] : 0;
}

/* What the kernel calls dirtyable memory (global_dirtyable_memory): free
 * pages plus the file LRU. The kernel also subtracts its reserve
 * (totalreserve_pages), which /proc does not show, so this is a bit high. */
static uint64_t dirtyable_bytes(const struct mk_meminfo *mi)
{
	return mi->mem_free + mi->active_file + mi->inactive_file;
}

struct thresholds {
	uint64_t background, blocking;
	bool background_from_bytes, blocking_from_bytes, background_halved;
};

static uint64_t round_up_pages(uint64_t bytes, uint64_t page)
{
	return (bytes + page - 1) / page * page;
}

static void derive_thresholds(const struct dirty_values *dv, uint64_t dirtyable,
			      struct thresholds *th)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t bytes = value_of(dv, "dirty_bytes");
	uint64_t bg_bytes = value_of(dv, "dirty_background_bytes");

	memset(th, 0, sizeof(*th));
	th->blocking_from_bytes = bytes != 0;
	th->blocking = bytes ? round_up_pages(bytes, page)
			     : dirtyable / page * value_of(dv, "dirty_ratio") / 100 * page;
	th->background_from_bytes = bg_bytes != 0;
	th->background =
	    bg_bytes ? round_up_pages(bg_bytes, page)
		     : dirtyable / page * value_of(dv, "dirty_background_ratio") / 100 * page;
	/* The kernel keeps background below blocking: it halves it otherwise. */
	if (th->background >= th->blocking) {
		th->background = th->blocking / 2;
		th->background_halved = true;
	}
}

static bool vmstat_pages(const char *key, uint64_t *bytes)
{
	char *text = mk_proc_read_file("/proc/vmstat", NULL);
	size_t klen = strlen(key);
	bool found = false;

	if (!text)
		return false;
	for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n"))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			uint64_t pages;
			found = mk_parse_u64(line + klen + 1, &pages) == 0;
			*bytes = pages * (uint64_t)sysconf(_SC_PAGESIZE);
		}
	free(text);
	return found;
}

static void add_threshold_row(struct mk_table *t, const char *name, uint64_t size,
			      const char *kernel_key, const char *how)
{
	struct libscols_line *ln = mk_table_new_line(t);
	uint64_t kernel;

	mk_table_set_str(t, ln, TCOL_NAME, name);
	mk_table_set_size(t, ln, TCOL_SIZE, size);
	if (kernel_key && vmstat_pages(kernel_key, &kernel))
		mk_table_set_size(t, ln, TCOL_KERNEL, kernel);
	else
		mk_table_set_str(t, ln, TCOL_KERNEL, t->out->json ? "null" : "-");
	mk_table_set_str(t, ln, TCOL_HOW, how);
}

static void describe_threshold(char *buf, size_t len, bool from_bytes, const char *setting,
			       uint64_t value, uint64_t dirtyable, bool halved)
{
	char h[MK_SIZE_BUFSZ];

	if (from_bytes)
		snprintf(buf, len, "%s_bytes, rounded up to pages", setting);
	else
		snprintf(buf, len, "%s_ratio %" PRIu64 "%% of dirtyable %s%s", setting, value,
			 mk_size_human(dirtyable, h),
			 halved ? ", halved to stay below dirty_ratio" : "");
}

static void fill_thresholds(struct mk_table *t, const struct dirty_values *dv,
			    const struct mk_meminfo *mi)
{
	char how[160];
	struct thresholds th;
	uint64_t dirtyable = dirtyable_bytes(mi);

	derive_thresholds(dv, dirtyable, &th);
	add_threshold_row(
	    t, "dirtyable", dirtyable, NULL,
	    "MemFree + Active(file) + Inactive(file); the kernel also subtracts a reserve");
	describe_threshold(how, sizeof(how), th.background_from_bytes, "dirty_background",
			   value_of(dv, "dirty_background_ratio"), dirtyable, th.background_halved);
	add_threshold_row(t, "background", th.background, "nr_dirty_background_threshold", how);
	describe_threshold(how, sizeof(how), th.blocking_from_bytes, "dirty",
			   value_of(dv, "dirty_ratio"), dirtyable, false);
	add_threshold_row(t, "blocking", th.blocking, "nr_dirty_threshold", how);
	add_threshold_row(t, "Dirty", mi->dirty, NULL, "now waiting to be written (meminfo)");
	add_threshold_row(t, "Writeback", mi->writeback, NULL, "now being written (meminfo)");
}

/* ------------------------------------------------------------ show */

static void fill_settings(struct mk_table *t, struct dirty_values *dv, int *failures)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		char shown[64];
		dv->ok[i] = read_setting(&settings[i], &dv->v[i]) == 0;
		if (!dv->ok[i]) {
			char rel[96];
			snprintf(rel, sizeof(rel), "/proc/sys/vm/%s", settings[i].name);
			mk_proc_warn_open(rel);
			(*failures)++;
			continue;
		}
		struct libscols_line *ln = mk_table_new_line(t);
		format_shown(&settings[i], dv->v[i], shown, sizeof(shown));
		mk_table_set_str(t, ln, COL_NAME, settings[i].name);
		mk_table_set_u64(t, ln, COL_VALUE, dv->v[i]);
		mk_table_set_str(t, ln, COL_UNIT, unit_name(settings[i].unit));
		mk_table_set_str(t, ln, COL_SHOWN, shown);
		mk_table_set_str(t, ln, COL_MEANING, settings[i].meaning);
	}
}

static int show(const struct mk_output *out)
{
	struct mk_table st, tt;
	struct dirty_values dv = {0};
	struct mk_meminfo mi;
	int failures = 0, rc = 0;

	/* -o selects the settings table's columns; thresholds keep theirs */
	struct mk_output tout = *out;
	tout.columns = NULL;
	mk_table_init(&st, out, "settings", setting_infos, ARRAY_SIZE(setting_infos), setting_cols,
		      ARRAY_SIZE(setting_cols));
	mk_table_init(&tt, &tout, "thresholds", threshold_infos, ARRAY_SIZE(threshold_infos),
		      threshold_cols, ARRAY_SIZE(threshold_cols));
	fill_settings(&st, &dv, &failures);
	if (mk_meminfo_read(&mi) < 0) {
		mk_proc_warn_open("/proc/meminfo");
		failures++;
	} else {
		fill_thresholds(&tt, &dv, &mi);
	}
	if (out->json) {
		mk_json_begin();
		rc |= mk_table_print_member(&st);
		rc |= mk_table_print_member(&tt);
		mk_json_end();
	} else {
		rc |= mk_table_print(&st);
		putchar('\n');
		rc |= mk_table_print(&tt);
	}
	mk_table_free(&st);
	mk_table_free(&tt);
	return failures || rc ? 1 : 0;
}

/* ------------------------------------------------------------ --set */

static MK_NORETURN void invalid_value(const char *name, const char *value, const char *why)
{
	mk_warnx("invalid value for %s: '%s' (%s)", name, value, why);
	mk_errtryhelp();
}

/* Checks VALUE against what the kernel accepts; returns it as a number. */
static uint64_t validate_value(const struct dirty_setting *s, const char *value)
{
	uint64_t v;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	switch (s->unit) {
	case UNIT_BYTES:
		if (mk_parse_size(value, &v) < 0)
			invalid_value(s->name, value, "expected bytes, e.g. 268435456 or 256M");
		/* the kernel refuses dirty_bytes below two pages */
		if (!strcmp(s->name, "dirty_bytes") && v < 2 * page)
			invalid_value(s->name, value,
				      "at least two pages; set dirty_ratio instead");
		if (v == 0)
			invalid_value(s->name, value, "must be positive; set the _ratio to use it");
		return v;
	case UNIT_PERCENT:
		if (mk_parse_u64(value, &v) < 0 || v > 100)
			invalid_value(s->name, value, "expected a percentage 0..100");
		return v;
	default:
		if (mk_parse_u64(value, &v) < 0 || v > INT_MAX)
			invalid_value(s->name, value, "expected a non-negative integer");
		return v;
	}
}

static int set_value(const char *assignment)
{
	char name[64], rel[96], num[32];
	const char *eq = strchr(assignment, '=');
	const struct dirty_setting *s;
	uint64_t old = 0;

	if (!eq || (size_t)(eq - assignment) >= sizeof(name)) {
		mk_warnx("--set expects NAME=VALUE, got '%s'", assignment);
		mk_errtryhelp();
	}
	snprintf(name, sizeof(name), "%.*s", (int)(eq - assignment), assignment);
	s = find_setting(name, NULL);
	if (!s) {
		mk_warnx("unknown setting: '%s' (see 'memkit dirty' for the names)", name);
		mk_errtryhelp();
	}
	uint64_t v = validate_value(s, eq + 1);
	snprintf(rel, sizeof(rel), "/proc/sys/vm/%s", s->name);
	snprintf(num, sizeof(num), "%" PRIu64 "\n", v);
	read_setting(s, &old);
	if (mk_proc_write(rel, num) < 0) {
		if (errno == EACCES || errno == EPERM)
			mk_errx(1, "setting vm.%s needs root (CAP_SYS_ADMIN)", s->name);
		mk_err(1, "cannot write %s", rel);
	}
	printf("vm.%s: %" PRIu64 " -> %" PRIu64 " %s\n", s->name, old, v, unit_name(s->unit));
	if (s->unit == UNIT_BYTES || s->unit == UNIT_PERCENT)
		printf("(the kernel sets the matching _%s setting to 0: one of the pair applies)\n",
		       s->unit == UNIT_BYTES ? "ratio" : "bytes");
	return 0;
}

/* ------------------------------------------------------------ main */

static MK_NORETURN void usage(void)
{
	fputs("Usage:\n memkit dirty [options]\n\n"
	      "The vm.dirty_* page-cache writeback settings, the thresholds they give\n"
	      "in bytes on this machine, and how much is dirty now.\n\n"
	      "Options:\n"
	      "     --set <name>=<value>  validate and write one setting (root), e.g.\n"
	      "                           --set dirty_ratio=15 or --set "
	      "vm.dirty_bytes=512M\n" MK_OUTPUT_USAGE MK_COMMON_USAGE,
	      stdout);
	mk_colinfo_usage(stdout, setting_infos, ARRAY_SIZE(setting_infos));
	exit(0);
}

enum { OPT_SET = CHAR_MAX + 1 };

int cmd_dirty(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"set", required_argument, NULL, OPT_SET},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct mk_output out = {0};
	const char *assignment = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		if (c == 'h')
			usage();
		if (c == OPT_SET) {
			assignment = optarg;
			continue;
		}
		if (mk_output_parse_opt(c, optarg, &out) || mk_common_parse_opt(c, optarg))
			continue;
		mk_errtryhelp();
	}
	mk_no_operands(argc, argv);
	return assignment ? set_value(assignment) : show(&out);
}
