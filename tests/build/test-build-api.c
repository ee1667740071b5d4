/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The directory-scan API (documented in lcfs-writer.h):
 * lcfs_node_set_from_content(), lcfs_load_node_from_file(), lcfs_build()
 * and the internal lcfs_build_tree(): flags, inlining, digests and payload
 * paths, files that vanish or shrink between the scan and the content
 * pass, hard links, trees deeper than PATH_MAX and than the number of
 * descriptors the process may open, and the digests of a mix of big and
 * small files whatever the number of threads.
 */
#include "lcfs-tools.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "check.h"

static char tmpdir[] = "/tmp/cfs-build-api-XXXXXX";

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static char *path_in(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		die(path);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static struct lcfs_node_s *reg_node(uint64_t size)
{
	struct lcfs_node_s *n = lcfs_node_new();

	if (n == NULL)
		die("lcfs_node_new");
	lcfs_node_set_mode(n, S_IFREG | 0644);
	lcfs_node_set_size(n, size);
	return n;
}

static bool digest_path_ok(struct lcfs_node_s *n, const uint8_t digest[32])
{
	const char *payload = lcfs_node_get_payload(n);
	char hex[65];

	lcfs_digest_to_hex(digest, hex);
	return payload != NULL && strlen(payload) == 65 && payload[2] == '/' &&
	       strncmp(payload, hex, 2) == 0 && strcmp(payload + 3, hex + 2) == 0;
}

static void test_set_from_content(void)
{
	uint8_t data[200], want[32];
	struct lcfs_node_s *n;

	fill(data, sizeof(data), 1);
	write_file(path_in("ten"), data, 10);
	write_file(path_in("hundred"), data, 100);
	write_file(path_in("seventy"), data, 70);

	errno = 0;
	CHECK(lcfs_node_set_from_content(NULL, AT_FDCWD, path_in("ten"), 0) == -1 &&
	      errno == EINVAL);

	n = reg_node(10);
	errno = 0;
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("missing"), 0) == -1 &&
	      errno == ENOENT);

	/* 1..64 bytes: inline; no digest unless asked. */
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("ten"), 0) == 0);
	CHECK(lcfs_node_get_content(n) != NULL &&
	      memcmp(lcfs_node_get_content(n), data, 10) == 0);
	CHECK(lcfs_node_get_fsverity_digest(n) == NULL);
	CHECK(lcfs_node_get_payload(n) == NULL);
	lcfs_node_unref(n);

	/* Inline files still get digest and payload when asked. */
	n = reg_node(10);
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("ten"),
					 LCFS_BUILD_COMPUTE_DIGEST |
						 LCFS_BUILD_BY_DIGEST) == 0);
	CHECK(lcfs_compute_fsverity_from_data(want, data, 10) == 0);
	CHECK(lcfs_node_get_content(n) != NULL);
	CHECK(lcfs_node_get_fsverity_digest(n) != NULL &&
	      memcmp(lcfs_node_get_fsverity_digest(n), want, 32) == 0);
	CHECK(digest_path_ok(n, want));
	lcfs_node_unref(n);

	/* NO_INLINE + BY_DIGEST without COMPUTE_DIGEST: payload only. */
	n = reg_node(10);
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("ten"),
					 LCFS_BUILD_NO_INLINE | LCFS_BUILD_BY_DIGEST) == 0);
	CHECK(lcfs_node_get_content(n) == NULL);
	CHECK(lcfs_node_get_fsverity_digest(n) == NULL);
	CHECK(digest_path_ok(n, want));
	lcfs_node_unref(n);

	/* 65 bytes and more: digest, never inline. */
	n = reg_node(100);
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("hundred"),
					 LCFS_BUILD_COMPUTE_DIGEST) == 0);
	CHECK(lcfs_compute_fsverity_from_data(want, data, 100) == 0);
	CHECK(lcfs_node_get_content(n) == NULL);
	CHECK(lcfs_node_get_payload(n) == NULL);
	CHECK(lcfs_node_get_fsverity_digest(n) != NULL &&
	      memcmp(lcfs_node_get_fsverity_digest(n), want, 32) == 0);
	lcfs_node_unref(n);

	/* A file shorter than the node's size: ENODATA, inline or not. */
	n = reg_node(100);
	errno = 0;
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("seventy"),
					 LCFS_BUILD_COMPUTE_DIGEST) == -1 &&
	      errno == ENODATA);
	lcfs_node_unref(n);
	n = reg_node(20);
	errno = 0;
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("ten"), 0) == -1 &&
	      errno == ENODATA);
	lcfs_node_unref(n);

	/* A longer file: the digest covers the node's size. */
	n = reg_node(65);
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("hundred"),
					 LCFS_BUILD_COMPUTE_DIGEST) == 0);
	CHECK(lcfs_compute_fsverity_from_data(want, data, 65) == 0);
	CHECK(lcfs_node_get_fsverity_digest(n) != NULL &&
	      memcmp(lcfs_node_get_fsverity_digest(n), want, 32) == 0);
	lcfs_node_unref(n);

	/* Size 0: nothing at all. */
	n = reg_node(0);
	CHECK(lcfs_node_set_from_content(n, AT_FDCWD, path_in("hundred"),
					 LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST) == 0);
	CHECK(lcfs_node_get_fsverity_digest(n) == NULL);
	CHECK(lcfs_node_get_payload(n) == NULL);
	CHECK(lcfs_node_get_content(n) == NULL);
	lcfs_node_unref(n);
}

