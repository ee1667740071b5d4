#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Should-fail test for one reference asset.

    test-should-fail.py TOOLS_DIR ASSET

`mkcomposefs --from-file ASSET OUT` must exit 1, name the problem on stderr
(the messages of docs/dumpfile.md, "Rejected reference inputs", after
`FILE:LINE: FIELD:` for parse errors) and leave nothing behind: no OUT, no
temporary file, and an OUT that existed before the run is left untouched. In
strict mode the run must fail as well.
"""

import os
import re
import tempfile

import cfstest
from cfstest import Failure

# asset -> (regex the message must match, line number or None)
EXPECTED = {
    "should-fail-big-inline.dump":
        (r"Inline content size 5004 exceeds maximum 5000", 2),
    "should-fail-dir-hardlink.dump": (r"Directories can't be hardlinked", 2),
    "should-fail-dot-name.dump": (r"Invalid \. or \.\. in path: '?/\.'?$", 2),
    "should-fail-dotdot-name.dump": (r"Invalid \. or \.\. in path: '?/\.\.'?$", 2),
    "should-fail-empty-link-name.dump": (r"Invalid symlink", 2),
    "should-fail-empty-name.dump":
        (r"Can't add child|[Ee]mpty (file )?name|[Ii]nvalid (empty )?name", 2),
    "should-fail-empty-xattr-key.dump":
        (r"Can't set xattr|[Ee]mpty xattr (key|name)", 2),
    "should-fail-honggfuzz-long-xattr.dump": (r"Can't set xattr", 1),
    "should-fail-long-link.dump": (r"Invalid symlink", 2),
    "should-fail-long-xattr-key.dump": (r"Too many xattrs", 2),
    "should-fail-long-xattr-value.dump": (r"Invalid mode '?644'?$", 2),
    "should-fail-no-ftype.dump": (r"Invalid mode '?0'?$", 2),
    "should-fail-self-hardlink.dump":
        (r"Self-referential hardlink '?/037blockdev", None),
    "should-fail-too-big.dump": (r"cannot write file: File too large", None),
}


def check_run(tools_dir, asset_path, tmp, strict, pattern, line):
    out = os.path.join(tmp, "out.cfs")
    r = cfstest.run([cfstest.tool(tools_dir, "mkcomposefs"), "--from-file",
                     asset_path, out], env=cfstest.mkcomposefs_env(strict),
                    ok=None)
    err = r.stderr.decode("utf-8", "backslashreplace")
    mode = "strict" if strict else "default"
    if r.returncode != 1:
        raise Failure("%s mode: exit status %d, expected 1\nstderr: %s" % (
            mode, r.returncode, err))
    left = os.listdir(tmp)
    if left:
        raise Failure("%s mode: files left behind: %r" % (mode, left))
    lines = err.strip("\n").split("\n")
    if len(lines) != 1 or not lines[0].startswith("mkcomposefs: "):
        raise Failure("%s mode: expected one `mkcomposefs: ` line on "
                      "stderr, got %r" % (mode, err))
    if pattern is not None:
        if not re.search(pattern, lines[0]):
            raise Failure("%s mode: message %r does not match %r" % (
                mode, lines[0], pattern))
        if line is not None and ":%d:" % line not in lines[0]:
            raise Failure("%s mode: message %r does not name line %d" % (
                mode, lines[0], line))
    print("%s mode: %s" % (mode, lines[0]))

    # An existing image must survive a failed run untouched.
    keep = b"previous image contents\n"
    with open(out, "wb") as f:
        f.write(keep)
    r = cfstest.run([cfstest.tool(tools_dir, "mkcomposefs"), "--from-file",
                     asset_path, out], env=cfstest.mkcomposefs_env(strict),
                    ok=None)
    if r.returncode != 1:
        raise Failure("%s mode, existing output: exit status %d" % (
            mode, r.returncode))
    with open(out, "rb") as f:
        if f.read() != keep:
            raise Failure("%s mode: a failed run modified the existing "
                          "output file" % mode)
    left = sorted(os.listdir(tmp))
    if left != ["out.cfs"]:
        raise Failure("%s mode: files left behind: %r" % (mode, left))
    os.unlink(out)


def main():
    tools_dir, shared, asset, path = cfstest.asset_args("test-should-fail.py")
    pattern, line = EXPECTED.get(asset, (None, None))
    if pattern is None:
        print("note: no expected message recorded for %s; checking the exit "
              "status and the absence of output only" % asset)
    with tempfile.TemporaryDirectory(prefix="cfs-fail-") as tmp:
        check_run(tools_dir, path, tmp, False, pattern, line)
        # Strict mode adds checks, so the asset still fails (possibly
        # earlier, e.g. with "Missing trailing newline").
        check_run(tools_dir, path, tmp, True, None, None)
    return 0


if __name__ == "__main__":
    cfstest.main(main)
