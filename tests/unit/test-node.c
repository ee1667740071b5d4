/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/* Unit tests of the node tree API (docs/design.md, "Node ownership"; the
 * functions are documented in lcfs-writer.h) and of the tree walk
 * (lcfs-walk.h): order, paths, depths and parents, skipping a subtree,
 * leaving out hard link entries, stopping from a callback, and a tree far
 * deeper than any recursion. */
#include "lcfs-node.h"
#include "lcfs-walk.h"
#include "lcfs-util.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static struct lcfs_node_s *new_node(uint32_t mode)
{
	struct lcfs_node_s *n = lcfs_node_new();

	if (n == NULL)
		abort();
	lcfs_node_set_mode(n, mode);
	return n;
}

static void test_children(void)
{
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755);
	struct lcfs_node_s *f = new_node(S_IFREG | 0644);
	struct lcfs_node_s *g = new_node(S_IFREG | 0644);
	struct lcfs_node_s *h = new_node(S_IFREG | 0644);
	struct lcfs_node_s *extra;
	char longname[300];

	CHECK(lcfs_node_get_nlink(f) == 1);
	CHECK(lcfs_node_add_child(root, f, "b") == 0);
	CHECK(lcfs_node_add_child(root, g, "a") == 0);
	CHECK(lcfs_node_add_child(root, h, "-x") == 0);
	CHECK(lcfs_node_get_n_children(root) == 3);
	CHECK(strcmp(lcfs_node_get_name(lcfs_node_get_child(root, 0)), "-x") == 0);
	CHECK(strcmp(lcfs_node_get_name(lcfs_node_get_child(root, 1)), "a") == 0);
	CHECK(strcmp(lcfs_node_get_name(lcfs_node_get_child(root, 2)), "b") == 0);
	CHECK(lcfs_node_get_child(root, 3) == NULL);
	CHECK(lcfs_node_lookup_child(root, "a") == g);
	CHECK(lcfs_node_lookup_child(root, "c") == NULL);
	CHECK(lcfs_node_get_parent(g) == root);

	extra = new_node(S_IFREG | 0644);
	errno = 0;
	CHECK(lcfs_node_add_child(root, extra, "a") == -1 && errno == EEXIST);
	CHECK(lcfs_node_add_child(root, extra, "") == -1 && errno == EINVAL);
	memset(longname, 'x', 256);
	longname[256] = '\0';
	CHECK(lcfs_node_add_child(root, extra, longname) == -1 &&
	      errno == ENAMETOOLONG);
	CHECK(lcfs_node_add_child(f, extra, "z") == -1 && errno == ENOTDIR);
	CHECK(lcfs_node_add_child(root, g, "again") == -1 && errno == EMLINK);
	longname[255] = '\0';
	CHECK(lcfs_node_add_child(root, extra, longname) == 0);

	/* A child kept alive by an extra reference survives, detached. */
	lcfs_node_ref(g);
	lcfs_node_unref(root);
	CHECK(lcfs_node_get_parent(g) == NULL);
	CHECK(lcfs_node_get_name(g) == NULL);
	lcfs_node_unref(g);
}

