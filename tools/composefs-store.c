/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * composefs-store: check (fsck), collect garbage in (gc) and account for
 * (du) the object store that mkcomposefs --digest-store fills.
 *
 * A store is a directory with up to 256 subdirectories named by two
 * lowercase hex digits; each holds objects named by the other 62 hex
 * digits of the fs-verity digest of their content. The store root also
 * holds the lock file (lcfs_store_lock()) and, while a writer runs or
 * after one was killed, temporary files.
 *
 * Nothing below the store root is reached through a symlink: the scan
 * opens the subdirectories with O_NOFOLLOW relative to the root and the
 * objects with O_NOFOLLOW relative to their subdirectory, and a single
 * object is opened with lcfs_open_confined(), so a store that others can
 * write cannot send us elsewhere.
 *
 * Every subcommand takes the store lock: gc and fsck exclusively (gc
 * removes objects; fsck must not mistake a running writer's temporary
 * files for leftovers), du shared.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libcomposefs/lcfs-erofs.h"
#include "composefs-store.h"
#include "lcfs-fsverity.h"
#include "lcfs-tools.h"
#include "lcfs-walk.h"
#include "lcfs-store.h"
#include "store-fetch.h"
#include "toolutil.h"

/* Hex digits of an object's name inside its subdirectory. */
#define OBJECT_NAME_LEN (2 * LCFS_DIGEST_SIZE - 2)

/* Deepest directory that fsck --repair removes from a store. */
#define REMOVE_MAX_DEPTH 64

/* gc's default --keep-newer. */
#define DEFAULT_KEEP_NEWER (60 * 60)

/* Exit statuses of fsck. */
#define FSCK_CLEAN 0
#define FSCK_PROBLEMS 1
#define FSCK_FAILED 2

static int cmd_fsck(int argc, char **argv);
static int cmd_gc(int argc, char **argv);
static int cmd_du(int argc, char **argv);

/* One line per subcommand. One kept in a file of its own declares its
 * function in a header of its own or composefs-store.h, is listed here
 * and its file added to the composefs-store sources in meson.build. */
static const struct store_command commands[] = {
	{ "fsck", "[--repair] [--json] [--quiet] STORE [IMAGE...]",
	  "check every object's digest and what else is in the store", cmd_fsck },
	{ "gc", "[--dry-run] [--keep-newer=SECONDS] [--verbose] STORE ROOT...",
	  "remove the objects that no root uses", cmd_gc },
	{ "du", "[--json] STORE [IMAGE...]", "show the store's size and each image's share",
	  cmd_du },
	{ "fetch", "--from=URL [OPTIONS] STORE DIGEST|IMAGE...",
	  "fetch images and the objects they need from a remote store", store_fetch_main },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- Small helpers ----------------------------------------------------------- */

static void close_stdout(void)
{
	int r = tool_close_stdout();

	if (r < 0)
		tool_fail("cannot write to standard output: %s", strerror(-r));
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		tool_fail("%s", strerror(ENOMEM));
	return p;
}

/* Grows *@arr (of @size-byte elements, *@cap of them) to hold @n + 1. */
static void grow(void *arr, size_t *cap, size_t n, size_t size)
{
	void **p = arr;
	void *v = lcfs_array_reserve(*p, n, cap, size, 64);

	if (v == NULL)
		tool_fail("%s", strerror(ENOMEM));
	*p = v;
}

static bool is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, LCFS_DIGEST_SIZE);
}

/* Sorts the @n digests at @d and drops repeats; returns how many remain. */
static size_t sort_unique(uint8_t (*d)[LCFS_DIGEST_SIZE], size_t n)
{
	size_t out = 0;

	if (n == 0)
		return 0;
	qsort(d, n, LCFS_DIGEST_SIZE, cmp_digest);
	for (size_t i = 0; i < n; i++) {
		if (out == 0 || memcmp(d[out - 1], d[i], LCFS_DIGEST_SIZE) != 0)
			memcpy(d[out++], d[i], LCFS_DIGEST_SIZE);
	}
	return out;
}

/* "1234 bytes (1.2 KiB)" */
static const char *fmt_bytes(uint64_t n, char buf[64])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(buf, 64, "%" PRIu64 " bytes", n);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, 64, "%" PRIu64 " bytes (%.1f %s)", n, v, units[u]);
	return buf;
}

/* Length of the valid UTF-8 sequence at @s (at most @len bytes), 0 if
 * there is none. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f; /* no surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return n;
}

/* @s as a JSON string. Bytes that are not valid UTF-8 (names are bytes)
 * become the code points U+0080..U+00FF of the same value. */
static void json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	putc('"', out);
	for (size_t i = 0; i < len;) {
		size_t n = utf8_len(p + i, len - i);

		if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
			fprintf(out, "\\u%04x", p[i]);
			n = 1;
		} else if (p[i] == '"' || p[i] == '\\') {
			fprintf(out, "\\%c", p[i]);
		} else {
			fwrite(p + i, 1, n, out);
		}
		i += n;
	}
	putc('"', out);
}

/* A name from the store or the command line in a text line. */
static void print_name(FILE *out, const char *s)
{
	lcfs_print_escaped(out, s, strlen(s), LCFS_ESCAPE_RAW_SPACE);
}

/* ---- Opening the store ---------------------------------------------------------- */

int store_open_locked(const char *path, bool exclusive, bool optional, int *lockfd)
{
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	*lockfd = -1;
	if (dirfd < 0)
		return -errno;
	r = lcfs_store_lock(dirfd, exclusive);
	if (r >= 0) {
		*lockfd = r;
	} else if (!optional || (r != -EROFS && r != -EACCES)) {
		close(dirfd);
		return r;
	}
	return dirfd;
}

/* ---- Scanning the store ------------------------------------------------------------ */

enum problem_kind {
	P_CORRUPT,    /* content does not have the digest of its name */
	P_UNREADABLE, /* the content could not be read */
	P_TEMPORARY,  /* a writer's temporary file */
	P_WRONG_NAME, /* a name that no object or subdirectory has */
	P_WRONG_TYPE, /* an object that is no regular file, a subdirectory that is none */
	P_SYMLINK,    /* a symbolic link */
	P_MISSING,    /* an object an image needs is absent */
	P_BAD_IMAGE,  /* an image given does not load */
};

static const char *const kind_names[] = {
	[P_CORRUPT] = "corrupt",       [P_UNREADABLE] = "unreadable",
	[P_TEMPORARY] = "temporary",   [P_WRONG_NAME] = "wrong-name",
	[P_WRONG_TYPE] = "wrong-type", [P_SYMLINK] = "symlink",
	[P_MISSING] = "missing",       [P_BAD_IMAGE] = "bad-image",
};

struct problem {
	enum problem_kind kind;
	char *path;   /* relative to the store, or the image's name */
	char *detail;
	int parent;   /* subdirectory index of the entry, -1 for the root */
	bool is_dir;  /* the entry is a directory (removed recursively) */
	bool removed; /* by --repair */
};

