/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * State shared by the parts of the image writer:
 *   lcfs-erofs-layout.c  inode list (BFS), tree rewrite flags, sizes, placement
 *   lcfs-erofs-xattrs.c  per-inode xattr lists, shared xattr table, name filter
 *   lcfs-erofs-write.c   emitting the bytes, lcfs_write_to()
 *   lcfs-erofs-wbuf.c    the output buffer the emitting parts append to
 * Calls go one way: write -> layout -> xattrs -> wbuf (and write -> wbuf).
 *
 * The writer never copies the caller's tree. The rewrite
 * (docs/image-format.md, "Tree rewrite": escaped overlay xattrs,
 * metacopy/redirect, whiteout conversion and markers, root opaque, the 256
 * root whiteouts) is expressed by a few flags per inode and applied on the
 * fly whenever an inode's attributes or xattrs are needed. Only the small
 * per-inode table below is allocated, so writing a tree costs far less
 * memory than the tree.
 */
#ifndef _LCFS_EROFS_WRITER_H
#define _LCFS_EROFS_WRITER_H

#include <string.h>

#include "lcfs-error.h"
#include "lcfs-node.h"
#include "erofs-format.h"

/* winode.flags */
#define W_SYNTH_WHITEOUT (1u << 0) /* one of the root's 00..ff whiteouts */
#define W_INPUT_WHITEOUT (1u << 1) /* char 0/0 input, written as a REG file */
#define W_WHITEOUT_PARENT (1u << 2) /* has an input whiteout child */
#define W_COMPACT (1u << 3)         /* 32-byte inode record */
#define W_EXTERNAL (1u << 4)        /* REG, size > 0, no content: chunk based */
#define W_ROOT (1u << 5)

/* One real inode, in BFS order (its index is i_ino). */
struct winode {
	struct lcfs_node_s *node; /* the source node; the root's for synthetic */
	uint64_t pos;             /* byte offset of the record; nid = pos / 32 */
	uint32_t parent;          /* BFS index of the parent directory */
	uint32_t nlink;
	uint32_t n_blocks;        /* data blocks */
	uint32_t block;           /* first data block address */
	uint32_t xattr_size;      /* inline xattr region, 0 when none */
	uint16_t tail;            /* bytes inline after record and xattrs */
	uint16_t flags;
};

struct shared_ent; /* a pair of the shared table, lcfs-erofs-xattrs.c */

/* One xattr of an inode after the rewrite (a transient view). */
struct wxattr {
	const char *key;   /* full key */
	const char *value;
	uint32_t hash;     /* lcfs_xattr_hash(key, value) */
	uint16_t key_len;
	uint16_t value_len;
	uint8_t index;     /* e_name_index */
	uint8_t prefix_len; /* bytes of key replaced by the index */
	const struct shared_ent *ref; /* shared entry referenced, else inline */
};

/* Room for an escaped key: "overlay." inserted into a 255-byte key. */
#define WXATTR_KEYMAX 272

/* Scratch space to build an inode's xattr list. */
struct wxattr_list {
	struct wxattr *items;
	size_t n, cap;
	char *keybuf; /* escaped keys, WXATTR_KEYMAX bytes each */
	size_t keybuf_cap;
	uint8_t metacopy[4 + LCFS_DIGEST_SIZE];
	char redirect[1 + LCFS_MAX_PAYLOAD + 1];
};

struct shared_xattrs; /* lcfs-erofs-xattrs.c */

/* A directory entry, as written (docs/image-format.md, "Directories"). */
struct wdirent {
	const char *name;
	struct lcfs_node_s *child; /* for a child entry */
	uint32_t target;           /* BFS index of the final target inode */
	uint16_t name_len;
	uint8_t kind;              /* child, ".", "..", synthetic whiteout */
	uint8_t hex;               /* which synthetic whiteout */
};

struct wlink_slot {
	const struct lcfs_node_s *node; /* NULL: free */
	uint32_t idx;
};

struct writer {
	struct lcfs_node_s *root;
	uint32_t version;
	uint32_t max_version;
	struct winode *inodes;
	uint32_t n_inodes;
	/* BFS index of the first inode each directory added (its first
	 * entry that is not ".", ".." or a hard link): the writer keeps its
	 * indexes here and in @link_map, never in the caller's nodes, so
	 * that several writers may read one tree at once. */
	uint32_t *child_base;
	/* Hard link targets: node -> BFS index (open addressing), built only
	 * when the tree has hard links; NULL otherwise. */
	struct wlink_slot *link_map;
	size_t link_mask;
	uint32_t synth_idx[256]; /* BFS index of each synthetic whiteout */
	bool has_acl;
	int64_t min_mtime_sec;
	uint32_t min_mtime_nsec;

