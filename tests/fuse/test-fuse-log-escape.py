#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-fuse escapes the names it logs.

    test-fuse-log-escape.py TOOLS_DIR

An image whose file names and redirects (backing file paths) hold a
newline, an ESC sequence and a backslash is mounted with -o verity; the
backing files are missing or changed, so each is logged. Every message
must stay one line with no control byte, the names shown with those
bytes (and the backslash) as \\xHH.
"""

import errno
import os
import sys
import tempfile

import cfsfuse
import cfstest
import cfsverity
from cfstest import Failure

S_IFDIR, S_IFREG = 0o040000, 0o100000


def main():
    cfsfuse.require_fuse()
    tools_dir = sys.argv[1]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    missing = b"m" * 9000
    changed = b"c" * 9000
    # Dumpfile fields: \xHH escapes, decoded by mkcomposefs.
    lines = [
        cfsfuse.dump_line("/", S_IFDIR | 0o755),
        cfsfuse.dump_line("/a\\x0ab\\x1b[31m", S_IFREG | 0o644, len(missing),
                          payload="x\\x0ay/\\x1b]0;pwned\\x07\\x5cz",
                          digest=cfsverity.digest(missing)),
        cfsfuse.dump_line("/changed\\x0d\\x0a", S_IFREG | 0o644, len(changed),
                          payload="c\\x0a/obj\\x7f",
                          digest=cfsverity.digest(changed)),
    ]
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-logesc-") as tmp:
        with cfstest.no_leaks(tmp):
            image = os.path.join(tmp, "image.cfs")
            cfstest.build_image(tools_dir, b"".join(lines), image)
            store = os.path.join(tmp, "store")
            os.makedirs(os.path.join(store, "c\n"))
            obj = os.path.join(store, "c\n", "obj\x7f")
            with open(obj, "wb") as f:
                f.write(changed)
            mnt = os.path.join(tmp, "mnt")
            os.mkdir(mnt)
            with cfsfuse.FuseMount(exe, image, mnt, [store],
                                   extra=["verity"]) as m:
                try:
                    open(os.path.join(mnt, "a\nb\x1b[31m"), "rb").close()
                    raise Failure("a missing backing file opened")
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise Failure("missing backing file: %s" % e)
                # The read error of a block changed after open is
                # checked after the log (it is the subject of another
                # test).
                fd = os.open(os.path.join(mnt, "changed\r\n"), os.O_RDONLY)
                try:
                    with open(obj, "r+b") as f:
                        f.write(b"X")
                    try:
                        os.pread(fd, 100, 0)
                        read_error = "a changed block was served"
                    except OSError as e:
                        read_error = None if e.errno == errno.EIO else str(e)
                finally:
                    os.close(fd)
    log = m.stderr
    expected = [
        b"composefs-fuse: '/a\\x0ab\\x1b[31m': backing file "
        b"'x\\x0ay/\\x1b]0;pwned\\x07\\x5cz': No such file or directory",
        b"composefs-fuse: '/changed\\x0d\\x0a': backing file 'c\\x0a/obj\\x7f': "
        b"block 0 (offset 0) fails fs-verity verification",
    ]
    got = log.split(b"\n")
    if got[-1] == b"":
        got.pop()
    if got[:1] != expected[:1]:
        raise Failure("log of a missing backing file:\n  got      %r\n"
                      "  expected %r" % (log, expected[0]))
    if got != expected:
        raise Failure("log lines differ:\n  got      %r\n  expected %r" % (
            got, expected))
    for line in got:
        if any(c < 0x20 or c == 0x7f for c in line):
            raise Failure("control byte in %r" % line)
    if read_error:
        raise Failure(read_error)
    print("log lines escaped:")
    print("\n".join("  " + l.decode() for l in got))
    return 0


if __name__ == "__main__":
    cfstest.main(main)
