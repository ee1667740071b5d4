/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * What reading a tree costs before any hashing: every regular file of more
 * than 64 bytes below DIR (the files mkcomposefs digests) is opened,
 * checked with fstat and read to its end in 256 KiB pread() calls, the way
 * the directory scanner reads them, on THREADS threads. Prints the wall
 * time and the CPU time (user and system, all threads) of the reading
 * alone; the walk that lists the files is not counted. With a warm page
 * cache this is the cost of copying the data out of it, which any digester
 * that reads files pays on top of hashing.
 *
 * Usage: bench-read [-t THREADS] DIR
 * Prints figures only; it never passes or fails on time.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define READ_SIZE (256 * 1024)
#define MIN_SIZE 65 /* smaller files are inlined, not digested */
#define MAX_THREADS 64

static char **paths;
static size_t n_paths, cap_paths;
static atomic_size_t next_path;
static atomic_uint_fast64_t total_bytes;
static atomic_int failures;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_size < MIN_SIZE)
		return 0;
	if (n_paths == cap_paths) {
		size_t cap = cap_paths ? cap_paths * 2 : 4096;
		char **p = realloc(paths, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		paths = p;
		cap_paths = cap;
	}
	paths[n_paths] = strdup(path);
	if (paths[n_paths] == NULL)
		return -1;
	n_paths++;
	return 0;
}

static int read_file(const char *path, uint8_t *buf)
{
	struct stat st;
	off_t off = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, READ_SIZE, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		off += n;
	}
	close(fd);
	atomic_fetch_add(&total_bytes, (uint64_t)off);
	return 0;
}

static void *reader(void *arg)
{
	uint8_t *buf = malloc(READ_SIZE);

	(void)arg;
	if (buf == NULL) {
		atomic_fetch_add(&failures, 1);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&next_path, 1);

		if (i >= n_paths)
			break;
		if (read_file(paths[i], buf) < 0)
			atomic_fetch_add(&failures, 1);
	}
	free(buf);
	return NULL;
}

static double cpu_secs(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-read [-t THREADS] DIR\n");
	exit(1);
}

int main(int argc, char **argv)
{
	pthread_t tids[MAX_THREADS];
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	double t0, c0, wall, cpu;
	int opt, started = 0;

	while ((opt = getopt(argc, argv, "t:h")) != -1) {
		if (opt != 't')
			usage();
		threads = strtol(optarg, NULL, 10);
	}
	if (optind + 1 != argc || threads <= 0 || threads > MAX_THREADS)
		usage();
	if (nftw(argv[optind], collect, 64, FTW_PHYS) != 0) {
		fprintf(stderr, "bench-read: cannot walk '%s': %s\n", argv[optind],
			strerror(errno));
		return 1;
	}

	t0 = bench_now();
	c0 = cpu_secs();
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, reader, NULL) != 0)
			break;
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	wall = bench_now() - t0;
	cpu = cpu_secs() - c0;
	if (started == 0 || atomic_load(&failures) > 0) {
		fprintf(stderr, "bench-read: %d files could not be read\n",
			started == 0 ? (int)n_paths : atomic_load(&failures));
		return 1;
	}
	printf("read %zu files, %.0f MB on %d threads: %.2f s wall, %.2f s CPU\n",
	       n_paths, (double)atomic_load(&total_bytes) / 1e6, started, wall, cpu);
	for (size_t i = 0; i < n_paths; i++)
		free(paths[i]);
	free(paths);
	return 0;
}
