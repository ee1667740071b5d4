/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Unit tests of the fs-verity and SHA-256 helpers (docs/image-format.md,
 * "fs-verity digest"; the API in lcfs-writer.h): known answers, agreement
 * of every way of computing a digest at the Merkle tree boundaries, file
 * offsets, pipes, read errors and the kernel ioctls on a file without
 * fs-verity.
 *
 * The known answers for pattern data were produced with
 * `fsverity digest --hash-alg=sha256 --block-size=4096` (fsverity-utils).
 */
#include "lcfs-util.h"
#include "lcfs-fsverity.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "pattern.h"

#define CHECK_HEX(digest, hex) check_hex(__FILE__, __LINE__, #digest, digest, hex)

#define BLOCK 4096

static void check_hex(const char *file, int line, const char *what,
		      const uint8_t digest[LCFS_DIGEST_SIZE], const char *hex)
{
	char got[65];

	lcfs_digest_to_hex(digest, got);
	if (strcmp(got, hex) != 0) {
		fprintf(stderr, "%s:%d: %s is %s, expected %s\n", file, line, what,
			got, hex);
		test_failures++;
	}
}

/* Deterministic chunk sizes for the stream tests. */
static uint64_t rng_state = 88172645463325252ull;

static uint64_t rng(void)
{
	return xorshift64(&rng_state);
}

static size_t chunk_size(void)
{
	switch (rng() % 5) {
	case 0:
		return 0;
	case 1:
		return 1 + rng() % 16;
	case 2:
		return BLOCK - 2 + rng() % 5;
	case 3:
		return rng() % (3 * BLOCK);
	default:
		return rng() % (300 * 1024);
	}
}

