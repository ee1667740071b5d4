#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Writes an operating-system-like composefs dumpfile to stdout.

usage: gen-dump.py [--order sorted|tar|creation] [--ima] N SEED

Exactly N entries (lines), deterministic for a given N and SEED: a tree of
nested directories (/usr/lib/..., up to about eight levels, directories of
a few to a few thousand entries), mostly external regular files with
fs-verity digests and xx/yyy... payloads (some sharing a content), small
inline files, empty files, symlinks, a few hard links, and an SELinux label
on every entry. About 240 bytes a line.

--order sorted (default): depth first, parents before children, siblings
    sorted by name, as composefs-info dump prints them.
--order tar: depth first, siblings in a random order, as a tar stream of
    the tree often has them.
--order creation: every entry after its parent directory, but otherwise
    in a random order, so that the entries of different directories are
    interleaved (the order files were created in, as some producers keep).
--ima: a distinct security.ima value (an IMA v2 signature, 260 to 300
    bytes, binary, printed with \\x escapes) on every regular file; the
    line then grows by about 1 KB.

The orders hold the same entries with the same attributes: only the order
of the lines differs.
"""

import argparse
import random
import sys

MAX_DEPTH = 8
MAX_DIRECT = 3000

LABELS = {
    "usr": "system_u:object_r:usr_t:s0",
    "lib": "system_u:object_r:lib_t:s0",
    "bin": "system_u:object_r:bin_t:s0",
    "etc": "system_u:object_r:etc_t:s0",
    "var": "system_u:object_r:var_t:s0",
    "share": "system_u:object_r:usr_t:s0",
    "man": "system_u:object_r:man_t:s0",
    "locale": "system_u:object_r:locale_t:s0",
    "so": "system_u:object_r:shlib_t:s0",
    "root": "system_u:object_r:root_t:s0",
}

STEMS = ("core", "util", "net", "glib", "python", "perl", "gtk", "xml", "ssl",
         "crypto", "systemd", "dbus", "font", "icon", "theme", "locale", "kernel",
         "module", "driver", "firmware", "audio", "video", "print", "input", "shell",
         "config", "common", "base", "extra", "tools", "devel", "data", "cache",
         "policy", "rules", "unit", "service", "socket", "timer", "target", "mount")
SUFFIXES = (".so", ".so.1", ".so.2.4.0", ".py", ".pyc", ".h", ".conf", ".xml",
            ".json", ".txt", ".gz", ".png", ".svg", ".mo", ".service", ".rules",
            ".pl", ".pm", ".ko.xz", ".bin", "", "", ".1.gz", ".desktop", ".policy")
TOP = (("usr", 0.78), ("var", 0.08), ("opt", 0.07), ("etc", 0.04), ("boot", 0.01),
       ("root", 0.005), ("srv", 0.005), ("home", 0.005), ("mnt", 0.005))


# Bytes as the dumpfile prints them in an xattr value.
ESCAPED = tuple(chr(b) if 0x21 <= b <= 0x7e and b not in (0x5c, 0x3d) else "\\x%02x" % b
                for b in range(256))


class Gen:
    def __init__(self, n, seed, order="sorted", ima=False):
        self.rnd = random.Random(seed)
        # Separate streams, so that the order and the IMA values never
        # change the entries themselves.
        self.order_rnd = random.Random(seed * 7919 + 1)
        self.ima_rnd = random.Random(seed * 7919 + 2) if ima else None
        self.order = order
        self.n = n
        # --order tar/creation: the lines are generated in sorted order and
        # kept, with the indexes of each directory's children, then
        # written in the other order.
        self.lines = []
        self.kids = []
        self.out = []
        self.out_bytes = 0
        self.recent = []     # (digest, size) of earlier files, for duplicates
        self.links = []      # (path, attrs) of earlier regular files
        self.emitted = 0

    def flush(self, force=False):
        if force or self.out_bytes > (1 << 20):
            sys.stdout.write("".join(self.out))
            self.out = []
            self.out_bytes = 0

    def emit(self, line, parent=None):
        """Writes (or, in creation order, keeps) @line; returns its index."""
        idx = self.emitted
        self.emitted += 1
        if self.order != "sorted":
            self.lines.append(line)
            self.kids.append(None)
            if parent is not None:
                if self.kids[parent] is None:
                    self.kids[parent] = []
                self.kids[parent].append(idx)
            return idx
        self.out.append(line)
        self.out_bytes += len(line)
        self.flush()
        return idx

    def emit_reordered(self):
        """Writes the kept lines in tar or creation order."""
        rnd = self.order_rnd
        ready = [0]
        while ready:
            if self.order == "creation":
                # Any entry whose parent is out.
                i = rnd.randrange(len(ready))
                ready[i], ready[-1] = ready[-1], ready[i]
                idx = ready.pop()
            else:
                # Depth first: the next child of the latest directory.
                idx = ready.pop()
            line = self.lines[idx]
            self.lines[idx] = None
            self.out.append(line)
            self.out_bytes += len(line)
            self.flush()
            if self.kids[idx]:
                if self.order == "tar":
                    rnd.shuffle(self.kids[idx])
                ready.extend(self.kids[idx])
                self.kids[idx] = None

    def ima(self):
        """ security.ima=VALUE, or nothing."""
        if self.ima_rnd is None:
            return ""
        rnd = self.ima_rnd
        size = rnd.randrange(260, 301)
        # Signature v2, SHA-256, a key id, the signature's length, the
        # signature (random here, so different on every file).
        sig = bytes((3, 2, 4)) + rnd.randbytes(4) + (size - 9).to_bytes(2, "big") + \
            rnd.randbytes(size - 9)
        return " security.ima=" + "".join(map(ESCAPED.__getitem__, sig))

    def name(self, used, is_dir):
        rnd = self.rnd
        while True:
            stem = rnd.choice(STEMS)
            if rnd.random() < 0.35:
                stem += "-" + rnd.choice(STEMS)
            if rnd.random() < 0.5:
                stem += "%d" % rnd.randrange(100)
            if not is_dir:
                stem += rnd.choice(SUFFIXES)
            if stem not in used:
                used.add(stem)
                return stem

    def mtime(self, base):
        rnd = self.rnd
        sec = base + rnd.randrange(3600)
        if rnd.random() < 0.5:
            return "%d.0" % sec
        return "%d.%d" % (sec, rnd.randrange(1000000000))

    def label(self, path):
        if ".so" in path:
            return LABELS["so"]
        for part in ("bin", "man", "locale", "lib", "share", "etc", "var"):
            if "/" + part in path:
                return LABELS[part]
        return LABELS["usr"]

    def split_budget(self, total, parts):
        """Splits @total into @parts positive integers, unevenly."""
        rnd = self.rnd
        weights = [rnd.paretovariate(2.0) for _ in range(parts)]
        s = sum(weights)
        sizes = [max(1, int(total * w / s)) for w in weights]
        diff = total - sum(sizes)
        i = 0
        while diff != 0:
            j = i % parts
            if diff > 0:
                sizes[j] += 1
                diff -= 1
            elif sizes[j] > 1:
                sizes[j] -= 1
                diff += 1
            i += 1
        return sizes

    def file_line(self, path, base):
        """A non-directory entry (everything after PATH)."""
        rnd = self.rnd
        label = self.label(path)
        mt = self.mtime(base)
        r = rnd.random()
        mode = "100755" if "/bin" in path else "100644"
        if r < 0.79:
            if self.recent and rnd.random() < 0.06:
                digest, size = rnd.choice(self.recent)
            else:
                digest = "%064x" % rnd.getrandbits(256)
                size = int(rnd.lognormvariate(9, 2)) + 65
            if len(self.recent) < 4096:
                self.recent.append((digest, size))
            else:
                self.recent[rnd.randrange(4096)] = (digest, size)
            attrs = "%d %s 1 0 0 0 %s %s/%s - %s security.selinux=%s%s" % (
                size, mode, mt, digest[:2], digest[2:], digest, label, self.ima())
            if rnd.random() < 0.01:
                self.links.append((path, attrs))
            return attrs
        if r < 0.88:
            target = "../" * rnd.randrange(3) + rnd.choice(STEMS) + rnd.choice(SUFFIXES)
            return "%d 120777 1 0 0 0 %s %s - - security.selinux=%s" % (
                len(target), mt, target, label)
        if r < 0.96:
            size = rnd.randrange(1, 65)
            text = "".join(rnd.choice("abcdefgh=# 12\n") for _ in range(size))
            content = text.replace("\\", "\\\\").replace("\n", "\\n").replace(" ", "\\x20")
            return "%d %s 1 0 0 0 %s - %s - security.selinux=%s%s" % (
                size, mode, mt, content, label, self.ima())
        if r < 0.999 or not self.links:
            return "0 %s 1 0 0 0 %s - - - security.selinux=%s%s" % (
                mode, mt, label, self.ima())
        # A second name for an earlier file: the line shows the target's
        # attributes, as the printer writes it.
        target, attrs = rnd.choice(self.links)
        size, mode, rest = attrs.split(" ", 2)
        fields = rest.split(" ")
        fields[5] = target
        return "%s @%s %s" % (size, mode, " ".join(fields))

    def gen_dir(self, path, budget, depth, base, parent=None):
        """Emits exactly @budget lines: the directory and its subtree."""
        rnd = self.rnd
        label = LABELS["root"] if path == "/" else self.label(path)
        me = self.emit("%s 4096 40755 2 0 0 0 %d.0 - - - security.selinux=%s\n" %
                       (path, base, label), parent)
        rest = budget - 1
        if rest == 0:
            return
        prefix = "" if path == "/" else path
        used = set()
        if depth == 0:
            names = [t[0] for t in TOP]
            weights = [t[1] for t in TOP]
            if rest < len(names) * 4:
                self.gen_files(prefix, rest, used, base, me)
                return
            sizes = [max(1, int(rest * w)) for w in weights]
            sizes[0] += rest - sum(sizes)
            subdirs = list(zip(names, sizes))
            files = 0
        elif rest <= 40 or depth >= MAX_DEPTH and rest <= MAX_DIRECT:
            self.gen_files(prefix, rest, used, base, me)
            return
        else:
            if rnd.random() < 0.03:
                files = rnd.randrange(500, MAX_DIRECT)
            else:
                files = int(rnd.lognormvariate(3.2, 1.0))
            files = max(1, min(files, rest - 1, MAX_DIRECT))
            left = rest - files
            nsub = max(1, min(left // 10 + 1, int(rnd.lognormvariate(2.0, 0.8)) + 1))
            if depth >= MAX_DEPTH:
                nsub = max(nsub, left // MAX_DIRECT + 1)
            subdirs = [(self.name(used, True), s)
                       for s in self.split_budget(left, min(nsub, left))]
        entries = [(n, None) for n in (self.name(used, False) for _ in range(files))]
        entries += subdirs
        entries.sort(key=lambda e: e[0].encode())
        for name, sub in entries:
            child = prefix + "/" + name
            if sub is None:
                self.emit("%s %s\n" % (child, self.file_line(child, base)), me)
            else:
                self.gen_dir(child, sub, depth + 1, base + rnd.randrange(-86400, 86400), me)

    def gen_files(self, prefix, count, used, base, parent):
        names = sorted((self.name(used, False) for _ in range(count)),
                       key=lambda s: s.encode())
        for name in names:
            child = prefix + "/" + name
            self.emit("%s %s\n" % (child, self.file_line(child, base)), parent)


def main():
    ap = argparse.ArgumentParser(description="Writes an OS-like composefs dumpfile.")
    ap.add_argument("--order", choices=("sorted", "tar", "creation"), default="sorted")
    ap.add_argument("--ima", action="store_true",
                    help="a distinct security.ima value on every regular file")
    ap.add_argument("n", type=int)
    ap.add_argument("seed", type=int)
    args = ap.parse_args()
    n = args.n
    seed = args.seed
    if n < 1:
        sys.stderr.write("gen-dump.py: N must be at least 1\n")
        return 2
    sys.setrecursionlimit(10000)
    g = Gen(n, seed, args.order, args.ima)
    g.gen_dir("/", n, 0, 1690000000)
    if args.order != "sorted":
        g.emit_reordered()
    g.flush(True)
    if g.emitted != n:
        sys.stderr.write("gen-dump.py: internal error: %d lines for %d\n" % (g.emitted, n))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
