#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""mount.composefs on the real kernel (docs/design.md, "Mounting").

Usage: test-mount-tree.py TOOLS_DIR [-k CASE]

Cases:
  tree      random trees -> mkcomposefs --digest-store -> mount.composefs;
            the mount must show every entry as in the source (type, mode,
            owner, mtime, size, symlink target, device number, xattrs,
            content)
  shared    two images sharing one object store, mounted at once
  upper     upperdir/workdir: writes land in the upper directory
  failures  corrupt image, wrong digest, verity without fs-verity, missing
            basedir, missing object
  options   option parsing, -o handling and messages, idmap, mount -t
  verity    fs-verity positive paths (SKIP without kernel fs-verity)

Every case runs in a private mount namespace with its own /tmp, and checks
after each mount and each failure that the mount table, the
/tmp/.composefs.* directories and the loop devices backed by its files are
as before.
"""

import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess

import cfsmount
import cfstest
from cfstest import Failure, check, skip
from cfstree import compare_trees, make_tree, random_bytes, sha256_file, walk

PROG = "mount.composefs"


def fsverity_works(directory):
    """Whether fs-verity can be enabled on a file in @directory."""
    path = os.path.join(directory, "verity-probe")
    with open(path, "wb") as f:
        f.write(b"probe")
    try:
        r = subprocess.run(["fsverity", "enable", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        return r.returncode == 0, r.stderr.decode(errors="replace").strip()
    except FileNotFoundError:
        return False, "the fsverity tool is not installed"
    finally:
        os.unlink(path)


class Env(cfsmount.WorkDir):
    TOOLS = ("mkcomposefs", "mount.composefs")

    def __init__(self, tools_dir, case):
        # On a real filesystem, not the private tmpfs: fs-verity support
        # is a property of the filesystem holding the objects.
        super().__init__(tools_dir, "mount", case)
        self.mounts = []
        self.baseline = None

    def snapshot(self):
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
        tmpdirs = sorted(n for n in os.listdir("/tmp") if n.startswith(".composefs."))
        loops = subprocess.run(["losetup", "-a"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
        ours = sorted(line for line in loops.splitlines() if self.dir in line)
        return mounts, tmpdirs, ours

    def paths(self):
        """The usual places of a case: tree, store, image and mount point."""
        return self.path("tree"), self.path("store"), self.path("img.cfs"), self.path("mnt")

    def mark(self):
        self.baseline = self.snapshot()

    def check_clean(self, what):
        now = self.snapshot()
        if now != self.baseline:
            raise Failure("%s left something behind:\nbefore: %r\nafter:  %r" % (
                what, self.baseline, now))

    def mkcomposefs(self, tree, image, store):
        r = subprocess.run([self.tools["mkcomposefs"], "--digest-store=" + store,
                            tree, image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(r.returncode == 0, "mkcomposefs %s failed: %s" % (
            tree, r.stderr.decode(errors="replace")))

    def mount_tool(self, args, tool=None):
        argv = [tool or self.tools["mount.composefs"]] + list(args)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return r.returncode, r.stderr.decode(errors="replace")

    def mount(self, image, mnt, options):
        os.makedirs(mnt, exist_ok=True)
        rc, err = self.mount_tool(["-o", options, image, mnt])
        check(rc == 0, "mount.composefs -o %s %s failed: %s" % (options, image, err))
        check(err == "", "mount.composefs printed on success: %r" % err)
        self.mounts.append(mnt)

    def umount(self, mnt):
        r = subprocess.run(["umount", mnt], stderr=subprocess.PIPE)
        check(r.returncode == 0, "umount %s: %s" % (mnt, r.stderr.decode()))
        self.mounts.remove(mnt)

    def expect_failure(self, args, *needles):
        """mount.composefs must fail with exactly one line naming @needles,
        and leave nothing behind."""
        self.mark()
        rc, err = self.mount_tool(args)
        check(rc == 1, "%r: exit status %d, expected 1 (stderr %r)" % (args, rc, err))
        check(err.endswith("\n") and err.count("\n") == 1,
              "%r: expected one line of error, got %r" % (args, err))
        check(err.startswith(PROG + ": "), "%r: message lacks the prefix: %r" % (args, err))
        for n in needles:
            check(n in err, "%r: message %r lacks %r" % (args, err, n))
        self.check_clean("failing %r" % (args,))
        return err

    def close(self):
        for mnt in reversed(self.mounts):
            subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        super().close()


def object_files(store):
    return [os.path.join(store, rel) for rel in cfstest.store_paths(store)]


# --- cases ---------------------------------------------------------------------------


def case_tree(env):
    for seed in (1, 2, 3):
        tree, store = env.path("tree%d" % seed), env.path("store%d" % seed)
        image, mnt = env.path("tree%d.cfs" % seed), env.path("mnt%d" % seed)
        n = make_tree(tree, seed)
        env.mkcomposefs(tree, image, store)
        env.mark()
        env.mount(image, mnt, "basedir=" + store)
        compared = compare_trees(tree, mnt)
        check(compared == n, "compared %d entries, the tree has %d" % (compared, n))
        env.umount(mnt)
        env.check_clean("mount/umount of seed %d" % seed)
        print("seed %d: %d entries identical, %d objects" % (
            seed, compared, len(object_files(store))))


def case_shared(env):
    rng = random.Random(7)
    common = [random_bytes(rng, rng.randint(100, 50000)) for _ in range(5)]
    store = env.path("store")
    trees = []
    for seed in (11, 12):
        tree, image = env.path("tree%d" % seed), env.path("tree%d.cfs" % seed)
        make_tree(tree, seed, shared_contents=common)
        trees.append((tree, image, env.path("mnt%d" % seed)))
    env.mkcomposefs(trees[0][0], trees[0][1], store)
    after_first = set(object_files(store))
    env.mkcomposefs(trees[1][0], trees[1][1], store)
    after_both = set(object_files(store))
    check(after_first <= after_both, "the second build removed objects")
    env.mark()
    for tree, image, mnt in trees:
        env.mount(image, mnt, "basedir=" + store)
    for tree, image, mnt in trees:
        compare_trees(tree, mnt)
    for tree, image, mnt in trees:
        env.umount(mnt)
    env.check_clean("two images mounted at once")
    print("two images, one store of %d objects (%d after the first): identical" % (
        len(after_both), len(after_first)))


def case_upper(env):
    tree, store, image, mnt = env.paths()
    upper, work = env.path("upper"), env.path("work")
    make_tree(tree, 21)
    with open(os.path.join(tree, "existing"), "wb") as f:
        f.write(b"lower content " * 1000)
    os.utime(tree, ns=(10**18, 10**18))
    env.mkcomposefs(tree, image, store)
    objects_before = {p: sha256_file(p) for p in object_files(store)}
    os.mkdir(upper)
    os.mkdir(work)
    env.mark()
    env.mount(image, mnt, "basedir=%s,upperdir=%s,workdir=%s" % (store, upper, work))
    with open(os.path.join(mnt, "new-file"), "wb") as f:
        f.write(b"written through the mount")
    with open(os.path.join(mnt, "existing"), "ab") as f:
        f.write(b"appended")
    os.mkdir(os.path.join(mnt, "new-dir"))
    env.umount(mnt)
    env.check_clean("mount with upperdir")
    with open(os.path.join(upper, "new-file"), "rb") as f:
        check(f.read() == b"written through the mount", "new file not in upperdir")
    with open(os.path.join(upper, "existing"), "rb") as f:
        check(f.read() == b"lower content " * 1000 + b"appended",
              "copied-up file has the wrong content in upperdir")
    check(os.path.isdir(os.path.join(upper, "new-dir")), "new directory not in upperdir")
    with open(os.path.join(tree, "existing"), "rb") as f:
        check(f.read() == b"lower content " * 1000, "the source changed")
    objects_after = {p: sha256_file(p) for p in object_files(store)}
    check(objects_before == objects_after, "the object store changed")
    # Mounted again, the changes are there.
    env.mount(image, mnt, "basedir=%s,upperdir=%s,workdir=%s" % (store, upper, work))
    with open(os.path.join(mnt, "existing"), "rb") as f:
        check(f.read().endswith(b"appended"), "change lost on the second mount")
    env.umount(mnt)
    env.check_clean("second mount with upperdir")
    # Read-only without upperdir: writes fail.
    env.mount(image, mnt, "basedir=" + store)
    try:
        open(os.path.join(mnt, "nope"), "wb").close()
        raise Failure("a write succeeded on a mount without upperdir")
    except OSError as e:
        check(e.errno == errno.EROFS, "write without upperdir: %s" % e)
    env.umount(mnt)
    env.check_clean("read-only mount")
    print("upperdir/workdir: writes land in the upper directory")


def case_failures(env):
    tree, store, image, mnt = env.paths()
    os.mkdir(mnt)
    make_tree(tree, 31)
    big = os.path.join(tree, "victim")
    with open(big, "wb") as f:
        f.write(b"v" * 100000)
    env.mkcomposefs(tree, image, store)
    verity, why = fsverity_works(env.dir)

    # A corrupt image: the composefs header is fine, the EROFS
    # superblock is not.
    corrupt = env.path("corrupt.cfs")
    with open(image, "rb") as f:
        data = bytearray(f.read())
    data[1024:1028] = b"\0\0\0\0"
    with open(corrupt, "wb") as f:
        f.write(data)
    env.expect_failure(["-o", "basedir=" + store, corrupt, mnt],
                       "Failed to mount composefs %s: Invalid argument" % corrupt)
    # Not a composefs image at all.
    notimage = env.path("notimage")
    with open(notimage, "wb") as f:
        f.write(b"\0" * 8192)
    env.expect_failure(["-o", "basedir=" + store, notimage, mnt],
                       "Invalid argument", "not a composefs image")
    # A truncated header.
    short = env.path("short.cfs")
    with open(short, "wb") as f:
        f.write(data[:16])
    env.expect_failure(["-o", "basedir=" + store, short, mnt], "too short")
    # A missing image.
    env.expect_failure(["-o", "basedir=" + store, env.path("nothing.cfs"), mnt],
                       "Failed to open %s: No such file or directory" % env.path("nothing.cfs"))

    # A wrong digest: without fs-verity on the image it has none; with it,
    # the digest is wrong.
    wrong = "ab" * 32
    expected = "Image has wrong fs-verity" if verity else "Image has no fs-verity"
    if verity:
        subprocess.run(["fsverity", "enable", image], check=True)
    env.expect_failure(["-o", "basedir=%s,digest=%s" % (store, wrong), image, mnt],
                       "Failed to mount composefs %s: %s" % (image, expected))
    # verity required: fails here unless the kernel and the store's
    # filesystem have fs-verity.
    if not verity:
        env.expect_failure(["-o", "basedir=%s,verity" % store, image, mnt],
                           "Image has no fs-verity")
        env.expect_failure(["-o", "basedir=%s,digest=" % store, image, mnt],
                           "Image has no fs-verity")
        # ...and noverity after it cancels the requirement.
        env.mark()
        env.mount(image, mnt, "basedir=%s,verity,noverity" % store)
        env.umount(mnt)
        env.check_clean("verity,noverity")
    else:
        print("verity-required failure: SKIP (this kernel has fs-verity)")

    # A missing basedir.
    missing = env.path("no-such-store")
    env.expect_failure(["-o", "basedir=" + missing, image, mnt],
                       "No such file or directory", missing)
    env.expect_failure(["-o", "basedir=%s:%s" % (store, missing), image, mnt],
                       "No such file or directory", missing)
    # A basedir that is a file: overlayfs explains itself through the fs
    # context, and its words reach the message.
    afile = env.path("a-file")
    open(afile, "w").close()
    err = env.expect_failure(["-o", "basedir=" + afile, image, mnt],
                             "Invalid argument", "overlay: ", afile)
    print("basedir is a file: %s" % err.strip())
    # A missing mount point.
    env.expect_failure(["-o", "basedir=" + store, image, env.path("no-mnt")],
                       "No such file or directory")

    # A missing object: reading that file fails, and nothing is served in
    # its place.
    digest = None
    want = hashlib.sha256(b"v" * 100000).hexdigest()
    for p in object_files(store):
        if sha256_file(p) == want:
            digest = os.path.relpath(p, store)
    check(digest is not None, "cannot find the object of /victim")
    victim_object = os.path.join(store, digest)
    check(os.path.exists(victim_object), "object %s is not in the store" % victim_object)
    os.rename(victim_object, victim_object + ".away")
    env.mark()
    env.mount(image, mnt, "basedir=" + store)
    try:
        with open(os.path.join(mnt, "victim"), "rb") as f:
            got = f.read()
        raise Failure("reading a file whose object is missing returned %d bytes" % len(got))
    except OSError as e:
        print("missing object: reading it fails with %s" % e.strerror)
    # The rest is still served.
    os.rename(victim_object + ".away", env.path("victim-object"))
    survivors = walk(tree)
    survivors.pop("victim")
    for rel, d in survivors.items():
        if d["type"] == stat.S_IFREG:
            check(sha256_file(os.path.join(mnt, rel)) == d["sha256"],
                  "%s has the wrong content" % rel)
    env.umount(mnt)
    env.check_clean("mount with a missing object")
    print("failures: clear one-line errors, nothing left behind")


def case_options(env):
    tree, store, image, mnt = env.paths()
    os.mkdir(mnt)
    os.mkdir(tree)
    with open(os.path.join(tree, "file"), "wb") as f:
        f.write(b"data " * 100)
    env.mkcomposefs(tree, image, store)
    base = ["-o", "basedir=" + store]

    # Usage and argument errors.
    rc, err = env.mount_tool(["-h"])
    check(rc == 0 and "usage:" in err, "-h: %d %r" % (rc, err))
    for word in ("basedir", "digest", "verity", "tryverity", "noverity", "idmap",
                 "upperdir", "workdir", "ro", "rw"):
        check(word in err, "usage does not mention %s" % word)
    rc, err = env.mount_tool(["-x", image, mnt])
    check(rc == 1 and "invalid option" in err and "usage:" in err, "-x: %d %r" % (rc, err))
    rc, err = env.mount_tool(base)
    check(rc == 1 and err.startswith(PROG + ": No source path specified\n"), repr(err))
    rc, err = env.mount_tool(base + [image])
    check(rc == 1 and err.startswith(PROG + ": No mount path specified\n"), repr(err))
    rc, err = env.mount_tool([image, mnt])
    check(rc == 1 and err.startswith(PROG + ": No object dirs specified\n"), repr(err))
    env.expect_failure(["-t", "ext4"] + base + [image, mnt], "Unsupported fs type 'ext4'")

    # Option string errors, each one line.
    for opts, msg in [
            ("basedir=a::b", "Value for basedir option has incorrect format"),
            ("basedir=:a", "Value for basedir option has incorrect format"),
            ("basedir=a:", "Value for basedir option has incorrect format"),
            ("basedir=", "Value for basedir option has incorrect format"),
            ("basedir", "No value specified for basedir option"),
            ("basedir=%s,digest" % store, "No value specified for digest option"),
            ("basedir=%s,upperdir" % store, "No value specified for upperdir option"),
            ("basedir=%s,workdir" % store, "No value specified for workdir option"),
            ("basedir=%s,idmap" % store, "No value specified for idmap option"),
            ("basedir=%s,noatime" % store, "Unsupported option noatime"),
            ("basedir=%s,defaults" % store, "Unsupported option defaults"),
            ("basedir=%s,context=x" % store, "Unsupported option context"),
            ("basedir=%s,upperdir=/x" % store,
             "Both workdir and upperdir must be specified if used"),
            ("basedir=%s,digest=abc" % store, "Invalid argument"),
            ("basedir=%s,digest=zz" % store, "Invalid argument"),
            ("basedir=%s,idmap=%s" % (store, env.path("no-ns")), "Failed to open userns"),
    ]:
        env.expect_failure(["-o", opts, image, mnt], msg)

    # Random option strings: the parser never crashes, and every run ends
    # in one clear line (the mount point does not exist, so nothing can
    # be mounted).
    rng = random.Random(5)
    pieces = ["basedir", "digest", "verity", "tryverity", "noverity", "idmap",
              "upperdir", "workdir", "ro", "rw", "=", "=", ",", ",", "\\", ":",
              "::", store, "ab", "x", "", "\\,", "=="]
    nowhere = env.path("no-such-mountpoint")
    env.mark()
    for _ in range(300):
        opts = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        rc, err = env.mount_tool(["-o", opts, image, nowhere])
        check(rc == 1, "-o %r: exit status %d (%r)" % (opts, rc, err))
        lines = err.splitlines()
        check(lines and lines[0].startswith(PROG + ": "), "-o %r: %r" % (opts, err))
        if "usage:" not in err:
            check(len(lines) == 1 and err.endswith("\n"), "-o %r: %r" % (opts, err))
    env.check_clean("random option strings")

    def mount_options(path):
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == path:
                    return fields[5].split(","), line
        raise Failure("%s is not mounted" % path)

    env.mark()
    # The last -o wins; ro and rw.
    rc, err = env.mount_tool(["-o", "basedir=/nonexistent,ro", "-o",
                              "basedir=" + store, image, mnt])
    check(rc == 0, "last -o did not win: %r" % err)
    env.mounts.append(mnt)
    opts, line = mount_options(mnt)
    check("rw" in opts, "an earlier -o ro was not replaced: %s" % line)
    check("datadir+=" + store in line or "lowerdir=" in line, line)
    env.umount(mnt)
    env.mount(image, mnt, "basedir=%s,ro" % store)
    opts, line = mount_options(mnt)
    check("ro" in opts, "ro is not read-only: %s" % line)
    env.umount(mnt)
    env.mount(image, mnt, "basedir=%s,ro,rw" % store)
    opts, line = mount_options(mnt)
    check("rw" in opts, "rw did not cancel ro: %s" % line)
    env.umount(mnt)
    # tryverity mounts whether or not fs-verity is there.
    env.mount(image, mnt, "basedir=%s,tryverity" % store)
    env.umount(mnt)
    env.check_clean("ro/rw/tryverity")

    # Backslash protects a comma in a value; several basedirs in order.
    odd = env.path("odd,store")
    os.mkdir(odd)
    env.mount(image, mnt, "basedir=%s:%s" % (odd.replace(",", "\\,"), store))
    with open(os.path.join(mnt, "file"), "rb") as f:
        check(f.read() == b"data " * 100, "wrong content with two basedirs")
    env.umount(mnt)
    env.check_clean("escaped comma")

    # Arguments in mount(8)'s order: IMAGE MNT -o OPTS.
    rc, err = env.mount_tool([image, mnt, "-o", "basedir=" + store, "-t", "composefs"])
    check(rc == 0, "IMAGE MNT -o ...: %r" % err)
    env.mounts.append(mnt)
    env.umount(mnt)
    env.check_clean("permuted arguments")

    case_idmap(env, image, store, mnt)
    case_mount8(env, image, store, mnt)
    print("options: parsing, messages, ro/rw, escapes, idmap, mount -t composefs")


CLONE_NEWUSER = 0x10000000


def user_namespace():
    """A child in a new user namespace mapping 0..65535 to 100000..165535.
    Returns (pid, write end of the pipe that lets it exit)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            cfsmount.unshare(CLONE_NEWUSER)
            os.write(ready_w, b"x")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    ok = os.read(ready_r, 1) == b"x"
    os.close(ready_r)
    if ok:
        for name in ("uid_map", "gid_map"):
            with open("/proc/%d/%s" % (pid, name), "w") as f:
                f.write("0 100000 65536\n")
    return pid, go_w, ok


