#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
# test-version.sh VERSION TOOL...: `TOOL --version` exits 0 and its first
# line is "NAME VERSION", VERSION being the meson project version.
set -u
want=$1
shift
failed=0
for tool in "$@"; do
	name=$(basename "$tool")
	out=$("$tool" --version 2>/dev/null)
	rc=$?
	first=$(head -n 1 <<<"$out")
	if [ "$rc" -eq 0 ] && [ "$first" = "$name $want" ]; then
		echo "ok $name: $first"
	else
		echo "FAIL $name: exit $rc, first line '$first', want '$name $want'"
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
