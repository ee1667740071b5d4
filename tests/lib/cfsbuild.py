# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the directory-mode tests of mkcomposefs (suite 'build').

- make_tree(): a seeded generator of real source trees with every kind of
  entry a scan must handle;
- expected_dump(): what `composefs-info dump` must print for the image of
  such a tree, computed by an independent walk of the source
  (docs/design.md, "Directory scan", "Content pass"; docs/image-format.md,
  "Inode order", "Directories", "What the reader rebuilds"; docs/dumpfile.md,
  "Printing");
- check_store(): every object of an object store is named by the digest
  of its content, mode 0644, and there is one per distinct content.
"""

import errno
import os
import random
import socket
import stat

import cfsverity
from cfstest import Failure, check, main, run, skip  # noqa: F401

BLOCK = 4096


# ---- The source tree generator ------------------------------------------------------

OWNERS = (0, 1, 1000, 65534, 4000000000)

NAMES = ["with space", "back\\slash", "a=b", "caf\u00e9", "\u65e5\u672c",
         "new\nline", "tab\tname", "-", "-dash", "+plus", "00", "ab",
         b"raw\xff\xfebytes", "x" * 255]

# Sizes the scan treats differently (docs/design.md, "Content pass"): empty,
# inline 1..64, external from 65, around a block, larger and odd.
SIZES = [0, 1, 2, 63, 64, 65, 66, 100, 4095, 4096, 4097, 8191, 12345,
         65537, 1 << 20, 1000003]


class Tree:
    """What make_tree() created, for tests that need to know."""

    def __init__(self, root):
        self.root = root
        self.files = []      # paths of regular files
        self.big_files = []  # paths of regular files over 64 bytes
        self.hardlinks = []  # (path, other name of the same inode)


def _p(root, *parts):
    return os.path.join(os.fsencode(root), *[os.fsencode(p) for p in parts])


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _rand_bytes(rng, n):
    return rng.randbytes(n) if hasattr(rng, "randbytes") else \
        bytes(rng.getrandbits(8) for _ in range(n))


def make_tree(root, seed, devices=True, big=True, hardlinks=True):
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
        _write(p, data, mode if mode is not None else rng.choice(
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
            uid, gid = rng.choice(OWNERS), rng.choice(OWNERS)
            st = os.lstat(p)
            os.lchown(p, uid, gid)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
            ns = rng.randint(0, 2000000000) * 10**9 + rng.randint(0, 10**9 - 1)
            os.utime(p, ns=(ns, ns), follow_symlinks=False)
    return t


# ---- The expected dump -------------------------------------------------------------


def escape(data, eq=False, lone_dash=False):
    """composefs-dump(5) escaping (docs/dumpfile.md, "Printer escapes")."""
    if lone_dash and data == b"-":
        return "\\x2d"
    out = []
    for c in data:
        if c == 0x5C:
            out.append("\\\\")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        elif c == 0x3D and eq:
            out.append("\\x3d")
        elif 0x21 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def dir_size(names):
    """EROFS directory i_size for these entry names (docs/image-format.md,
    "Directory blocks", "Inode data", "The i_size field"): 12 + len(name)
    per entry, blocks packed greedily, a last partial block over 2048 bytes
    becomes a full block."""
    full, count = 0, 0
    for name in sorted(names):
        cost = 12 + len(name)
        if count + cost > BLOCK:
            full += 1
            count = 0
        count += cost
    return full * BLOCK + (count if count <= 2048 else BLOCK)


class Options:
    def __init__(self, skip_xattrs=False, user_xattrs=False, skip_devices=False,
                 use_epoch=False, hardlinks=False):
        self.skip_xattrs = skip_xattrs
        self.user_xattrs = user_xattrs
        self.skip_devices = skip_devices
        self.use_epoch = use_epoch
        self.hardlinks = hardlinks

    def args(self):
        a = []
        for name in ("skip_xattrs", "user_xattrs", "skip_devices", "use_epoch",
                     "hardlinks"):
            if getattr(self, name):
                a.append("--" + name.replace("_", "-"))
        return a


class _Entry:
    def __init__(self, path, st):
        self.path = path  # b"/a/b"
        self.st = st
        self.children = []
        self.xattrs = {}
        self.link_to = None
        self.nlink = 1


def _read_xattrs(path, opts):
    if opts.skip_xattrs:
        return {}
    x = {}
    for key in os.listxattr(path, follow_symlinks=False):
        if opts.user_xattrs and not key.startswith("user."):
            continue
        x[os.fsencode(key)] = os.getxattr(path, key, follow_symlinks=False)
    return x


def _is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and (st.st_rdev & 0xFFFFFFFF) == 0


def expected_dump(src, opts):
    """Lines of `composefs-info dump` for the image mkcomposefs makes of
    @src with @opts, xattrs sorted within each line (see normalize())."""
    src = os.fsencode(src)
    root = _Entry(b"/", os.lstat(src))
    root.full = src
    root.xattrs = _read_xattrs(src, opts)
    order = [root]
    first_by_inode = {}
    stack = [(root, src)]
    while stack:
        e, full = stack.pop()
        names = sorted(os.listdir(full))
        kids = []
        for name in names:
            p = os.path.join(full, name)
            st = os.lstat(p)
            if opts.skip_devices and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            c = _Entry((e.path if e.path != b"/" else b"") + b"/" + name, st)
            c.full = p
            c.xattrs = _read_xattrs(p, opts)
            e.children.append(c)
            kids.append(c)
        for c in kids:
            if stat.S_ISDIR(c.st.st_mode):
                stack.append((c, c.full))
    # Pre-order list (the order of dump lines).
    order = []
    walk = [root]
    while walk:
        e = walk.pop()
        order.append(e)
        walk.extend(reversed(e.children))
    # Hard links: the first name in this order is the real entry.
    if opts.hardlinks:
        for e in order:
            if stat.S_ISDIR(e.st.st_mode) or e.st.st_nlink < 2:
                continue
            key = (e.st.st_dev, e.st.st_ino)
            if key in first_by_inode:
                t = first_by_inode[key]
                e.link_to = t
                t.nlink += 1
            else:
                first_by_inode[key] = e
    # Whiteouts give their directory the opaque markers (format version 1,
    # the default maximum; docs/image-format.md, "Input whiteouts", "What
    # the reader rebuilds").
    for e in order:
        if stat.S_ISDIR(e.st.st_mode) and any(
                _is_whiteout(c.st) and c.link_to is None for c in e.children):
            e.xattrs[b"trusted.overlay.opaque"] = b"x"
            e.xattrs[b"user.overlay.opaque"] = b"x"

    lines = []
    for e in order:
        t = e.link_to or e
        st = t.st
        mode = st.st_mode
        if opts.use_epoch:
            mtime = "0.0"
        else:
            mtime = "%d.%d" % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9)
        payload, content, digest = "-", "-", "-"
        rdev = 0
        if stat.S_ISDIR(mode):
            names = [os.path.basename(c.path) for c in t.children] + [b".", b".."]
            if t is root:
                names += [b"%02x" % i for i in range(256)
                          if b"%02x" % i not in names]
            size = dir_size(set(names))
            nlink = 2 + sum(1 for c in t.children
                            if c.link_to is None and stat.S_ISDIR(c.st.st_mode))
        elif stat.S_ISREG(mode):
            size = st.st_size
            nlink = t.nlink
            with open(t.full, "rb") as f:
                data = f.read()
            if 1 <= size <= 64:
                content = escape(data, lone_dash=True)
            elif size > 64:
                d = cfsverity.hexdigest(data)
                payload = d[:2] + "/" + d[2:]
                digest = d
        elif stat.S_ISLNK(mode):
            target = os.readlink(t.full)
            size = len(target)
            nlink = t.nlink
            payload = escape(target, lone_dash=True)
        else:
            size = 0
            nlink = t.nlink
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                rdev = st.st_rdev & 0xFFFFFFFF
        mode_s = ("@" if e.link_to else "") + "%o" % (mode & 0xFFFF)
        if e.link_to:
            payload = escape(t.path)
        fields = [escape(e.path), str(size), mode_s, str(nlink), str(st.st_uid),
                  str(st.st_gid), str(rdev), mtime, payload, content, digest]
        xattrs = sorted("%s=%s" % (escape(k, eq=True), escape(v, eq=True))
                        for k, v in t.xattrs.items())
        lines.append(" ".join(fields + xattrs))
    return lines


def normalize(dump_text):
    """Dump lines with the xattr tokens of each line sorted: the printer
    keeps the on-disk order (non-shared, then shared), which depends on
    the whole tree."""
    out = []
    for line in dump_text.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        out.append(" ".join(parts[:11] + sorted(parts[11:])))
    return out


def diff_lines(expected, actual, limit=10):
    msgs = []
    exp_set, act_set = set(expected), set(actual)
    for line in expected:
        if line not in act_set:
            msgs.append("missing:    " + line[:300])
    for line in actual:
        if line not in exp_set:
            msgs.append("unexpected: " + line[:300])
    if not msgs and expected != actual:
        msgs.append("same lines, different order")
    return "\n".join(msgs[:limit])


# ---- Object stores --------------------------------------------------------------------


def store_objects(store):
    """{relative path: (mode, digest of content)} of every object, and the
    list of other entries (temporary files, stray names). The lock file
    that writers take is part of every store, not an entry."""
    objects, other = {}, []
    for dirpath, dirnames, filenames in os.walk(store):
        for name in filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, store)
            if rel == ".lock":
                continue
            st = os.lstat(p)
            parts = rel.split("/")
            if (len(parts) == 2 and len(parts[0]) == 2 and len(parts[1]) == 62
                    and stat.S_ISREG(st.st_mode)):
                objects[rel] = (stat.S_IMODE(st.st_mode), cfsverity.file_hexdigest(p))
            else:
                other.append(rel)
    return objects, other


def check_store(store, contents_dir=None, allow_temps=False):
    """Every object's name is its fs-verity digest (ours, and the one of
    `fsverity digest` when installed) and its mode 0644. With
    @contents_dir: exactly one object per distinct content over 64 bytes
    among its regular files."""
    objects, other = store_objects(store)
    for rel, (mode, digest) in objects.items():
        check(rel.replace("/", "") == digest,
              "object %s has content with digest %s" % (rel, digest))
        check(mode == 0o644, "object %s has mode %o" % (rel, mode))
    tool = cfsverity.cli_digests([os.path.join(store, rel) for rel in sorted(objects)])
    if tool is not None:
        for rel in objects:
            got = tool.get(os.path.join(store, rel))
            check(got == rel.replace("/", ""),
                  "fsverity digest of object %s is %s" % (rel, got))
    if not allow_temps:
        check(not other, "unexpected files in the store: %s" % other[:5])
    else:
        for rel in other:
            check(os.path.basename(rel).startswith(".tmp") and "/" not in rel,
                  "unexpected file in the store: %s" % rel)
    if contents_dir is not None:
        want = set()
        for dirpath, dirnames, filenames in os.walk(contents_dir):
            for name in filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_size > 64:
                    d = cfsverity.file_hexdigest(p)
                    want.add(d[:2] + "/" + d[2:])
        check(set(objects) == want,
              "store holds %d objects, the source %d distinct contents; "
              "missing %s, extra %s" % (len(objects), len(want),
                                        sorted(want - set(objects))[:3],
                                        sorted(set(objects) - want)[:3]))
    return objects
