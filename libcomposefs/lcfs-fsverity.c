/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity digests (docs/image-format.md, "fs-verity digest"): standard
 * fs-verity with SHA-256, 4096-byte Merkle tree blocks and no salt, as
 * computed by the kernel and by `fsverity digest --hash-alg=sha256
 * --block-size=4096`.
 *
 * One engine computes every digest: an incremental ("push") hasher over
 * OpenSSL's SHA-256, fed from buffers, files, read callbacks and the image
 * being streamed out. It uses OpenSSL's plain SHA256_CTX functions, which
 * work on caller memory and cannot fail: the EVP interface fetches the
 * algorithm at run time, and OpenSSL 3.0 crashes in that fetch when an
 * earlier allocation inside it failed (seen under `ulimit -v`), and
 * libfsverity aborts the process when its OpenSSL context cannot be
 * allocated. A library must report ENOMEM instead, and with these
 * functions the only allocation is the hasher's own state.
 *
 * The empty input has the kernel's digest (root hash all zero), not the
 * reference's userspace value (docs/compatibility.md, "Empty-file digest").
 */
#include "config.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* The SHA256_CTX functions are marked deprecated by OpenSSL 3.0 in favour
 * of EVP, whose algorithm fetch is not safe under memory pressure (see
 * above). They remain part of OpenSSL's API. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <string.h>

#include "lcfs-compat.h"
#include "lcfs-error.h"
#include "lcfs-util.h"
#include "lcfs-fsverity.h"
#include "lcfs-verity-tree-internal.h"

#define VERITY_BLOCK_SIZE 4096
#define VERITY_LOG_BLOCK_SIZE 12
#define VERITY_HASH_SIZE 32
#define VERITY_HASHES_PER_BLOCK (VERITY_BLOCK_SIZE / VERITY_HASH_SIZE)
#define VERITY_HASH_ALG_SHA256 1
#define VERITY_DESCRIPTOR_SIZE 256

/*
 * Levels of the tree, the data block hashes being level 0. A 2^64-byte
 * input has 2^52 blocks; each level divides the count by 128, so the root
 * is reached at level 8 at the latest.
 */
#define VERITY_MAX_LEVELS 9

/* Read size of the whole-file fast path: large enough to keep the number of
 * system calls negligible, small enough to stay in the L2 cache. */
#define FAST_READ_SIZE (256 * 1024)

/* Read size of the reusable file hasher, whose buffer is allocated once:
 * fewer system calls for large files. Reading into a buffer beat mapping
 * the file: copying out of the page cache costs less than setting up and
 * tearing down the page tables of a mapping, and read() needs nothing
 * against a file truncated under us. */
#define HASHER_READ_SIZE (1024 * 1024)

/* Read size of the callback and pipe paths. */
#define STREAM_READ_SIZE (64 * 1024)

_Static_assert(LCFS_DIGEST_SIZE == VERITY_HASH_SIZE, "SHA-256 digest size");
_Static_assert(LCFS_FSVERITY_GROUP_SIZE == VERITY_HASHES_PER_BLOCK * VERITY_BLOCK_SIZE,
	       "a group is the data one block of hashes covers");

/* ---- SHA-256 ------------------------------------------------------------------ */

static void sha256_block(const void *data, size_t len, uint8_t out[VERITY_HASH_SIZE])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	SHA256_Update(&ctx, data, len);
	SHA256_Final(out, &ctx);
}

int lcfs_sha256(const void *data, size_t len, uint8_t digest[LCFS_DIGEST_SIZE])
{
	sha256_block(data, len, digest);
	return 0;
}

/* ---- Descriptor ------------------------------------------------------------------ */

/*
 * The 256-byte fs-verity descriptor (docs/image-format.md, "fs-verity
 * digest"): version 1, SHA-256, log2 block size 12, no salt, no signature,
 * the little-endian data size, the root hash in a 64-byte field, then
 * zeros. Its SHA-256 is the file digest.
 */