	uint64_t inodes_end;
	uint32_t shared_size;
	uint64_t data_start;
	uint64_t n_data_blocks;

	struct shared_xattrs *shared;
	struct wxattr_list xl;    /* scratch */
	struct wdirent *dirents;  /* scratch */
	size_t dirents_cap;

	struct lcfs_error *err;
};

/* lcfs-erofs-layout.c */
int lcfs_writer_collect(struct writer *w);
int lcfs_writer_layout(struct writer *w);
uint32_t lcfs_writer_mode(const struct writer *w, const struct winode *wi);
uint64_t lcfs_writer_size(const struct writer *w, const struct winode *wi);
/* Fills w->dirents with the entries of directory @idx in name order. */
int lcfs_writer_dir_entries(struct writer *w, uint32_t idx, size_t *n_out);
unsigned lcfs_writer_chunkbits(uint64_t size);
/* Path of @wi for messages, malloc'd (NULL without memory). */
static inline char *lcfs_writer_path(const struct writer *w, const struct winode *wi)
{
	if (wi->flags & W_SYNTH_WHITEOUT)
		return strdup("/(root whiteout)");
	return lcfs_node_path(wi->node);
}

/* lcfs-erofs-xattrs.c */
int lcfs_writer_xattrs_of(struct writer *w, const struct winode *wi,
			  struct wxattr_list *l);
int lcfs_writer_share_xattrs(struct writer *w);
/* Inline region size of @wi given the shared table, 0 when no xattrs. */
int lcfs_writer_xattr_size(struct writer *w, struct winode *wi);
/* Appends @wi's xattr region to @buf (w->inodes_end must be final). */
struct wbuf;
int lcfs_writer_emit_xattrs(struct writer *w, const struct winode *wi,
			    struct wbuf *out);
int lcfs_writer_emit_shared_table(struct writer *w, struct wbuf *out);
void lcfs_writer_xattrs_free(struct writer *w);

/* lcfs-erofs-wbuf.c: buffered output through the caller's callback, with
 * the image's fs-verity digest computed on the way when @verity is set.
 * lcfs-erofs-write.c sets the fields up. */
#define WBUF_SIZE (256 * 1024)

struct wbuf {
	uint8_t *buf;
	size_t len;
	uint64_t offset; /* bytes emitted so far, flushed or not */
	lcfs_write_cb cb;
	void *file;
	struct lcfs_fsverity_stream *verity;
};

/* Passes what is buffered on; 0 or -errno (the callback's). */
int lcfs_wbuf_flush(struct wbuf *b);
/* Appends @len bytes; 0 or -errno. */
int lcfs_wbuf_put_slow(struct wbuf *b, const void *data, size_t len);
static inline int lcfs_wbuf_put(struct wbuf *b, const void *data, size_t len)
{
	/* Most pieces are small: copy them here, without a call. */
	if (len < WBUF_SIZE - b->len) {
		if (len == 0)
			return 0;
		memcpy(b->buf + b->len, data, len);
		b->len += len;
		b->offset += len;
		return 0;
	}
	return lcfs_wbuf_put_slow(b, data, len);
}
int lcfs_wbuf_zero(struct wbuf *b, size_t len);
uint64_t lcfs_wbuf_offset(const struct wbuf *b);

/*
 * The passes over the inodes go in BFS order, but the nodes sit wherever
 * they were allocated: scattered over memory when a dumpfile came in
 * another order than sorted. Asking a few inodes ahead for the node (and,
 * a little later, for its payload, which external files' xattrs read)
 * hides most of those cache misses.
 */
#define WRITER_PREFETCH_AHEAD 8

static inline void lcfs_writer_prefetch(const struct writer *w, uint32_t idx)
{
	const char *n;

	if (idx + WRITER_PREFETCH_AHEAD < w->n_inodes) {
		n = (const char *)w->inodes[idx + WRITER_PREFETCH_AHEAD].node;
		__builtin_prefetch(n);
		__builtin_prefetch(n + 64);
		__builtin_prefetch(n + 128);
	}
	if (idx + WRITER_PREFETCH_AHEAD / 2 < w->n_inodes) {
		n = w->inodes[idx + WRITER_PREFETCH_AHEAD / 2].node->payload;
		if (n != NULL)
			__builtin_prefetch(n);
	}
}

static inline uint64_t lcfs_round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

#endif /* _LCFS_EROFS_WRITER_H */