enum object_state {
	OBJ_UNCHECKED,
	OBJ_GOOD,
	OBJ_CORRUPT,
	OBJ_UNREADABLE,
	OBJ_LARGE, /* fsck: to be checked in parts */
};

struct object {
	uint8_t digest[LCFS_DIGEST_SIZE];
	uint64_t size;      /* apparent */
	uint64_t allocated; /* st_blocks in bytes */
	int64_t changed;    /* the later of mtime and ctime */
	uint8_t state;      /* enum object_state, set by fsck */
	int err;            /* OBJ_UNREADABLE: errno */
	uint8_t actual[LCFS_DIGEST_SIZE]; /* OBJ_CORRUPT: the content's digest */
};

struct store {
	const char *path; /* as given */
	char *failed_path; /* what could not be opened or read */
	int dirfd;
	int lockfd;
	int subdir_fd[256]; /* -1 where there is none */
	bool sizes;         /* the scan stats objects (else size etc. are 0) */
	struct object *objects; /* sorted by digest after the scan */
	size_t n_objects, cap_objects;
	struct problem *problems;
	size_t n_problems, cap_problems;
};

static void add_problem(struct store *st, enum problem_kind kind, int parent,
			const char *name, bool is_dir, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void add_problem(struct store *st, enum problem_kind kind, int parent,
			const char *name, bool is_dir, const char *fmt, ...)
{
	struct problem *p;
	va_list ap;
	int r;

	grow(&st->problems, &st->cap_problems, st->n_problems, sizeof(*p));
	p = &st->problems[st->n_problems];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->parent = parent;
	p->is_dir = is_dir;
	if (parent >= 0)
		r = asprintf(&p->path, "%02x/%s", (unsigned)parent, name);
	else
		r = asprintf(&p->path, "%s", name);
	if (r < 0)
		tool_fail("%s", strerror(ENOMEM));
	va_start(ap, fmt);
	r = vasprintf(&p->detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		tool_fail("%s", strerror(ENOMEM));
	st->n_problems++;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFLNK:
		return "a symbolic link";
	case S_IFIFO:
		return "a FIFO";
	case S_IFSOCK:
		return "a socket";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	default:
		return "of unknown type";
	}
}

static int64_t changed_time(const struct stat *sb)
{
	return sb->st_mtime > sb->st_ctime ? (int64_t)sb->st_mtime : (int64_t)sb->st_ctime;
}

/* Opens @name in @dirfd for reading; never through a symlink. */
static DIR *open_dir_nofollow(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (d == NULL) {
		int err = errno;

		close(fd);
		errno = err;
	}
	return d;
}

/* Entries of subdirectory @idx (open as @d). 0 or -errno. */
static int scan_subdir(struct store *st, unsigned idx, DIR *d)
{
	int dfd = dirfd(d);

	for (;;) {
		struct dirent *de;
		struct stat sb;
		struct object *o;
		char hex[2 * LCFS_DIGEST_SIZE + 1];
		bool name_ok;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
			return errno ? -errno : 0;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		name_ok = strlen(de->d_name) == OBJECT_NAME_LEN &&
			  is_lower_hex(de->d_name, OBJECT_NAME_LEN);
		if (!st->sizes && name_ok && de->d_type == DT_REG) {
			/* What the name and type say is enough here: fsck
			 * looks at each object's type again when it opens
			 * it, and takes its size from there. */
			memset(&sb, 0, sizeof(sb));
			sb.st_mode = S_IFREG;
		} else if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (S_ISLNK(sb.st_mode)) {
			add_problem(st, P_SYMLINK, (int)idx, de->d_name, false,
				    "a symbolic link, not an object");
			continue;
		}
		if (!name_ok) {
			add_problem(st, P_WRONG_NAME, (int)idx, de->d_name, S_ISDIR(sb.st_mode),
				    "%s whose name is not a digest", type_name(sb.st_mode));
			continue;
		}
		if (!S_ISREG(sb.st_mode)) {
			add_problem(st, P_WRONG_TYPE, (int)idx, de->d_name, S_ISDIR(sb.st_mode),
				    "%s, not a regular file", type_name(sb.st_mode));
			continue;
		}
		grow(&st->objects, &st->cap_objects, st->n_objects, sizeof(*o));
		o = &st->objects[st->n_objects++];
		memset(o, 0, sizeof(*o));
		snprintf(hex, sizeof(hex), "%02x%s", idx, de->d_name);
		if (lcfs_digest_from_hex(hex, strlen(hex), o->digest) < 0)
			return -EINVAL; /* cannot happen: checked above */
		o->size = (uint64_t)sb.st_size;
		o->allocated = (uint64_t)sb.st_blocks * 512;
		o->changed = changed_time(&sb);
	}
}

/* Opens the store and lists everything in it: objects in st->objects,
 * entries that do not belong in st->problems. Without @sizes, the objects'
 * sizes, allocations and times are left 0 where the directory tells their
 * type. 0 or -errno (the failing path in @what). */
static int store_scan(struct store *st, const char *path, bool exclusive, bool optional,
		      bool sizes, const char **what)
{
	cleanup_free char *sub = NULL;
	DIR *d;
	int r = 0;

	memset(st, 0, sizeof(*st));
	st->path = path;
	st->sizes = sizes;
	for (size_t i = 0; i < 256; i++)
		st->subdir_fd[i] = -1;
	*what = path;
	st->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0)
		return -errno;
	close(st->dirfd);
	st->dirfd = store_open_locked(path, exclusive, optional, &st->lockfd);
	if (st->dirfd < 0) {
		/* The directory opened: the lock file is the trouble. */
		if (asprintf(&st->failed_path, "%s/%s", path, LCFS_STORE_LOCK_NAME) >= 0)
			*what = st->failed_path;
		return st->dirfd;
	}
	d = open_dir_nofollow(st->dirfd, ".");
	if (d == NULL)
		return -errno;
	while (r == 0) {
		struct dirent *de;
		struct stat sb;
		const char *name;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			r = errno ? -errno : 0;
			break;
		}
		name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = -errno;
			continue;
		}
		if (S_ISLNK(sb.st_mode)) {
			add_problem(st, P_SYMLINK, -1, name, false, "a symbolic link in the store");
		} else if (strcmp(name, LCFS_STORE_LOCK_NAME) == 0) {
			if (!S_ISREG(sb.st_mode))
				add_problem(st, P_WRONG_TYPE, -1, name, S_ISDIR(sb.st_mode),
					    "the lock file is %s", type_name(sb.st_mode));
		} else if (strlen(name) == 2 && is_lower_hex(name, 2)) {
			unsigned idx = (unsigned)strtoul(name, NULL, 16);
			DIR *sd;

			if (!S_ISDIR(sb.st_mode)) {
				add_problem(st, P_WRONG_TYPE, -1, name, false,
					    "%s, not a directory", type_name(sb.st_mode));
				continue;
			}
			sd = open_dir_nofollow(st->dirfd, name);
			if (sd == NULL) {
				r = -errno;
				free(sub);
				sub = strdup(name);
				break;
			}
			r = scan_subdir(st, idx, sd);
			if (r == 0) {
				st->subdir_fd[idx] = dup(dirfd(sd));
				if (st->subdir_fd[idx] < 0)
					r = -errno;
			}
			if (r < 0) {
				free(sub);
				sub = strdup(name);
			}
			closedir(sd);
		} else if (strncmp(name, LCFS_STORE_TMP_PREFIX,
				   strlen(LCFS_STORE_TMP_PREFIX)) == 0 &&
			   S_ISREG(sb.st_mode)) {
			add_problem(st, P_TEMPORARY, -1, name, false,
				    "a temporary file left by an interrupted writer");
		} else {
			add_problem(st, P_WRONG_NAME, -1, name, S_ISDIR(sb.st_mode),
				    "%s that does not belong in a store", type_name(sb.st_mode));
		}
	}
	closedir(d);
	if (r < 0 && sub != NULL && asprintf(&st->failed_path, "%s/%s", path, sub) >= 0)
		*what = st->failed_path;
	if (r == 0 && st->n_objects > 0)
		qsort(st->objects, st->n_objects, sizeof(*st->objects), cmp_digest);
	return r;
}

