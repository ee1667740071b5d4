/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: the write path. A dumpfile that parses is written as an
 * image (W1), which must load; the loaded tree is written again (W2,
 * composefs-dump). W1 and W2 may differ legitimately: the reader drops
 * xattrs the writer keeps (user.overlay.whiteout and friends,
 * docs/image-format.md, "What the reader rebuilds") and makes the first
 * name of a hard-linked inode in depth-first order the real one, so one
 * more round is needed to reach the fixed point. From W2 on, both ways back
 * must give the very same image: load and write (composefs-dump), and
 * print, parse and write (composefs-info dump | mkcomposefs --from-file
 * with the image's version, docs/dumpfile.md, "Printing").
 *
 * The CONTENT length check is off so that mutations of the size field do
 * not hide everything behind one error (LCFS_PARSE_FLAGS_NO_CONTENT_CHECK).
 */
#include <string.h>

#include "fuzz.h"

#include "libcomposefs/lcfs-erofs.h"
#include "lcfs-tools.h"

static uint32_t image_version(const struct fuzz_buf *b)
{
	struct lcfs_erofs_header_s h;

	if (b->len < sizeof(h))
		fuzz_fail("an image of %zu bytes", b->len);
	memcpy(&h, b->data, sizeof(h));
	return le32toh(h.composefs_version);
}

static void same_image(const struct fuzz_buf *a, const struct fuzz_buf *b,
		       const char *how)
{
	if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
		fuzz_fail("%s gives a different image (%zu vs %zu bytes)", how, a->len,
			  b->len);
}

/* Loads @img, which must load, and writes it again with its own version. */
static struct lcfs_node_s *reload(const struct fuzz_buf *img, struct fuzz_buf *out)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root = lcfs_image_load(img->data, img->len, NULL, &err);
	uint32_t version = image_version(img);

	if (root == NULL)
		fuzz_fail("our own image does not load: %s", err.msg);
	fuzz_touch_tree(root);
	if (fuzz_write_image(root, version, version, out) < 0)
		fuzz_fail("a tree read from our own image cannot be written");
	if (image_version(out) != version)
		fuzz_fail("version %u became %u", version, image_version(out));
	return root;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_buf w1 = { 0 }, w2 = { 0 }, w3 = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root, *reparsed;
	char *text = NULL;
	size_t text_len = 0;
	FILE *f;

	root = lcfs_dump_parse_buf((const char *)data, size,
				   LCFS_PARSE_FLAGS_NO_CONTENT_CHECK, &err);
	if (root == NULL)
		return 0;
	if (fuzz_write_image(root, 0, LCFS_VERSION_MAX, &w1) < 0) {
		lcfs_node_unref(root);
		fuzz_buf_release(&w1);
		return 0;
	}
	lcfs_node_unref(root);

	lcfs_node_unref(reload(&w1, &w2));
	/* composefs-dump */
	root = reload(&w2, &w3);
	same_image(&w2, &w3, "image -> tree -> image");

	/* composefs-info dump | mkcomposefs --from-file */
	f = open_memstream(&text, &text_len);
	if (f == NULL)
		fuzz_fail("open_memstream: %s", strerror(errno));
	if (lcfs_dump_print(f, root) < 0 || fclose(f) != 0)
		fuzz_fail("printing a loaded image failed");
	reparsed = lcfs_dump_parse_buf(text, text_len, LCFS_PARSE_FLAGS_STRICT, &err);
	if (reparsed == NULL && fuzz_printout_too_long(&err))
		goto out;
	if (reparsed == NULL)
		fuzz_fail("the dump of our own image does not parse: line %lu: %s",
			  err.line, err.msg);
	/* With the image's version: the first round can turn a file into a
	 * whiteout (an input trusted.overlay.whiteout xattr), which the
	 * default versions would answer with version 1. */
	if (fuzz_write_image(reparsed, image_version(&w2), image_version(&w2), &w3) < 0)
		fuzz_fail("the dump of our own image cannot be written");
	same_image(&w2, &w3, "image -> dumpfile -> image");
	lcfs_node_unref(reparsed);
out:
	lcfs_node_unref(root);
	free(text);
	fuzz_buf_release(&w1);
	fuzz_buf_release(&w2);
	fuzz_buf_release(&w3);
	return 0;
}
