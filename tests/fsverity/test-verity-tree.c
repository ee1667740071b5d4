/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Unit tests of the in-memory Merkle trees (lcfs-verity-tree.c): a tree
 * builds only for the right digest (known answers, and the digest that
 * `fsverity digest` from fsverity-utils prints for the same file), reads
 * through it return the file's bytes for every alignment and at the end
 * of the data, whatever part of the tree the memory budget lets it keep;
 * a byte changed in the file after the build, or a file cut short, makes
 * the reads of the blocks concerned fail with EIO while the others still
 * read; the budget is charged and given back; concurrent readers agree.
 */
#include "lcfs-verity-tree-internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "pattern.h"
#include "lcfs-util.h"

#define BLOCK 4096

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	return xorshift64(&rng_state);
}

static char tmpdir[4096];

static int write_file(const char *name, const uint8_t *data, size_t len,
		      char path[4200])
{
	int fd;

	snprintf(path, 4200, "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || lcfs_pwrite_all(fd, data, len, 0) < 0) {
		fprintf(stderr, "cannot write '%s': %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* The digest `fsverity digest` prints for @path; false when the tool is
 * not installed. */
static bool fsverity_utils_digest(const char *path, uint8_t digest[LCFS_DIGEST_SIZE])
{
	char cmd[4400], line[512];
	bool ok = false;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "fsverity digest --hash-alg=sha256 --block-size=4096 '%s' 2>/dev/null",
		 path);
	p = popen(cmd, "r");
	if (p == NULL)
		return false;
	if (fgets(line, sizeof(line), p) != NULL && strncmp(line, "sha256:", 7) == 0)
		ok = lcfs_digest_from_hex(line + 7, 64, digest) == 0;
	pclose(p);
	return ok;
}

/* Reads [off, off + len) through @t and compares with @data. */
static void check_read(struct lcfs_verity_tree *t, int fd, const uint8_t *data,
		       uint64_t size, uint64_t off, size_t len)
{
	uint8_t *buf = xmalloc(len);
	uint64_t want = off >= size ? 0 : (size - off < len ? size - off : len);
	ssize_t n = lcfs_verity_tree_read(t, fd, buf, len, off, NULL);

	if (n != (ssize_t)want || (want > 0 && memcmp(buf, data + off, want) != 0)) {
		fprintf(stderr, "read of %zu at %llu of %llu: got %zd, expected %llu\n",
			len, (unsigned long long)off, (unsigned long long)size, n,
			(unsigned long long)want);
		test_failures++;
	}
	free(buf);
}

/* Reads the whole file in random pieces, then some edge cases. */
static void check_all_reads(struct lcfs_verity_tree *t, int fd, const uint8_t *data,
			    uint64_t size)
{
	/* Small reads over the whole of small files, over the first, a
	 * middle and the last MiB of large ones; one read of everything. */
	if (size > 4 << 20) {
		uint64_t mid = (size / 2) & ~(uint64_t)(BLOCK - 1);

		for (uint64_t off = 0; off < (1 << 20);) {
			size_t len = 1 + rng() % (3 * BLOCK);

			check_read(t, fd, data, size, off, len);
			check_read(t, fd, data, size, mid + off, len);
			check_read(t, fd, data, size, size - (1 << 20) + off, len);
			off += len;
		}
		check_read(t, fd, data, size, 0, (size_t)size + 100);
		return;
	}
	for (uint64_t off = 0; off < size;) {
		size_t len = 1 + rng() % (3 * BLOCK);

		if (rng() % 4 == 0)
			len = 128 * 1024 + rng() % BLOCK;
		check_read(t, fd, data, size, off, len);
		off += len;
	}
	check_read(t, fd, data, size, 0, (size_t)size + 100);
	check_read(t, fd, data, size, size, 10);
	check_read(t, fd, data, size, size + BLOCK * 3, 10);
	if (size > 0) {
		check_read(t, fd, data, size, size - 1, 10);
		check_read(t, fd, data, size, (size - 1) / 2, 1);
	}
}

/* Sizes at the Merkle tree boundaries, and known answers where there are
 * some (from test-fsverity.c, produced with fsverity-utils). */
static const struct {
	size_t len;
	const char *hex;
} sizes[] = {
	{ 0, NULL },
	{ 1, "cbac0c6682853393bb2abdd8389afb169d992d4f7a2c8025f0dab7dda00d206e" },
	{ 4095, "f568d802dcaef7d80b9a1a4c490004ed993bfa32ff91060aa9c3014ae3cc97a0" },
	{ 4096, "c962037569d9fdf560e6e18775b0d8978bf96429b48edd490f60e6e661806783" },
	{ 4097, "a665c6a7abd527c5d198b0d299d12523bf4c84233c55c34e6170609403ea217e" },
	{ 2 * BLOCK, NULL },
	{ 128 * BLOCK, NULL },
	{ 128 * BLOCK + 1,
	  "76bcde6d4a6f7957e23e3c6a5084436dbe626f4d17a9abe4efdf0dc38718a812" },
	{ 129 * BLOCK + 100, NULL },
	{ 128 * 128 * BLOCK + 1,
	  "da7216392f1f4f177a6b2b224debf9e3b82a8fa542f3e57c7ff4ede9e29ccc72" },
};

/* Budgets: unlimited, nothing (top block only), and room for all but
 * level 0 of the largest file. */
static const uint64_t budgets[] = { UINT64_MAX, 0, 3 * BLOCK };

static void test_sizes(void)
{
	size_t max = 128 * 128 * BLOCK + 1;
	uint8_t *data = pattern(max);
	int utils = 0;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t size = sizes[k].len;
		uint8_t want[LCFS_DIGEST_SIZE], ref[LCFS_DIGEST_SIZE];
		uint8_t wrong[LCFS_DIGEST_SIZE], found[LCFS_DIGEST_SIZE];
		char path[4200];
		int fd = write_file("sizes", data, size, path);
		struct lcfs_verity_tree *t = NULL;

		CHECK(lcfs_compute_fsverity_from_data(want, data, size) == 0);
		if (sizes[k].hex != NULL) {
			CHECK(lcfs_digest_from_hex(sizes[k].hex, 64, ref) == 0);
			CHECK(memcmp(ref, want, sizeof(ref)) == 0);
		}
		/* fsverity-utils gives another value than the kernel for an
		 * empty file; every other size must agree. */
		if (size > 0 && fsverity_utils_digest(path, ref)) {
			utils++;
			CHECK(memcmp(ref, want, sizeof(ref)) == 0);
		}
		memcpy(wrong, want, sizeof(wrong));
		wrong[7] ^= 0x10;
		CHECK(lcfs_verity_tree_build(fd, size, wrong, NULL, &t, found) ==
		      -EWRONGVERITY);
		CHECK(t == NULL);
		CHECK(memcmp(found, want, sizeof(found)) == 0);
		/* The size is part of the digest. */
		if (size > 0)
			CHECK(lcfs_verity_tree_build(fd, size - 1, want, NULL, &t,
						     NULL) == -EWRONGVERITY);
		CHECK(lcfs_verity_tree_build(fd, size + 1, want, NULL, &t, NULL) ==
		      -ENODATA);

		for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
			struct lcfs_verity_budget *bud = lcfs_verity_budget_new(budgets[b]);

			t = NULL;
			CHECK(bud != NULL);
			CHECK(lcfs_verity_tree_build(fd, size, want, bud, &t, NULL) == 0);
			if (t == NULL)
				continue;
			CHECK(lcfs_verity_tree_size(t) == size);
			if (budgets[b] == 0)
				CHECK(lcfs_verity_tree_levels_kept(t) ==
				      (lcfs_verity_tree_levels(t) > 0 ? 1u : 0u));
			if (budgets[b] == UINT64_MAX)
				CHECK(lcfs_verity_tree_levels_kept(t) ==
				      lcfs_verity_tree_levels(t));
			check_all_reads(t, fd, data, size);
			lcfs_verity_tree_free(t);
			CHECK(lcfs_verity_budget_used(bud) == 0);
			lcfs_verity_budget_free(bud);
		}
		close(fd);
		unlink(path);
	}
	if (utils == 0)
		printf("note: fsverity-utils not found, known answers only\n");
	else
		printf("%d sizes agree with fsverity-utils\n", utils);
	free(data);
}

