/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Image reader: turns a composefs image back into a node tree.
 *
 * The format is that of docs/image-format.md; the reading rules are in
 * (docs/image-format.md, "Reading an image"), and what a dump shows of the
 * result in (docs/dumpfile.md, "What an image gives back").
 *
 * The input is untrusted (this file is a fuzz target), so every offset,
 * size and count is checked before it is used, and the amount of work is
 * bounded by the size of the image:
 *  - every nid is built at most once; a nid met again is a hard link (a
 *    directory met again is an error, so there are no loops);
 *  - the tree is walked with an explicit stack, so deep trees cannot
 *    exhaust the C stack;
 *  - every byte of metadata decoded (inode records, xattr entries, shared
 *    xattr references, directory entries, inline data) is charged to a
 *    budget equal to the image size. In an image written by composefs
 *    these structures never overlap, so the budget is never reached; an
 *    image whose structures point at the same bytes over and over (a
 *    "metadata bomb") is rejected instead of expanding without limit.
 */
#include "lcfs-node.h"
#include "lcfs-tools.h"
#include "erofs-format.h"
#include "erofs-xattr-names.h"

#include <endian.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAX_CONTENT LCFS_INLINE_CONTENT_MAX

/* ---- Little-endian helpers ------------------------------------------------ */

static inline uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* ---- A small open-addressing map from u64 keys to pointers ---------------- */

/* Used for the decoded shared xattrs, by id. */

#define MAP_EMPTY UINT64_MAX

struct map_slot {
	uint64_t key;
	void *value;
};

struct u64map {
	struct map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

static size_t map_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k;
}

static void *map_get(const struct u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = map_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key)
			return m->slots[i].value;
		if (m->slots[i].key == MAP_EMPTY)
			return NULL;
	}
}

static void map_insert_slot(struct map_slot *slots, size_t cap, uint64_t key,
			    void *value)
{
	size_t i = map_hash(key) & (cap - 1);

	while (slots[i].key != MAP_EMPTY && slots[i].key != key)
		i = (i + 1) & (cap - 1);
	slots[i].key = key;
	slots[i].value = value;
}

/* Inserts or replaces. Keys are shared xattr ids (32-bit), never
 * MAP_EMPTY. 0 or -ENOMEM. */
static int map_put(struct u64map *m, uint64_t key, void *value)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct map_slot *slots;

		if (cap < m->cap || cap > SIZE_MAX / sizeof(*slots))
			return -ENOMEM;
		slots = malloc(cap * sizeof(*slots));
		if (slots == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < cap; i++)
			slots[i].key = MAP_EMPTY;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key != MAP_EMPTY)
				map_insert_slot(slots, cap, m->slots[i].key,
						m->slots[i].value);
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	if (map_get(m, key) == NULL)
		m->n++;
	map_insert_slot(m->slots, m->cap, key, value);
	return 0;
}

/* ---- The nodes built so far, by nid ----------------------------------------- */

/*
 * A two-level table indexed by nid, with leaves allocated on first use.
 * Nids of an image are dense and visited with locality (siblings have
 * neighbouring nids), so this beats a hash table, and its size is bounded
 * by the image: at most one pointer per 32-byte slot.
 */
#define NID_LEAF_BITS 9
#define NID_LEAF_SIZE (1u << NID_LEAF_BITS)

struct nid_table {
	void ***leaves;
	uint64_t n_leaves;
};

static int nid_table_init(struct nid_table *t, uint64_t max_nid)
{
	t->n_leaves = (max_nid >> NID_LEAF_BITS) + 1;
	t->leaves = calloc(t->n_leaves, sizeof(*t->leaves));
	return t->leaves ? 0 : -ENOMEM;
}

/* @nid must be <= the max_nid given to nid_table_init(). */
static void *nid_table_get(const struct nid_table *t, uint64_t nid)
{
	void **leaf = t->leaves[nid >> NID_LEAF_BITS];

	return leaf ? leaf[nid & (NID_LEAF_SIZE - 1)] : NULL;
}

static int nid_table_put(struct nid_table *t, uint64_t nid, void *value)
{
	void ***leaf = &t->leaves[nid >> NID_LEAF_BITS];

	if (*leaf == NULL) {
		*leaf = calloc(NID_LEAF_SIZE, sizeof(**leaf));
		if (*leaf == NULL)
			return -ENOMEM;
	}
	(*leaf)[nid & (NID_LEAF_SIZE - 1)] = value;
	return 0;
}

static void nid_table_release(struct nid_table *t)
{
	for (uint64_t i = 0; t->leaves != NULL && i < t->n_leaves; i++)
		free(t->leaves[i]);
	free(t->leaves);
}

/* ---- Reader state ------------------------------------------------------------ */

/* What an xattr read from the image does to the node (docs/image-format.md,
 * "What the reader rebuilds"). */
enum xattr_kind {
	XATTR_STORE,    /* stored, possibly unescaped */
	XATTR_DROP,     /* hidden composefs/overlay bookkeeping */
	XATTR_REDIRECT, /* payload of a regular file */
	XATTR_METACOPY, /* digest of a regular file */
	XATTR_WHITEOUT, /* escaped whiteout marker: restores a char 0/0 */
};

/* A decoded shared xattr, cached by its id so that a label shared by many
 * inodes is decoded once. */
struct shared_xattr {
	enum xattr_kind kind;
	struct lcfs_xattr *x; /* own reference; NULL for XATTR_DROP */
};

struct inode {
	uint64_t nid;
	uint64_t off;      /* absolute offset of the record */
	uint32_t isz;      /* 32 or 64 */
	uint32_t layout;   /* LCFS_EROFS_LAYOUT_* */
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t u;        /* i_u */
	uint64_t size;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t xattr_off;  /* absolute */
	uint32_t xattr_size; /* 0: no xattrs */
	uint64_t tail_off;   /* absolute offset of the inline data */
};

