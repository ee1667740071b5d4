/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Helpers of the dumpfile tests (tests/dump). */
#ifndef _COMPOSEFS_TEST_DUMP_UTIL_H
#define _COMPOSEFS_TEST_DUMP_UTIL_H

#include "lcfs-node.h"
#include "lcfs-tools.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

static inline struct lcfs_node_s *parse_str(const char *s, unsigned flags,
					    struct lcfs_error *err)
{
	return lcfs_dump_parse_buf(s, strlen(s), flags, err);
}

/* Prints @root to a malloc'd string (NULL on failure). */
static inline char *print_str(struct lcfs_node_s *root)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	int r;

	if (f == NULL)
		return NULL;
	r = lcfs_dump_print(f, root);
	if (fclose(f) != 0 || r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Reference cycles between hard link entries keep their nodes alive after
 * the tree is released; tests that build one cut it first. */
static inline void cut_link_cycles(struct lcfs_node_s *n)
{
	struct lcfs_node_s *root = n;

	n->scratch = 0;
	while (n != NULL) {
		if (n->scratch < n->n_children) {
			struct lcfs_node_s *c = n->children[n->scratch++];

			c->scratch = 0;
			n = c;
			continue;
		}
		if (n->link_to != NULL && lcfs_node_resolve_link(n) == NULL) {
			struct lcfs_node_s *t = n->link_to;

			n->link_to = NULL;
			lcfs_node_unref(t);
		}
		n = n == root ? NULL : n->parent;
	}
}

#endif
