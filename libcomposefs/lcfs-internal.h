/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Private declarations shared by the library's source files and by the
 * tools and tests (which link the static convenience library). Nothing here
 * is exported from libcomposefs.so.
 *
 * Error convention inside the library: int functions return 0 or -errno;
 * size functions return >= 0 or -errno. Functions that can fail on bad
 * input also take a struct lcfs_error to say where and why.
 */
#ifndef _LCFS_INTERNAL_H
#define _LCFS_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "libcomposefs/lcfs-writer.h"

#define LCFS_PUBLIC __attribute__((visibility("default")))

#define LCFS_MAX_NAME_LENGTH 255
#define LCFS_MAX_PAYLOAD 4095   /* payload must be shorter than 4096 */
#define LCFS_MAX_XATTR_NAME 255
#define LCFS_MAX_XATTR_VALUE 65535

/* ---- Errors ------------------------------------------------------------ */

/* Where and why an operation on input data failed. @line is 1-based (0:
 * not about a line), @field names the field (NULL: the whole entry), @msg is
 * the reason, @err the positive errno. Tools print it as
 * "FILE:LINE: FIELD: MSG". */
struct lcfs_error {
	int err;
	unsigned long line;
	const char *field; /* static string */
	char msg[512];
};

/* Rewrites the control bytes (newlines, escape sequences...) of the
 * message @msg, in a buffer of @size bytes (at most the size of
 * lcfs_error.msg), as \xHH, truncating if need be: messages quote names
 * from untrusted input and must stay one harmless line. */
void lcfs_error_escape(char *msg, size_t size);

/* Records an error (if @e is non-NULL) and returns -@err. Only the first
 * error recorded is kept. The message goes through lcfs_error_escape(). */
