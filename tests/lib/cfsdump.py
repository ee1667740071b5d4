# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Dumpfile helpers shared by the image-level tests.

A small, independent reading of the composefs-dump(5) text format
(docs/dumpfile.md) and of what the image writer does to the tree
(docs/image-format.md, "Tree rewrite"), used to predict what the kernel
shows when an image is mounted as plain EROFS. It accepts the dumpfiles the
tests build images from; it is not a validator and does not reproduce every
error message of the C parser.
"""

import errno
import os
import stat

S_IFMT = 0o170000
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFCHR = 0o020000
S_IFBLK = 0o060000
S_IFIFO = 0o010000
S_IFSOCK = 0o140000
VALID_TYPES = (S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK)

U32 = 0xFFFFFFFF
U64 = 0xFFFFFFFFFFFFFFFF


class DumpError(Exception):
    pass


# --- escaping (docs/dumpfile.md, "Escapes", "Printer escapes") -------------

_HEX = b"0123456789abcdefABCDEF"


def unescape(field):
    """Undo the dumpfile escapes of one field (bytes in, bytes out)."""
    out = bytearray()
    i = 0
    n = len(field)
    while i < n:
        c = field[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise DumpError("No character after escape")
        e = field[i + 1]
        if e == 0x5C:
            out.append(0x5C)
        elif e == ord("n"):
            out.append(0x0A)
        elif e == ord("r"):
            out.append(0x0D)
        elif e == ord("t"):
            out.append(0x09)
        elif e == ord("x"):
            if n - (i + 2) < 2:
                raise DumpError("No hex characters after hex escape")
            h = field[i + 2:i + 4]
            if h[0] not in _HEX or h[1] not in _HEX:
                raise DumpError("Invalid hex characters after hex escape")
            out.append(int(h, 16))
            i += 4
            continue
        else:
            raise DumpError("Unsupported escape type %c" % e)
        i += 2
    return bytes(out)


def escape(data, eq=False, lone_dash=False):
    """Escape bytes the way the dump printer does (standard set)."""
    if lone_dash and data == b"-":
        return b"\\x2d"
    out = bytearray()
    for c in data:
        if c == 0x5C:
            out += b"\\\\"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c == 0x09:
            out += b"\\t"
        elif c < 0x21 or c > 0x7E or (eq and c == 0x3D):
            out += b"\\x%02x" % c
        else:
            out.append(c)
    return bytes(out)


# --- integers: strtoull syntax (1.5), refused when out of range ---------------

def _strtoull(text, base, limit=U64, signed=False):
    digits = b"01234567" if base == 8 else b"0123456789"
    s = text.lstrip(b" \t\n\r\v\f")
    neg = s[:1] == b"-"
    if s[:1] in (b"+", b"-"):
        s = s[1:]
    if not s or any(c not in digits for c in s):
        raise DumpError("Invalid integer %s" % text.decode("latin-1"))
    v = int(s, base)
    if neg and v != 0 and not signed:
        raise DumpError("Negative integer %s" % text.decode("latin-1"))
    if v > (limit + 1 if neg and signed else limit):
        raise DumpError("Integer %s is out of range" % text.decode("latin-1"))
    return -v if neg else v


def _unescape_cstr(field):
    value = unescape(field)
    if b"\0" in value:
        raise DumpError("Invalid escaped NUL character")
    return value


# --- the tree ------------------------------------------------------------------

class Node:
    """One dump line. `link` is the hard link target path for '@' lines."""

    def __init__(self, name, parent):
        self.name = name
        self.parent = parent
        self.children = {}
        self.mode = 0
        self.size = 0
        self.nlink = 1
        self.uid = 0
        self.gid = 0
        self.rdev = 0
        self.mtime_sec = 0
        self.mtime_nsec = 0
        self.payload = None
        self.content = None
        self.digest = None
        self.xattrs = {}
        self.link_path = None   # '@' lines: unresolved target path
        self.link = None        # '@' lines: resolved target Node (maybe a link)

    @property
    def ftype(self):
        return self.mode & S_IFMT

    def real(self):
        n = self
        seen = 0
        while n.link is not None:
            n = n.link
            seen += 1
            if seen > 100000:
                raise DumpError("hardlink loop")
        return n

    def path(self):
        parts = []
        n = self
        while n.parent is not None:
            parts.append(n.name)
            n = n.parent
        return b"/" + b"/".join(reversed(parts))

    def sorted_children(self):
        return [self.children[k] for k in sorted(self.children)]


def _split_path(path):
    return [c for c in path.split(b"/") if c]


def _lookup(root, path):
    n = root
    for comp in _split_path(path):
        n = n.children.get(comp)
        if n is None:
            return None
    return n


def parse_dump(data):
    """Parse dumpfile bytes; returns the root Node (hard links resolved)."""
    root = None
    links = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        try:
            node = _parse_line(line, root)
        except DumpError as e:
            raise DumpError("line %d: %s" % (lineno, e))
        if node.parent is None:
            root = node
        if node.link_path is not None:
            links.append(node)
    if root is None:
        raise DumpError("No files in dump file")
    for node in reversed(links):
        target = _lookup(root, node.link_path)
        if target is None:
            raise DumpError("No target at %r for hardlink" % node.link_path)
        if target is node:
            raise DumpError("Self-referential hardlink %r" % node.link_path)
        node.link = target
    return root


def _parse_line(line, root):
    if b"\0" in line:
        raise DumpError("Invalid embedded NUL character")
    fields = line.split(b" ", 11)
    xattr_text = fields[11] if len(fields) > 11 else b""
    fields = fields[:11] + [b""] * (11 - min(len(fields), 11))
    path = _unescape_cstr(fields[0])
    if not path:
        raise DumpError("Invalid empty path")
    is_root = path == b"/"
    if is_root:
        if root is not None:
            raise DumpError("Can't have multiple roots")
        node = Node(b"", None)
    else:
        if root is None:
            raise DumpError("Root node not present")
        comps = path.split(b"/")
        while comps and comps[0] == b"":
            comps.pop(0)
        # runs of '/' act as one separator, a trailing '/' leaves an empty name
        name = comps[-1] if comps else b""
        middle = [c for c in comps[:-1] if c]
        parent = root
        for c in middle:
            nxt = parent.children.get(c)
            if nxt is None:
                raise DumpError("Parent directory missing for %r" % path)
            if nxt.link is not None or nxt.link_path is not None \
                    or nxt.ftype != S_IFDIR:
                raise DumpError("Parent must be a directory for %r" % path)
            parent = nxt
        if name in (b".", b".."):
            raise DumpError("Invalid . or .. in path: %r" % path)
        if not name or len(name) > 255 or name in parent.children:
            raise DumpError("Can't add child")
        node = Node(name, parent)
        parent.children[name] = node

    mode_text = fields[2]
    hardlink = mode_text.startswith(b"@")
    if hardlink:
        mode_text = mode_text[1:]
    node.mode = _strtoull(mode_text, 8, U32)
    if node.ftype not in VALID_TYPES:
        raise DumpError("Invalid mode %o" % node.mode)
    if hardlink:
        if node.ftype == S_IFDIR:
            raise DumpError("Directories can't be hardlinked")
        if fields[8] == b"-":
            raise DumpError("No target path for the hardlink")
        node.link_path = _unescape_cstr(fields[8])
        return node
    if is_root and node.ftype != S_IFDIR:
        raise DumpError("Root must be a directory")

    node.size = _strtoull(fields[1], 10)
    node.nlink = _strtoull(fields[3], 10, U32)
    node.uid = _strtoull(fields[4], 10, U32)
    node.gid = _strtoull(fields[5], 10, U32)
    node.rdev = _strtoull(fields[6], 10, U32)
    mt = fields[7]
    if b"." not in mt:
        raise DumpError("Invalid mtime %s" % mt.decode("latin-1"))
    sec, nsec = mt.split(b".", 1)
    node.mtime_sec = _strtoull(sec, 10, (1 << 63) - 1, signed=True)
    node.mtime_nsec = _strtoull(nsec, 10, U32)
    if fields[8] != b"-":
        node.payload = _unescape_cstr(fields[8])
    if fields[9] != b"-":
        node.content = unescape(fields[9])
        if len(node.content) != node.size:
            raise DumpError("Invalid content size")
    if fields[10] not in (b"-", b""):
        d = fields[10]
        if len(d) != 64:
            raise DumpError("Invalid digest")
        node.digest = bytes.fromhex(d.decode("ascii"))
    if node.ftype == S_IFLNK:
        if not node.payload or len(node.payload) >= 4096:
            raise DumpError("Invalid symlink")
        node.size = len(node.payload)
    if node.content is not None and len(node.content) == 0:
        node.content = None
    rest = xattr_text
    while rest:
        tok, sep, rest = rest.partition(b" ")
        if b"=" not in tok:
            raise DumpError("Missing = in xattr")
        k, v = tok.split(b"=", 1)
        k = _unescape_cstr(k)
        v = unescape(v)
        if not k or len(k) > 255 or len(v) > 65535:
            raise DumpError("Can't set xattr")
        node.xattrs[k] = v
    return node


def walk(root):
    """All nodes in depth-first pre-order, children sorted byte-wise."""
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        if n.link is None and n.ftype == S_IFDIR:
            stack.extend(reversed(n.sorted_children()))


def linked_whiteouts(root):
    """Paths of the whiteouts (character device 0/0) that have a link
    count above 1 or a hard link to them: composefs refuses to write those
    (docs/compatibility.md, "Whiteouts with several names")."""
    out = []
    for n in walk(root):
        r = n.real()
        if _is_whiteout(r) and (r.nlink > 1 or n.link is not None):
            out.append(n.path())
    return out


# --- what the kernel shows (docs/image-format.md, "Tree rewrite", "Inode
# order", "Inode records") -------------------------------------------------

class Expect:
    """Expected view of one inode through a plain EROFS mount."""

    def __init__(self):
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.nlink = 1
        self.size = None        # None: not compared (directories)
        self.mtime_ns = 0
        self.rdev = None        # (major, minor) for devices
        self.xattrs = {}
        self.content = None     # bytes to compare, or None
        self.target = None      # symlink target
        self.children = None    # dict name -> Expect for directories
        self.key = None         # identity: equal keys must share st_ino
        self.lookup_errno = None  # lstat must fail with this errno


def kernel_dev(rdev32):
    """Split the 32-bit stored device number as the kernel decodes it."""
    major = (rdev32 & 0xFFF00) >> 8
    minor = (rdev32 & 0xFF) | ((rdev32 >> 12) & 0xFFF00)
    return (major, minor)


def _is_whiteout(n):
    return n.ftype == S_IFCHR and (n.rdev & U32) == 0


def expected_view(root, version):
    """Map the parsed dump to the tree the kernel shows for an image of the
    given composefs format version (0 or 1)."""
    exp = {}

    def build(n):
        e = Expect()
        e.key = id(n)
        e.uid, e.gid = n.uid, n.gid
        e.mtime_ns = n.mtime_sec * 1000000000 + n.mtime_nsec
        e.nlink = n.nlink
        e.mode = n.mode & 0xFFFF
        for k, v in n.xattrs.items():
            # 7.2: user trusted.overlay.* keys are stored escaped
            if k.startswith(b"trusted.overlay."):
                k = b"trusted.overlay.overlay." + k[len(b"trusted.overlay."):]
            e.xattrs[k] = v
        t = n.ftype
        if t == S_IFREG:
            e.size = n.size
            if n.content is not None:
                e.content = n.content
            elif n.size > 0:
                # 7.3 external file: metacopy, redirect; content not readable
                e.xattrs[b"trusted.overlay.metacopy"] = (
                    b"\x00\x24\x00\x01" + n.digest if n.digest else b"")
                if n.payload:
                    e.xattrs[b"trusted.overlay.redirect"] = b"/" + n.payload
            else:
                e.content = b""
        elif t == S_IFLNK:
            e.size = len(n.payload)
            e.target = n.payload
        elif t == S_IFDIR:
            e.children = {}
        elif t in (S_IFCHR, S_IFBLK):
            e.size = 0
            e.rdev = kernel_dev(n.rdev & U32)
        else:
            e.size = 0
        return e

    for n in walk(root):
        if n.link is None:
            exp[id(n)] = build(n)

    # 7.4 whiteouts, and tree shape
    for n in walk(root):
        if n.parent is None:
            continue
        pe = exp[id(n.parent)]
        r = n.real()
        pe.children[n.name] = exp[id(r)]
        if n.link is None and _is_whiteout(n):
            e = exp[id(n)]
            e.mode = (e.mode & ~S_IFMT & 0xFFFF) | S_IFREG
            e.size = 0
            e.rdev = None
            e.content = b""
            e.xattrs[b"trusted.overlay.overlay.whiteout"] = b""
            e.xattrs[b"user.overlay.whiteout"] = b""
            pe.xattrs[b"trusted.overlay.overlay.whiteouts"] = b""
            pe.xattrs[b"user.overlay.whiteouts"] = b""
            if version >= 1:
                pe.xattrs[b"trusted.overlay.overlay.opaque"] = b"x"
                pe.xattrs[b"user.overlay.opaque"] = b"x"

    # 8: directory nlink
    for n in walk(root):
        if n.link is None and n.ftype == S_IFDIR:
            e = exp[id(n)]
            e.nlink = 2 + sum(1 for c in n.children.values()
                              if c.link is None and c.ftype == S_IFDIR)

    # 7.6 root finalization
    re_ = exp[id(root)]
    re_.xattrs[b"trusted.overlay.opaque"] = b"y"
    selinux = re_.xattrs.get(b"security.selinux")
    for i in range(256):
        name = b"%02x" % i
        if name in re_.children:
            continue
        w = Expect()
        w.key = ("root-whiteout", i)
        w.mode = S_IFCHR | 0o644
        w.uid, w.gid, w.mtime_ns = re_.uid, re_.gid, re_.mtime_ns
        w.nlink = 1
        w.size = 0
        w.rdev = (0, 0)
        if selinux is not None:
            w.xattrs[b"security.selinux"] = selinux
        re_.children[name] = w
    return exp[id(root)]


# --- comparing with a mounted tree -------------------------------------------

def _visible_xattr(key):
    """EROFS lists only xattrs with a known name prefix (docs/image-format.md,
    "Name prefixes")."""
    return key.startswith((b"user.", b"trusted.", b"security.",
                           b"system.posix_acl_access",
                           b"system.posix_acl_default"))


def compare_mount(mnt, root_exp, errors, limit=50):
    """Walk the mount at `mnt` and compare with `root_exp`.

    Appends human-readable mismatch descriptions to `errors` (at most
    `limit`).  Returns the number of inodes checked."""
    ino_of_key = {}
    key_of_ino = {}
    count = 0

    def err(path, msg):
        if len(errors) < limit:
            errors.append("%s: %s" % (path.decode("utf-8", "backslashreplace"),
                                      msg))

    stack = [(b"/", os.fsencode(mnt), root_exp)]
    while stack:
        rel, full, e = stack.pop()
        count += 1
        try:
            st = os.lstat(full)
        except OSError as ex:
            if ex.errno != e.lookup_errno:
                err(rel, "lstat failed: %s" % ex)
            continue
        if e.lookup_errno is not None:
            err(rel, "lstat succeeded, expected %s"
                % os.strerror(e.lookup_errno))
            continue
        # hard links: equal identity <=> equal inode number
        if e.key in ino_of_key:
            if ino_of_key[e.key] != st.st_ino:
                err(rel, "hard link has inode %d, expected %d"
                    % (st.st_ino, ino_of_key[e.key]))
        else:
            ino_of_key[e.key] = st.st_ino
        if st.st_ino in key_of_ino and key_of_ino[st.st_ino] != e.key:
            err(rel, "shares inode %d with an unrelated entry" % st.st_ino)
        key_of_ino.setdefault(st.st_ino, e.key)

        if st.st_mode != e.mode:
            err(rel, "mode %o, expected %o" % (st.st_mode, e.mode))
            continue
        if st.st_uid != e.uid or st.st_gid != e.gid:
            err(rel, "owner %d:%d, expected %d:%d"
                % (st.st_uid, st.st_gid, e.uid, e.gid))
        if st.st_nlink != e.nlink:
            err(rel, "nlink %d, expected %d" % (st.st_nlink, e.nlink))
        if st.st_mtime_ns != e.mtime_ns:
            err(rel, "mtime %d ns, expected %d ns" % (st.st_mtime_ns, e.mtime_ns))
        if e.size is not None and st.st_size != e.size:
            err(rel, "size %d, expected %d" % (st.st_size, e.size))
        if e.rdev is not None:
            got = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if got != e.rdev:
                err(rel, "rdev %d:%d, expected %d:%d" % (got + e.rdev))

        _compare_xattrs(rel, full, st, e, err)

        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            if target != e.target:
                err(rel, "symlink target %r, expected %r" % (target, e.target))
        elif stat.S_ISREG(st.st_mode) and e.content is not None:
            try:
                with open(full, "rb") as f:
                    data = f.read()
                if data != e.content:
                    err(rel, "content differs (%d bytes read, %d expected)"
                        % (len(data), len(e.content)))
            except OSError as ex:
                err(rel, "read failed: %s" % ex)
        elif stat.S_ISDIR(st.st_mode):
            names = set(os.listdir(full))
            want = set(e.children)
            for extra in sorted(names - want)[:5]:
                err(rel, "unexpected entry %r" % extra)
            for miss in sorted(want - names)[:5]:
                err(rel, "missing entry %r" % miss)
            for name in sorted(names & want, reverse=True):
                sub = rel.rstrip(b"/") + b"/" + name
                stack.append((sub, os.path.join(full, name), e.children[name]))
    return count


def _compare_xattrs(rel, full, st, e, err):
    want = {k: v for k, v in e.xattrs.items() if _visible_xattr(k)}
    try:
        names = [os.fsencode(k) for k in os.listxattr(full, follow_symlinks=False)]
    except OSError as ex:
        err(rel, "listxattr failed: %s" % ex)
        return
    if sorted(names) != sorted(want):
        err(rel, "xattr names %r, expected %r" % (sorted(names), sorted(want)))
    # user.* is only readable on regular files and directories, and the VFS
    # interprets ACL values; compare the values everywhere else.
    readable_user = stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
    for k in names:
        if k not in want:
            continue
        if k.startswith(b"system.") or k == b"security.capability":
            continue
        if k.startswith(b"user.") and not readable_user:
            continue
        try:
            v = os.getxattr(full, k, follow_symlinks=False)
        except OSError as ex:
            # A name the writer lengthened past XATTR_NAME_MAX by escaping
            # (trusted.overlay.X -> trusted.overlay.overlay.X) is listed but
            # cannot be read back through the VFS.
            if len(k) > 255 and ex.errno == errno.ERANGE:
                continue
            # Through overlayfs such a name shows unescaped; overlayfs reads
            # it under the escaped name, too long, and fails EOPNOTSUPP.
            if k.startswith(b"trusted.overlay.") and len(k) + 8 > 255 and \
                    ex.errno == errno.EOPNOTSUPP:
                continue
            err(rel, "getxattr %r failed: %s" % (k, ex))
            continue
        if v != want[k]:
            err(rel, "xattr %r = %r, expected %r" % (k, v[:80], want[k][:80]))
