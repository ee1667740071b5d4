#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-fuse -o verity checks every block it serves, not only the
file at open.

    test-fuse-verity-blocks.py TOOLS_DIR

With a file open, bytes of its backing file are changed in place (same
size): reading the changed block fails with EIO, logged once, while the
other blocks (unaligned reads, the partial last block, reads past the
end) still read back intact. A file of several MiB is read correctly
through a tree that does not fit the memory given with -o verity_memory
(only its top kept), and a change in it is refused too. A backing file
cut short after open fails with EIO past its new end; one cut short
before open fails to open.
"""

import contextlib
import errno
import os
import random
import sys
import tempfile

import cfsfuse
import cfstest
import cfsverity
from cfstest import Failure

S_IFDIR, S_IFREG = 0o040000, 0o100000
BLOCK = 4096


def content(name, size):
    return random.Random(name).randbytes(size)


def objpath(data):
    h = cfsverity.digest(data).hex()
    return h[:2] + "/" + h[2:]


def pread_errno(fd, size, off):
    try:
        return os.pread(fd, size, off)
    except OSError as e:
        return e.errno


@contextlib.contextmanager
def opened(mnt, name):
    """A read-only descriptor of @name in the mount, closed afterwards."""
    fd = os.open(os.path.join(mnt, name), os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def overwrite(path, off, data):
    """Writes @data at @off in the object @path, behind the mount's back."""
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def expect(got, want, what):
    if got != want:
        if isinstance(got, int):
            got = errno.errorcode.get(got, got)
        elif isinstance(want, bytes):
            got = "%d bytes, not the expected %d" % (len(got), len(want))
        else:
            got = "%d bytes of data, not %s" % (len(got),
                                                errno.errorcode.get(want, want))
        raise Failure("%s: got %s" % (what, got))


def main():
    cfsfuse.require_fuse()
    tools_dir = sys.argv[1]
    exe = cfstest.tool(tools_dir, "composefs-fuse")
    files = {
        "changed": content("changed", 40 * BLOCK + 1234),
        "tail": content("tail", 9 * BLOCK + 100),
        "big": content("big", 6 * 1024 * 1024 + 777),
        "bigchanged": content("bigchanged", 3 * 1024 * 1024 + 5),
        "cut": content("cut", 30 * BLOCK + 10),
        "cutbefore": content("cutbefore", 10 * BLOCK),
    }
    lines = [cfsfuse.dump_line("/", S_IFDIR | 0o755)]
    for name, data in sorted(files.items()):
        lines.append(cfsfuse.dump_line("/" + name, S_IFREG | 0o644, len(data),
                                       payload=objpath(data),
                                       digest=cfsverity.digest(data)))
    with tempfile.TemporaryDirectory(prefix="cfs-fuse-vblocks-") as tmp:
        with cfstest.no_leaks(tmp):
            image = os.path.join(tmp, "image.cfs")
            cfstest.build_image(tools_dir, b"".join(lines), image)
            store = os.path.join(tmp, "store")
            obj = {}
            for name, data in files.items():
                obj[name] = os.path.join(store, objpath(data))
                os.makedirs(os.path.dirname(obj[name]), exist_ok=True)
                with open(obj[name], "wb") as f:
                    f.write(data if name != "cutbefore" else data[:-1])
            mnt = os.path.join(tmp, "mnt")
            os.mkdir(mnt)
            # 4K: only the top block of each tree fits; level 0 of the
            # small files (one hash block, the top) is still kept whole.
            with cfsfuse.FuseMount(exe, image, mnt, [store],
                                   extra=["verity", "verity_memory=4K"]) as m:
                check_changed(mnt, obj, files)
                check_big(mnt, obj, files)
                check_cut(mnt, obj, files)
            log = m.stderr.decode("utf-8", "replace").splitlines()
    check_log(log)
    return 0


