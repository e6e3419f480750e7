/* cmd-drop-caches.c - "memkit drop-caches [pagecache|slab|all]": sync, write
 * 1, 2 or 3 to /proc/sys/vm/drop_caches, and show what buff/cache held
 * before and after. May call cli/common.c and cli/procfs.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

#define DROP_CACHES "/proc/sys/vm/drop_caches"

struct drop_mode {
	const char *name;
	const char *value; /* what the kernel expects in drop_caches */
	const char *what;
};

static const struct drop_mode modes[] = {
    {"pagecache", "1", "the page cache"},
    {"slab", "2", "reclaimable slab objects (dentries and inodes)"},
    {"all", "3", "the page cache and reclaimable slab objects"},
};

enum { COL_NAME, COL_BEFORE, COL_AFTER, COL_FREED };

static const struct mk_colinfo infos[] = {
    [COL_NAME] = {"NAME", 12, 0, "meminfo value", MK_COL_STRING},
    [COL_BEFORE] = {"BEFORE", 8, SCOLS_FL_RIGHT, "before dropping", MK_COL_SIZE},
    [COL_AFTER] = {"AFTER", 8, SCOLS_FL_RIGHT, "after dropping", MK_COL_SIZE},
    [COL_FREED] = {"FREED", 8, SCOLS_FL_RIGHT, "before - after (negative: grew)", MK_COL_SIZE},
};

static const int default_cols[] = {COL_NAME, COL_BEFORE, COL_AFTER, COL_FREED};

static MK_NORETURN void usage(void)
{
	fputs("Usage:\n memkit drop-caches [options] [pagecache|slab|all]\n\n"
	      "Write dirty data back (sync), then ask the kernel to drop clean caches:\n"
	      " pagecache  the page cache (echo 1 > " DROP_CACHES "), the default\n"
	      " slab       dentries and inodes (echo 2)\n"
	      " all        both (echo 3)\n"
	      "Nothing is lost: only clean, unused cache is freed; it costs disk reads\n"
	      "later. Needs root (CAP_SYS_ADMIN).\n\n"
	      "Options:\n" MK_OUTPUT_USAGE MK_COMMON_USAGE,
	      stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

static const struct drop_mode *find_mode(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(modes[i].name, name))
			return &modes[i];
	mk_warnx("unknown cache kind: '%s' (expected pagecache, slab or all)", name);
	mk_errtryhelp();
}

static void parse_options(int argc, char **argv, struct mk_output *out,
			  const struct drop_mode **mode)
{
	static const struct option longopts[] = {
	    MK_OUTPUT_LONGOPTS, MK_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		if (c == 'h')
			usage();
		if (mk_output_parse_opt(c, optarg, out) || mk_common_parse_opt(c, optarg))
			continue;
		mk_errtryhelp();
	}
	*mode = &modes[0];
	if (optind < argc)
		*mode = find_mode(argv[optind++]);
	mk_no_operands(argc, argv);
}

/* Signed difference as a size cell: "-1.5M" when the value grew. */
static void set_change(struct mk_table *t, struct libscols_line *ln, uint64_t before,
		       uint64_t after)
{
	char buf[MK_SIZE_BUFSZ + 1];
	bool grew = after > before;
	uint64_t d = grew ? after - before : before - after;

	buf[0] = '-';
	if (t->out->bytes)
		snprintf(buf + 1, sizeof(buf) - 1, "%" PRIu64, d);
	else
		mk_size_human(d, buf + 1);
	mk_table_set_str(t, ln, COL_FREED, grew ? buf : buf + 1);
}

static void add_row(struct mk_table *t, const char *name, uint64_t before, uint64_t after)
{
	struct libscols_line *ln = mk_table_new_line(t);

	mk_table_set_str(t, ln, COL_NAME, name);
	mk_table_set_size(t, ln, COL_BEFORE, before);
	mk_table_set_size(t, ln, COL_AFTER, after);
	set_change(t, ln, before, after);
}

static int report(const struct mk_output *out, const struct mk_meminfo *b,
		  const struct mk_meminfo *a)
{
	struct mk_table t;

	mk_table_init(&t, out, "drop-caches", infos, ARRAY_SIZE(infos), default_cols,
		      ARRAY_SIZE(default_cols));
	add_row(&t, "buff/cache", b->buffers + b->cached + b->sreclaimable,
		a->buffers + a->cached + a->sreclaimable);
	add_row(&t, "Buffers", b->buffers, a->buffers);
	add_row(&t, "Cached", b->cached, a->cached);
	add_row(&t, "SReclaimable", b->sreclaimable, a->sreclaimable);
	add_row(&t, "Dirty", b->dirty, a->dirty);
	add_row(&t, "MemFree", b->mem_free, a->mem_free);
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	return rc;
}

/* Open first, so that an unprivileged caller fails before any sync. */
static int open_drop_caches(void)
{
	int fd = mk_proc_open(DROP_CACHES, O_WRONLY);
	if (fd >= 0)
		return fd;
	if (errno == EACCES || errno == EPERM)
		mk_errx(1, "drop-caches needs root (CAP_SYS_ADMIN)");
	mk_proc_warn_open(DROP_CACHES);
	exit(1);
}

int cmd_drop_caches(int argc, char **argv)
{
	struct mk_output out = {0};
	const struct drop_mode *mode;
	struct mk_meminfo before, after;

	parse_options(argc, argv, &out, &mode);
	if (mk_meminfo_read(&before) < 0)
		mk_err(1, "cannot read /proc/meminfo");
	int fd = open_drop_caches();
	/* drop_caches frees only clean pages: write the dirty ones back first */
	sync();
	ssize_t w = write(fd, mode->value, 1);
	if (w != 1) {
		if (errno == EACCES || errno == EPERM)
			mk_errx(1, "drop-caches needs root (CAP_SYS_ADMIN)");
		mk_err(1, "cannot write %s", DROP_CACHES);
	}
	close(fd);
	if (mk_meminfo_read(&after) < 0)
		mk_err(1, "cannot read /proc/meminfo");
	if (!out.json && !out.raw)
		printf("Dropped %s (wrote %s to %s).\n", mode->what, mode->value, DROP_CACHES);
	return report(&out, &before, &after);
}