void lcfs_fsverity_descriptor_digest(uint64_t data_size,
				     const uint8_t root[LCFS_DIGEST_SIZE],
				     uint8_t digest[LCFS_DIGEST_SIZE])
{
	uint8_t d[VERITY_DESCRIPTOR_SIZE] = { 0 };

	d[0] = 1;
	d[1] = VERITY_HASH_ALG_SHA256;
	d[2] = VERITY_LOG_BLOCK_SIZE;
	d[3] = 0; /* salt size */
	/* d[4..7]: signature size, 0 */
	for (int i = 0; i < 8; i++)
		d[8 + i] = (uint8_t)(data_size >> (8 * i));
	memcpy(d + 16, root, VERITY_HASH_SIZE);
	sha256_block(d, sizeof(d), digest);
}

/* ---- Push-style hasher ------------------------------------------------------------ */

/*
 * Each level keeps only its last, still open Merkle block. A full block is
 * hashed into the level above only when one more hash arrives, because a
 * level that ends up with a single full block is the top of the tree and
 * its hash is the root (docs/image-format.md, "fs-verity digest"). Memory
 * is therefore fixed: one data block plus one block per level.
 */
struct lcfs_fsverity_stream {
	uint64_t size;       /* bytes seen so far */
	size_t pending;      /* bytes waiting in @block */
	unsigned n_levels;   /* levels holding at least one hash */
	int err;             /* first error, reported by _final() */
	/* When set, hashes arriving at level 1 (one per group) are stored
	 * here instead of being built into the tree. */
	uint8_t (*groups_out)[VERITY_HASH_SIZE];
	size_t n_groups_out;
	uint32_t fill[VERITY_MAX_LEVELS]; /* hashes in each level block */
	uint8_t block[VERITY_BLOCK_SIZE];
	uint8_t level[VERITY_MAX_LEVELS][VERITY_BLOCK_SIZE];
};

static void stream_reset(struct lcfs_fsverity_stream *s)
{
	s->size = 0;
	s->pending = 0;
	s->n_levels = 0;
	s->err = 0;
	s->groups_out = NULL;
	s->n_groups_out = 0;
	memset(s->fill, 0, sizeof(s->fill));
}

struct lcfs_fsverity_stream *lcfs_fsverity_stream_new(void)
{
	struct lcfs_fsverity_stream *s = malloc(sizeof(*s));

	if (s == NULL)
		return NULL;
	stream_reset(s);
	return s;
}

void lcfs_fsverity_stream_free(struct lcfs_fsverity_stream *s)
{
	free(s);
}

/* Appends @hash to level @lvl, first closing that level's block into the
 * level above if it is full. */
static void stream_push(struct lcfs_fsverity_stream *s, unsigned lvl,
			const uint8_t hash[VERITY_HASH_SIZE])
{
	uint8_t carry[VERITY_HASH_SIZE], up[VERITY_HASH_SIZE];

	memcpy(carry, hash, VERITY_HASH_SIZE);
	for (;;) {
		if (lvl == 1 && s->groups_out != NULL) {
			memcpy(s->groups_out[s->n_groups_out++], carry, VERITY_HASH_SIZE);
			return;
		}
		if (lvl >= VERITY_MAX_LEVELS) {
			s->err = -EFBIG;
			return;
		}
		if (lvl >= s->n_levels)
			s->n_levels = lvl + 1;
		if (s->fill[lvl] < VERITY_HASHES_PER_BLOCK) {
			memcpy(s->level[lvl] + s->fill[lvl] * VERITY_HASH_SIZE,
			       carry, VERITY_HASH_SIZE);
			s->fill[lvl]++;
			return;
		}
		sha256_block(s->level[lvl], VERITY_BLOCK_SIZE, up);
		memcpy(s->level[lvl], carry, VERITY_HASH_SIZE);
		s->fill[lvl] = 1;
		memcpy(carry, up, VERITY_HASH_SIZE);
		lvl++;
	}
}

static void stream_data_block(struct lcfs_fsverity_stream *s, const uint8_t *block)
{
	uint8_t hash[VERITY_HASH_SIZE];

	sha256_block(block, VERITY_BLOCK_SIZE, hash);
	stream_push(s, 0, hash);
}

