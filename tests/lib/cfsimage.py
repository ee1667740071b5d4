# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Locate the structures of a composefs image (docs/image-format.md)
so that the mutation tests can corrupt them precisely.

Only images written by mkcomposefs are walked; nothing here validates
anything. Every offset is absolute.
"""

import struct

BLK = 4096
SUPER = 1024


class Inode:
    def __init__(self, data, meta_off, nid):
        self.nid = nid
        self.off = meta_off + nid * 32
        fmt, = struct.unpack_from("<H", data, self.off)
        self.extended = bool(fmt & 1)
        self.layout = (fmt >> 1) & 7
        self.isz = 64 if self.extended else 32
        self.icount, self.mode = struct.unpack_from("<HH", data, self.off + 2)
        if self.extended:
            self.size, = struct.unpack_from("<Q", data, self.off + 8)
        else:
            self.size, = struct.unpack_from("<I", data, self.off + 8)
        self.u, = struct.unpack_from("<I", data, self.off + 16)
        self.xattr_off = self.off + self.isz
        self.xattr_size = 12 + 4 * (self.icount - 1) if self.icount else 0
        self.tail_off = self.xattr_off + self.xattr_size
        self.type = self.mode & 0o170000

    def field(self, name):
        """(offset, struct format) of a named field of the record."""
        if self.extended:
            table = {"format": (0, "<H"), "icount": (2, "<H"), "mode": (4, "<H"),
                     "size": (8, "<Q"), "u": (16, "<I"), "uid": (24, "<I"),
                     "mtime": (32, "<q"), "nsec": (40, "<I"), "nlink": (44, "<I")}
        else:
            table = {"format": (0, "<H"), "icount": (2, "<H"), "mode": (4, "<H"),
                     "nlink": (6, "<H"), "size": (8, "<I"), "u": (16, "<I"),
                     "uid": (24, "<H")}
        off, fmt = table[name]
        return self.off + off, fmt


class Chunk:
    """One dirent block or inline tail of a directory."""

    def __init__(self, data, dir_nid, off, length):
        self.dir_nid = dir_nid
        self.off = off
        self.len = length
        self.entries = []  # (record offset, nid, nameoff, name offset, name length)
        first, = struct.unpack_from("<H", data, off + 8)
        n = first // 12
        for i in range(n):
            rec = off + 12 * i
            nid, nameoff = struct.unpack_from("<QH", data, rec)
            if i + 1 < n:
                end, = struct.unpack_from("<H", data, rec + 12 + 8)
            else:
                blob = data[off + nameoff:off + length]
                end = nameoff + (blob.index(0) if 0 in blob else len(blob))
            self.entries.append((rec, nid, nameoff, off + nameoff, end - nameoff))


class Image:
    def __init__(self, data):
        self.data = bytes(data)
        sb = SUPER
        self.root_nid, = struct.unpack_from("<H", data, sb + 14)
        self.blocks, self.meta_blkaddr, self.xattr_blkaddr = struct.unpack_from(
            "<III", data, sb + 36)
        self.meta_off = self.meta_blkaddr * BLK
        self.xattr_off = self.xattr_blkaddr * BLK
        self.inodes = {}
        self.chunks = []
        self.parent = {}
        self.xattr_entries = []  # (nid, entry offset)
        self.shared_refs = []    # (nid, offset of the u32 id)
        queue = [self.root_nid]
        self.parent[self.root_nid] = self.root_nid
        while queue:
            nid = queue.pop(0)
            ino = Inode(data, self.meta_off, nid)
            self.inodes[nid] = ino
            self._xattrs(ino)
            if ino.type != 0o040000:
                continue
            for ch in self._dir_chunks(ino):
                self.chunks.append(ch)
                for rec, cnid, _, name_off, name_len in ch.entries:
                    name = data[name_off:name_off + name_len]
                    if name in (b".", b"..") or cnid in self.parent:
                        continue
                    self.parent[cnid] = nid
                    queue.append(cnid)

    def _xattrs(self, ino):
        if not ino.icount:
            return
        area = ino.xattr_off
        shared = self.data[area + 4]
        for i in range(shared):
            self.shared_refs.append((ino.nid, area + 12 + 4 * i))
        pos = 12 + 4 * shared
        while ino.xattr_size - pos >= 4:
            nlen, _, vlen = struct.unpack_from("<BBH", self.data, area + pos)
            self.xattr_entries.append((ino.nid, area + pos))
            pos += (4 + nlen + vlen + 3) & ~3

    def _dir_chunks(self, ino):
        nblocks = (ino.size + BLK - 1) // BLK
        tail = 0
        if ino.layout == 2 and nblocks:  # FLAT_INLINE
            nblocks -= 1
            tail = ino.size - nblocks * BLK
        out = []
        for b in range(nblocks):
            length = min(BLK, ino.size - b * BLK)
            out.append(Chunk(self.data, ino.nid, (ino.u + b) * BLK, length))
        if tail:
            out.append(Chunk(self.data, ino.nid, ino.tail_off, tail))
        return out

    def dirs(self):
        return [i for i in self.inodes.values() if i.type == 0o040000]

    def ancestors(self, nid):
        out = []
        while True:
            p = self.parent[nid]
            out.append(p)
            if p == nid:
                return out
            nid = p
