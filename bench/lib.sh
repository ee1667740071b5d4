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
