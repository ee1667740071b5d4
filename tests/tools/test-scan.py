#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# mkcomposefs in directory mode: what a scan records (docs/design.md,
# "Directory scan", "Content pass": digests and payload paths, inlining up
# to 64 bytes, --use-epoch, --skip-devices, --user-xattrs, --digest-store,
# hard links only with --hardlinks), --print-digest-only against
# --print-digest, and that progress stays off a non-terminal and with
# --quiet.
# Usage: test-scan.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os
import select
import stat

from cfstools import (Skip, check, equal, fails, fsverity_digest, main, ok, read,
                       run, write)

BIG = bytes(range(256)) * 2 + b"tail"  # 516 bytes, stored outside the image
SMALL = b"0123456789"                   # inlined


def make_tree(tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    os.chmod(src, 0o755)
    write(os.path.join(src, "big"), BIG, mode=0o644)
    write(os.path.join(src, "small"), SMALL, mode=0o600)
    write(os.path.join(src, "empty"), b"", mode=0o644)
    os.mkdir(os.path.join(src, "d"))
    os.chmod(os.path.join(src, "d"), 0o750)
    os.symlink("../big", os.path.join(src, "d", "link"))
    os.mkfifo(os.path.join(src, "fifo"))
    os.chmod(os.path.join(src, "fifo"), 0o640)
    return src


def expected_dump(src, digest):
    uid, gid = os.getuid(), os.getgid()
    ug = "%d %d" % (uid, gid)
    payload = digest[:2] + "/" + digest[2:]
    # Root: the 256 whiteouts push the directory to a full block. /d holds
    # ". .. link": 3 * 12 + 1 + 2 + 4 = 43 bytes. Directory nlink is 2 plus
    # subdirectories; every other file has nlink 1.
    return (
        "/ 4096 40755 3 %s 0 0.0 - - -\n" % ug +
        "/big %d 100644 1 %s 0 0.0 %s - %s\n" % (len(BIG), ug, payload, digest) +
        "/d 43 40750 2 %s 0 0.0 - - -\n" % ug +
        "/d/link 6 120777 1 %s 0 0.0 ../big - -\n" % ug +
        "/empty 0 100644 1 %s 0 0.0 - - -\n" % ug +
        "/fifo 0 10640 1 %s 0 0.0 - - -\n" % ug +
        "/small 10 100600 1 %s 0 0.0 - 0123456789 -\n" % ug
    )


def dump_image(t, img):
    return ok(run([t.info, "dump", img])).out.decode()


def test_scan(t, tmp):
    src = make_tree(tmp)
    img = os.path.join(tmp, "img.cfs")
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", src, img]))
    digest = fsverity_digest(os.path.join(src, "big"))
    equal(dump_image(t, img), expected_dump(src, digest), "dump of the scanned tree")
    # A trailing slash on SOURCE changes nothing.
    img2 = os.path.join(tmp, "img2.cfs")
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", "--threads=1", src + "/",
            img2]))
    check(read(img2) == read(img), "trailing slash or thread count changed the image")


def test_mtimes_kept_without_use_epoch(t, tmp):
    src = make_tree(tmp)
    os.utime(os.path.join(src, "big"), ns=(0, 1234 * 10**9 + 5))
    img = os.path.join(tmp, "img.cfs")
    ok(run([t.mkcomposefs, "--skip-xattrs", src, img]))
    lines = [l for l in dump_image(t, img).splitlines() if l.startswith("/big ")]
    check(len(lines) == 1 and lines[0].split(" ")[7] == "1234.5",
          "mtime of /big: %r" % lines)


def test_digest_store(t, tmp):
    src = make_tree(tmp)
    store = os.path.join(tmp, "store")
    img = os.path.join(tmp, "img.cfs")
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", "--digest-store=" + store,
            src, img]))
    digest = fsverity_digest(os.path.join(src, "big"))
    obj = os.path.join(store, digest[:2], digest[2:])
    equal(read(obj), BIG, "object content")
    check(stat.S_IMODE(os.stat(obj).st_mode) == 0o644, "object mode")
    # Besides the objects, a store holds the lock file that writers take.
    objects = [os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs
               if os.path.join(d, f) != os.path.join(store, ".lock")]
    check(objects == [obj], "only the large file is stored: %s" % objects)
    # Everything the image needs is in the store.
    r = ok(run([t.info, "--basedir=" + store, "missing-objects", img]))
    equal(r.out, b"", "missing objects")
    # The store is filled with --print-digest-only too.
    store2 = os.path.join(tmp, "store2")
    r = ok(run([t.mkcomposefs, "--print-digest-only", "--digest-store=" + store2,
                src]))
    equal(read(os.path.join(store2, digest[:2], digest[2:])), BIG,
          "object stored with --print-digest-only")


def test_print_digest_only(t, tmp):
    src = make_tree(tmp)
    img = os.path.join(tmp, "img.cfs")
    r1 = ok(run([t.mkcomposefs, "--print-digest", "--skip-xattrs", src, img]))
    r2 = ok(run([t.mkcomposefs, "--print-digest-only", "--skip-xattrs", src]))
    equal(r2.out, r1.out, "--print-digest-only vs --print-digest")
    equal(r1.out.decode().strip(), fsverity_digest(img), "digest vs fsverity digest")


