# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the image-level tests: running the tools, skipping, fsck,
and mounting an image with the kernel without leaking mounts or loop
devices."""

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

NON_STRICT_ASSETS = ("no-newline.dump", "longlink.dump",
                     "honggfuzz-longlink-unterminated.dump")


class TestFailure(Exception):
    pass


def skip(reason):
    print("SKIP: %s" % reason)
    sys.exit(SKIP)


def shared_dir():
    """Directory of the reference assets, or skip when it is absent."""
    d = os.environ.get("COMPOSEFS_SHARED")
    if not d or not os.path.isdir(os.path.join(d, "assets", "upstream")):
        skip("reference assets not found (COMPOSEFS_SHARED=%r)" % d)
    return d


def asset_args(script):
    """(tools_dir, shared_dir, asset, asset_path) from `SCRIPT TOOLS_DIR
    ASSET` on the command line; skips when the asset is absent."""
    if len(sys.argv) != 3:
        print("usage: %s TOOLS_DIR ASSET" % script, file=sys.stderr)
        sys.exit(2)
    tools_dir, asset = sys.argv[1], sys.argv[2]
    shared = shared_dir()
    path = os.path.join(shared, "assets", "upstream", asset)
    if not os.path.exists(path):
        skip("asset %s not present in %s" % (asset, shared))
    return tools_dir, shared, asset, path


def tool(tools_dir, name):
    path = os.path.join(tools_dir, name)
    if not os.access(path, os.X_OK):
        raise TestFailure("tool %s not built (looked for %s)" % (name, path))
    return path


def run(argv, stdin=None, env=None, check=True):
    """Run a command, capture output; raise TestFailure on non-zero exit."""
    r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env)
    if check and r.returncode != 0:
        raise TestFailure("%s exited %d\nstderr: %s" % (
            " ".join(os.fsdecode(a) for a in argv), r.returncode,
            r.stderr.decode("utf-8", "backslashreplace")[-4000:]))
    return r


def read_asset(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def asset_version(path):
    """Forced format version of an asset (NAME.version), or None."""
    vpath = path + ".version"
    if not os.path.exists(vpath):
        return None
    with open(vpath) as f:
        return int(f.read().strip())


def version_args(version):
    if version is None:
        return []
    return ["--min-version=%d" % version, "--max-version=%d" % version]


def mkcomposefs_env(strict):
    env = dict(os.environ)
    env.pop("CFS_PARSE_STRICT", None)
    if strict:
        env["CFS_PARSE_STRICT"] = "1"
    return env


def build_image(tools_dir, dump, out, version=None, strict=True, extra=()):
    """mkcomposefs --from-file - out, dump bytes on stdin."""
    argv = [tool(tools_dir, "mkcomposefs")] + version_args(version) + \
        list(extra) + ["--from-file", "-", out]
    return run(argv, stdin=dump, env=mkcomposefs_env(strict))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def cmp_head(a, b, lines=20):
    """First differing bytes of two files, as `cmp -l` prints them."""
    r = subprocess.run(["cmp", "-l", a, b], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode("utf-8", "replace").splitlines()
    head = out[:lines]
    if len(out) > lines:
        head.append("... (%d differing bytes in total)" % len(out))
    return "\n".join(head)


def image_version(path):
    """composefs format version from the image header (offset 12)."""
    with open(path, "rb") as f:
        hdr = f.read(16)
    return int.from_bytes(hdr[12:16], "little")


def fsck(path):
    """fsck.erofs must accept the image; skip-worthy only when absent."""
    exe = shutil.which("fsck.erofs")
    if exe is None:
        return "fsck.erofs not installed"
    r = subprocess.run([exe, path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise TestFailure("fsck.erofs rejected %s:\n%s" % (
            path, r.stdout.decode("utf-8", "replace")[-3000:]))
    return None


def roundtrip(tools_dir, image, tmpdir, version, strict=False):
    """composefs-dump and composefs-info dump | mkcomposefs must both give
    back the same bytes."""
    out2 = os.path.join(tmpdir, "roundtrip-dump.cfs")
    run([tool(tools_dir, "composefs-dump"), image, out2])
    if not same_bytes(image, out2):
        raise TestFailure("composefs-dump output differs from the input image\n"
                          + cmp_head(out2, image))
    r = run([tool(tools_dir, "composefs-info"), "dump", image])
    out3 = os.path.join(tmpdir, "roundtrip-info.cfs")
    build_image(tools_dir, r.stdout, out3, version=version, strict=strict)
    if not same_bytes(image, out3):
        dpath = os.path.join(tmpdir, "info.dump")
        with open(dpath, "wb") as f:
            f.write(r.stdout)
        raise TestFailure("composefs-info dump | mkcomposefs gives a different "
                          "image (dump kept in %s)\n%s" % (dpath,
                                                          cmp_head(out3, image)))
    return r.stdout


# --- mounting ---------------------------------------------------------------

def _mount_table():
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split(" ", 4)[4] for l in f)


def _loop_devices():
    r = subprocess.run(["losetup", "-a"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return sorted(r.stdout.decode("utf-8", "replace").splitlines())


def kernel_mount_available():
    """None if EROFS can be mounted here, else the reason why not."""
    if os.geteuid() != 0:
        return "not running as root"
    try:
        with open("/proc/filesystems") as f:
            if not any(l.split()[-1:] == ["erofs"] for l in f):
                subprocess.run(["modprobe", "erofs"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        with open("/proc/filesystems") as f:
            if not any(l.split()[-1:] == ["erofs"] for l in f):
                return "the kernel has no EROFS support"
    except OSError as e:
        return "cannot read /proc/filesystems: %s" % e
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not installed"
    return None


class MountUnavailable(Exception):
    pass


@contextlib.contextmanager
def erofs_mounted(image, parent=None):
    """Mount `image` read-only as EROFS (file-backed, falling back to a loop
    device) on a temporary directory; always unmount and remove it."""
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=parent)
    mounted = False
    try:
        r = subprocess.run(["mount", "-t", "erofs", "-o", "ro", image, mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            first = r.stdout.decode("utf-8", "replace").strip()
            r = subprocess.run(["mount", "-t", "erofs", "-o", "ro,loop", image,
                                mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                raise MountUnavailable("mount failed: %s; with -o loop: %s" % (
                    first, r.stdout.decode("utf-8", "replace").strip()))
        mounted = True
        yield mnt
    finally:
        if mounted:
            r = subprocess.run(["umount", mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", mnt])
                raise TestFailure("umount failed: %s" %
                                  r.stdout.decode("utf-8", "replace"))
        os.rmdir(mnt)


@contextlib.contextmanager
def no_leaks(tmpdir):
    """Check that no mount and no loop device referring to anything below
    `tmpdir` is left behind (scoped, since tests run in parallel)."""
    key = os.path.realpath(tmpdir)

    def ours():
        return ([m for m in _mount_table() if key in m],
                [l for l in _loop_devices() if key in l])

    before = ours()
    try:
        yield
    finally:
        after = ours()
        if after != before:
            raise TestFailure("left behind: mounts %r, loop devices %r" % after)


def kernel_compare(image, dump_root, version, tmpdir):
    """Mount `image` below `tmpdir`, compare with the parsed dump; returns
    the number of entries checked."""
    import cfsdump
    expected = cfsdump.expected_view(dump_root, version)
    errors = []
    with no_leaks(tmpdir), erofs_mounted(image, tmpdir) as mnt:
        n = cfsdump.compare_mount(mnt, expected, errors)
    if errors:
        raise TestFailure("mounted %s differs from its dumpfile:\n  %s" % (
            image, "\n  ".join(errors)))
    return n


def main_wrapper(fn):
    """Run fn(); TestFailure -> exit 1 with the message."""
    try:
        rc = fn()
    except TestFailure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    sys.exit(rc or 0)
