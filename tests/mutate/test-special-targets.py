#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""An output path that names a device or a FIFO is written to, never
replaced: mkcomposefs and composefs-dump write images through a temporary
file renamed over the target, and as root that rename once turned
/dev/null into a regular file.

    test-special-targets.py --tools DIR [ignored mutation test options]

Uses a private null device node made with mknod (SKIP when that is not
allowed) and a FIFO, both in a temporary directory.
"""

import argparse
import os
import stat
import subprocess
import tempfile
import threading

import cfsmutate
import cfstest

DUMP = b"/ 4096 40755 2 0 0 0 0.0 - - -\n/f 3 100644 1 0 0 0 0.0 - abc -\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True)
    a, _ = ap.parse_known_args()
    mk = os.path.join(a.tools, "mkcomposefs")
    dump = os.path.join(a.tools, "composefs-dump")
    problems = []
    with tempfile.TemporaryDirectory(prefix="cfs-targets-") as tmp:
        src = os.path.join(tmp, "in.dump")
        with open(src, "wb") as f:
            f.write(DUMP)
        ref = os.path.join(tmp, "ref.cfs")
        subprocess.run([mk, "--from-file", src, ref], check=True)
        image = open(ref, "rb").read()

        null = os.path.join(tmp, "null")
        try:
            os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            cfsmutate.skip("cannot create a device node (not root)")
        for args in ([mk, "--from-file", src, null], [dump, ref, null]):
            r = subprocess.run(args, capture_output=True)
            if r.returncode != 0:
                problems.append("%s: %s" % (args, r.stderr))
            if not stat.S_ISCHR(os.lstat(null).st_mode):
                problems.append("%s replaced the device node" % os.path.basename(args[0]))
                os.unlink(null)
                os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))

        fifo = os.path.join(tmp, "fifo")
        os.mkfifo(fifo)
        for args in ([mk, "--from-file", src, fifo], [dump, ref, fifo]):
            got = []
            reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()),
                                      daemon=True)
            reader.start()
            r = subprocess.run(args, capture_output=True, timeout=60)
            reader.join(60)
            if r.returncode != 0:
                problems.append("%s: %s" % (args, r.stderr))
            if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
                problems.append("%s replaced the FIFO" % os.path.basename(args[0]))
                break
            if got != [image]:
                problems.append("%s: the FIFO did not get the image" % os.path.basename(args[0]))
    return cfsmutate.report(problems, 4, "special targets")


if __name__ == "__main__":
    cfstest.main(main)
