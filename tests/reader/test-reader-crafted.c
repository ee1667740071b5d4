/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Hand-built images: everything the reader reconstructs
 * (docs/image-format.md, "What the reader rebuilds"; docs/dumpfile.md,
 * "What an image gives back") on a tree with every file type, and a precise
 * error for each kind of corruption, including directory loops, a metadata
 * bomb and a very deep tree.
 */
#include "reader-util.h"
#include "image-builder.h"

#include <string.h>
#include <sys/stat.h>

/* Directory entry record named @name of directory node @d (first chunk). */
static uint8_t *dirent_of(struct tb *b, int d, const char *name)
{
	const struct tb_node *n = &b->nodes[d];
	uint8_t *chunk = n->tail_off ? b->img + n->tail_off
				     : b->img + (uint64_t)n->block * 4096;
	size_t clen = n->tail_off ? n->i_size : 4096;
	size_t count = (chunk[8] | chunk[9] << 8) / 12;

	for (size_t i = 0; i < count; i++) {
		uint8_t *rec = chunk + 12 * i;
		size_t start = rec[8] | rec[9] << 8;
		size_t end = i + 1 < count ? (size_t)(rec[20] | rec[21] << 8) : clen;

		while (end > start && chunk[end - 1] == '\0')
			end--;
		if (end - start == strlen(name) && memcmp(chunk + start, name, end - start) == 0)
			return rec;
	}
	fprintf(stderr, "dirent %s not found\n", name);
	abort();
}

static struct lcfs_node_s *load_ok(struct tb *b, const char *const *filter,
				   const char *what)
{
	struct lcfs_error e = { 0 };
	struct lcfs_node_s *root = lcfs_image_load(b->img, b->size, filter, &e);

	CHECK_MSG(root != NULL, "%s: %s", what, e.msg);
	return root;
}

/* ---- A tree with everything ------------------------------------------------- */

static const uint8_t metacopy[36] = { 0, 36, 0, 1, 0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9,
				      10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
				      21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 0xbb };
static const struct tb_xattr ext_xattrs[] = {
	{ 4, "overlay.metacopy", metacopy, sizeof(metacopy) },
	/* 4 + 16 + 8 bytes: no padding, the chunk map follows directly. */
	{ 4, "overlay.redirect", "/ab/cdef", 8 },
};
static const struct tb_xattr root_xattrs[] = {
	{ 1, "a", "1", 1 },
	{ 4, "overlay.opaque", "y", 1 },
};
static const struct tb_xattr wh_xattrs[] = {
	{ 4, "overlay.overlay.whiteout", "", 0 },
	{ 1, "overlay.whiteout", "", 0 },
	{ 1, "k", "v", 1 },
};
static const struct tb_xattr d_xattrs[] = {
	{ 4, "overlay.overlay.opaque", "x", 1 },
	{ 4, "overlay.overlay.whiteouts", "", 0 },
	{ 4, "overlay.overlay.overlay.deep", "z", 1 },
	{ 1, "overlay.opaque", "x", 1 },
	{ 1, "overlay.whiteouts", "", 0 },
	{ 5, "l", "lv", 2 },
	{ 0, "other.key", "o", 1 },
	{ 6, "ima", "\0\1", 2 },
};
/* An empty-named, empty-valued last entry (4 bytes): read, unlike the
 * reference. */
static const struct tb_xattr acl_xattrs[] = {
	{ 1, "first", "1", 1 },
	{ 2, "", "", 0 },
};
static const int root_shared[] = { 0 };
static char big_content[3000];
static char name_buf[400][8];

struct rich {
	int root, a, big, ext, hl, s, wh, w00, dev, fifo, d, bigdir, minus, acl, sub;
};

