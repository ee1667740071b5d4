/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Dumpfile printer: a node tree to composefs-dump(5) text
 * (docs/dumpfile.md, "Printing").
 *
 * Each line is built in memory and written with one fwrite(); the walk is
 * iterative, so the depth of the tree is bounded by memory, not the stack.
 */
#include <string.h>

#include "lcfs-node.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
	bool fixed; /* @data is not ours: never grown */
};

static bool strbuf_reserve(struct strbuf *b, size_t extra)
{
	size_t cap;
	char *d;

	if (b->oom)
		return false;
	if (b->len + extra <= b->cap)
		return true;
	if (b->fixed) {
		b->oom = true;
		return false;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra)
		cap *= 2;
	d = realloc(b->data, cap);
	if (d == NULL) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

static void strbuf_add(struct strbuf *b, const char *s, size_t len)
{
	if (strbuf_reserve(b, len)) {
		memcpy(b->data + b->len, s, len);
		b->len += len;
	}
}

static void strbuf_addc(struct strbuf *b, char c)
{
	if (strbuf_reserve(b, 1))
		b->data[b->len++] = c;
}

static void strbuf_add_u64(struct strbuf *b, uint64_t v, unsigned base)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);

	do {
		*--p = "0123456789"[v % base];
		v /= base;
	} while (v != 0);
	strbuf_add(b, p, tmp + sizeof(tmp) - p);
}

static void strbuf_add_s64(struct strbuf *b, int64_t v)
{
	if (v < 0) {
		strbuf_addc(b, '-');
		strbuf_add_u64(b, -(uint64_t)v, 10);
	} else {
		strbuf_add_u64(b, v, 10);
	}
}

/* The standard escape set (docs/dumpfile.md, "Printer escapes"): backslash,
 * the three named control characters, and everything outside printable,
 * non-space ASCII. */
static bool byte_is_plain(unsigned char c, unsigned flags)
{
	if (c == ' ')
		return flags & LCFS_ESCAPE_RAW_SPACE;
	if (c < 0x21 || c > 0x7e || c == '\\')
		return false;
	return c != '=' || !(flags & LCFS_ESCAPE_EQUAL);
}

static void escape_append(struct strbuf *b, const char *s, size_t len,
			  unsigned flags)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	if ((flags & LCFS_ESCAPE_LONE_DASH) && len == 1 && s[0] == '-') {
		strbuf_add(b, "\\x2d", 4);
		return;
	}
	while (i < len) {
		size_t run = i;
		unsigned char c;

		while (run < len && byte_is_plain((unsigned char)s[run], flags))
			run++;
		strbuf_add(b, s + i, run - i);
		if (run == len)
			break;
		c = (unsigned char)s[run];
		switch (c) {
		case '\\':
			strbuf_add(b, "\\\\", 2);
			break;
		case '\n':
			strbuf_add(b, "\\n", 2);
			break;
		case '\r':
			strbuf_add(b, "\\r", 2);
			break;
		case '\t':
			strbuf_add(b, "\\t", 2);
			break;
		default: {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 0xf] };

			strbuf_add(b, e, 4);
		}
		}
		i = run + 1;
	}
}

void lcfs_print_escaped(FILE *out, const char *s, size_t len, unsigned flags)
{
	enum { CHUNK = 256 };
	char buf[4 * CHUNK]; /* an escaped byte takes at most 4 */
	struct strbuf b = { .data = buf, .cap = sizeof(buf), .fixed = true };

	if ((flags & LCFS_ESCAPE_LONE_DASH) && len == 1 && s[0] == '-') {
		fputs("\\x2d", out);
		return;
	}
	for (size_t i = 0; i < len; i += CHUNK) {
		b.len = 0;
		escape_append(&b, s + i, len - i < CHUNK ? len - i : CHUNK,
			      flags & ~LCFS_ESCAPE_LONE_DASH);
		fwrite(buf, 1, b.len, out);
	}
}

/*
 * Appends the line of @node, whose escaped path is @path. A hard link entry
 * shows '@', the attributes of the node its chain ends at, and the full
 * path of the node it points to (docs/dumpfile.md, "Hard links in a
 * printout"). A chain that loops has no end; the entry's own attributes
 * are shown then.
 */
