/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"
#include "lcfs-node.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: invariant broken: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

ssize_t fuzz_buf_write(void *file, void *buf, size_t count)
{
	struct fuzz_buf *b = file;

	if (count > FUZZ_BUF_MAX - b->len) {
		errno = EFBIG;
		return -1;
	}
	if (b->len + count > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		uint8_t *d;

		while (cap < b->len + count)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL) {
			errno = ENOMEM;
			return -1;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buf, count);
	b->len += count;
	return (ssize_t)count;
}

void fuzz_buf_release(struct fuzz_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int fuzz_write_image(struct lcfs_node_s *root, uint32_t version, uint32_t max_version,
		     struct fuzz_buf *out)
{
	struct lcfs_write_options_s wo = { 0 };
	struct lcfs_error err = { 0 };

	fuzz_buf_release(out);
	wo.format = LCFS_FORMAT_EROFS;
	wo.version = version;
	wo.max_version = max_version;
	wo.file = out;
	wo.file_write_cb = fuzz_buf_write;
	return lcfs_write_image(root, &wo, &err);
}

bool fuzz_printout_too_long(const struct lcfs_error *err)
{
	return err->field != NULL && strcmp(err->field, "XATTR") == 0 &&
	       strcmp(err->msg, "Too many xattrs") == 0;
}

FILE *fuzz_null_stream(void)
{
	static FILE *null;

	if (null == NULL) {
		null = fopen("/dev/null", "we");
		if (null == NULL)
			fuzz_fail("cannot open /dev/null");
	}
	clearerr(null);
	return null;
}

static uint64_t mix(uint64_t h, const void *p, size_t len)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < len; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t touch_node(struct lcfs_node_s *n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	struct lcfs_node_s *t = lcfs_node_resolve_link(n);

	h = mix(h, &n->mode, sizeof(n->mode));
	if (n->name != NULL)
		h = mix(h, n->name, strlen(n->name) + 1);
	if (t == NULL)
		return h;
	h = mix(h, &t->size, sizeof(t->size));
	h = mix(h, &t->mtime_sec, sizeof(t->mtime_sec));
	if (t->payload != NULL)
		h = mix(h, t->payload, strlen(t->payload) + 1);
	if (t->content != NULL)
		h = mix(h, t->content, t->size);
	if (t->digest_set)
		h = mix(h, t->digest, sizeof(t->digest));
	for (size_t i = 0; i < t->n_xattrs; i++) {
		const struct lcfs_xattr *x = t->xattrs[i];

		h = mix(h, lcfs_xattr_key(x), x->key_len + 1u);
		h = mix(h, lcfs_xattr_value(x), x->value_len + 1u);
	}
	return h;
}

uint64_t fuzz_touch_tree(struct lcfs_node_s *root)
{
	struct lcfs_walk w;
	uint64_t h = 0;
	int r;

	/* The library's walk is iterative: deep trees are inputs too. */
	lcfs_walk_init(&w, root, 0);
	while ((r = lcfs_walk_next(&w)) > 0) {
		if (w.parent != NULL && w.node->parent != w.parent)
			fuzz_fail("child '%s' has the wrong parent", w.node->name);
		h += touch_node(w.node);
	}
	if (r < 0)
		fuzz_fail("out of memory");
	lcfs_walk_release(&w);
	return h;
}
