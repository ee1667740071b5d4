/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Dumpfile parser: composefs-dump(5) text to a node tree.
 *
 * The rules are those of docs/dumpfile.md; the headings cited below are
 * that file's.
 *
 * Dumps of whole operating systems have millions of lines, so the parser
 * works on a moving window of the input (never the whole file), splits and
 * unescapes fields in place, looks parents up through a cache of the last
 * directory chain (dumps are usually in depth-first order), and shares one
 * xattr entry between every node carrying the same key and value. A big
 * input is read on two threads: one reads the fields, the other places
 * the nodes in the tree ("Two threads" below).
 */
#include "lcfs-node.h"
#include "lcfs-tools.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

enum {
	F_PATH,
	F_SIZE,
	F_MODE,
	F_NLINK,
	F_UID,
	F_GID,
	F_RDEV,
	F_MTIME,
	F_PAYLOAD,
	F_CONTENT,
	F_DIGEST,
	N_FIELDS,
	F_XATTR = N_FIELDS,
	F_NONE,
};

static const char *const field_names[] = {
	[F_PATH] = "PATH",	 [F_SIZE] = "SIZE",	  [F_MODE] = "MODE",
	[F_NLINK] = "NLINK",	 [F_UID] = "UID",	  [F_GID] = "GID",
	[F_RDEV] = "RDEV",	 [F_MTIME] = "MTIME",	  [F_PAYLOAD] = "PAYLOAD",
	[F_CONTENT] = "CONTENT", [F_DIGEST] = "DIGEST", [F_XATTR] = "XATTR",
	[F_NONE] = NULL,
};

/* First read size; the window doubles when a line does not fit. */
#define READ_CHUNK (1u << 20)

/* Cap on the raw text of a line's xattrs (docs/dumpfile.md, "File types"). */
#define XATTR_TEXT_MAX 65535

/* A field of the current line: NUL-terminated in the line buffer. */
struct field {
	char *s;
	size_t len;
};

/* A hard link line, resolved once the whole file is read (docs/dumpfile.md,
 * "Hard links"). */
struct hardlink {
	struct lcfs_node_s *node; /* borrowed: the tree holds it */
	char *target;		  /* unescaped PAYLOAD, NULL for "-" */
	unsigned long line;
};

/*
 * The directories whose entries came out of name order. Inserting into a
 * directory's sorted array moves the array for every entry out of order,
 * so a dumpfile listing a big directory backwards or shuffled would take
 * time quadratic in its size. Such a directory is switched, once, to
 * appending in input order (lcfs_node_append_child_n()) and sorted once at
 * the end, where names given twice end up side by side: each appended
 * entry keeps its line in its scratch field, so that the duplicate is
 * reported on the line it would have been met on ("Duplicates" below).
 * Only a directory whose entries must be looked up by name before the end
 * (a path through it, or a path of another spelling added to it) has them
 * indexed here, by parent and name, from then on. Directories in order,
 * the common case, never come here.
 */
struct name_slot {
	struct lcfs_node_s *node; /* NULL: empty */
	size_t hash;		  /* name_hash() of its parent and name */
};

struct name_index {
	struct name_slot *slots; /* open addressing, power of two */
	size_t mask;
	size_t count;
	struct lcfs_node_s **dirs; /* the directories switched, to sort */
	size_t n_dirs;
	size_t dirs_cap;
	struct lcfs_node_s **indexed; /* those of them indexed */
	size_t n_indexed;
	size_t indexed_cap;
};

/*
 * Every directory by its path as its own line wrote it, when that path is
 * plain (one leading slash, no empty component). When the entries of
 * different directories are interleaved (the order files were created in,
 * as some producers write them), the previous line's chain rarely fits and
 * walking down from the root costs a search among a directory's children
 * for every component, on nodes scattered over memory; one hash of the
 * parent's path finds the parent at once.
 */
struct dir_ent {
	uint64_t hash;
	struct lcfs_node_s *dir; /* borrowed: the tree holds it */
	char *path;		 /* the path, NUL-terminated */
	size_t len;
};

struct dir_map {
	struct dir_ent *slots; /* open addressing, power of two */
	size_t mask;
	size_t count;
	struct lcfs_slab paths; /* the paths, packed */
};

/*
 * One thread's state. The lines are read by two (see "Two threads"), each
 * with its own struct parser, of which it uses only its own fields: the
 * reader the xattr table, the node arena and the payload and xattr slabs;
 * the placer the tree, the directory chain, the maps and the hard links.
 */
struct parser {
	unsigned flags;
	struct lcfs_error *err;
	unsigned long line;

	/* The reader's. Nodes and payloads come out of slabs (lcfs-slab.c). */
	struct lcfs_xattr_intern xattrs; /* identical pairs share one entry */
	struct lcfs_slab xattr_slab;	 /* the entries of @xattrs */
	struct lcfs_node_arena nodes;
	struct lcfs_slab payloads;

	/* The placer's. */
	struct lcfs_node_s *root; /* one reference */
	/* The directory chain used by the previous line: dirs[0] is the
	 * root, dirs[i] the directory reached by the first i components. */
	struct lcfs_node_s **dirs;
	size_t n_dirs;
	size_t dirs_cap;

	struct name_index names;
	struct dir_map dir_paths;
	/* Names have their own slab, which the relocation at the end empties. */
	struct lcfs_slab names_slab;

	struct hardlink *links;
	size_t n_links;
	size_t links_cap;

	/* Whether the lines came depth first: a parent off the previous
	 * line's chain is looked up (a "jump"), which depth-first input does
	 * once per directory, when it enters it. */
	size_t n_jumps;
	size_t n_dir_lines;
	bool unsorted; /* some entry came before a sibling that sorts before it */
	bool looking;  /* lines stopped coming in order: look ahead */
	bool dirs_sorted; /* those of @names, by both threads */
	bool dup;	  /* and one of them has a name twice */

	/* When @hint_line is the current line, the reader found its path
	 * plain and hashed its parent's path (the first @hint_parent_len
	 * bytes): tree_add() need not do either again. */
	unsigned long hint_line;
	uint64_t hint_hash;
	size_t hint_parent_len;
};

/* Where the input comes from: a file descriptor or a buffer in memory. */
struct source {
	int fd;
	const char *buf;
	size_t len;
	size_t pos;
};

__attribute__((format(printf, 4, 5))) static int
perr(struct parser *p, int field, int err, const char *fmt, ...)
{
	struct lcfs_error *e = p->err;

	if (e != NULL && e->err == 0) {
		va_list ap;

		e->err = err;
		e->line = p->line;
		e->field = field_names[field];
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		lcfs_error_escape(e->msg, sizeof(e->msg));
	}
	return -err;
}

static int perr_oom(struct parser *p)
{
	return perr(p, F_NONE, ENOMEM, "%s", strerror(ENOMEM));
}

/* ---- Fields ------------------------------------------------------------ */

/* Unescapes @f (docs/dumpfile.md, "Escapes"). Rewrites @f in place (the
 * result is never longer) and keeps it NUL-terminated; @f->len becomes the
 * unescaped length. */
static int unescape(struct parser *p, int field, struct field *f)
{
	char *end = f->s + f->len;
	char *in = memchr(f->s, '\\', f->len);
	char *out = in;

	if (in == NULL)
		return 0;
	while (in < end) {
		char *bs = memchr(in, '\\', end - in);
		int hi, lo;

		if (bs == NULL)
			bs = end;
		if (bs != in) {
			memmove(out, in, bs - in);
			out += bs - in;
			in = bs;
			continue;
		}
		in++;
		if (in == end)
			return perr(p, field, EINVAL, "No character after escape");
		switch (*in) {
		case '\\':
			*out++ = '\\';
			break;
		case 'n':
			*out++ = '\n';
			break;
		case 'r':
			*out++ = '\r';
			break;
		case 't':
			*out++ = '\t';
			break;
		case 'x':
			if (end - in < 3)
				return perr(p, field, EINVAL,
					    "No hex characters after hex escape");
			hi = lcfs_hex_value(in[1]);
			lo = lcfs_hex_value(in[2]);
			if (hi < 0 || lo < 0)
				return perr(p, field, EINVAL,
					    "Invalid hex characters after hex escape");
			*out++ = (char)(hi << 4 | lo);
			in += 2;
			break;
		default:
			return perr(p, field, EINVAL, "Unsupported escape type %c", *in);
		}
		in++;
	}
	*out = '\0';
	f->len = out - f->s;
	return 0;
}

