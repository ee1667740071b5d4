#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-store fetch against a server that misbehaves (faultserver.py):
# transient faults (a truncated body, a dropped connection, 500, a stalled
# transfer) are retried and the objects arrive; lasting ones (wrong
# content, 404, a body larger than the image says, a server that keeps
# failing) name the object on stderr, leave it absent from the store and
# make the exit status non-zero, while every other object arrives (a
# redirect to file:// is refused); entries of an image that name no
# object are named and skipped; nothing
# but objects is left in the store. A bearer header reaches the server, a
# bad URL or header is refused before any transfer.
# Usage: test-fetch-faults.py MKCOMPOSEFS COMPOSEFS-STORE

import os
import sys

from cfsremote import (check, leftovers, main, objects, published, run, start_fault_server,
                       workspace)


def test():
    mk, store_tool = sys.argv[1], sys.argv[2]
    with workspace("cfs-fetch-faults-") as (tmp, servers):
        store, digest, want = published(mk, tmp, 40, seed=7)
        image = digest[:2] + "/" + digest[2:]
        # Objects of at least two bytes, so that every fault changes them.
        names = sorted(k for k, v in want.items() if k != image and len(v) > 1)
        check(len(names) >= 12, "only %d objects" % len(names))
        transient = {names[0]: "truncate:2", names[1]: "drop:1", names[2]: "500:2",
                     names[3]: "stall:1", names[4]: "short:1", names[5]: "500:1"}
        lasting = {names[6]: ("corrupt", "wrong content"),
                   names[7]: ("404", "HTTP status 404"),
                   names[8]: ("extra", "larger than"),
                   names[9]: ("500", "HTTP status 500"),
                   names[10]: ("nolength", "larger than"),
                   names[11]: ("redirect", "not supported")}
        faults = ["%s=%s" % kv for kv in transient.items()]
        faults += ["%s=%s" % (k, v[0]) for k, v in lasting.items()]
        log = os.path.join(tmp, "log")
        srv = start_fault_server(store, faults, log=log)
        servers.append(srv)

        dest = os.path.join(tmp, "dest")
        p = run([store_tool, "fetch", "--from=" + srv.url, "--timeout=1", "--retries=3",
                 "--jobs=6", dest, digest], ok=False)
        err = p.stderr.decode()
        got = objects(dest)
        for name, (kind, reason) in lasting.items():
            hexname = name.replace("/", "")
            line = [l for l in err.splitlines() if "'%s'" % hexname in l]
            check(len(line) == 1, "%s (%s) not reported once: %r" % (name, kind, err))
            check(reason in line[0], "%s (%s) reported as %r" % (name, kind, line[0]))
            check(name not in got, "%s (%s) was stored" % (name, kind))
        for name in want:
            if name not in lasting:
                check(got.get(name) == want[name], "%s missing or wrong" % name)
        check(leftovers(dest) == [], "left in the store: %r" % leftovers(dest))
        with open(log) as f:
            requests = [l.split()[0].lstrip("/") for l in f]
        check(requests.count(names[9]) == 4, "a lasting 500 was tried %d times, not 4"
              % requests.count(names[9]))
        check(requests.count(names[6]) == 1, "wrong content was tried again")

        # Once the server behaves, a rerun fetches exactly the rest.
        srv.stop()
        servers.remove(srv)
        open(log, "w").close()
        srv = start_fault_server(store, log=log)
        servers.append(srv)
        run([store_tool, "fetch", "--from=" + srv.url, dest, digest])
        check(objects(dest) == want, "rerun: store differs from the source")
        with open(log) as f:
            requests = sorted(l.split()[0].lstrip("/") for l in f)
        check(requests == sorted(lasting),
              "rerun requested %r" % requests)

        # An image whose entries name no object (a path out of the store,
        # a name that is not a digest): each is named, the rest arrives.
        good = names[0]
        dump = os.path.join(tmp, "bad.dump")
        with open(dump, "wb") as f:
            f.write(b"/ 0 40755 2 0 0 0 1700000000.0 - - -\n")
            f.write(b"/escape 100 100644 1 0 0 0 1700000000.0 ../../etc/passwd - -\n")
            f.write(b"/upper 100 100644 1 0 0 0 1700000000.0 %s - -\n"
                    % good.upper().encode())
            f.write(("/good %d 100644 1 0 0 0 1700000000.0 %s - -\n"
                     % (len(want[good]), good)).encode())
        bad_img = os.path.join(tmp, "bad.img")
        run([mk, "--from-file", dump, bad_img])
        dest3 = os.path.join(tmp, "dest3")
        p = run([store_tool, "fetch", "--from=" + srv.url, dest3, bad_img], ok=False)
        err = p.stderr.decode()
        check("'../../etc/passwd': not an object name" in err and
              "'%s': not an object name" % good.upper() in err,
              "bad payloads not named: %r" % err)
        check(objects(dest3) == {good: want[good]}, "bad image: store has %r"
              % list(objects(dest3)))

        # Headers reach the server; bad arguments are refused.
        dest2 = os.path.join(tmp, "dest2")
        run([store_tool, "fetch", "--from=ftp://127.0.0.1/", dest2, digest], ok=False)
        p = run([store_tool, "fetch", "--from=" + srv.url, "--header=NoColon", dest2, digest],
                ok=False)
        check(b"NoColon" in p.stderr, "bad header not named: %r" % p.stderr)
        p = run([store_tool, "fetch", "--from=" + srv.url, dest2, "0" * 64], ok=False)
        check(("'%s'" % ("0" * 64)).encode() in p.stderr and b"404" in p.stderr,
              "missing image not named: %r" % p.stderr)


main(test)
