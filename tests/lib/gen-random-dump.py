#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Write a random, valid composefs dumpfile to stdout.

    gen-random-dump.py SEED [--version V] [--scale S]

The same SEED (and options) always gives the same bytes.  The tree covers
the corners of the image format (docs/image-format.md): hard links and chains,
deep and wide directories (some spanning several dirent blocks), long and
odd names (escapes, UTF-8, control bytes, names sorting before "."), long
symlinks, many and shared xattrs (sometimes more than 128 shared references
on one inode), devices, FIFOs, sockets, whiteouts, inline content of every
boundary size, external files up to 2^53 bytes with and without digest or
payload, ids and nlink above 65535, negative and mixed mtimes, and SELinux
labels on the root.

The output is valid in strict mode (CFS_PARSE_STRICT).  It is also stable
under `composefs-info dump | mkcomposefs`: the primary name of every hard
linked inode is the first one in depth-first sorted order (the name the
image reader picks), no hard link points at a whiteout, and no input xattr
uses a name the writer reserves for itself.

--version 1 guarantees at least one whiteout, so the default
`mkcomposefs` options produce a version 1 image; --version 0 trees may
contain whiteouts too and are meant to be built with
`--min-version=0 --max-version=0`.
"""

import argparse
import random
import sys

from cfsdump import S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK

MAX_PATH = 3000          # keep full paths walkable below PATH_MAX on a mount
XATTR_BUDGET = 32767 - 600   # room for the xattrs the writer adds (markers)


class Inode:
    def __init__(self, mode):
        self.mode = mode
        self.size = 0
        self.nlink = 1
        self.uid = 0
        self.gid = 0
        self.rdev = 0
        self.mtime = (0, 0)
        self.payload = None
        self.content = None
        self.digest = None
        self.xattrs = {}
        self.names = []          # entries naming this inode

    @property
    def ftype(self):
        return self.mode & 0o170000


class Entry:
    def __init__(self, name, parent, inode):
        self.name = name
        self.parent = parent
        self.inode = inode
        self.children = {} if inode.ftype == S_IFDIR else None
        self.link_to = None      # Entry this '@' line points at
        inode.names.append(self)

    def components(self):
        parts = []
        e = self
        while e.parent is not None:
            parts.append(e.name)
            e = e.parent
        return tuple(reversed(parts))

    def path_len(self):
        return sum(len(c) + 1 for c in self.components())


class Gen:
    def __init__(self, seed, version, scale):
        self.r = random.Random(seed)
        self.version = version
        self.scale = scale
        self.base_mtime = (self.r.choice([0, 1633950376, 1700000000,
                                          -86400 * 365]),
                           self.r.choice([0, 0, 123456789]))
        self.base_uid = self.r.choice([0, 0, 1000])
        self.dirs = []
        self.files = []
        self.shared_pool = []
        for i in range(self.r.randrange(4, 12)):
            self.shared_pool.append((self.xattr_key(), self.xattr_value()))

    # --- random atoms -----------------------------------------------------

    def pick(self, weighted):
        total = sum(w for w, _ in weighted)
        x = self.r.randrange(total)
        for w, v in weighted:
            if x < w:
                return v
            x -= w
        raise AssertionError

    def rbytes(self, n, alphabet=None):
        if alphabet is None:
            return bytes(self.r.getrandbits(8) for _ in range(n))
        return bytes(self.r.choice(alphabet) for _ in range(n))

    def name(self, parent):
        r = self.r
        for _ in range(100):
            kind = self.pick([(50, "plain"), (10, "odd"), (8, "early"),
                              (5, "long"), (6, "utf8"), (4, "ctl")])
            if kind == "plain":
                n = self.rbytes(r.randrange(1, 16),
                                b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
            elif kind == "odd":
                n = self.rbytes(r.randrange(1, 20),
                                b"ab =\\x@-+!#,;:'\"*?[]{}~%&()")
            elif kind == "early":
                n = r.choice([b"-", b"+", b"!", b"#", b",", b"-x", b"+a",
                              b"!b", b"#c", b",d", b"&"]) + \
                    self.rbytes(r.randrange(0, 4), b"abc")
            elif kind == "long":
                n = self.rbytes(r.choice([200, 254, 255, r.randrange(64, 256)]),
                                b"abcdefghijklmnopqrstuvwxyz")
            elif kind == "utf8":
                n = r.choice(["ä", "€uro", "日本語", "ß-ü", "😀"]).encode() + \
                    self.rbytes(r.randrange(0, 5), b"xyz")
            else:
                n = b"c" + self.rbytes(r.randrange(1, 6),
                                       b"\x01\x02\t\n\r\x1b\x7f\x80\xff ")
            n = n.replace(b"/", b"_").replace(b"\0", b"_")
            if n in (b".", b".."):
                continue
            if parent.path_len() + len(n) + 1 > MAX_PATH:
                n = n[:8]
            if n and n not in parent.children:
                return n
        # fall back to a counter name that cannot collide
        i = len(parent.children)
        while b"n%d" % i in parent.children:
            i += 1
        return b"n%d" % i

    def xattr_key(self):
        r = self.r
        ns = self.pick([(40, b"user."), (25, b"trusted."), (10, b"security."),
                        (5, b"trusted.overlay."), (3, b"")])
        if ns == b"":
            ns = r.choice([b"foo.", b"x-", b"lustre."])
        if ns == b"security.":
            # avoid names the VFS or an LSM interprets
            ns = b"security.t"
        if ns == b"trusted.overlay.":
            ns = b"trusted.overlay.x-"
        tail = self.rbytes(r.randrange(1, 24),
                           b"abcdefghijklmnopqrstuvwxyz0123456789._-=\\ \xc3\xa4")
        if r.randrange(20) == 0:
            tail = self.rbytes(r.randrange(100, 240), b"kK")
        return (ns + tail).replace(b"\0", b"_")[:255]

    def xattr_value(self):
        r = self.r
        kind = self.pick([(50, "text"), (20, "bin"), (10, "empty"),
                          (8, "long"), (4, "dash")])
        if kind == "text":
            return self.rbytes(r.randrange(1, 40),
                               b"abcdefgh 012=\\-\t\n@\xe2\x82\xac")
        if kind == "bin":
            return self.rbytes(r.randrange(1, 64))
        if kind == "empty":
            return b""
        if kind == "long":
            return self.rbytes(r.randrange(200, 3000))
        return b"-"

    def mtime(self):
        r = self.r
        k = self.pick([(75, "base"), (10, "near"), (6, "neg"), (5, "far"),
                       (4, "zero")])
        if k == "base":
            return self.base_mtime
        if k == "near":
            return (self.base_mtime[0] + r.randrange(-1000, 100000),
                    r.randrange(1000000000))
        if k == "neg":
            return (-r.randrange(1, 1 << 33), r.randrange(1000000000))
        if k == "far":
            return (r.randrange(1 << 33, 1 << 36), r.randrange(1000000000))
        return (0, 0)

    def ids(self, ino):
        r = self.r
        k = self.pick([(80, "base"), (10, "small"), (10, "big")])
        if k == "base":
            ino.uid = ino.gid = self.base_uid
        elif k == "small":
            ino.uid, ino.gid = r.randrange(65536), r.randrange(65536)
        else:
            ino.uid = r.choice([65536, r.randrange(65536, 0xFFFFFFFE)])
            ino.gid = r.choice([65535, r.randrange(65536, 0xFFFFFFFE)])

    def add_xattrs(self, ino, allow_shared=True):
        r = self.r
        n = self.pick([(60, 0), (25, r.randrange(1, 4)),
                       (10, r.randrange(4, 20)), (5, r.randrange(20, 60))])
        budget = 12
        for k, v in ino.xattrs.items():
            budget += 7 + len(k) + len(v)
        for _ in range(n):
            if allow_shared and self.shared_pool and r.randrange(3) == 0:
                k, v = r.choice(self.shared_pool)
            else:
                k, v = self.xattr_key(), self.xattr_value()
            if k in ino.xattrs:
                continue
            cost = 7 + len(k) + len(v)
            if budget + cost > XATTR_BUDGET:
                break
            ino.xattrs[k] = v
            budget += cost

    # --- inodes -----------------------------------------------------------

    def common(self, ino):
        self.ids(ino)
        ino.mtime = self.mtime()
        perm = self.pick([(60, self.r.choice([0o644, 0o755, 0o600, 0o777])),
                          (40, self.r.randrange(0o10000))])
        ino.mode |= perm
        if self.r.randrange(50) == 0 and ino.ftype == S_IFREG:
            ino.mode |= 0o1000000        # bits above 16 are dropped
        self.add_xattrs(ino)

    def new_dir(self):
        ino = Inode(S_IFDIR)
        self.common(ino)
        ino.mode = (ino.mode & ~0o7777) | self.r.choice(
            [0o755, 0o700, 0o555, 0o1777, 0o2755, 0o750])
        ino.size = self.r.choice([0, 4096, 27])
        ino.nlink = self.r.choice([1, 2, 7])
        return ino

    def new_file(self):
        r = self.r
        ino = Inode(S_IFREG)
        self.common(ino)
        kind = self.pick([(25, "empty"), (35, "inline"), (40, "external")])
        if kind == "empty":
            ino.size = 0
            if r.randrange(4) == 0:
                ino.payload = self.payload()
            if r.randrange(4) == 0:
                ino.digest = self.rbytes(32)
        elif kind == "inline":
            size = self.pick([(30, r.choice([1, 2048, 2049, 4096, 4097, 5000,
                                             2047, 4095, 64, 65])),
                              (50, r.randrange(1, 200)),
                              (20, r.randrange(1, 5001))])
            ino.size = size
            ino.content = self.rbytes(size) if r.randrange(2) else \
                self.rbytes(size, b"hello world\n-\\=")
            if size == 1 and r.randrange(3) == 0:
                ino.content = b"-"
            if r.randrange(5) == 0:
                ino.payload = self.payload()
        else:
            ino.size = self.pick([(30, r.randrange(1, 65536)),
                                  (20, r.randrange(1, 1 << 32)),
                                  (10, r.choice([1, 4096, 4097, 1 << 20,
                                                 (1 << 20) + 1, 1 << 32,
                                                 1 << 43, (1 << 43) + 1,
                                                 1 << 53])),
                                  (10, r.randrange(1 << 32, (1 << 53) + 1))])
            p = self.pick([(50, "digest"), (20, "none"), (20, "odd"),
                           (10, "empty")])
            if p == "digest":
                ino.digest = self.rbytes(32)
                h = ino.digest.hex()
                ino.payload = (h[:2] + "/" + h[2:]).encode()
            elif p == "odd":
                ino.payload = self.payload()
                if r.randrange(2):
                    ino.digest = self.rbytes(32)
            elif p == "empty":
                ino.payload = b""
            elif r.randrange(2):
                ino.digest = self.rbytes(32)
        if r.randrange(10) == 0:
            ino.nlink = r.choice([0xFFFF, 65536, r.randrange(2, 1 << 31)])
        return ino

    def payload(self):
        r = self.r
        k = self.pick([(40, "path"), (20, "abs"), (20, "odd"), (10, "len3"),
                       (5, "long"), (5, "dash")])
        if k == "path":
            return self.rbytes(r.randrange(1, 30), b"abcdef0123456789/")
        if k == "abs":
            return b"/" + self.rbytes(r.randrange(1, 30), b"abc/")
        if k == "odd":
            return self.rbytes(r.randrange(1, 30), b"a b=\\\t\n\xc3\xa4x")
        if k == "len3":
            # length 3 mod 4: the redirect xattr then has no padding
            return self.rbytes(r.choice([3, 7, 11, 63]), b"abcd/")
        if k == "long":
            return self.rbytes(r.randrange(1000, 4096), b"abcdefgh/")
        return b"-"

    def new_symlink(self):
        r = self.r
        ino = Inode(S_IFLNK)
        self.common(ino)
        ino.mode = S_IFLNK | self.r.choice([0o777, 0o777, 0o755])
        n = self.pick([(70, r.randrange(1, 40)), (15, r.randrange(40, 1000)),
                       (10, r.choice([2048, 4095, 4094, 4000, 3000])),
                       (5, r.randrange(1000, 4096))])
        ino.payload = self.rbytes(n, b"abcdefghij/.._- \\=\xc3\xa4\n")
        ino.size = len(ino.payload)
        return ino

    def new_special(self, whiteout=False):
        r = self.r
        if whiteout:
            ino = Inode(S_IFCHR)
            self.common(ino)
            ino.rdev = 0
            if r.randrange(4) == 0:
                ino.size = r.choice([1, 100, 5000000000])
            return ino
        t = r.choice([S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK])
        ino = Inode(t)
        self.common(ino)
        if t in (S_IFCHR, S_IFBLK):
            major = r.randrange(1 if t == S_IFCHR else 0, 4096)
            minor = r.randrange(1 << 20) if r.randrange(3) == 0 else \
                r.randrange(256)
            # the C library's 64-bit dev_t encoding, as stat(2) reports it
            ino.rdev = ((minor & 0xFF) | ((major & 0xFFF) << 8) |
                        ((minor & ~0xFF) << 12) | ((major & ~0xFFF) << 32))
            # A dev_t above 32 bits does not fit the image: the parser
            # refuses it, so it is never generated.
            ino.rdev &= 0xFFFFFFFF
        if r.randrange(10) == 0:
            ino.size = r.choice([1, 4096, 5000000000])
        if r.randrange(10) == 0:
            ino.payload = self.payload()
        return ino

    # --- tree ---------------------------------------------------------------

    def add(self, parent, ino, name=None):
        if name is None:
            name = self.name(parent)
        e = Entry(name, parent, ino)
        parent.children[name] = e
        if ino.ftype == S_IFDIR:
            self.dirs.append(e)
        elif not (ino.ftype == S_IFCHR and ino.rdev == 0):
            self.files.append(e)
        return e

    def random_leaf(self):
        k = self.pick([(55, "file"), (20, "symlink"), (12, "special"),
                       (5, "whiteout")])
        if k == "file":
            return self.new_file()
        if k == "symlink":
            return self.new_symlink()
        return self.new_special(whiteout=(k == "whiteout"))

    def fill_dir(self, d, count):
        for _ in range(count):
            self.add(d, self.random_leaf())

    def build(self):
        r = self.r
        root_ino = Inode(S_IFDIR)
        self.common(root_ino)
        root_ino.mode = S_IFDIR | r.choice([0o755, 0o555, 0o700])
        if r.randrange(3) == 0:
            root_ino.xattrs[b"security.selinux"] = r.choice(
                [b"system_u:object_r:root_t:s0\0", b"unconfined_u:object_r:x_t:s0"])
        self.root = root = Entry(b"", None, root_ino)
        self.dirs.append(root)

        # root children with hex names suppress synthetic whiteouts
        for _ in range(r.randrange(0, 4)):
            name = b"%02x" % r.randrange(256)
            if name not in root.children:
                self.add(root, self.random_leaf() if r.randrange(3) else
                         self.new_dir(), name)

        # a random skeleton of directories
        ndirs = int(r.randrange(10, 40) * self.scale) + 1
        for _ in range(ndirs):
            parent = r.choice(self.dirs)
            if parent.path_len() > MAX_PATH - 300:
                parent = root
            self.add(parent, self.new_dir())

        # one deep chain
        d = r.choice(self.dirs)
        for _ in range(r.randrange(10, 60)):
            if d.path_len() > MAX_PATH - 300:
                break
            ino = self.new_dir()
            d = self.add(d, ino, self.name_short(d))

        # wide directories spanning several dirent blocks
        for _ in range(self.pick([(40, 0), (40, 1), (20, 2)])):
            w = self.add(r.choice(self.dirs[:5]), self.new_dir())
            self.fill_dir(w, int(r.randrange(300, 701) * min(self.scale, 1.0)))

        # leaves everywhere
        for d in list(self.dirs):
            self.fill_dir(d, self.pick([(30, 0), (50, r.randrange(1, 6)),
                                        (20, r.randrange(6, 20))]))

        # whiteouts: at least one for version 1 trees
        if self.version >= 1:
            self.add(r.choice(self.dirs), self.new_special(whiteout=True))

        self.shared_heavy()
        self.hardlinks()
        return root

    def name_short(self, parent):
        for _ in range(100):
            n = self.rbytes(self.r.randrange(1, 4), b"abcdefgh-+!")
            if n not in (b".", b"..") and n not in parent.children:
                return n
        return b"d%d" % len(parent.children)

    def shared_heavy(self):
        """Sometimes two or three inodes carry the same >128 xattrs, so the
        per-inode cap of 128 shared references is reached."""
        r = self.r
        if r.randrange(3) != 0 or len(self.files) < 3:
            return
        pairs = [(b"user.h%03d" % i, b"v%d" % r.randrange(10)) for i in
                 range(r.randrange(129, 200))]
        for e in r.sample(self.files, 3 if r.randrange(2) else 2):
            x = e.inode.xattrs
            used = 12 + sum(7 + len(k) + len(v) for k, v in x.items())
            for k, v in pairs:
                if k not in x and used + 7 + len(k) + len(v) <= XATTR_BUDGET:
                    x[k] = v
                    used += 7 + len(k) + len(v)

    def hardlinks(self):
        r = self.r
        candidates = [e for e in self.files if e.inode.ftype != S_IFDIR]
        if not candidates:
            return
        for _ in range(self.pick([(20, 0), (50, r.randrange(1, 6)),
                                  (30, r.randrange(6, 20))])):
            e = r.choice(candidates)
            ino = e.inode
            for _ in range(self.pick([(60, 1), (30, 2), (10, r.randrange(3, 8))])):
                d = r.choice(self.dirs)
                link = Entry(self.name(d), d, ino)
                d.children[link.name] = link
            if r.randrange(3) == 0:
                ino.nlink = len(ino.names)
        # The primary name is the first in depth-first sorted order; the
        # others point at an earlier name of the same inode (chains).
        for ino in {id(e.inode): e.inode for e in self.files}.values():
            if len(ino.names) < 2:
                continue
            ino.names.sort(key=Entry.components)
            for i, e in enumerate(ino.names[1:], 1):
                e.link_to = ino.names[r.randrange(i) if r.randrange(2) else 0]

    # --- output -------------------------------------------------------------

    def esc(self, data, key=False, optional=False):
        """Escape a field, spelling bytes in every way the parser accepts
        (short and hex escapes, upper-case hex, raw UTF-8, needless
        escapes): a generator of inputs, unlike cfsdump.escape(), which
        spells them as the printer does."""
        r = self.r
        if optional and data == b"-":
            return b"\\x2d"
        loose = r.randrange(4) == 0
        out = bytearray()
        for c in data:
            if c == 0x5C:
                out += b"\\\\"
            elif c == 0x0A:
                out += b"\\n" if r.randrange(2) else b"\\x0a"
            elif c == 0x0D:
                out += b"\\r"
            elif c == 0x09:
                out += b"\\t" if r.randrange(2) else b"\\x09"
            elif c == 0x20 or c == 0 or (key and c == 0x3D):
                out += b"\\x%02x" % c
            elif c < 0x21 or c > 0x7E:
                if loose and c >= 0x80:
                    out.append(c)        # raw UTF-8 is accepted
                else:
                    out += (b"\\x%02X" if r.randrange(3) == 0 else
                            b"\\x%02x") % c
            elif loose and r.randrange(40) == 0:
                out += b"\\x%02x" % c
            else:
                out.append(c)
        return bytes(out)

    def path_text(self, e):
        comps = [self.esc(c) for c in e.components()]
        sep = b"//" if self.r.randrange(30) == 0 else b"/"
        lead = self.r.choice([b"/", b"/", b"/", b"", b"//"])
        return lead + sep.join(comps)

    def num(self, v):
        if self.r.randrange(60) == 0:
            return b"+%d" % v
        return b"%d" % v

    def line(self, e):
        ino = e.inode
        path = b"/" if e.parent is None else self.path_text(e)
        if e.link_to is not None:
            mode = ino.mode
            if self.r.randrange(5) == 0 and ino.ftype != S_IFLNK:
                # a link line's own mode never reaches the image
                mode = S_IFREG | 0o644 if ino.ftype != S_IFREG else S_IFIFO | 0o600
            junk = self.r.choice([b"0", b"junk", b"1"])
            return b"%s %s @%o 1 0 0 0 0.0 %s - -" % (
                path, junk, mode, self.path_text(e.link_to))
        mt = b"%d.%d" % ino.mtime
        payload = b"-" if ino.payload is None else self.esc(ino.payload,
                                                           optional=True)
        content = b"-" if ino.content is None else self.esc(ino.content,
                                                           optional=True)
        if ino.digest is None:
            digest = b"-"
        else:
            digest = ino.digest.hex().encode()
            if self.r.randrange(5) == 0:
                digest = digest.upper()
        parts = [path, self.num(ino.size), b"%o" % ino.mode,
                 self.num(ino.nlink), self.num(ino.uid), self.num(ino.gid),
                 b"%d" % ino.rdev, mt, payload, content, digest]
        items = list(ino.xattrs.items())
        self.r.shuffle(items)
        for k, v in items:
            parts.append(self.esc(k, key=True) + b"=" + self.esc(v))
        return b" ".join(parts)

    def emit(self, out):
        stack = [self.root]
        while stack:
            e = stack.pop()
            out.write(self.line(e) + b"\n")
            if e.children:
                kids = [e.children[k] for k in sorted(e.children)]
                if self.r.randrange(3) == 0:
                    self.r.shuffle(kids)    # sibling order is free
                stack.extend(reversed(kids))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("--version", type=int, choices=(0, 1), default=1)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="tree size factor (default 1.0)")
    args = ap.parse_args()
    g = Gen(args.seed * 2 + args.version, args.version, args.scale)
    g.build()
    g.emit(sys.stdout.buffer)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
