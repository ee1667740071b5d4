#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Golden image test for one reference asset.

    test-golden-image.py TOOLS_DIR ASSET

ASSET is a file name in $COMPOSEFS_SHARED/assets/upstream (NAME.dump or
NAME.dump.gz) that has a NAME.sha256.  The image mkcomposefs builds from it
must have exactly that SHA-256; building twice gives the same bytes;
composefs-dump and `composefs-info dump | mkcomposefs` give the same bytes
back; fsck.erofs accepts it.
"""

import gzip
import os
import tempfile

import cfstest
from cfstest import Failure


def reference_image(shared, asset, tmpdir):
    """Path of the reference image for `asset`, unpacked if needed."""
    base = os.path.join(shared, "golden", asset.replace(".gz", "") + ".cfs")
    if os.path.exists(base):
        return base
    if os.path.exists(base + ".gz"):
        out = os.path.join(tmpdir, "reference.cfs")
        with gzip.open(base + ".gz", "rb") as f, open(out, "wb") as o:
            o.write(f.read())
        return out
    return None


def main():
    tools_dir, shared, asset, path = cfstest.asset_args("test-golden-image.py")
    with open(path + ".sha256") as f:
        want = f.read().split()[0]
    version = cfstest.asset_version(path)
    strict = os.path.basename(path) not in cfstest.NON_STRICT_ASSETS
    dump = cfstest.read_asset(path)

    with tempfile.TemporaryDirectory(prefix="cfs-golden-") as tmp:
        out = os.path.join(tmp, "image.cfs")
        cfstest.build_image(tools_dir, dump, out, version=version, strict=strict)
        got = cfstest.sha256_file(out)
        if got != want:
            msg = "SHA-256 %s, expected %s" % (got, want)
            ref = reference_image(shared, asset, tmp)
            if ref is not None:
                msg += "\nsizes: ours %d, reference %d\n`cmp -l ours " \
                    "reference | head` (offset, octal ours, octal reference):\n" \
                    % (os.path.getsize(out), os.path.getsize(ref))
                msg += cfstest.cmp_head(out, ref)
            raise Failure(msg)
        print("sha256 ok: %s" % got)

        again = os.path.join(tmp, "again.cfs")
        cfstest.build_image(tools_dir, dump, again, version=version,
                            strict=strict)
        if not cfstest.same_bytes(out, again):
            raise Failure("a second build gives different bytes\n" +
                          cfstest.cmp_head(again, out))
        print("rebuild identical")

        cfstest.roundtrip(tools_dir, out, tmp, version, strict=True)
        print("composefs-dump and composefs-info dump round trips identical")

        why = cfstest.fsck(out)
        if why:
            print("note: fsck skipped: %s" % why)
        else:
            print("fsck.erofs ok")
    return 0


if __name__ == "__main__":
    cfstest.main(main)
