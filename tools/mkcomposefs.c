/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * mkcomposefs: build a composefs image from a directory tree or from a
 * dumpfile (docs/design.md, "mkcomposefs"). Differences from the
 * reference: --version and --help are accepted (docs/compatibility.md,
 * "Version options", "Help and messages"), and the image is written to a
 * temporary file that replaces IMAGE only on success
 * (docs/compatibility.md, "Atomic output").
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <time.h>

#include "lcfs-tools.h"
#include "lcfs-store.h"
#include "tool-version.h"
#include "lcfs-tar.h"
#include "toolutil.h"


enum {
	OPT_DIGEST_STORE = 256,
	OPT_USE_EPOCH,
	OPT_SKIP_DEVICES,
	OPT_SKIP_XATTRS,
	OPT_USER_XATTRS,
	OPT_PRINT_DIGEST,
	OPT_PRINT_DIGEST_ONLY,
	OPT_FROM_FILE,
	OPT_FROM_TAR,
	OPT_FROM_OCI,
	OPT_PLATFORM,
	OPT_MIN_VERSION,
	OPT_MAX_VERSION,
	OPT_THREADS,
	OPT_HARDLINKS,
	OPT_QUIET,
	OPT_STORE_IMAGE,
	OPT_HELP,
};

static const struct option long_options[] = {
	{ "digest-store", required_argument, NULL, OPT_DIGEST_STORE },
	{ "use-epoch", no_argument, NULL, OPT_USE_EPOCH },
	{ "skip-devices", no_argument, NULL, OPT_SKIP_DEVICES },
	{ "skip-xattrs", no_argument, NULL, OPT_SKIP_XATTRS },
	{ "user-xattrs", no_argument, NULL, OPT_USER_XATTRS },
	{ "print-digest", no_argument, NULL, OPT_PRINT_DIGEST },
	{ "print-digest-only", no_argument, NULL, OPT_PRINT_DIGEST_ONLY },
	{ "from-file", no_argument, NULL, OPT_FROM_FILE },
	/* "--from" meant --from-file before the other --from-* options
	 * existed: an exact name keeps it unambiguous. */
	{ "from", no_argument, NULL, OPT_FROM_FILE },
	{ "from-tar", no_argument, NULL, OPT_FROM_TAR },
	{ "from-oci", no_argument, NULL, OPT_FROM_OCI },
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "min-version", required_argument, NULL, OPT_MIN_VERSION },
	/* The documented name of --min-version (docs/compatibility.md,
	 * "Version options"). */
	{ "version", required_argument, NULL, OPT_MIN_VERSION },
	{ "max-version", required_argument, NULL, OPT_MAX_VERSION },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "hardlinks", no_argument, NULL, OPT_HARDLINKS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "store-image", no_argument, NULL, OPT_STORE_IMAGE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

struct options {
	const char *digest_store;
	int build_flags;
	bool print_digest;
	bool print_digest_only;
	bool from_file;
	bool from_tar;
	bool from_oci;
	const char *platform;
	bool hardlinks;
	bool quiet;
	bool store_image;
	bool skip_xattrs;
	bool user_xattrs;
	bool have_min;
	bool have_max;
	long min_version;
	long max_version;
	long threads; /* 0: one per CPU */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [OPTIONS] SOURCE IMAGE\n"
		"Build a composefs image from the directory SOURCE, from the dumpfile\n"
		"SOURCE with --from-file, from the tar layer SOURCE with --from-tar, or\n"
		"from the OCI image layout SOURCE (LAYOUT[:REF]) with --from-oci.\n"
		"IMAGE \"-\" writes the image to standard output.\n"
		"\n"
		"Options:\n"
		"  --digest-store=PATH  copy regular files into the object store PATH\n"
		"  --store-image        also store the image in the object store and\n"
		"                       print its digest\n"
		"  --use-epoch          set every modification time to 0.0\n"
		"  --skip-devices       leave out character and block devices\n"
		"  --skip-xattrs        read no extended attributes\n"
		"  --user-xattrs        read only user.* extended attributes\n"
		"  --hardlinks          keep hard links (found by device and inode)\n"
		"  --print-digest       print the image's fs-verity digest\n"
		"  --print-digest-only  print the digest only; no IMAGE is written\n"
		"  --from-file          SOURCE is a dumpfile (\"-\" for standard input)\n"
		"  --from-tar           SOURCE is a tar layer, plain, gzip or zstd\n"
		"                       (\"-\" for standard input)\n"
		"  --from-oci           SOURCE is an OCI image layout LAYOUT[:REF]\n"
		"  --platform=OS/ARCH   with --from-oci: the platform to pick from a\n"
		"                       multi-platform index (default: this host's)\n"
		"  --min-version=N      lowest image format version (default %d)\n"
		"  --version=N          same as --min-version\n"
		"  --max-version=N      highest image format version (default %d)\n"
		"  --threads=N          worker threads (default %u)\n"
		"  --quiet              no progress line on a terminal\n"
		"  --help               show this help and exit\n",
		tool_prog, LCFS_DEFAULT_VERSION_MIN, LCFS_DEFAULT_VERSION_MAX, lcfs_cpu_count());
}

