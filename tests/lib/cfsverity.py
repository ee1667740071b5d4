# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""An fs-verity model, independent of the library, for every test that
needs a digest: SHA-256, 4096-byte blocks, no salt.

The data is cut into 4096-byte blocks (the last one padded with zeros);
each block's SHA-256 is one entry of the next level, which is again cut
into blocks, until one block remains, whose hash is the root. Empty data
has an all-zero root. The digest is the SHA-256 of the 256-byte
descriptor: version 1, hash algorithm 1 (SHA-256), log2 of the block size
(12), salt size 0, four reserved bytes, the data size (64-bit little
endian), the root hash in a 64-byte field, a 32-byte salt field and 144
reserved bytes, all unused bytes zero.

Also the `fsverity digest` command (fsverity-utils) as a second, outside
reference."""

import hashlib
import shutil
import struct

import cfstest

BLOCK = 4096


def _level(data):
    """The hashes of @data's blocks, the last block zero-padded."""
    out = []
    for off in range(0, len(data), BLOCK):
        block = data[off:off + BLOCK]
        out.append(hashlib.sha256(block.ljust(BLOCK, b"\0")).digest())
    return b"".join(out)


def root_hash(data):
    if not data:
        return bytes(32)
    level = _level(data)
    while len(level) > 32:
        level = _level(level)
    return level


def digest(data):
    """The fs-verity digest of @data, raw (32 bytes)."""
    desc = struct.pack("<BBBBIQ", 1, 1, 12, 0, 0, len(data))
    desc += root_hash(data).ljust(64, b"\0") + bytes(32) + bytes(144)
    assert len(desc) == 256
    return hashlib.sha256(desc).digest()


def hexdigest(data):
    return digest(data).hex()


def file_hexdigest(path):
    with open(path, "rb") as f:
        return hexdigest(f.read())


def cli_digests(paths):
    """{path: hex digest} from `fsverity digest`, or None when the command
    is not installed."""
    cli = shutil.which("fsverity")
    if cli is None:
        return None
    out = {}
    for i in range(0, len(paths), 200):
        r = cfstest.run([cli, "digest", "--hash-alg=sha256", "--block-size=4096"]
                        + list(paths[i:i + 200]))
        for line in r.stdout.decode().splitlines():
            alg_digest, path = line.split(" ", 1)
            alg, hexd = alg_digest.split(":", 1)
            cfstest.check(alg == "sha256", "fsverity digest printed %r" % line)
            out[path] = hexd
    return out


def cli_digest(path):
    """The digest of one file from `fsverity digest`; skips the case when
    the command is not installed."""
    d = cli_digests([path])
    if d is None:
        cfstest.skip("the fsverity command (Debian package fsverity) is not installed")
    return d[path]
