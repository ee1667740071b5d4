/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The in-memory tree (lcfs-node.c): struct lcfs_node_s, the shared xattr
 * entries and the node operations the parsers, the scanner, the reader and
 * the writer use beyond the public API.
 */
#ifndef _LCFS_NODE_H
#define _LCFS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "libcomposefs/lcfs-writer.h"

#define LCFS_MAX_NAME_LENGTH 255
#define LCFS_MAX_PAYLOAD 4095   /* payload must be shorter than 4096 */
#define LCFS_MAX_XATTR_NAME 255
#define LCFS_MAX_XATTR_VALUE 65535

/* ---- Xattrs -------------------------------------------------------------- */

/*
 * An xattr entry is immutable and reference counted, so that parsers can
 * share one entry between many nodes (an SELinux label used by every file
 * costs one allocation). data = key bytes, NUL, value bytes, NUL.
 */
struct lcfs_xattr {
	uint32_t ref;
	uint32_t hash;      /* lcfs_xattr_hash() of key and value */
	uint8_t key_len;    /* 1..255 */
	bool in_slab;       /* allocated from a slab (lcfs-slab.c) */
	uint16_t value_len; /* 0..65535 */
	char data[];
};

static inline const char *lcfs_xattr_key(const struct lcfs_xattr *x)
{
	return x->data;
}

static inline const char *lcfs_xattr_value(const struct lcfs_xattr *x)
{
	return x->data + x->key_len + 1;
}

/* Hash of a (key, value) pair, as stored in lcfs_xattr.hash. */
uint32_t lcfs_xattr_hash(const char *key, size_t key_len, const char *value,
			 size_t value_len);

/* New entry with one reference. Validates nothing but lengths: -ERANGE for
 * an empty key or a key over 255 bytes, -EINVAL for a value over 65535
 * bytes. Returns NULL and sets *@errp (-errno) on failure. */
struct lcfs_xattr *lcfs_xattr_new(const char *key, size_t key_len,
				  const char *value, size_t value_len, int *errp);
struct lcfs_xattr *lcfs_xattr_ref(struct lcfs_xattr *x);
void lcfs_xattr_unref(struct lcfs_xattr *x);

/*
 * A set of xattr entries keyed by (key, value), so that a parser or loader
 * can give identical pairs one shared entry. Zero-initialise; the set
 * holds one reference to each entry.
 */
struct lcfs_slab;
struct lcfs_xattr_intern {
	struct lcfs_xattr **slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
	/* When set, new entries are carved out of it instead of malloc'd:
	 * a million distinct values (an IMA signature on every file) then
	 * cost no malloc header each and are freed a chunk at a time. */
	struct lcfs_slab *slab;
};

/* The entry for (@key, @value), created on first use (borrowed: take a
 * reference to keep it). NULL with -errno in *@errp (lcfs_xattr_new's
 * errors, -ENOMEM). */
struct lcfs_xattr *lcfs_xattr_intern_get(struct lcfs_xattr_intern *t,
					 const char *key, size_t key_len,
					 const char *value, size_t value_len,
					 int *errp);
void lcfs_xattr_intern_release(struct lcfs_xattr_intern *t);

/* Budget cost of one xattr (docs/dumpfile.md, "Extended attributes"). */
static inline size_t lcfs_xattr_cost(size_t key_len, size_t value_len)
{
	return LCFS_INODE_XATTRMETA_SIZE + 3 + key_len + value_len;
}
#define LCFS_XATTR_BUDGET_HEADER 12

/* ---- Nodes --------------------------------------------------------------- */

struct lcfs_node_s {
	/* Packed so that a node is one 160-byte malloc chunk: a tree of a
	 * million entries is mostly nodes. */
	uint32_t ref;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;       /* 32-bit (docs/image-format.md, "The node model") */
	uint32_t mtime_nsec;
	uint32_t n_children;
	/* Scratch space for the code that builds a tree, on the tree it is
	 * building only, left zero: a hard-link identity index (the
	 * directory scanner and the tar importer), an entry's line (the
	 * dumpfile parser), the new index in lcfs_node_arena_move(). Nothing
	 * that reads a tree (writer, clone, printer) may write it: readers of
	 * one tree run concurrently. */
	uint32_t scratch;
	uint16_t n_xattrs;
	bool digest_set : 1;
	bool link_loop : 1;  /* make_hardlink() was asked to create a cycle */
	bool destroying : 1; /* queued in node_destroy()'s work list */
	bool children_unsorted : 1; /* see lcfs_node_append_child_n() */
	/* Allocated from a slab (lcfs-slab.c), not by malloc(). */
	bool in_slab : 1;
	bool name_in_slab : 1;
	bool payload_in_slab : 1;
	/* The dumpfile parser indexed this directory's entries by name
	 * (lcfs-dump-parse.c); on its tree only, while it builds it. */
	bool name_indexed : 1;
	/* strlen(name): names are at most LCFS_MAX_NAME_LENGTH (255) bytes.
	 * Set with the name by the children functions of lcfs-node.c. */
	uint8_t name_len;

