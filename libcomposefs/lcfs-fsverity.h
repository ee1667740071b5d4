/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity and SHA-256 digests computed in user space (lcfs-fsverity.c).
 * The Merkle tree kept in memory for the FUSE view is in
 * lcfs-verity-tree-internal.h.
 */
#ifndef _LCFS_FSVERITY_H
#define _LCFS_FSVERITY_H

#include <stddef.h>
#include <stdint.h>

#include "libcomposefs/lcfs-writer.h"

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

#endif /* _LCFS_FSVERITY_H */
