/* fuzz_alloc.c - libFuzzer harness for libmemkit's mk_ API.
 *
 * The input is a program: each operation is an opcode byte, a slot byte and
 * a few argument bytes, run on 32 slots of live blocks. Every block is filled
 * with a byte of its own when it is made and checked before it is freed,
 * resized and at the end, so a block that overlaps another, loses its
 * contents in realloc or is handed out twice shows up. calloc must give
 * zeroes, aligned allocations their alignment, malloc_usable_size at least
 * the size asked for. Any violation aborts with a message (a libFuzzer crash).
 *
 * The library is compiled from the src/ sources with MEMKIT_NO_OVERRIDE (mk_ names
 * only): AddressSanitizer keeps its own malloc for the harness, and the
 * allocator's own code is instrumented for coverage and checked by ASan/UBSan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memkit.h"

#define SLOTS	     32
#define PAGE_SLOTS   4
#define FULL_CHECK   (64 * 1024) /* bigger blocks: head and tail checked */
#define MAX_ORDER_FZ 5

struct slot {
	unsigned char *p;
	size_t size;
	unsigned char fill;
};

struct page_slot {
	unsigned char *p;
	unsigned order;
	unsigned char fill;
};

struct input {
	const uint8_t *data;
	size_t left;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const void *p, size_t n)
{
	fprintf(stderr, "fuzz_alloc: %s (block %p, size %zu)\n", what, p, n);
	abort();
}

static unsigned take8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->data++;
}

static unsigned take16(struct input *in)
{
	unsigned lo = take8(in);

	return lo | take8(in) << 8;
}

/* Mostly small sizes, sometimes page runs, rarely large mappings. */
static size_t take_size(struct input *in)
{
	unsigned kind = take8(in), v = take16(in);

	switch (kind & 7) {
	case 0:
	case 1:
	case 2:
		return v % 129; /* tiny, including 0 */
	case 3:
	case 4:
		return v % 2049;
	case 5:
		return v % 40000;
	case 6:
		return (size_t)v * 2 % 140000; /* around the mmap threshold */
	default:
		return (kind & 0x80) ? (size_t)v * 10 % 700000 : v % 300;
	}
}

static void fill(unsigned char *p, size_t from, size_t to, unsigned char c)
{
	if (to > from)
		memset(p + from, c, to - from);
}

static void check_range(const unsigned char *p, size_t from, size_t to, unsigned char c,
			size_t size)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != c)
			die("block contents changed", p, size);
}

static void check(const struct slot *s)
{
	if (!s->p)
		return;
	if (s->size <= FULL_CHECK) {
		check_range(s->p, 0, s->size, s->fill, s->size);
		return;
	}
	check_range(s->p, 0, 4096, s->fill, s->size);
	check_range(s->p, s->size / 2, s->size / 2 + 64, s->fill, s->size);
	check_range(s->p, s->size - 4096, s->size, s->fill, s->size);
}

static void fill_slot(struct slot *s, size_t from)
{
	if (s->size <= FULL_CHECK) {
		fill(s->p, from, s->size, s->fill);
		return;
	}
	/* only what check() reads, for speed, but never less than new bytes */
	fill(s->p, from, from > 4096 ? from : 4096, s->fill);
	fill(s->p, s->size / 2 > from ? s->size / 2 : from, s->size / 2 + 64, s->fill);
	fill(s->p, s->size - 4096 > from ? s->size - 4096 : from, s->size, s->fill);
}

static void took(struct slot *s, void *p, size_t size, size_t align, unsigned char c)
{
	if (!p)
		die("allocation failed", p, size);
	if ((uintptr_t)p % align)
		die("misaligned block", p, size);
	if (mk_malloc_usable_size(p) < size)
		die("malloc_usable_size below the size asked", p, size);
	s->p = p;
	s->size = size;
	s->fill = c;
	fill_slot(s, 0);
}

static void release(struct slot *s)
{
	check(s);
	mk_free(s->p);
	s->p = NULL;
	s->size = 0;
}