static void build_rich(struct tb *b, struct rich *r)
{
	struct tb_node *n;

	tb_init(b);
	b->build_time = 1633950376;
	b->build_time_nsec = 12;
	r->root = tb_add(b, -1, NULL, S_IFDIR | 0755);
	tb_add_shared(b, 6, "selinux", "system_u:object_r:etc_t:s0", 26);
	b->nodes[r->root].xattrs = root_xattrs;
	b->nodes[r->root].n_xattrs = 2;
	b->nodes[r->root].shared = root_shared;
	b->nodes[r->root].n_shared = 1;

	r->a = tb_add(b, r->root, "a", S_IFREG | 0644);
	b->nodes[r->a].data = "hello";
	b->nodes[r->a].data_len = 5;
	b->nodes[r->a].shared = root_shared;
	b->nodes[r->a].n_shared = 1;

	for (size_t i = 0; i < sizeof(big_content); i++)
		big_content[i] = (char)(i * 7 + 1);
	r->big = tb_add(b, r->root, "big", S_IFREG | 0600);
	b->nodes[r->big].data = big_content;
	b->nodes[r->big].data_len = sizeof(big_content);

	r->ext = tb_add(b, r->root, "ext", S_IFREG | 0755);
	n = &b->nodes[r->ext];
	n->size = 1000000;
	n->nlink = 2;
	n->xattrs = ext_xattrs;
	n->n_xattrs = 2;
	r->hl = tb_add_link(b, r->root, "hl", r->ext);

	r->s = tb_add(b, r->root, "s", S_IFLNK | 0777);
	b->nodes[r->s].data = "target/x";
	b->nodes[r->s].data_len = 8;

	r->wh = tb_add(b, r->root, "wh", S_IFREG | 0640);
	b->nodes[r->wh].xattrs = wh_xattrs;
	b->nodes[r->wh].n_xattrs = 3;
	r->w00 = tb_add(b, r->root, "00", S_IFCHR | 0644);
	r->dev = tb_add(b, r->root, "dev", S_IFBLK | 0660);
	b->nodes[r->dev].rdev = 0x1234;

	r->fifo = tb_add(b, r->root, "fifo", S_IFIFO | 0600);
	n = &b->nodes[r->fifo];
	n->extended = true;
	n->uid = 70000;
	n->gid = 80000;
	n->nlink = 70001;
	n->mtime = -5;
	n->mtime_nsec = 7;

	r->d = tb_add(b, r->root, "d", S_IFDIR | 0700);
	b->nodes[r->d].xattrs = d_xattrs;
	b->nodes[r->d].n_xattrs = 8;
	r->sub = tb_add(b, r->d, "sub", S_IFDIR | 0755);
	r->bigdir = tb_add(b, r->d, "bigdir", S_IFDIR | 0755);
	for (int i = 0; i < 400; i++) {
		snprintf(name_buf[i], sizeof(name_buf[i]), "f%03d", i);
		tb_add(b, r->bigdir, name_buf[i], S_IFREG | 0644);
	}
	tb_add_link(b, r->sub, "link-to-a", r->a);

	r->minus = tb_add(b, r->root, "-x", S_IFSOCK | 0755);
	r->acl = tb_add(b, r->root, "acl", S_IFREG | 0644);
	b->nodes[r->acl].xattrs = acl_xattrs;
	b->nodes[r->acl].n_xattrs = 2;
	tb_build(b);
}

/* Builds @b's image, requires the reader to refuse it (see
 * test_expect_error()) and frees it. */
static void expect_built_error(struct tb *b, int err, const char *substr, const char *what)
{
	tb_build(b);
	test_expect_error(b->img, b->size, NULL, err, substr, what);
	tb_free(b);
}