void lcfs_fsverity_stream_update(struct lcfs_fsverity_stream *s, const void *buf,
				 size_t len)
{
	const uint8_t *p = buf;

	if (s->err < 0 || len == 0)
		return;
	s->size += len;
	if (s->pending > 0) {
		if (!lcfs_buffer_append(s->block, VERITY_BLOCK_SIZE, &s->pending, &p, &len))
			return;
		stream_data_block(s, s->block);
		s->pending = 0;
	}
	/* Whole blocks are hashed in place, without a copy. */
	while (len >= VERITY_BLOCK_SIZE && s->err == 0) {
		stream_data_block(s, p);
		p += VERITY_BLOCK_SIZE;
		len -= VERITY_BLOCK_SIZE;
	}
	if (len > 0) {
		memcpy(s->block, p, len);
		s->pending = len;
	}
}

static int stream_finish(struct lcfs_fsverity_stream *s,
			 uint8_t digest[LCFS_DIGEST_SIZE])
{
	uint8_t root[VERITY_HASH_SIZE] = { 0 };

	if (s->err < 0)
		return s->err;
	/* Empty input: the root hash stays all zero (the kernel's rule). */
	if (s->size > 0) {
		if (s->pending > 0) {
			memset(s->block + s->pending, 0,
			       VERITY_BLOCK_SIZE - s->pending);
			stream_data_block(s, s->block);
			s->pending = 0;
		}
		/* Close every open block bottom-up; the first level left
		 * with a single hash and nothing above holds the root. */
		for (unsigned lvl = 0;; lvl++) {
			uint8_t up[VERITY_HASH_SIZE];
			uint8_t *b;

			if (s->err < 0)
				return s->err;
			/* Only a tree built from group hashes has empty
			 * levels below its top: level 0. */
			if (s->fill[lvl] == 0 && lvl + 1 < s->n_levels)
				continue;
			b = s->level[lvl];
			if (s->fill[lvl] == 1 && lvl + 1 >= s->n_levels) {
				memcpy(root, b, VERITY_HASH_SIZE);
				break;
			}
			memset(b + s->fill[lvl] * VERITY_HASH_SIZE, 0,
			       VERITY_BLOCK_SIZE - s->fill[lvl] * VERITY_HASH_SIZE);
			sha256_block(b, VERITY_BLOCK_SIZE, up);
			s->fill[lvl] = 0;
			stream_push(s, lvl + 1, up);
		}
	}
	lcfs_fsverity_descriptor_digest(s->size, root, digest);
	return 0;
}

int lcfs_fsverity_stream_final(struct lcfs_fsverity_stream *s,
			       uint8_t digest[LCFS_DIGEST_SIZE])
{
	int r = stream_finish(s, digest);

	lcfs_fsverity_stream_free(s);
	return r;
}

/* ---- Whole files, fast path ---------------------------------------------------------- */

/* Feeds @len bytes of @fd to @s through @buf (@buf_size bytes): from
 * offset @off with pread() when @positional, else with read() from the
 * current offset, which is left after them. -ENODATA if the file ends
 * before: a file that shrank under us has no digest for @len bytes. */
