#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-fuse -o verity: every backing file is checked against the
fs-verity digest in the image before it is served.

    test-fuse-verity.py TOOLS_DIR

An image with good, tampered, missing and digest-less backing files is
mounted with -o verity: the bad ones fail to open with EIO, each logged
exactly once however often it is opened, while the rest of the tree
(including hard links and files sharing a backing file) reads back intact.
A backing file changed after it was verified is caught on the next open,
and passes again once restored. Without -o verity the same mount serves
the tampered file as it is and the missing one fails with ENOENT, as the
kernel mount without verity does.
"""

import errno
import os
import sys
import tempfile

import cfsfuse
import cfsoverlay
import cfstest
import cfsverity
from cfstest import Failure

import cfsdump

S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000


def contents():
    """name -> bytes of each external file (sizes across 1, 2 and 3 Merkle
    tree levels)."""
    out = {}
    for name, size in (("small", 100), ("block", 4096), ("multi", 300000),
                       ("deep", 600000), ("tampered", 5000),
                       ("missing", 7000), ("nodigest", 9000),
                       ("changing", 20000)):
        out[name] = cfsoverlay.object_bytes(name.encode(), size)
    return out


def objpath(data):
    h = cfsverity.digest(data).hex()
    return h[:2] + "/" + h[2:]


def make_dump(files):
    lines = [cfsfuse.dump_line("/", S_IFDIR | 0o755),
             cfsfuse.dump_line("/d", S_IFDIR | 0o755)]
    for name, data in sorted(files.items()):
        digest = None if name == "nodigest" else cfsverity.digest(data)
        lines.append(cfsfuse.dump_line("/d/" + name, S_IFREG | 0o644, len(data),
                                       payload=objpath(data), digest=digest,
                                       nlink=2 if name == "small" else 1))
    # a second name for "small", and another file sharing its object
    lines.append(cfsfuse.dump_line("/hardlink", S_IFREG | 0o644, payload="/d/small")
                 .replace(b" 100644 ", b" @100644 "))
    small = files["small"]
    lines.append(cfsfuse.dump_line("/shared", S_IFREG | 0o600, len(small),
                                   payload=objpath(small),
                                   digest=cfsverity.digest(small)))
    lines.append(cfsfuse.dump_line("/inline", S_IFREG | 0o644, 5,
                                   content=b"hello"))
    lines.append(cfsfuse.dump_line("/link", S_IFLNK | 0o777, 7, payload="d/small"))
    return b"".join(sorted(lines, key=lambda l: l.split(b" ")[0]))


def write_store(store, files):
    for name, data in files.items():
        if name == "missing":
            continue
        if name == "tampered":
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        p = os.path.join(store, objpath(files[name]))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)


def open_errno(path):
    try:
        with open(path, "rb") as f:
            f.read()
    except OSError as e:
        return e.errno
    return 0


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_verity(exe, image, store, mnt, files, dump):
    bad = {"tampered", "missing", "nodigest"}
    with cfsfuse.FuseMount(exe, image, mnt, [store], extra=["verity"]) as m:
        # Everything else must read back intact, checked by the common
        # comparison with the bad files' contents left out.
        root = cfsdump.parse_dump(dump)
        exp = cfsdump.expected_view(root, 0)
        got = {os.fsencode(objpath(d)): d for n, d in files.items() if n not in bad}
        cfsoverlay.overlay_view(exp, got.get)
        errors = []
        cfsdump.compare_mount(mnt, exp, errors)
        if errors:
            raise Failure("verity mount differs:\n  " + "\n  ".join(errors))
        for name in sorted(bad):
            p = os.path.join(mnt, "d", name)
            os.lstat(p)     # the lookup itself is fine
            for _ in range(3):
                e = open_errno(p)
                if e != errno.EIO:
                    raise Failure("%s: open gave %s, expected EIO" % (
                        name, errno.errorcode.get(e, e)))
        for name in sorted(set(files) - bad):
            if read(os.path.join(mnt, "d", name)) != files[name]:
                raise Failure("%s: wrong content" % name)

        # A verified file modified later is checked again on open.
        obj = os.path.join(store, objpath(files["changing"]))
        p = os.path.join(mnt, "d", "changing")
        orig = files["changing"]
        with open(obj, "r+b") as f:
            f.write(b"X")
        if open_errno(p) != errno.EIO:
            raise Failure("a backing file changed after verification "
                          "was served")
        with open(obj, "wb") as f:
            f.write(orig)
        if open_errno(p) != 0:
            raise Failure("the restored backing file is refused")
    log = m.stderr.decode("utf-8", "replace").splitlines()
    for name in sorted(bad | {"changing"}):
        n = sum(1 for l in log if "'/d/%s'" % name in l)
        if n != 1:
            raise Failure("%s logged %d times, expected once:\n%s" % (
                name, n, "\n".join(log)))
    for l in log:
        if not l.startswith("composefs-fuse: '/d/"):
            raise Failure("unexpected message: %r" % l)
    for name, what in (("tampered", "wrong fs-verity digest"),
                       ("missing", "No such file or directory"),
                       ("nodigest", "no fs-verity digest")):
        if not any("'/d/%s'" % name in l and what in l for l in log):
            raise Failure("%s: message lacks %r:\n%s" % (name, what,
                                                              "\n".join(log)))
    print("verity: good files read, %d bad ones refused and logged once:"
          % len(bad))
    print("\n".join("  " + l for l in log))


def check_noverity(exe, image, store, mnt, files):
    with cfsfuse.FuseMount(exe, image, mnt, [store]) as m:
        data = read(os.path.join(mnt, "d", "tampered"))
        if data == files["tampered"] or len(data) != len(files["tampered"]):
            raise Failure("without verity the tampered file should be "
                          "served as stored")
        e = open_errno(os.path.join(mnt, "d", "missing"))
        if e != errno.ENOENT:
            raise Failure("missing object gave %s, expected ENOENT"
                          % errno.errorcode.get(e, e))
        if read(os.path.join(mnt, "d", "nodigest")) != files["nodigest"]:
            raise Failure("nodigest: wrong content")
    if m.stderr:
        raise Failure("unexpected messages without verity: %r" % m.stderr)
    print("no verity: tampered file served, missing one ENOENT, nothing logged")


def main():
    cfsfuse.require_fuse()
    tools_dir = sys.argv[1]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    files = contents()
    dump = make_dump(files)
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-verity-") as tmp:
        with cfstest.no_leaks(tmp):
            image = os.path.join(tmp, "image.cfs")
            cfstest.build_image(tools_dir, dump, image)
            store = os.path.join(tmp, "store")
            write_store(store, files)
            mnt = os.path.join(tmp, "mnt")
            os.mkdir(mnt)
            check_verity(exe, image, store, mnt, files, dump)
            check_noverity(exe, image, store, mnt, files)
    return 0


if __name__ == "__main__":
    cfstest.main(main)
