/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Writer unit tests on trees built through the API: the worked examples of
 * docs/image-format.md, "Worked examples" (image SHA-256 and fs-verity
 * digest), option checks and tree errors, and that writing leaves the tree
 * unchanged.
 */

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libcomposefs/lcfs-writer.h"

#include "check.h"
#include "writer-test.h"

static ssize_t fail_write(void *file, void *buf, size_t count)
{
	errno = ENOSPC;
	return -1;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static int write_mem(struct lcfs_node_s *root, struct membuf *m, uint8_t *digest,
		     uint32_t version, uint32_t max_version)
{
	struct lcfs_write_options_s o = { 0 };

	o.version = version;
	o.max_version = max_version;
	o.file = m;
	o.file_write_cb = mem_write;
	o.digest_out = digest;
	m->len = 0;
	return lcfs_write_to(root, &o);
}

static void check_sha(const struct membuf *m, const char *want)
{
	uint8_t d[32];
	char h[65];

	SHA256(m->data, m->len, d);
	hex(d, 32, h);
	if (strcmp(h, want) != 0)
		fprintf(stderr, "sha256 %s, want %s\n", h, want);
	CHECK(strcmp(h, want) == 0);
}

static void test_root_only(void)
{
	struct lcfs_node_s *root = mknode(NULL, NULL, S_IFDIR | 0755, 0);
	struct membuf m = { 0 };
	uint8_t digest[32];
	char h[65];

	CHECK(write_mem(root, &m, digest, 0, 1) == 0);
	CHECK(m.len == 16384);
	check_sha(&m, "c3dc5b0fc4afb0693a95e017fe5815e1f88f204d485df617541b5ea659aefb8b");
	hex(digest, 32, h);
	CHECK(strcmp(h, "8f589e8f57ecb88823736b0d857ddca1e1068a23e264fad164b28f7038eb3682") == 0);

	/* Short writes are retried; no callback still gives the digest. */
	{
		struct membuf m2 = { .max_chunk = 1000 };
		struct lcfs_write_options_s o = { .max_version = 1 };
		uint8_t d2[32];

		CHECK(write_mem(root, &m2, NULL, 0, 1) == 0);
		CHECK(m2.len == m.len && memcmp(m2.data, m.data, m.len) == 0);
		o.digest_out = d2;
		CHECK(lcfs_write_to(root, &o) == 0);
		CHECK(memcmp(d2, digest, 32) == 0);
		free(m2.data);
	}
	free(m.data);
	lcfs_node_unref(root);
}

static void test_example_2(void)
{
	struct lcfs_node_s *root = mknode(NULL, NULL, S_IFDIR | 0755, 100);
	struct lcfs_node_s *f = mknode(root, "f", S_IFREG | 0644, 100);
	struct lcfs_node_s *s = mknode(root, "s", S_IFLNK | 0777, 100);
	uint8_t digest[32];
	struct membuf m = { 0 };

	memset(digest, 0x11, sizeof(digest));
	lcfs_node_set_size(f, 10);
	CHECK(lcfs_node_set_payload(f, "ab/cdef") == 0);
	lcfs_node_set_fsverity_digest(f, digest);
	CHECK(lcfs_node_set_symlink_payload(s, "xyz") == 0);
	CHECK(write_mem(root, &m, NULL, 0, 1) == 0);
	check_sha(&m, "2d4ecd22093ba2dd20cf5f99cb5b390d4d6c8f87c5394e6119cab300b09500ae");
	/* The caller's tree is untouched by the rewrite. */
	CHECK(lcfs_node_get_n_xattr(f) == 0);
	CHECK(lcfs_node_get_n_children(root) == 2);
	free(m.data);
	lcfs_node_unref(root);
}

static void test_errors(void)
{
	struct lcfs_node_s *root = mknode(NULL, NULL, S_IFDIR | 0755, 0);
	struct lcfs_node_s *file = mknode(NULL, NULL, S_IFREG | 0644, 0);
	struct lcfs_write_options_s o = { 0 };
	struct lcfs_node_s *bad, *a, *b;
	struct membuf m = { 0 };

	o.version = 2;
	errno = 0;
	CHECK(lcfs_write_to(root, &o) == -1 && errno == EINVAL);
	o.version = 0;
	o.format = 1;
	CHECK(lcfs_write_to(root, &o) == -1 && errno == EINVAL);
	o.format = 0;
	o.flags = 1;
	CHECK(lcfs_write_to(root, &o) == -1 && errno == EINVAL);
	o.flags = 0;

	/* max_version is raised to version. */
	o.version = 1;
	o.max_version = 0;
	CHECK(lcfs_write_to(root, &o) == 0 && o.max_version == 1);

	CHECK(lcfs_write_to(file, &o) == -1 && errno == ENOTDIR);

	o.file_write_cb = fail_write;
	CHECK(lcfs_write_to(root, &o) == -1 && errno == ENOSPC);

	/* A child that was never given a mode. */
	bad = lcfs_node_new();
	CHECK(lcfs_node_add_child(root, bad, "bad") == 0);
	CHECK(write_mem(root, &m, NULL, 0, 1) == -1 && errno == EINVAL);
	lcfs_node_set_mode(bad, S_IFREG | 0644);
	/* Too many chunks. */
	lcfs_node_set_size(bad, 9500000000000000ULL);
	CHECK(write_mem(root, &m, NULL, 0, 1) == -1 && errno == EFBIG);
	lcfs_node_set_size(bad, 1ULL << 53);
	CHECK(write_mem(root, &m, NULL, 0, 1) == 0);

	/* Hard link cycle. */
	a = mknode(root, "a", S_IFREG | 0644, 0);
	b = mknode(root, "b", S_IFREG | 0644, 0);
	lcfs_node_make_hardlink(a, b);
	lcfs_node_make_hardlink(b, a);
	CHECK(write_mem(root, &m, NULL, 0, 1) == -1 && (errno == ELOOP || errno == EINVAL));

	free(m.data);
	lcfs_node_unref(root);
	lcfs_node_unref(file);
}

static void test_version_bump(void)
{
	struct lcfs_node_s *root = mknode(NULL, NULL, S_IFDIR | 0755, 0);
	struct lcfs_node_s *d = mknode(root, "d", S_IFDIR | 0755, 0);
	struct lcfs_write_options_s o = { .max_version = 1 };
	struct membuf m = { 0 };

	mknode(d, "wh", S_IFCHR | 0644, 0);
	o.file = &m;
	o.file_write_cb = mem_write;
	CHECK(lcfs_write_to(root, &o) == 0 && o.version == 1);
	CHECK(m.len > 16 && m.data[12] == 1);
	o.version = 0;
	o.max_version = 0;
	m.len = 0;
	CHECK(lcfs_write_to(root, &o) == 0 && o.version == 0);
	CHECK(m.data[12] == 0);
	free(m.data);
	lcfs_node_unref(root);
}

int main(void)
{
	TEST_CASE(test_root_only);
	TEST_CASE(test_example_2);
	TEST_CASE(test_errors);
	TEST_CASE(test_version_bump);
	return test_summary("test-writer");
}
