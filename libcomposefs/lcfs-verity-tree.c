/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity Merkle trees in memory, to verify a file block by block as it
 * is read (see lcfs-verity-tree-internal.h).
 *
 * Shape of the tree: the data is cut into 4096-byte blocks (the last one
 * padded with zeros); level 0 holds their SHA-256 hashes, 128 to a
 * 4096-byte hash block (the last one padded with zeros); level L + 1 holds
 * the hashes of the blocks of level L, and so on up to the first level
 * that fits in one block, whose hash is the root. A file of one block has
 * no level at all: its block's hash is the root; an empty file has an
 * all-zero root. The file digest is the SHA-256 of the descriptor that
 * records the data size and the root.
 *
 * Trust: the root is trusted once the descriptor digest equals the
 * expected one; a kept level was checked, block by block, against the
 * level above when the tree was built; a block of a level not kept is
 * trusted once its hash equals its entry in the (trusted) level above.
 */
#include "config.h"

#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fsverity.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "lcfs-verity-tree-internal.h"
#include "lcfs-util.h"
#include "lcfs-node.h"
#include "lcfs-fsverity.h"

#define BLOCK 4096
#define HASH 32
#define PER_BLOCK (BLOCK / HASH)
/* A 2^64-byte file has 2^52 blocks: 8 levels of 128-way fan-out. */
#define MAX_LEVELS 9
/* Data read per system call while building. */
#define BUILD_READ (256 * 1024)

_Static_assert(HASH == LCFS_DIGEST_SIZE, "SHA-256 hash size");

struct lcfs_verity_budget {
	pthread_mutex_t lock;
	uint64_t limit;
	uint64_t used;
};

/* Last block derived and checked of a level that is not kept. */
struct derived_block {
	bool valid;
	uint64_t index;
	uint8_t data[BLOCK];
};

struct lcfs_verity_tree {
	uint64_t size;                /* data bytes */
	uint64_t n_hashes[MAX_LEVELS]; /* hashes held by level L (n[0]: data blocks) */
	uint64_t n_blocks[MAX_LEVELS]; /* hash blocks of level L */
	unsigned n_levels;
	unsigned first_kept;          /* levels first_kept..n_levels-1 are kept */
	uint8_t *level[MAX_LEVELS];   /* kept levels, n_blocks[L] blocks each */
	uint8_t root[HASH];
	struct lcfs_verity_budget *budget;
	uint64_t charged;
	pthread_mutex_t lock;         /* guards derived[] */
	struct derived_block *derived; /* first_kept entries */
	uint8_t *storage;             /* all kept levels, one allocation */
};

/* ---- Budget -------------------------------------------------------------------- */

struct lcfs_verity_budget *lcfs_verity_budget_new(uint64_t limit)
{
	struct lcfs_verity_budget *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->limit = limit;
	return b;
}

