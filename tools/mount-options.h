/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * mount.composefs: the -o option string (docs/design.md,
 * "mount.composefs"), parsed apart from the tool so that it can be tested
 * and fuzzed.
 */
#ifndef _COMPOSEFS_MOUNT_OPTIONS_H
#define _COMPOSEFS_MOUNT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

struct mount_args {
	char *basedir;   /* unescaped value, split into objdirs */
	const char **objdirs;
	size_t n_objdirs;
	char *digest;
	char *upperdir;
	char *workdir;
	char *idmap;
	char *remote;    /* URL of a store to fetch missing objects from */
	bool require_verity;
	bool try_verity;
	bool readonly;
	bool fuse;       /* mount through composefs-fuse */
};

/*
 * Applies the items of @opts (borrowed) to @a, which starts zeroed or
 * filled by an earlier call; a later item overrides an earlier one.
 * Returns 0, or -EINVAL (bad item) / -ENOMEM with the message for the user
 * in @msg (@msg_size bytes). Either way @a stays consistent and is freed
 * with mount_args_release().
 */
int mount_options_parse(struct mount_args *a, const char *opts, char *msg,
			size_t msg_size);

/* Frees what @a holds and zeroes it. */
void mount_args_release(struct mount_args *a);

#endif
