#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""mount.composefs -o fuse with an image and mount points whose names
start with '-'.

    test-fuse-helper-dash.py TOOLS_DIR

Given after "--", an image named "-i.cfs" and mount points named "-o" and
"--help" (relative to the working directory) must be mounted as such:
composefs-fuse must not read them as options (it would print its help,
or take "-o" as an option, and mount nothing).
"""

import os
import subprocess
import sys
import tempfile
import time

import cfsfuse
import cfstest
import cfsverity
from cfstest import Failure

S_IFDIR, S_IFREG = 0o040000, 0o100000


def main():
    if os.geteuid() != 0:
        cfstest.skip("mount.composefs -o fuse is run as root here")
    cfsfuse.require_fuse()
    tools_dir = sys.argv[1]
    helper = cfstest.tool(tools_dir, "mount.composefs")
    cfstest.tool(tools_dir, "composefs-fuse")
    data = b"dash test content\n" * 100
    h = cfsverity.digest(data).hex()
    dump = b"".join([
        cfsfuse.dump_line("/", S_IFDIR | 0o755),
        cfsfuse.dump_line("/f", S_IFREG | 0o644, len(data),
                          payload=h[:2] + "/" + h[2:],
                          digest=cfsverity.digest(data)),
    ])
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-dash-") as tmp:
        with cfstest.no_leaks(tmp):
            cfstest.build_image(tools_dir, dump, os.path.join(tmp, "-i.cfs"))
            store = os.path.join(tmp, "store")
            os.makedirs(os.path.join(store, h[:2]))
            with open(os.path.join(store, h[:2], h[2:]), "wb") as f:
                f.write(data)
            for name in ("-o", "--help"):
                mnt = os.path.join(tmp, name)
                os.mkdir(mnt)
                r = subprocess.run([helper, "-o", "fuse,basedir=" + store, "--",
                                    "-i.cfs", name], cwd=tmp,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                mounted = cfsfuse.is_fuse_mounted(mnt)
                try:
                    if r.returncode != 0 or not mounted:
                        raise Failure(
                            "mount.composefs -o fuse -- -i.cfs %s: exit %d, "
                            "mounted %s, stdout %r, stderr %r" % (
                                name, r.returncode, mounted, r.stdout[:200],
                                r.stderr[:300]))
                    with open(os.path.join(mnt, "f"), "rb") as f:
                        if f.read() != data:
                            raise Failure("%s: wrong content" % name)
                finally:
                    if mounted:
                        subprocess.run(["umount", mnt])
                deadline = time.monotonic() + 10
                while cfsfuse.processes_mentioning(mnt) and \
                        time.monotonic() < deadline:
                    time.sleep(0.05)
                print("mounted and read at %r" % name)
    return 0


if __name__ == "__main__":
    cfstest.main(main)