static int format_node(struct strbuf *b, struct lcfs_node_s *node,
		       const char *path, size_t path_len)
{
	struct lcfs_node_s *t = node;
	char hexdigest[65];

	if (node->link_to != NULL) {
		t = lcfs_node_resolve_link(node);
		if (t == NULL)
			t = node;
	}
	strbuf_add(b, path, path_len);
	strbuf_addc(b, ' ');
	strbuf_add_u64(b, t->size, 10);
	strbuf_addc(b, ' ');
	if (node->link_to != NULL)
		strbuf_addc(b, '@');
	strbuf_add_u64(b, t->mode, 8);
	strbuf_addc(b, ' ');
	strbuf_add_u64(b, t->nlink, 10);
	strbuf_addc(b, ' ');
	strbuf_add_u64(b, t->uid, 10);
	strbuf_addc(b, ' ');
	strbuf_add_u64(b, t->gid, 10);
	strbuf_addc(b, ' ');
	strbuf_add_u64(b, t->rdev, 10);
	strbuf_addc(b, ' ');
	strbuf_add_s64(b, t->mtime_sec);
	strbuf_addc(b, '.');
	strbuf_add_u64(b, t->mtime_nsec, 10);
	strbuf_addc(b, ' ');

	if (node->link_to != NULL) {
		char *target = lcfs_node_path(node->link_to);

		if (target == NULL)
			return -ENOMEM;
		escape_append(b, target, strlen(target), LCFS_ESCAPE_LONE_DASH);
		free(target);
	} else if (t->payload != NULL) {
		escape_append(b, t->payload, strlen(t->payload), LCFS_ESCAPE_LONE_DASH);
	} else {
		strbuf_addc(b, '-');
	}
	strbuf_addc(b, ' ');

	if (t->content != NULL)
		escape_append(b, (const char *)t->content, t->size,
			      LCFS_ESCAPE_LONE_DASH);
	else
		strbuf_addc(b, '-');
	strbuf_addc(b, ' ');

	if (t->digest_set) {
		lcfs_digest_to_hex(t->digest, hexdigest);
		strbuf_add(b, hexdigest, 64);
	} else {
		strbuf_addc(b, '-');
	}

	for (size_t i = 0; i < t->n_xattrs; i++) {
		const struct lcfs_xattr *x = t->xattrs[i];

		strbuf_addc(b, ' ');
		escape_append(b, lcfs_xattr_key(x), x->key_len, LCFS_ESCAPE_EQUAL);
		strbuf_addc(b, '=');
		escape_append(b, lcfs_xattr_value(x), x->value_len, LCFS_ESCAPE_EQUAL);
	}
	strbuf_addc(b, '\n');
	return b->oom ? -ENOMEM : 0;
}

static int write_line(FILE *out, struct strbuf *line)
{
	errno = 0;
	if (fwrite_unlocked(line->data, 1, line->len, out) != line->len)
		return errno ? -errno : -EIO;
	return 0;
}

int lcfs_dump_print(FILE *out, struct lcfs_node_s *root)
{
	struct strbuf path = { 0 }, line = { 0 };
	size_t *ends = NULL, n_ends = 0;
	struct lcfs_walk w;
	int r;

	flockfile(out);
	/* Depth-first pre-order; children are kept sorted by name. The
	 * escaped path of a node is its directory's (whose length at depth d
	 * is ends[d]; "" for the root) plus '/' and its escaped name. */
	lcfs_walk_init(&w, root, 0);
	while ((r = lcfs_walk_next(&w)) > 0) {
		const char *name = w.depth == 0 ? "" : w.node->name;

		if (w.depth >= n_ends) {
			size_t n = n_ends ? n_ends * 2 : 64;
			size_t *e = realloc(ends, n * sizeof(*e));

			if (e == NULL) {
				r = -ENOMEM;
				break;
			}
			ends = e;
			n_ends = n;
		}
		path.len = w.depth == 0 ? 0 : ends[w.depth - 1];
		strbuf_addc(&path, '/');
		escape_append(&path, name, strlen(name), 0);
		if (path.oom) {
			r = -ENOMEM;
			break;
		}
		ends[w.depth] = w.depth == 0 ? 0 : path.len;
		line.len = 0;
		r = format_node(&line, w.node, path.data, path.len);
		if (r == 0)
			r = write_line(out, &line);
		if (r < 0)
			break;
	}
	funlockfile(out);
	lcfs_walk_release(&w);
	free(ends);
	free(path.data);
	free(line.data);
	if (r < 0)
		return r;
	errno = 0;
	if (fflush(out) != 0 || ferror(out))
		return errno ? -errno : -EIO;
	return 0;
}
