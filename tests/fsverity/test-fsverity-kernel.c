/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Kernel fs-verity round trip (lcfs_fd_enable_fsverity() and friends in
 * lcfs-writer.h): enable verity on a file, then the kernel's measurement
 * must equal the computed digest, enabling again is -EEXIST and
 * lcfs_fd_get_fsverity() returns the kernel's value. Needs a kernel and
 * filesystem with fs-verity: the file is created in $COMPOSEFS_VERITY_DIR,
 * else $TMPDIR, else /tmp. Exits 77 (skip) with the reason when verity
 * cannot be enabled there.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libcomposefs/lcfs-writer.h"

#include "check.h"

int main(void)
{
	const char *dir = test_tmp_dir("COMPOSEFS_VERITY_DIR");
	uint8_t data[3 * 4096 + 5], want[LCFS_DIGEST_SIZE], d[LCFS_DIGEST_SIZE];
	char path[4096];
	int fd, r, failed = 0;

	snprintf(path, sizeof(path), "%s/test-fsverity-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "cannot create a file in '%s': %s\n", dir,
			strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 9));
	if (write(fd, data, sizeof(data)) != (ssize_t)sizeof(data) || close(fd) < 0) {
		fprintf(stderr, "cannot write '%s': %s\n", path, strerror(errno));
		unlink(path);
		return 1;
	}
	if (lcfs_compute_fsverity_from_data(want, data, sizeof(data)) < 0) {
		unlink(path);
		return 1;
	}

	/* The kernel refuses to enable verity through a writable fd. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		unlink(path);
		return 1;
	}
	r = lcfs_fd_enable_fsverity(fd);
	if (r == -ENOTTY || r == -EOPNOTSUPP) {
		printf("SKIP: no fs-verity on '%s' (%s); set COMPOSEFS_VERITY_DIR to a "
		       "directory on a verity-enabled filesystem\n",
		       dir, strerror(-r));
		close(fd);
		unlink(path);
		return 77;
	}
	if (r < 0) {
		fprintf(stderr, "enabling fs-verity failed: %s\n", strerror(-r));
		failed = 1;
		goto out;
	}
	r = lcfs_fd_measure_fsverity(d, fd);
	if (r < 0 || memcmp(d, want, sizeof(d)) != 0) {
		fprintf(stderr, "kernel measurement (%d) differs from the computed digest\n",
			r);
		failed = 1;
	}
	r = lcfs_fd_enable_fsverity(fd);
	if (r != -EEXIST) {
		fprintf(stderr, "enabling twice gave %d, expected -EEXIST\n", r);
		failed = 1;
	}
	memset(d, 0, sizeof(d));
	r = lcfs_fd_get_fsverity(d, fd);
	if (r < 0 || memcmp(d, want, sizeof(d)) != 0) {
		fprintf(stderr, "lcfs_fd_get_fsverity() (%d) differs\n", r);
		failed = 1;
	}
out:
	close(fd);
	unlink(path);
	if (!failed)
		printf("kernel fs-verity digest matches\n");
	return failed;
}
