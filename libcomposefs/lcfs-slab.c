/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Slabs: nodes, names and payloads of a parsed tree carved out of large
 * chunks instead of one malloc() each, and the relocation of a finished
 * tree's nodes into the order the image writer visits them.
 *
 * A tree of a million entries is three million small allocations when
 * each node, name and payload is malloc'd: malloc's own headers and
 * rounding cost some 30 bytes an entry, and the nodes sit in memory in
 * the order the input listed them. When that order is not the tree's
 * (creation order, tar order), every pass of the writer jumps around
 * memory and most of its time goes to cache misses.
 *
 * A chunk is LCFS_SLAB_CHUNK bytes, aligned to its size, so the chunk of
 * any object is found by masking the object's address. Its header counts
 * the objects not yet released (plus one while an allocator still fills
 * it); the chunk is unmapped when that count drops to zero. Objects are
 * never reused one by one: a tree that drops most of its nodes keeps the
 * chunks of the survivors. The counts are not atomic, like the node
 * reference counts.
 *
 * A chunk is the size of a transparent huge page. From the third chunk of
 * a slab or arena on, the chunk asks for one (MADV_HUGEPAGE): a large tree
 * then takes one page fault per 2 MiB instead of one per 4 KiB, which on
 * a virtual machine is a good part of the parse time, while a small tree
 * keeps its few 4 KiB pages.
 */
#include "lcfs-node.h"
#include "lcfs-util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LCFS_SLAB_CHUNK ((size_t)2 << 20)
#define SMALL_CHUNKS 2 /* chunks of a slab or arena before huge pages */
#define CHUNK_HEADER 64 /* a cache line, so that objects stay aligned */

struct slab_chunk {
	uint32_t live; /* objects not released, +1 while being filled */
	uint32_t seq;  /* position in the owning node arena, else 0 */
};

/* Chunks mapped by this process, for the tests' leak checks. */
static atomic_size_t chunks_mapped;

size_t lcfs_slab_chunks_mapped(void)
{
	return atomic_load_explicit(&chunks_mapped, memory_order_relaxed);
}

static struct slab_chunk *chunk_of(const void *p)
{
	return (struct slab_chunk *)((uintptr_t)p & ~(uintptr_t)(LCFS_SLAB_CHUNK - 1));
}

/* A fresh chunk with one count (the allocator's), or NULL. @huge: ask for
 * a transparent huge page (a hint only). */
static struct slab_chunk *chunk_new(bool huge)
{
	size_t span = 2 * LCFS_SLAB_CHUNK;
	uintptr_t base, start;
	void *p;

	p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Keep the one aligned chunk inside the mapping. */
	base = (uintptr_t)p;
	start = (base + LCFS_SLAB_CHUNK - 1) & ~(uintptr_t)(LCFS_SLAB_CHUNK - 1);
	if (start > base)
		munmap(p, start - base);
	if (start + LCFS_SLAB_CHUNK < base + span)
		munmap((void *)(start + LCFS_SLAB_CHUNK),
		       base + span - (start + LCFS_SLAB_CHUNK));
	if (huge)
		lcfs_advise_huge((void *)start, LCFS_SLAB_CHUNK);
	atomic_fetch_add_explicit(&chunks_mapped, 1, memory_order_relaxed);
	((struct slab_chunk *)start)->live = 1;
	((struct slab_chunk *)start)->seq = 0;
	return (struct slab_chunk *)start;
}

static void chunk_unmap(struct slab_chunk *c)
{
	munmap(c, LCFS_SLAB_CHUNK);
	atomic_fetch_sub_explicit(&chunks_mapped, 1, memory_order_relaxed);
}

/* Drops @n of @c's counts, unmapping it at zero. */
static void chunk_put_n(struct slab_chunk *c, uint32_t n)
{
	c->live -= n;
	if (c->live == 0)
		chunk_unmap(c);
}

static void chunk_put(struct slab_chunk *c)
{
	chunk_put_n(c, 1);
}

void lcfs_slab_release(void *p)
{
	if (p != NULL)
		chunk_put(chunk_of(p));
}

