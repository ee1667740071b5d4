# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Helpers for the tar layer and OCI image tests.

The references are independent tools: GNU tar extracts a layer as root,
umoci builds and unpacks OCI image layouts, and mkcomposefs --hardlinks
(directory mode) makes the reference image of what they extracted. Trees
are generated here with every kind of entry the directory tests cover."""

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

from cfstree import make_layer_tree as make_tree, set_times  # noqa: F401
from cfstools import Failure, Skip, check, equal, fails, ok, read, run, write  # noqa: F401

NOBODY = 65534


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root to extract owners, devices and trusted xattrs")


def need(prog):
    if shutil.which(prog) is None:
        raise Skip("%s is not installed" % prog)


def gnu_tar(src, out, fmt="posix", sparse=True):
    """A layer of @src made by GNU tar, with xattrs and ACLs."""
    argv = ["tar", "--format=" + fmt, "--numeric-owner", "--sort=name", "-C", src, "-cf", out]
    if fmt == "posix":
        argv[1:1] = ["--xattrs", "--xattrs-include=*", "--acls"]
    if sparse:
        argv.insert(1, "--sparse")
    argv.append(".")
    subprocess.run(argv, check=True)
    return out


def extract_layer(layer, dest):
    """Extracts @layer as root with GNU tar (an extractor independent of
    libarchive) and converts its OCI whiteouts as containers/storage's
    overlay driver does: .wh.NAME -> character device 0/0, mode 0, owner
    0:0, the whiteout's mtime; .wh..wh..opq -> trusted.overlay.opaque=y.
    Directory mtimes are kept."""
    os.makedirs(dest)
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner",
                    "-xpf", layer, "-C", dest], check=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        names = [n for n in filenames if n.startswith(".wh.")]
        if not names:
            continue
        dst = os.lstat(dirpath)
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            os.unlink(p)
            if n == ".wh..wh..opq":
                os.setxattr(dirpath, "trusted.overlay.opaque", b"y")
                continue
            w = os.path.join(dirpath, n[4:])
            if os.path.lexists(w):
                if os.path.isdir(w) and not os.path.islink(w):
                    shutil.rmtree(w)
                else:
                    os.unlink(w)
            os.mknod(w, stat.S_IFCHR, os.makedev(0, 0))
            os.chmod(w, 0)
            os.lchown(w, 0, 0)
            os.utime(w, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
        os.utime(dirpath, ns=(dst.st_atime_ns, dst.st_mtime_ns), follow_symlinks=False)


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """A tar stream written by Python's tarfile, for what GNU tar and umoci
    cannot write: @entries are (TarInfo fields dict, data bytes or None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for fields, data in entries:
            fields = dict(fields)
            ti = tarfile.TarInfo(fields.pop("name"))
            for k, v in fields.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return out.getvalue()


def dump(tools, image):
    return ok(run([tools.info, "dump", image])).out.decode("utf-8", "replace")


def store_objects(store):
    """Relative paths of the objects in a store, and of any other file but
    the store's lock file (`.lock` at the top, see composefs-store(1))."""
    out = []
    for dirpath, dirnames, filenames in os.walk(store):
        for n in filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), store)
            if rel != ".lock":
                out.append(rel)
    return sorted(out)


def check_store(store):
    """Every object is named by its content's fs-verity digest prefix
    layout, and no temporary file is left."""
    no_temp_files(store)
    for rel in store_objects(store):
        check(not os.path.basename(rel).startswith(".tmp"),
              "temporary file left in the store: %s" % rel)
        check(len(rel) == 65 and rel[2] == "/", "odd file in the store: %s" % rel)


def no_temp_files(store):
    """Nothing temporary, file or staging directory, in @store."""
    if not os.path.isdir(store):
        return
    left = [p for p in store_objects(store) if os.path.basename(p).startswith(".tmp")]
    left += [n for n in os.listdir(store) if n.startswith(".tmp")]
    check(not left, "temporary files left in the store: %r" % left)


def expect_failure(tmp, argv, what, frags, store):
    """@argv must fail with one line holding @frags, leave no image
    (tmp/out.cfs, the last operand) and publish nothing into @store."""
    r = run(argv)
    try:
        fails(r, *frags)
    except Failure as e:
        raise Failure("%s: %s" % (what, e))
    check(len(r.err.splitlines()) == 1, "%s: one line expected" % what, r)
    check(not [n for n in os.listdir(tmp) if n.startswith("out.cfs")],
          "%s: image or temporary image left" % what)
    nothing_published(store)


def nothing_published(store):
    """A failed run published no object: the input is verified first."""
    no_temp_files(store)
    if os.path.isdir(store):
        check(store_objects(store) == [], "objects published by a failed run: %r"
              % store_objects(store)[:5])


# ---- OCI layouts -----------------------------------------------------------------


def put_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    write(os.path.join(layout, "blobs", "sha256", d), data)
    return "sha256:" + d, len(data)


def blob_path(layout, digest):
    alg, hexd = digest.split(":")
    return os.path.join(layout, "blobs", alg, hexd)


def load_blob_json(layout, digest):
    return json.loads(read(blob_path(layout, digest)))


def manifest_of(layout, ref):
    index = json.loads(read(os.path.join(layout, "index.json")))
    for i, m in enumerate(index["manifests"]):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            return index, i, load_blob_json(layout, m["digest"])
    raise Failure("no manifest %s in %s" % (ref, layout))


def save_manifest(layout, ref, manifest):
    index, i, _ = manifest_of(layout, ref)
    digest, size = put_blob(layout, json.dumps(manifest).encode())
    index["manifests"][i]["digest"] = digest
    index["manifests"][i]["size"] = size
    write(os.path.join(layout, "index.json"), json.dumps(index))


def recompress_layer(layout, ref, n, how):
    """Rewrites layer @n of @ref as "none", "gzip" or "zstd" (the diff_id
    stays what it was)."""
    _, _, manifest = manifest_of(layout, ref)
    layer = manifest["layers"][n]
    raw = gzip.decompress(read(blob_path(layout, layer["digest"])))
    base = "application/vnd.oci.image.layer.v1.tar"
    if how == "none":
        data, mt = raw, base
    elif how == "gzip":
        data, mt = gzip.compress(raw), base + "+gzip"
    else:
        data = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE,
                              check=True).stdout
        mt = base + "+zstd"
    digest, size = put_blob(layout, data)
    layer.update(mediaType=mt, digest=digest, size=size)
    save_manifest(layout, ref, manifest)


def umoci(*args):
    subprocess.run(["umoci"] + list(args), check=True, stdout=subprocess.DEVNULL)
