/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-info: list, dump and measure composefs images
 * (docs/design.md, "composefs-info"). Differences from the reference:
 * missing-objects requires --basedir, and every error is one clear line on
 * stderr (docs/compatibility.md, "missing-objects needs --basedir", "Help
 * and messages").
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>

#include "lcfs-tools.h"
#include "lcfs-walk.h"
#include "tool-version.h"
#include "toolutil.h"


enum {
	OPT_BASEDIR = 256,
	OPT_FILTER,
	OPT_HELP,
};

static const struct option long_options[] = {
	{ "basedir", required_argument, NULL, OPT_BASEDIR },
	{ "filter", required_argument, NULL, OPT_FILTER },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

enum command {
	CMD_LS,
	CMD_OBJECTS,
	CMD_MISSING_OBJECTS,
	CMD_DUMP,
	CMD_MEASURE_FILE,
};

static const struct {
	const char *name;
	enum command cmd;
} commands[] = {
	{ "ls", CMD_LS },
	{ "objects", CMD_OBJECTS },
	{ "missing-objects", CMD_MISSING_OBJECTS },
	{ "dump", CMD_DUMP },
	{ "measure-file", CMD_MEASURE_FILE },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [--basedir=PATH] [--filter=NAME]... COMMAND IMAGE...\n"
		"       %s measure-file FILE...\n"
		"Show the contents of composefs images.\n"
		"\n"
		"Commands:\n"
		"  ls               list every path, with symlink targets and backing files\n"
		"  objects          list the backing files the images refer to\n"
		"  missing-objects  list the backing files absent from --basedir\n"
		"  dump             print the images in dumpfile format\n"
		"  measure-file     print the fs-verity digest of each FILE\n"
		"\n"
		"Options:\n"
		"  --basedir=PATH   object store directory (required by missing-objects)\n"
		"  --filter=NAME    load only the top-level entry NAME (repeatable)\n"
		"  --help           show this help and exit\n",
		tool_prog, tool_prog);
}

static void close_stdout(void)
{
	int r = tool_close_stdout();

	if (r < 0)
		tool_fail("cannot write to standard output: %s", strerror(-r));
}

/* ---- ls ------------------------------------------------------------------- */

/* "PATH/\t" for directories, "PATH\t-> TARGET" for symlinks, "PATH\t@ PAYLOAD"
 * for files with a backing file, "PATH" otherwise; the root is not listed.
 * Paths keep spaces raw; targets and payloads use the standard escapes. */
static int ls_node(struct lcfs_walk *w, void *data)
{
	struct lcfs_node_s *node = w->node;
	const char *payload;
	uint32_t type;

	if (w->depth == 0)
		return 0;
	lcfs_print_escaped(stdout, w->path, w->path_len, LCFS_ESCAPE_RAW_SPACE);
	if (lcfs_node_get_hardlink_target(node) == NULL) {
		type = lcfs_node_get_mode(node) & S_IFMT;
		payload = lcfs_node_get_payload(node);
		if (type == S_IFDIR) {
			fputs("/\t", stdout);
		} else if (type == S_IFLNK && payload != NULL) {
			fputs("\t-> ", stdout);
			lcfs_print_escaped(stdout, payload, strlen(payload), 0);
		} else if (type == S_IFREG && payload != NULL) {
			fputs("\t@ ", stdout);
			lcfs_print_escaped(stdout, payload, strlen(payload), 0);
		}
	}
	putchar('\n');
	return 0;
}

/* ---- objects / missing-objects ------------------------------------------ */

struct objects {
	char **names;
	size_t n, cap;
};

static int collect_object(struct lcfs_walk *w, void *data)
{
	struct objects *objs = data;
	const char *payload = tool_node_backing_file(w->node);
	char **names;

	if (payload == NULL)
		return 0;
	names = lcfs_array_reserve(objs->names, objs->n, &objs->cap, sizeof(*names), 64);
	if (names == NULL)
		return -ENOMEM;
	objs->names = names;
	objs->names[objs->n] = strdup(payload);
	if (objs->names[objs->n] == NULL)
		return -ENOMEM;
	objs->n++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether a path has an empty, "." or ".." component: overlayfs never
 * follows one in a redirect. */
static bool has_bad_component(const char *path)
{
	for (const char *c = path;; c++) {
		size_t len = strcspn(c, "/");

		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return true;
		c += len;
		if (*c == '\0')
			return false;
	}
}

/* Whether object @name is a regular file below @basedir_fd. Leading
 * slashes are ignored (the redirect overlayfs follows starts with one);
 * the rest is resolved as overlayfs does in a data-only layer: a path
 * with an empty, "." or ".." component, or that would leave the base
 * directory or meet a symlink, finds nothing, and neither does anything but a regular file. */
static bool object_present(int basedir_fd, const char *name)
{
	cleanup_fd int fd = -1;
	struct stat st;

	while (*name == '/')
		name++;
	if (has_bad_component(name))
		return false;
	fd = lcfs_open_confined(basedir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* The union of all images' payloads, sorted byte-wise, each once, raw;
 * with @basedir_fd >= 0 only those that are not present there. */
static void print_objects(struct objects *objs, int basedir_fd)
{
	/* qsort() must not be given a NULL array, even an empty one. */
	if (objs->n > 0)
		qsort(objs->names, objs->n, sizeof(*objs->names), cmp_names);
	for (size_t i = 0; i < objs->n; i++) {
		const char *name = objs->names[i];

		if (i > 0 && strcmp(name, objs->names[i - 1]) == 0)
			continue;
		if (basedir_fd >= 0 && object_present(basedir_fd, name))
			continue;
		fputs(name, stdout);
		putchar('\n');
	}
}

static void objects_free(struct objects *objs)
{
	for (size_t i = 0; i < objs->n; i++)
		free(objs->names[i]);
	free(objs->names);
}

/* ---- measure-file --------------------------------------------------------- */

static int measure_files(char **files, int n_files)
{
	uint8_t digest[LCFS_DIGEST_SIZE];
	char hex[2 * LCFS_DIGEST_SIZE + 1];

	if (n_files == 0)
		tool_usage_error("no files specified");
	for (int i = 0; i < n_files; i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
		int r;

		if (fd < 0)
			tool_fail("cannot open '%s': %s", files[i], strerror(errno));
		/* The kernel's digest when the file has fs-verity, else the
		 * same value computed here. */
		r = lcfs_fd_get_fsverity(digest, fd);
		close(fd);
		if (r < 0)
			tool_fail("cannot measure '%s': %s", files[i], strerror(-r));
		lcfs_digest_to_hex(digest, hex);
		printf("%s\n", hex);
	}
	close_stdout();
	return EXIT_SUCCESS;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char **filters = NULL;
	size_t n_filters = 0;
	const char *basedir = NULL;
	struct objects objs = { 0 };
	int basedir_fd = -1;
	enum command cmd;
	const char *cmd_name;
	size_t i;
	int c;

	tool_set_prog(argc, argv, "composefs-info");
	tool_maybe_print_version(argc, argv, tool_prog);

	/* getopt prints its own one-line diagnostics. */
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_BASEDIR:
			basedir = optarg; /* the last one wins */
			break;
		case OPT_FILTER: {
			const char **bigger;

			if (strchr(optarg, '/') != NULL)
				tool_fail("filter must be a single name: '%s'", optarg);
			bigger = realloc(filters, (n_filters + 2) * sizeof(*filters));
			if (bigger == NULL)
				tool_fail("%s", strerror(ENOMEM));
			filters = bigger;
			filters[n_filters++] = optarg;
			filters[n_filters] = NULL;
			break;
		}
		case OPT_HELP:
			usage(stdout);
			close_stdout();
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n", tool_prog);
			return EXIT_FAILURE;
		}
	}

	if (optind >= argc)
		tool_usage_error("no command specified");
	cmd_name = argv[optind++];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd_name, commands[i].name) == 0)
			break;
	}
	if (i == sizeof(commands) / sizeof(commands[0]))
		tool_usage_error("unknown command '%s'", cmd_name);
	cmd = commands[i].cmd;

	if (cmd == CMD_MEASURE_FILE) {
		free(filters);
		return measure_files(argv + optind, argc - optind);
	}

	/* The reference silently resolves against file descriptor 0 here:
	 * demand the directory instead (docs/compatibility.md,
	 * "missing-objects needs --basedir"). */
	if (cmd == CMD_MISSING_OBJECTS && basedir == NULL)
		tool_usage_error("missing-objects requires --basedir");
	if (basedir != NULL) {
		basedir_fd = open(basedir, O_RDONLY | O_DIRECTORY | O_PATH | O_CLOEXEC);
		if (basedir_fd < 0)
			tool_fail("cannot open basedir '%s': %s", basedir, strerror(errno));
	}
	if (optind >= argc)
		tool_usage_error("no image path specified");

	for (; optind < argc; optind++) {
		const char *path = argv[optind];
		struct lcfs_error err = { 0 };
		struct lcfs_node_s *root;
		int fd, r = 0;

		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			tool_fail("cannot open '%s': %s", path, strerror(errno));
		root = tool_image_load(fd, filters, &err);
		close(fd);
		if (root == NULL) {
			char buf[1024];

			fflush(stdout);
			lcfs_error_format(&err, buf, sizeof(buf));
			tool_fail("cannot load '%s': %s", path, buf);
		}

		switch (cmd) {
		case CMD_LS:
			r = lcfs_walk_tree(root, LCFS_WALK_PATH, ls_node, NULL);
			break;
		case CMD_DUMP:
			r = lcfs_dump_print(stdout, root);
			break;
		case CMD_OBJECTS:
		case CMD_MISSING_OBJECTS:
			r = lcfs_walk_tree(root, 0, collect_object, &objs);
			break;
		case CMD_MEASURE_FILE:
			break;
		}
		lcfs_node_unref(root);
		if (r < 0 && ferror(stdout))
			tool_fail("cannot write to standard output: %s", strerror(-r));
		if (r < 0)
			tool_fail("cannot list '%s': %s", path, strerror(-r));
	}

	if (cmd == CMD_OBJECTS || cmd == CMD_MISSING_OBJECTS)
		print_objects(&objs, cmd == CMD_MISSING_OBJECTS ? basedir_fd : -1);
	objects_free(&objs);
	free(filters);
	if (basedir_fd >= 0)
		close(basedir_fd);
	close_stdout();
	return EXIT_SUCCESS;
}
