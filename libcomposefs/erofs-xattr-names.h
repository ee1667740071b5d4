/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The one table of xattr names of the image format, beside the on-disk
 * structures of erofs-format.h: the prefix each EROFS name index stands
 * for, and the overlayfs xattr names. The writer, the reader, the tar
 * importer and the FUSE view use it; the table itself is in
 * erofs-xattr-names.c.
 */
#ifndef _LCFS_EROFS_XATTR_NAMES_H
#define _LCFS_EROFS_XATTR_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "erofs-format.h"

/*
 * What each name index stands for: an entry stores its name without that
 * prefix. lcfs_xattr_prefixes[index] for index < LCFS_XATTR_INDEX_COUNT.
 * "known" marks the prefixes the writer encodes (the first one in index
 * order that starts a name) and the kernel's EROFS serves; "lustre." is
 * only decoded, and a name under it is neither listed nor readable through
 * the kernel mount.
 */
#define LCFS_XATTR_PREFIX_USER "user."
#define LCFS_XATTR_PREFIX_TRUSTED "trusted."
#define LCFS_XATTR_PREFIX_LUSTRE "lustre."
#define LCFS_XATTR_PREFIX_SECURITY "security."
#define LCFS_XATTR_ACL_ACCESS "system.posix_acl_access"
#define LCFS_XATTR_ACL_DEFAULT "system.posix_acl_default"

struct lcfs_xattr_prefix {
	const char *name;
	uint8_t len;
	bool known;
};

extern const struct lcfs_xattr_prefix lcfs_xattr_prefixes[LCFS_XATTR_INDEX_COUNT];

/* The name index the writer stores the name @key (@len bytes) under, and
 * in *@prefix_len (when not NULL) the bytes of @key it stands for:
 * LCFS_XATTR_INDEX_NONE and 0 when no known prefix starts @key. */
unsigned lcfs_xattr_prefix_index(const char *key, size_t len, size_t *prefix_len);

/* Whether a known prefix starts @key: the kernel mount refuses other
 * names with EOPNOTSUPP. */
bool lcfs_xattr_name_known(const char *key, size_t len);

/*
 * The overlayfs xattrs of an image (docs/image-format.md, "Metacopy and
 * redirect", "Input whiteouts", "Escaping overlay xattrs"): overlayfs reads
 * LCFS_OVL_PREFIX + one of the names below, and LCFS_OVL_USER_PREFIX + the
 * name on mounts with "userxattr". An input xattr trusted.overlay.X is
 * stored escaped, as LCFS_OVL_ESCAPED_PREFIX + X, so that overlayfs shows
 * it instead of acting on it; the reader gives it back unescaped.
 */
#define LCFS_OVL_PREFIX "trusted.overlay."
#define LCFS_OVL_ESCAPED_PREFIX LCFS_OVL_PREFIX "overlay."
#define LCFS_OVL_USER_PREFIX "user.overlay."
#define LCFS_OVL_METACOPY "metacopy"
#define LCFS_OVL_REDIRECT "redirect"
#define LCFS_OVL_OPAQUE "opaque"
#define LCFS_OVL_WHITEOUT "whiteout"
#define LCFS_OVL_WHITEOUTS "whiteouts"

/* The one label a synthesized root whiteout inherits from the root
 * (docs/image-format.md, "Root finalization"). */
#define LCFS_XATTR_SELINUX LCFS_XATTR_PREFIX_SECURITY "selinux"

#endif /* _LCFS_EROFS_XATTR_NAMES_H */