/* Unescapes a field that is used as a C string (PATH, PAYLOAD, DIGEST,
 * xattr keys). An escaped NUL would silently cut it short, so it is
 * refused (docs/dumpfile.md, "Escapes"); @what names the field in the
 * message. */
static int unescape_cstr(struct parser *p, int field, struct field *f,
			 const char *what)
{
	size_t len = f->len;
	int r = unescape(p, field, f);

	if (r == 0 && f->len != len && memchr(f->s, '\0', f->len) != NULL)
		return perr(p, field, EINVAL, "Invalid escaped NUL character in %s",
			    what);
	return r;
}

/* A field that is exactly "-" is not set (docs/dumpfile.md, "Optional
 * fields"). */
static bool field_is_dash(const struct field *f)
{
	return f->len == 1 && f->s[0] == '-';
}

/*
 * An integer field has the syntax of strtoull() on the whole raw field
 * (leading blanks and a '+' or '-' sign accepted). A value that does not
 * fit the field is refused rather than saturated or wrapped: no negative
 * value (except -0), nothing above @max (docs/dumpfile.md, "Numbers").
 * Plain digit strings, by far the common case, are converted directly. @s
 * is NUL-terminated at @len.
 */
static int parse_uint(struct parser *p, int field, const char *s, size_t len,
		      int base, uint64_t max, uint64_t *out)
{
	size_t maxdigits = base == 8 ? 21 : 19; /* cannot overflow */
	const char *digits = s;
	uint64_t v = 0;
	size_t i;
	char *end;

	/* Set on every failure too: the callers' error checks go through
	 * perr(), which the compiler cannot always see returning < 0. */
	*out = 0;
	if (len > 0 && len <= maxdigits) {
		for (i = 0; i < len; i++) {
			unsigned d = (unsigned char)s[i] - '0';

			if (d >= (unsigned)base)
				break;
			v = v * base + d;
		}
		if (i == len)
			goto range;
	}
	if (len == 0)
		return perr(p, field, EINVAL, "Invalid integer %s", s);
	errno = 0;
	v = strtoull(s, &end, base);
	if (end != s + len)
		return perr(p, field, EINVAL, "Invalid integer %s", s);
	if (errno == ERANGE)
		return perr(p, field, ERANGE, "Integer %s is out of range", s);
	while (*digits == ' ' || (*digits >= '\t' && *digits <= '\r'))
		digits++;
	if (*digits == '-' && v != 0)
		return perr(p, field, ERANGE, "Negative integer %s", s);
range:
	if (v > max)
		return perr(p, field, ERANGE,
			    "Integer %s is out of range (at most %" PRIu64 ")", s, max);
	*out = v;
	return 0;
}

/* MTIME is SEC.NSEC: SEC a signed 64-bit count of seconds, NSEC an
 * unsigned 32-bit count of nanoseconds. */
static int parse_mtime(struct parser *p, struct field *f, int64_t *sec,
		       uint32_t *nsec)
{
	char *dot = memchr(f->s, '.', f->len);
	uint64_t ns;
	long long s;
	char *end;
	int r;

	if (dot == NULL)
		return perr(p, F_MTIME, EINVAL, "Invalid integer %s", f->s);
	*dot = '\0';
	if (dot == f->s)
		return perr(p, F_MTIME, EINVAL, "Invalid integer %s", f->s);
	errno = 0;
	s = strtoll(f->s, &end, 10);
	if (end != dot)
		return perr(p, F_MTIME, EINVAL, "Invalid integer %s", f->s);
	if (errno == ERANGE)
		return perr(p, F_MTIME, ERANGE, "Seconds %s are out of range", f->s);
	r = parse_uint(p, F_MTIME, dot + 1, f->s + f->len - dot - 1, 10, UINT32_MAX,
		       &ns);
	if (r < 0)
		return r;
	*sec = (int64_t)s;
	*nsec = (uint32_t)ns;
	return 0;
}

/*
 * The first 11 fields are separated by single spaces; missing trailing
 * fields are empty (docs/dumpfile.md, "Fields"). Returns the number of
 * fields present and sets the xattr section (what follows the 11th field's
 * space).
 */
static size_t split_fields(char *line, size_t len, struct field f[N_FIELDS],
			   struct field *xattrs)
{
	char *s = line, *end = line + len;
	size_t n = 0;

	xattrs->s = end;
	xattrs->len = 0;
	for (size_t i = 0; i < N_FIELDS; i++) {
		char *sp;

		if (s == NULL) {
			f[i].s = end; /* points at the line's NUL */
			f[i].len = 0;
			continue;
		}
		n++;
		sp = memchr(s, ' ', end - s);
		f[i].s = s;
		if (sp == NULL) {
			f[i].len = end - s;
			s = NULL;
		} else {
			*sp = '\0';
			f[i].len = sp - s;
			s = sp + 1;
		}
	}
	if (s != NULL) {
		xattrs->s = s;
		xattrs->len = end - s;
	}
	return n;
}

/* Space-separated KEY=VALUE tokens (docs/dumpfile.md, "Extended
 * attributes"). */
static int parse_xattrs(struct parser *p, struct lcfs_node_s *node,
			struct field *xs)
{
	char *t = xs->s, *end = xs->s + xs->len;

	if (xs->len > XATTR_TEXT_MAX)
		return perr(p, F_XATTR, EINVAL, "Too many xattrs");
	while (t < end) {
		char *sp = memchr(t, ' ', end - t);
		char *tend = sp ? sp : end;
		char *eq = memchr(t, '=', tend - t);
		struct field key, value;
		struct lcfs_xattr *x;
		int r = 0;

		if (eq == NULL)
			return perr(p, F_XATTR, EINVAL, "Missing = in xattr");
		*eq = '\0';
		*tend = '\0';
		key.s = t;
		key.len = eq - t;
		value.s = eq + 1;
		value.len = tend - eq - 1;
		r = unescape_cstr(p, F_XATTR, &key, "xattr name");
		if (r == 0)
			r = unescape(p, F_XATTR, &value);
		if (r < 0)
			return r;
		x = lcfs_xattr_intern_get(&p->xattrs, key.s, key.len, value.s, value.len, &r);
		if (x == NULL && r == -ENOMEM)
			return perr_oom(p);
		if (x != NULL)
			r = lcfs_node_set_xattr_entry(node, x);
		if (r == -ENOMEM)
			return perr_oom(p);
		if (r < 0)
			return perr(p, F_XATTR, -r, "Can't set xattr");
		t = sp ? sp + 1 : end;
	}
	return 0;
}

/* ---- Tree ------------------------------------------------------------------- */

/* Appends @node to the array *@v (*@n used, *@cap allocated). */
static int push_node(struct lcfs_node_s ***v, size_t *n, size_t *cap,
		     struct lcfs_node_s *node)
{
	struct lcfs_node_s **a = lcfs_array_reserve(*v, *n, cap, sizeof(*a), 32);

	if (a == NULL)
		return -ENOMEM;
	*v = a;
	a[(*n)++] = node;
	return 0;
}

