/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Parses a dumpfile (and optionally prints it back) and reports the time
 * taken, the number of entries and the peak resident set size. It prints
 * figures; it never passes or fails on them.
 *
 * usage: bench-parse [--print] [--strict] FILE|-
 */
#include "lcfs-node.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench-util.h"

static long peak_rss_kib(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return ru.ru_maxrss;
}

static int count_node(struct lcfs_walk *w, void *data)
{
	(*(size_t *)data)++;
	return 0;
}

int main(int argc, char **argv)
{
	bool do_print = false;
	unsigned flags = 0;
	const char *path = NULL;
	struct lcfs_error err;
	struct lcfs_node_s *root;
	double t0, t1, t2, t3;
	long rss_start, rss_parsed;
	size_t entries;
	off_t input_size;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--print") == 0)
			do_print = true;
		else if (strcmp(argv[i], "--strict") == 0)
			flags |= LCFS_PARSE_FLAGS_STRICT;
		else
			path = argv[i];
	}
	if (path == NULL) {
		fprintf(stderr, "usage: bench-parse [--print] [--strict] FILE|-\n");
		return 2;
	}
	fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench-parse: cannot open '%s': %s\n", path, strerror(errno));
		return 1;
	}
	input_size = lseek(fd, 0, SEEK_END);
	if (input_size >= 0)
		lseek(fd, 0, SEEK_SET);

	rss_start = peak_rss_kib();
	t0 = bench_now();
	root = lcfs_dump_parse_fd(fd, flags, &err);
	t1 = bench_now();
	if (root == NULL) {
		char msg[600];

		lcfs_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "bench-parse: %s: %s\n", path, msg);
		return 1;
	}
	rss_parsed = peak_rss_kib();
	entries = 0;
	if (lcfs_walk_tree(root, 0, count_node, &entries) < 0) {
		fprintf(stderr, "bench-parse: out of memory\n");
		return 1;
	}

	printf("entries:          %zu\n", entries);
	if (input_size > 0)
		printf("input:            %.1f MB (%.0f bytes/entry)\n", input_size / 1e6,
		       (double)input_size / entries);
	printf("parse:            %.3f s (%.0f entries/s", t1 - t0, entries / (t1 - t0));
	if (input_size > 0)
		printf(", %.0f MB/s", input_size / 1e6 / (t1 - t0));
	printf(")\n");
	printf("peak RSS parsed:  %.1f MB (%.0f bytes/entry above start %.1f MB)\n",
	       rss_parsed / 1024.0, (rss_parsed - rss_start) * 1024.0 / entries,
	       rss_start / 1024.0);

	if (do_print) {
		FILE *devnull = fopen("/dev/null", "w");
		int r;

		if (devnull == NULL) {
			fprintf(stderr, "bench-parse: cannot open /dev/null\n");
			return 1;
		}
		t2 = bench_now();
		r = lcfs_dump_print(devnull, root);
		fclose(devnull);
		t3 = bench_now();
		if (r < 0) {
			fprintf(stderr, "bench-parse: print: %s\n", strerror(-r));
			return 1;
		}
		printf("print:            %.3f s (%.0f entries/s)\n", t3 - t2,
		       entries / (t3 - t2));
	}
	t2 = bench_now();
	lcfs_node_unref(root);
	t3 = bench_now();
	printf("free:             %.3f s\n", t3 - t2);
	return 0;
}
