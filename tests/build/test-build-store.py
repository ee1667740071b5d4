#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# mkcomposefs --digest-store (docs/design.md, "Object store"): every object
# is named by the fs-verity digest of its content and has mode 0644; the
# store holds exactly one object per distinct content over 64 bytes;
# every payload of the image is present; a second run changes nothing;
# two runs into one store at the same time both succeed and agree; an
# object of the wrong size is replaced; stale temporary files are removed,
# young ones kept; large objects (copied with direct I/O where possible)
# come out exact around the block and method boundaries; under a low
# descriptor limit every object is still stored.
# Usage: test-build-store.py MKCOMPOSEFS COMPOSEFS-INFO

import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from cfsbuild import check, check_store, main, make_tree, run, skip, store_objects


MANY = 700     # objects, more than LOW_FDS
LOW_FDS = 300  # descriptors: too few for the store to keep its subdirectories


def umask(mask):
    return lambda: os.umask(mask)


def test():
    mk, info = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        skip("needs root for owners, devices and trusted.* xattrs")
    tmp = tempfile.mkdtemp(prefix="cfs-build-store-")
    try:
        src = os.path.join(tmp, "src")
        make_tree(src, 11)
        store = os.path.join(tmp, "a", "b", "store")  # parents are created
        img = os.path.join(tmp, "img")

        run([mk, "--digest-store=" + store, src, img], preexec_fn=umask(0o22))
        objects = check_store(store, contents_dir=src)
        check(len(objects) > 10, "only %d objects" % len(objects))
        for d in os.listdir(store):
            if d == ".lock":  # the store lock taken by every writer
                check(stat.S_ISREG(os.lstat(os.path.join(store, d)).st_mode),
                      "the store lock is not a regular file")
                continue
            mode = stat.S_IMODE(os.stat(os.path.join(store, d)).st_mode)
            check(mode == 0o755, "store directory %s has mode %o" % (d, mode))
        missing = run([info, "--basedir=" + store, "missing-objects", img]).stdout
        check(missing == b"", "payloads missing from the store: %r" % missing[:200])
        listed = set(run([info, "objects", img]).stdout.decode().split())
        check(listed == set(objects), "image payloads and store objects differ")

        # The image is the same with and without a store.
        with open(img, "rb") as f:
            with_store = f.read()
        run([mk, src, img])
        with open(img, "rb") as f:
            check(f.read() == with_store, "--digest-store changed the image")

        # A second run leaves existing objects alone.
        before = {rel: os.stat(os.path.join(store, rel)).st_ino for rel in objects}
        run([mk, "--digest-store=" + store + "/", src, img])
        after = {rel: os.stat(os.path.join(store, rel)).st_ino for rel in objects}
        check(before == after, "a second run rewrote objects")
        check_store(store, contents_dir=src)

        # Objects a power failure left empty or short have the wrong size
        # for their name: the next run replaces them.
        names = sorted(objects)
        with open(os.path.join(store, names[0]), "r+b") as f:
            f.truncate(0)
        with open(os.path.join(store, names[1]), "r+b") as f:
            f.truncate(os.fstat(f.fileno()).st_size // 2)
        run([mk, "--digest-store=" + store, src, img])
        check_store(store, contents_dir=src)

        # Objects are 0644 whatever the umask; --print-digest-only fills
        # the store too.
        store2 = os.path.join(tmp, "store2")
        run([mk, "--digest-store=" + store2, "--print-digest-only", src],
            preexec_fn=umask(0o077))
        check_store(store2, contents_dir=src)

        # Temporary files of interrupted runs: old ones go, young ones stay.
        old = os.path.join(store2, ".tmpOLDOLDOLD")
        young = os.path.join(store2, ".tmpYOUNGYOUNG")
        for p in (old, young):
            with open(p, "wb") as f:
                f.write(b"partial")
        t = time.time() - 2 * 3600
        os.utime(old, (t, t))
        run([mk, "--digest-store=" + store2, src, img])
        check(not os.path.exists(old), "a stale temporary file was kept")
        check(os.path.exists(young), "a young temporary file was removed")
        os.unlink(young)

        # Two runs into one fresh store at once, from two trees that share
        # most contents: both succeed, both images equal solo runs.
        src2 = os.path.join(tmp, "src2")
        run(["cp", "-a", src, src2])
        with open(os.path.join(src2, "extra"), "wb") as f:
            f.write(os.urandom(300000))
        solo = []
        for s in (src, src2):
            run([mk, s, img])
            with open(img, "rb") as f:
                solo.append(f.read())
        for attempt in range(3):
            store3 = os.path.join(tmp, "store3-%d" % attempt)
            procs = [subprocess.Popen([mk, "--digest-store=" + store3, s,
                                       os.path.join(tmp, "c%d" % i)],
                                      stderr=subprocess.PIPE)
                     for i, s in enumerate((src, src2, src))]
            for i, p in enumerate(procs):
                err = p.communicate()[1]
                check(p.returncode == 0, "concurrent run %d failed: %s" % (i, err))
            for i, want in enumerate((solo[0], solo[1], solo[0])):
                with open(os.path.join(tmp, "c%d" % i), "rb") as f:
                    check(f.read() == want, "concurrent run %d wrote another image" % i)
            check_store(store3, contents_dir=src2)

        # Large objects around the sizes where the copy changes method
        # (direct I/O from 256 KiB on stores with neither reflinks nor
        # fs-verity, like this one), on this filesystem and on tmpfs.
        big = os.path.join(tmp, "big")
        os.mkdir(big)
        sizes = [262143, 262144, 262145, (1 << 20) - 1, (1 << 20) + 4095,
                 3 * (1 << 20) + 1]
        for i, size in enumerate(sizes):
            with open(os.path.join(big, "f%d" % i), "wb") as f:
                f.write(os.urandom(size))
        shutil.copy(os.path.join(big, "f2"), os.path.join(big, "copy-of-f2"))
        stores = [os.path.join(tmp, "store-big")]
        if os.path.isdir("/dev/shm"):
            stores.append(tempfile.mkdtemp(prefix="cfs-build-store-", dir="/dev/shm"))
        try:
            for st in stores:
                run([mk, "--digest-store=" + os.path.join(st, "s"), big, img])
                objects = check_store(os.path.join(st, "s"), contents_dir=big)
                got = sorted(os.path.getsize(os.path.join(st, "s", rel))
                             for rel in objects)
                check(got == sorted(sizes), "object sizes %s, want %s" % (got, sizes))
        finally:
            for st in stores[1:]:
                shutil.rmtree(st)

        # Below 1024 descriptors the store does not keep its subdirectories
        # open: each use opens and closes its own. More objects than the
        # limit, all stored, with one thread and with several.
        many = os.path.join(tmp, "many")
        os.mkdir(many)
        for i in range(MANY):
            with open(os.path.join(many, "f%d" % i), "wb") as f:
                f.write((b"%d " % i) * 40)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        low = min(LOW_FDS, hard) if hard != resource.RLIM_INFINITY else LOW_FDS
        for threads in ("1", "4"):
            st = os.path.join(tmp, "store-low-" + threads)
            run([mk, "--threads=" + threads, "--digest-store=" + st, many, img],
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)))
            objects = check_store(st, contents_dir=many)
            check(len(objects) == MANY, "%d objects under %d descriptors, want %d"
                  % (len(objects), low, MANY))
    finally:
        shutil.rmtree(tmp)


main(test)
