/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * libcomposefs: build, write and read composefs images.
 *
 * Conventions for every function below, unless stated otherwise:
 *  - functions returning int give 0 on success, or -1 with errno set;
 *  - functions returning a pointer give NULL with errno set on failure;
 *  - strings and buffers passed in are copied ("copied"); pointers returned
 *    by getters are owned by the node ("borrowed") and stay valid until the
 *    node is changed or freed;
 *  - nodes returned by getters are borrowed (no reference is added).
 *
 * A node is reference counted. lcfs_node_new() returns a node holding one
 * reference, which the caller owns. lcfs_node_add_child() takes over the
 * caller's reference to the child on success.
 */
#ifndef _LCFS_WRITER_H
#define _LCFS_WRITER_H

#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include <errno.h>

#ifndef LCFS_EXTERN
#define LCFS_EXTERN extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Size in bytes of a SHA-256 fs-verity digest. */
#define LCFS_DIGEST_SIZE 32

/* Flags for lcfs_build(), lcfs_load_node_from_file() and
 * lcfs_node_set_from_content(). */
enum {
	LCFS_BUILD_SKIP_XATTRS = (1 << 0),  /* read no xattrs */
	LCFS_BUILD_USE_EPOCH = (1 << 1),    /* set every mtime to 0.0 */
	LCFS_BUILD_SKIP_DEVICES = (1 << 2), /* leave out char and block devices */
	LCFS_BUILD_COMPUTE_DIGEST = (1 << 3), /* compute fs-verity digests */
	LCFS_BUILD_NO_INLINE = (1 << 4),    /* never inline small files */
	LCFS_BUILD_USER_XATTRS = (1 << 5),  /* read only user.* xattrs */
	LCFS_BUILD_BY_DIGEST = (1 << 6),    /* payload = digest path xx/yyyy... */
};

/* Image formats for lcfs_write_options_s.format. */
enum lcfs_format_t {
	LCFS_FORMAT_EROFS = 0,
};

/* Flags for lcfs_write_options_s.flags: none are defined yet. */
enum lcfs_flags_t {
	LCFS_FLAGS_NONE = 0,
	LCFS_FLAGS_MASK = 0,
};

/* Highest image format version this library writes, and the defaults. */
#define LCFS_VERSION_MAX 1
#define LCFS_DEFAULT_VERSION_MIN 0
#define LCFS_DEFAULT_VERSION_MAX 1

/* Per-inode xattr budget: each xattr costs LCFS_INODE_XATTRMETA_SIZE plus
 * 3 + key length + value length bytes, the first one 12 more, and the total
 * must stay at most LCFS_INODE_EXTERNAL_XATTR_MAX. */
#define LCFS_INODE_XATTRMETA_SIZE 4
#define LCFS_INODE_EXTERNAL_XATTR_MAX 32767

/* Largest inline content a node may carry, and the size up to which
 * lcfs_build() inlines files. */
#define LCFS_INLINE_CONTENT_MAX 5000
#define LCFS_RECOMMENDED_INLINE_CONTENT_MAX 64

/* errno values reported by the fs-verity and mount functions. */
#ifndef ENOVERITY
#define ENOVERITY ENOTTY
#endif
#ifndef EWRONGVERITY
#define EWRONGVERITY EILSEQ
#endif
#ifndef ENOSIGNATURE
#define ENOSIGNATURE EBADMSG
#endif

/* Opaque node type. */
struct lcfs_node_s;

/*
 * Write callback: write up to @count bytes of @buf to @file. Returns the
 * number of bytes written (> 0), or 0 / a negative value on error (errno may
 * be set; otherwise EIO is reported). Short writes are retried.
 */
typedef ssize_t (*lcfs_write_cb)(void *file, void *buf, size_t count);

/*
 * Read callback: read up to @count bytes into @buf from @file. Returns the
 * number of bytes read, 0 at the end of the data, or a negative value on
 * error.
 */
typedef ssize_t (*lcfs_read_cb)(void *file, void *buf, size_t count);

struct lcfs_write_options_s {
	uint32_t format;      /* LCFS_FORMAT_EROFS */
	uint32_t version;     /* lowest format version to write (0 or 1) */
	uint32_t flags;       /* LCFS_FLAGS_NONE */
	uint8_t *digest_out;  /* if non-NULL, receives the image's fs-verity
			       * digest (LCFS_DIGEST_SIZE bytes, borrowed) */
	void *file;           /* passed to file_write_cb (borrowed) */
	lcfs_write_cb file_write_cb; /* NULL: write nothing, only digest */
	uint32_t max_version; /* highest format version allowed */
	uint32_t reserved[3];
	void *reserved2[4];
};

struct lcfs_read_options_s {
	/* NULL-terminated list of names; when non-NULL, only the root's
	 * children with one of these names are loaded (borrowed). */
	const char *const *toplevel_entries;
	uint32_t reserved[3];
	void *reserved2[4];
};

