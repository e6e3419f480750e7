/* procfs.h - every read and write of /proc and /sys by memkit(1) goes
 * through here, so that --proc-root DIR (or $MEMKIT_PROC_ROOT) can replay a
 * recorded dump. Implemented in cli/procfs.c; may call libc only.
 *
 * API guide (stable: names are only ever added):
 *	Paths are given as on a live system ("/proc/meminfo", "/sys/...");
 *	the root prefix is added here. Functions return 0 / a value on
 *	success and -1 with errno set on failure, unless they say otherwise.
 *
 *	mk_proc_set_root(dir)	 from --proc-root; NULL = $MEMKIT_PROC_ROOT or "/"
 *	mk_proc_is_live()	 true when reading the running system
 *	mk_proc_path(rel, buf, len)  the real path to open (root + rel)
 *	mk_proc_open(rel, flags) / mk_proc_fopen(rel, mode)
 *	mk_proc_read_file(rel, &len) whole file, malloc'd and NUL-terminated
 *	mk_proc_read_u64(rel, &v) / mk_proc_read_i64(rel, &v)  one number
 *	mk_proc_write(rel, str)  write a string (sysctls); -1/errno on failure
 *	mk_proc_warn_open(rel)	 "cannot open <path>: <why>" (uses errno)
 *
 *	struct mk_meminfo mi; mk_meminfo_read(&mi): every /proc/meminfo key in
 *	bytes (kB keys multiplied by 1024; page counts like HugePages_Total
 *	kept as counts), and the common ones as fields.
 *	mk_meminfo_get(&mi, "Dirty", &bytes) looks any key up (0 or -1).
 *
 *	mk_pid_exists(pid); mk_pid_status_kb(pid, "VmSwap", &bytes);
 *	mk_pid_status_str(pid, "Name", buf, len);
 *	mk_for_each_pid(fn, arg): calls fn(pid, arg) for each /proc/<pid>;
 *	stops early when fn returns non-zero and returns that value.
 */
#ifndef MEMKIT_CLI_PROCFS_H
#define MEMKIT_CLI_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

void mk_proc_set_root(const char *dir);
const char *mk_proc_root(void);
bool mk_proc_is_live(void);
char *mk_proc_path(const char *rel, char *buf, size_t len);
int mk_proc_open(const char *rel, int flags);
FILE *mk_proc_fopen(const char *rel, const char *mode);
char *mk_proc_read_file(const char *rel, size_t *len);
int mk_proc_read_u64(const char *rel, uint64_t *v);
int mk_proc_read_i64(const char *rel, int64_t *v);
int mk_proc_write(const char *rel, const char *str);
void mk_proc_warn_open(const char *rel);
bool mk_proc_exists(const char *rel);

#define MK_MEMINFO_MAX_KEYS 128
#define MK_MEMINFO_KEYLEN   32

struct mk_meminfo_entry {
	char key[MK_MEMINFO_KEYLEN];
	uint64_t value; /* bytes when is_bytes, else a count */
	bool is_bytes;
};

struct mk_meminfo {
	size_t nentries;
	struct mk_meminfo_entry entries[MK_MEMINFO_MAX_KEYS];
	/* The keys used most, in bytes; 0 when the kernel lacks them. */
	uint64_t mem_total, mem_free, mem_available, buffers, cached, swap_cached;
	uint64_t active_file, inactive_file, active_anon, inactive_anon;
	uint64_t shmem, sreclaimable, sunreclaim, slab;
	uint64_t swap_total, swap_free, dirty, writeback;
	bool has_mem_available; /* kernels before 3.14 lack it */
};

int mk_meminfo_read(struct mk_meminfo *mi);
int mk_meminfo_parse(struct mk_meminfo *mi, const char *text);
int mk_meminfo_get(const struct mk_meminfo *mi, const char *key, uint64_t *value);

bool mk_pid_exists(pid_t pid);
int mk_pid_status_str(pid_t pid, const char *key, char *buf, size_t len);
int mk_pid_status_kb(pid_t pid, const char *key, uint64_t *bytes);
int mk_for_each_pid(int (*fn)(pid_t pid, void *arg), void *arg);

/* The memory cgroup this process is in (from /proc/self/cgroup), v1 or
 * v2, with the tightest limit over it and its ancestors. */
struct mk_cgroup_memory {
	int version;		/* 1 or 2; 0 when no memory cgroup was found */
	char path[512];		/* the cgroup's path inside its hierarchy */
	bool limited;		/* a limit below "max" applies */
	uint64_t limit;		/* bytes; valid when limited */
	uint64_t usage;		/* memory.current / memory.usage_in_bytes */
	uint64_t file;		/* page cache charged to it (memory.stat) */
	uint64_t inactive_file; /* the part the kernel reclaims first */
};

int mk_cgroup_memory_read(struct mk_cgroup_memory *cg);

#endif
