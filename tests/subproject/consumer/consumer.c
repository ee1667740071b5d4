/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Builds a one-directory image in memory and reads its version back. */
#include <libcomposefs/lcfs-writer.h>

#include <stdio.h>

static size_t written;

static ssize_t count_cb(void *file, void *buf, size_t count)
{
	(void)file;
	(void)buf;
	written += count;
	return (ssize_t)count;
}

int main(void)
{
	struct lcfs_write_options_s opts = { 0 };
	struct lcfs_node_s *root = lcfs_node_new();

	if (root == NULL)
		return 1;
	lcfs_node_set_mode(root, S_IFDIR | 0755);
	opts.file_write_cb = count_cb;
	if (lcfs_write_to(root, &opts) != 0 || written == 0) {
		perror("lcfs_write_to");
		return 1;
	}
	lcfs_node_unref(root);
	printf("consumer: %zu-byte image\n", written);
	return 0;
}
