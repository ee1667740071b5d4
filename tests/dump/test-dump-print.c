/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Dumpfile printer (docs/dumpfile.md, "Printing"): exact text for
 * parsed and hand-built trees, escape sets, hard link lines, write errors,
 * and print(parse(print(parse(x)))) == print(parse(x)).
 */
#include <string.h>

#include "dump-util.h"

#define DIG_IN "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIG_OUT "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char sample[] =
	"/ 4096 40755 3 0 0 0 100.5 - - - user.a=1 security.selinux=x\\x00\n"
	"/dir 74 40700 2 10 20 0 200.123456789 - - -\n"
	"/dir/file 100 100644 1 0 0 0 1.2 35/d02f - " DIG_IN "\n"
	"/dir/hl 0 @100644 9 9 9 9 9.9 /dir/file - -\n"
	"/-x 0 100644 1 0 0 0 0.0 - - -\n"
	"/a\\x20b 7 120777 1 0 0 0 0.0 tar=get - -\n"
	"/\\xc3\\xa4\\xff\\t 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d\\x20\n"
	"/dash 1 100644 1 0 0 0 0.0 \\x2d \\x2d - user.d=- user.e=\n"
	"/neg 0 100644 1 4294967295 0 0 -5.7 - - -\n"
	"/c 0 20644 1 0 0 1234 0.0 - - -\n"
	"/chain 0 @100644 1 0 0 0 0.0 dir/hl - -\n"
	"/in 3 100644 1 0 0 0 0.000000001 - a\\\\\\n -\n";

static const char sample_printed[] =
	"/ 4096 40755 3 0 0 0 100.5 - - - user.a=1 security.selinux=x\\x00\n"
	"/-x 0 100644 1 0 0 0 0.0 - - -\n"
	"/a\\x20b 7 120777 1 0 0 0 0.0 tar=get - -\n"
	"/c 0 20644 1 0 0 1234 0.0 - - -\n"
	"/chain 100 @100644 1 0 0 0 1.2 /dir/file - " DIG_OUT "\n"
	"/dash 1 100644 1 0 0 0 0.0 \\x2d \\x2d - user.d=- user.e=\n"
	"/dir 74 40700 2 10 20 0 200.123456789 - - -\n"
	"/dir/file 100 100644 1 0 0 0 1.2 35/d02f - " DIG_OUT "\n"
	"/dir/hl 100 @100644 1 0 0 0 1.2 /dir/file - " DIG_OUT "\n"
	"/in 3 100644 1 0 0 0 0.1 - a\\\\\\n -\n"
	"/neg 0 100644 1 4294967295 0 0 -5.7 - - -\n"
	"/\\xc3\\xa4\\xff\\t 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d\\x20\n";

static char *parse_print(const char *text, unsigned flags)
{
	struct lcfs_error err;
	struct lcfs_node_s *root = parse_str(text, flags, &err);
	char *out;

	if (root == NULL) {
		fprintf(stderr, "parse failed: %lu: %s: %s\n", err.line,
			err.field ? err.field : "-", err.msg);
		return NULL;
	}
	out = print_str(root);
	lcfs_node_unref(root);
	return out;
}

static void test_sample(void)
{
	char *once = parse_print(sample, LCFS_PARSE_FLAGS_STRICT);
	char *twice;

	CHECK_STR(once, sample_printed);
	if (once == NULL)
		return;
	twice = parse_print(once, LCFS_PARSE_FLAGS_STRICT);
	CHECK_STR(twice, once);
	free(twice);
	free(once);
}

/* A tree built with the API, like the image reader makes it: the first
 * name of a file is the real entry, later ones link to it. */
static void test_built_tree(void)
{
	struct lcfs_node_s *root = lcfs_node_new();
	struct lcfs_node_s *d = lcfs_node_new();
	struct lcfs_node_s *a = lcfs_node_new();
	struct lcfs_node_s *b = lcfs_node_new();
	struct timespec ts = { .tv_sec = 1695368732, .tv_nsec = 5 };
	uint8_t content[3] = { 'x', 0, '-' };
	char *text;

	lcfs_node_set_mode(root, S_IFDIR | 0755);
	lcfs_node_set_mode(d, S_IFDIR | 0700);
	lcfs_node_set_mode(a, S_IFREG | 0600);
	lcfs_node_set_mode(b, S_IFREG | 0644);
	lcfs_node_set_mtime(a, &ts);
	CHECK(lcfs_node_set_content(a, content, sizeof(content)) == 0);
	CHECK(lcfs_node_set_xattr(a, "user.z", "1", 1) == 0);
	CHECK(lcfs_node_set_xattr(a, "trusted.a", "", 0) == 0);
	CHECK(lcfs_node_add_child(root, d, "d") == 0);
	CHECK(lcfs_node_add_child(d, a, "a b") == 0);
	CHECK(lcfs_node_add_child(root, b, "z") == 0);
	lcfs_node_make_hardlink(b, a);
	text = print_str(root);
	CHECK_STR(text, "/ 0 40755 1 0 0 0 0.0 - - -\n"
			"/d 0 40700 1 0 0 0 0.0 - - -\n"
			"/d/a\\x20b 3 100600 2 0 0 0 1695368732.5 - x\\x00- - user.z=1 trusted.a=\n"
			"/z 3 @100600 2 0 0 0 1695368732.5 /d/a\\x20b x\\x00- - user.z=1 trusted.a=\n");
	free(text);
	lcfs_node_unref(root);
}