/* File data of a flat inode: @nblocks block-resident chunks starting at
 * @blocks, then an optional inline @tail. */
struct extent {
	const uint8_t *blocks;
	uint64_t nblocks;
	const uint8_t *tail;
	size_t tail_len;
	uint64_t size;
};

struct dir_frame {
	struct lcfs_node_s *node; /* borrowed, owned by the tree */
	uint64_t nid;
	struct extent ext;
	uint64_t nchunks;
	uint64_t next_chunk;
	const uint8_t *chunk;     /* current chunk */
	size_t chunk_len;
	uint32_t nent;            /* entries in the current chunk */
	uint32_t ent;             /* next entry in the current chunk */
	const uint8_t *prev_name; /* previous entry, for the order check */
	size_t prev_len;
	bool toplevel;
};

struct reader {
	const uint8_t *data;
	size_t size;
	uint64_t meta_off;
	uint64_t max_nid;  /* largest nid whose compact record fits */
	uint64_t xattr_off;
	int64_t build_time;
	uint32_t build_time_nsec;
	uint64_t budget;
	const char *const *toplevel;
	struct nid_table nodes; /* nid -> node, or &dropped_marker */
	struct u64map shared; /* shared id -> struct shared_xattr */
	struct lcfs_xattr_intern interned; /* identical pairs share one entry */
	struct dir_frame *stack;
	size_t depth;
	size_t stack_cap;
	struct lcfs_error *err;
};

/* Value stored in the nid map for an inode that was read and dropped (a
 * whiteout char device). */
static char dropped_marker;

static bool is_whiteout(const struct lcfs_node_s *n)
{
	return (n->mode & S_IFMT) == S_IFCHR && n->rdev == 0;
}

