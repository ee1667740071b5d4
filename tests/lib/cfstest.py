# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""The harness of the Python tests, and helpers for the image-level ones.

Every Python test imports this module (meson puts tests/lib on
PYTHONPATH) and ends with main(...):

- a failed check raises Failure (check(), run()); the case fails with its
  message;
- skip(reason) stops the case with the reason; a file whose cases were all
  skipped exits 77, which meson reports as SKIP;
- main() runs the named cases of the file, each in a fresh temporary
  directory unless the file gives its own setup, prints one line per case
  and `N passed, N failed, N skipped`, and exits 1 if any case failed;
- `-k NAME` on the command line, or CFS_TEST_CASE=NAME in the environment,
  runs only the cases whose name is NAME or contains it.

The rest of the module runs the tools, checks images (fsck, round trips)
and mounts them with the kernel without leaking mounts or loop devices."""

import contextlib
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

SKIP = 77
LIB_DIR = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(LIB_DIR)
# The random dumpfile generator (a program: `gen-random-dump.py SEED`).
GENERATOR = os.path.join(LIB_DIR, "gen-random-dump.py")
CASE_ENV = "CFS_TEST_CASE"


class Failure(Exception):
    """A check failed; the message says what and where."""


class Skip(BaseException):
    """A prerequisite is missing; the message says which. A BaseException
    so that no `except Exception` in a test swallows it."""


def skip(reason):
    raise Skip(reason)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def _text(b, limit):
    if b is None:
        return ""
    if isinstance(b, bytes):
        b = b.decode("utf-8", "backslashreplace")
    return b[-limit:]


def run(argv, stdin=None, env=None, ok=True, limit=4000, **kw):
    """Runs a command with its output captured (bytes). ok=True: it must
    exit 0, ok=False: it must fail, ok=None: anything goes. A violation
    raises Failure naming the command, its exit status and the end of its
    stderr and stdout."""
    argv = [a if isinstance(a, bytes) else os.fsencode(str(a)) for a in argv]
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    r = subprocess.run(argv, input=stdin, env=env, **kw)
    if ok is not None and (r.returncode == 0) != ok:
        raise Failure("%s: exit status %d, expected %s\nstderr: %s\nstdout: %s" % (
            " ".join(os.fsdecode(a) for a in argv), r.returncode,
            "success" if ok else "failure", _text(r.stderr, limit),
            _text(r.stdout, limit // 2)))
    return r


def open_to_all(top):
    """Makes every directory below @top (included) 0755 and every file
    0644, for a test that runs a command as another user."""
    os.chmod(top, 0o755)
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), 0o755)
        for n in filenames:
            os.chmod(os.path.join(dirpath, n), 0o644)


@contextlib.contextmanager
def tmpdir(prefix="cfs-test-"):
    """A temporary directory, removed with everything in it afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield d


_WANTED = []


def wanted_case():
    """The case picked with `-k NAME` or CFS_TEST_CASE=NAME, or None for
    all. The first call takes `-k NAME` out of sys.argv, so that a test
    may read its own arguments after calling it."""
    if not _WANTED:
        name = None
        args = sys.argv[1:]
        for i, a in enumerate(args):
            if a == "-k" and i + 1 < len(args):
                name = args[i + 1]
                del sys.argv[i + 1:i + 3]
                break
            if a.startswith("-k") and len(a) > 2:
                name = a[2:].lstrip("=")
                del sys.argv[i + 1]
                break
        _WANTED.append(name or os.environ.get(CASE_ENV) or None)
    return _WANTED[0]


def select_cases(cases, name):
    """The cases whose name is @name, or else contains it."""
    if name is None:
        return list(cases)
    exact = [c for c in cases if c[0] == name]
    return exact or [c for c in cases if name in c[0]]


