/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Recording and formatting errors (the convention is described in
 * lcfs-error.h). Depends on no other library module.
 */
#include "lcfs-error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void lcfs_error_escape(char *msg, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char copy[sizeof(((struct lcfs_error *)NULL)->msg)];
	size_t n = 0;

	if (size == 0 || size > sizeof(copy))
		return;
	memcpy(copy, msg, size);
	copy[size - 1] = '\0';
	for (const char *s = copy; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != 0x7f) {
			if (n + 1 >= size)
				break;
			msg[n++] = (char)c;
			continue;
		}
		if (n + 4 >= size)
			break;
		msg[n++] = '\\';
		msg[n++] = 'x';
		msg[n++] = hex[c >> 4];
		msg[n++] = hex[c & 0xf];
	}
	msg[n] = '\0';
}

int lcfs_error_set(struct lcfs_error *e, int err, const char *fmt, ...)
{
	if (e != NULL && e->err == 0) {
		va_list ap;

		e->err = err;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		lcfs_error_escape(e->msg, sizeof(e->msg));
	}
	return -err;
}

void lcfs_error_format(const struct lcfs_error *e, char *buf, size_t size)
{
	char linebuf[32] = "";

	if (e->line > 0)
		snprintf(linebuf, sizeof(linebuf), "%lu: ", e->line);
	snprintf(buf, size, "%s%s%s%s", linebuf, e->field ? e->field : "",
		 e->field ? ": " : "", e->msg[0] ? e->msg : strerror(e->err));
}

void lcfs_error_to_public(const struct lcfs_error *err, char **error_out)
{
	char buf[1024];

	if (error_out != NULL) {
		lcfs_error_format(err, buf, sizeof(buf));
		*error_out = strdup(buf);
	}
	errno = err->err ? err->err : EIO;
}
