#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Kernel test: mount images as plain EROFS and compare with their dumpfile.

    test-kernel-mount.py TOOLS_DIR ASSET
    test-kernel-mount.py TOOLS_DIR --random SEED[,SEED...]

For a reference asset, the image mkcomposefs builds from it is mounted
(file-backed, or through a loop device if that fails) and every entry is
compared with what the dumpfile says the kernel must show (names, types,
modes, owners, mtimes, sizes, inline contents, symlink targets, device
numbers, xattrs as stored in the image, directory nlink, hard links sharing
an inode).  The reference image from $COMPOSEFS_SHARED/golden is checked the
same way, which keeps the expectations honest.  With --random the dumpfiles
come from tests/lib/gen-random-dump.py (both format versions).

Needs root and EROFS; reports SKIP with the reason otherwise.  Nothing may
stay mounted or attached to a loop device afterwards.
"""

import gzip
import os
import shutil
import subprocess
import sys
import tempfile

import cfsdump
import cfstest
from cfstest import Failure

GENERATOR = cfstest.GENERATOR


def probe_mount(tmp, fallback_image):
    """Skip unless this machine can mount an EROFS image at all.  The probe
    uses an image made by mkfs.erofs (or the reference image), so a broken
    image of ours fails the test instead of skipping it."""
    why = cfstest.kernel_mount_available()
    if why:
        cfstest.skip(why)
    probe = fallback_image
    mkfs = shutil.which("mkfs.erofs")
    if mkfs:
        src = os.path.join(tmp, "probe-src")
        os.mkdir(src)
        probe = os.path.join(tmp, "probe.erofs")
        r = subprocess.run([mkfs, "-q", probe, src], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            probe = fallback_image
        shutil.rmtree(src)
    if probe is None:
        return
    try:
        with cfstest.no_leaks(tmp), cfstest.erofs_mounted(probe, tmp):
            pass
    except cfstest.MountUnavailable as e:
        cfstest.skip("cannot mount EROFS here: %s" % e)


def check_image(image, root, label, tmp):
    version = cfstest.image_version(image)
    try:
        n = cfstest.kernel_compare(image, root, version, tmp)
    except cfstest.MountUnavailable as e:
        raise Failure("%s: %s" % (label, e))
    print("%s: %d entries match (format version %d)" % (label, n, version))


def run_asset(tools_dir, asset):
    shared = cfstest.shared_dir()
    path = os.path.join(shared, "assets", "upstream", asset)
    if not os.path.exists(path):
        cfstest.skip("asset %s not present in %s" % (asset, shared))
    version = cfstest.asset_version(path)
    strict = os.path.basename(path) not in cfstest.NON_STRICT_ASSETS
    dump = cfstest.read_asset(path)
    root = cfsdump.parse_dump(dump)
    with tempfile.TemporaryDirectory(prefix="cfs-kernel-") as tmp:
        ref = os.path.join(shared, "golden", asset.replace(".gz", "") + ".cfs")
        if not os.path.exists(ref) and os.path.exists(ref + ".gz"):
            unpacked = os.path.join(tmp, "reference.cfs")
            with gzip.open(ref + ".gz") as f, open(unpacked, "wb") as o:
                shutil.copyfileobj(f, o)
            ref = unpacked
        if not os.path.exists(ref):
            ref = None
        probe_mount(tmp, ref)
        if ref is not None:
            check_image(ref, root, "reference image", tmp)
        out = os.path.join(tmp, "image.cfs")
        cfstest.build_image(tools_dir, dump, out, version=version, strict=strict)
        check_image(out, root, "our image", tmp)
    return 0


def run_random(tools_dir, seeds):
    with tempfile.TemporaryDirectory(prefix="cfs-kernel-") as tmp:
        probe_mount(tmp, None)
        for seed in seeds:
            for version in (0, 1):
                dump = subprocess.run(
                    [sys.executable, GENERATOR, str(seed), "--version",
                     str(version)], stdout=subprocess.PIPE, check=True).stdout
                out = os.path.join(tmp, "image.cfs")
                cfstest.build_image(tools_dir, dump, out, version=version)
                check_image(out, cfsdump.parse_dump(dump),
                            "seed %d version %d" % (seed, version), tmp)
                os.unlink(out)
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[2] == "--random":
        return run_random(sys.argv[1],
                          [int(s) for s in sys.argv[3].split(",")])
    if len(sys.argv) != 3:
        print("usage: test-kernel-mount.py TOOLS_DIR ASSET|--random SEEDS",
              file=sys.stderr)
        return 2
    return run_asset(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    cfstest.main(main)
