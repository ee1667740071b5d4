#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-fuse shows what the kernel mount shows.

    test-fuse-compare.py TOOLS_DIR assets
    test-fuse-compare.py TOOLS_DIR random SEED[,SEED...]

Each image (built from a reference asset, or from a dumpfile of
tests/lib/gen-random-dump.py in both format versions) gets an object store
with a backing file for its external files, and is mounted with
composefs-fuse. The mount is compared with the dumpfile by the code the
kernel-mount tests use (cfsdump.compare_mount() on the overlay view of
cfsoverlay). Where the kernel mount is possible (root, EROFS, overlayfs),
the same image is also mounted with mount.composefs and the two mounts
must be indistinguishable: every name, stat field, xattr, symlink target,
content, SEEK_DATA/SEEK_HOLE answer and error.

What the kernel does with whiteouts, checked here on every image that has
them: a char 0/0 in the dumpfile is NOT a whiteout in the composefs mount;
it shows as an empty regular file with the xattrs trusted.overlay.whiteout
and user.overlay.whiteout, its directory gains trusted.overlay.whiteouts
and user.overlay.whiteouts (and opaque=x in format version 1). The root's
00..ff whiteouts are hidden.
"""

import os
import subprocess
import sys
import tempfile

import cfsfuse
import cfsoverlay
import cfstest
from cfstest import Failure

import cfsdump

GENERATOR = cfstest.GENERATOR


def whiteout_paths(root):
    out = []
    for n in cfsdump.walk(root):
        if n.link is None and n.ftype == cfsdump.S_IFCHR and \
                (n.rdev & cfsdump.U32) == 0:
            out.append(n.path())
    return out


def check_whiteouts(mnt, root, version):
    """The finding above, asserted directly (not only through the generic
    comparison)."""
    for p in whiteout_paths(root):
        full = os.path.join(os.fsencode(mnt), p.lstrip(b"/"))
        st = os.lstat(full)
        if not (st.st_mode & 0o170000 == 0o100000 and st.st_size == 0):
            raise Failure("%r: whiteout shown with mode %o size %d" % (
                p, st.st_mode, st.st_size))
        names = set(os.listxattr(full, follow_symlinks=False))
        if not {"trusted.overlay.whiteout", "user.overlay.whiteout"} <= names:
            raise Failure("%r: whiteout markers missing: %r" % (p, names))
        parent = os.path.dirname(full)
        pnames = set(os.listxattr(parent, follow_symlinks=False))
        want = {"trusted.overlay.whiteouts", "user.overlay.whiteouts"}
        if version >= 1:
            want |= {"trusted.overlay.opaque", "user.overlay.opaque"}
        if not want <= pnames:
            raise Failure("%r: parent lacks %r" % (p, want - pnames))
    for name in ("00", "7f", "ff"):
        if os.path.lexists(os.path.join(mnt, name)) and \
                name.encode() not in root.children:
            raise Failure("root whiteout %s is visible" % name)


def check_image(tools_dir, dump, version, label, tmp, strict=True):
    root = cfsdump.parse_dump(dump)
    image = os.path.join(tmp, "image.cfs")
    cfstest.build_image(tools_dir, dump, image, version=version, strict=strict)
    version = cfstest.image_version(image)
    store = os.path.join(tmp, "store")
    os.mkdir(store)
    read_object = cfsfuse.make_store(store, cfsdump.expected_view(root, version))
    expected = cfsoverlay.overlay_view(cfsdump.expected_view(root, version),
                                       read_object)
    fmnt = os.path.join(tmp, "fuse")
    kmnt = os.path.join(tmp, "kernel")
    os.mkdir(fmnt)
    os.mkdir(kmnt)
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    with cfsfuse.FuseMount(exe, image, fmnt, [store]):
        errors = []
        n = cfsdump.compare_mount(fmnt, expected, errors)
        if errors:
            raise Failure("%s: FUSE mount differs from the dumpfile:\n  %s"
                          % (label, "\n  ".join(errors)))
        check_whiteouts(fmnt, root, version)
        fsnap = cfsoverlay.snapshot(fmnt)
    msg = "%s: %d entries match the dumpfile" % (label, n)
    why = cfsfuse.compare_with_kernel(tools_dir, image, [store], kmnt, fsnap, label)
    if why is None:
        msg += ", and the kernel mount (%d paths)" % len(fsnap)
    else:
        msg += "; kernel comparison skipped: %s" % why
    print(msg)
    for d in (fmnt, kmnt):
        os.rmdir(d)
    subprocess.run(["rm", "-rf", store, image], check=True)


GENERATED = os.path.join(cfstest.TESTS_DIR, "assets", "generated")


def run_assets(tools_dir):
    """The generated cases of tests/assets/generated that hold no POSIX ACL
    xattr (their values are random bytes, not valid ACLs, and the
    kernel then refuses other xattr reads on the file through FUSE) and,
    when ../shared is there, every reference dumpfile."""
    cases = []
    gen = sorted(n for n in os.listdir(GENERATED) if n.endswith(".dump"))
    if len(gen) < 90:
        raise Failure("only %d generated cases in %s" % (len(gen), GENERATED))
    for n in gen:
        with open(os.path.join(GENERATED, n), "rb") as f:
            dump = f.read()
        # Whiteouts with several names are refused by mkcomposefs
        # (docs/compatibility.md, "Whiteouts with several names").
        if b"system.posix_acl" not in dump and \
                not cfsdump.linked_whiteouts(cfsdump.parse_dump(dump)):
            cases.append((n, dump, None, True))
    if len(cases) < 10:
        raise Failure("only %d generated cases without ACLs" % len(cases))
    shared = os.environ.get("COMPOSEFS_SHARED")
    updir = os.path.join(shared or "", "assets", "upstream")
    if shared and os.path.isdir(updir):
        for n in sorted(os.listdir(updir)):
            path = os.path.join(updir, n)
            if n.endswith((".dump", ".dump.gz")) and \
                    not n.startswith("should-fail-") and \
                    os.path.exists(path + ".sha256"):
                cases.append((n, cfstest.read_asset(path),
                              cfstest.asset_version(path),
                              n not in cfstest.NON_STRICT_ASSETS))
    else:
        print("note: no reference assets (COMPOSEFS_SHARED=%r): generated "
              "cases only" % shared)
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-") as tmp:
        with cfstest.no_leaks(tmp):
            for name, dump, version, strict in cases:
                check_image(tools_dir, dump, version, name, tmp, strict=strict)


def run_random(tools_dir, seeds):
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-") as tmp:
        with cfstest.no_leaks(tmp):
            for seed in seeds:
                for version in (0, 1):
                    dump = subprocess.run(
                        [sys.executable, GENERATOR, str(seed), "--version",
                         str(version)], stdout=subprocess.PIPE,
                        check=True).stdout
                    check_image(tools_dir, dump, version,
                                "seed %d version %d" % (seed, version), tmp)


def main():
    cfsfuse.require_fuse()
    if len(sys.argv) == 3 and sys.argv[2] == "assets":
        return run_assets(sys.argv[1])
    if len(sys.argv) == 4 and sys.argv[2] == "random":
        return run_random(sys.argv[1], [int(s) for s in sys.argv[3].split(",")])
    print("usage: test-fuse-compare.py TOOLS_DIR assets|random SEEDS",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    cfstest.main(main)
