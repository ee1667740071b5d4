/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-fuse: the view of an image that the kernel mount gives
 * (overlayfs on top of the EROFS image with the object directories as
 * data-only layers), precomputed from the library reader's node tree, and
 * the backing files ("objects") of external regular files.
 *
 * Functions return 0 or -errno. The only output is the one line logged
 * (stderr, or syslog once daemonised) the first time an object fails.
 */
#ifndef _COMPOSEFS_FUSE_VIEW_H
#define _COMPOSEFS_FUSE_VIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "lcfs-internal.h"

#define CFS_NO_OBJECT UINT32_MAX

/* One xattr as the kernel mount lists it (borrowed from the node tree, or
 * a static string for the markers the view adds back). */
struct cfs_xattr {
	const char *name;
	const char *value;
	uint32_t name_len;
	uint32_t value_len;
};

struct cfs_dirent {
	const char *name; /* borrowed, not NUL-terminated */
	uint32_t name_len;
	uint32_t inode;   /* index into cfs_view.inodes */
};

struct cfs_inode {
	struct lcfs_node_s *node; /* the real node (borrowed) */
	uint32_t mode;            /* as the kernel shows it */
	uint32_t parent;          /* index of the directory that holds it */
	uint64_t size;
	uint32_t first_xattr, n_xattrs;   /* slice of cfs_view.xattrs */
	uint32_t first_child, n_children; /* slice of cfs_view.dirents */
	uint32_t object;          /* index into cfs_view.objects */
	int lookup_err;           /* errno the kernel gives on lookup, or 0 */
};

/* A backing file, shared by every inode with the same path and digest, so
 * that it is verified once. */
struct cfs_object {
	const char *path;      /* relative to a basedir (borrowed payload) */
	const uint8_t *digest; /* expected fs-verity digest, NULL if none */
	uint32_t inode;        /* first inode using it, for messages */
	/* Protected by cfs_view.lock: */
	bool verified;  /* the file identified below has the right digest */
	bool reported;  /* a failure was logged already */
	dev_t dev;
	ino_t ino;
	off_t st_size;
	struct timespec mtime, ctime;
};

struct cfs_view {
	struct lcfs_node_s *root; /* owned */
	struct cfs_inode *inodes; /* [0] is the root */
	uint32_t n_inodes;
	struct cfs_dirent *dirents;
	uint32_t n_dirents;
	struct cfs_xattr *xattrs;
	uint32_t n_xattrs;
	struct cfs_object *objects;
	uint32_t n_objects;

	const int *basedirs; /* borrowed O_PATH directory fds */
	size_t n_basedirs;
	bool verity;       /* check every object's fs-verity digest */
	bool acl;          /* list system.posix_acl_* xattrs */
	bool use_syslog;   /* log failures to syslog instead of stderr */
	pthread_mutex_t lock;
};

/* Builds the view of @root, taking ownership of it (also on failure). */
int cfs_view_init(struct cfs_view *v, struct lcfs_node_s *root, bool acl);
void cfs_view_release(struct cfs_view *v);

/* Whether an xattr name has a prefix EROFS knows (docs/image-format.md,
 * "Name prefixes"): the kernel mount refuses the others with EOPNOTSUPP. */
bool cfs_xattr_name_known(const char *name, size_t len);

/* Fills @st for inode @i (index). */
void cfs_view_stat(const struct cfs_view *v, uint32_t i, struct stat *st);

/* Child of directory @dir named @name, as an inode index, or -ENOENT. */
int64_t cfs_view_lookup(const struct cfs_view *v, uint32_t dir, const char *name,
			size_t name_len);

/* Opens the backing file of external inode @i read-only, checking its
 * fs-verity digest when v->verity is set. Returns the fd or -errno:
 * -ENOENT when no basedir has it (or -EIO under verity), -EIO when its
 * digest does not match, as the kernel mount with verity=require would. */
int cfs_view_open_object(struct cfs_view *v, uint32_t i);

/* Full path of inode @i in the image, malloc'd, or NULL. */
char *cfs_view_path(const struct cfs_view *v, uint32_t i);

#endif /* _COMPOSEFS_FUSE_VIEW_H */
