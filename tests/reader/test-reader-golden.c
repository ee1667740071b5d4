/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Reads the images of the generated cases in tests/assets/generated (built
 * with mkcomposefs and checked to be the bytes composefs 1.0.8 writes) and,
 * when present, every reference image in $COMPOSEFS_SHARED/golden, and
 * checks the tree against the dumpfile it was written from
 * ($COMPOSEFS_SHARED/assets/upstream): entry count, types, modes, owners,
 * times, sizes, device numbers, symlink targets, inline content, payloads
 * (exactly the redirect value, no over-read), digests, hard links,
 * restored whiteouts and xattrs, per (docs/image-format.md, "What the
 * reader rebuilds") and (docs/dumpfile.md, "What an image gives back").
 * Then the loaded tree is written again
 * and must give the same bytes (what composefs-dump promises), and for a
 * few assets the dumpfile printed from the loaded tree is compared with
 * the expected text. Also: the toplevel filter, lcfs_load_node_from_fd()
 * and lcfs_version_from_fd().
 */
#include "reader-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <string.h>
#include <sys/stat.h>

static const char *const assets[] = {
	"bigfile-xattr.dump",
	"bigfile.dump",
	"config.dump.gz",
	"honggfuzz-bigfile-with-acl.dump",
	"honggfuzz-chardev-nonzero-size.dump",
	"honggfuzz-long-symlink.dump",
	"honggfuzz-longlink-unterminated.dump",
	"longlink.dump",
	"no-newline.dump",
	"special.dump",
	"special_v1.dump",
};

/* ---- A minimal dumpfile reader (composefs-dump(5)), for the checks ---- */

struct buf {
	char *p; /* NUL-terminated copy */
	size_t len;
	bool absent; /* the field was "-" */
};

struct dxattr {
	struct buf key, value;
};

struct dentry {
	char *line;
	struct buf path, payload, content, digest;
	uint64_t size;
	bool hardlink;
	uint32_t mode, nlink, uid, gid, rdev;
	int64_t mtime;
	uint32_t mtime_nsec;
	struct dxattr *xattrs;
	size_t n_xattrs;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static struct buf unescape(const char *s, size_t len)
{
	struct buf b = { malloc(len + 1), 0, false };

	if (b.p == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\\' && i + 1 < len) {
			c = s[++i];
			if (c == 'n')
				c = '\n';
			else if (c == 'r')
				c = '\r';
			else if (c == 't')
				c = '\t';
			else if (c == 'x' && i + 2 < len) {
				c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
				i += 2;
			}
		}
		b.p[b.len++] = c;
	}
	b.p[b.len] = '\0';
	return b;
}

static struct buf opt_field(const char *s, size_t len)
{
	struct buf b;

	if (len == 1 && s[0] == '-')
		return (struct buf){ NULL, 0, true };
	b = unescape(s, len);
	return b;
}

static void parse_line(char *line, struct dentry *e)
{
	const char *f[11] = { 0 };
	size_t flen[11] = { 0 };
	char *p = line, *mode;
	int n = 0;

	memset(e, 0, sizeof(*e));
	e->line = line;
	while (n < 11) {
		char *sp = strchr(p, ' ');

		f[n] = p;
		flen[n] = sp ? (size_t)(sp - p) : strlen(p);
		n++;
		if (sp == NULL) {
			p = NULL;
			break;
		}
		p = sp + 1;
	}
	for (; n < 11; n++)
		f[n] = "";
	e->path = unescape(f[0], flen[0]);
	e->size = strtoull(f[1], NULL, 10);
	mode = (char *)f[2];
	if (*mode == '@') {
		e->hardlink = true;
		mode++;
	}
	e->mode = strtoull(mode, NULL, 8);
	e->nlink = strtoull(f[3], NULL, 10);
	e->uid = strtoull(f[4], NULL, 10);
	e->gid = strtoull(f[5], NULL, 10);
	e->rdev = strtoull(f[6], NULL, 10);
	e->mtime = (int64_t)strtoull(f[7], NULL, 10);
	e->mtime_nsec = strtoull(strchr(f[7], '.') + 1, NULL, 10);
	e->payload = opt_field(f[8], flen[8]);
	e->content = opt_field(f[9], flen[9]);
	e->digest = opt_field(f[10], flen[10]);
	while (p != NULL && *p != '\0') {
		char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		char *eq = memchr(p, '=', len);
		struct dxattr x;
		size_t i;

		if (len == 0)
			break;
		x.key = unescape(p, eq - p);
		x.key.len = strlen(x.key.p); /* a key is cut at an embedded NUL */
		x.value = unescape(eq + 1, len - (eq + 1 - p));
		for (i = 0; i < e->n_xattrs; i++)
			if (strcmp(e->xattrs[i].key.p, x.key.p) == 0)
				break;
		if (i == e->n_xattrs) {
			e->xattrs = realloc(e->xattrs, (e->n_xattrs + 1) * sizeof(x));
			e->n_xattrs++;
		} else {
			free(e->xattrs[i].key.p);
			free(e->xattrs[i].value.p);
		}
		e->xattrs[i] = x; /* the last one wins */
		p = sp ? sp + 1 : NULL;
	}
}

static struct dentry *parse_dump(char *text, size_t *count)
{
	struct dentry *v = NULL;
	size_t n = 0, cap = 0;

	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			v = realloc(v, cap * sizeof(*v));
			if (v == NULL)
				abort();
		}
		parse_line(line, &v[n++]);
	}
	*count = n;
	return v;
}

