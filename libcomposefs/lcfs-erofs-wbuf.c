/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Image writer: the output buffer that the emitting parts
 * (lcfs-erofs-write.c, lcfs-erofs-xattrs.c) append to. Full buffers go to
 * the caller's write callback and through the fs-verity hasher.
 */
#include "lcfs-erofs-writer.h"
#include "lcfs-fsverity.h"
#include "lcfs-util.h"

#include <errno.h>
#include <string.h>

int lcfs_wbuf_flush(struct wbuf *b)
{
	size_t done = 0;

	if (b->verity != NULL)
		lcfs_fsverity_stream_update(b->verity, b->buf, b->len);
	while (b->cb != NULL && done < b->len) {
		ssize_t n;

		errno = 0;
		n = b->cb(b->file, b->buf + done, b->len - done);
		if (n <= 0)
			return errno != 0 ? -errno : -EIO;
		done += n;
	}
	b->len = 0;
	return 0;
}

int lcfs_wbuf_put_slow(struct wbuf *b, const void *data, size_t len)
{
	const uint8_t *p = data;

	b->offset += len;
	while (len > 0) {
		if (lcfs_buffer_append(b->buf, WBUF_SIZE, &b->len, &p, &len)) {
			int r = lcfs_wbuf_flush(b);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

int lcfs_wbuf_zero(struct wbuf *b, size_t len)
{
	static const uint8_t zeros[4096];

	while (len > 0) {
		size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
		int r = lcfs_wbuf_put(b, zeros, n);

		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

uint64_t lcfs_wbuf_offset(const struct wbuf *b)
{
	return b->offset;
}
