/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The object store of mkcomposefs --digest-store (docs/design.md, "Object
 * store"). See lcfs-store.h for the contract.
 *
 * Each object is copied by reflink (FICLONE) where the filesystems allow
 * it, else by copy_file_range(), else by read/write; made 0644 exactly;
 * given fs-verity where the filesystem supports it (failures ignored, as
 * the reference does); and named only once complete.
 *
 * Large new objects on a store without reflinks and without fs-verity are
 * the exception: they are read once, hashed from the buffer and written
 * with O_DIRECT (and so are large objects that arrive in memory, from a
 * tar stream). Filling the page cache with gigabytes of fresh copies
 * costs more CPU time than the copying itself (every new page has to be
 * allocated and, on virtual machines that hand free memory back to the
 * host, faulted in again), while a direct write moves the data from a
 * buffer that stays the same. With fs-verity the kernel reads the new
 * object to build its Merkle tree, which should find it cached: there the
 * buffered copy stays.
 */
#include "config.h"
#include "lcfs-compat.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "lcfs-store.h"
#include "lcfs-util.h"
#include "lcfs-fsverity.h"

/* Buffer of the read/write fallback copy. */
#define COPY_BUF_SIZE (1u << 20)

/* copy_file_range() request size; the kernel may copy less. */
#define COPY_CHUNK (1u << 30)

/* Copies hashed through a mapping rather than read(): from this size on
 * the saved copy outweighs setting up the mapping. */
#define MAP_HASH_MIN (256u << 10)
/* Mapped at a time, which bounds the memory mapped per thread; a multiple
 * of the page size and of the fs-verity block size. */
#define MAP_WINDOW (8u << 20)

/* Objects from this size on are written with O_DIRECT where that path is
 * open (see the top of the file): small ones would wait for the disk once
 * per file for little data. */
#define DIRECT_MIN (256u << 10)
/* Read, hash and write unit of that path; a multiple of any block size
 * that O_DIRECT may require (at most 4096 bytes). */
#define DIRECT_CHUNK (1u << 20)
#define DIRECT_ALIGN 4096u

/* Temporary files older than this are left from an interrupted run. */
#define STALE_TMP_SECONDS (60 * 60)

/* The descriptor limit from which a store keeps its 256 subdirectories
 * open (struct lcfs_store). */
#define SUBDIR_CACHE_MIN_FDS 1024

#define TMP_PREFIX LCFS_STORE_TMP_PREFIX
#define TMP_NAME_SIZE LCFS_STORE_TMP_NAME_SIZE

/* Digests claimed by this run: open addressing, doubled at half load. */
struct digest_set {
	uint8_t (*keys)[LCFS_DIGEST_SIZE];
	uint8_t *used;
	size_t cap;
	size_t n;
};

struct lcfs_store {
	int dirfd;
	char *path;             /* as given, for messages */
	int lockfd;             /* shared store lock, held while open */
	atomic_bool no_tmpfile; /* O_TMPFILE not supported: named temps */
	atomic_bool no_reflink; /* FICLONE not supported by the store */
	atomic_bool no_cfr;     /* copy_file_range() unusable */
	atomic_bool no_verity;  /* fs-verity not supported */
	atomic_bool direct_ok;  /* O_DIRECT copies of large objects (see top) */
	atomic_uchar subdir_made[256];
	/* With @cache_subdirs, the subdirectories are opened once each and
	 * kept until the store is freed: two system calls less per object.
	 * Holding them is safe: gc and fsck, which remove entries, take the
	 * store lock exclusively, and this handle holds it shared. Without
	 * room for 256 more descriptors, each use opens its own. */
	bool cache_subdirs;
	atomic_int subdir_fd[256];
	/* Outcome of the lookups so far: objects found, objects written. */
	_Atomic uint64_t n_present, n_absent;
	atomic_uint next_subdir; /* where lcfs_store_put_copy() writes next */
	pthread_mutex_t lock;   /* protects @claimed and @problem */
	struct digest_set claimed;
	char problem[LCFS_STORE_PROBLEM_SIZE]; /* first entry refused */
	/* lcfs_store_stage(): new objects wait in this directory of the
	 * store root, named by their hex digest, until published. */
	int stage_fd;
	char stage_name[TMP_NAME_SIZE];
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

/* ---- Opening and closing ------------------------------------------------------- */

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

/* Opens the directory @name below @dirfd (not through a symlink) for
 * reading; its descriptor in *@fdp unless @fdp is NULL. NULL on any
 * error. */
static DIR *open_dir_at(int dirfd, const char *name, int *fdp)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (d == NULL)
		close(fd);
	else if (fdp != NULL)
		*fdp = fd;
	return d;
}

/* Removes the staging directory @name (see lcfs_store_stage()) and the
 * regular files in it. Best effort. */
static void remove_stage_dir(int dirfd, const char *name)
{
	int fd = -1;
	DIR *d = open_dir_at(dirfd, name, &fd);

	if (d == NULL)
		return;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (de->d_name[0] != '.')
			(void)unlinkat(fd, de->d_name, 0);
	closedir(d);
	(void)unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Unlinks temporary files of runs that ended long ago. Younger ones may
 * belong to a run still in progress. Best effort: errors are ignored. */
static void remove_stale_temps(int dirfd)
{
	time_t now = time(NULL);
	DIR *d = open_dir_at(dirfd, ".", NULL);

	if (d == NULL)
		return;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		struct stat sb;

		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    sb.st_mtime > now - STALE_TMP_SECONDS)
			continue;
		if (S_ISREG(sb.st_mode))
			(void)unlinkat(dirfd, de->d_name, 0);
		else if (S_ISDIR(sb.st_mode))
			remove_stage_dir(dirfd, de->d_name);
	}
	closedir(d);
}

