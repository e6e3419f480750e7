/* procfs.c - the one place memkit(1) reads and writes /proc and /sys. Every
 * path is resolved under the proc root (--proc-root DIR or
 * $MEMKIT_PROC_ROOT) so recorded dumps replay like a live machine.
 * May call libc and cli/common.c (messages).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "procfs.h"

/* "" for the live system, else the dump's directory without a trailing '/'. */
static char proc_root[PATH_MAX];
static bool proc_root_set;

void mk_proc_set_root(const char *dir)
{
	size_t len;

	if (!dir)
		dir = getenv("MEMKIT_PROC_ROOT");
	if (!dir)
		dir = "";
	len = strlen(dir);
	while (len > 0 && dir[len - 1] == '/')
		len--;
	if (len >= sizeof(proc_root))
		mk_errx(2, "--proc-root path too long");
	memcpy(proc_root, dir, len);
	proc_root[len] = '\0';
	proc_root_set = true;
}

static void ensure_root(void)
{
	if (!proc_root_set)
		mk_proc_set_root(NULL);
}

const char *mk_proc_root(void)
{
	ensure_root();
	return *proc_root ? proc_root : "/";
}

bool mk_proc_is_live(void)
{
	ensure_root();
	return *proc_root == '\0';
}

char *mk_proc_path(const char *rel, char *buf, size_t len)
{
	ensure_root();
	int n = snprintf(buf, len, "%s%s", proc_root, rel);
	if (n < 0 || (size_t)n >= len)
		mk_errx(1, "path too long: %s%s", proc_root, rel);
	return buf;
}

int mk_proc_open(const char *rel, int flags)
{
	char path[PATH_MAX];

	return open(mk_proc_path(rel, path, sizeof(path)), flags | O_CLOEXEC);
}

FILE *mk_proc_fopen(const char *rel, const char *mode)
{
	char path[PATH_MAX];

	return fopen(mk_proc_path(rel, path, sizeof(path)), mode);
}

bool mk_proc_exists(const char *rel)
{
	char path[PATH_MAX];

	return access(mk_proc_path(rel, path, sizeof(path)), F_OK) == 0;
}

void mk_proc_warn_open(const char *rel)
{
	char path[PATH_MAX];

	mk_warn("cannot open %s", mk_proc_path(rel, path, sizeof(path)));
}

/* /proc files report size 0, so read until EOF into a growing buffer. */
static char *read_fd_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			buf[n] = '\0';
			if (len)
				*len = n;
			return buf;
		}
		n += (size_t)r;
		if (cap - n - 1 == 0) {
			char *bigger = realloc(buf, cap * 2);
			if (!bigger)
				break;
			buf = bigger;
			cap *= 2;
		}
	}
	int saved = errno;
	free(buf);
	errno = saved ? saved : ENOMEM;
	return NULL;
}

