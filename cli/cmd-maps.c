/* cmd-maps.c - memkit maps PID: a process's address space as the notes draw
 * it, from high to low addresses: stacks (one per thread), the mmap area
 * (libraries, file mappings, anonymous mappings), heap, bss, data, rodata,
 * text, plus vdso/vvar/vsyscall. Sizes, RSS, PSS, swap and dirty come from
 * /proc/PID/smaps; the totals equal those of pmap -x.
 * Thread stacks are found from each thread's saved stack pointer
 * (/proc/PID/task/TID/syscall, else kstkesp in .../stat); for a thread that
 * is on a CPU at that moment, from glibc's stack layout (a guard page below).
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

/* The regions, in the order the notes list them (high to low). */
enum region_class {
	RC_VSYSCALL,
	RC_STACK,
	RC_GUARD,
	RC_VDSO,
	RC_VVAR,
	RC_LIB,
	RC_FILE,
	RC_MMAP,
	RC_HEAP,
	RC_BSS,
	RC_DATA,
	RC_RODATA,
	RC_TEXT,
	RC_OTHER,
	RC_COUNT,
};

static const char *const class_names[RC_COUNT] = {
    [RC_VSYSCALL] = "vsyscall", [RC_STACK] = "stack", [RC_GUARD] = "guard", [RC_VDSO] = "vdso",
    [RC_VVAR] = "vvar",		[RC_LIB] = "lib",     [RC_FILE] = "file",   [RC_MMAP] = "mmap",
    [RC_HEAP] = "heap",		[RC_BSS] = "bss",     [RC_DATA] = "data",   [RC_RODATA] = "rodata",
    [RC_TEXT] = "text",		[RC_OTHER] = "other",
};

/* Amounts of one mapping, or of a sum of them, in bytes. */
struct region_usage {
	uint64_t size, rss, pss, swap, dirty;
};

struct region {
	uint64_t start, end;
	char perms[5];
	uint64_t offset, inode;
	char path[PATH_MAX]; /* empty for anonymous memory */
	struct region_usage use;
	enum region_class class;
	pid_t stack_tid; /* the thread whose stack this is, 0 if none, -1 unknown */
};

struct region_list {
	size_t n, cap;
	struct region *r;
};

enum {
	COL_START,
	COL_END,
	COL_SIZE,
	COL_RSS,
	COL_PSS,
	COL_SWAP,
	COL_DIRTY,
	COL_PERMS,
	COL_CLASS,
	COL_TID,
	COL_MAPPING,
};

static const struct mk_colinfo infos[] = {
    [COL_START] = {"START", 16, SCOLS_FL_RIGHT, "first address of the mapping (hex)",
		   MK_COL_STRING},
    [COL_END] = {"END", 16, SCOLS_FL_RIGHT, "address after the mapping's last byte (hex)",
		 MK_COL_STRING},
    [COL_SIZE] = {"SIZE", 6, SCOLS_FL_RIGHT, "virtual size", MK_COL_SIZE},
    [COL_RSS] = {"RSS", 6, SCOLS_FL_RIGHT, "resident in RAM", MK_COL_SIZE},
    [COL_PSS] = {"PSS", 6, SCOLS_FL_RIGHT, "resident, shared pages divided among their users",
		 MK_COL_SIZE},
    [COL_SWAP] = {"SWAP", 6, SCOLS_FL_RIGHT, "swapped out", MK_COL_SIZE},
    [COL_DIRTY] = {"DIRTY", 6, SCOLS_FL_RIGHT, "dirty pages, shared and private (as pmap -x)",
		   MK_COL_SIZE},
    [COL_PERMS] = {"PERMS", 4, 0, "permissions: read, write, execute, private/shared",
		   MK_COL_STRING},
    [COL_CLASS] = {"CLASS", 6, 0,
		   "region: stack, guard, mmap, lib, file, heap, bss, data, rodata, text, "
		   "vdso, vvar, vsyscall, other; total sums them",
		   MK_COL_STRING},
    [COL_TID] = {"TID", 5, SCOLS_FL_RIGHT, "thread owning a stack", MK_COL_NUMBER},
    [COL_MAPPING] = {"MAPPING", 0.3, 0, "file, or [heap], [stack:TID], [anon]...", MK_COL_STRING},
};

