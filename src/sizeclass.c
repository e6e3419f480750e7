/* sizeclass.c - the size classes of malloc's memory pools.
 *
 * 16, 32, 48 ... 128 bytes, then four classes per power of two (160, 192,
 * 224, 256, 320 ...) up to MKI_SLAB_MAX: every block is 16-byte aligned and
 * no class wastes more than 1/4 of its size to rounding, 1/8 on average
 * above 128 bytes (the notes' internal fragmentation, bounded). From 1 KiB
 * on, one more class an eighth above each power of two (1152, 2304, 4608,
 * 9216, 18432): a power of two plus a small header is what buffer pools
 * and page caches ask for (sqlite3's pages are 4104 and 4368 bytes, 17 %
 * of a 5120-byte slot wasted; 5 % in 4608). Each class
 * has a slab order: the smallest buddy block of at least 64 KiB (32 KiB
 * above 128 bytes) that holds at least 8 blocks, so a slab's tail waste
 * stays under 1/8, and the
 * geometry of such a slab's slots (mki_class_geom) that free() checks
 * pointers against. Each class also has a bound on the freed blocks a heap
 * keeps to reuse (each half of heap.c's recent lists): 32 KiB
 * worth, at least 2 and at most 128.
 *
 * May call: nothing.
 */
#include "memkit/internal.h"

uint8_t mki_class_of_size[MKI_SLAB_MAX / MKI_ALIGN + 1];
uint32_t mki_class_size[MKI_CLASSES_MAX];
uint8_t mki_class_order[MKI_CLASSES_MAX];
uint32_t mki_class_recent_max[MKI_CLASSES_MAX];
struct mki_class_geom mki_class_geom[MKI_CLASSES_MAX];
unsigned mki_class_count;

#define LINEAR_CLASSES	    8u	  /* 16 .. 128 */
#define HEADER_CLASSES_FROM 1024u /* power of two + 1/8 classes from here */
/* A thread keeps a partly used slab per class it uses, so the smaller the
 * slab, the less a program with many threads holds (wl-threads 4.9 -> 4.4
 * MiB of peak RSS, wl-prodcons 5.3 -> 4.9, on 2 cores). The smallest
 * classes keep 64 KiB: their slabs fill and empty fastest (wl-tree took 12 %
 * more CPU with 32-byte blocks in 32 KiB slabs). */
#define MIN_SLAB_ORDER	   4 /* 64 KiB */
#define MIN_SLAB_ORDER_MID 3 /* 32 KiB, above LINEAR_CLASSES' sizes */
#define MIN_SLAB_OBJECTS   8
#define RECENT_BYTES	   (32u << 10)
#define RECENT_MAX	   128u

static unsigned slab_order_for(size_t size)
{
	unsigned k =
	    size > (size_t)LINEAR_CLASSES * MKI_ALIGN ? MIN_SLAB_ORDER_MID : MIN_SLAB_ORDER;
	while ((((size_t)1 << (k + MKI_PAGE_SHIFT)) / size) < MIN_SLAB_OBJECTS)
		k++;
	return k;
}

static void add_class(size_t size)
{
	unsigned order = slab_order_for(size);
	size_t bytes = (size_t)1 << (order + MKI_PAGE_SHIFT);
	mki_class_size[mki_class_count] = (uint32_t)size;
	mki_class_order[mki_class_count] = (uint8_t)order;
	mki_class_geom[mki_class_count] = (struct mki_class_geom){
	    .divides = UINT64_MAX / size + 1,
	    .span = (uint32_t)(bytes / size * size),
	    .mask = (uint32_t)(bytes - 1),
	};
	uint32_t n = RECENT_BYTES / (uint32_t)size;
	mki_class_recent_max[mki_class_count] = n < MKI_RECENT_MIN ? MKI_RECENT_MIN
						: n > RECENT_MAX   ? RECENT_MAX
								   : n;
	mki_class_count++;
}

void mki_sizeclass_init(void)
{
	if (mki_class_count)
		return;
	for (size_t s = MKI_ALIGN; s <= (size_t)LINEAR_CLASSES * MKI_ALIGN; s += MKI_ALIGN)
		add_class(s);
	for (size_t base = (size_t)LINEAR_CLASSES * MKI_ALIGN; base < MKI_SLAB_MAX; base *= 2) {
		if (base >= HEADER_CLASSES_FROM)
			add_class(base + base / 8);
		for (size_t step = 1; step <= 4; step++)
			add_class(base + step * base / 4);
	}
	/* sizes and classes both ascend: one pass (a search from the first
	 * class for each size took 0.4 M instructions, most of a start-up) */
	unsigned c = 0;
	for (size_t i = 0; i <= MKI_SLAB_MAX / MKI_ALIGN; i++) {
		while (mki_class_size[c] < i * MKI_ALIGN)
			c++;
		mki_class_of_size[i] = (uint8_t)c;
	}
}
