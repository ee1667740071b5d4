/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * libcomposefs: mount a composefs image as an overlayfs whose metadata layer
 * is the image (EROFS) and whose data-only lower layers are object stores.
 */
#ifndef _LCFS_MOUNT_H
#define _LCFS_MOUNT_H

#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <errno.h>

#ifndef LCFS_EXTERN
#define LCFS_EXTERN extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The image has no fs-verity (or the kernel lacks fs-verity). */
#ifndef ENOVERITY
#define ENOVERITY ENOTTY
#endif
/* The image's fs-verity digest is not the expected one. */
#ifndef EWRONGVERITY
#define EWRONGVERITY EILSEQ
#endif
/* The image is not signed (not produced by this version). */
#ifndef ENOSIGNATURE
#define ENOSIGNATURE EBADMSG
#endif

enum lcfs_mount_flags_t {
	LCFS_MOUNT_FLAGS_NONE = 0,
	/* Fail unless overlayfs checks the fs-verity digest of every object
	 * (verity=require). */
	LCFS_MOUNT_FLAGS_REQUIRE_VERITY = (1 << 0),
	/* Mount read-only. */
	LCFS_MOUNT_FLAGS_READONLY = (1 << 1),
	/* Bit 2 is unused. */
	/* Idmap the image with the user namespace in idmap_fd. */
	LCFS_MOUNT_FLAGS_IDMAP = (1 << 3),
	/* Ask for verity=require where the kernel supports it. */
	LCFS_MOUNT_FLAGS_TRY_VERITY = (1 << 4),

	LCFS_MOUNT_FLAGS_MASK = (1 << 5) - 1,
};

struct lcfs_mount_options_s {
	const char **objdirs;   /* object directories, in order (borrowed) */
	size_t n_objdirs;       /* at least 1 */
	const char *workdir;    /* overlay workdir, with upperdir (borrowed) */
	const char *upperdir;   /* overlay upperdir, with workdir (borrowed) */
	/* Expected fs-verity digest of the image, as hex (borrowed). */
	const char *expected_fsverity_digest;
	uint32_t flags;         /* enum lcfs_mount_flags_t */
	int idmap_fd;           /* user namespace fd for LCFS_MOUNT_FLAGS_IDMAP */
	/* Directory to mount the image on, or NULL for a private temporary
	 * one (borrowed). */
	const char *image_mountdir;
	uint32_t reserved[4];
	void *reserved2[4];
};

/* Mounts image file @path on @mountpoint with @options (all borrowed).
 * Returns 0, or -1 with errno: EINVAL (bad options or image), ENOVERITY,
 * EWRONGVERITY, or the errno of the failing system call. Nothing
 * (temporary mount, directory or loop device) is left behind on failure. */
LCFS_EXTERN int lcfs_mount_image(const char *path, const char *mountpoint,
				 struct lcfs_mount_options_s *options);

/* As lcfs_mount_image() for an open image @fd, which is not closed. */
LCFS_EXTERN int lcfs_mount_fd(int fd, const char *mountpoint,
			      struct lcfs_mount_options_s *options);

#ifdef __cplusplus
}
#endif

#endif /* _LCFS_MOUNT_H */
