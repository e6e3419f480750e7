/* allocator_check.h - which library really serves malloc in this process?
 *
 * ld.so silently ignores an LD_PRELOAD entry it cannot load, so a test that
 * only sets LD_PRELOAD may be measuring glibc. Every test program of the
 * reliability suites calls mkt_check_allocator() first: it asks the dynamic
 * linker which object defines each entry point of the malloc family, as the
 * program's own calls resolve them (RTLD_DEFAULT, the global search order).
 *
 * `want` is "glibc" (the libc.so.6 that the program links) or the path of
 * the library that must provide them (compared after realpath()).
 */
#ifndef MKT_ALLOCATOR_CHECK_H
#define MKT_ALLOCATOR_CHECK_H

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mkt_entry_points[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
    "malloc_usable_size",
    "reallocarray",
};

static int mkt_is_glibc_path(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0;
}

/* 0 when every entry point comes from `want`; otherwise -1 and a line on stderr. */
static int mkt_check_allocator(const char *want)
{
	char want_real[PATH_MAX], got_real[PATH_MAX];
	int glibc = strcmp(want, "glibc") == 0;

	if (!glibc && !realpath(want, want_real)) {
		fprintf(stderr, "allocator-check: %s: no such library\n", want);
		return -1;
	}
	for (size_t i = 0; i < sizeof(mkt_entry_points) / sizeof(mkt_entry_points[0]); i++) {
		Dl_info info;
		void *sym = dlsym(RTLD_DEFAULT, mkt_entry_points[i]);

		if (!sym || !dladdr(sym, &info) || !info.dli_fname) {
			fprintf(stderr, "allocator-check: cannot resolve %s\n",
				mkt_entry_points[i]);
			return -1;
		}
		if (glibc ? mkt_is_glibc_path(info.dli_fname)
			  : (realpath(info.dli_fname, got_real) && !strcmp(got_real, want_real)))
			continue;
		fprintf(stderr,
			"allocator-check: %s comes from %s, not from %s (preload not loaded?)\n",
			mkt_entry_points[i], info.dli_fname, want);
		return -1;
	}
	return 0;
}

#endif /* MKT_ALLOCATOR_CHECK_H */