def check_changed(mnt, obj, files):
    data = files["changed"]
    with opened(mnt, "changed") as fd:
        # Changed after open, before anything was read (nothing cached).
        off = 20 * BLOCK + 77
        overwrite(obj["changed"], off, bytes([data[off] ^ 0xff]))
        expect(pread_errno(fd, BLOCK, 20 * BLOCK), errno.EIO, "changed block")
        expect(pread_errno(fd, 10, 20 * BLOCK + 4000), errno.EIO,
               "unaligned read in the changed block")
        for off, size in ((0, BLOCK), (5, 300), (BLOCK - 3, 10),
                          (39 * BLOCK + 100, 5000), (40 * BLOCK, 4096),
                          (len(data) - 1, 1), (30 * BLOCK + 11, 2 * BLOCK)):
            expect(pread_errno(fd, size, off), data[off:off + size],
                   "read of %d at %d beside the changed block" % (size, off))
        expect(pread_errno(fd, 100, len(data)), b"", "read at the end")
        expect(pread_errno(fd, 100, len(data) + 9 * BLOCK), b"", "read past the end")
    # The partial last block of another file, changed in its padding-free
    # part after open.
    data = files["tail"]
    with opened(mnt, "tail") as fd:
        overwrite(obj["tail"], len(data) - 1, bytes([data[-1] ^ 1]))
        expect(pread_errno(fd, 50, len(data) - 60), errno.EIO, "changed last block")
        expect(pread_errno(fd, 8 * BLOCK, 0), data[:8 * BLOCK], "blocks before it")
    print("changed after open: the changed blocks fail with EIO, the others read")


def check_big(mnt, obj, files):
    data = files["big"]
    with open(os.path.join(mnt, "big"), "rb") as f:
        got = f.read()
    expect(got, data, "big file through a tree over the memory limit")
    with opened(mnt, "big") as fd:
        for off in (0, 777, 1024 * 1024 - 5, len(data) - 10000):
            expect(pread_errno(fd, 70000, off), data[off:off + 70000],
                   "big file read at %d" % off)
    data = files["bigchanged"]
    with opened(mnt, "bigchanged") as fd:
        off = 2 * 1024 * 1024 + 3
        overwrite(obj["bigchanged"], off, b"\0\0\0" if data[off] else b"\1\1\1")
        expect(pread_errno(fd, BLOCK, 2 * 1024 * 1024), errno.EIO,
               "changed block of a big file")
        # Without level 0 in memory, the other blocks behind the same
        # level-0 hash block (512 KiB) cannot be trusted either; the rest
        # read.
        expect(pread_errno(fd, 100000, 0), data[:100000], "big file start")
        off = len(data) - 3000
        expect(pread_errno(fd, 5000, off), data[off:], "big file end")
    print("%d-byte file read through a tree over the memory limit; a change "
          "in one refused" % len(files["big"]))


def check_cut(mnt, obj, files):
    data = files["cut"]
    with opened(mnt, "cut") as fd:
        os.truncate(obj["cut"], 20 * BLOCK)
        expect(pread_errno(fd, BLOCK, 25 * BLOCK), errno.EIO, "block past the cut")
        expect(pread_errno(fd, 10, len(data) - 5), errno.EIO, "last block past the cut")
        expect(pread_errno(fd, 2 * BLOCK, 10 * BLOCK), data[10 * BLOCK:12 * BLOCK],
               "blocks before the cut")
    try:
        with open(os.path.join(mnt, "cutbefore"), "rb") as f:
            f.read()
        raise Failure("a backing file cut short before open was served")
    except OSError as e:
        expect(e.errno, errno.EIO, "open of a backing file cut short")
    print("cut short: EIO past the new end (after open), EIO at open (before)")


def check_log(log):
    for name, what in (("changed", "block 20 (offset 81920) fails fs-verity"),
                       ("tail", "block 9 (offset 36864) fails fs-verity"),
                       ("bigchanged", "fails fs-verity verification"),
                       ("cut", "fails fs-verity verification"),
                       ("cutbefore", "wrong fs-verity digest")):
        hits = [l for l in log if l.startswith("composefs-fuse: '/%s': " % name)]
        if len(hits) != 1 or what not in hits[0]:
            raise Failure("%s: expected one line with %r, got:\n%s" % (
                name, what, "\n".join(log)))
    for name in ("big",):
        if any("'/%s'" % name in l for l in log):
            raise Failure("%s logged:\n%s" % (name, "\n".join(log)))
    print("one log line per failed file:")
    print("\n".join("  " + l for l in log))


if __name__ == "__main__":
    cfstest.main(main)
