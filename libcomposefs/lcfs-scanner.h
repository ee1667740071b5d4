/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * State shared by the three parts of the directory scanner (docs/design.md,
 * "Directory to image"):
 *   lcfs-build-entry.c    loading one entry: lstat, symlink target, xattrs,
 *                         the content of one file; the public
 *                         lcfs_load_node_from_file() and
 *                         lcfs_node_set_from_content()
 *   lcfs-build-content.c  the content pass: the queue and the worker
 *                         threads, opening files below the source, error
 *                         and progress reports
 *   lcfs-build.c          the directory walk, hard-link resolution and the
 *                         entry points lcfs_build_tree() and lcfs_build()
 * Calls go one way: lcfs-build.c -> lcfs-build-content.c ->
 * lcfs-build-entry.c. What the scanner shares with the tar importer is in
 * lcfs-build.h.
 */
#ifndef _LCFS_SCANNER_H
#define _LCFS_SCANNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "libcomposefs/lcfs-writer.h"
#include "lcfs-build.h"

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

/* Results of reading a file's content besides 0 and -errno. */
enum {
	/* Size, mtime or ctime differ after the read: read it again. */
	CONTENT_CHANGED = 1,
	/* The copy in the store differs from what was hashed. Not read
	 * again: other threads of this run with the same content count on
	 * the object this call was to store. */
	CONTENT_STORE_DIFFERS = 2,
};

/* A file waiting for the content pass. The scan may open regular files
 * itself (see lcfs_build_open_entry()): @fd is then that open file, and
 * the times are those of the fstat() the node was made from, what the
 * change check compares besides the size (the node's); the whole struct
 * stat would make each queued file 160 bytes instead of 40. Otherwise
 * @fd is -1 and the worker opens the file by its path. */
struct work_item {
	struct lcfs_node_s *node;
	int fd;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

/* Files waiting for the content pass; @next is the first not taken. */
struct work_list {
	struct work_item *v;
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
	_Atomic unsigned idle;    /* workers waiting for work */
	pthread_cond_t cond;      /* work arrived or the queue closed */
	pthread_cond_t done_cond; /* a worker finished */
	unsigned running;
	struct worker *workers;
	unsigned n_started;
	struct lcfs_store *store;
	atomic_bool failed;
	_Atomic uint64_t files_total, bytes_total; /* queued so far */
	_Atomic uint64_t files_done, bytes_done;
	struct work_list pending; /* files not handed out yet, scan thread */
	/* Files the scan opened and no worker has closed yet; once there
	 * are @held_max of them, the scan waits on @held_cond (with @lock)
	 * until half are closed. */
	bool scan_opens;
	_Atomic unsigned held_fds;
	unsigned held_max;
	pthread_cond_t held_cond;

	void (*progress)(void *data, uint64_t files_done, uint64_t files_total,
			 uint64_t bytes_done, uint64_t bytes_total);
	void *progress_data;
	struct timespec last_progress;
	uint64_t scan_entries;
	atomic_bool no_openat2;
};

/* ---- lcfs-build-entry.c --------------------------------------------------------- */

int lcfs_build_xattr_bufs_init(struct xattr_bufs *xb);
void lcfs_build_xattr_bufs_release(struct xattr_bufs *xb);

/* Copies the xattrs of @path (a /proc/self/fd path), or of the open file
 * @fd when @path is NULL, onto @node. */
int lcfs_build_read_xattrs(struct lcfs_node_s *node, const char *path, int fd,
			   bool follow, int flags, struct xattr_bufs *xb);

/* A new node with the attributes of @st, or NULL without memory. */
struct lcfs_node_s *lcfs_build_node_from_stat(const struct stat *st, int flags);

/* Loads entry @name of the open directory @dirfd into *@out. 0 or -errno. */
int lcfs_build_load_entry(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			  struct stat *st, struct lcfs_node_s **out);

/* Loads entry @name of @dirfd, which getdents() said is a regular file, by
 * opening it: 0 with the file open in *@fd, 1 if it cannot be opened or
 * is no regular file now (load it by name instead), or -errno. */
int lcfs_build_open_entry(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			  struct stat *st, struct lcfs_node_s **out, int *fd);

/* Loads @name relative to @dirfd (any path) into *@out. 0 or -errno. */
int lcfs_build_load_path(int dirfd, const char *name, int flags, struct xattr_bufs *xb,
			 struct stat *st, struct lcfs_node_s **out);

/* The content of the regular file @fd for @node (inline data, digest,
 * store); 0, CONTENT_CHANGED, CONTENT_STORE_DIFFERS or -errno, with
 * *@stage naming the step that failed. Digests go through @h, the
 * calling thread's hasher, or a hasher of their own if it is NULL. */
struct lcfs_store;
struct lcfs_fsverity_file_hasher;
int lcfs_build_content_once(struct lcfs_node_s *node, int fd, const struct stat *before,
			    int flags, struct lcfs_store *store,
			    struct lcfs_fsverity_file_hasher *h, enum build_stage *stage);

/* Whether @flags is a valid combination of LCFS_BUILD_* flags. */
bool lcfs_build_flags_valid(int flags);

/* ---- lcfs-build-content.c ------------------------------------------------------- */

/* Records the first failure (thread-safe) and returns -@err. */
int lcfs_build_fail(struct build_ctx *c, struct lcfs_node_s *node, const char *name,
		    enum build_stage stage, int err);

void lcfs_build_report_progress(struct build_ctx *c, bool force);

/* Starts the workers, before the scan. 0 or -ENOMEM. */
int lcfs_build_start_workers(struct build_ctx *c, unsigned threads);

/* Closes the queue and waits until every queued file is done. */
void lcfs_build_finish_workers(struct build_ctx *c);

/* Collects a file for the content pass (scan thread only), and hands the
 * collected files to the workers. 0 or -ENOMEM. */
int lcfs_build_pending_add(struct build_ctx *c, struct lcfs_node_s *node);
int lcfs_build_queue_flush(struct build_ctx *c);
/* lcfs_build_queue_flush() once enough files are pending to be worth
 * waking a worker for, or when one waits for work; else nothing. */
int lcfs_build_queue_offer(struct build_ctx *c);

/* The same for a file the scan opened (@fd, which the content pass then
 * closes, and @before its fstat()). */
int lcfs_build_pending_add_open(struct build_ctx *c, struct lcfs_node_s *node, int fd,
				const struct stat *before);

/* Before the scan opens a file: waits while @held_max files are open
 * (handing its pending files to the workers first). False if the build
 * failed meanwhile. */
bool lcfs_build_hold_wait(struct build_ctx *c);

/* Closes @fd, opened by the scan (-1: gives back the room
 * lcfs_build_hold_wait() made for a file that was not opened). */
void lcfs_build_hold_close(struct build_ctx *c, int fd);

/* Closes the files still open in the queues (after a failure). */
void lcfs_build_close_queued(struct build_ctx *c);

#endif /* _LCFS_SCANNER_H */
