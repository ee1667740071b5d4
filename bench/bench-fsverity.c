/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * fs-verity digest throughput: the public helpers (lcfs_compute_fsverity_*,
 * which read a whole fd or buffer) against the push-style hasher used
 * directly (the image writer's and directory scanner's path), with 1 and T
 * threads, next to OpenSSL's raw SHA-256 on 4 KiB blocks, which
 * bounds both. With T threads each thread digests the whole input on its
 * own, and the figure is the total bytes hashed per second.
 *
 * Usage: bench-fsverity [-r REPEAT] [-t THREADS] [-m MIB | FILE]
 *   FILE   digest this file (through its fd: page cache reads included)
 *   -m N   digest N MiB of generated data in memory (default 256)
 *   -r N   best of N runs (default 3)
 *   -t N   threads of the second column (default 2)
 * Prints figures only; it never passes or fails on time.
 */
#include "config.h"
#include "lcfs-util.h"
#include "lcfs-fsverity.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench-util.h"

#define MEM_CHUNK (256 * 1024)
#define MAX_THREADS 64

enum method {
	M_SHA256,
	M_PUBLIC,
	M_STREAM,
};

struct input {
	const char *path; /* NULL: in memory */
	uint8_t *data;
	size_t size;
};

struct job {
	const struct input *in;
	enum method method;
	int ret;
	uint8_t digest[LCFS_DIGEST_SIZE];
};

/* SHA-256 of every 4 KiB block, as the bottom level of the tree does; the
 * digest of the last block is kept so the work cannot be optimised out. */
static int raw_sha256(const uint8_t *data, size_t size, uint8_t out[LCFS_DIGEST_SIZE])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ret = 0;

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	for (size_t off = 0; off + 4096 <= size; off += 4096) {
#if HAVE_EVP_DIGESTINIT_EX2
		if (!EVP_DigestInit_ex2(ctx, NULL, NULL) ||
#else
		if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
#endif
		    !EVP_DigestUpdate(ctx, data + off, 4096) ||
		    !EVP_DigestFinal_ex(ctx, out, NULL)) {
			ret = -EIO;
			break;
		}
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

static int stream_mem(const uint8_t *data, size_t size, uint8_t out[LCFS_DIGEST_SIZE])
{
	struct lcfs_fsverity_stream *s = lcfs_fsverity_stream_new();

	if (s == NULL)
		return -ENOMEM;
	for (size_t off = 0; off < size; off += MEM_CHUNK)
		lcfs_fsverity_stream_update(s, data + off,
					    size - off < MEM_CHUNK ? size - off : MEM_CHUNK);
	return lcfs_fsverity_stream_final(s, out);
}

static int digest_file(const char *path, enum method method,
		       uint8_t out[LCFS_DIGEST_SIZE])
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
	} else if (method == M_PUBLIC) {
		ret = lcfs_compute_fsverity_from_fd(out, fd) < 0 ? -errno : 0;
	} else {
		ret = lcfs_fsverity_digest_fd_fast(fd, (uint64_t)st.st_size, out);
	}
	close(fd);
	return ret;
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	const struct input *in = j->in;

	if (j->method == M_SHA256)
		j->ret = raw_sha256(in->data, in->size, j->digest);
	else if (in->path != NULL)
		j->ret = digest_file(in->path, j->method, j->digest);
	else if (j->method == M_PUBLIC)
		j->ret = lcfs_compute_fsverity_from_data(j->digest, in->data,
							 in->size) < 0 ? -errno : 0;
	else
		j->ret = stream_mem(in->data, in->size, j->digest);
	return NULL;
}

/* Best throughput in GB/s over @repeat runs with @threads threads, or a
 * negative errno. The digest of the last run is left in @digest. */
static double measure(const struct input *in, enum method method, int threads,
		      int repeat, uint8_t digest[LCFS_DIGEST_SIZE])
{
	double best = 0;

	for (int r = 0; r < repeat; r++) {
		struct job jobs[MAX_THREADS];
		pthread_t tids[MAX_THREADS];
		double t0 = bench_now(), dt;
		int started = 0;

		for (; started < threads; started++) {
			jobs[started] = (struct job){ .in = in, .method = method };
			if (pthread_create(&tids[started], NULL, run_job,
					   &jobs[started]) != 0)
				break;
		}
		for (int i = 0; i < started; i++)
			pthread_join(tids[i], NULL);
		if (started < threads)
			return -EAGAIN;
		dt = bench_now() - t0;
		for (int i = 0; i < threads; i++)
			if (jobs[i].ret < 0)
				return jobs[i].ret;
		memcpy(digest, jobs[0].digest, LCFS_DIGEST_SIZE);
		if (threads * (double)in->size / dt / 1e9 > best)
			best = threads * (double)in->size / dt / 1e9;
	}
	return best;
}

