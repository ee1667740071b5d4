/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The directory scanner, part 1: loading one entry (docs/design.md,
 * "Directory scan"): lstat, symlink target, xattrs; the content of one
 * regular file (docs/design.md, "Content pass"); and the public
 * lcfs_load_node_from_file() and lcfs_node_set_from_content() (documented
 * in lcfs-writer.h). Knows nothing of the walk or the threads.
 */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "lcfs-store.h"
#include "lcfs-node.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-fsverity.h"
#include "lcfs-scanner.h"

/* ---- Loading one entry ------------------------------------------------------------ */

int lcfs_build_xattr_bufs_init(struct xattr_bufs *xb)
{
	xb->list_cap = 4096;
	xb->list = malloc(xb->list_cap);
	xb->value = malloc(XATTR_VALUE_MAX);
	if (xb->list == NULL || xb->value == NULL)
		return -ENOMEM;
	return 0;
}

void lcfs_build_xattr_bufs_release(struct xattr_bufs *xb)
{
	free(xb->list);
	free(xb->value);
}

static ssize_t list_xattrs(const char *path, int fd, bool follow, char *list,
			   size_t size)
{
	if (path == NULL)
		return flistxattr(fd, list, size);
	return follow ? listxattr(path, list, size) : llistxattr(path, list, size);
}

static ssize_t get_xattr(const char *path, int fd, bool follow, const char *name,
			 void *value, size_t size)
{
	if (path == NULL)
		return fgetxattr(fd, name, value, size);
	return follow ? getxattr(path, name, value, size) :
			lgetxattr(path, name, value, size);
}

/*
 * Copies the xattrs of @path, or of the open file @fd when @path is NULL,
 * onto @node: all of them, or only user.* ones (docs/design.md, "Directory
 * scan"). @path goes through /proc/self/fd, so that symlinks' own xattrs
 * are read; @follow selects whether its last component (a magic link to
 * an O_PATH descriptor) is followed. A failing listxattr() fails the
 * build, as in the reference.
 */
