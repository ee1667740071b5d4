/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: the library's FUSE view of an image (lcfs-fuse-view.c) and
 * what composefs-fuse's request handlers read from it. An image that loads
 * is turned into the view; then, as the handlers would: every inode is
 * stat'ed, every directory listed with "." and "..", every entry looked up
 * by name (it must come back as the same inode), every symlink target,
 * inline file byte and xattr read, the xattr names listed, and every
 * backing file opened (there are no object directories, so that fails
 * cleanly without touching any file).
 */
#include <string.h>

#include "fuzz.h"

#include "lcfs-fuse-view.h"
#include "lcfs-node.h"
#include "lcfs-tools.h"

static void check_dir(const struct lcfs_view *v, uint32_t dir)
{
	const struct lcfs_view_inode *d = &v->inodes[dir];

	if ((uint64_t)d->first_child + d->n_children > v->n_dirents)
		fuzz_fail("inode %u: children past the end", dir);
	if (d->parent >= v->n_inodes)
		fuzz_fail("inode %u: parent %u out of range", dir, d->parent);
	for (uint32_t k = 0; k < d->n_children; k++) {
		const struct lcfs_view_dirent *de = &v->dirents[d->first_child + k];
		int64_t idx;

		if (de->inode >= v->n_inodes)
			fuzz_fail("inode %u: entry %u names inode %u of %u", dir, k,
				  de->inode, v->n_inodes);
		idx = lcfs_view_lookup(v, dir, de->name, de->name_len);
		if (idx != de->inode)
			fuzz_fail("inode %u: lookup of '%.*s' gives %lld, not %u", dir,
				  (int)de->name_len, de->name, (long long)idx, de->inode);
	}
	if (lcfs_view_lookup(v, dir, "no/such/entry", 13) != -ENOENT)
		fuzz_fail("inode %u: lookup of an impossible name succeeds", dir);
}

static uint64_t read_inode(struct lcfs_view *v, uint32_t i)
{
	const struct lcfs_view_inode *ino = &v->inodes[i];
	const struct lcfs_node_s *n = ino->node;
	uint64_t sum = 0;
	struct stat st;

	lcfs_view_stat(v, i, &st);
	sum += (uint64_t)st.st_size + st.st_mode;
	if ((uint64_t)ino->first_xattr + ino->n_xattrs > v->n_xattrs)
		fuzz_fail("inode %u: xattrs past the end", i);
	for (uint32_t k = 0; k < ino->n_xattrs; k++) {
		const struct lcfs_view_xattr *x = &v->xattrs[ino->first_xattr + k];
		const struct lcfs_view_xattr *got = NULL;
		char name[256];
		int r;

		for (uint32_t b = 0; b < x->name_len; b++)
			sum += (uint8_t)x->name[b];
		for (uint32_t b = 0; b < x->value_len; b++)
			sum += (uint8_t)x->value[b];
		/* cfs_getxattr(): a listed name reads back (or is one that
		 * overlayfs cannot read), unless an earlier entry has the
		 * same name. */
		if (x->name_len >= sizeof(name))
			fuzz_fail("inode %u: xattr name of %u bytes", i, x->name_len);
		memcpy(name, x->name, x->name_len);
		name[x->name_len] = '\0';
		r = lcfs_view_getxattr(v, i, name, &got);
		if (r < 0 && r != -EOPNOTSUPP)
			fuzz_fail("inode %u: listed xattr '%s' gives %d", i, name, r);
		if (r == 0 && (got->name_len != x->name_len ||
			       memcmp(got->name, x->name, x->name_len) != 0))
			fuzz_fail("inode %u: xattr '%s' reads another name", i, name);
	}
	/* cfs_listxattr(): the list is as long as it says, and fits. */
	for (int trusted = 0; trusted < 2; trusted++) {
		ssize_t need = lcfs_view_listxattr(v, i, trusted, NULL, 0);
		char *names;

		if (need < 0)
			fuzz_fail("inode %u: listxattr size fails", i);
		names = malloc(need ? (size_t)need : 1);
		if (names == NULL)
			fuzz_fail("out of memory");
		if (lcfs_view_listxattr(v, i, trusted, names, (size_t)need) != need)
			fuzz_fail("inode %u: listxattr length changes", i);
		if (need > 0 && lcfs_view_listxattr(v, i, trusted, names,
						    (size_t)need - 1) != -ERANGE)
			fuzz_fail("inode %u: listxattr overflows a short buffer", i);
		if (need > 0 && names[need - 1] != '\0')
			fuzz_fail("inode %u: listxattr not NUL-terminated", i);
		free(names);
	}
	if (S_ISLNK(ino->mode)) {
		const char *target = lcfs_view_readlink(v, i);

		if (target != n->payload)
			fuzz_fail("inode %u: readlink is not the symlink target", i);
		if (target != NULL)
			sum += strlen(target);
	} else if (lcfs_view_readlink(v, i) != NULL) {
		fuzz_fail("inode %u: readlink of a non-symlink", i);
	}
	if (ino->object != LCFS_VIEW_NO_OBJECT && ino->object >= v->n_objects)
		fuzz_fail("inode %u: object %u of %u", i, ino->object, v->n_objects);
	/* cfs_read(): inline data from offset 0 up to the size; no backing
	 * file opens without a basedir. */
	if (S_ISREG(ino->mode)) {
		struct lcfs_view_handle *h = NULL;
		uint8_t buf[4096];
		uint64_t off = 0;
		int r = lcfs_view_open(v, i, &h);

		if (r == 0 && ino->object != LCFS_VIEW_NO_OBJECT)
			fuzz_fail("inode %u: a backing file opened without a basedir", i);
		while (r == 0) {
			ssize_t got = lcfs_view_read(v, h, buf, sizeof(buf), (off_t)off);

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
		/* cfs_lseek() on data held in the image: one data run, then
		 * the hole at the size. */
		if (r == 0 && h->fd < 0 && ino->size > 0 &&
		    (lcfs_view_lseek(v, h, 0, SEEK_DATA) != 0 ||
		     lcfs_view_lseek(v, h, 0, SEEK_HOLE) != (off_t)ino->size ||
		     lcfs_view_lseek(v, h, (off_t)ino->size, SEEK_DATA) != -ENXIO))
			fuzz_fail("inode %u: lseek of inline data", i);
		lcfs_view_close(v, h);
	}
	if (S_ISDIR(ino->mode))
		check_dir(v, i);
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	struct lcfs_view v;
	uint64_t sum = 0;
	char *path;
	int r;

	root = lcfs_image_load(data, size, NULL, &err);
	if (root == NULL)
		return 0;
	r = lcfs_view_init(&v, root, size % 2 == 0);
	if (r < 0) {
		/* Only a hard link chain that loops may be refused. */
		if (r != -ELOOP)
			fuzz_fail("the view of a loaded image fails: %s", strerror(-r));
		lcfs_view_release(&v);
		return 0;
	}
	for (uint32_t i = 0; i < v.n_inodes; i++)
		sum += read_inode(&v, i);
	if (v.n_inodes > 0) {
		path = lcfs_view_path(&v, v.n_inodes - 1);
		if (path == NULL)
			fuzz_fail("no path for the last inode");
		free(path);
	}
	lcfs_view_release(&v);
	return sum == 1 ? 0 : 0;
}