static void free_buf(struct buf *b)
{
	free(b->p);
}

static void free_dump(struct dentry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free_buf(&v[i].path);
		free_buf(&v[i].payload);
		free_buf(&v[i].content);
		free_buf(&v[i].digest);
		for (size_t j = 0; j < v[i].n_xattrs; j++) {
			free_buf(&v[i].xattrs[j].key);
			free_buf(&v[i].xattrs[j].value);
		}
		free(v[i].xattrs);
	}
	free(v);
}

/* ---- Checks ------------------------------------------------------------- */

static bool is_whiteout(const struct dentry *e)
{
	return !e->hardlink && (e->mode & S_IFMT) == S_IFCHR && e->rdev == 0;
}

#define WHITEOUT_BIT 0x80000000u

/* Per directory, from the dump: the number of real subdirectories and
 * whether it holds a whiteout, kept in the loaded node's scratch field. */
static void tally(struct lcfs_node_s *root, const struct dentry *dump, size_t n)
{
	struct lcfs_walk w;

	lcfs_walk_init(&w, root, 0);
	while (lcfs_walk_next(&w) > 0)
		w.node->scratch = 0;
	lcfs_walk_release(&w);
	for (size_t i = 0; i < n; i++) {
		const struct dentry *e = &dump[i];
		const char *slash = strrchr(e->path.p, '/');
		struct lcfs_node_s *parent;
		char *dir;

		if (e->hardlink || slash == NULL || slash[1] == '\0')
			continue;
		dir = strndup(e->path.p, slash - e->path.p);
		parent = test_lookup(root, dir);
		free(dir);
		if (parent == NULL)
			continue;
		parent = lcfs_node_resolve_link(parent);
		if ((e->mode & S_IFMT) == S_IFDIR)
			parent->scratch++;
		if (is_whiteout(e))
			parent->scratch |= WHITEOUT_BIT;
	}
}

static bool xattr_hidden(const char *key)
{
	return strcmp(key, "user.overlay.whiteout") == 0 ||
	       strcmp(key, "user.overlay.whiteouts") == 0;
}

static void check_xattr(const char *asset, const struct dentry *e,
			struct lcfs_node_s *node, const char *key, const char *value,
			size_t vlen)
{
	size_t len = 0;
	const char *v = lcfs_node_get_xattr(node, key, &len);

	CHECK_MSG(v != NULL && len == vlen && memcmp(v, value, vlen) == 0,
		  "%s: %s: xattr %s", asset, e->path.p, key);
}

