#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Images do not depend on the order of the dumpfile's lines.

    test-entry-order.py TOOLS_DIR

bench/gen-dump.py writes one OS-like tree (with a distinct security.ima
value on every regular file) in three orders: sorted depth first, tar order
(depth first, siblings shuffled) and creation order (every entry after its
parent, directories interleaved). All three must build to the same bytes.
Each order also gets a directory whose names share long prefixes, are
prefixes of each other or hold bytes above 0x7f, in name order for the
sorted dump and reversed for the others (the parser sorts such a
directory on the first bytes of the names, then on the whole names). A
fourth copy of the creation order spells some paths with repeated
slashes, which the parser's lookup by parent path does not know and must
resolve component by component; and a copy where one entry comes before
its parent directory must fail, naming the entry.
"""

import os
import re
import subprocess
import sys
import tempfile

import cfstest
from cfstest import Failure

GENERATOR = os.path.join(cfstest.TESTS_DIR, "..", "bench", "gen-dump.py")
# Enough entries for three chunks of the parser's node arena (13,796
# nodes each), so that the move into the writer's order crosses chunks.
N = 30000


def generate(order):
    return subprocess.run([sys.executable, GENERATOR, "--order", order, "--ima",
                           str(N), "7"], stdout=subprocess.PIPE, check=True).stdout


# Names that tie on their first eight bytes, end inside them, or sort by
# a byte above 0x7f (written escaped).
PREFIX_NAMES = [b"A", b"a", b"abc", b"abcdefg", b"abcdefgh", b"abcdefgh0",
                b"abcdefgha", b"abcdefghabcdefgh0", b"abcdefghabcdefgh1",
                b"abcdefghi", b"abcdefgh\\x80x", b"abcdefgh\\xff", b"abcdefgi",
                b"zz", b"\\xe9t\\xe9"]


def with_prefix_dir(dump, reverse):
    """@dump with the directory /prefixes and its entries at the end."""
    names = list(reversed(PREFIX_NAMES)) if reverse else PREFIX_NAMES
    lines = [b"/prefixes 4096 40755 2 0 0 0 1690000000.0 - - -"]
    lines += [b"/prefixes/%s 0 100644 1 0 0 0 1690000000.0 - - -" % n for n in names]
    return dump.rstrip(b"\n") + b"\n" + b"\n".join(lines) + b"\n"


def respell(dump):
    """Every seventh line gets its path written with doubled slashes."""
    out = []
    for i, line in enumerate(dump.split(b"\n")):
        if i % 7 == 3 and line.startswith(b"/") and len(line.split(b" ", 1)[0]) > 1:
            path, rest = line.split(b" ", 1)
            line = b"/" + path.replace(b"/", b"//") + b" " + rest
        out.append(line)
    return b"\n".join(out)


def main():
    tools_dir = sys.argv[1]
    dumps = {o: generate(o) for o in ("sorted", "tar", "creation")}
    if dumps["tar"] == dumps["sorted"] or dumps["creation"] == dumps["sorted"]:
        raise Failure("the generator did not reorder the lines")
    for o in ("tar", "creation"):
        if sorted(dumps[o].split(b"\n")) != sorted(dumps["sorted"].split(b"\n")):
            raise Failure("%s order holds other lines than sorted order" % o)
    dumps["creation, respelled"] = respell(dumps["creation"])
    dumps = {o: with_prefix_dir(d, o != "sorted") for o, d in dumps.items()}
    with tempfile.TemporaryDirectory(prefix="cfs-order-") as tmp:
        ref = os.path.join(tmp, "sorted.cfs")
        cfstest.build_image(tools_dir, dumps["sorted"], ref)
        for name, dump in dumps.items():
            if name == "sorted":
                continue
            out = os.path.join(tmp, "other.cfs")
            cfstest.build_image(tools_dir, dump, out)
            if not cfstest.same_bytes(ref, out):
                raise Failure("%s order builds other bytes than sorted order\n%s"
                              % (name, cfstest.cmp_head(ref, out)))
            print("%s order: same %d bytes as sorted order" % (name, os.path.getsize(out)))

        # A directory's entry moved before the directory's own line.
        lines = dumps["creation"].split(b"\n")
        d = next(i for i, l in enumerate(lines)
                 if l.split(b" ")[2:3] == [b"40755"] and i > 100)
        dpath = lines[d].split(b" ", 1)[0]
        k = next(i for i in range(d + 1, len(lines))
                 if lines[i].startswith(dpath + b"/"))
        child = lines.pop(k)
        lines.insert(d, child)
        r = cfstest.run([cfstest.tool(tools_dir, "mkcomposefs"), "--from-file", "-",
                         os.path.join(tmp, "bad.cfs")], stdin=b"\n".join(lines),
                        ok=None)
        msg = r.stderr.decode(errors="replace")
        cpath = child.split(b" ", 1)[0].decode()
        if r.returncode == 0 or not re.search(r":%d: PATH: Parent directory missing for %s"
                                              % (d + 1, re.escape(cpath)), msg):
            raise Failure("entry before its parent: exit %d, %r" % (r.returncode, msg))
        if os.path.exists(os.path.join(tmp, "bad.cfs")):
            raise Failure("a failed build left its image")
        print("entry before its parent: refused (%s)" % msg.strip())
    return 0


if __name__ == "__main__":
    cfstest.main(main)
