#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Directory mode of mkcomposefs on a large tree, next to what the machine
# can do:
#   - digesting: mkcomposefs --print-digest-only on a warm cache, against
#     `openssl speed -evp sha256` (16 KiB blocks) times the number of CPUs,
#     and against what bounds any digester that reads through the page
#     cache and hashes with OpenSSL: the fs-verity hasher on data already
#     in memory (bench-fsverity) plus the CPU time of reading the same files
#     the way the scanner does, without hashing (bench-read);
#   - storing: mkcomposefs --digest-store into an empty store, then into the
#     full one, against `cp -a` of the same tree from the same cache state
#     (warm, and cold when run as root).
# Prints files/s, MB/s and peak RSS. It never passes or fails on time.
#
# Usage: bench/bench-store.sh [BUILDDIR] [TREE]
#   BUILDDIR  an existing meson build directory; without it (or with ""),
#             one is set up in build-bench (release build) and built.
#   TREE      source tree (default: a copy of /usr made once in
#             /var/tmp/composefs-bench/usr)
# Environment: BENCH_DIR (default /var/tmp/composefs-bench) holds the
# copies, stores and images; it needs about five times the tree's size.

set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
bench_tree_args "$srcdir" "$@"
fsv=$builddir/bench/bench-fsverity
rd=$builddir/bench/bench-read

bench_need bench-store "$mk" "$fsv" "$rd" openssl /usr/bin/time
bench_make_tree bench-store

ncpu=$(nproc)
files=$(find "$tree" -type f | wc -l)
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
big_bytes=$(find "$tree" -type f -size +64c -printf '%s\n' |
	awk '{s += $1} END {printf "%.0f", s}')
printf 'tree %s: %d regular files, %.0f MB (%.0f MB in files over 64 bytes), %d CPUs\n' \
	"$tree" "$files" "$(echo "$bytes / 1000000" | bc -l)" \
	"$(echo "$big_bytes / 1000000" | bc -l)" "$ncpu"

# SHA-256 throughput of one core, bytes/s, 16 KiB blocks (last column).
sha_one=$(bench_sha256_rate)
sha_all=$((sha_one * ncpu))
printf 'limit: SHA-256 %.0f MB/s per core, %.0f MB/s on %d cores\n' \
	"$(echo "$sha_one / 1000000" | bc -l)" "$(echo "$sha_all / 1000000" | bc -l)" "$ncpu"

tmpout=$(mktemp)
trap 'rm -f "$tmpout"' EXIT

# Kilobytes read from block devices since boot.
pgpgin_kb() {
	awk '/^pgpgin / {print $2}' /proc/vmstat
}

# Runs "$@" and sets $secs, $cpu_secs (user + system, children included),
# $rss_kb and $disk_mb (read from disk meanwhile, all processes).
timed() {
	local in0 in1
	in0=$(pgpgin_kb)
	/usr/bin/time -f '%e %U %S %M' -o "$tmpout" "$@" >/dev/null
	in1=$(pgpgin_kb)
	read -r secs usr sys rss_kb <"$tmpout"
	cpu_secs=$(echo "$usr + $sys" | bc -l)
	disk_mb=$(((in1 - in0) / 1024))
}

report() {
	local what=$1
	printf '%-40s %7.2f s  %9.0f files/s  %7.0f MB/s  RSS %6.1f MB%s\n' "$what" "$secs" \
		"$(echo "$files / $secs" | bc -l)" "$(echo "$bytes / 1000000 / $secs" | bc -l)" \
		"$(echo "$rss_kb / 1024" | bc -l)" "${2:-}"
}

# ---- Digesting, warm cache ----------------------------------------------------
# Back to back: some kernels reclaim page cache that stayed idle for half a
# minute (DAMON), so the warm-up run comes right before the measured one,
# and the amount still read from disk is shown.
# Best of three after a warm-up run.
timed "$mk" --print-digest-only "$tree"
digest_secs=
for _ in 1 2 3; do
	timed "$mk" --print-digest-only "$tree"
	if [ -z "$digest_secs" ] || [ "$(echo "$secs < $digest_secs" | bc)" = 1 ]; then
		digest_secs=$secs digest_cpu=$cpu_secs digest_disk=$disk_mb digest_rss=$rss_kb
	fi
done
secs=$digest_secs rss_kb=$digest_rss
report "mkcomposefs --print-digest-only" \
	"$(printf '  (%.0f%% of the SHA-256 limit; CPU %.1f s, %d MB from disk)' \
		"$(echo "100 * $bytes / $secs / $sha_all" | bc -l)" "$digest_cpu" "$digest_disk")"

# What bounds it: hashing data already in memory on every CPU, plus the CPU
# time that merely reading the files through the page cache costs.
hash_gbs=$("$fsv" -t "$ncpu" -m 256 -r 3 |
	awk '/^stream hasher/ {print $(NF - 1)}')
read_cpu=
for _ in 1 2; do
	in0=$(pgpgin_kb)
	cpu=$("$rd" -t "$ncpu" "$tree" | sed -n 's/.* \([0-9.]*\) s CPU$/\1/p')
	in1=$(pgpgin_kb)
	if [ -z "$read_cpu" ] || [ "$(echo "$cpu < $read_cpu" | bc)" = 1 ]; then
		read_cpu=$cpu read_disk=$(((in1 - in0) / 1024))
	fi
done
floor_secs=$(echo "$big_bytes / ($hash_gbs * 1000000000) + $read_cpu / $ncpu" | bc -l)
printf 'bound: fs-verity hashing in memory %.0f MB/s on %d threads, reading alone %.1f s CPU (%d MB from disk)\n' \
	"$(echo "$hash_gbs * 1000" | bc -l)" "$ncpu" "$read_cpu" "$read_disk"
printf '       => at best %.2f s, %.0f%% of the SHA-256 limit, for a digester that reads and hashes with OpenSSL\n' \
	"$floor_secs" "$(echo "100 * $bytes / $floor_secs / $sha_all" | bc -l)"

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

printf 'summary: digesting at %.0f%% of the SHA-256 limit (bound %.0f%%); storing:%s\n' \
	"$(echo "100 * $bytes / $digest_secs / $sha_all" | bc -l)" \
	"$(echo "100 * $bytes / $floor_secs / $sha_all" | bc -l)" "$ratios"
cleanup
