/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * Mounting a composefs image: the image is mounted as EROFS on a private
 * directory, then overlayfs is composed with the image as its only ordinary
 * lower layer and the object directories as data-only layers
 * (docs/design.md, "Mount option checks", "Mount steps", "Kernel features
 * used by the mount").
 *
 * Everything this file creates on the way (the image mount, a temporary
 * directory, a loop device) is undone before returning, on success as well
 * as on failure: after a successful call only the overlay mount remains,
 * and it holds its own references to the layers.
 */
#include "lcfs-compat.h"
#include "lcfs-tools.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "libcomposefs/lcfs-erofs.h"
#include "libcomposefs/lcfs-mount.h"

/* At most 128 hex digits (docs/design.md, "Mount option checks"). */
#define MAX_DIGEST_HEX 128
#define MAX_DIGEST_BYTES (MAX_DIGEST_HEX / 2)
#define LOOP_ATTEMPTS 16 /* another process may take a free loop device */
#define LOG_MAX_MESSAGES 32

/* Returned by the new-API overlay attempt when the legacy mount(2) path
 * must be tried instead (docs/design.md, "Mount steps": overlay, new
 * API). */
#define TRY_LEGACY 1

struct mount_state {
	int fd;                 /* the image (borrowed) */
	const char *image_path; /* names the loop device; NULL for an fd */
	const char *mountpoint;
	const struct lcfs_mount_options_s *opts;
	uint32_t flags;
	bool has_acl;       /* header flag: keep POSIX ACLs on the EROFS mount */
	bool ask_verity;    /* pass verity=require to overlayfs */
	const char *imgdir; /* where the EROFS image is mounted */
	bool made_dir;      /* imgdir is our temporary directory */
	bool image_mounted;
	char tmpdir[sizeof("/tmp/.composefs.XXXXXX")];
	char loopdev[32];
	/* Why the current attempt failed, for struct lcfs_error. */
	char detail[sizeof(((struct lcfs_error *)0)->msg)];
	/* Kernel messages of the last fs context that failed. */
	char kmsg[384];
	/* Kernel messages of a failed new-API overlay attempt, kept in case
	 * the legacy attempt fails too and has nothing better to say. */
	char new_api_kmsg[384];
	const char *fsname; /* filesystem of the current fs context */
};

static int fail(struct mount_state *st, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records why the mount failed (the first reason wins) and returns @r. */
static int fail(struct mount_state *st, int r, const char *fmt, ...)
{
	if (st->detail[0] == '\0') {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(st->detail, sizeof(st->detail), fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- Kernel messages of an fs context ----------------------------------- */

/*
 * An fs context fd (fsopen) queues the messages the filesystem produced
 * while parsing options, one per read(): "e " errors, "w " warnings, "i "
 * information. Errors and warnings are what the user needs to see in place
 * of a bare errno; they are collected into @out, "; "-separated, or
 * discarded when @out is NULL.
 */
static void fs_log_read(int fsfd, char *out, size_t size)
{
	size_t used = 0;

	if (out != NULL && size > 0)
		out[0] = '\0';
	for (int i = 0; i < LOG_MAX_MESSAGES; i++) {
		char buf[PATH_MAX + 256]; /* messages quote paths */
		ssize_t n = read(fsfd, buf, sizeof(buf) - 1);

		if (n < 0 && errno == EMSGSIZE)
			continue; /* that message is dropped; read on */
		if (n <= 0)
			break; /* ENODATA: the queue is empty */
		while (n > 0 && buf[n - 1] == '\n')
			n--;
		buf[n] = '\0';
		if (out == NULL || n < 2 || buf[1] != ' ' ||
		    (buf[0] != 'e' && buf[0] != 'w'))
			continue;
		if (used + 3 < size) {
			int w = snprintf(out + used, size - used, "%s%s",
					 used > 0 ? "; " : "", buf + 2);

			if (w > 0)
				used += (size_t)w < size - used ? (size_t)w
								 : size - used - 1;
		}
	}
}

/* fsconfig() that keeps the kernel's explanation of a failure in
 * st->kmsg. @value NULL means a flag. */
static int fs_set(struct mount_state *st, int fsfd, const char *key,
		  const char *value)
{
	const char *fsname = st->fsname;
	unsigned int cmd = value ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG;
	int r;

	if (fsconfig(fsfd, cmd, key, value, 0) == 0)
		return 0;
	r = -errno;
	fs_log_read(fsfd, st->kmsg, sizeof(st->kmsg));
	/* Not every rejection is explained in the log (overlayfs reports a
	 * path it cannot resolve only in the kernel log): name the option. */
	if (st->kmsg[0] == '\0')
		snprintf(st->kmsg, sizeof(st->kmsg), "%s: %s%s%.300s%s rejected",
			 fsname, key, value ? " '" : "", value ? value : "",
			 value ? "'" : "");
	return r;
}

static int fs_create(struct mount_state *st, int fsfd)
{
	int r;

	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
		return 0;
	r = -errno;
	fs_log_read(fsfd, st->kmsg, sizeof(st->kmsg));
	return r;
}

/* ---- Options and image checks ------------------------------------------- */

/* An even number of hex digits, at most 128 (docs/design.md, "Mount option
 * checks"). Decodes into @out (zero-padded to 64 bytes) and returns the
 * byte count, or -EINVAL. */
static int digest_decode(const char *hex, uint8_t out[MAX_DIGEST_BYTES])
{
	size_t len = strlen(hex);

	if (len % 2 != 0 || len > MAX_DIGEST_HEX)
		return -EINVAL;
	memset(out, 0, MAX_DIGEST_BYTES);
	for (size_t i = 0; i < len; i += 2) {
		int hi = lcfs_hex_value(hex[i]), lo = lcfs_hex_value(hex[i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(len / 2);
}

/* Before the image is touched (docs/design.md, "Mount option checks"). */
static int check_options(struct mount_state *st, uint32_t allowed)
{
	const struct lcfs_mount_options_s *o = st->opts;
	uint8_t digest[MAX_DIGEST_BYTES];

	if (o->flags & ~allowed)
		return fail(st, -EINVAL, "unknown mount flags 0x%x",
			    o->flags & ~allowed);
	if (o->n_objdirs == 0 || o->objdirs == NULL)
		return fail(st, -EINVAL, "no object directory given");
	for (size_t i = 0; i < o->n_objdirs; i++) {
		if (o->objdirs[i] == NULL || o->objdirs[i][0] == '\0')
			return fail(st, -EINVAL, "empty object directory name");
	}
	if ((o->upperdir == NULL) != (o->workdir == NULL))
		return fail(st, -EINVAL,
			    "upperdir and workdir must be given together");
	if (o->expected_fsverity_digest != NULL &&
	    digest_decode(o->expected_fsverity_digest, digest) < 0)
		return fail(st, -EINVAL,
			    "expected digest '%s' is not an even number of at most %d hex digits",
			    o->expected_fsverity_digest, MAX_DIGEST_HEX);
	if ((o->flags & LCFS_MOUNT_FLAGS_IDMAP) && o->idmap_fd < 0)
		return fail(st, -EINVAL, "idmap asked without a user namespace");
	if (st->mountpoint == NULL)
		return fail(st, -EINVAL, "no mount point given");
	return 0;
}

static bool errno_means_no_verity(int e)
{
	return e == ENODATA || e == EOPNOTSUPP || e == ENOTTY;
}

/* The kernel's fs-verity digest of the image must be the expected one
 * (docs/design.md, "Mount steps": image digest). Only the first 32 bytes
 * are compared (SHA-256). */
static int check_image_digest(struct mount_state *st)
{
	const char *hex = st->opts->expected_fsverity_digest;
	uint8_t expected[MAX_DIGEST_BYTES];
	union {
		struct fsverity_digest d;
		uint8_t buf[sizeof(struct fsverity_digest) + MAX_DIGEST_BYTES];
	} m;
	char measured_hex[65];
	int n;

	if (hex == NULL)
		return 0;
	n = digest_decode(hex, expected);
	if (n <= 0)
		return 0; /* digest= with no value: nothing to compare */

	memset(&m, 0, sizeof(m));
	m.d.digest_size = MAX_DIGEST_BYTES;
	if (ioctl(st->fd, FS_IOC_MEASURE_VERITY, &m) < 0) {
		int e = errno;

		if (e == ENODATA)
			return fail(st, -ENOVERITY,
				    "fs-verity is not enabled on the image file");
		if (errno_means_no_verity(e))
			return fail(st, -ENOVERITY,
				    "the kernel or the image's filesystem has no fs-verity support");
		return fail(st, -e, "cannot measure the image's fs-verity digest");
	}
	if (m.d.digest_size != LCFS_DIGEST_SIZE)
		return fail(st, -EWRONGVERITY,
			    "the image's fs-verity digest is %u bytes, not %d",
			    m.d.digest_size, LCFS_DIGEST_SIZE);
	if (memcmp(m.d.digest, expected, LCFS_DIGEST_SIZE) != 0) {
		lcfs_digest_to_hex(m.d.digest, measured_hex);
		return fail(st, -EWRONGVERITY,
			    "the image's fs-verity digest is %s, expected %s",
			    measured_hex, hex);
	}
	return 0;
}

static uint32_t le32_value(uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap32(v);
#else
	return v;
#endif
}

/* Only the composefs magic is checked here; a damaged EROFS part is the
 * kernel's to reject (docs/design.md, "Mount steps": header). */
static int check_header(struct mount_state *st)
{
	struct lcfs_erofs_header_s h;
	ssize_t n;

	do
		n = pread(st->fd, &h, sizeof(h), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail(st, -errno, "cannot read the image header");
	if ((size_t)n < sizeof(h))
		return fail(st, -EINVAL, "the image is too short (%zd bytes)", n);
	if (le32_value(h.magic) != LCFS_EROFS_MAGIC)
		return fail(st, -EINVAL, "not a composefs image (bad magic 0x%08x)",
			    le32_value(h.magic));
	st->has_acl = (le32_value(h.flags) & LCFS_EROFS_FLAGS_HAS_ACL) != 0;
	return 0;
}

/*
 * Whether overlayfs can check fs-verity digests of the objects: measuring a
 * directory answers ENODATA on a filesystem that supports fs-verity (the
 * directory itself has none) and EOPNOTSUPP or ENOTTY where the kernel or
 * the filesystem lacks it. Without this check, verity=require is accepted
 * by overlayfs even on a kernel without fs-verity, and then every read of a
 * backed file fails.
 */
static int objdir_verity(struct mount_state *st, const char *dir, bool *ok)
{
	cleanup_fd int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct fsverity_digest d = { .digest_size = 0 };

	*ok = false;
	if (dfd < 0)
		return fail(st, -errno, "cannot open object directory '%s'", dir);
	if (ioctl(dfd, FS_IOC_MEASURE_VERITY, &d) == 0 || errno == ENODATA ||
	    errno == EOVERFLOW)
		*ok = true;
	else if (!errno_means_no_verity(errno))
		return fail(st, -errno,
			    "cannot check fs-verity support of object directory '%s'",
			    dir);
	return 0;
}

/* Decides st->ask_verity: REQUIRE fails unless every object directory
 * supports fs-verity; TRY asks only when they all do. */
static int decide_verity(struct mount_state *st)
{
	bool require = st->flags & LCFS_MOUNT_FLAGS_REQUIRE_VERITY;

	if (!require && !(st->flags & LCFS_MOUNT_FLAGS_TRY_VERITY))
		return 0;
	for (size_t i = 0; i < st->opts->n_objdirs; i++) {
		const char *dir = st->opts->objdirs[i];
		bool ok;
		int r = objdir_verity(st, dir, &ok);

		if (r < 0) {
			if (!require) {
				/* Let overlayfs report the directory. */
				st->detail[0] = '\0';
				return 0;
			}
			return r;
		}
		if (!ok) {
			if (!require)
				return 0;
			return fail(st, -ENOVERITY,
				    "object directory '%s' is on a filesystem or kernel without fs-verity",
				    dir);
		}
	}
	st->ask_verity = true;
	return 0;
}

/* ---- The EROFS image mount ------------------------------------------------ */

/* The EROFS mount (docs/design.md, "Mount steps"), with @source a path the
 * kernel opens itself. */
static int erofs_mount(struct mount_state *st, const char *source)
{
	cleanup_fd int fsfd = -1;
	cleanup_fd int mntfd = -1;
	int r;

	st->kmsg[0] = '\0';
	st->fsname = "erofs";
	fsfd = fsopen("erofs", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		if (errno != ENOSYS)
			return -errno;
		/* A kernel without the new mount API cannot idmap. */
		if (st->flags & LCFS_MOUNT_FLAGS_IDMAP)
			return -ENOTSUP;
		if (mount(source, st->imgdir, "erofs", MS_RDONLY,
			  st->has_acl ? NULL : "noacl") < 0)
			return -errno; /* ENOTBLK: try a loop device */
		return 0;
	}
	r = fs_set(st, fsfd, "source", source);
	if (r == 0)
		r = fs_set(st, fsfd, "ro", NULL);
	if (r == 0 && !st->has_acl)
		r = fs_set(st, fsfd, "noacl", NULL);
	if (r == 0)
		r = fs_create(st, fsfd);
	if (r < 0)
		return r;
	mntfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
	if (mntfd < 0)
		return fail(st, -errno, "cannot create the image mount");
	if (st->flags & LCFS_MOUNT_FLAGS_IDMAP) {
		struct mount_attr attr = {
			.attr_set = MOUNT_ATTR_IDMAP,
			.userns_fd = (uint64_t)st->opts->idmap_fd,
		};

		if (mount_setattr(mntfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			return fail(st, -errno, "cannot idmap the image mount");
	}
	if (move_mount(mntfd, "", AT_FDCWD, st->imgdir, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return fail(st, -errno, "cannot mount the image on '%s'", st->imgdir);
	return 0;
}

/*
 * A kernel that cannot mount a regular file gets a read-only loop device
 * (docs/design.md, "Mount steps": loop fallback). AUTOCLEAR releases the
 * device when its last user goes: the EROFS mount if that succeeds, else
 * our own fd when we close it.
 */
static int loop_attach(struct mount_state *st, int *loopfd)
{
	cleanup_fd int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);

	if (ctl < 0)
		return fail(st, -errno, "cannot open /dev/loop-control");
	for (int attempt = 0; attempt < LOOP_ATTEMPTS; attempt++) {
		struct loop_config cfg;
		cleanup_fd int lfd = -1;
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);

		if (n < 0)
			return fail(st, -errno, "cannot find a free loop device");
		snprintf(st->loopdev, sizeof(st->loopdev), "/dev/loop%d", n);
		lfd = open(st->loopdev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			return fail(st, -errno, "cannot open '%s'", st->loopdev);

		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (uint32_t)st->fd;
		cfg.block_size = 4096;
		cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR |
				    LO_FLAGS_DIRECT_IO;
		if (st->image_path != NULL)
			snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE,
				 "%s", st->image_path);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			*loopfd = lcfs_steal_fd(&lfd);
			return 0;
		}
		if (errno == EINVAL) {
			/* Direct I/O is not possible on every backing
			 * filesystem; buffered I/O serves as well. */
			cfg.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
			if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
				*loopfd = lcfs_steal_fd(&lfd);
				return 0;
			}
		}
		if (errno != EBUSY)
			return fail(st, -errno, "cannot configure loop device '%s'",
				    st->loopdev);
		/* Taken by someone else between GET_FREE and CONFIGURE. */
	}
	return fail(st, -EBUSY, "no free loop device");
}

static int mount_image(struct mount_state *st)
{
	char source[sizeof("/proc/self/fd/") + 12];
	cleanup_fd int loopfd = -1;
	int r = -ENOTBLK;

	if (!(st->flags & LCFS_MOUNT_INTERNAL_FORCE_LOOP)) {
		snprintf(source, sizeof(source), "/proc/self/fd/%d", st->fd);
		r = erofs_mount(st, source);
	}
	if (r == -ENOTBLK) {
		r = loop_attach(st, &loopfd);
		if (r < 0)
			return r;
		r = erofs_mount(st, st->loopdev);
	}
	if (r < 0) {
		if (st->kmsg[0])
			return fail(st, r, "cannot mount the image: %s", st->kmsg);
		return fail(st, r, "the kernel cannot mount the image as EROFS");
	}
	st->image_mounted = true;
	return 0;
}

static int make_image_dir(struct mount_state *st)
{
	if (st->opts->image_mountdir != NULL) {
		st->imgdir = st->opts->image_mountdir;
		return 0;
	}
	memcpy(st->tmpdir, "/tmp/.composefs.XXXXXX", sizeof(st->tmpdir));
	if (mkdtemp(st->tmpdir) == NULL)
		return fail(st, -errno, "cannot create a directory in /tmp");
	st->imgdir = st->tmpdir;
	st->made_dir = true;
	return 0;
}

/* ---- The overlay ------------------------------------------------------------ */

/* The overlay through the new mount API (docs/design.md, "Mount steps").
 * Returns 0, -errno, or TRY_LEGACY. */
static int overlay_mount_new(struct mount_state *st)
{
	const struct lcfs_mount_options_s *o = st->opts;
	cleanup_fd int fsfd = -1;
	cleanup_fd int mntfd = -1;
	int r;

	st->kmsg[0] = '\0';
	st->fsname = "overlay";
	fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0) {
		if (errno == ENOSYS)
			return TRY_LEGACY;
		return fail(st, -errno, "cannot open an overlayfs context");
	}
	/* Before 6.5 overlayfs accepted any option here, and would not
	 * report bad ones: only the legacy path is reliable then. */
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "unsupported", "unsupported", 0) == 0)
		return TRY_LEGACY;
	fs_log_read(fsfd, NULL, 0);

	r = fs_set(st, fsfd, "source", "composefs");
	if (r == 0)
		r = fs_set(st, fsfd, "metacopy", "on");
	if (r == 0)
		r = fs_set(st, fsfd, "redirect_dir", "on");
	if (r < 0)
		goto fatal;
	if (st->ask_verity) {
		r = fs_set(st, fsfd, "verity", "require");
		if (r < 0) {
			if (st->flags & LCFS_MOUNT_FLAGS_REQUIRE_VERITY)
				goto fatal;
			st->kmsg[0] = '\0'; /* tryverity: go without */
		}
	}

	r = fs_set(st, fsfd, "lowerdir+", st->imgdir);
	for (size_t i = 0; r == 0 && i < o->n_objdirs; i++)
		r = fs_set(st, fsfd, "datadir+", o->objdirs[i]);
	if (r == 0 && o->upperdir != NULL)
		r = fs_set(st, fsfd, "upperdir", o->upperdir);
	if (r == 0 && o->workdir != NULL)
		r = fs_set(st, fsfd, "workdir", o->workdir);
	if (r == 0)
		r = fs_create(st, fsfd);
	if (r == -EINVAL) {
		/* 6.5 and 6.6 know neither lowerdir+ nor datadir+. */
		memcpy(st->new_api_kmsg, st->kmsg, sizeof(st->kmsg));
		return TRY_LEGACY;
	}
	if (r < 0)
		goto fatal;

	mntfd = fsmount(fsfd, FSMOUNT_CLOEXEC,
			(st->flags & LCFS_MOUNT_FLAGS_READONLY) ? MOUNT_ATTR_RDONLY : 0);
	if (mntfd < 0)
		return fail(st, -errno, "cannot create the overlay mount");
	if (move_mount(mntfd, "", AT_FDCWD, st->mountpoint, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return fail(st, -errno, "cannot mount on '%s'", st->mountpoint);
	return 0;

fatal:
	if (st->kmsg[0])
		return fail(st, r, "%s", st->kmsg);
	return fail(st, r, "overlayfs rejected the options");
}

/*
 * The legacy overlay options are one string, which overlayfs (as tested on
 * Linux 6.18) cuts three times:
 *  1. into options, at every ',' that no backslash precedes (a backslash
 *     makes the next byte ordinary and stays in place);
 *  2. each option into key and value, at its first '=';
 *  3. the lowerdir value into layers, at every ':' that no backslash
 *     precedes ("::" starts the data-only layers); then each layer path,
 *     and the upperdir and workdir values, drop the backslash in front of
 *     every escaped byte.
 * So a path is written with a backslash before each '\\', ',' and ':', and
 * every other byte ('=', spaces, newlines...) stands for itself. Two more
 * things can make the kernel see another string than the one written,
 * and a path that runs into them is refused rather than mounted:
 *  - mount(2) reads at most one page of option data and silently drops
 *    the rest, which could cut off a layer or shorten the workdir path;
 *  - a security module (SELinux, Smack) first takes its own options out of
 *    the string, cutting at every ',' whatever precedes it: a path in which
 *    a ',' is followed by the name of such an option could lose a piece.
 */
static const char *const lsm_option_prefixes[] = {
	"context=", "fscontext=", "defcontext=", "rootcontext=", "seclabel", "smackfs",
};

/* Why @path cannot be written into the legacy option string, or NULL. */
static const char *legacy_path_problem(const char *path)
{
	if (path[0] == '\0')
		return "it is empty";
	for (const char *c = strchr(path, ','); c != NULL; c = strchr(c + 1, ',')) {
		for (size_t i = 0; i < sizeof(lsm_option_prefixes) /
					       sizeof(lsm_option_prefixes[0]);
		     i++) {
			const char *pre = lsm_option_prefixes[i];

			if (strncmp(c + 1, pre, strlen(pre)) == 0)
				return "a ',' in it is followed by the name of a security module option";
		}
	}
	return NULL;
}

struct optbuf {
	char *buf;
	size_t len, cap;
};

/* Appends @s to @b, escaped as a path when @path is set. 0 or -ENOMEM. */
static int opt_append(struct optbuf *b, const char *s, bool path)
{
	size_t need = strlen(s) * 2 + 1;

	if (b->len + need > b->cap) {
		size_t ncap = (b->len + need) * 2;
		char *nb = realloc(b->buf, ncap);

		if (nb == NULL)
			return -ENOMEM;
		b->buf = nb;
		b->cap = ncap;
	}
	for (; *s; s++) {
		if (path && (*s == '\\' || *s == ',' || *s == ':'))
			b->buf[b->len++] = '\\';
		b->buf[b->len++] = *s;
	}
	b->buf[b->len] = '\0';
	return 0;
}

/* Appends @key (with its leading ',' if any) and the escaped @path, or
 * fails with the reason the path cannot be written. */
static int opt_append_path(struct mount_state *st, struct optbuf *b, const char *key,
			   const char *what, const char *path)
{
	const char *problem = legacy_path_problem(path);
	int r;

	if (problem != NULL)
		return fail(st, -EINVAL,
			    "%s '%s' cannot be passed to this kernel's overlayfs: %s",
			    what, path, problem);
	r = opt_append(b, key, false);
	if (r == 0)
		r = opt_append(b, path, true);
	return r == 0 ? 0 : fail(st, r, "out of memory");
}

/* The legacy option string, in *@out (malloc'd), or -errno. */
static int legacy_options(struct mount_state *st, char **out)
{
	const struct lcfs_mount_options_s *o = st->opts;
	struct optbuf b = { 0 };
	long page = sysconf(_SC_PAGESIZE);
	int r;

	r = opt_append_path(st, &b, "metacopy=on,redirect_dir=on,lowerdir=",
			    "image directory", st->imgdir);
	/* Data-only layers only: as ordinary lower layers the object
	 * directories would be part of the visible tree. */
	for (size_t i = 0; r == 0 && i < o->n_objdirs; i++)
		r = opt_append_path(st, &b, "::", "object directory", o->objdirs[i]);
	if (r == 0 && o->upperdir != NULL)
		r = opt_append_path(st, &b, ",upperdir=", "upperdir", o->upperdir);
	if (r == 0 && o->workdir != NULL)
		r = opt_append_path(st, &b, ",workdir=", "workdir", o->workdir);
	/* tryverity is not attempted here: a failure could not be told
	 * apart from other option errors. */
	if (r == 0 && st->ask_verity && (st->flags & LCFS_MOUNT_FLAGS_REQUIRE_VERITY) &&
	    opt_append(&b, ",verity=require", false) < 0)
		r = fail(st, -ENOMEM, "out of memory");
	if (r == 0 && b.len >= (size_t)(page > 0 ? page : 4096))
		r = fail(st, -ENAMETOOLONG,
			 "the overlay options need %zu bytes, more than the %ld that mount(2) passes to this kernel's overlayfs",
			 b.len + 1, page > 0 ? page : 4096L);
	if (r < 0) {
		free(b.buf);
		return r;
	}
	*out = b.buf;
	return 0;
}

/*
 * The mount(2) path (docs/design.md, "Mount steps") for kernels whose
 * overlayfs lacks lowerdir+ and datadir+: the object directories go in as
 * data-only layers ("::", Linux 6.5 and later). There is no fallback to
 * ordinary lower layers: it would put the object store in the visible tree
 * wherever the image does not hide it.
 */
static int overlay_mount_legacy(struct mount_state *st)
{
	unsigned long flags = (st->flags & LCFS_MOUNT_FLAGS_READONLY) ? MS_RDONLY : 0;
	cleanup_free char *data = NULL;
	int r;

	r = legacy_options(st, &data);
	if (r < 0)
		return r;
	if (mount("composefs", st->mountpoint, "overlay", flags | MS_SILENT, data) == 0)
		return 0;
	r = -errno;
	if (st->new_api_kmsg[0])
		return fail(st, r, "%s", st->new_api_kmsg);
	if (r == -EINVAL)
		return fail(st, r,
			    "overlayfs refused the mount (data-only layers need Linux 6.5 or later; the kernel log may say why)");
	return fail(st, r, "overlayfs refused the mount (the kernel log may say why)");
}

static int overlay_mount(struct mount_state *st)
{
	int r = TRY_LEGACY;

	if (!(st->flags & LCFS_MOUNT_INTERNAL_FORCE_LEGACY))
		r = overlay_mount_new(st);
	if (r == TRY_LEGACY)
		r = overlay_mount_legacy(st);
	return r;
}

/* ---- Entry points --------------------------------------------------------- */

/* Mounts the image in @fd or, when @fd is negative, the file at
 * @image_path, which is opened after the options are checked. */
static int mount_fd_common(int fd, const char *image_path, const char *mountpoint,
			   struct lcfs_mount_options_s *opts, uint32_t allowed,
			   struct lcfs_error *err)
{
	cleanup_fd int owned_fd = -1;
	struct mount_state st;
	int r;

	memset(&st, 0, sizeof(st));
	st.fd = fd;
	st.image_path = image_path;
	st.mountpoint = mountpoint;
	st.opts = opts;
	if (opts == NULL)
		return lcfs_error_set(err, EINVAL, "no mount options given");
	st.flags = opts->flags;

	r = check_options(&st, allowed);
	if (r == 0 && fd < 0 && image_path != NULL) {
		owned_fd = open(image_path, O_RDONLY | O_CLOEXEC);
		if (owned_fd < 0)
			r = fail(&st, -errno, "cannot open the image");
		st.fd = owned_fd;
	}
	if (r == 0 && st.fd < 0)
		r = fail(&st, -EBADF, "no image file");
	if (r == 0)
		r = check_image_digest(&st);
	if (r == 0)
		r = check_header(&st);
	if (r == 0)
		r = decide_verity(&st);
	if (r == 0)
		r = make_image_dir(&st);
	if (r == 0)
		r = mount_image(&st);
	if (r == 0)
		r = overlay_mount(&st);

	/* The overlay holds its own reference to the image mount, so the
	 * mount on imgdir goes in every case (docs/design.md, "Mount
	 * steps": cleanup). */
	if (st.image_mounted)
		umount2(st.imgdir, MNT_DETACH);
	if (st.made_dir)
		rmdir(st.tmpdir);
	if (r < 0)
		return lcfs_error_set(err, -r, "%s", st.detail);
	return 0;
}

int lcfs_mount_fd_ext(int fd, const char *mountpoint,
		      struct lcfs_mount_options_s *opts, struct lcfs_error *err)
{
	return mount_fd_common(fd, NULL, mountpoint, opts,
			       LCFS_MOUNT_FLAGS_MASK | LCFS_MOUNT_INTERNAL_MASK, err);
}

LCFS_PUBLIC int lcfs_mount_fd(int fd, const char *mountpoint,
			      struct lcfs_mount_options_s *options)
{
	return lcfs_public_ret(mount_fd_common(fd, NULL, mountpoint, options,
					       LCFS_MOUNT_FLAGS_MASK, NULL));
}

LCFS_PUBLIC int lcfs_mount_image(const char *path, const char *mountpoint,
				 struct lcfs_mount_options_s *options)
{
	if (path == NULL) {
		errno = EINVAL;
		return -1;
	}
	return lcfs_public_ret(mount_fd_common(-1, path, mountpoint, options,
					       LCFS_MOUNT_FLAGS_MASK, NULL));
}
