/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The library's internal entry points for its own tools (and tests): the
 * same operations as the public API with the internal error convention
 * and error detail, plus what only the tools need. The node layout is
 * not here (lcfs-node.h): tools work through the public node API.
 *
 *   dumpfile parser and printer   lcfs-dump-parse.c, lcfs-dump-print.c
 *   image writer and reader       lcfs-erofs-write.c, lcfs-erofs-read.c
 *   directory scanner             lcfs-build.c
 *   mounting                      lcfs-mount.c
 */
#ifndef _LCFS_TOOLS_H
#define _LCFS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "libcomposefs/lcfs-writer.h"
#include "lcfs-error.h"
#include "lcfs-util.h"

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

/* ---- Directory scan (lcfs-build.c) ----------------------------------------- */

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

#endif /* _LCFS_TOOLS_H */
