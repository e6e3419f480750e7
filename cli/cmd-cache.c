/* cmd-cache.c - "memkit cache PATH...": how much of each file sits in the
 * page cache (mincore, the same count as util-linux fincore), plus dirty,
 * writeback and evicted pages where the kernel has cachestat(2); --touch
 * reads the missing pages in, --evict drops them (POSIX_FADV_DONTNEED),
 * --lock keeps them resident with mlock until interrupted. Directories are
 * walked recursively. May call libc, cli/common.c.
 */
#define _GNU_SOURCE /* nftw, FTW_PHYS */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

/* cachestat(2) arrived in Linux 6.5; glibc 2.36 has no wrapper or struct. */
#ifndef __NR_cachestat
#if defined(__x86_64__) || defined(__aarch64__)
#define __NR_cachestat 451
#endif
#endif

struct cachestat_range {
	uint64_t off, len; /* len 0 = to the end of the file */
};

struct cachestat_counts {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* mincore in windows of this many bytes, so huge files need little memory */
#define WINDOW_BYTES (64UL << 20)

enum {
	COL_RES,
	COL_PAGES,
	COL_SIZE,
	COL_PERCENT,
	COL_DIRTY,
	COL_WRITEBACK,
	COL_EVICTED,
	COL_RECENTLY_EVICTED,
	COL_FILE,
};

static const struct mk_colinfo infos[] = {
    [COL_RES] = {"RES", 5, SCOLS_FL_RIGHT, "file data resident in memory in bytes", MK_COL_SIZE},
    [COL_PAGES] = {"PAGES", 1, SCOLS_FL_RIGHT, "file data resident in memory in pages",
		   MK_COL_NUMBER},
    [COL_SIZE] = {"SIZE", 5, SCOLS_FL_RIGHT, "size of the file", MK_COL_SIZE},
    [COL_PERCENT] = {"PERCENT", 5, SCOLS_FL_RIGHT, "resident pages in % of the file's pages",
		     MK_COL_FLOAT},
    [COL_DIRTY] = {"DIRTY", 1, SCOLS_FL_RIGHT, "dirty pages (cachestat; - without it)",
		   MK_COL_NUMBER},
    [COL_WRITEBACK] = {"WRITEBACK", 1, SCOLS_FL_RIGHT, "pages under writeback (cachestat)",
		       MK_COL_NUMBER},
    [COL_EVICTED] = {"EVICTED", 1, SCOLS_FL_RIGHT, "pages evicted from the cache (cachestat)",
		     MK_COL_NUMBER},
    [COL_RECENTLY_EVICTED] = {"RECENT_EVICTED", 1, SCOLS_FL_RIGHT,
			      "pages evicted recently, would still be hot (cachestat)",
			      MK_COL_NUMBER},
    [COL_FILE] = {"FILE", 4, SCOLS_FL_NOEXTREMES, "file name", MK_COL_STRING},
};

static const int default_cols[] = {COL_RES, COL_PAGES, COL_SIZE, COL_FILE};
static const int cachestat_cols[] = {COL_RES,	COL_PAGES,     COL_SIZE,    COL_PERCENT,
				     COL_DIRTY, COL_WRITEBACK, COL_EVICTED, COL_FILE};

enum cache_action { ACT_SHOW, ACT_TOUCH, ACT_EVICT, ACT_LOCK };

struct cache_ctl {
	struct mk_output out;
	enum cache_action action;
	bool verbose; /* -v: the cachestat columns by default */
	bool progress;
	struct mk_table table;
	size_t page_size;
	int failures;
	/* mlock'd mappings stay until exit; counted for the final message */
	uint64_t locked_bytes;
};

struct file_state {
	uint64_t size, resident_pages;
	bool has_cachestat;
	struct cachestat_counts cs;
};

/* Whole-process state for nftw's callback, which takes no argument. */
static struct cache_ctl *walk_ctl;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ------------------------------------------------------------ residency */

static bool is_page_resident(unsigned char vec_entry)
{
	return vec_entry & 1;
}

/* Map [off, off+len) without access rights, just to ask mincore. */
static int mincore_window(int fd, uint64_t off, size_t len, unsigned char *vec)
{
	void *p = mmap(NULL, len, PROT_NONE, MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -1;
	int rc = mincore(p, len, vec);
	int saved = errno;
	munmap(p, len);
	errno = saved;
	return rc;
}

static size_t pages_in(size_t bytes, size_t page_size)
{
	return (bytes + page_size - 1) / page_size;
}

/* Calls fn on each window's residency vector; 0 or -1/errno. */
static int for_each_window(int fd, uint64_t size, size_t page_size,
			   int (*fn)(int fd, uint64_t off, size_t len, const unsigned char *vec,
				     void *arg),
			   void *arg)
{
	unsigned char *vec = malloc(pages_in(WINDOW_BYTES, page_size));
	int rc = 0;

	if (!vec)
		return -1;
	for (uint64_t off = 0; off < size && rc == 0 && !interrupted; off += WINDOW_BYTES) {
		size_t len = size - off < WINDOW_BYTES ? (size_t)(size - off) : WINDOW_BYTES;
		rc = mincore_window(fd, off, len, vec);
		if (rc == 0)
			rc = fn(fd, off, len, vec, arg);
	}
	free(vec);
	return rc;
}

static int count_window(int fd, uint64_t off, size_t len, const unsigned char *vec, void *arg)
{
	size_t page_size = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t *count = arg;

	(void)fd;
	(void)off;
	for (size_t i = 0; i < pages_in(len, page_size); i++)
		*count += is_page_resident(vec[i]);
	return 0;
}

static bool try_cachestat(int fd, struct cachestat_counts *cs)
{
#ifdef __NR_cachestat
	static bool unsupported;
	struct cachestat_range range = {0, 0};

	if (unsupported)
		return false;
	if (syscall(__NR_cachestat, fd, &range, cs, 0) == 0)
		return true;
	/* ENOSYS: an older kernel; EPERM: a seccomp filter. Stop trying. */
	if (errno == ENOSYS || errno == EPERM)
		unsupported = true;
#else
	(void)fd;
	(void)cs;
#endif
	return false;
}

static int measure(int fd, size_t page_size, struct file_state *st)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (fstat(fd, &sb) < 0)
		return -1;
	st->size = (uint64_t)sb.st_size;
	st->has_cachestat = try_cachestat(fd, &st->cs);
	if (st->size == 0)
		return 0;
	return for_each_window(fd, st->size, page_size, count_window, &st->resident_pages);
}

/* ------------------------------------------------------------ actions */

struct touch_state {
	struct cache_ctl *ctl;
	const char *name;
	uint64_t size;
	char *buf;
};

static void show_progress(const struct touch_state *ts, uint64_t done)
{
	if (!ts->ctl->progress)
		return;
	fprintf(stderr, "\rtouching %s: %3u%%", ts->name,
		(unsigned)(ts->size ? done * 100 / ts->size : 100));
}

/* Read each run of non-resident pages; resident ones are left alone. */
static int touch_window(int fd, uint64_t off, size_t len, const unsigned char *vec, void *arg)
{
	struct touch_state *ts = arg;
	size_t ps = ts->ctl->page_size, npages = pages_in(len, ps);

	for (size_t i = 0; i < npages && !interrupted;) {
		if (is_page_resident(vec[i])) {
			i++;
			continue;
		}
		size_t run = 1;
		while (i + run < npages && !is_page_resident(vec[i + run]) && run * ps < (1 << 20))
			run++;
		if (pread(fd, ts->buf, run * ps, (off_t)(off + i * ps)) < 0)
			return -1;
		i += run;
	}
	show_progress(ts, off + len);
	return 0;
}

static int touch_file(struct cache_ctl *ctl, int fd, const char *name, uint64_t size)
{
	struct touch_state ts = {ctl, name, size, malloc(1 << 20)};

	if (!ts.buf)
		return -1;
	int rc = for_each_window(fd, size, ctl->page_size, touch_window, &ts);
	if (ctl->progress)
		fputs("\r\033[K", stderr);
	free(ts.buf);
	return rc;
}

static int evict_file(int fd)
{
	int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (rc) {
		errno = rc;
		return -1;
	}
	return 0;
}

/* The mapping is kept on purpose: the lock lasts until the process ends. */
static int lock_file(struct cache_ctl *ctl, int fd, uint64_t size)
{
	if (size == 0)
		return 0;
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	if (mlock(p, size) < 0) {
		int saved = errno;
		munmap(p, size);
		errno = saved;
		return -1;
	}
	ctl->locked_bytes += size;
	return 0;
}

static const char *action_verb(enum cache_action a)
{
	switch (a) {
	case ACT_TOUCH:
		return "touch";
	case ACT_EVICT:
		return "evict";
	case ACT_LOCK:
		return "lock";
	default:
		return "examine";
	}
}

static int apply_action(struct cache_ctl *ctl, int fd, const char *name, uint64_t size)
{
	switch (ctl->action) {
	case ACT_TOUCH:
		return touch_file(ctl, fd, name, size);
	case ACT_EVICT:
		return evict_file(fd);
	case ACT_LOCK:
		return lock_file(ctl, fd, size);
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ output */

static void add_row(struct cache_ctl *ctl, const char *name, const struct file_state *st)
{
	struct mk_table *t = &ctl->table;
	struct libscols_line *ln = mk_table_new_line(t);
	uint64_t npages = pages_in(st->size, ctl->page_size);

	mk_table_set_size(t, ln, COL_RES, st->resident_pages * ctl->page_size);
	mk_table_set_u64(t, ln, COL_PAGES, st->resident_pages);
	mk_table_set_size(t, ln, COL_SIZE, st->size);
	mk_table_set_double(t, ln, COL_PERCENT,
			    npages ? 100.0 * (double)st->resident_pages / (double)npages : 0, 1);
	if (st->has_cachestat) {
		mk_table_set_u64(t, ln, COL_DIRTY, st->cs.nr_dirty);
		mk_table_set_u64(t, ln, COL_WRITEBACK, st->cs.nr_writeback);
		mk_table_set_u64(t, ln, COL_EVICTED, st->cs.nr_evicted);
		mk_table_set_u64(t, ln, COL_RECENTLY_EVICTED, st->cs.nr_recently_evicted);
	}
	mk_table_set_str(t, ln, COL_FILE, name);
}

/* ------------------------------------------------------------ files */

static void do_file(struct cache_ctl *ctl, const char *name)
{
	struct file_state st;
	int fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		mk_warn("cannot open %s", name);
		ctl->failures++;
		return;
	}
	if (measure(fd, ctl->page_size, &st) < 0) {
		mk_warn("cannot examine %s", name);
		goto fail;
	}
	if (apply_action(ctl, fd, name, st.size) < 0) {
		mk_warn("cannot %s %s", action_verb(ctl->action), name);
		goto fail;
	}
	if (ctl->action != ACT_SHOW && measure(fd, ctl->page_size, &st) < 0) {
		mk_warn("cannot examine %s", name);
		goto fail;
	}
	add_row(ctl, name, &st);
	close(fd);
	return;
fail:
	ctl->failures++;
	close(fd);
}

static int walk_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)ftw;
	if (interrupted)
		return 1;
	if (type == FTW_DNR) {
		mk_warn("cannot open directory %s", path);
		walk_ctl->failures++;
	} else if (type == FTW_F && S_ISREG(sb->st_mode)) {
		do_file(walk_ctl, path);
	}
	return 0;
}