/* The push hasher fed in random chunks (zero-length ones included). */
static int stream_digest(const uint8_t *data, size_t len, bool bytewise,
			 uint8_t digest[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s = lcfs_fsverity_stream_new();
	size_t off = 0;

	if (s == NULL)
		return -ENOMEM;
	while (off < len) {
		size_t n = bytewise ? 1 : chunk_size();

		if (n > len - off)
			n = len - off;
		lcfs_fsverity_stream_update(s, data + off, n);
		off += n;
	}
	return lcfs_fsverity_stream_final(s, digest);
}

struct mem_cb {
	const uint8_t *data;
	size_t left;
	bool fail; /* fail instead of reporting the end */
};

/* Read callback returning short, irregular reads. */
static ssize_t mem_read(void *file, void *buf, size_t count)
{
	struct mem_cb *m = file;
	size_t n = 1 + rng() % 20000;

	if (m->left == 0) {
		if (m->fail) {
			errno = EIO;
			return -1;
		}
		return 0;
	}
	if (n > count)
		n = count;
	if (n > m->left)
		n = m->left;
	memcpy(buf, m->data, n);
	m->data += n;
	m->left -= n;
	return (ssize_t)n;
}

static char tmpdir[] = "/tmp/test-fsverity-XXXXXX";

static int write_file(const char *name, const uint8_t *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		fprintf(stderr, "cannot write '%s': %s\n", path, strerror(errno));
		exit(1);
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		exit(1);
	return fd;
}

static void test_sha256(void)
{
	static const char million_a_hex[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	uint8_t d[LCFS_DIGEST_SIZE];
	uint8_t *a = xmalloc(1000000);

	/* FIPS 180-2 examples. */
	CHECK(lcfs_sha256("abc", 3, d) == 0);
	CHECK_HEX(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(lcfs_sha256("", 0, d) == 0);
	CHECK_HEX(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	CHECK(lcfs_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
			  56, d) == 0);
	CHECK_HEX(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(a, 'a', 1000000);
	CHECK(lcfs_sha256(a, 1000000, d) == 0);
	CHECK_HEX(d, million_a_hex);
	free(a);
}

/* Every way of digesting @data must give @hex. */
static void check_all(const uint8_t *data, size_t len, const char *hex)
{
	uint8_t d[LCFS_DIGEST_SIZE];
	struct mem_cb m = { .data = data, .left = len };
	struct lcfs_node_s *node;
	int fd;

	CHECK(lcfs_compute_fsverity_from_data(d, (uint8_t *)data, len) == 0);
	CHECK_HEX(d, hex);
	CHECK(stream_digest(data, len, false, d) == 0);
	CHECK_HEX(d, hex);
	if (len <= 3 * BLOCK) {
		CHECK(stream_digest(data, len, true, d) == 0);
		CHECK_HEX(d, hex);
	}
	CHECK(lcfs_compute_fsverity_from_content(d, &m, mem_read) == 0);
	CHECK_HEX(d, hex);

	fd = write_file("all", data, len);
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == 0);
	CHECK_HEX(d, hex);
	memset(d, 0, sizeof(d));
	CHECK(lcfs_fsverity_digest_fd_fast(fd, len, d) == 0);
	CHECK_HEX(d, hex);
	memset(d, 0, sizeof(d));
	CHECK(lcfs_fd_get_fsverity(d, fd) == 0);
	CHECK_HEX(d, hex);

	node = lcfs_node_new();
	CHECK(node != NULL);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(lcfs_node_set_fsverity_from_fd(node, fd) == 0);
	CHECK(lcfs_node_get_fsverity_digest(node) != NULL);
	if (lcfs_node_get_fsverity_digest(node) != NULL)
		CHECK_HEX(lcfs_node_get_fsverity_digest(node), hex);
	lcfs_node_unref(node);

	node = lcfs_node_new();
	CHECK(node != NULL);
	m = (struct mem_cb){ .data = data, .left = len };
	CHECK(lcfs_node_set_fsverity_from_content(node, &m, mem_read) == 0);
	CHECK(lcfs_node_get_fsverity_digest(node) != NULL);
	if (lcfs_node_get_fsverity_digest(node) != NULL)
		CHECK_HEX(lcfs_node_get_fsverity_digest(node), hex);
	lcfs_node_unref(node);
	close(fd);
}

static void test_known_answers(void)
{
	static const struct {
		size_t len;
		const char *hex;
	} pat[] = {
		{ 1, "cbac0c6682853393bb2abdd8389afb169d992d4f7a2c8025f0dab7dda00d206e" },
		{ 4095, "f568d802dcaef7d80b9a1a4c490004ed993bfa32ff91060aa9c3014ae3cc97a0" },
		{ 4096, "c962037569d9fdf560e6e18775b0d8978bf96429b48edd490f60e6e661806783" },
		{ 4097, "a665c6a7abd527c5d198b0d299d12523bf4c84233c55c34e6170609403ea217e" },
		/* 128 blocks + 1: the first two-level tree. */
		{ 128 * BLOCK + 1,
		  "76bcde6d4a6f7957e23e3c6a5084436dbe626f4d17a9abe4efdf0dc38718a812" },
		/* 128 * 128 blocks + 1: the first three-level tree. */
		{ 128 * 128 * BLOCK + 1,
		  "da7216392f1f4f177a6b2b224debf9e3b82a8fa542f3e57c7ff4ede9e29ccc72" },
	};
	uint8_t *p = pattern(128 * 128 * BLOCK + 1);

	check_all((const uint8_t *)"hello world\n", 12,
		  "37061ef2ac4c21bec68489b56138c5780306a4ad7fe6676236ecdf2c9027cd92");
	check_all((const uint8_t *)"foo bar baz\n", 12,
		  "91e7d88cb7bc9cf6d8db3b0ecf89af4abf204bef5b3ade5113d5b62ef374e70b");
	/* The kernel's digest of an empty file (root hash all zero), not the
	 * reference's cfc33910... (docs/compatibility.md, "Empty-file
	 * digest"). */
	check_all((const uint8_t *)"", 0,
		  "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95");
	for (size_t i = 0; i < sizeof(pat) / sizeof(pat[0]); i++)
		check_all(p, pat[i].len, pat[i].hex);
	free(p);
}

/* Without known answers, every method must agree with from_data() at each
 * boundary of the tree. */
static void test_boundaries(void)
{
	static const size_t sizes[] = {
		2,
		BLOCK - 1,
		BLOCK + 1,
		2 * BLOCK,
		128 * BLOCK - 1,
		128 * BLOCK,
		128 * BLOCK + 1,
		129 * BLOCK,
		128 * 128 * BLOCK - 1,
		128 * 128 * BLOCK,
		128 * 128 * BLOCK + BLOCK,
		5 * 1024 * 1024 + 123,
	};
	size_t max = 128 * 128 * BLOCK + BLOCK;
	uint8_t *p = xmalloc(max);

	for (size_t i = 0; i < max; i++)
		p[i] = (uint8_t)(rng() >> 56);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t d[LCFS_DIGEST_SIZE];
		char hex[65];

		CHECK(lcfs_compute_fsverity_from_data(d, p, sizes[i]) == 0);
		lcfs_digest_to_hex(d, hex);
		check_all(p, sizes[i], hex);
	}
	free(p);
}

static void test_offsets(void)
{
	uint8_t *p = pattern(3 * BLOCK + 17);
	uint8_t d[LCFS_DIGEST_SIZE], want[LCFS_DIGEST_SIZE], whole[LCFS_DIGEST_SIZE];
	struct lcfs_node_s *node;
	int fd = write_file("offset", p, 3 * BLOCK + 17);

	CHECK(lcfs_compute_fsverity_from_data(whole, p, 3 * BLOCK + 17) == 0);

	/* from_fd digests from the current offset on. */
	CHECK(lcfs_compute_fsverity_from_data(want, p + 1000, 3 * BLOCK + 17 - 1000) == 0);
	CHECK(lseek(fd, 1000, SEEK_SET) == 1000);
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);
	CHECK(lseek(fd, 0, SEEK_CUR) == 3 * BLOCK + 17);

	node = lcfs_node_new();
	CHECK(lseek(fd, 1000, SEEK_SET) == 1000);
	CHECK(lcfs_node_set_fsverity_from_fd(node, fd) == 0);
	CHECK(memcmp(lcfs_node_get_fsverity_digest(node), want, sizeof(d)) == 0);
	lcfs_node_unref(node);

	/* At or past the end: the empty digest. */
	CHECK(lcfs_compute_fsverity_from_data(want, NULL, 0) == 0);
	CHECK(lseek(fd, 0, SEEK_END) == 3 * BLOCK + 17);
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);
	CHECK(lseek(fd, 100000, SEEK_SET) == 100000);
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);

	/* get_fsverity falls back to the whole file, whatever the offset. */
	CHECK(lseek(fd, 5000, SEEK_SET) == 5000);
	CHECK(lcfs_fd_get_fsverity(d, fd) == 0);
	CHECK(memcmp(d, whole, sizeof(d)) == 0);

	/* The fast path reads with pread(): the offset does not move and
	 * only @size bytes count. */
	CHECK(lseek(fd, 7, SEEK_SET) == 7);
	CHECK(lcfs_fsverity_digest_fd_fast(fd, 3 * BLOCK + 17, d) == 0);
	CHECK(memcmp(d, whole, sizeof(d)) == 0);
	CHECK(lseek(fd, 0, SEEK_CUR) == 7);
	CHECK(lcfs_compute_fsverity_from_data(want, p, BLOCK + 1) == 0);
	CHECK(lcfs_fsverity_digest_fd_fast(fd, BLOCK + 1, d) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);
	/* A file shorter than the size it was said to have. */
	CHECK(lcfs_fsverity_digest_fd_fast(fd, 3 * BLOCK + 18, d) == -ENODATA);
	CHECK(lcfs_fsverity_digest_fd_fast(-1, 1, d) == -EBADF);
	close(fd);
	free(p);

	/* An offset into a file larger than the read buffers. */
	p = pattern(600 * 1024 + 3);
	fd = write_file("offset", p, 600 * 1024 + 3);
	CHECK(lcfs_compute_fsverity_from_data(want, p + 4097, 600 * 1024 + 3 - 4097) == 0);
	CHECK(lseek(fd, 4097, SEEK_SET) == 4097);
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);
	CHECK(lseek(fd, 0, SEEK_CUR) == 600 * 1024 + 3);
	close(fd);
	free(p);
}