static void check_entry(const char *asset, struct lcfs_node_s *root,
			const struct dentry *dump, size_t n, size_t idx, uint32_t version)
{
	const struct dentry *e = &dump[idx];
	struct lcfs_node_s *node = test_lookup(root, e->path.p), *real;
	uint32_t type = e->mode & S_IFMT;
	size_t expected_xattrs = 0;

	CHECK_MSG(node != NULL, "%s: %s missing", asset, e->path.p);
	if (node == NULL)
		return;
	real = lcfs_node_resolve_link(node);
	if (e->hardlink) {
		struct lcfs_node_s *t = test_lookup(root, e->payload.p);

		/* The reader decides which name is the real one. */
		CHECK_MSG(t != NULL && lcfs_node_resolve_link(t) == real,
			  "%s: %s: hard link to %s", asset, e->path.p, e->payload.p);
		return;
	}
	if (node->link_to != NULL)
		CHECK_MSG(node->mode == 0, "%s: %s: link node mode", asset, e->path.p);

	CHECK_MSG(real->mode == (e->mode & 0xffff), "%s: %s: mode 0%o", asset, e->path.p,
		  real->mode);
	CHECK_MSG(real->uid == e->uid && real->gid == e->gid, "%s: %s: owner", asset,
		  e->path.p);
	CHECK_MSG(real->mtime_sec == e->mtime && real->mtime_nsec == e->mtime_nsec,
		  "%s: %s: mtime %lld.%u", asset, e->path.p, (long long)real->mtime_sec,
		  real->mtime_nsec);
	type = real->mode & S_IFMT;
	if (type == S_IFDIR) {
		/* scratch: subdirectory count from the dump (see tally()). */
		uint32_t nlink = 2 + (real->scratch & ~WHITEOUT_BIT);

		CHECK_MSG(real->nlink == nlink, "%s: %s: dir nlink %u, want %u", asset,
			  e->path.p, real->nlink, nlink);
	} else {
		CHECK_MSG(real->nlink == e->nlink, "%s: %s: nlink %u", asset, e->path.p,
			  real->nlink);
	}

	switch (type) {
	case S_IFREG:
		CHECK_MSG(real->size == e->size, "%s: %s: size %llu", asset, e->path.p,
			  (unsigned long long)real->size);
		if (e->size > 0 && !e->content.absent && e->content.len > 0) {
			CHECK_MSG(real->content != NULL &&
					  memcmp(real->content, e->content.p, e->size) == 0,
				  "%s: %s: content", asset, e->path.p);
			CHECK(real->payload == NULL);
		} else if (e->size > 0) {
			CHECK_MSG(real->content == NULL, "%s: %s: content", asset, e->path.p);
			if (!e->payload.absent && e->payload.len > 0)
				CHECK_MSG(real->payload != NULL &&
						  strcmp(real->payload, e->payload.p) == 0,
					  "%s: %s: payload '%s'", asset, e->path.p,
					  real->payload ? real->payload : "(none)");
			else
				CHECK(real->payload == NULL);
			if (!e->digest.absent && e->digest.len == 64) {
				uint8_t d[LCFS_DIGEST_SIZE];

				CHECK(lcfs_digest_from_hex(e->digest.p, 64, d) == 0);
				CHECK_MSG(real->digest_set && memcmp(real->digest, d, 32) == 0,
					  "%s: %s: digest", asset, e->path.p);
			} else {
				CHECK(!real->digest_set);
			}
		} else {
			CHECK(real->content == NULL && real->payload == NULL);
		}
		break;
	case S_IFLNK:
		CHECK_MSG(real->payload != NULL && strcmp(real->payload, e->payload.p) == 0,
			  "%s: %s: symlink target", asset, e->path.p);
		CHECK(real->size == e->payload.len);
		break;
	case S_IFCHR:
	case S_IFBLK:
		CHECK_MSG(real->rdev == e->rdev, "%s: %s: rdev %u", asset, e->path.p,
			  real->rdev);
		break;
	}

	/* Xattrs: the dump's, minus hidden ones, plus opaque=x on a
	 * directory holding whiteouts in a version 1 image. */
	for (size_t i = 0; i < e->n_xattrs; i++) {
		const struct dxattr *x = &e->xattrs[i];

		if (xattr_hidden(x->key.p))
			continue;
		if (version >= 1 && type == S_IFDIR &&
		    (strcmp(x->key.p, "trusted.overlay.opaque") == 0 ||
		     strcmp(x->key.p, "user.overlay.opaque") == 0))
			continue; /* counted below if replaced */
		expected_xattrs++;
		check_xattr(asset, e, real, x->key.p, x->value.p, x->value.len);
	}
	if (version >= 1 && type == S_IFDIR) {
		bool has_whiteout = real->scratch & WHITEOUT_BIT;

		if (has_whiteout) {
			check_xattr(asset, e, real, "trusted.overlay.opaque", "x", 1);
			check_xattr(asset, e, real, "user.overlay.opaque", "x", 1);
			expected_xattrs += 2;
		} else {
			for (size_t i = 0; i < e->n_xattrs; i++)
				if (strcmp(e->xattrs[i].key.p, "trusted.overlay.opaque") == 0 ||
				    strcmp(e->xattrs[i].key.p, "user.overlay.opaque") == 0)
					expected_xattrs++;
		}
	}
	CHECK_MSG(real->n_xattrs == expected_xattrs, "%s: %s: %u xattrs, want %zu", asset,
		  e->path.p, real->n_xattrs, expected_xattrs);
}

