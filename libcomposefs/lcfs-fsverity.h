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

/* Reusable state for digesting many files, one at a time, without an
 * allocation per file: a push hasher and a read buffer. One per thread. */
struct lcfs_fsverity_file_hasher;
struct lcfs_fsverity_file_hasher *lcfs_fsverity_file_hasher_new(void);
void lcfs_fsverity_file_hasher_free(struct lcfs_fsverity_file_hasher *h);

/* As lcfs_fsverity_digest_fd_fast(), with the state in @h. */
int lcfs_fsverity_file_hasher_digest(struct lcfs_fsverity_file_hasher *h, int fd,
				     uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE]);

/* A large file can be digested in parts, on several threads: each part
 * yields the hashes of its groups (the Merkle tree blocks one level above
 * the data, each covering LCFS_FSVERITY_GROUP_SIZE bytes of data), and the
 * digest follows from all the groups' hashes in order. */
#define LCFS_FSVERITY_GROUP_SIZE (128 * 4096)

/* The hashes of the groups in @len bytes of @fd at @off into @groups
 * (one per LCFS_FSVERITY_GROUP_SIZE bytes, the last one rounded up). @off
 * must be a multiple of the group size, and so must @len unless the part
 * ends the file. 0, -EINVAL for a misaligned part, -ENODATA if the file is
 * shorter, or the read errno. */
int lcfs_fsverity_file_hasher_groups(struct lcfs_fsverity_file_hasher *h, int fd,
				     uint64_t off, uint64_t len,
				     uint8_t (*groups)[LCFS_DIGEST_SIZE]);

/* The digest of a file of @size bytes (more than one group) from the
 * hashes of all its groups. 0 or -EINVAL if @size has a single group. */
int lcfs_fsverity_digest_from_groups(const uint8_t (*groups)[LCFS_DIGEST_SIZE],
				     uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE]);

/* Plain SHA-256 of @len bytes at @data. 0 or -EIO. */
int lcfs_sha256(const void *data, size_t len, uint8_t digest[LCFS_DIGEST_SIZE]);

#endif /* _LCFS_FSVERITY_H */