static void test_pipe(void)
{
	uint8_t *p = pattern(BLOCK + 5);
	uint8_t d[LCFS_DIGEST_SIZE], want[LCFS_DIGEST_SIZE];
	int fds[2];

	/* A pipe has no size: from_fd must read it to its end. */
	CHECK(pipe(fds) == 0);
	CHECK(write(fds[1], p, BLOCK + 5) == BLOCK + 5);
	close(fds[1]);
	CHECK(lcfs_compute_fsverity_from_data(want, p, BLOCK + 5) == 0);
	CHECK(lcfs_compute_fsverity_from_fd(d, fds[0]) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);
	close(fds[0]);
	free(p);
}

static void test_errors(void)
{
	uint8_t *p = pattern(10000);
	uint8_t d[LCFS_DIGEST_SIZE];
	struct mem_cb m = { .data = p, .left = 10000, .fail = true };
	struct lcfs_node_s *node = lcfs_node_new();
	int fd;

	/* A read error is ENODATA and leaves the node without a digest. */
	errno = 0;
	CHECK(lcfs_compute_fsverity_from_content(d, &m, mem_read) == -1 &&
	      errno == ENODATA);
	m = (struct mem_cb){ .data = p, .left = 10000, .fail = true };
	errno = 0;
	CHECK(lcfs_node_set_fsverity_from_content(node, &m, mem_read) == -1 &&
	      errno == ENODATA);
	CHECK(lcfs_node_get_fsverity_digest(node) == NULL);

	errno = 0;
	CHECK(lcfs_compute_fsverity_from_fd(d, -1) == -1 && errno == EBADF);
	errno = 0;
	CHECK(lcfs_node_set_fsverity_from_fd(node, -1) == -1 && errno == EBADF);
	CHECK(lcfs_node_get_fsverity_digest(node) == NULL);

	/* A directory cannot be read: ENODATA as for any read error. */
	fd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	errno = 0;
	CHECK(lcfs_compute_fsverity_from_fd(d, fd) == -1 && errno == ENODATA);
	close(fd);

	/* A stream that is never finished is simply freed. */
	{
		struct lcfs_fsverity_stream *s = lcfs_fsverity_stream_new();

		CHECK(s != NULL);
		lcfs_fsverity_stream_update(s, p, 10000);
		lcfs_fsverity_stream_free(s);
		lcfs_fsverity_stream_free(NULL);
	}
	lcfs_node_unref(node);
	free(p);
}

