/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Helpers shared by the image reader tests. */
#include "reader-util.h"

#include <string.h>
#include <sys/stat.h>


const char *test_shared_dir(void)
{
	const char *dir = getenv("COMPOSEFS_SHARED");
	struct stat st;

	if (dir == NULL || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		printf("SKIP: COMPOSEFS_SHARED (%s) is not a directory\n",
		       dir ? dir : "unset");
		exit(77);
	}
	return dir;
}

uint8_t *test_read_file(const char *path, size_t *len)
{
	size_t plen = strlen(path), cap = 1 << 16, n = 0;
	bool gz = plen > 3 && strcmp(path + plen - 3, ".gz") == 0;
	uint8_t *buf;
	FILE *f;

	if (access(path, R_OK) < 0)
		return NULL;
	if (gz) {
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "gzip -dc '%s'", path);
		f = popen(cmd, "r");
	} else {
		f = fopen(path, "rb");
	}
	if (f == NULL) {
		perror(path);
		exit(99);
	}
	buf = malloc(cap);
	for (;;) {
		size_t r;

		if (buf == NULL) {
			fprintf(stderr, "out of memory\n");
			exit(99);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	if (ferror(f) || (gz ? pclose(f) != 0 : fclose(f) != 0)) {
		fprintf(stderr, "%s: read error\n", path);
		exit(99);
	}
	*len = n;
	return buf;
}

struct lcfs_node_s *test_lookup(struct lcfs_node_s *root, const char *path)
{
	struct lcfs_node_s *n = root;

	while (n != NULL && *path != '\0') {
		size_t len;

		while (*path == '/')
			path++;
		len = strcspn(path, "/");
		if (len == 0)
			break;
		n = lcfs_node_lookup_child_n(n, path, len);
		path += len;
	}
	return n;
}

size_t test_count_nodes(struct lcfs_node_s *root)
{
	struct lcfs_walk w;
	size_t count = 0;

	lcfs_walk_init(&w, root, 0);
	while (lcfs_walk_next(&w) > 0)
		count++;
	lcfs_walk_release(&w);
	return count;
}

uint64_t test_touch_tree(struct lcfs_node_s *root)
{
	struct lcfs_walk w;
	uint64_t sum = 0;

	lcfs_walk_init(&w, root, 0);
	while (lcfs_walk_next(&w) > 0) {
		struct lcfs_node_s *n = w.node;
		const uint8_t *content = lcfs_node_get_content(n);
		const char *payload = lcfs_node_get_payload(n);
		const uint8_t *digest = lcfs_node_get_fsverity_digest(n);
		struct lcfs_node_s *t = lcfs_node_get_hardlink_target(n);

		sum += n->mode + n->nlink + n->uid + n->gid + n->rdev + n->size +
		       (uint64_t)n->mtime_sec + n->mtime_nsec;
		if (n->name != NULL)
			sum += strlen(n->name);
		if (payload != NULL)
			sum += strlen(payload);
		if (content != NULL)
			for (uint64_t i = 0; i < n->size; i++)
				sum += content[i];
		if (digest != NULL)
			sum += digest[0] + digest[31];
		if (t != NULL)
			sum += t->mode + t->size;
		for (size_t i = 0; i < lcfs_node_get_n_xattr(n); i++) {
			const char *key = lcfs_node_get_xattr_name(n, i);
			size_t vlen;
			const char *v = lcfs_node_get_xattr(n, key, &vlen);

			sum += strlen(key);
			if (v != NULL)
				for (size_t j = 0; j < vlen; j++)
					sum += (uint8_t)v[j];
		}
	}
	lcfs_walk_release(&w);
	return sum;
}

void test_expect_error(const uint8_t *data, size_t size, const char *const *toplevel,
		       int err, const char *substr, const char *what)
{
	struct lcfs_error e = { 0 };
	struct lcfs_node_s *root = lcfs_image_load(data, size, toplevel, &e);

	CHECK_MSG(root == NULL, "%s: loaded", what);
	if (root != NULL) {
		lcfs_node_unref(root);
		return;
	}
	CHECK_MSG(e.err == err, "%s: error %d (%s) instead of %d", what, e.err, e.msg,
		  err);
	CHECK_MSG(substr == NULL || strstr(e.msg, substr) != NULL,
		  "%s: message '%s' lacks '%s'", what, e.msg, substr);
}
