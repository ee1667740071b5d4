/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * libcomposefs: the 32-byte composefs header at the start of every image.
 */
#ifndef _LCFS_EROFS_H
#define _LCFS_EROFS_H

#include <stdint.h>

#define LCFS_EROFS_VERSION 1
#define LCFS_EROFS_MAGIC 0xd078629aU

/* lcfs_erofs_header_s.flags: the image holds POSIX ACL xattrs. */
#define LCFS_EROFS_FLAGS_HAS_ACL (1 << 0)

/* All fields little-endian. */
struct lcfs_erofs_header_s {
	uint32_t magic;             /* LCFS_EROFS_MAGIC */
	uint32_t version;           /* LCFS_EROFS_VERSION */
	uint32_t flags;             /* LCFS_EROFS_FLAGS_* */
	uint32_t composefs_version; /* image format version, 0 or 1 */
	uint32_t unused[4];
} __attribute__((__packed__));

#endif /* _LCFS_EROFS_H */
