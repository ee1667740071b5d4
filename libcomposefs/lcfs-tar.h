/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Private: building a tree from tar streams (lcfs-tar.c), shared by the
 * single-layer mode and the OCI image mode (lcfs-oci.c).
 */
#ifndef _LCFS_TAR_H
#define _LCFS_TAR_H

#include "lcfs-error.h"
#include "lcfs-build.h"
#include "lcfs-store.h"
#include "libcomposefs/lcfs-oci.h"

struct archive;
typedef struct evp_md_ctx_st EVP_MD_CTX;

/*
 * A layer's bytes from a file descriptor: plain, gzip (one or more
 * members) or zstd, told apart by their first bytes and decompressed here
 * (zlib and libzstd check the streams' own checksums), with optional
 * hashes of the bytes as read (@raw_md) and as decompressed (@plain_md),
 * and an optional bound on the bytes read.
 */
struct lcfs_tar_input {
	int fd;                /* borrowed */
	uint64_t limit;        /* bytes that may be read; UINT64_MAX: any */
	uint64_t raw_done;     /* bytes read so far */
	EVP_MD_CTX *raw_md;    /* borrowed, or NULL */
	EVP_MD_CTX *plain_md;  /* borrowed, or NULL */
	int kind;
	bool raw_eof;
	bool member_done; /* gzip: the current member ended */
	void *z;          /* z_stream, gzip */
	void *zs;         /* ZSTD_DStream */
	size_t zstd_hint; /* last ZSTD_decompressStream() result: 0 at a frame end */
	uint8_t *in;
	size_t in_pos, in_len;
	uint8_t *out;
	int err;          /* positive errno of the first failure */
	char msg[160];    /* and its reason */
};

/* Sets up @in for @fd. 0 or -ENOMEM. */
int lcfs_tar_input_init(struct lcfs_tar_input *in, int fd, uint64_t limit,
			EVP_MD_CTX *raw_md, EVP_MD_CTX *plain_md);
/* Opens the tar reader @a on @in. 0, or -errno with @in->msg set. */
int lcfs_tar_input_open(struct lcfs_tar_input *in, struct archive *a);
/* Reads (and hashes) whatever follows the end of the archive, up to the
 * end of the input: this also checks the trailing checksums of the
 * compressed stream. 0, or -errno with @in->msg set. */
int lcfs_tar_input_drain(struct lcfs_tar_input *in);
void lcfs_tar_input_release(struct lcfs_tar_input *in);

/* A set of pointers, each with a value (open addressing, linear
 * probing). */
struct lcfs_ptrset {
	const void **slots;
	void **vals;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

struct lcfs_tar_pool;

struct lcfs_tar_tree {
	struct lcfs_node_s *root;
	struct lcfs_store *store; /* borrowed, NULL: digests only */
	int flags;                /* LCFS_BUILD_* */
	/* false: whiteouts become overlay whiteouts (one layer to stack);
	 * true: they delete from the tree (layers flattened). */
	bool apply_whiteouts;
	bool root_seen;
	/* Hard link identities: node->scratch indexes @keys (+1). */
	struct lcfs_inode_key *keys;
	size_t n_keys, cap_keys;
	uint64_t next_inode;
	struct lcfs_ptrset layer; /* nodes made by the current layer */
	/* Hashing and storing of file contents, on worker threads. */
	struct lcfs_tar_pool *pool;
	struct lcfs_error *err;
};

/* Sets up @t with an empty root (mode 0755, owner 0:0, mtime 0), with the
 * flags, threads and buffer size of @opts. 0 or -errno. */
int lcfs_tar_tree_init(struct lcfs_tar_tree *t, const struct lcfs_oci_options_s *opts,
		       bool apply_whiteouts, struct lcfs_store *store,
		       struct lcfs_error *err);

/* A new libarchive reader for tar formats only (no decompression). NULL on
 * ENOMEM. */
struct archive *lcfs_tar_reader_new(void);

/* Applies every entry of the tar archive @a (open, borrowed) to the tree.
 * @what prefixes error messages (e.g. the layer's digest), or NULL. 0 or
 * -errno with t->err filled. */
int lcfs_tar_tree_apply(struct lcfs_tar_tree *t, struct archive *a, const char *what);

/* Turns the recorded hard links into links, publishes the objects the
 * tree refers to (see lcfs_store_stage()) and returns the root (the
 * caller owns the reference), or NULL with @err filled; @t is released
 * either way. */
struct lcfs_node_s *lcfs_tar_tree_finish(struct lcfs_tar_tree *t, struct lcfs_error *err);

/* Checks @opts->flags and opens @opts->digest_store (NULL: *@out NULL) in
 * staging mode. 0 or -errno with @err filled. */
int lcfs_tar_store_open(const struct lcfs_oci_options_s *opts, struct lcfs_store **out,
			struct lcfs_error *err);

/* Frees what @t holds (the root too, unless finished). */
void lcfs_tar_tree_release(struct lcfs_tar_tree *t);

/* Flags accepted by the tar and OCI builders. */
#define LCFS_TAR_FLAGS                                                              \
	(LCFS_BUILD_USE_EPOCH | LCFS_BUILD_SKIP_DEVICES | LCFS_BUILD_SKIP_XATTRS | \
	 LCFS_BUILD_USER_XATTRS | LCFS_BUILD_NO_INLINE)

/* The single-layer mode: the tar stream (plain, gzip or zstd) on @fd.
 * Root or NULL with @err filled. */
struct lcfs_node_s *lcfs_tar_build(int fd, const struct lcfs_oci_options_s *opts,
				   struct lcfs_error *err);

/* The OCI image mode. Root or NULL with @err filled. */
struct lcfs_node_s *lcfs_oci_build(const char *layout, const char *ref,
				   const struct lcfs_oci_options_s *opts,
				   struct lcfs_error *err);

#endif /* _LCFS_TAR_H */
