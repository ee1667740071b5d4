#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# composefs-fuse against the kernel mount (mount.composefs) of the same
# image: walking the tree (find, ls -lR) and reading every file, cold
# (page cache dropped) and warm, side by side, best of RUNS (default 3).
# The FUSE mount is measured plain and with -o verity; with verity every
# backing file's Merkle tree is built on its first open and each block
# read is checked against it, which the first read of the whole tree
# shows (later runs find the trees kept in memory and only check blocks);
# bench-fuse-verity.sh measures large files. It reports
# figures; it never passes or fails on them.
#
# usage: bench/bench-fuse.sh [BUILDDIR] [SOURCE_DIR]
#   BUILDDIR    an existing meson build directory; without it, one is set
#               up in build-bench (release build) and built.
#   SOURCE_DIR  the tree to build the image from (default /usr/include).
#
# Needs root (kernel mount, dropping caches), FUSE, EROFS and overlayfs.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
builddir=${1:-}
source_dir=${2:-/usr/include}

bench_require_root bench-fuse
builddir=$(bench_builddir "$srcdir" "$builddir")
tools=$builddir/tools
bench_need bench-fuse "$tools/mkcomposefs" "$tools/mount.composefs" "$tools/composefs-fuse"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-fuse.XXXXXX")
kmnt=$tmp/kernel
fmnt=$tmp/fuse
mkdir "$kmnt" "$fmnt"
cleanup() {
	mountpoint -q "$kmnt" && umount "$kmnt"
	mountpoint -q "$fmnt" && fusermount3 -u "$fmnt"
	rm -rf "$tmp"
}
trap cleanup EXIT

"$tools/mkcomposefs" --digest-store="$tmp/store" "$source_dir" "$tmp/image.cfs"
entries=$(find "$source_dir" | wc -l)
bytes=$(du -sb "$source_dir" | cut -f1)
echo "source: $source_dir ($entries entries, $((bytes / 1048576)) MiB);" \
	"image $(($(stat -c %s "$tmp/image.cfs") / 1024)) KiB"

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# Seconds (wall) of one run of "$@" with output discarded.
seconds() {
	local start end
	start=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	end=$(date +%s.%N)
	echo "$end - $start" | bc
}

read_all() {
	find "$1" -type f -print0 | xargs -0 -r cat
}

ops=("find" "ls -lR" "read all")
run_op() {
	case $1 in
	"find") find "$2" ;;
	"ls -lR") ls -lR "$2" ;;
	"read all") read_all "$2" ;;
	esac
}

# Best of $runs: cold runs each start from dropped caches (the FUSE
# server keeps the image's tree, as the kernel keeps the image in memory),
# warm runs follow a cold one. The best run is the one least disturbed by
# whatever else the machine is doing.
runs=${RUNS:-3}
min() {
	echo "$@" | tr ' ' '\n' | sort -g | head -n 1
}
declare -A result
measure() {
	local label=$1 mnt=$2 op i cold warm
	for op in "${ops[@]}"; do
		cold=() warm=()
		for ((i = 0; i < runs; i++)); do
			drop_caches
			cold+=("$(seconds run_op "$op" "$mnt")")
			warm+=("$(seconds run_op "$op" "$mnt")")
		done
		result["$label/$op/cold"]=$(min "${cold[@]}")
		result["$label/$op/warm"]=$(min "${warm[@]}")
	done
}

"$tools/mount.composefs" -o ro,basedir="$tmp/store" "$tmp/image.cfs" "$kmnt"
measure kernel "$kmnt"
umount "$kmnt"

"$tools/composefs-fuse" -o source="$tmp/image.cfs",basedir="$tmp/store" "$fmnt"
measure fuse "$fmnt"
fusermount3 -u "$fmnt"

"$tools/composefs-fuse" -o source="$tmp/image.cfs",basedir="$tmp/store",verity "$fmnt"
drop_caches
first_verity=$(seconds read_all "$fmnt")
measure verity "$fmnt"
fusermount3 -u "$fmnt"

printf '\n%-10s %-5s %12s %12s %12s %10s\n' operation cache "kernel (s)" "fuse (s)" \
	"fuse+verity" "fuse/kernel"
for op in "${ops[@]}"; do
	for cache in cold warm; do
		k=${result["kernel/$op/$cache"]}
		f=${result["fuse/$op/$cache"]}
		v=${result["verity/$op/$cache"]}
		printf '%-10s %-5s %12.3f %12.3f %12.3f %9.1fx\n' "$op" "$cache" "$k" "$f" "$v" \
			"$(echo "$f / $k" | bc -l)"
	done
done
printf '\nfirst read of every file through -o verity (hashing all objects): %.3f s\n' \
	"$first_verity"
