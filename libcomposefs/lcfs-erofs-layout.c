/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Image writer, part 1: the list of real inodes in breadth-first order,
 * the rewrite flags, per-inode data sizes, compact/extended choice and
 * inode placement (docs/image-format.md, "Inode order", "Tree rewrite",
 * "Inode data", "Compact and extended inodes", "Inode placement").
 */
#include "erofs-xattr-names.h"
#include "lcfs-erofs-writer.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-node.h"

#include <string.h>
#include <sys/stat.h>

static const char hex_names[256][3] = {
#define H(x) #x
#define ROW(p)                                                                          \
	H(p##0), H(p##1), H(p##2), H(p##3), H(p##4), H(p##5), H(p##6), H(p##7), H(p##8), \
		H(p##9), H(p##a), H(p##b), H(p##c), H(p##d), H(p##e), H(p##f)
	ROW(0), ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7),
	ROW(8), ROW(9), ROW(a), ROW(b), ROW(c), ROW(d), ROW(e), ROW(f),
#undef ROW
#undef H
};

enum { DE_CHILD, DE_DOT, DE_DOTDOT, DE_SYNTH };

static int node_error(struct writer *w, struct lcfs_node_s *node, int err,
		      const char *what)
{
	cleanup_free char *path = lcfs_node_path(node);

	return lcfs_error_set(w->err, err, "'%s': %s", path ? path : "?", what);
}

unsigned lcfs_writer_chunkbits(uint64_t size)
{
	/* ceil(log2(size)) clamped to 12..43 (docs/image-format.md,
	 * "Chunk-based files"). */
	unsigned bits = size > 1 ? 64 - __builtin_clzll(size - 1) : 0;

	if (bits < LCFS_BLKSZ_BITS)
		bits = LCFS_BLKSZ_BITS;
	if (bits > LCFS_BLKSZ_BITS + 31)
		bits = LCFS_BLKSZ_BITS + 31;
	return bits;
}

static uint64_t chunk_count(uint64_t size)
{
	unsigned bits = lcfs_writer_chunkbits(size);

	return (size >> bits) + ((size & ((1ULL << bits) - 1)) != 0);
}

uint32_t lcfs_writer_mode(const struct writer *w, const struct winode *wi)
{
	if (wi->flags & W_SYNTH_WHITEOUT)
		return S_IFCHR | 0644;
	if (wi->flags & W_INPUT_WHITEOUT)
		return S_IFREG | (wi->node->mode & ~(uint32_t)S_IFMT);
	return wi->node->mode;
}

/* The size that decides compact vs extended (docs/image-format.md,
 * "Compact and extended inodes"). */
uint64_t lcfs_writer_size(const struct writer *w, const struct winode *wi)
{
	if (wi->flags & (W_SYNTH_WHITEOUT | W_INPUT_WHITEOUT))
		return 0;
	switch (wi->node->mode & S_IFMT) {
	case S_IFDIR:
		return (uint64_t)wi->n_blocks * LCFS_BLKSZ + wi->tail;
	case S_IFLNK:
		return strlen(wi->node->payload);
	default:
		return wi->node->size;
	}
}

static int dirents_reserve(struct writer *w, size_t n)
{
	struct wdirent *d;
	size_t cap;

	if (n <= w->dirents_cap)
		return 0;
	cap = w->dirents_cap ? w->dirents_cap : 64;
	while (cap < n)
		cap *= 2;
	d = realloc(w->dirents, cap * sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	lcfs_hint_huge(d, cap * sizeof(*d));
	w->dirents = d;
	w->dirents_cap = cap;
	return 0;
}

/*
 * The entries of a directory in name order: its children merged with "."
 * and ".." (docs/image-format.md, "Dot and dot-dot") and, for the root,
 * the synthetic whiteouts 00..ff (docs/image-format.md, "Root
 * finalization"). A child with the same name as a synthetic entry wins.
 * Fills w->dirents; target is left for the caller when not yet known.
 */
static int dir_merge(struct writer *w, const struct winode *wi, size_t *n_out)
{
	struct lcfs_node_s *node = wi->node;
	bool is_root = wi->flags & W_ROOT;
	size_t n_extra = is_root ? 258 : 2;
	size_t ci = 0, ei = 0, n = 0;
	int r;

	r = dirents_reserve(w, (size_t)node->n_children + n_extra);
	if (r < 0)
		return r;
	while (ci < node->n_children || ei < n_extra) {
		struct wdirent *d = &w->dirents[n];
		const char *en = NULL;
		size_t elen = 0;
		int c = -1;

		if (ei < n_extra) {
			en = ei == 0 ? "." : ei == 1 ? ".." : hex_names[ei - 2];
			elen = ei == 0 ? 1 : 2;
		}
		if (ci < node->n_children && en != NULL) {
			const struct lcfs_node_s *cn = node->children[ci];

			c = lcfs_bytes_cmp(cn->name, cn->name_len, en, elen);
		} else if (ci < node->n_children) {
			c = -1;
		} else {
			c = 1;
		}
		if (c <= 0) {
			struct lcfs_node_s *child = node->children[ci++];

			/* Siblings may be far apart in memory, see
			 * lcfs_writer_prefetch(). */
			if (ci + WRITER_PREFETCH_AHEAD < node->n_children)
				__builtin_prefetch(node->children[ci + WRITER_PREFETCH_AHEAD]);
			if (ci + WRITER_PREFETCH_AHEAD / 2 < node->n_children)
				__builtin_prefetch(
					node->children[ci + WRITER_PREFETCH_AHEAD / 2]->name);

			d->name = child->name;
			d->name_len = child->name_len;
			d->kind = DE_CHILD;
			d->child = child;
			n++;
			if (c == 0)
				ei++; /* the child shadows the extra entry */
			continue;
		}
		d->name = en;
		d->name_len = elen;
		d->kind = ei == 0 ? DE_DOT : ei == 1 ? DE_DOTDOT : DE_SYNTH;
		d->hex = ei >= 2 ? (uint8_t)(ei - 2) : 0;
		d->child = NULL;
		n++;
		ei++;
	}
	*n_out = n;
	return 0;
}

static int push_inode(struct writer *w, size_t *cap, const struct winode *wi)
{
	if (w->n_inodes == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct winode *a;
		uint32_t *b;

		if (ncap > UINT32_MAX)
			return -EOVERFLOW;
		a = realloc(w->inodes, ncap * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		lcfs_hint_huge(a, ncap * sizeof(*a));
		w->inodes = a;
		b = realloc(w->child_base, ncap * sizeof(*b));
		if (b == NULL)
			return -ENOMEM;
		lcfs_hint_huge(b, ncap * sizeof(*b));
		w->child_base = b;
		*cap = ncap;
	}
	w->inodes[w->n_inodes++] = *wi;
	return 0;
}

static void track_mtime(struct writer *w, int64_t sec, uint32_t nsec)
{
	if (sec < w->min_mtime_sec || (sec == w->min_mtime_sec && nsec < w->min_mtime_nsec)) {
		w->min_mtime_sec = sec;
		w->min_mtime_nsec = nsec;
	}
}

/* True when @node comes back from the image as a whiteout: a character
 * device 0/0, or a regular file carrying trusted.overlay.whiteout, which is
 * stored escaped and read as an input whiteout (docs/image-format.md,
 * "What the reader rebuilds"). */
static bool reads_back_as_whiteout(const struct lcfs_node_s *node)
{
	size_t len;

	switch (node->mode & S_IFMT) {
	case S_IFCHR:
		return node->rdev == 0;
	case S_IFREG:
		return lcfs_node_get_xattr((struct lcfs_node_s *)node,
					   LCFS_OVL_PREFIX LCFS_OVL_WHITEOUT, &len) != NULL;
	default:
		return false;
	}
}

/* Checks of one real inode (docs/image-format.md, "Validation"), and its
 * rewrite flags. */
static int check_inode(struct writer *w, struct winode *wi)
{
	struct lcfs_node_s *node = wi->node;

	if (!lcfs_mode_valid(node->mode))
		return node_error(w, node, EINVAL, "invalid file type in mode");
	switch (node->mode & S_IFMT) {
	case S_IFREG:
		/* Readers refuse a whiteout with several names (below). */
		if (node->nlink > 1 && reads_back_as_whiteout(node))
			return node_error(w, node, EINVAL,
					  "a file with the xattr trusted.overlay.whiteout reads back as a whiteout and cannot have more than one link");
		if (node->size > 0 && node->content == NULL) {
			if (chunk_count(node->size) > LCFS_EROFS_MAX_CHUNKS)
				return node_error(w, node, EFBIG,
						  "file too large for the image format");
			wi->flags |= W_EXTERNAL;
		}
		break;
	case S_IFLNK:
		if (node->payload == NULL || node->payload[0] == '\0')
			return node_error(w, node, EINVAL, "symlink without a target");
		break;
	case S_IFCHR:
		if (node->rdev == 0) {
			/* A whiteout is a marker, not a file: readers refuse
			 * one with several names, so never write one. */
			if (node->nlink > 1)
				return node_error(w, node, EINVAL,
						  "a whiteout (character device 0/0) cannot have more than one link");
			wi->flags |= W_INPUT_WHITEOUT;
			w->inodes[wi->parent].flags |= W_WHITEOUT_PARENT;
		}
		break;
	}
	return 0;
}

static size_t link_slot(const struct lcfs_node_s *node, size_t mask)
{
	uint64_t h = (uint64_t)(uintptr_t)node * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & mask;
}

/* Slot of @node in the link map: where it is, or the empty slot where it
 * belongs. */
static struct wlink_slot *link_map_slot(const struct writer *w,
					const struct lcfs_node_s *node)
{
	size_t i = link_slot(node, w->link_mask);

	while (w->link_map[i].node != NULL && w->link_map[i].node != node)
		i = (i + 1) & w->link_mask;
	return &w->link_map[i];
}

/* The map from each hard link target (@targets, @n of them, repeats
 * allowed) to its BFS index: sized by the targets, not by the tree, which
 * may have a million inodes and a handful of links. */
static int build_link_map(struct writer *w, struct lcfs_node_s *const *targets, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n)
		cap *= 2;
	w->link_map = lcfs_calloc_big(cap, sizeof(*w->link_map));
	if (w->link_map == NULL)
		return -ENOMEM;
	w->link_mask = cap - 1;
	for (size_t k = 0; k < n; k++) {
		struct wlink_slot *slot = link_map_slot(w, targets[k]);

		slot->node = targets[k];
		slot->idx = UINT32_MAX; /* until it is met in the tree */
	}
	for (uint32_t idx = 0; idx < w->n_inodes; idx++) {
		struct wlink_slot *slot;

		if (w->inodes[idx].flags & W_SYNTH_WHITEOUT)
			continue;
		slot = link_map_slot(w, w->inodes[idx].node);
		if (slot->node != NULL)
			slot->idx = idx;
	}
	return 0;
}

/* BFS index of the real inode of @node, or UINT32_MAX if it has none. */
static uint32_t link_map_get(const struct writer *w, const struct lcfs_node_s *node)
{
	const struct wlink_slot *slot = link_map_slot(w, node);

	return slot->node != NULL ? slot->idx : UINT32_MAX;
}

/*
 * Breadth-first walk over the real inodes (docs/image-format.md, "Inode
 * order"): BFS index, parent, directory nlink, minimum mtime, rewrite
 * flags, and the version bump (docs/image-format.md, "Format versions":
 * decided by input whiteouts only).
 */
int lcfs_writer_collect(struct writer *w)
{
	struct lcfs_node_s *root = w->root;
	struct winode rw = { .node = root, .flags = W_ROOT };
	bool input_whiteouts = false;
	cleanup_free struct lcfs_node_s **targets = NULL;
	size_t cap = 0, n_targets = 0, targets_cap = 0;
	int r;

	if ((root->mode & S_IFMT) != S_IFDIR)
		return lcfs_error_set(w->err, ENOTDIR, "root is not a directory");
	r = push_inode(w, &cap, &rw);
	if (r < 0)
		return r;
	w->min_mtime_sec = root->mtime_sec;
	w->min_mtime_nsec = root->mtime_nsec;

	for (uint32_t idx = 0; idx < w->n_inodes; idx++) {
		struct winode *wi = &w->inodes[idx];
		struct lcfs_node_s *node = wi->node;
		uint32_t subdirs = 0;
		size_t n;

		lcfs_writer_prefetch(w, idx);
		wi->nlink = node->nlink;
		if (wi->flags & W_SYNTH_WHITEOUT) {
			wi->nlink = 1;
			continue;
		}
		r = check_inode(w, wi);
		if (r < 0)
			return r;
		if (wi->flags & W_INPUT_WHITEOUT)
			input_whiteouts = true;
		track_mtime(w, node->mtime_sec, node->mtime_nsec);
		if ((node->mode & S_IFMT) != S_IFDIR)
			continue;

		r = dir_merge(w, wi, &n);
		if (r < 0)
			return r;
		w->child_base[idx] = w->n_inodes;
		for (size_t i = 0; i < n; i++) {
			const struct wdirent *d = &w->dirents[i];
			struct winode cw = { .parent = idx };

			if (d->kind == DE_SYNTH) {
				cw.node = root;
				cw.flags = W_SYNTH_WHITEOUT;
				w->synth_idx[d->hex] = w->n_inodes;
			} else if (d->kind == DE_CHILD && d->child->link_to == NULL) {
				cw.node = d->child;
				if ((d->child->mode & S_IFMT) == S_IFDIR)
					subdirs++;
			} else {
				/* A loop is reported with the entry. */
				struct lcfs_node_s *t = d->kind == DE_CHILD ?
								lcfs_node_resolve_link(d->child) :
								NULL;
				struct lcfs_node_s **v;

				if (t == NULL)
					continue;
				v = lcfs_array_reserve(targets, n_targets, &targets_cap,
						       sizeof(*v), 16);
				if (v == NULL)
					return -ENOMEM;
				targets = v;
				targets[n_targets++] = t;
				continue;
			}
			r = push_inode(w, &cap, &cw);
			if (r < 0)
				return r;
			wi = &w->inodes[idx]; /* the array may have moved */
		}
		wi->nlink = 2 + subdirs;
	}
	if (w->version < 1 && w->max_version >= 1 && input_whiteouts)
		w->version = 1;
	return n_targets > 0 ? build_link_map(w, targets, n_targets) : 0;
}

/* Resolves a directory entry to the BFS index of its final target. The
 * entries of @dir come in the order lcfs_writer_collect() met them, so
 * those that added an inode take *@next, *@next + 1, ... */
static int dirent_target(struct writer *w, uint32_t dir, struct wdirent *d,
			 uint32_t *next)
{
	struct lcfs_node_s *t;
	uint32_t ti;

	switch (d->kind) {
	case DE_DOT:
		d->target = dir;
		return 0;
	case DE_DOTDOT:
		d->target = w->inodes[dir].parent;
		return 0;
	case DE_SYNTH:
		d->target = w->synth_idx[d->hex];
		(*next)++;
		return 0;
	}
	if (d->child->link_to == NULL) {
		d->target = (*next)++;
		return 0;
	}
	t = lcfs_node_resolve_link(d->child);
	if (t == NULL)
		return node_error(w, d->child, ELOOP, "hard link chain loops");
	ti = link_map_get(w, t);
	if (ti == UINT32_MAX)
		return node_error(w, d->child, EINVAL,
				  "hard link target is not in the tree");
	if (reads_back_as_whiteout(t))
		return node_error(w, d->child, EINVAL,
				  (t->mode & S_IFMT) == S_IFCHR ?
					  "a whiteout (character device 0/0) cannot be hard linked" :
					  "a file with the xattr trusted.overlay.whiteout reads back as a whiteout and cannot be hard linked");
	d->target = ti;
	return 0;
}

int lcfs_writer_dir_entries(struct writer *w, uint32_t idx, size_t *n_out)
{
	int r = dir_merge(w, &w->inodes[idx], n_out);
	uint32_t next = r == 0 ? w->child_base[idx] : 0;

	for (size_t i = 0; r == 0 && i < *n_out; i++)
		r = dirent_target(w, idx, &w->dirents[i], &next);
	return r;
}

/* Data blocks and inline tail of a directory (docs/image-format.md,
 * "Inode data", "Directory blocks"). */
static int size_dir(struct writer *w, uint32_t idx, struct winode *wi)
{
	size_t n, used = 0;
	uint64_t blocks = 0;
	int r;

	r = lcfs_writer_dir_entries(w, idx, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		size_t cost = sizeof(struct lcfs_erofs_dirent) + w->dirents[i].name_len;

		if (used + cost > LCFS_BLKSZ) {
			blocks++;
			used = 0;
		}
		used += cost;
	}
	if (used > LCFS_BLKSZ / 2) {
		blocks++;
		used = 0;
	}
	if (blocks > UINT32_MAX / 2)
		return lcfs_error_set(w->err, EFBIG, "directory too large");
	wi->n_blocks = blocks;
	wi->tail = used;
	return 0;
}

static void size_data(struct winode *wi)
{
	struct lcfs_node_s *node = wi->node;

	wi->n_blocks = 0;
	wi->tail = 0;
	if (wi->flags & (W_SYNTH_WHITEOUT | W_INPUT_WHITEOUT))
		return;
	switch (node->mode & S_IFMT) {
	case S_IFLNK:
		wi->tail = strlen(node->payload);
		break;
	case S_IFREG:
		if (wi->flags & W_EXTERNAL) {
			wi->tail = 4 * chunk_count(node->size);
		} else if (node->content != NULL && node->size > 0) {
			uint64_t rest = node->size % LCFS_BLKSZ;

			wi->n_blocks = node->size / LCFS_BLKSZ;
			if (rest > LCFS_BLKSZ / 2)
				wi->n_blocks++;
			else
				wi->tail = rest;
		}
		break;
	}
}

static bool is_compact(const struct writer *w, const struct winode *wi)
{
	const struct lcfs_node_s *node = wi->node;

	return node->mtime_sec == w->min_mtime_sec &&
	       node->mtime_nsec == w->min_mtime_nsec && wi->nlink <= UINT16_MAX &&
	       node->uid <= UINT16_MAX && node->gid <= UINT16_MAX &&
	       lcfs_writer_size(w, wi) <= UINT32_MAX;
}

/*
 * Sizes every inode and places it (docs/image-format.md, "Inode
 * placement"), then the shared xattr table and the data blocks
 * (docs/image-format.md, "File layout", "The i_u field").
 */
int lcfs_writer_layout(struct writer *w)
{
	uint64_t pos = LCFS_INODES_OFFSET;
	uint64_t block;
	int r;

	for (uint32_t idx = 0; idx < w->n_inodes; idx++) {
		struct winode *wi = &w->inodes[idx];
		uint64_t isz, xsz, tail;

		lcfs_writer_prefetch(w, idx);
		if (!(wi->flags & W_SYNTH_WHITEOUT) &&
		    (wi->node->mode & S_IFMT) == S_IFDIR)
			r = size_dir(w, idx, wi);
		else
			r = (size_data(wi), 0);
		if (r < 0)
			return r;
		r = lcfs_writer_xattr_size(w, wi);
		if (r < 0)
			return r;
		if (is_compact(w, wi))
			wi->flags |= W_COMPACT;
		isz = (wi->flags & W_COMPACT) ? sizeof(struct lcfs_erofs_inode_compact)
					      : sizeof(struct lcfs_erofs_inode_extended);
		xsz = wi->xattr_size;
		tail = wi->tail;
		pos = lcfs_round_up(pos, LCFS_SLOT);

		if (!(wi->flags & W_SYNTH_WHITEOUT) &&
		    (wi->node->mode & S_IFMT) == S_IFLNK) {
			/* The whole record must sit in one block; the check
			 * uses the total before the target is moved out. */
			uint64_t total = isz + xsz + tail;

			if (total >= LCFS_BLKSZ) {
				wi->n_blocks = 1;
				wi->tail = 0;
			}
			if (pos / LCFS_BLKSZ != (pos + total - 1) / LCFS_BLKSZ)
				pos = lcfs_round_up(pos, LCFS_BLKSZ);
		} else {
			uint64_t room = LCFS_BLKSZ - (pos + isz + xsz) % LCFS_BLKSZ;

			if (room < tail) {
				uint64_t pad = lcfs_round_up(room, LCFS_SLOT);
				uint64_t room2 = LCFS_BLKSZ -
						 (pos + isz + xsz + pad) % LCFS_BLKSZ;

				if (tail <= room2) {
					pos += pad;
				} else {
					wi->n_blocks++;
					wi->tail = 0;
					pos = lcfs_round_up(pos, LCFS_BLKSZ);
				}
			}
		}
		wi->pos = pos;
		pos += isz + xsz + wi->tail;
	}
	if (w->inodes[0].pos / LCFS_SLOT > UINT16_MAX)
		return lcfs_error_set(w->err, EFBIG, "root inode out of reach");
	w->inodes_end = lcfs_round_up(pos, LCFS_SLOT);

	/* Shared xattr ids need inodes_end; sizes were fixed above. */
	w->data_start = lcfs_round_up(w->inodes_end + w->shared_size, LCFS_BLKSZ);
	block = w->data_start / LCFS_BLKSZ;
	for (uint32_t idx = 0; idx < w->n_inodes; idx++) {
		struct winode *wi = &w->inodes[idx];

		if (wi->n_blocks == 0)
			continue;
		wi->block = block;
		block += wi->n_blocks;
		if (block > UINT32_MAX)
			return lcfs_error_set(w->err, EFBIG, "image too large");
	}
	w->n_data_blocks = block - w->data_start / LCFS_BLKSZ;
	return 0;
}
