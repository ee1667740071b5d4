/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-fuse: the view of an image that the kernel mount gives
 * (overlayfs on top of the EROFS image with the object directories as
 * data-only layers), precomputed from the library reader's node tree, and
 * the backing files ("objects") of external regular files.
 *
 * Functions return 0 or -errno. The only output is one line logged
 * (stderr, or syslog once daemonised), names escaped, the first time an
 * object fails to open and the first time a read of an open file fails
 * verification.
 */
#ifndef _COMPOSEFS_FUSE_VIEW_H
#define _COMPOSEFS_FUSE_VIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "lcfs-node.h"
#include "lcfs-verity-tree-internal.h"

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

/* The Merkle tree of a backing file as it was when it was checked, shared
 * by the handles that opened that file. */
struct cfs_tree {
	struct lcfs_verity_tree *tree; /* owned */
	/* Protected by cfs_view.lock: */
	unsigned refs;                 /* handles using it */
	uint32_t object;               /* index into cfs_view.objects */
	/* Kept after the last close while the memory allows, so that the
	 * next open of an unchanged file does not hash it again: */
	struct cfs_tree *idle_prev, *idle_next;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* A backing file, shared by every inode with the same path and digest, so
 * that it is verified once while it stays open. */
struct cfs_object {
	const char *path;      /* relative to a basedir (borrowed payload) */
	const uint8_t *digest; /* expected fs-verity digest, NULL if none */
	uint32_t inode;        /* first inode using it, for messages */
	/* Protected by cfs_view.lock: */
	bool reported;         /* a failure to open was logged already */
	struct cfs_tree *tree; /* tree of the file last checked, or NULL */
};

/* An open regular file: where its bytes come from and how they are
 * checked on the way. */
struct cfs_handle {
	uint32_t inode;
	uint32_t object;       /* CFS_NO_OBJECT: data held in the image */
	int fd;                /* backing file, or -1 */
	struct cfs_tree *tree; /* userspace checks of every block, or NULL:
				* none asked, or the kernel's fs-verity does it */
	bool reported;         /* a failed read was logged already */
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
	struct lcfs_verity_budget *budget; /* memory of the trees (borrowed) */
	struct cfs_tree *idle_first, *idle_last; /* unused trees, oldest first */
	bool acl;          /* list system.posix_acl_* xattrs */
	bool use_syslog;   /* log failures to syslog instead of stderr */
	/* -o remote: called when no basedir has a backing file, to put the
	 * file @path (@size bytes) into the first basedir; 0, or -errno with
	 * the reason in @why. NULL: a missing file is not looked for. */
	int (*fetch)(void *data, const char *path, uint64_t size, char *why,
		     size_t why_size);
	void *fetch_data;
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

/*
 * Opens regular file @i for reading. For an external file this finds its
 * backing file below the basedirs and, when v->verity is set, makes sure
 * that every byte later read from it matches the image's fs-verity digest:
 * through the kernel where the file has fs-verity with that digest, else
 * through a Merkle tree built now (and shared with other handles of the
 * same unchanged file). When no basedir has it and v->fetch is set, it is
 * fetched first. Returns 0 with *@out, or -errno: -ENOENT when no
 * basedir has it (-EIO under verity, or when the fetch fails), -EIO when its digest does not match,
 * as the kernel mount with verity=require would; failures are logged once.
 */
int cfs_view_open(struct cfs_view *v, uint32_t i, struct cfs_handle **out);

/* Whether reads of @h may be spliced from h->fd unchecked (no verity, or
 * the kernel checks it). */
bool cfs_handle_can_splice(const struct cfs_handle *h);

/* Reads up to @size bytes at @off. Returns the count (short only at the
 * end), or -EIO when a block fails verification (logged once per handle),
 * or -errno. */
ssize_t cfs_view_read(struct cfs_view *v, struct cfs_handle *h, void *buf,
		      size_t size, off_t off);

/* Closes @h (NULL is allowed). */
void cfs_view_close(struct cfs_view *v, struct cfs_handle *h);

/* Copy of @s for a log line: control bytes, DEL and backslash as \xHH,
 * so that a name from an image cannot forge or break a line. malloc'd,
 * NULL on ENOMEM. */
char *cfs_log_escape(const char *s);

/* Full path of inode @i in the image, malloc'd, or NULL. */
char *cfs_view_path(const struct cfs_view *v, uint32_t i);

#endif /* _COMPOSEFS_FUSE_VIEW_H */