def case_idmap(env, image, store, mnt):
    """idmap=/proc/PID/ns/user shifts the owners shown by the mount."""
    pid, go, ok = user_namespace()
    try:
        if not ok:
            print("idmap: SKIP (cannot create a user namespace)")
            return
        ns = "/proc/%d/ns/user" % pid
        env.mark()
        rc, err = env.mount_tool(["-o", "basedir=%s,idmap=%s" % (store, ns), image, mnt])
        if rc != 0:
            check(err.count("\n") == 1, "idmap failure is not one line: %r" % err)
            print("idmap: not supported by this kernel: %s" % err.strip())
        else:
            env.mounts.append(mnt)
            st = os.stat(os.path.join(mnt, "file"))
            check(st.st_uid == 100000 and st.st_gid == 100000,
                  "idmapped owner is %d:%d" % (st.st_uid, st.st_gid))
            env.umount(mnt)
        env.check_clean("idmap")
        # The initial user namespace cannot be used for an idmapped mount.
        env.expect_failure(["-o", "basedir=%s,idmap=/proc/self/ns/user" % store, image, mnt],
                           "Failed to mount composefs")
    finally:
        os.close(go)
        os.waitpid(pid, 0)


def case_mount8(env, image, store, mnt):
    """mount -t composefs runs /sbin/mount.composefs. In this private
    namespace an overlay puts the built helper into /sbin."""
    sbin = os.path.realpath("/sbin")
    helper_dir = env.path("helper")
    os.mkdir(helper_dir)
    shutil.copy(env.tools["mount.composefs"], os.path.join(helper_dir, "mount.composefs"))
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s:%s" % (helper_dir, sbin), sbin],
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("mount -t composefs: SKIP (cannot overlay %s: %s)" % (
            sbin, r.stderr.decode().strip()))
        return
    try:
        env.mark()
        r = subprocess.run(["mount", "-t", "composefs", image, mnt, "-o",
                            "basedir=" + store], stderr=subprocess.PIPE)
        check(r.returncode == 0, "mount -t composefs: %s" % r.stderr.decode())
        env.mounts.append(mnt)
        with open(os.path.join(mnt, "file"), "rb") as f:
            check(f.read() == b"data " * 100, "wrong content via mount -t composefs")
        env.umount(mnt)
        env.check_clean("mount -t composefs")
        r = subprocess.run(["mount", "-t", "composefs", image, mnt, "-o",
                            "basedir=" + env.path("none")], stderr=subprocess.PIPE)
        check(r.returncode != 0, "mount -t composefs with a missing basedir succeeded")
        env.check_clean("failing mount -t composefs")
    finally:
        subprocess.run(["umount", sbin])