static struct object *find_object(struct store *st, const uint8_t digest[LCFS_DIGEST_SIZE])
{
	if (st->n_objects == 0)
		return NULL;
	return bsearch(digest, st->objects, st->n_objects, sizeof(*st->objects), cmp_digest);
}

/* The name of @o inside its subdirectory. */
static void object_name(const struct object *o, char name[OBJECT_NAME_LEN + 1])
{
	char hex[2 * LCFS_DIGEST_SIZE + 1];

	lcfs_digest_to_hex(o->digest, hex);
	memcpy(name, hex + 2, OBJECT_NAME_LEN + 1);
}

static void store_release(struct store *st)
{
	for (size_t i = 0; i < 256; i++) {
		if (st->subdir_fd[i] >= 0)
			close(st->subdir_fd[i]);
	}
	for (size_t i = 0; i < st->n_problems; i++) {
		free(st->problems[i].path);
		free(st->problems[i].detail);
	}
	free(st->problems);
	free(st->objects);
	free(st->failed_path);
	if (st->dirfd >= 0)
		close(st->dirfd);
	if (st->lockfd >= 0)
		close(st->lockfd); /* releases the lock */
}

/* ---- Images and roots ---------------------------------------------------------------- */

struct image {
	char *name;  /* as given, or DIR/NAME for a directory's images */
	uint8_t (*digests)[LCFS_DIGEST_SIZE]; /* objects it needs, sorted, each once */
	size_t n, cap;
	size_t n_foreign; /* backing files not named like objects */
	bool in_store;    /* the image is itself an object (digest root) */
	uint8_t self[LCFS_DIGEST_SIZE];
	char *error;      /* why it did not load, NULL if it did */
};

struct image_list {
	struct image *items;
	size_t n, cap;
};

/* "xx/" + 62 hex digits, with any leading slashes: the digest. */
static bool payload_digest(const char *payload, uint8_t digest[LCFS_DIGEST_SIZE])
{
	while (*payload == '/')
		payload++;
	return lcfs_digest_from_object_path(payload, digest);
}

static int collect_digest(struct lcfs_walk *w, void *data)
{
	struct image *img = data;
	const char *payload = tool_node_backing_file(w->node);

	if (payload == NULL)
		return 0;
	grow(&img->digests, &img->cap, img->n, LCFS_DIGEST_SIZE);
	if (payload_digest(payload, img->digests[img->n]))
		img->n++;
	else
		img->n_foreign++;
	return 0;
}

static struct image *add_image(struct image_list *l, const char *name)
{
	struct image *img;

	grow(&l->items, &l->cap, l->n, sizeof(*img));
	img = &l->items[l->n++];
	memset(img, 0, sizeof(*img));
	img->name = strdup(name);
	if (img->name == NULL)
		tool_fail("%s", strerror(ENOMEM));
	return img;
}

static void image_failed(struct image *img, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void image_failed(struct image *img, const char *fmt, ...)
{
	va_list ap;

	free(img->error);
	va_start(ap, fmt);
	if (vasprintf(&img->error, fmt, ap) < 0)
		tool_fail("%s", strerror(ENOMEM));
	va_end(ap);
}

/* Loads the image in @fd (taken) into @img: its objects, sorted. */
static void image_read(struct image *img, int fd)
{
	struct lcfs_error err = { 0 };
	struct lcfs_node_s *root = tool_image_load(fd, NULL, &err);
	int r;

	close(fd);
	if (root == NULL) {
		char buf[1024];

		lcfs_error_format(&err, buf, sizeof(buf));
		image_failed(img, "cannot load: %s", buf);
		return;
	}
	r = lcfs_walk_tree(root, 0, collect_digest, img);
	lcfs_node_unref(root);
	if (r < 0) {
		image_failed(img, "cannot list: %s", strerror(-r));
		return;
	}
	img->n = sort_unique(img->digests, img->n);
}

/* Opens object @digest of the store, never through a symlink. */
static int open_object(int store_dirfd, const uint8_t digest[LCFS_DIGEST_SIZE])
{
	char path[LCFS_STORE_PATH_SIZE];

	lcfs_store_object_path(digest, path);
	return lcfs_open_confined(store_dirfd, path,
				  O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

/* Whether the file @fd starts like a composefs image. */
static bool has_image_magic(int fd)
{
	uint8_t buf[4];

	if (lcfs_pread_exact(fd, buf, sizeof(buf), 0) < 0)
		return false;
	return ((uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
		(uint32_t)buf[3] << 24) == LCFS_EROFS_MAGIC;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in the directory @fd (taken) that starts like an
 * image, in name order; symlinks to images count. */
static void add_directory(struct image_list *l, const char *dir, int fd)
{
	DIR *d = fdopendir(fd);
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (d == NULL)
		tool_fail("cannot read directory '%s': %s", dir, strerror(errno));
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno)
				tool_fail("cannot read directory '%s': %s", dir, strerror(errno));
			break;
		}
		if (de->d_name[0] == '.')
			continue; /* hidden, such as a tool's temporary output */
		grow(&names, &cap, n, sizeof(*names));
		names[n] = strdup(de->d_name);
		if (names[n] == NULL)
			tool_fail("%s", strerror(ENOMEM));
		n++;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_strp);
	for (size_t i = 0; i < n; i++) {
		int ifd = openat(dirfd(d), names[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		cleanup_free char *name = NULL;
		struct stat sb;

		if (asprintf(&name, "%s/%s", dir, names[i]) < 0)
			tool_fail("%s", strerror(ENOMEM));
		free(names[i]);
		if (ifd < 0) {
			/* A dangling symlink or a vanished file is no image. */
			if (errno == ENOENT)
				continue;
			image_failed(add_image(l, name), "cannot open: %s", strerror(errno));
			continue;
		}
		if (fstat(ifd, &sb) < 0 || !S_ISREG(sb.st_mode) || !has_image_magic(ifd)) {
			close(ifd);
			continue;
		}
		image_read(add_image(l, name), ifd);
	}
	free(names);
	closedir(d);
}

/* The images named by @args: an image file, a directory of images, or the
 * digest of an image kept in the store itself. Images that do not load
 * carry their error. */
static void load_images(struct image_list *l, int store_dirfd, char **args, int n_args)
{
	for (int i = 0; i < n_args; i++) {
		const char *arg = args[i];
		uint8_t digest[LCFS_DIGEST_SIZE];
		struct stat sb;
		int fd;

		if (lcfs_digest_from_hex(arg, strlen(arg), digest) == 0) {
			fd = open_object(store_dirfd, digest);
			if (fd >= 0) {
				struct image *img = add_image(l, arg);

				img->in_store = true;
				memcpy(img->self, digest, LCFS_DIGEST_SIZE);
				if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
					close(fd);
					image_failed(img, "the object is not a regular file");
					continue;
				}
				image_read(img, fd);
				continue;
			}
			/* Not in the store: perhaps a file of that name. */
		}
		fd = open(arg, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			image_failed(add_image(l, arg), "cannot open: %s", strerror(errno));
			continue;
		}
		if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			add_directory(l, arg, fd);
			continue;
		}
		image_read(add_image(l, arg), fd);
	}
}

static void images_free(struct image_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].name);
		free(l->items[i].digests);
		free(l->items[i].error);
	}
	free(l->items);
}

