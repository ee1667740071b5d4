/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Building a tree from a directory (docs/design.md, "Directory to image",
 * "Directory scan", "Content pass"): lcfs_build_tree() for mkcomposefs, and
 * the public lcfs_build(), lcfs_load_node_from_file() and
 * lcfs_node_set_from_content() (documented in lcfs-writer.h).
 *
 * Three steps:
 * 1. the scan, on the calling thread: lstat, readlink and xattrs of every
 *    entry, no file data. Iterative, with a bounded number of open
 *    directories, so that deep trees cost neither stack nor descriptors;
 * 2. with --hardlinks, names of one inode become hard links to its first
 *    name in depth-first name order (the order a reader meets them);
 * 3. the content pass over the regular files, on N threads taking files
 *    from a shared queue: inline content (1..64 bytes), fs-verity digest
 *    and digest path, and the copy into the object store. The threads
 *    start before the scan and take each directory's files as soon as it
 *    is read, large files first. Each file's result depends on its own
 *    data only, so the image does not depend on the number of threads or
 *    on the order of the work.
 */
#include "config.h"
#include "lcfs-compat.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

#include "lcfs-store.h"
#include "lcfs-node.h"
#include "lcfs-fsverity.h"
#include "lcfs-build.h"
#include "lcfs-tools.h"

#define BUILD_FLAGS_ALL                                                          \
	(LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USE_EPOCH | LCFS_BUILD_SKIP_DEVICES |   \
	 LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_NO_INLINE | LCFS_BUILD_USER_XATTRS | \
	 LCFS_BUILD_BY_DIGEST)

/* Directories the scan keeps open at once; deeper ones are reopened from
 * their nearest open ancestor when needed. */
#define MAX_OPEN_DIRS 64

#define DIRENT_BUF_SIZE (64 * 1024)
#define XATTR_VALUE_MAX (64 * 1024)
#define PROGRESS_INTERVAL_NS 100000000LL

/* What failed, for the error message. */
enum build_stage {
	STAGE_SCAN,
	STAGE_READ,
	STAGE_STORE,
	STAGE_CHANGED, /* the file changed while it was read */
};


/* Files waiting for the content pass; @next is the first not taken. */
struct work_list {
	struct lcfs_node_s **v;
	size_t n, cap, next;
};

/* Files from this size on are taken before smaller ones. */
#define BIG_FILE (1u << 20)

struct xattr_bufs {
	char *list;
	size_t list_cap;
	char *value; /* XATTR_VALUE_MAX bytes */
};

struct build_ctx {
	int flags;
	const char *source;   /* the path as given, for messages */
	const char *store_path;
	int user_dirfd;       /* what @source is relative to */
	int rootfd;           /* the source directory, -1 if not a directory */
	struct lcfs_node_s *root;

	pthread_mutex_t lock; /* protects @err and @failed_path */
	struct lcfs_error *err;
	char *failed_path;

	struct xattr_bufs xb;
	uint8_t *dirent_buf;

	/* --hardlinks: (dev, ino) of scanned non-directories with st_nlink
	 * > 1; node->scratch is the index + 1. */
	bool hardlinks;
	struct lcfs_inode_key *inodes;
	size_t n_inodes, cap_inodes;

	/* Content pass: the queue and the workers (under @lock). */
	struct work_list big, small;
	bool queue_closed;
	pthread_cond_t cond;      /* work arrived or the queue closed */
	pthread_cond_t done_cond; /* a worker finished */
	unsigned running;
	struct worker *workers;
	unsigned n_started;
	struct lcfs_store *store;
	atomic_bool failed;
	_Atomic uint64_t files_total, bytes_total; /* queued so far */
	_Atomic uint64_t files_done, bytes_done;
	struct lcfs_node_s **pending; /* one directory's files, scan thread */
	size_t n_pending, cap_pending;

	void (*progress)(void *data, uint64_t files_done, uint64_t files_total,
			 uint64_t bytes_done, uint64_t bytes_total);
	void *progress_data;
	struct timespec last_progress;
	uint64_t scan_entries;
	atomic_bool no_openat2;
};

/* ---- Paths and errors ---------------------------------------------------------- */

/* Path of @node relative to @root into @buf ("" for the root itself):
 * its length, or -ENAMETOOLONG if it does not fit. Reads only names and
 * parents, which nothing changes during the content pass. */
static ssize_t node_relpath(struct lcfs_node_s *root, struct lcfs_node_s *node,
			    char *buf, size_t size)
{
	size_t len = 0, pos;

	for (struct lcfs_node_s *n = node; n != root && n != NULL; n = n->parent)
		len += strlen(n->name) + 1;
	if (len > 0)
		len--; /* no leading slash */
	if (len + 1 > size)
		return -ENAMETOOLONG;
	buf[len] = '\0';
	pos = len;
	for (struct lcfs_node_s *n = node; n != root && n != NULL; n = n->parent) {
		size_t l = strlen(n->name);

		pos -= l;
		memcpy(buf + pos, n->name, l);
		if (pos > 0)
			buf[--pos] = '/';
	}
	return (ssize_t)len;
}

/* SOURCE joined with the relative path of @node and, if non-NULL, one more
 * component @name: the path named in error messages. malloc'd or NULL. */
