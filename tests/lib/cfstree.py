# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""The tree maker of the tests: generated source trees, and the
comparison of a mounted image with its source directory.

- make_tree(): random trees for the kernel mount, composefs-fuse and
  store tests; both mounts must show every entry as in the source (type,
  mode, owner, mtime, size, symlink target, device number, xattrs,
  content);
- make_scan_tree(): every kind of entry a directory scan must handle
  (tests/build);
- make_layer_tree(): every entry type and attribute a tar layer can carry
  (tests/oci);
- make_files_tree(): files of many sizes in a few directories, for object
  stores (tests/remote).

The same seed always gives the same tree."""

import errno
import hashlib
import os
import random
import socket
import stat
import struct

from cfstest import Failure, check


# --- random trees --------------------------------------------------------------

OWNERS = (0, 1, 1000, 65534, 100000, 4000000000)
XATTR_NS = ("user.", "trusted.")


def random_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def write_file(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def random_name(rng, used):
    while True:
        kind = rng.random()
        if kind < 0.05:
            name = "x" * rng.randint(200, 255)
        elif kind < 0.10:
            name = rng.choice(["with space", "-dash", "caf\u00e9", "new\nline",
                               "tab\tname", "back\\slash", "=eq", "00", "ff"])
        else:
            name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_.")
                           for _ in range(rng.randint(1, 12)))
        if name in (".", "..") or name in used:
            continue
        used.add(name)
        return name


def file_size(rng):
    r = rng.random()
    if r < 0.10:
        return 0
    if r < 0.45:
        return rng.randint(1, 64)       # inline in the image
    if r < 0.55:
        return rng.choice([65, 4095, 4096, 4097])
    if r < 0.95:
        return rng.randint(65, 20000)
    return rng.randint(100000, 3 * 1024 * 1024)


def set_xattrs(rng, path, ftype):
    # user.* is only allowed on regular files and directories.
    for i in range(rng.choice([0, 0, 1, 2, 3])):
        if ftype in ("reg", "dir"):
            ns = rng.choice(XATTR_NS)
        else:
            ns = "trusted."
        value = random_bytes(rng, rng.choice([0, 1, 8, 40, 300]))
        os.setxattr(path, "%sx%d" % (ns, i), value, follow_symlinks=False)


def make_tree(root, seed, shared_contents=()):
    """A random tree under @root (which must not exist). Returns the
    number of entries."""
    rng = random.Random(seed)
    os.mkdir(root)
    entries = []
    dirs = [root]
    count = 0
    for d in range(rng.randint(8, 14)):
        parent = rng.choice(dirs)
        used = set(os.listdir(parent))
        path = os.path.join(parent, random_name(rng, used))
        os.mkdir(path)
        dirs.append(path)
        entries.append((path, "dir"))
    # One large directory spans several directory blocks.
    big = os.path.join(root, "bigdir")
    os.mkdir(big)
    dirs.append(big)
    entries.append((big, "dir"))
    for i in range(700):
        p = os.path.join(big, "entry-%04d-%s" % (i, "y" * (i % 40)))
        write_file(p, b"%d" % i)
        entries.append((p, "reg"))
    # An empty directory.
    empty = os.path.join(root, "empty")
    os.mkdir(empty)
    entries.append((empty, "dir"))

    regular = []
    for d in dirs:
        if d == big:
            continue
        used = set(os.listdir(d))
        for _ in range(rng.randint(0, 25)):
            path = os.path.join(d, random_name(rng, used))
            r = rng.random()
            if r < 0.65:
                if shared_contents and rng.random() < 0.3:
                    data = rng.choice(shared_contents)
                else:
                    data = random_bytes(rng, file_size(rng))
                write_file(path, data)
                regular.append(path)
                entries.append((path, "reg"))
            elif r < 0.80:
                target = rng.choice([
                    "relative/target", "/absolute/target", "../up", "t" * rng.randint(1, 1000),
                    os.path.basename(rng.choice(dirs))])
                os.symlink(target, path)
                entries.append((path, "lnk"))
            elif r < 0.87:
                os.mkfifo(path)
                entries.append((path, "fifo"))
            elif r < 0.97:
                kind = rng.choice([stat.S_IFCHR, stat.S_IFBLK])
                major, minor = rng.randint(1, 4095), rng.randint(0, (1 << 20) - 1)
                os.mknod(path, kind | 0o600, os.makedev(major, minor))
                entries.append((path, "dev"))
            elif regular:
                # Hard links are not kept by the default scan: the mount
                # shows two files with the same content.
                os.link(rng.choice(regular), path)
                entries.append((path, "reg"))
    for path, ftype in entries:
        uid, gid = rng.choice(OWNERS), rng.choice(OWNERS)
        os.lchown(path, uid, gid)
        if ftype != "lnk":
            os.chmod(path, rng.randint(0, 0o7777) if ftype != "dir"
                     else rng.randint(0, 0o7777) | 0o700)
        set_xattrs(rng, path, ftype)
    os.chmod(root, 0o755)
    os.setxattr(root, "user.root-xattr", b"top", follow_symlinks=False)
    # Times last: creating entries changes their parents' mtime. Deepest
    # first, nanoseconds included.
    for path, _ in sorted(entries, key=lambda e: -e[0].count("/")) + [(root, "dir")]:
        ns = rng.randint(1, 4 * 10**9) * 10**9 + rng.randint(0, 10**9 - 1)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
    return len(entries) + 1


# --- the trees of the directory scan tests ---------------------------------------

SCAN_OWNERS = (0, 1, 1000, 65534, 4000000000)

NAMES = ["with space", "back\\slash", "a=b", "caf\u00e9", "\u65e5\u672c",
         "new\nline", "tab\tname", "-", "-dash", "+plus", "00", "ab",
         b"raw\xff\xfebytes", "x" * 255]

# Sizes the scan treats differently (docs/design.md, "Content pass"): empty,
# inline 1..64, external from 65, around a block, larger and odd.
SIZES = [0, 1, 2, 63, 64, 65, 66, 100, 4095, 4096, 4097, 8191, 12345,
         65537, 1 << 20, 1000003]


class Tree:
    """What make_scan_tree() created, for tests that need to know."""

    def __init__(self, root):
        self.root = root
        self.files = []      # paths of regular files
        self.big_files = []  # paths of regular files over 64 bytes
        self.hardlinks = []  # (path, other name of the same inode)


def _rand_bytes(rng, n):
    return rng.randbytes(n) if hasattr(rng, "randbytes") else \
        bytes(rng.getrandbits(8) for _ in range(n))


def make_scan_tree(root, seed, devices=True, big=True, hardlinks=True):
    """Creates a source tree in the new directory @root from @seed. Needs
    root privileges for owners, devices and trusted.* xattrs."""
    rng = random.Random(seed)
    t = Tree(root)
    os.mkdir(root)
    os.chmod(root, 0o755)
    os.setxattr(root, "user.rootattr", b"root value")

    shared = [_rand_bytes(rng, 100), _rand_bytes(rng, 5000), b"same inline"]
    dirs = [os.fsencode(root)]

    def add_file(d, name, data, mode=None):
        p = os.path.join(d, os.fsencode(name))
        write_file(p, data, mode if mode is not None else rng.choice(
            [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o444, 0o1644]))
        t.files.append(p)
        if len(data) > 64:
            t.big_files.append(p)
        return p

    # Nested directories, a few levels deep, some with odd names.
    for i in range(rng.randint(6, 10)):
        parent = rng.choice(dirs)
        depth = parent.count(b"/") - os.fsencode(root).count(b"/")
        if depth > 5:
            parent = dirs[0]
        name = rng.choice(NAMES + ["dir%d" % i]) if rng.random() < 0.4 else "dir%d" % i
        p = os.path.join(parent, os.fsencode(name))
        if os.path.lexists(p):
            continue
        os.mkdir(p)
        os.chmod(p, rng.choice([0o755, 0o700, 0o1777, 0o2755, 0o555]))
        dirs.append(p)

    # Regular files of every interesting size, some sharing contents.
    sizes = [s for s in SIZES if big or s <= 70000]
    for i, size in enumerate(sizes):
        d = rng.choice(dirs)
        add_file(d, "size%d" % size, _rand_bytes(rng, size))
    for i in range(rng.randint(8, 16)):
        d = rng.choice(dirs)
        if rng.random() < 0.3:
            data = rng.choice(shared)
        else:
            data = _rand_bytes(rng, rng.choice([rng.randint(0, 64),
                                                rng.randint(65, 20000)]))
        add_file(d, "f%d" % i, data)
    for i, s in enumerate(shared):
        for k in range(3):  # each shared content at least three times
            add_file(rng.choice(dirs), "same%d_%d" % (i, k), s)
    for name in NAMES:
        d = rng.choice(dirs)
        p = os.path.join(d, os.fsencode(name))
        if not os.path.lexists(p):
            add_file(d, name, _rand_bytes(rng, rng.choice([0, 10, 300])))
    if big:
        # Sparse: mostly a hole.
        p = os.path.join(rng.choice(dirs), b"sparse")
        with open(p, "wb") as f:
            f.truncate(3 << 20)
            f.seek(1 << 20)
            f.write(b"middle")
        t.files.append(p)
        t.big_files.append(p)

    # Symlinks: short, long, dangling, to directories.
    targets = ["a", "../" * 3 + "up", "x" * 1000, "y" * 4095, "/abs/target",
               "dir0", "with space/and\\back"]
    for i, target in enumerate(targets):
        d = rng.choice(dirs)
        os.symlink(target, os.path.join(d, b"link%d" % i))

    # Special files.
    fifo = os.path.join(rng.choice(dirs), b"fifo")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o640)
    sock_dir = rng.choice(dirs)
    s = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    try:
        os.chdir(sock_dir)
        s.bind("sock")
    finally:
        os.chdir(cwd)
        s.close()
    if devices:
        os.mknod(os.path.join(rng.choice(dirs), b"null"), 0o20666, os.makedev(1, 3))
        os.mknod(os.path.join(rng.choice(dirs), b"sda1"), 0o60660, os.makedev(8, 1))
        os.mknod(os.path.join(rng.choice(dirs), b"bigdev"), 0o20600,
                 os.makedev(4095, 1048575))
        # An overlay whiteout, not in the root, whose directory has no
        # overlay xattrs of its own.
        wd = os.path.join(dirs[0], b"wdir")
        os.mkdir(wd)
        os.mknod(os.path.join(wd, b"whiteout"), 0o20000, os.makedev(0, 0))
        dirs.append(wd)

    # Hard links (kept only with --hardlinks).
    if hardlinks:
        for p in rng.sample(t.files, 3):
            q = os.path.join(rng.choice(dirs), b"hl_" + os.path.basename(p)[:40])
            if not os.path.lexists(q):
                os.link(p, q)
                t.hardlinks.append((p, q))

    # Xattrs: user, trusted, security and trusted.overlay.* ones (stored
    # escaped, read back unchanged), values with NUL, '=', spaces, empty.
    values = [b"", b"v", b"a=b c", b"nul\0inside", b"\xff" * 40, b"-", b"x" * 1500]
    for p in rng.sample(t.files, min(len(t.files), 12)) + dirs[1:4]:
        for k in range(rng.randint(1, 4)):
            ns = rng.choice(["user.", "trusted.", "security.", "trusted.overlay."])
            key = ns + rng.choice(["k%d" % k, "with=eq%d" % k, "sp ace%d" % k,
                                   "redirect", "metacopy", "custom"])
            try:
                os.setxattr(p, key, rng.choice(values))
            except OSError as e:
                if e.errno != errno.ENOSPC:  # the inode's xattr space is full
                    raise
    # An SELinux-like label shared by several files (shared xattr table).
    for p in t.files[:6]:
        os.setxattr(p, "security.label", b"system_u:object_r:test_t:s0\0")
    for i in range(3):
        lp = os.path.join(dirs[0], b"link%d" % i)
        if os.path.islink(lp):
            os.setxattr(lp, "trusted.sym", b"on a symlink", follow_symlinks=False)

    # Owners, then times bottom-up (creating entries changes directory
    # times), with nanoseconds.
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root), topdown=False):
        for name in filenames + dirnames + [b"."]:
            p = os.path.normpath(os.path.join(dirpath, name))
            if name == b"." and dirpath != os.fsencode(root):
                continue
            uid, gid = rng.choice(SCAN_OWNERS), rng.choice(SCAN_OWNERS)
            st = os.lstat(p)
            os.lchown(p, uid, gid)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
            ns = rng.randint(0, 2000000000) * 10**9 + rng.randint(0, 10**9 - 1)
            os.utime(p, ns=(ns, ns), follow_symlinks=False)
    return t


# --- tar layers ------------------------------------------------------------------

def posix_acl(entries):
    """Binary POSIX ACL xattr value (version 2) from (tag, perm, id)."""
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", t, p, i) for t, p, i in sorted(entries))


ACL_FILE = posix_acl([(0x01, 6, 0xFFFFFFFF), (0x02, 4, 1000), (0x04, 4, 0xFFFFFFFF),
                      (0x10, 6, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)])
ACL_DIR_DEFAULT = posix_acl([(0x01, 7, 0xFFFFFFFF), (0x04, 5, 0xFFFFFFFF),
                             (0x08, 5, 100), (0x10, 5, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)])
CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")


def set_times(path, sec, nsec):
    ns = sec * 1000000000 + nsec
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def make_layer_tree(root, seed, whiteouts=False):
    """A tree with every entry type and attribute a layer can carry."""
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    files = []

    def f(rel, data, mode=0o644, uid=0, gid=0):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        write_file(p, data, mode)
        os.lchown(p, uid, gid)
        files.append(p)
        return p

    def rb(n):
        return random_bytes(rnd, n) if n < 4096 else os.urandom(n)

    f("empty", b"")
    f("one", b"x")
    f("inline64", rb(64))
    f("ext65", rb(65))
    f("block", rb(4096))
    f("mid", rb(100000), 0o640, 1000, 100)
    f("dup-a", b"same content " * 100)
    f("dup-b", b"same content " * 100)
    big = f("dir/big", os.urandom(1536 * 1024 + rnd.randrange(4096)))
    f("setuid", rb(10), 0o4755)
    f("setgid", rb(200), 0o2711, 70000, 70001)
    f("nomode", rb(3), 0o000)
    f("dir/sub/deep/file", rb(70))
    long_name = "n" * 200
    f("dir/" + long_name, rb(90))
    long_dir = "/".join(["d%02d-" % i + "x" * 40 for i in range(6)])
    f(long_dir + "/leaf", rb(20))
    os.link(os.path.join(root, "mid"), os.path.join(root, "dir/mid-link"))
    os.link(big, os.path.join(root, "big-link"))
    os.symlink("../one", os.path.join(root, "dir/rel-link"))
    os.symlink("/abs/target", os.path.join(root, "abs-link"))
    os.symlink("t" * 300, os.path.join(root, "long-link"))
    os.mknod(os.path.join(root, "chr"), 0o600 | stat.S_IFCHR, os.makedev(4, 64))
    os.mknod(os.path.join(root, "blk"), 0o660 | stat.S_IFBLK, os.makedev(8, 1))
    os.mkfifo(os.path.join(root, "fifo"), 0o600)
    os.makedirs(os.path.join(root, "sticky"))
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    os.makedirs(os.path.join(root, "private"))
    os.chmod(os.path.join(root, "private"), 0o700)
    os.lchown(os.path.join(root, "private"), 123, 456)
    # Sparse: a hole, then data.
    sp = os.path.join(root, "sparse")
    with open(sp, "wb") as fh:
        fh.truncate(3 << 20)
        fh.seek(2 << 20)
        fh.write(rb(5000))
    os.setxattr(os.path.join(root, "one"), "user.note", b"hello")
    os.setxattr(os.path.join(root, "mid"), "trusted.secret", b"t\x00bin")
    os.setxattr(os.path.join(root, "setuid"), "security.capability", CAPABILITY)
    os.setxattr(os.path.join(root, "block"), "system.posix_acl_access", ACL_FILE)
    os.chmod(os.path.join(root, "block"), 0o664)
    os.setxattr(os.path.join(root, "sticky"), "system.posix_acl_default", ACL_DIR_DEFAULT)
    os.setxattr(os.path.join(root, "dir"), "user.dir", b"v" * 300)
    if whiteouts:
        f(".wh.gone", b"", 0o600, 5, 6)
        f("dir/sub/.wh..wh..opq", b"")
        f("dir/.wh.vanished", b"")
    # Times last, deepest first, with nanoseconds.
    for dirpath, dirnames, filenames in sorted(os.walk(root), key=lambda t: -len(t[0])):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            set_times(p, 1600000000 + rnd.randrange(10 ** 8), rnd.randrange(10 ** 9))
    set_times(root, 1700000000, 123456789)


# --- files for object stores -------------------------------------------------------

def make_files_tree(root, n_files, seed=1):
    """A tree with files of many sizes (some equal contents, some empty,
    some larger than a few fs-verity blocks) in a few directories."""
    rnd = random.Random(seed)
    os.makedirs(root)
    for d in range(4):
        os.makedirs(os.path.join(root, "d%d" % d, "sub"))
    for i in range(n_files):
        size = rnd.choice([0, 1, 100, 4095, 4096, 4097, 20000, 70000, 300000])
        data = rnd.randbytes(size)
        if i % 17 == 0:
            data = b"same content\n" * 50
        where = os.path.join(root, "d%d" % (i % 4), "sub" if i % 3 else "")
        write_file(os.path.join(where, "f%03d" % i), data)
    os.symlink("d0/f000", os.path.join(root, "link"))


# --- comparing a mount with its source -------------------------------------------


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def describe(path):
    st = os.lstat(path)
    d = {
        "type": stat.S_IFMT(st.st_mode),
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime": st.st_mtime_ns,
        "xattrs": sorted((n, os.getxattr(path, n, follow_symlinks=False))
                         for n in os.listxattr(path, follow_symlinks=False)),
    }
    if stat.S_ISREG(st.st_mode):
        d["size"] = st.st_size
        d["sha256"] = sha256_file(path)
    elif stat.S_ISLNK(st.st_mode):
        d["size"] = st.st_size
        d["target"] = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d["rdev"] = st.st_rdev
    return d


def walk(root):
    """Relative path -> description, for every entry including the root."""
    out = {"": describe(root)}
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        for name in os.listdir(full):
            r = os.path.join(rel, name) if rel else name
            out[r] = describe(os.path.join(root, r))
            if out[r]["type"] == stat.S_IFDIR:
                stack.append(r)
    return out


def compare_trees(source, mounted):
    a, b = walk(source), walk(mounted)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    check(not missing, "%d entries missing from the mount, e.g. %r" % (
        len(missing), missing[:5]))
    check(not extra, "%d unexpected entries in the mount, e.g. %r" % (
        len(extra), extra[:5]))
    for rel in sorted(a):
        if a[rel] != b[rel]:
            diff = {k: (a[rel].get(k), b[rel].get(k)) for k in set(a[rel]) | set(b[rel])
                    if a[rel].get(k) != b[rel].get(k)}
            raise Failure("entry %r differs (source, mount): %r" % (rel or "/", diff))
    return len(a)