static uint32_t header_version(const uint8_t *img)
{
	return img[12] | img[13] << 8 | img[14] << 16 | (uint32_t)img[15] << 24;
}

/* ---- Writing the loaded tree again; printing it ------------------------------- */

static ssize_t mem_write(void *file, void *buf, size_t count)
{
	return fwrite(buf, 1, count, file) == count ? (ssize_t)count : -1;
}

/* Image -> tree -> image gives the same bytes, at the image's version. */
static void check_rewrite(const char *asset, struct lcfs_node_s *root, const uint8_t *img,
			  size_t len)
{
	struct lcfs_write_options_s opts = { 0 };
	struct lcfs_error err = { 0 };
	char *out = NULL;
	size_t out_len = 0;
	FILE *f = open_memstream(&out, &out_len);
	int r;

	if (f == NULL)
		abort();
	opts.version = header_version(img);
	opts.max_version = opts.version;
	opts.file = f;
	opts.file_write_cb = mem_write;
	r = lcfs_write_image(root, &opts, &err);
	fclose(f);
	CHECK_MSG(r == 0, "%s: rewrite failed: %s", asset, err.msg);
	CHECK_MSG(r < 0 || (out_len == len && memcmp(out, img, len) == 0),
		  "%s: rewritten image differs (%zu bytes, want %zu)", asset, out_len, len);
	free(out);
}

/*
 * lcfs_dump_print() of the loaded tree, per (docs/dumpfile.md, "What an
 * image gives back"): directory sizes are the EROFS sizes, directory nlink
 * is recounted, a directory's RDEV is 0, the whiteout comes back as a char
 * 0/0, hidden xattrs are gone, version 1 adds opaque=x, and xattrs come in
 * on-disk order (inline ones, sorted by their escaped key, before shared
 * ones: "user.foo=bar-2" is shared by several files of special.dump). Lines
 * of special.dump's large inline files are left out (their content is
 * checked above).
 */