static void test_rich(void)
{
	struct tb b;
	struct rich r;
	struct lcfs_node_s *root, *n, *ext;
	size_t len;
	const char *v;

	build_rich(&b, &r);
	root = load_ok(&b, NULL, "rich");
	if (root == NULL) {
		tb_free(&b);
		return;
	}
	/* 12 root entries minus the dropped "00"; d has sub and bigdir;
	 * 400 files; sub has one link. */
	CHECK(lcfs_node_get_n_children(root) == 11);
	CHECK(test_count_nodes(root) == 1 + 11 + 2 + 400 + 1);
	CHECK(lcfs_node_lookup_child(root, "00") == NULL);

	/* Root: compact, mtime from the superblock; inline xattrs first,
	 * then the shared one; trusted.overlay.opaque hidden. */
	CHECK(root->mode == (S_IFDIR | 0755));
	CHECK(root->mtime_sec == 1633950376 && root->mtime_nsec == 12);
	CHECK(root->n_xattrs == 2);
	CHECK(strcmp(lcfs_node_get_xattr_name(root, 0), "user.a") == 0);
	CHECK(strcmp(lcfs_node_get_xattr_name(root, 1), "security.selinux") == 0);
	/* Interned: both inodes share one entry for the shared label. */
	n = lcfs_node_lookup_child(root, "a");
	CHECK(n != NULL && n->n_xattrs == 1 && n->xattrs[0] == root->xattrs[1]);
	CHECK(n != NULL && n->size == 5 && memcmp(n->content, "hello", 5) == 0);

	n = lcfs_node_lookup_child(root, "big");
	CHECK(n != NULL && n->size == sizeof(big_content) && n->content != NULL &&
	      memcmp(n->content, big_content, sizeof(big_content)) == 0);

	/* External file: payload is the redirect minus '/', exactly (the
	 * chunk map's 0xff bytes follow the value without padding). */
	ext = lcfs_node_lookup_child(root, "ext");
	CHECK(ext != NULL && ext->size == 1000000 && ext->content == NULL);
	CHECK(ext != NULL && ext->payload != NULL && strcmp(ext->payload, "ab/cdef") == 0);
	CHECK(ext != NULL && ext->digest_set && ext->digest[0] == 0xaa &&
	      ext->digest[31] == 0xbb);
	CHECK(ext != NULL && ext->n_xattrs == 0);
	/* The hard link: mode 0, points at ext, nlink not bumped. */
	n = lcfs_node_lookup_child(root, "hl");
	CHECK(n != NULL && n->mode == 0 && lcfs_node_get_hardlink_target(n) == ext);
	CHECK(ext != NULL && ext->nlink == 2);

	n = lcfs_node_lookup_child(root, "s");
	CHECK(n != NULL && n->mode == (S_IFLNK | 0777) && n->size == 8 &&
	      strcmp(n->payload, "target/x") == 0);

	/* Escaped whiteout back to char 0/0, markers hidden. */
	n = lcfs_node_lookup_child(root, "wh");
	CHECK(n != NULL && n->mode == (S_IFCHR | 0640) && n->rdev == 0 && n->size == 0);
	CHECK(n != NULL && n->n_xattrs == 1 && lcfs_node_get_xattr(n, "user.k", &len) &&
	      len == 1);

	n = lcfs_node_lookup_child(root, "dev");
	CHECK(n != NULL && n->mode == (S_IFBLK | 0660) && n->rdev == 0x1234);

	n = lcfs_node_lookup_child(root, "fifo");
	CHECK(n != NULL && n->uid == 70000 && n->gid == 80000 && n->nlink == 70001 &&
	      n->mtime_sec == -5 && n->mtime_nsec == 7);

	n = lcfs_node_lookup_child(root, "-x");
	CHECK(n != NULL && n->mode == (S_IFSOCK | 0755));

	n = lcfs_node_lookup_child(root, "acl");
	CHECK(n != NULL && n->n_xattrs == 2 &&
	      lcfs_node_get_xattr(n, "system.posix_acl_access", &len) != NULL && len == 0);

	/* Unescaping and hiding (docs/image-format.md, "What the reader
	 * rebuilds"), in on-disk order. */
	n = lcfs_node_lookup_child(root, "d");
	CHECK(n != NULL && n->nlink == 4 && n->n_xattrs == 6);
	if (n != NULL && n->n_xattrs == 6) {
		static const char *const keys[] = {
			"trusted.overlay.opaque", "trusted.overlay.overlay.deep",
			"user.overlay.opaque",    "lustre.l",
			"other.key",              "security.ima",
		};

		for (int i = 0; i < 6; i++)
			CHECK_MSG(strcmp(lcfs_node_get_xattr_name(n, i), keys[i]) == 0,
				  "xattr %d is %s", i, lcfs_node_get_xattr_name(n, i));
		v = lcfs_node_get_xattr(n, "security.ima", &len);
		CHECK(v != NULL && len == 2 && v[0] == 0 && v[1] == 1);
	}
	n = test_lookup(root, "/d/bigdir");
	CHECK(n != NULL && n->n_children == 400 && n->size > 4096);
	CHECK(test_lookup(root, "/d/bigdir/f399") != NULL);
	n = test_lookup(root, "/d/sub/link-to-a");
	CHECK(n != NULL && n->link_to == lcfs_node_lookup_child(root, "a"));
	test_touch_tree(root);
	lcfs_node_unref(root);

	/* Filter: "d" only; "a" is then first met in d/sub and is real. */
	{
		const char *const filter[] = { "d", NULL };

		root = load_ok(&b, filter, "rich filtered");
		CHECK(root != NULL && lcfs_node_get_n_children(root) == 1);
		n = root ? test_lookup(root, "/d/sub/link-to-a") : NULL;
		CHECK(n != NULL && n->link_to == NULL && n->size == 5);
		lcfs_node_unref(root);
	}
	tb_free(&b);
}

/* ---- Precise corruptions -------------------------------------------------------- */

typedef void (*corrupt_fn)(struct tb *b, const struct rich *r);

static void c_root_nid(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + 1038, 0xffff);
}

static void c_root_not_dir(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + 1038, b->nodes[r->a].nid);
}

static void c_root_whiteout(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + 1038, b->nodes[r->w00].nid);
}

static void c_loop_parent(struct tb *b, const struct rich *r)
{
	tb_put64(dirent_of(b, r->sub, "link-to-a"), b->nodes[r->d].nid);
}

