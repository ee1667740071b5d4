#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Resource bounds on hostile input: deep structures are walked without
recursion, work stays proportional to the input, and memory is bounded by
the size of the input, however large the sizes and counts it claims.

    test-bounds.py --tools DIR --fuzz DIR --seeds DIR --make-tree PROG [--sanitized]

* A chain of 1,000,000 directories in an image (BOUNDS_DEPTH overrides):
  composefs-info objects walks it, composefs-dump rewrites it to the same
  bytes, and the FUSE view is built and checked; composefs-info ls and dump,
  whose output grows with the square of the depth, on a chain of 5,000.
* A chain of 2,000 directories in a dumpfile (its size grows with the square
  of the depth too) through mkcomposefs and back.
* Hard link chains in dumpfiles, in every order (each line linking to the
  next, to the previous, and many links to the head of a long chain), and a
  directory of 200,000 entries listed sorted, backwards and shuffled: the
  same image whatever the order, and (without sanitizers) 1,000,000 shuffled
  entries within 20 s of CPU (quadratic behaviour takes about a minute).
* Images claiming huge sizes and counts, and hard link bombs: without
  sanitizers, the peak memory of composefs-info stays within a fixed
  allowance plus a small multiple of the image size; the same for
  mkcomposefs and the size of a dumpfile.