static void test_attributes(void)
{
	struct lcfs_node_s *n = new_node(S_IFREG | 0644);
	struct timespec ts = { .tv_sec = -5, .tv_nsec = 7 }, out;
	const uint8_t data[] = "hello";
	char big[4097];

	CHECK(lcfs_node_try_set_mode(n, 0644) == -1 && errno == EINVAL);
	CHECK(lcfs_node_try_set_mode(n, S_IFSOCK | 0755) == 0);
	CHECK(lcfs_node_get_mode(n) == (S_IFSOCK | 0755));
	lcfs_node_set_rdev64(n, (1ULL << 32) + 5);
	CHECK(lcfs_node_get_rdev64(n) == 5);
	lcfs_node_set_mtime(n, &ts);
	lcfs_node_get_mtime(n, &out);
	CHECK(out.tv_sec == -5 && out.tv_nsec == 7);

	CHECK(lcfs_node_set_content(n, data, 5) == 0);
	CHECK(lcfs_node_get_size(n) == 5);
	CHECK(memcmp(lcfs_node_get_content(n), "hello", 5) == 0);
	lcfs_node_set_size(n, 5);
	CHECK(lcfs_node_get_content(n) != NULL);
	lcfs_node_set_size(n, 6);
	CHECK(lcfs_node_get_content(n) == NULL);
	CHECK(lcfs_node_set_content(n, data, 5001) == -1 && errno == EINVAL);

	memset(big, 'a', 4096);
	big[4096] = '\0';
	CHECK(lcfs_node_set_payload(n, big) == -1 && errno == ENAMETOOLONG);
	big[4095] = '\0';
	CHECK(lcfs_node_set_payload(n, big) == 0);
	CHECK(strlen(lcfs_node_get_payload(n)) == 4095);
	CHECK(lcfs_node_set_payload(n, NULL) == 0);
	CHECK(lcfs_node_get_payload(n) == NULL);
	CHECK(lcfs_node_set_symlink_payload(n, "x") == -1 && errno == EINVAL);
	lcfs_node_set_mode(n, S_IFLNK | 0777);
	CHECK(lcfs_node_set_symlink_payload(n, "") == -1 && errno == EINVAL);
	CHECK(lcfs_node_set_symlink_payload(n, "target") == 0);
	CHECK(lcfs_node_get_size(n) == 6);
	lcfs_node_unref(n);
}

static void test_xattrs(void)
{
	struct lcfs_node_s *n = new_node(S_IFREG | 0644);
	char big[40000];
	size_t len;
	const char *v;

	CHECK(lcfs_node_unset_xattr(n, "user.a") == -1 && errno == ENODATA);
	CHECK(lcfs_node_set_xattr(n, "user.a", "1", 1) == 0);
	CHECK(lcfs_node_set_xattr(n, "user.b", "22", 2) == 0);
	CHECK(lcfs_node_set_xattr(n, "user.a", "333", 3) == 0);
	CHECK(lcfs_node_get_n_xattr(n) == 2);
	/* A replaced entry moves to the end. */
	CHECK(strcmp(lcfs_node_get_xattr_name(n, 0), "user.b") == 0);
	CHECK(strcmp(lcfs_node_get_xattr_name(n, 1), "user.a") == 0);
	v = lcfs_node_get_xattr(n, "user.a", &len);
	CHECK(v != NULL && len == 3 && memcmp(v, "333", 3) == 0);
	CHECK(lcfs_node_get_xattr(n, "user.zz", &len) == NULL);
	CHECK(lcfs_node_set_xattr(n, "", "x", 1) == -1 && errno == ERANGE);
	memset(big, 'v', sizeof(big));
	CHECK(lcfs_node_set_xattr(n, "user.big", big, 65536) == -1 && errno == EINVAL);
	/* Budget: 12 + 3 * 7 + keys + values must stay <= 32767. */
	CHECK(lcfs_node_set_xattr(n, "user.big", big, 32767) == -1 && errno == ERANGE);
	CHECK(lcfs_node_set_xattr(n, "user.big", big, 30000) == 0);
	CHECK(lcfs_node_unset_xattr(n, "user.b") == 0);
	CHECK(lcfs_node_get_n_xattr(n) == 2);
	CHECK(lcfs_node_get_xattr(n, "user.b", &len) == NULL);
	CHECK(lcfs_node_get_xattr_name(n, 2) == NULL);
	lcfs_node_unref(n);
}