static void c_loop_self(struct tb *b, const struct rich *r)
{
	tb_put64(dirent_of(b, r->sub, "link-to-a"), b->nodes[r->sub].nid);
}

static void c_loop_root(struct tb *b, const struct rich *r)
{
	tb_put64(dirent_of(b, r->d, "sub"), b->nodes[r->root].nid);
}

static void c_dir_twice(struct tb *b, const struct rich *r)
{
	tb_put64(dirent_of(b, r->d, "sub"), b->nodes[r->bigdir].nid);
}

static void c_nid_range(struct tb *b, const struct rich *r)
{
	tb_put64(dirent_of(b, r->root, "a"), UINT64_MAX / 16);
}

static void c_nameoff_past(struct tb *b, const struct rich *r)
{
	tb_put16(dirent_of(b, r->root, "fifo") + 8, 4000);
}

static void c_nameoff_first(struct tb *b, const struct rich *r)
{
	tb_put16(dirent_of(b, r->sub, ".") + 8, 13);
}

static void c_nameoff_first_zero(struct tb *b, const struct rich *r)
{
	tb_put16(dirent_of(b, r->sub, ".") + 8, 0);
}

static void c_nameoff_first_past(struct tb *b, const struct rich *r)
{
	tb_put16(dirent_of(b, r->sub, ".") + 8, 1200);
}

static void c_nameoff_backwards(struct tb *b, const struct rich *r)
{
	uint8_t *rec = dirent_of(b, r->root, "fifo");

	tb_put16(rec + 8, (rec[8] | rec[9] << 8) + 100);
}

static void c_empty_name(struct tb *b, const struct rich *r)
{
	uint8_t *rec = dirent_of(b, r->root, "dev");

	tb_put16(rec + 8, rec[20] | rec[21] << 8);
}

static void c_slash_name(struct tb *b, const struct rich *r)
{
	uint8_t *chunk = b->img + b->nodes[r->root].tail_off;
	uint8_t *rec = dirent_of(b, r->root, "fifo");

	chunk[rec[8] | rec[9] << 8] = '/';
}

static void c_nul_name(struct tb *b, const struct rich *r)
{
	uint8_t *chunk = b->img + b->nodes[r->root].tail_off;
	uint8_t *rec = dirent_of(b, r->root, "fifo");

	chunk[(rec[8] | rec[9] << 8) + 1] = '\0';
}

static void c_dup_name(struct tb *b, const struct rich *r)
{
	uint8_t *chunk = b->img + b->nodes[r->root].tail_off;
	uint8_t *rec = dirent_of(b, r->root, "big");

	/* "big" -> "acl": same as the previous entry. */
	memcpy(chunk + (rec[8] | rec[9] << 8), "acl", 3);
}

static void c_order(struct tb *b, const struct rich *r)
{
	uint8_t *chunk = b->img + b->nodes[r->root].tail_off;
	uint8_t *rec = dirent_of(b, r->root, "ext");

	chunk[rec[8] | rec[9] << 8] = 'a'; /* "axt" after "dev" */
}

static void c_icount(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->fifo].off + 2, 0xffff);
}

static void c_shared_count(struct tb *b, const struct rich *r)
{
	b->img[b->nodes[r->ext].xattr_off + 4] = 255;
}

static void c_entry_size(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->ext].xattr_off + 12 + 2, 0xffff);
}

static void c_entry_name_len(struct tb *b, const struct rich *r)
{
	b->img[b->nodes[r->ext].xattr_off + 12] = 0xff;
}

static void c_shared_id(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + b->nodes[r->root].xattr_off + 12, 0xfffffff0);
}

static void c_shared_id_edge(struct tb *b, const struct rich *r)
{
	/* The id of the very last 4 bytes of the image. */
	tb_put32(b->img + b->nodes[r->a].xattr_off + 12,
		 (b->size - (b->inodes_end / 4096) * 4096) / 4 - 1);
	memset(b->img + b->size - 4, 0xff, 4);
}

static void c_name_index(struct tb *b, const struct rich *r)
{
	b->img[b->nodes[r->ext].xattr_off + 12 + 1] = 7;
}

static void c_xattr_nul(struct tb *b, const struct rich *r)
{
	b->img[b->nodes[r->ext].xattr_off + 12 + 4 + 2] = '\0';
}

static void c_xattr_empty_key(struct tb *b, const struct rich *r)
{
	/* "user.first" -> name index 0 with an empty name, empty value:
	 * walked with a 4-byte stride over the old bytes, it stays in
	 * bounds. */
	uint8_t *e = b->img + b->nodes[r->acl].xattr_off + 12;

	e[0] = 0;
	e[1] = 0;
	tb_put16(e + 2, 0);
}

