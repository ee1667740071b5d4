#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-store fetch from real servers on 127.0.0.1 (nginx with a
# configuration in a temporary directory, python3 -m http.server) and from
# a file:// URL: a store published by mkcomposefs --store-image and fetched
# by its image digest into an empty store gives the same objects; a second
# fetch transfers nothing; HTTPS over HTTP/2 with --cacert and a bearer
# --header that nginx requires; two fetches into one store at the same time
# both succeed; a fetch killed midway (SIGKILL) and run again completes
# and leaves no temporary file; a local image file works as an operand.
# Usage: test-fetch-http.py MKCOMPOSEFS COMPOSEFS-STORE

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from cfsremote import (check, leftovers, main, make_certificate, objects, published, run,
                       start_fault_server, start_nginx, start_python_server, workspace)


def summary(p):
    m = re.search(rb"(\d+) objects fetched \((\d+) bytes received .*\), (\d+) present, "
                  rb"(\d+) failed", p.stderr)
    check(m is not None, "no summary line: %r" % p.stderr[-500:])
    return tuple(int(x) for x in m.groups())


def fetch(store_tool, url, dest, *args, ok=True):
    return run([store_tool, "fetch", "--from=" + url, dest] + list(args), ok=ok)


def test():
    mk, store_tool = sys.argv[1], sys.argv[2]
    with workspace("cfs-fetch-http-") as (tmp, servers):
        store, digest, want = published(mk, tmp, 120, seed=1)
        check(digest[:2] + "/" + digest[2:] in want, "the image is not in the store")
        n_objects = len(want)

        nginx = start_nginx(store, os.path.join(tmp, "nginx"))
        if nginx is None:
            print("nginx not installed: served by python3 -m http.server only")
        else:
            servers.append(nginx)
        pysrv = start_python_server(store)
        servers.append(pysrv)
        urls = [s.url for s in servers] + ["file://" + store]

        for i, url in enumerate(urls):
            dest = os.path.join(tmp, "dest%d" % i)
            p = fetch(store_tool, url, dest, digest, "--jobs=8")
            fetched, nbytes, present, failed = summary(p)
            check(objects(dest) == want, "%s: fetched store differs from the source" % url)
            check(fetched == n_objects and present == 0 and failed == 0,
                  "%s: summary %r for %d objects" % (url, (fetched, present, failed), n_objects))
            check(nbytes == sum(len(v) for v in want.values()),
                  "%s: %d bytes received" % (url, nbytes))
            check(leftovers(dest) == [], "%s: left %r" % (url, leftovers(dest)))
            # Again: everything is present, nothing is transferred.
            p = fetch(store_tool, url, dest, digest)
            check(summary(p) == (0, 0, n_objects, 0), "%s: refetch %r" % (url, summary(p)))

        # HTTPS with HTTP/2, a private CA (--cacert) and a bearer token
        # (--header) that the server requires.
        cert = make_certificate(tmp) if nginx is not None else None
        if cert is None:
            print("no nginx or no openssl: HTTPS not tested")
        else:
            token = ("Authorization", "Bearer s3cret")
            tls = start_nginx(store, os.path.join(tmp, "nginx-tls"), tls=cert,
                              require_header=token)
            servers.append(tls)
            dest = os.path.join(tmp, "dest-tls")
            p = fetch(store_tool, tls.url, dest, digest, ok=False)
            check(b"certificate" in p.stderr.lower() and objects(dest) == {},
                  "an unknown CA was accepted: %r" % p.stderr[-300:])
            p = fetch(store_tool, tls.url, dest, digest, "--cacert=" + cert[0], ok=False)
            check(b"403" in p.stderr and objects(dest) == {},
                  "no token: %r" % p.stderr[-300:])
            fetch(store_tool, tls.url, dest, digest, "--cacert=" + cert[0],
                  "--header=%s: %s" % token, "--jobs=16")
            check(objects(dest) == want, "https: fetched store differs from the source")
            with open(os.path.join(tmp, "nginx-tls", "protocols.log")) as f:
                protos = set(f.read().split())
            check(protos == {"HTTP/2.0"}, "https requests used %r" % protos)

        # A local image file as the operand: its objects, not itself.
        img = os.path.join(tmp, "img")
        shutil.copy(os.path.join(store, digest[:2], digest[2:]), img)
        dest = os.path.join(tmp, "dest-img")
        fetch(store_tool, pysrv.url, dest, img)
        got = objects(dest)
        check(set(got) == set(want) - {digest[:2] + "/" + digest[2:]},
              "image file operand fetched %d of %d objects" % (len(got), n_objects - 1))

        # Two fetches into one store at the same time.
        dest = os.path.join(tmp, "dest-two")
        procs = [subprocess.Popen([store_tool, "fetch", "--from=" + urls[0], dest, digest,
                                   "--jobs=4"], stderr=subprocess.PIPE) for _ in range(2)]
        for pr in procs:
            _, err = pr.communicate()
            check(pr.returncode == 0, "concurrent fetch failed: %r" % err[-500:])
        check(objects(dest) == want, "concurrent fetches: store differs")
        check(leftovers(dest) == [], "concurrent fetches left %r" % leftovers(dest))

        # Killed midway (a slow server makes "midway" certain), then again.
        slow = start_fault_server(store, delay=0.05)
        servers.append(slow)
        dest = os.path.join(tmp, "dest-kill")
        pr = subprocess.Popen([store_tool, "fetch", "--from=" + slow.url, dest, digest,
                               "--jobs=2", "--quiet"])
        deadline = time.time() + 30
        while time.time() < deadline and len(objects(dest) if os.path.isdir(dest) else {}) < 10:
            time.sleep(0.05)
        os.kill(pr.pid, signal.SIGKILL)
        pr.wait()
        part = objects(dest)
        check(10 <= len(part) < n_objects, "killed with %d of %d objects" % (len(part), n_objects))
        for k, v in part.items():
            check(want.get(k) == v, "object %s wrong after the kill" % k)
        p = fetch(store_tool, slow.url, dest, digest, "--jobs=8")
        fetched, _, present, failed = summary(p)
        check(fetched == n_objects - len(part) and present == len(part) and failed == 0,
              "rerun: fetched %d, present %d of %d" % (fetched, present, n_objects))
        check(objects(dest) == want, "rerun: store differs from the source")
        check(leftovers(dest) == [], "rerun left %r" % leftovers(dest))


main(test)
