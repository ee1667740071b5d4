/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Shared by the C tests that write images: an in-memory image sink for
 * lcfs_write_to() and a node maker. Include once, from the test's own
 * source file.
 */
#ifndef _COMPOSEFS_WRITER_TEST_H
#define _COMPOSEFS_WRITER_TEST_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libcomposefs/lcfs-writer.h"

struct membuf {
	uint8_t *data;
	size_t len, cap;
	size_t max_chunk;
};

static inline ssize_t mem_write(void *file, void *buf, size_t count)
{
	struct membuf *m = file;

	if (m->max_chunk && count > m->max_chunk)
		count = m->max_chunk; /* exercise short writes */
	if (m->len + count > m->cap) {
		m->cap = (m->len + count) * 2;
		m->data = realloc(m->data, m->cap);
		if (m->data == NULL)
			abort();
	}
	memcpy(m->data + m->len, buf, count);
	m->len += count;
	return count;
}

static inline struct lcfs_node_s *mknode(struct lcfs_node_s *parent, const char *name,
				  uint32_t mode, int64_t mtime)
{
	struct lcfs_node_s *n = lcfs_node_new();
	struct timespec ts = { .tv_sec = mtime };

	if (n == NULL)
		abort();
	lcfs_node_set_mode(n, mode);
	lcfs_node_set_mtime(n, &ts);
	if (parent != NULL && lcfs_node_add_child(parent, n, name) < 0)
		abort();
	return n;
}

#endif
