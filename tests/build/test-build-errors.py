#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Directory-mode failures give a clear error naming the problem, exit
# status 1 and no image: unreadable files and directories (run as an
# unprivileged user, root reads everything), a full disk under the object
# store and under the image, a missing source, a store path that is a
# file, a non-directory source.
# Usage: test-build-errors.py MKCOMPOSEFS

import os
import shutil
import subprocess
import sys
import tempfile

from cfsbuild import check, main, run, skip

NOBODY = 65534


def fails(argv, *words, user=None, cwd=None):
    """Runs @argv, which must fail with every one of @words in its message."""
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
                "--clear-groups", "--"] + argv
    r = run(argv, ok=None, cwd=cwd)
    err = r.stderr.decode("utf-8", "backslashreplace")
    check(r.returncode == 1, "%s: exit status %d, want 1 (%s)" % (argv, r.returncode, err))
    for w in words:
        check(w in err, "%s: message %r lacks %r" % (argv, err, w))
    check(err.startswith("mkcomposefs: ") and err.count("\n") == 1,
          "%s: not one 'mkcomposefs: ' line: %r" % (argv, err))
    return err


def no_output(d):
    """@d holds nothing but the sources and stores the test made."""
    left = [n for n in os.listdir(d) if n.startswith("img") or n.startswith(".img")
            or ".tmp" in n]
    check(not left, "left behind in %s: %s" % (d, left))


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def test():
    mk = sys.argv[1]
    if os.geteuid() != 0:
        skip("needs root (setpriv to another user, tmpfs mounts)")
    if shutil.which("setpriv") is None:
        skip("setpriv not found")
    tmp = tempfile.mkdtemp(prefix="cfs-build-errors-")
    os.chmod(tmp, 0o777)
    try:
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        os.chmod(out, 0o777)
        img = os.path.join(out, "img")

        # Unreadable regular file: found in the content pass.
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        os.mkdir(os.path.join(src, "d"))
        write(os.path.join(src, "d", "ok"), b"x" * 100)
        write(os.path.join(src, "d", "secret file"), b"y" * 100, mode=0o000)
        for d in (tmp, src, os.path.join(src, "d")):
            os.chmod(d, 0o755)
        os.chmod(tmp, 0o777)
        fails([mk, src, img], "secret file", "Permission denied", user=NOBODY)
        no_output(out)
        # Also when inlined (read in the same pass).
        write(os.path.join(src, "d", "secret file"), b"y" * 10, mode=0o000)
        fails([mk, src, img], "secret file", "Permission denied", user=NOBODY)
        no_output(out)
        os.unlink(os.path.join(src, "d", "secret file"))

        # Unreadable directory: found by the scan.
        os.mkdir(os.path.join(src, "closed"), 0o000)
        os.chmod(os.path.join(src, "closed"), 0o000)
        fails([mk, src, img], "closed", "Permission denied", user=NOBODY)
        no_output(out)
        os.rmdir(os.path.join(src, "closed"))
        run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
             "--", mk, src, img])
        os.unlink(img)

        # Missing source, store that is a file, non-directory source.
        fails([mk, os.path.join(tmp, "nonexistent"), img], "nonexistent",
              "No such file or directory")
        no_output(out)
        write(os.path.join(tmp, "plainfile"), b"z" * 200)
        fails([mk, "--digest-store=" + os.path.join(tmp, "plainfile"), src, img],
              "plainfile", "Not a directory")
        no_output(out)
        fails([mk, os.path.join(tmp, "plainfile"), img], "Not a directory")
        no_output(out)

        # Full disk: a 1 MiB tmpfs as the store, then as the output.
        mnt = os.path.join(tmp, "small")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", mnt],
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            print("tmpfs mount unavailable, full-disk cases not run: %s" % r.stderr)
            return
        try:
            big = os.path.join(tmp, "big")
            os.mkdir(big)
            for i in range(6):
                write(os.path.join(big, "f%d" % i), os.urandom(400000))
            fails([mk, "--digest-store=" + os.path.join(mnt, "store"), big, img],
                  "No space left on device")
            no_output(out)
            # Whatever objects were named are complete (the others were
            # never named).
            from cfsbuild import check_store
            check_store(os.path.join(mnt, "store"))
            shutil.rmtree(os.path.join(mnt, "store"))

            # An image larger than the filesystem: many files with large
            # distinct xattrs.
            meta = os.path.join(tmp, "meta")
            os.mkdir(meta)
            for i in range(600):
                p = os.path.join(meta, "f%04d" % i)
                write(p, b"")
                os.setxattr(p, "user.big", os.urandom(2000))
            fails([mk, meta, os.path.join(mnt, "img")], "No space left on device")
            check(os.listdir(mnt) == [], "left on the full disk: %s" % os.listdir(mnt))
        finally:
            subprocess.run(["umount", mnt])
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", tmp])
        shutil.rmtree(tmp)


main(test)