/* @size bytes from @s at a multiple of @align (a power of two), or NULL. */
static void *slab_take(struct lcfs_slab *s, size_t size, size_t align)
{
	char *p;

	if (size > LCFS_SLAB_CHUNK - CHUNK_HEADER)
		return NULL;
	p = NULL;
	if (s->chunk != NULL)
		p = (char *)(((uintptr_t)s->cur + align - 1) & ~(uintptr_t)(align - 1));
	if (p == NULL || p > s->end || (size_t)(s->end - p) < size) {
		struct slab_chunk *c = chunk_new(s->n_chunks >= SMALL_CHUNKS);

		if (c == NULL)
			return NULL;
		s->n_chunks++;
		if (s->chunk != NULL)
			chunk_put(s->chunk);
		s->chunk = c;
		p = (char *)c + CHUNK_HEADER; /* aligned to a cache line */
		s->end = (char *)c + LCFS_SLAB_CHUNK;
	}
	s->cur = p + size;
	((struct slab_chunk *)s->chunk)->live++;
	return p;
}

/* Strings need no alignment: packed, a million names and payloads take
 * some 8 MB less than rounded to 8 bytes. */
char *lcfs_slab_strndup(struct lcfs_slab *s, const char *str, size_t len)
{
	char *p = len < SIZE_MAX ? slab_take(s, len + 1, 1) : NULL;

	if (p == NULL)
		return NULL;
	memcpy(p, str, len);
	p[len] = '\0';
	return p;
}

void *lcfs_slab_alloc(struct lcfs_slab *s, size_t size)
{
	return slab_take(s, size, 8);
}

void lcfs_slab_done(struct lcfs_slab *s)
{
	if (s->chunk != NULL)
		chunk_put(s->chunk);
	s->chunk = NULL;
	s->cur = s->end = NULL;
}

/* ---- Releases counted ahead ------------------------------------------------ */

struct lcfs_slab_tally_slot {
	struct slab_chunk *chunk;
	uint32_t n;
};

static size_t tally_pos(const struct lcfs_slab_tally *t, const struct slab_chunk *c)
{
	size_t i = (size_t)(((uintptr_t)c / LCFS_SLAB_CHUNK) * 0x9E3779B1u) & t->mask;

	while (t->slots[i].chunk != NULL && t->slots[i].chunk != c)
		i = (i + 1) & t->mask;
	return i;
}

bool lcfs_slab_tally_add(struct lcfs_slab_tally *t, void *p)
{
	struct slab_chunk *c = chunk_of(p);
	size_t i;

	if (t->slots == NULL || (t->n + 1) * 2 > t->mask + 1) {
		size_t cap = t->slots != NULL ? (t->mask + 1) * 2 : 64;
		struct lcfs_slab_tally bigger = { .mask = cap - 1, .n = t->n };

		bigger.slots = calloc(cap, sizeof(*bigger.slots));
		if (bigger.slots == NULL)
			return false;
		for (size_t j = 0; t->slots != NULL && j <= t->mask; j++) {
			if (t->slots[j].chunk != NULL)
				bigger.slots[tally_pos(&bigger, t->slots[j].chunk)] =
					t->slots[j];
		}
		free(t->slots);
		*t = bigger;
	}
	i = tally_pos(t, c);
	if (t->slots[i].chunk == NULL) {
		t->slots[i].chunk = c;
		t->n++;
	}
	t->slots[i].n++;
	return true;
}

