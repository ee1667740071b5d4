// SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
// A C++ client of the installed library (installed headers only): without
// extern "C" in the headers, the calls below would not link.
#include <libcomposefs/lcfs-erofs.h>
#include <libcomposefs/lcfs-mount.h>
#include <libcomposefs/lcfs-writer.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static ssize_t write_cb(void *file, void *buf, size_t count)
{
	auto *out = static_cast<std::vector<uint8_t> *>(file);
	auto *p = static_cast<const uint8_t *>(buf);
	out->insert(out->end(), p, p + count);
	return static_cast<ssize_t>(count);
}

int main()
{
	std::vector<uint8_t> img;
	const std::string target = "/some/where";

	lcfs_node_s *root = lcfs_node_new();
	lcfs_node_s *link = lcfs_node_new();
	if (root == nullptr || link == nullptr)
		return 1;
	lcfs_node_set_mode(root, S_IFDIR | 0755);
	lcfs_node_set_mode(link, S_IFLNK | 0777);
	if (lcfs_node_set_payload(link, target.c_str()) != 0 ||
	    lcfs_node_add_child(root, link, "link") != 0)
		return 1;

	lcfs_write_options_s opts{};
	opts.format = LCFS_FORMAT_EROFS;
	opts.flags = LCFS_FLAGS_NONE;
	opts.file = &img;
	opts.file_write_cb = write_cb;
	if (lcfs_write_to(root, &opts) != 0) {
		std::perror("lcfs_write_to");
		return 1;
	}
	lcfs_node_s *loaded = lcfs_load_node_from_image(img.data(), img.size());
	lcfs_node_s *n = loaded ? lcfs_node_lookup_child(loaded, "link") : nullptr;
	if (n == nullptr || lcfs_node_get_payload(n) == nullptr ||
	    target != lcfs_node_get_payload(n)) {
		std::fprintf(stderr, "abi-client-cpp: symlink not read back\n");
		return 1;
	}
	lcfs_node_unref(loaded);
	lcfs_node_unref(root);
	std::printf("abi-client-cpp: %zu-byte image written and read back\n", img.size());
	return 0;
}
