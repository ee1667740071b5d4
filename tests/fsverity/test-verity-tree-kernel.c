/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Merkle trees read back from the kernel (lcfs_verity_tree_from_kernel):
 * enable fs-verity on a file of three levels, load its tree with the whole
 * budget and with none, and read every byte through it; a wrong digest is
 * refused. Needs fs-verity on $COMPOSEFS_VERITY_DIR (else $TMPDIR, else
 * /tmp); exits 77 (skip) with the reason where it cannot be enabled.
 */
#include "lcfs-verity-tree-internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "lcfs-util.h"

#define BLOCK 4096

int main(void)
{
	const char *dir = test_tmp_dir("COMPOSEFS_VERITY_DIR");
	size_t size = 128 * 128 * BLOCK + 3 * BLOCK + 77;
	uint8_t want[LCFS_DIGEST_SIZE], wrong[LCFS_DIGEST_SIZE];
	uint8_t *data, *buf;
	char path[4096];
	int fd, r;

	/* A one-byte probe first: no point writing 64 MiB where fs-verity
	 * cannot be enabled. */
	snprintf(path, sizeof(path), "%s/test-verity-tree-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) < 0) {
		fprintf(stderr, "cannot write a file in '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : lcfs_fd_enable_fsverity(fd);
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (r == -ENOTTY || r == -EOPNOTSUPP) {
		printf("SKIP: no fs-verity on '%s' (%s); set COMPOSEFS_VERITY_DIR to a "
		       "directory on a verity-enabled filesystem\n",
		       dir, strerror(-r));
		return 77;
	}
	data = malloc(size);
	buf = malloc(size);
	if (data == NULL || buf == NULL)
		return 1;
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 12));
	snprintf(path, sizeof(path), "%s/test-verity-tree-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || lcfs_pwrite_all(fd, data, size, 0) < 0 || close(fd) < 0) {
		fprintf(stderr, "cannot write a file in '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	CHECK(lcfs_compute_fsverity_from_data(want, data, size) == 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	r = lcfs_fd_enable_fsverity(fd);
	CHECK(r == 0);
	memcpy(wrong, want, sizeof(wrong));
	wrong[0] ^= 1;
	for (int pass = 0; pass < 2 && r == 0; pass++) {
		struct lcfs_verity_budget *bud = lcfs_verity_budget_new(pass ? 0 : UINT64_MAX);
		struct lcfs_verity_tree *t = NULL;

		CHECK(lcfs_verity_tree_from_kernel(fd, wrong, bud, &t) == -EWRONGVERITY);
		CHECK(lcfs_verity_tree_from_kernel(fd, want, bud, &t) == 0);
		if (t != NULL) {
			CHECK(lcfs_verity_tree_levels(t) == 3);
			CHECK(lcfs_verity_tree_levels_kept(t) == (pass ? 1u : 3u));
			CHECK(lcfs_verity_tree_read(t, fd, buf, size, 0, NULL) ==
			      (ssize_t)size);
			CHECK(memcmp(buf, data, size) == 0);
			CHECK(lcfs_verity_tree_read(t, fd, buf, 5000, size - 77, NULL) == 77);
			CHECK(memcmp(buf, data + size - 77, 77) == 0);
		}
		lcfs_verity_tree_free(t);
		CHECK(lcfs_verity_budget_used(bud) == 0);
		lcfs_verity_budget_free(bud);
	}
	close(fd);
	unlink(path);
	free(data);
	free(buf);
	return test_summary("test-verity-tree-kernel");
}
