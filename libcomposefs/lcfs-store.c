/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The object store of mkcomposefs --digest-store (TOOLS-AND-MOUNT.md
 * section 2.6, pass 2). See lcfs-store.h for the crash-safety contract.
 *
 * Each object is copied by reflink (FICLONE) where the filesystems allow
 * it, else by copy_file_range(), else by read/write; made 0644 exactly;
 * given fs-verity where the filesystem supports it (failures ignored, as
 * the reference does); and named only after its data is durable.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "lcfs-store.h"

/* Objects waiting for their name. The committer thread syncs and links
 * them in groups of COMMIT_OBJECTS objects or COMMIT_BYTES bytes, which
 * makes the sync cheap (one journal commit covers many files) without
 * making the copying threads wait for the disk. Each holds an open file,
 * hence the bound. */
#define MAX_PENDING 256
#define COMMIT_OBJECTS 64
#define COMMIT_BYTES (64u << 20)

/* Buffer of the read/write fallback copy. */
#define COPY_BUF_SIZE (1u << 20)

/* copy_file_range() request size; the kernel may copy less. */
#define COPY_CHUNK (1u << 30)

/* Temporary files older than this are left from an interrupted run. */
#define STALE_TMP_SECONDS (60 * 60)

#define TMP_PREFIX ".tmp"
#define TMP_NAME_SIZE 20

/* Digests claimed by this run: open addressing, doubled at half load. */
struct digest_set {
	uint8_t (*keys)[LCFS_DIGEST_SIZE];
	uint8_t *used;
	size_t cap;
	size_t n;
};

struct pending_object {
	int fd;
	char tmp_name[TMP_NAME_SIZE]; /* empty for an O_TMPFILE object */
	char path[LCFS_STORE_PATH_SIZE];
	uint64_t size;
};

struct lcfs_store {
	int dirfd;
	atomic_bool no_tmpfile; /* O_TMPFILE not supported: named temps */
	atomic_bool no_reflink; /* FICLONE not supported by the store */
	atomic_bool no_cfr;     /* copy_file_range() unusable */
	atomic_bool no_verity;  /* fs-verity not supported */
	atomic_uchar subdir_made[256];
	atomic_uchar subdir_linked[256]; /* an object was named in xx/ */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t work;  /* the committer waits for objects */
	pthread_cond_t space; /* producers wait for room in @queue */
	struct digest_set claimed;
	struct pending_object *queue, *spare; /* MAX_PENDING each */
	size_t n_queued;
	uint64_t queued_bytes;
	bool stopping;
	bool has_committer;
	pthread_t committer;
	int error; /* first commit error, -errno */
};

void lcfs_store_object_path(const uint8_t digest[LCFS_DIGEST_SIZE],
			    char path[LCFS_STORE_PATH_SIZE])
{
	char hex[2 * LCFS_DIGEST_SIZE + 1];

	lcfs_digest_to_hex(digest, hex);
	path[0] = hex[0];
	path[1] = hex[1];
	path[2] = '/';
	memcpy(path + 3, hex + 2, 2 * LCFS_DIGEST_SIZE - 2 + 1);
}

/* ---- Claimed digests ------------------------------------------------------ */

static size_t digest_slot(const uint8_t *digest, size_t cap)
{
	size_t h;

	/* The digest is already uniformly distributed. */
	memcpy(&h, digest, sizeof(h));
	return h & (cap - 1);
}

