#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# A whiteout (character device 0/0) is a marker with exactly one name.
# mkcomposefs refuses to write one with several links or names (from a
# dumpfile, or a directory scanned with --hardlinks), and every walker of
# images (composefs-info, composefs-dump, composefs-fuse) refuses an image
# that gives one several links or names, with a message naming it.
# Usage: test-whiteouts.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os
import struct


from cfsimage import Image
from cfstools import Skip, check, fails, main, ok, read, run, write

ROOT = "/ 4096 40755 2 0 0 0 0.0 - - -\n"
GOOD = ROOT + ("/d 4096 40755 2 0 0 0 0.0 - - -\n"
               "/d/wh 0 20644 1 0 0 0 0.0 - - -\n"
               "/f 0 100644 1 0 0 0 0.0 - - -\n")


def build(t, tmp, dump, name="img.cfs"):
    src = write(os.path.join(tmp, name + ".dump"), dump)
    img = os.path.join(tmp, name)
    ok(run([t.mkcomposefs, "--from-file", src, img]))
    return img


def find(image, path):
    """(nid, dirent record offset) of the entry at @path."""
    nid = image.root_nid
    rec_off = None
    for comp in path.strip("/").split("/"):
        for ch in image.chunks:
            if ch.dir_nid != nid:
                continue
            for rec, cnid, _, name_off, name_len in ch.entries:
                if image.data[name_off:name_off + name_len] == comp.encode():
                    nid, rec_off = cnid, rec
                    break
            else:
                continue
            break
        else:
            raise AssertionError("no entry %s in the image" % path)
    return nid, rec_off


def patched(src, dst, edits):
    data = bytearray(read(src))
    for off, fmt, value in edits:
        struct.pack_into(fmt, data, off, value)
    with open(dst, "wb") as f:
        f.write(data)
    return dst


def fuse_path():
    build_dir = os.environ.get("COMPOSEFS_BUILDDIR")
    path = os.path.join(build_dir, "tools", "composefs-fuse") if build_dir else None
    return path if path and os.access(path, os.X_OK) else None


def walkers_refuse(t, tmp, img, fragment):
    for argv in ([t.info, "ls", img], [t.info, "dump", img], [t.info, "objects", img],
                 [t.info, "--basedir", tmp, "missing-objects", img],
                 [t.dump, img, os.path.join(tmp, "out.cfs")]):
        fails(run(argv), "cannot load" if argv[0] == t.info else "", img, fragment)
    check(not os.path.exists(os.path.join(tmp, "out.cfs")), "composefs-dump left output")
    fuse = fuse_path()
    if fuse is not None:
        mnt = os.path.join(tmp, "mnt")
        os.makedirs(mnt, exist_ok=True)
        # The image is loaded before anything is mounted: no FUSE needed.
        r = run([fuse, "-f", "-o", "source=" + img, mnt])
        check(r.rc != 0, "composefs-fuse served the image", r)
        check(img in r.err and fragment in r.err, "composefs-fuse message", r)


def test_good_image_loads(t, tmp):
    img = build(t, tmp, GOOD)
    out = ok(run([t.info, "dump", img])).out.decode()
    check("/d/wh 0 20644 1 0 0 0 0.0 - - -\n" in out, "whiteout round trip", out)


def test_image_whiteout_with_two_links(t, tmp):
    img = build(t, tmp, GOOD)
    image = Image(read(img))
    nid, _ = find(image, "/d/wh")
    off, fmt = image.inodes[nid].field("nlink")
    bad = patched(img, os.path.join(tmp, "nlink.cfs"), [(off, fmt, 2)])
    walkers_refuse(t, tmp, bad, "with 2 links")


def test_image_whiteout_with_two_names(t, tmp):
    img = build(t, tmp, GOOD)
    image = Image(read(img))
    nid, _ = find(image, "/d/wh")
    _, rec = find(image, "/f")
    # The entry /f now names the whiteout's inode.
    bad = patched(img, os.path.join(tmp, "names.cfs"), [(rec, "<Q", nid)])
    walkers_refuse(t, tmp, bad, "second name of whiteout")


def test_mkcomposefs_refuses_dumpfile(t, tmp):
    out = os.path.join(tmp, "out.cfs")
    for dump, fragment in (
            (ROOT + "/wh 0 20644 2 0 0 0 0.0 - - -\n", "more than one link"),
            (ROOT + "/wh 0 20644 1 0 0 0 0.0 - - -\n/h 0 @20644 1 0 0 0 0.0 /wh - -\n",
             "cannot be hard linked"),
            (ROOT + "/h 0 @20644 1 0 0 0 0.0 /wh - -\n/wh 0 20644 1 0 0 0 0.0 - - -\n",
             "cannot be hard linked")):
        src = write(os.path.join(tmp, "bad.dump"), dump)
        fails(run([t.mkcomposefs, "--from-file", src, out]), fragment, "wh" if
              "more" in fragment else "/h")
        check(not os.path.exists(out), "mkcomposefs left an image behind")
    # A character device with another number may have several names.
    src = write(os.path.join(tmp, "ok.dump"),
                ROOT + "/c 0 20644 2 0 0 5 0.0 - - -\n/h 0 @20644 1 0 0 0 0.0 /c - -\n")
    ok(run([t.mkcomposefs, "--from-file", src, out]))


def test_mkcomposefs_refuses_whiteout_xattr_links(t, tmp):
    # A regular file with trusted.overlay.whiteout is stored escaped and
    # read back as a whiteout: the same one-name rule applies to it.
    out = os.path.join(tmp, "out.cfs")
    wh = "/wh 0 100644 %d 0 0 0 0.0 - - - trusted.overlay.whiteout=\n"
    for dump, fragment in (
            (ROOT + wh % 2, "more than one link"),
            (ROOT + "/h 0 @100644 1 0 0 0 0.0 /wh - -\n" + wh % 1,
             "cannot be hard linked")):
        src = write(os.path.join(tmp, "bad.dump"), dump)
        fails(run([t.mkcomposefs, "--from-file", src, out]), fragment,
              "trusted.overlay.whiteout")
        check(not os.path.exists(out), "mkcomposefs left an image behind")
    # With one name it is written, and reads back as a whiteout.
    src = write(os.path.join(tmp, "ok.dump"), ROOT + wh % 1)
    ok(run([t.mkcomposefs, "--from-file", src, out]))
    dump = ok(run([t.info, "dump", out])).out.decode()
    check("/wh 0 20644 1 0 0 0 0.0 - - -\n" in dump, "whiteout read back", dump)


def test_mkcomposefs_refuses_scanned_hardlink(t, tmp):
    if os.geteuid() != 0:
        raise Skip("creating a character device 0/0 needs root")
    tree = os.path.join(tmp, "tree")
    os.makedirs(tree)
    os.mknod(os.path.join(tree, "wh"), 0o20644, os.makedev(0, 0))
    os.link(os.path.join(tree, "wh"), os.path.join(tree, "wh2"))
    out = os.path.join(tmp, "out.cfs")
    fails(run([t.mkcomposefs, "--hardlinks", tree, out]), "whiteout")
    check(not os.path.exists(out), "mkcomposefs left an image behind")
    # Without --hardlinks each name is a whiteout of its own.
    ok(run([t.mkcomposefs, tree, out]))


if __name__ == "__main__":
    main(globals())