int lcfs_build_read_xattrs(struct lcfs_node_s *node, const char *path, int fd,
			   bool follow, int flags, struct xattr_bufs *xb)
{
	ssize_t len;

	for (;;) {
		len = list_xattrs(path, fd, follow, xb->list, xb->list_cap);
		if (len >= 0)
			break;
		if (errno != ERANGE)
			return -errno;
		len = list_xattrs(path, fd, follow, NULL, 0);
		if (len < 0)
			return -errno;
		free(xb->list);
		xb->list_cap = (size_t)len + 1024;
		xb->list = malloc(xb->list_cap);
		if (xb->list == NULL)
			return -ENOMEM;
	}

	for (ssize_t off = 0; off < len;) {
		const char *name = xb->list + off;
		size_t name_len = strnlen(name, (size_t)(len - off));
		ssize_t vlen;
		int r;

		off += (ssize_t)name_len + 1;
		if (name_len == 0)
			continue;
		if ((flags & LCFS_BUILD_USER_XATTRS) && strncmp(name, "user.", 5) != 0)
			continue;
		vlen = get_xattr(path, fd, follow, name, xb->value, XATTR_VALUE_MAX);
		if (vlen < 0)
			return errno == ERANGE ? -EINVAL : -errno;
		r = lcfs_node_set_xattr_n(node, name, name_len, xb->value, (size_t)vlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A node with the attributes of @st (docs/design.md, "Directory scan").
 * NLINK stays 1: the scan never copies st_nlink. */
struct lcfs_node_s *lcfs_build_node_from_stat(const struct stat *st, int flags)
{
	struct lcfs_node_s *node = lcfs_node_new();

	if (node == NULL)
		return NULL;
	node->mode = st->st_mode;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	/* 32 bits (docs/image-format.md, "The node model") */
	node->rdev = (uint32_t)st->st_rdev;
	node->size = (uint64_t)st->st_size;
	if (!(flags & LCFS_BUILD_USE_EPOCH)) {
		node->mtime_sec = st->st_mtim.tv_sec;
		node->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	}
	return node;
}

static int read_symlink(struct lcfs_node_s *node, int dirfd, const char *name)
{
	char target[LCFS_MAX_PAYLOAD + 2];
	ssize_t len = readlinkat(dirfd, name, target, sizeof(target));
	char *copy;

	if (len < 0)
		return -errno;
	/* Targets of 4096 bytes or more cannot be stored (docs/design.md,
	 * "Directory scan"). */
	if (len > LCFS_MAX_PAYLOAD)
		return -ENAMETOOLONG;
	if (len == 0)
		return -EINVAL;
	copy = strndup(target, (size_t)len);
	if (copy == NULL)
		return -ENOMEM;
	lcfs_node_take_payload(node, copy);
	node->size = (uint64_t)len;
	return 0;
}

/* Xattrs of entry @name of @dirfd (not following it) onto @node. A
 * directory entry (@entry) is read through "/proc/self/fd/DIRFD/NAME"
 * without following the last component, which names the same inode as
 * the reference's O_PATH descriptor, with one open() less per entry; any
 * other path like the reference, through an O_PATH descriptor. */
static int entry_xattrs(struct lcfs_node_s *node, int dirfd, const char *name,
			bool entry, int flags, struct xattr_bufs *xb)
{
	char path[64 + NAME_MAX];
	int fd, r;

	if (entry) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
		return lcfs_build_read_xattrs(node, path, -1, false, flags, xb);
	}
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = lcfs_build_read_xattrs(node, path, -1, true, flags, xb);
	close(fd);
	return r;
}

/* lcfs_build_load_entry() and lcfs_build_load_path(). */
static int load_node(int dirfd, const char *name, bool entry, int flags,
		     struct xattr_bufs *xb, struct stat *st, struct lcfs_node_s **out)
{
	struct lcfs_node_s *node;
	int r = 0;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	node = lcfs_build_node_from_stat(st, flags);
	if (node == NULL)
		return -ENOMEM;
	if (S_ISLNK(st->st_mode))
		r = read_symlink(node, dirfd, name);
	if (r == 0 && !(flags & LCFS_BUILD_SKIP_XATTRS))
		r = entry_xattrs(node, dirfd, name, entry, flags, xb);
	if (r < 0) {
		lcfs_node_unref(node);
		return r;
	}
	*out = node;
	return 0;
}

int lcfs_build_load_entry(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			  struct stat *st, struct lcfs_node_s **out)
{
	return load_node(dirfd, name, true, flags, xb, st, out);
}

/* Opening a regular file costs the scan one system call, and saves it two
 * (the lstat() by name, and the fstat() the content pass makes after its
 * own open()) and two path walks (its listxattr() through /proc, and the
 * content pass's open() of the whole relative path). What is opened is
 * checked as the content pass checks it: O_NONBLOCK so that a FIFO put
 * there meanwhile does not block, O_NOFOLLOW, then a regular file or
 * nothing. */
int lcfs_build_open_entry(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			  struct stat *st, struct lcfs_node_s **out, int *fdp)
{
	struct lcfs_node_s *node;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		errno = 0; /* not a shortage of descriptors */
		return 1;
	}
	node = lcfs_build_node_from_stat(st, flags);
	if (node == NULL)
		r = -ENOMEM;
	else if (!(flags & LCFS_BUILD_SKIP_XATTRS))
		r = lcfs_build_read_xattrs(node, NULL, fd, false, flags, xb);
	if (r < 0) {
		lcfs_node_unref(node);
		close(fd);
		return r;
	}
	*out = node;
	*fdp = fd;
	return 0;
}

int lcfs_build_load_path(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			 struct stat *st, struct lcfs_node_s **out)
{
	return load_node(dirfd, name, false, flags, xb, st, out);
}

/* ---- Content of one regular file ------------------------------------------------ */


/*
 * The content pass (docs/design.md, "Content pass"), and the object store
 * (docs/design.md, "Object store") when @store is non-NULL, for the node
 * of the regular file open as @fd, using the node's size: files of 1..64
 * bytes become inline content unless NO_INLINE; the digest is computed
 * with COMPUTE_DIGEST or BY_DIGEST; BY_DIGEST sets the payload "xx/yyy..."
 * and, without COMPUTE_DIGEST, leaves the digest unset. Only the first
 * @size bytes are used, so a file that grew since the scan still matches
 * its recorded size; one that shrank fails with ENODATA. *@stage says
 * which step failed. CONTENT_STORE_DIFFERS: the store found that the
 * file no longer has the content its digest was computed from (nothing
 * was stored).
 */
static int content_from_fd(struct lcfs_node_s *node, int fd, int flags,
			   struct lcfs_store *store, struct lcfs_fsverity_file_hasher *h,
			   enum build_stage *stage)
{
	bool want_digest = flags & (LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST);
	uint8_t digest[LCFS_DIGEST_SIZE];
	uint64_t size = node->size;
	int r;

	*stage = STAGE_READ;
	if (size == 0)
		return 0;
	if (lcfs_content_is_inline(size, flags)) {
		uint8_t *data = malloc((size_t)size);

		if (data == NULL)
			return -ENOMEM;
		r = lcfs_pread_exact(fd, data, (size_t)size, 0);
		if (r == 0 && want_digest &&
		    lcfs_compute_fsverity_from_data(digest, data, (size_t)size) < 0)
			r = -errno;
		if (r < 0) {
			free(data);
			return r;
		}
		/* Not lcfs_node_take_content(): the size is right already,
		 * and the scan thread may be reading it. */
		free(node->content);
		node->content = data;
	} else if (store != NULL && lcfs_store_copy_first(store)) {
		/* Mostly new objects: copy, then hash the copy. */
		*stage = STAGE_STORE;
		r = lcfs_store_put_copy(store, fd, size, digest);
		if (r != 0)
			return r > 0 ? CONTENT_STORE_DIFFERS : r;
	} else if (want_digest) {
		r = h != NULL ? lcfs_fsverity_file_hasher_digest(h, fd, size, digest) :
				lcfs_fsverity_digest_fd_fast(fd, size, digest);
		if (r < 0)
			return r;
		if (store != NULL) {
			*stage = STAGE_STORE;
			r = lcfs_store_put(store, fd, size, digest);
			if (r != 0)
				return r > 0 ? CONTENT_STORE_DIFFERS : r;
		}
	}
	if (!want_digest)
		return 0;
	return lcfs_node_set_digest_result(node, digest, flags);
}

int lcfs_node_set_digest_result(struct lcfs_node_s *node,
				const uint8_t digest[LCFS_DIGEST_SIZE], int flags)
{
	if (flags & LCFS_BUILD_BY_DIGEST) {
		char *payload = malloc(LCFS_STORE_PATH_SIZE);

		if (payload == NULL)
			return -ENOMEM;
		lcfs_store_object_path(digest, payload);
		lcfs_node_take_payload(node, payload);
	}
	if (flags & LCFS_BUILD_COMPUTE_DIGEST)
		lcfs_node_set_fsverity_digest(node, (uint8_t *)digest);
	else
		node->digest_set = false;
	return 0;
}

/* Whether the file changed between the two fstat() results: a writer
 * changes the mtime (unless it sets it back) and always the ctime. */
static bool stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec ||
	       a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
	       a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

/*
 * content_from_fd() for the file @fd, whose fstat() before reading is
 * @before. CONTENT_CHANGED if the file changed while it was read (its
 * size, mtime or ctime differ afterwards): the digest or inline content
 * is then from no definite version of the file, while anything stored is
 * still named by its own content.
 */
int lcfs_build_content_once(struct lcfs_node_s *node, int fd, const struct stat *before,
			    int flags, struct lcfs_store *store,
			    struct lcfs_fsverity_file_hasher *h, enum build_stage *stage)
{
	struct stat after;
	int r = content_from_fd(node, fd, flags, store, h, stage);

	if (r != 0)
		return r;
	if (fstat(fd, &after) < 0)
		return -errno;
	return stat_changed(before, &after) ? CONTENT_CHANGED : 0;
}

/* ---- Public entry points ------------------------------------------------------------ */

bool lcfs_build_flags_valid(int flags)
{
	if (flags & ~BUILD_FLAGS_ALL)
		return false;
	return (flags & (LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS)) !=
	       (LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS);
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_file(int dirfd, const char *fname,
							 int buildflags)
{
	struct xattr_bufs xb = { 0 };
	struct lcfs_node_s *node = NULL;
	struct stat st;
	int r;

	if (!lcfs_build_flags_valid(buildflags)) {
		errno = EINVAL;
		return NULL;
	}
	r = lcfs_build_xattr_bufs_init(&xb);
	if (r == 0)
		r = lcfs_build_load_path(dirfd, fname, buildflags, &xb, &st, &node);
	lcfs_build_xattr_bufs_release(&xb);
	if (r == 0 && S_ISREG(st.st_mode) &&
	    lcfs_node_set_from_content(node, dirfd, fname, buildflags) < 0) {
		r = -errno;
		lcfs_node_unref(node);
	}
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return node;
}

LCFS_PUBLIC int lcfs_node_set_from_content(struct lcfs_node_s *node, int dirfd,
					   const char *fname, int buildflags)
{
	enum build_stage stage;
	int fd, r;

	if (node == NULL || fname == NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	r = content_from_fd(node, fd, buildflags, NULL, NULL, &stage);
	close(fd);
	return lcfs_public_ret(r);
}
