/* os.c - the boundary with the kernel: the only file that maps, unmaps,
 * purges or remaps memory. Every function returns 0 or an errno value.
 *
 * Counting every call here is what lets `memkit run --stats` say how many
 * system calls the allocator made.
 *
 * May call: mmap, munmap, madvise, mremap, getrandom (once), open/read/close
 * (statm); libc.c.
 */
#define _GNU_SOURCE /* mremap */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "memkit/internal.h"

struct mki_os_counters mki_os_count;
static _Atomic uint32_t map_calls; /* for MEMKIT_FAIL_MMAP fault injection */

/* Address space given back to the kernel (munmap, the old range of a
 * mremap that moved) may come back at once to another thread's mmap or
 * mremap. The kernel orders the two, but ThreadSanitizer does not see
 * mremap and would take the new owner's first writes for a race with the
 * old owner's last ones. Every change to the address space passes through
 * this counter (acquire and release, one atomic add beside a system call),
 * so the order is in the program's own memory model too. */
static _Atomic uint64_t address_space_changes;

static void address_space_order(void)
{
	atomic_fetch_add_explicit(&address_space_changes, 1, memory_order_acq_rel);
}

static bool injected_failure(void)
{
	uint32_t n = atomic_fetch_add_explicit(&map_calls, 1, memory_order_relaxed) + 1;
	return mki_opt.fail_mmap && n >= mki_opt.fail_mmap;
}

static int raw_map(size_t size, void **out)
{
	if (injected_failure())
		return ENOMEM;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	atomic_fetch_add_explicit(&mki_os_count.mmap, 1, memory_order_relaxed);
	if (p == MAP_FAILED)
		return errno ? errno : ENOMEM;
	address_space_order();
	*out = p;
	return 0;
}

static void raw_unmap(void *addr, size_t size)
{
	if (!size)
		return;
	address_space_order();
	munmap(addr, size);
	atomic_fetch_add_explicit(&mki_os_count.munmap, 1, memory_order_relaxed);
}

/* Map size bytes aligned to align (a power of two >= page). Try the exact size
 * first: the kernel places mappings next to each other top-down, so after the
 * first aligned chunk the next one is usually aligned too. Otherwise map
 * size + align and trim both ends. */
int mki_os_map(size_t size, size_t align, void **out)
{
	void *p = NULL;
	int err;
	size = mki_align_up(size, MKI_PAGE_SIZE);
	if (align < MKI_PAGE_SIZE)
		align = MKI_PAGE_SIZE;
	if ((err = raw_map(size, &p)))
		return err;
	if (((uintptr_t)p & (align - 1)) == 0)
		goto out_mapped;
	raw_unmap(p, size);
	if (size + align < size)
		return ENOMEM;
	if ((err = raw_map(size + align, &p)))
		return err;
	uintptr_t start = mki_align_up((uintptr_t)p, align);
	raw_unmap(p, start - (uintptr_t)p);
	raw_unmap((char *)start + size, (uintptr_t)p + align - start);
	p = (void *)start;
out_mapped:
	atomic_fetch_add_explicit(&mki_os_count.mapped_bytes, size, memory_order_relaxed);
	*out = p;
	return 0;
}

/* Chunks go to a part of the address space of their own, from a random
 * point between 2 and 3 TiB up (as mimalloc places its segments), one
 * after the other, aligned by construction; the kernel places everything
 * else top-down from below the stack. Among the large blocks' mappings, a
 * chunk keeps apart cached ranges that would meet and join: with a second
 * thread's chunk mapped there, wl-random spent twice the time in the large
 * cache (seventeenth round). Where the place is taken (the kernel says so
 * with MAP_FIXED_NOREPLACE; older kernels take the address as a hint), the
 * chunk goes wherever the kernel puts it, as before, and the next chunk
 * tries the next place. */
/* (sanitizers keep their shadow memory at these addresses) */
#if UINTPTR_MAX > 0xFFFFFFFFu && !defined(MKI_ASAN) && !defined(MKI_TSAN)
#define CHUNK_AREA	((uintptr_t)2 << 40)
#define CHUNK_AREA_SPAN ((uintptr_t)1 << 40) /* where the first chunk may start */
#define CHUNK_AREA_END	((uintptr_t)4 << 40)
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
static _Atomic uintptr_t next_chunk_at; /* 0: not chosen yet */

