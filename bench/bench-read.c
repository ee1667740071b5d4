/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * What reading a tree costs before any hashing: every regular file of more
 * than 64 bytes below DIR (the files mkcomposefs digests) is opened from
 * its directory, checked with fstat and read to its end in 256 KiB pread()
 * calls, on THREADS threads. Prints the wall time and the CPU time (user
 * and system, all threads) of the reading alone; the walk that lists the
 * files is not counted. With a warm page cache this is the cost of copying
 * the data out of it, which any digester that reads files pays on top of
 * hashing.
 *
 * With -d, each file gets what the content pass of mkcomposefs needs and
 * nothing else: flistxattr(), its fs-verity digest through the library's
 * file hasher, and the fstat() after the read that catches a change. With
 * the list of files given, no tree built and no image written, this is
 * the best mkcomposefs --print-digest-only can do on this machine.
 *
 * Files of 1 MiB and more go first, largest first, then the others in the
 * order of the walk, so that a directory's files stay together; threads
 * take them 16 at a time.
 *
 * Usage: bench-read [-d] [-t THREADS] DIR
 * Prints figures only; it never passes or fails on time.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "lcfs-fsverity.h"

#define READ_SIZE (256 * 1024)
#define MIN_SIZE 65 /* smaller files are inlined, not digested */
#define MAX_THREADS 64
#define CHUNK 16 /* files a thread takes at a time */
#define BIG_SIZE (1 << 20)

struct path_entry {
	char *path;
	off_t size;
	size_t order; /* in the walk */
};

static struct path_entry *paths;
static size_t n_paths, cap_paths;
static atomic_size_t next_path;
static atomic_uint_fast64_t total_bytes;
static atomic_int failures;
static bool digest_mode;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_size < MIN_SIZE)
		return 0;
	if (n_paths == cap_paths) {
		size_t cap = cap_paths ? cap_paths * 2 : 4096;
		struct path_entry *p = realloc(paths, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		paths = p;
		cap_paths = cap;
	}
	paths[n_paths].path = strdup(path);
	paths[n_paths].size = st->st_size;
	paths[n_paths].order = n_paths;
	if (paths[n_paths].path == NULL)
		return -1;
	n_paths++;
	return 0;
}

/* Reads @fd to its end in READ_SIZE pread() calls into @buf; the bytes
 * read into *@size. */
static int read_plain(int fd, uint8_t *buf, uint64_t *size)
{
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(fd, buf, READ_SIZE, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		off += n;
	}
	*size = (uint64_t)off;
	return 0;
}

/* The system calls the content pass needs for one file besides the
 * reads (its xattrs, and a second fstat to catch a change during the
 * read), and its fs-verity digest through the library's file hasher. */
static int digest_file(int fd, const struct stat *st, struct lcfs_fsverity_file_hasher *h)
{
	uint8_t digest[LCFS_DIGEST_SIZE];
	char list[65536]; /* the largest list the kernel returns */
	struct stat after;
	int r;

	if (flistxattr(fd, list, sizeof(list)) < 0)
		return -errno;
	r = lcfs_fsverity_file_hasher_digest(h, fd, (uint64_t)st->st_size, digest);
	if (r < 0)
		return r;
	if (fstat(fd, &after) < 0)
		return -errno;
	return 0;
}

/* Opens the directory of @path (up to its last slash) as *@dirfd unless
 * it is the one open already (*@dir, its length *@dir_len); the name
 * within it. NULL if the directory cannot be opened. */
static const char *open_parent(const char *path, int *dirfd, const char **dir, size_t *dir_len)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash != NULL ? (size_t)(slash - path) : 0;
	char *copy;

	if (*dirfd >= 0 && len == *dir_len && memcmp(path, *dir, len) == 0)
		return path + len + (slash != NULL);
	if (*dirfd >= 0)
		close(*dirfd);
	copy = len > 0 ? strndup(path, len) : strdup(slash != NULL ? "/" : ".");
	*dirfd = copy != NULL ? open(copy, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	free(copy);
	*dir = path;
	*dir_len = len;
	return *dirfd >= 0 ? path + len + (slash != NULL) : NULL;
}

static int read_file(int dirfd, const char *name, uint8_t *buf,
		     struct lcfs_fsverity_file_hasher *h)
{
	struct stat st;
	uint64_t size = 0;
	int r, fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (h != NULL) {
		r = digest_file(fd, &st, h);
		size = (uint64_t)st.st_size;
	} else
		r = read_plain(fd, buf, &size);
	close(fd);
	if (r == 0)
		atomic_fetch_add(&total_bytes, size);
	return r;
}

static void *reader(void *arg)
{
	struct lcfs_fsverity_file_hasher *h = NULL;
	uint8_t *buf = malloc(READ_SIZE);
	const char *dir = NULL;
	size_t dir_len = 0;
	int dirfd = -1;

	(void)arg;
	if (digest_mode)
		h = lcfs_fsverity_file_hasher_new();
	if (buf == NULL || (digest_mode && h == NULL)) {
		atomic_fetch_add(&failures, 1);
		free(buf);
		return NULL;
	}
	for (;;) {
		size_t first = atomic_fetch_add(&next_path, CHUNK);

		if (first >= n_paths)
			break;
		for (size_t i = first; i < first + CHUNK && i < n_paths; i++) {
			const char *name = open_parent(paths[i].path, &dirfd, &dir, &dir_len);

			if (name == NULL || read_file(dirfd, name, buf, h) < 0)
				atomic_fetch_add(&failures, 1);
		}
	}
	if (dirfd >= 0)
		close(dirfd);
	lcfs_fsverity_file_hasher_free(h);
	free(buf);
	return NULL;
}

/* Files of at least BIG_SIZE first, largest first, then the others in
 * the order of the walk, which keeps a directory's files together. */
static int cmp_entries(const void *a, const void *b)
{
	const struct path_entry *x = a, *y = b;
	bool bx = x->size >= BIG_SIZE, by = y->size >= BIG_SIZE;

	if (bx != by)
		return bx ? -1 : 1;
	if (bx && x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static double cpu_secs(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-read [-d] [-t THREADS] DIR\n");
	exit(1);
}

int main(int argc, char **argv)
{
	pthread_t tids[MAX_THREADS];
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	double t0, c0, wall, cpu;
	int opt, started = 0;

	while ((opt = getopt(argc, argv, "dt:h")) != -1) {
		if (opt == 'd')
			digest_mode = true;
		else if (opt == 't')
			threads = strtol(optarg, NULL, 10);
		else
			usage();
	}
	if (optind + 1 != argc || threads <= 0 || threads > MAX_THREADS)
		usage();
	if (nftw(argv[optind], collect, 64, FTW_PHYS) != 0) {
		fprintf(stderr, "bench-read: cannot walk '%s': %s\n", argv[optind],
			strerror(errno));
		return 1;
	}

	qsort(paths, n_paths, sizeof(*paths), cmp_entries);

	t0 = bench_now();
	c0 = cpu_secs();
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, reader, NULL) != 0)
			break;
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	wall = bench_now() - t0;
	cpu = cpu_secs() - c0;
	if (started == 0 || atomic_load(&failures) > 0) {
		fprintf(stderr, "bench-read: %d files could not be read\n",
			started == 0 ? (int)n_paths : atomic_load(&failures));
		return 1;
	}
	printf("read %zu files, %.0f MB on %d threads: %.2f s wall, %.2f s CPU\n",
	       n_paths, (double)atomic_load(&total_bytes) / 1e6, started, wall, cpu);
	for (size_t i = 0; i < n_paths; i++)
		free(paths[i].path);
	free(paths);
	return 0;
}
