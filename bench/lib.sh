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

# bench_require_root NAME: exits unless run as root (kernel mounts,
# dropping caches).
bench_require_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$1: needs root (kernel mount, dropping caches)" >&2
		exit 1
	fi
}

# bench_require_tools NAME TOOLSDIR TOOL...: exits unless every TOOL is
# built in TOOLSDIR.
bench_require_tools() {
	local name=$1 dir=$2 t
	shift 2
	for t in "$@"; do
		if [ ! -x "$dir/$t" ]; then
			echo "$name: $dir/$t is not built" >&2
			exit 1
		fi
	done
}