/* Expects a read of block @blk alone to fail with EIO naming it. */
static void check_bad(struct lcfs_verity_tree *t, int fd, uint64_t blk)
{
	uint8_t buf[BLOCK];
	uint64_t bad = UINT64_MAX;
	ssize_t n = lcfs_verity_tree_read(t, fd, buf, 100, blk * BLOCK + 7, &bad);

	if (n != -EIO || bad != blk) {
		fprintf(stderr, "read of changed block %llu: got %zd (bad %llu)\n",
			(unsigned long long)blk, n, (unsigned long long)bad);
		test_failures++;
	}
}

/* Bytes changed after the build are refused block by block when level 0
 * is kept; without it, the blocks that share the changed one's level-0
 * hash block (512 KiB) fail too, and the rest still read. */
static void test_tamper(void)
{
	size_t size = 300 * BLOCK + 123; /* three level-0 hash blocks */
	uint8_t *data = pattern(size);
	uint8_t want[LCFS_DIGEST_SIZE];
	char path[4200];
	int fd = write_file("tamper", data, size, path);

	CHECK(lcfs_compute_fsverity_from_data(want, data, size) == 0);
	for (int kept_all = 1; kept_all >= 0; kept_all--) {
		struct lcfs_verity_budget *bud =
			lcfs_verity_budget_new(kept_all ? UINT64_MAX : 0);
		struct lcfs_verity_tree *t = NULL;
		uint8_t x;

		CHECK(lcfs_verity_tree_build(fd, size, want, bud, &t, NULL) == 0);
		if (t == NULL)
			continue;
		/* Change one byte of block 200 and of the partial last block. */
		x = data[200 * BLOCK + 5] ^ 1;
		CHECK(pwrite(fd, &x, 1, 200 * BLOCK + 5) == 1);
		x = data[size - 1] ^ 0x80;
		CHECK(pwrite(fd, &x, 1, size - 1) == 1);
		check_bad(t, fd, 200);
		check_bad(t, fd, 300);
		/* Blocks of other level-0 hash blocks read fine. */
		check_read(t, fd, data, size, 0, 128 * BLOCK);
		check_read(t, fd, data, size, 5, 3 * BLOCK);
		if (kept_all) {
			check_read(t, fd, data, size, 199 * BLOCK, BLOCK);
			check_read(t, fd, data, size, 201 * BLOCK + 9, 99 * BLOCK - 9);
		} else {
			check_bad(t, fd, 199);
		}
		/* A larger read that covers the changed block fails whole. */
		{
			uint8_t *buf = xmalloc(size);
			uint64_t bad = 0;

			CHECK(lcfs_verity_tree_read(t, fd, buf, size, 0, &bad) == -EIO);
			CHECK(bad == (kept_all ? 200 : 128));
			free(buf);
		}
		/* Restored, it reads again. */
		CHECK(lcfs_pwrite_all(fd, data, size, 0) == 0);
		check_all_reads(t, fd, data, size);

		/* Cut short: the blocks past the new end fail, those before
		 * read (with level 0 kept). */
		CHECK(ftruncate(fd, 250 * BLOCK + 10) == 0);
		check_bad(t, fd, 260);
		check_bad(t, fd, 299);
		if (kept_all)
			check_read(t, fd, data, size, 248 * BLOCK, 2 * BLOCK);
		check_read(t, fd, data, size, 10 * BLOCK, 4 * BLOCK);
		CHECK(lcfs_pwrite_all(fd, data, size, 0) == 0);
		check_all_reads(t, fd, data, size);

		lcfs_verity_tree_free(t);
		CHECK(lcfs_verity_budget_used(bud) == 0);
		lcfs_verity_budget_free(bud);
	}
	/* A truncated file does not build. */
	CHECK(ftruncate(fd, size - 1) == 0);
	{
		struct lcfs_verity_tree *t = NULL;

		CHECK(lcfs_verity_tree_build(fd, size, want, NULL, &t, NULL) == -ENODATA);
		CHECK(t == NULL);
	}
	close(fd);
	unlink(path);
	free(data);
}