static void c_chunk_dir(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->sub].off, 4 << 1);
}

static void c_chunk_symlink(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->s].off, 4 << 1);
}

static void c_layout(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->a].off, 1 << 1);
}

static void c_format_bits(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->a].off, 0x100 | 2 << 1);
}

static void c_dir_huge(struct tb *b, const struct rich *r)
{
	/* Compact: 32-bit size; plain layout with blocks past the end. */
	tb_put16(b->img + b->nodes[r->sub].off, 0);
	tb_put32(b->img + b->nodes[r->sub].off + 8, 0xfffff000);
}

static void c_dir_huge_ext(struct tb *b, const struct rich *r)
{
	uint8_t *p = b->img + b->nodes[r->root].off;

	/* Turn the root's record into an extended flat one with a 2^60
	 * size: only the format, mode and size matter before the check. */
	tb_put16(p, 1);
	tb_put64(p + 8, 1ULL << 60);
}

static void c_reg_huge(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + b->nodes[r->a].off + 8, 6000);
}

static void c_symlink_huge(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + b->nodes[r->s].off + 8, 4096);
}

static void c_symlink_empty(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + b->nodes[r->s].off + 8, 0);
}

static void c_symlink_nul(struct tb *b, const struct rich *r)
{
	b->img[b->nodes[r->s].tail_off + 3] = '\0';
}

static void c_tail_cross(struct tb *b, const struct rich *r)
{
	/* Grow a's inline size until it crosses into the next block. */
	uint64_t tail = b->nodes[r->a].tail_off;

	tb_put32(b->img + b->nodes[r->a].off + 8, 4096 - tail % 4096 + 1);
}

static void c_block_range(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + b->nodes[r->big].off + 16, b->size / 4096);
}

static void c_mode(struct tb *b, const struct rich *r)
{
	tb_put16(b->img + b->nodes[r->fifo].off + 4, 0644);
}

static void c_sb_magic(struct tb *b, const struct rich *r)
{
	b->img[1024] ^= 0x10;
}

static void c_header_version(struct tb *b, const struct rich *r)
{
	b->img[4] = 2;
}

static void c_magic(struct tb *b, const struct rich *r)
{
	b->img[3] = 0;
}

static void c_blkszbits(struct tb *b, const struct rich *r)
{
	b->img[1036] = 9;
}

static void c_meta_blkaddr(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + 1064, 0xffffffff);
}

static void c_xattr_blkaddr(struct tb *b, const struct rich *r)
{
	tb_put32(b->img + 1068, 0xffffffff);
}

static const struct {
	const char *name;
	corrupt_fn fn;
	int err;
	const char *msg;
} corruptions[] = {
	{ "root nid out of range", c_root_nid, EINVAL, "outside the image" },
	{ "root not a directory", c_root_not_dir, EINVAL, "not a directory" },
	{ "root is a whiteout", c_root_whiteout, EINVAL, "not a directory" },
	{ "dirent to the parent", c_loop_parent, ELOOP, "loops back" },
	{ "dirent to itself", c_loop_self, ELOOP, "loops back" },
	{ "dirent to the root", c_loop_root, ELOOP, "loops back" },
	{ "directory linked twice", c_dir_twice, EINVAL, "second time" },
	{ "dirent nid out of range", c_nid_range, EINVAL, "outside the image" },
	{ "nameoff past the end", c_nameoff_past, EINVAL, "past the end" },
	{ "first nameoff not a multiple of 12", c_nameoff_first, EINVAL, "multiple of 12" },
	{ "first nameoff zero", c_nameoff_first_zero, EINVAL, "multiple of 12" },
	{ "first nameoff past the end", c_nameoff_first_past, EINVAL, "past the end" },
	{ "nameoff out of order", c_nameoff_backwards, EINVAL, "out of order" },
	{ "empty name", c_empty_name, EINVAL, "name length 0" },
	{ "name with a slash", c_slash_name, EINVAL, "'/'" },
	{ "name with a NUL", c_nul_name, EINVAL, "NUL" },
	{ "duplicate name", c_dup_name, EINVAL, "duplicate entry 'acl'" },
	{ "names out of order", c_order, EINVAL, "out of name order" },
	{ "xattr icount overflow", c_icount, EINVAL, "xattr area past the end" },
	{ "shared count overflow", c_shared_count, EINVAL, "do not fit" },
	{ "xattr value size overflow", c_entry_size, EINVAL, "past the end of the xattr area" },
	{ "xattr name size overflow", c_entry_name_len, EINVAL,
	  "past the end of the xattr area" },
	{ "shared xattr id out of range", c_shared_id, EINVAL,
	  "past the end of the image" },
	{ "shared xattr at the very end", c_shared_id_edge, EINVAL,
	  "past the end of the image" },
	{ "xattr name index 7", c_name_index, EINVAL, "index 7" },
	{ "xattr name with NUL", c_xattr_nul, EINVAL, "NUL" },
	{ "empty xattr key", c_xattr_empty_key, EINVAL, "empty name" },
	{ "chunk-based directory", c_chunk_dir, EINVAL, "chunk-based" },
	{ "chunk-based symlink", c_chunk_symlink, EINVAL, "chunk-based" },
	{ "compressed layout", c_layout, EINVAL, "data layout 1" },
	{ "unknown format bits", c_format_bits, EINVAL, "inode format" },
	{ "huge directory", c_dir_huge, EINVAL, "past the end of the image" },
	{ "huge extended directory", c_dir_huge_ext, EINVAL, "past the end of the image" },
	{ "huge inline file", c_reg_huge, EINVAL, "larger than 5000" },
	{ "huge symlink", c_symlink_huge, EINVAL, "symlink size" },
	{ "empty symlink", c_symlink_empty, EINVAL, "symlink size" },
	{ "symlink with NUL", c_symlink_nul, EINVAL, "NUL" },
	{ "inline data across a block", c_tail_cross, EINVAL, "crosses a block" },
	{ "data block out of range", c_block_range, EINVAL, "past the end of the image" },
	{ "invalid file type", c_mode, EINVAL, "invalid file type" },
	{ "superblock magic", c_sb_magic, EINVAL, "superblock magic" },
	{ "header version", c_header_version, ENOTSUP, "header version 2" },
	{ "header magic", c_magic, EINVAL, "bad magic" },
	{ "block size", c_blkszbits, EINVAL, "block size" },
	{ "meta_blkaddr", c_meta_blkaddr, EINVAL, "metadata block" },
	{ "xattr_blkaddr", c_xattr_blkaddr, EINVAL, "xattr block" },
};

