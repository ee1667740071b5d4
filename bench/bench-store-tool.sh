#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-store on an object store made from a tree:
#   - fsck: every object's fs-verity digest computed (the store has no
#     fs-verity unless its filesystem enables it), on a warm cache and (as
#     root) a cold one, against the hashing limit: `openssl speed -evp
#     sha256` (16 KiB blocks) on one core times the number of CPUs;
#   - the same files through plain `openssl dgst -sha256` (warm), the cost
#     of reading and hashing them without fs-verity's tree;
#   - gc with nothing to remove (the image that made the store as root);
#   - du of the store and the image.
# Prints the load average, wall time, CPU time (user + system), MB/s and
# peak RSS, and fsck as a share of the limit by wall time (what a user
# waits) and by CPU time spread over the CPUs (what the check costs, less
# disturbed by other work on the machine). It never passes or fails on
# time.
#
# Usage: bench/bench-store-tool.sh [BUILDDIR] [TREE]
#   BUILDDIR  an existing meson build directory; without it (or with ""),
#             one is set up in build-bench (release build) and built.
#   TREE      source tree of the store (default /usr/include, small); for
#             the large figures, /usr.
# Environment:
#   BENCH_DIR    (default /var/tmp/composefs-bench) holds a store made for
#                this run, removed at the end.
#   BENCH_STORE  a store to keep: made from TREE (with the image
#                BENCH_STORE.cfs beside it) the first time, reused as it is
#                afterwards, so that a large tree is copied only once.
#   BENCH_RUNS   runs of each fsck measurement, the best counts (default 3).

set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
builddir=$(bench_builddir "$srcdir" "${1:-}")
bench_dir=${BENCH_DIR:-/var/tmp/composefs-bench}
tree=${2:-/usr/include}
runs=${BENCH_RUNS:-3}
mk=$builddir/tools/mkcomposefs
cs=$builddir/tools/composefs-store

bench_need bench-store-tool "$mk" "$cs" openssl /usr/bin/time bc xargs
tmpout=$(mktemp)
object_list=$(mktemp)
file_list=$(mktemp)
if [ -n "${BENCH_STORE:-}" ]; then
	store=$BENCH_STORE
	image=$BENCH_STORE.cfs
	trap 'rm -f "$tmpout" "$object_list" "$file_list"' EXIT
else
	mkdir -p "$bench_dir"
	store=$bench_dir/fsck-store
	image=$bench_dir/fsck-image.cfs
	trap 'rm -f "$tmpout" "$object_list" "$file_list"; rm -rf "$store" "$image"' EXIT
	rm -rf "$store" "$image"
fi
if [ ! -e "$image" ]; then
	if [ ! -d "$tree" ]; then
		echo "bench-store-tool: no tree '$tree'" >&2
		exit 1
	fi
	echo "making the store $store from $tree..."
	"$mk" --digest-store="$store" "$tree" "$image"
fi

ncpu=$(nproc)
load() {
	cut -d' ' -f1-3 /proc/loadavg
}
echo "nproc: $ncpu, load average: $(load)"
echo "openssl speed -evp sha256 (one core):"
speed=$(openssl speed -evp sha256 -seconds 3 2>/dev/null | grep -E '^(type|sha256)')
echo "$speed" | sed 's/^/  /'
# The 16 KiB column, in bytes/s (as bench_sha256_rate, from the same run).
sha_one=$(echo "$speed" | awk '/^sha256/ {v = $NF} END {sub("k", "", v); printf "%.0f", v * 1000}')
sha_all=$((sha_one * ncpu))
printf 'limit: SHA-256 %.0f MB/s per core (16 KiB blocks), %.0f MB/s on %d cores\n' \
	"$(echo "$sha_one / 1000000" | bc -l)" "$(echo "$sha_all / 1000000" | bc -l)" "$ncpu"

# Runs "$@" and sets $secs, $cpu_secs (user + system) and $rss_kb.
timed() {
	/usr/bin/time -f '%e %U %S %M' -o "$tmpout" "$@" >/dev/null
	read -r secs usr sys rss_kb <"$tmpout"
	cpu_secs=$(echo "$usr + $sys" | bc -l)
}

# Object files, one per line, and their total size.
find "$store" -mindepth 2 -type f -printf '%p\t%s\n' >"$object_list"
objects=$(wc -l <"$object_list")
bytes=$(awk -F'\t' '{s += $2} END {printf "%.0f", s}' "$object_list")
printf 'store %s (from %s): %d objects, %.0f MB\n' "$store" "$tree" "$objects" \
	"$(echo "$bytes / 1000000" | bc -l)"

report() {
	printf '%-30s %7.2f s wall %7.2f s CPU %8.0f objects/s %6.0f MB/s  RSS %5.1f MB  load %s%s\n' \
		"$1" "$secs" "$cpu_secs" "$(echo "$objects / $secs" | bc -l)" \
		"$(echo "$bytes / 1000000 / $secs" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
		"$(load)" "${2:-}"
}

# The share of the limit by wall time and by CPU time.
shares() {
	printf '\n%32s %.0f%% of the limit by wall time, %.0f%% by CPU time' '' \
		"$(echo "100 * $bytes / $secs / $sha_all" | bc -l)" \
		"$(echo "100 * $bytes / ($cpu_secs / $ncpu) / $sha_all" | bc -l)"
}

# Best of $runs by wall time.
best_of() {
	local state=$1 best= best_cpu= best_rss=
	shift
	for _ in $(seq "$runs"); do
		if [ "$state" = cold ]; then
			sync
			echo 3 >/proc/sys/vm/drop_caches
		fi
		timed "$@"
		if [ -z "$best" ] || [ "$(echo "$secs < $best" | bc)" = 1 ]; then
			best=$secs best_cpu=$cpu_secs best_rss=$rss_kb
		fi
	done
	secs=$best cpu_secs=$best_cpu rss_kb=$best_rss
}

"$cs" fsck --quiet "$store" "$image" >/dev/null
best_of warm "$cs" fsck --quiet "$store" "$image"
report "fsck (warm)" "$(shares)"
if [ -w /proc/sys/vm/drop_caches ]; then
	best_of cold "$cs" fsck --quiet "$store" "$image"
	report "fsck (cold)" "$(shares)"
fi

# Plain SHA-256 of the same files, on all CPUs, warm.
cut -f1 "$object_list" >"$file_list"
best_of warm sh -c 'xargs -d "\n" -P "$1" -n 1000 openssl dgst -sha256 <"$2" >/dev/null' \
	sh "$ncpu" "$file_list"
report "openssl dgst -sha256 (warm)" "$(shares)"

timed "$cs" gc --keep-newer=0 "$store" "$image"
report "gc, nothing to remove"
left=$(find "$store" -mindepth 2 -type f | wc -l)
if [ "$left" != "$objects" ]; then
	echo "bench-store-tool: gc removed objects it should have kept" >&2
	exit 1
fi
timed "$cs" du "$store" "$image"
report "du with one image"
