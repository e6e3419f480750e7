/* cmd-buddy.c - memkit buddy: the kernel's buddy-allocator free lists from
 * /proc/buddyinfo, one row per node, zone and order (blocks of 1..1024 pages),
 * the free memory held at each order and the unusable free space index, the
 * figure the kernel's extfrag code shows in debugfs, computed from the counts
 * so neither root nor debugfs is needed.
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

/* MAX_ORDER is 11 on most configurations (orders 0..10); some arm64 and
 * powerpc kernels have more. The line's column count decides. */
#define BUDDY_MAX_ORDERS 16
#define BUDDY_MAX_ZONES	 256

struct buddy_zone {
	int node;
	char name[32];
	int norders;
	uint64_t blocks[BUDDY_MAX_ORDERS]; /* free blocks of 2^order pages */
};

struct buddy_info {
	size_t nzones;
	struct buddy_zone zones[BUDDY_MAX_ZONES];
};

enum {
	COL_NODE,
	COL_ZONE,
	COL_ORDER,
	COL_PAGES,
	COL_BLOCKSIZE,
	COL_BLOCKS,
	COL_FREE,
	COL_USABLE,
	COL_UNUSABLE,
};

static const struct mk_colinfo infos[] = {
    [COL_NODE] = {"NODE", 4, SCOLS_FL_RIGHT, "NUMA node", MK_COL_NUMBER},
    [COL_ZONE] = {"ZONE", 7, 0, "memory zone (DMA, DMA32, Normal, Movable...)", MK_COL_STRING},
    [COL_ORDER] = {"ORDER", 5, SCOLS_FL_RIGHT, "block order: blocks of 2^order pages",
		   MK_COL_NUMBER},
    [COL_PAGES] = {"PAGES", 5, SCOLS_FL_RIGHT, "pages per block", MK_COL_NUMBER},
    [COL_BLOCKSIZE] = {"BLOCKSIZE", 6, SCOLS_FL_RIGHT, "bytes per block", MK_COL_SIZE},
    [COL_BLOCKS] = {"BLOCKS", 7, SCOLS_FL_RIGHT, "free blocks of this order", MK_COL_NUMBER},
    [COL_FREE] = {"FREE", 7, SCOLS_FL_RIGHT, "free memory in blocks of this order", MK_COL_SIZE},
    [COL_USABLE] = {"USABLE", 7, SCOLS_FL_RIGHT, "free memory in blocks of this order or larger",
		    MK_COL_SIZE},
    [COL_UNUSABLE] = {"UNUSABLE", 8, SCOLS_FL_RIGHT,
		      "unusable free space index for a request of this order (0..1)", MK_COL_FLOAT},
};

static const int default_columns[] = {COL_NODE,	  COL_ZONE, COL_ORDER,	 COL_BLOCKSIZE,
				      COL_BLOCKS, COL_FREE, COL_UNUSABLE};

static noreturn void usage(void)
{
	fputs("\nUsage:\n memkit buddy [options]\n\n"
	      "Show the buddy allocator's free blocks per node, zone and order from\n"
	      "/proc/buddyinfo, and the unusable free space index per order.\n\n"
	      "Options:\n"
	      " -N, --node <n>         only this NUMA node\n"
	      " -z, --zone <name>      only this zone (e.g. Normal)\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

/* One line: "Node 0, zone   Normal    726    157 ...". Returns 0, or -1 when
 * the line is not in that form. */
static int parse_buddy_line(const char *line, struct buddy_zone *z)
{
	int used = 0;

	memset(z, 0, sizeof(*z));
	if (sscanf(line, "Node %d, zone %31s%n", &z->node, z->name, &used) != 2)
		return -1;
	const char *p = line + used;
	while (z->norders < BUDDY_MAX_ORDERS) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (end == p || errno)
			break;
		z->blocks[z->norders++] = v;
		p = end;
	}
	return z->norders > 0 ? 0 : -1;
}

static int parse_buddyinfo(char *text, struct buddy_info *bi)
{
	char *save = NULL;

	bi->nzones = 0;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (bi->nzones == BUDDY_MAX_ZONES)
			break;
		if (parse_buddy_line(line, &bi->zones[bi->nzones]) < 0) {
			mk_warnx("/proc/buddyinfo: unexpected line: %s", line);
			return -1;
		}
		bi->nzones++;
	}
	return 0;
}