	int64_t mtime_sec;
	uint64_t size;
	char *name;                  /* NULL for a root or detached node */
	struct lcfs_node_s *parent;  /* not a reference */
	/* Sorted by name, references; capacity is the power of two >= 4
	 * above n_children. */
	struct lcfs_node_s **children;
	/* References. Points at xattr_inline while there is at most one
	 * entry (the common case), else at an array whose capacity is the
	 * power of two >= 2 above n_xattrs. */
	struct lcfs_xattr **xattrs;
	struct lcfs_xattr *xattr_inline;
	struct lcfs_node_s *link_to; /* hard link target, a reference */
	char *payload;               /* NUL-terminated, < 4096 bytes */
	uint8_t *content;            /* @size bytes when non-NULL */
	uint8_t digest[LCFS_DIGEST_SIZE];
};

static inline bool lcfs_mode_valid(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

/* ---- Slabs (lcfs-slab.c) -------------------------------------------------- */

/* A bump allocator of strings (names, payloads) for one parser, packed
 * without alignment.
 * Zero-initialise; lcfs_slab_done() when no more objects are needed (the
 * objects live on until each is released). */
struct lcfs_slab {
	void *chunk;
	char *cur;
	char *end;
	size_t n_chunks; /* chunks taken so far */
};

/* A NUL-terminated copy of @len bytes of @str, or NULL (no memory, or
 * @len over about two megabytes). */
char *lcfs_slab_strndup(struct lcfs_slab *s, const char *str, size_t len);
/* @size bytes aligned to 8, uninitialised, or NULL (as above). */
void *lcfs_slab_alloc(struct lcfs_slab *s, size_t size);
/* Releases one object of any slab (NULL: nothing). */
void lcfs_slab_release(void *p);
void lcfs_slab_done(struct lcfs_slab *s);

/* Releases of slab objects counted by one thread while another may
 * release objects of the same chunks, done later by one of them (a
 * chunk's count is not atomic). Zero-initialise. */
struct lcfs_slab_tally {
	struct lcfs_slab_tally_slot *slots;
	size_t mask;
	size_t n;
};

/* Counts a release of @p; false without memory (nothing counted). */
bool lcfs_slab_tally_add(struct lcfs_slab_tally *t, void *p);
/* Does the counted releases and empties @t. */
void lcfs_slab_tally_apply(struct lcfs_slab_tally *t);

/* Chunks mapped by this process and not yet unmapped. */
size_t lcfs_slab_chunks_mapped(void);

/* Nodes of one parser, all of the same size, in chunks that can be
 * indexed. Zero-initialise. */
struct lcfs_node_arena {
	void **chunks;
	size_t n_chunks;
	size_t chunks_cap;
	size_t n_nodes;
};

/* Like lcfs_node_new(), from @a; NULL without memory. */
struct lcfs_node_s *lcfs_node_arena_new(struct lcfs_node_arena *a);

/* When the tree at *@rootp is made of exactly the nodes of @a (each once,
 * hard links among them), moves the nodes in memory to the order the
 * image writer visits them (breadth first, children in name order) and
 * updates *@rootp. First @visit is called on each node in that order, at
 * its old place and with its pointers as they were. Nothing outside the
 * tree may point at its nodes. @n_parts is 1 or 2: with 2, the second
 * half of the nodes is visited on another thread, with @data[1] (the
 * first with @data[0]), at the same time as the first half; @visit may
 * then touch nothing but its node and its data. Returns 1 when the nodes
 * moved, 0 when all is left as it is (not such a tree), -ENOMEM (nothing
 * moved). */
int lcfs_node_arena_move(struct lcfs_node_arena *a, struct lcfs_node_s **rootp,
			 void (*visit)(struct lcfs_node_s *node, void *data),
			 void *const *data, size_t n_parts);

/* Where lcfs_node_arena_relocate() copies names and payloads: one of
 * each per part of the move. Zero-initialise; lcfs_slab_done() both. */
struct lcfs_relocated {
	struct lcfs_slab names;
	struct lcfs_slab payloads;
};

#define LCFS_RELOCATE_PARTS 2

/* lcfs_node_arena_move(), copying the names and payloads of the nodes
 * into @out in their new order, on two threads for a large tree when
 * there are two CPUs (lcfs-node.c). */
int lcfs_node_arena_relocate(struct lcfs_node_arena *a, struct lcfs_node_s **rootp,
			     struct lcfs_relocated out[LCFS_RELOCATE_PARTS]);

/* Drops the arena's own hold on its chunks (the nodes live on). */
void lcfs_node_arena_done(struct lcfs_node_arena *a);

/* Frees @node's name, wherever it was allocated, and clears it. */
void lcfs_node_release_name(struct lcfs_node_s *node);

/* Child named @name (@name_len bytes, need not be NUL-terminated) or NULL.
 * Binary search. */
struct lcfs_node_s *lcfs_node_lookup_child_n(struct lcfs_node_s *node,
					     const char *name, size_t name_len);

/* Like lcfs_node_add_child() with the internal error convention; @name is
 * @name_len bytes. Appending in sorted order is O(1). */
int lcfs_node_add_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			  const char *name, size_t name_len);

