/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The generated cases in tests/assets/generated and, when present, the
 * reference project's dumpfiles ($COMPOSEFS_SHARED/assets/upstream):
 * every positive asset parses (strictly, except the three listed in
 * assets/README.md) and prints back to text that parses to the same
 * printout; every should-fail asset that the parser rejects fails with the
 * message of docs/dumpfile.md, "Rejected reference inputs".
 */
#include "dump-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>

static const char *const non_strict[] = {
	"no-newline.dump",
	"longlink.dump",
	"honggfuzz-longlink-unterminated.dump",
};

struct should_fail {
	const char *name;
	const char *msg; /* NULL: parses; the writer rejects it */
};

static const struct should_fail should_fail[] = {
	{ "should-fail-big-inline.dump", "Inline content size 5004 exceeds maximum 5000" },
	{ "should-fail-dir-hardlink.dump", "Directories can't be hardlinked" },
	{ "should-fail-dot-name.dump", "Invalid . or .. in path: /." },
	{ "should-fail-dotdot-name.dump", "Invalid . or .. in path: /.." },
	{ "should-fail-empty-link-name.dump", "Invalid symlink" },
	{ "should-fail-empty-name.dump", "Can't add child" },
	{ "should-fail-empty-xattr-key.dump", "Can't set xattr" },
	{ "should-fail-honggfuzz-long-xattr.dump", "Can't set xattr" },
	{ "should-fail-long-link.dump", "Invalid symlink" },
	{ "should-fail-long-xattr-key.dump", "Too many xattrs" },
	{ "should-fail-long-xattr-value.dump", "Invalid mode 644" },
	{ "should-fail-no-ftype.dump", "Invalid mode 0" },
	{ "should-fail-self-hardlink.dump", "Self-referential hardlink /037blockdev" },
	{ "should-fail-too-big.dump", NULL },
};

/* In strict mode these fail earlier, on their missing final newline. */
static const char *const strict_newline[] = {
	"should-fail-big-inline.dump",
	"should-fail-honggfuzz-long-xattr.dump",
	"should-fail-self-hardlink.dump",
};

static bool in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t l = strlen(s), sl = strlen(suffix);

	return l >= sl && strcmp(s + l - sl, suffix) == 0;
}

