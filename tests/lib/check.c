/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* The counters and the case selection of check.h. */
#include "check.h"

#include <stdlib.h>

int test_failures;
int test_checks;

static int cases_run;

int test_case_wanted(const char *name)
{
	const char *want = getenv("CFS_TEST_CASE");

	if (want != NULL && *want != '\0' && strcmp(name, want) != 0 &&
	    strstr(name, want) == NULL)
		return 0;
	cases_run++;
	return 1;
}

const char *test_tmp_dir(const char *var)
{
	const char *dir = var != NULL ? getenv(var) : NULL;

	if (dir == NULL)
		dir = getenv("TMPDIR");
	return dir != NULL ? dir : "/tmp";
}

int test_summary(const char *name)
{
	const char *want = getenv("CFS_TEST_CASE");

	if (want != NULL && *want != '\0' && cases_run == 0) {
		fprintf(stderr, "%s: no case matches CFS_TEST_CASE=%s\n", name, want);
		return 1;
	}
	printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
	return test_failures ? 1 : 0;
}
