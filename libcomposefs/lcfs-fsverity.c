/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity digests (IMAGE-FORMAT.md section 16): standard fs-verity with
 * SHA-256, 4096-byte Merkle tree blocks and no salt, as computed by the
 * kernel and by `fsverity digest --hash-alg=sha256 --block-size=4096`.
 *
 * Two engines compute the same value:
 * - libfsverity, for inputs whose length is known up front (a buffer, the
 *   rest of a regular file);
 * - an incremental ("push") hasher over OpenSSL SHA-256, for data whose
 *   length is only known at the end (an image being streamed out, a read
 *   callback, a pipe) and as the fast path for whole files.
 *
 * The empty input has the kernel's digest (root hash all zero), not the
 * reference's userspace value (spec README, "where we deliberately differ").
 */
#include "config.h"

#include <fcntl.h>
#include <linux/fsverity.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <libfsverity.h>
#include <openssl/evp.h>

#include "lcfs-internal.h"

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

/* Read size of the callback and pipe paths. */
#define STREAM_READ_SIZE (64 * 1024)

_Static_assert(LCFS_DIGEST_SIZE == VERITY_HASH_SIZE, "SHA-256 digest size");

/* ---- SHA-256 ------------------------------------------------------------------ */

static int sha256_ctx(EVP_MD_CTX *ctx, const void *data, size_t len,
		      uint8_t out[VERITY_HASH_SIZE])
{
	/* Reusing the context and its already fetched algorithm avoids
	 * OpenSSL 3's per-call algorithm lookup, which costs more than
	 * hashing a 4096-byte block. */
	if (!EVP_DigestInit_ex2(ctx, NULL, NULL) ||
	    !EVP_DigestUpdate(ctx, data, len) ||
	    !EVP_DigestFinal_ex(ctx, out, NULL))
		return -EIO;
	return 0;
}

static EVP_MD_CTX *sha256_ctx_new(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		return NULL;
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int lcfs_sha256(const void *data, size_t len, uint8_t digest[LCFS_DIGEST_SIZE])
{
	unsigned int out_len = 0;

	if (!EVP_Digest(data, len, digest, &out_len, EVP_sha256(), NULL) ||
	    out_len != LCFS_DIGEST_SIZE)
		return -EIO;
	return 0;
}

/* ---- Descriptor ------------------------------------------------------------------ */

/*
 * The 256-byte fs-verity descriptor (section 16 step 3): version 1,
 * SHA-256, log2 block size 12, no salt, no signature, the little-endian
 * data size, the root hash in a 64-byte field, then zeros. Its SHA-256 is
 * the file digest.
 */
static int descriptor_digest(EVP_MD_CTX *ctx, uint64_t data_size,
			     const uint8_t root[VERITY_HASH_SIZE],
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
	return sha256_ctx(ctx, d, sizeof(d), digest);
}

/* ---- Push-style hasher ------------------------------------------------------------ */

/*
 * Each level keeps only its last, still open Merkle block. A full block
 * is hashed into the level above only when one more hash arrives, because
 * a level that ends up with a single full block is the top of the tree and
 * its hash is the root (section 16 step 2). Memory is therefore fixed:
 * one data block plus one block per level.
 */
struct lcfs_fsverity_stream {
	EVP_MD_CTX *ctx;
	uint64_t size;       /* bytes seen so far */
	size_t pending;      /* bytes waiting in @block */
	unsigned n_levels;   /* levels holding at least one hash */
	int err;             /* first error, reported by _final() */
	uint32_t fill[VERITY_MAX_LEVELS]; /* hashes in each level block */
	uint8_t block[VERITY_BLOCK_SIZE];
	uint8_t level[VERITY_MAX_LEVELS][VERITY_BLOCK_SIZE];
};

struct lcfs_fsverity_stream *lcfs_fsverity_stream_new(void)
{
	struct lcfs_fsverity_stream *s = malloc(sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ctx = sha256_ctx_new();
	if (s->ctx == NULL) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->size = 0;
	s->pending = 0;
	s->n_levels = 0;
	s->err = 0;
	memset(s->fill, 0, sizeof(s->fill));
	return s;
}

void lcfs_fsverity_stream_free(struct lcfs_fsverity_stream *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->ctx);
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
		int r;

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
		r = sha256_ctx(s->ctx, s->level[lvl], VERITY_BLOCK_SIZE, up);
		if (r < 0) {
			s->err = r;
			return;
		}
		memcpy(s->level[lvl], carry, VERITY_HASH_SIZE);
		s->fill[lvl] = 1;
		memcpy(carry, up, VERITY_HASH_SIZE);
		lvl++;
	}
}

static void stream_data_block(struct lcfs_fsverity_stream *s, const uint8_t *block)
{
	uint8_t hash[VERITY_HASH_SIZE];
	int r = sha256_ctx(s->ctx, block, VERITY_BLOCK_SIZE, hash);

	if (r < 0) {
		s->err = r;
		return;
	}
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
		size_t n = VERITY_BLOCK_SIZE - s->pending;

		if (n > len)
			n = len;
		memcpy(s->block + s->pending, p, n);
		s->pending += n;
		p += n;
		len -= n;
		if (s->pending < VERITY_BLOCK_SIZE)
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
			int r;

			if (s->err < 0)
				return s->err;
			b = s->level[lvl];
			if (s->fill[lvl] == 1 && lvl + 1 >= s->n_levels) {
				memcpy(root, b, VERITY_HASH_SIZE);
				break;
			}
			memset(b + s->fill[lvl] * VERITY_HASH_SIZE, 0,
			       VERITY_BLOCK_SIZE - s->fill[lvl] * VERITY_HASH_SIZE);
			r = sha256_ctx(s->ctx, b, VERITY_BLOCK_SIZE, up);
			if (r < 0)
				return r;
			s->fill[lvl] = 0;
			stream_push(s, lvl + 1, up);
		}
	}
	return descriptor_digest(s->ctx, s->size, root, digest);
}