static void test_corruptions(void)
{
	struct tb b;
	struct rich r;

	build_rich(&b, &r);
	for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
		uint8_t *saved = malloc(b.size);

		memcpy(saved, b.img, b.size);
		corruptions[i].fn(&b, &r);
		test_expect_error(b.img, b.size, NULL, corruptions[i].err, corruptions[i].msg,
				  corruptions[i].name);
		memcpy(b.img, saved, b.size);
		free(saved);
	}
	/* Too short for a block. */
	test_expect_error(b.img, 4095, NULL, EINVAL, "shorter than one block", "4095 bytes");
	test_expect_error(b.img, 0, NULL, EINVAL, "shorter than one block", "0 bytes");
	/* Truncated before the data blocks. */
	test_expect_error(b.img, b.size - 4096, NULL, EINVAL, "past the end of the image",
			  "truncated");
	tb_free(&b);
}

/* A redirect longer than a payload may be, and one with a NUL. */
static void test_redirects(void)
{
	static char longval[5000];
	static const struct tb_xattr x_long[] = { { 4, "overlay.redirect", longval, 4097 } };
	static const struct tb_xattr x_nul[] = { { 4, "overlay.redirect", "/ab\0cd", 6 } };
	static const struct tb_xattr x_slash[] = { { 4, "overlay.redirect", "/", 1 } };
	static const struct tb_xattr x_rel[] = { { 4, "overlay.redirect", "//x", 3 } };
	static const struct tb_xattr x_meta[] = { { 4, "overlay.metacopy", "", 0 } };
	struct tb b;
	struct lcfs_node_s *root, *n;

	memset(longval, 'a', sizeof(longval));
	longval[0] = '/';
	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add_xattrs(&b, 0, "f", S_IFREG | 0644, 10, x_long, 1);
	expect_built_error(&b, EINVAL, "redirect of 4096 bytes", "long redirect");

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add_xattrs(&b, 0, "nul", S_IFREG | 0644, 10, x_nul, 1);
	tb_add_xattrs(&b, 0, "slash", S_IFREG | 0644, 10, x_slash, 1);
	tb_add_xattrs(&b, 0, "rel", S_IFREG | 0644, 10, x_rel, 1);
	tb_add_xattrs(&b, 0, "meta", S_IFREG | 0644, 10, x_meta, 1);
	/* On a directory, redirect and metacopy are hidden and ignored. */
	tb_add_xattrs(&b, 0, "dir", S_IFDIR | 0755, 0, x_rel, 1);
	tb_build(&b);
	root = load_ok(&b, NULL, "redirects");
	if (root != NULL) {
		n = lcfs_node_lookup_child(root, "nul");
		CHECK(n && n->payload && strcmp(n->payload, "ab") == 0);
		n = lcfs_node_lookup_child(root, "slash");
		CHECK(n && n->payload && strcmp(n->payload, "/") == 0);
		n = lcfs_node_lookup_child(root, "rel");
		CHECK(n && n->payload && strcmp(n->payload, "/x") == 0);
		n = lcfs_node_lookup_child(root, "meta");
		CHECK(n && !n->digest_set && n->payload == NULL && n->n_xattrs == 0);
		n = lcfs_node_lookup_child(root, "dir");
		CHECK(n && n->payload == NULL && n->n_xattrs == 0);
		lcfs_node_unref(root);
	}
	tb_free(&b);
}

