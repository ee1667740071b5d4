#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""An unprivileged user mounts an image with composefs-fuse and reads it.

    test-fuse-unprivileged.py TOOLS_DIR

Run as root, the test makes /dev/fuse accessible to everybody for its
duration (the permissions are restored afterwards) and does the mounting,
reading and unmounting as nobody (setpriv --reuid=nobody). Run as another
user it does the same as that user.

nobody must see what it would see on the kernel mount of the same image:
where the kernel mount is possible the two are compared through nobody's
eyes (trusted.* names are not listed to it, a 0600 file owned by root
cannot be opened). Otherwise the content is checked against the dumpfile.
It then mounts again as a daemon (no -f) and checks that fusermount3 -u
leaves no mount and no process behind.
"""

import ast
import contextlib
import hashlib
import os
import pwd
import shutil
import stat
import sys
import tempfile
import time

import cfsfuse
import cfsoverlay
import cfstest
import cfsverity
from cfstest import Failure

SNAPSHOT = os.path.join(cfstest.LIB_DIR, "fuse-snapshot.py")
S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000


def make_dump():
    ext = cfsoverlay.object_bytes(b"big", 100000)
    ext_path = cfsverity.digest(ext).hex()
    ext_path = ext_path[:2] + "/" + ext_path[2:]
    lines = [
        cfsfuse.dump_line("/", S_IFDIR | 0o755, xattrs=[("user.top", "1"),
                                                       ("trusted.secret", "x")]),
        cfsfuse.dump_line("/dir", S_IFDIR | 0o755),
        cfsfuse.dump_line("/dir/big", S_IFREG | 0o644, len(ext), payload=ext_path,
                          digest=cfsverity.digest(ext), nlink=2,
                          xattrs=[("user.kind", "external")]),
        cfsfuse.dump_line("/dir/small", S_IFREG | 0o644, 11,
                          content=b"hello world", uid=1000, gid=1000),
        cfsfuse.dump_line("/private", S_IFREG | 0o600, 6, content=b"secret"),
        cfsfuse.dump_line("/hard", S_IFREG | 0o644, payload="/dir/big")
        .replace(b" 100644 ", b" @100644 "),
        cfsfuse.dump_line("/sym", S_IFLNK | 0o777, 9, payload="dir/small"),
    ]
    return b"".join(lines), {ext_path: ext}


@contextlib.contextmanager
def fuse_device_open_to_all():
    """chmod 666 /dev/fuse for the test; restored afterwards."""
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


def as_user(prefix, argv, ok=True):
    return cfstest.run(list(prefix) + argv, ok=ok)


def snapshot_as(prefix, mnt):
    r = as_user(prefix, [sys.executable, SNAPSHOT, mnt])
    return ast.literal_eval(r.stdout.decode())


def check_view(snap):
    """What an unprivileged user must see, whatever the comparison."""
    root = snap[b"/"]
    if "trusted.secret" in root["xattrs"]:
        raise Failure("trusted.* listed to an unprivileged user: %r"
                      % (root["xattrs"],))
    if "user.top" not in root["xattrs"]:
        raise Failure("user.top missing from %r" % (root["xattrs"],))
    big = cfsoverlay.object_bytes(b"big", 100000)
    for p in (b"/dir/big", b"/hard"):
        if snap[p]["content"][0] != hashlib.sha256(big).hexdigest():
            raise Failure("%r: wrong content %r" % (p, snap[p]["content"]))
    if snap[b"/dir/big"]["ident"] != snap[b"/hard"]["ident"]:
        raise Failure("hard links have different inode numbers")
    if snap[b"/dir/small"]["content"][0] != \
            hashlib.sha256(b"hello world").hexdigest():
        raise Failure("/dir/small: wrong content")
    if snap[b"/sym"]["target"] != b"dir/small":
        raise Failure("/sym: wrong target")


def main():
    if os.geteuid() != 0:
        cfsfuse.require_fuse()
    if not os.path.exists("/dev/fuse"):
        cfstest.skip("/dev/fuse does not exist")
    if shutil.which("fusermount3") is None:
        cfstest.skip("fusermount3 is not installed")
    tools_dir = sys.argv[1]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            cfstest.skip("setpriv is not installed")
        try:
            pw = pwd.getpwnam("nobody")
        except KeyError:
            cfstest.skip("there is no user nobody")
        uid, gid = pw.pw_uid, pw.pw_gid
        prefix = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                  "--clear-groups", "--inh-caps=-all"]
        for d in (os.path.dirname(exe), cfstest.LIB_DIR):
            if not os.access(d, os.X_OK, effective_ids=False):
                cfstest.skip("%s is not reachable by nobody" % d)
        device = fuse_device_open_to_all()
    else:
        uid, gid = os.geteuid(), os.getegid()
        prefix = []
        device = contextlib.nullcontext()

    dump, objects = make_dump()
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-user-") as tmp, device:
        os.chmod(tmp, 0o755)
        image = os.path.join(tmp, "image.cfs")
        cfstest.build_image(tools_dir, dump, image)
        os.chmod(image, 0o644)
        store = os.path.join(tmp, "store")
        for p, data in objects.items():
            full = os.path.join(store, p)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
        cfstest.open_to_all(tmp)
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        os.chown(mnt, uid, gid)

        with cfstest.no_leaks(tmp):
            m = cfsfuse.FuseMount(exe, image, mnt, [store], prefix=prefix,
                                  unmount_prefix=prefix)
            with m:
                fsnap = snapshot_as(prefix, mnt)
                r = as_user(prefix, ["cat", os.path.join(mnt, "private")],
                            ok=None)
                if r.returncode == 0:
                    raise Failure("nobody could read a 0600 root file")
            check_view(fsnap)
            print("mounted and read as uid %d: %d paths" % (uid, len(fsnap)))

            kmnt = os.path.join(tmp, "kernel")
            os.mkdir(kmnt)
            why = cfsfuse.compare_with_kernel(
                tools_dir, image, [store], kmnt, fsnap, "as uid %d" % uid,
                snapshot=lambda m: snapshot_as(prefix, m))
            os.rmdir(kmnt)
            if why is None:
                print("identical to the kernel mount seen by the same user")
            else:
                print("kernel comparison skipped: %s" % why)

            # Daemon mode: the command returns once mounted; after
            # fusermount3 -u neither the mount nor the daemon may remain.
            as_user(prefix, [exe, "-o", cfsfuse.fuse_options(image, [store]),
                             mnt])
            if not cfsfuse.is_fuse_mounted(mnt):
                raise Failure("daemon mode did not leave a mount")
            if as_user(prefix, ["cat", os.path.join(mnt, "dir", "small")]) \
                    .stdout != b"hello world":
                raise Failure("daemon mode: wrong content")
            as_user(prefix, ["fusermount3", "-u", mnt])
            deadline = time.monotonic() + 10
            while cfsfuse.processes_mentioning(mnt):
                if time.monotonic() > deadline:
                    raise Failure("composefs-fuse still running after "
                                  "unmount: %r"
                                  % cfsfuse.processes_mentioning(mnt))
                time.sleep(0.05)
            if cfsfuse.mounts_below(tmp):
                raise Failure("left mounted: %r" % cfsfuse.mounts_below(tmp))
            print("daemon mode: unmounted, no process left")
    return 0


if __name__ == "__main__":
    cfstest.main(main)