static int dirs_push(struct parser *p, struct lcfs_node_s *dir)
{
	return push_node(&p->dirs, &p->n_dirs, &p->dirs_cap, dir);
}

static size_t name_hash(const struct lcfs_node_s *parent, const char *name,
			size_t len)
{
	return (size_t)XXH3_64bits_withSeed(name, len, (uintptr_t)parent);
}

/* Each slot keeps its hash, so that neither a probe that misses nor
 * growing the table reads a node (a likely cache miss when the entries
 * came in creation order). */
static struct lcfs_node_s *index_find_hash(const struct name_index *x, size_t h,
					   const struct lcfs_node_s *parent,
					   const char *name, size_t len)
{
	struct name_slot *e;

	if (x->slots == NULL)
		return NULL;
	for (size_t i = h & x->mask; (e = &x->slots[i])->node != NULL;
	     i = (i + 1) & x->mask) {
		struct lcfs_node_s *n = e->node;

		if (e->hash == h && n->parent == parent && n->name_len == len &&
		    memcmp(n->name, name, len) == 0)
			return n;
	}
	return NULL;
}

static struct lcfs_node_s *index_find(const struct name_index *x,
				      const struct lcfs_node_s *parent,
				      const char *name, size_t len)
{
	return index_find_hash(x, name_hash(parent, name, len), parent, name, len);
}

static void index_put_hash(struct name_index *x, struct lcfs_node_s *n, size_t h)
{
	size_t i = h & x->mask;

	while (x->slots[i].node != NULL)
		i = (i + 1) & x->mask;
	x->slots[i].node = n;
	x->slots[i].hash = h;
	x->count++;
}

static void index_put(struct name_index *x, struct lcfs_node_s *n)
{
	index_put_hash(x, n, name_hash(n->parent, n->name, n->name_len));
}

/* Slots ahead whose new place a rehash prefetches. */
#define REHASH_AHEAD 32

/* Room for one more entry, so that adding it cannot fail. */
static int index_reserve(struct name_index *x)
{
	struct name_index bigger;

	if (x->slots != NULL && (x->count + 1) * 2 <= x->mask + 1)
		return 0;
	bigger = *x;
	bigger.mask = x->slots ? x->mask * 2 + 1 : 255;
	bigger.count = 0;
	bigger.slots = lcfs_calloc_big(bigger.mask + 1, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; x->slots != NULL && i <= x->mask; i++) {
		/* The new slots are far apart: ask for them early. */
		if (i + REHASH_AHEAD <= x->mask)
			__builtin_prefetch(&bigger.slots[x->slots[i + REHASH_AHEAD].hash &
							 bigger.mask],
					   1);
		if (x->slots[i].node != NULL)
			index_put_hash(&bigger, x->slots[i].node, x->slots[i].hash);
	}
	free(x->slots);
	*x = bigger;
	return 0;
}

/* Whether @name sorts after every entry @dir has so far. */
static bool after_last(const struct lcfs_node_s *dir, const char *name, size_t len)
{
	const struct lcfs_node_s *last;

	if (dir->n_children == 0)
		return true;
	last = dir->children[dir->n_children - 1];
	return lcfs_bytes_cmp(last->name, last->name_len, name, len) < 0;
}

/* Switches @dir to appending and marks it unsorted (an out-of-order
 * append follows at once). */
static int unsort_dir(struct name_index *x, struct lcfs_node_s *dir)
{
	if (push_node(&x->dirs, &x->n_dirs, &x->dirs_cap, dir) < 0)
		return -ENOMEM;
	dir->children_unsorted = true;
	return 0;
}

/* Indexes the entries of the appended directory @dir, and from then on
 * those it is given. */
static int index_dir(struct name_index *x, struct lcfs_node_s *dir)
{
	if (push_node(&x->indexed, &x->n_indexed, &x->indexed_cap, dir) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < dir->n_children; i++) {
		if (index_reserve(x) < 0)
			return -ENOMEM;
		index_put(x, dir->children[i]);
	}
	dir->name_indexed = true;
	return 0;
}

/* Directories a sorting thread takes at a time (see index_sort_dirs()). */
#define SORT_STEP 8

/* Sorts the directories that were given their entries out of order,
 * taking them SORT_STEP at a time from *@next, which other threads may
 * share (each then sorts a part of them). Returns true when one it sorted
 * has a name twice. */
static bool index_sort_dirs(const struct name_index *x, atomic_size_t *next)
{
	void *buf = NULL;
	size_t buf_size = 0;
	bool dup = false;

	for (;;) {
		size_t i = atomic_fetch_add(next, SORT_STEP);

		if (i >= x->n_dirs)
			break;
		for (size_t j = i; j < i + SORT_STEP && j < x->n_dirs; j++) {
			/* The directories to come, their nodes then their
			 * arrays. */
			if (j + 4 < x->n_dirs)
				__builtin_prefetch(&x->dirs[j + 4]->children);
			if (j + 2 < x->n_dirs)
				__builtin_prefetch(x->dirs[j + 2]->children);
			if (lcfs_node_sort_children(x->dirs[j], &buf, &buf_size))
				dup = true;
		}
	}
	free(buf);
	return dup;
}

static uint64_t path_hash(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}

/* Whether @path (@len bytes) has the one spelling the map knows it by. */
static bool plain_path(const char *path, size_t len)
{
	return len > 1 && path[0] == '/' && path[len - 1] != '/' &&
	       memmem(path, len, "//", 2) == NULL;
}

static struct dir_ent *dir_map_slot(const struct dir_map *m, uint64_t h,
				    const char *path, size_t len)
{
	struct dir_ent *e;

	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		e = &m->slots[i];
		if (e->dir == NULL ||
		    (e->hash == h && e->len == len && memcmp(e->path, path, len) == 0))
			return e;
	}
}

/* Remembers directory @dir at @path; failing only costs speed. */
static void dir_map_add(struct dir_map *m, struct lcfs_node_s *dir,
			const char *path, size_t len)
{
	uint64_t h = path_hash(path, len);
	struct dir_ent *e;

	if ((m->count + 1) * 2 > (m->slots ? m->mask + 1 : 0)) {
		size_t cap = m->slots ? (m->mask + 1) * 2 : 1024;
		struct dir_map bigger = { .mask = cap - 1, .count = m->count,
					  .paths = m->paths };

		bigger.slots = lcfs_calloc_big(cap, sizeof(*bigger.slots));
		if (bigger.slots == NULL)
			return;
		for (size_t i = 0; m->slots != NULL && i <= m->mask; i++) {
			struct dir_ent *old = &m->slots[i];

			if (old->dir != NULL)
				*dir_map_slot(&bigger, old->hash, old->path, old->len) = *old;
		}
		free(m->slots);
		*m = bigger;
	}
	e = dir_map_slot(m, h, path, len);
	if (e->dir != NULL)
		return;
	e->path = lcfs_slab_strndup(&m->paths, path, len);
	if (e->path == NULL)
		return;
	e->hash = h;
	e->len = len;
	e->dir = dir;
	m->count++;
}

static void dir_map_free(struct dir_map *m)
{
	for (size_t i = 0; m->slots != NULL && i <= m->mask; i++)
		lcfs_slab_release(m->slots[i].path);
	free(m->slots);
	lcfs_slab_done(&m->paths);
}

/*
 * The directory at @path (@len bytes, plain) if it is known. The chain of
 * the previous line fits up to @fits components; when the directory is
 * the next one down, it extends the chain (the common case when entering
 * a subdirectory), else the chain is cut at @fits: rebuilding it would
 * read every node on the way up, each a likely cache miss, for the sake
 * of lines that can as well come here again.
 */