def main(cases, setup=None, prepare=None, prefix="test_", finish=None):
    """Runs the cases of a test file and exits with the verdict.

    @cases: a function (one case), or a module namespace (globals()) whose
    functions named @prefix* are the cases, named without the prefix, in
    name order. @setup(name): a context manager giving the arguments of
    each case (default: no argument for a single function, the temporary
    directory otherwise). @prepare(): runs once before the cases, after
    the command line is read (may skip). @finish(): runs after all the
    cases when none was picked by name (checks over the whole run; a
    Failure there fails the file)."""
    if callable(cases):
        items = [(cases.__name__, cases)]
        if setup is None:
            setup = _no_args
    else:
        items = sorted((k[len(prefix):], v) for k, v in cases.items()
                       if k.startswith(prefix) and callable(v))
    if setup is None:
        setup = _one_tmpdir
    name = wanted_case()
    chosen = select_cases(items, name)
    if not chosen:
        print("no case matches %r; the cases are: %s" % (
            name, ", ".join(k for k, _ in items)), file=sys.stderr)
        sys.exit(2)
    passed = failed = skipped = 0
    try:
        if prepare is not None:
            prepare()
    except Skip as e:
        print("SKIP: %s" % e)
        sys.exit(SKIP)
    except Failure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    for case, fn in chosen:
        sys.stdout.flush()
        try:
            with setup(case) as args:
                rc = fn(*args)
            if rc == SKIP:
                raise Skip("the case reported SKIP")
            if rc:
                raise Failure("the case ended with status %r" % rc)
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (case, e))
            continue
        except Failure as e:
            failed += 1
            print("FAIL %s: %s" % (case, e))
            continue
        except Exception:
            failed += 1
            print("FAIL %s: unexpected exception" % case)
            traceback.print_exc(file=sys.stdout)
            continue
        passed += 1
        print("ok   %s" % case)
    if finish is not None and name is None:
        try:
            finish()
        except Failure as e:
            failed += 1
            print("FAIL (whole run): %s" % e)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.stdout.flush()
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP)
    sys.exit(0)


@contextlib.contextmanager
def _no_args(name):
    yield ()


@contextlib.contextmanager
def _one_tmpdir(name):
    with tmpdir("cfs-%s-" % name) as d:
        yield (d,)


# --- images -------------------------------------------------------------------

NON_STRICT_ASSETS = ("no-newline.dump", "longlink.dump",
                     "honggfuzz-longlink-unterminated.dump")


def shared_dir():
    """Directory of the reference assets, or skip when it is absent."""
    d = os.environ.get("COMPOSEFS_SHARED")
    if not d or not os.path.isdir(os.path.join(d, "assets", "upstream")):
        skip("reference assets not found (COMPOSEFS_SHARED=%r)" % d)
    return d


def asset_args(script):
    """(tools_dir, shared_dir, asset, asset_path) from `SCRIPT TOOLS_DIR
    ASSET` on the command line; skips when the asset is absent."""
    if len(sys.argv) != 3:
        print("usage: %s TOOLS_DIR ASSET" % script, file=sys.stderr)
        sys.exit(2)
    tools_dir, asset = sys.argv[1], sys.argv[2]
    shared = shared_dir()
    path = os.path.join(shared, "assets", "upstream", asset)
    if not os.path.exists(path):
        skip("asset %s not present in %s" % (asset, shared))
    return tools_dir, shared, asset, path


def tool(tools_dir, name):
    path = os.path.join(tools_dir, name)
    if not os.access(path, os.X_OK):
        raise Failure("tool %s not built (looked for %s)" % (name, path))
    return path


def store_paths(store):
    """Relative paths (`ab/cdef...`) of every file in the two-character
    subdirectories of an object store (not following symlinks), sorted."""
    out = []
    for sub in sorted(os.listdir(store)):
        p = os.path.join(store, sub)
        if len(sub) == 2 and os.path.isdir(p) and not os.path.islink(p):
            out += [sub + "/" + n for n in sorted(os.listdir(p))]
    return out


