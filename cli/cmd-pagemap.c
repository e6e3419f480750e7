/* cmd-pagemap.c - memkit pagemap PID ADDR[+LEN]: the page-table entry of
 * each virtual page in a range of a process, from /proc/PID/pagemap (one
 * 64-bit word per page; Documentation/admin-guide/mm/pagemap.rst): present,
 * swapped, file-backed or shared-anonymous, exclusively mapped, soft-dirty,
 * and the physical frame number, which the kernel shows only to a caller
 * with CAP_SYS_ADMIN (others read 0).
 * May call cli.h (options, messages, tables) and procfs.h (--proc-root reads).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

/* The bits of a pagemap entry. */
#define PM_PRESENT	  (UINT64_C(1) << 63)
#define PM_SWAPPED	  (UINT64_C(1) << 62)
#define PM_FILE_OR_SHARED (UINT64_C(1) << 61)
#define PM_EXCLUSIVE	  (UINT64_C(1) << 56)
#define PM_SOFT_DIRTY	  (UINT64_C(1) << 55)
#define PM_PFN_MASK	  ((UINT64_C(1) << 55) - 1)
#define PM_SWAP_TYPE_BITS 5
#define PM_SWAP_TYPE_MASK ((UINT64_C(1) << PM_SWAP_TYPE_BITS) - 1)

struct vma {
	uint64_t start, end;
	char perms[5];
	char path[PATH_MAX];
};

struct vma_list {
	size_t n, cap;
	struct vma *v;
};

struct page_range {
	uint64_t addr; /* first page, aligned down */
	uint64_t npages;
};

enum {
	COL_ADDRESS,
	COL_PRESENT,
	COL_SWAPPED,
	COL_KIND,
	COL_EXCLUSIVE,
	COL_SOFTDIRTY,
	COL_PFN,
	COL_SWAPTYPE,
	COL_SWAPOFFSET,
	COL_ENTRY,
	COL_MAPPING,
};

static const struct mk_colinfo infos[] = {
    [COL_ADDRESS] = {"ADDRESS", 16, SCOLS_FL_RIGHT, "virtual address of the page (hex)",
		     MK_COL_STRING},
    [COL_PRESENT] = {"PRESENT", 3, 0, "the page is in RAM", MK_COL_BOOL},
    [COL_SWAPPED] = {"SWAPPED", 3, 0, "the page is in swap", MK_COL_BOOL},
    [COL_KIND] = {"KIND", 6, 0, "file, shared-anon or anon (for a present or swapped page)",
		  MK_COL_STRING},
    [COL_EXCLUSIVE] = {"EXCLUSIVE", 3, 0, "mapped by this process only", MK_COL_BOOL},
    [COL_SOFTDIRTY] = {"SOFTDIRTY", 3, 0, "written since soft-dirty bits were last cleared",
		       MK_COL_BOOL},
    [COL_PFN] = {"PFN", 8, SCOLS_FL_RIGHT,
		 "physical frame number (hex; empty without CAP_SYS_ADMIN)", MK_COL_STRING},
    [COL_SWAPTYPE] = {"SWAPTYPE", 3, SCOLS_FL_RIGHT, "swap area of a swapped page", MK_COL_NUMBER},
    [COL_SWAPOFFSET] = {"SWAPOFFSET", 8, SCOLS_FL_RIGHT, "page offset in that swap area",
			MK_COL_NUMBER},
    [COL_ENTRY] = {"ENTRY", 16, SCOLS_FL_RIGHT, "the raw 64-bit pagemap entry (hex)",
		   MK_COL_STRING},
    [COL_MAPPING] = {"MAPPING", 0.3, 0, "the mapping the page belongs to", MK_COL_STRING},
};

static const int default_columns[] = {COL_ADDRESS,   COL_PRESENT,   COL_SWAPPED, COL_KIND,
				      COL_EXCLUSIVE, COL_SOFTDIRTY, COL_PFN,	 COL_MAPPING};