/* This kernel has no fs-verity: measuring reports -ENOVERITY, enabling a
 * negative errno; where the kernel does support it (a verity-capable
 * filesystem), test-fsverity-kernel checks the real values. */
static void test_kernel_calls(void)
{
	uint8_t d[LCFS_DIGEST_SIZE], want[LCFS_DIGEST_SIZE];
	char path[256];
	int fd = write_file("plain", (const uint8_t *)"hello world\n", 12);
	int r;

	errno = 0;
	r = lcfs_fd_measure_fsverity(d, fd);
	CHECK(r == -ENOVERITY && errno == ENOVERITY);
	errno = 0;
	CHECK(lcfs_fd_measure_fsverity(d, -1) == -EBADF && errno == EBADF);
	errno = 0;
	CHECK(lcfs_fd_get_fsverity(d, -1) == -EBADF && errno == EBADF);

	CHECK(lcfs_compute_fsverity_from_data(want, (uint8_t *)"hello world\n", 12) == 0);
	CHECK(lseek(fd, 3, SEEK_SET) == 3);
	CHECK(lcfs_fd_get_fsverity(d, fd) == 0);
	CHECK(memcmp(d, want, sizeof(d)) == 0);

	/* A writable fd is refused by the kernel in any case (ETXTBSY on
	 * verity-capable filesystems); the call must report it. */
	errno = 0;
	r = lcfs_fd_enable_fsverity(fd);
	CHECK(r < 0 && errno == -r);
	close(fd);
	errno = 0;
	CHECK(lcfs_fd_enable_fsverity(-1) == -EBADF && errno == EBADF);

	snprintf(path, sizeof(path), "%s/plain", tmpdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	errno = 0;
	r = lcfs_fd_enable_fsverity(fd);
	CHECK(r <= 0);
	if (r < 0)
		CHECK(errno == -r);
	close(fd);
}

struct thread_job {
	int fd;
	uint64_t size;
	int ret;
	uint8_t digest[LCFS_DIGEST_SIZE];
};

static void *thread_digest(void *arg)
{
	struct thread_job *j = arg;

	for (int i = 0; i < 4 && j->ret == 0; i++)
		j->ret = lcfs_fsverity_digest_fd_fast(j->fd, j->size, j->digest);
	return NULL;
}

/* The directory scanner digests files from several threads at once, some
 * through the same fd: nothing may be shared between calls. */
static void test_threads(void)
{
	size_t sizes[4] = { 128 * BLOCK + 1, 700 * 1024, 5, 0 };
	struct thread_job jobs[8];
	pthread_t tids[8];
	uint8_t *p = pattern(700 * 1024);
	uint8_t want[4][LCFS_DIGEST_SIZE];
	int fds[4];

	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "thread%d", i);
		fds[i] = write_file(name, p, sizes[i]);
		CHECK(lcfs_compute_fsverity_from_data(want[i], p, sizes[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct thread_job){ .fd = fds[i % 4], .size = sizes[i % 4] };
		CHECK(pthread_create(&tids[i], NULL, thread_digest, &jobs[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(tids[i], NULL);
		CHECK(jobs[i].ret == 0);
		CHECK(memcmp(jobs[i].digest, want[i % 4], LCFS_DIGEST_SIZE) == 0);
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	free(p);
}

static void cleanup_tmpdir(void)
{
	static const char *const names[] = {
		"all",     "offset",  "plain",   "thread0",
		"thread1", "thread2", "thread3", "groups",
	};
	char path[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

/* Digesting a file in parts (the hashes of its groups, on any thread, then
 * the tree from them) gives the whole file's digest, and one reused file
 * hasher gives it for files of every size in turn. */
static void test_groups(void)
{
	/* Sizes around the group boundaries, and one whose groups need
	 * two levels above them. */
	static const uint64_t sizes[] = {
		LCFS_FSVERITY_GROUP_SIZE + 1,
		2 * LCFS_FSVERITY_GROUP_SIZE,
		2 * LCFS_FSVERITY_GROUP_SIZE + BLOCK + 1,
		5 * LCFS_FSVERITY_GROUP_SIZE + 123,
		129 * LCFS_FSVERITY_GROUP_SIZE + 7,
	};
	struct lcfs_fsverity_file_hasher *h = lcfs_fsverity_file_hasher_new();
	uint8_t want[LCFS_DIGEST_SIZE], d[LCFS_DIGEST_SIZE];

	CHECK(h != NULL);
	if (h == NULL)
		return;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t size = sizes[i];
		size_t n = (size_t)((size + LCFS_FSVERITY_GROUP_SIZE - 1) / LCFS_FSVERITY_GROUP_SIZE);
		uint8_t *p = pattern((size_t)size);
		uint8_t(*groups)[LCFS_DIGEST_SIZE] = calloc(n, LCFS_DIGEST_SIZE);
		int fd = write_file("groups", p, (size_t)size);

		CHECK(groups != NULL);
		CHECK(lcfs_fsverity_digest_fd_fast(fd, size, want) == 0);
		CHECK(lcfs_fsverity_file_hasher_digest(h, fd, size, d) == 0);
		CHECK(memcmp(d, want, sizeof(d)) == 0);
		/* A small file with the same hasher after the large one. */
		CHECK(lcfs_fsverity_file_hasher_digest(h, fd, 5, d) == 0);
		CHECK(lcfs_compute_fsverity_from_data(want, p, 5) == 0);
		CHECK(memcmp(d, want, sizeof(d)) == 0);
		CHECK(lcfs_fsverity_digest_fd_fast(fd, size, want) == 0);

		/* Parts of one group and of three, the last one short. */
		for (size_t part = 1; part <= 3; part += 2) {
			memset(groups, 0, n * LCFS_DIGEST_SIZE);
			for (size_t g = 0; g < n; g += part) {
				uint64_t off = (uint64_t)g * LCFS_FSVERITY_GROUP_SIZE;
				uint64_t len = (uint64_t)part * LCFS_FSVERITY_GROUP_SIZE;

				if (len > size - off)
					len = size - off;
				CHECK(lcfs_fsverity_file_hasher_groups(h, fd, off, len,
								       groups + g) == 0);
			}
			memset(d, 0, sizeof(d));
			CHECK(lcfs_fsverity_digest_from_groups(
				      (const uint8_t(*)[LCFS_DIGEST_SIZE])groups, size, d) == 0);
			CHECK(memcmp(d, want, sizeof(d)) == 0);
		}
		/* One changed byte changes exactly its group. */
		memcpy(d, groups[n - 1], sizeof(d));
		p[size - 1] ^= 1;
		CHECK(pwrite(fd, p + size - 1, 1, (off_t)size - 1) == 1);
		CHECK(lcfs_fsverity_file_hasher_groups(
			      h, fd, (uint64_t)(n - 1) * LCFS_FSVERITY_GROUP_SIZE,
			      size - (uint64_t)(n - 1) * LCFS_FSVERITY_GROUP_SIZE,
			      groups + n - 1) == 0);
		CHECK(memcmp(d, groups[n - 1], sizeof(d)) != 0);
		CHECK(lcfs_fsverity_digest_from_groups(
			      (const uint8_t(*)[LCFS_DIGEST_SIZE])groups, size, d) == 0);
		CHECK(memcmp(d, want, sizeof(d)) != 0);
		CHECK(lcfs_fsverity_digest_fd_fast(fd, size, want) == 0);
		CHECK(memcmp(d, want, sizeof(d)) == 0);

		/* Misaligned, empty and past-the-end parts. */
		CHECK(lcfs_fsverity_file_hasher_groups(h, fd, BLOCK, LCFS_FSVERITY_GROUP_SIZE,
						       groups) == -EINVAL);
		CHECK(lcfs_fsverity_file_hasher_groups(h, fd, 0, 0, groups) == -EINVAL);
		CHECK(lcfs_fsverity_file_hasher_groups(h, fd, (uint64_t)(n - 1) * LCFS_FSVERITY_GROUP_SIZE,
						       LCFS_FSVERITY_GROUP_SIZE + 1,
						       groups) == -ENODATA);
		close(fd);
		free(groups);
		free(p);
	}
	/* A single group is no tree of groups. */
	CHECK(lcfs_fsverity_digest_from_groups((const uint8_t(*)[LCFS_DIGEST_SIZE])want,
					       LCFS_FSVERITY_GROUP_SIZE, d) == -EINVAL);
	lcfs_fsverity_file_hasher_free(h);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "cannot create a temporary directory: %s\n",
			strerror(errno));
		return 1;
	}
	TEST_CASE(test_sha256);
	TEST_CASE(test_known_answers);
	TEST_CASE(test_boundaries);
	TEST_CASE(test_offsets);
	TEST_CASE(test_pipe);
	TEST_CASE(test_errors);
	TEST_CASE(test_kernel_calls);
	TEST_CASE(test_threads);
	TEST_CASE(test_groups);
	cleanup_tmpdir();
	return test_summary("test-fsverity");
}
