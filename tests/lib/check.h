/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The check macro of the C unit tests: a failed check is reported with its
 * place and counted, and the test goes on; main() returns failure when
 * `failures` is non-zero. Include once, from the test's own source file.
 */
#ifndef _COMPOSEFS_TEST_CHECK_H
#define _COMPOSEFS_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,  \
				__LINE__, #cond);                                \
			failures++;                                              \
		}                                                                \
	} while (0)

#endif
