/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Fuzz target: the dumpfile parser (lcfs-dump-parse.c) and printer.
 *
 * Every input is parsed in default and in strict mode. An accepted input
 * must leave a consistent tree: every node is read, the tree is cloned and
 * printed, and the printout must parse again and print the same (the
 * printer's output is a fixed point, docs/dumpfile.md, "Printer escapes").
 * A rejected input must come with a message.
 */
#include <string.h>

#include "fuzz.h"
#include "lcfs-tools.h"

static char *print_tree(struct lcfs_node_s *root, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	int r;

	if (f == NULL)
		fuzz_fail("open_memstream: %s", strerror(errno));
	r = lcfs_dump_print(f, root);
	if (fclose(f) != 0 || r < 0)
		fuzz_fail("printing a parsed tree failed: %s", strerror(r < 0 ? -r : errno));
	return text;
}

static void check_parsed(struct lcfs_node_s *root)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *copy, *again;
	char *text, *text2;
	size_t len, len2;

	fuzz_touch_tree(root);
	copy = lcfs_node_clone_deep(root);
	if (copy != NULL) {
		fuzz_touch_tree(copy);
		lcfs_node_unref(copy);
	}

	text = print_tree(root, &len);
	again = lcfs_dump_parse_buf(text, len, 0, &err);
	if (again == NULL && fuzz_printout_too_long(&err)) {
		free(text);
		return;
	}
	if (again == NULL)
		fuzz_fail("the printout does not parse: line %lu: %s\n%.*s", err.line,
			  err.msg, (int)(len > 4096 ? 4096 : len), text);
	text2 = print_tree(again, &len2);
	if (len != len2 || memcmp(text, text2, len) != 0)
		fuzz_fail("printing is not a fixed point:\n%s---\n%s", text, text2);
	lcfs_node_unref(again);
	free(text);
	free(text2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned modes[] = { 0, LCFS_PARSE_FLAGS_STRICT };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct lcfs_error err = { 0 };
		struct lcfs_node_s *root;

		root = lcfs_dump_parse_buf((const char *)data, size, modes[i], &err);
		if (root == NULL) {
			if (err.err == 0 || err.msg[0] == '\0')
				fuzz_fail("rejected without a message");
			continue;
		}
		check_parsed(root);
		lcfs_node_unref(root);
	}
	return 0;
}
