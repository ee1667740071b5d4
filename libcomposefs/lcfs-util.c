/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Small helpers shared by the library and the tools (see lcfs-util.h).
 */
#include "lcfs-compat.h"
#include "lcfs-util.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

/* Without openat2() (Linux before 5.6): the same walk by hand, one
 * component at a time, never through a symlink; ".." is refused rather
 * than checked. Returns the fd or -errno. */
static int open_walk(int dirfd, const char *path, int flags)
{
	cleanup_fd int dfd = -1;
	char comp[NAME_MAX + 1];
	int cur = dirfd;

	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		int fd;

		if (len == 0)
			return -ENOENT;
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (strcmp(comp, "..") == 0)
			return -EXDEV;
		if (slash == NULL) {
			fd = openat(cur, comp, flags | O_NOFOLLOW);
			return fd < 0 ? -errno : fd;
		}
		p = slash + 1;
		if (strcmp(comp, ".") == 0)
			continue;
		fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (dfd >= 0)
			close(dfd);
		cur = dfd = fd;
	}
}

int lcfs_open_confined(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)flags,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (path[0] == '\0' || path[0] == '/')
		return -EXDEV;
	fd = lcfs_openat2(dirfd, path, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return open_walk(dirfd, path, flags);
	return fd < 0 ? -errno : fd;
}

/* ---- Exact I/O loops ------------------------------------------------------------ */

/* The loop of the three below: all of @len bytes at @off (or at the file
 * offset when @off is -1), EINTR retried. */
static int io_all(int fd, bool write_, void *buf, size_t len, int64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n;

		if (write_)
			n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);
		else
			n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return write_ ? -EIO : -ENODATA; /* the file ends before */
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int lcfs_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	return io_all(fd, false, buf, len, (int64_t)off);
}

int lcfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_all(fd, true, (void *)buf, len, (int64_t)off);
}

int lcfs_write_all(int fd, const void *buf, size_t len)
{
	return io_all(fd, true, (void *)buf, len, -1);
}

/* First buffer of lcfs_read_all(); it doubles from there. */
#define READ_ALL_START (64 * 1024)

int lcfs_read_all(int fd, size_t max, uint8_t **out, size_t *lenp)
{
	size_t cap = max < READ_ALL_START ? max + 1 : READ_ALL_START;
	size_t len = 0;
	uint8_t *buf = malloc(cap + 1);

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap;
			uint8_t *bigger;

			if (cap > max) {
				free(buf);
				return -EFBIG;
			}
			if (cap > SIZE_MAX / 2 - 1) {
				free(buf);
				return -ENOMEM;
			}
			/* One byte over @max is enough to see that
			 * the file is too large. */
			ncap = cap * 2 > max ? max + 1 : cap * 2;
			bigger = realloc(buf, ncap + 1);
			if (bigger == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = buf;
	*lenp = len;
	return 0;
}

/* ---- CPU count ------------------------------------------------------------------- */

unsigned lcfs_cpu_count(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* ---- Digest hex ----------------------------------------------------------------- */

void lcfs_digest_to_hex(const uint8_t digest[LCFS_DIGEST_SIZE], char hex[65])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < LCFS_DIGEST_SIZE; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0xf];
	}
	hex[64] = '\0';
}

/* Value of a hex digit plus one, 0 for anything else. A table: every
 * external file of a dumpfile has a 64-digit DIGEST, so this is on the hot
 * path. */
static const uint8_t hex_values[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int lcfs_hex_value(char c)
{
	return (int)hex_values[(uint8_t)c] - 1;
}

int lcfs_digest_from_hex(const char *hex, size_t len,
			 uint8_t digest[LCFS_DIGEST_SIZE])
{
	if (len != 2 * LCFS_DIGEST_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < LCFS_DIGEST_SIZE; i++) {
		unsigned hi = hex_values[(uint8_t)hex[2 * i]];
		unsigned lo = hex_values[(uint8_t)hex[2 * i + 1]];

		if (hi == 0 || lo == 0)
			return -EINVAL;
		digest[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
	}
	return 0;
}

bool lcfs_digest_from_object_path(const char *path, uint8_t digest[LCFS_DIGEST_SIZE])
{
	char hex[2 * LCFS_DIGEST_SIZE];

	if (strlen(path) != 2 * LCFS_DIGEST_SIZE + 1 || path[2] != '/')
		return false;
	memcpy(hex, path, 2);
	memcpy(hex + 2, path + 3, 2 * LCFS_DIGEST_SIZE - 2);
	for (size_t i = 0; i < sizeof(hex); i++) {
		/* Lowercase only: an object's name is its digest in lowercase. */
		if (hex[i] >= 'A' && hex[i] <= 'F')
			return false;
	}
	return lcfs_digest_from_hex(hex, sizeof(hex), digest) == 0;
}

void lcfs_advise_huge(void *p, size_t size)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t end = ((uintptr_t)p + size) & ~(huge - 1);

	if (p != NULL && end > start)
		(void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
	(void)p;
	(void)size;
#endif
}

void lcfs_hint_huge(void *p, size_t size)
{
	if (size >= LCFS_HUGE_MIN)
		lcfs_advise_huge(p, size);
}

void *lcfs_calloc_big(size_t n, size_t elem)
{
	void *p = calloc(n, elem);

	if (p != NULL)
		lcfs_hint_huge(p, n * elem);
	return p;
}

void *lcfs_array_reserve(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : first;
	if (ncap <= n || ncap > SIZE_MAX / elem) {
		errno = ENOMEM;
		return NULL;
	}
	v = realloc(v, ncap * elem);
	if (v != NULL) {
		*cap = ncap;
		lcfs_hint_huge(v, ncap * elem);
	}
	return v;
}