static struct lcfs_node_s *dir_map_jump(struct parser *p, const char *path,
					size_t len, size_t fits)
{
	struct dir_ent *e;
	size_t depth = 0;
	uint64_t h;

	if (p->dir_paths.slots == NULL)
		return NULL;
	if (p->hint_line == p->line && p->hint_parent_len == len)
		h = p->hint_hash;
	else
		h = path_hash(path, len);
	e = dir_map_slot(&p->dir_paths, h, path, len);
	if (e->dir == NULL)
		return NULL;
	for (const char *c = path; (c = memchr(c, '/', path + len - c)) != NULL; c++)
		depth++;
	p->n_dirs = fits + 1;
	if (depth == fits + 1 && dirs_push(p, e->dir) < 0)
		p->n_dirs = fits + 1;
	return e->dir;
}

/*
 * Two threads. A big dumpfile is read by two: the reader, the caller's
 * thread, splits each line into its fields, unescapes them and fills in a
 * node; the placer puts the nodes into the tree in line order, and is the
 * only one to touch the tree. Placing costs little when the lines come
 * depth first and sorted, and about as much as reading the fields when
 * they come in creation order (the parent found by a hash of its path,
 * then its node, each a likely cache miss); on two CPUs the two overlap.
 *
 * Lines go over in batches, through a ring of N_BATCHES: the reader waits
 * when every batch is full, the placer when every one is empty. Each
 * thread keeps its own error. The reader stops at its first one (a line
 * whose fields it rejected after the path still goes over, as the last),
 * the placer at its own and tells the reader to stop; the error that
 * counts is that of the earlier line and, on one line, the placer's: the
 * same as when one thread places each path before it checks the fields
 * that follow. A small input is read and placed by the caller's thread
 * alone, one batch after the other, through the same code.
 */
#define BATCH_LINES 1024
#define N_BATCHES 8
#define PLACER_MIN_INPUT ((size_t)1 << 20) /* bytes, below: one thread */

/* A line as the reader hands it over. */
struct line_rec {
	struct lcfs_node_s *node; /* owned until the tree takes it */
	size_t path;		  /* offset of the unescaped path in the text */
	size_t path_len;
	unsigned long line;
	char *link_target; /* a hard link's unescaped target, owned; NULL: "-" */
	uint64_t hint_hash; /* path_hash() of the parent's path, if hint_len */
	size_t hint_len;
	bool hardlink;
	bool fails; /* the reader rejected a field after the path */
};

struct batch {
	struct line_rec recs[BATCH_LINES];
	size_t n;
	size_t placed; /* records whose node the tree took */
	char *text;    /* the paths, NUL-terminated */
	size_t text_len;
	size_t text_cap;
	bool last; /* nothing follows */
};

struct handoff {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a batch was handed over or done with */
	struct batch *batches; /* N_BATCHES */
	size_t produced;       /* batches handed over */
	size_t consumed;       /* batches the placer is done with */
	bool filling;	       /* the reader fills batch @produced */
	bool threaded;
	atomic_bool stop;  /* the placer failed: read no further */
	atomic_bool hints; /* the placer looks ahead: hash the parents' paths */
	struct parser *placer;
	/* Every line is placed: both threads sort the directories that were
	 * given their entries out of order, taking them SORT_STEP at a time
	 * from @next_dir. */
	bool placed_all;
	atomic_size_t next_dir;
	atomic_bool dup; /* a sorted directory has a name twice */
};

/*
 * Looking ahead (creation and tar order only). When a line's parent is
 * found through the path map, each line costs a chain of dependent cache
 * misses: the map slot, then the stored path and the directory node (then,
 * for a directory with a name index, its slot). The placer has the lines
 * to come in its batch, with the hash of each parent's path that the
 * reader computed, so it prefetches their slots early, in two steps,
 * while it places the lines before them. Every lookup is still made in
 * full when its line is placed; only the hash and the check that the
 * path is plain are taken over (struct parser, hint_*).
 */
#define AHEAD_FAR 10 /* lines ahead whose map slot is prefetched */
#define AHEAD_NEAR 4 /* lines ahead whose directory is prefetched */

/* The far step: the parent's map slot. */
static void ahead_far(const struct parser *p, const struct line_rec *rec)
{
	if (rec->hint_len > 0 && p->dir_paths.slots != NULL)
		__builtin_prefetch(&p->dir_paths.slots[rec->hint_hash & p->dir_paths.mask]);
}

/* The near step: the parent's stored path, node and name index slot,
 * found by hash only (a wrong guess costs a wasted prefetch). */
static void ahead_near(const struct parser *p, const struct batch *b,
		       const struct line_rec *rec)
{
	const struct dir_map *m = &p->dir_paths;
	const char *name = b->text + rec->path + rec->hint_len + 1;
	size_t name_len = rec->path_len - rec->hint_len - 1;

	if (rec->hint_len == 0 || m->slots == NULL)
		return;
	for (size_t i = rec->hint_hash & m->mask;; i = (i + 1) & m->mask) {
		const struct dir_ent *e = &m->slots[i];

		if (e->dir == NULL)
			return;
		if (e->hash == rec->hint_hash && e->len == rec->hint_len) {
			__builtin_prefetch(e->path);
			__builtin_prefetch(e->dir);
			if (p->names.slots != NULL)
				__builtin_prefetch(&p->names.slots[name_hash(e->dir, name,
									     name_len) &
								   p->names.mask]);
			return;
		}
	}
}

/* Whether the previous line's chain has @name at @depth + 1. */
static bool chain_fits(const struct parser *p, size_t depth, const char *name,
		       size_t len)
{
	const char *n;

	if (depth + 1 >= p->n_dirs)
		return false;
	n = p->dirs[depth + 1]->name;
	return p->dirs[depth + 1]->name_len == len && memcmp(n, name, len) == 0;
}

/* Child @name of @dir, the directory reached by the first @depth components
 * of @path, which must itself be an existing directory (docs/dumpfile.md,
 * "Paths"). */
static int descend(struct parser *p, struct lcfs_node_s **dir, size_t depth,
		   const char *name, size_t len, const char *path)
{
	struct lcfs_node_s *child;

	if (chain_fits(p, depth, name, len)) {
		*dir = p->dirs[depth + 1];
		return 0;
	}
	if (depth + 1 < p->n_dirs)
		p->n_dirs = depth + 1;
	if ((*dir)->children_unsorted) {
		if (!(*dir)->name_indexed && index_dir(&p->names, *dir) < 0)
			return perr_oom(p);
		child = index_find(&p->names, *dir, name, len);
	} else {
		child = lcfs_node_lookup_child_n(*dir, name, len);
	}
	if (child == NULL)
		return perr(p, F_PATH, ENOENT, "Parent directory missing for %s", path);
	if ((child->mode & S_IFMT) != S_IFDIR)
		return perr(p, F_PATH, ENOTDIR, "Parent must be a directory for %s",
			    path);
	if (dirs_push(p, child) < 0)
		return perr_oom(p);
	*dir = child;
	return 0;
}

/* Inserts @node (whose reference the tree takes on success) at @path
 * (unescaped, @len bytes) (docs/dumpfile.md, "Paths"). */
static int tree_add(struct parser *p, const char *path, size_t len,
		    struct lcfs_node_s *node)
{
	const char *c = path, *end = path + len;
	bool plain = p->hint_line == p->line || plain_path(path, len);
	bool spelled_plain = plain;
	struct lcfs_node_s *dir;
	size_t depth = 0;
	int r;

	if (len == 1 && path[0] == '/') {
		if (p->root != NULL)
			return perr(p, F_PATH, EINVAL, "Can't have multiple roots");
		if ((node->mode & S_IFMT) != S_IFDIR)
			return perr(p, F_MODE, ENOTDIR, "Root must be a directory");
		p->n_dirs = 0;
		if (dirs_push(p, node) < 0)
			return perr_oom(p);
		p->root = node;
		return 0;
	}
	if (p->root == NULL)
		return perr(p, F_PATH, EINVAL, "Root node not present");

