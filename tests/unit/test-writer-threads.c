/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * One tree, many writers at once: lcfs_write_to() only reads the tree it
 * is given (lcfs-writer.h), so threads may write one shared tree, or
 * parts of it, at the same time, and one thread may copy it with
 * lcfs_node_clone_deep() meanwhile. Three threads write the whole tree
 * and one of its subdirectories (as the root of an image of its own) over
 * and over, a fourth clones the tree and writes the clone; every image
 * must equal the one written before the threads started. The tree has
 * directories, hard links (whose targets the writer must find), symlinks,
 * a whiteout and xattrs.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libcomposefs/lcfs-writer.h"

#include "check.h"
#include "writer-test.h"

#define N_THREADS 4
#define ROUNDS 12
#define N_DIRS 24
#define N_FILES 40

/* A tree of N_DIRS directories of N_FILES entries each; every seventh
 * entry is a hard link to a file of another directory. */
static struct lcfs_node_s *make_tree(void)
{
	struct lcfs_node_s *root = mknode(NULL, NULL, S_IFDIR | 0755, 1000);
	struct lcfs_node_s *dirs[N_DIRS];
	char name[64];

	for (int d = 0; d < N_DIRS; d++) {
		snprintf(name, sizeof(name), "dir%02d", d);
		dirs[d] = mknode(root, name, S_IFDIR | 0755, 1000 + d);
		if (lcfs_node_set_xattr(dirs[d], "user.dir", name, strlen(name)) < 0)
			abort();
	}
	for (int d = 0; d < N_DIRS; d++) {
		for (int f = 0; f < N_FILES; f++) {
			struct lcfs_node_s *n;

			snprintf(name, sizeof(name), "file%03d", f);
			if (f % 7 == 6 && d > 0) {
				/* A hard link to a file of the directory before. */
				struct lcfs_node_s *t = lcfs_node_lookup_child(dirs[d - 1],
									 "file000");

				n = mknode(dirs[d], name, S_IFREG | 0644, 0);
				lcfs_node_make_hardlink(n, t);
			} else if (f % 11 == 10) {
				n = mknode(dirs[d], name, S_IFLNK | 0777, 2000 + f);
				if (lcfs_node_set_symlink_payload(n, "../dir00/file000") < 0)
					abort();
			} else {
				uint8_t digest[LCFS_DIGEST_SIZE];
				char path[80];

				n = mknode(dirs[d], name, S_IFREG | 0644, 3000 + f);
				lcfs_node_set_size(n, 100000 + (uint64_t)d * 1000 + f);
				memset(digest, d * N_FILES + f, sizeof(digest));
				lcfs_node_set_fsverity_digest(n, digest);
				snprintf(path, sizeof(path), "%02x/file-%d-%d", d, d, f);
				if (lcfs_node_set_payload(n, path) < 0)
					abort();
			}
		}
	}
	/* An input whiteout (character device 0/0). */
	mknode(dirs[0], "gone", S_IFCHR | 0644, 0);
	/* dir05 gets a subdirectory with hard links of its own, so that
	 * it can be written as an image by itself. */
	{
		struct lcfs_node_s *sub = mknode(dirs[5], "sub", S_IFDIR | 0700, 5000);
		struct lcfs_node_s *first = NULL;

		for (int f = 0; f < N_FILES; f++) {
			struct lcfs_node_s *n;

			snprintf(name, sizeof(name), "s%03d", f);
			n = mknode(sub, name, S_IFREG | 0600, 5000 + f);
			if (first == NULL) {
				lcfs_node_set_size(n, 10);
				first = n;
			} else if (f % 3 == 0) {
				lcfs_node_make_hardlink(n, first);
			}
		}
	}
	return root;
}

static int write_mem(struct lcfs_node_s *root, struct membuf *m)
{
	struct lcfs_write_options_s o = { 0 };

	o.file = m;
	o.file_write_cb = mem_write;
	o.max_version = 1;
	m->len = 0;
	return lcfs_write_to(root, &o);
}

