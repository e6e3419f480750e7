/* cmd-swap.c - "memkit swap": swap devices and their use (/proc/swaps),
 * vm.swappiness, and the processes with most memory in swap (VmSwap);
 * --swappiness N writes the setting, --flush moves everything back into RAM
 * (swapoff + swapon of every device) unless MemAvailable cannot hold it.
 * May call libc (swapon/swapoff), cli/common.c and cli/procfs.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/swap.h>

#include "cli.h"
#include "commands.h"
#include "procfs.h"

#define SWAPPINESS "/proc/sys/vm/swappiness"
#define MAX_SWAPS  64
#define MAX_PROCS  4096

struct swap_device {
	char name[256];
	char type[32];
	uint64_t size, used;
	long prio;
};

struct swap_proc {
	pid_t pid;
	char comm[64];
	uint64_t swap;
};

enum { COL_NAME, COL_TYPE, COL_SIZE, COL_USED, COL_PRIO };

static const struct mk_colinfo dev_infos[] = {
    [COL_NAME] = {"NAME", 0.3, 0, "device or file", MK_COL_STRING},
    [COL_TYPE] = {"TYPE", 6, 0, "partition or file", MK_COL_STRING},
    [COL_SIZE] = {"SIZE", 6, SCOLS_FL_RIGHT, "size of the swap area", MK_COL_SIZE},
    [COL_USED] = {"USED", 6, SCOLS_FL_RIGHT, "bytes in use", MK_COL_SIZE},
    [COL_PRIO] = {"PRIO", 4, SCOLS_FL_RIGHT, "priority (higher is used first)", MK_COL_NUMBER},
};

static const int dev_cols[] = {COL_NAME, COL_TYPE, COL_SIZE, COL_USED, COL_PRIO};

enum { PCOL_PID, PCOL_SWAP, PCOL_COMMAND };

static const struct mk_colinfo proc_infos[] = {
    [PCOL_PID] = {"PID", 6, SCOLS_FL_RIGHT, "process ID", MK_COL_NUMBER},
    [PCOL_SWAP] = {"SWAP", 6, SCOLS_FL_RIGHT, "its memory in swap (VmSwap)", MK_COL_SIZE},
    [PCOL_COMMAND] = {"COMMAND", 0.3, 0, "its name", MK_COL_STRING},
};

static const int proc_cols[] = {PCOL_PID, PCOL_SWAP, PCOL_COMMAND};

struct swap_opts {
	struct mk_output out;
	uint64_t top;
	bool set_swappiness, flush;
	bool only_devices, only_processes;
	uint64_t swappiness;
};

/* ------------------------------------------------------------ readers */

/* /proc/swaps: a header line, then "name type size(kB) used(kB) prio". */
static int read_swaps(struct swap_device *devs, size_t max, size_t *n)
{
	char *text = mk_proc_read_file("/proc/swaps", NULL);
	char *save = NULL;

	*n = 0;
	if (!text)
		return -1;
	char *line;

	strtok_r(text, "\n", &save); /* the header line */
	while ((line = strtok_r(NULL, "\n", &save)) != NULL && *n < max) {
		struct swap_device *d = &devs[*n];
		unsigned long long size, used;
		if (sscanf(line, "%255s %31s %llu %llu %ld", d->name, d->type, &size, &used,
			   &d->prio) != 5)
			continue;
		d->size = size * 1024;
		d->used = used * 1024;
		(*n)++;
	}
	free(text);
	return 0;
}

struct proc_list {
	struct swap_proc *procs;
	size_t n;
};

static int collect_proc(pid_t pid, void *arg)
{
	struct proc_list *pl = arg;
	struct swap_proc p = {.pid = pid};

	/* processes can exit while we walk /proc: skip them quietly */
	if (mk_pid_status_kb(pid, "VmSwap", &p.swap) < 0 || p.swap == 0)
		return 0;
	if (mk_pid_status_str(pid, "Name", p.comm, sizeof(p.comm)) < 0)
		return 0;
	if (pl->n < MAX_PROCS)
		pl->procs[pl->n++] = p;
	return 0;
}

static int by_swap_desc(const void *a, const void *b)
{
	const struct swap_proc *x = a, *y = b;

	if (x->swap != y->swap)
		return x->swap < y->swap ? 1 : -1;
	return x->pid - y->pid;
}

/* ------------------------------------------------------------ show */

static void fill_devices(struct mk_table *t, const struct swap_device *devs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct libscols_line *ln = mk_table_new_line(t);
		mk_table_set_str(t, ln, COL_NAME, devs[i].name);
		mk_table_set_str(t, ln, COL_TYPE, devs[i].type);
		mk_table_set_size(t, ln, COL_SIZE, devs[i].size);
		mk_table_set_size(t, ln, COL_USED, devs[i].used);
		mk_table_set_i64(t, ln, COL_PRIO, devs[i].prio);
	}
}