static const struct {
	const char *asset;
	const char *dump;
} printed[] = {
	{ "no-newline.dump",
	  "/ 4096 40555 2 0 0 0 0.0 - - - trusted.foo1=bar-1 user.foo2=bar-2\n"
	  "/a 0 100644 1 0 0 0 0.0 - - -\n"
	  "/b 0 100644 1 0 0 0 0.0 - - -\n" },
	{ "honggfuzz-chardev-nonzero-size.dump",
	  "/ 4096 40755 2 0 0 0 0.0 - - - trusted.overlay.opaque=x user.overlay.opaque=x\n"
	  "/chardev 0 20777 1 0 0 0 0.0 - - -\n" },
	{ "honggfuzz-bigfile-with-acl.dump",
	  "/ 4096 40755 2 0 0 0 0.0 - - -\n"
	  "/something-with-acls-and-overlay 8960932074941261 100777 1 0 0 0 0.0 - - - "
	  "system.posix_acl_default=x user.foo=xxxxxx\n" },
	{ "bigfile-xattr.dump",
	  "/ 4096 40755 2 0 0 0 0.0 - - -\n"
	  "/bigfile 9001899274941000 100777 1 0 0 0 0.0 - - - user.foo=\n" },
	{ "special.dump",
	  "/ 4096 40555 2 0 0 0 1633950376.0 - - - trusted.foo1=bar-1 user.foo2=bar-2\n"
	  "/blockdev 0 60777 1 0 0 107690 1633950376.0 - - - trusted.bar=bar-2\n"
	  "/chardev 0 20777 1 0 0 10769 1633950376.0 - - - trusted.foo=bar-2\n"
	  "/escaped-xattr 0 100777 1 0 0 0 1633950376.0 - - - "
	  "trusted.overlay.redirect=/foo\\n user.overlay.redirect=/foo\\n user.foo=bar-2\n"
	  "/fifo 0 10777 1 0 0 0 1633950376.0 - - - trusted.bar=bar-2\n"
	  "/inline 15 100777 1 0 0 0 1633950376.0 - FOOBAR\\nINAFILE\\n - user.foo=bar-2\n"
	  "/whiteout 0 20777 1 0 0 0 1633950376.0 - - - trusted.foo=bar-2\n" },
	{ "special_v1.dump",
	  "/ 4096 40555 2 0 0 0 1633950376.0 - - - trusted.foo1=bar-1 "
	  "trusted.overlay.opaque=x user.foo2=bar-2 user.overlay.opaque=x\n"
	  "/blockdev 0 60777 1 0 0 107690 1633950376.0 - - - trusted.bar=bar-2\n"
	  "/chardev 0 20777 1 0 0 10769 1633950376.0 - - - trusted.foo=bar-2\n"
	  "/escaped-xattr 0 100777 1 0 0 0 1633950376.0 - - - "
	  "trusted.overlay.redirect=/foo\\n user.overlay.redirect=/foo\\n user.foo=bar-2\n"
	  "/fifo 0 10777 1 0 0 0 1633950376.0 - - - trusted.bar=bar-2\n"
	  "/inline 15 100777 1 0 0 0 1633950376.0 - FOOBAR\\nINAFILE\\n - user.foo=bar-2\n"
	  "/whiteout 0 20777 1 0 0 0 1633950376.0 - - - trusted.foo=bar-2\n" },
};

static void check_printed(const char *asset, struct lcfs_node_s *root)
{
	const char *expected = NULL;
	char *out = NULL, *kept, *line, *save = NULL;
	size_t out_len = 0, kept_len = 0;
	FILE *f;

	for (size_t i = 0; i < sizeof(printed) / sizeof(printed[0]); i++)
		if (strcmp(printed[i].asset, asset) == 0)
			expected = printed[i].dump;
	if (expected == NULL)
		return;
	f = open_memstream(&out, &out_len);
	if (f == NULL)
		abort();
	CHECK_MSG(lcfs_dump_print(f, root) == 0, "%s: print failed", asset);
	fclose(f);
	kept = calloc(1, out_len + 1);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "/inline-large", 13) == 0)
			continue;
		kept_len += sprintf(kept + kept_len, "%s\n", line);
	}
	CHECK_MSG(strcmp(kept, expected) == 0, "%s: printed\n%s\nwant\n%s", asset, kept,
		  expected);
	free(kept);
	free(out);
}

/* The loaded image against its dumpfile text (@text, NUL-terminated, taken
 * over), then printed and, with @rewrite, written again. */
static void check_image(const char *asset, uint8_t *img, size_t ilen, char *text,
			bool rewrite, size_t *n_checked)
{
	size_t n;
	struct dentry *dump;
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;

	dump = parse_dump(text, &n);
	root = lcfs_image_load(img, ilen, NULL, &err);
	CHECK_MSG(root != NULL, "%s: load failed: %s", asset, err.msg);
	if (root != NULL) {
		size_t count = test_count_nodes(root);

		CHECK_MSG(count == n, "%s: %zu nodes, dump has %zu entries", asset, count, n);
		tally(root, dump, n);
		for (size_t i = 0; i < n; i++)
			check_entry(asset, root, dump, n, i, header_version(img));
		test_touch_tree(root);
		if (rewrite)
			check_rewrite(asset, root, img, ilen);
		check_printed(asset, root);
		lcfs_node_unref(root);
		(*n_checked)++;
	}
	printf("# %s: %zu entries checked\n", asset, n);
	free_dump(dump, n);
	free(text);
}

