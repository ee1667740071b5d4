#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# mkcomposefs --from-tar on a tar of a large tree, next to the way it
# replaces: extracting the layer with `tar -xf` and running mkcomposefs
# --digest-store on the extracted tree.
#   - uncompressed layer: direct import into an empty store and into a
#     store that already holds every object, against `tar -xf` alone and
#     against `tar -xf` + `mkcomposefs --digest-store`;
#   - gzip layer: the same, with `gzip -dc >/dev/null` beside it, since
#     the decompressor bounds the import.
# Prints wall time, CPU time (user + system) and peak RSS of each run, and
# the ratios. It never passes or fails on time. On a loaded machine the CPU
# times are the figures to compare.
#
# Usage: bench/bench-oci.sh [BUILDDIR] [TREE]
#   BUILDDIR  an existing meson build directory; without it (or with ""),
#             one is set up in build-bench (release build) and built.
#   TREE      source tree (default: a copy of /usr made once in
#             /var/tmp/composefs-bench/usr)
# Environment:
#   BENCH_DIR       (default /var/tmp/composefs-bench) holds the layers,
#                   extractions and stores; it needs about four times the
#                   layer's size.
#   BENCH_LAYER     an existing uncompressed tar layer to use instead of
#                   making one of TREE (e.g. `tar -cf usr.tar -C / usr`).
#   BENCH_LAYER_GZ  its gzip, if made already; else it is made in BENCH_DIR.
#   BENCH_SETTLE    seconds to wait after removing a large tree (default
#                   60): ext4 without a journal skips inodes freed in the
#                   last minute when it allocates new ones, which makes
#                   whatever runs next create files much more slowly.
#   BENCH_THREADS   --threads for the direct import (default: one per CPU).
#   BENCH_KINDS     which layers to run: "tar gz" (default), "tar" or "gz".
# Run as root, so that tar -xf keeps owners and devices like the direct
# import does.

set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
bench_tree_args "$srcdir" "$@"

settle=${BENCH_SETTLE:-60}
threads=()
[ -n "${BENCH_THREADS:-}" ] && threads=(--threads="$BENCH_THREADS")

bench_need bench-oci "$mk" tar gzip bc /usr/bin/time
mkdir -p "$bench_dir"
[ -n "${BENCH_LAYER:-}" ] || bench_make_tree bench-oci

work=$bench_dir/oci
rm -rf "$work"
mkdir -p "$work"
tmpout=$(mktemp)
trap 'rm -f "$tmpout"; rm -rf "$work"' EXIT

echo "making the layers (not timed)..."
if [ -n "${BENCH_LAYER:-}" ]; then
	tar_layer=$BENCH_LAYER
	source_name=$BENCH_LAYER
else
	tar_layer=$work/layer.tar
	source_name=$tree
	tar --numeric-owner --xattrs --xattrs-include='*' -C "$tree" -cf "$tar_layer" .
fi
kinds=${BENCH_KINDS:-tar gz}
gz_layer=${BENCH_LAYER_GZ:-$work/layer.tar.gz}
gz_mb=-
if [[ " $kinds " == *" gz "* ]]; then
	[ -f "$gz_layer" ] || gzip -6 -c "$tar_layer" >"$gz_layer"
	gz_mb=$(($(stat -c %s "$gz_layer") / 1000000))
fi
files=$(tar -tvf "$tar_layer" | grep -c '^-' || true)
tar_mb=$(($(stat -c %s "$tar_layer") / 1000000))
printf '%s: %d regular files; layer %d MB, gzip %s MB; %d CPUs\n' \
	"$source_name" "$files" "$tar_mb" "$gz_mb" "$(nproc)"
echo "(CPU = user + system time; load = 1-minute load average when the run started)"

# Runs "$@" and sets $secs, $cpu (user + system), $usr, $sys, $rss_kb and
# $load.
timed() {
	sync
	load=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -f '%e %U %S %M' -o "$tmpout" "$@" >/dev/null
	read -r secs usr sys rss_kb <"$tmpout"
	cpu=$(echo "$usr + $sys" | bc -l)
}

report() {
	printf '%-46s %7.2f s wall %7.2f s CPU (%.2f user + %.2f sys)  RSS %6.1f MB  load %s%s\n' \
		"$1" "$secs" "$cpu" "$usr" "$sys" "$(echo "$rss_kb / 1024" | bc -l)" "$load" \
		"${2:-}"
}

# Removes large trees, then waits for the filesystem (see BENCH_SETTLE).
remove() {
	rm -rf "$@"
	sync
	sleep "$settle"
}

ratio() {
	if [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then
		printf '%.2f' "$(echo "$1 / $2" | bc -l)"
	else
		printf -- '-'
	fi
}

sync
sleep "$settle"
for kind in $kinds; do
	layer=$tar_layer
	xflag=-xf
	[ "$kind" = gz ] && layer=$gz_layer && xflag=-xzf
	echo "--- $kind layer"
	# Read once first, so that every run reads it from the page cache
	# where it fits.
	cat "$layer" >/dev/null

	if [ "$kind" = gz ]; then
		timed sh -c "gzip -dc '$layer' >/dev/null"
		report "gzip -dc > /dev/null"
		gz_secs=$secs gz_cpu=$cpu
	fi

	mkdir "$work/x-$kind"
	timed tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/x-$kind" $xflag "$layer"
	report "tar $xflag"
	x_secs=$secs x_cpu=$cpu
	timed "$mk" --hardlinks --digest-store="$work/store-x-$kind" "$work/x-$kind" \
		"$work/x-$kind.cfs"
	report "mkcomposefs --hardlinks --digest-store (extracted)"
	xb_secs=$(echo "$x_secs + $secs" | bc -l) xb_cpu=$(echo "$x_cpu + $cpu" | bc -l)
	printf '%-46s %7.2f s wall %7.2f s CPU\n' "  tar $xflag + mkcomposefs" "$xb_secs" "$xb_cpu"
	remove "$work/x-$kind" "$work/store-x-$kind"

	timed "$mk" --from-tar "${threads[@]}" --digest-store="$work/store-$kind" "$layer" \
		"$work/direct-$kind.cfs"
	report "mkcomposefs --from-tar (empty store)" \
		"$(printf '  %s x extract+build, %s x tar %s (wall); CPU %s x, %s x' \
			"$(ratio "$secs" "$xb_secs")" "$(ratio "$secs" "$x_secs")" "$xflag" \
			"$(ratio "$cpu" "$xb_cpu")" "$(ratio "$cpu" "$x_cpu")")"
	[ "$kind" = gz ] && printf '%-46s %s x gzip -dc (wall), %s x (CPU)\n' "" \
		"$(ratio "$secs" "$gz_secs")" "$(ratio "$cpu" "$gz_cpu")"
	timed "$mk" --from-tar "${threads[@]}" --digest-store="$work/store-$kind" "$layer" \
		"$work/direct-$kind.cfs"
	report "mkcomposefs --from-tar (full store)" \
		"$(printf '  %s x extract+build, %s x tar %s (wall); CPU %s x, %s x' \
			"$(ratio "$secs" "$xb_secs")" "$(ratio "$secs" "$x_secs")" "$xflag" \
			"$(ratio "$cpu" "$xb_cpu")" "$(ratio "$cpu" "$x_cpu")")"
	if cmp -s "$work/direct-$kind.cfs" "$work/x-$kind.cfs"; then
		echo "  the images are identical"
	else
		echo "  the images differ (the tree has entries tar cannot restore the same way)"
	fi
	remove "$work/store-$kind"
done