def test_hardlinks(t, tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    write(os.path.join(src, "a"), BIG)
    os.link(os.path.join(src, "a"), os.path.join(src, "b"))
    img = os.path.join(tmp, "img.cfs")
    # Default: two independent files with nlink 1 (as the reference).
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", src, img]))
    lines = dump_image(t, img).splitlines()
    a, b = lines[1].split(" "), lines[2].split(" ")
    check(a[0] == "/a" and b[0] == "/b", "entries: %s" % lines)
    check(a[2] == "100644" and b[2] == "100644", "plain files: %s" % lines)
    check(a[3] == "1" and b[3] == "1", "nlink 1: %s" % lines)
    check(a[8] == b[8], "same payload: %s" % lines)
    # --hardlinks: one inode, the second name a link to the first.
    ok(run([t.mkcomposefs, "--hardlinks", "--use-epoch", "--skip-xattrs", src, img]))
    lines = dump_image(t, img).splitlines()
    a, b = lines[1].split(" "), lines[2].split(" ")
    check(a[2] == "100644" and b[2] == "@100644", "hard link kept: %s" % lines)
    check(b[8] == "/a", "link target: %s" % lines)


def test_skip_devices(t, tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    try:
        os.mknod(os.path.join(src, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        raise Skip("cannot create device nodes")
    write(os.path.join(src, "f"), "x")
    img = os.path.join(tmp, "img.cfs")
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", src, img]))
    names = [l.split(" ")[0] for l in dump_image(t, img).splitlines()]
    equal(names, ["/", "/f", "/null"], "entries with devices")
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", "--skip-devices", src, img]))
    names = [l.split(" ")[0] for l in dump_image(t, img).splitlines()]
    equal(names, ["/", "/f"], "entries with --skip-devices")


def test_user_xattrs(t, tmp):
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    f = write(os.path.join(src, "f"), "x")
    try:
        os.setxattr(f, "user.color", b"blue")
        os.setxattr(f, "trusted.secret", b"s")
    except OSError as e:
        raise Skip("cannot set user and trusted xattrs here: %s" % e)
    img = os.path.join(tmp, "img.cfs")
    ok(run([t.mkcomposefs, "--use-epoch", src, img]))
    line = dump_image(t, img).splitlines()[1]
    check("user.color=blue" in line and "trusted.secret=s" in line, "xattrs: %s" % line)
    ok(run([t.mkcomposefs, "--use-epoch", "--user-xattrs", src, img]))
    line = dump_image(t, img).splitlines()[1]
    check("user.color=blue" in line and "trusted" not in line,
          "--user-xattrs: %s" % line)
    ok(run([t.mkcomposefs, "--use-epoch", "--skip-xattrs", src, img]))
    line = dump_image(t, img).splitlines()[1]
    check(line.endswith(" - x -"), "--skip-xattrs: %s" % line)


def test_bad_sources(t, tmp):
    img = os.path.join(tmp, "img.cfs")
    fails(run([t.mkcomposefs, os.path.join(tmp, "missing"), img]), "missing")
    f = write(os.path.join(tmp, "file"), "x")
    fails(run([t.mkcomposefs, f, img]))
    check(sorted(os.listdir(tmp)) == ["file"], "left behind: %s" % os.listdir(tmp))


def read_terminal(args, t):
    """Runs mkcomposefs with stderr on a terminal; returns (rc, output)."""
    import pty
    master, slave = pty.openpty()
    try:
        rc = run_with_stderr(t, args, slave)
        os.close(slave)
        slave = -1
        data = b""
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal is closed and drained
                break
            if not chunk:
                break
            data += chunk
        return rc, data
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def test_progress(t, tmp):
    src = make_tree(tmp)
    for i in range(300):
        write(os.path.join(src, "f%03d" % i), BIG + b"%d" % i)
    img = os.path.join(tmp, "img.cfs")
    rc, data = read_terminal(["--quiet", src, img], t)
    check(rc == 0, "mkcomposefs --quiet failed")
    equal(data, b"", "output on a terminal with --quiet")
    # Without --quiet: one line rewritten in place and cleared at the end
    # (how often the library reports is its own business).
    rc, data = read_terminal([src, img], t)
    check(rc == 0, "mkcomposefs failed")
    if data:
        check(data.startswith(b"\r\x1b[K") and data.endswith(b"\r\x1b[K"),
              "progress line not cleared: %r" % data[-80:])
        check(b"\n" not in data, "progress wrote whole lines: %r" % data[:200])
        check(b"files" in data, "progress shows files: %r" % data[:200])
        check(b"MiB/s" in data, "progress shows the rate: %r" % data[:200])


def run_with_stderr(t, args, fd):
    import subprocess
    return subprocess.run([t.mkcomposefs] + args, stdout=subprocess.DEVNULL,
                          stderr=fd, timeout=300).returncode


if __name__ == "__main__":
    main(globals())
