/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * On-disk structures of a composefs image (docs/image-format.md, "File
 * layout", "composefs header", "EROFS superblock", "Extended attributes",
 * "Inode records", "Directories"). Every multi-byte field is little-endian.
 * Nothing but plain structs, constants and their size/offset checks; the
 * xattr names that go with the name indexes are in erofs-xattr-names.h.
 */
#ifndef _LCFS_EROFS_FORMAT_H
#define _LCFS_EROFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "libcomposefs/lcfs-erofs.h"

#define LCFS_BLKSZ_BITS 12
#define LCFS_BLKSZ 4096u
#define LCFS_SLOT_BITS 5
#define LCFS_SLOT 32u

/* Absolute offset of the EROFS superblock. */
#define LCFS_SUPER_OFFSET 1024u
/* First inode (the root, normally nid 36) follows the superblock. */
#define LCFS_INODES_OFFSET 1152u

#define LCFS_EROFS_SUPER_MAGIC 0xE0F5E1E2u

#define LCFS_EROFS_FEATURE_COMPAT_MTIME 0x2u
#define LCFS_EROFS_FEATURE_COMPAT_XATTR_FILTER 0x4u

/* i_format bit 0 and bits 1-3 (data layout). */
#define LCFS_EROFS_INODE_EXTENDED 0x1u
#define LCFS_EROFS_LAYOUT_SHIFT 1
#define LCFS_EROFS_LAYOUT_MASK 0x7u
#define LCFS_EROFS_LAYOUT_FLAT_PLAIN 0u
#define LCFS_EROFS_LAYOUT_FLAT_INLINE 2u
#define LCFS_EROFS_LAYOUT_CHUNK_BASED 4u

/* Chunk-based i_u: low bits hold chunkbits - 12. */
#define LCFS_EROFS_CHUNK_FORMAT_BLKBITS_MASK 0x1fu
#define LCFS_EROFS_CHUNK_FORMAT_INDEXES 0x20u
#define LCFS_EROFS_NULL_ADDR 0xffffffffu
#define LCFS_EROFS_MAX_CHUNKS 1024u

/* Dirent file types. */
enum {
	LCFS_EROFS_FT_UNKNOWN = 0,
	LCFS_EROFS_FT_REG_FILE = 1,
	LCFS_EROFS_FT_DIR = 2,
	LCFS_EROFS_FT_CHRDEV = 3,
	LCFS_EROFS_FT_BLKDEV = 4,
	LCFS_EROFS_FT_FIFO = 5,
	LCFS_EROFS_FT_SOCK = 6,
	LCFS_EROFS_FT_SYMLINK = 7,
};

/* Xattr name indexes (docs/image-format.md, "Name prefixes"). */
enum {
	LCFS_XATTR_INDEX_NONE = 0,
	LCFS_XATTR_INDEX_USER = 1,
	LCFS_XATTR_INDEX_POSIX_ACL_ACCESS = 2,
	LCFS_XATTR_INDEX_POSIX_ACL_DEFAULT = 3,
	LCFS_XATTR_INDEX_TRUSTED = 4,
	LCFS_XATTR_INDEX_LUSTRE = 5,
	LCFS_XATTR_INDEX_SECURITY = 6,
	LCFS_XATTR_INDEX_COUNT = 7,
};

/* Seed of the per-inode xattr name bloom filter (docs/image-format.md,
 * "Xattr name filter"). */
#define LCFS_XATTR_FILTER_SEED 0x25BBE08Fu

struct lcfs_erofs_super {
	uint32_t magic;
	uint32_t checksum;
	uint32_t feature_compat;
	uint8_t blkszbits;
	uint8_t sb_extslots;
	uint16_t root_nid;
	uint64_t inos;
	uint64_t build_time;
	uint32_t build_time_nsec;
	uint32_t blocks;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint8_t uuid[16];
	uint8_t volume_name[16];
	uint32_t feature_incompat;
	uint8_t tail[44]; /* compression info, devices, prefixes...: zero */
} __attribute__((__packed__));

struct lcfs_erofs_inode_compact {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nlink;
	uint32_t i_size;
	uint32_t i_reserved;
	uint32_t i_u;
	uint32_t i_ino;
	uint16_t i_uid;
	uint16_t i_gid;
	uint32_t i_reserved2;
} __attribute__((__packed__));

struct lcfs_erofs_inode_extended {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_reserved;
	uint64_t i_size;
	uint32_t i_u;
	uint32_t i_ino;
	uint32_t i_uid;
	uint32_t i_gid;
	uint64_t i_mtime;
	uint32_t i_mtime_nsec;
	uint32_t i_nlink;
	uint8_t i_reserved2[16];
} __attribute__((__packed__));

struct lcfs_erofs_xattr_ibody_header {
	uint32_t h_name_filter;
	uint8_t h_shared_count;
	uint8_t h_reserved2[7];
} __attribute__((__packed__));

struct lcfs_erofs_xattr_entry {
	uint8_t e_name_len;
	uint8_t e_name_index;
	uint16_t e_value_size;
} __attribute__((__packed__));

struct lcfs_erofs_dirent {
	uint64_t nid;
	uint16_t nameoff;
	uint8_t file_type;
	uint8_t reserved;
} __attribute__((__packed__));

_Static_assert(sizeof(struct lcfs_erofs_header_s) == 32, "header size");
_Static_assert(offsetof(struct lcfs_erofs_header_s, composefs_version) == 12,
	       "header layout");
_Static_assert(sizeof(struct lcfs_erofs_super) == 128, "superblock size");
_Static_assert(offsetof(struct lcfs_erofs_super, root_nid) == 14, "sb root_nid");
_Static_assert(offsetof(struct lcfs_erofs_super, inos) == 16, "sb inos");
_Static_assert(offsetof(struct lcfs_erofs_super, build_time) == 24, "sb time");
_Static_assert(offsetof(struct lcfs_erofs_super, blocks) == 36, "sb blocks");
_Static_assert(offsetof(struct lcfs_erofs_super, xattr_blkaddr) == 44,
	       "sb xattr_blkaddr");
_Static_assert(offsetof(struct lcfs_erofs_super, feature_incompat) == 80,
	       "sb feature_incompat");
_Static_assert(sizeof(struct lcfs_erofs_inode_compact) == 32, "compact inode");
_Static_assert(offsetof(struct lcfs_erofs_inode_compact, i_u) == 16, "compact i_u");
_Static_assert(offsetof(struct lcfs_erofs_inode_compact, i_uid) == 24,
	       "compact i_uid");
_Static_assert(sizeof(struct lcfs_erofs_inode_extended) == 64, "extended inode");
_Static_assert(offsetof(struct lcfs_erofs_inode_extended, i_mtime) == 32,
	       "extended i_mtime");
_Static_assert(offsetof(struct lcfs_erofs_inode_extended, i_nlink) == 44,
	       "extended i_nlink");
_Static_assert(sizeof(struct lcfs_erofs_xattr_ibody_header) == 12, "xattr header");
_Static_assert(sizeof(struct lcfs_erofs_xattr_entry) == 4, "xattr entry");
_Static_assert(sizeof(struct lcfs_erofs_dirent) == 12, "dirent");

#endif /* _LCFS_EROFS_FORMAT_H */
