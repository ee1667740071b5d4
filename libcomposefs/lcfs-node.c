/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The node tree: creation, reference counting, cloning, children, hard
 * links, attributes and xattrs (docs/design.md, "Node ownership"; the
 * functions are documented in lcfs-writer.h).
 */
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-node.h"
#include "lcfs-walk.h"

#include <endian.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <xxhash.h>

/* ---- Xattr entries -------------------------------------------------------- */

uint32_t lcfs_xattr_hash(const char *key, size_t key_len, const char *value,
			 size_t value_len)
{
	uint32_t h = XXH32(key, key_len, 0);

	return XXH32(value, value_len, h ^ 0x9e3779b9u);
}

/* lcfs_xattr_new(), from @slab when it is not NULL. */
static struct lcfs_xattr *xattr_make(struct lcfs_slab *slab, const char *key,
				     size_t key_len, const char *value,
				     size_t value_len, int *errp)
{
	size_t size = sizeof(struct lcfs_xattr) + key_len + value_len + 2;
	struct lcfs_xattr *x;

	if (key_len == 0 || key_len > LCFS_MAX_XATTR_NAME) {
		*errp = -ERANGE;
		return NULL;
	}
	if (value_len > LCFS_MAX_XATTR_VALUE) {
		*errp = -EINVAL;
		return NULL;
	}
	x = slab != NULL ? lcfs_slab_alloc(slab, size) : malloc(size);
	if (x == NULL) {
		*errp = -ENOMEM;
		return NULL;
	}
	x->ref = 1;
	x->key_len = (uint8_t)key_len;
	x->in_slab = slab != NULL;
	x->value_len = (uint16_t)value_len;
	memcpy(x->data, key, key_len);
	x->data[key_len] = '\0';
	if (value_len > 0)
		memcpy(x->data + key_len + 1, value, value_len);
	x->data[key_len + 1 + value_len] = '\0';
	x->hash = lcfs_xattr_hash(key, key_len, value, value_len);
	return x;
}

struct lcfs_xattr *lcfs_xattr_new(const char *key, size_t key_len,
				  const char *value, size_t value_len, int *errp)
{
	return xattr_make(NULL, key, key_len, value, value_len, errp);
}

struct lcfs_xattr *lcfs_xattr_ref(struct lcfs_xattr *x)
{
	x->ref++;
	return x;
}

void lcfs_xattr_unref(struct lcfs_xattr *x)
{
	if (x == NULL || --x->ref != 0)
		return;
	if (x->in_slab)
		lcfs_slab_release(x);
	else
		free(x);
}

