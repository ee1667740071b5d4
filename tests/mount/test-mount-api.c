/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * lcfs_mount_image() / lcfs_mount_fd() on the real kernel (docs/design.md,
 * "Mount option checks", "Mount steps"): option validation, the
 * file-backed, loop-device and legacy mount(2) paths, idmapped mounts, and
 * that no failure leaves a mount, a temporary directory or a loop device
 * behind.
 *
 * Runs in a private mount namespace with its own /tmp, so the mount table
 * it compares is its own. Needs root, EROFS and overlayfs. The image is
 * built here from a small dumpfile (test_dump below).
 */
#include "lcfs-tools.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "libcomposefs/lcfs-mount.h"

#include "check.h"

static void __attribute__((noreturn, format(printf, 1, 2))) skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(77);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test-mount-api: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	exit(1);
}

static char workdir[] = "/var/tmp/test-mount-api.XXXXXX";
static char image[512], objdir[512], mnt[512], imgdir[512], corrupt[512];

/* ---- Snapshots of what a mount may leave behind -------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				fatal("out of memory");
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* Loop devices whose backing file is one of ours, "/tmp/.composefs.*"
 * directories, and the mount table, as one string. */
static char *snapshot(void)
{
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	DIR *d;
	struct dirent *de;

	if (out == NULL)
		fatal("out of memory");
	out[0] = '\0';
#define APPEND(...)                                                              \
	do {                                                                     \
		int w_ = snprintf(out + len, cap - len, __VA_ARGS__);            \
		if (w_ > 0)                                                      \
			len += (size_t)w_ < cap - len ? (size_t)w_ : cap - len - 1; \
	} while (0)
	d = opendir("/sys/block");
	while (d && (de = readdir(d)) != NULL) {
		char path[512];
		char *backing;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
		backing = read_file(path, NULL);
		if (backing && strstr(backing, workdir))
			APPEND("loop %s %s", de->d_name, backing);
		free(backing);
	}
	if (d)
		closedir(d);
	d = opendir("/tmp");
	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".composefs.", 11) == 0)
			APPEND("tmpdir %s\n", de->d_name);
	}
	if (d)
		closedir(d);
	{
		char *mi = read_file("/proc/self/mountinfo", NULL);

		APPEND("%s", mi ? mi : "");
		free(mi);
	}
#undef APPEND
	return out;
}

static void check_clean(const char *before, const char *what)
{
	char *now = snapshot();

	if (strcmp(before, now) != 0) {
		fprintf(stderr, "%s: left something behind:\n--- before\n%s--- after\n%s",
			what, before, now);
		test_failures++;
	}
	free(now);
}