static void probe_direct(struct lcfs_store *st);

int lcfs_store_lock(int store_dirfd, bool exclusive)
{
	struct stat sb;
	int fd, r;

	fd = openat(store_dirfd, LCFS_STORE_LOCK_NAME,
		    O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		    0644);
	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	/* O_NONBLOCK keeps a FIFO planted there from blocking the open. */
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* @path without trailing slashes ("" and "/" keep their meaning), with
 * its missing directories created; malloc'd, NULL without memory. */
static char *store_path_prepare(const char *path)
{
	size_t len = strlen(path);
	char *copy;

	while (len > 1 && path[len - 1] == '/')
		len--;
	copy = len == 0 ? strdup(".") : strndup(path, len);
	if (copy != NULL)
		mkdir_parents(copy);
	return copy;
}

int lcfs_store_open_dir(const char *path)
{
	cleanup_free char *copy = store_path_prepare(path);
	int fd;

	if (copy == NULL)
		return -ENOMEM;
	/* The store itself may be reached through symlinks: its path is the
	 * caller's choice. Below it, nothing is followed. */
	fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int lcfs_store_open(const char *path, struct lcfs_store **out)
{
	cleanup_free char *copy = store_path_prepare(path);
	struct lcfs_store *st;
	struct rlimit rl;
	int r;

	if (copy == NULL)
		return -ENOMEM;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->stage_fd = -1;
	for (size_t i = 0; i < 256; i++)
		atomic_init(&st->subdir_fd[i], -1);
	st->cache_subdirs = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
			    (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= SUBDIR_CACHE_MIN_FDS);
	st->dirfd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		r = -errno;
		free(st);
		return r;
	}
	st->lockfd = lcfs_store_lock(st->dirfd, false);
	if (st->lockfd < 0) {
		r = st->lockfd;
		close(st->dirfd);
		free(st);
		return r;
	}
	r = pthread_mutex_init(&st->lock, NULL);
	if (r != 0) {
		close(st->lockfd);
		close(st->dirfd);
		free(st);
		return -r;
	}
	st->path = steal_pointer(&copy);
	remove_stale_temps(st->dirfd);
	probe_direct(st);
	*out = st;
	return 0;
}

void lcfs_store_free(struct lcfs_store *st)
{
	if (st == NULL)
		return;
	if (st->stage_fd >= 0) {
		close(st->stage_fd);
		remove_stage_dir(st->dirfd, st->stage_name);
	}
	for (size_t i = 0; i < 256; i++) {
		int fd = atomic_load(&st->subdir_fd[i]);

		if (fd >= 0)
			close(fd);
	}
	close(st->dirfd);
	close(st->lockfd);
	free(st->path);
	pthread_mutex_destroy(&st->lock);
	free(st->claimed.keys);
	free(st->claimed.used);
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

/* A new file with a random temporary name in the store root. */
static int open_named_temp(struct lcfs_store *st, struct lcfs_store_object *o)
{
	for (int tries = 0; tries < 100; tries++) {
		random_tmp_name(o->tmp_name);
		o->fd = openat(st->dirfd, o->tmp_name,
			       O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (o->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	o->tmp_name[0] = '\0';
	return -errno;
}

static int copy_read_write(int src, int dst, uint64_t off, uint64_t size)
{
	cleanup_free uint8_t *buf = malloc(COPY_BUF_SIZE);

	if (buf == NULL)
		return -ENOMEM;
	while (off < size) {
		size_t want = size - off < COPY_BUF_SIZE ? (size_t)(size - off) : COPY_BUF_SIZE;
		/* -ENODATA: the file shrank. */
		int r = lcfs_pread_exact(src, buf, want, off);

		if (r == 0)
			r = lcfs_pwrite_all(dst, buf, want, off);
		if (r < 0)
			return r;
		off += want;
	}
	return 0;
}

/* Whether FICLONE failing with @err means that the store's filesystem has
 * no reflinks. EXDEV only says that this source lives elsewhere. */
static bool reflink_unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOTTY || err == EINVAL || err == ENOSYS;
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
		if (reflink_unsupported(errno))
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

/* A new, empty file for @o: unnamed (O_TMPFILE) in its subdirectory, or
 * with a temporary name in the store root. */
static int create_temp(struct lcfs_store *st, struct lcfs_store_object *o)
{
	o->tmp_name[0] = '\0';
	if (!atomic_load(&st->no_tmpfile)) {
		o->fd = openat(o->subfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (o->fd >= 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -errno;
		atomic_store(&st->no_tmpfile, true);
	}
	return open_named_temp(st, o);
}

/* fs-verity on the new object: the kernel refuses while a writable
 * descriptor is open, so continue with a read-only one. Where verity is
 * unsupported we stop trying; every failure is ignored (docs/design.md,
 * "Object store"). */
static void enable_verity(struct lcfs_store *st, struct lcfs_store_object *o)
{
	char proc[64];
	int ro, r;

	if (atomic_load(&st->no_verity))
		return;
	if (o->tmp_name[0] != '\0') {
		ro = openat(st->dirfd, o->tmp_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
		ro = open(proc, O_RDONLY | O_CLOEXEC);
	}
	if (ro < 0)
		return;
	close(o->fd);
	o->fd = ro;
	r = lcfs_fd_enable_fsverity(ro);
	if (r == -ENOTTY || r == -EOPNOTSUPP)
		atomic_store(&st->no_verity, true);
}

/*
 * Whether large objects may be written with O_DIRECT: the store needs
 * O_TMPFILE (the direct path writes unnamed files), no reflinks (a clone
 * is cheaper still) and no fs-verity (see the top of the file). Both are
 * tried on an unnamed one-byte file, which vanishes on close. Anything
 * unexpected keeps the buffered path.
 */
static void probe_direct(struct lcfs_store *st)
{
	static const uint8_t byte = 0;
	struct lcfs_store_object o = { .fd = -1, .subfd = -1 };
	int clone;

	o.fd = openat(st->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (o.fd < 0)
		return;
	if (lcfs_pwrite_all(o.fd, &byte, 1, 0) < 0) {
		close(o.fd);
		return;
	}
	clone = openat(st->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (clone >= 0) {
		bool cloned = ioctl(clone, FICLONE, o.fd) == 0;
		int err = errno;

		close(clone);
		if (cloned || !reflink_unsupported(err)) {
			close(o.fd);
			return;
		}
	}
	enable_verity(st, &o); /* sets no_verity where it is unsupported */
	close(o.fd);
	atomic_store(&st->direct_ok, atomic_load(&st->no_verity));
}

/* Gives the unnamed file @o the name @name in the directory @dfd. */
static int link_tmpfile(struct lcfs_store_object *o, int dfd, const char *name)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	/* Without /proc, AT_EMPTY_PATH does the same for privileged users. */
	if (errno == ENOENT && linkat(o->fd, "", dfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	return -errno;
}

/* While staging: the complete object @o goes into the staging directory
 * under its hex digest (taken from its path). */
static int stage_object(struct lcfs_store *st, struct lcfs_store_object *o)
{
	char hex[2 * LCFS_DIGEST_SIZE + 1];

	hex[0] = o->path[0];
	hex[1] = o->path[1];
	memcpy(hex + 2, o->path + 3, 2 * LCFS_DIGEST_SIZE - 2 + 1);
	if (o->tmp_name[0] == '\0') {
		int r = link_tmpfile(o, st->stage_fd, hex);

		return r == -EEXIST ? 0 : r;
	}
	if (renameat(st->dirfd, o->tmp_name, st->stage_fd, hex) < 0)
		return -errno;
	o->tmp_name[0] = '\0';
	return 0;
}

/*
 * Names the complete object @o. A new name: an object that appeared in
 * the meantime (another run stored the same content) is as good as ours.
 * @replace: a damaged object is in the way; it is replaced atomically, so
 * that readers see either file, never a missing one.
 */
static int name_object(struct lcfs_store *st, struct lcfs_store_object *o, bool replace)
{
	const char *name = o->path + 3; /* in @o->subfd */
	int r;

	if (o->tmp_name[0] == '\0' && !replace) {
		r = link_tmpfile(o, o->subfd, name);
		return r == -EEXIST ? 0 : r;
	}
	if (o->tmp_name[0] == '\0') {
		/* rename() needs a name to move: give the file a temporary
		 * one first. */
		for (int tries = 0;; tries++) {
			random_tmp_name(o->tmp_name);
			r = link_tmpfile(o, st->dirfd, o->tmp_name);
			if (r == 0)
				break;
			o->tmp_name[0] = '\0';
			if (r != -EEXIST || tries == 100)
				return r;
		}
	}
	if (replace) {
		if (renameat(st->dirfd, o->tmp_name, o->subfd, name) < 0)
			return -errno;
	} else if (renameat2(st->dirfd, o->tmp_name, o->subfd, name, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST)
			return 0; /* the temporary name goes in discard_object() */
		if (errno != EINVAL)
			return -errno;
		/* No RENAME_NOREPLACE on this filesystem: link, then unlink. */
		if (linkat(st->dirfd, o->tmp_name, o->subfd, name, 0) < 0 &&
		    errno != EEXIST)
			return -errno;
		return 0;
	}
	o->tmp_name[0] = '\0';
	return 0;
}

/* Done with @fd from open_subdir() (below). */
static void release_subdir(const struct lcfs_store *st, int fd)
{
	if (fd >= 0 && !st->cache_subdirs)
		close(fd);
}

/* Releases @o: its temporary file if it has one, its descriptors. Safe to
 * call again. */
static void discard_object(struct lcfs_store *st, struct lcfs_store_object *o)
{
	if (o->tmp_name[0] != '\0')
		(void)unlinkat(st->dirfd, o->tmp_name, 0);
	if (o->fd >= 0)
		close(o->fd);
	release_subdir(st, o->subfd);
	o->fd = -1;
	o->subfd = -1;
	o->tmp_name[0] = '\0';
}

/* Records the first entry @rel of the store that was refused: it is of
 * the type @type, not @wanted. */
static void set_problem(struct lcfs_store *st, const char *rel, const char *type,
			const char *wanted)
{
	pthread_mutex_lock(&st->lock);
	if (st->problem[0] == '\0')
		snprintf(st->problem, sizeof(st->problem), "'%s/%s' is %s, not %s",
			 st->path, rel, type, wanted);
	pthread_mutex_unlock(&st->lock);
}

bool lcfs_store_get_problem(struct lcfs_store *st, char *buf, size_t size)
{
	bool found;

	pthread_mutex_lock(&st->lock);
	found = st->problem[0] != '\0';
	if (found)
		snprintf(buf, size, "%s", st->problem);
	pthread_mutex_unlock(&st->lock);
	return found;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFLNK:
		return "a symbolic link";
	case S_IFDIR:
		return "a directory";
	case S_IFREG:
		return "a regular file";
	case S_IFIFO:
		return "a FIFO";
	case S_IFSOCK:
		return "a socket";
	default:
		return "a device";
	}
}

/*
 * Opens (creating it first) the subdirectory "xx" of the object path
 * @path. Whoever may write into a shared store could put a symlink
 * there, to have our objects written elsewhere: anything but a plain
 * directory is refused with -ENOTDIR and a problem message.
 */
static int open_subdir(struct lcfs_store *st, const char *path)
{
	char subdir[3] = { path[0], path[1], '\0' };
	unsigned idx = (unsigned)strtoul(subdir, NULL, 16) & 0xff;
	int fd = atomic_load(&st->subdir_fd[idx]), cached = -1;
	struct stat sb;

	if (fd >= 0)
		return fd;
	if (!atomic_load(&st->subdir_made[idx])) {
		if (mkdirat(st->dirfd, subdir, 0755) < 0 && errno != EEXIST)
			return -errno;
		atomic_store(&st->subdir_made[idx], 1);
	}
	/* openat2() confined below the store root and refusing symlinks
	 * where the kernel has it, else O_NOFOLLOW on this one name. */
	fd = lcfs_open_confined(st->dirfd, subdir,
				O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		/* Another thread may have opened it meanwhile: keep its
		 * descriptor (the exchange leaves it in @cached). */
		if (!st->cache_subdirs ||
		    atomic_compare_exchange_strong(&st->subdir_fd[idx], &cached, fd))
			return fd;
		close(fd);
		return cached;
	}
	if (fd != -ELOOP && fd != -ENOTDIR && fd != -EXDEV)
		return fd;
	if (fstatat(st->dirfd, subdir, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return -ENOTDIR;
	set_problem(st, subdir, type_name(sb.st_mode), "a directory");
	return -ENOTDIR;
}

/*
 * Whether the object @o.path for @digest must be written: 1 (and *@replace
 * if a damaged object is in the way), 0 if it is present or another thread
 * of this run is writing it, or -errno. Present objects are kept as they
 * are, like the reference (docs/compatibility.md, "Object store") -- unless
 * they cannot be right: the digest covers the size, and objects are not
 * synced one by one, so a power failure can leave one empty or short.
 */
static int object_needed(struct lcfs_store *st, struct lcfs_store_object *o,
			 const uint8_t digest[LCFS_DIGEST_SIZE], uint64_t size,
			 bool *replace)
{
	struct stat sb;
	int r;

	*replace = false;
	if (o->subfd < 0) {
		o->subfd = open_subdir(st, o->path);
		if (o->subfd < 0)
			return o->subfd;
	}
	if (fstatat(o->subfd, o->path + 3, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == size) {
			atomic_fetch_add(&st->n_present, 1);
			return 0;
		}
		/* A symlink, FIFO or device is replaced by the object (a
		 * rename, which follows nothing); a directory cannot be. */
		if (S_ISDIR(sb.st_mode)) {
			set_problem(st, o->path, type_name(sb.st_mode), "an object");
			return -EISDIR;
		}
		*replace = true;
	} else if (errno != ENOENT) {
		return -errno;
	}
	/* Several files of this run with one content: one copy. */
	pthread_mutex_lock(&st->lock);
	r = digest_set_claim(&st->claimed, digest);
	pthread_mutex_unlock(&st->lock);
	if (r >= 0)
		atomic_fetch_add(r ? &st->n_absent : &st->n_present, 1);
	return r;
}

/* Makes the complete data in @o an object: mode, verity, name. */
static int finish_object(struct lcfs_store *st, struct lcfs_store_object *o, bool replace)
{
	int r = 0;

	if (fchmod(o->fd, 0644) < 0)
		r = -errno;
	if (r == 0) {
		enable_verity(st, o);
		r = st->stage_fd >= 0 ? stage_object(st, o) : name_object(st, o, replace);
	}
	return r;
}

/*
 * Every object goes into the store the same way: its path from its
 * digest, object_needed(), the data into a temporary file, finish_object(),
 * and discard_object() whatever happened. When the digest is known before
 * the data (lcfs_store_put(), lcfs_store_put_data()), object_begin() opens
 * the temporary file and object_end() finishes; when the digest comes
 * from the data itself (copies hashed on the way, the streaming writer),
 * the data is written first and object_publish() does the rest.
 */

/* 1 with an empty temporary file open in @o for the object @digest of
 * @size bytes (*@replace as object_needed() says), 0 if no copy is needed,
 * or -errno; @o is released unless 1. */
static int object_begin(struct lcfs_store *st, struct lcfs_store_object *o,
			const uint8_t digest[LCFS_DIGEST_SIZE], uint64_t size,
			bool *replace)
{
	int r;

	lcfs_store_object_path(digest, o->path);
	r = object_needed(st, o, digest, size, replace);
	if (r > 0) {
		r = create_temp(st, o);
		if (r == 0)
			return 1;
	}
	discard_object(st, o);
	return r;
}

/* After object_begin(): @r is the result of writing the data (0: complete
 * and right). Names the object if so and releases @o; returns @r or the
 * naming error. */
static int object_end(struct lcfs_store *st, struct lcfs_store_object *o, int r,
		      bool replace)
{
	if (r == 0)
		r = finish_object(st, o, replace);
	discard_object(st, o);
	return r;
}

/* @o holds the complete data (@r == 0) of @size bytes whose digest is
 * @digest: makes it that object unless the store has it already, and
 * releases @o. Returns @r, or 0 or -errno. */
static int object_publish(struct lcfs_store *st, struct lcfs_store_object *o, int r,
			  const uint8_t digest[LCFS_DIGEST_SIZE], uint64_t size)
{
	bool replace;

	if (r == 0) {
		lcfs_store_object_path(digest, o->path);
		r = object_needed(st, o, digest, size, &replace);
		if (r > 0)
			r = finish_object(st, o, replace);
	}
	discard_object(st, o);
	return r;
}

static int digest_copy(int fd, uint64_t size, bool may_map,
		       uint8_t digest[LCFS_DIGEST_SIZE]);

int lcfs_store_put(struct lcfs_store *st, int fd, uint64_t size,
		   const uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_store_object o = { .fd = -1, .subfd = -1 };
	uint8_t copied[LCFS_DIGEST_SIZE];
	bool replace;
	int r;

	r = object_begin(st, &o, digest, size, &replace);
	if (r <= 0)
		return r;
	r = copy_data(st, fd, o.fd, size);
	/* The digest came from an earlier read of the source, which may
	 * have changed since: a copy (whichever way it was made) gets the
	 * name only if its own bytes have that digest. */
	if (r == 0)
		r = digest_copy(o.fd, size, o.tmp_name[0] == '\0', copied);
	if (r == 0 && memcmp(copied, digest, LCFS_DIGEST_SIZE) != 0)
		r = 1;
	return object_end(st, &o, r, replace);
}

bool lcfs_store_copy_first(struct lcfs_store *st)
{
	/* A clone would be hashed from a cold page cache, and a named
	 * temporary file could be truncated under the mapping by others. */
	return atomic_load(&st->no_reflink) && !atomic_load(&st->no_tmpfile) &&
	       atomic_load(&st->n_absent) >= atomic_load(&st->n_present);
}

/* fs-verity digest of the first @size bytes of our own copy @fd. Large
 * copies are hashed through a mapping (@may_map), window by window, which
 * spares copying the data out of the page cache; safe only for an unnamed
 * temporary file, which nobody else can reach (and truncate). */
static int digest_copy(int fd, uint64_t size, bool may_map,
		       uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s;

	if (size < MAP_HASH_MIN || !may_map)
		return lcfs_fsverity_digest_fd_fast(fd, size, digest);
	s = lcfs_fsverity_stream_new();
	if (s == NULL)
		return -ENOMEM;
	for (uint64_t off = 0; off < size; off += MAP_WINDOW) {
		size_t len = size - off < MAP_WINDOW ? (size_t)(size - off) : MAP_WINDOW;
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd,
			       (off_t)off);

		if (p == MAP_FAILED) {
			lcfs_fsverity_stream_free(s);
			return off == 0 ? lcfs_fsverity_digest_fd_fast(fd, size, digest) :
					  -errno;
		}
		lcfs_fsverity_stream_update(s, p, len);
		munmap(p, len);
	}
	return lcfs_fsverity_stream_final(s, digest);
}

/*
 * Copies the first @size bytes of @src into the new unnamed file @dst,
 * open with O_DIRECT, hashing them on the way. The last, partial block is
 * written padded with zeros and cut back to @size. -EINVAL when the
 * filesystem or device refuses the direct writes.
 */
static int copy_direct(int src, int dst, uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s;
	void *mem = NULL;
	uint8_t *buf;
	int r = 0;

	if (posix_memalign(&mem, DIRECT_ALIGN, DIRECT_CHUNK) != 0)
		return -ENOMEM;
	buf = mem;
	s = lcfs_fsverity_stream_new();
	if (s == NULL) {
		free(mem);
		return -ENOMEM;
	}
	for (uint64_t off = 0; off < size && r == 0;) {
		size_t want = size - off < DIRECT_CHUNK ? (size_t)(size - off) : DIRECT_CHUNK;
		size_t padded = (want + DIRECT_ALIGN - 1) & ~(size_t)(DIRECT_ALIGN - 1);

		r = lcfs_pread_exact(src, buf, want, off);
		if (r == 0) {
			lcfs_fsverity_stream_update(s, buf, want);
			memset(buf + want, 0, padded - want);
			r = lcfs_pwrite_all(dst, buf, padded, off);
		}
		off += want;
	}
	if (r == 0 && (size % DIRECT_ALIGN) != 0 && ftruncate(dst, (off_t)size) < 0)
		r = -errno;
	if (r == 0)
		r = lcfs_fsverity_stream_final(s, digest);
	else
		lcfs_fsverity_stream_free(s);
	free(mem);
	return r;
}

/* lcfs_store_put_copy() through copy_direct(): 1 when the direct path is
 * not available for this object (the caller copies it the usual way), 0
 * or -errno. */
static int put_copy_direct(struct lcfs_store *st, int fd, uint64_t size, int tmpdir,
			   uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_store_object o = { .fd = -1, .subfd = -1 };
	int r;

	o.fd = openat(tmpdir, ".", O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);
	if (o.fd < 0) {
		if (errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		atomic_store(&st->direct_ok, false);
		return 1;
	}
	r = copy_direct(fd, o.fd, size, digest);
	if (r == -EINVAL) {
		/* No O_DIRECT writes here after all. */
		atomic_store(&st->direct_ok, false);
		discard_object(st, &o);
		return 1;
	}
	return object_publish(st, &o, r, digest, size);
}

int lcfs_store_put_copy(struct lcfs_store *st, int fd, uint64_t size,
			uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_store_object o = { .fd = -1, .subfd = -1 };
	char subdir[3];
	unsigned idx;
	int tmpdir, r;

	/* Its name is not known yet: any subdirectory will do, and taking
	 * them in turn spreads the inode allocations of the filesystem (all
	 * in one directory, ext4 crawls through the recently deleted inodes
	 * of one group over and over). */
	idx = atomic_fetch_add(&st->next_subdir, 1) & 0xff;
	snprintf(subdir, sizeof(subdir), "%02x", idx);
	tmpdir = open_subdir(st, subdir);
	if (tmpdir < 0)
		return tmpdir;
	if (size >= DIRECT_MIN && atomic_load(&st->direct_ok)) {
		r = put_copy_direct(st, fd, size, tmpdir, digest);
		if (r <= 0) {
			release_subdir(st, tmpdir);
			return r;
		}
	}
	o.fd = openat(tmpdir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	release_subdir(st, tmpdir);
	if (o.fd < 0) {
		r = lcfs_fsverity_digest_fd_fast(fd, size, digest);
		return r < 0 ? r : lcfs_store_put(st, fd, size, digest);
	}
	r = copy_data(st, fd, o.fd, size);
	if (r == 0)
		r = digest_copy(o.fd, size, true, digest);
	return object_publish(st, &o, r, digest, size);
}

/* ---- Objects written by others, and the store lock ------------------------ */

int lcfs_store_dirfd(const struct lcfs_store *st)
{
	return st->dirfd;
}

int lcfs_store_object_create(struct lcfs_store *st, const uint8_t digest[LCFS_DIGEST_SIZE],
			     struct lcfs_store_object *o)
{
	int r;

	o->fd = -1;
	o->tmp_name[0] = '\0';
	lcfs_store_object_path(digest, o->path);
	o->subfd = open_subdir(st, o->path);
	if (o->subfd < 0)
		return o->subfd;
	r = create_temp(st, o);
	if (r < 0)
		lcfs_store_object_discard(st, o);
	return r;
}

int lcfs_store_object_commit(struct lcfs_store *st, struct lcfs_store_object *o,
			     bool replace)
{
	return finish_object(st, o, replace);
}

void lcfs_store_object_discard(struct lcfs_store *st, struct lcfs_store_object *o)
{
	discard_object(st, o);
}

/* ---- Objects from data that is not in a file ---------------------------------------- */

/*
 * Writes of a new object from memory (a tar stream) with O_DIRECT where
 * the store allows it (see the top of the file): set on the open
 * temporary file, and dropped again for the rest of the file as soon as a
 * write does not fit (a buffer, offset or length that is not aligned), so
 * that any caller gets its bytes written one way or the other.
 */
struct direct_state {
	bool on;  /* the file is open with O_DIRECT */
	bool cut; /* the last block was padded: truncate to the size */
};

static void direct_begin(struct lcfs_store *st, int fd, struct direct_state *ds)
{
	int fl;

	if (!atomic_load(&st->direct_ok))
		return;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0)
		ds->on = true;
}

static void direct_stop(int fd, struct direct_state *ds)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_DIRECT);
	ds->on = false;
}

/* Writes @len bytes of @data at @off; @last: nothing follows, so a
 * partial last block may be written padded with zeros (see
 * direct_end()). 0 or -errno. */
static int direct_pwrite(struct lcfs_store *st, int fd, struct direct_state *ds,
			 const uint8_t *data, size_t len, uint64_t off, bool last)
{
	size_t whole = len & ~(size_t)(DIRECT_ALIGN - 1);
	int r;

	if (ds->on && ((uintptr_t)data % DIRECT_ALIGN != 0 || off % DIRECT_ALIGN != 0 ||
		       (!last && whole != len)))
		direct_stop(fd, ds);
	if (!ds->on)
		return lcfs_pwrite_all(fd, data, len, off);
	r = whole > 0 ? lcfs_pwrite_all(fd, data, whole, off) : 0;
	if (r == 0 && whole < len) {
		void *blk = NULL;

		if (posix_memalign(&blk, DIRECT_ALIGN, DIRECT_ALIGN) != 0)
			return -ENOMEM;
		memcpy(blk, data + whole, len - whole);
		memset((uint8_t *)blk + (len - whole), 0, DIRECT_ALIGN - (len - whole));
		r = lcfs_pwrite_all(fd, blk, DIRECT_ALIGN, off + whole);
		free(blk);
		if (r == 0)
			ds->cut = true;
	}
	if (r == -EINVAL) {
		/* The filesystem or device refuses direct writes after all:
		 * this file and the next ones go through the page cache. */
		atomic_store(&st->direct_ok, false);
		direct_stop(fd, ds);
		ds->cut = false;
		return lcfs_pwrite_all(fd, data, len, off);
	}
	return r;
}

/* Cuts a padded last block back to the object's @size. 0 or -errno. */
static int direct_end(int fd, struct direct_state *ds, uint64_t size)
{
	if (ds->cut && ftruncate(fd, (off_t)size) < 0)
		return -errno;
	ds->cut = false;
	return 0;
}

int lcfs_store_put_data(struct lcfs_store *st, const void *data, size_t size,
			const uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_store_object o = { .fd = -1, .subfd = -1 };
	struct direct_state ds = { 0 };
	bool replace;
	int r;

	/* The digest was computed from these very bytes. */
	r = object_begin(st, &o, digest, size, &replace);
	if (r <= 0)
		return r;
	if (size >= DIRECT_MIN)
		direct_begin(st, o.fd, &ds);
	r = direct_pwrite(st, o.fd, &ds, data, size, 0, true);
	if (r == 0)
		r = direct_end(o.fd, &ds, size);
	return object_end(st, &o, r, replace);
}

struct lcfs_store_writer {
	struct lcfs_store *st;
	struct lcfs_store_object o;
	struct lcfs_fsverity_stream *hash;
	uint64_t size;
	uint64_t expect; /* announced size */
	struct direct_state direct;
};

int lcfs_store_writer_new(struct lcfs_store *st, uint64_t size,
			  struct lcfs_store_writer **out)
{
	struct lcfs_store_writer *w = calloc(1, sizeof(*w));
	char subdir[3];
	int r;

	if (w == NULL)
		return -ENOMEM;
	w->st = st;
	w->o.fd = -1;
	w->o.subfd = -1;
	w->hash = lcfs_fsverity_stream_new();
	if (w->hash == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->expect = size;
	/* The name is not known yet: the file starts in the subdirectories
	 * in turn, as in lcfs_store_put_copy(), rather than all in one
	 * directory, where creating inodes gets slower and slower. */
	snprintf(subdir, sizeof(subdir), "%02x", atomic_fetch_add(&st->next_subdir, 1) & 0xff);
	w->o.subfd = open_subdir(st, subdir);
	r = w->o.subfd < 0 ? w->o.subfd : create_temp(st, &w->o);
	if (r < 0) {
		lcfs_store_writer_free(w);
		return r;
	}
	if (size >= DIRECT_MIN && size != UINT64_MAX)
		direct_begin(st, w->o.fd, &w->direct);
	*out = w;
	return 0;
}

int lcfs_store_writer_write(struct lcfs_store_writer *w, const void *data, size_t len)
{
	int r = direct_pwrite(w->st, w->o.fd, &w->direct, data, len, w->size,
			      w->size + len == w->expect);

	if (r < 0)
		return r;
	lcfs_fsverity_stream_update(w->hash, data, len);
	w->size += len;
	return 0;
}

int lcfs_store_writer_commit(struct lcfs_store_writer *w,
			     uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *hash = w->hash;
	int r;

	w->hash = NULL;
	r = lcfs_fsverity_stream_final(hash, digest);
	if (r == 0)
		r = direct_end(w->o.fd, &w->direct, w->size);
	if (r < 0)
		return r;
	/* Now the object's own subdirectory. */
	release_subdir(w->st, w->o.subfd);
	w->o.subfd = -1;
	return object_publish(w->st, &w->o, 0, digest, w->size);
}

void lcfs_store_writer_free(struct lcfs_store_writer *w)
{
	if (w == NULL)
		return;
	if (w->hash != NULL)
		lcfs_fsverity_stream_free(w->hash);
	discard_object(w->st, &w->o);
	free(w);
}

/* ---- Staging ------------------------------------------------------------------------------ */

int lcfs_store_stage(struct lcfs_store *st)
{
	for (int tries = 0; tries < 100; tries++) {
		random_tmp_name(st->stage_name);
		if (mkdirat(st->dirfd, st->stage_name, 0700) == 0)
			break;
		if (errno != EEXIST || tries == 99)
			return -errno;
	}
	st->stage_fd = openat(st->dirfd, st->stage_name,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->stage_fd < 0) {
		int r = -errno;

		(void)unlinkat(st->dirfd, st->stage_name, AT_REMOVEDIR);
		return r;
	}
	return 0;
}

int lcfs_store_publish(struct lcfs_store *st, const uint8_t digest[LCFS_DIGEST_SIZE])
{
	char path[LCFS_STORE_PATH_SIZE], hex[2 * LCFS_DIGEST_SIZE + 1];
	struct stat sb;
	int r, subfd;

	if (st->stage_fd < 0)
		return 0;
	lcfs_digest_to_hex(digest, hex);
	lcfs_store_object_path(digest, path);
	if (fstatat(st->stage_fd, hex, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno; /* in the store already */
	subfd = open_subdir(st, path);
	if (subfd < 0)
		return subfd;
	/* A complete object of the same name may have appeared meanwhile;
	 * anything else there (a damaged one) is replaced atomically. */
	if (renameat2(st->stage_fd, hex, subfd, path + 3, RENAME_NOREPLACE) == 0) {
		r = 0;
	} else if (errno == EEXIST) {
		struct stat cur;

		r = 1;
		if (fstatat(subfd, path + 3, &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(cur.st_mode) && cur.st_size == sb.st_size)
			r = 0;
	} else {
		r = errno == EINVAL ? 1 : -errno;
	}
	if (r == 1)
		r = renameat(st->stage_fd, hex, subfd, path + 3) < 0 ? -errno : 0;
	release_subdir(st, subfd);
	return r;
}
