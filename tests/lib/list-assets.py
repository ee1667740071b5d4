#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Print the reference assets, one `KIND NAME` per line, for meson to make
one test per asset: `golden` for dumpfiles with a .sha256, `fail` for
should-fail-*.dump.  Prints nothing when the directory is absent."""

import os
import sys

d = sys.argv[1]
names = sorted(os.listdir(d)) if os.path.isdir(d) else []
for n in names:
    if n.startswith("should-fail-") and n.endswith(".dump"):
        print("fail", n)
    elif n.endswith((".dump", ".dump.gz")) and n + ".sha256" in names:
        print("golden", n)
