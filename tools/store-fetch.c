/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-store fetch: fill a local object store from a remote one.
 * The fetching itself is the library's (lcfs-fetch.c); this file parses
 * the arguments, shows progress and reports what could not be fetched.
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "composefs-store.h"
#include "lcfs-fetch.h"
#include "lcfs-store.h"
#include "store-fetch.h"
#include "toolutil.h"
#include "lcfs-error.h"
#include "lcfs-util.h"

enum {
	OPT_FROM = 256,
	OPT_JOBS,
	OPT_QUIET,
	OPT_CACERT,
	OPT_HEADER,
	OPT_TIMEOUT,
	OPT_RETRIES,
	OPT_HELP,
};

static const struct option fetch_options[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "jobs", required_argument, NULL, OPT_JOBS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "header", required_argument, NULL, OPT_HEADER },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static void fetch_usage(FILE *out)
{
	store_command_usage(
		out, "fetch",
		"  --from=URL             base URL of the remote store (http, https or file)\n"
		"  --jobs=N               transfers at once (default 16)\n"
		"  --quiet                no progress line and no summary\n"
		"  --cacert=FILE          CA certificates for https\n"
		"  --header='Name: value' extra request header (repeatable)\n"
		"  --timeout=SECONDS      abandon an attempt after this long without data\n"
		"                         (default 30)\n"
		"  --retries=N            new attempts after a transient failure (default 5)\n"
		"  --help                 show this help and exit\n"
		"\nSTORE gets the images named by DIGEST and every object they (or the local\n"
		"image files IMAGE) need that it lacks. Each object is checked against its\n"
		"name before it is stored.\n");
}

static unsigned parse_count(const char *arg, const char *what, unsigned max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > max)
		tool_fail("invalid %s '%s' (must be 1 to %u)", what, arg, max);
	return (unsigned)v;
}

struct progress {
	bool tty;
	bool shown;
	struct timespec start;
};

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress_cb(void *data, uint64_t done, uint64_t total, uint64_t bytes)
{
	struct progress *p = data;
	double s = seconds_since(&p->start);

	if (!p->tty)
		return;
	p->shown = true;
	fprintf(stderr, "\r\033[K%s: %" PRIu64 "/%" PRIu64 " objects, %.1f MiB, %.1f MiB/s",
		tool_prog, done, total, bytes / 1048576.0,
		s > 0 ? bytes / 1048576.0 / s : 0.0);
	fflush(stderr);
}

/* Adds the objects of the image in the file @path, or of the image object
 * @digest in the store. Prints why not and returns false on failure. */
static bool add_image(struct lcfs_fetch *f, struct lcfs_store *st, const char *path,
		      const uint8_t *digest)
{
	struct lcfs_error err = { 0 };
	char obj[LCFS_STORE_PATH_SIZE];
	char buf[1024];
	int fd, r;

	if (digest != NULL) {
		lcfs_store_object_path(digest, obj);
		fd = lcfs_fetch_open_object(lcfs_store_dirfd(st), obj);
		path = obj;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			fd = -errno;
	}
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open '%s': %s\n", tool_prog, path, strerror(-fd));
		return false;
	}
	r = lcfs_fetch_add_image(f, fd, &err);
	close(fd);
	if (r < 0) {
		lcfs_error_format(&err, buf, sizeof(buf));
		fprintf(stderr, "%s: cannot read image '%s': %s\n", tool_prog, path, buf);
		return false;
	}
	return true;
}