int lcfs_fsverity_stream_final(struct lcfs_fsverity_stream *s,
			       uint8_t digest[LCFS_DIGEST_SIZE])
{
	int r = stream_finish(s, digest);

	lcfs_fsverity_stream_free(s);
	return r;
}

/* ---- Whole files, fast path ---------------------------------------------------------- */

int lcfs_fsverity_digest_fd_fast(int fd, uint64_t size,
				 uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s;
	cleanup_free uint8_t *buf = NULL;
	uint64_t off = 0;

	buf = malloc(FAST_READ_SIZE);
	s = lcfs_fsverity_stream_new();
	if (buf == NULL || s == NULL) {
		lcfs_fsverity_stream_free(s);
		return -ENOMEM;
	}
	while (off < size) {
		size_t want = FAST_READ_SIZE;
		ssize_t n;

		if (size - off < want)
			want = (size_t)(size - off);
		n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A file that shrank under us has no digest for
			 * @size bytes. */
			int r = n < 0 ? -errno : -ENODATA;

			lcfs_fsverity_stream_free(s);
			return r;
		}
		lcfs_fsverity_stream_update(s, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return lcfs_fsverity_stream_final(s, digest);
}

/* ---- Pull-style computations ---------------------------------------------------------- */

/* Feeds everything @read_cb yields to the push hasher. A read error is
 * ENODATA (TOOLS-AND-MOUNT.md 7.3). */
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

/*
 * libfsverity asks for one Merkle block (4096 bytes) at a time; reading
 * the file in large chunks instead saves 63 system calls in 64. Reads stop
 * at the size measured up front, so the offset ends where an unbuffered
 * read would leave it.
 */
struct fd_reader {
	int fd;
	size_t pos, len;  /* unread bytes: buf[pos..len) */
	uint64_t left;    /* bytes still to read from the file */
	uint8_t *buf;     /* FAST_READ_SIZE bytes */
};

/* Exactly @count bytes or -ENODATA. */
static int libfsverity_fd_read(void *file, void *buf, size_t count)
{
	struct fd_reader *r = file;
	uint8_t *p = buf;

	while (count > 0) {
		size_t n;

		if (r->pos == r->len) {
			size_t want = FAST_READ_SIZE;
			ssize_t got;

			if (r->left < want)
				want = (size_t)r->left;
			if (want == 0)
				return -ENODATA;
			got = read(r->fd, r->buf, want);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return -ENODATA;
			r->pos = 0;
			r->len = (size_t)got;
			r->left -= (uint64_t)got;
		}
		n = r->len - r->pos;
		if (n > count)
			n = count;
		memcpy(p, r->buf + r->pos, n);
		r->pos += n;
		p += n;
		count -= n;
	}
	return 0;
}

struct mem_reader {
	const uint8_t *data;
	size_t left;
};

static int libfsverity_mem_read(void *file, void *buf, size_t count)
{
	struct mem_reader *m = file;

	if (count > m->left)
		return -ENODATA;
	memcpy(buf, m->data, count);
	m->data += count;
	m->left -= count;
	return 0;
}

static int libfsverity_digest(void *file, libfsverity_read_fn_t read_fn,
			      uint64_t size, uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct libfsverity_merkle_tree_params params = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.file_size = size,
		.block_size = VERITY_BLOCK_SIZE,
	};
	struct libfsverity_digest *d = NULL;
	int r;

	r = libfsverity_compute_digest(file, read_fn, &params, &d);
	if (r < 0)
		return r;
	if (d->digest_algorithm != FS_VERITY_HASH_ALG_SHA256 ||
	    d->digest_size != LCFS_DIGEST_SIZE) {
		free(d);
		return -EWRONGVERITY;
	}
	memcpy(digest, d->digest, LCFS_DIGEST_SIZE);
	free(d);
	return 0;
}

/* Digest of @fd from its current offset to its end, 0 or -errno. */
static int fsverity_from_fd(int fd, uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct fd_reader r = { 0 };
	struct stat st;
	off_t off;
	int ret;

	if (fstat(fd, &st) < 0)
		return -errno;
	off = lseek(fd, 0, SEEK_CUR);
	/* Pipes and other unsized inputs go through the push hasher, which
	 * needs no length up front. */
	if (!S_ISREG(st.st_mode) || off < 0)
		return stream_from_cb(&fd, fd_read_cb, true, digest);
	r.fd = fd;
	r.left = off < st.st_size ? (uint64_t)(st.st_size - off) : 0;
	r.buf = malloc(FAST_READ_SIZE);
	if (r.buf == NULL)
		return -ENOMEM;
	ret = libfsverity_digest(&r, libfsverity_fd_read, r.left, digest);
	free(r.buf);
	return ret;
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
	struct mem_reader m = { .data = data, .left = data_len };

	return lcfs_public_ret(libfsverity_digest(&m, libfsverity_mem_read,
						  data_len, digest));
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

/* These return negative errno values and also set errno (TOOLS-AND-MOUNT.md
 * 7.3), unlike the rest of the public API. */
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
