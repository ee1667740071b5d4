#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Generated source trees through composefs-fuse.

    test-fuse-tree.py TOOLS_DIR SEED[,SEED...]

Each random tree (cfstree.make_tree(), the generator of the kernel mount
tests: devices, FIFOs, symlinks up to 1000 bytes, owners, modes,
nanosecond mtimes, user.* and trusted.* xattrs, a multi-block directory,
files up to 3 MiB) is built with mkcomposefs --digest-store and mounted
with composefs-fuse, plain and with -o verity. Each mount is compared with
the source by cfstree.compare_trees(), the comparison the kernel mount
tests make, and, where the kernel mount is possible, with mount.composefs
of the same image. Needs root (the trees have devices and owners).
"""

import os
import subprocess
import sys
import tempfile

import cfsfuse
import cfsoverlay
import cfstest
from cfstest import Failure

import cfstree


def main():
    cfsfuse.require_fuse()
    if os.geteuid() != 0:
        cfstest.skip("generating the trees needs root (devices, owners)")
    tools_dir = sys.argv[1]
    seeds = [int(s) for s in sys.argv[2].split(",")]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    mkcomposefs = cfstest.tool(tools_dir, "mkcomposefs")
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-tree-") as tmp:
        with cfstest.no_leaks(tmp):
            for seed in seeds:
                tree = os.path.join(tmp, "tree")
                store = os.path.join(tmp, "store")
                image = os.path.join(tmp, "image.cfs")
                mnt = os.path.join(tmp, "mnt")
                n = cfstree.make_tree(tree, seed)
                cfstest.run([mkcomposefs, "--digest-store=" + store, tree, image])
                os.mkdir(mnt)
                try:
                    for extra in ([], ["verity"]):
                        with cfsfuse.FuseMount(exe, image, mnt, [store],
                                               extra=extra) as m:
                            got = cfstree.compare_trees(tree, mnt)
                            if extra == []:
                                fsnap = cfsoverlay.snapshot(mnt)
                        if got != n or m.stderr:
                            raise Failure("seed %d %s: %d of %d entries "
                                          "compared; messages: %r" % (
                                                  seed, extra, got, n, m.stderr))
                except cfstree.Failure as e:
                    raise Failure("seed %d: %s" % (seed, e))
                msg = "seed %d: %d entries identical to the source, also " \
                    "with -o verity" % (seed, n)
                kmnt = os.path.join(tmp, "kernel")
                os.mkdir(kmnt)
                why = cfsfuse.compare_with_kernel(tools_dir, image, [store], kmnt, fsnap,
                                                  "seed %d" % seed)
                os.rmdir(kmnt)
                if why is None:
                    msg += ", and to the kernel mount"
                else:
                    msg += "; kernel comparison skipped: %s" % why
                print(msg)
                os.rmdir(mnt)
                subprocess.run(["rm", "-rf", tree, store, image], check=True)
    return 0


if __name__ == "__main__":
    cfstest.main(main)