#define INODE_ERR(r, nid, code, fmt, ...)                                         \
	lcfs_error_set((r)->err, code, "inode %llu: " fmt, (unsigned long long)(nid), \
		       ##__VA_ARGS__)

static int oom(struct reader *r)
{
	return lcfs_error_set(r->err, ENOMEM, "out of memory");
}

/* Charges @n bytes of decoded metadata to the budget (see the top of this
 * file). */
static int charge(struct reader *r, uint64_t nid, uint64_t n)
{
	if (n > r->budget)
		return INODE_ERR(r, nid, EINVAL,
				 "metadata refers to the same bytes too often "
				 "(more decoded than the image holds)");
	r->budget -= n;
	return 0;
}

/* True if [off, off + len) lies inside the image. */
static bool in_image(const struct reader *r, uint64_t off, uint64_t len)
{
	return off <= r->size && len <= r->size - off;
}

/* ---- Inodes ------------------------------------------------------------------ */

static int read_inode(struct reader *r, uint64_t nid, struct inode *ino)
{
	uint16_t format, icount;

	memset(ino, 0, sizeof(*ino));
	ino->nid = nid;
	/* The record must be inside the image (docs/image-format.md, "Reader
	 * checks"). */
	if (r->size - r->meta_off < sizeof(struct lcfs_erofs_inode_compact) ||
	    nid > r->max_nid)
		return INODE_ERR(r, nid, EINVAL, "outside the image");
	ino->off = r->meta_off + nid * LCFS_SLOT;
	format = get16(r->data + ino->off);
	if (format & ~(LCFS_EROFS_INODE_EXTENDED |
		       (LCFS_EROFS_LAYOUT_MASK << LCFS_EROFS_LAYOUT_SHIFT)))
		return INODE_ERR(r, nid, EINVAL, "unsupported inode format 0x%x",
				 format);
	ino->layout = (format >> LCFS_EROFS_LAYOUT_SHIFT) & LCFS_EROFS_LAYOUT_MASK;
	if (ino->layout != LCFS_EROFS_LAYOUT_FLAT_PLAIN &&
	    ino->layout != LCFS_EROFS_LAYOUT_FLAT_INLINE &&
	    ino->layout != LCFS_EROFS_LAYOUT_CHUNK_BASED)
		return INODE_ERR(r, nid, EINVAL, "unsupported data layout %u",
				 ino->layout);

	if (format & LCFS_EROFS_INODE_EXTENDED) {
		struct lcfs_erofs_inode_extended e;

		ino->isz = sizeof(e);
		if (!in_image(r, ino->off, sizeof(e)))
			return INODE_ERR(r, nid, EINVAL,
					 "extended inode past the end of the image");
		memcpy(&e, r->data + ino->off, sizeof(e));
		icount = le16toh(e.i_xattr_icount);
		ino->mode = le16toh(e.i_mode);
		ino->size = le64toh(e.i_size);
		ino->u = le32toh(e.i_u);
		ino->uid = le32toh(e.i_uid);
		ino->gid = le32toh(e.i_gid);
		ino->mtime = (int64_t)le64toh(e.i_mtime);
		ino->mtime_nsec = le32toh(e.i_mtime_nsec);
		ino->nlink = le32toh(e.i_nlink);
	} else {
		struct lcfs_erofs_inode_compact c;

		ino->isz = sizeof(c);
		memcpy(&c, r->data + ino->off, sizeof(c));
		icount = le16toh(c.i_xattr_icount);
		ino->mode = le16toh(c.i_mode);
		ino->size = le32toh(c.i_size);
		ino->u = le32toh(c.i_u);
		ino->uid = le16toh(c.i_uid);
		ino->gid = le16toh(c.i_gid);
		ino->nlink = le16toh(c.i_nlink);
		/* Compact inodes carry no time (docs/image-format.md,
		 * "Compact record"). */
		ino->mtime = r->build_time;
		ino->mtime_nsec = r->build_time_nsec;
	}
	if (!lcfs_mode_valid(ino->mode))
		return INODE_ERR(r, nid, EINVAL, "invalid file type in mode 0%o",
				 ino->mode);

	/* icount counts 4-byte units after the 12-byte header
	 * (docs/image-format.md, "Inline xattrs"). */
	ino->xattr_off = ino->off + ino->isz;
	ino->xattr_size = icount ? 12 + 4 * ((uint32_t)icount - 1) : 0;
	if (!in_image(r, ino->xattr_off, ino->xattr_size))
		return INODE_ERR(r, nid, EINVAL, "xattr area past the end of the image");
	ino->tail_off = ino->xattr_off + ino->xattr_size;
	return charge(r, nid, ino->isz);
}

/* Locates the data of a flat inode (docs/image-format.md, "The i_u field",
 * "Inline tails", "What the reader rebuilds"). */
static int get_extent(struct reader *r, const struct inode *ino, struct extent *e)
{
	const uint64_t image_blocks = r->size / LCFS_BLKSZ;
	uint64_t nb = ino->size / LCFS_BLKSZ + (ino->size % LCFS_BLKSZ != 0);

	memset(e, 0, sizeof(*e));
	e->size = ino->size;
	if (ino->layout == LCFS_EROFS_LAYOUT_FLAT_INLINE && nb > 0) {
		/* The last (possibly full) block lives inline after the
		 * xattrs and, as the kernel requires, inside one block. */
		nb--;
		e->tail_len = ino->size - nb * LCFS_BLKSZ;
		if (!in_image(r, ino->tail_off, e->tail_len))
			return INODE_ERR(r, ino->nid, EINVAL,
					 "inline data past the end of the image");
		if (ino->tail_off % LCFS_BLKSZ + e->tail_len > LCFS_BLKSZ)
			return INODE_ERR(r, ino->nid, EINVAL,
					 "inline data crosses a block boundary");
		e->tail = r->data + ino->tail_off;
	}
	if (nb > 0) {
		if (ino->u > image_blocks || nb > image_blocks - ino->u)
			return INODE_ERR(r, ino->nid, EINVAL,
					 "data block %u (+%llu) past the end of the image",
					 ino->u, (unsigned long long)nb);
		e->blocks = r->data + (uint64_t)ino->u * LCFS_BLKSZ;
	}
	e->nblocks = nb;
	return 0;
}

static uint64_t extent_nchunks(const struct extent *e)
{
	return e->nblocks + (e->tail_len > 0);
}

static const uint8_t *extent_chunk(const struct extent *e, uint64_t i, size_t *len)
{
	uint64_t left;

	if (i == e->nblocks) {
		*len = e->tail_len;
		return e->tail;
	}
	left = e->size - i * LCFS_BLKSZ;
	*len = left < LCFS_BLKSZ ? left : LCFS_BLKSZ;
	return e->blocks + i * LCFS_BLKSZ;
}

static void extent_copy(const struct extent *e, uint8_t *dst)
{
	for (uint64_t i = 0; i < extent_nchunks(e); i++) {
		size_t len;
		const uint8_t *p = extent_chunk(e, i, &len);

		memcpy(dst, p, len);
		dst += len;
	}
}

/* ---- Xattrs ------------------------------------------------------------------- */

#define KEY_BUF_SIZE (32 + 255 + 1)

static bool key_is(const char *key, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(key, s, len) == 0;
}

static bool key_has_prefix(const char *key, size_t len, const char *prefix)
{
	size_t plen = strlen(prefix);

	return len >= plen && memcmp(key, prefix, plen) == 0;
}

/*
 * What a key read from the image means (docs/image-format.md, "What the
 * reader rebuilds"). For stored keys
 * *@skip is the number of leading bytes of @key to leave out so that the
 * rest is the unescaped key: "trusted.overlay.overlay.X" is stored as
 * "trusted.overlay.X" (the key buffer is rewritten in place).
 */
static enum xattr_kind classify_xattr(char *key, size_t *len)
{
	const size_t esc = strlen(LCFS_OVL_ESCAPED_PREFIX), ovl = strlen(LCFS_OVL_PREFIX);

	if (key_is(key, *len, LCFS_OVL_PREFIX LCFS_OVL_REDIRECT))
		return XATTR_REDIRECT;
	if (key_is(key, *len, LCFS_OVL_PREFIX LCFS_OVL_METACOPY))
		return XATTR_METACOPY;
	if (key_is(key, *len, LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_WHITEOUTS) ||
	    key_is(key, *len, LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUT) ||
	    key_is(key, *len, LCFS_OVL_USER_PREFIX LCFS_OVL_WHITEOUTS))
		return XATTR_DROP;
	if (key_has_prefix(key, *len, LCFS_OVL_ESCAPED_PREFIX)) {
		bool whiteout = key_is(key, *len, LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_WHITEOUT);

		/* Remove one "overlay." level. */
		memmove(key + ovl, key + esc, *len - esc);
		*len -= esc - ovl;
		return whiteout ? XATTR_WHITEOUT : XATTR_STORE;
	}
	if (key_has_prefix(key, *len, LCFS_OVL_PREFIX))
		return XATTR_DROP;
	return XATTR_STORE;
}

/* Builds the full key of an entry into @key (KEY_BUF_SIZE bytes). Returns
 * its length or -errno. */
static ssize_t entry_key(struct reader *r, uint64_t nid, const uint8_t *entry,
			 char *key)
{
	uint8_t name_len = entry[0], index = entry[1];
	const char *prefix;
	size_t plen;

	if (index >= LCFS_XATTR_INDEX_COUNT)
		return INODE_ERR(r, nid, EINVAL, "xattr name index %u is invalid", index);
	prefix = lcfs_xattr_prefixes[index].name;
	plen = lcfs_xattr_prefixes[index].len;
	if (plen + name_len == 0)
		return INODE_ERR(r, nid, EINVAL, "xattr with an empty name");
	if (memchr(entry + 4, '\0', name_len) != NULL)
		return INODE_ERR(r, nid, EINVAL, "xattr name contains a NUL byte");
	memcpy(key, prefix, plen);
	memcpy(key + plen, entry + 4, name_len);
	key[plen + name_len] = '\0';
	return plen + name_len;
}

/* Decodes the entry at @entry (already bounds-checked) into its kind and
 * entry. *@xp gets a new reference (NULL for XATTR_DROP). */
static int decode_entry(struct reader *r, uint64_t nid, const uint8_t *entry,
			enum xattr_kind *kind, struct lcfs_xattr **xp)
{
	const uint8_t *value = entry + 4 + entry[0];
	size_t vlen = get16(entry + 2);
	char key[KEY_BUF_SIZE];
	ssize_t klen = entry_key(r, nid, entry, key);
	size_t len;
	struct lcfs_xattr *x;
	int err = 0;

	if (klen < 0)
		return klen;
	len = klen;
	*kind = classify_xattr(key, &len);
	*xp = NULL;
	switch (*kind) {
	case XATTR_DROP:
		return 0;
	case XATTR_REDIRECT:
	case XATTR_METACOPY:
		/* Only the value matters; not worth interning. */
		x = lcfs_xattr_new(key, len, (const char *)value, vlen, &err);
		break;
	default:
		x = lcfs_xattr_intern_get(&r->interned, key, len, (const char *)value, vlen,
					  &err);
		if (x != NULL)
			lcfs_xattr_ref(x);
		break;
	}
	if (x == NULL) {
		if (err == -ENOMEM)
			return oom(r);
		return INODE_ERR(r, nid, EINVAL, "xattr name '%.*s' too long",
				 (int)len, key);
	}
	*xp = x;
	return 0;
}

/* A regular file's payload is the redirect value minus one leading '/'.
 * Exactly the stored bytes are used (the reference reads up to two bytes
 * past the value: not reproduced; docs/compatibility.md, "Image reader"). */
static int apply_redirect(struct reader *r, uint64_t nid, struct lcfs_node_s *node,
			  const struct lcfs_xattr *x)
{
	const char *v = lcfs_xattr_value(x);
	size_t len = x->value_len;
	char *payload;

	if (len > 1 && v[0] == '/') {
		v++;
		len--;
	}
	len = strnlen(v, len);
	if (len > LCFS_MAX_PAYLOAD)
		return INODE_ERR(r, nid, EINVAL, "redirect of %zu bytes is too long",
				 len);
	payload = NULL;
	if (len > 0) {
		payload = strndup(v, len);
		if (payload == NULL)
			return oom(r);
	}
	lcfs_node_take_payload(node, payload);
	return 0;
}

static int apply_xattr(struct reader *r, uint64_t nid, struct lcfs_node_s *node,
		       enum xattr_kind kind, struct lcfs_xattr *x)
{
	bool reg = (node->mode & S_IFMT) == S_IFREG;
	uint16_t before;
	int ret;

	switch (kind) {
	case XATTR_DROP:
		return 0;
	case XATTR_REDIRECT:
		return reg ? apply_redirect(r, nid, node, x) : 0;
	case XATTR_METACOPY:
		/* 4-byte header (not checked) then the SHA-256 digest. */
		if (reg && x->value_len == 4 + LCFS_DIGEST_SIZE) {
			memcpy(node->digest, lcfs_xattr_value(x) + 4, LCFS_DIGEST_SIZE);
			node->digest_set = true;
		}
		return 0;
	case XATTR_WHITEOUT:
		if (reg) {
			/* An input whiteout, stored escaped: back to char 0/0
			 * (docs/image-format.md, "Input whiteouts", "What the
			 * reader rebuilds"). */
			node->mode = (node->mode & ~(uint32_t)S_IFMT) | S_IFCHR;
			node->rdev = 0;
			lcfs_node_take_content(node, NULL, 0);
			lcfs_node_take_payload(node, NULL);
			node->digest_set = false;
			return 0;
		}
		break;
	case XATTR_STORE:
		break;
	}
	before = node->n_xattrs;
	ret = lcfs_node_set_xattr_entry(node, x);
	if (ret == -ENOMEM)
		return oom(r);
	if (ret < 0)
		return INODE_ERR(r, nid, EINVAL, "xattrs exceed the size limit of %d bytes",
				 LCFS_INODE_EXTERNAL_XATTR_MAX);
	if (node->n_xattrs == before)
		return INODE_ERR(r, nid, EINVAL, "duplicate xattr '%s'",
				 lcfs_xattr_key(x));
	return 0;
}

static void shared_free(struct shared_xattr *s)
{
	if (s != NULL) {
		lcfs_xattr_unref(s->x);
		free(s);
	}
}

/* Decoded shared xattr @id (borrowed from the cache). */
static int get_shared(struct reader *r, uint64_t nid, uint32_t id,
		      struct shared_xattr **out)
{
	/* Ids count 4-byte units from the xattr block (docs/image-format.md,
	 * "Shared xattrs"). */
	uint64_t off = r->xattr_off + (uint64_t)id * 4;
	struct shared_xattr *s = map_get(&r->shared, id);
	uint64_t esz;
	int ret;

	if (s != NULL) {
		*out = s;
		return 0;
	}
	if (!in_image(r, off, sizeof(struct lcfs_erofs_xattr_entry)))
		return INODE_ERR(r, nid, EINVAL, "shared xattr %u past the end of the image",
				 id);
	esz = 4 + (uint64_t)r->data[off] + get16(r->data + off + 2);
	if (!in_image(r, off, esz))
		return INODE_ERR(r, nid, EINVAL,
				 "shared xattr %u entry past the end of the image", id);
	ret = charge(r, nid, esz);
	if (ret < 0)
		return ret;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return oom(r);
	ret = decode_entry(r, nid, r->data + off, &s->kind, &s->x);
	if (ret < 0) {
		free(s);
		return ret;
	}
	ret = map_put(&r->shared, id, s);
	if (ret < 0) {
		shared_free(s);
		return oom(r);
	}
	*out = s;
	return 0;
}

/* Layout of docs/image-format.md, "Inline xattrs"; order as the reference
 * reads it: the inline entries in on-disk order, then the shared ones in
 * the order listed. */
static int read_xattrs(struct reader *r, const struct inode *ino,
		       struct lcfs_node_s *node)
{
	const uint8_t *area = r->data + ino->xattr_off;
	uint32_t shared_count, pos;
	int ret;

	if (ino->xattr_size == 0)
		return 0;
	shared_count = area[offsetof(struct lcfs_erofs_xattr_ibody_header,
				     h_shared_count)];
	pos = sizeof(struct lcfs_erofs_xattr_ibody_header) + 4 * shared_count;
	if (pos > ino->xattr_size)
		return INODE_ERR(r, ino->nid, EINVAL,
				 "%u shared xattrs do not fit in the xattr area",
				 shared_count);
	ret = charge(r, ino->nid, pos);
	if (ret < 0)
		return ret;

	/* Every inline entry is read, including a last one of exactly 4
	 * bytes (empty name after a prefix, empty value), which the
	 * reference skips. */
	while (ino->xattr_size - pos >= sizeof(struct lcfs_erofs_xattr_entry)) {
		const uint8_t *entry = area + pos;
		uint32_t esz = 4 + entry[0] + get16(entry + 2);
		enum xattr_kind kind;
		struct lcfs_xattr *x;

		if (esz > ino->xattr_size - pos)
			return INODE_ERR(r, ino->nid, EINVAL,
					 "xattr entry at offset %u past the end of the xattr area",
					 pos);
		ret = charge(r, ino->nid, esz);
		if (ret < 0)
			return ret;
		ret = decode_entry(r, ino->nid, entry, &kind, &x);
		if (ret < 0)
			return ret;
		ret = apply_xattr(r, ino->nid, node, kind, x);
		lcfs_xattr_unref(x);
		if (ret < 0)
			return ret;
		pos += (esz + 3) & ~3u;
	}

	for (uint32_t i = 0; i < shared_count; i++) {
		uint32_t id = get32(area + sizeof(struct lcfs_erofs_xattr_ibody_header) +
				    4 * i);
		struct shared_xattr *s = NULL;

		ret = charge(r, ino->nid, 4);
		if (ret < 0)
			return ret;
		ret = get_shared(r, ino->nid, id, &s);
		if (ret < 0)
			return ret;
		ret = apply_xattr(r, ino->nid, node, s->kind, s->x);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- Nodes -------------------------------------------------------------------- */

static int read_symlink(struct reader *r, const struct inode *ino,
			struct lcfs_node_s *node)
{
	struct extent e;
	char *target;
	int ret;

	if (ino->size == 0 || ino->size > LCFS_MAX_PAYLOAD)
		return INODE_ERR(r, ino->nid, EINVAL, "symlink size %llu is invalid",
				 (unsigned long long)ino->size);
	ret = get_extent(r, ino, &e);
	if (ret == 0)
		ret = charge(r, ino->nid, ino->size);
	if (ret < 0)
		return ret;
	target = malloc(ino->size + 1);
	if (target == NULL)
		return oom(r);
	extent_copy(&e, (uint8_t *)target);
	target[ino->size] = '\0';
	if (strlen(target) != ino->size) {
		free(target);
		return INODE_ERR(r, ino->nid, EINVAL, "symlink target contains a NUL byte");
	}
	lcfs_node_take_payload(node, target);
	return 0;
}

static int read_content(struct reader *r, const struct inode *ino,
			struct lcfs_node_s *node)
{
	struct extent e;
	uint8_t *content;
	int ret;

	if (ino->size == 0)
		return 0;
	/* External files: the chunk map only has holes; not inspected. */
	if (ino->layout == LCFS_EROFS_LAYOUT_CHUNK_BASED)
		return 0;
	if (ino->size > MAX_CONTENT)
		return INODE_ERR(r, ino->nid, EINVAL,
				 "inline file of %llu bytes is larger than %d bytes",
				 (unsigned long long)ino->size, MAX_CONTENT);
	ret = get_extent(r, ino, &e);
	if (ret == 0)
		ret = charge(r, ino->nid, ino->size);
	if (ret < 0)
		return ret;
	content = malloc(ino->size);
	if (content == NULL)
		return oom(r);
	extent_copy(&e, content);
	lcfs_node_take_content(node, content, ino->size);
	return 0;
}

/*
 * Builds the node of inode @nid. Returns 0 with *@out = NULL if the inode
 * is a whiteout (char device 0/0: dropped, docs/image-format.md, "What the
 * reader rebuilds"). For a directory, *@ext receives its data.
 */
static int build_node(struct reader *r, uint64_t nid, struct lcfs_node_s **out,
		      struct extent *ext)
{
	struct lcfs_node_s *node;
	struct inode ino;
	uint32_t type;
	int ret;

	*out = NULL;
	ret = read_inode(r, nid, &ino);
	if (ret < 0)
		return ret;
	type = ino.mode & S_IFMT;
	if (ino.layout == LCFS_EROFS_LAYOUT_CHUNK_BASED && type != S_IFREG)
		return INODE_ERR(r, nid, EINVAL,
				 "chunk-based layout on a file that is not regular");
	if (type == S_IFCHR && ino.u == 0) {
		/* A whiteout is dropped, so a second name could not be
		 * resolved to anything: refuse the image instead. */
		if (ino.nlink > 1)
			return INODE_ERR(r, nid, EINVAL,
					 "whiteout (character device 0/0) with %u links",
					 ino.nlink);
		return 0;
	}

	node = lcfs_node_new();
	if (node == NULL)
		return oom(r);
	node->mode = ino.mode;
	node->nlink = ino.nlink;
	node->uid = ino.uid;
	node->gid = ino.gid;
	node->size = ino.size;
	node->mtime_sec = ino.mtime;
	node->mtime_nsec = ino.mtime_nsec;
	if (type == S_IFCHR || type == S_IFBLK)
		node->rdev = ino.u;

	switch (type) {
	case S_IFDIR:
		ret = get_extent(r, &ino, ext);
		break;
	case S_IFLNK:
		ret = read_symlink(r, &ino, node);
		break;
	case S_IFREG:
		ret = read_content(r, &ino, node);
		break;
	default:
		ret = 0;
		break;
	}
	if (ret == 0)
		ret = read_xattrs(r, &ino, node);
	/* An escaped whiteout is a whiteout again now: same rule. */
	if (ret == 0 && type == S_IFREG && is_whiteout(node) && node->nlink > 1)
		ret = INODE_ERR(r, nid, EINVAL,
				"whiteout (character device 0/0) with %u links",
				node->nlink);
	if (ret < 0) {
		lcfs_node_unref(node);
		return ret;
	}
	*out = node;
	return 0;
}

/* ---- Directories ---------------------------------------------------------------- */

static int push_dir(struct reader *r, struct lcfs_node_s *node, uint64_t nid,
		    const struct extent *ext, bool toplevel)
{
	struct dir_frame *f;

	f = lcfs_array_reserve(r->stack, r->depth, &r->stack_cap, sizeof(*f), 64);
	if (f == NULL)
		return oom(r);
	r->stack = f;
	f = &r->stack[r->depth++];
	memset(f, 0, sizeof(*f));
	f->node = node;
	f->nid = nid;
	f->ext = *ext;
	f->nchunks = extent_nchunks(ext);
	f->toplevel = toplevel;
	return 0;
}

#define DIR_ERR(r, f, fmt, ...)                                                     \
	lcfs_error_set((r)->err, EINVAL, "directory inode %llu, block %llu: " fmt,  \
		       (unsigned long long)(f)->nid,                                \
		       (unsigned long long)((f)->next_chunk - 1), ##__VA_ARGS__)

/* Opens the next dirent chunk (docs/image-format.md, "Directory
 * entries"). */
static int open_chunk(struct reader *r, struct dir_frame *f)
{
	uint16_t first;

	f->chunk = extent_chunk(&f->ext, f->next_chunk++, &f->chunk_len);
	if (f->chunk_len < sizeof(struct lcfs_erofs_dirent))
		return DIR_ERR(r, f, "%zu bytes cannot hold an entry", f->chunk_len);
	first = get16(f->chunk + offsetof(struct lcfs_erofs_dirent, nameoff));
	if (first == 0 || first % sizeof(struct lcfs_erofs_dirent) != 0)
		return DIR_ERR(r, f, "first name offset %u is not a non-zero multiple of 12",
			       first);
	if (first >= f->chunk_len)
		return DIR_ERR(r, f, "first name offset %u past the end (%zu bytes)",
			       first, f->chunk_len);
	f->nent = first / sizeof(struct lcfs_erofs_dirent);
	f->ent = 0;
	return 0;
}

/* Next entry of the directory on top of the stack: 1 with @name, @len and
 * @nid set, 0 at the end, or -errno. */
static int next_entry(struct reader *r, struct dir_frame *f, const uint8_t **name,
		      size_t *len, uint64_t *nid)
{
	const uint8_t *rec;
	size_t start, end;
	int ret;

	while (f->ent == f->nent) {
		if (f->next_chunk == f->nchunks)
			return 0;
		ret = open_chunk(r, f);
		if (ret < 0)
			return ret;
	}
	rec = f->chunk + f->ent * sizeof(struct lcfs_erofs_dirent);
	start = get16(rec + offsetof(struct lcfs_erofs_dirent, nameoff));
	if (f->ent + 1 < f->nent) {
		/* The name ends where the next one starts. */
		end = get16(rec + sizeof(struct lcfs_erofs_dirent) +
			    offsetof(struct lcfs_erofs_dirent, nameoff));
		if (end < start || end > f->chunk_len)
			return DIR_ERR(r, f, "entry %u: name offset %zu out of order or "
				       "past the end", f->ent + 1, end);
	} else {
		/* The last name ends at the first NUL (block padding) or at
		 * the end of the chunk. */
		const uint8_t *nul = memchr(f->chunk + start, '\0', f->chunk_len - start);

		end = nul ? (size_t)(nul - f->chunk) : f->chunk_len;
	}
	*len = end - start;
	*name = f->chunk + start;
	if (*len == 0 || *len > LCFS_MAX_NAME_LENGTH)
		return DIR_ERR(r, f, "entry %u: name length %zu is invalid", f->ent, *len);
	if (memchr(*name, '/', *len) != NULL || memchr(*name, '\0', *len) != NULL)
		return DIR_ERR(r, f, "entry %u: name contains '/' or a NUL byte", f->ent);
	/* Entries are sorted by name (docs/image-format.md, "Directory
	 * blocks"), which also rules out duplicates and keeps adding
	 * children cheap. */
	if (f->prev_name != NULL) {
		int c = lcfs_bytes_cmp(f->prev_name, f->prev_len, *name, *len);

		if (c == 0)
			return DIR_ERR(r, f, "duplicate entry '%.*s'", (int)*len, *name);
		if (c > 0)
			return DIR_ERR(r, f, "entry '%.*s' out of name order", (int)*len,
				       *name);
	}
	f->prev_name = *name;
	f->prev_len = *len;
	*nid = get64(rec + offsetof(struct lcfs_erofs_dirent, nid));
	f->ent++;
	ret = charge(r, f->nid, sizeof(struct lcfs_erofs_dirent) + *len);
	return ret < 0 ? ret : 1;
}

static bool in_filter(const char *const *names, const uint8_t *name, size_t len)
{
	for (; *names != NULL; names++)
		if (strlen(*names) == len && memcmp(*names, name, len) == 0)
			return true;
	return false;
}

static bool is_ancestor(const struct lcfs_node_s *a, const struct lcfs_node_s *n)
{
	for (; n != NULL; n = n->parent)
		if (n == a)
			return true;
	return false;
}

/* A nid met again: a hard link to the node first built for it
 * (docs/image-format.md, "What the reader rebuilds"). The target's nlink
 * comes from the image and is not bumped. */
static int add_hardlink(struct reader *r, struct dir_frame *f, struct lcfs_node_s *target,
			const uint8_t *name, size_t len, uint64_t nid)
{
	struct lcfs_node_s *link;
	int ret;

	if ((target->mode & S_IFMT) == S_IFDIR) {
		if (is_ancestor(target, f->node))
			return lcfs_error_set(r->err, ELOOP,
					      "directory inode %llu: entry '%.*s' loops "
					      "back to directory inode %llu",
					      (unsigned long long)f->nid, (int)len, name,
					      (unsigned long long)nid);
		return lcfs_error_set(r->err, EINVAL,
				      "directory inode %llu: entry '%.*s' links to "
				      "directory inode %llu a second time",
				      (unsigned long long)f->nid, (int)len, name,
				      (unsigned long long)nid);
	}
	link = lcfs_node_new();
	if (link == NULL)
		return oom(r);
	link->link_to = lcfs_node_ref(target);
	ret = lcfs_node_add_child_n(f->node, link, (const char *)name, len);
	if (ret < 0) {
		lcfs_node_unref(link);
		return oom(r);
	}
	return 0;
}

/* Depth-first walk in directory entry order, with an explicit stack. */
static int walk(struct reader *r)
{
	while (r->depth > 0) {
		struct dir_frame *f = &r->stack[r->depth - 1];
		struct lcfs_node_s *child, *existing;
		const uint8_t *name = NULL;
		struct extent ext;
		uint64_t nid = 0;
		size_t len = 0;
		int ret;

		ret = next_entry(r, f, &name, &len, &nid);
		if (ret < 0)
			return ret;
		if (ret == 0) {
			r->depth--;
			continue;
		}
		if ((len == 1 && name[0] == '.') ||
		    (len == 2 && name[0] == '.' && name[1] == '.'))
			continue;
		if (f->toplevel && r->toplevel != NULL && !in_filter(r->toplevel, name, len))
			continue;

		/* Only nids inside the image get here (read_inode() checks
		 * new ones), so the table lookup needs the same bound. */
		existing = nid <= r->max_nid ? nid_table_get(&r->nodes, nid) : NULL;
		if (existing == (void *)&dropped_marker ||
		    (existing != NULL && is_whiteout(existing)))
			return lcfs_error_set(r->err, EINVAL,
					      "directory inode %llu: entry '%.*s' is a "
					      "second name of whiteout inode %llu",
					      (unsigned long long)f->nid, (int)len, name,
					      (unsigned long long)nid);
		if (existing != NULL) {
			ret = add_hardlink(r, f, existing, name, len, nid);
			if (ret < 0)
				return ret;
			continue;
		}

		ret = build_node(r, nid, &child, &ext);
		if (ret < 0)
			return ret;
		if (nid_table_put(&r->nodes, nid,
				  child ? (void *)child : (void *)&dropped_marker) < 0) {
			lcfs_node_unref(child);
			return oom(r);
		}
		if (child == NULL)
			continue;
		ret = lcfs_node_add_child_n(f->node, child, (const char *)name, len);
		if (ret < 0) {
			lcfs_node_unref(child);
			return oom(r);
		}
		if ((child->mode & S_IFMT) == S_IFDIR) {
			ret = push_dir(r, child, nid, &ext, false);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* ---- Entry points ------------------------------------------------------------------ */

/* The checks of docs/image-format.md, "Reader checks", on the header and
 * superblock. */
static int read_header(struct reader *r)
{
	struct lcfs_erofs_header_s h;
	struct lcfs_erofs_super sb;

	if (r->size < LCFS_BLKSZ)
		return lcfs_error_set(r->err, EINVAL,
				      "image of %zu bytes is shorter than one block", r->size);
	memcpy(&h, r->data, sizeof(h));
	if (le32toh(h.magic) != LCFS_EROFS_MAGIC)
		return lcfs_error_set(r->err, EINVAL, "not a composefs image (bad magic)");
	if (le32toh(h.version) != LCFS_EROFS_VERSION)
		return lcfs_error_set(r->err, ENOTSUP,
				      "unsupported composefs header version %u",
				      le32toh(h.version));
	memcpy(&sb, r->data + LCFS_SUPER_OFFSET, sizeof(sb));
	if (le32toh(sb.magic) != LCFS_EROFS_SUPER_MAGIC)
		return lcfs_error_set(r->err, EINVAL, "bad EROFS superblock magic");
	/* Everything here assumes 4096-byte blocks, as composefs writes. */
	if (sb.blkszbits != LCFS_BLKSZ_BITS)
		return lcfs_error_set(r->err, EINVAL, "unsupported block size 2^%u",
				      sb.blkszbits);
	r->meta_off = (uint64_t)le32toh(sb.meta_blkaddr) * LCFS_BLKSZ;
	r->xattr_off = (uint64_t)le32toh(sb.xattr_blkaddr) * LCFS_BLKSZ;
	if (r->meta_off > r->size)
		return lcfs_error_set(r->err, EINVAL,
				      "metadata block %u past the end of the image",
				      le32toh(sb.meta_blkaddr));
	if (r->xattr_off > r->size)
		return lcfs_error_set(r->err, EINVAL,
				      "xattr block %u past the end of the image",
				      le32toh(sb.xattr_blkaddr));
	if (r->size - r->meta_off >= sizeof(struct lcfs_erofs_inode_compact))
		r->max_nid = (r->size - r->meta_off - sizeof(struct lcfs_erofs_inode_compact)) /
			     LCFS_SLOT;
	r->build_time = (int64_t)le64toh(sb.build_time);
	r->build_time_nsec = le32toh(sb.build_time_nsec);
	return le16toh(sb.root_nid);
}

static void reader_release(struct reader *r)
{
	for (size_t i = 0; i < r->shared.cap; i++)
		if (r->shared.slots[i].key != MAP_EMPTY)
			shared_free(r->shared.slots[i].value);
	free(r->shared.slots);
	nid_table_release(&r->nodes);
	lcfs_xattr_intern_release(&r->interned);
	free(r->stack);
}

struct lcfs_node_s *lcfs_image_load(const uint8_t *data, size_t size,
				    const char *const *toplevel,
				    struct lcfs_error *err)
{
	struct reader r = {
		.data = data,
		.size = size,
		.budget = size,
		.toplevel = toplevel,
		.err = err,
	};
	struct lcfs_node_s *root = NULL;
	struct extent ext;
	uint64_t root_nid;
	int ret;

	ret = read_header(&r);
	if (ret < 0)
		goto out;
	root_nid = ret;
	if (nid_table_init(&r.nodes, r.max_nid) < 0) {
		ret = oom(&r);
		goto out;
	}
	ret = build_node(&r, root_nid, &root, &ext);
	if (ret < 0)
		goto out;
	if (root == NULL || (root->mode & S_IFMT) != S_IFDIR) {
		ret = lcfs_error_set(err, EINVAL, "root inode %llu is not a directory",
				     (unsigned long long)root_nid);
		goto out;
	}
	ret = nid_table_put(&r.nodes, root_nid, root);
	if (ret < 0) {
		ret = oom(&r);
		goto out;
	}
	ret = push_dir(&r, root, root_nid, &ext, true);
	if (ret < 0)
		goto out;
	ret = walk(&r);
out:
	reader_release(&r);
	if (ret < 0) {
		lcfs_node_unref(root);
		return NULL;
	}
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *
lcfs_load_node_from_image_ext(const uint8_t *image_data, size_t image_data_size,
			      const struct lcfs_read_options_s *opts)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;

	if (opts == NULL || (image_data == NULL && image_data_size > 0)) {
		errno = EINVAL;
		return NULL;
	}
	root = lcfs_image_load(image_data, image_data_size, opts->toplevel_entries, &err);
	if (root == NULL)
		errno = err.err ? err.err : EINVAL;
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_image(const uint8_t *image_data,
							  size_t image_data_size)
{
	const struct lcfs_read_options_s opts = { 0 };

	return lcfs_load_node_from_image_ext(image_data, image_data_size, &opts);
}

LCFS_PUBLIC struct lcfs_node_s *
lcfs_load_node_from_fd_ext(int fd, const struct lcfs_read_options_s *opts)
{
	struct lcfs_node_s *root;
	struct stat st;
	void *p;
	int saved;

	if (opts == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (fstat(fd, &st) < 0)
		return NULL;
	/* Too short to be an image (and mmap() refuses length 0). */
	if (st.st_size < (off_t)LCFS_BLKSZ) {
		errno = EINVAL;
		return NULL;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		errno = EFBIG;
		return NULL;
	}
	p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	root = lcfs_load_node_from_image_ext(p, st.st_size, opts);
	saved = errno;
	munmap(p, st.st_size);
	errno = saved;
	return root;
}

LCFS_PUBLIC struct lcfs_node_s *lcfs_load_node_from_fd(int fd)
{
	const struct lcfs_read_options_s opts = { 0 };

	return lcfs_load_node_from_fd_ext(fd, &opts);
}

LCFS_PUBLIC int lcfs_version_from_fd(int fd)
{
	struct lcfs_erofs_header_s h;
	int r = lcfs_pread_exact(fd, &h, sizeof(h), 0);

	if (r < 0) {
		/* ENODATA: shorter than a header. */
		errno = r == -ENODATA ? EINVAL : -r;
		return -1;
	}
	if (le32toh(h.magic) != LCFS_EROFS_MAGIC ||
	    le32toh(h.version) != LCFS_EROFS_VERSION ||
	    le32toh(h.composefs_version) > INT_MAX) {
		errno = EINVAL;
		return -1;
	}
	return (int)le32toh(h.composefs_version);
}
