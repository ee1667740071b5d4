/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * A tiny image builder for the reader tests. It lays out hand-described
 * trees in the composefs image format (docs/image-format.md)
 * with simple placement rules, and records where each structure went so
 * that tests can corrupt precise fields. It is not the library's writer
 * and does not aim at byte-identical output; it only aims at images that
 * a correct reader accepts.
 */
#ifndef _READER_IMAGE_BUILDER_H
#define _READER_IMAGE_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One xattr entry as stored: name index (docs/image-format.md, "Name
 * prefixes"), name after the prefix, value. */
struct tb_xattr {
	uint8_t index;
	const char *name;
	const void *value;
	size_t value_len;
};

struct tb_node {
	int parent;  /* index of the parent directory, -1 for the root */
	const char *name;
	int link;    /* >= 0: a hard link entry to node @link (no inode) */
	uint16_t mode;
	bool extended;
	uint32_t nlink; /* 0: 1, or 2 + subdirectories for a directory */
	uint32_t uid, gid, rdev;
	int64_t mtime;  /* extended inodes only */
	uint32_t mtime_nsec;
	uint64_t size;  /* external regular files (chunk-based) */
	const void *data; /* inline content or symlink target */
	size_t data_len;
	const struct tb_xattr *xattrs; /* inline entries, in this order */
	int n_xattrs;
	const int *shared; /* indexes into tb.shared, referenced in this order */
	int n_shared;

	/* Filled by tb_build(). */
	uint64_t nid;
	uint64_t off;       /* inode record */
	uint64_t xattr_off; /* xattr area (0 if none) */
	uint64_t tail_off;  /* inline data (0 if none) */
	uint32_t block;     /* first data block (0 if none) */
	uint32_t nblocks;
	uint64_t i_size;
	/* Internal. */
	int first_child, next_sibling;
	size_t n_entries;
	size_t dirent_bytes;
};

#define TB_MAX_SHARED 32

struct tb {
	struct tb_node *nodes;
	size_t n, cap;
	struct tb_xattr shared[TB_MAX_SHARED];
	int n_shared;
	uint32_t shared_id[TB_MAX_SHARED]; /* filled by tb_build() */
	int64_t build_time;
	uint32_t build_time_nsec;
	uint32_t composefs_version;
	uint8_t *img;
	size_t size;
	uint64_t inodes_end;
	uint64_t shared_off;
};

void tb_init(struct tb *b);
void tb_free(struct tb *b);
/* Adds the root (parent -1) or a child; returns its index. */
int tb_add(struct tb *b, int parent, const char *name, uint16_t mode);
/* tb_add() of a node of @size bytes with the inline xattrs @xattrs[@n]. */
int tb_add_xattrs(struct tb *b, int parent, const char *name, uint16_t mode,
		  uint64_t size, const struct tb_xattr *xattrs, int n);
/* Adds a hard link entry @name in @parent pointing at node @target. */
int tb_add_link(struct tb *b, int parent, const char *name, int target);
/* Adds a shared xattr table entry; returns its index. */
int tb_add_shared(struct tb *b, uint8_t index, const char *name, const void *value,
		  size_t value_len);
/* Lays out and emits the image into b->img / b->size (aborts on OOM). */
void tb_build(struct tb *b);

/* Little-endian stores for corrupting images. */
void tb_put16(uint8_t *p, uint16_t v);
void tb_put32(uint8_t *p, uint32_t v);
void tb_put64(uint8_t *p, uint64_t v);

#endif