static uintptr_t first_chunk_place(size_t size)
{
	uint64_t r = 0;
	if (syscall(SYS_getrandom, &r, sizeof(r), GRND_NONBLOCK) != (long)sizeof(r))
		r = (uint64_t)(uintptr_t)&r * 0x9E3779B97F4A7C15ull ^ mki_clock_ms();
	return CHUNK_AREA + (uintptr_t)(r % (CHUNK_AREA_SPAN / size)) * size;
}

static bool map_at(uintptr_t at, size_t size, void **out)
{
	void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	atomic_fetch_add_explicit(&mki_os_count.mmap, 1, memory_order_relaxed);
	if (p == MAP_FAILED)
		return false;
	address_space_order();
	if ((uintptr_t)p != at) { /* a kernel without MAP_FIXED_NOREPLACE */
		raw_unmap(p, size);
		return false;
	}
	*out = p;
	return true;
}

int mki_os_map_chunk(size_t size, void **out)
{
	if (injected_failure())
		return ENOMEM;
	uintptr_t at = atomic_load_explicit(&next_chunk_at, memory_order_relaxed);
	if (!at) {
		uintptr_t first = first_chunk_place(size);
		atomic_compare_exchange_strong_explicit(&next_chunk_at, &at, first,
							memory_order_relaxed, memory_order_relaxed);
	}
	at = atomic_fetch_add_explicit(&next_chunk_at, size, memory_order_relaxed);
	if (at + size <= CHUNK_AREA_END && map_at(at, size, out)) {
		atomic_fetch_add_explicit(&mki_os_count.mapped_bytes, size, memory_order_relaxed);
		return 0;
	}
	return mki_os_map(size, size, out);
}
#else /* no room for an area of their own, or a sanitizer's */
int mki_os_map_chunk(size_t size, void **out)
{
	return mki_os_map(size, size, out);
}
#endif

/* A shared mapping of a file (the shared-memory heap). Not counted in
 * mapped_bytes, which describes this process's private memory. */
int mki_os_map_shared(int fd, size_t size, void **out)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	atomic_fetch_add_explicit(&mki_os_count.mmap, 1, memory_order_relaxed);
	if (p == MAP_FAILED)
		return errno;
	*out = p;
	return 0;
}

int mki_os_unmap_shared(void *addr, size_t size)
{
	atomic_fetch_add_explicit(&mki_os_count.munmap, 1, memory_order_relaxed);
	return munmap(addr, size) ? errno : 0;
}

int mki_os_unmap(void *addr, size_t size)
{
	size = mki_align_up(size, MKI_PAGE_SIZE);
	address_space_order();
	if (munmap(addr, size))
		return errno;
	atomic_fetch_add_explicit(&mki_os_count.munmap, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&mki_os_count.mapped_bytes, size, memory_order_relaxed);
	return 0;
}

/* MADV_DONTNEED drops the pages at once (RSS falls, next touch reads zeros);
 * MADV_FREE lets the kernel take them only under pressure, cheaper when the
 * memory is reused soon but invisible in RSS. DONTNEED is the default because
 * users judge an allocator by its RSS. */
int mki_os_purge(void *addr, size_t size)
{
	int advice = mki_opt.purge_lazy ? MADV_FREE : MADV_DONTNEED;
	atomic_fetch_add_explicit(&mki_os_count.madvise, 1, memory_order_relaxed);
	if (madvise(addr, size, advice))
		return errno;
	return 0;
}

int mki_os_remap(void *addr, size_t old_size, size_t new_size, bool may_move, void **out)
{
	if (injected_failure())
		return ENOMEM;
	address_space_order();
	void *p = mremap(addr, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
	atomic_fetch_add_explicit(&mki_os_count.mremap, 1, memory_order_relaxed);
	if (p == MAP_FAILED)
		return errno;
	address_space_order();
	if (new_size > old_size)
		atomic_fetch_add_explicit(&mki_os_count.mapped_bytes, new_size - old_size,
					  memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&mki_os_count.mapped_bytes, old_size - new_size,
					  memory_order_relaxed);
	*out = p;
	return 0;
}

int mki_os_protect(void *addr, size_t size, bool accessible)
{
	if (mprotect(addr, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE))
		return errno;
	return 0;
}

size_t mki_os_resident_bytes(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *s = buf;
	while (*s && *s != ' ') /* skip size */
		s++;
	size_t pages = 0;
	for (s++; *s >= '0' && *s <= '9'; s++)
		pages = pages * 10 + (size_t)(*s - '0');
	return pages * (size_t)getpagesize();
}
