/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The library's error convention.
 *
 * Inside the library, int functions return 0 or -errno and size functions
 * return >= 0 or -errno. Functions that can fail on bad input also take a
 * struct lcfs_error to say where and why, so that the tools can print a
 * precise message. The public entry points (LCFS_PUBLIC) convert to 0 / -1
 * (or NULL) with errno.
 */
#ifndef _LCFS_ERROR_H
#define _LCFS_ERROR_H

#include <errno.h>
#include <stddef.h>

#define LCFS_PUBLIC __attribute__((visibility("default")))

/* Where and why an operation on input data failed. @line is 1-based (0:
 * not about a line), @field names the field (NULL: the whole entry), @msg is
 * the reason, @err the positive errno. Tools print it as
 * "FILE:LINE: FIELD: MSG". */
struct lcfs_error {
	int err;
	unsigned long line;
	const char *field; /* static string */
	char msg[512];
};

/* Rewrites the control bytes (newlines, escape sequences...) of the
 * message @msg, in a buffer of @size bytes (at most the size of
 * lcfs_error.msg), as \xHH, truncating if need be: messages quote names
 * from untrusted input and must stay one harmless line. */
void lcfs_error_escape(char *msg, size_t size);

/* Records an error (if @e is non-NULL) and returns -@err. Only the first
 * error recorded is kept. The message goes through lcfs_error_escape(). */
int lcfs_error_set(struct lcfs_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Formats @e into @buf: "LINE: FIELD: MSG" parts as present. */
void lcfs_error_format(const struct lcfs_error *e, char *buf, size_t size);

/* Converts an internal result (0 / -errno) to the public convention (0 /
 * -1 with errno). */
static inline int lcfs_public_ret(int r)
{
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return 0;
}

/* The public error convention of lcfs-oci.h: errno from @err, and a
 * malloc'd copy of its message in *@error_out when non-NULL. */
void lcfs_error_to_public(const struct lcfs_error *err, char **error_out);

#endif /* _LCFS_ERROR_H */
