/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * libcomposefs: the 32-byte composefs header at the start of every image.
 */
#ifndef _LCFS_EROFS_H
#define _LCFS_EROFS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LCFS_EROFS_VERSION 1
#define LCFS_EROFS_MAGIC 0xd078629aU

/* Bits of lcfs_erofs_header_s.flags. */
typedef enum {
	/* The image holds POSIX ACL xattrs. */
	LCFS_EROFS_FLAGS_HAS_ACL = (1 << 0),
} lcfs_erofs_flag_t;

/* All fields little-endian. */
struct lcfs_erofs_header_s {
	uint32_t magic;             /* LCFS_EROFS_MAGIC */
	uint32_t version;           /* LCFS_EROFS_VERSION */
	uint32_t flags;             /* LCFS_EROFS_FLAGS_* */
	uint32_t composefs_version; /* image format version, 0 or 1 */
	uint32_t unused[4];
} __attribute__((__packed__));

#ifdef __cplusplus
}
#endif

#endif /* _LCFS_EROFS_H */