/* ---- Common option handling ------------------------------------------------------- */

void store_command_usage(FILE *out, const char *name, const char *options)
{
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0)
			fprintf(out, "Usage: %s %s %s\n%s.\n", tool_prog, name,
				commands[i].synopsis, commands[i].summary);
	}
	fprintf(out, "\nOptions:\n%s", options);
}

/* The getopt error path of every subcommand. */
static int try_help(const char *name)
{
	fprintf(stderr, "Try '%s %s --help' for more information.\n", tool_prog, name);
	return EXIT_FAILURE;
}

/* ---- fsck --------------------------------------------------------------------------------- */

/*
 * Objects are checked on all CPUs from a queue of tasks, in two rounds.
 * The first checks every object in the order of the scan, which knows no
 * sizes (a stat of each object there would cost as much as the open that
 * the check needs anyway), and leaves out those larger than SPLIT_MIN.
 * The second checks these in parts of PART_SIZE bytes, largest first,
 * each part a task of its own: a part yields the hashes of its groups (see
 * lcfs_fsverity_file_hasher_groups()), and whoever finishes an object's
 * last part computes its digest from them. No single object can then keep
 * one CPU busy while the others have nothing left to do.
 */
#define PART_SIZE (4 * 1024 * 1024)
#define SPLIT_MIN (2 * PART_SIZE)

_Static_assert(PART_SIZE % LCFS_FSVERITY_GROUP_SIZE == 0, "parts are whole groups");

/* The check of an object in parts. */
struct split_check {
	uint8_t (*groups)[LCFS_DIGEST_SIZE]; /* one per group of the object */
	atomic_size_t parts_left;
	atomic_int err;        /* the first part's read error, 0 if none */
	atomic_bool redo;      /* check it whole: changed, or has fs-verity */
};

struct fsck_task {
	struct object *o;
	struct split_check *split; /* NULL: the whole object */
	size_t part;
};

struct fsck_run {
	struct store *st;
	struct fsck_task *tasks;
	size_t n_tasks;
	bool defer_large;            /* first round: leave large objects out */
	atomic_size_t next;          /* next task */
	atomic_size_t done;          /* objects checked */
	_Atomic uint64_t bytes_done; /* their size */
	atomic_uint running;         /* workers not finished */
};

#ifndef STATX_ATTR_VERITY
#define STATX_ATTR_VERITY 0x00100000
#endif

/* Type and size of the open object @fd, and whether it may have fs-verity
 * (false when the kernel says that it has none, which spares asking for a
 * measurement). One system call. 0 or -errno. */
static int object_stat(int fd, mode_t *mode, uint64_t *size, bool *maybe_verity)
{
	struct statx stx;
	struct stat sb;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_TYPE | STATX_SIZE,
		  &stx) == 0) {
		*mode = stx.stx_mode;
		*size = stx.stx_size;
		*maybe_verity = !(stx.stx_attributes_mask & STATX_ATTR_VERITY) ||
				(stx.stx_attributes & STATX_ATTR_VERITY);
		return 0;
	}
	if (errno != ENOSYS)
		return -errno;
	if (fstat(fd, &sb) < 0)
		return -errno;
	*mode = sb.st_mode;
	*size = (uint64_t)sb.st_size;
	*maybe_verity = true;
	return 0;
}

/* Opens object @o of the store: relative to its subdirectory, never
 * through a symlink. The fd, or -errno. */
