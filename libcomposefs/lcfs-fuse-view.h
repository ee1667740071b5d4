/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The FUSE view (private to the library and composefs-fuse, not
 * installed): the view of an image that the kernel mount gives (overlayfs
 * on top of the EROFS image with the object directories as data-only
 * layers), precomputed from the library reader's node tree, and the
 * backing files ("objects") of external regular files. composefs-fuse
 * answers FUSE requests from it.
 *
 * Functions return 0 or -errno. Nothing is printed: one line, names
 * escaped, goes to the log callback the first time an object fails to
 * open and the first time a read of an open file fails verification.
 */
#ifndef _LCFS_FUSE_VIEW_H
#define _LCFS_FUSE_VIEW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "lcfs-verity-tree-internal.h"

struct lcfs_node_s;

#define LCFS_VIEW_NO_OBJECT UINT32_MAX

/* One xattr as the kernel mount lists it (borrowed from the node tree, or
 * a static string for the markers the view adds back). */
struct lcfs_view_xattr {
	const char *name;
	const char *value;
	uint32_t name_len;
	uint32_t value_len;
};

struct lcfs_view_dirent {
	const char *name; /* borrowed, not NUL-terminated */
	uint32_t name_len;
	uint32_t inode;   /* index into lcfs_view.inodes */
};

struct lcfs_view_inode {
	struct lcfs_node_s *node; /* the real node (borrowed) */
	uint32_t mode;            /* as the kernel shows it */
	uint32_t parent;          /* index of the directory that holds it */
	uint64_t size;
	uint32_t first_xattr, n_xattrs;   /* slice of lcfs_view.xattrs */
	uint32_t first_child, n_children; /* slice of lcfs_view.dirents */
	uint32_t object;          /* index into lcfs_view.objects */
	int lookup_err;           /* errno the kernel gives on lookup, or 0 */
};

/* The Merkle tree of a backing file as it was when it was checked, shared
 * by the handles that opened that file. */
struct lcfs_view_tree {
	struct lcfs_verity_tree *tree; /* owned */
	/* Protected by lcfs_view.lock: */
	unsigned refs;                 /* handles using it */
	uint32_t object;               /* index into lcfs_view.objects */
	/* Kept after the last close while the memory allows, so that the
	 * next open of an unchanged file does not hash it again: */
	struct lcfs_view_tree *idle_prev, *idle_next;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* A backing file, shared by every inode with the same path and digest, so
 * that it is verified once while it stays open. */
struct lcfs_view_object {
	const char *path;      /* relative to a basedir (borrowed payload) */
	const uint8_t *digest; /* expected fs-verity digest, NULL if none */
	uint32_t inode;        /* first inode using it, for messages */
	/* Protected by lcfs_view.lock: */
	bool reported;         /* a failure to open was logged already */
	struct lcfs_view_tree *tree; /* tree of the file last checked, or NULL */
};

/* An open regular file: where its bytes come from and how they are
 * checked on the way. */
struct lcfs_view_handle {
	uint32_t inode;
	uint32_t object;       /* LCFS_VIEW_NO_OBJECT: data held in the image */
	int fd;                /* backing file, or -1 */
	struct lcfs_view_tree *tree; /* userspace checks of every block, or NULL:
				* none asked, or the kernel's fs-verity does it */
	bool reported;         /* a failed read was logged already */
};

struct lcfs_view {
	struct lcfs_node_s *root; /* owned */
	struct lcfs_view_inode *inodes; /* [0] is the root */
	uint32_t n_inodes;
	struct lcfs_view_dirent *dirents;
	uint32_t n_dirents;
	struct lcfs_view_xattr *xattrs;
	uint32_t n_xattrs;
	struct lcfs_view_object *objects;
	uint32_t n_objects;

	const int *basedirs; /* borrowed O_PATH directory fds */
	size_t n_basedirs;
	bool verity;       /* check every object's fs-verity digest */
	struct lcfs_verity_budget *budget; /* memory of the trees (borrowed) */
	struct lcfs_view_tree *idle_first, *idle_last; /* unused trees, oldest first */
	bool acl;          /* list system.posix_acl_* xattrs */
	/* Receives each log line (one line, no newline, names from the image
	 * escaped); NULL: nothing is logged. */
	void (*log)(void *data, const char *line);
	void *log_data;
	/* -o remote: called when no basedir has a backing file, to put the
	 * file @path (@size bytes) into the first basedir; 0, or -errno with
	 * the reason in @why. NULL: a missing file is not looked for. */
	int (*fetch)(void *data, const char *path, uint64_t size, char *why,
		     size_t why_size);
	void *fetch_data;
	pthread_mutex_t lock;
};

/* Builds the view of @root, taking ownership of it (also on failure). */
int lcfs_view_init(struct lcfs_view *v, struct lcfs_node_s *root, bool acl);
void lcfs_view_release(struct lcfs_view *v);

/* Fills @st for inode @i (index). */
void lcfs_view_stat(const struct lcfs_view *v, uint32_t i, struct stat *st);

/* Child of directory @dir named @name, as an inode index, or -ENOENT. */
int64_t lcfs_view_lookup(const struct lcfs_view *v, uint32_t dir, const char *name,
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
int lcfs_view_open(struct lcfs_view *v, uint32_t i, struct lcfs_view_handle **out);

/* Target of symlink @i, or NULL when @i is not a symlink. */
const char *lcfs_view_readlink(const struct lcfs_view *v, uint32_t i);

/* Xattr @name of inode @i as the kernel mount gives it: 0 with *@out,
 * -EOPNOTSUPP for a name the mount cannot read, -ENODATA when absent. */
int lcfs_view_getxattr(const struct lcfs_view *v, uint32_t i, const char *name,
		       const struct lcfs_view_xattr **out);

/* The xattr names of inode @i, each NUL-terminated, into @buf of @size
 * bytes; trusted.* ones only with @trusted (EROFS lists them only to
 * CAP_SYS_ADMIN). Returns the length of the list (@size 0: the length
 * needed, nothing written), or -ERANGE when @size is too small. */
ssize_t lcfs_view_listxattr(const struct lcfs_view *v, uint32_t i, bool trusted,
			    char *buf, size_t size);

/* lseek() on @h: for a backing file, that file's answer; for data held
 * in the image, SEEK_DATA/SEEK_HOLE as on a file without holes. The
 * offset or -errno. */
off_t lcfs_view_lseek(const struct lcfs_view *v, const struct lcfs_view_handle *h,
		      off_t off, int whence);

/* Whether reads of @h may be spliced from h->fd unchecked (no verity, or
 * the kernel checks it). */
bool lcfs_view_can_splice(const struct lcfs_view_handle *h);

/* Reads up to @size bytes at @off. Returns the count (short only at the
 * end), or -EIO when a block fails verification (logged once per handle),
 * or -errno. */
ssize_t lcfs_view_read(struct lcfs_view *v, struct lcfs_view_handle *h, void *buf,
		      size_t size, off_t off);

/* Closes @h (NULL is allowed). */
void lcfs_view_close(struct lcfs_view *v, struct lcfs_view_handle *h);

/* Copy of @s for a log line: control bytes, DEL and backslash as \xHH,
 * so that a name from an image cannot forge or break a line. malloc'd,
 * NULL on ENOMEM. */
char *lcfs_log_escape(const char *s);

/* Full path of inode @i in the image, malloc'd, or NULL. */
char *lcfs_view_path(const struct lcfs_view *v, uint32_t i);

#endif /* _LCFS_FUSE_VIEW_H */