static void check_asset(const char *shared, const char *asset, size_t *n_checked)
{
	char path[4096], ipath[4096];
	size_t dlen, ilen;
	char *text;
	uint8_t *img;
	size_t base = strlen(asset);

	snprintf(path, sizeof(path), "%s/assets/upstream/%s", shared, asset);
	if (base > 3 && strcmp(asset + base - 3, ".gz") == 0)
		base -= 3;
	snprintf(ipath, sizeof(ipath), "%s/golden/%.*s.cfs", shared, (int)base, asset);
	img = test_read_file(ipath, &ilen);
	if (img == NULL) {
		snprintf(ipath, sizeof(ipath), "%s/golden/%.*s.cfs.gz", shared, (int)base,
			 asset);
		img = test_read_file(ipath, &ilen);
	}
	text = (char *)test_read_file(path, &dlen);
	if (img == NULL || text == NULL) {
		printf("# %s: image or dump absent, not checked\n", asset);
		free(img);
		free(text);
		return;
	}
	text = realloc(text, dlen + 1);
	text[dlen] = '\0';
	check_image(asset, img, ilen, text, true, n_checked);
	free(img);
}

/* ---- The generated cases in the repository ------------------------------------ */

static void sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
	unsigned char md[32];

	SHA256(data, len, md);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

/* Builds case @name of tests/assets/generated with mkcomposefs into @tmpdir
 * and checks the image is the one composefs 1.0.8 writes (its SHA-256):
 * these images stand in for reference images without ../shared. */
