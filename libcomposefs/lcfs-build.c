/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Building a tree from a directory (docs/design.md, "Directory to image",
 * "Directory scan", "Content pass"): lcfs_build_tree() for mkcomposefs and
 * the public lcfs_build() (documented in lcfs-writer.h). The scanner's
 * third part (lcfs-scanner.h lists the others):
 *
 * 1. the walk, on the calling thread: lstat, readlink and xattrs of every
 *    entry (lcfs-build-entry.c), no file data. Iterative, with a bounded
 *    number of open directories, so that deep trees cost neither stack nor
 *    descriptors;
 * 2. with --hardlinks, names of one inode become hard links to its first
 *    name in depth-first name order (the order a reader meets them);
 * 3. the content pass over the regular files (lcfs-build-content.c), on N
 *    threads that start before the walk and take each directory's files
 *    as soon as it is read.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "lcfs-store.h"
#include "lcfs-node.h"
#include "lcfs-util.h"
#include "lcfs-scanner.h"
#include "lcfs-tools.h"

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
			struct dir_entry *v;

			off += de->d_reclen;
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			v = lcfs_array_reserve(e->v, e->n, &e->cap, sizeof(*v), 256);
			if (v == NULL)
				return -ENOMEM;
			e->v = v;
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

/*
 * Whether the scan opens regular files itself and hands them to the
 * workers open (lcfs_build_open_entry()), and how many it may hold at
 * once. Only with worker threads running: a single thread reads the files
 * after the scan. Half of the descriptor limit above HELD_FILES_SPARE,
 * which stays for the directories the scan keeps open, the workers and
 * the rest of the process, and at most HELD_FILES_MAX: the scan waits for
 * the workers beyond that, and it is far ahead of them anyway. Without
 * room for HELD_FILES_MIN, the scan opens nothing.
 */
#define HELD_FILES_MAX 1024
#define HELD_FILES_MIN 16
#define HELD_FILES_SPARE 256
#define HELD_BATCH 16

static void hold_setup(struct build_ctx *c)
{
	/* An object store keeps its 256 subdirectories open. */
	rlim_t room, spare = HELD_FILES_SPARE + (c->store != NULL ? 256 : 0);
	struct rlimit rl;

	c->scan_opens = false;
	if (c->n_started == 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur == RLIM_INFINITY)
		room = HELD_FILES_MAX;
	else if (rl.rlim_cur > spare)
		room = (rl.rlim_cur - spare) / 2;
	else
		room = 0;
	c->held_max = room < HELD_FILES_MAX ? (unsigned)room : HELD_FILES_MAX;
	c->scan_opens = c->held_max >= HELD_FILES_MIN;
}

/* Reads directory @f (its fd open) into child nodes, in name order, and
 * lists its subdirectories for the caller to enter. */
