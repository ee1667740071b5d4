# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Random source trees and the comparison of a mounted image with its
source directory, shared by the kernel mount tests (tests/mount) and the
composefs-fuse tests (tests/fuse): both mounts must show every entry as
in the source (type, mode, owner, mtime, size, symlink target, device
number, xattrs, content)."""

import hashlib
import os
import random
import stat

from cfstest import Failure, check


# --- random trees --------------------------------------------------------------

OWNERS = (0, 1, 1000, 65534, 100000, 4000000000)
XATTR_NS = ("user.", "trusted.")


def random_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


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
        with open(p, "wb") as f:
            f.write(b"%d" % i)
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
                with open(path, "wb") as f:
                    f.write(data)
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
