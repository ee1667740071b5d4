#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Random dumpfile round trips.

    test-random-roundtrip.py TOOLS_DIR VERSION

For each seed (env RANDOM_SEEDS: a count N meaning seeds 1..N, a list
`3,17,40`, or a range `100-119`; default 20), tests/lib/gen-random-dump.py
writes a dumpfile which must:
  * build (strict mode) into an image of format version VERSION: version 0
    with --min-version=0 --max-version=0, version 1 with the default options
    (the generator puts at least one whiteout into version 1 trees);
  * build to the same bytes a second time;
  * come back byte-identical through composefs-dump and through
    `composefs-info dump | mkcomposefs`;
  * pass fsck.erofs;
  * when running as root with EROFS, mount and match the dumpfile.
All seeds run; every failure is listed with the command that reproduces it.
"""

import os
import subprocess
import sys
import tempfile
import time

import cfsdump
import cfstest
from cfstest import Failure

GENERATOR = cfstest.GENERATOR


def parse_seeds(text):
    text = text.strip()
    if "," in text:
        return [int(s) for s in text.split(",") if s]
    if "-" in text[1:]:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return list(range(1, int(text) + 1))


def generate(seed, version):
    return subprocess.run([sys.executable, GENERATOR, str(seed), "--version",
                           str(version)], stdout=subprocess.PIPE,
                          check=True).stdout


def one_seed(tools_dir, seed, version, tmp, can_mount, first):
    dump = generate(seed, version)
    if first and generate(seed, version) != dump:
        raise Failure("the generator gives different output for the same "
                      "seed")
    root = cfsdump.parse_dump(dump)     # the generator must write valid dumps
    args = ["--min-version=0", "--max-version=0"] if version == 0 else []
    out = os.path.join(tmp, "image.cfs")
    cfstest.build_image(tools_dir, dump, out, extra=args)
    got = cfstest.image_version(out)
    if got != version:
        raise Failure("image has format version %d, expected %d" % (
            got, version))
    again = os.path.join(tmp, "again.cfs")
    cfstest.build_image(tools_dir, dump, again, extra=args)
    if not cfstest.same_bytes(out, again):
        raise Failure("a second build gives different bytes\n" +
                      cfstest.cmp_head(again, out))
    cfstest.roundtrip(tools_dir, out, tmp, 0 if version == 0 else None,
                      strict=True)
    why = cfstest.fsck(out)
    mounted = ""
    if can_mount:
        n = cfstest.kernel_compare(out, root, version, tmp)
        mounted = ", %d entries match on a kernel mount" % n
    return "%d bytes of dump, image %d bytes%s%s" % (
        len(dump), os.path.getsize(out), mounted,
        "" if why is None else " (fsck skipped: %s)" % why)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("0", "1"):
        print("usage: test-random-roundtrip.py TOOLS_DIR 0|1", file=sys.stderr)
        return 2
    tools_dir, version = sys.argv[1], int(sys.argv[2])
    seeds = parse_seeds(os.environ.get("RANDOM_SEEDS", "20"))
    why = cfstest.kernel_mount_available()
    if why:
        print("note: no kernel comparison: %s" % why)
    failures = []
    start = time.monotonic()
    for seed in seeds:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="cfs-random-") as tmp:
            try:
                info = one_seed(tools_dir, seed, version, tmp, why is None,
                                seed == seeds[0])
                print("seed %d: ok, %s (%.1fs)" % (seed, info,
                                                   time.monotonic() - t0))
            except (Failure, cfstest.MountUnavailable,
                    cfsdump.DumpError) as e:
                failures.append(seed)
                print("seed %d: FAIL: %s" % (seed, e))
                print("  reproduce: %s %d --version %d > seed.dump" % (
                    GENERATOR, seed, version))
    print("%d seeds in %.1fs, %d failed%s" % (
        len(seeds), time.monotonic() - start, len(failures),
        (": " + " ".join(map(str, failures))) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    cfstest.main(main)
