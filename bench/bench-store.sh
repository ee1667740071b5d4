#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Directory mode of mkcomposefs on a large tree, next to what the machine
# can do:
#   - digesting: mkcomposefs --print-digest-only on a warm cache, against
#     `openssl speed -evp sha256` (16 KiB blocks) times the number of CPUs;
#   - storing: mkcomposefs --digest-store into an empty store, then into the
#     full one, against `cp -a` of the same tree from the same cache state
#     (warm, and cold when run as root).
# Prints files/s, MB/s and peak RSS. It never passes or fails on time.
#
# Usage: bench/bench-store.sh [BUILDDIR] [TREE]
#   BUILDDIR  meson build directory (default: build)
#   TREE      source tree (default: a copy of /usr made once in
#             /var/tmp/composefs-bench/usr)
# Environment: BENCH_DIR (default /var/tmp/composefs-bench) holds the
# copies, stores and images; it needs about five times the tree's size.

set -euo pipefail

builddir=${1:-build}
bench_dir=${BENCH_DIR:-/var/tmp/composefs-bench}
tree=${2:-$bench_dir/usr}
mk=$builddir/tools/mkcomposefs

if [ ! -x "$mk" ]; then
	echo "bench-store: '$mk' not found; build first" >&2
	exit 1
fi
for cmd in openssl /usr/bin/time; do
	if ! command -v "$cmd" >/dev/null; then
		echo "bench-store: '$cmd' is needed" >&2
		exit 1
	fi
done
mkdir -p "$bench_dir"
if [ ! -d "$tree" ]; then
	if [ $# -ge 2 ]; then
		echo "bench-store: no tree '$tree'" >&2
		exit 1
	fi
	echo "making a copy of /usr in $tree (once)..."
	cp -a /usr "$tree"
fi

ncpu=$(nproc)
files=$(find "$tree" -type f | wc -l)
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
big_bytes=$(find "$tree" -type f -size +64c -printf '%s\n' |
	awk '{s += $1} END {printf "%.0f", s}')
printf 'tree %s: %d regular files, %.0f MB (%.0f MB in files over 64 bytes), %d CPUs\n' \
	"$tree" "$files" "$(echo "$bytes / 1000000" | bc -l)" \
	"$(echo "$big_bytes / 1000000" | bc -l)" "$ncpu"

# SHA-256 throughput of one core, bytes/s, 16 KiB blocks (last column).
sha_one=$(openssl speed -evp sha256 -seconds 3 2>/dev/null |
	awk '/^sha256/ {v = $NF} END {sub("k", "", v); printf "%.0f", v * 1000}')
sha_all=$((sha_one * ncpu))
printf 'limit: SHA-256 %.0f MB/s per core, %.0f MB/s on %d cores\n' \
	"$(echo "$sha_one / 1000000" | bc -l)" "$(echo "$sha_all / 1000000" | bc -l)" "$ncpu"

tmpout=$(mktemp)
trap 'rm -f "$tmpout"' EXIT

# Runs "$@" and sets $secs and $rss_kb from /usr/bin/time.
timed() {
	/usr/bin/time -f '%e %M' -o "$tmpout" "$@" >/dev/null
	read -r secs rss_kb <"$tmpout"
}

report() {
	local what=$1
	printf '%-40s %7.2f s  %9.0f files/s  %7.0f MB/s  RSS %6.1f MB%s\n' "$what" "$secs" \
		"$(echo "$files / $secs" | bc -l)" "$(echo "$bytes / 1000000 / $secs" | bc -l)" \
		"$(echo "$rss_kb / 1024" | bc -l)" "${2:-}"
}

# ---- Digesting, warm cache ----------------------------------------------------
timed "$mk" --print-digest-only "$tree" # warms the cache
timed "$mk" --print-digest-only "$tree"
digest_secs=$secs
report "mkcomposefs --print-digest-only" \
	"$(printf '  (%.0f%% of the SHA-256 limit)' \
		"$(echo "100 * $bytes / $secs / $sha_all" | bc -l)")"

# ---- Storing -----------------------------------------------------------------------
# Each comparison runs cp -a and mkcomposefs from the same cache state:
# warm (whatever the previous runs left cached), then, when we may drop
# the page cache, cold. Nothing is deleted between the runs: ext4 allocates
# inodes slowly for a minute or more after many were deleted nearby, which
# would penalise whichever run comes after a deletion.
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

store_round() {
	local state=$1
	sync
	[ "$state" = cold ] && drop_caches
	timed cp -a "$tree" "$bench_dir/cp-$state"
	cp_secs=$secs
	report "cp -a ($state)"
	sync
	[ "$state" = cold ] && drop_caches
	timed "$mk" --digest-store="$bench_dir/store-$state" "$tree" "$bench_dir/image.cfs"
	store_secs=$secs
	report "mkcomposefs --digest-store ($state)" \
		"$(printf '  (%.2f x cp -a)' "$(echo "$secs / $cp_secs" | bc -l)")"
	ratios="$ratios $state $(printf '%.2f' "$(echo "$secs / $cp_secs" | bc -l)") x cp -a;"
}

cleanup() {
	rm -rf "$bench_dir"/cp-warm "$bench_dir"/cp-cold "$bench_dir"/store-warm \
		"$bench_dir"/store-cold "$bench_dir/image.cfs"
}
if [ -e "$bench_dir/cp-warm" ] || [ -e "$bench_dir/store-warm" ]; then
	echo "removing the copies of an earlier run, then waiting a minute (see above)"
	cleanup
	sync
	sleep 65
fi

ratios=""
store_round warm
objects=$(find "$bench_dir/store-warm" -type f | wc -l)
store_mb=$(du -sm "$bench_dir/store-warm" | cut -f1)
echo "  store: $objects objects, $store_mb MB"
timed "$mk" --digest-store="$bench_dir/store-warm" "$tree" "$bench_dir/image.cfs"
report "mkcomposefs --digest-store (full store)"
if [ -w /proc/sys/vm/drop_caches ]; then
	store_round cold
fi

printf 'summary: digesting at %.0f%% of the SHA-256 limit; storing:%s\n' \
	"$(echo "100 * $bytes / $digest_secs / $sha_all" | bc -l)" "$ratios"
cleanup
