#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Hostile images through the tools: thousands of truncated, bit-flipped and
precisely corrupted images (directory loops, nids out of range, xattr counts
and sizes that overflow, chunk formats and sizes past the end, names without
terminator, huge sizes) made from images mkcomposefs writes, run through
composefs-info (ls, dump, objects, with and without --filter),
composefs-dump, and in-process through the image reader's and the FUSE
view's fuzz targets. Each run must succeed or fail with one line naming the
problem; no crash, no sanitizer report, no hang, no output file left behind.

    test-mutate-images.py --tools DIR --fuzz DIR --seeds DIR [--count N] [--seed S]

Seeded and reproducible: the same seed gives the same images.
"""

import os
import random
import struct
import subprocess
import tempfile

import cfsimage
import cfsmutate
import cfstest

BOUNDS32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0xfff, 0x1000, 0x1001, 0x7fff, 0x8000,
            0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]
BOUNDS64 = BOUNDS32 + [1 << 32, (1 << 53) + 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def put(data, off, fmt, value):
    size = struct.calcsize(fmt)
    if off < 0 or off + size > len(data):
        return False
    mask = (1 << (8 * size)) - 1
    struct.pack_into(fmt.replace("q", "Q").replace("h", "H").replace("i", "I"),
                     data, off, value & mask)
    return True


def bound(rng, fmt):
    return rng.choice(BOUNDS64 if fmt.endswith("Q") or fmt.endswith("q") else BOUNDS32)


# ---- Mutators: each changes @data (a bytearray of the image described by
# @img) and returns a short description, or None when it does not apply.

def m_truncate(img, data, rng):
    cuts = [rng.randrange(len(data))]
    cuts += [i.off + rng.randrange(0, i.isz + 1) for i in img.inodes.values()]
    cuts += [c.off + rng.randrange(0, c.len + 1) for c in img.chunks]
    cut = rng.choice(cuts + [4095, 4096, 1024 + 64, 32])
    del data[cut:]
    return "truncate@%d" % cut


def m_bitflip(img, data, rng):
    end = min(len(data), max(i.tail_off for i in img.inodes.values()) + 64)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        pos = rng.randrange(end)
        data[pos] ^= 1 << rng.randrange(8)
    return "bitflip*%d" % flips


def m_bytes(img, data, rng):
    end = min(len(data), max(i.tail_off for i in img.inodes.values()) + 64)
    pos = rng.randrange(end)
    n = rng.randint(1, 16)
    for k in range(n):
        if pos + k < len(data):
            data[pos + k] = rng.choice([0, 0xff, 0x7f, 0x80, rng.randrange(256)])
    return "bytes@%d" % pos


def m_super(img, data, rng):
    field = rng.choice(["root_nid", "meta", "xattr", "blkbits", "magic", "sbmagic",
                        "version", "build_time", "blocks"])
    sb = cfsimage.SUPER
    if field == "root_nid":
        nids = [0, 1, 35, img.root_nid + 1, 0xffff, rng.randrange(0x10000)]
        nids += list(img.inodes)
        put(data, sb + 14, "<H", rng.choice(nids))
    elif field == "meta":
        put(data, sb + 40, "<I", rng.choice(BOUNDS32))
    elif field == "xattr":
        put(data, sb + 44, "<I", rng.choice(BOUNDS32))
    elif field == "blkbits":
        data[sb + 12] = rng.choice([0, 9, 11, 13, 16, 63, 255])
    elif field == "magic":
        put(data, 0, "<I", rng.randrange(1 << 32))
    elif field == "sbmagic":
        put(data, sb, "<I", rng.randrange(1 << 32))
    elif field == "version":
        put(data, 4, "<I", rng.choice([0, 2, 0xffffffff]))
        put(data, 12, "<I", rng.choice([0, 1, 2, 0xffffffff]))
    elif field == "build_time":
        put(data, sb + 24, "<Q", rng.choice(BOUNDS64))
        put(data, sb + 32, "<I", rng.choice(BOUNDS32))
    else:
        put(data, sb + 36, "<I", rng.choice(BOUNDS32))
    return "super." + field


def m_inode(img, data, rng):
    ino = rng.choice(list(img.inodes.values()))
    field = rng.choice(["format", "icount", "mode", "size", "size", "u", "u", "nlink",
                        "uid"] + (["mtime", "nsec"] if ino.extended else []))
    off, fmt = ino.field(field)
    if field == "format":
        value = rng.choice([0xffff, 1, 2, 3, 5, 6, 7, 8, 9, 0xa, 0xc, 0xe, 0x10,
                            ino.layout << 1, (ino.layout << 1) | 1, rng.randrange(16)])
    elif field == "mode":
        value = rng.choice([0, 0o170000, 0o070000, 0o040755, 0o100644, 0o120777,
                            0o020644, 0o060644, 0o010644, 0o140755,
                            ino.mode ^ (1 << rng.randrange(16))])
    else:
        value = bound(rng, fmt)
    put(data, off, fmt, value)
    return "inode%d.%s=%#x" % (ino.nid, field, value)


def m_xattr(img, data, rng):
    choices = []
    if img.xattr_entries:
        choices += ["name_len", "index", "value_len", "entry"]
    if img.shared_refs:
        choices += ["shared_id", "shared_id"]
    xinodes = [i for i in img.inodes.values() if i.icount]
    if xinodes:
        choices += ["shared_count", "icount"]
    if not choices:
        return None
    what = rng.choice(choices)
    if what in ("name_len", "index", "value_len", "entry"):
        nid, off = rng.choice(img.xattr_entries)
        if what == "name_len":
            data[off] = rng.choice([0, 1, 254, 255, data[off] + 1, max(0, data[off] - 1)])
        elif what == "index":
            data[off + 1] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 255])
        elif what == "value_len":
            put(data, off + 2, "<H", rng.choice([0, 1, 0x7fff, 0xffff,
                                                 rng.randrange(0x10000)]))
        else:
            for k in range(4, 12):
                if off + k < len(data):
                    data[off + k] = rng.choice([0, ord("/"), 0xff, ord("a")])
        return "xattr-entry.%s@inode%d" % (what, nid)
    if what == "shared_id":
        nid, off = rng.choice(img.shared_refs)
        put(data, off, "<I", rng.choice(BOUNDS32 + [rng.randrange(4096)]))
        return "xattr.shared_id@inode%d" % nid
    ino = rng.choice(xinodes)
    if what == "shared_count":
        data[ino.xattr_off + 4] = rng.choice([1, 2, 64, 128, 255, rng.randrange(256)])
    else:
        put(data, ino.off + 2, "<H", rng.choice([1, 2, 3, 0x7fff, 0xffff,
                                                 ino.icount + 1, ino.icount - 1]))
    return "xattr.%s@inode%d" % (what, ino.nid)


def dir_entries(img):
    out = []
    for ch in img.chunks:
        for e in ch.entries:
            out.append((ch, e))
    return out


def m_dirent(img, data, rng):
    ents = dir_entries(img)
    if not ents:
        return None
    ch, (rec, nid, nameoff, name_off, name_len) = rng.choice(ents)
    what = rng.choice(["loop", "loop", "self", "nid", "nid", "nameoff", "first",
                       "type", "name", "name", "swap", "dup"])
    max_nid = (len(data) - img.meta_off - 32) // 32
    if what == "loop":
        target = rng.choice(img.ancestors(ch.dir_nid))
        put(data, rec, "<Q", target)
        return "dirent.loop->%d" % target
    if what == "self":
        put(data, rec, "<Q", ch.dir_nid)
        return "dirent.self"
    if what == "nid":
        others = [n for n in img.inodes]
        target = rng.choice(others + [max_nid, max_nid + 1, (1 << 64) - 1, 1 << 32,
                                      rng.randrange(max_nid + 2),
                                      rng.choice(others) + 1])
        put(data, rec, "<Q", target)
        return "dirent.nid=%d" % target
    if what == "nameoff":
        value = rng.choice([0, 1, 11, 12, 13, nameoff + 1, nameoff - 1, ch.len,
                            ch.len + 1, 0xffff, 4096])
        put(data, rec + 8, "<H", value)
        return "dirent.nameoff=%d" % value
    if what == "first":
        value = rng.choice([0, 6, 12 * len(ch.entries) + 12, 12 * len(ch.entries) - 12,
                            ch.len, 0xffff])
        put(data, ch.off + 8, "<H", value)
        return "dirent.first=%d" % value
    if what == "type":
        data[rec + 10] = rng.randrange(256)
        return "dirent.type"
    if what == "name" and name_len > 0:
        pos = name_off + rng.randrange(name_len)
        data[pos] = rng.choice([0, ord("/"), 0xff, ord("."), 0x01, 0x0a, 0x1b])
        return "dirent.name-byte"
    if what == "swap" and len(ch.entries) >= 2:
        i = rng.randrange(len(ch.entries) - 1)
        a, b = ch.entries[i], ch.entries[i + 1]
        put(data, a[0], "<Q", b[1])
        put(data, b[0], "<Q", a[1])
        na = bytes(data[a[3]:a[3] + a[4]])
        nb = bytes(data[b[3]:b[3] + b[4]])
        if len(na) == len(nb):
            data[a[3]:a[3] + a[4]] = nb
            data[b[3]:b[3] + b[4]] = na
        return "dirent.swap"
    if what == "dup" and len(ch.entries) >= 2:
        i = rng.randrange(len(ch.entries) - 1)
        a, b = ch.entries[i], ch.entries[i + 1]
        n = min(a[4], b[4])
        data[b[3]:b[3] + n] = data[a[3]:a[3] + n]
        return "dirent.dup"
    return None


def m_unterminated(img, data, rng):
    """The last name of a chunk runs to its end (no NUL padding)."""
    if not img.chunks:
        return None
    ch = rng.choice(img.chunks)
    rec, nid, nameoff, name_off, name_len = ch.entries[-1]
    start = name_off + name_len
    end = ch.off + ch.len
    fill = rng.choice([b"a", b"/", b"\xff"])
    for p in range(start, end):
        data[p] = fill[0]
    if rng.random() < 0.5:
        # The directory's tail grows past what it owned.
        ino = img.inodes[ch.dir_nid]
        off, fmt = ino.field("size")
        put(data, off, fmt, ino.size + rng.choice([1, 255, 256, 4096]))
    return "dirent.unterminated"


def m_huge(img, data, rng):
    """Sizes that claim more than the image holds."""
    kinds = [i for i in img.inodes.values()]
    ino = rng.choice(kinds)
    off, fmt = ino.field("size")
    if ino.type == 0o100000 and ino.layout == 4:
        # Chunk-based: chunk format bits and sizes.
        what = rng.choice(["chunkbits", "size"])
        if what == "chunkbits":
            put(data, ino.off + 16, "<I", rng.choice([0, 0x1f, 0x20, 0x3f, 0xffff,
                                                      0xffffffff]))
            return "chunk.format@inode%d" % ino.nid
    value = rng.choice([ino.size + 1, ino.size * 2 + 4096, 4095, 4096, 5000, 5001,
                        0xffffffff, (1 << 63) if ino.extended else 0x80000000,
                        (1 << 64) - 1])
    put(data, off, fmt, value)
    return "size@inode%d=%#x" % (ino.nid, value)


MUTATORS = [(m_truncate, 2), (m_bitflip, 3), (m_bytes, 2), (m_super, 1),
            (m_inode, 3), (m_xattr, 2), (m_dirent, 4), (m_unterminated, 1),
            (m_huge, 2)]


def mutate(img, rng):
    fns = [f for f, w in MUTATORS for _ in range(w)]
    data = bytearray(img.data)
    descs = []
    picks = [rng.choice(fns) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    # Truncation last: the others assume the image's full length.
    picks.sort(key=lambda f: f is m_truncate)
    for fn in picks:
        # A mutator that does not apply to this image is replaced by
        # another one (never by a truncation, which must come last).
        for _ in range(5):
            d = fn(img, data, rng)
            if d is not None:
                descs.append(d)
                break
            fn = rng.choice([f for f in fns if f is not m_truncate])
    return bytes(data), "+".join(descs)


def build_seeds(mkcomposefs, seeds_dir, out_dir):
    images = []
    for name in sorted(os.listdir(seeds_dir)):
        path = os.path.join(seeds_dir, name)
        for v in (None, 0):
            args = [mkcomposefs, "--from-file", path]
            tag = name
            if v is not None:
                args[1:1] = ["--min-version=%d" % v, "--max-version=%d" % v]
                tag += "-v%d" % v
            dest = os.path.join(out_dir, tag + ".cfs")
            r = subprocess.run(args + [dest], capture_output=True)
            if r.returncode == 0:
                images.append((tag, dest))
    return images


def main():
    a = cfsmutate.arguments(count=2000)
    tools = {t: os.path.join(a.tools, t) for t in ("mkcomposefs", "composefs-info",
                                                     "composefs-dump")}
    replays = [os.path.join(a.fuzz, "fuzz-%s-replay" % t) for t in ("image-read", "fuse-view")]
    cfsmutate.need(list(tools.values()) + replays)

    with tempfile.TemporaryDirectory(prefix="cfs-mutate-") as tmp:
        seed_dir = os.path.join(tmp, "seeds")
        os.mkdir(seed_dir)
        seeds = build_seeds(tools["mkcomposefs"], a.seeds, seed_dir)
        if len(seeds) < 5:
            print("FAIL: only %d seed images could be built" % len(seeds))
            return 1
        parsed = [(tag, cfsimage.Image(open(p, "rb").read())) for tag, p in seeds]

        mut_dir = a.keep or os.path.join(tmp, "mutants")
        rng = random.Random(a.seed)
        mutants = []
        for i in range(a.count):
            tag, img = parsed[i % len(parsed)]
            data, desc = mutate(img, rng)
            mutants.append(("%05d-%s.cfs" % (i, tag), data, desc))
        jobs = cfsmutate.write_mutants(mut_dir, mutants)

        def one(job):
            i, path, desc = job
            kind = i % 5
            outdir = None
            if kind == 0:
                args, tool = [tools["composefs-info"], "dump", path], "composefs-info"
            elif kind == 1:
                args, tool = [tools["composefs-info"], "ls", path], "composefs-info"
            elif kind == 2:
                args, tool = [tools["composefs-info"], "objects", path], "composefs-info"
            elif kind == 3:
                args = [tools["composefs-info"], "--filter=a", "--filter=d", "--filter=x",
                        "dump", path]
                tool = "composefs-info"
            else:
                outdir = os.path.join(tmp, "out%05d" % i)
                os.mkdir(outdir)
                args = [tools["composefs-dump"], path, os.path.join(outdir, "out.cfs")]
                tool = "composefs-dump"
            r = cfsmutate.run(args)
            problems = cfsmutate.judge(desc, args, r, tool)
            ok = r != "timeout" and r.returncode == 0
            if outdir is not None:
                left = cfsmutate.empty_outdir(outdir)
                if r != "timeout" and r.returncode != 0 and left:
                    problems.append("%s: composefs-dump failed and left %s" % (desc, left))
            return problems, ok

        # Every mutant in-process too: all composefs-info walks, the
        # rewrite check and the FUSE view.
        results = cfsmutate.parallel(jobs, one)
        return cfsmutate.conclude(results, replays, mut_dir, "image mutants",
                                  "%d seed images" % len(seeds))


if __name__ == "__main__":
    cfstest.main(main)
