#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""mkcomposefs --from-tar: one tar layer to one image, against GNU tar.

The reference for a layer is the image mkcomposefs --hardlinks makes of the
layer extracted as root by GNU tar, with OCI whiteouts converted to overlay
ones. Edge cases GNU tar cannot write come from Python's tarfile."""

import os
import subprocess
import tarfile

from cfsoci import (check, check_store, dump, equal, expect_failure, extract_layer, fails,
                    gnu_tar, make_tree, need, need_root, ok, read, run, store_objects,
                    tar_bytes, write, NOBODY)
import cfstools


def compare_with_extraction(tools, tmp, fmt):
    need_root()
    src = os.path.join(tmp, "src")
    make_tree(src, 1, whiteouts=True)
    layer = gnu_tar(src, os.path.join(tmp, "layer.tar"), fmt=fmt)
    ok(run([tools.mkcomposefs, "--from-tar", "--digest-store=" + tmp + "/s1", layer,
            tmp + "/tar.cfs"]))
    extract_layer(layer, tmp + "/x")
    ok(run([tools.mkcomposefs, "--hardlinks", "--digest-store=" + tmp + "/s2", tmp + "/x",
            tmp + "/dir.cfs"]))
    got, want = dump(tools, tmp + "/tar.cfs"), dump(tools, tmp + "/dir.cfs")
    equal(got, want, "dump of --from-tar (%s) against the extracted layer" % fmt)
    check("/.wh.gone" not in got and "/gone 0 20000 1 0 0 0 " in got,
          "whiteout not converted:\n" + got)
    check("trusted.overlay.opaque=y" in got, "opaque directory not marked")
    equal(store_objects(tmp + "/s1"), store_objects(tmp + "/s2"), "store objects")
    check_store(tmp + "/s1")
    # The image bytes themselves are the same too.
    check(read(tmp + "/tar.cfs") == read(tmp + "/dir.cfs"), "image bytes differ")


def test_pax_layer_matches_extraction(tools, tmp):
    compare_with_extraction(tools, tmp, "posix")


def test_gnu_layer_matches_extraction(tools, tmp):
    # GNU format: long names and link targets as GNU records, old GNU
    # sparse headers, no xattrs.
    compare_with_extraction(tools, tmp, "gnu")


def test_compressions_and_stdin(tools, tmp):
    need_root()
    need("zstd")
    src = os.path.join(tmp, "src")
    make_tree(src, 2)
    layer = gnu_tar(src, os.path.join(tmp, "l.tar"))
    subprocess.run(["gzip", "-k", "-6", layer], check=True)
    subprocess.run(["zstd", "-q", "-k", layer], check=True)
    ok(run([tools.mkcomposefs, "--from-tar", layer, tmp + "/plain.cfs"]))
    want = read(tmp + "/plain.cfs")
    for name in ("l.tar.gz", "l.tar.zst"):
        ok(run([tools.mkcomposefs, "--from-tar", tmp + "/" + name, tmp + "/c.cfs"]))
        check(read(tmp + "/c.cfs") == want, "%s gives another image" % name)
        ok(run([tools.mkcomposefs, "--from-tar", "-", tmp + "/c.cfs"],
               stdin=read(tmp + "/" + name)))
        check(read(tmp + "/c.cfs") == want, "%s through stdin gives another image" % name)
    # --print-digest-only needs no store and no output.
    r = ok(run([tools.mkcomposefs, "--from-tar", "--print-digest-only", layer]))
    r2 = ok(run([tools.mkcomposefs, "--print-digest", "--from-tar", layer, tmp + "/d.cfs"]))
    equal(r.out, r2.out, "digest")


def test_unprivileged(tools, tmp):
    need_root()
    need("setpriv")
    src = os.path.join(tmp, "src")
    make_tree(src, 3, whiteouts=True)
    layer = gnu_tar(src, os.path.join(tmp, "l.tar"))
    ok(run([tools.mkcomposefs, "--from-tar", "--digest-store=" + tmp + "/s1", layer,
            tmp + "/root.cfs"]))
    work = os.path.join(tmp, "nobody")
    os.mkdir(work)
    os.chown(work, NOBODY, NOBODY)
    os.chmod(tmp, 0o755)
    os.chmod(layer, 0o644)
    ok(run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
            tools.mkcomposefs, "--from-tar", "--digest-store=" + work + "/s", layer,
            work + "/user.cfs"]))
    check(os.stat(work + "/user.cfs").st_uid == NOBODY, "not run as nobody")
    got = dump(tools, work + "/user.cfs")
    equal(got, dump(tools, tmp + "/root.cfs"), "dump made as nobody")
    for frag in ("/chr 0 20600 1 0 0 1088 ", " 70000 70001 ", "security.capability=",
                 "trusted.secret=", "system.posix_acl_access="):
        check(frag in got, "%r missing from the image made as nobody" % frag)
    equal(store_objects(work + "/s"), store_objects(tmp + "/s1"), "store objects")


