/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * System interfaces that older C libraries and kernel headers lack.
 *
 * The mount API (fsopen, fsconfig, fsmount, move_mount, open_tree,
 * mount_setattr) has C library wrappers only from glibc 2.36 and openat2
 * has none; Debian 11 (glibc 2.31, Linux 5.10 headers) has neither the
 * wrappers nor MOUNT_ATTR_IDMAP or struct mount_attr. meson checks what the
 * C library and headers provide (config.h: HAVE_*) and this header fills
 * the rest: syscall() wrappers and the kernel's constant values, which are
 * part of the stable kernel ABI. <linux/mount.h> is not included directly:
 * before glibc 2.36 it clashes with <sys/mount.h>; <linux/fs.h> may bring
 * it in, so that comes first and the fallbacks check what it defined.
 *
 * Include it instead of <sys/mount.h>, <linux/openat2.h> and
 * <linux/fsverity.h>.
 */
#ifndef _LCFS_COMPAT_H
#define _LCFS_COMPAT_H

#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
/* After <sys/mount.h>: it may include <linux/mount.h>, and what it
 * declares is known before the fallbacks below. */
#include <linux/fs.h>
#include <sys/syscall.h>
#include <unistd.h>

#if HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif
#if HAVE_LINUX_FSVERITY_H
#include <linux/fsverity.h>
#endif

/* ---- System call numbers: the same on every architecture from 424 on,
 * except alpha, which the kernel numbers 110 higher. */
#if defined(__alpha__)
#define LCFS_NR_BASE 110
#else
#define LCFS_NR_BASE 0
#endif
#ifndef SYS_open_tree
#define SYS_open_tree (428 + LCFS_NR_BASE)
#endif
#ifndef SYS_move_mount
#define SYS_move_mount (429 + LCFS_NR_BASE)
#endif
#ifndef SYS_fsopen
#define SYS_fsopen (430 + LCFS_NR_BASE)
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig (431 + LCFS_NR_BASE)
#endif
#ifndef SYS_fsmount
#define SYS_fsmount (432 + LCFS_NR_BASE)
#endif
#ifndef SYS_openat2
#define SYS_openat2 (437 + LCFS_NR_BASE)
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr (442 + LCFS_NR_BASE)
#endif

/* ---- openat2 ---- */

#if !HAVE_LINUX_OPENAT2_H
struct open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};
#endif
#ifndef RESOLVE_NO_XDEV
#define RESOLVE_NO_XDEV 0x01
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_NO_SYMLINKS
#define RESOLVE_NO_SYMLINKS 0x04
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_BENEATH 0x08
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif

/* openat2(2) through syscall(), which no C library wraps everywhere (the
 * tests interpose syscall() to simulate a kernel without it). -1 with
 * errno on failure; ENOSYS on kernels before 5.6. */
static inline int lcfs_openat2(int dirfd, const char *path, struct open_how *how,
			       size_t size)
{
	return (int)syscall(SYS_openat2, dirfd, path, how, size);
}

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

/* ---- The mount API ---- */

/* The kernel's fsconfig commands, unless <sys/mount.h> (glibc 2.36) or
 * <linux/mount.h> (pulled in by <linux/fs.h>) declared them. */
#if !HAVE_FSCONFIG && !defined(FSOPEN_CLOEXEC)
enum fsconfig_command {
	FSCONFIG_SET_FLAG = 0,
	FSCONFIG_SET_STRING = 1,
	FSCONFIG_SET_BINARY = 2,
	FSCONFIG_SET_PATH = 3,
	FSCONFIG_SET_PATH_EMPTY = 4,
	FSCONFIG_SET_FD = 5,
	FSCONFIG_CMD_CREATE = 6,
	FSCONFIG_CMD_RECONFIGURE = 7,
};
#endif
/* Likewise struct mount_attr, which comes with MOUNT_ATTR_IDMAP. */
#if !HAVE_STRUCT_MOUNT_ATTR && !defined(MOUNT_ATTR_IDMAP)
struct mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};
#endif

#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

#if !HAVE_FSOPEN
static inline int fsopen(const char *fsname, unsigned int flags)
{
	return (int)syscall(SYS_fsopen, fsname, flags);
}
#endif

#if !HAVE_FSCONFIG
static inline int fsconfig(int fd, unsigned int cmd, const char *key, const void *value,
			   int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
#endif

#if !HAVE_FSMOUNT
static inline int fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
	return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}
#endif

#if !HAVE_MOVE_MOUNT
static inline int move_mount(int from_dirfd, const char *from_path, int to_dirfd,
			     const char *to_path, unsigned int flags)
{
	return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path,
			    flags);
}
#endif

#if !HAVE_OPEN_TREE
static inline int open_tree(int dirfd, const char *path, unsigned int flags)
{
	return (int)syscall(SYS_open_tree, dirfd, path, flags);
}
#endif

#if !HAVE_MOUNT_SETATTR
static inline int mount_setattr(int dirfd, const char *path, unsigned int flags,
				struct mount_attr *attr, size_t size)
{
	return (int)syscall(SYS_mount_setattr, dirfd, path, flags, attr, size);
}
#endif

/* ---- fs-verity ioctls ---- */

#if !HAVE_LINUX_FSVERITY_H
#define FS_VERITY_HASH_ALG_SHA256 1
struct fsverity_enable_arg {
	uint32_t version;
	uint32_t hash_algorithm;
	uint32_t block_size;
	uint32_t salt_size;
	uint64_t salt_ptr;
	uint32_t sig_size;
	uint32_t __reserved1;
	uint64_t sig_ptr;
	uint64_t __reserved2[11];
};
struct fsverity_digest {
	uint16_t digest_algorithm;
	uint16_t digest_size;
	uint8_t digest[];
};
#endif
#ifndef FS_IOC_ENABLE_VERITY
#define FS_IOC_ENABLE_VERITY _IOW('f', 133, struct fsverity_enable_arg)
#endif
#ifndef FS_IOC_MEASURE_VERITY
#define FS_IOC_MEASURE_VERITY _IOWR('f', 134, struct fsverity_digest)
#endif

#endif /* _LCFS_COMPAT_H */