static int load_file(struct input *in, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	in->path = path;
	in->size = (size_t)st.st_size;
	in->data = malloc(in->size + 1);
	if (in->data == NULL) {
		close(fd);
		return -ENOMEM;
	}
	/* Also warms the page cache, so the file runs measure hashing and
	 * copying, not the disk. */
	while (off < in->size) {
		ssize_t n = pread(fd, in->data + off, in->size - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n < 0 ? -errno : -ENODATA;
		}
		off += (size_t)n;
	}
	close(fd);
	return 0;
}

static void generate(struct input *in, size_t mib)
{
	uint64_t x = 0x243f6a8885a308d3ull;

	in->path = NULL;
	in->size = mib * 1024 * 1024;
	in->data = malloc(in->size + 1);
	if (in->data == NULL)
		return;
	for (size_t i = 0; i + 8 <= in->size; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(in->data + i, &x, 8);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-fsverity [-r REPEAT] [-t THREADS] [-m MIB | FILE]\n");
	exit(1);
}

int main(int argc, char **argv)
{
	static const char *const names[] = {
		[M_SHA256] = "OpenSSL SHA-256, 4 KiB blocks (*)",
		[M_PUBLIC] = "public helper",
		[M_STREAM] = "stream hasher",
	};
	struct input in = { 0 };
	uint8_t digests[3][LCFS_DIGEST_SIZE];
	const char *path = NULL;
	long mib = 256, repeat = 3, threads = 2;
	char hex[65], column[32];
	int opt;

	while ((opt = getopt(argc, argv, "m:r:t:h")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtol(optarg, NULL, 10);
			break;
		case 'r':
			repeat = strtol(optarg, NULL, 10);
			break;
		case 't':
			threads = strtol(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (optind + 1 == argc)
		path = argv[optind];
	else if (optind != argc)
		usage();
	if (mib <= 0 || mib > 1L << 20 || repeat <= 0 || repeat > 1000 ||
	    threads <= 0 || threads > MAX_THREADS)
		usage();

	if (path != NULL) {
		int r = load_file(&in, path);

		if (r < 0) {
			fprintf(stderr, "bench-fsverity: cannot read '%s': %s\n", path,
				strerror(-r));
			return 1;
		}
		printf("input: '%s', %zu bytes, through its fd, best of %ld\n", path,
		       in.size, repeat);
	} else {
		generate(&in, (size_t)mib);
		if (in.data == NULL) {
			fprintf(stderr, "bench-fsverity: out of memory\n");
			return 1;
		}
		printf("input: %ld MiB generated in memory, best of %ld\n", mib, repeat);
	}

	snprintf(column, sizeof(column), "%ld threads", threads);
	printf("%-32s %12s %12s\n", "", "1 thread", column);
	for (int m = M_SHA256; m <= M_STREAM; m++) {
		double g1 = measure(&in, m, 1, (int)repeat, digests[m]);
		double g2 = measure(&in, m, (int)threads, (int)repeat, digests[m]);

		if (g1 < 0 || g2 < 0) {
			fprintf(stderr, "bench-fsverity: %s failed: %s\n", names[m],
				strerror((int)-(g1 < 0 ? g1 : g2)));
			free(in.data);
			return 1;
		}
		printf("%-32s %7.2f GB/s %7.2f GB/s\n", names[m], g1, g2);
	}
	printf("(*) from memory, also for a file: the bound for both digests\n");
	lcfs_digest_to_hex(digests[M_STREAM], hex);
	printf("digest %s (%s)\n", hex,
	       memcmp(digests[M_PUBLIC], digests[M_STREAM], LCFS_DIGEST_SIZE) == 0
		       ? "both agree"
		       : "MISMATCH between the public helper and the stream hasher");
	free(in.data);
	return 0;
}
