/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Image writer, part 3: emitting the image front to back through the
 * caller's write callback (docs/image-format.md, "File layout", "Inode
 * records", "Directories", "Data blocks"), with its fs-verity digest
 * computed on the way (docs/image-format.md, "fs-verity digest"), and
 * lcfs_write_to().
 * The image is never held in memory: only a small output buffer is.
 */
#include "lcfs-erofs-writer.h"
#include "lcfs-node.h"
#include "lcfs-fsverity.h"
#include "lcfs-tools.h"

#include <endian.h>
#include <string.h>
#include <sys/stat.h>

static int wbuf_pad_to(struct wbuf *b, uint64_t offset)
{
	return lcfs_wbuf_zero(b, offset - b->offset);
}

/* ---- Headers ------------------------------------------------------------------ */

static int emit_headers(struct writer *w, struct wbuf *out)
{
	struct lcfs_erofs_header_s h = {
		.magic = htole32(LCFS_EROFS_MAGIC),
		.version = htole32(LCFS_EROFS_VERSION),
		.flags = htole32(w->has_acl ? LCFS_EROFS_FLAGS_HAS_ACL : 0),
		.composefs_version = htole32(w->version),
	};
	struct lcfs_erofs_super sb = {
		.magic = htole32(LCFS_EROFS_SUPER_MAGIC),
		.feature_compat = htole32(LCFS_EROFS_FEATURE_COMPAT_MTIME |
					  LCFS_EROFS_FEATURE_COMPAT_XATTR_FILTER),
		.blkszbits = LCFS_BLKSZ_BITS,
		.root_nid = htole16(w->inodes[0].pos / LCFS_SLOT),
		.inos = htole64(w->n_inodes),
		.build_time = htole64((uint64_t)w->min_mtime_sec),
		.build_time_nsec = htole32(w->min_mtime_nsec),
		.blocks = htole32(w->data_start / LCFS_BLKSZ + w->n_data_blocks),
		.meta_blkaddr = 0,
		.xattr_blkaddr = htole32(w->inodes_end / LCFS_BLKSZ),
	};
	int r;

	r = lcfs_wbuf_put(out, &h, sizeof(h));
	if (r == 0)
		r = wbuf_pad_to(out, LCFS_SUPER_OFFSET);
	if (r == 0)
		r = lcfs_wbuf_put(out, &sb, sizeof(sb));
	return r;
}

/* ---- Directories ----------------------------------------------------------------- */

static uint8_t file_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return LCFS_EROFS_FT_REG_FILE;
	case S_IFDIR:
		return LCFS_EROFS_FT_DIR;
	case S_IFCHR:
		return LCFS_EROFS_FT_CHRDEV;
	case S_IFBLK:
		return LCFS_EROFS_FT_BLKDEV;
	case S_IFIFO:
		return LCFS_EROFS_FT_FIFO;
	case S_IFSOCK:
		return LCFS_EROFS_FT_SOCK;
	case S_IFLNK:
		return LCFS_EROFS_FT_SYMLINK;
	}
	return LCFS_EROFS_FT_UNKNOWN;
}

/* One dirent chunk (docs/image-format.md, "Directory entries"): records,
 * then the names. */
