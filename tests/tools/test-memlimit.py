#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Every tool under an address-space limit (RLIMIT_AS): for each command the
# limit is swept in small steps from where the process cannot even be
# loaded up to where it first succeeds. At every limit (and at some larger
# ones) the tool must either succeed with exactly the output it gives
# without a limit, or exit non-zero with a message, with nothing on
# standard output and no output file; it must never die by a signal (the
# library once aborted inside libfsverity and crashed inside OpenSSL's
# algorithm fetch there). Objects left in a store by a failed run must be
# named by their content.
#
# AddressSanitizer reserves terabytes of address space, so this test is
# only registered for builds without sanitizers.
# Usage: test-memlimit.py MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP

import os
import resource
import shutil
import subprocess

from cfstools import check, main, read, write

from cfsbuild import check_store

KIB = 1024
MIB = 1024 * KIB
# The coarse search for the first success, then the fine sweep below it.
COARSE_START = 2 * MIB
COARSE_STEP = 512 * KIB
FINE_STEP = 64 * KIB
FINE_SPAN = 3 * MIB // 2
MAX_LIMIT = 256 * MIB
EXTRA_ABOVE = (1 * MIB, 4 * MIB, 16 * MIB)


def make_source(root):
    os.mkdir(root)
    os.mkdir(os.path.join(root, "dir"))
    for i, size in enumerate((10, 64, 65, 4096, 5000, 70000, 300000)):
        write(os.path.join(root, "dir" if i % 2 else "", "f%d" % i),
              bytes((i * 7 + j) % 251 for j in range(size)))
    os.symlink("dir/f1", os.path.join(root, "link"))
    os.mkfifo(os.path.join(root, "fifo"))


def run_limited(argv, limit, cwd):
    def pre():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=pre, cwd=cwd, timeout=120)


class Case:
    """One command: argv (relative to the work directory), the output
    file it writes (or None: standard output), and a store it fills."""

    def __init__(self, name, argv, out_file=None, store=None):
        self.name, self.argv, self.out_file, self.store = name, argv, out_file, store
        self.expected = None

    def reset(self, cwd):
        if self.out_file is not None and os.path.lexists(os.path.join(cwd, self.out_file)):
            os.unlink(os.path.join(cwd, self.out_file))
        if self.store is not None:
            shutil.rmtree(os.path.join(cwd, self.store), ignore_errors=True)

    def output(self, proc, cwd):
        if self.out_file is None:
            return proc.stdout
        return read(os.path.join(cwd, self.out_file))

    def attempt(self, limit, cwd):
        """Runs once at @limit: None if it succeeded, else its message."""
        self.reset(cwd)
        proc = run_limited(self.argv, limit, cwd)
        where = "%s at %d KiB" % (self.name, limit // KIB)
        err = proc.stderr.decode("utf-8", "replace")
        check(proc.returncode >= 0,
              "%s: killed by signal %d; stderr %r" % (where, -proc.returncode, err[-300:]))
        check("Sanitizer" not in err and "runtime error" not in err,
              "%s: sanitizer report %r" % (where, err[-300:]))
        if proc.returncode == 0:
            if self.expected is not None:
                check(self.output(proc, cwd) == self.expected,
                      "%s: succeeded with different output" % where)
            if self.store is not None:
                check_store(os.path.join(cwd, self.store))
            return None
        check(err.strip() != "", "%s: exit %d without a message" % (where, proc.returncode))
        check(proc.stdout == b"", "%s: failed (%r) but wrote %d bytes to standard output"
              % (where, err[-200:], len(proc.stdout)))
        if self.out_file is not None:
            check(not os.path.lexists(os.path.join(cwd, self.out_file)),
                  "%s: failed (%r) but left %s" % (where, err[-200:], self.out_file))
        if self.store is not None and os.path.isdir(os.path.join(cwd, self.store)):
            check_store(os.path.join(cwd, self.store), allow_temps=True)
        return err


def sweep(case, cwd):
    """Returns how many runs failed with the tool's own message."""
    case.reset(cwd)
    proc = subprocess.run(case.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=cwd)
    check(proc.returncode == 0, "%s fails without a limit: %r" % (case.name, proc.stderr))
    case.expected = case.output(proc, cwd)

    limit = COARSE_START
    while case.attempt(limit, cwd) is not None:
        limit += COARSE_STEP
        check(limit <= MAX_LIMIT, "%s: no success up to %d MiB" % (case.name, MAX_LIMIT // MIB))
    first_ok = limit
    own = 0
    prog = os.path.basename(case.argv[0]) + ": "
    for lim in range(max(FINE_STEP, first_ok - FINE_SPAN), first_ok + FINE_STEP, FINE_STEP):
        err = case.attempt(lim, cwd)
        # Messages of the tool itself, not of the dynamic loader.
        if err is not None and err.startswith(prog) and "while loading" not in err:
            own += 1
    # Success is not monotonic in the limit: more room lets worker
    # threads start, whose stacks then leave less for the rest.
    for extra in EXTRA_ABOVE:
        case.attempt(first_ok + extra, cwd)
    return own


def test_memory_limits(tools, tmp):
    make_source(os.path.join(tmp, "src"))
    mk, info, dump = tools.mkcomposefs, tools.info, tools.dump
    subprocess.run([mk, "--digest-store=ref-store", "src", "ref.img"], cwd=tmp, check=True)
    with open(os.path.join(tmp, "ref.dump"), "wb") as f:
        subprocess.run([info, "dump", "ref.img"], cwd=tmp, check=True, stdout=f)

    # Each case works in a directory of its own. (One at a time: a
    # preexec_fn is not safe with threads.)
    src, img, dumpfile, store = "../src", "../ref.img", "../ref.dump", "../ref-store"
    cases = [
        Case("mkcomposefs", [mk, src, "out.img"], out_file="out.img"),
        Case("mkcomposefs --threads=4", [mk, "--threads=4", src, "out.img"],
             out_file="out.img"),
        Case("mkcomposefs --digest-store", [mk, "--digest-store=store", src, "out.img"],
             out_file="out.img", store="store"),
        Case("mkcomposefs --from-file", [mk, "--from-file", dumpfile, "out.img"],
             out_file="out.img"),
        Case("mkcomposefs to stdout", [mk, src, "-"]),
        Case("mkcomposefs --print-digest-only", [mk, "--print-digest-only", src]),
        Case("composefs-info ls", [info, "ls", img]),
        Case("composefs-info dump", [info, "dump", img]),
        Case("composefs-info missing-objects",
             [info, "--basedir=" + store, "missing-objects", img]),
        Case("composefs-info measure-file", [info, "measure-file", src + "/f6",
                                             src + "/dir/f5"]),
        Case("composefs-dump", [dump, img, "out.img"], out_file="out.img"),
    ]

    def one(i):
        cwd = os.path.join(tmp, "case%d" % i)
        os.mkdir(cwd)
        return sweep(cases[i], cwd)

    total_own = sum(one(i) for i in range(len(cases)))
    # The sweep must have reached the region where allocations inside the
    # tools fail, not only where the loader gives up.
    check(total_own > 0, "no run failed below the first success")


if __name__ == "__main__":
    main(globals())
