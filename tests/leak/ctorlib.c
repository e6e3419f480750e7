/* ctorlib.c - a shared library whose constructor loses a block: it runs
 * before libmemkit's own constructor (the dynamic loader initializes the
 * program's libraries before preloaded ones), so its call stack needs the
 * unwinder found without libmemkit's constructor (leak-library-constructor
 * in check.py). */
#include <stdlib.h>

void *leak_in_library_constructor(void);

__attribute__((noinline)) void *leak_in_library_constructor(void)
{
	char *p = malloc(333);
	if (p)
		p[0] = 1;
	return p;
}

__attribute__((constructor)) static void ctorlib_init(void)
{
	void *volatile lost = leak_in_library_constructor();
	(void)lost;
}

int ctorlib_loaded(void);
int ctorlib_loaded(void)
{
	return 1;
}