static void fill_procs(struct mk_table *t, const struct proc_list *pl, uint64_t top)
{
	for (size_t i = 0; i < pl->n && i < top; i++) {
		struct libscols_line *ln = mk_table_new_line(t);
		mk_table_set_u64(t, ln, PCOL_PID, (uint64_t)pl->procs[i].pid);
		mk_table_set_size(t, ln, PCOL_SWAP, pl->procs[i].swap);
		mk_table_set_str(t, ln, PCOL_COMMAND, pl->procs[i].comm);
	}
}

static void print_summary(const struct mk_meminfo *mi, uint64_t swappiness, bool have_swappiness)
{
	char a[MK_SIZE_BUFSZ], b[MK_SIZE_BUFSZ], c[MK_SIZE_BUFSZ];

	printf("Swap: %s used of %s, %s of it also in RAM (SwapCached).\n",
	       mk_size_human(mi->swap_total - mi->swap_free, a), mk_size_human(mi->swap_total, b),
	       mk_size_human(mi->swap_cached, c));
	if (have_swappiness)
		printf("vm.swappiness = %" PRIu64
		       ": the relative cost of swapping anonymous memory\n"
		       "versus dropping page cache (0..200, 100 = equal). It is not a \"free\n"
		       "memory %%\" threshold: swapping starts only under memory pressure.\n",
		       swappiness);
	putchar('\n');
}

static int show(const struct swap_opts *o)
{
	struct swap_device devs[MAX_SWAPS];
	struct proc_list pl = {calloc(MAX_PROCS, sizeof(struct swap_proc)), 0};
	struct mk_meminfo mi;
	struct mk_table dt, pt;
	uint64_t swappiness = 0;
	size_t ndevs;
	int failures = 0, rc = 0;

	if (!pl.procs)
		mk_err(1, "cannot allocate memory");
	if (read_swaps(devs, MAX_SWAPS, &ndevs) < 0) {
		mk_proc_warn_open("/proc/swaps");
		failures++;
	}
	if (mk_meminfo_read(&mi) < 0) {
		mk_proc_warn_open("/proc/meminfo");
		failures++;
		memset(&mi, 0, sizeof(mi));
	}
	bool have_swappiness = mk_proc_read_u64(SWAPPINESS, &swappiness) == 0;
	if (!have_swappiness) {
		mk_proc_warn_open(SWAPPINESS);
		failures++;
	}
	mk_for_each_pid(collect_proc, &pl);
	qsort(pl.procs, pl.n, sizeof(pl.procs[0]), by_swap_desc);

	struct mk_output pout = o->out;
	pout.columns = NULL; /* -o applies to the devices table */
	mk_table_init(&dt, &o->out, "devices", dev_infos, ARRAY_SIZE(dev_infos), dev_cols,
		      ARRAY_SIZE(dev_cols));
	mk_table_init(&pt, &pout, "processes", proc_infos, ARRAY_SIZE(proc_infos), proc_cols,
		      ARRAY_SIZE(proc_cols));
	fill_devices(&dt, devs, ndevs);
	fill_procs(&pt, &pl, o->top);
	if (o->out.json) {
		mk_json_begin();
		rc |= mk_table_print_member(&dt);
		mk_json_u64("swappiness", swappiness);
		mk_json_u64("swap_total", mi.swap_total);
		mk_json_u64("swap_used", mi.swap_total - mi.swap_free);
		mk_json_u64("swap_cached", mi.swap_cached);
		rc |= mk_table_print_member(&pt);
		mk_json_end();
	} else if (o->only_devices) {
		rc |= mk_table_print(&dt);
	} else if (o->only_processes) {
		rc |= mk_table_print(&pt);
	} else if (o->out.raw) {
		/* for scripts: both tables, a blank line between, no prose */
		rc |= mk_table_print(&dt);
		putchar('\n');
		rc |= mk_table_print(&pt);
	} else {
		if (ndevs)
			rc |= mk_table_print(&dt);
		else
			printf("No swap devices (/proc/swaps is empty).\n");
		putchar('\n');
		print_summary(&mi, swappiness, have_swappiness);
		if (pl.n) {
			printf("Processes with most memory in swap:\n");
			rc |= mk_table_print(&pt);
		} else {
			printf("No process has memory in swap.\n");
		}
	}
	mk_table_free(&dt);
	mk_table_free(&pt);
	free(pl.procs);
	return failures || rc ? 1 : 0;
}

/* ------------------------------------------------------------ changes */

static MK_NORETURN void needs_root(const char *what)
{
	mk_errx(1, "%s needs root (CAP_SYS_ADMIN)", what);
}

static int set_swappiness(uint64_t v)
{
	char num[32];
	uint64_t old = 0;

	snprintf(num, sizeof(num), "%" PRIu64 "\n", v);
	mk_proc_read_u64(SWAPPINESS, &old);
	if (mk_proc_write(SWAPPINESS, num) < 0) {
		if (errno == EACCES || errno == EPERM)
			needs_root("setting vm.swappiness");
		mk_err(1, "cannot write %s", SWAPPINESS);
	}
	printf("vm.swappiness: %" PRIu64 " -> %" PRIu64 "\n", old, v);
	return 0;
}

