#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Regenerate the seed corpora of the fuzz targets (tests/fuzz/corpus/).

    gen-corpus.py MKCOMPOSEFS

Writes small dumpfiles that together use every feature of the format
(docs/dumpfile.md) for the dumpfile targets, the images
MKCOMPOSEFS builds from them for the image targets, and option strings for
the mount option target. The output is deterministic; the corpora are
committed and kept small (the reference assets are replayed from ../shared
and need not be copied).
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DIGEST = "ab" * 32
DIGEST2 = "0123456789abcdef" * 4

ROOT = "/ 4096 40755 2 0 0 0 1700000000.0 - - -"

DUMPS = {
    "root-only": [ROOT],
    "file-kinds": [
        ROOT,
        "/empty 0 100644 1 0 0 0 0.0 - - -",
        "/inline 5 100644 1 10 20 0 5.7 - hello -",
        "/external 8192 100644 1 0 0 0 1.0 ab/cdef - " + DIGEST,
        "/nodigest 100 100600 1 0 0 0 1.0 x/y - -",
        "/link 6 120777 1 0 0 0 1.0 target - -",
        "/chr 0 20644 1 0 0 1025 1.0 - - -",
        "/blk 0 60644 1 0 0 2049 1.0 - - -",
        "/fifo 0 10644 1 0 0 0 1.0 - - -",
        "/sock 0 140755 1 0 0 0 1.0 - - -",
    ],
    "dirs": [
        ROOT,
        "/a 4096 40755 3 0 0 0 1.0 - - -",
        "/a/b 4096 40700 2 1000 1000 0 2.0 - - -",
        "/a/b/c 3 100644 1 0 0 0 3.0 - abc -",
        "/a/d 4096 40755 2 0 0 0 4.0 - - -",
        "//z//y 0 100644 1 0 0 0 5.0 - - -",
    ],
    "hardlinks": [
        ROOT,
        "/f 4 100644 3 0 0 0 1.0 - data -",
        "/g 0 @100644 0 0 0 0 0.0 /f - -",
        "/h 0 @100644 0 0 0 0 0.0 g - -",
        "/i 0 @100644 0 0 0 0 0.0 /j - -",
        "/j 0 100644 1 0 0 0 0.0 - - -",
    ],
    "xattrs": [
        "/ 4096 40755 2 0 0 0 1.0 - - - security.selinux=system_u:object_r:root_t:s0\\x00",
        "/x 0 100644 1 0 0 0 1.0 - - - user.a=1 user.b=\\x00\\xff trusted.foo=bar",
        "/y 0 100644 1 0 0 0 1.0 - - - user.a=1 user.key\\x3dwith\\x3dequals=v=w",
        "/z 4096 40755 2 0 0 0 1.0 - - - trusted.overlay.opaque=y trusted.overlay.redirect=/a",
        "/z/acl 0 100644 1 0 0 0 1.0 - - - system.posix_acl_access=\\x02\\x00\\x00\\x00 lustre.x=y",
        "/z/nsless 0 100644 1 0 0 0 1.0 - - - foo=1 user.overlay.whiteout= user.empty=",
    ],
    "whiteouts": [
        ROOT,
        "/d 4096 40755 2 0 0 0 1.0 - - -",
        "/d/gone 0 20000 1 0 0 0 1.0 - - -",
        "/w 0 20000 1 0 0 0 1.0 - - - user.x=1",
    ],
    "escapes": [
        ROOT,
        "/sp\\x20ace 0 100644 1 0 0 0 1.0 - - -",
        "/nl\\n\\t\\r\\\\ 0 100644 1 0 0 0 1.0 - - -",
        "/utf8\\xc3\\xa9 3 100644 1 0 0 0 1.0 - \\x2d\\x00- -",
        "/dash 1 100644 1 0 0 0 1.0 \\x2d \\x2d -",
        "/hi\\xff 2 120777 1 0 0 0 1.0 \\x2e\\x2e - -",
    ],
    "times-ids": [
        ROOT,
        "/neg 0 100644 1 4294967295 4294967295 0 -5.999999999 - - -",
        "/big 0 100644 70000 70000 70000 0 9223372036854775807.4294967295 - - -",
        "/plus 0 100644 +1 +2 +3 0 +4.+5 - - -",
        "/highmode 0 1100644 1 0 0 0 1.0 - - -",
    ],
    "big-files": [
        ROOT,
        "/chunked 9000000000 100644 1 0 0 0 1.0 aa/bb - " + DIGEST2,
        "/huge 4398046511104 100644 1 0 0 0 1.0 cc/dd - -",
        "/abs 4097 100644 1 0 0 0 1.0 /abs/path - " + DIGEST,
    ],
    "inline-sizes": [ROOT] + [
        "/in%04d %d 100644 1 0 0 0 1.0 - %s -" % (n, n, "x" * n)
        for n in (1, 63, 64, 65, 4095, 4096, 4097)
    ],
    "many-entries": [ROOT, "/d 4096 40755 2 0 0 0 1.0 - - -"] + [
        "/d/%s 0 100644 1 0 0 0 1.0 - - -" % ("n%03d" % i + "e" * (i % 40))
        for i in range(300)
    ],
    "long-names": [
        ROOT,
        "/" + "a" * 255 + " 0 100644 1 0 0 0 1.0 - - -",
        "/l 4095 120777 1 0 0 0 1.0 " + "t" * 4095 + " - -",
    ],
    "no-newline": [ROOT, "/f 0 100644 1 0 0 0 1.0 - - -"],
    "short-fields": [ROOT, "/f 0 100644 1 0 0 0 1.0", "/g 0 100644 1 0 0 0 1.0 -"],
    "crlf": ["/ 4096 40755 2 0 0 0 1.0 - - -\r"],
    "bad-escape": [ROOT, "/f\\q 0 100644 1 0 0 0 1.0 - - -"],
    "bad-parent": [ROOT, "/a/b 0 100644 1 0 0 0 1.0 - - -"],
    "dup": [ROOT, "/a 0 100644 1 0 0 0 1.0 - - -", "/a 0 100644 1 0 0 0 1.0 - - -"],
    "link-cycle": [ROOT, "/a 0 @100644 1 0 0 0 1.0 /b - -",
                   "/b 0 @100644 1 0 0 0 1.0 /a - -"],
    "link-to-dir": [ROOT, "/d 4096 40755 2 0 0 0 1.0 - - -",
                    "/l 0 @100644 1 0 0 0 1.0 /d - -"],
    "deep": [ROOT] + [
        "/" + "/".join("d" for _ in range(k + 1)) + " 4096 40755 2 0 0 0 1.0 - - -"
        for k in range(40)
    ],
}
NO_NEWLINE = {"no-newline"}
# Built with --min-version=0 --max-version=0 as well.
V0_TOO = {"whiteouts", "xattrs"}

