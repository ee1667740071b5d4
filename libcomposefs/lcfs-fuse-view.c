/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The FUSE view: what the kernel mount of an image shows, computed once
 * from the library reader's tree (see lcfs-fuse-view.h).
 *
 * The reader returns the tree the way composefs-info dump prints it
 * (docs/dumpfile.md, "What an image gives back"): overlay xattrs private to
 * composefs are gone, escaped trusted.overlay.overlay.X are back to
 * trusted.overlay.X, input whiteouts are char devices 0/0 again and the
 * root's 00..ff whiteouts are dropped. The kernel mount differs from that
 * in one place only: overlayfs does not treat the escaped whiteouts of a
 * composefs image as whiteouts, it shows them as what they are stored as
 * (docs/image-format.md, "Input whiteouts"): an empty regular file carrying
 * trusted.overlay.whiteout and user.overlay.whiteout, in a directory
 * carrying trusted.overlay.whiteouts and user.overlay.whiteouts. That is
 * added back here; tests/fuse/test-fuse-compare.py checks it against the
 * kernel.
 */
#include "lcfs-fuse-view.h"
#include "erofs-xattr-names.h"
#include "lcfs-compat.h"
#include "lcfs-util.h"
#include "lcfs-node.h"
#include "lcfs-walk.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <sys/types.h>
#include <string.h>

#define OVL_WHITEOUT LCFS_OVL_PREFIX LCFS_OVL_WHITEOUT
#define OVL_WHITEOUTS LCFS_OVL_PREFIX LCFS_OVL_WHITEOUTS
#define USER_WHITEOUT LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUT
#define USER_WHITEOUTS LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUTS

static void free_trees(struct lcfs_view_tree *list);

static bool is_whiteout(const struct lcfs_node_s *n)
{
	return (n->mode & S_IFMT) == S_IFCHR && n->rdev == 0;
}

/* EROFS lists only the name prefixes it knows (docs/image-format.md,
 * "Name prefixes"), and the ACLs only where the image has them. */
static bool xattr_visible(const char *key, size_t len, bool acl)
{
	unsigned index = lcfs_xattr_prefix_index(key, len, NULL);

	if (index == LCFS_XATTR_INDEX_NONE)
		return false;
	return acl || (index != LCFS_XATTR_INDEX_POSIX_ACL_ACCESS &&
		       index != LCFS_XATTR_INDEX_POSIX_ACL_DEFAULT);
}

/* ---- Node pointer to inode index ------------------------------------------- */

struct node_index {
	const struct lcfs_node_s *node;
	uint32_t index;
};

static int cmp_node_index(const void *a, const void *b)
{
	const struct lcfs_node_s *x = ((const struct node_index *)a)->node;
	const struct lcfs_node_s *y = ((const struct node_index *)b)->node;

	return x < y ? -1 : x > y;
}

static int64_t index_of(const struct node_index *map, size_t n,
			const struct lcfs_node_s *node)
{
	struct node_index key = { .node = node };
	const struct node_index *hit;

	hit = bsearch(&key, map, n, sizeof(*map), cmp_node_index);
	return hit ? (int64_t)hit->index : -ENOENT;
}

/* ---- Objects ---------------------------------------------------------------- */

/* overlayfs rejects an absolute redirect with an empty component
 * ("invalid redirect"): the payload is the redirect minus its leading
 * '/', so it must not start or end with '/' nor contain "//". */
static bool redirect_valid(const char *payload)
{
	size_t len = strlen(payload);

	return len > 0 && payload[0] != '/' && payload[len - 1] != '/' &&
	       strstr(payload, "//") == NULL;
}

static int cmp_object(const void *a, const void *b)
{
	const struct lcfs_view_object *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	if (x->digest == NULL || y->digest == NULL)
		return (x->digest != NULL) - (y->digest != NULL);
	return memcmp(x->digest, y->digest, LCFS_DIGEST_SIZE);
}

/* Collects the backing files of external regular files, one object per
 * distinct (path, digest), and points each inode at its object. */
