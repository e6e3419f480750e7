/* stats.c - the allocator's statistics: mk_stats_get gathers what each
 * layer counts (page, heap, large, os, meta), mk_stats_print formats it as
 * text or JSON without allocating, and the exit report (MEMKIT_STATS=1,
 * MEMKIT_LEAK=1, MEMKIT_REPORT=path) is written from here: one place, so
 * that a JSON report file holds the statistics and the leaks together.
 *
 * May call: the layers' *_stats collectors, mki_os_*, mki_meta_bytes,
 * libc.c's formatting, mk_leak_report (leak.c), open/write/close/fcntl.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "memkit/internal.h"

/* live requested bytes, known exactly while leak tracking is on (leak.c) */

/* ------------------------------------------------------------ gathering */

static void add_os_counters(struct mk_stats *st)
{
	st->sys_mmap = atomic_load_explicit(&mki_os_count.mmap, memory_order_relaxed);
	st->sys_munmap = atomic_load_explicit(&mki_os_count.munmap, memory_order_relaxed);
	st->sys_madvise = atomic_load_explicit(&mki_os_count.madvise, memory_order_relaxed);
	st->sys_mremap = atomic_load_explicit(&mki_os_count.mremap, memory_order_relaxed);
}

int mk_stats_get(struct mk_stats *st)
{
	if (!st)
		return EINVAL;
	memset(st, 0, sizeof(*st));
	if (!atomic_load(&mki_initialized))
		mki_init();
	mki_page_stats(st);
	mki_heap_stats(st);
	mki_large_stats(st);
	add_os_counters(st);
	st->metadata_bytes = mki_meta_bytes();
	st->mapped_bytes += st->metadata_bytes;
	st->resident_bytes = mki_os_resident_bytes();
	st->mmap_threshold = mki_opt.mmap_threshold;
	if (mki_leak_active)
		st->requested_bytes = mki_leak_requested_bytes();
	if (st->requested_bytes && st->allocated_bytes > st->requested_bytes)
		st->internal_frag_bytes = st->allocated_bytes - st->requested_bytes;
	return 0;
}

/* ------------------------------------------------------------ output */

struct out {
	int fd;
	int err;
	size_t len;
	char buf[4096];
};

static void out_flush(struct out *o)
{
	if (o->len && !o->err)
		o->err = mki_write_all(o->fd, o->buf, o->len);
	o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = mki_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (o->len + len > sizeof(o->buf))
		out_flush(o);
	memcpy(o->buf + o->len, line, len);
	o->len += len;
}

/* "1.5 MiB": binary units, one decimal */
static const char *human(char *buf, size_t size, size_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)bytes;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (!u)
		mki_snprintf(buf, size, "%zu B", bytes);
	else
		mki_snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* the kernel's unusable-free-space index for an order: the share of free
 * pages in blocks too small to serve a request of that order */
static double unusable_index(const struct mk_stats *st, unsigned order)
{
	size_t free_pages = 0, usable = 0;
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++) {
		free_pages += st->buddy_free_blocks[k] << k;
		if (k >= order)
			usable += st->buddy_free_blocks[k] << k;
	}
	return free_pages ? 1.0 - (double)usable / (double)free_pages : 0.0;
}

/* ------------------------------------------------------------ text */

static void text_bytes(struct out *o, const char *name, size_t bytes, const char *note)
{
	char h[32];
	out_printf(o, "  %-20s %14zu  %-10s %s\n", name, bytes, human(h, sizeof(h), bytes), note);
}

static void text_memory(struct out *o, const struct mk_stats *st)
{
	out_printf(o, "memkit statistics, pid %d\n\nmemory:\n", (int)getpid());
	text_bytes(o, "requested", st->requested_bytes,
		   st->requested_bytes ? "live requests" : "(known with leak tracking only)");
	text_bytes(o, "allocated", st->allocated_bytes, "live blocks, size-class rounded");
	text_bytes(o, "active", st->active_bytes, "pages in use by slabs, runs, large");
	text_bytes(o, "resident", st->resident_bytes, "RSS of the process");
	text_bytes(o, "mapped", st->mapped_bytes, "chunks + large + metadata");
	text_bytes(o, "metadata", st->metadata_bytes, "");
	out_printf(o, "\nfragmentation:\n");
	text_bytes(o, "internal", st->internal_frag_bytes, "allocated - requested");
	out_printf(o, "  %-20s %13.1f%%  free pages outside the largest free order\n", "external",
		   st->external_frag * 100.0);
}

