/* SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0 */
/*
 * mount.composefs: mount a composefs image, directly or as the helper that
 * mount(8) runs for "mount -t composefs" (docs/design.md,
 * "mount.composefs"). Arguments and messages only; the work is
 * lcfs_mount_fd().
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "libcomposefs/lcfs-mount.h"
#include "lcfs-tools.h"
#include "mount-options.h"
#include "tool-version.h"

#if HAVE_LIBCAP
#include <stdarg.h>
#include <sys/capability.h>
#endif

static const char *prog;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [-t composefs] [-o OPTIONS] IMAGE MOUNTPOINT\n"
		"\n"
		"Examples:\n"
		"  %s -o basedir=/composefs/objects image.cfs /mnt\n"
		"  mount -t composefs image.cfs -o basedir=/composefs/objects /mnt\n"
		"\n"
		"Options (comma-separated, '\\' protects the next character):\n"
		"  basedir=DIR[:DIR...]  object directories (required)\n"
		"  digest=HEX            expected fs-verity digest of IMAGE (implies verity)\n"
		"  verity                require fs-verity checks of every object\n"
		"  tryverity             check fs-verity where the kernel supports it\n"
		"  noverity              do not ask for fs-verity checks\n"
		"  idmap=PATH            idmap the image with this user namespace\n"
		"  upperdir=DIR          writable upper directory (with workdir)\n"
		"  workdir=DIR           overlay work directory (with upperdir)\n"
		"  ro                    mount read-only\n"
		"  rw                    mount read-write (the default)\n"
		"  fuse                  mount through composefs-fuse (the default\n"
		"                        without CAP_SYS_ADMIN)\n"
		"  remote=URL            with fuse: fetch missing objects from the\n"
		"                        store at URL into the first basedir\n",
		prog, prog);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(bool with_usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (with_usage)
		usage(stderr);
	exit(1);
}

static const char *mount_error_text(int err)
{
	switch (err) {
	case ENOVERITY:
		return "Image has no fs-verity";
	case EWRONGVERITY:
		return "Image has wrong fs-verity";
	case ENOSIGNATURE:
		return "Image was not signed";
	default:
		return strerror(err);
	}
}

/* ---- Mounting through composefs-fuse (composefs-fuse(1)) ---------------- */

/* Whether the kernel mount can work: it needs CAP_SYS_ADMIN. */
static bool can_mount_kernel(void)
{
#if HAVE_LIBCAP
	cap_flag_value_t v = CAP_CLEAR;
	cap_t caps = cap_get_proc();

	if (caps == NULL)
		return geteuid() == 0;
	if (cap_get_flag(caps, CAP_SYS_ADMIN, CAP_EFFECTIVE, &v) < 0)
		v = CAP_CLEAR;
	cap_free(caps);
	return v == CAP_SET;
#else
	return geteuid() == 0;
#endif
}

/* Appends @s to @out (of @size bytes), with ',' and '\\' protected as
 * libfuse option values need when @escape is set. */
static void append_opt(char *out, size_t size, const char *s, bool escape)
{
	size_t n = strlen(out);

	for (; *s; s++) {
		if (n + 3 > size)
			die(false, "Option value too long");
		if (escape && (*s == ',' || *s == '\\'))
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n] = '\0';
}

/* Replaces this process with composefs-fuse serving @image on
 * @mountpoint with the options translated. It is looked for next to this
 * program, then in the configured bindir, then in PATH. */