void lcfs_slab_tally_apply(struct lcfs_slab_tally *t)
{
	for (size_t i = 0; t->slots != NULL && i <= t->mask; i++) {
		if (t->slots[i].chunk != NULL)
			chunk_put_n(t->slots[i].chunk, t->slots[i].n);
	}
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* ---- Node arenas -------------------------------------------------------- */

#define NODES_PER_CHUNK ((LCFS_SLAB_CHUNK - CHUNK_HEADER) / sizeof(struct lcfs_node_s))

static struct lcfs_node_s *arena_node(const struct lcfs_node_arena *a, size_t i)
{
	return (struct lcfs_node_s *)((char *)a->chunks[i / NODES_PER_CHUNK] +
				      CHUNK_HEADER +
				      (i % NODES_PER_CHUNK) * sizeof(struct lcfs_node_s));
}

/* Index of @n in @a, or SIZE_MAX if it is not one of its nodes. */
static size_t arena_index(const struct lcfs_node_arena *a,
			  const struct lcfs_node_s *n)
{
	struct slab_chunk *c = chunk_of(n);
	size_t off;

	if (!n->in_slab || c->seq >= a->n_chunks || a->chunks[c->seq] != c)
		return SIZE_MAX;
	off = (size_t)((const char *)n - (const char *)c) - CHUNK_HEADER;
	return (size_t)c->seq * NODES_PER_CHUNK + off / sizeof(*n);
}

struct lcfs_node_s *lcfs_node_arena_new(struct lcfs_node_arena *a)
{
	struct lcfs_node_s *n;

	if (a->n_nodes == a->n_chunks * NODES_PER_CHUNK) {
		struct slab_chunk *c;
		void **v = lcfs_array_reserve(a->chunks, a->n_chunks, &a->chunks_cap,
					      sizeof(*v), 16);

		if (v == NULL)
			return NULL;
		a->chunks = v;
		if (a->n_chunks >= UINT32_MAX)
			return NULL;
		c = chunk_new(a->n_chunks >= SMALL_CHUNKS);
		if (c == NULL)
			return NULL;
		c->seq = (uint32_t)a->n_chunks;
		a->chunks[a->n_chunks++] = c;
	}
	n = arena_node(a, a->n_nodes++);
	memset(n, 0, sizeof(*n));
	chunk_of(n)->live++;
	n->ref = 1;
	n->nlink = 1;
	n->in_slab = true;
	return n;
}

void lcfs_node_arena_done(struct lcfs_node_arena *a)
{
	for (size_t i = 0; i < a->n_chunks; i++)
		chunk_put(a->chunks[i]);
	free(a->chunks);
	memset(a, 0, sizeof(*a));
}

/* How many nodes ahead the passes below ask for the memory they will read
 * next: the nodes come from all over the arena, and without this every
 * one of them is a cache miss waited for on its own. */
#define AHEAD 8

static void prefetch_node(const struct lcfs_node_s *n)
{
	__builtin_prefetch(n);
	__builtin_prefetch((const char *)n + sizeof(*n) - 1);
}

/* Visiting order into @order (breadth first, children in their array's
 * order), each node's new index in its scratch field, and in *@next_at
 * the new index of the first child of the node at new index @at. False
 * when the tree is not made of the arena's nodes: every scratch field is
 * then zero. */
static bool arena_order(struct lcfs_node_arena *a, struct lcfs_node_s *root,
			uint32_t *order, size_t at, size_t *next_at)
{
	size_t n = a->n_nodes, count = 0;

	order[count++] = (uint32_t)arena_index(a, root);
	root->scratch = 0;
	for (size_t k = 0; k < count; k++) {
		struct lcfs_node_s *node = arena_node(a, order[k]);
		struct lcfs_node_s **children = node->children;
		size_t nc = node->n_children;

		if (k == at)
			*next_at = count;

		if (node->link_to != NULL && arena_index(a, node->link_to) == SIZE_MAX)
			goto fail;
		for (size_t i = 0; i < nc; i++) {
			struct lcfs_node_s *child = children[i];
			size_t ci;

			if (i + AHEAD < nc)
				__builtin_prefetch(&children[i + AHEAD]->scratch);
			ci = arena_index(a, child);
			if (ci == SIZE_MAX || count == n)
				goto fail;
			child->scratch = (uint32_t)count;
			order[count++] = (uint32_t)ci;
		}
	}
	if (count == n)
		return true;
fail:
	for (size_t i = 0; i < n; i++)
		arena_node(a, i)->scratch = 0;
	return false;
}

/* One part of the move's second pass: the nodes at new indices [from,
 * to), the first child of the node at @from at new index @next. */
struct repoint_part {
	struct lcfs_node_arena *a;
	const uint32_t *order;
	size_t from, to, next;
	void (*visit)(struct lcfs_node_s *node, void *data);
	void *data;
};

/* Hands each node of @part to its visit function, then points every
 * pointer into the arena at the node's new place (including a node's
 * pointer to its own inline xattr slot), both in the visiting order. A
 * node's children are next to each other in that order, so they need not
 * be read. Reads of other nodes are of their scratch fields only, which
 * this pass does not write: two parts can run at once. */
static void arena_repoint(const struct repoint_part *part)
{
	struct lcfs_node_arena *a = part->a;
	const uint32_t *order = part->order;
	size_t to = part->to, next = part->next;

	for (size_t k = part->from; k < to; k++) {
		struct lcfs_node_s *node = arena_node(a, order[k]);

		if (k + 2 * AHEAD < to)
			prefetch_node(arena_node(a, order[k + 2 * AHEAD]));
		if (k + AHEAD < to) {
			const struct lcfs_node_s *soon = arena_node(a, order[k + AHEAD]);

			__builtin_prefetch(soon->name);
			__builtin_prefetch(soon->payload);
			__builtin_prefetch(soon->children);
		}

		part->visit(node, part->data);
		if (node->xattrs == &node->xattr_inline)
			node->xattrs = &arena_node(a, k)->xattr_inline;
		if (node->parent != NULL)
			node->parent = arena_node(a, node->parent->scratch);
		if (node->link_to != NULL)
			node->link_to = arena_node(a, node->link_to->scratch);
		for (size_t c = 0; c < node->n_children; c++)
			node->children[c] = arena_node(a, next++);
	}
}

static void *repoint_main(void *arg)
{
	arena_repoint(arg);
	return NULL;
}

/* Moves the nodes in place, front to back: position k receives the node
 * at old index order[k] by a swap with the node there, whose scratch field
 * (its new index) says which entry of @order is to follow it. From k on,
 * order[j] is where the node bound for j is now, so the nodes a few steps
 * ahead can be asked for: nothing waits on a chain of loads, as following
 * the permutation's cycles would. */
static void arena_permute(struct lcfs_node_arena *a, uint32_t *order)
{
	size_t n = a->n_nodes;
	struct lcfs_node_s tmp;

	for (size_t k = 0; k < n; k++) {
		struct lcfs_node_s *here = arena_node(a, k);
		size_t from = order[k];

		if (k + 2 * AHEAD < n) {
			prefetch_node(arena_node(a, order[k + 2 * AHEAD]));
			__builtin_prefetch(&order[arena_node(a, k + AHEAD)->scratch]);
		}
		if (from != k) {
			struct lcfs_node_s *there = arena_node(a, from);

			order[here->scratch] = (uint32_t)from;
			tmp = *here;
			*here = *there;
			*there = tmp;
		}
		here->scratch = 0;
	}
}

/*
 * Moves every node of the arena to the position the writer visits it in:
 * breadth first, children in name order. Pointers are rewritten first
 * (each node's scratch field holds its new index), then the nodes are
 * moved in place, so that nothing but a 4-byte index per node is
 * allocated. With two parts, the second half of the nodes is repointed
 * on a thread of its own.
 */
int lcfs_node_arena_move(struct lcfs_node_arena *a, struct lcfs_node_s **rootp,
			 void (*visit)(struct lcfs_node_s *node, void *data),
			 void *const *data, size_t n_parts)
{
	size_t n = a->n_nodes, half = n_parts > 1 ? n / 2 : n, next_at = 0;
	struct repoint_part parts[2];
	cleanup_free uint32_t *order = NULL;
	pthread_t thread;
	bool threaded = false;

	if (n == 0 || n >= UINT32_MAX || arena_index(a, *rootp) == SIZE_MAX)
		return 0;
	order = malloc(n * sizeof(*order));
	if (order == NULL)
		return -ENOMEM;
	if (!arena_order(a, *rootp, order, half, &next_at))
		return 0;
	parts[0] = (struct repoint_part){ a, order, 0, half, 1, visit, data[0] };
	parts[1] = (struct repoint_part){ a, order, half, n, next_at, visit,
					  n_parts > 1 ? data[1] : NULL };
	if (half < n)
		threaded = pthread_create(&thread, NULL, repoint_main, &parts[1]) == 0;
	arena_repoint(&parts[0]);
	if (threaded)
		pthread_join(thread, NULL);
	else if (half < n)
		arena_repoint(&parts[1]);
	arena_permute(a, order);
	*rootp = arena_node(a, 0);
	return 1;
}