static void text_buddy(struct out *o, const struct mk_stats *st)
{
	out_printf(o, "\nbuddy system: %zu chunk%s of 4 MiB\n", st->chunks,
		   st->chunks == 1 ? "" : "s");
	text_bytes(o, "free", st->buddy_free_bytes, "");
	text_bytes(o, "free, purged", st->buddy_purged_bytes, "returned to the OS");
	out_printf(o, "  %-8s", "order");
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++)
		out_printf(o, " %6u", k);
	out_printf(o, "\n  %-8s", "free");
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++)
		out_printf(o, " %6zu", st->buddy_free_blocks[k]);
	out_printf(o, "\n  %-8s", "unusable");
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++)
		out_printf(o, " %6.3f", unusable_index(st, k));
	out_printf(o, "\n");
}

static void text_large(struct out *o, const struct mk_stats *st)
{
	char h[32];
	out_printf(o, "\nlarge blocks (>= %zu bytes, own mappings):\n", st->mmap_threshold);
	out_printf(o, "  %-20s %14zu  %s\n", "live", st->large_live,
		   human(h, sizeof(h), st->large_live_bytes));
	out_printf(o, "  %-20s %14zu  %s\n", "cached for reuse", st->large_cached,
		   human(h, sizeof(h), st->large_cached_bytes));
}

static void text_classes(struct out *o, const struct mk_stats *st)
{
	out_printf(o, "\nsize classes (those used):\n  %8s %10s %8s %12s %12s %12s\n", "size",
		   "live", "slabs", "slab bytes", "allocs", "frees");
	for (unsigned c = 0; c < MK_STATS_MAX_CLASSES && st->classes[c].block_size; c++) {
		const struct mk_class_stats *cs = &st->classes[c];
		if (!cs->allocs && !cs->slabs)
			continue;
		out_printf(o, "  %8zu %10zu %8zu %12zu %12llu %12llu\n", cs->block_size,
			   cs->live_blocks, cs->slabs, cs->slab_bytes,
			   (unsigned long long)cs->allocs, (unsigned long long)cs->frees);
	}
}

static void text_syscalls(struct out *o, const struct mk_stats *st)
{
	out_printf(o,
		   "\nsystem calls: mmap %llu, munmap %llu, madvise %llu, mremap %llu\n"
		   "threads with a heap: %llu, heaps abandoned: %llu\n",
		   (unsigned long long)st->sys_mmap, (unsigned long long)st->sys_munmap,
		   (unsigned long long)st->sys_madvise, (unsigned long long)st->sys_mremap,
		   (unsigned long long)st->threads, (unsigned long long)st->heaps_abandoned);
}

static void print_text(struct out *o, const struct mk_stats *st)
{
	text_memory(o, st);
	text_buddy(o, st);
	text_large(o, st);
	text_classes(o, st);
	text_syscalls(o, st);
}

/* ------------------------------------------------------------ JSON */

static void json_sizes(struct out *o, const struct mk_stats *st)
{
	out_printf(o,
		   "{\"requested_bytes\":%zu,\"allocated_bytes\":%zu,\"active_bytes\":%zu,"
		   "\"resident_bytes\":%zu,",
		   st->requested_bytes, st->allocated_bytes, st->active_bytes, st->resident_bytes);
	out_printf(o, "\"mapped_bytes\":%zu,\"metadata_bytes\":%zu,", st->mapped_bytes,
		   st->metadata_bytes);
	out_printf(o, "\"internal_frag_bytes\":%zu,\"external_frag\":%.4f,",
		   st->internal_frag_bytes, st->external_frag);
}

static void json_buddy(struct out *o, const struct mk_stats *st)
{
	out_printf(o, "\"chunks\":%zu,\"buddy_free_bytes\":%zu,\"buddy_purged_bytes\":%zu,",
		   st->chunks, st->buddy_free_bytes, st->buddy_purged_bytes);
	out_printf(o, "\"buddy_free_blocks\":[");
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++)
		out_printf(o, "%s%zu", k ? "," : "", st->buddy_free_blocks[k]);
	out_printf(o, "],\"unusable_index\":[");
	for (unsigned k = 0; k <= MK_MAX_ORDER; k++)
		out_printf(o, "%s%.4f", k ? "," : "", unusable_index(st, k));
	out_printf(o, "],");
}

static void json_large_and_syscalls(struct out *o, const struct mk_stats *st)
{
	out_printf(o,
		   "\"mmap_threshold\":%zu,\"large_live\":%zu,\"large_live_bytes\":%zu,"
		   "\"large_cached\":%zu,\"large_cached_bytes\":%zu,",
		   st->mmap_threshold, st->large_live, st->large_live_bytes, st->large_cached,
		   st->large_cached_bytes);
	out_printf(o,
		   "\"sys_mmap\":%llu,\"sys_munmap\":%llu,\"sys_madvise\":%llu,"
		   "\"sys_mremap\":%llu,\"threads\":%llu,\"heaps_abandoned\":%llu,",
		   (unsigned long long)st->sys_mmap, (unsigned long long)st->sys_munmap,
		   (unsigned long long)st->sys_madvise, (unsigned long long)st->sys_mremap,
		   (unsigned long long)st->threads, (unsigned long long)st->heaps_abandoned);
}

