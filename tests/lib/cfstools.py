# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the command-line tool tests (tests/tools, tests/oci).

Each test script calls main(globals()) with the tool paths as arguments
(MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP): every function named test_*
is a case of the harness (cfstest.main), called with the tools and a fresh
temporary directory."""

import contextlib
import os
import subprocess
import sys

import cfstest
import cfsverity
from cfstest import Failure, Skip  # noqa: F401


class Tools:
    def __init__(self, argv):
        if len(argv) != 4:
            raise SystemExit("usage: %s MKCOMPOSEFS COMPOSEFS-INFO COMPOSEFS-DUMP"
                             % argv[0])
        # Absolute, so that tests may run them from another directory.
        self.mkcomposefs, self.info, self.dump = (os.path.abspath(p) for p in argv[1:4])
        for path in argv[1:4]:
            if not os.access(path, os.X_OK):
                raise SystemExit("tool not built: %s" % path)


class Result:
    def __init__(self, argv, proc):
        self.argv = argv
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr.decode("utf-8", "replace")

    def describe(self):
        return "%s\n  exit %d\n  stderr: %r\n  stdout: %r" % (
            " ".join(repr(a) for a in self.argv), self.rc, self.err,
            self.out[:300])


def run(argv, stdin=None, env=None, stdout=None, umask=None, cwd=None):
    """Runs a tool and captures its output (stdout as bytes)."""
    full_env = dict(os.environ)
    full_env.pop("CFS_PARSE_STRICT", None)
    if env:
        full_env.update(env)

    def pre():
        if umask is not None:
            os.umask(umask)

    proc = subprocess.run([str(a) for a in argv], input=stdin,
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                          preexec_fn=pre, timeout=300)
    if proc.stdout is None:
        proc.stdout = b""
    return Result(argv, proc)


def check(cond, msg, result=None):
    """cfstest.check(), with the tool run @result described on failure."""
    if not cond and result is not None:
        msg += "\n" + result.describe()
    cfstest.check(cond, msg)


def ok(result):
    """Requires exit 0 and nothing on stderr; returns the result."""
    check(result.rc == 0, "expected success", result)
    check(result.err == "", "expected no message on stderr", result)
    return result


def fails(result, *fragments, stdout_empty=True):
    """Requires exit 1 with a message containing every fragment, and
    nothing on stdout unless told otherwise."""
    check(result.rc == 1, "expected exit status 1", result)
    if stdout_empty:
        check(result.out == b"", "expected nothing on stdout", result)
    lines = result.err.splitlines()
    check(len(lines) >= 1, "expected an error message", result)
    check(not any("Sanitizer" in line or "runtime error" in line for line in lines),
          "sanitizer report", result)
    for frag in fragments:
        check(frag in result.err, "expected %r in the message" % frag, result)
    return result


def equal(got, expected, what):
    if got != expected:
        raise Failure("%s differs\n--- expected\n%s\n--- got\n%s" % (
            what,
            expected.decode("utf-8", "replace") if isinstance(expected, bytes) else expected,
            got.decode("utf-8", "replace") if isinstance(got, bytes) else got))


def write(path, data, mode=None):
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def listdir(path):
    return sorted(os.listdir(path))


def image_version(path):
    """The composefs format version in an image header (offset 12)."""
    data = read(path)
    check(len(data) >= 4096 and data[:4] == b"\x9a\x62\x78\xd0",
          "%s is not a composefs image" % path)
    return int.from_bytes(data[12:16], "little")


def fsverity_digest(path):
    """fs-verity digest from fsverity-utils; skips without it."""
    return cfsverity.cli_digest(path)


def main(namespace):
    cfstest.wanted_case()
    tools = Tools(sys.argv)

    @contextlib.contextmanager
    def setup(name):
        with cfstest.tmpdir("cfs-tools-") as tmp:
            yield (tools, tmp)

    cfstest.main(namespace, setup=setup)
