/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Shared by the C tests that feed tar layers to the library: a PAX tar
 * written with libarchive into an unnamed temporary file. Setup failures
 * end the test (exit 1): there is nothing to test without the file.
 */
#ifndef _COMPOSEFS_TAR_TMP_H
#define _COMPOSEFS_TAR_TMP_H

#include <archive.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A PAX writer into a new unnamed file under /tmp, whose descriptor goes
 * to *@fd. */
static inline struct archive *tar_tmp_new(int *fd)
{
	char name[] = "/tmp/cfs-test-tar-XXXXXX";
	struct archive *a = archive_write_new();

	*fd = mkstemp(name);
	if (*fd < 0 || a == NULL) {
		perror("tar setup");
		exit(1);
	}
	unlink(name);
	archive_write_set_format_pax(a);
	archive_write_open_fd(a, *fd);
	return a;
}

/* Ends the tar of tar_tmp_new(): @fd is returned, at offset 0. */
static inline int tar_tmp_finish(struct archive *a, int fd)
{
	archive_write_close(a);
	archive_write_free(a);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

#endif