static int digest_set_grow(struct digest_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 1024;
	uint8_t(*keys)[LCFS_DIGEST_SIZE] = calloc(cap, LCFS_DIGEST_SIZE);
	uint8_t *used = calloc(cap, 1);

	if (keys == NULL || used == NULL) {
		free(keys);
		free(used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap; i++) {
		size_t j;

		if (!s->used[i])
			continue;
		for (j = digest_slot(s->keys[i], cap); used[j]; j = (j + 1) & (cap - 1))
			;
		memcpy(keys[j], s->keys[i], LCFS_DIGEST_SIZE);
		used[j] = 1;
	}
	free(s->keys);
	free(s->used);
	s->keys = keys;
	s->used = used;
	s->cap = cap;
	return 0;
}

/* 1 if @digest was new (now claimed by the caller), 0 if already claimed,
 * or -ENOMEM. */
static int digest_set_claim(struct digest_set *s, const uint8_t *digest)
{
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		int r = digest_set_grow(s);

		if (r < 0)
			return r;
	}
	for (i = digest_slot(digest, s->cap); s->used[i]; i = (i + 1) & (s->cap - 1)) {
		if (memcmp(s->keys[i], digest, LCFS_DIGEST_SIZE) == 0)
			return 0;
	}
	memcpy(s->keys[i], digest, LCFS_DIGEST_SIZE);
	s->used[i] = 1;
	s->n++;
	return 1;
}

/* ---- Opening and closing ---------------------------------------------------- */

/* Creates @path and its missing parents. Errors are left to the open()
 * that follows: an existing directory is fine, anything else fails there. */
static void mkdir_parents(char *path)
{
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		(void)mkdir(path, 0755);
		*p = '/';
	}
	(void)mkdir(path, 0755);
}

/* Unlinks temporary files of runs that ended long ago. Younger ones may
 * belong to a run still in progress. Best effort: errors are ignored. */
static void remove_stale_temps(int dirfd)
{
	time_t now = time(NULL);
	DIR *d;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		struct stat sb;

		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode) || sb.st_mtime > now - STALE_TMP_SECONDS)
			continue;
		(void)unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

/* ---- Committing ---------------------------------------------------------------------- */

/* 0..255 from the "xx" of an object path. */
static unsigned subdir_index(const char *path)
{
	char subdir[3] = { path[0], path[1], '\0' };

	return (unsigned)strtoul(subdir, NULL, 16) & 0xff;
}

static void pending_discard(struct lcfs_store *st, struct pending_object *p)
{
	if (p->tmp_name[0] != '\0')
		(void)unlinkat(st->dirfd, p->tmp_name, 0);
	close(p->fd);
}

/* Gives @p its final name. An object that exists already is as good as
 * ours (same digest, same content). */