/* Parses @path (gzip-compressed when it ends in .gz) from a descriptor. */
static struct lcfs_node_s *parse_asset(const char *dir, const char *name,
				       unsigned flags, struct lcfs_error *err)
{
	char path[4096];
	struct lcfs_node_s *root;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (has_suffix(name, ".gz")) {
		int pipefd[2];
		pid_t pid;

		if (pipe(pipefd) < 0)
			abort();
		pid = fork();
		if (pid == 0) {
			int in = open(path, O_RDONLY);

			dup2(in, 0);
			dup2(pipefd[1], 1);
			close(pipefd[0]);
			execlp("gzip", "gzip", "-dc", (char *)NULL);
			_exit(127);
		}
		close(pipefd[1]);
		root = lcfs_dump_parse_fd(pipefd[0], flags, err);
		close(pipefd[0]);
		waitpid(pid, NULL, 0);
		return root;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	root = lcfs_dump_parse_fd(fd, flags, err);
	close(fd);
	return root;
}

static void test_positive(const char *dir, const char *name)
{
	unsigned flags = in_list(name, non_strict, 3) ? 0 : LCFS_PARSE_FLAGS_STRICT;
	struct lcfs_error err;
	struct lcfs_node_s *root = parse_asset(dir, name, flags, &err), *again;
	char *once, *twice;

	test_checks++;
	if (root == NULL) {
		fprintf(stderr, "%s: %lu: %s: %s\n", name, err.line,
			err.field ? err.field : "-", err.msg);
		test_failures++;
		return;
	}
	once = print_str(root);
	CHECK(once != NULL);
	lcfs_node_unref(root);
	if (once == NULL)
		return;
	/* The printout is itself a strict dumpfile that prints the same. */
	again = parse_str(once, LCFS_PARSE_FLAGS_STRICT, &err);
	CHECK(again != NULL);
	if (again != NULL) {
		twice = print_str(again);
		CHECK(twice != NULL && strcmp(once, twice) == 0);
		free(twice);
		lcfs_node_unref(again);
	} else {
		fprintf(stderr, "%s reprinted: %lu: %s\n", name, err.line, err.msg);
	}
	free(once);
	if (flags == 0) {
		/* The three non-strict assets are rejected in strict mode. */
		root = parse_asset(dir, name, LCFS_PARSE_FLAGS_STRICT, &err);
		CHECK(root == NULL);
		lcfs_node_unref(root);
	}
	printf("ok %s\n", name);
}

static void test_negative(const char *dir, const char *name)
{
	const struct should_fail *sf = NULL;
	struct lcfs_error err;
	struct lcfs_node_s *root;

	for (size_t i = 0; i < sizeof(should_fail) / sizeof(should_fail[0]); i++)
		if (strcmp(should_fail[i].name, name) == 0)
			sf = &should_fail[i];
	test_checks++;
	if (sf == NULL) {
		fprintf(stderr, "%s: no expected message known\n", name);
		test_failures++;
		return;
	}
	root = parse_asset(dir, name, 0, &err);
	if (sf->msg == NULL) {
		CHECK(root != NULL);
		lcfs_node_unref(root);
	} else if (root != NULL) {
		fprintf(stderr, "%s: parsed, want \"%s\"\n", name, sf->msg);
		test_failures++;
		lcfs_node_unref(root);
	} else if (strcmp(err.msg, sf->msg) != 0) {
		fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", name, err.msg, sf->msg);
		test_failures++;
	}
	if (in_list(name, strict_newline, 3)) {
		root = parse_asset(dir, name, LCFS_PARSE_FLAGS_STRICT, &err);
		CHECK(root == NULL && strcmp(err.msg, "Missing trailing newline") == 0);
		lcfs_node_unref(root);
	}
	printf("ok %s\n", name);
}

/* The generated cases kept in the repository (tests/assets/generated):
 * strict dumpfiles that print back to a fixed point. */
static int test_generated(void)
{
	const char *src = getenv("COMPOSEFS_SRCDIR");
	char dir[4096];
	struct dirent **names;
	int n, count = 0;

	snprintf(dir, sizeof(dir), "%s/tests/assets/generated", src ? src : ".");
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "cannot read %s: %s\n", dir, strerror(errno));
		test_failures++;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		if (has_suffix(names[i]->d_name, ".dump")) {
			test_positive(dir, names[i]->d_name);
			count++;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

int main(void)
{
	const char *shared = getenv("COMPOSEFS_SHARED");
	char dir[4096];
	struct dirent **names;
	int n, positives = 0, negatives = 0;

	/* Always: the in-repository cases. */
	CHECK(test_generated() >= 90);

	/* Also the reference project's assets, when they are there. */
	if (shared == NULL) {
		printf("# COMPOSEFS_SHARED is not set: reference assets not checked\n");
		return test_summary("test-dump-assets");
	}
	snprintf(dir, sizeof(dir), "%s/assets/upstream", shared);
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		printf("# no reference assets at %s: not checked\n", dir);
		return test_summary("test-dump-assets");
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;

		if (has_suffix(name, ".dump") || has_suffix(name, ".dump.gz")) {
			if (strncmp(name, "should-fail-", 12) == 0) {
				test_negative(dir, name);
				negatives++;
			} else {
				test_positive(dir, name);
				positives++;
			}
		}
		free(names[i]);
	}
	free(names);
	/* Every expected should-fail asset was there. */
	CHECK(negatives == (int)(sizeof(should_fail) / sizeof(should_fail[0])));
	CHECK(positives >= 10);
	return test_summary("test-dump-assets");
}