static const int default_columns[] = {COL_START, COL_SIZE,  COL_RSS,   COL_PSS,	   COL_SWAP,
				      COL_DIRTY, COL_PERMS, COL_CLASS, COL_MAPPING};
static const int summary_columns[] = {COL_CLASS, COL_SIZE, COL_RSS, COL_PSS, COL_SWAP, COL_DIRTY};

static noreturn void usage(void)
{
	fputs("\nUsage:\n memkit maps [options] <pid>\n\n"
	      "Show a process's memory regions from high to low addresses: stacks, mmap\n"
	      "area and libraries, heap, bss, data, rodata, text; with size, RSS, PSS,\n"
	      "swap and dirty memory from /proc/<pid>/smaps. The last row is the total\n"
	      "(its PSS from smaps_rollup).\n\n"
	      "Options:\n"
	      " -s, --summary          one row per region class instead of per mapping\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

/* ------------------------------------------------------------ smaps */

static struct region *region_list_add(struct region_list *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct region *p = realloc(l->r, cap * sizeof(*p));
		if (!p)
			mk_err(1, "cannot allocate memory");
		l->r = p;
		l->cap = cap;
	}
	struct region *r = &l->r[l->n++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* "55e0bb45f000-55e0bb461000 r--p 00000000 fe:00 248056   /usr/bin/sleep" */
static int parse_region_header(const char *line, struct region *r)
{
	int used = 0;

	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %" SCNu64 "%n", &r->start,
		   &r->end, r->perms, &r->offset, &r->inode, &used) != 5)
		return -1;
	const char *path = line + used;
	path += strspn(path, " \t");
	snprintf(r->path, sizeof(r->path), "%s", path);
	return 0;
}

static bool is_region_header(const char *line)
{
	/* Field lines start "Name:"; headers start with a hex address. */
	size_t hex = strspn(line, "0123456789abcdef");
	return hex > 0 && line[hex] == '-';
}

/* "Rss:                1828 kB": adds the field to the region's usage. */
static void parse_smaps_field(const char *line, struct region_usage *u)
{
	static const struct {
		const char *key;
		size_t offset;
	} fields[] = {
	    {"Size:", offsetof(struct region_usage, size)},
	    {"Rss:", offsetof(struct region_usage, rss)},
	    {"Pss:", offsetof(struct region_usage, pss)},
	    {"Swap:", offsetof(struct region_usage, swap)},
	    {"Shared_Dirty:", offsetof(struct region_usage, dirty)},
	    {"Private_Dirty:", offsetof(struct region_usage, dirty)},
	};

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		size_t klen = strlen(fields[i].key);
		if (strncmp(line, fields[i].key, klen) != 0)
			continue;
		uint64_t *v = (uint64_t *)((char *)u + fields[i].offset);
		*v += strtoull(line + klen, NULL, 10) * 1024;
		return;
	}
}

static int parse_smaps(char *text, struct region_list *l)
{
	struct region *cur = NULL;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (is_region_header(line)) {
			cur = region_list_add(l);
			if (parse_region_header(line, cur) < 0) {
				mk_warnx("smaps: unexpected line: %s", line);
				return -1;
			}
		} else if (cur) {
			parse_smaps_field(line, &cur->use);
		}
	}
	return 0;
}

/* ------------------------------------------------------------ threads */

/* /proc/PID/task/TID/syscall: "nr arg1..arg6 sp pc" for a thread blocked in
 * a system call, "-1 sp pc" for one stopped in user mode, "running" for one
 * on a CPU right now (no stack pointer then). */
static uint64_t sp_from_syscall_line(const char *text)
{
	unsigned long long v[8];
	long nr;
	int n = sscanf(text, "%ld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &v[0], &v[1],
		       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);

	if (n == 9)
		return v[6];
	if (n == 3 && nr == -1)
		return v[0];
	return 0;
}

/* A thread's user stack pointer from its syscall file; older kernels also
 * fill kstkesp, field 29 of .../stat. Returns 0 when neither knows. */
