/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Test image builder: see image-builder.h. */
#include "image-builder.h"
#include "lcfs-node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BLK 4096u

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fprintf(stderr, "image builder: out of memory\n");
		abort();
	}
	return p;
}

void tb_put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

void tb_put32(uint8_t *p, uint32_t v)
{
	tb_put16(p, v);
	tb_put16(p + 2, v >> 16);
}

void tb_put64(uint8_t *p, uint64_t v)
{
	tb_put32(p, v);
	tb_put32(p + 4, v >> 32);
}

void tb_init(struct tb *b)
{
	memset(b, 0, sizeof(*b));
}

void tb_free(struct tb *b)
{
	free(b->nodes);
	free(b->img);
	memset(b, 0, sizeof(*b));
}

static int new_node(struct tb *b)
{
	struct tb_node *n;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->nodes = xrealloc(b->nodes, b->cap * sizeof(*b->nodes));
	}
	n = &b->nodes[b->n];
	memset(n, 0, sizeof(*n));
	n->link = -1;
	n->first_child = -1;
	n->next_sibling = -1;
	return b->n++;
}

int tb_add(struct tb *b, int parent, const char *name, uint16_t mode)
{
	int i = new_node(b);

	b->nodes[i].parent = parent;
	b->nodes[i].name = name;
	b->nodes[i].mode = mode;
	return i;
}

int tb_add_xattrs(struct tb *b, int parent, const char *name, uint16_t mode,
		  uint64_t size, const struct tb_xattr *xattrs, int n)
{
	int i = tb_add(b, parent, name, mode);

	b->nodes[i].size = size;
	b->nodes[i].xattrs = xattrs;
	b->nodes[i].n_xattrs = n;
	return i;
}

int tb_add_link(struct tb *b, int parent, const char *name, int target)
{
	int i = tb_add(b, parent, name, 0);

	b->nodes[i].link = target;
	return i;
}

int tb_add_shared(struct tb *b, uint8_t index, const char *name, const void *value,
		  size_t value_len)
{
	struct tb_xattr *x = &b->shared[b->n_shared];

	if (b->n_shared == TB_MAX_SHARED)
		abort();
	x->index = index;
	x->name = name;
	x->value = value;
	x->value_len = value_len;
	return b->n_shared++;
}

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

static size_t entry_size(const struct tb_xattr *x)
{
	return round_up(4 + strlen(x->name) + x->value_len, 4);
}

static size_t write_entry(uint8_t *p, const struct tb_xattr *x)
{
	size_t nl = strlen(x->name);

	p[0] = nl;
	p[1] = x->index;
	tb_put16(p + 2, x->value_len);
	memcpy(p + 4, x->name, nl);
	if (x->value_len)
		memcpy(p + 4 + nl, x->value, x->value_len);
	return entry_size(x);
}

static size_t xattr_area_size(const struct tb_node *n)
{
	size_t s = 12 + 4 * n->n_shared;

	if (n->n_xattrs == 0 && n->n_shared == 0)
		return 0;
	for (int i = 0; i < n->n_xattrs; i++)
		s += entry_size(&n->xattrs[i]);
	return s;
}

struct dent {
	const char *name;
	int node; /* final target */
};

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static int resolve(const struct tb *b, int i)
{
	while (b->nodes[i].link >= 0)
		i = b->nodes[i].link;
	return i;
}

static struct dent *dir_entries(const struct tb *b, int d, size_t *count)
{
	const struct tb_node *n = &b->nodes[d];
	struct dent *e = xrealloc(NULL, (n->n_entries) * sizeof(*e));
	size_t k = 0;

	e[k++] = (struct dent){ ".", d };
	e[k++] = (struct dent){ "..", n->parent < 0 ? d : n->parent };
	for (int c = n->first_child; c >= 0; c = b->nodes[c].next_sibling)
		e[k++] = (struct dent){ b->nodes[c].name, resolve(b, c) };
	qsort(e, k, sizeof(*e), dent_cmp);
	*count = k;
	return e;
}

static uint8_t file_type(uint16_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return 1;
	case S_IFDIR:
		return 2;
	case S_IFCHR:
		return 3;
	case S_IFBLK:
		return 4;
	case S_IFIFO:
		return 5;
	case S_IFSOCK:
		return 6;
	case S_IFLNK:
		return 7;
	}
	return 0;
}

