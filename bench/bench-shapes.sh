#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# One table of mkcomposefs on the inputs users feed it, next to the limit
# where one exists:
#   - dumpfile to image (--from-file) on gen-dump.py trees of N entries:
#     sorted, tar order, creation order, unique security.ima values (sorted
#     and in creation order);
#   - cs9-like: a real distribution tree (TREE, /usr by default) scanned
#     by mkcomposefs, printed by composefs-info dump, built back from it;
#   - digesting: --print-digest-only on TREE, warm, against
#     `openssl speed -evp sha256` times the CPUs, and the same digests
#     computed by bench-read -d, which only reads and hashes the files.
# Every figure is the best of RUNS runs (wall), with the CPU time and peak
# RSS of that run; the sorted, tar and creation orders are run in turn.
# It prints figures; it never passes or fails on them.
#
# usage: bench/bench-shapes.sh [--readme] [BUILDDIR] [N]
#   --readme  also replace the table in bench/README.md
#   BUILDDIR  an existing meson build directory (default: a release build
#             in build-bench)
#   N         entries of the generated trees (default 1000000)
# Environment: TREE (default /usr), RUNS (default 3).
# Needs GNU time (/usr/bin/time), python3 and openssl.
set -euo pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
. "$srcdir/bench/lib.sh"
readme=false
if [ "${1:-}" = --readme ]; then
	readme=true
	shift
fi
builddir=$(bench_builddir "$srcdir" "${1:-}")
n=${2:-1000000}
tree=${TREE:-/usr}
runs=${RUNS:-3}
mk=$builddir/tools/mkcomposefs
info=$builddir/tools/composefs-info
for cmd in /usr/bin/time python3 openssl; do
	command -v "$cmd" >/dev/null || { echo "bench-shapes: $cmd not found" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-shapes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# once CMD...: runs CMD once; sets w (wall), c (CPU) and m (peak RSS, MB).
once() {
	# A fresh output file each run: replacing the previous image would
	# add the kernel's freeing of its pages to the time.
	rm -f "$tmp/image"
	/usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || {
		echo "bench-shapes: $* failed:" >&2
		cat "$tmp/err" >&2
		exit 1
	}
	read -r w u s m <"$tmp/time"
	c=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
	m=$(awk -v m="$m" 'BEGIN {printf "%.0f", m / 1024}')
}

# faster W BEST: whether wall time W beats BEST (always when BEST is empty).
faster() {
	[ -z "$2" ] || awk -v a="$1" -v b="$2" 'BEGIN {exit !(a < b)}'
}

# best CMD...: runs CMD $runs times; sets wall, cpu, rss (MB) of the
# fastest run.
best() {
	wall=; cpu=; rss=
	for _ in $(seq "$runs"); do
		once "$@"
		if faster "$w" "$wall"; then
			wall=$w
			cpu=$c
			rss=$m
		fi
	done
}

rows=()
row() {
	local rss="$5 MB"

	[ "$5" = - ] && rss=-
	rows+=("| $1 | $2 | $3 s | $4 s | $rss | $6 |")
}

shape_args() {
	case $1 in
	sorted) args=(--order sorted) what="sorted (as composefs-info dump prints)" ;;
	tar) args=(--order tar) what="tar order (depth first, siblings shuffled)" ;;
	creation) args=(--order creation) what="creation order (directories interleaved)" ;;
	ima) args=(--order sorted --ima) what="unique security.ima on every file, sorted" ;;
	ima-creation) args=(--order creation --ima) what="unique security.ima, creation order" ;;
	esac
}

# The three orders are run in turn, run after run, so that a slow minute
# of the machine does not fall on one of them only: their ratios are the
# goal.
orders=(sorted tar creation)
declare -A bw bc bm
for shape in "${orders[@]}"; do
	shape_args "$shape"
	python3 "$srcdir/bench/gen-dump.py" "${args[@]}" "$n" 1 >"$tmp/$shape.dump"
done
for _ in $(seq "$runs"); do
	for shape in "${orders[@]}"; do
		once "$mk" --from-file "$tmp/$shape.dump" "$tmp/image"
		if faster "$w" "${bw[$shape]:-}"; then
			bw[$shape]=$w
			bc[$shape]=$c
			bm[$shape]=$m
		fi
	done
done
for shape in "${orders[@]}"; do
	shape_args "$shape"
	case $shape in
	sorted) limit="goal: 2 s, 300 MB" ;;
	*)
		limit=$(awk -v w="${bw[$shape]}" -v s="${bw[sorted]}" -v c="${bc[$shape]}" \
			-v sc="${bc[sorted]}" \
			'BEGIN {printf "goal: 1.2x sorted; wall %.2fx, CPU %.2fx", w / s, c / sc}') ;;
	esac
	row "$what" "$n" "${bw[$shape]}" "${bc[$shape]}" "${bm[$shape]}" "$limit"
	rm -f "$tmp/$shape.dump"
