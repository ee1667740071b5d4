/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-fuse: mount a composefs image without privileges, through
 * FUSE, showing what the kernel mount (overlayfs over the EROFS image with
 * the basedirs as data-only layers) shows. With -o verity every block
 * served is checked in userspace against the backing file's Merkle tree,
 * whose root must give the fs-verity digest recorded in the image.
 *
 * The image is untrusted: it is read by the library's validating reader
 * into a tree, and the library's FUSE view (lcfs-fuse-view.c) turns that
 * into the kernel's view. This file is the FUSE glue only: the command
 * line, the low-level operations and their replies, and the log.
 */
/* The 3.12 API where the build has it (its thread pool settings), else
 * the one of libfuse 3.10. */
#ifdef CFS_FUSE_312
#define FUSE_USE_VERSION 312
#else
#define FUSE_USE_VERSION 35
#endif

#include <endian.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "lcfs-fuse-view.h"
#include "lcfs-fetch.h"
#include "libcomposefs/lcfs-erofs.h"
#include "toolutil.h"
#include "lcfs-node.h"
#include "lcfs-tools.h"

/* The image never changes under a mount: cache names and attributes for
 * as long as the kernel likes. */
#define CFS_TIMEOUT 86400.0

struct cfs_fs {
	struct lcfs_view view;
	struct lcfs_fetcher *fetcher; /* -o remote: missing objects */
	uint64_t image_blocks;
	bool acl;
	bool no_opendir; /* the kernel opens directories by itself */
	bool use_syslog; /* log to syslog (daemonised) instead of stderr */
};

/* -o options of our own; everything else goes to libfuse. */
struct cfs_opts {
	char *source;
	char *basedir; /* ':'-separated, repeated options appended */
	char *digest;
	char *remote;
	char *verity_memory;
	int verity;
	int noacl;
};

enum {
	KEY_SOURCE,
	KEY_BASEDIR,
	KEY_DIGEST,
	KEY_REMOTE,
	KEY_VERITY_MEMORY,
};

/* Memory for the Merkle trees of -o verity unless told otherwise. */
#define DEFAULT_VERITY_MEMORY (64ull << 20)

static const struct fuse_opt cfs_opt_spec[] = {
	FUSE_OPT_KEY("source=", KEY_SOURCE),
	FUSE_OPT_KEY("basedir=", KEY_BASEDIR),
	FUSE_OPT_KEY("digest=", KEY_DIGEST),
	FUSE_OPT_KEY("remote=", KEY_REMOTE),
	FUSE_OPT_KEY("verity_memory=", KEY_VERITY_MEMORY),
	{ "verity", offsetof(struct cfs_opts, verity), 1 },
	{ "noverity", offsetof(struct cfs_opts, verity), 0 },
	{ "noacl", offsetof(struct cfs_opts, noacl), 1 },
	FUSE_OPT_END
};

static const char prog[] = "composefs-fuse";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s -o source=IMAGE[,basedir=DIR[:DIR...]][,OPTIONS] "
		"MOUNTPOINT\n"
		"\n"
		"composefs options:\n"
		"    -o source=IMAGE        the composefs image to serve (required)\n"
		"    -o basedir=DIR[:DIR]   object directories holding the backing files\n"
		"    -o verity              check every block read against the fs-verity\n"
		"                           digest of its backing file\n"
		"    -o verity_memory=SIZE  memory for the Merkle trees of open files\n"
		"                           (bytes, or with K, M or G; default 64M)\n"
		"    -o digest=HEX          the image must have this fs-verity digest\n"
		"    -o noacl               do not expose POSIX ACLs\n"
		"    -o remote=URL          fetch backing files no basedir has from the store\n"
		"                           at URL into the first basedir when first opened\n"
		"\n",
		prog);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cfs_opts *o = data;
	const char *value = strchr(arg, '=');
	char *copy;

	if (key != KEY_SOURCE && key != KEY_BASEDIR && key != KEY_DIGEST &&
	    key != KEY_VERITY_MEMORY && key != KEY_REMOTE)
		return 1; /* keep */
	value = value ? value + 1 : "";
	if (key == KEY_BASEDIR && o->basedir != NULL && *value != '\0') {
		if (asprintf(&copy, "%s:%s", o->basedir, value) < 0)
			return -1;
	} else {
		copy = strdup(value);
		if (copy == NULL)
			return -1;
	}
	if (key == KEY_SOURCE) {
		free(o->source);
		o->source = copy;
	} else if (key == KEY_BASEDIR) {
		free(o->basedir);
		o->basedir = copy;
	} else if (key == KEY_REMOTE) {
		free(o->remote);
		o->remote = copy;
	} else if (key == KEY_DIGEST) {
		free(o->digest);
		o->digest = copy;
	} else {
		free(o->verity_memory);
		o->verity_memory = copy;
	}
	return 0;
}

