# SPDX-License-Identifier: GPL-2.0-or-later OR Apache-2.0
#
# Sourced by the benchmark scripts.

# bench_builddir SRCDIR [BUILDDIR]: prints the absolute path of BUILDDIR,
# or, without it, sets up (once) and builds a release build in
# SRCDIR/build-bench and prints that.
bench_builddir() {
	local srcdir=$1 builddir=${2:-}

	if [ -z "$builddir" ]; then
		builddir=$srcdir/build-bench
		if [ ! -d "$builddir" ]; then
			meson setup "$builddir" "$srcdir" --buildtype=release >/dev/null
		fi
		ninja -C "$builddir" >/dev/null
	fi
	(cd "$builddir" && pwd)
}

# bench_need NAME PROG...: exits with a message unless every PROG (a path
# or a command name) can be run.
bench_need() {
	local name=$1 prog
	shift
	for prog in "$@"; do
		if ! command -v "$prog" >/dev/null; then
			echo "$name: '$prog' not found (build first, or install it)" >&2
			exit 1
		fi
	done
}

# bench_require_root NAME: exits unless run as root (kernel mounts,
# dropping caches).
bench_require_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$1: needs root (kernel mount, dropping caches)" >&2
		exit 1
	fi
}

# bench_tree_args SRCDIR [BUILDDIR] [TREE]: for the scripts that take
# `[BUILDDIR] [TREE]` and work on a large tree: sets builddir (see
# bench_builddir), bench_dir ($BENCH_DIR, default /var/tmp/composefs-bench),
# tree (TREE, default a copy of /usr in $bench_dir/usr), tree_given (1 when
# TREE was given) and mk (the build's mkcomposefs).
bench_tree_args() {
	local srcdir=$1
	shift
	builddir=$(bench_builddir "$srcdir" "${1:-}")
	bench_dir=${BENCH_DIR:-/var/tmp/composefs-bench}
	tree=${2:-$bench_dir/usr}
	tree_given=$(($# >= 2))
	mk=$builddir/tools/mkcomposefs
}

# bench_make_tree NAME: creates $bench_dir and, unless TREE was given,
# the copy of /usr in $tree (once); see bench_tree.
bench_make_tree() {
	mkdir -p "$bench_dir"
	bench_tree "$1" "$tree" "$tree_given"
}

# bench_tree NAME TREE GIVEN: makes sure the source tree TREE exists. When
# it was not GIVEN (0) on the command line, a copy of /usr is made there
# once; a given tree must exist.
bench_tree() {
	local name=$1 tree=$2 given=$3
	if [ -d "$tree" ]; then
		return
	fi
	if [ "$given" != 0 ]; then
		echo "$name: no tree '$tree'" >&2
		exit 1
	fi
	echo "making a copy of /usr in $tree (once)..."
	cp -a /usr "$tree"
}

# bench_sha256_rate: SHA-256 throughput of one core in bytes/s, from
# `openssl speed -evp sha256` (16 KiB blocks, the last column).
bench_sha256_rate() {
	openssl speed -evp sha256 -seconds 3 2>/dev/null |
		awk '/^sha256/ {v = $NF} END {sub("k", "", v); printf "%.0f", v * 1000}'
}