/* SWAP_FLAG_PREFER keeps each device's priority across the swapon. */
static int swapon_flags(long prio)
{
	if (prio < 0)
		return 0;
	return SWAP_FLAG_PREFER | (int)((prio << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK);
}

/* Refuses, with the numbers, when RAM cannot take back what is swapped. */
static void check_room(const struct mk_meminfo *mi)
{
	char a[MK_SIZE_BUFSZ], b[MK_SIZE_BUFSZ];
	uint64_t swapped = mi->swap_total - mi->swap_free;
	/* pages in SwapCached already have a copy in RAM */
	uint64_t needed = swapped > mi->swap_cached ? swapped - mi->swap_cached : 0;

	if (needed > mi->mem_available)
		mk_errx(1,
			"refusing to flush swap: %s would come back into RAM but only %s is "
			"available (MemAvailable); the OOM killer would run",
			mk_size_human(needed, a), mk_size_human(mi->mem_available, b));
}

static int flush_swap(void)
{
	struct swap_device devs[MAX_SWAPS];
	struct mk_meminfo mi;
	size_t n;
	int failures = 0;

	if (read_swaps(devs, MAX_SWAPS, &n) < 0 || mk_meminfo_read(&mi) < 0)
		mk_err(1, "cannot read /proc/swaps or /proc/meminfo");
	if (n == 0) {
		printf("No swap devices: nothing to flush.\n");
		return 0;
	}
	/* the room check works on a recorded dump too; the flush itself cannot */
	check_room(&mi);
	if (!mk_proc_is_live())
		mk_errx(1, "--flush acts on the running system; it cannot use --proc-root");
	for (size_t i = 0; i < n; i++) {
		if (swapoff(devs[i].name) < 0) {
			if (errno == EPERM)
				needs_root("swap --flush");
			mk_warn("swapoff %s", devs[i].name);
			failures++;
			continue;
		}
		if (swapon(devs[i].name, swapon_flags(devs[i].prio)) < 0) {
			mk_warn("swapon %s (the device is now off)", devs[i].name);
			failures++;
			continue;
		}
		printf("flushed %s\n", devs[i].name);
	}
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------ main */

static MK_NORETURN void usage(void)
{
	fputs("Usage:\n memkit swap [options]\n\n"
	      "Swap devices, swappiness, and the processes using most swap.\n\n"
	      "Options:\n"
	      " -N, --top <n>          show the <n> processes using most swap (default 10)\n"
	      " -D, --devices          show only the devices table\n"
	      " -P, --processes        show only the processes table\n"
	      "     --swappiness <n>   set vm.swappiness (0..200, root)\n"
	      "     --flush            swapoff + swapon every device, bringing swapped\n"
	      "                        pages back to RAM (root); refused when\n"
	      "                        MemAvailable cannot hold them\n" MK_OUTPUT_USAGE
		  MK_COMMON_USAGE,
	      stdout);
	mk_colinfo_usage(stdout, dev_infos, ARRAY_SIZE(dev_infos));
	exit(0);
}

enum { OPT_SWAPPINESS = CHAR_MAX + 1, OPT_FLUSH };

static void parse_options(int argc, char **argv, struct swap_opts *o)
{
	static const struct option longopts[] = {
	    {"top", required_argument, NULL, 'N'},
	    {"swappiness", required_argument, NULL, OPT_SWAPPINESS},
	    {"flush", no_argument, NULL, OPT_FLUSH},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	int c;

	o->top = 10;
	while ((c = getopt_long(argc, argv, "N:DPhV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'N':
			o->top = mk_strtou64_or_err(optarg, "number of processes");
			break;
		case OPT_SWAPPINESS:
			o->set_swappiness = true;
			o->swappiness = mk_strtou64_or_err(optarg, "swappiness");
			if (o->swappiness > 200) {
				mk_warnx("swappiness must be 0..200: '%s'", optarg);
				mk_errtryhelp();
			}
			break;
		case OPT_FLUSH:
			o->flush = true;
			break;
		case 'D':
			o->only_devices = true;
			break;
		case 'P':
			o->only_processes = true;
			break;
		case 'h':
			usage();
		default:
			if (mk_output_parse_opt(c, optarg, &o->out) ||
			    mk_common_parse_opt(c, optarg))
				break;
			mk_errtryhelp();
		}
	}
	mk_no_operands(argc, argv);
}

int cmd_swap(int argc, char **argv)
{
	struct swap_opts o = {0};

	parse_options(argc, argv, &o);
	if (o.set_swappiness)
		return set_swappiness(o.swappiness);
	if (o.flush)
		return flush_swap();
	return show(&o);
}