static int scan_dir(struct build_ctx *c, struct scan_frame *f, struct dir_entries *e)
{
	int r = read_dir_entries(c, f->fd, e);

	if (r < 0)
		return lcfs_build_fail(c, f->dir, NULL, STAGE_SCAN, -r);
	f->subdirs = NULL;
	f->n_subdirs = 0;
	f->next = 0;
	for (size_t i = 0; i < e->n; i++) {
		const char *name = e->names + e->v[i].name_off;
		struct lcfs_node_s *node = NULL;
		struct stat st;
		int fd;

		/* By d_type, as the reference does (docs/design.md,
		 * "Directory scan"). */
		if ((c->flags & LCFS_BUILD_SKIP_DEVICES) &&
		    (e->v[i].d_type == DT_CHR || e->v[i].d_type == DT_BLK))
			continue;
		fd = -1;
		r = 1;
		if (c->scan_opens && e->v[i].d_type == DT_REG) {
			if (!lcfs_build_hold_wait(c))
				return -ECANCELED; /* a worker failed */
			r = lcfs_build_open_entry(f->fd, name, c->flags, &c->xb, &st,
						  &node, &fd);
			if (r != 0)
				lcfs_build_hold_close(c, -1);
			/* Out of descriptors after all (the process has others
			 * open): the workers open files by path from now on. */
			if (r > 0 && (errno == EMFILE || errno == ENFILE))
				c->scan_opens = false;
		}
		if (r > 0)
			r = lcfs_build_load_entry(f->fd, name, c->flags, &c->xb, &st, &node);
		if (r < 0)
			return lcfs_build_fail(c, f->dir, name, STAGE_SCAN, -r);
		r = lcfs_node_add_child_n(f->dir, node, name, strlen(name));
		if (r < 0) {
			lcfs_node_unref(node);
			if (fd >= 0)
				lcfs_build_hold_close(c, fd);
			return lcfs_build_fail(c, f->dir, name, STAGE_SCAN, -r);
		}
		if (S_ISDIR(st.st_mode)) {
			struct subdir *v = realloc(f->subdirs, (f->n_subdirs + 1) * sizeof(*v));

			if (v == NULL)
				return lcfs_build_fail(c, f->dir, name, STAGE_SCAN, ENOMEM);
			f->subdirs = v;
			f->subdirs[f->n_subdirs++] = (struct subdir){ node, st.st_dev, st.st_ino };
		} else if (c->hardlinks && st.st_nlink > 1) {
			if (remember_inode(c, node, &st) < 0)
				return lcfs_build_fail(c, f->dir, name, STAGE_SCAN, ENOMEM);
		}
		/* Names of an inode with other links wait for the hard link
		 * pass, which decides which name is the real one. */
		if (S_ISREG(st.st_mode) && st.st_size > 0 &&
		    !(c->hardlinks && st.st_nlink > 1)) {
			r = fd >= 0 ? lcfs_build_pending_add_open(c, node, fd, &st) :
				      lcfs_build_pending_add(c, node);
			if (r < 0) {
				if (fd >= 0)
					lcfs_build_hold_close(c, fd);
				return lcfs_build_fail(c, f->dir, name, STAGE_SCAN, -r);
			}
			/* Files held open are handed out in small batches:
			 * the workers may be waiting for them. */
			if (fd >= 0 && c->pending.n >= HELD_BATCH) {
				r = lcfs_build_queue_flush(c);
				if (r < 0)
					return lcfs_build_fail(c, f->dir, NULL, STAGE_SCAN, -r);
			}
		} else if (fd >= 0) {
			lcfs_build_hold_close(c, fd);
		}
		if ((++c->scan_entries & 255) == 0)
			lcfs_build_report_progress(c, false);
	}
	r = lcfs_build_queue_offer(c);
	if (r < 0)
		return lcfs_build_fail(c, f->dir, NULL, STAGE_SCAN, -r);
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
			return lcfs_build_fail(c, frames[j].dir, NULL, STAGE_SCAN, e);
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
			r = lcfs_build_fail(c, sd->node, NULL, STAGE_SCAN, errno);
			break;
		}
		/* The directory met by the scan and the one opened must be
		 * the same. */
		if (fstat(fd, &st) < 0) {
			r = lcfs_build_fail(c, sd->node, NULL, STAGE_SCAN, errno);
			close(fd);
			break;
		}
		if (st.st_dev != sd->dev || st.st_ino != sd->ino) {
			r = lcfs_build_fail(c, sd->node, NULL, STAGE_SCAN, ESTALE);
			close(fd);
			break;
		}
		if (n == cap) {
			struct scan_frame *v = realloc(frames, 2 * cap * sizeof(*v));

			if (v == NULL) {
				close(fd);
				r = lcfs_build_fail(c, sd->node, NULL, STAGE_SCAN, ENOMEM);
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
	/* Leave the scratch fields clean. */
	for (size_t i = 0; i < hcap; i++)
		if (firsts[i] != NULL)
			firsts[i]->scratch = 0;
	return 0;
}

/* The first names of regular files go to the content pass. */
static int queue_first_name(void *data, struct lcfs_node_s *node)
{
	if (S_ISREG(node->mode) && node->size > 0)
		return lcfs_build_pending_add(data, node);
	return 0;
}

/* --hardlinks: names of one (device, inode) become hard links. */
static int resolve_hardlinks(struct build_ctx *c)
{
	int r = lcfs_link_inodes(c->root, c->inodes, c->n_inodes, queue_first_name, c);

	return r < 0 ? r : lcfs_build_queue_flush(c);
}

/* ---- Entry points ------------------------------------------------------------------ */

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
	if (!lcfs_build_flags_valid(c.flags)) {
		lcfs_error_set(err, EINVAL, "invalid build flags");
		return NULL;
	}
	/* The store is named by digest: it needs the digest paths. */
	if (opts->digest_store != NULL)
		c.flags |= LCFS_BUILD_BY_DIGEST;
	if (pthread_mutex_init(&c.lock, NULL) != 0 ||
	    pthread_cond_init(&c.cond, NULL) != 0 ||
	    pthread_cond_init(&c.done_cond, NULL) != 0 ||
	    pthread_cond_init(&c.held_cond, NULL) != 0) {
		lcfs_error_set(err, ENOMEM, "cannot read '%s': %s", path, strerror(ENOMEM));
		return NULL;
	}
	r = lcfs_build_xattr_bufs_init(&c.xb);
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

	r = lcfs_build_start_workers(&c, opts->threads);
	if (r < 0) {
		lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
		goto out;
	}
	hold_setup(&c);

	/* SOURCE is not followed if it is a symlink (docs/design.md,
	 * "Directory scan"). */
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, errno);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		char proc[64];

		c.rootfd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (c.rootfd < 0 || fstat(c.rootfd, &st) < 0) {
			r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, errno);
			goto out;
		}
		root = lcfs_build_node_from_stat(&st, c.flags);
		if (root == NULL) {
			r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, ENOMEM);
			goto out;
		}
		c.root = root;
		if (!(c.flags & LCFS_BUILD_SKIP_XATTRS)) {
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", c.rootfd);
			r = lcfs_build_read_xattrs(root, proc, -1, true, c.flags, &c.xb);
			if (r < 0) {
				r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, -r);
				goto out;
			}
		}
		r = scan_tree(&c);
		if (r == 0) {
			/* What the last directories left pending. */
			r = lcfs_build_queue_flush(&c);
			if (r < 0)
				r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, -r);
		}
		if (r == 0 && atomic_load(&c.failed))
			r = -err->err; /* a worker failed */
		if (r < 0)
			goto out;
	} else {
		/* A single non-directory root; writing it fails later with
		 * ENOTDIR, as in the reference. */
		r = lcfs_build_load_path(dirfd, path, c.flags, &c.xb, &st, &root);
		if (r < 0) {
			r = lcfs_build_fail(&c, NULL, NULL, STAGE_SCAN, -r);
			goto out;
		}
		c.root = root;
		if (S_ISREG(st.st_mode) && st.st_size > 0) {
			r = lcfs_build_pending_add(&c, root);
			if (r == 0)
				r = lcfs_build_queue_flush(&c);
			if (r < 0) {
				lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
				goto out;
			}
		}
	}
	lcfs_build_report_progress(&c, true);

	if (c.hardlinks) {
		r = resolve_hardlinks(&c);
		if (r < 0) {
			lcfs_error_set(err, -r, "cannot read '%s': %s", path, strerror(-r));
			goto out;
		}
	}
	lcfs_build_finish_workers(&c);
	if (atomic_load(&c.failed))
		r = -err->err;
out:
	if (r < 0)
		atomic_store(&c.failed, true); /* workers stop at once */
	lcfs_build_finish_workers(&c);
	lcfs_build_close_queued(&c);
	lcfs_store_free(c.store);
	if (c.rootfd >= 0)
		close(c.rootfd);
	lcfs_build_xattr_bufs_release(&c.xb);
	free(c.dirent_buf);
	free(c.inodes);
	free(c.big.v);
	free(c.small.v);
	free(c.pending.v);
	pthread_cond_destroy(&c.cond);
	pthread_cond_destroy(&c.done_cond);
	pthread_cond_destroy(&c.held_cond);
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

