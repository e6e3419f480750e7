/* options.c - MEMKIT_* environment variables, read once from environ at
 * start-up without allocating (getenv is fine, but we may run before libc is
 * set up, so we read environ ourselves through mki_getenv).
 *
 * May call: libc.c only.
 */
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include "memkit/internal.h"

struct mki_options mki_opt = {
    .mmap_threshold = (size_t)128 * 1024,
    .decay_ms = 1000,
    .stats_fd = 2,
};

/* parse a size with an optional k/m/g suffix; false if malformed */
static bool parse_size(const char *s, size_t *out)
{
	size_t v = 0;
	if (!s || !*s)
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	size_t mult = 1;
	switch (*s) {
	case 'k':
	case 'K':
		mult = 1024, s++;
		break;
	case 'm':
	case 'M':
		mult = (size_t)1024 * 1024, s++;
		break;
	case 'g':
	case 'G':
		mult = (size_t)1024 * 1024 * 1024, s++;
		break;
	}
	if (*s == 'i' || *s == 'I') /* KiB, MiB */
		s++;
	if (*s == 'b' || *s == 'B')
		s++;
	if (*s)
		return false;
	if (v > SIZE_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

static bool parse_bool(const char *s)
{
	return s && (!strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "true") ||
		     !strcasecmp(s, "on"));
}

static void warn_bad(const char *name, const char *value)
{
	mki_dprintf(2, "memkit: ignoring %s=%s: not a valid value\n", name, value);
}

static void read_size(const char *name, size_t *dst, size_t min, size_t max)
{
	const char *v = mki_getenv(name);
	size_t x;
	if (!v)
		return;
	if (!parse_size(v, &x) || x < min || x > max) {
		warn_bad(name, v);
		return;
	}
	*dst = x;
}

/* the smallest and largest mmap thresholds we accept: below one page the
 * mapping's own overhead dominates; above 32 MiB as glibc's HEAP_MAX/2. */
#define THRESHOLD_MIN MKI_PAGE_SIZE
#define THRESHOLD_MAX ((size_t)32 << 20)

size_t mki_clamp_threshold(size_t v)
{
	return v < THRESHOLD_MIN ? THRESHOLD_MIN : (v > THRESHOLD_MAX ? THRESHOLD_MAX : v);
}

void mki_options_init(void)
{
	size_t v;
	read_size("MEMKIT_MMAP_THRESHOLD", &mki_opt.mmap_threshold, THRESHOLD_MIN, THRESHOLD_MAX);
	v = mki_opt.decay_ms;
	read_size("MEMKIT_DECAY_MS", &v, 0, (size_t)3600 * 1000);
	mki_opt.decay_ms = (uint32_t)v;
	v = 0;
	read_size("MEMKIT_FAIL_MMAP", &v, 0, UINT32_MAX);
	mki_opt.fail_mmap = (uint32_t)v;
	v = (size_t)mki_opt.stats_fd;
	read_size("MEMKIT_STATS_FD", &v, 0, 1 << 20);
	mki_opt.stats_fd = (int)v;
	mki_opt.stats = parse_bool(mki_getenv("MEMKIT_STATS"));
	mki_opt.leak = parse_bool(mki_getenv("MEMKIT_LEAK"));
	mki_opt.verbose = parse_bool(mki_getenv("MEMKIT_VERBOSE"));
	const char *purge = mki_getenv("MEMKIT_PURGE");
	if (purge && !strcmp(purge, "free"))
		mki_opt.purge_lazy = true;
	else if (purge && strcmp(purge, "dontneed") != 0)
		warn_bad("MEMKIT_PURGE", purge);
	const char *report = mki_getenv("MEMKIT_REPORT");
	if (report) {
		size_t n = strlen(report);
		if (n >= sizeof(mki_opt.report_path))
			warn_bad("MEMKIT_REPORT", report);
		else
			memcpy(mki_opt.report_path, report, n + 1);
	}
}