static noreturn void usage(void)
{
	fputs("\nUsage:\n memkit pagemap [options] <pid> <address>[+<length>]\n\n"
	      "Show the page-table entry of each page of a process from <address> (hex)\n"
	      "for <length> bytes (default: one page; suffixes K, M, G). Physical frame\n"
	      "numbers need CAP_SYS_ADMIN.\n\n"
	      "Options:\n",
	      stdout);
	fputs(MK_OUTPUT_USAGE, stdout);
	fputs(MK_COMMON_USAGE, stdout);
	fputs("\nAvailable output columns:\n", stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

/* ------------------------------------------------------------ arguments */

static int parse_hex_address(const char *s, uint64_t *addr)
{
	char *end = NULL;

	if (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2))
		s += 2;
	if (!*s || strchr(s, '-') || strchr(s, '+'))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 16);
	if (errno || *end)
		return -1;
	*addr = v;
	return 0;
}

/* "ADDR" or "ADDR+LEN": the pages that hold [ADDR, ADDR+LEN). */
static void parse_range_or_err(const char *arg, uint64_t page_size, struct page_range *r)
{
	char addr_text[64];
	const char *plus = strchr(arg, '+');
	size_t alen = plus ? (size_t)(plus - arg) : strlen(arg);
	uint64_t addr, len = 1;

	if (alen >= sizeof(addr_text) ||
	    (snprintf(addr_text, sizeof(addr_text), "%.*s", (int)alen, arg),
	     parse_hex_address(addr_text, &addr) < 0)) {
		mk_warnx("invalid address: '%s' (expected hex, e.g. 0x7f0000001000)", arg);
		mk_errtryhelp();
	}
	if (plus && (mk_parse_size(plus + 1, &len) < 0 || len == 0)) {
		mk_warnx("invalid length: '%s'", plus + 1);
		mk_errtryhelp();
	}
	if (len > UINT64_MAX - addr) {
		mk_warnx("invalid range: '%s' wraps around the address space", arg);
		mk_errtryhelp();
	}
	r->addr = addr & ~(page_size - 1);
	r->npages = (addr + len - r->addr + page_size - 1) / page_size;
}

/* ------------------------------------------------------------ maps */

static int vma_list_add(struct vma_list *l, const struct vma *v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct vma *p = realloc(l->v, cap * sizeof(*p));
		if (!p)
			return -1;
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *v;
	return 0;
}

static int parse_maps(char *text, struct vma_list *l)
{
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct vma v = {0};
		int used = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %*s %*s %*s%n", &v.start, &v.end,
			   v.perms, &used) != 3)
			continue;
		snprintf(v.path, sizeof(v.path), "%s", line + used + strspn(line + used, " \t"));
		if (vma_list_add(l, &v) < 0)
			mk_err(1, "cannot allocate memory");
	}
	return 0;
}

static const struct vma *vma_of(const struct vma_list *l, uint64_t addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (addr >= l->v[i].start && addr < l->v[i].end)
			return &l->v[i];
	return NULL;
}

/* Another user's process: say who may read it, not only EACCES. */
static void warn_unreadable(const char *rel)
{
	int saved = errno;

	if (saved == EACCES || saved == EPERM) {
		char path[PATH_MAX];
		mk_warnx("cannot open %s: %s (only the process's owner or root may read it)",
			 mk_proc_path(rel, path, sizeof(path)), strerror(saved));
	} else {
		mk_proc_warn_open(rel);
	}
}

static int read_maps(pid_t pid, struct vma_list *l)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/maps", (int)pid);
	char *text = mk_proc_read_file(rel, NULL);
	if (!text) {
		warn_unreadable(rel);
		return -1;
	}
	parse_maps(text, l);
	free(text);
	return 0;
}

/* ------------------------------------------------------------ entries */

/* The kernel zeroes PFNs for readers without CAP_SYS_ADMIN (since 4.2). */
static bool caller_sees_pfns(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32));
}

static const char *page_kind(uint64_t e, const struct vma *v)
{
	if (!(e & (PM_PRESENT | PM_SWAPPED)))
		return "";
	if (!(e & PM_FILE_OR_SHARED))
		return "anon";
	return v && v->path[0] == '/' ? "file" : "shared-anon";
}

static void set_swap_cells(struct mk_table *t, struct libscols_line *ln, uint64_t e)
{
	if (!(e & PM_SWAPPED))
		return;
	uint64_t bits = e & PM_PFN_MASK;
	mk_table_set_u64(t, ln, COL_SWAPTYPE, bits & PM_SWAP_TYPE_MASK);
	mk_table_set_u64(t, ln, COL_SWAPOFFSET, bits >> PM_SWAP_TYPE_BITS);
}