/* ---- Node lifetime and tree ---------------------------------------- */

/* New node: one reference, nlink 1, mode 0 (invalid until set), all other
 * attributes zero. NULL/ENOMEM. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_new(void);

/* Adds a reference to @node and returns it. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_ref(struct lcfs_node_s *node);

/* Drops a reference. At zero the node is freed: its children are detached
 * (their names and parent cleared), their own children are stripped
 * recursively, and their references dropped. Must not drop the last
 * reference of a node that still has a parent. NULL is ignored. */
LCFS_EXTERN void lcfs_node_unref(struct lcfs_node_s *node);

/* New node (one reference) with a copy of @node's attributes, payload,
 * content, digest, xattrs and hard link target (a new reference to it);
 * not its name, parent or children. NULL/ENOMEM. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_clone(struct lcfs_node_s *node);

/* Recursive copy of the subtree rooted at @node (one reference to the new
 * root). Hard links to nodes inside the subtree point at the copies.
 * NULL/ENOMEM. Changes nothing in the subtree but reference counts: see
 * lcfs_write_to() on threads. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_clone_deep(struct lcfs_node_s *node);

/* Adds @child to directory @parent under @name (copied). On success the
 * parent takes over the caller's reference to @child. Errors: ENOTDIR
 * (@parent is not a directory), EINVAL (empty name), ENAMETOOLONG (name
 * longer than 255 bytes), EMLINK (@child already has a parent), EEXIST
 * (name taken), ENOMEM. On failure the caller still owns @child. */
LCFS_EXTERN int lcfs_node_add_child(struct lcfs_node_s *parent,
				    struct lcfs_node_s *child, const char *name);

/* Child of @node named @name (borrowed), or NULL (errno untouched). */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_lookup_child(struct lcfs_node_s *node,
						       const char *name);

/* Parent (borrowed), NULL for a root or detached node. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_get_parent(struct lcfs_node_s *node);

/* Name (borrowed), NULL for a root or detached node. */
LCFS_EXTERN const char *lcfs_node_get_name(struct lcfs_node_s *node);

/* Number of children. */
LCFS_EXTERN size_t lcfs_node_get_n_children(struct lcfs_node_s *node);

/* The i-th child in byte-wise name order (borrowed), NULL if out of range. */
LCFS_EXTERN struct lcfs_node_s *lcfs_node_get_child(struct lcfs_node_s *node,
						    size_t i);

/* Makes @node a hard link to @target: @node takes a reference to @target,
 * and @target's nlink is incremented. @node's own attributes are then not
 * written. Linking a node to itself is ignored. */
LCFS_EXTERN void lcfs_node_make_hardlink(struct lcfs_node_s *node,
					 struct lcfs_node_s *target);

/* Hard link target (borrowed), or NULL if @node is not a hard link. */
LCFS_EXTERN struct lcfs_node_s *
lcfs_node_get_hardlink_target(struct lcfs_node_s *node);

/* True if @node's mode is a directory. */
LCFS_EXTERN bool lcfs_node_dirp(struct lcfs_node_s *node);

/* ---- Attributes ------------------------------------------------------ */

/* Raw 32-bit st_mode; only the low 16 bits are written to an image. */
LCFS_EXTERN uint32_t lcfs_node_get_mode(struct lcfs_node_s *node);
/* Sets the mode without validating it. */
LCFS_EXTERN void lcfs_node_set_mode(struct lcfs_node_s *node, uint32_t mode);
/* Sets the mode; EINVAL unless the file type is one of the seven valid
 * types (regular, directory, symlink, char, block, fifo, socket). */
LCFS_EXTERN int lcfs_node_try_set_mode(struct lcfs_node_s *node, uint32_t mode);

