/* check.h - the unit tests' one assertion: CHECK(expr) reports the file,
 * line and expression, counts, and the test exits non-zero at the end. */
#ifndef MEMKIT_TEST_CHECK_H
#define MEMKIT_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

static int check_failures, check_count;

#define CHECK(expr)                                                                              \
	do {                                                                                     \
		check_count++;                                                                   \
		if (!(expr)) {                                                                   \
			check_failures++;                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
		}                                                                                \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}
#endif
