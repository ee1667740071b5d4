#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""composefs-store on object stores that mkcomposefs --digest-store fills.

Usage: test-store.py TOOLS_DIR CASE

Cases:
  fsck     a clean store of two images from overlapping trees; then a
           flipped byte, a truncated object, a renamed object, a stray
           temporary file, symlinks and other strays: each found and named
           (text and --json), removed by --repair, and a rebuild makes the
           store whole again
  gc       both images as roots remove nothing; one root removes exactly
           the objects only the other image used (composefs-info objects);
           --dry-run, the default --keep-newer, a directory root and an
           image kept in the store as root; du's figures
  mount    after gc with one root the kept image still mounts with
           mount.composefs and reads back as its source tree
  race     gc --keep-newer=0 in a loop while mkcomposefs --digest-store
           writes a third image: that image never misses an object
  kill     gc killed with SIGKILL at random moments: fsck finds the store
           clean and the kept image complete
"""

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time

import cfsmount
import cfstest
from cfstest import check
from cfstree import compare_trees, make_tree, random_bytes


class Env(cfsmount.WorkDir):
    TOOLS = ("mkcomposefs", "composefs-info", "composefs-store", "mount.composefs")

    def __init__(self, tools_dir, case):
        super().__init__(tools_dir, "store", case)
        self.store = self.path("store")

    def run(self, tool, args, rc=0):
        r = subprocess.run([self.tools[tool]] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if rc is not None:
            check(r.returncode == rc, "%s %s: exit status %d, expected %d\n%s%s" % (
                tool, " ".join(args), r.returncode, rc, out, err))
        return out, err, r.returncode

    def mkcomposefs(self, tree, image):
        self.run("mkcomposefs", ["--digest-store=" + self.store, tree, image])

    def store_cmd(self, args, rc=0):
        return self.run("composefs-store", args, rc)

    def image_objects(self, image):
        out, _, _ = self.run("composefs-info", ["objects", image])
        return set(out.split())

    def missing(self, image):
        out, _, _ = self.run("composefs-info", ["--basedir=" + self.store,
                                                "missing-objects", image])
        return out.split()


def store_files(store):
    """Relative paths of every object-like file in the store."""
    return set(cfstest.store_paths(store))


def object_size(store, rel):
    return os.lstat(os.path.join(store, rel)).st_size


def two_images(env, large=False):
    """Trees 11 and 12 share some contents; both built into env.store.
    With @large, tree 11 also has two files that fsck checks in parts
    (more than 8 MiB)."""
    rng = random.Random(5)
    common = [random_bytes(rng, rng.randint(100, 30000)) for _ in range(6)]
    images = []
    for seed in (11, 12):
        tree = env.path("tree%d" % seed)
        make_tree(tree, seed, shared_contents=common)
        # One content surely in both, one surely only here.
        with open(os.path.join(tree, "common-file"), "wb") as f:
            f.write(common[0])
        with open(os.path.join(tree, "own-file"), "wb") as f:
            f.write(b"only in tree %d\n" % seed * 100)
        if large and seed == 11:
            for i, size in enumerate((12 * 2**20 + 4097, 8 * 2**20 + 4097)):
                with open(os.path.join(tree, "large-%d" % i), "wb") as f:
                    f.write(rng.getrandbits(8 * size).to_bytes(size, "little"))
        images.append((tree, env.path("img%d.cfs" % seed)))
    for tree, image in images:
        env.mkcomposefs(tree, image)
    a, b = (env.image_objects(img) for _, img in images)
    check(a & b, "the trees share no object")
    check(a - b and b - a, "each image must have objects of its own")
    check(store_files(env.store) == a | b, "the store is not the union of the images")
    return images, a, b


# --- fsck -------------------------------------------------------------------------------


def fsck_problems(env, images=(), rc=1, extra=()):
    out, err, _ = env.store_cmd(["fsck", "--quiet"] + list(extra) + [env.store]
                                + list(images), rc=rc)
    js, _, _ = env.store_cmd(["fsck", "--json", env.store] + list(images), rc=rc)
    report = json.loads(js)
    check(report["clean"] == (rc == 0), "json clean flag is %r" % report["clean"])
    return out, report


def expect_problem(out, report, kind, path):
    check(any(line.startswith("%s: %s:" % (kind, path)) for line in out.splitlines()),
          "fsck did not report %s %s:\n%s" % (kind, path, out))
    check(any(p["kind"] == kind and p["path"] == path for p in report["problems"]),
          "fsck --json did not report %s %s: %r" % (kind, path, report["problems"]))


def case_fsck(env):
    # The two largest objects, checked in parts, are the flipped and the
    # truncated one below.
    images, a, b = two_images(env, large=True)
    imgs = [img for _, img in images]
    out, _, _ = env.store_cmd(["fsck", env.store] + imgs)
    check(out.endswith(": clean\n"), "clean store: %r" % out)
    js, _, _ = env.store_cmd(["fsck", "--json", env.store] + imgs)
    report = json.loads(js)
    check(report["clean"] and report["problems"] == [], "clean store: %r" % report)
    check(report["objects"] == len(a | b), "json object count %r" % report["objects"])
    check([i["missing_objects"] for i in report["images"]] == [0, 0],
          "images miss objects: %r" % report["images"])

    # Damage: a flipped byte, a truncated object, one renamed to another
    # digest-like name and one to a name that is none.
    # Objects of the first image alone, so that each is missing once.
    objs = sorted(a - b, key=lambda rel: (-object_size(env.store, rel), rel))
    flipped, truncated, renamed, misnamed = objs[0], objs[1], objs[2], objs[3]
    with open(os.path.join(env.store, flipped), "r+b") as f:
        f.seek(object_size(env.store, flipped) // 2)
        c = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([c[0] ^ 0x01]))
    os.truncate(os.path.join(env.store, truncated), object_size(env.store, truncated) - 1)
    renamed_to = renamed[:3] + "0" * 62
    os.rename(os.path.join(env.store, renamed), os.path.join(env.store, renamed_to))
    misnamed_to = misnamed + ".orig"
    os.rename(os.path.join(env.store, misnamed), os.path.join(env.store, misnamed_to))
    # Strays: a writer's leftover, symlinks to real content outside the
    # store (one with an object's name, one as a subdirectory), a FIFO,
    # a directory, a file at the top.
    with open(os.path.join(env.store, ".tmpLeftOver1"), "wb") as f:
        f.write(b"partial")
    outside = env.path("outside")
    os.mkdir(outside)
    victim = os.path.join(outside, "content")
    shutil.copy(os.path.join(env.store, objs[4]), victim)
    link_obj = objs[4]
    os.unlink(os.path.join(env.store, link_obj))
    os.symlink(victim, os.path.join(env.store, link_obj))
    free_sub = next("%02x" % i for i in range(256)
                    if not os.path.exists(os.path.join(env.store, "%02x" % i)))
    os.symlink(outside, os.path.join(env.store, free_sub))
    fifo = objs[5][:3] + "f" * 62
    os.mkfifo(os.path.join(env.store, fifo))
    os.makedirs(os.path.join(env.store, "stray-dir", "deeper"))
    with open(os.path.join(env.store, "stray-dir", "deeper", "x"), "w") as f:
        f.write("x")
    with open(os.path.join(env.store, "README"), "w") as f:
        f.write("not an object\n")

    out, report = fsck_problems(env, imgs)
    expect_problem(out, report, "corrupt", flipped)
    expect_problem(out, report, "corrupt", truncated)
    expect_problem(out, report, "corrupt", renamed_to)
    expect_problem(out, report, "wrong-name", misnamed_to)
    expect_problem(out, report, "temporary", ".tmpLeftOver1")
    expect_problem(out, report, "symlink", link_obj)
    expect_problem(out, report, "symlink", free_sub)
    expect_problem(out, report, "wrong-type", fifo)
    expect_problem(out, report, "wrong-name", "stray-dir")
    expect_problem(out, report, "wrong-name", "README")
    for rel in (flipped, truncated, renamed, misnamed, link_obj):
        expect_problem(out, report, "missing", rel)
    check(len(report["problems"]) == 15, "expected 15 problems, got %d: %r" % (
        len(report["problems"]), [(p["kind"], p["path"]) for p in report["problems"]]))
    check(out.rstrip().endswith("15 problems"), "summary line: %r" % out[-200:])
    # An image that does not load is a problem too.
    bad = env.path("bad.cfs")
    with open(bad, "wb") as f:
        f.write(b"not an image")
    out, report = fsck_problems(env, [bad])
    expect_problem(out, report, "bad-image", bad)

    # The check itself failing is exit status 2.
    env.store_cmd(["fsck", env.path("no-such-store")], rc=2)

    out, _, _ = env.store_cmd(["fsck", "--repair", "--quiet", env.store] + imgs, rc=1)
    check("15 problems, 10 removed" in out, "repair summary: %r" % out[-300:])
    check(os.path.exists(victim), "--repair followed a symlink out of the store")
    check(os.path.isdir(outside), "--repair removed the symlinked directory's target")
    out, report = fsck_problems(env, imgs)
    check(sorted(p["kind"] for p in report["problems"]) == ["missing"] * 5,
          "after --repair only the missing objects remain: %r" % report["problems"])
    damaged = {flipped, truncated, renamed, misnamed, link_obj}
    check(set(env.missing(imgs[0])) == damaged and env.missing(imgs[1]) == [],
          "after --repair the first image should miss exactly the damaged objects")
    # The rebuild brings the objects back.
    for tree, img in images:
        env.mkcomposefs(tree, img)
    out, _, _ = env.store_cmd(["fsck", env.store] + imgs)
    check(out.endswith(": clean\n"), "after the rebuild: %r" % out)
    check(store_files(env.store) == a | b, "the rebuilt store differs from the first")
    for img in imgs:
        check(env.missing(img) == [], "%s misses objects after the rebuild" % img)
    print("fsck: 15 problems found and named, 10 removed, rebuilt store clean")


# --- gc and du ------------------------------------------------------------------------------


def case_gc(env):
    images, a, b = two_images(env)
    (tree_a, img_a), (tree_b, img_b) = images
    everything = store_files(env.store)

    # Fresh objects are kept by the default --keep-newer even when unused.
    out, _, _ = env.store_cmd(["gc", env.store, img_a])
    check(out.startswith("removed 0 objects"), "default --keep-newer: %r" % out)
    check(store_files(env.store) == everything, "the default gc removed fresh objects")

    env.store_cmd(["gc", "--keep-newer=0", env.store, img_a, img_b])
    check(store_files(env.store) == everything, "gc with both roots removed objects")

    # du before removing anything.
    js, _, _ = env.store_cmd(["du", "--json", env.store, img_a, img_b])
    du = json.loads(js)
    size = {rel: object_size(env.store, rel) for rel in everything}
    check(du["objects"] == len(everything), "du objects %r" % du["objects"])
    check(du["apparent_bytes"] == sum(size.values()), "du apparent bytes")
    check(du["allocated_bytes"] >= 0, "du allocated bytes")
    check(du["unused_objects"] == 0, "du: unused objects with both images")
    for entry, mine, other in ((du["images"][0], a, b), (du["images"][1], b, a)):
        check(entry["objects"] == len(mine), "du objects of %s" % entry["image"])
        check(entry["bytes"] == sum(size[r] for r in mine), "du bytes of %s" % entry["image"])
        check(entry["only_bytes"] == sum(size[r] for r in mine - other),
              "du only_bytes of %s" % entry["image"])
        check(entry["shared_bytes"] == sum(size[r] for r in mine & other),
              "du shared_bytes of %s" % entry["image"])
    out, _, _ = env.store_cmd(["du", env.store, img_a])
    check("unused: %d objects" % len(b - a) in out, "du unused line: %r" % out)

    only_b = b - a
    out, _, _ = env.store_cmd(["gc", "--dry-run", "--keep-newer=0", env.store, img_a])
    check(out.startswith("would remove %d objects, %d bytes" % (
        len(only_b), sum(size[r] for r in only_b))), "dry run: %r" % out)
    check(store_files(env.store) == everything, "--dry-run removed objects")

    # A directory of images as root: keeps both.
    roots = env.path("roots")
    os.mkdir(roots)
    shutil.copy(img_a, os.path.join(roots, "a.cfs"))
    shutil.copy(img_b, os.path.join(roots, "b.cfs"))
    with open(os.path.join(roots, "notes.txt"), "w") as f:
        f.write("not an image, skipped\n")
    env.store_cmd(["gc", "--keep-newer=0", env.store, roots])
    check(store_files(env.store) == everything, "a directory root lost objects")

    # An image kept in the store as an object, named by its digest.
    digest, _, _ = env.run("composefs-info", ["measure-file", img_b])
    digest = digest.strip()
    kept_b = digest[:2] + "/" + digest[2:]
    os.makedirs(os.path.join(env.store, digest[:2]), exist_ok=True)
    shutil.copy(img_b, os.path.join(env.store, kept_b))
    env.store_cmd(["gc", "--keep-newer=0", env.store, digest])
    check(store_files(env.store) == b | {kept_b},
          "a digest root: left %d objects, expected %d" % (
              len(store_files(env.store)), len(b) + 1))
    out, _, _ = env.store_cmd(["fsck", env.store, digest])
    check(out.endswith(": clean\n"), "fsck with a digest image: %r" % out)
    for tree, img in images:
        env.mkcomposefs(tree, img)
    os.unlink(os.path.join(env.store, kept_b))

    # One root: exactly the objects only the other image used go.
    out, _, _ = env.store_cmd(["gc", "--keep-newer=0", "--verbose", env.store, img_a])
    removed = {line.split()[-1] for line in out.splitlines() if line.startswith("removed ")
               and "/" in line.split()[-1]}
    check(removed == only_b, "gc removed %d objects, expected the %d only %s used" % (
        len(removed), len(only_b), img_b))
    check(store_files(env.store) == a, "after gc the store is not image A's objects")
    check(env.missing(img_a) == [], "gc removed objects of the root")
    check(len(env.missing(img_b)) == len(only_b), "image B should miss its own objects")
    env.store_cmd(["gc", env.store], rc=1)  # no root: refused
    env.store_cmd(["gc", "--keep-newer=0", env.store, env.path("no-such.cfs")], rc=1)
    check(store_files(env.store) == a, "a gc with a bad root removed objects")
    # The command line.
    out, _, _ = env.store_cmd(["--help"])
    check(all(c in out for c in ("fsck", "gc", "du")), "--help: %r" % out)
    out, _, _ = env.store_cmd(["--version"])
    check(out.startswith("composefs-store "), "--version: %r" % out)
    out, _, _ = env.store_cmd(["gc", "--help"])
    check("--keep-newer" in out, "gc --help: %r" % out)
    _, err, _ = env.store_cmd(["frobnicate", env.store], rc=1)
    check(err.startswith("composefs-store: unknown command 'frobnicate'\n"),
          "unknown command: %r" % err)
    env.store_cmd(["gc", "--keep-newer=soon", env.store, img_a], rc=1)
    print("gc: kept %d objects, removed the %d only the other image used" % (
        len(a), len(only_b)))


def case_mount(env):
    cfsmount.need_mount()
    cfsmount.private_namespace()
    images, a, b = two_images(env)
    (tree_a, img_a), _ = images
    env.store_cmd(["gc", "--keep-newer=0", env.store, img_a])
    check(store_files(env.store) == a, "gc kept other objects")
    mnt = env.path("mnt")
    os.mkdir(mnt)
    r = subprocess.run([env.tools["mount.composefs"], "-o", "basedir=" + env.store,
                        img_a, mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(r.returncode == 0, "mount.composefs failed: %s" % r.stdout.decode(errors="replace"))
    try:
        n = compare_trees(tree_a, mnt)
    finally:
        subprocess.run(["umount", mnt])
    print("mount: %d entries read back after gc" % n)


# --- gc beside a writer, gc killed ------------------------------------------------------


def flat_tree(path, seed, n, size=(100, 3000)):
    rng = random.Random(seed)
    os.makedirs(path)
    for i in range(n):
        with open(os.path.join(path, "f%05d" % i), "wb") as f:
            f.write(rng.randbytes(rng.randint(*size)))


def case_race(env):
    images, a, b = two_images(env)
    roots = env.path("roots")
    os.mkdir(roots)
    for _, img in images:
        shutil.move(img, os.path.join(roots, os.path.basename(img)))
    rounds, gcs = 0, 0
    for seed in range(2):
        third = env.path("third%d" % seed)
        flat_tree(third, 100 + seed, 2500)
        target = os.path.join(roots, "third.cfs")
        writer = subprocess.Popen([env.tools["mkcomposefs"], "--digest-store=" + env.store,
                                   third, target], stderr=subprocess.PIPE)
        # Each round starts at least one collection while the writer runs
        # (right after it was started); with the lock it waits for the
        # writer's run to end, without it it removes objects under it.
        while writer.poll() is None or gcs <= rounds:
            env.store_cmd(["gc", "--keep-newer=0", env.store, roots])
            gcs += 1
        check(writer.returncode == 0, "mkcomposefs failed: %r" % writer.stderr.read())
        writer.stderr.close()
        env.store_cmd(["gc", "--keep-newer=0", env.store, roots])
        missing = env.missing(target)
        check(missing == [], "round %d: the third image misses %d objects" % (
            seed, len(missing)))
        out, _, _ = env.store_cmd(["fsck", env.store] + [os.path.join(roots, n)
                                                         for n in os.listdir(roots)])
        check(out.endswith(": clean\n"), "fsck after the race: %r" % out)
        os.unlink(target)
        shutil.rmtree(third)
        rounds += 1
    print("race: %d rounds, %d collections beside the writer, no object lost" % (
        rounds, gcs))


def case_kill(env):
    keep = env.path("keep")
    flat_tree(keep, 1, 200)
    junk = env.path("junk")
    flat_tree(junk, 2, 2500, size=(65, 600))
    img_keep, img_junk = env.path("keep.cfs"), env.path("junk.cfs")
    env.mkcomposefs(keep, img_keep)
    env.mkcomposefs(junk, img_junk)
    kept = env.image_objects(img_keep)
    everything = store_files(env.store)
    # Second names for every object outside the store put the removed ones
    # back between attempts, faster than building the image again.
    spare = env.path("spare")
    os.mkdir(spare)
    for rel in everything:
        os.link(os.path.join(env.store, rel), os.path.join(spare, rel.replace("/", "")))

    def restore():
        for rel in everything - store_files(env.store):
            os.link(os.path.join(spare, rel.replace("/", "")), os.path.join(env.store, rel))

    argv = [env.tools["composefs-store"], "gc", "--keep-newer=0", env.store, img_keep]
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    check(store_files(env.store) == kept, "the uninterrupted gc kept other objects")
    # gc removes in digest order: once the first of the others is gone,
    # the removals have begun. A kill soon after lands among them however
    # loaded the machine is.
    first = os.path.join(env.store, min(everything - kept))
    rng = random.Random(9)
    midway = attempts = 0
    while attempts < 8 and midway < 3:
        attempts += 1
        restore()
        gc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        while os.path.lexists(first) and gc.poll() is None:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.01))
        gc.send_signal(signal.SIGKILL)
        gc.wait()
        left = len(store_files(env.store))
        midway += len(kept) < left < len(everything)
        out, _, _ = env.store_cmd(["fsck", "--quiet", env.store, img_keep])
        check(out.endswith(": clean\n"), "attempt %d: fsck after SIGKILL: %r" % (
            attempts, out[-500:]))
        check(env.missing(img_keep) == [], "attempt %d: the root lost objects" % attempts)
    check(midway > 0, "no SIGKILL landed while gc was removing objects")
    print("kill: %d SIGKILLs, %d during the removals, store clean each time" % (
        attempts, midway))


if __name__ == "__main__":
    cfsmount.main(globals(), Env, needs_mount=False)
