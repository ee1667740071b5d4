#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-fuse -o remote=URL: a lazy mount over an empty local store.
# Walking the tree (listdir, lstat, readlink) fetches nothing and shows
# the same tree as the kernel mount of the full store; reading a few files
# gives their content and leaves exactly their objects in the local store;
# two opens of one missing object at once cause one download; an object
# the server corrupts gives EIO and one log line, and is not stored;
# mount.composefs -o fuse,remote=URL works the same; as root, the user
# nobody does the same unprivileged into a store of its own.
# Usage: test-lazy-mount.py MKCOMPOSEFS COMPOSEFS-FUSE MOUNT.COMPOSEFS

import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading

from cfsremote import check, main, objects, published, start_fault_server, workspace

import cfsfuse


def walk(root):
    """Relative path -> metadata, without opening any file."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel)
        st = os.lstat(full)
        d = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
             st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns)
        if stat.S_ISLNK(st.st_mode):
            d += (os.readlink(full),)
        out[rel] = d
        if stat.S_ISDIR(st.st_mode):
            for n in os.listdir(full):
                stack.append(os.path.join(rel, n))
    return out


def regular_files(tree):
    return sorted(k for k, v in tree.items() if v[0] == stat.S_IFREG and v[4] > 0)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def requests(log):
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [l.split()[0].lstrip("/") for l in f]


def unprivileged(fuse_exe, img, tmp, url, name, data, want):
    if shutil.which("setpriv") is None:
        print("setpriv is not installed: no unprivileged mount")
        return
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        print("there is no user nobody: no unprivileged mount")
        return
    for d in (os.path.dirname(os.path.abspath(fuse_exe)),):
        if not os.access(d, os.X_OK, effective_ids=False):
            print("%s is not reachable by nobody: no unprivileged mount" % d)
            return
    prefix = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
              "--clear-groups", "--inh-caps=-all"]
    os.chmod(tmp, 0o755)
    os.chmod(img, 0o644)
    store = os.path.join(tmp, "nobody-store")
    mnt = os.path.join(tmp, "nobody-mnt")
    for d in (store, mnt):
        os.mkdir(d)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    os.chmod("/dev/fuse", 0o666)
    try:
        with cfsfuse.FuseMount(fuse_exe, img, mnt, [store], extra=["remote=" + url],
                               prefix=prefix, unmount_prefix=prefix):
            r = subprocess.run(prefix + ["cat", os.path.join(mnt, name)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            check(r.returncode == 0 and r.stdout == data,
                  "nobody read %r: %r" % (name, r.stderr))
    finally:
        os.chmod("/dev/fuse", mode)
    got = objects(store)
    check(len(got) == 1 and list(got.values()) == [data], "nobody's store: %r" % list(got))
    for o in got:
        st = os.stat(os.path.join(store, o))
        check(st.st_uid == pw.pw_uid, "object owned by %d" % st.st_uid)


def unmount_leftover(tmp):
    if cfsfuse.mounts_below(tmp):
        subprocess.run(["fusermount3", "-u", "-z", os.path.join(tmp, "mnt")])


def test():
    mk, fuse_exe, mount_exe = sys.argv[1], sys.argv[2], sys.argv[3]
    cfsfuse.require_fuse()
    with workspace("cfs-lazy-", cleanup=unmount_leftover) as (tmp, servers):
        remote, digest, want = published(mk, tmp, 40, seed=3, name="remote")
        img = os.path.join(tmp, "img")
        shutil.copy(os.path.join(remote, digest[:2], digest[2:]), img)
        del want[digest[:2] + "/" + digest[2:]]

        # The reference view: the full store, through the kernel if it can,
        # else through composefs-fuse without remote.
        ref_mnt = os.path.join(tmp, "ref")
        os.mkdir(ref_mnt)
        if cfsfuse.kernel_unavailable() is None:
            with cfsfuse.kernel_mounted(os.path.dirname(mount_exe), img, ref_mnt, [remote]):
                ref = walk(ref_mnt)
                ref_data = {k: read(os.path.join(ref_mnt, k)) for k in regular_files(ref)}
        else:
            print("no kernel mount here: comparing with composefs-fuse on the full store")
            with cfsfuse.FuseMount(fuse_exe, img, ref_mnt, [remote]):
                ref = walk(ref_mnt)
                ref_data = {k: read(os.path.join(ref_mnt, k)) for k in regular_files(ref)}

        # Files backed by an object (small ones are inline in the image).
        contents = set(want.values())
        files = [k for k in regular_files(ref) if ref_data[k] in contents]
        check(len(files) > 10, "only %d files with objects" % len(files))
        log = os.path.join(tmp, "log")
        srv = start_fault_server(remote, delay=0.2, log=log)
        servers.append(srv)

        local = os.path.join(tmp, "local")
        os.mkdir(local)
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        with cfsfuse.FuseMount(fuse_exe, img, mnt, [local], extra=["remote=" + srv.url]) as m:
            lazy = walk(mnt)
            check(lazy == ref, "the lazy mount shows another tree than the full store")
            check(objects(local) == {}, "walking fetched %d objects" % len(objects(local)))
            check(requests(log) == [], "walking sent requests: %r" % requests(log)[:5])

            # Two opens of one missing file at once: one download.
            first = files[0]
            results = []
            ths = [threading.Thread(target=lambda: results.append(read(os.path.join(mnt, first))))
                   for _ in range(2)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            check(results == [ref_data[first]] * 2, "concurrent reads of %s differ" % first)
            check(len(requests(log)) == 1, "two opens sent %d requests" % len(requests(log)))

            some = files[1:6]
            for k in some:
                check(read(os.path.join(mnt, k)) == ref_data[k], "%s: wrong content" % k)
            read_objs = {o for o, v in want.items() if any(v == ref_data[k] for k in [first] + some)}
            check(set(objects(local)) == read_objs,
                  "local store has %d objects, %d were read" % (len(objects(local)), len(read_objs)))
            for o, v in objects(local).items():
                check(want[o] == v, "local object %s differs" % o)
        check(m.stderr == b"", "messages: %r" % m.stderr)

        # A corrupt answer: EIO, one log line, nothing stored.
        srv.stop()
        servers.remove(srv)
        local_objs = set(objects(local))
        victim = [k for k in files if not any(ref_data[k] == want[o] for o in local_objs)][0]
        obj = [o for o, v in want.items() if v == ref_data[victim]][0]
        srv = start_fault_server(remote, ["%s=corrupt" % obj], log=log)
        servers.append(srv)
        with cfsfuse.FuseMount(fuse_exe, img, mnt, [local], extra=["remote=" + srv.url]) as m:
            try:
                read(os.path.join(mnt, victim))
                check(False, "reading a corrupt object succeeded")
            except OSError as e:
                check(e.errno == 5, "corrupt object: %s, not EIO" % e)
        lines = m.stderr.decode().splitlines()
        check(len(lines) == 1 and obj in lines[0] and "wrong content" in lines[0],
              "log for the corrupt object: %r" % lines)
        check(set(objects(local)) == local_objs, "the corrupt object was stored")

        # mount.composefs -o fuse,remote=URL.
        srv.stop()
        servers.remove(srv)
        srv = start_fault_server(remote, log=log)
        servers.append(srv)
        r = subprocess.run([mount_exe, "-o", "ro,fuse,basedir=%s,remote=%s" % (local, srv.url),
                            img, mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        check(r.returncode == 0, "mount.composefs -o fuse,remote: %r" % r.stdout)
        try:
            check(read(os.path.join(mnt, victim)) == ref_data[victim],
                  "mount.composefs remote: wrong content")
        finally:
            subprocess.run(["fusermount3", "-u", mnt])
        check(obj in objects(local), "mount.composefs remote: object not stored")

        # Unprivileged: nobody mounts, fetches into its own store, reads.
        if os.geteuid() == 0:
            unprivileged(fuse_exe, img, tmp, srv.url, files[-1], ref_data[files[-1]], want)


main(test)