static int collect_objects(struct lcfs_view *v)
{
	struct lcfs_view_object *objs;
	uint32_t n = 0, out = 0;

	for (uint32_t i = 0; i < v->n_inodes; i++) {
		if (v->inodes[i].object != LCFS_VIEW_NO_OBJECT)
			n++;
	}
	if (n == 0)
		return 0;
	objs = calloc(n, sizeof(*objs));
	if (objs == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->n_inodes; i++) {
		struct lcfs_view_inode *ino = &v->inodes[i];

		if (ino->object == LCFS_VIEW_NO_OBJECT)
			continue;
		objs[out].path = ino->node->payload;
		objs[out].digest = ino->node->digest_set ? ino->node->digest : NULL;
		objs[out].inode = i;
		out++;
	}
	qsort(objs, n, sizeof(*objs), cmp_object);
	out = 0;
	for (uint32_t k = 0; k < n; k++) {
		if (out > 0 && cmp_object(&objs[out - 1], &objs[k]) == 0) {
			v->inodes[objs[k].inode].object = out - 1;
			continue;
		}
		objs[out] = objs[k];
		v->inodes[objs[k].inode].object = out;
		out++;
	}
	/* Messages name the first inode (in tree order) using an object. */
	for (uint32_t i = v->n_inodes; i-- > 0;) {
		if (v->inodes[i].object != LCFS_VIEW_NO_OBJECT)
			objs[v->inodes[i].object].inode = i;
	}
	v->objects = objs;
	v->n_objects = out;
	return 0;
}

/* ---- Building the view ---------------------------------------------------- */

/* Gives each real node (hard link entries are left out) an index in
 * pre-order; the root is 0. */
