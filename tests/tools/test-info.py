#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-info ls, dump, objects, missing-objects, measure-file and
# --filter, and composefs-dump, on small images built from dumps written
# here. The expected outputs are written by hand from docs/dumpfile.md,
# "Printing", docs/design.md, "composefs-info", and docs/image-format.md,
# "Directories", "What the reader rebuilds" (directory sizes, nlink
# recount, hidden xattrs).
# Usage: test-info.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os
import random

from cfstools import (check, equal, fails, fsverity_digest, image_version, main,
                       ok, read, run, write)

PAY1 = "ab/" + "0123456789abcdef" * 3 + "0123456789abcd"
PAY2 = "cd/" + "fedcba9876543210" * 3 + "fedcba98765432"
DIG1 = "5c" * 32

TREE = (
    "/ 4096 40755 4 0 0 0 100.0 - - - user.a=1\n"
    "/a\\x20b 7 120777 1 0 0 0 0.0 tar\\x20get - -\n"
    "/dev 0 20644 1 0 0 1025 0.0 - - -\n"
    "/dir 4096 40700 3 10 20 0 200.123456789 - - -\n"
    "/dir/file 100 100644 2 0 0 0 1.2 " + PAY1 + " - " + DIG1 + "\n"
    "/dir/hl 0 @100644 0 0 0 0 0.0 /dir/file - -\n"
    "/dir/inline 3 100644 1 0 0 0 0.0 - abc -\n"
    "/dir/sub 4096 40755 2 0 0 0 0.0 - - -\n"
    "/dir/sub/other 5000 100644 1 0 0 0 0.0 " + PAY2 + " - -\n"
    "/empty 0 100644 1 0 0 0 0.0 - - -\n"
    "/fifo 0 10644 1 0 0 0 0.0 - - -\n"
)

# Root: ".", "..", the 256 whiteouts 00..ff and five names do not fit in
# 2048 bytes, so the directory takes one full block: 4096. /dir: 12 bytes
# per entry plus the names ". .. file hl inline sub" = 90. /dir/sub: ". ..
# other" = 44. Directory nlink = 2 + subdirectories. The hard link shows the
# target's attributes; the root's trusted.overlay.opaque is hidden.
TREE_DUMP = (
    "/ 4096 40755 3 0 0 0 100.0 - - - user.a=1\n"
    "/a\\x20b 7 120777 1 0 0 0 0.0 tar\\x20get - -\n"
    "/dev 0 20644 1 0 0 1025 0.0 - - -\n"
    "/dir 90 40700 3 10 20 0 200.123456789 - - -\n"
    "/dir/file 100 100644 2 0 0 0 1.2 " + PAY1 + " - " + DIG1 + "\n"
    "/dir/hl 100 @100644 2 0 0 0 1.2 /dir/file - " + DIG1 + "\n"
    "/dir/inline 3 100644 1 0 0 0 0.0 - abc -\n"
    "/dir/sub 44 40755 2 0 0 0 0.0 - - -\n"
    "/dir/sub/other 5000 100644 1 0 0 0 0.0 " + PAY2 + " - -\n"
    "/empty 0 100644 1 0 0 0 0.0 - - -\n"
    "/fifo 0 10644 1 0 0 0 0.0 - - -\n"
)

TREE_LS = (
    "/a b\t-> tar\\x20get\n"
    "/dev\n"
    "/dir/\t\n"
    "/dir/file\t@ " + PAY1 + "\n"
    "/dir/hl\n"
    "/dir/inline\n"
    "/dir/sub/\t\n"
    "/dir/sub/other\t@ " + PAY2 + "\n"
    "/empty\n"
    "/fifo\n"
)

# A second image sharing one object with TREE, with a payload that starts
# with a slash (stored as redirect "//abs/path") and one needing escapes.
OTHER = (
    "/ 4096 40755 2 0 0 0 0.0 - - -\n"
    "/x 10 100644 1 0 0 0 0.0 " + PAY1 + " - -\n"
    "/y 10 100644 1 0 0 0 0.0 /abs/path - -\n"
    "/z 10 100644 1 0 0 0 0.0 00/sp\\x20ace - -\n"
)
OTHER_LS = (
    "/x\t@ " + PAY1 + "\n"
    "/y\t@ /abs/path\n"
    "/z\t@ 00/sp\\x20ace\n"
)
# Byte order: '/' < '0' < 'a' < 'c'; printed raw.
OBJECTS = "/abs/path\n00/sp ace\n" + PAY1 + "\n" + PAY2 + "\n"


def build(t, tmp, name, dump):
    src = write(os.path.join(tmp, name + ".dump"), dump)
    img = os.path.join(tmp, name + ".cfs")
    ok(run([t.mkcomposefs, "--from-file", src, img]))
    return img


def test_dump(t, tmp):
    img = build(t, tmp, "tree", TREE)
    equal(ok(run([t.info, "dump", img])).out.decode(), TREE_DUMP, "dump output")


