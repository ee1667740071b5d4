#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Measures `mkcomposefs --from-file` (dumpfile to image) on OS-like dumps of
# 65536 and 1000000 entries made by gen-dump.py, and the dumpfile parser on
# its own (bench-parse). Prints wall time, CPU time, peak RSS, entries/s and
# RSS bytes per entry. It reports figures; it never passes or fails on them.
#
# usage: bench/bench-mkcomposefs.sh [BUILDDIR] [N...]
#   BUILDDIR  an existing meson build directory; without it, one is set up
#             in build-bench (release build) and built.
#   N...      entry counts (default: 65536 1000000)
#
# Needs GNU time (/usr/bin/time, Debian package `time`) and python3.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
builddir=${1:-}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(65536 1000000)

if [ ! -x /usr/bin/time ]; then
	echo "bench-mkcomposefs: /usr/bin/time not found (install the Debian package 'time')" >&2
	exit 1
fi
builddir=$(bench_builddir "$srcdir" "$builddir")
mkcomposefs=$builddir/tools/mkcomposefs
benchparse=$builddir/bench/bench-parse

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-mkcomposefs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Runs "$@" under GNU time; prints one result line for LABEL and N.
measure() {
	local label=$1 n=$2
	shift 2
	if ! /usr/bin/time -v -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err"; then
		echo "bench-mkcomposefs: $label failed:" >&2
		cat "$tmp/err" >&2
		return 1
	fi
	awk -v label="$label" -v n="$n" '
		/Elapsed \(wall clock\)/ {
			t = $NF; split(t, p, ":"); wall = 0
			for (i = 1; i <= length(p); i++) wall = wall * 60 + p[i]
		}
		/User time \(seconds\)/ { user = $NF }
		/System time \(seconds\)/ { sys = $NF }
		/Maximum resident set size/ { rss = $NF }
		END {
			if (wall <= 0) wall = 0.01
			printf "%-12s %8d %8.2f s %6.2f s %8.1f MB %12.0f %10.0f\n", label, n,
			       wall, user + sys, rss / 1024, n / wall, rss * 1024 / n
		}' "$tmp/time"
}

printf "%-12s %8s %10s %8s %11s %12s %10s\n" what entries wall cpu "peak RSS" entries/s "RSS B/ent"
for n in "${counts[@]}"; do
	dump=$tmp/dump-$n
	python3 "$srcdir/bench/gen-dump.py" "$n" 1 >"$dump"
	size=$(stat -c %s "$dump")
	echo "# N=$n: dumpfile $((size / 1000000)) MB ($((size / n)) bytes/entry)"
	if [ -x "$benchparse" ]; then
		measure bench-parse "$n" "$benchparse" "$dump"
	fi
	if [ -x "$mkcomposefs" ]; then
		measure mkcomposefs "$n" "$mkcomposefs" --from-file "$dump" "$tmp/image-$n" &&
			echo "# image $(($(stat -c %s "$tmp/image-$n") / 1000000)) MB"
		rm -f "$tmp/image-$n"
	else
		echo "# $mkcomposefs not built: mkcomposefs not measured"
	fi
	rm -f "$dump"
done