void lcfs_verity_budget_free(struct lcfs_verity_budget *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

uint64_t lcfs_verity_budget_used(struct lcfs_verity_budget *b)
{
	uint64_t used;

	pthread_mutex_lock(&b->lock);
	used = b->used;
	pthread_mutex_unlock(&b->lock);
	return used;
}

uint64_t lcfs_verity_budget_available(struct lcfs_verity_budget *b)
{
	uint64_t avail;

	pthread_mutex_lock(&b->lock);
	avail = b->used < b->limit ? b->limit - b->used : 0;
	pthread_mutex_unlock(&b->lock);
	return avail;
}

/* ---- Geometry -------------------------------------------------------------------- */

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Sets the level counts of a tree over @size bytes. */
static int tree_geometry(struct lcfs_verity_tree *t, uint64_t size)
{
	uint64_t n = div_up(size, BLOCK);

	t->size = size;
	t->n_levels = 0;
	if (n <= 1)
		return 0;
	for (;;) {
		if (t->n_levels >= MAX_LEVELS)
			return -EFBIG;
		t->n_hashes[t->n_levels] = n;
		t->n_blocks[t->n_levels] = div_up(n, PER_BLOCK);
		n = t->n_blocks[t->n_levels];
		t->n_levels++;
		if (n == 1)
			return 0;
	}
}

uint64_t lcfs_verity_tree_memory(uint64_t size)
{
	struct lcfs_verity_tree t;
	uint64_t total = 0;

	if (tree_geometry(&t, size) < 0)
		return UINT64_MAX;
	for (unsigned l = 0; l < t.n_levels; l++)
		total += t.n_blocks[l] * BLOCK;
	return total;
}

/*
 * Chooses how many levels to keep: from the top down while the budget
 * has room, the top block always (so a tree costs at least 4 KiB, plus
 * one cached block per level it does not keep), charges them and
 * allocates them, zeroed.
 */
static int tree_alloc_levels(struct lcfs_verity_tree *t, struct lcfs_verity_budget *b)
{
	uint64_t avail = UINT64_MAX, kept;
	unsigned first;

	t->budget = b;
	t->first_kept = 0;
	if (t->n_levels == 0)
		return 0;
	if (b != NULL) {
		pthread_mutex_lock(&b->lock);
		avail = b->used < b->limit ? b->limit - b->used : 0;
	}
	first = t->n_levels - 1;
	kept = t->n_blocks[first] * BLOCK;
	while (first > 0) {
		uint64_t more = t->n_blocks[first - 1] * BLOCK;

		if (more > avail || kept + more > avail)
			break;
		kept += more;
		first--;
	}
	t->charged = kept + (uint64_t)first * sizeof(struct derived_block);
	if (b != NULL) {
		b->used += t->charged;
		pthread_mutex_unlock(&b->lock);
	}
	t->first_kept = first;
	if (kept > SIZE_MAX)
		return -ENOMEM;
	t->storage = calloc(1, (size_t)kept);
	if (t->storage == NULL)
		return -ENOMEM;
	if (first > 0) {
		t->derived = calloc(first, sizeof(*t->derived));
		if (t->derived == NULL)
			return -ENOMEM;
	}
	kept = 0;
	for (unsigned l = first; l < t->n_levels; l++) {
		t->level[l] = t->storage + kept;
		kept += t->n_blocks[l] * BLOCK;
	}
	return 0;
}

static struct lcfs_verity_tree *tree_new(void)
{
	struct lcfs_verity_tree *t = calloc(1, sizeof(*t));

	if (t != NULL)
		pthread_mutex_init(&t->lock, NULL);
	return t;
}

void lcfs_verity_tree_free(struct lcfs_verity_tree *t)
{
	if (t == NULL)
		return;
	if (t->budget != NULL) {
		pthread_mutex_lock(&t->budget->lock);
		t->budget->used -= t->charged;
		pthread_mutex_unlock(&t->budget->lock);
	}
	pthread_mutex_destroy(&t->lock);
	free(t->storage);
	free(t->derived);
	free(t);
}

uint64_t lcfs_verity_tree_size(const struct lcfs_verity_tree *t)
{
	return t->size;
}

unsigned lcfs_verity_tree_levels(const struct lcfs_verity_tree *t)
{
	return t->n_levels;
}

unsigned lcfs_verity_tree_levels_kept(const struct lcfs_verity_tree *t)
{
	return t->n_levels - t->first_kept;
}

/* ---- Building ---------------------------------------------------------------------- */

/*
 * Bottom-up construction while the data streams by: each level fills its
 * current block (in place when the level is kept, in a scratch block
 * otherwise); a finished block is hashed into the level above, the top
 * one into the root. Level sizes are known from the start, so "finished"
 * includes the partial last block of each level.
 */
struct builder {
	struct lcfs_verity_tree *t;
	uint64_t filled[MAX_LEVELS]; /* hashes added to level L */
	uint8_t scratch[MAX_LEVELS][BLOCK];
};

static int builder_add(struct builder *bd, const uint8_t hash[HASH])
{
	struct lcfs_verity_tree *t = bd->t;
	uint8_t carry[HASH];

	memcpy(carry, hash, HASH);
	if (t->n_levels == 0) {
		memcpy(t->root, carry, HASH);
		return 0;
	}
	for (unsigned l = 0;; l++) {
		uint64_t i = bd->filled[l]++;
		size_t pos = (size_t)(i % PER_BLOCK);
		bool kept = l >= t->first_kept;
		uint8_t *b = kept ? t->level[l] + (i / PER_BLOCK) * BLOCK : bd->scratch[l];
		int r;

		if (!kept && pos == 0)
			memset(b, 0, BLOCK);
		memcpy(b + pos * HASH, carry, HASH);
		if (pos != PER_BLOCK - 1 && i + 1 != t->n_hashes[l])
			return 0;
		/* The block is complete: its hash goes one level up. */
		r = lcfs_sha256(b, BLOCK, carry);
		if (r < 0)
			return r;
		if (l + 1 == t->n_levels) {
			memcpy(t->root, carry, HASH);
			return 0;
		}
	}
}

int lcfs_verity_tree_build(int fd, uint64_t size,
			   const uint8_t digest[LCFS_DIGEST_SIZE],
			   struct lcfs_verity_budget *budget,
			   struct lcfs_verity_tree **out,
			   uint8_t found[LCFS_DIGEST_SIZE])
{
	struct lcfs_verity_tree *t = NULL;
	struct builder *bd = NULL;
	uint8_t *buf = NULL;
	uint8_t got[HASH];
	uint64_t off = 0;
	int r;

	t = tree_new();
	bd = calloc(1, sizeof(*bd));
	buf = malloc(BUILD_READ);
	if (t == NULL || bd == NULL || buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = tree_geometry(t, size);
	if (r < 0)
		goto out;
	r = tree_alloc_levels(t, budget);
	if (r < 0)
		goto out;
	bd->t = t;
	while (off < size) {
		size_t n = size - off < BUILD_READ ? (size_t)(size - off) : BUILD_READ;

		r = lcfs_pread_exact(fd, buf, n, off);
		if (r < 0)
			goto out;
		if (n % BLOCK != 0)
			memset(buf + n, 0, BLOCK - n % BLOCK);
		for (size_t k = 0; k < n; k += BLOCK) {
			uint8_t h[HASH];

			r = lcfs_sha256(buf + k, BLOCK, h);
			if (r == 0)
				r = builder_add(bd, h);
			if (r < 0)
				goto out;
		}
		off += n;
	}
	lcfs_fsverity_descriptor_digest(size, t->root, got);
	if (found != NULL)
		memcpy(found, got, HASH);
	if (memcmp(got, digest, HASH) != 0) {
		r = -EWRONGVERITY;
		goto out;
	}
	*out = lcfs_steal_pointer(&t);
out:
	free(bd);
	free(buf);
	lcfs_verity_tree_free(t);
	return r;
}

/* ---- From the kernel ----------------------------------------------------------------- */

#ifdef FS_IOC_READ_VERITY_METADATA
static int read_metadata(int fd, uint64_t type, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct fsverity_read_metadata_arg arg = {
			.metadata_type = type,
			.offset = off,
			.length = len,
			.buf_ptr = (uintptr_t)p,
		};
		int n = ioctl(fd, FS_IOC_READ_VERITY_METADATA, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ENODATA || errno == ENOTTY || errno == EOPNOTSUPP ?
				       -ENOVERITY :
				       -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}
#endif

int lcfs_verity_tree_from_kernel(int fd, const uint8_t digest[LCFS_DIGEST_SIZE],
				 struct lcfs_verity_budget *budget,
				 struct lcfs_verity_tree **out)
{
#ifdef FS_IOC_READ_VERITY_METADATA
	struct fsverity_descriptor desc;
	struct lcfs_verity_tree *t = NULL;
	uint8_t got[HASH];
	uint64_t level_off[MAX_LEVELS], off = 0;
	int r;

	r = lcfs_fd_measure_fsverity(got, fd);
	if (r < 0)
		return r;
	if (memcmp(got, digest, HASH) != 0)
		return -EWRONGVERITY;
	r = read_metadata(fd, FS_VERITY_METADATA_TYPE_DESCRIPTOR, &desc,
			  sizeof(desc), 0);
	if (r < 0)
		return r;
	if (desc.hash_algorithm != FS_VERITY_HASH_ALG_SHA256 ||
	    desc.log_blocksize != 12 || desc.salt_size != 0)
		return -EWRONGVERITY;
	t = tree_new();
	if (t == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = tree_geometry(t, le64toh(desc.data_size));
	if (r < 0)
		goto out;
	memcpy(t->root, desc.root_hash, HASH);
	/* The descriptor's root and size must give the expected digest. */
	lcfs_fsverity_descriptor_digest(t->size, t->root, got);
	if (memcmp(got, digest, HASH) != 0) {
		r = -EWRONGVERITY;
		goto out;
	}
	r = tree_alloc_levels(t, budget);
	if (r < 0)
		goto out;
	/* The kernel stores the levels top first, each from a block
	 * boundary. */
	for (unsigned l = t->n_levels; l-- > 0;) {
		level_off[l] = off;
		off += t->n_blocks[l] * BLOCK;
	}
	for (unsigned l = t->n_levels; l-- > t->first_kept;) {
		r = read_metadata(fd, FS_VERITY_METADATA_TYPE_MERKLE_TREE, t->level[l],
				  t->n_blocks[l] * BLOCK, level_off[l]);
		if (r < 0)
			goto out;
		for (uint64_t j = 0; j < t->n_blocks[l]; j++) {
			const uint8_t *want = l + 1 == t->n_levels ?
						      t->root :
						      t->level[l + 1] + j * HASH;

			r = lcfs_sha256(t->level[l] + j * BLOCK, BLOCK, got);
			if (r < 0)
				goto out;
			if (memcmp(got, want, HASH) != 0) {
				r = -EIO;
				goto out;
			}
		}
	}
	*out = lcfs_steal_pointer(&t);
out:
	lcfs_verity_tree_free(t);
	return r;
#else
	(void)fd;
	(void)digest;
	(void)budget;
	(void)out;
	return -ENOVERITY;
#endif
}

/* ---- Checking reads ------------------------------------------------------------------- */

/* Per-read state. */
struct reader {
	struct lcfs_verity_tree *t;
	int fd;
	uint8_t *data; /* PER_BLOCK data blocks, for deriving level 0 */
};

/* Computes block @j of level @l from the data, without checking it. */
static int derive_block(struct reader *rd, unsigned l, uint64_t j, uint8_t out[BLOCK])
{
	struct lcfs_verity_tree *t = rd->t;
	uint64_t first = j * PER_BLOCK;
	uint64_t count = t->n_hashes[l] - first;
	int r;

	if (count > PER_BLOCK)
		count = PER_BLOCK;
	memset(out, 0, BLOCK);
	if (l == 0) {
		uint64_t off = first * BLOCK;
		uint64_t len = count * BLOCK;

		if (off + len > t->size)
			len = t->size - off;
		if (rd->data == NULL) {
			rd->data = malloc(PER_BLOCK * BLOCK);
			if (rd->data == NULL)
				return -ENOMEM;
		}
		r = lcfs_pread_exact(rd->fd, rd->data, (size_t)len, off);
		if (r == -ENODATA)
			return -EIO;
		if (r < 0)
			return r;
		memset(rd->data + len, 0, (size_t)(count * BLOCK - len));
		for (uint64_t k = 0; k < count; k++) {
			r = lcfs_sha256(rd->data + k * BLOCK, BLOCK,
					    out + k * HASH);
			if (r < 0)
				return r;
		}
		return 0;
	}
	for (uint64_t k = 0; k < count; k++) {
		uint8_t below[BLOCK];

		r = derive_block(rd, l - 1, first + k, below);
		if (r == 0)
			r = lcfs_sha256(below, BLOCK, out + k * HASH);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Copies entry @i of level @l, the trusted hash of block @i of level
 * @l - 1 (of the data when @l is 0), into @out: the root, an entry of a kept level, or an entry of a
 * derived block once that block has been checked. -EIO if it does not
 * check. */
static int trusted_hash(struct reader *rd, unsigned l, uint64_t i, uint8_t out[HASH])
{
	struct lcfs_verity_tree *t = rd->t;
	struct derived_block *d;
	uint8_t block[BLOCK], want[HASH], got[HASH];
	uint64_t j = i / PER_BLOCK;
	int r;

	if (l == t->n_levels) {
		memcpy(out, t->root, HASH);
		return 0;
	}
	if (l >= t->first_kept) {
		memcpy(out, t->level[l] + i * HASH, HASH);
		return 0;
	}
	d = &t->derived[l];
	pthread_mutex_lock(&t->lock);
	if (d->valid && d->index == j) {
		memcpy(out, d->data + (i % PER_BLOCK) * HASH, HASH);
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	pthread_mutex_unlock(&t->lock);

	r = derive_block(rd, l, j, block);
	if (r < 0)
		return r;
	r = trusted_hash(rd, l + 1, j, want);
	if (r < 0)
		return r;
	r = lcfs_sha256(block, BLOCK, got);
	if (r < 0)
		return r;
	if (memcmp(got, want, HASH) != 0)
		return -EIO;
	memcpy(out, block + (i % PER_BLOCK) * HASH, HASH);
	pthread_mutex_lock(&t->lock);
	memcpy(d->data, block, BLOCK);
	d->index = j;
	d->valid = true;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Blocks read and checked per step of a read, to bound the bounce
 * buffer whatever the length asked for. */
#define READ_STEP_BLOCKS 64

/* Reads and checks the blocks @first..@last (at most READ_STEP_BLOCKS)
 * into @bounce. 0, -EIO with *@bad, or -errno. */
static int read_blocks(struct reader *rd, uint8_t *bounce, uint64_t first,
		       uint64_t last, uint64_t *bad)
{
	struct lcfs_verity_tree *t = rd->t;
	uint64_t off = first * BLOCK;
	uint64_t span = (last - first + 1) * BLOCK;
	uint64_t want = off + span > t->size ? t->size - off : span;
	int r;

	r = lcfs_pread_exact(rd->fd, bounce, (size_t)want, off);
	if (r == -ENODATA) {
		/* The file shrank: the first block it lost is bad. */
		struct stat st;

		*bad = first;
		if (fstat(rd->fd, &st) == 0 && (uint64_t)st.st_size / BLOCK > first)
			*bad = (uint64_t)st.st_size / BLOCK;
		return -EIO;
	}
	if (r < 0)
		return r;
	memset(bounce + want, 0, (size_t)(span - want));
	for (uint64_t b = first; b <= last; b++) {
		uint8_t expect[HASH], got[HASH];

		r = trusted_hash(rd, 0, b, expect);
		if (r == 0)
			r = lcfs_sha256(bounce + (b - first) * BLOCK,
					    BLOCK, got);
		if (r == 0 && memcmp(got, expect, HASH) != 0)
			r = -EIO;
		if (r < 0) {
			*bad = b;
			return r;
		}
	}
	return 0;
}

ssize_t lcfs_verity_tree_read(struct lcfs_verity_tree *t, int fd, void *buf,
			      size_t len, uint64_t off, uint64_t *bad_block)
{
	struct reader rd = { .t = t, .fd = fd };
	cleanup_free uint8_t *bounce = NULL;
	uint64_t end, pos, span, bad = 0;
	ssize_t ret;
	int r = 0;

	if (off >= t->size || len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	end = t->size - off < len ? t->size : off + len;
	span = ((end - 1) / BLOCK - off / BLOCK + 1) * BLOCK;
	bounce = malloc(span < READ_STEP_BLOCKS * BLOCK ? (size_t)span :
							  READ_STEP_BLOCKS * BLOCK);
	if (bounce == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (pos = off; pos < end;) {
		uint64_t first = pos / BLOCK;
		uint64_t last = (end - 1) / BLOCK;
		uint64_t step_end;

		if (last - first >= READ_STEP_BLOCKS)
			last = first + READ_STEP_BLOCKS - 1;
		r = read_blocks(&rd, bounce, first, last, &bad);
		if (r < 0)
			break;
		step_end = (last + 1) * BLOCK < end ? (last + 1) * BLOCK : end;
		memcpy((uint8_t *)buf + (pos - off), bounce + (pos - first * BLOCK),
		       (size_t)(step_end - pos));
		pos = step_end;
	}
out:
	free(rd.data);
	if (r == -EIO && bad_block != NULL)
		*bad_block = bad;
	/* Nothing is handed out from a read that failed part way: a reader
	 * sees either the whole range or an error. */
	ret = r < 0 ? r : (ssize_t)(end - off);
	return ret;
}