# ---- Edge cases written with Python's tarfile ------------------------------------


def entry_fields(dump_text):
    """path -> (size, mode, nlink, uid, gid, rdev, mtime, payload, content)."""
    out = {}
    for line in dump_text.splitlines():
        f = line.split(" ")
        out[f[0]] = f[1:10]
    return out


def test_whiteouts_defaults_and_replacements(tools, tmp):
    reg, dirt, sym = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE
    layer = tar_bytes([
        # No "./" entry and no parents: defaults.
        (dict(name="a/b/file", mode=0o600, uid=3, gid=4, mtime=1000), b"one"),
        (dict(name=".wh.gone", mode=0o644, uid=7, gid=8, mtime=4242), b""),
        (dict(name="opq", type=dirt, mode=0o711, mtime=77), None),
        (dict(name="opq/.wh..wh..opq", mtime=5), b""),
        (dict(name="opq/kept", mtime=5), b"k"),
        # The later entry wins, whatever the types.
        (dict(name="twice", mtime=1), b"first"),
        (dict(name="twice", mtime=2), b"second"),
        (dict(name="d2f", type=dirt, mode=0o755), None),
        (dict(name="d2f/child"), b"c"),
        (dict(name="d2f", mtime=3), b"now a file"),
        (dict(name="f2d", mtime=3), b"file"),
        (dict(name="f2d", type=dirt, mode=0o750, mtime=9), None),
        (dict(name="dd", type=dirt, mode=0o700, mtime=1), None),
        (dict(name="dd/in"), b"stays"),
        (dict(name="dd", type=dirt, mode=0o755, uid=9, mtime=2), None),
        (dict(name="s", type=sym, linkname="x"), None),
        (dict(name="s", type=sym, linkname="y"), None),
        # A hard link keeps the content its target had.
        (dict(name="orig", mtime=1), b"old content"),
        (dict(name="link", type=tarfile.LNKTYPE, linkname="orig"), None),
        (dict(name="orig", mtime=1), b"new content"),
        # A whiteout below what is now a file hides nothing.
        (dict(name="d2f/.wh.child", mtime=3), b""),
        # A plain character device 0/0 stays one in a single layer.
        (dict(name="cdev", type=tarfile.CHRTYPE, mode=0o644, devmajor=0, devminor=0),
         None),
    ])
    write(tmp + "/l.tar", layer)
    ok(run([tools.mkcomposefs, "--from-tar", tmp + "/l.tar", tmp + "/o.cfs"]))
    text = dump(tools, tmp + "/o.cfs")
    e = entry_fields(text)
    equal([e["/"][1]] + e["/"][3:7], ["40755", "0", "0", "0", "0.0"], "root defaults")
    for d in ("/a", "/a/b"):
        equal([e[d][1]] + e[d][3:7], ["40755", "0", "0", "0", "0.0"], d + " defaults")
    equal(e["/a/b/file"][1:7], ["100600", "1", "3", "4", "0", "1000.0"], "file")
    equal(e["/gone"][0:7], ["0", "20000", "1", "0", "0", "0", "4242.0"], "whiteout")
    check("/.wh.gone" not in e, "whiteout entry kept")
    check("trusted.overlay.opaque=y" in [l for l in text.splitlines()
                                          if l.startswith("/opq ")][0], "opaque")
    check("/opq/.wh..wh..opq" not in e and "/opq/kept" in e, "opaque marker")
    equal(e["/twice"][8], "second", "later file")
    equal(e["/d2f"][1], "100644", "directory replaced by a file")
    check("/d2f/child" not in e, "child of a replaced directory kept")
    equal(e["/f2d"][1], "40750", "file replaced by a directory")
    equal([e["/dd"][1], e["/dd"][3]], ["40755", "9"], "directory attributes")
    check("/dd/in" in e, "directory over directory lost its children")
    equal(e["/s"][7], "y", "symlink")
    equal(e["/link"][8], "old\\x20content", "hard link content")
    equal(e["/orig"][8], "new\\x20content", "replaced target")
    equal(e["/link"][2], "1", "broken hard link count")
    equal(e["/cdev"][1], "20644", "device 0/0 in a single layer")