static bool mounted_at(const char *path, const char *needle)
{
	char *mi = read_file("/proc/self/mountinfo", NULL);
	bool found = false;

	for (char *line = mi ? strtok(mi, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		if (strstr(line, path) && (needle == NULL || strstr(line, needle)))
			found = true;
	}
	free(mi);
	return found;
}

/* ---- Setup ------------------------------------------------------------------ */

static bool have_fs(const char *name)
{
	char *fs = read_file("/proc/filesystems", NULL);
	bool found = false;

	for (char *line = fs ? strtok(fs, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		char *tab = strrchr(line, '\t');

		if (tab && strcmp(tab + 1, name) == 0)
			found = true;
	}
	free(fs);
	return found;
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = read_file(from, &len);
	FILE *f;

	if (data == NULL)
		fatal("cannot read '%s'", from);
	f = fopen(to, "we");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		fatal("cannot write '%s'", to);
	free(data);
}

static void cleanup(void)
{
	char cmd[600];

	umount2(mnt, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", workdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", workdir);
}

/*
 * Mounts a fresh tmpfs on /tmp. Trees this test needs that live under the
 * old /tmp (a build or a checkout there, and the shared assets) are bound
 * back at the same paths so they stay reachable.
 */
static void private_tmp(const char *shared)
{
	const char *paths[] = { getenv("COMPOSEFS_BUILDDIR"), getenv("COMPOSEFS_SRCDIR"),
				shared };
	char keep[3][PATH_MAX];
	int fds[3];
	size_t n = 0;

	for (size_t i = 0; i < 3; i++) {
		char real[PATH_MAX];
		char *slash;

		if (paths[i] == NULL || realpath(paths[i], real) == NULL ||
		    strncmp(real, "/tmp/", 5) != 0)
			continue;
		slash = strchr(real + 5, '/');
		if (slash != NULL)
			*slash = '\0';
		fds[n] = open(real, O_PATH | O_CLOEXEC);
		if (fds[n] < 0)
			fatal("cannot open '%s'", real);
		snprintf(keep[n], sizeof(keep[n]), "%s", real);
		n++;
	}
	if (mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777") < 0)
		fatal("cannot mount a tmpfs on /tmp");
	for (size_t i = 0; i < n; i++) {
		char src[64];

		snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[i]);
		if (mkdir(keep[i], 0755) < 0 && errno != EEXIST)
			fatal("cannot create '%s'", keep[i]);
		if (mount(src, keep[i], NULL, MS_BIND | MS_REC, NULL) < 0)
			fatal("cannot bind '%s'", keep[i]);
		close(fds[i]);
	}
}

/* The mounted tree: what check_content() looks for, a whiteout and xattrs. */
static const char test_dump[] =
	"/ 4096 40555 2 0 0 0 1633950376.0 - - - trusted.foo1=bar-1 user.foo2=bar-2\n"
	"/chardev 0 20777 1 0 0 10769 1633950376.0 - - - trusted.foo=bar-2\n"
	"/fifo 0 10777 1 0 0 0 1633950376.0 - - - trusted.bar=bar-2\n"
	"/inline 15 100777 1 0 0 0 1633950376.0 - FOOBAR\\nINAFILE\\n - user.foo=bar-2\n"
	"/whiteout 0 20777 1 0 0 0 1633950376.0 - - - trusted.foo=bar-2\n";

static ssize_t file_write(void *file, void *buf, size_t count)
{
	return fwrite(buf, 1, count, file) == count ? (ssize_t)count : -1;
}

static void write_test_image(const char *path)
{
	struct lcfs_write_options_s opts = { 0 };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root;
	FILE *f;

	root = lcfs_dump_parse_buf(test_dump, strlen(test_dump), LCFS_PARSE_FLAGS_STRICT,
				   &err);
	if (root == NULL)
		fatal("test dumpfile: line %lu: %s", err.line, err.msg);
	f = fopen(path, "wb");
	if (f == NULL)
		fatal("cannot create '%s'", path);
	opts.file = f;
	opts.file_write_cb = file_write;
	if (lcfs_write_image(root, &opts, &err) < 0 || fclose(f) != 0)
		fatal("cannot write '%s': %s", path, err.msg);
	lcfs_node_unref(root);
}

static void setup(void)
{
	int fd;

	if (geteuid() != 0)
		skip("needs root to mount");
	if (!have_fs("erofs") || !have_fs("overlay"))
		skip("the kernel lacks EROFS or overlayfs");

	/* A private mount namespace with a private /tmp: the mount table and
	 * the /tmp/.composefs.* directories compared below are ours only. */
	if (unshare(CLONE_NEWNS) < 0)
		skip("cannot create a mount namespace: %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fatal("cannot make / private");
	private_tmp(getenv("COMPOSEFS_SHARED"));

	if (mkdtemp(workdir) == NULL)
		fatal("mkdtemp");
	atexit(cleanup);
	snprintf(image, sizeof(image), "%s/special.cfs", workdir);
	snprintf(corrupt, sizeof(corrupt), "%s/corrupt.cfs", workdir);
	snprintf(objdir, sizeof(objdir), "%s/objects", workdir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", workdir);
	snprintf(imgdir, sizeof(imgdir), "%s/imgdir", workdir);
	write_test_image(image);
	copy_file(image, corrupt);
	/* Break the EROFS superblock magic: the composefs header stays
	 * valid, so the kernel is the one to refuse it. */
	fd = open(corrupt, O_WRONLY);
	if (fd < 0 || pwrite(fd, "\0\0\0\0", 4, 1024) != 4 || close(fd) != 0)
		fatal("cannot corrupt '%s'", corrupt);
	if (mkdir(objdir, 0755) < 0 || mkdir(mnt, 0755) < 0 || mkdir(imgdir, 0755) < 0)
		fatal("mkdir");
}

static struct lcfs_mount_options_s default_options(const char **dirs)
{
	struct lcfs_mount_options_s o;

	memset(&o, 0, sizeof(o));
	dirs[0] = objdir;
	o.objdirs = dirs;
	o.n_objdirs = 1;
	return o;
}

/* The mount shows the image: a file with inline content and a device. */
static void check_content(const char *what)
{
	char path[600];
	char *data;
	struct stat st;

	snprintf(path, sizeof(path), "%s/inline", mnt);
	data = read_file(path, NULL);
	if (data == NULL || strcmp(data, "FOOBAR\nINAFILE\n") != 0) {
		fprintf(stderr, "%s: wrong content of /inline\n", what);
		test_failures++;
	}
	free(data);
	snprintf(path, sizeof(path), "%s/chardev", mnt);
	CHECK(lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == 10769);
	/* The root whiteouts 00..ff are never visible. */
	snprintf(path, sizeof(path), "%s/00", mnt);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
}

static void unmount(void)
{
	if (umount2(mnt, 0) < 0) {
		fprintf(stderr, "umount '%s': %s\n", mnt, strerror(errno));
		test_failures++;
	}
}

/* ---- Tests --------------------------------------------------------------------- */

static void test_validation(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	char *before = snapshot();
	char longhex[140];

#define EXPECT_EINVAL(call)                                                      \
	do {                                                                     \
		errno = 0;                                                       \
		CHECK((call) == -1 && errno == EINVAL);                          \
	} while (0)

	o.flags = 1u << 5;
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.flags = LCFS_MOUNT_INTERNAL_FORCE_LOOP; /* internal only */
	EXPECT_EINVAL(lcfs_mount_fd(0, mnt, &o));
	o.flags = 0;
	o.n_objdirs = 0;
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.n_objdirs = 1;
	o.upperdir = "/up";
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.upperdir = NULL;
	o.workdir = "/work";
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.workdir = NULL;
	o.expected_fsverity_digest = "abc";
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.expected_fsverity_digest = "zz";
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	memset(longhex, 'a', 130);
	longhex[130] = '\0';
	o.expected_fsverity_digest = longhex;
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	o.expected_fsverity_digest = NULL;
	o.flags = LCFS_MOUNT_FLAGS_IDMAP;
	o.idmap_fd = -1;
	EXPECT_EINVAL(lcfs_mount_image(image, mnt, &o));
	/* Options are checked before the image is opened. */
	EXPECT_EINVAL(lcfs_mount_image("/nonexistent.cfs", mnt, &o));
	o.flags = 0;
	errno = 0;
	CHECK(lcfs_mount_image("/nonexistent.cfs", mnt, &o) == -1 && errno == ENOENT);
	check_clean(before, "validation");
	free(before);
#undef EXPECT_EINVAL
}

static void test_mount_image(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	char *before = snapshot();

	CHECK(lcfs_mount_image(image, mnt, &o) == 0);
	CHECK(mounted_at(mnt, "lowerdir+=/tmp/.composefs."));
	CHECK(mounted_at(mnt, "datadir+="));
	CHECK(mounted_at(mnt, "metacopy=on"));
	CHECK(mounted_at(mnt, "redirect_dir=on"));
	check_content("lcfs_mount_image");
	unmount();
	check_clean(before, "lcfs_mount_image");
	free(before);
}

static void test_mount_fd_readonly(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	char *before = snapshot();
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	o.flags = LCFS_MOUNT_FLAGS_READONLY;
	CHECK(fd >= 0 && lcfs_mount_fd(fd, mnt, &o) == 0);
	/* The caller's fd stays open. */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	CHECK(mounted_at(mnt, " ro,"));
	check_content("lcfs_mount_fd");
	unmount();
	check_clean(before, "lcfs_mount_fd");
	free(before);
}

static void test_loop(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	struct lcfs_error err = { 0 };
	char *before = snapshot();
	char *during;
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	o.flags = LCFS_MOUNT_INTERNAL_FORCE_LOOP;
	CHECK(fd >= 0 && lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0);
	close(fd);
	during = snapshot();
	/* A loop device backs the image while it is mounted... */
	CHECK(strstr(during, "loop loop") != NULL);
	free(during);
	check_content("loop device");
	unmount();
	/* ...and autoclear releases it with the mount. */
	check_clean(before, "loop device");

	/* A loop device set up for an image the kernel then refuses is
	 * released at once. */
	fd = open(corrupt, O_RDONLY | O_CLOEXEC);
	memset(&err, 0, sizeof(err));
	CHECK(fd >= 0 && lcfs_mount_fd_ext(fd, mnt, &o, &err) == -EINVAL);
	close(fd);
	CHECK(strstr(err.msg, "EROFS") != NULL);
	check_clean(before, "loop device, corrupt image");
	free(before);
}

static void test_legacy(void)
{
	const char *dirs[3];
	struct lcfs_mount_options_s o = default_options(dirs);
	struct lcfs_error err = { 0 };
	char *before = snapshot();
	char second[600];
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	/* Two object directories, one with a comma in its name: the only
	 * character the legacy option string escapes. */
	snprintf(second, sizeof(second), "%s/more,objects", workdir);
	CHECK(mkdir(second, 0755) == 0);
	dirs[1] = second;
	o.n_objdirs = 2;
	o.flags = LCFS_MOUNT_INTERNAL_FORCE_LEGACY;
	CHECK(fd >= 0 && lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0);
	CHECK(mounted_at(mnt, "lowerdir=/tmp/.composefs."));
	CHECK(mounted_at(mnt, "::"));
	check_content("legacy mount");
	unmount();
	check_clean(before, "legacy mount");

	/* Legacy and loop together, as on an old kernel. */
	o.flags |= LCFS_MOUNT_INTERNAL_FORCE_LOOP;
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0);
	check_content("legacy mount with loop");
	unmount();
	check_clean(before, "legacy mount with loop");
	close(fd);
	free(before);
}

/* ---- Paths with the bytes the legacy option string escapes ---------------- */

/* snprintf() that must not truncate. */
#define FMT(buf, ...)                                                            \
	do {                                                                     \
		if (snprintf(buf, sizeof(buf), __VA_ARGS__) >= (int)sizeof(buf)) \
			fatal("path too long");                                  \
	} while (0)

static ssize_t write_cb(void *file, void *buf, size_t count)
{
	return fwrite(buf, 1, count, file) == count ? (ssize_t)count : -1;
}

/* An image with a file inside it and a file whose content is the object
 * "ab/obj" of the object directory. */
static void make_object_image(const char *path)
{
	static const char dump[] = "/ 4096 40755 2 0 0 0 0.0 - - -\n"
				   "/inline 6 100644 1 0 0 0 0.0 - INLINE -\n"
				   "/obj 5 100644 1 0 0 0 0.0 ab/obj - -\n";
	struct lcfs_write_options_s wo = { .format = LCFS_FORMAT_EROFS };
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root = lcfs_dump_parse_buf(dump, strlen(dump), 0, &err);
	FILE *f = fopen(path, "we");

	if (root == NULL || f == NULL)
		fatal("cannot build '%s'", path);
	wo.file = f;
	wo.file_write_cb = write_cb;
	if (lcfs_write_image(root, &wo, &err) < 0 || fclose(f) != 0)
		fatal("cannot write '%s': %s", path, err.msg);
	lcfs_node_unref(root);
}

/* Creates directory @dir holding object ab/obj with @content. */
static void make_objdir(const char *dir, const char *content)
{
	char path[PATH_MAX];
	FILE *f;

	FMT(path, "%s/ab", dir);
	if (mkdir(dir, 0755) < 0 || mkdir(path, 0755) < 0)
		fatal("cannot create '%s'", path);
	FMT(path, "%s/ab/obj", dir);
	f = fopen(path, "we");
	if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0)
		fatal("cannot write '%s'", path);
}

/* @s without its backslashes: what an unescaping parser would make of a
 * path whose backslashes were not escaped. */
static void strip_backslashes(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (; *s && n + 1 < size; s++) {
		if (*s != '\\')
			out[n++] = *s;
	}
	out[n] = '\0';
}

/* The mount shows exactly the image: /inline, /obj backed by the real
 * object, nothing of the object directory; a new file lands in @upper. */
static void check_object_tree(const char *what, const char *upper)
{
	char path[PATH_MAX];
	char *data;
	DIR *d;
	struct dirent *de;
	int n = 0, fd;
	struct stat st;

	FMT(path, "%s/obj", mnt);
	data = read_file(path, NULL);
	CHECK_MSG(data != NULL && strcmp(data, "REAL\n") == 0, "%s: /obj reads '%s'", what,
		  data ? data : "(error)");
	free(data);
	FMT(path, "%s/inline", mnt);
	data = read_file(path, NULL);
	CHECK_MSG(data != NULL && strcmp(data, "INLINE") == 0, "%s: /inline", what);
	free(data);
	d = opendir(mnt);
	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		CHECK_MSG(strcmp(de->d_name, "inline") == 0 || strcmp(de->d_name, "obj") == 0,
			  "%s: unexpected entry '%s'", what, de->d_name);
		n++;
	}
	if (d)
		closedir(d);
	CHECK_MSG(n == 2, "%s: %d entries", what, n);
	FMT(path, "%s/new", mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CHECK_MSG(fd >= 0, "%s: cannot create a file: %s", what, strerror(errno));
	if (fd >= 0)
		close(fd);
	FMT(path, "%s/new", upper);
	CHECK_MSG(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "%s: new file not in '%s'",
		  what, upper);
}

static void test_legacy_paths(void)
{
	/* Each byte overlayfs parses in the legacy option string, alone and
	 * in the positions that once changed the meaning. */
	static const char *const names[] = {
		"back\\slash", "trail\\",   "com,ma",       "co:lon",   "a::b",
		"eq=ual",      "new\nline", "sp ace\ttab",  "q\"uote",  "x,upperdir=y",
		"end:",        ":start",    "\\,\\:=\n,:\\",
	};
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	struct lcfs_error err;
	char *before = snapshot();
	char img[PATH_MAX], od[PATH_MAX], up[PATH_MAX], wd[PATH_MAX], decoy[PATH_MAX];
	char plain[PATH_MAX], longdir[5000];
	int fd;

	FMT(img, "%s/objects.cfs", workdir);
	make_object_image(img);
	fd = open(img, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("cannot open '%s'", img);
	o.flags = LCFS_MOUNT_INTERNAL_FORCE_LEGACY;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char what[64];

		FMT(what, "legacy path %zu", i);
		FMT(od, "%s/o-%s", workdir, names[i]);
		FMT(up, "%s/u-%s", workdir, names[i]);
		FMT(wd, "%s/w-%s", workdir, names[i]);
		make_objdir(od, "REAL\n");
		if (mkdir(up, 0755) < 0 || mkdir(wd, 0755) < 0)
			fatal("mkdir");
		/* Where a misparsed backslash would lead instead. */
		strip_backslashes(plain, sizeof(plain), names[i]);
		if (strcmp(plain, names[i]) != 0) {
			FMT(decoy, "%s/o-%s", workdir, plain);
			make_objdir(decoy, "EVIL\n");
			FMT(decoy, "%s/u-%s", workdir, plain);
			if (mkdir(decoy, 0755) < 0)
				fatal("mkdir");
			FMT(decoy, "%s/w-%s", workdir, plain);
			if (mkdir(decoy, 0755) < 0)
				fatal("mkdir");
		}
		dirs[0] = od;
		o.upperdir = up;
		o.workdir = wd;
		memset(&err, 0, sizeof(err));
		if (lcfs_mount_fd_ext(fd, mnt, &o, &err) != 0) {
			fprintf(stderr, "%s: mount failed: %s (%s)\n", what, strerror(err.err),
				err.msg);
			test_failures++;
			continue;
		}
		CHECK(mounted_at(mnt, "::"));
		check_object_tree(what, up);
		unmount();
		check_clean(before, what);
	}

	/* What cannot be written is refused, and nothing is mounted. */
	FMT(od, "%s/o-%s", workdir, names[0]);
	dirs[0] = od;
	o.upperdir = o.workdir = NULL;
	FMT(decoy, "%s/r,context=system_u:object_r:tmp_t:s0", workdir);
	o.upperdir = decoy;
	o.workdir = wd;
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == -EINVAL);
	CHECK_MSG(strstr(err.msg, "security module") != NULL, "LSM option: '%s'", err.msg);
	o.upperdir = "";
	o.workdir = "";
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == -EINVAL);
	CHECK_MSG(strstr(err.msg, "empty") != NULL, "empty upperdir: '%s'", err.msg);
	o.upperdir = o.workdir = NULL;
	/* Longer than the one page mount(2) passes on: the end would be lost. */
	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	for (size_t i = 200; i < sizeof(longdir) - 1; i += 200)
		longdir[i] = '/';
	longdir[4050] = '\0';
	dirs[0] = longdir;
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == -ENAMETOOLONG);
	CHECK_MSG(strstr(err.msg, "bytes") != NULL, "long options: '%s'", err.msg);
	check_clean(before, "refused legacy paths");
	close(fd);
	free(before);
}

