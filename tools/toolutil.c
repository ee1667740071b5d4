/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Helpers shared by the tools: atomic image output through a buffered
 * writer, and image loading. See toolutil.h.
 */
#include "toolutil.h"
#include "lcfs-compat.h"
#include "lcfs-tools.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

/* Large enough that the writer's small pieces (inodes, dirents) become a
 * few big write(2) calls. */
#define TOOL_OUTPUT_BUFSIZE (256 * 1024)

/* Longest part of the target's name kept in a temporary file's name, so
 * that ".NAME.XXXXXXXX" stays within NAME_MAX. */
#define TMP_NAME_KEEP 200

static int output_flush(struct tool_output *out)
{
	int r;

	if (out->err)
		return -out->err;
	r = lcfs_write_all(out->fd, out->buf, out->len);
	out->len = 0;
	if (r < 0)
		out->err = -r;
	return r;
}

ssize_t tool_output_write_cb(void *file, void *buf, size_t count)
{
	struct tool_output *out = file;
	const uint8_t *p = buf;
	size_t left = count;

	if (out->err) {
		errno = out->err;
		return -1;
	}
	while (left > 0) {
		/* A chunk at least as large as the buffer skips it. */
		if (out->len == 0 && left >= TOOL_OUTPUT_BUFSIZE) {
			int r = lcfs_write_all(out->fd, p, left);

			if (r < 0) {
				out->err = -r;
				errno = -r;
				return -1;
			}
			return (ssize_t)count;
		}
		if (lcfs_buffer_append(out->buf, TOOL_OUTPUT_BUFSIZE, &out->len, &p, &left) &&
		    output_flush(out) < 0) {
			errno = out->err;
			return -1;
		}
	}
	return (ssize_t)count;
}

/* Random ".NAME.XXXXXXXX" for a temporary file next to the target. */
static char *tmp_name_new(const char *name)
{
	static const char chars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[8];
	char suffix[sizeof(rnd) + 1];
	char *s;
	size_t i;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* getrandom() of 8 bytes does not fail short in practice;
		 * fall back to something that differs between calls. */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		for (i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((ts.tv_nsec >> (i * 3)) ^ getpid() ^ i);
	}
	for (i = 0; i < sizeof(rnd); i++)
		suffix[i] = chars[rnd[i] % (sizeof(chars) - 1)];
	suffix[sizeof(rnd)] = '\0';
	if (asprintf(&s, ".%.*s.%s", TMP_NAME_KEEP, name, suffix) < 0)
		return NULL;
	return s;
}

static void output_release(struct tool_output *out)
{
	if (!out->is_stdout && out->fd >= 0)
		close(out->fd);
	if (out->dirfd >= 0)
		close(out->dirfd);
	free(out->name);
	free(out->tmpname);
	free(out->buf);
	out->fd = -1;
	out->dirfd = -1;
	out->name = NULL;
	out->tmpname = NULL;
	out->buf = NULL;
}

/* Opens a hidden temporary file by name, for filesystems without
 * O_TMPFILE. The mode is 0666 filtered by the umask, like a plain create. */
