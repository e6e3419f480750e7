/* cmd-slab.c - memkit slab: the kernel's slab caches from /proc/slabinfo
 * (format 2.1), sorted like slabtop(1) by objects, size, cache size, ...
 * /proc/slabinfo is mode 0400, so without root this says so and fails.
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

struct slab_cache {
	char name[64];
	uint64_t active_objs, num_objs, objsize, objperslab, pagesperslab;
	uint64_t active_slabs, num_slabs;
	uint64_t cache_bytes; /* num_slabs * pagesperslab * page size */
};

struct slab_list {
	size_t n, cap;
	struct slab_cache *caches;
};

enum {
	COL_OBJS,
	COL_ACTIVE,
	COL_USE,
	COL_OBJSIZE,
	COL_SLABS,
	COL_ACTIVESLABS,
	COL_OBJPERSLAB,
	COL_PAGESPERSLAB,
	COL_CACHESIZE,
	COL_NAME,
};

static const struct mk_colinfo infos[] = {
    [COL_OBJS] = {"OBJS", 7, SCOLS_FL_RIGHT, "objects allocated (active or not)", MK_COL_NUMBER},
    [COL_ACTIVE] = {"ACTIVE", 7, SCOLS_FL_RIGHT, "objects in use", MK_COL_NUMBER},
    [COL_USE] = {"USE", 4, SCOLS_FL_RIGHT, "percentage of objects in use", MK_COL_NUMBER},
    [COL_OBJSIZE] = {"OBJSIZE", 6, SCOLS_FL_RIGHT, "size of one object", MK_COL_SIZE},
    [COL_SLABS] = {"SLABS", 6, SCOLS_FL_RIGHT, "slabs allocated", MK_COL_NUMBER},
    [COL_ACTIVESLABS] = {"ACTIVESLABS", 6, SCOLS_FL_RIGHT, "slabs with objects in use",
			 MK_COL_NUMBER},
    [COL_OBJPERSLAB] = {"OBJ/SLAB", 4, SCOLS_FL_RIGHT, "objects per slab", MK_COL_NUMBER},
    [COL_PAGESPERSLAB] = {"PAGES/SLAB", 4, SCOLS_FL_RIGHT, "pages per slab", MK_COL_NUMBER},
    [COL_CACHESIZE] = {"CACHESIZE", 7, SCOLS_FL_RIGHT, "memory held by the cache's slabs",
		       MK_COL_SIZE},
    [COL_NAME] = {"NAME", 0.3, 0, "cache name", MK_COL_STRING},
};

static const int default_columns[] = {COL_OBJS,	 COL_ACTIVE,	 COL_USE,	COL_OBJSIZE,
				      COL_SLABS, COL_OBJPERSLAB, COL_CACHESIZE, COL_NAME};

/* Sort keys: slabtop's letters and words for them. */
enum slab_sort {
	SORT_ACTIVE,
	SORT_OBJPERSLAB,
	SORT_CACHESIZE,
	SORT_SLABS,
	SORT_ACTIVESLABS,
	SORT_NAME,
	SORT_OBJECTS,
	SORT_PAGES,
	SORT_OBJSIZE,
	SORT_USE,
};

struct sort_key {
	const char *word;
	enum slab_sort key;
	char letter;
};

static const struct sort_key sort_keys[] = {
    {"active", SORT_ACTIVE, 'a'},
    {"objperslab", SORT_OBJPERSLAB, 'b'},
    {"cachesize", SORT_CACHESIZE, 'c'},
    {"slabs", SORT_SLABS, 'l'},
    {"activeslabs", SORT_ACTIVESLABS, 'v'},
    {"name", SORT_NAME, 'n'},
    {"objects", SORT_OBJECTS, 'o'},
    {"pages", SORT_PAGES, 'p'},
    {"size", SORT_OBJSIZE, 's'},
    {"use", SORT_USE, 'u'},
};

static enum slab_sort sort_by = SORT_OBJECTS;

