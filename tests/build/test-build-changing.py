#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# A source file that changes while mkcomposefs reads it (a preloaded shim,
# mutate-shim.c, inverts its bytes on disk right after one of mkcomposefs's
# reads). Whatever happens, the image must name a version of the file that
# existed, every object in the store must be named by its own content, and
# a run that cannot get a stable read fails with a message naming the file
# and leaves no image. Cases:
# - the store already holds the other objects (so the file is hashed by
#   one read and copied by another) and the change happens between the
#   two, with timestamps that do not show it: the copy must not be stored
#   under the digest of the earlier read;
# - a change in the middle of the read (a torn read) with timestamps that
#   show it: read again, and the image has the digest of the new content;
# - a file that changes on every read: an error naming the file;
# - a torn read into the store.
# Usage: test-build-changing.py MKCOMPOSEFS COMPOSEFS-INFO SHIM

import os
import random
import subprocess
import sys
import tempfile
import shutil

import cfsverity
from cfsbuild import check, check_store, main

OTHERS = 6
OTHER_SIZE = 300000
TARGET_SIZE = 2600000  # several reads of the hasher's 1 MiB


def rand(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if not hasattr(rng, "randbytes") \
        else rng.randbytes(n)


def make_source(src, rng):
    os.mkdir(src)
    for i in range(OTHERS):
        with open(os.path.join(src, "other%d" % i), "wb") as f:
            f.write(rand(rng, OTHER_SIZE + i))
    target = os.path.join(src, "target")
    with open(target, "wb") as f:
        f.write(rand(rng, TARGET_SIZE))
    return target


def versions(target):
    """Digests of the file's content now and inverted (the shim's only
    two versions), as object paths."""
    with open(target, "rb") as f:
        data = f.read()
    out = set()
    for d in (cfsverity.hexdigest(data), cfsverity.hexdigest(bytes(b ^ 0xff for b in data))):
        out.add(d[:2] + "/" + d[2:])
    return out


def other_objects(src):
    out = set()
    for name in os.listdir(src):
        if name != "target":
            d = cfsverity.file_hexdigest(os.path.join(src, name))
            out.add(d[:2] + "/" + d[2:])
    return out


def run_changing(mk, shim, args, target, when, times=1, hide=False):
    env = dict(os.environ)
    env["LD_PRELOAD"] = shim
    env["CFS_SHIM_FILE"] = target
    env["CFS_SHIM_WHEN"] = when
    env["CFS_SHIM_TIMES"] = str(times)
    env.pop("CFS_SHIM_HIDE", None)
    if hide:
        env["CFS_SHIM_HIDE"] = "1"
    # The shim comes before the sanitizer runtime in a sanitized build.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return subprocess.run([mk] + args, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)


def check_outcome(name, r, info, src, target, img, store, want_success=None):
    """The invariants of every case; returns whether the run succeeded."""
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode in (0, 1), "%s: exit %d: %s" % (name, r.returncode, err))
    if store is not None and os.path.isdir(store):
        check_store(store, allow_temps=r.returncode != 0)
    if r.returncode != 0:
        check(target in err and "changed while it was read" in err,
              "%s: message does not name the changing file: %r" % (name, err))
        check(not os.path.exists(img), "%s: failed run left an image" % name)
        check(want_success is not True, "%s: failed: %s" % (name, err))
        return False
    check(want_success is not False, "%s: succeeded although the file never held still"
          % name)
    listed = set(subprocess.run([info, "objects", img], stdout=subprocess.PIPE,
                                check=True).stdout.decode().split())
    others = other_objects(src)
    check(others <= listed, "%s: image lacks objects of unchanged files" % name)
    mine = listed - others
    check(len(mine) == 1 and mine <= versions(target),
          "%s: the image names %s for the file, which never had that content"
          % (name, sorted(mine)))
    if store is not None:
        for rel in listed:
            check(os.path.isfile(os.path.join(store, rel)),
                  "%s: object %s of the image is not in the store" % (name, rel))
    return True


def setup(mk, tmp, n, rng, store=False, prefill=False):
    """Source, target file, store (or None) and image path of case @n.
    @prefill: the store already holds the objects of the other files and
    of an earlier content of the target."""
    src = os.path.join(tmp, "src%d" % n)
    target = make_source(src, rng)
    store_path = os.path.join(tmp, "store%d" % n) if store or prefill else None
    img = os.path.join(tmp, "img%d" % n)
    if prefill:
        subprocess.run([mk, "--digest-store=" + store_path, src, img], check=True)
        with open(target, "wb") as f:
            f.write(rand(rng, TARGET_SIZE))
        os.unlink(img)
    return src, target, store_path, img


def store_args(store, src, img):
    return (["--digest-store=" + store] if store else []) + [src, img]


def test():
    mk, info, shim = (os.path.abspath(a) for a in sys.argv[1:4])
    rng = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="cfs-build-changing-")
    # (name, store, prefill, when, times, hide, want_success)
    cases = [
        # Hashed, then copied: the store holds the other objects, the
        # file is new to it; the change does not show in its times.
        ("hashed then copied", True, True, "end", 1, True, None),
        # A torn read that the times show: read again, succeed.
        ("torn read", False, False, "mid", 1, False, True),
        # Changes on every read: an error.
        ("always changing", False, False, "mid", 1000, False, False),
        # A torn read with a store (new objects: copied, then hashed).
        ("torn read into the store", True, False, "mid", 1, False, None),
        # The same with the other objects present (hashed, then copied).
        ("always changing into the store", True, True, "mid", 1000, False, False),
    ]
    try:
        for n, (name, store, prefill, when, times, hide, want) in enumerate(cases):
            src, target, store_path, img = setup(mk, tmp, n, rng, store, prefill)
            r = run_changing(mk, shim, store_args(store_path, src, img), target, when,
                             times=times, hide=hide)
            check_outcome(name, r, info, src, target, img, store_path, want_success=want)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(test)
