/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The iterative pre-order walk of a node tree (lcfs-walk.h).
 */
#include "lcfs-walk.h"
#include "lcfs-node.h"
#include "lcfs-util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A directory whose children are being visited. */
struct lcfs_walk_frame {
	struct lcfs_node_s *dir;
	size_t next;     /* index of the next child */
	size_t path_len; /* length of its path, 0 for the root */
};

void lcfs_walk_init(struct lcfs_walk *w, struct lcfs_node_s *root, unsigned flags)
{
	memset(w, 0, sizeof(*w));
	w->root = root;
	w->flags = flags;
}

void lcfs_walk_skip(struct lcfs_walk *w)
{
	w->skip = true;
}

void lcfs_walk_release(struct lcfs_walk *w)
{
	free(w->stack);
	free(w->buf);
	w->stack = NULL;
	w->buf = NULL;
	w->path = NULL;
}

/* Makes the path buffer hold @len bytes and a NUL. */
static int reserve_path(struct lcfs_walk *w, size_t len)
{
	size_t cap = w->buf_cap ? w->buf_cap : 256;
	char *p;

	if (len < w->buf_cap)
		return 0;
	while (cap <= len)
		cap *= 2;
	p = realloc(w->buf, cap);
	if (p == NULL)
		return -ENOMEM;
	w->buf = p;
	w->buf_cap = cap;
	return 0;
}

/* Enters the current node: its children come next. */
static int push(struct lcfs_walk *w)
{
	struct lcfs_walk_frame *s = lcfs_array_reserve(w->stack, w->n_frames, &w->cap,
						       sizeof(*s), 16);

	if (s == NULL)
		return -ENOMEM;
	w->stack = s;
	w->stack[w->n_frames++] = (struct lcfs_walk_frame){
		.dir = w->node,
		.next = 0,
		.path_len = w->depth == 0 ? 0 : w->path_len,
	};
	return 0;
}

int lcfs_walk_next(struct lcfs_walk *w)
{
	int r;

	if (!w->started) {
		w->started = true;
		w->node = w->root;
		w->parent = NULL;
		w->depth = 0;
		if (w->flags & LCFS_WALK_PATH) {
			r = reserve_path(w, 1);
			if (r < 0)
				return r;
			memcpy(w->buf, "/", 2);
			w->path = w->buf;
			w->path_len = 1;
		}
		return 1;
	}
	if (w->node == NULL)
		return 0;
	if (!w->skip && w->node->n_children > 0) {
		r = push(w);
		if (r < 0)
			return r;
	}
	w->skip = false;
	while (w->n_frames > 0) {
		struct lcfs_walk_frame *f = &w->stack[w->n_frames - 1];
		struct lcfs_node_s *child;

		if (f->next >= f->dir->n_children) {
			w->n_frames--;
			continue;
		}
		child = f->dir->children[f->next++];
		if ((w->flags & LCFS_WALK_NO_LINKS) && child->link_to != NULL)
			continue;
		w->node = child;
		w->parent = f->dir;
		w->depth = w->n_frames;
		if (w->flags & LCFS_WALK_PATH) {
			size_t name_len = strlen(child->name);
			size_t len = f->path_len + 1 + name_len;

			r = reserve_path(w, len);
			if (r < 0)
				return r;
			w->buf[f->path_len] = '/';
			memcpy(w->buf + f->path_len + 1, child->name, name_len + 1);
			w->path = w->buf;
			w->path_len = len;
		}
		return 1;
	}
	w->node = NULL;
	w->parent = NULL;
	return 0;
}

int lcfs_walk_tree(struct lcfs_node_s *root, unsigned flags, lcfs_walk_fn fn,
		   void *data)
{
	struct lcfs_walk w;
	int r;

	lcfs_walk_init(&w, root, flags);
	while ((r = lcfs_walk_next(&w)) > 0) {
		r = fn(&w, data);
		if (r < 0)
			break;
	}
	lcfs_walk_release(&w);
	return r < 0 ? r : 0;
}
