#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Print cfsoverlay.snapshot(MOUNTPOINT) as a Python literal, so that a test
can look at a mount through the eyes of another user.

    fuse-snapshot.py MOUNTPOINT
"""

import sys

import cfsoverlay

print(repr(cfsoverlay.snapshot(sys.argv[1])))