static noreturn void usage(void)
{
	fputs("\nUsage:\n memkit slab [options]\n\n"
	      "Show the kernel's slab caches from /proc/slabinfo (readable by root only),\n"
	      "sorted like slabtop.\n\n"
	      "Options:\n"
	      " -s, --sort <key>       sort by: active (a), objperslab (b), cachesize (c),\n"
	      "                        slabs (l), activeslabs (v), name (n), objects (o,\n"
	      "                        the default), pages (p), size (s: object size), use (u)\n"
	      " -t, --top <n>          show only the first n caches\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

static void parse_sort_key(const char *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(sort_keys); i++) {
		const struct sort_key *k = &sort_keys[i];
		if ((arg[0] == k->letter && !arg[1]) || !strcmp(arg, k->word)) {
			sort_by = k->key;
			return;
		}
	}
	mk_warnx("unknown sort key: '%s'", arg);
	mk_errtryhelp();
}

static unsigned use_percent(const struct slab_cache *s)
{
	return s->num_objs ? (unsigned)(s->active_objs * 100 / s->num_objs) : 0;
}

static uint64_t sort_value(const struct slab_cache *s)
{
	switch (sort_by) {
	case SORT_ACTIVE:
		return s->active_objs;
	case SORT_OBJPERSLAB:
		return s->objperslab;
	case SORT_CACHESIZE:
		return s->cache_bytes;
	case SORT_SLABS:
		return s->num_slabs;
	case SORT_ACTIVESLABS:
		return s->active_slabs;
	case SORT_PAGES:
		return s->pagesperslab;
	case SORT_OBJSIZE:
		return s->objsize;
	case SORT_USE:
		return use_percent(s);
	case SORT_OBJECTS:
	case SORT_NAME:
		break;
	}
	return s->num_objs;
}

/* Biggest first, as slabtop; names ascending, and break ties by name so the
 * order is the same on every run. */
static int compare_caches(const void *a, const void *b)
{
	const struct slab_cache *x = a, *y = b;

	if (sort_by != SORT_NAME) {
		uint64_t vx = sort_value(x), vy = sort_value(y);
		if (vx != vy)
			return vx < vy ? 1 : -1;
	}
	return strcmp(x->name, y->name);
}

/* "name active num objsize objperslab pagesperslab : tunables l b s :
 *  slabdata active_slabs num_slabs sharedavail" */
static int parse_slab_line(const char *line, struct slab_cache *s, uint64_t page_size)
{
	unsigned long long v[7];

	memset(s, 0, sizeof(*s));
	if (sscanf(line, "%63s %llu %llu %llu %llu %llu", s->name, &v[0], &v[1], &v[2], &v[3],
		   &v[4]) != 6)
		return -1;
	const char *data = strstr(line, ": slabdata");
	if (!data || sscanf(data, ": slabdata %llu %llu", &v[5], &v[6]) != 2)
		return -1;
	s->active_objs = v[0];
	s->num_objs = v[1];
	s->objsize = v[2];
	s->objperslab = v[3];
	s->pagesperslab = v[4];
	s->active_slabs = v[5];
	s->num_slabs = v[6];
	s->cache_bytes = s->num_slabs * s->pagesperslab * page_size;
	return 0;
}

static int slab_list_push(struct slab_list *l, const struct slab_cache *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		struct slab_cache *p = realloc(l->caches, cap * sizeof(*p));
		if (!p)
			return -1;
		l->caches = p;
		l->cap = cap;
	}
	l->caches[l->n++] = *s;
	return 0;
}

static int check_slabinfo_version(const char *line)
{
	if (!strncmp(line, "slabinfo - version: 2.", 22))
		return 0;
	mk_warnx("/proc/slabinfo: unsupported format: %s", line);
	return -1;
}

static int parse_slabinfo(char *text, struct slab_list *l)
{
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);

	if (!line || check_slabinfo_version(line) < 0)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		struct slab_cache s;
		if (line[0] == '#')
			continue;
		if (parse_slab_line(line, &s, page_size) < 0) {
			mk_warnx("/proc/slabinfo: unexpected line: %s", line);
			return -1;
		}
		if (slab_list_push(l, &s) < 0)
			mk_err(1, "cannot allocate memory");
	}
	return 0;
}

static void add_cache_line(struct mk_table *t, const struct slab_cache *s)
{
	struct libscols_line *ln = mk_table_new_line(t);

	mk_table_set_u64(t, ln, COL_OBJS, s->num_objs);
	mk_table_set_u64(t, ln, COL_ACTIVE, s->active_objs);
	mk_table_set_u64(t, ln, COL_USE, use_percent(s));
	mk_table_set_size(t, ln, COL_OBJSIZE, s->objsize);
	mk_table_set_u64(t, ln, COL_SLABS, s->num_slabs);
	mk_table_set_u64(t, ln, COL_ACTIVESLABS, s->active_slabs);
	mk_table_set_u64(t, ln, COL_OBJPERSLAB, s->objperslab);
	mk_table_set_u64(t, ln, COL_PAGESPERSLAB, s->pagesperslab);
	mk_table_set_size(t, ln, COL_CACHESIZE, s->cache_bytes);
	mk_table_set_str(t, ln, COL_NAME, s->name);
}

static int print_slabs(const struct slab_list *l, const struct mk_output *out, size_t top)
{
	struct mk_table t;

	mk_table_init(&t, out, "slabinfo", infos, ARRAY_SIZE(infos), default_columns,
		      ARRAY_SIZE(default_columns));
	for (size_t i = 0; i < l->n && (top == 0 || i < top); i++)
		add_cache_line(&t, &l->caches[i]);
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	return rc ? 1 : 0;
}

/* The kernel creates /proc/slabinfo mode 0400: say that, not just EACCES. */
static void warn_slabinfo_unreadable(void)
{
	if (errno == EACCES || errno == EPERM)
		mk_warnx("/proc/slabinfo is readable by root only");
	else
		mk_proc_warn_open("/proc/slabinfo");
}

int cmd_slab(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"sort", required_argument, NULL, 's'},
	    {"top", required_argument, NULL, 't'},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct mk_output out = {0};
	struct slab_list list = {0};
	size_t top = 0;
	int c;

	while ((c = getopt_long(argc, argv, "s:t:hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			parse_sort_key(optarg);
			break;
		case 't':
			top = (size_t)mk_strtou64_or_err(optarg, "number of caches");
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

	char *text = mk_proc_read_file("/proc/slabinfo", NULL);
	if (!text) {
		warn_slabinfo_unreadable();
		return 1;
	}
	int rc = 1;
	if (parse_slabinfo(text, &list) == 0) {
		if (list.n > 0)
			qsort(list.caches, list.n, sizeof(*list.caches), compare_caches);
		rc = print_slabs(&list, &out, top);
	}
	free(list.caches);
	free(text);
	return rc;
}