	dir = p->root;
	while (c < end && *c == '/')
		c++;
	for (;;) {
		const char *slash = memchr(c, '/', end - c);

		if (slash == NULL)
			break;
		bool fits = chain_fits(p, depth, c, slash - c);

		if (!fits)
			p->n_jumps++;
		if (!fits && plain) {
			/* Straight to the parent, if the map knows it. */
			const char *last = memrchr(c, '/', end - c);
			struct lcfs_node_s *d = dir_map_jump(p, path, last - path, depth);

			if (d != NULL) {
				dir = d;
				c = last + 1;
				break;
			}
			plain = false;
		}
		r = descend(p, &dir, depth, c, slash - c, path);
		if (r < 0)
			return r;
		depth++;
		for (c = slash; c < end && *c == '/'; c++)
			;
	}
	len = end - c;
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return perr(p, F_PATH, EINVAL, "Invalid . or .. in path: %s", path);
	/* A directory already unsorted gains nothing from the comparison
	 * with its last entry, which costs up to three cache misses. */
	if (!dir->children_unsorted && !after_last(dir, c, len)) {
		p->unsorted = true;
		/* Inserting in order would read the names already there
		 * (cache misses when directories interleave) and move the
		 * array: from here on, the entries are appended. */
		if (unsort_dir(&p->names, dir) < 0)
			return perr_oom(p);
	}
	/* A duplicate found at the end is named by its path as the tree
	 * spells it, which is this line's only when the path is plain:
	 * another spelling is checked now. */
	if (dir->children_unsorted && !dir->name_indexed && !spelled_plain &&
	    index_dir(&p->names, dir) < 0)
		return perr_oom(p);
	if (!dir->name_indexed) {
		/* In order, after_last() said the name sorts after every
		 * entry: it cannot be a duplicate and goes at the end,
		 * without a search of the array. Appended, it keeps its line
		 * for the check at the sort. */
		r = lcfs_node_add_child_in(&p->names_slab, dir, node, c, len, true);
		if (r == 0 && dir->children_unsorted)
			node->scratch = p->line < UINT32_MAX ? (uint32_t)p->line : UINT32_MAX;
	} else {
		size_t h = name_hash(dir, c, len);

		if (index_find_hash(&p->names, h, dir, c, len) != NULL)
			r = -EEXIST;
		else
			r = index_reserve(&p->names);
		if (r == 0)
			r = lcfs_node_add_child_in(&p->names_slab, dir, node, c, len, true);
		if (r == 0)
			index_put_hash(&p->names, node, h);
	}
	if (r == -EEXIST)
		return perr(p, F_PATH, EEXIST, "Path %s already exists", path);
	if (r == -ENOMEM)
		return perr_oom(p);
	if (r < 0)
		return perr(p, F_PATH, -r, "Can't add child");
	if ((node->mode & S_IFMT) == S_IFDIR) {
		p->n_dir_lines++;
		if (plain)
			dir_map_add(&p->dir_paths, node, path, end - path);
	}
	return 0;
}

/* A hard link target: leading and repeated slashes are ignored, the empty
 * path is the root (docs/dumpfile.md, "Hard links"). */
static struct lcfs_node_s *tree_lookup(struct lcfs_node_s *root, const char *path)
{
	struct lcfs_node_s *n = root;
	const char *c = path;

	for (;;) {
		size_t len;

		while (*c == '/')
			c++;
		if (*c == '\0')
			return n;
		len = strcspn(c, "/");
		n = lcfs_node_lookup_child_n(n, c, len);
		if (n == NULL)
			return NULL;
		c += len;
	}
}

/* Records the hard link line of @node, whose unescaped @target (NULL for
 * "-") it takes. */
static int add_hardlink(struct parser *p, struct lcfs_node_s *node, char *target)
{
	struct hardlink *h;

	h = lcfs_array_reserve(p->links, p->n_links, &p->links_cap, sizeof(*h), 16);
	if (h == NULL) {
		free(target);
		return perr_oom(p);
	}
	p->links = h;
	h = &p->links[p->n_links++];
	h->node = node;
	h->line = p->line;
	h->target = target;
	return 0;
}

/*
 * The node the hard link chain from @n ends at (@n itself if it is not a
 * link), or NULL if the chain loops. Every link on the way is pointed
 * straight at that node: a dumpfile can build a chain as long as itself
 * (each line linking to the next), and following it again from every entry
 * (here, in the writer, in the printer) would cost its length squared.
 */
static struct lcfs_node_s *final_target(struct lcfs_node_s *n)
{
	struct lcfs_node_s *t = lcfs_node_resolve_link(n);

	if (t == NULL)
		return NULL;
	while (n->link_to != NULL && n->link_to != t) {
		struct lcfs_node_s *next = n->link_to;

		/* @next stays referenced by its directory. */
		n->link_to = lcfs_node_ref(t);
		lcfs_node_unref(next);
		n = next;
	}
	return t;
}

/* After the whole file, in reverse order of appearance (docs/dumpfile.md,
 * "Hard links"). */
static int resolve_hardlinks(struct parser *p)
{
	for (size_t i = p->n_links; i-- > 0;) {
		struct hardlink *h = &p->links[i];
		struct lcfs_node_s *t, *f;
		uint32_t nlink;

		p->line = h->line;
		if (h->target == NULL)
			return perr(p, F_PAYLOAD, EINVAL, "No target path for the hardlink");
		/* The reference links an empty path to the root; refuse it. */
		if (h->target[0] == '\0')
			return perr(p, F_PAYLOAD, EINVAL,
				    "Empty target path for the hardlink");
		t = tree_lookup(p->root, h->target);
		if (t == NULL)
			return perr(p, F_PAYLOAD, ENOENT, "No target at %s for hardlink",
				    h->target);
		if (t == h->node)
			return perr(p, F_PAYLOAD, EINVAL, "Self-referential hardlink %s",
				    h->target);
		/* The reference accepts this and builds a directory with two
		 * names; refuse it. */
		if ((t->mode & S_IFMT) == S_IFDIR)
			return perr(p, F_PAYLOAD, EISDIR,
				    "Hardlink target %s is a directory", h->target);
		/* Link to the end of the target's chain, unless that closes a
		 * cycle: that one is kept for the writer to refuse (ELOOP). */
		f = final_target(t);
		if (f != NULL && f != h->node)
			t = f;
		/* The target keeps the NLINK its own line gave. */
		nlink = t->nlink;
		lcfs_node_make_hardlink(h->node, t);
		t->nlink = nlink;
	}
	/* Links made before their target became a link itself. */
	for (size_t i = 0; i < p->n_links; i++)
		final_target(p->links[i].node);
	return 0;
}

/* On failure, drop the links made so far: a cycle of references would
 * otherwise keep its nodes alive. */
static void unlink_hardlinks(struct parser *p)
{
	for (size_t i = 0; i < p->n_links; i++) {
		struct lcfs_node_s *n = p->links[i].node;

		if (n->link_to != NULL) {
			struct lcfs_node_s *t = n->link_to;

			n->link_to = NULL;
			lcfs_node_unref(t);
		}
	}
}

/* ---- Duplicates ------------------------------------------------------------- */

/*
 * After the sort, when a directory has a name twice: the line a reading
 * from the top would have stopped at, the second of the lines that gave
 * one name (an entry given before its directory was switched to appending
 * counts as line 0, the earliest). When it comes no later than line
 * @before (the line of the error already found, or none), that error is
 * replaced.
 */