static void add_page_line(struct mk_table *t, uint64_t addr, uint64_t e, const struct vma *v,
			  bool pfn_visible)
{
	struct libscols_line *ln = mk_table_new_line(t);
	char buf[64];

	snprintf(buf, sizeof(buf), "%016" PRIx64, addr);
	mk_table_set_str(t, ln, COL_ADDRESS, buf);
	mk_table_set_bool(t, ln, COL_PRESENT, e & PM_PRESENT);
	mk_table_set_bool(t, ln, COL_SWAPPED, e & PM_SWAPPED);
	mk_table_set_str(t, ln, COL_KIND, page_kind(e, v));
	mk_table_set_bool(t, ln, COL_EXCLUSIVE, e & PM_EXCLUSIVE);
	mk_table_set_bool(t, ln, COL_SOFTDIRTY, e & PM_SOFT_DIRTY);
	if ((e & PM_PRESENT) && pfn_visible) {
		snprintf(buf, sizeof(buf), "%" PRIx64, e & PM_PFN_MASK);
		mk_table_set_str(t, ln, COL_PFN, buf);
	}
	set_swap_cells(t, ln, e);
	snprintf(buf, sizeof(buf), "%016" PRIx64, e);
	mk_table_set_str(t, ln, COL_ENTRY, buf);
	mk_table_set_str(t, ln, COL_MAPPING, v ? (v->path[0] ? v->path : "[anon]") : "unmapped");
}

static int read_entry(int fd, uint64_t addr, uint64_t page_size, uint64_t *e)
{
	off_t off = (off_t)(addr / page_size * sizeof(*e));

	if (pread(fd, e, sizeof(*e), off) != (ssize_t)sizeof(*e))
		return -1;
	return 0;
}

static int print_pages(int fd, const struct page_range *r, const struct vma_list *maps,
		       uint64_t page_size, const struct mk_output *out)
{
	bool pfn_visible = caller_sees_pfns();
	struct mk_table t;
	int rc = 0;

	mk_table_init(&t, out, "pages", infos, ARRAY_SIZE(infos), default_columns,
		      ARRAY_SIZE(default_columns));
	for (uint64_t i = 0; i < r->npages; i++) {
		uint64_t addr = r->addr + i * page_size, e;
		if (read_entry(fd, addr, page_size, &e) < 0) {
			mk_warn("cannot read the pagemap entry of 0x%" PRIx64, addr);
			rc = 1;
			break;
		}
		add_page_line(&t, addr, e, vma_of(maps, addr), pfn_visible);
	}
	if (mk_table_print(&t))
		rc = 1;
	mk_table_free(&t);
	if (!pfn_visible && mk_table_has_column(&t, COL_PFN) && mk_isatty_stderr())
		mk_warnx("physical frame numbers are hidden without CAP_SYS_ADMIN");
	return rc;
}

static int open_pagemap(pid_t pid)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/pagemap", (int)pid);
	int fd = mk_proc_open(rel, O_RDONLY);
	if (fd < 0)
		warn_unreadable(rel);
	return fd;
}

int cmd_pagemap(int argc, char **argv)
{
	static const struct option longopts[] = {
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	struct mk_output out = {0};
	struct vma_list maps = {0};
	struct page_range range;
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	int c;

	while ((c = getopt_long(argc, argv, "hV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
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
	if (argc - optind != 2) {
		mk_warnx(argc - optind < 2 ? "expected a process ID and an address"
					   : "too many arguments");
		mk_errtryhelp();
	}
	pid_t pid = mk_strtopid_or_err(argv[optind]);
	parse_range_or_err(argv[optind + 1], page_size, &range);
	if (!mk_pid_exists(pid))
		mk_errx(1, "No such process: %d", (int)pid);
	if (read_maps(pid, &maps) < 0)
		return 1;
	int rc = 1;
	if (!vma_of(&maps, range.addr)) {
		mk_warnx("address 0x%" PRIx64 " is not mapped in process %d (see memkit maps %d)",
			 range.addr, (int)pid, (int)pid);
	} else {
		int fd = open_pagemap(pid);
		if (fd >= 0) {
			rc = print_pages(fd, &range, &maps, page_size, &out);
			close(fd);
		}
	}
	free(maps.v);
	return rc;
}
