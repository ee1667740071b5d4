/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * LD_PRELOAD shim for test-build-changing.py: plays a writer that changes
 * one source file while mkcomposefs reads it. After a pread() of that file
 * (the one whose device and inode CFS_SHIM_FILE has at load time), the
 * file's bytes on disk are inverted in place, as another process writing
 * to it would. Settings, from the environment:
 *
 *   CFS_SHIM_FILE   the file to change
 *   CFS_SHIM_WHEN   "end": after a read that reaches the end of the file
 *                   (the file was read whole, then changes before the
 *                   next read); "mid": after a read that does not (the
 *                   change tears the read)
 *   CFS_SHIM_TIMES  how many times to change it (default 1)
 *   CFS_SHIM_HIDE   if set, fstat() of the file keeps returning the size
 *                   and times it had at the first fstat(), as when a
 *                   change falls within one timestamp tick
 */
/* Both the plain and the 64-bit names are defined below: the plain ones
 * must not be redirected to the others. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *path;
static dev_t dev;
static ino_t ino;
static bool at_end, hide, have_first;
static long times_left;
static struct stat first;

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_fstat)(int, struct stat *);
/* C libraries before glibc 2.33 export no fstat64(): their fstat() is an
 * inline call of __fxstat64(version, fd, buf). */
static int (*real_fxstat)(int, int, struct stat *);

/* fstat() through whichever entry point the C library has. */
static int call_real_fstat(int fd, struct stat *sb)
{
	if (real_fstat != NULL)
		return real_fstat(fd, sb);
	if (real_fxstat != NULL)
		return real_fxstat(1 /* _STAT_VER on x86_64 */, fd, sb);
	errno = ENOSYS;
	return -1;
}

static void resolve(void)
{
	if (real_pread == NULL)
		real_pread = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT,
									     "pread64");
	if (real_fstat == NULL)
		real_fstat = (int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat64");
	if (real_fstat == NULL && real_fxstat == NULL)
		real_fxstat = (int (*)(int, int, struct stat *))dlsym(RTLD_NEXT,
								      "__fxstat64");
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *when = getenv("CFS_SHIM_WHEN");
	const char *times = getenv("CFS_SHIM_TIMES");
	struct stat sb;

	resolve();
	path = getenv("CFS_SHIM_FILE");
	if (path == NULL || stat(path, &sb) < 0) {
		path = NULL;
		return;
	}
	dev = sb.st_dev;
	ino = sb.st_ino;
	at_end = when == NULL || strcmp(when, "mid") != 0;
	hide = getenv("CFS_SHIM_HIDE") != NULL;
	times_left = times != NULL ? atol(times) : 1;
}

static bool is_target(int fd, struct stat *sb)
{
	return path != NULL && call_real_fstat(fd, sb) == 0 && sb->st_dev == dev &&
	       sb->st_ino == ino;
}

/* Inverts every byte of the file through a descriptor of its own. */
static void change_file(void)
{
	char buf[65536];
	off_t off = 0;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = real_pread(fd, buf, sizeof(buf), off);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			buf[i] = (char)~buf[i];
		if (pwrite(fd, buf, (size_t)n, off) != n)
			break;
		off += n;
	}
	close(fd);
}

static ssize_t shim_pread(int fd, void *buf, size_t count, off_t off)
{
	struct stat sb;
	ssize_t n;

	resolve();
	n = real_pread(fd, buf, count, off);
	if (n > 0 && is_target(fd, &sb)) {
		bool reached_end = off + n >= sb.st_size;

		pthread_mutex_lock(&lock);
		if (times_left > 0 && reached_end == at_end) {
			times_left--;
			change_file();
		}
		pthread_mutex_unlock(&lock);
	}
	return n;
}

ssize_t pread(int fd, void *buf, size_t count, off_t off)
{
	return shim_pread(fd, buf, count, off);
}

ssize_t pread64(int fd, void *buf, size_t count, off64_t off)
{
	return shim_pread(fd, buf, count, off);
}

static int shim_fstat(int fd, struct stat *sb)
{
	int r;

	resolve();
	r = call_real_fstat(fd, sb);
	if (r == 0 && hide && path != NULL && sb->st_dev == dev && sb->st_ino == ino) {
		pthread_mutex_lock(&lock);
		if (!have_first) {
			first = *sb;
			have_first = true;
		}
		sb->st_size = first.st_size;
		sb->st_mtim = first.st_mtim;
		sb->st_ctim = first.st_ctim;
		pthread_mutex_unlock(&lock);
	}
	return r;
}

int fstat(int fd, struct stat *sb)
{
	return shim_fstat(fd, sb);
}

/* Only 64-bit systems, where both structures are one. */
_Static_assert(sizeof(struct stat) == sizeof(struct stat64), "stat layout");

int fstat64(int fd, struct stat64 *sb)
{
	return shim_fstat(fd, (struct stat *)sb);
}

/* What callers built against an older C library call for fstat(). */
int __fxstat64(int ver, int fd, struct stat64 *sb);
int __fxstat64(int ver, int fd, struct stat64 *sb)
{
	(void)ver;
	return shim_fstat(fd, (struct stat *)sb);
}