def case_verity(env):
    ok, why = fsverity_works(env.dir)
    if not ok:
        skip("kernel fs-verity is not available for %s (%s)" % (env.dir, why or "unknown"))
    tree, store, image, mnt = env.paths()
    make_tree(tree, 41)
    env.mkcomposefs(tree, image, store)
    # Objects must carry fs-verity for verity=require (mkcomposefs enables
    # it where it can; make sure of it).
    for p in object_files(store):
        r = subprocess.run(["fsverity", "enable", p], stderr=subprocess.PIPE)
        check(r.returncode == 0 or b"File exists" in r.stderr,
              "fsverity enable %s: %s" % (p, r.stderr.decode()))
    r = subprocess.run(["fsverity", "enable", image], stderr=subprocess.PIPE)
    check(r.returncode == 0, "fsverity enable: %s" % r.stderr.decode())
    r = subprocess.run(["fsverity", "measure", image], stdout=subprocess.PIPE, check=True)
    digest = r.stdout.decode().split()[0].split(":")[1]
    env.mark()
    env.mount(image, mnt, "basedir=%s,digest=%s" % (store, digest))
    with open("/proc/self/mountinfo") as f:
        check("verity=require" in f.read(), "digest= did not ask for verity=require")
    compare_trees(tree, mnt)
    env.umount(mnt)
    env.check_clean("verity mount")
    env.mount(image, mnt, "basedir=%s,tryverity" % store)
    with open("/proc/self/mountinfo") as f:
        check("verity=require" in f.read(), "tryverity did not ask for verity=require")
    env.umount(mnt)
    env.expect_failure(["-o", "basedir=%s,digest=%s" % (store, "00" * 32), image, mnt],
                       "Image has wrong fs-verity")
    # An object without fs-verity is refused under verity, served without.
    victim = max(object_files(store), key=os.path.getsize)
    want = sha256_file(victim)
    shutil.copy(victim, victim + ".copy")
    os.rename(victim + ".copy", victim)
    served = None
    for rel, d in walk(tree).items():
        if d.get("sha256") == want:
            served = rel
    check(served is not None, "no file uses object %s" % victim)
    env.mount(image, mnt, "basedir=%s,verity" % store)
    try:
        with open(os.path.join(mnt, served), "rb") as f:
            f.read()
        raise Failure("an object without fs-verity was served under verity")
    except OSError as e:
        print("object without fs-verity: %s" % e.strerror)
    env.umount(mnt)
    env.mount(image, mnt, "basedir=%s,noverity" % store)
    check(sha256_file(os.path.join(mnt, served)) == want, "noverity: wrong content")
    env.umount(mnt)
    env.check_clean("verity cases")
    print("verity: digest checked, every object verified")


if __name__ == "__main__":
    cfsmount.main(globals(), Env, needs_mount=True)
