# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Running the tools on hostile inputs and judging what they did.

A run passes when the tool either succeeds or fails cleanly: exit status 1
with exactly one line on stderr that starts with the tool's name, nothing
from a sanitizer, and within the time limit.
"""

import concurrent.futures
import os
import subprocess

from cfstest import skip  # noqa: F401

SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:",
                   b"UndefinedBehaviorSanitizer", b"MemorySanitizer")

TIMEOUT = int(os.environ.get("MUTATE_TIMEOUT", "60"))


def judge(name, args, result, tool, allow_success=True):
    """Returns a list of problems (empty: fine). @result is a
    CompletedProcess or the string "timeout"."""
    what = "%s: %s" % (name, " ".join(os.path.basename(a) for a in args))
    if result == "timeout":
        return ["%s: no answer within %d s (hang)" % (what, TIMEOUT)]
    problems = []
    err = result.stderr
    for mark in SANITIZER_MARKS:
        if mark in err:
            problems.append("%s: sanitizer report:\n%s" % (what, err.decode(errors="replace")[-3000:]))
            return problems
    if result.returncode == 0:
        if not allow_success:
            problems.append("%s: accepted" % what)
        return problems
    if result.returncode != 1:
        problems.append("%s: exit status %d\n%s" % (what, result.returncode,
                                                   err.decode(errors="replace")[-2000:]))
        return problems
    lines = err.decode(errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != 1 or not lines[0].startswith(tool + ": ") or len(lines[0]) <= len(tool) + 2:
        problems.append("%s: rejection is not one line naming the problem: %r" % (what, err[:500]))
    return problems


def run(args, stdin=None):
    try:
        return subprocess.run(args, stdin=stdin, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout"


def parallel(jobs, fn):
    """Runs fn(job) for every job on a few threads; returns the results in
    order."""
    workers = max(2, min(8, (os.cpu_count() or 2) + 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, jobs))


def report(problems, total, what):
    for p in problems[:40]:
        print("FAIL: " + p)
    if len(problems) > 40:
        print("... and %d more" % (len(problems) - 40))
    print("%d %s, %d problems" % (total, what, len(problems)))
    return 1 if problems else 0
