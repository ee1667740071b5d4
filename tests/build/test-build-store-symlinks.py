#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# An object store that someone else can write into must not lead
# mkcomposefs (run as root here) to write anywhere else: nothing below
# the store is followed if it is a symlink. A two-hex subdirectory that is
# a symlink (to a directory outside), a FIFO or a regular file is refused
# with a message naming it; an object name held by a symlink (to a file
# outside), a FIFO or a device is replaced by the object; a directory in
# place of an object is refused. Every case runs with openat2() and again
# with the fallback for kernels without it, NO_OPENAT2 being a library to
# preload that makes openat2() fail with ENOSYS.
# Usage: test-build-store-symlinks.py MKCOMPOSEFS COMPOSEFS-INFO NO_OPENAT2

import os
import shutil
import stat
import subprocess
import sys
import tempfile

from cfsbuild import check, check_store, main, skip

VICTIM = b"must stay as it is\n"


def make_source(src):
    os.mkdir(src)
    for i in range(8):
        with open(os.path.join(src, "f%d" % i), "wb") as f:
            f.write(bytes((i * 31 + j) % 256 for j in range(1000 + 5000 * i)))


def tree_state(path):
    """Everything below @path: names, types and contents."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            data = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, path)] = (stat.S_IFMT(st.st_mode), data)
    return out


def run_mk(mk, src, store, img, fallback):
    env = dict(os.environ)
    if fallback:
        env["LD_PRELOAD"] = fallback
        # The preload comes before the sanitizer runtime in such builds.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return subprocess.run([mk, "--digest-store=" + store, src, img], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


def one_case(mk, tmp, objects, name, plant, expect, fallback):
    """@plant(store, outside, subdir, objname) prepares the store;
    @expect is None (success) or the expected message fragment."""
    case = os.path.join(tmp, "%s-%s" % (name, "fallback" if fallback else "openat2"))
    os.mkdir(case)
    src, store = os.path.join(case, "src"), os.path.join(case, "store")
    outside, img = os.path.join(case, "outside"), os.path.join(case, "img")
    make_source(src)
    os.mkdir(store)
    os.mkdir(outside)
    with open(os.path.join(outside, "victim"), "wb") as f:
        f.write(VICTIM)
    os.mknod(os.path.join(outside, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    subdir, objname = objects[0].split("/")
    plant(store, outside, subdir, objname)
    before = tree_state(outside)

    r = run_mk(mk, src, store, img, fallback)
    err = r.stderr.decode("utf-8", "replace")
    where = "%s (%s)" % (name, "fallback" if fallback else "openat2")
    check(r.returncode in (0, 1), "%s: exit %d: %s" % (where, r.returncode, err))
    check("preload" not in err, "%s: %s" % (where, err))
    check(tree_state(outside) == before, "%s: mkcomposefs wrote outside the store: %s"
          % (where, sorted(set(tree_state(outside)) ^ set(before))))
    if expect is None:
        check(r.returncode == 0, "%s: failed: %s" % (where, err))
        check_store(store, contents_dir=src)
    else:
        check(r.returncode == 1, "%s: succeeded although the store holds %s" % (where, expect))
        check(expect in err and store in err,
              "%s: message %r does not say %r" % (where, err, expect))
        check(not os.path.exists(img), "%s: failed run left an image" % where)


def test():
    mk, no_openat2 = sys.argv[1], os.path.abspath(sys.argv[3])
    if os.geteuid() != 0:
        skip("needs root: the point is a privileged run and device nodes")
    tmp = tempfile.mkdtemp(prefix="cfs-store-symlinks-")
    try:
        # Where the objects of the source go.
        ref_src, ref_store = os.path.join(tmp, "ref-src"), os.path.join(tmp, "ref-store")
        make_source(ref_src)
        subprocess.run([mk, "--digest-store=" + ref_store, ref_src, os.path.join(tmp, "ref")],
                       check=True)
        objects = sorted(check_store(ref_store, contents_dir=ref_src))

        def subdir_symlink(store, outside, subdir, objname):
            os.symlink(outside, os.path.join(store, subdir))

        def subdir_relative_symlink(store, outside, subdir, objname):
            os.symlink("../outside", os.path.join(store, subdir))

        def subdir_fifo(store, outside, subdir, objname):
            os.mkfifo(os.path.join(store, subdir))

        def subdir_file(store, outside, subdir, objname):
            with open(os.path.join(store, subdir), "wb") as f:
                f.write(b"x")

        def object_symlink(store, outside, subdir, objname):
            os.mkdir(os.path.join(store, subdir))
            os.symlink(os.path.join(outside, "victim"), os.path.join(store, subdir, objname))

        def object_fifo(store, outside, subdir, objname):
            os.mkdir(os.path.join(store, subdir))
            os.mkfifo(os.path.join(store, subdir, objname))

        def object_device(store, outside, subdir, objname):
            os.mkdir(os.path.join(store, subdir))
            os.mknod(os.path.join(store, subdir, objname), 0o666 | stat.S_IFCHR,
                     os.makedev(1, 3))

        def object_dir(store, outside, subdir, objname):
            os.makedirs(os.path.join(store, subdir, objname))

        cases = [
            ("subdir-symlink", subdir_symlink, "is a symbolic link, not a directory"),
            ("subdir-relative-symlink", subdir_relative_symlink,
             "is a symbolic link, not a directory"),
            ("subdir-fifo", subdir_fifo, "is a FIFO, not a directory"),
            ("subdir-file", subdir_file, "is a regular file, not a directory"),
            ("object-symlink", object_symlink, None),
            ("object-fifo", object_fifo, None),
            ("object-device", object_device, None),
            ("object-dir", object_dir, "is a directory, not an object"),
        ]
        for fallback in (None, no_openat2):
            for name, plant, expect in cases:
                one_case(mk, tmp, objects, name, plant, expect, fallback)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(test)