static void close_stdout(void)
{
	int r = tool_close_stdout();

	if (r < 0)
		tool_fail("cannot write to standard output: %s", strerror(-r));
}

/* Whole-string base-10 number, as the reference parses these options. */
static bool parse_long(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return s[0] != '\0' && *end == '\0' && errno == 0;
}

static void parse_version(const char *arg, const char *which, long *out)
{
	if (!parse_long(arg, out) || *out < 0 || *out > LCFS_VERSION_MAX)
		tool_fail("invalid %s version '%s' (must be 0 to %d)", which, arg,
		     LCFS_VERSION_MAX);
}

static void parse_args(int argc, char **argv, struct options *o, char ***operands,
		       int *n_operands)
{
	int c;

	memset(o, 0, sizeof(*o));
	/* getopt itself names the problem (unknown, ambiguous, missing or
	 * unexpected value); argv[0] is already the short program name. */
	for (;;) {
		c = getopt_long(argc, argv, "", long_options, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_DIGEST_STORE:
			o->digest_store = optarg;
			break;
		case OPT_USE_EPOCH:
			o->build_flags |= LCFS_BUILD_USE_EPOCH;
			break;
		case OPT_SKIP_DEVICES:
			o->build_flags |= LCFS_BUILD_SKIP_DEVICES;
			break;
		case OPT_SKIP_XATTRS:
			o->build_flags |= LCFS_BUILD_SKIP_XATTRS;
			o->skip_xattrs = true;
			break;
		case OPT_USER_XATTRS:
			o->build_flags |= LCFS_BUILD_USER_XATTRS;
			o->user_xattrs = true;
			break;
		case OPT_PRINT_DIGEST:
			o->print_digest = true;
			break;
		case OPT_PRINT_DIGEST_ONLY:
			o->print_digest = true;
			o->print_digest_only = true;
			break;
		case OPT_FROM_FILE:
			o->from_file = true;
			break;
		case OPT_FROM_TAR:
			o->from_tar = true;
			break;
		case OPT_FROM_OCI:
			o->from_oci = true;
			break;
		case OPT_PLATFORM:
			o->platform = optarg;
			break;
		case OPT_MIN_VERSION:
			parse_version(optarg, "min", &o->min_version);
			o->have_min = true;
			break;
		case OPT_MAX_VERSION:
			parse_version(optarg, "max", &o->max_version);
			o->have_max = true;
			break;
		case OPT_THREADS:
			if (!parse_long(optarg, &o->threads) || o->threads <= 0 ||
			    o->threads > INT_MAX)
				tool_fail("invalid threads count '%s'", optarg);
			break;
		case OPT_HARDLINKS:
			o->hardlinks = true;
			break;
		case OPT_QUIET:
			o->quiet = true;
			break;
		case OPT_STORE_IMAGE:
			o->store_image = true;
			o->print_digest = true;
			break;
		case OPT_HELP:
			usage(stdout);
			close_stdout();
			exit(EXIT_SUCCESS);
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n",
				tool_prog);
			exit(EXIT_FAILURE);
		}
	}

	/* Either version option given alone makes the other one 0; the writer
	 * raises max to min (docs/image-format.md, "Format versions"). */
	if (!o->have_min && !o->have_max) {
		o->min_version = LCFS_DEFAULT_VERSION_MIN;
		o->max_version = LCFS_DEFAULT_VERSION_MAX;
	}

	*operands = argv + optind;
	*n_operands = argc - optind;
}

