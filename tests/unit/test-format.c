/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Size and offset of every field of every on-disk structure, checked at run
 * time against the tables of docs/image-format.md ("composefs header",
 * "EROFS superblock", "Xattr entries", "Inline xattrs", "Compact record",
 * "Extended record", "Directory entries"; the headers also check the main
 * ones at compile time).
 */
#include "erofs-format.h"

#include <stdio.h>

#include "check.h"

#define CHECK_FIELD(type, field, off, size)                                          \
	CHECK_MSG(offsetof(type, field) == (off) && sizeof(((type *)0)->field) == (size), \
		  "%s.%s: offset %zu size %zu, want %d %d", #type, #field,           \
		  offsetof(type, field), sizeof(((type *)0)->field), off, size)

#define CHECK_SIZE(type, size)                                                        \
	CHECK_MSG(sizeof(type) == (size), "sizeof %s = %zu, want %d", #type,         \
		  sizeof(type), size)

int main(void)
{
	CHECK_SIZE(struct lcfs_erofs_header_s, 32);
	CHECK_FIELD(struct lcfs_erofs_header_s, magic, 0, 4);
	CHECK_FIELD(struct lcfs_erofs_header_s, version, 4, 4);
	CHECK_FIELD(struct lcfs_erofs_header_s, flags, 8, 4);
	CHECK_FIELD(struct lcfs_erofs_header_s, composefs_version, 12, 4);
	CHECK_FIELD(struct lcfs_erofs_header_s, unused, 16, 16);

	CHECK_SIZE(struct lcfs_erofs_super, 128);
	CHECK_FIELD(struct lcfs_erofs_super, magic, 0, 4);
	CHECK_FIELD(struct lcfs_erofs_super, checksum, 4, 4);
	CHECK_FIELD(struct lcfs_erofs_super, feature_compat, 8, 4);
	CHECK_FIELD(struct lcfs_erofs_super, blkszbits, 12, 1);
	CHECK_FIELD(struct lcfs_erofs_super, sb_extslots, 13, 1);
	CHECK_FIELD(struct lcfs_erofs_super, root_nid, 14, 2);
	CHECK_FIELD(struct lcfs_erofs_super, inos, 16, 8);
	CHECK_FIELD(struct lcfs_erofs_super, build_time, 24, 8);
	CHECK_FIELD(struct lcfs_erofs_super, build_time_nsec, 32, 4);
	CHECK_FIELD(struct lcfs_erofs_super, blocks, 36, 4);
	CHECK_FIELD(struct lcfs_erofs_super, meta_blkaddr, 40, 4);
	CHECK_FIELD(struct lcfs_erofs_super, xattr_blkaddr, 44, 4);
	CHECK_FIELD(struct lcfs_erofs_super, uuid, 48, 16);
	CHECK_FIELD(struct lcfs_erofs_super, volume_name, 64, 16);
	CHECK_FIELD(struct lcfs_erofs_super, feature_incompat, 80, 4);
	CHECK_FIELD(struct lcfs_erofs_super, tail, 84, 44);

	CHECK_SIZE(struct lcfs_erofs_inode_compact, 32);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_format, 0, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_xattr_icount, 2, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_mode, 4, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_nlink, 6, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_size, 8, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_reserved, 12, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_u, 16, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_ino, 20, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_uid, 24, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_gid, 26, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_compact, i_reserved2, 28, 4);

	CHECK_SIZE(struct lcfs_erofs_inode_extended, 64);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_format, 0, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_xattr_icount, 2, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_mode, 4, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_reserved, 6, 2);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_size, 8, 8);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_u, 16, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_ino, 20, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_uid, 24, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_gid, 28, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_mtime, 32, 8);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_mtime_nsec, 40, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_nlink, 44, 4);
	CHECK_FIELD(struct lcfs_erofs_inode_extended, i_reserved2, 48, 16);

	CHECK_SIZE(struct lcfs_erofs_xattr_ibody_header, 12);
	CHECK_FIELD(struct lcfs_erofs_xattr_ibody_header, h_name_filter, 0, 4);
	CHECK_FIELD(struct lcfs_erofs_xattr_ibody_header, h_shared_count, 4, 1);
	CHECK_FIELD(struct lcfs_erofs_xattr_ibody_header, h_reserved2, 5, 7);

	CHECK_SIZE(struct lcfs_erofs_xattr_entry, 4);
	CHECK_FIELD(struct lcfs_erofs_xattr_entry, e_name_len, 0, 1);
	CHECK_FIELD(struct lcfs_erofs_xattr_entry, e_name_index, 1, 1);
	CHECK_FIELD(struct lcfs_erofs_xattr_entry, e_value_size, 2, 2);

	CHECK_SIZE(struct lcfs_erofs_dirent, 12);
	CHECK_FIELD(struct lcfs_erofs_dirent, nid, 0, 8);
	CHECK_FIELD(struct lcfs_erofs_dirent, nameoff, 8, 2);
	CHECK_FIELD(struct lcfs_erofs_dirent, file_type, 10, 1);
	CHECK_FIELD(struct lcfs_erofs_dirent, reserved, 11, 1);

	if (LCFS_INODES_OFFSET != LCFS_SUPER_OFFSET + sizeof(struct lcfs_erofs_super)) {
		fprintf(stderr, "inode area does not follow the superblock\n");
		test_failures++;
	}
	return test_summary("test-format");
}
