#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""mount.composefs -o fuse, and its fallback to FUSE without CAP_SYS_ADMIN.

    test-fuse-mount-helper.py TOOLS_DIR

-o fuse mounts through composefs-fuse with the options translated
(basedir list, verity, digest); options FUSE cannot honour are refused.
Run without CAP_SYS_ADMIN (as nobody, /dev/fuse opened for the test),
mount.composefs says so and mounts through FUSE; with it (as root), it
mounts overlayfs as before. Every mount is unmounted with nothing left.
"""

import errno
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

S_IFDIR, S_IFREG = 0o040000, 0o100000


def fstype(mnt):
    key = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == key:
                return fields[fields.index("-") + 1]
    return None


def unmount(argv, mnt, tmp):
    r = cfstest.run(argv + [mnt], ok=None)
    if r.returncode != 0:
        raise Failure("%s failed: %s" % (argv, r.stderr.decode()))
    deadline = time.monotonic() + 10
    while cfsfuse.processes_mentioning(mnt):
        if time.monotonic() > deadline:
            raise Failure("composefs-fuse still running after unmount")
        time.sleep(0.05)
    if cfsfuse.mounts_below(tmp):
        raise Failure("left mounted: %r" % cfsfuse.mounts_below(tmp))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    if os.geteuid() != 0:
        cfstest.skip("needs root (to compare with and without CAP_SYS_ADMIN)")
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        cfstest.skip("/dev/fuse or fusermount3 is missing")
    if shutil.which("setpriv") is None:
        cfstest.skip("setpriv is not installed")
    tools_dir = sys.argv[1]
    helper = cfstest.tool(tools_dir, "mount.composefs")
    cfstest.tool(tools_dir, "composefs-fuse")
    good = cfsoverlay.object_bytes(b"good", 10000)
    bad = cfsoverlay.object_bytes(b"bad", 10000)
    paths = {}
    for name, data in (("good", good), ("bad", bad)):
        h = cfsverity.digest(data).hex()
        paths[name] = h[:2] + "/" + h[2:]
    dump = b"".join([
        cfsfuse.dump_line("/", S_IFDIR | 0o755),
        cfsfuse.dump_line("/bad", S_IFREG | 0o644, len(bad), payload=paths["bad"],
                          digest=cfsverity.digest(bad)),
        cfsfuse.dump_line("/good", S_IFREG | 0o644, len(good),
                          payload=paths["good"], digest=cfsverity.digest(good)),
    ])
    nobody = pwd.getpwnam("nobody")
    as_nobody = ["setpriv", "--reuid=%d" % nobody.pw_uid,
                 "--regid=%d" % nobody.pw_gid, "--clear-groups", "--inh-caps=-all"]
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-helper-") as tmp:
        os.chmod(tmp, 0o755)
        with cfstest.no_leaks(tmp):
            image = os.path.join(tmp, "image.cfs")
            r = cfstest.build_image(tools_dir, dump, image, extra=["--print-digest"])
            digest = r.stdout.decode().split()[-1]
            s1, s2 = os.path.join(tmp, "s1"), os.path.join(tmp, "s2")
            for store, name, data in ((s1, "good", good), (s2, "bad", bad)):
                p = os.path.join(store, paths[name])
                os.makedirs(os.path.dirname(p))
                with open(p, "wb") as f:
                    f.write(data[:-1] + b"!" if name == "bad" else data)
            cfstest.open_to_all(tmp)
            mnt = os.path.join(tmp, "mnt")
            os.mkdir(mnt)
            base = "basedir=%s:%s" % (s1, s2)

            # -o fuse as root, with verity and the image digest.
            r = cfstest.run([helper, "-o", "fuse,verity,digest=%s,%s" % (digest, base),
                             image, mnt], ok=None)
            if r.returncode != 0:
                raise Failure("mount.composefs -o fuse failed: %s"
                              % r.stderr.decode())
            if fstype(mnt) != cfsfuse.FSTYPE:
                raise Failure("-o fuse mounted %s" % fstype(mnt))
            if read(os.path.join(mnt, "good")) != good:
                raise Failure("-o fuse: wrong content")
            try:
                read(os.path.join(mnt, "bad"))
                raise Failure("-o fuse,verity served a tampered file")
            except OSError as e:
                if e.errno != errno.EIO:
                    raise Failure("tampered file gave %s, expected EIO" % e)
            unmount(["umount"], mnt, tmp)
            print("-o fuse: mounted through composefs-fuse, verity and digest "
                  "passed on")

            for opts, msg in (("fuse,digest=" + "1" * 64 + "," + base,
                               "wrong fs-verity digest"),
                              ("fuse,upperdir=%s,workdir=%s,%s" % (s1, s2, base),
                               "upperdir is not supported with fuse"),
                              ("fuse,idmap=/proc/self/ns/user," + base,
                               "idmap is not supported with fuse")):
                r = cfstest.run([helper, "-o", opts, image, mnt], ok=None)
                if r.returncode != 1 or msg.encode() not in r.stderr:
                    raise Failure("-o %s: exit %d, %r" % (opts, r.returncode,
                                                              r.stderr))
                if cfsfuse.mounts_below(tmp):
                    raise Failure("-o %s left a mount" % opts)
            print("-o fuse: unsupported options and a wrong digest refused")

            # Without CAP_SYS_ADMIN: a notice, then FUSE.
            mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
            os.chown(mnt, nobody.pw_uid, nobody.pw_gid)
            os.chmod("/dev/fuse", 0o666)
            try:
                r = cfstest.run(as_nobody + [helper, "-o", base, image, mnt], ok=None)
                if r.returncode != 0:
                    raise Failure("unprivileged mount.composefs failed: %s"
                                  % r.stderr.decode())
                if b"no CAP_SYS_ADMIN, mounting through composefs-fuse" \
                        not in r.stderr:
                    raise Failure("no notice of the fallback: %r" % r.stderr)
                if fstype(mnt) != cfsfuse.FSTYPE:
                    raise Failure("fallback mounted %s" % fstype(mnt))
                r = cfstest.run(as_nobody + ["cat", os.path.join(mnt, "good")], ok=None)
                if r.stdout != good:
                    raise Failure("fallback mount: wrong content")
                unmount(as_nobody + ["fusermount3", "-u"], mnt, tmp)
            finally:
                os.chmod("/dev/fuse", mode)
            print("without CAP_SYS_ADMIN: notice, then a FUSE mount")

            why = cfsfuse.kernel_unavailable()
            if why is None:
                r = cfstest.run([helper, "-o", base, image, mnt], ok=None)
                if r.returncode != 0 or r.stderr:
                    raise Failure("privileged mount: %d %r" % (r.returncode,
                                                                  r.stderr))
                kind = fstype(mnt)
                unmount(["umount"], mnt, tmp)
                if kind != "overlay":
                    raise Failure("with CAP_SYS_ADMIN the mount is %s" % kind)
                print("with CAP_SYS_ADMIN: the kernel mount, no fallback")
            else:
                print("kernel mount check skipped: %s" % why)
    return 0


if __name__ == "__main__":
    cfstest.main(main)
