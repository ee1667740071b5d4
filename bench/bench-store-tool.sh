#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-store on an object store made from a large tree:
#   - fsck: every object's fs-verity digest computed (the store has no
#     fs-verity unless its filesystem enables it), on a warm cache and (as
#     root) a cold one, against `openssl speed -evp sha256` (16 KiB blocks)
#     times the number of CPUs;
#   - gc with nothing to remove (the image that made the store as root);
#   - du of the store and the image.
# Prints wall time, CPU time (user + system), MB/s and peak RSS; on a
# machine shared with other work the CPU time is the steadier figure. It
# never passes or fails on time.
#
# Usage: bench/bench-store-tool.sh [BUILDDIR] [TREE]
#   BUILDDIR  an existing meson build directory; without it (or with ""),
#             one is set up in build-bench (release build) and built.
#   TREE      source tree (default: a copy of /usr made once in
#             $BENCH_DIR/usr)
# Environment: BENCH_DIR (default /var/tmp/composefs-bench) holds the copy,
# the store and the image.

set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
bench_tree_args "$srcdir" "$@"
cs=$builddir/tools/composefs-store

bench_need bench-store-tool "$mk" "$cs" openssl /usr/bin/time bc
bench_make_tree bench-store-tool

store=$bench_dir/fsck-store
image=$bench_dir/fsck-image.cfs
tmpout=$(mktemp)
trap 'rm -f "$tmpout"; rm -rf "$store" "$image"' EXIT
rm -rf "$store" "$image"

ncpu=$(nproc)
sha_one=$(bench_sha256_rate)
sha_all=$((sha_one * ncpu))
printf 'limit: SHA-256 %.0f MB/s per core, %.0f MB/s on %d cores\n' \
	"$(echo "$sha_one / 1000000" | bc -l)" "$(echo "$sha_all / 1000000" | bc -l)" "$ncpu"

# Runs "$@" and sets $secs, $cpu_secs (user + system) and $rss_kb.
timed() {
	/usr/bin/time -f '%e %U %S %M' -o "$tmpout" "$@" >/dev/null
	read -r secs usr sys rss_kb <"$tmpout"
	cpu_secs=$(echo "$usr + $sys" | bc -l)
}

"$mk" --digest-store="$store" "$tree" "$image"
objects=$(find "$store" -mindepth 2 -type f | wc -l)
bytes=$(find "$store" -mindepth 2 -type f -printf '%s\n' |
	awk '{s += $1} END {printf "%.0f", s}')
printf 'store from %s: %d objects, %.0f MB\n' "$tree" "$objects" \
	"$(echo "$bytes / 1000000" | bc -l)"

report() {
	printf '%-34s %7.2f s wall %7.2f s CPU  %9.0f objects/s  %6.0f MB/s  RSS %5.1f MB%s\n' \
		"$1" "$secs" "$cpu_secs" "$(echo "$objects / $secs" | bc -l)" \
		"$(echo "$bytes / 1000000 / $secs" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
		"${2:-}"
}

# fsck, best of three after a warm-up run. Against the limit both ways:
# wall time (what a user waits) and CPU time spread over the CPUs (what
# the hashing costs, undisturbed by other work on the machine).
fsck_round() {
	local state=$1 best=
	for _ in 1 2 3; do
		if [ "$state" = cold ]; then
			sync
			echo 3 >/proc/sys/vm/drop_caches
		fi
		timed "$cs" fsck --quiet "$store" "$image"
		if [ -z "$best" ] || [ "$(echo "$secs < $best" | bc)" = 1 ]; then
			best=$secs best_cpu=$cpu_secs best_rss=$rss_kb
		fi
	done
	secs=$best cpu_secs=$best_cpu rss_kb=$best_rss
	report "fsck ($state)" "$(printf '  %.0f%% of the limit by wall time, %.0f%% by CPU time' \
		"$(echo "100 * $bytes / $secs / $sha_all" | bc -l)" \
		"$(echo "100 * $bytes / ($cpu_secs / $ncpu) / $sha_all" | bc -l)")"
}

"$cs" fsck --quiet "$store" "$image" >/dev/null
fsck_round warm
if [ -w /proc/sys/vm/drop_caches ]; then
	fsck_round cold
fi

timed "$cs" gc --keep-newer=0 "$store" "$image"
report "gc, nothing to remove"
left=$(find "$store" -mindepth 2 -type f | wc -l)
if [ "$left" != "$objects" ]; then
	echo "bench-store-tool: gc removed objects it should have kept" >&2
	exit 1
fi
timed "$cs" du "$store" "$image"
report "du with one image"
