#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-fuse command line: errors, options and the mount it makes.

    test-fuse-cli.py TOOLS_DIR

Bad invocations and bad images exit 1 with a message naming the problem
and mount nothing. -o digest= accepts the image's fs-verity digest and
refuses any other; basedir= may list several directories (searched in
order) and may be repeated; -s serves single-threaded. The mount is
read-only, of type fuse.composefs-fuse, with default_permissions, and
statfs reports the image's blocks.
"""

import errno
import os
import sys
import tempfile

import cfsfuse
import cfsoverlay
import cfstest
from cfstest import Failure

S_IFDIR, S_IFREG = 0o040000, 0o100000


def expect_fail(argv, fragment, tmp, prefix="composefs-fuse: "):
    r = cfstest.run(argv, ok=None)
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != 1:
        raise Failure("%r exited %d, expected 1 (%s)" % (argv[1:], r.returncode,
                                                             err))
    if fragment not in err or not err.startswith(prefix):
        raise Failure("%r: message %r lacks %r" % (argv[1:], err, fragment))
    if cfsfuse.mounts_below(tmp):
        raise Failure("%r left a mount behind" % argv[1:])


def main():
    cfsfuse.require_fuse()
    tools_dir = sys.argv[1]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    a = cfsoverlay.object_bytes(b"a", 5000)
    b = cfsoverlay.object_bytes(b"b", 6000)
    dump = b"".join([
        cfsfuse.dump_line("/", S_IFDIR | 0o755),
        cfsfuse.dump_line("/a", S_IFREG | 0o644, len(a), payload="aa/first"),
        cfsfuse.dump_line("/b", S_IFREG | 0o644, len(b), payload="bb/second"),
    ])
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-cli-") as tmp:
        with cfstest.no_leaks(tmp):
            image = os.path.join(tmp, "image.cfs")
            r = cfstest.build_image(tools_dir, dump, image,
                                    extra=["--print-digest"])
            digest = r.stdout.decode().split()[-1]
            mnt = os.path.join(tmp, "mnt")
            os.mkdir(mnt)
            s1, s2 = os.path.join(tmp, "s1"), os.path.join(tmp, "s2")
            os.makedirs(os.path.join(s1, "aa"))
            os.makedirs(os.path.join(s2, "aa"))
            os.makedirs(os.path.join(s2, "bb"))
            with open(os.path.join(s1, "aa", "first"), "wb") as f:
                f.write(a)
            with open(os.path.join(s2, "aa", "first"), "wb") as f:
                f.write(b"wrong layer: the first basedir has it")
            with open(os.path.join(s2, "bb", "second"), "wb") as f:
                f.write(b)
            junk = os.path.join(tmp, "junk.cfs")
            with open(junk, "wb") as f:
                f.write(b"\0" * 8192)

            expect_fail([exe], "no mountpoint given", tmp)
            expect_fail([exe, mnt], "no image given", tmp)
            expect_fail([exe, "-o", "source=" + tmp + "/nope.cfs", mnt],
                        "cannot open '%s/nope.cfs': No such file" % tmp, tmp)
            expect_fail([exe, "-o", "source=" + junk, mnt], junk, tmp)
            expect_fail([exe, "-o", cfsfuse.fuse_options(image, [tmp + "/none"]),
                         mnt], "cannot open basedir '%s/none'" % tmp, tmp)
            expect_fail([exe, "-o", cfsfuse.fuse_options(image, [s1], ["digest=" +
                                                                     "0" * 64]),
                         mnt], "wrong fs-verity digest", tmp)
            expect_fail([exe, "-o", cfsfuse.fuse_options(image, [s1],
                                                         ["digest=xyz"]), mnt],
                        "invalid digest 'xyz'", tmp)
            # libfuse checks the mount point itself, with its own message.
            expect_fail([exe, "-f", "-o", cfsfuse.fuse_options(image, [s1]),
                         tmp + "/nomnt"], "bad mount point", tmp, prefix="fuse: ")
            for flag in ("--help", "-V"):
                r = cfstest.run([exe, flag], ok=None)
                if r.returncode != 0 or b"composefs-fuse" not in r.stdout:
                    raise Failure("%s: exit %d, output %r" % (
                        flag, r.returncode, r.stdout[:200]))
            print("bad invocations fail cleanly")

            # Two basedirs in one option, searched in order; the right
            # digest; single-threaded.
            with cfsfuse.FuseMount(exe, image, mnt, [s1, s2],
                                   extra=["digest=" + digest], args=["-s"]):
                check_mount(mnt, image, a, b)
            # The same with basedir= repeated.
            with cfsfuse.FuseMount(exe, image, mnt, [s1],
                                   extra=["basedir=" + s2]):
                check_mount(mnt, image, a, b)
            print("digest, basedir order, repeated basedir, -s: ok")
    return 0


def check_mount(mnt, image, a, b):
    with open(os.path.join(mnt, "a"), "rb") as f:
        if f.read() != a:
            raise Failure("/a not served from the first basedir")
    with open(os.path.join(mnt, "b"), "rb") as f:
        if f.read() != b:
            raise Failure("/b not found in the second basedir")
    for op in (lambda: open(os.path.join(mnt, "a"), "r+b"),
               lambda: os.mkdir(os.path.join(mnt, "new")),
               lambda: open(os.path.join(mnt, "new"), "wb")):
        try:
            op()
        except OSError as e:
            if e.errno != errno.EROFS:
                raise Failure("write attempt gave %s, expected EROFS"
                              % errno.errorcode.get(e.errno, e.errno))
        else:
            raise Failure("a write attempt succeeded")
    key = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == key:
                sep = fields.index("-")
                mopts, fstype, sopts = fields[5], fields[sep + 1], fields[sep + 3]
    if fstype != cfsfuse.FSTYPE or "ro" not in mopts.split(",") or \
            "default_permissions" not in sopts.split(","):
        raise Failure("mount is %s %s %s" % (fstype, mopts, sopts))
    s = os.statvfs(mnt)
    if s.f_blocks != os.path.getsize(image) // 4096 or s.f_namemax != 255 or \
            s.f_bsize != 4096:
        raise Failure("statfs: blocks %d bsize %d namemax %d" % (
            s.f_blocks, s.f_bsize, s.f_namemax))


if __name__ == "__main__":
    cfstest.main(main)