LCFS_EXTERN uint32_t lcfs_node_get_uid(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_uid(struct lcfs_node_s *node, uint32_t uid);
LCFS_EXTERN uint32_t lcfs_node_get_gid(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_gid(struct lcfs_node_s *node, uint32_t gid);

/* Device number. Stored as 32 bits: a wider value is truncated. The
 * 32-bit variants are deprecated. */
LCFS_EXTERN uint32_t lcfs_node_get_rdev(struct lcfs_node_s *node)
	__attribute__((deprecated("use lcfs_node_get_rdev64")));
LCFS_EXTERN void lcfs_node_set_rdev(struct lcfs_node_s *node, uint32_t rdev)
	__attribute__((deprecated("use lcfs_node_set_rdev64")));
LCFS_EXTERN uint64_t lcfs_node_get_rdev64(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_rdev64(struct lcfs_node_s *node, uint64_t rdev);

/* Link count. Directories get 2 + subdirectories when written. */
LCFS_EXTERN uint32_t lcfs_node_get_nlink(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_nlink(struct lcfs_node_s *node, uint32_t nlink);

/* File size. Setting a different size discards inline content. */
LCFS_EXTERN uint64_t lcfs_node_get_size(struct lcfs_node_s *node);
LCFS_EXTERN void lcfs_node_set_size(struct lcfs_node_s *node, uint64_t size);

/* Modification time (seconds signed 64-bit, nanoseconds 32-bit). @time is
 * copied. */
LCFS_EXTERN void lcfs_node_set_mtime(struct lcfs_node_s *node,
				     struct timespec *time);
LCFS_EXTERN void lcfs_node_get_mtime(struct lcfs_node_s *node,
				     struct timespec *time);

/* Payload: a symlink's target or an external file's backing path
 * (borrowed), NULL if unset. */
LCFS_EXTERN const char *lcfs_node_get_payload(struct lcfs_node_s *node);
/* Sets (copies) the payload; NULL clears it. ENAMETOOLONG if 4096 bytes or
 * longer, ENOMEM. */
LCFS_EXTERN int lcfs_node_set_payload(struct lcfs_node_s *node,
				      const char *payload);
/* Sets (copies) a symlink target and size = its length. EINVAL if @node is
 * not a symlink or @payload is NULL or empty; ENAMETOOLONG if 4096 bytes or
 * longer; ENOMEM. */
LCFS_EXTERN int lcfs_node_set_symlink_payload(struct lcfs_node_s *node,
					      const char *payload);

/* Inline content (borrowed, lcfs_node_get_size() bytes), NULL if none. */
LCFS_EXTERN const uint8_t *lcfs_node_get_content(struct lcfs_node_s *node);
/* Sets (copies) inline content and size = @len. NULL or @len 0 clears it.
 * EINVAL if @len > LCFS_INLINE_CONTENT_MAX; ENOMEM. */
LCFS_EXTERN int lcfs_node_set_content(struct lcfs_node_s *node,
				      const uint8_t *data, size_t len);

/* fs-verity digest (borrowed, LCFS_DIGEST_SIZE bytes), NULL if unset. */
LCFS_EXTERN const uint8_t *lcfs_node_get_fsverity_digest(struct lcfs_node_s *node);
/* Sets (copies) the digest. */
LCFS_EXTERN void lcfs_node_set_fsverity_digest(struct lcfs_node_s *node,
					       uint8_t digest[LCFS_DIGEST_SIZE]);
/* Computes the digest of the data @read_cb yields until it returns 0.
 * ENODATA on a read error, ENOMEM. */
LCFS_EXTERN int lcfs_node_set_fsverity_from_content(struct lcfs_node_s *node,
						    void *file,
						    lcfs_read_cb read_cb);
/* Computes the digest of @fd from its current offset to its end. ENODATA on
 * a read error, ENOMEM. */
LCFS_EXTERN int lcfs_node_set_fsverity_from_fd(struct lcfs_node_s *node, int fd);
/* Fills a regular file node from file @name relative to @dirfd, using the
 * node's current size: computes its digest if size > 0 and @flags has
 * LCFS_BUILD_COMPUTE_DIGEST or LCFS_BUILD_BY_DIGEST (BY_DIGEST also sets the
 * payload "xx/yyyy..."; without COMPUTE_DIGEST the digest is then unset
 * again), and unless LCFS_BUILD_NO_INLINE reads files of 1 to
 * LCFS_RECOMMENDED_INLINE_CONTENT_MAX bytes into inline content (ENODATA if
 * the file is shorter than the size). EINVAL for a NULL node; open/read
 * errno otherwise. */
LCFS_EXTERN int lcfs_node_set_from_content(struct lcfs_node_s *node, int dirfd,
					   const char *fname, int buildflags);

/* ---- Extended attributes --------------------------------------------- */

/* Value (borrowed, not NUL-terminated) and its length in *@length, or NULL
 * if absent (errno untouched). */
LCFS_EXTERN const char *lcfs_node_get_xattr(struct lcfs_node_s *node,
					    const char *name, size_t *length);
/* Sets (copies) xattr @name to @value of @value_len bytes, replacing an
 * existing value (the entry then moves to the end of the list). ERANGE for
 * an empty name, a name over 255 bytes or a per-inode budget over
 * LCFS_INODE_EXTERNAL_XATTR_MAX; EINVAL for a value over 65535 bytes;
 * ENOMEM. */
LCFS_EXTERN int lcfs_node_set_xattr(struct lcfs_node_s *node, const char *name,
				    const char *value, size_t value_len);
/* Removes xattr @name; the last entry moves into its place. ENODATA if
 * absent. */
LCFS_EXTERN int lcfs_node_unset_xattr(struct lcfs_node_s *node, const char *name);
/* Number of xattrs. */
LCFS_EXTERN size_t lcfs_node_get_n_xattr(struct lcfs_node_s *node);
/* Name of the i-th xattr in the current order (borrowed), NULL past the
 * end. */
LCFS_EXTERN const char *lcfs_node_get_xattr_name(struct lcfs_node_s *node,
						 size_t index);

/* ---- Loading and building -------------------------------------------- */

/* One node (no children) from fstatat(@dirfd, @fname, AT_SYMLINK_NOFOLLOW),
 * with symlink target, xattrs and content per @buildflags. EINVAL for
 * unknown flags or SKIP_XATTRS together with USER_XATTRS; errno of the
 * failing system call otherwise. */
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_file(int dirfd,
							 const char *fname,
							 int buildflags);

/* Recursive version of lcfs_load_node_from_file(). On failure returns NULL
 * with errno set and, if @failed_path_out is non-NULL, stores a malloc'd
 * path of the failing entry there (the caller frees it). */
LCFS_EXTERN struct lcfs_node_s *lcfs_build(int dirfd, const char *fname,
					   int buildflags, char **failed_path_out);

/* Parses an image held in memory (@image_data is borrowed; nothing refers
 * to it afterwards). Errors: EINVAL (too short, bad magic, out-of-range
 * offsets, malformed metadata), ENOTSUP (unknown header version), ELOOP
 * (directory loop), ENOMEM. */
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_image(const uint8_t *image_data,
							  size_t image_data_size);
/* As lcfs_load_node_from_image(), with @opts (borrowed, must be non-NULL). */
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_image_ext(const uint8_t *image_data, size_t image_data_size,
			      const struct lcfs_read_options_s *opts);
/* Maps the whole of @fd (borrowed) and parses it as above. */
LCFS_EXTERN struct lcfs_node_s *lcfs_load_node_from_fd(int fd);
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_fd_ext(int fd, const struct lcfs_read_options_s *opts);

/* composefs format version of the image in @fd, or -1 with errno (EINVAL
 * for a bad magic or header version; read errors passed through). */
LCFS_EXTERN int lcfs_version_from_fd(int fd);

/* ---- Writing ---------------------------------------------------------- */

/* Writes the tree rooted at @root as an image through
 * @options->file_write_cb. The tree is only read, never modified (the
 * writer keeps its state in its own tables), so several threads may write
 * one tree, or subtrees of it, at once, each with its own options, while
 * no thread changes the tree. One thread may meanwhile copy it with
 * lcfs_node_clone_deep(); two copies at once may not, because copying
 * takes references and reference counts are not atomic. Updates
 * @options->max_version (raised to version if lower) and @options->version
 * (raised to 1 when the tree has whiteouts and max_version allows). Errors:
 * EINVAL (bad format, flags or version, invalid mode, hard link outside the
 * tree), ENOTDIR (root not a directory), ELOOP (hard link cycle), EFBIG
 * (file over the chunk limit), ENOMEM, or the callback's errno (EIO if it
 * set none). */
LCFS_EXTERN int lcfs_write_to(struct lcfs_node_s *root,
			      struct lcfs_write_options_s *options);

/* ---- fs-verity --------------------------------------------------------- */

/* fs-verity SHA-256 digest (4096-byte blocks, no salt) of the data
 * @read_cb yields until it returns 0. -1 with ENODATA (read error) or
 * ENOMEM. */
LCFS_EXTERN int lcfs_compute_fsverity_from_content(uint8_t *digest, void *file,
						   lcfs_read_cb read_cb);
/* Same, reading @fd from its current offset. */
LCFS_EXTERN int lcfs_compute_fsverity_from_fd(uint8_t *digest, int fd);
/* Same, over @data_len bytes at @data. */
LCFS_EXTERN int lcfs_compute_fsverity_from_data(uint8_t *digest, uint8_t *data,
						size_t data_len);

/* The kernel's fs-verity digest of @fd: 0, or a negative errno value
 * (-ENOVERITY if verity is not enabled or not supported, -EWRONGVERITY if
 * the kernel's digest is not SHA-256), with errno also set. */
LCFS_EXTERN int lcfs_fd_measure_fsverity(uint8_t *digest, int fd);
/* As lcfs_fd_measure_fsverity(), falling back to computing the digest from
 * offset 0 when the file has no fs-verity. 0 or a negative errno value. */
LCFS_EXTERN int lcfs_fd_get_fsverity(uint8_t *digest, int fd);
/* Enables fs-verity (SHA-256, 4096-byte blocks) on @fd: 0 or a negative
 * errno value (-EEXIST if already enabled, -ENOTTY/-EOPNOTSUPP where the
 * kernel or filesystem lacks fs-verity). */
LCFS_EXTERN int lcfs_fd_enable_fsverity(int fd);

#ifdef __cplusplus
}
#endif

#endif /* _LCFS_WRITER_H */