int lcfs_error_set(struct lcfs_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Formats @e into @buf: "LINE: FIELD: MSG" parts as present. */
void lcfs_error_format(const struct lcfs_error *e, char *buf, size_t size);

/* ---- Cleanup helpers ---------------------------------------------------- */

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

/* Converts an internal result (0 / -errno) to the public convention (0 /
 * -1 with errno). */
static inline int lcfs_public_ret(int r)
{
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

/* ---- Xattrs -------------------------------------------------------------- */

/*
 * An xattr entry is immutable and reference counted, so that parsers can
 * share one entry between many nodes (an SELinux label used by every file
 * costs one allocation). data = key bytes, NUL, value bytes, NUL.
 */
struct lcfs_xattr {
	uint32_t ref;
	uint32_t hash;      /* lcfs_xattr_hash() of key and value */
	uint16_t key_len;   /* 1..255 */
	uint16_t value_len; /* 0..65535 */
	char data[];
};

static inline const char *lcfs_xattr_key(const struct lcfs_xattr *x)
{
	return x->data;
}

static inline const char *lcfs_xattr_value(const struct lcfs_xattr *x)
{
	return x->data + x->key_len + 1;
}

/* Hash of a (key, value) pair, as stored in lcfs_xattr.hash. */
uint32_t lcfs_xattr_hash(const char *key, size_t key_len, const char *value,
			 size_t value_len);

/* New entry with one reference. Validates nothing but lengths: -ERANGE for
 * an empty key or a key over 255 bytes, -EINVAL for a value over 65535
 * bytes. Returns NULL and sets *@errp (-errno) on failure. */
struct lcfs_xattr *lcfs_xattr_new(const char *key, size_t key_len,
				  const char *value, size_t value_len, int *errp);
struct lcfs_xattr *lcfs_xattr_ref(struct lcfs_xattr *x);
void lcfs_xattr_unref(struct lcfs_xattr *x);

/*
 * A set of xattr entries keyed by (key, value), so that a parser or loader
 * can give identical pairs one shared entry. Zero-initialise; the set
 * holds one reference to each entry.
 */
struct lcfs_xattr_intern {
	struct lcfs_xattr **slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* The entry for (@key, @value), created on first use (borrowed: take a
 * reference to keep it). NULL with -errno in *@errp (lcfs_xattr_new's
 * errors, -ENOMEM). */
struct lcfs_xattr *lcfs_xattr_intern_get(struct lcfs_xattr_intern *t,
					 const char *key, size_t key_len,
					 const char *value, size_t value_len,
					 int *errp);
void lcfs_xattr_intern_release(struct lcfs_xattr_intern *t);

/* Budget cost of one xattr (docs/dumpfile.md, "Extended attributes"). */
static inline size_t lcfs_xattr_cost(size_t key_len, size_t value_len)
{
	return LCFS_INODE_XATTRMETA_SIZE + 3 + key_len + value_len;
}
#define LCFS_XATTR_BUDGET_HEADER 12

/* ---- Nodes --------------------------------------------------------------- */

struct lcfs_node_s {
	/* Packed so that a node is one 160-byte malloc chunk: a tree of a
	 * million entries is mostly nodes. */
	uint32_t ref;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;       /* 32-bit (docs/image-format.md, "The node model") */
	uint32_t mtime_nsec;
	uint32_t n_children;
	/* Scratch index for the writer and reader (never meaningful
	 * between calls). */
	uint32_t scratch;
	uint16_t n_xattrs;
	bool digest_set : 1;
	bool link_loop : 1;  /* make_hardlink() was asked to create a cycle */
	bool destroying : 1; /* queued in node_destroy()'s work list */
	bool children_unsorted : 1; /* see lcfs_node_append_child_n() */

	int64_t mtime_sec;
	uint64_t size;
	char *name;                  /* NULL for a root or detached node */
	struct lcfs_node_s *parent;  /* not a reference */
	/* Sorted by name, references; capacity is the power of two >= 4
	 * above n_children. */
	struct lcfs_node_s **children;
	/* References. Points at xattr_inline while there is at most one
	 * entry (the common case), else at an array whose capacity is the
	 * power of two >= 2 above n_xattrs. */
	struct lcfs_xattr **xattrs;
	struct lcfs_xattr *xattr_inline;
	struct lcfs_node_s *link_to; /* hard link target, a reference */
	char *payload;               /* NUL-terminated, < 4096 bytes */
	uint8_t *content;            /* @size bytes when non-NULL */
	uint8_t digest[LCFS_DIGEST_SIZE];
};

static inline bool lcfs_mode_valid(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

/* Child named @name (@name_len bytes, need not be NUL-terminated) or NULL.
 * Binary search. */
struct lcfs_node_s *lcfs_node_lookup_child_n(struct lcfs_node_s *node,
					     const char *name, size_t name_len);

/* Like lcfs_node_add_child() with the internal error convention; @name is
 * @name_len bytes. Appending in sorted order is O(1). */
int lcfs_node_add_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			  const char *name, size_t name_len);

/* Like lcfs_node_add_child_n(), but appends @child whatever its name and
 * does not look for a duplicate (the caller must know there is none), so
 * that children given in any order cost O(1) each instead of a move of the
 * array. A child out of order marks @parent unsorted: until
 * lcfs_node_sort_children(), lookups in @parent are wrong and the tree
 * must not be handed to anything but lcfs_node_unref(). For the dumpfile
 * parser, which finds names through its own index. */
int lcfs_node_append_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			     const char *name, size_t name_len);

/* Sorts the children of @node by name if lcfs_node_append_child_n() left
 * them out of order. */
void lcfs_node_sort_children(struct lcfs_node_s *node);

/* Sets an xattr entry on @node, taking a new reference to @x (the caller
 * keeps its own). Replaces an entry with the same key (the new one goes to
 * the end). Budget checked as lcfs_node_set_xattr(): -ERANGE. */
int lcfs_node_set_xattr_entry(struct lcfs_node_s *node, struct lcfs_xattr *x);

/* Internal version of lcfs_node_set_xattr(): 0 or -errno. */
int lcfs_node_set_xattr_n(struct lcfs_node_s *node, const char *key,
			  size_t key_len, const char *value, size_t value_len);

/* Takes ownership of @payload (malloc'd, NUL-terminated, length checked by
 * the caller) and replaces the current payload. */
void lcfs_node_take_payload(struct lcfs_node_s *node, char *payload);

/* Takes ownership of @content (malloc'd, @len bytes, 1..5000) and sets
 * size = @len. */
void lcfs_node_take_content(struct lcfs_node_s *node, uint8_t *content,
			    size_t len);

/* Final target of a hard link chain (the node itself if not a link), or
 * NULL if the chain loops. */
struct lcfs_node_s *lcfs_node_resolve_link(struct lcfs_node_s *node);

/* Full path of @node from the root ("/" for the root), malloc'd, or NULL. */
char *lcfs_node_path(struct lcfs_node_s *node);

/* ---- Dumpfile (composefs-dump(5)) ----------------------------------------- */

#define LCFS_PARSE_FLAGS_STRICT (1u << 0)
/* Fuzzing aid: skip the CONTENT length check. */
#define LCFS_PARSE_FLAGS_NO_CONTENT_CHECK (1u << 1)

/* Parses a whole dumpfile read from @fd (borrowed). Returns the root (one
 * reference) or NULL with @err filled (line, field, reason). */
struct lcfs_node_s *lcfs_dump_parse_fd(int fd, unsigned flags,
				       struct lcfs_error *err);

/* Same for a buffer in memory (borrowed). */
struct lcfs_node_s *lcfs_dump_parse_buf(const char *buf, size_t len,
					unsigned flags, struct lcfs_error *err);

/* Escaping flags for lcfs_print_escaped(). */
#define LCFS_ESCAPE_EQUAL (1u << 0)     /* '=' as \x3d */
#define LCFS_ESCAPE_LONE_DASH (1u << 1) /* a lone '-' as \x2d */
#define LCFS_ESCAPE_RAW_SPACE (1u << 2) /* space printed raw */

/* Prints @len bytes of @s escaped per composefs-dump(5). */
void lcfs_print_escaped(FILE *out, const char *s, size_t len, unsigned flags);

/* Prints the tree in dumpfile format, depth first in name order. 0 or
 * -errno (write errors). */
int lcfs_dump_print(FILE *out, struct lcfs_node_s *root);

/* ---- Image writer and reader --------------------------------------------- */

/* lcfs_write_to() with the internal convention and error detail (which node
 * and why). */
int lcfs_write_image(struct lcfs_node_s *root, struct lcfs_write_options_s *opts,
		     struct lcfs_error *err);

/* lcfs_load_node_from_image_ext() with the internal convention: root or NULL
 * with @err filled (offset/nid and reason). */
struct lcfs_node_s *lcfs_image_load(const uint8_t *data, size_t size,
				    const char *const *toplevel,
				    struct lcfs_error *err);

/* ---- fs-verity ------------------------------------------------------------ */

/* Push-style fs-verity SHA-256 hasher (4096-byte blocks, no salt), used to
 * digest an image while it is streamed out. */
struct lcfs_fsverity_stream;
struct lcfs_fsverity_stream *lcfs_fsverity_stream_new(void);
void lcfs_fsverity_stream_update(struct lcfs_fsverity_stream *s, const void *buf,
				 size_t len);
/* Writes the digest and frees @s. 0 or -errno. */
int lcfs_fsverity_stream_final(struct lcfs_fsverity_stream *s,
			       uint8_t digest[LCFS_DIGEST_SIZE]);
void lcfs_fsverity_stream_free(struct lcfs_fsverity_stream *s);

/* fs-verity digest of the first @size bytes of @fd, read from offset 0 with
 * large pread()s through the push hasher (the file offset is unchanged).
 * Thread-safe. 0, -ENODATA if the file is shorter than @size, -ENOMEM or the
 * read errno. */
int lcfs_fsverity_digest_fd_fast(int fd, uint64_t size,
				 uint8_t digest[LCFS_DIGEST_SIZE]);

/* Plain SHA-256 of @len bytes at @data. 0 or -EIO. */
int lcfs_sha256(const void *data, size_t len, uint8_t digest[LCFS_DIGEST_SIZE]);

/* Value of a hex digit (either case), or -1. */
int lcfs_hex_value(char c);

/* Digest to lowercase hex (65 bytes with NUL) and back (-EINVAL unless
 * exactly 64 hex digits). */
void lcfs_digest_to_hex(const uint8_t digest[LCFS_DIGEST_SIZE], char hex[65]);
int lcfs_digest_from_hex(const char *hex, size_t len,
			 uint8_t digest[LCFS_DIGEST_SIZE]);

/* ---- Directory scan and object store (lcfs-build.c) ------------------------ */

struct lcfs_build_options {
	int flags;               /* LCFS_BUILD_* */
	unsigned threads;        /* 0: number of CPUs */
	const char *digest_store; /* object store directory, or NULL */
	bool hardlinks;          /* detect hard links by device and inode */
	/* Called now and then from the scanning thread with the totals so far
	 * (files and bytes digested or copied); NULL for none. The library
	 * itself never prints. */
	void (*progress)(void *data, uint64_t files_done, uint64_t files_total,
			 uint64_t bytes_done, uint64_t bytes_total);
	void *progress_data;
};

/* CPUs this process may run on (the default number of worker threads). */
unsigned lcfs_cpu_count(void);

/* Exactly @len bytes of @fd at offset @off (EINTR retried): 0, -ENODATA if
 * the file ends before, or -errno. */
int lcfs_pread_exact(int fd, void *buf, size_t len, uint64_t off);

/* All @len bytes to @fd at offset @off (EINTR retried): 0, -EIO if the
 * kernel writes nothing, or -errno. */
int lcfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* Opens @path (relative, @flags as for openat()) below @dirfd the way
 * overlayfs looks a redirect up in a data-only layer: never leaving
 * @dirfd (through ".." or an absolute path) and following no symlink
 * anywhere on the way, with openat2() or, on kernels
 * without it, one O_NOFOLLOW component at a time (where ".." is refused).
 * An empty or absolute @path is -EXDEV. Returns the fd or -errno (EXDEV or
 * ELOOP for a path that would escape). */
int lcfs_open_confined(int dirfd, const char *path, int flags);

/* Whether a regular file of @size bytes is stored as inline content in
 * the image (directory mode and tar streams alike): 1 to 64 bytes, unless
 * LCFS_BUILD_NO_INLINE. */
static inline bool lcfs_content_is_inline(uint64_t size, int flags)
{
	return size > 0 && size <= LCFS_RECOMMENDED_INLINE_CONTENT_MAX &&
	       !(flags & LCFS_BUILD_NO_INLINE);
}

/* Records the fs-verity @digest of a regular file's content on @node as
 * @flags ask: LCFS_BUILD_BY_DIGEST sets the payload "xx/yyyy...",
 * LCFS_BUILD_COMPUTE_DIGEST the digest (else it is unset). 0 or -ENOMEM. */
int lcfs_node_set_digest_result(struct lcfs_node_s *node,
				const uint8_t digest[LCFS_DIGEST_SIZE], int flags);

/* Identity of an inode for lcfs_link_inodes(). */
struct lcfs_inode_key {
	dev_t dev;
	ino_t ino;
	struct lcfs_node_s *node;
};

/* Hard links: every non-directory under @root whose scratch field is
 * 1..@n_keys has the identity @keys[scratch - 1]. In depth-first name
 * order, the first name of each identity keeps its attributes (and is
 * passed to @first_cb unless NULL) and every later name becomes a hard
 * link to it. Clears the scratch fields it used. 0 or -errno (-ENOMEM or
 * @first_cb's error). */
int lcfs_link_inodes(struct lcfs_node_s *root, const struct lcfs_inode_key *keys,
		     size_t n_keys, int (*first_cb)(void *data, struct lcfs_node_s *node),
		     void *data);

/* Removes the child at index @i of @parent: it is detached (name and
 * parent cleared) and the parent's reference dropped. */
void lcfs_node_remove_child_at(struct lcfs_node_s *parent, size_t i);

/* Removes the child named @name (@name_len bytes) of @parent as above.
 * 0 or -ENOENT. */
int lcfs_node_remove_child_n(struct lcfs_node_s *parent, const char *name,
			     size_t name_len);

/* Scans directory @path (relative to @dirfd) into a tree, computes digests
 * and inline content of regular files, and fills the object store if asked.
 * Returns the root (one reference) or NULL with @err naming the failing
 * path and reason. */
struct lcfs_node_s *lcfs_build_tree(int dirfd, const char *path,
				    const struct lcfs_build_options *opts,
				    struct lcfs_error *err);

/* ---- Mounting (lcfs-mount.c) ---------------------------------------------- */

struct lcfs_mount_options_s;

/* Test-only flags, accepted in lcfs_mount_options_s.flags by
 * lcfs_mount_fd_ext() alone (the public entry points reject them): mount
 * the image through a loop device as a kernel without file-backed EROFS
 * would; compose the overlay with mount(2) as a kernel without the new
 * mount API would. */
#define LCFS_MOUNT_INTERNAL_FORCE_LOOP (1u << 30)
#define LCFS_MOUNT_INTERNAL_FORCE_LEGACY (1u << 31)
#define LCFS_MOUNT_INTERNAL_MASK \
	(LCFS_MOUNT_INTERNAL_FORCE_LOOP | LCFS_MOUNT_INTERNAL_FORCE_LEGACY)

/* lcfs_mount_fd() with the internal convention (0 or -errno) and @err
 * saying which step failed, with the kernel's own message when it gave
 * one (overlayfs and EROFS explain rejected options through the fs
 * context). Nothing is left behind on failure. */
int lcfs_mount_fd_ext(int fd, const char *mountpoint,
		      struct lcfs_mount_options_s *opts, struct lcfs_error *err);

#endif /* _LCFS_INTERNAL_H */
