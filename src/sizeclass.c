/* sizeclass.c - the size classes of malloc's memory pools.
 *
 * 16, 32, 48 ... 128 bytes, then four classes per power of two (160, 192,
 * 224, 256, 320 ...) up to MKI_SLAB_MAX: every block is 16-byte aligned and
 * no class wastes more than 1/4 of its size to rounding, 1/8 on average
 * above 128 bytes (the notes' internal fragmentation, bounded). Each class
 * has a slab order: the smallest buddy block of at least 64 KiB that holds
 * at least 8 blocks, so a slab's tail waste stays under 1/8.
 *
 * May call: nothing.
 */
#include "memkit/internal.h"

uint8_t mki_class_of_small[MKI_SMALL_MAX / MKI_ALIGN + 1];
uint32_t mki_class_size[MKI_CLASSES_MAX];
uint8_t mki_class_order[MKI_CLASSES_MAX];
unsigned mki_class_count;

#define MIN_SLAB_ORDER	 4 /* 64 KiB */
#define MIN_SLAB_OBJECTS 8

static unsigned slab_order_for(size_t size)
{
	unsigned k = MIN_SLAB_ORDER;
	while ((((size_t)1 << (k + MKI_PAGE_SHIFT)) / size) < MIN_SLAB_OBJECTS)
		k++;
	return k;
}

static void add_class(size_t size)
{
	mki_class_size[mki_class_count] = (uint32_t)size;
	mki_class_order[mki_class_count] = (uint8_t)slab_order_for(size);
	mki_class_count++;
}

void mki_sizeclass_init(void)
{
	if (mki_class_count)
		return;
	for (size_t s = MKI_ALIGN; s <= 128; s += MKI_ALIGN)
		add_class(s);
	for (size_t base = 128; base < MKI_SLAB_MAX; base *= 2)
		for (size_t step = 1; step <= 4; step++)
			add_class(base + step * base / 4);
	unsigned c = 0;
	for (size_t i = 0; i <= MKI_SMALL_MAX / MKI_ALIGN; i++) {
		size_t size = i * MKI_ALIGN;
		while (mki_class_size[c] < size)
			c++;
		mki_class_of_small[i] = (uint8_t)c;
	}
}

/* For sizes above MKI_SMALL_MAX: four classes per power of two. */
unsigned mki_class_of(size_t size)
{
	if (size <= MKI_SMALL_MAX)
		return mki_class_of_small_size(size);
	unsigned lo = mki_class_of_small_size(MKI_SMALL_MAX), hi = mki_class_count - 1;
	while (lo < hi) { /* few classes: a binary search is short and branch-light */
		unsigned mid = (lo + hi) / 2;
		if (mki_class_size[mid] < size)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