/* Builds a root with a subdirectory holding one whiteout: a char device
 * 0/0 when @escaped is false, else a regular file marked with the escaped
 * whiteout xattr (what the writer stores for an input whiteout). The
 * whiteout has @nlink links and, when @second_name, another entry in the
 * root. */
static void whiteout_image(struct tb *b, bool escaped, uint32_t nlink, bool second_name)
{
	static const struct tb_xattr x_wh[] = { { 4, "overlay.overlay.whiteout", "", 0 } };
	int d, w;

	tb_init(b);
	tb_add(b, -1, NULL, S_IFDIR | 0755);
	d = tb_add(b, 0, "d", S_IFDIR | 0755);
	w = tb_add(b, d, "wh", escaped ? S_IFREG | 0644 : S_IFCHR | 0644);
	b->nodes[w].nlink = nlink;
	b->nodes[w].extended = nlink > 0xFFFF;
	if (escaped) {
		b->nodes[w].xattrs = x_wh;
		b->nodes[w].n_xattrs = 1;
	}
	if (second_name)
		tb_add_link(b, 0, "zz-second", w);
	tb_build(b);
}

/* A whiteout is a marker with exactly one name: one with nlink > 1 or
 * reached by two names is refused, through the public API as well. */
static void test_whiteout_links(void)
{
	struct lcfs_node_s *root, *n;
	struct tb b;

	for (int escaped = 0; escaped < 2; escaped++) {
		const char *kind = escaped ? "escaped whiteout" : "whiteout";

		/* One name, one link: loads; a char device 0/0 is dropped,
		 * an escaped whiteout comes back as char 0/0. */
		whiteout_image(&b, escaped, 1, false);
		root = load_ok(&b, NULL, kind);
		if (root != NULL) {
			n = test_lookup(root, "/d/wh");
			if (escaped)
				CHECK(n != NULL && (n->mode & S_IFMT) == S_IFCHR &&
				      n->rdev == 0);
			else
				CHECK(n == NULL);
			lcfs_node_unref(root);
		}
		tb_free(&b);

		whiteout_image(&b, escaped, 2, false);
		test_expect_error(b.img, b.size, NULL, EINVAL, "with 2 links", kind);
		errno = 0;
		root = lcfs_load_node_from_image(b.img, b.size);
		CHECK_MSG(root == NULL && errno == EINVAL, "%s, nlink 2: public API", kind);
		lcfs_node_unref(root);
		tb_free(&b);

		whiteout_image(&b, escaped, 1, true);
		test_expect_error(b.img, b.size, NULL, EINVAL, "second name of whiteout",
				  kind);
		errno = 0;
		root = lcfs_load_node_from_image(b.img, b.size);
		CHECK_MSG(root == NULL && errno == EINVAL, "%s, two names: public API",
			  kind);
		lcfs_node_unref(root);
		tb_free(&b);

		/* Both at once, and an nlink the 16-bit field cannot hold. */
		whiteout_image(&b, escaped, 2, true);
		test_expect_error(b.img, b.size, NULL, EINVAL, "whiteout", kind);
		tb_free(&b);
		whiteout_image(&b, escaped, 70000, false);
		test_expect_error(b.img, b.size, NULL, EINVAL, "with 70000 links", kind);
		tb_free(&b);
	}
}

/* Names over 255 bytes, last in the chunk or not. */
static void test_long_names(void)
{
	static char name[301];
	struct tb b;

	memset(name, 'n', 300);
	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add(&b, 0, name, S_IFREG | 0644);
	expect_built_error(&b, EINVAL, "name length 300", "last name");

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add(&b, 0, name, S_IFREG | 0644);
	tb_add(&b, 0, "z", S_IFREG | 0644);
	expect_built_error(&b, EINVAL, "name length 300", "inner name");

	name[255] = '\0';
	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add(&b, 0, name, S_IFREG | 0644);
	tb_build(&b);
	{
		struct lcfs_node_s *root = load_ok(&b, NULL, "255-byte name");

		CHECK(root && root->n_children == 1 && strlen(root->children[0]->name) == 255);
		lcfs_node_unref(root);
	}
	tb_free(&b);
}