def test_dump_rebuilds_same_image(t, tmp):
    img = build(t, tmp, "tree", TREE)
    out = ok(run([t.info, "dump", img])).out
    again = os.path.join(tmp, "again.cfs")
    ok(run([t.mkcomposefs, "--from-file", "-", again], stdin=out))
    check(read(again) == read(img), "image from the dump differs")


def test_dump_from_pipe(t, tmp):
    img = build(t, tmp, "tree", TREE)
    # /dev/stdin is a pipe here: the image cannot be mapped, only read.
    r = ok(run([t.info, "dump", "/dev/stdin"], stdin=read(img)))
    equal(r.out.decode(), TREE_DUMP, "dump output from a pipe")


def test_ls(t, tmp):
    img = build(t, tmp, "tree", TREE)
    equal(ok(run([t.info, "ls", img])).out.decode(), TREE_LS, "ls output")


def test_several_images(t, tmp):
    img1 = build(t, tmp, "tree", TREE)
    img2 = build(t, tmp, "other", OTHER)
    r = ok(run([t.info, "ls", img1, img2]))
    equal(r.out.decode(), TREE_LS + OTHER_LS, "ls of two images")
    # Options may follow the command and the images.
    r = ok(run([t.info, "ls", img2, "--filter=y"]))
    equal(r.out.decode(), "/y\t@ /abs/path\n", "ls with a trailing option")


def test_objects(t, tmp):
    img1 = build(t, tmp, "tree", TREE)
    img2 = build(t, tmp, "other", OTHER)
    equal(ok(run([t.info, "objects", img1, img2])).out.decode(), OBJECTS,
          "objects of two images")
    equal(ok(run([t.info, "objects", img1])).out.decode(), PAY1 + "\n" + PAY2 + "\n",
          "objects of one image")


def test_missing_objects(t, tmp):
    img1 = build(t, tmp, "tree", TREE)
    img2 = build(t, tmp, "other", OTHER)
    store = os.path.join(tmp, "store")
    os.makedirs(os.path.join(store, "ab"))
    os.makedirs(os.path.join(store, "abs"))
    write(os.path.join(store, PAY1), "x")
    write(os.path.join(store, "abs", "path"), "x")  # leading slashes are ignored
    r = ok(run([t.info, "--basedir=" + store, "missing-objects", img1, img2]))
    equal(r.out.decode(), "00/sp ace\n" + PAY2 + "\n", "missing objects")
    # The last --basedir counts.
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    r = ok(run([t.info, "--basedir=" + empty, "missing-objects", img1, img2,
                "--basedir", store]))
    equal(r.out.decode(), "00/sp ace\n" + PAY2 + "\n", "missing objects, last basedir")
    r = ok(run([t.info, "--basedir", empty, "missing-objects", img1, img2]))
    equal(r.out.decode(), OBJECTS, "everything missing from an empty store")


