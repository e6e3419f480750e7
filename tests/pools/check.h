/* check.h - the pools tests' assertion: print the failed expression and
 * where, count it, go on; main returns the count (0 = pass). */
#ifndef POOLS_CHECK_H
#define POOLS_CHECK_H

#include <stdio.h>

/* built with AddressSanitizer? (gcc says so one way, clang another) */
#if defined(__SANITIZE_ADDRESS__)
#define POOLS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOLS_ASAN 1
#endif
#endif

static int check_failures;

#define CHECK(expr)                                                                              \
	do {                                                                                     \
		if (!(expr)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
			check_failures++;                                                        \
		}                                                                                \
	} while (0)

static inline int check_report(const char *name)
{
	if (check_failures)
		fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
	else
		printf("%s: all checks passed\n", name);
	return check_failures ? 1 : 0;
}

#endif