int store_fetch_main(int argc, char **argv)
{
	struct lcfs_fetch_options fo = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_fetch_stats stats;
	struct progress progress = { 0 };
	cleanup_free const char **headers = NULL;
	cleanup_free uint8_t(*digests)[LCFS_DIGEST_SIZE] = NULL;
	cleanup_free bool *is_digest = NULL;
	struct lcfs_store *st = NULL;
	struct lcfs_fetch *f = NULL;
	const char *store_path, *name, *reason;
	size_t n_headers = 0, n_listed = 0;
	bool quiet = false, ok = true;
	char buf[1024];
	int c, r, n_args;

	/* A server that hangs up must not end the run by a signal. */
	signal(SIGPIPE, SIG_IGN);
	headers = calloc((size_t)argc + 1, sizeof(*headers));
	if (headers == NULL)
		tool_fail("out of memory");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", fetch_options, NULL)) != -1) {
		switch (c) {
		case OPT_FROM:
			fo.url = optarg;
			break;
		case OPT_JOBS:
			fo.jobs = parse_count(optarg, "jobs count", 256);
			break;
		case OPT_QUIET:
			quiet = true;
			break;
		case OPT_CACERT:
			fo.cacert = optarg;
			break;
		case OPT_HEADER:
			headers[n_headers++] = optarg;
			break;
		case OPT_TIMEOUT:
			fo.timeout = parse_count(optarg, "timeout", 86400);
			break;
		case OPT_RETRIES:
			fo.retries = parse_count(optarg, "retries count", 100);
			break;
		case OPT_HELP:
			fetch_usage(stdout);
			return tool_close_stdout() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try '%s fetch --help' for more information.\n",
				tool_prog);
			return EXIT_FAILURE;
		}
	}
	if (fo.url == NULL)
		tool_usage_error("fetch needs --from=URL");
	if (argc - optind < 2)
		tool_usage_error("fetch needs a STORE and at least one DIGEST or IMAGE");
	fo.headers = headers;
	store_path = argv[optind++];
	n_args = argc - optind;

	/* A 64-digit operand names an image object, unless a file has
	 * that name. */
	digests = calloc((size_t)n_args, LCFS_DIGEST_SIZE);
	is_digest = calloc((size_t)n_args, sizeof(bool));
	if (digests == NULL || is_digest == NULL)
		tool_fail("out of memory");
	for (int i = 0; i < n_args; i++) {
		const char *a = argv[optind + i];
		struct stat sb;

		is_digest[i] = strlen(a) == 2 * LCFS_DIGEST_SIZE &&
			       lcfs_digest_from_hex(a, strlen(a), digests[i]) == 0 &&
			       stat(a, &sb) < 0;
	}

	/* The store holds its shared lock while open: gc waits until every
	 * fetched object is published and the images that use it are here. */
	r = lcfs_store_open(store_path, &st);
	if (r < 0)
		tool_fail("cannot open store '%s': %s", store_path, strerror(-r));

	progress.tty = !quiet && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &progress.start);
	fo.progress = progress_cb;
	fo.progress_data = &progress;
	r = lcfs_fetch_new(st, &fo, &f, &err);
	if (r < 0) {
		lcfs_error_format(&err, buf, sizeof(buf));
		tool_fail("cannot fetch from '%s': %s", fo.url, buf);
	}

	/* The images first: they say which objects come next. */
	for (int i = 0; i < n_args; i++) {
		if (is_digest[i] && lcfs_fetch_add(f, digests[i], LCFS_FETCH_IMAGE_MAX, true) < 0)
			tool_fail("out of memory");
	}
	r = lcfs_fetch_run(f);
	if (r < 0 && r != -EIO)
		tool_fail("cannot fetch from '%s': %s", fo.url, strerror(-r));
	for (int i = 0; i < n_args; i++) {
		if (is_digest[i] && !lcfs_fetch_has(f, digests[i]))
			continue; /* reported below */
		if (!add_image(f, st, argv[optind + i], is_digest[i] ? digests[i] : NULL))
			ok = false;
	}
	r = lcfs_fetch_run(f);
	if (r < 0 && r != -EIO)
		tool_fail("cannot fetch from '%s': %s", fo.url, strerror(-r));
	if (progress.shown)
		fputs("\r\033[K", stderr);

	lcfs_fetch_get_stats(f, &stats);
	n_listed = 0;
	while (lcfs_fetch_failure(f, n_listed, &name, &reason)) {
		fprintf(stderr, "%s: cannot fetch '%s': %s\n", tool_prog, name, reason);
		n_listed++;
		ok = false;
	}
	if (!quiet)
		fprintf(stderr,
			"%s: %" PRIu64 " objects fetched (%" PRIu64 " bytes received in %.2f s), "
			"%" PRIu64 " present, %" PRIu64 " failed\n",
			tool_prog, stats.fetched, stats.bytes, seconds_since(&progress.start),
			stats.present, stats.failed);
	lcfs_fetch_free(f);
	lcfs_store_free(st);
	return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