static int pending_link(struct lcfs_store *st, struct pending_object *p)
{
	char proc[64];

	if (p->tmp_name[0] != '\0') {
		if (renameat2(st->dirfd, p->tmp_name, st->dirfd, p->path,
			      RENAME_NOREPLACE) == 0) {
			p->tmp_name[0] = '\0';
			return 0;
		}
		if (errno == EINVAL) {
			/* No RENAME_NOREPLACE here: link, then unlink. */
			if (linkat(st->dirfd, p->tmp_name, st->dirfd, p->path, 0) < 0 &&
			    errno != EEXIST)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		return 0; /* the temporary name goes in pending_discard() */
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
	if (linkat(AT_FDCWD, proc, st->dirfd, p->path, AT_SYMLINK_FOLLOW) == 0 ||
	    errno == EEXIST)
		return 0;
	/* Without /proc, AT_EMPTY_PATH does the same for privileged users. */
	if (errno == ENOENT &&
	    (linkat(p->fd, "", st->dirfd, p->path, AT_EMPTY_PATH) == 0 || errno == EEXIST))
		return 0;
	return -errno;
}

/* Syncs the data of @n objects, then names them; always releases them
 * (@r < 0: an earlier error, only release them). The order is what makes
 * the store crash safe: after a crash a name never points to incomplete
 * data. One journal commit usually covers the whole group. */
static int commit_objects(struct lcfs_store *st, struct pending_object *objs, size_t n,
			  int r)
{
	/* Start the writeback of the whole group, then wait for each. */
	for (size_t i = 0; i < n && r == 0; i++)
		(void)sync_file_range(objs[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (size_t i = 0; i < n && r == 0; i++) {
		if (fdatasync(objs[i].fd) < 0)
			r = -errno;
	}
	for (size_t i = 0; i < n; i++) {
		struct pending_object *p = &objs[i];

		if (r == 0) {
			r = pending_link(st, p);
			if (r == 0)
				atomic_store(&st->subdir_linked[subdir_index(p->path)], 1);
		}
		pending_discard(st, p);
	}
	return r;
}

/* Takes everything queued (caller holds the lock) into @out; returns the
 * count. */
static size_t take_queue(struct lcfs_store *st, struct pending_object **out)
{
	size_t n = st->n_queued;
	struct pending_object *q = st->queue;

	st->queue = st->spare;
	st->spare = NULL;
	st->n_queued = 0;
	st->queued_bytes = 0;
	*out = q;
	pthread_cond_broadcast(&st->space);
	return n;
}

static void give_back(struct lcfs_store *st, struct pending_object *q, int r)
{
	pthread_mutex_lock(&st->lock);
	st->spare = q;
	if (r < 0 && st->error == 0)
		st->error = r;
	pthread_cond_broadcast(&st->space);
	pthread_mutex_unlock(&st->lock);
}

static void *committer_main(void *arg)
{
	struct lcfs_store *st = arg;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		struct pending_object *q;
		size_t n;
		int r;

		while (!st->stopping && st->n_queued < COMMIT_OBJECTS &&
		       st->queued_bytes < COMMIT_BYTES)
			pthread_cond_wait(&st->work, &st->lock);
		if (st->n_queued == 0 && st->stopping)
			break;
		/* The other buffer is free: the previous group is done. After
		 * an error, objects are dropped instead. */
		r = st->error;
		n = take_queue(st, &q);
		pthread_mutex_unlock(&st->lock);
		r = commit_objects(st, q, n, r);
		give_back(st, q, r);
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* Queues @p for its name, waiting while the queue is full. Without a
 * committer thread the caller commits a full queue itself. */
static int enqueue(struct lcfs_store *st, struct pending_object *p)
{
	struct pending_object *q = NULL;
	size_t n = 0;
	int r;

	pthread_mutex_lock(&st->lock);
	while (st->error == 0 && st->n_queued == MAX_PENDING) {
		if (!st->has_committer && st->spare != NULL) {
			n = take_queue(st, &q); /* full: commit it ourselves */
			break;
		}
		pthread_cond_wait(&st->space, &st->lock);
	}
	r = st->error;
	if (r == 0) {
		st->queue[st->n_queued++] = *p;
		st->queued_bytes += p->size;
		if (st->n_queued >= COMMIT_OBJECTS || st->queued_bytes >= COMMIT_BYTES) {
			if (st->has_committer)
				pthread_cond_signal(&st->work);
			else if (q == NULL && st->spare != NULL)
				n = take_queue(st, &q);
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		pending_discard(st, p);
	if (q != NULL) {
		r = commit_objects(st, q, n, r);
		give_back(st, q, r);
	}
	return r;
}

/* ---- Opening and closing ------------------------------------------------------------- */

int lcfs_store_open(const char *path, struct lcfs_store **out)
{
	cleanup_free char *copy = NULL;
	struct lcfs_store *st;
	size_t len = strlen(path);
	int r;

	/* Trailing slashes do not matter; "" and "/" keep their meaning. */
	while (len > 1 && path[len - 1] == '/')
		len--;
	copy = len == 0 ? strdup(".") : strndup(path, len);
	if (copy == NULL)
		return -ENOMEM;
	mkdir_parents(copy);

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->queue = calloc(MAX_PENDING, sizeof(*st->queue));
	st->spare = calloc(MAX_PENDING, sizeof(*st->spare));
	if (st->queue == NULL || st->spare == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	st->dirfd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		r = -errno;
		goto fail;
	}
	if (pthread_mutex_init(&st->lock, NULL) != 0 ||
	    pthread_cond_init(&st->work, NULL) != 0 ||
	    pthread_cond_init(&st->space, NULL) != 0) {
		close(st->dirfd);
		r = -ENOMEM;
		goto fail;
	}
	/* Without the thread, enqueue() commits synchronously. */
	st->has_committer = pthread_create(&st->committer, NULL, committer_main, st) == 0;
	remove_stale_temps(st->dirfd);
	*out = st;
	return 0;
fail:
	free(st->queue);
	free(st->spare);
	free(st);
	return r;
}

/* Makes the names of the new objects durable: one sync of each directory
 * that received one (the first forces the journal commit that covers the
 * others). */
static int sync_names(struct lcfs_store *st)
{
	int r = 0;

	for (unsigned i = 0; i < 256; i++) {
		char name[3];
		int fd;

		if (!atomic_load(&st->subdir_linked[i]))
			continue;
		snprintf(name, sizeof(name), "%02x", i);
		fd = openat(st->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			if (r == 0)
				r = -errno;
		}
		if (fd >= 0)
			close(fd);
	}
	return r;
}

static int store_stop(struct lcfs_store *st, bool commit)
{
	struct pending_object *q = NULL;
	size_t n = 0;
	int r;

	pthread_mutex_lock(&st->lock);
	if (!commit && st->error == 0)
		st->error = -ECANCELED; /* pending objects are dropped */
	st->stopping = true;
	pthread_cond_broadcast(&st->work);
	pthread_cond_broadcast(&st->space);
	pthread_mutex_unlock(&st->lock);
	if (st->has_committer) {
		pthread_join(st->committer, NULL);
		st->has_committer = false;
	}
	pthread_mutex_lock(&st->lock);
	if (st->n_queued > 0)
		n = take_queue(st, &q);
	r = st->error;
	pthread_mutex_unlock(&st->lock);
	if (q != NULL) {
		r = commit_objects(st, q, n, r);
		give_back(st, q, r);
	}
	return r;
}

int lcfs_store_finish(struct lcfs_store *st)
{
	int r = store_stop(st, true);

	if (r == 0)
		r = sync_names(st);
	return r;
}

void lcfs_store_free(struct lcfs_store *st)
{
	if (st == NULL)
		return;
	(void)store_stop(st, false);
	close(st->dirfd);
	pthread_cond_destroy(&st->work);
	pthread_cond_destroy(&st->space);
	pthread_mutex_destroy(&st->lock);
	free(st->claimed.keys);
	free(st->claimed.used);
	free(st->queue);
	free(st->spare);
	free(st);
}

/* ---- Writing one object ------------------------------------------------------------ */

static void random_tmp_name(char name[TMP_NAME_SIZE])
{
	static const char chars[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t rnd[12];
	struct timespec ts;

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> i) ^
					   (uintptr_t)&ts >> (i % 8));
	}
	memcpy(name, TMP_PREFIX, strlen(TMP_PREFIX));
	for (size_t i = 0; i < sizeof(rnd); i++)
		name[strlen(TMP_PREFIX) + i] = chars[rnd[i] % (sizeof(chars) - 1)];
	name[strlen(TMP_PREFIX) + sizeof(rnd)] = '\0';
}

/* A new, empty, unnamed (or temporarily named) file for object @p. */
static int create_temp(struct lcfs_store *st, struct pending_object *p)
{
	char subdir[3] = { p->path[0], p->path[1], '\0' };

	p->tmp_name[0] = '\0';
	if (!atomic_load(&st->no_tmpfile)) {
		p->fd = openat(st->dirfd, subdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (p->fd >= 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -errno;
		atomic_store(&st->no_tmpfile, true);
	}
	for (int tries = 0; tries < 100; tries++) {
		random_tmp_name(p->tmp_name);
		p->fd = openat(st->dirfd, p->tmp_name,
			       O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (p->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	p->tmp_name[0] = '\0';
	return -errno;
}

static int copy_read_write(int src, int dst, uint64_t off, uint64_t size)
{
	cleanup_free uint8_t *buf = malloc(COPY_BUF_SIZE);

	if (buf == NULL)
		return -ENOMEM;
	while (off < size) {
		size_t want = size - off < COPY_BUF_SIZE ? (size_t)(size - off) : COPY_BUF_SIZE;
		ssize_t n = pread(src, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* the file shrank */
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(dst, buf + done, (size_t)(n - done),
					   (off_t)(off + (uint64_t)done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
			if (w == 0)
				return -EIO;
			done += w;
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* Copies the first @size bytes of @src into the empty file @dst. */
static int copy_data(struct lcfs_store *st, int src, int dst, uint64_t size)
{
	loff_t in = 0, out = 0;

	if (!atomic_load(&st->no_reflink)) {
		if (ioctl(dst, FICLONE, src) == 0) {
			struct stat sb;

			/* The clone has the whole file; keep @size bytes. */
			if (fstat(dst, &sb) < 0)
				return -errno;
			if ((uint64_t)sb.st_size < size)
				return -ENODATA;
			if ((uint64_t)sb.st_size > size && ftruncate(dst, (off_t)size) < 0)
				return -errno;
			return 0;
		}
		/* EXDEV only says that this source lives elsewhere. */
		if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL ||
		    errno == ENOSYS)
			atomic_store(&st->no_reflink, true);
	}

	while (!atomic_load(&st->no_cfr) && (uint64_t)in < size) {
		uint64_t left = size - (uint64_t)in;
		ssize_t n = copy_file_range(src, &in, dst, &out,
					    left < COPY_CHUNK ? (size_t)left : COPY_CHUNK, 0);

		if (n > 0)
			continue;
		if (n == 0)
			break; /* short file or no support: read/write decides */
		if (errno == EINTR)
			continue;
		if (errno == ENOSYS || errno == EXDEV) {
			atomic_store(&st->no_cfr, true);
			break;
		}
		if (errno == EOPNOTSUPP || errno == EPERM || errno == EINVAL ||
		    errno == EBADF)
			break;
		return -errno;
	}
	if ((uint64_t)in >= size)
		return 0;
	return copy_read_write(src, dst, (uint64_t)in, size);
}

/* fs-verity on the new object: the kernel refuses while a writable
 * descriptor is open, so continue with a read-only one. Where verity is
 * unsupported we stop trying; every failure is ignored (section 2.6). */
static void enable_verity(struct lcfs_store *st, struct pending_object *p)
{
	char proc[64];
	int ro, r;

	if (atomic_load(&st->no_verity))
		return;
	if (p->tmp_name[0] != '\0') {
		ro = openat(st->dirfd, p->tmp_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
		ro = open(proc, O_RDONLY | O_CLOEXEC);
	}
	if (ro < 0)
		return;
	close(p->fd);
	p->fd = ro;
	r = lcfs_fd_enable_fsverity(ro);
	if (r == -ENOTTY || r == -EOPNOTSUPP)
		atomic_store(&st->no_verity, true);
}

static int ensure_subdir(struct lcfs_store *st, const char *path)
{
	char subdir[3] = { path[0], path[1], '\0' };
	unsigned idx = subdir_index(path);

	if (atomic_load(&st->subdir_made[idx]))
		return 0;
	if (mkdirat(st->dirfd, subdir, 0755) < 0 && errno != EEXIST)
		return -errno;
	atomic_store(&st->subdir_made[idx], 1);
	return 0;
}

int lcfs_store_put(struct lcfs_store *st, int fd, uint64_t size,
		   const uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct pending_object p = { .fd = -1, .size = size };
	struct stat sb;
	int r;

	lcfs_store_object_path(digest, p.path);
	/* Present already: kept as it is, like the reference (section 2.6
	 * step 3). */
	if (fstatat(st->dirfd, p.path, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;

	pthread_mutex_lock(&st->lock);
	r = st->error;
	if (r == 0)
		r = digest_set_claim(&st->claimed, digest);
	pthread_mutex_unlock(&st->lock);
	if (r <= 0)
		return r; /* failed, or another file of this run has this content */

	r = ensure_subdir(st, p.path);
	if (r < 0)
		return r;
	r = create_temp(st, &p);
	if (r < 0)
		return r;
	r = copy_data(st, fd, p.fd, size);
	if (r == 0 && fchmod(p.fd, 0644) < 0)
		r = -errno;
	if (r < 0) {
		pending_discard(st, &p);
		return r;
	}
	enable_verity(st, &p);
	return enqueue(st, &p);
}