static void test_links_and_clone(void)
{
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755);
	struct lcfs_node_s *d = new_node(S_IFDIR | 0755);
	struct lcfs_node_s *f = new_node(S_IFREG | 0644);
	struct lcfs_node_s *l = lcfs_node_new();
	struct lcfs_node_s *copy, *cf, *cl;
	char *path;

	CHECK(lcfs_node_add_child(root, d, "d") == 0);
	CHECK(lcfs_node_add_child(d, f, "f") == 0);
	CHECK(lcfs_node_add_child(d, l, "l") == 0);
	lcfs_node_make_hardlink(l, f);
	CHECK(lcfs_node_get_hardlink_target(l) == f);
	CHECK(lcfs_node_get_nlink(f) == 2);
	CHECK(lcfs_node_resolve_link(l) == f);
	path = lcfs_node_path(f);
	CHECK(path != NULL && strcmp(path, "/d/f") == 0);
	free(path);
	CHECK(lcfs_node_set_xattr(f, "user.x", "y", 1) == 0);

	copy = lcfs_node_clone_deep(root);
	CHECK(copy != NULL);
	cf = lcfs_node_lookup_child(lcfs_node_lookup_child(copy, "d"), "f");
	cl = lcfs_node_lookup_child(lcfs_node_lookup_child(copy, "d"), "l");
	CHECK(cf != NULL && cf != f && cl != NULL);
	CHECK(lcfs_node_get_hardlink_target(cl) == cf);
	CHECK(lcfs_node_get_xattr(cf, "user.x", NULL) != NULL);
	lcfs_node_unref(root);
	lcfs_node_unref(copy);
}

static void test_link_cycle_free(void)
{
	/* Links forming a cycle must not keep the tree alive (ASan's leak
	 * checker fails this test otherwise). */
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755);
	struct lcfs_node_s *a = new_node(S_IFREG | 0644);
	struct lcfs_node_s *b = new_node(S_IFREG | 0644);

	CHECK(lcfs_node_add_child(root, a, "a") == 0);
	CHECK(lcfs_node_add_child(root, b, "b") == 0);
	lcfs_node_make_hardlink(a, b);
	lcfs_node_make_hardlink(b, a);
	CHECK(lcfs_node_resolve_link(a) == NULL);
	lcfs_node_unref(root);
}

static void test_deep_free(void)
{
	/* Freeing a very deep chain must not exhaust the stack. */
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755), *p = root;

	for (int i = 0; i < 200000; i++) {
		struct lcfs_node_s *c = new_node(S_IFDIR | 0755);

		if (lcfs_node_add_child(p, c, "d") < 0)
			abort();
		p = c;
	}
	lcfs_node_unref(root);
}

/* ---- The walk (lcfs-walk.h) ------------------------------------------------- */

static struct lcfs_node_s *add(struct lcfs_node_s *dir, const char *name, uint32_t mode)
{
	struct lcfs_node_s *n = new_node(mode);

	if (lcfs_node_add_child(dir, n, name) < 0)
		abort();
	return n;
}

/*
 * /            added out of order, kept sorted:
 *   a          regular file
 *   b/         x, "y z\n"/ (with w)
 *   c          hard link to a
 */
static struct lcfs_node_s *sample_tree(void)
{
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755), *b, *y, *a, *c;

	b = add(root, "b", S_IFDIR | 0755);
	y = add(b, "y z\n", S_IFDIR | 0755);
	add(y, "w", S_IFREG | 0644);
	add(b, "x", S_IFREG | 0644);
	c = add(root, "c", S_IFREG | 0644);
	a = add(root, "a", S_IFREG | 0644);
	lcfs_node_make_hardlink(c, a);
	return root;
}

struct expect {
	const char *path;
	size_t depth;
	const char *parent; /* name of the directory, NULL for the root */
};

/* Walks @root with @flags, skipping below @skip, and compares every stop
 * with @want (@n entries). */