MOUNT_OPTIONS = [
    "basedir=/objects",
    "basedir=/a:/b:/c,digest=" + DIGEST + ",verity,ro",
    "basedir=/o\\,bj,upperdir=/u,workdir=/w,rw",
    "basedir=/o,tryverity,noverity,idmap=/proc/self/ns/user",
    "basedir=a::b",
    "digest,basedir=/o",
    "basedir=/o,digest=,unknown=1",
    "basedir=/o,digest=abc",
    "basedir=/o\\=x\\\\,workdir=/w",
    ",,basedir=/o,",
]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    mkcomposefs = sys.argv[1]
    for name, lines in sorted(DUMPS.items()):
        text = "\n".join(lines)
        if name not in NO_NEWLINE:
            text += "\n"
        data = text.encode("utf-8", "surrogateescape")
        write(os.path.join(HERE, "corpus", "dumps", name + ".dump"), data)
        versions = [None, 0] if name in V0_TOO else [None]
        for v in versions:
            args = [mkcomposefs, "--from-file", "-", "-"]
            suffix = ""
            if v is not None:
                args[1:1] = ["--min-version=%d" % v, "--max-version=%d" % v]
                suffix = "-v%d" % v
            r = subprocess.run(args, input=data, capture_output=True)
            if r.returncode != 0:
                continue
            write(os.path.join(HERE, "corpus", "images", name + suffix + ".cfs"),
                  r.stdout)
    for i, opts in enumerate(MOUNT_OPTIONS):
        write(os.path.join(HERE, "corpus", "mount-options", "opts%02d" % i),
              opts.encode())


if __name__ == "__main__":
    main()
