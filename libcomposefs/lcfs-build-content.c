/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The directory scanner, part 2: the content pass (docs/design.md,
 * "Content pass"). N threads take regular files from a shared queue, big
 * ones first, open each below the source without following symlinks and
 * load its content (lcfs-build-entry.c). Each file's result depends on
 * its own data only, so the image does not depend on the number of
 * threads or on the order of the work. Also the scanner's error and
 * progress reports, which every thread uses.
 */
#include "config.h"
#include "lcfs-compat.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lcfs-store.h"
#include "lcfs-node.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-fsverity.h"
#include "lcfs-scanner.h"

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
int lcfs_build_fail(struct build_ctx *c, struct lcfs_node_s *node,
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
	/* Under the lock, so that a scan waiting for a descriptor wakes up
	 * and sees it. */
	atomic_store(&c->failed, true);
	pthread_cond_broadcast(&c->held_cond);
	pthread_mutex_unlock(&c->lock);
	free(path);
	return -err;
}

void lcfs_build_report_progress(struct build_ctx *c, bool force)
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

/* Small files a worker takes from the queue at a time. */
#define TAKE_SMALL 8

struct worker {
	struct build_ctx *c;
	pthread_t thread;
	bool is_caller; /* the calling thread: it reports progress */
	struct lcfs_fsverity_file_hasher *hasher; /* NULL: one per file */
	/* Files taken and not yet processed, from @next on. */
	struct work_item taken[TAKE_SMALL];
	size_t n_taken, next;
	char path[PATH_MAX];
};

/* The content of the regular file @fd, whose fstat() before reading is
 * *@st, into @node; read once more, from the start, if it changed while
 * it was read. 0 or -errno, with *@stage naming the step that failed. */
static int read_content(struct worker *w, struct lcfs_node_s *node, int fd,
			struct stat *st, enum build_stage *stage)
{
	struct build_ctx *c = w->c;
	int r = lcfs_build_content_once(node, fd, st, c->flags, c->store, w->hasher, stage);

	if (r == CONTENT_CHANGED && fstat(fd, st) < 0)
		r = -errno;
	else if (r == CONTENT_CHANGED)
		r = lcfs_build_content_once(node, fd, st, c->flags, c->store, w->hasher,
					    stage);
	if (r > 0) {
		*stage = STAGE_CHANGED;
		r = -EAGAIN;
	}
	return r;
}

static int process_file(struct worker *w, const struct work_item *item)
{
	struct build_ctx *c = w->c;
	struct lcfs_node_s *node = item->node;
	enum build_stage stage = STAGE_READ;
	const int oflags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
	struct stat st;
	int fd, r;

	if (item->fd >= 0) {
		/* Opened and checked by the scan. */
		memset(&st, 0, sizeof(st));
		st.st_mode = S_IFREG;
		st.st_size = (off_t)node->size;
		st.st_mtim.tv_sec = item->mtime_sec;
		st.st_mtim.tv_nsec = item->mtime_nsec;
		st.st_ctim.tv_sec = item->ctime_sec;
		st.st_ctim.tv_nsec = item->ctime_nsec;
		r = read_content(w, node, item->fd, &st, &stage);
		lcfs_build_hold_close(c, item->fd);
		if (r < 0)
			return lcfs_build_fail(c, node, NULL, stage, -r);
		return 0;
	}
	if (c->rootfd < 0) {
		fd = openat(c->user_dirfd, c->source, oflags | O_NOFOLLOW | O_CLOEXEC);
	} else if (node_relpath(c->root, node, w->path, sizeof(w->path)) >= 0) {
		fd = open_beneath(c, c->rootfd, w->path, oflags);
	} else {
		fd = open_by_walk(c->rootfd, c->root, node, oflags);
	}
	if (fd < 0)
		return lcfs_build_fail(c, node, NULL, STAGE_READ, errno);
	/* Whatever is there now must still be a regular file (the open
	 * did not block on a FIFO that replaced it, thanks to O_NONBLOCK). */
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	else
		r = read_content(w, node, fd, &st, &stage);
	close(fd);
	if (r < 0)
		return lcfs_build_fail(c, node, NULL, stage, -r);
	return 0;
}

