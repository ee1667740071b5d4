/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Test helper: prints the fs-verity digest of each FILE computed every way
 * the library can, one "FILE METHOD HEX" line each, so that a script can
 * compare them with each other and with `fsverity digest`. Stream chunk
 * sizes are pseudo-random, seeded by the file size.
 */
#include "lcfs-util.h"
#include "lcfs-fsverity.h"

#include "pattern.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
	return xorshift64(&rng_state);
}

static ssize_t fd_read(void *file, void *buf, size_t count)
{
	size_t n = 1 + rng() % 70000;

	return read(*(int *)file, buf, n < count ? n : count);
}

static void print(const char *file, const char *method, int r,
		  const uint8_t digest[LCFS_DIGEST_SIZE])
{
	char hex[65];

	if (r < 0) {
		printf("%s %s error\n", file, method);
		return;
	}
	lcfs_digest_to_hex(digest, hex);
	printf("%s %s %s\n", file, method, hex);
}

static int digest_file(const char *path)
{
	uint8_t d[LCFS_DIGEST_SIZE];
	struct lcfs_fsverity_stream *s;
	uint8_t *data;
	struct stat st;
	size_t off;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "fsverity-digests: cannot open '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	rng_state = 0x9e3779b97f4a7c15ull ^ (uint64_t)st.st_size;
	data = malloc((size_t)st.st_size + 1);
	if (data == NULL || pread(fd, data, (size_t)st.st_size, 0) != st.st_size) {
		fprintf(stderr, "fsverity-digests: cannot read '%s'\n", path);
		free(data);
		close(fd);
		return -1;
	}

	r = lcfs_compute_fsverity_from_data(d, data, (size_t)st.st_size);
	print(path, "from_data", r, d);
	r = lcfs_compute_fsverity_from_fd(d, fd);
	print(path, "from_fd", r, d);
	lseek(fd, 0, SEEK_SET);
	r = lcfs_compute_fsverity_from_content(d, &fd, fd_read);
	print(path, "from_content", r, d);
	r = lcfs_fd_get_fsverity(d, fd);
	print(path, "get", r, d);
	r = lcfs_fsverity_digest_fd_fast(fd, (uint64_t)st.st_size, d);
	print(path, "fast", r, d);

	s = lcfs_fsverity_stream_new();
	if (s == NULL) {
		r = -ENOMEM;
	} else {
		for (off = 0; off < (size_t)st.st_size;) {
			size_t n = rng() % 3 == 0 ? rng() % 9000 : rng() % 600000;

			if (n > (size_t)st.st_size - off)
				n = (size_t)st.st_size - off;
			lcfs_fsverity_stream_update(s, data + off, n);
			off += n;
		}
		r = lcfs_fsverity_stream_final(s, d);
	}
	print(path, "stream", r, d);
	free(data);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	int ret = 0;

	for (int i = 1; i < argc; i++)
		if (digest_file(argv[i]) < 0)
			ret = 1;
	if (fflush(stdout) != 0 || ferror(stdout))
		ret = 1;
	return ret;
}