/* Two trees on one budget: the second gets what the first left over. */
static void test_budget(void)
{
	/* Levels: 129 hash blocks, 2, then the top one: 132 blocks. */
	size_t size = 128 * 128 * BLOCK + 1;
	uint8_t *data = pattern(size);
	uint8_t want[LCFS_DIGEST_SIZE];
	struct lcfs_verity_budget *bud = lcfs_verity_budget_new(136 * BLOCK);
	struct lcfs_verity_tree *a = NULL, *b = NULL;
	char path[4200];
	int fd = write_file("budget", data, size, path);
	uint64_t used;

	CHECK(lcfs_verity_tree_memory(0) == 0);
	CHECK(lcfs_verity_tree_memory(BLOCK) == 0);
	CHECK(lcfs_verity_tree_memory(BLOCK + 1) == BLOCK);
	CHECK(lcfs_verity_tree_memory(128 * BLOCK + 1) == 3 * BLOCK);
	CHECK(lcfs_verity_tree_memory(size) == 132 * BLOCK);
	CHECK(lcfs_compute_fsverity_from_data(want, data, size) == 0);
	CHECK(lcfs_verity_budget_available(bud) == 136 * BLOCK);
	CHECK(lcfs_verity_tree_build(fd, size, want, bud, &a, NULL) == 0);
	CHECK(lcfs_verity_budget_available(bud) == 4 * BLOCK);
	CHECK(lcfs_verity_tree_build(fd, size, want, bud, &b, NULL) == 0);
	if (a != NULL && b != NULL) {
		CHECK(lcfs_verity_tree_levels(a) == 3);
		CHECK(lcfs_verity_tree_levels_kept(a) == 3);
		/* Only the top and level 1 fit now (3 blocks of the 4 left),
		 * plus one cached level-0 block. */
		CHECK(lcfs_verity_tree_levels_kept(b) == 2);
		used = lcfs_verity_budget_used(bud);
		CHECK(used > 136 * BLOCK && used < 137 * BLOCK);
		check_read(b, fd, data, size, 77 * 128 * BLOCK + 3, 300 * 1024);
		check_read(b, fd, data, size, size - 5000, 9000);
		check_read(a, fd, data, size, size - 5000, 9000);
	}
	lcfs_verity_tree_free(a);
	lcfs_verity_tree_free(b);
	CHECK(lcfs_verity_budget_used(bud) == 0);
	lcfs_verity_budget_free(bud);
	close(fd);
	unlink(path);
	free(data);
}

