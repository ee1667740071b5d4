# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the composefs-fuse tests: is FUSE usable here, mount an
image with composefs-fuse (and, for comparison, with mount.composefs), and
make sure nothing stays behind."""

import contextlib
import os
import shutil
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import cfsdump
import cfsoverlay
import cfstest
from cfstest import Failure

FSTYPE = "fuse.composefs-fuse"


def fuse_unavailable():
    """None if composefs-fuse can be mounted here, else why not."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible"
    return None


def require_fuse():
    why = fuse_unavailable()
    if why:
        cfstest.skip(why)


def mounts_below(path):
    """Mount points at or below `path` (from /proc/self/mountinfo)."""
    key = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split(" ")[4].replace("\\040", " ")
            if mp == key or mp.startswith(key + "/"):
                out.append(mp)
    return out


def is_fuse_mounted(mnt):
    key = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if fields[4] == key:
                sep = fields.index("-")
                return fields[sep + 1] == FSTYPE
    return False


def processes_mentioning(text):
    """PIDs whose command line contains `text` (to find a daemon that
    outlived its mount)."""
    out = []
    needle = os.fsencode(text)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if needle in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def fuse_options(image, basedirs=(), extra=()):
    opts = ["source=" + image.replace("\\", "\\\\").replace(",", "\\,")]
    if basedirs:
        opts.append("basedir=" + ":".join(basedirs))
    opts.extend(extra)
    return ",".join(opts)


class FuseMount:
    """composefs-fuse running in the foreground (-f) as a child process, so
    that its messages can be read and its exit status checked."""

    def __init__(self, exe, image, mnt, basedirs=(), extra=(), args=(),
                 prefix=(), unmount_prefix=()):
        self.mnt = mnt
        self.unmount_prefix = list(unmount_prefix)
        self.argv = list(prefix) + [exe, "-f", "-o",
                                    fuse_options(image, basedirs, extra)] + \
            list(args) + [mnt]
        self.proc = None
        self.stderr = b""

    def __enter__(self):
        env = dict(os.environ)
        # A library the test wants preloaded into the server only.
        preload = env.pop("CFS_TEST_FUSE_PRELOAD", None)
        if preload:
            env["LD_PRELOAD"] = preload
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 20
        while not is_fuse_mounted(self.mnt):
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise Failure("composefs-fuse exited %d before mounting:"
                              " %s" % (self.proc.returncode,
                                           err.decode("utf-8", "replace")))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.communicate()
                raise Failure("composefs-fuse did not mount %s" % self.mnt)
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.unmount()
        return False

    def unmount(self):
        """fusermount3 -u, then the daemon must exit 0 and the mount must be
        gone."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        r = subprocess.run(self.unmount_prefix + ["fusermount3", "-u", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-u", "-z", self.mnt])
            proc.kill()
            proc.communicate()
            raise Failure("fusermount3 -u %s failed: %s" % (
                self.mnt, r.stdout.decode("utf-8", "replace")))
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise Failure("composefs-fuse did not exit after unmount")
        self.stderr = err
        if proc.returncode != 0:
            raise Failure("composefs-fuse exited %d: %s" % (
                proc.returncode, err.decode("utf-8", "replace")))
        if mounts_below(self.mnt):
            raise Failure("still mounted after unmount: %r"
                          % mounts_below(self.mnt))


@contextlib.contextmanager
def kernel_mounted(tools_dir, image, mnt, basedirs):
    """mount.composefs the image read-only; always unmounted again."""
    exe = cfstest.tool(tools_dir, "mount.composefs")
    r = subprocess.run([exe, "-o", "ro,basedir=" + ":".join(basedirs), image,
                        mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise Failure("mount.composefs failed: %s"
                      % r.stdout.decode("utf-8", "replace"))
    try:
        yield mnt
    finally:
        cfstest.umount(mnt)


def kernel_unavailable():
    """None if mount.composefs can be used here, else why not."""
    why = cfstest.kernel_mount_available()
    if why:
        return why
    if not cfstest.kernel_has("overlay"):
        return "the kernel has no overlayfs"
    return None


def compare_with_kernel(tools_dir, image, stores, kmnt, fsnap, what, snapshot=None):
    """Mounts @image through mount.composefs on the directory @kmnt and
    requires that it shows what @fsnap, a snapshot of the FUSE mount,
    shows (cfsoverlay.snapshot(), or @snapshot). Returns None, or why the
    kernel mount is not possible here."""
    why = kernel_unavailable()
    if why is not None:
        return why
    with kernel_mounted(tools_dir, image, kmnt, stores):
        ksnap = (snapshot or cfsoverlay.snapshot)(kmnt)
    diff = cfsoverlay.diff_snapshots(ksnap, fsnap)
    if diff:
        raise Failure("%s: the kernel mount (first) and the FUSE mount (second) "
                      "differ:\n  %s" % (what, "\n  ".join(diff)))
    return None


def make_store(store, root_exp, limit=1 << 20):
    """Create the backing files of the external files of an EROFS view
    (cfsdump.expected_view()) below `store`, with deterministic content.
    Files larger than `limit`, and paths that several files of different
    sizes redirect to, are left out (a backing file whose size differs
    from the image's is a broken store, not something to compare).
    Returns read_object() for cfsoverlay.overlay_view()."""
    sizes = {}
    for path, size in cfsoverlay.external_files(root_exp):
        sizes.setdefault(path, set()).add(size)
    made = {}
    for path in sorted(sizes):
        if len(sizes[path]) != 1:
            continue
        size = next(iter(sizes[path]))
        if size > limit:
            continue
        full = os.path.join(os.fsencode(store), path)
        data = cfsoverlay.object_bytes(path, size)
        try:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "xb") as f:
                f.write(data)
        except OSError:
            continue    # a path component is a file already, or vice versa
        made[path] = data
    return made.get


def dump_line(path, mode, size=0, payload=None, content=None, digest=None,
              xattrs=(), uid=0, gid=0, nlink=1, mtime="1700000000.5"):
    """One dumpfile line (composefs-dump(5)); fields are plain text that
    needs no escaping except content, which is escaped here."""
    fields = [path, str(size), "%o" % mode, str(nlink), str(uid), str(gid), "0",
              mtime, payload if payload else "-",
              cfsdump.escape(content).decode() if content else "-",
              digest.hex() if digest else "-"]
    fields += ["%s=%s" % kv for kv in xattrs]
    return (" ".join(fields) + "\n").encode()
