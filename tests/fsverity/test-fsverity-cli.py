#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Compares every library way of computing an fs-verity digest (printed by
# fsverity-digests) with `fsverity digest --hash-alg=sha256
# --block-size=4096` (fsverity-utils) and with a small model of the
# algorithm written here from docs/image-format.md, "fs-verity digest", for
# files of pseudo-random data at every boundary of the Merkle tree.
# Usage: test-fsverity-cli.py PATH-TO-fsverity-digests

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

BLOCK = 4096

SIZES = [
    0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK,
    128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1,
    128 * BLOCK - 1, 128 * BLOCK, 128 * BLOCK + 1, 129 * BLOCK,
    128 * BLOCK * 128 - 1, 128 * BLOCK * 128, 128 * BLOCK * 128 + 1,
    7 * 1024 * 1024 + 333,
]


def model(data):
    """fs-verity SHA-256 digest, 4096-byte blocks, no salt."""
    def hash_blocks(buf):
        out = []
        for off in range(0, len(buf), BLOCK):
            block = buf[off:off + BLOCK]
            out.append(hashlib.sha256(block.ljust(BLOCK, b"\0")).digest())
        return b"".join(out)

    if not data:
        root = bytes(32)
    else:
        level = hash_blocks(data)
        while len(level) > 32:
            level = hash_blocks(level)
        root = level
    desc = struct.pack("<BBBBIQ", 1, 1, 12, 0, 0, len(data))
    desc += root.ljust(64, b"\0") + bytes(32) + bytes(144)
    assert len(desc) == 256
    return hashlib.sha256(desc).hexdigest()


def main():
    if len(sys.argv) != 2:
        print("usage: test-fsverity-cli.py FSVERITY-DIGESTS", file=sys.stderr)
        return 2
    tool = sys.argv[1]
    cli = shutil.which("fsverity")
    if cli is None:
        print("SKIP: the fsverity command (Debian package fsverity) is not installed")
        return 77

    failures = 0
    rnd = random.Random(20240229)
    with tempfile.TemporaryDirectory(prefix="test-fsverity-cli-") as tmp:
        paths = []
        for size in SIZES:
            path = os.path.join(tmp, "f%d" % size)
            with open(path, "wb") as f:
                f.write(rnd.randbytes(size))
            paths.append(path)

        res = subprocess.run([cli, "digest", "--hash-alg=sha256", "--block-size=4096"]
                             + paths, capture_output=True, text=True)
        if res.returncode != 0:
            print("fsverity digest failed: %s" % res.stderr.strip(), file=sys.stderr)
            return 1
        expected = {}
        for line in res.stdout.splitlines():
            alg_hex, path = line.split(" ", 1)
            alg, hexd = alg_hex.split(":")
            assert alg == "sha256", line
            expected[path] = hexd

        res = subprocess.run([tool] + paths, capture_output=True, text=True)
        if res.returncode != 0:
            print("fsverity-digests failed: %s" % res.stderr.strip(), file=sys.stderr)
            return 1
        got = {}
        for line in res.stdout.splitlines():
            path, method, hexd = line.split(" ")
            got.setdefault(path, {})[method] = hexd

        methods = ["from_data", "from_fd", "from_content", "get", "fast", "stream"]
        for path, size in zip(paths, SIZES):
            with open(path, "rb") as f:
                want_model = model(f.read())
            want = expected.get(path)
            if want != want_model:
                print("size %d: fsverity CLI %s, model %s" % (size, want, want_model),
                      file=sys.stderr)
                failures += 1
            for m in methods:
                have = got.get(path, {}).get(m)
                if have != want:
                    print("size %d: %s gives %s, fsverity CLI %s" % (size, m, have, want),
                          file=sys.stderr)
                    failures += 1
        # The empty file has the kernel's digest (docs/compatibility.md,
        # "Empty-file digest").
        if expected.get(paths[0]) != \
                "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95":
            print("empty file digest is %s" % expected.get(paths[0]), file=sys.stderr)
            failures += 1

    if failures:
        print("%d mismatch(es)" % failures, file=sys.stderr)
        return 1
    print("%d sizes x %d methods agree with fsverity digest" % (len(SIZES), len(methods)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