static int open_store_object(struct store *st, const struct object *o)
{
	char name[OBJECT_NAME_LEN + 1];
	int fd;

	object_name(o, name);
	fd = openat(st->subdir_fd[o->digest[0]], name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

static void set_result(struct object *o, int r, const uint8_t digest[LCFS_DIGEST_SIZE])
{
	if (r < 0) {
		o->state = OBJ_UNREADABLE;
		o->err = -r;
	} else if (memcmp(digest, o->digest, LCFS_DIGEST_SIZE) != 0) {
		o->state = OBJ_CORRUPT;
		memcpy(o->actual, digest, LCFS_DIGEST_SIZE);
	} else {
		o->state = OBJ_GOOD;
	}
}

/* The digest of object @o: the kernel's measurement where the object has
 * fs-verity (its content cannot differ from it), computed otherwise. With
 * @defer_large, an object to compute that is larger than SPLIT_MIN is only
 * marked OBJ_LARGE, with its size. */
static void check_object(struct store *st, struct object *o,
			 struct lcfs_fsverity_file_hasher *h, bool defer_large)
{
	uint8_t digest[LCFS_DIGEST_SIZE] = { 0 };
	bool maybe_verity;
	uint64_t size;
	mode_t mode;
	int fd, r;

	fd = open_store_object(st, o);
	if (fd < 0) {
		set_result(o, fd, digest);
		return;
	}
	r = object_stat(fd, &mode, &size, &maybe_verity);
	if (r == 0 && !S_ISREG(mode))
		r = -EINVAL; /* replaced since the scan */
	if (r == 0) {
		r = maybe_verity ? lcfs_fd_measure_fsverity(digest, fd) : -ENOVERITY;
		if ((r == -ENOVERITY || r == -EWRONGVERITY) && defer_large &&
		    size > SPLIT_MIN) {
			o->size = size;
			o->state = OBJ_LARGE;
			close(fd);
			return;
		}
		if (r == -ENOVERITY || r == -EWRONGVERITY) {
			if (size > LCFS_FSVERITY_GROUP_SIZE)
				(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			r = lcfs_fsverity_file_hasher_digest(h, fd, size, digest);
		}
		o->size = size;
	}
	close(fd);
	set_result(o, r, digest);
}

/* Part @part of the object @o that is checked in parts (@sc). Returns
 * whether that was the object's last part. */
static bool check_part(struct store *st, struct object *o, struct split_check *sc,
		       size_t part, struct lcfs_fsverity_file_hasher *h)
{
	uint64_t off = (uint64_t)part * PART_SIZE;
	uint64_t len = o->size - off < PART_SIZE ? o->size - off : PART_SIZE;
	bool maybe_verity;
	uint64_t size;
	mode_t mode;
	int fd, r;

	if (atomic_load(&sc->redo) || atomic_load(&sc->err) != 0)
		goto out;
	fd = open_store_object(st, o);
	if (fd < 0) {
		r = fd;
	} else {
		r = object_stat(fd, &mode, &size, &maybe_verity);
		/* Another type or size than the scan saw, or fs-verity (whose
		 * measurement is cheaper): the object is checked whole. */
		if (r == 0 && (!S_ISREG(mode) || size != o->size || maybe_verity)) {
			atomic_store(&sc->redo, true);
		} else if (r == 0) {
			(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_SEQUENTIAL);
			r = lcfs_fsverity_file_hasher_groups(
				h, fd, off, len, sc->groups + off / LCFS_FSVERITY_GROUP_SIZE);
		}
		close(fd);
	}
	if (r < 0) {
		int expected = 0;

		atomic_compare_exchange_strong(&sc->err, &expected, -r);
	}
out:
	return atomic_fetch_sub(&sc->parts_left, 1) == 1;
}

/* After the last part of @o: its digest from the parts' group hashes. */
static void finish_split(struct store *st, struct object *o, struct split_check *sc,
			 struct lcfs_fsverity_file_hasher *h)
{
	uint8_t digest[LCFS_DIGEST_SIZE] = { 0 };
	int r;

	if (atomic_load(&sc->redo)) {
		check_object(st, o, h, false);
		return;
	}
	r = -atomic_load(&sc->err);
	if (r == 0)
		r = lcfs_fsverity_digest_from_groups(
			(const uint8_t(*)[LCFS_DIGEST_SIZE])sc->groups, o->size, digest);
	set_result(o, r, digest);
}

static void *fsck_worker(void *arg)
{
	struct fsck_run *run = arg;
	struct lcfs_fsverity_file_hasher *h = lcfs_fsverity_file_hasher_new();

	if (h == NULL)
		tool_fail("%s", strerror(ENOMEM));
	for (;;) {
		size_t i = atomic_fetch_add(&run->next, 1);
		struct fsck_task *t;

		if (i >= run->n_tasks)
			break;
		t = &run->tasks[i];
		if (t->split == NULL) {
			check_object(run->st, t->o, h, run->defer_large);
			if (t->o->state != OBJ_LARGE) {
				atomic_fetch_add(&run->bytes_done, t->o->size);
				atomic_fetch_add(&run->done, 1);
			}
			continue;
		}
		if (check_part(run->st, t->o, t->split, t->part, h)) {
			finish_split(run->st, t->o, t->split, h);
			atomic_fetch_add(&run->done, 1);
		}
		atomic_fetch_add(&run->bytes_done,
				 t->o->size - (uint64_t)t->part * PART_SIZE < PART_SIZE ?
					 t->o->size - (uint64_t)t->part * PART_SIZE :
					 PART_SIZE);
	}
	lcfs_fsverity_file_hasher_free(h);
	atomic_fetch_sub(&run->running, 1);
	return NULL;
}

static int cmp_size_desc(const void *a, const void *b)
{
	const struct object *x = *(struct object *const *)a, *y = *(struct object *const *)b;

	return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

/* The second round's tasks: the parts of every OBJ_LARGE object of @st,
 * largest first, their state in *@splits. */
static void plan_parts(struct store *st, struct fsck_run *run, struct split_check **splits,
		       size_t *n_splits)
{
	struct object **order;
	size_t n_tasks = 0, n_large = 0, t = 0;

	for (size_t i = 0; i < st->n_objects; i++) {
		if (st->objects[i].state != OBJ_LARGE)
			continue;
		n_tasks += (size_t)((st->objects[i].size + PART_SIZE - 1) / PART_SIZE);
		n_large++;
	}
	order = xcalloc(n_large, sizeof(*order));
	for (size_t i = 0, k = 0; i < st->n_objects; i++) {
		if (st->objects[i].state == OBJ_LARGE)
			order[k++] = &st->objects[i];
	}
	if (n_large > 0)
		qsort(order, n_large, sizeof(*order), cmp_size_desc);
	run->tasks = xcalloc(n_tasks, sizeof(*run->tasks));
	*splits = xcalloc(n_large, sizeof(**splits));
	for (size_t i = 0; i < n_large; i++) {
		struct object *o = order[i];
		struct split_check *sc = &(*splits)[i];
		size_t parts = (size_t)((o->size + PART_SIZE - 1) / PART_SIZE);

		sc->groups = xcalloc((size_t)((o->size + LCFS_FSVERITY_GROUP_SIZE - 1) /
					      LCFS_FSVERITY_GROUP_SIZE),
				     LCFS_DIGEST_SIZE);
		atomic_init(&sc->parts_left, parts);
		atomic_init(&sc->err, 0);
		atomic_init(&sc->redo, false);
		for (size_t p = 0; p < parts; p++)
			run->tasks[t++] = (struct fsck_task){ .o = o, .split = sc, .part = p };
	}
	free(order);
	run->n_tasks = n_tasks;
	*n_splits = n_large;
}

/* Runs the tasks of @run on all CPUs; meanwhile loads the images @args
 * into @images when @images is not NULL, then keeps the progress line
 * (objects of @n_objects) up to date if @progress. */
static void run_tasks(struct fsck_run *run, size_t n_objects, struct tool_progress *line,
		      bool progress, struct image_list *images, char **args, int n_args)
{
	unsigned n_threads = lcfs_cpu_count();
	pthread_t *threads;
	unsigned started = 0;

	if (n_threads > run->n_tasks)
		n_threads = run->n_tasks > 0 ? (unsigned)run->n_tasks : 1;
	threads = xcalloc(n_threads, sizeof(*threads));
	atomic_store(&run->next, 0);
	atomic_store(&run->running, n_threads);
	for (unsigned i = 0; i < n_threads; i++) {
		if (pthread_create(&threads[i], NULL, fsck_worker, run) != 0)
			break;
		started++;
	}
	atomic_fetch_sub(&run->running, n_threads - started);
	if (started == 0)
		fsck_worker(run); /* no threads to be had: do it here */
	if (images != NULL)
		load_images(images, run->st->dirfd, args, n_args);
	while (atomic_load(&run->running) > 0) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		/* The total size is known only at the end. */
		if (progress)
			tool_progress_update(line, "objects", atomic_load(&run->done), n_objects,
					     atomic_load(&run->bytes_done), 0);
		nanosleep(&ts, NULL);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
}

/* Checks every object on all CPUs, with a progress line if @progress, and
 * loads the images @args into @images meanwhile. */
static void check_objects(struct store *st, bool progress, struct image_list *images,
			  char **args, int n_args)
{
	struct fsck_run run = { .st = st, .defer_large = true };
	struct tool_progress line = { 0 };
	struct split_check *splits;
	uint64_t bytes_total = 0;
	size_t n_splits;

	run.tasks = xcalloc(st->n_objects, sizeof(*run.tasks));
	for (size_t i = 0; i < st->n_objects; i++)
		run.tasks[i].o = &st->objects[i];
	run.n_tasks = st->n_objects;
	run_tasks(&run, st->n_objects, &line, progress, images, args, n_args);
	free(run.tasks);

	run.defer_large = false;
	plan_parts(st, &run, &splits, &n_splits);
	if (run.n_tasks > 0)
		run_tasks(&run, st->n_objects, &line, progress, NULL, NULL, 0);
	for (size_t i = 0; i < n_splits; i++)
		free(splits[i].groups);
	free(splits);
	free(run.tasks);
	if (progress) {
		for (size_t i = 0; i < st->n_objects; i++)
			bytes_total += st->objects[i].size;
		tool_progress_update(&line, "objects", st->n_objects, st->n_objects,
				     bytes_total, bytes_total);
		tool_progress_clear(&line);
	}
}

/* Removes the directory @name in @parent and everything in it, without
 * following symlinks. 0 or -errno. */
static int remove_tree(int parent, const char *name, int depth)
{
	DIR *d;
	int r = 0;

	if (depth > REMOVE_MAX_DEPTH)
		return -ELOOP;
	d = open_dir_nofollow(parent, name);
	if (d == NULL)
		return -errno;
	for (;;) {
		struct dirent *de;
		struct stat sb;

		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno)
				r = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			r = remove_tree(dirfd(d), de->d_name, depth + 1);
		else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
		if (r < 0)
			break;
	}
	closedir(d);
	if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

/* Removes what problem @p names. 0 or -errno. */
static int repair(struct store *st, struct problem *p)
{
	int dirfd = p->parent >= 0 ? st->subdir_fd[p->parent] : st->dirfd;
	const char *name = p->parent >= 0 ? p->path + 3 : p->path;

	if (p->kind == P_MISSING || p->kind == P_BAD_IMAGE || dirfd < 0)
		return -EINVAL;
	if (p->is_dir)
		return remove_tree(dirfd, name, 0);
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Problems from the objects' checks and the images. */
static void add_check_problems(struct store *st, struct image_list *images)
{
	char name[OBJECT_NAME_LEN + 1];
	char hex[2 * LCFS_DIGEST_SIZE + 1];

	for (size_t i = 0; i < st->n_objects; i++) {
		struct object *o = &st->objects[i];

		object_name(o, name);
		if (o->state == OBJ_CORRUPT) {
			lcfs_digest_to_hex(o->actual, hex);
			add_problem(st, P_CORRUPT, o->digest[0], name, false,
				    "the content's digest is %s", hex);
		} else if (o->state == OBJ_UNREADABLE) {
			add_problem(st, P_UNREADABLE, o->digest[0], name, false,
				    "cannot read: %s", strerror(o->err));
		}
	}
	for (size_t i = 0; i < images->n; i++) {
		struct image *img = &images->items[i];

		if (img->error != NULL) {
			add_problem(st, P_BAD_IMAGE, -1, img->name, false, "%s", img->error);
			continue;
		}
		for (size_t j = 0; j < img->n; j++) {
			struct object *o = find_object(st, img->digests[j]);

			if (o != NULL && o->state == OBJ_GOOD)
				continue;
			lcfs_digest_to_hex(img->digests[j], hex);
			add_problem(st, P_MISSING, img->digests[j][0], hex + 2, false,
				    o == NULL ? "needed by '%s', absent" :
						"needed by '%s', damaged",
				    img->name);
		}
	}
}

static void fsck_print_json(struct store *st, struct image_list *images, bool repaired)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < st->n_objects; i++)
		bytes += st->objects[i].size;
	printf("{\"store\": ");
	json_string(stdout, st->path);
	printf(", \"objects\": %zu, \"bytes\": %" PRIu64 ", \"clean\": %s, \"repair\": %s",
	       st->n_objects, bytes, st->n_problems == 0 ? "true" : "false",
	       repaired ? "true" : "false");
	printf(", \"problems\": [");
	for (size_t i = 0; i < st->n_problems; i++) {
		struct problem *p = &st->problems[i];

		printf("%s\n  {\"kind\": \"%s\", \"path\": ", i ? "," : "", kind_names[p->kind]);
		json_string(stdout, p->path);
		printf(", \"detail\": ");
		json_string(stdout, p->detail);
		printf(", \"removed\": %s}", p->removed ? "true" : "false");
	}
	printf("%s], \"images\": [", st->n_problems ? "\n" : "");
	for (size_t i = 0; i < images->n; i++) {
		struct image *img = &images->items[i];
		size_t missing = 0;

		for (size_t j = 0; j < img->n; j++) {
			struct object *o = find_object(st, img->digests[j]);

			missing += o == NULL || o->state != OBJ_GOOD;
		}
		printf("%s\n  {\"image\": ", i ? "," : "");
		json_string(stdout, img->name);
		printf(", \"loads\": %s, \"objects\": %zu, \"missing_objects\": %zu}",
		       img->error == NULL ? "true" : "false", img->n, missing);
	}
	printf("%s]}\n", images->n ? "\n" : "");
}

static void fsck_print_text(struct store *st, bool repair_asked)
{
	uint64_t bytes = 0;
	size_t removed = 0;
	char b[64];

	for (size_t i = 0; i < st->n_problems; i++) {
		struct problem *p = &st->problems[i];

		printf("%s: ", kind_names[p->kind]);
		print_name(stdout, p->path);
		printf(": ");
		print_name(stdout, p->detail);
		printf("%s\n", p->removed ? " (removed)" : "");
		removed += p->removed;
	}
	for (size_t i = 0; i < st->n_objects; i++)
		bytes += st->objects[i].size;
	printf("checked %zu objects, %s: ", st->n_objects, fmt_bytes(bytes, b));
	if (st->n_problems == 0)
		printf("clean\n");
	else if (repair_asked)
		printf("%zu problems, %zu removed\n", st->n_problems, removed);
	else
		printf("%zu problems\n", st->n_problems);
}

static int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_list images = { 0 };
	bool do_repair = false, json = false, quiet = false, repair_failed = false;
	struct store st;
	const char *what;
	int c, r, status;

	/* Whatever stops the check (a directory of images that cannot be
	 * read, no memory) is a failed check. */
	tool_fail_status = FSCK_FAILED;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			do_repair = true;
			break;
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			store_command_usage(stdout, "fsck",
					    "  --repair   remove what is corrupt or does not belong\n"
					    "  --json     print one JSON report\n"
					    "  --quiet    no progress line on a terminal\n"
					    "  --help     show this help and exit\n"
					    "\nExit status: 0 clean, 1 problems found, 2 the check "
					    "failed.\n");
			close_stdout();
			return EXIT_SUCCESS;
		default:
			try_help("fsck");
			return FSCK_FAILED;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no store specified\n", tool_prog);
		try_help("fsck");
		return FSCK_FAILED;
	}

	r = store_scan(&st, argv[optind], true, !do_repair, false, &what);
	if (r < 0) {
		fprintf(stderr, "%s: cannot read store '%s': %s\n", tool_prog, what,
			strerror(-r));
		store_release(&st);
		return FSCK_FAILED;
	}
	check_objects(&st, !quiet && isatty(STDERR_FILENO), &images, argv + optind + 1,
		      argc - optind - 1);
	add_check_problems(&st, &images);

	if (do_repair) {
		for (size_t i = 0; i < st.n_problems; i++) {
			struct problem *p = &st.problems[i];

			if (p->kind == P_MISSING || p->kind == P_BAD_IMAGE)
				continue;
			r = repair(&st, p);
			if (r < 0) {
				fprintf(stderr, "%s: cannot remove '%s/%s': %s\n", tool_prog,
					st.path, p->path, strerror(-r));
				repair_failed = true;
				continue;
			}
			p->removed = true;
		}
	}

	if (json)
		fsck_print_json(&st, &images, do_repair);
	else
		fsck_print_text(&st, do_repair);
	status = st.n_problems == 0 ? FSCK_CLEAN : FSCK_PROBLEMS;
	if (repair_failed)
		status = FSCK_FAILED;
	images_free(&images);
	store_release(&st);
	close_stdout();
	return status;
}

/* ---- gc ------------------------------------------------------------------------------------ */

/* All objects the images need, and the stored images themselves: sorted,
 * each once. Fails on an image that did not load: what it needs is
 * unknown. */
static uint8_t (*needed_objects(struct image_list *images, size_t *n_out))[LCFS_DIGEST_SIZE]
{
	uint8_t(*all)[LCFS_DIGEST_SIZE] = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < images->n; i++) {
		struct image *img = &images->items[i];

		if (img->error != NULL)
			tool_fail("cannot read root '%s': %s", img->name, img->error);
		for (size_t j = 0; j < img->n; j++) {
			grow(&all, &cap, n, LCFS_DIGEST_SIZE);
			memcpy(all[n++], img->digests[j], LCFS_DIGEST_SIZE);
		}
		if (img->in_store) {
			grow(&all, &cap, n, LCFS_DIGEST_SIZE);
			memcpy(all[n++], img->self, LCFS_DIGEST_SIZE);
		}
	}
	*n_out = sort_unique(all, n);
	return all;
}

