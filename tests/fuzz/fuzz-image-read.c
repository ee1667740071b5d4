/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: the image reader (lcfs-erofs-read.c) and everything the
 * tools do with what it returns.
 *
 * The walks of composefs-info's subcommands are static functions of the
 * tool, so the tool's own source is compiled in here (its main() renamed
 * and unused): the code fuzzed is exactly the code that ships.
 *
 * For an image that loads: every node is read, the tree is cloned, printed
 * as a dumpfile, listed (ls) and its objects collected; a filtered load
 * must succeed too; and the tree is written again as composefs-dump does:
 * that image must load, and after one round write back to the same bytes.
 */
#include "fuzz.h"

#include <fcntl.h>
#include <sys/mman.h>

#include "libcomposefs/lcfs-erofs.h"

int composefs_info_main(int argc, char **argv);
#define main composefs_info_main
#include "composefs-info.c"
#include "lcfs-node.h"
#include "lcfs-tools.h"
#undef main

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* ls and objects print on stdout. */
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
		fuzz_fail("cannot send stdout to /dev/null");
	close(fd);
	return 0;
}

/* The walks composefs-info runs for ls, objects and dump. */
static void info_walks(struct lcfs_node_s *root)
{
	struct objects objs = { 0 };
	int r;

	if (lcfs_walk_tree(root, LCFS_WALK_PATH, ls_node, NULL) < 0)
		fuzz_fail("ls walk failed");
	r = lcfs_walk_tree(root, 0, collect_object, &objs);
	if (r < 0)
		fuzz_fail("objects walk failed: %s", strerror(-r));
	print_objects(&objs, -1);
	objects_free(&objs);
	if (lcfs_dump_print(fuzz_null_stream(), root) < 0)
		fuzz_fail("dump failed");
	fflush(stdout);
}

/* A filter naming the first root child (when there is one) and a name
 * that is not there: a subset of an image that loads must load. */
static void filtered_load(const uint8_t *data, size_t size, struct lcfs_node_s *root)
{
	const char *names[3] = { "no/such/entry", NULL, NULL };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *sub;

	if (root->n_children > 0)
		names[1] = root->children[0]->name;
	sub = lcfs_image_load(data, size, names, &err);
	if (sub == NULL)
		fuzz_fail("the image loads but not with a filter: %s", err.msg);
	if (sub->n_children > (names[1] != NULL))
		fuzz_fail("the filter let %u entries through", sub->n_children);
	fuzz_touch_tree(sub);
	lcfs_node_unref(sub);
}

/* Loads @img, which our writer made: it must load, and be written again
 * with @version. */
static struct lcfs_node_s *reload(const struct fuzz_buf *img, uint32_t version,
				  struct fuzz_buf *out)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root = lcfs_image_load(img->data, img->len, NULL, &err);

	if (root == NULL)
		fuzz_fail("our own image does not load: %s", err.msg);
	if (fuzz_write_image(root, version, version, out) < 0)
		fuzz_fail("a tree read from our own image cannot be written");
	return root;
}

/*
 * composefs-dump: write the tree with the image's own version. The result
 * must load and, from the second round on, write back to the same bytes.
 * The first round may change the image: a crafted image can hold what the
 * writer normalises (a device with a non-zero size is read with that size,
 * which makes the writer choose an extended inode, but written with size
 * 0, docs/image-format.md, "Compact and extended inodes", "The i_size
 * field").
 */
static void rewrite(struct lcfs_node_s *root, uint32_t version)
{
	struct fuzz_buf w1 = { 0 }, w2 = { 0 }, w3 = { 0 };

	if (fuzz_write_image(root, version, version, &w1) < 0) {
		fuzz_buf_release(&w1);
		return;
	}
	lcfs_node_unref(reload(&w1, version, &w2));
	lcfs_node_unref(reload(&w2, version, &w3));
	if (w2.len != w3.len || memcmp(w2.data, w3.data, w2.len) != 0)
		fuzz_fail("image -> tree -> image is not stable (%zu vs %zu bytes)", w2.len,
			  w3.len);
	fuzz_buf_release(&w1);
	fuzz_buf_release(&w2);
	fuzz_buf_release(&w3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lcfs_error err = { 0 };
	struct lcfs_erofs_header_s h;
	struct lcfs_node_s *root, *copy;

	root = lcfs_image_load(data, size, NULL, &err);
	if (root == NULL) {
		if (err.err == 0 || err.msg[0] == '\0')
			fuzz_fail("rejected without a message");
		/* The public entry point agrees and sets errno. */
		errno = 0;
		if (lcfs_load_node_from_image(data, size) != NULL || errno == 0)
			fuzz_fail("lcfs_load_node_from_image() disagrees");
		return 0;
	}
	fuzz_touch_tree(root);
	copy = lcfs_node_clone_deep(root);
	if (copy != NULL) {
		fuzz_touch_tree(copy);
		lcfs_node_unref(copy);
	}
	info_walks(root);
	filtered_load(data, size, root);
	memcpy(&h, data, sizeof(h));
	if (le32toh(h.composefs_version) <= LCFS_VERSION_MAX)
		rewrite(root, le32toh(h.composefs_version));
	lcfs_node_unref(root);
	return 0;
}