static void test_image_mountdir(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	char *before = snapshot();
	struct stat st;

	o.image_mountdir = imgdir;
	CHECK(lcfs_mount_image(image, mnt, &o) == 0);
	CHECK(mounted_at(mnt, imgdir));
	/* The image mount itself is gone: only the overlay holds it. */
	CHECK(!mounted_at(imgdir, "erofs"));
	check_content("image_mountdir");
	unmount();
	CHECK(stat(imgdir, &st) == 0 && S_ISDIR(st.st_mode));
	/* A caller's directory survives a failure too. */
	errno = 0;
	CHECK(lcfs_mount_image(corrupt, mnt, &o) == -1 && errno == EINVAL);
	CHECK(stat(imgdir, &st) == 0 && S_ISDIR(st.st_mode));
	check_clean(before, "image_mountdir");
	free(before);
}

static void test_failure_cases(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	struct lcfs_error err;
	char *before = snapshot();
	char missing[600], notimage[600];
	int fd;

	/* Not a composefs image at all. */
	snprintf(notimage, sizeof(notimage), "%s/objects/plain", workdir);
	copy_file("/proc/self/mountinfo", notimage);
	errno = 0;
	CHECK(lcfs_mount_image(notimage, mnt, &o) == -1 && errno == EINVAL);
	/* The kernel refuses the EROFS part. */
	errno = 0;
	CHECK(lcfs_mount_image(corrupt, mnt, &o) == -1 && errno == EINVAL);
	check_clean(before, "bad images");

	/* A missing object directory: the error names it. */
	snprintf(missing, sizeof(missing), "%s/no-such-dir", workdir);
	dirs[0] = missing;
	fd = open(image, O_RDONLY | O_CLOEXEC);
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == -ENOENT);
	CHECK(strstr(err.msg, missing) != NULL);
	check_clean(before, "missing basedir");
	dirs[0] = objdir;

	/* A missing mount point. */
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, missing, &o, &err) == -ENOENT);
	CHECK(strstr(err.msg, missing) != NULL);
	check_clean(before, "missing mount point");

	/* overlayfs's own message comes back: upperdir inside workdir. */
	{
		char up[600], work[600];

		snprintf(work, sizeof(work), "%s/work", workdir);
		snprintf(up, sizeof(up), "%s/work/up", workdir);
		CHECK(mkdir(work, 0755) == 0 && mkdir(up, 0755) == 0);
		o.upperdir = up;
		o.workdir = work;
		memset(&err, 0, sizeof(err));
		CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) < 0);
		CHECK(err.msg[0] != '\0');
		printf("upperdir inside workdir: %s (%s)\n", strerror(err.err), err.msg);
		o.upperdir = NULL;
		o.workdir = NULL;
		check_clean(before, "upperdir inside workdir");
	}

	/* A wrong expected digest: this image file has no fs-verity. */
	o.expected_fsverity_digest =
		"0000000000000000000000000000000000000000000000000000000000000000";
	o.flags = LCFS_MOUNT_FLAGS_REQUIRE_VERITY;
	memset(&err, 0, sizeof(err));
	{
		int r = lcfs_mount_fd_ext(fd, mnt, &o, &err);

		CHECK(r == -ENOVERITY || r == -EWRONGVERITY);
	}
	check_clean(before, "wrong digest");
	/* An empty expected digest skips the image check but keeps verity
	 * required. */
	o.expected_fsverity_digest = "";
	memset(&err, 0, sizeof(err));
	if (lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0) {
		/* A kernel and filesystem with fs-verity. */
		CHECK(mounted_at(mnt, "verity=require"));
		unmount();
	} else {
		CHECK(err.err == ENOVERITY);
		CHECK(strstr(err.msg, "fs-verity") != NULL);
	}
	check_clean(before, "empty digest");
	/* tryverity mounts, with verity only where it is supported. */
	o.expected_fsverity_digest = NULL;
	o.flags = LCFS_MOUNT_FLAGS_TRY_VERITY;
	memset(&err, 0, sizeof(err));
	CHECK(lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0);
	check_content("tryverity");
	unmount();
	check_clean(before, "tryverity");
	close(fd);
	free(before);
}