done

for shape in ima ima-creation; do
	shape_args "$shape"
	python3 "$srcdir/bench/gen-dump.py" "${args[@]}" "$n" 1 >"$tmp/dump"
	best "$mk" --from-file "$tmp/dump" "$tmp/image"
	row "$what" "$n" "$wall" "$cpu" "$rss" "-"
	rm -f "$tmp/dump" "$tmp/image"
done

# cs9-like: a real tree through its dump.
"$mk" --quiet "$tree" "$tmp/tree.img" 2>/dev/null || "$mk" "$tree" "$tmp/tree.img" >/dev/null
"$info" dump "$tmp/tree.img" >"$tmp/tree.dump"
entries=$(wc -l <"$tmp/tree.dump")
best "$mk" --from-file "$tmp/tree.dump" "$tmp/image"
row "cs9-like: $tree scanned, then its dumpfile" "$entries" "$wall" "$cpu" "$rss" "-"
rm -f "$tmp/tree.img" "$tmp/tree.dump" "$tmp/image"

# Digesting, warm: one run to fill the cache first.
ncpu=$(nproc)
sha_one=$(openssl speed -evp sha256 -seconds 3 2>/dev/null |
	awk '/^sha256/ {v = $NF} END {sub("k", "", v); printf "%.0f", v * 1000}')
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
files=$(find "$tree" -type f | wc -l)
"$mk" --print-digest-only "$tree" >/dev/null 2>&1 || true
best "$mk" --print-digest-only "$tree"
bound=$(awk -v b="$bytes" -v s="$sha_one" -v c="$ncpu" 'BEGIN {printf "%.2f", b / (s * c)}')
pct=$(awk -v b="$bound" -v w="$wall" 'BEGIN {printf "%.0f", 100 * b / w}')
row "--print-digest-only $tree (warm, $((bytes / 1000000)) MB)" "$files files" "$wall" "$cpu" "$rss" \
	"hashing limit $bound s; ${pct}% of it (goal 65%)"
mk_wall=$wall

# The same work without the scan, the tree or the image: bench-read -d is
# given the list of files and does only what each one needs (open, fstat,
# flistxattr, the reads and the digest, fstat, close), files spread over
# the threads as they come free. What mkcomposefs can reach at best.
rd_wall=; rd_cpu=
for _ in $(seq "$runs"); do
	out=$("$builddir/bench/bench-read" -d -t "$ncpu" "$tree")
	w=$(sed -n 's/.* \([0-9.]*\) s wall, .*/\1/p' <<<"$out")
	c=$(sed -n 's/.* s wall, \([0-9.]*\) s CPU.*/\1/p' <<<"$out")
	if faster "$w" "$rd_wall"; then
		rd_wall=$w
		rd_cpu=$c
	fi
done
rd_files=$(sed -n 's/^read \([0-9]*\) files.*/\1/p' <<<"$out")
rd_pct=$(awk -v b="$bound" -v w="$rd_wall" 'BEGIN {printf "%.0f", 100 * b / w}')
of_ideal=$(awk -v a="$rd_wall" -v w="$mk_wall" 'BEGIN {printf "%.0f", 100 * a / w}')
row "the same files digested by bench-read -d (no scan, no image)" "$rd_files files" "$rd_wall" \
	"$rd_cpu" - "${rd_pct}% of the limit; mkcomposefs takes ${of_ideal}% of this speed"

load=$(cut -d' ' -f1-3 /proc/loadavg)
table=$(
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/bench-shapes.sh\`: $ncpu CPUs (\`nproc\`),"
	echo "\`openssl speed -evp sha256\` $((sha_one / 1000000)) MB/s per core (16 KiB blocks),"
	echo "load average $load while measuring, best of $runs runs."
	echo
	echo "| input | entries | wall | CPU (user+sys) | peak RSS | limit |"
	echo "|---|---:|---:|---:|---:|---|"
	printf '%s\n' "${rows[@]}"
)
echo "$table"
if $readme; then
	f=$srcdir/bench/README.md
	python3 - "$f" "$table" <<'PY'
import sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = "<!-- bench-shapes: begin -->\n", "<!-- bench-shapes: end -->\n"
a, b = text.index(begin) + len(begin), text.index(end)
open(path, "w").write(text[:a] + table + "\n" + text[b:])
PY
	echo "# table written to $f"
fi
