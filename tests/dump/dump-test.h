/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Small helpers shared by the dumpfile tests. */
#ifndef DUMP_TEST_H
#define DUMP_TEST_H

#include "lcfs-node.h"
#include "lcfs-tools.h"

#include <stdio.h>
#include <string.h>

static int failures;
static int checks;

#define CHECK(cond)                                                              \
	do {                                                                     \
		checks++;                                                        \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,  \
				__LINE__, #cond);                                \
			failures++;                                              \
		}                                                                \
	} while (0)

#define CHECK_STR(got, want)                                                     \
	do {                                                                     \
		const char *g_ = (got), *w_ = (want);                            \
		checks++;                                                        \
		if (g_ == NULL || strcmp(g_, w_) != 0) {                         \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n",       \
				__FILE__, __LINE__, g_ ? g_ : "(null)", w_);      \
			failures++;                                              \
		}                                                                \
	} while (0)

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

static inline int test_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, checks - failures, failures);
	return failures ? 1 : 0;
}

#endif