static void progress_cb(void *data, uint64_t files_done, uint64_t files_total,
			uint64_t bytes_done, uint64_t bytes_total)
{
	tool_progress_update(data, "files", files_done, files_total, bytes_done,
			     bytes_total);
}

/* SOURCE for reading: standard input for "-". -1 after a message. */
static int open_source(const char *source)
{
	int fd;

	if (strcmp(source, "-") == 0)
		return STDIN_FILENO;
	fd = open(source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		fprintf(stderr, "%s: cannot open '%s': %s\n", tool_prog, source,
			strerror(errno));
	return fd;
}

/* --store-image: the image bytes go to IMAGE (if any) and to an unnamed
 * file, from which they become the object named by the image's digest. */
struct image_tee {
	struct tool_output *out; /* NULL without IMAGE */
	int fd;                  /* the copy */
	uint64_t size;
	int err;                 /* first write error of the copy */
};

static ssize_t image_tee_write_cb(void *file, void *buf, size_t count)
{
	struct image_tee *t = file;
	ssize_t n = (ssize_t)count;
	int r;

	if (t->out != NULL) {
		n = tool_output_write_cb(t->out, buf, count);
		if (n < 0)
			return n;
	}
	r = lcfs_pwrite_all(t->fd, buf, count, t->size);
	if (r < 0) {
		t->err = -r;
		errno = -r;
		return -1;
	}
	t->size += count;
	return n;
}

static int image_tee_open(struct image_tee *t, struct lcfs_store *st)
{
	t->size = 0;
	t->err = 0;
	t->fd = openat(lcfs_store_dirfd(st), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		FILE *f = tmpfile();

		if (f == NULL)
			return -errno;
		t->fd = fcntl(fileno(f), F_DUPFD_CLOEXEC, 0);
		fclose(f);
		if (t->fd < 0)
			return -errno;
	}
	return 0;
}

/* Puts the image copy into the store under @digest. The open store holds
 * its shared lock, as every writer does. */
static void store_image(const char *path, struct lcfs_store *st, struct image_tee *t,
			const uint8_t digest[LCFS_DIGEST_SIZE])
{
	int r;

	r = lcfs_store_put(st, t->fd, t->size, digest);
	if (r < 0)
		tool_fail("cannot store image in '%s': %s", path, strerror(-r));
}

static struct lcfs_node_s *read_dumpfile(const char *source)
{
	const char *name = strcmp(source, "-") == 0 ? "<stdin>" : source;
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	unsigned flags = 0;
	int fd;

	/* Keyed on presence only, any value (docs/dumpfile.md, "Strict
	 * mode"). */
	if (getenv("CFS_PARSE_STRICT") != NULL)
		flags |= LCFS_PARSE_FLAGS_STRICT;

	fd = open_source(source);
	if (fd < 0)
		return NULL;
	root = lcfs_dump_parse_fd(fd, flags, &err);
	if (fd != STDIN_FILENO)
		close(fd);
	if (root == NULL)
		tool_print_error(tool_prog, name, &err);
	return root;
}

static struct lcfs_node_s *scan_directory(const char *source, const struct options *o)
{
	struct lcfs_build_options bo = { 0 };
	struct lcfs_error err = { 0 };
	struct tool_progress progress = { 0 };
	struct lcfs_node_s *root;
	char buf[1024];

	/* Every regular file gets its fs-verity digest and the digest path as
	 * payload, with or without an object store (docs/design.md, "Content
	 * pass"). */
	bo.flags = o->build_flags | LCFS_BUILD_COMPUTE_DIGEST | LCFS_BUILD_BY_DIGEST;
	bo.threads = (unsigned)o->threads;
	bo.digest_store = o->digest_store;
	bo.hardlinks = o->hardlinks;
	if (!o->quiet && isatty(STDERR_FILENO)) {
		bo.progress = progress_cb;
		bo.progress_data = &progress;
	}

	root = lcfs_build_tree(AT_FDCWD, source, &bo, &err);
	tool_progress_clear(&progress);
	if (root == NULL) {
		lcfs_error_format(&err, buf, sizeof(buf));
		/* The library's message names the failing path. */
		fprintf(stderr, "%s: %s\n", tool_prog, buf);
	}
	return root;
}

/* Options of the tar and OCI modes from the command line. */
static void layer_options(const struct options *o, struct lcfs_oci_options_s *lo)
{
	memset(lo, 0, sizeof(*lo));
	lo->flags = o->build_flags;
	lo->digest_store = o->digest_store;
	lo->platform = o->platform;
	lo->threads = (uint32_t)o->threads;
}

static struct lcfs_node_s *read_tar(const char *source, const struct options *o)
{
	struct lcfs_oci_options_s lo;
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	char buf[1024];
	int fd;

	layer_options(o, &lo);
	fd = open_source(source);
	if (fd < 0)
		return NULL;
	root = lcfs_tar_build(fd, &lo, &err);
	if (fd != STDIN_FILENO)
		close(fd);
	if (root == NULL) {
		lcfs_error_format(&err, buf, sizeof(buf));
		fprintf(stderr, "%s: cannot read '%s': %s\n", tool_prog,
			fd == STDIN_FILENO ? "<stdin>" : source, buf);
	}
	return root;
}

static struct lcfs_node_s *read_oci(const char *source, const struct options *o)
{
	struct lcfs_oci_options_s lo;
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	cleanup_free char *layout = strdup(source);
	char *colon, buf[1024];
	const char *ref = NULL;

	if (layout == NULL)
		tool_fail("%s", strerror(ENOMEM));
	/* LAYOUT:REF; a colon in the last path component starts REF. */
	colon = strrchr(layout, ':');
	if (colon != NULL && strchr(colon, '/') == NULL) {
		*colon = '\0';
		ref = colon + 1;
		if (ref[0] == '\0' || layout[0] == '\0')
			tool_fail("invalid image '%s' (LAYOUT[:REF])", source);
	}
	layer_options(o, &lo);
	root = lcfs_oci_build(layout, ref, &lo, &err);
	if (root == NULL) {
		lcfs_error_format(&err, buf, sizeof(buf));
		fprintf(stderr, "%s: cannot read '%s': %s\n", tool_prog, source, buf);
	}
	return root;
}

static void print_write_error(int r, const struct lcfs_error *err, int io_err)
{
	char buf[1024];

	if (io_err) {
		fprintf(stderr, "%s: cannot write file: %s\n", tool_prog, strerror(io_err));
		return;
	}
	if (err->msg[0] != '\0' || err->field != NULL) {
		lcfs_error_format(err, buf, sizeof(buf));
		fprintf(stderr, "%s: cannot write file: %s: %s\n", tool_prog, strerror(-r),
			buf);
	} else {
		fprintf(stderr, "%s: cannot write file: %s\n", tool_prog, strerror(-r));
	}
}

int main(int argc, char **argv)
{
	struct lcfs_write_options_s wo = { 0 };
	struct lcfs_error err = { 0 };
	struct tool_output out;
	struct image_tee tee = { .fd = -1 };
	struct lcfs_store *st = NULL;
	struct lcfs_node_s *root;
	uint8_t digest[LCFS_DIGEST_SIZE];
	char hex[2 * LCFS_DIGEST_SIZE + 1];
	const char *source, *image = NULL;
	struct options o;
	char **operands;
	int n_operands;
	int r;

	tool_set_prog(argc, argv, "mkcomposefs");
	tool_maybe_print_version(argc, argv, tool_prog);
	parse_args(argc, argv, &o, &operands, &n_operands);

	/* Operand checks in the reference's order (docs/design.md,
	 * "mkcomposefs"). */
	if (n_operands < 1)
		tool_usage_error("no source path specified");
	source = operands[0];
	if (source[0] == '\0')
		tool_fail("empty source path specified");
	if (n_operands > 2)
		tool_usage_error("too many arguments");
	if (n_operands == 1 && !o.print_digest_only && !o.store_image)
		tool_usage_error("no destination path specified");
	if (n_operands == 2 && o.print_digest_only)
		tool_usage_error("cannot specify destination path with --print-digest-only");
	if (n_operands == 2)
		image = operands[1];

	/* The reference only notices this combination when scanning; say so
	 * before doing any work. */
	if (!o.from_file && o.skip_xattrs && o.user_xattrs)
		tool_usage_error("--skip-xattrs and --user-xattrs cannot be used together");
	if (o.from_file + o.from_tar + o.from_oci > 1)
		tool_usage_error("--from-file, --from-tar and --from-oci exclude each other");
	if (o.platform != NULL && !o.from_oci)
		tool_usage_error("--platform needs --from-oci");
	if ((o.from_tar || o.from_oci) && o.hardlinks)
		tool_usage_error("--hardlinks is implied by --from-tar and --from-oci");

	if (o.store_image) {
		if (o.digest_store == NULL)
			tool_usage_error("--store-image requires --digest-store");
		r = lcfs_store_open(o.digest_store, &st);
		if (r == 0)
			r = image_tee_open(&tee, st);
		if (r < 0)
			tool_fail("cannot open store '%s': %s", o.digest_store, strerror(-r));
	}

	if (image != NULL) {
		if (strcmp(image, "-") == 0 && isatty(STDOUT_FILENO))
			tool_fail("stdout is a tty.  Refusing to use it");
		/* Only the temporary file is created here: IMAGE itself is
		 * replaced after a complete, successful write. */
		r = tool_output_open(&out, image);
		if (r < 0)
			tool_fail("cannot create '%s': %s", image, strerror(-r));
	}

	/* Objects this run finds in the store must stay there until IMAGE,
	 * which refers to them, is in place: hold the store lock until exit
	 * (composefs-store gc waits for it). With --store-image the open
	 * store holds it already. */
	if (!o.from_file && o.digest_store != NULL && st == NULL) {
		int dirfd = lcfs_store_open_dir(o.digest_store);

		r = dirfd < 0 ? dirfd : lcfs_store_lock(dirfd, false);
		if (dirfd >= 0)
			close(dirfd);
		if (r < 0) {
			if (image != NULL)
				tool_output_abort(&out);
			tool_fail("cannot lock object store '%s': %s", o.digest_store,
				  strerror(-r));
		}
		/* The descriptor stays open, and the lock held, until exit. */
	}

	if (o.from_file)
		root = read_dumpfile(source);
	else if (o.from_tar)
		root = read_tar(source, &o);
	else if (o.from_oci)
		root = read_oci(source, &o);
	else
		root = scan_directory(source, &o);
	if (root == NULL) {
		if (image != NULL)
			tool_output_abort(&out);
		return EXIT_FAILURE;
	}

	wo.format = LCFS_FORMAT_EROFS;
	wo.version = (uint32_t)o.min_version;
	wo.max_version = (uint32_t)o.max_version;
	wo.digest_out = o.print_digest ? digest : NULL;
	if (image != NULL) {
		wo.file = &out;
		wo.file_write_cb = tool_output_write_cb;
	}
	if (st != NULL) {
		tee.out = image != NULL ? &out : NULL;
		wo.file = &tee;
		wo.file_write_cb = image_tee_write_cb;
	}
	r = lcfs_write_image(root, &wo, &err);
	lcfs_node_unref(root);
	if (r < 0) {
		print_write_error(r, &err, image != NULL && out.err ? out.err : tee.err);
		if (image != NULL)
			tool_output_abort(&out);
		return EXIT_FAILURE;
	}
	if (image != NULL) {
		r = tool_output_commit(&out);
		if (r < 0) {
			fprintf(stderr, "%s: cannot write file: %s\n", tool_prog,
				strerror(-r));
			return EXIT_FAILURE;
		}
	}

	if (st != NULL) {
		store_image(o.digest_store, st, &tee, digest);
		close(tee.fd);
		lcfs_store_free(st);
	}

	if (o.print_digest) {
		lcfs_digest_to_hex(digest, hex);
		printf("%s\n", hex);
	}
	close_stdout();
	return EXIT_SUCCESS;
}