/*
 * Files of BIG_FILE bytes and more wait in a heap by size, taken only when
 * no smaller file is queued: while the scan runs they are the work kept in
 * hand for when the scan falls behind the workers (directories of small
 * files), and once it is done the largest go first, so that no worker is
 * left alone with a big file at the end. Only @v and @n of the list are
 * used.
 */
static void heap_pop(struct work_list *l, struct work_item *out)
{
	size_t i = 0, n = --l->n;
	struct work_item last = l->v[n];

	*out = l->v[0];
	for (;;) {
		size_t ch = 2 * i + 1;

		if (ch >= n)
			break;
		if (ch + 1 < n && l->v[ch + 1].node->size > l->v[ch].node->size)
			ch++;
		if (l->v[ch].node->size <= last.node->size)
			break;
		l->v[i] = l->v[ch];
		i = ch;
	}
	if (n > 0)
		l->v[i] = last;
}

static int heap_push(struct work_list *l, const struct work_item *item)
{
	struct work_item *v = lcfs_array_reserve(l->v, l->n, &l->cap, sizeof(*v), 64);
	size_t i;

	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	i = l->n++;
	while (i > 0 && v[(i - 1) / 2].node->size < item->node->size) {
		v[i] = v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	v[i] = *item;
	return 0;
}

/* Closes what @w took and will not process. */
static void drop_taken(struct worker *w)
{
	for (; w->next < w->n_taken; w->next++) {
		if (w->taken[w->next].fd >= 0)
			lcfs_build_hold_close(w->c, w->taken[w->next].fd);
	}
}

/* The next file for @w to process into *@item: the small ones in the
 * order of the scan, a few at a time (one lock for several files), then
 * the largest big one; false when the queue is closed and empty, or
 * after a failure. */
static bool queue_take(struct worker *w, struct work_item *item)
{
	struct build_ctx *c = w->c;
	bool found = false;

	if (atomic_load(&c->failed)) {
		drop_taken(w);
		return false;
	}
	if (w->next < w->n_taken) {
		*item = w->taken[w->next++];
		return true;
	}
	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->failed)) {
		if (c->small.next < c->small.n) {
			size_t n = c->small.n - c->small.next;

			if (n > TAKE_SMALL)
				n = TAKE_SMALL;
			memcpy(w->taken, c->small.v + c->small.next, n * sizeof(*w->taken));
			c->small.next += n;
			w->n_taken = n;
			w->next = 1;
			*item = w->taken[0];
			found = true;
			break;
		}
		if (c->big.n > 0) {
			heap_pop(&c->big, item);
			found = true;
			break;
		}
		if (c->queue_closed)
			break;
		atomic_fetch_add(&c->idle, 1);
		pthread_cond_wait(&c->cond, &c->lock);
		atomic_fetch_sub(&c->idle, 1);
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static int list_add(struct work_list *l, const struct work_item *item)
{
	struct work_item *v = lcfs_array_reserve(l->v, l->n, &l->cap, sizeof(*v), 1024);

	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = *item;
	return 0;
}

/* Hands the files collected by lcfs_build_pending_add() to the workers. */
int lcfs_build_queue_flush(struct build_ctx *c)
{
	int r = 0;

	if (c->pending.n == 0)
		return 0;
	pthread_mutex_lock(&c->lock);
	/* @next counts the files handed out: on failure, the rest stay in
	 * @pending (for lcfs_build_close_queued()). */
	while (c->pending.next < c->pending.n) {
		const struct work_item *item = &c->pending.v[c->pending.next];
		uint64_t size = item->node->size;

		r = size >= BIG_FILE ? heap_push(&c->big, item) : list_add(&c->small, item);
		if (r < 0)
			break;
		c->pending.next++;
		atomic_fetch_add(&c->files_total, 1);
		atomic_fetch_add(&c->bytes_total, size);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (r == 0)
		c->pending.n = c->pending.next = 0;
	return r;
}

/* Files worth a wake-up of the workers when none is idle: handing each
 * directory's few files over on its own costs a lock, a broadcast and the
 * sleeps of workers that ran dry in between. */
#define OFFER_MIN 64

int lcfs_build_queue_offer(struct build_ctx *c)
{
	if (c->pending.n - c->pending.next >= OFFER_MIN || atomic_load(&c->idle) > 0)
		return lcfs_build_queue_flush(c);
	return 0;
}

/* Collects a file for the content pass (scan thread only). */
int lcfs_build_pending_add(struct build_ctx *c, struct lcfs_node_s *node)
{
	struct work_item item = { .node = node, .fd = -1 };

	return list_add(&c->pending, &item);
}

int lcfs_build_pending_add_open(struct build_ctx *c, struct lcfs_node_s *node, int fd,
				const struct stat *before)
{
	struct work_item item = {
		.node = node,
		.fd = fd,
		.mtime_sec = before->st_mtim.tv_sec,
		.ctime_sec = before->st_ctim.tv_sec,
		.mtime_nsec = (uint32_t)before->st_mtim.tv_nsec,
		.ctime_nsec = (uint32_t)before->st_ctim.tv_nsec,
	};

	return list_add(&c->pending, &item);
}

bool lcfs_build_hold_wait(struct build_ctx *c)
{
	bool ok;
	int r;

	if (atomic_load(&c->held_fds) < c->held_max) {
		atomic_fetch_add(&c->held_fds, 1);
		return !atomic_load(&c->failed);
	}
	/* The files held may all be pending, not handed out yet. */
	r = lcfs_build_queue_flush(c);
	if (r < 0) {
		lcfs_build_fail(c, NULL, NULL, STAGE_SCAN, -r);
		return false;
	}
	pthread_mutex_lock(&c->lock);
	/* Woken when half are closed, not at every close: the scan then
	 * opens a batch of files between two waits. */
	while (atomic_load(&c->held_fds) > c->held_max / 2 && !atomic_load(&c->failed))
		pthread_cond_wait(&c->held_cond, &c->lock);
	ok = !atomic_load(&c->failed);
	pthread_mutex_unlock(&c->lock);
	if (ok)
		atomic_fetch_add(&c->held_fds, 1);
	return ok;
}

void lcfs_build_hold_close(struct build_ctx *c, int fd)
{
	if (fd >= 0)
		close(fd);
	/* Only the close that reaches the mark takes the lock. */
	if (atomic_fetch_sub(&c->held_fds, 1) - 1 == c->held_max / 2) {
		pthread_mutex_lock(&c->lock);
		pthread_cond_signal(&c->held_cond);
		pthread_mutex_unlock(&c->lock);
	}
}

static void list_close(struct build_ctx *c, struct work_list *l)
{
	for (size_t i = l->next; i < l->n; i++) {
		if (l->v[i].fd >= 0)
			lcfs_build_hold_close(c, l->v[i].fd);
		l->v[i].fd = -1;
	}
}

void lcfs_build_close_queued(struct build_ctx *c)
{
	list_close(c, &c->big);
	list_close(c, &c->small);
	list_close(c, &c->pending);
}

static void worker_run(struct worker *w)
{
	struct build_ctx *c = w->c;
	struct work_item item;

	/* Without it, each digest allocates its own buffers. */
	if (c->flags & (LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST))
		w->hasher = lcfs_fsverity_file_hasher_new();
	while (queue_take(w, &item)) {
		if (process_file(w, &item) < 0) {
			drop_taken(w);
			break;
		}
		atomic_fetch_add(&c->files_done, 1);
		atomic_fetch_add(&c->bytes_done, item.node->size);
		if (w->is_caller)
			lcfs_build_report_progress(c, false);
	}
	lcfs_fsverity_file_hasher_free(w->hasher);
	w->hasher = NULL;
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
int lcfs_build_start_workers(struct build_ctx *c, unsigned threads)
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
void lcfs_build_finish_workers(struct build_ctx *c)
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
			lcfs_build_report_progress(c, false);
			pthread_mutex_lock(&c->lock);
		}
		pthread_mutex_unlock(&c->lock);
		for (unsigned i = 0; i < c->n_started; i++)
			pthread_join(c->workers[i].thread, NULL);
	}
	free(c->workers);
	c->workers = NULL;
	if (!atomic_load(&c->failed))
		lcfs_build_report_progress(c, true);
}