static int report_duplicate(struct parser *p, unsigned long before)
{
	const struct name_index *x = &p->names;
	struct lcfs_node_s *found = NULL;
	unsigned long best = before;
	char *path;
	int r;

	for (size_t i = 0; i < x->n_dirs; i++) {
		struct lcfs_node_s *const *c = x->dirs[i]->children;
		size_t n = x->dirs[i]->n_children;

		for (size_t j = 0; j + 1 < n;) {
			struct lcfs_node_s *first = c[j], *second = NULL;
			size_t k = j + 1;

			/* The group of equal names from j, its two earliest. */
			for (; k < n && lcfs_bytes_cmp(c[j]->name, c[j]->name_len, c[k]->name,
						       c[k]->name_len) == 0;
			     k++) {
				if (c[k]->scratch < first->scratch) {
					second = first;
					first = c[k];
				} else if (second == NULL || c[k]->scratch < second->scratch) {
					second = c[k];
				}
			}
			/* On the line of the error, the path comes first. */
			if (second != NULL && second->scratch <= best) {
				best = second->scratch;
				found = second;
			}
			j = k;
		}
	}
	if (found == NULL)
		return 0;
	memset(p->err, 0, sizeof(*p->err));
	p->line = best;
	path = lcfs_node_path(found);
	if (path == NULL)
		return perr_oom(p);
	r = perr(p, F_PATH, EEXIST, "Path %s already exists", path);
	free(path);
	return r;
}

/* ---- Lines ------------------------------------------------------------------ */

/* Everything after MODE on a line that is not a hard link
 * (docs/dumpfile.md, "File types"). */
static int parse_entry(struct parser *p, struct lcfs_node_s *node,
		       struct field f[N_FIELDS], size_t n_fields, struct field *xs)
{
	bool strict = p->flags & LCFS_PARSE_FLAGS_STRICT;
	uint32_t type = node->mode & S_IFMT;
	uint64_t size, nlink, uid, gid, rdev;
	bool has_payload, has_content, has_digest;
	int r;

	if ((r = parse_uint(p, F_SIZE, f[F_SIZE].s, f[F_SIZE].len, 10, UINT64_MAX,
			    &size)) < 0 ||
	    (r = parse_uint(p, F_NLINK, f[F_NLINK].s, f[F_NLINK].len, 10, UINT32_MAX,
			    &nlink)) < 0 ||
	    (r = parse_uint(p, F_UID, f[F_UID].s, f[F_UID].len, 10, UINT32_MAX,
			    &uid)) < 0 ||
	    (r = parse_uint(p, F_GID, f[F_GID].s, f[F_GID].len, 10, UINT32_MAX,
			    &gid)) < 0 ||
	    (r = parse_uint(p, F_RDEV, f[F_RDEV].s, f[F_RDEV].len, 10, UINT32_MAX,
			    &rdev)) < 0 ||
	    (r = parse_mtime(p, &f[F_MTIME], &node->mtime_sec, &node->mtime_nsec)) < 0)
		return r;

	has_payload = !field_is_dash(&f[F_PAYLOAD]);
	if (has_payload) {
		r = unescape_cstr(p, F_PAYLOAD, &f[F_PAYLOAD],
				  type == S_IFLNK ? "symlink target" : "payload");
		if (r < 0)
			return r;
	}
	has_content = !field_is_dash(&f[F_CONTENT]);
	if (has_content) {
		r = unescape(p, F_CONTENT, &f[F_CONTENT]);
		if (r < 0)
			return r;
		if (!(p->flags & LCFS_PARSE_FLAGS_NO_CONTENT_CHECK) &&
		    f[F_CONTENT].len != size)
			return perr(p, F_CONTENT, EINVAL,
				    "Invalid content size %zu, must match size %" PRIu64,
				    f[F_CONTENT].len, size);
	}
	/* A line without an 11th field has no digest (the reference reads
	 * garbage there); a DIGEST that is present must be valid. */
	has_digest = n_fields == N_FIELDS && !field_is_dash(&f[F_DIGEST]);
	if (has_digest && (r = unescape_cstr(p, F_DIGEST, &f[F_DIGEST], "digest")) < 0)
		return r;

	node->nlink = (uint32_t)nlink;
	node->uid = (uint32_t)uid;
	node->gid = (uint32_t)gid;
	if (type == S_IFCHR || type == S_IFBLK)
		node->rdev = (uint32_t)rdev;
	else if (strict && rdev != 0)
		return perr(p, F_RDEV, EINVAL, "Non-zero devnum on non-device");

	if (type == S_IFLNK) {
		size_t tlen = f[F_PAYLOAD].len;

		if (!has_payload || tlen == 0 || tlen > LCFS_MAX_PAYLOAD)
			return perr(p, F_PAYLOAD, EINVAL, "Invalid symlink");
		if (strict && size != tlen)
			return perr(p, F_SIZE, EINVAL,
				    "Invalid symlink size %zu, must match size %" PRIu64,
				    tlen, size);
		if (strict && has_content && f[F_CONTENT].len > 0)
			return perr(p, F_CONTENT, EINVAL, "Symlink cannot have content");
		has_content = false;
		size = tlen;
	} else if (has_payload && f[F_PAYLOAD].len > LCFS_MAX_PAYLOAD) {
		return perr(p, F_PAYLOAD, ENAMETOOLONG, "Invalid payload");
	}
	node->size = size;
	if (has_payload &&
	    lcfs_node_set_payload_in(&p->payloads, node, f[F_PAYLOAD].s,
				     f[F_PAYLOAD].len) < 0)
		return perr_oom(p);
	if (has_content) {
		size_t len = f[F_CONTENT].len;
		uint8_t *content;

		if (len > LCFS_INLINE_CONTENT_MAX)
			return perr(p, F_CONTENT, EINVAL,
				    "Inline content size %zu exceeds maximum %d", len,
				    LCFS_INLINE_CONTENT_MAX);
		if (len > 0) {
			content = malloc(len);
			if (content == NULL)
				return perr_oom(p);
			memcpy(content, f[F_CONTENT].s, len);
			lcfs_node_take_content(node, content, len);
		}
	}
	if (has_digest) {
		if (lcfs_digest_from_hex(f[F_DIGEST].s, f[F_DIGEST].len, node->digest) < 0)
			return perr(p, F_DIGEST, EINVAL, "Invalid digest");
		node->digest_set = true;
	}
	return parse_xattrs(p, node, xs);
}

/* The batch the reader fills. */
static struct batch *filling(struct handoff *h)
{
	return &h->batches[h->produced % N_BATCHES];
}

static int place_batch(struct handoff *h, struct batch *b);

/* Hands the batch being filled over to the placer (@last: the final one)
 * and, unless it is the last or the placer failed, starts the next. */
static void hand_over(struct handoff *h, bool last)
{
	struct batch *b = filling(h);

	b->last = last;
	h->filling = false;
	if (!h->threaded) {
		h->produced++;
		if (place_batch(h, b) != 0)
			atomic_store(&h->stop, true);
		else
			h->consumed++;
	} else {
		pthread_mutex_lock(&h->lock);
		h->produced++;
		pthread_cond_broadcast(&h->cond);
		while (!last && h->produced - h->consumed >= N_BATCHES &&
		       !atomic_load(&h->stop))
			pthread_cond_wait(&h->cond, &h->lock);
		pthread_mutex_unlock(&h->lock);
	}
	if (last || atomic_load(&h->stop))
		return;
	b = filling(h);
	b->n = 0;
	b->placed = 0;
	b->text_len = 0;
	h->filling = true;
}

/* Copies @path (@len bytes) into @b's text for @rec. */
static int rec_set_path(struct batch *b, struct line_rec *rec, const char *path,
			size_t len)
{
	if (len >= b->text_cap - b->text_len) {
		size_t cap = b->text_cap ? b->text_cap : 64 * 1024;
		char *t;

		while (len >= cap - b->text_len)
			cap *= 2;
		t = realloc(b->text, cap);
		if (t == NULL)
			return -ENOMEM;
		b->text = t;
		b->text_cap = cap;
	}
	memcpy(b->text + b->text_len, path, len);
	b->text[b->text_len + len] = '\0';
	rec->path = b->text_len;
	rec->path_len = len;
	b->text_len += len + 1;
	return 0;
}