static uint64_t thread_stack_pointer(pid_t pid, const char *tid)
{
	char rel[512]; /* tid is a directory name: up to NAME_MAX */
	uint64_t sp = 0;

	snprintf(rel, sizeof(rel), "/proc/%d/task/%s/syscall", (int)pid, tid);
	char *text = mk_proc_read_file(rel, NULL);
	if (text) {
		sp = sp_from_syscall_line(text);
		free(text);
	}
	if (sp)
		return sp;
	snprintf(rel, sizeof(rel), "/proc/%d/task/%s/stat", (int)pid, tid);
	text = mk_proc_read_file(rel, NULL);
	if (!text)
		return 0;
	const char *p = strrchr(text, ')');
	/* After "(comm)", kstkesp is the 27th field (field 29 of the line). */
	for (int field = 0; p && field < 27; field++)
		p = strchr(p + 1, ' ');
	if (p)
		sp = strtoull(p + 1, NULL, 10);
	free(text);
	return sp;
}

static struct region *region_containing(struct region_list *l, uint64_t addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (addr >= l->r[i].start && addr < l->r[i].end)
			return &l->r[i];
	return NULL;
}

/* A thread that was on a CPU when read shows no stack pointer. Its stack
 * is then recognised by the shape glibc gives thread stacks: an anonymous
 * rw-p mapping right above an anonymous ---p guard. At most one guess per
 * such thread, from the highest address down; stack_tid -1 marks a guess. */
static void guess_running_thread_stacks(struct region_list *l, int unknown)
{
	for (size_t i = l->n; i-- > 1 && unknown > 0;) {
		struct region *r = &l->r[i], *below = &l->r[i - 1];
		if (r->stack_tid || r->path[0] || strcmp(r->perms, "rw-p") != 0)
			continue;
		if (below->path[0] || strcmp(below->perms, "---p") != 0 || below->end != r->start)
			continue;
		r->stack_tid = -1;
		unknown--;
	}
}

static void mark_thread_stacks(pid_t pid, struct region_list *l)
{
	int unknown = 0;
	char rel[64], path[PATH_MAX];

	snprintf(rel, sizeof(rel), "/proc/%d/task", (int)pid);
	DIR *d = opendir(mk_proc_path(rel, path, sizeof(path)));
	if (!d)
		return;
	for (struct dirent *de = readdir(d); de; de = readdir(d)) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		struct region *r = region_containing(l, thread_stack_pointer(pid, de->d_name));
		if (!r)
			unknown++;
		else if (!r->stack_tid)
			r->stack_tid = (pid_t)strtol(de->d_name, NULL, 10);
	}
	closedir(d);
	guess_running_thread_stacks(l, unknown);
}

/* ------------------------------------------------------------ classes */

static bool is_shared_library(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *so = strstr(base, ".so");
	return so && (so[3] == '\0' || so[3] == '.' || so[3] == ' ');
}

/* The program's own file: /proc/PID/exe, else (a dump without the link)
 * the file of the lowest file-backed mapping, where the loader puts it. */