static void test_load_node_from_file(void)
{
	struct lcfs_node_s *n;
	size_t len;

	errno = 0;
	CHECK(lcfs_load_node_from_file(AT_FDCWD, path_in("ten"), 1 << 7) == NULL &&
	      errno == EINVAL);
	errno = 0;
	CHECK(lcfs_load_node_from_file(AT_FDCWD, path_in("ten"),
				       LCFS_BUILD_SKIP_XATTRS |
					       LCFS_BUILD_USER_XATTRS) == NULL &&
	      errno == EINVAL);
	errno = 0;
	CHECK(lcfs_load_node_from_file(AT_FDCWD, path_in("missing"), 0) == NULL &&
	      errno == ENOENT);

	if (symlink("some/target", path_in("sym")) < 0)
		die("symlink");
	n = lcfs_load_node_from_file(AT_FDCWD, path_in("sym"), 0);
	CHECK(n != NULL);
	if (n != NULL) {
		CHECK((lcfs_node_get_mode(n) & S_IFMT) == S_IFLNK);
		CHECK(lcfs_node_get_payload(n) != NULL &&
		      strcmp(lcfs_node_get_payload(n), "some/target") == 0);
		CHECK(lcfs_node_get_size(n) == strlen("some/target"));
		lcfs_node_unref(n);
	}

	/* Hard-linked file: nlink stays 1; xattrs per flags. */
	if (link(path_in("hundred"), path_in("hundred-link")) < 0)
		die("link");
	if (setxattr(path_in("hundred"), "user.a", "va", 2, 0) < 0 ||
	    setxattr(path_in("hundred"), "trusted.b", "vb", 2, 0) < 0)
		die("setxattr");
	n = lcfs_load_node_from_file(AT_FDCWD, path_in("hundred"),
				     LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST);
	CHECK(n != NULL);
	if (n != NULL) {
		CHECK(lcfs_node_get_nlink(n) == 1);
		CHECK(lcfs_node_get_size(n) == 100);
		CHECK(lcfs_node_get_fsverity_digest(n) != NULL);
		CHECK(lcfs_node_get_payload(n) != NULL);
		CHECK(lcfs_node_get_n_xattr(n) == 2);
		CHECK(lcfs_node_get_xattr(n, "trusted.b", &len) != NULL && len == 2);
		lcfs_node_unref(n);
	}
	n = lcfs_load_node_from_file(AT_FDCWD, path_in("hundred"), LCFS_BUILD_USER_XATTRS);
	CHECK(n != NULL && lcfs_node_get_n_xattr(n) == 1 &&
	      lcfs_node_get_xattr(n, "user.a", &len) != NULL);
	lcfs_node_unref(n);
	n = lcfs_load_node_from_file(AT_FDCWD, path_in("hundred"), LCFS_BUILD_SKIP_XATTRS);
	CHECK(n != NULL && lcfs_node_get_n_xattr(n) == 0);
	lcfs_node_unref(n);
}

/* ---- Trees ---------------------------------------------------------------------- */

struct sabotage {
	const char *path;
	bool shrink; /* truncate instead of unlinking */
	bool done;
};

/* Called on the calling thread. With one thread, the files are read after
 * the scan, and the first call with files found comes in between. */
static void sabotage_cb(void *data, uint64_t files_done, uint64_t files_total,
			uint64_t bytes_done, uint64_t bytes_total)
{
	struct sabotage *s = data;

	if (s->done || files_total == 0 || files_done != 0)
		return;
	s->done = true;
	if (s->shrink ? truncate(s->path, 50) : unlink(s->path))
		die(s->path);
}

