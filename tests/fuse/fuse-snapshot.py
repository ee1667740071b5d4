#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
"""Print cfsoverlay.snapshot(MOUNTPOINT) as a Python literal, so that a test
can look at a mount through the eyes of another user.

    fuse-snapshot.py MOUNTPOINT
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import cfsoverlay  # noqa: E402

print(repr(cfsoverlay.snapshot(sys.argv[1])))
