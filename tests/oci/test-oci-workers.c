/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Tar import with worker threads: the same layer imported with several
 * thread counts and data buffer sizes (down to the smallest, where the
 * reader waits for the workers all the time) gives the same image, byte
 * for byte, and the same objects in the store, each named by the digest of
 * its content. The layer mixes inline, small and multi-block files, sizes
 * on every boundary, duplicated contents, hard links made while the
 * target's content is still being stored, and a path given twice. A store
 * that refuses every object fails the import naming the first file, and
 * publishes nothing.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcomposefs/lcfs-oci.h>
#include <libcomposefs/lcfs-writer.h>

#include "check.h"
#include "tar-tmp.h"
#include "writer-test.h"

#define MIB (1u << 20)

/* The layer, and the directory for the stores. */
static int layer_fd = -1;
static char tmp[] = "/tmp/cfs-oci-workers-XXXXXX";

/* Deterministic content: @seed picks the bytes. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static void add_file(struct archive *a, const char *path, size_t size, uint32_t seed)
{
	struct archive_entry *e = archive_entry_new();
	uint8_t *buf = malloc(size ? size : 1);

	fill(buf, size, seed);
	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, S_IFREG | 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, 1700000000, 0);
	archive_write_header(a, e);
	if (size > 0)
		archive_write_data(a, buf, size);
	archive_entry_free(e);
	free(buf);
}

static void add_link(struct archive *a, const char *path, const char *target)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, path);
	archive_entry_set_mode(e, S_IFREG | 0644);
	archive_entry_set_hardlink(e, target);
	archive_write_header(a, e);
	archive_entry_free(e);
}

/* An unnamed temporary file holding the layer. */
static int make_layer(void)
{
	static const size_t sizes[] = { 0,	       1,	       64,
					65,	       4095,	       4096,
					4097,	       65535,	       65536,
					65537,	       256 * 1024 + 3, MIB - 1,
					MIB,	       MIB + 1,	       3 * MIB + 5,
					2 * MIB };
	int fd;
	struct archive *a = tar_tmp_new(&fd);
	char path[64];

	for (unsigned round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			/* Round 2 repeats round 0's contents under other names. */
			snprintf(path, sizeof(path), "d%u/f%02zu", round, i);
			add_file(a, path, sizes[i], (uint32_t)(round % 2 * 100 + i));
		}
		/* Linked right after the target, whose content is likely
		 * still with a worker. */
		snprintf(path, sizeof(path), "d%u/link", round);
		add_link(a, path, round == 1 ? "d1/f14" : "d0/f13");
	}
	/* A name given twice: the second content wins. */
	add_file(a, "twice", 2 * MIB + 7, 500);
	add_link(a, "twice-link", "twice");
	add_file(a, "twice", 70000, 501);
	return tar_tmp_finish(a, fd);
}

/* The image written for @root. */
static struct membuf image_of(struct lcfs_node_s *root)
{
	struct lcfs_write_options_s wo = { .format = LCFS_FORMAT_EROFS };
	struct membuf m = { NULL, 0 };

	wo.file = &m;
	wo.file_write_cb = mem_write;
	CHECK(lcfs_write_to(root, &wo) == 0);
	return m;
}

/* The store's files as one sorted, newline-separated list of "xx/yyy"
 * names; every object's fs-verity digest must be its name. */
static char *store_list(const char *store)
{
	char *list = calloc(1, 1);
	size_t len = 0;

	for (unsigned d = 0; d < 256; d++) {
		char sub[4200];
		struct dirent **names;
		int n;

		if (snprintf(sub, sizeof(sub), "%.4000s/%02x", store, d) >= (int)sizeof(sub))
			abort();
		n = scandir(sub, &names, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			char path[8192], hex[2 * LCFS_DIGEST_SIZE + 1];
			uint8_t digest[LCFS_DIGEST_SIZE];
			int fd;

			if (names[i]->d_name[0] == '.') {
				free(names[i]);
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s", sub, names[i]->d_name);
			fd = open(path, O_RDONLY);
			CHECK(fd >= 0 && lcfs_compute_fsverity_from_fd(digest, fd) == 0);
			if (fd >= 0)
				close(fd);
			for (int b = 0; b < LCFS_DIGEST_SIZE; b++)
				snprintf(hex + 2 * b, 3, "%02x", digest[b]);
			CHECK(strncmp(hex, sub + strlen(sub) - 2, 2) == 0 &&
			      strcmp(hex + 2, names[i]->d_name) == 0);
			list = realloc(list, len + strlen(names[i]->d_name) + 5);
			len += (size_t)sprintf(list + len, "%02x/%s\n", d, names[i]->d_name);
			free(names[i]);
		}
		if (n >= 0)
			free(names);
	}
	return list;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Nothing temporary left in the store root. */
static bool no_temps(const char *store)
{
	DIR *d = opendir(store);
	struct dirent *de;
	bool clean = true;

	if (d == NULL)
		return true;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".tmp", 4) == 0)
			clean = false;
	closedir(d);
	return clean;
}

