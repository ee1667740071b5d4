#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Compares every library way of computing an fs-verity digest (printed by
# fsverity-digests) with `fsverity digest --hash-alg=sha256
# --block-size=4096` (fsverity-utils) and with the tests' independent
# model of the algorithm (tests/lib/cfsverity.py), for files of
# pseudo-random data at every boundary of the Merkle tree.
# Usage: test-fsverity-cli.py PATH-TO-fsverity-digests

import os
import random
import sys

import cfstest
import cfsverity

BLOCK = cfsverity.BLOCK

SIZES = [
    0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK,
    128 * 1024 - 1, 128 * 1024, 128 * 1024 + 1,
    128 * BLOCK - 1, 128 * BLOCK, 128 * BLOCK + 1, 129 * BLOCK,
    128 * BLOCK * 128 - 1, 128 * BLOCK * 128, 128 * BLOCK * 128 + 1,
    7 * 1024 * 1024 + 333,
]


def main():
    if len(sys.argv) != 2:
        print("usage: test-fsverity-cli.py FSVERITY-DIGESTS", file=sys.stderr)
        return 2
    tool = sys.argv[1]
    failures = 0
    rnd = random.Random(20240229)
    with cfstest.tmpdir("test-fsverity-cli-") as tmp:
        paths = []
        for size in SIZES:
            path = os.path.join(tmp, "f%d" % size)
            with open(path, "wb") as f:
                f.write(rnd.randbytes(size))
            paths.append(path)

        expected = cfsverity.cli_digests(paths)
        if expected is None:
            cfstest.skip("the fsverity command (Debian package fsverity) is not installed")
        got = {}
        for line in cfstest.run([tool] + paths).stdout.decode().splitlines():
            path, method, hexd = line.split(" ")
            got.setdefault(path, {})[method] = hexd

        methods = ["from_data", "from_fd", "from_content", "get", "fast", "stream"]
        for path, size in zip(paths, SIZES):
            want_model = cfsverity.file_hexdigest(path)
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
        raise cfstest.Failure("%d mismatch(es)" % failures)
    print("%d sizes x %d methods agree with fsverity digest" % (len(SIZES), len(methods)))
    return 0


if __name__ == "__main__":
    cfstest.main(main)
