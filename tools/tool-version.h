/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* `TOOL --version`, the same for every tool. */
#ifndef _TOOL_VERSION_H
#define _TOOL_VERSION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* When --version is the only argument: prints "PROG VERSION" (the project
 * version, one for the library and every tool) and exits 0. Only alone:
 * mkcomposefs also takes --version=N as a spelling of --min-version. */
static inline void tool_maybe_print_version(int argc, char **argv, const char *prog)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%s %s\n", prog, PACKAGE_VERSION);
		if (fflush(stdout) != 0 || ferror(stdout))
			exit(EXIT_FAILURE);
		exit(EXIT_SUCCESS);
	}
}

#endif /* _TOOL_VERSION_H */