/* Like lcfs_node_add_child_n(), but appends @child whatever its name and
 * does not look for a duplicate (lcfs_node_sort_children() reports them),
 * so that children given in any order cost O(1) each instead of a move of
 * the array. A child out of order marks @parent unsorted: until
 * lcfs_node_sort_children(), lookups in @parent are wrong and the tree
 * must not be handed to anything but lcfs_node_unref(). For the dumpfile
 * parser, which finds names through its own index when it must. */
int lcfs_node_append_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			     const char *name, size_t name_len);

/* lcfs_node_add_child_n() and lcfs_node_append_child_n() with the name
 * copied into @names (NULL: malloc'd). */
int lcfs_node_add_child_in(struct lcfs_slab *names, struct lcfs_node_s *parent,
			   struct lcfs_node_s *child, const char *name,
			   size_t name_len, bool append);

/* Moves the children of @from (with their array) to @to, which has none. */
void lcfs_node_take_children(struct lcfs_node_s *to, struct lcfs_node_s *from);

/* Sorts the children of @node by name if lcfs_node_append_child_n() left
 * them out of order. *@buf (*@buf_size bytes) is scratch space the
 * caller keeps from one call to the next and frees at the end; without
 * memory to grow it the sort is slower, never wrong. Returns true when two
 * of the children it sorted have the same name. */
bool lcfs_node_sort_children(struct lcfs_node_s *node, void **buf, size_t *buf_size);

/* Sets an xattr entry on @node, taking a new reference to @x (the caller
 * keeps its own). Replaces an entry with the same key (the new one goes to
 * the end). Budget checked as lcfs_node_set_xattr(): -ERANGE. */
int lcfs_node_set_xattr_entry(struct lcfs_node_s *node, struct lcfs_xattr *x);

/* Internal version of lcfs_node_set_xattr(): 0 or -errno. */
int lcfs_node_set_xattr_n(struct lcfs_node_s *node, const char *key,
			  size_t key_len, const char *value, size_t value_len);

/* Takes ownership of @payload (malloc'd, NUL-terminated, length checked by
 * the caller) and replaces the current payload. */
void lcfs_node_take_payload(struct lcfs_node_s *node, char *payload);

/* Sets a copy of @payload (@len bytes, length checked by the caller) made
 * in @slab. 0 or -ENOMEM. */
int lcfs_node_set_payload_in(struct lcfs_slab *slab, struct lcfs_node_s *node,
			     const char *payload, size_t len);

/* Takes ownership of @content (malloc'd, @len bytes, 1..5000) and sets
 * size = @len. */
void lcfs_node_take_content(struct lcfs_node_s *node, uint8_t *content,
			    size_t len);

/* Final target of a hard link chain (the node itself if not a link), or
 * NULL if the chain loops. */
struct lcfs_node_s *lcfs_node_resolve_link(struct lcfs_node_s *node);

/* Full path of @node from the root ("/" for the root), malloc'd, or NULL. */
char *lcfs_node_path(struct lcfs_node_s *node);

/* Removes the child at index @i of @parent: it is detached (name and
 * parent cleared) and the parent's reference dropped. */
void lcfs_node_remove_child_at(struct lcfs_node_s *parent, size_t i);

/* Removes the child named @name (@name_len bytes) of @parent as above.
 * 0 or -ENOENT. */
int lcfs_node_remove_child_n(struct lcfs_node_s *parent, const char *name,
			     size_t name_len);

#endif /* _LCFS_NODE_H */
