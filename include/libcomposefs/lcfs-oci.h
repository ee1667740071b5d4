/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * libcomposefs: trees from container image layers (tar streams) and from
 * OCI image layouts, without extracting anything to disk.
 *
 * Conventions as in lcfs-writer.h: functions returning a pointer give NULL
 * with errno set on failure; arguments are borrowed unless stated
 * otherwise. On failure, when @error_out is non-NULL, *@error_out receives
 * a malloc'd one-line message naming the blob, the entry and the reason
 * (the caller frees it); on success it is set to NULL.
 *
 * File contents are hashed while they are read. With a digest store, each
 * regular file larger than LCFS_RECOMMENDED_INLINE_CONTENT_MAX bytes is
 * written into the store as it streams past (a temporary file that gets
 * its name, the hex fs-verity digest "xx/yyyy...", only once complete; an
 * object already present is kept). Smaller files become inline content of
 * the node. Every regular file node gets its fs-verity digest and the
 * digest path as payload, as lcfs_build() with LCFS_BUILD_COMPUTE_DIGEST |
 * LCFS_BUILD_BY_DIGEST does. Memory grows with the number of entries, not
 * with the size of the files.
 *
 * Tar entries: regular files (also sparse ones), directories, symlinks,
 * hard links, character and block devices and FIFOs, in ustar, PAX and GNU
 * formats (long names and link targets included); numeric owners (names
 * are ignored); all mode bits; modification times with nanoseconds; xattrs
 * from PAX records (SCHILY.xattr.*, LIBARCHIVE.xattr.*). An entry whose
 * path is absolute or leads out with "..", a hard link to a path not seen
 * before or to a directory, or a path below a non-directory is refused. A
 * later entry for a path replaces the earlier one (a directory over a
 * directory keeps its children and takes the new attributes). A missing
 * parent directory is created with mode 0755, owner 0:0 and mtime 0; so is
 * the root directory when the stream has no "./" entry.
 */
#ifndef _LCFS_OCI_H
#define _LCFS_OCI_H

#include <libcomposefs/lcfs-writer.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lcfs_oci_options_s {
	/* LCFS_BUILD_USE_EPOCH, LCFS_BUILD_SKIP_DEVICES,
	 * LCFS_BUILD_SKIP_XATTRS, LCFS_BUILD_USER_XATTRS and
	 * LCFS_BUILD_NO_INLINE are honoured; others are EINVAL. */
	int flags;
	/* Object store directory (created if missing), or NULL to compute
	 * digests only. */
	const char *digest_store;
	/* lcfs_load_node_from_oci(): "OS/ARCH" or "OS/ARCH/VARIANT" to pick
	 * from a multi-platform index; NULL for the running host's. */
	const char *platform;
	/* Worker threads that hash file contents and write them to the
	 * store while the stream is read; 0: one per CPU. The image is the
	 * same whatever the number. */
	uint32_t threads;
	/* Memory for file contents on their way to the workers, in bytes;
	 * 0: the default (16 MiB); raised to at least 1 MiB. */
	uint32_t data_buffer_size;
	uint32_t reserved[2];
	void *reserved2[4];
};

/*
 * One image layer: reads the tar stream from @fd (borrowed; read to its
 * end, not closed), plain, gzip or zstd compressed (recognised by
 * content). The layer is meant to be stacked with overlayfs, so OCI
 * whiteouts become overlay ones: an entry ".wh.NAME" becomes a character
 * device 0/0 named NAME with mode 0, owner 0:0 and the whiteout entry's
 * mtime; ".wh..wh..opq" sets the xattr trusted.overlay.opaque to "y" on
 * its directory. Returns the root (one reference). Errors: EINVAL (bad
 * flags, refused entry), EILSEQ (corrupt or truncated stream), ENAMETOOLONG,
 * ENOMEM, or the errno of a failed read or store write.
 */
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_tar(int fd, const struct lcfs_oci_options_s *opts,
			char **error_out);

/*
 * A whole image from the OCI image layout directory @layout: index.json
 * (nested indexes followed) selects the manifest whose
 * "org.opencontainers.image.ref.name" annotation is @ref, or, with @ref
 * NULL, the only one; an index listing several platforms is narrowed to
 * @opts->platform (default: the host's). The manifest's config and layers
 * (OCI or Docker media types; tar, gzip or zstd) are read; every blob is
 * checked against its descriptor's digest and size and every uncompressed
 * layer against the config's diff_ids. The layers are applied in order
 * into one tree: ".wh.NAME" (or a character device 0/0) removes NAME from
 * the layers below, ".wh..wh..opq" hides everything the layers below put
 * in its directory, a later entry replaces an earlier one whatever their
 * types, and hard links may point into lower layers. The root directory
 * takes its attributes from the topmost layer that has a "./" entry.
 * Returns the root (one reference). Errors as lcfs_load_node_from_tar(),
 * and ENOENT (missing blob or no matching manifest), EBADMSG (digest,
 * size or diff_id mismatch, malformed JSON), ENOTSUP (unknown media type
 * or digest algorithm).
 */
LCFS_EXTERN struct lcfs_node_s *
lcfs_load_node_from_oci(const char *layout, const char *ref,
			const struct lcfs_oci_options_s *opts, char **error_out);

#ifdef __cplusplus
}
#endif

#endif /* _LCFS_OCI_H */