static int stream_from_fd(struct lcfs_fsverity_stream *s, uint8_t *buf, size_t buf_size,
			  int fd, bool positional, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	while (off < end) {
		size_t want = end - off < buf_size ? (size_t)(end - off) : buf_size;
		ssize_t n = positional ? pread(fd, buf, want, (off_t)off) : read(fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		lcfs_fsverity_stream_update(s, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

/* Digest of @size bytes of @fd: from offset 0 with pread() when
 * @positional, else with read() from the current offset. */
static int digest_fd_bytes(int fd, bool positional, uint64_t size,
			   uint8_t digest[LCFS_DIGEST_SIZE])
{
	/* A small file needs no large buffer (nor its page faults). */
	size_t buf_size = size < FAST_READ_SIZE ? (size_t)size + 1 : FAST_READ_SIZE;
	struct lcfs_fsverity_stream *s;
	cleanup_free uint8_t *buf = NULL;
	int r;

	buf = malloc(buf_size);
	s = lcfs_fsverity_stream_new();
	if (buf == NULL || s == NULL) {
		lcfs_fsverity_stream_free(s);
		return -ENOMEM;
	}
	r = stream_from_fd(s, buf, buf_size, fd, positional, 0, size);
	if (r < 0) {
		lcfs_fsverity_stream_free(s);
		return r;
	}
	return lcfs_fsverity_stream_final(s, digest);
}

int lcfs_fsverity_digest_fd_fast(int fd, uint64_t size,
				 uint8_t digest[LCFS_DIGEST_SIZE])
{
	return digest_fd_bytes(fd, true, size, digest);
}

struct lcfs_fsverity_file_hasher {
	struct lcfs_fsverity_stream s;
	uint8_t buf[HASHER_READ_SIZE];
};

struct lcfs_fsverity_file_hasher *lcfs_fsverity_file_hasher_new(void)
{
	return malloc(sizeof(struct lcfs_fsverity_file_hasher));
}

void lcfs_fsverity_file_hasher_free(struct lcfs_fsverity_file_hasher *h)
{
	free(h);
}

int lcfs_fsverity_file_hasher_digest(struct lcfs_fsverity_file_hasher *h, int fd,
				     uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE])
{
	int r;

	stream_reset(&h->s);
	r = stream_from_fd(&h->s, h->buf, sizeof(h->buf), fd, true, 0, size);
	if (r < 0)
		return r;
	return stream_finish(&h->s, digest);
}

int lcfs_fsverity_file_hasher_groups(struct lcfs_fsverity_file_hasher *h, int fd,
				     uint64_t off, uint64_t len,
				     uint8_t (*groups)[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s = &h->s;
	int r;

	if (len == 0 || off % LCFS_FSVERITY_GROUP_SIZE != 0 || off + len < off)
		return -EINVAL;
	stream_reset(s);
	s->groups_out = groups;
	r = stream_from_fd(s, h->buf, sizeof(h->buf), fd, true, off, len);
	if (r < 0)
		return r;
	/* The last group is closed here, padded as the whole file's tree
	 * pads it: a partial data block with zeros, then the group's block of
	 * hashes with zeros. */
	if (s->pending > 0) {
		memset(s->block + s->pending, 0, VERITY_BLOCK_SIZE - s->pending);
		stream_data_block(s, s->block);
		s->pending = 0;
	}
	if (s->fill[0] > 0) {
		uint8_t *b = s->level[0];

		memset(b + s->fill[0] * VERITY_HASH_SIZE, 0,
		       VERITY_BLOCK_SIZE - s->fill[0] * VERITY_HASH_SIZE);
		sha256_block(b, VERITY_BLOCK_SIZE, groups[s->n_groups_out++]);
		s->fill[0] = 0;
	}
	s->groups_out = NULL;
	return 0;
}

int lcfs_fsverity_digest_from_groups(const uint8_t (*groups)[LCFS_DIGEST_SIZE],
				     uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE])
{
	uint64_t n = size / LCFS_FSVERITY_GROUP_SIZE + (size % LCFS_FSVERITY_GROUP_SIZE != 0);
	struct lcfs_fsverity_stream *s;

	if (n < 2)
		return -EINVAL;
	s = lcfs_fsverity_stream_new();
	if (s == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		stream_push(s, 1, groups[i]);
	s->size = size;
	return lcfs_fsverity_stream_final(s, digest);
}

/* ---- Pull-style computations ---------------------------------------------------------- */

/* Feeds everything @read_cb yields to the push hasher. A read error is
 * ENODATA, as documented for lcfs_compute_fsverity_from_content(). */
static int stream_from_cb(void *file, lcfs_read_cb read_cb, bool retry_eintr,
			  uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s;
	cleanup_free uint8_t *buf = NULL;

	buf = malloc(STREAM_READ_SIZE);
	s = lcfs_fsverity_stream_new();
	if (buf == NULL || s == NULL) {
		lcfs_fsverity_stream_free(s);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read_cb(file, buf, STREAM_READ_SIZE);

		if (n < 0 && retry_eintr && errno == EINTR)
			continue;
		if (n < 0 || n > STREAM_READ_SIZE) {
			lcfs_fsverity_stream_free(s);
			return -ENODATA;
		}
		if (n == 0)
			break;
		lcfs_fsverity_stream_update(s, buf, (size_t)n);
	}
	return lcfs_fsverity_stream_final(s, digest);
}

static ssize_t fd_read_cb(void *file, void *buf, size_t count)
{
	return read(*(int *)file, buf, count);
}

/* Digest of @fd from its current offset to its end, 0 or -errno. */
static int fsverity_from_fd(int fd, uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct stat st;
	off_t off;

	if (fstat(fd, &st) < 0)
		return -errno;
	off = lseek(fd, 0, SEEK_CUR);
	/* Pipes and other unsized inputs are read to their end. A regular
	 * file is read up to the size it has now, so that one still being
	 * appended to has a definite digest. */
	if (!S_ISREG(st.st_mode) || off < 0)
		return stream_from_cb(&fd, fd_read_cb, true, digest);
	return digest_fd_bytes(fd, false, off < st.st_size ? (uint64_t)(st.st_size - off) : 0,
			       digest);
}

LCFS_PUBLIC int lcfs_compute_fsverity_from_content(uint8_t *digest, void *file,
						   lcfs_read_cb read_cb)
{
	return lcfs_public_ret(stream_from_cb(file, read_cb, false, digest));
}

LCFS_PUBLIC int lcfs_compute_fsverity_from_fd(uint8_t *digest, int fd)
{
	return lcfs_public_ret(fsverity_from_fd(fd, digest));
}

LCFS_PUBLIC int lcfs_compute_fsverity_from_data(uint8_t *digest, uint8_t *data,
						size_t data_len)
{
	struct lcfs_fsverity_stream *s = lcfs_fsverity_stream_new();

	if (s == NULL)
		return lcfs_public_ret(-ENOMEM);
	lcfs_fsverity_stream_update(s, data, data_len);
	return lcfs_public_ret(lcfs_fsverity_stream_final(s, digest));
}

LCFS_PUBLIC int lcfs_node_set_fsverity_from_content(struct lcfs_node_s *node,
						    void *file,
						    lcfs_read_cb read_cb)
{
	uint8_t digest[LCFS_DIGEST_SIZE];
	int r = stream_from_cb(file, read_cb, false, digest);

	if (r < 0)
		return lcfs_public_ret(r);
	lcfs_node_set_fsverity_digest(node, digest);
	return 0;
}

LCFS_PUBLIC int lcfs_node_set_fsverity_from_fd(struct lcfs_node_s *node, int fd)
{
	uint8_t digest[LCFS_DIGEST_SIZE];
	int r = fsverity_from_fd(fd, digest);

	if (r < 0)
		return lcfs_public_ret(r);
	lcfs_node_set_fsverity_digest(node, digest);
	return 0;
}

/* ---- Kernel fs-verity ------------------------------------------------------------------- */

/* These return negative errno values and also set errno, unlike the rest
 * of the public API (docs/design.md, "Errors"). */
static int neg_errno(int err)
{
	errno = err;
	return -err;
}

LCFS_PUBLIC int lcfs_fd_measure_fsverity(uint8_t *digest, int fd)
{
	union {
		struct fsverity_digest fsv;
		uint8_t buf[sizeof(struct fsverity_digest) + 64];
	} u;

	/* Room for the largest digest the kernel knows (SHA-512), so that
	 * a file using another algorithm is reported as such rather than
	 * as an overflow. */
	u.fsv.digest_size = 64;
	if (ioctl(fd, FS_IOC_MEASURE_VERITY, &u.fsv) < 0) {
		int err = errno;

		if (err == ENODATA || err == EOPNOTSUPP || err == ENOTTY)
			return neg_errno(ENOVERITY);
		return neg_errno(err);
	}
	if (u.fsv.digest_algorithm != FS_VERITY_HASH_ALG_SHA256 ||
	    u.fsv.digest_size != LCFS_DIGEST_SIZE)
		return neg_errno(EWRONGVERITY);
	memcpy(digest, u.fsv.digest, LCFS_DIGEST_SIZE);
	return 0;
}

LCFS_PUBLIC int lcfs_fd_get_fsverity(uint8_t *digest, int fd)
{
	int r = lcfs_fd_measure_fsverity(digest, fd);

	if (r != -ENOVERITY)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return neg_errno(errno);
	r = fsverity_from_fd(fd, digest);
	if (r < 0)
		return neg_errno(-r);
	return 0;
}

LCFS_PUBLIC int lcfs_fd_enable_fsverity(int fd)
{
	struct fsverity_enable_arg arg = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.block_size = VERITY_BLOCK_SIZE,
	};

	if (ioctl(fd, FS_IOC_ENABLE_VERITY, &arg) < 0)
		return neg_errno(errno);
	return 0;
}
