#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# mkcomposefs SOURCEDIR IMAGE on generated trees: `composefs-info dump` of
# the image must equal an independent walk of the source for every option
# (docs/design.md, "Directory scan", "Content pass"); the image bytes do not
# depend on --threads or the descriptor limit; --print-digest-only prints the digest of the image
# that --print-digest writes; fsck.erofs accepts every image.
# Usage: test-build-tree.py MKCOMPOSEFS COMPOSEFS-INFO

import os
import resource
import shutil
import subprocess
import sys
import tempfile

import cfsverity
from cfsbuild import (Options, check, diff_lines, expected_dump, main,
                      make_tree, normalize, run, skip)

OPTION_SETS = [
    Options(),
    Options(use_epoch=True),
    Options(skip_devices=True),
    Options(skip_xattrs=True),
    Options(user_xattrs=True),
    Options(hardlinks=True),
    Options(hardlinks=True, skip_devices=True, user_xattrs=True, use_epoch=True),
]


def test():
    mk, info = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        skip("needs root for owners, devices and trusted.* xattrs")
    have_fsck = shutil.which("fsck.erofs") is not None
    tmp = tempfile.mkdtemp(prefix="cfs-build-tree-")
    try:
        img = os.path.join(tmp, "img")
        for seed in (1, 2, 3):
            src = os.path.join(tmp, "src%d" % seed)
            make_tree(src, seed, big=(seed == 1))
            sets = OPTION_SETS if seed == 1 else OPTION_SETS[::3]
            for opts in sets:
                what = "seed %d %s" % (seed, " ".join(opts.args()) or "(defaults)")
                run([mk] + opts.args() + [src, img])
                actual = normalize(run([info, "dump", img]).stdout.decode())
                expected = expected_dump(src, opts)
                check(actual == expected, "%s: dump differs from the source:\n%s" % (
                    what, diff_lines(expected, actual)))
                if have_fsck:
                    run(["fsck.erofs", img])

            # The bytes do not depend on the number of threads.
            images = []
            for threads in (1, 2, 7):
                out = os.path.join(tmp, "img-t%d" % threads)
                run([mk, "--threads=%d" % threads, src, out])
                with open(out, "rb") as f:
                    images.append(f.read())
            check(all(i == images[0] for i in images),
                  "seed %d: image differs between --threads=1, 2 and 7" % seed)
            ref = images[0]

            # Nor on how many files the scan may hold open for the
            # workers: with 288 descriptors it holds 16 at most and waits
            # for the workers (the tree has more regular files), with 100
            # it holds none.
            for limit in (288, 100):
                for threads in (2, 7):
                    out = os.path.join(tmp, "img-l%d" % limit)
                    subprocess.run([mk, "--threads=%d" % threads, src, out],
                                   check=True, preexec_fn=lambda l=limit:
                                   resource.setrlimit(resource.RLIMIT_NOFILE,
                                                      (l, l)))
                    with open(out, "rb") as f:
                        check(f.read() == ref,
                              "seed %d: image differs with %d descriptors and "
                              "--threads=%d" % (seed, limit, threads))

            # --print-digest-only = --print-digest = digest of the image.
            r1 = run([mk, "--print-digest", src, img]).stdout.decode().strip()
            r2 = run([mk, "--print-digest-only", src]).stdout.decode().strip()
            with open(img, "rb") as f:
                data = f.read()
            check(data == ref, "seed %d: --print-digest changed the image" % seed)
            want = cfsverity.hexdigest(data)
            check(r1 == want and r2 == want,
                  "seed %d: digests %s / %s, image digest %s" % (seed, r1, r2, want))

        # A trailing slash on SOURCE is harmless.
        src = os.path.join(tmp, "src2")
        run([mk, src, img])
        with open(img, "rb") as f:
            a = f.read()
        run([mk, src + "/", img])
        with open(img, "rb") as f:
            check(f.read() == a, "a trailing slash changed the image")
    finally:
        shutil.rmtree(tmp)


main(test)