static uint8_t *generated_image(const char *dir, const char *tmpdir, const char *name,
				size_t *ilen)
{
	const char *build = getenv("COMPOSEFS_BUILDDIR");
	char path[4608], cmd[16384], hex[65], *args, *want;
	size_t alen, wlen;
	uint8_t *img;

	snprintf(path, sizeof(path), "%s/%s.args", dir, name);
	args = (char *)test_read_file(path, &alen);
	snprintf(path, sizeof(path), "%s/%s.sha256", dir, name);
	want = (char *)test_read_file(path, &wlen);
	if (args == NULL || want == NULL || wlen < 64) {
		CHECK_MSG(0, "%s: .args or .sha256 missing", name);
		free(args);
		free(want);
		return NULL;
	}
	args = realloc(args, alen + 1);
	args[alen] = '\0';
	args[strcspn(args, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/%s.cfs", tmpdir, name);
	snprintf(cmd, sizeof(cmd),
		 "'%s/tools/mkcomposefs' %s --from-file '%s/%s.dump' '%s' 2>'%s.err'",
		 build ? build : ".", args, dir, name, path, path);
	free(args);
	if (system(cmd) != 0) {
		char errpath[4700];
		size_t elen;
		char *err;

		/* A case with a whiteout of several names is refused on
		 * purpose (docs/compatibility.md, "Whiteouts with several
		 * names"); golden-generated checks which cases those are. */
		snprintf(errpath, sizeof(errpath), "%s.err", path);
		err = (char *)test_read_file(errpath, &elen);
		unlink(errpath);
		if (err != NULL) {
			err = realloc(err, elen + 1);
			err[elen] = '\0';
		}
		CHECK_MSG(err != NULL && strstr(err, "a whiteout (character device 0/0)"),
			  "%s: mkcomposefs failed: %s: %s", name, cmd, err ? err : "");
		free(err);
		free(want);
		return NULL;
	}
	{
		char errpath[4700];

		snprintf(errpath, sizeof(errpath), "%s.err", path);
		unlink(errpath);
	}
	img = test_read_file(path, ilen);
	unlink(path);
	if (img == NULL) {
		CHECK_MSG(0, "%s: no image", name);
		free(want);
		return NULL;
	}
	sha256_hex(img, *ilen, hex);
	CHECK_MSG(memcmp(hex, want, 64) == 0, "%s: image SHA-256 %s, want %.64s", name, hex,
		  want);
	free(want);
	return img;
}

static void check_generated(size_t *n_checked)
{
	const char *src = getenv("COMPOSEFS_SRCDIR");
	char dir[4096], tmpdir[] = "/tmp/reader-generated-XXXXXX";
	struct dirent **names;
	int n;

	snprintf(dir, sizeof(dir), "%s/tests/assets/generated", src ? src : ".");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	n = scandir(dir, &names, NULL, alphasort);
	CHECK_MSG(n > 0, "cannot read %s", dir);
	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		size_t len = strlen(d);

		if (len > 5 && strcmp(d + len - 5, ".dump") == 0) {
			char name[256], path[4608];
			size_t ilen, dlen;
			uint8_t *img;
			char *text;

			snprintf(name, sizeof(name), "%.*s", (int)(len - 5), d);
			img = generated_image(dir, tmpdir, name, &ilen);
			snprintf(path, sizeof(path), "%s/%s", dir, d);
			text = (char *)test_read_file(path, &dlen);
			if (img != NULL && text != NULL) {
				text = realloc(text, dlen + 1);
				text[dlen] = '\0';
				/* Not rewritten: a tree read back from an
				 * image need not give the same bytes again
				 * (some of these cases do not). */
				check_image(d, img, ilen, text, false, n_checked);
			} else {
				free(text);
			}
			free(img);
		}
		free(names[i]);
	}
	free(names);
	rmdir(tmpdir);
}

/* ---- The toplevel filter ----------------------------------------------------- */

static void check_filter(const char *shared)
{
	char path[4096];
	size_t len;
	uint8_t *img;
	const char *const filter[] = { "chardev", "inline", "whiteout", "absent", NULL };
	const char *const none[] = { NULL };
	struct lcfs_read_options_s opts = { .toplevel_entries = filter };
	struct lcfs_node_s *root;

	snprintf(path, sizeof(path), "%s/golden/special.dump.cfs", shared);
	img = test_read_file(path, &len);
	if (img == NULL)
		return;
	/* As upstream's check-dump-filtered: root plus three entries. */
	root = lcfs_load_node_from_image_ext(img, len, &opts);
	CHECK(root != NULL);
	if (root != NULL) {
		CHECK(lcfs_node_get_n_children(root) == 3);
		CHECK(test_count_nodes(root) == 4);
		CHECK(test_lookup(root, "/chardev") != NULL);
		CHECK(test_lookup(root, "/inline") != NULL &&
		      test_lookup(root, "/inline")->size == 15);
		CHECK(test_lookup(root, "/whiteout") != NULL &&
		      (test_lookup(root, "/whiteout")->mode & S_IFMT) == S_IFCHR);
		CHECK(lcfs_node_get_xattr(root, "trusted.foo1", NULL) != NULL);
		lcfs_node_unref(root);
	}
	opts.toplevel_entries = none;
	root = lcfs_load_node_from_image_ext(img, len, &opts);
	CHECK(root != NULL && lcfs_node_get_n_children(root) == 0);
	lcfs_node_unref(root);
	errno = 0;
	CHECK(lcfs_load_node_from_image_ext(img, len, NULL) == NULL && errno == EINVAL);
	free(img);

	/* Deeper levels are not filtered. */
	snprintf(path, sizeof(path), "%s/golden/config.dump.cfs.gz", shared);
	img = test_read_file(path, &len);
	if (img != NULL) {
		const char *const etc[] = { "etc", NULL };
		struct lcfs_node_s *full = lcfs_load_node_from_image(img, len);

		opts.toplevel_entries = etc;
		root = lcfs_load_node_from_image_ext(img, len, &opts);
		CHECK(root != NULL && full != NULL);
		if (root != NULL && full != NULL) {
			CHECK(lcfs_node_get_n_children(root) == 1);
			CHECK(test_count_nodes(root) ==
			      1 + test_count_nodes(lcfs_node_lookup_child(full, "etc")));
		}
		lcfs_node_unref(root);
		lcfs_node_unref(full);
		free(img);
	}
}

/* ---- File descriptors and the header version --------------------------------- */

static int temp_file(const void *data, size_t len)
{
	char name[] = "/tmp/reader-test-XXXXXX";
	int fd = mkstemp(name);

	if (fd < 0) {
		perror("mkstemp");
		exit(99);
	}
	unlink(name);
	if (len > 0 && write(fd, data, len) != (ssize_t)len) {
		perror("write");
		exit(99);
	}
	return fd;
}

static void check_fd(const char *shared)
{
	char path[4096];
	size_t len;
	uint8_t *img;
	int fd;

	snprintf(path, sizeof(path), "%s/golden/special_v1.dump.cfs", shared);
	img = test_read_file(path, &len);
	if (img == NULL)
		return;

	fd = temp_file(img, len);
	CHECK(lcfs_version_from_fd(fd) == 1);
	{
		struct lcfs_node_s *root = lcfs_load_node_from_fd(fd);
		const char *const filter[] = { "fifo", NULL };
		struct lcfs_read_options_s opts = { .toplevel_entries = filter };

		CHECK(root != NULL && lcfs_node_lookup_child(root, "inline") != NULL);
		lcfs_node_unref(root);
		root = lcfs_load_node_from_fd_ext(fd, &opts);
		CHECK(root != NULL && lcfs_node_get_n_children(root) == 1);
		lcfs_node_unref(root);
		errno = 0;
		CHECK(lcfs_load_node_from_fd_ext(fd, NULL) == NULL && errno == EINVAL);
	}
	close(fd);

	img[12] = 0; /* composefs version 0 */
	fd = temp_file(img, len);
	CHECK(lcfs_version_from_fd(fd) == 0);
	close(fd);
	img[12] = 1;

	img[4] = 2; /* header version 2 */
	fd = temp_file(img, len);
	errno = 0;
	CHECK(lcfs_version_from_fd(fd) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(lcfs_load_node_from_fd(fd) == NULL && errno == ENOTSUP);
	errno = 0;
	CHECK(lcfs_load_node_from_image(img, len) == NULL && errno == ENOTSUP);
	close(fd);
	img[4] = 1;

	img[0] ^= 1; /* bad magic */
	fd = temp_file(img, len);
	errno = 0;
	CHECK(lcfs_version_from_fd(fd) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(lcfs_load_node_from_fd(fd) == NULL && errno == EINVAL);
	close(fd);
	img[0] ^= 1;

	fd = temp_file(img, 20); /* shorter than the header */
	errno = 0;
	CHECK(lcfs_version_from_fd(fd) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(lcfs_load_node_from_fd(fd) == NULL && errno == EINVAL);
	close(fd);

	fd = temp_file(img, 4095); /* a valid header, but shorter than a block */
	CHECK(lcfs_version_from_fd(fd) == 1);
	errno = 0;
	CHECK(lcfs_load_node_from_fd(fd) == NULL && errno == EINVAL);
	close(fd);

	fd = temp_file(img, 0);
	errno = 0;
	CHECK(lcfs_version_from_fd(fd) == -1 && errno == EINVAL);
	close(fd);

	errno = 0;
	CHECK(lcfs_version_from_fd(-1) == -1 && errno == EBADF);
	errno = 0;
	CHECK(lcfs_load_node_from_fd(-1) == NULL && errno == EBADF);
	free(img);
}

int main(void)
{
	const char *shared = getenv("COMPOSEFS_SHARED");
	size_t checked = 0, generated = 0;

	/* Always: the generated cases, images equal to composefs 1.0.8's. */
	check_generated(&generated);
	CHECK_MSG(generated >= 90, "only %zu generated cases checked", generated);
	/* Also the reference images, when they are there. */
	if (shared != NULL) {
		for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
			check_asset(shared, assets[i], &checked);
		check_filter(shared);
		check_fd(shared);
	}
	if (checked == 0)
		printf("# no reference images (COMPOSEFS_SHARED=%s): generated cases only\n",
		       shared ? shared : "unset");
	printf("# %zu generated, %zu reference images\n", generated, checked);
	return test_summary("test-reader-golden");
}
