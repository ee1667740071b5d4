/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * The checks of the C tests (compile tests/lib/check.c in): a failed check
 * is reported with its place and counted, and the test goes on; main()
 * ends with `return test_summary("name");`, which fails when any check
 * failed.
 *
 * Named cases: TEST_CASE(fn) calls fn() unless CFS_TEST_CASE=NAME is set
 * in the environment and NAME is neither fn's name nor a part of it (the
 * same selection as `-k NAME` of the Python tests).
 */
#ifndef _COMPOSEFS_TEST_CHECK_H
#define _COMPOSEFS_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

extern int test_failures;
extern int test_checks;

#define CHECK_MSG(cond, ...)                                                     \
	do {                                                                     \
		test_checks++;                                                   \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,  \
				__LINE__, #cond);                                \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
			test_failures++;                                         \
		}                                                                \
	} while (0)

#define CHECK(cond) CHECK_MSG(cond, "%s", "false")

#define CHECK_STR(got, want)                                                     \
	do {                                                                     \
		const char *g_ = (got), *w_ = (want);                            \
		CHECK_MSG(g_ != NULL && strcmp(g_, w_) == 0,                     \
			  "got \"%s\", want \"%s\"", g_ ? g_ : "(null)", w_);      \
	} while (0)

/* CHECK, and on failure return 1 from the calling function (main) at
 * once, for checks that later ones depend on. */
#define REQUIRE(cond)                                                            \
	do {                                                                     \
		int f_ = test_failures;                                          \
		CHECK(cond);                                                     \
		if (test_failures != f_)                                         \
			return 1;                                                \
	} while (0)

/* Whether the case @name runs (CFS_TEST_CASE unset, equal or a part). */
int test_case_wanted(const char *name);

#define TEST_CASE(fn)                                                            \
	do {                                                                     \
		if (test_case_wanted(#fn))                                       \
			fn();                                                    \
	} while (0)

/* Where a test writes its files: $@var when set (NULL: none), else
 * $TMPDIR, else /tmp. */
const char *test_tmp_dir(const char *var);

/* Prints "@name: N checks, N failed" and returns main()'s exit status:
 * 0, or 1 when a check failed or CFS_TEST_CASE named no case. */
int test_summary(const char *name);

#endif