/* A user namespace mapping ids 0..65535 to 100000..165535, held by a
 * child process that waits for us. Returns its ns fd. */
static int make_userns(pid_t *child)
{
	int ready[2], go[2];
	char path[64], map[] = "0 100000 65536\n";
	char c = 0;
	int fd, nsfd;

	if (pipe(ready) < 0 || pipe(go) < 0)
		fatal("pipe");
	*child = fork();
	if (*child < 0)
		fatal("fork");
	if (*child == 0) {
		close(ready[0]);
		close(go[1]);
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		if (read(go[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1) {
		close(go[1]);
		waitpid(*child, NULL, 0);
		return -1;
	}
	close(ready[0]);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)*child);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		fatal("uid_map");
	close(fd);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)*child);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		fatal("gid_map");
	close(fd);
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)*child);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	close(go[1]); /* the child exits; the ns fd keeps the namespace */
	waitpid(*child, NULL, 0);
	return nsfd;
}

static void test_idmap(void)
{
	const char *dirs[2];
	struct lcfs_mount_options_s o = default_options(dirs);
	struct lcfs_error err = { 0 };
	char *before = snapshot();
	char path[600];
	struct stat st;
	pid_t child;
	int nsfd = make_userns(&child);
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	if (nsfd < 0) {
		printf("idmap: SKIP (cannot create a user namespace)\n");
		free(before);
		close(fd);
		return;
	}
	o.flags = LCFS_MOUNT_FLAGS_IDMAP;
	o.idmap_fd = nsfd;
	if (lcfs_mount_fd_ext(fd, mnt, &o, &err) == 0) {
		/* Files owned by 0 in the image show as 100000. */
		snprintf(path, sizeof(path), "%s/inline", mnt);
		CHECK(stat(path, &st) == 0 && st.st_uid == 100000 && st.st_gid == 100000);
		check_content("idmap");
		unmount();
	} else {
		/* Kernels whose EROFS cannot be idmapped refuse it cleanly. */
		printf("idmap: not supported here: %s (%s)\n", strerror(err.err), err.msg);
		CHECK(err.err == EINVAL || err.err == EPERM || err.err == ENOTSUP);
	}
	check_clean(before, "idmap");
	close(nsfd);
	close(fd);
	free(before);
}

int main(void)
{
	setup();
	TEST_CASE(test_validation);
	TEST_CASE(test_mount_image);
	TEST_CASE(test_mount_fd_readonly);
	TEST_CASE(test_loop);
	TEST_CASE(test_legacy);
	TEST_CASE(test_legacy_paths);
	TEST_CASE(test_image_mountdir);
	TEST_CASE(test_failure_cases);
	TEST_CASE(test_idmap);
	return test_summary("test-mount-api");
}
