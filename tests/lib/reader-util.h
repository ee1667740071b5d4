/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Helpers of the image reader tests (tests/reader). */
#ifndef _COMPOSEFS_TEST_READER_UTIL_H
#define _COMPOSEFS_TEST_READER_UTIL_H

#include "lcfs-node.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"

#include "check.h"

/* $COMPOSEFS_SHARED, or exits 77 (skip) with the reason. */
const char *test_shared_dir(void);

/* Whole file (gunzipped when the name ends in .gz), malloc'd; exits 99 on
 * error. NULL if the file does not exist. */
uint8_t *test_read_file(const char *path, size_t *len);

/* Node at @path ("/a/b") below @root, or NULL. */
struct lcfs_node_s *test_lookup(struct lcfs_node_s *root, const char *path);

/* Number of nodes in the tree (root included), iteratively. */
size_t test_count_nodes(struct lcfs_node_s *root);

/* Reads every attribute, name, payload, content byte and xattr of every
 * node, so that the sanitizers see any bad memory; returns a checksum. */
uint64_t test_touch_tree(struct lcfs_node_s *root);

/* Loads and requires failure with @err and a message containing @substr
 * (NULL: any message). @what names the case in failure reports. */
void test_expect_error(const uint8_t *data, size_t size, const char *const *toplevel,
		       int err, const char *substr, const char *what);

#endif