static void __attribute__((noreturn))
exec_fuse(struct mount_args *a, const char *image, const char *mountpoint)
{
	static const char name[] = "composefs-fuse";
	char opts[16384] = "source=";
	char self[4096], path[4096 + sizeof(name)];
	/* "--" ends the options: a mount point starting with '-' (the image
	 * travels inside the -o value) must not be taken for one. */
	char *argv[] = { (char *)name, (char *)"-o", opts, (char *)"--",
			 (char *)mountpoint, NULL };
	ssize_t len;

	if (a->upperdir != NULL)
		die(false, "Option upperdir is not supported with fuse");
	if (a->idmap != NULL)
		die(false, "Option idmap is not supported with fuse");
	append_opt(opts, sizeof(opts), image, true);
	for (size_t i = 0; i < a->n_objdirs; i++) {
		append_opt(opts, sizeof(opts), i == 0 ? ",basedir=" : ":", false);
		append_opt(opts, sizeof(opts), a->objdirs[i], true);
	}
	/* verity=require is checked in userspace; tryverity has nothing to
	 * fall back from there and asks for nothing. */
	if (a->require_verity)
		append_opt(opts, sizeof(opts), ",verity", false);
	if (a->digest != NULL && a->digest[0] != '\0') {
		append_opt(opts, sizeof(opts), ",digest=", false);
		append_opt(opts, sizeof(opts), a->digest, true);
	}
	if (a->remote != NULL) {
		append_opt(opts, sizeof(opts), ",remote=", false);
		append_opt(opts, sizeof(opts), a->remote, true);
	}

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len > 0) {
		char *slash;

		self[len] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/%s", self, name);
			execv(path, argv);
		}
	}
	snprintf(path, sizeof(path), "%s/%s", COMPOSEFS_BINDIR, name);
	execv(path, argv);
	execvp(name, argv);
	die(false, "Failed to run %s: %s", name, strerror(errno));
}

int main(int argc, char **argv)
{
	struct mount_args a = { 0 };
	struct lcfs_mount_options_s opts = { 0 };
	struct lcfs_error err = { 0 };
	const char *optstring = NULL;
	const char *image, *mountpoint;
	int c, fd, userns_fd = -1;

	prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	tool_maybe_print_version(argc, argv, prog);

	while ((c = getopt(argc, argv, "ht:o:")) != -1) {
		switch (c) {
		case 'h':
			usage(stderr);
			return 0;
		case 't':
			if (strcmp(optarg, "composefs") != 0)
				die(false, "Unsupported fs type '%s'", optarg);
			break;
		case 'o':
			optstring = optarg; /* the last -o wins */
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind >= argc)
		die(true, "No source path specified");
	if (optind + 1 >= argc)
		die(true, "No mount path specified");
	if (optind + 2 < argc)
		die(true, "Unexpected argument '%s'", argv[optind + 2]);
	image = argv[optind];
	mountpoint = argv[optind + 1];

	if (optstring != NULL) {
		char msg[512];

		if (mount_options_parse(&a, optstring, msg, sizeof(msg)) < 0)
			die(false, "%s", msg);
	}
	if (a.n_objdirs == 0)
		die(true, "No object dirs specified");
	if ((a.upperdir == NULL) != (a.workdir == NULL))
		die(false, "Both workdir and upperdir must be specified if used");
	if (!a.fuse && !can_mount_kernel()) {
		fprintf(stderr, "%s: no CAP_SYS_ADMIN, mounting through "
			"composefs-fuse\n", prog);
		a.fuse = true;
	}
	if (a.fuse)
		exec_fuse(&a, image, mountpoint);
	if (a.remote != NULL)
		die(false, "Option remote is only supported with fuse");

	opts.objdirs = a.objdirs;
	opts.n_objdirs = a.n_objdirs;
	opts.upperdir = a.upperdir;
	opts.workdir = a.workdir;
	opts.expected_fsverity_digest = a.digest;
	if (a.require_verity)
		opts.flags |= LCFS_MOUNT_FLAGS_REQUIRE_VERITY;
	else if (a.try_verity)
		opts.flags |= LCFS_MOUNT_FLAGS_TRY_VERITY;
	if (a.readonly)
		opts.flags |= LCFS_MOUNT_FLAGS_READONLY;
	if (a.idmap != NULL) {
		userns_fd = open(a.idmap, O_RDONLY | O_NOCTTY | O_CLOEXEC);
		if (userns_fd < 0)
			die(false, "Failed to open userns %s: %s", a.idmap,
			    strerror(errno));
		opts.flags |= LCFS_MOUNT_FLAGS_IDMAP;
		opts.idmap_fd = userns_fd;
	}

	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(false, "Failed to open %s: %s", image, strerror(errno));

	if (lcfs_mount_fd_ext(fd, mountpoint, &opts, &err) < 0) {
		if (err.msg[0])
			die(false, "Failed to mount composefs %s: %s (%s)", image,
			    mount_error_text(err.err), err.msg);
		die(false, "Failed to mount composefs %s: %s", image,
		    mount_error_text(err.err));
	}

	close(fd);
	if (userns_fd >= 0)
		close(userns_fd);
	mount_args_release(&a);
	return 0;
}
