#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""mkcomposefs --from-oci: an OCI image layout to one flattened image,
against umoci.

umoci builds the layouts (umoci repack diffs a bundle into a new layer,
umoci raw add-layer appends a layer written with Python's tarfile for the
opaque directories umoci never writes itself); the reference is
mkcomposefs --hardlinks --digest-store of the image unpacked as root with
umoci unpack. Layers are rewritten as zstd and uncompressed blobs here."""

import json
import os
import shutil
import subprocess
import tarfile

from cfsoci import (blob_path, check, check_store, dump, equal, expect_failure, fails,
                    load_blob_json, make_tree, manifest_of, need, need_root, ok, put_blob,
                    read, recompress_layer, run, save_manifest, set_times, store_objects,
                    tar_bytes, umoci, write, NOBODY)
import cfstest
import cfstools


def build_image(tmp, layout="img", ref="t"):
    """Three layers: a full tree; deletions, replaced types, new hard
    links into the first layer and changed files; an opaque directory and
    explicit whiteouts. Layer 1 is stored zstd, layer 2 uncompressed,
    layer 3 gzip; LAYOUT-gzip keeps all three as umoci wrote them."""
    need_root()
    need("umoci")
    need("zstd")
    img = os.path.join(tmp, layout)
    bundle = os.path.join(tmp, "bundle")
    umoci("init", "--layout", img)
    umoci("new", "--image", img + ":" + ref)
    umoci("unpack", "--image", img + ":" + ref, bundle)
    rootfs = os.path.join(bundle, "rootfs")
    make_tree(rootfs, 11)
    umoci("repack", "--refresh-bundle", "--image", img + ":" + ref, bundle)

    # Layer 2.
    os.unlink(os.path.join(rootfs, "one"))                  # deleted file
    shutil.rmtree(os.path.join(rootfs, "private"))         # deleted directory
    os.unlink(os.path.join(rootfs, "ext65"))               # file -> directory
    os.makedirs(os.path.join(rootfs, "ext65/inside"))
    write(os.path.join(rootfs, "ext65/inside/f"), b"in a new directory\n" * 10)
    shutil.rmtree(os.path.join(rootfs, "dir/sub"))         # directory -> file
    write(os.path.join(rootfs, "dir/sub"), b"was a directory")
    os.unlink(os.path.join(rootfs, "abs-link"))            # symlink -> fifo
    os.mkfifo(os.path.join(rootfs, "abs-link"))
    os.link(os.path.join(rootfs, "mid"), os.path.join(rootfs, "mid-link2"))  # into layer 1
    os.link(os.path.join(rootfs, "setuid"), os.path.join(rootfs, "dir/setuid-link"))
    write(os.path.join(rootfs, "block"), os.urandom(9000))  # changed content
    write(os.path.join(rootfs, "new-small"), b"tiny")
    os.setxattr(os.path.join(rootfs, "inline64"), "user.added", b"in layer 2")
    for p in ("", "dir", "ext65", "ext65/inside", "ext65/inside/f", "dir/sub", "abs-link",
              "block", "new-small", "mid", "setuid"):
        set_times(os.path.join(rootfs, p), 1650000000 + len(p), 5000 + len(p))
    umoci("repack", "--image", img + ":" + ref, bundle)

    # Layer 3: written by hand.
    layer3 = tar_bytes([
        (dict(name="./", type=tarfile.DIRTYPE, mode=0o751, uid=0, gid=0, mtime=1690000000),
         None),
        (dict(name="dir", type=tarfile.DIRTYPE, mode=0o755, mtime=1690000001), None),
        (dict(name="dir/.wh..wh..opq", mtime=1690000001), b""),
        (dict(name="dir/after-opaque", mtime=1690000002, uid=42), b"only this is left\n"),
        (dict(name=".wh.fifo", mtime=1690000003), b""),
        (dict(name=".wh.sticky", mtime=1690000003), b""),
        (dict(name="late-link", type=tarfile.LNKTYPE, linkname="dup-a"), None),
    ])
    write(os.path.join(tmp, "layer3.tar"), layer3)
    umoci("raw", "add-layer", "--image", img + ":" + ref, os.path.join(tmp, "layer3.tar"))
    shutil.rmtree(bundle)
    # umoci unpacks gzip layers only: the reference is made from this copy.
    shutil.copytree(img, img + "-gzip")
    recompress_layer(img, ref, 0, "zstd")
    recompress_layer(img, ref, 1, "none")
    return img


def reference(tools, tmp, img, ref="t", store="ref-store"):
    ub = os.path.join(tmp, "unpacked")
    umoci("unpack", "--image", img + ":" + ref, ub)
    ok(run([tools.mkcomposefs, "--hardlinks", "--digest-store=" + os.path.join(tmp, store),
            os.path.join(ub, "rootfs"), os.path.join(tmp, "ref.cfs")]))
    shutil.rmtree(ub)
    return os.path.join(tmp, "ref.cfs")


def test_matches_umoci_unpack(tools, tmp):
    img = build_image(tmp)
    _, _, manifest = manifest_of(img, "t")
    equal([l["mediaType"].rsplit(".", 1)[1] for l in manifest["layers"]],
          ["tar+zstd", "tar", "tar+gzip"], "layer media types")
    ok(run([tools.mkcomposefs, "--from-oci", "--digest-store=" + tmp + "/store",
            img + ":t", tmp + "/oci.cfs"]))
    ref = reference(tools, tmp, img + "-gzip")
    got = dump(tools, tmp + "/oci.cfs")
    equal(got, dump(tools, ref), "dump of --from-oci against umoci unpack")
    for gone in ("/one ", "/private ", "/fifo ", "/sticky ", "/dir/big "):
        check("\n" + gone not in got, "%s should be gone" % gone)
    for there in ("/ext65/inside/f ", "/dir/after-opaque ", "/late-link ", "/mid-link2 "):
        check("\n" + there in got, "%s missing" % there)
    equal(store_objects(tmp + "/store"), store_objects(tmp + "/ref-store"), "store objects")
    check_store(tmp + "/store")
    check(read(tmp + "/oci.cfs") == read(ref), "image bytes differ")
    # A second run into the full store gives the same image.
    ok(run([tools.mkcomposefs, "--from-oci", "--digest-store=" + tmp + "/store",
            img + ":t", tmp + "/again.cfs"]))
    check(read(tmp + "/again.cfs") == read(ref), "second run differs")
    # The only manifest is found without :REF too.
    ok(run([tools.mkcomposefs, "--from-oci", img, tmp + "/noref.cfs"]))
    check(read(tmp + "/noref.cfs") == read(ref), "image without :REF differs")

    # Unprivileged, the same image.
    need("setpriv")
    work = os.path.join(tmp, "nobody")
    os.mkdir(work)
    os.chown(work, NOBODY, NOBODY)
    os.chmod(tmp, 0o755)
    cfstest.open_to_all(img)
    ok(run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
            tools.mkcomposefs, "--from-oci", "--digest-store=" + work + "/s", img + ":t",
            work + "/user.cfs"]))
    check(read(work + "/user.cfs") == read(ref), "image made as nobody differs")
    equal(store_objects(work + "/s"), store_objects(tmp + "/store"), "store as nobody")


def add_platform_index(img, refs_platforms):
    """Replaces index.json by one entry that points at a nested index
    listing the manifests of @refs_platforms [(ref, os, arch)]."""
    index = json.loads(read(os.path.join(img, "index.json")))
    by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m
              for m in index["manifests"]}
    nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
              "manifests": []}
    for ref, os_, arch in refs_platforms:
        d = dict(by_ref[ref])
        d.pop("annotations")
        d["platform"] = {"os": os_, "architecture": arch}
        nested["manifests"].append(d)
    digest, size = put_blob(img, json.dumps(nested).encode())
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
        "size": size, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}
    write(os.path.join(img, "index.json"), json.dumps(top))


def small_image(tmp, img, ref, content):
    bundle = os.path.join(tmp, "b-" + ref)
    if not os.path.exists(img):
        umoci("init", "--layout", img)
    umoci("new", "--image", img + ":" + ref)
    umoci("unpack", "--image", img + ":" + ref, bundle)
    write(os.path.join(bundle, "rootfs", "which"), content)
    umoci("repack", "--image", img + ":" + ref, bundle)
    shutil.rmtree(bundle)


def test_platform_selection(tools, tmp):
    need_root()
    need("umoci")
    img = os.path.join(tmp, "img")
    small_image(tmp, img, "a", b"amd64 image")
    small_image(tmp, img, "b", b"arm64 image")
    add_platform_index(img, [("a", "linux", "amd64"), ("b", "linux", "arm64")])
    for args, want in [(["--platform=linux/amd64"], "amd64"),
                       (["--platform=linux/arm64"], "arm64")]:
        ok(run([tools.mkcomposefs, "--from-oci"] + args + [img + ":multi", tmp + "/o.cfs"]))
        check(want in dump(tools, tmp + "/o.cfs"), "wrong platform picked for %r" % args)
    if os.uname().machine == "x86_64":
        ok(run([tools.mkcomposefs, "--from-oci", img, tmp + "/o.cfs"]))
        check("amd64 image" in dump(tools, tmp + "/o.cfs").replace("\\x20", " "),
              "host platform not picked")
    fails(run([tools.mkcomposefs, "--from-oci", "--platform=linux/s390x", img,
               tmp + "/x.cfs"]), "0 manifests for linux/s390x")
    fails(run([tools.mkcomposefs, "--from-oci", "--platform=linux", img, tmp + "/x.cfs"]),
          "invalid platform 'linux'")
    fails(run([tools.mkcomposefs, "--from-oci", img + ":nope", tmp + "/x.cfs"]),
          "no manifest named 'nope'")
    check(not os.path.exists(tmp + "/x.cfs"), "image written")


def test_whiteout_device_in_layer(tools, tmp):
    # A character device 0/0 in a layer deletes like .wh.NAME.
    need_root()
    need("umoci")
    img = os.path.join(tmp, "img")
    small_image(tmp, img, "t", b"x" * 100)
    write(tmp + "/l.tar", tar_bytes([
        (dict(name="which", type=tarfile.CHRTYPE, devmajor=0, devminor=0), None)]))
    umoci("raw", "add-layer", "--image", img + ":t", tmp + "/l.tar")
    ok(run([tools.mkcomposefs, "--from-oci", img + ":t", tmp + "/o.cfs"]))
    check("\n/which " not in dump(tools, tmp + "/o.cfs"), "device 0/0 did not delete")


def corrupt_cases(img):
    """(name, function that breaks a copy of the layout, message fragments)."""
    def layer_desc(layout, n):
        return manifest_of(layout, "t")[2]["layers"][n]

    def missing_blob(layout):
        d = layer_desc(layout, 1)["digest"]
        os.unlink(blob_path(layout, d))
        return [d, "missing blob"]

    def wrong_size(layout):
        _, _, m = manifest_of(layout, "t")
        m["layers"][2]["size"] += 1
        save_manifest(layout, "t", m)
        return [m["layers"][2]["digest"], "descriptor says"]

    def wrong_digest(layout):
        # Same size, still valid gzip (the header's mtime field), other digest.
        d = layer_desc(layout, 2)["digest"]
        p = blob_path(layout, d)
        data = bytearray(read(p))
        data[4] ^= 0x01
        os.chmod(p, 0o644)
        write(p, bytes(data))
        return [d, "does not match its digest"]

    def wrong_diff_id(layout):
        _, _, m = manifest_of(layout, "t")
        cfg = load_blob_json(layout, m["config"]["digest"])
        cfg["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
        m["config"]["digest"], m["config"]["size"] = put_blob(layout, json.dumps(cfg).encode())
        save_manifest(layout, "t", m)
        return [m["layers"][1]["digest"], "does not match diff_id"]

    def bad_index(layout):
        write(os.path.join(layout, "index.json"), b'{"schemaVersion": 2, "manifests": [')
        return ["index.json", "invalid JSON"]

    def no_layers(layout):
        _, _, m = manifest_of(layout, "t")
        del m["layers"]
        save_manifest(layout, "t", m)
        return ["manifest sha256:", 'no "layers" array']

    def tampered_manifest(layout):
        index = json.loads(read(os.path.join(layout, "index.json")))
        d = index["manifests"][0]["digest"]
        p = blob_path(layout, d)
        data = read(p).replace(b'schemaVersion', b'schemaVersioN')
        os.chmod(p, 0o644)
        write(p, data)
        return [d, "does not match its digest"]

    def symlinked_blob(layout):
        d = layer_desc(layout, 0)["digest"]
        p = blob_path(layout, d)
        shutil.move(p, os.path.join(layout, "elsewhere"))
        os.symlink(os.path.join(layout, "elsewhere"), p)
        return [d, "cannot open"]

    def recompressed(layout, how, cut, frags):
        def f(layout):
            _, _, m = manifest_of(layout, "t")
            layer = m["layers"][0]
            raw = subprocess.run(["zstd", "-q", "-d", "-c"], input=read(
                blob_path(layout, layer["digest"])), stdout=subprocess.PIPE,
                check=True).stdout
            if how == "escape":
                raw = tar_bytes([(dict(name="../../etc/evil"), b"x")])
            data = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE,
                                  check=True).stdout
            if cut:
                data = data[:len(data) // 2]
            layer["digest"], layer["size"] = put_blob(layout, data)
            save_manifest(layout, "t", m)
            return [layer["digest"]] + frags
        return f

    return [
        ("missing blob", missing_blob),
        ("wrong size", wrong_size),
        ("wrong digest", wrong_digest),
        ("wrong diff_id", wrong_diff_id),
        ("bad index.json", bad_index),
        ("manifest without layers", no_layers),
        ("tampered manifest", tampered_manifest),
        ("symlinked blob", symlinked_blob),
        ("truncated zstd layer", recompressed(img, "cut", True, ["truncated zstd"])),
        ("escaping path", recompressed(img, "escape", False,
                                       ["entry '../../etc/evil'", "outside the tree"])),
    ]


def test_bad_images(tools, tmp):
    img = build_image(tmp)
    for name, breaker in corrupt_cases(img):
        layout = os.path.join(tmp, "bad")
        shutil.copytree(img, layout, symlinks=True)
        frags = breaker(layout)
        store = os.path.join(tmp, "store")
        expect_failure(tmp, [tools.mkcomposefs, "--from-oci", "--digest-store=" + store,
                             layout + ":t", tmp + "/out.cfs"], name, frags, store)
        shutil.rmtree(layout)


if __name__ == "__main__":
    cfstools.main(globals())