static char *escaped(const char *s, size_t len, unsigned flags)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		abort();
	lcfs_print_escaped(f, s, len, flags);
	fclose(f);
	return buf;
}

static void check_escaped(const char *s, size_t len, unsigned flags, const char *want)
{
	char *got = escaped(s, len, flags);

	CHECK_STR(got, want);
	free(got);
}

static void test_escape_sets(void)
{
	char all[256 * 3];
	char want[256 * 3 * 4 + 1], *w = want;
	char *got;

	check_escaped("a b=c\\", 6, 0, "a\\x20b=c\\\\");
	check_escaped("a b=c", 5, LCFS_ESCAPE_EQUAL, "a\\x20b\\x3dc");
	check_escaped("a b\tc", 5, LCFS_ESCAPE_RAW_SPACE, "a b\\tc");
	check_escaped("-", 1, 0, "-");
	check_escaped("-", 1, LCFS_ESCAPE_LONE_DASH, "\\x2d");
	check_escaped("--", 2, LCFS_ESCAPE_LONE_DASH, "--");
	check_escaped("\x7f\x80\r\n\x01~!", 7, 0, "\\x7f\\x80\\r\\n\\x01~!");
	check_escaped("", 0, LCFS_ESCAPE_LONE_DASH, "");

	/* Every byte, three times over, crossing the internal chunks. */
	for (int i = 0; i < (int)sizeof(all); i++) {
		unsigned char c = (unsigned char)(i % 256);

		all[i] = (char)c;
		if (c == '\\')
			w += sprintf(w, "\\\\");
		else if (c == '\n')
			w += sprintf(w, "\\n");
		else if (c == '\r')
			w += sprintf(w, "\\r");
		else if (c == '\t')
			w += sprintf(w, "\\t");
		else if (c < 0x21 || c > 0x7e || c == '=')
			w += sprintf(w, "\\x%02x", c);
		else
			*w++ = (char)c;
	}
	*w = '\0';
	got = escaped(all, sizeof(all), LCFS_ESCAPE_EQUAL);
	CHECK_STR(got, want);
	free(got);
}

/* Write errors come back as -errno. */
static void test_write_error(void)
{
	struct lcfs_error err;
	struct lcfs_node_s *root = parse_str(sample, 0, &err);
	FILE *f = fopen("/dev/full", "w");

	if (f == NULL || root == NULL) {
		fprintf(stderr, "no /dev/full: write error not tested\n");
		lcfs_node_unref(root);
		if (f)
			fclose(f);
		return;
	}
	CHECK(lcfs_dump_print(f, root) == -ENOSPC);
	fclose(f);
	lcfs_node_unref(root);
}

/* A wider tree, printed back and re-parsed: stable. */
static void test_roundtrip_generated(void)
{
	char *buf = NULL, *once, *twice;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		abort();
	fputs("/ 4096 40755 2 0 0 0 0.0 - - - security.selinux=system_u:object_r:root_t:s0\n", f);
	for (int d = 0; d < 30; d++) {
		fprintf(f, "/d%02d 0 40755 2 0 0 0 %d.%d - - -\n", 29 - d, d, d * 1000);
		for (int i = 0; i < 40; i++) {
			switch (i % 4) {
			case 0:
				fprintf(f, "/d%02d/f%d 10 100644 1 %d %d 0 0.0 %02x/%062x - %064x\n",
					29 - d, 39 - i, i, d, i, d * 100 + i, d * 100 + i);
				break;
			case 1:
				fprintf(f, "/d%02d/l%d 3 120777 1 0 0 0 0.0 a\\x20b - - user.x=%d\n",
					29 - d, i, i % 3);
				break;
			case 2:
				fprintf(f, "/d%02d/i%d 2 100600 1 0 0 0 0.0 - %c\\xff -\n", 29 - d, i,
					'a' + i % 26);
				break;
			default:
				fprintf(f, "/d%02d/h%d 0 @100644 1 0 0 0 0.0 /d%02d/f%d - -\n", 29 - d,
					i, 29 - d, 39 - (i - 3));
			}
		}
	}
	fclose(f);
	once = parse_print(buf, LCFS_PARSE_FLAGS_STRICT);
	CHECK(once != NULL);
	if (once != NULL) {
		/* Sorted output: the first directory printed is d00. */
		CHECK(strncmp(strchr(once, '\n') + 1, "/d00 ", 5) == 0);
		twice = parse_print(once, LCFS_PARSE_FLAGS_STRICT);
		CHECK_STR(twice, once);
		free(twice);
	}
	free(once);
	free(buf);
}

int main(void)
{
	TEST_CASE(test_sample);
	TEST_CASE(test_built_tree);
	TEST_CASE(test_escape_sets);
	TEST_CASE(test_write_error);
	TEST_CASE(test_roundtrip_generated);
	return test_summary("test-dump-print");
}