static void find_executable(pid_t pid, const struct region_list *l, char *exe, size_t len)
{
	char rel[64], path[PATH_MAX];

	snprintf(rel, sizeof(rel), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(mk_proc_path(rel, path, sizeof(path)), exe, len - 1);
	if (n > 0) {
		exe[n] = '\0';
		return;
	}
	exe[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		if (l->r[i].path[0] == '/') {
			snprintf(exe, len, "%s", l->r[i].path);
			return;
		}
	}
}

static enum region_class executable_segment_class(const struct region *r)
{
	if (r->perms[2] == 'x')
		return RC_TEXT;
	if (r->perms[1] == 'w')
		return RC_DATA;
	return RC_RODATA;
}

static enum region_class pseudo_region_class(const char *path)
{
	if (!strcmp(path, "[heap]"))
		return RC_HEAP;
	if (!strncmp(path, "[stack", 6))
		return RC_STACK;
	if (!strcmp(path, "[vdso]"))
		return RC_VDSO;
	if (!strncmp(path, "[vvar", 5))
		return RC_VVAR;
	if (!strcmp(path, "[vsyscall]"))
		return RC_VSYSCALL;
	if (!strncmp(path, "[anon", 5))
		return RC_MMAP;
	return RC_OTHER;
}

static enum region_class anonymous_region_class(const struct region *r)
{
	if (!strcmp(r->perms, "---p"))
		return RC_GUARD;
	return RC_MMAP;
}

static enum region_class region_class_of(const struct region *r)
{
	if (r->stack_tid)
		return RC_STACK;
	if (r->path[0] == '[')
		return pseudo_region_class(r->path);
	if (r->path[0] == '\0')
		return anonymous_region_class(r);
	return is_shared_library(r->path) ? RC_LIB : RC_FILE;
}

/* The program image: the run of consecutive mappings of the executable that
 * starts with its first one. A later mmap of the same file elsewhere is a
 * file mapping, not text or data. Returns the index after the run. */
static size_t mark_program_image(struct region_list *l, const char *exe)
{
	size_t i = 0;

	while (i < l->n && strcmp(l->r[i].path, exe) != 0)
		i++;
	for (; i < l->n && !strcmp(l->r[i].path, exe); i++)
		l->r[i].class = executable_segment_class(&l->r[i]);
	return i;
}

/* bss: the anonymous read-write mapping that directly follows the image
 * (the part of .bss beyond the file's last page). */
static void mark_bss(struct region_list *l, size_t after_image)
{
	if (after_image == 0 || after_image >= l->n)
		return;
	struct region *prev = &l->r[after_image - 1], *r = &l->r[after_image];
	if (r->path[0] == '\0' && !strcmp(r->perms, "rw-p") && prev->end == r->start &&
	    !r->stack_tid)
		r->class = RC_BSS;
}

static void classify_regions(pid_t pid, struct region_list *l)
{
	char exe[PATH_MAX];

	mark_thread_stacks(pid, l);
	for (size_t i = 0; i < l->n; i++)
		l->r[i].class = region_class_of(&l->r[i]);
	find_executable(pid, l, exe, sizeof(exe));
	if (exe[0])
		mark_bss(l, mark_program_image(l, exe));
}

/* ------------------------------------------------------------ output */

static void usage_add(struct region_usage *sum, const struct region_usage *u)
{
	sum->size += u->size;
	sum->rss += u->rss;
	sum->pss += u->pss;
	sum->swap += u->swap;
	sum->dirty += u->dirty;
}

static void set_usage(struct mk_table *t, struct libscols_line *ln, const struct region_usage *u)
{
	mk_table_set_size(t, ln, COL_SIZE, u->size);
	mk_table_set_size(t, ln, COL_RSS, u->rss);
	mk_table_set_size(t, ln, COL_PSS, u->pss);
	mk_table_set_size(t, ln, COL_SWAP, u->swap);
	mk_table_set_size(t, ln, COL_DIRTY, u->dirty);
}

static void region_mapping_name(const struct region *r, char *buf, size_t len)
{
	if (r->stack_tid < 0 && r->path[0] == '\0')
		snprintf(buf, len, "[stack:?]");
	else if (r->stack_tid && r->path[0] == '\0')
		snprintf(buf, len, "[stack:%d]", (int)r->stack_tid);
	else if (r->path[0])
		snprintf(buf, len, "%s", r->path);
	else
		snprintf(buf, len, "[anon]");
}

static void add_region_line(struct mk_table *t, const struct region *r)
{
	struct libscols_line *ln = mk_table_new_line(t);
	char buf[PATH_MAX + 32];

	snprintf(buf, sizeof(buf), "%016" PRIx64, r->start);
	mk_table_set_str(t, ln, COL_START, buf);
	snprintf(buf, sizeof(buf), "%016" PRIx64, r->end);
	mk_table_set_str(t, ln, COL_END, buf);
	set_usage(t, ln, &r->use);
	mk_table_set_str(t, ln, COL_PERMS, r->perms);
	mk_table_set_str(t, ln, COL_CLASS, class_names[r->class]);
	if (r->stack_tid > 0)
		mk_table_set_i64(t, ln, COL_TID, r->stack_tid);
	region_mapping_name(r, buf, sizeof(buf));
	mk_table_set_str(t, ln, COL_MAPPING, buf);
}

static void add_total_line(struct mk_table *t, const struct region_usage *total)
{
	struct libscols_line *ln = mk_table_new_line(t);

	set_usage(t, ln, total);
	mk_table_set_str(t, ln, COL_CLASS, "total");
	mk_table_set_str(t, ln, COL_MAPPING, "total");
}

static void add_regions_high_to_low(struct mk_table *t, const struct region_list *l)
{
	for (size_t i = l->n; i-- > 0;)
		add_region_line(t, &l->r[i]);
}

/* Per class, in the notes' order (high to low), skipping empty classes. */
static void add_class_summary(struct mk_table *t, const struct region_list *l)
{
	struct region_usage sum[RC_COUNT] = {0};
	bool seen[RC_COUNT] = {false};

	for (size_t i = 0; i < l->n; i++) {
		usage_add(&sum[l->r[i].class], &l->r[i].use);
		seen[l->r[i].class] = true;
	}
	for (int c = 0; c < RC_COUNT; c++) {
		if (!seen[c])
			continue;
		struct libscols_line *ln = mk_table_new_line(t);
		mk_table_set_str(t, ln, COL_CLASS, class_names[c]);
		set_usage(t, ln, &sum[c]);
	}
}

/* The PSS of the whole process from smaps_rollup: the kernel sums it in
 * finer units than the whole kB each smaps entry is rounded to. */
static int rollup_pss(pid_t pid, uint64_t *bytes)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/smaps_rollup", (int)pid);
	char *text = mk_proc_read_file(rel, NULL);
	if (!text)
		return -1;
	const char *p = strstr(text, "\nPss:");
	if (p)
		*bytes = strtoull(p + 5, NULL, 10) * 1024;
	free(text);
	return p ? 0 : -1;
}

