/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: mount.composefs's -o option string (tools/mount-options.c)
 * and the library's check of the options it produces (lcfs-mount.c,
 * docs/design.md, "Mount option checks"). The input up to its first NUL is
 * the string, as a command-line argument would be. Nothing is mounted: the
 * library is given no image file, so it stops after checking the options.
 */
#include <string.h>

#include "fuzz.h"

#include "libcomposefs/lcfs-mount.h"
#include "mount-options.h"
#include "lcfs-tools.h"

static void check_library(const struct mount_args *a)
{
	struct lcfs_mount_options_s opts = { 0 };
	struct lcfs_error err = { 0 };
	int r;

	opts.objdirs = a->objdirs;
	opts.n_objdirs = a->n_objdirs;
	opts.upperdir = a->upperdir;
	opts.workdir = a->workdir;
	opts.expected_fsverity_digest = a->digest;
	if (a->require_verity)
		opts.flags |= LCFS_MOUNT_FLAGS_REQUIRE_VERITY;
	else if (a->try_verity)
		opts.flags |= LCFS_MOUNT_FLAGS_TRY_VERITY;
	if (a->readonly)
		opts.flags |= LCFS_MOUNT_FLAGS_READONLY;
	r = lcfs_mount_fd_ext(-1, "/nonexistent", &opts, &err);
	if (r != -EINVAL && r != -EBADF)
		fuzz_fail("mounting without an image gives %d", r);
	if (err.msg[0] == '\0')
		fuzz_fail("the library refused the options without a message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mount_args a = { 0 };
	char *opts = strndup((const char *)data, size);
	char msg[512] = "";
	int r;

	if (opts == NULL)
		fuzz_fail("out of memory");
	r = mount_options_parse(&a, opts, msg, sizeof(msg));
	if (r < 0) {
		if (msg[0] == '\0')
			fuzz_fail("an option string refused without a message");
	} else {
		for (size_t i = 0; i < a.n_objdirs; i++) {
			if (a.objdirs[i][0] == '\0' || strchr(a.objdirs[i], ':') != NULL)
				fuzz_fail("object directory '%s'", a.objdirs[i]);
		}
		if (a.n_objdirs > 0)
			check_library(&a);
	}
	mount_args_release(&a);
	free(opts);
	return 0;
}
