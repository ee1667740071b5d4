#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Cost of composefs-fuse -o verity, which checks every 4 KiB block it
# serves against the file's Merkle tree: reading large files through the
# kernel mount, plain composefs-fuse (spliced from the backing files),
# -o verity with the default memory budget (whole trees kept), and
# -o verity with verity_memory=0 (only the top of each tree kept, the
# lowest level rebuilt from the data as reads need it). Cold runs start
# from dropped page caches, warm runs follow them; best of RUNS (default
# 3). For FUSE it also gives the CPU time the server used (user + system),
# which the load of a shared machine disturbs less than wall time. The
# "first" row is the first read after mounting, when -o verity also builds
# the trees (later cold runs find them in the server's memory). It prints
# figures; it never passes or fails on them.
#
# usage: bench/bench-fuse-verity.sh [BUILDDIR] [FILES] [MIB]
#   BUILDDIR  an existing meson build directory; without it, one is set up
#             in build-bench (release build) and built.
#   FILES     number of files (default 4), each of MIB MiB (default 48)
#             of random data.
#
# Needs root (kernel mount, dropping caches), FUSE, EROFS and overlayfs.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
builddir=${1:-}
nfiles=${2:-4}
mib=${3:-48}
runs=${RUNS:-3}

bench_require_root bench-fuse-verity
builddir=$(bench_builddir "$srcdir" "$builddir")
tools=$builddir/tools
bench_need bench-fuse-verity "$tools/mkcomposefs" "$tools/mount.composefs" "$tools/composefs-fuse"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-fuse-verity.XXXXXX")
mnt=$tmp/mnt
mkdir "$mnt" "$tmp/src"
server=
cleanup() {
	if mountpoint -q "$mnt"; then
		umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt"
	fi
	[ -n "$server" ] && wait "$server" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

for ((i = 0; i < nfiles; i++)); do
	head -c $((mib << 20)) /dev/urandom >"$tmp/src/file$i"
done
"$tools/mkcomposefs" --digest-store="$tmp/store" "$tmp/src" "$tmp/image.cfs"
rm -rf "$tmp/src"
total=$((nfiles * mib))
echo "$nfiles files of $mib MiB ($total MiB), read with cat; best of $runs;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

now() {
	date +%s.%N
}

read_all() {
	cat "$mnt"/file* >/dev/null
}

# CPU seconds (user + system) used so far by process $1.
cpu_of() {
	local ticks
	ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
	echo "$ticks / $(getconf CLK_TCK)" | bc -l
}

min() {
	printf '%s\n' "$@" | sort -g | head -n 1
}

declare -A wall cpu
# measure LABEL: the first read, then RUNS cold and warm reads.
measure() {
	local label=$1 i t0 c0 cold=() warm=() ccold=() cwarm=()
	for kind in first cold warm; do
		cpu[$label/$kind]=-
	done
	drop_caches
	t0=$(now)
	c0=$([ -n "$server" ] && cpu_of "$server" || echo 0)
	read_all
	wall[$label/first]=$(echo "$(now) - $t0" | bc -l)
	[ -n "$server" ] && cpu[$label/first]=$(echo "$(cpu_of "$server") - $c0" | bc -l)
	for ((i = 0; i < runs; i++)); do
		drop_caches
		t0=$(now)
		c0=$([ -n "$server" ] && cpu_of "$server" || echo 0)
		read_all
		cold+=("$(echo "$(now) - $t0" | bc -l)")
		[ -n "$server" ] && ccold+=("$(echo "$(cpu_of "$server") - $c0" | bc -l)")
		t0=$(now)
		c0=$([ -n "$server" ] && cpu_of "$server" || echo 0)
		read_all
		warm+=("$(echo "$(now) - $t0" | bc -l)")
		[ -n "$server" ] && cwarm+=("$(echo "$(cpu_of "$server") - $c0" | bc -l)")
	done
	wall[$label/cold]=$(min "${cold[@]}")
	wall[$label/warm]=$(min "${warm[@]}")
	if [ -n "$server" ]; then
		cpu[$label/cold]=$(min "${ccold[@]}")
		cpu[$label/warm]=$(min "${cwarm[@]}")
	fi
}

# fuse_mount OPTIONS: composefs-fuse in the foreground, in the background
# of this script (so that its CPU time can be read).
fuse_mount() {
	"$tools/composefs-fuse" -f -o source="$tmp/image.cfs",basedir="$tmp/store$1" \
		"$mnt" &
	server=$!
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$mnt" && return 0
		sleep 0.05
	done
	echo "bench-fuse-verity: composefs-fuse did not mount" >&2
	exit 1
}

fuse_unmount() {
	fusermount3 -u "$mnt"
	wait "$server"
	server=
}

"$tools/mount.composefs" -o ro,basedir="$tmp/store" "$tmp/image.cfs" "$mnt"
measure kernel
umount "$mnt"

labels=(kernel fuse verity verity-mem0)
fuse_mount ""
measure fuse
fuse_unmount
fuse_mount ",verity"
measure verity
fuse_unmount
fuse_mount ",verity,verity_memory=0"
measure verity-mem0
fuse_unmount

printf '\n%-12s %-6s %10s %10s %12s\n' mount read "wall (s)" "MiB/s" "server CPU (s)"
for label in "${labels[@]}"; do
	for kind in first cold warm; do
		w=${wall[$label/$kind]}
		c=${cpu[$label/$kind]}
		[ "$c" != - ] && c=$(printf '%.3f' "$c")
		printf '%-12s %-6s %10.3f %10.0f %12s\n' "$label" "$kind" "$w" \
			"$(echo "$total / $w" | bc -l)" "$c"
	done
done