struct thread_arg {
	struct lcfs_verity_tree *t;
	int fd;
	const uint8_t *data;
	uint64_t size;
	unsigned seed;
	int bad;
};

static void *reader_thread(void *p)
{
	struct thread_arg *a = p;
	uint8_t *buf = xmalloc(64 * 1024);
	unsigned x = a->seed;

	for (int i = 0; i < 200; i++) {
		uint64_t off;
		ssize_t n;

		x = x * 1103515245u + 12345u;
		off = (uint64_t)(x >> 4) % a->size;
		n = lcfs_verity_tree_read(a->t, a->fd, buf, 64 * 1024, off, NULL);
		if (n <= 0 || memcmp(buf, a->data + off, (size_t)n) != 0)
			a->bad++;
	}
	free(buf);
	return NULL;
}

/* Concurrent reads through a tree without level 0 (shared derived-block
 * cache). */
static void test_threads(void)
{
	size_t size = 3 * 1024 * 1024 + 17;
	uint8_t *data = pattern(size);
	uint8_t want[LCFS_DIGEST_SIZE];
	struct lcfs_verity_budget *bud = lcfs_verity_budget_new(0);
	struct lcfs_verity_tree *t = NULL;
	struct thread_arg args[4];
	pthread_t th[4];
	char path[4200];
	int fd = write_file("threads", data, size, path);

	CHECK(lcfs_compute_fsverity_from_data(want, data, size) == 0);
	CHECK(lcfs_verity_tree_build(fd, size, want, bud, &t, NULL) == 0);
	if (t != NULL) {
		for (int i = 0; i < 4; i++) {
			args[i] = (struct thread_arg){ t, fd, data, size, (unsigned)i * 77 + 1, 0 };
			CHECK(pthread_create(&th[i], NULL, reader_thread, &args[i]) == 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			CHECK(args[i].bad == 0);
		}
	}
	lcfs_verity_tree_free(t);
	lcfs_verity_budget_free(bud);
	close(fd);
	unlink(path);
	free(data);
}

/* Without kernel fs-verity on the file, the kernel path says so. */
static void test_no_kernel_verity(void)
{
	uint8_t data[100] = { 1 }, want[LCFS_DIGEST_SIZE];
	struct lcfs_verity_tree *t = NULL;
	char path[4200];
	int fd = write_file("nokernel", data, sizeof(data), path);

	CHECK(lcfs_compute_fsverity_from_data(want, data, sizeof(data)) == 0);
	CHECK(lcfs_verity_tree_from_kernel(fd, want, NULL, &t) == -ENOVERITY);
	CHECK(t == NULL);
	close(fd);
	unlink(path);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/test-verity-tree-XXXXXX", test_tmp_dir(NULL));
	if (mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "cannot create a directory: %s\n", strerror(errno));
		return 1;
	}
	TEST_CASE(test_sizes);
	TEST_CASE(test_tamper);
	TEST_CASE(test_budget);
	TEST_CASE(test_threads);
	TEST_CASE(test_no_kernel_verity);
	rmdir(tmpdir);
	return test_summary("test-verity-tree");
}
