#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# A run of mkcomposefs --digest-store killed with SIGKILL at any moment
# leaves no truncated or wrong object behind: every object in the store
# has content whose fs-verity digest is its name (temporary files aside).
# The kill delays are seeded, so a failure can be replayed. A final run
# completes the store.
# Usage: test-build-kill.py MKCOMPOSEFS [SEED]

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from cfsbuild import check, check_store, main, make_tree, run, skip


def test():
    mk = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 4242
    if os.geteuid() != 0:
        skip("needs root for owners, devices and trusted.* xattrs")
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="cfs-build-kill-")
    try:
        src = os.path.join(tmp, "src")
        make_tree(src, seed)
        # A few large files, so that kills land in the middle of copies.
        for i in range(10):
            with open(os.path.join(src, "large%d" % i), "wb") as f:
                f.write(os.urandom(rng.randint(2 << 20, 10 << 20)))
        store = os.path.join(tmp, "store")
        img = os.path.join(tmp, "img")

        # How long a whole run takes here, to spread the kills over it.
        t0 = time.monotonic()
        run([mk, "--digest-store=" + os.path.join(tmp, "probe"), src, img])
        full = time.monotonic() - t0
        shutil.rmtree(os.path.join(tmp, "probe"))

        killed = 0
        for i in range(12):
            delay = rng.uniform(0, full * 0.9)
            threads = rng.choice([1, 2, 4])
            p = subprocess.Popen([mk, "--threads=%d" % threads,
                                  "--digest-store=" + store, src, img],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed += 1
            p.wait()
            check_store(store, allow_temps=True)
            if rng.random() < 0.5 and os.path.isdir(store):
                shutil.rmtree(store)  # start again from an empty store
        print("%d of 12 runs killed (a full run takes %.2f s)" % (killed, full))

        run([mk, "--digest-store=" + store, src, img])
        check_store(store, contents_dir=src, allow_temps=True)
    finally:
        shutil.rmtree(tmp)


main(test)