/* The reader's part of a line (without its newline; @line[@len] is
 * writable): everything but placing the node. Returns 1 when the placer
 * failed and the reader is to stop. */
static int read_line(struct parser *p, struct handoff *h, char *line, size_t len)
{
	struct field f[N_FIELDS], xs;
	struct lcfs_node_s *node;
	struct line_rec *rec;
	struct batch *b;
	const char *mode_s;
	size_t n_fields, mode_len;
	bool hardlink;
	uint64_t mode64;
	uint32_t mode;
	char *nul;
	int r;

	nul = memchr(line, '\0', len);
	if (nul != NULL)
		return perr(p, F_NONE, EINVAL,
			    "Invalid embedded NUL character at position %zu",
			    (size_t)(nul - line));
	line[len] = '\0';
	n_fields = split_fields(line, len, f, &xs);

	r = unescape_cstr(p, F_PATH, &f[F_PATH], "path");
	if (r < 0)
		return r;
	if (f[F_PATH].len == 0)
		return perr(p, F_PATH, EINVAL, "Invalid empty path");

	mode_s = f[F_MODE].s;
	mode_len = f[F_MODE].len;
	hardlink = mode_len > 0 && mode_s[0] == '@';
	if (hardlink) {
		mode_s++;
		mode_len--;
	}
	r = parse_uint(p, F_MODE, mode_s, mode_len, 8, UINT32_MAX, &mode64);
	if (r < 0)
		return r;
	mode = (uint32_t)mode64;
	if (!lcfs_mode_valid(mode))
		return perr(p, F_MODE, EINVAL, "Invalid mode %o", mode);
	if (hardlink && (mode & S_IFMT) == S_IFDIR)
		return perr(p, F_MODE, EINVAL, "Directories can't be hardlinked");

	b = filling(h);
	if (b->n == BATCH_LINES) {
		hand_over(h, false);
		if (atomic_load(&h->stop))
			return 1;
		b = filling(h);
	}
	node = lcfs_node_arena_new(&p->nodes);
	if (node == NULL)
		return perr_oom(p);
	node->mode = mode;
	rec = &b->recs[b->n];
	if (rec_set_path(b, rec, f[F_PATH].s, f[F_PATH].len) < 0) {
		lcfs_node_unref(node);
		return perr_oom(p);
	}
	rec->node = node;
	rec->line = p->line;
	rec->link_target = NULL;
	rec->hint_len = 0;
	rec->hardlink = hardlink;
	rec->fails = false;
	if (atomic_load_explicit(&h->hints, memory_order_relaxed) &&
	    plain_path(f[F_PATH].s, f[F_PATH].len)) {
		const char *last = memrchr(f[F_PATH].s, '/', f[F_PATH].len);

		/* The root's children need no lookup. */
		if (last != f[F_PATH].s) {
			rec->hint_len = last - f[F_PATH].s;
			rec->hint_hash = path_hash(f[F_PATH].s, rec->hint_len);
		}
	}
	b->n++;
	/* From here on the placer owns @node. */
	if (hardlink) {
		/* Only PATH, MODE and PAYLOAD count (docs/dumpfile.md,
		 * "Hard links"). */
		if (field_is_dash(&f[F_PAYLOAD]))
			return 0;
		r = unescape_cstr(p, F_PAYLOAD, &f[F_PAYLOAD], "hard link target");
		if (r == 0) {
			rec->link_target = strndup(f[F_PAYLOAD].s, f[F_PAYLOAD].len);
			if (rec->link_target == NULL)
				r = perr_oom(p);
		}
	} else {
		r = parse_entry(p, node, f, n_fields, &xs);
	}
	if (r < 0)
		rec->fails = true;
	return r;
}

/* The placer's part of a line. Returns 1 after a line the reader
 * rejected: nothing follows it. */
static int place_line(struct parser *p, struct batch *b, struct line_rec *rec)
{
	int r;

	p->line = rec->line;
	if (rec->hint_len > 0) {
		p->hint_line = rec->line;
		p->hint_hash = rec->hint_hash;
		p->hint_parent_len = rec->hint_len;
	}
	r = tree_add(p, b->text + rec->path, rec->path_len, rec->node);
	if (r < 0)
		return r;
	b->placed++;
	if (rec->fails)
		return 1;
	if (rec->hardlink) {
		r = add_hardlink(p, rec->node, rec->link_target);
		rec->link_target = NULL;
	}
	return r;
}

/* Places the lines of @b in order. Nonzero when the placer is to stop. */
static int place_batch(struct handoff *h, struct batch *b)
{
	struct parser *p = h->placer;

	for (size_t i = 0; i < b->n; i++) {
		int r;

		/* Worth it only once lines stopped coming in order. */
		if (!p->looking && (p->unsorted || p->n_jumps > 2 * p->n_dir_lines + 64)) {
			p->looking = true;
			atomic_store(&h->hints, true);
		}
		if (p->looking) {
			if (i + AHEAD_FAR < b->n)
				ahead_far(p, &b->recs[i + AHEAD_FAR]);
			if (i + AHEAD_NEAR < b->n)
				ahead_near(p, b, &b->recs[i + AHEAD_NEAR]);
		}
		r = place_line(p, b, &b->recs[i]);
		if (r != 0)
			return r;
	}
	return 0;
}

/* One thread's share of sorting the directories (see struct handoff). */
static void sort_shared(struct handoff *h)
{
	if (index_sort_dirs(&h->placer->names, &h->next_dir))
		atomic_store(&h->dup, true);
}

static void *placer_main(void *data)
{
	struct handoff *h = data;

	for (;;) {
		struct batch *b;
		bool stop, last;

		pthread_mutex_lock(&h->lock);
		while (h->consumed == h->produced)
			pthread_cond_wait(&h->cond, &h->lock);
		b = &h->batches[h->consumed % N_BATCHES];
		pthread_mutex_unlock(&h->lock);

		last = b->last; /* @b is the reader's again once done with */
		stop = place_batch(h, b) != 0;
		pthread_mutex_lock(&h->lock);
		if (stop)
			atomic_store(&h->stop, true);
		else
			h->consumed++;
		pthread_cond_broadcast(&h->cond);
		pthread_mutex_unlock(&h->lock);
		if (stop)
			return NULL;
		if (last) {
			pthread_mutex_lock(&h->lock);
			h->placed_all = true;
			pthread_cond_broadcast(&h->cond);
			pthread_mutex_unlock(&h->lock);
			sort_shared(h);
			return NULL;
		}
	}
}

/* ---- Input ------------------------------------------------------------------ */

static ssize_t source_read(struct source *src, char *dst, size_t n)
{
	if (src->buf != NULL) {
		size_t k = src->len - src->pos;

		if (k > n)
			k = n;
		memcpy(dst, src->buf + src->pos, k);
		src->pos += k;
		return k;
	}
	for (;;) {
		ssize_t r = read(src->fd, dst, n);

		if (r >= 0)
			return r;
		if (errno != EINTR)
			return -errno;
	}
}

/* Reads the input in chunks and reads each complete line as soon as it is
 * seen (docs/dumpfile.md, "Lines"). Only the unparsed tail stays in
 * memory. Returns 1 when the placer failed. */
