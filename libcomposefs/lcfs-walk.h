/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The one walk of a node tree (private to the library, tools, tests and
 * benchmarks): depth-first pre-order, children in the order the tree
 * keeps them (sorted by name), with an explicit stack so that the depth
 * of a tree is bounded by memory, not by the C stack.
 *
 *	struct lcfs_walk w;
 *	int r;
 *
 *	lcfs_walk_init(&w, root, LCFS_WALK_PATH);
 *	while ((r = lcfs_walk_next(&w)) > 0)
 *		use(w.node, w.path, w.depth);
 *	lcfs_walk_release(&w);
 *
 * The walk enters every node that has children, hard link entries
 * included (they have none in any tree the library makes). The tree must
 * not change during the walk, except below the current node before its
 * children are visited.
 */
#ifndef _LCFS_WALK_H
#define _LCFS_WALK_H

#include <stdbool.h>
#include <stddef.h>

struct lcfs_node_s;
struct lcfs_walk_frame;

enum {
	/* Build the path of every node in lcfs_walk.path. */
	LCFS_WALK_PATH = 1 << 0,
	/* Leave out hard link entries (only the nodes that own their data
	 * are visited, each once). */
	LCFS_WALK_NO_LINKS = 1 << 1,
};

struct lcfs_walk {
	/* The node lcfs_walk_next() stopped at: */
	struct lcfs_node_s *node;
	struct lcfs_node_s *parent; /* the directory it is in; NULL: the root */
	size_t depth;               /* 0 for the root, 1 for its children... */
	/* With LCFS_WALK_PATH: "/" for the root, else "/a/b" (raw names, no
	 * escaping), NUL-terminated, valid until the next call. */
	const char *path;
	size_t path_len;

	/* Private: */
	struct lcfs_node_s *root;
	unsigned flags;
	bool started, skip;
	struct lcfs_walk_frame *stack;
	size_t n_frames, cap;
	char *buf;
	size_t buf_cap;
};

/* Starts a walk of @root (flags LCFS_WALK_*). Allocates nothing. */
void lcfs_walk_init(struct lcfs_walk *w, struct lcfs_node_s *root, unsigned flags);

/* Moves to the next node: 1 (the fields above describe it), 0 when the
 * walk is over, -ENOMEM. */
int lcfs_walk_next(struct lcfs_walk *w);

/* The children of the current node are not visited. */
void lcfs_walk_skip(struct lcfs_walk *w);

/* Frees what the walk allocated; the walk may be left at any point. */
void lcfs_walk_release(struct lcfs_walk *w);

/* The whole walk with a callback: @fn is called at every node (it may
 * call lcfs_walk_skip()); a negative result stops the walk. Returns 0,
 * -ENOMEM, or the negative result of @fn. */
typedef int (*lcfs_walk_fn)(struct lcfs_walk *w, void *data);
int lcfs_walk_tree(struct lcfs_node_s *root, unsigned flags, lcfs_walk_fn fn,
		   void *data);

#endif /* _LCFS_WALK_H */
