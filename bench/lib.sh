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

# bench_require NAME CMD...: exits with a message naming the script NAME
# unless every CMD is an executable path or a command.
bench_require() {
	local name=$1 cmd
	shift
	for cmd in "$@"; do
		if [ ! -x "$cmd" ] && ! command -v "$cmd" >/dev/null; then
			echo "$name: '$cmd' is needed (build first?)" >&2
			exit 1
		fi
	done
}

# bench_tree NAME BENCH_DIR TREE GIVEN: makes sure the source tree TREE
# exists; the default one (GIVEN=0) is a copy of /usr made once.
bench_tree() {
	local name=$1 bench_dir=$2 tree=$3 given=$4

	mkdir -p "$bench_dir"
	[ -d "$tree" ] && return 0
	if [ "$given" != 0 ]; then
		echo "$name: no tree '$tree'" >&2
		exit 1
	fi
	echo "making a copy of /usr in $tree (once)..."
	cp -a /usr "$tree"
}