static void test_build(void)
{
	struct lcfs_build_options opts = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root, *a, *b;
	struct sabotage sab = { 0 };
	char *failed = NULL;
	uint8_t data[300];

	if (mkdir(path_in("tree"), 0755) < 0 || mkdir(path_in("tree/sub"), 0755) < 0)
		die("mkdir");
	fill(data, sizeof(data), 2);
	write_file(path_in("tree/sub/victim"), data, 300);
	write_file(path_in("tree/a"), data, 200);
	if (link(path_in("tree/a"), path_in("tree/sub/b")) < 0)
		die("link");

	errno = 0;
	CHECK(lcfs_build(AT_FDCWD, path_in("no-such-dir"), 0, &failed) == NULL &&
	      errno == ENOENT);
	CHECK(failed != NULL && strcmp(failed, path_in("no-such-dir")) == 0);
	free(failed);
	failed = NULL;
	errno = 0;
	CHECK(lcfs_build(AT_FDCWD, path_in("tree"), 1 << 9, NULL) == NULL &&
	      errno == EINVAL);

	/* Without --hardlinks two independent inodes, nlink 1. */
	root = lcfs_build(AT_FDCWD, path_in("tree"),
			  LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST, &failed);
	CHECK(root != NULL && failed == NULL);
	if (root != NULL) {
		a = lcfs_node_lookup_child(root, "a");
		b = lcfs_node_lookup_child(lcfs_node_lookup_child(root, "sub"), "b");
		CHECK(a != NULL && b != NULL);
		CHECK(lcfs_node_get_hardlink_target(b) == NULL);
		CHECK(lcfs_node_get_nlink(a) == 1 && lcfs_node_get_nlink(b) == 1);
		CHECK(strcmp(lcfs_node_get_payload(a), lcfs_node_get_payload(b)) == 0);
		lcfs_node_unref(root);
	}

	/* With hard links: the later name (depth first, name order) links to
	 * the first. */
	opts.flags = LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST;
	opts.hardlinks = true;
	opts.threads = 3;
	root = lcfs_build_tree(AT_FDCWD, path_in("tree"), &opts, &err);
	CHECK(root != NULL);
	if (root != NULL) {
		a = lcfs_node_lookup_child(root, "a");
		b = lcfs_node_lookup_child(lcfs_node_lookup_child(root, "sub"), "b");
		CHECK(lcfs_node_get_hardlink_target(b) == a);
		CHECK(lcfs_node_get_nlink(a) == 2);
		CHECK(lcfs_node_get_fsverity_digest(a) != NULL);
		lcfs_node_unref(root);
	}

	/* A file that vanishes after the scan: the error names it. */
	opts.hardlinks = false;
	opts.threads = 1;
	sab.path = path_in("tree/sub/victim");
	opts.progress = sabotage_cb;
	opts.progress_data = &sab;
	memset(&err, 0, sizeof(err));
	root = lcfs_build_tree(AT_FDCWD, path_in("tree"), &opts, &err);
	CHECK(root == NULL && sab.done);
	CHECK(err.err == ENOENT && strstr(err.msg, "sub/victim") != NULL);

	/* One that shrinks: ENODATA. */
	write_file(path_in("tree/sub/victim"), data, 300);
	sab.done = false;
	sab.shrink = true;
	memset(&err, 0, sizeof(err));
	root = lcfs_build_tree(AT_FDCWD, path_in("tree"), &opts, &err);
	CHECK(root == NULL && sab.done);
	CHECK(err.err == ENODATA && strstr(err.msg, "sub/victim") != NULL);
}

/*
 * A chain of DEPTH directories "d" (its paths longer than PATH_MAX), every
 * SIDE_EVERY-th with a side directory "e" that the scan enters after
 * returning from "d", and a file at the bottom; built with fewer
 * descriptors allowed than levels.
 */
#define DEPTH 2100
#define SIDE_EVERY 8

