/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * A client of the installed library, written against the installed headers
 * only (built with `pkg-config --cflags --libs composefs`): builds a small
 * tree, writes the image to memory, loads it back and checks what it reads.
 * Uses the names composefs 1.0.x programs use (enum lcfs_flags_t,
 * lcfs_erofs_flag_t). Exits 0 when everything matches.
 */
#include <libcomposefs/lcfs-erofs.h>
#include <libcomposefs/lcfs-mount.h>
#include <libcomposefs/lcfs-writer.h>

#include <stdio.h>
#include <string.h>

#include "check.h"

struct membuf {
	unsigned char data[1 << 16];
	size_t len;
};

static ssize_t write_cb(void *file, void *buf, size_t count)
{
	struct membuf *m = file;

	if (count > sizeof(m->data) - m->len) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(m->data + m->len, buf, count);
	m->len += count;
	return (ssize_t)count;
}

int main(void)
{
	static struct membuf img;
	struct lcfs_write_options_s opts;
	struct lcfs_node_s *root, *file, *dev, *loaded, *n;
	struct lcfs_erofs_header_s hdr;
	enum lcfs_flags_t flags = LCFS_FLAGS_NONE;
	lcfs_erofs_flag_t acl = LCFS_EROFS_FLAGS_HAS_ACL;
	const char *content = "hello\n";

	root = lcfs_node_new();
	REQUIRE(root != NULL);
	lcfs_node_set_mode(root, S_IFDIR | 0755);
	file = lcfs_node_new();
	REQUIRE(file != NULL);
	lcfs_node_set_mode(file, S_IFREG | 0644);
	lcfs_node_set_size(file, strlen(content));
	REQUIRE(lcfs_node_set_content(file, (const uint8_t *)content, strlen(content)) == 0);
	REQUIRE(lcfs_node_set_xattr(file, "user.k", "v", 1) == 0);
	REQUIRE(lcfs_node_add_child(root, file, "file") == 0);
	dev = lcfs_node_new();
	REQUIRE(dev != NULL);
	lcfs_node_set_mode(dev, S_IFCHR | 0600);
	lcfs_node_set_rdev64(dev, 0x0103);
	REQUIRE(lcfs_node_add_child(root, dev, "null") == 0);

	memset(&opts, 0, sizeof(opts));
	opts.format = LCFS_FORMAT_EROFS;
	opts.flags = flags;
	opts.file = &img;
	opts.file_write_cb = write_cb;
	REQUIRE(lcfs_write_to(root, &opts) == 0);
	REQUIRE(img.len > sizeof(hdr));
	memcpy(&hdr, img.data, sizeof(hdr));
	REQUIRE(hdr.magic == LCFS_EROFS_MAGIC);
	REQUIRE((hdr.flags & acl) == 0);

	loaded = lcfs_load_node_from_image(img.data, img.len);
	REQUIRE(loaded != NULL);
	REQUIRE(lcfs_node_get_n_children(loaded) == 2);
	n = lcfs_node_lookup_child(loaded, "file");
	REQUIRE(n != NULL && lcfs_node_get_size(n) == strlen(content));
	REQUIRE(lcfs_node_get_content(n) != NULL &&
	      memcmp(lcfs_node_get_content(n), content, strlen(content)) == 0);
	REQUIRE(lcfs_node_get_xattr(n, "user.k", NULL) != NULL);
	n = lcfs_node_lookup_child(loaded, "null");
	REQUIRE(n != NULL && lcfs_node_get_rdev64(n) == 0x0103);
	lcfs_node_unref(loaded);
	lcfs_node_unref(root);
	printf("abi-client: %zu-byte image written and read back\n", img.len);
	return 0;
}