static char *source_path(struct build_ctx *c, struct lcfs_node_s *node,
			 const char *name)
{
	size_t src_len = strlen(c->source);
	size_t rel_len = 0, name_len = name ? strlen(name) : 0;
	bool slash = src_len > 0 && c->source[src_len - 1] != '/';
	char *p;

	if (node != NULL && c->rootfd >= 0)
		for (struct lcfs_node_s *n = node; n != c->root && n != NULL; n = n->parent)
			rel_len += strlen(n->name) + 1;
	p = malloc(src_len + rel_len + name_len + 3);
	if (p == NULL)
		return NULL;
	memcpy(p, c->source, src_len);
	if (rel_len > 0) {
		if (slash)
			p[src_len++] = '/';
		node_relpath(c->root, node, p + src_len, rel_len + 1);
		src_len += rel_len - 1;
	}
	if (name != NULL) {
		if (slash || rel_len > 0)
			p[src_len++] = '/';
		memcpy(p + src_len, name, name_len);
		src_len += name_len;
	}
	p[src_len] = '\0';
	return p;
}

/* Records the first failure (thread-safe) and returns -@err. */
static int build_fail(struct build_ctx *c, struct lcfs_node_s *node,
		      const char *name, enum build_stage stage, int err)
{
	char *path = source_path(c, node, name);
	const char *shown = path ? path : c->source;

	pthread_mutex_lock(&c->lock);
	if (c->err == NULL || c->err->err == 0) {
		switch (stage) {
		case STAGE_SCAN:
			lcfs_error_set(c->err, err, "cannot access '%s': %s", shown,
				       strerror(err));
			break;
		case STAGE_READ:
			lcfs_error_set(c->err, err, "cannot read '%s': %s", shown,
				       strerror(err));
			break;
		case STAGE_STORE: {
			char problem[LCFS_STORE_PROBLEM_SIZE];

			if (c->store != NULL &&
			    lcfs_store_get_problem(c->store, problem, sizeof(problem)))
				lcfs_error_set(c->err, err, "cannot store '%s': %s", shown,
					       problem);
			else
				lcfs_error_set(c->err, err, "cannot store '%s' in '%s': %s",
					       shown, c->store_path, strerror(err));
			break;
		}
		case STAGE_CHANGED:
			lcfs_error_set(c->err, err,
				       "cannot read '%s': the file changed while it was read",
				       shown);
			break;
		}
		if (c->failed_path == NULL) {
			c->failed_path = path;
			path = NULL;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(path);
	atomic_store(&c->failed, true);
	return -err;
}

static void report_progress(struct build_ctx *c, bool force)
{
	struct timespec now;
	int64_t ns;

	if (c->progress == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(now.tv_sec - c->last_progress.tv_sec) * 1000000000LL +
	     (now.tv_nsec - c->last_progress.tv_nsec);
	if (!force && ns < PROGRESS_INTERVAL_NS)
		return;
	c->last_progress = now;
	/* While the scan runs, the totals are those found so far. */
	c->progress(c->progress_data, atomic_load(&c->files_done),
		    atomic_load(&c->files_total), atomic_load(&c->bytes_done),
		    atomic_load(&c->bytes_total));
}

/* ---- Loading one entry ------------------------------------------------------------ */

static int xattr_bufs_init(struct xattr_bufs *xb)
{
	xb->list_cap = 4096;
	xb->list = malloc(xb->list_cap);
	xb->value = malloc(XATTR_VALUE_MAX);
	if (xb->list == NULL || xb->value == NULL)
		return -ENOMEM;
	return 0;
}

static void xattr_bufs_release(struct xattr_bufs *xb)
{
	free(xb->list);
	free(xb->value);
}

/*
 * Copies the xattrs of @path onto @node: all of them, or only user.* ones
 * (docs/design.md, "Directory scan"). @path goes through /proc/self/fd, so
 * that symlinks' own xattrs are read; @follow selects whether its last
 * component (a magic link to an O_PATH descriptor) is followed. A failing
 * listxattr() fails the build, as in the reference.
 */
static int read_xattrs(struct lcfs_node_s *node, const char *path, bool follow,
		       int flags, struct xattr_bufs *xb)
{
	ssize_t len;

	for (;;) {
		len = follow ? listxattr(path, xb->list, xb->list_cap) :
			       llistxattr(path, xb->list, xb->list_cap);
		if (len >= 0)
			break;
		if (errno != ERANGE)
			return -errno;
		len = follow ? listxattr(path, NULL, 0) : llistxattr(path, NULL, 0);
		if (len < 0)
			return -errno;
		free(xb->list);
		xb->list_cap = (size_t)len + 1024;
		xb->list = malloc(xb->list_cap);
		if (xb->list == NULL)
			return -ENOMEM;
	}

	for (ssize_t off = 0; off < len;) {
		const char *name = xb->list + off;
		size_t name_len = strnlen(name, (size_t)(len - off));
		ssize_t vlen;
		int r;

		off += (ssize_t)name_len + 1;
		if (name_len == 0)
			continue;
		if ((flags & LCFS_BUILD_USER_XATTRS) && strncmp(name, "user.", 5) != 0)
			continue;
		vlen = follow ? getxattr(path, name, xb->value, XATTR_VALUE_MAX) :
				lgetxattr(path, name, xb->value, XATTR_VALUE_MAX);
		if (vlen < 0)
			return errno == ERANGE ? -EINVAL : -errno;
		r = lcfs_node_set_xattr_n(node, name, name_len, xb->value, (size_t)vlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A node with the attributes of @st (docs/design.md, "Directory scan").
 * NLINK stays 1: the scan never copies st_nlink. */
static struct lcfs_node_s *node_from_stat(const struct stat *st, int flags)
{
	struct lcfs_node_s *node = lcfs_node_new();

	if (node == NULL)
		return NULL;
	node->mode = st->st_mode;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	/* 32 bits (docs/image-format.md, "The node model") */
	node->rdev = (uint32_t)st->st_rdev;
	node->size = (uint64_t)st->st_size;
	if (!(flags & LCFS_BUILD_USE_EPOCH)) {
		node->mtime_sec = st->st_mtim.tv_sec;
		node->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	}
	return node;
}

static int read_symlink(struct lcfs_node_s *node, int dirfd, const char *name)
{
	char target[LCFS_MAX_PAYLOAD + 2];
	ssize_t len = readlinkat(dirfd, name, target, sizeof(target));
	char *copy;

	if (len < 0)
		return -errno;
	/* Targets of 4096 bytes or more cannot be stored (docs/design.md,
	 * "Directory scan"). */
	if (len > LCFS_MAX_PAYLOAD)
		return -ENAMETOOLONG;
	if (len == 0)
		return -EINVAL;
	copy = strndup(target, (size_t)len);
	if (copy == NULL)
		return -ENOMEM;
	lcfs_node_take_payload(node, copy);
	node->size = (uint64_t)len;
	return 0;
}

/*
 * Loads entry @name of the open directory @dirfd. Xattrs are read through
 * "/proc/self/fd/DIRFD/NAME" without following the last component, which
 * names the same inode as the reference's O_PATH descriptor, with one
 * open() less per entry.
 */
static int load_entry(struct build_ctx *c, int dirfd, const char *name,
		      struct stat *st, struct lcfs_node_s **out)
{
	struct lcfs_node_s *node;
	int r = 0;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	node = node_from_stat(st, c->flags);
	if (node == NULL)
		return -ENOMEM;
	if (S_ISLNK(st->st_mode))
		r = read_symlink(node, dirfd, name);
	if (r == 0 && !(c->flags & LCFS_BUILD_SKIP_XATTRS)) {
		char path[64 + NAME_MAX];

		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
		r = read_xattrs(node, path, false, c->flags, &c->xb);
	}
	if (r < 0) {
		lcfs_node_unref(node);
		return r;
	}
	*out = node;
	return 0;
}

/* Loads @name relative to @dirfd (any path, not only a directory entry),
 * xattrs read like the reference: through an O_PATH descriptor. */
static int load_path(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
		     struct stat *st, struct lcfs_node_s **out)
{
	struct lcfs_node_s *node;
	int r = 0;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	node = node_from_stat(st, flags);
	if (node == NULL)
		return -ENOMEM;
	if (S_ISLNK(st->st_mode))
		r = read_symlink(node, dirfd, name);
	if (r == 0 && !(flags & LCFS_BUILD_SKIP_XATTRS)) {
		int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		char path[64];

		if (fd < 0) {
			r = -errno;
		} else {
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			r = read_xattrs(node, path, true, flags, xb);
			close(fd);
		}
	}
	if (r < 0) {
		lcfs_node_unref(node);
		return r;
	}
	*out = node;
	return 0;
}

/* ---- Content of one regular file ------------------------------------------------ */


/* Results of reading a file's content besides 0 and -errno. */
enum {
	/* Size, mtime or ctime differ after the read: read it again. */
	CONTENT_CHANGED = 1,
	/* The copy in the store differs from what was hashed. Not read
	 * again: other threads of this run with the same content count on
	 * the object this call was to store. */
	CONTENT_STORE_DIFFERS = 2,
};

/*
 * The content pass (docs/design.md, "Content pass"), and the object store
 * (docs/design.md, "Object store") when @store is non-NULL, for the node
 * of the regular file open as @fd, using the node's size: files of 1..64
 * bytes become inline content unless NO_INLINE; the digest is computed
 * with COMPUTE_DIGEST or BY_DIGEST; BY_DIGEST sets the payload "xx/yyy..."
 * and, without COMPUTE_DIGEST, leaves the digest unset. Only the first
 * @size bytes are used, so a file that grew since the scan still matches
 * its recorded size; one that shrank fails with ENODATA. *@stage says
 * which step failed. CONTENT_STORE_DIFFERS: the store found that the
 * file no longer has the content its digest was computed from (nothing
 * was stored).
 */
static int content_from_fd(struct lcfs_node_s *node, int fd, int flags,
			   struct lcfs_store *store, enum build_stage *stage)
{
	bool want_digest = flags & (LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST);
	uint8_t digest[LCFS_DIGEST_SIZE];
	uint64_t size = node->size;
	int r;

	*stage = STAGE_READ;
	if (size == 0)
		return 0;
	if (lcfs_content_is_inline(size, flags)) {
		uint8_t *data = malloc((size_t)size);

		if (data == NULL)
			return -ENOMEM;
		r = lcfs_pread_exact(fd, data, (size_t)size, 0);
		if (r == 0 && want_digest &&
		    lcfs_compute_fsverity_from_data(digest, data, (size_t)size) < 0)
			r = -errno;
		if (r < 0) {
			free(data);
			return r;
		}
		/* Not lcfs_node_take_content(): the size is right already,
		 * and the scan thread may be reading it. */
		free(node->content);
		node->content = data;
	} else if (store != NULL && lcfs_store_copy_first(store)) {
		/* Mostly new objects: copy, then hash the copy. */
		*stage = STAGE_STORE;
		r = lcfs_store_put_copy(store, fd, size, digest);
		if (r != 0)
			return r > 0 ? CONTENT_STORE_DIFFERS : r;
	} else if (want_digest) {
		r = lcfs_fsverity_digest_fd_fast(fd, size, digest);
		if (r < 0)
			return r;
		if (store != NULL) {
			*stage = STAGE_STORE;
			r = lcfs_store_put(store, fd, size, digest);
			if (r != 0)
				return r > 0 ? CONTENT_STORE_DIFFERS : r;
		}
	}
	if (!want_digest)
		return 0;
	return lcfs_node_set_digest_result(node, digest, flags);
}

int lcfs_node_set_digest_result(struct lcfs_node_s *node,
				const uint8_t digest[LCFS_DIGEST_SIZE], int flags)
{
	if (flags & LCFS_BUILD_BY_DIGEST) {
		char *payload = malloc(LCFS_STORE_PATH_SIZE);

		if (payload == NULL)
			return -ENOMEM;
		lcfs_store_object_path(digest, payload);
		lcfs_node_take_payload(node, payload);
	}
	if (flags & LCFS_BUILD_COMPUTE_DIGEST)
		lcfs_node_set_fsverity_digest(node, (uint8_t *)digest);
	else
		node->digest_set = false;
	return 0;
}

/* Whether the file changed between the two fstat() results: a writer
 * changes the mtime (unless it sets it back) and always the ctime. */
static bool stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec ||
	       a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
	       a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

/*
 * content_from_fd() for the file @fd, whose fstat() before reading is
 * @before. CONTENT_CHANGED if the file changed while it was read (its
 * size, mtime or ctime differ afterwards): the digest or inline content
 * is then from no definite version of the file, while anything stored is
 * still named by its own content.
 */
static int content_once(struct lcfs_node_s *node, int fd, const struct stat *before,
			int flags, struct lcfs_store *store, enum build_stage *stage)
{
	struct stat after;
	int r = content_from_fd(node, fd, flags, store, stage);

	if (r != 0)
		return r;
	if (fstat(fd, &after) < 0)
		return -errno;
	return stat_changed(before, &after) ? CONTENT_CHANGED : 0;
}

/* ---- Opening files below the source ------------------------------------------------ */

/* Opens @rel below @dirfd without following any symlink on the way
 * (openat2 where the kernel has it; otherwise only the last component is
 * protected). */
static int open_beneath(struct build_ctx *c, int dirfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (!atomic_load(&c->no_openat2)) {
		fd = lcfs_openat2(dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EPERM))
			return fd;
		atomic_store(&c->no_openat2, true);
	}
	return openat(dirfd, rel, flags | O_NOFOLLOW | O_CLOEXEC);
}

/* Opens @node below @rootfd one component at a time: for paths too long
 * for one system call. */
static int open_by_walk(int rootfd, struct lcfs_node_s *root, struct lcfs_node_s *node,
			int flags)
{
	cleanup_free struct lcfs_node_s **chain = NULL;
	size_t depth = 0, i = 0;
	int fd = rootfd;

	for (struct lcfs_node_s *n = node; n != root && n != NULL; n = n->parent)
		depth++;
	chain = malloc(depth * sizeof(*chain) + 1);
	if (chain == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (struct lcfs_node_s *n = node; n != root && n != NULL; n = n->parent)
		chain[depth - 1 - i++] = n;
	for (i = 0; i < depth; i++) {
		bool last = i + 1 == depth;
		int nfd = openat(fd, chain[i]->name,
				 last ? flags | O_NOFOLLOW | O_CLOEXEC :
					O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd != rootfd) {
			int saved = errno;

			close(fd);
			errno = saved;
		}
		if (nfd < 0)
			return -1;
		fd = nfd;
	}
	return fd;
}

/* ---- The content pass ---------------------------------------------------------------- */

struct worker {
	struct build_ctx *c;
	pthread_t thread;
	bool is_caller; /* the calling thread: it reports progress */
	char path[PATH_MAX];
};

static int process_file(struct worker *w, struct lcfs_node_s *node)
{
	struct build_ctx *c = w->c;
	enum build_stage stage = STAGE_READ;
	const int oflags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
	struct stat st;
	int fd, r;

	if (c->rootfd < 0) {
		fd = openat(c->user_dirfd, c->source, oflags | O_NOFOLLOW | O_CLOEXEC);
	} else if (node_relpath(c->root, node, w->path, sizeof(w->path)) >= 0) {
		fd = open_beneath(c, c->rootfd, w->path, oflags);
	} else {
		fd = open_by_walk(c->rootfd, c->root, node, oflags);
	}
	if (fd < 0)
		return build_fail(c, node, NULL, STAGE_READ, errno);
	/* Whatever is there now must still be a regular file (the open
	 * did not block on a FIFO that replaced it, thanks to O_NONBLOCK). */
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
	} else {
		r = content_once(node, fd, &st, c->flags, c->store, &stage);
		/* Changed while read: once more, from the start. */
		if (r == CONTENT_CHANGED && fstat(fd, &st) < 0)
			r = -errno;
		else if (r == CONTENT_CHANGED)
			r = content_once(node, fd, &st, c->flags, c->store, &stage);
		if (r > 0) {
			stage = STAGE_CHANGED;
			r = -EAGAIN;
		}
	}
	close(fd);
	if (r < 0)
		return build_fail(c, node, NULL, stage, -r);
	return 0;
}

/* The next file to process, big ones first; NULL when the queue is
 * closed and empty, or after a failure. */
static struct lcfs_node_s *queue_take(struct build_ctx *c)
{
	struct lcfs_node_s *node = NULL;

	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->failed)) {
		if (c->big.next < c->big.n) {
			node = c->big.v[c->big.next++];
			break;
		}
		if (c->small.next < c->small.n) {
			node = c->small.v[c->small.next++];
			break;
		}
		if (c->queue_closed)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return node;
}

static int list_add(struct work_list *l, struct lcfs_node_s *node)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct lcfs_node_s **v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = node;
	return 0;
}

/* Hands the files collected by pending_add() to the workers. */
static int queue_flush(struct build_ctx *c)
{
	int r = 0;

	if (c->n_pending == 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_pending && r == 0; i++) {
		struct lcfs_node_s *node = c->pending[i];

		r = list_add(node->size >= BIG_FILE ? &c->big : &c->small, node);
		if (r == 0) {
			atomic_fetch_add(&c->files_total, 1);
			atomic_fetch_add(&c->bytes_total, node->size);
		}
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	c->n_pending = 0;
	return r;
}

/* Collects a file for the content pass (scan thread only). */
static int pending_add(struct build_ctx *c, struct lcfs_node_s *node)
{
	if (c->n_pending == c->cap_pending) {
		size_t cap = c->cap_pending ? c->cap_pending * 2 : 256;
		struct lcfs_node_s **v = realloc(c->pending, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		c->pending = v;
		c->cap_pending = cap;
	}
	c->pending[c->n_pending++] = node;
	return 0;
}

static void worker_run(struct worker *w)
{
	struct build_ctx *c = w->c;
	struct lcfs_node_s *node;

	while ((node = queue_take(c)) != NULL) {
		if (process_file(w, node) < 0)
			break;
		atomic_fetch_add(&c->files_done, 1);
		atomic_fetch_add(&c->bytes_done, node->size);
		if (w->is_caller)
			report_progress(c, false);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct build_ctx *c = w->c;

	worker_run(w);
	pthread_mutex_lock(&c->lock);
	c->running--;
	pthread_cond_signal(&c->done_cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Starts the workers, before the scan. With one thread asked for (or none
 * startable), the calling thread does the work after the scan instead. */
static int start_workers(struct build_ctx *c, unsigned threads)
{
	if (threads == 0)
		threads = lcfs_cpu_count();
	c->workers = calloc(threads, sizeof(*c->workers));
	if (c->workers == NULL)
		return -ENOMEM;
	c->n_started = 0;
	if (threads == 1)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < threads; i++) {
		c->workers[i].c = c;
		if (pthread_create(&c->workers[i].thread, NULL, worker_main,
				   &c->workers[i]) != 0)
			break;
		c->n_started++;
		c->running++;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Closes the queue and waits until every queued file is done (or the
 * first failure), reporting progress meanwhile. */
static void finish_workers(struct build_ctx *c)
{
	if (c->workers == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->queue_closed = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);

	if (c->n_started == 0) {
		if (!atomic_load(&c->failed)) {
			c->workers[0].c = c;
			c->workers[0].is_caller = true;
			worker_run(&c->workers[0]);
		}
	} else {
		pthread_mutex_lock(&c->lock);
		while (c->running > 0) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += PROGRESS_INTERVAL_NS;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&c->done_cond, &c->lock, &until);
			pthread_mutex_unlock(&c->lock);
			report_progress(c, false);
			pthread_mutex_lock(&c->lock);
		}
		pthread_mutex_unlock(&c->lock);
		for (unsigned i = 0; i < c->n_started; i++)
			pthread_join(c->workers[i].thread, NULL);
	}
	free(c->workers);
	c->workers = NULL;
	if (!atomic_load(&c->failed))
		report_progress(c, true);
}

/* ---- The scan ---------------------------------------------------------------------- */

struct subdir {
	struct lcfs_node_s *node;
	dev_t dev;
	ino_t ino;
};

struct scan_frame {
	struct lcfs_node_s *dir;
	int fd; /* -1 while closed to save descriptors */
	struct subdir *subdirs;
	size_t n_subdirs, next;
};

struct dir_entry {
	uint32_t name_off;
	uint8_t d_type;
};

struct dir_entries {
	struct dir_entry *v;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
};

static int entry_cmp(const void *a, const void *b, void *names)
{
	const struct dir_entry *x = a, *y = b;

	/* strcmp() compares as unsigned bytes: the image's name order. */
	return strcmp((char *)names + x->name_off, (char *)names + y->name_off);
}

static int read_dir_entries(struct build_ctx *c, int fd, struct dir_entries *e)
{
	e->n = 0;
	e->names_len = 0;
	for (;;) {
		ssize_t n = getdents64(fd, c->dirent_buf, DIRENT_BUF_SIZE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(c->dirent_buf + off);
			size_t len = strlen(de->d_name);

			off += de->d_reclen;
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (e->n == e->cap) {
				size_t cap = e->cap ? e->cap * 2 : 256;
				struct dir_entry *v = realloc(e->v, cap * sizeof(*v));

				if (v == NULL)
					return -ENOMEM;
				e->v = v;
				e->cap = cap;
			}
			if (e->names_len + len + 1 > e->names_cap) {
				size_t cap = (e->names_cap + len + 1) * 2;
				char *names = realloc(e->names, cap);

				if (names == NULL)
					return -ENOMEM;
				e->names = names;
				e->names_cap = cap;
			}
			memcpy(e->names + e->names_len, de->d_name, len + 1);
			e->v[e->n].name_off = (uint32_t)e->names_len;
			e->v[e->n].d_type = de->d_type;
			e->n++;
			e->names_len += len + 1;
		}
	}
	qsort_r(e->v, e->n, sizeof(*e->v), entry_cmp, e->names);
	return 0;
}

static int remember_inode(struct build_ctx *c, struct lcfs_node_s *node,
			  const struct stat *st)
{
	if (c->n_inodes == c->cap_inodes) {
		size_t cap = c->cap_inodes ? c->cap_inodes * 2 : 256;
		struct lcfs_inode_key *v = realloc(c->inodes, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		c->inodes = v;
		c->cap_inodes = cap;
	}
	c->inodes[c->n_inodes] = (struct lcfs_inode_key){ st->st_dev, st->st_ino, node };
	node->scratch = (uint32_t)++c->n_inodes;
	return 0;
}

/* Reads directory @f (its fd open) into child nodes, in name order, and
 * lists its subdirectories for the caller to enter. */
static int scan_dir(struct build_ctx *c, struct scan_frame *f, struct dir_entries *e)
{
	int r = read_dir_entries(c, f->fd, e);

	if (r < 0)
		return build_fail(c, f->dir, NULL, STAGE_SCAN, -r);
	f->subdirs = NULL;
	f->n_subdirs = 0;
	f->next = 0;
	for (size_t i = 0; i < e->n; i++) {
		const char *name = e->names + e->v[i].name_off;
		struct lcfs_node_s *node = NULL;
		struct stat st;

		/* By d_type, as the reference does (docs/design.md,
		 * "Directory scan"). */
		if ((c->flags & LCFS_BUILD_SKIP_DEVICES) &&
		    (e->v[i].d_type == DT_CHR || e->v[i].d_type == DT_BLK))
			continue;
		r = load_entry(c, f->fd, name, &st, &node);
		if (r < 0)
			return build_fail(c, f->dir, name, STAGE_SCAN, -r);
		r = lcfs_node_add_child_n(f->dir, node, name, strlen(name));
		if (r < 0) {
			lcfs_node_unref(node);
			return build_fail(c, f->dir, name, STAGE_SCAN, -r);
		}
		if (S_ISDIR(st.st_mode)) {
			struct subdir *v = realloc(f->subdirs, (f->n_subdirs + 1) * sizeof(*v));

			if (v == NULL)
				return build_fail(c, f->dir, name, STAGE_SCAN, ENOMEM);
			f->subdirs = v;
			f->subdirs[f->n_subdirs++] = (struct subdir){ node, st.st_dev, st.st_ino };
		} else if (c->hardlinks && st.st_nlink > 1) {
			if (remember_inode(c, node, &st) < 0)
				return build_fail(c, f->dir, name, STAGE_SCAN, ENOMEM);
		}
		/* Names of an inode with other links wait for the hard link
		 * pass, which decides which name is the real one. */
		if (S_ISREG(st.st_mode) && st.st_size > 0 &&
		    !(c->hardlinks && st.st_nlink > 1)) {
			r = pending_add(c, node);
			if (r < 0)
				return build_fail(c, f->dir, name, STAGE_SCAN, -r);
		}
		if ((++c->scan_entries & 255) == 0)
			report_progress(c, false);
	}
	r = queue_flush(c);
	if (r < 0)
		return build_fail(c, f->dir, NULL, STAGE_SCAN, -r);
	return 0;
}

/*
 * Makes sure frame @i has an open descriptor, reopening it from the
 * nearest open ancestor one component at a time. Only the last
 * REOPEN_KEEP frames of the way stay open, which bounds the descriptors
 * while sparing the next few frames the walk. Frame 0 is always open.
 * Frames below *@oldest_open are all closed; this stays true.
 */
#define REOPEN_KEEP (MAX_OPEN_DIRS / 2)

static int frame_reopen(struct build_ctx *c, struct scan_frame *frames, size_t i,
			size_t *n_open, size_t *oldest_open)
{
	size_t j = i, keep_from = i + 1 > REOPEN_KEEP ? i + 1 - REOPEN_KEEP : 1;
	int fd;

	while (frames[j].fd < 0)
		j--;
	if (j == 0 && keep_from < *oldest_open)
		*oldest_open = keep_from;
	fd = frames[j].fd;
	for (j++; j <= i; j++) {
		int next = openat(fd, frames[j].dir->name,
				  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (next < 0) {
			int e = errno;

			if (fd != frames[j - 1].fd)
				close(fd);
			return build_fail(c, frames[j].dir, NULL, STAGE_SCAN, e);
		}
		if (fd != frames[j - 1].fd)
			close(fd); /* a passing step, not kept */
		if (j >= keep_from) {
			frames[j].fd = next;
			(*n_open)++;
		}
		fd = next;
	}
	return 0;
}

static void frame_release(struct scan_frame *f, size_t *n_open, bool close_fd)
{
	if (close_fd && f->fd >= 0) {
		close(f->fd);
		(*n_open)--;
	}
	f->fd = -1;
	free(f->subdirs);
	f->subdirs = NULL;
}

static int scan_tree(struct build_ctx *c)
{
	cleanup_free struct scan_frame *frames = NULL;
	struct dir_entries e = { 0 };
	size_t n = 0, cap = 16, n_open = 1, oldest_open = 1;
	int r;

	frames = calloc(cap, sizeof(*frames));
	if (frames == NULL)
		return lcfs_error_set(c->err, ENOMEM, "cannot read '%s': %s", c->source,
				      strerror(ENOMEM));
	frames[0] = (struct scan_frame){ .dir = c->root, .fd = c->rootfd };
	n = 1;
	r = scan_dir(c, &frames[0], &e);

	/* A worker's failure ends the scan too. */
	while (r == 0 && n > 0 && !atomic_load(&c->failed)) {
		struct scan_frame *top = &frames[n - 1];
		struct subdir *sd;
		struct stat st;
		int fd;

		if (top->next == top->n_subdirs) {
			frame_release(top, &n_open, n > 1);
			n--;
			if (oldest_open > n)
				oldest_open = n;
			continue;
		}
		sd = &top->subdirs[top->next++];
		if (top->fd < 0) {
			r = frame_reopen(c, frames, n - 1, &n_open, &oldest_open);
			if (r < 0)
				break;
		}
		fd = openat(top->fd, sd->node->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = build_fail(c, sd->node, NULL, STAGE_SCAN, errno);
			break;
		}
		/* The directory met by the scan and the one opened must be
		 * the same. */
		if (fstat(fd, &st) < 0) {
			r = build_fail(c, sd->node, NULL, STAGE_SCAN, errno);
			close(fd);
			break;
		}
		if (st.st_dev != sd->dev || st.st_ino != sd->ino) {
			r = build_fail(c, sd->node, NULL, STAGE_SCAN, ESTALE);
			close(fd);
			break;
		}
		if (n == cap) {
			struct scan_frame *v = realloc(frames, 2 * cap * sizeof(*v));

			if (v == NULL) {
				close(fd);
				r = build_fail(c, sd->node, NULL, STAGE_SCAN, ENOMEM);
				break;
			}
			frames = v;
			cap *= 2;
		}
		frames[n++] = (struct scan_frame){ .dir = sd->node, .fd = fd };
		n_open++;
		/* Bound the open descriptors: close the shallowest ones; they
		 * are needed again last, if at all. */
		while (n_open > MAX_OPEN_DIRS && oldest_open < n - 1) {
			if (frames[oldest_open].fd >= 0) {
				close(frames[oldest_open].fd);
				frames[oldest_open].fd = -1;
				n_open--;
			}
			oldest_open++;
		}
		r = scan_dir(c, &frames[n - 1], &e);
	}
	while (n > 0) {
		frame_release(&frames[n - 1], &n_open, n > 1);
		n--;
	}
	free(e.v);
	free(e.names);
	return r;
}

/* ---- Hard links ------------------------------------------------------------------ */

static size_t inode_hash(const struct lcfs_inode_key *k, size_t cap)
{
	uint64_t h = (uint64_t)k->ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)k->dev;

	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/*
 * A depth-first walk in name order (the order in which a reader meets the
 * names) makes every later name of an inode a hard link to the first one;
 * the writer then counts the names in nlink. Used by --hardlinks and by
 * the tar reader.
 */
int lcfs_link_inodes(struct lcfs_node_s *root, const struct lcfs_inode_key *keys,
		     size_t n_keys, int (*first_cb)(void *data, struct lcfs_node_s *node),
		     void *data)
{
	struct walk {
		struct lcfs_node_s *node;
		uint32_t next;
	};
	cleanup_free struct walk *stack = NULL;
	cleanup_free struct lcfs_node_s **firsts = NULL;
	size_t n = 0, cap = 64, hcap = 1;
	int r;

	if (n_keys == 0)
		return 0;
	while (hcap < 2 * n_keys)
		hcap *= 2;
	firsts = calloc(hcap, sizeof(*firsts));
	stack = malloc(cap * sizeof(*stack));
	if (firsts == NULL || stack == NULL)
		return -ENOMEM;
	stack[n++] = (struct walk){ root, 0 };

	while (n > 0) {
		struct walk *top = &stack[n - 1];
		struct lcfs_node_s *child;
		const struct lcfs_inode_key *k;
		size_t i;

		if (top->next == top->node->n_children) {
			n--;
			continue;
		}
		child = top->node->children[top->next++];
		if (S_ISDIR(child->mode)) {
			if (n == cap) {
				struct walk *v = realloc(stack, 2 * cap * sizeof(*v));

				if (v == NULL)
					return -ENOMEM;
				stack = v;
				cap *= 2;
			}
			stack[n++] = (struct walk){ child, 0 };
			continue;
		}
		if (child->scratch == 0 || child->scratch > n_keys)
			continue;
		k = &keys[child->scratch - 1];
		for (i = inode_hash(k, hcap); firsts[i] != NULL; i = (i + 1) & (hcap - 1)) {
			const struct lcfs_inode_key *f = &keys[firsts[i]->scratch - 1];

			if (f->dev == k->dev && f->ino == k->ino)
				break;
		}
		if (firsts[i] != NULL) {
			child->scratch = 0;
			lcfs_node_make_hardlink(child, firsts[i]);
			continue;
		}
		firsts[i] = child; /* keeps its scratch for later names */
		if (first_cb != NULL) {
			r = first_cb(data, child);
			if (r < 0)
				return r;
		}
	}
	/* Leave the scratch fields clean for the writer. */
	for (size_t i = 0; i < hcap; i++)
		if (firsts[i] != NULL)
			firsts[i]->scratch = 0;
	return 0;
}

/* The first names of regular files go to the content pass. */
static int queue_first_name(void *data, struct lcfs_node_s *node)
{
	if (S_ISREG(node->mode) && node->size > 0)
		return pending_add(data, node);
	return 0;
}

/* --hardlinks: names of one (device, inode) become hard links. */
static int resolve_hardlinks(struct build_ctx *c)
{
	int r = lcfs_link_inodes(c->root, c->inodes, c->n_inodes, queue_first_name, c);

	return r < 0 ? r : queue_flush(c);
}

/* ---- Entry points ------------------------------------------------------------------ */

static bool build_flags_valid(int flags)
{
	if (flags & ~BUILD_FLAGS_ALL)
		return false;
	return (flags & (LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS)) !=
	       (LCFS_BUILD_SKIP_XATTRS | LCFS_BUILD_USER_XATTRS);
}

static struct lcfs_node_s *build_tree(int dirfd, const char *path,
				      const struct lcfs_build_options *opts,
				      struct lcfs_error *err, char **failed_path)
{
	struct lcfs_error local_err = { 0 };
	struct build_ctx c = {
		.flags = opts->flags,
		.source = path,
		.store_path = opts->digest_store,
		.user_dirfd = dirfd,
		.rootfd = -1,
		.err = err,
		.hardlinks = opts->hardlinks,
		.progress = opts->progress,
		.progress_data = opts->progress_data,
	};
	struct lcfs_node_s *root = NULL;
	struct stat st;
	int r;

	if (err == NULL)
		c.err = err = &local_err;
	if (!build_flags_valid(c.flags)) {
		lcfs_error_set(err, EINVAL, "invalid build flags");
		return NULL;
	}
	/* The store is named by digest: it needs the digest paths. */
	if (opts->digest_store != NULL)
		c.flags |= LCFS_BUILD_BY_DIGEST;
	if (pthread_mutex_init(&c.lock, NULL) != 0 ||
	    pthread_cond_init(&c.cond, NULL) != 0 ||
	    pthread_cond_init(&c.done_cond, NULL) != 0) {
		lcfs_error_set(err, ENOMEM, "cannot read '%s': %s", path, strerror(ENOMEM));
		return NULL;
	}
	r = xattr_bufs_init(&c.xb);
	c.dirent_buf = malloc(DIRENT_BUF_SIZE);
	if (r < 0 || c.dirent_buf == NULL) {
		r = lcfs_error_set(err, ENOMEM, "cannot read '%s': %s", path, strerror(ENOMEM));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &c.last_progress);

	/* A bad store is reported before a long scan. */
	if (opts->digest_store != NULL) {
		r = lcfs_store_open(opts->digest_store, &c.store);
		if (r < 0) {
			lcfs_error_set(err, -r, "cannot open object store '%s': %s",
				       opts->digest_store, strerror(-r));
			goto out;
		}
	}

	r = start_workers(&c, opts->threads);
	if (r < 0) {
		lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
		goto out;
	}

	/* SOURCE is not followed if it is a symlink (docs/design.md,
	 * "Directory scan"). */
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = build_fail(&c, NULL, NULL, STAGE_SCAN, errno);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		char proc[64];

		c.rootfd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (c.rootfd < 0 || fstat(c.rootfd, &st) < 0) {
			r = build_fail(&c, NULL, NULL, STAGE_SCAN, errno);
			goto out;
		}
		root = node_from_stat(&st, c.flags);
		if (root == NULL) {
			r = build_fail(&c, NULL, NULL, STAGE_SCAN, ENOMEM);
			goto out;
		}
		c.root = root;
		if (!(c.flags & LCFS_BUILD_SKIP_XATTRS)) {
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c.rootfd);
			r = read_xattrs(root, proc, true, c.flags, &c.xb);
			if (r < 0) {
				r = build_fail(&c, NULL, NULL, STAGE_SCAN, -r);
				goto out;
			}
		}
		r = scan_tree(&c);
		if (r == 0 && atomic_load(&c.failed))
			r = -err->err; /* a worker failed */
		if (r < 0)
			goto out;
	} else {
		/* A single non-directory root; writing it fails later with
		 * ENOTDIR, as in the reference. */
		r = load_path(dirfd, path, c.flags, &c.xb, &st, &root);
		if (r < 0) {
			r = build_fail(&c, NULL, NULL, STAGE_SCAN, -r);
			goto out;
		}
		c.root = root;
		if (S_ISREG(st.st_mode) && st.st_size > 0) {
			r = pending_add(&c, root);
			if (r == 0)
				r = queue_flush(&c);
			if (r < 0) {
				lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
				goto out;
			}
		}
	}
	report_progress(&c, true);

	if (c.hardlinks) {
		r = resolve_hardlinks(&c);
		if (r < 0) {
			lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
			goto out;
		}
	}
	finish_workers(&c);
	if (atomic_load(&c.failed))
		r = -err->err;
out:
	if (r < 0)
		atomic_store(&c.failed, true); /* workers stop at once */
	finish_workers(&c);
	lcfs_store_free(c.store);
	if (c.rootfd >= 0)
		close(c.rootfd);
	xattr_bufs_release(&c.xb);
	free(c.dirent_buf);
	free(c.inodes);
	free(c.big.v);
	free(c.small.v);
	free(c.pending);
	pthread_cond_destroy(&c.cond);
	pthread_cond_destroy(&c.done_cond);
	pthread_mutex_destroy(&c.lock);
	if (r < 0) {
		if (err->err == 0)
			lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
		if (root != NULL)
			lcfs_node_unref(root);
		if (failed_path != NULL)
			*failed_path = c.failed_path;
		else
			free(c.failed_path);
		return NULL;
	}
	free(c.failed_path);
	return root;
}

struct lcfs_node_s *lcfs_build_tree(int dirfd, const char *path,
				    const struct lcfs_build_options *opts,
				    struct lcfs_error *err)
{
	return build_tree(dirfd, path, opts, err, NULL);
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_build(int dirfd, const char *fname,
					   int buildflags, char **failed_path_out)
{
	struct lcfs_build_options opts = { .flags = buildflags };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	char *failed = NULL;

	if (failed_path_out != NULL)
		*failed_path_out = NULL;
	root = build_tree(dirfd, fname, &opts, &err, &failed);
	if (root == NULL) {
		if (failed_path_out != NULL)
			*failed_path_out = failed ? failed : strdup(fname);
		else
			free(failed);
		errno = err.err ? err.err : EIO;
	}
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_file(int dirfd, const char *fname,
							 int buildflags)
{
	struct xattr_bufs xb = { 0 };
	struct lcfs_node_s *node = NULL;
	struct stat st;
	int r;

	if (!build_flags_valid(buildflags)) {
		errno = EINVAL;
		return NULL;
	}
	r = xattr_bufs_init(&xb);
	if (r == 0)
		r = load_path(dirfd, fname, buildflags, &xb, &st, &node);
	xattr_bufs_release(&xb);
	if (r == 0 && S_ISREG(st.st_mode) &&
	    lcfs_node_set_from_content(node, dirfd, fname, buildflags) < 0) {
		r = -errno;
		lcfs_node_unref(node);
	}
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return node;
}

LCFS_PUBLIC int lcfs_node_set_from_content(struct lcfs_node_s *node, int dirfd,
					   const char *fname, int buildflags)
{
	enum build_stage stage;
	int fd, r;

	if (node == NULL || fname == NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	r = content_from_fd(node, fd, buildflags, NULL, &stage);
	close(fd);
	return lcfs_public_ret(r);
}
