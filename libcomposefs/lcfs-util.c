/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Small helpers shared by the library and the tools.
 */
#include "lcfs-compat.h"
#include "lcfs-util.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>

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