static uint64_t zone_free_pages(const struct buddy_zone *z)
{
	uint64_t pages = 0;

	for (int k = 0; k < z->norders; k++)
		pages += z->blocks[k] << k;
	return pages;
}

/* Free pages that sit in blocks big enough for a request of this order. */
static uint64_t zone_usable_pages(const struct buddy_zone *z, int order)
{
	uint64_t pages = 0;

	for (int k = order; k < z->norders; k++)
		pages += z->blocks[k] << k;
	return pages;
}

/* The unusable free space index (Mel Gorman's extfrag metric): the share of
 * free memory that cannot serve a request of this order because it lies in
 * smaller blocks. Like the kernel, in whole thousandths rounded down, so the
 * figure equals /sys/kernel/debug/extfrag/unusable_index. */
static double unusable_index(const struct buddy_zone *z, int order)
{
	uint64_t free_pages = zone_free_pages(z);

	if (free_pages == 0)
		return 0.0;
	uint64_t unusable = free_pages - zone_usable_pages(z, order);
	uint64_t thousandths = unusable * 1000 / free_pages;
	return (double)thousandths / 1000.0;
}

static void add_order_line(struct mk_table *t, const struct buddy_zone *z, int order,
			   uint64_t page_size)
{
	struct libscols_line *ln = mk_table_new_line(t);
	uint64_t pages = UINT64_C(1) << order;

	mk_table_set_i64(t, ln, COL_NODE, z->node);
	mk_table_set_str(t, ln, COL_ZONE, z->name);
	mk_table_set_i64(t, ln, COL_ORDER, order);
	mk_table_set_u64(t, ln, COL_PAGES, pages);
	mk_table_set_size(t, ln, COL_BLOCKSIZE, pages * page_size);
	mk_table_set_u64(t, ln, COL_BLOCKS, z->blocks[order]);
	mk_table_set_size(t, ln, COL_FREE, z->blocks[order] * pages * page_size);
	mk_table_set_size(t, ln, COL_USABLE, zone_usable_pages(z, order) * page_size);
	mk_table_set_double(t, ln, COL_UNUSABLE, unusable_index(z, order), 3);
}

struct buddy_filter {
	int node; /* -1: all */
	const char *zone;
};

static bool zone_is_wanted(const struct buddy_zone *z, const struct buddy_filter *f)
{
	if (f->node >= 0 && z->node != f->node)
		return false;
	return !f->zone || !strcasecmp(f->zone, z->name);
}

static int print_buddyinfo(const struct buddy_info *bi, const struct mk_output *out,
			   const struct buddy_filter *f)
{
	struct mk_table t;
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	size_t shown = 0;

	mk_table_init(&t, out, "buddyinfo", infos, ARRAY_SIZE(infos), default_columns,
		      ARRAY_SIZE(default_columns));
	for (size_t i = 0; i < bi->nzones; i++) {
		const struct buddy_zone *z = &bi->zones[i];
		if (!zone_is_wanted(z, f))
			continue;
		for (int order = 0; order < z->norders; order++)
			add_order_line(&t, z, order, page_size);
		shown++;
	}
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	if (shown == 0) {
		mk_warnx("no zone matches the --node/--zone given");
		return 1;
	}
	return rc ? 1 : 0;
}

int cmd_buddy(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"node", required_argument, NULL, 'N'},
	    {"zone", required_argument, NULL, 'z'},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct mk_output out = {0};
	struct buddy_filter filter = {.node = -1};
	int c;

	while ((c = getopt_long(argc, argv, "N:z:hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'N':
			filter.node = (int)mk_strtou64_or_err(optarg, "node");
			break;
		case 'z':
			filter.zone = optarg;
			break;
		case 'h':
			usage();
		default:
			if (mk_output_parse_opt(c, optarg, &out))
				break;
			if (mk_common_parse_opt(c, optarg))
				break;
			mk_errtryhelp();
		}
	}
	mk_no_operands(argc, argv);

	char *text = mk_proc_read_file("/proc/buddyinfo", NULL);
	if (!text) {
		mk_proc_warn_open("/proc/buddyinfo");
		return 1;
	}
	struct buddy_info *bi = malloc(sizeof(*bi));
	if (!bi)
		mk_err(1, "cannot allocate memory");
	int rc = parse_buddyinfo(text, bi) < 0 ? 1 : print_buddyinfo(bi, &out, &filter);
	free(bi);
	free(text);
	return rc;
}