def read_asset(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def asset_version(path):
    """Forced format version of an asset (NAME.version), or None."""
    vpath = path + ".version"
    if not os.path.exists(vpath):
        return None
    with open(vpath) as f:
        return int(f.read().strip())


def version_args(version):
    if version is None:
        return []
    return ["--min-version=%d" % version, "--max-version=%d" % version]


def mkcomposefs_env(strict):
    env = dict(os.environ)
    env.pop("CFS_PARSE_STRICT", None)
    if strict:
        env["CFS_PARSE_STRICT"] = "1"
    return env


def build_image(tools_dir, dump, out, version=None, strict=True, extra=()):
    """mkcomposefs --from-file - out, dump bytes on stdin."""
    argv = [tool(tools_dir, "mkcomposefs")] + version_args(version) + \
        list(extra) + ["--from-file", "-", out]
    return run(argv, stdin=dump, env=mkcomposefs_env(strict))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def cmp_head(a, b, lines=20):
    """First differing bytes of two files, as `cmp -l` prints them."""
    r = subprocess.run(["cmp", "-l", a, b], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode("utf-8", "replace").splitlines()
    head = out[:lines]
    if len(out) > lines:
        head.append("... (%d differing bytes in total)" % len(out))
    return "\n".join(head)


def image_version(path):
    """composefs format version from the image header (offset 12)."""
    with open(path, "rb") as f:
        hdr = f.read(16)
    return int.from_bytes(hdr[12:16], "little")


def fsck(path):
    """fsck.erofs must accept the image; skip-worthy only when absent."""
    exe = shutil.which("fsck.erofs")
    if exe is None:
        return "fsck.erofs not installed"
    r = subprocess.run([exe, path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise Failure("fsck.erofs rejected %s:\n%s" % (
            path, r.stdout.decode("utf-8", "replace")[-3000:]))
    return None


def roundtrip(tools_dir, image, tmpdir, version, strict=False):
    """composefs-dump and composefs-info dump | mkcomposefs must both give
    back the same bytes."""
    out2 = os.path.join(tmpdir, "roundtrip-dump.cfs")
    run([tool(tools_dir, "composefs-dump"), image, out2])
    if not same_bytes(image, out2):
        raise Failure("composefs-dump output differs from the input image\n"
                      + cmp_head(out2, image))
    r = run([tool(tools_dir, "composefs-info"), "dump", image])
    out3 = os.path.join(tmpdir, "roundtrip-info.cfs")
    build_image(tools_dir, r.stdout, out3, version=version, strict=strict)
    if not same_bytes(image, out3):
        dpath = os.path.join(tmpdir, "info.dump")
        with open(dpath, "wb") as f:
            f.write(r.stdout)
        raise Failure("composefs-info dump | mkcomposefs gives a different "
                      "image (dump kept in %s)\n%s" % (dpath,
                                                          cmp_head(out3, image)))
    return r.stdout


# --- mounting ---------------------------------------------------------------

def _mount_table():
    with open("/proc/self/mountinfo") as f:
        return sorted(l.split(" ", 4)[4] for l in f)


def _loop_devices():
    r = subprocess.run(["losetup", "-a"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return sorted(r.stdout.decode("utf-8", "replace").splitlines())


def kernel_has(fstype):
    """Whether the kernel knows @fstype, after trying to load its module."""
    def listed():
        with open("/proc/filesystems") as f:
            return any(l.split()[-1:] == [fstype] for l in f)
    if not listed():
        subprocess.run(["modprobe", fstype], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return listed()


def umount(mnt):
    """Unmounts @mnt; on failure detaches it lazily and raises Failure."""
    r = subprocess.run(["umount", mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", mnt])
        raise Failure("umount failed: %s" % r.stdout.decode("utf-8", "replace"))


def kernel_mount_available():
    """None if EROFS can be mounted here, else the reason why not."""
    if os.geteuid() != 0:
        return "not running as root"
    try:
        if not kernel_has("erofs"):
            return "the kernel has no EROFS support"
    except OSError as e:
        return "cannot read /proc/filesystems: %s" % e
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not installed"
    return None


class MountUnavailable(Exception):
    pass


@contextlib.contextmanager
def erofs_mounted(image, parent=None):
    """Mount `image` read-only as EROFS (file-backed, falling back to a loop
    device) on a temporary directory; always unmount and remove it."""
    mnt = tempfile.mkdtemp(prefix="mnt-", dir=parent)
    mounted = False
    try:
        r = subprocess.run(["mount", "-t", "erofs", "-o", "ro", image, mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            first = r.stdout.decode("utf-8", "replace").strip()
            r = subprocess.run(["mount", "-t", "erofs", "-o", "ro,loop", image,
                                mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                raise MountUnavailable("mount failed: %s; with -o loop: %s" % (
                    first, r.stdout.decode("utf-8", "replace").strip()))
        mounted = True
        yield mnt
    finally:
        if mounted:
            umount(mnt)
        os.rmdir(mnt)


@contextlib.contextmanager
def no_leaks(tmpdir):
    """Check that no mount and no loop device referring to anything below
    `tmpdir` is left behind (scoped, since tests run in parallel)."""
    key = os.path.realpath(tmpdir)

    def ours():
        return ([m for m in _mount_table() if key in m],
                [l for l in _loop_devices() if key in l])

    before = ours()
    try:
        yield
    finally:
        after = ours()
        if after != before:
            raise Failure("left behind: mounts %r, loop devices %r" % after)


def kernel_compare(image, dump_root, version, tmpdir):
    """Mount `image` below `tmpdir`, compare with the parsed dump; returns
    the number of entries checked."""
    import cfsdump
    expected = cfsdump.expected_view(dump_root, version)
    errors = []
    with no_leaks(tmpdir), erofs_mounted(image, tmpdir) as mnt:
        n = cfsdump.compare_mount(mnt, expected, errors)
    if errors:
        raise Failure("mounted %s differs from its dumpfile:\n  %s" % (
            image, "\n  ".join(errors)))
    return n