/* Writes the chunks of directory @d: the inline tail or its blocks. */
static void emit_dir(struct tb *b, int d)
{
	struct tb_node *n = &b->nodes[d];
	size_t count, i = 0;
	struct dent *e = dir_entries(b, d, &count);
	uint64_t chunk = 0;

	while (i < count) {
		size_t k = 0, bytes = 0, nameoff;
		uint8_t *p;

		while (i + k < count && bytes + 12 + strlen(e[i + k].name) <= BLK) {
			bytes += 12 + strlen(e[i + k].name);
			k++;
		}
		p = n->tail_off ? b->img + n->tail_off
				: b->img + ((uint64_t)n->block + chunk) * BLK;
		nameoff = 12 * k;
		for (size_t j = 0; j < k; j++) {
			const struct dent *x = &e[i + j];

			tb_put64(p + 12 * j, b->nodes[x->node].nid);
			tb_put16(p + 12 * j + 8, nameoff);
			p[12 * j + 10] = file_type(b->nodes[x->node].mode);
			memcpy(p + nameoff, x->name, strlen(x->name));
			nameoff += strlen(x->name);
		}
		i += k;
		chunk++;
	}
	free(e);
}

void tb_build(struct tb *b)
{
	uint64_t pos = 1152, blocks, data_start, shared_size = 0;
	int *last_child;

	/* Children lists and directory entry sizes. */
	last_child = xrealloc(NULL, b->n * sizeof(int));
	for (size_t i = 0; i < b->n; i++) {
		b->nodes[i].first_child = -1;
		b->nodes[i].n_entries = 2;
		b->nodes[i].dirent_bytes = 12 + 1 + 12 + 2;
		last_child[i] = -1;
	}
	for (size_t i = 1; i < b->n; i++) {
		struct tb_node *c = &b->nodes[i];
		struct tb_node *p = &b->nodes[c->parent];

		c->next_sibling = -1;
		if (last_child[c->parent] < 0)
			p->first_child = i;
		else
			b->nodes[last_child[c->parent]].next_sibling = i;
		last_child[c->parent] = i;
		p->n_entries++;
		p->dirent_bytes += 12 + strlen(c->name);
	}
	free(last_child);

	/* Sizes and placement of the inodes. */
	for (size_t i = 0; i < b->n; i++) {
		struct tb_node *n = &b->nodes[i];
		size_t isz = n->extended ? 64 : 32, xsz = xattr_area_size(n), tail = 0;

		if (n->link >= 0)
			continue;
		switch (n->mode & S_IFMT) {
		case S_IFDIR:
			if (n->dirent_bytes <= 2048) {
				tail = n->dirent_bytes;
				n->i_size = tail;
			} else {
				/* Greedy split as in docs/image-format.md,
				 * "Directory blocks", all in blocks. */
				size_t count, used = 0;
				struct dent *e = dir_entries(b, i, &count);

				n->nblocks = 1;
				for (size_t j = 0; j < count; j++) {
					size_t c = 12 + strlen(e[j].name);

					if (used + c > BLK) {
						n->nblocks++;
						used = 0;
					}
					used += c;
				}
				free(e);
				n->i_size = (uint64_t)(n->nblocks - 1) * BLK + used;
			}
			break;
		case S_IFLNK:
			tail = n->data_len;
			n->i_size = tail;
			break;
		case S_IFREG:
			if (n->data_len > 2048) {
				n->nblocks = (n->data_len + BLK - 1) / BLK;
				n->i_size = n->data_len;
			} else if (n->data_len > 0) {
				tail = n->data_len;
				n->i_size = tail;
			} else {
				n->i_size = n->size;
				if (n->size > 0)
					tail = 4; /* one null chunk map entry */
			}
			break;
		default:
			break;
		}
		pos = round_up(pos, 32);
		if (tail > 0 && (pos + isz + xsz) % BLK + tail > BLK)
			pos = round_up(pos + 1, BLK);
		n->off = pos;
		n->nid = pos / 32;
		n->xattr_off = xsz ? pos + isz : 0;
		n->tail_off = tail ? pos + isz + xsz : 0;
		pos += isz + xsz + tail;
	}
	/* Directory nlink: 2 + real subdirectories, unless set by the test. */
	for (size_t i = 0; i < b->n; i++) {
		struct tb_node *n = &b->nodes[i];

		if (n->link >= 0 || (n->mode & S_IFMT) != S_IFDIR || n->nlink != 0)
			continue;
		n->nlink = 2;
		for (int c = n->first_child; c >= 0; c = b->nodes[c].next_sibling)
			if (b->nodes[c].link < 0 && (b->nodes[c].mode & S_IFMT) == S_IFDIR)
				n->nlink++;
	}

	b->inodes_end = round_up(pos, 32);
	b->shared_off = b->inodes_end;
	for (int i = 0; i < b->n_shared; i++) {
		b->shared_id[i] = ((b->inodes_end % BLK) + shared_size) / 4;
		shared_size += entry_size(&b->shared[i]);
	}
	data_start = round_up(b->inodes_end + shared_size, BLK);
	blocks = data_start / BLK;
	for (size_t i = 0; i < b->n; i++) {
		struct tb_node *n = &b->nodes[i];

		if (n->link < 0 && n->nblocks > 0) {
			n->block = blocks;
			blocks += n->nblocks;
		}
	}

	b->size = blocks * BLK;
	b->img = xrealloc(NULL, b->size);
	memset(b->img, 0, b->size);
	tb_put32(b->img, 0xD078629A);
	tb_put32(b->img + 4, 1);
	tb_put32(b->img + 12, b->composefs_version);
	tb_put32(b->img + 1024, 0xE0F5E1E2);
	tb_put32(b->img + 1032, 6);
	b->img[1036] = 12;
	tb_put16(b->img + 1038, b->nodes[0].nid);
	tb_put64(b->img + 1040, b->n);
	tb_put64(b->img + 1048, (uint64_t)b->build_time);
	tb_put32(b->img + 1056, b->build_time_nsec);
	tb_put32(b->img + 1060, blocks);
	tb_put32(b->img + 1068, b->inodes_end / BLK);

	for (size_t i = 0; i < b->n; i++) {
		struct tb_node *n = &b->nodes[i];
		uint8_t *p = b->img + n->off;
		size_t xsz = xattr_area_size(n);
		uint16_t layout = 0;
		uint32_t u = n->block;

		if (n->link >= 0)
			continue;
		if ((n->mode & S_IFMT) == S_IFREG && n->data_len == 0 && n->size > 0)
			layout = 4 << 1; /* chunk-based, chunk format 0 */
		else if (n->tail_off)
			layout = 2 << 1;
		if ((n->mode & S_IFMT) == S_IFCHR || (n->mode & S_IFMT) == S_IFBLK)
			u = n->rdev;
		if (layout == (4 << 1))
			u = 0;
		tb_put16(p, layout | (n->extended ? 1 : 0));
		tb_put16(p + 2, xsz ? (xsz - 12) / 4 + 1 : 0);
		tb_put16(p + 4, n->mode);
		tb_put32(p + 16, u);
		tb_put32(p + 20, i);
		if (n->extended) {
			tb_put64(p + 8, n->i_size);
			tb_put32(p + 24, n->uid);
			tb_put32(p + 28, n->gid);
			tb_put64(p + 32, (uint64_t)n->mtime);
			tb_put32(p + 40, n->mtime_nsec);
			tb_put32(p + 44, n->nlink ? n->nlink : 1);
		} else {
			tb_put16(p + 6, n->nlink ? n->nlink : 1);
			tb_put32(p + 8, n->i_size);
			tb_put16(p + 24, n->uid);
			tb_put16(p + 26, n->gid);
		}
		if (xsz) {
			uint8_t *x = b->img + n->xattr_off;

			tb_put32(x, 0xffffffff);
			x[4] = n->n_shared;
			x += 12;
			for (int k = 0; k < n->n_shared; k++, x += 4)
				tb_put32(x, b->shared_id[n->shared[k]]);
			for (int k = 0; k < n->n_xattrs; k++)
				x += write_entry(x, &n->xattrs[k]);
		}
		switch (n->mode & S_IFMT) {
		case S_IFDIR:
			emit_dir(b, i);
			break;
		case S_IFLNK:
			memcpy(b->img + n->tail_off, n->data, n->data_len);
			break;
		case S_IFREG:
			if (n->nblocks)
				memcpy(b->img + (uint64_t)n->block * BLK, n->data, n->data_len);
			else if (n->data_len)
				memcpy(b->img + n->tail_off, n->data, n->data_len);
			else if (n->tail_off)
				tb_put32(b->img + n->tail_off, 0xffffffff);
			break;
		}
	}
	for (int i = 0; i < b->n_shared; i++)
		write_entry(b->img + b->inodes_end + (b->shared_id[i] * 4 - b->inodes_end % BLK),
			    &b->shared[i]);
}
