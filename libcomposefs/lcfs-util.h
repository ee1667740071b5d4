/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Small helpers shared by the library's modules and by the tools
 * (lcfs-util.c): cleanup attributes, the exact I/O loops, reading a whole
 * file, confined opens, the CPU count, hex digests and the byte-string
 * order. Depends on no other library module, so every module may use it.
 */
#ifndef _LCFS_UTIL_H
#define _LCFS_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "libcomposefs/lcfs-writer.h"

static inline void lcfs_freep(void *p)
{
	int saved = errno;
	free(*(void **)p);
	errno = saved;
}

static inline void lcfs_closep(int *fd)
{
	int saved = errno;
	if (*fd >= 0)
		close(*fd);
	errno = saved;
}

#define cleanup_free __attribute__((cleanup(lcfs_freep)))
#define cleanup_fd __attribute__((cleanup(lcfs_closep)))

static inline void *lcfs_steal_pointer(void *pp)
{
	void **p = (void **)pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define steal_pointer(pp) ((__typeof__(*(pp)))lcfs_steal_pointer(pp))

static inline int lcfs_steal_fd(int *fd)
{
	int v = *fd;
	*fd = -1;
	return v;
}

/* CPUs this process may run on (the default number of worker threads). */
unsigned lcfs_cpu_count(void);

/* Exactly @len bytes of @fd at offset @off (EINTR retried): 0, -ENODATA if
 * the file ends before, or -errno. */
int lcfs_pread_exact(int fd, void *buf, size_t len, uint64_t off);

/* All @len bytes to @fd at offset @off (EINTR retried): 0, -EIO if the
 * kernel writes nothing, or -errno. */
int lcfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* All @len bytes to @fd at its current offset (EINTR retried; for pipes
 * and terminals as well as files): 0, -EIO if the kernel writes nothing,
 * or -errno. */
int lcfs_write_all(int fd, const void *buf, size_t len);

/* Reads @fd from its current offset to its end into a malloc'd buffer:
 * *@out (followed by one NUL byte that *@len does not count, so that text
 * can be parsed in place) and *@len. 0, -EFBIG if there are more than
 * @max bytes (SIZE_MAX: no bound but memory), -ENOMEM, or the read errno
 * (EINTR retried). Nothing is returned on failure. */
int lcfs_read_all(int fd, size_t max, uint8_t **out, size_t *len);

/* Opens @path (relative, @flags as for openat()) below @dirfd the way
 * overlayfs looks a redirect up in a data-only layer: never leaving
 * @dirfd (through ".." or an absolute path) and following no symlink
 * anywhere on the way, with openat2() or, on kernels
 * without it, one O_NOFOLLOW component at a time (where ".." is refused).
 * An empty or absolute @path is -EXDEV. Returns the fd or -errno (EXDEV or
 * ELOOP for a path that would escape). */
int lcfs_open_confined(int dirfd, const char *path, int flags);

/* Value of a hex digit (either case), or -1. */
int lcfs_hex_value(char c);

/* Digest to lowercase hex (65 bytes with NUL) and back (-EINVAL unless
 * exactly 64 hex digits). */
void lcfs_digest_to_hex(const uint8_t digest[LCFS_DIGEST_SIZE], char hex[65]);
int lcfs_digest_from_hex(const char *hex, size_t len,
			 uint8_t digest[LCFS_DIGEST_SIZE]);

/* The digest named by an object path "xx/yyyy..." (the first two
 * lowercase hex digits, a slash, the other 62), the form of a by-digest
 * payload and of an object store's file names. False for anything else,
 * including uppercase digits. */
bool lcfs_digest_from_object_path(const char *path, uint8_t digest[LCFS_DIGEST_SIZE]);

/* The step of every buffered writer: copies into @buf, which holds *@used
 * of its @size bytes, as much of the *@len bytes at *@data as fits, and
 * moves *@data and *@len past them. Returns whether @buf is now full. */
static inline bool lcfs_buffer_append(uint8_t *buf, size_t size, size_t *used,
				      const uint8_t **data, size_t *len)
{
	size_t n = size - *used;

	if (n > *len)
		n = *len;
	memcpy(buf + *used, *data, n);
	*used += n;
	*data += n;
	*len -= n;
	return *used == size;
}

/* Room for one more element in the array @v of @elem-byte elements, @n of
 * them in use and *@cap allocated: when it is full, doubles it (the first
 * time to @first elements). Returns the array, moved or not, or NULL with
 * errno ENOMEM, leaving @v and *@cap as they were. */
void *lcfs_array_reserve(void *v, size_t n, size_t *cap, size_t elem, size_t first);

/* Tables from this size on are worth transparent huge pages. */
#define LCFS_HUGE_MIN ((size_t)4 << 20)

/*
 * Asks for transparent huge pages on the 2 MiB pages inside @p (@size bytes
 * from malloc()) when it is at least LCFS_HUGE_MIN bytes; a hint only. A
 * table of millions of entries read in random order (hash tables, per-
 * node arrays) otherwise costs a TLB miss per access, and one page fault
 * per 4 KiB on a virtual machine.
 */
void lcfs_hint_huge(void *p, size_t size);

/* Asks for transparent huge pages on the 2 MiB pages inside @p (@size
 * bytes), whatever the size; a hint only. */
void lcfs_advise_huge(void *p, size_t size);

/* calloc() with lcfs_hint_huge(). */
void *lcfs_calloc_big(size_t n, size_t elem);

/* Orders byte strings @a (@alen bytes) and @b (@blen bytes) as unsigned
 * bytes, a proper prefix first: the order of names in directories (node
 * tree, images, dumpfiles) and of xattr keys. <0, 0 or >0. */
static inline int lcfs_bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

#endif /* _LCFS_UTIL_H */
