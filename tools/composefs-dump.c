/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-dump: read a composefs image and write it again
 * (docs/design.md, "composefs-dump"). For an image mkcomposefs wrote, the
 * copy is byte-identical; the test suite relies on that. DEST is replaced
 * only after a complete, successful write (docs/compatibility.md, "Atomic
 * output").
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>

#include "lcfs-tools.h"
#include "tool-version.h"
#include "toolutil.h"


static const struct option long_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s SRC DEST\n"
		"Read the composefs image SRC and write it again as DEST, with the\n"
		"format version SRC has. DEST \"-\" writes to standard output.\n"
		"\n"
		"Options:\n"
		"  --help  show this help and exit\n",
		tool_prog);
}

int main(int argc, char **argv)
{
	struct lcfs_write_options_s wo = { 0 };
	struct lcfs_error err = { 0 };
	struct tool_output out;
	struct lcfs_node_s *root;
	const char *src, *dest;
	char buf[1024];
	int fd, version, r, c;

	tool_set_prog(argc, argv, "composefs-dump");
	tool_maybe_print_version(argc, argv, tool_prog);
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			r = tool_close_stdout();
			if (r < 0)
				tool_fail("cannot write to standard output: %s", strerror(-r));
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n", tool_prog);
			return EXIT_FAILURE;
		}
	}
	/* Extra operands are ignored, as by the reference. */
	if (argc - optind < 1)
		tool_usage_error("no source path specified");
	if (argc - optind < 2)
		tool_usage_error("no destination path specified");
	src = argv[optind];
	dest = argv[optind + 1];

	fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		tool_fail("cannot open '%s': %s", src, strerror(errno));
	version = lcfs_version_from_fd(fd);
	if (version < 0)
		tool_fail("cannot get the image version of '%s': %s", src, strerror(errno));
	root = tool_image_load(fd, NULL, &err);
	close(fd);
	if (root == NULL) {
		lcfs_error_format(&err, buf, sizeof(buf));
		tool_fail("cannot load '%s': %s", src, buf);
	}

	if (strcmp(dest, "-") == 0 && isatty(STDOUT_FILENO)) {
		lcfs_node_unref(root);
		tool_fail("stdout is a tty.  Refusing to use it");
	}
	r = tool_output_open(&out, dest);
	if (r < 0) {
		lcfs_node_unref(root);
		tool_fail("cannot create '%s': %s", dest, strerror(-r));
	}

	/* Same version as the source, no more (docs/image-format.md, "Format
	 * versions"). */
	wo.format = LCFS_FORMAT_EROFS;
	wo.version = (uint32_t)version;
	wo.max_version = (uint32_t)version;
	wo.file = &out;
	wo.file_write_cb = tool_output_write_cb;
	r = lcfs_write_image(root, &wo, &err);
	lcfs_node_unref(root);
	if (r < 0) {
		if (out.err) {
			fprintf(stderr, "%s: cannot write '%s': %s\n", tool_prog, dest,
				strerror(out.err));
		} else if ((err.msg[0] != '\0' && strcmp(err.msg, strerror(-r)) != 0) ||
			   err.field != NULL) {
			lcfs_error_format(&err, buf, sizeof(buf));
			fprintf(stderr, "%s: cannot write '%s': %s: %s\n", tool_prog, dest,
				strerror(-r), buf);
		} else {
			fprintf(stderr, "%s: cannot write '%s': %s\n", tool_prog, dest,
				strerror(-r));
		}
		tool_output_abort(&out);
		return EXIT_FAILURE;
	}
	r = tool_output_commit(&out);
	if (r < 0)
		tool_fail("cannot write '%s': %s", dest, strerror(-r));
	r = tool_close_stdout();
	if (r < 0)
		tool_fail("cannot write to standard output: %s", strerror(-r));
	return EXIT_SUCCESS;
}