static void test_workers(void)
{
	int fd = layer_fd;
	static const struct {
		uint32_t threads, buffer;
		bool store;
	} runs[] = {
		{ 1, MIB, true },     { 2, MIB, true },	  { 3, 3 * MIB + 1, true },
		{ 8, 0, true },	      { 0, 0, true },	  { 5, 2 * MIB, false },
		{ 1, 1, false },
	};
	struct membuf first = { NULL, 0 };
	char *first_list = NULL;

	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		struct lcfs_oci_options_s opts = { 0 };
		char store[4096], *msg = NULL;
		struct lcfs_node_s *root;
		struct membuf img;

		snprintf(store, sizeof(store), "%s/store%zu", tmp, i);
		opts.threads = runs[i].threads;
		opts.data_buffer_size = runs[i].buffer;
		opts.digest_store = runs[i].store ? store : NULL;
		lseek(fd, 0, SEEK_SET);
		root = lcfs_load_node_from_tar(fd, &opts, &msg);
		CHECK(root != NULL && msg == NULL);
		if (root == NULL) {
			fprintf(stderr, "run %zu: %s\n", i, msg ? msg : "?");
			free(msg);
			continue;
		}
		img = image_of(root);
		lcfs_node_unref(root);
		if (i == 0) {
			first = img;
			CHECK(first.len > 0);
		} else {
			CHECK(img.len == first.len && memcmp(img.data, first.data, img.len) == 0);
			free(img.data);
		}
		if (runs[i].store) {
			char *list = store_list(store);

			CHECK(no_temps(store));
			if (first_list == NULL) {
				first_list = list;
				/* 2 * 13 distinct stored contents, and the first
				 * "twice", which its hard link keeps. */
				CHECK(strlen(first_list) == 28 * 66);
			} else {
				CHECK(strcmp(list, first_list) == 0);
				free(list);
			}
			rm_tree(store);
		}
	}
	free(first.data);
	free(first_list);
}

/* Every subdirectory of the store is a symlink, which the store refuses:
 * the first stored file's entry is named, and nothing is published. */
static void test_refusing_store(void)
{
	int fd = layer_fd;
	struct lcfs_oci_options_s opts = { .threads = 4, .data_buffer_size = MIB };
	char store[4096], sub[4200], *msg = NULL;

	snprintf(store, sizeof(store), "%s/refusing", tmp);
	CHECK(mkdir(store, 0755) == 0);
	for (unsigned d = 0; d < 256; d++) {
		snprintf(sub, sizeof(sub), "%s/%02x", store, d);
		CHECK(symlink("/tmp", sub) == 0);
	}
	opts.digest_store = store;
	lseek(fd, 0, SEEK_SET);
	errno = 0;
	CHECK(lcfs_load_node_from_tar(fd, &opts, &msg) == NULL);
	CHECK(errno == ENOTDIR);
	CHECK(msg != NULL && strstr(msg, "entry 'd0/f03'") != NULL &&
	      strstr(msg, "not a directory") != NULL);
	if (msg != NULL && strstr(msg, "entry 'd0/f03'") == NULL)
		fprintf(stderr, "message: %s\n", msg);
	free(msg);
	CHECK(no_temps(store));
	rm_tree(store);
}

int main(void)
{
	int status;

	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	layer_fd = make_layer();
	TEST_CASE(test_workers);
	TEST_CASE(test_refusing_store);
	close(layer_fd);
	status = test_summary("test-oci-workers");
	rm_tree(tmp);
	return status;
}