/* Duplicate keys (inline twice, inline and shared) and the size limit. */
static void test_xattr_limits(void)
{
	static const struct tb_xattr twice[] = { { 1, "k", "v", 1 }, { 1, "k", "w", 1 } };
	static const struct tb_xattr once[] = { { 1, "k", "v", 1 } };
	static char big[12000];
	static const struct tb_xattr huge[] = {
		{ 1, "a", big, sizeof(big) },
		{ 1, "b", big, sizeof(big) },
		{ 1, "c", big, sizeof(big) },
	};
	static const int shared0[] = { 0 };
	struct tb b;
	int f;

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add_xattrs(&b, 0, "f", S_IFREG | 0644, 0, twice, 2);
	expect_built_error(&b, EINVAL, "duplicate xattr 'user.k'", "inline duplicate");

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add_shared(&b, 1, "k", "v", 1);
	f = tb_add_xattrs(&b, 0, "f", S_IFREG | 0644, 0, once, 1);
	b.nodes[f].shared = shared0;
	b.nodes[f].n_shared = 1;
	expect_built_error(&b, EINVAL, "duplicate xattr 'user.k'", "shared duplicate");

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	tb_add_xattrs(&b, 0, "f", S_IFREG | 0644, 0, huge, 3);
	expect_built_error(&b, EINVAL, "size limit", "xattr size limit");
}

/* Many directories whose data all point at one block full of hard links:
 * without a bound the tree would grow quadratically from a small image. */
static void test_bomb(void)
{
	static char dnames[300][8], fnames[300][8];
	int dirs[300], file;
	struct tb b;

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	file = tb_add(&b, 0, "file", S_IFREG | 0644);
	for (int i = 0; i < 300; i++) {
		snprintf(dnames[i], sizeof(dnames[i]), "d%03d", i);
		dirs[i] = tb_add(&b, 0, dnames[i], S_IFDIR | 0755);
	}
	for (int i = 0; i < 300; i++) {
		snprintf(fnames[i], sizeof(fnames[i]), "h%03d", i);
		tb_add_link(&b, dirs[0], fnames[i], file);
	}
	tb_build(&b);
	{
		struct lcfs_node_s *root = load_ok(&b, NULL, "bomb base");

		CHECK(root != NULL && test_count_nodes(root) == 1 + 1 + 300 + 300);
		lcfs_node_unref(root);
	}
	CHECK(b.nodes[dirs[0]].nblocks == 2);
	for (int i = 1; i < 300; i++) {
		uint8_t *p = b.img + b.nodes[dirs[i]].off;

		tb_put16(p, 0); /* flat plain */
		tb_put32(p + 8, b.nodes[dirs[0]].i_size);
		tb_put32(p + 16, b.nodes[dirs[0]].block);
	}
	test_expect_error(b.img, b.size, NULL, EINVAL, "same bytes too often", "bomb");
	tb_free(&b);
}

/* A chain of nested directories far deeper than any recursion could go. */
static void test_deep(void)
{
	const int depth = 200000;
	struct lcfs_node_s *root, *n;
	struct tb b;
	int d = 0, levels = 0;

	tb_init(&b);
	tb_add(&b, -1, NULL, S_IFDIR | 0755);
	for (int i = 0; i < depth; i++)
		d = tb_add(&b, d, "d", S_IFDIR | 0755);
	tb_add(&b, d, "leaf", S_IFREG | 0644);
	tb_build(&b);
	root = load_ok(&b, NULL, "deep");
	if (root != NULL) {
		CHECK(test_count_nodes(root) == (size_t)depth + 2);
		for (n = root; n->n_children > 0 && levels <= depth + 1; levels++)
			n = n->children[0];
		CHECK(levels == depth + 1 && strcmp(n->name, "leaf") == 0);
		lcfs_node_unref(root);
	}
	/* The bottom directory's entry loops back to the root. */
	tb_put64(dirent_of(&b, d, "leaf"), b.nodes[0].nid);
	test_expect_error(b.img, b.size, NULL, ELOOP, "loops back", "deep loop");
	tb_free(&b);
}

int main(void)
{
	TEST_CASE(test_rich);
	TEST_CASE(test_corruptions);
	TEST_CASE(test_redirects);
	TEST_CASE(test_whiteout_links);
	TEST_CASE(test_xattr_limits);
	TEST_CASE(test_long_names);
	TEST_CASE(test_bomb);
	TEST_CASE(test_deep);
	return test_summary("test-reader-crafted");
}
