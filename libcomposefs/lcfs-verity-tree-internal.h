/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity Merkle trees kept in memory, to check every block of a file
 * as it is read, the way the kernel checks a file that has fs-verity:
 * nothing reaches the caller unless its 4096-byte block hashes, through
 * the tree, to the expected fs-verity digest (SHA-256, 4096-byte blocks,
 * no salt).
 *
 * Memory: the trees of a process share a budget. A tree keeps its levels
 * from the top down as far as the budget allows (the top block, 4 KiB,
 * always). A hash block of a level it does not keep is derived again from
 * the data (or the level below) when a read needs it, checked against the
 * level above, and cached (one block per such level): correct for files
 * of any size, at the cost of reading the data twice where level 0 (1/128
 * of the file) does not fit.
 *
 * All functions return 0 (or a size) or -errno; none prints or aborts.
 */
#ifndef _LCFS_VERITY_TREE_INTERNAL_H
#define _LCFS_VERITY_TREE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "libcomposefs/lcfs-writer.h"

/* ---- Shared with lcfs-fsverity.c ------------------------------------------ */

/* The fs-verity digest of a file of @data_size bytes whose Merkle tree has
 * root hash @root (the SHA-256 of its descriptor). */
void lcfs_fsverity_descriptor_digest(uint64_t data_size,
				     const uint8_t root[LCFS_DIGEST_SIZE],
				     uint8_t digest[LCFS_DIGEST_SIZE]);

/* ---- Memory budget ----------------------------------------------------------- */

/* Bytes of tree kept in memory by all the trees that share it; thread-safe. */
struct lcfs_verity_budget;

/* A budget of @limit bytes, or NULL (ENOMEM). */
struct lcfs_verity_budget *lcfs_verity_budget_new(uint64_t limit);

/* Frees @b; every tree charged to it must be freed first. */
void lcfs_verity_budget_free(struct lcfs_verity_budget *b);

/* Bytes currently charged, and what is left of the limit. */
uint64_t lcfs_verity_budget_used(struct lcfs_verity_budget *b);
uint64_t lcfs_verity_budget_available(struct lcfs_verity_budget *b);

/* ---- Trees ------------------------------------------------------------------- */

struct lcfs_verity_tree;

/*
 * Reads the first @size bytes of @fd once, builds their Merkle tree and
 * checks it against @digest. Levels are kept within what @budget (borrowed,
 * must outlive the tree; NULL: no limit) has left. Thread-safe.
 *
 * Returns 0 with *@out, or -EWRONGVERITY when the content does not have
 * @digest (its digest in @found if non-NULL), -ENODATA when the file is
 * shorter than @size, -EFBIG, -ENOMEM, or the read errno.
 */
int lcfs_verity_tree_build(int fd, uint64_t size,
			   const uint8_t digest[LCFS_DIGEST_SIZE],
			   struct lcfs_verity_budget *budget,
			   struct lcfs_verity_tree **out,
			   uint8_t found[LCFS_DIGEST_SIZE]);

/*
 * The same from the tree that the kernel keeps for @fd when the file has
 * fs-verity (FS_IOC_READ_VERITY_METADATA), without reading the data: the
 * kernel's digest must be @digest and every level kept is checked against
 * the level above it. -ENOVERITY when the file has no fs-verity (or the
 * kernel cannot read its metadata back), -EWRONGVERITY when its digest
 * differs.
 */
int lcfs_verity_tree_from_kernel(int fd, const uint8_t digest[LCFS_DIGEST_SIZE],
				 struct lcfs_verity_budget *budget,
				 struct lcfs_verity_tree **out);

/* Bytes that the whole tree of a file of @size bytes takes (what a build
 * needs from the budget to keep every level). */
uint64_t lcfs_verity_tree_memory(uint64_t size);

/* Frees @t and returns its memory to its budget. NULL is allowed. */
void lcfs_verity_tree_free(struct lcfs_verity_tree *t);

/* Data size the tree covers. */
uint64_t lcfs_verity_tree_size(const struct lcfs_verity_tree *t);

/* Levels of the tree (0 for files of one block or less) and how many of
 * them, counted from the top, are kept in memory. */
unsigned lcfs_verity_tree_levels(const struct lcfs_verity_tree *t);
unsigned lcfs_verity_tree_levels_kept(const struct lcfs_verity_tree *t);

/*
 * Reads up to @len bytes at @off of @fd, the file @t describes, into @buf.
 * Every 4096-byte block the range touches is read whole and checked
 * against the tree before any of it is copied. Thread-safe; @fd may be
 * read concurrently.
 *
 * Returns the bytes copied (fewer than @len only at the end of the data,
 * 0 from there on), or -EIO when a block does not match or the file now
 * ends before the data does (its index in *@bad_block if non-NULL),
 * -ENOMEM, or the read errno.
 */
ssize_t lcfs_verity_tree_read(struct lcfs_verity_tree *t, int fd, void *buf,
			      size_t len, uint64_t off, uint64_t *bad_block);

#endif /* _LCFS_VERITY_TREE_INTERNAL_H */