static void test_deep(void)
{
	struct lcfs_build_options opts = { 0 };
	struct lcfs_error err = { 0 };
	struct rlimit old, rl;
	struct lcfs_node_s *root, *n;
	uint8_t data[100];
	int fd, depth = 0;
	bool shape_ok = true;

	if (mkdir(path_in("deep"), 0755) < 0)
		die("mkdir");
	fd = open(path_in("deep"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < DEPTH && fd >= 0; i++) {
		int next;

		if (mkdirat(fd, "d", 0755) < 0 ||
		    (i % SIDE_EVERY == 0 && mkdirat(fd, "e", 0755) < 0))
			die("mkdirat");
		next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	if (fd < 0)
		die("openat");
	fill(data, sizeof(data), 3);
	{
		int f = openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (f < 0 || write(f, data, sizeof(data)) != sizeof(data))
			die("bottom");
		close(f);
	}
	close(fd);

	getrlimit(RLIMIT_NOFILE, &old);
	rl = old;
	rl.rlim_cur = 200;
	setrlimit(RLIMIT_NOFILE, &rl);
	opts.flags = LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST;
	opts.threads = 2;
	root = lcfs_build_tree(AT_FDCWD, path_in("deep"), &opts, &err);
	setrlimit(RLIMIT_NOFILE, &old);
	if (root == NULL)
		fprintf(stderr, "deep tree: %s\n", err.msg);
	CHECK(root != NULL);
	if (root == NULL)
		return;
	for (n = root; n != NULL; depth++) {
		struct lcfs_node_s *d = lcfs_node_lookup_child(n, "d");

		if (depth < DEPTH &&
		    (d == NULL || lcfs_node_get_n_children(n) != (depth % SIDE_EVERY ? 1 : 2) ||
		     (depth % SIDE_EVERY == 0 && lcfs_node_lookup_child(n, "e") == NULL)))
			shape_ok = false;
		if (d == NULL)
			break;
		n = d;
	}
	CHECK(shape_ok);
	CHECK(depth == DEPTH);
	n = n ? lcfs_node_lookup_child(n, "bottom") : NULL;
	CHECK(n != NULL && lcfs_node_get_fsverity_digest(n) != NULL);
	lcfs_node_unref(root);
}

/*
 * A tree with files of 1 MiB and more (which workers take largest first,
 * once no smaller file is queued) among many small ones: with 1, 2 and 4
 * threads, every file gets the digest of its own content, computed here
 * through the public fd helper.
 */
#define MIX_DIRS 6
#define MIX_SMALL 40
#define MIX_BIG 5

static int mix_walk(struct lcfs_node_s *dir, const char *rel, unsigned *files)
{
	int bad = 0;

	for (size_t i = 0; i < lcfs_node_get_n_children(dir); i++) {
		struct lcfs_node_s *ch = lcfs_node_get_child(dir, i);
		const uint8_t *got = lcfs_node_get_fsverity_digest(ch);
		char sub[256];
		uint8_t want[32];
		int fd;

		snprintf(sub, sizeof(sub), "%s/%s", rel, lcfs_node_get_name(ch));
		if (S_ISDIR(lcfs_node_get_mode(ch))) {
			bad += mix_walk(ch, sub, files);
			continue;
		}
		(*files)++;
		fd = open(path_in(sub), O_RDONLY | O_CLOEXEC);
		if (fd < 0 || lcfs_compute_fsverity_from_fd(want, fd) < 0)
			die(sub);
		close(fd);
		if (got == NULL || memcmp(got, want, 32) != 0) {
			fprintf(stderr, "%s: wrong or missing digest\n", sub);
			bad++;
		}
	}
	return bad;
}

static void test_big_and_small(void)
{
	static uint8_t data[(1 << 20) + MIX_BIG * 100000];
	struct lcfs_build_options opts = { 0 };
	static const unsigned thread_counts[] = { 1, 2, 4 };
	char name[64];

	if (mkdir(path_in("mix"), 0755) < 0)
		die("mkdir");
	for (unsigned d = 0; d < MIX_DIRS; d++) {
		snprintf(name, sizeof(name), "mix/d%u", d);
		if (mkdir(path_in(name), 0755) < 0)
			die("mkdir");
		for (unsigned i = 0; i < MIX_SMALL; i++) {
			fill(data, 4000, d * 1000 + i);
			snprintf(name, sizeof(name), "mix/d%u/s%u", d, i);
			write_file(path_in(name), data, 65 + (d * 7919 + i * 104729) % 9000);
		}
		if (d % 2 == 0)
			continue;
		/* Sizes out of order, so that the heap has to sort them. */
		for (unsigned i = 0; i < MIX_BIG; i++) {
			size_t size = (1 << 20) + ((i * 3 + d) % MIX_BIG) * 100000 + d;

			fill(data, size, d * 100 + i);
			snprintf(name, sizeof(name), "mix/d%u/big%u", d, i);
			write_file(path_in(name), data, size);
		}
	}
	opts.flags = LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST;
	for (size_t t = 0; t < sizeof(thread_counts) / sizeof(thread_counts[0]); t++) {
		struct lcfs_error err = { 0 };
		struct lcfs_node_s *root;
		unsigned files = 0;

		opts.threads = thread_counts[t];
		root = lcfs_build_tree(AT_FDCWD, path_in("mix"), &opts, &err);
		CHECK(root != NULL);
		if (root == NULL)
			continue;
		CHECK(mix_walk(root, "mix", &files) == 0);
		CHECK(files == MIX_DIRS * MIX_SMALL + (MIX_DIRS / 2) * MIX_BIG);
		lcfs_node_unref(root);
	}
}

int main(void)
{
	char cmd[PATH_MAX + 32];

	if (geteuid() != 0) {
		printf("SKIP: needs root for trusted.* xattrs\n");
		return 77;
	}
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp");
	TEST_CASE(test_set_from_content);
	TEST_CASE(test_load_node_from_file);
	TEST_CASE(test_build);
	TEST_CASE(test_deep);
	TEST_CASE(test_big_and_small);
	/* rm copes with paths longer than PATH_MAX. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		test_failures++;
	return test_summary("test-build-api");
}
