/* demo.c - libmemkit's layers at work, narrated: the buddy system splitting
 * and merging pages, a slab cache, small and large mallocs, and freed
 * memory going back to the OS (the heap-top trap that glibc falls into).
 * `make run` runs it under `memkit run --stats`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "memkit.h"

static struct mk_stats st;

static void show_buddy(const char *when)
{
	mk_stats_get(&st);
	printf("  %-34s free blocks per order:", when);
	for (int k = 0; k <= MK_MAX_ORDER; k++)
		printf(" %zu", st.buddy_free_blocks[k]);
	printf("\n");
}

static double mib(size_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

static void demo_buddy(void)
{
	printf("1. The buddy system: 4 KiB pages in blocks of 2^order pages, 11 free lists\n");
	mk_malloc_trim(0);
	show_buddy("at start:");
	void *page = mk_pages_alloc(0);
	show_buddy("one page taken (a block split):");
	void *big = mk_pages_alloc(6);
	show_buddy("a 256 KiB block (order 6) taken:");
	mk_pages_free(page, 0);
	mk_pages_free(big, 6);
	show_buddy("both freed (buddies merged):");
	printf("\n");
}

struct conn {
	int fd;
	char peer[60];
};

static void conn_ctor(void *p)
{
	((struct conn *)p)->fd = -1; /* constructed state: kept across free/alloc */
}

static void demo_slab(void)
{
	printf("2. A slab cache: objects of one size carved from buddy blocks\n");
	mk_cache_t *c = mk_cache_create("conn", sizeof(struct conn), 0, conn_ctor, NULL);
	struct conn *objs[100];
	for (int i = 0; i < 100; i++)
		objs[i] = mk_cache_alloc(c);
	struct mk_cache_info info;
	mk_cache_info(c, &info);
	printf("  100 objects of %zu bytes (slot %zu): %zu full + %zu partial slabs of %u "
	       "objects, one %u-page block each\n",
	       info.object_size, info.slot_size, info.slabs_full, info.slabs_partial,
	       info.objects_per_slab, 1u << info.slab_order);
	for (int i = 0; i < 100; i++)
		mk_cache_free(c, objs[i]);
	mk_cache_info(c, &info);
	printf("  all freed: %zu empty slabs; shrink gives back %zu pages\n\n", info.slabs_empty,
	       mk_cache_shrink(c));
	mk_cache_destroy(c);
}

static void demo_malloc(void)
{
	printf("3. malloc: size classes for small requests, mmap from %zu KiB\n", (size_t)128);
	char *small = malloc(100), *mid = malloc(40000), *large = malloc(1 << 20);
	if (!small || !mid || !large)
		return;
	small[0] = mid[0] = large[0] = 1;
	mk_stats_get(&st);
	printf("  malloc(100) -> a %zu-byte slot; malloc(40000) -> %zu bytes of pages; "
	       "malloc(1 MiB) -> its own mapping (%zu live)\n",
	       mk_malloc_usable_size(small), mk_malloc_usable_size(mid), st.large_live);
	uint64_t mmaps = st.sys_mmap;
	for (int i = 0; i < 1000; i++) { /* the reuse cache: no system call per loop */
		char *b = malloc(1 << 20);
		b[0] = 1;
		free(b);
	}
	mk_stats_get(&st);
	printf("  1000 x malloc+free of 1 MiB made %llu mmap calls\n\n",
	       (unsigned long long)(st.sys_mmap - mmaps));
	free(small);
	free(mid);
	free(large);
}

static void demo_heap_top(void)
{
	enum { N = 100000 };
	static void *blocks[N];
	printf("4. The heap-top trap: %d blocks of 1000 bytes, all freed but the last\n", N);
	for (int i = 0; i < N; i++)
		memset(blocks[i] = malloc(1000), 1, 1000);
	mk_stats_get(&st);
	size_t peak = st.resident_bytes;
	for (int i = 0; i < N - 1; i++)
		free(blocks[i]);
	mk_malloc_trim(0); /* what the decay does by itself after MEMKIT_DECAY_MS */
	mk_stats_get(&st);
	printf("  resident %.1f MiB with all live, %.1f MiB after the frees: the last block "
	       "pins nothing\n\n",
	       mib(peak), mib(st.resident_bytes));
	free(blocks[N - 1]);
}

int main(void)
{
	printf("libmemkit demo (pid %d)\n\n", (int)getpid());
	demo_buddy();
	demo_slab();
	demo_malloc();
	demo_heap_top();
	return 0;
}
