/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Helpers shared by the command-line tools: atomic output of an image file
 * and loading an image from a file descriptor. Functions return 0 or -errno;
 * the tools do the printing.
 */
#ifndef _COMPOSEFS_TOOLUTIL_H
#define _COMPOSEFS_TOOLUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lcfs-error.h"

/*
 * An image being written. A path target is written into an unnamed
 * temporary file (or, where O_TMPFILE is not supported, a hidden temporary
 * file) in the target's directory and renamed over the target only by
 * tool_output_commit(), so a failed run never truncates or leaves behind
 * anything. "-" means standard output, written directly, and so is an
 * existing target that is not a regular file (/dev/null, a FIFO): renaming
 * over it would replace it.
 */
struct tool_output {
	int fd;        /* where the bytes go */
	int dirfd;     /* target's directory, -1 for stdout */
	char *name;    /* target's last component */
	char *tmpname; /* name of the temporary file once it has one */
	bool is_stdout;
	bool direct;   /* an existing non-regular target, written in place */
	int err;       /* first write error (positive errno), 0 if none */
	size_t len;    /* bytes buffered in buf */
	uint8_t *buf;
};

/* Prepares @path ("-" for stdout). 0 or -errno; on failure nothing exists
 * on disk and @out needs no cleanup. */
int tool_output_open(struct tool_output *out, const char *path);

/* lcfs_write_cb that buffers and writes to @file (a struct tool_output). */
ssize_t tool_output_write_cb(void *file, void *buf, size_t count);

/* Flushes the buffer and, for a path target, puts the file in place. 0 or
 * -errno; on failure the temporary file is removed. Either way @out is
 * released (stdout is left open for the caller to close). */
int tool_output_commit(struct tool_output *out);

/* Drops a not yet committed output: removes the temporary file. */
void tool_output_abort(struct tool_output *out);

/* Loads the image in @fd (borrowed): mapped when possible, read otherwise
 * (pipes). @toplevel restricts the root's children (NULL: all). Returns
 * the root or NULL with @err filled. */
struct lcfs_node_s *tool_image_load(int fd, const char *const *toplevel,
				    struct lcfs_error *err);

/* The backing file (payload) of @node if it is a regular file that has
 * one and is not a hard link, else NULL: the files composefs-info objects
 * lists. The string belongs to @node. */
const char *tool_node_backing_file(struct lcfs_node_s *node);

/* One progress line on stderr, rewritten in place at most ten times a
 * second: "PROG: DONE/TOTAL UNIT, x/y MiB, z MiB/s" ("x MiB" when the total
 * size, @bytes_total, is not known: 0). Zero-initialise. */
struct tool_progress {
	bool shown;
	struct timespec start; /* first update */
	struct timespec last;  /* last line printed */
};

void tool_progress_update(struct tool_progress *p, const char *unit, uint64_t done,
			  uint64_t total, uint64_t bytes_done, uint64_t bytes_total);

/* Erases the line if one was shown. */
void tool_progress_clear(struct tool_progress *p);

/* The program's name for messages, set by tool_set_prog(). */
extern const char *tool_prog;

/* Sets tool_prog to the basename of argv[0] (@fallback when there is
 * none) and argv[0] to it, so that getopt's own messages match. */
void tool_set_prog(int argc, char **argv, const char *fallback);

/* Exit status of tool_fail() and tool_usage_error(): 1 unless a tool
 * whose failures have another status sets it. */
extern int tool_fail_status;

/* Prints "PROG: MESSAGE" on stderr and exits with tool_fail_status. */
void tool_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* As tool_fail(), followed by a pointer to --help. */
void tool_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Prints "PROG: FILE:LINE: FIELD: MSG" (or "PROG: FILE: MSG" when the
 * error is not about a line) on stderr. */
void tool_print_error(const char *prog, const char *file,
		      const struct lcfs_error *err);

/* Closes stdout, reporting an earlier write error too. 0 or -errno. */
int tool_close_stdout(void);

#endif /* _COMPOSEFS_TOOLUTIL_H */