static int emit_dir_chunk(struct writer *w, struct wbuf *out, size_t first, size_t end)
{
	size_t nameoff = (end - first) * sizeof(struct lcfs_erofs_dirent);
	int r;

	for (size_t i = first; i < end; i++) {
		const struct wdirent *d = &w->dirents[i];
		const struct winode *t = &w->inodes[d->target];
		struct lcfs_erofs_dirent de = {
			.nid = htole64(t->pos / LCFS_SLOT),
			.nameoff = htole16(nameoff),
			.file_type = file_type(lcfs_writer_mode(w, t)),
		};

		r = lcfs_wbuf_put(out, &de, sizeof(de));
		if (r < 0)
			return r;
		nameoff += d->name_len;
	}
	for (size_t i = first; i < end; i++) {
		r = lcfs_wbuf_put(out, w->dirents[i].name, w->dirents[i].name_len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Emits the full blocks of a directory (@tail false) or its inline tail. */
static int emit_dir(struct writer *w, uint32_t idx, struct wbuf *out, bool tail)
{
	const struct winode *wi = &w->inodes[idx];
	size_t n, first = 0, used = 0;
	uint64_t start;
	int r;

	r = lcfs_writer_dir_entries(w, idx, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i <= n; i++) {
		size_t cost = i < n ? sizeof(struct lcfs_erofs_dirent) + w->dirents[i].name_len
				    : 0;
		bool last = i == n;

		if (!last && used + cost <= LCFS_BLKSZ) {
			used += cost;
			continue;
		}
		/* Chunk [first, i) is complete. */
		if (last && wi->tail > 0) {
			if (tail)
				return emit_dir_chunk(w, out, first, i);
		} else if (!tail) {
			start = lcfs_wbuf_offset(out);
			r = emit_dir_chunk(w, out, first, i);
			if (r == 0)
				r = wbuf_pad_to(out, start + LCFS_BLKSZ);
			if (r < 0)
				return r;
		}
		first = i;
		used = cost;
	}
	return 0;
}

/* ---- Inodes ----------------------------------------------------------------------- */

static int emit_inode(struct writer *w, uint32_t idx, struct wbuf *out)
{
	const struct winode *wi = &w->inodes[idx];
	const struct lcfs_node_s *node = wi->node;
	uint32_t mode = lcfs_writer_mode(w, wi);
	uint16_t icount = wi->xattr_size ? (wi->xattr_size - 12) / 4 + 1 : 0;
	uint64_t size = 0;
	uint32_t u = 0, layout;
	int r;

	switch (mode & S_IFMT) {
	case S_IFDIR:
		size = (uint64_t)wi->n_blocks * LCFS_BLKSZ + wi->tail;
		u = wi->n_blocks ? wi->block : 0;
		break;
	case S_IFREG:
		if (wi->flags & W_INPUT_WHITEOUT)
			break;
		size = node->size;
		if (wi->flags & W_EXTERNAL) {
			/* The block address (if the chunk map was pushed
			 * out) keeps only its high half (docs/image-format.md,
			 * "The i_u field"). */
			u = (wi->n_blocks ? wi->block & 0xffff0000u : 0) |
			    (lcfs_writer_chunkbits(node->size) - LCFS_BLKSZ_BITS);
		} else if (wi->n_blocks) {
			u = wi->block;
		}
		break;
	case S_IFLNK:
		size = strlen(node->payload);
		u = wi->n_blocks ? wi->block : 0;
		break;
	case S_IFCHR:
	case S_IFBLK:
		u = (wi->flags & W_SYNTH_WHITEOUT) ? 0 : node->rdev;
		break;
	}
	layout = wi->tail > 0 ? LCFS_EROFS_LAYOUT_FLAT_INLINE : LCFS_EROFS_LAYOUT_FLAT_PLAIN;
	if (wi->flags & W_EXTERNAL)
		layout = LCFS_EROFS_LAYOUT_CHUNK_BASED;

	r = wbuf_pad_to(out, wi->pos);
	if (r < 0)
		return r;
	if (wi->flags & W_COMPACT) {
		struct lcfs_erofs_inode_compact c = {
			.i_format = htole16(layout << LCFS_EROFS_LAYOUT_SHIFT),
			.i_xattr_icount = htole16(icount),
			.i_mode = htole16(mode),
			.i_nlink = htole16(wi->nlink),
			.i_size = htole32(size),
			.i_u = htole32(u),
			.i_ino = htole32(idx),
			.i_uid = htole16(node->uid),
			.i_gid = htole16(node->gid),
		};
		r = lcfs_wbuf_put(out, &c, sizeof(c));
	} else {
		struct lcfs_erofs_inode_extended e = {
			.i_format = htole16(layout << LCFS_EROFS_LAYOUT_SHIFT |
					    LCFS_EROFS_INODE_EXTENDED),
			.i_xattr_icount = htole16(icount),
			.i_mode = htole16(mode),
			.i_size = htole64(size),
			.i_u = htole32(u),
			.i_ino = htole32(idx),
			.i_uid = htole32(node->uid),
			.i_gid = htole32(node->gid),
			.i_mtime = htole64((uint64_t)node->mtime_sec),
			.i_mtime_nsec = htole32(node->mtime_nsec),
			.i_nlink = htole32(wi->nlink),
		};
		r = lcfs_wbuf_put(out, &e, sizeof(e));
	}
	if (r == 0)
		r = lcfs_writer_emit_xattrs(w, wi, out);
	if (r < 0 || wi->tail == 0)
		return r;

	/* Inline tail (docs/image-format.md, "Inline tails"). */
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return emit_dir(w, idx, out, true);
	case S_IFLNK:
		return lcfs_wbuf_put(out, node->payload, wi->tail);
	case S_IFREG:
		if (wi->flags & W_EXTERNAL) {
			static const uint8_t ff[4] = { 0xff, 0xff, 0xff, 0xff };

			for (unsigned i = 0; i < wi->tail / 4u && r == 0; i++)
				r = lcfs_wbuf_put(out, ff, sizeof(ff));
			return r;
		}
		return lcfs_wbuf_put(out, node->content + node->size - wi->tail, wi->tail);
	}
	return 0;
}

/* Data blocks of one inode (docs/image-format.md, "Data blocks"). */
static int emit_blocks(struct writer *w, uint32_t idx, struct wbuf *out)
{
	const struct winode *wi = &w->inodes[idx];
	const struct lcfs_node_s *node = wi->node;
	uint64_t start = (uint64_t)wi->block * LCFS_BLKSZ;
	uint64_t end = start + (uint64_t)wi->n_blocks * LCFS_BLKSZ;
	int r = 0;

	switch (lcfs_writer_mode(w, wi) & S_IFMT) {
	case S_IFDIR:
		r = emit_dir(w, idx, out, false);
		break;
	case S_IFLNK:
		r = lcfs_wbuf_put(out, node->payload, strlen(node->payload));
		break;
	case S_IFREG:
		if (wi->flags & W_EXTERNAL) {
			uint8_t ff[256];

			memset(ff, 0xff, sizeof(ff));
			for (unsigned i = 0; i < LCFS_BLKSZ / sizeof(ff) && r == 0; i++)
				r = lcfs_wbuf_put(out, ff, sizeof(ff));
		} else {
			uint64_t n = node->size - wi->tail;

			if (n > end - start)
				n = end - start;
			r = lcfs_wbuf_put(out, node->content, n);
		}
		break;
	}
	if (r == 0)
		r = wbuf_pad_to(out, end);
	return r;
}

static int emit_image(struct writer *w, struct wbuf *out)
{
	int r = emit_headers(w, out);

	for (uint32_t i = 0; r == 0 && i < w->n_inodes; i++) {
		lcfs_writer_prefetch(w, i);
		r = emit_inode(w, i, out);
	}
	if (r == 0)
		r = wbuf_pad_to(out, w->inodes_end);
	if (r == 0)
		r = lcfs_writer_emit_shared_table(w, out);
	if (r == 0)
		r = wbuf_pad_to(out, w->data_start);
	for (uint32_t i = 0; r == 0 && i < w->n_inodes; i++) {
		if (w->inodes[i].n_blocks > 0) {
			if (lcfs_wbuf_offset(out) != (uint64_t)w->inodes[i].block * LCFS_BLKSZ)
				return lcfs_error_set(w->err, EIO, "internal layout mismatch");
			r = emit_blocks(w, i, out);
		}
	}
	if (r == 0 && out->len > 0)
		r = lcfs_wbuf_flush(out);
	return r;
}

int lcfs_write_image(struct lcfs_node_s *root, struct lcfs_write_options_s *opts,
		     struct lcfs_error *err)
{
	struct writer w = { .root = root, .err = err };
	struct wbuf out = { 0 };
	int r;

	if (opts->format != LCFS_FORMAT_EROFS)
		return lcfs_error_set(err, EINVAL, "unknown image format %u", opts->format);
	if (opts->flags & ~(uint32_t)LCFS_FLAGS_MASK)
		return lcfs_error_set(err, EINVAL, "unknown flags 0x%x", opts->flags);
	if (opts->version > LCFS_VERSION_MAX || opts->max_version > LCFS_VERSION_MAX)
		return lcfs_error_set(err, EINVAL, "format version must be at most %d",
				      LCFS_VERSION_MAX);
	if (opts->max_version < opts->version)
		opts->max_version = opts->version;
	w.version = opts->version;
	w.max_version = opts->max_version;

	r = lcfs_writer_collect(&w);
	if (r == 0)
		r = lcfs_writer_share_xattrs(&w);
	if (r == 0)
		r = lcfs_writer_layout(&w);
	if (r < 0)
		goto out;
	opts->version = w.version;

	out.cb = opts->file_write_cb;
	out.file = opts->file;
	out.buf = malloc(WBUF_SIZE);
	if (out.buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (opts->digest_out != NULL) {
		out.verity = lcfs_fsverity_stream_new();
		if (out.verity == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	r = emit_image(&w, &out);
	if (r == 0 && out.verity != NULL) {
		r = lcfs_fsverity_stream_final(out.verity, opts->digest_out);
		out.verity = NULL;
	}
out:
	if (r < 0 && err != NULL && err->err == 0)
		lcfs_error_set(err, -r, "%s", strerror(-r));
	if (out.verity != NULL)
		lcfs_fsverity_stream_free(out.verity);
	free(out.buf);
	lcfs_writer_xattrs_free(&w);
	free(w.dirents);
	free(w.inodes);
	free(w.child_base);
	free(w.link_map);
	return r;
}

LCFS_PUBLIC int lcfs_write_to(struct lcfs_node_s *root,
			      struct lcfs_write_options_s *options)
{
	return lcfs_public_ret(lcfs_write_image(root, options, NULL));
}
