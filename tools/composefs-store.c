/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-store: maintenance of an object store. Each subcommand lives
 * in its own file; this one only picks it.
 */
#include "config.h"

#include "store-fetch.h"
#include "toolutil.h"

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "fetch", store_fetch_main, "fetch images and their objects from a remote store" },
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: %s COMMAND [OPTIONS] STORE ...\n\nCommands:\n", tool_prog);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'%s COMMAND --help' describes each command.\n", tool_prog);
}

int main(int argc, char **argv)
{
	tool_set_prog(argc, argv, "composefs-store");
	if (argc < 2)
		tool_usage_error("no command given");
	if (strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return tool_close_stdout() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].main(argc - 1, argv + 1);
	}
	tool_usage_error("unknown command '%s'", argv[1]);
}