"""

import os
import random
import struct
import subprocess
import tempfile
import time

import cfsimage
import cfsmutate
import cfstest

ROOT = b"/ 4096 40755 2 0 0 0 0.0 - - -\n"
MiB = 1 << 20


class Runner:
    def __init__(self, sanitized, make_tree):
        self.sanitized = sanitized
        self.make_tree = make_tree
        self.problems = []
        self.checks = 0

    def run(self, name, args, tool, timeout=None, want_ok=True,
            stdout=subprocess.DEVNULL):
        """Runs @args and judges it; returns (exit status or None, stdout
        when @stdout is None)."""
        self.checks += 1
        start = time.monotonic()
        limit = timeout or cfsmutate.TIMEOUT
        try:
            p = subprocess.run(args, stdout=subprocess.PIPE if stdout is None else stdout,
                               stderr=subprocess.PIPE, timeout=limit)
        except subprocess.TimeoutExpired:
            self.problems.append("%s: no answer within %d s" % (name, limit))
            return None, None
        problems = cfsmutate.judge(name, args, p, tool)
        self.problems += problems
        if not problems and want_ok and p.returncode != 0:
            self.problems.append("%s: failed: %s" % (name, p.stderr.decode(errors="replace")))
        print("%-52s %6.2f s  exit %d" % (name, time.monotonic() - start, p.returncode))
        return p.returncode, p.stdout

    def cpu_time(self, name, args, limit):
        """Runs @args, which must succeed within @limit seconds of CPU."""
        self.checks += 1
        pid = os.posix_spawn(args[0], args, os.environ)
        _, status, ru = os.wait4(pid, 0)
        cpu = ru.ru_utime + ru.ru_stime
        print("%-52s %6.2f s of CPU (limit %d s)" % (name, cpu, limit))
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            self.problems.append("%s: failed (status %#x)" % (name, status))
        if cpu > limit:
            self.problems.append("%s: %.1f s of CPU, over %d s" % (name, cpu, limit))

    def peak_rss(self, name, args, limit):
        """Peak RSS of @args, checked against @limit unless sanitized."""
        self.checks += 1
        try:
            r = subprocess.run([self.make_tree, "rss"] + args, capture_output=True,
                               timeout=cfsmutate.TIMEOUT)
        except subprocess.TimeoutExpired:
            self.problems.append("%s: no answer within %d s" % (name, cfsmutate.TIMEOUT))
            return
        rc, kib = (int(x) for x in r.stdout.split())
        rss = kib * 1024
        print("%-52s peak %6.1f MiB (limit %.1f MiB)%s" % (
            name, rss / MiB, limit / MiB, ", not enforced: sanitizers" if self.sanitized else ""))
        if rc not in (0, 1):
            self.problems.append("%s: exit status %d" % (name, rc))
        if not self.sanitized and rss > limit:
            self.problems.append("%s: peak memory %.1f MiB over %.1f MiB" % (
                name, rss / MiB, limit / MiB))


def chain_dump(depth):
    out = [ROOT]
    path = b""
    for _ in range(depth):
        path += b"/d"
        out.append(path + b" 4096 40755 2 0 0 0 0.0 - - -\n")
    return b"".join(out)


def link_chain_dumps(n):
    """Hard link chains in the orders that cost the most to follow."""
    line = b"/l%07d 0 @100644 1 0 0 0 0.0 /%s - -\n"
    fwd = [ROOT, b"/real 0 100644 1 0 0 0 0.0 - - -\n"]
    fwd += [line % (i, b"l%07d" % (i + 1) if i + 1 < n else b"real") for i in range(n)]
    back = [ROOT, b"/real 0 100644 1 0 0 0 0.0 - - -\n"]
    back += [line % (i, b"l%07d" % (i - 1) if i > 0 else b"real") for i in range(n)]
    # A backward chain, with as many links to its head listed first (they
    # are resolved last, after the chain is complete).
    half = n // 2
    head = [ROOT, b"/real 0 100644 1 0 0 0 0.0 - - -\n"]
    head += [b"/h%07d 0 @100644 1 0 0 0 0.0 /l%07d - -\n" % (i, half - 1)
             for i in range(half)]
    head += [line % (i, b"l%07d" % (i - 1) if i > 0 else b"real") for i in range(half)]
    return {"forward": b"".join(fwd), "backward": b"".join(back),
            "to-head": b"".join(head)}


def sibling_dumps(n, rng):
    """One big directory, and subdirectories with a child each, listed
    sorted, backwards and shuffled (parents always before children)."""
    names = [b"e%07d" % i for i in range(n)]
    dirs = set(names[::50])

    def text(order):
        out = [ROOT]
        for name in order:
            if name in dirs:
                out.append(b"/" + name + b" 4096 40755 2 0 0 0 0.0 - - -\n")
                out.append(b"/" + name + b"/c 0 100644 1 0 0 0 0.0 - - -\n")
            else:
                out.append(b"/" + name + b" 0 100644 1 0 0 0 0.0 - - -\n")
        return b"".join(out)

    shuffled = list(names)
    rng.shuffle(shuffled)
    dup = text(shuffled) + b"/" + shuffled[n // 2] + b" 0 100644 1 0 0 0 0.0 - - -\n"
    return {"sorted": text(names), "backwards": text(names[::-1]),
            "shuffled": text(shuffled)}, dup


def huge_claims(seed_image, rng):
    """Variants of @seed_image whose inodes claim huge sizes and counts."""
    img = cfsimage.Image(seed_image)
    out = []
    for what in ("size", "icount", "shared", "dirsize"):
        data = bytearray(seed_image)
        for ino in img.inodes.values():
            if what == "size" or (what == "dirsize" and ino.type == 0o040000):
                off, fmt = ino.field("size")
                struct.pack_into(fmt, data, off, (1 << (8 * struct.calcsize(fmt))) - 1)
            elif what == "icount":
                struct.pack_into("<H", data, ino.off + 2, 0xffff)
            elif what == "shared" and ino.icount:
                data[ino.xattr_off + 4] = 255
        out.append((what, bytes(data)))
    return out


def main():
    a = cfsmutate.arguments(extra=[(("--make-tree",), {"required": True}),
                                   (("--sanitized",), {"action": "store_true"})])

    mk = os.path.join(a.tools, "mkcomposefs")
    info = os.path.join(a.tools, "composefs-info")
    dump = os.path.join(a.tools, "composefs-dump")
    view = os.path.join(a.fuzz, "fuzz-fuse-view-replay")
    cfsmutate.need((mk, info, dump, view, a.make_tree))
    depth = int(os.environ.get("BOUNDS_DEPTH", "1000000"))
    r = Runner(a.sanitized, a.make_tree)

    with tempfile.TemporaryDirectory(prefix="cfs-bounds-") as tmp:
        def path(name):
            return os.path.join(tmp, name)

        # -- Deep image --------------------------------------------------
        r.run("make-tree chain %d" % depth, [a.make_tree, "chain", str(depth), path("deep.cfs")],
              "make-tree", timeout=300)
        r.run("composefs-info objects (deep image)", [info, "objects", path("deep.cfs")],
              "composefs-info", timeout=300)
        r.run("composefs-dump (deep image)", [dump, path("deep.cfs"), path("deep2.cfs")],
              "composefs-dump", timeout=300)
        if open(path("deep.cfs"), "rb").read() != open(path("deep2.cfs"), "rb").read():
            r.problems.append("composefs-dump changed the deep image")
        os.unlink(path("deep2.cfs"))
        r.run("FUSE view (deep image)", [view, path("deep.cfs")], "fuzz-replay", timeout=300)
        os.unlink(path("deep.cfs"))

        r.run("make-tree chain 5000", [a.make_tree, "chain", "5000", path("deep5k.cfs")],
              "make-tree")
        for cmd in ("ls", "dump"):
            rc, out = r.run("composefs-info %s (depth 5000)" % cmd,
                               [info, cmd, path("deep5k.cfs")], "composefs-info",
                               stdout=None)
            lines = out.count(b"\n") if out is not None else -1
            want = 5000 if cmd == "ls" else 5001
            if rc == 0 and lines != want:
                r.problems.append("composefs-info %s printed %d lines, not %d" % (
                    cmd, lines, want))

        # -- Deep dumpfile -----------------------------------------------
        with open(path("deep.dump"), "wb") as f:
            f.write(chain_dump(2000))
        r.run("mkcomposefs (dumpfile depth 2000)",
              [mk, "--from-file", path("deep.dump"), path("deepd.cfs")], "mkcomposefs")
        rc, out = r.run("composefs-info dump (dumpfile depth 2000)",
                           [info, "dump", path("deepd.cfs")], "composefs-info", stdout=None)
        if rc == 0 and out.count(b"\n") != 2001:
            r.problems.append("the depth 2000 image does not dump 2001 lines")

        # -- Hard link chains --------------------------------------------
        n = int(os.environ.get("BOUNDS_LINKS", "100000"))
        images = []
        for kind, text in sorted(link_chain_dumps(n).items()):
            with open(path("links-%s.dump" % kind), "wb") as f:
                f.write(text)
            r.run("mkcomposefs (%d-link chain, %s)" % (n, kind),
                  [mk, "--from-file", path("links-%s.dump" % kind),
                   path("links-%s.cfs" % kind)], "mkcomposefs", timeout=120)
            images.append(path("links-%s.cfs" % kind))

        # -- Big directories out of order ---------------------------------
        rng = random.Random(1)
        n = int(os.environ.get("BOUNDS_SIBLINGS", "200000"))
        orders, dup = sibling_dumps(n, rng)
        images = {}
        for kind, text in sorted(orders.items()):
            with open(path("dir-%s.dump" % kind), "wb") as f:
                f.write(text)
            r.run("mkcomposefs (%d entries, %s)" % (n, kind),
                  [mk, "--from-file", path("dir-%s.dump" % kind), path("dir-%s.cfs" % kind)],
                  "mkcomposefs", timeout=120)
            if os.path.exists(path("dir-%s.cfs" % kind)):
                images[kind] = open(path("dir-%s.cfs" % kind), "rb").read()
        if len(set(images.values())) != 1 or len(images) != len(orders):
            r.problems.append("the order of a dumpfile's lines changed the image")
        if not a.sanitized:
            # The shuffled order at 1,000,000 entries: a few seconds of CPU;
            # inserting each entry into a sorted array took about a minute.
            big = int(os.environ.get("BOUNDS_BIG_DIR", "1000000"))
            orders = sibling_dumps(big, rng)[0]
            with open(path("big.dump"), "wb") as f:
                f.write(orders["shuffled"])
            del orders
            r.cpu_time("mkcomposefs (%d entries shuffled)" % big,
                       [mk, "--from-file", path("big.dump"), path("big.cfs")], 20)
            os.unlink(path("big.dump"))
        with open(path("dir-dup.dump"), "wb") as f:
            f.write(dup)
        r.run("mkcomposefs (%d entries shuffled, a duplicate)" % n,
              [mk, "--from-file", path("dir-dup.dump"), path("dir-dup.cfs")],
              "mkcomposefs", timeout=120, want_ok=False)
        if os.path.exists(path("dir-dup.cfs")):
            r.problems.append("a duplicate entry in a shuffled directory was accepted")

        # -- Memory --------------------------------------------------------
        seed = path("seed.cfs")
        subprocess.run([mk, "--from-file", os.path.join(a.seeds, "xattrs.dump"), seed],
                       check=True)
        for what, data in huge_claims(open(seed, "rb").read(), rng):
            with open(path("huge-%s.cfs" % what), "wb") as f:
                f.write(data)
            r.peak_rss("composefs-info dump (huge %s)" % what,
                       [info, "dump", path("huge-%s.cfs" % what)], 16 * MiB)
        r.run("make-tree links 200000", [a.make_tree, "links", "200000", path("bomb.cfs")],
              "make-tree")
        size = os.path.getsize(path("bomb.cfs"))
        r.peak_rss("composefs-info dump (200000 hard links, %d KiB)" % (size >> 10),
                   [info, "dump", path("bomb.cfs")], 16 * MiB + 16 * size)
        size = os.path.getsize(path("links-backward.dump"))
        r.peak_rss("mkcomposefs (%d KiB of hard link lines)" % (size >> 10),
                   [mk, "--from-file", path("links-backward.dump"), path("m.cfs")],
                   16 * MiB + 16 * size)

    return cfsmutate.report(r.problems, r.checks, "bound checks")


if __name__ == "__main__":
    cfstest.main(main)