static struct lcfs_node_s *shared_root, *shared_sub;
static struct membuf reference, reference_sub;

struct result {
	int failed_writes;  /* lcfs_write_to() failed */
	int wrong_images;   /* an image differs from the reference */
	int failed_clones;
};

static void write_check(struct result *res, struct lcfs_node_s *root,
			const struct membuf *want, struct membuf *m)
{
	if (write_mem(root, m) < 0)
		res->failed_writes++;
	else if (m->len != want->len || memcmp(m->data, want->data, m->len) != 0)
		res->wrong_images++;
}

/* Writes the shared tree and its subdirectory, by turns. */
static void *writer_thread(void *arg)
{
	struct result *res = arg;
	struct membuf m = { 0 };

	for (int round = 0; round < 2 * ROUNDS; round++) {
		if (round % 2 == 0)
			write_check(res, shared_root, &reference, &m);
		else
			write_check(res, shared_sub, &reference_sub, &m);
	}
	free(m.data);
	return NULL;
}

/* Copies the shared tree while the others write it. */
static void *clone_thread(void *arg)
{
	struct result *res = arg;
	struct membuf m = { 0 };

	for (int round = 0; round < ROUNDS; round++) {
		struct lcfs_node_s *copy = lcfs_node_clone_deep(shared_root);

		if (copy == NULL) {
			res->failed_clones++;
			continue;
		}
		write_check(res, copy, &reference, &m);
		lcfs_node_unref(copy);
	}
	free(m.data);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "test-writer-threads: no result after 120 seconds "
				  "(a walk over the shared tree went astray)\n";

	(void)sig;
	(void)write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* N_THREADS threads, ROUNDS rounds each, every image identical. */
static void test_threads(void)
{
	pthread_t threads[N_THREADS];
	struct result results[N_THREADS];

	shared_root = make_tree();
	shared_sub = lcfs_node_lookup_child(lcfs_node_lookup_child(shared_root, "dir05"),
					    "sub");
	CHECK(shared_sub != NULL);
	CHECK(write_mem(shared_root, &reference) == 0);
	CHECK(reference.len > 0);
	CHECK(write_mem(shared_sub, &reference_sub) == 0);
	CHECK(reference_sub.len > 0);

	/* A clone written alone gives the same image. */
	{
		struct lcfs_node_s *copy = lcfs_node_clone_deep(shared_root);
		struct membuf m = { 0 };

		CHECK(copy != NULL);
		CHECK(write_mem(copy, &m) == 0);
		CHECK(m.len == reference.len && memcmp(m.data, reference.data, m.len) == 0);
		lcfs_node_unref(copy);
		free(m.data);
	}

	memset(results, 0, sizeof(results));
	for (int i = 0; i < N_THREADS; i++)
		CHECK(pthread_create(&threads[i], NULL, i == 0 ? clone_thread : writer_thread,
				     &results[i]) == 0);
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(threads[i], NULL);
		if (results[i].failed_writes || results[i].wrong_images ||
		    results[i].failed_clones)
			fprintf(stderr,
				"thread %d: %d failed writes, %d wrong images, %d failed clones\n",
				i, results[i].failed_writes, results[i].wrong_images,
				results[i].failed_clones);
		CHECK(results[i].failed_writes == 0);
		CHECK(results[i].wrong_images == 0);
		CHECK(results[i].failed_clones == 0);
	}

	/* The shared tree is unchanged: it still writes the same image. */
	{
		struct membuf m = { 0 };

		CHECK(write_mem(shared_root, &m) == 0);
		CHECK(m.len == reference.len && memcmp(m.data, reference.data, m.len) == 0);
		free(m.data);
	}

	lcfs_node_unref(shared_root);
	free(reference.data);
	free(reference_sub.data);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	alarm(120);
	TEST_CASE(test_threads);
	return test_summary("test-writer-threads");
}
