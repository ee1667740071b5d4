/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The xattr name prefixes of EROFS name indexes (erofs-xattr-names.h): one
 * table for the writer, which encodes names with it, the reader, which
 * decodes them, and the FUSE view, which shows what the kernel shows.
 */
#include "erofs-xattr-names.h"

#include <string.h>

#define PREFIX(s, known) { s, sizeof(s) - 1, known }

const struct lcfs_xattr_prefix lcfs_xattr_prefixes[LCFS_XATTR_INDEX_COUNT] = {
	[LCFS_XATTR_INDEX_NONE] = PREFIX("", false),
	[LCFS_XATTR_INDEX_USER] = PREFIX(LCFS_XATTR_PREFIX_USER, true),
	[LCFS_XATTR_INDEX_POSIX_ACL_ACCESS] = PREFIX(LCFS_XATTR_ACL_ACCESS, true),
	[LCFS_XATTR_INDEX_POSIX_ACL_DEFAULT] = PREFIX(LCFS_XATTR_ACL_DEFAULT, true),
	[LCFS_XATTR_INDEX_TRUSTED] = PREFIX(LCFS_XATTR_PREFIX_TRUSTED, true),
	[LCFS_XATTR_INDEX_LUSTRE] = PREFIX(LCFS_XATTR_PREFIX_LUSTRE, false),
	[LCFS_XATTR_INDEX_SECURITY] = PREFIX(LCFS_XATTR_PREFIX_SECURITY, true),
};

unsigned lcfs_xattr_prefix_index(const char *key, size_t len, size_t *prefix_len)
{
	/* No known prefix starts another, so the first match is the only
	 * one. */
	for (unsigned i = 1; i < LCFS_XATTR_INDEX_COUNT; i++) {
		const struct lcfs_xattr_prefix *p = &lcfs_xattr_prefixes[i];

		if (p->known && len >= p->len && memcmp(key, p->name, p->len) == 0) {
			if (prefix_len != NULL)
				*prefix_len = p->len;
			return i;
		}
	}
	if (prefix_len != NULL)
		*prefix_len = 0;
	return LCFS_XATTR_INDEX_NONE;
}

bool lcfs_xattr_name_known(const char *key, size_t len)
{
	return lcfs_xattr_prefix_index(key, len, NULL) != LCFS_XATTR_INDEX_NONE;
}