static void check_walk(struct lcfs_node_s *root, unsigned flags, const char *skip,
		       const struct expect *want, size_t n)
{
	struct lcfs_walk w;
	size_t i = 0;
	int r;

	lcfs_walk_init(&w, root, flags | LCFS_WALK_PATH);
	while ((r = lcfs_walk_next(&w)) > 0) {
		const char *pname = w.parent ? lcfs_node_get_name(w.parent) : NULL;

		CHECK(i < n);
		if (i >= n)
			break;
		CHECK(strcmp(w.path, want[i].path) == 0);
		CHECK(w.path_len == strlen(want[i].path));
		CHECK(w.depth == want[i].depth);
		CHECK((pname == NULL) == (want[i].parent == NULL));
		if (pname != NULL && want[i].parent != NULL)
			CHECK(strcmp(pname, want[i].parent) == 0);
		CHECK(w.parent == NULL || lcfs_node_get_parent(w.node) == w.parent);
		if (skip != NULL && strcmp(w.path, skip) == 0)
			lcfs_walk_skip(&w);
		i++;
	}
	CHECK(r == 0);
	CHECK(i == n);
	/* Finished walks stay finished. */
	CHECK(lcfs_walk_next(&w) == 0);
	lcfs_walk_release(&w);
}

static void test_walk_order(void)
{
	struct lcfs_node_s *root = sample_tree();
	const struct expect all[] = {
		{ "/", 0, NULL },	    { "/a", 1, NULL },
		{ "/b", 1, NULL },	    { "/b/x", 2, "b" },
		{ "/b/y z\n", 2, "b" },	    { "/b/y z\n/w", 3, "y z\n" },
		{ "/c", 1, NULL },
	};
	const struct expect skipped[] = {
		{ "/", 0, NULL },
		{ "/a", 1, NULL },
		{ "/b", 1, NULL },
		{ "/c", 1, NULL },
	};
	const struct expect no_links[] = {
		{ "/", 0, NULL },	    { "/a", 1, NULL },
		{ "/b", 1, NULL },	    { "/b/x", 2, "b" },
		{ "/b/y z\n", 2, "b" },	    { "/b/y z\n/w", 3, "y z\n" },
	};
	const struct expect skip_root[] = { { "/", 0, NULL } };

	check_walk(root, 0, NULL, all, sizeof(all) / sizeof(all[0]));
	check_walk(root, 0, "/b", skipped, sizeof(skipped) / sizeof(skipped[0]));
	check_walk(root, LCFS_WALK_NO_LINKS, NULL, no_links,
		   sizeof(no_links) / sizeof(no_links[0]));
	check_walk(root, 0, "/", skip_root, 1);
	/* A subtree walks like a tree of its own. */
	{
		const struct expect sub[] = {
			{ "/", 0, NULL },
			{ "/x", 1, "b" },
			{ "/y z\n", 1, "b" },
			{ "/y z\n/w", 2, "y z\n" },
		};

		check_walk(lcfs_node_lookup_child(root, "b"), 0, NULL, sub,
			   sizeof(sub) / sizeof(sub[0]));
	}
	lcfs_node_unref(root);
}

static void test_walk_no_path(void)
{
	struct lcfs_node_s *root = sample_tree();
	struct lcfs_walk w;
	size_t n = 0;

	lcfs_walk_init(&w, root, 0);
	while (lcfs_walk_next(&w) > 0) {
		CHECK(w.path == NULL);
		n++;
	}
	lcfs_walk_release(&w);
	CHECK(n == 7);
	/* Left in the middle: nothing leaks (the sanitizers tell). */
	lcfs_walk_init(&w, root, LCFS_WALK_PATH);
	CHECK(lcfs_walk_next(&w) == 1 && lcfs_walk_next(&w) == 1 &&
	      lcfs_walk_next(&w) == 1);
	lcfs_walk_release(&w);
	lcfs_node_unref(root);
}

struct stop {
	size_t seen;
	size_t at;
};

static int stop_at(struct lcfs_walk *w, void *data)
{
	struct stop *s = data;

	if (s->seen++ == s->at)
		return -EINTR;
	return 0;
}

