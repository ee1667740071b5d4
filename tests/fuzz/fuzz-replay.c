/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Replay main for the fuzz targets when they are not built with libFuzzer:
 * runs LLVMFuzzerTestOneInput() once on every file named on the command
 * line and on every file in every directory named there (sorted, not
 * recursive). An argument starting with "$COMPOSEFS_SHARED/" is looked up
 * in the reference assets and quietly skipped when they are absent. Each
 * input gets FUZZ_REPLAY_TIMEOUT seconds (default 20) and the replay stops
 * with the input's name on a hang; a crash is a crash, with the input's
 * name printed first.
 */
#include "fuzz.h"
#include "lcfs-util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

static const char *current;

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

static void on_alarm(int sig)
{
	static const char msg[] = "fuzz-replay: input takes too long (hang): ";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
	    write(STDERR_FILENO, current, strlen(current)) < 0 ||
	    write(STDERR_FILENO, "\n", 1) < 0)
		_exit(2);
	_exit(2);
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
	cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0)
		return -errno;
	return lcfs_read_all(fd, SIZE_MAX, data, len);
}

static unsigned timeout_seconds(void)
{
	const char *s = getenv("FUZZ_REPLAY_TIMEOUT");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v > 0 ? (unsigned)v : 20;
}

static int run_one(const char *path, unsigned long *count)
{
	uint8_t *data = NULL;
	size_t len;
	int r = read_file(path, &data, &len);

	if (r < 0) {
		fprintf(stderr, "fuzz-replay: cannot read '%s': %s\n", path, strerror(-r));
		return -1;
	}
	current = path;
	if (getenv("FUZZ_REPLAY_VERBOSE"))
		fprintf(stderr, "fuzz-replay: %s\n", path);
	alarm(timeout_seconds());
	LLVMFuzzerTestOneInput(data, len);
	alarm(0);
	free(data);
	(*count)++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, unsigned long *count)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int ret = 0;

	if (d == NULL) {
		fprintf(stderr, "fuzz-replay: cannot open '%s': %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			if (names == NULL)
				fuzz_fail("out of memory");
		}
		if (asprintf(&names[n++], "%s/%s", dir, de->d_name) < 0)
			fuzz_fail("out of memory");
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) &&
		    run_one(names[i], count) < 0)
			ret = -1;
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	static const char shared_var[] = "$COMPOSEFS_SHARED/";
	struct sigaction sa = { .sa_handler = on_alarm };
	unsigned long count = 0;
	int status = 0;

	sigaction(SIGALRM, &sa, NULL);
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		char *path = NULL;
		struct stat st;

		if (strncmp(argv[i], shared_var, strlen(shared_var)) == 0) {
			const char *shared = getenv("COMPOSEFS_SHARED");

			if (shared == NULL || asprintf(&path, "%s/%s", shared,
						       argv[i] + strlen(shared_var)) < 0 ||
			    stat(path, &st) < 0) {
				fprintf(stderr, "fuzz-replay: no reference assets, skipping %s\n",
					argv[i]);
				free(path);
				continue;
			}
		} else {
			path = strdup(argv[i]);
			if (path == NULL)
				fuzz_fail("out of memory");
		}
		if (stat(path, &st) < 0) {
			fprintf(stderr, "fuzz-replay: cannot stat '%s': %s\n", path,
				strerror(errno));
			status = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(path, &count) < 0)
				status = 1;
		} else if (run_one(path, &count) < 0) {
			status = 1;
		}
		free(path);
	}
	fprintf(stderr, "fuzz-replay: %lu inputs replayed\n", count);
	if (count == 0) {
		fprintf(stderr, "fuzz-replay: no inputs\n");
		return 1;
	}
	return status;
}