static int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "keep-newer", required_argument, NULL, 'k' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_list images = { 0 };
	uint8_t(*needed)[LCFS_DIGEST_SIZE];
	size_t n_needed, n_removed = 0, n_kept_young = 0;
	uint64_t bytes_removed = 0;
	bool dry_run = false, verbose = false, failed = false;
	long long keep_newer = DEFAULT_KEEP_NEWER;
	struct store st;
	const char *what;
	time_t now;
	char b[64];
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			dry_run = true;
			break;
		case 'k': {
			char *end;

			errno = 0;
			keep_newer = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || keep_newer < 0)
				tool_usage_error("invalid --keep-newer '%s': a number of "
						 "seconds expected",
						 optarg);
			break;
		}
		case 'v':
			verbose = true;
			break;
		case 'h':
			store_command_usage(
				stdout, "gc",
				"  --dry-run             only show what would be removed\n"
				"  --keep-newer=SECONDS  keep objects changed less than "
				"SECONDS ago\n"
				"                        (default 3600)\n"
				"  --verbose             name every object removed\n"
				"  --help                show this help and exit\n"
				"\nA ROOT is an image file, a directory of images, or the "
				"digest of an\nimage kept in the store.\n");
			close_stdout();
			return EXIT_SUCCESS;
		default:
			return try_help("gc");
		}
	}
	if (optind >= argc)
		tool_usage_error("no store specified");
	if (optind + 1 >= argc)
		tool_usage_error("no root specified (gc would remove every object)");

	/* Exclusive: no writer is between finding an object and writing the
	 * image that refers to it, so the roots read below are complete. */
	r = store_scan(&st, argv[optind], true, false, true, &what);
	if (r < 0)
		tool_fail("cannot read store '%s': %s", what, strerror(-r));
	load_images(&images, st.dirfd, argv + optind + 1, argc - optind - 1);
	needed = needed_objects(&images, &n_needed);

	now = time(NULL);
	for (size_t i = 0; i < st.n_objects; i++) {
		struct object *o = &st.objects[i];
		char name[OBJECT_NAME_LEN + 1];

		if (n_needed > 0 &&
		    bsearch(o->digest, needed, n_needed, LCFS_DIGEST_SIZE, cmp_digest) != NULL)
			continue;
		if ((long long)now - o->changed < keep_newer) {
			n_kept_young++;
			continue;
		}
		object_name(o, name);
		/* One object at a time: a gc stopped anywhere leaves whole
		 * objects, and only ones that nothing listed needs are gone. */
		if (!dry_run && unlinkat(st.subdir_fd[o->digest[0]], name, 0) < 0 &&
		    errno != ENOENT) {
			fprintf(stderr, "%s: cannot remove '%s/%02x/%s': %s\n", tool_prog,
				st.path, o->digest[0], name, strerror(errno));
			failed = true;
			continue;
		}
		if (verbose)
			printf("%s %02x/%s\n", dry_run ? "would remove" : "removed",
			       o->digest[0], name);
		n_removed++;
		bytes_removed += o->size;
	}
	printf("%s %zu objects, %s; kept %zu objects", dry_run ? "would remove" : "removed",
	       n_removed, fmt_bytes(bytes_removed, b), st.n_objects - n_removed);
	if (n_kept_young > 0)
		printf(" (%zu unused but newer than %lld seconds)", n_kept_young, keep_newer);
	printf("\n");
	free(needed);
	images_free(&images);
	store_release(&st);
	close_stdout();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- du ------------------------------------------------------------------------------------ */

