#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Byte-exactness on the generated cases kept in the repository.

    test-golden-generated.py TOOLS_DIR [CASE_DIR] [-k CASE]

CASE_DIR (default tests/assets/generated) holds gen-N.dump, gen-N.args
(extra mkcomposefs arguments, maybe empty) and gen-N.sha256 (SHA-256 of
the image composefs 1.0.8 writes for them).  For every case the image
mkcomposefs builds must have exactly that SHA-256, that is the same bytes
as composefs 1.0.8 writes.  The exception is a case whose dumpfile has a
whiteout with several links or names: composefs 1.0.8 writes an image that
its own reader mishandles, and mkcomposefs must refuse it with a message
naming the whiteout and leave no image (docs/compatibility.md, "Whiteouts
with several names").  Needs nothing outside the repository; every failing
case is named.
"""

import os
import shlex
import sys

import cfsdump
import cfstest
from cfstest import Failure


def run_case(tools_dir, case_dir, name, tmp):
    base = os.path.join(case_dir, name)
    with open(base + ".args") as f:
        args = shlex.split(f.read())
    with open(base + ".sha256") as f:
        want = f.read().split()[0]
    out = os.path.join(tmp, name + ".cfs")
    argv = [cfstest.tool(tools_dir, "mkcomposefs")] + args + \
        ["--from-file", base + ".dump", out]
    with open(base + ".dump", "rb") as f:
        refused = cfsdump.linked_whiteouts(cfsdump.parse_dump(f.read()))
    if refused:
        r = cfstest.run(argv, ok=None)
        if r.returncode == 0 or b"whiteout" not in r.stderr:
            raise Failure("the whiteout %r has several links or names: "
                          "expected a refusal, got exit %d: %r"
                          % (refused[0], r.returncode, r.stderr))
        if os.listdir(tmp):
            raise Failure("refused, but left %r" % os.listdir(tmp))
        return "refused"
    cfstest.run(argv)
    got = cfstest.sha256_file(out)
    if got != want:
        raise Failure("SHA-256 %s, composefs 1.0.8 writes %s (size %d)"
                      % (got, want, os.path.getsize(out)))
    os.unlink(out)
    return "ok"


def main():
    cfstest.wanted_case()
    if len(sys.argv) not in (2, 3):
        print("usage: test-golden-generated.py TOOLS_DIR [CASE_DIR] [-k CASE]",
              file=sys.stderr)
        sys.exit(2)
    tools_dir = sys.argv[1]
    case_dir = sys.argv[2] if len(sys.argv) == 3 else \
        os.path.join(cfstest.TESTS_DIR, "assets", "generated")
    names = sorted(n[:-5] for n in os.listdir(case_dir) if n.endswith(".dump"))
    outcome = {}

    def case(name):
        def run(tmp):
            outcome[name] = run_case(tools_dir, case_dir, name, tmp)
            print("%s %s" % (outcome[name], name))
        return run

    def prepare():
        if len(names) < 90:
            raise Failure("only %d cases in %s" % (len(names), case_dir))

    def finish():
        refused = sum(1 for w in outcome.values() if w == "refused")
        exact = sum(1 for w in outcome.values() if w == "ok")
        print("%d byte-identical, %d refused (whiteouts with several names)" % (
            exact, refused))
        if exact < 90:
            raise Failure("only %d byte-identical cases" % exact)

    cfstest.main({"case_" + n: case(n) for n in names}, prefix="case_",
                 prepare=prepare, finish=finish)


if __name__ == "__main__":
    main()