static void op_realloc(struct slot *s, size_t size, int array)
{
	size_t old = s->size, keep = old < size ? old : size;
	unsigned char *q;

	check(s);
	q = array ? mk_reallocarray(s->p, size ? 1 : 0, size) : mk_realloc(s->p, size);
	if (size == 0 && s->p) {
		/* the documented policy: realloc(p, 0) frees p, returns NULL */
		if (q)
			die("realloc(p, 0) returned a block", q, 0);
		s->p = NULL;
		s->size = 0;
		return;
	}
	if (!q)
		die("realloc failed", s->p, size);
	if ((uintptr_t)q % 16)
		die("realloc result not 16-aligned", q, size);
	s->p = q;
	/* the old contents moved with the block: all of them for a block that
	 * was filled whole, else the head, and everything when it grew */
	if (old <= FULL_CHECK)
		check_range(q, 0, keep, s->fill, size);
	else if (keep == old)
		check(s);
	else
		check_range(q, 0, keep < 4096 ? keep : 4096, s->fill, size);
	s->size = size;
	fill_slot(s, 0);
}

static void op_aligned(struct slot *s, struct input *in, unsigned how, unsigned char c)
{
	size_t align = (size_t)1 << (take8(in) % 13); /* 1 .. 4096 */
	size_t size = take_size(in);
	void *p = NULL;

	switch (how % 3) {
	case 0:
		if (align < sizeof(void *))
			align = sizeof(void *);
		if (mk_posix_memalign(&p, align, size))
			die("posix_memalign failed", NULL, size);
		break;
	case 1:
		p = mk_aligned_alloc(align, size);
		break;
	default:
		p = mk_memalign(align, size);
		break;
	}
	took(s, p, size, align, c);
}

static void op_pages(struct page_slot *ps, unsigned order, unsigned char c)
{
	size_t bytes;

	if (ps->p) {
		bytes = (size_t)MK_PAGE_SIZE << ps->order;
		check_range(ps->p, 0, 64, ps->fill, bytes);
		check_range(ps->p, bytes - 64, bytes, ps->fill, bytes);
		mk_pages_free(ps->p, ps->order);
		ps->p = NULL;
		return;
	}
	ps->order = order % (MAX_ORDER_FZ + 1);
	bytes = (size_t)MK_PAGE_SIZE << ps->order;
	ps->p = mk_pages_alloc(ps->order);
	if (!ps->p)
		die("mk_pages_alloc failed", NULL, bytes);
	if ((uintptr_t)ps->p % bytes)
		die("buddy block not aligned to its size", ps->p, bytes);
	ps->fill = c;
	memset(ps->p, c, 64);
	memset(ps->p + bytes - 64, c, 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct slot slots[SLOTS];
	struct page_slot pages[PAGE_SLOTS];
	unsigned char next_fill = 1;

	memset(slots, 0, sizeof(slots));
	memset(pages, 0, sizeof(pages));
	while (in.left) {
		unsigned op = take8(&in), idx = take8(&in);
		struct slot *s = &slots[idx % SLOTS];
		unsigned char c = next_fill++;

		if (!next_fill)
			next_fill = 1;
		switch (op % 9) {
		case 0: /* malloc */
		case 1:
			if (s->p)
				release(s);
			{
				size_t n = take_size(&in);
				took(s, mk_malloc(n), n, 16, c);
			}
			break;
		case 2: { /* calloc: zeroed */
			size_t count = take8(&in) % 17, n = take_size(&in);
			if (n > 4096)
				count = count ? 1 : 0;
			unsigned char *p;
			if (s->p)
				release(s);
			p = mk_calloc(count, n);
			if (!p)
				die("calloc failed", NULL, count * n);
			for (size_t i = 0; i < count * n; i++)
				if (p[i])
					die("calloc block not zeroed", p, count * n);
			took(s, p, count * n, 16, c);
			break;
		}
		case 3: /* aligned */
			if (s->p)
				release(s);
			op_aligned(s, &in, op / 9, c);
			break;
		case 4: /* realloc, also of NULL */
		case 5:
			op_realloc(s, take_size(&in), (op / 9) & 1);
			break;
		case 6: /* free */
			if (s->p)
				release(s);
			else
				mk_free(NULL);
			break;
		case 7: /* usable size of a live block */
			if (s->p && mk_malloc_usable_size(s->p) < s->size)
				die("malloc_usable_size shrank", s->p, s->size);
			if ((op / 9) == 7)
				mk_malloc_trim(0);
			break;
		default: /* buddy pages */
			op_pages(&pages[idx % PAGE_SLOTS], take8(&in), c);
			break;
		}
	}
	for (unsigned i = 0; i < SLOTS; i++)
		if (slots[i].p)
			release(&slots[i]);
	for (unsigned i = 0; i < PAGE_SLOTS; i++)
		if (pages[i].p)
			op_pages(&pages[i], 0, 0);
	return 0;
}
