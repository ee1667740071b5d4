/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Builds trees too big or too deep to write as a dumpfile and writes them
 * as an image, for the resource bound tests:
 *
 *   make-tree chain N IMAGE   N directories, each inside the previous one
 *   make-tree links N IMAGE   one file and N hard links to it in one directory
 *
 * Exits 0, or 1 with a message. Also, as a small process whose children
 * start small (a fork of a big process counts its size as theirs):
 *
 *   make-tree rss PROG ARG...  runs PROG with stdout on /dev/null and prints
 *                              "STATUS PEAK_RSS_KIB" (STATUS -1: killed)
 */
#include "lcfs-tools.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

static int fail(const char *what, int err)
{
	fprintf(stderr, "make-tree: %s: %s\n", what, strerror(err));
	return 1;
}

static ssize_t write_fd(void *file, void *buf, size_t count)
{
	return write(*(int *)file, buf, count);
}

static struct lcfs_node_s *new_node(uint32_t mode)
{
	struct lcfs_node_s *n = lcfs_node_new();

	if (n != NULL)
		lcfs_node_set_mode(n, mode);
	return n;
}

static int peak_rss(char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return fail("fork", errno);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return fail("wait4", errno);
	printf("%d %ld\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1, ru.ru_maxrss);
	return 0;
}

int main(int argc, char **argv)
{
	struct lcfs_write_options_s wo = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root, *dir, *file;
	unsigned long n;
	int fd, r;

	if (argc >= 3 && strcmp(argv[1], "rss") == 0)
		return peak_rss(argv + 2);
	if (argc != 4) {
		fprintf(stderr, "usage: make-tree chain|links N IMAGE\n");
		return 1;
	}
	n = strtoul(argv[2], NULL, 10);
	root = new_node(S_IFDIR | 0755);
	if (root == NULL)
		return fail("node", ENOMEM);
	if (strcmp(argv[1], "chain") == 0) {
		dir = root;
		for (unsigned long i = 0; i < n; i++) {
			struct lcfs_node_s *d = new_node(S_IFDIR | 0755);

			if (d == NULL || lcfs_node_add_child(dir, d, "d") < 0)
				return fail("chain", errno);
			dir = d;
		}
	} else if (strcmp(argv[1], "links") == 0) {
		file = new_node(S_IFREG | 0644);
		if (file == NULL || lcfs_node_add_child(root, file, "f") < 0)
			return fail("file", errno);
		for (unsigned long i = 0; i < n; i++) {
			struct lcfs_node_s *l = lcfs_node_new();
			char name[32];

			snprintf(name, sizeof(name), "l%08lu", i);
			if (l == NULL)
				return fail("link", ENOMEM);
			lcfs_node_make_hardlink(l, file);
			if (lcfs_node_add_child(root, l, name) < 0)
				return fail("link", errno);
		}
	} else {
		fprintf(stderr, "make-tree: unknown kind '%s'\n", argv[1]);
		return 1;
	}

	fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(argv[3], errno);
	wo.format = LCFS_FORMAT_EROFS;
	wo.max_version = LCFS_VERSION_MAX;
	wo.file = &fd;
	wo.file_write_cb = write_fd;
	r = lcfs_write_image(root, &wo, &err);
	if (r < 0)
		return fail(err.msg[0] ? err.msg : "write", -r);
	if (close(fd) < 0)
		return fail(argv[3], errno);
	lcfs_node_unref(root);
	return 0;
}