def test_hard_links_in_name_order(tools, tmp):
    # The stream names "z" first; the image must not depend on it.
    layer = tar_bytes([
        (dict(name="z", mtime=5, uid=1), b"x" * 100),
        (dict(name="a", type=tarfile.LNKTYPE, linkname="z"), None),
        (dict(name="m", type=tarfile.LNKTYPE, linkname="a"), None),
    ])
    write(tmp + "/l.tar", layer)
    ok(run([tools.mkcomposefs, "--from-tar", tmp + "/l.tar", tmp + "/o.cfs"]))
    e = entry_fields(dump(tools, tmp + "/o.cfs"))
    equal([e["/a"][1], e["/a"][2]], ["100644", "3"], "first name")
    equal(e["/m"][1], "@100644", "later name")
    equal(e["/z"][1], "@100644", "later name")


def test_bad_input(tools, tmp):
    need("zstd")
    good = tar_bytes([(dict(name="dir", type=tarfile.DIRTYPE), None),
                      (dict(name="dir/big"), os.urandom(300000)),
                      (dict(name="dir/small"), b"abc")])
    gz = subprocess.run(["gzip", "-c"], input=good, stdout=subprocess.PIPE,
                        check=True).stdout
    zs = subprocess.run(["zstd", "-q", "-c"], input=good, stdout=subprocess.PIPE,
                        check=True).stdout
    corrupt_gz = bytearray(gz)
    for i in range(len(gz) // 2, len(gz) // 2 + 64):
        corrupt_gz[i] ^= 0x55
    bad_crc = bytearray(gz)
    bad_crc[-8] ^= 0xFF
    cases = [
        ("gzip with a wrong checksum", bytes(bad_crc), ["cannot read", "incorrect data check"]),
        ("truncated tar", good[:200000], ["cannot read", "'dir/big'"]),
        ("truncated gzip", gz[:len(gz) // 2], ["cannot read", "gzip"]),
        ("corrupt gzip", bytes(corrupt_gz), ["cannot read"]),
        ("truncated zstd", zs[:len(zs) // 2], ["cannot read"]),
        ("not a tar", b"this is not an archive\n" * 100, ["cannot read"]),
        ("escaping path", tar_bytes([(dict(name="../x"), b"1")]),
         ["entry '../x'", "outside the tree"]),
        ("escaping path inside", tar_bytes([(dict(name="a/../../x"), b"1")]),
         ["entry 'a/../../x'", "outside the tree"]),
        ("absolute path", tar_bytes([(dict(name="/etc/passwd"), b"1")]),
         ["entry '/etc/passwd'", "outside the tree"]),
        ("escaping link", tar_bytes([(dict(name="l", type=tarfile.LNKTYPE,
                                           linkname="../x"), None)]),
         ["entry 'l'", "hard link target outside the tree"]),
        ("link to unseen", tar_bytes([(dict(name="l", type=tarfile.LNKTYPE,
                                            linkname="nowhere"), None)]),
         ["entry 'l'", "not seen before"]),
        ("link to directory", tar_bytes([(dict(name="d", type=tarfile.DIRTYPE), None),
                                         (dict(name="l", type=tarfile.LNKTYPE,
                                               linkname="d"), None)]),
         ["entry 'l'", "hard link to a directory"]),
        ("below a file", tar_bytes([(dict(name="f"), b"1"), (dict(name="f/x"), b"2")]),
         ["entry 'f/x'", "not a directory"]),
        ("below a symlink", tar_bytes([(dict(name="s", type=tarfile.SYMTYPE,
                                             linkname="/etc"), None),
                                       (dict(name="s/passwd"), b"2")]),
         ["entry 's/passwd'", "not a directory"]),
        ("root not a directory", tar_bytes([(dict(name="."), b"2")]),
         ["the root entry is not a directory"]),
    ]
    for what, data, frags in cases:
        write(tmp + "/bad", data)
        store = tmp + "/store-" + what.replace(" ", "-")
        expect_failure(tmp, [tools.mkcomposefs, "--from-tar", "--digest-store=" + store,
                             tmp + "/bad", tmp + "/out.cfs"], what, frags, store)
    r = run([tools.mkcomposefs, "--from-tar", tmp + "/missing.tar", tmp + "/out.cfs"])
    fails(r, "cannot open 'missing.tar'".replace("missing.tar", tmp + "/missing.tar"))


def test_option_errors(tools, tmp):
    write(tmp + "/l.tar", tar_bytes([(dict(name="f"), b"1")]))
    for argv, frag in [
        (["--from-tar", "--from-file"], "exclude each other"),
        (["--from-tar", "--from-oci"], "exclude each other"),
        (["--from-tar", "--platform=linux/amd64"], "--platform needs --from-oci"),
        (["--from-tar", "--hardlinks"], "--hardlinks is implied"),
    ]:
        r = run([tools.mkcomposefs] + argv + [tmp + "/l.tar", tmp + "/o.cfs"])
        check(r.rc != 0 and frag in r.err, "expected %r" % frag, r)
        check(not os.path.exists(tmp + "/o.cfs"), "image written")


if __name__ == "__main__":
    cfstools.main(globals())