static void test_walk_callback(void)
{
	struct lcfs_node_s *root = sample_tree();
	struct stop s = { 0, 3 };

	CHECK(lcfs_walk_tree(root, 0, stop_at, &s) == -EINTR);
	CHECK(s.seen == 4);
	s = (struct stop){ 0, 100 };
	CHECK(lcfs_walk_tree(root, LCFS_WALK_PATH, stop_at, &s) == 0);
	CHECK(s.seen == 7);
	lcfs_node_unref(root);
}

static void test_walk_deep(void)
{
	enum { DEPTH = 200000 };
	struct lcfs_node_s *root = new_node(S_IFDIR | 0755), *p = root;
	struct lcfs_walk w;
	size_t n = 0, max_depth = 0;
	bool paths_ok = true;

	for (int i = 0; i < DEPTH; i++)
		p = add(p, "d", S_IFDIR | 0755);
	add(p, "f", S_IFREG | 0644);
	lcfs_walk_init(&w, root, LCFS_WALK_PATH);
	while (lcfs_walk_next(&w) > 0) {
		n++;
		if (w.depth > max_depth)
			max_depth = w.depth;
		/* "/d/d/.../d": two bytes a level. */
		if (w.depth > 0 && w.path_len != 2 * w.depth)
			paths_ok = false;
	}
	lcfs_walk_release(&w);
	CHECK(n == DEPTH + 2);
	CHECK(max_depth == DEPTH + 1);
	CHECK(paths_ok);
	lcfs_node_unref(root);
}

/* The one array growth step of the library (lcfs-util.c). */
static void test_array_reserve(void)
{
	size_t cap = 0, n = 0;
	uint32_t *v = NULL, *w;
	bool kept = true;

	for (uint32_t i = 0; i < 100; i++) {
		w = lcfs_array_reserve(v, n, &cap, sizeof(*v), 4);
		CHECK(w != NULL);
		if (w == NULL)
			break;
		v = w;
		v[n++] = i;
		CHECK(cap >= n);
	}
	CHECK(n == 100 && cap == 128);
	for (uint32_t i = 0; i < n; i++)
		kept = kept && v[i] == i;
	CHECK(kept);
	/* Room left: the same array, capacity unchanged. */
	CHECK(lcfs_array_reserve(v, 50, &cap, sizeof(*v), 4) == v && cap == 128);
	/* Too big to allocate: NULL with ENOMEM, array and capacity kept. */
	errno = 0;
	CHECK(lcfs_array_reserve(v, 128, &cap, SIZE_MAX / 8, 4) == NULL);
	CHECK(errno == ENOMEM && cap == 128 && v[99] == 99);
	free(v);
}

/* Whether the mapping holding @p has the "hg" flag (MADV_HUGEPAGE) in
 * /proc/self/smaps; -1 if that cannot be read. */
static int has_huge_advice(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool inside = false;
	int found = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

static void test_calloc_big(void)
{
	size_t n = 3 * LCFS_HUGE_MIN / sizeof(uint64_t);
	uint64_t *v = lcfs_calloc_big(n, sizeof(*v));
	uint64_t *small = lcfs_calloc_big(16, sizeof(*small));
	bool zero = true;

	CHECK(v != NULL && small != NULL);
	if (v == NULL || small == NULL) {
		free(v);
		free(small);
		return;
	}
	for (size_t i = 0; i < n; i++)
		zero = zero && v[i] == 0;
	CHECK(zero);
	for (size_t i = 0; i < 16; i++)
		CHECK(small[i] == 0);
	/* The 2 MiB pages inside a big table are advised, where the kernel
	 * has transparent huge pages; a small one never is. */
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0) {
		CHECK(has_huge_advice((char *)v + LCFS_HUGE_MIN) == 1);
		CHECK(has_huge_advice(small) != 1);
	} else {
		printf("# SKIP huge page advice: no transparent huge pages in this kernel\n");
	}
	/* A hint only: NULL, tiny or unaligned ranges are ignored. */
	lcfs_hint_huge(NULL, LCFS_HUGE_MIN);
	lcfs_hint_huge(small, 16 * sizeof(*small));
	lcfs_hint_huge((char *)v + 1, LCFS_HUGE_MIN);
	free(v);
	free(small);
}

