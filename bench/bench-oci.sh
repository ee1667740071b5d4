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
# Environment: BENCH_DIR (default /var/tmp/composefs-bench) holds the
# layers, extractions and stores; it needs about five times the tree's
# size. Run as root, so that tar -xf keeps owners and devices like the
# direct import does.

set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
bench_tree_args "$srcdir" "$@"

bench_need bench-oci "$mk" tar gzip bc /usr/bin/time
bench_make_tree bench-oci

work=$bench_dir/oci
rm -rf "$work"
mkdir -p "$work"
tmpout=$(mktemp)
trap 'rm -f "$tmpout"; rm -rf "$work"' EXIT

echo "making the layers (not timed)..."
tar --numeric-owner --xattrs --xattrs-include='*' -C "$tree" -cf "$work/layer.tar" .
gzip -6 -c "$work/layer.tar" >"$work/layer.tar.gz"
files=$(tar -tvf "$work/layer.tar" | grep -c '^-' || true)
tar_mb=$(($(stat -c %s "$work/layer.tar") / 1000000))
gz_mb=$(($(stat -c %s "$work/layer.tar.gz") / 1000000))
printf 'tree %s: %d regular files; layer %d MB, gzip %d MB; %d CPUs, load %s\n' \
	"$tree" "$files" "$tar_mb" "$gz_mb" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

# Runs "$@" and sets $secs, $cpu (user + system) and $rss_kb.
timed() {
	sync
	/usr/bin/time -f '%e %U %S %M' -o "$tmpout" "$@" >/dev/null
	read -r secs usr sys rss_kb <"$tmpout"
	cpu=$(echo "$usr + $sys" | bc -l)
}

report() {
	printf '%-52s %7.2f s wall %7.2f s CPU  RSS %6.1f MB%s\n' "$1" "$secs" "$cpu" \
		"$(echo "$rss_kb / 1024" | bc -l)" "${2:-}"
}

ratio() {
	if [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then
		printf '%.2f' "$(echo "$1 / $2" | bc -l)"
	else
		printf -- '-'
	fi
}

# The layer file is read once first, so that every run starts warm.
cat "$work/layer.tar" "$work/layer.tar.gz" >/dev/null

for kind in tar gz; do
	layer=$work/layer.tar
	xflag=-xf
	[ "$kind" = gz ] && layer=$work/layer.tar.gz && xflag=-xzf
	echo "--- $kind layer"

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
	printf '%-52s %7.2f s wall %7.2f s CPU\n' "  tar $xflag + mkcomposefs" "$xb_secs" "$xb_cpu"
	rm -rf "$work/x-$kind"

	timed "$mk" --from-tar --digest-store="$work/store-$kind" "$layer" "$work/direct-$kind.cfs"
	report "mkcomposefs --from-tar (empty store)" \
		"$(printf '  %s x extract+build, %s x tar %s (wall); CPU %s x, %s x' \
			"$(ratio "$secs" "$xb_secs")" "$(ratio "$secs" "$x_secs")" "$xflag" \
			"$(ratio "$cpu" "$xb_cpu")" "$(ratio "$cpu" "$x_cpu")")"
	[ "$kind" = gz ] && printf '%-52s %s x gzip -dc (wall), %s x (CPU)\n' "" \
		"$(ratio "$secs" "$gz_secs")" "$(ratio "$cpu" "$gz_cpu")"
	timed "$mk" --from-tar --digest-store="$work/store-$kind" "$layer" "$work/direct-$kind.cfs"
	report "mkcomposefs --from-tar (full store)" \
		"$(printf '  %s x extract+build, %s x tar %s (wall); CPU %s x, %s x' \
			"$(ratio "$secs" "$xb_secs")" "$(ratio "$secs" "$x_secs")" "$xflag" \
			"$(ratio "$cpu" "$xb_cpu")" "$(ratio "$cpu" "$x_cpu")")"
	if cmp -s "$work/direct-$kind.cfs" "$work/x-$kind.cfs"; then
		echo "  the images are identical"
	else
		echo "  the images differ (the tree has entries tar cannot restore the same way)"
	fi
	rm -rf "$work/store-$kind" "$work/store-x-$kind"
done
