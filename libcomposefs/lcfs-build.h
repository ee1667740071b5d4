/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * What the directory scanner (lcfs-build.c) shares with the tar importer
 * (lcfs-tar.c): inline content, digest results and hard-link resolution.
 * The scanner's entry point is in lcfs-tools.h.
 */
#ifndef _LCFS_BUILD_H
#define _LCFS_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libcomposefs/lcfs-writer.h"

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

#endif /* _LCFS_BUILD_H */
