/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: composefs-fuse's view of an image (tools/fuse-view.c) and
 * what its request handlers read from it. An image that loads is turned
 * into the view; then, as the handlers would: every inode is stat'ed,
 * every directory listed with "." and "..", every entry looked up by name
 * (it must come back as the same inode), every symlink target, inline
 * file byte and xattr read, and every backing file opened (there are no
 * object directories, so that fails cleanly without touching any file).
 */
#include <string.h>

#include "fuzz.h"

#include "fuse-view.h"
#include "lcfs-node.h"
#include "lcfs-tools.h"

static void check_dir(const struct cfs_view *v, uint32_t dir)
{
	const struct cfs_inode *d = &v->inodes[dir];

	if ((uint64_t)d->first_child + d->n_children > v->n_dirents)
		fuzz_fail("inode %u: children past the end", dir);
	if (d->parent >= v->n_inodes)
		fuzz_fail("inode %u: parent %u out of range", dir, d->parent);
	for (uint32_t k = 0; k < d->n_children; k++) {
		const struct cfs_dirent *de = &v->dirents[d->first_child + k];
		int64_t idx;

		if (de->inode >= v->n_inodes)
			fuzz_fail("inode %u: entry %u names inode %u of %u", dir, k,
				  de->inode, v->n_inodes);
		idx = cfs_view_lookup(v, dir, de->name, de->name_len);
		if (idx != de->inode)
			fuzz_fail("inode %u: lookup of '%.*s' gives %lld, not %u", dir,
				  (int)de->name_len, de->name, (long long)idx, de->inode);
	}
	if (cfs_view_lookup(v, dir, "no/such/entry", 13) != -ENOENT)
		fuzz_fail("inode %u: lookup of an impossible name succeeds", dir);
}

static uint64_t read_inode(struct cfs_view *v, uint32_t i)
{
	const struct cfs_inode *ino = &v->inodes[i];
	const struct lcfs_node_s *n = ino->node;
	uint64_t sum = 0;
	struct stat st;

	cfs_view_stat(v, i, &st);
	sum += (uint64_t)st.st_size + st.st_mode;
	if ((uint64_t)ino->first_xattr + ino->n_xattrs > v->n_xattrs)
		fuzz_fail("inode %u: xattrs past the end", i);
	for (uint32_t k = 0; k < ino->n_xattrs; k++) {
		const struct cfs_xattr *x = &v->xattrs[ino->first_xattr + k];

		for (uint32_t b = 0; b < x->name_len; b++)
			sum += (uint8_t)x->name[b];
		for (uint32_t b = 0; b < x->value_len; b++)
			sum += (uint8_t)x->value[b];
	}
	if (S_ISLNK(ino->mode) && n->payload != NULL)
		sum += strlen(n->payload);
	if (ino->object != CFS_NO_OBJECT && ino->object >= v->n_objects)
		fuzz_fail("inode %u: object %u of %u", i, ino->object, v->n_objects);
	/* cfs_read(): inline data from offset 0 up to the size; no backing
	 * file opens without a basedir. */
	if (S_ISREG(ino->mode)) {
		struct cfs_handle *h = NULL;
		uint8_t buf[4096];
		uint64_t off = 0;
		int r = cfs_view_open(v, i, &h);

		if (r == 0 && ino->object != CFS_NO_OBJECT)
			fuzz_fail("inode %u: a backing file opened without a basedir", i);
		while (r == 0) {
			ssize_t got = cfs_view_read(v, h, buf, sizeof(buf), (off_t)off);

			if (got < 0)
				fuzz_fail("inode %u: inline read failed", i);
			if (got == 0)
				break;
			for (ssize_t b = 0; b < got; b++)
				sum += buf[b];
			off += (uint64_t)got;
			if (off > ino->size)
				fuzz_fail("inode %u: read past the size", i);
		}
		if (r == 0 && n->content != NULL && off != ino->size)
			fuzz_fail("inode %u: inline read stopped short", i);
		cfs_view_close(v, h);
	}
	if (S_ISDIR(ino->mode))
		check_dir(v, i);
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	struct cfs_view v;
	uint64_t sum = 0;
	char *path;
	int r;

	root = lcfs_image_load(data, size, NULL, &err);
	if (root == NULL)
		return 0;
	r = cfs_view_init(&v, root, size % 2 == 0);
	if (r < 0) {
		/* Only a hard link chain that loops may be refused. */
		if (r != -ELOOP)
			fuzz_fail("the view of a loaded image fails: %s", strerror(-r));
		cfs_view_release(&v);
		return 0;
	}
	for (uint32_t i = 0; i < v.n_inodes; i++)
		sum += read_inode(&v, i);
	if (v.n_inodes > 0) {
		path = cfs_view_path(&v, v.n_inodes - 1);
		if (path == NULL)
			fuzz_fail("no path for the last inode");
		free(path);
	}
	cfs_view_release(&v);
	return sum == 1 ? 0 : 0;
}
