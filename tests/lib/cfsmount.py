# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""What the kernel mount tests (tests/mount) and the store tests
(tests/store) share: a private mount namespace with its own /tmp, the
checks that mounting is possible here, a work directory on a real
filesystem, and their main(): `TEST TOOLS_DIR [-k CASE]`, one case per
run under meson."""

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile

import cfstest
from cfstest import Failure, skip

CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_BIND = 4096
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(fn, *args):
    if fn(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def unshare(flags):
    _libc_call(_libc.unshare, flags)


def private_namespace():
    """Own mount namespace, / private, a fresh tmpfs on /tmp."""
    try:
        _libc_call(_libc.unshare, CLONE_NEWNS)
    except OSError as e:
        skip("cannot create a mount namespace: %s" % e.strerror)
    _libc_call(_libc.mount, None, b"/", None, MS_REC | MS_PRIVATE, None)
    # Trees under the old /tmp that the test needs (a build or checkout
    # there, the shared assets) are bound back at the same paths.
    keep = {}
    for var in ("COMPOSEFS_BUILDDIR", "COMPOSEFS_SRCDIR", "COMPOSEFS_SHARED"):
        path = os.environ.get(var)
        if not path or not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if real.startswith("/tmp/"):
            top = "/tmp/" + real[5:].split("/")[0]
            if top not in keep:
                keep[top] = os.open(top, os.O_PATH | os.O_CLOEXEC)
    _libc_call(_libc.mount, b"tmpfs", b"/tmp", b"tmpfs", 0, b"mode=1777")
    for top, fd in keep.items():
        os.makedirs(top, exist_ok=True)
        _libc_call(_libc.mount, ("/proc/self/fd/%d" % fd).encode(), top.encode(),
                   None, MS_BIND | MS_REC, None)
        os.close(fd)


def need_mount():
    """Skips unless this process can mount EROFS and overlayfs."""
    if os.geteuid() != 0:
        skip("needs root to mount")
    if not cfstest.kernel_has("erofs") or not cfstest.kernel_has("overlay"):
        skip("the kernel lacks EROFS or overlayfs")


class WorkDir:
    """The tools a test file needs (TOOLS, from TOOLS_DIR) and a fresh
    directory below the build directory, on a real filesystem (not the
    private /tmp), removed by close()."""

    TOOLS = ()

    def __init__(self, tools_dir, area, case):
        self.tools = {}
        for name in self.TOOLS:
            path = os.path.join(tools_dir, name)
            if not os.access(path, os.X_OK):
                raise Failure("%s is not built (%s)" % (name, path))
            self.tools[name] = path
        base = os.path.join(os.environ.get("COMPOSEFS_BUILDDIR", "/var/tmp"),
                            "tests", area)
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="%s." % case, dir=base)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def main(namespace, env_class, needs_mount):
    """Runs the cases of a test file (its functions case_NAME(env) in
    @namespace), each with a fresh env_class(TOOLS_DIR, NAME). Needs root; with @needs_mount, also EROFS
    and overlayfs, and everything runs in a private mount namespace."""
    cfstest.wanted_case()
    if len(sys.argv) != 2:
        print("usage: %s TOOLS_DIR [-k CASE]" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    tools_dir = sys.argv[1]

    def prepare():
        if needs_mount:
            need_mount()
            private_namespace()
        elif os.geteuid() != 0:
            # The generated trees have devices and foreign owners.
            skip("needs root")

    @contextlib.contextmanager
    def setup(name):
        env = env_class(tools_dir, name)
        try:
            yield (env,)
        finally:
            env.close()

    cfstest.main(namespace, setup=setup, prepare=prepare, prefix="case_")