/* Strings and aligned objects from one slab, over several chunks: every
 * object keeps its bytes, aligned objects are aligned, nothing overlaps;
 * then every object is released (ASan sees a chunk unmapped too early).
 * Interned xattr entries from a slab are shared and released the same
 * way. */
static void test_slab(void)
{
	enum { N = 24000 };
	static char *obj[N];
	static size_t len[N];
	struct lcfs_slab slab = { 0 };
	struct lcfs_xattr_intern t = { .slab = &slab };
	char value[300];
	size_t total = 0;
	bool ok = true;
	int err = 0;

	for (size_t i = 0; i < N; i++) {
		char text[400];

		len[i] = (i * 7919) % 390;
		memset(text, 'a' + (int)(i % 26), len[i]);
		if (i % 2 == 0) {
			obj[i] = lcfs_slab_strndup(&slab, text, len[i]);
		} else {
			obj[i] = lcfs_slab_alloc(&slab, len[i] + 1);
			if (obj[i] != NULL) {
				ok = ok && (uintptr_t)obj[i] % 8 == 0;
				memcpy(obj[i], text, len[i]);
				obj[i][len[i]] = '\0';
			}
		}
		CHECK(obj[i] != NULL);
		if (obj[i] == NULL)
			return;
		total += len[i] + 1;
	}
	CHECK(ok);
	CHECK(total > (size_t)4 << 20); /* three 2 MiB chunks */
	for (size_t i = 0; i < N; i++) {
		ok = ok && strlen(obj[i]) == len[i] &&
		     (len[i] == 0 || (obj[i][0] == 'a' + (int)(i % 26) &&
				      obj[i][len[i] - 1] == obj[i][0]));
	}
	CHECK(ok);

	/* Entries from the slab: equal pairs share one, keys and values are
	 * whole, and an entry outlives the table while a node holds it. */
	memset(value, 'v', sizeof(value));
	struct lcfs_xattr *a = lcfs_xattr_intern_get(&t, "security.ima", 12, value, 280, &err);
	struct lcfs_xattr *b = lcfs_xattr_intern_get(&t, "security.ima", 12, value, 279, &err);
	struct lcfs_xattr *c = lcfs_xattr_intern_get(&t, "security.ima", 12, value, 280, &err);
	CHECK(a != NULL && b != NULL && a == c && a != b);
	if (a == NULL || b == NULL)
		return;
	CHECK(a->in_slab && (uintptr_t)a % 8 == 0 && a->key_len == 12 && a->value_len == 280);
	CHECK(strcmp(lcfs_xattr_key(a), "security.ima") == 0);
	CHECK(memcmp(lcfs_xattr_value(b), value, 279) == 0 && lcfs_xattr_value(b)[279] == '\0');
	lcfs_xattr_ref(a);
	lcfs_xattr_intern_release(&t);
	CHECK(a->ref == 1 && a->value_len == 280);
	lcfs_xattr_unref(a);

	for (size_t i = 0; i < N; i++)
		lcfs_slab_release(obj[i]);
	lcfs_slab_done(&slab);
}

int main(void)
{
	TEST_CASE(test_children);
	TEST_CASE(test_attributes);
	TEST_CASE(test_xattrs);
	TEST_CASE(test_links_and_clone);
	TEST_CASE(test_link_cycle_free);
	TEST_CASE(test_deep_free);
	TEST_CASE(test_walk_order);
	TEST_CASE(test_walk_no_path);
	TEST_CASE(test_walk_callback);
	TEST_CASE(test_walk_deep);
	TEST_CASE(test_array_reserve);
	TEST_CASE(test_calloc_big);
	TEST_CASE(test_slab);
	return test_summary("test-node");
}