static int number_nodes(struct lcfs_view *v, struct node_index **mapp,
			size_t *n_dirents, size_t *n_xattrs)
{
	struct node_index *map = NULL;
	struct lcfs_walk w;
	size_t cap = 0, n = 0;
	int r;

	*n_dirents = 0;
	*n_xattrs = 0;
	lcfs_walk_init(&w, v->root, LCFS_WALK_NO_LINKS);
	while ((r = lcfs_walk_next(&w)) > 0) {
		struct lcfs_node_s *node = w.node;
		void *p = lcfs_array_reserve(map, n, &cap, sizeof(*map), 1024);

		if (p == NULL) {
			r = -ENOMEM;
			goto out;
		}
		map = p;
		map[n].node = node;
		map[n].index = (uint32_t)n;
		/* Two extra slots: the whiteout markers on either side. */
		*n_xattrs += node->n_xattrs + 2;
		*n_dirents += node->n_children;
		n++;
		if (n > UINT32_MAX - 1) {
			r = -EFBIG;
			goto out;
		}
	}
	if (r < 0)
		goto out;
	v->n_inodes = (uint32_t)n;
	v->inodes = calloc(n, sizeof(*v->inodes));
	if (v->inodes == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		v->inodes[i].node = (struct lcfs_node_s *)map[i].node;
	qsort(map, n, sizeof(*map), cmp_node_index);
	*mapp = steal_pointer(&map);
out:
	lcfs_walk_release(&w);
	free(map);
	return r;
}

static void add_xattr(struct lcfs_view *v, const char *name, size_t name_len,
		      const char *value, size_t value_len)
{
	v->xattrs[v->n_xattrs++] = (struct lcfs_view_xattr){
		.name = name,
		.value = value,
		.name_len = (uint32_t)name_len,
		.value_len = (uint32_t)value_len,
	};
}

static void fill_inode(struct lcfs_view *v, uint32_t i)
{
	struct lcfs_view_inode *ino = &v->inodes[i];
	struct lcfs_node_s *n = ino->node;
	uint32_t type = n->mode & S_IFMT;

	ino->mode = n->mode & 0xFFFF;
	ino->size = n->size;
	ino->object = LCFS_VIEW_NO_OBJECT;
	if (is_whiteout(n)) {
		ino->mode = (ino->mode & ~(uint32_t)S_IFMT) | S_IFREG;
		ino->size = 0;
	} else if (type == S_IFLNK) {
		ino->size = n->payload ? strlen(n->payload) : 0;
	} else if (type == S_IFCHR || type == S_IFBLK || type == S_IFIFO ||
		   type == S_IFSOCK) {
		ino->size = 0;
	} else if (type == S_IFREG && n->size > 0 && n->content == NULL) {
		/* External file: overlayfs finds its data through the
		 * redirect; without one the lookup fails with EIO
		 * ("metacopy with no lower data"). */
		if (n->payload == NULL || n->payload[0] == '\0')
			ino->lookup_err = EIO;
		else if (!redirect_valid(n->payload))
			ino->lookup_err = EINVAL;
		else
			ino->object = 0; /* assigned by collect_objects() */
	}

	ino->first_xattr = v->n_xattrs;
	for (size_t k = 0; k < n->n_xattrs; k++) {
		const struct lcfs_xattr *x = n->xattrs[k];

		if (xattr_visible(lcfs_xattr_key(x), x->key_len, v->acl))
			add_xattr(v, lcfs_xattr_key(x), x->key_len,
				  lcfs_xattr_value(x), x->value_len);
	}
	if (is_whiteout(n)) {
		add_xattr(v, OVL_WHITEOUT, strlen(OVL_WHITEOUT), "", 0);
		add_xattr(v, USER_WHITEOUT, strlen(USER_WHITEOUT), "", 0);
	}
	if (type == S_IFDIR) {
		for (size_t c = 0; c < n->n_children; c++) {
			const struct lcfs_node_s *child = n->children[c];

			if (child->link_to == NULL && is_whiteout(child)) {
				add_xattr(v, OVL_WHITEOUTS, strlen(OVL_WHITEOUTS),
					  "", 0);
				add_xattr(v, USER_WHITEOUTS,
					  strlen(USER_WHITEOUTS), "", 0);
				break;
			}
		}
	}
	ino->n_xattrs = v->n_xattrs - ino->first_xattr;
}

int lcfs_view_init(struct lcfs_view *v, struct lcfs_node_s *root, bool acl)
{
	struct node_index *map = NULL;
	size_t n_dirents, n_xattrs;
	int r;

	memset(v, 0, sizeof(*v));
	v->root = root;
	v->acl = acl;
	pthread_mutex_init(&v->lock, NULL);
	if ((root->mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	r = number_nodes(v, &map, &n_dirents, &n_xattrs);
	if (r < 0)
		return r;
	if (n_dirents > UINT32_MAX || n_xattrs > UINT32_MAX) {
		r = -EFBIG;
		goto out;
	}
	v->dirents = calloc(n_dirents ? n_dirents : 1, sizeof(*v->dirents));
	v->xattrs = calloc(n_xattrs ? n_xattrs : 1, sizeof(*v->xattrs));
	if (v->dirents == NULL || v->xattrs == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < v->n_inodes; i++) {
		struct lcfs_view_inode *ino = &v->inodes[i];
		struct lcfs_node_s *n = ino->node;

		fill_inode(v, i);
		ino->first_child = v->n_dirents;
		for (size_t c = 0; c < n->n_children; c++) {
			struct lcfs_node_s *child = n->children[c];
			struct lcfs_node_s *target = lcfs_node_resolve_link(child);
			int64_t idx;

			idx = target ? index_of(map, v->n_inodes, target) : -ELOOP;
			/* A whiteout has one name (the loader refuses an
			 * image that gives it more); a tree that does is
			 * refused here too. */
			if (idx >= 0 && is_whiteout(target) &&
			    (child->link_to != NULL || target->nlink > 1))
				idx = -EINVAL;
			if (idx < 0) {
				r = (int)idx;
				goto out;
			}
			if (child->link_to == NULL)
				v->inodes[idx].parent = i;
			v->dirents[v->n_dirents++] = (struct lcfs_view_dirent){
				.name = child->name,
				.name_len = (uint32_t)strlen(child->name),
				.inode = (uint32_t)idx,
			};
		}
		ino->n_children = v->n_dirents - ino->first_child;
	}
	r = collect_objects(v);
out:
	free(map);
	return r;
}

void lcfs_view_release(struct lcfs_view *v)
{
	free_trees(v->idle_first);
	free(v->inodes);
	free(v->dirents);
	free(v->xattrs);
	free(v->objects);
	lcfs_node_unref(v->root);
	pthread_mutex_destroy(&v->lock);
	memset(v, 0, sizeof(*v));
}

/* ---- Queries ---------------------------------------------------------------- */

void lcfs_view_stat(const struct lcfs_view *v, uint32_t i, struct stat *st)
{
	const struct lcfs_view_inode *ino = &v->inodes[i];
	const struct lcfs_node_s *n = ino->node;
	uint32_t type = ino->mode & S_IFMT;

	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)i + 1;
	st->st_mode = ino->mode;
	st->st_nlink = n->nlink;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	/* The raw 32-bit value: the FUSE kernel module decodes it exactly as
	 * EROFS decodes the stored one. */
	if (type == S_IFCHR || type == S_IFBLK)
		st->st_rdev = n->rdev;
	st->st_size = (off_t)ino->size;
	st->st_blksize = 4096;
	/* As EROFS counts them: whole blocks of the size. */
	st->st_blocks = (blkcnt_t)(((ino->size + 4095) / 4096) * 8);
	st->st_mtim.tv_sec = n->mtime_sec;
	st->st_mtim.tv_nsec = n->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

int64_t lcfs_view_lookup(const struct lcfs_view *v, uint32_t dir, const char *name,
			size_t name_len)
{
	const struct lcfs_view_inode *d = &v->inodes[dir];
	const struct lcfs_view_dirent *ents = v->dirents + d->first_child;
	size_t lo = 0, hi = d->n_children;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = lcfs_bytes_cmp(name, name_len, ents[mid].name, ents[mid].name_len);

		if (c == 0)
			return ents[mid].inode;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -ENOENT;
}

char *lcfs_view_path(const struct lcfs_view *v, uint32_t i)
{
	return lcfs_node_path(v->inodes[i].node);
}

const char *lcfs_view_readlink(const struct lcfs_view *v, uint32_t i)
{
	const struct lcfs_view_inode *ino = &v->inodes[i];

	return S_ISLNK(ino->mode) ? ino->node->payload : NULL;
}

int lcfs_view_getxattr(const struct lcfs_view *v, uint32_t i, const char *name,
		       const struct lcfs_view_xattr **out)
{
	const struct lcfs_view_inode *ino = &v->inodes[i];
	const size_t ovl = strlen(LCFS_OVL_PREFIX);
	const size_t esc = strlen(LCFS_OVL_ESCAPED_PREFIX);
	size_t len = strlen(name);

	if (!lcfs_xattr_name_known(name, len))
		return -EOPNOTSUPP;
	for (uint32_t k = 0; k < ino->n_xattrs; k++) {
		const struct lcfs_view_xattr *x = &v->xattrs[ino->first_xattr + k];

		if (x->name_len != len || memcmp(x->name, name, len) != 0)
			continue;
		/* overlayfs reads trusted.overlay.X under its escaped name,
		 * trusted.overlay.overlay.X, and fails when that is longer
		 * than an xattr name may be (it still lists the name). */
		if (len > ovl && memcmp(name, LCFS_OVL_PREFIX, ovl) == 0 &&
		    len + (esc - ovl) > XATTR_NAME_MAX)
			return -EOPNOTSUPP;
		*out = x;
		return 0;
	}
	return -ENODATA;
}

ssize_t lcfs_view_listxattr(const struct lcfs_view *v, uint32_t i, bool trusted,
			    char *buf, size_t size)
{
	const struct lcfs_view_inode *ino = &v->inodes[i];
	size_t total = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 0; k < ino->n_xattrs; k++) {
			const struct lcfs_view_xattr *x = &v->xattrs[ino->first_xattr + k];

			if (!trusted && lcfs_xattr_prefix_index(x->name, x->name_len, NULL) ==
						LCFS_XATTR_INDEX_TRUSTED)
				continue;
			if (pass == 1) {
				memcpy(buf, x->name, x->name_len);
				buf[x->name_len] = '\0';
				buf += x->name_len + 1;
			} else {
				total += x->name_len + 1;
			}
		}
		if (size == 0)
			return (ssize_t)total;
		if (size < total)
			return -ERANGE;
	}
	return (ssize_t)total;
}

/* ---- Backing files ----------------------------------------------------------- */

/* Opens the backing file @path below @dirfd. Only a regular file counts as
 * found; anything else is -ENOENT, as for overlayfs, and is never opened
 * for reading (it could be a FIFO or a device). */
static int open_beneath(int dirfd, const char *path)
{
	cleanup_fd int pfd = -1;
	struct stat st;
	int fd;

	pfd = lcfs_open_confined(dirfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return pfd;
	if (fstat(pfd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	fd = lcfs_open_confined(dirfd, path,
				O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

char *lcfs_log_escape(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	char *out, *p;

	for (const char *c = s; *c; c++)
		n += (unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\' ? 4 : 1;
	out = p = malloc(n + 1);
	if (out == NULL)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\') {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0xf];
		} else {
			*p++ = (char)c;
		}
	}
	*p = '\0';
	return out;
}

/* One log line about the backing file of @obj: "'PATH': backing file
 * 'OBJECT': WHAT", both names escaped (they come from the image). */
static void log_object(struct lcfs_view *v, const struct lcfs_view_object *obj,
		       const char *what)
{
	cleanup_free char *path = NULL;
	cleanup_free char *epath = NULL;
	cleanup_free char *eobj = NULL;
	cleanup_free char *line = NULL;

	if (v->log == NULL)
		return;
	path = lcfs_view_path(v, obj->inode);
	epath = path ? lcfs_log_escape(path) : NULL;
	eobj = lcfs_log_escape(obj->path);
	if (asprintf(&line, "'%s': backing file '%s': %s", epath ? epath : "?",
		     eobj ? eobj : "?", what) < 0)
		return;
	v->log(v->log_data, line);
}

/* Logs a failure to open @obj once per mount. */
static void report(struct lcfs_view *v, struct lcfs_view_object *obj, const char *what)
{
	bool first;

	pthread_mutex_lock(&v->lock);
	first = !obj->reported;
	obj->reported = true;
	pthread_mutex_unlock(&v->lock);
	if (first)
		log_object(v, obj, what);
}

static bool same_file(const struct lcfs_view_tree *t, const struct stat *st)
{
	return t->dev == st->st_dev && t->ino == st->st_ino && t->size == st->st_size &&
	       t->mtime.tv_sec == st->st_mtim.tv_sec &&
	       t->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       t->ctime.tv_sec == st->st_ctim.tv_sec &&
	       t->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* ---- Trees of unchanged files, kept after close --------------------------- */

/* These run with v->lock held. */
static void idle_unlink(struct lcfs_view *v, struct lcfs_view_tree *ct)
{
	if (ct->idle_prev != NULL)
		ct->idle_prev->idle_next = ct->idle_next;
	else
		v->idle_first = ct->idle_next;
	if (ct->idle_next != NULL)
		ct->idle_next->idle_prev = ct->idle_prev;
	else
		v->idle_last = ct->idle_prev;
	ct->idle_prev = ct->idle_next = NULL;
}

static void idle_append(struct lcfs_view *v, struct lcfs_view_tree *ct)
{
	ct->idle_prev = v->idle_last;
	ct->idle_next = NULL;
	if (v->idle_last != NULL)
		v->idle_last->idle_next = ct;
	else
		v->idle_first = ct;
	v->idle_last = ct;
}

/* Forgets the unused tree @ct; returns it for freeing outside the lock. */
static struct lcfs_view_tree *idle_drop(struct lcfs_view *v, struct lcfs_view_tree *ct)
{
	idle_unlink(v, ct);
	if (v->objects[ct->object].tree == ct)
		v->objects[ct->object].tree = NULL;
	ct->idle_next = NULL;
	return ct;
}

static void free_trees(struct lcfs_view_tree *list)
{
	while (list != NULL) {
		struct lcfs_view_tree *next = list->idle_next;

		lcfs_verity_tree_free(list->tree);
		free(list);
		list = next;
	}
}

/* Frees unused trees, oldest first, until a whole tree of @need bytes fits
 * in the budget or none is left. With v->lock held (the budget's lock is
 * only ever taken inside it). */
static void idle_make_room(struct lcfs_view *v, uint64_t need)
{
	while (v->idle_first != NULL && v->budget != NULL &&
	       lcfs_verity_budget_available(v->budget) < need)
		free_trees(idle_drop(v, v->idle_first));
}

static void report_digest(struct lcfs_view *v, struct lcfs_view_object *obj,
			  const uint8_t *found, const char *how)
{
	char want[65], got[65], detail[256];

	lcfs_digest_to_hex(obj->digest, want);
	lcfs_digest_to_hex(found, got);
	snprintf(detail, sizeof(detail), "wrong fs-verity digest%s: expected %s, found %s",
		 how, want, got);
	report(v, obj, detail);
}

/*
 * Sets up the checks of every read of @h from @fd (the backing file of
 * @obj): none when the kernel has fs-verity on it with the image's digest
 * (it checks each page itself, and the file cannot change), else a Merkle
 * tree, reused from an earlier open of the same unchanged file or built
 * now. 0 or -EIO (logged).
 */
static int attach_verity(struct lcfs_view *v, struct lcfs_view_object *obj, int fd,
			 struct lcfs_view_handle *h)
{
	uint8_t found[LCFS_DIGEST_SIZE];
	struct lcfs_verity_tree *tree = NULL;
	struct lcfs_view_tree *ct, *stale;
	struct stat st;
	char detail[256];
	int r;

	if (obj->digest == NULL) {
		report(v, obj, "the image has no fs-verity digest for it");
		return -EIO;
	}
	r = lcfs_fd_measure_fsverity(found, fd);
	if (r == 0) {
		if (memcmp(found, obj->digest, LCFS_DIGEST_SIZE) == 0)
			return 0;
		report_digest(v, obj, found, " (kernel fs-verity)");
		return -EIO;
	}
	if (r != -ENOVERITY) {
		snprintf(detail, sizeof(detail), "cannot measure its fs-verity: %s",
			 strerror(-r));
		report(v, obj, detail);
		return -EIO;
	}
	if (fstat(fd, &st) < 0)
		return -EIO;

	pthread_mutex_lock(&v->lock);
	ct = obj->tree;
	stale = NULL;
	if (ct != NULL && same_file(ct, &st)) {
		if (ct->refs++ == 0)
			idle_unlink(v, ct);
		h->tree = ct;
	} else {
		/* An unused tree of a file since changed is of no use. */
		if (ct != NULL && ct->refs == 0)
			stale = idle_drop(v, ct);
		idle_make_room(v, lcfs_verity_tree_memory((uint64_t)st.st_size));
	}
	pthread_mutex_unlock(&v->lock);
	free_trees(stale);
	if (h->tree != NULL)
		return 0;

	r = lcfs_verity_tree_build(fd, (uint64_t)st.st_size, obj->digest, v->budget,
				   &tree, found);
	if (r == -EWRONGVERITY) {
		report_digest(v, obj, found, "");
		return -EIO;
	}
	if (r < 0) {
		snprintf(detail, sizeof(detail),
			 "cannot compute its fs-verity digest: %s", strerror(-r));
		report(v, obj, detail);
		return -EIO;
	}
	ct = calloc(1, sizeof(*ct));
	if (ct == NULL) {
		lcfs_verity_tree_free(tree);
		return -ENOMEM;
	}
	ct->tree = tree;
	ct->refs = 1;
	ct->object = h->object;
	ct->dev = st.st_dev;
	ct->ino = st.st_ino;
	ct->size = st.st_size;
	ct->mtime = st.st_mtim;
	ct->ctime = st.st_ctim;
	/* The latest check wins; handles of an older tree keep it until
	 * they close, an unused one goes. */
	pthread_mutex_lock(&v->lock);
	stale = NULL;
	if (obj->tree != NULL && obj->tree->refs == 0)
		stale = idle_drop(v, obj->tree);
	obj->tree = ct;
	obj->reported = false;
	pthread_mutex_unlock(&v->lock);
	free_trees(stale);
	h->tree = ct;
	return 0;
}

/* Finds the backing file of @obj in the basedirs, or fetches it with
 * v->fetch. The fd or -errno (-EIO under verity or when the fetch fails,
 * logged). */
static int open_backing(struct lcfs_view *v, struct lcfs_view_object *obj)
{
	int fd = -ENOENT;

	/* Data-only layers are searched in order; only "not there" moves on
	 * to the next one. */
	for (size_t k = 0; k < v->n_basedirs; k++) {
		fd = open_beneath(v->basedirs[k], obj->path);
		if (fd != -ENOENT)
			break;
	}
	/* -o remote: the missing file is fetched into the first basedir
	 * (its digest checked on the way), then opened from there. */
	if (fd == -ENOENT && v->fetch != NULL && v->n_basedirs > 0) {
		char why[256], what[300];
		int r = v->fetch(v->fetch_data, obj->path, v->inodes[obj->inode].size,
				 why, sizeof(why));

		if (r < 0) {
			snprintf(what, sizeof(what), "cannot fetch: %s", why);
			report(v, obj, what);
			return -EIO;
		}
		fd = open_beneath(v->basedirs[0], obj->path);
	}
	if (fd < 0 && v->verity) {
		report(v, obj, strerror(-fd));
		return -EIO;
	}
	return fd;
}

int lcfs_view_open(struct lcfs_view *v, uint32_t i, struct lcfs_view_handle **out)
{
	struct lcfs_view_handle *h;
	struct lcfs_view_object *obj;
	int r;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->inode = i;
	h->object = v->inodes[i].object;
	h->fd = -1;
	if (h->object != LCFS_VIEW_NO_OBJECT) {
		obj = &v->objects[h->object];
		h->fd = open_backing(v, obj);
		if (h->fd < 0) {
			r = h->fd;
			free(h);
			return r;
		}
		if (v->verity) {
			r = attach_verity(v, obj, h->fd, h);
			if (r < 0) {
				close(h->fd);
				free(h);
				return r;
			}
		}
	}
	*out = h;
	return 0;
}

off_t lcfs_view_lseek(const struct lcfs_view *v, const struct lcfs_view_handle *h,
		      off_t off, int whence)
{
	uint64_t size = v->inodes[h->inode].size;
	off_t r;

	if (h->fd >= 0) {
		r = lseek(h->fd, off, whence);
		return r < 0 ? -errno : r;
	}
	/* Data held in the image has no holes: as the kernel's generic
	 * llseek, data runs from 0 to the size, then one hole. */
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if ((uint64_t)off >= size)
		return -ENXIO;
	return whence == SEEK_DATA ? off : (off_t)size;
}

bool lcfs_view_can_splice(const struct lcfs_view_handle *h)
{
	return h->fd >= 0 && h->tree == NULL;
}

ssize_t lcfs_view_read(struct lcfs_view *v, struct lcfs_view_handle *h, void *buf,
		      size_t size, off_t off)
{
	const struct lcfs_view_inode *inode = &v->inodes[h->inode];
	uint64_t bad = 0;
	ssize_t n;

	if (off < 0)
		return -EINVAL;
	if (h->tree != NULL) {
		n = lcfs_verity_tree_read(h->tree->tree, h->fd, buf, size,
					  (uint64_t)off, &bad);
		if (n == -EIO) {
			char detail[128];
			bool first;

			pthread_mutex_lock(&v->lock);
			first = !h->reported;
			h->reported = true;
			pthread_mutex_unlock(&v->lock);
			snprintf(detail, sizeof(detail),
				 "block %llu (offset %llu) fails fs-verity verification",
				 (unsigned long long)bad,
				 (unsigned long long)bad * 4096);
			if (first)
				log_object(v, &v->objects[h->object], detail);
		}
		return n;
	}
	if (h->fd >= 0) {
		do
			n = pread(h->fd, buf, size, off);
		while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : n;
	}
	/* Data held in the image. */
	if ((uint64_t)off >= inode->size || inode->node->content == NULL)
		return 0;
	if (size > inode->size - (uint64_t)off)
		size = (size_t)(inode->size - (uint64_t)off);
	memcpy(buf, inode->node->content + off, size);
	return (ssize_t)size;
}

void lcfs_view_close(struct lcfs_view *v, struct lcfs_view_handle *h)
{
	struct lcfs_view_tree *ct;

	if (h == NULL)
		return;
	ct = h->tree;
	if (ct != NULL) {
		bool unused = false;

		/* The current tree of its object stays, unused, for the next
		 * open; an outdated one goes with its last user. */
		pthread_mutex_lock(&v->lock);
		if (--ct->refs == 0) {
			if (v->objects[ct->object].tree == ct)
				idle_append(v, ct);
			else
				unused = true;
		}
		pthread_mutex_unlock(&v->lock);
		if (unused)
			free_trees(ct);
	}
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}