static int print_regions(pid_t pid, const struct region_list *l, const struct mk_output *out,
			 bool summary)
{
	struct region_usage total = {0};
	struct mk_table t;

	for (size_t i = 0; i < l->n; i++)
		usage_add(&total, &l->r[i].use);
	rollup_pss(pid, &total.pss);
	if (summary)
		mk_table_init(&t, out, "regions", infos, ARRAY_SIZE(infos), summary_columns,
			      ARRAY_SIZE(summary_columns));
	else
		mk_table_init(&t, out, "regions", infos, ARRAY_SIZE(infos), default_columns,
			      ARRAY_SIZE(default_columns));
	if (summary)
		add_class_summary(&t, l);
	else
		add_regions_high_to_low(&t, l);
	add_total_line(&t, &total);
	int rc = mk_table_print(&t);
	mk_table_free(&t);
	return rc ? 1 : 0;
}

static char *read_smaps_or_warn(pid_t pid)
{
	char rel[64], path[PATH_MAX];

	snprintf(rel, sizeof(rel), "/proc/%d/smaps", (int)pid);
	char *text = mk_proc_read_file(rel, NULL);
	if (text)
		return text;
	int saved = errno;
	if (saved == ENOENT && !mk_pid_exists(pid))
		mk_warnx("No such process: %d", (int)pid);
	else if (saved == EACCES || saved == EPERM)
		mk_warnx("cannot open %s: %s (only the process's owner or root may read it)",
			 mk_proc_path(rel, path, sizeof(path)), strerror(saved));
	else
		mk_proc_warn_open(rel);
	return NULL;
}

int cmd_maps(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"summary", no_argument, NULL, 's'},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct mk_output out = {0};
	struct region_list list = {0};
	bool summary = false;
	int c;

	while ((c = getopt_long(argc, argv, "shV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			summary = true;
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
	if (argc - optind != 1) {
		mk_warnx(optind < argc ? "too many arguments" : "no process ID given");
		mk_errtryhelp();
	}
	pid_t pid = mk_strtopid_or_err(argv[optind]);
	if (!mk_pid_exists(pid))
		mk_errx(1, "No such process: %d", (int)pid);

	char *text = read_smaps_or_warn(pid);
	if (!text)
		return 1;
	int rc = 1;
	if (parse_smaps(text, &list) == 0) {
		classify_regions(pid, &list);
		rc = print_regions(pid, &list, &out, summary);
	}
	free(list.r);
	free(text);
	return rc;
}
