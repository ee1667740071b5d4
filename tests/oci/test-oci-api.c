/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The public API of lcfs-oci.h, linked against the shared library (so the
 * symbols must be exported): a tree from a tar stream written here with
 * libarchive, the errno and message of refused input, and the OCI entry
 * point's errors.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcomposefs/lcfs-oci.h>

#include "check.h"
#include "tar-tmp.h"

struct item {
	const char *path;
	mode_t mode;
	const char *data;
	const char *hardlink;
};

/* An unnamed temporary file holding a PAX tar of @items. */
static int make_tar(const struct item *items, size_t n)
{
	int fd;
	struct archive *a = tar_tmp_new(&fd);

	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = items[i].data ? strlen(items[i].data) : 0;

		archive_entry_set_pathname(e, items[i].path);
		archive_entry_set_mode(e, items[i].mode);
		archive_entry_set_uid(e, 1000 + (unsigned)i);
		archive_entry_set_mtime(e, 1700000000, 5);
		if (items[i].hardlink != NULL)
			archive_entry_set_hardlink(e, items[i].hardlink);
		else
			archive_entry_set_size(e, (la_int64_t)len);
		archive_entry_xattr_add_entry(e, "user.k", "v", 1);
		archive_write_header(a, e);
		if (len > 0)
			archive_write_data(a, items[i].data, len);
		archive_entry_free(e);
	}
	return tar_tmp_finish(a, fd);
}

static void test_tree(void)
{
	static const struct item items[] = {
		{ "./d/", S_IFDIR | 0750, NULL, NULL },
		{ "d/small", S_IFREG | 0644, "small file", NULL },
		{ "d/large", S_IFREG | 0600,
		  "0123456789012345678901234567890123456789012345678901234567890123456789",
		  NULL },
		{ "link", S_IFREG | 0644, NULL, "d/large" },
	};
	int fd = make_tar(items, 4);
	char *msg = (char *)"unset";
	struct lcfs_node_s *root, *d, *n;
	struct timespec ts;
	size_t len;

	root = lcfs_load_node_from_tar(fd, NULL, &msg);
	CHECK(root != NULL);
	CHECK(msg == NULL);
	if (root == NULL)
		return;
	CHECK(lcfs_node_dirp(root));
	CHECK(lcfs_node_get_mode(root) == (S_IFDIR | 0755)); /* default */
	d = lcfs_node_lookup_child(root, "d");
	CHECK(d != NULL && lcfs_node_get_mode(d) == (S_IFDIR | 0750));
	n = d ? lcfs_node_lookup_child(d, "small") : NULL;
	CHECK(n != NULL && lcfs_node_get_content(n) != NULL &&
	      memcmp(lcfs_node_get_content(n), "small file", 10) == 0);
	CHECK(n != NULL && lcfs_node_get_uid(n) == 1001);
	CHECK(n != NULL && lcfs_node_get_xattr(n, "user.k", &len) != NULL && len == 1);
	if (n != NULL) {
		lcfs_node_get_mtime(n, &ts);
		CHECK(ts.tv_sec == 1700000000 && ts.tv_nsec == 5);
	}
	n = d ? lcfs_node_lookup_child(d, "large") : NULL;
	CHECK(n != NULL && lcfs_node_get_content(n) == NULL &&
	      lcfs_node_get_fsverity_digest(n) != NULL && lcfs_node_get_payload(n) != NULL &&
	      strlen(lcfs_node_get_payload(n)) == 65 && lcfs_node_get_nlink(n) == 2);
	n = lcfs_node_lookup_child(root, "link");
	CHECK(n != NULL && lcfs_node_get_hardlink_target(n) != NULL);
	lcfs_node_unref(root);
	close(fd);
}

static void test_errors(void)
{
	static const struct item bad[] = {
		{ "a/../../escape", S_IFREG | 0644, "x", NULL },
	};
	struct lcfs_oci_options_s opts = { .flags = LCFS_BUILD_BY_DIGEST };
	int fd = make_tar(bad, 1);
	char *msg = NULL;

	errno = 0;
	CHECK(lcfs_load_node_from_tar(fd, NULL, &msg) == NULL);
	CHECK(errno == EINVAL);
	CHECK(msg != NULL && strstr(msg, "a/../../escape") != NULL &&
	      strstr(msg, "outside the tree") != NULL);
	free(msg);
	msg = NULL;
	lseek(fd, 0, SEEK_SET);
	CHECK(lcfs_load_node_from_tar(fd, &opts, NULL) == NULL && errno == EINVAL);
	close(fd);

	errno = 0;
	CHECK(lcfs_load_node_from_oci("/nonexistent/layout", NULL, NULL, &msg) == NULL);
	CHECK(errno == ENOENT);
	CHECK(msg != NULL && strstr(msg, "/nonexistent/layout") != NULL);
	free(msg);
	msg = NULL;
	CHECK(lcfs_load_node_from_oci(".", "ref", NULL, &msg) == NULL);
	CHECK(msg != NULL && strstr(msg, "index.json") != NULL);
	free(msg);
	errno = 0;
	CHECK(lcfs_load_node_from_oci(NULL, NULL, NULL, NULL) == NULL && errno == EINVAL);
}

int main(void)
{
	TEST_CASE(test_tree);
	TEST_CASE(test_errors);
	return test_summary("test-oci-api");
}