/* "123", "64K", "16M", "2G" (powers of 1024) to bytes; -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0' || (shift > 0 && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* ---- FUSE operations ---------------------------------------------------------- */

static struct cfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* FUSE node ids are inode index + 1, so the root (index 0) is
 * FUSE_ROOT_ID. */
static bool get_inode(struct lcfs_view *v, fuse_ino_t ino, uint32_t *idx)
{
	if (ino == 0 || ino > v->n_inodes)
		return false;
	*idx = (uint32_t)(ino - 1);
	return true;
}

static void fill_entry(struct lcfs_view *v, uint32_t idx, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	lcfs_view_stat(v, idx, &e->attr);
	e->ino = (fuse_ino_t)idx + 1;
	e->generation = 1;
	e->attr_timeout = CFS_TIMEOUT;
	e->entry_timeout = CFS_TIMEOUT;
}

static void cfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct cfs_fs *fs = userdata;
	unsigned want = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
			FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_EXPORT_SUPPORT;

	if (fs->acl)
		want |= FUSE_CAP_POSIX_ACL;
	conn->want |= conn->capable & want;
	fs->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
}

static void cfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct lcfs_view *v = &fs_of(req)->view;
	struct fuse_entry_param e;
	uint32_t dir;
	int64_t idx;

	if (!get_inode(v, parent, &dir)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!S_ISDIR(v->inodes[dir].mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* Only sent for "." and ".." when the kernel rebuilds a path for an
	 * exported file handle. */
	if (strcmp(name, ".") == 0)
		idx = dir;
	else if (strcmp(name, "..") == 0)
		idx = v->inodes[dir].parent;
	else
		idx = lcfs_view_lookup(v, dir, name, strlen(name));
	if (idx < 0) {
		/* A negative entry the kernel may cache. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = CFS_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (v->inodes[idx].lookup_err != 0) {
		fuse_reply_err(req, v->inodes[idx].lookup_err);
		return;
	}
	fill_entry(v, (uint32_t)idx, &e);
	fuse_reply_entry(req, &e);
}

static void cfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lcfs_view *v = &fs_of(req)->view;
	struct stat st;
	uint32_t idx;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (v->inodes[idx].lookup_err != 0) {
		fuse_reply_err(req, v->inodes[idx].lookup_err);
		return;
	}
	lcfs_view_stat(v, idx, &st);
	fuse_reply_attr(req, &st, CFS_TIMEOUT);
}

static void cfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct lcfs_view *v = &fs_of(req)->view;
	const char *target;
	uint32_t idx;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	target = lcfs_view_readlink(v, idx);
	if (target == NULL) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_readlink(req, target);
}

static void cfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lcfs_view *v = &fs_of(req)->view;
	uint32_t idx;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!S_ISDIR(v->inodes[idx].mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* Where the kernel can, it then opens directories without asking
	 * (and caches their listings, as below): one round trip less per
	 * directory walked. */
	if (fs_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* The listing never changes: let the kernel cache it. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Offsets: 1 is after ".", 2 after "..", 2 + k after the k-th child. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct lcfs_view *v = &fs_of(req)->view;
	const struct lcfs_view_inode *d;
	cleanup_free char *buf = NULL;
	size_t used = 0;
	uint64_t total;
	uint32_t dir;

	if (!get_inode(v, ino, &dir)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	d = &v->inodes[dir];
	if (!S_ISDIR(d->mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size ? size : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	total = 2 + (uint64_t)d->n_children;
	for (uint64_t k = off < 0 ? 0 : (uint64_t)off; k < total; k++) {
		struct fuse_entry_param e;
		const char *name;
		uint32_t idx;
		size_t need;

		if (k == 0) {
			name = ".";
			idx = dir;
		} else if (k == 1) {
			name = "..";
			idx = d->parent;
		} else {
			const struct lcfs_view_dirent *de = &v->dirents[d->first_child + k - 2];

			name = de->name;
			idx = de->inode;
		}
		fill_entry(v, idx, &e);
		if (plus) {
			/* No attributes for what the kernel would fail to look
			 * up (and none needed for "." and ".."): node id 0
			 * tells the kernel to look it up later. */
			if (k < 2 || v->inodes[idx].lookup_err != 0)
				e.ino = 0;
			need = fuse_add_direntry_plus(req, buf + used, size - used,
						      name, &e, (off_t)(k + 1));
		} else {
			need = fuse_add_direntry(req, buf + used, size - used, name,
						 &e.attr, (off_t)(k + 1));
		}
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
}

static void cfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void cfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

/* -o remote, called when no basedir has the backing file @path: fetches
 * it into the first basedir, checking its digest. 0, or -errno and the
 * reason in @why. */
static int fetch_object(void *data, const char *path, uint64_t size, char *why,
			size_t why_size)
{
	struct lcfs_fetcher *fetcher = data;
	struct lcfs_error err = { 0 };
	uint8_t digest[LCFS_DIGEST_SIZE];
	int r;

	if (!lcfs_digest_from_object_path(path, digest)) {
		snprintf(why, why_size, "not an object name");
		return -EINVAL;
	}
	r = lcfs_fetcher_get(fetcher, digest, size, &err);
	if (r < 0)
		snprintf(why, why_size, "%s", err.msg[0] != '\0' ? err.msg : strerror(-r));
	return r;
}

static struct lcfs_view_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct lcfs_view_handle *)(uintptr_t)fi->fh;
}

static void cfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct lcfs_view *v = &fs_of(req)->view;
	struct lcfs_view_handle *h = NULL;
	uint32_t idx;
	int r;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (S_ISDIR(v->inodes[idx].mode)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	r = lcfs_view_open(v, idx, &h);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;
#if HAVE_FUSE_NOFLUSH
	fi->noflush = 1; /* libfuse 3.11 */
#endif
	if (fuse_reply_open(req, fi) != 0)
		lcfs_view_close(v, h); /* the open was interrupted */
}

static void cfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	lcfs_view_close(&fs_of(req)->view, handle_of(fi));
	fuse_reply_err(req, 0);
}

static void cfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct lcfs_view_handle *h = handle_of(fi);
	cleanup_free char *buf = NULL;
	ssize_t n;

	if (lcfs_view_can_splice(h)) {
		/* Spliced from the backing file where the kernel allows. */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = h->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	buf = malloc(size ? size : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = lcfs_view_read(&fs_of(req)->view, h, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void cfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	off_t r = lcfs_view_lseek(&fs_of(req)->view, handle_of(fi), off, whence);

	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

static void cfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	struct lcfs_view *v = &fs_of(req)->view;
	const struct lcfs_view_xattr *x = NULL;
	uint32_t idx;
	int r;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	r = lcfs_view_getxattr(v, idx, name, &x);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (size == 0)
		fuse_reply_xattr(req, x->value_len);
	else if (size < x->value_len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, x->value, x->value_len);
}

/* Whether the caller has CAP_SYS_ADMIN, which EROFS requires before it
 * lists trusted.* names (the VFS itself guards their values). Assumed
 * when it cannot be told. */
static bool caller_is_admin(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64], line[256];
	bool admin = true;
	FILE *f;

	if (ctx == NULL || ctx->pid <= 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)ctx->pid);
	f = fopen(path, "re");
	if (f == NULL)
		return true;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			unsigned long long caps = strtoull(line + 7, NULL, 16);

			admin = (caps >> 21) & 1; /* CAP_SYS_ADMIN */
			break;
		}
	}
	fclose(f);
	return admin;
}

static void cfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct lcfs_view *v = &fs_of(req)->view;
	cleanup_free char *buf = NULL;
	bool admin;
	uint32_t idx;
	ssize_t n;

	if (!get_inode(v, ino, &idx)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	admin = v->inodes[idx].n_xattrs == 0 || caller_is_admin(req);
	n = lcfs_view_listxattr(v, idx, admin, NULL, 0);
	if (size == 0) {
		fuse_reply_xattr(req, (size_t)n);
		return;
	}
	if (size < (size_t)n) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = lcfs_view_listxattr(v, idx, admin, buf, (size_t)n);
	fuse_reply_buf(req, buf, n < 0 ? 0 : (size_t)n);
}

static void cfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct cfs_fs *fs = fs_of(req);
	struct statvfs s;

	memset(&s, 0, sizeof(s));
	s.f_bsize = 4096;
	s.f_frsize = 4096;
	s.f_blocks = fs->image_blocks;
	s.f_files = fs->view.n_inodes;
	s.f_namemax = LCFS_MAX_NAME_LENGTH;
	fuse_reply_statfs(req, &s);
}

static const struct fuse_lowlevel_ops cfs_ops = {
	.init = cfs_init,
	.lookup = cfs_lookup,
	.getattr = cfs_getattr,
	.readlink = cfs_readlink,
	.opendir = cfs_opendir,
	.readdir = cfs_readdir,
	.readdirplus = cfs_readdirplus,
	.open = cfs_open,
	.release = cfs_release,
	.read = cfs_read,
	.lseek = cfs_lseek,
	.getxattr = cfs_getxattr,
	.listxattr = cfs_listxattr,
	.statfs = cfs_statfs,
};

/* ---- Start-up ------------------------------------------------------------------- */

/* The view's log lines: on stderr, or to syslog once daemonised. */
static void log_line(void *data, const char *line)
{
	const struct cfs_fs *fs = data;

	if (fs->use_syslog)
		syslog(LOG_ERR, "%s", line);
	else
		fprintf(stderr, "%s: %s\n", prog, line);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Loads the image; with @digest (hex) it must have that fs-verity digest,
 * checked over the very bytes that are then parsed. */
static struct lcfs_node_s *load_image(const char *path, const char *digest,
				      bool *acl, uint64_t *blocks)
{
	struct lcfs_erofs_header_s hdr;
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	cleanup_fd int fd = -1;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		die("cannot stat '%s': %s", path, strerror(errno));
	if (pread(fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr))
		*acl = le32toh(hdr.flags) & LCFS_EROFS_FLAGS_HAS_ACL;
	*blocks = (uint64_t)st.st_size / 4096;

	if (digest != NULL) {
		uint8_t want[LCFS_DIGEST_SIZE], got[LCFS_DIGEST_SIZE];
		cleanup_free uint8_t *data = NULL;
		size_t len = 0;
		int r;

		if (lcfs_digest_from_hex(digest, strlen(digest), want) < 0)
			die("invalid digest '%s': expected 64 hex digits", digest);
		r = lcfs_read_all(fd, SIZE_MAX, &data, &len);
		if (r < 0)
			die("cannot read '%s': %s", path, strerror(-r));
		if (lcfs_compute_fsverity_from_data(got, data, len) < 0)
			die("cannot compute the fs-verity digest of '%s': %s", path,
			    strerror(errno));
		if (memcmp(want, got, sizeof(want)) != 0)
			die("'%s' has the wrong fs-verity digest", path);
		root = lcfs_image_load(data, len, NULL, &err);
	} else {
		root = tool_image_load(fd, NULL, &err);
	}
	if (root == NULL) {
		tool_print_error(prog, path, &err);
		exit(1);
	}
	return root;
}

/* Opens each ':'-separated directory of @list; returns the count. */
static size_t open_basedirs(char *list, int **fds)
{
	size_t n = 0, cap = 1;
	char *save = NULL;

	for (const char *p = list; *p; p++)
		cap += *p == ':';
	*fds = calloc(cap, sizeof(int));
	if (*fds == NULL)
		die("out of memory");
	for (char *dir = strtok_r(list, ":", &save); dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			die("cannot open basedir '%s': %s", dir, strerror(errno));
		(*fds)[n++] = fd;
	}
	return n;
}

/* -o remote=URL: fetches go into the first basedir. */
static int open_remote(struct cfs_fs *fs, const struct cfs_opts *o)
{
	struct lcfs_fetch_options fo = { .url = o->remote };
	struct lcfs_error err = { 0 };
	cleanup_free char *store = NULL;
	char buf[600];
	int r;

	if (o->basedir == NULL || o->basedir[0] == '\0') {
		fprintf(stderr, "%s: -o remote needs a basedir to fetch into\n", prog);
		return -EINVAL;
	}
	store = strndup(o->basedir, strcspn(o->basedir, ":"));
	if (store == NULL)
		return -ENOMEM;
	r = lcfs_fetcher_new(store, &fo, &fs->fetcher, &err);
	if (r < 0) {
		lcfs_error_format(&err, buf, sizeof(buf));
		fprintf(stderr, "%s: cannot fetch from '%s': %s\n", prog, o->remote, buf);
	}
	return r;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd;
	struct cfs_opts o = { 0 };
	struct fuse_session *se;
	struct cfs_fs fs;
	struct lcfs_node_s *root;
	int *basedirs = NULL;
	size_t n_basedirs = 0;
	struct lcfs_verity_budget *budget = NULL;
	uint64_t verity_memory = DEFAULT_VERITY_MEMORY;
	bool acl = false;
	int r, ret = 1;

	memset(&fs, 0, sizeof(fs));
	memset(&cmd, 0, sizeof(cmd));
	if (fuse_opt_parse(&args, &o, cfs_opt_spec, opt_proc) < 0 ||
	    fuse_parse_cmdline(&args, &cmd) != 0)
		goto out_args; /* libfuse said why */
	if (cmd.show_help) {
		usage(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (cmd.show_version) {
		printf("%s %s\n", prog, PACKAGE_VERSION);
		/* Ours first: libfuse runs fusermount3, which writes directly. */
		fflush(stdout);
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (cmd.mountpoint == NULL) {
		fprintf(stderr, "%s: no mountpoint given\n", prog);
		usage(stderr);
		goto out_args;
	}
	if (o.source == NULL || o.source[0] == '\0') {
		fprintf(stderr, "%s: no image given (-o source=IMAGE)\n", prog);
		goto out_args;
	}

	if (o.verity_memory != NULL &&
	    parse_size(o.verity_memory, &verity_memory) < 0) {
		fprintf(stderr, "%s: invalid verity_memory '%s': expected a size such "
			"as 65536, 512K or 64M\n", prog, o.verity_memory);
		goto out_args;
	}
	budget = lcfs_verity_budget_new(verity_memory);
	if (budget == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out_args;
	}

	root = load_image(o.source, o.digest, &acl, &fs.image_blocks);
	if (o.basedir != NULL)
		n_basedirs = open_basedirs(o.basedir, &basedirs);
	fs.acl = acl && !o.noacl;
	r = lcfs_view_init(&fs.view, root, fs.acl);
	if (r < 0) {
		fprintf(stderr, "%s: '%s': %s\n", prog, o.source, strerror(-r));
		goto out_view;
	}
	fs.view.basedirs = basedirs;
	fs.view.n_basedirs = n_basedirs;
	fs.view.verity = o.verity;
	fs.view.budget = budget;
	fs.view.log = log_line;
	fs.view.log_data = &fs;
	if (o.remote != NULL) {
		if (open_remote(&fs, &o) < 0)
			goto out_view;
		fs.view.fetch = fetch_object;
		fs.view.fetch_data = fs.fetcher;
	}

	/* Appended last, so that they win over whatever was given. */
	if (fuse_opt_add_arg(&args, "-oro,default_permissions") != 0) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out_view;
	}
	se = fuse_session_new(&args, &cfs_ops, sizeof(cfs_ops), &fs);
	if (se == NULL)
		goto out_view;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) != 0) {
		fprintf(stderr, "%s: cannot mount on '%s'\n", prog, cmd.mountpoint);
		goto out_signals;
	}
	if (fuse_daemonize(cmd.foreground) != 0)
		goto out_unmount;
	if (!cmd.foreground) {
		openlog(prog, LOG_PID, LOG_DAEMON);
		fs.use_syslog = true;
	}
	if (cmd.singlethread) {
		r = fuse_session_loop(se);
	} else {
#if FUSE_USE_VERSION >= 312
		struct fuse_loop_config *config = fuse_loop_cfg_create();

		if (config == NULL) {
			fprintf(stderr, "%s: out of memory\n", prog);
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(config, (unsigned)cmd.clone_fd);
		/* UINT_MAX: not given (libfuse warns when it is passed on). */
		if (cmd.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(config, cmd.max_idle_threads);
		fuse_loop_cfg_set_max_threads(config, cmd.max_threads);
		r = fuse_session_loop_mt(se, config);
		fuse_loop_cfg_destroy(config);
#else
		struct fuse_loop_config config = {
			.clone_fd = cmd.clone_fd,
			.max_idle_threads = cmd.max_idle_threads,
		};

		r = fuse_session_loop_mt(se, &config);
#endif
	}
	ret = r == 0 ? 0 : 1;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_view:
	lcfs_fetcher_free(fs.fetcher);
	lcfs_view_release(&fs.view);
	for (size_t k = 0; k < n_basedirs; k++)
		close(basedirs[k]);
	free(basedirs);
out_args:
	lcfs_verity_budget_free(budget);
	free(o.verity_memory);
	free(cmd.mountpoint);
	free(o.source);
	free(o.basedir);
	free(o.digest);
	free(o.remote);
	fuse_opt_free_args(&args);
	return ret;
}