def test_missing_objects_confined(t, tmp):
    # Objects are looked up the way overlayfs looks up a redirect in a
    # data-only layer: never outside the base directory, never through a
    # symlink, never "." or "..", and only a regular file is present.
    store = os.path.join(tmp, "store")
    outside = os.path.join(tmp, "outside")
    os.makedirs(os.path.join(store, "ab"))
    os.makedirs(outside)
    write(os.path.join(outside, "obj"), "secret")
    write(os.path.join(store, "ab", "present"), "x")
    os.symlink("../outside", os.path.join(store, "lnk"))
    os.symlink("../../outside/obj", os.path.join(store, "ab", "symobj"))
    os.symlink("/etc", os.path.join(store, "etc"))
    os.symlink(os.path.join(outside, "obj"), os.path.join(store, "ab", "abssym"))
    os.mkfifo(os.path.join(store, "ab", "fifo"))
    present = ["ab/present", "/ab/present", "//ab/present"]
    absent = ["ab//present", "../outside/obj", "ab/../../outside/obj", "ab/../ab/present",
              "ab/./present", "./ab/present", "lnk/obj", "ab/symobj", "ab/abssym",
              "etc/passwd", "/etc/passwd", "/", "ab", "ab/", "ab/fifo", "ab/missing"]
    dump = "/ 4096 40755 2 0 0 0 0.0 - - -\n"
    for i, payload in enumerate(present + absent):
        dump += "/f%02d 10 100644 1 0 0 0 0.0 %s - -\n" % (i, payload)
    img = build(t, tmp, "confined", dump)
    r = ok(run([t.info, "--basedir=" + store, "missing-objects", img]))
    expected = "".join(p + "\n" for p in sorted(set(absent), key=str.encode))
    equal(r.out.decode(), expected, "missing objects outside the base directory")
    # The same answer without openat2() (Linux before 5.6), where each
    # component is opened with O_NOFOLLOW.
    build_dir = os.environ.get("COMPOSEFS_BUILDDIR", "")
    preload = os.path.join(build_dir, "tests", "lib", "libno-openat2.so")
    if build_dir and os.path.exists(preload):
        r = ok(run([t.info, "--basedir=" + store, "missing-objects", img],
                   env={"LD_PRELOAD": preload, "ASAN_OPTIONS": os.environ.get(
                       "ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}))
        equal(r.out.decode(), expected, "missing objects, without openat2()")


def test_filter(t, tmp):
    img = build(t, tmp, "tree", TREE)
    lines = TREE_DUMP.splitlines(keepends=True)
    r = ok(run([t.info, "--filter=dir", "--filter", "fifo", "dump", img]))
    expected = [lines[0]] + [l for l in lines[1:] if l.startswith(("/dir", "/fifo"))]
    equal(r.out.decode(), "".join(expected), "filtered dump")
    r = ok(run([t.info, "--filter=nothing", "ls", img]))
    equal(r.out, b"", "ls with a filter that matches nothing")
    r = ok(run([t.info, "--filter=a b", "ls", img]))
    equal(r.out.decode(), "/a b\t-> tar\\x20get\n", "filter on a name with a space")
    # Only top-level names count.
    r = ok(run([t.info, "--filter=sub", "ls", img]))
    equal(r.out, b"", "filter on a deeper name")


def test_bad_images(t, tmp):
    img = build(t, tmp, "tree", TREE)
    data = read(img)
    out = os.path.join(tmp, "out")
    cases = {
        "short": data[:4095],
        "empty": b"",
        "text": b"hello\n" * 1000,
        "badmagic": b"\0" + data[1:],
        "badversion": data[:4] + b"\x02" + data[5:],
        "badsb": data[:1024] + b"\0" + data[1025:],
    }
    for name, blob in cases.items():
        path = write(os.path.join(tmp, name), blob)
        fails(run([t.info, "dump", path]), "cannot load '%s'" % path)
        fails(run([t.info, "ls", img, path]), "cannot load '%s'" % path,
              stdout_empty=False)
        fails(run([t.dump, path, out]), path)
        check(not os.path.exists(out), "composefs-dump wrote %s" % name)
    fails(run([t.info, "ls", tmp]), "cannot load", tmp)


def test_measure_file(t, tmp):
    hello = write(os.path.join(tmp, "hello"), "hello world\n")
    foo = write(os.path.join(tmp, "foo"), "foo bar baz\n")
    empty = write(os.path.join(tmp, "empty"), "")
    r = ok(run([t.info, "measure-file", hello, foo, empty]))
    equal(r.out.decode(),
          "37061ef2ac4c21bec68489b56138c5780306a4ad7fe6676236ecdf2c9027cd92\n"
          "91e7d88cb7bc9cf6d8db3b0ecf89af4abf204bef5b3ade5113d5b62ef374e70b\n"
          # The kernel's value for an empty file (docs/compatibility.md,
          # "Empty-file digest").
          "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95\n",
          "measure-file known answers")
    # --basedir and --filter do not matter to measure-file.
    r2 = ok(run([t.info, "--filter=x", "--basedir=/nonexistent", "measure-file", hello]))
    equal(r2.out.decode(), r.out.decode().splitlines(keepends=True)[0], "with options")
    r = fails(run([t.info, "measure-file", hello, tmp]), "cannot measure '%s'" % tmp,
              stdout_empty=False)
    check(r.err.endswith("\n") and len(r.err.splitlines()) == 1, "one line", r)


def test_measure_file_matches_fsverity(t, tmp):
    rnd = random.Random(7)
    for size in (1, 4096, 4097, 1000000):
        path = write(os.path.join(tmp, "f%d" % size),
                     bytes(rnd.getrandbits(8) for _ in range(size)))
        r = ok(run([t.info, "measure-file", path]))
        equal(r.out.decode().strip(), fsverity_digest(path), "digest of %d bytes" % size)


def test_composefs_dump_roundtrip(t, tmp):
    wh = ("/ 4096 40755 2 0 0 0 0.0 - - -\n"
          "/d 4096 40755 2 0 0 0 0.0 - - -\n"
          "/d/wh 0 20644 1 0 0 0 0.0 - - -\n")
    for name, dump, version in (("tree", TREE, 0), ("other", OTHER, 0), ("wh", wh, 1)):
        img = build(t, tmp, name, dump)
        check(image_version(img) == version, "version of %s" % name)
        out = os.path.join(tmp, name + ".copy")
        ok(run([t.dump, img, out]))
        check(read(out) == read(img), "composefs-dump copy of %s differs" % name)
        r = ok(run([t.dump, img, "-"]))
        check(r.out == read(img), "composefs-dump to stdout of %s differs" % name)


def test_composefs_dump_keeps_target_on_failure(t, tmp):
    bad = write(os.path.join(tmp, "bad"), b"\0" * 8192)
    out = write(os.path.join(tmp, "out"), b"precious")
    fails(run([t.dump, bad, out]), bad)
    equal(read(out), b"precious", "existing target")
    check(sorted(os.listdir(tmp)) == ["bad", "out"], "left behind: %s" % os.listdir(tmp))


if __name__ == "__main__":
    main(globals())