struct usage {
	uint8_t digest[LCFS_DIGEST_SIZE];
	size_t n_images; /* how many of the images given use it */
};

struct image_usage {
	size_t objects, missing;
	uint64_t bytes, only, shared;
};

static int cmd_du(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_list images = { 0 };
	struct usage *uses = NULL;
	struct image_usage *iu;
	size_t n_uses = 0, cap_uses = 0, n_unused = 0;
	uint64_t apparent = 0, allocated = 0, unused_bytes = 0;
	bool json = false;
	struct store st;
	const char *what;
	char b[64], b2[64];
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			store_command_usage(stdout, "du",
					    "  --json     print one JSON report\n"
					    "  --help     show this help and exit\n");
			close_stdout();
			return EXIT_SUCCESS;
		default:
			return try_help("du");
		}
	}
	if (optind >= argc)
		tool_usage_error("no store specified");

	r = store_scan(&st, argv[optind], false, true, true, &what);
	if (r < 0)
		tool_fail("cannot read store '%s': %s", what, strerror(-r));
	load_images(&images, st.dirfd, argv + optind + 1, argc - optind - 1);
	for (size_t i = 0; i < images.n; i++) {
		if (images.items[i].error != NULL)
			tool_fail("cannot read image '%s': %s", images.items[i].name,
				  images.items[i].error);
	}
	for (size_t i = 0; i < st.n_objects; i++) {
		apparent += st.objects[i].size;
		allocated += st.objects[i].allocated;
	}

	/* How many images use each object: every image lists each once. */
	for (size_t i = 0; i < images.n; i++) {
		for (size_t j = 0; j < images.items[i].n; j++) {
			grow(&uses, &cap_uses, n_uses, sizeof(*uses));
			memcpy(uses[n_uses].digest, images.items[i].digests[j], LCFS_DIGEST_SIZE);
			uses[n_uses++].n_images = 1;
		}
	}
	if (n_uses > 0) {
		size_t out = 0;

		qsort(uses, n_uses, sizeof(*uses), cmp_digest);
		for (size_t i = 0; i < n_uses; i++) {
			if (out > 0 && memcmp(uses[out - 1].digest, uses[i].digest,
					      LCFS_DIGEST_SIZE) == 0)
				uses[out - 1].n_images++;
			else
				uses[out++] = uses[i];
		}
		n_uses = out;
	}
	iu = xcalloc(images.n, sizeof(*iu));
	for (size_t i = 0; i < images.n; i++) {
		struct image *img = &images.items[i];

		for (size_t j = 0; j < img->n; j++) {
			struct object *o = find_object(&st, img->digests[j]);
			struct usage *u = bsearch(img->digests[j], uses, n_uses, sizeof(*uses),
						  cmp_digest);

			if (o == NULL) {
				iu[i].missing++;
				continue;
			}
			iu[i].objects++;
			iu[i].bytes += o->size;
			if (u != NULL && u->n_images == 1)
				iu[i].only += o->size;
			else
				iu[i].shared += o->size;
		}
	}
	for (size_t i = 0; i < st.n_objects; i++) {
		struct object *o = &st.objects[i];
		bool used = n_uses > 0 && bsearch(o->digest, uses, n_uses, sizeof(*uses),
						  cmp_digest) != NULL;

		for (size_t k = 0; !used && k < images.n; k++)
			used = images.items[k].in_store &&
			       memcmp(images.items[k].self, o->digest, LCFS_DIGEST_SIZE) == 0;
		if (!used) {
			n_unused++;
			unused_bytes += o->size;
		}
	}

	if (json) {
		printf("{\"store\": ");
		json_string(stdout, st.path);
		printf(", \"objects\": %zu, \"apparent_bytes\": %" PRIu64
		       ", \"allocated_bytes\": %" PRIu64,
		       st.n_objects, apparent, allocated);
		if (images.n > 0)
			printf(", \"unused_objects\": %zu, \"unused_bytes\": %" PRIu64, n_unused,
			       unused_bytes);
		printf(", \"images\": [");
		for (size_t i = 0; i < images.n; i++) {
			printf("%s\n  {\"image\": ", i ? "," : "");
			json_string(stdout, images.items[i].name);
			printf(", \"objects\": %zu, \"missing_objects\": %zu, \"bytes\": %" PRIu64
			       ", \"only_bytes\": %" PRIu64 ", \"shared_bytes\": %" PRIu64 "}",
			       iu[i].objects, iu[i].missing, iu[i].bytes, iu[i].only,
			       iu[i].shared);
		}
		printf("%s]}\n", images.n ? "\n" : "");
	} else {
		printf("store: %zu objects, %s apparent, ", st.n_objects, fmt_bytes(apparent, b));
		printf("%s allocated\n", fmt_bytes(allocated, b2));
		for (size_t i = 0; i < images.n; i++) {
			print_name(stdout, images.items[i].name);
			printf(": %zu objects, %s used, ", iu[i].objects, fmt_bytes(iu[i].bytes, b));
			printf("%s only by it, ", fmt_bytes(iu[i].only, b));
			printf("%s shared", fmt_bytes(iu[i].shared, b));
			if (iu[i].missing > 0)
				printf(", %zu objects missing", iu[i].missing);
			printf("\n");
		}
		if (images.n > 0)
			printf("unused: %zu objects, %s\n", n_unused, fmt_bytes(unused_bytes, b));
	}
	free(iu);
	free(uses);
	images_free(&images);
	store_release(&st);
	close_stdout();
	return EXIT_SUCCESS;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "Usage: %s COMMAND [OPTION...] STORE [ARG...]\n", tool_prog);
	fprintf(out, "Check, clean and account for a composefs object store.\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %s %s\n      %s\n", commands[i].name, commands[i].synopsis,
			commands[i].summary);
	fprintf(out, "\nOptions:\n"
		     "  --help     show this help and exit\n"
		     "  --version  show the version and exit\n"
		     "\n'%s COMMAND --help' describes a command's options.\n",
		tool_prog);
}

int main(int argc, char **argv)
{
	const char *name;

	tool_set_prog(argc, argv, "composefs-store");
	if (argc < 2)
		tool_usage_error("no command specified");
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		usage(stdout);
		close_stdout();
		return EXIT_SUCCESS;
	}
	if (strcmp(name, "--version") == 0) {
		printf("%s %s\n", tool_prog, PACKAGE_VERSION);
		close_stdout();
		return EXIT_SUCCESS;
	}
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			/* The subcommand parses its own argv; getopt's messages
			 * name the program. */
			argv[1] = argv[0];
			optind = 1;
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	if (name[0] == '-')
		tool_usage_error("unknown option '%s' (options follow the command)", name);
	tool_usage_error("unknown command '%s'", name);
}
