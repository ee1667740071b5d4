#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Byte-exactness on the generated cases kept in the repository.

    golden-generated.py TOOLS_DIR [CASE_DIR]

CASE_DIR (default tests/assets/generated) holds gen-N.dump, gen-N.args
(extra mkcomposefs arguments, maybe empty) and gen-N.sha256 (SHA-256 of
the image composefs 1.0.8 writes for them).  For every case the image
mkcomposefs builds must have exactly that SHA-256, that is the same bytes
as composefs 1.0.8 writes.  Needs nothing outside the repository; every
failing case is named.
"""

import os
import shlex
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import cfstest  # noqa: E402
from cfstest import TestFailure  # noqa: E402


def run_case(tools_dir, case_dir, name, tmp):
    base = os.path.join(case_dir, name)
    with open(base + ".args") as f:
        args = shlex.split(f.read())
    with open(base + ".sha256") as f:
        want = f.read().split()[0]
    out = os.path.join(tmp, name + ".cfs")
    cfstest.run([cfstest.tool(tools_dir, "mkcomposefs")] + args +
                ["--from-file", base + ".dump", out])
    got = cfstest.sha256_file(out)
    if got != want:
        raise TestFailure("SHA-256 %s, composefs 1.0.8 writes %s (size %d)"
                          % (got, want, os.path.getsize(out)))
    os.unlink(out)


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: golden-generated.py TOOLS_DIR [CASE_DIR]", file=sys.stderr)
        return 2
    tools_dir = sys.argv[1]
    case_dir = sys.argv[2] if len(sys.argv) == 3 else \
        os.path.join(HERE, "..", "assets", "generated")
    names = sorted(n[:-5] for n in os.listdir(case_dir) if n.endswith(".dump"))
    if len(names) < 90:
        raise TestFailure("only %d cases in %s" % (len(names), case_dir))
    failed = []
    with tempfile.TemporaryDirectory(prefix="cfs-generated-") as tmp:
        for name in names:
            try:
                run_case(tools_dir, case_dir, name, tmp)
                print("ok %s" % name)
            except TestFailure as e:
                print("FAIL %s: %s" % (name, e))
                failed.append(name)
    print("%d passed, %d failed" % (len(names) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    cfstest.main_wrapper(main)
