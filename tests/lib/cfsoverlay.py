# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""What a composefs mount shows, for the tests that mount images for real.

A composefs mount is overlayfs over the EROFS image, with the object
directories as data-only layers (docs/design.md, "Mount steps").
composefs-fuse must show the same.  This module derives that view from the
plain EROFS view that cfsdump.expected_view() predicts, so both kinds of
mount are checked with cfsdump.compare_mount(), and it can also snapshot a
mounted tree so that two mounts of one image can be compared with each
other.

What overlayfs changes, checked on Linux 6.18 with the reference images:
  * trusted.overlay.* xattrs of the image belong to overlayfs and are
    hidden (metacopy, redirect, the root's opaque=y); escaped ones,
    trusted.overlay.overlay.X, are shown as trusted.overlay.X;
  * the root's char 0/0 whiteouts 00..ff are whiteouts: not listed, and a
    lookup fails with ENOENT;
  * an input whiteout is stored escaped (docs/image-format.md, "Input
    whiteouts"), so it is NOT a whiteout in the composefs mount: it shows
    as an empty regular file with trusted.overlay.whiteout and
    user.overlay.whiteout, in a directory with trusted.overlay.whiteouts
    and user.overlay.whiteouts (and, for format version 1, trusted.overlay.opaque=x and
    user.overlay.opaque=x).  user.overlay.* xattrs are shown as stored;
  * an external file is read from the object its redirect names; without a
    redirect the lookup fails with EIO ("metacopy with no lower data"), and
    a redirect with an empty component fails the lookup with EINVAL.
"""

import errno
import hashlib
import os
import stat


OVL = b"trusted.overlay."
OVL_ESCAPED = b"trusted.overlay.overlay."


def overlay_xattrs(xattrs):
    """The xattrs overlayfs shows for an inode whose EROFS xattrs are
    `xattrs` (dict bytes -> bytes)."""
    out = {}
    for k, v in xattrs.items():
        if k.startswith(OVL_ESCAPED):
            out[OVL + k[len(OVL_ESCAPED):]] = v
        elif not k.startswith(OVL):
            out[k] = v
    return out


def redirect_valid(redirect):
    """overlayfs accepts an absolute redirect without empty components."""
    return redirect.startswith(b"/") and all(redirect[1:].split(b"/"))


def _inodes(root_exp):
    """Every Expect of a view once (hard links share theirs)."""
    seen = set()
    stack = [root_exp]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if e.children is not None:
            stack.extend(e.children.values())


def overlay_view(root_exp, read_object=None):
    """Rewrite cfsdump.expected_view()'s tree in place into the composefs
    mount's view and return it.

    read_object(path) gives the bytes of the backing file at `path`
    (relative to the object directories), or None when the test does not
    want that file's content compared (it is absent, or too large)."""
    for e in list(_inodes(root_exp)):
        redirect = e.xattrs.get(OVL + b"redirect")
        external = OVL + b"metacopy" in e.xattrs
        e.xattrs = overlay_xattrs(e.xattrs)
        if external:
            if redirect is None:
                e.lookup_errno = errno.EIO
            elif not redirect_valid(redirect):
                e.lookup_errno = errno.EINVAL
            elif read_object is not None:
                e.content = read_object(redirect[1:])
        if e.children is not None:
            for name in list(e.children):
                c = e.children[name]
                if isinstance(c.key, tuple) and c.key[0] == "root-whiteout":
                    del e.children[name]
    return root_exp


def external_files(root_exp):
    """(redirect path, size) of every external file with a usable redirect
    in an EROFS view (before overlay_view())."""
    out = []
    for e in _inodes(root_exp):
        r = e.xattrs.get(OVL + b"redirect")
        if OVL + b"metacopy" in e.xattrs and r is not None and redirect_valid(r):
            out.append((r[1:], e.size))
    return out


def object_bytes(path, size):
    """Deterministic content for a test object."""
    seed = hashlib.sha256(path + b"\0" + str(size).encode()).digest()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


# --- comparing two mounts ----------------------------------------------------

# Names no image here has: how reading them fails is part of the view.
ABSENT_XATTRS = ("user.absent", "trusted.absent", "security.selinux",
                 "system.posix_acl_access", "system.absent", "other.absent")


def _xattr(path, name):
    """The value of the xattr @name of @path, or the errno name of the
    failure to read it."""
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as ex:
        return errno.errorcode.get(ex.errno, ex.errno)


def snapshot(mnt, read_limit=1 << 20):
    """Everything a user can observe of the tree at `mnt`, as a dict from
    relative path to a tuple, inode numbers replaced by the first path that
    had them (so hard links compare, whatever the numbering).  Errors are
    recorded as values, so two mounts failing the same way compare equal."""
    out = {}
    first_path = {}
    stack = [b""]
    root = os.fsencode(mnt)
    while stack:
        rel = stack.pop()
        full = root + rel if rel else root
        try:
            st = os.lstat(full)
        except OSError as ex:
            out[rel] = ("lstat", errno.errorcode.get(ex.errno, ex.errno))
            continue
        ident = first_path.setdefault(st.st_ino, rel)
        rec = {
            "ident": ident,
            "mode": st.st_mode,
            "nlink": st.st_nlink,
            "owner": (st.st_uid, st.st_gid),
            "size": st.st_size if not stat.S_ISDIR(st.st_mode) else None,
            "mtime": st.st_mtime_ns,
            "ctime": st.st_ctime_ns,
            "rdev": st.st_rdev if stat.S_ISCHR(st.st_mode) or
            stat.S_ISBLK(st.st_mode) else None,
        }
        try:
            names = sorted(os.listxattr(full, follow_symlinks=False))
            rec["xattrs"] = tuple(names)
            rec["xattr_values"] = tuple(_xattr(full, k) for k in names)
        except OSError as ex:
            rec["xattrs"] = errno.errorcode.get(ex.errno, ex.errno)
        rec["absent_xattrs"] = tuple(_xattr(full, k) for k in ABSENT_XATTRS)
        if stat.S_ISLNK(st.st_mode):
            rec["target"] = os.readlink(full)
        elif stat.S_ISREG(st.st_mode):
            rec["content"] = _read_summary(full, st.st_size, read_limit)
        elif stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(full))
            except OSError as ex:
                rec["entries"] = errno.errorcode.get(ex.errno, ex.errno)
            else:
                rec["entries"] = tuple(names)
                for n in reversed(names):
                    stack.append(rel + b"/" + n)
        out[rel or b"/"] = rec
    return out


def _read_summary(path, size, limit):
    """sha256 of the content, or of the first `limit` bytes plus the data
    and hole positions for large files; or the errno of the failure."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as ex:
        return ("open", errno.errorcode.get(ex.errno, ex.errno))
    try:
        h = hashlib.sha256()
        left = min(size, limit)
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            h.update(b)
            left -= len(b)
        seeks = []
        for off in (0, size // 2, max(size - 1, 0), size, size + 1):
            for whence in (os.SEEK_DATA, os.SEEK_HOLE):
                try:
                    seeks.append(os.lseek(fd, off, whence))
                except OSError as ex:
                    seeks.append(errno.errorcode.get(ex.errno, ex.errno))
        return (h.hexdigest(), tuple(seeks))
    except OSError as ex:
        return ("read", errno.errorcode.get(ex.errno, ex.errno))
    finally:
        os.close(fd)


def _short(v, n=120):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def diff_snapshots(a, b, limit=30):
    """Human-readable differences between two snapshots."""
    out = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        p = path.decode("utf-8", "backslashreplace")
        if x is None or y is None:
            out.append("%s: only in %s" % (p, "first" if y is None else "second"))
        elif isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if x.get(k) == y.get(k):
                    continue
                if k == "xattr_values" and x.get("xattrs") == y.get("xattrs"):
                    for name, u, v in zip(x["xattrs"], x[k], y[k]):
                        if u != v:
                            out.append("%s: xattr %s %r != %r" % (
                                p, name, _short(u), _short(v)))
                else:
                    out.append("%s: %s %r != %r" % (
                        p, k, _short(x.get(k)), _short(y.get(k))))
        else:
            out.append("%s: %r != %r" % (p, x, y))
        if len(out) >= limit:
            out.append("...")
            break
    return out
