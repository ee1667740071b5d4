/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Image writer, part 2: extended attributes. Each inode's list after the
 * rewrite (docs/image-format.md, "Tree rewrite") is rebuilt on demand from
 * the source node and its flags; the shared table (docs/image-format.md,
 * "Shared xattrs") holds the pairs that two or more inodes carry; the
 * inline region and the name filter follow (docs/image-format.md, "Inline
 * xattrs", "Xattr name filter").
 */
#include "lcfs-erofs-writer.h"
#include "erofs-xattr-names.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-node.h"

#include <string.h>
#include <xxhash.h>

#define OVERLAY_PREFIX_LEN (sizeof(LCFS_OVL_PREFIX) - 1)
#define ESCAPED_PREFIX_LEN (sizeof(LCFS_OVL_ESCAPED_PREFIX) - 1)

#define MAX_SHARED_REFS 128

/* A distinct (key, value) pair that may be shared. */
struct shared_ent {
	uint32_t hash;
	uint32_t count;
	uint32_t offset; /* in the shared table */
	uint16_t key_len;
	uint16_t value_len;
	char data[]; /* key, value */
};

/*
 * Most pairs occur once. The hashes of all pairs are sorted (radix sort,
 * cache friendly) and the hashes seen twice or more form a small set of
 * candidates; only candidates go into the exact table, where copies of
 * the pairs are counted.
 */
/*
 * A set of non-zero 32-bit hashes, open addressing (0 marks an empty slot),
 * kept at most half full.
 */
struct hash_set {
	uint32_t *slots;
	size_t mask;
	size_t n;
};

struct shared_xattrs {
	struct hash_set cand; /* hashes of the candidates */
	bool cand_zero;      /* hash 0 is a candidate (0 marks empty slots) */
	struct shared_ent **table;
	size_t table_mask;
	size_t n_entries;
	struct shared_ent **sorted; /* the shared ones, in table order */
	size_t n_sorted;
};

static void set_prefix(struct wxattr *x)
{
	size_t len;

	x->index = (uint8_t)lcfs_xattr_prefix_index(x->key, x->key_len, &len);
	x->prefix_len = (uint8_t)len;
}

static int key_cmp(const struct wxattr *a, const struct wxattr *b)
{
	return lcfs_bytes_cmp(a->key, a->key_len, b->key, b->key_len);
}

static int list_reserve(struct wxattr_list *l, size_t n, size_t n_keys)
{
	if (n > l->cap) {
		size_t cap = l->cap ? l->cap : 16;
		struct wxattr *a;

		while (cap < n)
			cap *= 2;
		a = realloc(l->items, cap * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		lcfs_hint_huge(a, cap * sizeof(*a));
		l->items = a;
		l->cap = cap;
	}
	if (n_keys * WXATTR_KEYMAX > l->keybuf_cap) {
		char *k = realloc(l->keybuf, n_keys * WXATTR_KEYMAX);

		if (k == NULL)
			return -ENOMEM;
		lcfs_hint_huge(k, n_keys * WXATTR_KEYMAX);
		l->keybuf = k;
		l->keybuf_cap = n_keys * WXATTR_KEYMAX;
	}
	return 0;
}

/* Adding an xattr in the rewrite (docs/image-format.md, "Input
 * whiteouts"): replaces an entry with the same key, else appends. */
static void list_set(struct wxattr_list *l, const char *key, const char *value,
		     size_t value_len)
{
	size_t key_len = strlen(key);
	struct wxattr *x = NULL;

	for (size_t i = 0; i < l->n; i++) {
		if (l->items[i].key_len == key_len &&
		    memcmp(l->items[i].key, key, key_len) == 0) {
			x = &l->items[i];
			break;
		}
	}
	if (x == NULL)
		x = &l->items[l->n++];
	x->key = key;
	x->key_len = key_len;
	x->value = value;
	x->value_len = value_len;
	x->hash = lcfs_xattr_hash(key, key_len, value, value_len);
	set_prefix(x);
}

static void list_sort(struct wxattr_list *l)
{
	/* Lists are short; insertion sort keeps this cheap and stable. */
	for (size_t i = 1; i < l->n; i++) {
		struct wxattr t = l->items[i];
		size_t j = i;

		while (j > 0 && key_cmp(&l->items[j - 1], &t) > 0) {
			l->items[j] = l->items[j - 1];
			j--;
		}
		l->items[j] = t;
	}
}

static void add_source(struct wxattr_list *l, const struct lcfs_xattr *src, size_t *nkeys)
{
	struct wxattr *x = &l->items[l->n++];

	x->value = lcfs_xattr_value(src);
	x->value_len = src->value_len;
	if (src->key_len >= OVERLAY_PREFIX_LEN &&
	    memcmp(src->data, LCFS_OVL_PREFIX, OVERLAY_PREFIX_LEN) == 0) {
		/* trusted.overlay.X -> trusted.overlay.overlay.X
		 * (docs/image-format.md, "Escaping overlay xattrs") */
		char *k = l->keybuf + (*nkeys)++ * WXATTR_KEYMAX;
		size_t rest = src->key_len - OVERLAY_PREFIX_LEN;

		memcpy(k, LCFS_OVL_ESCAPED_PREFIX, ESCAPED_PREFIX_LEN);
		memcpy(k + ESCAPED_PREFIX_LEN, src->data + OVERLAY_PREFIX_LEN, rest);
		x->key = k;
		x->key_len = ESCAPED_PREFIX_LEN + rest;
		x->hash = lcfs_xattr_hash(x->key, x->key_len, x->value, x->value_len);
	} else {
		x->key = src->data;
		x->key_len = src->key_len;
		x->hash = src->hash;
	}
	set_prefix(x);
}

/* An inode's xattrs after the rewrite, sorted by key (docs/image-format.md,
 * "Inode order"). */
int lcfs_writer_xattrs_of(struct writer *w, const struct winode *wi,
			  struct wxattr_list *l)
{
	struct lcfs_node_s *node = wi->node;
	size_t nkeys = 0;
	int r;

	l->n = 0;
	if (wi->flags & W_SYNTH_WHITEOUT) {
		/* Only the root's SELinux label is inherited
		 * (docs/image-format.md, "Root finalization"). */
		for (size_t i = 0; i < node->n_xattrs; i++) {
			const struct lcfs_xattr *x = node->xattrs[i];

			if (strcmp(x->data, LCFS_XATTR_SELINUX) == 0) {
				r = list_reserve(l, 1, 0);
				if (r < 0)
					return r;
				add_source(l, x, &nkeys);
			}
		}
		return 0;
	}

	/* Room for the source entries and up to 7 added ones. */
	r = list_reserve(l, (size_t)node->n_xattrs + 8, node->n_xattrs);
	if (r < 0)
		return r;
	for (size_t i = 0; i < node->n_xattrs; i++)
		add_source(l, node->xattrs[i], &nkeys);

	if (wi->flags & W_EXTERNAL) {
		/* docs/image-format.md, "Metacopy and redirect" */
		size_t mlen = 0;

		if (node->digest_set) {
			l->metacopy[0] = 0;
			l->metacopy[1] = sizeof(l->metacopy);
			l->metacopy[2] = 0;
			l->metacopy[3] = 1;
			memcpy(l->metacopy + 4, node->digest, LCFS_DIGEST_SIZE);
			mlen = sizeof(l->metacopy);
		}
		list_set(l, LCFS_OVL_PREFIX LCFS_OVL_METACOPY, (const char *)l->metacopy, mlen);
		if (node->payload != NULL && node->payload[0] != '\0') {
			size_t plen = strlen(node->payload);

			l->redirect[0] = '/';
			memcpy(l->redirect + 1, node->payload, plen);
			list_set(l, LCFS_OVL_PREFIX LCFS_OVL_REDIRECT, l->redirect, plen + 1);
		}
	}
	if (wi->flags & W_INPUT_WHITEOUT) {
		/* docs/image-format.md, "Input whiteouts" */
		list_set(l, LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_WHITEOUT, "", 0);
		list_set(l, LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUT, "", 0);
	}
	if (wi->flags & W_WHITEOUT_PARENT) {
		list_set(l, LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_WHITEOUTS, "", 0);
		list_set(l, LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUTS, "", 0);
		if (w->version >= 1) {
			list_set(l, LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_OPAQUE, "x", 1);
			list_set(l, LCFS_OVL_USER_PREFIX LCFS_OVL_OPAQUE, "x", 1);
		}
	}
	if (wi->flags & W_ROOT)
		list_set(l, LCFS_OVL_PREFIX LCFS_OVL_OPAQUE, "y", 1);
	list_sort(l);
	return 0;
}

/* ---- Shared table ---------------------------------------------------------- */

static size_t hash_set_pos(const struct hash_set *t, uint32_t h)
{
	size_t i = (h * 0x9E3779B1u) & t->mask;

	while (t->slots[i] != 0 && t->slots[i] != h)
		i = (i + 1) & t->mask;
	return i;
}

/* Adds @h (non-zero): 1 if it is new, 0 if it was there, or -ENOMEM. */
static int hash_set_add(struct hash_set *t, uint32_t h)
{
	size_t i;

	if (t->slots == NULL || (t->n + 1) * 2 > t->mask + 1) {
		size_t cap = t->slots ? (t->mask + 1) * 2 : 256;
		struct hash_set bigger = { .mask = cap - 1, .n = t->n };

		bigger.slots = lcfs_calloc_big(cap, sizeof(*bigger.slots));
		if (bigger.slots == NULL)
			return -ENOMEM;
		for (size_t j = 0; t->slots != NULL && j <= t->mask; j++) {
			if (t->slots[j] != 0)
				bigger.slots[hash_set_pos(&bigger, t->slots[j])] = t->slots[j];
		}
		free(t->slots);
		*t = bigger;
	}
	i = hash_set_pos(t, h);
	if (t->slots[i] == h)
		return 0;
	t->slots[i] = h;
	t->n++;
	return 1;
}

static bool cand_contains(const struct shared_xattrs *s, uint32_t h)
{
	if (h == 0)
		return s->cand_zero;
	if (s->cand.slots == NULL)
		return false;
	return s->cand.slots[hash_set_pos(&s->cand, h)] == h;
}

/*
 * Which pair hashes may occur more than once, with a fixed memory budget:
 * a two-probe Bloom filter of the hashes seen so far (bits per inode,
 * 64 bits an inode). A hash the filter says it has seen becomes a
 * candidate. A false positive only adds a candidate that pass 2 counts
 * once and leaves unshared; keeping every distinct hash instead would cost
 * more than the inode table on trees whose overlay xattrs (redirect,
 * metacopy) differ for every file.
 */
struct seen_filter {
	uint64_t *bits;
	uint32_t mask; /* bit count - 1 */
	size_t zeros;  /* instances of hash 0 */
};

static int seen_init(struct seen_filter *f, uint32_t n_inodes)
{
	size_t bits = 1u << 16;

	while (bits < (size_t)n_inodes * 64 && bits < ((size_t)1 << 31))
		bits <<= 1;
	f->bits = lcfs_calloc_big(bits / 64, sizeof(*f->bits));
	if (f->bits == NULL)
		return -ENOMEM;
	f->mask = (uint32_t)(bits - 1);
	f->zeros = 0;
	return 0;
}

/* Notes one instance of a pair with hash @h. */
static int note_hash(struct shared_xattrs *s, struct seen_filter *f, uint32_t h)
{
	uint32_t a = (h * 0x9E3779B1u) & f->mask;
	uint32_t b = ((h ^ (h >> 16)) * 0x85EBCA6Bu) & f->mask;
	uint64_t ma = 1ull << (a & 63), mb = 1ull << (b & 63);
	int r;

	if (h == 0) {
		if (++f->zeros >= 2)
			s->cand_zero = true;
		return 0;
	}
	if ((f->bits[a / 64] & ma) && (f->bits[b / 64] & mb)) {
		r = hash_set_add(&s->cand, h);
		return r < 0 ? r : 0;
	}
	f->bits[a / 64] |= ma;
	f->bits[b / 64] |= mb;
	return 0;
}

static struct shared_ent **table_slot(struct shared_xattrs *s, const struct wxattr *x)
{
	size_t i = x->hash & s->table_mask;

	for (;; i = (i + 1) & s->table_mask) {
		struct shared_ent *e = s->table[i];

		if (e == NULL ||
		    (e->hash == x->hash && e->key_len == x->key_len &&
		     e->value_len == x->value_len &&
		     memcmp(e->data, x->key, x->key_len) == 0 &&
		     memcmp(e->data + x->key_len, x->value, x->value_len) == 0))
			return &s->table[i];
	}
}

static int table_grow(struct shared_xattrs *s)
{
	size_t cap = s->table ? (s->table_mask + 1) * 2 : 1024;
	struct shared_ent **old = s->table;
	size_t old_cap = old ? s->table_mask + 1 : 0;

	s->table = lcfs_calloc_big(cap, sizeof(*s->table));
	if (s->table == NULL) {
		s->table = old;
		return -ENOMEM;
	}
	s->table_mask = cap - 1;
	for (size_t i = 0; i < old_cap; i++) {
		struct shared_ent *e = old[i];
		size_t j;

		if (e == NULL)
			continue;
		for (j = e->hash & s->table_mask; s->table[j] != NULL;
		     j = (j + 1) & s->table_mask)
			;
		s->table[j] = e;
	}
	free(old);
	return 0;
}

static int table_count(struct shared_xattrs *s, const struct wxattr *x)
{
	struct shared_ent **slot;
	struct shared_ent *e;
	int r;

	if ((s->n_entries + 1) * 2 > s->table_mask + 1 || s->table == NULL) {
		r = table_grow(s);
		if (r < 0)
			return r;
	}
	slot = table_slot(s, x);
	if (*slot != NULL) {
		(*slot)->count++;
		return 0;
	}
	e = malloc(sizeof(*e) + x->key_len + x->value_len);
	if (e == NULL)
		return -ENOMEM;
	e->hash = x->hash;
	e->count = 1;
	e->offset = 0;
	e->key_len = x->key_len;
	e->value_len = x->value_len;
	memcpy(e->data, x->key, x->key_len);
	memcpy(e->data + x->key_len, x->value, x->value_len);
	*slot = e;
	s->n_entries++;
	return 0;
}

/* The shared entry for @x, or NULL when @x is stored inline. */
static const struct shared_ent *shared_lookup(struct shared_xattrs *s,
					      const struct wxattr *x)
{
	struct shared_ent *e;

	if (s->table == NULL || !cand_contains(s, x->hash))
		return NULL;
	e = *table_slot(s, x);
	return (e != NULL && e->count >= 2) ? e : NULL;
}

/* Shared pairs become references, at most 128 per inode
 * (docs/image-format.md, "Shared references per inode"). */
static unsigned assign_refs(struct writer *w, struct wxattr_list *l)
{
	unsigned refs = 0;

	for (size_t j = 0; j < l->n; j++) {
		struct wxattr *x = &l->items[j];

		x->ref = refs < MAX_SHARED_REFS ? shared_lookup(w->shared, x) : NULL;
		if (x->ref != NULL)
			refs++;
	}
	return refs;
}

/* Key descending, then longer value first, then value bytes descending
 * (docs/image-format.md, "Shared xattrs"). */
static int shared_order(const void *pa, const void *pb)
{
	const struct shared_ent *a = *(const struct shared_ent *const *)pa;
	const struct shared_ent *b = *(const struct shared_ent *const *)pb;
	int c = lcfs_bytes_cmp(a->data, a->key_len, b->data, b->key_len);

	if (c != 0)
		return -c;
	if (a->value_len != b->value_len)
		return a->value_len > b->value_len ? -1 : 1;
	return -memcmp(a->data + a->key_len, b->data + b->key_len, a->value_len);
}

static size_t entry_size(size_t name_len, size_t value_len)
{
	return lcfs_round_up(sizeof(struct lcfs_erofs_xattr_entry) + name_len + value_len, 4);
}

static bool is_acl_key(const struct wxattr *x)
{
	return (x->index == LCFS_XATTR_INDEX_POSIX_ACL_ACCESS ||
		x->index == LCFS_XATTR_INDEX_POSIX_ACL_DEFAULT) &&
	       x->key_len == x->prefix_len;
}

int lcfs_writer_share_xattrs(struct writer *w)
{
	struct shared_xattrs *s;
	uint64_t offset = 0;
	int r;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	w->shared = s;

	/* Pass 1: which pair hashes may occur more than once. */
	{
		struct seen_filter seen;

		r = seen_init(&seen, w->n_inodes);
		if (r < 0)
			return r;
		for (uint32_t i = 0; i < w->n_inodes; i++) {
			lcfs_writer_prefetch(w, i);
			r = lcfs_writer_xattrs_of(w, &w->inodes[i], &w->xl);
			for (size_t j = 0; r == 0 && j < w->xl.n; j++) {
				const struct wxattr *x = &w->xl.items[j];

				r = note_hash(s, &seen, x->hash);
				if (is_acl_key(x))
					w->has_acl = true;
			}
			if (r < 0) {
				free(seen.bits);
				return r;
			}
		}
		free(seen.bits);
	}

	/* Pass 2: exact counts of the candidates. */
	for (uint32_t i = 0; i < w->n_inodes; i++) {
		lcfs_writer_prefetch(w, i);
		r = lcfs_writer_xattrs_of(w, &w->inodes[i], &w->xl);
		if (r < 0)
			return r;
		for (size_t j = 0; j < w->xl.n; j++) {
			const struct wxattr *x = &w->xl.items[j];

			if (!cand_contains(s, x->hash))
				continue;
			r = table_count(s, x);
			if (r < 0)
				return r;
		}
	}

	if (s->n_entries > 0) {
		s->sorted = malloc(s->n_entries * sizeof(*s->sorted));
		if (s->sorted == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; s->table != NULL && i <= s->table_mask; i++) {
		if (s->table[i] != NULL && s->table[i]->count >= 2)
			s->sorted[s->n_sorted++] = s->table[i];
	}
	if (s->n_sorted > 1) /* qsort() must not get a NULL array */
		qsort(s->sorted, s->n_sorted, sizeof(*s->sorted), shared_order);
	for (size_t i = 0; i < s->n_sorted; i++) {
		struct shared_ent *e = s->sorted[i];
		struct wxattr x = { .key = e->data, .key_len = e->key_len };

		set_prefix(&x);
		e->offset = offset;
		offset += entry_size(e->key_len - x.prefix_len, e->value_len);
		if (offset > UINT32_MAX)
			return lcfs_error_set(w->err, EFBIG, "shared xattr table too large");
	}
	w->shared_size = offset;
	return 0;
}

int lcfs_writer_xattr_size(struct writer *w, struct winode *wi)
{
	size_t size = sizeof(struct lcfs_erofs_xattr_ibody_header);
	int r;

	r = lcfs_writer_xattrs_of(w, wi, &w->xl);
	if (r < 0)
		return r;
	wi->xattr_size = 0;
	if (w->xl.n == 0)
		return 0;
	size += 4 * assign_refs(w, &w->xl);
	for (size_t j = 0; j < w->xl.n; j++) {
		const struct wxattr *x = &w->xl.items[j];

		if (x->ref == NULL)
			size += entry_size(x->key_len - x->prefix_len, x->value_len);
	}
	/* i_xattr_icount is 16 bits (docs/image-format.md, "Inline xattrs"). */
	if ((size - sizeof(struct lcfs_erofs_xattr_ibody_header)) / 4 + 1 > UINT16_MAX) {
		cleanup_free char *path = lcfs_writer_path(w, wi);

		return lcfs_error_set(w->err, EINVAL, "'%s': too many xattrs",
				      path ? path : "?");
	}
	wi->xattr_size = size;
	return 0;
}

static int emit_entry(struct wbuf *out, uint8_t index, const char *name,
		      size_t name_len, const char *value, size_t value_len)
{
	struct lcfs_erofs_xattr_entry e = {
		.e_name_len = name_len,
		.e_name_index = index,
		.e_value_size = htole16(value_len),
	};
	size_t total = sizeof(e) + name_len + value_len;
	int r;

	r = lcfs_wbuf_put(out, &e, sizeof(e));
	if (r == 0)
		r = lcfs_wbuf_put(out, name, name_len);
	if (r == 0)
		r = lcfs_wbuf_put(out, value, value_len);
	if (r == 0)
		r = lcfs_wbuf_zero(out, lcfs_round_up(total, 4) - total);
	return r;
}

int lcfs_writer_emit_xattrs(struct writer *w, const struct winode *wi,
			    struct wbuf *out)
{
	struct lcfs_erofs_xattr_ibody_header h = { 0 };
	uint32_t filter = 0;
	uint32_t base = w->inodes_end % LCFS_BLKSZ;
	int r;

	if (wi->xattr_size == 0)
		return 0;
	r = lcfs_writer_xattrs_of(w, wi, &w->xl);
	if (r < 0)
		return r;
	h.h_shared_count = assign_refs(w, &w->xl);

	/* Bloom filter over every xattr, stored inverted (docs/image-format.md,
	 * "Xattr name filter"). */
	for (size_t j = 0; j < w->xl.n; j++) {
		const struct wxattr *x = &w->xl.items[j];
		uint32_t bit = XXH32(x->key + x->prefix_len, x->key_len - x->prefix_len,
				     LCFS_XATTR_FILTER_SEED + x->index) &
			       31;

		filter |= 1u << bit;
	}
	h.h_name_filter = htole32(~filter);
	r = lcfs_wbuf_put(out, &h, sizeof(h));
	for (size_t j = 0; r == 0 && j < w->xl.n; j++) {
		const struct wxattr *x = &w->xl.items[j];
		uint32_t id;

		if (x->ref == NULL)
			continue;
		id = htole32((base + x->ref->offset) / 4);
		r = lcfs_wbuf_put(out, &id, sizeof(id));
	}
	for (size_t j = 0; r == 0 && j < w->xl.n; j++) {
		const struct wxattr *x = &w->xl.items[j];

		if (x->ref == NULL)
			r = emit_entry(out, x->index, x->key + x->prefix_len,
				       x->key_len - x->prefix_len, x->value, x->value_len);
	}
	return r;
}

int lcfs_writer_emit_shared_table(struct writer *w, struct wbuf *out)
{
	struct shared_xattrs *s = w->shared;

	for (size_t i = 0; i < s->n_sorted; i++) {
		const struct shared_ent *e = s->sorted[i];
		struct wxattr x = { .key = e->data, .key_len = e->key_len };
		int r;

		set_prefix(&x);
		r = emit_entry(out, x.index, e->data + x.prefix_len,
			       e->key_len - x.prefix_len, e->data + e->key_len,
			       e->value_len);
		if (r < 0)
			return r;
	}
	return 0;
}

void lcfs_writer_xattrs_free(struct writer *w)
{
	struct shared_xattrs *s = w->shared;

	if (s != NULL) {
		for (size_t i = 0; s->table != NULL && i <= s->table_mask; i++)
			free(s->table[i]);
		free(s->table);
		free(s->sorted);
		free(s->cand.slots);
		free(s);
		w->shared = NULL;
	}
	free(w->xl.items);
	free(w->xl.keybuf);
}
