# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Running the tools on hostile inputs and judging what they did.

A run passes when the tool either succeeds or fails cleanly: exit status 1
with exactly one line on stderr that starts with the tool's name, nothing
from a sanitizer, and within the time limit.
"""

import argparse
import concurrent.futures
import os
import subprocess

from cfstest import skip  # noqa: F401

SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:",
                   b"UndefinedBehaviorSanitizer", b"MemorySanitizer")

TIMEOUT = int(os.environ.get("MUTATE_TIMEOUT", "60"))


def arguments(count=None, extra=()):
    """The command line of the mutation tests: --tools DIR --fuzz DIR
    --seeds DIR, with --count, --seed and --keep when @count (the default
    number of mutants, MUTATE_COUNT overrides it) is given, and @extra
    (argparse argument tuples: (args, kwargs))."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True)
    ap.add_argument("--fuzz", required=True)
    ap.add_argument("--seeds", required=True)
    if count is not None:
        ap.add_argument("--count", type=int,
                        default=int(os.environ.get("MUTATE_COUNT", str(count))))
        ap.add_argument("--seed", type=int,
                        default=int(os.environ.get("MUTATE_SEED", "1")))
        ap.add_argument("--keep", help="write the mutants here and keep them")
    for args, kwargs in extra:
        ap.add_argument(*args, **kwargs)
    return ap.parse_args()


def need(paths):
    """Skips unless every program in @paths is built."""
    for p in paths:
        if not os.access(p, os.X_OK):
            skip("%s is not built" % p)


def write_mutants(mut_dir, mutants):
    """Writes each (file name, data, description) of @mutants to @mut_dir;
    returns the jobs (index, path, description)."""
    os.makedirs(mut_dir, exist_ok=True)
    jobs = []
    for i, (name, data, desc) in enumerate(mutants):
        path = os.path.join(mut_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        jobs.append((i, path, desc))
    return jobs


def empty_outdir(outdir):
    """Removes @outdir with what a tool left in it; returns those names."""
    left = sorted(os.listdir(outdir))
    for f in left:
        os.unlink(os.path.join(outdir, f))
    os.rmdir(outdir)
    return left


def conclude(results, replays, mut_dir, what, seeds):
    """@results: (problems, accepted) of every mutant. Runs every mutant
    in-process through the fuzz targets' @replays too (under the
    sanitizers of this build), requires both outcomes among the mutants
    (or they test nothing) and reports."""
    problems = [p for ps, _ in results for p in ps]
    accepted = sum(1 for _, ok in results if ok)
    for replay in replays:
        r = run([replay, mut_dir])
        if r == "timeout":
            problems.append("%s: hang" % os.path.basename(replay))
        elif r.returncode != 0 or any(m in r.stderr for m in SANITIZER_MARKS):
            problems.append("%s failed (%s):\n%s" % (
                os.path.basename(replay), r.returncode,
                r.stderr.decode(errors="replace")[-3000:]))
    print("%d mutants from %s: %d accepted, %d rejected" % (
        len(results), seeds, accepted, len(results) - accepted))
    if accepted == 0 or accepted == len(results):
        problems.append("every mutant had the same outcome")
    return report(problems, len(results), what)


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
