#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Hostile dumpfiles through mkcomposefs --from-file: overlong fields, bad
escapes, deep and broken paths, duplicate entries, hard-link cycles and
chains, bad numbers and modes, stray bytes, lines out of order, made from
the fuzz seed dumpfiles, in default and strict mode (CFS_PARSE_STRICT), and
in-process through the dumpfile parser's and the write path's fuzz
targets. Each run must succeed (leaving exactly the image) or fail with one
line naming the problem and leave nothing behind; no crash, no sanitizer
report, no hang.

    test-mutate-dumps.py --tools DIR --fuzz DIR --seeds DIR [--count N] [--seed S]
"""

import os
import random
import subprocess
import tempfile

import cfsmutate
import cfstest

ROOT = b"/ 4096 40755 2 0 0 0 0.0 - - -"
ESCAPES = [b"\\", b"\\x", b"\\x4", b"\\xZZ", b"\\xg0", b"\\q", b"\\0", b"\\ ", b"\\\\",
           b"\\x00", b"\\n", b"\\xff"]
NUMBERS = [b"", b"-", b"+", b"-1", b"0x10", b"1e3", b"18446744073709551616",
           b"9" * 1000, b"\t5", b" 5", b"5 ", b"08", b"-0", b"4294967296"]
MODES = [b"@", b"@@100644", b"0", b"644", b"170000", b"40000", b"@40755", b"100644x",
         b"77777777777777777777777", b"-100644", b"0o644", b"020000", b"@020000"]


def fields(line):
    return line.split(b" ")


def pick_line(lines, rng, skip_root=True):
    if not lines:
        lines.append(ROOT)
    lo = 1 if skip_root and len(lines) > 1 else 0
    return rng.randrange(lo, len(lines))


def m_overlong(lines, rng):
    i = pick_line(lines, rng)
    f = fields(lines[i])
    while len(f) < 11:
        f.append(b"-")
    which = rng.choice(["name", "path", "payload", "content", "digest", "xkey", "xvalue",
                        "xsection", "number"])
    n = rng.choice([255, 256, 4095, 4096, 5000, 5001, 65535, 65536, 200000])
    if which == "name":
        f[0] = f[0] + b"n" * n
    elif which == "path":
        f[0] = b"/x" * (n // 2)
    elif which == "payload":
        f[8] = b"p" * n
    elif which == "content":
        f[9] = b"c" * n
        if rng.random() < 0.5:
            f[1] = b"%d" % n
    elif which == "digest":
        f[10] = b"a" * rng.choice([63, 65, 128, n])
    elif which == "xkey":
        f.append(b"user." + b"k" * n + b"=v")
    elif which == "xvalue":
        f.append(b"user.v=" + b"\\xff" * (n // 4))
    elif which == "xsection":
        f += [b"user.%d=%s" % (k, b"v" * 40) for k in range(n // 40)]
    else:
        f[rng.randrange(1, 8)] = b"7" * n
    lines[i] = b" ".join(f)
    return "overlong." + which


def m_escape(lines, rng):
    i = pick_line(lines, rng, skip_root=False)
    f = fields(lines[i])
    k = rng.randrange(len(f))
    esc = rng.choice(ESCAPES)
    pos = rng.randrange(len(f[k]) + 1)
    f[k] = f[k][:pos] + esc + f[k][pos:]
    lines[i] = b" ".join(f)
    return "escape"


def m_deep(lines, rng):
    depth = rng.choice([100, 1000, 2000])
    if rng.random() < 0.5:
        # Parents missing far down.
        lines.append(b"/" + b"/".join([b"d"] * depth) + b" 0 100644 1 0 0 0 0.0 - - -")
        return "deep.missing"
    base = rng.choice([b"d", b"\\x2e\\x2e", b"a\\x20b"])
    path = b""
    for _ in range(depth):
        path += b"/" + base
        lines.append(path + b" 4096 40755 2 0 0 0 0.0 - - -")
    return "deep.chain"


def m_duplicate(lines, rng):
    i = pick_line(lines, rng, skip_root=rng.random() < 0.8)
    lines.insert(rng.randrange(i, len(lines)) + 1, lines[i])
    return "duplicate"


def m_hardlinks(lines, rng):
    n = len(lines)
    what = rng.choice(["cycle", "self", "chain", "to-dir", "to-missing", "no-target",
                       "to-root", "long-cycle"])
    names = [b"/h%d" % k for k in range(rng.choice([2, 3, 10, 500]))]
    if what in ("cycle", "long-cycle"):
        if what == "long-cycle":
            names = [b"/h%d" % k for k in range(2000)]
        for k, name in enumerate(names):
            lines.append(name + b" 0 @100644 1 0 0 0 0.0 " + names[(k + 1) % len(names)]
                         + b" - -")
    elif what == "self":
        lines.append(b"/h 0 @100644 1 0 0 0 0.0 /h - -")
    elif what == "chain":
        lines.append(b"/real 0 100644 1 0 0 0 0.0 - - -")
        order = list(range(len(names)))
        rng.shuffle(order)
        for k in order:
            target = names[k + 1] if k + 1 < len(names) else b"/real"
            lines.append(names[k] + b" 0 @100644 1 0 0 0 0.0 " + target + b" - -")
    elif what == "to-dir":
        lines.append(b"/dd 4096 40755 2 0 0 0 0.0 - - -")
        lines.append(b"/h 0 @100644 1 0 0 0 0.0 /dd - -")
    elif what == "to-missing":
        lines.append(b"/h 0 @100644 1 0 0 0 0.0 /nowhere/at/all - -")
    elif what == "no-target":
        lines.append(b"/h 0 @100644 1 0 0 0 0.0 - - -")
    else:
        lines.append(b"/h 0 @100644 1 0 0 0 0.0 " + rng.choice([b"/", b"", b"//"])
                     + b" - -")
    return "hardlinks." + what + ("" if n else "")


def m_field(lines, rng):
    i = pick_line(lines, rng, skip_root=rng.random() < 0.7)
    f = fields(lines[i])
    what = rng.choice(["number", "mode", "drop", "empty", "swap", "extra"])
    if what == "number" and len(f) > 7:
        f[rng.choice([1, 3, 4, 5, 6])] = rng.choice(NUMBERS)
    elif what == "mode" and len(f) > 2:
        f[2] = rng.choice(MODES)
    elif what == "drop":
        del f[rng.randrange(len(f))]
    elif what == "empty":
        f.insert(rng.randrange(len(f) + 1), b"")
    elif what == "swap" and len(f) > 2:
        a, b = rng.randrange(len(f)), rng.randrange(len(f))
        f[a], f[b] = f[b], f[a]
    else:
        f.append(rng.choice([b"=", b"novalue", b"user.x=1", b"=v", b"user.\\x00=1"]))
    lines[i] = b" ".join(f)
    return "field." + what


def m_bytes(lines, rng):
    i = pick_line(lines, rng, skip_root=False)
    line = bytearray(lines[i])
    what = rng.choice(["nul", "cr", "byte", "delete", "newline"])
    pos = rng.randrange(len(line) + 1)
    if what == "nul":
        line[pos:pos] = b"\0"
    elif what == "cr":
        line += b"\r"
    elif what == "byte":
        line[pos:pos] = bytes([rng.randrange(256)])
    elif what == "delete" and len(line) > 0:
        del line[min(pos, len(line) - 1)]
    else:
        line[pos:pos] = b"\n"
    lines[i] = bytes(line)
    return "bytes." + what


def m_order(lines, rng):
    what = rng.choice(["shuffle", "reverse", "root-late", "blank", "no-root"])
    if what == "shuffle":
        rest = lines[1:]
        rng.shuffle(rest)
        lines[1:] = rest
    elif what == "reverse":
        lines.reverse()
    elif what == "root-late":
        lines.append(lines.pop(0))
    elif what == "blank":
        lines.insert(rng.randrange(len(lines) + 1), b"")
    else:
        del lines[0]
    return "order." + what


# Inputs that once gave a message of several lines or with raw terminal
# control bytes (names are quoted in messages).
CRAFTED = [
    ROOT + b"\n/a\\nb 0 100644 1 0 0 0 0.0 - - -\n/a\\nb 0 100644 1 0 0 0 0.0 - - -\n",
    ROOT + b"\n/a\\nb/c 0 100644 1 0 0 0 0.0 - - -\n",
    ROOT + b"\n/a 0 @100644 1 0 0 0 0.0 /x\\ny - -\n",
    ROOT + b"\n/a\\x1b[31mred 0 100644 1 0 0 0 0.0 - - -\n"
    b"/a\\x1b[31mred/b 0 100644 1 0 0 0 0.0 - - -\n",
    ROOT + b"\n/a\\r 0 100644 1 0 0 0 0.0 - - -\n/a\\r 0 100644 1 0 0 0 0.0 - - -\n",
]

MUTATORS = [(m_overlong, 3), (m_escape, 3), (m_deep, 1), (m_duplicate, 2),
            (m_hardlinks, 3), (m_field, 4), (m_bytes, 3), (m_order, 2)]


def mutate(text, rng):
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        lines = [ROOT]
    fns = [f for f, w in MUTATORS for _ in range(w)]
    descs = [rng.choice(fns)(lines, rng) for _ in range(rng.choice([1, 1, 1, 2]))]
    out = b"\n".join(lines)
    if rng.random() < 0.95:
        out += b"\n"
    return out, "+".join(descs)


def main():
    a = cfsmutate.arguments(count=1500)
    mkcomposefs = os.path.join(a.tools, "mkcomposefs")
    replays = [os.path.join(a.fuzz, "fuzz-%s-replay" % t)
               for t in ("dump-parse", "write-roundtrip")]
    cfsmutate.need([mkcomposefs] + replays)
    seeds = []
    for name in sorted(os.listdir(a.seeds)):
        with open(os.path.join(a.seeds, name), "rb") as f:
            seeds.append((name, f.read()))

    with tempfile.TemporaryDirectory(prefix="cfs-mutate-") as tmp:
        mut_dir = a.keep or os.path.join(tmp, "mutants")
        rng = random.Random(a.seed)
        mutants = []
        for i in range(a.count):
            if i < len(CRAFTED):
                name, data, desc = "crafted", CRAFTED[i], "crafted%d" % i
            else:
                name, text = seeds[i % len(seeds)]
                data, desc = mutate(text, rng)
            mutants.append(("%05d-%s" % (i, name), data, desc))
        jobs = cfsmutate.write_mutants(mut_dir, mutants)

        def one(job):
            i, path, desc = job
            outdir = os.path.join(tmp, "out%05d" % i)
            os.mkdir(outdir)
            out = os.path.join(outdir, "out.cfs")
            args = [mkcomposefs, "--from-file", path, out]
            env = dict(os.environ)
            env.pop("CFS_PARSE_STRICT", None)
            if i % 2:
                env["CFS_PARSE_STRICT"] = "1"
            try:
                r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=env, timeout=cfsmutate.TIMEOUT)
            except subprocess.TimeoutExpired:
                r = "timeout"
            problems = cfsmutate.judge(desc, args, r, "mkcomposefs")
            ok = r != "timeout" and r.returncode == 0
            left = cfsmutate.empty_outdir(outdir)
            if r != "timeout":
                if ok and left != ["out.cfs"]:
                    problems.append("%s: succeeded, but left %s" % (desc, left))
                if not ok and left:
                    problems.append("%s: failed, but left %s" % (desc, left))
            return problems, ok

        results = cfsmutate.parallel(jobs, one)
        return cfsmutate.conclude(results, replays, mut_dir, "dumpfile mutants",
                                  "%d seed dumpfiles" % len(seeds))


if __name__ == "__main__":
    cfstest.main(main)