static void do_path(struct cache_ctl *ctl, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		mk_warn("cannot open %s", path);
		ctl->failures++;
		return;
	}
	if (!S_ISDIR(sb.st_mode)) {
		do_file(ctl, path);
		return;
	}
	walk_ctl = ctl;
	if (nftw(path, walk_entry, 32, FTW_PHYS) < 0) {
		mk_warn("cannot walk %s", path);
		ctl->failures++;
	}
}

/* ------------------------------------------------------------ main */

static MK_NORETURN void usage(void)
{
	fputs("Usage:\n memkit cache [options] <path>...\n\n"
	      "Show how much of each file is in the page cache; directories are\n"
	      "walked recursively.\n\n"
	      "Options:\n"
	      " -t, --touch            read the pages not yet in the cache\n"
	      " -e, --evict            drop the files' pages from the cache (fadvise)\n"
	      " -l, --lock             lock the files in memory (mlock) until interrupted\n"
	      " -v, --verbose          show the cachestat(2) columns by default\n"
	      "     --no-progress      no progress line, even on a terminal\n" MK_OUTPUT_USAGE
		  MK_COMMON_USAGE,
	      stdout);
	mk_colinfo_usage(stdout, infos, ARRAY_SIZE(infos));
	exit(0);
}

enum { OPT_NO_PROGRESS = CHAR_MAX + 1 };