static void json_classes(struct out *o, const struct mk_stats *st)
{
	out_printf(o, "\"classes\":[");
	for (unsigned c = 0; c < MK_STATS_MAX_CLASSES && st->classes[c].block_size; c++) {
		const struct mk_class_stats *cs = &st->classes[c];
		out_printf(o,
			   "%s{\"block_size\":%zu,\"live_blocks\":%zu,\"slabs\":%zu,"
			   "\"slab_bytes\":%zu,\"allocs\":%llu,\"frees\":%llu}",
			   c ? "," : "", cs->block_size, cs->live_blocks, cs->slabs, cs->slab_bytes,
			   (unsigned long long)cs->allocs, (unsigned long long)cs->frees);
	}
	out_printf(o, "]}");
}

static void print_json(struct out *o, const struct mk_stats *st)
{
	json_sizes(o, st);
	json_buddy(o, st);
	json_large_and_syscalls(o, st);
	json_classes(o, st);
}

int mk_stats_print(int fd, enum mk_format format)
{
	struct mk_stats st;
	struct out o;
	int err = mk_stats_get(&st);
	if (err)
		return err;
	o.fd = fd;
	o.err = 0;
	o.len = 0;
	if (format == MK_FORMAT_JSON)
		print_json(&o, &st);
	else
		print_text(&o, &st);
	out_flush(&o);
	return o.err;
}

/* ------------------------------------------------------------ at exit */

/* memkit run sets MEMKIT_TARGET_PID to the program it started: the
 * processes that program forks or runs inherit the variables but write no
 * report of their own (they would overwrite its file). */
static bool writes_reports(void)
{
	const char *target = mki_getenv("MEMKIT_TARGET_PID");
	if (!target || !*target)
		return true;
	long pid = 0;
	for (; *target >= '0' && *target <= '9'; target++)
		pid = pid * 10 + (*target - '0');
	return pid == (long)getpid();
}

/* Where the exit report's text goes. Some programs close stderr before they
 * exit (coreutils' close_stdout), so when a text report will be wanted a
 * copy of fd 2 is taken at start, out of the way (>= 64, close-on-exec). */
static int saved_stderr = -1;

static bool env_true(const char *name)
{
	const char *v = mki_getenv(name);
	return v && (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") ||
		     !strcasecmp(v, "on"));
}

__attribute__((constructor)) static void keep_stderr(void)
{
	const char *report = mki_getenv("MEMKIT_REPORT");
	if ((env_true("MEMKIT_STATS") || env_true("MEMKIT_LEAK")) && !(report && *report))
		saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 64);
}

/* fd 2, or its copy when the program has closed it (or closed the copy) */
static int exit_fd(int fd)
{
	if (fd != STDERR_FILENO || saved_stderr < 0)
		return fd;
	return fcntl(STDERR_FILENO, F_GETFD) < 0 && fcntl(saved_stderr, F_GETFD) >= 0 ? saved_stderr
										      : fd;
}

void mki_stats_at_exit(void)
{
	int fd = exit_fd(mki_opt.stats_fd);
	if (mk_stats_print(fd, MK_FORMAT_TEXT))
		mki_dprintf(exit_fd(2), "memkit: cannot write statistics to fd %d\n", fd);
}

/* {"memkit_report":1,"pid":N,"stats":{...}|null,"leaks":{...}|null} */
static void write_json_report(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		mki_dprintf(2, "memkit: cannot write the report to %s (errno %d)\n", path, errno);
		return;
	}
	mki_dprintf(fd, "{\"memkit_report\":1,\"pid\":%d,\"stats\":", (int)getpid());
	if (!mki_opt.stats || mk_stats_print(fd, MK_FORMAT_JSON))
		mki_dprintf(fd, "null");
	mki_dprintf(fd, ",\"leaks\":");
	if (!mk_leak_enabled() || mk_leak_report(fd, MK_FORMAT_JSON) < 0)
		mki_dprintf(fd, "null");
	mki_dprintf(fd, "}\n");
	close(fd);
}

/* A destructor of libmemkit runs after the program's own destructors and
 * atexit handlers, so blocks they free are not reported. */
__attribute__((destructor)) static void report_at_exit(void)
{
	static _Atomic bool done;
	if (atomic_exchange(&done, true) || !writes_reports())
		return;
	if (mki_opt.report_path[0] && (mki_opt.stats || mk_leak_enabled())) {
		write_json_report(mki_opt.report_path);
		return;
	}
	if (mk_leak_enabled())
		mk_leak_report(exit_fd(STDERR_FILENO), MK_FORMAT_TEXT);
	if (mki_opt.stats)
		mki_stats_at_exit();
}