static int read_lines(struct parser *p, struct handoff *h, struct source *src)
{
	size_t cap = READ_CHUNK, start = 0, end = 0;
	cleanup_free char *buf = NULL;
	bool eof = false;

	/* A small input in memory needs no more than its own size. */
	if (src->buf != NULL && src->len < cap)
		cap = src->len > 64 ? src->len : 64;
	buf = malloc(cap + 1); /* +1: NUL after a last line */
	if (buf == NULL)
		return perr_oom(p);
	for (;;) {
		char *nl, *scan = buf + start;
		ssize_t n;

		while ((nl = memchr(scan, '\n', buf + end - scan)) != NULL) {
			int r;

			p->line++;
			r = read_line(p, h, buf + start, nl - (buf + start));
			if (r != 0)
				return r;
			start = nl + 1 - buf;
			scan = nl + 1;
		}
		if (eof)
			break;
		if (start > 0) {
			memmove(buf, buf + start, end - start);
			end -= start;
			start = 0;
		}
		if (end == cap) {
			char *nb;

			if (cap > SIZE_MAX / 4)
				return perr_oom(p);
			nb = realloc(buf, cap * 2 + 1);
			if (nb == NULL)
				return perr_oom(p);
			buf = nb;
			cap *= 2;
		}
		n = source_read(src, buf + end, cap - end);
		if (n < 0)
			return perr(p, F_NONE, -n, "Cannot read dump file: %s",
				    strerror(-n));
		if (n == 0)
			eof = true;
		end += n;
	}
	if (start < end) {
		p->line++;
		/* Strict mode's final newline, enforced whatever the read sizes
		 * (docs/compatibility.md, "Dumpfile parser"). */
		if (p->flags & LCFS_PARSE_FLAGS_STRICT)
			return perr(p, F_NONE, EINVAL, "Missing trailing newline");
		return read_line(p, h, buf + start, end - start);
	}
	return 0;
}

/* Whether the input is big enough for a second thread, and there is a
 * second CPU for it. */
static bool want_placer(const struct source *src)
{
	struct stat st;

	if (lcfs_cpu_count() < 2)
		return false;
	if (src->buf != NULL)
		return src->len >= PLACER_MIN_INPUT;
	/* A pipe's size is not known. */
	return fstat(src->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	       st.st_size >= (off_t)PLACER_MIN_INPUT;
}

/* Reads and places every line, on two threads when the input is big.
 * Leaves the first error in @err. */
static void read_and_place(struct parser *rd, struct parser *pl, struct source *src,
			   struct lcfs_error *err)
{
	struct lcfs_error rd_err = { 0 }, pl_err = { 0 };
	struct handoff h = { .placer = pl, .filling = true };
	pthread_t thread;

	rd->err = &rd_err;
	pl->err = &pl_err;
	h.batches = calloc(N_BATCHES, sizeof(*h.batches));
	if (h.batches == NULL) {
		perr_oom(rd);
		goto out;
	}
	if (want_placer(src) && pthread_mutex_init(&h.lock, NULL) == 0) {
		if (pthread_cond_init(&h.cond, NULL) == 0) {
			h.threaded = pthread_create(&thread, NULL, placer_main, &h) == 0;
			if (!h.threaded)
				pthread_cond_destroy(&h.cond);
		}
		if (!h.threaded)
			pthread_mutex_destroy(&h.lock);
	}

	(void)read_lines(rd, &h, src);
	if (!atomic_load(&h.stop))
		hand_over(&h, true);
	if (h.threaded) {
		pthread_mutex_lock(&h.lock);
		while (!h.placed_all && !atomic_load(&h.stop))
			pthread_cond_wait(&h.cond, &h.lock);
		pthread_mutex_unlock(&h.lock);
		if (h.placed_all)
			sort_shared(&h);
		pthread_join(thread, NULL);
		pl->dirs_sorted = h.placed_all;
		pl->dup = atomic_load(&h.dup);
		pthread_cond_destroy(&h.cond);
		pthread_mutex_destroy(&h.lock);
	}

	/* The nodes the tree did not take: those of the batches the placer
	 * stopped in or never saw, and of the one being filled. */
	for (size_t k = h.consumed; k < h.produced + h.filling; k++) {
		struct batch *b = &h.batches[k % N_BATCHES];

		for (size_t i = b->placed; i < b->n; i++) {
			lcfs_node_unref(b->recs[i].node);
			free(b->recs[i].link_target);
		}
	}
	for (size_t k = 0; k < N_BATCHES; k++)
		free(h.batches[k].text);
	free(h.batches);
out:
	*err = pl_err.err != 0 ? pl_err : rd_err;
	rd->err = err;
	pl->err = err;
}

/* Leaves the scratch fields of the appended entries clean, when the move
 * (which clears every node's) did not happen. */
static void clear_scratch(struct name_index *x)
{
	for (size_t i = 0; i < x->n_dirs; i++)
		for (size_t j = 0; j < x->dirs[i]->n_children; j++)
			x->dirs[i]->children[j]->scratch = 0;
}

static struct lcfs_node_s *parse(struct source *src, unsigned flags,
				 struct lcfs_error *err)
{
	struct lcfs_error dummy;
	struct parser rd = { .flags = flags }, p = { .flags = flags };
	struct lcfs_node_s *root = NULL;
	int r;

	if (err == NULL)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	rd.xattrs.slab = &rd.xattr_slab;

	read_and_place(&rd, &p, src, err);
	r = -err->err;
	if (r == 0 && p.root == NULL) {
		p.line = 0;
		r = perr(&p, F_NONE, EINVAL, "No files in dump file");
	}
	/* Sorted even after an error: a name given twice on an earlier
	 * line is the error to report. */
	if (!p.dirs_sorted) {
		atomic_size_t next = 0;

		p.dup = index_sort_dirs(&p.names, &next);
	}
	if (p.dup) {
		int d = report_duplicate(&p, r < 0 ? err->line : ULONG_MAX);

		if (d < 0)
			r = d;
	}
	if (r == 0)
		r = resolve_hardlinks(&p);
	if (r == 0)
		root = steal_pointer(&p.root);
	else
		unlink_hardlinks(&p);

	lcfs_node_unref(p.root);
	for (size_t i = 0; i < p.n_links; i++)
		free(p.links[i].target);
	free(p.links);
	free(p.dirs);
	for (size_t i = 0; i < p.names.n_indexed; i++)
		p.names.indexed[i]->name_indexed = false;
	free(p.names.indexed);
	free(p.names.slots);
	dir_map_free(&p.dir_paths);
	lcfs_xattr_intern_release(&rd.xattrs);
	lcfs_slab_done(&rd.xattr_slab);
	lcfs_slab_done(&p.names_slab);
	lcfs_slab_done(&rd.payloads);
	if (root != NULL && (p.unsorted || p.n_jumps > p.n_dir_lines)) {
		/* Whatever order the lines came in, the writer then finds the
		 * nodes (and names) in the order it visits them. Failing only
		 * costs speed. Lines already in the printer's order (depth
		 * first, names sorted) are close enough to it: moving them
		 * costs more than it saves. */
		struct lcfs_relocated to[LCFS_RELOCATE_PARTS] = { 0 };

		if (lcfs_node_arena_relocate(&rd.nodes, &root, to) <= 0)
			clear_scratch(&p.names);
		for (size_t i = 0; i < LCFS_RELOCATE_PARTS; i++) {
			lcfs_slab_done(&to[i].names);
			lcfs_slab_done(&to[i].payloads);
		}
	}
	free(p.names.dirs);
	lcfs_node_arena_done(&rd.nodes);
	if (root == NULL)
		errno = err->err ? err->err : EINVAL;
	return root;
}

struct lcfs_node_s *lcfs_dump_parse_fd(int fd, unsigned flags,
				       struct lcfs_error *err)
{
	struct source src = { .fd = fd };

	return parse(&src, flags, err);
}

struct lcfs_node_s *lcfs_dump_parse_buf(const char *buf, size_t len,
					unsigned flags, struct lcfs_error *err)
{
	static const char empty[1];
	struct source src = { .fd = -1, .buf = buf ? buf : empty, .len = len };

	return parse(&src, flags, err);
}
