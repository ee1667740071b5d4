# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the directory-mode tests of mkcomposefs (suite 'build').

- make_tree(): cfstree.make_scan_tree(), the trees of these tests;
- expected_dump(): what `composefs-info dump` must print for the image of
  such a tree, computed by an independent walk of the source
  (docs/design.md, "Directory scan", "Content pass"; docs/image-format.md,
  "Inode order", "Directories", "What the reader rebuilds"; docs/dumpfile.md,
  "Printing");
- check_store(): every object of an object store is named by the digest
  of its content, mode 0644, and there is one per distinct content.
"""

import os
import stat

import cfsdump
import cfsverity
from cfstree import make_scan_tree as make_tree  # noqa: F401
from cfstest import Failure, check, main, run, skip  # noqa: F401

BLOCK = 4096


# ---- The source tree generator ------------------------------------------------------

# ---- The expected dump -------------------------------------------------------------


def escape(data, eq=False, lone_dash=False):
    """composefs-dump(5) escaping, as text."""
    return cfsdump.escape(data, eq=eq, lone_dash=lone_dash).decode()


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