static int open_named_tmp(struct tool_output *out)
{
	for (int tries = 0; tries < 100; tries++) {
		char *tmp = tmp_name_new(out->name);
		int fd;

		if (tmp == NULL)
			return -ENOMEM;
		fd = openat(out->dirfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
		if (fd >= 0) {
			out->fd = fd;
			out->tmpname = tmp;
			return 0;
		}
		free(tmp);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int tool_output_open(struct tool_output *out, const char *path)
{
	const char *slash = strrchr(path, '/');
	cleanup_free char *dir = NULL;
	const char *name;
	struct stat st;
	int r;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->dirfd = -1;
	out->buf = malloc(TOOL_OUTPUT_BUFSIZE);
	if (out->buf == NULL)
		return -ENOMEM;

	if (strcmp(path, "-") == 0) {
		out->is_stdout = true;
		out->fd = STDOUT_FILENO;
		return 0;
	}
	/* A device, FIFO or socket is written to, never replaced: renaming
	 * over /dev/null as root would put a regular file in its place. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		out->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (out->fd < 0) {
			r = -errno;
			goto fail;
		}
		out->direct = true;
		return 0;
	}

	if (slash == NULL) {
		dir = strdup(".");
		name = path;
	} else {
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
		name = slash + 1;
	}
	out->name = strdup(name);
	if (dir == NULL || out->name == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/* "dir/", "." and ".." cannot be replaced by a file. */
	if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		r = -EISDIR;
		goto fail;
	}

	out->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out->dirfd < 0) {
		r = -errno;
		goto fail;
	}

	/* An unnamed file leaves nothing behind even if we are killed. */
	out->fd = openat(out->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
	if (out->fd < 0) {
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
			r = -errno;
			goto fail;
		}
		r = open_named_tmp(out);
		if (r < 0)
			goto fail;
	}
	return 0;

fail:
	output_release(out);
	return r;
}

/* Gives the unnamed temporary file a name in the target directory. */
static int link_tmpfile(struct tool_output *out)
{
	char proc_path[64];

	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", out->fd);
	for (int tries = 0; tries < 100; tries++) {
		char *tmp = tmp_name_new(out->name);
		int r;

		if (tmp == NULL)
			return -ENOMEM;
		r = linkat(AT_FDCWD, proc_path, out->dirfd, tmp, AT_SYMLINK_FOLLOW);
		/* Without /proc, AT_EMPTY_PATH still works for a privileged
		 * caller. */
		if (r < 0 && errno == ENOENT)
			r = linkat(out->fd, "", out->dirfd, tmp, AT_EMPTY_PATH);
		if (r == 0) {
			out->tmpname = tmp;
			return 0;
		}
		free(tmp);
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int tool_output_commit(struct tool_output *out)
{
	int r;

	r = output_flush(out);
	if (r < 0 || out->is_stdout || out->direct)
		goto done;

	if (out->tmpname == NULL) {
		r = link_tmpfile(out);
		if (r < 0)
			goto done;
	}
	/* close() can report a delayed write error (e.g. on NFS). */
	r = close(out->fd);
	out->fd = -1;
	if (r < 0) {
		r = -errno;
		goto done;
	}
	if (renameat(out->dirfd, out->tmpname, out->dirfd, out->name) < 0) {
		r = -errno;
		goto done;
	}
	free(out->tmpname);
	out->tmpname = NULL;
	r = 0;
done:
	if (r < 0)
		tool_output_abort(out);
	else
		output_release(out);
	return r;
}

void tool_output_abort(struct tool_output *out)
{
	if (out->tmpname != NULL && out->dirfd >= 0)
		unlinkat(out->dirfd, out->tmpname, 0);
	output_release(out);
}

struct lcfs_node_s *tool_image_load(int fd, const char *const *toplevel,
				    struct lcfs_error *err)
{
	struct lcfs_node_s *root;
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (fstat(fd, &st) < 0) {
		lcfs_error_set(err, errno, "%s", strerror(errno));
		return NULL;
	}
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
				 fd, 0);

		if (map != MAP_FAILED) {
			root = lcfs_image_load(map, (size_t)st.st_size, toplevel, err);
			munmap(map, (size_t)st.st_size);
			return root;
		}
	}
	if (S_ISDIR(st.st_mode)) {
		lcfs_error_set(err, EISDIR, "%s", strerror(EISDIR));
		return NULL;
	}
	r = lcfs_read_all(fd, SIZE_MAX, &data, &len);
	if (r < 0) {
		lcfs_error_set(err, -r, "%s", strerror(-r));
		return NULL;
	}
	root = lcfs_image_load(data, len, toplevel, err);
	free(data);
	return root;
}

void tool_print_error(const char *prog, const char *file,
		      const struct lcfs_error *err)
{
	char buf[1024];

	lcfs_error_format(err, buf, sizeof(buf));
	fprintf(stderr, "%s: %s:%s%s\n", prog, file, err->line > 0 ? "" : " ", buf);
}

int tool_close_stdout(void)
{
	/* A failed write earlier only set the stream's error flag, which
	 * fclose() does not report by itself. */
	bool had_error = ferror(stdout) != 0;

	errno = 0;
	if (fclose(stdout) != 0 || had_error)
		return errno ? -errno : -EIO;
	return 0;
}

const char *tool_prog = "composefs";

void tool_set_prog(int argc, char **argv, const char *fallback)
{
	tool_prog = fallback;
	if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0') {
		const char *slash = strrchr(argv[0], '/');

		tool_prog = slash ? slash + 1 : argv[0];
		argv[0] = (char *)tool_prog;
	}
}

static void __attribute__((format(printf, 1, 0))) vmessage(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", tool_prog);
	vfprintf(stderr, fmt, ap);
}

int tool_fail_status = EXIT_FAILURE;

void tool_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(tool_fail_status);
}

void tool_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", tool_prog);
	exit(tool_fail_status);
}

const char *tool_node_backing_file(struct lcfs_node_s *node)
{
	if (lcfs_node_get_hardlink_target(node) != NULL ||
	    (lcfs_node_get_mode(node) & S_IFMT) != S_IFREG)
		return NULL;
	return lcfs_node_get_payload(node);
}

/* ---- Progress line ----------------------------------------------------------- */

void tool_progress_update(struct tool_progress *p, const char *unit, uint64_t done,
			  uint64_t total, uint64_t bytes_done, uint64_t bytes_total)
{
	struct timespec now;
	double elapsed;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!p->shown && p->start.tv_sec == 0 && p->start.tv_nsec == 0)
		p->start = now;
	ms = (int64_t)(now.tv_sec - p->last.tv_sec) * 1000 +
	     (now.tv_nsec - p->last.tv_nsec) / 1000000;
	if (p->shown && ms < 100 && done < total)
		return;
	p->last = now;
	p->shown = true;
	elapsed = (now.tv_sec - p->start.tv_sec) + (now.tv_nsec - p->start.tv_nsec) / 1e9;
	fprintf(stderr, "\r\033[K%s: %" PRIu64 "/%" PRIu64 " %s, %.1f", tool_prog, done, total,
		unit, bytes_done / 1048576.0);
	if (bytes_total > 0)
		fprintf(stderr, "/%.1f", bytes_total / 1048576.0);
	fprintf(stderr, " MiB, %.1f MiB/s", elapsed > 0 ? bytes_done / 1048576.0 / elapsed : 0.0);
	fflush(stderr);
}

void tool_progress_clear(struct tool_progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}