static void set_action(struct cache_ctl *ctl, enum cache_action a)
{
	if (ctl->action != ACT_SHOW && ctl->action != a) {
		mk_warnx("--touch, --evict and --lock are mutually exclusive");
		mk_errtryhelp();
	}
	ctl->action = a;
}

static void parse_options(int argc, char **argv, struct cache_ctl *ctl)
{
	static const struct option longopts[] = {
	    {"touch", no_argument, NULL, 't'},
	    {"evict", no_argument, NULL, 'e'},
	    {"lock", no_argument, NULL, 'l'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	    MK_OUTPUT_LONGOPTS,
	    MK_COMMON_LONGOPTS,
	    {NULL, 0, NULL, 0},
	};
	int c;

	ctl->progress = mk_isatty_stderr();
	while ((c = getopt_long(argc, argv, "telvhV" MK_OUTPUT_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			set_action(ctl, ACT_TOUCH);
			break;
		case 'e':
			set_action(ctl, ACT_EVICT);
			break;
		case 'l':
			set_action(ctl, ACT_LOCK);
			break;
		case 'v':
			ctl->verbose = true;
			break;
		case OPT_NO_PROGRESS:
			ctl->progress = false;
			break;
		case 'h':
			usage();
		default:
			if (mk_output_parse_opt(c, optarg, &ctl->out))
				break;
			if (mk_common_parse_opt(c, optarg))
				break;
			mk_errtryhelp();
		}
	}
	if (optind == argc) {
		mk_warnx("no file specified");
		mk_errtryhelp();
	}
}

static void wait_for_signal(const struct cache_ctl *ctl)
{
	char buf[MK_SIZE_BUFSZ];

	if (ctl->failures || !ctl->locked_bytes)
		return;
	fprintf(stderr, "memkit: cache: %s locked in memory; press Ctrl-C to release\n",
		mk_size_human(ctl->locked_bytes, buf));
	while (!interrupted)
		pause();
}

int cmd_cache(int argc, char **argv)
{
	struct cache_ctl ctl = {0};
	struct sigaction sa = {0};

	parse_options(argc, argv, &ctl);
	ctl.page_size = (size_t)sysconf(_SC_PAGESIZE);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	mk_table_init(&ctl.table, &ctl.out, "files", infos, ARRAY_SIZE(infos),
		      ctl.verbose ? cachestat_cols : default_cols,
		      ctl.verbose ? ARRAY_SIZE(cachestat_cols) : ARRAY_SIZE(default_cols));
	for (int i = optind; i < argc && !interrupted; i++)
		do_path(&ctl, argv[i]);
	int rc = mk_table_print(&ctl.table);
	mk_table_free(&ctl.table);
	if (ctl.action == ACT_LOCK)
		wait_for_signal(&ctl);
	return ctl.failures || rc ? 1 : 0;
}