static int intern_grow(struct lcfs_xattr_intern *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct lcfs_xattr **slots;

	if (cap < t->cap || cap > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = lcfs_calloc_big(cap, sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		struct lcfs_xattr *x = t->slots[i];
		size_t j;

		if (x == NULL)
			continue;
		for (j = x->hash & (cap - 1); slots[j] != NULL; j = (j + 1) & (cap - 1))
			;
		slots[j] = x;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

struct lcfs_xattr *lcfs_xattr_intern_get(struct lcfs_xattr_intern *t,
					 const char *key, size_t key_len,
					 const char *value, size_t value_len,
					 int *errp)
{
	uint32_t hash = lcfs_xattr_hash(key, key_len, value, value_len);
	struct lcfs_xattr *x;
	size_t i;

	if ((t->n + 1) * 2 > t->cap) {
		int r = intern_grow(t);

		if (r < 0) {
			*errp = r;
			return NULL;
		}
	}
	for (i = hash & (t->cap - 1); (x = t->slots[i]) != NULL; i = (i + 1) & (t->cap - 1)) {
		if (x->hash == hash && x->key_len == key_len && x->value_len == value_len &&
		    memcmp(x->data, key, key_len) == 0 &&
		    (value_len == 0 || memcmp(lcfs_xattr_value(x), value, value_len) == 0))
			return x;
	}
	x = xattr_make(t->slab, key, key_len, value, value_len, errp);
	if (x == NULL)
		return NULL;
	t->slots[i] = x;
	t->n++;
	return x;
}

void lcfs_xattr_intern_release(struct lcfs_xattr_intern *t)
{
	for (size_t i = 0; i < t->cap; i++)
		lcfs_xattr_unref(t->slots[i]);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}

/* ---- Lifetime ------------------------------------------------------------- */

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_new(void)
{
	struct lcfs_node_s *node = calloc(1, sizeof(*node));

	if (node == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	node->ref = 1;
	node->nlink = 1;
	return node;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_ref(struct lcfs_node_s *node)
{
	node->ref++;
	return node;
}

/*
 * Frees a node whose count dropped to zero. Every descendant is detached
 * (name and parent cleared) and loses the reference its parent held;
 * descendants kept alive elsewhere survive, stripped of their children.
 * Iterative, with the queued nodes chained through their parent field, so
 * that a deep tree cannot exhaust the stack. Every node of the torn-down
 * tree also drops its hard link reference, so that links forming a cycle
 * (which the writer rejects) cannot keep each other alive; a target whose
 * last reference goes away is queued the same way.
 */
void lcfs_node_release_name(struct lcfs_node_s *node)
{
	if (node->name_in_slab)
		lcfs_slab_release(node->name);
	else
		free(node->name);
	node->name = NULL;
	node->name_len = 0;
	node->name_in_slab = false;
}

static void node_release_payload(struct lcfs_node_s *node)
{
	if (node->payload_in_slab)
		lcfs_slab_release(node->payload);
	else
		free(node->payload);
	node->payload = NULL;
	node->payload_in_slab = false;
}

static void node_destroy(struct lcfs_node_s *node)
{
	struct lcfs_node_s *work = node;

	node->parent = NULL;
	node->destroying = true;
	while (work != NULL) {
		struct lcfs_node_s *n = work;
		struct lcfs_node_s *target;

		work = n->parent;
		n->parent = NULL;
		n->destroying = false;
		for (size_t i = 0; i < n->n_children; i++) {
			struct lcfs_node_s *c = n->children[i];

			lcfs_node_release_name(c);
			c->ref--;
			c->parent = work;
			c->destroying = true;
			work = c;
		}
		free(n->children);
		n->children = NULL;
		n->n_children = 0;

		target = n->link_to;
		n->link_to = NULL;
		if (target != NULL && --target->ref == 0 && !target->destroying) {
			target->parent = work;
			target->destroying = true;
			work = target;
		}
		if (n->ref != 0)
			continue;

		for (size_t i = 0; i < n->n_xattrs; i++)
			lcfs_xattr_unref(n->xattrs[i]);
		if (n->xattrs != &n->xattr_inline)
			free(n->xattrs);
		lcfs_node_release_name(n);
		node_release_payload(n);
		free(n->content);
		if (n->in_slab)
			lcfs_slab_release(n);
		else
			free(n);
	}
}

LCFS_PUBLIC void lcfs_node_unref(struct lcfs_node_s *node)
{
	if (node == NULL)
		return;
	if (--node->ref == 0)
		node_destroy(node);
}

static int node_copy_attrs(struct lcfs_node_s *dst, const struct lcfs_node_s *src)
{
	dst->mode = src->mode;
	dst->nlink = src->nlink;
	dst->uid = src->uid;
	dst->gid = src->gid;
	dst->rdev = src->rdev;
	dst->mtime_sec = src->mtime_sec;
	dst->mtime_nsec = src->mtime_nsec;
	dst->size = src->size;
	dst->digest_set = src->digest_set;
	memcpy(dst->digest, src->digest, sizeof(dst->digest));
	if (src->payload != NULL) {
		dst->payload = strdup(src->payload);
		if (dst->payload == NULL)
			return -ENOMEM;
	}
	if (src->content != NULL) {
		dst->content = malloc(src->size);
		if (dst->content == NULL)
			return -ENOMEM;
		memcpy(dst->content, src->content, src->size);
	}
	if (src->n_xattrs == 1) {
		dst->xattrs = &dst->xattr_inline;
	} else if (src->n_xattrs > 1) {
		size_t cap = 2;

		while (cap < src->n_xattrs)
			cap *= 2;
		dst->xattrs = malloc(cap * sizeof(*dst->xattrs));
		if (dst->xattrs == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < src->n_xattrs; i++)
		dst->xattrs[i] = lcfs_xattr_ref(src->xattrs[i]);
	dst->n_xattrs = src->n_xattrs;
	if (src->link_to != NULL)
		dst->link_to = lcfs_node_ref(src->link_to);
	dst->link_loop = src->link_loop;
	return 0;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_clone(struct lcfs_node_s *node)
{
	struct lcfs_node_s *n = lcfs_node_new();
	int r;

	if (n == NULL)
		return NULL;
	r = node_copy_attrs(n, node);
	if (r < 0) {
		lcfs_node_unref(n);
		errno = -r;
		return NULL;
	}
	return n;
}

/* Pointer map (open addressing) from original nodes to their copies. */
struct ptrmap {
	size_t mask;
	struct {
		const void *key;
		void *value;
	} *slots;
};

static size_t ptr_hash(const void *p)
{
	uint64_t v = (uintptr_t)p;

	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdULL;
	v ^= v >> 33;
	return (size_t)v;
}

static int ptrmap_init(struct ptrmap *m, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap <<= 1;
	m->slots = lcfs_calloc_big(cap, sizeof(*m->slots));
	if (m->slots == NULL)
		return -ENOMEM;
	m->mask = cap - 1;
	return 0;
}

static void ptrmap_put(struct ptrmap *m, const void *key, void *value)
{
	size_t i = ptr_hash(key) & m->mask;

	while (m->slots[i].key != NULL)
		i = (i + 1) & m->mask;
	m->slots[i].key = key;
	m->slots[i].value = value;
}

static void *ptrmap_get(const struct ptrmap *m, const void *key)
{
	size_t i = ptr_hash(key) & m->mask;

	while (m->slots[i].key != NULL) {
		if (m->slots[i].key == key)
			return m->slots[i].value;
		i = (i + 1) & m->mask;
	}
	return NULL;
}

/* Counts the nodes of a subtree, or -ENOMEM. */
static ssize_t subtree_count(struct lcfs_node_s *root)
{
	struct lcfs_walk w;
	ssize_t count = 0;
	int r;

	lcfs_walk_init(&w, root, 0);
	while ((r = lcfs_walk_next(&w)) > 0)
		count++;
	lcfs_walk_release(&w);
	return r < 0 ? r : count;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_clone_deep(struct lcfs_node_s *node)
{
	struct ptrmap map = { 0 };
	struct lcfs_node_s *copy_root;
	struct lcfs_walk w;
	ssize_t n = subtree_count(node);
	int r;

	if (n < 0) {
		r = (int)n;
		goto fail;
	}
	r = ptrmap_init(&map, (size_t)n);
	if (r < 0)
		goto fail;
	copy_root = lcfs_node_clone(node);
	if (copy_root == NULL) {
		r = -errno;
		goto fail;
	}
	ptrmap_put(&map, node, copy_root);

	/* Pre-order, so that the copy of a node's directory exists when the
	 * node is copied. */
	lcfs_walk_init(&w, node, 0);
	while ((r = lcfs_walk_next(&w)) > 0) {
		struct lcfs_node_s *c = w.node;
		struct lcfs_node_s *cc;

		if (c == node)
			continue; /* copied above */
		cc = lcfs_node_clone(c);
		if (cc == NULL) {
			r = -errno;
			break;
		}
		if (lcfs_node_add_child(ptrmap_get(&map, w.parent), cc, c->name) < 0) {
			r = -errno;
			lcfs_node_unref(cc);
			break;
		}
		ptrmap_put(&map, c, cc);
	}
	lcfs_walk_release(&w);
	if (r < 0)
		goto fail_tree;

	/* Re-point hard links that target nodes inside the subtree. */
	for (size_t i = 0; i <= map.mask; i++) {
		struct lcfs_node_s *copy = map.slots[i].value;
		struct lcfs_node_s *target, *mapped;

		if (copy == NULL || copy->link_to == NULL)
			continue;
		target = copy->link_to;
		mapped = ptrmap_get(&map, target);
		if (mapped != NULL) {
			copy->link_to = lcfs_node_ref(mapped);
			lcfs_node_unref(target);
		}
	}
	free(map.slots);
	return copy_root;

fail_tree:
	lcfs_node_unref(copy_root);
fail:
	free(map.slots);
	errno = -r;
	return NULL;
}

/* ---- Children --------------------------------------------------------------- */

/* Index of @name in @node's children, or -(insertion point) - 1. */
static ssize_t child_find(struct lcfs_node_s *node, const char *name, size_t len)
{
	size_t lo = 0, hi = node->n_children;

	/* Fast path for input in sorted order. */
	if (hi > 0) {
		const struct lcfs_node_s *last = node->children[hi - 1];
		int c = lcfs_bytes_cmp(last->name, last->name_len, name, len);

		if (c < 0)
			return -(ssize_t)hi - 1;
		if (c == 0)
			return hi - 1;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lcfs_node_s *m = node->children[mid];
		int c = lcfs_bytes_cmp(m->name, m->name_len, name, len);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

struct lcfs_node_s *lcfs_node_lookup_child_n(struct lcfs_node_s *node,
					     const char *name, size_t name_len)
{
	ssize_t i = child_find(node, name, name_len);

	return i >= 0 ? node->children[i] : NULL;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_lookup_child(struct lcfs_node_s *node,
						       const char *name)
{
	return lcfs_node_lookup_child_n(node, name, strlen(name));
}

/* The children array holds a power of two >= 4 of slots. */
static bool children_full(uint32_t n)
{
	return n == 0 || (n >= 4 && (n & (n - 1)) == 0);
}

static int check_child(struct lcfs_node_s *parent, struct lcfs_node_s *child,
		       size_t name_len)
{
	if ((parent->mode & S_IFMT) != S_IFDIR)
		return -ENOTDIR;
	if (name_len == 0)
		return -EINVAL;
	if (name_len > LCFS_MAX_NAME_LENGTH)
		return -ENAMETOOLONG;
	if (child->parent != NULL || child->name != NULL)
		return -EMLINK;
	return 0;
}

/* Inserts @child (checked) at index @pos. */
static int insert_child(struct lcfs_slab *names, struct lcfs_node_s *parent,
			struct lcfs_node_s *child, const char *name,
			size_t name_len, size_t pos)
{
	char *copy;

	if (children_full(parent->n_children)) {
		size_t cap = parent->n_children ? (size_t)parent->n_children * 2 : 4;
		struct lcfs_node_s **c;

		if (parent->n_children >= UINT32_MAX / 2)
			return -ENOMEM;
		c = realloc(parent->children, cap * sizeof(*c));
		if (c == NULL)
			return -ENOMEM;
		parent->children = c;
	}
	if (names != NULL) {
		copy = lcfs_slab_strndup(names, name, name_len);
		if (copy == NULL)
			return -ENOMEM;
	} else {
		copy = malloc(name_len + 1);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, name, name_len);
		copy[name_len] = '\0';
	}
	if ((size_t)pos < parent->n_children)
		memmove(parent->children + pos + 1, parent->children + pos,
			(parent->n_children - pos) * sizeof(*parent->children));
	parent->children[pos] = child;
	parent->n_children++;
	child->name = copy;
	child->name_len = (uint8_t)name_len; /* checked by check_child() */
	child->name_in_slab = names != NULL;
	child->parent = parent;
	return 0;
}

int lcfs_node_add_child_in(struct lcfs_slab *names, struct lcfs_node_s *parent,
			   struct lcfs_node_s *child, const char *name,
			   size_t name_len, bool append)
{
	int r = check_child(parent, child, name_len);
	ssize_t pos;

	if (r < 0)
		return r;
	if (append) {
		const struct lcfs_node_s *last =
			parent->n_children > 0 ? parent->children[parent->n_children - 1] :
						 NULL;
		/* Once unsorted, the last entry need not be read (in a big
		 * tree, it is likely not in the cache). */
		bool in_order = !parent->children_unsorted &&
				(last == NULL || lcfs_bytes_cmp(last->name, last->name_len,
								name, name_len) < 0);

		r = insert_child(names, parent, child, name, name_len,
				 parent->n_children);
		if (r == 0 && !in_order)
			parent->children_unsorted = true;
		return r;
	}
	pos = child_find(parent, name, name_len);
	if (pos >= 0)
		return -EEXIST;
	return insert_child(names, parent, child, name, name_len, (size_t)(-pos - 1));
}

int lcfs_node_add_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			  const char *name, size_t name_len)
{
	return lcfs_node_add_child_in(NULL, parent, child, name, name_len, false);
}

int lcfs_node_append_child_n(struct lcfs_node_s *parent, struct lcfs_node_s *child,
			     const char *name, size_t name_len)
{
	return lcfs_node_add_child_in(NULL, parent, child, name, name_len, true);
}

void lcfs_node_remove_child_at(struct lcfs_node_s *parent, size_t i)
{
	struct lcfs_node_s *child = parent->children[i];

	memmove(parent->children + i, parent->children + i + 1,
		(parent->n_children - i - 1) * sizeof(*parent->children));
	parent->n_children--;
	lcfs_node_release_name(child);
	child->parent = NULL;
	lcfs_node_unref(child);
}

int lcfs_node_remove_child_n(struct lcfs_node_s *parent, const char *name,
			     size_t name_len)
{
	ssize_t i = child_find(parent, name, name_len);

	if (i < 0)
		return -ENOENT;
	lcfs_node_remove_child_at(parent, (size_t)i);
	return 0;
}

void lcfs_node_take_children(struct lcfs_node_s *to, struct lcfs_node_s *from)
{
	to->children = steal_pointer(&from->children);
	to->n_children = from->n_children;
	to->children_unsorted = from->children_unsorted;
	from->n_children = 0;
	from->children_unsorted = false;
	for (size_t j = 0; j < to->n_children; j++)
		to->children[j]->parent = to;
}

static int cmp_child_names(const void *a, const void *b)
{
	const struct lcfs_node_s *x = *(struct lcfs_node_s *const *)a;
	const struct lcfs_node_s *y = *(struct lcfs_node_s *const *)b;

	return lcfs_bytes_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* A child and the first bytes of its name, so that most comparisons of a
 * sort read neither the node nor its name (both likely cache misses when
 * the entries came out of order). */
struct child_key {
	uint64_t prefix; /* the name's first 8 bytes, big-endian, zero-padded */
	struct lcfs_node_s *node;
};

/* Names hold no NUL, so zero padding sorts a shorter name first, as
 * lcfs_bytes_cmp() does. */
static uint64_t name_prefix(const char *name, size_t len)
{
	unsigned char b[8] = { 0 };
	uint64_t v;

	memcpy(b, name, len < sizeof(b) ? len : sizeof(b));
	memcpy(&v, b, sizeof(v));
	return be64toh(v);
}

static int cmp_child_keys(const void *a, const void *b)
{
	const struct child_key *x = a, *y = b;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return cmp_child_names(&x->node, &y->node);
}

/* Whether sorted @children has two equal names next to each other. */
static bool has_duplicates(struct lcfs_node_s *const *children, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (cmp_child_names(&children[i - 1], &children[i]) == 0)
			return true;
	return false;
}

bool lcfs_node_sort_children(struct lcfs_node_s *node, void **buf, size_t *buf_size)
{
	struct lcfs_node_s **children = node->children;
	size_t n = node->n_children;
	struct child_key *keys = *buf;
	bool dup = false;

	if (!node->children_unsorted)
		return false;
	node->children_unsorted = false;
	if (n > *buf_size / sizeof(*keys)) {
		keys = n <= SIZE_MAX / sizeof(*keys) ? realloc(*buf, n * sizeof(*keys)) : NULL;
		if (keys == NULL) {
			qsort(children, n, sizeof(*children), cmp_child_names);
			return has_duplicates(children, n);
		}
		*buf = keys;
		*buf_size = n * sizeof(*keys);
	}
	for (size_t i = 0; i < n; i++) {
		if (i + 8 < n)
			__builtin_prefetch(&children[i + 8]->name);
		if (i + 4 < n)
			__builtin_prefetch(children[i + 4]->name);
		keys[i].prefix = name_prefix(children[i]->name, children[i]->name_len);
		keys[i].node = children[i];
	}
	qsort(keys, n, sizeof(*keys), cmp_child_keys);
	for (size_t i = 0; i < n; i++) {
		children[i] = keys[i].node;
		/* Only names that share their first bytes are read again. */
		if (i > 0 && keys[i].prefix == keys[i - 1].prefix &&
		    cmp_child_names(&children[i - 1], &children[i]) == 0)
			dup = true;
	}
	return dup;
}

LCFS_PUBLIC int lcfs_node_add_child(struct lcfs_node_s *parent,
				    struct lcfs_node_s *child, const char *name)
{
	return lcfs_public_ret(
		lcfs_node_add_child_n(parent, child, name, strlen(name)));
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_get_parent(struct lcfs_node_s *node)
{
	return node->parent;
}

LCFS_PUBLIC const char *lcfs_node_get_name(struct lcfs_node_s *node)
{
	return node->name;
}

LCFS_PUBLIC size_t lcfs_node_get_n_children(struct lcfs_node_s *node)
{
	return node->n_children;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_node_get_child(struct lcfs_node_s *node,
						    size_t i)
{
	return i < node->n_children ? node->children[i] : NULL;
}

/* ---- Hard links -------------------------------------------------------------- */

LCFS_PUBLIC void lcfs_node_make_hardlink(struct lcfs_node_s *node,
					 struct lcfs_node_s *target)
{
	if (node == target)
		return;
	/* A target whose chain leads back to @node would make a cycle; keep
	 * it, so that the writer reports it (ELOOP). */
	for (struct lcfs_node_s *t = target; t != NULL; t = t->link_to) {
		if (t == node) {
			node->link_loop = true;
			break;
		}
		if (t->link_loop)
			break;
	}
	if (node->link_to != NULL)
		lcfs_node_unref(node->link_to);
	node->link_to = lcfs_node_ref(target);
	target->nlink++;
}

LCFS_PUBLIC struct lcfs_node_s *
lcfs_node_get_hardlink_target(struct lcfs_node_s *node)
{
	return node->link_to;
}

struct lcfs_node_s *lcfs_node_resolve_link(struct lcfs_node_s *node)
{
	struct lcfs_node_s *slow = node;

	/* Floyd's cycle detection: chains are short, cycles are errors. */
	while (node->link_to != NULL) {
		node = node->link_to;
		if (node->link_to == NULL)
			break;
		node = node->link_to;
		slow = slow->link_to;
		if (node == slow)
			return NULL;
	}
	return node;
}

char *lcfs_node_path(struct lcfs_node_s *node)
{
	size_t len = 0;
	char *path, *p;

	for (struct lcfs_node_s *n = node; n != NULL && n->name != NULL; n = n->parent)
		len += n->name_len + 1;
	if (len == 0)
		return strdup("/");
	path = malloc(len + 1);
	if (path == NULL)
		return NULL;
	p = path + len;
	*p = '\0';
	for (struct lcfs_node_s *n = node; n != NULL && n->name != NULL; n = n->parent) {
		size_t l = n->name_len;

		p -= l;
		memcpy(p, n->name, l);
		*--p = '/';
	}
	return path;
}

LCFS_PUBLIC bool lcfs_node_dirp(struct lcfs_node_s *node)
{
	return (node->mode & S_IFMT) == S_IFDIR;
}

/* ---- Attributes ---------------------------------------------------------------- */

LCFS_PUBLIC uint32_t lcfs_node_get_mode(struct lcfs_node_s *node)
{
	return node->mode;
}

LCFS_PUBLIC void lcfs_node_set_mode(struct lcfs_node_s *node, uint32_t mode)
{
	node->mode = mode;
}

LCFS_PUBLIC int lcfs_node_try_set_mode(struct lcfs_node_s *node, uint32_t mode)
{
	if (!lcfs_mode_valid(mode)) {
		errno = EINVAL;
		return -1;
	}
	node->mode = mode;
	return 0;
}

LCFS_PUBLIC uint32_t lcfs_node_get_uid(struct lcfs_node_s *node)
{
	return node->uid;
}

LCFS_PUBLIC void lcfs_node_set_uid(struct lcfs_node_s *node, uint32_t uid)
{
	node->uid = uid;
}

LCFS_PUBLIC uint32_t lcfs_node_get_gid(struct lcfs_node_s *node)
{
	return node->gid;
}

LCFS_PUBLIC void lcfs_node_set_gid(struct lcfs_node_s *node, uint32_t gid)
{
	node->gid = gid;
}

LCFS_PUBLIC uint32_t lcfs_node_get_rdev(struct lcfs_node_s *node)
{
	return node->rdev;
}

LCFS_PUBLIC void lcfs_node_set_rdev(struct lcfs_node_s *node, uint32_t rdev)
{
	node->rdev = rdev;
}

LCFS_PUBLIC uint64_t lcfs_node_get_rdev64(struct lcfs_node_s *node)
{
	return node->rdev;
}

LCFS_PUBLIC void lcfs_node_set_rdev64(struct lcfs_node_s *node, uint64_t rdev)
{
	node->rdev = (uint32_t)rdev;
}

LCFS_PUBLIC uint32_t lcfs_node_get_nlink(struct lcfs_node_s *node)
{
	return node->nlink;
}

LCFS_PUBLIC void lcfs_node_set_nlink(struct lcfs_node_s *node, uint32_t nlink)
{
	node->nlink = nlink;
}

LCFS_PUBLIC uint64_t lcfs_node_get_size(struct lcfs_node_s *node)
{
	return node->size;
}

LCFS_PUBLIC void lcfs_node_set_size(struct lcfs_node_s *node, uint64_t size)
{
	if (node->content != NULL && size != node->size) {
		free(node->content);
		node->content = NULL;
	}
	node->size = size;
}

LCFS_PUBLIC void lcfs_node_set_mtime(struct lcfs_node_s *node,
				     struct timespec *time)
{
	node->mtime_sec = time->tv_sec;
	node->mtime_nsec = (uint32_t)time->tv_nsec;
}

LCFS_PUBLIC void lcfs_node_get_mtime(struct lcfs_node_s *node,
				     struct timespec *time)
{
	time->tv_sec = node->mtime_sec;
	time->tv_nsec = node->mtime_nsec;
}

LCFS_PUBLIC const char *lcfs_node_get_payload(struct lcfs_node_s *node)
{
	return node->payload;
}

void lcfs_node_take_payload(struct lcfs_node_s *node, char *payload)
{
	node_release_payload(node);
	node->payload = payload;
}

int lcfs_node_set_payload_in(struct lcfs_slab *slab, struct lcfs_node_s *node,
			     const char *payload, size_t len)
{
	char *copy = lcfs_slab_strndup(slab, payload, len);

	if (copy == NULL)
		return -ENOMEM;
	node_release_payload(node);
	node->payload = copy;
	node->payload_in_slab = true;
	return 0;
}

LCFS_PUBLIC int lcfs_node_set_payload(struct lcfs_node_s *node,
				      const char *payload)
{
	char *copy = NULL;

	if (payload != NULL) {
		if (strlen(payload) > LCFS_MAX_PAYLOAD) {
			errno = ENAMETOOLONG;
			return -1;
		}
		copy = strdup(payload);
		if (copy == NULL) {
			errno = ENOMEM;
			return -1;
		}
	}
	lcfs_node_take_payload(node, copy);
	return 0;
}

LCFS_PUBLIC int lcfs_node_set_symlink_payload(struct lcfs_node_s *node,
					      const char *payload)
{
	size_t len;

	if ((node->mode & S_IFMT) != S_IFLNK || payload == NULL ||
	    payload[0] == '\0') {
		errno = EINVAL;
		return -1;
	}
	len = strlen(payload);
	if (lcfs_node_set_payload(node, payload) < 0)
		return -1;
	node->size = len;
	return 0;
}

LCFS_PUBLIC const uint8_t *lcfs_node_get_content(struct lcfs_node_s *node)
{
	return node->content;
}

void lcfs_node_take_content(struct lcfs_node_s *node, uint8_t *content,
			    size_t len)
{
	free(node->content);
	node->content = content;
	node->size = len;
}

LCFS_PUBLIC int lcfs_node_set_content(struct lcfs_node_s *node,
				      const uint8_t *data, size_t len)
{
	uint8_t *copy = NULL;

	if (data == NULL || len == 0) {
		lcfs_node_take_content(node, NULL, len);
		return 0;
	}
	if (len > LCFS_INLINE_CONTENT_MAX) {
		errno = EINVAL;
		return -1;
	}
	copy = malloc(len);
	if (copy == NULL) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(copy, data, len);
	lcfs_node_take_content(node, copy, len);
	return 0;
}

LCFS_PUBLIC const uint8_t *lcfs_node_get_fsverity_digest(struct lcfs_node_s *node)
{
	return node->digest_set ? node->digest : NULL;
}

LCFS_PUBLIC void lcfs_node_set_fsverity_digest(struct lcfs_node_s *node,
					       uint8_t digest[LCFS_DIGEST_SIZE])
{
	memcpy(node->digest, digest, LCFS_DIGEST_SIZE);
	node->digest_set = true;
}

/* ---- Xattrs ------------------------------------------------------------------- */

static ssize_t xattr_find(struct lcfs_node_s *node, const char *key, size_t len)
{
	for (size_t i = 0; i < node->n_xattrs; i++) {
		const struct lcfs_xattr *x = node->xattrs[i];

		if (x->key_len == len && memcmp(x->data, key, len) == 0)
			return i;
	}
	return -1;
}

/* Makes room for one more xattr (see the xattrs field). */
static int xattrs_reserve(struct lcfs_node_s *node)
{
	size_t n = node->n_xattrs;
	struct lcfs_xattr **a;

	if (node->xattrs == NULL) {
		node->xattrs = &node->xattr_inline;
		return 0;
	}
	if (node->xattrs == &node->xattr_inline) {
		if (n == 0)
			return 0;
		a = malloc(2 * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		a[0] = node->xattr_inline;
		node->xattrs = a;
		return 0;
	}
	if (n >= 2 && (n & (n - 1)) != 0)
		return 0;
	if (n >= UINT16_MAX)
		return -ERANGE;
	a = realloc(node->xattrs, (n < 2 ? 2 : n * 2) * sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	node->xattrs = a;
	return 0;
}

int lcfs_node_set_xattr_entry(struct lcfs_node_s *node, struct lcfs_xattr *x)
{
	size_t budget = LCFS_XATTR_BUDGET_HEADER;
	ssize_t old = -1;
	int r;

	/* Budget of the entries that stay, plus the new one. */
	for (size_t i = 0; i < node->n_xattrs; i++) {
		const struct lcfs_xattr *o = node->xattrs[i];

		if (o->key_len == x->key_len && memcmp(o->data, x->data, x->key_len) == 0)
			old = i;
		else
			budget += lcfs_xattr_cost(o->key_len, o->value_len);
	}
	budget += lcfs_xattr_cost(x->key_len, x->value_len);
	if (budget > LCFS_INODE_EXTERNAL_XATTR_MAX)
		return -ERANGE;

	if (old >= 0) {
		/* The replaced entry moves to the end. */
		lcfs_xattr_unref(node->xattrs[old]);
		memmove(node->xattrs + old, node->xattrs + old + 1,
			(node->n_xattrs - old - 1) * sizeof(*node->xattrs));
		node->n_xattrs--;
	} else {
		r = xattrs_reserve(node);
		if (r < 0)
			return r;
	}
	node->xattrs[node->n_xattrs++] = lcfs_xattr_ref(x);
	return 0;
}

int lcfs_node_set_xattr_n(struct lcfs_node_s *node, const char *key,
			  size_t key_len, const char *value, size_t value_len)
{
	struct lcfs_xattr *x;
	int r = 0;

	x = lcfs_xattr_new(key, key_len, value, value_len, &r);
	if (x == NULL)
		return r;
	r = lcfs_node_set_xattr_entry(node, x);
	lcfs_xattr_unref(x);
	return r;
}

LCFS_PUBLIC const char *lcfs_node_get_xattr(struct lcfs_node_s *node,
					    const char *name, size_t *length)
{
	ssize_t i = xattr_find(node, name, strlen(name));

	if (i < 0)
		return NULL;
	if (length != NULL)
		*length = node->xattrs[i]->value_len;
	return lcfs_xattr_value(node->xattrs[i]);
}

LCFS_PUBLIC int lcfs_node_set_xattr(struct lcfs_node_s *node, const char *name,
				    const char *value, size_t value_len)
{
	size_t len = strlen(name);

	if (len == 0 || len > LCFS_MAX_XATTR_NAME) {
		errno = ERANGE;
		return -1;
	}
	return lcfs_public_ret(lcfs_node_set_xattr_n(node, name, len, value, value_len));
}

LCFS_PUBLIC int lcfs_node_unset_xattr(struct lcfs_node_s *node, const char *name)
{
	ssize_t i = xattr_find(node, name, strlen(name));
	struct lcfs_xattr *x;

	if (i < 0) {
		errno = ENODATA;
		return -1;
	}
	x = node->xattrs[i];
	lcfs_xattr_unref(x);
	node->xattrs[i] = node->xattrs[--node->n_xattrs];
	return 0;
}

LCFS_PUBLIC size_t lcfs_node_get_n_xattr(struct lcfs_node_s *node)
{
	return node->n_xattrs;
}

LCFS_PUBLIC const char *lcfs_node_get_xattr_name(struct lcfs_node_s *node,
						 size_t index)
{
	return index < node->n_xattrs ? lcfs_xattr_key(node->xattrs[index]) : NULL;
}

/* Below this many nodes, the move's second thread costs more than it
 * saves. */
#define RELOCATE_SPLIT_MIN 16384

struct relocate_strings {
	struct lcfs_slab *names;
	struct lcfs_slab *payloads;
	/* Releases of the old strings: the other part may release strings
	 * of the same chunks at the same time. */
	struct lcfs_slab_tally released;
};

/* Puts @copy in place of *@str, releasing the old string in @r's tally;
 * false (the copy released, *@str unchanged) without memory. */
static bool replace_string(struct relocate_strings *r, char **str,
			   bool in_slab, char *copy)
{
	if (in_slab && !lcfs_slab_tally_add(&r->released, *str)) {
		lcfs_slab_release(copy);
		return false;
	}
	if (!in_slab)
		free(*str);
	*str = copy;
	return true;
}

/* Copies the name and payload of @node into the slabs of @data, which
 * lcfs_node_arena_move() calls in the writer's order. A copy that fails
 * leaves the old string where it is: only slower. */
static void relocate_strings(struct lcfs_node_s *node, void *data)
{
	struct relocate_strings *r = data;
	char *copy;

	if (node->name != NULL) {
		copy = lcfs_slab_strndup(r->names, node->name, node->name_len);
		if (copy != NULL &&
		    replace_string(r, &node->name, node->name_in_slab, copy))
			node->name_in_slab = true;
	}
	if (node->payload != NULL) {
		copy = lcfs_slab_strndup(r->payloads, node->payload,
					 strlen(node->payload));
		if (copy != NULL &&
		    replace_string(r, &node->payload, node->payload_in_slab, copy))
			node->payload_in_slab = true;
	}
}

int lcfs_node_arena_relocate(struct lcfs_node_arena *a, struct lcfs_node_s **rootp,
			     struct lcfs_relocated out[LCFS_RELOCATE_PARTS])
{
	struct relocate_strings r[LCFS_RELOCATE_PARTS];
	void *data[LCFS_RELOCATE_PARTS];
	size_t n_parts = 1;
	int ret;

	for (size_t i = 0; i < LCFS_RELOCATE_PARTS; i++) {
		r[i] = (struct relocate_strings){ &out[i].names, &out[i].payloads };
		data[i] = &r[i];
	}
	if (a->n_nodes >= RELOCATE_SPLIT_MIN && lcfs_cpu_count() >= 2)
		n_parts = LCFS_RELOCATE_PARTS;
	ret = lcfs_node_arena_move(a, rootp, relocate_strings, data, n_parts);
	for (size_t i = 0; i < LCFS_RELOCATE_PARTS; i++)
		lcfs_slab_tally_apply(&r[i].released);
	return ret;
}