char *mk_proc_read_file(const char *rel, size_t *len)
{
	int fd = mk_proc_open(rel, O_RDONLY);
	if (fd < 0)
		return NULL;
	char *buf = read_fd_all(fd, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return buf;
}

int mk_proc_read_i64(const char *rel, int64_t *v)
{
	char *text = mk_proc_read_file(rel, NULL);
	char *end = NULL;

	if (!text)
		return -1;
	errno = 0;
	long long x = strtoll(text, &end, 10);
	int bad = errno || end == text || (*end && !isspace((unsigned char)*end));
	free(text);
	if (bad) {
		errno = EINVAL;
		return -1;
	}
	*v = x;
	return 0;
}

int mk_proc_read_u64(const char *rel, uint64_t *v)
{
	char *text = mk_proc_read_file(rel, NULL);
	char *end = NULL;

	if (!text)
		return -1;
	errno = 0;
	unsigned long long x = strtoull(text, &end, 10);
	int bad = errno || end == text || (*end && !isspace((unsigned char)*end)) || *text == '-';
	free(text);
	if (bad) {
		errno = EINVAL;
		return -1;
	}
	*v = x;
	return 0;
}

int mk_proc_write(const char *rel, const char *str)
{
	int fd = mk_proc_open(rel, O_WRONLY);
	if (fd < 0)
		return -1;
	size_t len = strlen(str);
	ssize_t w = write(fd, str, len);
	int saved = errno;
	int close_rc = close(fd);
	if (w < 0) {
		errno = saved;
		return -1;
	}
	if (close_rc != 0)
		return -1;
	if ((size_t)w != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ meminfo */

static void meminfo_set_field(struct mk_meminfo *mi, const char *key, uint64_t v)
{
	static const struct {
		const char *key;
		size_t offset;
	} fields[] = {
#define F(k, f) {k, offsetof(struct mk_meminfo, f)}
	    F("MemTotal", mem_total),
	    F("MemFree", mem_free),
	    F("MemAvailable", mem_available),
	    F("Buffers", buffers),
	    F("Cached", cached),
	    F("SwapCached", swap_cached),
	    F("Active(file)", active_file),
	    F("Inactive(file)", inactive_file),
	    F("Active(anon)", active_anon),
	    F("Inactive(anon)", inactive_anon),
	    F("Shmem", shmem),
	    F("SReclaimable", sreclaimable),
	    F("SUnreclaim", sunreclaim),
	    F("Slab", slab),
	    F("SwapTotal", swap_total),
	    F("SwapFree", swap_free),
	    F("Dirty", dirty),
	    F("Writeback", writeback),
#undef F
	};
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (!strcmp(fields[i].key, key)) {
			*(uint64_t *)((char *)mi + fields[i].offset) = v;
			return;
		}
}

/* One "Key:   123 kB" line; returns 0, or -1 when it is not one. */
static int meminfo_parse_line(const char *line, struct mk_meminfo_entry *e)
{
	const char *colon = strchr(line, ':');
	char *end = NULL;

	if (!colon || colon == line || (size_t)(colon - line) >= sizeof(e->key))
		return -1;
	memcpy(e->key, line, (size_t)(colon - line));
	e->key[colon - line] = '\0';
	errno = 0;
	unsigned long long v = strtoull(colon + 1, &end, 10);
	if (errno || end == colon + 1)
		return -1;
	while (*end == ' ' || *end == '\t')
		end++;
	e->is_bytes = !strncmp(end, "kB", 2);
	e->value = e->is_bytes ? v * 1024 : v;
	return 0;
}

int mk_meminfo_parse(struct mk_meminfo *mi, const char *text)
{
	memset(mi, 0, sizeof(*mi));
	while (*text && mi->nentries < MK_MEMINFO_MAX_KEYS) {
		struct mk_meminfo_entry *e = &mi->entries[mi->nentries];
		if (meminfo_parse_line(text, e) == 0) {
			meminfo_set_field(mi, e->key, e->value);
			if (!strcmp(e->key, "MemAvailable"))
				mi->has_mem_available = true;
			mi->nentries++;
		}
		const char *nl = strchr(text, '\n');
		if (!nl)
			break;
		text = nl + 1;
	}
	if (mi->nentries == 0 || !mi->mem_total) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int mk_meminfo_read(struct mk_meminfo *mi)
{
	char *text = mk_proc_read_file("/proc/meminfo", NULL);
	if (!text)
		return -1;
	int rc = mk_meminfo_parse(mi, text);
	free(text);
	return rc;
}

int mk_meminfo_get(const struct mk_meminfo *mi, const char *key, uint64_t *value)
{
	for (size_t i = 0; i < mi->nentries; i++)
		if (!strcmp(mi->entries[i].key, key)) {
			*value = mi->entries[i].value;
			return 0;
		}
	errno = ENOENT;
	return -1;
}

/* ------------------------------------------------------------ processes */

bool mk_pid_exists(pid_t pid)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/stat", (int)pid);
	return mk_proc_exists(rel);
}

int mk_pid_status_str(pid_t pid, const char *key, char *buf, size_t len)
{
	char rel[64];
	size_t klen = strlen(key);

	snprintf(rel, sizeof(rel), "/proc/%d/status", (int)pid);
	char *text = mk_proc_read_file(rel, NULL);
	if (!text)
		return -1;
	for (const char *line = text; line && *line;) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			const char *v = line + klen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t n = strcspn(v, "\n");
			snprintf(buf, len, "%.*s", (int)n, v);
			free(text);
			return 0;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(text);
	errno = ENOENT;
	return -1;
}

int mk_pid_status_kb(pid_t pid, const char *key, uint64_t *bytes)
{
	char buf[64];
	uint64_t kb;

	if (mk_pid_status_str(pid, key, buf, sizeof(buf)) < 0)
		return -1;
	buf[strcspn(buf, " \t")] = '\0';
	if (mk_parse_u64(buf, &kb) < 0) {
		errno = EINVAL;
		return -1;
	}
	*bytes = kb * 1024;
	return 0;
}

static bool is_pid_name(const char *name)
{
	if (!*name)
		return false;
	for (; *name; name++)
		if (!isdigit((unsigned char)*name))
			return false;
	return true;
}

int mk_for_each_pid(int (*fn)(pid_t pid, void *arg), void *arg)
{
	char path[PATH_MAX];
	DIR *dir = opendir(mk_proc_path("/proc", path, sizeof(path)));
	struct dirent *de;
	int rc = 0;

	if (!dir)
		return -1;
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		if (!is_pid_name(de->d_name))
			continue;
		long pid = strtol(de->d_name, NULL, 10);
		if (pid > 0 && pid <= INT_MAX)
			rc = fn((pid_t)pid, arg);
	}
	closedir(dir);
	return rc;
}

/* ------------------------------------------------------------ cgroups */

/* v1 reports "no limit" as a huge page-aligned number near 2^63. */
#define CGROUP_V1_UNLIMITED (1ULL << 62)

/* The path of our memory cgroup: the "0::" line (v2) or the line whose
 * controller list holds "memory" (v1). Returns the version or 0. */
static int cgroup_find_memory_line(const char *text, char *path, size_t len)
{
	int version = 0;

	for (const char *line = text; line && *line;) {
		const char *c1 = strchr(line, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		size_t n = strcspn(c2 ? c2 + 1 : line, "\n");
		if (c2 && !strncmp(line, "0::", 3) && version == 0) {
			snprintf(path, len, "%.*s", (int)n, c2 + 1);
			version = 2;
		} else if (c2) {
			char ctrl[128];
			snprintf(ctrl, sizeof(ctrl), ",%.*s,", (int)(c2 - c1 - 1), c1 + 1);
			if (strstr(ctrl, ",memory,")) {
				snprintf(path, len, "%.*s", (int)n, c2 + 1);
				return 1; /* v1 memory controller wins over the v2 line */
			}
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return version;
}

static int cgroup_read_limit(const char *rel, uint64_t *limit)
{
	char *text = mk_proc_read_file(rel, NULL);
	if (!text)
		return -1;
	int rc = 0;
	if (!strncmp(text, "max", 3))
		*limit = UINT64_MAX;
	else if (mk_parse_u64(strtok(text, "\n"), limit) < 0)
		rc = -1;
	free(text);
	if (rc == 0 && *limit >= CGROUP_V1_UNLIMITED)
		*limit = UINT64_MAX;
	return rc;
}

static void cgroup_read_stat(const char *dir, int version, struct mk_cgroup_memory *cg)
{
	char rel[PATH_MAX + 32];
	snprintf(rel, sizeof(rel), "%s/memory.stat", dir);
	char *text = mk_proc_read_file(rel, NULL);
	if (!text)
		return;
	/* v1 "total_*" keys include descendants, as usage_in_bytes does */
	const char *file_key = version == 2 ? "file " : "total_cache ";
	const char *inactive_key = version == 2 ? "inactive_file " : "total_inactive_file ";
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strncmp(line, file_key, strlen(file_key)))
			mk_parse_u64(line + strlen(file_key), &cg->file);
		else if (!strncmp(line, inactive_key, strlen(inactive_key)))
			mk_parse_u64(line + strlen(inactive_key), &cg->inactive_file);
	}
	free(text);
}

/* Where the hierarchy is mounted: the pure v2 mount is /sys/fs/cgroup;
 * hybrid and v1 systems mount the memory controller below it. */
static const char *cgroup_mount(int version)
{
	if (version == 1)
		return "/sys/fs/cgroup/memory";
	if (mk_proc_exists("/sys/fs/cgroup/cgroup.controllers"))
		return "/sys/fs/cgroup";
	return "/sys/fs/cgroup/unified";
}

/* Our cgroup's directory. Inside a container the recorded path often does
 * not exist (the mount is already our cgroup), so fall back to the mount. */
static void cgroup_dir(const struct mk_cgroup_memory *cg, char *dir, size_t len)
{
	const char *mnt = cgroup_mount(cg->version);
	const char *usage = cg->version == 2 ? "memory.current" : "memory.usage_in_bytes";
	char probe[PATH_MAX + 32];

	snprintf(dir, len, "%s%s", mnt, strcmp(cg->path, "/") ? cg->path : "");
	snprintf(probe, sizeof(probe), "%s/%s", dir, usage);
	if (!mk_proc_exists(probe))
		snprintf(dir, len, "%s", mnt);
}

/* The tightest limit on dir and its ancestors up to the mount. */
static uint64_t cgroup_effective_limit(const char *mnt, char *dir, int version)
{
	const char *file = version == 2 ? "memory.max" : "memory.limit_in_bytes";
	uint64_t best = UINT64_MAX;
	char rel[PATH_MAX + 32];

	for (;;) {
		uint64_t limit;
		snprintf(rel, sizeof(rel), "%s/%s", dir, file);
		if (cgroup_read_limit(rel, &limit) == 0 && limit < best)
			best = limit;
		if (strlen(dir) <= strlen(mnt))
			break;
		char *slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	return best;
}

int mk_cgroup_memory_read(struct mk_cgroup_memory *cg)
{
	char dir[PATH_MAX], rel[PATH_MAX + 32];

	memset(cg, 0, sizeof(*cg));
	char *text = mk_proc_read_file("/proc/self/cgroup", NULL);
	if (!text)
		return -1;
	cg->version = cgroup_find_memory_line(text, cg->path, sizeof(cg->path));
	free(text);
	if (!cg->version) {
		errno = ENOENT;
		return -1;
	}
	cgroup_dir(cg, dir, sizeof(dir));
	snprintf(rel, sizeof(rel), "%s/%s", dir,
		 cg->version == 2 ? "memory.current" : "memory.usage_in_bytes");
	if (mk_proc_read_u64(rel, &cg->usage) < 0) {
		cg->version = 0;
		return -1;
	}
	cgroup_read_stat(dir, cg->version, cg);
	cg->limit = cgroup_effective_limit(cgroup_mount(cg->version), dir, cg->version);
	cg->limited = cg->limit != UINT64_MAX;
	return 0;
}
